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
The vduse flavour (vduse_restart_case) runs the same writer on a vDPA
device (VDUSE) whose qemu-storage-daemon is killed and started again with
the same export name; wisp does nothing there (the kernel holds the
requests), so instead of the reconnect line it checks that no device
failure was logged.
Kept in its own file so guest_tests.py stays readable."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

from vdpa_case import start_vduse, stop_vduse
from vhost_vsock_case import poweroff_exit_0
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


class Vduse:
    """The vDPA flavour: a VDUSE device (tests/testbed/vdpa/setup) whose
    qemu-storage-daemon is killed and started again with the same export
    name; the new daemon takes the device over with its in-flight log."""
    NAME = "vduse4"

    def __init__(self, img, log):
        self.img, self.log = img, log
        self.node, pid = start_vduse(img, self.NAME)
        self.proc = None
        self.pid = pid

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def restart(self):
        self.proc = subprocess.Popen(
            [QSD, "--blockdev", "driver=file,node-name=disk,filename=%s,locking=off" % self.img,
             "--export", "type=vduse-blk,id=v0,node-name=disk,name=%s,num-queues=1,writable=on"
             % self.NAME], stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        time.sleep(0.5)
        return self.proc.poll() is None

    def stop(self):
        stop_vduse(self.pid, self.NAME)
        if self.proc:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def vduse_restart_case(res, args, case, kernel, initrd, guest_cls):
    """The same writer and checks on a vDPA device whose VDUSE server is
    killed and started again; wisp itself does nothing (no reconnect line)."""
    vhost_user_restart_case(res, args, case, kernel, initrd, guest_cls, vduse=True)


def vhost_user_restart_case(res, args, case, kernel, initrd, guest_cls, vduse=False):
    name = case.name
    d = tempfile.mkdtemp(prefix="wisp-vur-")
    img = os.path.join(d, "disk.img") if not vduse else os.path.join(args.workdir, name + ".img")
    sock = os.path.join(d, "vub.sock")
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    log = open(os.path.join(args.workdir, name + ".qsd.log"), "w")
    if vduse:
        try:
            vd = Vduse(img, log)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            res.check(name + "/vduse", False, str(e))
            log.close()
            return
        res.check(name + "/vduse", True, "%s is %s" % (Vduse.NAME, vd.node))
        restart_case(res, args, case, kernel, initrd, guest_cls, name, img, d, log,
                     "vdpa,path=%s,id=vdisk" % vd.node, vd.kill, vd.restart, vd.stop, None)
        return
    qsd = [start_qsd(img, sock, log)]
    if not res.check(name + "/qsd", os.path.exists(sock), "listening" if os.path.exists(sock)
                     else "no socket; exit %s" % qsd[0].poll()):
        qsd[0].kill()
        log.close()
        shutil.rmtree(d, ignore_errors=True)
        return

    def kill():
        qsd[0].send_signal(signal.SIGKILL)
        qsd[0].wait(timeout=10)

    def restart():
        qsd[0] = start_qsd(img, sock, log)
        return os.path.exists(sock) and qsd[0].poll() is None

    def stop():
        if qsd[0].poll() is None:
            qsd[0].terminate()
            try:
                qsd[0].wait(timeout=10)
            except subprocess.TimeoutExpired:
                qsd[0].kill()

    restart_case(res, args, case, kernel, initrd, guest_cls, name, img, d, log,
                 "blk,vhost-user=%s,id=vdisk" % sock, kill, restart, stop, "the backend is back after")


def restart_case(res, args, case, kernel, initrd, guest_cls, name, img, d, log, dev, kill, restart,
                 stop, reconnect_line):
    """Boot on `dev`, write N records, kill() the server mid-stream and
    restart() it; `reconnect_line`: what wisp logs when it takes the new
    server (None: nothing to do on wisp's side)."""
    g = None
    try:
        argv = [args.wisp, "run", "--kernel", kernel, "--initrd", initrd,
                "--cmdline", "console=ttyS0 panic=-1 loglevel=5 " + args.append,
                "--vcpus", str(case.vcpus), "--memory", "256M", "--serial", "stdio",
                "--device", dev] + args.wisp_arg
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
        kill()
        time.sleep(1.5)
        out = g.run("cat /tmp/progress")
        at_kill = int(last(out)) if out and last(out).isdigit() else -1
        res.check(name + "/restarted", restart(),
                  "killed with SIGKILL at record %d of %d, a new daemon serves" % (at_kill, N))
        res.check(name + "/killed-mid-stream", 0 < at_kill < N, "record %d of %d" % (at_kill, N))
        out = g.run("while [ \"$(cat /tmp/progress)\" != %d ]; do sleep 0.5; done; "
                    "echo errors $(cat /tmp/w.err 2>/dev/null | wc -l); "
                    "echo ioerr $(dmesg | grep -ciE 'I/O error|blk_update_request|timed out')"
                    % N, timeout=300)
        ok = out is not None and "errors 0" in out and "ioerr 0" in out
        res.check(name + "/guest-noticed-nothing", ok,
                  " ".join((out or "no answer (writer stuck?)").split()[-4:]))
        text = g.text()
        if reconnect_line:
            res.check(name + "/wisp-reconnected", reconnect_line in text,
                      next((l[l.find("vhost-user"):].strip() for l in text.splitlines()
                            if reconnect_line in l), "no reconnect line"))
        else:
            res.check(name + "/device-fine", "NEEDS_RESET" not in text and "needs reset" not in text,
                      "wisp logged no device failure (the kernel held the requests)")
        poweroff_exit_0(res, g, name)
        g.kill()
        g = None
        stop()
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
        stop()
        log.close()
        shutil.rmtree(d, ignore_errors=True)
