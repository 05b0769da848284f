/*
 * Fuzz target: config_parse_json(), the JSON front end of the VM
 * configuration, and through it config_set() and config_parse_size().
 *
 * Why: a config file may come from a less trusted management layer, and
 * json-c plus our own value conversions see every byte of it.  The input is
 * the file's text, not NUL-terminated, exactly sized (ASan catches any read
 * past `len`).
 *
 * Checked: a refusal is one line (no control characters: the message is
 * printed on a terminal) with a usage or failure exit code; an accepted file
 * leaves no error, and parsing the same text again over the result is
 * idempotent (every key sets a value, nothing accumulates).  config_validate()
 * then either accepts or refuses with one line as well.
 */
#include "tests/fuzz/fuzz.h"

#include "vmm/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static bool fz_str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool fz_config_eq(const struct vm_config *a, const struct vm_config *b)
{
    return fz_str_eq(a->kernel, b->kernel) && fz_str_eq(a->initrd, b->initrd) &&
           fz_str_eq(a->cmdline, b->cmdline) && fz_str_eq(a->serial_path, b->serial_path) &&
           fz_str_eq(a->cpu_features, b->cpu_features) && a->memory == b->memory &&
           a->vcpus == b->vcpus && a->serial == b->serial && a->debug_exit == b->debug_exit &&
           a->hugepages == b->hugepages && a->boot == b->boot && a->log_level == b->log_level &&
           a->stats == b->stats;
}

static void fz_check_error(const struct errbuf *err)
{
    FZ_CHECK(fz_one_line(err), "error is not one printable line: '%s'", err->msg);
    FZ_CHECK(err->exit_code == WISP_EXIT_USAGE || err->exit_code == WISP_EXIT_FAILURE,
             "exit code %d for '%s'", err->exit_code, err->msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes: libFuzzer's buffer is exact too, but
     * the parser takes const char *, and this keeps the two decoupled. */
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);

    struct vm_config c, again;
    struct errbuf err;
    memset(&err, 0, sizeof(err));
    config_init(&c);
    int ret = config_parse_json(&c, text, size, &err);
    if (ret < 0) {
        fz_check_error(&err);
        goto out;
    }
    FZ_CHECK(ret == 0 && !err_isset(&err), "success with an error: '%s'", err.msg);

    /* Idempotence: the same file merged twice gives the same configuration. */
    config_init(&again);
    FZ_CHECK(config_parse_json(&again, text, size, &err) == 0, "second parse failed: %s", err.msg);
    FZ_CHECK(config_parse_json(&again, text, size, &err) == 0, "third parse failed: %s", err.msg);
    FZ_CHECK(fz_config_eq(&c, &again), "parsing twice changed the configuration");
    config_free(&again);

    if (config_validate(&c, &err) < 0)
        fz_check_error(&err);
out:
    config_free(&c);
    free(text);
    return 0;
}
