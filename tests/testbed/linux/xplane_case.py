"""Live migration of a stock Linux guest across data planes, for the vDPA case
(vdpa_case.py): the guest's ext4 disk moves from the vDPA device to wisp's
built-in blk, to a vhost-user-blk export of the same image, and back to the
vDPA device, while the guest appends numbered records to a file (each
followed by sync) and a reader re-reads the file from the device (caches
dropped).  After every hop: the writer and reader are alive, a 1 MiB file
written and read back (caches dropped, so the read comes from the new data
plane) has the same md5, and the device is the same virtio_blk disk.  At
the end the records are consecutive (checked on the image from L1 by the
caller's debugfs/e2fsck step and here from the guest).
Kept in its own file so vdpa_case.py stays readable."""

import os
import re
import subprocess
import time

from migrate_case import strip_options
from vsock_case import last

MIG_TIMEOUT = 180  # s, one `wisp migrate`
WORKLOAD = ("mkdir -p /mnt/d && mount -t ext4 /dev/vda /mnt/d && rm -f /tmp/stop && "
            "(n=0; while [ ! -e /tmp/stop ]; do n=$((n+1)); echo \"rec $n\" >> /mnt/d/records.txt; sync; "
            "sleep 0.1; done; echo $n > /tmp/last) > /dev/null 2>&1 & echo $! > /tmp/wr.pid; "
            "(while [ ! -e /tmp/stop ]; do echo 3 > /proc/sys/vm/drop_caches; "
            "tail -n1 /mnt/d/records.txt > /dev/null; sleep 0.2; done) > /dev/null 2>&1 & "
            "echo $! > /tmp/rd.pid; echo workload-$((2+3))")
AFTER_HOP = ("kill -0 $(cat /tmp/wr.pid) && kill -0 $(cat /tmp/rd.pid) && echo loops-alive; "
             "dd if=/dev/urandom of=/mnt/d/hop%d bs=64k count=16 2>/dev/null; sync; "
             "a=$(md5sum < /mnt/d/hop%d); echo 3 > /proc/sys/vm/drop_caches; "
             "b=$(md5sum < /mnt/d/hop%d); [ \"$a\" = \"$b\" ] && echo md5-same-$((4+4)); "
             "echo recs $(tail -n1 /mnt/d/records.txt)")
STOP = ("touch /tmp/stop; i=0; while kill -0 $(cat /tmp/wr.pid) 2>/dev/null && [ $i -lt 100 ]; "
        "do sleep 0.1; i=$((i+1)); done; n=$(cat /tmp/last); "
        "c=$(grep -c '^rec ' /mnt/d/records.txt); s=$(awk '$2 != NR {print \"gap\", NR; exit}' "
        "/mnt/d/records.txt); echo last $n count $c ${s:-nogap}; umount /mnt/d && echo umount-ok-$((1+1))")


def start_vhu(img, sock, log):
    """qemu-storage-daemon exporting `img` over vhost-user-blk at `sock` (no image locks:
    the vDPA export holds the same image)."""
    p = subprocess.Popen(["qemu-storage-daemon", "--blockdev",
                          "driver=file,node-name=d,filename=%s,locking=off" % img,
                          "--export", "type=vhost-user-blk,id=u0,node-name=d,addr.type=unix,"
                          "addr.path=%s,writable=on" % sock],
                         stdout=open(log, "w"), stderr=subprocess.STDOUT)
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.1)
    return p


def xplane_hops(res, name, wisp, g, argv, api, sockdir, planes, guest_cls, logdir):
    """Move guest `g` (wisp started with `argv`, its API at `api`) through
    `planes`, a list of (label, --device value).  Returns the guest on the
    process that runs the VM at the end (the caller powers it off or kills
    it); every other process has been killed."""
    out = g.run(WORKLOAD, timeout=60)
    if not res.check(name + "/xplane-workload", out is not None and "workload-5" in out, last(out)):
        return g
    time.sleep(2)
    apis = [api, os.path.join(sockdir, "api-x.sock")]
    side = 0
    for hop, (label, dev) in enumerate(planes, 1):
        hn = "%s/xplane-hop%d-%s" % (name, hop, label)
        other = 1 - side
        for p in (apis[other],):
            if os.path.exists(p):
                os.unlink(p)
        path = os.path.join(sockdir, "xmig-%d.sock" % hop)
        dargv = strip_options(argv, ("--kernel", "--initrd", "--cmdline", "--api-sock", "--device"))
        dargv += ["--device", dev, "--api-sock", apis[other], "--incoming", "unix:" + path,
                  "--log-level", "info"]
        d = guest_cls(dargv, os.path.join(logdir, "%s.xplane%d.log" % (name, hop)))
        if not d.expect(r"waiting for the migration stream", 30):
            res.check(hn, False, "the destination did not listen (log: %s)" % d.log.name)
            d.kill()
            return g
        t0 = time.monotonic()
        try:
            r = subprocess.run([wisp, "migrate", "--api-sock", apis[side], "--to", "unix:" + path],
                               capture_output=True, text=True, timeout=MIG_TIMEOUT)
            rc, err = r.returncode, r.stderr
        except subprocess.TimeoutExpired as e:
            rc, err = None, (e.stderr or b"").decode(errors="replace") + " (timed out)"
        took = time.monotonic() - t0
        src_st = g.wait_exit(20) if rc == 0 else g.proc.poll()
        loaded = d.expect(r"received and loaded in (\d+) ms; running", 20) if rc == 0 else None
        cm = re.search(r"completed in (\d+) ms, guest paused (\d+) ms", err)
        if not res.check(hn, rc == 0 and src_st == 0 and loaded is not None,
                         "wisp migrate exit %s in %.2f s (%s), source exit %s" % (
                             rc, took, "guest paused %s ms" % cm.group(2) if cm else err.strip()[-200:],
                             src_st)):
            if rc == 0:  # the VM moved even if something else went wrong
                g.kill()
                return d
            d.kill()
            return g
        g.kill()
        g, side = d, other
        out = g.run(AFTER_HOP % (hop, hop, hop), timeout=120)
        m = re.search(r"recs rec (\d+)", out or "")
        res.check(hn + "-guest", out is not None and "loops-alive" in out and "md5-same-8" in out and m,
                  "writer and reader alive, 1 MiB written and read back from the device with the "
                  "same md5, records up to %s" % m.group(1) if out and m and "md5-same-8" in out
                  and "loops-alive" in out else last(out))
    out = g.run(STOP, timeout=60)
    m = re.search(r"last (\d+) count (\d+) (\S+)", out or "")
    res.check(name + "/xplane-records", m is not None and m.group(1) == m.group(2) and
              m.group(3) == "nogap" and "umount-ok-2" in out,
              "records 1..%s consecutive across the hops, unmounted" % m.group(1) if m else last(out))
    return g
