/*
 * vm_config <-> the pairs of a snapshot's CONFIG section (vm_mig_config.h).
 * The section is read from a file that may have been written by anyone, so
 * the keys are an allow-list and every value goes through config_set().
 */
#include "vmm/vm_mig_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PFX "snapshot configuration: "

/* The keys a snapshot may set: the machine, nothing about the host process. */
static const char *const machine_keys[] = {"memory",       "vcpus",      "cpu-template",
                                           "cpu-features", "acpi",       "pci",
                                           "serial",       "debug-exit", "device"};

static int add(struct mig_config *out, const char *key, const char *value, struct errbuf *err)
{
    int e = mig_config_add(out, key, value);
    if (e == -ENOMEM)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    if (e < 0)
        return err_set(err, WISP_EXIT_USAGE, -e,
                       PFX "option '%s' cannot be carried in a snapshot (%s)", key,
                       e == -ENOSPC ? "too many options"
                                    : "its value is empty, too long or "
                                      "not printable ASCII");
    return 0;
}

int vm_mig_config_from(const struct vm_config *c, struct mig_config *out, struct errbuf *err)
{
    char num[32];
    snprintf(num, sizeof(num), "%llu", (unsigned long long)c->memory);
    int e = add(out, "memory", num, err);
    snprintf(num, sizeof(num), "%u", c->vcpus);
    if (e == 0)
        e = add(out, "vcpus", num, err);
    if (e == 0 && c->cpu_template)
        e = add(out, "cpu-template", c->cpu_template, err);
    if (e == 0 && c->cpu_features)
        e = add(out, "cpu-features", c->cpu_features, err);
    if (e == 0)
        e = add(out, "acpi", c->acpi ? "on" : "off", err);
    if (e == 0)
        e = add(out, "pci", c->pci ? "on" : "off", err);
    if (e == 0 && c->serial == SERIAL_FILE) {
        char *v = malloc(strlen(c->serial_path ? c->serial_path : "") + 6);
        if (!v)
            return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
        sprintf(v, "file:%s", c->serial_path ? c->serial_path : "");
        e = add(out, "serial", v, err);
        free(v);
    } else if (e == 0) {
        e = add(out, "serial", c->serial == SERIAL_NONE ? "none" : "stdio", err);
    }
    if (e == 0)
        e = add(out, "debug-exit", c->debug_exit ? "on" : "off", err);
    char spec[MIG_CONFIG_MAX_VALUE + 1];
    for (unsigned i = 0; e == 0 && i < c->ndevices && i < CONFIG_MAX_DEVICES; i++) {
        e = config_device_spec(&c->devices[i], spec, sizeof(spec));
        if (e < 0)
            return err_set(err, WISP_EXIT_USAGE, -e,
                           PFX "device %s cannot be carried in a snapshot (%s)", c->devices[i].id,
                           e == -EINVAL ? "a value holds ','" : "its description is too long");
        e = add(out, "device", spec, err);
    }
    return e;
}

static bool machine_key(const char *key)
{
    for (size_t i = 0; i < ARRAY_SIZE(machine_keys); i++)
        if (!strcmp(key, machine_keys[i]))
            return true;
    return false;
}

int vm_mig_config_apply(const struct mig_config *in, struct vm_config *c, struct errbuf *err)
{
    if (in->n > MIG_CONFIG_MAX_ENTRIES)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, PFX "too many entries");
    for (uint32_t i = 0; i < in->n; i++) {
        const struct mig_config_entry *e = &in->e[i];
        if (!memchr(e->key, '\0', sizeof(e->key)) || !machine_key(e->key) || !e->value)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           PFX "entry %u: '%.31s' is not a machine option", i, e->key);
        struct errbuf why = {0};
        if (config_set(c, e->key, e->value, &why) < 0)
            return err_set(err, WISP_EXIT_USAGE, EINVAL, PFX "%s", why.msg);
    }
    return 0;
}
