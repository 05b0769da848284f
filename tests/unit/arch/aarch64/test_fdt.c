/*
 * The aarch64 device tree (arch/aarch64/fdt.c), built on the x86 host:
 * read back with libfdt (nodes, properties, the GIC phandle and every
 * interrupt specifier) and decompiled with dtc (device-tree-compiler), which
 * must accept it without a warning and show the nodes a Linux guest looks for.
 */
#include "arch/aarch64/fdt.h"
#include "arch/aarch64/layout.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <libfdt.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(a64_fdt, .timeout = 60);

#define FDT_SIZE 0x10000

static const struct a64_fdt_mmio virtio[3] = {
    {0x0a000000, 0x1000, 16},
    {0x0a001000, 0x1000, 17},
    {0x0a002000, 0x1000, 18},
};

static struct a64_fdt_desc desc(unsigned nvcpus)
{
    return (struct a64_fdt_desc){
        .mem_base = 0x40000000,
        .mem_size = 256ULL << 20,
        .nvcpus = nvcpus,
        .gicd_base = A64_GICD_BASE,
        .gicd_size = A64_GICD_SIZE,
        .gicr_base = A64_GICR_BASE,
        .gicr_size = A64_GICR_STRIDE * nvcpus,
        .uart = {A64_UART_BASE, A64_UART_SIZE, A64_UART_SPI},
        .uart_clock = A64_UART_CLOCK,
        .virtio = virtio,
        .nvirtio = 3,
        .bootargs = "console=ttyS0 root=/dev/vda",
        .initrd = true,
        .initrd_start = 0x4f000000,
        .initrd_end = 0x4f123456,
    };
}

static void *build(const struct a64_fdt_desc *d)
{
    void *fdt = calloc(1, FDT_SIZE);
    cr_assert_not_null(fdt);
    struct errbuf err = {0};
    cr_assert_eq(a64_fdt_build(d, fdt, FDT_SIZE, &err), 0, "%s", err.msg);
    cr_assert_eq(fdt_check_header(fdt), 0);
    return fdt;
}

static int node(const void *fdt, const char *path)
{
    int off = fdt_path_offset(fdt, path);
    cr_assert_geq(off, 0, "no node %s", path);
    return off;
}

static uint32_t cell(const void *fdt, int off, const char *prop, int i)
{
    int len;
    const fdt32_t *p = fdt_getprop(fdt, off, prop, &len);
    cr_assert_not_null(p, "no property %s", prop);
    cr_assert_lt(i * 4, len, "%s has %d bytes", prop, len);
    return fdt32_to_cpu(p[i]);
}

static uint64_t cell64(const void *fdt, int off, const char *prop, int i)
{
    return (uint64_t)cell(fdt, off, prop, 2 * i) << 32 | cell(fdt, off, prop, 2 * i + 1);
}

static const char *str(const void *fdt, int off, const char *prop)
{
    const char *s = fdt_getprop(fdt, off, prop, NULL);
    cr_assert_not_null(s, "no property %s", prop);
    return s;
}

Test(a64_fdt, root_memory_chosen)
{
    struct a64_fdt_desc d = desc(2);
    void *fdt = build(&d);
    int root = node(fdt, "/");
    cr_assert_eq(cell(fdt, root, "#address-cells", 0), 2);
    cr_assert_eq(cell(fdt, root, "#size-cells", 0), 2);
    cr_assert_eq(cell(fdt, root, "interrupt-parent", 0), A64_FDT_GIC_PHANDLE);
    int mem = node(fdt, "/memory@40000000");
    cr_assert_str_eq(str(fdt, mem, "device_type"), "memory");
    cr_assert_eq(cell64(fdt, mem, "reg", 0), 0x40000000);
    cr_assert_eq(cell64(fdt, mem, "reg", 1), 256ULL << 20);
    int ch = node(fdt, "/chosen");
    cr_assert_str_eq(str(fdt, ch, "bootargs"), "console=ttyS0 root=/dev/vda");
    cr_assert_str_eq(str(fdt, ch, "stdout-path"), "/uart@9000000");
    cr_assert_eq(cell64(fdt, ch, "linux,initrd-start", 0), 0x4f000000);
    cr_assert_eq(cell64(fdt, ch, "linux,initrd-end", 0), 0x4f123456);
    /* stdout-path names a node that exists. */
    node(fdt, str(fdt, ch, "stdout-path"));
    free(fdt);
}

