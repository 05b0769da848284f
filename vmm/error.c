/* err_set(): the single place an error report is recorded (see error.h). */
#include "vmm/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int err_set(struct errbuf *e, int exit_code, int err, const char *fmt, ...)
{
    if (e && !err_isset(e)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
        if (e->msg[0] == '\0')
            snprintf(e->msg, sizeof(e->msg), "unknown error");
        /* Messages quote user and image data: keep them one printable line
         * (no newline, no terminal escape sequences). */
        for (char *c = e->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
        e->exit_code = exit_code;
    }
    return err > 0 ? -err : -EINVAL;
}
