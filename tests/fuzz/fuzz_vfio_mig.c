/*
 * Fuzz target: the passthrough migration record (devices/vfio/vfio_mig.c)
 * and the vPCI state inside it (devices/vfio/vpci_cfg_state.c), as a
 * destination receives them from a hostile source.
 *
 * Why: the record comes from another host (security.md G2/G3).  Its
 * lengths must be bounded before use, and the vPCI state may put the view
 * only where a guest could: vectors installed through the irq ops inside
 * the MSI window, never MSI and MSI-X together.
 *
 * Input: the section payload itself.  The view is fixed: an 8-vector
 * MSI-X table in BAR0 at 0x2000 and a 64-bit maskable MSI capability with
 * 8 vectors, so a seed's vPCI state must be vpci_cfg_state_size() bytes
 * (tests/fuzz/corpus/vfio_mig/ has valid ones).  Checked: a decoded
 * record's parts add up to the input; a loaded state keeps the irq ops'
 * view consistent; saving the loaded view and loading that into a fresh
 * one saves the same bytes again (the replay is idempotent).
 */
#include "tests/fuzz/fuzz.h"

#include <errno.h>

#include "devices/vfio/vfio_mig.h"

#define FZ_WIN 0xfee00000ULL
/* The destination's layout text; the seeds carry it, or one byte off. */
static const char fz_layout[] = "wisp-vpci-layout 1\nid 0x1234:0x5678\n";

static bool fz_inst[2][VPCI_MSIX_MAX_VECTORS];

static int fz_install(void *o, enum vpci_irq_kind k, unsigned vec, uint64_t addr, uint32_t data)
{
    (void)o;
    (void)data;
    FZ_CHECK(vec < 8, "vector %u", vec);
    FZ_CHECK(addr >= FZ_WIN && addr < FZ_WIN + 0x100000, "address 0x%llx",
             (unsigned long long)addr);
    fz_inst[k][vec] = true;
    return 0;
}

static void fz_remove(void *o, enum vpci_irq_kind k, unsigned vec)
{
    (void)o;
    FZ_CHECK(vec < 8 && fz_inst[k][vec], "remove of %u", vec);
    fz_inst[k][vec] = false;
}

static void fz_fire(void *o, enum vpci_irq_kind k, unsigned vec)
{
    (void)o;
    FZ_CHECK(vec < 8 && fz_inst[k][vec], "fire of uninstalled %u", vec);
}

static const struct vpci_irq_ops fz_ops = {
    .vector_install = fz_install,
    .vector_remove = fz_remove,
    .vector_fire = fz_fire,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static struct vpci_cfg *fz_view(void)
{
    uint8_t snap[VPCI_CFG_LEGACY] = {0};
    le16_put(snap + 0x00, 0x1234);
    le16_put(snap + 0x02, 0x5678);
    le16_put(snap + 0x06, PCI_STATUS_CAP_LIST);
    snap[0x34] = 0x70;
    snap[0x70] = VPCI_CAP_ID_MSIX;
    snap[0x71] = 0x48;
    le16_put(snap + 0x72, 7);
    le32_put(snap + 0x74, 0x2000);
    le32_put(snap + 0x78, 0x3000);
    snap[0x48] = VPCI_CAP_ID_MSI;
    le16_put(snap + 0x4a, VPCI_MSI_CTRL_64BIT | VPCI_MSI_CTRL_MASKBIT | (3U << 1));
    struct vpci_cfg_params p = {
        .cfg = snap,
        .cfg_len = VPCI_CFG_LEGACY,
        .msi_vectors = 8,
        .msix_vectors = 8,
        .rom_size = 0x8000,
        .win = {.base = FZ_WIN, .size = 0x100000},
        .irq_ops = &fz_ops,
    };
    p.bars[0] = (struct pci_bar_desc){.size = 0x4000, .type = PCI_BAR_MEM64, .prefetchable = true};
    struct vpci_cfg *v = NULL;
    struct errbuf e = {0};
    FZ_CHECK(vpci_cfg_new(&p, &v, &e) == 0, "view: %s", e.msg);
    return v;
}

static void fz_check(struct vpci_cfg *v)
{
    struct vpci_msix *m = vpci_cfg_msix(v);
    struct vpci_msi *s = vpci_cfg_msi(v);
    FZ_CHECK(!(vpci_msix_enabled(m) && vpci_msi_enabled(s)), "MSI and MSI-X both on");
    for (unsigned i = 0; i < 8; i++) {
        FZ_CHECK(vpci_msix_installed(m, i) == fz_inst[VPCI_IRQ_MSIX][i], "MSI-X %u", i);
        FZ_CHECK(vpci_msi_installed(s, i) == fz_inst[VPCI_IRQ_MSI][i], "MSI %u", i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vfio_mig_rec r;
    struct errbuf e = {0};
    if (vfio_mig_rec_decode(data, size, "fz", &r, &e) < 0) {
        FZ_CHECK(fz_one_line(&e), "decode error report");
        return 0;
    }
    FZ_CHECK((size_t)VFIO_MIG_HDR + r.layout_len + r.vpci_len + r.dev_len == size,
             "parts do not add up");
    FZ_CHECK(r.layout_len <= VPCI_LAYOUT_MAX_FILE && r.vpci_len <= VPCI_CFG_STATE_MAX &&
                 r.dev_len <= VFIO_MIG_DEV_MAX,
             "caps");
    if (vfio_mig_rec_check_layout(&r, fz_layout, sizeof(fz_layout) - 1, "fz", &e) < 0)
        FZ_CHECK(fz_one_line(&e), "layout error report");

    memset(fz_inst, 0, sizeof(fz_inst));
    struct vpci_cfg *v = fz_view();
    memset(&e, 0, sizeof(e));
    if (vpci_cfg_state_load(v, r.vpci, r.vpci_len, "fz", &e) < 0) {
        FZ_CHECK(fz_one_line(&e), "state error report");
        for (unsigned i = 0; i < 8; i++)
            FZ_CHECK(!fz_inst[0][i] && !fz_inst[1][i], "a refused state installed %u", i);
        vpci_cfg_free(v);
        return 0;
    }
    fz_check(v);
    static uint8_t s1[VPCI_CFG_STATE_MAX], s2[VPCI_CFG_STATE_MAX];
    size_t l1 = 0, l2 = 0;
    FZ_CHECK(vpci_cfg_state_save(v, s1, sizeof(s1), &l1) == 0 && l1 == r.vpci_len, "save 1");
    vpci_cfg_free(v);

    memset(fz_inst, 0, sizeof(fz_inst));
    v = fz_view();
    FZ_CHECK(vpci_cfg_state_load(v, s1, l1, "fz", &e) == 0, "reload: %s", e.msg);
    fz_check(v);
    FZ_CHECK(vpci_cfg_state_save(v, s2, sizeof(s2), &l2) == 0 && l2 == l1, "save 2");
    FZ_CHECK(memcmp(s1, s2, l1) == 0, "the replay is not idempotent");
    vpci_cfg_free(v);
    return 0;
}
