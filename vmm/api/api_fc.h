/*
 * Firecracker's pre-boot phase (docs/API.md, "Firecracker compatibility"):
 * the resources a Firecracker client PUTs before InstanceStart
 * (/machine-config, /boot-source, /drives/{id}, /network-interfaces/{id},
 * /vsock, /balloon, /logger, /metrics, /actions) and Firecracker's JSON
 * config file layout (--config-file), both applied to one struct vm_config
 * with the functions the command line uses (config_set, config_add_device).
 *
 * Why its own header: the running VM's router (api.h) knows nothing of
 * vm_config; only the pre-boot phase and the config-file loader do.  Like
 * api_route.c everything here is pure: no socket, no KVM, so unit tests
 * and the fuzzer drive it directly.
 */
#ifndef VMM_API_API_FC_H
#define VMM_API_API_FC_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "vmm/api/api.h"
#include "vmm/config.h"

/* Firecracker's answer to a pre-boot resource once the VM runs. */
#define API_FC_AFTER_START "The requested operation is not supported after starting the microVM."
/* A runtime resource (PATCH /vm, snapshots, ...) before InstanceStart. */
#define API_FC_NOT_RUNNING "the microVM is not running (PUT /actions InstanceStart first)"

#define API_FC_MAX_VCPUS 32         /* Firecracker's limit for vcpu_count */
#define API_FC_MAX_MIB   (1U << 20) /* mem_size_mib: 1 TiB, CONFIG_MAX_MEMORY */

/* Firecracker's answer to PUT /snapshot/load after a machine resource was configured. */
#define API_FC_LOAD_AFTER_CONFIG                                                                   \
    "Loading a microVM snapshot not allowed after configuring boot-specific resources."

/* A drive_id or iface_id: 1-CONFIG_ID_MAX letters, digits, '-' or '_'. */
bool api_fc_id_ok(const char *id);

/* network_overrides: at most one per net device; a tap name is 1-15 bytes. */
#define API_FC_MAX_NET_OVERRIDES CONFIG_MAX_DEVICES
#define API_FC_TAP_MAX           15
struct api_fc_net_override {
    char iface_id[CONFIG_ID_MAX + 1];       /* a network interface of the snapshot */
    char host_dev_name[API_FC_TAP_MAX + 1]; /* the tap it uses here instead */
};

/* A pre-boot PUT /snapshot/load, checked (absolute paths, File backend). */
struct api_fc_load {
    const char *state_path; /* snapshot_path */
    const char *mem_path;   /* mem_backend.backend_path or mem_file_path */
    bool resume;            /* resume_vm */
    unsigned nnet;          /* network_overrides, distinct iface_ids, copied */
    struct api_fc_net_override net[API_FC_MAX_NET_OVERRIDES];
};

/* The pre-boot state: what the requests have set so far. */
struct api_fc {
    struct vm_config *cfg; /* filled by the requests; owned by the caller */
    bool has_boot_source;
    bool started;                    /* InstanceStart or a snapshot load was accepted */
    bool configured;                 /* a machine, boot or device resource was PUT */
    bool load_failed;                /* a load was tried and failed: wisp ends after the answer */
    char root_id[CONFIG_ID_MAX + 1]; /* the drive with is_root_device, or "" */
    char root_partuuid[40];          /* its partuuid, or "" for /dev/vda */
    bool root_ro;                    /* is_read_only of the root drive */
    /*
     * Called by InstanceStart once the configuration is complete and valid
     * (NULL: just mark the instance started).  0, or -errno with one line
     * in `why`; then the answer is 400 with it and nothing is started.
     */
    int (*start)(void *ctx, char *why, size_t whylen);
    /*
     * Called by PUT /snapshot/load before anything was configured (NULL: the
     * load is refused).  Rebuilds the configuration from the snapshot.  0,
     * or -errno with one line in `why`; either way the instance is then
     * started (on failure wisp ends once the 400 is sent, as a failed
     * --restore-wait load does).
     */
    int (*load)(void *ctx, const struct api_fc_load *req, char *why, size_t whylen);
    /* Called once the answer to the accepted InstanceStart or load is sent (may be NULL). */
    void (*answered)(void *ctx);
    void *ctx;
};

/* Start an empty pre-boot state on `cfg` (which keeps its other settings). */
void api_fc_init(struct api_fc *fc, struct vm_config *cfg);

/*
 * Answer one pre-boot request (before and after InstanceStart: after it,
 * configuration requests are refused with API_FC_AFTER_START).  Same
 * contract as api_route(): 0 with *out filled (the caller frees out->body),
 * or -ENOMEM.
 */
int api_fc_route(struct api_fc *fc, const char *method, const char *path, const char *body,
                 size_t len, struct api_reply *out) __must_check;

/*
 * The running VM's answer to the pre-boot resources (called by api_route()
 * before its 404): PUT /boot-source, /drives/{id}, /machine-config... are
 * 400 API_FC_AFTER_START; PUT /actions: FlushMetrics 204, InstanceStart
 * 400, SendCtrlAltDel 204 through ctl->send_ctrl_alt_del (400 with the
 * reason when refused, 409 while stopping; ctl may be NULL: refused).
 * 0 or -ENOMEM with *out filled; 1 if `path` is none of them (out untouched).
 */
int api_fc_runtime(const struct vm_control *ctl, const char *method, const char *path,
                   const char *body, size_t len, struct api_reply *out) __must_check;

/*
 * Apply one section of a Firecracker configuration, as a PUT of the same
 * resource would: `section` is a resource name ("machine-config",
 * "boot-source", "drives", "network-interfaces", "vsock", "balloon",
 * "logger", "metrics"), `id` the path's id for drives and interfaces
 * (NULL: take it from the body).  0, or -EINVAL / -ENOENT (no such
 * section) with a fault message in *msg (maybe in buf).
 */
int api_fc_apply(struct api_fc *fc, const char *section, const char *id, json_object *o, char *buf,
                 size_t buflen, const char **msg) __must_check;

/*
 * PATCH /logger {"level": "Debug"} (wisp's addition: Firecracker's /logger
 * is PUT before start only): the level changes at once, for every thread
 * (log_threshold), and in `cfg` too when not NULL (pre-boot).  Only
 * "level", required, Firecracker's names.  0 or -EINVAL with *msg.
 */
int api_fc_logger_level(struct vm_config *cfg, json_object *o, char *buf, size_t buflen,
                        const char **msg) __must_check;

#define API_FC_PATH_MAX 4096 /* log_path, metrics_path */

/* PATCH /machine-config: the fields of the PUT, none required; 0 or -EINVAL. */
int api_fc_patch_machine(struct api_fc *fc, json_object *o, char *buf, size_t buflen,
                         const char **msg) __must_check;

/*
 * What InstanceStart does before starting: check a boot source was given,
 * put the root drive first and add root= to the command line, then
 * config_validate().  0, or -EINVAL with the message in buf.
 */
int api_fc_finish(struct api_fc *fc, char *buf, size_t buflen) __must_check;

/*
 * --config-file: Firecracker's JSON layout, one object whose keys are the
 * sections above ("drives" and "network-interfaces" are arrays), applied
 * to `cfg` and finished (api_fc_finish).  Errors are WISP_EXIT_USAGE with
 * a message naming the section (api_fc_file.c).
 */
int api_fc_config_parse(struct vm_config *cfg, const char *text, size_t len,
                        struct errbuf *err) __must_check;

/* The same, from a file (read as config_load_json reads one). */
int api_fc_config_load(struct vm_config *cfg, const char *path, struct errbuf *err) __must_check;

#endif /* VMM_API_API_FC_H */
