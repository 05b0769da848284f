"""virtio-balloon with a stock Linux guest (imported by guest_tests.py).

Why a module of its own: guest_tests.py is already long, and these checks
need the control API and the VMM's memory figures, which no other case uses.

Two boots of the same kernel, each with 256 MiB and a balloon:
  - "reporting" (free_page_reporting=on, stats every second): the guest
    fills a tmpfs with 160 MiB and removes it; Linux reports the freed
    runs, wisp punches them out of the RAM memfd, and the VMM's resident
    memory must fall by at least BALLOON_MIN_DROP_MIB.  Statistics must
    arrive (GET /balloon/statistics has free_memory).
  - "inflate" (no reporting): the same fill and remove leaves the VMM's
    memory high (the control: nothing is given back by itself), then PATCH
    /balloon {"amount_mib": 128} must make the guest inflate (actual_pages
    reaches the target) and the VMM's memory fall; PATCH back to 0 must
    deflate it.
Guest memory is a shared memfd: its resident pages count as RssShmem in
/proc/PID/status, which is what is measured (with RssAnon, for the rest).
"""
import json
import os
import re
import shlex
import shutil
import socket
import tempfile
import time

FILL_MIB = 160
BALLOON_MIN_DROP_MIB = 100
INFLATE_MIB = 128
SETTLE_TIMEOUT = 40  # s for the guest to report or inflate


def api(sock_path, method, path, body=None, timeout=10):
    """One HTTP/1.1 request on the control socket; returns (status, parsed JSON or None)."""
    data = json.dumps(body).encode() if body is not None else b""
    req = ("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
           "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (method, path, len(data)))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(req.encode() + data)
        resp = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
    finally:
        s.close()
    head, _, payload = resp.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d+)", head)
    status = int(m.group(1)) if m else 0
    try:
        return status, json.loads(payload) if payload.strip() else None
    except ValueError:
        return status, None


def rss_mib(pid):
    """RssShmem + RssAnon of `pid` in MiB (guest RAM is a shared memfd)."""
    total = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("RssShmem:", "RssAnon:")):
                total += int(line.split()[1])
    return total / 1024.0


def wait_for(fn, timeout, step=0.5):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


FILL = ("mkdir -p /mnt/t && mount -t tmpfs -o size=%dm tmpfs /mnt/t && "
        "dd if=/dev/zero of=/mnt/t/big bs=1M count=%d 2>/dev/null && echo filled-$((1+1))"
        % (FILL_MIB + 16, FILL_MIB))
FREE = "rm /mnt/t/big && umount /mnt/t && echo freed-$((1+1))"


def balloon_case(res, args, case, kernel, initrd, guest_cls, boot_timeout, log_patterns,
                 log_filter):
    """Run both boots of the balloon case; checks go to `res`.  guest_cls is
    guest_tests.Guest; log_patterns and log_filter are the suite's dmesg rule
    (the lines to fetch, and a function returning the unexplained ones)."""
    for mode in ("reporting", "inflate"):
        _boot(res, args, case, kernel, initrd, guest_cls, boot_timeout, mode, log_patterns,
              log_filter)