Test(a64_fdt, no_initrd_no_initrd_properties)
{
    struct a64_fdt_desc d = desc(1);
    d.initrd = false;
    d.bootargs = NULL;
    void *fdt = build(&d);
    int ch = node(fdt, "/chosen");
    cr_assert_null(fdt_getprop(fdt, ch, "linux,initrd-start", NULL));
    cr_assert_null(fdt_getprop(fdt, ch, "bootargs", NULL));
    free(fdt);
}

Test(a64_fdt, cpus_psci_and_mpidrs)
{
    struct a64_fdt_desc d = desc(18);
    d.gicr_size = A64_GICR_STRIDE * 18;
    void *fdt = build(&d);
    int n = 0;
    int cpus = node(fdt, "/cpus");
    cr_assert_eq(cell(fdt, cpus, "#address-cells", 0), 1);
    cr_assert_eq(cell(fdt, cpus, "#size-cells", 0), 0);
    int off;
    fdt_for_each_subnode(off, fdt, cpus)
    {
        cr_assert_str_eq(str(fdt, off, "device_type"), "cpu");
        cr_assert_str_eq(str(fdt, off, "enable-method"), "psci");
        n++;
    }
    cr_assert_eq(n, 18);
    /* vCPU 17 is Aff1 = 1, Aff0 = 1 in KVM's MPIDR. */
    cr_assert_eq(cell(fdt, node(fdt, "/cpus/cpu@101"), "reg", 0), 0x101);
    cr_assert_eq(cell(fdt, node(fdt, "/cpus/cpu@f"), "reg", 0), 0xf);
    int psci = node(fdt, "/psci");
    cr_assert_eq(fdt_node_check_compatible(fdt, psci, "arm,psci-0.2"), 0);
    cr_assert_eq(fdt_node_check_compatible(fdt, psci, "arm,psci-1.0"), 0);
    cr_assert_str_eq(str(fdt, psci, "method"), "hvc");
    free(fdt);
}

Test(a64_fdt, gic_timer_and_interrupt_specifiers)
{
    struct a64_fdt_desc d = desc(4);
    void *fdt = build(&d);
    int gic = fdt_node_offset_by_phandle(fdt, A64_FDT_GIC_PHANDLE);
    cr_assert_eq(gic, node(fdt, "/intc@8000000"), "the phandle leads to the GIC");
    cr_assert_eq(fdt_node_check_compatible(fdt, gic, "arm,gic-v3"), 0);
    cr_assert_not_null(fdt_getprop(fdt, gic, "interrupt-controller", NULL));
    cr_assert_eq(cell(fdt, gic, "#interrupt-cells", 0), 3);
    cr_assert_eq(cell64(fdt, gic, "reg", 0), A64_GICD_BASE);
    cr_assert_eq(cell64(fdt, gic, "reg", 1), A64_GICD_SIZE);
    cr_assert_eq(cell64(fdt, gic, "reg", 2), A64_GICR_BASE);
    cr_assert_eq(cell64(fdt, gic, "reg", 3), 4 * A64_GICR_STRIDE);

    int t = node(fdt, "/timer");
    cr_assert_eq(fdt_node_check_compatible(fdt, t, "arm,armv8-timer"), 0);
    static const unsigned ppi[4] = {A64_PPI_TIMER_SEC, A64_PPI_TIMER_PHYS, A64_PPI_TIMER_VIRT,
                                    A64_PPI_TIMER_HYP};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(cell(fdt, t, "interrupts", 3 * i), A64_FDT_IRQ_PPI);
        cr_assert_eq(cell(fdt, t, "interrupts", 3 * i + 1), ppi[i]);
        cr_assert_eq(cell(fdt, t, "interrupts", 3 * i + 2), A64_FDT_IRQ_LEVEL_HIGH);
    }

    int u = node(fdt, "/uart@9000000");
    cr_assert_eq(fdt_node_check_compatible(fdt, u, "ns16550a"), 0);
    cr_assert_eq(cell(fdt, u, "interrupts", 0), A64_FDT_IRQ_SPI);
    cr_assert_eq(cell(fdt, u, "interrupts", 1), A64_UART_SPI);
    cr_assert_eq(cell(fdt, u, "interrupts", 2), A64_FDT_IRQ_EDGE_RISE);
    cr_assert_eq(cell(fdt, u, "clock-frequency", 0), A64_UART_CLOCK);

    /* Every virtio-mmio device: its window and its own SPI, edge (irqfd pulses). */
    for (int i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/virtio_mmio@%llx", (unsigned long long)virtio[i].base);
        int v = node(fdt, path);
        cr_assert_eq(fdt_node_check_compatible(fdt, v, "virtio,mmio"), 0);
        cr_assert_eq(cell64(fdt, v, "reg", 0), virtio[i].base);
        cr_assert_eq(cell64(fdt, v, "reg", 1), virtio[i].size);
        cr_assert_eq(cell(fdt, v, "interrupts", 0), A64_FDT_IRQ_SPI);
        cr_assert_eq(cell(fdt, v, "interrupts", 1), virtio[i].spi);
        cr_assert_eq(cell(fdt, v, "interrupts", 2), A64_FDT_IRQ_EDGE_RISE);
    }
    free(fdt);
}

