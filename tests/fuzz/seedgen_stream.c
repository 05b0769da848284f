/*
 * Seeds of the migration stream target (fuzz_migration_stream): streams
 * written by the real writer for the target's fake destination, and the
 * RAM and MACHINE payloads on their own, so the fuzzer starts from inputs
 * that every check accepts and mutates from there.
 */
#include "tests/fuzz/fuzz.h"

#include "migration/hooks.h"
#include "migration/stream.h"
#include "migration/stream_config.h"
#include "migration/stream_sections.h"
#include "migration/vstate.h"
#include "tests/fuzz/seedgen.h"

#define SG_TARGET "migration_stream"

/* The fake destination's description (see fuzz.h). */
static void sg_machine(struct mig_machine *m)
{
    memset(m, 0, sizeof(*m));
    m->arch = MIG_ARCH_X86_64;
    m->vcpus = FZ_MIG_VCPUS;
    m->mem.n = 2;
    m->mem.r[0] = (struct mig_mem_range){0, FZ_MIG_LO_PAGES * 4096ULL};
    m->mem.r[1] = (struct mig_mem_range){FZ_MIG_HI_BASE, FZ_MIG_HI_PAGES * 4096ULL};
    m->ndevs = 3;
    m->devs[0] = (struct mig_dev_desc){"fz-a", FZ_MIG_SEC_A, 0, 2, 1, MIG_PLANE_BUILTIN, 0};
    m->devs[1] =
        (struct mig_dev_desc){"fz-a", FZ_MIG_SEC_A, 1, 2, 1, MIG_PLANE_BUILTIN, MIG_DEV_F_PORTABLE};
    m->devs[2] = (struct mig_dev_desc){"fz-pre", FZ_MIG_SEC_PRE, 0, 1, 1, MIG_PLANE_VFIO, 0};
}

static void sg_check(int e, const char *what)
{
    if (e < 0) {
        fprintf(stderr, "seedgen: %s: %d\n", what, e);
        exit(1);
    }
}

/* Emit a memory transport's bytes behind a flags byte. */
static void sg_emit_stream(const char *name, uint8_t flags, const struct mig_mem_transport *m)
{
    struct sg_buf b = {0};
    sg_u8(&b, flags);
    sg_put(&b, m->out, m->out_len);
    sg_emit(SG_TARGET, name, &b);
    sg_free(&b);
}

/* A whole migration for the fake destination: MACHINE, two RAM rounds, pre-copy, states. */
static void sg_full(struct mig_mem_transport *m)
{
    static uint8_t pages[4 * 4096];
    struct mig_transport t;
    struct mig_stream_writer w;
    struct mig_ram_writer rw;
    struct mig_machine mach;
    struct vstate_out o;
    uint8_t state[4];

    for (size_t i = 0; i < sizeof(pages); i++)
        pages[i] = i < 4096 ? 0 : (uint8_t)(i * 7);
    sg_machine(&mach);
    mig_mem_transport_init(m, &t, NULL, 0, 1 << 20);
    mig_stream_writer_init(&w, &t);
    sg_check(mig_stream_write_header(&w, MIG_ARCH_X86_64, 0), "header");
    vstate_out_init(&o);
    sg_check(mig_machine_encode(&mach, &o), "machine");
    sg_check(mig_stream_write_section(&w, MIG_SEC_MACHINE, 0, MIG_MACHINE_VERSION,
                                      MIG_SEC_F_MANDATORY, o.buf, o.len),
             "machine section");
    vstate_out_free(&o);
    mig_ram_writer_init(&rw, &w);
    sg_check(mig_ram_put(&rw, 0, pages, 4), "ram");
    sg_check(mig_ram_put(&rw, FZ_MIG_HI_BASE + 4096, pages + 4096, 2), "ram");
    sg_check(mig_ram_flush(&rw), "ram flush");
    sg_check(mig_stream_write_section(&w, FZ_MIG_SEC_PRE, 0, 1,
                                      MIG_SEC_F_MANDATORY | MIG_SEC_F_PRECOPY, "pre-copy", 8),
             "pre-copy");
    sg_check(mig_ram_put(&rw, 8 * 4096, pages + 2 * 4096, 1), "ram round 2");
    sg_check(mig_ram_flush(&rw), "ram flush");
    mig_ram_writer_free(&rw);
    for (uint32_t i = 0; i < 3; i++) {
        le32_put(state, 0x1000 + i);
        sg_check(mig_stream_write_section(&w, mach.devs[i].section_id, mach.devs[i].instance,
                                          mach.devs[i].version, MIG_SEC_F_MANDATORY, state, 4),
                 "state");
    }
    sg_check(mig_stream_write_section(&w, 0x7777, 0, 1, 0, "optional", 8), "optional");
    sg_check(mig_stream_write_end(&w), "end");
}

void sg_stream_seeds(void)
{
    struct mig_mem_transport m;
    struct mig_machine mach;
    struct vstate_out o;
    struct sg_buf b = {0};

    sg_full(&m);
    sg_emit_stream("full", FZ_MIG_MODE_LOAD, &m);
    sg_emit_stream("full-fix-crc", FZ_MIG_MODE_LOAD | FZ_MIG_F_FIX_CRC, &m);
    sg_emit_stream("reader", FZ_MIG_MODE_READER | FZ_MIG_F_FIX_CRC, &m);
    mig_mem_transport_free(&m);

    /* RAM payload: data, zero run, a page in the high range. */
    sg_u8(&b, FZ_MIG_MODE_RAM);
    sg_u64(&b, 4096);
    sg_u32(&b, 1);
    sg_u32(&b, 0);
    for (unsigned i = 0; i < 4096; i++)
        sg_u8(&b, (uint8_t)i);
    sg_u64(&b, 8192);
    sg_u32(&b, 3);
    sg_u32(&b, MIG_RAM_F_ZERO);
    sg_u64(&b, FZ_MIG_HI_BASE + 7 * 4096ULL);
    sg_u32(&b, 1);
    sg_u32(&b, MIG_RAM_F_ZERO);
    sg_emit(SG_TARGET, "ram", &b);

    sg_machine(&mach);
    strcpy(mach.cpu_template, "T2");
    vstate_out_init(&o);
    sg_check(mig_machine_encode(&mach, &o), "machine");
    sg_u8(&b, FZ_MIG_MODE_MACHINE);
    sg_put(&b, o.buf, o.len);
    sg_emit(SG_TARGET, "machine", &b);
    vstate_out_free(&o);

    /* A snapshot's CONFIG payload (mode 3 with bit 3). */
    struct mig_config cfg;
    mig_config_init(&cfg);
    sg_check(mig_config_add(&cfg, "memory", "134217728"), "config");
    sg_check(mig_config_add(&cfg, "vcpus", "2"), "config");
    sg_check(mig_config_add(&cfg, "device", "blk,id=data,path=/tmp/d.img"), "config");
    vstate_out_init(&o);
    sg_check(mig_config_encode(&cfg, &o), "config");
    sg_u8(&b, FZ_MIG_MODE_MACHINE | 8);
    sg_put(&b, o.buf, o.len);
    sg_emit(SG_TARGET, "config", &b);
    vstate_out_free(&o);
    mig_config_free(&cfg);
    sg_free(&b);
}
