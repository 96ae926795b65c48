/* What the master offers the admin API: the running configuration, the
 * config store, and applying a new configuration in place (the same path
 * as a reload). Implemented in main.c. */
#ifndef KEEL_CORE_CONTROL_H
#define KEEL_CORE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf-t.h"

struct core_store;

const struct core_conf *core_control_conf(void);

/* NULL when the store could not be opened (the reason was logged). */
struct core_store *core_control_store(void);

/*
 * Applies conf (loaded without errors from yaml; taken over, freed here)
 * as the next generation, then records yaml as a revision (and writes it
 * to the config file when keel runs with -c). CORE_OK with the revision id
 * in *rev; CORE_ERROR with the reason in err, the running one untouched.
 */
int core_control_apply(struct core_conf *conf, const char *yaml, const char *author,
		       const char *comment, int64_t *rev, char *err, size_t errlen);

/* Loads the running configuration's text again and installs it, as a
 * SIGHUP does (certificate files are read anew). */
int core_control_reload(char *err, size_t errlen);

/* keel as PID 1: the master stops, then the system reboots (or powers
 * off). CORE_ERROR, saying why in err, when keel is not this system's init. */
int core_control_shutdown(bool poweroff, const char *who, char *err, size_t errlen);

#endif
