/*
 * The control API server (see api.h, docs/API.md): libmicrohttpd on a UNIX
 * socket, driven by a thread of our own.
 *
 * Why our own thread and not libmicrohttpd's: seccomp filters are per
 * thread and inherited, and no role may create threads.  A thread made
 * inside libmicrohttpd could not enter the `api` role before serving.  So
 * the daemon runs in "external epoll" mode: wisp-api enters its filter,
 * then waits on libmicrohttpd's epoll fd and a stop eventfd and calls
 * MHD_run().  Everything libmicrohttpd does on the socket happens on this
 * thread, under the `api` allow-list.
 *
 * Why a client cannot stall the VM: every socket is non-blocking, a request
 * is answered only once it is complete, idle connections are closed after
 * API_CONN_TIMEOUT_S, at most API_MAX_CONNECTIONS are open, headers are
 * bounded by API_MEMORY_LIMIT and bodies by API_BODY_MAX.  The thread holds
 * no lock a vCPU or the main loop takes, except briefly the pause lock
 * (vm_pause's wait is bounded by VM_PAUSE_TIMEOUT_MS).
 */
#include "vmm/api/api.h"
#include "vmm/uds.h"
#include "sandbox/sandbox.h"
#include "vmm/api/api_fc.h"
#include "vmm/log.h"
#include "vmm/metrics.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Longest wait between MHD_run() calls when libmicrohttpd has no deadline. */
#define API_IDLE_WAIT_MS 1000

struct api_server {
    const struct vm_control *ctl;
    struct api_fc *fc; /* the pre-boot phase: requests go to api_fc_route() */
    bool keep_listen;  /* api_server_hand_over(): the thread keeps the listening socket */
    /* The pre-boot start or load is answered: accept no new connection, so
     * that the next client waits in the backlog for the VM's own server
     * instead of reaching this one while it is handed over (quiesced_fd:
     * the listening socket libmicrohttpd gave back, or -1). */
    bool quiesce, quiesced;
    int quiesced_fd;
    atomic_bool ended; /* the thread left its loop (stopped, or gave up) */
    struct MHD_Daemon *mhd;
    int listen_fd; /* owned by libmicrohttpd once mhd exists */
    int stop_efd;
    int ep; /* the thread's: stop_efd and libmicrohttpd's epoll fd */
    pthread_t thread;
    bool thread_started;
    bool created_path;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* The listening socket api_server_hand_over() keeps for the next server. */
static struct {
    int fd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
} handed = {.fd = -1};

/* One request in progress: its body, collected up to the cap. */
struct api_request {
    size_t len;
    bool too_big;
    bool answered; /* a response was queued before the body was read */
    bool started;  /* this request was the InstanceStart the pre-boot phase accepted */
    char body[API_BODY_MAX];
};

/* libmicrohttpd's diagnostics (a client's protocol errors among them): rate-limited. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[256];
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    log_ratelimited(LOG_DEBUG, "api: %s", line);
}

static enum MHD_Result queue_reply(struct MHD_Connection *conn, const struct api_reply *r)
{
    static char empty[1];
    char *body = r->body ? r->body : empty; /* copied by libmicrohttpd */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO; /* libmicrohttpd closes the connection */
    if (r->body)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result queue_fault(struct MHD_Connection *conn, unsigned status, const char *msg)
{
    struct api_reply r = {0};
    if (api_fault(&r, status, msg) < 0)
        return MHD_NO;
    enum MHD_Result ret = queue_reply(conn, &r);
    free(r.body);
    return ret;
}

static enum MHD_Result too_big(struct MHD_Connection *conn)
{
    char msg[80];
    snprintf(msg, sizeof(msg), "request body over %d bytes", API_BODY_MAX);
    return queue_fault(conn, 413, msg);
}

/*
 * libmicrohttpd calls this once when the headers are in (*con_cls NULL),
 * then once per piece of body (*upload_size > 0), then once with
 * *upload_size 0 when the request is complete.
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    struct api_server *s = cls;
    struct api_request *req = *con_cls;
    (void)version;
    if (!req) {
        req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
        *con_cls = req;
        /* Refuse a declared oversize body before reading any of it. */
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > API_BODY_MAX) {
            req->answered = true;
            return too_big(conn);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        /* A chunked body has no length up front: count as it comes. */
        if (!req->answered && !req->too_big) {
            if (*upload_size > API_BODY_MAX - req->len) {
                req->too_big = true;
            } else {
                memcpy(req->body + req->len, upload_data, *upload_size);
                req->len += *upload_size;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->answered)
        return MHD_YES;
    req->answered = true;
    if (req->too_big)
        return too_big(conn);
    struct api_reply r = {0};
    bool was_started = s->fc && s->fc->started;
    int routed = s->fc ? api_fc_route(s->fc, method, url, req->body, req->len, &r)
                       : api_route(s->ctl, method, url, req->body, req->len, &r);
    if (routed < 0)
        return queue_fault(conn, 500, "out of memory");
    req->started = s->fc && !was_started && s->fc->started;
    metrics_inc(METRICS_API_REQUESTS);
    metrics_inc(r.status < 300   ? METRICS_API_STATUS_2XX
                : r.status < 500 ? METRICS_API_STATUS_4XX
                                 : METRICS_API_STATUS_5XX);
    log_debug("api: %s %s -> %u", method, url, r.status);
    enum MHD_Result ret = queue_reply(conn, &r);
    free(r.body);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct api_server *s = cls;
    struct api_request *req = *con_cls;
    (void)conn;
    (void)toe;
    /* The InstanceStart answer is out (or its client gone): the VM may run. */
    if (req && req->started && s->fc) {
        s->quiesce = true;
        if (s->fc->answered)
            s->fc->answered(s->fc->ctx);
    }
    free(*con_cls);
    *con_cls = NULL;
}

static int bind_socket(struct api_server *s, const char *path, struct errbuf *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(sa.sun_path))
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "API socket path must be 1 to %zu bytes",
                       sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, path, len);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->listen_fd < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "API socket %s: socket: %s", path,
                       strerror(errno));
    /* 0600, a stale socket file replaced, anything else refused (uds.h). */
    int ret = uds_bind_listener(s->listen_fd, &sa, "API socket", err);
    if (ret < 0)
        return ret;
    s->created_path = true;
    memcpy(s->path, path, len + 1);
    if (listen(s->listen_fd, API_MAX_CONNECTIONS) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "API socket %s: listen: %s", path,
                       strerror(errno));
    return 0;
}

