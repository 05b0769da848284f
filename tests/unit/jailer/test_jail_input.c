/*
 * Jail inputs: the link checks on every file the jail copies or mounts
 * (planted symbolic and hard links are refused), and the rewriting of the
 * wisp run arguments to paths inside the jail.
 */
#include "jailer/jail_input.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/unit/jailer/test_jail_util.h"
#include "jailer/jail_args.h"

static char *dir;
static char kernel[512], initrd[512], disk[512];
static struct errbuf err;

static void setup(void)
{
    dir = tj_mkdtemp();
    snprintf(kernel, sizeof(kernel), "%s/vmlinux", dir);
    snprintf(initrd, sizeof(initrd), "%s/initrd.img", dir);
    snprintf(disk, sizeof(disk), "%s/disk.img", dir);
    tj_write_file(kernel, "kernel-bytes", 12, 0644);
    tj_write_file(initrd, "initrd-bytes", 12, 0644);
    tj_write_file(disk, "disk", 4, 0600);
    memset(&err, 0, sizeof(err));
}

static void teardown(void)
{
    tj_rm_rf(dir);
    free(dir);
}

TestSuite(jail_input, .init = setup, .fini = teardown);

static char *in_dir(const char *name)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static void expect_refused(const char *path, bool path_only, int code, const char *needle)
{
    memset(&err, 0, sizeof(err));
    int fd = jail_input_open(path, path_only, "--kernel", &err);
    cr_expect_lt(fd, 0, "%s accepted", path);
    if (fd >= 0)
        close(fd);
    cr_expect_eq(err.exit_code, code, "%s: exit code %d: %s", path, err.exit_code, err.msg);
    cr_expect_not_null(strstr(err.msg, needle), "%s: '%s' lacks '%s'", path, err.msg, needle);
}

Test(jail_input, open_accepts_a_plain_file)
{
    int fd = jail_input_open(kernel, false, "--kernel", &err);
    cr_assert_geq(fd, 0, "%s", err.msg);
    struct stat a, b;
    cr_assert_eq(fstat(fd, &a), 0);
    cr_assert_eq(stat(kernel, &b), 0);
    cr_assert_eq(a.st_ino, b.st_ino);
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    char buf[16] = {0};
    cr_assert_eq(pread(fd, buf, sizeof(buf), 0), 12);
    close(fd);
    fd = jail_input_open(disk, true, "blk path=", &err);
    cr_assert_geq(fd, 0, "%s", err.msg);
    cr_assert(fcntl(fd, F_GETFL) & O_PATH);
    close(fd);
}

Test(jail_input, open_refuses_planted_links)
{
    char *sym = in_dir("sym"), *hard = in_dir("hard");
    cr_assert_eq(symlink(kernel, sym), 0);
    expect_refused(sym, false, WISP_EXIT_USAGE, "symbolic link");
    expect_refused(sym, true, WISP_EXIT_USAGE, "symbolic link");
    /* A dangling link and a link to a directory are refused the same way. */
    char *dangling = in_dir("dangling");
    cr_assert_eq(symlink("/nonexistent/file", dangling), 0);
    expect_refused(dangling, false, WISP_EXIT_USAGE, "symbolic link");
    cr_assert_eq(link(kernel, hard), 0);
    expect_refused(hard, false, WISP_EXIT_USAGE, "2 hard links");
    expect_refused(kernel, false, WISP_EXIT_USAGE, "2 hard links"); /* the original too */
    expect_refused(hard, true, WISP_EXIT_USAGE, "hard links");
    unlink(hard);
    int fd = jail_input_open(kernel, false, "--kernel", &err);
    cr_assert_geq(fd, 0, "one link again: %s", err.msg);
    close(fd);
}

Test(jail_input, open_refuses_other_inputs)
{
    expect_refused(dir, false, WISP_EXIT_USAGE, "not a regular file");
    char *fifo = in_dir("fifo");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    expect_refused(fifo, false, WISP_EXIT_USAGE, "not a regular file");
    expect_refused("/dev/null", false, WISP_EXIT_USAGE, "not a regular file");
    expect_refused(in_dir("missing"), false, WISP_EXIT_USAGE, "No such file");
    expect_refused("relative/vmlinux", false, WISP_EXIT_USAGE, "absolute");
    char dotdot[600];
    snprintf(dotdot, sizeof(dotdot), "%s/../x", dir);
    expect_refused(dotdot, false, WISP_EXIT_USAGE, "normalized");
    /* A symbolic link in a parent directory is the operator's business, but
     * the file itself must still pass. */
    char *ldir = in_dir("ldir");
    cr_assert_eq(symlink(dir, ldir), 0);
    char via[600];
    snprintf(via, sizeof(via), "%s/vmlinux", ldir);
    int fd = jail_input_open(via, false, "--kernel", &err);
    cr_assert_geq(fd, 0, "%s", err.msg);
    close(fd);
}

