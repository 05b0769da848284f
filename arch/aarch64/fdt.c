/*
 * Device tree construction for aarch64 guests (fdt.h) with libfdt's
 * sequential-write API.  The shape follows the upstream bindings: cpus with
 * PSCI, a GICv3 with one redistributor region, the architected timer, a
 * 16550 UART and one virtio-mmio node per device.
 */
#include "arch/aarch64/fdt.h"
#include "arch/aarch64/layout.h"

#include <errno.h>
#include <libfdt.h>
#include <stdio.h>
#include <string.h>

/* Property helpers: each returns libfdt's 0 or negative FDT_ERR_*. */
static int prop_u64_pair(void *fdt, const char *name, uint64_t a, uint64_t b)
{
    fdt64_t v[2] = {cpu_to_fdt64(a), cpu_to_fdt64(b)};
    return fdt_property(fdt, name, v, sizeof(v));
}

static int prop_irq(void *fdt, unsigned type, unsigned num, unsigned flags)
{
    fdt32_t v[3] = {cpu_to_fdt32(type), cpu_to_fdt32(num), cpu_to_fdt32(flags)};
    return fdt_property(fdt, "interrupts", v, sizeof(v));
}

/* Begin node "name@base" (hex unit address). */
static int begin_unit(void *fdt, const char *name, uint64_t base)
{
    char n[64];
    snprintf(n, sizeof(n), "%s@%llx", name, (unsigned long long)base);
    return fdt_begin_node(fdt, n);
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int r_ = (x);                                                                              \
        if (r_ < 0)                                                                                \
            return r_;                                                                             \
    } while (0)

static int add_cpus(void *fdt, unsigned nvcpus)
{
    TRY(fdt_begin_node(fdt, "cpus"));
    TRY(fdt_property_u32(fdt, "#address-cells", 1));
    TRY(fdt_property_u32(fdt, "#size-cells", 0));
    for (unsigned i = 0; i < nvcpus; i++) {
        /* KVM's MPIDR for vCPU i: Aff0 = i[3:0], Aff1 = i[11:4]. */
        uint32_t mpidr = (i & 0xfU) | ((i >> 4) & 0xffU) << 8;
        TRY(begin_unit(fdt, "cpu", mpidr));
        TRY(fdt_property_string(fdt, "device_type", "cpu"));
        TRY(fdt_property_string(fdt, "compatible", "arm,arm-v8"));
        TRY(fdt_property_string(fdt, "enable-method", "psci"));
        TRY(fdt_property_u32(fdt, "reg", mpidr));
        TRY(fdt_end_node(fdt));
    }
    return fdt_end_node(fdt);
}

static int add_psci(void *fdt)
{
    static const char compat[] = "arm,psci-1.0\0arm,psci-0.2";
    TRY(fdt_begin_node(fdt, "psci"));
    TRY(fdt_property(fdt, "compatible", compat, sizeof(compat)));
    TRY(fdt_property_string(fdt, "method", "hvc"));
    return fdt_end_node(fdt);
}

static int add_gic(void *fdt, const struct a64_fdt_desc *d)
{
    fdt64_t reg[4] = {cpu_to_fdt64(d->gicd_base), cpu_to_fdt64(d->gicd_size),
                      cpu_to_fdt64(d->gicr_base), cpu_to_fdt64(d->gicr_size)};
    TRY(begin_unit(fdt, "intc", d->gicd_base));
    TRY(fdt_property_string(fdt, "compatible", "arm,gic-v3"));
    TRY(fdt_property_u32(fdt, "#interrupt-cells", 3));
    TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
    /* An interrupt provider states its address cells (an ITS would be a child). */
    TRY(fdt_property_u32(fdt, "#address-cells", 2));
    TRY(fdt_property_u32(fdt, "#size-cells", 2));
    TRY(fdt_property(fdt, "ranges", NULL, 0));
    TRY(fdt_property_u32(fdt, "#redistributor-regions", 1));
    TRY(fdt_property(fdt, "reg", reg, sizeof(reg)));
    TRY(prop_irq(fdt, A64_FDT_IRQ_PPI, A64_PPI_GIC_MAINT, A64_FDT_IRQ_LEVEL_HIGH));
    TRY(fdt_property_u32(fdt, "phandle", A64_FDT_GIC_PHANDLE));
    return fdt_end_node(fdt);
}

