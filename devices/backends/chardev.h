/*
 * Character backend for the virtio console: a byte stream in each
 * direction between the device and the host, never blocking the caller.
 *
 * Three kinds:
 *   stdio   the VMM's stdin and stdout, each reopened as a new open file
 *           description with O_NONBLOCK (through /proc/self/fd), so the
 *           terminal or pipe shared with our parent is never switched to
 *           non-blocking mode under it.  Where that cannot be done (a
 *           regular file, a socket, no /proc in a jail) the fd is dup()ed
 *           and its flags left alone: it may block, so each read or write
 *           on it is preceded by a zero-timeout poll and bounded to what
 *           the ready fd takes without waiting (see chardev.c).  Input
 *           that epoll cannot watch (a regular file, /dev/null) counts as
 *           no input.
 *   socket  a UNIX stream socket that wisp creates (mode 0600) and listens
 *           on, serving one client at a time: while one is connected the
 *           next waits in the listen backlog; when it goes away (hang-up,
 *           end of input, error) it is closed and the next one is accepted.
 *           The path is removed again by chardev_close().
 *   fds     two already open fds (may be one socket), for tests and for a
 *           launcher that hands wisp a connected socket.
 *
 * Event model: the chardev owns a private epoll set; its fd (chardev_fd())
 * becomes readable when something happened.  The owner registers it in the
 * main loop and calls chardev_poll() from there; accepting and hang-ups are
 * handled inside, and the owner learns what it may do from the returned
 * CHARDEV_EV_* bits.  The owner says what it wants to be woken for with
 * chardev_set_interest(): input only while it has room (that is the
 * backpressure on the peer), output only while it has bytes waiting.
 *
 * I/O is plain read() and write() on non-blocking fds (after ppoll() on a
 * shared stdio fd), the calls the main thread's seccomp filter allows.  SIGPIPE must therefore be
 * ignored in the process (wisp does so before running the VM): a write to a pipe or socket whose
 * reader left must fail with EPIPE rather than kill us.
 *
 * Threads: not thread-safe; the owner serialises every call.
 */
#ifndef DEVICES_BACKENDS_CHARDEV_H
#define DEVICES_BACKENDS_CHARDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/error.h"
#include "vmm/util.h"

/* Bits returned by chardev_poll(). */
#define CHARDEV_EV_IN   1u /* input may be readable (or has ended: read to find out) */
#define CHARDEV_EV_OUT  2u /* output may take bytes */
#define CHARDEV_EV_UP   4u /* a client connected (socket kind) */
#define CHARDEV_EV_DOWN 8u /* the output side went away (client left, stdout closed) */

/* Longest socket path, without the NUL (sizeof(sun_path) - 1). */
#define CHARDEV_PATH_MAX 107

struct chardev;

/*
 * Use the VMM's stdin and stdout.  Errors: WISP_EXIT_HOST if epoll or the
 * reopened descriptors cannot be created (one line in `err`).
 * Returns 0 with *out set, or -errno.
 */
int chardev_open_stdio(struct chardev **out, struct errbuf *err) __must_check;

/*
 * Create, bind (mode 0600, set with fchmod() before bind(), so no umask race
 * with other threads) and listen on a UNIX stream socket at `path`.  A stale
 * socket file (nobody accepts on it) is replaced.
 * Errors, one line naming the path:
 *   WISP_EXIT_USAGE  empty path, longer than CHARDEV_PATH_MAX (-ENAMETOOLONG),
 *                    in use by a live listener (-EADDRINUSE), exists and is
 *                    not a socket (-EEXIST), directory missing or not
 *                    writable (-ENOENT, -EACCES, ...)
 *   WISP_EXIT_HOST   socket/epoll creation failures
 * Returns 0 with *out set, or -errno.
 */
int chardev_open_socket(const char *path, struct chardev **out, struct errbuf *err) __must_check;

/*
 * Wrap open fds: input from `in_fd` (-1: none), output to `out_fd` (-1:
 * discard).  They may be the same fd (a connected socket: a hang-up or end
 * of input then ends both directions).  Takes ownership of both, also on
 * failure, and switches them to O_NONBLOCK.  Errors: WISP_EXIT_HOST.
 * Returns 0 with *out set, or -errno.
 */
int chardev_open_fds(int in_fd, int out_fd, struct chardev **out, struct errbuf *err) __must_check;

/* Close every fd, remove the socket path we created, free.  NULL-safe. */
void chardev_close(struct chardev *c);

/* The fd to watch for EPOLLIN in the main loop (the private epoll set). */
int chardev_fd(const struct chardev *c);

/* Handle what happened (accept, hang-up) and return CHARDEV_EV_* bits.  Never blocks. */
unsigned chardev_poll(struct chardev *c);

/* Be woken (CHARDEV_EV_IN / _OUT) for input and/or output readiness. */
void chardev_set_interest(struct chardev *c, bool input, bool output);

/*
 * Read up to `len` bytes.  Returns the count (> 0), -EAGAIN if nothing is
 * waiting, or -EPIPE if there is no input: none configured, no client, or
 * it just ended (the client is then disconnected and CHARDEV_EV_DOWN is
 * reported by the next chardev_poll()).
 */
ssize_t chardev_read(struct chardev *c, void *buf, size_t len);

/*
 * Write up to `len` bytes.  Returns the count taken (possibly short),
 * -EAGAIN if none can be taken now, or -EPIPE if there is no peer (none
 * configured, no client, or it just went away: disconnected as above).
 */
ssize_t chardev_write(struct chardev *c, const void *buf, size_t len);

/*
 * Input filter, applied by chardev_read() to each chunk read: rewrites
 * buf[0..len) in place and returns how many bytes remain (never more than
 * len).  The VMM installs one on a stdio console on a raw terminal for the
 * Ctrl-A escape; the device never learns of it.
 */
typedef size_t (*chardev_filter_fn)(void *ctx, uint8_t *buf, size_t len);

/* Install (or with fn NULL remove) the input filter. */
void chardev_set_input_filter(struct chardev *c, chardev_filter_fn fn, void *ctx);

/* Is there an output peer now (a client, or a live stdout)? */
bool chardev_connected(const struct chardev *c);

#endif /* DEVICES_BACKENDS_CHARDEV_H */
