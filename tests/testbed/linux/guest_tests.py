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
import select
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

from balloon_case import balloon_case
from vsock_case import vsock_case
from vsock_mig_case import vsock_mig_case
from vhost_vsock_case import api_put, vhost_vsock_case

BOOT_TIMEOUT = 180  # s; 10-20 s typical in the testbed
CMD_TIMEOUT = 60
END_TIMEOUT = 30  # poweroff, reboot and panic must end the VMM within this

# Lines a clean boot must not log.  Each names a fault of the VMM's platform
# description (ACPI tables, interrupt routing, devices) or a timer it failed
# to deliver, not of QEMU's software CPU.
BAD_LOG = [
    r"APIC timer disabled",
    r"verification failure",
    r"IO-APIC \+ timer doesn't work",
    r"MP-BIOS bug",
    r"\[Firmware Bug\]",
    r"\[Firmware Warn\]",
    r"ACPI Error",
    r"ACPI BIOS Error",
    r"ACPI Warning",
    r"virtio_mmio.*([Ee]rror|failed)",
    r"WARNING: CPU",
    r"BUG: ",
    r"Call Trace",
    r"timer interrupt not working",
    r"clocksource .* unstable",
]
# Known and not wisp's: QEMU's TCG CPU model reports an XSAVE area size that
# disagrees with its own CPUID; Linux warns, with a WARNING line and a call
# trace from fpu/xstate.c (the same under QEMU-KVM in the testbed).
BENIGN_LOG = [r"XSAVE consistency problem", r"WARNING: CPU: .*/fpu/xstate\.c"]
# With --acpi off there are no tables at all, and a kernel built with ACPI
# says so once; that is the point of the case, not a fault.
NO_ACPI_LOG = r"ACPI BIOS Error \(bug\): A valid RSDP was not found"

# virtio device IDs (the "device" file under /sys/bus/virtio/devices) and the
# drivers that must bind them.
VIRTIO = {"net": ("0x0001", "virtio_net"), "blk": ("0x0002", "virtio_blk"),
          "console": ("0x0003", "virtio_console"), "rng": ("0x0004", "virtio_rng")}
ALL_DEVICES = ("blk", "net", "rng", "console")

# The guest's and the peer's addresses on the tap's link.
NET_HOST, NET_GUEST, NET_PREFIX = "10.0.2.1", "10.0.2.15", 24

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
    Case("qemu-microvm-6.1-bzimage-2cpu", "qemu", "6.1", "bzimage", 2, ALL_DEVICES, "poweroff", True,
         "linux-6.1-bzimage-2cpu"),
]


# This case also runs with --pci on: wisp's host bridge at 00:00.0 must
# appear in sysfs with its ids and raise no PCI/ACPI complaint (pci_checks).
PCI_CASE = "linux-6.12-bzimage-2cpu"
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


def unexplained(lines, benign=()):
    """The bad lines of a dmesg extract, less the benign ones (BENIGN_LOG and
    `benign`) and one call trace per benign warning."""
    lines = [l.strip() for l in lines.splitlines() if l.strip()]
    lines = [l for l in lines if not any(re.search(p, l) for p in benign)]
    benign_warnings = sum(1 for l in lines if re.search(BENIGN_LOG[1], l))
    out = []
    for l in lines:
        if any(re.search(p, l) for p in BENIGN_LOG):
            continue
        if "Call Trace" in l and benign_warnings > 0:
            benign_warnings -= 1
            continue
        if any(re.search(p, l) for p in BAD_LOG):
            out.append(l)
    return out


