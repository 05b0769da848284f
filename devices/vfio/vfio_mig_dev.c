/*
 * A passthrough function as a migration registry member (vfio_mig.h):
 * drives the device's migration v2 states around wisp's stop-and-copy
 * and carries the device blob with wisp's own vPCI state and layout.
 *
 * Why apart from vfio_pci.c: the choreography (which state when, what a
 * failure leaves behind) is migration policy; the function only lends its
 * transport and its vPCI view (vfio_pci_parts).
 */
#include "devices/vfio/vfio_mig.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"

static const char *dev_cannot(void *dev)
{
    struct vfio_mig_dev *m = dev;
    struct vfio_pci_parts pp;
    vfio_pci_parts(m->p, &pp);
    if (vfio_pci_failed(m->p))
        return "its transport failed";
    if (!pp.ops->mig_cannot)
        return "migration through this transport (kernel VFIO) is not built yet";
    return pp.ops->mig_cannot(pp.t);
}

static int dev_quiesce(void *dev)
{
    struct vfio_mig_dev *m = dev;
    struct vfio_pci_parts pp;
    vfio_pci_parts(m->p, &pp);
    m->stopped = true; /* resume walks back from wherever the device got to */
    int e = pp.ops->mig_set_state(pp.t, VFIO_MIG_STATE_STOP);
    if (e < 0)
        log_error("device %s: cannot stop it for migration: %s", pp.id, strerror(-e));
    return e;
}

static void dev_resume(void *dev)
{
    struct vfio_mig_dev *m = dev;
    struct vfio_pci_parts pp;
    vfio_pci_parts(m->p, &pp);
    if (!m->stopped)
        return;
    m->stopped = false;
    int e = pp.ops->mig_set_state(pp.t, VFIO_MIG_STATE_RUNNING);
    if (e < 0) {
        log_error("device %s: cannot resume it after the migration stopped: %s; it is failed "
                  "now",
                  pp.id, strerror(-e));
        vfio_pci_set_failed(m->p);
    }
}

static int dev_dirty_log(void *dev, mig_dirty_fn mark, void *ctx)
{
    struct vfio_mig_dev *m = dev;
    struct vfio_pci_parts pp;
    vfio_pci_parts(m->p, &pp);
    if (!m->stopped)
        return 0; /* still running: its writes are caught in the final pass */
    uint64_t total = 0;
    for (unsigned i = 0; i < pp.mem->nregions; i++) {
        int e = mark(ctx, pp.mem->regions[i].gpa, pp.mem->regions[i].size);
        if (e < 0)
            return e;
        total += pp.mem->regions[i].size;
    }
    if (!m->dirty_said) {
        m->dirty_said = true;
        log_info("device %s: no DMA dirty logging: all %llu MiB of DMA-mapped guest memory is "
                 "sent again in the final pass",
                 pp.id, (unsigned long long)(total >> 20));
    }
    return 0;
}

/* The canonical text of the layout the guest sees, into a new buffer. */
static int layout_text(struct vpci_cfg *cfg, char **out, size_t *len)
{
    struct vpci_layout *l = calloc(1, sizeof(*l));
    char *buf = malloc(VPCI_LAYOUT_MAX_FILE);
    int e = l && buf ? vpci_cfg_to_layout(cfg, l) : -ENOMEM;
    int n = e == 0 ? vpci_layout_write(l, buf, VPCI_LAYOUT_MAX_FILE) : e;
    free(l);
    if (n < 0) {
        free(buf);
        return n;
    }
    *out = buf;
    *len = (size_t)n;
    return 0;
}

