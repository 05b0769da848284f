/*
 * The lazy-restore page server (migration/uffd.c) against the real
 * userfaultfd: pages come from the memory file on first touch and only
 * then, from user mode and from kernel mode (as KVM touches guest RAM),
 * with racing faults, a file that shrank, a prompt stop, and bad geometry
 * refused with one line.
 */
#include "migration/uffd.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PG         4096ULL
#define FILE_PAGES 24U /* the memory file */
#define RESV_PAGES 64U /* the address range the test regions live in */
#define REG_PAGES  8U

/* Word `w` of file page `p`: the page index and the word index. */
static uint64_t pattern(uint64_t p, uint64_t w)
{
    return (p << 32) | w;
}

static int make_mem_file(unsigned pages)
{
    char path[] = "/tmp/wisp-uffd-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    uint64_t buf[PG / 8];
    for (unsigned p = 0; p < pages; p++) {
        for (unsigned w = 0; w < PG / 8; w++)
            buf[w] = pattern(p, w);
        cr_assert_eq(pwrite(fd, buf, PG, (off_t)(p * PG)), (ssize_t)PG);
    }
    return fd;
}

/* Does the page at `p` hold file page `fp`? */
static bool page_is(const void *p, uint64_t fp)
{
    const volatile uint64_t *w = p;
    for (unsigned i = 0; i < PG / 8; i++)
        if (w[i] != pattern(fp, i))
            return false;
    return true;
}

static bool page_is_zero(const void *p, unsigned from_byte)
{
    const volatile uint8_t *b = p;
    for (unsigned i = from_byte; i < PG; i++)
        if (b[i])
            return false;
    return true;
}

static bool resident(const void *p)
{
    unsigned char v = 0;
    cr_assert_eq(mincore((void *)(uintptr_t)p, PG, &v), 0);
    return v & 1;
}

/*
 * Two regions at non-contiguous addresses inside one reservation:
 * A = resv pages 4..11, file pages 16..23;  B = resv pages 32..39, file pages 0..7.
 */
struct fix {
    uint8_t *resv;
    int fd;
    struct mig_uffd_region r[2];
    struct mig_uffd *u;
    pthread_t thr;
    int serve_rc;
    bool running;
};

