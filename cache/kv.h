/* A small key-value store for keel's own shared state (admin sessions).
 * Reads are always local and synchronous: a table in the master's memory,
 * the embedded default. When a Redis master is known, the table is also
 * mirrored there (keys "keel:kv:KEY", expiring with their TTL): writes go
 * through, others' writes arrive through pub/sub, and everything is loaded
 * at each (re)connect, so gateways sharing a Redis share the table. While
 * Redis is unreachable nothing fails: the table carries on alone and is
 * written back when Redis returns. */
#ifndef KEEL_CACHE_KV_H
#define KEEL_CACHE_KV_H

#include <stdint.h>

#include "topo.h"
#include "core/loop-t.h"

void cache_kv_init(struct core_loop *loop);
void cache_kv_shutdown(void);

/* Redis to mirror to: the verified master and the credentials, or NULL. */
void cache_kv_master(const struct cache_addr *m, const struct cache_topo_opts *o, int db);

/* Stores key (printable, no spaces) = val for ttl_ms (0: no expiry). */
int cache_kv_set(const char *key, const char *val, uint64_t ttl_ms);
/* The value, or NULL when there is none or it expired. */
const char *cache_kv_get(const char *key);
void cache_kv_del(const char *key);
/* Calls fn for every live key starting with prefix. */
void cache_kv_each(const char *prefix, void (*fn)(const char *key, const char *val, void *arg),
		   void *arg);

/* Whether the table is mirrored to Redis right now, for the status. */
int cache_kv_mirrored(void);

#endif
