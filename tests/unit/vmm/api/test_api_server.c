/*
 * The API server without KVM: api_server_create/start with a fake
 * struct vm_control, under the real `api` seccomp filter (--seccomp kill;
 * a syscall missing from the role would end the test process with status
 * 148).  Checks the libmicrohttpd set-up: the socket and its mode, body
 * and header limits, a stalled client that must not hold up another, the
 * idle timeout, and clean removal of the socket.
 */
#include "vmm/api/api.h"
#include "sandbox/sandbox.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/api_http.h"

static int pauses;
static enum vm_run_state state = VM_STATE_RUNNING;

static int fake_pause(void *ctx, unsigned timeout_ms)
{
    (void)ctx;
    (void)timeout_ms;
    pauses++;
    state = VM_STATE_PAUSED;
    return 0;
}

static int fake_resume(void *ctx)
{
    (void)ctx;
    state = VM_STATE_RUNNING;
    return 0;
}

static enum vm_run_state fake_state(void *ctx)
{
    (void)ctx;
    return state;
}

static const struct vm_control ctl = {.pause = fake_pause,
                                      .resume = fake_resume,
                                      .state = fake_state,
                                      .vcpus = 1,
                                      .mem_bytes = 1 << 30};

static char dir[] = "/tmp/wisp-api-unit-XXXXXX";
static char sock[64];
static struct api_server *server;
static char reply[API_HTTP_REPLY_MAX];
static const char *body;

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    snprintf(sock, sizeof(sock), "%s/api.sock", dir);
    struct errbuf err = {0};
    struct sandbox_opts opts = {.mode = SECCOMP_KILL, .roles = 1u << SANDBOX_API};
    cr_assert_eq(sandbox_prepare(&opts, &err), 0, "%s", err.msg);
    cr_assert_eq(api_server_create(sock, &ctl, &server, &err), 0, "%s", err.msg);
    cr_assert_eq(api_server_start(server, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
    api_server_destroy(server);
    struct stat st;
    cr_assert_lt(stat(sock, &st), 0, "the socket file was left behind");
    rmdir(dir);
}

TestSuite(api_server, .init = setup, .fini = teardown, .timeout = 60);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(api_server, serves_under_its_filter)
{
    struct stat st;
    cr_assert_eq(stat(sock, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);

    cr_assert_eq(api_http(sock, "GET", "/", NULL, reply, &body), 200, "%s", reply);
    cr_assert(strstr(body, "\"state\":\"Running\""), "%s", body);
    cr_assert_eq(api_http(sock, "PATCH", "/vm", "{\"state\":\"Paused\"}", reply, &body), 204, "%s",
                 reply);
    cr_assert_eq(pauses, 1);
    cr_assert_str_eq(body, "");
    cr_assert_eq(api_http(sock, "GET", "/", NULL, reply, &body), 200, "%s", reply);
    cr_assert(strstr(body, "\"state\":\"Paused\""), "%s", body);
    cr_assert_eq(api_http(sock, "PUT", "/vm", "{}", reply, &body), 405, "%s", reply);
    cr_assert(strstr(reply, "\r\nAllow: PATCH\r\n"), "%s", reply);
    cr_assert_eq(api_http(sock, "GET", "/nope", NULL, reply, &body), 404, "%s", reply);
    cr_assert_eq(api_http(sock, "PATCH", "/vm", "{", reply, &body), 400, "%s", reply);
    cr_assert(strstr(body, "{\"fault_message\":\"malformed JSON"), "%s", body);
}

Test(api_server, bodies_over_the_cap_are_413)
{
    static char big[API_BODY_MAX + 2];
    memset(big, ' ', sizeof(big) - 1);
    cr_assert_eq(api_http(sock, "PATCH", "/vm", big, reply, &body), 413, "%s", reply);
    cr_assert(strstr(body, "request body over 4096 bytes"), "%s", body);

    /* Declared small, no length at all: chunked, counted as it arrives. */
    static char req[API_BODY_MAX * 2];
    int n = snprintf(req, sizeof(req),
                     "PATCH /vm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
                     strlen(big), big);
    cr_assert_eq(api_http_raw(sock, req, (size_t)n, reply, &body), 413, "%s", reply);

    /* Exactly at the cap is fine (and then just bad JSON). */
    big[API_BODY_MAX] = '\0';
    cr_assert_eq(api_http(sock, "PATCH", "/vm", big, reply, &body), 400, "%s", reply);
    cr_assert_eq(pauses, 0);
}

Test(api_server, huge_headers_are_refused)
{
    static char req[API_MEMORY_LIMIT * 2];
    int n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'a', API_MEMORY_LIMIT + 100);
    n += API_MEMORY_LIMIT + 100;
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\nConnection: close\r\n\r\n");
    int st = api_http_raw(sock, req, (size_t)n, reply, &body);
    cr_assert(st == 431 || st == 413 || st == -1, "status %d: %s", st, reply);
    cr_assert_eq(api_http(sock, "GET", "/", NULL, reply, &body), 200, "still serving");
}

Test(api_server, a_stalled_client_holds_up_nobody, .timeout = 60)
{
    int stalled = api_http_connect(sock);
    cr_assert_geq(stalled, 0);
    static const char half[] = "PATCH /vm HTTP/1.1\r\nContent-Length: 30\r\n\r\n{\"st";
    cr_assert_eq(send(stalled, half, strlen(half), MSG_NOSIGNAL), (ssize_t)strlen(half));
    double t0 = now_s();
    cr_assert_eq(api_http(sock, "GET", "/", NULL, reply, &body), 200, "%s", reply);
    cr_assert_lt(now_s() - t0, 1.0, "another client waited");
    char buf[64];
    size_t got = api_http_read_all(stalled, buf, sizeof(buf), (API_CONN_TIMEOUT_S + 5) * 1000);
    double after = now_s() - t0;
    cr_assert_eq(got, 0, "answered a half request: %s", buf);
    cr_assert(after > API_CONN_TIMEOUT_S - 1 && after < API_CONN_TIMEOUT_S + 3,
              "closed after %.1f s", after);
    close(stalled);
    cr_assert_eq(pauses, 0);
}

Test(api_server, stop_with_clients_connected)
{
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = api_http_connect(sock);
        cr_assert_geq(fds[i], 0);
        cr_assert_eq(send(fds[i], "GET", 3, MSG_NOSIGNAL), 3);
    }
    cr_assert_eq(api_http(sock, "GET", "/", NULL, reply, &body), 200);
    api_server_stop(server);
    char buf[8];
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(api_http_read_all(fds[i], buf, sizeof(buf), 2000), 0);
        close(fds[i]);
    }
    cr_assert_lt(api_http(sock, "GET", "/", NULL, reply, &body), 0, "stopped, yet answered");
}

