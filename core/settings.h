/* keel's settings: the one table every config source goes through. */
#ifndef KEEL_CORE_SETTINGS_H
#define KEEL_CORE_SETTINGS_H

#include "conf-t.h"
#include "settings-t.h"

extern const struct core_conf_section core_settings;

/* The configuration used when keel is started without -c. */
extern const char core_settings_default_yaml[];

/* Whether status is in a spec like "200-399,404": 1 yes, 0 no, -1 bad spec. */
int core_settings_status_match(const char *spec, unsigned status);
int core_settings_status_ok(const char *spec);

static inline const struct keel_conf *core_settings_of(const struct core_conf *c)
{
	return c->root;
}

#endif
