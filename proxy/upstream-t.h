/* Types of the proxy's runtime: routes and upstreams built from one
 * configuration, with the live state of every server. */
#ifndef KEEL_PROXY_UPSTREAM_T_H
#define KEEL_PROXY_UPSTREAM_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/list-t.h"
#include "core/loop-t.h"
#include "core/http-t.h"

struct proxy_upstream;
struct proxy_runtime;
struct proxy_xchg;

/* A connection to a server, either serving an exchange or idle in a pool. */
struct proxy_upconn {
	int		   fd;
	struct core_tls	  *tls;		/* HTTPS upstreams */
	struct core_io	   io;
	struct core_timer  idle;	/* while pooled: keepalive_timeout */
	struct proxy_server *srv;
	struct core_list   link;	/* in the server's pool */
	struct core_defer  reap;	/* freed after the batch, never inside it */
	uint32_t	   served;	/* requests completed on it */
};

struct proxy_server {
	struct proxy_upstream *up;
	struct sockaddr_storage sa;
	socklen_t	 salen;
	char		 name[64];	/* "10.0.0.1:8101" */
	char		 host[48];	/* "10.0.0.1": the TLS name without server_name */
	int		 weight;
	int		 max_fails;
	uint64_t	 fail_timeout;	/* ms */
	bool		 backup;
	bool		 down;		/* configured down: maintenance */
	bool		 drain;		/* configured draining: pinned clients only */

	char		 cookie[24];	/* its affinity cookie value (signed) */

	/* live state of this worker */
	int		 cw;		/* smooth round-robin's current weight */
	struct core_list pool;		/* idle connections, the latest first */
	unsigned	 npool;
	struct core_list waiting;	/* exchanges sent, no answer yet, oldest first */
	unsigned	 nwait;

	/* shared by every worker: health and counters */
	struct proxy_stat_server *st;
};

struct proxy_upstream {
	char		*name;
	int		 balance;	/* enum keel_balance */
	struct proxy_server *servers;
	unsigned	 nservers;
	unsigned	 keepalive;	/* pool cap per server */
	uint64_t	 keepalive_timeout;
	char		*cookie;	/* affinity cookie name (balance: cookie) */
	uint32_t	 cookie_len;
	uint64_t	 slow_start;	/* ms to ramp a returning server's weight */
	uint64_t	 stall_timeout;	/* ms of silence that ejects a server */
	bool		 fail_open;	/* all unhealthy: use them all anyway */
	struct core_tls_server *tls;	/* a client context: HTTPS to the servers */
	char		*tls_name;	/* SNI; NULL: each server's address */
	struct proxy_runtime *rt;
};

enum proxy_rewrite {
	PROXY_REWRITE_KEEP = 0,	/* send the path as it came */
	PROXY_REWRITE_STRIP,	/* replace the route's prefix with "/" */
	PROXY_REWRITE_REPLACE,	/* replace the route's prefix with .rewrite */
};

struct proxy_static;

struct proxy_route {
	char		**hosts;
	unsigned	 nhosts;
	char		*path;
	uint32_t	 path_len;
	enum proxy_rewrite rewrite;
	char		*replace;
	uint32_t	 replace_len;
	struct proxy_upstream *up;	/* NULL for a static route */
	struct proxy_static *files;	/* static.c: files from NFS, else NULL */
	uint64_t	 connect_timeout, send_timeout, read_timeout;
	uint64_t	 idle_timeout, try_timeout;
	int64_t		 max_body;
	unsigned	 tries;
	bool		 retry_5xx;
	bool		 upstream_header;
	bool		 https_redirect;	/* plain http: redirect to https */
	unsigned	 https_port;
	uint64_t	 hsts;		/* seconds; 0: no header */
	bool		 exact;		/* the path itself only */
	unsigned	 ret;		/* answer with this status; 0: proxy */
	char		*ret_url;	/* its Location template, or NULL */
	char		*ret_body;	/* its body, or NULL */
	unsigned	 index;		/* in the config, for logs */
	struct proxy_stat_route *st;
};

/*
 * The route table's index: one hash table keyed by (host kind, host, path
 * prefix), where the kind is an exact name, a wildcard's suffix
 * (".example.com") or none. A lookup hashes the path once per host
 * candidate and probes only the prefix lengths some route has, so 1 route
 * or 10 000 cost the same.
 */
enum proxy_host_kind {		/* also the order of preference */
	PROXY_HOST_NONE = 1,		/* a route without hosts */
	PROXY_HOST_WILD = 2,		/* "*.example.com", kept as ".example.com" */
	PROXY_HOST_EXACT = 3
};

struct proxy_route_slot {
	uint64_t	 hash;		/* 0: empty */
	const char	*host;		/* lower case; NULL for kind none */
	uint16_t	 hlen;
	uint8_t		 kind;		/* PROXY_HOST_* */
	uint32_t	 route;		/* index in routes */
};

#define PROXY_PATH_MAX	1024		/* the config's limit on a route's path */
#define PROXY_HOST_MAX	253		/* ...and on a host name */

struct proxy_route_index {
	struct proxy_route_slot *slots;
	uint32_t	 mask;		/* slots - 1, a power of two minus one */
	uint64_t	 lens[PROXY_PATH_MAX / 64 + 1];	/* prefix lengths in use */
	uint64_t	 wlens[PROXY_HOST_MAX / 64 + 1];	/* ".domain" lengths in use */
	bool		 wildcards;	/* some route has a *.domain host */
	bool		 exact;		/* some route has an exact host */
	bool		 exact_paths;	/* some route matches its path only */
};

/* Everything built from one configuration; streams hold a reference so a
 * reload never pulls a route or server out from under a request. */
struct proxy_runtime {
	unsigned	 refs;
	unsigned	 generation;
	struct proxy_route *routes;
	unsigned	 nroutes;
	struct proxy_route_index rindex;
	struct proxy_upstream *ups;
	unsigned	 nups;
	struct core_http_limits lim;
	uint64_t	 header_timeout;
	uint32_t	 buffer_size;
	unsigned	 max_connections;
	struct core_loop *loop;
	struct proxy_stats *stats;	/* shared with the other workers */
	bool		 own_stats;	/* mapped by us, not the master */
};

#endif
