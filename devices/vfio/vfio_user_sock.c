/*
 * vfio-user framing on the shared deadline-bounded fd socket layer
 * (devices/fdsock.h): a header, checked, then exactly its payload.
 */
#include "devices/vfio/vfio_user_sock.h"

#include <errno.h>

#include "devices/fdsock.h"

_Static_assert(VFIO_USER_MAX_FDS <= FDSOCK_MAX_FDS, "fdsock must carry a vfio-user message's fds");

int vfio_user_sock_send(int sock, const uint8_t *buf, size_t len, const int *fds, unsigned nfds,
                        int timeout_ms)
{
    if (nfds > VFIO_USER_MAX_FDS)
        return -EINVAL;
    return fdsock_send(sock, buf, len, fds, nfds, fdsock_now_ms() + timeout_ms);
}

int vfio_user_sock_recv(int sock, uint8_t *buf, size_t cap, int *fds, unsigned max_fds,
                        unsigned *nfds, struct vfio_user_hdr *h, int timeout_ms)
{
    int64_t deadline = fdsock_now_ms() + timeout_ms;
    *nfds = 0;
    if (cap < VFIO_USER_HDR_SIZE)
        return -EINVAL;
    if (max_fds > VFIO_USER_MAX_FDS)
        max_fds = VFIO_USER_MAX_FDS;
    int rc = fdsock_recv_exact(sock, buf, VFIO_USER_HDR_SIZE, true, fds, max_fds, nfds, deadline);
    if (rc < 0)
        goto fail;
    rc = vfio_user_hdr_decode(buf, VFIO_USER_HDR_SIZE, h);
    if (rc == -ENOTSUP && h->size <= cap) {
        /* Consume the unknown message so the stream stays in step. */
        int rc2 = fdsock_recv_exact(sock, buf + VFIO_USER_HDR_SIZE, h->size - VFIO_USER_HDR_SIZE,
                                    false, fds, 0, nfds, deadline);
        rc = rc2 < 0 ? rc2 : -ENOTSUP;
        goto fail;
    }
    if (rc < 0)
        goto fail;
    if (h->size > cap) {
        rc = -EMSGSIZE;
        goto fail;
    }
    rc = fdsock_recv_exact(sock, buf + VFIO_USER_HDR_SIZE, h->size - VFIO_USER_HDR_SIZE, false, fds,
                           0, nfds, deadline);
    if (rc < 0)
        goto fail;
    return 0;
fail:
    fdsock_close_fds(fds, *nfds);
    *nfds = 0;
    return rc;
}
