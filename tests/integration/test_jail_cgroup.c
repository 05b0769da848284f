/*
 * `wisp jail --cgroup`: the VMM runs in <cgroup v2>/wisp/<id> with the
 * limits written, --cleanup refuses while it runs, and a controller the
 * host lacks is refused before anything is created.  Skips (saying why)
 * only when cgroup v2 is not mounted or writable; on hybrid hosts, where
 * most controllers stay in v1, only the available ones are checked.  Every
 * change to the cgroup tree is undone at the end.
 */
#include "tests/integration/test_jail_harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/wisp_run.h"

struct limit {
    const char *key, *value, *readback;
};

/* What the tests ask for, and what the kernel reads back. */
static const struct limit limits[] = {
    {"pids.max", "64", "64"},
    {"memory.max", "512M", "536870912"},
    {"cpu.max", "50000 100000", "50000 100000"},
    {"hugetlb.2MB.max", "4194304", "4194304"},
};

static struct jh h;
static struct sandbox_proc sp;
static bool sp_running;
/* Host state to restore: root's subtree_control and whether wisp/ existed. */
static char cg_root[512], subtree_before[512];
static bool parent_existed;

static char *read_cg(const char *dir, const char *name)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *s = jh_read_proc(path);
    if (s)
        s[strcspn(s, "\n")] = '\0';
    return s;
}

static bool has_word(const char *list, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = list; (p = strstr(p, w)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

static void controller(const char *key, char *out, size_t len)
{
    snprintf(out, len, "%.*s", (int)strcspn(key, "."), key);
}

/* Skip unless cgroup v2 is usable; remember what to restore. */
static void cg_init(void)
{
    char why[256];
    const char *root = jh_cgroup_root(why, sizeof(why));
    if (!root)
        cr_skip_test("%s", why);
    snprintf(cg_root, sizeof(cg_root), "%s", root);
    char *s = read_cg(cg_root, "cgroup.subtree_control");
    snprintf(subtree_before, sizeof(subtree_before), "%s", s ? s : "");
    free(s);
    char parent[600];
    snprintf(parent, sizeof(parent), "%s/wisp", cg_root);
    parent_existed = access(parent, F_OK) == 0;
}

static void teardown(void)
{
    if (sp_running) {
        kill(sp.pid, SIGTERM);
        struct proc_result r;
        sandbox_proc_finish(&sp, NULL, WISP_TIMEOUT_MS, &r);
        proc_result_free(&r);
        sp_running = false;
    }
    jh_cleanup(&h);
    if (!cg_root[0])
        return;
    char path[700];
    if (!parent_existed) {
        snprintf(path, sizeof(path), "%s/wisp", cg_root);
        rmdir(path);
    }
    /* Disable again what the jail enabled in the root (fails harmlessly if in use). */
    char *now = read_cg(cg_root, "cgroup.subtree_control");
    for (char *c = now ? strtok(now, " ") : NULL; c; c = strtok(NULL, " ")) {
        if (has_word(subtree_before, c))
            continue;
        snprintf(path, sizeof(path), "%s/cgroup.subtree_control", cg_root);
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "-%s", c);
        /* A just-removed group keeps the controller busy for a moment. */
        int e = 0;
        for (int tries = 0; tries < 200; tries++) {
            int fd = open(path, O_WRONLY | O_CLOEXEC);
            e = fd < 0 || write(fd, cmd, strlen(cmd)) < 0 ? errno : 0;
            if (fd >= 0)
                close(fd);
            if (e != EBUSY)
                break;
            usleep(10 * 1000);
        }
        if (e)
            cr_log_info("could not disable %s in %s: %s", c, cg_root, strerror(e));
    }
    free(now);
    cg_root[0] = '\0';
}

TestSuite(jail_cgroup, .fini = teardown, .timeout = 120);

/* PF_KTHREAD in /proc/<tid>/stat's flags (field 9): a kernel thread. */
static bool is_kernel_thread(pid_t tid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
    char *st = jh_read_proc(path);
    if (!st)
        return false;
    unsigned long flags = 0;
    const char *p = strrchr(st, ')');
    /* After "(comm)": state ppid pgrp session tty_nr tpgid flags. */
    bool ok = p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) == 1;
    free(st);
    return ok && (flags & 0x00200000UL);
}

