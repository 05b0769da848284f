#!/usr/bin/env python3
"""console-peer.py SOCKET LINE - host side of test=console (test aid).

Connects to the UNIX socket of the guest's virtio console (QEMU: -chardev
socket,server=on), waits for "console hello", then sends LINE plus a
newline. Prints what it received; exit status 0 if the hello arrived.
"""
import socket
import sys
import time


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    s = socket.socket(socket.AF_UNIX)
    for _ in range(200):
        try:
            s.connect(sys.argv[1])
            break
        except OSError:
            time.sleep(0.05)
    s.settimeout(30)
    got = b""
    try:
        while b"console hello\n" not in got:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except OSError:
        pass
    ok = b"console hello\n" in got
    if ok:
        s.sendall(sys.argv[2].encode() + b"\n")
        time.sleep(0.5)
    print("console-peer: received %r" % got, file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
