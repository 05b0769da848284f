/*
 * Unit tests for the ACPI power-management registers: which writes power
 * off or reset, which are ignored, wide accesses, reads and state.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "devices/legacy/acpi_pm.h"
#include "vmm/bus.h"

#define S5    5
#define RESET 0x1

static int poweroffs, resets;

static void on_poweroff(void *opaque)
{
    cr_assert_eq(opaque, &poweroffs);
    poweroffs++;
}

static void on_reset(void *opaque)
{
    cr_assert_eq(opaque, &poweroffs);
    resets++;
}

static const struct acpi_pm_ops ops = {.poweroff = on_poweroff, .reset = on_reset};
static struct acpi_pm *pm;

static void setup(void)
{
    poweroffs = resets = 0;
    pm = acpi_pm_create(&ops, &poweroffs, S5, RESET);
    cr_assert_not_null(pm);
}

static void teardown(void)
{
    acpi_pm_destroy(pm);
}

TestSuite(acpi_pm, .init = setup, .fini = teardown, .timeout = 10);

static void wr(uint64_t off, uint8_t v)
{
    acpi_pm_pio_write(pm, off, &v, 1);
}

Test(acpi_pm, s5_with_slp_en_powers_off)
{
    /* What Linux writes: SLP_TYP from \_S5 in bits 4:2, then SLP_EN. */
    wr(ACPI_PM_SLEEP_CTL, (S5 << 2) | ACPI_PM_SLP_EN);
    cr_assert_eq(poweroffs, 1);
    cr_assert_eq(resets, 0);
    cr_assert_eq(acpi_pm_ignored(pm), 0);
}

Test(acpi_pm, slp_typ_without_slp_en_does_nothing)
{
    wr(ACPI_PM_SLEEP_CTL, S5 << 2);
    cr_assert_eq(poweroffs, 0);
    cr_assert_eq(acpi_pm_ignored(pm), 0, "staging SLP_TYP is legal, not ignored input");
}

Test(acpi_pm, other_sleep_types_are_ignored)
{
    for (unsigned typ = 0; typ <= ACPI_PM_SLP_TYP_MASK; typ++) {
        if (typ == S5)
            continue;
        wr(ACPI_PM_SLEEP_CTL, (uint8_t)((typ << 2) | ACPI_PM_SLP_EN));
        /* Other bits (reserved, SLP_EN's neighbours) must not matter either. */
        wr(ACPI_PM_SLEEP_CTL, (uint8_t)((typ << 2) | ACPI_PM_SLP_EN | 0xc3));
    }
    cr_assert_eq(poweroffs, 0);
    cr_assert_eq(resets, 0);
    cr_assert_eq(acpi_pm_ignored(pm), 14);
    /* Reserved bits set around a real S5 request still power off. */
    wr(ACPI_PM_SLEEP_CTL, (S5 << 2) | ACPI_PM_SLP_EN | 0xc3);
    cr_assert_eq(poweroffs, 1);
}

Test(acpi_pm, reset_value_resets_other_values_do_not)
{
    for (unsigned v = 0; v < 256; v++)
        if (v != RESET)
            wr(ACPI_PM_RESET, (uint8_t)v);
    cr_assert_eq(resets, 0);
    cr_assert_eq(acpi_pm_ignored(pm), 255);
    wr(ACPI_PM_RESET, RESET);
    cr_assert_eq(resets, 1);
    cr_assert_eq(poweroffs, 0);
}

Test(acpi_pm, status_register_and_out_of_block_writes_are_ignored)
{
    wr(ACPI_PM_SLEEP_STS, 0xff);
    uint8_t b[8];
    memset(b, (S5 << 2) | ACPI_PM_SLP_EN, sizeof(b));
    acpi_pm_pio_write(pm, ACPI_PM_LEN, b, 1);
    acpi_pm_pio_write(pm, UINT64_MAX, b, 1);
    cr_assert_eq(poweroffs + resets, 0);
    cr_assert_eq(acpi_pm_ignored(pm), 3);
}

Test(acpi_pm, wide_writes_go_byte_by_byte)
{
    /* A 16-bit write at offset 1: status gets 0xff, reset gets RESET. */
    uint8_t w[2] = {0xff, RESET};
    acpi_pm_pio_write(pm, ACPI_PM_SLEEP_STS, w, 2);
    cr_assert_eq(resets, 1);
    /* A 32-bit write from 0 that runs past the block: S5, status, junk reset, outside. */
    uint8_t l[4] = {(S5 << 2) | ACPI_PM_SLP_EN, 0, 0x55, RESET};
    acpi_pm_pio_write(pm, 0, l, 4);
    cr_assert_eq(poweroffs, 1);
    cr_assert_eq(resets, 1, "the byte past the block is not the reset register");
}

Test(acpi_pm, reads_are_zero)
{
    uint32_t v = 0xffffffff;
    acpi_pm_pio_read(pm, 0, &v, 4);
    cr_assert_eq(v, 0);
    uint8_t b = 0xff;
    acpi_pm_pio_read(pm, ACPI_PM_RESET, &b, 1);
    cr_assert_eq(b, 0);
}

Test(acpi_pm, bad_create_arguments)
{
    errno = 0;
    cr_assert_null(acpi_pm_create(&ops, NULL, 8, RESET));
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(acpi_pm_create(NULL, NULL, S5, RESET));
}

Test(acpi_pm, through_the_bus)
{
    struct bus b;
    bus_init(&b, "pio");
    cr_assert_eq(
        bus_register(&b, 0x600, ACPI_PM_LEN, "acpi-pm", acpi_pm_pio_read, acpi_pm_pio_write, pm),
        0);
    uint8_t v = RESET;
    cr_assert(bus_write(&b, 0x602, &v, 1));
    cr_assert_eq(resets, 1);
    v = (S5 << 2) | ACPI_PM_SLP_EN;
    cr_assert(bus_write(&b, 0x600, &v, 1));
    cr_assert_eq(poweroffs, 1);
}

Test(acpi_pm, empty_state)
{
    struct vstate_out o;
    vstate_out_init(&o);
    cr_assert_eq(acpi_pm_device_ops.save(pm, &o), 0);
    struct vstate_in in;
    vstate_in_init(&in, o.buf, o.len);
    cr_assert_eq(acpi_pm_device_ops.load(pm, &in), 0);
    for (size_t n = 0; n < o.len; n++) {
        vstate_in_init(&in, o.buf, n);
        cr_assert_neq(acpi_pm_device_ops.load(pm, &in), 0, "truncated to %zu accepted", n);
    }
    vstate_out_free(&o);
    vstate_out_init(&o);
    vstate_begin(&o, "acpi_pm", 1);
    vstate_put_u8(&o, 0);
    cr_assert_eq(vstate_end(&o), 0);
    vstate_in_init(&in, o.buf, o.len);
    cr_assert_neq(acpi_pm_device_ops.load(pm, &in), 0, "payload byte accepted");
    vstate_out_free(&o);
}
