/* The config model: YAML (through libyaml) is loaded against a declarative
 * schema of sections and settings, which also supplies defaults, bounds,
 * the reload rules and the reference documentation. */
#ifndef KEEL_CORE_CONF_H
#define KEEL_CORE_CONF_H

#include <stdbool.h>
#include <stdio.h>

#include "buf.h"

#include "core.h"
#include "conf-t.h"

/*
 * Loads YAML text against a schema. Always returns a conf (NULL only when
 * out of memory); conf->nerrors > 0 means it must not be used, and
 * conf->errors lists every problem found, each with file, line and setting.
 */
struct core_conf *core_conf_load(const struct core_conf_section *schema,
				 const char *file, const char *text, size_t len);
/* Reads a file, then as core_conf_load(). */
struct core_conf *core_conf_load_file(const struct core_conf_section *schema,
				      const char *path);
void core_conf_free(struct core_conf *conf);

/* For section checks: records an error at line (0: unknown) for path. */
void core_conf_error(struct core_conf_load *ld, int line, const char *path,
		     const char *fmt, ...) CORE_PRINTF(4, 5);

/*
 * For a reload: every setting without CORE_CONF_RELOAD that differs between
 * the running conf and a new one gets the running value back in `new`
 * (copied into new's arena), and fn is told its path. Returns how many.
 * The flag of a LIST or MAP covers everything inside it.
 */
size_t core_conf_keep_static(struct core_conf *new, const struct core_conf *old,
			     void (*fn)(const char *path, void *arg), void *arg);

/*
 * For another gateway's configuration: every CORE_CONF_NODE setting gets
 * this box's own value from `own`. Returns how many differed.
 */
size_t core_conf_keep_node(struct core_conf *new, const struct core_conf *own);

/*
 * The top-level settings named (a NULL-ended list) get src's values in dst,
 * copied into dst's arena: an imported nginx.conf's listeners, upstreams
 * and routes into the running configuration. Both confs of one schema.
 */
int core_conf_take(struct core_conf *dst, const struct core_conf *src,
		   const char *const *names);

/*
 * Writes a loaded conf: as YAML, only the settings that differ from their
 * defaults (what `keel config export` and an API apply store); as JSON,
 * every setting. Secrets are written as "(secret)" unless `secrets`.
 */
int core_conf_write(struct core_buf *out, const struct core_conf *c, bool json, bool secrets);

/* YAML of what gateways share: no CORE_CONF_NODE setting, secrets written. */
int core_conf_write_shared(struct core_buf *out, const struct core_conf *c);

/* Secrets given as "(secret)" in new take their value from old. */
void core_conf_restore_secrets(struct core_conf *new, const struct core_conf *old);

/* s as a JSON string (also a YAML double-quoted scalar). */
int core_json_str(struct core_buf *out, const char *s);

/* Writes the Markdown reference of a schema. */
void core_conf_write_reference(FILE *f, const struct core_conf_section *schema);

#endif