int api_server_create(const char *path, const struct vm_control *ctl, struct api_server **out,
                      struct errbuf *err)
{
    struct api_server *s = calloc(1, sizeof(*s));
    if (!s)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    s->ctl = ctl;
    s->listen_fd = s->stop_efd = s->ep = s->quiesced_fd = -1;
    int ret = 0;
    if (handed.fd >= 0 && !strcmp(handed.path, path)) {
        /* The pre-boot phase's socket: clients never see it go away. */
        s->listen_fd = handed.fd;
        handed.fd = -1;
        s->created_path = true;
        memcpy(s->path, handed.path, sizeof(s->path));
    } else {
        ret = bind_socket(s, path, err);
    }
    if (ret < 0)
        goto fail;
    s->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    if (s->stop_efd < 0 || s->ep < 0) {
        ret = err_set(err, WISP_EXIT_HOST, errno, "API: cannot create eventfd or epoll: %s",
                      strerror(errno));
        goto fail;
    }
    /* No Date header: it would need the time zone files after Landlock. */
    s->mhd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_SUPPRESS_DATE_NO_CLOCK | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, s, MHD_OPTION_LISTEN_SOCKET, s->listen_fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)API_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_CONN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)API_MEMORY_LIMIT, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_END);
    if (!s->mhd) {
        ret = err_set(err, WISP_EXIT_HOST, EIO, "API socket %s: libmicrohttpd did not start", path);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->stop_efd};
    if (!info || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->stop_efd, &ev) < 0 ||
        (ev.data.fd = info->epoll_fd, epoll_ctl(s->ep, EPOLL_CTL_ADD, info->epoll_fd, &ev) < 0)) {
        ret = err_set(err, WISP_EXIT_HOST, errno ? errno : EIO, "API: cannot watch the daemon");
        goto fail;
    }
    api_route_warm_up();
    *out = s;
    return 0;
