/*
 * vhost-user frontend: one connection to a backend process serving a
 * virtio device's rings (docs/VHOST.md).
 *
 * Why its own module: the codec (vhost_user_msg.h) and the socket layer
 * (vhost_user_sock.h) only move and judge bytes; this file owns the
 * conversation: the handshake in the order vhost-user backends expect, the
 * memory table built from guest RAM's memfd, ring setup and stop.  It knows
 * nothing of MMIO, KVM or the event loop, so the same connection serves the
 * data-plane code and the host-side tests against qemu-storage-daemon.
 *
 * Trust: the backend is hostile.  Every request has a deadline
 * (timeout_ms), every reply goes through vhu_reply_parse(), and the first
 * error of any kind (timeout, EOF, malformed reply, a NACK) marks the
 * connection dead: the socket is shut down and every later call returns
 * -ECONNRESET at once, so a caller can never block on a broken backend
 * twice.  Not thread-safe: one caller at a time (the device lock).
 */
#ifndef DEVICES_VHOST_VHOST_USER_H
#define DEVICES_VHOST_VHOST_USER_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/vhost/vhost_user_msg.h"
#include "vmm/gmem.h"

/* Default deadline of one request and its reply. */
#define VHU_DEFAULT_TIMEOUT_MS 5000

/* Protocol features wisp asks for (intersected with the backend's). */
#define VHU_WANTED_PROTOCOL                                                                        \
    ((1ull << VHU_PF_MQ) | (1ull << VHU_PF_REPLY_ACK) | (1ull << VHU_PF_CONFIG) |                  \
     (1ull << VHU_PF_INFLIGHT_SHMFD))

struct vhu_conn {
    int sock;                   /* -1 when not connected */
    int timeout_ms;             /* per request */
    bool dead;                  /* an error happened: every call fails with -ECONNRESET */
    int err;                    /* the error that killed it (negative errno), 0 if alive */
    uint64_t backend_features;  /* GET_FEATURES */
    uint64_t protocol_features; /* negotiated: backend's & VHU_WANTED_PROTOCOL */
    uint32_t queue_num;         /* GET_QUEUE_NUM with MQ, else 1 (capped at VHU_MAX_QUEUES) */
    uint8_t buf[VHU_HDR_SIZE + VHU_MAX_PAYLOAD];
};

/* One ring's setup; addresses are wisp's host addresses (no IOMMU). */
struct vhu_vring {
    uint16_t size;
    uint16_t base; /* next avail index the backend will read */
    uint64_t desc, avail, used;
    int kick_fd; /* eventfd the driver's notifications arrive on (the ioeventfd) */
    int call_fd; /* eventfd the backend signals used buffers on */
};

/*
 * Connects to the backend listening on the UNIX socket `path` within
 * timeout_ms (<= 0: VHU_DEFAULT_TIMEOUT_MS), which also becomes the
 * per-request deadline.  Returns 0 or -errno (-ENAMETOOLONG, -ECONNREFUSED,
 * -ENOENT, -ETIMEDOUT...); on failure c->sock is -1.
 */
int vhu_connect(struct vhu_conn *c, const char *path, int timeout_ms);

/* Takes an already connected stream socket (tests, inherited fds); c owns it. */
void vhu_adopt(struct vhu_conn *c, int sock, int timeout_ms);

/*
 * The handshake up to the device's configuration, in the order of
 * docs/VHOST.md: GET_FEATURES; if the backend has PROTOCOL_FEATURES,
 * GET_PROTOCOL_FEATURES and SET_PROTOCOL_FEATURES (ours & theirs); with MQ
 * GET_QUEUE_NUM; SET_OWNER.  Returns 0 or -errno; -EPROTONOSUPPORT if the
 * backend lacks PROTOCOL_FEATURES or VERSION_1 (wisp requires both).
 */
int vhu_handshake(struct vhu_conn *c);

/* Has protocol feature `bit` been negotiated? */
static inline bool vhu_has_protocol(const struct vhu_conn *c, unsigned bit)
{
    return (c->protocol_features >> bit) & 1;
}

/*
 * GET_CONFIG of `size` (<= VHU_MAX_CONFIG) bytes at `offset` into out.
 * -ENOTSUP if CONFIG was not negotiated, -EIO if the backend answers
 * with size 0, other -errno as above.
 */
int vhu_get_config(struct vhu_conn *c, uint32_t offset, uint32_t size, void *out);
/* SET_CONFIG (driver write to config space); -ENOTSUP without CONFIG. */
int vhu_set_config(struct vhu_conn *c, uint32_t offset, uint32_t size, const void *data);

/*
 * SET_FEATURES with the driver's acked features plus PROTOCOL_FEATURES.
 * -EINVAL if `features` holds a bit the backend did not offer.
 */
int vhu_set_features(struct vhu_conn *c, uint64_t features);

/*
 * SET_MEM_TABLE with every region of gm and its memfd (mmap offsets from
 * the regions).  -EINVAL if gm has no memfd (a privately mapped snapshot
 * restore) or more than VHU_MAX_REGIONS regions.
 */
int vhu_set_mem_table(struct vhu_conn *c, const struct gmem *gm);

/*
 * Ring `idx` (< queue_num): SET_VRING_NUM, ADDR, BASE, CALL, KICK (the kick
 * fd starts the ring), then SET_VRING_ENABLE(1).  The fds are sent, not
 * kept: the caller still owns them.
 */
int vhu_vring_start(struct vhu_conn *c, uint32_t idx, const struct vhu_vring *v);

/*
 * Stops ring `idx`: SET_VRING_ENABLE(0), then GET_VRING_BASE, which stops
 * the ring (the backend drains its in-flight requests first) and returns
 * the next avail index in *base.  The reply must name the same ring and a
 * base below 65536.
 */
int vhu_vring_stop(struct vhu_conn *c, uint32_t idx, uint16_t *base);

/*
 * GET_INFLIGHT_FD (needs INFLIGHT_SHMFD): the backend creates the shared
 * area in which it records the requests it has taken but not completed,
 * for `num_queues` rings of `queue_size`.  On success *fd is the area's fd
 * (the caller owns it and keeps it for as long as the device runs, across
 * backend restarts) and *out its description, which must echo num_queues
 * and queue_size (-EPROTO otherwise).
 */
int vhu_get_inflight(struct vhu_conn *c, uint16_t num_queues, uint16_t queue_size, int *fd,
                     struct vhu_inflight *out);

/*
 * SET_INFLIGHT_FD: hand the area (fd and description, as GET_INFLIGHT_FD
 * gave them) to a backend, before its rings start, so that a restarted
 * backend resubmits the requests that were in flight when the last one died.
 */
int vhu_set_inflight(struct vhu_conn *c, int fd, const struct vhu_inflight *in);

/* Closes the socket; the struct may be reconnected afterwards. */
void vhu_disconnect(struct vhu_conn *c);

#endif /* DEVICES_VHOST_VHOST_USER_H */
