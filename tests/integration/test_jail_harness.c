/* Harness for the `wisp jail` integration tests (see test_jail_harness.h). */
#include "tests/integration/test_jail_harness.h"
#include "tests/lib/tree_list.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "tests/lib/wisp_run.h"
#include "jailer/jail_cgroup.h"
#include "jailer/jail_elf.h"

/* A whole /proc file (their st_size is 0, so read_file() cannot). malloc'd; NULL on error. */
char *jh_read_proc(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (ssize_t n; buf; len += (size_t)n) {
        if (len + 1 >= cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
        }
        n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
    }
    close(fd);
    if (buf)
        buf[len] = '\0';
    return buf;
}

/* Does `bin` link a sanitizer runtime? */
static bool sanitized(const char *bin)
{
    int fd = open(bin, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct jail_elf_deps d;
    bool san = false;
    if (jail_elf_read_deps(fd, &d) == 0)
        for (unsigned i = 0; i < d.nneeded; i++)
            san |= !strncmp(d.needed[i], "libasan", 7) || !strncmp(d.needed[i], "libubsan", 8);
    close(fd);
    return san;
}

/*
 * The binary to jail.  A sanitizer build cannot run in a jail: with no
 * /proc and an empty environment, LeakSanitizer spins at exit.  So when
 * WISP_BIN is one (make test-san), the jailer under test still is WISP_BIN,
 * but the binary it copies in is WISP_JAIL_EXEC or the plain build next to
 * it (<dir>/../build/wisp).
 */
static bool pick_exec(char *out, char *why, size_t whylen)
{
    const char *env = getenv("WISP_JAIL_EXEC");
    char bin[PATH_MAX], guess[PATH_MAX + 32];
    if (env && env[0])
        return realpath(env, out) != NULL;
    if (!realpath(wisp_bin(), bin)) {
        snprintf(why, whylen, "cannot find the wisp binary %s", wisp_bin());
        return false;
    }
    if (!sanitized(bin)) {
        memcpy(out, bin, strlen(bin) + 1);
        return true;
    }
    char tmp[PATH_MAX];
    memcpy(tmp, bin, sizeof(tmp));
    snprintf(guess, sizeof(guess), "%s/../build/wisp", dirname(tmp));
    if (realpath(guess, out) && !sanitized(out))
        return true;
    snprintf(why, whylen,
             "%.300s is a sanitizer build, which cannot run jailed, and no plain build was "
             "found (set WISP_JAIL_EXEC)",
             bin);
    return false;
}

void jh_init(struct jh *h, const char *tag)
{
    memset(h, 0, sizeof(*h));
    if (geteuid() != 0)
        cr_skip_test("wisp jail needs root");
    if (access("/dev/kvm", R_OK | W_OK) != 0)
        cr_skip_test("no usable /dev/kvm");
    char why[512];
    if (!pick_exec(h->exec, why, sizeof(why)))
        cr_skip_test("%s", why);
    cr_assert_not_null(realpath(guest_elf(), h->kernel), "test guest %s", guest_elf());
    snprintf(h->base, sizeof(h->base), "/tmp/wisp-jail-it-XXXXXX");
    cr_assert_not_null(mkdtemp(h->base));
    static unsigned seq;
    snprintf(h->id, sizeof(h->id), "%s-%d-%u", tag, (int)getpid(), seq++);
}

char *const *jh_argv(const struct jh *h, const char *const *extra, const char *const *run)
{
    static char *argv[96];
    static char uid[16], gid[16];
    snprintf(uid, sizeof(uid), "%d", JH_UID);
    snprintf(gid, sizeof(gid), "%d", JH_GID);
    const char *head[] = {wisp_bin(), "jail", "--id",          h->id,   "--uid",       uid,
                          "--gid",    gid,    "--chroot-base", h->base, "--exec-file", h->exec};
    int n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(head); i++)
        argv[n++] = (char *)(uintptr_t)head[i];
    for (; extra && *extra && n < 60; extra++)
        argv[n++] = (char *)(uintptr_t)*extra;
    argv[n++] = (char *)"--";
    for (; run && *run && n < 94; run++)
        argv[n++] = (char *)(uintptr_t)*run;
    argv[n] = NULL;
    return argv;
}

