/*
 * Fuzz target: the migration stream (migration/stream_*.c): framing, RAM
 * sections, the MACHINE section and the destination's dispatch to devices.
 *
 * Why: a migration or snapshot stream comes from another host (security.md
 * G2/G3, "migration_receiver"): every length is capped before use, every
 * RAM record must land inside the destination's RAM, and every refusal must
 * be one line.
 *
 * The first byte holds flags, the rest is the input:
 *   bits 0-1 mode: 0 a whole stream through mig_load_begin/mig_load_rest
 *            into a fake VM (two RAM ranges, three fake devices);
 *            1 a stream through the bare reader (known test sections);
 *            2 a RAM section payload through mig_ram_load;
 *            3 a MACHINE payload through mig_machine_decode, or with
 *              bit 3 a snapshot's CONFIG payload through mig_config_decode
 *   bit 2:   for modes 0 and 1, recompute the header and every section's
 *            CRC-32C (and the END count) so mutations get past the checksums
 * Checked: a refusal is one printable line and a known negative errno;
 * the RAM sink is called only inside the layout; a delivered section is
 * within its cap; an accepted MACHINE payload re-encodes to the same bytes
 * and is compatible with itself; in mode 0 every device got its state.
 * With FZ_MIG_EXPECT_OK=1 in the environment every input must be accepted:
 * that is how the seeds (seedgen_stream.c) are checked.
 */
#include "tests/fuzz/fuzz.h"

#include <errno.h>

#include "migration/hooks.h"
#include "migration/stream.h"
#include "migration/stream_config.h"
#include "migration/stream_sections.h"
#include "migration/vstate.h"

static bool fz_expect_ok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *ok = getenv("FZ_MIG_EXPECT_OK");
    fz_expect_ok = ok && ok[0] == '1';
    return 0;
}

/* Two ranges with a hole, far apart, so overflow and hole checks both matter. */
static const struct mig_mem_layout fz_layout = {
    .n = 2,
    .r = {{0, FZ_MIG_LO_PAGES * 4096}, {FZ_MIG_HI_BASE, FZ_MIG_HI_PAGES * 4096}},
};

static int fz_sink(void *ctx, uint64_t gpa, const void *data, uint64_t len)
{
    uint64_t *pages = ctx;
    bool inside = false;
    (void)data;
    for (uint32_t i = 0; i < fz_layout.n; i++) {
        const struct mig_mem_range *r = &fz_layout.r[i];
        if (gpa >= r->gpa && len <= r->size && gpa - r->gpa <= r->size - len)
            inside = true;
    }
    FZ_CHECK(inside && len && len % MIG_PAGE_SIZE == 0, "sink outside RAM: 0x%llx + 0x%llx",
             (unsigned long long)gpa, (unsigned long long)len);
    *pages += len / MIG_PAGE_SIZE;
    return 0;
}

static bool fz_errno_ok(int e)
{
    return e == -EBADMSG || e == -EPROTO || e == -E2BIG || e == -ERANGE || e == -EINVAL ||
           e == -ENOMEM;
}

static void fz_check_refusal(int e, const struct errbuf *err)
{
    FZ_CHECK(!fz_expect_ok, "refused (FZ_MIG_EXPECT_OK): %d %s", e, err->msg);
    FZ_CHECK(fz_errno_ok(e), "unexpected error %d", e);
    FZ_CHECK(fz_one_line(err), "refusal without a one-line reason");
}

/* ---- Fake devices for mode 0 ---- */

struct fz_dev {
    uint32_t value;
    size_t pre_bytes;
};

static int fz_save(void *dev, struct vstate_out *out)
{
    vstate_put_u32(out, ((struct fz_dev *)dev)->value);
    return 0;
}

static int fz_load(void *dev, uint16_t version, const uint8_t *buf, size_t len, struct errbuf *err)
{
    (void)version;
    (void)err;
    if (len != 4)
        return -EBADMSG;
    ((struct fz_dev *)dev)->value = le32_get(buf);
    return 0;
}

static int fz_pre_save(void *dev, struct vstate_out *out, bool *done)
{
    (void)dev;
    (void)out;
    *done = true;
    return 0;
}

static int fz_pre_load(void *dev, uint16_t version, const uint8_t *buf, size_t len,
                       struct errbuf *err)
{
    struct fz_dev *d = dev;
    (void)version;
    (void)buf;
    (void)err;
    if (len > 4096 - d->pre_bytes)
        return -E2BIG;
    d->pre_bytes += len;
    return 0;
}

