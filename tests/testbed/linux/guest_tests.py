#!/usr/bin/env python3
"""Stock Linux guests under wisp: Debian's own kernels, booted as users do.

Runs wisp with a Debian kernel (its bzImage, or the ELF vmlinux inside it
through the PVH entry), ACPI on (wisp's default: the DSDT is the only way a
Debian kernel finds virtio-mmio devices), the kernel's own virtio and ext4
modules in a busybox initramfs, and virtio blk, net, rng and console
devices.  It talks to the guest over the serial console (and to a second
shell over the virtio console's socket), and checks what our freestanding
test guest cannot: that a real kernel gets every vCPU and a working timer,
finds and binds every device, mounts ext4 from the disk and leaves a file
the host reads back, exchanges packets with a peer on a tap in a network
namespace, reads /dev/hwrng, that a balloon gives guest memory back to the
host (balloon_case.py), and that poweroff, reboot and a panic end wisp
with status 0 within a bound.  One case boots with --acpi off, where the
check is that a Debian kernel finds no virtio device at all, and one boots
the same initramfs under QEMU microvm with ACPI as a reference: its guest
must see the same devices as wisp's.  One live-migrates the running guest
back and forth between two wisp processes (migrate_case) while it keeps
data in memory, a counter and a disk writer going, and checks after every
hop its memory, clock and devices, and the disk's records at the end.
One carries vsock and balloon across a live migration and a snapshot
restore (vsock_mig_case.py).

Meant to run where KVM is hardware virtualisation (the nested testbed, or a
hardware-backed /dev/kvm), as root (network namespaces, taps):
tests/testbed/linux/run picks the place.

Prints one line per check and ends with "N passed, N failed".
"""
import argparse
import collections
import functools
import glob
import os
import re
import secrets
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time

from balloon_case import balloon_case
from vsock_case import vsock_case
from vsock_mig_case import vsock_mig_case
from vhost_vsock_case import api_put, vhost_vsock_case
from vdpa_case import vdpa_case
from vhost_user_fs_case import vhost_user_fs_case
from vhost_user_restart_case import vduse_restart_case, vhost_user_restart_case
from vhost_user_net_case import vhost_user_net_case
from linux_common import (BAD_LOG, BENIGN_LOG, BOOT_TIMEOUT, END_TIMEOUT, NET_GUEST, NET_HOST,
                          NET_PREFIX, NO_ACPI_LOG, PCI_CASE, Guest, NetNs, Results, console_talk,
                          make_disk, unexplained, vmm_argv)
from migrate_case import migrate_case

# virtio device IDs (the "device" file under /sys/bus/virtio/devices) and the
# drivers that must bind them.
VIRTIO = {"net": ("0x0001", "virtio_net"), "blk": ("0x0002", "virtio_blk"),
          "console": ("0x0003", "virtio_console"), "rng": ("0x0004", "virtio_rng")}
ALL_DEVICES = ("blk", "net", "rng", "console")


# migrate: live-migrate the running guest between two wisp processes
# (migrate_case) instead of the one-boot checks.
# balloon: the virtio-balloon boots of balloon_case.py instead.
Case = collections.namedtuple("Case", "name vmm ver image vcpus devices end acpi peer migrate balloon",
                              defaults=(False, False))
