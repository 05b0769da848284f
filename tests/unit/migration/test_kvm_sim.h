/*
 * A KVM dirty-log simulator for the migration tests (test_dirty.c,
 * test_precopy.c).  It enforces what the kernel documents for
 * KVM_GET_DIRTY_LOG without manual protect, so a tracker that breaks a rule
 * fails here the way it would fail on a real host:
 *  - get_log on a slot that is not logging: -ENOENT;
 *  - an unknown slot, or a bitmap of the wrong size (one bit per page,
 *    rounded up to 64-bit words): -EINVAL;
 *  - get_log returns the pages written since the last get_log and clears them.
 * Guest writes go through ks_write(), which sets the dirty bit when the
 * slot logs; device DMA writes RAM directly, without a bit, as real DMA does.
 */
#ifndef TESTS_UNIT_MIGRATION_TEST_KVM_SIM_H
#define TESTS_UNIT_MIGRATION_TEST_KVM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/dirty.h"

#define KS_MAX_SLOTS 4U

struct kvm_sim_slot {
    uint32_t id;
    uint64_t gpa, size;
    uint8_t *ram; /* size bytes */
    bool logging;
    uint64_t *log; /* the kernel's bitmap */
    size_t words;
};

struct kvm_sim {
    uint32_t n;
    struct kvm_sim_slot s[KS_MAX_SLOTS];
    /* Called at the start of every get_log of the first slot: the guest runs. */
    void (*before_log)(struct kvm_sim *k, void *ctx);
    void *before_ctx;
    int fail_get_log;      /* get_log returns this when non-zero */
    int fail_set_on;       /* set_logging(on) returns this ... */
    uint32_t fail_on_slot; /* ... for this slot id */
    int fail_set_off;      /* set_logging(off) returns this, once */
    unsigned get_logs;     /* calls */
    bool stopped;          /* vCPUs paused: ks_write asserts it is not */
};

/* Slots over one RAM buffer each (calloc'd); sizes must be page multiples. */
void ks_init(struct kvm_sim *k);
void ks_add(struct kvm_sim *k, uint32_t id, uint64_t gpa, uint64_t size);
void ks_free(struct kvm_sim *k);
/* The tracker's view of the simulator's slots. */
uint32_t ks_slots(const struct kvm_sim *k, struct mig_dirty_slot *out);
struct mig_dirty_ops ks_ops(struct kvm_sim *k);
/* A guest vCPU writes `v` at gpa (asserts the gpa is RAM and vCPUs run). */
void ks_write(struct kvm_sim *k, uint64_t gpa, uint8_t v);
/* Device DMA: writes without a KVM dirty bit. */
void ks_dma(struct kvm_sim *k, uint64_t gpa, uint8_t v);
/* Host pointer of gpa. */
uint8_t *ks_host(struct kvm_sim *k, uint64_t gpa);
/* Is any slot still logging? */
bool ks_any_logging(const struct kvm_sim *k);

#endif /* TESTS_UNIT_MIGRATION_TEST_KVM_SIM_H */