def _boot(res, args, case, kernel, initrd, guest_cls, boot_timeout, mode, log_patterns,
          log_filter):
    name = "%s/%s" % (case.name, mode)
    tmp = tempfile.mkdtemp(prefix="wisp-bl-")
    sock = os.path.join(tmp, "api.sock")
    spec = "balloon,deflate_on_oom=on,stats_polling_interval_s=1"
    if mode == "reporting":
        spec += ",free_page_reporting=on"
    argv = [args.wisp, "run", "--kernel", kernel, "--initrd", initrd,
            "--cmdline", "console=ttyS0 panic=-1 loglevel=5", "--vcpus", "1", "--memory", "256M",
            "--serial", "stdio", "--api-sock", sock, "--device", spec] + args.wisp_arg
    g = guest_cls(argv, os.path.join(args.workdir, name.replace("/", "-") + ".log"))
    try:
        if not res.check(name + "/boot", g.expect("WISP-GUEST-READY", boot_timeout) is not None,
                         "userspace reached" if g.proc.poll() is None else
                         "VMM exited with status %s" % g.proc.poll()):
            return
        out = g.run("for d in /sys/bus/virtio/devices/*; do echo dev $(cat $d/device) "
                    "$(basename $(readlink $d/driver) 2>/dev/null); done")
        devs = [l.strip() for l in (out or "").splitlines() if l.startswith("dev ")]
        res.check(name + "/driver-bound", "dev 0x0005 virtio_balloon" in devs,
                  "; ".join(devs) if devs else "no answer")
        pid = g.proc.pid
        base = rss_mib(pid)
        out = g.run(FILL, timeout=120)
        filled = rss_mib(pid)
        if not res.check(name + "/fill", out is not None and "filled-2" in out,
                         "VMM memory %.0f MiB at boot, %.0f MiB after the guest wrote %d MiB"
                         % (base, filled, FILL_MIB)):
            return
        out = g.run(FREE)
        if mode == "reporting":
            low = wait_for(lambda: rss_mib(pid) < filled - BALLOON_MIN_DROP_MIB, SETTLE_TIMEOUT)
            after = rss_mib(pid)
            res.check(name + "/rss-falls", bool(low) and out is not None,
                      "VMM memory %.0f MiB -> %.0f MiB after the guest freed %d MiB (want a fall "
                      "of at least %d MiB)" % (filled, after, FILL_MIB, BALLOON_MIN_DROP_MIB))
            st, stats = api(sock, "GET", "/balloon/statistics")
            res.check(name + "/statistics", st == 200 and stats and "free_memory" in stats,
                      "GET /balloon/statistics: %s %s" % (st, json.dumps(stats)[:300]))
        else:
            time.sleep(3)
            kept = rss_mib(pid)
            res.check(name + "/rss-kept-without-reporting", kept > filled - 32,
                      "VMM memory %.0f MiB -> %.0f MiB after the guest freed %d MiB (no reporting:"
                      " nothing given back yet)" % (filled, kept, FILL_MIB))
            st, _ = api(sock, "PATCH", "/balloon", {"amount_mib": INFLATE_MIB})
            want = INFLATE_MIB * 256

            def actual():
                s, b = api(sock, "GET", "/balloon/statistics")
                return b["actual_pages"] if s == 200 and b and b.get("actual_pages", 0) >= want else 0
            got = wait_for(actual, SETTLE_TIMEOUT)
            after = rss_mib(pid)
            res.check(name + "/inflate", st == 204 and got >= want,
                      "PATCH /balloon %d MiB: status %s, actual_pages %s (want %d)"
                      % (INFLATE_MIB, st, got, want))
            res.check(name + "/rss-falls", after < kept - (INFLATE_MIB - 28),
                      "VMM memory %.0f MiB -> %.0f MiB after inflating %d MiB"
                      % (kept, after, INFLATE_MIB))
            st, _ = api(sock, "PATCH", "/balloon", {"amount_mib": 0})

            def deflated():
                s, b = api(sock, "GET", "/balloon/statistics")
                return s == 200 and b and b.get("actual_pages") == 0
            ok = wait_for(deflated, SETTLE_TIMEOUT)
            res.check(name + "/deflate", st == 204 and bool(ok), "PATCH /balloon 0: status %s" % st)
            st, cfg = api(sock, "GET", "/balloon")
            res.check(name + "/get-config", st == 200 and cfg == {
                "amount_mib": 0, "deflate_on_oom": True, "stats_polling_interval_s": 1},
                "GET /balloon: %s %s" % (st, cfg))
        # The suite's own rule (BAD_LOG less BENIGN_LOG, from guest_tests.py),
        # plus any complaint of the balloon driver.
        pattern = "|".join(log_patterns + [r"virtio_balloon.*([Ee]rror|fail)"])
        found = g.run("dmesg | grep -E %s" % shlex.quote(pattern), timeout=60)
        bad = log_filter(found or "") if found is not None else []
        bad += [l.strip() for l in (found or "").splitlines()
                if re.search(r"virtio_balloon.*([Ee]rror|fail)", l)]
        res.check(name + "/log-clean", found is not None and not bad,
                  "; ".join(bad[:3]) if bad else
                  "no platform faults or balloon errors in dmesg" if found is not None
                  else "dmesg did not finish")
        g.send("poweroff -f")
        st = g.wait_exit(30)
        res.check(name + "/poweroff", st == 0, "exit status %s" % st)
    finally:
        g.kill()
        shutil.rmtree(tmp, ignore_errors=True)
