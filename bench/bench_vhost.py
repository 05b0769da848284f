#!/usr/bin/env python3
"""External data-plane benchmarks for `make bench` (issue 11).

  blk IOPS  4 KiB random reads and writes, queue depth 16, the test guest's
            ring-3 loop (as bench_virtio.py), on one 256 MiB raw image through:
            wisp's built-in blk, wisp over vhost-user-blk (qemu-storage-daemon),
            and QEMU microvm's vhost-user-blk (virtio-mmio) on the same daemon.
            Target: wisp's vhost-user IOPS >= 1.2x QEMU's on the same backend.
  reconnect the daemon killed under a running guest and started again after
            a fixed outage; wisp logs when the new daemon has the rings
            ("the backend is back after N ms", N from the disconnect): the gap
            is N minus the outage, i.e. from the restart to the rings flowing
            (wisp retries every 100 ms, which bounds it from below).

Runs interleaved, medians.  Needs root, qemu-storage-daemon and
qemu-system-x86_64; numbers mean something on native KVM only.
"""
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

from bench_virtio import qemu_base, run

QSD = "qemu-storage-daemon"


def start_qsd(img, sock):
    if os.path.exists(sock):
        os.unlink(sock)
    p = subprocess.Popen([QSD, "--blockdev",
                          "driver=file,node-name=d,filename=%s,cache.direct=off,aio=io_uring" % img,
                          "--export", "type=vhost-user-blk,id=e,node-name=d,addr.type=unix,"
                          "addr.path=%s,writable=on" % sock],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(sock) or p.poll() is not None:
            break
        time.sleep(0.02)
    if not os.path.exists(sock):
        raise RuntimeError("qemu-storage-daemon did not listen")
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def reconnect_gap(wisp, guest, img, sock, outage_s=0.5):
    """One guest run with the daemon killed 1 s in and restarted outage_s
    later; returns the gap in ms (restart to rings taken over)."""
    qsd = start_qsd(img, sock)
    cmd = "test=bench-blk bench_op=read bench_secs=4 bench_qd=16"
    w = subprocess.Popen([wisp, "run", "--kernel", guest, "--debug-exit", "--memory", "256M",
                          "--device", "blk,vhost-user=%s" % sock, "--cmdline", cmd],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        qsd.send_signal(signal.SIGKILL)
        qsd.wait()
        time.sleep(outage_s)
        qsd = start_qsd(img, sock)
        _, err = w.communicate(timeout=60)
    finally:
        if w.poll() is None:
            w.kill()
        stop(qsd)
    m = re.search(r"the backend is back after (\d+) ms", err)
    if not m:
        raise RuntimeError("wisp did not take the new daemon: %s" % err[-400:])
    return int(m.group(1)) - outage_s * 1000


def bench(wisp, guest, runs, secs=2):
    """Returns a list of Markdown lines."""
    if os.geteuid() != 0 or not shutil.which("qemu-system-x86_64") or not shutil.which(QSD):
        return ["(vhost-user benchmarks skipped: need root, qemu-system-x86_64 and "
                "qemu-storage-daemon)", ""]
    d = tempfile.mkdtemp(prefix="wisp-bench-vhu-")
    img = os.path.join(d, "disk.img")
    sock = os.path.join(d, "vhu.sock")
    with open(img, "wb") as f:
        f.truncate(256 << 20)
    subprocess.run(["dd", "if=/dev/urandom", f"of={img}", "bs=1M", "count=256",
                    "conv=notrunc", "status=none"], check=True)
    rows, gaps = {}, []
    try:
        for op in ("read", "write"):
            cmd = f"test=bench-blk bench_op={op} bench_secs={secs} bench_qd=16"
            builtin = [wisp, "run", "--kernel", guest, "--debug-exit", "--memory", "256M",
                       "--device", f"blk,path={img}", "--cmdline", cmd]
            vhu = [wisp, "run", "--kernel", guest, "--debug-exit", "--memory", "256M",
                   "--device", f"blk,vhost-user={sock}", "--cmdline", cmd]
            qemu = qemu_base(guest, cmd)
            mi = qemu.index("-M") + 1
            qemu[mi] += ",memory-backend=mem"
            qemu += ["-object", "memory-backend-memfd,id=mem,size=256M,share=on",
                     "-chardev", f"socket,id=c0,path={sock}",
                     "-device", "vhost-user-blk,chardev=c0,num-queues=1"]
            b, w, q = [], [], []
            for _ in range(runs):
                b.append(run(builtin, "blk"))
                for argv, out in ((vhu, w), (qemu, q)):
                    qsd = start_qsd(img, sock)
                    try:
                        out.append(run(argv, "blk"))
                    finally:
                        stop(qsd)
            med = lambda ms: statistics.median(int(m.group(4)) for m in ms)  # noqa: E731
            rows[f"blk {op} IOPS"] = (med(b), med(w), med(q))
        for _ in range(runs):
            gaps.append(reconnect_gap(wisp, guest, img, sock))
    finally:
        shutil.rmtree(d, ignore_errors=True)

    out = ["## External data planes (issue 11)", "",
           "4 KiB random I/O, queue depth 16, the test guest's ring-3 loop, one 256 MiB raw image;",
           "vhost-user: qemu-storage-daemon's vhost-user-blk export (io_uring, page cache), a",
           "fresh daemon per run; QEMU microvm uses `-device vhost-user-blk` (virtio-mmio) on it with",
           f"its RAM in a shared memfd. {secs} s per run, {runs} runs, interleaved, medians.", "",
           "| metric | wisp built-in | wisp vhost-user | QEMU vhost-user | wisp / QEMU (vhost-user) |",
           "|---|---:|---:|---:|---:|"]
    for k, (bv, wv, qv) in rows.items():
        out.append(f"| {k} | {bv:,.0f} | {wv:,.0f} | {qv:,.0f} | {wv / qv:.2f} |")
    out += ["", "| target | measured | met |", "|---|---:|:---:|"]
    for k in ("blk read IOPS", "blk write IOPS"):
        _, wv, qv = rows[k]
        out.append(f"| {k}, vhost-user, >= 1.2x QEMU | {wv / qv:.2f}x | "
                   f"{'yes' if wv / qv >= 1.2 else 'no'} |")
    out += ["", f"Backend restart: the daemon killed under a reading guest and started again 0.5 s",
            f"later; from the restart to wisp having the rings back: median "
            f"{statistics.median(gaps):.0f} ms over {len(gaps)} runs (wisp retries every 100 ms).", ""]
    return out
