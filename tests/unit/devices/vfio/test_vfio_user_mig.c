/*
 * vfio-user migration v2 (devices/vfio/vfio_user_mig.c): the arc table and
 * shortest paths, then a device migrated between two test servers
 * (tests/peers/vfio_user_server/): registers set on the source, state saved
 * in STOP_COPY, loaded in RESUMING on the destination, the same registers
 * read back there; and a corrupted state refused on RESUMING -> STOP.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "devices/vfio/vfio_user_mig.h"
#include "tests/peers/vfio_user_server/server.h"

TestSuite(vfio_user_mig, .timeout = 20);

Test(vfio_user_mig, arcs_and_paths)
{
    enum {
        STOP = VFIO_USER_MIG_STOP,
        RUN = VFIO_USER_MIG_RUNNING,
        SC = VFIO_USER_MIG_STOP_COPY,
        RES = VFIO_USER_MIG_RESUMING,
        PRE = VFIO_USER_MIG_PRE_COPY
    };
    cr_assert(vfio_user_mig_arc_ok(STOP, SC));
    cr_assert(vfio_user_mig_arc_ok(PRE, SC));
    cr_assert_not(vfio_user_mig_arc_ok(SC, PRE), "STOP_COPY -> PRE_COPY is blocked");
    cr_assert_not(vfio_user_mig_arc_ok(RUN, SC));
    cr_assert_not(vfio_user_mig_arc_ok(RES, RUN));
    uint32_t n;
    cr_assert_eq(vfio_user_mig_next_state(RUN, SC, &n), 0);
    cr_assert_eq(n, STOP, "RUNNING -> STOP_COPY goes through STOP");
    cr_assert_eq(vfio_user_mig_next_state(RES, RUN, &n), 0);
    cr_assert_eq(n, STOP);
    cr_assert_eq(vfio_user_mig_next_state(STOP, PRE, &n), 0);
    cr_assert_eq(n, RUN);
    cr_assert_eq(vfio_user_mig_next_state(SC, PRE, &n), 0);
    cr_assert_eq(n, STOP, "blocked arc: the long way round");
    cr_assert_eq(vfio_user_mig_next_state(STOP, STOP, &n), -EINVAL);
    cr_assert_eq(vfio_user_mig_next_state(VFIO_USER_MIG_ERROR, STOP, &n), -EINVAL);
    cr_assert_eq(vfio_user_mig_next_state(STOP, 5, &n), -EINVAL, "no P2P states in vfio-user");
    cr_assert_eq(vfio_user_mig_next_state(STOP, 1000, &n), -EINVAL);
    /* Every pair of valid states is connected, in at most 3 arcs. */
    const uint32_t all[] = {STOP, RUN, SC, RES, PRE};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            if (i == j)
                continue;
            uint32_t cur = all[i];
            int steps = 0;
            while (cur != all[j] && steps < 4) {
                cr_assert_eq(vfio_user_mig_next_state(cur, all[j], &n), 0);
                cr_assert(vfio_user_mig_arc_ok(cur, n));
                cur = n;
                steps++;
            }
            cr_assert_eq(cur, all[j]);
            cr_assert_leq(steps, 3);
        }
}

struct peer {
    pid_t pid;
    char path[108];
    struct vfio_user_client *c;
};

static void peer_start(struct peer *p, int n)
{
    const char *bin = getenv("WISP_VFIO_USER_SERVER");
    static char def[PATH_MAX];
    if (!bin || !bin[0]) {
        char exe[PATH_MAX];
        ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        cr_assert_gt(k, 0);
        exe[k] = 0;
        snprintf(def, sizeof(def), "%s/../vfio-user-server", dirname(exe));
        bin = def;
    }
    snprintf(p->path, sizeof(p->path), "/tmp/wisp-vfu-mig-%d-%d.sock", (int)getpid(), n);
    unlink(p->path);
    p->pid = fork();
    cr_assert_geq(p->pid, 0);
    if (p->pid == 0) {
        execl(bin, bin, "--socket", p->path, (char *)NULL);
        _exit(127);
    }
    int rc = -ENOENT;
    for (int i = 0; i < 500 && (rc == -ENOENT || rc == -ECONNREFUSED); i++) {
        rc = vfio_user_client_connect(p->path, 5000, &p->c);
        if (rc)
            usleep(10000);
    }
    cr_assert_eq(rc, 0);
}

