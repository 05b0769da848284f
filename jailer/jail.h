/*
 * `wisp jail`: launch wisp with least privilege (security.md A1-A3, A5).
 *
 * The jailer runs as root, builds a per-VM chroot under
 * <base>/<exec-name>/<id>/root holding only a copy of the wisp binary, the
 * shared libraries its loader needs, copies of the kernel and initrd, empty
 * mount points for disk images and the device nodes the VM needs; optionally
 * a cgroup v2 group with limits; then forks a child that becomes PID 1 of a
 * new PID namespace, enters new mount, network, IPC, UTS and cgroup namespaces,
 * pivots into the chroot, drops every privilege and execs `/wisp run ...`.
 * docs/JAILER.md describes each step and what it protects against.
 *
 * The work is split by concern, each file with its own prefix:
 *   jail.c         jail_      the sequence: prepare, spawn, wait, undo, --cleanup
 *   jail_args.c    jail_args_ the command line
 *   jail_input.c   jail_input_ checked inputs: files, wisp run arguments, device nodes
 *   jail_elf.c     jail_elf_  the shared libraries a dynamically linked binary needs
 *   jail_fs.c      jail_fs_   the directory tree (create, copy, mknod, remove)
 *   jail_cgroup.c  jail_cgroup_ the cgroup v2 group
 *   jail_child.c   jail_child_ the child: namespaces, pivot_root, privilege drop, exec
 * This header holds the types they share and the entry points main() and
 * the tests use.
 */
#ifndef JAILER_JAIL_H
#define JAILER_JAIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/config.h"
#include "vmm/error.h"

#define JAIL_ID_MAX         64   /* --id: 1-64 of [A-Za-z0-9-] */
#define JAIL_NAME_MAX       64   /* exec file name, library file names */
#define JAIL_PATH_MAX       256  /* a path inside the jail, or a library's host path */
#define JAIL_HOST_PATH_MAX  1024 /* --chroot-base, --exec-file, files named by the VM arguments */
#define JAIL_MAX_CGROUPS    8
#define JAIL_MAX_DEVS       8
#define JAIL_MAX_FILES      72 /* the binary, its libraries, kernel, initrd */
#define JAIL_MAX_NODES      (JAIL_MAX_DEVS * 2 + 2)
#define JAIL_DEFAULT_BASE   "/srv/wisp"
#define JAIL_DEFAULT_NOFILE 2048
/* Below this wisp cannot even load its libraries and open KVM: refuse it up front. */
#define JAIL_MIN_NOFILE 32
#define JAIL_MAX_NOFILE (1u << 20) /* the kernel's default fs.nr_open */

/* One --cgroup KEY=VALUE. */
struct jail_cgroup_setting {
    char key[24];
    char value[64];
};

enum jail_dev_type { JAIL_DEV_KVM, JAIL_DEV_TUN, JAIL_DEV_VFIO, JAIL_DEV_VHOST_VDPA };

/* One --device: kvm, tun, vfio:GROUP or vhost-vdpa:N. */
struct jail_dev_req {
    enum jail_dev_type type;
    unsigned num; /* vfio group or vhost-vdpa index */
};

/* The parsed command line (jail_args_parse).  Strings point into argv. */
struct jail_opts {
    bool help;      /* -h/--help: print the usage, do nothing else */
    bool cleanup;   /* --cleanup: remove a finished jail and its cgroup */
    bool daemonize; /* --daemonize: print the VMM's pid and return once it runs */
    char id[JAIL_ID_MAX + 1];
    uint32_t uid, gid;       /* never 0 */
    const char *chroot_base; /* absolute; JAIL_DEFAULT_BASE if not given */
    const char *exec_file;   /* absolute; NULL = the running binary (/proc/self/exe) */
    const char *netns;       /* join this network namespace; NULL = a new, empty one */
    unsigned ncgroups;
    struct jail_cgroup_setting cgroups[JAIL_MAX_CGROUPS];
    uint64_t nofile; /* RLIMIT_NOFILE, soft = hard */
    bool has_fsize;
    uint64_t fsize; /* RLIMIT_FSIZE in bytes, soft = hard */
    unsigned ndevs;
    struct jail_dev_req devs[JAIL_MAX_DEVS];
    int run_argc; /* the wisp run arguments after "--" (a leading "run" is dropped) */
    char *const *run_argv;
    /* Where cgroup v2 is mounted; NULL = find it in /proc/self/mountinfo.  No
     * command-line option sets it: it exists so unit tests can use a fake tree. */
    const char *cgroup_root;
};

