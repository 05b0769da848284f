/*
 * The passthrough migration record (devices/vfio/vfio_mig.c) and the vPCI
 * state it carries (devices/vfio/vpci_cfg_state.c): a programmed view
 * saved and replayed into a fresh one on the "destination" (vectors
 * routed again, pending bits kept), and every refusal of hostile bytes:
 * truncated records, lengths over their caps or over the record, trailing
 * bytes, another layout, another MSI-X vector count.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/vfio/vfio_mig.h"
#include "tests/unit/devices/vfio/vpci_fake.h"

static uint8_t phys[PCI_CFG_SIZE];
static struct rec rs, rd;
static struct vpci_cfg *src, *dst;

static struct vpci_cfg *make(struct rec *r, unsigned msix_vectors)
{
    struct vpci_cfg_params p;
    fake_params(&p, phys, &rec_ops, r);
    p.msix_vectors = msix_vectors;
    struct vpci_cfg *v = NULL;
    struct errbuf e = {0};
    cr_assert_eq(vpci_cfg_new(&p, &v, &e), 0, "%s", e.msg);
    return v;
}

static void setup(void)
{
    fake_device(phys);
    rec_init(&rs);
    rec_init(&rd);
    src = make(&rs, F_NVEC);
    dst = make(&rd, F_NVEC);
}

static void teardown(void)
{
    vpci_cfg_free(src);
    vpci_cfg_free(dst);
    irq_routing_free(rs.routing);
    irq_routing_free(rd.routing);
}

TestSuite(vfio_mig, .init = setup, .fini = teardown);

static void table_wr(struct vpci_cfg *v, unsigned vec, unsigned dw, uint32_t val)
{
    uint8_t b[4];
    le32_put(b, val);
    cr_assert(vpci_msix_bar_write(vpci_cfg_msix(v), 0, F_TABLE + 16U * vec + 4U * dw, b, 4));
}

static uint32_t table_rd(struct vpci_cfg *v, unsigned vec, unsigned dw)
{
    uint8_t b[4];
    cr_assert(vpci_msix_bar_read(vpci_cfg_msix(v), 0, F_TABLE + 16U * vec + 4U * dw, b, 4));
    return le32_get(b);
}

/* The guest programs the source: MSI-X vectors 0-5 (vector 3 masked and
 * signalled while masked), MSI-X enabled, PCIe and PM control written. */
static void program_source(void)
{
    for (unsigned i = 0; i < 6; i++) {
        table_wr(src, i, 0, 0xfee00000U | (i << 12));
        table_wr(src, i, 1, 0);
        table_wr(src, i, 2, 0x40U + i);
        table_wr(src, i, 3, i == 3 ? 1U : 0U);
    }
    vpci_cfg_write(src, F_PCIE + 8, 2, 0x2010);
    vpci_cfg_write(src, F_MSIX + 2, 2, VPCI_MSIX_CTRL_ENABLE);
    cr_assert(vpci_cfg_signal(src, VPCI_IRQ_MSIX, 3));
    vpci_cfg_rom_write(src, 0xfff00000U);
}

static size_t save(struct vpci_cfg *v, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    cr_assert_eq(vpci_cfg_state_save(v, buf, cap, &len), 0);
    cr_assert_eq(len, vpci_cfg_state_size(v));
    return len;
}