/* Parse a jail command line whose run arguments follow "--" and plan it. */
static int plan(struct jail_plan *p, struct jail_opts *o, const char *const *run)
{
    static char *argv[48];
    int argc = 0;
    const char *head[] = {"wisp", "jail", "--id", "t", "--uid", "54321", "--gid", "54322", "--"};
    for (size_t i = 0; i < ARRAY_SIZE(head); i++)
        argv[argc++] = (char *)(uintptr_t)head[i];
    for (; *run; run++)
        argv[argc++] = (char *)(uintptr_t)*run;
    argv[argc] = NULL;
    memset(&err, 0, sizeof(err));
    cr_assert_eq(jail_args_parse(argc, argv, o, &err), 0, "%s", err.msg);
    jail_plan_init(p, o);
    return jail_input_plan(p, &err);
}

static bool argv_has(const struct jail_plan *p, const char *a, const char *b)
{
    for (int i = 0; i + 1 < p->exec_argc; i++)
        if (!strcmp(p->exec_argv[i], a) && !strcmp(p->exec_argv[i + 1], b))
            return true;
    return false;
}

Test(jail_input, run_arguments_are_rewritten)
{
    char blk[700];
    snprintf(blk, sizeof(blk), "blk,id=root,path=%s,readonly=on", disk);
    char initrd_eq[600];
    snprintf(initrd_eq, sizeof(initrd_eq), "--initrd=%s", initrd);
    const char *args[] = {"run",
                          "--kernel",
                          kernel,
                          initrd_eq,
                          "--memory",
                          "64M",
                          "--device",
                          blk,
                          "--device",
                          "rng",
                          "--debug-exit",
                          "--cmdline",
                          "a=b --kernel x",
                          NULL};
    struct jail_opts o;
    struct jail_plan p;
    cr_assert_eq(plan(&p, &o, args), 0, "%s", err.msg);
    cr_assert_str_eq(p.exec_argv[0], "wisp");
    cr_assert_str_eq(p.exec_argv[1], "run");
    cr_assert(argv_has(&p, "--kernel", "/kernel"));
    cr_assert(argv_has(&p, "--initrd", "/initrd"));
    cr_assert(argv_has(&p, "--memory", "64M"));
    cr_assert(argv_has(&p, "--device", "blk,id=root,path=/disk0,readonly=on"));
    cr_assert(argv_has(&p, "--device", "rng"));
    cr_assert(argv_has(&p, "--cmdline", "a=b --kernel x"), "values are never rewritten");
    cr_assert_null(p.exec_argv[p.exec_argc]);
    for (int i = 0; i < p.exec_argc; i++)
        cr_assert_null(strstr(p.exec_argv[i], dir), "host path leaked: %s", p.exec_argv[i]);
    /* files: the binary, its libraries, then kernel and initrd. */
    cr_assert_str_eq(p.files[0].dst, "wisp");
    cr_assert_eq(p.files[0].mode, 0511);
    cr_assert_str_eq(p.files[p.nfiles - 2].dst, "kernel");
    cr_assert_str_eq(p.files[p.nfiles - 1].dst, "initrd");
    cr_assert_eq(p.files[p.nfiles - 1].mode, 0444);
    cr_assert_eq(p.nbinds, 1);
    cr_assert_str_eq(p.binds[0].dst, "disk0");
    cr_assert(p.binds[0].readonly);
    /* kvm only: no net device, no --device tun. */
    cr_assert_eq(p.nnodes, 1);
    cr_assert_str_eq(p.nodes[0].dst, "dev/kvm");
    cr_assert_eq(p.nodes[0].rdev, makedev(10, 232));
    jail_plan_free(&p);
}

/* /dev/vhost-vsock goes in the jail only with a vsock,backend=vhost device. */
Test(jail_input, vhost_vsock_node_only_with_such_a_device)
{
    const char *uds[] = {"run", "--kernel", kernel, "--device", "vsock,cid=3,uds_path=/v", NULL};
    struct jail_opts o;
    struct jail_plan p;
    cr_assert_eq(plan(&p, &o, uds), 0, "%s", err.msg);
    cr_assert_eq(p.nnodes, 1, "kvm only");
    jail_plan_free(&p);
    const char *vh[] = {"run", "--kernel", kernel, "--device", "vsock,cid=3,backend=vhost", NULL};
    struct stat st;
    if (stat("/dev/vhost-vsock", &st) == 0) {
        cr_assert_eq(plan(&p, &o, vh), 0, "%s", err.msg);
        cr_assert_eq(p.nnodes, 2);
        cr_assert_str_eq(p.nodes[1].dst, "dev/vhost-vsock");
        cr_assert_eq(p.nodes[1].rdev, st.st_rdev);
        jail_plan_free(&p);
    } else {
        /* No module on this host: the jailer says which node is missing. */
        cr_assert_lt(plan(&p, &o, vh), 0);
        cr_assert_eq(err.exit_code, WISP_EXIT_HOST);
        cr_assert(strstr(err.msg, "/dev/vhost-vsock"), "%s", err.msg);
        jail_plan_free(&p);
    }
}

