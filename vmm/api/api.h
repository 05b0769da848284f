/*
 * The control API (docs/API.md): HTTP/1.1 with JSON bodies on a UNIX socket
 * (--api-sock PATH), served by libmicrohttpd on a thread of its own under
 * the `api` seccomp role.  Split in three so that what decides the answers
 * can be tested without sockets or KVM:
 *
 *   api_route.c   method + path + body -> status + JSON body (pure; a fake
 *                 struct vm_control is enough to test it)
 *   api_server.c  the socket, libmicrohttpd, the thread, body and
 *                 connection limits
 *   api_client.c  `wisp pause|resume|status --api-sock PATH`: a small
 *                 HTTP/1.1 client of the same socket
 *
 * The API reaches the VM only through struct vm_control (vmm/control.h).
 */
#ifndef VMM_API_API_H
#define VMM_API_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/control.h"
#include "vmm/error.h"

/* Limits (docs/API.md, "Limits"). */
#define API_BODY_MAX        4096 /* request body bytes; more is 413 */
#define API_MAX_CONNECTIONS 16   /* concurrent clients; more are closed at once */
#define API_CONN_TIMEOUT_S  5    /* an idle connection is closed after this long */
#define API_MEMORY_LIMIT    8192 /* per-connection buffer: request line and headers (431) */

/* ---- routing (api_route.c) ------------------------------------------------ */

struct api_reply {
    unsigned status;   /* HTTP status */
    char *body;        /* malloc'd JSON text, or NULL for no body (204) */
    const char *allow; /* 405: the methods the resource takes (Allow header) */
};

/*
 * Answer one complete request.  `path` is the URL path without the query;
 * `body` holds `len` bytes (not necessarily NUL-terminated; len <=
 * API_BODY_MAX is the server's job).  Every error is a status >= 400 with
 * {"fault_message": "..."}.  Returns 0 with *out filled, or -ENOMEM (then
 * the server answers 500 without a body).  The caller frees out->body.
 */
int api_route(const struct vm_control *ctl, const char *method, const char *path, const char *body,
              size_t len, struct api_reply *out) __must_check;

/* Fill *out with `status` and {"fault_message": msg}; 0 or -ENOMEM. */
int api_fault(struct api_reply *out, unsigned status, const char *msg) __must_check;

/*
 * Parse `body` (len bytes) as exactly one JSON object with nothing after it.
 * NULL on failure, with *msg pointing at a fault message (maybe in buf).
 * The caller puts the object (json_object_put).
 */
struct json_object *api_parse_object(const char *body, size_t len, char *buf, size_t buflen,
                                     const char **msg);

/* One accepted field of a request body (api_fields_get). */
/* API_FIELD_OBJECT: any JSON object, accepted and ignored (rate limiters).
 * API_FIELD_ARRAY: any JSON array, type-checked only (the caller walks it). */
enum api_field_kind {
    API_FIELD_STRING,
    API_FIELD_BOOL,
    API_FIELD_UINT,
    API_FIELD_OBJECT,
    API_FIELD_ARRAY
};
struct api_field {
    const char *name;
    enum api_field_kind kind;
    bool required;
    const char **str; /* STRING: set to the value (owned by the object) */
    const char *only; /* STRING: the one value accepted, or NULL for any */
    bool *flag;       /* BOOL */
    uint64_t *num;    /* UINT, within [min, max] */
    uint64_t min, max;
    const char *why; /* appended to the fault for `only` or `required` */
};

/*
 * Walk the members of `o` against `fields` (at most 64): each member must be
 * one of them with the right JSON type and value, and every required field
 * must be present; JSON null counts as absent (it satisfies no required
 * field).  True with the targets set; false with *msg pointing at
 * a fault message (maybe in buf) that names the field: "unknown field or
 * wrong type: 'x' (accepted: ...)", "n must be a whole number in 1-64",
 * "t must be \"Full\" ...", "p is required ...".  *msg must be NULL on entry.
 */
bool api_fields_get(struct json_object *o, const struct api_field *fields, size_t n, char *buf,
                    size_t buflen, const char **msg);

/*
 * A request body that must be one JSON object with exactly `fields`: parse
 * it (api_parse_object) and walk it (api_fields_get).  Returns the object,
 * which the caller puts once it no longer needs the strings it points to;
 * or NULL with *ret from api_fault(out, 400, ...) already set.
 */
struct json_object *api_body_fields(const char *body, size_t len, const struct api_field *fields,
                                    size_t n, struct api_reply *out, int *ret);

/* GET /version: {"vmm_version", "git_revision"}; 0 or -ENOMEM. */
int api_get_version(struct api_reply *out) __must_check;

/* Fill *out with `status` and the text of `o` (which it puts); 0 or -ENOMEM. */
int api_reply_json(struct api_reply *out, unsigned status, struct json_object *o) __must_check;

/* PUT /snapshot/create and /snapshot/load (api_snapshot.c). */
int api_snapshot_create(const struct vm_control *ctl, const char *body, size_t len,
                        struct api_reply *out) __must_check;
int api_snapshot_load(const struct vm_control *ctl, const char *body, size_t len,
                      struct api_reply *out) __must_check;

/* GET, PUT and DELETE /migration (api_migrate.c); `method` is one of those. */
int api_migration(const struct vm_control *ctl, const char *method, const char *body, size_t len,
                  struct api_reply *out) __must_check;

