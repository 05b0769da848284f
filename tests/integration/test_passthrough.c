/*
 * PCI passthrough end to end (devices/vfio/vfio_pci.h): the test guest's
 * test=pcidev driver finds the passed-through function on bus 0, uses its
 * BAR, runs a DMA from guest RAM and back and takes its MSI/MSI-X.
 *
 *   passthrough_edu: QEMU's edu device through kernel VFIO.  Needs the
 *     testbed's L1 with edu bound to vfio-pci: tests/testbed/vfio/run sets
 *     WISP_EDU_BDF after bind-edu; without it the test is skipped.
 *   passthrough_user: wisp's vfio-user test server (needs only KVM): the
 *     device, a masked vector's held interrupt, the server dying mid-run,
 *     and a snapshot refused (the PCI bus cannot be saved).
 *   passthrough_cli: bad --device vfio input refused before /dev/kvm, and
 *     the iommufd form (/dev/vfio/devices/vfioN) on a host without IOMMUFD.
 */
#include "tests/lib/api_http.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define ASSERT_STATUS(r, want)                                                                     \
    cr_assert_eq((r)->status, (want), "status %d\nstdout:\n%s\nstderr:\n%s", (r)->status,          \
                 (r)->out, (r)->err)
#define ASSERT_OUT(r, s)                                                                           \
    cr_assert(strstr((r)->out, (s)), "missing '%s' in stdout:\n%s\nstderr:\n%s", (s), (r)->out,    \
              (r)->err)
#define ASSERT_ERR(r, s)                                                                           \
    cr_assert(strstr((r)->err, (s)), "missing '%s' in stderr:\n%s", (s), (r)->err)

Test(passthrough_edu, kernel_vfio, .timeout = 180)
{
    const char *bdf = getenv("WISP_EDU_BDF");
    if (!bdf || !bdf[0])
        cr_skip_test("WISP_EDU_BDF unset: run through tests/testbed/vfio/run");
    char dev[160];
    snprintf(dev, sizeof(dev), "vfio,path=/sys/bus/pci/devices/%s,id=edu", bdf);
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--pci", "on", "--device", dev,
             "--debug-exit", "--log-level", "info", "--cmdline", "test=pcidev", NULL);
    fprintf(stderr, "passthrough_edu guest output:\n%s\n", r.out);
    ASSERT_OUT(&r, "pcidev: 1234:11e8 at 00:01.0");
    ASSERT_OUT(&r, "check edu_id ok");
    ASSERT_OUT(&r, "check edu_liveness ok");
    ASSERT_OUT(&r, "check edu_factorial ok");
    ASSERT_OUT(&r, "check edu_dma ok");
    ASSERT_OUT(&r, "check edu_msi ok");
    ASSERT_OUT(&r, "check edu_msi_again ok");
    /* edu's BAR0 is one mmap-able area: the guest reaches it through a slot. */
    ASSERT_ERR(&r, "BAR0 0xc0000000+0x100000 as memory slot");
    ASSERT_STATUS(&r, GUEST_PASS);
    proc_result_free(&r);
}

/* ---- vfio-user ------------------------------------------------------------------------------ */

static pid_t server_pid = -1;
static char sock_path[108];

static const char *server_bin(void)
{
    static char path[PATH_MAX];
    const char *e = getenv("WISP_VFIO_USER_SERVER");
    if (e && e[0])
        return e;
    char bin[PATH_MAX];
    snprintf(bin, sizeof(bin), "%s", wisp_bin());
    snprintf(path, sizeof(path), "%s/vfio-user-server", dirname(bin)); /* next to wisp */
    return path;
}

/* Start the server and wait (5 s at most) until its socket accepts. */
static void start_server(const char *mode)
{
    snprintf(sock_path, sizeof(sock_path), "/tmp/wisp-pt-%d.sock", (int)getpid());
    unlink(sock_path);
    const char *bin = server_bin();
    if (access(bin, X_OK) != 0)
        cr_assert_fail("vfio-user-server not found at %s (make builds it next to wisp; or set "
                       "WISP_VFIO_USER_SERVER)",
                       bin);
    server_pid = fork();
    cr_assert_geq(server_pid, 0);
    if (server_pid == 0) {
        if (mode)
            execl(bin, bin, "--socket", sock_path, "--misbehave", mode, (char *)NULL);
        else
            execl(bin, bin, "--socket", sock_path, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && access(sock_path, F_OK) != 0; i++)
        usleep(10000);
    cr_assert_eq(access(sock_path, F_OK), 0, "the server's socket did not appear");
}

static void stop_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    server_pid = -1;
    unlink(sock_path);
}

TestSuite(passthrough_user, .fini = stop_server);

Test(passthrough_user, test_server, .timeout = 120)
{
    start_server(NULL);
    char dev[160];
    snprintf(dev, sizeof(dev), "vfio-user,socket=%s", sock_path);
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--pci", "on", "--device", dev,
             "--debug-exit", "--cmdline", "test=pcidev", NULL);
    fprintf(stderr, "passthrough_user guest output:\n%s\n", r.out);
    ASSERT_OUT(&r, "pcidev: 1b36:10f7 at 00:01.0");
    ASSERT_OUT(&r, "check wispdev_id ok");
    ASSERT_OUT(&r, "check wispdev_scratch ok");
    ASSERT_OUT(&r, "check wispdev_dma ok");
    ASSERT_OUT(&r, "check wispdev_msix ok");
    ASSERT_OUT(&r, "check wispdev_msix_pending ok");
    ASSERT_STATUS(&r, GUEST_PASS);
    proc_result_free(&r);
}

