/*
 * The ACPI tables checked by a second, independent implementation: ACPICA's
 * iasl (Debian's acpica-tools, 20200925).  For each configuration every
 * table is written to a fresh directory under the build directory and
 *
 *   - disassembled with `iasl -d`, which validates checksums, lengths and
 *     the AML, and must report nothing;
 *   - recompiled from that disassembly, which must give "0 Errors,
 *     0 Warnings, 0 Remarks" and the same bytes (data tables with -z, which
 *     keeps our compiler id; for the DSDT everything but the compiler id and
 *     hence the checksum);
 *   - for the DSDT, disassembled again from iasl's own AML, which must read
 *     the same as the first disassembly below the header comment.
 *
 * iasl cannot disassemble a lone RSDP, so the RSDP's fields are written as
 * a data-table source with zero checksums and iasl's compiled bytes, with
 * the checksums it computes, must equal ours.
 *
 * The directory is removed when a configuration passes and kept (its path
 * is in the failure message) when it does not.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86_64/pci_host.h"
#include "tests/unit/arch/x86_64/test_acpi.h"

TestSuite(x86_acpi_iasl, .timeout = 120);

#define IASL_TIMEOUT_MS 30000U
#define COMPILE_CLEAN   "Compilation successful. 0 Errors, 0 Warnings, 0 Remarks"

/* Room for the directory and a file name in it. */
#define PATH_LEN (PATH_MAX + 64)

static char iasl_bin[PATH_LEN];
static char dir[PATH_MAX];
static struct ta_tables t;

/* Fail with the kept directory named, so the files can be looked at. */
#define CHECK(cond, fmt, ...) cr_assert((cond), fmt " (iasl files kept in %s)", ##__VA_ARGS__, dir)

static void find_iasl(void)
{
    const char *path = getenv("PATH");
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(iasl_bin, sizeof(iasl_bin), "%s/iasl", d);
        if (access(iasl_bin, X_OK) == 0)
            return;
    }
    cr_assert_fail("iasl not found: run scripts/setup.sh (acpica-tools)");
}

/* A fresh directory next to this binary's build tree: <build>/acpi-iasl-XXXXXX. */
static void make_dir(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    cr_assert_gt(n, 0);
    exe[n] = '\0';
    /* <build>/tests/unit -> <build> */
    char *build = dirname(dirname(exe));
    snprintf(dir, sizeof(dir), "%s/acpi-iasl-XXXXXX", build);
    cr_assert_not_null(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
}

static void remove_dir(void)
{
    DIR *dp = opendir(dir);
    cr_assert_not_null(dp);
    for (struct dirent *e; (e = readdir(dp));) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            cr_assert_eq(unlinkat(dirfd(dp), e->d_name, 0), 0, "%s/%s: %s", dir, e->d_name,
                         strerror(errno));
    }
    closedir(dp);
    cr_assert_eq(rmdir(dir), 0, "%s: %s", dir, strerror(errno));
}

static void path_of(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static void write_file(const char *name, const void *data, size_t len)
{
    char p[PATH_LEN];
    path_of(p, sizeof(p), name);
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL, "create %s", p);
    CHECK(fwrite(data, 1, len, f) == len, "write %s", p);
    CHECK(fclose(f) == 0, "close %s", p);
}

