/*
 * Fuzz target: virtio-vsock (devices/virtio/vsock*.c) behind the real
 * virtio-mmio transport, with its real UNIX-socket host side in a private
 * temporary directory.
 *
 * Why: every tx packet header comes from the guest and names connections,
 * lengths and credit; host peers send handshake lines and data at will.
 * Neither may make the device overflow a buffer, hold a tx chain, grow the
 * connection table past its bound, or block (security.md D1/D4, D7).
 *
 * Input: a harness driver program (harness_virtio.h; queues rx 0, tx 1,
 * event 2; the guest CID is 3 and host listeners wait on ports 1000-1003).
 * FZ_OP_STATE hooks: arg 2 connects a host peer to uds_path and writes
 * off16 % 64 input bytes (e.g. "CONNECT 7\n"); arg 3 writes off16 % 512
 * input bytes on host peer sel; arg 4 accepts the guest's connections on
 * the listeners; arg 5 drains every host peer; arg 6 closes host peer
 * off16 % 8; arg 7 saves and loads the device (drop, TRANSPORT_RESET).
 * Checked: the table never holds more than VIRTIO_VSOCK_MAX_CONNS.
 */
#include "tests/fuzz/harness_virtio.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/vsock.h"
#include "migration/vstate.h"

#define FZ_PEERS 8
#define FZ_PORTS 4

static char fz_dir[64], fz_path[96];
static int fz_listen[FZ_PORTS];
static int fz_peer[FZ_PEERS];
static unsigned fz_next;

static void fz_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
}

/* Remove the listeners' files and the directory when the fuzzer exits. */
static void fz_cleanup(void)
{
    for (unsigned i = 0; i < FZ_PORTS; i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s_%u", fz_path, 1000 + i);
        unlink(p);
    }
    rmdir(fz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fzv_init_once();
    /* As wisp does: a peer that left is EPIPE, not death. */
    signal(SIGPIPE, SIG_IGN);
    snprintf(fz_dir, sizeof(fz_dir), "/tmp/wisp-fuzz-vsock-XXXXXX");
    if (!mkdtemp(fz_dir))
        abort();
    snprintf(fz_path, sizeof(fz_path), "%s/v", fz_dir);
    for (unsigned i = 0; i < FZ_PORTS; i++) {
        char p[128];
        struct sockaddr_un sa;
        snprintf(p, sizeof(p), "%s_%u", fz_path, 1000 + i);
        fz_addr(&sa, p);
        fz_listen[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fz_listen[i] < 0 || bind(fz_listen[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            listen(fz_listen[i], 128) < 0)
            abort();
    }
    for (unsigned i = 0; i < FZ_PEERS; i++)
        fz_peer[i] = -1;
    atexit(fz_cleanup);
    return 0;
}

static void fz_keep(int fd)
{
    unsigned i = fz_next++ % FZ_PEERS;
    if (fz_peer[i] >= 0)
        close(fz_peer[i]);
    fz_peer[i] = fd;
}

static void fz_vsock_hook(const struct fz_op *op, struct fz_in *in)
{
    uint8_t buf[4096];
    size_t got;
    const uint8_t *p;
    switch (op->arg) {
    case 2: {
        struct sockaddr_un sa;
        fz_addr(&sa, fz_path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            abort();
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            close(fd);
            return;
        }
        p = fz_take(in, op->off16 % 64, &got);
        if (got && write(fd, p, got) < 0 && errno != EAGAIN)
            (void)0;
        fz_keep(fd);
        return;
    }
    case 3:
        p = fz_take(in, op->off16 % 512, &got);
        if (got && fz_peer[op->sel % FZ_PEERS] >= 0 &&
            write(fz_peer[op->sel % FZ_PEERS], p, got) < 0)
            (void)0;
        return;
    case 4:
        for (unsigned i = 0; i < FZ_PORTS; i++) {
            int fd;
            while ((fd = accept4(fz_listen[i], NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0)
                fz_keep(fd);
        }
        return;
    case 5:
        for (unsigned i = 0; i < FZ_PEERS; i++)
            while (fz_peer[i] >= 0 && read(fz_peer[i], buf, sizeof(buf)) > 0)
                ;
        return;
    case 6:
        if (fz_peer[op->off16 % FZ_PEERS] >= 0)
            close(fz_peer[op->off16 % FZ_PEERS]);
        fz_peer[op->off16 % FZ_PEERS] = -1;
        return;
    default: {
        struct virtio_dev *d = fzv.dev;
        struct vstate_out o;
        struct vstate_in vi;
        vstate_out_init(&o);
        pthread_mutex_lock(&d->lock);
        int r = d->ops->save(d, &o);
        FZ_CHECK(r == 0, "save failed: %d", r);
        vstate_in_init(&vi, o.buf, o.len);
        r = d->ops->load(d, &vi);
        FZ_CHECK(r == 0, "load of our own state failed: %d", r);
        pthread_mutex_unlock(&d->lock);
        vstate_out_free(&o);
        return;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in;
    struct errbuf err = {0};
    struct virtio_dev *dev;
    fz_init(&in, data, size);
    struct virtio_vsock_config cfg = {
        .id = "vsock0", .guest_cid = 3, .uds_path = fz_path, .handshake_ms = 50};
    if (virtio_vsock_create(&cfg, &fzv.mem, &fzv.loop, &dev, &err) < 0) {
        fprintf(stderr, "fuzz_virtio_vsock: %s\n", err.msg);
        abort();
    }
    fzv.hook = fz_vsock_hook;
    fzv_attach(dev);
    fzv_run(&in);
    FZ_CHECK(virtio_vsock_conn_count(dev) <= VIRTIO_VSOCK_MAX_CONNS, "%u connections",
             virtio_vsock_conn_count(dev));
    fzv_detach();
    fzv.hook = NULL;
    for (unsigned i = 0; i < FZ_PEERS; i++) {
        if (fz_peer[i] >= 0)
            close(fz_peer[i]);
        fz_peer[i] = -1;
    }
    for (unsigned i = 0; i < FZ_PORTS; i++) {
        int fd;
        while ((fd = accept4(fz_listen[i], NULL, NULL, SOCK_CLOEXEC)) >= 0)
            close(fd);
    }
    return 0;
}
