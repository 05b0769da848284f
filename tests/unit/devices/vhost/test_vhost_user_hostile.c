/*
 * The vhost-user frontend against a hostile backend: a tiny fake backend in
 * a thread, on the other end of a socketpair, answers the frontend's
 * requests with malformed replies (wrong request code, missing REPLY flag,
 * wrong size field, oversized size, fds attached, too many fds, a NACK, a
 * config or ring base that does not match), stays silent, or disconnects
 * mid-request.  Every case must end in a clean negative errno within the
 * deadline, a dead connection that fails later calls at once, and no fd
 * left open.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "devices/vhost/vhost_user.h"
#include "devices/vhost/vhost_user_sock.h"

#define TIMEOUT_MS 300

/* What the fake backend does with the one request it reads. */
enum fake_mode {
    FAKE_WRONG_REQ,   /* reply names another request */
    FAKE_NO_REPLY,    /* REPLY flag missing */
    FAKE_SHORT,       /* size field 4 for a u64 reply (payload matches the field) */
    FAKE_SIZE_LIES,   /* size field 8, only 4 bytes, then EOF */
    FAKE_HUGE,        /* size field 0xffffffff */
    FAKE_ONE_FD,      /* a correct reply with an fd attached */
    FAKE_MANY_FDS,    /* a correct reply with 40 fds attached */
    FAKE_SILENT,      /* never answers */
    FAKE_CLOSE,       /* reads the request, closes the socket */
    FAKE_NACK,        /* REPLY_ACK with a non-zero status */
    FAKE_CFG_OFFSET,  /* GET_CONFIG echoing another offset */
    FAKE_CFG_EMPTY,   /* GET_CONFIG with size 0: backend failure */
    FAKE_BASE_INDEX,  /* GET_VRING_BASE naming another ring */
    FAKE_BAD_VERSION, /* version bits 2 */
};

static int sv[2];
static pthread_t th;
static enum fake_mode mode;
static struct vhu_conn c;
static int fds_before;

static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