static const struct mig_device_ops fz_ops_a = {
    .type = "fz-a",
    .section_id = FZ_MIG_SEC_A,
    .version = 2,
    .min_version = 1,
    .save = fz_save,
    .load = fz_load,
};
static const struct mig_device_ops fz_ops_pre = {
    .type = "fz-pre",
    .section_id = FZ_MIG_SEC_PRE,
    .version = 1,
    .min_version = 1,
    .save = fz_save,
    .load = fz_load,
    .precopy_save = fz_pre_save,
    .precopy_load = fz_pre_load,
};

/*
 * Recompute the header CRC, each section's CRC and the END count in a copy,
 * walking the framing as far as it is well formed.
 */
static void fz_fix_crcs(uint8_t *p, size_t len)
{
    if (len < MIG_STREAM_HDR_LEN)
        return;
    le32_put(p + 16, mig_stream_crc32c(0, p, 16));
    size_t pos = MIG_STREAM_HDR_LEN;
    uint64_t sections = 0;
    while (len - pos >= MIG_SECTION_HDR_LEN) {
        uint32_t id = le32_get(p + pos), plen = le32_get(p + pos + 12);
        if (plen > len - pos - MIG_SECTION_HDR_LEN ||
            len - pos - MIG_SECTION_HDR_LEN - plen < MIG_SECTION_CRC_LEN)
            return;
        if (id == MIG_SEC_END && plen == MIG_END_LEN)
            le64_put(p + pos + MIG_SECTION_HDR_LEN, sections);
        size_t crc_at = pos + MIG_SECTION_HDR_LEN + plen;
        le32_put(p + crc_at, mig_stream_crc32c(0, p + pos, MIG_SECTION_HDR_LEN + plen));
        pos = crc_at + MIG_SECTION_CRC_LEN;
        sections++;
    }
}

static void fz_mode_load(const uint8_t *p, size_t len)
{
    static struct mig_registry reg;
    struct fz_dev a0 = {0}, a1 = {0}, pre = {0};
    struct errbuf err = {0};
    struct mig_machine local, streamed;
    struct mig_mem_transport mt;
    struct mig_transport t;
    struct mig_stream_reader r;
    uint64_t pages = 0;

    mig_registry_init(&reg);
    FZ_CHECK(mig_registry_add(&reg, &fz_ops_a, &a0, 0, MIG_PLANE_BUILTIN, 0, &err) == 0, "add");
    FZ_CHECK(
        mig_registry_add(&reg, &fz_ops_a, &a1, 1, MIG_PLANE_BUILTIN, MIG_DEV_F_PORTABLE, &err) == 0,
        "add");
    FZ_CHECK(mig_registry_add(&reg, &fz_ops_pre, &pre, 0, MIG_PLANE_VFIO, 0, &err) == 0, "add");
    memset(&local, 0, sizeof(local));
    local.arch = MIG_ARCH_X86_64;
    local.vcpus = FZ_MIG_VCPUS;
    local.mem = fz_layout;
    mig_registry_describe(&reg, &local);

    mig_mem_transport_init(&mt, &t, p, len, 0);
    mig_registry_reader_init(&reg, &r, &t, MIG_ARCH_X86_64, &err);
    int e = mig_load_begin(&reg, &r, &local, &streamed, &err);
    if (e == 0)
        e = mig_load_rest(&reg, &r, &local, fz_sink, &pages, &err);
    if (e < 0) {
        fz_check_refusal(e, &err);
    } else {
        FZ_CHECK(!err_isset(&err), "success with an error recorded: %s", err.msg);
        for (uint32_t i = 0; i < reg.n; i++)
            FZ_CHECK(reg.devs[i].loaded, "device %u accepted without state", i);
    }
    mig_stream_reader_free(&r);
}

static const struct mig_section_desc fz_known[] = {
    {MIG_SEC_MACHINE, "machine", 1, 1, MIG_MACHINE_MAX_LEN},
    {MIG_SEC_RAM, "ram", 1, 1, MIG_RAM_MAX_LEN},
    {FZ_MIG_SEC_A, "fz-a", 1, 2, 64},
    {FZ_MIG_SEC_PRE, "fz-pre", 1, 1, 4096},
};

