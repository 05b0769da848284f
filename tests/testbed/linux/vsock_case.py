"""The stock-Linux vsock case of guest_tests.py: wisp's hybrid vsock against
the kernel's own virtio-vsock driver and vsock-agent (vsock_agent.c) in the
guest.  Checked, each against real sockets on the host:
  - host to guest: CONNECT to the agent's echo port through uds_path, OK,
    echo; two such connections open at once;
  - guest to host: the agent connects to CID 2 port P and gets the host
    listener's reply on <uds_path>_P;
  - a host peer that stops reading (the guest floods it) stalls neither the
    guest nor its other connections, in both directions.
Kept in its own file so guest_tests.py stays readable."""

import os
import re
import socket
import tempfile
import threading
import time

ECHO_PORT = 52
REPLY_PORT = 1234
STALL_PORT = 1235


def host_connect(uds, port, timeout=15):
    """CONNECT to guest port `port`; returns (socket, the OK line)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(uds)
    s.sendall(b"CONNECT %d\n" % port)
    line = b""
    while not line.endswith(b"\n") and len(line) < 64:
        c = s.recv(1)
        if not c:
            break
        line += c
    return s, line.decode(errors="replace").strip()


def echo_ok(s, msg):
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        c = s.recv(len(msg) - len(got))
        if not c:
            break
        got += c
    return got == msg


def reply_server(path, stop):
    """Accept on `path`; answer each connection "pong:<what it sent>"."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    srv.settimeout(0.5)

    def serve():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            c.settimeout(10)
            data = b""
            try:
                while True:
                    b = c.recv(4096)
                    if not b:
                        break
                    data += b
                c.sendall(b"pong:" + data)
            except OSError:
                pass
            c.close()
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def last(out):
    """The last line of a command's output (the echoed command line comes first)."""
    lines = (out or "no answer").strip().splitlines()
    return lines[-1] if lines else ""


def vsock_case(res, args, case, kernel, initrd, guest_cls):
    name = case.name
    d = tempfile.mkdtemp(prefix="wisp-vs-")
    uds = os.path.join(d, "v.sock")
    argv = [args.wisp, "run", "--kernel", kernel, "--initrd", initrd,
            "--cmdline", "console=ttyS0 panic=-1 loglevel=5 " + args.append,
            "--vcpus", str(case.vcpus), "--memory", "256M", "--serial", "stdio",
            "--device", "vsock,cid=3,uds_path=%s" % uds] + args.wisp_arg
    stop = threading.Event()
    stall = None
    g = guest_cls(argv, os.path.join(args.workdir, name + ".log"))
    try:
        ready = g.expect("WISP-GUEST-READY", args.boot_timeout)
        if not res.check(name + "/boot", ready is not None, "userspace" if ready else "no userspace"):
            return
        out = g.run("cat /sys/bus/virtio/devices/*/device; ls /sys/bus/virtio/drivers/")
        res.check(name + "/driver", out is not None and "0x0013" in out and "vmw_vsock_virtio" in out,
                  " ".join((out or "no answer").split()[-8:]))
        out = g.run("vsock-agent serve %d > /tmp/serve.log 2>&1 & sleep 0.5; cat /tmp/serve.log" % ECHO_PORT)
        res.check(name + "/agent", out is not None and "listening" in out, last(out))

        # Host to guest, two connections at once.
        a, ok_a = host_connect(uds, ECHO_PORT)
        b, ok_b = host_connect(uds, ECHO_PORT)
        both = bool(re.match(r"OK \d+$", ok_a)) and bool(re.match(r"OK \d+$", ok_b)) and ok_a != ok_b
        res.check(name + "/host-to-guest-connect", both, "%r, %r" % (ok_a, ok_b))
        res.check(name + "/host-to-guest-echo", echo_ok(a, b"ping-a" * 1000) and echo_ok(b, b"ping-b"),
                  "6000 and 6 bytes echoed on two connections")

        # Guest to host.
        reply_server(uds + "_%d" % REPLY_PORT, stop)
        out = g.run("vsock-agent send 2 %d hello" % REPLY_PORT, timeout=30)
        res.check(name + "/guest-to-host", out is not None and "reply 'pong:hello'" in out, last(out))

        # A host peer that accepts and never reads: the guest floods it.
        stall = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stall.bind(uds + "_%d" % STALL_PORT)
        stall.listen(1)
        g.run("vsock-agent flood 2 %d 4096 > /tmp/flood.log 2>&1 & true" % STALL_PORT)
        stall.settimeout(10)
        peer, _ = stall.accept()  # accepted, never read
        time.sleep(2)
        out = g.run("cat /tmp/flood.log; echo flood-checked")
        flood_blocked = out is not None and "flood done" not in out
        t0 = time.monotonic()
        again = g.run("vsock-agent send 2 %d again" % REPLY_PORT, timeout=30)
        echo = echo_ok(a, b"still-alive")
        res.check(name + "/stalled-peer",
                  flood_blocked and again is not None and "pong:again" in again and echo,
                  "flood blocked on credit: %s; other connections both ways in %.1f s"
                  % (flood_blocked, time.monotonic() - t0))
        peer.close()
        a.close()
        b.close()
    finally:
        stop.set()
        if stall:
            stall.close()
        g.kill()
