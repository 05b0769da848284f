/*
 * Unit tests for `wisp vpci derive` (devices/vfio/vfio_pci_derive.c)
 * against the project's real vfio-user device server
 * (tests/peers/vfio_user_server/, run as a child process; no KVM needed):
 * the derived layout has the server's IDs, BAR and MSI-X capability; its
 * canonical text parses back to the same text; and applied to the same
 * device it presents exactly what wisp presents without a layout (desc,
 * every config dword of 0x40-0xff, MSI-X trap ranges).
 *
 * The server binary is $WISP_VFIO_USER_SERVER, else vfio-user-server next
 * to this test binary's folder (build/tests/unit -> build/vfio-user-server).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "devices/vfio/vfio_pci.h"
#include "devices/vfio/vfio_user_client.h"
#include "devices/vfio/vpci_cfg.h"
#include "devices/vfio/vpci_layout.h"
#include "tests/peers/vfio_user_server/server.h"

static pid_t server_pid = -1;
static char sock_path[108];

static const char *server_bin(void)
{
    static char path[PATH_MAX];
    const char *e = getenv("WISP_VFIO_USER_SERVER");
    if (e && e[0])
        return e;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    cr_assert_gt(n, 0);
    exe[n] = 0;
    snprintf(path, sizeof(path), "%s/../vfio-user-server", dirname(exe));
    return path;
}

/* Start a server (it serves one client, then exits) and wait for its socket. */
static void start_server(void)
{
    snprintf(sock_path, sizeof(sock_path), "/tmp/wisp-vpci-derive-%d.sock", (int)getpid());
    unlink(sock_path);
    const char *bin = server_bin();
    cr_assert_eq(access(bin, X_OK), 0, "vfio-user-server not found at %s", bin);
    server_pid = fork();
    cr_assert_geq(server_pid, 0);
    if (server_pid == 0) {
        execl(bin, bin, "--socket", sock_path, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && access(sock_path, F_OK) != 0; i++)
        usleep(10000);
}

static void stop_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        server_pid = -1;
    }
    unlink(sock_path);
}

TestSuite(vpci_derive, .fini = stop_server, .timeout = 30);

static void derive(struct vpci_layout *l)
{
    struct errbuf err;
    int rc = -ENOENT;
    start_server();
    /* retry while the server is between bind and listen */
    for (int i = 0; i < 500 && (rc == -ENOENT || rc == -ECONNREFUSED); i++) {
        memset(&err, 0, sizeof(err));
        rc = vfio_pci_derive_user(sock_path, l, &err);
        if (rc == -ENOENT || rc == -ECONNREFUSED)
            usleep(10000);
    }
    cr_assert_eq(rc, 0, "%s", err.msg);
    stop_server();
}

Test(vpci_derive, from_the_vfio_user_server)
{
    static struct vpci_layout l, again;
    static char text[VPCI_LAYOUT_MAX_FILE], text2[VPCI_LAYOUT_MAX_FILE];
    derive(&l);
    cr_expect_eq(l.vendor, SRV_VENDOR_ID);
    cr_expect_eq(l.device, SRV_DEVICE_ID);
    cr_expect_eq(l.intx_pin, 0, "wisp wires no INTx");
    cr_expect_eq(l.rom_size, 0);
    cr_expect_eq(l.bars[0].type, PCI_BAR_MEM32);
    cr_expect_eq(l.bars[0].size, SRV_BAR0_SIZE);
    cr_expect_eq(l.bars[0].nmmap, 0, "vfio-user maps nothing: every access traps");
    for (unsigned i = 1; i < PCI_NUM_BARS; i++)
        cr_expect_eq(l.bars[i].type, PCI_BAR_NONE, "BAR%u", i);
    cr_assert_eq(l.ncaps, 1);
    cr_expect_eq(l.caps[0].id, VPCI_CAP_ID_MSIX);
    cr_expect_eq(l.caps[0].off, 0x40);
    cr_expect_eq(l.caps[0].policy, VPCI_LAYOUT_EMULATED);
    cr_expect_eq(l.caps[0].vectors, SRV_MSIX_VECTORS);
    cr_expect_eq(l.caps[0].table_off, SRV_MSIX_TABLE);
    cr_expect_eq(l.caps[0].pba_off, SRV_MSIX_PBA);
    cr_expect_eq(l.caps[0].table_bir, 0);
    int n = vpci_layout_write(&l, text, sizeof(text));
    cr_assert_gt(n, 0);
    struct errbuf err = {0};
    cr_assert_eq(vpci_layout_parse(text, (size_t)n, "derived", &again, &err), 0, "%s\n%s", err.msg,
                 text);
    cr_assert_eq(vpci_layout_write(&again, text2, sizeof(text2)), n);
    cr_expect_str_eq(text, text2);
    cr_expect_eq(vpci_layout_digest(&again), vpci_layout_digest(&l));
}

static int noop_install(void *o, enum vpci_irq_kind k, unsigned vec, uint64_t a, uint32_t d)
{
    (void)o, (void)k, (void)vec, (void)a, (void)d;
    return 0;
}

