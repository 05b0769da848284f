/*
 * Fuzz target: virtio-net (devices/virtio/net*.c) behind the real
 * virtio-mmio transport, with an in-memory frame backend.
 *
 * Why: TX chains (header plus frame) come from the guest, RX chains are
 * guest buffers the device spreads host frames over (MRG_RXBUF, num_buffers);
 * header handling, frame-size limits and the RX pause/resume path must hold
 * for any chain layout (security.md D1/D4, H2, "virtio_net").
 *
 * Input: a harness driver program (harness_virtio.h); FZ_OP_STATE arg >= 2
 * queues a host frame of off16 % 2049 bytes from the input for RX (the
 * backend fd, an eventfd, becomes readable).  The backend checks every TX
 * frame: at most IOV_MAX iovecs, at most VIRTIO_NET_MAX_FRAME + 12 bytes;
 * every fifth send is refused with -EAGAIN to exercise the drop path.
 */
#include "tests/fuzz/harness_virtio.h"

#include <errno.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/net.h"

#define FZ_FRAMES    8
#define FZ_FRAME_MAX 2048
#define FZ_HDR_LEN   12

struct fz_net {
    struct net_backend be; /* first: the ops cast back from it */
    uint8_t frame[FZ_FRAMES][FZ_FRAME_MAX];
    size_t len[FZ_FRAMES];
    unsigned first, n;
    unsigned sends;
};

static struct fz_net *fz_be;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fzv_init_once();
    return 0;
}

static ssize_t fz_net_recv(struct net_backend *be, void *buf, size_t len)
{
    struct fz_net *b = (struct fz_net *)be;
    if (!b->n) {
        uint64_t v;
        if (read(be->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            abort();
        return -EAGAIN;
    }
    size_t flen = b->len[b->first];
    memcpy(buf, b->frame[b->first], MIN(flen, len));
    b->first = (b->first + 1) % FZ_FRAMES;
    b->n--;
    return (ssize_t)flen; /* tap semantics: the full length, even if longer than len */
}

static ssize_t fz_net_send(struct net_backend *be, const struct iovec *iov, int iovcnt)
{
    struct fz_net *b = (struct fz_net *)be;
    FZ_CHECK(iovcnt >= 0 && iovcnt <= IOV_MAX, "send with %d iovecs", iovcnt);
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        /* Touch every byte: ASan reports an iovec that is not readable memory. */
        const volatile uint8_t *p = iov[i].iov_base;
        for (size_t k = 0; k < iov[i].iov_len; k += 512)
            (void)p[k];
        total += iov[i].iov_len;
    }
    FZ_CHECK(total <= VIRTIO_NET_MAX_FRAME + FZ_HDR_LEN, "frame of %zu bytes sent", total);
    if (++b->sends % 5 == 0)
        return -EAGAIN;
    return (ssize_t)total;
}

static void fz_net_destroy(struct net_backend *be)
{
    close(be->fd);
    free(be);
    fz_be = NULL;
}

static const struct net_backend_ops fz_net_ops = {
    .recv = fz_net_recv,
    .send = fz_net_send,
    .destroy = fz_net_destroy,
};

/* FZ_OP_STATE arg >= 2: a frame arrives from the host side. */
static void fz_net_hook(const struct fz_op *op, struct fz_in *in)
{
    struct fz_net *b = fz_be;
    size_t got;
    if (!b || b->n == FZ_FRAMES)
        return;
    unsigned slot = (b->first + b->n) % FZ_FRAMES;
    const uint8_t *p = fz_take(in, op->off16 % (FZ_FRAME_MAX + 1), &got);
    memcpy(b->frame[slot], p, got);
    b->len[slot] = got;
    b->n++;
    uint64_t one = 1;
    if (write(b->be.fd, &one, sizeof(one)) != sizeof(one))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in;
    struct errbuf err = {0};
    struct virtio_dev *dev;
    fz_init(&in, data, size);

    struct fz_net *b = calloc(1, sizeof(*b));
    FZ_CHECK(b, "out of memory");
    b->be.ops = &fz_net_ops;
    b->be.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    FZ_CHECK(b->be.fd >= 0, "eventfd");
    snprintf(b->be.name, sizeof(b->be.name), "fuzz0");
    fz_be = b;
    struct virtio_net_config cfg = {
        .id = "net0", .has_mac = true, .mac = {0x52, 0x54, 0, 0x12, 0x34, 0x56}};
    if (virtio_net_create_with_backend(&cfg, &b->be, &fzv.mem, &fzv.loop, &dev, &err) < 0) {
        fprintf(stderr, "fuzz_virtio_net: %s\n", err.msg);
        abort();
    }
    fzv.hook = fz_net_hook;
    fzv_attach(dev);
    fzv_run(&in);
    struct virtio_net_stats st;
    virtio_net_get_stats(dev, &st);
    FZ_CHECK(st.tx_bytes <= st.tx_frames * (uint64_t)VIRTIO_NET_MAX_FRAME, "tx bytes");
    fzv_detach();
    fzv.hook = NULL;
    return 0;
}
