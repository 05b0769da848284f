#!/usr/bin/env python3
"""blk-verify.py IMAGE PATTERN [BLK_SIZE] - check a disk image after test=blk.

Checks what test=blk leaves behind (guest-images/README.md, "blk"): blocks
0, 1, N/2 and N-1 (N = capacity in blocks of BLK_SIZE bytes, default 512)
hold the pattern, block 2 holds zeros (WRITE_ZEROES). Word j (0..63, little
endian u64) of 512-byte sector s is PATTERN ^ (s << 16) ^ j. Block 3 was
discarded, so its content is not checked. Exit status 0 if all match.
"""
import struct
import sys


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    data = open(sys.argv[1], "rb").read()
    pattern = int(sys.argv[2], 0)
    unit = (int(sys.argv[3], 0) if len(sys.argv) > 3 else 512) // 512
    nblocks = len(data) // 512 // unit
    bad = 0
    for blk in (0, 1, nblocks // 2, nblocks - 1):
        for s in range(blk * unit, (blk + 1) * unit):
            words = struct.unpack("<64Q", data[s * 512:(s + 1) * 512])
            want = [(pattern ^ (s << 16) ^ j) & (2**64 - 1) for j in range(64)]
            if list(words) != want:
                print("blk-verify: sector %d does not hold the pattern" % s)
                bad += 1
    for s in range(2 * unit, 3 * unit):
        if data[s * 512:(s + 1) * 512] != bytes(512):
            print("blk-verify: sector %d is not zero" % s)
            bad += 1
    print("blk-verify: %s" % ("ok" if not bad else "%d bad sectors" % bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
