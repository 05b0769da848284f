/*
 * KVM's GSI routing table, kept by wisp.  KVM_SET_GSI_ROUTING replaces the
 * whole table at once, so every route a VM needs must be known to one
 * object: the architecture fills in how its interrupt controllers are wired
 * (on x86 the PIC and IOAPIC pins, see arch/x86_64/irqmap.h), and later
 * users such as MSI for passed-through devices add or replace their own
 * routes and commit the table again.  Nothing else issues
 * KVM_SET_GSI_ROUTING.
 *
 * Rules the table enforces, so a commit cannot fail on them in KVM:
 *   - a GSI has either irqchip routes (at most one per irqchip) or exactly
 *     one MSI route;
 *   - an irqchip pin is the target of at most one GSI.  KVM maps an
 *     acknowledged pin back to one GSI for its ack and mask notifiers (the
 *     in-kernel PIT relies on them), so a pin shared by two GSIs would
 *     silently lose one of them.
 * Thread-safe: every function below except irq_routing_count() and
 * irq_routing_entry() (tests and logs, while nobody edits) takes the
 * table's lock, so PCI functions may add, replace and remove MSI routes
 * from vCPU threads (a guest writing an MSI capability or MSI-X table) and
 * commit: a commit installs the whole table as it is at that moment, under
 * the same lock, so two racing commits cannot leave an older table in KVM.
 *
 * A PCI function's MSI vector: irq_routing_add_msi() (a free GSI from
 * IRQ_ROUTING_MSI_FIRST up, with the route) -> irqfd on that GSI -> on
 * every guest change of address/data irq_routing_set_msi() on the same GSI
 * -> irq_routing_commit(); when the guest disables the vector,
 * irq_routing_remove_msi() and commit.  irq_routing_remove_msi() never
 * touches the board's irqchip wiring.
 */
#ifndef VMM_IRQ_ROUTING_H
#define VMM_IRQ_ROUTING_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "vmm/util.h"

/* GSIs 0 .. IRQ_ROUTING_MAX_GSI - 1 (KVM's own limit is 4096 routes). */
/* Where MSI GSIs start: above every irqchip pin (KVM's IOAPIC has 24). */
#define IRQ_ROUTING_MSI_FIRST 24U
#define IRQ_ROUTING_MAX_GSI   1024U
/* Most entries a table holds (KVM accepts up to 4096). */
#define IRQ_ROUTING_MAX_ENTRIES 1024U

struct irq_routing;

/* A new, empty table; NULL if out of memory.  Free with irq_routing_free(). */
struct irq_routing *irq_routing_new(void);

/* Free a table (NULL is fine).  KVM keeps whatever was committed last. */
void irq_routing_free(struct irq_routing *r);

/*
 * Route `gsi` to pin `pin` of in-kernel irqchip `chip` (KVM_IRQCHIP_*).  If
 * the GSI already has a route to that chip, its pin is replaced.
 * Returns 0, or -EINVAL (gsi out of range), -EBUSY (the GSI is an MSI
 * route), -EEXIST (another GSI already targets this chip and pin),
 * -ENOSPC (table full), -ENOMEM.
 */
int irq_routing_set_irqchip(struct irq_routing *r, unsigned gsi, unsigned chip,
                            unsigned pin) __must_check;

/*
 * Make `gsi` an MSI route (address, data), replacing an earlier MSI route of
 * the same GSI.  Returns 0, or -EINVAL, -EBUSY (the GSI has irqchip
 * routes), -ENOSPC, -ENOMEM.
 */
int irq_routing_set_msi(struct irq_routing *r, unsigned gsi, uint64_t addr,
                        uint32_t data) __must_check;

/*
 * Give a new MSI route (address, data) the lowest GSI >= `from` that has no
 * route.  Returns the GSI, or -ENOSPC (none free), -ENOMEM, -EINVAL.
 */
int irq_routing_add_msi(struct irq_routing *r, unsigned from, uint64_t addr,
                        uint32_t data) __must_check;

/*
 * Remove the MSI route of `gsi`.  0, -ENOENT (no route), or -EBUSY (the GSI
 * has irqchip routes: board wiring, left alone).
 */
int irq_routing_remove_msi(struct irq_routing *r, unsigned gsi) __must_check;

/* Remove every route of `gsi`; returns how many entries went. */
unsigned irq_routing_remove(struct irq_routing *r, unsigned gsi);

/*
 * The pin `gsi` reaches on irqchip `chip` in *pin; false if it has no route
 * to that chip.
 */
bool irq_routing_lookup(struct irq_routing *r, unsigned gsi, unsigned chip, unsigned *pin);

/* Lowest GSI >= `from` with no route, or -ENOSPC.  For MSI allocation. */
int irq_routing_free_gsi(struct irq_routing *r, unsigned from);

/* Number of entries, and entry `i` (NULL past the end): for tests and logs. */
unsigned irq_routing_count(const struct irq_routing *r);
const struct kvm_irq_routing_entry *irq_routing_entry(const struct irq_routing *r, unsigned i);

/*
 * Install the table in KVM (KVM_SET_GSI_ROUTING on `vm_fd`), replacing what
 * KVM had, including its built-in default.  Needs the in-kernel irqchip.
 * Returns 0 or -errno (KVM's).
 */
int irq_routing_commit(struct irq_routing *r, int vm_fd) __must_check;

#endif /* VMM_IRQ_ROUTING_H */
