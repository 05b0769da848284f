/*
 * Deadline-bounded message I/O on a UNIX stream socket with descriptors
 * passed as SCM_RIGHTS: the transport under both vfio-user
 * (devices/vfio/vfio_user_sock.c) and vhost-user (devices/vhost/
 * vhost_user_sock.c), whose framing differs but whose socket rules do not.
 *
 * Why its own module: the peer is untrusted and may stall, die, send half a
 * message or attach descriptors it should not.  Every call has a deadline
 * (MSG_DONTWAIT plus poll for what is left of it, whatever the socket's own
 * blocking mode), every received fd is close-on-exec, and unexpected fds
 * (too many, truncated control data, foreign control messages, fds after a
 * message's first bytes) are closed and fail the call.
 */
#ifndef DEVICES_FDSOCK_H
#define DEVICES_FDSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most descriptors one message may carry, over every protocol using this. */
#define FDSOCK_MAX_FDS 16

/* CLOCK_MONOTONIC in milliseconds, the time base of every deadline here. */
int64_t fdsock_now_ms(void);

/*
 * Waits for `events` on sock until deadline: 0 (ready, or POLLHUP/POLLERR
 * for the next send/recv to report), -ETIMEDOUT, -EBADF or -errno.
 */
int fdsock_wait(int sock, short events, int64_t deadline);

/*
 * Sends the len bytes of buf with nfds descriptors attached to the first
 * bytes (nfds <= FDSOCK_MAX_FDS, len > 0), before deadline.  0, -EINVAL,
 * -ETIMEDOUT, -EPIPE or another -errno; after a failure part of the message
 * may have gone, so the stream is out of step.
 */
int fdsock_send(int sock, const uint8_t *buf, size_t len, const int *fds, unsigned nfds,
                int64_t deadline);

/*
 * Reads exactly len bytes into buf before deadline.  Descriptors are taken
 * only when `first` and only with the first bytes read, up to max_fds in
 * total (appended to fds[*nfds..]; the caller owns them); any others are
 * closed and give -EPROTO.  0, -ECONNRESET (EOF), -ETIMEDOUT, -EPROTO or
 * -errno.
 */
int fdsock_recv_exact(int sock, uint8_t *buf, size_t len, bool first, int *fds, unsigned max_fds,
                      unsigned *nfds, int64_t deadline);

/* Closes the n fds in fds[] (skipping negative ones) and sets them to -1. */
void fdsock_close_fds(int *fds, unsigned n);

#endif /* DEVICES_FDSOCK_H */
