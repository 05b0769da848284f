/*
 * The PCI bus's saved state (devices/pci/pci_state.c): a programmed bus
 * (BARs placed, decode and bus master on, cache line, interrupt line,
 * the conf1 latch) saved and replayed into a fresh bus, where the BARs
 * are mapped again and the function hears its command; refusals of
 * another length or another set of functions, with nothing written; a
 * stream that places a BAR outside the windows gets what a guest would:
 * the register, no mapping.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "devices/pci/pci.h"

static const struct pci_windows win = {
    .mmio32_base = 0xc0000000ULL,
    .mmio32_size = 0x10000000ULL,
    .mmio64_base = 0x1000000000ULL,
    .mmio64_size = 0x1000000000ULL,
    .io_base = 0xc000,
    .io_size = 0x1000,
};

static uint16_t last_cmd[2];

static void t_cmd(void *o, uint16_t cmd)
{
    last_cmd[(uintptr_t)o] = cmd;
}

static const struct pci_func_ops tops = {.cmd_write = t_cmd};

static struct pci_bus *make(unsigned side, bool second_fn)
{
    struct pci_bus *b = pci_bus_new(&win);
    cr_assert(b);
    cr_assert_eq(pci_bus_add_host_bridge(b), 0);
    struct pci_func_desc d = {.vendor = 0x1b36, .device = 0x10f7, .generic_header = true};
    d.bars[0] = (struct pci_bar_desc){.size = 0x1000, .type = PCI_BAR_MEM32};
    d.bars[2] = (struct pci_bar_desc){.size = 0x4000, .type = PCI_BAR_MEM64};
    d.bars[4] = (struct pci_bar_desc){.size = 0x20, .type = PCI_BAR_IO};
    cr_assert_eq(pci_bus_add(b, PCI_DEVFN(1, 0), &d, &tops, (void *)(uintptr_t)side), 0);
    if (second_fn)
        cr_assert_eq(pci_bus_add(b, PCI_DEVFN(2, 0), &d, &tops, (void *)(uintptr_t)side), 0);
    return b;
}

static size_t save(struct pci_bus *b, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    cr_assert_eq(pci_bus_state_save(b, buf, cap, &len), 0);
    cr_assert_eq(len, pci_bus_state_size(b));
    return len;
}

Test(pci_state, replayed_into_a_fresh_bus)
{
    memset(last_cmd, 0, sizeof(last_cmd));
    struct pci_bus *a = make(0, false), *b = make(1, false);
    struct errbuf e = {0};
    cr_assert_eq(pci_bus_assign(a, &e), 0, "%s", e.msg);
    const unsigned df = PCI_DEVFN(1, 0);
    pci_cfg_write(a, df, 0x0c, 1, 0x10);
    pci_cfg_write(a, df, 0x3c, 1, 0x0b);
    pci_cfg_write(a, df, PCI_CFG_COMMAND, 2, PCI_CMD_MEMORY | PCI_CMD_IO | PCI_CMD_MASTER);
    uint32_t latch = PCI_CONF1_ENABLE | df << 8 | 0x10;
    pci_conf1_write(a, 0, &latch, 4);
    uint8_t buf[256];
    size_t len = save(a, buf, sizeof(buf));
    uint8_t small[8];
    size_t got;
    cr_assert_eq(pci_bus_state_save(a, small, sizeof(small), &got), -ENOSPC);

    cr_assert_eq(pci_bus_state_load(b, buf, len, &e), 0, "%s", e.msg);
    for (unsigned off = 0; off < 0x40; off += 4)
        cr_assert_eq(pci_cfg_read(b, df, off, 4), pci_cfg_read(a, df, off, 4), "0x%x", off);
    for (unsigned bar = 0; bar < PCI_NUM_BARS; bar += 2) {
        uint64_t ga = 0, gb = 1;
        cr_assert(pci_bar_mapped(a, df, bar, &ga));
        cr_assert(pci_bar_mapped(b, df, bar, &gb), "BAR%u mapped on the destination", bar);
        cr_assert_eq(ga, gb);
    }
    cr_assert_eq(last_cmd[1], PCI_CMD_MEMORY | PCI_CMD_IO | PCI_CMD_MASTER, "function told");
    uint32_t v = 0;
    pci_conf1_read(b, 0, &v, 4);
    cr_assert_eq(v, latch, "conf1 latch");
    pci_bus_free(a);
    pci_bus_free(b);
}

Test(pci_state, refusals_write_nothing)
{
    struct pci_bus *a = make(0, false), *two = make(1, true);
    struct errbuf e = {0};
    cr_assert_eq(pci_bus_assign(a, &e), 0, "%s", e.msg);
    pci_cfg_write(a, PCI_DEVFN(1, 0), PCI_CFG_COMMAND, 2, PCI_CMD_MEMORY);
    uint8_t buf[256];
    size_t len = save(a, buf, sizeof(buf));
    for (size_t l = 0; l < len; l++) {
        memset(&e, 0, sizeof(e));
        cr_assert_eq(pci_bus_state_load(a, buf, l, &e), -EBADMSG, "length %zu", l);
    }
    cr_assert_eq(pci_bus_state_load(two, buf, len, &e), -EBADMSG);
    cr_assert(strstr(e.msg, "other functions"), "%s", e.msg);
    /* The same count at another place: function 01.0 saved, 02.0 here. */
    struct pci_bus *moved = pci_bus_new(&win);
    cr_assert_eq(pci_bus_add_host_bridge(moved), 0);
    struct pci_func_desc d = {.vendor = 1, .device = 2, .generic_header = true};
    cr_assert_eq(pci_bus_add(moved, PCI_DEVFN(2, 0), &d, &tops, NULL), 0);
    memset(&e, 0, sizeof(e));
    cr_assert_eq(pci_bus_state_load(moved, buf, len, &e), -EPROTO);
    cr_assert(strstr(e.msg, "function 01.0 in the stream, 02.0 here"), "%s", e.msg);
    cr_assert_eq(pci_cfg_read(two, PCI_DEVFN(1, 0), PCI_CFG_COMMAND, 2), 0, "nothing written");
    pci_bus_free(a);
    pci_bus_free(two);
    pci_bus_free(moved);
}

Test(pci_state, a_bar_outside_the_windows_is_not_mapped)
{
    struct pci_bus *a = make(0, false), *b = make(1, false);
    const unsigned df = PCI_DEVFN(1, 0);
    pci_cfg_write(a, df, PCI_CFG_BAR0, 4, 0x1000); /* low RAM */
    pci_cfg_write(a, df, PCI_CFG_COMMAND, 2, PCI_CMD_MEMORY);
    uint8_t buf[256];
    size_t len = save(a, buf, sizeof(buf));
    struct errbuf e = {0};
    cr_assert_eq(pci_bus_state_load(b, buf, len, &e), 0, "%s", e.msg);
    uint64_t g;
    cr_assert_not(pci_bar_mapped(b, df, 0, &g), "never over RAM");
    cr_assert_gt(pci_bus_refused(b), 0);
    pci_bus_free(a);
    pci_bus_free(b);
}
