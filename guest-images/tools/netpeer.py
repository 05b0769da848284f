#!/usr/bin/env python3
"""netpeer.py - host side of the test guest's net tests (test aid).

  netpeer.py reflect IFACE         send back every frame of ethertype 0x88B5
                                   that arrives on IFACE (test=net,
                                   bench-net bench_op=txrx)
  netpeer.py send IFACE N [DELAY]  after DELAY seconds (default 1), send N
                                   numbered 60-byte frames in the guest's
                                   format as fast as possible (bench-net
                                   bench_op=rx)

IFACE is the host end of the guest's tap (run inside its network namespace).
Frame format (guest-images/README.md, "net"): broadcast, ethertype 0x88B5,
payload "wisp", u32 sequence, u32 count (big endian), zero padding.
"""
import socket
import struct
import sys
import time

ETHERTYPE = 0x88B5


def reflect(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE))
    s.bind((iface, ETHERTYPE))
    while True:
        data, addr = s.recvfrom(65535)
        # Our own transmissions show up as PACKET_OUTGOING: never echo those.
        if addr[2] != socket.PACKET_OUTGOING:
            s.send(data)


def send(iface, count, delay):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    time.sleep(delay)
    head = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + struct.pack(">H", ETHERTYPE) + b"wisp"
    sent = 0
    start = time.time()
    for i in range(count):
        try:
            s.send(head + struct.pack(">II", i, count) + bytes(34))
            sent += 1
        except OSError:
            pass  # tap queue full: the frame is lost, as on a wire
    print("netpeer: sent %d frames in %.2f s" % (sent, time.time() - start), file=sys.stderr)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "reflect":
        reflect(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 1.0)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