/*
 * /balloon (GET, PUT, PATCH) and, with `stats`, /balloon/statistics (GET,
 * PATCH) (api_balloon.c); `method` is one of those.
 */
int api_balloon(const struct vm_control *ctl, const char *method, bool stats, const char *body,
                size_t len, struct api_reply *out) __must_check;

/* PUT /balloon's body, Firecracker's fields, before and after InstanceStart alike. */
struct api_balloon_put {
    uint64_t amount_mib;               /* required, at most API_BALLOON_MAX_MIB */
    bool deflate_on_oom;               /* required */
    uint64_t stats_polling_interval_s; /* optional (0: no statistics), at most one day */
};
#define API_BALLOON_MAX_MIB        (1U << 20) /* 1 TiB; the device checks against guest RAM */
#define API_BALLOON_MAX_INTERVAL_S (24U * 3600)

/*
 * Walk `o` (an object) as a PUT /balloon body (api_fields_get's rules)
 * into *b.  True, or false with *msg set (maybe in buf).
 */
bool api_balloon_put_fields(struct json_object *o, struct api_balloon_put *b, char *buf,
                            size_t buflen, const char **msg);

/* Make json-c's one-time hash seed now (it may call getrandom), not in the
 * sandboxed thread.  Called by api_server_create(). */
void api_route_warm_up(void);

/* ---- server (api_server.c) ------------------------------------------------ */

struct api_server;

/*
 * Bind and listen on the UNIX socket `path` (mode 0600; a stale socket file
 * nobody listens on is replaced) and set up libmicrohttpd on it.  Set-up
 * time, before Landlock and seccomp.  Returns 0 or -errno with `err` set
 * (WISP_EXIT_USAGE for a path problem, WISP_EXIT_HOST otherwise).
 */
int api_server_create(const char *path, const struct vm_control *ctl, struct api_server **out,
                      struct errbuf *err) __must_check;

/*
 * Start the server thread (`wisp-api`), which enters the `api` seccomp
 * role before it serves anything.  Call before the creating thread enters
 * its own filter (filters are inherited).  0 or -errno with `err` set.
 */
int api_server_start(struct api_server *s, struct errbuf *err) __must_check;

/*
 * Serve the Firecracker pre-boot phase (api_fc.h) instead of a running VM:
 * requests go to api_fc_route(fc, ...), and fc->answered is called on the
 * server thread once the accepted InstanceStart's answer has been sent.
 * Call before api_server_start().
 */
struct api_fc;
void api_server_set_preboot(struct api_server *s, struct api_fc *fc);

/*
 * End the pre-boot server but keep its listening socket (and socket file)
 * for the next api_server_create() on the same path, so a client never
 * finds the socket missing between InstanceStart and the running VM's
 * server.  Open connections are closed; connections not yet accepted wait
 * in the backlog.  Frees s in every case.  0, or -EINVAL (not started, or
 * a socket is already kept) / -EIO (libmicrohttpd did not give it back);
 * on failure the socket file is removed and the next server binds anew.
 */
int api_server_hand_over(struct api_server *s);

/*
 * Close a socket api_server_hand_over() kept that no server took (the VM
 * was never built) and remove its file.  A no-op otherwise.
 */
void api_server_drop_handed(void);

/* Has the server thread left its loop (stopped, or it could not go on:
 * its seccomp role failed, epoll_wait failed)?  Any thread. */
bool api_server_ended(struct api_server *s);

/* Stop the thread and wait for it; open connections are closed.  Idempotent. */
void api_server_stop(struct api_server *s);

/* Stop if needed, close everything and remove the socket file. */
void api_server_destroy(struct api_server *s);

/* ---- client (api_client.c) ------------------------------------------------ */

/* Exit status of the CLI verbs (docs/API.md, "Command line"). */
enum api_cli_exit {
    API_CLI_OK = 0,       /* the request succeeded */
    API_CLI_REFUSED = 1,  /* the API answered with an error (fault printed) */
    API_CLI_USAGE = 2,    /* bad command line */
    API_CLI_NO_REPLY = 3, /* no answer: cannot connect, timeout, not HTTP */
};

/*
 * Send the complete HTTP request `req` on the UNIX socket `path` and read
 * the whole reply into buf (at most cap - 1 bytes, NUL-terminated) within
 * timeout_ms.  0, or -errno with a short reason in *why.
 */
int api_client_exchange(const char *path, const char *req, long timeout_ms, char *buf, size_t cap,
                        size_t *got, const char **why) __must_check;

/* `wisp migrate --api-sock PATH --to URL [...]` (api_cli_migrate.c). */
int api_cli_migrate(int argc, char *const argv[]);

/* Is argv[1] a control verb (pause, resume, status, snapshot, migrate)? */
bool api_cli_is_verb(const char *cmd);

/* Run `wisp VERB --api-sock PATH`: prints the JSON answer or one error line. */
int api_cli_main(int argc, char *const argv[]);

/*
 * Parse an HTTP/1.1 response held in buf[0..len): the status code and where
 * the body starts and how long it is (Content-Length if given, else the
 * rest).  0, or -EPROTO for anything that is not a complete response.
 */
int api_client_parse_response(const char *buf, size_t len, unsigned *status, size_t *body_off,
                              size_t *body_len) __must_check;

#endif /* VMM_API_API_H */
