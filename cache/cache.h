/* What cache.c and the RESP front (front.c) share. The rest of keel sees
 * the cache only through core: its module, its status provider "redis",
 * the "redis master" event and the key-value mirror. */
#ifndef KEEL_CACHE_CACHE_H
#define KEEL_CACHE_CACHE_H

#include <stdint.h>

#include "cache-t.h"
#include "topo.h"
#include "core/buf.h"
#include "core/settings-t.h"

/* Worker: serves the inherited listening sockets lfd[0..nl). */
int cache_front_start(struct core_loop *loop, const struct keel_redis_front_conf *conf,
		      const int *lfd, const char (*lname)[64], unsigned nl, struct cache_front_stats *stats,
		      struct cache_topo_opts *topo, char *err, size_t errlen);
unsigned cache_front_drain(void);
void cache_front_stop(void);

#endif
