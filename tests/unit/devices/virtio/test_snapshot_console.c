/*
 * virtio_snapshot with virtio-console behind the real mmio transport: host
 * input that was waiting in the device for receive buffers moves with the
 * device (CONSOLE_STATE) and reaches the guest from the new one; output
 * goes to the new backend; the state saved again is byte-identical.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "devices/virtio/console.h"
#include "tests/unit/devices/virtio/test_snapshot.h"

#define RING(q, part) (1 * MiB + (uint64_t)(q)*0x30000 + (uint64_t)(part)*0x10000)
#define BUF(i)        (4 * MiB + (uint64_t)(i)*0x1000)
#define QSIZE         64
#define RXQ           VIRTIO_CONSOLE_RXQ
#define TXQ           VIRTIO_CONSOLE_TXQ

static struct gmem mem;
static struct snap_side a, b;
static struct fake_ring ring[2];

static void setup(void)
{
    struct gmem_range r = {0, 8 * MiB};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create(&mem, &r, 1, false, &err), 0, "%s", err.msg);
    snap_side_init(&a);
    snap_side_init(&b);
    snap_side_attach(&a, snap_new_console(&a, &mem));
    for (unsigned q = 0; q < 2; q++)
        fake_ring_init(&ring[q], &mem, RING(q, 0), RING(q, 1), RING(q, 2), QSIZE);
    snap_bring_up(&a, ring, 2, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
}

static void teardown(void)
{
    snap_side_fini(&a);
    snap_side_fini(&b);
    gmem_destroy(&mem);
}

TestSuite(virtio_snapshot_console, .init = setup, .fini = teardown, .timeout = 30);

static uint8_t *host(gpa_t gpa, size_t len)
{
    uint8_t *p = gmem_ptr(&mem, gpa, len);
    cr_assert_not_null(p);
    return p;
}

/* The guest writes `s` to the console from buffer i. */
static void guest_write(struct snap_side *s, unsigned i, const char *text)
{
    size_t n = strlen(text);
    memcpy(host(BUF(i), n), text, n);
    fake_ring_add(&ring[TXQ], BUF(i), (uint32_t)n, false);
    fake_host_kick(&s->host, TXQ);
}

/* The peer of s reads exactly `text`. */
static void expect_output(struct snap_side *s, const char *text)
{
    char got[64] = {0};
    struct pollfd pfd = {s->peer, POLLIN, 0};
    cr_assert_eq(poll(&pfd, 1, 1000), 1);
    cr_assert_eq(recv(s->peer, got, sizeof(got) - 1, 0), (ssize_t)strlen(text));
    cr_assert_str_eq(got, text);
}

Test(virtio_snapshot_console, pending_input_moves_with_the_device)
{
    struct vstate_out x;
    guest_write(&a, 0, "hello");
    expect_output(&a, "hello");

    /* Typed while the guest has no receive buffer: kept in the device. */
    cr_assert_eq(send(a.peer, "typed-early", 11, 0), 11);
    snap_settle(&a);
    cr_assert_eq(fake_ring_used_idx(&ring[RXQ]), 0);

    snap_side_attach(&b, snap_new_console(&b, &mem));
    snap_migrate(&a, &b, &x);
    snap_assert_stream(&b, &x);

    fake_ring_add(&ring[RXQ], BUF(8), 64, true);
    fake_host_kick(&b.host, RXQ);
    snap_settle(&b);
    cr_assert_eq(fake_ring_used_idx(&ring[RXQ]), 1);
    cr_assert_arr_eq(host(BUF(8), 11), "typed-early", 11);

    guest_write(&b, 1, "world");
    expect_output(&b, "world");
    cr_assert_eq(fake_ring_used_idx(&ring[TXQ]), 2, "TX used ring continues");

    cr_assert_eq(send(b.peer, "more", 4, 0), 4);
    fake_ring_add(&ring[RXQ], BUF(9), 64, true);
    fake_host_kick(&b.host, RXQ);
    snap_settle(&b);
    cr_assert_eq(fake_ring_used_idx(&ring[RXQ]), 2);
    cr_assert_arr_eq(host(BUF(9), 4), "more", 4);
    vstate_out_free(&x);
}
