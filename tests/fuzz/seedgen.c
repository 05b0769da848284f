/*
 * seedgen: writes the seed corpora in tests/fuzz/corpus/<target>/.
 *
 *   build-fuzz/seedgen OUTDIR GUEST_ELF GUEST_BZIMAGE      (make fuzz-seeds)
 *
 * Why a program: good seeds are inputs in each target's own encoding
 * (fuzz.h) that already do something meaningful, e.g. the register
 * sequence Linux's 8250 driver uses, or state blobs saved by the real
 * devices after real activity.  Writing them by hand would drift from the
 * encoding; generating them from the same header and the same device code
 * keeps them valid.  Output is deterministic, so regenerating only changes
 * files when the encoding or the devices change.  This is a developer tool:
 * unlike the targets it reads and writes real files.
 */
#include "tests/fuzz/fuzz.h"

#include <errno.h>
#include <sys/stat.h>

#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"
#include "migration/vstate.h"
#include "tests/fuzz/seedgen.h"
#include "vmm/config.h"

static const char *sg_outdir;

void sg_put(struct sg_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) {
            perror("seedgen");
            exit(1);
        }
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

void sg_u8(struct sg_buf *b, uint8_t v)
{
    sg_put(b, &v, 1);
}

void sg_u16(struct sg_buf *b, uint16_t v)
{
    uint8_t x[2];
    le16_put(x, v);
    sg_put(b, x, 2);
}

void sg_u32(struct sg_buf *b, uint32_t v)
{
    uint8_t x[4];
    le32_put(x, v);
    sg_put(b, x, 4);
}

void sg_u64(struct sg_buf *b, uint64_t v)
{
    uint8_t x[8];
    le64_put(x, v);
    sg_put(b, x, 8);
}

void sg_str(struct sg_buf *b, const char *s)
{
    sg_put(b, s, strlen(s));
}

void sg_op(struct sg_buf *b, unsigned kind, unsigned flags, uint16_t off, unsigned len,
           uint64_t val)
{
    sg_u8(b, (uint8_t)(kind | flags));
    sg_u16(b, off);
    sg_u8(b, (uint8_t)len);
    if (kind == FZ_OP_WRITE)
        for (unsigned i = 0; i < len; i++)
            sg_u8(b, (uint8_t)(val >> (8 * i)));
}

void sg_free(struct sg_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

void sg_emit(const char *target, const char *name, struct sg_buf *b)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", sg_outdir, target);
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s/seed-%s", sg_outdir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (b->len && fwrite(b->p, b->len, 1, f) != 1) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    sg_free(b);
}

int sg_read_file(const char *path, struct sg_buf *b)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    uint8_t chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        sg_put(b, chunk, n);
    fclose(f);
    return 0;
}

/* ---- boot_loader ---- */

static void sg_boot(const char *name, unsigned flags, unsigned nvcpus, const char *cmdline,
                    size_t initrd_len, const struct sg_buf *kernel, size_t kernel_len)
{
    struct sg_buf b = {0};
    sg_u8(&b, (uint8_t)flags);
    sg_u8(&b, (uint8_t)nvcpus);
    sg_u16(&b, (uint16_t)strlen(cmdline));
    sg_u32(&b, (uint32_t)initrd_len);
    sg_str(&b, cmdline);
    for (size_t i = 0; i < initrd_len; i++)
        sg_u8(&b, (uint8_t)(i * 7 + 1));
    sg_put(&b, kernel->p, MIN(kernel_len, kernel->len));
    sg_emit("boot_loader", name, &b);
}

static void sg_boot_seeds(const char *elf_path, const char *bz_path)
{
    struct sg_buf elf = {0}, bz = {0};
    if (sg_read_file(elf_path, &elf) < 0 || sg_read_file(bz_path, &bz) < 0)
        exit(1);
    const char *cl = "console=ttyS0 test=report cpus=2";
    sg_boot("elf", FZ_BOOT_ALL_PROTOS | FZ_BOOT_INITRD, 2, cl, 300, &elf, SIZE_MAX);
    sg_boot("bzimage", FZ_BOOT_ALL_PROTOS | FZ_BOOT_INITRD, 2, cl, 300, &bz, SIZE_MAX);
    /* Truncations: headers only, and cut inside the first segment / payload. */
    sg_boot("elf-headers", FZ_BOOT_ALL_PROTOS, 1, "", 0, &elf, 0x200);
    sg_boot("elf-cut", BOOT_PVH, 1, "x", 0, &elf, 0x1800);
    sg_boot("bzimage-setup", FZ_BOOT_ALL_PROTOS, 1, "", 0, &bz, 0x400);
    sg_boot("bzimage-cut", BOOT_LINUX64 | FZ_BOOT_INITRD, 4, "quiet", 0, &bz, 0x1400);
    sg_free(&elf);
    sg_free(&bz);
}