/* A listening UNIX socket at `path` (the backend's); returns its fd. */
static int listen_at(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 1) == 0,
              "%s", path);
    return fd;
}

static void expect_plan_refused(const char *const *run, int code, const char *needle)
{
    struct jail_opts o;
    struct jail_plan p;
    int ret = plan(&p, &o, run);
    cr_expect_lt(ret, 0, "accepted (wanted '%s')", needle);
    cr_expect_eq(err.exit_code, code, "%s", err.msg);
    cr_expect_not_null(strstr(err.msg, needle), "'%s' lacks '%s'", err.msg, needle);
    cr_expect(strncmp(err.msg, "jail: ", 6) == 0, "%s", err.msg);
    jail_plan_free(&p);
}

Test(jail_input, run_arguments_refused)
{
    char *hard = in_dir("hard-kernel"), *sym = in_dir("sym-kernel");
    cr_assert_eq(symlink(kernel, sym), 0);
    const char *a1[] = {"--kernel", sym, NULL};
    expect_plan_refused(a1, WISP_EXIT_USAGE, "symbolic link");
    const char *a2[] = {"--config", "/etc/vm.json", NULL};
    expect_plan_refused(a2, WISP_EXIT_USAGE, "--config is not accepted");
    const char *a3[] = {"--kernel", kernel, "--kernel", kernel, NULL};
    expect_plan_refused(a3, WISP_EXIT_USAGE, "given twice");
    const char *a4[] = {"--kernel", "vmlinux", NULL};
    expect_plan_refused(a4, WISP_EXIT_USAGE, "absolute");
    const char *a5[] = {"--kernel", kernel, "--frobnicate", NULL};
    expect_plan_refused(a5, WISP_EXIT_USAGE, "wisp run: unknown option 'frobnicate'");
    const char *a6[] = {"--memory", "64M", NULL};
    expect_plan_refused(a6, WISP_EXIT_USAGE, "no kernel given");
    const char *a7[] = {"--kernel", kernel, "--help", NULL};
    expect_plan_refused(a7, WISP_EXIT_USAGE, "must describe a VM");
    char spec[1100];
    snprintf(spec, sizeof(spec), "blk,path=%s,path=%s", disk, disk);
    const char *a8[] = {"--kernel", kernel, "--device", spec, NULL};
    expect_plan_refused(a8, WISP_EXIT_USAGE, "path= is given twice");
    snprintf(spec, sizeof(spec), "blk,path=%s", sym);
    const char *a9[] = {"--kernel", kernel, "--device", spec, NULL};
    expect_plan_refused(a9, WISP_EXIT_USAGE, "symbolic link");
    cr_assert_eq(link(initrd, hard), 0);
    const char *a10[] = {"--kernel", kernel, "--initrd", initrd, NULL};
    expect_plan_refused(a10, WISP_EXIT_USAGE, "hard links");
    const char *a11[] = {"--kernel", kernel, "--vcpus", NULL};
    expect_plan_refused(a11, WISP_EXIT_USAGE, "needs a value");
    const char *a12[] = {"--kernel", kernel, "--device", "net,tap=tap0", NULL};
    expect_plan_refused(a12, WISP_EXIT_USAGE, "a net device needs --netns");
}

