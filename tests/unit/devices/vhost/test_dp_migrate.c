/*
 * Migration of a device over an external data plane, against the real
 * qemu-storage-daemon (vhost-user-blk) through the real virtio-mmio
 * transport with fake KVM (no KVM needed): the quiesce drains the ring and
 * stops the backend at the ring's position, the common save writes a
 * drained state, that state restores onto wisp's built-in blk on the same
 * image and the ring goes on there, a resume restarts the backend, and the
 * dirty rule sends every page again after a data plane that cannot log its
 * writes has run.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "devices/vhost/vhost_user_dp.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/virtio_dp.h"
#include "devices/virtio/virtio_mig.h"
#include "devices/virtio/virtio_snapshot.h"
#include "migration/hooks.h"
#include "migration/virtio_state.h"
#include "tests/lib/fake_virtio.h"
#include "tests/lib/qsd_peer.h"
#include "tests/lib/vhu_blk_rig.h"
#include "tests/lib/virtq_builder.h"
#include "vmm/log.h"

#define IMG   (1024 * 1024)
#define QSIZE 16
#define LIVE                                                                                       \
    (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |                \
     VIRTIO_STATUS_DRIVER_OK)
#define ALL_F                                                                                      \
    (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |                           \
     VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX))

static struct qsd_peer p;
static struct vqb b;
static struct fake_host h;
static struct virtio_dev *d;
static struct virtio_mmio *t;

static void setup(void)
{
    void *dp = NULL;
    vhu_blk_rig_up(&p, &b, &h, IMG, QSIZE, "blk0", false, &dp, &d, &t);
}

static void teardown(void)
{
    vhu_blk_rig_down(&p, &b, &h, d, t);
}

TestSuite(dp_migrate, .init = setup, .fini = teardown, .timeout = 30);

static void go_live(void)
{
    vhu_blk_rig_live(t, ALL_F, QSIZE);
}

/* A 1 KiB write of `fill` at `sector`, made available (not kicked); returns the status gpa. */
static gpa_t write_req(uint64_t sector, uint8_t fill)
{
    gpa_t data = vqb_alloc(&b, 1024, fill);
    gpa_t hdr = vqb_alloc(&b, 16, 0);
    uint8_t *hp = vqb_host(&b, hdr, 16);
    uint32_t type = 1; /* OUT */
    memcpy(hp, &type, 4);
    memcpy(hp + 8, &sector, 8);
    gpa_t st = vqb_alloc(&b, 1, 0xff);
    struct vqb_buf bufs[3] = {{hdr, 16, false}, {data, 1024, false}, {st, 1, true}};
    vqb_add_chain(&b, bufs, 3);
    return st;
}

/* Kick queue 0 of `host` and run its loop until used.idx reaches `want`. */
static void kick_wait(struct fake_host *host, uint16_t want)
{
    fake_host_kick(host, 0);
    for (int i = 0; i < 500 && vqb_used_idx(&b) != want; i++) {
        fake_host_poll(host);
        usleep(5000);
    }
    cr_assert_eq(vqb_used_idx(&b), want);
}

