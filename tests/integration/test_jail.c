/*
 * `wisp jail` end to end (security.md A1-A3): jail the real wisp booting
 * the test guest, then look at the running VMM from outside through /proc
 * (ids, capabilities, no_new_privs, seccomp, namespaces, the chroot's exact
 * contents, limits, descriptors, cgroup), check that the guest still
 * passes, and that unsafe input is refused with nothing left behind.
 * Needs root and /dev/kvm; every test removes its jail, cgroup and mounts.
 */
#include "tests/integration/test_jail_harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/api_http.h"
#include "tests/lib/qsd_peer.h"
#include "tests/lib/wisp_run.h"

#define EXIT_USAGE 2
#define EXIT_HOST  3

/* Per-test state, so .fini can clean up after a failed assertion too. */
static struct jh h;
static struct sandbox_proc sp;
static bool sp_running;
static char netns_name[64];

static void finish_bg(struct proc_result *r, const char *input)
{
    sandbox_proc_finish(&sp, input, WISP_TIMEOUT_MS, r);
    sp_running = false;
}

static void teardown(void)
{
    if (sp_running) {
        kill(sp.pid, SIGTERM); /* forwarded to the VMM */
        struct proc_result r;
        finish_bg(&r, NULL);
        proc_result_free(&r);
    }
    jh_cleanup(&h);
    if (netns_name[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", netns_name);
        if (system(cmd) != 0)
            cr_log_info("could not delete netns %s", netns_name);
        netns_name[0] = '\0';
    }
}

TestSuite(jail, .fini = teardown, .timeout = 120);

static void start(const char *const *extra, const char *const *run, const char *ready)
{
    jh_start(&h, &sp, extra, run, ready);
    sp_running = true;
}

/* The guest's echo test keeps the VM up until we send a line. */
static void start_echo(const char *const *extra)
{
    const char *run[] = {"--kernel", h.kernel, "--debug-exit", "--cmdline", "test=echo", NULL};
    start(extra, run, "echo ready");
}

static void finish_echo_pass(void)
{
    struct proc_result r;
    finish_bg(&r, "hello jail\n");
    cr_assert_eq(r.status, GUEST_PASS, "status %d\nstdout:\n%s\nstderr:\n%s", r.status, r.out,
                 r.err);
    cr_assert_not_null(strstr(r.out, "echo HELLO JAIL"), "%s", r.out);
    proc_result_free(&r);
}

static void check_seccomp(pid_t vmm)
{
    if (!jh_seccomp_built_in()) {
        cr_log_info("this wisp build has no seccomp filters: Seccomp: 2 not checked");
        return;
    }
    pid_t tids[64];
    int n = sandbox_proc_threads(vmm, tids, 64);
    cr_assert_gt(n, 0);
    for (int i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)vmm, (int)tids[i]);
        char *s = jh_read_proc(path);
        cr_assert_not_null(s);
        cr_expect_not_null(strstr(s, "\nSeccomp:\t2\n"), "thread %d not filtered", (int)tids[i]);
        free(s);
    }
}

static void check_namespaces(pid_t vmm)
{
    const char *kinds[] = {"mnt", "pid", "net", "ipc", "uts", "cgroup"};
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
        char a[64], b[64], la[64] = "", lb[64] = "";
        snprintf(a, sizeof(a), "/proc/%d/ns/%s", (int)vmm, kinds[i]);
        snprintf(b, sizeof(b), "/proc/self/ns/%s", kinds[i]);
        cr_assert_gt(readlink(a, la, sizeof(la) - 1), 0);
        cr_assert_gt(readlink(b, lb, sizeof(lb) - 1), 0);
        cr_expect_str_neq(la, lb, "%s namespace shared with the host", kinds[i]);
    }
}

/* A new network namespace holds a loopback device and nothing else. */
static void check_empty_netns(pid_t vmm)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/net/dev", (int)vmm);
    char *s = jh_read_proc(path);
    cr_assert_not_null(s);
    unsigned ifs = 0;
    for (char *l = strtok(s, "\n"); l; l = strtok(NULL, "\n"))
        if (strchr(l, ':') && !strstr(l, "|")) {
            ifs++;
            cr_expect_not_null(strstr(l, "lo:"), "unexpected interface: %s", l);
        }
    cr_expect_eq(ifs, 1);
    free(s);
}

