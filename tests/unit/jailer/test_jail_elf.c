/*
 * Shared-library closure for the jail: real binaries (this test program),
 * synthetic ELF files, and malformed ones (which must be refused, never
 * read out of bounds).
 */
#include "jailer/jail_elf.h"

#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/jailer/test_jail_util.h"

static char *dir;

static void setup(void)
{
    dir = tj_mkdtemp();
}

static void teardown(void)
{
    tj_rm_rf(dir);
    free(dir);
}

TestSuite(jail_elf, .init = setup, .fini = teardown);

/* Write `b` to a file in the test directory and read its deps. */
static int deps_of(const unsigned char *b, size_t len, struct jail_elf_deps *d)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/elf", dir);
    unlink(path);
    tj_write_file(path, b, len, 0644);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    int ret = jail_elf_read_deps(fd, d);
    close(fd);
    return ret;
}

Test(jail_elf, own_binary)
{
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    struct jail_elf_deps d;
    cr_assert_eq(jail_elf_read_deps(fd, &d), 0);
    cr_assert_eq(d.interp[0], '/', "interp '%s'", d.interp);
    bool libc = false;
    for (unsigned i = 0; i < d.nneeded; i++)
        libc |= !strcmp(d.needed[i], "libc.so.6");
    cr_assert(libc, "libc.so.6 not among %u DT_NEEDED", d.nneeded);

    struct jail_elf_libs libs;
    struct errbuf err = {0};
    cr_assert_eq(jail_elf_resolve(fd, &libs, &err), 0, "%s", err.msg);
    close(fd);
    cr_assert_gt(libs.n, 2);
    cr_assert_str_eq(libs.libs[0].path, d.interp, "the interpreter comes first");
    bool have_libc = false, have_criterion = false;
    for (unsigned i = 0; i < libs.n; i++) {
        cr_assert_eq(libs.libs[i].path[0], '/');
        cr_assert_geq(libs.libs[i].fd, 0);
        have_libc |= !strcmp(libs.libs[i].name, "libc.so.6");
        have_criterion |= !strncmp(libs.libs[i].name, "libcriterion.so", 15);
        for (unsigned j = 0; j < i; j++)
            cr_assert_str_neq(libs.libs[i].name, libs.libs[j].name, "duplicate");
    }
    cr_assert(have_libc);
    cr_assert(have_criterion, "indirect dependencies are followed");
    jail_elf_libs_close(&libs);
    cr_assert_eq(libs.n, 0);
}

Test(jail_elf, synthetic_dynamic)
{
    size_t len;
    unsigned char *b = tj_make_elf(true, "/lib64/ld-test.so.2", "libwisptest.so.1", &len);
    struct jail_elf_deps d;
    cr_assert_eq(deps_of(b, len, &d), 0);
    cr_assert_str_eq(d.interp, "/lib64/ld-test.so.2");
    cr_assert_eq(d.nneeded, 1);
    cr_assert_str_eq(d.needed[0], "libwisptest.so.1");
    cr_assert_str_eq(d.runpath, "");
    free(b);
}

Test(jail_elf, static_binary_needs_nothing)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/static", dir);
    tj_write_elf(path, false, NULL, NULL);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct jail_elf_libs libs;
    struct errbuf err = {0};
    cr_assert_eq(jail_elf_resolve(fd, &libs, &err), 0, "%s", err.msg);
    cr_assert_eq(libs.n, 0);
    close(fd);
}

Test(jail_elf, missing_library_is_a_host_error)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/dyn", dir);
    /* A real interpreter, a library nobody has. */
    int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    struct jail_elf_deps own;
    cr_assert_eq(jail_elf_read_deps(self, &own), 0);
    close(self);
    tj_write_elf(path, true, own.interp, "libwisp-does-not-exist.so.9");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct jail_elf_libs libs;
    struct errbuf err = {0};
    cr_assert_lt(jail_elf_resolve(fd, &libs, &err), 0);
    close(fd);
    cr_assert_eq(err.exit_code, WISP_EXIT_HOST);
    cr_assert_not_null(strstr(err.msg, "libwisp-does-not-exist.so.9"), "%s", err.msg);
    cr_assert_eq(libs.n, 0, "nothing stays open");
}

