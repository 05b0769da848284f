/*
 * virtio-vsock connections: the table, what each guest packet does to it,
 * the packets due to the guest, and the host sockets behind it (see vsock.h
 * for the protocol and its bounds).
 *
 * Why a file of its own: the queue handling in vsock.c stays the same for
 * any host side; everything here is about one connection at a time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio/vsock_internal.h"
#include "vmm/log.h"

uint64_t vsock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct vsock_conn *conn_find(struct virtio_vsock *v, uint32_t host_port, uint32_t guest_port)
{
    for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++) {
        struct vsock_conn *c = &v->conns[i];
        if (c->state > VC_HANDSHAKE && c->host_port == host_port && c->guest_port == guest_port)
            return c;
    }
    return NULL;
}

/* A free slot with its buffer, or NULL when the table is full. */
static struct vsock_conn *conn_alloc(struct virtio_vsock *v, int fd)
{
    for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++) {
        struct vsock_conn *c = &v->conns[i];
        if (c->state != VC_FREE)
            continue;
        uint8_t *buf = c->buf ? c->buf : malloc(VIRTIO_VSOCK_CONN_BUF);
        if (!buf)
            return NULL;
        memset(c, 0, sizeof(*c));
        c->buf = buf;
        c->fd = fd;
        v->nconns++;
        return c;
    }
    return NULL;
}

static void conn_free(struct virtio_vsock *v, struct vsock_conn *c)
{
    if (c->state == VC_FREE)
        return;
    if (c->watched & 4)
        vsock_uds_unwatch(v->uds, c->fd);
    close(c->fd);
    c->state = VC_FREE;
    c->fd = -1;
    v->nconns--;
}

void vsock_conn_drop_all(struct virtio_vsock *v)
{
    for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++)
        conn_free(v, &v->conns[i]);
    v->rst_len = 0;
}

/* The guest's credit for bytes from us (0 if its counters make no sense). */
static uint32_t peer_credit(const struct vsock_conn *c)
{
    uint32_t inflight = c->tx_cnt - c->peer_fwd_cnt;
    return inflight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - inflight;
}

/* Re-arm the host socket for what the connection can do now. */
static void conn_update(struct virtio_vsock *v, struct vsock_conn *c)
{
    if (c->state == VC_FREE || c->hup)
        return;
    bool in = c->state == VC_HANDSHAKE ||
              (c->state == VC_ESTABLISHED && !c->readable && !c->host_eof && peer_credit(c) > 0);
    bool out = c->ok_off < c->ok_len || c->len > 0;
    unsigned want = (in ? 1u : 0u) | (out ? 2u : 0u) | 4u;
    if (want == c->watched)
        return;
    if (vsock_uds_watch(v->uds, c->fd, (uint32_t)(c - v->conns), in, out) == 0)
        c->watched = want;
}

static void rst_push(struct virtio_vsock *v, uint64_t src_cid, uint32_t src_port, uint32_t dst_port)
{
    if (v->rst_len == VIRTIO_VSOCK_RST_RING) {
        v->stats.rsts_dropped++;
        METRICS_ADD(v->vdev.metrics, drops, 1);
        return;
    }
    v->rst[(v->rst_head + v->rst_len++) % VIRTIO_VSOCK_RST_RING] =
        (struct vsock_rst){src_cid, src_port, dst_port};
}

/* Reset a connection: RST to the guest (unless still in handshake) and close. */
static void conn_reset(struct virtio_vsock *v, struct vsock_conn *c)
{
    if (c->state > VC_HANDSHAKE)
        rst_push(v, VIRTIO_VSOCK_HOST_CID, c->host_port, c->guest_port);
    conn_free(v, c);
}

void vsock_rst_reply(struct virtio_vsock *v, const uint8_t *hdr)
{
    if (le16_get(hdr + VSOCK_HDR_OP) == VIRTIO_VSOCK_OP_RST)
        return;
    rst_push(v, le64_get(hdr + VSOCK_HDR_DST_CID), le32_get(hdr + VSOCK_HDR_DST_PORT),
             le32_get(hdr + VSOCK_HDR_SRC_PORT));
}