CASES = [
    # Ends with Firecracker's SendCtrlAltDel through the API: the i8042's keyboard (DSDT KBD0).
    Case("linux-6.1-bzimage-2cpu", "wisp", "6.1", "bzimage", 2, ALL_DEVICES, "ctrl-alt-del", True, None),
    Case("linux-6.12-pvh-2cpu", "wisp", "6.12", "pvh", 2, ALL_DEVICES, "reboot", True, None),
    Case("linux-6.1-pvh-1cpu", "wisp", "6.1", "pvh", 1, ("rng",), "panic", True, None),
    Case("linux-6.12-bzimage-2cpu", "wisp", "6.12", "bzimage", 2, ALL_DEVICES, "panic", True, None),
    # --acpi off: wisp describes the devices on the command line only
    # (virtio_mmio.device=), which Debian's kernels cannot read.
    Case("linux-6.12-bzimage-1cpu-acpi-off", "wisp", "6.12", "bzimage", 1, ("blk", "rng"), "reboot",
         False, None),
    # The reference: the same kernel, initramfs and devices under QEMU.
    # Live migration back and forth between two wisp processes.  No net
    # device: the tap belongs to the source process until it exits, so the
    # destination would need a second tap on a bridge in the namespace; the
    # migrated devices here are blk (shared image), rng and console (a socket
    # per process).
    Case("linux-6.12-bzimage-2cpu-migrate", "wisp", "6.12", "bzimage", 2, ("blk", "rng", "console"),
         "poweroff", True, None, True),
    # virtio-balloon: free page reporting and inflation give memory back.
    Case("linux-6.12-bzimage-balloon", "wisp", "6.12", "bzimage", 1, (), "poweroff", True, None,
         False, True),
    # virtio-vsock against the kernel's driver (vsock_case.py); wisp only.
    Case("linux-6.12-bzimage-1cpu-vsock", "wisp", "6.12", "bzimage", 1, (), "poweroff", True, None),
    # vsock and balloon across a live migration and a snapshot/restore (vsock_mig_case.py).
    Case("linux-6.12-bzimage-1cpu-vsock-balloon-mig", "wisp", "6.12", "bzimage", 1, (), "poweroff", True,
         None),
    # The same device on the L1 kernel's vhost-vsock (vhost_vsock_case.py): AF_VSOCK both ways.
    Case("linux-6.12-bzimage-1cpu-vhost-vsock", "wisp", "6.12", "bzimage", 1, (), "poweroff", True,
         None),
    # blk on a real vDPA device in L1 (VDUSE; vdpa_case.py): the guest's own virtio_blk driver.
    Case("linux-6.12-bzimage-1cpu-vdpa-blk", "wisp", "6.12", "bzimage", 1, (), "poweroff", True, None),
    # virtio-fs on Debian's virtiofsd over vhost-user (vhost_user_fs_case.py).
    Case("linux-6.12-bzimage-1cpu-vhost-user-fs", "wisp", "6.12", "bzimage", 1, (), "poweroff", True,
         None),
    # blk over vhost-user, the daemon killed and restarted mid-stream (vhost_user_restart_case.py).
    Case("linux-6.12-bzimage-1cpu-vhost-user-blk-restart", "wisp", "6.12", "bzimage", 1, (),
         "poweroff", True, None),
    # blk on VDUSE, its qemu-storage-daemon killed and restarted mid-stream (the same file).
    Case("linux-6.12-bzimage-1cpu-vduse-blk-restart", "wisp", "6.12", "bzimage", 1, (),
         "poweroff", True, None),
    # net over vhost-user: DPDK's testpmd (net_vhost, macswap) in L1 (vhost_user_net_case.py).
    Case("linux-6.12-bzimage-1cpu-vhost-user-net", "wisp", "6.12", "bzimage", 1, (), "poweroff", True,
         None),
    Case("qemu-microvm-6.1-bzimage-2cpu", "qemu", "6.1", "bzimage", 2, ALL_DEVICES, "poweroff", True,
         "linux-6.1-bzimage-2cpu"),
]
PCI_HOST = ("0x1b36", "0x0008", "0x060000")  # devices/pci/pci.h PCI_HOST_*
PCI_BAD_LOG = (r"([Pp][Cc][Ii]|PNP0A08|MMCONFIG|ECAM|_PRT).*([Ff]ail|[Ee]rror|[Ff]atal|[Cc]onflict|"
               r"can't|cannot|not reserved|[Ii]nvalid|partially|[Ww]arn)")


