/*
 * vhost-user messages on a UNIX stream socket, with file descriptors passed
 * as SCM_RIGHTS on the message's first bytes (vhost-user.rst).
 *
 * Why its own module: the backend is untrusted and may stall, die, send half
 * a message, or attach descriptors it should not.  Every call here has a
 * deadline (poll on a non-blocking send/receive), so a dead or silent
 * backend costs at most the timeout, never a hang; every received fd is
 * close-on-exec, and anything unexpected (more fds than allowed, truncated
 * control data, fds after the first bytes, a payload above VHU_MAX_PAYLOAD)
 * closes what arrived and fails the call, so the caller can drop the
 * connection.
 */
#ifndef DEVICES_VHOST_VHOST_USER_SOCK_H
#define DEVICES_VHOST_VHOST_USER_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include "devices/fdsock.h" /* fdsock_close_fds for what a receive returned */

#include "devices/vhost/vhost_user_msg.h"

/*
 * Sends the len bytes of buf (a whole message, header first) with nfds
 * descriptors attached (nfds <= VHU_MAX_FDS), within timeout_ms.  Returns
 * 0, -ETIMEDOUT, -EPIPE/-ECONNRESET (peer gone) or another negative errno.
 * After a failure the stream may be out of step: drop the connection.
 */
int vhu_sock_send(int sock, const uint8_t *buf, size_t len, const int *fds, unsigned nfds,
                  int timeout_ms);

/*
 * Receives one whole message into buf (cap >= VHU_HDR_SIZE + VHU_MAX_PAYLOAD
 * is enough for anything accepted) within timeout_ms.  Up to max_fds
 * descriptors are accepted with the first bytes (stored in fds, count in
 * *nfds; the caller closes them).  Returns the message length (header +
 * payload) or: -ETIMEDOUT (nothing or part of it in time), -ECONNRESET (EOF,
 * mid-message included), -EPROTO (more fds than max_fds, fds after the
 * first bytes, truncated or foreign control data), -EMSGSIZE (payload size
 * above VHU_MAX_PAYLOAD or cap), another negative errno.  On failure no fd
 * is left open.
 */
int vhu_sock_recv(int sock, uint8_t *buf, size_t cap, int *fds, unsigned max_fds, unsigned *nfds,
                  int timeout_ms);

#endif /* DEVICES_VHOST_VHOST_USER_SOCK_H */
