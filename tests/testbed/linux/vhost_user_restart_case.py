"""The stock-Linux backend-restart case of guest_tests.py: blk over
vhost-user (qemu-storage-daemon), and the daemon killed with SIGKILL and
started again on the same socket and image while the guest writes.

The guest's writer puts record i (one 4 KiB block "rec-%08d") at block
i mod 16 with O_DIRECT and fsync, N times, so each block ends up holding
the last record of its class.  A lost write leaves an older record in its
block, and an old request taken again after a newer one completed leaves
an older record too; the host checks all 16 blocks after the daemon has
exited.  qemu-storage-daemon 7.2 offers no inflight area, so wisp resumes
the ring at the used index after checking in guest memory that the old
daemon completed requests in order (docs/VHOST.md, "Backend restart").
Checked:
  - the writer was still running when the daemon was killed;
  - every write succeeded in the guest (no dd error, no I/O error in
    dmesg): the guest noticed nothing but a pause;
  - wisp logged the reconnect;
  - the 16 blocks hold the expected last records;
  - poweroff: wisp exits 0.
Kept in its own file so guest_tests.py stays readable."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

from vsock_case import last

QSD = "qemu-storage-daemon"
N = 600      # records written by the guest
BLOCKS = 16  # records cycle over this many 4 KiB blocks


def start_qsd(img, sock, log):
    if os.path.exists(sock):
        os.unlink(sock)
    p = subprocess.Popen([QSD, "--blockdev", "driver=file,node-name=d,filename=%s" % img,
                          "--export", "type=vhost-user-blk,id=e,node-name=d,addr.type=unix,"
                          "addr.path=%s,writable=on" % sock],
                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(sock) or p.poll() is not None:
            break
        time.sleep(0.05)
    return p


def expected_blocks():
    want = {}
    for i in range(1, N + 1):
        want[i % BLOCKS] = i
    return want


def vhost_user_restart_case(res, args, case, kernel, initrd, guest_cls):
    name = case.name
    d = tempfile.mkdtemp(prefix="wisp-vur-")
    img = os.path.join(d, "disk.img")
    sock = os.path.join(d, "vub.sock")
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    log = open(os.path.join(args.workdir, name + ".qsd.log"), "w")
    qsd = start_qsd(img, sock, log)
    g = None
    try:
        if not res.check(name + "/qsd", os.path.exists(sock), "listening" if os.path.exists(sock)
                         else "no socket; exit %s" % qsd.poll()):
            return
        argv = [args.wisp, "run", "--kernel", kernel, "--initrd", initrd,
                "--cmdline", "console=ttyS0 panic=-1 loglevel=5 " + args.append,
                "--vcpus", str(case.vcpus), "--memory", "256M", "--serial", "stdio",
                "--device", "blk,vhost-user=%s,id=vdisk" % sock] + args.wisp_arg
        g = guest_cls(argv, os.path.join(args.workdir, name + ".log"))
        ready = g.expect("WISP-GUEST-READY", args.boot_timeout)
        if not res.check(name + "/boot", ready is not None, "userspace" if ready else "no userspace"):
            return
        out = g.run("i=1; while [ $i -le %d ]; do printf 'rec-%%08d\\n' $i | "
                    "dd of=/dev/vda bs=4096 seek=$((i %% %d)) oflag=direct conv=sync,fsync,notrunc "
                    "2>/dev/null || echo ERR $i >> /tmp/w.err; echo $i > /tmp/progress; i=$((i+1)); "
                    "done > /dev/null 2>&1 & echo writer-started" % (N, BLOCKS))
        if not res.check(name + "/writer", out is not None and "writer-started" in out, last(out)):
            return
        # Let it run, then kill the daemon mid-stream and start a new one after a pause.
        time.sleep(3)
        qsd.send_signal(signal.SIGKILL)
        qsd.wait(timeout=10)
        time.sleep(1.5)
        out = g.run("cat /tmp/progress")
        at_kill = int(last(out)) if out and last(out).isdigit() else -1
        qsd = start_qsd(img, sock, log)
        res.check(name + "/restarted", os.path.exists(sock) and qsd.poll() is None,
                  "killed with SIGKILL at record %d of %d, a new daemon listens" % (at_kill, N))
        res.check(name + "/killed-mid-stream", 0 < at_kill < N, "record %d of %d" % (at_kill, N))
        out = g.run("while [ \"$(cat /tmp/progress)\" != %d ]; do sleep 0.5; done; "
                    "echo errors $(cat /tmp/w.err 2>/dev/null | wc -l); "
                    "echo ioerr $(dmesg | grep -ciE 'I/O error|blk_update_request|timed out')"
                    % N, timeout=300)
        ok = out is not None and "errors 0" in out and "ioerr 0" in out
        res.check(name + "/guest-noticed-nothing", ok,
                  " ".join((out or "no answer (writer stuck?)").split()[-4:]))
        text = g.text()
        res.check(name + "/wisp-reconnected", "the backend is back after" in text,
                  next((l[l.find("vhost-user"):].strip() for l in text.splitlines() if "is back after" in l),
                       "no reconnect line"))
        g.send("poweroff -f")
        try:
            rc = g.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rc = None
        res.check(name + "/poweroff-exit-0", rc == 0, "wisp exit status %s" % rc)
        g.kill()
        g = None
        qsd.terminate()
        qsd.wait(timeout=10)
        bad = []
        with open(img, "rb") as f:
            data = f.read(BLOCKS * 4096)
        for k, i in sorted(expected_blocks().items()):
            got = data[k * 4096:k * 4096 + 12]
            if got != b"rec-%08d" % i:
                bad.append("block %d: %r (want rec-%08d)" % (k, got, i))
        res.check(name + "/image-last-records", not bad,
                  "all %d blocks hold their last record" % BLOCKS if not bad else "; ".join(bad[:4]))
    finally:
        if g:
            g.kill()
        if qsd.poll() is None:
            qsd.kill()
        log.close()
        shutil.rmtree(d, ignore_errors=True)
