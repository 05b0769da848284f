/*
 * The fd transport of the migration stream (migration/stream_io.c) over
 * socketpairs and pipes: short reads and writes, EINTR, a peer that stops
 * reading or writing (-ETIMEDOUT within the bound), EOF in the middle of a
 * section, and a closed peer (-EPIPE, not SIGPIPE).
 */
#include "migration/stream.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/migration/test_stream.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pair(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

Test(mig_stream_fd, init_checks)
{
    struct mig_fd_transport f;
    struct mig_transport t;
    int sv[2];
    pair(sv);
    cr_assert_eq(mig_fd_transport_init(&f, &t, sv[0], 0), -EINVAL);
    cr_assert_eq(mig_fd_transport_init(&f, &t, -1, 100), -EINVAL);
    cr_assert_eq(mig_fd_transport_init(&f, &t, sv[0], 100), 0);
    cr_assert(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    close(sv[0]);
    close(sv[1]);
}

/* ---- A writer thread streaming a large section through a socket ---- */

#define BIG_LEN (3U * 1024 * 1024) /* many times the socket buffer: short writes */

struct big_writer {
    int fd;
    int result;
    uint8_t *payload;
};

static void *big_writer_main(void *arg)
{
    struct big_writer *bw = arg;
    struct mig_fd_transport f;
    struct mig_transport t;
    struct mig_stream_writer w;
    int e = mig_fd_transport_init(&f, &t, bw->fd, 5000);
    mig_stream_writer_init(&w, &t);
    if (e == 0)
        e = mig_stream_write_header(&w, MIG_ARCH_X86_64, 0);
    if (e == 0)
        e = mig_stream_write_section(&w, MIG_SEC_RAM, 0, 1, MIG_SEC_F_MANDATORY, bw->payload,
                                     BIG_LEN);
    if (e == 0)
        e = mig_stream_write_end(&w);
    shutdown(bw->fd, SHUT_WR);
    bw->result = e;
    return NULL;
}

Test(mig_stream_fd, large_section_short_writes_and_reads, .timeout = 30)
{
    int sv[2];
    pthread_t th;
    struct big_writer bw = {.payload = malloc(BIG_LEN)};
    cr_assert_not_null(bw.payload);
    for (size_t i = 0; i < BIG_LEN; i++)
        bw.payload[i] = (uint8_t)(i ^ (i >> 9));
    pair(sv);
    /* A small receive buffer makes every read short as well. */
    int sz = 4096;
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    bw.fd = sv[0];
    cr_assert_eq(pthread_create(&th, NULL, big_writer_main, &bw), 0);

    struct mig_fd_transport f;
    struct mig_transport t;
    struct mig_stream_reader r;
    struct mig_section s;
    struct errbuf err = {0};
    cr_assert_eq(mig_fd_transport_init(&f, &t, sv[1], 5000), 0);
    mig_stream_reader_init(&r, &t, ts_known, ts_nknown, MIG_ARCH_X86_64, &err);
    cr_assert_eq(mig_stream_read_header(&r, NULL), 0, "%s", err.msg);
    cr_assert_eq(mig_stream_read_section(&r, &s), 0, "%s", err.msg);
    cr_assert_eq(s.len, BIG_LEN);
    cr_assert_eq(memcmp(s.payload, bw.payload, BIG_LEN), 0);
    cr_assert_eq(mig_stream_read_section(&r, &s), 0, "%s", err.msg);
    cr_assert_eq(s.id, MIG_SEC_END);
    cr_assert_eq(mig_stream_read_finish(&r), 0, "%s", err.msg);
    pthread_join(th, NULL);
    cr_assert_eq(bw.result, 0);
    mig_stream_reader_free(&r);
    free(bw.payload);
    close(sv[0]);
    close(sv[1]);
}

/* ---- A peer that sends bytes slowly, one write per byte ---- */

struct trickle {
    int fd;
    const uint8_t *buf;
    size_t len;     /* bytes to send */
    bool close_end; /* close after sending (EOF), else keep the fd open */
    int hold_ms;    /* with !close_end: how long to hold the fd open before closing */
    pthread_t victim;
    bool interrupt; /* signal the victim thread between bytes */
};

static void *trickle_main(void *arg)
{
    struct trickle *tk = arg;
    for (size_t i = 0; i < tk->len; i++) {
        if (write(tk->fd, tk->buf + i, 1) != 1)
            break;
        if (tk->interrupt)
            pthread_kill(tk->victim, SIGUSR1);
        usleep(200);
    }
    if (!tk->close_end)
        usleep((useconds_t)tk->hold_ms * 1000);
    close(tk->fd);
    return NULL;
}

static void on_usr1(int sig)
{
    (void)sig;
}

/* Read a whole stream from fd with the given timeout: 0 or the first error. */
static int read_fd_stream(int fd, int timeout_ms, struct errbuf *err)
{
    struct mig_fd_transport f;
    struct mig_transport t;
    struct mig_stream_reader r;
    struct mig_section s;
    cr_assert_eq(mig_fd_transport_init(&f, &t, fd, timeout_ms), 0);
    mig_stream_reader_init(&r, &t, ts_known, ts_nknown, MIG_ARCH_X86_64, err);
    int e = mig_stream_read_header(&r, NULL);
    while (e == 0) {
        e = mig_stream_read_section(&r, &s);
        if (e == 0 && s.id == MIG_SEC_END)
            break;
    }
    if (e == 0)
        e = mig_stream_read_finish(&r);
    mig_stream_reader_free(&r);
    return e;
}

static void forge_small(struct ts_forge *f)
{
    ts_forge_init(f);
    ts_good_header(f);
    ts_section(f, TS_SEC_DEV, 0, 1, MIG_SEC_F_MANDATORY, "one byte at a time", 18);
    ts_end(f, 1);
}

Test(mig_stream_fd, byte_by_byte_with_eintr, .timeout = 30)
{
    struct ts_forge fg;
    int sv[2];
    pthread_t th;
    struct sigaction sa = {.sa_handler = on_usr1}; /* no SA_RESTART: poll() sees EINTR */
    sigaction(SIGUSR1, &sa, NULL);
    forge_small(&fg);
    pair(sv);
    struct trickle tk = {.fd = sv[0],
                         .buf = fg.o.buf,
                         .len = fg.o.len,
                         .close_end = true,
                         .victim = pthread_self(),
                         .interrupt = true};
    cr_assert_eq(pthread_create(&th, NULL, trickle_main, &tk), 0);
    struct errbuf err = {0};
    cr_assert_eq(read_fd_stream(sv[1], 5000, &err), 0, "%s", err.msg);
    pthread_join(th, NULL);
    close(sv[1]);
    ts_forge_free(&fg);
}

Test(mig_stream_fd, eof_mid_section, .timeout = 30)
{
    struct ts_forge fg;
    int sv[2];
    pthread_t th;
    forge_small(&fg);
    pair(sv);
    struct trickle tk = {.fd = sv[0],
                         .buf = fg.o.buf,
                         .len = MIG_STREAM_HDR_LEN + MIG_SECTION_HDR_LEN + 5,
                         .close_end = true};
    cr_assert_eq(pthread_create(&th, NULL, trickle_main, &tk), 0);
    struct errbuf err = {0};
    cr_assert_eq(read_fd_stream(sv[1], 5000, &err), -EBADMSG);
    cr_assert_str_eq(err.msg, "migration stream: section \"test-dev\" instance 0: the stream "
                              "ends inside the payload");
    pthread_join(th, NULL);
    close(sv[1]);
    ts_forge_free(&fg);
}

Test(mig_stream_fd, stalled_sender_times_out, .timeout = 30)
{
    struct ts_forge fg;
    int sv[2];
    pthread_t th;
    forge_small(&fg);
    pair(sv);
    /* Half a section, then silence with the connection open for 3 s. */
    struct trickle tk = {.fd = sv[0],
                         .buf = fg.o.buf,
                         .len = MIG_STREAM_HDR_LEN + MIG_SECTION_HDR_LEN + 5,
                         .hold_ms = 3000};
    cr_assert_eq(pthread_create(&th, NULL, trickle_main, &tk), 0);
    struct errbuf err = {0};
    int64_t t0 = mono_ms();
    cr_assert_eq(read_fd_stream(sv[1], 300, &err), -ETIMEDOUT);
    int64_t dt = mono_ms() - t0;
    cr_assert(dt >= 300 && dt < 1500, "took %lld ms", (long long)dt);
    cr_assert(ts_err_has(&err, "section \"test-dev\" instance 0: payload: "), "%s", err.msg);
    pthread_join(th, NULL);
    close(sv[1]);
    ts_forge_free(&fg);
}

Test(mig_stream_fd, receiver_stops_reading, .timeout = 30)
{
    int sv[2];
    pair(sv);
    size_t len = 8U * 1024 * 1024; /* far more than the socket buffers hold */
    uint8_t *p = calloc(1, len);
    cr_assert_not_null(p);
    struct mig_fd_transport f;
    struct mig_transport t;
    struct mig_stream_writer w;
    cr_assert_eq(mig_fd_transport_init(&f, &t, sv[0], 300), 0);
    mig_stream_writer_init(&w, &t);
    cr_assert_eq(mig_stream_write_header(&w, MIG_ARCH_X86_64, 0), 0);
    int64_t t0 = mono_ms();
    cr_assert_eq(mig_stream_write_section(&w, MIG_SEC_RAM, 0, 1, MIG_SEC_F_MANDATORY, p, len),
                 -ETIMEDOUT);
    int64_t dt = mono_ms() - t0;
    cr_assert(dt >= 300 && dt < 1500, "took %lld ms", (long long)dt);
    free(p);
    close(sv[0]);
    close(sv[1]);
}

Test(mig_stream_fd, closed_receiver_is_epipe_not_sigpipe, .timeout = 30)
{
    int sv[2], pp[2];
    struct mig_fd_transport f;
    struct mig_transport t;
    pair(sv);
    close(sv[1]);
    cr_assert_eq(mig_fd_transport_init(&f, &t, sv[0], 300), 0);
    cr_assert_eq(t.write(t.ctx, "x", 1), -EPIPE);
    close(sv[0]);
    /* A pipe is not a socket: write() is used, and SIGPIPE is ignored by the caller there. */
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(pipe(pp), 0);
    close(pp[0]);
    cr_assert_eq(mig_fd_transport_init(&f, &t, pp[1], 300), 0);
    cr_assert_eq(t.write(t.ctx, "x", 1), -EPIPE);
    close(pp[1]);
}

Test(mig_stream_fd, pipe_round_trip_and_trailing_byte, .timeout = 30)
{
    struct ts_forge fg;
    int pp[2];
    forge_small(&fg);
    vstate_put_u8(&fg.o, 0x5a);
    cr_assert_eq(pipe(pp), 0);
    struct mig_fd_transport f;
    struct mig_transport t;
    cr_assert_eq(mig_fd_transport_init(&f, &t, pp[1], 1000), 0);
    cr_assert_eq(t.write(t.ctx, fg.o.buf, fg.o.len), 0);
    close(pp[1]);
    struct errbuf err = {0};
    cr_assert_eq(read_fd_stream(pp[0], 1000, &err), -EBADMSG);
    cr_assert_str_eq(err.msg, "migration stream: trailing bytes after the end marker");
    close(pp[0]);
    ts_forge_free(&fg);
}