static void fz_mode_reader(const uint8_t *p, size_t len)
{
    struct errbuf err = {0};
    struct mig_mem_transport mt;
    struct mig_transport t;
    struct mig_stream_reader r;
    struct mig_section s;
    mig_mem_transport_init(&mt, &t, p, len, 0);
    mig_stream_reader_init(&r, &t, fz_known, ARRAY_SIZE(fz_known), MIG_ARCH_X86_64, &err);
    int e = mig_stream_read_header(&r, NULL);
    while (e == 0) {
        e = mig_stream_read_section(&r, &s);
        if (e < 0 || s.id == MIG_SEC_END)
            break;
        FZ_CHECK(s.desc && s.desc->id == s.id, "section without its description");
        FZ_CHECK(s.len <= s.desc->max_len, "section %u over its cap: %u", s.id, s.len);
        FZ_CHECK(s.version >= s.desc->min_version && s.version <= s.desc->max_version, "version %u",
                 s.version);
        FZ_CHECK(!(s.flags & ~MIG_SEC_F_KNOWN), "unknown flags delivered");
        FZ_CHECK(s.len <= len, "payload larger than the input");
    }
    if (e == 0)
        e = mig_stream_read_finish(&r);
    if (e < 0)
        fz_check_refusal(e, &err);
    FZ_CHECK(r.buf_cap <= len + MIG_STREAM_READ_CHUNK, "buffer of %zu for %zu input bytes",
             r.buf_cap, len);
    mig_stream_reader_free(&r);
}

static void fz_mode_ram(const uint8_t *p, size_t len)
{
    struct errbuf err = {0};
    uint64_t pages = 0;
    struct mig_section s = {
        .id = MIG_SEC_RAM, .version = 1, .len = (uint32_t)len, .payload = len ? p : NULL};
    if (len > MIG_RAM_MAX_LEN)
        return;
    int e = mig_ram_load(&s, &fz_layout, fz_sink, &pages, &err);
    if (e < 0) {
        fz_check_refusal(e, &err);
        FZ_CHECK(pages == 0, "a refused section wrote %llu pages", (unsigned long long)pages);
    }
}

static void fz_mode_machine(const uint8_t *p, size_t len)
{
    static struct mig_machine m;
    struct errbuf err = {0};
    struct mig_section s = {
        .id = MIG_SEC_MACHINE, .version = 1, .len = (uint32_t)len, .payload = len ? p : NULL};
    if (len > MIG_MACHINE_MAX_LEN)
        return;
    int e = mig_machine_decode(&s, &m, &err);
    if (e < 0) {
        fz_check_refusal(e, &err);
        return;
    }
    struct vstate_out o;
    vstate_out_init(&o);
    FZ_CHECK(mig_machine_encode(&m, &o) == 0, "an accepted description does not encode");
    FZ_CHECK(o.len == len && !memcmp(o.buf, p, len), "non-canonical MACHINE payload accepted");
    vstate_out_free(&o);
    FZ_CHECK(mig_compat_check(&m, &m, &err) == 0, "not compatible with itself: %s", err.msg);
}

/* CONFIG: refused with one line and nothing kept, or accepted and re-encoded to the same bytes. */
static void fz_mode_config(const uint8_t *p, size_t len)
{
    static struct mig_config c;
    struct errbuf err = {0};
    struct mig_section s = {
        .id = MIG_SEC_CONFIG, .version = 1, .len = (uint32_t)len, .payload = len ? p : NULL};
    if (len > MIG_CONFIG_MAX_LEN)
        return;
    int e = mig_config_decode(&s, &c, &err);
    if (e < 0) {
        fz_check_refusal(e, &err);
        FZ_CHECK(c.n == 0, "a refused CONFIG kept %u entries", c.n);
        return;
    }
    struct vstate_out o;
    vstate_out_init(&o);
    FZ_CHECK(mig_config_encode(&c, &o) == 0, "an accepted CONFIG does not encode");
    FZ_CHECK(o.len == len && !memcmp(o.buf, p, len), "non-canonical CONFIG payload accepted");
    vstate_out_free(&o);
    mig_config_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t flags = data[0];
    size_t len = size - 1;
    uint8_t *p = malloc(len ? len : 1);
    FZ_CHECK(p, "malloc");
    memcpy(p, data + 1, len);
    unsigned mode = flags & 3;
    if ((flags & FZ_MIG_F_FIX_CRC) && mode <= FZ_MIG_MODE_READER)
        fz_fix_crcs(p, len);
    switch (mode) {
    case FZ_MIG_MODE_LOAD:
        fz_mode_load(p, len);
        break;
    case FZ_MIG_MODE_READER:
        fz_mode_reader(p, len);
        break;
    case FZ_MIG_MODE_RAM:
        fz_mode_ram(p, len);
        break;
    default:
        if (flags & 8)
            fz_mode_config(p, len);
        else
            fz_mode_machine(p, len);
        break;
    }
    free(p);
    return 0;
}
