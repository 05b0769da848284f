/*
 * The test server's migration v2 (see server.h): the MIGRATION and
 * MIG_DEVICE_STATE features and MIG_DATA_READ/WRITE.  The device state is
 * the BAR0 register file and config space behind a magic, taken when the
 * device enters STOP_COPY and loaded when it leaves RESUMING for STOP.
 * Interrupt eventfds and DMA maps are not state: the destination's client
 * sets its own.
 */
#include <errno.h>
#include <string.h>

#include "devices/vfio/vfio_user_mig.h"
#include "tests/peers/vfio_user_server/server.h"

#define MIG_MAGIC "WVFU"

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Moves to `to` if the arc exists, with its side effects; 0 or -EINVAL. */
static int set_state(struct srv *s, uint32_t to)
{
    if (!vfio_user_mig_arc_ok(s->mig_state, to))
        return -EINVAL;
    if (to == VFIO_USER_MIG_STOP_COPY) {
        memcpy(s->mig_buf, MIG_MAGIC, 4);
        memcpy(s->mig_buf + 4, s->bar0, sizeof(s->bar0));
        memcpy(s->mig_buf + 4 + sizeof(s->bar0), s->config, sizeof(s->config));
        s->mig_len = SRV_MIG_SIZE;
        s->mig_pos = 0;
    } else if (to == VFIO_USER_MIG_RESUMING) {
        s->mig_len = 0;
    } else if (s->mig_state == VFIO_USER_MIG_RESUMING) {
        /* The destination validates what it received before it runs it. */
        if (s->mig_len != SRV_MIG_SIZE || memcmp(s->mig_buf, MIG_MAGIC, 4) != 0)
            return -EINVAL;
        memcpy(s->bar0, s->mig_buf + 4, sizeof(s->bar0));
        memcpy(s->config, s->mig_buf + 4 + sizeof(s->bar0), sizeof(s->config));
        s->bar0[SRV_REG_ID / 4] = SRV_ID_VALUE;
    }
    s->mig_state = to;
    return 0;
}

int srv_feature(struct srv *s, const struct vfio_user_feature *f, uint8_t *out, uint32_t *out_len)
{
    uint32_t feature = f->flags & VFIO_USER_FEATURE_MASK;
    *out_len = 0;
    if (s->no_migration ||
        (feature != VFIO_USER_FEATURE_MIGRATION && feature != VFIO_USER_FEATURE_MIG_STATE))
        return -ENOTSUP;
    if (f->flags & VFIO_USER_FEATURE_PROBE)
        return 0;
    if (feature == VFIO_USER_FEATURE_MIGRATION) {
        if (!(f->flags & VFIO_USER_FEATURE_GET))
            return -EINVAL;
        put32(out, VFIO_USER_MIG_F_STOP_COPY);
        put32(out + 4, 0);
        *out_len = 8;
        return 0;
    }
    if (f->flags & VFIO_USER_FEATURE_SET) {
        if (f->data_len < 8)
            return -EINVAL;
        int rc = set_state(s, get32(f->data));
        if (rc < 0)
            return rc;
    }
    put32(out, s->mig_state);
    put32(out + 4, UINT32_MAX);
    *out_len = 8;
    return 0;
}

int srv_mig_read(struct srv *s, uint32_t size, uint8_t *out, uint32_t *got)
{
    if (s->mig_state != VFIO_USER_MIG_STOP_COPY)
        return -EINVAL;
    size_t n = s->mig_len - s->mig_pos;
    if (n > size)
        n = size;
    memcpy(out, s->mig_buf + s->mig_pos, n);
    s->mig_pos += n;
    *got = (uint32_t)n;
    return 0;
}

int srv_mig_write(struct srv *s, const uint8_t *data, uint32_t size)
{
    if (s->mig_state != VFIO_USER_MIG_RESUMING)
        return -EINVAL;
    if (size > SRV_MIG_SIZE - s->mig_len)
        return -ENOSPC;
    memcpy(s->mig_buf + s->mig_len, data, size);
    s->mig_len += size;
    return 0;
}
