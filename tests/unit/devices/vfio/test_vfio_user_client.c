/*
 * The vfio-user client (devices/vfio/vfio_user_client.c) against the test
 * server (tests/peers/vfio_user_server/, run as a child process): version
 * negotiation, DMA_MAP of a memfd as guest RAM, register access, a DMA copy
 * through mmap and through DMA_READ/WRITE messages, interrupts on eventfds,
 * reset; and a server that crashes, stalls, sends garbage, too many fds or
 * a wrong reply id: the client fails, the caller gets -EIO and all-ones,
 * within the client's deadline.
 *
 * The server binary is $WISP_VFIO_USER_SERVER, else vfio-user-server next
 * to this test binary's folder (build/tests/unit -> build/vfio-user-server).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "devices/vfio/vfio_user_client.h"

/* The server's register map (tests/peers/vfio_user_server/server.h). */
#include "tests/peers/vfio_user_server/server.h"

#define RAM_IOVA 0x100000ull
#define RAM_SIZE (2u << 20)

static pid_t server_pid = -1;
static char sock_path[108];
static struct vfio_user_client *cl;
static int ram_fd = -1;
static uint8_t *ram;

static const char *server_bin(void)
{
    static char path[PATH_MAX];
    const char *e = getenv("WISP_VFIO_USER_SERVER");
    if (e && e[0])
        return e;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    cr_assert_gt(n, 0);
    exe[n] = 0;
    /* build/tests/unit -> build/vfio-user-server */
    snprintf(path, sizeof(path), "%s/../vfio-user-server", dirname(exe));
    return path;
}

static void start_server(const char *mode)
{
    snprintf(sock_path, sizeof(sock_path), "/tmp/wisp-vfu-%d.sock", (int)getpid());
    unlink(sock_path);
    const char *bin = server_bin();
    cr_assert_eq(access(bin, X_OK), 0, "vfio-user-server not found at %s", bin);
    server_pid = fork();
    cr_assert_geq(server_pid, 0);
    if (server_pid == 0) {
        if (mode)
            execl(bin, bin, "--socket", sock_path, "--misbehave", mode, (char *)NULL);
        else
            execl(bin, bin, "--socket", sock_path, (char *)NULL);
        _exit(127);
    }
}

/* Connects, retrying while the server starts (at most 5 s). */
static int connect_client(int timeout_ms)
{
    int rc = -ENOENT;
    for (int i = 0; i < 500; i++) {
        rc = vfio_user_client_connect(sock_path, timeout_ms, &cl);
        if (rc != -ENOENT && rc != -ECONNREFUSED)
            break;
        usleep(10000);
    }
    return rc;
}

static void setup_mode(const char *mode, int timeout_ms)
{
    start_server(mode);
    cr_assert_eq(connect_client(timeout_ms), 0);
}

static void setup(void)
{
    setup_mode(NULL, 5000);
}

static void teardown(void)
{
    vfio_user_client_destroy(cl);
    cl = NULL;
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    unlink(sock_path);
    if (ram)
        munmap(ram, RAM_SIZE);
    if (ram_fd >= 0)
        close(ram_fd);
    ram = NULL;
    ram_fd = -1;
}

TestSuite(vfio_user_client, .fini = teardown, .timeout = 20);

/* Maps a memfd as guest RAM at RAM_IOVA; with_fd false offers no fd (message DMA). */
static void map_ram(bool with_fd)
{
    ram_fd = memfd_create("guest-ram", MFD_CLOEXEC);
    cr_assert_geq(ram_fd, 0);
    cr_assert_eq(ftruncate(ram_fd, RAM_SIZE), 0);
    ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd, 0);
    cr_assert_neq(ram, MAP_FAILED);
    struct vfio_user_dma_range r = {.iova = RAM_IOVA,
                                    .size = RAM_SIZE,
                                    .fd = with_fd ? ram_fd : -1,
                                    .fd_offset = 0,
                                    .hva = ram};
    cr_assert_eq(vfio_user_client_dma_map(cl, &r, 1), 0);
}

static uint32_t rd(uint32_t reg)
{
    uint32_t v = 0;
    cr_assert_eq(vfio_user_client_region_read(cl, VFIO_USER_PCI_BAR0, reg, &v, 4), 0);
    return v;
}

static void wr(uint32_t reg, uint32_t v)
{
    cr_assert_eq(vfio_user_client_region_write(cl, VFIO_USER_PCI_BAR0, reg, &v, 4), 0);
}