static void check_root(pid_t vmm)
{
    char path[64], link[64] = "";
    snprintf(path, sizeof(path), "/proc/%d/root", (int)vmm);
    struct stat in, host;
    char slash[80];
    snprintf(slash, sizeof(slash), "%s/", path);
    cr_assert_eq(stat(slash, &in), 0);
    cr_assert_eq(stat(jh_root_dir(&h), &host), 0);
    cr_expect(in.st_dev == host.st_dev && in.st_ino == host.st_ino, "root is not the jail");
    cr_expect_eq(in.st_mode & 07777, 0700);
    cr_expect(in.st_uid == JH_UID && in.st_gid == JH_GID, "root owned by %u:%u", in.st_uid,
              in.st_gid);
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)vmm);
    cr_assert_gt(readlink(path, link, sizeof(link) - 1), 0);
    cr_expect_str_eq(link, "/wisp");
    memset(link, 0, sizeof(link));
    snprintf(path, sizeof(path), "/proc/%d/cwd", (int)vmm);
    cr_assert_gt(readlink(path, link, sizeof(link) - 1), 0);
    cr_expect_str_eq(link, "/");
    /* Firecracker's test_default_chroot_hierarchy: every entry, mode and owner. */
    snprintf(path, sizeof(path), "/proc/%d/root", (int)vmm);
    char *tree = jh_list_tree(path);
    const char *extra[] = {"kernel f 0444 0:0", NULL};
    char *want = jh_expected_tree(&h, extra);
    cr_expect_str_eq(tree, want, "jail contents:\n%s\nexpected:\n%s", tree, want);
    free(tree);
    free(want);
}

/* "Max open files  2048  2048  files" -> soft and hard fields. */
static void expect_limit(const char *limits, const char *name, const char *soft, const char *hard)
{
    const char *l = strstr(limits, name);
    cr_assert_not_null(l, "no '%s' in limits", name);
    char s[32] = "", hd[32] = "";
    cr_assert_eq(sscanf(l + strlen(name), "%31s %31s", s, hd), 2);
    cr_expect_str_eq(s, soft, "%s soft limit", name);
    cr_expect_str_eq(hd, hard, "%s hard limit", name);
}

static void check_limits_env_fds(pid_t vmm)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)vmm);
    char *lim = jh_read_proc(path);
    cr_assert_not_null(lim);
    expect_limit(lim, "Max open files", "2048", "2048");
    expect_limit(lim, "Max file size", "1073741824", "1073741824");
    expect_limit(lim, "Max core file size", "0", "0");
    free(lim);

    snprintf(path, sizeof(path), "/proc/%d/environ", (int)vmm);
    char *env = jh_read_proc(path);
    cr_assert_not_null(env);
    cr_expect_eq(strlen(env), 0, "environment not empty: %s", env);
    free(env);
    /* Non-dumpable (the binary is execute-only): /proc entries belong to root. */
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_uid, 0, "the VMM is dumpable");

    /* Only stdio came in; everything else is wisp's own. */
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)vmm);
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    unsigned n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char lp[400], target[256] = "";
        snprintf(lp, sizeof(lp), "%s/%s", path, e->d_name);
        cr_assert_gt(readlink(lp, target, sizeof(target) - 1), 0);
        int fd = atoi(e->d_name);
        n++;
        if (fd <= 2)
            cr_expect(strncmp(target, "pipe:", 5) == 0, "fd %d is %s", fd, target);
        else
            cr_expect(!strncmp(target, "anon_inode:", 11) || !strcmp(target, "/dev/kvm") ||
                          !strncmp(target, "/memfd:", 7),
                      "fd %d is %s: inherited or unexpected", fd, target);
    }
    closedir(d);
    cr_expect_geq(n, 4, "stdio and /dev/kvm at least");
}

Test(jail, running_vmm_is_confined)
{
    jh_init(&h, "conf");
    const char *extra[] = {"--rlimit", "fsize=1G", NULL};
    start_echo(extra);
    pid_t vmm = jh_vmm_pid(sp.pid);
    jh_check_identity(vmm);
    check_seccomp(vmm);
    check_namespaces(vmm);
    check_empty_netns(vmm);
    check_root(vmm);
    check_limits_env_fds(vmm);
    finish_echo_pass();
}

Test(jail, guest_passes_with_initrd)
{
    jh_init(&h, "initrd");
    size_t len = 64 * 1024 + 7;
    unsigned char *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)(i * 13 + (i >> 9));
    char *initrd = write_temp(data, len), cmdline[160];
    snprintf(cmdline, sizeof(cmdline), "test=report cpus=2 initrd_size=%zu initrd_sum=0x%08x", len,
             fnv1a(data, len));
    const char *run[] = {"--kernel", h.kernel,       "--initrd",  initrd,  "--vcpus",
                         "2",        "--debug-exit", "--cmdline", cmdline, NULL};
    struct proc_result r;
    jh_run(&h, &r, NULL, NULL, run);
    unlink(initrd);
    free(initrd);
    free(data);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s\n%s", r.status, r.out, r.err);
    cr_assert_not_null(strstr(r.out, "check initrd_sum ok"), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "cpus=2 online"), "%s", r.out);
    proc_result_free(&r);
}

