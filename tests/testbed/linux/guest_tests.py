#!/usr/bin/env python3
"""Stock Linux guests under wisp: Debian's own kernels, booted as users do.

Runs wisp with a Debian kernel (its bzImage, and the ELF vmlinux inside it
through the PVH entry) and a busybox initramfs, talks to the guest shell over
the serial console, and checks what our freestanding test guest cannot: that
a real kernel gets every vCPU, a working timer (the LAPIC timer and the
IOAPIC-routed PIT), serial input and output, and that reboot, poweroff and a
panic end wisp with the documented status instead of hanging.

Meant to run where KVM is hardware virtualisation (the nested testbed, or a
hardware-backed /dev/kvm): tests/testbed/linux/run picks the place.

Prints one line per check and ends with "N passed, N failed".
"""
import argparse
import glob
import os
import re
import select
import shlex
import struct
import subprocess
import sys
import time

BOOT_TIMEOUT = 300  # s; ~17 s typical in the testbed, 36 s seen once
CMD_TIMEOUT = 60
END_TIMEOUT = 90

# Lines a clean boot must not log.  Each names a fault of the VMM's platform
# description (or a timer wisp failed to deliver), not of QEMU's software CPU.
BAD_LOG = [
    r"APIC timer disabled",
    r"verification failure",
    r"IO-APIC \+ timer doesn't work",
    r"MP-BIOS bug",
    r"\[Firmware Bug\]",
    r"\[Firmware Warn\]",
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


def unexplained(lines):
    """The bad lines of a dmesg extract, less the benign ones and one call
    trace per benign warning."""
    lines = [l.strip() for l in lines.splitlines() if l.strip()]
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
    """wisp running one guest, with an expect-style view of its serial output."""

    def __init__(self, argv, log_path):
        self.argv = argv
        self.buf = b""
        self.pos = 0
        self.log = open(log_path, "wb")
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
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

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
        return self.proc.poll()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        while self._pump(0):
            if self.proc.stdout.closed:
                break
            break
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


def interrupt_counts(text):
    """Sum each /proc/interrupts row over the CPUs: {"0": n, "LOC": n, ...}."""
    counts = {}
    for line in text.splitlines():
        m = re.match(r"\s*([0-9A-Z]+):\s+((?:\d+\s+)+)", line)
        if m:
            counts[m.group(1)] = sum(int(x) for x in m.group(2).split())
    return counts


def poweroff_case(res, name, g):
    """`poweroff -f` without ACPI: Linux has no way to power off (no
    pm_power_off), so reboot(2) turns it into a halt ("reboot: System
    halted") and every vCPU stops in cli; hlt, which KVM's in-kernel LAPIC
    handles without telling wisp.  With ACPI (S5 through the FADT's sleep
    registers) wisp will see the poweroff and exit 0.  Until then the check
    is that the guest halts cleanly and that wisp, still running, stops at
    once on SIGTERM with status 143."""
    g.send("poweroff -f")
    t0 = time.monotonic()
    if g.expect(r"reboot: (System halted|Power down)", END_TIMEOUT) is None:
        st = g.proc.poll()
        res.check(name + "/poweroff", st == 0,
                  "wisp exit status %s, no halt line" % st if st is not None else
                  "guest neither halted nor powered off within %d s" % END_TIMEOUT)
        return
    st = g.wait_exit(5)
    if st == 0:
        res.check(name + "/poweroff", True, "powered off: wisp exit status 0 after %.1f s"
                  % (time.monotonic() - t0))
        return
    g.proc.terminate()
    st = g.wait_exit(10)
    res.check(name + "/poweroff", st == 143,
              "no ACPI, so the guest halted; wisp stopped by SIGTERM with status %s" % st)


def boot_case(res, args, name, kernel, vcpus, end, workdir):
    cmdline = "console=ttyS0 panic=-1 loglevel=5 " + args.append
    argv = [args.wisp, "run", "--kernel", kernel, "--initrd", args.initrd, "--cmdline", cmdline,
            "--vcpus", str(vcpus), "--memory", "256M", "--serial", "stdio"] + args.wisp_arg
    log_path = os.path.join(workdir, name + ".log")
    g = Guest(argv, log_path)
    try:
        m = g.expect(r"wisp-guest: kernel (\S+), cpus online (\S+)\r?\n", args.boot_timeout)
        boot_s = time.monotonic() - g.start
        if not res.check(name + "/boot", m is not None and g.expect("WISP-GUEST-READY", 5),
                         "userspace in %.1f s" % boot_s if m else
                         "no userspace after %d s (log: %s)" % (args.boot_timeout, log_path)):
            return
        want_online = "0" if vcpus == 1 else "0-%d" % (vcpus - 1)
        online = m.group(2).decode()
        res.check(name + "/vcpus-online", online == want_online,
                  "online %s, want %s" % (online, want_online))

        out = g.run("echo serial-$((1000+234))-in")
        res.check(name + "/serial-io", out is not None and "serial-1234-in" in out,
                  "guest shell answered" if out else "no answer")

        before = g.run("cat /proc/interrupts")
        t0 = time.monotonic()
        slept = g.run("sleep 1", timeout=30)
        dt = time.monotonic() - t0
        after = g.run("cat /proc/interrupts")
        ok = before is not None and slept is not None and after is not None
        loc0 = interrupt_counts(before or "").get("LOC", 0)
        loc1 = interrupt_counts(after or "").get("LOC", 0)
        res.check(name + "/timer", ok and 0.9 <= dt <= 20 and loc1 > loc0,
                  "sleep 1 took %.2f s; LAPIC timer interrupts %d -> %d" % (dt, loc0, loc1)
                  if ok else "no answer to: %s" % ("cat /proc/interrupts" if before is None else
                                                   "sleep 1 (30 s)" if slept is None else
                                                   "cat /proc/interrupts after the sleep"))

        cs = (g.run("cat /sys/devices/system/clocksource/clocksource0/current_clocksource") or "").split()
        # Only the matching lines cross the (slow, emulated) serial port.
        found = g.run("dmesg | grep -E %s" % shlex.quote("|".join(BAD_LOG + BENIGN_LOG)), timeout=60)
        bad = unexplained(found or "")
        res.check(name + "/log-clean", found is not None and not bad,
                  "clocksource %s" % (cs[-1] if cs else "?") if found is not None and not bad
                  else "; ".join(bad[:4]) if bad else "dmesg did not finish")

        if end == "poweroff":
            poweroff_case(res, name, g)
            return
        g.send("reboot -f" if end == "reboot" else "echo c > /proc/sysrq-trigger")
        t0 = time.monotonic()
        st = g.wait_exit(END_TIMEOUT)
        detail = ("wisp exit status %s after %.1f s" % (st, time.monotonic() - t0)
                  if st is not None else "wisp still running after %d s" % END_TIMEOUT)
        ok = st == 0
        if end == "panic":
            # With panic=-1 on the command line a panic restarts at once;
            # wisp sees the reset and exits 0 (README, "Exit status").
            logged = re.search(r"Kernel panic - not syncing", g.text()) is not None
            ok = ok and logged
            detail += ", panic logged" if logged else ", no panic line in the log"
        res.check("%s/%s" % (name, end), ok, detail)
    finally:
        g.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wisp", required=True)
    ap.add_argument("--kernels", required=True, help="folder with guest-6.1/ and guest-6.12/ trees")
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--only", default="", help="run only cases whose name contains this")
    ap.add_argument("--append", default="", help="more kernel command line (debugging)")
    ap.add_argument("--wisp-arg", action="append", default=[], help="one more wisp option")
    ap.add_argument("--boot-timeout", type=int, default=BOOT_TIMEOUT)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)

    res = Results()
    kernels = {}
    for ver in ("6.1", "6.12"):
        bz = glob.glob(os.path.join(args.kernels, "guest-" + ver, "boot", "vmlinuz-*"))
        if not res.check("kernel-%s/found" % ver, len(bz) == 1, bz[0] if bz else "missing"):
            continue
        elf = os.path.join(args.workdir, "vmlinux-" + ver)
        try:
            if not os.path.exists(elf):
                extract_vmlinux(bz[0], elf)
            pvh = has_pvh_note(elf)
            res.check("kernel-%s/vmlinux-pvh-note" % ver, pvh, elf)
        except (RuntimeError, OSError) as e:
            res.check("kernel-%s/vmlinux-pvh-note" % ver, False, str(e))
            elf = None
        kernels[ver] = (bz[0], elf)

    cases = [
        ("linux-6.1-bzimage-1cpu", "6.1", 0, 1, "reboot"),
        ("linux-6.1-bzimage-2cpu", "6.1", 0, 2, "poweroff"),
        ("linux-6.1-pvh-1cpu", "6.1", 1, 1, "panic"),
        ("linux-6.12-pvh-2cpu", "6.12", 1, 2, "reboot"),
        ("linux-6.12-bzimage-2cpu", "6.12", 0, 2, "panic"),
    ]
    for name, ver, which, vcpus, end in cases:
        if args.only and args.only not in name:
            continue
        if ver not in kernels or kernels[ver][which] is None:
            res.check(name, False, "no kernel image")
            continue
        boot_case(res, args, name, kernels[ver][which], vcpus, end, args.workdir)

    print("%d passed, %d failed" % (res.passed, res.failed), flush=True)
    return 0 if res.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
