/*
 * Fuzz target: virtio-console (devices/virtio/console.c) behind the real
 * virtio-mmio transport, with pipes as its character backend.
 *
 * Why: TX and RX chains come from the guest and the device copies between
 * them and bounded host buffers; neither the chain layout nor a slow or
 * chatty host may make it overflow a buffer or hold guest chains (security.md
 * D1/D4, D7).
 *
 * Input: a harness driver program (harness_virtio.h); FZ_OP_STATE arg >= 2
 * writes off16 % 512 bytes of the input as host input into the backend's
 * input pipe; arg 7 drains the output pipe (otherwise the pipe fills and the
 * device must drop, not block).  Pipes are anonymous: nothing on the host
 * is touched.  Checked: bytes the guest got <= bytes the host sent.
 */
#include "tests/fuzz/harness_virtio.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "devices/virtio/console.h"

static int fz_in_w = -1, fz_out_r = -1;
static uint64_t fz_sent;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fzv_init_once();
    return 0;
}

static void fz_console_hook(const struct fz_op *op, struct fz_in *in)
{
    uint8_t buf[4096];
    size_t got;
    if (op->arg == 7) {
        while (read(fz_out_r, buf, sizeof(buf)) > 0)
            ;
        return;
    }
    const uint8_t *p = fz_take(in, op->off16 % 512, &got);
    ssize_t n = got ? write(fz_in_w, p, got) : 0;
    if (n > 0)
        fz_sent += (uint64_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in;
    struct errbuf err = {0};
    struct virtio_dev *dev;
    struct chardev *cd;
    int pin[2], pout[2];
    fz_init(&in, data, size);

    if (pipe2(pin, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(pout, O_CLOEXEC | O_NONBLOCK) < 0)
        abort();
    fz_in_w = pin[1];
    fz_out_r = pout[0];
    fz_sent = 0;
    if (chardev_open_fds(pin[0], pout[1], &cd, &err) < 0) {
        fprintf(stderr, "fuzz_virtio_console: %s\n", err.msg);
        abort();
    }
    struct virtio_console_config cfg = {.id = "console0", .mode = VIRTIO_CONSOLE_STDIO};
    if (virtio_console_create_with_chardev(&cfg, cd, &fzv.mem, &fzv.loop, &dev, &err) < 0) {
        fprintf(stderr, "fuzz_virtio_console: %s\n", err.msg);
        abort();
    }
    fzv.hook = fz_console_hook;
    fzv_attach(dev);
    fzv_run(&in);
    struct virtio_console_stats st;
    virtio_console_get_stats(dev, &st);
    FZ_CHECK(st.rx_bytes <= fz_sent, "guest got %llu bytes, host sent %llu",
             (unsigned long long)st.rx_bytes, (unsigned long long)fz_sent);
    fzv_detach();
    fzv.hook = NULL;
    close(fz_in_w);
    close(fz_out_r);
    return 0;
}
