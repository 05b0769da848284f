/*
 * The jail child's privilege drop and resource limits, each run in a forked
 * process (they are irreversible) that reports what it sees through a pipe
 * and leaves with _exit(), so no sanitizer exit handler runs without its
 * privileges.  Needs root.
 */
#include "jailer/jail_child.h"

#include <criterion/criterion.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/jailer/test_jail_util.h"

/* What the child found, reported as one fixed-size record. */
struct report {
    int ret;
    char msg[512];
    unsigned uid[3], gid[3];
    int ngroups;
    unsigned caps[3][2]; /* effective, permitted, inheritable x two 32-bit words */
    int bounding_left;   /* capabilities still in the bounding set */
    int nnp;
    int setuid_root; /* result of setresuid(0, 0, 0) after the drop */
    unsigned long long nofile[2], fsize[2], core[2];
};

static void child_drop(int fd)
{
    struct report r;
    memset(&r, 0, sizeof(r));
    struct errbuf err = {0};
    r.ret = jail_child_drop_privileges(TJ_UID, TJ_GID, &err);
    memcpy(r.msg, err.msg, sizeof(r.msg));
    uid_t u[3];
    gid_t g[3];
    getresuid(&u[0], &u[1], &u[2]);
    getresgid(&g[0], &g[1], &g[2]);
    for (int i = 0; i < 3; i++) {
        r.uid[i] = u[i];
        r.gid[i] = g[i];
    }
    r.ngroups = getgroups(0, NULL);
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0xff, sizeof(data));
    syscall(SYS_capget, &hdr, data);
    for (int w = 0; w < 2; w++) {
        r.caps[0][w] = data[w].effective;
        r.caps[1][w] = data[w].permitted;
        r.caps[2][w] = data[w].inheritable;
    }
    for (int cap = 0; cap < 64; cap++)
        r.bounding_left += prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1;
    r.nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    r.setuid_root = setresuid(0, 0, 0);
    ssize_t n = write(fd, &r, sizeof(r));
    _exit(n == (ssize_t)sizeof(r) ? 0 : 1);
}

static void child_rlimits(int fd)
{
    struct report r;
    memset(&r, 0, sizeof(r));
    struct errbuf err = {0};
    r.ret = jail_child_set_rlimits(2048, true, 64ull << 20, &err);
    memcpy(r.msg, err.msg, sizeof(r.msg));
    struct rlimit l;
    getrlimit(RLIMIT_NOFILE, &l);
    r.nofile[0] = l.rlim_cur;
    r.nofile[1] = l.rlim_max;
    getrlimit(RLIMIT_FSIZE, &l);
    r.fsize[0] = l.rlim_cur;
    r.fsize[1] = l.rlim_max;
    getrlimit(RLIMIT_CORE, &l);
    r.core[0] = l.rlim_cur;
    r.core[1] = l.rlim_max;
    ssize_t n = write(fd, &r, sizeof(r));
    _exit(n == (ssize_t)sizeof(r) ? 0 : 1);
}

static void run_child(void (*fn)(int), struct report *r)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        fn(p[1]);
    }
    close(p[1]);
    cr_assert_eq(read(p[0], r, sizeof(*r)), (ssize_t)sizeof(*r), "child reported nothing");
    close(p[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

Test(jail_child, drop_privileges_completely)
{
    if (!tj_is_root())
        cr_skip_test("dropping privileges needs root to start with");
    struct report r;
    run_child(child_drop, &r);
    cr_assert_eq(r.ret, 0, "%s", r.msg);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r.uid[i], TJ_UID);
        cr_assert_eq(r.gid[i], TJ_GID);
    }
    cr_assert_eq(r.ngroups, 0, "supplementary groups cleared");
    for (int s = 0; s < 3; s++)
        cr_assert(r.caps[s][0] == 0 && r.caps[s][1] == 0, "capability set %d not empty", s);
    cr_assert_eq(r.bounding_left, 0, "bounding set not empty");
    cr_assert_eq(r.nnp, 1, "no_new_privs");
    cr_assert_lt(r.setuid_root, 0, "root regained");
}

Test(jail_child, resource_limits)
{
    struct report r;
    run_child(child_rlimits, &r);
    /* Raising RLIMIT_NOFILE above the hard limit needs root; 2048 is usually allowed. */
    if (r.ret < 0 && !tj_is_root())
        cr_skip_test("cannot raise limits without root: %s", r.msg);
    cr_assert_eq(r.ret, 0, "%s", r.msg);
    cr_assert_eq(r.nofile[0], 2048);
    cr_assert_eq(r.nofile[1], 2048);
    cr_assert_eq(r.fsize[0], 64ull << 20);
    cr_assert_eq(r.fsize[1], 64ull << 20);
    cr_assert_eq(r.core[0], 0);
    cr_assert_eq(r.core[1], 0);
}