/* The guest closed its sending side and we wrote everything: finish. */
static void conn_check_drained(struct virtio_vsock *v, struct vsock_conn *c)
{
    if (c->state != VC_ESTABLISHED || !c->guest_send_done || c->len || c->ok_off < c->ok_len)
        return;
    if (c->guest_rcv_done || c->host_eof) {
        conn_reset(v, c);
        return;
    }
    if (!c->host_wr_shut) {
        c->host_wr_shut = true;
        vsock_uds_shutdown_wr(c->fd);
    }
}

/* Write host-bound bytes until the socket stops taking them. */
static void conn_flush(struct virtio_vsock *v, struct vsock_conn *c)
{
    while (c->ok_off < c->ok_len) {
        ssize_t r = write(c->fd, c->ok + c->ok_off, c->ok_len - c->ok_off);
        if (r <= 0)
            goto stop;
        c->ok_off = (uint8_t)(c->ok_off + r);
    }
    while (c->len) {
        ssize_t r = write(c->fd, c->buf + c->off, c->len);
        if (r <= 0)
            goto stop;
        c->off += (uint32_t)r;
        c->len -= (uint32_t)r;
        c->fwd_cnt += (uint32_t)r;
    }
    c->off = 0;
    goto done;
stop:
    if (errno != EAGAIN && errno != EINTR) {
        conn_reset(v, c);
        return;
    }
done:
    if (c->fwd_cnt - c->fwd_cnt_sent >= VIRTIO_VSOCK_CONN_BUF / 4)
        c->ctl |= VC_CTL_CREDIT;
    conn_check_drained(v, c);
    conn_update(v, c);
}

/* iovecs for [off, off + len) of a chain's readable (in=false) or writable part. */
static unsigned chain_sub(struct virtio_vsock *v, const struct virtq_chain *c, bool in,
                          uint64_t off, uint64_t len)
{
    unsigned first = in ? c->n_out : 0, n = in ? c->n_in : c->n_out, k = 0;
    for (unsigned i = 0; i < n && len; i++) {
        const struct iovec *io = &c->iov[first + i];
        if (off >= io->iov_len) {
            off -= io->iov_len;
            continue;
        }
        size_t take = (size_t)MIN((uint64_t)(io->iov_len - off), len);
        v->sub[k++] = (struct iovec){(uint8_t *)io->iov_base + off, take};
        len -= take;
        off = 0;
    }
    return k;
}

/* RW payload of `n` bytes at offset HDR_LEN of chain `ch`: to the socket, the rest buffered. */
static void conn_take(struct virtio_vsock *v, struct vsock_conn *c, const struct virtq_chain *ch,
                      uint32_t n)
{
    if (c->len + (uint64_t)n > VIRTIO_VSOCK_CONN_BUF) {
        v->stats.credit_violations++;
        METRICS_ADD(v->vdev.metrics, errors, 1);
        conn_reset(v, c);
        return;
    }
    uint32_t done = 0;
    if (c->len == 0 && c->ok_off == c->ok_len) {
        unsigned k = chain_sub(v, ch, false, VIRTIO_VSOCK_HDR_LEN, n);
        ssize_t r = writev(c->fd, v->sub, (int)k);
        if (r < 0 && errno != EAGAIN) {
            conn_reset(v, c);
            return;
        }
        done = r > 0 ? (uint32_t)r : 0;
        c->fwd_cnt += done;
        c->off = 0;
    }
    if (done < n) {
        if (c->off + c->len + (n - done) > VIRTIO_VSOCK_CONN_BUF) {
            memmove(c->buf, c->buf + c->off, c->len);
            c->off = 0;
        }
        c->len += (uint32_t)virtq_chain_read(ch, VIRTIO_VSOCK_HDR_LEN + done,
                                             c->buf + c->off + c->len, n - done);
    }
    conn_flush(v, c);
}