static uint8_t *map_at(uint8_t *addr, unsigned pages)
{
    void *p = mmap(addr, pages * PG, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    cr_assert_eq(p, (void *)addr);
    return p;
}

static void fix_map(struct fix *f)
{
    memset(f, 0, sizeof(*f));
    f->resv = mmap(NULL, RESV_PAGES * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(f->resv, MAP_FAILED);
    f->fd = make_mem_file(FILE_PAGES);
    f->r[0] =
        (struct mig_uffd_region){map_at(f->resv + 4 * PG, REG_PAGES), REG_PAGES * PG, 16 * PG};
    f->r[1] = (struct mig_uffd_region){map_at(f->resv + 32 * PG, REG_PAGES), REG_PAGES * PG, 0};
}

static void fix_create(struct fix *f)
{
    struct errbuf err = {0};
    fix_map(f);
    int rc = mig_uffd_create(&f->u, f->fd, f->r, 2, &err);
    cr_assert_eq(rc, 0, "create: %d %s", rc, err.msg);
}

static void *serve_main(void *arg)
{
    struct fix *f = arg;
    f->serve_rc = mig_uffd_serve(f->u);
    return NULL;
}

static void fix_start(struct fix *f)
{
    cr_assert_eq(pthread_create(&f->thr, NULL, serve_main, f), 0);
    f->running = true;
}

/* Stop the server and join it within `ms`; returns its result. */
static int fix_stop(struct fix *f, int ms)
{
    mig_uffd_stop(f->u);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    cr_assert_eq(pthread_timedjoin_np(f->thr, NULL, &dl), 0, "serve() did not return in %d ms", ms);
    f->running = false;
    return f->serve_rc;
}

static void fix_done(struct fix *f)
{
    if (f->running)
        cr_assert_eq(fix_stop(f, 2000), 0);
    mig_uffd_destroy(f->u);
    munmap(f->resv, RESV_PAGES * PG);
    close(f->fd);
}

/*
 * The counters once the server has answered every fault it received and at
 * least `faults` of them (up to 2 s).  A copy wakes the faulting thread
 * before the server counts it, so a toucher may return a moment before the
 * counters move.
 */
static struct mig_uffd_stats stats(const struct fix *f, uint64_t faults)
{
    struct mig_uffd_stats st;
    for (int i = 0; i < 2000; i++) {
        mig_uffd_get_stats(f->u, &st);
        if (st.faults >= faults &&
            st.pages_copied + st.pages_zero + st.eexist + st.bad_addr == st.faults)
            break;
        usleep(1000);
    }
    return st;
}

Test(uffd, available, .timeout = 10)
{
    struct errbuf err = {0};
    cr_assert_eq(mig_uffd_available(&err), 0, "%s", err.msg);
    cr_assert(!err_isset(&err));
}

/* Only touched pages are fetched, each once, from the right file offset. */
Test(uffd, lazy_two_regions, .timeout = 10)
{
    struct fix f;
    fix_create(&f);
    fix_start(&f);
    uint8_t *a = f.r[0].hva, *b = f.r[1].hva;
    static const unsigned ta[] = {0, 3, 7}, tb[] = {1, 2, 5};
    for (unsigned i = 0; i < 3; i++) {
        cr_assert(page_is(a + ta[i] * PG, 16 + ta[i]), "A page %u", ta[i]);
        cr_assert(page_is(b + tb[i] * PG, tb[i]), "B page %u", tb[i]);
    }
    /* Touch again, and write: no new fault, the private copy keeps the write. */
    a[3 * PG] = 0x5a;
    cr_assert_eq(a[3 * PG], 0x5a);
    cr_assert(page_is(b + 1 * PG, 1));

    struct mig_uffd_stats st = stats(&f, 6);
    cr_assert_eq(st.pages_copied, 6);
    cr_assert_eq(st.faults, 6);
    cr_assert_eq(st.pages_zero, 0);
    cr_assert_eq(st.eexist, 0);
    cr_assert_eq(st.bad_addr, 0);
    for (unsigned p = 0; p < REG_PAGES; p++) {
        bool ta_p = p == 0 || p == 3 || p == 7, tb_p = p == 1 || p == 2 || p == 5;
        cr_assert_eq(resident(a + p * PG), ta_p, "A page %u residency", p);
        cr_assert_eq(resident(b + p * PG), tb_p, "B page %u residency", p);
    }
    /* The file is only read. */
    uint64_t w;
    cr_assert_eq(pread(f.fd, &w, 8, 19 * PG), 8);
    cr_assert_eq(w, pattern(19, 0));
    fix_done(&f);
}

/*
 * Faults taken by the kernel on the process's behalf (copy_from_user in
 * write(2), copy_to_user in read(2)), as KVM takes them on guest RAM.
 */
Test(uffd, kernel_mode_faults, .timeout = 10)
{
    struct fix f;
    fix_create(&f);
    fix_start(&f);
    uint8_t *a = f.r[0].hva, *b = f.r[1].hva;
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    cr_assert_eq(fcntl(pfd[1], F_SETPIPE_SZ, (int)(2 * PG)) >= (int)PG, true);

    /* The kernel reads a missing page. */
    cr_assert_eq(write(pfd[1], a + 2 * PG, PG), (ssize_t)PG, "write: %s", strerror(errno));
    static uint8_t got[PG];
    cr_assert_eq(read(pfd[0], got, PG), (ssize_t)PG);
    cr_assert(page_is(got, 18));

    /* The kernel writes into a missing page (it is fetched, then overwritten). */
    cr_assert_eq(pread(f.fd, b + 6 * PG, PG, 20 * PG), (ssize_t)PG, "pread: %s", strerror(errno));
    cr_assert(page_is(b + 6 * PG, 20));

    struct mig_uffd_stats st = stats(&f, 2);
    cr_assert_eq(st.pages_copied, 2);
    cr_assert_eq(st.faults, 2);
    close(pfd[0]);
    close(pfd[1]);
    fix_done(&f);
}

struct toucher {
    const volatile uint64_t *p;
    uint64_t val;
    pthread_barrier_t *bar;
};

static void *touch_main(void *arg)
{
    struct toucher *t = arg;
    if (t->bar)
        pthread_barrier_wait(t->bar);
    t->val = *t->p;
    return NULL;
}

/*
 * Two threads fault on one page before the server runs: two fault messages,
 * one copy, and the second answer finds the page populated (EEXIST), which
 * is fine.  Both threads see the file's bytes.
 */
Test(uffd, same_page_two_threads, .timeout = 10)
{
    struct fix f;
    fix_create(&f);
    uint8_t *b = f.r[1].hva;
    struct toucher t[2] = {{(const volatile uint64_t *)(b + 4 * PG + 8), 0, NULL},
                           {(const volatile uint64_t *)(b + 4 * PG + 16), 0, NULL}};
    pthread_t th[2];
    for (unsigned i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, touch_main, &t[i]), 0);
    usleep(200 * 1000); /* both block in the fault, their messages queued */
    fix_start(&f);
    for (unsigned i = 0; i < 2; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    cr_assert_eq(t[0].val, pattern(4, 1));
    cr_assert_eq(t[1].val, pattern(4, 2));
    cr_assert(page_is(b + 4 * PG, 4));
    struct mig_uffd_stats st = stats(&f, 2);
    cr_assert_eq(st.faults, 2, "faults %lu copied %lu eexist %lu", (unsigned long)st.faults,
                 (unsigned long)st.pages_copied, (unsigned long)st.eexist);
    cr_assert_eq(st.pages_copied, 1);
    cr_assert_eq(st.eexist, 1);
    cr_assert_eq(fix_stop(&f, 2000), 0);
    fix_done(&f);
}

/* Many threads race on every page of both regions while the server runs. */
Test(uffd, racing_threads_all_pages, .timeout = 20)
{
    enum { NT = 4 };
    struct fix f;
    fix_create(&f);
    fix_start(&f);
    for (unsigned reg = 0; reg < 2; reg++) {
        for (unsigned p = 0; p < REG_PAGES; p++) {
            pthread_barrier_t bar;
            pthread_barrier_init(&bar, NULL, NT);
            struct toucher t[NT];
            pthread_t th[NT];
            uint8_t *page = (uint8_t *)f.r[reg].hva + p * PG;
            uint64_t fp = f.r[reg].file_offset / PG + p;
            for (unsigned i = 0; i < NT; i++) {
                t[i] = (struct toucher){(const volatile uint64_t *)(page + i * 64), 0, &bar};
                cr_assert_eq(pthread_create(&th[i], NULL, touch_main, &t[i]), 0);
            }
            for (unsigned i = 0; i < NT; i++) {
                cr_assert_eq(pthread_join(th[i], NULL), 0);
                cr_assert_eq(t[i].val, pattern(fp, i * 8));
            }
            pthread_barrier_destroy(&bar);
            cr_assert(page_is(page, fp));
        }
    }
    struct mig_uffd_stats st = stats(&f, 2 * REG_PAGES);
    cr_assert_eq(st.pages_copied, 2 * REG_PAGES);
    cr_assert_eq(st.faults, st.pages_copied + st.eexist);
    cr_assert_eq(st.bad_addr, 0);
    cr_assert_eq(fix_stop(&f, 2000), 0);
    fix_done(&f);
}

/* A region that reaches past the end of the file is refused up front. */
Test(uffd, region_beyond_file_refused, .timeout = 10)
{
    struct fix f;
    fix_map(&f);
    struct errbuf err = {0};
    f.r[0].file_offset = 20 * PG; /* 20 + 8 > 24 pages */
    struct mig_uffd *u = (struct mig_uffd *)1;
    cr_assert_eq(mig_uffd_create(&u, f.fd, f.r, 2, &err), -EINVAL);
    cr_assert_null(u);
    cr_assert(strstr(err.msg, "beyond the memory file"), "%s", err.msg);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    /* Exactly at the end is fine. */
    f.r[0].file_offset = 16 * PG;
    struct errbuf err2 = {0};
    cr_assert_eq(mig_uffd_create(&f.u, f.fd, f.r, 2, &err2), 0, "%s", err2.msg);
    fix_done(&f);
}

/*
 * The file shrinks after create (it passed the size check): a page cut in
 * the middle is copied zero-padded, a page wholly past the end is a zero page.
 */
Test(uffd, file_shrunk_zero_fill, .timeout = 10)
{
    struct fix f;
    fix_create(&f);
    cr_assert_eq(ftruncate(f.fd, (off_t)(16 * PG + PG / 2)), 0);
    fix_start(&f);
    /* A whole page first, so the server's buffer holds file bytes. */
    cr_assert(page_is((uint8_t *)f.r[1].hva, 0));
    uint8_t *a = f.r[0].hva;
    const volatile uint64_t *w = (const volatile uint64_t *)a;
    for (unsigned i = 0; i < PG / 16; i++)
        cr_assert_eq(w[i], pattern(16, i));
    cr_assert(page_is_zero(a, PG / 2));
    cr_assert(page_is_zero(a + 3 * PG, 0));
    struct mig_uffd_stats st = stats(&f, 3);
    cr_assert_eq(st.pages_copied, 2);
    cr_assert_eq(st.pages_zero, 1);
    cr_assert_eq(st.faults, 3);
    fix_done(&f);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* stop() ends an idle serve() at once, and a later serve() returns at once too. */
Test(uffd, stop_is_prompt, .timeout = 10)
{
    struct fix f;
    fix_create(&f);
    fix_start(&f);
    usleep(50 * 1000); /* the server sleeps in poll() */
    int64_t t0 = mono_ms();
    cr_assert_eq(fix_stop(&f, 1000), 0);
    cr_assert_lt(mono_ms() - t0, 500);
    cr_assert_eq(mig_uffd_serve(f.u), 0);
    fix_done(&f);
}

/* After destroy the regions are ordinary memory again: a touch does not hang. */
Test(uffd, destroy_unregisters, .timeout = 10)
{
    struct fix f;
    fix_create(&f);
    mig_uffd_destroy(f.u);
    f.u = NULL;
    cr_assert(page_is_zero((uint8_t *)f.r[1].hva + 3 * PG, 0));
    fix_done(&f);
}

static void expect_refused(struct fix *f, const struct mig_uffd_region *r, unsigned n, int want,
                           const char *needle)
{
    struct errbuf err = {0};
    struct mig_uffd *u = (struct mig_uffd *)1;
    int rc = mig_uffd_create(&u, f->fd, r, n, &err);
    cr_assert_eq(rc, want, "%s: got %d (%s)", needle, rc, err.msg);
    cr_assert_null(u);
    cr_assert(strstr(err.msg, needle), "want \"%s\" in \"%s\"", needle, err.msg);
}

Test(uffd, bad_args, .timeout = 10)
{
    struct fix f;
    fix_map(&f);
    struct mig_uffd_region r[2];

    expect_refused(&f, f.r, 0, -EINVAL, "0 RAM regions");
    expect_refused(&f, NULL, 2, -EINVAL, "RAM regions");
    expect_refused(&f, f.r, MIG_UFFD_MAX_REGIONS + 1, -EINVAL, "RAM regions");

    memcpy(r, f.r, sizeof(r));
    r[1].hva = (uint8_t *)r[1].hva + 512;
    expect_refused(&f, r, 2, -EINVAL, "region 1 (");
    memcpy(r, f.r, sizeof(r));
    r[0].size = PG + 1;
    expect_refused(&f, r, 2, -EINVAL, "not page aligned");
    memcpy(r, f.r, sizeof(r));
    r[0].file_offset = 100;
    expect_refused(&f, r, 2, -EINVAL, "not page aligned");
    memcpy(r, f.r, sizeof(r));
    r[1].size = 0;
    expect_refused(&f, r, 2, -EINVAL, "empty");
    memcpy(r, f.r, sizeof(r));
    r[1].hva = (uint8_t *)r[0].hva + 4 * PG; /* inside region 0 */
    expect_refused(&f, r, 2, -EINVAL, "overlap in host memory");
    memcpy(r, f.r, sizeof(r));
    r[1].file_offset = 20 * PG; /* file pages 20..27 overlap 16..23 (and pass the end) */
    r[1].size = 4 * PG;         /* 20..23: inside the file, overlapping region 0 */
    expect_refused(&f, r, 2, -EINVAL, "overlap in the memory file");

    /* The memory file must be a regular file. */
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    int keep = f.fd;
    f.fd = pfd[0];
    expect_refused(&f, f.r, 2, -EINVAL, "not a regular file");
    f.fd = -1;
    expect_refused(&f, f.r, 2, -EBADF, "memory file");
    f.fd = keep;
    close(pfd[0]);
    close(pfd[1]);

    /* Nothing was left registered: the regions behave as plain memory. */
    cr_assert(page_is_zero((uint8_t *)f.r[0].hva, 0));
    fix_done(&f);
}