void jh_run(const struct jh *h, struct proc_result *r, const char *input, const char *const *extra,
            const char *const *run)
{
    int ret = proc_run(jh_argv(h, extra, run), NULL, input, input ? strlen(input) : 0,
                       WISP_TIMEOUT_MS, r);
    cr_assert_eq(ret, 0, "cannot start %s", wisp_bin());
    cr_assert_not(r->timed_out, "timed out\nstdout:\n%s\nstderr:\n%s", r->out, r->err);
}

void jh_start(const struct jh *h, struct sandbox_proc *p, const char *const *extra,
              const char *const *run, const char *ready)
{
    cr_assert_eq(sandbox_proc_start(p, jh_argv(h, extra, run), NULL), 0);
    if (!sandbox_proc_wait_for(p, ready, WISP_TIMEOUT_MS)) {
        struct proc_result r;
        sandbox_proc_finish(p, NULL, 5000, &r);
        cr_assert_fail("no '%s' from the jailed guest (status %d)\nstdout:\n%s\nstderr:\n%s", ready,
                       r.status, r.out, r.err);
    }
}

pid_t jh_vmm_pid(pid_t jailer)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)jailer, (int)jailer);
    char *s = jh_read_proc(path);
    cr_assert_not_null(s, "cannot read %s", path);
    char *end;
    long pid = strtol(s, &end, 10);
    cr_assert_gt(pid, 0, "the jailer has no child: '%s'", s);
    cr_assert_eq(end[strspn(end, " \n")], '\0', "more than one child: '%s'", s);
    free(s);
    return (pid_t)pid;
}

const char *jh_id_dir(const struct jh *h)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/wisp/%s", h->base, h->id);
    return path;
}

const char *jh_root_dir(const struct jh *h)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/wisp/%s/root", h->base, h->id);
    return path;
}

void jh_cleanup(struct jh *h)
{
    if (!h->base[0])
        return;
    char *const argv[] = {
        (char *)(uintptr_t)wisp_bin(), (char *)"jail", (char *)"--cleanup",   (char *)"--id", h->id,
        (char *)"--chroot-base",       h->base,        (char *)"--exec-file", h->exec,        NULL};
    struct proc_result r;
    cr_assert_eq(proc_run(argv, NULL, NULL, 0, WISP_TIMEOUT_MS, &r), 0);
    cr_expect_eq(r.status, 0, "cleanup failed: %s", r.err);
    proc_result_free(&r);
    char path[256];
    snprintf(path, sizeof(path), "%s/wisp", h->base);
    rmdir(path);
    cr_expect_eq(rmdir(h->base), 0, "%s not empty after cleanup", h->base);
    h->base[0] = '\0';
}

void jh_assert_nothing_left(const struct jh *h)
{
    char *tree = jh_list_tree(h->base);
    cr_assert_str_eq(tree, "", "left behind in %s:\n%s", h->base, tree);
    free(tree);
}

void jh_assert_error(const struct proc_result *r, int code, const char *needle)
{
    cr_assert_eq(r->status, code, "status %d (want %d)\nstderr:\n%s", r->status, code, r->err);
    cr_assert(strncmp(r->err, "wisp: error: jail: ", 19) == 0, "stderr:\n%s", r->err);
    cr_assert_not_null(strstr(r->err, needle), "missing '%s' in:\n%s", needle, r->err);
    const char *nl = strchr(r->err, '\n');
    cr_assert(nl && nl[1] == '\0', "more than one line:\n%s", r->err);
}

const char *jh_status(pid_t pid, const char *key)
{
    static char value[256];
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    char *s = jh_read_proc(path);
    cr_assert_not_null(s, "cannot read %s", path);
    value[0] = '\0';
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, key, strlen(key)) != 0)
            continue;
        const char *v = line + strlen(key);
        v += strspn(v, " \t");
        snprintf(value, sizeof(value), "%s", v);
        break;
    }
    free(s);
    return value;
}

static char **lines;
static size_t nlines;

