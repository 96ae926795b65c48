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

#include "core/buf.h"
#include "core/loop-t.h"

#define CACHE_MAX_NODES		16
#define CACHE_MAX_REPLICAS	16

struct cache_addr {
	char	ip[48];
	int	port;
};

struct cache_topo;

/* The master changed: m is the new one, or NULL when there is none (why
 * says why). Every user drops what it had on the old one. */
typedef void (*cache_topo_fn)(void *data, const struct cache_addr *m, const char *why);

struct cache_topo_opts {
	struct cache_addr sentinels[CACHE_MAX_NODES];
	unsigned	 nsentinels;
	char		 master_name[64];
	struct cache_addr nodes[CACHE_MAX_NODES];	/* static mode */
	unsigned	 nnodes;
	char		 username[64], password[128];	/* for the nodes */
	char		 sentinel_username[64], sentinel_password[128];
	uint64_t	 connect_timeout, command_timeout;	/* ms, the nodes */
	uint64_t	 sentinel_timeout;		/* ms, each Sentinel asked */
	uint64_t	 check_interval;		/* ms between ROLE checks */
	bool		 report;		/* log changes (one process does) */
	cache_topo_fn	 changed;
	void		*data;
};

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

#endif
