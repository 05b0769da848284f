/*
 * Putting an aarch64 guest into memory (arch_internal.h): the kernel Image
 * at the start of RAM plus its text_offset, the device tree in the last
 * 2 MiB, the initrd just below the tree.  The files are hostile input: the
 * header is checked by image.c and every placement against RAM here.
 */
#include "arch/aarch64/arch_internal.h"
#include "arch/common/arch_files.h"
#include "arch/aarch64/fdt.h"
#include "arch/aarch64/image.h"
#include "arch/aarch64/layout.h"
#include "devices/virtio/mmio.h"
#include "vmm/config.h"
#include "vmm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 0x1000ULL

static int write_mem(struct arch_vm *a, uint64_t gpa, const void *src, size_t len, const char *what,
                     struct errbuf *err)
{
    if (gmem_write(a->host.mem, gpa, src, len) < 0)
        return err_set(err, WISP_EXIT_USAGE, ENOSPC, "%s does not fit in guest RAM at 0x%llx", what,
                       (unsigned long long)gpa);
    return 0;
}

/* The tree for this VM: every virtio slot in device order, the initrd if any. */
static int write_fdt(struct arch_vm *a, const char *cmdline, uint64_t initrd_gpa, size_t initrd_len,
                     struct errbuf *err)
{
    const struct vm_config *cfg = a->host.cfg;
    struct a64_fdt_mmio virtio[CONFIG_MAX_DEVICES];
    unsigned nvirtio = config_virtio_devices(cfg);
    if (nvirtio > CONFIG_MAX_DEVICES)
        return err_set(err, WISP_EXIT_USAGE, ENOSPC, "too many devices");
    for (unsigned i = 0; i < nvirtio; i++) {
        uint64_t base;
        unsigned gsi;
        if (arch_virtio_slot(i, &base, &gsi) < 0)
            return err_set(err, WISP_EXIT_USAGE, ENOSPC, "too many devices");
        virtio[i] = (struct a64_fdt_mmio){.base = base, .size = VIRTIO_MMIO_WINDOW, .spi = gsi};
    }
    struct a64_fdt_desc d = {
        .mem_base = A64_RAM_BASE,
        .mem_size = cfg->memory,
        .nvcpus = cfg->vcpus,
        .gicd_base = A64_GICD_BASE,
        .gicd_size = A64_GICD_SIZE,
        .gicr_base = A64_GICR_BASE,
        .gicr_size = A64_GICR_STRIDE * cfg->vcpus,
        .uart = {A64_UART_BASE, A64_UART_SIZE, A64_UART_SPI},
        .uart_clock = A64_UART_CLOCK,
        .virtio = virtio,
        .nvirtio = nvirtio,
        .bootargs = cmdline,
        .initrd = initrd_len > 0,
        .initrd_start = initrd_gpa,
        .initrd_end = initrd_gpa + initrd_len,
    };
    void *buf = calloc(1, A64_FDT_MAX);
    if (!buf)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    int ret = a64_fdt_build(&d, buf, A64_FDT_MAX, err);
    if (ret == 0)
        ret = write_mem(a, a->fdt_gpa, buf, A64_FDT_MAX, "the device tree", err);
    free(buf);
    return ret;
}

int a64_load(struct arch_vm *a, const char *cmdline, struct errbuf *err)
{
    const struct vm_config *cfg = a->host.cfg;
    struct archf_map kernel = {0}, initrd = {0};
    uint64_t ram_end = A64_RAM_BASE + cfg->memory;
    /* The tree takes the last 2 MiB (page aligned); the rest is for the images. */
    a->fdt_gpa = (ram_end - A64_FDT_MAX) & ~(PAGE - 1);
    int ret = archf_map_file(cfg->kernel, "kernel", &kernel, err);
    if (ret < 0)
        goto out;
    struct a64_image img;
    ret = a64_image_parse(kernel.data, kernel.len, a->fdt_gpa - A64_RAM_BASE, &img, err);
    if (ret < 0)
        goto out;
    a->entry = A64_RAM_BASE + img.text_offset;
    uint64_t kernel_end = a->entry + img.image_size;
    ret = write_mem(a, a->entry, kernel.data, kernel.len, "the kernel", err);
    if (ret < 0)
        goto out;
    uint64_t initrd_gpa = 0;
    if (cfg->initrd) {
        ret = archf_map_file(cfg->initrd, "initrd", &initrd, err);
        if (ret < 0)
            goto out;
        if (initrd.len > a->fdt_gpa - kernel_end) {
            ret = err_set(err, WISP_EXIT_USAGE, ENOSPC,
                          "initrd %s (%zu bytes) does not fit in guest RAM after the kernel",
                          cfg->initrd, initrd.len);
            goto out;
        }
        initrd_gpa = (a->fdt_gpa - initrd.len) & ~(PAGE - 1);
        ret = write_mem(a, initrd_gpa, initrd.data, initrd.len, "the initrd", err);
        if (ret < 0)
            goto out;
    }
    ret = write_fdt(a, cmdline, initrd_gpa, initrd.len, err);
    if (ret < 0)
        goto out;
    a->guest_loaded = true;
    log_info("loaded arm64 Image at 0x%llx-0x%llx, device tree at 0x%llx",
             (unsigned long long)a->entry, (unsigned long long)kernel_end,
             (unsigned long long)a->fdt_gpa);
out:
    archf_unmap_file(&kernel);
    archf_unmap_file(&initrd);
    return ret;
}
