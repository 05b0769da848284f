/*
 * The control API's way to the balloon (vm_control's balloon members, see
 * vmm/control.h): find the one balloon among the VM's virtio devices and
 * translate between the device's view (devices/virtio/balloon.h) and the
 * controller's, so the API layer never sees device types.
 */
#include "vmm/vm.h"

#include <errno.h>
#include <string.h>

#include "devices/virtio/balloon.h"
#include "vmm/devmgr.h"

_Static_assert(VM_BALLOON_NSTATS == BALLOON_S_NR, "one statistic per virtio tag");

/* The balloon device, or NULL if the VM has none (or no devices yet). */
static struct virtio_dev *find(struct vm *vm)
{
    if (!vm->devs)
        return NULL;
    for (unsigned i = 0; i < vm->devs->n; i++)
        if (balloon_is(vm->devs->dev[i].dev))
            return vm->devs->dev[i].dev;
    return NULL;
}

int vm_balloon_get(void *ctx, struct vm_balloon *b)
{
    struct virtio_dev *d = find(ctx);
    struct balloon_info i;
    if (!d)
        return -ENODEV;
    balloon_get_info(d, &i);
    memset(b, 0, sizeof(*b));
    b->amount_mib = i.amount_mib;
    b->deflate_on_oom = i.deflate_on_oom;
    b->stats_polling_interval_s = i.stats_interval_s;
    b->target_pages = i.target_pages;
    b->actual_pages = i.actual_pages;
    memcpy(b->has_stat, i.has_stat, sizeof(b->has_stat));
    memcpy(b->stat, i.stat, sizeof(b->stat));
    return 0;
}

int vm_balloon_set(void *ctx, uint32_t amount_mib)
{
    struct virtio_dev *d = find(ctx);
    return d ? balloon_set_target(d, amount_mib) : -ENODEV;
}

int vm_balloon_set_interval(void *ctx, uint32_t s)
{
    struct virtio_dev *d = find(ctx);
    return d ? balloon_set_stats_interval(d, s) : -ENODEV;
}
