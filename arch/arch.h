/*
 * The only architecture interface generic code (vmm/) includes.  Each
 * architecture folder implements these functions; the Makefile picks the
 * folder, so generic code carries no #ifdef __x86_64__.  In the other
 * direction, arch code sees the VM only through struct arch_host and the
 * services in it (vmm/services.h), never through struct vm.
 */
#ifndef ARCH_ARCH_H
#define ARCH_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/gmem.h"
#include "vmm/services.h"

struct vm_config;
struct serial;
/* The architecture's per-VM state (opaque to generic code). */
struct arch_vm;
struct irq_routing;
struct pci_bus;

/*
 * What the VM core hands the architecture code.  Arch code never sees
 * struct vm (vmm/vm.h): it reaches the core only through `svc`.
 */
struct arch_host {
    const struct vm_config *cfg;
    int kvm_fd;
    int vm_fd;
    struct gmem *mem;
    const struct vm_services *svc;
};

/*
 * What `wisp run --help` adds for this architecture: a paragraph, ending in a
 * newline, on where the generic option text does not hold (kernel format,
 * refused options).  Never NULL.
 */
const char *arch_run_help_note(void);

/*
 * The option lines of `wisp run --help` that depend on the architecture,
 * each a run of whole lines ending in a newline ("" for none; never NULL),
 * so the generic text lists only what this build can do.
 */
struct arch_run_help {
    const char *kernel;      /* the --kernel line: which image formats */
    const char *machine;     /* after --serial: boot protocol, CPU model options */
    const char *devices;     /* the --device line: how many devices */
    const char *passthrough; /* after the virtio devices: PCI passthrough, ACPI, PCI */
};
const struct arch_run_help *arch_run_help(void);

/* Largest vCPU count the architecture code can describe to a guest. */
unsigned arch_max_vcpus(void);

/* Smallest guest RAM size the layout supports. */
uint64_t arch_min_memory(void);

/*
 * Split `mem_size` bytes of guest RAM into guest-physical ranges around the
 * architecture's holes.  `*n` is the capacity of `out` on entry, the count on exit.
 */
int arch_ram_layout(uint64_t mem_size, struct gmem_range *out, unsigned *n,
                    struct errbuf *err) __must_check;

/*
 * Where virtio-mmio device `index` lives: a page-exclusive MMIO window and
 * an interrupt line (GSI).  Decided here once, in a form the kernel command
 * line, ACPI tables and a device tree can all describe.  -ENOSPC if `index`
 * is beyond the slots the architecture has.
 */
int arch_virtio_slot(unsigned index, uint64_t *base, unsigned *gsi);

/*
 * How many virtio-mmio devices the platform description chosen by `cfg`
 * can carry (on x86: 16 with ACPI, 8 with the MP table and command line).
 */
unsigned arch_virtio_slots(const struct vm_config *cfg);

/*
 * Must the guest learn about virtio-mmio devices from `virtio_mmio.device=`
 * on its command line (no ACPI table or device tree describes them)?
 */
bool arch_virtio_on_cmdline(const struct vm_config *cfg);

/*
 * Before any host resource exists (KVM included), what the architecture can
 * judge from the configuration alone, so that a user's mistake is reported
 * as such even on a host that could not run the VM (vmm/preflight.c).
 * arch_check_config: the vCPU count and memory size against the
 * architecture's limits.  arch_check_kernel: is the kernel file (`len`
 * bytes) in a format the architecture boots, as far as its headers tell.
 * Errors are WISP_EXIT_USAGE.
 */
int arch_check_config(const struct vm_config *cfg, struct errbuf *err) __must_check;
int arch_check_kernel(const uint8_t *img, size_t len, struct errbuf *err) __must_check;

/*
 * The KVM capabilities only this architecture needs (the generic ones are
 * checked by vmm/kvm.c), on the /dev/kvm fd before any VM exists.
 * WISP_EXIT_HOST naming the missing feature.
 */
