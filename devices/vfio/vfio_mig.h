/*
 * The migration record of a passed-through PCI function (docs/VFIO_USER.md
 * "Migration", docs/MIGRATION_FORMAT.md): what one vfio or vfio-user
 * device's section carries, and its strict decoder.
 *
 * Why a record of its own: a passthrough device's state has three owners
 * and they must travel together and be checked together before any of it
 * is applied: the layout the guest sees (only its digest: a destination
 * presenting another layout must refuse, docs/VPCI_LAYOUT.md), wisp's own
 * vPCI state (vpci_cfg_state_save, our format) and the device's opaque
 * blob (migration v2 STOP_COPY data, the server's or the driver's format,
 * loaded in RESUMING).  The payload arrives from another host and is
 * hostile: every length is checked against the bytes present and its cap
 * before it is used, and the decoder allocates nothing.
 *
 * The layout travels as its canonical text (docs/VPCI_LAYOUT.md): the
 * destination compares it byte for byte with its own and refuses any
 * difference; the FNV digests of both only name them in that refusal (FNV
 * is not collision resistant, so it is never the check itself).
 *
 * Payload (little-endian), section version VFIO_MIG_VERSION, three parts
 * each a le32 length and that many bytes, nothing after them:
 *   layout canonical text  (<= VPCI_LAYOUT_MAX_FILE)
 *   vPCI state             (<= VPCI_CFG_STATE_MAX, vpci_cfg_state_save)
 *   device blob            (<= VFIO_MIG_DEV_MAX)
 */
#ifndef DEVICES_VFIO_VFIO_MIG_H
#define DEVICES_VFIO_VFIO_MIG_H

#include <stddef.h>
#include <stdint.h>

#include "devices/vfio/vfio_pci.h"
#include "devices/vfio/vpci_cfg.h"
#include "migration/hooks.h"
#include "migration/vstate.h"
#include "vmm/error.h"
#include "vmm/util.h"

#define VFIO_MIG_VERSION 1U
#define VFIO_MIG_HDR     12U /* the three length fields */
/* The device blob must fit a device section (MIG_DEVICE_MAX_LEN, 16 MiB)
 * with the rest of the record. */
#define VFIO_MIG_DEV_MAX                                                                           \
    (16U * 1024 * 1024 - VPCI_LAYOUT_MAX_FILE - VPCI_CFG_STATE_MAX - VFIO_MIG_HDR)

/* A decoded record: pointers into the decoded buffer, valid as long as it is. */
struct vfio_mig_rec {
    const char *layout; /* canonical text, not NUL-terminated */
    uint32_t layout_len;
    const uint8_t *vpci;
    uint32_t vpci_len;
    const uint8_t *dev;
    uint32_t dev_len;
};

/* Append the record `r` to `out`.  -EINVAL if a part is over its cap,
 * -ENOMEM. */
int vfio_mig_rec_encode(const struct vfio_mig_rec *r, struct vstate_out *out) __must_check;

/*
 * Decode `len` bytes at `buf` into *r (which then points into `buf`).
 * Refused with -EBADMSG and one line naming device `id` in `err`
 * (WISP_EXIT_USAGE): fewer than VFIO_MIG_HDR bytes, a length over its cap
 * or over the bytes present, bytes after the blob.
 */
int vfio_mig_rec_decode(const uint8_t *buf, size_t len, const char *id, struct vfio_mig_rec *r,
                        struct errbuf *err) __must_check;

/*
 * The destination's layout check: 0 if the stream's canonical text equals
 * `local` (`len` bytes), else -EPROTO with "device ID: the stream's vPCI
 * layout (digest 0x...) differs from this destination's (0x...)"
 * (WISP_EXIT_USAGE).
 */
int vfio_mig_rec_check_layout(const struct vfio_mig_rec *r, const char *local, size_t len,
                              const char *id, struct errbuf *err) __must_check;

/* ---- the migration registry member (vfio_mig_dev.c) ---- */

/*
 * One passthrough function as a member of the migration registry
 * (migration/hooks.h), section MIG_SEC_VFIO_PCI, type "vfio-pci":
 *   cannot_migrate  the transport cannot migrate (kernel VFIO today), the
 *                   device does not support migration v2 with STOP_COPY, or
 *                   the transport failed: the reason, and nothing is sent;
 *   quiesce         (every vCPU stopped) device to STOP: no more DMA.  vfio-
 *                   user has no P2P states, so STOP is the quiesce: the
 *                   server stops its DMA engine and touches guest memory no
 *                   more;
 *   dirty_log       no device offers DMA logging yet: once quiesced, all
 *                   DMA-mapped guest memory (all RAM, IOVA = GPA) is marked
 *                   dirty, so the final pass sends it (logged once);
 *   save            STOP_COPY, the blob read, then the record: layout text,
 *                   vPCI state, blob;
 *   resume          (the source carries on) back to RUNNING; a device that
 *                   cannot get there is marked failed;
 *   load            record decoded, layout and vPCI state checked, then
 *                   RESUMING, blob written, STOP (the device validates it),
 *                   vPCI state replayed, RUNNING.  Device sections come after
 *                   the last RAM section, so RAM is loaded by then; the vCPUs
 *                   start only after every section.
 */
struct vfio_mig_dev {
    struct vfio_pci *p;
    bool stopped;    /* quiesced and not resumed */
    bool dirty_said; /* the "all DMA-mapped memory is dirty" line was logged */
};

int vfio_mig_register(struct vfio_mig_dev *m, struct vfio_pci *p, uint32_t instance,
                      struct mig_registry *reg, struct errbuf *err) __must_check;

#endif /* DEVICES_VFIO_VFIO_MIG_H */
