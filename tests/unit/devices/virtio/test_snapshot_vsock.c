/*
 * virtio_snapshot with virtio-vsock behind the real mmio transport and real
 * UNIX sockets: the VSOCK_STATE record (the guest CID) moves to a fresh
 * device, which tells the guest with TRANSPORT_RESET (at once, or when the
 * driver posts its event buffer only after the restore), resumes the rx
 * queue on the chain the source held, and lets a host process reach the
 * guest again with "CONNECT <port>".  Every malformed record is refused:
 * another CID (in the config space, or forged in the record only), an
 * unknown version, a truncated or oversized record, a missing one.  Paused
 * (quiesced) queues are left alone.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/vsock.h"
#include "tests/unit/devices/virtio/test_snapshot.h"

#define RING(q, part) (1 * MiB + (uint64_t)(q)*0x30000 + (uint64_t)(part)*0x10000)
#define RXBUF(i)      (4 * MiB + (uint64_t)(i)*0x2000)
#define TXBUF         (5 * MiB)
#define EVBUF         (6 * MiB)
#define QSIZE         16
#define CID           3
#define FEATURES      VIRTIO_BIT(VIRTIO_F_VERSION_1)
/* VSOCK_STATE value: the vstate section header (28 bytes), then le64 cid. */
#define SEC_VERSION_OFF 4
#define SEC_LEN_OFF     8
#define SEC_HDR         28

static struct gmem mem;
static struct snap_side a, b;
static struct fake_ring rings[3];
static char dir[48];

static struct virtio_dev *new_vsock(struct snap_side *s, const char *name, uint64_t cid)
{
    char path[96];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct virtio_vsock_config cfg = {.id = "vsock0", .guest_cid = cid, .uds_path = path};
    struct errbuf err = {0};
    struct virtio_dev *d;
    cr_assert_eq(virtio_vsock_create(&cfg, &mem, &s->host.loop, &d, &err), 0, "%s", err.msg);
    return d;
}

static void setup(void)
{
    struct gmem_range r = {0, 8 * MiB};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create(&mem, &r, 1, false, &err), 0, "%s", err.msg);
    snprintf(dir, sizeof(dir), "/tmp/wisp-vsnap-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snap_side_init(&a);
    snap_side_init(&b);
    snap_side_attach(&a, new_vsock(&a, "a.sock", CID));
    for (unsigned q = 0; q < 3; q++)
        fake_ring_init(&rings[q], &mem, RING(q, 0), RING(q, 1), RING(q, 2), QSIZE);
}

static void teardown(void)
{
    snap_side_fini(&a);
    snap_side_fini(&b);
    gmem_destroy(&mem);
    char cmd[80];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(virtio_snapshot_vsock, .init = setup, .fini = teardown, .timeout = 30);

/*
 * The source as a running guest leaves it: two rx buffers posted (the device
 * holds the first, waiting for something to say) and one tx packet
 * completed, so its used-buffer interrupt is pending like the one a restore
 * raises.  With `evbuf`, the event buffer is posted too.
 */
static void run_source(bool evbuf)
{
    snap_bring_up(&a, rings, 3, FEATURES);
    for (unsigned i = 0; i < 2; i++)
        fake_ring_add(&rings[VIRTIO_VSOCK_RXQ], RXBUF(i), 4096, true);
    fake_host_kick(&a.host, VIRTIO_VSOCK_RXQ);
    /* An RST to a connection nobody has: completed, answered with nothing. */
    uint8_t h[VIRTIO_VSOCK_HDR_LEN] = {0};
    le64_put(h + VSOCK_HDR_SRC_CID, CID);
    le64_put(h + VSOCK_HDR_DST_CID, VIRTIO_VSOCK_HOST_CID);
    le32_put(h + VSOCK_HDR_SRC_PORT, 1000);
    le32_put(h + VSOCK_HDR_DST_PORT, 2000);
    le16_put(h + VSOCK_HDR_TYPE, VIRTIO_VSOCK_TYPE_STREAM);
    le16_put(h + VSOCK_HDR_OP, VIRTIO_VSOCK_OP_RST);
    cr_assert_eq(gmem_write(&mem, TXBUF, h, sizeof(h)), 0);
    fake_ring_add(&rings[VIRTIO_VSOCK_TXQ], TXBUF, sizeof(h), false);
    fake_host_kick(&a.host, VIRTIO_VSOCK_TXQ);
    snap_settle(&a);
    cr_assert_eq(fake_ring_used_idx(&rings[VIRTIO_VSOCK_TXQ]), 1);
    cr_assert_eq(fake_ring_used_idx(&rings[VIRTIO_VSOCK_RXQ]), 0);
    if (evbuf) {
        cr_assert_eq(gmem_zero(&mem, EVBUF, 8), 0);
        fake_ring_add(&rings[VIRTIO_VSOCK_EVQ], EVBUF, 8, true);
        fake_host_kick(&a.host, VIRTIO_VSOCK_EVQ);
        snap_settle(&a);
        cr_assert_eq(fake_ring_used_idx(&rings[VIRTIO_VSOCK_EVQ]), 0, "no event on the source");
    }
}

/* The event queue holds exactly one TRANSPORT_RESET (in EVBUF). */
static void assert_reset_event(struct snap_side *s)
{
    snap_settle(s);
    cr_assert_eq(fake_ring_used_idx(&rings[VIRTIO_VSOCK_EVQ]), 1, "one event delivered");
    uint8_t ev[4];
    cr_assert_eq(gmem_read(&mem, EVBUF, ev, 4), 0);
    cr_assert_eq(le32_get(ev), VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
}

/* A host process connects to the device's uds_path and asks for guest `port`. */
static int host_connect(const char *name, uint32_t port)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, name);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char line[32];
    int n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
    cr_assert_eq(write(fd, line, (size_t)n), n);
    return fd;
}

