/*
 * `wisp pause|resume|status --api-sock PATH` (see api.h, docs/API.md): a
 * small HTTP/1.1 client of the control API.
 *
 * Why hand-written and not libcurl: the client sends one fixed request and
 * reads one bounded answer on a UNIX socket, with a deadline.  The server
 * side, which parses what others send, is libmicrohttpd; here we only parse
 * the reply of our own server, refusing anything that is not a complete
 * response of at most API_CLIENT_REPLY_MAX bytes.
 */
#include "vmm/api/api.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define API_CLIENT_REPLY_MAX  65536
#define API_CLIENT_TIMEOUT_MS 10000 /* above VM_PAUSE_TIMEOUT_MS: a slow pause still answers */
/* A snapshot writes all of guest memory: wait as long as the server may take. */
#define API_CLIENT_SNAPSHOT_TIMEOUT_MS (VM_SNAPSHOT_TIMEOUT_MS + 10000)

static const struct {
    const char *verb;
    const char *method;
    const char *path;
    const char *body;
} verbs[] = {
    {"pause", "PATCH", "/vm", "{\"state\": \"Paused\"}"},
    {"resume", "PATCH", "/vm", "{\"state\": \"Resumed\"}"},
    {"status", "GET", "/", NULL},
    {"snapshot", "PUT", "/snapshot/create", NULL}, /* body from the options */
    {"migrate", "PUT", "/migration", NULL},        /* api_cli_migrate.c */
};

bool api_cli_is_verb(const char *cmd)
{
    for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
        if (!strcmp(cmd, verbs[i].verb))
            return true;
    return false;
}

int api_client_parse_response(const char *buf, size_t len, unsigned *status, size_t *body_off,
                              size_t *body_len)
{
    /* "HTTP/1.1 204 No Content\r\n": a version, then exactly three digits. */
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
        return -EPROTO;
    unsigned code = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -EPROTO;
        code = code * 10 + (unsigned)(buf[i] - '0');
    }
    if (code < 100 || (len > 12 && buf[12] != ' ' && buf[12] != '\r'))
        return -EPROTO;
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return -EPROTO;
    size_t off = (size_t)(end - buf) + 4, rest = len - off;
    /* Content-Length, if present, must be a number no larger than what came. */
    for (const char *line = memmem(buf, off, "\r\n", 2); line && line + 2 < end;
         line = memmem(line + 2, (size_t)(end - line - 2) + 2, "\r\n", 2)) {
        const char *h = line + 2;
        static const char cl[] = "content-length:";
        if ((size_t)(end - h) < sizeof(cl) - 1 || strncasecmp(h, cl, sizeof(cl) - 1) != 0)
            continue;
        const char *p = h + sizeof(cl) - 1;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = 0;
        if (*p < '0' || *p > '9')
            return -EPROTO;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (n > API_CLIENT_REPLY_MAX)
                return -EPROTO;
            n = n * 10 + (size_t)(*p - '0');
        }
        if (n > rest)
            return -EPROTO; /* cut short */
        rest = n;
        break;
    }
    *status = code;
    *body_off = off;
    *body_len = rest;
    return 0;
}

static long ms_left(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Wait for `events` on fd until the deadline: 0, or -ETIMEDOUT / -errno. */
static int wait_fd(int fd, short events, const struct timespec *deadline)
{
    for (;;) {
        long left = ms_left(deadline);
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/*
 * Send one request on `path` and read the whole reply into buf (at most
 * cap - 1 bytes, NUL-terminated).  0, or -errno with a message in `why`.
 */
int api_client_exchange(const char *path, const char *req, long timeout_ms, char *buf, size_t cap,
                        size_t *got, const char **why)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        *why = "socket path too long";
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    int ret, fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *why = "socket";
        return -errno;
    }
    if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
        ret = -errno;
        *why = "cannot connect";
        goto out;
    }
    size_t len = strlen(req), sent = 0;
    while (sent < len) {
        ssize_t n = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
        if (n >= 0) {
            sent += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            ret = -errno;
            *why = "cannot send the request";
            goto out;
        }
        if ((ret = wait_fd(fd, POLLOUT, &deadline)) < 0) {
            *why = "cannot send the request";
            goto out;
        }
    }
    *got = 0;
    for (;;) {
        if (*got == cap - 1) {
            ret = -EMSGSIZE;
            *why = "reply too large";
            goto out;
        }
        ssize_t n = recv(fd, buf + *got, cap - 1 - *got, 0);
        if (n == 0)
            break;
        if (n > 0) {
            *got += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            ret = -errno;
            *why = "cannot read the reply";
            goto out;
        }
        if ((ret = wait_fd(fd, POLLIN, &deadline)) < 0) {
            *why = ret == -ETIMEDOUT ? "no reply in time" : "cannot wait for the reply";
            goto out;
        }
    }
    buf[*got] = '\0';
    ret = 0;
out:
    close(fd);
    return ret;
}

static int usage(const char *msg)
{
    fprintf(stderr,
            "wisp: error: %s (usage: wisp pause|resume|status --api-sock PATH; wisp snapshot "
            "create --api-sock PATH --state NAME --mem NAME [--stop])\n",
            msg);
    return API_CLI_USAGE;
}

