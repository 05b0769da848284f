/*
 * Tap and frame-socket backends for virtio-net (see tap.h).
 *
 * Why a tap: it is the one host interface every Linux distribution has that
 * moves raw Ethernet frames between a process and the host's network stack
 * (bridges, routing, nftables), and with IFF_VNET_HDR it already frames each
 * packet with the virtio-net header, so frames pass through without
 * reformatting.  The same "one datagram = header + frame" contract is served
 * by a SOCK_SEQPACKET socket, which the tests use instead of /dev/net/tun.
 */
#include "devices/backends/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

_Static_assert(TAP_NAME_MAX == IFNAMSIZ, "interface names are IFNAMSIZ bytes");

/*
 * Plain read()/writev() serve every kind of fd: a tap, and datagram or
 * seqpacket sockets alike (one call = one frame).  They are also the calls
 * the main thread's seccomp filter allows for backends.  A socket peer that
 * went away makes writev() fail with EPIPE: wisp ignores SIGPIPE.
 */
static ssize_t fd_recv(struct net_backend *b, void *buf, size_t len)
{
    ssize_t n;
    do {
        n = read(b->fd, buf, len);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

static ssize_t fd_send(struct net_backend *b, const struct iovec *iov, int iovcnt)
{
    ssize_t n;
    do {
        n = writev(b->fd, iov, iovcnt);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

static void fd_destroy(struct net_backend *b)
{
    if (!b)
        return;
    if (b->fd >= 0)
        close(b->fd);
    free(b);
}

static const struct net_backend_ops fd_ops = {
    .recv = fd_recv,
    .send = fd_send,
    .destroy = fd_destroy,
};

int tap_from_fd(int fd, const char *label, struct net_backend **out)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct net_backend *b = calloc(1, sizeof(*b));
    if (!b) {
        close(fd);
        return -ENOMEM;
    }
    b->ops = &fd_ops;
    b->fd = fd;
    snprintf(b->name, sizeof(b->name), "%s", label ? label : "fd");
    *out = b;
    return 0;
}

/* Which exit class a TUNSETIFF failure belongs to: the user's tap, or the host. */
static int setiff_exit_code(int e)
{
    /* EBUSY: attached by another process; EINVAL: a tun, a non-tun device or a
     * multi-queue tap of that name.  Both are about the name the user gave. */
    return (e == EBUSY || e == EINVAL) ? WISP_EXIT_USAGE : WISP_EXIT_HOST;
}

int tap_open(const char *ifname, struct net_backend **out, struct errbuf *err)
{
    if (!ifname || !ifname[0] || strlen(ifname) >= IFNAMSIZ || strchr(ifname, '/') ||
        strchr(ifname, '%'))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "tap '%s': not a valid interface name (1-%d characters, no '/' or '%%')",
                       ifname ? ifname : "", IFNAMSIZ - 1);

    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "tap '%s': cannot open /dev/net/tun: %s", ifname,
                       strerror(errno));

    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    /* IFF_NO_PI: no 4-byte packet-info prefix; IFF_VNET_HDR: the virtio header
     * travels with each frame instead. */
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    memcpy(ifr.ifr_name, ifname, strlen(ifname));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        return err_set(err, setiff_exit_code(e), e, "tap '%s': cannot attach: %s", ifname,
                       strerror(e));
    }
    int hdr = TAP_VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
        int e = errno;
        close(fd);
        return err_set(err, WISP_EXIT_HOST, e, "tap '%s': cannot set the vnet header size: %s",
                       ifname, strerror(e));
    }

    int r = tap_from_fd(fd, ifname, out);
    if (r < 0)
        return err_set(err, WISP_EXIT_HOST, -r, "tap '%s': %s", ifname, strerror(-r));
    return 0;
}
