/*
 * The simulator of tests/lib/fake_iommufd.h enforces the kernel's documented
 * iommufd/cdev rules: one test per rule, each making the forbidden call
 * directly and expecting the kernel's errno.  test_vfio_iommufd.c shows that
 * wisp's layer never makes these calls; these show that if it did, the
 * simulator would catch it.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>

#include "devices/vfio/iommufd_uapi.h"
#include "tests/lib/fake_iommufd.h"

static struct fake_iommufd f;
static const struct vfio_sys_ops *o = &fake_iommufd_ops;
static int ifd, cdev;
static uint32_t ioas;

static int io(int fd, unsigned long req, void *arg)
{
    return o->ioctl(&f, fd, req, (uintptr_t)arg);
}

static void init(void)
{
    fake_iommufd_init(&f);
    ifd = o->open(&f, "/dev/iommu", O_RDWR);
    cdev = o->open(&f, FAKE_IOMMUFD_CDEV, O_RDWR);
    cr_assert_geq(ifd, 0);
    cr_assert_geq(cdev, 0);
    struct iommu_ioas_alloc a = {.size = sizeof(a)};
    cr_assert_eq(io(ifd, IOMMU_IOAS_ALLOC, &a), 0);
    ioas = a.out_ioas_id;
}

TestSuite(fake_iommufd, .init = init);

static void bind(void)
{
    struct vfio_device_bind_iommufd b = {.argsz = sizeof(b), .iommufd = ifd};
    cr_assert_eq(io(cdev, VFIO_DEVICE_BIND_IOMMUFD, &b), 0, "%s", f.last_reject);
}

static void attach(void)
{
    struct vfio_device_attach_iommufd_pt a = {.argsz = sizeof(a), .pt_id = ioas};
    cr_assert_eq(io(cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a), 0, "%s", f.last_reject);
}

static int map(uint64_t iova, uint64_t len)
{
    struct iommu_ioas_map m = {
        .size = sizeof(m),
        .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
        .ioas_id = ioas,
        .user_va = 0x7f0000000000ull,
        .length = len,
        .iova = iova,
    };
    return io(ifd, IOMMU_IOAS_MAP, &m);
}

static int unmap(uint64_t iova, uint64_t len)
{
    struct iommu_ioas_unmap u = {.size = sizeof(u), .ioas_id = ioas, .iova = iova, .length = len};
    return io(ifd, IOMMU_IOAS_UNMAP, &u);
}

Test(fake_iommufd, size_too_small)
{
    struct iommu_ioas_alloc a = {.size = 8};
    cr_assert_eq(io(ifd, IOMMU_IOAS_ALLOC, &a), -EINVAL);
}

Test(fake_iommufd, unknown_trailing_bytes)
{
    uint8_t buf[32] = {0};
    struct iommu_ioas_alloc a = {.size = sizeof(buf)};
    memcpy(buf, &a, sizeof(a));
    buf[20] = 1;
    cr_assert_eq(io(ifd, IOMMU_IOAS_ALLOC, buf), -E2BIG);
    buf[20] = 0;
    cr_assert_eq(io(ifd, IOMMU_IOAS_ALLOC, buf), 0, "zero tail bytes are fine");
}

Test(fake_iommufd, alloc_flags)
{
    struct iommu_ioas_alloc a = {.size = sizeof(a), .flags = 1};
    cr_assert_eq(io(ifd, IOMMU_IOAS_ALLOC, &a), -EOPNOTSUPP);
}

Test(fake_iommufd, map_unknown_flag_and_reserved)
{
    struct iommu_ioas_map m = {.size = sizeof(m),
                               .flags = IOMMU_IOAS_MAP_FIXED_IOVA | 0x80,
                               .ioas_id = ioas,
                               .length = 0x1000};
    cr_assert_eq(io(ifd, IOMMU_IOAS_MAP, &m), -EOPNOTSUPP);
    m.flags = IOMMU_IOAS_MAP_FIXED_IOVA;
    m.__reserved = 1;
    cr_assert_eq(io(ifd, IOMMU_IOAS_MAP, &m), -EOPNOTSUPP);
}

Test(fake_iommufd, device_ioctl_before_bind)
{
    struct vfio_device_info di = {.argsz = sizeof(di)};
    cr_assert_eq(io(cdev, VFIO_DEVICE_GET_INFO, &di), -EINVAL);
    uint8_t b[4];
    cr_assert_eq(o->pread(&f, cdev, b, 4, 0), -EINVAL);
    void *p;
    cr_assert_eq(o->mmap(&f, cdev, 0, 4096, 0, &p), -EINVAL);
    bind();
    cr_assert_eq(io(cdev, VFIO_DEVICE_GET_INFO, &di), 0);
}

Test(fake_iommufd, attach_before_bind)
{
    struct vfio_device_attach_iommufd_pt a = {.argsz = sizeof(a), .pt_id = ioas};
    cr_assert_eq(io(cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a), -EINVAL);
    cr_assert(strstr(f.last_reject, "before BIND"));
}

Test(fake_iommufd, bind_twice)
{
    bind();
    struct vfio_device_bind_iommufd b = {.argsz = sizeof(b), .iommufd = ifd};
    cr_assert_eq(io(cdev, VFIO_DEVICE_BIND_IOMMUFD, &b), -EINVAL);
}

Test(fake_iommufd, bind_bad_argsz_or_flags)
{
    struct vfio_device_bind_iommufd b = {.argsz = 12, .iommufd = ifd};
    cr_assert_eq(io(cdev, VFIO_DEVICE_BIND_IOMMUFD, &b), -EINVAL);
    b.argsz = sizeof(b);
    b.flags = 1;
    cr_assert_eq(io(cdev, VFIO_DEVICE_BIND_IOMMUFD, &b), -EINVAL);
}

Test(fake_iommufd, map_outside_ranges)
{
    cr_assert_eq(map(0xfee00000ull, 0x1000), -EINVAL, "the MSI window");
    cr_assert_eq(map(0xfedff000ull, 0x2000), -EINVAL, "straddles two ranges");
    cr_assert_eq(map(0xfedff000ull, 0x1000), 0);
}

Test(fake_iommufd, map_unaligned_or_empty)
{
    cr_assert_eq(map(0x800, 0x1000), -EINVAL);
    cr_assert_eq(map(0x1000, 0x800), -EINVAL);
    cr_assert_eq(map(0x1000, 0), -EINVAL);
}

Test(fake_iommufd, map_overlap)
{
    cr_assert_eq(map(0x10000, 0x10000), 0);
    cr_assert_eq(map(0x18000, 0x10000), -EEXIST);
    cr_assert_eq(map(0x20000, 0x10000), 0, "adjacent is fine");
}

Test(fake_iommufd, unmap_not_mapped_or_partial)
{
    cr_assert_eq(unmap(0x10000, 0x1000), -ENOENT);
    cr_assert_eq(map(0x10000, 0x10000), 0);
    cr_assert_eq(unmap(0x10000, 0x1000), -ENOENT, "cuts a mapping");
    cr_assert_eq(unmap(0x10000, 0x10000), 0);
    cr_assert_eq(map(0x10000, 0x10000), 0);
    cr_assert_eq(unmap(0, UINT64_MAX), 0, "everything");
    cr_assert_eq(f.nareas, 0);
}

Test(fake_iommufd, destroy_attached_ioas)
{
    bind();
    attach();
    struct iommu_destroy d = {.size = sizeof(d), .id = ioas};
    cr_assert_eq(io(ifd, IOMMU_DESTROY, &d), -EBUSY);
    struct vfio_device_detach_iommufd_pt dt = {.argsz = sizeof(dt)};
    cr_assert_eq(io(cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt), 0);
    cr_assert_eq(io(ifd, IOMMU_DESTROY, &d), 0);
    cr_assert_eq(io(ifd, IOMMU_DESTROY, &d), -ENOENT, "gone");
}

Test(fake_iommufd, ranges_buffer_too_small)
{
    struct iommu_iova_range r[1];
    struct iommu_ioas_iova_ranges q = {.size = sizeof(q),
                                       .ioas_id = ioas,
                                       .num_iovas = 1,
                                       .allowed_iovas = (uint64_t)(uintptr_t)r};
    cr_assert_eq(io(ifd, IOMMU_IOAS_IOVA_RANGES, &q), -EMSGSIZE);
    cr_assert_eq(q.num_iovas, 2, "the count needed");
}

Test(fake_iommufd, kvm_file_add_takes_the_cdev)
{
    struct kvm_create_device cd = {.type = KVM_DEV_TYPE_VFIO};
    cr_assert_eq(io(7, KVM_CREATE_DEVICE, &cd), 0);
    int32_t file = cdev;
    struct kvm_device_attr a = {.group = KVM_DEV_VFIO_FILE,
                                .attr = KVM_DEV_VFIO_FILE_ADD,
                                .addr = (uint64_t)(uintptr_t)&file};
    cr_assert_eq(io((int)cd.fd, KVM_SET_DEVICE_ATTR, &a), 0);
    cr_assert(f.kvm_added);
    bind();
    cr_assert(!f.kvm_after_bind);
}
