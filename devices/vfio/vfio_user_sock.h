/*
 * vfio-user messages on a UNIX stream socket, with file descriptors passed as
 * SCM_RIGHTS on the message's first bytes.
 *
 * Why its own module: the peer is untrusted and may stall, die, send half a
 * message, or attach descriptors it should not.  Every call here has a
 * deadline (poll on a non-blocking send/receive), every received fd is
 * close-on-exec, and anything unexpected (too many fds, truncated control
 * data, fds in the middle of a message, a size above the caller's buffer)
 * closes what arrived and fails the call, so the caller can mark the
 * connection dead.
 */
#ifndef DEVICES_VFIO_VFIO_USER_SOCK_H
#define DEVICES_VFIO_VFIO_USER_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include "devices/fdsock.h" /* fdsock_close_fds for what a receive returned */

#include "devices/vfio/vfio_user_msg.h"

/*
 * Sends the len bytes of buf (a whole message, header first) with nfds
 * descriptors attached (nfds <= VFIO_USER_MAX_FDS), within timeout_ms.
 * Returns 0, -ETIMEDOUT, -EPIPE (peer gone) or another negative errno.  On
 * failure part of the message may have been sent: the stream is then out of
 * step and the connection must be dropped.
 */
int vfio_user_sock_send(int sock, const uint8_t *buf, size_t len, const int *fds, unsigned nfds,
                        int timeout_ms);

/*
 * Receives one whole message into buf (cap bytes) within timeout_ms.  Up to
 * max_fds descriptors are accepted (stored in fds, count in *nfds); the
 * caller owns and must close them.  On success *h holds the checked header
 * (vfio_user_hdr_decode) and the message is buf[0..h->size).
 * Returns 0 or: -ETIMEDOUT (nothing or only part arrived in time),
 * -ECONNRESET (EOF, mid-message included), -EPROTO (bad header, more fds
 * than max_fds, truncated control data, fds after the first bytes),
 * -EMSGSIZE (size > cap), -ENOTSUP (unknown command; the message has been
 * consumed), another negative errno.  On any failure no fd is left open.
 */
int vfio_user_sock_recv(int sock, uint8_t *buf, size_t cap, int *fds, unsigned max_fds,
                        unsigned *nfds, struct vfio_user_hdr *h, int timeout_ms);

#endif /* DEVICES_VFIO_VFIO_USER_SOCK_H */
