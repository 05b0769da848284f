/*
 * Which shared objects a dynamically linked binary needs, so the jailer can
 * copy them into the chroot: wisp links libc, json-c and libseccomp, and
 * inside the chroot the dynamic loader finds only what was copied there.
 *
 * The binary's ELF program headers give the interpreter (PT_INTERP) and the
 * dynamic section gives DT_NEEDED names and DT_RUNPATH/DT_RPATH.  Each name
 * is looked up like the loader does without /etc/ld.so.cache: the RUNPATH
 * directories, then the default system directories; the closure over every
 * library found is the set to copy, each to the same path inside the jail,
 * where the loader will look for it.  A statically linked binary needs
 * nothing.  ELF input is bounds-checked throughout, though it comes from the
 * operator's own files.
 */
#ifndef JAILER_JAIL_ELF_H
#define JAILER_JAIL_ELF_H

#include "vmm/error.h"
#include "jailer/jail.h"

#define JAIL_ELF_MAX_NEEDED 32 /* DT_NEEDED entries per object */
#define JAIL_ELF_MAX_LIBS   64 /* objects in the closure, interpreter included */

/* What one ELF object asks the loader for. */
struct jail_elf_deps {
    char interp[JAIL_PATH_MAX]; /* PT_INTERP; "" if none (static binary, or a library) */
    unsigned nneeded;
    char needed[JAIL_ELF_MAX_NEEDED][JAIL_NAME_MAX]; /* DT_NEEDED, file names without '/' */
    char runpath[JAIL_PATH_MAX]; /* DT_RUNPATH (or DT_RPATH), ':'-separated; "" if none */
};

/* One object of the closure. */
struct jail_elf_lib {
    int fd;                   /* open for reading */
    char path[JAIL_PATH_MAX]; /* host path where it was found = path in the jail */
    char name[JAIL_NAME_MAX]; /* the name it was looked up by */
};

struct jail_elf_libs {
    unsigned n;
    struct jail_elf_lib libs[JAIL_ELF_MAX_LIBS];
};

/*
 * Read the dependencies of the ELF file open on `fd` (read with pread).  It
 * must be ELF64, little-endian, for this host's machine, ET_EXEC or ET_DYN.
 * Returns 0; -ENOEXEC if it is not such a file or is malformed (offsets out
 * of the file, unterminated strings, a '/' in a DT_NEEDED name); -E2BIG if a
 * name or the list is longer than the limits above; -errno from pread.
 */
int jail_elf_read_deps(int fd, struct jail_elf_deps *deps) __must_check;

/*
 * The closure of shared objects the binary on `exec_fd` needs at run time,
 * interpreter first.  Each is opened (following symbolic links: system
 * library directories are trusted host state) and must itself be a valid
 * ELF object for this machine; an object of another machine found first
 * in a directory is skipped, as the loader does.
 * Returns 0 with `out` filled (out->n == 0 for a static binary), or -errno
 * with `err` set: WISP_EXIT_HOST if a library cannot be found or read.
 * On failure no descriptor stays open.
 */
int jail_elf_resolve(int exec_fd, struct jail_elf_libs *out, struct errbuf *err) __must_check;

/* Close every descriptor in `libs` and empty it. */
void jail_elf_libs_close(struct jail_elf_libs *libs);

#endif /* JAILER_JAIL_ELF_H */
