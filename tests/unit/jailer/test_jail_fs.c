/*
 * The jail tree: exact contents, modes and owners (Firecracker's
 * test_default_chroot_hierarchy), refusals that leave nothing behind, and
 * removal of trees a hostile VMM may have written.  Building a jail needs
 * root (chown, mknod): those tests skip otherwise.
 */
#include "jailer/jail_fs.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/jailer/test_jail_util.h"
#include "jailer/jail_args.h"
#include "jailer/jail_elf.h"

static char *dir;
static char base[512], bin[512], kernel[512], initrd[512], disk[512];
static struct errbuf err;

static void setup(void)
{
    dir = tj_mkdtemp();
    snprintf(base, sizeof(base), "%s/base", dir);
    snprintf(bin, sizeof(bin), "%s/bin", dir);
    mkdir(bin, 0755);
    snprintf(bin, sizeof(bin), "%s/bin/wisp", dir);
    snprintf(kernel, sizeof(kernel), "%s/vmlinux", dir);
    snprintf(initrd, sizeof(initrd), "%s/initrd", dir);
    snprintf(disk, sizeof(disk), "%s/disk.img", dir);
    tj_write_elf(bin, false, NULL, NULL);
    tj_write_file(kernel, "KERNEL", 6, 0640);
    tj_write_file(initrd, "INITRD!", 7, 0600);
    tj_write_file(disk, "DISK", 4, 0600);
    memset(&err, 0, sizeof(err));
}

static void teardown(void)
{
    tj_rm_rf(dir);
    free(dir);
}

TestSuite(jail_fs, .init = setup, .fini = teardown);

static void need_root(void)
{
    if (!tj_is_root())
        cr_skip_test("building a jail needs root (chown, mknod)");
}

/* Parse "wisp jail --id ID --uid --gid [extra...] -- run..." with the static test binary. */
static void parse(struct jail_opts *o, const char *id, const char *const *extra,
                  const char *const *run)
{
    static char *argv[64];
    int argc = 0;
    const char *head[] = {"wisp",  "jail",  "--id",          id,   "--uid",       "54321",
                          "--gid", "54322", "--chroot-base", base, "--exec-file", bin};
    for (size_t i = 0; i < ARRAY_SIZE(head); i++)
        argv[argc++] = (char *)(uintptr_t)head[i];
    for (; extra && *extra; extra++)
        argv[argc++] = (char *)(uintptr_t)*extra;
    argv[argc++] = (char *)"--";
    for (; *run; run++)
        argv[argc++] = (char *)(uintptr_t)*run;
    argv[argc] = NULL;
    memset(&err, 0, sizeof(err));
    cr_assert_eq(jail_args_parse(argc, argv, o, &err), 0, "%s", err.msg);
}

static char *read_all(const char *path)
{
    static char buf[64];
    memset(buf, 0, sizeof(buf));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s", path);
    cr_assert_geq(read(fd, buf, sizeof(buf) - 1), 0);
    close(fd);
    return buf;
}

Test(jail_fs, default_hierarchy_exact)
{
    need_root();
    char blk[600];
    snprintf(blk, sizeof(blk), "blk,path=%s", disk);
    const char *run[] = {"--kernel", kernel, "--initrd", initrd, "--device", blk, NULL};
    const char *extra[] = {"--device", "tun", NULL};
    struct jail_opts o;
    struct jail_plan p;
    parse(&o, "vm1", extra, run);
    jail_plan_init(&p, &o);
    cr_assert_eq(jail_prepare(&p, &err), 0, "%s", err.msg);

    char *tree = tj_list_tree(base);
    const char *want = "wisp d 0755 0:0\n"
                       "wisp/vm1 d 0755 0:0\n"
                       "wisp/vm1/root d 0700 54321:54322\n"
                       "wisp/vm1/root/dev d 0755 0:0\n"
                       "wisp/vm1/root/dev/kvm c 0600 54321:54322 10:232\n"
                       "wisp/vm1/root/dev/net d 0755 0:0\n"
                       "wisp/vm1/root/dev/net/tun c 0600 54321:54322 10:200\n"
                       "wisp/vm1/root/disk0 f 0400 0:0\n"
                       "wisp/vm1/root/initrd f 0444 0:0\n"
                       "wisp/vm1/root/kernel f 0444 0:0\n"
                       "wisp/vm1/root/wisp f 0511 0:0\n";
    cr_assert_str_eq(tree, want, "tree:\n%s", tree);
    free(tree);
    char path[700];
    snprintf(path, sizeof(path), "%s/wisp/vm1/root/kernel", base);
    cr_assert_str_eq(read_all(path), "KERNEL");
    snprintf(path, sizeof(path), "%s/wisp/vm1/root/initrd", base);
    cr_assert_str_eq(read_all(path), "INITRD!");
    snprintf(path, sizeof(path), "%s/wisp/vm1/root/disk0", base);
    cr_assert_str_eq(read_all(path), "", "a mount point, not a copy of the disk");
    /* Copies, not links: the originals keep one link each. */
    struct stat st;
    cr_assert_eq(stat(kernel, &st), 0);
    cr_assert_eq(st.st_nlink, 1);
    snprintf(path, sizeof(path), "%s/wisp/vm1", base);
    cr_assert_str_eq(p.id_path, path);

    jail_undo(&p);
    jail_plan_free(&p);
    cr_assert_not(tj_exists(base), "the base this run created is gone again");
}