class Guest:
    """A VMM running one guest, with an expect-style view of its serial output."""

    def __init__(self, argv, log_path):
        self.argv = argv
        self.buf = b""
        self.pos = 0
        self.log = open(log_path, "wb")
        self.log.write(("# %s\n" % " ".join(shlex.quote(a) for a in argv)).encode())
        self.start = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, bufsize=0)
        os.set_blocking(self.proc.stdout.fileno(), False)

    def _pump(self, timeout):
        fd = self.proc.stdout.fileno()
        r, _, _ = select.select([fd], [], [], max(0.0, timeout))
        if not r:
            return True
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if not data:
            return False
        self.buf += data
        self.log.write(data)
        self.log.flush()
        return True

    def expect(self, pattern, timeout):
        """Wait for `pattern` after the last match; returns the match or None."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or not self._pump(min(left, 0.5)):
                m = rx.search(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                return m

    def send(self, line):
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def run(self, cmd, timeout=CMD_TIMEOUT):
        """Run a shell command in the guest; returns its output (text) or None."""
        tag = "@%d@" % int(time.monotonic() * 1000)
        # The end marker is computed by the guest shell, so the terminal's echo
        # of the command line cannot satisfy it.
        self.send("%s; echo \"${X:-END}-%s-$((6*7))\"" % (cmd, tag))
        # Not anchored to a line end: a kernel message may follow on the same
        # line (the console is shared with printk).
        m = self.expect(r"END-%s-42(?!\d)" % re.escape(tag), timeout)
        if not m:
            return None
        out = self.buf[:m.start()].decode(errors="replace")
        # The output of cmd follows the echoed command line.
        idx = out.rfind(tag)
        return out[idx + len(tag):] if idx >= 0 else out

    def wait_exit(self, timeout):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            if not self._pump(0.2):
                try:
                    self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        st = self.proc.poll()
        if st is not None:
            # The VMM has exited, but what it wrote last may still sit in the
            # pipe: read to end of file before anyone looks at the log.
            end = time.monotonic() + 5
            while time.monotonic() < end and self._pump(0.2):
                pass
        return st

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        while self._pump(0):
            pass
        self.log.close()

    def text(self):
        return self.buf.decode(errors="replace")


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail else ""),
              flush=True)
        return ok


class NetNs:
    """A network namespace holding a tap with the peer's address; the VMM runs
    inside it (`ip netns exec`) and serves the tap to the guest, so every
    packet between the guest and the peer crosses the VMM's virtio-net, and
    nothing touches the machine's own network."""

    def __init__(self, tap):
        self.name = "wisp-lt-%d" % os.getpid()
        self.tap = tap

    def ip(self, *args):
        r = subprocess.run(["ip", "-n", self.name] + list(args), capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("ip -n %s %s: %s" % (self.name, " ".join(args), r.stderr.strip()))

    def __enter__(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        r = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("ip netns add: %s" % r.stderr.strip())
        self.ip("link", "set", "lo", "up")
        self.ip("tuntap", "add", "dev", self.tap, "mode", "tap")
        self.ip("addr", "add", "%s/%d" % (NET_HOST, NET_PREFIX), "dev", self.tap)
        self.ip("link", "set", self.tap, "up")
        return self

    def wrap(self, argv):
        return ["ip", "netns", "exec", self.name] + argv

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


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


def make_disk(path, host_token):
    """A fresh 16 MiB ext4 image holding /hello.txt with the host's token."""
    root = path + ".root"
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    with open(os.path.join(root, "hello.txt"), "w") as f:
        f.write("host-token %s\n" % host_token)
    if os.path.exists(path):
        os.unlink(path)
    with open(path, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "wisp-test", "-d", root, path], check=True)
    shutil.rmtree(root)


def vmm_argv(args, case, kernel, initrd, cmdline, disk, tap, sock):
    """The command line that boots `case` with its devices."""
    if case.vmm == "wisp":
        argv = [args.wisp, "run", "--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline,
                "--vcpus", str(case.vcpus), "--memory", "256M", "--serial", "stdio"]
        if not case.acpi:
            argv += ["--acpi", "off"]
        if case.name == PCI_CASE:
            argv += ["--pci", "on"]
        if case.end == "ctrl-alt-del":
            argv += ["--api-sock", os.path.join(os.path.dirname(sock), "api.sock")]
        for d in case.devices:
            argv += ["--device", {"blk": "blk,path=%s" % disk, "net": "net,tap=%s" % tap,
                                  "rng": "rng", "console": "console,socket=%s" % sock}[d]]
        return argv + args.wisp_arg
    argv = [args.qemu, "-M", "microvm,acpi=on", "-accel", "kvm", "-cpu", "host",
            "-smp", str(case.vcpus), "-m", "256M", "-nodefaults", "-no-user-config",
            "-display", "none", "-serial", "stdio", "-no-reboot",
            "-kernel", kernel, "-initrd", initrd, "-append", cmdline]
    for d in case.devices:
        argv += {"blk": ["-drive", "id=d0,if=none,format=raw,file=%s" % disk,
                         "-device", "virtio-blk-device,drive=d0"],
                 "net": ["-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no" % tap,
                         "-device", "virtio-net-device,netdev=n0"],
                 "rng": ["-device", "virtio-rng-device"],
                 "console": ["-chardev", "socket,id=c0,path=%s,server=on,wait=off" % sock,
                             "-device", "virtio-serial-device", "-device", "virtconsole,chardev=c0"]}[d]
    return argv


def console_talk(sock_path, timeout=20):
    """Ask the shell on the guest's hvc0, through the VMM's console socket,
    for a value it computes.  Returns (ok, detail)."""
    deadline = time.monotonic() + timeout
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        while True:
            try:
                s.connect(sock_path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    return False, "cannot connect to %s" % sock_path
                time.sleep(0.2)
        s.sendall(b"echo hvc-$((40+2)) on $(tty)\n")
        buf = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([s], [], [], 0.5)
            if r:
                data = s.recv(4096)
                if not data:
                    break
                buf += data
                m = re.search(rb"hvc-42 on (\S+)", buf)
                if m:
                    return m.group(1) == b"/dev/hvc0", "hvc0 shell answered: %s" % m.group(0).decode()
        return False, "no answer on the console socket (got %r)" % buf[-120:]
    finally:
        s.close()


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


# ---- live migration (Case.migrate) ----

MIG_HOPS = 5
MIG_BLOB_MB = 64  # random data in the guest's tmpfs, summed before and after every hop
MIG_TIMEOUT = 120  # s; one `wisp migrate`, from start to the destination's answer
MIG_CLOCK_MARGIN = 1.5  # s; the guest clock may run ahead of the host's by no more
# s; `sleep 1` in the guest after a hop, as the host times it (the upper
# bound plus a no-op's round trip just before: the testbed's L1 is slow
# and shares its CPU with the two wisp processes)
MIG_SLEEP_RANGE = (0.8, 3.0)
# The guest's clocksource watchdog compares its TSC with kvm-clock; after a
# restore that puts them out of step it marks the TSC unstable.
TSC_UNSTABLE = r"clocksource.*(Marking clocksource 'tsc' as unstable|skewed|wd_nsec|cs_nsec|is current clocksource)"

MIG_SHM = ("mkdir -p /dev/shm && mount -t tmpfs -o size=%dm tmpfs /dev/shm && "
           "dd if=/dev/urandom of=/dev/shm/blob bs=1M count=%d 2>/dev/null && sha256sum /dev/shm/blob")
# A counter rewritten five times a second (renamed into place, so a reader
# never sees half a number), and its pid.
MIG_COUNTER = ("(i=0; while :; do i=$((i+1)); echo $i > /dev/shm/cnt.t; mv /dev/shm/cnt.t /dev/shm/cnt; "
               "sleep 0.2; done) > /dev/null 2>&1 & echo $! > /dev/shm/cnt.pid")
MIG_MOUNT = ("i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; "
             "mkdir -p /mnt/d && mount -t ext4 /dev/vda /mnt/d && echo mount-ok-$((1+1))")
# The disk writer: numbered records, each followed by sync, until told to
# stop; then the last number goes to last.txt.
MIG_WRITER = ("(n=0; while [ ! -e /dev/shm/stop ]; do n=$((n+1)); echo \"rec $n\" >> /mnt/d/records.txt; "
              "sync; sleep 0.1; done; echo $n > /mnt/d/last.txt; sync) > /dev/null 2>&1 & "
              "echo $! > /dev/shm/wr.pid")
MIG_CLOCK = ("echo clk $(cut -d' ' -f1 /proc/uptime) $(date +%s) $(cat /dev/shm/cnt) "
             "$(tail -n1 /mnt/d/records.txt | cut -d' ' -f2)")
MIG_HOP = ("kill -0 $(cat /dev/shm/cnt.pid) && echo cnt-alive; kill -0 $(cat /dev/shm/wr.pid) && echo wr-alive; "
           "echo rng $(dd if=/dev/hwrng bs=32 count=1 2>/dev/null | od -An -tx1 | tr -d ' \\n'); "
           "echo hop-%d > /mnt/d/touch.txt && sync && echo touch $(cat /mnt/d/touch.txt); "
           "sha256sum /dev/shm/blob")
MIG_STOP = ("touch /dev/shm/stop; i=0; while kill -0 $(cat /dev/shm/wr.pid) 2>/dev/null && [ $i -lt 100 ]; "
            "do sleep 0.1; i=$((i+1)); done; echo last $(cat /mnt/d/last.txt); sync; "
            "umount /mnt/d && echo umount-ok-$((1+1))")


def strip_options(argv, names):
    """argv less the options in `names` and their values."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in names:
            skip = True
        else:
            out.append(a)
    return out


def guest_clock(g):
    """(uptime s, date s, counter, last record, host time at the midpoint,
    round trip s) from the guest, or None."""
    h0 = time.time()
    out = g.run(MIG_CLOCK, timeout=30)
    h1 = time.time()
    m = re.search(r"clk ([\d.]+) (\d+) (\d+) (\d+)", out or "")
    if not m:
        return None
    return (float(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), (h0 + h1) / 2, h1 - h0)


def migrate_case(res, args, case, kernel, initrd):
    """Boot, then move the running guest between two wisp processes
    MIG_HOPS times over UNIX sockets, checking after every hop that its
    memory, clock and devices came along; one refused migration to a
    destination of another memory size; the disk's records on the host."""
    name = case.name
    cmdline = "console=ttyS0 panic=-1 loglevel=5 " + args.append
    disk = os.path.join(args.workdir, name + ".img")
    make_disk(disk, secrets.token_hex(8))
    sockdir = tempfile.mkdtemp(prefix="wisp-lt-")
    api = [os.path.join(sockdir, "api-%s.sock" % s) for s in "ab"]
    con = [os.path.join(sockdir, "console-%s.sock" % s) for s in "ab"]
    base = vmm_argv(args, case, kernel, initrd, cmdline, disk, None, con[0])
    guests = []

    def start(side, incoming, memory=None):
        """A wisp process on side 0 or 1 (its API and console sockets); with
        `incoming`, a destination waiting for the stream there."""
        for p in (api[side], con[side]):
            if os.path.exists(p):
                os.unlink(p)
        argv = [a.replace(con[0], con[side]) for a in base] + ["--api-sock", api[side]]
        if incoming:
            argv = strip_options(argv, ("--kernel", "--initrd", "--cmdline"))
            argv += ["--incoming", "unix:" + incoming, "--log-level", "info"]
        if memory:
            argv[argv.index("--memory") + 1] = memory
        log_path = os.path.join(args.workdir, "%s.vm%d.log" % (name, len(guests)))
        guests.append(Guest(argv, log_path))
        return guests[-1]

    try:
        g = start(0, None)
        side = 0
        m = g.expect(r"wisp-guest: kernel (\S+), cpus online (\S+)\r?\n", args.boot_timeout)
        ready = m is not None and g.expect("WISP-GUEST-READY", 5)
        if not res.check(name + "/boot", ready, "userspace in %.1f s (%s, cpus %s)" % (
                time.monotonic() - g.start, m.group(1).decode(), m.group(2).decode()) if ready
                else "no userspace (log: %s)" % g.log.name):
            return

        # The workload that must survive every hop.
        out = g.run(MIG_SHM % (MIG_BLOB_MB + 8, MIG_BLOB_MB), timeout=120) or ""
        sm = re.search(r"([0-9a-f]{64})\s+/dev/shm/blob", out)
        mounted = "mount-ok-2" in (g.run(MIG_MOUNT) or "")
        started = g.run(MIG_COUNTER) is not None and g.run(MIG_WRITER) is not None
        clk = guest_clock(g) if started else None
        if not res.check(name + "/workload", sm is not None and mounted and clk is not None,
                         "%d MiB of random data in tmpfs (sha256 %s...), counter loop, ext4 mounted "
                         "with a record writer" % (MIG_BLOB_MB, sm.group(1)[:16]) if sm and mounted and clk
                         else "setup failed: sum %s, mounted %s, loops %s" % (bool(sm), mounted, clk)):
            return
        blob_sum = sm.group(1)

        paused, moves = [], []
        for hop in range(1, MIG_HOPS + 1):
            hn = "%s/hop%d" % (name, hop)
            other = 1 - side
            path = os.path.join(sockdir, "mig-%d.sock" % hop)
            d = start(other, path)
            if not d.expect(r"waiting for the migration stream", 30):
                res.check(hn, False, "the destination did not listen (log: %s)" % d.log.name)
                break
            before = guest_clock(g)
            t0 = time.monotonic()
            try:
                r = subprocess.run([args.wisp, "migrate", "--api-sock", api[side], "--to", "unix:" + path],
                                   capture_output=True, text=True, timeout=MIG_TIMEOUT)
                rc, err = r.returncode, r.stderr
            except subprocess.TimeoutExpired as e:
                rc, err = None, (e.stderr or b"").decode(errors="replace") + "\n(timed out)"
            took = time.monotonic() - t0
            with open(os.path.join(args.workdir, "%s.hop%d.migrate.log" % (name, hop)), "w") as f:
                f.write(err)
            src_st = g.wait_exit(15) if rc == 0 else g.proc.poll()
            loaded = d.expect(r"received and loaded in (\d+) ms; running", 15) if rc == 0 else None
            cm = re.search(r"completed in (\d+) ms, guest paused (\d+) ms", err)
            ok = rc == 0 and src_st == 0 and loaded is not None and cm is not None and before is not None
            res.check(hn, ok, "%s -> %s: wisp migrate exit %s in %.2f s (%s), source exit %s, "
                      "destination loaded in %s ms" % (
                          "ab"[side], "ab"[other], rc, took,
                          "completed in %s ms, guest paused %s ms" % cm.groups() if cm
                          else "no completion line: %s" % err.strip()[-200:],
                          src_st, loaded.group(1).decode() if loaded else "?"))
            if rc != 0 or src_st != 0 or loaded is None:
                if rc == 0:
                    g = d  # the VM moved even if something else went wrong
                break
            g, side = d, other
            paused.append(int(cm.group(2)))
            moves.append(took)

            # Clock: no jump ahead of the host's, never back; sleep 1 is ~1 s.
            after = guest_clock(g)
            nop = time.monotonic()
            g.run("true")
            nop = time.monotonic() - nop
            t1 = time.monotonic()
            slept = g.run("sleep 1", timeout=30)
            slept_s = time.monotonic() - t1
            out = g.run(MIG_HOP % hop, timeout=120) or ""
            probs = []
            if after is None or before is None:
                probs.append("no clock answer")
                host_d = guest_d = lag = 0.0
            else:
                host_d = after[4] - before[4]
                guest_d = after[0] - before[0]
                lag = host_d - guest_d
                slack = MIG_CLOCK_MARGIN + (before[5] + after[5]) / 2
                if guest_d < 0 or after[1] < before[1]:
                    probs.append("guest clock went back")
                if guest_d > host_d + slack or after[1] - before[1] > host_d + slack + 1:
                    probs.append("guest clock jumped ahead")
                if lag > paused[-1] / 1000.0 + slack:
                    probs.append("guest clock lost more than the pause")
                if after[2] <= before[2]:
                    probs.append("counter did not advance (%d -> %d)" % (before[2], after[2]))
            if slept is None or not MIG_SLEEP_RANGE[0] <= slept_s <= MIG_SLEEP_RANGE[1] + nop:
                probs.append("sleep 1 took %.2f s" % slept_s if slept is not None else "sleep 1 hung")
            for want in ("cnt-alive", "wr-alive", "touch hop-%d" % hop):
                if want not in out:
                    probs.append("no " + want)
            rng = re.search(r"rng ([0-9a-f]*)", out)
            if not rng or len(rng.group(1)) != 64:
                probs.append("no /dev/hwrng data")
            sm = re.search(r"([0-9a-f]{64})\s+/dev/shm/blob", out)
            if not sm or sm.group(1) != blob_sum:
                probs.append("tmpfs data sum %s, want %s" % (sm.group(1)[:16] if sm else "none", blob_sum[:16]))
            c_ok, c_detail = console_talk(con[side])
            if not c_ok:
                probs.append("console: " + c_detail)
            res.check(hn + "-guest", not probs,
                      "sum ok, counter %d -> %d, records %d -> %d, hwrng, disk write+sync, hvc0; clock: "
                      "guest +%.2f s over host +%.2f s (%.2f s behind), sleep 1 took %.2f s "
                      "(a no-op %.2f s)" % (
                          before[2], after[2], before[3], after[3], guest_d, host_d, lag, slept_s, nop)
                      if not probs else "; ".join(probs) + " (log: %s)" % g.log.name)
        res.check(name + "/migrations", len(paused) == MIG_HOPS,
                  "%d of %d hops; guest paused %s ms; wisp migrate took %s s" % (
                      len(paused), MIG_HOPS, ", ".join(str(p) for p in paused),
                      ", ".join("%.2f" % t for t in moves)))

        # A destination with another memory size must refuse, and the VM stay.
        if g.proc.poll() is None:
            path = os.path.join(sockdir, "mig-bad.sock")
            bad_side = 1 - side
            d = start(bad_side, path, memory="512M")
            listening = d.expect(r"waiting for the migration stream", 30) is not None
            before = guest_clock(g)
            r = subprocess.run([args.wisp, "migrate", "--api-sock", api[side], "--to", "unix:" + path],
                               capture_output=True, text=True, timeout=MIG_TIMEOUT)
            d_st = d.wait_exit(15)
            after = guest_clock(g)
            refused = re.search(r"incompatible destination[^\n]*memory", r.stderr) is not None
            ok = (listening and r.returncode == 1 and refused and g.proc.poll() is None and
                  before is not None and after is not None and after[2] > before[2])
            res.check(name + "/refused-memory", ok,
                      "wisp migrate exit %d: %s; destination exit %s; the guest keeps running on the "
                      "source (counter %s -> %s)" % (
                          r.returncode, (lambda m: m.group(0) if m else " ".join(r.stderr.split())[-160:])(
                              re.search(r"the destination refused: [^\n]*", r.stderr)), d_st,
                          before[2] if before else "?", after[2] if after else "?"))
            d.kill()

        # The end: stop the writer, a clean log, poweroff from the last process.
        out = g.run(MIG_STOP, timeout=60) or ""
        lm = re.search(r"last (\d+)", out)
        res.check(name + "/disk-stop", lm is not None and "umount-ok-2" in out,
                  "writer stopped after %s records, unmounted" % lm.group(1) if lm
                  else "failed: %s" % out.strip()[-200:])
        found = g.run("dmesg | grep -E %s" % shlex.quote("|".join(BAD_LOG + BENIGN_LOG + ["skewed"])),
                      timeout=60)
        # The TSC against kvm-clock gets a check of its own (it names the
        # skew); everything else in BAD_LOG is log-clean's.
        skew = re.findall(r"skewed (-?\d+) ns .* interval of (\d+) ns", found or "")
        res.check(name + "/tsc-kvmclock", found is not None and not re.search(TSC_UNSTABLE, found),
                  "the guest's clocksource watchdog kept the TSC: it agrees with kvm-clock after every hop"
                  if found is not None and not re.search(TSC_UNSTABLE, found) else
                  "the guest marked its TSC unstable: skewed %s ms against kvm-clock over %s ms "
                  "(the restore put them out of step)" % (
                      ", ".join("%.1f" % (int(a) / 1e6) for a, _ in skew) or "?",
                      ", ".join("%.0f" % (int(b) / 1e6) for _, b in skew) or "?")
                  if found is not None else "dmesg did not finish")
        bad = unexplained(found or "", (TSC_UNSTABLE,))
        res.check(name + "/log-clean", found is not None and not bad,
                  "no other platform faults in dmesg after the migrations" if found is not None and not bad
                  else "; ".join(bad[:4]) if bad else "dmesg did not finish")
        g.send("poweroff -f")
        st = g.wait_exit(END_TIMEOUT)
        res.check(name + "/poweroff", st == 0, "exit status %s on the last destination" % st)
        g.kill()

        if st is not None:
            r = subprocess.run(["debugfs", "-R", "cat /records.txt", disk], capture_output=True, text=True)
            nums = [int(x) for x in re.findall(r"^rec (\d+)$", r.stdout, re.M)]
            last = subprocess.run(["debugfs", "-R", "cat /last.txt", disk], capture_output=True, text=True)
            last_n = int(last.stdout.split()[0]) if last.stdout.split() and last.stdout.split()[0].isdigit() else -1
            fsck = subprocess.run(["e2fsck", "-fn", disk], capture_output=True, text=True)
            ok = nums == list(range(1, len(nums) + 1)) and len(nums) == last_n and last_n > 0 and fsck.returncode == 0
            gaps = [b for a, b in zip(nums, nums[1:]) if b != a + 1]
            res.check(name + "/disk-records", ok,
                      "records 1..%d consecutive on the image (last.txt %d); e2fsck -fn clean"
                      % (len(nums), last_n) if ok else
                      "%d records, last.txt %d, breaks at %s; e2fsck status %d: %s" % (
                          len(nums), last_n, gaps[:5], fsck.returncode, fsck.stdout.strip()[-200:]))
    finally:
        for x in guests:
            x.kill()
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
