/*
 * Shared-library closure of a dynamically linked binary (see jail_elf.h):
 * the jail holds nothing but what the binary needs, and the loader inside
 * it can only find what was copied, so the list must be exactly right.
 */
#include "jailer/jail_elf.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jailer/jail_args.h"

#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#define MULTIARCH    "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#define MULTIARCH    "aarch64-linux-gnu"
#else
#error "jail_elf.c: unsupported host architecture"
#endif

/* Where the loader looks when RUNPATH does not name the library, in its order. */
static const char *const default_dirs[] = {
    "/lib/" MULTIARCH, "/usr/lib/" MULTIARCH, "/lib64", "/usr/lib64", "/lib", "/usr/lib",
};

/* Sanity limits on what a real binary or library has. */
#define MAX_PHNUM     128
#define MAX_DYN_BYTES (64u * 1024)
#define MAX_STRTAB    (1u << 20)

/* Read exactly `len` bytes at `off`; a short file is malformed. */
static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENOEXEC;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int check_ehdr(const Elf64_Ehdr *eh)
{
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != HOST_MACHINE ||
        (eh->e_type != ET_EXEC && eh->e_type != ET_DYN) || eh->e_phentsize != sizeof(Elf64_Phdr) ||
        eh->e_phnum == 0 || eh->e_phnum > MAX_PHNUM)
        return -ENOEXEC;
    return 0;
}

/* File offset of virtual address range [va, va+len) through the PT_LOAD headers. */
static int va_to_offset(const Elf64_Phdr *ph, unsigned n, uint64_t va, uint64_t len, uint64_t *off)
{
    for (unsigned i = 0; i < n; i++) {
        if (ph[i].p_type != PT_LOAD || va < ph[i].p_vaddr)
            continue;
        uint64_t delta = va - ph[i].p_vaddr;
        if (delta >= ph[i].p_filesz || len > ph[i].p_filesz - delta)
            continue;
        if (__builtin_add_overflow(ph[i].p_offset, delta, off))
            return -ENOEXEC;
        return 0;
    }
    return -ENOEXEC;
}

/* The NUL-terminated string at `off` of the table, or NULL if it runs off the end. */
static const char *str_at(const char *tab, uint64_t size, uint64_t off)
{
    if (off >= size || memchr(tab + off, '\0', size - off) == NULL)
        return NULL;
    return tab + off;
}

static int read_interp(int fd, const Elf64_Phdr *ph, struct jail_elf_deps *d)
{
    if (ph->p_filesz < 2)
        return -ENOEXEC;
    if (ph->p_filesz > sizeof(d->interp))
        return -E2BIG;
    int ret = pread_all(fd, d->interp, ph->p_filesz, ph->p_offset);
    if (ret < 0)
        return ret;
    if (strnlen(d->interp, ph->p_filesz) != ph->p_filesz - 1 || d->interp[0] != '/')
        return -ENOEXEC;
    return 0;
}

/* DT_NEEDED names and RUNPATH from the dynamic section described by `dyn` (n entries). */
static int read_dynamic_strings(int fd, const Elf64_Phdr *ph, unsigned phnum, const Elf64_Dyn *dyn,
                                size_t n, struct jail_elf_deps *d)
{
    uint64_t strtab = 0, strsz = 0, runpath = UINT64_MAX, rpath = UINT64_MAX;
    uint64_t needed[JAIL_ELF_MAX_NEEDED];
    unsigned nneeded = 0;
    bool have_strtab = false;
    for (size_t i = 0; i < n && dyn[i].d_tag != DT_NULL; i++) {
        uint64_t v = dyn[i].d_un.d_val;
        switch (dyn[i].d_tag) {
        case DT_STRTAB:
            strtab = v;
            have_strtab = true;
            break;
        case DT_STRSZ:
            strsz = v;
            break;
        case DT_RUNPATH:
            runpath = v;
            break;
        case DT_RPATH:
            rpath = v;
            break;
        case DT_NEEDED:
            if (nneeded >= JAIL_ELF_MAX_NEEDED)
                return -E2BIG;
            needed[nneeded++] = v;
            break;
        default:
            break;
        }
    }
    if (nneeded == 0 && runpath == UINT64_MAX && rpath == UINT64_MAX)
        return 0;
    if (!have_strtab || strsz == 0 || strsz > MAX_STRTAB)
        return -ENOEXEC;
    uint64_t off;
    int ret = va_to_offset(ph, phnum, strtab, strsz, &off);
    if (ret < 0)
        return ret;
    char *tab = malloc(strsz);
    if (!tab)
        return -ENOMEM;
    ret = pread_all(fd, tab, strsz, off);
    for (unsigned i = 0; ret == 0 && i < nneeded; i++) {
        const char *s = str_at(tab, strsz, needed[i]);
        if (!s || !s[0] || strchr(s, '/'))
            ret = -ENOEXEC;
        else if (strlen(s) >= JAIL_NAME_MAX)
            ret = -E2BIG;
        else
            memcpy(d->needed[d->nneeded++], s, strlen(s) + 1);
    }
    /* The loader ignores DT_RPATH when DT_RUNPATH is present. */
    uint64_t rp = runpath != UINT64_MAX ? runpath : rpath;
    if (ret == 0 && rp != UINT64_MAX) {
        const char *s = str_at(tab, strsz, rp);
        if (!s)
            ret = -ENOEXEC;
        else if (strlen(s) >= sizeof(d->runpath))
            ret = -E2BIG;
        else
            memcpy(d->runpath, s, strlen(s) + 1);
    }
    free(tab);
    return ret;
}

