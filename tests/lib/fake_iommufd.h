/*
 * A simulated iommufd and VFIO cdev kernel behind struct vfio_sys_ops, for
 * the iommufd transport of devices/vfio/ (vfio_iommufd.c).
 *
 * Why a simulator: Debian's kernels (6.1 on the host, 6.12 in the testbed)
 * are built without CONFIG_IOMMUFD, so no real /dev/iommu exists to test
 * against.  This one enforces the rules the kernel documents
 * (/work/shared/reference/vfio.md §1.3; each check cites its source) and
 * fails the way the kernel does, so a wrong order or a malformed struct in
 * wisp's layer shows up as the kernel's errno.  The device side (regions,
 * IRQs, reset, pread/pwrite, mmap) is fake_vfio's, reached through the
 * cdev once it is bound.  It also records the order of the calls (`log`)
 * and can give hostile answers to IOVA_RANGES.  Test-only; one iommufd and
 * one device at a time.
 */
#ifndef TESTS_LIB_FAKE_IOMMUFD_H
#define TESTS_LIB_FAKE_IOMMUFD_H

#include <stdbool.h>
#include <stdint.h>

#include "tests/lib/fake_vfio.h"

#define FAKE_IOMMUFD_MAX_RANGES 32
#define FAKE_IOMMUFD_MAX_OBJS   16
#define FAKE_IOMMUFD_MAX_AREAS  64
#define FAKE_IOMMUFD_CDEV       "/dev/vfio/devices/vfio0"

struct fake_iommufd_range {
    uint64_t start, last; /* last inclusive */
};

struct fake_iommufd_area {
    uint64_t iova, length, va;
    uint32_t ioas, flags;
};

struct fake_iommufd_obj {
    int kind;       /* 0 free, 1 IOAS, 2 HWPT */
    uint32_t users; /* attached devices (IOAS: its HWPTs) */
    uint32_t ioas;  /* HWPT: the IOAS it was made for */
};

struct fake_iommufd {
    struct fake_vfio v; /* the device behind the cdev, and the fd table */

    /* What the simulated kernel reports. */
    bool no_iommufd; /* /dev/iommu absent (CONFIG_IOMMUFD=n): open is -ENOENT */
    unsigned nranges;
    struct fake_iommufd_range ranges[FAKE_IOMMUFD_MAX_RANGES]; /* the IOAS's allowed IOVAs */
    uint64_t align;                                            /* out_iova_alignment */
    /* Hostile answers: IOVA_RANGES reports this num_iovas (and returns 0) if nonzero. */
    uint32_t lie_num_iovas;

    /* State. */
    int iommu_fd, cdev_fd; /* -1 when closed */
    bool bound, kvm_added;
    uint32_t attached_hwpt;                              /* 0 = detached */
    struct fake_iommufd_obj objs[FAKE_IOMMUFD_MAX_OBJS]; /* id = index + 1 */
    unsigned nareas;
    struct fake_iommufd_area areas[FAKE_IOMMUFD_MAX_AREAS];

    /* What was asked. */
    char log[1024];        /* space-separated events, in order */
    unsigned rejections;   /* calls the simulated kernel refused */
    char last_reject[128]; /* the rule the last refusal enforced */
    bool kvm_after_bind;   /* FILE_ADD came after BIND (vfio.md §1.7 says before) */
    uint32_t last_map_flags;
};

extern const struct vfio_sys_ops fake_iommufd_ops;

/*
 * Defaults: fake_vfio_init's device; /dev/iommu present; two allowed IOVA
 * ranges [0, 0xfedfffff] and [0xfef00000, 2^48 - 1] (the x86 MSI window
 * reserved, vfio.md §1.4); 4 KiB alignment.
 */
void fake_iommufd_init(struct fake_iommufd *f);

/* Number of live IOMMU objects (IOAS + HWPT) and mapped areas: leaks show. */
unsigned fake_iommufd_live_objs(const struct fake_iommufd *f);

#endif /* TESTS_LIB_FAKE_IOMMUFD_H */
