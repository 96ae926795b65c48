/* The proxy's runtime: routes, upstreams, server selection, passive health
 * (nginx's max_fails/fail_timeout) and the idle connection pools. */
#ifndef KEEL_PROXY_UPSTREAM_H
#define KEEL_PROXY_UPSTREAM_H

#include <stddef.h>

#include "core/conf-t.h"
#include "upstream-t.h"

/*
 * Builds a runtime from a loaded config. Server health and counters live
 * in `stats` (made by proxy_stats_create() for this config, shared between
 * workers); NULL maps a private region. `key` (the install key, 32 bytes)
 * signs affinity cookies; NULL when no upstream uses them. Returns NULL
 * with the cause in err (out of memory, an upstream's TLS context that
 * cannot be made, the statistics region that cannot be mapped). The
 * runtime starts with one reference.
 */
struct proxy_runtime *proxy_runtime_build(const struct core_conf *conf,
					  struct core_loop *loop,
					  struct proxy_stats *stats,
					  const unsigned char *key,
					  char *err, size_t errlen);

/* The server a request's affinity cookie names, if its value is one keel
 * signed for this upstream (Cookie header values in buf). NULL otherwise. */
struct proxy_server *proxy_cookie_server(struct proxy_upstream *up, const char *value,
					 size_t len);
void proxy_runtime_ref(struct proxy_runtime *rt);
void proxy_runtime_unref(struct proxy_runtime *rt);

/*
 * The route for a host (port allowed, any case) and path: hosts match
 * exactly before `*.domain` before routes without hosts; among those, the
 * longest path prefix wins. *redirect is set instead when the path is a
 * route's prefix without its trailing slash (nginx answers 301 there),
 * even when a shorter prefix matches, unless a route is exactly the path.
 */
const struct proxy_route *proxy_route_find(const struct proxy_runtime *rt,
					   const char *host, size_t hlen,
					   const char *path, size_t plen,
					   const struct proxy_route **redirect);

/*
 * Picks a server for a request, skipping those in `tried` (a bit per
 * server index) and those out of service. Backups are used only when no
 * primary can be. Returns NULL when none is left.
 */
struct proxy_server *proxy_server_pick(struct proxy_upstream *up, uint64_t tried,
				       const struct sockaddr_storage *client,
				       uint64_t now);

/* Whether some server not in `tried` could take the request now. */
int proxy_upstream_has_untried(const struct proxy_upstream *up, uint64_t tried, uint64_t now);

/* Whether a server may take requests now. */
int proxy_server_usable(const struct proxy_server *s, uint64_t now);

/* Passive health: a failed attempt (connect, timeout, bad response). */
void proxy_server_failed(struct proxy_server *s, const char *why, uint64_t now);
void proxy_server_succeeded(struct proxy_server *s);

/* Why no server of an upstream is usable, for the log: "a: why; b: why". */
void proxy_upstream_why_none(const struct proxy_upstream *up, uint64_t now,
			     char *buf, size_t len);

/* Takes an idle connection from the server's pool, or NULL. */
struct proxy_upconn *proxy_pool_get(struct proxy_server *s);
/* Parks a connection whose last response ended cleanly; closes it when the
 * pool is full. */
void proxy_pool_put(struct proxy_upconn *uc);
void proxy_upconn_close(struct proxy_upconn *uc);

#endif
