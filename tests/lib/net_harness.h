/*
 * Test harness for the virtio device models (net, and also rng and console:
 * the name only says who owns it).  It plays the transport and the main
 * loop around one device, without KVM:
 *   - a fake transport counting used-buffer interrupts, config interrupts
 *     and needs-reset requests;
 *   - one driver-side ring per queue (tests/lib/virtq_builder.h), each in
 *     its own guest RAM, activated on the device's own struct virtq;
 *   - a real evloop, dispatched one round at a time by the test.
 * Test-only: misuse aborts.
 */
#ifndef TESTS_LIB_NET_HARNESS_H
#define TESTS_LIB_NET_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "tests/lib/virtq_builder.h"
#include "vmm/evloop.h"

#define NET_HARNESS_MAX_QUEUES 3

struct net_harness {
    struct evloop loop;
    struct virtio_dev *d;
    unsigned nq;
    struct vqb q[NET_HARNESS_MAX_QUEUES];
    int used_irqs, config_irqs, needs_reset;
};

/* Initialise the event loop (before creating the device). */
void net_harness_init(struct net_harness *h);

/*
 * Attach the fake transport to `d`, negotiate `features` (must be offered),
 * set up `nq` rings of `size` entries (in memories of their own), activate
 * them on d->vq[] and call ops->activate() as DRIVER_OK would.
 */
void net_harness_start(struct net_harness *h, struct virtio_dev *d, unsigned nq, uint16_t size,
                       uint64_t features);

/* Destroy the device (if any), the rings and the loop. */
void net_harness_fini(struct net_harness *h);

/* One round of the main loop: wait up to timeout_ms, dispatch; returns handlers run. */
int net_harness_pump(struct net_harness *h, int timeout_ms);

/* Pump until a round dispatches nothing within `idle_ms`; returns handlers run in total. */
int net_harness_settle(struct net_harness *h, int idle_ms);

/* The guest kicked queue q: what the transport's notify handler does. */
void net_harness_kick(struct net_harness *h, uint16_t q);

/* Save the device into a fresh buffer (caller frees with vstate_out_free). */
struct vstate_out net_harness_save(struct virtio_dev *d);

/* Load buf[0, len) into the device; returns ops->load()'s result. */
int net_harness_load(struct virtio_dev *d, const void *buf, size_t len);

/*
 * A virtio-net device (id "net0") on one end of a SOCK_SEQPACKET
 * socketpair; *peer gets the other end.  mac NULL: a random one.
 */
struct virtio_dev *net_harness_new_net(struct net_harness *h, const uint8_t *mac, int *peer);

/* Add a one-buffer chain of `len` bytes (device-writable if `write`) filled with `fill`. */
uint16_t net_harness_add_buf(struct net_harness *h, unsigned q, uint32_t len, bool write,
                             uint8_t fill, gpa_t *gpa);

#endif /* TESTS_LIB_NET_HARNESS_H */
