/*
 * vnet.c - virtio-net set-up and test=net: send numbered broadcast frames
 * (ethertype 0x88B5, payload "wisp" + sequence number) and count the
 * echoes a host-side reflector sends back.
 */
#include "vdrivers.h"

#define NET_HDR_LEN   ((u32)sizeof(struct virtio_net_hdr))
#define NET_MAX_COUNT 1024

int net_open(struct netdev *n, struct vdev *d, u16 qsize)
{
    int rc;
    memset(n, 0, sizeof *n);
    n->d = d;
    u64 want = VBIT(VIRTIO_NET_F_MAC) | VBIT(VIRTIO_NET_F_STATUS) | VBIT(VIRTIO_NET_F_MTU) |
               VBIT(VIRTIO_NET_F_MRG_RXBUF);
    if ((rc = virtio_begin(d, want)) < 0 || (rc = vq_setup(d, &n->rx, 0, qsize)) < 0 ||
        (rc = vq_setup(d, &n->tx, 1, qsize)) < 0)
        return rc;
    n->has_mac = d->acked & VBIT(VIRTIO_NET_F_MAC);
    n->mrg_rxbuf = d->acked & VBIT(VIRTIO_NET_F_MRG_RXBUF);
    if (n->has_mac) {
        for (int i = 0; i < 6; i++)
            n->mac[i] = (u8)vcfg_read(d, VIRTIO_NET_CFG_MAC + i, 1);
    } else {
        static const u8 local[6] = {0x52, 0x54, 0x00, 0x77, 0x69, 0x73};
        memcpy(n->mac, local, 6); /* locally administered */
    }
    n->status = VIRTIO_NET_S_LINK_UP; /* assumed without the STATUS feature */
    if (d->acked & VBIT(VIRTIO_NET_F_STATUS))
        n->status = (u16)vcfg_read(d, VIRTIO_NET_CFG_STATUS, 2);
    if (d->acked & VBIT(VIRTIO_NET_F_MTU))
        n->mtu = (u16)vcfg_read(d, VIRTIO_NET_CFG_MTU, 2);
    return virtio_driver_ok(d);
}

static void put_be32(u8 *p, u32 v)
{
    p[0] = (u8)(v >> 24);
    p[1] = (u8)(v >> 16);
    p[2] = (u8)(v >> 8);
    p[3] = (u8)v;
}

static u32 get_be32(const u8 *p)
{
    return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3];
}

void net_build_frame(const struct netdev *n, u8 *buf, u32 seq, u32 count)
{
    memset(buf, 0, NET_HDR_LEN + NET_FRAME_LEN);
    u8 *f = buf + NET_HDR_LEN;
    memset(f, 0xFF, 6);
    memcpy(f + 6, n->mac, 6);
    f[12] = NET_ETHERTYPE >> 8;
    f[13] = NET_ETHERTYPE & 0xFF;
    memcpy(f + 14, "wisp", 4);
    put_be32(f + 18, seq);
    put_be32(f + 22, count);
}

long net_frame_seq(const u8 *f, u32 len)
{
    if (len < 26 || f[12] != (NET_ETHERTYPE >> 8) || f[13] != (NET_ETHERTYPE & 0xFF) ||
        memcmp(f + 14, "wisp", 4) != 0)
        return -1;
    return get_be32(f + 18);
}

