/*
 * virtio-mmio version 2 register file and driver-status state machine
 * (virtio 1.2 sections 2.1, 3.1, 4.2.2, 4.2.3).
 *
 * This is the part of the transport a guest drives directly, so it is
 * written as a strict filter (security.md section C):
 *   - control registers (below 0x100) take only aligned 32-bit accesses;
 *     anything else reads 0 and is dropped.  Config space (0x100 up) takes
 *     1-, 2- and 4-byte accesses that lie wholly inside the device's
 *     config_size; 64-bit fields are read by the driver as two 32-bit reads
 *     with a ConfigGeneration check.  Reads of write-only registers return 0,
 *     writes to read-only ones are dropped.  Every refusal is logged,
 *     rate-limited (one limiter for the whole register file).
 *   - status only moves along the table below; bits are never cleared except
 *     by writing 0 (reset); FAILED is accepted at any time and sticks.
 *   - DriverFeatures is accepted only in DRIVER before FEATURES_OK, and only
 *     offered bits are kept; FEATURES_OK does not stick without VERSION_1.
 *   - queue registers are writable only between FEATURES_OK and DRIVER_OK,
 *     on an existing queue that is not ready, in a device neither FAILED nor
 *     NEEDS_RESET (QueueReady itself may be cleared while ready).  After
 *     DRIVER_OK the geometry cannot change (the CVE-2026-5747 class).
 *   - QueueReady = 1 is only recorded; the rings are validated when the
 *     driver sets DRIVER_OK, all queues or none.
 *
 * Reset (status 0) clears features, queues, InterruptStatus and selectors
 * and bumps ConfigGeneration: ops->reset may change config fields, and a
 * driver reading config across the reset then retries.
 *
 * Every entry point takes dev->lock (see mmio.c for the locking rules).
 */
#include "devices/virtio/mmio.h"
#include "devices/virtio/mmio_internal.h"

#include <inttypes.h>
#include <string.h>

#include "vmm/log.h"

#define ST_ACK         VIRTIO_STATUS_ACKNOWLEDGE
#define ST_DRIVER      VIRTIO_STATUS_DRIVER
#define ST_FEATURES_OK VIRTIO_STATUS_FEATURES_OK
#define ST_DRIVER_OK   VIRTIO_STATUS_DRIVER_OK
#define ST_NEEDS_RESET VIRTIO_STATUS_DEVICE_NEEDS_RESET
#define ST_FAILED      VIRTIO_STATUS_FAILED

/* Bits a driver may write (DEVICE_NEEDS_RESET is the device's; SUSPEND is not offered). */
#define ST_DRIVER_BITS (ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK | ST_FAILED)

/*
 * Guest-caused refusals, logged with the device id.  One rate limiter serves
 * every call site in this file (and every device): a guest probing all
 * registers then gets one burst of lines per window, not one per call site
 * (security.md D7); log_rl_dropped_total() still counts every line.
 */
static struct log_rl refuse_rl;
#define refuse(t, fmt, ...)                                                                        \
    do {                                                                                           \
        if (LOG_WARN <= log_threshold && log_rl_allow(&refuse_rl))                                 \
            log_msg(LOG_WARN, "virtio %s: " fmt, (t)->dev->id, __VA_ARGS__);                       \
    } while (0)

/*
 * The driver's way through initialisation (virtio 1.2 section 3.1.1), one
 * step per write.  FAILED and reset are handled separately: they are
 * allowed from every state.
 */
static const struct {
    uint8_t from, to;
} status_steps[] = {
    {0, ST_ACK},
    {ST_ACK, ST_ACK | ST_DRIVER},
    {ST_ACK | ST_DRIVER, ST_ACK | ST_DRIVER | ST_FEATURES_OK},
    {ST_ACK | ST_DRIVER | ST_FEATURES_OK, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK},
};

static uint64_t offered(const struct virtio_dev *d)
{
    /* virtio_dev_init already masks these; a device editing host_features
     * later must still not get them past the transport. */
    return d->host_features & ~VIRTIO_F_NEVER_OFFERED;
}

