/*
 * Command-line front end: subcommand dispatch, option parsing into a
 * vm_config and the help texts.  Only main() and this module know argv.
 */
#ifndef VMM_CLI_H
#define VMM_CLI_H

#include <stdio.h>

#include "vmm/config.h"
#include "vmm/error.h"

enum cli_action {
    CLI_RUN,      /* boot a VM with the parsed config */
    CLI_HELP,     /* print top-level help and exit 0 */
    CLI_RUN_HELP, /* print `wisp run` help and exit 0 */
    CLI_VERSION,  /* print the version and exit 0 */
    CLI_JAIL,     /* `wisp jail ...`: main() hands argv to jail_main() (jailer/jail.h) */
};

/*
 * Parse argv (argv[0] is the program).  `wisp run ...` fills `cfg` (options
 * are applied in order, so later ones override earlier ones and a --config
 * file).  `wisp jail ...` only sets CLI_JAIL: the jailer parses its own
 * options.  Errors are WISP_EXIT_USAGE.
 */
int cli_parse(int argc, char *const argv[], struct vm_config *cfg, enum cli_action *action,
              struct errbuf *err) __must_check;

void cli_print_help(FILE *f);
void cli_print_run_help(FILE *f);
void cli_print_version(FILE *f);

#endif /* VMM_CLI_H */