int jail_elf_read_deps(int fd, struct jail_elf_deps *d)
{
    memset(d, 0, sizeof(*d));
    Elf64_Ehdr eh;
    int ret = pread_all(fd, &eh, sizeof(eh), 0);
    if (ret < 0)
        return ret;
    ret = check_ehdr(&eh);
    if (ret < 0)
        return ret;
    Elf64_Phdr ph[MAX_PHNUM];
    ret = pread_all(fd, ph, (size_t)eh.e_phnum * sizeof(ph[0]), eh.e_phoff);
    if (ret < 0)
        return ret;
    const Elf64_Phdr *dynph = NULL;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type == PT_INTERP) {
            if (d->interp[0])
                return -ENOEXEC;
            ret = read_interp(fd, &ph[i], d);
            if (ret < 0)
                return ret;
        } else if (ph[i].p_type == PT_DYNAMIC) {
            if (dynph)
                return -ENOEXEC;
            dynph = &ph[i];
        }
    }
    if (!dynph)
        return 0; /* static */
    if (dynph->p_filesz == 0 || dynph->p_filesz > MAX_DYN_BYTES ||
        dynph->p_filesz % sizeof(Elf64_Dyn))
        return -ENOEXEC;
    Elf64_Dyn *dyn = malloc(dynph->p_filesz);
    if (!dyn)
        return -ENOMEM;
    ret = pread_all(fd, dyn, dynph->p_filesz, dynph->p_offset);
    if (ret == 0)
        ret = read_dynamic_strings(fd, ph, eh.e_phnum, dyn, dynph->p_filesz / sizeof(Elf64_Dyn), d);
    free(dyn);
    return ret;
}

void jail_elf_libs_close(struct jail_elf_libs *libs)
{
    for (unsigned i = 0; i < libs->n; i++)
        if (libs->libs[i].fd >= 0)
            close(libs->libs[i].fd);
    libs->n = 0;
}

static bool have_lib(const struct jail_elf_libs *libs, const char *name)
{
    for (unsigned i = 0; i < libs->n; i++)
        if (!strcmp(libs->libs[i].name, name))
            return true;
    return false;
}

static int add_lib(struct jail_elf_libs *libs, int fd, const char *path, const char *name,
                   struct errbuf *err)
{
    if (libs->n >= JAIL_ELF_MAX_LIBS) {
        close(fd);
        return err_set(err, WISP_EXIT_HOST, E2BIG, "jail: the binary needs more than %d libraries",
                       JAIL_ELF_MAX_LIBS);
    }
    struct jail_elf_lib *l = &libs->libs[libs->n++];
    l->fd = fd;
    snprintf(l->path, sizeof(l->path), "%s", path);
    snprintf(l->name, sizeof(l->name), "%s", name);
    return 0;
}

/* Open `dir`/`name` if it is a regular file and an ELF object for this machine. */
static int try_open(const char *dir, const char *name, char *path, size_t pathlen)
{
    if ((size_t)snprintf(path, pathlen, "%s/%s", dir, name) >= pathlen || !jail_args_path_ok(path))
        return -ENOENT;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    struct jail_elf_deps probe;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || jail_elf_read_deps(fd, &probe) < 0) {
        close(fd);
        return -ENOEXEC;
    }
    return fd;
}