def pci_checks(res, g, name):
    """The host bridge through sysfs, and dmesg quiet about PCI."""
    out = g.run("cd /sys/bus/pci/devices/0000:00:00.0 && cat vendor device class; cd /") or ""
    got = tuple(out.split()[-3:])
    res.check(name + "/pci-host-bridge", got == PCI_HOST,
              "00:00.0 vendor/device/class %s, want %s" % (" ".join(got) or "missing", " ".join(PCI_HOST)))
    found = g.run("dmesg | grep -E %s" % shlex.quote(PCI_BAD_LOG), timeout=60)
    bad = [l.strip() for l in (found or "").splitlines() if re.search(PCI_BAD_LOG, l)]
    res.check(name + "/pci-log-clean", found is not None and not bad,
              "no PCI or ACPI complaint in dmesg" if found is not None and not bad
              else "; ".join(bad[:4]) if bad else "dmesg did not finish")


def extract_vmlinux(bzimage, out):
    """Unpack the ELF vmlinux a bzImage carries (its payload, per the boot protocol)."""
    data = open(bzimage, "rb").read()
    setup_sects = data[0x1f1] or 4
    off, length = struct.unpack_from("<II", data, 0x248)
    payload = data[(setup_sects + 1) * 512 + off:][:length]
    # The build appends the uncompressed size as 4 little-endian bytes.
    size = struct.unpack_from("<I", payload, len(payload) - 4)[0]
    if payload[:4] == b"\x28\xb5\x2f\xfd":
        tool = ["zstd", "-dcq"]
    elif payload[:6] == b"\xfd7zXZ\x00":
        tool = ["xz", "-dcq"]
    elif payload[:2] == b"\x1f\x8b":
        tool = ["gzip", "-dc"]
    else:
        raise RuntimeError("%s: unknown payload compression %s" % (bzimage, payload[:6].hex()))
    r = subprocess.run(tool, input=payload[:-4], capture_output=True)
    elf = r.stdout
    if elf[:4] != b"\x7fELF" or len(elf) != size:
        raise RuntimeError("%s: payload decompressed to %d bytes, expected an ELF of %d"
                           % (bzimage, len(elf), size))
    with open(out + ".tmp", "wb") as f:
        f.write(elf)
    os.replace(out + ".tmp", out)


