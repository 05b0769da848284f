/*
 * The vfio-user client: wisp's side of a connection to a device server
 * (docs/VFIO_USER.md).  It negotiates the protocol, maps guest RAM for the
 * server, queries the device, forwards region accesses and interrupt
 * eventfds, and serves the server's DMA_READ/DMA_WRITE requests against the
 * mapped table.
 *
 * Why a self-contained module: the server is another, untrusted process.
 * Every call has a deadline; any protocol violation (a malformed or
 * unexpected message, a mismatched reply, too many fds, a stall past the
 * deadline, the server gone) marks the client failed for good, after which
 * every call returns -EIO and region reads return all-ones, as a PCI device
 * that fell off the bus would.  Nothing here aborts on the server's input.
 *
 * How wisp feeds it (the PCI passthrough function, not written yet): after
 * vm_create has laid out guest RAM, it builds one struct vfio_user_dma_range
 * per RAM region from gmem (guest-physical base, size, the memfd, the
 * region's offset in it, and wisp's host mapping), calls
 * vfio_user_client_dma_map, then reads device/region/irq info to build the
 * guest's config space and BARs; BAR and config accesses become
 * vfio_user_client_region_read/write; MSI-X/INTx eventfds (the same ones
 * bound to KVM irqfds) go through vfio_user_client_set_irqs; the socket fd
 * (vfio_user_client_fd) is watched by the event loop, which calls
 * vfio_user_client_service when the server sends a request on its own.
 *
 * Thread safety: one mutex serialises every call (vCPU threads and the
 * event loop may call concurrently); requests are not pipelined.
 */
#ifndef DEVICES_VFIO_VFIO_USER_CLIENT_H
#define DEVICES_VFIO_VFIO_USER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/vfio/vfio_user_msg.h"

/* The most guest RAM ranges one client maps. */
#define VFIO_USER_MAX_DMA_RANGES 64u

/* One guest RAM range offered to the server. */
struct vfio_user_dma_range {
    uint64_t iova;      /* guest-physical base (IOVA = GPA), 4 KiB aligned */
    uint64_t size;      /* bytes, 4 KiB aligned, > 0 */
    int fd;             /* memfd backing the range, or -1 (message DMA only) */
    uint64_t fd_offset; /* offset of iova's byte in fd */
    void *hva;          /* wisp's mapping of the range, for DMA_READ/WRITE; may be NULL */
};

struct vfio_user_client;

/*
 * Connects to the UNIX socket at path and negotiates (see
 * vfio_user_client_attach).  timeout_ms bounds every later call as well.
 * Returns 0 and *out, or a negative errno (-ENAMETOOLONG, connect's error,
 * or one of attach's).
 */
int vfio_user_client_connect(const char *path, int timeout_ms, struct vfio_user_client **out);

/*
 * Takes ownership of a connected stream socket (closed on failure too) and
 * negotiates VERSION 0.2: the server must keep major 0 and answer a minor
 * <= 2; its capabilities set the fd and transfer limits used afterwards.
 * Returns 0 and *out, -EPROTO (bad version reply), the server's error, -ETIMEDOUT, -EPIPE,
 * -ECONNRESET, -ENOMEM.
 */
int vfio_user_client_attach(int sock, int timeout_ms, struct vfio_user_client **out);

/* Closes the socket and frees the client.  NULL is allowed. */
void vfio_user_client_destroy(struct vfio_user_client *c);

/* The socket, for the caller's event loop (readable: call vfio_user_client_service). */
int vfio_user_client_fd(const struct vfio_user_client *c);

/* True once a protocol violation or a lost server has failed the client. */
bool vfio_user_client_failed(const struct vfio_user_client *c);

/* The server's capabilities as negotiated (limits already clamped to wisp's). */
const struct vfio_user_caps *vfio_user_client_caps(const struct vfio_user_client *c);