Test(jail_fs, libraries_are_copied_where_the_loader_looks)
{
    need_root();
    /* The default exec file is the running binary (this dynamically linked test). */
    static char *argv[16];
    const char *a[] = {"wisp",  "jail",          "--id", "dyn", "--uid",    "54321", "--gid",
                       "54322", "--chroot-base", base,   "--",  "--kernel", kernel,  NULL};
    for (int i = 0; a[i]; i++)
        argv[i] = (char *)(uintptr_t)a[i];
    struct jail_opts o;
    struct jail_plan p;
    cr_assert_eq(jail_args_parse(13, argv, &o, &err), 0, "%s", err.msg);
    jail_plan_init(&p, &o);
    cr_assert_eq(jail_prepare(&p, &err), 0, "%s", err.msg);
    int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    struct jail_elf_libs libs;
    cr_assert_eq(jail_elf_resolve(self, &libs, &err), 0);
    close(self);
    for (unsigned i = 0; i < libs.n; i++) {
        char path[900];
        snprintf(path, sizeof(path), "%s/wisp/dyn/root%s", base, libs.libs[i].path);
        struct stat in, host;
        cr_assert_eq(lstat(path, &in), 0, "%s missing", path);
        cr_assert(S_ISREG(in.st_mode), "%s is a copy, not a link", path);
        cr_assert_eq(in.st_mode & 07777, 0555);
        cr_assert_eq(in.st_uid, 0);
        cr_assert_eq(fstat(libs.libs[i].fd, &host), 0);
        cr_assert_eq(in.st_size, host.st_size, "%s", path);
        cr_assert_neq(in.st_ino, host.st_ino);
    }
    jail_elf_libs_close(&libs);
    jail_undo(&p);
    jail_plan_free(&p);
    cr_assert_not(tj_exists(base));
}

/* jail_prepare must fail with `code` and leave `base` exactly as it was. */
static void expect_refused_clean(struct jail_opts *o, int code, const char *needle)
{
    char *before = tj_exists(base) ? tj_list_tree(base) : NULL;
    struct jail_plan p;
    jail_plan_init(&p, o);
    memset(&err, 0, sizeof(err));
    cr_assert_lt(jail_prepare(&p, &err), 0, "accepted; wanted '%s'", needle);
    cr_assert_eq(err.exit_code, code, "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, needle), "'%s' lacks '%s'", err.msg, needle);
    jail_plan_free(&p);
    if (!before) {
        cr_assert_not(tj_exists(base), "%s was left behind", base);
        return;
    }
    char *after = tj_list_tree(base);
    cr_assert_str_eq(after, before, "left behind:\n%s", after);
    free(after);
    free(before);
}

Test(jail_fs, refused_inputs_leave_nothing)
{
    need_root();
    struct jail_opts o;
    char hard[600];
    snprintf(hard, sizeof(hard), "%s.hard", kernel);
    cr_assert_eq(link(kernel, hard), 0);
    const char *run1[] = {"--kernel", kernel, NULL};
    parse(&o, "vm2", NULL, run1);
    expect_refused_clean(&o, WISP_EXIT_USAGE, "hard links");
    unlink(hard);

    char sym[600];
    snprintf(sym, sizeof(sym), "%s/bin/wisp-link", dir);
    cr_assert_eq(symlink(bin, sym), 0);
    static char *argv[24];
    const char *a[] = {"wisp",  "jail",     "--id",          "vm3", "--uid",       "5",
                       "--gid", "5",        "--chroot-base", base,  "--exec-file", sym,
                       "--",    "--kernel", kernel,          NULL};
    for (int i = 0; a[i]; i++)
        argv[i] = (char *)(uintptr_t)a[i];
    cr_assert_eq(jail_args_parse(15, argv, &o, &err), 0, "%s", err.msg);
    expect_refused_clean(&o, WISP_EXIT_USAGE, "symbolic link");

    const char *extra[] = {"--device", "vhost-vdpa:999999", NULL};
    parse(&o, "vm4", extra, run1);
    expect_refused_clean(&o, WISP_EXIT_HOST, "/dev/vhost-vdpa-999999");
}

Test(jail_fs, existing_jail_is_refused_and_kept)
{
    need_root();
    char path[700];
    mkdir(base, 0755);
    snprintf(path, sizeof(path), "%s/wisp", base);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/wisp/vm5", base);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/wisp/vm5/keep-me", base);
    tj_write_file(path, "x", 1, 0600);
    const char *run[] = {"--kernel", kernel, NULL};
    struct jail_opts o;
    parse(&o, "vm5", NULL, run);
    expect_refused_clean(&o, WISP_EXIT_USAGE, "already exists");
    cr_assert(tj_exists(path));
}

