/*
 * virtio-console (virtio 1.2 section 5.3): a single port (no MULTIPORT, no
 * SIZE, no EMERG_WRITE features), receiveq 0 and transmitq 1, in front of a
 * character backend (devices/backends/chardev.h): the VMM's stdio, or a UNIX
 * socket that wisp listens on and serves to one client at a time.
 *
 * TX (guest to host).  Every chain is completed at once, whether or not the
 * backend can take its bytes now: Linux's virtio_console busy-waits on the
 * vCPU until its console output buffer comes back, so holding chains for a
 * slow peer would stall the guest.  Bytes wait instead in a host buffer of
 * VIRTIO_CONSOLE_TX_BUF bytes that drains as the backend becomes writable
 * (never blocking the loop); bytes beyond it, and all bytes while no client
 * is connected, are dropped and counted (like a serial line with nothing
 * attached).  When a client leaves, what was buffered for it is dropped.
 *
 * RX (host to guest).  Host input is read only while the RX buffer of
 * VIRTIO_CONSOLE_RX_BUF bytes has room, and delivered into receive chains as
 * the guest provides them; when the buffer is full the backend is not read,
 * which pushes back on the client or on stdin.  Nothing read is dropped.
 *
 * At most VIRTIO_CONSOLE_BUDGET chains per queue and event; the rest is
 * rescheduled through the device's own eventfd.
 *
 * State (ops->save/load): one "virtio-console" section, version 1: the
 * bytes waiting in the TX and RX buffers.  Load checks both lengths against
 * the buffer sizes and leaves the device unchanged on error.  Reset has no
 * chains to drop (they are completed when popped) and keeps both buffers:
 * they hold host-side bytes, and Linux resets the device when its driver
 * binds, so input typed during boot still reaches the guest.
 */
#ifndef DEVICES_VIRTIO_CONSOLE_H
#define DEVICES_VIRTIO_CONSOLE_H

#include <stdint.h>

#include "devices/backends/chardev.h"
#include "devices/virtio/virtio.h"
#include "vmm/error.h"

#define VIRTIO_CONSOLE_RXQ        0
#define VIRTIO_CONSOLE_TXQ        1
#define VIRTIO_CONSOLE_QUEUE_SIZE 256
#define VIRTIO_CONSOLE_TX_BUF     (32U * 1024)
#define VIRTIO_CONSOLE_RX_BUF     (4U * 1024)
#define VIRTIO_CONSOLE_BUDGET     64

/* Config space: le16 cols, le16 rows, le32 max_nr_ports (all informational without features). */
#define VIRTIO_CONSOLE_CFG_SIZE 8

enum virtio_console_mode {
    VIRTIO_CONSOLE_STDIO,
    VIRTIO_CONSOLE_SOCKET,
};

struct virtio_console_config {
    const char *id; /* instance id ("console0"); NULL: "console" */
    enum virtio_console_mode mode;
    const char *socket_path; /* VIRTIO_CONSOLE_SOCKET: where to listen */
};

/* Counters for --stats and tests; they survive reset and are not migrated. */
struct virtio_console_stats {
    uint64_t tx_bytes;      /* guest bytes written to the backend */
    uint64_t tx_dropped;    /* guest bytes dropped: no peer, buffer full, peer left */
    uint64_t rx_bytes;      /* host bytes delivered to the guest */
    uint64_t rx_dropped;    /* host bytes dropped at a device reset */
    uint64_t bad_chains;    /* chains with no usable buffer, or over the size cap */
    uint64_t connects;      /* clients accepted (socket mode) */
    uint64_t rx_empty_pops; /* receive-queue pops that found no buffer */
};

/*
 * Create the console with the backend `cfg->mode` asks for
 * (chardev_open_stdio() / chardev_open_socket(); their errors are reported
 * as is).  `mem` and `loop` must outlive it; `loop` must be initialised
 * (two fds are registered in it here).  Destroy with (*out)->ops->destroy(),
 * which also removes the socket path.
 * Errors: the backend's, or WISP_EXIT_FAILURE (out of memory, eventfd, event
 * loop full or not initialised).  Returns 0 or -errno.
 */
int virtio_console_create(const struct virtio_console_config *cfg, const struct gmem *mem,
                          struct evloop *loop, struct virtio_dev **out,
                          struct errbuf *err) __must_check;

/*
 * Same with an open backend, of which the device takes ownership (closed on
 * failure too); cfg->mode and socket_path are ignored.  For tests
 * (chardev_open_fds() on a socketpair) and launchers passing fds.
 */
int virtio_console_create_with_chardev(const struct virtio_console_config *cfg, struct chardev *cd,
                                       const struct gmem *mem, struct evloop *loop,
                                       struct virtio_dev **out, struct errbuf *err) __must_check;

/* Snapshot of the counters of a device made by virtio_console_create*(). */
void virtio_console_get_stats(struct virtio_dev *d, struct virtio_console_stats *st);

#endif /* DEVICES_VIRTIO_CONSOLE_H */
