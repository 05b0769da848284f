/*
 * Migration addresses, connections and the destination's answer
 * (migration/socket.h), over real UNIX and TCP loopback sockets.
 */
#include "migration/socket.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

Test(mig_socket, uri_parse)
{
    struct mig_uri u;
    struct errbuf err = {0};
    cr_assert_eq(mig_uri_parse("tcp:127.0.0.1:7000", &u, &err), 0, "%s", err.msg);
    cr_assert_eq(u.kind, MIG_URI_TCP);
    cr_assert_str_eq(u.host, "127.0.0.1");
    cr_assert_str_eq(u.port, "7000");
    cr_assert_eq(mig_uri_parse("tcp:[::1]:65535", &u, &err), 0, "%s", err.msg);
    cr_assert_str_eq(u.host, "::1");
    cr_assert_eq(mig_uri_parse("unix:/run/x.sock", &u, &err), 0);
    cr_assert_str_eq(u.path, "/run/x.sock");
    static const char *const bad[] = {"",
                                      "tcp:",
                                      "tcp:1.2.3.4",
                                      "tcp:1.2.3.4:0",
                                      "tcp:1.2.3.4:65536",
                                      "tcp:1.2.3.4:-1",
                                      "tcp:1.2.3.4:+5",
                                      "tcp:1.2.3.4:80x",
                                      "tcp:localhost:80",
                                      "tcp:[::1:80",
                                      "tcp::80",
                                      "unix:",
                                      "udp:1.2.3.4:5",
                                      "1.2.3.4:5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct errbuf e = {0};
        cr_assert_eq(mig_uri_parse(bad[i], &u, &e), -EINVAL, "%s accepted", bad[i]);
        cr_assert_eq(e.exit_code, WISP_EXIT_USAGE);
        cr_assert(e.msg[0] && !strchr(e.msg, '\n'), "%s: %s", bad[i], e.msg);
    }
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath));
    memcpy(longpath, "unix:", 5);
    longpath[sizeof(longpath) - 1] = '\0';
    cr_assert_eq(mig_uri_parse(longpath, &u, &err), -EINVAL);
}

struct acceptor {
    int lfd;
    int fd;
    int ret;
};

static void *accept_one(void *arg)
{
    struct acceptor *a = arg;
    struct errbuf err = {0};
    a->ret = mig_accept(a->lfd, -1, 5000, &a->fd, &err);
    return NULL;
}

static void round_trip(const char *uri)
{
    struct mig_uri u;
    struct errbuf err = {0};
    cr_assert_eq(mig_uri_parse(uri, &u, &err), 0, "%s", err.msg);
    struct acceptor a = {.fd = -1};
    cr_assert_eq(mig_listen(&u, &a.lfd, &err), 0, "%s", err.msg);
    pthread_t t;
    pthread_create(&t, NULL, accept_one, &a);
    int c;
    cr_assert_eq(mig_connect(&u, 5000, &c, &err), 0, "%s", err.msg);
    pthread_join(t, NULL);
    cr_assert_eq(a.ret, 0);
    /* The answer: running, then a refusal with its reason. */
    cr_assert_eq(mig_ack_send(a.fd, true, "running", 1000), 0);
    cr_assert_eq(mig_ack_recv(c, 1000, &err), 0, "%s", err.msg);
    cr_assert_eq(mig_ack_send(a.fd, false, "memory 128 MiB here\n", 1000), 0);
    struct errbuf e2 = {0};
    cr_assert_eq(mig_ack_recv(c, 1000, &e2), -EPROTO);
    cr_assert(strstr(e2.msg, "refused: memory 128 MiB here?"), "%s", e2.msg);
    /* Garbage, then a closed peer: never "running". */
    cr_assert_eq(write(a.fd, "WMIGACK2\0\0\0", 11), 11);
    struct errbuf e3 = {0};
    cr_assert_eq(mig_ack_recv(c, 1000, &e3), -EBADMSG);
    close(a.fd);
    struct errbuf e4 = {0};
    cr_assert_lt(mig_ack_recv(c, 1000, &e4), 0);
    close(c);
    close(a.lfd);
}

Test(mig_socket, unix_connect_accept_and_answer)
{
    char path[64];
    snprintf(path, sizeof(path), "unix:/tmp/wisp-migsock-%d", getpid());
    round_trip(path);
    /* A stale socket file is replaced by the next listener. */
    round_trip(path);
    unlink(path + 5);
}

Test(mig_socket, tcp_connect_accept_and_answer)
{
    char uri[64];
    snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", 20000 + getpid() % 20000);
    round_trip(uri);
}

Test(mig_socket, silent_destination_times_out)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct errbuf err = {0};
    cr_assert_eq(mig_ack_recv(sv[0], 200, &err), -ETIMEDOUT);
    cr_assert(strstr(err.msg, "no answer"), "%s", err.msg);
    close(sv[0]);
    close(sv[1]);
}

Test(mig_socket, connect_refused_and_accept_stops)
{
    struct mig_uri u;
    struct errbuf err = {0};
    cr_assert_eq(mig_uri_parse("unix:/tmp/wisp-nobody-listens", &u, &err), 0);
    int fd;
    cr_assert_lt(mig_connect(&u, 1000, &fd, &err), 0);
    cr_assert(strstr(err.msg, "cannot connect to unix:/tmp/wisp-nobody-listens"), "%s", err.msg);
    /* accept gives up when its stop fd becomes readable. */
    char path[64];
    snprintf(path, sizeof(path), "unix:/tmp/wisp-migstop-%d", getpid());
    cr_assert_eq(mig_uri_parse(path, &u, &err), 0);
    int lfd;
    cr_assert_eq(mig_listen(&u, &lfd, &err), 0);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(write(p[1], "x", 1), 1);
    struct errbuf e2 = {0};
    cr_assert_eq(mig_accept(lfd, p[0], -1, &fd, &e2), -EINTR);
    close(lfd);
    unlink(path + 5);
}