static void guest_request(struct virtio_vsock *v, const uint8_t *hdr, uint32_t host_port,
                          uint32_t guest_port)
{
    if (v->nconns >= VIRTIO_VSOCK_MAX_CONNS) {
        v->stats.conns_refused++;
        vsock_rst_reply(v, hdr);
        return;
    }
    int fd = vsock_uds_connect(v->uds, host_port);
    struct vsock_conn *c = fd >= 0 ? conn_alloc(v, fd) : NULL;
    if (!c) {
        if (fd >= 0)
            close(fd);
        v->stats.conns_refused++;
        vsock_rst_reply(v, hdr);
        return;
    }
    c->state = VC_ESTABLISHED;
    c->host_port = host_port;
    c->guest_port = guest_port;
    c->peer_buf_alloc = le32_get(hdr + VSOCK_HDR_BUF_ALLOC);
    c->peer_fwd_cnt = le32_get(hdr + VSOCK_HDR_FWD_CNT);
    c->ctl |= VC_CTL_RESPONSE;
    v->stats.conns_opened++;
    conn_update(v, c);
}

void vsock_conn_tx(struct virtio_vsock *v, const uint8_t *hdr, const struct virtq_chain *ch)
{
    uint32_t host_port = le32_get(hdr + VSOCK_HDR_DST_PORT);
    uint32_t guest_port = le32_get(hdr + VSOCK_HDR_SRC_PORT);
    uint16_t op = le16_get(hdr + VSOCK_HDR_OP);
    uint32_t len = le32_get(hdr + VSOCK_HDR_LEN);
    struct vsock_conn *c = conn_find(v, host_port, guest_port);

    if (op == VIRTIO_VSOCK_OP_REQUEST) {
        if (c) /* a second REQUEST on a live pair: the guest is confused */
            conn_reset(v, c);
        else
            guest_request(v, hdr, host_port, guest_port);
        return;
    }
    if (!c) {
        vsock_rst_reply(v, hdr);
        return;
    }
    /* Every packet of a connection carries the guest's credit. */
    c->peer_buf_alloc = le32_get(hdr + VSOCK_HDR_BUF_ALLOC);
    c->peer_fwd_cnt = le32_get(hdr + VSOCK_HDR_FWD_CNT);
    switch (op) {
    case VIRTIO_VSOCK_OP_RESPONSE:
        if (c->state != VC_CONNECTING || (c->ctl & VC_CTL_REQUEST)) {
            conn_reset(v, c);
            return;
        }
        c->state = VC_ESTABLISHED;
        c->deadline_ms = 0;
        c->ok_len = (uint8_t)snprintf(c->ok, sizeof(c->ok), "OK %u\n", c->host_port);
        v->stats.conns_opened++;
        conn_flush(v, c);
        return;
    case VIRTIO_VSOCK_OP_RST:
        conn_free(v, c);
        return;
    case VIRTIO_VSOCK_OP_SHUTDOWN: {
        uint32_t flags = le32_get(hdr + VSOCK_HDR_FLAGS);
        if (c->state != VC_ESTABLISHED) {
            conn_reset(v, c);
            return;
        }
        c->guest_rcv_done |= (flags & VIRTIO_VSOCK_SHUTDOWN_RCV) != 0;
        if (flags & VIRTIO_VSOCK_SHUTDOWN_SEND) {
            c->guest_send_done = true;
            if (!c->deadline_ms)
                c->deadline_ms = vsock_now_ms() + VSOCK_LINGER_MS;
        }
        conn_check_drained(v, c);
        return;
    }
    case VIRTIO_VSOCK_OP_RW:
        if (c->state != VC_ESTABLISHED || c->guest_send_done) {
            conn_reset(v, c);
            return;
        }
        v->stats.tx_bytes += len;
        conn_take(v, c, ch, len);
        return;
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
        conn_update(v, c);
        return;
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        c->ctl |= VC_CTL_CREDIT;
        conn_update(v, c);
        return;
    default:
        v->stats.bad_pkts++;
        conn_reset(v, c);
        return;
    }
}