/* Try each absolute, literal directory of a ':'-separated RUNPATH. */
static int search_runpath(const char *runpath, const char *name, char *path, size_t pathlen)
{
    const char *p = runpath;
    while (p && *p) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        char dir[JAIL_PATH_MAX];
        /* $ORIGIN and friends, relative and ".." entries are skipped: they name
         * places relative to the binary, which has moved into the jail. */
        if (n > 1 && n < sizeof(dir) && p[0] == '/' && !memchr(p, '$', n)) {
            memcpy(dir, p, n);
            dir[n] = '\0';
            while (n > 1 && dir[n - 1] == '/')
                dir[--n] = '\0';
            int fd = try_open(dir, name, path, pathlen);
            if (fd >= 0)
                return fd;
        }
        p = colon ? colon + 1 : NULL;
    }
    return -ENOENT;
}

static int find_lib(const char *name, const char *own_runpath, const char *exec_runpath, char *path,
                    size_t pathlen)
{
    int fd = search_runpath(own_runpath, name, path, pathlen);
    if (fd < 0)
        fd = search_runpath(exec_runpath, name, path, pathlen);
    for (size_t i = 0; fd < 0 && i < ARRAY_SIZE(default_dirs); i++)
        fd = try_open(default_dirs[i], name, path, pathlen);
    return fd;
}

static int add_needed(struct jail_elf_libs *libs, const struct jail_elf_deps *d,
                      const char *exec_runpath, struct errbuf *err)
{
    for (unsigned i = 0; i < d->nneeded; i++) {
        if (have_lib(libs, d->needed[i]))
            continue;
        char path[JAIL_PATH_MAX];
        int fd = find_lib(d->needed[i], d->runpath, exec_runpath, path, sizeof(path));
        if (fd < 0)
            return err_set(err, WISP_EXIT_HOST, ENOENT,
                           "jail: cannot find library %s in RUNPATH or /lib/" MULTIARCH
                           ", /usr/lib/" MULTIARCH ", /lib64, /usr/lib64, /lib, /usr/lib",
                           d->needed[i]);
        int ret = add_lib(libs, fd, path, d->needed[i], err);
        if (ret < 0)
            return ret;
    }
    return 0;
}

int jail_elf_resolve(int exec_fd, struct jail_elf_libs *out, struct errbuf *err)
{
    out->n = 0;
    struct jail_elf_deps exec_deps, d;
    int ret = jail_elf_read_deps(exec_fd, &exec_deps);
    if (ret < 0)
        return err_set(err, WISP_EXIT_USAGE, -ret,
                       "jail: the exec file is not a valid ELF64 binary for this machine (%s)",
                       strerror(-ret));
    if (!exec_deps.interp[0]) {
        if (exec_deps.nneeded)
            return err_set(err, WISP_EXIT_USAGE, ENOEXEC,
                           "jail: the exec file needs libraries but names no interpreter");
        return 0;
    }
    if (!jail_args_path_ok(exec_deps.interp))
        return err_set(err, WISP_EXIT_USAGE, ENOEXEC, "jail: unusable interpreter path '%s'",
                       exec_deps.interp);
    int fd = open(exec_deps.interp, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "jail: cannot open the interpreter %s: %s",
                       exec_deps.interp, strerror(errno));
    /* The loader answers to its own file name (libc lists it in DT_NEEDED). */
    const char *slash = strrchr(exec_deps.interp, '/');
    ret = add_lib(out, fd, exec_deps.interp, slash + 1, err);
    if (ret == 0)
        ret = add_needed(out, &exec_deps, exec_deps.runpath, err);
    /* Breadth-first over what was added; out->n grows as we go. */
    for (unsigned i = 0; ret == 0 && i < out->n; i++) {
        ret = jail_elf_read_deps(out->libs[i].fd, &d);
        if (ret < 0) {
            ret = err_set(err, WISP_EXIT_HOST, -ret, "jail: cannot read library %s: %s",
                          out->libs[i].path, strerror(-ret));
            break;
        }
        ret = add_needed(out, &d, exec_deps.runpath, err);
    }
    if (ret < 0)
        jail_elf_libs_close(out);
    return ret;
}
