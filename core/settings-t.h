/* The structs keel's settings load into. The table that describes them is
 * in settings.c; docs/CONFIGURATION.md is generated from it. */
#ifndef KEEL_CORE_SETTINGS_T_H
#define KEEL_CORE_SETTINGS_T_H

#include <stdint.h>

#include "conf-t.h"

struct keel_log_conf {
	int		level;		/* enum core_log_level */
	int64_t		ring_lines;	/* lines kept in memory for the UI */
};

struct keel_admin_conf {
	struct core_conf_list listen;	/* of struct core_conf_addr */
	int64_t		max_connections;
	int64_t		idle_timeout;	/* ms */
	int64_t		request_memory;	/* bytes per connection, headers included */
};

struct keel_conf {
	char		*node;		/* this box's name */
	struct keel_log_conf log;
	struct keel_admin_conf admin;
};

#endif
