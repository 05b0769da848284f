/*
 * dt.c - a flattened device tree walker for the arm64 test guest.  It
 * reads only what the checks need (memory, cpus, psci, the GICv3, the
 * timer, the UART, virtio-mmio nodes, chosen), honours each parent's
 * #address-cells/#size-cells, and bounds every offset by the header's
 * totalsize: a VMM that hands over a broken tree gets a FAIL, not a crash.
 */
#include "a64.h"

#define FDT_MAGIC      0xd00dfeedu
#define FDT_BEGIN_NODE 1
#define FDT_END_NODE   2
#define FDT_PROP       3
#define FDT_NOP        4
#define FDT_END        9
#define MAX_DEPTH      8

struct dt_info dt;

static u32 be32(const u8 *p)
{
    return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3];
}

/* A property value as (pointer, length); len 0 and p NULL if absent. */
struct val {
    const u8 *p;
    u32 len;
};

struct node {
    const char *name;
    u32 acells, scells; /* for this node's children */
    struct val compat, dtype, reg, irqs, method, enable, bootargs, stdout_path;
    struct val initrd_start, initrd_end, phandle, iparent;
};

/* Does the NUL-separated string list v contain s? */
static bool has_str(struct val v, const char *s)
{
    u32 i = 0, n = strlen(s);
    while (i < v.len) {
        u32 j = i;
        while (j < v.len && v.p[j])
            j++;
        if (j - i == n && memcmp(v.p + i, s, n) == 0)
            return true;
        i = j + 1;
    }
    return false;
}

/* Cells c[0..n) of v starting at cell `at`, as one number (n <= 2). */
static u64 cells(struct val v, u32 at, u32 n)
{
    u64 x = 0;
    for (u32 i = 0; i < n; i++)
        if ((at + i + 1) * 4 <= v.len)
            x = x << 32 | be32(v.p + (at + i) * 4);
    return x;
}

static u64 prop_num(struct val v)
{
    return cells(v, 0, v.len >= 8 ? 2 : 1);
}

static void copy_str(char *out, u32 size, struct val v)
{
    u32 n = v.len < size ? v.len : size - 1;
    memcpy(out, v.p, n);
    out[n] = 0;
}

/* A node is complete (its properties seen): file what it describes. */
static void classify(const struct node *nd, const struct node *parent, int depth)
{
    u32 ac = parent ? parent->acells : 2, sc = parent ? parent->scells : 1;
    u32 rstride = ac + sc;
    if (depth == 0) {
        if (nd->iparent.len == 4)
            dt.interrupt_parent = be32(nd->iparent.p);
        return;
    }
    if (has_str(nd->dtype, "memory") && nd->reg.len >= rstride * 4) {
        dt.mem_base = cells(nd->reg, 0, ac);
        dt.mem_size = cells(nd->reg, ac, sc);
    } else if (has_str(nd->dtype, "cpu")) {
        if (dt.ncpus < A64_MAX_CPUS && nd->reg.len >= ac * 4 && has_str(nd->enable, "psci"))
            dt.cpu_mpidr[dt.ncpus] = (u32)cells(nd->reg, 0, ac);
        dt.ncpus++;
    } else if (has_str(nd->compat, "arm,psci-0.2") || has_str(nd->compat, "arm,psci-1.0")) {
        dt.psci_compat = true;
        dt.psci_hvc = has_str(nd->method, "hvc");
        dt.psci_smc = has_str(nd->method, "smc");
    } else if (has_str(nd->compat, "arm,gic-v3") && nd->reg.len >= 2 * rstride * 4) {
        dt.gicd = cells(nd->reg, 0, ac);
        dt.gicd_size = cells(nd->reg, ac, sc);
        dt.gicr = cells(nd->reg, rstride, ac);
        dt.gicr_size = cells(nd->reg, rstride + ac, sc);
        if (nd->phandle.len == 4)
            dt.gic_phandle = be32(nd->phandle.p);
    } else if (has_str(nd->compat, "arm,armv8-timer")) {
        for (u32 i = 0; i < 4 && (i * 3 + 3) * 4 <= nd->irqs.len; i++) {
            /* <1 (PPI) n flags> */
            if (cells(nd->irqs, i * 3, 1) == 1)
                dt.timer_ppi[dt.ntimer++] = (u32)cells(nd->irqs, i * 3 + 1, 1);
        }
    } else if (has_str(nd->compat, "ns16550a") && nd->reg.len >= rstride * 4) {
        dt.uart = cells(nd->reg, 0, ac);
        dt.uart_spi = nd->irqs.len >= 12 ? (u32)cells(nd->irqs, 1, 1) : ~0u;
    } else if (has_str(nd->compat, "virtio,mmio") && nd->reg.len >= rstride * 4) {
        if (dt.nvirtio < 16) {
            dt.virtio[dt.nvirtio].base = cells(nd->reg, 0, ac);
            dt.virtio[dt.nvirtio].size = cells(nd->reg, ac, sc);
            bool spi = nd->irqs.len >= 12 && cells(nd->irqs, 0, 1) == 0;
            dt.virtio[dt.nvirtio].spi = spi ? (u32)cells(nd->irqs, 1, 1) : ~0u;
            dt.virtio[dt.nvirtio].flags = spi ? (u32)cells(nd->irqs, 2, 1) : 0;
        }
        dt.nvirtio++;
    } else if (depth == 1 && streq(nd->name, "chosen")) {
        copy_str(dt.bootargs, sizeof dt.bootargs, nd->bootargs);
        dt.have_stdout = nd->stdout_path.len > 1;
        dt.initrd_start = prop_num(nd->initrd_start);
        dt.initrd_end = prop_num(nd->initrd_end);
    }
}

