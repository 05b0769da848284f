/*
 * The disk's io_uring is restricted (io_uring requests bypass seccomp): only
 * the image, as fixed file 0, and only the operations the backend uses.
 */
#include "devices/backends/blk_raw.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static struct io_uring ring;
static int img = -1;

static void setup(void)
{
    char path[] = "/tmp/wisp-ring-XXXXXX";
    img = mkstemp(path);
    cr_assert_geq(img, 0);
    unlink(path);
    cr_assert_eq(ftruncate(img, 1 << 20), 0);
    cr_assert_eq(io_uring_queue_init(8, &ring, IORING_SETUP_R_DISABLED), 0);
    cr_assert_eq(blk_raw_restrict_ring(&ring, img), 0);
}

static void teardown(void)
{
    io_uring_queue_exit(&ring);
    close(img);
}

TestSuite(blk_ring, .init = setup, .fini = teardown);

/* Submit one SQE and return its completion result. */
static int run(struct io_uring_sqe *sqe)
{
    (void)sqe;
    cr_assert_eq(io_uring_submit(&ring), 1);
    struct io_uring_cqe *cqe;
    cr_assert_eq(io_uring_wait_cqe(&ring, &cqe), 0);
    int res = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
    return res;
}

Test(blk_ring, image_as_fixed_file_works)
{
    char buf[512];
    struct iovec iov = {buf, sizeof(buf)};
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_readv(sqe, 0, &iov, 1, 0);
    io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
    cr_assert_eq(run(sqe), 512);
}

Test(blk_ring, other_files_are_refused)
{
    /* A plain (non-fixed) fd, even the image's own number, is refused. */
    char buf[16];
    struct iovec iov = {buf, sizeof(buf)};
    int other = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_readv(sqe, other >= 0 ? other : img, &iov, 1, 0);
    cr_assert_eq(run(sqe), -EACCES);
    if (other >= 0)
        close(other);
}

Test(blk_ring, other_operations_are_refused)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_openat(sqe, AT_FDCWD, "/etc/passwd", O_RDONLY, 0);
    cr_assert_eq(run(sqe), -EACCES);
    sqe = io_uring_get_sqe(&ring);
    io_uring_prep_socket(sqe, AF_INET, SOCK_STREAM, 0, 0);
    cr_assert_eq(run(sqe), -EACCES);
}

Test(blk_ring, no_more_registrations)
{
    int fds[1] = {img};
    cr_assert_lt(io_uring_register_files_update(&ring, 0, fds, 1), 0);
    cr_assert_lt(io_uring_register_eventfd(&ring, img), 0);
}

Test(blk_ring, drain_can_cancel)
{
    /* The cancel raw_drain() sends after its deadline, built the same way:
     * the ring must let it through (nothing to cancel here: -ENOENT). */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_ANY);
    sqe->fd = 0;
    io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
    int res = run(sqe);
    cr_assert(res == -ENOENT || res >= 0, "cancel refused: %d", res);
}