static void program_dma(uint64_t src, uint64_t dst, uint32_t len, uint32_t cmd)
{
    wr(SRV_REG_SRC_LO, (uint32_t)src);
    wr(SRV_REG_SRC_HI, (uint32_t)(src >> 32));
    wr(SRV_REG_DST_LO, (uint32_t)dst);
    wr(SRV_REG_DST_HI, (uint32_t)(dst >> 32));
    wr(SRV_REG_LEN, len);
    wr(SRV_REG_CMD, cmd);
}

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static bool fired(int efd, int ms)
{
    struct pollfd p = {.fd = efd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return false;
    uint64_t v;
    return read(efd, &v, sizeof(v)) == sizeof(v) && v >= 1;
}

Test(vfio_user_client, negotiates_and_describes_the_device, .init = setup)
{
    const struct vfio_user_caps *caps = vfio_user_client_caps(cl);
    cr_assert_eq(caps->max_msg_fds, 8);
    cr_assert_eq(caps->max_data_xfer_size, VFIO_USER_DATA_MAX);
    struct vfio_user_device_info di;
    cr_assert_eq(vfio_user_client_device_info(cl, &di), 0);
    cr_assert(di.flags & VFIO_USER_DEV_F_PCI);
    cr_assert_eq(di.num_regions, VFIO_USER_PCI_NUM_REGIONS);
    cr_assert_eq(di.num_irqs, VFIO_USER_PCI_NUM_IRQS);
    struct vfio_user_region_info ri;
    cr_assert_eq(vfio_user_client_region_info(cl, VFIO_USER_PCI_BAR0, &ri), 0);
    cr_assert_eq(ri.size, SRV_BAR0_SIZE);
    cr_assert_eq(vfio_user_client_region_info(cl, 3, &ri), 0);
    cr_assert_eq(ri.size, 0, "absent BAR");
    struct vfio_user_irq_info ii;
    cr_assert_eq(vfio_user_client_irq_info(cl, VFIO_USER_IRQ_MSIX, &ii), 0);
    cr_assert_eq(ii.count, SRV_MSIX_VECTORS);
    uint16_t ids[2];
    cr_assert_eq(vfio_user_client_region_read(cl, VFIO_USER_PCI_CONFIG, 0, ids, 4), 0);
    cr_assert_eq(ids[0], SRV_VENDOR_ID);
    cr_assert_eq(ids[1], SRV_DEVICE_ID);
    cr_assert_eq(rd(SRV_REG_ID), SRV_ID_VALUE);
    /* A server error (bad offset) is returned, and the client stays usable. */
    uint32_t v;
    cr_assert_eq(vfio_user_client_region_read(cl, VFIO_USER_PCI_BAR0, 2, &v, 4), -EINVAL);
    cr_assert_eq(v, 0xffffffffu);
    cr_assert_not(vfio_user_client_failed(cl));
    cr_assert_eq(rd(SRV_REG_REV), 1);
}

Test(vfio_user_client, dma_copy_through_mapped_memfd_raises_msix, .init = setup)
{
    map_ram(true);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    cr_assert_eq(vfio_user_client_set_irqs(cl, VFIO_USER_IRQ_MSIX, 0, 1, &efd), 0);
    for (size_t i = 0; i < 65536; i++)
        ram[i] = (uint8_t)(i * 7 + 3);
    program_dma(RAM_IOVA, RAM_IOVA + 0x100000, 65536, SRV_CMD_START);
    cr_assert_eq(rd(SRV_REG_STATUS), SRV_STATUS_DONE);
    cr_assert_eq(memcmp(ram, ram + 0x100000, 65536), 0);
    cr_assert_eq(rd(SRV_REG_CSUM), fnv1a(ram, 65536));
    cr_assert(fired(efd, 2000), "MSI-X vector 0 fired");
    /* Unassigned: no further interrupt reaches the eventfd. */
    cr_assert_eq(vfio_user_client_set_irqs(cl, VFIO_USER_IRQ_MSIX, 0, 0, NULL), 0);
    program_dma(RAM_IOVA, RAM_IOVA + 0x100000, 16, SRV_CMD_START);
    cr_assert_not(fired(efd, 100));
    cr_assert_eq(vfio_user_client_dma_unmap_all(cl), 0);
    close(efd);
}

Test(vfio_user_client, dma_copy_through_messages_and_intx, .init = setup)
{
    map_ram(false);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    cr_assert_eq(vfio_user_client_set_irqs(cl, VFIO_USER_IRQ_INTX, 0, 1, &efd), 0);
    for (size_t i = 0; i < 8192; i++)
        ram[0x1000 + i] = (uint8_t)(i ^ 0x5a);
    program_dma(RAM_IOVA + 0x1000, RAM_IOVA + 0x8000, 8192, SRV_CMD_START | SRV_CMD_MESSAGE);
    cr_assert_eq(rd(SRV_REG_STATUS), SRV_STATUS_DONE);
    cr_assert_eq(memcmp(ram + 0x1000, ram + 0x8000, 8192), 0);
    cr_assert_eq(rd(SRV_REG_CSUM), fnv1a(ram + 0x1000, 8192));
    cr_assert(fired(efd, 2000), "INTx fired");
    close(efd);
}

Test(vfio_user_client, server_dma_outside_the_map_gets_an_error, .init = setup)
{
    map_ram(false);
    /* Source past the end of guest RAM, and one straddling its end. */
    program_dma(0x90000000ull, RAM_IOVA, 64, SRV_CMD_START | SRV_CMD_MESSAGE);
    cr_assert_eq(rd(SRV_REG_STATUS), SRV_STATUS_ERR | EFAULT);
    program_dma(RAM_IOVA + RAM_SIZE - 32, RAM_IOVA, 64, SRV_CMD_START | SRV_CMD_MESSAGE);
    cr_assert_eq(rd(SRV_REG_STATUS), SRV_STATUS_ERR | EFAULT);
    cr_assert_not(vfio_user_client_failed(cl));
}

Test(vfio_user_client, reset_restores_registers, .init = setup)
{
    wr(SRV_REG_SCRATCH, 0x12345678);
    cr_assert_eq(rd(SRV_REG_SCRATCH), 0x12345678);
    cr_assert_eq(vfio_user_client_reset(cl), 0);
    cr_assert_eq(rd(SRV_REG_SCRATCH), 0);
    cr_assert_eq(rd(SRV_REG_ID), SRV_ID_VALUE);
}

Test(vfio_user_client, bad_dma_ranges_refused, .init = setup)
{
    struct vfio_user_dma_range r = {.iova = 0x1001, .size = 4096, .fd = -1};
    cr_assert_eq(vfio_user_client_dma_map(cl, &r, 1), -EINVAL, "unaligned");
    r.iova = 0x1000;
    r.size = 0;
    cr_assert_eq(vfio_user_client_dma_map(cl, &r, 1), -EINVAL, "empty");
    r.iova = UINT64_MAX - 4095;
    r.size = 8192;
    cr_assert_eq(vfio_user_client_dma_map(cl, &r, 1), -EINVAL, "wraps");
    struct vfio_user_dma_range two[2] = {{.iova = 0x10000, .size = 0x2000, .fd = -1},
                                         {.iova = 0x11000, .size = 0x2000, .fd = -1}};
    cr_assert_eq(vfio_user_client_dma_map(cl, two, 2), -EINVAL, "overlap");
    cr_assert_not(vfio_user_client_failed(cl));
}

/* The client's deadline in the misbehaving-server tests. */
#define BAD_TIMEOUT_MS 500

static void expect_failed_read(void)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint32_t v = 0;
    cr_assert_eq(vfio_user_client_region_read(cl, VFIO_USER_PCI_BAR0, SRV_REG_ID, &v, 4), -EIO);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(v, 0xffffffffu, "a failed read returns all-ones");
    cr_assert(vfio_user_client_failed(cl));
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_lt(s, 3.0, "bounded by the client's deadline (took %.2f s)", s);
    /* Failed for good: later calls fail at once. */
    cr_assert_eq(vfio_user_client_region_write(cl, VFIO_USER_PCI_BAR0, SRV_REG_SCRATCH, &v, 4),
                 -EIO);
    cr_assert_eq(vfio_user_client_reset(cl), -EIO);
    cr_assert_eq(vfio_user_client_service(cl, 0), -EIO);
}

