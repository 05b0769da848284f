/* KVM device, VM fd, memory slots and irqfds (see kvm.h). */
#include "vmm/kvm.h"
#include "arch/arch.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

const char *kvm_device_path(void)
{
    /* Only for tests of the "no KVM" paths; documented in README. */
    const char *p = getenv("WISP_KVM_DEV");
    return p && p[0] ? p : "/dev/kvm";
}

static const struct {
    int cap;
    const char *name;
} required_caps[] = {
    {KVM_CAP_IRQCHIP, "in-kernel irqchip"},     {KVM_CAP_IRQFD, "irqfd"},
    {KVM_CAP_IOEVENTFD, "ioeventfd"},           {KVM_CAP_USER_MEMORY, "user memory"},
    {KVM_CAP_IMMEDIATE_EXIT, "immediate exit"}, {KVM_CAP_IRQ_ROUTING, "GSI routing"},
};

int kvm_open_vm(struct vm *vm, struct errbuf *err)
{
    const char *path = kvm_device_path();
    vm->kvm_fd = open(path, O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) {
        int e = errno;
        const char *hint = e == ENOENT   ? " (is KVM enabled and the kvm module loaded?)"
                           : e == EACCES ? " (run as root or join the kvm group)"
                                         : "";
        return err_set(err, WISP_EXIT_HOST, e, "cannot open %s: %s%s", path, strerror(e), hint);
    }
    int ver = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
    if (ver != KVM_API_VERSION)
        return err_set(err, WISP_EXIT_HOST, ENOTSUP, "%s: unsupported KVM API version %d", path,
                       ver);
    for (size_t i = 0; i < ARRAY_SIZE(required_caps); i++) {
        if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0)
            return err_set(err, WISP_EXIT_HOST, ENOTSUP, "KVM lacks a required feature: %s",
                           required_caps[i].name);
    }
    /* The architecture's own (x86: PIT, CPUID, TSS address). */
    int ret = arch_check_kvm(vm->kvm_fd, err);
    if (ret < 0)
        return ret;
    int maxv = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (maxv <= 0)
        maxv = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    vm->kvm_max_vcpus = maxv > 0 ? (unsigned)maxv : 1;

    vm->vcpu_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (vm->vcpu_mmap_size < (int)sizeof(struct kvm_run))
        return err_set(err, WISP_EXIT_HOST, EINVAL, "KVM reports a bad vCPU mmap size");

    do {
        vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0UL);
    } while (vm->vm_fd < 0 && errno == EINTR);
    if (vm->vm_fd < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_CREATE_VM failed: %s", strerror(errno));
    return 0;
}

int kvm_map_memory(struct vm *vm, struct errbuf *err)
{
    for (unsigned i = 0; i < vm->mem.nregions; i++) {
        const struct gmem_region *r = &vm->mem.regions[i];
        struct kvm_userspace_memory_region slot = {
            .slot = i,
            .flags = 0,
            .guest_phys_addr = r->gpa,
            .memory_size = r->size,
            .userspace_addr = (uint64_t)(uintptr_t)r->hva,
        };
        if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
            return err_set(err, WISP_EXIT_HOST, errno,
                           "cannot register guest memory 0x%llx+0x%llx with KVM: %s",
                           (unsigned long long)r->gpa, (unsigned long long)r->size,
                           strerror(errno));
    }
    return 0;
}

_Static_assert(KVM_SLOT_DEVICE_FIRST >= GMEM_MAX_REGIONS, "device slots follow RAM slots");
_Static_assert(KVM_SLOTS_DEVICE <= 32, "one 32-bit bitmap of device slots");