static void noop_remove(void *o, enum vpci_irq_kind k, unsigned vec)
{
    (void)o, (void)k, (void)vec;
}

static const struct vpci_irq_ops noop_ops = {.vector_install = noop_install,
                                             .vector_remove = noop_remove};

/* What vfio_pci_create hands vpci_cfg for the server's function. */
static void server_params(struct vpci_cfg_params *p, uint8_t *snap)
{
    struct vfio_user_client *c = NULL;
    start_server();
    int rc = -ENOENT;
    for (int i = 0; i < 500 && (rc == -ENOENT || rc == -ECONNREFUSED); i++)
        if ((rc = vfio_user_client_connect(sock_path, 5000, &c)) == -ENOENT || rc == -ECONNREFUSED)
            usleep(10000);
    cr_assert_eq(rc, 0);
    struct vfio_user_device_info di;
    cr_assert_eq(vfio_user_client_device_info(c, &di), 0);
    struct vfio_pci_region reg[VFIO_PCI_NREGIONS];
    memset(reg, 0, sizeof(reg));
    for (unsigned i = 0; i < VFIO_PCI_NREGIONS && i < di.num_regions; i++) {
        struct vfio_user_region_info ri;
        cr_assert_eq(vfio_user_client_region_info(c, i, &ri), 0);
        reg[i].size = ri.size;
    }
    unsigned irqs[3] = {0, 0, 0};
    for (unsigned i = 0; i < 3 && i < di.num_irqs; i++) {
        struct vfio_user_irq_info ii;
        if (vfio_user_client_irq_info(c, i, &ii) == 0 && (ii.flags & VFIO_USER_IRQ_INFO_EVENTFD))
            irqs[i] = ii.count;
    }
    cr_assert_eq(vfio_user_client_region_read(c, VFIO_PCI_CFG_INDEX, 0, snap, 256), 0);
    vfio_user_client_destroy(c);
    stop_server();
    memset(p, 0, sizeof(*p));
    p->cfg = snap;
    p->cfg_len = 256;
    p->rom_size = reg[VFIO_PCI_ROM_INDEX].size;
    p->msi_vectors = irqs[1];
    p->msix_vectors = irqs[2];
    p->win = (struct vpci_msi_window){0xfee00000ULL, 0x100000ULL};
    p->irq_ops = &noop_ops;
    struct errbuf err = {0};
    cr_assert_eq(vfio_pci_bars_from(reg, "t", snap, p->bars, &err), 0, "%s", err.msg);
}

Test(vpci_derive, applied_presents_the_same)
{
    static struct vpci_layout l;
    static uint8_t snap[256];
    struct vpci_cfg_params p;
    struct vpci_cfg *plain = NULL, *laid = NULL;
    struct errbuf err = {0};
    derive(&l);
    server_params(&p, snap);
    cr_assert_eq(vpci_cfg_new(&p, &plain, &err), 0, "%s", err.msg);
    p.layout = &l;
    p.layout_name = "derived";
    cr_assert_eq(vpci_cfg_new(&p, &laid, &err), 0, "%s", err.msg);
    const struct pci_func_desc *a = vpci_cfg_desc(plain), *b = vpci_cfg_desc(laid);
    cr_expect_eq(a->vendor, b->vendor);
    cr_expect_eq(a->device, b->device);
    cr_expect_eq(a->class_code, b->class_code);
    cr_expect_eq(a->revision, b->revision);
    cr_expect_eq(a->subsys_vendor, b->subsys_vendor);
    cr_expect_eq(a->subsys_id, b->subsys_id);
    cr_expect_eq(a->irq_pin, b->irq_pin);
    cr_expect_eq(a->cap_ptr, b->cap_ptr);
    cr_expect(!memcmp(a->bars, b->bars, sizeof(a->bars)), "BARs differ");
    for (unsigned off = 0x40; off < 0x100; off += 4)
        cr_expect_eq(vpci_cfg_read(plain, off, 4), vpci_cfg_read(laid, off, 4), "dword 0x%x", off);
    cr_assert_not_null(vpci_cfg_msix(plain));
    cr_assert_not_null(vpci_cfg_msix(laid));
    struct vpci_trap_range ta[2], tb[2];
    unsigned ba[2], bb[2];
    unsigned na = vpci_msix_trap(vpci_cfg_msix(plain), ta, ba);
    cr_assert_eq(vpci_msix_trap(vpci_cfg_msix(laid), tb, bb), na);
    for (unsigned i = 0; i < na; i++)
        cr_expect(ta[i].off == tb[i].off && ta[i].len == tb[i].len && ba[i] == bb[i],
                  "trap range %u", i);
    vpci_cfg_free(plain);
    vpci_cfg_free(laid);
}

Test(vpci_derive, no_server_is_one_line)
{
    static struct vpci_layout l;
    struct errbuf err = {0};
    cr_expect_eq(vfio_pci_derive_user("/tmp/wisp-no-such-vfio-user.sock", &l, &err), -ENOENT);
    cr_expect(strstr(err.msg, "cannot attach to vfio-user") != NULL, "%s", err.msg);
    cr_expect_eq(err.exit_code, WISP_EXIT_USAGE);
}