/* ---- config_json ---- */

static void sg_json(const char *name, const char *text)
{
    struct sg_buf b = {0};
    sg_str(&b, text);
    sg_emit("config_json", name, &b);
}

static void sg_json_seeds(void)
{
    sg_json("readme", "{\n  \"kernel\": \"build/guest/testguest.elf\",\n  \"memory\": \"512M\",\n"
                      "  \"vcpus\": 2,\n  \"cmdline\": \"test=report cpus=2\",\n"
                      "  \"debug-exit\": true\n}\n");
    sg_json(
        "all-keys",
        "{\"kernel\":\"k\",\"initrd\":\"i\",\"cmdline\":\"c\",\"cpu-features\":\"-xsave,-avx2\","
        "\"serial\":\"file:/x\",\"debug-exit\":false,\"hugepages\":true,\"stats\":true,"
        "\"memory\":2048,\"vcpus\":\"4\",\"boot\":\"pvh\",\"log-level\":\"debug\"}");
    sg_json("sizes", "{\"kernel\":\"k\",\"memory\":\"1GiB\",\"boot\":\"linux64\","
                     "\"serial\":\"none\",\"log-level\":\"warn\"}");
    sg_json("escapes", "{\"kernel\":\"a\\u0041\\n\\t\",\"cmdline\":\"\\\"q\\\" \\\\\"}");
    sg_json("bad-nested", "{\"kernel\":{\"a\":[1,2,{}]}}");
    sg_json("bad-trailing", "{\"kernel\":\"k\"} x");
    sg_json("bad-include", "{\"config\":\"other.json\"}");
    sg_json("bad-number", "{\"memory\":-1,\"vcpus\":1e9}");
}

/* ---- api_route: method byte, path byte (or a path up to a NUL), body ---- */

static void sg_api(const char *name, uint8_t method, uint8_t path, const char *raw_path,
                   const char *body)
{
    struct sg_buf b = {0};
    uint8_t head[2] = {method, path};
    sg_put(&b, head, 2);
    if (raw_path)
        sg_put(&b, raw_path, strlen(raw_path) + 1);
    sg_str(&b, body);
    sg_emit("api_route", name, &b);
    sg_free(&b);
}

