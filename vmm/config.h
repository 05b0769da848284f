/*
 * VM configuration: one struct filled from the command line or from a JSON
 * file, which use the same keys (`--memory 256M` on the command line is
 * `"memory": "256M"` in JSON).  config_set() is the single place a key is
 * interpreted, so both front ends accept exactly the same values.
 */
#ifndef VMM_CONFIG_H
#define VMM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/error.h"

enum serial_mode { SERIAL_STDIO = 0, SERIAL_FILE, SERIAL_NONE };
enum boot_proto { BOOT_AUTO = 0, BOOT_LINUX64, BOOT_PVH };
enum seccomp_mode { SECCOMP_KILL = 0, SECCOMP_LOG, SECCOMP_OFF };
/* --landlock: auto applies it where the kernel offers it, on requires it. */
enum landlock_mode { LANDLOCK_AUTO = 0, LANDLOCK_ON, LANDLOCK_OFF };

/* DEV_VFIO and DEV_VFIO_USER are passthrough PCI functions (devices/vfio/vfio_pci.h). */
enum device_type {
    DEV_BLK = 1,
    DEV_NET,
    DEV_RNG,
    DEV_CONSOLE,
    DEV_VFIO,
    DEV_VFIO_USER,
    DEV_BALLOON,
    DEV_VSOCK,
    DEV_VDPA, /* a virtio-mmio device whose type and queues a vDPA device provides */
    DEV_FS,   /* virtio-fs, served by a vhost-user backend (virtiofsd) */
};

/* Is `t` a PCI passthrough function (not a virtio-mmio device)? */
#define DEV_IS_PCI(t) ((t) == DEV_VFIO || (t) == DEV_VFIO_USER)

/* The array's size; the platform description may allow fewer (arch_virtio_slots()). */
#define CONFIG_MAX_DEVICES 16
#define CONFIG_ID_MAX      20 /* also the virtio-blk GET_ID length */

/*
 * One --device: "TYPE[,key=value...]", e.g. "blk,path=disk.img,readonly=on,id=root",
 * "net,tap=tap0,mac=52:54:00:12:34:56", "rng", "console,socket=/run/vm.sock",
 * "balloon,amount_mib=64,deflate_on_oom=on,stats_polling_interval_s=1,free_page_reporting=on"
 * (Firecracker's field names; at most one balloon).
 * "vsock,cid=3,uds_path=/run/vm.vsock", "vsock,cid=3,backend=vhost" (/dev/vhost-vsock).
 * "vdpa,path=/dev/vhost-vdpa-0" (the device type comes from the vDPA device; blk today).
 * "fs,vhost-user=/run/vfs.sock,tag=share" (virtiofsd; the guest mounts -t virtiofs share).
 */
struct device_spec {
    enum device_type type;
    char id[CONFIG_ID_MAX + 1]; /* unique; defaults to TYPE + index ("blk0") */
    char
        *path; /* blk: image file; vfio: /sys/bus/pci/devices/DDDD:BB:DD.F; vdpa: its char device */
    bool readonly; /* blk */
    char *tap;     /* net: tap interface name */
    bool has_mac;  /* net */
    uint8_t mac[6];
    char *socket; /* console: UNIX socket path; NULL = stdio; vfio-user: the server's socket;
                   * blk, net, fs: the vhost-user backend's socket (blk: then path is NULL;
                   * net: then tap is NULL);
                   * vsock: uds_path */
    char *tag;    /* fs: the tag the guest mounts (1..36 bytes) */
    char *layout; /* vfio, vfio-user: a vPCI layout file (docs/VPCI_LAYOUT.md); NULL = none */
    /* balloon (devices/virtio/balloon.h) */
    uint32_t amount_mib;       /* initial target; checked against RAM when created */
    bool deflate_on_oom;       /* offer DEFLATE_ON_OOM */
    uint32_t stats_interval_s; /* 0: no statistics queue */
    bool free_page_reporting;  /* offer REPORTING */
    uint64_t cid;              /* vsock: the guest's CID (3 .. 2^32 - 2) */
    bool vhost;                /* vsock: backend=vhost, the kernel's vhost-vsock (no uds_path) */
};

#define CONFIG_DEFAULT_MEMORY (256ULL * 1024 * 1024)
#define CONFIG_MAX_MEMORY     (1ULL << 40) /* 1 TiB: far above what we test, far below overflow */