/* The whole file, NUL-terminated; the caller frees it. */
static char *read_all(const char *name, size_t *len)
{
    char p[PATH_LEN];
    path_of(p, sizeof(p), name);
    FILE *f = fopen(p, "rb");
    CHECK(f != NULL, "iasl wrote no %s", name);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (size_t got; (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (cap - n - 1 == 0) {
            buf = realloc(buf, cap *= 2);
            cr_assert_not_null(buf);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/*
 * Run iasl with `args` in the directory, its output in `log`, waiting at
 * most IASL_TIMEOUT_MS.  Returns the log's text (caller frees); iasl must
 * have exited with status 0.
 */
static char *iasl(const char *log, char *const *args)
{
    char *argv[8] = {"iasl"};
    unsigned argc = 1;
    for (; args[argc - 1]; argc++) {
        cr_assert_lt(argc, ARRAY_SIZE(argv) - 1);
        argv[argc] = args[argc - 1];
    }
    argv[argc] = NULL;

    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (chdir(dir) < 0)
            _exit(126);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int null = open("/dev/null", O_RDONLY);
        if (fd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(126);
        execv(iasl_bin, argv);
        _exit(127);
    }

    int st = 0;
    unsigned waited = 0;
    for (;; waited += 10) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        cr_assert_geq(r, 0, "waitpid: %s", strerror(errno));
        if (r == pid)
            break;
        if (waited >= IASL_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            CHECK(0, "iasl %s did not finish within %u ms", args[argc - 2], IASL_TIMEOUT_MS);
        }
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    char *out = read_all(log, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "iasl %s failed (status 0x%x): %s", args[argc - 2],
          st, out);
    return out;
}

/* A disassembly's words for trouble, in the log or in the .dsl itself. */
static void expect_quiet(const char *what, const char *text)
{
    static const char *const bad[] = {"warning",   "error",   "remark", "invalid",
                                      "incorrect", "unknown", "****"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        CHECK(strcasestr(text, bad[i]) == NULL, "%s mentions '%s':\n%s", what, bad[i], text);
}

/* iasl -d NAME.dat: quiet, and the .dsl names no problem. */
static void disassemble(const char *name)
{
    char dat[64], log[64], dsl[64];
    snprintf(dat, sizeof(dat), "%s.dat", name);
    snprintf(log, sizeof(log), "%s.dis.log", name);
    snprintf(dsl, sizeof(dsl), "%s.dsl", name);
    char *out = iasl(log, (char *const[]){"-d", dat, NULL});
    expect_quiet(log, out);
    free(out);
    char *text = read_all(dsl, NULL);
    expect_quiet(dsl, text);
    free(text);
}

/* iasl [-z] NAME.dsl: a clean compile; returns the .aml bytes (caller frees). */
static uint8_t *compile(const char *name, bool data_table, size_t *len)
{
    char src[64], log[64], aml[64];
    snprintf(src, sizeof(src), "%s", name);
    snprintf(log, sizeof(log), "%.50s.cc.log", name);
    snprintf(aml, sizeof(aml), "%.*s.aml", (int)(strrchr(name, '.') - name), name);
    char *const with_z[] = {"-z", src, NULL}, *const plain[] = {src, NULL};
    char *out = iasl(log, data_table ? with_z : plain);
    CHECK(strstr(out, COMPILE_CLEAN) != NULL, "%s did not compile cleanly:\n%s", src, out);
    free(out);
    return (uint8_t *)read_all(aml, len);
}

/* The disassembly below its header comment (which names the file, date and compiler). */
static const char *body_of(const char *dsl)
{
    const char *end = strstr(dsl, " */\n");
    cr_assert_not_null(end);
    return end + 4;
}

static void check_data_table(const char *name, const uint8_t *table)
{
    char dat[64], dsl[64];
    size_t len;
    const uint32_t tlen = le32_get(table + 4);
    snprintf(dat, sizeof(dat), "%s.dat", name);
    snprintf(dsl, sizeof(dsl), "%s.dsl", name);
    write_file(dat, table, tlen);
    disassemble(name);
    uint8_t *aml = compile(dsl, true, &len);
    CHECK(len == tlen, "%s: iasl built %zu bytes from the disassembly, we %u", name, len, tlen);
    for (size_t i = 0; i < len; i++)
        CHECK(aml[i] == table[i], "%s byte %zu: iasl 0x%02x, we 0x%02x", name, i, aml[i], table[i]);
    free(aml);
}

static void check_dsdt(const uint8_t *table)
{
    size_t len;
    const uint32_t tlen = le32_get(table + 4);
    write_file("dsdt.dat", table, tlen);
    disassemble("dsdt");
    uint8_t *aml = compile("dsdt.dsl", false, &len);
    CHECK(len == tlen, "DSDT: iasl built %zu bytes from the disassembly, we %u", len, tlen);
    for (size_t i = 0; i < len; i++) {
        if (i == 9 || (i >= 28 && i < 36))
            continue; /* checksum, compiler id and revision: iasl's own */
        CHECK(aml[i] == table[i], "DSDT byte %zu: iasl 0x%02x, we 0x%02x", i, aml[i], table[i]);
    }

    /* Round trip: iasl's AML reads the same as ours. */
    write_file("dsdt2.dat", aml, len);
    free(aml);
    disassemble("dsdt2");
    char *first = read_all("dsdt.dsl", NULL), *second = read_all("dsdt2.dsl", NULL);
    CHECK(strcmp(body_of(first), body_of(second)) == 0,
          "the recompiled DSDT disassembles differently (see dsdt.dsl, dsdt2.dsl)");
    free(first);
    free(second);
}

/* The RSDP as an iasl data-table source, checksums left for iasl to compute. */
static void check_rsdp(const uint8_t *r)
{
    char src[1024];
    size_t len;
    snprintf(src, sizeof(src),
             "[0008]                          Signature : \"%.8s\"\n"
             "[0001]                           Checksum : 00\n"
             "[0006]                             Oem ID : \"%.6s\"\n"
             "[0001]                           Revision : %02X\n"
             "[0004]                       RSDT Address : %08X\n"
             "[0004]                             Length : %08X\n"
             "[0008]                       XSDT Address : %016llX\n"
             "[0001]                  Extended Checksum : 00\n"
             "[0003]                           Reserved : %02X%02X%02X\n",
             (const char *)r, (const char *)r + 9, r[15], le32_get(r + 16), le32_get(r + 20),
             (unsigned long long)le64_get(r + 24), r[35], r[34], r[33]);
    write_file("rsdp.asl", src, strlen(src));
    uint8_t *aml = compile("rsdp.asl", true, &len);
    CHECK(len == 36, "RSDP: iasl built %zu bytes", len);
    for (size_t i = 0; i < len; i++)
        CHECK(aml[i] == r[i], "RSDP byte %zu: iasl 0x%02x, we 0x%02x", i, aml[i], r[i]);
    free(aml);
}

static void check_with_iasl(const struct x86_acpi_desc *d)
{
    find_iasl();
    ta_build_raw(&t, d); /* checksums are iasl's to judge here */
    make_dir();

    check_rsdp(t.area);
    check_data_table("xsdt", ta_locate(&t, "XSDT", false));
    check_data_table("facp", ta_locate(&t, "FACP", false));
    check_data_table("apic", ta_locate(&t, "APIC", false));
    if (d->pci)
        check_data_table("mcfg", ta_locate(&t, "MCFG", false));
    else
        cr_assert_null(ta_locate(&t, "MCFG", false));
    check_dsdt(ta_locate(&t, "DSDT", false));

    remove_dir();
}

Test(x86_acpi_iasl, one_vcpu_no_devices)
{
    struct x86_acpi_desc d = ta_desc(1, 0, NULL);
    check_with_iasl(&d);
}

Test(x86_acpi_iasl, two_vcpus_three_devices)
{
    struct x86_acpi_desc d = ta_desc(2, 3, NULL);
    check_with_iasl(&d);
}

Test(x86_acpi_iasl, max_vcpus_sixteen_devices)
{
    struct x86_acpi_desc d = ta_desc(254, 16, NULL);
    check_with_iasl(&d);
}

Test(x86_acpi_iasl, pci_host_bridge)
{
    struct x86_acpi_desc d = ta_desc(4, 3, &ta_pci);
    check_with_iasl(&d);
}

/* A second segment, buses 0x20-0x2f, no optional windows, every free GSI in use. */
Test(x86_acpi_iasl, pci_minimal_all_devices)
{
    struct x86_acpi_pci p = ta_pci;
    p.segment = 1;
    p.bus_start = 0x20;
    p.bus_end = 0x2f;
    p.mmio64_size = 0;
    p.io_size = 0;
    struct x86_acpi_desc d = ta_desc(16, TA_MAX_DEVS, &p);
    check_with_iasl(&d);
}

/* wisp's own machine with --pci on: conf1 ports in _CRS, the _PRT, and as
 * many virtio devices as fit beside PCI INTx (12). */
Test(x86_acpi_iasl, pci_machine_with_prt)
{
    struct x86_acpi_pci p;
    x86_pci_acpi_desc(256ULL << 20, &p);
    struct x86_acpi_desc d = ta_desc(2, 12, &p);
    check_with_iasl(&d);
}