Test(vfio_mig, vpci_state_replayed_on_a_fresh_view)
{
    program_source();
    static uint8_t st[VPCI_CFG_STATE_MAX];
    size_t len = save(src, st, sizeof(st));
    struct errbuf e = {0};
    cr_assert_eq(vpci_cfg_state_load(dst, st, len, "pt0", &e), 0, "%s", e.msg);
    for (unsigned off = 0x40; off < 0x100; off += 4)
        cr_assert_eq(vpci_cfg_read(dst, off, 4), vpci_cfg_read(src, off, 4), "config 0x%x", off);
    for (unsigned i = 0; i < F_NVEC; i++)
        for (unsigned d = 0; d < 4; d++)
            cr_assert_eq(table_rd(dst, i, d), table_rd(src, i, d), "vector %u dword %u", i, d);
    cr_assert(vpci_msix_enabled(vpci_cfg_msix(dst)));
    cr_assert_eq(vpci_cfg_rom_read(dst), vpci_cfg_rom_read(src));
    /* Routed as the guest's own enable would have: vectors 0-2 and 4-5. */
    for (unsigned i = 0; i < 6; i++) {
        uint64_t addr = 0;
        uint32_t data = 0;
        cr_assert_eq(vpci_msix_installed(vpci_cfg_msix(dst), i), i != 3, "vector %u", i);
        if (i == 3)
            continue;
        cr_assert(rec_route(&rd, VPCI_IRQ_MSIX, i, &addr, &data));
        cr_assert_eq(addr, 0xfee00000U | (i << 12));
        cr_assert_eq(data, 0x40U + i);
    }
    cr_assert(vpci_msix_pending(vpci_cfg_msix(dst), 3), "the pending bit travelled");
    /* Unmasking it delivers the held message on the destination. */
    unsigned fires = rec_count(&rd, REC_FIRE);
    table_wr(dst, 3, 3, 0);
    cr_assert(vpci_msix_installed(vpci_cfg_msix(dst), 3));
    cr_assert_eq(rec_count(&rd, REC_FIRE), fires + 1);
}

Test(vfio_mig, vpci_state_refusals_leave_the_view_unchanged)
{
    program_source();
    static uint8_t st[VPCI_CFG_STATE_MAX + 8];
    size_t len = save(src, st, sizeof(st));
    uint8_t small[8];
    size_t got = 0;
    cr_assert_eq(vpci_cfg_state_save(src, small, sizeof(small), &got), -ENOSPC);
    struct errbuf e = {0};
    /* Every truncation, and one byte too many. */
    for (size_t l = 0; l < len; l++) {
        memset(&e, 0, sizeof(e));
        cr_assert_eq(vpci_cfg_state_load(dst, st, l, "pt0", &e), -EBADMSG, "length %zu", l);
        cr_assert_eq(e.exit_code, WISP_EXIT_USAGE);
    }
    memset(&e, 0, sizeof(e));
    cr_assert_eq(vpci_cfg_state_load(dst, st, len + 1, "pt0", &e), -EBADMSG);
    cr_assert(strstr(e.msg, "device pt0: vPCI state is"), "%s", e.msg);
    /* Another vector count than this destination's. */
    struct rec r4;
    rec_init(&r4);
    struct vpci_cfg *four = make(&r4, 4);
    memset(&e, 0, sizeof(e));
    cr_assert_eq(vpci_cfg_state_load(four, st, len, "pt0", &e), -EPROTO);
    cr_assert(strstr(e.msg, "the stream has 8 MSI-X vectors, this destination 4"), "%s", e.msg);
    cr_assert_not(vpci_msix_enabled(vpci_cfg_msix(four)));
    vpci_cfg_free(four);
    irq_routing_free(r4.routing);
    cr_assert_not(vpci_msix_enabled(vpci_cfg_msix(dst)), "nothing applied");
    cr_assert_eq(rd.n, 0, "no vector touched");
}

/* A hostile state can do no more than a guest: MSI and MSI-X both enabled
 * in the bytes leaves only one on. */
Test(vfio_mig, vpci_state_cannot_enable_msi_and_msix_together)
{
    static uint8_t st[VPCI_CFG_STATE_MAX];
    size_t len = save(src, st, sizeof(st));
    uint32_t *msix = (uint32_t *)(void *)(st + F_MSIX - 0x40);
    uint32_t *msi = (uint32_t *)(void *)(st + F_MSI - 0x40);
    le32_put(msix, le32_get(msix) | (uint32_t)VPCI_MSIX_CTRL_ENABLE << 16);
    le32_put(msi, le32_get(msi) | (uint32_t)VPCI_MSI_CTRL_ENABLE << 16);
    struct errbuf e = {0};
    cr_assert_eq(vpci_cfg_state_load(dst, st, len, "pt0", &e), 0, "%s", e.msg);
    cr_assert(vpci_msix_enabled(vpci_cfg_msix(dst)) != vpci_msi_enabled(vpci_cfg_msi(dst)));
}

/* ---- the record ---- */