static bool is_ctrl_access(uint64_t off, unsigned len)
{
    return off < VIRTIO_MMIO_CONFIG && len == 4 && is_aligned(off, 4);
}

/* Is [off, off+len) a valid config-space access?  *coff receives the config offset. */
static bool config_access(const struct virtio_dev *d, uint64_t off, unsigned len, uint32_t *coff)
{
    if (off < VIRTIO_MMIO_CONFIG || (len != 1 && len != 2 && len != 4))
        return false;
    uint64_t c = off - VIRTIO_MMIO_CONFIG;
    uint32_t size = d->ops->config_size;
    if (c >= size || len > size - c)
        return false;
    *coff = (uint32_t)c;
    return true;
}

/* The selected queue, or NULL if QueueSel names no queue. */
static struct virtq *selected(struct virtio_mmio *t)
{
    return t->queue_sel < t->dev->ops->num_queues ? &t->dev->vq[t->queue_sel] : NULL;
}

static uint32_t read_reg(struct virtio_mmio *t, uint64_t off)
{
    struct virtio_dev *d = t->dev;
    struct virtq *vq = selected(t);

    switch (off) {
    case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
    case VIRTIO_MMIO_VERSION:
        return 2;
    case VIRTIO_MMIO_DEVICE_ID:
        return d->ops->device_id;
    case VIRTIO_MMIO_VENDOR_ID:
        return VIRTIO_MMIO_VENDOR;
    case VIRTIO_MMIO_DEVICE_FEATURES:
        if (t->device_features_sel >= VIRTIO_MMIO_FEATURE_WORDS)
            return 0;
        return (uint32_t)(offered(d) >> (32 * t->device_features_sel));
    case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return vq ? vq->max_size : 0;
    case VIRTIO_MMIO_QUEUE_READY:
        return vq ? vq->cfg.ready : 0;
    case VIRTIO_MMIO_INTERRUPT_STATUS:
        return t->interrupt_status;
    case VIRTIO_MMIO_STATUS:
        return d->status;
    case VIRTIO_MMIO_SHM_LEN_LOW:
    case VIRTIO_MMIO_SHM_LEN_HIGH:
    case VIRTIO_MMIO_SHM_BASE_LOW:
    case VIRTIO_MMIO_SHM_BASE_HIGH:
        /* No shared memory regions: length -1 and base all-ones mean "absent". */
        return UINT32_MAX;
    case VIRTIO_MMIO_CONFIG_GENERATION:
        return d->config_generation;
    case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
    case VIRTIO_MMIO_DRIVER_FEATURES:
    case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
    case VIRTIO_MMIO_QUEUE_SEL:
    case VIRTIO_MMIO_QUEUE_NUM:
    case VIRTIO_MMIO_QUEUE_NOTIFY:
    case VIRTIO_MMIO_INTERRUPT_ACK:
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
    case VIRTIO_MMIO_QUEUE_DESC_HIGH:
    case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
    case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
    case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
    case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
    case VIRTIO_MMIO_SHM_SEL:
        refuse(t, "read of write-only register 0x%03" PRIx64, off);
        return 0;
    default:
        /* Includes QueueReset: RING_RESET is never offered. */
        refuse(t, "read of unknown register 0x%03" PRIx64, off);
        return 0;
    }
}

/*
 * The selected queue if its configuration may be written now, else NULL
 * (logged).  `ready_reg`: the write is to QueueReady, which may also be
 * written while the queue is ready (to clear it).
 */
static struct virtq *writable_queue(struct virtio_mmio *t, uint64_t reg, bool ready_reg)
{
    struct virtio_dev *d = t->dev;
    struct virtq *vq = selected(t);