static void image_has(uint64_t sector, uint8_t fill)
{
    int fd = open(p.img, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    uint8_t buf[1024];
    cr_assert_eq(pread(fd, buf, sizeof(buf), (off_t)sector * 512), (ssize_t)sizeof(buf));
    close(fd);
    for (unsigned i = 0; i < sizeof(buf); i++)
        cr_assert_eq(buf[i], fill, "sector %llu byte %u: 0x%02x", (unsigned long long)sector, i,
                     buf[i]);
}

/*
 * Requests made available but not kicked are still served: the quiesce
 * kicks, waits for used == avail, stops the backend, and records that
 * position in the queue, so the saved state says "drained".
 */
Test(dp_migrate, quiesce_drains_and_records_the_position)
{
    go_live();
    gpa_t st[3];
    for (int i = 0; i < 3; i++)
        st[i] = write_req(8 + 2 * (uint64_t)i, (uint8_t)(0xa0 + i));
    cr_assert_eq(virtio_dp_quiesce(d, 5000), 0);
    cr_assert_eq(vqb_used_idx(&b), 3, "all three served before the stop");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(*(uint8_t *)vqb_host(&b, st[i], 1), 0, "request %d status", i);
    cr_assert_eq(d->vq[0].last_avail, 3);
    cr_assert_eq(d->vq[0].used_idx, 3);
    struct virtio_state s;
    char why[192] = "";
    cr_assert_eq(virtio_snapshot_save(d, t, 0, &s, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(s.vq[0].last_avail_idx, 3);
    cr_assert_eq(s.vq[0].used_idx, 3);
    cr_assert(s.vq[0].flags & VIRTIO_STATE_VQ_DRAINED);
    cr_assert_eq(s.dev_rec_type, VIRTIO_STATE_T_BLK_DEV_STATE, "the built-in device's record");
    virtio_state_free(&s);
    /* A request made after the stop waits in the ring. */
    write_req(20, 0xee);
    fake_host_kick(&h, 0);
    usleep(100000);
    fake_host_poll(&h);
    cr_assert_eq(vqb_used_idx(&b), 3, "a stopped backend served a request");
    for (int i = 0; i < 3; i++)
        image_has(8 + 2 * (uint64_t)i, (uint8_t)(0xa0 + i));
}

/* The source carries on: resume restarts the backend where it stopped. */
Test(dp_migrate, resume_serves_the_ring_again)
{
    go_live();
    write_req(4, 0x11);
    cr_assert_eq(virtio_dp_quiesce(d, 5000), 0);
    write_req(6, 0x22);
    virtio_dp_resume(d);
    kick_wait(&h, 2);
    image_has(4, 0x11);
    image_has(6, 0x22);
    cr_assert_not(fake_mmio_rd(t, FAKE_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/*
 * The state of the vhost-user device restores onto a built-in blk on the
 * same image (another "process": its own transport and loop), and the
 * driver's ring goes on there without a reset.
 */
Test(dp_migrate, a_saved_state_resumes_on_the_built_in_device)
{
    go_live();
    write_req(2, 0x33);
    fake_host_kick(&h, 0);
    cr_assert_eq(virtio_dp_quiesce(d, 5000), 0);
    struct virtio_state s;
    char why[192] = "";
    cr_assert_eq(virtio_snapshot_save(d, t, 0, &s, why, sizeof(why)), 0, "%s", why);
    struct vstate_out o;
    vstate_out_init(&o);
    cr_assert_eq(virtio_state_encode(&s, &o), 0);
    virtio_state_free(&s);
    /* The source is gone. */
    virtio_mmio_destroy(t);
    t = NULL;
    d->ops->destroy(d);
    d = NULL;

    struct fake_host h2;
    fake_host_init(&h2);
    struct errbuf err = {0};
    struct virtio_blk_config cfg = {.id = "blk0", .path = p.img};
    struct virtio_dev *bd = NULL;
    struct virtio_mmio *bt = NULL;
    cr_assert_eq(virtio_blk_create(&cfg, &b.mem, &h2.loop, &bd, &err), 0, "%s", err.msg);
    cr_assert_eq(virtio_mmio_create(bd, &h2.host, VHU_BLK_RIG_BASE, VHU_BLK_RIG_GSI, &bt, &err), 0,
                 "%s", err.msg);
    struct virtio_state in;
    unsigned n = 0;
    cr_assert_eq(virtio_state_decode(o.buf, o.len, &in, 1, &n, why, sizeof(why)), 0, "%s", why);
    vstate_out_free(&o);
    cr_assert_eq(virtio_snapshot_load(bd, bt, &in, why, sizeof(why)), 0, "%s", why);
    virtio_state_free(&in);
    cr_assert_eq(fake_mmio_rd(bt, FAKE_MMIO_STATUS), LIVE, "live without a reset");

    gpa_t st = write_req(12, 0x44);
    kick_wait(&h2, 2);
    cr_assert_eq(*(uint8_t *)vqb_host(&b, st, 1), 0);
    virtio_mmio_destroy(bt);
    bd->ops->destroy(bd);
    fake_host_fini(&h2);
    image_has(2, 0x33);
    image_has(12, 0x44);
}

struct marks {
    uint64_t bytes;
};

static int mark(void *ctx, uint64_t gpa, uint64_t len)
{
    (void)gpa;
    ((struct marks *)ctx)->bytes += len;
    return 0;
}

/*
 * vhost-user writes guest memory from another process, which neither KVM's
 * log nor wisp's sees: once the backend has been stopped for the final
 * state, every page is reported dirty, once.  Not while it runs (a live
 * round would never converge).
 */
Test(dp_migrate, the_dirty_rule_resends_all_memory_after_the_stop)
{
    go_live();
    write_req(2, 0x55);
    kick_wait(&h, 1);
    struct mig_registry reg;
    mig_registry_init(&reg);
    struct virtio_mig m;
    struct errbuf err = {0};
    cr_assert_eq(virtio_mig_register(&m, d, t, &b.mem, 0, &reg, &err), 0, "%s", err.msg);
    cr_assert_eq(reg.devs[0].plane, MIG_PLANE_VHOST_USER);
    struct marks mk = {0};
    cr_assert_eq(mig_dirty_log(&reg, mark, &mk, &err), 0, "%s", err.msg);
    cr_assert_eq(mk.bytes, 0, "a running data plane: nothing extra");
    cr_assert_eq(mig_quiesce(&reg, &err), 0, "%s", err.msg);
    cr_assert_eq(mig_dirty_log(&reg, mark, &mk, &err), 0, "%s", err.msg);
    cr_assert_eq(mk.bytes, b.mem.total, "every page after the stop: %llu of %llu bytes",
                 (unsigned long long)mk.bytes, (unsigned long long)b.mem.total);
    mk.bytes = 0;
    cr_assert_eq(mig_dirty_log(&reg, mark, &mk, &err), 0, "%s", err.msg);
    cr_assert_eq(mk.bytes, 0, "once");
    mig_resume_devices(&reg);
    write_req(4, 0x66);
    kick_wait(&h, 2);
}

/* A data plane that served and was then reset by the guest (no queue runs at
 * the stop) may still have written memory after it was sent: all of it again. */
Test(dp_migrate, the_dirty_rule_covers_a_data_plane_the_guest_reset)
{
    go_live();
    write_req(2, 0x77);
    kick_wait(&h, 1);
    fake_mmio_wr(t, FAKE_MMIO_STATUS, 0);
    struct mig_registry reg;
    mig_registry_init(&reg);
    struct virtio_mig m;
    struct errbuf err = {0};
    cr_assert_eq(virtio_mig_register(&m, d, t, &b.mem, 0, &reg, &err), 0, "%s", err.msg);
    struct marks mk = {0};
    cr_assert_eq(mig_quiesce(&reg, &err), 0, "%s", err.msg);
    cr_assert_eq(mig_dirty_log(&reg, mark, &mk, &err), 0, "%s", err.msg);
    cr_assert_eq(mk.bytes, b.mem.total, "%llu of %llu bytes", (unsigned long long)mk.bytes,
                 (unsigned long long)b.mem.total);
    mig_resume_devices(&reg);
}
