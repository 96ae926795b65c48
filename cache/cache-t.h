/* The cache part's shared types (see cache.h). */
#ifndef KEEL_CACHE_CACHE_T_H
#define KEEL_CACHE_CACHE_T_H

#include <stdint.h>

/* Counters every worker adds to, in memory shared with the master. */
struct cache_front_stats {
	uint64_t	clients;		/* open now */
	uint64_t	connections;		/* accepted */
	uint64_t	replies;
	uint64_t	bytes_in, bytes_out;
	uint64_t	bad_commands;		/* clients closed for a protocol error */
	uint64_t	dropped_at_failover;
	uint64_t	waits_expired;		/* no master within wait_master */
};

#endif
