/*
 * The per-device migration interface, and the helper that runs every
 * registered device through a stream (docs/MIGRATION_FORMAT.md §7).
 *
 * Why: every device and vCPU owns its save and restore; `migration/` owns
 * the format and the order.  The interface is shaped for the devices still
 * to come, not only the emulated ones: a passthrough (vfio) or vDPA device
 * may need to send data while the guest still runs (pre-copy), to be
 * quiesced before the stop, to report guest pages it dirtied by DMA, or to
 * refuse migration outright.  A device that cannot migrate says so, with a
 * reason, and the whole migration is refused before anything is sent:
 * there are no default no-op hooks that would drop state silently.
 *
 * Source, in order:
 *   mig_save_begin     refuse if any device cannot migrate; header, MACHINE
 *   (rounds)           RAM sections (mig_ram_put/flush), mig_save_precopy,
 *                      mig_dirty_log to find what to send next
 *   mig_quiesce        every device's quiesce hook, then the VM is stopped
 *   mig_save_finish    last RAM, every device's final state, END
 *   mig_resume_devices only if the source carries on (snapshot, failure)
 * Destination:
 *   mig_registry_reader_init, mig_load_begin (header, MACHINE, compatibility
 *   check: nothing is touched before it passes), mig_load_rest (RAM, device
 *   pre-copy data and state, END; every registered device must get its state
 *   exactly once).
 */
#ifndef MIGRATION_HOOKS_H
#define MIGRATION_HOOKS_H

#include "migration/stream.h"
#include "migration/stream_sections.h"
#include "migration/vstate.h"

/* Dirty-page callback: the range [gpa, gpa + len) must be sent again. */
typedef int (*mig_dirty_fn)(void *ctx, uint64_t gpa, uint64_t len);

struct mig_device_ops {
    const char *type;     /* "virtio-blk": messages and the MACHINE device list */
    uint32_t section_id;  /* enum mig_section_id, >= MIG_SEC_VCPU */
    uint16_t version;     /* the state version save() writes; load() reads up to it */
    uint16_t min_version; /* the oldest version load() reads (>= 1) */

    /*
     * Optional: why this instance cannot migrate now (a vfio device without
     * migration support, a vDPA device without SUSPEND), or NULL when it can.
     * A device without save/load must provide it.
     */
    const char *(*cannot_migrate)(void *dev);

    /* Append the final state (after quiesce, with the VM stopped). 0 or -errno. */
    int (*save)(void *dev, struct vstate_out *out);
    /*
     * Validate and apply a state of `version` (within [min_version, version]).
     * `buf` (len bytes, CRC checked but otherwise untrusted) is valid only
     * during the call.  On error the device is unchanged; it may record a
     * line in `err`.
     */
    int (*load)(void *dev, uint16_t version, const uint8_t *buf, size_t len, struct errbuf *err);

    /*
     * Optional, in pairs: pre-copy data sent while the guest runs (a vfio
     * device's pre-copy bytes, a large table).  precopy_save appends this
     * round's data (maybe nothing) and sets *converged when it has nothing
     * more to send before the stop; precopy_load takes one round's data.
     */
    int (*precopy_save)(void *dev, struct vstate_out *out, bool *converged);
    int (*precopy_load)(void *dev, uint16_t version, const uint8_t *buf, size_t len,
                        struct errbuf *err);

    /* Optional: stop generating state and DMA (vDPA SUSPEND, vfio STOP_COPY). */
    int (*quiesce)(void *dev);
    /*
     * Optional, the undo of quiesce: the source carries on (a snapshot that
     * resumes, a failed or cancelled migration).  Cannot fail: a device
     * that cannot pick up again must mark itself broken (DEVICE_NEEDS_RESET).
     */
    void (*resume)(void *dev);

    /* Optional: report guest pages the device dirtied (DMA) since the last call. */
    int (*dirty_log)(void *dev, mig_dirty_fn mark, void *ctx);
};

/* One registered device instance. */
struct mig_dev_entry {
    const struct mig_device_ops *ops;
    void *dev;
    uint32_t instance;
    uint8_t plane; /* enum mig_plane of this instance */
    uint8_t flags; /* MIG_DEV_F_PORTABLE when the state does not depend on the plane */
    bool loaded;   /* destination: final state applied */
};