Test(jail_fs, unsafe_base_is_refused)
{
    need_root();
    mkdir(base, 0755);
    chmod(base, 0777);
    const char *run[] = {"--kernel", kernel, NULL};
    struct jail_opts o;
    parse(&o, "vm6", NULL, run);
    expect_refused_clean(&o, WISP_EXIT_USAGE, "not writable by group or others");
    chmod(base, 0755);
    cr_assert_eq(chown(base, 1000, 1000), 0);
    expect_refused_clean(&o, WISP_EXIT_USAGE, "owned by root");
    /* A symbolic link as the base is refused too. */
    rmdir(base);
    char real[600];
    snprintf(real, sizeof(real), "%s/real-base", dir);
    mkdir(real, 0755);
    cr_assert_eq(symlink(real, base), 0);
    struct jail_plan p;
    jail_plan_init(&p, &o);
    memset(&err, 0, sizeof(err));
    cr_assert_lt(jail_prepare(&p, &err), 0);
    cr_assert_not_null(strstr(err.msg, "not a directory"), "%s", err.msg);
    jail_plan_free(&p);
    cr_assert_eq(tj_count_entries(real), 0);
}

/* A fake cgroup v2 root: controllers listed, subtree_control empty. */
static void fake_cgroup(char *root, size_t len, const char *controllers)
{
    snprintf(root, len, "%s/cgroup", dir);
    mkdir(root, 0755);
    char path[700];
    snprintf(path, sizeof(path), "%s/cgroup.controllers", root);
    tj_write_file(path, controllers, strlen(controllers), 0444);
    snprintf(path, sizeof(path), "%s/cgroup.subtree_control", root);
    tj_write_file(path, "", 0, 0644);
}

Test(jail_fs, cgroup_failure_midway_removes_everything)
{
    need_root();
    char cg[600], path[800];
    fake_cgroup(cg, sizeof(cg), "cpu memory pids\n");
    /* wisp/ exists with its own subtree_control, as on a host that ran jails before. */
    snprintf(path, sizeof(path), "%s/wisp", cg);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/wisp/cgroup.subtree_control", cg);
    tj_write_file(path, "", 0, 0644);
    const char *run[] = {"--kernel", kernel, NULL};
    const char *extra[] = {"--cgroup", "pids.max=10", NULL};
    struct jail_opts o;
    parse(&o, "vm7", extra, run);
    o.cgroup_root = cg;
    /* The group directory is created, but a plain directory has no pids.max:
     * the write fails after the jail tree exists, and both must go. */
    expect_refused_clean(&o, WISP_EXIT_HOST, "pids.max");
    snprintf(path, sizeof(path), "%s/wisp/vm7", cg);
    cr_assert_not(tj_exists(path), "cgroup left behind");
    snprintf(path, sizeof(path), "%s/cgroup.subtree_control", cg);
    cr_assert_str_eq(read_all(path), "+pids", "controller enabled in the root");
    snprintf(path, sizeof(path), "%s/wisp/cgroup.subtree_control", cg);
    cr_assert_str_eq(read_all(path), "+pids", "and in wisp/");
}