/*
 * DMA_MAPs each of the n ranges (n <= VFIO_USER_MAX_DMA_RANGES and the
 * server's max_dma_maps), passing its fd when fd >= 0, and records them for
 * serving DMA requests.  Ranges must be aligned, non-empty, non-wrapping and
 * must not overlap each other or what is already mapped (-EINVAL).  Returns
 * 0, the server's error, or -EIO.  A failure part-way leaves the earlier
 * ranges mapped and recorded.
 */
int vfio_user_client_dma_map(struct vfio_user_client *c, const struct vfio_user_dma_range *r,
                             unsigned n);

/* DMA_UNMAPs every recorded range.  Returns 0 or the first error. */
int vfio_user_client_dma_unmap_all(struct vfio_user_client *c);

/*
 * DEVICE_GET_INFO, DEVICE_GET_REGION_INFO, DEVICE_GET_IRQ_INFO.  The reply
 * must describe what was asked (same index) and stay within wisp's limits
 * (num_regions <= VFIO_USER_MAX_REGION, irq count <= VFIO_USER_MAX_IRQS),
 * else the client fails.  Region info fds (mmappable regions) are closed:
 * wisp does not mmap server regions yet.  Return 0, the server's error,
 * -EIO.
 */
int vfio_user_client_device_info(struct vfio_user_client *c, struct vfio_user_device_info *out);
int vfio_user_client_region_info(struct vfio_user_client *c, uint32_t index,
                                 struct vfio_user_region_info *out);
int vfio_user_client_irq_info(struct vfio_user_client *c, uint32_t index,
                              struct vfio_user_irq_info *out);

/*
 * REGION_READ/WRITE of len bytes at offset in region, split into transfers
 * of at most the negotiated max_data_xfer_size.  A read reply must echo the
 * request and carry exactly the bytes asked for.  On any error a read fills
 * data with 0xff.  Return 0, the server's error, or -EIO.
 */
int vfio_user_client_region_read(struct vfio_user_client *c, uint32_t region, uint64_t offset,
                                 void *data, size_t len);
int vfio_user_client_region_write(struct vfio_user_client *c, uint32_t region, uint64_t offset,
                                  const void *data, size_t len);

/*
 * SET_IRQS with eventfds: vectors start..start+count-1 of index get fds[]
 * (-1 leaves a vector unassigned), sent in chunks of the server's
 * max_msg_fds.  count 0 (fds ignored) disables the index.  Returns 0, the
 * server's error, -EINVAL (count > VFIO_USER_MAX_IRQS, or fds NULL with a
 * count), -EIO.
 */
int vfio_user_client_set_irqs(struct vfio_user_client *c, uint32_t index, uint32_t start,
                              uint32_t count, const int *fds);

/* DEVICE_RESET.  Returns 0, the server's error, -EIO. */
int vfio_user_client_reset(struct vfio_user_client *c);

/*
 * DEVICE_FEATURE: sends flags and in_len bytes; the reply's data (at most
 * out_cap bytes, else the client fails) is copied to out, its length in
 * *out_len.  Returns 0, the server's error, -EINVAL, -EIO.
 */
int vfio_user_client_feature(struct vfio_user_client *c, uint32_t flags, const void *in,
                             size_t in_len, void *out, size_t out_cap, size_t *out_len);

/*
 * MIG_DATA_READ up to cap bytes (*got: what came, less meaning "no more for
 * now") and MIG_DATA_WRITE of len bytes (<= max_data_xfer_size).  Return 0,
 * the server's error, -EINVAL, -EIO.
 */
int vfio_user_client_mig_data_read(struct vfio_user_client *c, void *buf, size_t cap, size_t *got);
int vfio_user_client_mig_data_write(struct vfio_user_client *c, const void *buf, size_t len);

/*
 * Serves requests the server sent on its own (DMA_READ/DMA_WRITE), waiting
 * at most timeout_ms for the first one; returns once none is pending.
 * The client's lock is held while it waits, so the event loop calls it with
 * timeout 0 when the socket is readable.  Returns the number served (>= 0)
 * or -EIO.
 */
int vfio_user_client_service(struct vfio_user_client *c, int timeout_ms);

#endif /* DEVICES_VFIO_VFIO_USER_CLIENT_H */
