/* Helpers for the jailer's unit tests (see test_jail_util.h). */
#include "tests/unit/jailer/test_jail_util.h"
#include "tests/lib/tree_list.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "jailer/jail_args.h"

char *tj_mkdtemp(void)
{
    char *path = strdup("/tmp/wisp-jail-unit-XXXXXX");
    cr_assert_not_null(path);
    cr_assert_not_null(mkdtemp(path), "mkdtemp failed");
    return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void tj_rm_rf(const char *path)
{
    if (path)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int tj_count_entries(const char *path)
{
    int n = 0;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

void tj_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    cr_assert_geq(fd, 0, "create %s", path);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
}

bool tj_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

#if defined(__x86_64__)
#define TJ_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define TJ_MACHINE EM_AARCH64
#endif

#define VBASE     0x400000ull
#define OFF_PH    64
#define OFF_INTRP 256
#define OFF_STR   512
#define OFF_DYN   768
#define ELF_SIZE  1024

unsigned char *tj_make_elf(bool dynamic, const char *interp, const char *needed, size_t *len)
{
    unsigned char *b = calloc(1, ELF_SIZE);
    cr_assert_not_null(b);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)b;
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_ident[EI_VERSION] = EV_CURRENT;
    eh->e_type = ET_DYN;
    eh->e_machine = TJ_MACHINE;
    eh->e_version = EV_CURRENT;
    eh->e_phoff = OFF_PH;
    eh->e_ehsize = sizeof(*eh);
    eh->e_phentsize = sizeof(Elf64_Phdr);
    Elf64_Phdr *ph = (Elf64_Phdr *)(b + OFF_PH);
    ph[0] = (Elf64_Phdr){.p_type = PT_LOAD,
                         .p_offset = 0,
                         .p_vaddr = VBASE,
                         .p_filesz = ELF_SIZE,
                         .p_memsz = ELF_SIZE};
    eh->e_phnum = 1;
    if (dynamic) {
        size_t ilen = strlen(interp) + 1, nlen = strlen(needed) + 1;
        memcpy(b + OFF_INTRP, interp, ilen);
        /* strtab: "\0" needed "\0" */
        memcpy(b + OFF_STR + 1, needed, nlen);
        size_t strsz = 1 + nlen;
        Elf64_Dyn *dyn = (Elf64_Dyn *)(b + OFF_DYN);
        dyn[0] = (Elf64_Dyn){.d_tag = DT_NEEDED, .d_un.d_val = 1};
        dyn[1] = (Elf64_Dyn){.d_tag = DT_STRTAB, .d_un.d_ptr = VBASE + OFF_STR};
        dyn[2] = (Elf64_Dyn){.d_tag = DT_STRSZ, .d_un.d_val = strsz};
        dyn[3] = (Elf64_Dyn){.d_tag = DT_NULL};
        ph[1] = (Elf64_Phdr){.p_type = PT_INTERP, .p_offset = OFF_INTRP, .p_filesz = ilen};
        ph[2] = (Elf64_Phdr){.p_type = PT_DYNAMIC,
                             .p_offset = OFF_DYN,
                             .p_vaddr = VBASE + OFF_DYN,
                             .p_filesz = 4 * sizeof(Elf64_Dyn)};
        eh->e_phnum = 3;
    }
    *len = ELF_SIZE;
    return b;
}

void tj_write_elf(const char *path, bool dynamic, const char *interp, const char *needed)
{
    size_t len;
    unsigned char *b = tj_make_elf(dynamic, interp, needed, &len);
    tj_write_file(path, b, len, 0755);
    free(b);
}

char *tj_list_tree(const char *dir)
{
    return tree_list(dir);
}

int tj_parse(struct jail_opts *o, struct errbuf *err, ...)
{
    static char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"wisp";
    argv[argc++] = (char *)"jail";
    va_list ap;
    va_start(ap, err);
    const char *a;
    while (argc < 63 && (a = va_arg(ap, const char *)) != NULL)
        argv[argc++] = (char *)(uintptr_t)a;
    va_end(ap);
    argv[argc] = NULL;
    memset(err, 0, sizeof(*err));
    return jail_args_parse(argc, argv, o, err);
}

bool tj_is_root(void)
{
    return geteuid() == 0;
}