struct mig_registry {
    uint32_t n;
    struct mig_dev_entry devs[MIG_MAX_DEVICES];
    size_t nknown; /* sections the reader knows: MACHINE, RAM, each device id once */
    struct mig_section_desc known[MIG_MAX_DEVICES + 2];
};

void mig_registry_init(struct mig_registry *reg);

/*
 * Register a device instance, in the order the state is to be saved and
 * compared.  Refused (-EINVAL, one line in err): a missing type or a bad
 * section id or versions; save or load missing without cannot_migrate; a
 * pre-copy hook without its pair; the same (section id, instance) twice; a
 * section id shared by two different ops; more than MIG_MAX_DEVICES (-ENOSPC).
 */
int mig_registry_add(struct mig_registry *reg, const struct mig_device_ops *ops, void *dev,
                     uint32_t instance, uint8_t plane, uint8_t flags,
                     struct errbuf *err) __must_check;

/*
 * Ask every device whether it can migrate.  The first that cannot ends it:
 * -EOPNOTSUPP, "migration refused: device TYPE INSTANCE cannot migrate: REASON".
 */
int mig_registry_check(const struct mig_registry *reg, struct errbuf *err) __must_check;

/* Fill m->devs and m->ndevs from the registry. */
void mig_registry_describe(const struct mig_registry *reg, struct mig_machine *m);

/* Set up a reader that knows MACHINE, RAM and every registered device's section. */
void mig_registry_reader_init(struct mig_registry *reg, struct mig_stream_reader *r,
                              const struct mig_transport *t, uint16_t arch, struct errbuf *err);

/* ---- Source ---- */

/*
 * mig_registry_check, then the header and the MACHINE section describing
 * `m` (arch, vCPUs, template, memory) with the registry's device list.
 */
int mig_save_begin(struct mig_registry *reg, struct mig_stream_writer *w,
                   const struct mig_machine *m, uint32_t stream_flags,
                   struct errbuf *err) __must_check;

/* One pre-copy round: each device with precopy_save; *converged when all are done. */
int mig_save_precopy(struct mig_registry *reg, struct mig_stream_writer *w, bool *converged,
                     struct errbuf *err) __must_check;

/* Every device's quiesce hook, in registration order. */
int mig_quiesce(struct mig_registry *reg, struct errbuf *err) __must_check;

/* Every device's resume hook, in registration order (after mig_quiesce, when
 * the source keeps running). */
void mig_resume_devices(struct mig_registry *reg);

/* Every device's dirty_log hook. */
int mig_dirty_log(struct mig_registry *reg, mig_dirty_fn mark, void *ctx,
                  struct errbuf *err) __must_check;

/* Every device's final state (MANDATORY sections), then END. */
int mig_save_finish(struct mig_registry *reg, struct mig_stream_writer *w,
                    struct errbuf *err) __must_check;

/* ---- Destination ---- */

/*
 * Read the header and the MACHINE section (which must come first), decode
 * it into *stream_m and run mig_compat_check against `local` (arch, vCPUs,
 * CPU template, memory) with the registry's device list in place of
 * local->devs.  Nothing of the destination is touched.
 */
int mig_load_begin(struct mig_registry *reg, struct mig_stream_reader *r,
                   const struct mig_machine *local, struct mig_machine *stream_m,
                   struct errbuf *err) __must_check;

/*
 * The rest of the stream: RAM sections through `sink` (checked against
 * local->mem), device pre-copy data and state to the registered devices,
 * then END and nothing after it.  Refused: a section for a device not
 * registered here, a second MACHINE, a RAM section flagged PRECOPY,
 * pre-copy data for a device without precopy_load or after its final
 * state, a device's state twice, a device with no state at END.
 */
int mig_load_rest(struct mig_registry *reg, struct mig_stream_reader *r,
                  const struct mig_machine *local, mig_ram_sink_fn sink, void *sink_ctx,
                  struct errbuf *err) __must_check;

#endif /* MIGRATION_HOOKS_H */
