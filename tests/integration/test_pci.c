/*
 * PCI end to end (--pci on): the test guest finds bus 0 by conf1 probing
 * and through ECAM (from the MCFG with ACPI, from the command line
 * without), enumerates it both ways and checks the host bridge at 00:00.0;
 * without --pci nothing answers on the conf1 ports; with PCI the last
 * four virtio slots' GSIs belong to PCI INTx; and a snapshot of a machine
 * with PCI is refused (the bus's state is not saved yet).
 */
#include "tests/lib/api_http.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* The bus's state is in the snapshot stream (section "pci"): a snapshot of
 * a --pci VM is taken and the guest runs on. */
Test(pci, snapshot_taken, .timeout = 180)
{
    char dir[64], sock[96], snap[96];
    snprintf(dir, sizeof(dir), "/tmp/wisp-pci-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(sock, sizeof(sock), "%s/api.sock", dir);
    snprintf(snap, sizeof(snap), "%s/snap", dir);
    cr_assert_eq(mkdir(snap, 0700), 0);
    char *argv[] = {(char *)(uintptr_t)wisp_bin(),
                    "run",
                    "--kernel",
                    (char *)(uintptr_t)guest_elf(),
                    "--pci",
                    "on",
                    "--api-sock",
                    sock,
                    "--snapshot-dir",
                    snap,
                    "--cmdline",
                    "test=tick",
                    NULL};
    struct sandbox_proc p;
    cr_assert_eq(sandbox_proc_start(&p, argv, NULL), 0);
    cr_assert(sandbox_proc_wait_for(&p, "tick 2", WISP_TIMEOUT_MS), "the guest never ticked");
    char reply[API_HTTP_REPLY_MAX];
    const char *body = NULL;
    int st = api_http(sock, "PUT", "/snapshot/create",
                      "{\"snapshot_path\":\"s\",\"mem_file_path\":\"m\"}", reply, &body);
    cr_assert_eq(st, 200, "%d\n%s", st, reply);
    /* still running */
    cr_assert(sandbox_proc_wait_for(&p, "tick 40", WISP_TIMEOUT_MS), "the guest stopped");
    kill(p.pid, SIGTERM);
    struct proc_result r;
    sandbox_proc_finish(&p, NULL, WISP_TIMEOUT_MS, &r);
    cr_assert_eq(r.status, 128 + SIGTERM, "status %d\n%s", r.status, r.err);
    proc_result_free(&r);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
