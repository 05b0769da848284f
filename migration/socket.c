/*
 * Live-migration connections (socket.h).  Addresses are numeric: the
 * sender runs sandboxed (Landlock forbids reading /etc/hosts, seccomp
 * forbids the resolver's sockets), so no name lookup happens here.
 */
#include "migration/socket.h"
#include "migration/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PFX "migration: "

int mig_uri_parse(const char *s, struct mig_uri *u, struct errbuf *err)
{
    memset(u, 0, sizeof(*u));
    if (!s || strlen(s) >= MIG_URI_MAX)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, PFX "address missing or too long");
    if (!strncmp(s, "unix:", 5)) {
        const char *p = s + 5;
        if (!p[0] || strlen(p) >= sizeof(u->path))
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           PFX "unix:PATH needs a path of 1 to %zu bytes", sizeof(u->path) - 1);
        u->kind = MIG_URI_UNIX;
        snprintf(u->path, sizeof(u->path), "%s", p);
        return 0;
    }
    if (strncmp(s, "tcp:", 4) != 0)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       PFX "address '%s' is neither tcp:HOST:PORT nor unix:PATH", s);
    const char *h = s + 4, *colon;
    size_t hlen;
    if (h[0] == '[') {
        const char *close = strchr(h, ']');
        if (!close || close[1] != ':')
            return err_set(err, WISP_EXIT_USAGE, EINVAL, PFX "bad IPv6 address in '%s'", s);
        h++;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(h, ':');
        if (!colon)
            return err_set(err, WISP_EXIT_USAGE, EINVAL, PFX "'%s' has no :PORT", s);
        hlen = (size_t)(colon - h);
    }
    if (hlen == 0 || hlen >= sizeof(u->host))
        return err_set(err, WISP_EXIT_USAGE, EINVAL, PFX "'%s' has no host", s);
    memcpy(u->host, h, hlen);
    const char *port = colon + 1;
    char *end;
    unsigned long pn = strtoul(port, &end, 10);
    if (!port[0] || *end || pn == 0 || pn > 65535 || port[0] == '+' || port[0] == '-')
        return err_set(err, WISP_EXIT_USAGE, EINVAL, PFX "bad port in '%s' (1 to 65535)", s);
    snprintf(u->port, sizeof(u->port), "%lu", pn);
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET, u->host, &a4) != 1 && inet_pton(AF_INET6, u->host, &a6) != 1)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       PFX "host '%s' must be a numeric IPv4 or IPv6 address", u->host);
    u->kind = MIG_URI_TCP;
    return 0;
}

/* Fill `ss` for `u`; returns the address length. */
static socklen_t sockaddr_of(const struct mig_uri *u, struct sockaddr_storage *ss, int *family)
{
    memset(ss, 0, sizeof(*ss));
    if (u->kind == MIG_URI_UNIX) {
        struct sockaddr_un *sa = (struct sockaddr_un *)ss;
        sa->sun_family = AF_UNIX;
        memcpy(sa->sun_path, u->path, strlen(u->path));
        *family = AF_UNIX;
        return (socklen_t)sizeof(*sa);
    }
    unsigned port = (unsigned)strtoul(u->port, NULL, 10);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, u->host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *family = AF_INET;
        return (socklen_t)sizeof(*s4);
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    (void)inet_pton(AF_INET6, u->host, &s6->sin6_addr);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    *family = AF_INET6;
    return (socklen_t)sizeof(*s6);
}

static const char *uri_text(const struct mig_uri *u, char *buf, size_t len)
{
    if (u->kind == MIG_URI_UNIX)
        snprintf(buf, len, "unix:%s", u->path);
    else
        snprintf(buf, len, "tcp:%s:%s", u->host, u->port);
    return buf;
}

static int wait_fd(int fd, short events, int stop_fd, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = stop_fd, .events = POLLIN}};
    for (;;) {
        int n = poll(p, stop_fd >= 0 ? 2 : 1, timeout_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ETIMEDOUT;
        if (stop_fd >= 0 && p[1].revents)
            return -EINTR;
        return 0;
    }
}

int mig_connect(const struct mig_uri *u, int timeout_ms, int *fd, struct errbuf *err)
{
    struct sockaddr_storage ss;
    int family;
    char txt[MIG_URI_MAX + 16];
    socklen_t len = sockaddr_of(u, &ss, &family);
    int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return err_set(err, WISP_EXIT_FAILURE, errno, PFX "socket: %s", strerror(errno));
    int e = 0;
    if (connect(s, (struct sockaddr *)&ss, len) < 0) {
        e = errno == EINPROGRESS ? wait_fd(s, POLLOUT, -1, timeout_ms) : -errno;
        if (e == 0) {
            int so = 0;
            socklen_t sl = sizeof(so);
            if (getsockopt(s, SOL_SOCKET, SO_ERROR, &so, &sl) < 0)
                e = -errno;
            else if (so)
                e = -so;
        }
    }
    if (e < 0) {
        close(s);
        return err_set(err, WISP_EXIT_FAILURE, -e, PFX "cannot connect to %s: %s",
                       uri_text(u, txt, sizeof(txt)), strerror(-e));
    }
    *fd = s;
    return 0;
}

