#!/usr/bin/env python3
"""Live-migration and snapshot-restore benchmarks for `make bench`.

All on one host, over TCP loopback (127.0.0.1), with the test guest:

  migration   the tick guest (`test=tick tick_ms=1`, idle), the dirty guest
              (`test=dirty`: writes RATE pages/s over 64 MiB while it ticks
              every 1 ms) and the filled guest (`test=dirty dirty_passes=1`:
              every page above 64 MiB written once, then idle: the stream is
              the whole RAM, for throughput), 256 MiB and 1 GiB, migrated by
              wisp (`wisp run --incoming`, PUT/GET /migration on the source's
              API socket) and by QEMU microvm (`-incoming`, QMP
              migrate/query-migrate),
              both with their default 300 ms downtime limit and QEMU's
              bandwidth cap lifted (wisp has none by default).
  ceiling     1 GiB pushed through a 127.0.0.1 TCP connection by a Python
              sender to a receiver in another process: the loopback
              bandwidth a migration stream could reach here.
  restore     a 1 GiB guest restored from a snapshot, eager (--restore) and
              lazy (--restore-lazy): exec to the first tick line on serial.

Guest-observed downtime: every serial line is timestamped as it reaches this
script through the source's and the destination's stdout pipes; the figure
is the largest gap between consecutive tick lines (source and destination
merged in arrival order) from the start of the migration until the
destination has ticked for a while.  It includes one tick period (1 ms), the
serial path to the pipe and this script's wake-up, and any stall during
pre-copy, not only the stop-and-copy.  "switch" is the narrower last source
tick -> first destination tick.

Standalone (e.g. in the testbed, functional check only):
  python3 bench/bench_migrate.py --wisp build/wisp --guest build/guest/testguest.elf \
      --runs 1 --quick --out /dev/stdout
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_virtio  # noqa: E402  (qemu_base: the same microvm command line)

TICK_RE = re.compile(rb"wisp-guest: tick (\d+)")
RESTORED_RE = re.compile(r"restored \S+ in (\d+) ms")
IDLE_CMD = "test=tick tick_ms=1 tick_count=1000000000"
BOOT_WAIT_S = 120       # the testbed boots slowly
MIGRATE_WAIT_S = 900
LINGER_S = 0.3          # destination ticks watched after completion


def dirty_cmd(mb, rate, passes=0):
    extra = f" dirty_passes={passes}" if passes else ""
    return f"test=dirty dirty_mb={mb} dirty_pages_per_s={rate}{extra} tick_ms=1"


# Every page above 64 MiB written once (non-zero), then only ticks: a stream
# as large as the RAM, for throughput.
FILL_CMD = dirty_cmd(4096, 1000000, passes=1)
FILL_DONE = b"dirty: pass 1 done"


class Proc:
    """A child whose stdout and stderr lines are timestamped on arrival."""

    def __init__(self, argv):
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, bufsize=0)
        self.out, self.err = [], []  # (time, bytes line)
        self.cv = threading.Condition()
        self.threads = [threading.Thread(target=self._read, args=(f, lst), daemon=True)
                        for f, lst in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for t in self.threads:
            t.start()

    def _read(self, f, lst):
        fd, part = f.fileno(), b""
        while True:
            chunk = os.read(fd, 65536)
            now = time.monotonic()
            if not chunk:
                break
            lines = (part + chunk).split(b"\n")
            part = lines.pop()
            with self.cv:
                lst.extend((now, ln) for ln in lines)
                self.cv.notify_all()
        with self.cv:
            if part:
                lst.append((time.monotonic(), part))
            self.cv.notify_all()

    def ticks(self):
        with self.cv:
            return [(t, int(m.group(1))) for t, ln in self.out for m in [TICK_RE.search(ln)] if m]

    def wait_for(self, pred, timeout, what):
        end = time.monotonic() + timeout
        with self.cv:
            while not pred():
                if self.p.poll() is not None and not any(t.is_alive() for t in self.threads):
                    break
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.cv.wait(min(left, 0.05))
            if pred():
                return
        raise RuntimeError(f"{what}: timed out or exited ({self.p.poll()}); stderr: "
                           f"{self.stderr()[-600:]} stdout: {self.stdout()[-300:]}")

    def has_tick(self):
        return any(TICK_RE.search(ln) for _, ln in self.out)

    def stderr(self):
        return b"\n".join(ln for _, ln in self.err).decode(errors="replace")

    def stdout(self):
        return b"\n".join(ln for _, ln in self.out).decode(errors="replace")

    def stop(self, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        for t in self.threads:
            t.join(5)
        return self.p.returncode


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_path(path, timeout, proc):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.p.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"{path} never appeared: {proc.stderr()[-600:]}")
        time.sleep(0.01)


# ---------------- wisp's API (HTTP/1.1 over a UNIX socket) ----------------

def api(sock_path, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else b""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(sock_path)
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                  .encode() + data)
        resp = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
    head, _, rest = resp.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        out = b""
        while rest:
            size_s, _, rest = rest.partition(b"\r\n")
            size = int(size_s.split(b";")[0], 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        rest = out
    return status, json.loads(rest) if rest.strip() else None


# ---------------- QMP ----------------

class QMP:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(60)
        self.s.connect(path)
        self.f = self.s.makefile("rb")
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("QMP connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name, **args):
        self.s.sendall(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        r = self._read()
        if "error" in r:
            raise RuntimeError(f"QMP {name}: {r['error']}")
        return r["return"]

    def close(self):
        self.f.close()
        self.s.close()


# ---------------- one migration ----------------

def guest_gaps_ms(src, dst, t_start):
    """(largest gap between consecutive tick lines, source and destination
    merged by arrival time, from t_start on; last source tick line -> first
    destination tick line), in ms."""
    s = [t for t, _ in src.ticks() if t >= t_start]
    d = [t for t, _ in dst.ticks() if t >= t_start]
    ts = sorted(s + d)
    if len(ts) < 2 or not s or not d:
        return float("nan"), float("nan")
    return max(b - a for a, b in zip(ts, ts[1:])) * 1000, (d[0] - s[-1]) * 1000


def settle_then_watch(src, settle):
    """Wait for the first tick (and the fill, for FILL_CMD), then settle_s."""
    settle_s, wait_line = settle
    src.wait_for(src.has_tick, BOOT_WAIT_S, "source guest never ticked")
    if wait_line:
        src.wait_for(lambda: any(wait_line in ln for _, ln in src.out), BOOT_WAIT_S,
                     "the guest never finished filling its RAM")
    time.sleep(settle_s)


def finish_watch(dst):
    dst.wait_for(dst.has_tick, 60, "destination guest never ticked")
    n = len(dst.ticks())
    time.sleep(LINGER_S)
    if len(dst.ticks()) <= n:
        raise RuntimeError("the destination stopped ticking")


def migrate_wisp(wisp, guest, mem, cmdline, settle, tmp):
    port = free_port()
    sock = os.path.join(tmp, "src.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    common = ["--vcpus", "1", "--memory", mem, "--serial", "stdio"]
    dst = Proc([wisp, "run"] + common + ["--incoming", f"tcp:127.0.0.1:{port}",
                                         "--log-level", "info"])
    src = None
    try:
        dst.wait_for(lambda: any(b"waiting for the migration stream" in ln for _, ln in dst.err),
                     60, "wisp destination not listening")
        src = Proc([wisp, "run"] + common + ["--kernel", guest, "--cmdline", cmdline,
                                             "--api-sock", sock])
        wait_path(sock, 60, src)
        settle_then_watch(src, settle)
        t_start = time.monotonic()
        st, r = api(sock, "PUT", "/migration", {"destination_url": f"tcp:127.0.0.1:{port}"})
        if st != 202:
            raise RuntimeError(f"PUT /migration: HTTP {st}: {r}")
        end = t_start + MIGRATE_WAIT_S
        while True:
            st, r = api(sock, "GET", "/migration")
            if r["state"] == "completed":
                break
            if r["state"] != "active" or time.monotonic() > end:
                raise RuntimeError(f"wisp migration: {r}")
            time.sleep(0.005)
        finish_watch(dst)
        gap, switch = guest_gaps_ms(src, dst, t_start)
        code = src.p.wait(30)
        if code != 0:
            raise RuntimeError(f"wisp source exited {code}: {src.stderr()[-400:]}")
        return {"total_ms": r["total_ms"], "downtime_ms": r["downtime_ms"],
                "bytes": r["bytes_sent"], "guest_gap_ms": gap, "switch_ms": switch}
    finally:
        if src:
            src.stop()
        dst.stop()


def qemu_argv(guest, mem, cmdline, qmp):
    argv = bench_virtio.qemu_base(guest, cmdline)
    argv[argv.index("-m") + 1] = mem
    return argv + ["-qmp", f"unix:{qmp},server=on,wait=off"]


def migrate_qemu(guest, mem, cmdline, settle, tmp):
    port = free_port()
    sq, dq = os.path.join(tmp, "qsrc.qmp"), os.path.join(tmp, "qdst.qmp")
    for p in (sq, dq):
        if os.path.exists(p):
            os.unlink(p)
    dst = Proc(qemu_argv(guest, mem, cmdline, dq) + ["-incoming", f"tcp:127.0.0.1:{port}"])
    src = None
    qs = qd = None
    try:
        wait_path(dq, 60, dst)
        qd = QMP(dq)
        if qd.cmd("query-status")["status"] != "inmigrate":
            raise RuntimeError("QEMU destination is not waiting for a migration")
        src = Proc(qemu_argv(guest, mem, cmdline, sq))
        wait_path(sq, 60, src)
        qs = QMP(sq)
        qs.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40, "downtime-limit": 300})
        settle_then_watch(src, settle)
        t_start = time.monotonic()
        qs.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
        end = t_start + MIGRATE_WAIT_S
        while True:
            r = qs.cmd("query-migrate")
            if r.get("status") == "completed":
                break
            if r.get("status") in ("failed", "cancelled") or time.monotonic() > end:
                raise RuntimeError(f"QEMU migration: {r}")
            time.sleep(0.005)
        finish_watch(dst)
        gap, switch = guest_gaps_ms(src, dst, t_start)
        return {"total_ms": r["total-time"], "downtime_ms": r["downtime"],
                "bytes": r.get("ram", {}).get("transferred", 0), "guest_gap_ms": gap, "switch_ms": switch}
    finally:
        for q in (qs, qd):
            if q:
                q.close()
        if src:
            src.stop()
        dst.stop()


# ---------------- loopback ceiling ----------------

RECEIVER = r"""
import socket, sys
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
print(l.getsockname()[1], flush=True)
c, _ = l.accept()
buf = bytearray(4 << 20); n = 0
while True:
    k = c.recv_into(buf)
    if not k:
        break
    n += k
