/*
 * A passthrough function as a migration registry member
 * (devices/vfio/vfio_mig_dev.c), end to end over vfio-user against two
 * real test servers (tests/peers/vfio_user_server/), without KVM: the
 * source's device state (a BAR0 register) and vPCI state (an MSI-X table
 * entry) saved after quiesce and loaded into a fresh server on the
 * "destination", which then runs; all DMA-mapped memory reported dirty
 * once quiesced; refusals: a server without migration (--no-migration),
 * another layout, a device that refuses its state on RESUMING -> STOP
 * (and the destination server left where it refused); the source resumed
 * to RUNNING after a failure.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "devices/vfio/vfio_mig.h"
#include "devices/vfio/vfio_user_mig.h"
#include "vmm/irq_routing.h"

#define DF      PCI_DEVFN(1, 0)
#define RAM_LEN (2U << 20)

static const struct pci_windows win = {
    .mmio32_base = 0xc0000000ULL,
    .mmio32_size = 0x10000000ULL,
    .mmio64_base = 0x1000000000ULL,
    .mmio64_size = 0x1000000000ULL,
    .io_base = 0xc000,
    .io_size = 0x1000,
};

static int s_slot_add(void *ctx, uint64_t gpa, uint64_t size, void *hva, unsigned *slot)
{
    (void)ctx, (void)gpa, (void)size, (void)hva;
    *slot = 40;
    return 0;
}

static void s_slot_remove(void *ctx, unsigned slot)
{
    (void)ctx, (void)slot;
}

static const struct vm_services svc = {.mem_slot_add = s_slot_add,
                                       .mem_slot_remove = s_slot_remove};

/* One side: a server, a bus, a function, guest RAM, a registry. */
struct side {
    pid_t pid;
    char path[108];
    struct pci_bus *bus;
    struct irq_routing *rt;
    struct gmem mem;
    struct vfio_pci *p;
    struct vfio_mig_dev m;
    struct mig_registry reg;
};

static struct side src, dst;

