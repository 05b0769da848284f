/*
 * The GSI routing table (see irq_routing.h): a flat array of KVM routing
 * entries, checked against KVM's rules as it is edited so that the one
 * ioctl that installs it has no surprises left.  A few dozen entries at
 * most today, so linear scans are fine.
 */
#include "vmm/irq_routing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

struct irq_routing {
    unsigned n, cap;
    struct kvm_irq_routing_entry *e;
};

struct irq_routing *irq_routing_new(void)
{
    return calloc(1, sizeof(struct irq_routing));
}

void irq_routing_free(struct irq_routing *r)
{
    if (!r)
        return;
    free(r->e);
    free(r);
}

/* Room for one more entry. */
static int reserve(struct irq_routing *r)
{
    if (r->n < r->cap)
        return 0;
    if (r->cap >= IRQ_ROUTING_MAX_ENTRIES)
        return -ENOSPC;
    unsigned cap = r->cap ? MIN(r->cap * 2, IRQ_ROUTING_MAX_ENTRIES) : 32;
    struct kvm_irq_routing_entry *e = realloc(r->e, cap * sizeof(*e));
    if (!e)
        return -ENOMEM;
    r->e = e;
    r->cap = cap;
    return 0;
}

static struct kvm_irq_routing_entry *append(struct irq_routing *r, unsigned gsi, uint32_t type)
{
    struct kvm_irq_routing_entry *e = &r->e[r->n++];
    memset(e, 0, sizeof(*e));
    e->gsi = gsi;
    e->type = type;
    return e;
}

int irq_routing_set_irqchip(struct irq_routing *r, unsigned gsi, unsigned chip, unsigned pin)
{
    if (gsi >= IRQ_ROUTING_MAX_GSI)
        return -EINVAL;
    struct kvm_irq_routing_entry *same = NULL;
    for (unsigned i = 0; i < r->n; i++) {
        struct kvm_irq_routing_entry *e = &r->e[i];
        if (e->gsi == gsi && e->type != KVM_IRQ_ROUTING_IRQCHIP)
            return -EBUSY;
        if (e->type != KVM_IRQ_ROUTING_IRQCHIP || e->u.irqchip.irqchip != chip)
            continue;
        if (e->gsi == gsi)
            same = e;
        else if (e->u.irqchip.pin == pin)
            return -EEXIST;
    }
    if (!same) {
        int ret = reserve(r);
        if (ret < 0)
            return ret;
        same = append(r, gsi, KVM_IRQ_ROUTING_IRQCHIP);
        same->u.irqchip.irqchip = chip;
    }
    same->u.irqchip.pin = pin;
    return 0;
}

int irq_routing_set_msi(struct irq_routing *r, unsigned gsi, uint64_t addr, uint32_t data)
{
    if (gsi >= IRQ_ROUTING_MAX_GSI)
        return -EINVAL;
    struct kvm_irq_routing_entry *same = NULL;
    for (unsigned i = 0; i < r->n; i++) {
        if (r->e[i].gsi != gsi)
            continue;
        if (r->e[i].type != KVM_IRQ_ROUTING_MSI)
            return -EBUSY;
        same = &r->e[i];
    }
    if (!same) {
        int ret = reserve(r);
        if (ret < 0)
            return ret;
        same = append(r, gsi, KVM_IRQ_ROUTING_MSI);
    }
    same->u.msi.address_lo = (uint32_t)addr;
    same->u.msi.address_hi = (uint32_t)(addr >> 32);
    same->u.msi.data = data;
    return 0;
}

unsigned irq_routing_remove(struct irq_routing *r, unsigned gsi)
{
    unsigned kept = 0, gone;
    for (unsigned i = 0; i < r->n; i++)
        if (r->e[i].gsi != gsi)
            r->e[kept++] = r->e[i];
    gone = r->n - kept;
    r->n = kept;
    return gone;
}

bool irq_routing_lookup(const struct irq_routing *r, unsigned gsi, unsigned chip, unsigned *pin)
{
    for (unsigned i = 0; i < r->n; i++) {
        const struct kvm_irq_routing_entry *e = &r->e[i];
        if (e->gsi == gsi && e->type == KVM_IRQ_ROUTING_IRQCHIP && e->u.irqchip.irqchip == chip) {
            *pin = e->u.irqchip.pin;
            return true;
        }
    }
    return false;
}

static bool gsi_used(const struct irq_routing *r, unsigned gsi)
{
    for (unsigned i = 0; i < r->n; i++)
        if (r->e[i].gsi == gsi)
            return true;
    return false;
}

int irq_routing_free_gsi(const struct irq_routing *r, unsigned from)
{
    for (unsigned gsi = from; gsi < IRQ_ROUTING_MAX_GSI; gsi++)
        if (!gsi_used(r, gsi))
            return (int)gsi;
    return -ENOSPC;
}

unsigned irq_routing_count(const struct irq_routing *r)
{
    return r->n;
}

const struct kvm_irq_routing_entry *irq_routing_entry(const struct irq_routing *r, unsigned i)
{
    return i < r->n ? &r->e[i] : NULL;
}

int irq_routing_commit(const struct irq_routing *r, int vm_fd)
{
    size_t size = sizeof(struct kvm_irq_routing) + r->n * sizeof(struct kvm_irq_routing_entry);
    struct kvm_irq_routing *t = calloc(1, size);
    if (!t)
        return -ENOMEM;
    t->nr = r->n;
    if (r->n)
        memcpy(t->entries, r->e, r->n * sizeof(r->e[0]));
    int ret = ioctl(vm_fd, KVM_SET_GSI_ROUTING, t) < 0 ? -errno : 0;
    free(t);
    return ret;
}
