/* One configuration for a cluster of gateways (the `cluster` section).
 *
 * Each gateway publishes what it runs in core's shared table (kv.h), which
 * the cache part mirrors to Redis: one entry per node, "conf.CLUSTER.NODE",
 * sealed with the cluster key (AES-256-GCM, the entry's name as associated
 * data). An entry holds the shared text (core_conf_write_shared: no
 * CORE_CONF_NODE setting), its generation and name (SHA-256), and the
 * generations it replaced. A gateway takes another's text when its own
 * generation is in that history (it was behind), keeps its own when the
 * other's is in its history,
 * and otherwise shows a conflict until an admin keeps one side: nothing is
 * merged. Master only. */
#ifndef KEEL_CORE_SYNC_H
#define KEEL_CORE_SYNC_H

#include <stddef.h>

#include <stdint.h>

#include "conf-t.h"

/* For main: how the module applies another gateway's configuration (the
 * control API of control.h, which main.c implements). Given at start, so
 * that this file links without main (tests, fuzz targets). */
struct core_sync_control {
	const struct core_conf *(*conf)(void);
	int	(*apply)(struct core_conf *conf, const char *yaml, const char *author,
			 const char *comment, int64_t *rev, char *err, size_t errlen);
};

void core_sync_set_control(const struct core_sync_control *ctl);

/* For main: the shared text of conf, which a local change is about to
 * install, or NULL when this box is in no cluster (or the change comes
 * from the cluster). malloc'ed; give it to core_sync_local() or free it. */
char *core_sync_capture(const struct core_conf *conf);

/* For main: the change whose text core_sync_capture() gave was installed;
 * it becomes the cluster's next generation. Takes shared over. */
void core_sync_local(char *shared, const char *author, const char *comment);

/* Ends a conflict: keep is this node's name (its configuration goes to
 * every gateway) or another's (its configuration is applied here). */
int core_sync_resolve(const char *keep, const char *who, char *err, size_t errlen);

/* ---- the entry, for the fuzz target and the unit tests ---- */

#define CORE_SYNC_SHA	16	/* hex digits of a shared text's SHA-256 that name it */
#define CORE_SYNC_HIST	32	/* names of earlier texts an entry carries */

/* A generation of the cluster's configuration: its number and its text's
 * name. Both, since a change can bring back an earlier text. */
struct core_sync_ver {
	unsigned long long gen;
	char	 sha[CORE_SYNC_SHA + 1];
};

struct core_sync_entry {
	char	 node[64];
	char	 origin[17];		/* a random id of the running process */
	unsigned long long gen;
	char	 sha[CORE_SYNC_SHA + 1];
	struct core_sync_ver hist[CORE_SYNC_HIST];	/* what it replaced, newest first */
	unsigned nhist;
	char	 author[64];
	char	 comment[160];
	long long time;			/* unix seconds */
	const char *yaml;		/* into the text that was parsed */
};

/* Reads an opened entry; CORE_ERROR with the reason in err. */
int core_sync_entry_parse(const char *text, struct core_sync_entry *e, char *err, size_t errlen);

/* Seals and opens an entry's text. key: 32 bytes; ad: the entry's name.
 * Both return a malloc'ed string or NULL (err says why). */
char *core_sync_seal(const unsigned char *key, const char *ad, const char *text,
		     char *err, size_t errlen);
char *core_sync_open(const unsigned char *key, const char *ad, const char *sealed,
		     char *err, size_t errlen);

#endif
