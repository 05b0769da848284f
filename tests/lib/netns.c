/* Test network hosts: namespace, tap and frame reflector (see netns.h). */
#include "tests/lib/netns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int set_up(const char *ifname)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    int ret = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        ret = -errno;
    ifr.ifr_flags |= IFF_UP;
    if (!ret && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        ret = -errno;
    close(s);
    return ret;
}

bool netns_enter(char *why, unsigned whylen)
{
    if (access("/dev/net/tun", R_OK | W_OK) != 0) {
        snprintf(why, whylen, "/dev/net/tun is not available");
        return false;
    }
    if (unshare(CLONE_NEWNET) < 0) {
        snprintf(why, whylen, "unshare(CLONE_NEWNET): %s", strerror(errno));
        return false;
    }
    (void)set_up("lo");
    return true;
}

int netns_tap_create(const char *name)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    int ret = 0;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0)
        ret = -errno;
    close(fd); /* persistent: it stays for wisp to attach */
    return ret ? ret : set_up(name);
}

static pthread_t refl_thread;
static atomic_bool refl_stop;
static atomic_uint refl_count;
static int refl_fd = -1;
static uint16_t refl_type;

static void *reflect(void *arg)
{
    (void)arg;
    uint8_t frame[2048];
    while (!atomic_load(&refl_stop)) {
        struct pollfd pfd = {refl_fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        struct sockaddr_ll from;
        socklen_t flen = sizeof(from);
        ssize_t n = recvfrom(refl_fd, frame, sizeof(frame), 0, (struct sockaddr *)&from, &flen);
        /* Only frames the guest sent (not our own transmissions looping back). */
        if (n < 14 || from.sll_pkttype == PACKET_OUTGOING)
            continue;
        if (((frame[12] << 8) | frame[13]) != refl_type)
            continue;
        if (send(refl_fd, frame, (size_t)n, 0) == n)
            atomic_fetch_add(&refl_count, 1);
    }
    return NULL;
}

int netns_reflector_start(const char *ifname, uint16_t ethertype)
{
    refl_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ethertype));
    if (refl_fd < 0)
        return -errno;
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ethertype);
    sll.sll_ifindex = (int)if_nametoindex(ifname);
    if (sll.sll_ifindex == 0 || bind(refl_fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
        int e = errno ? errno : ENODEV;
        close(refl_fd);
        refl_fd = -1;
        return -e;
    }
    refl_type = ethertype;
    atomic_store(&refl_stop, false);
    atomic_store(&refl_count, 0);
    return -pthread_create(&refl_thread, NULL, reflect, NULL);
}

unsigned netns_reflector_stop(void)
{
    atomic_store(&refl_stop, true);
    pthread_join(refl_thread, NULL);
    close(refl_fd);
    refl_fd = -1;
    return atomic_load(&refl_count);
}
