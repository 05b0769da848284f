/*
 * qemu-storage-daemon as a vhost-user-blk peer for tests: a fresh raw image
 * in a private temporary directory, exported on a UNIX socket.  Why a
 * fixture: the frontend must be tested against the real backend, not a
 * mock, and every test needs the same start, wait-for-socket and teardown.
 * Test-only: failures abort the test through Criterion.
 */
#ifndef TESTS_LIB_QSD_PEER_H
#define TESTS_LIB_QSD_PEER_H

#include <stddef.h>
#include <sys/types.h>

#define QSD_PEER_BIN "/usr/bin/qemu-storage-daemon"

struct qsd_peer {
    char dir[64];
    char img[96];
    char sock[96];
    pid_t pid; /* -1 when not running */
};

/* Create the directory and an image of `bytes` zeroes, start the daemon, wait for its socket. */
void qsd_peer_start(struct qsd_peer *p, size_t bytes);
/* Start a new daemon on the same image and socket path (after qsd_peer_kill), wait for it. */
void qsd_peer_restart(struct qsd_peer *p);
/* SIGKILL the daemon now and reap it (a backend dying mid-run). */
void qsd_peer_kill(struct qsd_peer *p);
/* Stop the daemon (SIGTERM) if running and remove the directory. */
void qsd_peer_stop(struct qsd_peer *p);

#endif /* TESTS_LIB_QSD_PEER_H */
