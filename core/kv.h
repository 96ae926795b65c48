/* A small key-value table for keel's own shared state (admin sessions).
 * Reads are always local and synchronous: a table in the master's memory.
 * A part may mirror it elsewhere (the cache part mirrors it to the Redis
 * master, so gateways sharing a Redis share the table): the mirror hears
 * of every local write and puts what others wrote with core_kv_store().
 * With no mirror, or while it is away, nothing fails: the table carries on
 * alone and the mirror catches up with core_kv_each_entry(). Master only. */
#ifndef KEEL_CORE_KV_H
#define KEEL_CORE_KV_H

#include <stdbool.h>
#include <stdint.h>

#define CORE_KV_MAX	4096	/* entries; past it the soonest to expire goes */

/* Stores key (printable, no spaces) = val for ttl_ms (0: no expiry), and
 * tells the mirror. CORE_ERROR: out of memory. */
int core_kv_set(const char *key, const char *val, uint64_t ttl_ms);
/* The value, or NULL when there is none or it expired. */
const char *core_kv_get(const char *key);
void core_kv_del(const char *key);
/* Calls fn for every live key starting with prefix; fn may delete. */
void core_kv_each(const char *prefix, void (*fn)(const char *key, const char *val, void *arg),
		  void *arg);
/* Forgets everything (at shutdown). */
void core_kv_clear(void);

/* ---- for a mirror ---- */

struct core_kv_mirror {
	/* key = val until expires (wall ms; 0: never) was written here */
	void	(*set)(const char *key, const char *val, uint64_t expires, void *arg);
	void	(*del)(const char *key, void *arg);
	/* whether the mirror is reachable now, for the status */
	bool	(*up)(void *arg);
	void	*arg;
};

/* Sets (or, with NULL, removes) the one mirror. */
void core_kv_mirror_set(const struct core_kv_mirror *m);
bool core_kv_mirrored(void);
/* What the mirror read elsewhere: stored or removed locally, not echoed. */
int core_kv_store(const char *key, const char *val, uint64_t expires);
void core_kv_forget(const char *key);
/* Every live entry with its expiry, to write the table to the mirror. */
void core_kv_each_entry(void (*fn)(const char *key, const char *val, uint64_t expires,
				   void *arg), void *arg);
unsigned core_kv_count(void);

#endif
