/*
 * A simulated kernel VFIO behind struct vfio_sys_ops (devices/vfio/vfio.h),
 * so the layer's logic and error paths run in the unit tests without
 * /dev/vfio.  It answers the container, group and device ioctls from
 * tables the test fills (region answers are raw bytes, so a test can hand
 * the layer any capability chain, hostile ones included), counts open file
 * descriptors and mappings so leaks show, and records what it was asked.
 * Test-only: misuse aborts.
 */
#ifndef TESTS_LIB_FAKE_VFIO_H
#define TESTS_LIB_FAKE_VFIO_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/vfio/vfio.h"

#define FAKE_VFIO_MAX_FDS 32
#define FAKE_VFIO_ANSWER  1024

struct fake_vfio_map {
    uint64_t iova, size, vaddr;
};

struct fake_vfio {
    /* What the simulated kernel reports (fake_vfio_init: a sane edu-like device). */
    int api_version;
    int type1v2; /* VFIO_CHECK_EXTENSION answer */
    bool viable;
    uint32_t device_flags;
    uint32_t num_regions, num_irqs;
    uint8_t region[VFIO_MAX_REGIONS][FAKE_VFIO_ANSWER]; /* REGION_INFO answers, raw */
    uint32_t region_len[VFIO_MAX_REGIONS];              /* argsz each needs */
    bool grow_argsz;                 /* ask for more again on the second REGION_INFO call */
    uint8_t iommu[FAKE_VFIO_ANSWER]; /* IOMMU_GET_INFO answer, raw */
    uint32_t iommu_len;
    struct vfio_irq_info irqs[VFIO_MAX_IRQS];
    /* With use_config, pread/pwrite of the config region (at 7 << 40) use config[]; else
     * reads return 0xab bytes and writes are dropped. */
    bool use_config;
    uint8_t config[256];
    /* Failure injection: ioctl `fail_req` fails with -fail_errno on call number fail_nth (1 =
     * first). */
    unsigned long fail_req;
    int fail_errno;
    unsigned fail_nth;
    unsigned fail_seen;
    int fail_open_nth; /* the nth open() fails with -ENOENT (0 = never) */

    /* State and what was asked. */
    bool fd_open[FAKE_VFIO_MAX_FDS];
    int fd_kind[FAKE_VFIO_MAX_FDS];
    int nopen, opens;
    int bad_closes;
    unsigned nmaps;
    struct fake_vfio_map maps[64];
    unsigned map_calls, unmap_calls;
    unsigned set_irqs_calls;
    uint8_t last_irq_set[256];
    unsigned reset_calls;
    unsigned preads, pwrites;
    off_t last_off;
    size_t last_len;
    int live_mmaps;
    off_t last_mmap_off;
    size_t last_mmap_len;
    int last_mmap_prot;
    unsigned kvm_creates, kvm_attrs;
    int32_t kvm_group_fd;
};

extern const struct vfio_sys_ops fake_vfio_ops;

/*
 * Defaults: API 0, TYPE1v2, a viable group, a PCI device with reset, 9
 * regions (BAR0 1 MiB read/write/mmap at 0, config 256 bytes at 7<<40, the
 * rest absent) and 5 IRQs (INTx 1, MSI 1, MSI-X 0), IOMMU info without caps.
 */
void fake_vfio_init(struct fake_vfio *f);

/* Set region `index`'s fixed answer (no caps). */
void fake_vfio_region(struct fake_vfio *f, unsigned index, uint32_t flags, uint64_t size,
                      uint64_t offset);

/* Append a capability (`cap` of `len` bytes, header included) to region `index`'s chain. */
void fake_vfio_region_cap(struct fake_vfio *f, unsigned index, const void *cap, uint32_t len);

/* Append a capability to the IOMMU_GET_INFO answer (caps flag set). */
void fake_vfio_iommu_cap(struct fake_vfio *f, const void *cap, uint32_t len);

/*
 * Allocate an fd in the simulated fd table (counted in nopen, closed by
 * fake_vfio_ops.close): a device fd (answers the device ioctls, pread,
 * pwrite, mmap) or, with `device` false, an fd that answers nothing.  For
 * simulators layered on this one (fake_iommufd.h).  fd or -EMFILE.
 */
int fake_vfio_new_fd(struct fake_vfio *f, bool device);

#endif /* TESTS_LIB_FAKE_VFIO_H */
