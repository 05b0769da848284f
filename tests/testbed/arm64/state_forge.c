/*
 * state_forge.c - forge one field of an aarch64 snapshot state file and
 * re-seal the section's CRC-32C, so that the restore's own checks in
 * arch/aarch64/arch_mig.c (not the stream's checksum) are what must refuse
 * it.  Test aid for tests/testbed/arm64/mig-run; built static for aarch64.
 *
 *   a64-state-forge IN OUT CASE
 *
 * CASE: vcpu-reg      vCPU 0's first register id becomes one KVM never lists
 *       vcpu-count    vCPU 0's register count becomes 100000
 *       vcpu-mpstate  vCPU 0's power state becomes 7
 *       vgic-group    the first VGIC attribute's group becomes 99
 *       vgic-wide     the first 32-bit VGIC attribute's value gets bit 40 set
 * Exit 0, or 1 with a line on stderr.  Layouts: docs/MIGRATION_FORMAT.md
 * (stream sections) and arch_mig.c (payloads).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HDR_LEN    20 /* stream header */
#define SEC_HDR    16 /* section header */
#define VSTATE_HDR 28 /* the vstate wrapper inside the payload */
#define SEC_VCPU   0x100u
#define SEC_VM     0x101u

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t crc32c(const uint8_t *p, size_t n)
{
    uint32_t c = ~0u;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    }
    return ~c;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: a64-state-forge IN OUT CASE\n");
        return 1;
    }
    FILE *f = fopen(argv[1], "rb");
    static uint8_t buf[1 << 20];
    size_t len = f ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f)
        fclose(f);
    if (len < HDR_LEN) {
        fprintf(stderr, "a64-state-forge: cannot read %s\n", argv[1]);
        return 1;
    }
    const char *c = argv[3];
    uint32_t want = strncmp(c, "vcpu", 4) == 0 ? SEC_VCPU : SEC_VM;
    for (size_t pos = HDR_LEN; pos + SEC_HDR <= len;) {
        uint32_t id = get32(buf + pos), inst = get32(buf + pos + 4), plen = get32(buf + pos + 12);
        if (plen > len - pos - SEC_HDR - 4)
            break;
        uint8_t *pl = buf + pos + SEC_HDR + VSTATE_HDR;
        if (id == want && inst == 0 && plen >= VSTATE_HDR + 32) {
            if (!strcmp(c, "vcpu-reg"))
                memcpy(pl + 8, "\xad\xde\x00\x00\x00\x00\x30\x60", 8); /* U64, no such group */
            else if (!strcmp(c, "vcpu-count"))
                put32(pl + 4, 100000);
            else if (!strcmp(c, "vcpu-mpstate"))
                put32(pl + 0, 7);
            else if (!strcmp(c, "vgic-group"))
                put32(pl + 4, 99);
            else if (!strcmp(c, "vgic-wide"))
                pl[4 + 4 + 8 + 5] |= 1; /* bit 40 of the first value (a 32-bit register) */
            else {
                fprintf(stderr, "a64-state-forge: unknown case %s\n", c);
                return 1;
            }
            put32(buf + pos + SEC_HDR + plen, crc32c(buf + pos, SEC_HDR + plen));
            FILE *o = fopen(argv[2], "wb");
            if (!o || fwrite(buf, 1, len, o) != len || fclose(o) != 0) {
                fprintf(stderr, "a64-state-forge: cannot write %s\n", argv[2]);
                return 1;
            }
            return 0;
        }
        pos += SEC_HDR + plen + 4;
    }
    fprintf(stderr, "a64-state-forge: no section 0x%x in %s\n", want, argv[1]);
    return 1;
}