fail:
    api_server_destroy(s);
    return ret;
}

static void *api_thread(void *arg)
{
    struct api_server *s = arg;
    pthread_setname_np(pthread_self(), "wisp-api");
    /* Like the vCPUs: process-directed signals are the main thread's. */
    sandbox_thread_signals(0);

    struct errbuf err = {0};
    if (sandbox_enter(SANDBOX_API, &err) < 0) {
        log_error("api: %s; the control API is off", err.msg);
        goto out;
    }
    for (;;) {
        MHD_UNSIGNED_LONG_LONG left;
        int wait = API_IDLE_WAIT_MS;
        if (MHD_get_timeout(s->mhd, &left) == MHD_YES && left < (MHD_UNSIGNED_LONG_LONG)wait)
            wait = (int)left;
        struct epoll_event evs[2];
        int n = epoll_wait(s->ep, evs, 2, wait);
        if (n < 0 && errno != EINTR) {
            log_error("api: epoll_wait: %s; the control API is off", strerror(errno));
            break;
        }
        bool stop = false;
        for (int i = 0; i < n; i++)
            stop |= evs[i].data.fd == s->stop_efd;
        if (stop)
            break;
        MHD_run(s->mhd);
        if (s->quiesce && !s->quiesced) {
            s->quiesced_fd = MHD_quiesce_daemon(s->mhd);
            s->quiesced = true;
        }
    }
out:
    /* Quiescing gives the listening socket back instead of closing it. */
    atomic_store(&s->ended, true);
    s->listen_fd = s->quiesced ? s->quiesced_fd : s->keep_listen ? MHD_quiesce_daemon(s->mhd) : -1;
    /* Here, under our filter: closing client connections is this role's work. */
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    return NULL;
}

int api_server_start(struct api_server *s, struct errbuf *err)
{
    int ret = pthread_create(&s->thread, NULL, api_thread, s);
    if (ret)
        return err_set(err, WISP_EXIT_HOST, ret, "cannot start the API thread: %s", strerror(ret));
    s->thread_started = true;
    return 0;
}

void api_server_stop(struct api_server *s)
{
    if (!s->thread_started)
        return;
    uint64_t one = 1;
    ssize_t r __unused = write(s->stop_efd, &one, sizeof(one));
    pthread_join(s->thread, NULL);
    s->thread_started = false;
}

void api_server_destroy(struct api_server *s)
{
    if (!s)
        return;
    api_server_stop(s);
    if (s->mhd)
        MHD_stop_daemon(s->mhd); /* never started: no client connections */
    else if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->created_path && unlink(s->path) < 0 && errno != ENOENT)
        log_warn("API socket %s: cannot remove it: %s", s->path, strerror(errno));
    if (s->ep >= 0)
        close(s->ep);
    if (s->stop_efd >= 0)
        close(s->stop_efd);
    free(s);
}

void api_server_set_preboot(struct api_server *s, struct api_fc *fc)
{
    s->fc = fc;
}

int api_server_hand_over(struct api_server *s)
{
    if (!s->thread_started || handed.fd >= 0) {
        api_server_destroy(s);
        return -EINVAL;
    }
    s->keep_listen = true;
    api_server_stop(s);
    if (s->listen_fd < 0) { /* libmicrohttpd could not give the socket back */
        api_server_destroy(s);
        return -EIO;
    }
    handed.fd = s->listen_fd;
    memcpy(handed.path, s->path, sizeof(handed.path));
    s->listen_fd = -1;
    s->created_path = false; /* the socket file stays for the next server */
    api_server_destroy(s);
    return 0;
}

void api_server_drop_handed(void)
{
    if (handed.fd < 0)
        return;
    close(handed.fd);
    handed.fd = -1;
    if (unlink(handed.path) < 0 && errno != ENOENT)
        log_warn("API socket %s: cannot remove it: %s", handed.path, strerror(errno));
}

bool api_server_ended(struct api_server *s)
{
    return atomic_load(&s->ended);
}
