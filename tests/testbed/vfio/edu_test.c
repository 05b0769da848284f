/*
 * The VFIO layer (devices/vfio/) against a real kernel and a real device:
 * QEMU's edu inside the testbed's L1, behind the emulated Intel IOMMU.
 * Run by tests/testbed/vfio/run after bind-edu put edu on vfio-pci:
 *
 *   vfio-edu GROUP_PATH PCI_ADDRESS
 *
 * Why a program and not a Criterion suite: it needs the one edu device of
 * L1 and runs its checks in order on it (each needs the previous state).
 * Prints one "ok"/"FAIL" line per check and ends with "N passed, N failed"
 * (what tests/run-all counts); exit status 1 if any failed.
 *
 * edu's registers (QEMU docs/specs/edu.rst), our own names: BAR0 is 1 MiB,
 * 32-bit accesses below 0x80; a 4 KiB DMA buffer sits at device address
 * 0x40000; the DMA engine reads and writes IOVAs through the IOMMU.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "devices/vfio/vfio.h"
#include "vmm/gmem.h"

#define PCI_COMMAND        0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

#define EDU_ID               0x00
#define EDU_LIVENESS         0x04
#define EDU_FACTORIAL        0x08
#define EDU_STATUS           0x20
#define EDU_STATUS_COMPUTING 0x01
#define EDU_IRQ_STATUS       0x24
#define EDU_IRQ_RAISE        0x60
#define EDU_IRQ_ACK          0x64
#define EDU_DMA_SRC          0x80
#define EDU_DMA_DST          0x88
#define EDU_DMA_COUNT        0x90
#define EDU_DMA_CMD          0x98
#define EDU_DMA_RUN          0x01
#define EDU_DMA_TO_RAM       0x02
#define EDU_BUF              0x40000 /* the device's DMA buffer, 4 KiB */
#define EDU_ID_VALUE         0x010000ed

#define RAM_A        0x200000ull /* mapped for the whole test */
#define RAM_B        0x600000ull /* mapped, then unmapped before a DMA aimed at it */
#define RAM_SIZE     0x200000ull
#define NEVER_MAPPED 0x10000000ull
#define DMA_LEN      256

static int passed, failed;

static void check(bool ok, const char *what)
{
    printf("vfio-edu: %s - %s\n", ok ? "ok" : "FAIL", what);
    fflush(stdout);
    if (ok)
        passed++;
    else
        failed++;
}

static uint32_t rd(const struct vfio_device *d, uint64_t off)
{
    uint32_t v = 0xffffffff;
    if (vfio_region_read(d, VFIO_PCI_BAR0_REGION_INDEX, off, &v, sizeof(v)) < 0)
        return 0xffffffff;
    return v;
}

static bool wr(const struct vfio_device *d, uint64_t off, uint32_t v)
{
    return vfio_region_write(d, VFIO_PCI_BAR0_REGION_INDEX, off, &v, sizeof(v)) == 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait until (reg & mask) == 0; false after `secs`. */
static bool wait_clear(const struct vfio_device *d, uint64_t reg, uint32_t mask, double secs)
{
    double end = now_s() + secs;
    while (now_s() < end) {
        if ((rd(d, reg) & mask) == 0)
            return true;
        usleep(1000);
    }
    return false;
}

/* One edu DMA transfer; true when the engine finished. */
static bool edu_dma(const struct vfio_device *d, uint32_t src, uint32_t dst, uint32_t len,
                    bool to_ram)
{
    return wr(d, EDU_DMA_SRC, src) && wr(d, EDU_DMA_DST, dst) && wr(d, EDU_DMA_COUNT, len) &&
           wr(d, EDU_DMA_CMD, EDU_DMA_RUN | (to_ram ? EDU_DMA_TO_RAM : 0)) &&
           wait_clear(d, EDU_DMA_CMD, EDU_DMA_RUN, 10);
}

static int count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    int n = 0;
    if (dir == NULL)
        return -1;
    while (readdir(dir) != NULL)
        n++;
    closedir(dir);
    return n;
}

static bool all_bytes(const uint8_t *p, size_t len, uint8_t v)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != v)
            return false;
    return true;
}

