/*
 * PCI passthrough end to end (devices/vfio/vfio_pci.h): the test guest's
 * test=pcidev driver finds the passed-through function on bus 0, uses its
 * BAR, runs a DMA from guest RAM and back and takes its MSI/MSI-X.
 *
 *   passthrough_edu: QEMU's edu device through kernel VFIO, also with a
 *     layout derived from it (`wisp vpci derive --vfio`) and edited.  Needs
 *     the testbed's L1 with edu bound to vfio-pci: tests/testbed/vfio/run
 *     sets WISP_EDU_BDF after bind-edu; without it the tests are skipped.
 *   passthrough_user: wisp's vfio-user test server (needs only KVM): the
 *     device, a masked vector's held interrupt, the server dying mid-run,
 *     a snapshot refused (a passthrough function), and layout files:
 *     `wisp vpci derive`, edited (subsystem, a synthesised capability, a
 *     hidden range) and presented to the guest exactly; a layout the device
 *     cannot honour refused with one line and exit 2.
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

/* The layout derived from edu through kernel VFIO, with another subsystem
 * and a hidden range, presented to the guest; edu still works through it. */
Test(passthrough_edu, layout, .timeout = 240)
{
    const char *bdf = getenv("WISP_EDU_BDF");
    if (!bdf || !bdf[0])
        cr_skip_test("WISP_EDU_BDF unset: run through tests/testbed/vfio/run");
    char sysfs[128], path[64], dev[256], text[4096], edited[4400];
    snprintf(sysfs, sizeof(sysfs), "/sys/bus/pci/devices/%s", bdf);
    snprintf(path, sizeof(path), "/tmp/wisp-edu-%d.layout", (int)getpid());
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "vpci", "derive", "--vfio", sysfs, "-o", path, NULL);
    ASSERT_STATUS(&r, 0);
    proc_result_free(&r);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    fprintf(stderr, "derived from edu:\n%s\n", text);
    cr_assert(strstr(text, "id 0x1234 0x11e8\n"), "%s", text);
    cr_assert(strstr(text, " msi "), "no MSI capability:\n%s", text);
    char *ss = strstr(text, "subsystem ");
    cr_assert_not_null(ss);
    memcpy(ss, "subsystem 0x1af4 0x0043", 23);
    snprintf(edited, sizeof(edited), "%shidden 0xf0 0x10\n", text);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_geq(fputs(edited, f), 0);
    fclose(f);
    snprintf(dev, sizeof(dev), "vfio,path=%s,id=edu,layout=%s", sysfs, path);
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--pci", "on", "--device", dev,
             "--debug-exit", "--cmdline", "test=pcidev", NULL);
    fprintf(stderr, "passthrough_edu layout guest output:\n%s\n", r.out);
    ASSERT_OUT(&r, "pcidev: 1234:11e8 at 00:01.0");
    ASSERT_OUT(&r, "pcidev: subsystem 1af4:0043");
    ASSERT_OUT(&r, "pcidev: cfg 0xf0: 00000000 00000000 00000000 00000000\n");
    ASSERT_OUT(&r, "check edu_dma ok");
    ASSERT_OUT(&r, "check edu_msi ok");
    ASSERT_STATUS(&r, GUEST_PASS);
    proc_result_free(&r);
    unlink(path);
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

/* Read up to cap-1 bytes of `path` into buf (NUL-terminated; "" if absent). */
static void read_text(const char *path, char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/*
 * The server dies while the guest runs: its BAR reads all-ones, wisp goes
 * on.  The server is killed only once the guest says it is polling (its
 * first checks done), never on a timer: under sanitizers and TCG the boot
 * alone can take longer than any fixed delay.
 */
Test(passthrough_user, server_dies, .timeout = 180)
{
    start_server(NULL);
    char dir[64], serial[96], serial_arg[110], dev[160];
    snprintf(dir, sizeof(dir), "/tmp/wisp-ptd-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(serial, sizeof(serial), "%s/serial", dir);
    snprintf(serial_arg, sizeof(serial_arg), "file:%s", serial);
    snprintf(dev, sizeof(dev), "vfio-user,socket=%s", sock_path);
    pid_t killer = fork();
    cr_assert_geq(killer, 0);
    if (killer == 0) {
        /* The guest polls for 30 s after this line; give the boot 120 s. */
        static char text[1 << 16];
        for (int i = 0; i < 1200; i++) {
            read_text(serial, text, sizeof(text));
            if (strstr(text, "pcidev: waiting for the server to go"))
                break;
            usleep(100 * 1000);
        }
        kill(server_pid, SIGKILL);
        _exit(0);
    }
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--pci", "on", "--device", dev,
             "--serial", serial_arg, "--debug-exit", "--cmdline", "test=pcidev gone=1", NULL);
    waitpid(killer, NULL, 0);
    static char out[1 << 16];
    read_text(serial, out, sizeof(out));
    cr_assert(strstr(out, "check wispdev_id ok"), "serial:\n%s\nstderr:\n%s", out, r.err);
    cr_assert(strstr(out, "check wispdev_gone ok"), "serial:\n%s\nstderr:\n%s", out, r.err);
    ASSERT_ERR(&r, "transport failed");
    ASSERT_STATUS(&r, GUEST_PASS);
    proc_result_free(&r);
    unlink(serial);
    rmdir(dir);
}

/* A VM with a passthrough device refuses snapshots (a lazy restore would let
 * the server DMA from unloaded memory; live migration takes it) and runs on. */
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
    cr_assert(body && strstr(body, "vfio-pci 0 is a passthrough function"), "%s", reply);
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

/* ---- layout files (docs/VPCI_LAYOUT.md) ----------------------------------------------------- */

/* Derive the server's layout with `wisp vpci derive` into `path` (the
 * server serves one client: it is started again afterwards). */
static void derive_layout(const char *path, char *text, size_t cap)
{
    start_server(NULL);
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "vpci", "derive", "--vfio-user", sock_path, "-o", path, NULL);
    ASSERT_STATUS(&r, 0);
    proc_result_free(&r);
    stop_server();
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(text, 1, cap - 1, f);
    fclose(f);
    text[n] = '\0';
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_geq(fputs(text, f), 0);
    fclose(f);
}

