/*
 * Helpers for the virtio_snapshot tests (see test_snapshot.h).  Not a test
 * file itself: it holds no Test() and is linked into the unit binary like
 * every file under tests/unit.
 */
#include "tests/unit/devices/virtio/test_snapshot.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/console.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"

void snap_side_init(struct snap_side *s)
{
    memset(s, 0, sizeof(*s));
    s->peer = -1;
    /* A vanished socketpair peer is EPIPE, as in wisp, not death. */
    signal(SIGPIPE, SIG_IGN);
    fake_host_init(&s->host);
    s->inited = true;
}

void snap_side_attach_at(struct snap_side *s, struct virtio_dev *d, uint64_t base, unsigned gsi)
{
    struct errbuf err = {0};
    s->d = d;
    cr_assert_eq(virtio_mmio_create(d, &s->host.host, base, gsi, &s->t, &err), 0, "%s", err.msg);
}

void snap_side_attach(struct snap_side *s, struct virtio_dev *d)
{
    snap_side_attach_at(s, d, SNAP_BASE, SNAP_GSI);
}

void snap_side_fini(struct snap_side *s)
{
    if (!s->inited)
        return;
    if (s->t)
        virtio_mmio_destroy(s->t);
    if (s->d)
        s->d->ops->destroy(s->d);
    if (s->peer >= 0)
        close(s->peer);
    fake_host_fini(&s->host);
    memset(s, 0, sizeof(*s));
    s->peer = -1;
}

struct virtio_dev *snap_new_rng(struct snap_side *s, const struct gmem *mem)
{
    struct virtio_rng_config cfg = {.id = "rng0"};
    struct errbuf err = {0};
    struct virtio_dev *d;
    cr_assert_eq(virtio_rng_create(&cfg, mem, &s->host.loop, &d, &err), 0, "%s", err.msg);
    return d;
}

struct virtio_dev *snap_new_net(struct snap_side *s, const struct gmem *mem, const uint8_t mac[6])
{
    struct virtio_net_config cfg = {.id = "net0", .has_mac = true};
    struct net_backend *be;
    struct errbuf err = {0};
    struct virtio_dev *d;
    int sv[2];
    memcpy(cfg.mac, mac, 6);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(tap_from_fd(sv[0], "pair", &be), 0);
    cr_assert_eq(virtio_net_create_with_backend(&cfg, be, mem, &s->host.loop, &d, &err), 0, "%s",
                 err.msg);
    s->peer = sv[1];
    return d;
}

struct virtio_dev *snap_new_console(struct snap_side *s, const struct gmem *mem)
{
    struct virtio_console_config cfg = {.id = "console0"};
    struct chardev *cd;
    struct errbuf err = {0};
    struct virtio_dev *d;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(chardev_open_fds(sv[0], sv[0], &cd, &err), 0, "%s", err.msg);
    cr_assert_eq(virtio_console_create_with_chardev(&cfg, cd, mem, &s->host.loop, &d, &err), 0,
                 "%s", err.msg);
    s->peer = sv[1];
    return d;
}

void snap_bring_up(struct snap_side *s, struct fake_ring *rings, unsigned nq, uint64_t features)
{
    uint32_t st = fake_mmio_negotiate(s->t, features);
    cr_assert(st & VIRTIO_STATUS_FEATURES_OK, "features 0x%llx accepted",
              (unsigned long long)features);
    for (unsigned q = 0; q < nq; q++)
        fake_mmio_setup_queue(s->t, q, &rings[q]);
    fake_mmio_wr(s->t, FAKE_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
    cr_assert_eq(fake_mmio_rd(s->t, FAKE_MMIO_STATUS), st | VIRTIO_STATUS_DRIVER_OK);
    fake_host_poll(&s->host);
}

void snap_settle(struct snap_side *s)
{
    for (int i = 0; i < 200 && fake_host_poll(&s->host) > 0; i++)
        usleep(1000);
}

void snap_save_state(struct snap_side *s, struct virtio_state *st)
{
    char why[256] = "";
    cr_assert_eq(virtio_snapshot_save(s->d, s->t, SNAP_ID, st, why, sizeof(why)), 0, "%s", why);
}

void snap_save_stream(struct snap_side *s, struct vstate_out *o)
{
    struct virtio_state st;
    snap_save_state(s, &st);
    vstate_out_init(o);
    cr_assert_eq(virtio_state_encode(&st, o), 0);
    virtio_state_free(&st);
}

void snap_decode(const struct vstate_out *o, struct virtio_state *st)
{
    char why[256] = "";
    unsigned n = 0;
    cr_assert_eq(virtio_state_decode(o->buf, o->len, st, 1, &n, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(n, 1);
}

void snap_migrate(struct snap_side *src, struct snap_side *dst, struct vstate_out *stream)
{
    struct virtio_state st;
    char why[256] = "";
    snap_save_stream(src, stream);
    snap_decode(stream, &st);
    int r = virtio_snapshot_load(dst->d, dst->t, &st, why, sizeof(why));
    virtio_state_free(&st);
    cr_assert_eq(r, 0, "load: %s", why);
}

void snap_assert_stream(struct snap_side *s, const struct vstate_out *stream)
{
    struct vstate_out o;
    snap_save_stream(s, &o);
    cr_assert_eq(o.len, stream->len, "saved again: %zu bytes, before %zu", o.len, stream->len);
    for (size_t i = 0; i < o.len; i++)
        cr_assert_eq(o.buf[i], stream->buf[i], "saved again: byte %zu differs", i);
    vstate_out_free(&o);
}

void snap_print_take(struct snap_side *s, struct snap_print *p)
{
    snap_save_stream(s, &p->o);
    p->irqs = fake_host_irqs(&s->host);
}

void snap_print_check(struct snap_side *s, struct snap_print *p)
{
    snap_assert_stream(s, &p->o);
    cr_assert_eq(fake_host_irqs(&s->host), p->irqs, "no interrupt from a refused load");
    vstate_out_free(&p->o);
}

void snap_expect_refusal(struct snap_side *s, const struct virtio_state *st, int err,
                         const char *needle)
{
    struct snap_print p;
    char why[256];
    memset(why, 0, sizeof(why));
    snap_print_take(s, &p);
    int r = virtio_snapshot_load(s->d, s->t, st, why, sizeof(why));
    cr_assert_eq(r, err, "load returned %d (%s), expected %d", r, why, err);
    cr_assert(why[0] && !strchr(why, '\n'), "one-line reason: '%s'", why);
    cr_assert(strstr(why, needle), "reason '%s' mentions '%s'", why, needle);
    snap_print_check(s, &p);
}

void snap_poke16(const struct gmem *mem, gpa_t gpa, uint16_t v)
{
    uint8_t b[2];
    le16_put(b, v);
    cr_assert_eq(gmem_write(mem, gpa, b, 2), 0);
}
