/*
 * PCI end to end (--pci on): the test guest finds bus 0 by conf1 probing
 * and through ECAM (from the MCFG with ACPI, from the command line
 * without), enumerates it both ways and checks the host bridge at 00:00.0;
 * without --pci nothing answers on the conf1 ports; with PCI the last
 * four virtio slots' GSIs belong to PCI INTx.
 */
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define ASSERT_STATUS(r, want)                                                                     \
    cr_assert_eq((r)->status, (want), "status %d\nstdout:\n%s\nstderr:\n%s", (r)->status,          \
                 (r)->out, (r)->err)
#define ASSERT_OUT(r, s)                                                                           \
    cr_assert(strstr((r)->out, (s)), "missing '%s' in stdout:\n%s\nstderr:\n%s", (s), (r)->out,    \
              (r)->err)
#define ASSERT_ERR(r, s)                                                                           \
    cr_assert(strstr((r)->err, (s)), "missing '%s' in stderr:\n%s", (s), (r)->err)

static const char *const found_both_ways[] = {
    "check pci_conf1_present ok",
    "check pci_host_bridge_conf1 ok",
    "check pci_absent_conf1 ok",
    "check pci_ecam_found ok",
    "check pci_ecam_matches_conf1 ok",
    "check pci_host_bridge_ecam ok",
    "check pci_absent_ecam ok",
    "check pci_ecam_extended ok",
    "check pci_one_config_space ok",
    "check pci_host_bridge_no_bars ok",
    "pci conf1: 1 function(s); 00.0 1b36:0008 class 060000 header 0",
};

static void assert_found(const struct proc_result *r)
{
    ASSERT_STATUS(r, GUEST_PASS);
    for (size_t i = 0; i < sizeof(found_both_ways) / sizeof(found_both_ways[0]); i++)
        ASSERT_OUT(r, found_both_ways[i]);
}

Test(pci, acpi_mcfg_pvh, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--boot", "pvh", "--pci", "on",
             "--device", "rng", "--debug-exit", "--cmdline", "test=pci", NULL);
    assert_found(&r);
    ASSERT_OUT(&r, "from the MCFG");
    ASSERT_OUT(&r, "pci ecam: 1 function(s) at 0xe0000000");
    proc_result_free(&r);
}

Test(pci, acpi_off_conf1_probe_bzimage, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_bzimage(), "--acpi", "off", "--pci", "on",
             "--debug-exit", "--cmdline", "test=pci ecam=0xe0000000", NULL);
    assert_found(&r);
    ASSERT_OUT(&r, "from the command line");
    proc_result_free(&r);
}

Test(pci, off_by_default, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--cmdline",
             "test=pci pci=0", NULL);
    ASSERT_STATUS(&r, GUEST_PASS);
    ASSERT_OUT(&r, "check pci_absent ok");
    proc_result_free(&r);
}

Test(pci, intx_gsis_leave_12_virtio_slots, .timeout = 60)
{
    const char *args[64] = {"run", "--kernel",     guest_elf(), "--pci",
                            "on",  "--debug-exit", "--cmdline", "test=pci"};
    unsigned n = 8;
    for (int i = 0; i < 13; i++) {
        args[n++] = "--device";
        args[n++] = "rng";
    }
    args[n] = NULL;
    struct proc_result r;
    wisp_runv(&r, NULL, NULL, args);
    cr_assert_neq(r.status, GUEST_PASS);
    ASSERT_ERR(&r, "13 devices configured; at most 12");
    proc_result_free(&r);
}
