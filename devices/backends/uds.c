/*
 * A listening UNIX socket's file at a user-chosen path (see uds.h).
 */
#include "devices/backends/uds.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Exit class for a bind() failure: a path the user chose, or the host. */
static int bind_exit_code(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
    case EACCES:
    case EPERM:
    case EROFS:
    case ELOOP:
    case EADDRINUSE:
        return WISP_EXIT_USAGE;
    default:
        return WISP_EXIT_HOST;
    }
}

/*
 * bind() said EADDRINUSE: replace a stale socket file (nobody accepts on it,
 * typically left by a wisp that was killed), refuse anything else.
 * Returns 0 if the path was removed, or the error to report.
 */
static int clear_stale(const struct sockaddr_un *sa, const char *what, struct errbuf *err)
{
    struct stat st;
    if (lstat(sa->sun_path, &st) < 0)
        return 0; /* gone meanwhile: retry */
    if (!S_ISSOCK(st.st_mode))
        return err_set(err, WISP_EXIT_USAGE, EEXIST, "%s %s: path exists and is not a socket", what,
                       sa->sun_path);
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "%s %s: socket: %s", what, sa->sun_path,
                       strerror(errno));
    int r = connect(probe, (const struct sockaddr *)sa, sizeof(*sa));
    int e = errno;
    close(probe);
    if (r == 0 || e != ECONNREFUSED)
        return err_set(err, WISP_EXIT_USAGE, EADDRINUSE, "%s %s: in use by another process", what,
                       sa->sun_path);
    if (unlink(sa->sun_path) < 0 && errno != ENOENT)
        return err_set(err, WISP_EXIT_USAGE, errno, "%s %s: cannot remove: %s", what, sa->sun_path,
                       strerror(errno));
    return 0;
}

int uds_bind_listener(int fd, const struct sockaddr_un *sa, const char *what, struct errbuf *err)
{
    /* Linux creates the socket file with the socket inode's mode minus the
     * umask, so this gives 0600 without touching the process-wide umask. */
    if (fchmod(fd, 0600) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "%s %s: fchmod: %s", what, sa->sun_path,
                       strerror(errno));
    for (int attempt = 0;; attempt++) {
        if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
            return 0;
        int e = errno;
        if (e == EADDRINUSE && attempt == 0) {
            int ret = clear_stale(sa, what, err);
            if (ret < 0)
                return ret;
            continue;
        }
        return err_set(err, bind_exit_code(e), e, "%s %s: cannot bind: %s", what, sa->sun_path,
                       strerror(e));
    }
}