    if (!vq) {
        refuse(t, "write to 0x%03" PRIx64 " for nonexistent queue %" PRIu32 " ignored", reg,
               t->queue_sel);
        return NULL;
    }
    if (!(d->status & ST_FEATURES_OK) ||
        (d->status & (ST_DRIVER_OK | ST_FAILED | ST_NEEDS_RESET))) {
        refuse(t, "queue register 0x%03" PRIx64 " write in status 0x%02x ignored", reg, d->status);
        return NULL;
    }
    if (!ready_reg && vq->cfg.ready) {
        refuse(t, "queue register 0x%03" PRIx64 " write while queue %" PRIu32 " is ready ignored",
               reg, t->queue_sel);
        return NULL;
    }
    return vq;
}

static void write_queue_addr(struct virtio_mmio *t, uint64_t reg, uint32_t v)
{
    struct virtq *vq = writable_queue(t, reg, false);
    if (!vq)
        return;
    gpa_t *a;
    switch (reg & ~7ULL) { /* Low and High share the 8-byte slot */
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
        a = &vq->cfg.desc_gpa;
        break;
    case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
        a = &vq->cfg.avail_gpa;
        break;
    default:
        a = &vq->cfg.used_gpa;
        break;
    }
    if (reg & 4)
        *a = (*a & 0xffffffffULL) | ((uint64_t)v << 32);
    else
        *a = (*a & ~0xffffffffULL) | v;
}

static void write_queue_num(struct virtio_mmio *t, uint32_t v)
{
    struct virtq *vq = writable_queue(t, VIRTIO_MMIO_QUEUE_NUM, false);
    if (!vq)
        return;
    /* A value that does not fit the 16-bit size is kept as 0 rather than
     * truncated (0x10001 must not become 1): activation refuses it. */
    vq->cfg.size = v > UINT16_MAX ? 0 : (uint16_t)v;
}

static void write_queue_ready(struct virtio_mmio *t, uint32_t v)
{
    struct virtq *vq = writable_queue(t, VIRTIO_MMIO_QUEUE_READY, true);
    if (!vq)
        return;
    if (v > 1) {
        refuse(t, "QueueReady value 0x%" PRIx32 " ignored", v);
        return;
    }
    /* Only recorded: the rings are checked at DRIVER_OK, together. */
    vq->cfg.ready = v;
}

static void write_driver_features(struct virtio_mmio *t, uint32_t v)
{
    struct virtio_dev *d = t->dev;
    uint32_t sel = t->driver_features_sel;

    if (!(d->status & ST_DRIVER) ||
        (d->status & (ST_FEATURES_OK | ST_DRIVER_OK | ST_FAILED | ST_NEEDS_RESET))) {
        refuse(t, "DriverFeatures write in status 0x%02x ignored", d->status);
        return;
    }
    if (sel >= VIRTIO_MMIO_FEATURE_WORDS) {
        if (v)
            refuse(t, "unoffered feature bits 0x%08" PRIx32 " in word %" PRIu32 " dropped", v, sel);
        return;
    }
    unsigned shift = 32 * sel;
    uint32_t ok = (uint32_t)(offered(d) >> shift);
    if (v & ~ok)
        refuse(t, "unoffered feature bits 0x%08" PRIx32 " in word %" PRIu32 " dropped", v & ~ok,
               sel);
    d->guest_features =
        (d->guest_features & ~(0xffffffffULL << shift)) | ((uint64_t)(v & ok) << shift);
}

/* Take back a partial activation, keeping what the driver wrote. */
static void deactivate_queues(struct virtio_dev *d)
{
    for (unsigned q = 0; q < d->ops->num_queues; q++) {
        struct virtq_config cfg = d->vq[q].cfg;
        virtq_reset(&d->vq[q]);
        d->vq[q].cfg = cfg;
    }
}

