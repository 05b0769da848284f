/*
 * Live-migration connections (docs/MIGRATION_FORMAT.md §9): where a stream
 * goes ("tcp:HOST:PORT", "unix:PATH"), connecting and accepting with
 * deadlines, and the destination's one-message answer after the stream.
 *
 * Why here: the sender and the receiver must agree on the address syntax
 * and on the answer, and both are protocol, not VM logic.  Nothing here is
 * encrypted or authenticated: a TCP stream must run on a trusted network
 * (or inside a tunnel the operator provides).  The receiver still treats
 * every byte as hostile (stream.h).
 *
 * The answer: after reading END the destination writes
 *   "WMIGACK1" | u8 status (0 = running here, 1 = refused) | le16 length |
 *   length bytes of message (no NUL; at most MIG_ACK_MSG_MAX)
 * and the source exits only after status 0.  Anything else, or nothing
 * within the deadline, counts as a refusal and the source resumes.
 */
#ifndef MIGRATION_SOCKET_H
#define MIGRATION_SOCKET_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/util.h"

#define MIG_URI_MAX     256U
#define MIG_ACK_MAGIC   "WMIGACK1"
#define MIG_ACK_MSG_MAX 400U

enum mig_uri_kind { MIG_URI_TCP = 1, MIG_URI_UNIX };

struct mig_uri {
    enum mig_uri_kind kind;
    char host[MIG_URI_MAX]; /* TCP: name or address ("[::1]" brackets removed) */
    char port[8];           /* TCP: 1..65535 */
    char path[108];         /* UNIX: socket path (sizeof(sun_path)) */
};

/*
 * Parse "tcp:HOST:PORT" (HOST may be "[v6addr]") or "unix:PATH".  0, or
 * -EINVAL with one line in err (WISP_EXIT_USAGE).
 */
int mig_uri_parse(const char *s, struct mig_uri *u, struct errbuf *err) __must_check;

/*
 * Connect to `u` within timeout_ms; *fd gets a blocking-free socket
 * (O_NONBLOCK, CLOEXEC; TCP_NODELAY off: the stream is bulk).  0 or -errno
 * with one line in err.
 */
int mig_connect(const struct mig_uri *u, int timeout_ms, int *fd, struct errbuf *err) __must_check;

/*
 * Listen on `u` (a stale UNIX socket file nobody listens on is replaced).
 * *fd gets the listening socket (CLOEXEC).  0 or -errno with err.
 */
int mig_listen(const struct mig_uri *u, int *fd, struct errbuf *err) __must_check;

/*
 * Accept one connection on `lfd`, waiting at most timeout_ms (< 0: no
 * limit) and giving up when `stop_fd` (>= 0) becomes readable (-EINTR).
 * *fd gets the connection (O_NONBLOCK, CLOEXEC).  0 or -errno with err.
 */
int mig_accept(int lfd, int stop_fd, int timeout_ms, int *fd, struct errbuf *err) __must_check;

/* Send the destination's answer (status 0 = running, else refused, with `msg`). */
int mig_ack_send(int fd, bool ok, const char *msg, int timeout_ms) __must_check;

/*
 * Read the answer: 0 when the destination runs the VM; -EPROTO when it
 * refused (its message in err), -ETIMEDOUT, -ECONNRESET/-EPIPE or -EBADMSG
 * for anything else, with one line in err.
 */
int mig_ack_recv(int fd, int timeout_ms, struct errbuf *err) __must_check;

#endif /* MIGRATION_SOCKET_H */