static void peer_stop(struct peer *p)
{
    vfio_user_client_destroy(p->c);
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    unlink(p->path);
}

static uint32_t rd(struct peer *p, uint32_t reg)
{
    uint32_t v = 0;
    cr_assert_eq(vfio_user_client_region_read(p->c, VFIO_USER_PCI_BAR0, reg, &v, 4), 0);
    return v;
}

static void wr(struct peer *p, uint32_t reg, uint32_t v)
{
    cr_assert_eq(vfio_user_client_region_write(p->c, VFIO_USER_PCI_BAR0, reg, &v, 4), 0);
}

Test(vfio_user_mig, device_state_moves_between_servers)
{
    struct peer src, dst;
    peer_start(&src, 0);
    peer_start(&dst, 1);
    uint64_t flags = 0;
    cr_assert_eq(vfio_user_mig_flags(src.c, &flags), 0);
    cr_assert(flags & VFIO_USER_MIG_F_STOP_COPY);
    wr(&src, SRV_REG_SCRATCH, 0xfeedf00d);
    wr(&src, SRV_REG_LEN, 0x1234);
    uint32_t st;
    cr_assert_eq(vfio_user_mig_get_state(src.c, &st), 0);
    cr_assert_eq(st, VFIO_USER_MIG_RUNNING);
    cr_assert_eq(vfio_user_mig_set_state(src.c, VFIO_USER_MIG_STOP_COPY), 0);
    cr_assert_eq(vfio_user_mig_get_state(src.c, &st), 0);
    cr_assert_eq(st, VFIO_USER_MIG_STOP_COPY);
    static uint8_t blob[8192];
    size_t len = 0;
    cr_assert_eq(vfio_user_mig_save(src.c, blob, sizeof(blob), &len), 0);
    cr_assert_eq(len, SRV_MIG_SIZE);
    /* Too small a buffer is refused, not truncated (the server resends from the start). */
    cr_assert_eq(vfio_user_mig_set_state(src.c, VFIO_USER_MIG_STOP), 0);
    cr_assert_eq(vfio_user_mig_set_state(src.c, VFIO_USER_MIG_STOP_COPY), 0);
    size_t small;
    static uint8_t tiny[100];
    cr_assert_eq(vfio_user_mig_save(src.c, tiny, sizeof(tiny), &small), -ENOSPC);
    cr_assert_eq(vfio_user_mig_set_state(src.c, VFIO_USER_MIG_STOP), 0);

    cr_assert_eq(vfio_user_mig_set_state(dst.c, VFIO_USER_MIG_RESUMING), 0);
    cr_assert_eq(vfio_user_mig_load(dst.c, blob, len), 0);
    cr_assert_eq(vfio_user_mig_set_state(dst.c, VFIO_USER_MIG_RUNNING), 0);
    cr_assert_eq(rd(&dst, SRV_REG_SCRATCH), 0xfeedf00d);
    cr_assert_eq(rd(&dst, SRV_REG_LEN), 0x1234);
    cr_assert_eq(rd(&dst, SRV_REG_ID), SRV_ID_VALUE);

    /* A corrupted state: RESUMING -> STOP fails, the device stays in RESUMING. */
    cr_assert_eq(vfio_user_mig_set_state(dst.c, VFIO_USER_MIG_RESUMING), 0);
    blob[0] ^= 0xff;
    cr_assert_eq(vfio_user_mig_load(dst.c, blob, len), 0);
    cr_assert_eq(vfio_user_mig_set_state(dst.c, VFIO_USER_MIG_RUNNING), -EINVAL);
    cr_assert_eq(vfio_user_mig_get_state(dst.c, &st), 0);
    cr_assert_eq(st, VFIO_USER_MIG_RESUMING);
    /* Reset is the way out. */
    cr_assert_eq(vfio_user_client_reset(dst.c), 0);
    cr_assert_eq(vfio_user_mig_get_state(dst.c, &st), 0);
    cr_assert_eq(st, VFIO_USER_MIG_RUNNING);
    cr_assert_not(vfio_user_client_failed(dst.c));
    peer_stop(&src);
    peer_stop(&dst);
}
