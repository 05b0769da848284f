/*
 * The CONFIG section (migration/stream_config.h) and the snapshot reader
 * that finds it (mig_snapshot_read_config): the pairs round-trip, every
 * malformed payload is refused with nothing kept (cut at every length, a
 * count past the cap, bad keys and values, value lengths past the end,
 * trailing bytes), the section rides in a state file without disturbing
 * the ordinary restore, and a state file without it (an older wisp's) is
 * refused with the line that says how to restore it.
 */
#include "migration/snapshot.h"
#include "migration/stream_config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void sample(struct mig_config *c)
{
    mig_config_init(c);
    cr_assert_eq(mig_config_add(c, "memory", "268435456"), 0);
    cr_assert_eq(mig_config_add(c, "vcpus", "2"), 0);
    cr_assert_eq(mig_config_add(c, "device", "blk,id=root,path=/srv/a disk.img,readonly=on"), 0);
}

/* Encode c into a section view over a malloc'd buffer (freed by the caller). */
static struct mig_section encode(const struct mig_config *c, uint8_t **buf)
{
    struct vstate_out o;
    vstate_out_init(&o);
    cr_assert_eq(mig_config_encode(c, &o), 0);
    *buf = malloc(o.len);
    memcpy(*buf, o.buf, o.len);
    struct mig_section s = {
        .id = MIG_SEC_CONFIG, .version = 1, .len = (uint32_t)o.len, .payload = *buf};
    vstate_out_free(&o);
    return s;
}

