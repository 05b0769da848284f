/* epoll-based main loop (see evloop.h).  Level-triggered, one callback per fd. */
#include "vmm/evloop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

int evloop_init(struct evloop *l)
{
    memset(l, 0, sizeof(*l));
    for (unsigned i = 0; i < EVLOOP_MAX_HANDLERS; i++)
        l->handlers[i].fd = -1;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    return l->epfd < 0 ? -errno : 0;
}

void evloop_destroy(struct evloop *l)
{
    if (l->epfd >= 0)
        close(l->epfd);
    l->epfd = -1;
}

int evloop_add(struct evloop *l, int fd, uint32_t events, evloop_fn fn, void *opaque)
{
    unsigned slot;
    for (slot = 0; slot < EVLOOP_MAX_HANDLERS; slot++)
        if (l->handlers[slot].fd < 0)
            break;
    if (slot == EVLOOP_MAX_HANDLERS)
        return -ENOSPC;
    struct epoll_event ev = {.events = events, .data.u32 = slot};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    l->handlers[slot] = (struct evloop_handler){fd, fn, opaque};
    return 0;
}

void evloop_del(struct evloop *l, int fd)
{
    for (unsigned i = 0; i < EVLOOP_MAX_HANDLERS; i++) {
        if (l->handlers[i].fd == fd) {
            (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
            l->handlers[i].fd = -1;
        }
    }
}

int evloop_run(struct evloop *l)
{
    struct epoll_event evs[16];
    while (!l->stop) {
        int n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (int i = 0; i < n && !l->stop; i++) {
            uint32_t slot = evs[i].data.u32;
            /* A handler may have removed itself or another fd in this batch. */
            if (slot >= EVLOOP_MAX_HANDLERS || l->handlers[slot].fd < 0)
                continue;
            l->handlers[slot].fn(l->handlers[slot].opaque, evs[i].events);
        }
    }
    return 0;
}

void evloop_stop(struct evloop *l)
{
    l->stop = 1;
}
