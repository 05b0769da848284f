/*
 * Snapshot files (migration/snapshot.h): the sparse memory file holds every
 * page at its offset, zero pages and never-touched pages as holes, and the
 * state file round-trips through the registry; a RAM section in a state
 * file is refused.
 */
#include "migration/snapshot.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PG 4096u

static int tmpfile_fd(void)
{
    char path[] = "/tmp/wisp-snap-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    return fd;
}

/* Pages of a 64-page "guest" in a memfd: some written, one written with zeros. */
static uint8_t *make_ram(int *mfd, size_t pages)
{
    *mfd = memfd_create("t", MFD_CLOEXEC);
    cr_assert_geq(*mfd, 0);
    cr_assert_eq(ftruncate(*mfd, (off_t)(pages * PG)), 0);
    uint8_t *p = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_SHARED, *mfd, 0);
    cr_assert_neq(p, MAP_FAILED);
    return p;
}

static void check_file(int fd, const uint8_t *want, size_t len)
{
    uint8_t *got = malloc(len);
    cr_assert_eq(pread(fd, got, len, 0), (ssize_t)len);
    cr_assert_eq(memcmp(got, want, len), 0, "memory file differs from guest RAM");
    free(got);
}

Test(snapshot, memory_file_is_sparse_and_exact)
{
    int mfd;
    size_t pages = 64;
    uint8_t *ram = make_ram(&mfd, pages);
    ram[0] = 1;                         /* first page */
    memset(ram + 5 * PG, 0xab, 3 * PG); /* a run of three */
    ram[20 * PG + 4095] = 7;            /* last byte of a page */
    memset(ram + 30 * PG, 0, PG);       /* touched but zero: no data */
    ram[63 * PG] = 9;                   /* last page */
    /* Two ranges over one memfd, as gmem lays out regions. */
    struct mig_ram_host r[2] = {{0, 32 * PG, ram, mfd, 0},
                                {0x100000000ull, 32 * PG, ram + 32 * PG, mfd, 32 * PG}};
    int fd = tmpfile_fd();
    /* An older, larger file must not leave data behind. */
    cr_assert_eq(ftruncate(fd, 200 * PG), 0);
    cr_assert_eq(pwrite(fd, "x", 1, 100 * PG), 1);
    cr_assert_eq(pwrite(fd, "old", 3, 10 * PG), 3); /* a page that is zero now */
    struct mig_snapshot_stats st = {0};
    struct errbuf err = {0};
    cr_assert_eq(mig_snapshot_write_mem(fd, r, 2, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.mem_bytes, 64 * PG);
    cr_assert_eq(st.data_pages, 6, "%llu", (unsigned long long)st.data_pages);
    struct stat sb;
    cr_assert_eq(fstat(fd, &sb), 0);
    cr_assert_eq(sb.st_size, (off_t)(64 * PG));
    check_file(fd, ram, 64 * PG);
    /* Sparse: about six pages of blocks, not 64. */
    cr_assert_lt(sb.st_blocks * 512, 16 * PG, "%lld blocks", (long long)sb.st_blocks);

    /* Without the fd (a private mapping): the same file, by scanning. */
    r[0].fd = r[1].fd = -1;
    cr_assert_eq(mig_snapshot_write_mem(fd, r, 2, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.data_pages, 6);
    check_file(fd, ram, 64 * PG);
    close(fd);
    munmap(ram, pages * PG);
    close(mfd);
}

Test(snapshot, memory_file_data_at_extent_edges)
{
    int mfd;
    size_t pages = 16;
    uint8_t *ram = make_ram(&mfd, pages);
    for (size_t p = 0; p < pages; p += 2)
        ram[p * PG + 17] = (uint8_t)(p + 1); /* every other page */
    struct mig_ram_host r = {0, pages * PG, ram, mfd, 0};
    int fd = tmpfile_fd();
    struct mig_snapshot_stats st = {0};
    struct errbuf err = {0};
    cr_assert_eq(mig_snapshot_write_mem(fd, &r, 1, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.data_pages, 8);
    check_file(fd, ram, pages * PG);
    close(fd);
    munmap(ram, pages * PG);
    close(mfd);
}

Test(snapshot, refuses_bad_ranges)
{
    uint8_t page[PG];
    struct mig_ram_host r = {0, PG + 1, page, -1, 0};
    struct mig_snapshot_stats st;
    struct errbuf err = {0};
    int fd = tmpfile_fd();
    cr_assert_eq(mig_snapshot_write_mem(fd, &r, 1, &st, &err), -EINVAL);
    cr_assert(strstr(err.msg, "bad RAM range"), "%s", err.msg);
    close(fd);
}

/* A one-register test device. */
static uint32_t dev_value;
static int dev_save(void *d, struct vstate_out *o)
{
    (void)d;
    vstate_put_u32(o, dev_value);
    return o->err;
}
static int dev_load(void *d, uint16_t v, const uint8_t *buf, size_t len, struct errbuf *err)
{
    (void)d;
    (void)v;
    if (len != 4)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "bad length");
    memcpy(&dev_value, buf, 4);
    return 0;
}
static const struct mig_device_ops dev_ops = {.type = "test-dev",
                                              .section_id = 0x300,
                                              .version = 1,
                                              .min_version = 1,
                                              .save = dev_save,
                                              .load = dev_load};

static void machine(struct mig_registry *reg, struct mig_machine *m)
{
    struct errbuf err = {0};
    mig_registry_init(reg);
    cr_assert_eq(mig_registry_add(reg, &dev_ops, NULL, 0, MIG_PLANE_BUILTIN, 0, &err), 0);
    memset(m, 0, sizeof(*m));
    m->arch = MIG_ARCH_X86_64;
    m->vcpus = 1;
    m->mem.n = 1;
    m->mem.r[0] = (struct mig_mem_range){0, 64 * PG};
}

Test(snapshot, state_round_trip_and_corruption)
{
    static struct mig_registry reg;
    static struct mig_machine m;
    machine(&reg, &m);
    int fd = tmpfile_fd();
    struct mig_snapshot_stats st = {0};
    struct errbuf err = {0};
    dev_value = 0x12345678;
    cr_assert_eq(mig_snapshot_write_state(fd, &reg, &m, NULL, &st, &err), 0, "%s", err.msg);
    cr_assert_gt(st.state_bytes, 40);
    dev_value = 0;
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    cr_assert_eq(mig_snapshot_read_state(fd, &reg, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(dev_value, 0x12345678);

    /* One flipped byte in the device's payload: refused by its checksum. */
    uint8_t b;
    off_t at = (off_t)st.state_bytes - 8 - 4 - 16 - 4 - 2; /* inside the last device section */
    cr_assert_eq(pread(fd, &b, 1, at), 1);
    b ^= 0x40;
    cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    machine(&reg, &m);
    struct errbuf e2 = {0};
    dev_value = 0;
    cr_assert_lt(mig_snapshot_read_state(fd, &reg, &m, &e2), 0);
    cr_assert(strstr(e2.msg, "checksum") || strstr(e2.msg, "CRC"), "%s", e2.msg);
    cr_assert_eq(dev_value, 0, "a corrupt state reached the device");

    /* Another machine (two vCPUs) is refused before the device is touched. */
    b ^= 0x40;
    cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    machine(&reg, &m);
    m.vcpus = 2;
    struct errbuf e3 = {0};
    cr_assert_lt(mig_snapshot_read_state(fd, &reg, &m, &e3), 0);
    cr_assert(strstr(e3.msg, "vCPUs"), "%s", e3.msg);
    cr_assert_eq(dev_value, 0);
    close(fd);
}

static int sink(void *ctx, uint64_t gpa, const void *data, uint64_t len)
{
    (void)ctx;
    (void)gpa;
    (void)data;
    (void)len;
    return 0;
}

Test(snapshot, state_with_ram_is_refused)
{
    static struct mig_registry reg;
    static struct mig_machine m;
    machine(&reg, &m);
    int fd = tmpfile_fd();
    struct errbuf err = {0};
    /* A migration stream: header, MACHINE, one RAM section, the device, END. */
    struct mig_fd_transport ft;
    struct mig_transport t;
    cr_assert_eq(mig_fd_transport_init(&ft, &t, fd, 1000), 0);
    struct mig_stream_writer w;
    mig_stream_writer_init(&w, &t);
    cr_assert_eq(mig_save_begin(&reg, &w, &m, 0, &err), 0, "%s", err.msg);
    struct mig_ram_writer rw;
    uint8_t page[PG] = {1};
    mig_ram_writer_init(&rw, &w);
    cr_assert_eq(mig_ram_put(&rw, 0, page, 1), 0);
    cr_assert_eq(mig_ram_flush(&rw), 0);
    mig_ram_writer_free(&rw);
    cr_assert_eq(mig_save_finish(&reg, &w, &err), 0, "%s", err.msg);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    (void)sink;
    struct errbuf e2 = {0};
    cr_assert_eq(mig_snapshot_read_state(fd, &reg, &m, &e2), -EPROTO);
    cr_assert(strstr(e2.msg, "carries RAM"), "%s", e2.msg);
    close(fd);
}
