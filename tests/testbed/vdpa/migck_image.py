"""Check an image a migck test guest wrote (guest-images/README.md, "migck"):
every sector 0-63 is zero or a whole record of itself (magic, sector, k with
k mod 64 = sector, the words, the FNV-1a) with k below MAX_K (the last N the
guest printed); and for every "migck blk sector S k K" line in the SERIAL
logs (the guest announces every 8th acknowledged write), sector S holds
record K or a later one: an acknowledged write that was lost, or an older
one replayed over it, leaves an older record.

    python3 migck_image.py IMG MAX_K [SERIAL...]
Prints one line; exit status 0 when the image passes."""
import re
import struct
import sys


def fnv(b):
    h = 0x811c9dc5
    for x in b:
        h = ((h ^ x) * 0x01000193) & 0xffffffff
    return h


def main():
    data = open(sys.argv[1], 'rb').read()
    max_k = int(sys.argv[2])
    announced = {}
    for path in sys.argv[3:]:
        text = open(path, 'rb').read().decode(errors='replace')
        for s, k in re.findall(r'migck blk sector (\d+) k (\d+)\r?\n', text):
            announced[int(s)] = max(announced.get(int(s), -1), int(k))
    recs, bad, older = 0, [], []
    for s in range(64):
        r = data[s * 512:(s + 1) * 512]
        if r == bytes(512):
            if s in announced:
                older.append('%d: zero, want k >= %d' % (s, announced[s]))
            continue
        k, sec = struct.unpack_from('<QQ', r, 8)
        ok = (r[:8] == b'MIGCK\0\0\0' and sec == s and k < max_k and k % 64 == s and
              struct.unpack_from('<I', r, 504)[0] == fnv(r[:504]) and r[508:] == bytes(4))
        for i in range(3, 63):
            if not ok:
                break
            (w,) = struct.unpack_from('<Q', r, i * 8)
            ok = w == (k ^ (s << 8) ^ ((i * 0x100000001B3) & 0xffffffffffffffff))
        if not ok:
            bad.append(s)
            continue
        recs += 1
        if k < announced.get(s, -1):
            older.append('%d: k %d, want >= %d' % (s, k, announced[s]))
    print('image: %d whole records, %d announced writes checked; bad sectors %s; older than '
          'acknowledged: %s' % (recs, len(announced), bad or 'none', '; '.join(older[:4]) or 'none'))
    return 0 if recs > 0 and not bad and not older else 1


if __name__ == '__main__':
    sys.exit(main())