int main(int argc, char **argv)
{
    struct errbuf err = {0};
    struct vfio_container c;
    struct vfio_device d;
    struct gmem gm = {.fd = -1};
    int kvm = -1, vm = -1, kdev = -1;

    if (argc != 3) {
        fprintf(stderr, "usage: %s GROUP_PATH PCI_ADDRESS\n", argv[0]);
        return 2;
    }
    int fds_before = count_fds();

    int rc = vfio_container_open(&c, NULL, NULL, argv[1], &err);
    check(rc == 0, "container and group open, TYPE1v2 set");
    if (rc < 0) {
        printf("vfio-edu: %s\n", err.msg);
        goto out;
    }
    printf("vfio-edu: IOMMU: %u IOVA ranges, dma_avail %s%u, pgsizes 0x%llx\n", c.nranges,
           c.have_dma_avail ? "" : "(none) ", c.dma_avail, (unsigned long long)c.iova_pgsizes);

    /* kvm-vfio before the device fd is taken (L1 has a /dev/kvm). */
    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    vm = kvm >= 0 ? ioctl(kvm, KVM_CREATE_VM, 0) : -1;
    rc = vm >= 0 ? vfio_kvm_create(NULL, NULL, vm, &kdev, &err) : -1;
    if (rc == 0)
        rc = vfio_kvm_add_group(&c, kdev, &err);
    check(rc == 0, "KVM_CREATE_DEVICE(VFIO) and the group added to it");

    struct gmem_range ranges[] = {{RAM_A, RAM_SIZE}, {RAM_B, RAM_SIZE}};
    rc = gmem_create(&gm, ranges, 2, false, &err);
    if (rc == 0)
        rc = vfio_dma_map_gmem(&c, &gm, &err);
    check(rc == 0 && c.nmaps == 2, "guest RAM (memfd, two ranges) DMA-mapped at IOVA = GPA");
    if (rc < 0)
        printf("vfio-edu: %s\n", err.msg);

    rc = vfio_device_open(&d, &c, argv[2], &err);
    check(rc == 0, "device fd by PCI address, region and IRQ info");
    if (rc < 0) {
        printf("vfio-edu: %s\n", err.msg);
        goto out_container;
    }
    const struct vfio_region *bar0 = &d.regions[VFIO_PCI_BAR0_REGION_INDEX];
    printf("vfio-edu: flags 0x%x, %u regions, %u irqs; BAR0 size 0x%llx flags 0x%x areas %u\n",
           d.flags, d.num_regions, d.num_irqs, (unsigned long long)bar0->size, bar0->flags,
           bar0->nareas);
    check(bar0->size == 0x100000 && (bar0->flags & VFIO_REGION_INFO_FLAG_MMAP),
          "BAR0 is 1 MiB and mmap-able");
    uint16_t vendor = 0;
    rc = vfio_region_read(&d, VFIO_PCI_CONFIG_REGION_INDEX, 0, &vendor, 2);
    check(rc == 0 && vendor == 0x1234, "config space vendor ID 0x1234");
    /* The device's DMA and MSI writes need Bus Master Enable (a guest driver's job). */
    uint16_t cmd = 0;
    rc = vfio_region_read(&d, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd, 2);
    cmd |= PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY;
    if (rc == 0)
        rc = vfio_region_write(&d, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd, 2);
    check(rc == 0, "config space: bus mastering enabled");

    check(rd(&d, EDU_ID) == EDU_ID_VALUE, "ID register 0x010000ed by region read");
    uint32_t big;
    check(vfio_region_read(&d, 0, bar0->size - 2, &big, 4) == -EINVAL,
          "region read past the end refused");

    void *map = NULL;
    size_t maplen = 0;
    rc = vfio_region_mmap(&d, VFIO_PCI_BAR0_REGION_INDEX, 0, &map, &maplen);
    volatile uint32_t *regs = map;
    check(rc == 0 && regs[EDU_ID / 4] == EDU_ID_VALUE, "ID register 0x010000ed by mmap");

    check(wr(&d, EDU_LIVENESS, 0x12345678) && rd(&d, EDU_LIVENESS) == ~0x12345678u,
          "liveness register inverts (region write/read)");
    if (regs != NULL) {
        regs[EDU_LIVENESS / 4] = 0xa5a5f00f;
        check(regs[EDU_LIVENESS / 4] == ~0xa5a5f00fu, "liveness register inverts (mmap)");
    }
    check(wr(&d, EDU_FACTORIAL, 5) && wait_clear(&d, EDU_STATUS, EDU_STATUS_COMPUTING, 5) &&
              rd(&d, EDU_FACTORIAL) == 120,
          "factorial register: 5! = 120");

    /* DMA round trip: RAM_A -> edu buffer -> RAM_A + 4 KiB. */
    uint8_t pattern[DMA_LEN], back[DMA_LEN];
    for (int i = 0; i < DMA_LEN; i++)
        pattern[i] = (uint8_t)(i * 7 + 3);
    bool ok = gmem_write(&gm, RAM_A, pattern, sizeof(pattern)) == 0 &&
              edu_dma(&d, RAM_A, EDU_BUF, DMA_LEN, false) &&
              edu_dma(&d, EDU_BUF, RAM_A + 0x1000, DMA_LEN, true) &&
              gmem_read(&gm, RAM_A + 0x1000, back, sizeof(back)) == 0 &&
              memcmp(pattern, back, DMA_LEN) == 0;
    check(ok, "edu DMA: RAM -> device -> RAM through the IOMMU, data intact");

    /* MSI on an eventfd: raise an interrupt, wait for it, acknowledge. */
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rc = vfio_irq_set_eventfds(&d, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &efd);
    check(rc == 0, "SET_IRQS: MSI vector 0 on an eventfd");
    struct pollfd pfd = {.fd = efd, .events = POLLIN};
    uint64_t cnt = 0;
    ok = wr(&d, EDU_IRQ_RAISE, 0x42) && poll(&pfd, 1, 5000) == 1 &&
         read(efd, &cnt, sizeof(cnt)) == sizeof(cnt) && cnt >= 1 &&
         (rd(&d, EDU_IRQ_STATUS) & 0x42) == 0x42;
    check(ok, "edu's MSI arrives on the eventfd");
    check(wr(&d, EDU_IRQ_ACK, 0x42) && rd(&d, EDU_IRQ_STATUS) == 0, "interrupt acknowledged");
    check(vfio_irq_disable(&d, VFIO_PCI_MSI_IRQ_INDEX) == 0, "MSI disabled");
    check(vfio_irq_set_eventfds(&d, VFIO_PCI_MSI_IRQ_INDEX, 0, 2, (int[]){efd, efd}) == -EINVAL,
          "SET_IRQS beyond the MSI vector count refused");
    close(efd);

    /*
     * DMA must not reach memory the IOMMU does not map: unmap RAM_B, then
     * aim the engine at it and at an IOVA never mapped.
     */
    uint8_t *b = gmem_ptr(&gm, RAM_B, RAM_SIZE);
    rc = vfio_dma_unmap(&c, RAM_B, RAM_SIZE);
    memset(b, 0x5a, RAM_SIZE);
    ok = rc == 0 && edu_dma(&d, EDU_BUF, RAM_B, DMA_LEN, true) &&
         edu_dma(&d, EDU_BUF, NEVER_MAPPED, DMA_LEN, true) && all_bytes(b, RAM_SIZE, 0x5a);
    check(ok, "DMA to an unmapped IOVA does not reach memory");
    ok = gmem_read(&gm, RAM_A + 0x1000, back, sizeof(back)) == 0 &&
         memcmp(pattern, back, DMA_LEN) == 0 &&
         all_bytes(gmem_ptr(&gm, RAM_A + 0x2000, RAM_SIZE - 0x2000), RAM_SIZE - 0x2000, 0);
    check(ok, "mapped RAM untouched by the blocked DMA");

    if (d.flags & VFIO_DEVICE_FLAGS_RESET) {
        check(vfio_device_reset(&d) == 0 && rd(&d, EDU_ID) == EDU_ID_VALUE,
              "VFIO_DEVICE_RESET, device answers afterwards");
    } else {
        check(vfio_device_reset(&d) == -ENOTSUP, "no reset offered: vfio_device_reset says so");
    }

    vfio_device_close(&d);
out_container:
    vfio_container_close(&c);
    check(c.nmaps == 0, "teardown unmapped every DMA mapping");
    if (kdev >= 0)
        close(kdev);
    if (vm >= 0)
        close(vm);
    if (kvm >= 0)
        close(kvm);
out:
    gmem_destroy(&gm);
    check(count_fds() == fds_before, "no file descriptor left open");
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
