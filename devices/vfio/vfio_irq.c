/*
 * Device interrupts through VFIO_DEVICE_SET_IRQS: eventfds per vector.
 *
 * Why a module: MSI/MSI-X are enabled on the hardware only through this
 * call (vfio.md §1.6), so the PCI function's MSI emulation calls it when the
 * guest enables them; INTx needs its unmask eventfd as KVM's resample fd.
 * Every request is checked against the IRQ info read at open.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/vfio/vfio.h"

static const struct vfio_irq *irq_of(const struct vfio_device *d, unsigned index)
{
    if (d->fd < 0 || index >= d->num_irqs || index >= VFIO_MAX_IRQS)
        return NULL;
    return &d->irqs[index];
}

/* SET_IRQS with `count` int32 eventfds after the header. */
static int set_irqs(const struct vfio_device *d, uint32_t flags, unsigned index, uint32_t start,
                    uint32_t count, const int *fds)
{
    size_t len = sizeof(struct vfio_irq_set) + (size_t)count * sizeof(int32_t);
    struct vfio_irq_set *s = calloc(1, len);
    if (s == NULL)
        return -ENOMEM;
    s->argsz = (uint32_t)len;
    s->flags = flags;
    s->index = index;
    s->start = start;
    s->count = count;
    for (uint32_t i = 0; i < count; i++) {
        int32_t fd = fds[i];
        memcpy(s->data + i * sizeof(fd), &fd, sizeof(fd));
    }
    int rc = d->c->ops->ioctl(d->c->ctx, d->fd, VFIO_DEVICE_SET_IRQS, (uintptr_t)s);
    free(s);
    return rc < 0 ? rc : 0;
}

int vfio_irq_set_eventfds(const struct vfio_device *d, unsigned index, uint32_t start,
                          uint32_t count, const int *fds)
{
    const struct vfio_irq *irq = irq_of(d, index);
    if (irq == NULL || !(irq->flags & VFIO_IRQ_INFO_EVENTFD))
        return -EINVAL;
    if (count == 0 || start > irq->count || count > irq->count - start)
        return -EINVAL;
    return set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index, start, count,
                    fds);
}

int vfio_irq_disable(const struct vfio_device *d, unsigned index)
{
    if (irq_of(d, index) == NULL)
        return -EINVAL;
    return set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 0, NULL);
}

int vfio_intx_enable(const struct vfio_device *d, int trigger_fd, int unmask_fd)
{
    const struct vfio_irq *irq = irq_of(d, VFIO_PCI_INTX_IRQ_INDEX);
    if (irq == NULL || irq->count == 0 || !(irq->flags & VFIO_IRQ_INFO_EVENTFD))
        return -EINVAL;
    int rc = set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                      VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &trigger_fd);
    if (rc < 0)
        return rc;
    rc = set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK,
                  VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &unmask_fd);
    if (rc < 0 && vfio_irq_disable(d, VFIO_PCI_INTX_IRQ_INDEX) < 0)
        return rc; /* the trigger stays set; the device fd's close drops it */
    return rc;
}