Test(virtio_snapshot_vsock, moves_resets_the_transport_and_serves_the_host_again)
{
    snap_side_attach(&b, new_vsock(&b, "b.sock", CID));
    run_source(false);
    struct vstate_out x;
    snap_migrate(&a, &b, &x);
    snap_assert_stream(&b, &x); /* save(load(x)) == x, the held rx chain rewound */
    vstate_out_free(&x);

    /* The host reaches the guest through the new device: its REQUEST lands
     * in the rx chain the source had popped and never used. */
    int fd = host_connect("b.sock", 52);
    for (int i = 0; i < 100 && fake_ring_used_idx(&rings[VIRTIO_VSOCK_RXQ]) == 0; i++)
        snap_settle(&b);
    cr_assert_eq(fake_ring_used_idx(&rings[VIRTIO_VSOCK_RXQ]), 1);
    uint8_t h[VIRTIO_VSOCK_HDR_LEN];
    cr_assert_eq(gmem_read(&mem, RXBUF(0), h, sizeof(h)), 0);
    cr_assert_eq(le16_get(h + VSOCK_HDR_OP), VIRTIO_VSOCK_OP_REQUEST);
    cr_assert_eq(le64_get(h + VSOCK_HDR_DST_CID), CID);
    cr_assert_eq(le32_get(h + VSOCK_HDR_DST_PORT), 52);
    close(fd);

    /* The driver posts its event buffer only now: the reset still comes. */
    cr_assert_eq(fake_ring_used_idx(&rings[VIRTIO_VSOCK_EVQ]), 0);
    cr_assert_eq(gmem_write(&mem, EVBUF, "\xff\xff\xff\xff", 4), 0);
    fake_ring_add(&rings[VIRTIO_VSOCK_EVQ], EVBUF, 8, true);
    fake_host_kick(&b.host, VIRTIO_VSOCK_EVQ);
    assert_reset_event(&b);
    struct virtio_vsock_stats st;
    virtio_vsock_get_stats(b.d, &st);
    cr_assert_eq(st.reset_events, 1);
    virtio_vsock_get_stats(a.d, &st);
    cr_assert_eq(st.reset_events, 0, "the source said nothing");
}

Test(virtio_snapshot_vsock, event_buffer_posted_before_the_save_gets_the_reset)
{
    snap_side_attach(&b, new_vsock(&b, "b.sock", CID));
    run_source(true);
    struct vstate_out x;
    snap_migrate(&a, &b, &x);
    vstate_out_free(&x);
    assert_reset_event(&b);
}

Test(virtio_snapshot_vsock, host_connections_of_the_destination_are_dropped)
{
    snap_side_attach(&b, new_vsock(&b, "b.sock", CID));
    run_source(false);
    /* A host process already talking to the destination before the restore. */
    int fd = host_connect("b.sock", 53);
    snap_settle(&b);
    struct vstate_out x;
    snap_migrate(&a, &b, &x);
    vstate_out_free(&x);
    snap_settle(&b);
    char c;
    cr_assert_eq(read(fd, &c, 1), 0, "the host peer sees EOF");
    cr_assert_eq(virtio_vsock_conn_count(b.d), 0);
    close(fd);
}

/* The source's state, for the refusals below. */
static void saved(struct virtio_state *st)
{
    run_source(false);
    snap_save_state(&a, st);
    cr_assert_eq(st->dev_rec_type, VIRTIO_STATE_T_VSOCK_STATE);
    cr_assert_eq(st->dev_blob_len, SEC_HDR + 8);
}