static void add_line(const char *l)
{
    for (size_t i = 0; i < nlines; i++)
        if (!strcmp(lines[i], l))
            return;
    lines = realloc(lines, (nlines + 1) * sizeof(char *));
    lines[nlines++] = strdup(l);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join_lines(void)
{
    if (nlines)
        qsort(lines, nlines, sizeof(char *), cmp_str);
    size_t total = 1;
    for (size_t i = 0; i < nlines; i++)
        total += strlen(lines[i]) + 1;
    char *out = calloc(1, total);
    for (size_t i = 0; i < nlines; i++) {
        strcat(out, lines[i]);
        strcat(out, "\n");
        free(lines[i]);
    }
    free(lines);
    lines = NULL;
    nlines = 0;
    return out;
}

char *jh_list_tree(const char *dir)
{
    return tree_list(dir);
}

/* "lib/x86_64-linux-gnu/libc.so.6" -> its directories and itself, as tree lines. */
static void add_lib(const char *abs)
{
    char rel[512], line[600];
    snprintf(rel, sizeof(rel), "%s", abs + 1);
    for (char *s = strchr(rel, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        snprintf(line, sizeof(line), "%s d 0755 0:0", rel);
        add_line(line);
        *s = '/';
    }
    snprintf(line, sizeof(line), "%s f 0555 0:0", rel);
    add_line(line);
}

char *jh_expected_tree(const struct jh *h, const char *const *extra_lines)
{
    char cmd[PATH_MAX + 16], line[700];
    snprintf(cmd, sizeof(cmd), "ldd '%s'", h->exec);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    unsigned libs = 0;
    while (fgets(line, sizeof(line), f)) {
        char *arrow = strstr(line, "=> ");
        char *p = arrow ? arrow + 3 : line + strspn(line, " \t");
        if (p[0] != '/')
            continue; /* linux-vdso.so.1 */
        p[strcspn(p, " (\n")] = '\0';
        add_lib(p);
        libs++;
    }
    pclose(f);
    /* A static wisp (the default build) needs no libraries in its jail. */
    cr_log_info("%u shared libraries expected in the jail for %s", libs, h->exec);
    add_line("dev d 0755 0:0");
    snprintf(line, sizeof(line), "dev/kvm c 0600 %d:%d 10:232", JH_UID, JH_GID);
    add_line(line);
    add_line("wisp f 0511 0:0");
    for (; extra_lines && *extra_lines; extra_lines++)
        add_line(*extra_lines);
    return join_lines();
}

bool jh_seccomp_built_in(void)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--help", NULL);
    bool yes = strstr(r.out, "--seccomp") != NULL;
    proc_result_free(&r);
    return yes;
}

const char *jh_cgroup_root(char *why, size_t whylen)
{
    static char root[512];
    char *mi = jh_read_proc("/proc/self/mountinfo");
    int ret = mi ? jail_cgroup_find_mount(mi, root, sizeof(root)) : -1;
    free(mi);
    if (ret < 0) {
        snprintf(why, whylen, "cgroup v2 is not mounted");
        return NULL;
    }
    struct statvfs sv;
    if (statvfs(root, &sv) < 0 || (sv.f_flag & ST_RDONLY)) {
        snprintf(why, whylen, "cgroup v2 at %s is not writable", root);
        return NULL;
    }
    return root;
}

static void expect_status(pid_t pid, const char *key, const char *want)
{
    const char *got = jh_status(pid, key);
    cr_expect_str_eq(got, want, "/proc/%d/status %s is '%s', want '%s'", (int)pid, key, got, want);
}

void jh_check_identity(pid_t vmm)
{
    char ids[64];
    snprintf(ids, sizeof(ids), "%d\t%d\t%d\t%d", JH_UID, JH_UID, JH_UID, JH_UID);
    expect_status(vmm, "Uid:", ids);
    snprintf(ids, sizeof(ids), "%d\t%d\t%d\t%d", JH_GID, JH_GID, JH_GID, JH_GID);
    expect_status(vmm, "Gid:", ids);
    expect_status(vmm, "Groups:", "");
    const char *caps[] = {"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"};
    for (size_t i = 0; i < ARRAY_SIZE(caps); i++)
        expect_status(vmm, caps[i], "0000000000000000");
    expect_status(vmm, "NoNewPrivs:", "1");
    char nspid[32];
    snprintf(nspid, sizeof(nspid), "%d\t1", (int)vmm);
    expect_status(vmm, "NSpid:", nspid); /* PID 1 of its own namespace */
}