bool dt_parse(const void *fdt, const char **why)
{
    const u8 *b = fdt;
    if ((u64)fdt % 8) {
        *why = "not 8-byte aligned";
        return false;
    }
    if (be32(b) != FDT_MAGIC) {
        *why = "bad magic";
        return false;
    }
    u32 total = be32(b + 4), off_struct = be32(b + 8), off_strings = be32(b + 12);
    u32 version = be32(b + 20), size_strings = be32(b + 32), size_struct = be32(b + 36);
    if (version < 17 || total > 0x200000 || off_struct > total ||
        size_struct > total - off_struct || off_strings > total ||
        size_strings > total - off_strings) {
        *why = "header out of bounds (or version < 17)";
        return false;
    }
    if (size_strings == 0 || b[off_strings + size_strings - 1] != 0) {
        *why = "strings block not NUL-terminated";
        return false;
    }
    struct node stack[MAX_DEPTH];
    int depth = -1;
    u32 pos = off_struct, end = off_struct + size_struct;
    while (pos + 4 <= end) {
        u32 tok = be32(b + pos);
        pos += 4;
        if (tok == FDT_BEGIN_NODE) {
            if (++depth >= MAX_DEPTH) {
                *why = "nested too deep";
                return false;
            }
            struct node *nd = &stack[depth];
            memset(nd, 0, sizeof *nd);
            nd->name = (const char *)b + pos;
            nd->acells = 2;
            nd->scells = 1;
            while (pos < end && b[pos])
                pos++;
            pos = (pos + 4) & ~3u; /* past the NUL, 4-aligned */
        } else if (tok == FDT_END_NODE) {
            if (depth < 0) {
                *why = "unbalanced END_NODE";
                return false;
            }
            classify(&stack[depth], depth ? &stack[depth - 1] : NULL, depth);
            depth--;
        } else if (tok == FDT_PROP) {
            if (pos + 8 > end || depth < 0) {
                *why = "truncated property";
                return false;
            }
            u32 len = be32(b + pos), nameoff = be32(b + pos + 4);
            pos += 8;
            if (len > end - pos || nameoff >= size_strings) {
                *why = "property out of bounds";
                return false;
            }
            const char *name = (const char *)b + off_strings + nameoff;
            struct val v = {b + pos, len};
            struct node *nd = &stack[depth];
            if (streq(name, "compatible"))
                nd->compat = v;
            else if (streq(name, "device_type"))
                nd->dtype = v;
            else if (streq(name, "reg"))
                nd->reg = v;
            else if (streq(name, "interrupts"))
                nd->irqs = v;
            else if (streq(name, "method"))
                nd->method = v;
            else if (streq(name, "enable-method"))
                nd->enable = v;
            else if (streq(name, "bootargs"))
                nd->bootargs = v;
            else if (streq(name, "stdout-path"))
                nd->stdout_path = v;
            else if (streq(name, "linux,initrd-start"))
                nd->initrd_start = v;
            else if (streq(name, "linux,initrd-end"))
                nd->initrd_end = v;
            else if (streq(name, "phandle"))
                nd->phandle = v;
            else if (streq(name, "interrupt-parent"))
                nd->iparent = v;
            else if (streq(name, "#address-cells") && len == 4)
                nd->acells = be32(v.p);
            else if (streq(name, "#size-cells") && len == 4)
                nd->scells = be32(v.p);
            if (nd->acells > 2 || nd->scells > 2) {
                *why = "#address-cells or #size-cells above 2";
                return false;
            }
            pos = (pos + len + 3) & ~3u;
        } else if (tok == FDT_NOP) {
            continue;
        } else if (tok == FDT_END) {
            if (depth != -1) {
                *why = "END inside a node";
                return false;
            }
            *why = "";
            return true;
        } else {
            *why = "unknown token";
            return false;
        }
    }
    *why = "no END token";
    return false;
}
