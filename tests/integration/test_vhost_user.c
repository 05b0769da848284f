/*
 * vhost-user-blk end to end (needs KVM: natively or in the testbed): the
 * test guest reads and writes a blk device whose queues qemu-storage-daemon
 * serves (`--device blk,vhost-user=SOCK`), under the default seccomp
 * filters, and the image is checked from the host afterwards.  The same
 * guest checks as the built-in blk (test=blk), so the guest cannot tell the
 * data planes apart.  A snapshot of such a VM stops and restarts the
 * backend and the VM runs on, also after its backend is killed (moving it
 * to another data plane: test_xplane.c); and a backend that is gone before
 * the VM starts is one clear error line.
 */
#include "tests/lib/api_http.h"
#include "tests/lib/qsd_peer.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMG_SECTORS 16384 /* 8 MiB */
#define PATTERN     0x5eed1234ULL

static void check_sector(const uint8_t *img, uint64_t s, uint64_t pattern)
{
    for (uint64_t j = 0; j < 64; j++) {
        uint64_t w;
        memcpy(&w, img + s * 512 + j * 8, 8);
        cr_assert_eq(w, pattern ^ (s << 16) ^ j, "sector %llu word %llu: 0x%llx",
                     (unsigned long long)s, (unsigned long long)j, (unsigned long long)w);
    }
}

Test(vhost_user, guest_blk_io_through_qemu_storage_daemon, .timeout = 120)
{
    struct qsd_peer p;
    qsd_peer_start(&p, IMG_SECTORS * 512ULL);
    char dev[256];
    snprintf(dev, sizeof(dev), "blk,vhost-user=%s,id=vdisk", p.sock);
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--device", dev,
             "--cmdline", "test=blk blk_pattern=0x5eed1234 virtio_irq=1", NULL);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\nstdout:\n%s\nstderr:\n%s", r.status, r.out,
                 r.err);
    cr_assert(strstr(r.out, "check blk_readback ok"), "stdout:\n%s", r.out);
    /* The guest took interrupts and read InterruptStatus bit 0 in its handler. */
    cr_assert(strstr(r.out, "check blk_irq ok"), "stdout:\n%s", r.out);
    size_t len;
    uint8_t *data = (uint8_t *)read_file(p.img, &len);
    cr_assert_eq(len, IMG_SECTORS * 512);
    check_sector(data, 0, PATTERN);
    check_sector(data, 1, PATTERN);
    check_sector(data, IMG_SECTORS / 2, PATTERN);
    check_sector(data, IMG_SECTORS - 1, PATTERN);
    free(data);
    proc_result_free(&r);
    qsd_peer_stop(&p);
}

Test(vhost_user, a_missing_backend_is_one_clear_line, .timeout = 60)
{
    struct qsd_peer p;
    qsd_peer_start(&p, IMG_SECTORS * 512ULL);
    char dev[256];
    snprintf(dev, sizeof(dev), "blk,vhost-user=%s", p.sock);
    qsd_peer_kill(&p); /* the socket file stays, nobody listens */
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--device", dev, NULL);
    cr_assert_neq(r.status, 0);
    cr_assert(strstr(r.err, "vhost-user") && strstr(r.err, "cannot connect"), "stderr:\n%s", r.err);
    proc_result_free(&r);
    qsd_peer_stop(&p);
}

Test(vhost_user, a_snapshot_resumes_and_a_dead_backend_leaves_the_vm_running, .timeout = 180)
{
    struct qsd_peer p;
    qsd_peer_start(&p, IMG_SECTORS * 512ULL);
    char sock[128], snap[128], dev[256];
    snprintf(sock, sizeof(sock), "%s/api.sock", p.dir);
    snprintf(snap, sizeof(snap), "%s/snap", p.dir);
    cr_assert_eq(mkdir(snap, 0700), 0);
    snprintf(dev, sizeof(dev), "blk,vhost-user=%s", p.sock);
    char *argv[] = {(char *)(uintptr_t)wisp_bin(),
                    "run",
                    "--kernel",
                    (char *)(uintptr_t)guest_elf(),
                    "--device",
                    dev,
                    "--api-sock",
                    sock,
                    "--snapshot-dir",
                    snap,
                    "--cmdline",
                    "test=tick",
                    NULL};
    struct sandbox_proc w;
    cr_assert_eq(sandbox_proc_start(&w, argv, NULL), 0);
    cr_assert(sandbox_proc_wait_for(&w, "tick 2", WISP_TIMEOUT_MS), "the guest never ticked");
    char reply[API_HTTP_REPLY_MAX];
    const char *body = NULL;
    int st = api_http(sock, "PUT", "/snapshot/create",
                      "{\"snapshot_path\":\"s\",\"mem_file_path\":\"m\"}", reply, &body);
    cr_assert_eq(st, 200, "%d\n%s", st, reply);
    cr_assert(body && strstr(body, "\"paused_ms\""), "%s", reply);
    /* The backend was stopped for the save and started again: the VM runs on. */
    cr_assert(sandbox_proc_wait_for(&w, "tick 20", WISP_TIMEOUT_MS), "the VM stopped");
    qsd_peer_kill(&p);
    cr_assert(sandbox_proc_wait_for(&w, "tick 40", WISP_TIMEOUT_MS), "the VM stopped");
    kill(w.pid, SIGTERM);
    struct proc_result r;
    sandbox_proc_finish(&w, NULL, WISP_TIMEOUT_MS, &r);
    cr_assert_eq(r.status, 128 + SIGTERM, "status %d\n%s", r.status, r.err);
    proc_result_free(&r);
    char f[160];
    snprintf(f, sizeof(f), "%s/s", snap);
    unlink(f);
    snprintf(f, sizeof(f), "%s/m", snap);
    unlink(f);
    rmdir(snap);
    unlink(sock);
    qsd_peer_stop(&p);
}
