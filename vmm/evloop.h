/*
 * The main thread's event loop: an epoll set of file descriptors, each with a
 * callback.  Serial input, the stop eventfd and (later) the control socket
 * and device backends live here; vCPU threads never block on it.
 */
#ifndef VMM_EVLOOP_H
#define VMM_EVLOOP_H

#include <stdint.h>

#include "vmm/util.h"

#define EVLOOP_MAX_HANDLERS 64

/* Called with the epoll event mask (EPOLLIN, EPOLLHUP, ...). */
typedef void (*evloop_fn)(void *opaque, uint32_t events);

struct evloop_handler {
    int fd;
    evloop_fn fn;
    void *opaque;
};

struct evloop {
    int epfd;
    int stop; /* set by evloop_stop() */
    struct evloop_handler handlers[EVLOOP_MAX_HANDLERS];
};

int evloop_init(struct evloop *l) __must_check;
void evloop_destroy(struct evloop *l);

/* Watch `fd` for `events`; -ENOSPC if full, -errno from epoll_ctl. */
int evloop_add(struct evloop *l, int fd, uint32_t events, evloop_fn fn, void *opaque) __must_check;
/* Stop watching `fd` (ignored if unknown). */
void evloop_del(struct evloop *l, int fd);

/* Wait for and dispatch events until evloop_stop(); returns 0 or -errno. */
int evloop_run(struct evloop *l);
void evloop_stop(struct evloop *l);

#endif /* VMM_EVLOOP_H */