int kvm_dev_slot_add(struct vm *vm, uint64_t gpa, uint64_t size, void *hva, unsigned *slot)
{
    uint64_t page = 4096;
    if (!size || (gpa | size | (uintptr_t)hva) & (page - 1) || gpa + size < gpa)
        return -EINVAL;
    for (unsigned i = 0; i < vm->mem.nregions; i++) {
        const struct gmem_region *r = &vm->mem.regions[i];
        if (gpa < r->gpa + r->size && r->gpa < gpa + size)
            return -EINVAL; /* never over guest RAM */
    }
    uint32_t used = atomic_load(&vm->dev_slots);
    unsigned i;
    do {
        for (i = 0; i < KVM_SLOTS_DEVICE && (used >> i & 1); i++)
            ;
        if (i == KVM_SLOTS_DEVICE)
            return -ENOSPC;
    } while (!atomic_compare_exchange_weak(&vm->dev_slots, &used, used | 1U << i));
    struct kvm_userspace_memory_region s = {
        .slot = KVM_SLOT_DEVICE_FIRST + i,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uint64_t)(uintptr_t)hva,
    };
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &s) < 0) {
        int e = errno;
        atomic_fetch_and(&vm->dev_slots, ~(1U << i));
        return -e;
    }
    *slot = KVM_SLOT_DEVICE_FIRST + i;
    return 0;
}

void kvm_dev_slot_remove(struct vm *vm, unsigned slot)
{
    unsigned i = slot - KVM_SLOT_DEVICE_FIRST;
    if (slot < KVM_SLOT_DEVICE_FIRST || i >= KVM_SLOTS_DEVICE ||
        !(atomic_load(&vm->dev_slots) >> i & 1))
        return;
    struct kvm_userspace_memory_region s = {.slot = slot, .memory_size = 0};
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &s) < 0)
        log_error("cannot remove device memory slot %u: %s", slot, strerror(errno));
    atomic_fetch_and(&vm->dev_slots, ~(1U << i));
}

int kvm_slot_set_logging(struct vm *vm, unsigned slot, bool on)
{
    if (slot >= vm->mem.nregions)
        return -EINVAL;
    const struct gmem_region *r = &vm->mem.regions[slot];
    struct kvm_userspace_memory_region s = {
        .slot = slot,
        .flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
        .guest_phys_addr = r->gpa,
        .memory_size = r->size,
        .userspace_addr = (uint64_t)(uintptr_t)r->hva,
    };
    return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &s) < 0 ? -errno : 0;
}

int kvm_slot_get_dirty_log(struct vm *vm, unsigned slot, uint64_t *bitmap, size_t words)
{
    if (slot >= vm->mem.nregions)
        return -EINVAL;
    /* KVM writes one bit per page of the slot, rounded up to 64 bits. */
    uint64_t pages = vm->mem.regions[slot].size / PAGE_SIZE;
    if (words != (pages + 63) / 64)
        return -EINVAL;
    struct kvm_dirty_log log = {.slot = slot, .dirty_bitmap = bitmap};
    return ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0 ? -errno : 0;
}

int kvm_irqfd_bind(struct vm *vm, int fd, unsigned gsi, bool assign)
{
    struct kvm_irqfd irqfd = {
        .fd = (uint32_t)fd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};
    return ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

int kvm_irqfd_create(struct vm *vm, unsigned gsi, int *fd, struct errbuf *err)
{
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "eventfd: %s", strerror(errno));
    struct kvm_irqfd irqfd = {.fd = (uint32_t)efd, .gsi = gsi};
    if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
        int e = errno;
        close(efd);
        return err_set(err, WISP_EXIT_HOST, e, "KVM_IRQFD for GSI %u failed: %s", gsi, strerror(e));
    }
    *fd = efd;
    return 0;
}

int kvm_ioeventfd(struct vm *vm, uint64_t addr, unsigned len, uint64_t datamatch, int fd,
                  bool assign)
{
    /* KVM needs a width to compare the datamatch against. */
    if ((len != 1 && len != 2 && len != 4 && len != 8) || fd < 0)
        return -EINVAL;
    struct kvm_ioeventfd io = {
        .datamatch = datamatch,
        .addr = addr,
        .len = len,
        .fd = fd,
        .flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
    };
    if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0)
        return -errno;
    return 0;
}

void kvm_irq_pulse(int irqfd)
{
    /* KVM asserts and deasserts the GSI for each eventfd signal. */
    uint64_t one = 1;
    ssize_t r __unused = write(irqfd, &one, sizeof(one));
}