Test(jail, exit_status_passes_through)
{
    jh_init(&h, "status");
    /* The guest finds 1 CPU where 3 are expected and reports failure. */
    const char *run[] = {"--kernel",           h.kernel, "--debug-exit", "--cmdline",
                         "test=report cpus=3", NULL};
    struct proc_result r;
    jh_run(&h, &r, NULL, NULL, run);
    cr_assert_eq(r.status, GUEST_FAIL, "status %d\n%s", r.status, r.err);
    proc_result_free(&r);
}

static char *make_disk(void)
{
    char *img = write_temp("", 0);
    cr_assert_eq(truncate(img, 1 << 20), 0);
    cr_assert_eq(chown(img, JH_UID, JH_GID), 0); /* the operator's job: the VMM opens it */
    return img;
}

static bool image_all_zero(const char *img)
{
    size_t len;
    char *b = read_file(img, &len);
    bool zero = true;
    for (size_t i = 0; b && i < len; i++)
        zero &= b[i] == 0;
    free(b);
    return zero;
}

Test(jail, disk_image_is_bind_mounted)
{
    jh_init(&h, "blk");
    char *img = make_disk(), spec[300];
    snprintf(spec, sizeof(spec), "blk,path=%s", img);
    const char *run[] = {"--kernel", h.kernel,    "--debug-exit", "--device",
                         spec,       "--cmdline", "test=blk",     NULL};
    struct proc_result r;
    jh_run(&h, &r, NULL, NULL, run);
    bool zero = image_all_zero(img);
    unlink(img);
    free(img);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s\n%s", r.status, r.out, r.err);
    cr_assert_not(zero, "the guest's writes did not reach the host image");
    /* On the host the mount point is an empty placeholder: the mount lived
     * and died in the VMM's mount namespace. */
    char path[600];
    snprintf(path, sizeof(path), "%s/disk0", jh_root_dir(&h));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, 0);
    proc_result_free(&r);
}

Test(jail, read_only_disk_stays_untouched)
{
    jh_init(&h, "blkro");
    char *img = make_disk(), spec[300];
    snprintf(spec, sizeof(spec), "blk,path=%s,readonly=on", img);
    const char *run[] = {"--kernel", h.kernel,    "--debug-exit",      "--device",
                         spec,       "--cmdline", "test=blk blk_ro=1", NULL};
    struct proc_result r;
    jh_run(&h, &r, NULL, NULL, run);
    bool zero = image_all_zero(img);
    unlink(img);
    free(img);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s\n%s", r.status, r.out, r.err);
    cr_assert(zero, "a read-only image was written");
    proc_result_free(&r);
}

/* A vhost-user backend's socket is bind-mounted into the jail as /vhost-user0
 * (docs/JAILER.md): the jailed VMM reaches qemu-storage-daemon through it. */
Test(jail, vhost_user_socket_is_bind_mounted)
{
    jh_init(&h, "vhu");
    /* Anything but a socket is refused before the jail exists. */
    char spec[4200];
    struct proc_result r;
    snprintf(spec, sizeof(spec), "blk,vhost-user=%s", h.kernel);
    const char *bad[] = {"--kernel", h.kernel, "--device", spec, NULL};
    jh_run(&h, &r, NULL, NULL, bad);
    jh_assert_error(&r, 2, "is not a UNIX socket");
    jh_assert_nothing_left(&h);
    proc_result_free(&r);
    struct qsd_peer q;
    qsd_peer_start(&q, 1 << 20);
    /* What the operator grants: the VMM's uid may connect.  Only the
     * socket's own mode counts: the bind mount skips the directories above. */
    cr_assert_eq(chown(q.sock, JH_UID, JH_GID), 0);
    snprintf(spec, sizeof(spec), "blk,vhost-user=%s", q.sock);
    const char *run[] = {"--kernel", h.kernel,    "--debug-exit", "--device",
                         spec,       "--cmdline", "test=blk",     NULL};
    jh_run(&h, &r, NULL, NULL, run);
    bool zero = image_all_zero(q.img);
    qsd_peer_stop(&q);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s\n%s", r.status, r.out, r.err);
    cr_assert(strstr(r.out, "check blk_readback ok"), "%s", r.out);
    cr_assert_not(zero, "the guest's writes did not reach the backend's image");
    char path[600];
    snprintf(path, sizeof(path), "%s/vhost-user0", jh_root_dir(&h));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(S_ISREG(st.st_mode) && st.st_size == 0, "the host keeps an empty placeholder");
    proc_result_free(&r);
}

