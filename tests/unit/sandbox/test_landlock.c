/*
 * sandbox/landlock.c against the running kernel.  Criterion runs every test in
 * its own process, so each may restrict itself for real.
 */
#include "sandbox/landlock.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

static char dir_a[64], dir_b[64];

/*
 * Call right before restricting the test process: LeakSanitizer's exit-time
 * check reads /proc/<pid>/task, which the restriction forbids, so under
 * ASan the check runs now instead (it runs once per process).
 */
static int apply(const struct landlock_policy *p, int abi, struct errbuf *err)
{
#ifdef __SANITIZE_ADDRESS__
    __lsan_do_leak_check();
#endif
    return landlock_apply(p, abi, err);
}

static void make_dirs(void)
{
    snprintf(dir_a, sizeof(dir_a), "/tmp/wisp-ll-a-XXXXXX");
    snprintf(dir_b, sizeof(dir_b), "/tmp/wisp-ll-b-XXXXXX");
    cr_assert_not_null(mkdtemp(dir_a));
    cr_assert_not_null(mkdtemp(dir_b));
}

static void touch(const char *dir, const char *name)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
    close(fd);
}

static int unlink_in(const char *dir, const char *name)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return unlink(p) == 0 ? 0 : -errno;
}

static void require_landlock(void)
{
    if (landlock_abi() < 1)
        cr_skip_test("this kernel has no Landlock");
}

Test(landlock, off_changes_nothing)
{
    struct landlock_policy p = {.mode = LANDLOCK_OFF};
    struct errbuf err = {0};
    cr_assert_eq(apply(&p, landlock_abi(), &err), 0);
    int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    close(fd);
}

Test(landlock, auto_without_kernel_support_runs_without)
{
    struct landlock_policy p = {.mode = LANDLOCK_AUTO};
    struct errbuf err = {0};
    cr_assert_eq(apply(&p, 0, &err), 0);
    int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "nothing was restricted");
    close(fd);
}

Test(landlock, on_without_kernel_support_is_an_error)
{
    struct landlock_policy p = {.mode = LANDLOCK_ON};
    struct errbuf err = {0};
    cr_assert_eq(apply(&p, 0, &err), -EOPNOTSUPP);
    cr_assert_eq(err.exit_code, WISP_EXIT_HOST);
    cr_assert(strstr(err.msg, "--landlock on"), "%s", err.msg);
    cr_assert_null(strchr(err.msg, '\n'), "one line");
}

Test(landlock, opens_refused_after_apply)
{
    require_landlock();
    int before = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(before, 0);
    struct landlock_policy p = {.mode = LANDLOCK_ON};
    struct errbuf err = {0};
    cr_assert_eq(apply(&p, landlock_abi(), &err), 1, "%s", err.msg);
    cr_assert_lt(open("/etc/hostname", O_RDONLY | O_CLOEXEC), 0);
    cr_assert_eq(errno, EACCES);
    cr_assert_lt(open("/tmp/wisp-ll-new", O_CREAT | O_WRONLY | O_CLOEXEC, 0600), 0);
    cr_assert_eq(errno, EACCES);
    /* A descriptor opened before still works: wisp's disks, taps and KVM. */
    char c;
    cr_assert_geq(read(before, &c, 1), 0);
    close(before);
}

Test(landlock, removal_only_beside_the_listed_files)
{
    require_landlock();
    make_dirs();
    touch(dir_a, "console.sock");
    touch(dir_a, "other");
    touch(dir_b, "victim");
    char sock[128];
    snprintf(sock, sizeof(sock), "%s/console.sock", dir_a);
    struct landlock_policy p = {.mode = LANDLOCK_ON, .remove_files = {sock}, .nremove = 1};
    struct errbuf err = {0};
    cr_assert_eq(apply(&p, landlock_abi(), &err), 1, "%s", err.msg);
    cr_assert_eq(unlink_in(dir_b, "victim"), -EACCES, "a file elsewhere stays");
    cr_assert_eq(unlink_in(dir_a, "console.sock"), 0);
    /* The right is per directory: a sibling could go too (documented). */
    cr_assert_eq(unlink_in(dir_a, "other"), 0);
    cr_assert_neq(rmdir(dir_a), 0, "removing directories is not granted");
}

Test(landlock, proc_self_readable_only_when_asked)
{
    require_landlock();
    struct landlock_policy p = {.mode = LANDLOCK_ON, .read_proc_self = true};
    struct errbuf err = {0};
    cr_assert_eq(apply(&p, landlock_abi(), &err), 1, "%s", err.msg);
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "--stats reads /proc/self/status: %s", strerror(errno));
    close(fd);
    cr_assert_lt(open("/proc/self/status", O_WRONLY | O_CLOEXEC), 0, "read only");
    cr_assert_lt(open("/etc/hostname", O_RDONLY | O_CLOEXEC), 0);
}

Test(landlock, no_tcp)
{
    if (landlock_abi() < 4)
        cr_skip_test("TCP rights need Landlock ABI 4");
    struct landlock_policy p = {.mode = LANDLOCK_ON};
    struct errbuf err = {0};
    cr_assert_eq(apply(&p, landlock_abi(), &err), 1, "%s", err.msg);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_neq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(errno, EACCES);
    close(s);
}

Test(landlock, no_signals_beyond_itself)
{
    if (landlock_abi() < 6)
        cr_skip_test("signal scoping needs Landlock ABI 6");
    int hold[2];
    cr_assert_eq(pipe2(hold, O_CLOEXEC), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        /* Lives until the parent closes its end (it cannot signal us later). */
        char c;
        close(hold[1]);
        while (read(hold[0], &c, 1) > 0)
            ;
        _exit(0);
    }
    close(hold[0]);
    struct landlock_policy p = {.mode = LANDLOCK_ON};
    struct errbuf err = {0};
    cr_assert_eq(apply(&p, landlock_abi(), &err), 1, "%s", err.msg);
    int rc = kill(child, SIGTERM);
    int e = errno;
    close(hold[1]);
    waitpid(child, NULL, 0);
    cr_assert_neq(rc, 0, "a process outside the domain");
    cr_assert_eq(e, EPERM);
    cr_assert_eq(kill(getpid(), 0), 0, "itself is fine");
}

Test(landlock, older_abi_still_restricts)
{
    require_landlock();
    /* The smallest ruleset (ABI 1, no net, no scopes) on a newer kernel. */
    struct landlock_policy p = {.mode = LANDLOCK_ON};
    struct errbuf err = {0};
    cr_assert_eq(apply(&p, 1, &err), 1, "%s", err.msg);
    cr_assert_lt(open("/etc/hostname", O_RDONLY | O_CLOEXEC), 0);
}