static const char lay_a[] = "wisp-vpci-layout 1\nid 0x1b36:0x10f7\n";
static const char lay_b[] = "wisp-vpci-layout 1\nid 0x1b36:0x10f8\n";

static void encode(const struct vfio_mig_rec *r, struct vstate_out *o)
{
    vstate_out_init(o);
    cr_assert_eq(vfio_mig_rec_encode(r, o), 0);
    cr_assert_eq(o->len, VFIO_MIG_HDR + r->layout_len + r->vpci_len + r->dev_len);
}

static struct vfio_mig_rec sample(void)
{
    static const uint8_t vp[5] = {1, 2, 3, 4, 5}, dev[3] = {9, 8, 7};
    return (struct vfio_mig_rec){.layout = lay_a,
                                 .layout_len = sizeof(lay_a) - 1,
                                 .vpci = vp,
                                 .vpci_len = sizeof(vp),
                                 .dev = dev,
                                 .dev_len = sizeof(dev)};
}

Test(vfio_mig, record_round_trip_and_layout_check)
{
    struct vfio_mig_rec in = sample();
    struct vstate_out o;
    encode(&in, &o);
    struct vfio_mig_rec out;
    struct errbuf e = {0};
    cr_assert_eq(vfio_mig_rec_decode(o.buf, o.len, "pt0", &out, &e), 0, "%s", e.msg);
    cr_assert_eq(out.layout_len, in.layout_len);
    cr_assert_arr_eq(out.layout, lay_a, in.layout_len);
    cr_assert_eq(out.vpci_len, 5);
    cr_assert_arr_eq(out.vpci, in.vpci, 5);
    cr_assert_eq(out.dev_len, 3);
    cr_assert_arr_eq(out.dev, in.dev, 3);
    cr_assert_eq(vfio_mig_rec_check_layout(&out, lay_a, sizeof(lay_a) - 1, "pt0", &e), 0);
    /* One byte differs, or one byte more: refused, both named by digest. */
    cr_assert_eq(vfio_mig_rec_check_layout(&out, lay_b, sizeof(lay_b) - 1, "pt0", &e), -EPROTO);
    cr_assert_eq(e.exit_code, WISP_EXIT_USAGE);
    char want[200];
    snprintf(want, sizeof(want),
             "device pt0: the stream's vPCI layout (digest 0x%016llx) differs from this "
             "destination's (0x%016llx)",
             (unsigned long long)vpci_layout_digest_text(lay_a, sizeof(lay_a) - 1),
             (unsigned long long)vpci_layout_digest_text(lay_b, sizeof(lay_b) - 1));
    cr_assert_str_eq(e.msg, want);
    memset(&e, 0, sizeof(e));
    cr_assert_eq(vfio_mig_rec_check_layout(&out, lay_a, sizeof(lay_a), "pt0", &e), -EPROTO);
    /* Empty parts are fine. */
    struct vfio_mig_rec none = {0};
    vstate_out_free(&o);
    encode(&none, &o);
    cr_assert_eq(vfio_mig_rec_decode(o.buf, o.len, "pt0", &out, &e), 0);
    cr_assert_eq(out.layout_len + out.vpci_len + out.dev_len, 0);
    vstate_out_free(&o);
    /* The encoder refuses what the decoder would. */
    struct vfio_mig_rec big = {.dev = in.dev, .dev_len = VFIO_MIG_DEV_MAX + 1};
    vstate_out_init(&o);
    cr_assert_eq(vfio_mig_rec_encode(&big, &o), -EINVAL);
    vstate_out_free(&o);
}

static int decode(const uint8_t *b, size_t len, struct errbuf *e)
{
    struct vfio_mig_rec out;
    memset(e, 0, sizeof(*e));
    return vfio_mig_rec_decode(b, len, "pt0", &out, e);
}