static void put_hdr(uint8_t *h, uint64_t src_cid, uint64_t dst_cid, uint32_t src_port,
                    uint32_t dst_port, uint32_t len, uint16_t op, uint32_t flags)
{
    memset(h, 0, VIRTIO_VSOCK_HDR_LEN);
    le64_put(h + VSOCK_HDR_SRC_CID, src_cid);
    le64_put(h + VSOCK_HDR_DST_CID, dst_cid);
    le32_put(h + VSOCK_HDR_SRC_PORT, src_port);
    le32_put(h + VSOCK_HDR_DST_PORT, dst_port);
    le32_put(h + VSOCK_HDR_LEN, len);
    le16_put(h + VSOCK_HDR_TYPE, VIRTIO_VSOCK_TYPE_STREAM);
    le16_put(h + VSOCK_HDR_OP, op);
    le32_put(h + VSOCK_HDR_FLAGS, flags);
}

/* The next packet of connection c into chain ch; bytes written or 0. */
static uint32_t conn_rx(struct virtio_vsock *v, struct vsock_conn *c, const struct virtq_chain *ch)
{
    uint8_t h[VIRTIO_VSOCK_HDR_LEN];
    uint16_t op = 0;
    uint32_t flags = 0, n = 0;
    if (c->ctl & VC_CTL_REQUEST) {
        c->ctl &= ~VC_CTL_REQUEST;
        op = VIRTIO_VSOCK_OP_REQUEST;
    } else if (c->ctl & VC_CTL_RESPONSE) {
        c->ctl &= ~VC_CTL_RESPONSE;
        op = VIRTIO_VSOCK_OP_RESPONSE;
    } else if (c->ctl & VC_CTL_SHUTDOWN) {
        c->ctl &= ~VC_CTL_SHUTDOWN;
        op = VIRTIO_VSOCK_OP_SHUTDOWN;
        flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
    } else if (c->state == VC_ESTABLISHED && c->readable && !c->host_eof && peer_credit(c) &&
               ch->in_len > VIRTIO_VSOCK_HDR_LEN) {
        /* (A header-only buffer carries no data: the bytes wait, the hint stays.) */
        uint64_t room = ch->in_len - VIRTIO_VSOCK_HDR_LEN;
        room = MIN(room, MIN((uint64_t)peer_credit(c), (uint64_t)VIRTIO_VSOCK_MAX_PKT));
        unsigned k = chain_sub(v, ch, true, VIRTIO_VSOCK_HDR_LEN, room);
        ssize_t r = k ? readv(c->fd, v->sub, (int)k) : -1;
        if (r > 0) {
            op = VIRTIO_VSOCK_OP_RW;
            n = (uint32_t)r;
            c->tx_cnt += n;
            v->stats.rx_bytes += n;
        } else if (r == 0) {
            c->host_eof = true;
            c->readable = false;
            op = VIRTIO_VSOCK_OP_SHUTDOWN;
            flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
            conn_check_drained(v, c);
        } else if (k && errno != EAGAIN && errno != EINTR) {
            conn_reset(v, c);
            return 0;
        } else {
            c->readable = false;
            conn_update(v, c);
            if (!(c->ctl & VC_CTL_CREDIT))
                return 0;
            op = VIRTIO_VSOCK_OP_CREDIT_UPDATE; /* nothing to read, but credit is due */
        }
    } else if (c->ctl & VC_CTL_CREDIT) {
        op = VIRTIO_VSOCK_OP_CREDIT_UPDATE;
    } else {
        return 0;
    }
    c->ctl &= ~VC_CTL_CREDIT; /* every packet carries our credit */
    put_hdr(h, VIRTIO_VSOCK_HOST_CID, v->cid, c->host_port, c->guest_port, n, op, flags);
    le32_put(h + VSOCK_HDR_BUF_ALLOC, VIRTIO_VSOCK_CONN_BUF);
    le32_put(h + VSOCK_HDR_FWD_CNT, c->fwd_cnt);
    c->fwd_cnt_sent = c->fwd_cnt;
    virtq_chain_write(ch, 0, h, sizeof(h));
    if (c->state != VC_FREE)
        conn_update(v, c);
    return VIRTIO_VSOCK_HDR_LEN + n;
}

