/*
 * Host files shared by every architecture's loader (arch_files.h): guest
 * images mapped read-only and the serial console's output file.
 */
#include "arch/common/arch_files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/config.h"

int archf_map_file(const char *path, const char *what, struct archf_map *f, struct errbuf *err)
{
    f->data = NULL;
    f->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us */
    if (fd < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "cannot open %s %s: %s", what, path,
                       strerror(errno));
    struct stat st;
    int ret = 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "%s %s is not a regular file", what, path);
        goto out;
    }
    if (st.st_size == 0) {
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "%s %s is empty", what, path);
        goto out;
    }
    if ((uint64_t)st.st_size > CONFIG_MAX_MEMORY) {
        ret = err_set(err, WISP_EXIT_USAGE, EFBIG, "%s %s is too large", what, path);
        goto out;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        ret = err_set(err, WISP_EXIT_USAGE, errno, "cannot read %s %s: %s", what, path,
                      strerror(errno));
        goto out;
    }
    f->data = p;
    f->len = (size_t)st.st_size;
out:
    close(fd);
    return ret;
}

void archf_unmap_file(struct archf_map *f)
{
    if (f->data)
        munmap(f->data, f->len);
    f->data = NULL;
    f->len = 0;
}

int archf_open_serial_output(const struct vm_config *cfg, int *fd, bool *owned, struct errbuf *err)
{
    *owned = false;
    switch (cfg->serial) {
    case SERIAL_STDIO:
        *fd = STDOUT_FILENO;
        return 0;
    case SERIAL_NONE:
        *fd = -1;
        return 0;
    case SERIAL_FILE:
        /* A VM that continues (restore, incoming migration) appends: a
         * refused stream must not wipe the log, and the console goes on. */
        *fd = open(cfg->serial_path,
                   O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
                       (cfg->restore || cfg->incoming ? O_APPEND : O_TRUNC),
                   0600);
        if (*fd < 0)
            return err_set(err, WISP_EXIT_USAGE, errno, "cannot open serial output file %s: %s",
                           cfg->serial_path, strerror(errno));
        *owned = true;
        return 0;
    }
    *fd = -1;
    return err_set(err, WISP_EXIT_USAGE, EINVAL, "bad serial mode");
}