Test(vfio_mig, record_refusals)
{
    struct vfio_mig_rec in = sample();
    struct vstate_out o;
    encode(&in, &o);
    struct errbuf e;
    for (size_t l = 0; l < o.len; l++)
        cr_assert_eq(decode(o.buf, l, &e), -EBADMSG, "truncated to %zu", l);
    cr_assert_eq(decode(o.buf, 3, &e), -EBADMSG);
    cr_assert(strstr(e.msg, "migration record of 3 bytes is truncated at the vPCI layout"), "%s",
              e.msg);

    uint8_t b[128];
    const size_t lay = 4 + in.layout_len, vp = lay + 4 + in.vpci_len;
    memcpy(b, o.buf, o.len);
    b[o.len] = 0;
    cr_assert_eq(decode(b, o.len + 1, &e), -EBADMSG);
    cr_assert(strstr(e.msg, "1 bytes after the device state"), "%s", e.msg);

    struct {
        size_t at;
        uint32_t val;
        const char *msg;
    } cases[] = {
        {0, VPCI_LAYOUT_MAX_FILE + 1, "vPCI layout length 65537 is over its cap"},
        {0, 0xffffffffU, "vPCI layout length 4294967295 is over its cap"},
        {0, (uint32_t)o.len, "is over the record"},
        {lay, VPCI_CFG_STATE_MAX + 1, "vPCI state length"},
        {lay, 13, "vPCI state length 13 is over the record"},
        {vp, VFIO_MIG_DEV_MAX + 1, "device state length"},
        {vp, 4, "device state length 4 is over the record"},
        {vp, 2, "1 bytes after the device state"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(b, o.buf, o.len);
        le32_put(b + cases[i].at, cases[i].val);
        cr_assert_eq(decode(b, o.len, &e), -EBADMSG, "case %zu", i);
        cr_assert(strstr(e.msg, cases[i].msg), "case %zu: %s", i, e.msg);
    }
    vstate_out_free(&o);
}

/* A part over its cap is refused even when the record holds all its bytes. */
Test(vfio_mig, record_part_over_its_cap_with_the_bytes_present)
{
    const uint32_t caps[3] = {VPCI_LAYOUT_MAX_FILE, VPCI_CFG_STATE_MAX, VFIO_MIG_DEV_MAX};
    const char *names[3] = {"vPCI layout", "vPCI state", "device state"};
    size_t len = VFIO_MIG_HDR + (size_t)VFIO_MIG_DEV_MAX + 1;
    uint8_t *b = calloc(1, len);
    cr_assert(b);
    for (unsigned part = 0; part < 3; part++) {
        memset(b, 0, VFIO_MIG_HDR);
        /* Earlier parts empty: part `part` starts at 4 * part. */
        le32_put(b + 4 * part, caps[part] + 1);
        size_t total = VFIO_MIG_HDR + (size_t)caps[part] + 1;
        struct errbuf e;
        cr_assert_eq(decode(b, total, &e), -EBADMSG, "part %u", part);
        cr_assert(strstr(e.msg, names[part]) && strstr(e.msg, "is over its cap"), "%s", e.msg);
        le32_put(b + 4 * part, caps[part]);
        cr_assert_eq(decode(b, total - 1, &e), 0, "part %u at its cap: %s", part, e.msg);
    }
    free(b);
}

/* MSI: address and data are replayed before the enable bit, so the irq
 * ops only ever see the final message. */
Test(vfio_mig, msi_enabled_after_its_message)
{
    vpci_cfg_write(src, F_MSI + 4, 4, 0xfee01000U);
    vpci_cfg_write(src, F_MSI + 8, 4, 0);
    vpci_cfg_write(src, F_MSI + 12, 2, 0x31);
    vpci_cfg_write(src, F_MSI + 2, 2, VPCI_MSI_CTRL_ENABLE);
    cr_assert(vpci_msi_installed(vpci_cfg_msi(src), 0));
    static uint8_t st[VPCI_CFG_STATE_MAX];
    size_t len = save(src, st, sizeof(st));
    struct errbuf e = {0};
    cr_assert_eq(vpci_cfg_state_load(dst, st, len, "pt0", &e), 0, "%s", e.msg);
    cr_assert(vpci_msi_installed(vpci_cfg_msi(dst), 0));
    cr_assert_eq(rec_count(&rd, REC_REMOVE), 0, "nothing installed and taken back");
    for (unsigned i = 0; i < rd.n; i++)
        if (rd.ev[i].op == REC_INSTALL)
            cr_assert(rd.ev[i].addr == 0xfee01000U && rd.ev[i].data == 0x31, "install %u: 0x%llx",
                      i, (unsigned long long)rd.ev[i].addr);
}