uint32_t vsock_conn_rx(struct virtio_vsock *v, const struct virtq_chain *ch)
{
    if (v->rst_len) {
        struct vsock_rst r = v->rst[v->rst_head];
        uint8_t h[VIRTIO_VSOCK_HDR_LEN];
        v->rst_head = (v->rst_head + 1) % VIRTIO_VSOCK_RST_RING;
        v->rst_len--;
        put_hdr(h, r.src_cid, v->cid, r.src_port, r.dst_port, 0, VIRTIO_VSOCK_OP_RST, 0);
        virtq_chain_write(ch, 0, h, sizeof(h));
        v->stats.rsts++;
        return VIRTIO_VSOCK_HDR_LEN;
    }
    for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++) {
        unsigned idx = (v->rr + i) % VIRTIO_VSOCK_MAX_CONNS;
        struct vsock_conn *c = &v->conns[idx];
        if (c->state <= VC_HANDSHAKE)
            continue;
        uint32_t n = conn_rx(v, c, ch);
        if (v->rst_len) /* conn_rx reset it: the RST goes first */
            return vsock_conn_rx(v, ch);
        if (n) {
            v->rr = idx + 1;
            return n;
        }
    }
    return 0;
}

/* Read the handshake line one byte at a time: bytes after it belong to the guest. */
static void conn_handshake(struct virtio_vsock *v, struct vsock_conn *c)
{
    while (c->line_len < sizeof(c->line)) {
        ssize_t r = read(c->fd, c->line + c->line_len, 1);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (r <= 0)
            break;
        if (c->line[c->line_len++] != '\n')
            continue;
        uint32_t port;
        if (vsock_uds_parse_connect(c->line, c->line_len, &port) < 0)
            break;
        do
            c->host_port = v->next_host_port++ | VSOCK_HOST_PORT_BASE;
        while (conn_find(v, c->host_port, port));
        c->guest_port = port;
        c->state = VC_CONNECTING;
        c->ctl |= VC_CTL_REQUEST;
        c->deadline_ms = vsock_now_ms() + v->handshake_ms;
        conn_update(v, c);
        return;
    }
    v->stats.conns_refused++;
    conn_free(v, c);
}

static void accept_all(struct virtio_vsock *v)
{
    for (unsigned n = 0; n < 16; n++) {
        int fd = vsock_uds_accept(v->uds);
        if (fd < 0)
            return;
        struct vsock_conn *c = conn_alloc(v, fd);
        if (!c) {
            close(fd);
            v->stats.conns_refused++;
            continue;
        }
        c->state = VC_HANDSHAKE;
        c->deadline_ms = vsock_now_ms() + v->handshake_ms;
        conn_update(v, c);
    }
}

static void check_deadlines(struct virtio_vsock *v)
{
    uint64_t now = vsock_now_ms();
    for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++) {
        struct vsock_conn *c = &v->conns[i];
        if (c->state == VC_FREE || !c->deadline_ms || now < c->deadline_ms)
            continue;
        if (c->state != VC_ESTABLISHED)
            v->stats.handshake_timeouts++;
        conn_reset(v, c);
    }
}

void vsock_conn_backend(struct virtio_vsock *v)
{
    struct vsock_uds_event ev[32];
    int n = vsock_uds_wait(v->uds, ev, 32);
    for (int i = 0; i < n; i++) {
        if (ev[i].key == VSOCK_UDS_KEY_LISTEN) {
            accept_all(v);
            continue;
        }
        if (ev[i].key == VSOCK_UDS_KEY_TIMER) {
            check_deadlines(v);
            continue;
        }
        if (ev[i].key >= VIRTIO_VSOCK_MAX_CONNS)
            continue;
        struct vsock_conn *c = &v->conns[ev[i].key];
        if (c->state == VC_FREE)
            continue;
        if (c->state == VC_HANDSHAKE) {
            conn_handshake(v, c);
            continue;
        }
        if (ev[i].events & (EPOLLHUP | EPOLLERR)) {
            /* Never again watched (HUP is always reported): what is left
             * is read, and a write fails with EPIPE. */
            c->hup = true;
            c->readable = true;
            if (c->watched & 4)
                vsock_uds_unwatch(v->uds, c->fd);
            c->watched = 0;
        }
        if (ev[i].events & EPOLLIN)
            c->readable = true;
        if (ev[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            conn_flush(v, c);
        if (c->state != VC_FREE)
            conn_update(v, c);
    }
}