void test_net(void)
{
    static struct netdev n LAZY;
    static u8 seen[NET_MAX_COUNT / 8];
    struct vdev *d = virtio_find(VIRTIO_ID_NET, 0);
    if (!d) {
        check("net_present", false, "no virtio-net device on the command line");
        return;
    }
    int rc = net_open(&n, d, 64);
    if (!check("net_init", rc == 0, "rc=%d status=0x%x", rc, virtio_status(d)))
        return;
    SAY("net base=0x%lx irq=%u mac=%02x:%02x:%02x:%02x:%02x:%02x%s status=0x%x mtu=%u "
        "mrg_rxbuf=%d features=0x%lx acked=0x%lx",
        d->base, d->irq, n.mac[0], n.mac[1], n.mac[2], n.mac[3], n.mac[4], n.mac[5],
        n.has_mac ? "" : " (no MAC feature)", n.status, n.mtu, n.mrg_rxbuf, d->offered, d->acked);
    check("net_link_up", n.status & VIRTIO_NET_S_LINK_UP, "status=0x%x", n.status);

    /* Receive buffers: one descriptor each; with MRG_RXBUF a frame could
     * still span several (num_buffers), which we skip over. */
    u32 nrx = n.rx.size;
    u8 *rx = vpool_alloc((u64)nrx * NET_RXBUF_LEN, 4096, false);
    u32 count = (u32)opt_u64("net_count", 8), expect = (u32)opt_u64("net_expect", count);
    if (count > NET_MAX_COUNT)
        count = NET_MAX_COUNT;
    u8 *tx = vpool_alloc((u64)count * 128, 64, false);
    if (!check("net_buffers", rx && tx, "rx=%u tx=%u", nrx, count))
        return;
    for (u32 i = 0; i < nrx; i++) {
        struct vbuf v = {(u64)(rx + (u64)i * NET_RXBUF_LEN), NET_RXBUF_LEN, true};
        vq_add(&n.rx, &v, 1);
    }
    vq_kick(&n.rx, false);

    /* Send everything, reclaiming tx descriptors as they complete. */
    u32 sent = 0, done = 0;
    u64 limit = VREQ_TIMEOUT_MS * vticks_ms(), start = rdtsc();
    while (done < count && rdtsc() - start < limit) {
        bool queued = false;
        while (sent < count && n.tx.num_free) {
            u8 *b = tx + (u64)sent * 128;
            net_build_frame(&n, b, sent, count);
            struct vbuf v = {(u64)b, NET_HDR_LEN + NET_FRAME_LEN, false};
            vq_add(&n.tx, &v, 1);
            sent++;
            queued = true;
        }
        if (queued)
            vq_kick(&n.tx, false);
        while (vq_get(&n.tx, NULL) >= 0)
            done++;
        cpu_relax();
    }
    check("net_tx", done == count, "%u of %u frames completed", done, count);

    /* Echoes: count distinct sequence numbers, bounded wait. */
    u32 frames = 0, matched = 0, distinct = 0, other = 0, skip = 0;
    u64 wait_ms = opt_u64("net_wait_ms", expect ? 3000 : 200);
    start = rdtsc();
    limit = wait_ms * vticks_ms();
    while (distinct < expect || expect == 0) {
        u32 len = 0;
        int h = vq_get(&n.rx, &len);
        if (h == -1) {
            if (rdtsc() - start > limit)
                break;
            cpu_relax();
            continue;
        }
        if (h < 0)
            break;
        /* One buffer per descriptor, so the head says which buffer. */
        u8 *b = rx + (u64)h * NET_RXBUF_LEN;
        if (skip) {
            skip--; /* continuation of a merged frame */
        } else {
            frames++;
            const struct virtio_net_hdr *hdr = (const void *)b;
            if (n.mrg_rxbuf && hdr->num_buffers > 1)
                skip = hdr->num_buffers - 1u;
            long seq = len > NET_HDR_LEN && len <= NET_RXBUF_LEN
                           ? net_frame_seq(b + NET_HDR_LEN, len - NET_HDR_LEN)
                           : -1;
            if (seq >= 0 && seq < (long)count) {
                matched++;
                if (!(seen[seq / 8] & (1u << (seq % 8)))) {
                    seen[seq / 8] |= (u8)(1u << (seq % 8));
                    distinct++;
                }
            } else {
                other++;
            }
        }
        struct vbuf v = {(u64)b, NET_RXBUF_LEN, true};
        vq_add(&n.rx, &v, 1);
        vq_kick(&n.rx, false);
    }
    SAY("net tx=%u rx_frames=%u matched=%u distinct=%u other=%u expect=%u", done, frames, matched,
        distinct, other, expect);
    check("net_rx", distinct >= expect, "%u of %u echoes", distinct, expect);
    check("net_device_status", !(virtio_status(d) & VIRTIO_ST_NEEDS_RESET), "status=0x%x",
          virtio_status(d));
}
