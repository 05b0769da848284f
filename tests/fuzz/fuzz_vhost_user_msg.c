/*
 * Fuzz target: the vhost-user reply parser (devices/vhost/vhost_user_msg.c)
 * and the socket receive path in front of it (vhost_user_sock.c), as the
 * frontend meets a backend's replies.
 *
 * Why: a vhost-user backend is another process, possibly compromised, and
 * controls every byte of its replies (security.md E).  The parser must refuse
 * what is malformed without reading past the end, and what it accepts must
 * be exactly what was asked for.
 *
 * Input: one selector byte, then the bytes the backend sends.  Selector bits
 * 0-3 (modulo 9) pick the request the reply answers (and its reply kind
 * and, for GET_CONFIG, the offset and size asked); bit 4 sends the bytes
 * through a socketpair into vhu_sock_recv() first (what the frontend really
 * does), otherwise they go to vhu_reply_parse() directly, with one fd said
 * to have arrived if bit 5 is set (the inflight reply must carry one).
 *
 * Checks: the result is 0, -EPROTO, -EIO (config size 0 only) or, through
 * the socket, a receive error; on success the header's size equals the
 * payload received, the reply names the request, a config reply's bytes lie
 * inside the message and have the size asked, an inflight reply came with
 * exactly one fd and describes a bounded area, no other reply with an fd;
 * the socket path leaves no fd open.
 */
#include "tests/fuzz/fuzz.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/vhost/vhost_user_msg.h"
#include "devices/vhost/vhost_user_sock.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

struct expect {
    uint32_t req;
    enum vhu_reply_kind kind;
    uint32_t off, size;
};

static const struct expect cases[9] = {
    {VHU_GET_FEATURES, VHU_REPLY_U64, 0, 0},
    {VHU_GET_PROTOCOL_FEATURES, VHU_REPLY_U64, 0, 0},
    {VHU_GET_QUEUE_NUM, VHU_REPLY_U64, 0, 0},
    {VHU_SET_MEM_TABLE, VHU_REPLY_U64, 0, 0}, /* a REPLY_ACK */
    {VHU_GET_VRING_BASE, VHU_REPLY_STATE, 0, 0},
    {VHU_GET_CONFIG, VHU_REPLY_CONFIG, 0, 60},
    {VHU_GET_CONFIG, VHU_REPLY_CONFIG, 20, 4},
    {VHU_GET_CONFIG, VHU_REPLY_CONFIG, 0, VHU_MAX_CONFIG},
    {VHU_GET_INFLIGHT_FD, VHU_REPLY_INFLIGHT, 0, 0},
};

static void parse(const struct expect *e, const uint8_t *m, size_t len, unsigned nfds)
{
    struct vhu_reply r;
    int rc = vhu_reply_parse(m, len, nfds, e->req, e->kind, e->off, e->size, &r);
    FZ_CHECK(rc == 0 || rc == -EPROTO || (rc == -EIO && e->kind == VHU_REPLY_CONFIG), "rc %d", rc);
    if (rc != 0)
        return;
    struct vhu_hdr h;
    vhu_hdr_decode(m, len, &h);
    FZ_CHECK(len >= VHU_HDR_SIZE && h.size == len - VHU_HDR_SIZE, "size %u for %zu", h.size, len);
    FZ_CHECK(h.request == e->req && (h.flags & VHU_F_REPLY), "not a reply to %u", e->req);
    FZ_CHECK(nfds == (e->kind == VHU_REPLY_INFLIGHT ? 1u : 0u), "%u fds accepted", nfds);
    if (e->kind == VHU_REPLY_INFLIGHT) {
        FZ_CHECK(h.size == VHU_INFLIGHT_SIZE, "inflight payload %u", h.size);
        const struct vhu_inflight *in = &r.inflight;
        FZ_CHECK(in->mmap_size > 0 && in->mmap_size <= VHU_MAX_INFLIGHT_MMAP &&
                     in->mmap_offset <= UINT64_MAX - in->mmap_size && in->num_queues > 0 &&
                     in->num_queues <= VHU_MAX_QUEUES && in->queue_size > 0 &&
                     !(in->queue_size & (in->queue_size - 1)),
                 "inflight area out of bounds");
    } else if (e->kind == VHU_REPLY_CONFIG) {
        FZ_CHECK(r.cfg_size == e->size, "config size %u, asked %u", r.cfg_size, e->size);
        FZ_CHECK(r.cfg >= m + VHU_HDR_SIZE && r.cfg + r.cfg_size == m + len,
                 "config bytes outside the reply");
    } else {
        FZ_CHECK(h.size == 8, "payload %u", h.size);
    }
}

static void through_socket(const struct expect *e, const uint8_t *d, size_t n)
{
    int sv[2];
    if (n > 16384 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return;
    if (n > 0 && write(sv[1], d, n) != (ssize_t)n)
        goto out;
    shutdown(sv[1], SHUT_WR); /* a short message ends in EOF, never a wait */
    static uint8_t buf[VHU_HDR_SIZE + VHU_MAX_PAYLOAD];
    int fds[VHU_MAX_FDS];
    unsigned nfds = 0;
    int len = vhu_sock_recv(sv[0], buf, sizeof(buf), fds, 0, &nfds, 1000);
    FZ_CHECK(nfds == 0, "fds returned with no fd allowed");
    if (len < 0) {
        FZ_CHECK(len == -ECONNRESET || len == -EMSGSIZE, "recv %d", len);
        goto out;
    }
    FZ_CHECK((size_t)len <= n && len >= VHU_HDR_SIZE, "recv length %d of %zu", len, n);
    parse(e, buf, (size_t)len, nfds);
out:
    close(sv[0]);
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const struct expect *e = &cases[(data[0] & 15) % 9];
    if (data[0] & 16)
        through_socket(e, data + 1, size - 1);
    else
        parse(e, data + 1, size - 1, (data[0] >> 5) & 1);
    return 0;
}
