#!/usr/bin/env python3
"""Boot-time and memory benchmark for wisp.

Runs three ways of booting the same test guest (which exits at once through
the debug-exit port) interleaved, so machine noise hits all of them alike:

  wisp     build/wisp with the ELF guest (PVH entry)
  rawkvm   the raw-KVM floor (bench/rawkvm.c): VM + memory + one vCPU, nothing else
  qemu     qemu-system-x86_64 -M microvm booting the same PVH ELF

Wall time is exec -> exit of the process.  Memory: wisp's own --stats line
(peak RSS minus guest RAM pages resident); peak RSS of each child from
wait4().  Writes a Markdown report with the machine details.
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

GUEST_CMDLINE = "test=exit code=0"
MEMORY = "256M"


def run_once(argv):
    """Run argv, return (seconds, exit status, peak RSS KiB, stderr text)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    _, err = p.communicate()
    # wait4 gives this child's own rusage; communicate() already reaped it,
    # so use RUSAGE_CHILDREN deltas instead.
    t1 = time.perf_counter()
    return t1 - t0, p.returncode, err.decode(errors="replace")


def maxrss_of(argv):
    """Peak RSS (KiB) of one run, measured with wait4 on a fresh child."""
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    _, status, ru = os.wait4(pid, 0)
    return ru.ru_maxrss


def machine_details():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    debian = open("/etc/debian_version").read().strip() if os.path.exists("/etc/debian_version") else "?"
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "debian": debian,
        "qemu": qemu.stdout.splitlines()[0] if qemu.returncode == 0 else "not installed",
        "hypervisor": "nested KVM" if "hypervisor" in open("/proc/cpuinfo").read() else "bare metal",
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wisp", required=True)
    ap.add_argument("--rawkvm", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    qemu_bin = shutil.which("qemu-system-x86_64")
    configs = {
        "wisp": [a.wisp, "run", "--kernel", a.guest, "--memory", MEMORY, "--serial", "none",
                 "--debug-exit", "--cmdline", GUEST_CMDLINE],
        "rawkvm": [a.rawkvm, a.guest, GUEST_CMDLINE],
    }
    if qemu_bin:
        configs["qemu"] = [qemu_bin, "-M", "microvm,x-option-roms=off,rtc=off", "-accel", "kvm",
                           "-m", MEMORY, "-smp", "1", "-nodefaults", "-no-user-config",
                           "-display", "none", "-serial", "none",
                           "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
                           "-kernel", a.guest, "-append", GUEST_CMDLINE]
    expected = {"wisp": 0, "rawkvm": 0, "qemu": 1}  # QEMU exits (code << 1) | 1

    times = {k: [] for k in configs}
    # Warm the page cache and check every config works before timing.
    for name, argv in configs.items():
        _, rc, err = run_once(argv)
        if rc != expected[name]:
            sys.exit(f"bench: {name} exited {rc} (expected {expected[name]}): {err.strip()}")
    for _ in range(a.runs):
        for name, argv in configs.items():
            t, rc, err = run_once(argv)
            if rc != expected[name]:
                sys.exit(f"bench: {name} exited {rc}: {err.strip()}")
            times[name].append(t)

    rss = {name: statistics.median(maxrss_of(argv) for _ in range(3)) for name, argv in configs.items()}
    overheads = []
    for _ in range(5):
        _, rc, err = run_once(configs["wisp"][:-2] + ["--stats", "--cmdline", GUEST_CMDLINE])
        m = re.search(r"\{\"wisp_stats\".*\}", err)
        if m:
            overheads.append(json.loads(m.group(0)))
    ov = statistics.median(o["vmm_overhead_kib"] for o in overheads) if overheads else None
    guest_res = statistics.median(o["guest_resident_kib"] for o in overheads) if overheads else None

    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    lo = {k: min(v) * 1000 for k, v in times.items()}
    hi = {k: max(v) * 1000 for k, v in times.items()}
    m = machine_details()

    lines = []
    lines.append("# Benchmarks\n")
    lines.append("Generated by `make bench` (bench/bench.py); numbers from one run on the machine below.")
    lines.append("Re-run `make bench` to refresh this file.\n")
    lines.append("## Machine\n")
    for k in ("cpu", "cores", "memory_gib", "kernel", "debian", "qemu", "hypervisor"):
        lines.append(f"- {k}: {m[k]}")
    lines.append("")
    lines.append("## Boot to exit (exec -> process exit)\n")
    lines.append(f"Test guest `{os.path.basename(a.guest)}` with `{GUEST_CMDLINE}`: it enters through the "
                 "PVH entry, switches to long mode and writes the debug-exit port at once. "
                 f"{MEMORY} of guest RAM, 1 vCPU, serial off. Runs interleaved; "
                 f"{a.runs} timed runs each after one warm-up run.\n")
    lines.append("| VMM | median ms | min ms | max ms | vs raw KVM |")
    lines.append("|---|---:|---:|---:|---:|")
    for k in configs:
        lines.append(f"| {k} | {med[k]:.2f} | {lo[k]:.2f} | {hi[k]:.2f} | {med[k] / med['rawkvm']:.2f}x |")
    lines.append("")
    lines.append("## Targets\n")
    lines.append("| target | measured | met |")
    lines.append("|---|---:|:---:|")
    r_floor = med["wisp"] / med["rawkvm"]
    lines.append(f"| wisp <= 1.5x raw KVM | {r_floor:.2f}x | {'yes' if r_floor <= 1.5 else 'no'} |")
    if "qemu" in med:
        r_q = med["wisp"] / med["qemu"]
        lines.append(f"| wisp <= 1/20 of QEMU microvm | 1/{1 / r_q:.1f} | {'yes' if r_q <= 0.05 else 'no'} |")
    if ov is not None:
        lines.append(f"| VMM memory overhead <= 2 MiB | {ov / 1024:.2f} MiB | {'yes' if ov <= 2048 else 'no'} |")
    lines.append("")
    lines.append("## Memory\n")
    lines.append("| VMM | peak RSS (KiB, median of 3) |")
    lines.append("|---|---:|")
    for k in configs:
        lines.append(f"| {k} | {rss[k]:.0f} |")
    lines.append("")
    if ov is not None:
        lines.append(f"wisp's own accounting (`--stats`, median of {len(overheads)}): guest RAM resident "
                     f"{guest_res:.0f} KiB; overhead = peak RSS - guest resident = **{ov:.0f} KiB**. "
                     "Peak RSS counts every mapped page of the process, shared libraries included.")
    lines.append("")
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
