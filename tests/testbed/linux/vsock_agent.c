/*
 * vsock-agent: the stock-Linux test guest's side of the vsock tests
 * (vsock_case.py), built static with the host's gcc because busybox has no
 * AF_VSOCK.
 *   vsock-agent serve PORT           accept on PORT, echo every connection
 *                                    (one child each) until its peer ends
 *   vsock-agent send CID PORT MSG    connect, write MSG, half-close, print
 *                                    the reply until end of stream
 *   vsock-agent flood CID PORT KIB   connect and write KIB KiB (blocks when
 *                                    the peer stops reading)
 * Test-only: errors print one line and exit 1.
 */
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char *what)
{
    perror(what);
    return 1;
}

static int vconnect(const char *cid, const char *port)
{
    struct sockaddr_vm a = {.svm_family = AF_VSOCK,
                            .svm_cid = (unsigned)strtoul(cid, NULL, 10),
                            .svm_port = (unsigned)strtoul(port, NULL, 10)};
    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        return -1;
    return fd;
}

static void echo(int fd)
{
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w <= 0)
                _exit(1);
            off += w;
        }
    _exit(0);
}

int main(int argc, char **argv)
{
    signal(SIGCHLD, SIG_IGN);
    if (argc == 3 && !strcmp(argv[1], "serve")) {
        struct sockaddr_vm a = {.svm_family = AF_VSOCK,
                                .svm_cid = VMADDR_CID_ANY,
                                .svm_port = (unsigned)strtoul(argv[2], NULL, 10)};
        int l = socket(AF_VSOCK, SOCK_STREAM, 0);
        if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 16) < 0)
            return fail("vsock-agent: listen");
        printf("vsock-agent: listening on %s\n", argv[2]);
        fflush(stdout);
        for (;;) {
            int c = accept(l, NULL, NULL);
            if (c < 0)
                continue;
            if (fork() == 0)
                echo(c);
            close(c);
        }
    }
    if (argc == 5 && !strcmp(argv[1], "send")) {
        int fd = vconnect(argv[2], argv[3]);
        if (fd < 0)
            return fail("vsock-agent: connect");
        size_t len = strlen(argv[4]);
        if (write(fd, argv[4], len) != (ssize_t)len)
            return fail("vsock-agent: write");
        shutdown(fd, SHUT_WR);
        char buf[4096];
        ssize_t n;
        printf("vsock-agent: reply '");
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            fwrite(buf, 1, (size_t)n, stdout);
        printf("'\n");
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "flood")) {
        int fd = vconnect(argv[2], argv[3]);
        if (fd < 0)
            return fail("vsock-agent: connect");
        static char buf[1024];
        memset(buf, 'f', sizeof(buf));
        unsigned long kib = strtoul(argv[4], NULL, 10);
        for (unsigned long i = 0; i < kib; i++)
            if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
                return fail("vsock-agent: write");
        printf("vsock-agent: flood done\n");
        return 0;
    }
    fprintf(stderr, "usage: vsock-agent serve PORT | send CID PORT MSG | flood CID PORT KIB\n");
    return 1;
}
