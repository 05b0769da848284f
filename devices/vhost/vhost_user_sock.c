/*
 * vhost-user framing on the shared deadline-bounded fd socket layer
 * (devices/fdsock.h): a header, its size bounded, then exactly its payload.
 */
#include "devices/vhost/vhost_user_sock.h"

#include <errno.h>

#include "devices/fdsock.h"

_Static_assert(VHU_MAX_FDS <= FDSOCK_MAX_FDS, "fdsock must carry a vhost-user message's fds");

int vhu_sock_send(int sock, const uint8_t *buf, size_t len, const int *fds, unsigned nfds,
                  int timeout_ms)
{
    if (nfds > VHU_MAX_FDS)
        return -EINVAL;
    return fdsock_send(sock, buf, len, fds, nfds, fdsock_now_ms() + timeout_ms);
}

int vhu_sock_recv(int sock, uint8_t *buf, size_t cap, int *fds, unsigned max_fds, unsigned *nfds,
                  int timeout_ms)
{
    int64_t deadline = fdsock_now_ms() + timeout_ms;
    *nfds = 0;
    if (cap < VHU_HDR_SIZE)
        return -EINVAL;
    if (max_fds > VHU_MAX_FDS)
        max_fds = VHU_MAX_FDS;
    int rc = fdsock_recv_exact(sock, buf, VHU_HDR_SIZE, true, fds, max_fds, nfds, deadline);
    if (rc < 0)
        goto fail;
    struct vhu_hdr h;
    vhu_hdr_decode(buf, VHU_HDR_SIZE, &h);
    /* Bound the size before reading a byte of payload: the stream is lost either way. */
    if (h.size > VHU_MAX_PAYLOAD || h.size > cap - VHU_HDR_SIZE) {
        rc = -EMSGSIZE;
        goto fail;
    }
    rc = fdsock_recv_exact(sock, buf + VHU_HDR_SIZE, h.size, false, fds, 0, nfds, deadline);
    if (rc < 0)
        goto fail;
    return (int)(VHU_HDR_SIZE + h.size);
fail:
    fdsock_close_fds(fds, *nfds);
    *nfds = 0;
    return rc;
}
