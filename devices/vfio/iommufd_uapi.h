/*
 * The iommufd and VFIO-cdev kernel ABI that Debian 12's linux-libc-dev (6.1)
 * lacks: <linux/iommufd.h> does not exist there, and <linux/vfio.h> has no
 * BIND/ATTACH/DETACH ioctls for /dev/vfio/devices/vfioN.
 *
 * Why written here: the project builds against the distribution's 6.1
 * headers, while the cdev API arrived in Linux 6.6.  These definitions are
 * this project's own rendering of the documented ABI
 * (/work/shared/reference/vfio.md §1.3 and appendix A; the kernel's
 * Documentation/userspace-api/iommufd.rst): every ioctl is _IO(';', n)
 * with no size encoded, every iommufd struct starts with a u32 `size`
 * (the caller's struct size), every VFIO struct with a u32 `argsz`.
 * Sizes are pinned with _Static_assert so a layout slip fails the build.
 * Prefixes follow the kernel's names (IOMMU_*, VFIO_*) because they are the
 * ABI's names; everything is guarded so a newer header wins.
 */
#ifndef DEVICES_VFIO_IOMMUFD_UAPI_H
#define DEVICES_VFIO_IOMMUFD_UAPI_H

#include <linux/ioctl.h>
#include <linux/kvm.h>
#include <linux/types.h>
#include <linux/vfio.h>

/* ---- /dev/iommu (iommufd, Linux >= 6.2) ---------------------------------------------------- */

#ifndef IOMMUFD_TYPE
#define IOMMUFD_TYPE ';' /* shares VFIO's ioctl type; commands start at 0x80 */

/* Destroy an object (IOAS, HWPT, ...) by id.  EBUSY while it has users. */
#define IOMMU_DESTROY          _IO(IOMMUFD_TYPE, 0x80)
#define IOMMU_IOAS_ALLOC       _IO(IOMMUFD_TYPE, 0x81)
#define IOMMU_IOAS_IOVA_RANGES _IO(IOMMUFD_TYPE, 0x84)
#define IOMMU_IOAS_MAP         _IO(IOMMUFD_TYPE, 0x85)
#define IOMMU_IOAS_UNMAP       _IO(IOMMUFD_TYPE, 0x86)

struct iommu_destroy {
    __u32 size;
    __u32 id;
};

/* flags must be 0; out_ioas_id is the new IOAS. */
struct iommu_ioas_alloc {
    __u32 size;
    __u32 flags;
    __u32 out_ioas_id;
};

/* One allowed IOVA interval; `last` is inclusive. */
struct iommu_iova_range {
    __aligned_u64 start;
    __aligned_u64 last;
};

/*
 * In: num_iovas = entries the array at allowed_iovas (a user pointer) can
 * hold.  Out: num_iovas = how many ranges exist (EMSGSIZE when more than
 * fitted), out_iova_alignment = the smallest page the mappings must use.
 */
struct iommu_ioas_iova_ranges {
    __u32 size;
    __u32 ioas_id;
    __u32 num_iovas;
    __u32 __reserved;
    __aligned_u64 allowed_iovas;
    __aligned_u64 out_iova_alignment;
};

#define IOMMU_IOAS_MAP_FIXED_IOVA (1u << 0)
#define IOMMU_IOAS_MAP_WRITEABLE  (1u << 1)
#define IOMMU_IOAS_MAP_READABLE   (1u << 2)

struct iommu_ioas_map {
    __u32 size;
    __u32 flags;
    __u32 ioas_id;
    __u32 __reserved;
    __aligned_u64 user_va;
    __aligned_u64 length;
    __aligned_u64 iova; /* in with FIXED_IOVA, else out */
};

/* iova 0 / length U64_MAX unmaps everything; else whole earlier mappings only. */
struct iommu_ioas_unmap {
    __u32 size;
    __u32 ioas_id;
    __aligned_u64 iova;
    __aligned_u64 length; /* out: bytes unmapped */
};

_Static_assert(sizeof(struct iommu_destroy) == 8, "iommu_destroy ABI");
_Static_assert(sizeof(struct iommu_ioas_alloc) == 12, "iommu_ioas_alloc ABI");
_Static_assert(sizeof(struct iommu_iova_range) == 16, "iommu_iova_range ABI");
_Static_assert(sizeof(struct iommu_ioas_iova_ranges) == 32, "iommu_ioas_iova_ranges ABI");
_Static_assert(sizeof(struct iommu_ioas_map) == 40, "iommu_ioas_map ABI");
_Static_assert(sizeof(struct iommu_ioas_unmap) == 24, "iommu_ioas_unmap ABI");
#endif /* IOMMUFD_TYPE */

/* ---- /dev/vfio/devices/vfioN (VFIO cdev, Linux >= 6.6) ------------------------------------- */

#ifndef VFIO_DEVICE_BIND_IOMMUFD
/* Grant this fd access to the device through iommufd `iommufd`. */
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
/* Attach the bound device to an IOAS or HWPT (`pt_id`; out: the HWPT used). */
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)
#define VFIO_DEVICE_DETACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 20)

struct vfio_device_bind_iommufd {
    __u32 argsz;
    __u32 flags; /* 0 */
    __s32 iommufd;
    __u32 out_devid;
};

struct vfio_device_attach_iommufd_pt {
    __u32 argsz;
    __u32 flags; /* 0 */
    __u32 pt_id;
};

struct vfio_device_detach_iommufd_pt {
    __u32 argsz;
    __u32 flags; /* 0 */
};

_Static_assert(sizeof(struct vfio_device_bind_iommufd) == 16, "bind_iommufd ABI");
_Static_assert(sizeof(struct vfio_device_attach_iommufd_pt) == 12, "attach_iommufd_pt ABI");
_Static_assert(sizeof(struct vfio_device_detach_iommufd_pt) == 8, "detach_iommufd_pt ABI");
#endif /* VFIO_DEVICE_BIND_IOMMUFD */

/* ---- kvm-vfio ------------------------------------------------------------------------------- */

/*
 * Linux 6.6 renamed the kvm-vfio GROUP attribute to FILE (it takes a group
 * or a cdev fd); the values are the same as GROUP/GROUP_ADD in 6.1.
 */
#ifndef KVM_DEV_VFIO_FILE
#define KVM_DEV_VFIO_FILE     1
#define KVM_DEV_VFIO_FILE_ADD 1
#define KVM_DEV_VFIO_FILE_DEL 2
#endif

_Static_assert(VFIO_DEVICE_BIND_IOMMUFD == 0x3B76, "vfio.md appendix A");
_Static_assert(IOMMU_IOAS_MAP == 0x3B85, "vfio.md appendix A");

#endif /* DEVICES_VFIO_IOMMUFD_UAPI_H */