static void sg_api_seeds(void)
{
    sg_api("get-instance", 0, 0, NULL, "");
    sg_api("machine-config", 0, 3, NULL, "");
    sg_api("pause", 1, 2, NULL, "{\"state\": \"Paused\"}");
    sg_api("resume", 1, 2, NULL, "{\"state\":\"Resumed\"}");
    sg_api("wrong-method", 2, 2, NULL, "{}");
    sg_api("extra-field", 1, 2, NULL, "{\"state\": \"Paused\", \"x\": [1, {\"y\": null}]}");
    sg_api("trailing", 1, 2, NULL, "{\"state\": \"Paused\"} {}");
    sg_api("raw-path", 0, 200, "/machine-config", "");
    sg_api("raw-path-long", 1, 201, "/vm/../vm/%2e%2e/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "{");
    sg_api("patch-logger", 1, 200, "/logger", "{\"level\": \"Debug\"}");
    sg_api("patch-logger-bad", 1, 200, "/logger", "{\"level\": \"Trace\", \"log_path\": \"/x\"}");
    sg_api("flush-metrics", 2, 200, "/actions", "{\"action_type\": \"FlushMetrics\"}");
}

/* ---- fc: mode byte, then a config file or method byte, path byte, body ---- */

static void sg_fc(const char *name, uint8_t mode, uint8_t method, uint8_t path, const char *text)
{
    struct sg_buf b = {0};
    uint8_t head[3] = {mode, method, path};
    sg_put(&b, head, mode & 1 ? 3 : 1);
    sg_str(&b, text);
    sg_emit("fc", name, &b);
    sg_free(&b);
}

static void sg_fc_seeds(void)
{
    sg_fc("file-full", 0, 0, 0,
          "{\"boot-source\": {\"kernel_image_path\": \"/k\", \"boot_args\": \"console=ttyS0\", "
          "\"initrd_path\": null}, \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": "
          "\"/r.ext4\", \"is_root_device\": true, \"is_read_only\": false, \"partuuid\": null, "
          "\"rate_limiter\": {\"bandwidth\": {\"size\": 1, \"refill_time\": 1}}}], "
          "\"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 256, \"smt\": false}, "
          "\"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", "
          "\"guest_mac\": \"06:00:ac:10:00:02\"}], \"vsock\": {\"guest_cid\": 3, "
          "\"uds_path\": \"/v.sock\"}, \"balloon\": {\"amount_mib\": 0, \"deflate_on_oom\": "
          "true}, \"logger\": {\"level\": \"Info\"}, \"metrics\": {\"metrics_path\": \"/m\"}, "
          "\"mmds-config\": null}");
    sg_fc("file-hugepages", 0, 0, 0,
          "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"machine-config\": "
          "{\"vcpu_count\": 1, \"mem_size_mib\": 256, \"huge_pages\": \"2M\"}}");
    sg_fc("file-bad-section", 0, 0, 0,
          "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"x\": 1}");
    sg_fc("put-boot-source", 1, 0, 2, "{\"kernel_image_path\": \"/k\", \"boot_args\": \"a=b\"}");
    sg_fc("put-machine-config", 1, 0, 1, "{\"vcpu_count\": 2, \"mem_size_mib\": 512}");
    sg_fc("patch-machine-config", 1, 2, 1, "{\"mem_size_mib\": 128, \"huge_pages\": \"2M\"}");
    sg_fc("put-drive", 1, 0, 3,
          "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r\", \"is_root_device\": true, "
          "\"partuuid\": \"0eaa91a0-01\", \"io_engine\": \"Async\"}");
    sg_fc("put-net", 1, 0, 6, "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}");
    sg_fc("put-vsock", 1, 0, 7, "{\"guest_cid\": 3, \"uds_path\": \"/v\"}");
    sg_fc("put-balloon", 1, 0, 8, "{\"amount_mib\": 1, \"deflate_on_oom\": false}");
    sg_fc("start", 3, 0, 11, "{\"action_type\": \"InstanceStart\"}");
    sg_fc("after-start", 7, 0, 3,
          "{\"drive_id\": \"x\", \"path_on_host\": \"/x\", \"is_root_device\": false}");
    sg_fc("raw-path", 1, 0, 200, "/drives/abc/../x");
    sg_fc("put-logger", 1, 0, 9, "{\"log_path\": \"/l\", \"level\": \"Warning\"}");
    sg_fc("patch-logger", 1, 2, 9, "{\"level\": \"Info\"}");
    sg_fc("put-metrics", 1, 0, 10, "{\"metrics_path\": \"/m\"}");
    sg_fc("flush-metrics", 1, 0, 11, "{\"action_type\": \"FlushMetrics\"}");
    sg_fc("load-net-overrides", 1, 0, 18,
          "{\"snapshot_path\": \"/s/vm.state\", \"mem_file_path\": \"/s/vm.mem\", "
          "\"network_overrides\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap1\"}, "
          "{\"iface_id\": \"net1\", \"host_dev_name\": \"tap2\"}]}");
}

/* ---- serial ---- */

enum { RBR = 0, IER = 1, IIR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

static void sg_wr(struct sg_buf *b, uint16_t reg, uint8_t v)
{
    sg_op(b, FZ_OP_WRITE, 0, reg, 1, v);
}

static void sg_rd(struct sg_buf *b, uint16_t reg)
{
    sg_op(b, FZ_OP_READ, 0, reg, 1, 0);
}

/* What Linux's 8250 driver does at probe and startup, then a console write. */
static void sg_serial_linux(struct sg_buf *b)
{
    sg_wr(b, SCR, 0xa5);
    sg_rd(b, SCR);
    sg_wr(b, LCR, 0x80); /* DLAB */
    sg_wr(b, RBR, 0x01);
    sg_wr(b, IER, 0x00);
    sg_wr(b, LCR, 0x03); /* 8N1 */
    sg_wr(b, IIR, 0xc7); /* FIFO on, clear, trigger 14 */
    sg_rd(b, IIR);
    sg_wr(b, MCR, 0x0b); /* DTR RTS OUT2 */
    sg_wr(b, IER, 0x0f);
    sg_rd(b, IIR);
    sg_rd(b, LSR);
    for (const char *s = "Linux"; *s; s++)
        sg_wr(b, RBR, (uint8_t)*s);
    sg_rd(b, IIR);
    sg_rd(b, MSR);
}

static void sg_serial_seeds(void)
{
    struct sg_buf b = {0};
    sg_serial_linux(&b);
    sg_emit("serial", "linux-init", &b);

    /* Loopback: transmit into our own FIFO until it overruns, then drain. */
    sg_wr(&b, IIR, 0x01);
    sg_wr(&b, MCR, 0x1f);
    sg_wr(&b, IER, 0x05);
    for (unsigned i = 0; i < 18; i++)
        sg_wr(&b, RBR, (uint8_t)('a' + i));
    sg_rd(&b, LSR);
    sg_op(&b, FZ_OP_STATE, FZ_OP_ARG(0), 0, 0, 0);
    for (unsigned i = 0; i < 18; i++)
        sg_rd(&b, RBR);
    sg_wr(&b, MCR, 0x08);
    sg_rd(&b, MSR);
    sg_emit("serial", "loopback", &b);

    /* Host input beyond the FIFO, read back with the interrupt enabled. */
    sg_serial_linux(&b);
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(0), 40, 0, 0);
    sg_str(&b, "0123456789abcdefghijklmnopqrstuvwxyzABCD");
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(4), 0, 0, 0);
    sg_rd(&b, IIR);
    sg_op(&b, FZ_OP_STATE, FZ_OP_ARG(0), 0, 0, 0);
    for (unsigned i = 0; i < 20; i++)
        sg_rd(&b, RBR);
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(6), 0, 0, 0);
    sg_op(&b, FZ_OP_STATE, FZ_OP_ARG(1), 0, 0, 0);
    sg_emit("serial", "host-input", &b);

    /* Odd accesses: wide, straddling the end, far offsets. */
    sg_op(&b, FZ_OP_READ, 0, 0, 8, 0);
    sg_op(&b, FZ_OP_WRITE, 0, 6, 4, 0x11223344);
    sg_op(&b, FZ_OP_READ, 0, 7, 2, 0);
    sg_op(&b, FZ_OP_WRITE, FZ_OP_FAR, 0, 8, 0x0102030405060708ULL);
    sg_op(&b, FZ_OP_READ, FZ_OP_FAR, 3, 8, 0);
    sg_op(&b, FZ_OP_READ, 0, 0x100, 1, 0);
    sg_op(&b, FZ_OP_WRITE, 0, 2, 0, 0);
    sg_emit("serial", "odd-accesses", &b);
}

