/*
 * The raw-KVM floor for the boot benchmark: the least a VMM must do to run
 * the test guest once -- open /dev/kvm, create a VM with anonymous memory and
 * one vCPU, copy the ELF's PT_LOAD segments, enter the PVH entry with a
 * minimal start info, and run until the guest writes the debug-exit port.
 * No irqchip, no devices, no validation beyond what keeps it from crashing:
 * it exists only to show how close wisp gets to the cost of KVM itself.
 *
 * Usage: rawkvm GUEST.elf "command line" [irqchip]
 * Exit status = the debug-exit value.  With "irqchip" it also creates the
 * in-kernel irqchip and PIT, as any VMM that boots Linux must: that shows
 * what those KVM objects cost (mostly at VM teardown) apart from wisp.
 * Prints {"stop_monotonic_ns":N} on stderr when the guest exits.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE        (256ULL << 20)
#define START_INFO      0x6000
#define CMDLINE         0x7000
#define COM1_THR        0x3F8 /* serial transmit register */
#define DEBUG_EXIT_PORT 0xf4

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Find the PVH entry note (name "Xen", type 18) in the PT_NOTE segments. */
static uint32_t pvh_entry(const uint8_t *img, size_t len, const Elf64_Ehdr *eh)
{
    for (int i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = (const void *)(img + eh->e_phoff + (size_t)i * sizeof(*ph));
        if (ph->p_type != PT_NOTE || ph->p_offset + ph->p_filesz > len)
            continue;
        size_t off = ph->p_offset, end = ph->p_offset + ph->p_filesz;
        while (off + 12 <= end) {
            const uint32_t *n = (const void *)(img + off);
            size_t name = (n[0] + 3) & ~3u, desc = (n[1] + 3) & ~3u;
            if (n[2] == 18 && n[0] == 4 && !memcmp(img + off + 12, "Xen", 4)) {
                uint32_t e;
                memcpy(&e, img + off + 12 + name, 4);
                return e;
            }
            off += 12 + name + desc;
        }
    }
    fprintf(stderr, "rawkvm: no PVH note\n");
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: rawkvm GUEST.elf CMDLINE\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        die("open guest");
    const uint8_t *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (img == MAP_FAILED)
        die("mmap guest");
    const Elf64_Ehdr *eh = (const void *)img;

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        die("/dev/kvm");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        die("KVM_CREATE_VM");
    uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        die("mmap memory");
    struct kvm_userspace_memory_region region = {.slot = 0,
                                                 .guest_phys_addr = 0,
                                                 .memory_size = MEM_SIZE,
                                                 .userspace_addr = (uint64_t)(uintptr_t)mem};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        die("KVM_SET_USER_MEMORY_REGION");
    if (argc > 3 && !strcmp(argv[3], "irqchip")) {
        struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
        if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0 || ioctl(vm, KVM_CREATE_PIT2, &pit) < 0)
            die("irqchip");
    }
    if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0)
        die("KVM_SET_TSS_ADDR");

    for (int i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = (const void *)(img + eh->e_phoff + (size_t)i * sizeof(*ph));
        if (ph->p_type == PT_LOAD && ph->p_paddr + ph->p_memsz <= MEM_SIZE)
            memcpy(mem + ph->p_paddr, img + ph->p_offset, ph->p_filesz);
    }
    /* hvm_start_info: magic, version 1, cmdline; no memory map. */
    uint32_t *si = (uint32_t *)(mem + START_INFO);
    si[0] = 0x336ec578;
    si[1] = 1;
    uint64_t cmd = CMDLINE;
    memcpy(mem + START_INFO + 24, &cmd, 8);
    strncpy((char *)mem + CMDLINE, argv[2], 4095);

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        die("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        die("mmap run");
    /* The guest asks CPUID about long mode, so give it KVM's table. */
    struct {
        struct kvm_cpuid2 c;
        struct kvm_cpuid_entry2 e[256];
    } cpuid = {.c.nent = 256};
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid) < 0 || ioctl(vcpu, KVM_SET_CPUID2, &cpuid) < 0)
        die("CPUID");

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
        die("KVM_GET_SREGS");
    struct kvm_segment code = {.base = 0,
                               .limit = 0xffffffff,
                               .selector = 0x8,
                               .type = 11,
                               .present = 1,
                               .s = 1,
                               .db = 1,
                               .g = 1};
    struct kvm_segment data = code;
    data.type = 3;
    data.selector = 0x10;
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.cr0 = 0x11; /* PE | ET */
    sregs.cr4 = 0;
    sregs.efer = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
        die("KVM_SET_SREGS");
    struct kvm_regs regs = {
        .rip = pvh_entry(img, (size_t)st.st_size, eh), .rbx = START_INFO, .rflags = 2};
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        die("KVM_SET_REGS");

    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0)
            die("KVM_RUN");
        if (run->exit_reason == KVM_EXIT_IO && run->io.port == DEBUG_EXIT_PORT &&
            run->io.direction == KVM_EXIT_IO_OUT) {
            /* Same clock as wisp's --stats stop_monotonic_ns: exec -> guest exit. */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            fprintf(stderr, "{\"stop_monotonic_ns\":%llu}\n",
                    (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec);
            return *((uint8_t *)run + run->io.data_offset);
        }
        if (run->exit_reason == KVM_EXIT_IO && run->io.port == COM1_THR &&
            run->io.direction == KVM_EXIT_IO_OUT && run->io.size == 1) {
            /* Serial output goes to stdout unbuffered, as a VMM's would. */
            ssize_t w = write(STDOUT_FILENO, (uint8_t *)run + run->io.data_offset, 1);
            (void)w;
            continue;
        }
        if (run->exit_reason == KVM_EXIT_IO || run->exit_reason == KVM_EXIT_MMIO)
            continue; /* other port and MMIO accesses: ignored */
        fprintf(stderr, "rawkvm: exit reason %u\n", run->exit_reason);
        return 1;
    }
}
