/*
 * What config.c (the option keys) and config_device.c (the --device parser)
 * share: the string and boolean setters and their length limit.  Private to
 * vmm/config*.c; config_json.c needs none of it (it goes through config.h).
 */
#ifndef VMM_CONFIG_INTERNAL_H
#define VMM_CONFIG_INTERNAL_H

#include <stdbool.h>

#include "vmm/error.h"

/* The longest string value an option or a --device description may have. */
#define CONFIG_MAX_STRING_VALUE 65536

/*
 * Replace *dst with a copy of `value` (freeing the old one).  A NULL or too
 * long value is a usage error naming `key`; ENOMEM is WISP_EXIT_FAILURE.
 */
int config_set_string(char **dst, const char *key, const char *value,
                      struct errbuf *err) __must_check;

/*
 * Set *dst from "on"/"true"/"yes" or NULL (true), "off"/"false"/"no"
 * (false); anything else is a usage error naming `key`.
 */
int config_set_bool(bool *dst, const char *key, const char *value, struct errbuf *err) __must_check;

#endif /* VMM_CONFIG_INTERNAL_H */