def has_pvh_note(elf_path):
    """True if the ELF has a Xen PVH entry note (type 18, name "Xen")."""
    data = open(elf_path, "rb").read()
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
            name = data[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == 18:
                return True
            pos += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    return False


# Guest-side commands: short (the serial port is slow in the testbed) and
# printing only what the checks need.
CMD_MODULES = ("for m in $(cat /etc/modules.order); do n=$(echo ${m%.ko} | tr - _); "
               "grep -q \"^$n \" /proc/modules && echo mod-ok $n || echo mod-missing $n; done")
CMD_DEVICES = ("echo lnro $(ls -d /sys/bus/platform/devices/LNRO0005:* 2>/dev/null | wc -l) "
               "$(ls -d /sys/bus/platform/drivers/virtio-mmio/LNRO0005:* 2>/dev/null | wc -l); "
               "for d in /sys/bus/virtio/devices/*; do [ -e $d/device ] && "
               "echo vdev $(cat $d/device) $(basename $(readlink $d/driver) 2>/dev/null); done; true")
CMD_BLK = ("i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; "
           "mkdir -p /mnt/d && mount -t ext4 /dev/vda /mnt/d && cat /mnt/d/hello.txt && "
           "echo guest-token %s > /mnt/d/guest.txt && sync && umount /mnt/d && echo blk-ok-$((1+1))")
CMD_RNG = ("echo rng-current $(cat /sys/class/misc/hw_random/rng_current); for i in 1 2; do "
           "echo rng-data $(dd if=/dev/hwrng bs=32 count=1 2>/dev/null | od -An -tx1 | tr -d ' \\n'); done")
CMD_NET = ("dev=$(ls /sys/class/net | grep -v '^lo$' | head -n1); echo net-dev $dev; "
           "ip addr add %s/%d dev $dev && ip link set $dev up && ping -c 3 -w 15 %s | grep -E 'transmitted'")


def ping_summary(text):
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def ctrl_alt_del(res, g, name, api):
    """The guest's keyboard driver bound to wisp's i8042, then SendCtrlAltDel through the API."""
    out = g.run("cat /sys/class/input/input*/name 2>/dev/null; dmesg | grep -E 'serio: i8042 KBD'")
    res.check(name + "/keyboard", out is not None and "AT Translated Set 2 keyboard" in out and
              "i8042 KBD port at 0x60,0x64 irq" in out,
              " | ".join(l.strip() for l in (out or "no answer").splitlines()[-3:]))
    status, body = api_put(api, "/actions", {"action_type": "SendCtrlAltDel"})
    res.check(name + "/send-ctrl-alt-del", status == 204, "PUT /actions SendCtrlAltDel: HTTP %d %s" %
              (status, body.strip()[-120:]))


def session_checks(res, args, case, g, name, disk, tokens, sock, net, seen):
    """Everything checked while the guest runs, in one boot."""
    out = g.run(CMD_MODULES)
    ok_mods = re.findall(r"mod-ok (\S+)", out or "")
    missing = re.findall(r"mod-missing (\S+)", out or "")
    res.check(name + "/modules", out is not None and bool(ok_mods) and not missing,
              "%d loaded (%s)" % (len(ok_mods), " ".join(ok_mods)) if not missing and ok_mods
              else "not loaded: %s" % " ".join(missing) if missing else "no answer")

    out = g.run(CMD_DEVICES)
    m = re.search(r"lnro (\d+) (\d+)", out or "")
    lnro, bound = (int(m.group(1)), int(m.group(2))) if m else (-1, -1)
    vdevs = sorted(re.findall(r"vdev (0x[0-9a-f]+) ?(\S*)", out or ""))
    seen[name] = vdevs
    if case.acpi:
        want = sorted(VIRTIO[d] for d in case.devices)
        # wisp describes exactly its devices; QEMU microvm describes every
        # transport it has, most of them empty (virtio-mmio skips those).
        lnro_ok = lnro == len(case.devices) if case.vmm == "wisp" else lnro >= len(case.devices)
        res.check(name + "/devices", m is not None and lnro_ok and bound == len(case.devices) and vdevs == want,
                  "%d LNRO0005 in the DSDT, %d bound to virtio-mmio; virtio: %s" %
                  (lnro, bound, ", ".join("%s %s" % v for v in vdevs) or "none")
                  + ("" if vdevs == want else "; want %s" % ", ".join("%s %s" % v for v in want)))
    else:
        cmdl = g.run("grep -o 'virtio_mmio.device=[^ ]*' /proc/cmdline | wc -l") or ""
        n_cmdline = int(cmdl.split()[-1]) if cmdl.split() and cmdl.split()[-1].isdigit() else -1
        res.check(name + "/no-devices", lnro == 0 and not vdevs and n_cmdline == len(case.devices),
                  "wisp put %d virtio_mmio.device= on the command line; the kernel found %d LNRO0005 "
                  "and %d virtio devices (Debian's kernels lack CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES)"
                  % (n_cmdline, max(lnro, 0), len(vdevs)))

    if case.peer:
        peer = seen.get(case.peer)
        res.check(name + "/same-devices-as-wisp", peer is not None and peer == vdevs,
                  "%s under wisp saw %s" % (case.peer, ", ".join("%s %s" % v for v in peer))
                  if peer is not None and peer == vdevs else
                  "not compared: %s did not run" % case.peer if peer is None else
                  "wisp's guest saw %s, QEMU's %s" % (peer, vdevs))

    before = g.run("grep LOC: /proc/interrupts")
    t0 = time.monotonic()
    slept = g.run("sleep 1", timeout=30)
    dt = time.monotonic() - t0
    after = g.run("grep LOC: /proc/interrupts")

    def loc(text):
        m = re.search(r"LOC:((?:\s+\d+)+)", text or "")
        return sum(int(x) for x in m.group(1).split()) if m else 0
    ok = before is not None and slept is not None and after is not None
    res.check(name + "/timer", ok and 0.9 <= dt <= 20 and loc(after) > loc(before),
              "sleep 1 took %.2f s; LAPIC timer interrupts %d -> %d" % (dt, loc(before), loc(after))
              if ok else "no answer")

    if not case.acpi:
        return
    if "blk" in case.devices:
        out = g.run(CMD_BLK % tokens["guest"], timeout=60)
        ok = out is not None and ("host-token " + tokens["host"]) in out and "blk-ok-2" in out
        res.check(name + "/blk-ext4", ok,
                  "mounted /dev/vda (ext4), read the host's file, wrote guest.txt, unmounted" if ok
                  else "failed: %s" % (out or "no answer").strip()[-200:])
    if "rng" in case.devices:
        out = g.run(CMD_RNG) or ""
        cur = re.search(r"rng-current (\S*)", out)
        data = re.findall(r"rng-data ([0-9a-f]*)", out)
        ok = (cur is not None and cur.group(1).startswith("virtio_rng") and len(data) == 2
              and all(len(d) == 64 for d in data) and data[0] != data[1]
              and all(len(set(d[i:i + 2] for i in range(0, 64, 2))) > 1 for d in data))
        res.check(name + "/rng", ok, "rng_current %s; /dev/hwrng gave %s..., %s..." %
                  (cur.group(1) if cur else "?", data[0][:16] if data else "?",
                   data[1][:16] if len(data) > 1 else "?"))
    if "console" in case.devices:
        ok, detail = console_talk(sock)
        res.check(name + "/console", ok, detail)
    if "net" in case.devices:
        out = g.run(CMD_NET % (NET_GUEST, NET_PREFIX, NET_HOST), timeout=40)
        gt, gr = ping_summary(out)
        r = subprocess.run(net.wrap([args.busybox, "ping", "-c", "3", "-w", "15", NET_GUEST]),
                           capture_output=True, text=True)
        ht, hr = ping_summary(r.stdout)
        dev = re.search(r"net-dev (\S+)", out or "")
        res.check(name + "/net", gt > 0 and gr == gt and ht > 0 and hr == ht,
                  "guest %s %s -> peer %s: %d/%d replies; peer in netns -> guest %s: %d/%d replies"
                  % (dev.group(1) if dev else "?", NET_GUEST, NET_HOST, gr, gt, NET_GUEST, hr, ht))


def boot_case(res, args, case, kernel, initrd, seen):
    name = case.name
    cmdline = "console=ttyS0 panic=-1 loglevel=5 " + args.append
    disk = os.path.join(args.workdir, name + ".img")
    tokens = {"host": secrets.token_hex(8), "guest": secrets.token_hex(8)}
    sockdir = tempfile.mkdtemp(prefix="wisp-lt-")
    sock = os.path.join(sockdir, "console.sock")
    if "blk" in case.devices:
        make_disk(disk, tokens["host"])
    net = NetNs("wlt%d" % (os.getpid() % 100000)) if "net" in case.devices and case.acpi else None
    g = None
    try:
        if net:
            net.__enter__()
        argv = vmm_argv(args, case, kernel, initrd, cmdline, disk, net.tap if net else None, sock)
        if net:
            argv = net.wrap(argv)
        log_path = os.path.join(args.workdir, name + ".log")
        g = Guest(argv, log_path)
        mods = g.expect(r"wisp-guest: modules (\d+), failed:(.*?)\r?\n", args.boot_timeout)
        m = g.expect(r"wisp-guest: kernel (\S+), cpus online (\S+)\r?\n", 30) if mods else None
        boot_s = time.monotonic() - g.start
        ready = m is not None and g.expect("WISP-GUEST-READY", 5)
        if not res.check(name + "/boot", ready,
                         "userspace in %.1f s (%s)" % (boot_s, m.group(1).decode()) if ready else
                         "no userspace: %s (log: %s)" % (
                             "VMM exited with status %s" % g.proc.poll() if g.proc.poll() is not None
                             else "nothing after %d s" % args.boot_timeout, log_path)):
            return
        want_online = "0" if case.vcpus == 1 else "0-%d" % (case.vcpus - 1)
        online = m.group(2).decode()
        res.check(name + "/vcpus-online", online == want_online,
                  "online %s, want %s" % (online, want_online))

        session_checks(res, args, case, g, name, disk, tokens, sock, net, seen)
        if case.name == PCI_CASE:
            pci_checks(res, g, name)

        # Only the matching lines cross the (slow, emulated) serial port.
        found = g.run("dmesg | grep -E %s" % shlex.quote("|".join(BAD_LOG + BENIGN_LOG)), timeout=60)
        benign = () if case.acpi else (NO_ACPI_LOG,)
        bad = unexplained(found or "", benign)
        res.check(name + "/log-clean", found is not None and not bad,
                  ("no platform faults in dmesg" if case.acpi else
                   "no platform faults in dmesg besides the expected \"A valid RSDP was not found\"")
                  if found is not None and not bad
                  else "; ".join(bad[:4]) if bad else "dmesg did not finish")

        if case.end == "ctrl-alt-del":
            ctrl_alt_del(res, g, name, os.path.join(sockdir, "api.sock"))
        else:
            g.send({"poweroff": "poweroff -f", "reboot": "reboot -f",
                    "panic": "echo c > /proc/sysrq-trigger"}[case.end])
        t0 = time.monotonic()
        st = g.wait_exit(END_TIMEOUT)
        detail = ("exit status %s after %.1f s" % (st, time.monotonic() - t0)
                  if st is not None else "still running after %d s" % END_TIMEOUT)
        ok = st == 0
        if case.end == "ctrl-alt-del":
            # No init here turns C_A_D off: the kernel restarts at once (ACPI reset register).
            logged = re.search(r"reboot: Restarting system", g.text()) is not None
            ok = ok and logged
            detail += ", the guest restarted" if logged else ", no restart line in the log"
        if case.end == "panic":
            # With panic=-1 on the command line a panic restarts at once;
            # the VMM sees the reset and exits 0 (README, "Exit status").
            logged = re.search(r"Kernel panic - not syncing", g.text()) is not None
            ok = ok and logged
            detail += ", panic logged" if logged else ", no panic line in the log"
            if not logged:
                # Say how the VMM saw the end, and what the guest printed last.
                lines = [l.strip() for l in g.text().splitlines() if l.strip()]
                vmm = [l for l in lines if l.startswith("wisp:")][-2:]
                detail += "; last lines: %s" % " | ".join(vmm + lines[-3:])
        if st is None:
            tail = [l for l in g.text().splitlines() if l.strip()][-3:]
            detail += "; last lines: %s" % " | ".join(l.strip() for l in tail)
        res.check("%s/%s" % (name, case.end), ok, detail)
        g.kill()

        if "blk" in case.devices and case.acpi and st is not None:
            r = subprocess.run(["debugfs", "-R", "cat /guest.txt", disk], capture_output=True, text=True)
            fsck = subprocess.run(["e2fsck", "-fn", disk], capture_output=True, text=True)
            ok = ("guest-token " + tokens["guest"]) in r.stdout and fsck.returncode == 0
            res.check(name + "/blk-host", ok,
                      "debugfs reads the guest's token from the image; e2fsck -fn clean" if ok else
                      "debugfs: %r; e2fsck status %d: %s" % (r.stdout.strip()[:80], fsck.returncode,
                                                             fsck.stdout.strip()[-200:]))
    finally:
        if g:
            g.kill()
        if net:
            net.__exit__(None, None, None)
        shutil.rmtree(sockdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wisp", required=True)
    ap.add_argument("--kernels", required=True, help="folder with guest-6.1/ and guest-6.12/ trees")
    ap.add_argument("--initrd-dir", required=True, help="folder with linux-initramfs-VER.cpio.gz")
    ap.add_argument("--busybox", required=True, help="static busybox (its ping is the peer's)")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64") or "qemu-system-x86_64")
    ap.add_argument("--only", default="", help="run only cases whose name matches this regular expression")
    ap.add_argument("--append", default="", help="more kernel command line (debugging)")
    ap.add_argument("--wisp-arg", action="append", default=[], help="one more wisp option")
    ap.add_argument("--boot-timeout", type=int, default=BOOT_TIMEOUT)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    t_start = time.monotonic()

    res = Results()
    kernels = {}
    for ver in ("6.1", "6.12"):
        bz = glob.glob(os.path.join(args.kernels, "guest-" + ver, "boot", "vmlinuz-*"))
        initrd = os.path.join(args.initrd_dir, "linux-initramfs-%s.cpio.gz" % ver)
        if not res.check("kernel-%s/found" % ver, len(bz) == 1 and os.path.exists(initrd),
                         "%s, %s" % (bz[0], os.path.basename(initrd)) if bz and os.path.exists(initrd)
                         else "missing %s" % ("kernel" if not bz else initrd)):
            continue
        elf = os.path.join(args.workdir, "vmlinux-" + ver)
        try:
            if not os.path.exists(elf) or os.path.getmtime(elf) < os.path.getmtime(bz[0]):
                extract_vmlinux(bz[0], elf)
            pvh = has_pvh_note(elf)
            res.check("kernel-%s/vmlinux-pvh-note" % ver, pvh, elf)
        except (RuntimeError, OSError) as e:
            res.check("kernel-%s/vmlinux-pvh-note" % ver, False, str(e))
            elf = None
        kernels[ver] = ({"bzimage": bz[0], "pvh": elf}, initrd)

    seen = {}
    for case in CASES:
        if args.only and not re.search(args.only, case.name):
            continue
        if case.ver not in kernels or kernels[case.ver][0][case.image] is None:
            res.check(case.name, False, "no kernel image")
            continue
        t0 = time.monotonic()
        try:
            run_case = migrate_case if case.migrate else functools.partial(boot_case, seen=seen)
            if case.balloon:
                run_case = functools.partial(balloon_case, guest_cls=Guest,
                                             boot_timeout=args.boot_timeout,
                                             log_patterns=BAD_LOG + BENIGN_LOG,
                                             log_filter=unexplained)
            elif case.name.endswith("-vhost-user-blk-restart"):
                run_case = functools.partial(vhost_user_restart_case, guest_cls=Guest)
            elif case.name.endswith("-vduse-blk-restart"):
                run_case = functools.partial(vduse_restart_case, guest_cls=Guest)
            elif case.name.endswith("-vhost-user-net"):
                run_case = functools.partial(vhost_user_net_case, guest_cls=Guest)
            elif case.name.endswith("-vhost-user-fs"):
                run_case = functools.partial(vhost_user_fs_case, guest_cls=Guest)
            elif case.name.endswith("-vdpa-blk"):
                run_case = functools.partial(vdpa_case, guest_cls=Guest)
            elif case.name.endswith("-vhost-vsock"):
                run_case = functools.partial(vhost_vsock_case, guest_cls=Guest)
            elif case.name.endswith("-vsock"):
                run_case = functools.partial(vsock_case, guest_cls=Guest)
            elif case.name.endswith("-vsock-balloon-mig"):
                run_case = functools.partial(vsock_mig_case, guest_cls=Guest)
            run_case(res, args, case, kernels[case.ver][0][case.image], kernels[case.ver][1])
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            res.check(case.name + "/setup", False, str(e))
        print("# %s: %.0f s" % (case.name, time.monotonic() - t0), flush=True)

    print("# all cases: %.0f s" % (time.monotonic() - t_start), flush=True)
    print("%d passed, %d failed" % (res.passed, res.failed), flush=True)
    return 0 if res.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
