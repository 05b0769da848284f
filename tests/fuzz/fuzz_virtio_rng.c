/*
 * Fuzz target: virtio-rng (devices/virtio/rng.c) behind the real
 * virtio-mmio transport, driven by a hostile driver (harness_virtio.h).
 *
 * Why: every request chain comes from the guest; the device must fill only
 * the writable buffers, within its per-request cap, and never write outside
 * guest RAM (security.md D1/D4, "virtio_rng").  The input is a harness
 * driver program.  Checked, beyond ASan/UBSan and the harness's transport
 * invariants: the statistics never claim more bytes than the cap allows for
 * the requests completed.
 */
#include "tests/fuzz/harness_virtio.h"

#include "devices/virtio/rng.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fzv_init_once();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in;
    struct errbuf err = {0};
    struct virtio_dev *dev;
    struct virtio_rng_config cfg = {.id = "rng0"};
    fz_init(&in, data, size);
    if (virtio_rng_create(&cfg, &fzv.mem, &fzv.loop, &dev, &err) < 0) {
        fprintf(stderr, "fuzz_virtio_rng: %s\n", err.msg);
        abort();
    }
    fzv_attach(dev);
    fzv_run(&in);
    struct virtio_rng_stats st;
    virtio_rng_get_stats(dev, &st);
    FZ_CHECK(st.bytes <= st.requests * (uint64_t)VIRTIO_RNG_REQ_MAX, "%llu bytes for %llu requests",
             (unsigned long long)st.bytes, (unsigned long long)st.requests);
    fzv_detach();
    return 0;
}
