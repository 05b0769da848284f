"""The stock-Linux vDPA case of guest_tests.py: --device vdpa,path=/dev/vhost-vdpa-N
on a real vDPA block device in L1 (VDUSE, served by qemu-storage-daemon's
vduse-blk export of an ext4 image; tests/testbed/vdpa/setup), against the
guest kernel's own virtio_blk driver.  Checked:
  - the guest's virtio_blk binds the device (type 0x0002);
  - ext4 on it: the guest mounts it, reads the host's file, writes its own;
  - 4 MiB written with dd, caches dropped, read back with the same md5 (the
    reads come from the device again, not the page cache);
  - a device reset (the guest unbinds and rebinds virtio_blk): wisp's worker
    resets the vDPA device and starts it again, and the guest reads its
    file back;
  - live migration across data planes (xplane_case.py): vDPA -> built-in
    blk -> vhost-user-blk -> vDPA on the same image, with a writer and a
    reader running, a read-back after every hop, consecutive records;
  - poweroff (on the last destination): the worker resets and closes the device under its seccomp
    filter and wisp exits 0 (148 would be a seccomp kill);
  - after the daemon has exited, the image holds the guest's file (debugfs)
    and e2fsck -fn finds it clean.
Kept in its own file so guest_tests.py stays readable."""

import os
import secrets
import shutil
import subprocess
import tempfile
import time

from linux_common import make_disk
from vhost_vsock_case import poweroff_exit_0
from vsock_case import last
from xplane_case import start_vhu, xplane_hops

VDUSE_NAME = "vduse2"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def start_vduse(img, name=VDUSE_NAME):
    """tests/testbed/vdpa/setup: returns (node, qsd pid) or raises RuntimeError."""
    # No image locks: the vhost-user export of the migration hops opens it too.
    r = subprocess.run([os.path.join(REPO, "tests/testbed/vdpa/setup"), img, name],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, VDPA_LOCKING="off"))
    parts = r.stdout.split()
    if r.returncode != 0 or len(parts) != 2:
        raise RuntimeError("vdpa setup: %s" % (r.stderr.strip() or r.stdout.strip()))
    return parts[0], int(parts[1])


def stop_vduse(pid, name=VDUSE_NAME):
    """Remove the vDPA device and stop the daemon, so the image is quiescent."""
    subprocess.run(["vdpa", "dev", "del", name], capture_output=True)
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def vdpa_case(res, args, case, kernel, initrd, guest_cls):
    name = case.name
    d = tempfile.mkdtemp(prefix="wisp-vdpa-")
    img = os.path.join(args.workdir, name + ".img")
    tokens = {"host": secrets.token_hex(8), "guest": secrets.token_hex(8)}
    make_disk(img, tokens["host"])
    qsd = None
    vhu = None
    g = None
    try:
        try:
            node, qsd = start_vduse(img)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            res.check(name + "/vduse", False, str(e))
            return
        res.check(name + "/vduse", True, "%s is %s (qemu-storage-daemon %d)" % (VDUSE_NAME, node, qsd))
        api = os.path.join(d, "api.sock")
        argv = [args.wisp, "run", "--kernel", kernel, "--initrd", initrd,
                "--cmdline", "console=ttyS0 panic=-1 loglevel=5 " + args.append,
                "--vcpus", str(case.vcpus), "--memory", "256M", "--serial", "stdio",
                "--device", "vdpa,path=%s,id=vdisk" % node, "--api-sock", api,
                "--snapshot-dir", d] + args.wisp_arg
        g = guest_cls(argv, os.path.join(args.workdir, name + ".log"))
        ready = g.expect("WISP-GUEST-READY", args.boot_timeout)
        if not res.check(name + "/boot", ready is not None, "userspace" if ready else "no userspace"):
            return
        out = g.run("for x in /sys/bus/virtio/devices/*; do echo vdev $(cat $x/device) "
                    "$(basename $(readlink $x/driver) 2>/dev/null); done")
        res.check(name + "/driver", out is not None and "vdev 0x0002 virtio_blk" in out,
                  " ".join((out or "no answer").split()[-6:]))

        out = g.run("i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; "
                    "mkdir -p /mnt/d && mount -t ext4 /dev/vda /mnt/d && cat /mnt/d/hello.txt && "
                    "echo guest-token %s > /mnt/d/guest.txt && sync && echo blk-ok-$((1+1))"
                    % tokens["guest"], timeout=60)
        res.check(name + "/ext4", out is not None and ("host-token " + tokens["host"]) in out and
                  "blk-ok-2" in out, last(out))

        out = g.run("dd if=/dev/urandom of=/mnt/d/big bs=64k count=64 2>/dev/null; sync; "
                    "a=$(md5sum < /mnt/d/big); echo 3 > /proc/sys/vm/drop_caches; "
                    "b=$(md5sum < /mnt/d/big); [ \"$a\" = \"$b\" ] && echo md5-same-$((2+2)) $a; "
                    "rm /mnt/d/big; umount /mnt/d", timeout=120)
        res.check(name + "/4mib-readback", out is not None and "md5-same-4" in out, last(out))

        out = g.run("x=$(grep -l 0x0002 /sys/bus/virtio/devices/*/device); x=${x%/device}; n=${x##*/}; "
                    "echo $n > /sys/bus/virtio/drivers/virtio_blk/unbind; "
                    "echo $n > /sys/bus/virtio/drivers/virtio_blk/bind; "
                    "i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; "
                    "mount -t ext4 /dev/vda /mnt/d && cat /mnt/d/guest.txt && umount /mnt/d && "
                    "echo rebound-$((3+3))", timeout=60)
        res.check(name + "/after-reset", out is not None and "rebound-6" in out and
                  ("guest-token " + tokens["guest"]) in out, last(out))

        # vDPA -> built-in -> vhost-user -> vDPA, live, on the same image.
        vhu_sock = os.path.join(d, "vhu.sock")
        vhu = start_vhu(img, vhu_sock, os.path.join(args.workdir, name + ".vhu-qsd.log"))
        g = xplane_hops(res, name, args.wisp, g, argv, api, d,
                        [("builtin", "blk,path=%s,id=vdisk" % img),
                         ("vhost-user", "blk,vhost-user=%s,id=vdisk" % vhu_sock),
                         ("vdpa", "vdpa,path=%s,id=vdisk" % node)],
                        guest_cls, args.workdir)

        poweroff_exit_0(res, g, name)
        g.kill()
        g = None

        stop_vduse(qsd)
        qsd = None
        vhu.terminate()
        vhu.wait(timeout=10)
        vhu = None
        r = subprocess.run(["debugfs", "-R", "cat /guest.txt", img], capture_output=True, text=True)
        fsck = subprocess.run(["e2fsck", "-fn", img], capture_output=True, text=True)
        ok = ("guest-token " + tokens["guest"]) in r.stdout and fsck.returncode == 0
        res.check(name + "/image", ok,
                  "debugfs reads the guest's token from the image; e2fsck -fn clean" if ok else
                  "debugfs: %r; e2fsck status %d: %s" % (r.stdout.strip()[:80], fsck.returncode,
                                                         fsck.stdout.strip()[-200:]))
    finally:
        if g:
            g.kill()
        if qsd:
            stop_vduse(qsd)
        if vhu:
            vhu.kill()
        shutil.rmtree(d, ignore_errors=True)
