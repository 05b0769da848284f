/*
 * Host side of the hybrid vsock device (devices/virtio/vsock.h): the UNIX
 * sockets through which host processes reach the guest and the guest
 * reaches host processes, as Firecracker's "hybrid vsock" defines them:
 *   - wisp listens on `uds_path`; a host process connects and writes
 *     "CONNECT <port>\n" to reach guest port <port> (parsed with
 *     vsock_uds_parse_connect());
 *   - a guest connection to host (CID 2) port P becomes a connection to the
 *     UNIX socket "<uds_path>_<P>", on which a host process listens.
 *
 * Why a separate layer: the device model keeps the protocol (connection
 * table, credit, handshake state); this file only owns the fds.  Every
 * socket is non-blocking and watched in a private epoll set whose single fd
 * (vsock_uds_fd()) is what the main event loop watches, so any number of
 * connections costs one main-loop slot.  A periodic timerfd in that set
 * (VSOCK_UDS_TICK_MS) lets the device time out handshakes.
 *
 * Syscalls after setup: accept4, socket(AF_UNIX, SOCK_STREAM), connect
 * (AF_UNIX: never waits; a full backlog fails with EAGAIN), epoll_ctl,
 * epoll_wait with timeout 0, read/readv/write/writev, shutdown(SHUT_WR), close.
 *
 * Threads: not thread-safe; the owner serialises every call.
 */
#ifndef DEVICES_BACKENDS_VSOCK_UDS_H
#define DEVICES_BACKENDS_VSOCK_UDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/util.h"

/* Longest uds_path: "<path>_<10 digits>" must fit sun_path (107 bytes + NUL). */
#define VSOCK_UDS_PATH_MAX 96
/* Period of the timer event. */
#define VSOCK_UDS_TICK_MS 100
/* Longest handshake line, "CONNECT 4294967295\n" plus slack. */
#define VSOCK_UDS_LINE_MAX 32

/* Keys of vsock_uds_wait() events that are not connections. */
#define VSOCK_UDS_KEY_LISTEN UINT32_MAX
#define VSOCK_UDS_KEY_TIMER  (UINT32_MAX - 1)

struct vsock_uds;

struct vsock_uds_event {
    uint32_t key;    /* the connection key given to vsock_uds_watch(), or KEY_* */
    uint32_t events; /* EPOLLIN / EPOLLOUT / EPOLLHUP / EPOLLERR */
};

/*
 * Create, bind (mode 0600) and listen on `path`, replacing a stale socket
 * file nobody accepts on.  Errors, one line naming the path:
 * WISP_EXIT_USAGE (empty or too long path, in use, not a socket, directory
 * missing or not writable) or WISP_EXIT_HOST (socket, epoll, timerfd).
 * Returns 0 with *out set, or -errno.
 */
int vsock_uds_open(const char *path, struct vsock_uds **out, struct errbuf *err) __must_check;

/* Close the listener, the epoll set and the timer, remove the path.  NULL-safe.
 * Connection fds belong to the caller. */
void vsock_uds_close(struct vsock_uds *u);

/* The fd the main loop watches for EPOLLIN. */
int vsock_uds_fd(const struct vsock_uds *u);

/* Accept one host connection (non-blocking fd), or -EAGAIN / -errno. */
int vsock_uds_accept(struct vsock_uds *u);

/* Connect to "<path>_<port>" without waiting: the new fd, or -errno
 * (-ECONNREFUSED, -ENOENT: nobody listens; -EAGAIN: its backlog is full). */
int vsock_uds_connect(struct vsock_uds *u, uint32_t port);

/* Watch (or re-watch) connection `fd` under `key` for the given directions. */
int vsock_uds_watch(struct vsock_uds *u, int fd, uint32_t key, bool in, bool out);

/* Stop watching `fd` (before closing it). */
void vsock_uds_unwatch(struct vsock_uds *u, int fd);

/* The guest will send no more: half-close `fd` (shutdown(SHUT_WR)); 0 or -errno. */
int vsock_uds_shutdown_wr(int fd);

/* Collect up to `max` ready events without waiting; the timer is drained
 * here.  Returns the count (0 .. max). */
int vsock_uds_wait(struct vsock_uds *u, struct vsock_uds_event *ev, int max);

/*
 * Parse a complete handshake line buf[0, len) ("CONNECT <port>\n", port a
 * decimal u32 without sign or leading spaces).  Returns 0 with *port set, or
 * -EINVAL for anything else.
 */
int vsock_uds_parse_connect(const char *buf, size_t len, uint32_t *port);

#endif /* DEVICES_BACKENDS_VSOCK_UDS_H */
