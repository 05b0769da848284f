/* A test client for the control API (see api_http.h). */
#include "tests/lib/api_http.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int api_http_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

size_t api_http_read_all(int fd, char *buf, size_t cap, int ms)
{
    size_t got = 0;
    double end = now_s() + ms / 1000.0;
    while (got < cap - 1) {
        int left = (int)((end - now_s()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return got;
}

int api_http_raw(const char *sock, const char *raw, size_t rawlen, char *reply, const char **body)
{
    reply[0] = '\0';
    *body = "";
    int fd = api_http_connect(sock);
    if (fd < 0)
        return -1;
    size_t sent = 0;
    while (sent < rawlen) {
        ssize_t n = send(fd, raw + sent, rawlen - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may answer 413 and close before reading it all */
        sent += (size_t)n;
    }
    api_http_read_all(fd, reply, API_HTTP_REPLY_MAX, 5000);
    close(fd);
    int status;
    if (sscanf(reply, "HTTP/1.1 %d ", &status) != 1)
        return -1;
    const char *b = strstr(reply, "\r\n\r\n");
    *body = b ? b + 4 : "";
    return status;
}

int api_http(const char *sock, const char *method, const char *path, const char *json, char *reply,
             const char **body)
{
    size_t jlen = json ? strlen(json) : 0, cap = jlen + strlen(method) + strlen(path) + 256;
    char *req = malloc(cap);
    if (!req)
        return -1;
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, jlen, json ? json : "");
    int st = n < 0 || (size_t)n >= cap ? -1 : api_http_raw(sock, req, (size_t)n, reply, body);
    free(req);
    return st;
}
