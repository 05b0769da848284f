/*
 * The test server's PCI function (see server.h): config space with an MSI-X
 * capability, the BAR0 registers and the DMA engine, which copies guest
 * memory through the client's DMA_MAP'd fds (mmap) or through DMA_READ and
 * DMA_WRITE messages, computes a checksum and raises an interrupt (MSI-X
 * vector 0 if assigned, else INTx).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/peers/vfio_user_server/server.h"

uint32_t srv_fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

void srv_device_reset(struct srv *s)
{
    memset(s->bar0, 0, sizeof(s->bar0));
    s->bar0[SRV_REG_ID / 4] = SRV_ID_VALUE;
    s->bar0[SRV_REG_REV / 4] = 1;
    uint8_t *c = s->config;
    memset(c, 0, SRV_CONFIG_SIZE);
    put16(c + 0x00, SRV_VENDOR_ID);
    put16(c + 0x02, SRV_DEVICE_ID);
    put16(c + 0x06, 0x0010); /* status: capability list */
    c[0x08] = 1;             /* revision */
    c[0x0b] = 0xff;          /* class: unassigned */
    put32(c + 0x10, 0);      /* BAR0: 32-bit memory, 4 KiB */
    put16(c + 0x2c, SRV_VENDOR_ID);
    put16(c + 0x2e, SRV_DEVICE_ID);
    c[0x34] = 0x40; /* capabilities pointer */
    c[0x3d] = 1;    /* interrupt pin INTA */
    /* MSI-X: id 0x11, table size N-1, table and PBA in BAR0. */
    c[0x40] = 0x11;
    put16(c + 0x42, SRV_MSIX_VECTORS - 1);
    put32(c + 0x44, SRV_MSIX_TABLE | 0);
    put32(c + 0x48, SRV_MSIX_PBA | 0);
}

/* Translates [iova, iova + n) to the server's mapping, or NULL. */
static uint8_t *translate(struct srv *s, uint64_t iova, uint64_t n)
{
    for (unsigned i = 0; i < s->nmaps; i++) {
        struct srv_map *m = &s->maps[i];
        if (m->host && iova >= m->iova && iova - m->iova <= m->size &&
            n <= m->size - (iova - m->iova))
            return m->host + (iova - m->iova);
    }
    return NULL;
}

static void raise_irq(struct srv *s)
{
    uint64_t one = 1;
    int fd = s->msix_fd[0] >= 0 ? s->msix_fd[0] : s->intx_fd;
    s->bar0[SRV_REG_IRQS / 4]++;
    if (fd >= 0 && write(fd, &one, sizeof(one)) != sizeof(one))
        s->bar0[SRV_REG_IRQS / 4]--;
}

/* Runs the DMA the registers describe; returns 0 or a negative errno. */
static int dma_run(struct srv *s, uint32_t cmd)
{
    uint64_t src = s->bar0[SRV_REG_SRC_LO / 4] | (uint64_t)s->bar0[SRV_REG_SRC_HI / 4] << 32;
    uint64_t dst = s->bar0[SRV_REG_DST_LO / 4] | (uint64_t)s->bar0[SRV_REG_DST_HI / 4] << 32;
    uint32_t len = s->bar0[SRV_REG_LEN / 4];
    if (len == 0 || len > SRV_DMA_MAX)
        return -EINVAL;
    if (!(cmd & SRV_CMD_MESSAGE)) {
        uint8_t *from = translate(s, src, len), *to = translate(s, dst, len);
        if (!from || !to)
            return -EFAULT;
        memmove(to, from, len);
        s->bar0[SRV_REG_CSUM / 4] = srv_fnv1a(to, len);
        return 0;
    }
    uint8_t *buf = malloc(len);
    if (!buf)
        return -ENOMEM;
    int rc = srv_dma_msg(s, false, src, buf, len);
    if (rc == 0)
        rc = srv_dma_msg(s, true, dst, buf, len);
    if (rc == 0)
        s->bar0[SRV_REG_CSUM / 4] = srv_fnv1a(buf, len);
    free(buf);
    return rc;
}

static int bar0_write(struct srv *s, uint32_t reg, uint32_t v)
{
    switch (reg) {
    case SRV_REG_SCRATCH:
    case SRV_REG_SRC_LO:
    case SRV_REG_SRC_HI:
    case SRV_REG_DST_LO:
    case SRV_REG_DST_HI:
    case SRV_REG_LEN:
        s->bar0[reg / 4] = v;
        return 0;
    case SRV_REG_CMD:
        if (v & SRV_CMD_START) {
            int rc = dma_run(s, v);
            s->bar0[SRV_REG_STATUS / 4] =
                rc == 0 ? SRV_STATUS_DONE : SRV_STATUS_ERR | (uint32_t)-rc;
            raise_irq(s);
        }
        return 0;
    default:
        /* Read-only registers and the MSI-X table (emulated by the client). */
        return 0;
    }
}

int srv_region_read(struct srv *s, uint32_t region, uint64_t off, uint8_t *data, uint32_t n)
{
    if (region == VFIO_USER_PCI_CONFIG) {
        if (off > SRV_CONFIG_SIZE || n > SRV_CONFIG_SIZE - off)
            return -EINVAL;
        memcpy(data, s->config + off, n);
        return 0;
    }
    if (region != VFIO_USER_PCI_BAR0 || off % 4 || n % 4 || off > SRV_BAR0_SIZE ||
        n > SRV_BAR0_SIZE - off)
        return -EINVAL;
    memcpy(data, (uint8_t *)s->bar0 + off, n); /* x86_64: the registers are little-endian */
    return 0;
}

int srv_region_write(struct srv *s, uint32_t region, uint64_t off, const uint8_t *data, uint32_t n)
{
    if (region == VFIO_USER_PCI_CONFIG) {
        if (off > SRV_CONFIG_SIZE || n > SRV_CONFIG_SIZE - off)
            return -EINVAL;
        /* Only the command register is writable; BAR sizing is the client's job. */
        for (uint32_t i = 0; i < n; i++)
            if (off + i == 0x04 || off + i == 0x05)
                s->config[off + i] = data[i];
        return 0;
    }
    if (region != VFIO_USER_PCI_BAR0 || off % 4 || n % 4 || off > SRV_BAR0_SIZE ||
        n > SRV_BAR0_SIZE - off)
        return -EINVAL;
    for (uint32_t i = 0; i < n; i += 4) {
        uint32_t v;
        memcpy(&v, data + i, 4);
        int rc = bar0_write(s, (uint32_t)off + i, v);
        if (rc < 0)
            return rc;
    }
    return 0;
}
