/*
 * Unit tests for the vfio-user socket layer (devices/vfio/vfio_user_sock.c)
 * over a socketpair: whole messages with fds, split messages, and what a
 * hostile peer can do: too many fds, fds in the middle of a message,
 * truncated control data, EOF part-way, a stall, an oversized message.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "devices/vfio/vfio_user_sock.h"

static int sv[2];
static uint8_t buf[4096];

static void setup(void)
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void teardown(void)
{
    close(sv[0]);
    close(sv[1]);
}

TestSuite(vfio_user_sock, .init = setup, .fini = teardown, .timeout = 10);

static size_t make_msg(uint8_t *b, uint16_t cmd, size_t payload)
{
    struct vfio_user_hdr h = {.id = 9, .cmd = cmd, .size = (uint32_t)(16 + payload)};
    vfio_user_hdr_encode(b, &h);
    memset(b + 16, 0x3c, payload);
    return 16 + payload;
}

static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

/* Sends len bytes of b with n copies of fd attached, bypassing the layer under test. */
static void raw_send(const uint8_t *b, size_t len, int fd, int n)
{
    int fds[128];
    union {
        char c[CMSG_SPACE(sizeof(fds))];
        struct cmsghdr a;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = {.iov_base = (void *)(uintptr_t)b, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n) {
        for (int i = 0; i < n; i++)
            fds[i] = fd;
        mh.msg_control = ctl.c;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    }
    cr_assert_eq(sendmsg(sv[1], &mh, 0), (ssize_t)len);
}

Test(vfio_user_sock, message_with_fds_round_trip)
{
    uint8_t m[64];
    size_t len = make_msg(m, VFIO_USER_DMA_MAP, 32);
    int efd = eventfd(0, EFD_CLOEXEC);
    int fds[2] = {efd, efd};
    cr_assert_eq(vfio_user_sock_send(sv[1], m, len, fds, 2, 1000), 0);
    int got[4];
    unsigned n;
    struct vfio_user_hdr h;
    cr_assert_eq(vfio_user_sock_recv(sv[0], buf, sizeof(buf), got, 4, &n, &h, 1000), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(h.size, len);
    cr_assert_eq(memcmp(buf, m, len), 0);
    cr_assert(fcntl(got[0], F_GETFD) & FD_CLOEXEC, "received fds are close-on-exec");
    fdsock_close_fds(got, n);
    close(efd);
}

Test(vfio_user_sock, split_message_is_reassembled)
{
    uint8_t m[64];
    size_t len = make_msg(m, VFIO_USER_REGION_WRITE, 20);
    cr_assert_eq(write(sv[1], m, 5), 5);
    cr_assert_eq(write(sv[1], m + 5, 15), 15);
    cr_assert_eq(write(sv[1], m + 20, len - 20), (ssize_t)(len - 20));
    unsigned n;
    struct vfio_user_hdr h;
    cr_assert_eq(vfio_user_sock_recv(sv[0], buf, sizeof(buf), NULL, 0, &n, &h, 1000), 0);
    cr_assert_eq(memcmp(buf, m, len), 0);
}

Test(vfio_user_sock, too_many_fds_closed_and_refused)
{
    uint8_t m[32];
    size_t len = make_msg(m, VFIO_USER_DMA_MAP, 0);
    int efd = eventfd(0, EFD_CLOEXEC);
    int before = open_fds();
    raw_send(m, len, efd, 3);
    int got[2];
    unsigned n;
    struct vfio_user_hdr h;
    cr_assert_eq(vfio_user_sock_recv(sv[0], buf, sizeof(buf), got, 2, &n, &h, 1000), -EPROTO);
    cr_assert_eq(n, 0);
    cr_assert_eq(open_fds(), before, "no received fd left open");
    close(efd);
}

Test(vfio_user_sock, truncated_control_data_refused)
{
    uint8_t m[32];
    size_t len = make_msg(m, VFIO_USER_DMA_MAP, 0);
    int efd = eventfd(0, EFD_CLOEXEC);
    int before = open_fds();
    raw_send(m, len, efd, 100); /* more than the receive side has room for: MSG_CTRUNC */
    int got[2];
    unsigned n;
    struct vfio_user_hdr h;
    cr_assert_eq(vfio_user_sock_recv(sv[0], buf, sizeof(buf), got, 2, &n, &h, 1000), -EPROTO);
    cr_assert_eq(open_fds(), before);
    close(efd);
}

Test(vfio_user_sock, fds_mid_message_refused)
{
    uint8_t m[64];
    size_t len = make_msg(m, VFIO_USER_REGION_WRITE, 24);
    int efd = eventfd(0, EFD_CLOEXEC);
    int before = open_fds();
    raw_send(m, 16, -1, 0);
    raw_send(m + 16, len - 16, efd, 1);
    int got[2];
    unsigned n;
    struct vfio_user_hdr h;
    cr_assert_eq(vfio_user_sock_recv(sv[0], buf, sizeof(buf), got, 2, &n, &h, 1000), -EPROTO);
    cr_assert_eq(open_fds(), before);
    close(efd);
}

Test(vfio_user_sock, eof_mid_message_and_stall)
{
    uint8_t m[64];
    make_msg(m, VFIO_USER_REGION_WRITE, 24);
    cr_assert_eq(write(sv[1], m, 20), 20);
    unsigned n;
    struct vfio_user_hdr h;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(vfio_user_sock_recv(sv[0], buf, sizeof(buf), NULL, 0, &n, &h, 200), -ETIMEDOUT,
                 "a stalled peer times out");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 2);
    /* The rest never comes: the peer hangs up. */
    cr_assert_eq(write(sv[1], m, 8), 8);
    close(sv[1]);
    sv[1] = -1;
    cr_assert_eq(vfio_user_sock_recv(sv[0], buf, sizeof(buf), NULL, 0, &n, &h, 1000), -ECONNRESET);
    cr_assert_eq(vfio_user_sock_recv(sv[0], buf, sizeof(buf), NULL, 0, &n, &h, 1000), -ECONNRESET);
}

Test(vfio_user_sock, oversized_and_unknown_messages)
{
    uint8_t m[64];
    make_msg(m, VFIO_USER_REGION_WRITE, 48);
    cr_assert_eq(write(sv[1], m, 64), 64);
    unsigned n;
    struct vfio_user_hdr h;
    cr_assert_eq(vfio_user_sock_recv(sv[0], buf, 32, NULL, 0, &n, &h, 1000), -EMSGSIZE);
    int s2[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s2), 0);
    make_msg(m, 99, 8);
    cr_assert_eq(write(s2[1], m, 24), 24);
    make_msg(m, VFIO_USER_DEVICE_RESET, 0);
    cr_assert_eq(write(s2[1], m, 16), 16);
    cr_assert_eq(vfio_user_sock_recv(s2[0], buf, sizeof(buf), NULL, 0, &n, &h, 1000), -ENOTSUP);
    cr_assert_eq(vfio_user_sock_recv(s2[0], buf, sizeof(buf), NULL, 0, &n, &h, 1000), 0,
                 "the unknown message was consumed whole");
    cr_assert_eq(h.cmd, VFIO_USER_DEVICE_RESET);
    close(s2[0]);
    close(s2[1]);
}

Test(vfio_user_sock, send_to_a_gone_peer_fails)
{
    uint8_t m[32];
    size_t len = make_msg(m, VFIO_USER_DEVICE_RESET, 0);
    close(sv[0]);
    sv[0] = -1;
    cr_assert_eq(vfio_user_sock_send(sv[1], m, len, NULL, 0, 1000), -EPIPE);
    int fds[VFIO_USER_MAX_FDS + 1] = {0};
    cr_assert_eq(vfio_user_sock_send(sv[1], m, len, fds, VFIO_USER_MAX_FDS + 1, 1000), -EINVAL);
}

Test(vfio_user_sock, full_socket_send_times_out)
{
    static uint8_t big[65536];
    size_t len = make_msg(big, VFIO_USER_REGION_WRITE, sizeof(big) - 16);
    int rc = 0;
    for (int i = 0; i < 200 && rc == 0; i++)
        rc = vfio_user_sock_send(sv[1], big, len, NULL, 0, 100);
    cr_assert_eq(rc, -ETIMEDOUT, "a peer that never reads cannot block the sender");
}
