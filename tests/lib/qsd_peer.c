/* qemu-storage-daemon vhost-user-blk peer for tests (see qsd_peer.h). */
#include "tests/lib/qsd_peer.h"

#include <criterion/criterion.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

void qsd_peer_start(struct qsd_peer *p, size_t bytes)
{
    cr_assert_eq(access(QSD_PEER_BIN, X_OK), 0, QSD_PEER_BIN " is missing: run scripts/setup.sh");
    strcpy(p->dir, "/tmp/wisp-vhu-XXXXXX");
    cr_assert_not_null(mkdtemp(p->dir));
    snprintf(p->img, sizeof(p->img), "%s/disk.img", p->dir);
    snprintf(p->sock, sizeof(p->sock), "%s/vub.sock", p->dir);
    int fd = open(p->img, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)bytes), 0);
    close(fd);
    qsd_peer_restart(p);
}

void qsd_peer_restart(struct qsd_peer *p)
{
    unlink(p->sock); /* a killed daemon leaves its socket file behind */
    char bd[256], ex[256];
    snprintf(bd, sizeof(bd), "driver=file,node-name=d,filename=%s", p->img);
    snprintf(ex, sizeof(ex),
             "type=vhost-user-blk,id=e,node-name=d,addr.type=unix,addr.path=%s,writable=on",
             p->sock);
    p->pid = fork();
    cr_assert_geq(p->pid, 0);
    if (p->pid == 0) {
        /* Die with the test: a test killed by its timeout must not leave a daemon behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execl(QSD_PEER_BIN, QSD_PEER_BIN, "--blockdev", bd, "--export", ex, (char *)NULL);
        _exit(127);
    }
    /* The socket file appears at bind(), before listen(): wait until a connection is accepted
     * (the daemon takes repeated connections, so this probe costs nothing). */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p->sock);
    for (int i = 0; i < 400; i++) { /* up to 10 s */
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(s, 0);
        int rc = connect(s, (struct sockaddr *)&sa, sizeof(sa));
        close(s);
        if (rc == 0)
            return;
        int status;
        cr_assert_eq(waitpid(p->pid, &status, WNOHANG), 0, "qemu-storage-daemon exited early");
        usleep(25000);
    }
    cr_assert_fail("qemu-storage-daemon did not create %s", p->sock);
}

void qsd_peer_kill(struct qsd_peer *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
    }
    p->pid = -1;
}

void qsd_peer_stop(struct qsd_peer *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        waitpid(p->pid, NULL, 0);
    }
    p->pid = -1;
    unlink(p->sock);
    unlink(p->img);
    rmdir(p->dir);
}
