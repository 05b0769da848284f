/*
 * Network test hosts for integration tests: move the calling test process
 * into a fresh network namespace, create a persistent tap there (so wisp,
 * started afterwards, can attach to it by name), and reflect the frames the
 * guest sends back to it from a thread, as a peer on the host side would.
 */
#ifndef TESTS_LIB_NETNS_H
#define TESTS_LIB_NETNS_H

#include <stdbool.h>
#include <stdint.h>

/* unshare(CLONE_NEWNET) and bring `lo` up; false (with a reason) if not possible here. */
bool netns_enter(char *why, unsigned whylen);

/* Create persistent tap `name` in the current namespace and set it up. 0 or -errno. */
int netns_tap_create(const char *name);

/* Start a thread that echoes every frame with ethertype `ethertype` seen on `ifname`. */
int netns_reflector_start(const char *ifname, uint16_t ethertype);
/* Stop it; returns the number of frames it reflected. */
unsigned netns_reflector_stop(void);

#endif /* TESTS_LIB_NETNS_H */