Test(jail_fs, cgroup_missing_controller_creates_nothing)
{
    need_root();
    char cg[600];
    fake_cgroup(cg, sizeof(cg), "hugetlb\n");
    const char *run[] = {"--kernel", kernel, NULL};
    const char *extra[] = {"--cgroup", "hugetlb.2MB.max=0", "--cgroup", "memory.max=1G", NULL};
    struct jail_opts o;
    parse(&o, "vm8", extra, run);
    o.cgroup_root = cg;
    expect_refused_clean(&o, WISP_EXIT_HOST, "controller 'memory' is not available");
    cr_assert_not_null(strstr(err.msg, "(available: hugetlb)"), "%s", err.msg);
    cr_assert_eq(tj_count_entries(cg), 2, "nothing created in the cgroup root");
}

Test(jail_fs, remove_tree_does_not_follow_links)
{
    /* What a hostile VMM could leave in its root: links out, odd modes, fifos. */
    char outside[600], victim[700], t[600], p[800];
    snprintf(outside, sizeof(outside), "%s/outside", dir);
    mkdir(outside, 0755);
    snprintf(victim, sizeof(victim), "%s/precious", outside);
    tj_write_file(victim, "keep", 4, 0644);
    snprintf(t, sizeof(t), "%s/tree", dir);
    mkdir(t, 0755);
    snprintf(p, sizeof(p), "%s/link-to-dir", t);
    cr_assert_eq(symlink(outside, p), 0);
    snprintf(p, sizeof(p), "%s/link-to-file", t);
    cr_assert_eq(symlink(victim, p), 0);
    snprintf(p, sizeof(p), "%s/fifo", t);
    cr_assert_eq(mkfifo(p, 0600), 0);
    snprintf(p, sizeof(p), "%s/locked", t);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/locked/file", t);
    tj_write_file(p, "x", 1, 0);
    snprintf(p, sizeof(p), "%s/locked", t);
    chmod(p, 0);
    /* 20 levels deep, and many entries in one directory. */
    char deep[800];
    snprintf(deep, sizeof(deep), "%s/d", t);
    for (int i = 0; i < 20; i++) {
        mkdir(deep, 0755);
        strcat(deep, "/d");
    }
    for (int i = 0; i < 300; i++) {
        snprintf(p, sizeof(p), "%s/many-%03d", t, i);
        tj_write_file(p, "", 0, 0644);
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    int ret = jail_fs_remove_tree(dfd, "tree");
    if (!tj_is_root() && ret < 0)
        cr_skip_test("mode-0 directories need root to remove");
    cr_assert_eq(ret, 0, "%s", strerror(-ret));
    cr_assert_not(tj_exists(t));
    cr_assert_str_eq(read_all(victim), "keep", "a link target was touched");
    cr_assert_eq(jail_fs_remove_tree(dfd, "tree"), 0, "absent is fine");
    close(dfd);
}

Test(jail_fs, remove_tree_depth_limit)
{
    char deep[4096];
    snprintf(deep, sizeof(deep), "%s/deep", dir);
    mkdir(deep, 0755);
    for (int i = 0; i < JAIL_FS_MAX_DEPTH + 2; i++) {
        strcat(deep, "/d");
        cr_assert_eq(mkdir(deep, 0755), 0);
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    cr_assert_eq(jail_fs_remove_tree(dfd, "deep"), -ELOOP);
    close(dfd);
}

Test(jail_fs, cleanup_removes_one_jail)
{
    need_root();
    const char *run[] = {"--kernel", kernel, NULL};
    struct jail_opts o;
    parse(&o, "vm9", NULL, run);
    struct jail_plan p;
    jail_plan_init(&p, &o);
    cr_assert_eq(jail_prepare(&p, &err), 0, "%s", err.msg);
    jail_plan_free(&p);
    /* As the VMM could: files it owns in its root. */
    char path[800];
    snprintf(path, sizeof(path), "%s/wisp/vm9/root/serial.log", base);
    tj_write_file(path, "log", 3, 0600);
    cr_assert_eq(jail_fs_cleanup(base, "wisp", "vm9", &err), 0, "%s", err.msg);
    snprintf(path, sizeof(path), "%s/wisp", base);
    cr_assert_eq(tj_count_entries(path), 0);
    cr_assert_eq(jail_fs_cleanup(base, "wisp", "vm9", &err), -ENOENT);
    cr_assert_eq(jail_fs_cleanup("/nonexistent-wisp-base", "wisp", "vm9", &err), -ENOENT);
}
