/*
 * Shared helpers of the virtio_snapshot tests (test_snapshot*.c): the two
 * "hosts" of a migration, each a fake host (tests/lib/fake_virtio.h) with a
 * real virtio-mmio transport around a real device, over one guest memory;
 * save/encode/decode/load in one call; and a fingerprint to show that a
 * refused load left the target exactly as it was.
 */
#ifndef TESTS_UNIT_DEVICES_VIRTIO_TEST_SNAPSHOT_H
#define TESTS_UNIT_DEVICES_VIRTIO_TEST_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio_snapshot.h"
#include "migration/vstate.h"
#include "tests/lib/fake_virtio.h"

#define SNAP_BASE 0xd0000000ULL
#define SNAP_GSI  5
#define SNAP_ID   7 /* instance id used by every test */

/* One side of a migration. */
struct snap_side {
    struct fake_host host;
    struct virtio_dev *d;
    struct virtio_mmio *t;
    int peer; /* other end of the device's socketpair backend, or -1 */
    bool inited;
};

/* Fake host only; snap_side_attach() adds a device. */
void snap_side_init(struct snap_side *s);
/* Put `d` on a transport at SNAP_BASE / SNAP_GSI (or `base`, `gsi`). */
void snap_side_attach(struct snap_side *s, struct virtio_dev *d);
void snap_side_attach_at(struct snap_side *s, struct virtio_dev *d, uint64_t base, unsigned gsi);
/* Transport, device, peer and fake host; safe on a side never initialised. */
void snap_side_fini(struct snap_side *s);

/* Devices on `mem` and the side's event loop; net and console on a socketpair. */
struct virtio_dev *snap_new_rng(struct snap_side *s, const struct gmem *mem);
struct virtio_dev *snap_new_net(struct snap_side *s, const struct gmem *mem, const uint8_t mac[6]);
struct virtio_dev *snap_new_console(struct snap_side *s, const struct gmem *mem);

/*
 * Bring the device up through the registers as a driver does: negotiate
 * `features`, program nq rings (already placed with fake_ring_init), set
 * DRIVER_OK, run the event loop once.
 */
void snap_bring_up(struct snap_side *s, struct fake_ring *rings, unsigned nq, uint64_t features);
/* Run the side's event loop until a round runs nothing (sleeps 1 ms between rounds). */
void snap_settle(struct snap_side *s);

/* virtio_snapshot_save() + virtio_state_encode(); asserts success. */
void snap_save_stream(struct snap_side *s, struct vstate_out *o);
/* virtio_snapshot_save() into *st; asserts success (free with virtio_state_free). */
void snap_save_state(struct snap_side *s, struct virtio_state *st);
/* virtio_state_decode() of one device; asserts success. */
void snap_decode(const struct vstate_out *o, struct virtio_state *st);
/*
 * The whole move: save src, encode, decode, load into dst.  The encoded
 * stream is left in *stream (caller frees with vstate_out_free).
 */
void snap_migrate(struct snap_side *src, struct snap_side *dst, struct vstate_out *stream);
/* save(s) encodes to exactly `stream`. */
void snap_assert_stream(struct snap_side *s, const struct vstate_out *stream);

/* What a refused load must leave alone: the saved state and the interrupt count. */
struct snap_print {
    struct vstate_out o;
    uint64_t irqs;
};
void snap_print_take(struct snap_side *s, struct snap_print *p);
/* Asserts that nothing changed; frees p. */
void snap_print_check(struct snap_side *s, struct snap_print *p);

/*
 * Load `st` into s and expect refusal `err` with a one-line reason that
 * contains `needle`; asserts the side is unchanged.
 */
void snap_expect_refusal(struct snap_side *s, const struct virtio_state *st, int err,
                         const char *needle);

/* Write le16 `v` at guest address `gpa`. */
void snap_poke16(const struct gmem *mem, gpa_t gpa, uint16_t v);

#endif /* TESTS_UNIT_DEVICES_VIRTIO_TEST_SNAPSHOT_H */