/* A file copied into the jail (never linked: no shared inode with the host). */
struct jail_file {
    int src_fd;              /* opened and checked by jail_input_plan */
    char dst[JAIL_PATH_MAX]; /* relative to the jail root, e.g. "lib64/ld-linux-x86-64.so.2" */
    mode_t mode;             /* exact mode in the jail; owner root:root */
};

/* A disk image bind-mounted into the jail (too big to copy, and written to). */
struct jail_bind {
    int src_fd;  /* O_PATH, checked: a regular file with one link */
    int tree_fd; /* detached clone of src_fd (open_tree), made by jail_spawn; -1 before */
    char dst[JAIL_PATH_MAX]; /* mount point relative to the jail root, e.g. "disk0" */
    bool readonly;
};

/* A character device node created in the jail, owned by uid:gid, mode 0600. */
struct jail_node {
    char dst[JAIL_PATH_MAX]; /* e.g. "dev/kvm" */
    dev_t rdev;
};

/* Everything the jail is made of, and what has been created so far (for undo). */
struct jail_plan {
    const struct jail_opts *opts;
    char exec_name[JAIL_NAME_MAX + 1];                        /* the <exec-name> directory level */
    char id_path[JAIL_HOST_PATH_MAX + 2 * JAIL_NAME_MAX + 8]; /* <base>/<exec-name>/<id> */
    char root_path[JAIL_HOST_PATH_MAX + 2 * JAIL_NAME_MAX + 16]; /* <id_path>/root */
    unsigned nfiles, nbinds, nnodes;
    struct jail_file files[JAIL_MAX_FILES]; /* files[0] is the binary ("wisp") */
    struct jail_bind binds[CONFIG_MAX_DEVICES];
    struct jail_node nodes[JAIL_MAX_NODES];
    int exec_argc;
    char **exec_argv; /* "wisp", "run", rewritten arguments, NULL (malloc'd) */
    bool vhost_vsock; /* a vsock,backend=vhost device: /dev/vhost-vsock goes in the jail */
    int netns_fd;     /* --netns, checked to be a network namespace; -1 if none */
    int devnull_fd;   /* --daemonize: /dev/null for the VMM's stdio; -1 otherwise */
    /* Directories jail_fs_build opened or created. */
    int base_fd, exec_dir_fd, id_dir_fd, root_fd;
    bool created_base, created_exec_dir, created_id_dir;
    /* cgroup (only with --cgroup) */
    char cg_root[512];  /* where cgroup v2 is mounted */
    char cg_path[1024]; /* <cg_root>/wisp/<id> */
    bool created_cg;
};

/*
 * Run `wisp jail ...` (argv[1] is "jail").  Returns the process exit status:
 * the VMM's own status (or 128 + signal) once it ran, 0 for --help,
 * --cleanup and --daemonize, WISP_EXIT_USAGE (2) for bad input or
 * WISP_EXIT_HOST (3) for a host problem with `err` set (one line starting
 * "jail: ").  Whole-process: closes every inherited fd above 2 and clears
 * the environment before it touches the file system.
 */
int jail_main(int argc, char *const argv[], struct errbuf *err);

/* Empty plan for `opts` (every fd -1). */
void jail_plan_init(struct jail_plan *p, const struct jail_opts *opts);

/*
 * Check every input, then build the jail tree and the cgroup.  On failure
 * whatever was created is removed again (jail_undo) before returning.
 * Returns 0, or -errno with `err` set (exit code 2 or 3).
 */
int jail_prepare(struct jail_plan *p, struct errbuf *err) __must_check;

/*
 * Remove what jail_prepare created: the <id> tree, the <exec-name> and base
 * directories if this run created them and they are empty, and the cgroup.
 * Safe to call more than once.
 */
void jail_undo(struct jail_plan *p);

/* Close the plan's descriptors and free the argument vector. */
void jail_plan_free(struct jail_plan *p);

#endif /* JAILER_JAIL_H */