Test(stream_config, round_trip)
{
    struct mig_config c, d;
    uint8_t *buf;
    sample(&c);
    struct mig_section s = encode(&c, &buf);
    struct errbuf err = {0};
    cr_assert_eq(mig_config_decode(&s, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(d.n, c.n);
    for (uint32_t i = 0; i < c.n; i++) {
        cr_assert_str_eq(d.e[i].key, c.e[i].key);
        cr_assert_str_eq(d.e[i].value, c.e[i].value);
    }
    mig_config_free(&c);
    mig_config_free(&d);
    free(buf);
}

Test(stream_config, add_refuses_what_the_decoder_would)
{
    struct mig_config c;
    mig_config_init(&c);
    char big[MIG_CONFIG_MAX_VALUE + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(mig_config_add(&c, "", "x"), -EINVAL);
    cr_assert_eq(mig_config_add(&c, "bad key", "x"), -EINVAL);
    cr_assert_eq(mig_config_add(&c, "k", ""), -EINVAL);
    cr_assert_eq(mig_config_add(&c, "k", "tab\there"), -EINVAL);
    cr_assert_eq(mig_config_add(&c, "k", big), -EINVAL);
    big[MIG_CONFIG_MAX_VALUE] = '\0';
    cr_assert_eq(mig_config_add(&c, "k", big), 0);
    for (uint32_t i = 1; i < MIG_CONFIG_MAX_ENTRIES; i++)
        cr_assert_eq(mig_config_add(&c, "k", "v"), 0);
    cr_assert_eq(mig_config_add(&c, "k", "v"), -ENOSPC);
    mig_config_free(&c);
    cr_assert_eq(c.n, 0);
}

Test(stream_config, every_truncation_is_refused)
{
    struct mig_config c, d;
    uint8_t *buf;
    sample(&c);
    struct mig_section s = encode(&c, &buf);
    for (uint32_t len = 0; len < s.len; len++) {
        struct mig_section t = s;
        t.len = len;
        struct errbuf err = {0};
        cr_assert_eq(mig_config_decode(&t, &d, &err), -EBADMSG, "cut at %u accepted", len);
        cr_assert_eq(d.n, 0, "cut at %u left entries", len);
        cr_assert(strstr(err.msg, "config"), "%s", err.msg);
    }
    mig_config_free(&c);
    free(buf);
}

/* Decode raw bytes; expect a refusal naming `what`. */
static void refused(const uint8_t *p, size_t n, const char *what)
{
    struct mig_section s = {.id = MIG_SEC_CONFIG, .version = 1, .len = (uint32_t)n, .payload = p};
    struct mig_config d;
    struct errbuf err = {0};
    cr_assert_eq(mig_config_decode(&s, &d, &err), -EBADMSG, "accepted: %s", what);
    cr_assert_eq(d.n, 0);
    cr_assert(strstr(err.msg, what), "%s (wanted '%s')", err.msg, what);
}

Test(stream_config, malformed_payloads_are_refused)
{
    /* A count past the cap, before any entry is read. */
    const uint8_t many[] = {49, 0, 0, 0};
    refused(many, sizeof(many), "49 entries");
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
    refused(huge, sizeof(huge), "entries");
    /* Key length 0 and 32. */
    const uint8_t k0[] = {1, 0, 0, 0, 0};
    refused(k0, sizeof(k0), "key");
    uint8_t k32[4 + 1 + 32] = {1, 0, 0, 0, 32};
    memset(k32 + 5, 'a', 32);
    refused(k32, sizeof(k32), "key");
    /* A key with a space. */
    const uint8_t ksp[] = {1, 0, 0, 0, 2, 'a', ' ', 1, 0, 'x'};
    refused(ksp, sizeof(ksp), "key");
    /* Value length 0, past the end, past the cap. */
    const uint8_t v0[] = {1, 0, 0, 0, 1, 'k', 0, 0};
    refused(v0, sizeof(v0), "value");
    const uint8_t vend[] = {1, 0, 0, 0, 1, 'k', 5, 0, 'a', 'b'};
    refused(vend, sizeof(vend), "value cut short");
    uint8_t vcap[4 + 2 + 2 + 4097] = {1, 0, 0, 0, 1, 'k', 0x01, 0x10};
    memset(vcap + 8, 'a', 4097);
    refused(vcap, sizeof(vcap), "value");
    /* A NUL and a newline inside a value. */
    const uint8_t vnul[] = {1, 0, 0, 0, 1, 'k', 3, 0, 'a', 0, 'b'};
    refused(vnul, sizeof(vnul), "printable");
    const uint8_t vnl[] = {1, 0, 0, 0, 1, 'k', 2, 0, 'a', '\n'};
    refused(vnl, sizeof(vnl), "printable");
    /* One good entry, then a trailing byte. */
    const uint8_t trail[] = {1, 0, 0, 0, 1, 'k', 1, 0, 'v', 0};
    refused(trail, sizeof(trail), "trailing");
    /* The second entry bad: the first is not kept either. */
    const uint8_t second[] = {2, 0, 0, 0, 1, 'k', 1, 0, 'v', 1, 'k', 1, 0, 0x7f};
    refused(second, sizeof(second), "entry 1");
}

/* ---- in a state file ---- */

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

static int state_file(const struct mig_config *cfg, struct mig_registry *reg, struct mig_machine *m)
{
    struct errbuf err = {0};
    mig_registry_init(reg);
    cr_assert_eq(mig_registry_add(reg, &dev_ops, NULL, 0, MIG_PLANE_BUILTIN, 0, &err), 0);
    memset(m, 0, sizeof(*m));
    m->arch = MIG_ARCH_X86_64;
    m->vcpus = 1;
    m->mem.n = 1;
    m->mem.r[0] = (struct mig_mem_range){0, 64 * 4096};
    char path[] = "/tmp/wisp-snapcfg-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    struct mig_snapshot_stats st = {0};
    cr_assert_eq(mig_snapshot_write_state(fd, reg, m, cfg, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

Test(stream_config, state_file_carries_it_and_restores_as_before)
{
    static struct mig_registry reg;
    static struct mig_machine m;
    struct mig_config c, d;
    sample(&c);
    dev_value = 0xabcd;
    int fd = state_file(&c, &reg, &m);
    struct errbuf err = {0};
    mig_config_init(&d);
    cr_assert_eq(mig_snapshot_read_config(fd, MIG_ARCH_X86_64, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(d.n, 3);
    cr_assert_str_eq(d.e[2].value, c.e[2].value);
    /* The ordinary restore skips the optional section. */
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    dev_value = 0;
    cr_assert_eq(mig_snapshot_read_state(fd, &reg, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(dev_value, 0xabcd);
    mig_config_free(&c);
    mig_config_free(&d);
    close(fd);
}

Test(stream_config, older_state_file_is_refused_with_a_clear_line)
{
    static struct mig_registry reg;
    static struct mig_machine m;
    struct mig_config d;
    int fd = state_file(NULL, &reg, &m);
    struct errbuf err = {0};
    mig_config_init(&d);
    cr_assert_eq(mig_snapshot_read_config(fd, MIG_ARCH_X86_64, &d, &err), -ENOENT);
    cr_assert(strstr(err.msg, "no machine configuration"), "%s", err.msg);
    cr_assert(strstr(err.msg, "--restore"), "%s", err.msg);
    cr_assert_eq(d.n, 0);
    close(fd);
}

Test(stream_config, corrupt_state_file_is_refused)
{
    static struct mig_registry reg;
    static struct mig_machine m;
    struct mig_config c, d;
    sample(&c);
    int fd = state_file(&c, &reg, &m);
    /* Flip a byte of the first value inside CONFIG: its checksum refuses it. */
    uint8_t all[8192];
    ssize_t n = pread(fd, all, sizeof(all), 0);
    cr_assert_gt(n, 0);
    uint8_t *at = memmem(all, (size_t)n, "268435456", 9);
    cr_assert_not_null(at);
    *at ^= 0x01;
    cr_assert_eq(pwrite(fd, at, 1, at - all), 1);
    struct errbuf err = {0};
    mig_config_init(&d);
    cr_assert_lt(mig_snapshot_read_config(fd, MIG_ARCH_X86_64, &d, &err), 0);
    cr_assert(strstr(err.msg, "config") && (strstr(err.msg, "CRC") || strstr(err.msg, "checksum")),
              "%s", err.msg);
    cr_assert_eq(d.n, 0);
    /* An empty file. */
    cr_assert_eq(ftruncate(fd, 0), 0);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    struct errbuf e2 = {0};
    cr_assert_lt(mig_snapshot_read_config(fd, MIG_ARCH_X86_64, &d, &e2), 0);
    cr_assert(e2.msg[0]);
    mig_config_free(&c);
    close(fd);
}