/* ---- i8042 ---- */

static void sg_i8042_seeds(void)
{
    struct sg_buf b = {0};
    const unsigned data = FZ_OP_SEL(0), cmd = FZ_OP_SEL(1);
    /* Linux probe: read the command byte, write it back, read status. */
    sg_op(&b, FZ_OP_READ, cmd, 0, 1, 0);
    sg_op(&b, FZ_OP_WRITE, cmd, 0, 1, 0x20);
    sg_op(&b, FZ_OP_READ, cmd, 0, 1, 0);
    sg_op(&b, FZ_OP_READ, data, 0, 1, 0);
    sg_op(&b, FZ_OP_WRITE, cmd, 0, 1, 0x60);
    sg_op(&b, FZ_OP_STATE, FZ_OP_ARG(0), 0, 0, 0);
    sg_op(&b, FZ_OP_WRITE, data, 0, 1, 0x65);
    sg_op(&b, FZ_OP_DEV, 0, 0, 0, 0);
    sg_emit("i8042", "linux-probe", &b);

    /* reboot=k */
    sg_op(&b, FZ_OP_WRITE, cmd, 0, 1, 0xfe);
    sg_op(&b, FZ_OP_WRITE, cmd, 0, 2, 0xfefe);
    sg_op(&b, FZ_OP_WRITE, cmd, 1, 1, 0xfe);
    sg_op(&b, FZ_OP_WRITE, cmd | FZ_OP_FAR, 0, 1, 0xfe);
    sg_op(&b, FZ_OP_STATE, FZ_OP_ARG(1), 0, 0, 0);
    sg_emit("i8042", "reset", &b);

    sg_op(&b, FZ_OP_WRITE, cmd, 0, 1, 0x20);
    sg_op(&b, FZ_OP_READ, data, 0, 8, 0);
    sg_op(&b, FZ_OP_READ, cmd, 3, 4, 0);
    sg_op(&b, FZ_OP_WRITE, data, 0, 1, 0xff);
    sg_op(&b, FZ_OP_WRITE, cmd, 0, 1, 0xaa);
    sg_emit("i8042", "odd", &b);
}