/* DRIVER_OK was just set: validate and start every ready queue, then the device. */
static void activate(struct virtio_mmio *t)
{
    struct virtio_dev *d = t->dev;
    bool event_idx = virtio_has_feature(d, VIRTIO_F_EVENT_IDX);
    bool indirect = virtio_has_feature(d, VIRTIO_F_INDIRECT_DESC);

    for (unsigned q = 0; q < d->ops->num_queues; q++) {
        struct virtq *vq = &d->vq[q];
        if (!vq->cfg.ready)
            continue;
        /* queue.c checks this too; the transport does not rely on it. */
        if (!is_pow2(vq->cfg.size) || vq->cfg.size > vq->max_size) {
            refuse(t, "queue %u size %u invalid (max %u); device needs reset", q, vq->cfg.size,
                   vq->max_size);
            goto fail;
        }
        if (virtq_activate(vq, d->mem, event_idx, indirect) < 0) {
            refuse(t,
                   "queue %u rings rejected (desc 0x%" PRIx64 " avail 0x%" PRIx64 " used 0x%" PRIx64
                   " size %u); device needs reset",
                   q, vq->cfg.desc_gpa, vq->cfg.avail_gpa, vq->cfg.used_gpa, vq->cfg.size);
            goto fail;
        }
    }
    if (d->ops->activate(d) < 0) {
        refuse(t, "%s", "device activation failed; device needs reset");
        goto fail;
    }
    return;

fail:
    METRICS_ADD(d->metrics, activate_fails, 1);
    deactivate_queues(d);
    virtio_mmio_set_needs_reset(t);
}

static void reset(struct virtio_mmio *t)
{
    struct virtio_dev *d = t->dev;

    d->ops->reset(d);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        virtq_reset(&d->vq[q]);
    d->guest_features = 0;
    d->status = 0;
    d->config_generation++;
    t->interrupt_status = 0;
    t->device_features_sel = 0;
    t->driver_features_sel = 0;
    t->queue_sel = 0;
}

static bool is_step(uint8_t from, uint8_t to)
{
    for (size_t i = 0; i < ARRAY_SIZE(status_steps); i++)
        if (status_steps[i].from == from && status_steps[i].to == to)
            return true;
    return false;
}

static void write_status(struct virtio_mmio *t, uint32_t v)
{
    struct virtio_dev *d = t->dev;
    uint8_t cur = d->status;
    uint8_t cur_drv = cur & ST_DRIVER_BITS;

    if (v == 0) {
        reset(t);
        return;
    }
    /* Drivers write status back read-modify-write, so a NEEDS_RESET bit in
     * the value is the device's own bit echoed, not a request. */
    if (v & ~(uint32_t)(ST_DRIVER_BITS | ST_NEEDS_RESET)) {
        refuse(t, "status write 0x%" PRIx32 " has unknown bits; ignored", v);
        return;
    }
    uint8_t want = (uint8_t)(v & ST_DRIVER_BITS);
    if (want & ST_FAILED) {
        /* The driver gave up: allowed from any state, other bits ignored. */
        d->status |= ST_FAILED;
        return;
    }
    if (want == cur_drv)
        return; /* nothing changes */
    if (cur & ST_FAILED) {
        refuse(t, "status write 0x%02" PRIx32 " after FAILED ignored (reset first)", v);
        return;
    }
    if (cur_drv & ~want) {
        refuse(t, "status write 0x%02" PRIx32 " would clear bits of 0x%02x; ignored", v, cur);
        return;
    }
    if (cur & ST_NEEDS_RESET) {
        refuse(t, "status write 0x%02" PRIx32 " while the device needs reset ignored", v);
        return;
    }
    if (!is_step(cur_drv, want)) {
        refuse(t, "invalid status transition 0x%02x -> 0x%02" PRIx32 "; ignored", cur, v);
        return;
    }
    if ((want & ~cur_drv) == ST_FEATURES_OK && !virtio_has_feature(d, VIRTIO_F_VERSION_1)) {
        /* The driver re-reads status, finds FEATURES_OK clear and gives up. */
        refuse(t, "%s", "FEATURES_OK without VERSION_1 refused (legacy drivers unsupported)");
        return;
    }
    d->status = want;
    if ((want & ~cur_drv) == ST_DRIVER_OK)
        activate(t);
}

