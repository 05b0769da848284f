"""What the stock-Linux guest cases share (guest_tests.py, migrate_case.py).

The guest on the serial console (Guest), the pass/fail tally (Results), the
network namespace with the tap a guest's net device uses (NetNs), the ext4
test disk, the command line that boots a case under wisp or QEMU, the
virtio console's second shell, and the dmesg lines that count as a fault.
"""
import os
import re
import select
import shlex
import shutil
import socket
import subprocess
import time
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


# This case also runs with --pci on: wisp's host bridge at 00:00.0 must
# appear in sysfs with its ids and raise no PCI/ACPI complaint (pci_checks).
PCI_CASE = "linux-6.12-bzimage-2cpu"


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


# The guest's and the peer's addresses on the tap's link.
NET_HOST, NET_GUEST, NET_PREFIX = "10.0.2.1", "10.0.2.15", 24


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
