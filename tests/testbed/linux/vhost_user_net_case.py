"""The stock-Linux virtio-net-over-vhost-user case of guest_tests.py:
--device net,vhost-user=SOCK,mac=MAC served by DPDK's dpdk-testpmd with its
net_vhost port (--no-huge) in macswap mode, which sends every frame back
with its MAC addresses swapped.  DPDK has no config space for net, so wisp
serves it (the MAC, link up).  Checked:
  - the guest's virtio_net binds the device (0x0001) and the interface has
    the MAC given on wisp's command line;
  - frames flow both ways through testpmd: the guest sends six ARP
    requests; testpmd swaps the addresses and returns each frame, now
    addressed to the guest's MAC, which its interface counts as received;
    testpmd's own counters agree;
  - a device reset (the guest unbinds and rebinds virtio_net) stops and
    starts the rings on the backend, and frames flow again;
  - a snapshot is refused with one line naming the vhost-user data plane;
  - poweroff: wisp exits 0.
Kept in its own file so guest_tests.py stays readable."""

import os
import re
import shutil
import subprocess
import tempfile
import time

from vhost_vsock_case import poweroff_exit_0, snapshot_refused
from vsock_case import last

# scripts/setup.sh unpacks it there (dpdk-dev itself conflicts with the aarch64 build's
# libfdt-dev:arm64); the PMDs are loaded by name (their unversioned links are dpdk-dev's).
TESTPMD = next((p for p in ("/usr/local/libexec/wisp/dpdk-testpmd", "/usr/bin/dpdk-testpmd")
                if os.path.exists(p)), "dpdk-testpmd")
PMDS = "/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0"
MAC = "52:54:00:00:05:07"

CMD_UP = ("dev=$(ls /sys/class/net | grep -v '^lo$' | head -n1); echo net-dev $dev $(cat "
          "/sys/class/net/$dev/address); ip addr add 10.0.5.1/24 dev $dev && ip link set $dev up && "
          "echo up-$((1+1))")
# Six ARP requests (broadcast): testpmd returns each with the addresses swapped, so the
# guest receives frames addressed to its own MAC.
CMD_PING = ("dev=$(ls /sys/class/net | grep -v '^lo$' | head -n1); "
            "r0=$(cat /sys/class/net/$dev/statistics/rx_packets); "
            "busybox arping -c 6 -w 5 -I $dev 10.0.5.2 > /dev/null 2>&1; sleep 1; "
            "r1=$(cat /sys/class/net/$dev/statistics/rx_packets); echo rx-delta $((r1 - r0))")


def rx_delta(out):
    m = re.search(r"rx-delta (\d+)", out or "")
    return int(m.group(1)) if m else -1


def vhost_user_net_case(res, args, case, kernel, initrd, guest_cls):
    name = case.name
    d = tempfile.mkdtemp(prefix="wisp-vhn-")
    sock = os.path.join(d, "vhn.sock")
    log_path = os.path.join(args.workdir, name + ".testpmd.log")
    log = open(log_path, "w")
    # One core for both lcores (the testbed's L1 may have one CPU); no huge pages, no PCI.
    pmd = subprocess.Popen([TESTPMD, "--no-huge", "-m", "1024", "--no-pci", "--lcores=0@0,1@0",
                            "-d", PMDS + "/librte_net_vhost.so.23",
                            "-d", PMDS + "/librte_mempool_ring.so.23",
                            "--file-prefix=wisp%d" % os.getpid(),
                            "--vdev", "net_vhost0,iface=%s,queues=1" % sock, "--",
                            "--forward-mode=macswap", "--auto-start", "--total-num-mbufs=8192"],
                           stdout=log, stderr=subprocess.STDOUT,
                           stdin=subprocess.PIPE)  # it runs until its stdin gives a line or EOF
    g = None
    try:
        for _ in range(300):
            if os.path.exists(sock) or pmd.poll() is not None:
                break
            time.sleep(0.1)
        if not res.check(name + "/testpmd", os.path.exists(sock),
                         "net_vhost0 listening on %s" % sock if os.path.exists(sock)
                         else "no socket; exit %s" % pmd.poll()):
            return
        api = os.path.join(d, "api.sock")
        argv = [args.wisp, "run", "--kernel", kernel, "--initrd", initrd,
                "--cmdline", "console=ttyS0 panic=-1 loglevel=5 " + args.append,
                "--vcpus", str(case.vcpus), "--memory", "256M", "--serial", "stdio",
                "--device", "net,vhost-user=%s,mac=%s,id=vnet" % (sock, MAC), "--api-sock", api,
                "--snapshot-dir", d] + args.wisp_arg
        g = guest_cls(argv, os.path.join(args.workdir, name + ".log"))
        ready = g.expect("WISP-GUEST-READY", args.boot_timeout)
        if not res.check(name + "/boot", ready is not None, "userspace" if ready else "no userspace"):
            return
        out = g.run("for x in /sys/bus/virtio/devices/*; do echo vdev $(cat $x/device) "
                    "$(basename $(readlink $x/driver) 2>/dev/null); done")
        res.check(name + "/driver", out is not None and "vdev 0x0001 virtio_net" in out,
                  " ".join((out or "no answer").split()[-6:]))
        out = g.run(CMD_UP)
        res.check(name + "/mac-from-wisp", out is not None and MAC in out and "up-2" in out,
                  " ".join((out or "no answer").split()[-4:]))
        out = g.run(CMD_PING, timeout=60)
        res.check(name + "/frames-both-ways", rx_delta(out) >= 5,
                  "6 ARP requests out, %d frames back through testpmd's macswap" % rx_delta(out))

        out = g.run("x=$(grep -l 0x0001 /sys/bus/virtio/devices/*/device); x=${x%/device}; n=${x##*/}; "
                    "echo $n > /sys/bus/virtio/drivers/virtio_net/unbind; "
                    "echo $n > /sys/bus/virtio/drivers/virtio_net/bind; sleep 1; " + CMD_UP, timeout=60)
        out2 = g.run(CMD_PING, timeout=60) if out and "up-2" in out else None
        res.check(name + "/after-reset", rx_delta(out2) >= 5,
                  "%d frames back after the driver was rebound" % rx_delta(out2))

        snapshot_refused(res, g, name, api, "vhost-user")

        poweroff_exit_0(res, g, name)
        g.kill()
        g = None
        pmd.stdin.close()  # testpmd prints its port statistics on the way out
        try:
            pmd.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pmd.kill()
        log.flush()
        with open(log_path, errors="replace") as f:
            text = f.read()
        rx = [int(x) for x in re.findall(r"RX-packets:\s+(\d+)", text)]
        tx = [int(x) for x in re.findall(r"TX-packets:\s+(\d+)", text)]
        res.check(name + "/testpmd-counters", rx and tx and max(rx) >= 10 and max(tx) >= 10,
                  "testpmd RX %s TX %s" % (max(rx) if rx else None, max(tx) if tx else None))
    finally:
        if g:
            g.kill()
        if pmd.poll() is None:
            pmd.kill()
        log.close()
        shutil.rmtree(d, ignore_errors=True)