/* The server dies while the guest runs: its BAR reads all-ones, wisp goes on. */
Test(passthrough_user, server_dies, .timeout = 120)
{
    start_server(NULL);
    char dev[160];
    snprintf(dev, sizeof(dev), "vfio-user,socket=%s", sock_path);
    pid_t killer = fork();
    cr_assert_geq(killer, 0);
    if (killer == 0) {
        sleep(3); /* the guest polls for 30 s */
        kill(server_pid, SIGKILL);
        _exit(0);
    }
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--pci", "on", "--device", dev,
             "--debug-exit", "--cmdline", "test=pcidev gone=1", NULL);
    waitpid(killer, NULL, 0);
    ASSERT_OUT(&r, "check wispdev_id ok");
    ASSERT_OUT(&r, "check wispdev_gone ok");
    ASSERT_ERR(&r, "transport failed");
    ASSERT_STATUS(&r, GUEST_PASS);
    proc_result_free(&r);
}

/* A VM with a passthrough device refuses snapshots (the PCI bus does) and runs on. */
Test(passthrough_user, snapshot_refused, .timeout = 180)
{
    start_server(NULL);
    char dir[64], sock[96], snap[96], dev[160];
    snprintf(dir, sizeof(dir), "/tmp/wisp-pt-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(sock, sizeof(sock), "%s/api.sock", dir);
    snprintf(snap, sizeof(snap), "%s/snap", dir);
    cr_assert_eq(mkdir(snap, 0700), 0);
    snprintf(dev, sizeof(dev), "vfio-user,socket=%s", sock_path);
    char *argv[] = {(char *)(uintptr_t)wisp_bin(),
                    "run",
                    "--kernel",
                    (char *)(uintptr_t)guest_elf(),
                    "--pci",
                    "on",
                    "--device",
                    dev,
                    "--api-sock",
                    sock,
                    "--snapshot-dir",
                    snap,
                    "--cmdline",
                    "test=tick",
                    NULL};
    struct sandbox_proc p;
    cr_assert_eq(sandbox_proc_start(&p, argv, NULL), 0);
    cr_assert(sandbox_proc_wait_for(&p, "tick 2", WISP_TIMEOUT_MS), "the guest never ticked");
    char reply[API_HTTP_REPLY_MAX];
    const char *body = NULL;
    int st = api_http(sock, "PUT", "/snapshot/create",
                      "{\"snapshot_path\":\"s\",\"mem_file_path\":\"m\"}", reply, &body);
    cr_assert_eq(st, 400, "%d\n%s", st, reply);
    cr_assert(body && strstr(body, "PCI bus"), "%s", reply);
    cr_assert(sandbox_proc_wait_for(&p, "tick 40", WISP_TIMEOUT_MS), "the guest stopped");
    kill(p.pid, SIGTERM);
    struct proc_result r;
    sandbox_proc_finish(&p, NULL, WISP_TIMEOUT_MS, &r);
    cr_assert_eq(r.status, 128 + SIGTERM, "status %d\n%s", r.status, r.err);
    proc_result_free(&r);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* ---- bad input ------------------------------------------------------------------------------ */

Test(passthrough_cli, needs_pci_on, .timeout = 30)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--device",
             "vfio-user,socket=/nonexistent.sock", NULL);
    ASSERT_STATUS(&r, 2);
    ASSERT_ERR(&r, "needs --pci on");
    proc_result_free(&r);
}

Test(passthrough_cli, vfio_path_without_group, .timeout = 30)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--pci", "on", "--device",
             "vfio,path=/sys/bus/pci/devices/0000:ff:1f.7", NULL);
    ASSERT_STATUS(&r, 2);
    ASSERT_ERR(&r, "no IOMMU group");
    proc_result_free(&r);
}

/* The iommufd form on a host without IOMMUFD (Debian's kernels): one line, exit 3, before KVM. */
Test(passthrough_cli, vfio_cdev_without_iommufd, .timeout = 30)
{
    if (access("/dev/iommu", F_OK) == 0)
        cr_skip_test("this host has /dev/iommu (IOMMUFD)");
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--pci", "on", "--device",
             "vfio,path=/dev/vfio/devices/vfio0", NULL);
    ASSERT_STATUS(&r, 3);
    ASSERT_ERR(&r, "vfio device /dev/vfio/devices/vfio0: the host kernel lacks IOMMUFD");
    proc_result_free(&r);
}

Test(passthrough_cli, vfio_user_no_server, .timeout = 30)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--pci", "on", "--device",
             "vfio-user,socket=/nonexistent-wisp-pt.sock", NULL);
    ASSERT_STATUS(&r, 2);
    ASSERT_ERR(&r, "/nonexistent-wisp-pt.sock");
    proc_result_free(&r);
}
