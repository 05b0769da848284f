/*
 * The passthrough migration record (vfio_mig.h): encoder and the strict
 * decoder for the stream's hostile bytes.
 */
#include "devices/vfio/vfio_mig.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define NPARTS 3

static const char *const part_name[NPARTS] = {"vPCI layout", "vPCI state", "device state"};
static const uint32_t part_cap[NPARTS] = {VPCI_LAYOUT_MAX_FILE, VPCI_CFG_STATE_MAX,
                                          VFIO_MIG_DEV_MAX};

int vfio_mig_rec_encode(const struct vfio_mig_rec *r, struct vstate_out *out)
{
    const void *p[NPARTS] = {r->layout, r->vpci, r->dev};
    const uint32_t n[NPARTS] = {r->layout_len, r->vpci_len, r->dev_len};
    for (unsigned i = 0; i < NPARTS; i++)
        if (n[i] > part_cap[i])
            return -EINVAL;
    for (unsigned i = 0; i < NPARTS; i++) {
        vstate_put_u32(out, n[i]);
        vstate_put_bytes(out, p[i], n[i]);
    }
    return out->err;
}

int vfio_mig_rec_decode(const uint8_t *buf, size_t len, const char *id, struct vfio_mig_rec *r,
                        struct errbuf *err)
{
    const uint8_t *p[NPARTS];
    uint32_t n[NPARTS];
    size_t pos = 0;
    for (unsigned i = 0; i < NPARTS; i++) {
        if (len - pos < 4)
            return err_set(err, WISP_EXIT_USAGE, EBADMSG,
                           "device %s: migration record of %zu bytes is truncated at the %s", id,
                           len, part_name[i]);
        n[i] = le32_get(buf + pos);
        pos += 4;
        if (n[i] > part_cap[i] || n[i] > len - pos)
            return err_set(err, WISP_EXIT_USAGE, EBADMSG,
                           "device %s: %s length %" PRIu32 " is over %s", id, part_name[i], n[i],
                           n[i] > part_cap[i] ? "its cap" : "the record");
        p[i] = buf + pos;
        pos += n[i];
    }
    if (pos != len)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, "device %s: %zu bytes after the device state",
                       id, len - pos);
    *r = (struct vfio_mig_rec){.layout = (const char *)p[0],
                               .layout_len = n[0],
                               .vpci = p[1],
                               .vpci_len = n[1],
                               .dev = p[2],
                               .dev_len = n[2]};
    return 0;
}

int vfio_mig_rec_check_layout(const struct vfio_mig_rec *r, const char *local, size_t len,
                              const char *id, struct errbuf *err)
{
    if (r->layout_len == len && memcmp(r->layout, local, len) == 0)
        return 0;
    return err_set(err, WISP_EXIT_USAGE, EPROTO,
                   "device %s: the stream's vPCI layout (digest 0x%016" PRIx64
                   ") differs from this destination's (0x%016" PRIx64 ")",
                   id, vpci_layout_digest_text(r->layout, r->layout_len),
                   vpci_layout_digest_text(local, len));
}