static int add_timer(void *fdt)
{
    static const unsigned ppis[4] = {A64_PPI_TIMER_SEC, A64_PPI_TIMER_PHYS, A64_PPI_TIMER_VIRT,
                                     A64_PPI_TIMER_HYP};
    fdt32_t v[12];
    for (unsigned i = 0; i < 4; i++) {
        v[i * 3] = cpu_to_fdt32(A64_FDT_IRQ_PPI);
        v[i * 3 + 1] = cpu_to_fdt32(ppis[i]);
        v[i * 3 + 2] = cpu_to_fdt32(A64_FDT_IRQ_LEVEL_HIGH);
    }
    TRY(fdt_begin_node(fdt, "timer"));
    TRY(fdt_property_string(fdt, "compatible", "arm,armv8-timer"));
    TRY(fdt_property(fdt, "always-on", NULL, 0));
    TRY(fdt_property(fdt, "interrupts", v, sizeof(v)));
    return fdt_end_node(fdt);
}

static int add_uart(void *fdt, const struct a64_fdt_desc *d)
{
    TRY(begin_unit(fdt, "uart", d->uart.base));
    TRY(fdt_property_string(fdt, "compatible", "ns16550a"));
    TRY(prop_u64_pair(fdt, "reg", d->uart.base, d->uart.size));
    TRY(fdt_property_u32(fdt, "clock-frequency", d->uart_clock));
    TRY(fdt_property_u32(fdt, "reg-shift", 0));
    TRY(fdt_property_u32(fdt, "reg-io-width", 1));
    TRY(prop_irq(fdt, A64_FDT_IRQ_SPI, d->uart.spi, A64_FDT_IRQ_EDGE_RISE));
    return fdt_end_node(fdt);
}

static int add_virtio(void *fdt, const struct a64_fdt_mmio *m)
{
    TRY(begin_unit(fdt, "virtio_mmio", m->base));
    TRY(fdt_property_string(fdt, "compatible", "virtio,mmio"));
    TRY(prop_u64_pair(fdt, "reg", m->base, m->size));
    TRY(prop_irq(fdt, A64_FDT_IRQ_SPI, m->spi, A64_FDT_IRQ_EDGE_RISE));
    TRY(fdt_property(fdt, "dma-coherent", NULL, 0));
    return fdt_end_node(fdt);
}

static int add_chosen(void *fdt, const struct a64_fdt_desc *d)
{
    char path[64];
    snprintf(path, sizeof(path), "/uart@%llx", (unsigned long long)d->uart.base);
    TRY(fdt_begin_node(fdt, "chosen"));
    if (d->bootargs)
        TRY(fdt_property_string(fdt, "bootargs", d->bootargs));
    TRY(fdt_property_string(fdt, "stdout-path", path));
    if (d->initrd) {
        TRY(fdt_property_u64(fdt, "linux,initrd-start", d->initrd_start));
        TRY(fdt_property_u64(fdt, "linux,initrd-end", d->initrd_end));
    }
    return fdt_end_node(fdt);
}

static int build(const struct a64_fdt_desc *d, void *fdt, size_t size)
{
    TRY(fdt_create(fdt, (int)size));
    TRY(fdt_finish_reservemap(fdt));
    TRY(fdt_begin_node(fdt, ""));
    TRY(fdt_property_string(fdt, "compatible", "linux,dummy-virt"));
    TRY(fdt_property_string(fdt, "model", "wisp"));
    TRY(fdt_property_u32(fdt, "#address-cells", 2));
    TRY(fdt_property_u32(fdt, "#size-cells", 2));
    TRY(fdt_property_u32(fdt, "interrupt-parent", A64_FDT_GIC_PHANDLE));
    TRY(add_chosen(fdt, d));
    TRY(begin_unit(fdt, "memory", d->mem_base));
    TRY(fdt_property_string(fdt, "device_type", "memory"));
    TRY(prop_u64_pair(fdt, "reg", d->mem_base, d->mem_size));
    TRY(fdt_end_node(fdt));
    TRY(add_cpus(fdt, d->nvcpus));
    TRY(add_psci(fdt));
    TRY(add_gic(fdt, d));
    TRY(add_timer(fdt));
    TRY(add_uart(fdt, d));
    for (unsigned i = 0; i < d->nvirtio; i++)
        TRY(add_virtio(fdt, &d->virtio[i]));
    TRY(fdt_end_node(fdt));
    TRY(fdt_finish(fdt));
    return fdt_pack(fdt);
}

int a64_fdt_build(const struct a64_fdt_desc *d, void *buf, size_t size, struct errbuf *err)
{
    if (d->nvcpus == 0 || d->nvcpus > 4096 || (d->nvirtio && !d->virtio) || size > INT32_MAX ||
        (d->initrd && d->initrd_end < d->initrd_start))
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "internal: bad device tree description");
    int r = build(d, buf, size);
    if (r == -FDT_ERR_NOSPACE)
        return err_set(err, WISP_EXIT_USAGE, ENOSPC,
                       "the device tree does not fit in %zu bytes (command line too long?)", size);
    if (r < 0)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "cannot build the device tree: %s",
                       fdt_strerror(r));
    return 0;
}
