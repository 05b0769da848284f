/*
 * The GSI routing table (see irq_routing.h): a flat array of KVM routing
 * entries, checked against KVM's rules as it is edited so that the one
 * ioctl that installs it has no surprises left.  A few dozen entries at
 * most today, so linear scans are fine.
 */
#include "vmm/irq_routing.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

struct irq_routing {
    pthread_mutex_t lock; /* every public function holds it (irq_routing.h) */
    unsigned n, cap;
    struct kvm_irq_routing_entry *e;
};

struct irq_routing *irq_routing_new(void)
{
    struct irq_routing *r = calloc(1, sizeof(struct irq_routing));
    if (r && pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void irq_routing_free(struct irq_routing *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
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

static int set_irqchip(struct irq_routing *r, unsigned gsi, unsigned chip, unsigned pin)
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

static int set_msi(struct irq_routing *r, unsigned gsi, uint64_t addr, uint32_t data)
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

static unsigned remove_gsi(struct irq_routing *r, unsigned gsi)
{
    unsigned kept = 0, gone;
    for (unsigned i = 0; i < r->n; i++)
        if (r->e[i].gsi != gsi)
            r->e[kept++] = r->e[i];
    gone = r->n - kept;
    r->n = kept;
    return gone;
}

bool irq_routing_lookup(struct irq_routing *r, unsigned gsi, unsigned chip, unsigned *pin)
{
    bool found = false;
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < r->n; i++) {
        const struct kvm_irq_routing_entry *e = &r->e[i];
        if (e->gsi == gsi && e->type == KVM_IRQ_ROUTING_IRQCHIP && e->u.irqchip.irqchip == chip) {
            *pin = e->u.irqchip.pin;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return found;
}

static bool gsi_used(const struct irq_routing *r, unsigned gsi)
{
    for (unsigned i = 0; i < r->n; i++)
        if (r->e[i].gsi == gsi)
            return true;
    return false;
}

static int free_gsi(const struct irq_routing *r, unsigned from)
{
    for (unsigned gsi = from; gsi < IRQ_ROUTING_MAX_GSI; gsi++)
        if (!gsi_used(r, gsi))
            return (int)gsi;
    return -ENOSPC;
}

/* The public editing functions: each is one step under the lock. */

int irq_routing_set_irqchip(struct irq_routing *r, unsigned gsi, unsigned chip, unsigned pin)
{
    pthread_mutex_lock(&r->lock);
    int ret = set_irqchip(r, gsi, chip, pin);
    pthread_mutex_unlock(&r->lock);
    return ret;
}

int irq_routing_set_msi(struct irq_routing *r, unsigned gsi, uint64_t addr, uint32_t data)
{
    pthread_mutex_lock(&r->lock);
    int ret = set_msi(r, gsi, addr, data);
    pthread_mutex_unlock(&r->lock);
    return ret;
}

int irq_routing_add_msi(struct irq_routing *r, unsigned from, uint64_t addr, uint32_t data)
{
    pthread_mutex_lock(&r->lock);
    int gsi = free_gsi(r, from);
    if (gsi >= 0) {
        int ret = set_msi(r, (unsigned)gsi, addr, data);
        if (ret < 0)
            gsi = ret;
    }
    pthread_mutex_unlock(&r->lock);
    return gsi;
}

int irq_routing_remove_msi(struct irq_routing *r, unsigned gsi)
{
    int ret = -ENOENT;
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < r->n; i++) {
        if (r->e[i].gsi != gsi)
            continue;
        ret = r->e[i].type == KVM_IRQ_ROUTING_MSI ? 0 : -EBUSY;
        break;
    }
    if (ret == 0)
        remove_gsi(r, gsi);
    pthread_mutex_unlock(&r->lock);
    return ret;
}

unsigned irq_routing_remove(struct irq_routing *r, unsigned gsi)
{
    pthread_mutex_lock(&r->lock);
    unsigned gone = remove_gsi(r, gsi);
    pthread_mutex_unlock(&r->lock);
    return gone;
}

int irq_routing_free_gsi(struct irq_routing *r, unsigned from)
{
    pthread_mutex_lock(&r->lock);
    int gsi = free_gsi(r, from);
    pthread_mutex_unlock(&r->lock);
    return gsi;
}

/* Unlocked: for tests and logs while nobody edits (irq_routing.h). */
unsigned irq_routing_count(const struct irq_routing *r)
{
    return r->n;
}

const struct kvm_irq_routing_entry *irq_routing_entry(const struct irq_routing *r, unsigned i)
{
    return i < r->n ? &r->e[i] : NULL;
}

/* KVM_SET_GSI_ROUTING with a copy of the table; lock held, so a commit
 * never installs an older table over a newer one. */
static int commit(const struct irq_routing *r, int vm_fd)
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

int irq_routing_commit(struct irq_routing *r, int vm_fd)
{
    pthread_mutex_lock(&r->lock);
    int ret = commit(r, vm_fd);
    pthread_mutex_unlock(&r->lock);
    return ret;
}