/* vhost-user= sockets are bind-mounted like images, numbered with them. */
Test(jail_input, vhost_user_sockets_are_bind_mounted)
{
    char *blk_sock = in_dir("blk.sock"), *net_sock = in_dir("net.sock");
    int a = listen_at(blk_sock), b = listen_at(net_sock);
    char blk[700], vblk[700], vnet[700];
    snprintf(blk, sizeof(blk), "blk,path=%s", disk);
    snprintf(vblk, sizeof(vblk), "blk,vhost-user=%s,id=v", blk_sock);
    snprintf(vnet, sizeof(vnet), "net,vhost-user=%s", net_sock);
    const char *args[] = {"run",      "--kernel", kernel,     "--device", blk,
                          "--device", vblk,       "--device", vnet,       NULL};
    struct jail_opts o;
    struct jail_plan p;
    cr_assert_eq(plan(&p, &o, args), 0, "%s", err.msg);
    cr_assert(argv_has(&p, "--device", "blk,path=/disk0"));
    cr_assert(argv_has(&p, "--device", "blk,vhost-user=/vhost-user1,id=v"));
    cr_assert(argv_has(&p, "--device", "net,vhost-user=/vhost-user2"), "no --netns needed");
    cr_assert_eq(p.nbinds, 3);
    cr_assert_str_eq(p.binds[1].dst, "vhost-user1");
    struct stat st, want;
    cr_assert(fstat(p.binds[2].src_fd, &st) == 0 && stat(net_sock, &want) == 0);
    cr_assert(S_ISSOCK(st.st_mode) && st.st_ino == want.st_ino);
    cr_assert_eq(p.nnodes, 1, "kvm only: no tun for a vhost-user net device");
    jail_plan_free(&p);
    /* Not a socket, a planted link, twice in one device. */
    snprintf(vblk, sizeof(vblk), "blk,vhost-user=%s", disk);
    const char *r1[] = {"--kernel", kernel, "--device", vblk, NULL};
    expect_plan_refused(r1, WISP_EXIT_USAGE, "is not a UNIX socket");
    char *sym = in_dir("sym.sock");
    cr_assert_eq(symlink(blk_sock, sym), 0);
    snprintf(vblk, sizeof(vblk), "fs,tag=t,vhost-user=%s", sym);
    const char *r2[] = {"--kernel", kernel, "--device", vblk, NULL};
    expect_plan_refused(r2, WISP_EXIT_USAGE, "symbolic link");
    snprintf(vblk, sizeof(vblk), "blk,vhost-user=%s,vhost-user=%s", blk_sock, blk_sock);
    const char *r3[] = {"--kernel", kernel, "--device", vblk, NULL};
    expect_plan_refused(r3, WISP_EXIT_USAGE, "vhost-user= is given twice");
    close(a);
    close(b);
}

Test(jail_input, exec_file_checks)
{
    char *sym = in_dir("wisp-link"), *bin = in_dir("wisp");
    tj_write_elf(bin, false, NULL, NULL);
    cr_assert_eq(symlink(bin, sym), 0);
    static char *argv[16];
    const char *a[] = {"wisp", "jail",        "--id", "t",  "--uid",    "1",    "--gid",
                       "1",    "--exec-file", sym,    "--", "--kernel", kernel, NULL};
    for (int i = 0; a[i]; i++)
        argv[i] = (char *)(uintptr_t)a[i];
    struct jail_opts o;
    struct jail_plan p;
    cr_assert_eq(jail_args_parse(13, argv, &o, &err), 0, "%s", err.msg);
    jail_plan_init(&p, &o);
    cr_assert_lt(jail_input_plan(&p, &err), 0);
    cr_assert_not_null(strstr(err.msg, "--exec-file"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "symbolic link"), "%s", err.msg);
    jail_plan_free(&p);

    /* The real file works: a static binary brings no libraries. */
    argv[9] = bin;
    memset(&err, 0, sizeof(err));
    cr_assert_eq(jail_args_parse(13, argv, &o, &err), 0);
    jail_plan_init(&p, &o);
    cr_assert_eq(jail_input_plan(&p, &err), 0, "%s", err.msg);
    cr_assert_str_eq(p.exec_name, "wisp");
    cr_assert_eq(p.nfiles, 2, "binary and kernel only");
    jail_plan_free(&p);
}

Test(jail_input, devices_and_netns)
{
    static char *argv[24];
    const char *a[] = {"wisp", "jail",     "--id",        "t",  "--uid",    "1",    "--gid",
                       "1",    "--device", "vfio:987654", "--", "--kernel", kernel, NULL};
    for (int i = 0; a[i]; i++)
        argv[i] = (char *)(uintptr_t)a[i];
    struct jail_opts o;
    struct jail_plan p;
    cr_assert_eq(jail_args_parse(13, argv, &o, &err), 0, "%s", err.msg);
    jail_plan_init(&p, &o);
    cr_assert_lt(jail_input_plan(&p, &err), 0, "no such VFIO group on any test host");
    cr_assert_eq(err.exit_code, WISP_EXIT_HOST);
    cr_assert_not_null(strstr(err.msg, "/dev/vfio/"), "%s", err.msg);
    jail_plan_free(&p);

    /* --netns must name a network namespace file, not a magic link or a plain file. */
    const char *nets[] = {kernel, "/proc/self/ns/net"};
    for (size_t i = 0; i < ARRAY_SIZE(nets); i++) {
        argv[8] = (char *)"--netns";
        argv[9] = (char *)(uintptr_t)nets[i];
        memset(&err, 0, sizeof(err));
        cr_assert_eq(jail_args_parse(13, argv, &o, &err), 0, "%s", err.msg);
        jail_plan_init(&p, &o);
        cr_expect_lt(jail_input_plan(&p, &err), 0, "%s accepted", nets[i]);
        cr_expect_eq(err.exit_code, WISP_EXIT_USAGE, "%s", err.msg);
        cr_expect_not_null(strstr(err.msg, "--netns"), "%s", err.msg);
        jail_plan_free(&p);
    }
}