struct vm_config {
    char *kernel;    /* required */
    char *initrd;    /* optional */
    char *cmdline;   /* optional; "" if unset */
    uint64_t memory; /* bytes */
    unsigned vcpus;  /* >= 1 */
    enum serial_mode serial;
    char *serial_path;    /* for SERIAL_FILE */
    bool debug_exit;      /* enable the debug-exit port (tests) */
    bool hugepages;       /* back RAM with 2 MiB huge pages */
    enum boot_proto boot; /* how to enter the kernel */
    /* Describe the platform in ACPI tables (default).  Off: the MP table and
     * virtio_mmio.device= on the command line only, as before ACPI. */
    bool acpi;
    /* A PCI host bridge (00:00.0, conf1 ports and ECAM) for PCI devices.
     * Off by default, so machines without PCI devices stay as they were;
     * a configured PCI device will turn it on. */
    bool pci;
    char *cpu_features; /* feature mask, e.g. "-xsave,-avx2"; NULL = host-supported set */
    char *cpu_template; /* "host" (NULL) or a named template (arch/x86_64/cpu_template.h) */
    int log_level;      /* enum log_level */
    char *log_path;     /* --log-path / PUT /logger log_path: log lines go there; NULL: stderr */
    char *metrics_path; /* --metrics-path / PUT /metrics: the metrics sink (docs/METRICS.md) */
    unsigned metrics_period_ms; /* --metrics-period-ms: periodic flush (default 60000) */
    bool stats;                 /* print a statistics line on exit */
    /* Per-thread syscall filters (sandbox/sandbox.h): kill (default), log or off. */
    enum seccomp_mode seccomp;
    enum landlock_mode landlock;
    /* --api-sock: UNIX socket of the control API (docs/API.md); NULL = none. */
    char *api_sock;
    /* --snapshot-dir: where PUT /snapshot/create may write (docs/SNAPSHOT.md). */
    char *snapshot_dir;
    /* --restore STATE --restore-mem MEM [--restore-lazy]: start from a
     * snapshot instead of booting the kernel. */
    char *restore;
    char *restore_mem;
    bool restore_lazy; /* fill guest memory on demand through userfaultfd */
    /* Firecracker's PUT /snapshot/load with "resume_vm": false in the pre-boot
     * phase: the restored VM starts paused.  Not an option key. */
    bool restore_paused;
    /* --restore-wait: serve the API and wait for PUT /snapshot/load. */
    bool restore_wait;
    /* --incoming tcp:ADDR:PORT|unix:PATH: receive a live migration instead of booting. */
    char *incoming;
    unsigned ndevices;
    struct device_spec devices[CONFIG_MAX_DEVICES];
};

/* Defaults: 256 MiB, 1 vCPU, serial on stdio, auto boot protocol, ACPI on. */
void config_init(struct vm_config *c);
void config_free(struct vm_config *c);

/* How many virtio consoles use stdio (config_validate() allows at most one). */
unsigned config_stdio_consoles(const struct vm_config *c);

/*
 * Set `key` (without leading dashes) to `value`.  Boolean keys take NULL
 * (meaning true) or "on"/"off"/"true"/"false".  Unknown keys and bad values
 * fail with WISP_EXIT_USAGE and a message naming the key.
 */
int config_set(struct vm_config *c, const char *key, const char *value,
               struct errbuf *err) __must_check;

/* How many devices are virtio-mmio ones (not PCI passthrough): they take
 * the virtio slots in the order given, passthrough functions take none. */
unsigned config_virtio_devices(const struct vm_config *c);

/*
 * Does a device map guest RAM in another process or through the kernel's
 * own view of it (vhost-user blk/net/fs, vDPA, vfio-user)?  Such a VM's
 * RAM must stay the shared memfd, also when restored from a snapshot.
 */
bool config_shares_ram(const struct vm_config *c);

/* Parse one device description (the value of --device) and append it. */
int config_add_device(struct vm_config *c, const char *spec, struct errbuf *err) __must_check;

/*
 * Give the net device whose id is `id` the tap `tap` instead of its own
 * (Firecracker's network_overrides on a snapshot load).  0; -EINVAL for a
 * tap name that is not 1-15 bytes, -ENOENT when no net device has that id;
 * both WISP_EXIT_USAGE with one line.  The device is unchanged on error.
 */
int config_override_net_tap(struct vm_config *c, const char *id, const char *tap,
                            struct errbuf *err) __must_check;

/* The --device type name of `t` ("blk"), or "unknown". */
const char *config_device_type_name(enum device_type t);

/*
 * Write the canonical --device description of `d` ("blk,id=root,path=a.img,
 * readonly=on") into buf (len bytes, NUL-terminated): every field that
 * config_add_device() accepts, so that parsing the text again gives the same
 * device (vmm/config_spec.c).  -EINVAL when a value holds a ',' (the list
 * separator, so it could not be parsed back), -ENOSPC when buf is too small.
 */
int config_device_spec(const struct device_spec *d, char *buf, size_t len) __must_check;

/* Is `key` an option config_set() knows? */
bool config_key_known(const char *key);

/* Is `key` a boolean switch (takes no value on the command line)? */
bool config_key_is_flag(const char *key);

/* Merge settings from a JSON object file (keys as for config_set). */
int config_load_json(struct vm_config *c, const char *path, struct errbuf *err) __must_check;

/*
 * Read a whole configuration file (a regular file of at most 1 MiB) into a
 * malloc'd, NUL-terminated *text of *len bytes (also for --config-file).
 */
int config_read_file(const char *path, char **text, size_t *len, struct errbuf *err) __must_check;

/* Same, from a buffer (used by the file loader, unit tests and the fuzzer). */
int config_parse_json(struct vm_config *c, const char *text, size_t len,
                      struct errbuf *err) __must_check;

/* Check the whole configuration once all sources are merged. */
int config_validate(const struct vm_config *c, struct errbuf *err) __must_check;

/* Parse "256M", "1G", "1048576" (bytes), "512K"; -EINVAL on junk or overflow. */
int config_parse_size(const char *s, uint64_t *out) __must_check;

#endif /* VMM_CONFIG_H */
