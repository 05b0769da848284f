/*
 * vfio-user migration v2 (see vfio_user_mig.h): the arc table, a shortest
 * path over it, and the DEVICE_FEATURE / MIG_DATA calls that walk it and
 * move the device's state.
 */
#include "devices/vfio/vfio_user_mig.h"

#include <errno.h>
#include <string.h>

#define NSTATES 7 /* state values 0..6; 5 (RUNNING_P2P) does not exist here */

static bool state_valid(uint32_t s)
{
    return s == VFIO_USER_MIG_STOP || s == VFIO_USER_MIG_RUNNING || s == VFIO_USER_MIG_STOP_COPY ||
           s == VFIO_USER_MIG_RESUMING || s == VFIO_USER_MIG_PRE_COPY;
}

bool vfio_user_mig_arc_ok(uint32_t from, uint32_t to)
{
    switch (from) {
    case VFIO_USER_MIG_STOP:
        return to == VFIO_USER_MIG_RUNNING || to == VFIO_USER_MIG_STOP_COPY ||
               to == VFIO_USER_MIG_RESUMING;
    case VFIO_USER_MIG_RUNNING:
        return to == VFIO_USER_MIG_STOP || to == VFIO_USER_MIG_PRE_COPY;
    case VFIO_USER_MIG_STOP_COPY:
    case VFIO_USER_MIG_RESUMING:
        return to == VFIO_USER_MIG_STOP;
    case VFIO_USER_MIG_PRE_COPY:
        return to == VFIO_USER_MIG_RUNNING || to == VFIO_USER_MIG_STOP_COPY;
    default:
        return false;
    }
}

int vfio_user_mig_next_state(uint32_t from, uint32_t to, uint32_t *next)
{
    if (!state_valid(from) || !state_valid(to) || from == to)
        return -EINVAL;
    /* Breadth-first search from `from`, remembering each state's first arc. */
    uint32_t first[NSTATES], queue[NSTATES];
    bool seen[NSTATES] = {false};
    unsigned head = 0, tail = 0;
    seen[from] = true;
    queue[tail++] = from;
    while (head < tail) {
        uint32_t s = queue[head++];
        for (uint32_t t = 0; t < NSTATES; t++) {
            if (seen[t] || !vfio_user_mig_arc_ok(s, t))
                continue;
            seen[t] = true;
            first[t] = s == from ? t : first[s];
            if (t == to) {
                *next = first[t];
                return 0;
            }
            queue[tail++] = t;
        }
    }
    return -EINVAL; /* unreachable with the table above */
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int vfio_user_mig_flags(struct vfio_user_client *c, uint64_t *flags)
{
    uint8_t out[8];
    size_t got = 0;
    int rc = vfio_user_client_feature(c, VFIO_USER_FEATURE_GET | VFIO_USER_FEATURE_MIGRATION, NULL,
                                      0, out, sizeof(out), &got);
    if (rc < 0)
        return rc;
    if (got != sizeof(out))
        return -EPROTO;
    *flags = (uint64_t)get32(out) | (uint64_t)get32(out + 4) << 32;
    return 0;
}

int vfio_user_mig_get_state(struct vfio_user_client *c, uint32_t *state)
{
    uint8_t out[8];
    size_t got = 0;
    int rc = vfio_user_client_feature(c, VFIO_USER_FEATURE_GET | VFIO_USER_FEATURE_MIG_STATE, NULL,
                                      0, out, sizeof(out), &got);
    if (rc < 0)
        return rc;
    uint32_t s = got == sizeof(out) ? get32(out) : UINT32_MAX;
    if (s != VFIO_USER_MIG_ERROR && !state_valid(s))
        return -EPROTO;
    *state = s;
    return 0;
}

int vfio_user_mig_set_state(struct vfio_user_client *c, uint32_t to)
{
    uint32_t cur;
    int rc = vfio_user_mig_get_state(c, &cur);
    /* Bounded: a shortest path has at most NSTATES arcs. */
    for (int steps = 0; rc == 0 && cur != to && steps < NSTATES; steps++) {
        uint32_t next;
        rc = vfio_user_mig_next_state(cur, to, &next);
        if (rc < 0)
            break;
        uint8_t in[8], out[8];
        size_t got = 0;
        put32(in, next);
        put32(in + 4, UINT32_MAX); /* data_fd -1: vfio-user moves data by messages */
        rc = vfio_user_client_feature(c, VFIO_USER_FEATURE_SET | VFIO_USER_FEATURE_MIG_STATE, in,
                                      sizeof(in), out, sizeof(out), &got);
        cur = next;
    }
    return rc == 0 && cur != to ? -EINVAL : rc;
}

int vfio_user_mig_save(struct vfio_user_client *c, uint8_t *buf, size_t cap, size_t *len)
{
    size_t done = 0;
    if (cap > VFIO_USER_MIG_STATE_MAX)
        cap = VFIO_USER_MIG_STATE_MAX;
    for (;;) {
        size_t got = 0;
        size_t want = cap - done;
        if (want == 0) {
            /* Full: one more read must come back empty, else it did not fit. */
            uint8_t probe[1];
            int rc = vfio_user_client_mig_data_read(c, probe, sizeof(probe), &got);
            if (rc < 0)
                return rc;
            if (got)
                return -ENOSPC;
            break;
        }
        int rc = vfio_user_client_mig_data_read(c, buf + done, want, &got);
        if (rc < 0)
            return rc;
        if (got == 0)
            break;
        done += got;
    }
    *len = done;
    return 0;
}

int vfio_user_mig_load(struct vfio_user_client *c, const uint8_t *buf, size_t len)
{
    const struct vfio_user_caps *caps = vfio_user_client_caps(c);
    for (size_t done = 0; done < len;) {
        size_t chunk = len - done;
        if (chunk > caps->max_data_xfer_size)
            chunk = caps->max_data_xfer_size;
        int rc = vfio_user_client_mig_data_write(c, buf + done, chunk);
        if (rc < 0)
            return rc;
        done += chunk;
    }
    return 0;
}
