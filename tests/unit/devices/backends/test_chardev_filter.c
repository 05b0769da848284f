/* chardev's input filter hook: what the VMM's terminal escape relies on. */
#include "devices/backends/chardev.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Drops every 'z' and counts its calls. */
static size_t drop_z(void *ctx, uint8_t *buf, size_t len)
{
    (*(int *)ctx)++;
    size_t out = 0;
    for (size_t i = 0; i < len; i++)
        if (buf[i] != 'z')
            buf[out++] = buf[i];
    return out;
}

static struct chardev *open_pair(int *peer)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct chardev *cd;
    struct errbuf err = {0};
    cr_assert_eq(chardev_open_fds(sv[0], sv[0], &cd, &err), 0, "%s", err.msg);
    *peer = sv[1];
    return cd;
}

Test(chardev_filter, filters_in_place)
{
    int peer, calls = 0;
    struct chardev *cd = open_pair(&peer);
    chardev_set_input_filter(cd, drop_z, &calls);
    cr_assert_eq(write(peer, "azbzc", 5), 5);
    char buf[16];
    cr_assert_eq(chardev_read(cd, buf, sizeof(buf)), 3);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    cr_assert_eq(calls, 1);
    chardev_close(cd);
    close(peer);
}

Test(chardev_filter, all_swallowed_is_eagain_not_eof)
{
    int peer, calls = 0;
    struct chardev *cd = open_pair(&peer);
    chardev_set_input_filter(cd, drop_z, &calls);
    cr_assert_eq(write(peer, "zz", 2), 2);
    char buf[16];
    cr_assert_eq(chardev_read(cd, buf, sizeof(buf)), -EAGAIN);
    /* The input is still there afterwards. */
    cr_assert_eq(write(peer, "q", 1), 1);
    cr_assert_eq(chardev_read(cd, buf, sizeof(buf)), 1);
    cr_assert_eq(buf[0], 'q');
    chardev_close(cd);
    close(peer);
}

Test(chardev_filter, removed_filter_passes_everything)
{
    int peer, calls = 0;
    struct chardev *cd = open_pair(&peer);
    chardev_set_input_filter(cd, drop_z, &calls);
    chardev_set_input_filter(cd, NULL, NULL);
    cr_assert_eq(write(peer, "zz", 2), 2);
    char buf[16];
    cr_assert_eq(chardev_read(cd, buf, sizeof(buf)), 2);
    cr_assert_eq(calls, 0);
    chardev_close(cd);
    close(peer);
}
