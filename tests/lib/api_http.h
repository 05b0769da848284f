/*
 * A test client for the control API (docs/API.md): send raw bytes or a
 * simple request on a UNIX socket and read the reply until the server
 * closes it.  The unit tests of the server and the integration tests use
 * it; it is deliberately separate from wisp's own client (api_client.c),
 * so a bug there cannot hide one in the server.
 */
#ifndef TESTS_LIB_API_HTTP_H
#define TESTS_LIB_API_HTTP_H

#include <stddef.h>

#define API_HTTP_REPLY_MAX 8192

/* Connect to the socket at `path`; the fd, or -1. */
int api_http_connect(const char *path);

/* Read until EOF, a full buffer or `ms`; the bytes read (buf NUL-terminated). */
size_t api_http_read_all(int fd, char *buf, size_t cap, int ms);

/*
 * Send `raw` (a whole request, rawlen bytes) on a new connection and read
 * the reply into `reply` (API_HTTP_REPLY_MAX bytes).  Returns the status,
 * with *body pointing into `reply` at the body, or -1 without an HTTP
 * answer within 5 s.
 */
int api_http_raw(const char *sock, const char *raw, size_t rawlen, char *reply, const char **body);

/* METHOD PATH with `json` (or no body) and Connection: close, as api_http_raw. */
int api_http(const char *sock, const char *method, const char *path, const char *json, char *reply,
             const char **body);

#endif /* TESTS_LIB_API_HTTP_H */