static void write_reg(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
    struct virtio_dev *d = t->dev;

    switch (off) {
    case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        t->device_features_sel = MIN(v, VIRTIO_MMIO_FEATURE_WORDS);
        break;
    case VIRTIO_MMIO_DRIVER_FEATURES:
        write_driver_features(t, v);
        break;
    case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        t->driver_features_sel = MIN(v, VIRTIO_MMIO_FEATURE_WORDS);
        break;
    case VIRTIO_MMIO_QUEUE_SEL:
        t->queue_sel = MIN(v, (uint32_t)d->ops->num_queues);
        break;
    case VIRTIO_MMIO_QUEUE_NUM:
        write_queue_num(t, v);
        break;
    case VIRTIO_MMIO_QUEUE_READY:
        write_queue_ready(t, v);
        break;
    case VIRTIO_MMIO_QUEUE_NOTIFY:
        /* Normally consumed by the ioeventfd; this is the fallback path. */
        if (v >= d->ops->num_queues)
            refuse(t, "notify for nonexistent queue %" PRIu32 " ignored", v);
        else
            virtio_mmio_deliver_notify(t, v);
        break;
    case VIRTIO_MMIO_INTERRUPT_ACK:
        t->interrupt_status &= ~v;
        break;
    case VIRTIO_MMIO_STATUS:
        write_status(t, v);
        break;
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
    case VIRTIO_MMIO_QUEUE_DESC_HIGH:
    case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
    case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
    case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
    case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        write_queue_addr(t, off, v);
        break;
    case VIRTIO_MMIO_SHM_SEL:
        break; /* every region reads as absent, whatever is selected */
    case VIRTIO_MMIO_MAGIC_VALUE:
    case VIRTIO_MMIO_VERSION:
    case VIRTIO_MMIO_DEVICE_ID:
    case VIRTIO_MMIO_VENDOR_ID:
    case VIRTIO_MMIO_DEVICE_FEATURES:
    case VIRTIO_MMIO_QUEUE_NUM_MAX:
    case VIRTIO_MMIO_INTERRUPT_STATUS:
    case VIRTIO_MMIO_SHM_LEN_LOW:
    case VIRTIO_MMIO_SHM_LEN_HIGH:
    case VIRTIO_MMIO_SHM_BASE_LOW:
    case VIRTIO_MMIO_SHM_BASE_HIGH:
    case VIRTIO_MMIO_CONFIG_GENERATION:
        refuse(t, "write 0x%" PRIx32 " to read-only register 0x%03" PRIx64 " ignored", v, off);
        break;
    default:
        refuse(t, "write 0x%" PRIx32 " to unknown register 0x%03" PRIx64 " ignored", v, off);
        break;
    }
}

void virtio_mmio_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct virtio_mmio *t = opaque;
    struct virtio_dev *d = t->dev;
    uint32_t coff;

    memset(data, 0, len);
    pthread_mutex_lock(&d->lock);
    if (is_ctrl_access(off, len))
        le32_put(data, read_reg(t, off));
    else if (config_access(d, off, len, &coff))
        d->ops->config_read(d, coff, data, len);
    else
        refuse(t, "%u-byte read at 0x%" PRIx64 " ignored", len, off);
    pthread_mutex_unlock(&d->lock);
}

void virtio_mmio_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    struct virtio_mmio *t = opaque;
    struct virtio_dev *d = t->dev;
    uint32_t coff;

    pthread_mutex_lock(&d->lock);
    if (is_ctrl_access(off, len)) {
        write_reg(t, off, le32_get(data));
    } else if (config_access(d, off, len, &coff)) {
        /* Config is the driver's to write only once it has claimed the device. */
        if (!d->ops->config_write)
            refuse(t, "write to read-only config at 0x%" PRIx32 " ignored", coff);
        else if (!(d->status & ST_DRIVER) || (d->status & ST_FAILED))
            refuse(t, "config write in status 0x%02x ignored", d->status);
        else
            d->ops->config_write(d, coff, data, len);
    } else {
        refuse(t, "%u-byte write at 0x%" PRIx64 " ignored", len, off);
    }
    pthread_mutex_unlock(&d->lock);
}
