"""The stock-Linux virtio-fs case of guest_tests.py: --device
fs,vhost-user=SOCK,tag=share served by Debian's own virtiofsd
(/usr/lib/qemu/virtiofsd, QEMU 7.2) in L1, against the guest kernel's
virtiofs driver.  virtiofsd has no config space of its own, so wisp builds
it (the tag, one request queue).  Checked:
  - the guest's virtiofs binds the device (type 0x001a) and mounts the tag;
  - the guest reads the host's file and writes its own, which the host reads
    in the shared directory;
  - 4 MiB written with dd in the guest: the host file has the same md5;
  - a file the host writes while the guest has the share mounted is read in
    the guest (cache=none: no stale view);
  - a snapshot through the API is refused with one line naming the
    vhost-user data plane, and the guest keeps working;
  - poweroff: wisp exits 0 (148 would be a seccomp kill).
Kept in its own file so guest_tests.py stays readable."""

import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time

from vhost_vsock_case import poweroff_exit_0, snapshot_refused
from vsock_case import last

VIRTIOFSD = "/usr/lib/qemu/virtiofsd"
TAG = "share"


def vhost_user_fs_case(res, args, case, kernel, initrd, guest_cls):
    name = case.name
    d = tempfile.mkdtemp(prefix="wisp-vfs-")
    share = os.path.join(d, "share")
    os.makedirs(share)
    sock = os.path.join(d, "vfs.sock")
    tokens = {"host": secrets.token_hex(8), "guest": secrets.token_hex(8), "late": secrets.token_hex(8)}
    with open(os.path.join(share, "hello.txt"), "w") as f:
        f.write("host-token %s\n" % tokens["host"])
    log = open(os.path.join(args.workdir, name + ".virtiofsd.log"), "w")
    fsd = subprocess.Popen([VIRTIOFSD, "--socket-path=" + sock, "-o", "source=" + share,
                            "-o", "cache=none", "--thread-pool-size=2"],
                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    g = None
    try:
        for _ in range(100):
            if os.path.exists(sock) or fsd.poll() is not None:
                break
            time.sleep(0.1)
        if not res.check(name + "/virtiofsd", os.path.exists(sock),
                         "listening on %s (pid %d)" % (sock, fsd.pid) if os.path.exists(sock)
                         else "no socket; exit %s" % fsd.poll()):
            return
        api = os.path.join(d, "api.sock")
        argv = [args.wisp, "run", "--kernel", kernel, "--initrd", initrd,
                "--cmdline", "console=ttyS0 panic=-1 loglevel=5 " + args.append,
                "--vcpus", str(case.vcpus), "--memory", "256M", "--serial", "stdio",
                "--device", "fs,vhost-user=%s,tag=%s" % (sock, TAG), "--api-sock", api,
                "--snapshot-dir", d] + args.wisp_arg
        g = guest_cls(argv, os.path.join(args.workdir, name + ".log"))
        ready = g.expect("WISP-GUEST-READY", args.boot_timeout)
        if not res.check(name + "/boot", ready is not None, "userspace" if ready else "no userspace"):
            return
        out = g.run("for x in /sys/bus/virtio/devices/*; do echo vdev $(cat $x/device) "
                    "$(basename $(readlink $x/driver) 2>/dev/null); done")
        res.check(name + "/driver", out is not None and "vdev 0x001a virtiofs" in out,
                  " ".join((out or "no answer").split()[-6:]))

        out = g.run("mkdir -p /mnt/s && mount -t virtiofs %s /mnt/s && cat /mnt/s/hello.txt && "
                    "echo guest-token %s > /mnt/s/guest.txt && sync && echo fs-ok-$((1+1))"
                    % (TAG, tokens["guest"]), timeout=60)
        res.check(name + "/mount-read-write", out is not None and
                  ("host-token " + tokens["host"]) in out and "fs-ok-2" in out, last(out))
        try:
            with open(os.path.join(share, "guest.txt")) as f:
                got = f.read()
        except OSError as e:
            got = str(e)
        res.check(name + "/host-sees-guest-file", ("guest-token " + tokens["guest"]) in got,
                  got.strip()[:80])

        out = g.run("dd if=/dev/urandom of=/mnt/s/big bs=64k count=64 2>/dev/null; sync; "
                    "echo md5 $(md5sum < /mnt/s/big)", timeout=120)
        want = None
        try:
            with open(os.path.join(share, "big"), "rb") as f:
                want = hashlib.md5(f.read()).hexdigest()
        except OSError:
            pass
        res.check(name + "/4mib-same-md5", out is not None and want is not None and
                  ("md5 " + want) in out, "guest %s, host %s" % (last(out), want))

        with open(os.path.join(share, "late.txt"), "w") as f:
            f.write("late-token %s\n" % tokens["late"])
        out = g.run("cat /mnt/s/late.txt")
        res.check(name + "/guest-sees-host-write", out is not None and
                  ("late-token " + tokens["late"]) in out, last(out))

        snapshot_refused(res, g, name, api, "vhost-user",
                         after="umount /mnt/s && echo alive-$((4+4))")

        poweroff_exit_0(res, g, name)
    finally:
        if g:
            g.kill()
        fsd.terminate()
        try:
            fsd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fsd.kill()
        log.close()
        shutil.rmtree(d, ignore_errors=True)
