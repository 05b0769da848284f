/*
 * A simulated kernel /dev/vhost-vsock behind struct vhost_sys_ops
 * (devices/vhost/vhost_sys.h), so devices/vhost/vhost_vsock.c runs in the
 * unit tests without the kernel module.
 *
 * It answers like drivers/vhost/{vhost,vsock}.c where the kernel enforces
 * a rule: every ioctl but SET_OWNER, GET_FEATURES and SET_GUEST_CID before
 * SET_OWNER is EPERM, a second SET_OWNER EBUSY; unknown features
 * EOPNOTSUPP; a CID below 3, above 2^32 - 2 EINVAL, one another VM holds
 * EADDRINUSE; ring size not a power of two or above 65535 EINVAL; ring
 * number, base or address changes while running EBUSY; a queue index
 * above 1 ENOBUFS; misaligned ring addresses EINVAL; SET_RUNNING with a
 * ring whose addresses were never set EFAULT.  Where the kernel accepts a
 * call whose result is wrong or unreliable it counts a "violation":
 * SET_RUNNING before SET_FEATURES, the memory table, the CID or a ring's
 * kick and call; a ring address outside the memory table's host ranges
 * (the kernel would fault on the first kick); GET_VRING_BASE while
 * running (a moving position).  Test-only.
 */
#ifndef TESTS_LIB_FAKE_VHOST_VSOCK_H
#define TESTS_LIB_FAKE_VHOST_VSOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/vhost/vhost_sys.h"

#define FAKE_VHV_FD       78
#define FAKE_VHV_MAX_REGS 8
#define FAKE_VHV_LOG      32 /* ioctls remembered in order */

struct fake_vhv_vq {
    uint32_t num;
    uint32_t base;
    bool addr_set;
    uint64_t desc, avail, used; /* host addresses */
    int kick, call;             /* -1: none */
};

struct fake_vhv {
    /* What the simulated kernel offers, and misbehaviour on request. */
    uint64_t features;      /* default: what 6.12 offers (VERSION_1, EVENT_IDX, SEQPACKET, ...) */
    uint64_t taken_cid;     /* a CID another VM holds (0: none) */
    int open_errno;         /* open fails with -open_errno */
    unsigned long fail_req; /* this ioctl fails with -fail_errno */
    int fail_errno;
    uint32_t hostile_base; /* GET_VRING_BASE answers this when non-zero */

    /* State. */
    bool open, owner, running, features_set;
    int opens, closes;
    uint64_t acked, cid;
    unsigned nregions;
    uint64_t reg_gpa[FAKE_VHV_MAX_REGS], reg_size[FAKE_VHV_MAX_REGS], reg_hva[FAKE_VHV_MAX_REGS];
    struct fake_vhv_vq vq[2];
    /* What was asked. */
    unsigned long log[FAKE_VHV_LOG];
    unsigned nlog;
    unsigned violations;
    char violation[160]; /* the last one */
};

extern const struct vhost_sys_ops fake_vhv_ops;

/* Defaults: closed, nothing set, the 6.12 feature offer, no CID taken. */
void fake_vhv_init(struct fake_vhv *f);

/* Position of the first `req` in the log, or -1. */
int fake_vhv_first(const struct fake_vhv *f, unsigned long req);

#endif /* TESTS_LIB_FAKE_VHOST_VSOCK_H */