Test(jail_elf, not_an_elf_is_bad_input)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/script", dir);
    tj_write_file(path, "#!/bin/sh\necho hi\n", 18, 0755);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct jail_elf_libs libs;
    struct errbuf err = {0};
    cr_assert_lt(jail_elf_resolve(fd, &libs, &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    close(fd);
}

/* A corruption of the synthetic dynamic ELF and the result it must give. */
static void expect_refused(void (*mutate)(unsigned char *b, size_t *len), int want,
                           const char *what)
{
    size_t len;
    unsigned char *b = tj_make_elf(true, "/lib64/ld-test.so.2", "libx.so.1", &len);
    mutate(b, &len);
    struct jail_elf_deps d;
    int ret = deps_of(b, len, &d);
    cr_expect_eq(ret, want, "%s: got %d, want %d", what, ret, want);
    free(b);
}

static Elf64_Phdr *phdr(unsigned char *b, unsigned i)
{
    return (Elf64_Phdr *)(b + 64 + i * sizeof(Elf64_Phdr));
}

static Elf64_Dyn *dyn(unsigned char *b, unsigned i)
{
    return (Elf64_Dyn *)(b + 768 + i * sizeof(Elf64_Dyn));
}

static void m_magic(unsigned char *b, size_t *l)
{
    (void)l;
    b[1] = 'X';
}
static void m_class(unsigned char *b, size_t *l)
{
    (void)l;
    b[EI_CLASS] = ELFCLASS32;
}
static void m_machine(unsigned char *b, size_t *l)
{
    (void)l;
    ((Elf64_Ehdr *)b)->e_machine = EM_ARM;
}
static void m_type(unsigned char *b, size_t *l)
{
    (void)l;
    ((Elf64_Ehdr *)b)->e_type = ET_REL;
}
static void m_phnum0(unsigned char *b, size_t *l)
{
    (void)l;
    ((Elf64_Ehdr *)b)->e_phnum = 0;
}
static void m_phnum_huge(unsigned char *b, size_t *l)
{
    (void)l;
    ((Elf64_Ehdr *)b)->e_phnum = 0xffff;
}
static void m_phentsize(unsigned char *b, size_t *l)
{
    (void)l;
    ((Elf64_Ehdr *)b)->e_phentsize = 32;
}
static void m_phoff_past_end(unsigned char *b, size_t *l)
{
    (void)l;
    ((Elf64_Ehdr *)b)->e_phoff = 1ull << 40;
}
static void m_truncated(unsigned char *b, size_t *l)
{
    (void)b;
    *l = 700; /* cuts the dynamic section */
}
static void m_interp_unterminated(unsigned char *b, size_t *l)
{
    (void)l;
    phdr(b, 1)->p_filesz = 5; /* "/lib6" without its NUL */
}
static void m_interp_relative(unsigned char *b, size_t *l)
{
    (void)l;
    b[256] = 'x';
}
static void m_interp_huge(unsigned char *b, size_t *l)
{
    (void)l;
    phdr(b, 1)->p_filesz = 1u << 20;
}
static void m_two_dynamic(unsigned char *b, size_t *l)
{
    (void)l;
    phdr(b, 1)->p_type = PT_DYNAMIC;
}
static void m_dyn_odd_size(unsigned char *b, size_t *l)
{
    (void)l;
    phdr(b, 2)->p_filesz = 17;
}
static void m_needed_past_strtab(unsigned char *b, size_t *l)
{
    (void)l;
    dyn(b, 0)->d_un.d_val = 4096;
}
static void m_strtab_outside_load(unsigned char *b, size_t *l)
{
    (void)l;
    dyn(b, 1)->d_un.d_ptr = 0x900000;
}
static void m_strsz_past_load(unsigned char *b, size_t *l)
{
    (void)l;
    dyn(b, 2)->d_un.d_val = 4096;
}
static void m_strsz_unterminated(unsigned char *b, size_t *l)
{
    (void)l;
    dyn(b, 2)->d_un.d_val = 4; /* "\0lib" */
}
static void m_needed_with_slash(unsigned char *b, size_t *l)
{
    (void)l;
    b[512 + 4] = '/';
}
static void m_needed_empty(unsigned char *b, size_t *l)
{
    (void)l;
    dyn(b, 0)->d_un.d_val = 0;
}
static void m_no_strtab(unsigned char *b, size_t *l)
{
    (void)l;
    dyn(b, 1)->d_tag = DT_DEBUG;
}

Test(jail_elf, malformed_files_are_refused)
{
    expect_refused(m_magic, -ENOEXEC, "bad magic");
    expect_refused(m_class, -ENOEXEC, "ELF32");
    expect_refused(m_machine, -ENOEXEC, "other machine");
    expect_refused(m_type, -ENOEXEC, "relocatable");
    expect_refused(m_phnum0, -ENOEXEC, "no program headers");
    expect_refused(m_phnum_huge, -ENOEXEC, "65535 program headers");
    expect_refused(m_phentsize, -ENOEXEC, "wrong phentsize");
    expect_refused(m_phoff_past_end, -ENOEXEC, "program headers past the end");
    expect_refused(m_truncated, -ENOEXEC, "truncated file");
    expect_refused(m_interp_unterminated, -ENOEXEC, "unterminated interpreter");
    expect_refused(m_interp_relative, -ENOEXEC, "relative interpreter");
    expect_refused(m_interp_huge, -E2BIG, "huge interpreter");
    expect_refused(m_two_dynamic, -ENOEXEC, "two PT_DYNAMIC");
    expect_refused(m_dyn_odd_size, -ENOEXEC, "dynamic size not a multiple of an entry");
    expect_refused(m_needed_past_strtab, -ENOEXEC, "DT_NEEDED past the string table");
    expect_refused(m_strtab_outside_load, -ENOEXEC, "string table outside PT_LOAD");
    expect_refused(m_strsz_past_load, -ENOEXEC, "string table runs past PT_LOAD");
    expect_refused(m_strsz_unterminated, -ENOEXEC, "last string unterminated");
    expect_refused(m_needed_with_slash, -ENOEXEC, "DT_NEEDED with a slash");
    expect_refused(m_needed_empty, -ENOEXEC, "empty DT_NEEDED");
    expect_refused(m_no_strtab, -ENOEXEC, "no DT_STRTAB");
}

Test(jail_elf, random_corruption_never_crashes)
{
    /* Deterministic byte flips over the headers, interp, strtab and dynamic
     * section; ASan builds catch any out-of-bounds read. */
    size_t len;
    unsigned char *orig = tj_make_elf(true, "/lib64/ld-test.so.2", "libx.so.1", &len);
    unsigned char *b = malloc(len);
    uint32_t seed = 12345;
    unsigned accepted = 0;
    for (int round = 0; round < 300; round++) {
        memcpy(b, orig, len);
        for (int k = 0; k < 4; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % 1024;
            seed = seed * 1103515245u + 12345u;
            b[pos] ^= (unsigned char)(1u << ((seed >> 16) % 8));
        }
        struct jail_elf_deps d;
        int ret = deps_of(b, len, &d);
        cr_assert(ret == 0 || ret == -ENOEXEC || ret == -E2BIG, "round %d: %d", round, ret);
        if (ret == 0) {
            accepted++;
            cr_assert(d.nneeded <= JAIL_ELF_MAX_NEEDED);
            cr_assert(memchr(d.interp, '\0', sizeof(d.interp)) != NULL);
            for (unsigned i = 0; i < d.nneeded; i++)
                cr_assert_null(strchr(d.needed[i], '/'));
        }
    }
    cr_log_info("%u of 300 corrupted files still parse", accepted);
    free(b);
    free(orig);
}
