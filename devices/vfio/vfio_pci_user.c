/*
 * The vfio-user transport of the passthrough function (vfio_pci.h): a
 * connected vfio_user_client with guest RAM DMA_MAPped (memfd per region,
 * IOVA = GPA).  Why no mmap here: the client closes region fds (it does not
 * map server memory yet), so every BAR access traps and is forwarded as a
 * REGION_READ/WRITE message.  The server's own DMA_READ/WRITE requests are
 * not served (the event loop does not watch the socket yet): only servers
 * that use the memfds work, which the test server does by default.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/vfio/vfio_pci.h"
#include "devices/vfio/vfio_user_client.h"
#include "devices/vfio/vfio_user_mig.h"

#define USER_TIMEOUT_MS 5000

static int u_read(void *t, unsigned index, uint64_t off, void *buf, size_t len)
{
    return vfio_user_client_region_read(t, index, off, buf, len);
}

static int u_write(void *t, unsigned index, uint64_t off, const void *buf, size_t len)
{
    return vfio_user_client_region_write(t, index, off, buf, len);
}

static int u_set_irqs(void *t, unsigned index, uint32_t start, uint32_t count, const int *fds)
{
    return vfio_user_client_set_irqs(t, index, start, count, fds);
}

static bool u_failed(void *t)
{
    return vfio_user_client_failed(t);
}

static void u_destroy(void *t)
{
    vfio_user_client_destroy(t);
}

/* Migration v2 over vfio-user (vfio_user_mig.h): STOP_COPY is required;
 * the server's PRE_COPY flag is not used yet. */
static const char *u_mig_cannot(void *t)
{
    uint64_t flags = 0;
    if (vfio_user_mig_flags(t, &flags) < 0)
        return "the vfio-user server does not support migration (DEVICE_FEATURE MIGRATION "
               "refused)";
    if (!(flags & VFIO_USER_MIG_F_STOP_COPY))
        return "the vfio-user server does not offer STOP_COPY";
    return NULL;
}

static int u_mig_set_state(void *t, uint32_t state)
{
    return vfio_user_mig_set_state(t, state);
}

static int u_mig_save(void *t, uint8_t *buf, size_t cap, size_t *len)
{
    return vfio_user_mig_save(t, buf, cap, len);
}

static int u_mig_load(void *t, const uint8_t *buf, size_t len)
{
    return vfio_user_mig_load(t, buf, len);
}

static const struct vfio_pci_transport user_ops = {
    .name = "vfio-user",
    .region_read = u_read,
    .region_write = u_write,
    .set_irqs = u_set_irqs,
    .failed = u_failed,
    .destroy = u_destroy,
    .mig_cannot = u_mig_cannot,
    .mig_set_state = u_mig_set_state,
    .mig_save = u_mig_save,
    .mig_load = u_mig_load,
};

/* DMA_MAP every RAM region of `mem` with its memfd (IOVA = GPA). */
static int dma_map(struct vfio_user_client *c, const struct gmem *mem, const char *id,
                   struct errbuf *err)
{
    struct vfio_user_dma_range r[GMEM_MAX_REGIONS];
    for (unsigned i = 0; i < mem->nregions; i++)
        r[i] = (struct vfio_user_dma_range){
            .iova = mem->regions[i].gpa,
            .size = mem->regions[i].size,
            .fd = mem->fd,
            .fd_offset = mem->regions[i].fd_offset,
            .hva = mem->regions[i].hva,
        };
    int ret = vfio_user_client_dma_map(c, r, mem->nregions);
    if (ret < 0)
        return err_set(err, WISP_EXIT_FAILURE, -ret,
                       "device %s: vfio-user DMA_MAP of guest RAM: %s", id, strerror(-ret));
    return 0;
}

/*
 * Connect to `socket`, DMA_MAP guest RAM (`mem`; NULL: none, for derive)
 * and read region and IRQ info.  0 and *out, or -errno with `err`.
 */
static int user_open(const struct gmem *mem, const char *id, const char *socket,
                     struct vfio_user_client **out, struct vfio_pci_region *regions,
                     unsigned irqs[3], struct errbuf *err)
{
    struct vfio_user_client *c = NULL;
    int ret = vfio_user_client_connect(socket, USER_TIMEOUT_MS, &c);
    if (ret < 0)
        return err_set(err, WISP_EXIT_USAGE, -ret, "device %s: cannot attach to vfio-user %s: %s",
                       id, socket, strerror(-ret));
    ret = mem ? dma_map(c, mem, id, err) : 0;
    if (ret < 0)
        goto fail;
    struct vfio_user_device_info di;
    ret = vfio_user_client_device_info(c, &di);
    if (ret < 0) {
        err_set(err, WISP_EXIT_FAILURE, -ret, "device %s: vfio-user device info: %s", id,
                strerror(-ret));
        goto fail;
    }
    memset(regions, 0, VFIO_PCI_NREGIONS * sizeof(*regions));
    for (unsigned i = 0; i < VFIO_PCI_NREGIONS && i < di.num_regions; i++) {
        struct vfio_user_region_info ri;
        ret = vfio_user_client_region_info(c, i, &ri);
        if (ret < 0) {
            err_set(err, WISP_EXIT_FAILURE, -ret, "device %s: vfio-user region %u info: %s", id, i,
                    strerror(-ret));
            goto fail;
        }
        regions[i].size = ri.size;
        regions[i].readable = ri.flags & VFIO_USER_REGION_F_READ;
        regions[i].writable = ri.flags & VFIO_USER_REGION_F_WRITE;
    }
    irqs[0] = irqs[1] = irqs[2] = 0;
    for (unsigned i = 0; i < 3 && i < di.num_irqs; i++) {
        struct vfio_user_irq_info ii;
        if (vfio_user_client_irq_info(c, i, &ii) == 0 && (ii.flags & VFIO_USER_IRQ_INFO_EVENTFD))
            irqs[i] = ii.count;
    }
    *out = c;
    return 0;
fail:
    vfio_user_client_destroy(c);
    return ret;
}

int vfio_pci_create_user(const struct vfio_pci_host *h, const char *id, const char *socket,
                         const struct vfio_pci_layout *lay, unsigned devfn, struct vfio_pci **out,
                         struct errbuf *err)
{
    struct vfio_user_client *c;
    struct vfio_pci_region regions[VFIO_PCI_NREGIONS];
    unsigned irqs[3];
    int ret = user_open(h->mem, id, socket, &c, regions, irqs, err);
    if (ret < 0)
        return ret;
    (void)vfio_user_client_reset(c);
    return vfio_pci_create(h, id, &user_ops, c, regions, irqs, lay, devfn, out, err);
}

int vfio_pci_derive_user(const char *socket, struct vpci_layout *out, struct errbuf *err)
{
    struct vfio_user_client *c;
    struct vfio_pci_region regions[VFIO_PCI_NREGIONS];
    unsigned irqs[3];
    int ret = user_open(NULL, "derive", socket, &c, regions, irqs, err);
    if (ret < 0)
        return ret;
    return vfio_pci_derive(&user_ops, c, regions, irqs, out, err);
}