Test(jail, unsafe_inputs_are_refused_and_leave_nothing)
{
    jh_init(&h, "refuse");
    const char *run[] = {"--kernel", h.kernel, "--debug-exit", NULL};
    struct proc_result r;
    char id65[66];
    memset(id65, 'a', 65);
    id65[65] = '\0';
    const char *bad_ids[] = {"", id65, "a/b", "..", "../x"};
    char saved[sizeof(h.id)];
    memcpy(saved, h.id, sizeof(saved));
    for (size_t i = 0; i < ARRAY_SIZE(bad_ids); i++) {
        snprintf(h.id, sizeof(h.id), "%s", bad_ids[i]);
        jh_run(&h, &r, NULL, NULL, run);
        jh_assert_error(&r, EXIT_USAGE, "--id");
        jh_assert_nothing_left(&h);
        proc_result_free(&r);
    }
    memcpy(h.id, saved, sizeof(saved));

    /* A symbolic link as the exec file. */
    char link_path[300], exec_saved[sizeof(h.exec)];
    snprintf(link_path, sizeof(link_path), "%s-exec-link", h.base);
    cr_assert_eq(symlink(h.exec, link_path), 0);
    memcpy(exec_saved, h.exec, sizeof(exec_saved));
    snprintf(h.exec, sizeof(h.exec), "%s", link_path);
    jh_run(&h, &r, NULL, NULL, run);
    memcpy(h.exec, exec_saved, sizeof(exec_saved));
    unlink(link_path);
    jh_assert_error(&r, EXIT_USAGE, "symbolic link");
    jh_assert_nothing_left(&h);
    proc_result_free(&r);

    /* A hard-linked kernel: a copy of the guest with a second name. */
    size_t len;
    char *k = read_file(h.kernel, &len);
    char *kernel = write_temp(k, len), hard[300];
    free(k);
    snprintf(hard, sizeof(hard), "%s.hard", kernel);
    cr_assert_eq(link(kernel, hard), 0);
    const char *run_hard[] = {"--kernel", kernel, NULL};
    jh_run(&h, &r, NULL, NULL, run_hard);
    jh_assert_error(&r, EXIT_USAGE, "hard links");
    jh_assert_nothing_left(&h);
    proc_result_free(&r);
    /* A symbolic link as the kernel. */
    unlink(hard);
    cr_assert_eq(symlink(kernel, hard), 0);
    const char *run_sym[] = {"--kernel", hard, NULL};
    jh_run(&h, &r, NULL, NULL, run_sym);
    jh_assert_error(&r, EXIT_USAGE, "symbolic link");
    jh_assert_nothing_left(&h);
    proc_result_free(&r);
    unlink(hard);
    unlink(kernel);
    free(kernel);

    /* Too few descriptors to even start: refused up front, cleanly. */
    const char *nofile[] = {"--rlimit", "no-file=3", NULL};
    jh_run(&h, &r, NULL, nofile, run);
    jh_assert_error(&r, EXIT_USAGE, "no-file=3");
    jh_assert_nothing_left(&h);
    proc_result_free(&r);

    /* --config could name files the jailer never checks. */
    const char *config[] = {"--config", "/etc/passwd", NULL};
    jh_run(&h, &r, NULL, NULL, config);
    jh_assert_error(&r, EXIT_USAGE, "--config");
    jh_assert_nothing_left(&h);
    proc_result_free(&r);
}

Test(jail, file_size_limit_below_guest_memory)
{
    jh_init(&h, "fsize");
    /* Guest RAM is a memfd, so RLIMIT_FSIZE bounds it: a clean startup error. */
    const char *extra[] = {"--rlimit", "fsize=1M", NULL};
    const char *run[] = {"--kernel", h.kernel, "--memory", "64M", "--debug-exit", NULL};
    struct proc_result r;
    jh_run(&h, &r, NULL, extra, run);
    cr_assert_eq(r.status, EXIT_HOST, "status %d\n%s", r.status, r.err);
    cr_assert(strncmp(r.err, "wisp: error: ", 13) == 0, "%s", r.err);
    cr_assert_not_null(strstr(r.err, "File too large"), "%s", r.err);
    cr_assert_eq(strchr(r.err, '\n')[1], '\0', "one line: %s", r.err);
    proc_result_free(&r);
}

