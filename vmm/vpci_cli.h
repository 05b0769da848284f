/*
 * `wisp vpci ...`: offline tools for vPCI layout files
 * (docs/VPCI_LAYOUT.md).  A subcommand of its own because it builds no VM:
 * it only talks to a device through its transport.
 */
#ifndef VMM_VPCI_CLI_H
#define VMM_VPCI_CLI_H

#include <stdbool.h>

/* Is argv[1] the `vpci` subcommand? */
bool vpci_cli_is_cmd(const char *cmd);

/*
 * Run `wisp vpci derive --vfio PATH | --vfio-user SOCK [-o FILE]`: write
 * the layout of what wisp presents of that function without a layout to
 * FILE (or stdout).  Prints one error line on failure; returns the exit
 * status (0, 1 failure, 2 usage or device error).
 */
int vpci_cli_main(int argc, char *const argv[]);

#endif /* VMM_VPCI_CLI_H */
