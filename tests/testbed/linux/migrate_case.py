"""Live migration of a running stock Linux guest between two wisp processes.

The guest keeps data in memory, a counter and a disk writer going while it
hops back and forth; after every hop its memory, clock and devices are
checked, and the disk's records at the end (guest_tests.py runs it for the
case with migrate=True).
"""
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time

from linux_common import (BAD_LOG, BENIGN_LOG, END_TIMEOUT, Guest, console_talk, make_disk,
                          unexplained, vmm_argv)


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
