/* `keel status` and `keel reload` on the command line: they ask the
 * running master through its control socket (STATE_DIR/keel.sock). */
#ifndef KEEL_CORE_CLI_H
#define KEEL_CORE_CLI_H

#include <stdbool.h>
#include <stdio.h>

/* Prints the status: as the master's JSON (json), or as lines for a
 * person, in colour when colour is true (a terminal). 0, or 1 when keel
 * cannot be asked (why on stderr). */
int core_cli_status(const char *state_dir, bool json, bool colour, FILE *out);

/* SIGHUP to the pid in pid_file, if a keel runs there: its pid, or 0. */
long core_cli_poke(const char *pid_file);

/* Asks the master to reload its configuration file and prints the
 * outcome. 0 reloaded, 1 refused (why printed), 2 keel not reachable. */
int core_cli_reload(const char *state_dir);

#endif