/* The body of PUT /snapshot/create; NULL on allocation failure.  Free it. */
static char *snapshot_body(const char *state, const char *mem, bool stop)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "snapshot_type", json_object_new_string("Full"));
    json_object_object_add(o, "snapshot_path", json_object_new_string(state));
    json_object_object_add(o, "mem_file_path", json_object_new_string(mem));
    if (stop)
        json_object_object_add(o, "stop", json_object_new_boolean(true));
    const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    char *copy = t ? strdup(t) : NULL;
    json_object_put(o);
    return copy;
}

int api_cli_main(int argc, char *const argv[])
{
    const char *sock = NULL;
    size_t v = 0;
    while (v < ARRAY_SIZE(verbs) && strcmp(argv[1], verbs[v].verb) != 0)
        v++;
    if (v == ARRAY_SIZE(verbs))
        return usage("unknown command");
    if (!strcmp(verbs[v].verb, "migrate"))
        return api_cli_migrate(argc, argv);
    bool snap = !strcmp(verbs[v].verb, "snapshot"), stop = false;
    const char *state = NULL, *mem = NULL;
    int first = 2;
    if (snap) {
        if (argc > 2 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help")))
            first = 2;
        else if (argc < 3 || strcmp(argv[2], "create") != 0)
            return usage("wisp snapshot takes 'create' (a snapshot is loaded with wisp run "
                         "--restore)");
        else
            first = 3;
    }
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            if (snap)
                printf("Usage: wisp snapshot create --api-sock PATH --state NAME --mem NAME "
                       "[--stop]\n(NAMEs are files in the VM's --snapshot-dir; see "
                       "docs/SNAPSHOT.md)\n");
            else
                printf("Usage: wisp %s --api-sock PATH\n(see docs/API.md)\n", verbs[v].verb);
            return API_CLI_OK;
        }
        if (!strcmp(argv[i], "--api-sock") && i + 1 < argc)
            sock = argv[++i];
        else if (!strncmp(argv[i], "--api-sock=", 11))
            sock = argv[i] + 11;
        else if (snap && !strcmp(argv[i], "--state") && i + 1 < argc)
            state = argv[++i];
        else if (snap && !strcmp(argv[i], "--mem") && i + 1 < argc)
            mem = argv[++i];
        else if (snap && !strcmp(argv[i], "--stop"))
            stop = true;
        else
            return usage(!strcmp(argv[i], "--api-sock") || !strcmp(argv[i], "--state") ||
                                 !strcmp(argv[i], "--mem")
                             ? "this option needs a value"
                             : "unexpected argument");
    }
    if (!sock || !sock[0])
        return usage("--api-sock PATH is required");
    if (snap && (!state || !mem))
        return usage("--state NAME and --mem NAME are required");

    char req[1024];
    char *snap_body = snap ? snapshot_body(state, mem, stop) : NULL;
    const char *body = snap ? snap_body : verbs[v].body;
    if (snap && !body) {
        fprintf(stderr, "wisp: error: out of memory\n");
        return API_CLI_NO_REPLY;
    }
    if (body && strlen(body) > 700) {
        free(snap_body);
        return usage("file names too long");
    }
    if (body)
        snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 verbs[v].method, verbs[v].path, strlen(body), body);
    else
        snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                 verbs[v].method, verbs[v].path);

    free(snap_body);
    char *buf = malloc(API_CLIENT_REPLY_MAX + 1);
    if (!buf) {
        fprintf(stderr, "wisp: error: out of memory\n");
        return API_CLI_NO_REPLY;
    }
    size_t got = 0, off, blen;
    unsigned status;
    const char *why = "";
    int code = API_CLI_NO_REPLY;
    int ret = api_client_exchange(sock, req,
                                  snap ? API_CLIENT_SNAPSHOT_TIMEOUT_MS : API_CLIENT_TIMEOUT_MS,
                                  buf, API_CLIENT_REPLY_MAX + 1, &got, &why);
    if (ret < 0) {
        fprintf(stderr, "wisp: error: %s: API socket %s: %s: %s\n", verbs[v].verb, sock, why,
                strerror(-ret));
        goto out;
    }
    if (api_client_parse_response(buf, got, &status, &off, &blen) < 0) {
        fprintf(stderr, "wisp: error: %s: API socket %s: not an HTTP reply\n", verbs[v].verb, sock);
        goto out;
    }
    if (status >= 200 && status < 300) {
        if (blen)
            printf("%.*s\n", (int)blen, buf + off);
        code = API_CLI_OK;
    } else {
        /* One line: the server's JSON fault (it has no line breaks). */
        fprintf(stderr, "wisp: error: %s: HTTP %u: %.*s\n", verbs[v].verb, status,
                (int)strcspn(buf + off, "\r\n") < (int)blen ? (int)strcspn(buf + off, "\r\n")
                                                            : (int)blen,
                buf + off);
        code = API_CLI_REFUSED;
    }
out:
    free(buf);
    return code;
}