c.sendall(str(n).encode()); c.close()
"""


def loopback_mb_s(total):
    rx = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(rx.stdout.readline())
        block = memoryview(os.urandom(4 << 20))
        with socket.create_connection(("127.0.0.1", port)) as s:
            t0 = time.monotonic()
            sent = 0
            while sent < total:
                s.sendall(block)
                sent += len(block)
            s.shutdown(socket.SHUT_WR)
            got = int(s.recv(64) or b"0")
            dt = time.monotonic() - t0
        if got != sent:
            raise RuntimeError(f"loopback: sent {sent}, received {got}")
        return sent / dt / 1e6
    finally:
        rx.wait(30)


# ---------------- snapshot restore ----------------

def make_snapshot(wisp, guest, mem, tmp):
    sdir = os.path.join(tmp, "snap")
    shutil.rmtree(sdir, ignore_errors=True)
    os.makedirs(sdir)
    sock = os.path.join(tmp, "snap.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    src = Proc([wisp, "run", "--vcpus", "1", "--memory", mem, "--serial", "stdio",
                "--kernel", guest, "--cmdline", FILL_CMD, "--api-sock", sock,
                "--snapshot-dir", sdir])
    try:
        wait_path(sock, 60, src)
        settle_then_watch(src, (0.1, FILL_DONE))
        p = subprocess.run([wisp, "snapshot", "create", "--api-sock", sock, "--state", "state",
                            "--mem", "mem"], capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise RuntimeError(f"wisp snapshot create: {p.returncode}: {p.stderr}")
        m = re.search(r'"paused_ms"\s*:\s*(\d+)', p.stdout + p.stderr)
        return sdir, int(m.group(1)) if m else float("nan")
    finally:
        src.stop()


def restore_once(wisp, mem, sdir, lazy):
    argv = [wisp, "run", "--vcpus", "1", "--memory", mem, "--serial", "stdio",
            "--log-level", "info", "--restore", os.path.join(sdir, "state"),
            "--restore-mem", os.path.join(sdir, "mem")] + (["--restore-lazy"] if lazy else [])
    p = Proc(argv)
    try:
        p.wait_for(p.has_tick, BOOT_WAIT_S, "restored guest never ticked")
        first = p.ticks()[0][0]
        p.wait_for(lambda: RESTORED_RE.search(p.stderr()) is not None, 10, "no 'restored' log")
        own = int(RESTORED_RE.search(p.stderr()).group(1))
        return (first - p.t0) * 1000, own
    finally:
        p.stop()


# ---------------- all of it ----------------

def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def yn(ok):
    return "yes" if ok else "no"


def bench(wisp, guest, runs=3, quick=False, skip_qemu=False, rate=5000):
    """Returns a list of Markdown lines."""
    have_qemu = shutil.which("qemu-system-x86_64") is not None and not skip_qemu
    sizes = ["128M"] if quick else ["256M", "1G"]
    dirty_mb = 32 if quick else 64
    restore_mem = "128M" if quick else "1G"
    # (name, guest command line, (seconds to let it run first, line to wait for))
    loads = [("idle", IDLE_CMD, (0.3, None)),
             (f"dirty {rate} pages/s", dirty_cmd(dirty_mb, rate), (1.0, None)),
             ("filled", FILL_CMD, (0.2, FILL_DONE))]
    vmms = ["wisp", "qemu"] if have_qemu else ["wisp"]
    tmp = tempfile.mkdtemp(prefix="wisp-migbench-")
    res, errors = {}, []
    try:
        ceil_bytes = (256 if quick else 1024) << 20
        ceiling = med([loopback_mb_s(ceil_bytes) for _ in range(3)])
        for mem in sizes:
            for load, cmd, settle in loads:
                for vmm in vmms:
                    res[(mem, load, vmm)] = []
                for _ in range(runs):  # interleaved
                    for vmm in vmms:
                        try:
                            res[(mem, load, vmm)].append(
                                migrate_wisp(wisp, guest, mem, cmd, settle, tmp)
                                if vmm == "wisp" else migrate_qemu(guest, mem, cmd, settle, tmp))
                        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                            # One failure must not lose the rest of `make bench`.
                            errors.append(f"{mem} {load} {vmm}: {str(e)[:300]}")
                            print(f"bench_migrate: {errors[-1]}", file=sys.stderr)
        rest, snap_paused = {"eager": [], "lazy": []}, float("nan")
        try:
            sdir, snap_paused = make_snapshot(wisp, guest, restore_mem, tmp)
            for _ in range(runs):
                for kind in rest:
                    rest[kind].append(restore_once(wisp, restore_mem, sdir, kind == "lazy"))
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            errors.append(f"snapshot/restore: {str(e)[:300]}")
            print(f"bench_migrate: {errors[-1]}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def m(key, field):
        return med([r[field] for r in res.get(key, [])])

    def mbps(key):
        return med([r["bytes"] / 1e6 / (r["total_ms"] / 1000) for r in res.get(key, [])
                    if r["total_ms"] > 0])

    out = ["## Live migration and snapshots", "",
           "bench/bench_migrate.py. Source and destination on this host, TCP over 127.0.0.1, "
           "1 vCPU, serial to a pipe, the test guest ticking every 1 ms. Loads: `idle` is "
           f"`{IDLE_CMD}`; `dirty` is `{dirty_cmd(dirty_mb, rate)}` (it writes {rate} distinct "
           f"pages per second over {dirty_mb} MiB while it ticks); `filled` is `{FILL_CMD}` "
           "(it writes every page above 64 MiB once, then only ticks, so nearly all RAM "
           "must be sent: the throughput case; the idle guest's RAM is mostly zero pages). "
           "Both VMMs with their default 300 ms downtime limit; QEMU's bandwidth cap "
           "(max-bandwidth) is lifted, wisp has none. "
           f"{runs} run(s) per cell, VMMs interleaved, medians. Times in ms.", "",
           "- total, paused: as the VMM reports them (wisp: GET /migration `total_ms`, "
           "`downtime_ms`; QEMU: query-migrate `total-time`, `downtime`).",
           "- guest gap: the guest-observed downtime, the largest gap between consecutive "
           "`tick` lines, source and destination serial merged, each line timestamped when it "
           "reaches this script through the VMM's stdout pipe, from the migration request "
           f"until the destination has ticked for {LINGER_S * 1000:.0f} ms. It includes one "
           "tick period (1 ms), the serial exits, the pipe and this script's wake-up, and any "
           "stall during pre-copy, not only the stop-and-copy.",
           "- switch: last source tick line -> first destination tick line (the gap at the "
           "hand-over itself, same clock).",
           "- MB/s: bytes sent (wisp `bytes_sent`, QEMU `ram.transferred`) / total time, "
           "MB = 10^6 bytes.", "",
           "| RAM | load | VMM | total | paused (VMM) | guest gap | switch | MB/s |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
    for mem in sizes:
        for load, _, _ in loads:
            for vmm in vmms:
                k = (mem, load, vmm)
                out.append(f"| {mem} | {load} | {vmm} | {m(k, 'total_ms'):.0f} | "
                           f"{m(k, 'downtime_ms'):.1f} | {m(k, 'guest_gap_ms'):.1f} | "
                           f"{m(k, 'switch_ms'):.1f} | {mbps(k):.0f} |")
    out += ["", f"Loopback TCP ceiling, measured in the same run: {ceiling:.0f} MB/s (a Python "
            f"sender pushing {ceil_bytes >> 20} MiB in 4 MiB sendall() calls to a receiver "
            "in another process, through 127.0.0.1; median of 3).", ""]
    out += ["| snapshot restore | exec -> first tick line | wisp's \"restored in\" |",
            "|---|---:|---:|"]
    for kind, xs in rest.items():
        out.append(f"| {restore_mem} {kind} | {med([x[0] for x in xs]):.1f} | "
                   f"{med([x[1] for x in xs]):.0f} |")
    out += ["", f"The snapshot is of the `filled` guest (every page above 64 MiB written; "
            f"`wisp snapshot create` paused it {snap_paused} ms). Its memory file is in the "
            "page cache. `exec -> first tick line` is from just before fork/exec of "
            "`wisp run --restore` until the guest's first tick line arrives on the serial "
            "pipe; wisp's figure is its own log line (`--log-level info`).", ""]
    out += ["| target | measured | met |", "|---|---:|:---:|"]
    for mem in sizes:
        d = m((mem, "idle", "wisp"), "downtime_ms")
        g = m((mem, "idle", "wisp"), "guest_gap_ms")
        out.append(f"| {mem} idle downtime <= 10 ms (wisp's figure / guest gap) | "
                   f"{d:.1f} / {g:.1f} | {yn(d <= 10)} / {yn(g <= 10)} |")
        if have_qemu:
            q = m((mem, "idle", "qemu"), "downtime_ms")
            qg = m((mem, "idle", "qemu"), "guest_gap_ms")
            out.append(f"| {mem} idle downtime <= 1/5 of QEMU's (VMM figures / guest gaps) | "
                       f"{d:.1f} vs {q:.1f} / {g:.1f} vs {qg:.1f} | "
                       f"{yn(d * 5 <= q)} / {yn(g * 5 <= qg)} |")
    for mem in sizes:
        for load, _, _ in loads:
            if have_qemu:
                t = m((mem, load, "wisp"), "total_ms")
                q = m((mem, load, "qemu"), "total_ms")
                out.append(f"| {mem} {load}: total time <= 1/2 of QEMU's | {t:.0f} vs {q:.0f} | "
                           f"{yn(t * 2 <= q)} |")
    for mem in sizes:
        pct = mbps((mem, "filled", "wisp")) / ceiling * 100
        out.append(f"| {mem} filled: wisp throughput >= 80% of the loopback ceiling | "
                   f"{pct:.0f}% | {yn(pct >= 80)} |")
    lz = med([x[0] for x in rest["lazy"]])
    lz_own = med([x[1] for x in rest["lazy"]])
    out.append(f"| {restore_mem} lazy restore <= 10 ms (exec -> first tick / wisp's log) | "
               f"{lz:.1f} / {lz_own:.0f} | {yn(lz <= 10)} / {yn(lz_own <= 10)} |")
    if errors:
        out += ["", "Failed runs (left out of the medians; `nan` where none succeeded):", ""]
        out += [f"- {e}" for e in errors]
    if not have_qemu:
        out += ["", "(QEMU rows skipped: " + ("--skip-qemu" if skip_qemu else
                                              "qemu-system-x86_64 not installed") + ")"]
    out.append("")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wisp", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=int, default=5000, help="dirty pages per second")
    ap.add_argument("--quick", action="store_true", help="128 MiB guests only (functional check)")
    ap.add_argument("--skip-qemu", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import bench
    lines = ["# Migration benchmark (bench/bench_migrate.py)", "", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in bench.machine_details().items()]
    lines += [""] + bench_migrate_lines(a)
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")


def bench_migrate_lines(a):
    return bench(a.wisp, a.guest, runs=a.runs, quick=a.quick, skip_qemu=a.skip_qemu,
                 rate=a.rate)


if __name__ == "__main__":
    main()