/* Derived, edited (subsystem, a synthesised capability, a hidden range),
 * presented: the guest sees exactly the edited layout and the device
 * still works through it. */
Test(passthrough_user, layout_derive_edit_present, .timeout = 180)
{
    char path[64], text[4096], edited[4400];
    snprintf(path, sizeof(path), "/tmp/wisp-pt-%d.layout", (int)getpid());
    derive_layout(path, text, sizeof(text));
    cr_assert(strstr(text, "id 0x1b36 0x10f7\n"), "%s", text);
    cr_assert(strstr(text, "cap 0x40 msix 0x0c emulated vectors=4 table=0:0x800 pba=0:0xc00\n"),
              "%s", text);
    char *ss = strstr(text, "subsystem ");
    cr_assert_not_null(ss);
    memcpy(ss, "subsystem 0x1af4 0x0042", 23);
    snprintf(edited, sizeof(edited),
             "%s# edited: a PASID-like capability the device lacks, and hidden bytes\n"
             "cap 0x50 0x1b 0x08 synthesised data=0100a1b2c3d4\n"
             "hidden 0x58 0xa8\n",
             text);
    write_text(path, edited);

    start_server(NULL);
    char dev[256];
    snprintf(dev, sizeof(dev), "vfio-user,socket=%s,layout=%s", sock_path, path);
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--pci", "on", "--device", dev,
             "--debug-exit", "--cmdline", "test=pcidev", NULL);
    fprintf(stderr, "layout guest output:\n%s\n", r.out);
    ASSERT_OUT(&r, "pcidev: 1b36:10f7 at 00:01.0");
    ASSERT_OUT(&r, "pcidev: subsystem 1af4:0042 class ff0000");
    ASSERT_OUT(&r, "pcidev: cap 0x40 id 0x11\n");
    ASSERT_OUT(&r, "pcidev: cap 0x50 id 0x1b\n");
    ASSERT_OUT(&r, "pcidev: cfg 0x50: 0001001b d4c3b2a1 00000000 00000000\n");
    for (unsigned off = 0x60; off < 0x100; off += 16) {
        char line[96];
        snprintf(line, sizeof(line), "pcidev: cfg 0x%02x: 00000000 00000000 00000000 00000000\n",
                 off);
        ASSERT_OUT(&r, line);
    }
    ASSERT_OUT(&r, "check wispdev_dma ok");
    ASSERT_OUT(&r, "check wispdev_msix ok");
    ASSERT_STATUS(&r, GUEST_PASS);
    proc_result_free(&r);
    unlink(path);
}

/* A layout the device cannot honour: one line, exit 2, no guest. */
Test(passthrough_user, layout_refused, .timeout = 120)
{
    char path[64], text[4096];
    snprintf(path, sizeof(path), "/tmp/wisp-pt-%d.layout", (int)getpid());
    derive_layout(path, text, sizeof(text));
    char *v = strstr(text, "vectors=4");
    cr_assert_not_null(v);
    v[8] = '8';
    write_text(path, text);
    start_server(NULL);
    char dev[256], want[256];
    snprintf(dev, sizeof(dev), "vfio-user,socket=%s,layout=%s", sock_path, path);
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--pci", "on", "--device", dev,
             "--debug-exit", "--cmdline", "test=pcidev", NULL);
    snprintf(want, sizeof(want),
             "wisp: error: vpci layout %s: the device cannot honour it: it offers 4 MSI-X "
             "vectors, the layout wants 8\n",
             path);
    ASSERT_ERR(&r, want);
    ASSERT_STATUS(&r, 2);
    cr_assert(!strstr(r.out, "pcidev:"), "the guest ran:\n%s", r.out);
    proc_result_free(&r);
    unlink(path);
}