Test(virtio_snapshot_vsock, another_cid_is_refused_untouched)
{
    struct virtio_state st;
    snap_side_attach(&b, new_vsock(&b, "b.sock", CID + 1));
    saved(&st);
    snap_expect_refusal(&b, &st, -EINVAL, "state is for guest CID 3, this device has CID 4");
    virtio_state_free(&st);
}

/* Load `st` into b and expect it refused with `needle` in the reason. */
static void expect_refused(const struct virtio_state *st, int err, const char *needle)
{
    char why[256] = "";
    int r = virtio_snapshot_load(b.d, b.t, st, why, sizeof(why));
    cr_assert_eq(r, err, "load returned %d (%s), expected %d", r, why, err);
    cr_assert(!strchr(why, '\n') && strstr(why, needle), "reason '%s' mentions '%s'", why, needle);
}

Test(virtio_snapshot_vsock, malformed_records_are_refused)
{
    struct virtio_state st;
    snap_side_attach(&b, new_vsock(&b, "b.sock", CID));
    saved(&st);
    uint8_t *v = st.dev_blob;
    const char *refused = "refused its VSOCK_STATE record";

    le64_put(v + SEC_HDR, CID + 1); /* forged: the record disagrees with the config */
    expect_refused(&st, -EIO, refused);
    le64_put(v + SEC_HDR, CID);

    le16_put(v + SEC_VERSION_OFF, 2); /* a version this reader does not know */
    expect_refused(&st, -EIO, "Protocol error");
    le16_put(v + SEC_VERSION_OFF, 1);

    st.dev_blob_len--; /* truncated: the cid cut short */
    expect_refused(&st, -EIO, refused);
    st.dev_blob_len = SEC_HDR;
    le32_put(v + SEC_LEN_OFF, 0); /* no cid at all */
    expect_refused(&st, -EIO, refused);
    st.dev_blob_len = SEC_HDR + 8;
    le32_put(v + SEC_LEN_OFF, 8);

    /* Oversized: a byte after the section, or inside it after the cid. */
    uint8_t *big = calloc(1, SEC_HDR + 9);
    cr_assert_not_null(big);
    memcpy(big, v, SEC_HDR + 8);
    st.dev_blob = big;
    st.dev_blob_len = SEC_HDR + 9;
    expect_refused(&st, -EIO, refused);
    le32_put(big + SEC_LEN_OFF, 9);
    expect_refused(&st, -EIO, refused);
    st.dev_blob = v;
    st.dev_blob_len = SEC_HDR + 8;
    free(big);

    st.dev_rec_type = 0; /* no record: the device's state would be lost */
    st.dev_blob_len = 0;
    snap_side_fini(&b);
    snap_side_init(&b);
    snap_side_attach(&b, new_vsock(&b, "b.sock", CID));
    snap_expect_refusal(&b, &st, -EOPNOTSUPP, "no VSOCK_STATE record");
    st.dev_blob_len = SEC_HDR + 8;

    /* Each refused load above left b needing a reset; the good state loads. */
    st.dev_rec_type = VIRTIO_STATE_T_VSOCK_STATE;
    char why[256] = "";
    cr_assert_eq(virtio_snapshot_load(b.d, b.t, &st, why, sizeof(why)), 0, "%s", why);
    virtio_state_free(&st);
}

/* Quiesced for a snapshot or migration (queues paused), the device leaves
 * guest memory alone: a host CONNECT does not fill the rx chain it holds
 * until the queues run again. */
Test(virtio_snapshot_vsock, paused_queues_are_left_alone)
{
    run_source(false);
    pthread_mutex_lock(&a.d->lock);
    for (unsigned q = 0; q < 3; q++)
        a.d->vq[q].paused = true;
    pthread_mutex_unlock(&a.d->lock);
    int fd = host_connect("a.sock", 54);
    for (int i = 0; i < 20; i++)
        snap_settle(&a);
    cr_assert_eq(fake_ring_used_idx(&rings[VIRTIO_VSOCK_RXQ]), 0, "rx used while paused");
    pthread_mutex_lock(&a.d->lock);
    for (unsigned q = 0; q < 3; q++)
        a.d->vq[q].paused = false;
    pthread_mutex_unlock(&a.d->lock);
    fake_host_kick(&a.host, VIRTIO_VSOCK_RXQ);
    for (int i = 0; i < 100 && fake_ring_used_idx(&rings[VIRTIO_VSOCK_RXQ]) == 0; i++)
        snap_settle(&a);
    cr_assert_eq(fake_ring_used_idx(&rings[VIRTIO_VSOCK_RXQ]), 1, "delivered once resumed");
    uint8_t h[VIRTIO_VSOCK_HDR_LEN];
    cr_assert_eq(gmem_read(&mem, RXBUF(0), h, sizeof(h)), 0);
    cr_assert_eq(le32_get(h + VSOCK_HDR_DST_PORT), 54);
    close(fd);
}
