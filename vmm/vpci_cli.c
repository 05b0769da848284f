/*
 * `wisp vpci derive` (vpci_cli.h): reads one passed-through function
 * through its transport, without a VM, and writes the layout file that
 * presents what wisp presents of it today (docs/VPCI_LAYOUT.md).  The output
 * is the layout's canonical form behind a comment naming its source, and
 * is checked by parsing it again before it is written.
 */
#include "vmm/vpci_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/vfio/vfio_pci.h"
#include "devices/vfio/vpci_layout.h"
#include "vmm/error.h"

static const char usage[] = "usage: wisp vpci derive --vfio /sys/bus/pci/devices/DDDD:BB:DD.F "
                            "| --vfio-user SOCKET [-o FILE]";

bool vpci_cli_is_cmd(const char *cmd)
{
    return cmd && !strcmp(cmd, "vpci");
}

/* Write all of buf to fd. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Derive, check by parsing the text again, write it to `out` (NULL: stdout). */
static int derive(bool user, const char *src, const char *out, struct errbuf *err)
{
    int ret, fd = -1;
    size_t cap = VPCI_LAYOUT_MAX_FILE;
    struct vpci_layout *l = malloc(sizeof(*l)), *again = malloc(sizeof(*again));
    char *text = malloc(cap);
    if (!l || !again || !text) {
        ret = err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
        goto done;
    }
    ret = user ? vfio_pci_derive_user(src, l, err) : vfio_pci_derive_kernel(src, l, err);
    if (ret < 0)
        goto done;
    int hdr = snprintf(text, cap, "# derived by wisp vpci derive from %s %s\n",
                       user ? "--vfio-user" : "--vfio", src);
    if (hdr < 0 || (size_t)hdr >= cap) {
        ret = err_set(err, WISP_EXIT_USAGE, ENAMETOOLONG, "derive: source name too long");
        goto done;
    }
    int n = vpci_layout_write(l, text + hdr, cap - (size_t)hdr);
    if (n < 0) {
        ret = err_set(err, WISP_EXIT_FAILURE, -n, "derive: the layout does not fit");
        goto done;
    }
    size_t len = (size_t)hdr + (size_t)n;
    ret = vpci_layout_parse(text, len, "(derived)", again, err);
    if (ret < 0)
        goto done; /* e.g. a device whose ids no layout may carry */
    fd = out ? open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644) : 1;
    if (fd < 0) {
        ret = err_set(err, WISP_EXIT_USAGE, errno, "derive: cannot create %s: %s", out,
                      strerror(errno));
        goto done;
    }
    ret = write_all(fd, text, len);
    if (ret < 0)
        err_set(err, WISP_EXIT_FAILURE, -ret, "derive: cannot write %s: %s",
                out ? out : "standard output", strerror(-ret));
done:
    if (out && fd >= 0 && close(fd) < 0 && ret == 0)
        ret = err_set(err, WISP_EXIT_FAILURE, errno, "derive: cannot write %s: %s", out,
                      strerror(errno));
    free(text);
    free(again);
    free(l);
    return ret;
}

int vpci_cli_main(int argc, char *const argv[])
{
    struct errbuf err = {0};
    const char *src = NULL, *out = NULL;
    bool user = false;
    if (argc < 3 || strcmp(argv[2], "derive") != 0) {
        fprintf(stderr, "wisp: error: %s\n", usage);
        return WISP_EXIT_USAGE;
    }
    for (int i = 3; i < argc; i++) {
        bool has = i + 1 < argc;
        if (has && !src && !strcmp(argv[i], "--vfio")) {
            src = argv[++i];
        } else if (has && !src && !strcmp(argv[i], "--vfio-user")) {
            src = argv[++i];
            user = true;
        } else if (has && !out && !strcmp(argv[i], "-o")) {
            out = argv[++i];
        } else {
            fprintf(stderr, "wisp: error: unexpected argument '%s' (%s)\n", argv[i], usage);
            return WISP_EXIT_USAGE;
        }
    }
    if (!src) {
        fprintf(stderr, "wisp: error: %s\n", usage);
        return WISP_EXIT_USAGE;
    }
    if (derive(user, src, out, &err) < 0) {
        fprintf(stderr, "wisp: error: %s\n", err.msg);
        return err.exit_code ? err.exit_code : WISP_EXIT_FAILURE;
    }
    return WISP_EXIT_OK;
}
