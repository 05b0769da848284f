"""vsock and balloon across live migration and snapshot/restore, with a stock
Linux guest (imported by guest_tests.py).

Why a case of its own: the vsock device drops its host connections on load
and tells the guest with a transport reset, and the balloon's target and
`actual` travel in its device record; only the kernel's own drivers show
that both really come back.  One guest, three wisp processes:
  a  boots it; vsock-agent serves the echo port; a guest flood towards a
     host peer that never reads is left blocked; PATCH /balloon inflates
     BALLOON_MIB, and the guest's MemTotal falls by as much.
  b  receives it by live migration (`wisp migrate`, UNIX socket): GET
     /balloon and /balloon/statistics report the same target and actual,
     MemTotal is what the guest had before the move; the host reaches the
     agent again on b's uds_path (CONNECT, echo), the guest reaches a host
     listener on b's `<uds_path>_<port>`, and the blocked flood failed
     with "Connection reset": the guest kernel got the transport reset.
  c  is restored from a snapshot of b (`wisp snapshot create --stop`,
     `wisp run --restore`): the host reaches the agent again, the balloon
     still reports the target, PATCH /balloon 0 deflates it and MemTotal
     comes back to the boot value.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from balloon_case import api, wait_for
from vsock_case import ECHO_PORT, REPLY_PORT, echo_ok, host_connect, last, reply_server

BALLOON_MIB = 64
STALL_PORT = 1236
MIG_TIMEOUT = 120  # s, one `wisp migrate` or `wisp snapshot create`
SETTLE = 40  # s for the guest's balloon driver to follow a target


def meminfo(g):
    """(MemTotal, MemAvailable) in KiB from the guest's /proc/meminfo, or None."""
    out = g.run("grep -E '^Mem(Total|Available):' /proc/meminfo | tr -s ' ' | tr '\\n' ' '; echo mi-end")
    m = re.search(r"MemTotal: (\d+) kB MemAvailable: (\d+) kB mi-end", out or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def balloon_state(sock):
    """(amount_mib of GET /balloon, target_mib, actual_mib) or None."""
    try:
        s1, cfg = api(sock, "GET", "/balloon")
        s2, st = api(sock, "GET", "/balloon/statistics")
    except OSError:
        return None  # that wisp is gone
    if s1 != 200 or s2 != 200 or not cfg or not st:
        return None
    return cfg.get("amount_mib"), st.get("target_mib"), st.get("actual_mib")


def vsock_mig_case(res, args, case, kernel, initrd, guest_cls):
    name = case.name
    tmp = tempfile.mkdtemp(prefix="wisp-vm-")
    snapdir = os.path.join(tmp, "snap")
    os.mkdir(snapdir)
    uds = {s: os.path.join(tmp, "%s.sock" % s) for s in "abc"}
    apis = {s: os.path.join(tmp, "api-%s" % s) for s in "abc"}
    common = ["--vcpus", "1", "--memory", "256M", "--serial", "stdio", "--device",
              "balloon,stats_polling_interval_s=1"]
    guests = []

    def start(side, extra):
        argv = ([args.wisp, "run"] + common + ["--device", "vsock,cid=3,uds_path=" + uds[side],
                                               "--api-sock", apis[side]] + extra + args.wisp_arg)
        guests.append(guest_cls(argv, os.path.join(args.workdir, "%s.%s.log" % (name, side))))
        return guests[-1]

    def reach_agent(side, tag):
        """CONNECT to the agent's echo port on `side`'s uds_path, echo."""
        try:
            s, ok = host_connect(uds[side], ECHO_PORT)
            good = bool(re.match(r"OK \d+$", ok)) and echo_ok(s, b"hello-" + tag.encode() * 500)
            s.close()
            return good, ok
        except OSError as e:
            return False, str(e)

    stop = None
    stall = None
    try:
        g = start("a", ["--kernel", kernel, "--initrd", initrd,
                        "--cmdline", "console=ttyS0 panic=-1 loglevel=5 " + args.append])
        if not res.check(name + "/boot", g.expect("WISP-GUEST-READY", args.boot_timeout) is not None,
                         "userspace" if g.proc.poll() is None else "exit %s" % g.proc.poll()):
            return
        out = g.run("vsock-agent serve %d > /tmp/serve.log 2>&1 & sleep 0.5; cat /tmp/serve.log" % ECHO_PORT)
        ok_a, line = reach_agent("a", "a")
        res.check(name + "/a-agent", out is not None and "listening" in out and ok_a,
                  "%s; host CONNECT %d: %s" % (last(out), ECHO_PORT, line))

        # A guest connection the move must break: a flood into a peer that never reads.
        stall = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stall.bind(uds["a"] + "_%d" % STALL_PORT)
        stall.listen(1)
        stall.settimeout(15)
        g.run("vsock-agent flood 2 %d 4096 > /tmp/flood.log 2>&1 & true" % STALL_PORT)
        peer, _ = stall.accept()
        time.sleep(1)

        boot_mem = meminfo(g)
        st, _ = api(apis["a"], "PATCH", "/balloon", {"amount_mib": BALLOON_MIB})
        inflated = wait_for(lambda: (balloon_state(apis["a"]) or (0, 0, 0))[2] == BALLOON_MIB, SETTLE)
        mem_a = meminfo(g)
        drop = (boot_mem[0] - mem_a[0]) // 1024 if boot_mem and mem_a else None
        res.check(name + "/a-inflate", st == 204 and bool(inflated) and drop == BALLOON_MIB,
                  "PATCH /balloon %d: status %s, %s; guest MemTotal %s -> %s kB (-%s MiB)" % (
                      BALLOON_MIB, st, balloon_state(apis["a"]), boot_mem and boot_mem[0],
                      mem_a and mem_a[0], drop))

        # Live migration a -> b.
        path = os.path.join(tmp, "mig.sock")
        d = start("b", ["--incoming", "unix:" + path, "--log-level", "info", "--snapshot-dir", snapdir])
        listening = d.expect(r"waiting for the migration stream", 30) is not None
        t0 = time.monotonic()
        r = subprocess.run([args.wisp, "migrate", "--api-sock", apis["a"], "--to", "unix:" + path],
                           capture_output=True, text=True, timeout=MIG_TIMEOUT)
        loaded = d.expect(r"received and loaded in (\d+) ms; running", 20)
        src_st = g.wait_exit(15)
        peer.close()
        if not res.check(name + "/migrate", listening and r.returncode == 0 and loaded is not None,
                         "wisp migrate exit %d in %.1f s, source exit %s, destination loaded in %s ms%s"
                         % (r.returncode, time.monotonic() - t0, src_st,
                            loaded.group(1).decode() if loaded else "?",
                            "" if r.returncode == 0 else ": " + r.stderr.strip()[-300:])):
            return
        g = d

        bs = balloon_state(apis["b"])
        mem_b = meminfo(g)
        res.check(name + "/b-balloon", bs == (BALLOON_MIB, BALLOON_MIB, BALLOON_MIB) and mem_b is not None
                  and mem_a is not None and mem_b[0] == mem_a[0],
                  "GET /balloon amount, target, actual (MiB): %s; guest MemTotal %s kB (before the "
                  "move %s), MemAvailable %s kB" % (bs, mem_b and mem_b[0], mem_a and mem_a[0],
                                                     mem_b and mem_b[1]))
        ok_b, line = reach_agent("b", "b")
        res.check(name + "/b-host-to-guest", ok_b, "CONNECT %d on the destination's uds_path: %s, echo"
                  % (ECHO_PORT, line))
        stop = threading.Event()
        reply_server(uds["b"] + "_%d" % REPLY_PORT, stop)
        out = g.run("vsock-agent send 2 %d after-migration" % REPLY_PORT, timeout=30)
        res.check(name + "/b-guest-to-host", out is not None and "pong:after-migration" in out, last(out))
        out = g.run("cat /tmp/flood.log; echo flood-read")
        res.check(name + "/b-transport-reset", out is not None and "reset" in out.lower()
                  and "flood done" not in out,
                  "the guest's blocked flood ended with: %s" % " ".join((out or "").split("\n")[1:2]))

        # Snapshot of b (b exits), restore as c.
        r = subprocess.run([args.wisp, "snapshot", "create", "--api-sock", apis["b"], "--state", "s.state",
                            "--mem", "s.mem", "--stop"], capture_output=True, text=True, timeout=MIG_TIMEOUT)
        b_st = g.wait_exit(20)
        if not res.check(name + "/snapshot", r.returncode == 0 and b_st == 0,
                         "wisp snapshot create --stop exit %d, wisp exit %s %s" % (
                             r.returncode, b_st, r.stderr.strip()[-300:])):
            return
        g = start("c", ["--restore", os.path.join(snapdir, "s.state"),
                        "--restore-mem", os.path.join(snapdir, "s.mem")])
        time.sleep(1)
        ok_c = wait_for(lambda: reach_agent("c", "c")[0], 20, step=1)
        res.check(name + "/c-host-to-guest", bool(ok_c) and g.proc.poll() is None,
                  "restored; CONNECT %d on the clone's uds_path and echo: %s (wisp %s)"
                  % (ECHO_PORT, bool(ok_c), "running" if g.proc.poll() is None else
                     "exited %s" % g.proc.poll()))
        bs = balloon_state(apis["c"])
        st, _ = api(apis["c"], "PATCH", "/balloon", {"amount_mib": 0})
        deflated = wait_for(lambda: (balloon_state(apis["c"]) or (1, 1, 1))[2] == 0, SETTLE)
        mem_c = meminfo(g)
        res.check(name + "/c-balloon-deflate", bs == (BALLOON_MIB, BALLOON_MIB, BALLOON_MIB) and st == 204
                  and bool(deflated) and mem_c is not None and boot_mem is not None
                  and mem_c[0] == boot_mem[0],
                  "restored balloon %s; PATCH /balloon 0: status %s, deflated %s; guest MemTotal %s kB "
                  "(at boot %s)" % (bs, st, bool(deflated), mem_c and mem_c[0], boot_mem and boot_mem[0]))
        g.send("poweroff -f")
        res.check(name + "/poweroff", g.wait_exit(30) == 0, "the restored guest powers off")
    finally:
        if stop:
            stop.set()
        if stall:
            stall.close()
        for x in guests:
            x.kill()
        shutil.rmtree(tmp, ignore_errors=True)