static void raw_send(int s, const uint8_t *b, size_t len, int nfds)
{
    int fds[64];
    union {
        char c[CMSG_SPACE(sizeof(fds))];
        struct cmsghdr a;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = {.iov_base = (void *)(uintptr_t)b, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        for (int i = 0; i < nfds; i++)
            fds[i] = eventfd(0, EFD_CLOEXEC);
        mh.msg_control = ctl.c;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    (void)sendmsg(s, &mh, MSG_NOSIGNAL);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
}

static void reply(int s, uint32_t req, uint32_t flags, uint32_t size, const void *p, size_t plen,
                  int nfds)
{
    uint8_t b[512];
    struct vhu_hdr h = {.request = req, .flags = flags, .size = size};
    vhu_hdr_encode(b, &h);
    memcpy(b + VHU_HDR_SIZE, p, plen);
    raw_send(s, b, VHU_HDR_SIZE + plen, nfds);
}

static void *fake(void *arg)
{
    (void)arg;
    int s = sv[1];
    uint8_t b[512];
    int fds[VHU_MAX_FDS];
    unsigned n;
    int len = vhu_sock_recv(s, b, sizeof(b), fds, VHU_MAX_FDS, &n, 2000);
    fdsock_close_fds(fds, n);
    if (len < 0)
        return NULL;
    struct vhu_hdr h;
    vhu_hdr_decode(b, VHU_HDR_SIZE, &h);
    const uint32_t ok = VHU_VERSION | VHU_F_REPLY;
    uint64_t zero = 0, one = 1;
    uint8_t cfg[VHU_CONFIG_HDR + 8] = {0};
    switch (mode) {
    case FAKE_WRONG_REQ:
        reply(s, h.request + 1, ok, 8, &zero, 8, 0);
        break;
    case FAKE_NO_REPLY:
        reply(s, h.request, VHU_VERSION, 8, &zero, 8, 0);
        break;
    case FAKE_BAD_VERSION:
        reply(s, h.request, 2 | VHU_F_REPLY, 8, &zero, 8, 0);
        break;
    case FAKE_SHORT:
        reply(s, h.request, ok, 4, &zero, 4, 0);
        break;
    case FAKE_SIZE_LIES:
        reply(s, h.request, ok, 8, &zero, 4, 0);
        shutdown(s, SHUT_WR);
        break;
    case FAKE_HUGE:
        reply(s, h.request, ok, 0xffffffffu, &zero, 8, 0);
        break;
    case FAKE_ONE_FD:
        reply(s, h.request, ok, 8, &zero, 8, 1);
        break;
    case FAKE_MANY_FDS:
        reply(s, h.request, ok, 8, &zero, 8, 40);
        break;
    case FAKE_SILENT:
        usleep(3 * TIMEOUT_MS * 1000);
        break;
    case FAKE_CLOSE:
        shutdown(s, SHUT_RDWR);
        break;
    case FAKE_NACK:
        reply(s, h.request, ok, 8, &one, 8, 0);
        break;
    case FAKE_CFG_OFFSET:
        cfg[0] = 4; /* offset 4, asked 0 */
        cfg[4] = 8;
        reply(s, h.request, ok, sizeof(cfg), cfg, sizeof(cfg), 0);
        break;
    case FAKE_CFG_EMPTY:
        reply(s, h.request, ok, VHU_CONFIG_HDR, cfg, VHU_CONFIG_HDR, 0);
        break;
    case FAKE_BASE_INDEX: {
        /* The enable is acked, then GET_VRING_BASE names ring 1. */
        reply(s, h.request, ok, 8, &zero, 8, 0);
        len = vhu_sock_recv(s, b, sizeof(b), fds, VHU_MAX_FDS, &n, 2000);
        fdsock_close_fds(fds, n);
        if (len < 0)
            return NULL;
        vhu_hdr_decode(b, VHU_HDR_SIZE, &h);
        uint32_t st[2] = {1, 5};
        reply(s, h.request, ok, 8, st, 8, 0);
        break;
    }
    }
    return NULL;
}

static void setup(void)
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fds_before = open_fds();
}

static void run(enum fake_mode m)
{
    mode = m;
    vhu_adopt(&c, sv[0], TIMEOUT_MS);
    cr_assert_eq(pthread_create(&th, NULL, fake, NULL), 0);
}

/* Joins the fake, checks the connection is dead and sticky, and that no fd leaked. */
static void finish(int rc, int want)
{
    pthread_join(th, NULL);
    cr_assert_eq(rc, want, "rc %d (%s), want %d", rc, strerror(-rc), want);
    cr_assert(c.dead, "connection not marked dead");
    cr_assert_eq(vhu_handshake(&c), -ECONNRESET, "a dead connection answered");
    cr_assert_eq(open_fds(), fds_before, "fds leaked");
    vhu_disconnect(&c);
    close(sv[1]);
}

TestSuite(vhost_user_hostile, .init = setup, .timeout = 10);

Test(vhost_user_hostile, wrong_request_code)
{
    run(FAKE_WRONG_REQ);
    finish(vhu_handshake(&c), -EPROTO);
}

Test(vhost_user_hostile, reply_flag_missing)
{
    run(FAKE_NO_REPLY);
    finish(vhu_handshake(&c), -EPROTO);
}

Test(vhost_user_hostile, wrong_version)
{
    run(FAKE_BAD_VERSION);
    finish(vhu_handshake(&c), -EPROTO);
}

Test(vhost_user_hostile, wrong_size_for_the_request)
{
    run(FAKE_SHORT);
    finish(vhu_handshake(&c), -EPROTO);
}

Test(vhost_user_hostile, size_field_above_what_arrives_then_eof)
{
    run(FAKE_SIZE_LIES);
    finish(vhu_handshake(&c), -ECONNRESET);
}

Test(vhost_user_hostile, oversized_size_field)
{
    run(FAKE_HUGE);
    finish(vhu_handshake(&c), -EMSGSIZE);
}

Test(vhost_user_hostile, an_fd_where_none_is_expected)
{
    run(FAKE_ONE_FD);
    finish(vhu_handshake(&c), -EPROTO);
}

Test(vhost_user_hostile, too_many_fds)
{
    run(FAKE_MANY_FDS);
    finish(vhu_handshake(&c), -EPROTO);
}

Test(vhost_user_hostile, silent_backend_times_out)
{
    run(FAKE_SILENT);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = vhu_handshake(&c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    cr_assert(ms >= TIMEOUT_MS - 10 && ms < TIMEOUT_MS + 500, "waited %ld ms", ms);
    finish(rc, -ETIMEDOUT);
}

Test(vhost_user_hostile, disconnect_mid_request)
{
    run(FAKE_CLOSE);
    finish(vhu_handshake(&c), -ECONNRESET);
}

Test(vhost_user_hostile, nack_on_reply_ack)
{
    run(FAKE_NACK);
    c.protocol_features = 1ull << VHU_PF_REPLY_ACK;
    c.backend_features = ~0ull;
    finish(vhu_set_features(&c, 0), -EIO);
}

Test(vhost_user_hostile, config_reply_for_another_offset)
{
    run(FAKE_CFG_OFFSET);
    c.protocol_features = 1ull << VHU_PF_CONFIG;
    uint8_t out[8];
    finish(vhu_get_config(&c, 0, 8, out), -EPROTO);
}

Test(vhost_user_hostile, config_reply_of_size_zero)
{
    run(FAKE_CFG_EMPTY);
    c.protocol_features = 1ull << VHU_PF_CONFIG;
    uint8_t out[8];
    finish(vhu_get_config(&c, 0, 8, out), -EIO);
}

Test(vhost_user_hostile, ring_base_for_another_ring)
{
    run(FAKE_BASE_INDEX);
    c.protocol_features = 1ull << VHU_PF_REPLY_ACK;
    c.queue_num = 2;
    uint16_t base = 0;
    finish(vhu_vring_stop(&c, 0, &base), -EPROTO);
}
