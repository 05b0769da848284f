#!/usr/bin/env python3
"""Stock-kernel boot benchmark for `make bench` (issue 8).

Boots Debian's own kernel (the linux-image package tests/testbed/prepare
downloads; bzImage, 2 vCPUs, 256 MiB) with a busybox initramfs whose /init
prints a marker and powers off at once, under wisp (ACPI on, the default)
and QEMU microvm with ACPI (`-M microvm,acpi=on`, `-kernel`), interleaved
run by run; medians.  Two times from just before fork/exec:

  exec -> /init      until /init's marker arrived on the VMM's stdout pipe
  exec -> poweroff   until the parent reaped the VMM after the guest's
                     `poweroff -f` (ACPI S5) made it exit

The raw-KVM floor (bench/rawkvm.c) cannot boot Linux, so it has no row
here; the test-guest table above gives it.  Needs hardware KVM: a stock
kernel's boot under emulated KVM measures the emulator, not the VMM.
"""
import os
import shutil
import statistics
import subprocess
import time

MARK = b"WISP-BENCH-INIT"
CMDLINE = "console=ttyS0 quiet panic=-1"


def run_once(argv, timeout=120):
    """(exec->mark ms or None, exec->exit ms, exit status)."""
    t0 = time.monotonic_ns()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, bufsize=0)
    buf, mark = b"", None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        if mark is None and MARK in buf:
            mark = (time.monotonic_ns() - t0) / 1e6
    try:
        code = p.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        p.kill()
        code = p.wait()
    t1 = time.monotonic_ns()
    return mark, (t1 - t0) / 1e6, code, buf.decode(errors="replace")


def build_initramfs(repo, out):
    subprocess.run([os.path.join(repo, "tests/testbed/mkinitramfs"),
                    "--busybox", os.path.join(repo, "build/testbed/busybox"),
                    "--init", os.path.join(repo, "guest-images/linux/bench-init"),
                    "--out", out], check=True)


def bench(wisp, repo, runs=7):
    """Markdown lines for docs/BENCHMARKS.md (or a note saying why not)."""
    lines = ["## Stock Linux: exec to /init and to poweroff", ""]
    if subprocess.run([os.path.join(repo, "tests/testbed/prepare")],
                      stdout=subprocess.DEVNULL).returncode != 0:
        return lines + ["Not measured: Debian's kernel package could not be fetched.", ""]
    tree = os.path.join(repo, "build/testbed/kernels/guest-6.1/boot")
    kernel = [os.path.join(tree, f) for f in os.listdir(tree) if f.startswith("vmlinuz-")][0]
    initrd = os.path.join(repo, "build/bench-linux-initramfs.cpio.gz")
    build_initramfs(repo, initrd)
    configs = {
        "wisp": [wisp, "run", "--kernel", kernel, "--initrd", initrd, "--vcpus", "2",
                 "--memory", "256M", "--serial", "stdio", "--cmdline", CMDLINE],
    }
    qemu = shutil.which("qemu-system-x86_64")
    if qemu:
        configs["qemu microvm"] = [
            qemu, "-M", "microvm,acpi=on,x-option-roms=off", "-accel", "kvm", "-cpu", "host",
            "-m", "256M", "-smp", "2", "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "stdio", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
            "-append", CMDLINE]
    res = {k: {"init": [], "off": []} for k in configs}
    for name, argv in configs.items():  # warm-up, and check each works
        mark, _, code, out = run_once(argv)
        if mark is None or code != 0:
            return lines + [f"Not measured: {name} did not reach /init and power off "
                            f"(status {code}); its output ended with: "
                            f"`{out.strip().splitlines()[-1] if out.strip() else ''}`", ""]
    for _ in range(runs):
        for name, argv in configs.items():
            mark, total, code, _ = run_once(argv)
            if mark is None or code != 0:
                continue
            res[name]["init"].append(mark)
            res[name]["off"].append(total)
    med = {k: (statistics.median(v["init"]) if v["init"] else float("nan"),
               statistics.median(v["off"]) if v["off"] else float("nan")) for k, v in res.items()}
    lines += [f"Debian's `{os.path.basename(kernel)}` (bzImage), a busybox initramfs whose /init "
              "prints a marker and runs `poweroff -f`, 2 vCPUs, 256 MiB, command line "
              f"`{CMDLINE}`. Both VMMs describe the machine in ACPI; {runs} timed runs each after "
              "a warm-up, interleaved. Medians in milliseconds.", "",
              "| VMM | exec -> /init | exec -> poweroff (process exit) | /init vs QEMU |",
              "|---|---:|---:|---:|"]
    q = med.get("qemu microvm", (float("nan"),))[0]
    for k, (i, o) in med.items():
        lines.append(f"| {k} | {i:.1f} | {o:.1f} | {i / q:.2f}x |")
    lines += ["", "| target | measured | met |", "|---|---:|:---:|"]
    if "qemu microvm" in med:
        r = med["wisp"][0] / q
        lines.append(f"| wisp exec -> /init <= 0.7x QEMU microvm's | {r:.2f}x | "
                     f"{'yes' if r <= 0.7 else 'no'} |")
    lines += ["", "The raw-KVM floor cannot boot Linux and has no row; see the test-guest table.",
              ""]
    return lines


if __name__ == "__main__":
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    print("\n".join(bench(sys.argv[1], os.path.dirname(here), runs=int(sys.argv[2]) if len(sys.argv) > 2 else 3)))
