/* Shared memory the master maps before forking the workers of one config
 * generation: per-server health (so every worker agrees a server is out)
 * and counters per route and per server, read by the master for /metrics.
 * Workers update it with relaxed atomics; a reload carries the counters
 * over to the next generation's region by name. */
#ifndef KEEL_PROXY_STATS_H
#define KEEL_PROXY_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/conf-t.h"

struct proxy_stat_server {
	char		upstream[64];
	char		name[64];
	uint64_t	requests;	/* tries sent to it */
	uint64_t	failures;	/* tries that failed */
	uint64_t	active;		/* exchanges on it now, all workers */
	uint64_t	fails;		/* passive health: failures in the window */
	uint64_t	fail_start;	/* monotonic ms the window began */
	uint64_t	out_until;	/* out of service until (monotonic ms) */
	uint64_t	responses[5];	/* 1xx..5xx answered */
	uint64_t	last_byte;	/* monotonic ms of its last byte, any worker */
	uint64_t	stalls;		/* times it was taken out as stalled */
	char		last_error[64];

	/* active health checks (written by the master's checker) */
	uint64_t	check_down;	/* 1: DOWN by active checks */
	uint64_t	back_at;	/* monotonic ms it last came back (slow start) */
	uint64_t	checks;		/* run */
	uint64_t	checks_failed;
	uint64_t	check_wall;	/* wall ms the last check ended; 0: none yet */
	uint64_t	check_ms;	/* how long it took */
	uint64_t	check_status;	/* the HTTP status it got; 0: none */
	uint64_t	check_ok;	/* 1: it passed */
	char		check_error[96];	/* why the last check failed */
};

/* Response time buckets, in ms (upper bounds; one more for the rest). */
#define PROXY_LAT_BUCKETS	14
extern const unsigned proxy_lat_bounds[PROXY_LAT_BUCKETS - 1];

struct proxy_stat_route {
	char		key[192];	/* hosts and path: what a reload matches on */
	char		upstream[64];
	uint64_t	requests;
	uint64_t	responses[5];	/* by class, keel's own answers included */
	uint64_t	bytes;		/* body bytes sent to clients */
	uint64_t	latency[PROXY_LAT_BUCKETS];	/* request head to last byte */
	uint64_t	latency_ms;	/* their sum */
};

/* Counts one response time in r's histogram. */
void proxy_stats_latency(struct proxy_stat_route *r, uint64_t ms);

struct proxy_stats {
	size_t		size;		/* of the mapping */
	unsigned	generation;
	unsigned	nroutes;
	unsigned	nservers;
	uint64_t	connections;	/* accepted, ever */
	uint64_t	active;		/* client connections open now */
	uint64_t	bad_requests;	/* refused before routing */
	struct proxy_stat_route routes[];	/* then nservers servers */
};

static inline struct proxy_stat_server *proxy_stats_servers(struct proxy_stats *st)
{
	return (struct proxy_stat_server *)(void *)&st->routes[st->nroutes];
}

/* Maps a region for conf's routes and servers (in config order), with
 * counters carried over from prev where the names match. NULL on failure. */
struct proxy_stats *proxy_stats_create(const struct core_conf *conf,
				       const struct proxy_stats *prev);
void proxy_stats_free(struct proxy_stats *st);

/* Appends the region as the admin API's JSON object ("null" for NULL). */
int proxy_stats_json(const struct proxy_stats *st, uint64_t now, struct core_buf *out);

/* Appends the Prometheus text exposition of the region to out. */
int proxy_stats_write(const struct proxy_stats *st, uint64_t now, struct core_buf *out);

#define proxy_stat_add(field, n)	__atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)
#define proxy_stat_sub(field, n)	__atomic_fetch_sub(&(field), (n), __ATOMIC_RELAXED)
#define proxy_stat_get(field)		__atomic_load_n(&(field), __ATOMIC_RELAXED)
#define proxy_stat_set(field, v)	__atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

#endif
