/*
 * virtio-rng (entropy device, virtio 1.2 section 5.4): one request queue;
 * each request is a chain of device-writable buffers that the device fills
 * with bytes from the host kernel's CSPRNG (getrandom(2), never blocking).
 *
 * Bounds (security.md D4): at most VIRTIO_RNG_REQ_MAX bytes per request (the
 * rest of a larger chain stays unwritten; the used length says how much was
 * written) and at most VIRTIO_RNG_BUDGET requests or VIRTIO_RNG_EVENT_BYTES
 * bytes per event (getrandom() took about 5 us per KiB on the development
 * machine, so an event stays near 1.3 ms); more waiting work is rescheduled
 * through the device's own eventfd so other devices get their turn.  A
 * chain with no writable part completes with length 0.
 *
 * No features, no config space.  State: an empty "virtio-rng" section,
 * version 1 (the device holds nothing between requests); load refuses any
 * other section or version, or trailing bytes.
 */
#ifndef DEVICES_VIRTIO_RNG_H
#define DEVICES_VIRTIO_RNG_H

#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "vmm/error.h"

#define VIRTIO_RNG_QUEUE_SIZE  256
#define VIRTIO_RNG_REQ_MAX     (64U * 1024)
#define VIRTIO_RNG_BUDGET      16
#define VIRTIO_RNG_EVENT_BYTES (256U * 1024)

struct virtio_rng_config {
    const char *id; /* instance id ("rng0"); NULL: "rng" */
};

/* Counters for --stats and tests; they survive reset and are not migrated. */
struct virtio_rng_stats {
    uint64_t requests;    /* chains completed */
    uint64_t bytes;       /* random bytes written */
    uint64_t short_reads; /* requests completed short because getrandom() had nothing */
};

/*
 * Create a virtio-rng device.  `mem` and `loop` must outlive it; `loop`
 * must be initialised (one eventfd is registered in it here).  Destroy with
 * (*out)->ops->destroy().
 * Errors: WISP_EXIT_FAILURE (out of memory, eventfd, event loop full or not
 * initialised), one line in `err`.  Returns 0 or -errno.
 */
int virtio_rng_create(const struct virtio_rng_config *cfg, const struct gmem *mem,
                      struct evloop *loop, struct virtio_dev **out,
                      struct errbuf *err) __must_check;

/* Snapshot of the counters of a device made by virtio_rng_create(). */
void virtio_rng_get_stats(struct virtio_dev *d, struct virtio_rng_stats *st);

#endif /* DEVICES_VIRTIO_RNG_H */
