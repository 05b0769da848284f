/*
 * The vfio-user client's device commands (see vfio_user_client.h): info
 * queries, region access, interrupts, reset, device features and migration
 * data.  Each builds its payload, runs one transaction
 * (vfio_user_client_transact) and checks the reply against the request
 * before anything of it reaches the caller.
 */
#include <errno.h>
#include <string.h>

#include "devices/vfio/vfio_user_client.h"
#include "devices/vfio/vfio_user_client_internal.h"

int vfio_user_client_device_info(struct vfio_user_client *c, struct vfio_user_device_info *out)
{
    pthread_mutex_lock(&c->lock);
    struct vfio_user_device_info q = {.argsz = VFIO_USER_DEVICE_INFO_SIZE};
    vfio_user_device_info_encode(CLIENT_TX_PAYLOAD(c), &q);
    int rc = vfio_user_client_transact(c, VFIO_USER_DEVICE_GET_INFO, VFIO_USER_DEVICE_INFO_SIZE,
                                       NULL, 0);
    if (rc == 0) {
        if (vfio_user_device_info_decode(CLIENT_RX_PAYLOAD(c), CLIENT_RX_LEN(c), out) < 0 ||
            out->num_regions > VFIO_USER_MAX_REGION || out->num_irqs > VFIO_USER_MAX_REGION)
            rc = vfio_user_client_fail(c, "bad device info", -EPROTO);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int vfio_user_client_region_info(struct vfio_user_client *c, uint32_t index,
                                 struct vfio_user_region_info *out)
{
    pthread_mutex_lock(&c->lock);
    /* argsz: the most wisp accepts (fixed part + a full sparse cap + slack). */
    struct vfio_user_region_info q = {.index = index};
    int n = vfio_user_region_info_encode(CLIENT_TX_PAYLOAD(c), VFIO_USER_REGION_INFO_SIZE, &q);
    uint8_t *p = CLIENT_TX_PAYLOAD(c);
    const uint32_t argsz = 4096;
    for (int i = 0; i < 4; i++) /* argsz, little-endian */
        p[i] = (uint8_t)(argsz >> (8 * i));
    int rc = vfio_user_client_transact(c, VFIO_USER_DEVICE_GET_REGION_INFO, (size_t)n, NULL, 0);
    if (rc == 0) {
        rc = vfio_user_region_info_decode(CLIENT_RX_PAYLOAD(c), CLIENT_RX_LEN(c), out);
        if (rc < 0 || out->index != index || out->offset > UINT64_MAX - out->size)
            rc = vfio_user_client_fail(c, "bad region info", rc < 0 ? rc : -EPROTO);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int vfio_user_client_irq_info(struct vfio_user_client *c, uint32_t index,
                              struct vfio_user_irq_info *out)
{
    pthread_mutex_lock(&c->lock);
    struct vfio_user_irq_info q = {.argsz = VFIO_USER_IRQ_INFO_SIZE, .index = index};
    vfio_user_irq_info_encode(CLIENT_TX_PAYLOAD(c), &q);
    int rc = vfio_user_client_transact(c, VFIO_USER_DEVICE_GET_IRQ_INFO, VFIO_USER_IRQ_INFO_SIZE,
                                       NULL, 0);
    if (rc == 0) {
        if (vfio_user_irq_info_decode(CLIENT_RX_PAYLOAD(c), CLIENT_RX_LEN(c), out) < 0 ||
            out->index != index || out->count > VFIO_USER_MAX_IRQS)
            rc = vfio_user_client_fail(c, "bad irq info", -EPROTO);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* One REGION_READ of count <= max_data_xfer_size bytes. */
static int read_chunk(struct vfio_user_client *c, uint32_t region, uint64_t offset, uint8_t *dst,
                      uint32_t count)
{
    struct vfio_user_region_rw q = {.offset = offset, .region = region, .count = count};
    int n = vfio_user_region_rw_encode(CLIENT_TX_PAYLOAD(c), VFIO_USER_REGION_RW_SIZE, &q, false);
    if (n < 0)
        return n;
    int rc = vfio_user_client_transact(c, VFIO_USER_REGION_READ, (size_t)n, NULL, 0);
    if (rc < 0)
        return rc;
    struct vfio_user_region_rw a;
    if (vfio_user_region_rw_decode(CLIENT_RX_PAYLOAD(c), CLIENT_RX_LEN(c), true, &a) < 0 ||
        a.offset != offset || a.region != region || a.count != count)
        return vfio_user_client_fail(c, "bad region read reply", -EPROTO);
    memcpy(dst, a.data, count);
    return 0;
}

int vfio_user_client_region_read(struct vfio_user_client *c, uint32_t region, uint64_t offset,
                                 void *data, size_t len)
{
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    size_t done = 0;
    if (len > UINT64_MAX - offset)
        rc = -EINVAL;
    while (rc == 0 && done < len) {
        size_t chunk = len - done;
        if (chunk > c->caps.max_data_xfer_size)
            chunk = c->caps.max_data_xfer_size;
        rc = read_chunk(c, region, offset + done, (uint8_t *)data + done, (uint32_t)chunk);
        done += chunk;
    }
    if (rc < 0)
        memset(data, 0xff, len);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int vfio_user_client_region_write(struct vfio_user_client *c, uint32_t region, uint64_t offset,
                                  const void *data, size_t len)
{
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    size_t done = 0;
    if (len > UINT64_MAX - offset)
        rc = -EINVAL;
    while (rc == 0 && done < len) {
        size_t chunk = len - done;
        if (chunk > c->caps.max_data_xfer_size)
            chunk = c->caps.max_data_xfer_size;
        struct vfio_user_region_rw q = {.offset = offset + done,
                                        .region = region,
                                        .count = (uint32_t)chunk,
                                        .data = (const uint8_t *)data + done};
        int n = vfio_user_region_rw_encode(CLIENT_TX_PAYLOAD(c),
                                           VFIO_USER_MSG_MAX - VFIO_USER_HDR_SIZE, &q, true);
        rc = n < 0 ? n : vfio_user_client_transact(c, VFIO_USER_REGION_WRITE, (size_t)n, NULL, 0);
        /* The reply echoes offset, region and count, without data. */
        struct vfio_user_region_rw a;
        if (rc == 0 &&
            (vfio_user_region_rw_decode(CLIENT_RX_PAYLOAD(c), CLIENT_RX_LEN(c), false, &a) < 0 ||
             a.offset != q.offset || a.region != region || a.count != q.count))
            rc = vfio_user_client_fail(c, "bad region write reply", -EPROTO);
        done += chunk;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int vfio_user_client_set_irqs(struct vfio_user_client *c, uint32_t index, uint32_t start,
                              uint32_t count, const int *fds)
{
    if (count > VFIO_USER_MAX_IRQS || start > VFIO_USER_MAX_IRQS - count || (count && !fds))
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    if (count == 0) {
        struct vfio_user_irq_set s = {.argsz = VFIO_USER_IRQ_SET_SIZE,
                                      .index = index,
                                      .flags =
                                          VFIO_USER_IRQ_DATA_NONE | VFIO_USER_IRQ_ACTION_TRIGGER};
        vfio_user_irq_set_encode(CLIENT_TX_PAYLOAD(c), &s);
        rc = vfio_user_client_transact(c, VFIO_USER_DEVICE_SET_IRQS, VFIO_USER_IRQ_SET_SIZE, NULL,
                                       0);
    }
    for (uint32_t done = 0; rc == 0 && done < count;) {
        uint32_t chunk = count - done;
        if (chunk > c->caps.max_msg_fds)
            chunk = c->caps.max_msg_fds;
        /*
         * Unassigned vectors (-1) cannot ride as SCM_RIGHTS: a chunk is a run
         * of real fds, or a single -1 sent without an fd (de-assign).
         */
        uint32_t run = 0;
        while (run < chunk && fds[done + run] >= 0)
            run++;
        if (run == 0)
            run = 1;
        struct vfio_user_irq_set s = {.argsz = VFIO_USER_IRQ_SET_SIZE,
                                      .index = index,
                                      .start = start + done,
                                      .count = run,
                                      .flags = VFIO_USER_IRQ_DATA_EVENTFD |
                                               VFIO_USER_IRQ_ACTION_TRIGGER};
        vfio_user_irq_set_encode(CLIENT_TX_PAYLOAD(c), &s);
        bool none = fds[done] < 0;
        rc = vfio_user_client_transact(c, VFIO_USER_DEVICE_SET_IRQS, VFIO_USER_IRQ_SET_SIZE,
                                       none ? NULL : fds + done, none ? 0 : run);
        done += run;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int vfio_user_client_reset(struct vfio_user_client *c)
{
    pthread_mutex_lock(&c->lock);
    int rc = vfio_user_client_transact(c, VFIO_USER_DEVICE_RESET, 0, NULL, 0);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int vfio_user_client_feature(struct vfio_user_client *c, uint32_t flags, const void *in,
                             size_t in_len, void *out, size_t out_cap, size_t *out_len)
{
    if (in_len > VFIO_USER_FEATURE_DATA_MAX)
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    struct vfio_user_feature f = {.argsz = (uint32_t)(VFIO_USER_FEATURE_SIZE + out_cap),
                                  .flags = flags,
                                  .data_len = (uint32_t)in_len,
                                  .data = in};
    int n =
        vfio_user_feature_encode(CLIENT_TX_PAYLOAD(c), VFIO_USER_MSG_MAX - VFIO_USER_HDR_SIZE, &f);
    int rc = n < 0 ? n : vfio_user_client_transact(c, VFIO_USER_DEVICE_FEATURE, (size_t)n, NULL, 0);
    if (rc == 0) {
        struct vfio_user_feature a;
        if (vfio_user_feature_decode(CLIENT_RX_PAYLOAD(c), CLIENT_RX_LEN(c), &a) < 0 ||
            a.data_len > out_cap) {
            rc = vfio_user_client_fail(c, "bad device feature reply", -EPROTO);
        } else {
            if (a.data_len)
                memcpy(out, a.data, a.data_len);
            *out_len = a.data_len;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int vfio_user_client_mig_data_read(struct vfio_user_client *c, void *buf, size_t cap, size_t *got)
{
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    if (cap > c->caps.max_data_xfer_size)
        cap = c->caps.max_data_xfer_size;
    struct vfio_user_mig_data m = {.argsz = (uint32_t)(VFIO_USER_MIG_DATA_SIZE + cap),
                                   .size = (uint32_t)cap};
    int n = vfio_user_mig_data_encode(CLIENT_TX_PAYLOAD(c), VFIO_USER_MIG_DATA_SIZE, &m, false);
    rc = n < 0 ? n : vfio_user_client_transact(c, VFIO_USER_MIG_DATA_READ, (size_t)n, NULL, 0);
    if (rc == 0) {
        struct vfio_user_mig_data a;
        if (vfio_user_mig_data_decode(CLIENT_RX_PAYLOAD(c), CLIENT_RX_LEN(c), true, &a) < 0 ||
            a.size > cap) {
            rc = vfio_user_client_fail(c, "bad migration data reply", -EPROTO);
        } else {
            if (a.size)
                memcpy(buf, a.data, a.size);
            *got = a.size;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int vfio_user_client_mig_data_write(struct vfio_user_client *c, const void *buf, size_t len)
{
    pthread_mutex_lock(&c->lock);
    int rc = -EINVAL;
    if (len <= c->caps.max_data_xfer_size) {
        struct vfio_user_mig_data m = {
            .argsz = (uint32_t)(VFIO_USER_MIG_DATA_SIZE + len), .size = (uint32_t)len, .data = buf};
        int n = vfio_user_mig_data_encode(CLIENT_TX_PAYLOAD(c),
                                          VFIO_USER_MSG_MAX - VFIO_USER_HDR_SIZE, &m, true);
        rc = n < 0 ? n : vfio_user_client_transact(c, VFIO_USER_MIG_DATA_WRITE, (size_t)n, NULL, 0);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}
