/*
 * What the two halves of libwisp (libwisp_config.c, libwisp_vm.c) share:
 * the layout behind the public opaque struct wisp_config and the helpers
 * that turn wisp's internal error reports into a struct wisp_error.  Not
 * installed: include/wisp/wisp.h is the public interface.
 */
#ifndef VMM_LIBWISP_LIBWISP_INTERNAL_H
#define VMM_LIBWISP_LIBWISP_INTERNAL_H

#include "include/wisp/wisp.h"
#include "vmm/config.h"
#include "vmm/error.h"

#include <stdarg.h>

struct wisp_config {
    struct vm_config cfg;
};

/*
 * Fill `err` (if not NULL) with -|code| and the formatted message; returns
 * -|code|, so callers write `return lw_fail(err, ENOENT, ...)`.
 */
int lw_fail(struct wisp_error *err, int code, const char *fmt, ...) __printf(3, 4);

/* Report the internal error `e` that came with return value `ret` (< 0). */
int lw_from_errbuf(struct wisp_error *err, int ret, const struct errbuf *e);

/* Clear `err` (if not NULL) after a call that succeeded. */
void lw_ok(struct wisp_error *err);

/*
 * Deep-copy `src` into `dst` (every string duplicated), so a VM owns its
 * configuration for its whole life.  0 or -ENOMEM (then dst holds nothing).
 */
int lw_config_copy(struct vm_config *dst, const struct vm_config *src) __must_check;

#endif /* VMM_LIBWISP_LIBWISP_INTERNAL_H */