int arch_check_kvm(int kvm_fd, struct errbuf *err) __must_check;

/*
 * VM-wide setup after guest memory exists: interrupt controllers, timers,
 * the CPU policy.  `host` is copied; what it points to must outlive the
 * arch_vm.  *out is set as soon as the state exists, on failure too: the
 * caller always releases it with arch_vm_destroy.
 */
int arch_vm_init(const struct arch_host *host, struct arch_vm **out,
                 struct errbuf *err) __must_check;

/*
 * Create the architecture's built-in devices (on x86: COM1, i8042, the
 * debug-exit port) and register them on the VM's buses through the
 * services.  The UART's output goes where cfg->serial says.
 */
int arch_create_devices(struct arch_vm *a, struct errbuf *err) __must_check;

/*
 * The UART that carries the console (host input is fed to it with
 * serial_receive), or NULL before arch_create_devices.
 */
struct serial *arch_serial(const struct arch_vm *a);

/*
 * Press Ctrl+Alt+Del on the board's keyboard (Firecracker's SendCtrlAltDel;
 * a Linux guest then reboots, which ends wisp).  Any thread.  0 once the
 * keys are queued; -ENOTSUP where the board has no keyboard (aarch64);
 * -ENODEV without one yet or with the guest's keyboard scanning off;
 * -EAGAIN while the keyboard still holds earlier bytes.
 */
int arch_send_ctrl_alt_del(struct arch_vm *a);

/*
 * Load kernel, initrd and `cmdline` (the final guest command line) and build
 * the boot-time tables.
 */
int arch_load_guest(struct arch_vm *a, const char *cmdline, struct errbuf *err) __must_check;

/*
 * Per-vCPU setup of KVM vCPU `vcpu_fd`, number `index` (0 = boot processor):
 * CPUID, MSRs, registers, FPU.  Runs before the vCPU thread starts.
 */
int arch_vcpu_init(struct arch_vm *a, int vcpu_fd, unsigned index, struct errbuf *err) __must_check;

/*
 * Free what arch_vm_init, arch_create_devices and arch_load_guest made,
 * including the built-in devices and their fds.  NULL is ignored.
 */
void arch_vm_destroy(struct arch_vm *a);

/*
 * KVM's GSI routing table (vmm/irq_routing.h), owned by the arch_vm:
 * arch_vm_init installs the board's wiring; later routes (MSI for
 * passthrough) are added through it and re-committed.
 */
struct irq_routing *arch_irq_routing(struct arch_vm *a);

/*
 * The PCI bus (--pci on), for the device manager to put passthrough
 * functions on after arch_create_devices; NULL without PCI.  The caller
 * runs pci_bus_assign again once its functions are on the bus.  Also the
 * window valid MSI addresses point into.
 */
struct pci_bus *arch_pci_bus(struct arch_vm *a);
#define ARCH_MSI_WINDOW_BASE 0xfee00000ULL
#define ARCH_MSI_WINDOW_SIZE 0x100000ULL

struct mig_registry;
struct mig_machine;

/*
 * Snapshot and migration: register the state this architecture owns with
 * `reg`, in the order a destination must load it: the VM-wide state the
 * kernel keeps (x86: PICs, IOAPIC, PIT, kvmclock), each vCPU (instance =
 * index; vcpu_fds[i] is vCPU i), then the built-in devices.  Call with the
 * vCPUs created (and, to save, parked after completing their last exit).
 * Hooks run on the caller's thread and issue VM and vCPU ioctls.
 */
int arch_mig_register(struct arch_vm *a, const int *vcpu_fds, unsigned nvcpus,
                      struct mig_registry *reg, struct errbuf *err) __must_check;

/* This architecture's id in migration streams (enum mig_arch), for readers without a VM. */
uint16_t arch_mig_id(void);

/* Fill the architecture id and the CPU template name of a machine description. */
void arch_mig_describe(const struct arch_vm *a, struct mig_machine *m);

#endif /* ARCH_ARCH_H */