Test(a64_fdt, too_small_a_buffer_is_enospc)
{
    struct a64_fdt_desc d = desc(1);
    char buf[256];
    struct errbuf err = {0};
    cr_assert_eq(a64_fdt_build(&d, buf, sizeof(buf), &err), -ENOSPC);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    d.nvcpus = 0;
    struct errbuf err2 = {0};
    cr_assert_eq(a64_fdt_build(&d, buf, sizeof(buf), &err2), -EINVAL);
}

/* Run dtc on `dtb`, writing `dts`; its stderr to `log`.  Returns its exit status. */
static int run_dtc(char *dtb, char *dts, const char *log)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char a0[] = "dtc", a1[] = "-I", a2[] = "dtb", a3[] = "-O", a4[] = "dts", a5[] = "-o";
    char *argv[] = {a0, a1, a2, a3, a4, a5, dts, dtb, NULL};
    extern char **environ;
    pid_t pid;
    int e = posix_spawnp(&pid, "dtc", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(e, 0, "cannot run dtc (scripts/setup.sh installs device-tree-compiler): %s",
                 strerror(e));
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

Test(a64_fdt, dtc_decompiles_without_warnings)
{
    struct a64_fdt_desc d = desc(2);
    void *fdt = build(&d);
    char dir[] = "/tmp/wisp-fdt-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char dtb[64], dts[64], log[64];
    snprintf(dtb, sizeof(dtb), "%s/t.dtb", dir);
    snprintf(dts, sizeof(dts), "%s/t.dts", dir);
    snprintf(log, sizeof(log), "%s/dtc.log", dir);
    FILE *f = fopen(dtb, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(fdt, 1, fdt_totalsize(fdt), f), fdt_totalsize(fdt));
    fclose(f);
    cr_assert_eq(run_dtc(dtb, dts, log), 0, "dtc failed: %s", slurp(log));
    const char *warn = slurp(log);
    cr_assert_eq(warn[0], '\0', "dtc warned: %s", warn);
    const char *src = slurp(dts);
    static const char *const want[] = {
        "compatible = \"linux,dummy-virt\"",
        "interrupt-parent = <0x01>",
        "memory@40000000 {",
        "cpu@1 {",
        "enable-method = \"psci\"",
        "compatible = \"arm,psci-1.0\\0arm,psci-0.2\"",
        "intc@8000000 {",
        "phandle = <0x01>",
        "interrupts = <0x01 0x0d 0x04 0x01 0x0e 0x04 0x01 0x0b 0x04 0x01 0x0a 0x04>",
        "uart@9000000 {",
        "virtio_mmio@a002000 {",
        "interrupts = <0x00 0x12 0x01>",
        "stdout-path = \"/uart@9000000\"",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert_not_null(strstr(src, want[i]), "dts lacks '%s':\n%s", want[i], src);
    unlink(dtb);
    unlink(dts);
    unlink(log);
    rmdir(dir);
    free(fdt);
}
