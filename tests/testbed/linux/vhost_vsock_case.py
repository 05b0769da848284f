"""The stock-Linux vhost-vsock case of guest_tests.py: --device
vsock,cid=N,backend=vhost, whose rx and tx queues the L1 kernel's
vhost_vsock serves, against the guest kernel's own virtio-vsock driver and
vsock-agent (vsock_agent.c).  Checked with ordinary AF_VSOCK sockets in L1
(no UNIX-socket hybrid):
  - host to guest: four connections to the guest's CID and the agent's echo
    port open at once, each echoing its own bytes;
  - guest to host: three agents at once connect to CID 2 port P where an L1
    process listens on AF_VSOCK, each gets its own reply;
  - a second wisp asking for the same CID is refused with one line and
    exit code 3 (the kernel's EADDRINUSE), and the running guest is unharmed;
  - a reset of the device (the guest unbinds and rebinds its driver) stops
    and restarts the kernel's rings, and connections work again;
  - a snapshot through the API is refused with one line naming the device,
    and the guest keeps answering;
  - poweroff: wisp stops the rings on its main thread under its seccomp
    filter and exits 0 (148 would be a seccomp kill).
Kept in its own file so guest_tests.py stays readable."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from vsock_case import echo_ok, last

CID = 41
ECHO_PORT = 52
REPLY_PORT = 1240


def vsock_reply_server(port, stop):
    """Listen on AF_VSOCK (any CID, `port`); answer each connection "pong:<what it sent>"."""
    srv = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    srv.bind((socket.VMADDR_CID_ANY, port))
    srv.listen(8)
    srv.settimeout(0.5)

    def one(c):
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

    def serve():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            threading.Thread(target=one, args=(c,), daemon=True).start()
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def host_connect(port, timeout=15):
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((CID, port))
    return s


def host_to_guest(n):
    """n connections open at once, each echoing its own message; returns (ok, detail)."""
    conns = []
    try:
        for _ in range(n):
            conns.append(host_connect(ECHO_PORT))
        ok = all(echo_ok(c, (b"conn-%d:" % i) * (200 * (i + 1))) for i, c in enumerate(conns))
        return ok, "%d connections to %d:%d echoed" % (len(conns), CID, ECHO_PORT)
    except OSError as e:
        return False, "after %d connections: %s" % (len(conns), e)
    finally:
        for c in conns:
            c.close()


def api_put(sock_path, path, body, timeout=30):
    """PUT `body` (JSON) to the control API; returns (status, response body)."""
    data = json.dumps(body).encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(b"PUT %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (path.encode(), len(data)) + data)
        resp = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            resp += b
    finally:
        s.close()
    head, _, payload = resp.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, payload.decode(errors="replace")


def snapshot_refused(res, g, name, api, plane, after="echo alive-$((4+4))"):
    """PUT /snapshot/create must be refused with one line naming the external data plane
    `plane` ("vDPA", "vhost-user"), and the guest must answer `after` (ending in alive-8)."""
    status, body = api_put(api, "/snapshot/create",
                           {"snapshot_path": "s.state", "mem_file_path": "s.mem"})
    out = g.run(after)
    res.check(name + "/snapshot-refused",
              400 <= status < 500 and "cannot migrate" in body and
              ("external data plane (%s)" % plane) in body and "\n" not in body.strip() and
              out is not None and "alive-8" in out,
              "HTTP %d %s" % (status, body.strip()[-160:]))


def poweroff_exit_0(res, g, name):
    """`poweroff -f` in the guest must end wisp with status 0 (148 would be a seccomp kill)."""
    g.send("poweroff -f")
    try:
        rc = g.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        rc = None
    res.check(name + "/poweroff-exit-0", rc == 0, "wisp exit status %s" % rc)


def vhost_vsock_case(res, args, case, kernel, initrd, guest_cls):
    name = case.name
    if not os.path.exists("/dev/vhost-vsock"):
        # L1's modules come from the kernel package tree (as tests/testbed/l1-stage2 loads them).
        r = subprocess.run(["modprobe", "-d", os.path.join(args.kernels, "l1"), "vhost_vsock"],
                           capture_output=True, text=True)
        for _ in range(50):
            if os.path.exists("/dev/vhost-vsock"):
                break
            time.sleep(0.1)
    if not res.check(name + "/vhost-vsock", os.path.exists("/dev/vhost-vsock"),
                     "/dev/vhost-vsock after modprobe vhost_vsock"):
        return
    d = tempfile.mkdtemp(prefix="wisp-vhv-")
    api = os.path.join(d, "api.sock")
    base = [args.wisp, "run", "--kernel", kernel, "--initrd", initrd,
            "--cmdline", "console=ttyS0 panic=-1 loglevel=5 " + args.append,
            "--vcpus", str(case.vcpus), "--memory", "256M", "--serial", "stdio",
            "--device", "vsock,cid=%d,backend=vhost" % CID] + args.wisp_arg
    argv = base + ["--api-sock", api, "--snapshot-dir", d]
    stop = threading.Event()
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

        ok, detail = host_to_guest(4)
        res.check(name + "/host-to-guest-4-at-once", ok, detail)

        vsock_reply_server(REPLY_PORT, stop)
        # Wait for the three senders only (a bare `wait` would wait for the echo server too).
        out = g.run("p=; for i in 1 2 3; do vsock-agent send 2 %d hello$i > /tmp/s$i.log 2>&1 & "
                    "p=\"$p $!\"; done; wait $p; cat /tmp/s1.log /tmp/s2.log /tmp/s3.log" % REPLY_PORT,
                    timeout=40)
        got = [("reply 'pong:hello%d'" % i) in (out or "") for i in (1, 2, 3)]
        res.check(name + "/guest-to-host-3-at-once", all(got),
                  "replies %s; %s" % (got, " ".join((out or "no answer").split()[-12:])))

        # The same CID for a second VM: refused before it boots, one line, exit 3.
        t0 = time.monotonic()
        r = subprocess.run(base, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        lines = r.stderr.strip().splitlines()
        res.check(name + "/cid-clash", r.returncode == 3 and len(lines) == 1 and
                  "cid %d is already used by another VM on this host" % CID in lines[0],
                  "exit %d in %.1f s: %s" % (r.returncode, time.monotonic() - t0, r.stderr.strip()[-200:]))
        ok, detail = host_to_guest(2)
        res.check(name + "/unharmed-by-clash", ok, detail)

        # Device reset: unbind and rebind the guest's virtio driver for the device.
        out = g.run("d=$(grep -l 0x0013 /sys/bus/virtio/devices/*/device); d=${d%%/device}; "
                    "n=${d##*/}; echo $n > /sys/bus/virtio/drivers/vmw_vsock_virtio_transport/unbind; "
                    "echo $n > /sys/bus/virtio/drivers/vmw_vsock_virtio_transport/bind; "
                    "sleep 0.5; pkill vsock-agent; vsock-agent serve %d > /tmp/serve2.log 2>&1 & "
                    "sleep 0.5; cat /tmp/serve2.log; echo rebound-$n" % ECHO_PORT, timeout=30)
        ok, detail = host_to_guest(2) if out and "rebound-" in out else (False, last(out))
        res.check(name + "/after-reset", ok, detail)

        # Snapshot: refused, one line naming the device; the guest goes on.
        status, body = api_put(api, "/snapshot/create",
                               {"snapshot_path": "s.state", "mem_file_path": "s.mem"})
        ok, detail = host_to_guest(1)
        res.check(name + "/snapshot-refused",
                  400 <= status < 500 and "device virtio-vsock 0 cannot migrate" in body and
                  "\n" not in body.strip() and ok,
                  "HTTP %d %s; then %s" % (status, body.strip()[-160:], detail))

        # Poweroff: the main thread stops the rings under its filter and wisp exits 0.
        g.send("poweroff -f")
        try:
            rc = g.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rc = None
        res.check(name + "/poweroff-exit-0", rc == 0, "wisp exit status %s" % rc)
    finally:
        stop.set()
        g.kill()
        shutil.rmtree(d, ignore_errors=True)