Test(vfio_user_client, server_crash_mid_request)
{
    setup_mode("crash", BAD_TIMEOUT_MS);
    expect_failed_read();
}

Test(vfio_user_client, server_sends_garbage)
{
    setup_mode("garbage", BAD_TIMEOUT_MS);
    expect_failed_read();
}

Test(vfio_user_client, server_sends_too_many_fds)
{
    setup_mode("fds", BAD_TIMEOUT_MS);
    int before = 0;
    for (int fd = 0; fd < 1024; fd++)
        before += fcntl(fd, F_GETFD) >= 0;
    expect_failed_read();
    int after = 0;
    for (int fd = 0; fd < 1024; fd++)
        after += fcntl(fd, F_GETFD) >= 0;
    cr_assert_eq(after, before, "every received fd was closed");
}

Test(vfio_user_client, server_stalls)
{
    setup_mode("stall", BAD_TIMEOUT_MS);
    expect_failed_read();
}

Test(vfio_user_client, reply_id_mismatch)
{
    setup_mode("badid", BAD_TIMEOUT_MS);
    expect_failed_read();
}

Test(vfio_user_client, server_is_confined_by_seccomp)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("the server loads no seccomp filter under ASan");
#else
    setup_mode("syscall", BAD_TIMEOUT_MS);
    expect_failed_read();
    int st = 0;
    cr_assert_eq(waitpid(server_pid, &st, 0), server_pid);
    server_pid = -1;
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "server status 0x%x", st);
#endif
}

