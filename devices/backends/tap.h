/*
 * Network backends for virtio-net: where the guest's Ethernet frames go.
 *
 * The device model (devices/virtio/net.c) sees a backend only through
 * struct net_backend: a pollable fd and three operations.  Every frame in
 * either direction is one datagram made of the 12-byte virtio_net_hdr_v1
 * followed by the Ethernet frame (no preamble, no FCS).  A Linux tap with
 * IFF_VNET_HDR and a vnet header size of 12 speaks exactly that, and so does
 * a SOCK_SEQPACKET or SOCK_DGRAM socket whose peer writes whole records, which
 * is how the unit tests replace the tap without /dev/net/tun.
 *
 * Threads: a backend is not thread-safe; its owner serialises every call
 * (the virtio device does so with dev->lock).
 */
#ifndef DEVICES_BACKENDS_TAP_H
#define DEVICES_BACKENDS_TAP_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "vmm/error.h"
#include "vmm/util.h"

/* Bytes of the virtio_net_hdr_v1 that precedes every frame on the backend. */
#define TAP_VNET_HDR_LEN 12
/* Longest interface name the kernel accepts, plus the terminating NUL (IFNAMSIZ). */
#define TAP_NAME_MAX 16

struct net_backend;

struct net_backend_ops {
    /*
     * Receive one frame (header included) into buf[0, len).  A frame longer
     * than `len` is cut to `len` bytes (sockets) or reported with its full
     * length, more than was stored (tap), so callers pass a buffer one byte
     * longer than the largest frame they accept and treat a result >= len as
     * "too long" (never as a length to use).  -EAGAIN when nothing is
     * waiting, 0 when the peer has gone away, another -errno on failure.
     */
    ssize_t (*recv)(struct net_backend *b, void *buf, size_t len);
    /*
     * Send one frame gathered from iov[0, iovcnt) (iovcnt <= IOV_MAX).
     * Returns the bytes sent or -errno; -EAGAIN when the backend cannot take
     * it now.  Never blocks.
     */
    ssize_t (*send)(struct net_backend *b, const struct iovec *iov, int iovcnt);
    /* Close the fd and free the backend. */
    void (*destroy)(struct net_backend *b);
};

struct net_backend {
    const struct net_backend_ops *ops;
    int fd;                  /* non-blocking; poll for EPOLLIN: a frame is waiting */
    char name[TAP_NAME_MAX]; /* interface name, or a label for messages */
};

/*
 * Attach to tap interface `ifname` (created, down and non-persistent, if it
 * does not exist and we may create it): /dev/net/tun opened O_NONBLOCK |
 * O_CLOEXEC with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a vnet header size of
 * TAP_VNET_HDR_LEN.  No offloads are enabled (TUNSETOFFLOAD is never called),
 * so the kernel hands us complete frames with valid checksums.
 *
 * Errors are recorded in `err` as one line naming the tap and the errno:
 *   WISP_EXIT_USAGE  empty or too long name (-EINVAL), the name belongs to a
 *                    non-tap device or a tap without a vnet header, or it is
 *                    attached elsewhere (-EBUSY, -EINVAL from TUNSETIFF)
 *   WISP_EXIT_HOST   /dev/net/tun missing or denied, no CAP_NET_ADMIN to
 *                    create the tap, other ioctl failures
 * Returns 0 with *out set, or -errno.
 */
int tap_open(const char *ifname, struct net_backend **out, struct errbuf *err) __must_check;

/*
 * Wrap an fd that already carries whole frames with the 12-byte header (a
 * tap opened elsewhere, or one end of a SOCK_SEQPACKET socketpair in tests).
 * Takes ownership of `fd` (closed by destroy(), also on failure) and makes
 * it non-blocking.  `label` names the backend in messages (truncated to
 * TAP_NAME_MAX - 1).  Frames move with read() and writev() whatever the fd.
 * Returns 0 with *out set, or -ENOMEM / -errno from fcntl.
 */
int tap_from_fd(int fd, const char *label, struct net_backend **out) __must_check;

#endif /* DEVICES_BACKENDS_TAP_H */
