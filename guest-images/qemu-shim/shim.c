/*
 * shim.c - pvh2linux: boot a bzImage through the Linux 64-bit protocol
 * from inside a PVH-booted QEMU guest (test aid, see shim.S).
 *
 * Module 0 (QEMU -initrd) is the bzImage, optionally with an initrd
 * appended (cat testguest.bzImage initrd > module). The shim's own command
 * line is handed to the kernel unchanged (the guest ignores unknown keys
 * such as pvh2linux.nomp=1, which makes the shim hide the MP table). The payload goes to
 * pref_address; the area between the payload and init_size is filled
 * with 0xA5 on purpose, because Linux loaders do not clear .bss.
 */
#include "guest.h"
#include "boot.h"

#define SAY_SHIM(fmt, ...) gprintf("pvh2linux: " fmt "\n", ##__VA_ARGS__)

extern u8 _shim_start[];

static u8 zero_page[ZP_SIZE] __attribute__((aligned(4096)));
static char cmdline[2048];

static __attribute__((noreturn)) void fail(const char *why)
{
    SAY_SHIM("error: %s", why);
    guest_exit(GUEST_FAIL);
}

void pvh_main(const struct pvh_start_info *si)
{
    memset(__bss_start, 0, __bss_end - __bss_start);
    if (!si->nr_modules || !si->modlist_paddr)
        fail("no module: pass the bzImage with -initrd");
    const struct pvh_module *mod = phys(si->modlist_paddr);
    const u8 *img = phys(mod->paddr);
    u64 len = mod->size;

    if (len < 0x1000 || zp_get(img, ZP_HEADER, 4) != BZ_HDRS_MAGIC ||
        zp_get(img, ZP_BOOT_FLAG, 2) != BZ_BOOT_FLAG)
        fail("module is not a bzImage");
    if (zp_get(img, ZP_VERSION, 2) < 0x020C || !(zp_get(img, ZP_XLOADFLAGS, 2) & BZ_XLF_KERNEL_64))
        fail("bzImage has no 64-bit entry");
    u64 setup = ((u64)(img[ZP_SETUP_SECTS] ? img[ZP_SETUP_SECTS] : 4) + 1) * 512;
    u64 payload = (u64)zp_get(img, ZP_SYSSIZE, 4) * 16;
    u64 load = zp_get(img, ZP_PREF_ADDRESS, 4);
    u64 init = zp_get(img, ZP_INIT_SIZE, 4);
    if (setup + payload > len || payload > init)
        fail("bzImage truncated or init_size too small");
    if (load + init > (u64)_shim_start)
        fail("kernel would overlap the shim");

    /* Zero page: setup header copied from the image, then our fields. */
    memcpy(zero_page + ZP_SETUP_SECTS, img + ZP_SETUP_SECTS, ZP_HEADER_END - ZP_SETUP_SECTS);
    zero_page[ZP_TYPE_OF_LOADER] = 0xFF; /* "undefined" loader */
    const char *cl = si->cmdline_paddr ? phys(si->cmdline_paddr) : "";
    size_t n = strlen(cl);
    if (n >= sizeof cmdline)
        n = sizeof cmdline - 1;
    memcpy(cmdline, cl, n);
    zp_put(zero_page, ZP_CMD_LINE_PTR, 4, (u64)cmdline);
    if (len > setup + payload) {
        u64 rd = mod->paddr + setup + payload;
        zp_put(zero_page, ZP_RAMDISK_IMAGE, 4, rd);
        zp_put(zero_page, ZP_RAMDISK_SIZE, 4, len - setup - payload);
        zp_put(zero_page, ZP_EXT_RAMDISK_IMAGE, 4, rd >> 32);
    }
    u32 ne = 0;
    if (si->version >= 1 && si->memmap_paddr) {
        const struct pvh_memmap_entry *m = phys(si->memmap_paddr);
        struct e820_entry *e = (void *)(zero_page + ZP_E820_TABLE);
        for (u32 i = 0; i < si->memmap_entries && ne < ZP_E820_MAX; i++) {
            if (!m[i].size)
                continue;
            e[ne].addr = m[i].addr;
            e[ne].size = m[i].size;
            e[ne].type = m[i].type;
            ne++;
        }
    }
    zero_page[ZP_E820_ENTRIES] = (u8)ne;

    /* pvh2linux.nomp=1 hides the firmware's MP table, to exercise the
     * guest's no-MP-table path (one CPU). */
    char v[8];
    if (cmdline_get(cmdline, "pvh2linux.nomp", v, sizeof v) && v[0] == '1') {
        static const u64 areas[][2] = {{0x9FC00, 0x400}, {0xF0000, 0x10000}};
        for (int a = 0; a < 2; a++)
            for (u64 p = areas[a][0]; p < areas[a][0] + areas[a][1]; p += 16) {
                u32 *sig = phys(p);
                if (*sig == 0x5f504d5fu) /* "_MP_" */
                    *sig = 0;
            }
    }

    u8 *dst = phys(load);
    memcpy(dst, img + setup, payload);
    memset(dst + payload, 0xA5, init - payload);
    u64 entry = load + GUEST_LINUX64_OFFSET;
    SAY_SHIM("payload %lu bytes at 0x%lx, entry 0x%lx, zero page 0x%lx, "
             "e820 %u entries, initrd %u bytes",
             payload, load, entry, (u64)zero_page, ne, zp_get(zero_page, ZP_RAMDISK_SIZE, 4));

    /* Our GDT (CS=0x10, DS=0x18) and 4 GiB identity map are what the
     * protocol asks of the loader. */
    __asm__ volatile("cli; jmp *%0" ::"r"(entry), "S"(zero_page) : "memory");
    __builtin_unreachable();
}
