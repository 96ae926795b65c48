/* The cache part's mirror of core's key-value table (core/kv.h) on the
 * Redis master: keys "keel:kv:KEY", expiring with their TTL. Local writes
 * go through, others' writes arrive through pub/sub on "keel:kv", and
 * everything is loaded at each (re)connect, so gateways sharing a Redis
 * share the table. */
#ifndef KEEL_CACHE_KV_H
#define KEEL_CACHE_KV_H

#include <stdint.h>

#include "topo.h"
#include "core/loop-t.h"

void cache_kv_init(struct core_loop *loop);
void cache_kv_shutdown(void);

/* Redis to mirror to: the verified master and the credentials, or NULL. */
void cache_kv_master(const struct cache_addr *m, const struct cache_topo_opts *o, int db);

#endif
