/*
 * wisp entry point: parse the command line, build the VM, run it, and turn
 * the outcome into the documented exit status.  The only place that prints
 * a final error line and decides the process exit code.
 */
#include "vmm/api/api.h"
#include "vmm/cli.h"
#include "vmm/config.h"
#include "vmm/error.h"
#include "jailer/jail.h"
#include "vmm/log.h"
#include "vmm/metrics.h"
#include "vmm/preboot.h"
#include "vmm/preflight.h"
#include "vmm/vm.h"
#include "vmm/vpci_cli.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const struct errbuf *err)
{
    fprintf(stderr, "wisp: error: %s\n", err->msg);
    return err->exit_code;
}

/* Nothing to open: no path, or the one already opened. */
static bool same(const char *path, const char *done)
{
    return !path || (done && !strcmp(path, done));
}

/*
 * Open the log file and the metrics sink the configuration names, unless
 * they equal the paths `log_done` / `metrics_done` already opened (before
 * the pre-boot phase, which may name others).  Exit 2 with the reason.
 */
static int open_sinks(const struct vm_config *cfg, const char *log_done, const char *metrics_done,
                      struct errbuf *err)
{
    int e = same(cfg->log_path, log_done) ? 0 : -log_set_path(cfg->log_path);
    if (e > 0)
        return err_set(err, WISP_EXIT_USAGE, e, "log-path: cannot open %s: %s", cfg->log_path,
                       e == ENXIO    ? "the FIFO has no reader (start the reader first)"
                       : e == EINVAL ? "not a regular file, a FIFO or a character device"
                                     : strerror(e));
    if (!same(cfg->metrics_path, metrics_done))
        return metrics_open(cfg->metrics_path, err);
    return 0;
}

/* What main() hands the pre-boot phase's build hook. */
struct main_build {
    struct vm_config *cfg;
    struct vm *vm;
    const char *pre_log, *pre_metrics; /* the sinks opened before the pre-boot phase */
};

/*
 * Everything between a complete configuration and a VM ready to run but
 * its control API server: the level and sinks PUT /logger and PUT /metrics
 * set, the checks, vm_build().  The command line and the pre-boot phase's
 * build hook both come through here.
 */
static int build(struct main_build *b, struct errbuf *err)
{
    log_threshold = (enum log_level)b->cfg->log_level; /* PUT /logger may have set it */
    /* --log-path, and what PUT /logger and PUT /metrics named. */
    int ret = open_sinks(b->cfg, b->pre_log, b->pre_metrics, err);
    /* Every input is checked before the host is: a mistyped path is exit 2, not 3. */
    if (ret == 0)
        ret = config_validate(b->cfg, err);
    if (ret == 0)
        ret = preflight_check(b->cfg, err);
    return ret < 0 ? ret : vm_build(b->vm, b->cfg, err);
}

static int build_hook(void *ctx, struct errbuf *err)
{
    return build(ctx, err);
}

static void unbuild_hook(void *ctx)
{
    vm_destroy(((struct main_build *)ctx)->vm);
}

int main(int argc, char *argv[])
{
    struct vm_config cfg;
    struct errbuf err = {0};
    enum cli_action action = CLI_RUN;
    char *pre_log = NULL, *pre_metrics = NULL;
    int code;

    /* Past RLIMIT_FSIZE (the jailer's --rlimit fsize) a write or ftruncate
     * must fail with EFBIG and be reported, not kill wisp with SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    /* Control verbs talk to a running wisp; they build no VM. */
    if (argc >= 2 && api_cli_is_verb(argv[1]))
        return api_cli_main(argc, argv);
    /* Layout tools read a device; they build no VM either. */
    if (argc >= 2 && vpci_cli_is_cmd(argv[1]))
        return vpci_cli_main(argc, argv);
    config_init(&cfg);
    if (cli_parse(argc, argv, &cfg, &action, &err) < 0) {
        code = fail(&err);
        goto out;
    }
    switch (action) {
    case CLI_HELP:
        cli_print_help(stdout);
        code = WISP_EXIT_OK;
        goto out;
    case CLI_RUN_HELP:
        cli_print_run_help(stdout);
        code = WISP_EXIT_OK;
        goto out;
    case CLI_VERSION:
        cli_print_version(stdout);
        code = WISP_EXIT_OK;
        goto out;
    case CLI_JAIL:
        code = jail_main(argc, argv, &err);
        if (err_isset(&err))
            fprintf(stderr, "wisp: error: %s\n", err.msg);
        goto out;
    case CLI_RUN:
        break;
    }
    log_threshold = (enum log_level)cfg.log_level;
    /* The command line's sinks before the pre-boot phase: FlushMetrics works there. */
    if (open_sinks(&cfg, NULL, NULL, &err) < 0) {
        code = fail(&err);
        goto out;
    }
    /* Copies: the pre-boot phase may replace (and free) the strings. */
    pre_log = cfg.log_path ? strdup(cfg.log_path) : NULL;
    pre_metrics = cfg.metrics_path ? strdup(cfg.metrics_path) : NULL;
    if ((cfg.log_path && !pre_log) || (cfg.metrics_path && !pre_metrics)) {
        fprintf(stderr, "wisp: error: out of memory\n");
        code = WISP_EXIT_FAILURE;
        goto out;
    }
    struct vm vm;
    struct main_build b = {&cfg, &vm, pre_log, pre_metrics};
    /* --api-sock without a kernel: Firecracker's pre-boot phase fills cfg
     * and builds the machine before it answers InstanceStart. */
    const struct preboot_hooks hooks = {build_hook, unbuild_hook, &b};
    int built = preboot_wanted(&cfg) ? preboot_run(&cfg, &hooks, &err) : build(&b, &err);
    if (built < 0 || vm_open_api(&vm, &err) < 0) {
        code = fail(&err);
        goto out;
    }
    code = vm_run(&vm, &err);
    if (err_isset(&err))
        fprintf(stderr, "wisp: error: %s\n", err.msg);
    vm_destroy(&vm);
out:
    api_server_drop_handed(); /* a pre-boot socket no VM took over */
    free(pre_log);
    free(pre_metrics);
    config_free(&cfg);
    return code;
}