/* ---- what may already be at the socket path (vmm/uds.c) -------------------
 * Its own suite: no server from the fixture, only api_server_create on a
 * path prepared by the test.  A stale socket file (a killed wisp's) is
 * replaced; a live socket and a regular file are refused with one line and
 * left as they were. */

static char pdir[] = "/tmp/wisp-api-path-XXXXXX";
static char ppath[64];

static void path_setup(void)
{
    cr_assert_not_null(mkdtemp(pdir));
    snprintf(ppath, sizeof(ppath), "%s/api.sock", pdir);
}

static void path_teardown(void)
{
    unlink(ppath);
    rmdir(pdir);
}

TestSuite(api_server_path, .init = path_setup, .fini = path_teardown, .timeout = 30);

static int bind_at(const char *path, bool listening)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (listening)
        cr_assert_eq(listen(fd, 1), 0);
    return fd;
}

Test(api_server_path, stale_socket_file_is_replaced)
{
    close(bind_at(ppath, false)); /* the file stays, nobody accepts on it */
    struct api_server *s = NULL;
    struct errbuf err = {0};
    cr_assert_eq(api_server_create(ppath, &ctl, &s, &err), 0, "%s", err.msg);
    struct stat st;
    cr_assert_eq(stat(ppath, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    api_server_destroy(s);
}

Test(api_server_path, live_socket_is_refused)
{
    int live = bind_at(ppath, true);
    struct api_server *s = NULL;
    struct errbuf err = {0};
    cr_assert_lt(api_server_create(ppath, &ctl, &s, &err), 0);
    cr_assert(strstr(err.msg, "API socket") && strstr(err.msg, "in use by another process"), "%s",
              err.msg);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    struct stat st;
    cr_assert_eq(stat(ppath, &st), 0, "the other process's socket was removed");
    close(live);
}

Test(api_server_path, regular_file_is_refused_and_kept)
{
    FILE *f = fopen(ppath, "w");
    cr_assert_not_null(f);
    fputs("keep me", f);
    fclose(f);
    struct api_server *s = NULL;
    struct errbuf err = {0};
    cr_assert_lt(api_server_create(ppath, &ctl, &s, &err), 0);
    cr_assert(strstr(err.msg, "path exists and is not a socket"), "%s", err.msg);
    struct stat st;
    cr_assert_eq(stat(ppath, &st), 0);
    cr_assert(S_ISREG(st.st_mode) && st.st_size == 7, "the file was touched");
}
