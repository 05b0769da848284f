/*
 * Binding a listening UNIX socket at a user-chosen path, the way every wisp
 * backend that listens does it (the console socket, the hybrid vsock's
 * uds_path): the file is created 0600, a stale socket file left by a killed
 * wisp is replaced, and anything else at the path (a live socket, a
 * regular file) is refused with one line.  One place, so the two listeners
 * cannot drift apart in what they dare to unlink.
 */
#ifndef VMM_UDS_H
#define VMM_UDS_H

#include <sys/un.h>

#include "vmm/error.h"

/*
 * fchmod(fd, 0600), then bind fd (an AF_UNIX socket) to sa.  On EADDRINUSE,
 * once: if the path is a socket nobody accepts on, unlink it and retry.
 * Error lines start with "<what> <path>: " (what: e.g. "console socket").
 * 0 or -errno with err set (exit code WISP_EXIT_USAGE for path problems,
 * WISP_EXIT_HOST otherwise).  Does not listen().
 */
int uds_bind_listener(int fd, const struct sockaddr_un *sa, const char *what, struct errbuf *err);

#endif /* VMM_UDS_H */