Test(jail_cgroup, vmm_runs_in_its_group_with_limits)
{
    jh_init(&h, "cg");
    cg_init();
    char *avail = read_cg(cg_root, "cgroup.controllers");
    cr_assert_not_null(avail);
    const char *extra[2 * ARRAY_SIZE(limits) + 1];
    char kv[ARRAY_SIZE(limits)][96], missing[256] = "";
    const struct limit *used[ARRAY_SIZE(limits)];
    size_t n = 0, ne = 0;
    for (size_t i = 0; i < ARRAY_SIZE(limits); i++) {
        char ctl[32];
        controller(limits[i].key, ctl, sizeof(ctl));
        if (!has_word(avail, ctl)) {
            size_t l = strlen(missing);
            snprintf(missing + l, sizeof(missing) - l, " %s", limits[i].key);
            continue;
        }
        snprintf(kv[n], sizeof(kv[n]), "%s=%s", limits[i].key, limits[i].value);
        extra[ne++] = "--cgroup";
        extra[ne++] = kv[n];
        used[n++] = &limits[i];
    }
    extra[ne] = NULL;
    if (missing[0])
        cr_log_info("cgroup v2 at %s lacks controllers for:%s (available: %s); not checked",
                    cg_root, missing, avail);
    free(avail);
    if (n == 0)
        cr_skip_test("cgroup v2 at %s has none of the controllers the limits need", cg_root);

    const char *run[] = {"--kernel", h.kernel, "--debug-exit", "--cmdline", "test=echo", NULL};
    jh_start(&h, &sp, extra, run, "echo ready");
    sp_running = true;
    pid_t vmm = jh_vmm_pid(sp.pid);

    char group[700], want[128], path[64];
    snprintf(group, sizeof(group), "%s/wisp/%s", cg_root, h.id);
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)vmm);
    char *cg = jh_read_proc(path);
    snprintf(want, sizeof(want), "0::/wisp/%s\n", h.id);
    cr_expect_not_null(strstr(cg, want), "VMM cgroups:\n%s", cg);
    free(cg);
    for (size_t i = 0; i < n; i++) {
        char *v = read_cg(group, used[i]->key);
        cr_expect_str_eq(v ? v : "(unreadable)", used[i]->readback, "%s", used[i]->key);
        free(v);
    }
    /* Every thread of the VMM is in the group, and no other user thread.  The
     * kernel may place its own threads there too: KVM's per-VM worker
     * (kvm-nx-lpage-recovery-<pid>) is a kernel thread with its own tgid that
     * joins the VM creator's cgroup.  Those are not wisp's and are ignored. */
    pid_t tids[64];
    int nt = sandbox_proc_threads(vmm, tids, 64);
    cr_assert_gt(nt, 0);
    char tpath[720];
    snprintf(tpath, sizeof(tpath), "%s/cgroup.threads", group);
    char *threads = jh_read_proc(tpath);
    cr_assert_not_null(threads);
    pid_t listed[128];
    int nl = 0;
    for (char *t = strtok(threads, "\n"); t && nl < 128; t = strtok(NULL, "\n"))
        listed[nl++] = (pid_t)atoi(t);
    free(threads);
    for (int i = 0; i < nt; i++) {
        bool found = false;
        for (int j = 0; j < nl && !found; j++)
            found = listed[j] == tids[i];
        cr_expect(found, "VMM thread %d is not in the group", (int)tids[i]);
    }
    for (int j = 0; j < nl; j++) {
        bool vmm_thread = false;
        for (int i = 0; i < nt && !vmm_thread; i++)
            vmm_thread = listed[j] == tids[i];
        cr_expect(vmm_thread || is_kernel_thread(listed[j]),
                  "thread %d in the group is neither the VMM's nor a kernel thread",
                  (int)listed[j]);
    }
    struct stat st;
    cr_assert_eq(stat(group, &st), 0);
    cr_expect_eq(st.st_uid, 0, "the VMM must not own its group");

    /* --cleanup refuses while the VMM runs, and removes nothing. */
    char *const argv[] = {
        (char *)(uintptr_t)wisp_bin(), (char *)"jail", (char *)"--cleanup",   (char *)"--id", h.id,
        (char *)"--chroot-base",       h.base,         (char *)"--exec-file", h.exec,         NULL};
    struct proc_result r;
    cr_assert_eq(proc_run(argv, NULL, NULL, 0, WISP_TIMEOUT_MS, &r), 0);
    jh_assert_error(&r, 3, "still has processes");
    proc_result_free(&r);
    cr_expect_eq(access(jh_root_dir(&h), F_OK), 0, "jail removed under a running VM");

    sandbox_proc_finish(&sp, "hi\n", WISP_TIMEOUT_MS, &r);
    sp_running = false;
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s\n%s", r.status, r.out, r.err);
    proc_result_free(&r);
    jh_cleanup(&h);
    cr_assert_neq(access(group, F_OK), 0, "cgroup left behind after --cleanup");
}

Test(jail_cgroup, missing_controller_is_refused_cleanly)
{
    jh_init(&h, "cgmiss");
    cg_init();
    char *avail = read_cg(cg_root, "cgroup.controllers");
    cr_assert_not_null(avail);
    const struct limit *pick = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(limits) && !pick; i++) {
        char ctl[32];
        controller(limits[i].key, ctl, sizeof(ctl));
        if (!has_word(avail, ctl))
            pick = &limits[i];
    }
    free(avail);
    if (!pick)
        cr_skip_test("every controller is available at %s", cg_root);
    char kv[96];
    snprintf(kv, sizeof(kv), "%s=%s", pick->key, pick->value);
    const char *extra[] = {"--cgroup", kv, NULL};
    const char *run[] = {"--kernel", h.kernel, "--debug-exit", NULL};
    struct proc_result r;
    jh_run(&h, &r, NULL, extra, run);
    jh_assert_error(&r, 3, "is not available");
    proc_result_free(&r);
    jh_assert_nothing_left(&h);
    char group[700];
    snprintf(group, sizeof(group), "%s/wisp/%s", cg_root, h.id);
    cr_assert_neq(access(group, F_OK), 0, "cgroup created anyway");
}
