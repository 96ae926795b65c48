/* Where the Redis master is. Either a list of Sentinels and a master name,
 * as the Sentinel client guidelines say (ask the Sentinels in order, move
 * the one that answered to the front, check with ROLE, follow
 * +switch-master), or a static list of nodes probed with ROLE. A master is
 * only ever reported after ROLE on it said "master", and is checked again
 * every check interval. */
#ifndef KEEL_CACHE_TOPO_H
#define KEEL_CACHE_TOPO_H

#include <stdbool.h>
#include <stdint.h>

#include "topo-t.h"
#include "core/buf.h"
#include "core/loop-t.h"

struct cache_topo *cache_topo_new(struct core_loop *loop, const struct cache_topo_opts *o);
/* Not from inside one of its callbacks. */
void cache_topo_free(struct cache_topo *t);

/* The verified master, or NULL; its epoch grows at every change. */
const struct cache_addr *cache_topo_master(const struct cache_topo *t, uint64_t *epoch);

/* A user saw a sign the master moved (READONLY, LOADING, a refused
 * connection): check it now rather than at the next interval. */
void cache_topo_suspect(struct cache_topo *t, const char *why);

/* What the topology looks like, for the admin API: a JSON object. */
int cache_topo_json(const struct cache_topo *t, struct core_buf *out);
/* And for /metrics: Prometheus text. */
int cache_topo_metrics(const struct cache_topo *t, struct core_buf *out);

struct core_conf_addr;
/* A configured address as hiredis wants it. */
void cache_addr_from(struct cache_addr *a, const struct core_conf_addr *ca);

const char *cache_node_role_str(enum cache_node_role r);
const char *cache_topo_state_str(enum cache_topo_state s);

#endif
