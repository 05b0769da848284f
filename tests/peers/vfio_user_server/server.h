/*
 * The vfio-user test device server (docs/VFIO_USER.md, "The test server"):
 * what main.c (socket, protocol dispatch, misbehaviour modes), device.c
 * (the PCI function: config space, BAR0 registers, DMA engine, interrupts)
 * and mig.c (migration v2: device state machine and state data)
 * share.  A test peer, written for wisp's client tests; not shipped.
 */
#ifndef TESTS_PEERS_VFIO_USER_SERVER_SERVER_H
#define TESTS_PEERS_VFIO_USER_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/vfio/vfio_user_msg.h"

/* PCI identity: Red Hat's QEMU vendor id with a device id we picked for tests. */
#define SRV_VENDOR_ID 0x1b36
#define SRV_DEVICE_ID 0x10f7

/* BAR0 registers (32-bit, little-endian, 4-byte accesses). */
#define SRV_BAR0_SIZE    4096u
#define SRV_REG_ID       0x00 /* RO: SRV_ID_VALUE */
#define SRV_REG_REV      0x04 /* RO: 1 */
#define SRV_REG_SCRATCH  0x08 /* RW */
#define SRV_REG_SRC_LO   0x10 /* DMA source IOVA */
#define SRV_REG_SRC_HI   0x14
#define SRV_REG_DST_LO   0x18 /* DMA destination IOVA */
#define SRV_REG_DST_HI   0x1c
#define SRV_REG_LEN      0x20 /* DMA length, <= SRV_DMA_MAX */
#define SRV_REG_CMD      0x24 /* W: SRV_CMD_* */
#define SRV_REG_STATUS   0x28 /* RO: SRV_STATUS_* or SRV_STATUS_ERR | errno */
#define SRV_REG_CSUM     0x2c /* RO: FNV-1a 32 of the bytes copied */
#define SRV_REG_IRQS     0x30 /* RO: interrupts raised so far */
#define SRV_MSIX_TABLE   0x800
#define SRV_MSIX_PBA     0xc00
#define SRV_MSIX_VECTORS 4u

#define SRV_ID_VALUE    0x77697370u /* "wisp" */
#define SRV_CMD_START   1u          /* copy LEN bytes from SRC to DST */
#define SRV_CMD_MESSAGE 2u          /* ... through DMA_READ/WRITE messages, not mmap */
#define SRV_STATUS_IDLE 0u
#define SRV_STATUS_DONE 1u
#define SRV_STATUS_ERR  0x80000000u
#define SRV_DMA_MAX     (1u << 20)
#define SRV_CONFIG_SIZE 256u
#define SRV_MAX_MAPS    64u
#define SRV_MIG_SIZE    (4u + SRV_BAR0_SIZE + SRV_CONFIG_SIZE) /* magic, BAR0, config */

/* FNV-1a, 32 bits: the checksum the DMA engine reports. */
uint32_t srv_fnv1a(const uint8_t *p, size_t n);

/* One DMA_MAP'd range; host is the server's mmap of the client's fd, or NULL. */
struct srv_map {
    uint64_t iova, size;
    uint8_t *host;
};

struct srv {
    int sock;
    uint16_t next_id;
    struct srv_map maps[SRV_MAX_MAPS];
    unsigned nmaps;
    int intx_fd;
    int msix_fd[SRV_MSIX_VECTORS];
    uint32_t bar0[SRV_BAR0_SIZE / 4];
    uint8_t config[SRV_CONFIG_SIZE];
    bool no_migration;  /* --no-migration: DEVICE_FEATURE MIGRATION is unsupported */
    uint32_t mig_state; /* VFIO_USER_MIG_*, RUNNING at start */
    uint8_t mig_buf[SRV_MIG_SIZE];
    size_t mig_len, mig_pos;
};

/* Puts the device in its power-on state (registers and config space). */
void srv_device_reset(struct srv *s);

/*
 * Region access from the client: region VFIO_USER_PCI_BAR0 or
 * VFIO_USER_PCI_CONFIG.  Returns 0 or a negative errno for the error reply.
 */
int srv_region_read(struct srv *s, uint32_t region, uint64_t off, uint8_t *data, uint32_t n);
int srv_region_write(struct srv *s, uint32_t region, uint64_t off, const uint8_t *data, uint32_t n);

/*
 * A DMA_READ (is_write false) or DMA_WRITE request to the client for
 * [addr, addr + n), waiting for its reply (main.c).  Returns 0 or a negative
 * errno (the client's error reply, or a lost connection).
 */
int srv_dma_msg(struct srv *s, bool is_write, uint64_t addr, uint8_t *buf, uint32_t n);

/*
 * Migration (mig.c): DEVICE_FEATURE for MIGRATION and MIG_DEVICE_STATE
 * (reply data in out, at most 8 bytes), MIG_DATA_READ of up to size bytes
 * (in STOP_COPY), MIG_DATA_WRITE (in RESUMING).  Return 0 or a negative
 * errno for the error reply.
 */
int srv_feature(struct srv *s, const struct vfio_user_feature *f, uint8_t *out, uint32_t *out_len);
int srv_mig_read(struct srv *s, uint32_t size, uint8_t *out, uint32_t *got);
int srv_mig_write(struct srv *s, const uint8_t *data, uint32_t size);

#endif /* TESTS_PEERS_VFIO_USER_SERVER_SERVER_H */