/* Is one of `vmm`'s descriptors open on `target`? */
static bool has_fd_on(pid_t vmm, const char *target)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)vmm);
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d)) != NULL;) {
        char lp[400], t[256] = "";
        snprintf(lp, sizeof(lp), "%s/%s", path, e->d_name);
        found = readlink(lp, t, sizeof(t) - 1) > 0 && !strcmp(t, target);
    }
    closedir(d);
    return found;
}

Test(jail, net_device_in_a_given_network_namespace)
{
    jh_init(&h, "netns");
    if (access("/usr/sbin/ip", X_OK) != 0 && access("/sbin/ip", X_OK) != 0)
        cr_skip_test("no ip(8) to create a named network namespace");
    /* What the operator prepares: a namespace holding a tap the VMM's uid owns. */
    snprintf(netns_name, sizeof(netns_name), "wisp-jail-%d", (int)getpid());
    char cmd[512], path[128];
    snprintf(cmd, sizeof(cmd),
             "ip netns add %s && ip -n %s tuntap add dev wtap0 mode tap user %d group %d && "
             "ip -n %s link set wtap0 up",
             netns_name, netns_name, JH_UID, JH_GID, netns_name);
    if (system(cmd) != 0)
        cr_skip_test("cannot create a network namespace with a tap: %s", cmd);
    snprintf(path, sizeof(path), "/run/netns/%s", netns_name);
    const char *extra[] = {"--netns", path, NULL};
    const char *run[] = {"--kernel",      h.kernel,    "--debug-exit", "--device",
                         "net,tap=wtap0", "--cmdline", "test=echo",    NULL};
    start(extra, run, "echo ready");
    pid_t vmm = jh_vmm_pid(sp.pid);
    struct stat ns;
    cr_assert_eq(stat(path, &ns), 0);
    char link[64] = "", want[64], lp[64];
    snprintf(lp, sizeof(lp), "/proc/%d/ns/net", (int)vmm);
    cr_assert_gt(readlink(lp, link, sizeof(link) - 1), 0);
    snprintf(want, sizeof(want), "net:[%lu]", (unsigned long)ns.st_ino);
    cr_expect_str_eq(link, want);
    cr_expect(has_fd_on(vmm, "/dev/net/tun"), "the tap is not attached");
    /* The net device brought /dev/net/tun into the jail. */
    snprintf(path, sizeof(path), "%s/dev/net/tun", jh_root_dir(&h));
    struct stat tun;
    cr_assert_eq(stat(path, &tun), 0);
    cr_expect(S_ISCHR(tun.st_mode) && tun.st_uid == JH_UID && (tun.st_mode & 07777) == 0600);
    finish_echo_pass();
}

Test(jail, stop_signals_reach_the_vmm)
{
    jh_init(&h, "signal");
    start_echo(NULL);
    cr_assert_eq(kill(sp.pid, SIGTERM), 0);
    struct proc_result r;
    finish_bg(&r, NULL);
    cr_assert_eq(r.status, 128 + SIGTERM, "status %d\n%s", r.status, r.err);
    proc_result_free(&r);
}

/* The control API works in a jail: the socket is a path inside it (docs/API.md). */
Test(jail, control_api_inside_the_jail)
{
    jh_init(&h, "api");
    const char *run[] = {"--kernel",  h.kernel,     "--debug-exit", "--cmdline",
                         "test=echo", "--api-sock", "/api.sock",    NULL};
    start(NULL, run, "echo ready");
    char sock[4200], reply[API_HTTP_REPLY_MAX];
    const char *body;
    snprintf(sock, sizeof(sock), "%s/api.sock", jh_root_dir(&h));
    struct stat st;
    cr_assert_eq(stat(sock, &st), 0, "no socket at %s", sock);
    cr_assert_eq(st.st_uid, JH_UID, "the jailed VMM owns its socket");
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(api_http(sock, "GET", "/", NULL, reply, &body), 200, "%s", reply);
    cr_assert(strstr(body, "\"state\":\"Running\""), "%s", body);
    cr_assert_eq(api_http(sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", reply, &body), 204, "%s",
                 reply);
    cr_assert_eq(api_http(sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}", reply, &body), 204,
                 "%s", reply);
    finish_echo_pass();
    cr_assert_lt(stat(sock, &st), 0, "the socket was left in the jail");
}
