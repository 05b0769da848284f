/*
 * The KVM dirty-log simulator (test_kvm_sim.h).  Its rules are written from
 * the KVM API documentation's description of KVM_GET_DIRTY_LOG and
 * KVM_MEM_LOG_DIRTY_PAGES, not from kernel sources.
 */
#include "tests/unit/migration/test_kvm_sim.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void ks_init(struct kvm_sim *k)
{
    memset(k, 0, sizeof(*k));
}

void ks_add(struct kvm_sim *k, uint32_t id, uint64_t gpa, uint64_t size)
{
    cr_assert(k->n < KS_MAX_SLOTS && size % 4096 == 0 && size);
    struct kvm_sim_slot *s = &k->s[k->n++];
    s->id = id;
    s->gpa = gpa;
    s->size = size;
    s->ram = calloc(1, size);
    s->words = (size_t)((size / 4096 + 63) / 64);
    s->log = calloc(s->words, 8);
    cr_assert(s->ram && s->log);
}

void ks_free(struct kvm_sim *k)
{
    for (uint32_t i = 0; i < k->n; i++) {
        free(k->s[i].ram);
        free(k->s[i].log);
    }
    k->n = 0;
}

uint32_t ks_slots(const struct kvm_sim *k, struct mig_dirty_slot *out)
{
    for (uint32_t i = 0; i < k->n; i++)
        out[i] = (struct mig_dirty_slot){k->s[i].id, k->s[i].gpa, k->s[i].size};
    return k->n;
}

static struct kvm_sim_slot *by_id(struct kvm_sim *k, uint32_t id)
{
    for (uint32_t i = 0; i < k->n; i++)
        if (k->s[i].id == id)
            return &k->s[i];
    return NULL;
}

static struct kvm_sim_slot *by_gpa(struct kvm_sim *k, uint64_t gpa)
{
    for (uint32_t i = 0; i < k->n; i++)
        if (gpa >= k->s[i].gpa && gpa - k->s[i].gpa < k->s[i].size)
            return &k->s[i];
    return NULL;
}

static int sim_set_logging(void *ctx, uint32_t slot, bool on)
{
    struct kvm_sim *k = ctx;
    struct kvm_sim_slot *s = by_id(k, slot);
    if (!s)
        return -EINVAL;
    if (on && k->fail_set_on && slot == k->fail_on_slot)
        return k->fail_set_on;
    if (!on && k->fail_set_off) {
        int e = k->fail_set_off;
        k->fail_set_off = 0;
        return e;
    }
    /* Re-registering a slot starts its log afresh. */
    memset(s->log, 0, s->words * 8);
    s->logging = on;
    return 0;
}

static int sim_get_log(void *ctx, uint32_t slot, uint64_t *bitmap, size_t words)
{
    struct kvm_sim *k = ctx;
    struct kvm_sim_slot *s = by_id(k, slot);
    if (!s)
        return -EINVAL;
    if (k->n && slot == k->s[0].id && k->before_log)
        k->before_log(k, k->before_ctx);
    k->get_logs++;
    if (k->fail_get_log)
        return k->fail_get_log;
    if (!s->logging)
        return -ENOENT;
    if (words != s->words)
        return -EINVAL;
    memcpy(bitmap, s->log, words * 8);
    memset(s->log, 0, words * 8);
    return 0;
}

struct mig_dirty_ops ks_ops(struct kvm_sim *k)
{
    return (struct mig_dirty_ops){.ctx = k, .set_logging = sim_set_logging, .get_log = sim_get_log};
}

uint8_t *ks_host(struct kvm_sim *k, uint64_t gpa)
{
    struct kvm_sim_slot *s = by_gpa(k, gpa);
    cr_assert(s, "gpa 0x%llx is not RAM", (unsigned long long)gpa);
    return s->ram + (gpa - s->gpa);
}

void ks_write(struct kvm_sim *k, uint64_t gpa, uint8_t v)
{
    struct kvm_sim_slot *s = by_gpa(k, gpa);
    cr_assert(s, "gpa 0x%llx is not RAM", (unsigned long long)gpa);
    cr_assert(!k->stopped, "a vCPU wrote after stop_vm");
    s->ram[gpa - s->gpa] = v;
    if (s->logging) {
        uint64_t p = (gpa - s->gpa) / 4096;
        s->log[p / 64] |= 1ULL << (p % 64);
    }
}

void ks_dma(struct kvm_sim *k, uint64_t gpa, uint8_t v)
{
    *ks_host(k, gpa) = v;
}

bool ks_any_logging(const struct kvm_sim *k)
{
    for (uint32_t i = 0; i < k->n; i++)
        if (k->s[i].logging)
            return true;
    return false;
}