Test(vfio_user_client, server_killed_between_requests, .init = setup)
{
    cr_assert_eq(rd(SRV_REG_ID), SRV_ID_VALUE);
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    server_pid = -1;
    expect_failed_read();
}

/* attach over a socketpair whose far end answers VERSION with `answer` (or nothing). */
static int attach_with(const uint8_t *answer, size_t len, bool hang_up)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    if (len)
        cr_assert_eq(write(sv[1], answer, len), (ssize_t)len);
    if (hang_up)
        close(sv[1]);
    struct vfio_user_client *c = NULL;
    int rc = vfio_user_client_attach(sv[0], 300, &c);
    cr_assert_null(c);
    if (!hang_up)
        close(sv[1]);
    return rc;
}

Test(vfio_user_client, negotiation_failures)
{
    cr_assert_eq(attach_with(NULL, 0, true), -EPIPE, "server gone");
    cr_assert_eq(attach_with(NULL, 0, false), -ETIMEDOUT, "server silent");
    /* A reply to id 1 with major 1: refused. */
    uint8_t m[20];
    struct vfio_user_hdr h = {
        .id = 1, .cmd = VFIO_USER_VERSION, .size = 20, .flags = VFIO_USER_F_TYPE_REPLY};
    vfio_user_hdr_encode(m, &h);
    m[16] = 1, m[17] = 0, m[18] = 0, m[19] = 0;
    cr_assert_eq(attach_with(m, sizeof(m), false), -EPROTO, "wrong major");
    m[16] = 0, m[18] = 3;
    cr_assert_eq(attach_with(m, sizeof(m), false), -EPROTO, "minor above ours");
    h.flags |= VFIO_USER_F_ERROR;
    h.error = EINVAL;
    h.size = 16;
    vfio_user_hdr_encode(m, &h);
    cr_assert_eq(attach_with(m, 16, false), -EINVAL, "refused by the server");
}

Test(vfio_user_client, unsupported_commands_answer_errors, .init = setup)
{
    uint8_t out[16];
    size_t got = 99;
    uint32_t flags = VFIO_USER_FEATURE_GET | 99; /* a feature the server does not have */
    cr_assert_eq(vfio_user_client_feature(cl, flags, NULL, 0, out, sizeof(out), &got), -ENOTSUP);
    /* Migration data outside STOP_COPY / RESUMING: refused by the server. */
    cr_assert_eq(vfio_user_client_mig_data_read(cl, out, sizeof(out), &got), -EINVAL);
    cr_assert_eq(vfio_user_client_mig_data_write(cl, out, sizeof(out)), -EINVAL);
    cr_assert_eq(vfio_user_client_feature(cl, flags, out, VFIO_USER_FEATURE_DATA_MAX + 1, out,
                                          sizeof(out), &got),
                 -EINVAL);
    cr_assert_eq(vfio_user_client_set_irqs(cl, VFIO_USER_IRQ_MSIX, 0, 1, NULL), -EINVAL);
    int nofd = -1;
    cr_assert_eq(vfio_user_client_set_irqs(cl, VFIO_USER_IRQ_MSIX, VFIO_USER_MAX_IRQS, 1, &nofd),
                 -EINVAL);
    cr_assert_not(vfio_user_client_failed(cl));
    cr_assert_eq(rd(SRV_REG_ID), SRV_ID_VALUE);
    /* Nothing pending: service returns at once with nothing served. */
    cr_assert_eq(vfio_user_client_service(cl, 10), 0);
}
