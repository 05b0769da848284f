/* Integration-test helpers (see wisp_run.h). */
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && v[0] ? v : dflt;
}

const char *wisp_bin(void)
{
    return env_or("WISP_BIN", "build/wisp");
}
const char *wisp_hook_bin(void)
{
    const char *p = env_or("WISP_TEST_BIN", "build/wisp-test");
    return access(p, X_OK) == 0 ? p : NULL;
}
const char *guest_elf(void)
{
    return env_or("WISP_GUEST_ELF", "build/guest/testguest.elf");
}
const char *guest_bzimage(void)
{
    return env_or("WISP_GUEST_BZIMAGE", "build/guest/testguest.bzImage");
}

#define MAX_ARGS 64

void wisp_runv(struct proc_result *r, const char *input, char *const env[], const char *const *args)
{
    char *argv[MAX_ARGS + 2];
    size_t n = 0;
    argv[n++] = (char *)(uintptr_t)wisp_bin();
    for (; args[n - 1] && n < MAX_ARGS; n++)
        argv[n] = (char *)(uintptr_t)args[n - 1];
    argv[n] = NULL;
    int ret = proc_run(argv, env, input, input ? strlen(input) : 0, WISP_TIMEOUT_MS, r);
    cr_assert_eq(ret, 0, "cannot start %s", argv[0]);
    cr_assert_not(r->timed_out, "wisp timed out; stdout:\n%s\nstderr:\n%s", r->out, r->err);
}

void wisp_run(struct proc_result *r, const char *input, char *const env[], ...)
{
    const char *args[MAX_ARGS + 1];
    size_t n = 0;
    va_list ap;
    va_start(ap, env);
    while (n < MAX_ARGS && (args[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    args[n] = NULL;
    wisp_runv(r, input, env, args);
}

char *write_temp(const void *data, size_t len)
{
    char *path = strdup("/tmp/wisp-test-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        cr_assert_gt(w, 0);
        p += w;
        len -= (size_t)w;
    }
    close(fd);
    return path;
}

char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (buf)
        buf[got] = '\0';
    if (len)
        *len = got;
    return buf;
}

uint32_t fnv1a(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t h = 0x811c9dc5u;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x01000193u;
    }
    return h;
}

bool wisp_wait_signal_blocked(pid_t pid, int sig, unsigned ms)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    for (unsigned waited = 0; waited <= ms; waited += 10) {
        FILE *f = fopen(path, "r");
        if (!f)
            return false;
        unsigned long long blk = 0;
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "SigBlk: %llx", &blk) == 1)
                break;
        fclose(f);
        if (blk & (1ULL << (sig - 1)))
            return true;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return false;
}

int wisp_wait_bounded(pid_t pid, unsigned ms, const char *what)
{
    int st;
    for (unsigned waited = 0; waited < ms; waited += 20) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        cr_assert_geq(r, 0);
        if (r == pid)
            return st;
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    cr_assert_fail("wisp did not exit within %u ms %s", ms, what);
    return -1;
}