int mig_listen(const struct mig_uri *u, int *fd, struct errbuf *err)
{
    struct sockaddr_storage ss;
    int family;
    char txt[MIG_URI_MAX + 16];
    socklen_t len = sockaddr_of(u, &ss, &family);
    int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return err_set(err, WISP_EXIT_HOST, errno, PFX "socket: %s", strerror(errno));
    int one = 1;
    if (family != AF_UNIX)
        (void)setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int r = bind(s, (struct sockaddr *)&ss, len);
    if (r < 0 && errno == EADDRINUSE && family == AF_UNIX) {
        /* A stale socket file: replace it only if nobody listens there. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct stat st;
        bool stale = probe >= 0 && connect(probe, (struct sockaddr *)&ss, len) < 0 &&
                     errno == ECONNREFUSED && lstat(u->path, &st) == 0 && S_ISSOCK(st.st_mode);
        if (probe >= 0)
            close(probe);
        if (stale && unlink(u->path) == 0)
            r = bind(s, (struct sockaddr *)&ss, len);
        else
            errno = EADDRINUSE;
    }
    if (r < 0 || listen(s, 1) < 0) {
        int e = errno;
        close(s);
        return err_set(err, e == EADDRINUSE || e == EACCES ? WISP_EXIT_USAGE : WISP_EXIT_HOST, e,
                       PFX "cannot listen on %s: %s", uri_text(u, txt, sizeof(txt)), strerror(e));
    }
    *fd = s;
    return 0;
}

int mig_accept(int lfd, int stop_fd, int timeout_ms, int *fd, struct errbuf *err)
{
    int e = wait_fd(lfd, POLLIN, stop_fd, timeout_ms);
    if (e == -EINTR)
        return err_set(err, WISP_EXIT_FAILURE, EINTR, PFX "stopped while waiting for the source");
    if (e < 0)
        return err_set(err, WISP_EXIT_FAILURE, -e, PFX "no source connected: %s", strerror(-e));
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0)
        return err_set(err, WISP_EXIT_FAILURE, errno, PFX "accept: %s", strerror(errno));
    *fd = c;
    return 0;
}

int mig_ack_send(int fd, bool ok, const char *msg, int timeout_ms)
{
    size_t mlen = msg ? strlen(msg) : 0;
    if (mlen > MIG_ACK_MSG_MAX)
        mlen = MIG_ACK_MSG_MAX;
    uint8_t buf[8 + 3 + MIG_ACK_MSG_MAX];
    memcpy(buf, MIG_ACK_MAGIC, 8);
    buf[8] = ok ? 0 : 1;
    buf[9] = (uint8_t)(mlen & 0xff);
    buf[10] = (uint8_t)(mlen >> 8);
    if (mlen)
        memcpy(buf + 11, msg, mlen);
    struct mig_fd_transport ft;
    struct mig_transport t;
    int e = mig_fd_transport_init(&ft, &t, fd, timeout_ms);
    return e < 0 ? e : t.write(t.ctx, buf, 11 + mlen);
}

int mig_ack_recv(int fd, int timeout_ms, struct errbuf *err)
{
    struct mig_fd_transport ft;
    struct mig_transport t;
    int e = mig_fd_transport_init(&ft, &t, fd, timeout_ms);
    if (e < 0)
        return err_set(err, WISP_EXIT_FAILURE, -e, PFX "answer: %s", strerror(-e));
    uint8_t hdr[11];
    ssize_t n = t.read(t.ctx, hdr, sizeof(hdr));
    if (n < 0)
        return err_set(err, WISP_EXIT_FAILURE, (int)-n, PFX "no answer from the destination: %s",
                       strerror((int)-n));
    if (n != (ssize_t)sizeof(hdr) || memcmp(hdr, MIG_ACK_MAGIC, 8) != 0 || hdr[8] > 1)
        return err_set(err, WISP_EXIT_FAILURE, EBADMSG,
                       PFX "the destination closed the connection without confirming");
    size_t mlen = (size_t)hdr[9] | (size_t)hdr[10] << 8;
    if (mlen > MIG_ACK_MSG_MAX)
        return err_set(err, WISP_EXIT_FAILURE, EBADMSG, PFX "malformed answer (length %zu)", mlen);
    char msg[MIG_ACK_MSG_MAX + 1] = "";
    if (mlen) {
        n = t.read(t.ctx, msg, mlen);
        if (n != (ssize_t)mlen)
            return err_set(err, WISP_EXIT_FAILURE, EBADMSG, PFX "answer cut short");
        msg[mlen] = '\0';
        /* Printable only: the message goes to our log. */
        for (size_t i = 0; i < mlen; i++)
            if ((unsigned char)msg[i] < 0x20 || (unsigned char)msg[i] > 0x7e)
                msg[i] = '?';
    }
    if (hdr[8] == 0)
        return 0;
    return err_set(err, WISP_EXIT_FAILURE, EPROTO, PFX "the destination refused: %s",
                   mlen ? msg : "(no reason given)");
}
