/* The topology's types: addresses, options and states (see topo.h). */
#ifndef KEEL_CACHE_TOPO_T_H
#define KEEL_CACHE_TOPO_T_H

#include <stdbool.h>
#include <stdint.h>

struct cache_topo;

/* What a node said it is to ROLE. */
enum cache_node_role {
	CACHE_ROLE_UNKNOWN = 0,		/* not asked yet, or an answer we do not know */
	CACHE_ROLE_MASTER,
	CACHE_ROLE_REPLICA,
	CACHE_ROLE_SENTINEL,
	CACHE_ROLE_DOWN,		/* no answer: refused, timed out, closed */
};

/* A step of finding the master; having one is a separate flag. */
enum cache_topo_state {
	CACHE_TOPO_IDLE = 0,		/* nothing under way (a master, or a backoff) */
	CACHE_TOPO_ASKING,		/* asking the Sentinels, or the nodes' ROLE */
	CACHE_TOPO_VERIFYING,		/* ROLE on the candidate the Sentinel named */
	CACHE_TOPO_WAITING,		/* backing off before asking again */
};

#define CACHE_MAX_NODES		16
#define CACHE_MAX_REPLICAS	16

struct cache_addr {
	char	ip[48];
	int	port;
};

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

#endif