static void side_start(struct side *s, int n, const char *flag)
{
    const char *bin = getenv("WISP_VFIO_USER_SERVER");
    static char def[PATH_MAX];
    if (!bin || !bin[0]) {
        char exe[PATH_MAX];
        ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        cr_assert_gt(k, 0);
        exe[k] = 0;
        snprintf(def, sizeof(def), "%s/../vfio-user-server", dirname(exe));
        bin = def;
    }
    memset(s, 0, sizeof(*s));
    snprintf(s->path, sizeof(s->path), "/tmp/wisp-vfmd-%d-%d.sock", (int)getpid(), n);
    unlink(s->path);
    s->pid = fork();
    cr_assert_geq(s->pid, 0);
    if (s->pid == 0) {
        execl(bin, bin, "--socket", s->path, flag, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && access(s->path, F_OK) != 0; i++)
        usleep(10000);
    s->mem.fd = memfd_create("ram", MFD_CLOEXEC);
    cr_assert_geq(s->mem.fd, 0);
    cr_assert_eq(ftruncate(s->mem.fd, RAM_LEN), 0);
    void *hva = mmap(NULL, RAM_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, s->mem.fd, 0);
    cr_assert_neq(hva, MAP_FAILED);
    s->mem.nregions = 1;
    s->mem.total = RAM_LEN;
    s->mem.page_size = 4096;
    s->mem.regions[0] = (struct gmem_region){.gpa = 0, .size = RAM_LEN, .hva = hva};
    s->bus = pci_bus_new(&win);
    s->rt = irq_routing_new();
    cr_assert(s->bus && s->rt);
    struct vfio_pci_host h = {.bus = s->bus,
                              .routing = s->rt,
                              .vm_fd = -1,
                              .svc = &svc,
                              .mem = &s->mem,
                              .win = {0xfee00000ULL, 0x100000}};
    struct errbuf e = {0};
    cr_assert_eq(vfio_pci_create_user(&h, "pt0", s->path, NULL, DF, &s->p, &e), 0, "%s", e.msg);
    cr_assert_eq(pci_bus_assign(s->bus, &e), 0, "%s", e.msg);
    mig_registry_init(&s->reg);
    cr_assert_eq(vfio_mig_register(&s->m, s->p, 0, &s->reg, &e), 0, "%s", e.msg);
}

static void side_stop(struct side *s)
{
    if (!s->pid)
        return;
    vfio_pci_destroy(s->p);
    pci_bus_free(s->bus);
    irq_routing_free(s->rt);
    munmap(s->mem.regions[0].hva, RAM_LEN);
    close(s->mem.fd);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    unlink(s->path);
    s->pid = 0;
}

static void teardown(void)
{
    side_stop(&src);
    side_stop(&dst);
}

TestSuite(vfio_mig_dev, .fini = teardown, .timeout = 30);

static struct vfio_pci_parts parts(struct side *s)
{
    struct vfio_pci_parts pp;
    vfio_pci_parts(s->p, &pp);
    return pp;
}

static uint32_t bar0_rd(struct side *s, uint32_t reg)
{
    struct vfio_pci_parts pp = parts(s);
    uint32_t v = 0;
    cr_assert_eq(pp.ops->region_read(pp.t, 0, reg, &v, 4), 0);
    return v;
}

static void bar0_wr(struct side *s, uint32_t reg, uint32_t v)
{
    struct vfio_pci_parts pp = parts(s);
    cr_assert_eq(pp.ops->region_write(pp.t, 0, reg, &v, 4), 0);
}

static uint32_t state_of(struct side *s)
{
    uint32_t st = 0;
    cr_assert_eq(vfio_user_mig_get_state(parts(s).t, &st), 0);
    return st;
}

/* The test server's MSI-X table: BAR0 + 0x800. */
static void table_wr(struct side *s, unsigned vec, unsigned dw, uint32_t v)
{
    uint8_t b[4];
    le32_put(b, v);
    cr_assert(
        vpci_msix_bar_write(vpci_cfg_msix(parts(s).cfg), 0, 0x800 + 16U * vec + 4U * dw, b, 4));
}

static uint32_t table_rd(struct side *s, unsigned vec, unsigned dw)
{
    uint8_t b[4];
    cr_assert(
        vpci_msix_bar_read(vpci_cfg_msix(parts(s).cfg), 0, 0x800 + 16U * vec + 4U * dw, b, 4));
    return le32_get(b);
}

static uint64_t dirty_bytes;
static int count_dirty(void *ctx, uint64_t gpa, uint64_t len)
{
    (void)ctx, (void)gpa;
    dirty_bytes += len;
    return 0;
}

/* Source: programmed, quiesced, saved into *out. */
static void source_save(struct vstate_out *out)
{
    struct errbuf e = {0};
    bar0_wr(&src, 0x08, 0xdecafbad);
    table_wr(&src, 1, 0, 0xfee02000U);
    table_wr(&src, 1, 2, 0x61);
    cr_assert_eq(mig_registry_check(&src.reg, &e), 0, "%s", e.msg);
    dirty_bytes = 0;
    cr_assert_eq(mig_dirty_log(&src.reg, count_dirty, NULL, &e), 0);
    cr_assert_eq(dirty_bytes, 0, "running: nothing reported");
    cr_assert_eq(mig_quiesce(&src.reg, &e), 0, "%s", e.msg);
    cr_assert_eq(state_of(&src), VFIO_USER_MIG_STOP, "quiesced = STOP");
    cr_assert_eq(mig_dirty_log(&src.reg, count_dirty, NULL, &e), 0);
    cr_assert_eq(dirty_bytes, RAM_LEN, "quiesced: all DMA-mapped memory is dirty");
    vstate_out_init(out);
    cr_assert_eq(src.reg.devs[0].ops->save(&src.m, out), 0);
}

static int dest_load(const struct vstate_out *o, struct errbuf *e)
{
    memset(e, 0, sizeof(*e));
    return dst.reg.devs[0].ops->load(&dst.m, VFIO_MIG_VERSION, o->buf, o->len, e);
}

Test(vfio_mig_dev, device_and_vpci_state_move_to_a_fresh_server)
{
    side_start(&src, 0, NULL);
    side_start(&dst, 1, NULL);
    struct vstate_out o;
    source_save(&o);
    struct errbuf e;
    cr_assert_eq(bar0_rd(&dst, 0x08), 0, "fresh");
    cr_assert_eq(dest_load(&o, &e), 0, "%s", e.msg);
    cr_assert_eq(state_of(&dst), VFIO_USER_MIG_RUNNING);
    cr_assert_eq(bar0_rd(&dst, 0x08), 0xdecafbad, "the device state travelled");
    cr_assert_eq(table_rd(&dst, 1, 0), 0xfee02000U, "the vPCI state travelled");
    cr_assert_eq(table_rd(&dst, 1, 2), 0x61);
    /* The source may carry on after all (a snapshot): back to RUNNING. */
    mig_resume_devices(&src.reg);
    cr_assert_eq(state_of(&src), VFIO_USER_MIG_RUNNING);
    cr_assert_eq(bar0_rd(&src, 0x08), 0xdecafbad);
    vstate_out_free(&o);
}

Test(vfio_mig_dev, server_without_migration_refuses_before_anything)
{
    side_start(&src, 0, "--no-migration");
    struct errbuf e = {0};
    cr_assert_eq(mig_registry_check(&src.reg, &e), -EOPNOTSUPP);
    cr_assert(strstr(e.msg, "vfio-pci 0 cannot migrate: the vfio-user server does not support "
                            "migration"),
              "%s", e.msg);
    bar0_wr(&src, 0x08, 5);
    cr_assert_eq(bar0_rd(&src, 0x08), 5, "the device runs on");
}

Test(vfio_mig_dev, another_layout_is_refused_and_the_device_untouched)
{
    side_start(&src, 0, NULL);
    side_start(&dst, 1, NULL);
    struct vstate_out o;
    source_save(&o);
    /* The record starts with the layout text: change one character of it. */
    uint32_t n = le32_get(o.buf);
    cr_assert_gt(n, 30);
    o.buf[4 + n - 2] ^= 1;
    struct errbuf e;
    cr_assert_eq(dest_load(&o, &e), -EPROTO);
    cr_assert(strstr(e.msg, "device pt0: the stream's vPCI layout (digest 0x"), "%s", e.msg);
    cr_assert_eq(state_of(&dst), VFIO_USER_MIG_RUNNING, "never moved to RESUMING");
    vstate_out_free(&o);
}

Test(vfio_mig_dev, device_refusing_its_state_fails_the_load)
{
    side_start(&src, 0, NULL);
    side_start(&dst, 1, NULL);
    struct vstate_out o;
    source_save(&o);
    /* The blob is the record's last part; the server checks its magic. */
    uint32_t lay = le32_get(o.buf), vp = le32_get(o.buf + 4 + lay);
    size_t blob = 4 + lay + 4 + vp + 4;
    cr_assert_lt(blob, o.len);
    o.buf[blob] ^= 0xff;
    struct errbuf e;
    cr_assert_eq(dest_load(&o, &e), -EINVAL, "%s", e.msg);
    cr_assert(strstr(e.msg, "the device refused its state"), "%s", e.msg);
    cr_assert_eq(state_of(&dst), VFIO_USER_MIG_RESUMING, "left where it refused");
    /* A truncated record never reaches the device. */
    side_stop(&dst);
    side_start(&dst, 2, NULL);
    cr_assert_eq(dst.reg.devs[0].ops->load(&dst.m, 1, o.buf, o.len - 1, &e), -EBADMSG);
    cr_assert_eq(state_of(&dst), VFIO_USER_MIG_RUNNING);
    /* The source, told the migration failed, runs again. */
    mig_resume_devices(&src.reg);
    cr_assert_eq(state_of(&src), VFIO_USER_MIG_RUNNING);
    vstate_out_free(&o);
}
