/*
 * The device_ops -> migration hook adapter (arch_mig_dev.h).
 */
#include "arch/common/arch_mig_dev.h"

#include "devices/device.h"
#include "migration/vstate.h"

#include <errno.h>

const char *arch_mig_dev_cannot(void *dev)
{
    return ((struct arch_mig_dev *)dev)->ops->unmigratable;
}

int arch_mig_dev_save(void *dev, struct vstate_out *out)
{
    struct arch_mig_dev *d = dev;
    return d->ops->save(d->dev, out);
}

int arch_mig_dev_load(void *dev, uint16_t version, const uint8_t *buf, size_t len,
                      struct errbuf *err)
{
    struct arch_mig_dev *d = dev;
    (void)version;
    struct vstate_in in;
    vstate_in_init(&in, buf, len);
    int e = d->ops->load(d->dev, &in);
    if (e == 0 && in.pos != len)
        e = -EBADMSG;
    if (e < 0)
        err_set(err, WISP_EXIT_USAGE, -e, "%s: state refused", d->ops->type);
    return e;
}