/* ---- vstate ---- */

static void sg_state(struct sg_buf *b, const struct device_ops *ops, void *dev)
{
    struct vstate_out o;
    vstate_out_init(&o);
    if (ops->save(dev, &o) != 0) {
        fprintf(stderr, "seedgen: %s save failed\n", ops->type);
        exit(1);
    }
    sg_put(b, o.buf, o.len);
    vstate_out_free(&o);
}

static void sg_vstate_seeds(void)
{
    struct sg_buf b = {0};
    struct serial *s = serial_create(-1, NULL, NULL);
    struct i8042 *k = i8042_create(NULL, NULL);
    if (!s || !k)
        exit(1);

    sg_u8(&b, 0);
    sg_state(&b, &serial_device_ops, s);
    sg_emit("vstate", "serial-reset", &b);

    /* A busy UART: FIFOs on, interrupts enabled, input queued beyond the FIFO. */
    static const uint8_t regs[][2] = {{LCR, 0x80}, {RBR, 1},    {LCR, 3},
                                      {IIR, 0x81}, {MCR, 0x0b}, {IER, 0x07}};
    for (size_t i = 0; i < ARRAY_SIZE(regs); i++)
        serial_pio_write(s, regs[i][0], &regs[i][1], 1);
    static const char input[] = "input that waits in the host queue behind a full FIFO";
    (void)serial_receive(s, (const uint8_t *)input, sizeof(input) - 1);
    sg_u8(&b, 0);
    sg_state(&b, &serial_device_ops, s);
    sg_emit("vstate", "serial-busy", &b);

    /* Loopback with an overrun. */
    uint8_t v = 0x1b;
    serial_pio_write(s, MCR, &v, 1);
    sg_u8(&b, 0);
    sg_state(&b, &serial_device_ops, s);
    sg_emit("vstate", "serial-loop", &b);

    sg_u8(&b, 1);
    sg_state(&b, &i8042_device_ops, k);
    sg_emit("vstate", "i8042-reset", &b);

    v = 0x60;
    i8042_cmd_write(k, 0, &v, 1);
    sg_u8(&b, 1);
    sg_state(&b, &i8042_device_ops, k);
    sg_emit("vstate", "i8042-pending", &b);

    v = 0x20;
    i8042_cmd_write(k, 0, &v, 1);
    sg_u8(&b, 2);
    sg_state(&b, &serial_device_ops, s);
    sg_state(&b, &i8042_device_ops, k);
    sg_emit("vstate", "stream", &b);

    /* Writer program: two sections with every field type. */
    sg_u8(&b, 3);
    static const uint8_t prog[] = {
        0, 0,    1,   0,                      /* begin "serial" v1 */
        2, 0x7f, 3,   0x34, 0x12,             /* u8, u16 */
        4, 1,    2,   3,    4,                /* u32 */
        5, 1,    2,   3,    4,    5, 6, 7, 8, /* u64 */
        6, 3,    'a', 'b',  'c',  1,          /* bytes, end */
        0, 4,    9,   0,    6,    0, 1,       /* begin 16-char name v9, empty bytes, end */
    };
    sg_put(&b, prog, sizeof(prog));
    sg_emit("vstate", "writer", &b);

    /* Reader program over a real serial blob. */
    sg_u8(&b, 4);
    static const uint8_t rprog[] = {0, 0, 1, 0, 1, 0, 2, 2, 3, 6, 16, 0, 5, 4, 1, 2};
    sg_u16(&b, sizeof(rprog));
    sg_put(&b, rprog, sizeof(rprog));
    sg_state(&b, &serial_device_ops, s);
    sg_emit("vstate", "reader", &b);

    serial_destroy(s);
    i8042_destroy(k);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s OUTDIR GUEST_ELF GUEST_BZIMAGE\n", argv[0]);
        return 2;
    }
    sg_outdir = argv[1];
    if (mkdir(sg_outdir, 0755) < 0 && errno != EEXIST) {
        perror(sg_outdir);
        return 1;
    }
    sg_boot_seeds(argv[2], argv[3]);
    sg_json_seeds();
    sg_api_seeds();
    sg_fc_seeds();
    sg_serial_seeds();
    sg_i8042_seeds();
    sg_vstate_seeds();
    sg_virtio_seeds();
    sg_x86_state_seeds();
    sg_stream_seeds();
    sg_vpci_seeds();
    sg_vpci_layout_seeds();
    return 0;
}