static int dev_save(void *dev, struct vstate_out *out)
{
    struct vfio_mig_dev *m = dev;
    struct vfio_pci_parts pp;
    vfio_pci_parts(m->p, &pp);
    char *lay = NULL;
    size_t lay_len = 0, vlen = 0, dlen = 0;
    uint8_t *vpci = malloc(VPCI_CFG_STATE_MAX);
    uint8_t *blob = malloc(VFIO_MIG_DEV_MAX);
    int e = vpci && blob ? 0 : -ENOMEM;
    if (e == 0)
        e = layout_text(pp.cfg, &lay, &lay_len);
    if (e == 0)
        e = vpci_cfg_state_save(pp.cfg, vpci, VPCI_CFG_STATE_MAX, &vlen);
    if (e == 0)
        e = pp.ops->mig_set_state(pp.t, VFIO_MIG_STATE_STOP_COPY);
    if (e == 0)
        e = pp.ops->mig_save(pp.t, blob, VFIO_MIG_DEV_MAX, &dlen);
    if (e == 0)
        e = pp.ops->mig_set_state(pp.t, VFIO_MIG_STATE_STOP);
    if (e == 0) {
        struct vfio_mig_rec r = {.layout = lay,
                                 .layout_len = (uint32_t)lay_len,
                                 .vpci = vpci,
                                 .vpci_len = (uint32_t)vlen,
                                 .dev = blob,
                                 .dev_len = (uint32_t)dlen};
        e = vfio_mig_rec_encode(&r, out);
        log_info("device %s: saved %zu bytes of device state, %zu of vPCI state", pp.id, dlen,
                 vlen);
    } else {
        log_error("device %s: saving its state: %s", pp.id, strerror(-e));
    }
    free(lay);
    free(vpci);
    free(blob);
    return e;
}

static int dev_load(void *dev, uint16_t version, const uint8_t *buf, size_t len, struct errbuf *err)
{
    struct vfio_mig_dev *m = dev;
    struct vfio_pci_parts pp;
    vfio_pci_parts(m->p, &pp);
    (void)version;
    struct vfio_mig_rec r;
    int e = vfio_mig_rec_decode(buf, len, pp.id, &r, err);
    if (e < 0)
        return e;
    char *lay = NULL;
    size_t lay_len = 0;
    e = layout_text(pp.cfg, &lay, &lay_len);
    if (e < 0)
        return err_set(err, WISP_EXIT_FAILURE, -e, "device %s: its layout: %s", pp.id,
                       strerror(-e));
    e = vfio_mig_rec_check_layout(&r, lay, lay_len, pp.id, err);
    free(lay);
    if (e < 0)
        return e;
    if (r.vpci_len != vpci_cfg_state_size(pp.cfg))
        return err_set(err, WISP_EXIT_USAGE, EBADMSG,
                       "device %s: vPCI state is %u bytes, expected %zu", pp.id, r.vpci_len,
                       vpci_cfg_state_size(pp.cfg));
    const char *step = "RESUMING";
    e = pp.ops->mig_set_state(pp.t, VFIO_MIG_STATE_RESUMING);
    if (e == 0) {
        step = "writing its state";
        e = pp.ops->mig_load(pp.t, r.dev, r.dev_len);
    }
    if (e == 0) {
        step = "RESUMING -> STOP (the device refused its state)";
        e = pp.ops->mig_set_state(pp.t, VFIO_MIG_STATE_STOP);
    }
    if (e < 0)
        return err_set(err, WISP_EXIT_FAILURE, -e, "device %s: %s: %s", pp.id, step, strerror(-e));
    e = vpci_cfg_state_load(pp.cfg, r.vpci, r.vpci_len, pp.id, err);
    if (e < 0)
        return e;
    e = pp.ops->mig_set_state(pp.t, VFIO_MIG_STATE_RUNNING);
    if (e < 0)
        return err_set(err, WISP_EXIT_FAILURE, -e, "device %s: STOP -> RUNNING: %s", pp.id,
                       strerror(-e));
    log_info("device %s: loaded %u bytes of device state; it runs", pp.id, r.dev_len);
    return 0;
}

static const struct mig_device_ops vfio_mig_ops = {
    .type = "vfio-pci",
    .section_id = MIG_SEC_VFIO_PCI,
    .version = VFIO_MIG_VERSION,
    .min_version = VFIO_MIG_VERSION,
    .cannot_migrate = dev_cannot,
    .save = dev_save,
    .load = dev_load,
    .quiesce = dev_quiesce,
    .resume = dev_resume,
    .dirty_log = dev_dirty_log,
};

int vfio_mig_register(struct vfio_mig_dev *m, struct vfio_pci *p, uint32_t instance,
                      struct mig_registry *reg, struct errbuf *err)
{
    *m = (struct vfio_mig_dev){.p = p};
    return mig_registry_add(reg, &vfio_mig_ops, m, instance, MIG_PLANE_VFIO, 0, err);
}
