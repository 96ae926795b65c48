/* The proxy's runtime: routes and upstreams copied out of a config (which
 * a reload frees), server selection, passive health and idle pools. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <mbedtls/md.h>

#include "core/core.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/net.h"
#include "core/loop.h"
#include "core/settings.h"
#include "core/tls.h"
#include "core/state.h"
#include "static.h"
#include "upstream.h"
#include "core/list.h"
#include "stats.h"

/* ---- building and freeing ----------------------------------------------------- */

static int index_build(struct proxy_runtime *rt);

static void runtime_free(struct proxy_runtime *rt)
{
	unsigned i, j;

	for (i = 0; i < rt->nups; i++) {
		struct proxy_upstream *up = &rt->ups[i];

		for (j = 0; j < up->nservers; j++)
			while (up->servers[j].npool > 0)
				proxy_upconn_close(proxy_pool_get(&up->servers[j]));
		free(up->servers);
		free(up->name);
		free(up->cookie);
		free(up->tls_name);
		core_tls_server_drop(up->tls);
	}
	for (i = 0; i < rt->nroutes; i++) {
		struct proxy_route *r = &rt->routes[i];

		for (j = 0; j < r->nhosts; j++)
			free(r->hosts[j]);
		free(r->hosts);
		free(r->path);
		free(r->replace);
		free(r->ret_url);
		free(r->ret_body);
		proxy_static_free(r->files);
	}
	free(rt->ups);
	free(rt->routes);
	free(rt->rindex.slots);
	if (rt->own_stats)
		proxy_stats_free(rt->stats);
	free(rt);
}

/* base64url without padding: 16 bytes make 22 characters. */
static void b64url(const unsigned char *in, size_t n, char *out)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint32_t acc = 0;
	size_t i;
	int bits = 0;

	for (i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			*out++ = abc[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		*out++ = abc[(acc << (6 - bits)) & 63];
	*out = '\0';
}

/* The cookie value for a server: a keyed hash of upstream and address, so
 * it names the server without showing it and cannot be made without the
 * key. */
static void server_cookie(struct proxy_server *s, const unsigned char *key)
{
	unsigned char mac[32];
	char msg[160];
	int n = snprintf(msg, sizeof(msg), "%s/%s", s->up->name, s->name);

	mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, CORE_STATE_KEY_LEN,
			(const unsigned char *)msg, (size_t)n, mac);
	b64url(mac, 16, s->cookie);
}

struct proxy_server *proxy_cookie_server(struct proxy_upstream *up, const char *value,
					 size_t len)
{
	unsigned i, j;

	if (len != 22)
		return NULL;
	for (i = 0; i < up->nservers; i++) {
		unsigned char diff = 0;

		/* In constant time: no clue about how close a guess came. */
		for (j = 0; j < 22; j++)
			diff |= (unsigned char)(up->servers[i].cookie[j] ^ value[j]);
		if (diff == 0 && up->servers[i].cookie[0] != '\0')
			return &up->servers[i];
	}
	return NULL;
}

static int build_upstream(struct proxy_upstream *up, const struct keel_upstream_conf *uc,
			  struct proxy_stat_server *st, const unsigned char *key,
			  char *err, size_t errlen)
{
	const struct keel_server_conf *sc = uc->servers.v;
	unsigned j;

	up->name = strdup(uc->name);
	up->cookie = strdup(uc->cookie);
	up->cookie_len = up->cookie ? (uint32_t)strlen(up->cookie) : 0;
	up->balance = uc->balance;
	up->slow_start = (uint64_t)uc->slow_start;
	up->stall_timeout = (uint64_t)uc->stall_timeout;
	up->fail_open = uc->all_down == KEEL_ALL_DOWN_OPEN;
	up->keepalive = (unsigned)uc->keepalive;
	up->keepalive_timeout = (uint64_t)uc->keepalive_timeout;
	up->nservers = (unsigned)uc->servers.n;
	up->servers = calloc(up->nservers ? up->nservers : 1, sizeof(*up->servers));
	if (up->name == NULL || up->cookie == NULL || up->servers == NULL)
		goto nomem;
	if (uc->tls.enabled) {
		char why[384];

		/* proxy_prepare checked the CA file; this is a worker's copy. */
		up->tls = core_tls_client_new(uc->tls.ca_file, uc->tls.verify, why, sizeof(why));
		if (up->tls == NULL) {
			snprintf(err, errlen, "upstreams.%s.tls: %s", uc->name, why);
			return CORE_ERROR;
		}
		if (uc->tls.server_name[0] != '\0' && (up->tls_name = strdup(uc->tls.server_name)) == NULL)
			goto nomem;
	}

	for (j = 0; j < up->nservers; j++) {
		struct proxy_server *s = &up->servers[j];

		s->up = up;
		s->st = &st[j];
		core_list_init(&s->waiting);
		core_list_init(&s->pool);
		memcpy(&s->sa, &sc[j].address.sa, sizeof(s->sa));
		s->salen = sc[j].address.salen;
		snprintf(s->name, sizeof(s->name), "%s", sc[j].address.text);
		core_net_ntop((const struct sockaddr *)&sc[j].address.sa, s->host, sizeof(s->host));
		s->weight = (int)sc[j].weight;
		s->max_fails = (int)sc[j].max_fails;
		s->fail_timeout = (uint64_t)sc[j].fail_timeout;
		s->backup = sc[j].backup;
		s->down = sc[j].down;
		s->drain = sc[j].drain;
		if (key != NULL && up->balance == KEEL_BALANCE_COOKIE)
			server_cookie(s, key);
	}
	return CORE_OK;
nomem:
	snprintf(err, errlen, "upstreams.%s: out of memory", uc->name);
	return CORE_ERROR;
}

static char *dup_lower(const char *s)
{
	char *d = strdup(s), *p;

	for (p = d; p != NULL && *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p += 'a' - 'A';
	return d;
}

static int build_route(struct proxy_runtime *rt, struct proxy_route *r,
		       const struct keel_route_conf *rc, const struct keel_conf *k, unsigned index,
		       char *err, size_t errlen)
{
	char *const *hosts = rc->hosts.v;
	unsigned j;

	r->index = index;
	r->path = strdup(rc->path);
	r->nhosts = (unsigned)rc->hosts.n;
	r->hosts = r->nhosts ? calloc(r->nhosts, sizeof(char *)) : NULL;
	if (r->path == NULL || (r->nhosts && r->hosts == NULL))
		goto nomem;
	r->path_len = (uint32_t)strlen(r->path);
	for (j = 0; j < r->nhosts; j++)
		if ((r->hosts[j] = dup_lower(hosts[j])) == NULL)
			goto nomem;

	if (strcmp(rc->rewrite, "keep") == 0)
		r->rewrite = PROXY_REWRITE_KEEP;
	else if (strcmp(rc->rewrite, "strip") == 0)
		r->rewrite = PROXY_REWRITE_STRIP;
	else {
		r->rewrite = PROXY_REWRITE_REPLACE;
		if ((r->replace = strdup(rc->rewrite)) == NULL)
			goto nomem;
		r->replace_len = (uint32_t)strlen(r->replace);
	}

	if (rc->serve.mount[0] != '\0') {
		const struct keel_mount_conf *mc = k->storage.mounts.v;

		for (j = 0; j < k->storage.mounts.n && strcmp(mc[j].name, rc->serve.mount) != 0; j++)
			;
		if (j == k->storage.mounts.n) {	/* the config check makes this impossible */
			snprintf(err, errlen, "routes[%u] (%s): no mount \"%s\"", index, rc->path,
				 rc->serve.mount);
			return CORE_ERROR;
		}
		if ((r->files = proxy_static_new(&rc->serve, &mc[j], rc->path, err, errlen)) == NULL)
			return CORE_ERROR;
	}
	for (j = 0; j < rt->nups; j++)
		if (strcmp(rt->ups[j].name, rc->upstream) == 0)
			r->up = &rt->ups[j];
	r->exact = rc->exact;
	r->ret = (unsigned)rc->ret;
	if ((rc->return_url[0] != '\0' && (r->ret_url = strdup(rc->return_url)) == NULL) ||
	    (rc->return_body[0] != '\0' && (r->ret_body = strdup(rc->return_body)) == NULL))
		goto nomem;
	if (r->up == NULL && r->files == NULL && r->ret == 0) {	/* the config check makes this impossible */
		snprintf(err, errlen, "routes[%u] (%s): no upstream \"%s\"", index, rc->path,
			 rc->upstream);
		return CORE_ERROR;
	}

	r->connect_timeout = (uint64_t)rc->connect_timeout;
	r->send_timeout = (uint64_t)rc->send_timeout;
	r->read_timeout = (uint64_t)rc->read_timeout;
	r->idle_timeout = (uint64_t)rc->idle_timeout;
	r->try_timeout = (uint64_t)rc->try_timeout;
	r->max_body = rc->max_body;
	r->tries = (unsigned)rc->tries;
	r->retry_5xx = rc->retry_5xx;
	r->upstream_header = rc->upstream_header;
	r->https_redirect = rc->https_redirect;
	r->https_port = (unsigned)rc->https_port;
	r->hsts = (uint64_t)rc->hsts / 1000;
	return CORE_OK;
nomem:
	snprintf(err, errlen, "routes[%u] (%s): out of memory", index, rc->path);
	return CORE_ERROR;
}

struct proxy_runtime *proxy_runtime_build(const struct core_conf *conf,
					  struct core_loop *loop,
					  struct proxy_stats *stats,
					  const unsigned char *key,
					  char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);
	const struct keel_upstream_conf *ucs = k->upstreams.v;
	const struct keel_route_conf *rcs = k->routes.v;
	struct proxy_runtime *rt;
	struct proxy_stat_server *sst;
	unsigned i;

	rt = calloc(1, sizeof(*rt));
	if (rt == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rt->refs = 1;
	rt->stats = stats;
	if (stats == NULL) {
		rt->stats = proxy_stats_create(conf, NULL);
		rt->own_stats = true;
		if (rt->stats == NULL) {
			snprintf(err, errlen, "cannot map the statistics region: %s",
				 strerror(errno));
			free(rt);
			return NULL;
		}
	}
	sst = proxy_stats_servers(rt->stats);
	rt->loop = loop;
	rt->generation = conf->generation;
	rt->lim.max_line = (uint32_t)k->proxy.max_request_line;
	rt->lim.max_head = (uint32_t)k->proxy.max_header_bytes;
	rt->lim.max_headers = (uint32_t)k->proxy.max_headers;
	rt->header_timeout = (uint64_t)k->proxy.header_timeout;
	rt->buffer_size = (uint32_t)k->proxy.buffer_size;
	rt->max_connections = (unsigned)k->proxy.max_connections;

	rt->nups = (unsigned)k->upstreams.n;
	rt->ups = rt->nups ? calloc(rt->nups, sizeof(*rt->ups)) : NULL;
	rt->nroutes = (unsigned)k->routes.n;
	rt->routes = rt->nroutes ? calloc(rt->nroutes, sizeof(*rt->routes)) : NULL;
	if ((rt->nups && rt->ups == NULL) || (rt->nroutes && rt->routes == NULL)) {
		snprintf(err, errlen, "out of memory for %u upstreams and %u routes", rt->nups,
			 rt->nroutes);
		goto fail;
	}
	for (i = 0; i < rt->nups; i++) {
		rt->ups[i].rt = rt;
		if (build_upstream(&rt->ups[i], &ucs[i], sst, key, err, errlen) != CORE_OK)
			goto fail;
		sst += ucs[i].servers.n;	/* the region lists them in config order */
	}
	for (i = 0; i < rt->nroutes; i++) {
		if (build_route(rt, &rt->routes[i], &rcs[i], k, i, err, errlen) != CORE_OK)
			goto fail;
		rt->routes[i].st = &rt->stats->routes[i];
	}
	if (index_build(rt) != CORE_OK) {
		snprintf(err, errlen, "out of memory for the index of %u routes", rt->nroutes);
		goto fail;
	}
	return rt;
fail:
	runtime_free(rt);
	return NULL;
}

void proxy_runtime_ref(struct proxy_runtime *rt)
{
	rt->refs++;
}

void proxy_runtime_unref(struct proxy_runtime *rt)
{
	if (rt != NULL && --rt->refs == 0)
		runtime_free(rt);
}

/* ---- routing ------------------------------------------------------------------- */

/* FNV-1a, 64 bits; a host hashes in lower case, then a 0 byte, so
 * ("a", "/b") and ("a/", "b") differ. */
#define FNV_OFFSET	0xcbf29ce484222325ULL
#define FNV_PRIME	0x100000001b3ULL

static uint64_t hash_host(unsigned kind, const char *host, size_t hlen)
{
	uint64_t h = (FNV_OFFSET ^ kind) * FNV_PRIME;
	size_t i;

	for (i = 0; i < hlen; i++)
		h = (h ^ (unsigned char)tolower((unsigned char)host[i])) * FNV_PRIME;
	return h * FNV_PRIME;		/* the 0 byte */
}

static inline uint64_t hash_byte(uint64_t h, unsigned char c)
{
	return (h ^ c) * FNV_PRIME;
}

static inline uint64_t slot_hash(uint64_t h)
{
	return h | 1;			/* 0 marks an empty slot */
}

static bool index_has_len(const struct proxy_route_index *ix, size_t len)
{
	return len <= PROXY_PATH_MAX && (ix->lens[len / 64] >> (len % 64) & 1);
}

/* The slot of (kind, host, path[0..len)) with hash h, or NULL. With
 * `slash`, the key is path[0..len-1) and a "/" (path has one byte less). */
static const struct proxy_route_slot *index_probe(const struct proxy_runtime *rt, uint64_t h,
						  unsigned kind, const char *host, size_t hlen,
						  const char *path, size_t len, bool slash, bool exact)
{
	const struct proxy_route_index *ix = &rt->rindex;
	size_t cmp = slash ? len - 1 : len;
	uint32_t i;

	h = slot_hash(h);
	for (i = (uint32_t)h & ix->mask; ix->slots[i].hash != 0; i = (i + 1) & ix->mask) {
		const struct proxy_route_slot *sl = &ix->slots[i];
		const struct proxy_route *r = &rt->routes[sl->route];

		if (sl->hash == h && sl->kind == kind && sl->hlen == hlen && r->path_len == len &&
		    (hlen == 0 || strncasecmp(sl->host, host, hlen) == 0) &&
		    r->exact == exact && memcmp(r->path, path, cmp) == 0 &&
		    (!slash || r->path[cmp] == '/'))
			return sl;
	}
	return NULL;
}

static void index_add(struct proxy_runtime *rt, unsigned kind, const char *host, uint32_t route)
{
	struct proxy_route_index *ix = &rt->rindex;
	const struct proxy_route *r = &rt->routes[route];
	size_t hlen = host ? strlen(host) : 0;
	uint64_t h = hash_host(kind, host, hlen);
	uint32_t i, k;

	for (k = 0; k < r->path_len; k++)
		h = hash_byte(h, (unsigned char)r->path[k]);
	if (r->exact)			/* a NUL no path has: its own key */
		h = hash_byte(h, 0);
	/* The same host and prefix twice: the first route keeps it, as the
	 * linear order did. */
	if (index_probe(rt, h, kind, host, hlen, r->path, r->path_len, false, r->exact) != NULL)
		return;
	h = slot_hash(h);
	for (i = (uint32_t)h & ix->mask; ix->slots[i].hash != 0; i = (i + 1) & ix->mask)
		;
	ix->slots[i] = (struct proxy_route_slot){ .hash = h, .host = host, .hlen = (uint16_t)hlen,
						  .kind = (uint8_t)kind, .route = route };
	if (r->exact)
		ix->exact_paths = true;
	else
		ix->lens[r->path_len / 64] |= 1ULL << (r->path_len % 64);
	if (kind == PROXY_HOST_WILD) {
		ix->wildcards = true;
		ix->wlens[hlen / 64] |= 1ULL << (hlen % 64);
	}
	else if (kind == PROXY_HOST_EXACT)
		ix->exact = true;
}

static int index_build(struct proxy_runtime *rt)
{
	struct proxy_route_index *ix = &rt->rindex;
	size_t keys = 0, size = 16;
	unsigned i, j;

	for (i = 0; i < rt->nroutes; i++)
		keys += rt->routes[i].nhosts ? rt->routes[i].nhosts : 1;
	while (size < keys * 2)			/* at most half full */
		size *= 2;
	if ((ix->slots = calloc(size, sizeof(*ix->slots))) == NULL)
		return CORE_ERROR;
	ix->mask = (uint32_t)size - 1;
	for (i = 0; i < rt->nroutes; i++) {
		const struct proxy_route *r = &rt->routes[i];

		if (r->nhosts == 0)
			index_add(rt, PROXY_HOST_NONE, NULL, i);
		for (j = 0; j < r->nhosts; j++) {
			if (r->hosts[j][0] == '*')	/* "*.example.com": its ".example.com" */
				index_add(rt, PROXY_HOST_WILD, r->hosts[j] + 1, i);
			else
				index_add(rt, PROXY_HOST_EXACT, r->hosts[j], i);
		}
	}
	return CORE_OK;
}

/*
 * The longest prefix of path[0..qlen) that (kind, host) has a route for,
 * hashing the path once. *redirect gets the route whose path is the whole
 * path plus "/", if there is one. As in nginx, that redirect also wins over
 * a shorter prefix ("/app_a" with the routes "/" and "/app_a/"), but not
 * over a route for exactly this path: then NULL is returned with *redirect
 * set and *decided true.
 */
static const struct proxy_route *index_find(const struct proxy_runtime *rt, unsigned kind,
					    const char *host, size_t hlen, const char *path,
					    size_t qlen, const struct proxy_route **redirect,
					    bool *decided)
{
	const struct proxy_route_index *ix = &rt->rindex;
	const struct proxy_route_slot *sl, *best = NULL;
	uint64_t h = hash_host(kind, host, hlen);
	size_t len;

	for (len = 0;; len++) {
		if (index_has_len(ix, len) &&
		    (sl = index_probe(rt, h, kind, host, hlen, path, len, false, false)) != NULL)
			best = sl;
		if (len == qlen)
			break;
		h = hash_byte(h, (unsigned char)path[len]);
	}
	/* nginx's "location = /x": the whole path, before any prefix */
	if (ix->exact_paths && qlen <= PROXY_PATH_MAX &&
	    (sl = index_probe(rt, hash_byte(h, 0), kind, host, hlen, path, qlen, false,
			      true)) != NULL)
		return &rt->routes[sl->route];
	if ((best == NULL || rt->routes[best->route].path_len < qlen) &&
	    (best != NULL || *redirect == NULL) && index_has_len(ix, qlen + 1) &&
	    (sl = index_probe(rt, hash_byte(h, '/'), kind, host, hlen, path, qlen + 1,
			      true, false)) != NULL) {
		*redirect = &rt->routes[sl->route];
		if (best != NULL) {
			*decided = true;
			return NULL;
		}
	}
	return best ? &rt->routes[best->route] : NULL;
}

const struct proxy_route *proxy_route_find(const struct proxy_runtime *rt,
					   const char *host, size_t hlen,
					   const char *path, size_t plen,
					   const struct proxy_route **redirect)
{
	const struct proxy_route_index *ix = &rt->rindex;
	const struct proxy_route *r;
	const char *q;
	size_t qlen, i;
	bool decided = false;

	*redirect = NULL;
	if (ix->slots == NULL)
		return NULL;
	/* The port and a trailing dot are not part of the name. */
	if (hlen > 0 && host[0] != '[') {
		const char *colon = memchr(host, ':', hlen);

		if (colon != NULL)
			hlen = (size_t)(colon - host);
	}
	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	q = memchr(path, '?', plen);
	qlen = q ? (size_t)(q - path) : plen;	/* the path without its query */
	if (qlen > PROXY_PATH_MAX + 1)		/* no route is that long: its longest prefix */
		qlen = PROXY_PATH_MAX + 1;	/* is still a candidate, exact and redirect not */

	if (ix->exact && hlen > 0 && hlen <= PROXY_HOST_MAX &&
	    (r = index_find(rt, PROXY_HOST_EXACT, host, hlen, path, qlen, redirect,
			    &decided)) != NULL)
		goto found;
	if (decided)
		return NULL;
	if (ix->wildcards) {
		/* "*.example.com" matches "a.example.com", not "example.com":
		 * each suffix from a dot after the first byte, longest first,
		 * of a length some wildcard has (so a Host of many dots costs
		 * no more than the config's few wildcard lengths). */
		for (i = 1; i < hlen; i++) {
			size_t n = hlen - i;

			if (host[i] == '.' && n <= PROXY_HOST_MAX &&
			    (ix->wlens[n / 64] >> (n % 64) & 1) &&
			    (r = index_find(rt, PROXY_HOST_WILD, host + i, n, path, qlen,
					    redirect, &decided)) != NULL)
				goto found;
			if (decided)
				return NULL;
		}
	}
	if ((r = index_find(rt, PROXY_HOST_NONE, NULL, 0, path, qlen, redirect,
			    &decided)) != NULL)
		goto found;
	return NULL;
found:
	*redirect = NULL;
	return r;
}

/* ---- choosing a server -------------------------------------------------------------- */

/* Usable while neither passive (max_fails) nor active checks say no. */
int proxy_server_usable(const struct proxy_server *s, uint64_t now)
{
	return !s->down && !core_clock_before(now, proxy_stat_get(s->st->out_until)) &&
	       !proxy_stat_get(s->st->check_down);
}

/* Its weight now: ramped up over slow_start after it came back from being
 * out (passively) or DOWN (by checks), so a cold server is not flooded. */
static int server_weight(const struct proxy_server *s, uint64_t now)
{
	uint64_t back = proxy_stat_get(s->st->back_at), out = proxy_stat_get(s->st->out_until);
	uint64_t since;
	int w;

	if (s->up->slow_start == 0)
		return s->weight;
	if (core_clock_before(back, out))
		back = out;
	if (back == 0 || !core_clock_before(now, back + s->up->slow_start))
		return s->weight;
	since = core_clock_before(back, now) ? now - back : 0;
	w = (int)((uint64_t)s->weight * since / s->up->slow_start);
	return w > 0 ? w : 1;
}

int proxy_upstream_has_untried(const struct proxy_upstream *up, uint64_t tried, uint64_t now)
{
	unsigned i;

	for (i = 0; i < up->nservers && i < 64; i++)
		if (!(tried & (1ULL << i)) && proxy_server_usable(&up->servers[i], now))
			return 1;
	return 0;
}

static uint64_t hash_client(const struct sockaddr_storage *ss)
{
	const unsigned char *p;
	size_t n, i;
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	if (ss->ss_family == AF_INET6) {
		p = (const unsigned char *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
		n = 16;
	} else {
		p = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
		n = 4;
	}
	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng_next(void)
{
	/* xorshift64*: enough to spread P2C picks. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/*
 * Smooth weighted round-robin, as nginx does it: every candidate gains its
 * weight, the highest wins and pays the total back. Spreads 5:1:1 as
 * a a b a c a a, not a a a a a b c.
 */
static struct proxy_server *smooth_rr(struct proxy_upstream *up, uint64_t cand, uint64_t now)
{
	struct proxy_server *best = NULL;
	int total = 0;
	unsigned i;

	for (i = 0; i < up->nservers; i++) {
		struct proxy_server *s = &up->servers[i];
		int w;

		if (!(cand & (1ULL << i)))
			continue;
		w = server_weight(s, now);
		s->cw += w;
		total += w;
		if (best == NULL || s->cw > best->cw)
			best = s;
	}
	if (best != NULL)
		best->cw -= total;
	return best;
}

/* Chooses among the candidates (a bit per server) with the upstream's method. */
static struct proxy_server *pick_among(struct proxy_upstream *up, uint64_t cand,
				       const struct sockaddr_storage *client, uint64_t now)
{
	struct proxy_server *best = NULL;
	unsigned i, n = 0, total = 0;

	for (i = 0; i < up->nservers; i++)
		if (cand & (1ULL << i)) {
			n++;
			total += (unsigned)up->servers[i].weight;
		}
	if (n == 0)
		return NULL;

	switch (up->balance) {
	case KEEL_BALANCE_IP_HASH: {
		/* Weighted slot from the client's hash: stable while the set
		 * of usable servers stays the same. */
		uint64_t slot = hash_client(client) % total;

		for (i = 0; i < up->nservers; i++) {
			if (!(cand & (1ULL << i)))
				continue;
			if (slot < (uint64_t)up->servers[i].weight)
				return &up->servers[i];
			slot -= (uint64_t)up->servers[i].weight;
		}
		return NULL;
	}
	case KEEL_BALANCE_LEAST_CONN: {
		/* Fewest active requests per weight; ties go round-robin, as
		 * in nginx, or an idle cluster would send everything to one. */
		uint64_t ties = 0;

		for (i = 0; i < up->nservers; i++) {
			struct proxy_server *s = &up->servers[i];
			uint64_t l, r;

			if (!(cand & (1ULL << i)))
				continue;
			l = best ? proxy_stat_get(s->st->active) * (uint64_t)best->weight : 0;
			r = best ? proxy_stat_get(best->st->active) * (uint64_t)s->weight : 0;
			if (best == NULL || l < r) {
				best = s;
				ties = 1ULL << i;
			} else if (l == r)
				ties |= 1ULL << i;
		}
		return smooth_rr(up, ties, now);
	}
	case KEEL_BALANCE_P2C: {
		struct proxy_server *a = NULL, *b = NULL;
		unsigned k, want;

		for (k = 0; k < 2; k++) {
			want = (unsigned)(rng_next() % n);
			for (i = 0; i < up->nservers; i++)
				if ((cand & (1ULL << i)) && want-- == 0)
					break;
			if (k == 0)
				a = &up->servers[i];
			else
				b = &up->servers[i];
		}
		if (proxy_stat_get(b->st->active) * (uint64_t)a->weight <
		    proxy_stat_get(a->st->active) * (uint64_t)b->weight)
			return b;
		return a;
	}
	default:
		return smooth_rr(up, cand, now);
	}
}

struct proxy_server *proxy_server_pick(struct proxy_upstream *up, uint64_t tried,
				       const struct sockaddr_storage *client,
				       uint64_t now)
{
	uint64_t primary = 0, backup = 0;
	unsigned i;

	for (i = 0; i < up->nservers && i < 64; i++) {
		struct proxy_server *s = &up->servers[i];

		if ((tried & (1ULL << i)) || !proxy_server_usable(s, now) || s->drain)
			continue;
		if (s->backup)
			backup |= 1ULL << i;
		else
			primary |= 1ULL << i;
	}
	if (primary == 0 && backup == 0 && up->fail_open && tried == 0) {
		/* Nothing healthy: fail open, as cloud load balancers do, to
		 * every server not marked down. */
		for (i = 0; i < up->nservers && i < 64; i++)
			if (!up->servers[i].down)
				primary |= 1ULL << i;
	}
	return pick_among(up, primary ? primary : backup, client, now);
}

/* ---- passive health (nginx's max_fails / fail_timeout) --------------------------------- */

/*
 * The counting is shared by all workers; two failing at once may count one
 * failure twice or open a new window early, which errs toward caution.
 */
void proxy_server_failed(struct proxy_server *s, const char *why, uint64_t now)
{
	struct proxy_stat_server *st = s->st;
	uint64_t fails;

	proxy_stat_add(st->failures, 1);
	snprintf(st->last_error, sizeof(st->last_error), "%s", why);
	if (s->max_fails == 0)
		return;
	if (proxy_stat_get(st->fails) == 0 ||
	    now - proxy_stat_get(st->fail_start) >= s->fail_timeout) {
		proxy_stat_set(st->fails, 0);
		proxy_stat_set(st->fail_start, now);
	}
	fails = proxy_stat_add(st->fails, 1) + 1;
	if (fails >= (uint64_t)s->max_fails) {
		proxy_stat_set(st->out_until, now + s->fail_timeout);
		proxy_stat_set(st->fails, 0);
		core_log_warn("proxy", "upstream %s: server %s out of service for %llu ms "
			      "after %llu failure%s (last: %s)", s->up->name, s->name,
			      (unsigned long long)s->fail_timeout, (unsigned long long)fails,
			      fails == 1 ? "" : "s", why);
	}
}

void proxy_server_succeeded(struct proxy_server *s)
{
	if (proxy_stat_get(s->st->fails) != 0)
		proxy_stat_set(s->st->fails, 0);
}

void proxy_upstream_why_none(const struct proxy_upstream *up, uint64_t now,
			     char *buf, size_t len)
{
	size_t n = 0;
	unsigned i;

	buf[0] = '\0';
	for (i = 0; i < up->nservers && n < len; i++) {
		const struct proxy_server *s = &up->servers[i];
		uint64_t out = proxy_stat_get(s->st->out_until);
		const char *err = s->st->last_error[0] ? s->st->last_error : NULL;
		int w;

		if (s->down)
			w = snprintf(buf + n, len - n, "%s%s: marked down", i ? "; " : "",
				     s->name);
		else if (core_clock_before(now, out))
			w = snprintf(buf + n, len - n, "%s%s: out for %llu ms more (%s)",
				     i ? "; " : "", s->name, (unsigned long long)(out - now),
				     err ? err : "failed");
		else
			w = snprintf(buf + n, len - n, "%s%s: %s", i ? "; " : "", s->name,
				     err ? err : "already tried");
		if (w < 0)
			break;
		n += (size_t)w;
	}
}

/* ---- idle pools ---------------------------------------------------------------------- */

static void upconn_reap(struct core_defer *d)
{
	free(CORE_CONTAINER_OF(d, struct proxy_upconn, reap));
}

/* Closes now, frees after the batch: an event for it may still be pending. */
void proxy_upconn_close(struct proxy_upconn *uc)
{
	if (uc == NULL)
		return;
	core_io_forget(&uc->io);	/* the close below: workers never fork */
	core_timer_stop(&uc->idle);
	core_tls_free(uc->tls);
	uc->tls = NULL;
	if (uc->fd != -1)
		close(uc->fd);
	uc->fd = -1;
	if (uc->io.loop != NULL)
		core_loop_defer(uc->io.loop, &uc->reap, upconn_reap);
	else
		free(uc);
}

static void pool_unlink(struct proxy_upconn *uc)
{
	if (core_list_linked(&uc->link)) {
		core_list_del(&uc->link);
		uc->srv->npool--;
	}
}

/* A pooled connection became readable: the server closed it (or sent
 * something unasked for). Either way it is done. */
static void pool_on_io(struct core_io *io, unsigned revents)
{
	struct proxy_upconn *uc = io->data;

	(void)revents;
	pool_unlink(uc);
	proxy_upconn_close(uc);
}

static void pool_on_idle(struct core_timer *t)
{
	struct proxy_upconn *uc = t->data;

	pool_unlink(uc);
	proxy_upconn_close(uc);
}

/* The connection stays in the epoll set whoever holds it; only the
 * callback changes hands, so pooling costs no epoll_ctl when the interest
 * (read) is the same on both sides. */
struct proxy_upconn *proxy_pool_get(struct proxy_server *s)
{
	struct proxy_upconn *uc = core_list_first(&s->pool, struct proxy_upconn, link);

	if (uc == NULL)
		return NULL;
	core_list_del(&uc->link);
	s->npool--;
	core_timer_stop(&uc->idle);
	return uc;
}

void proxy_pool_put(struct proxy_upconn *uc)
{
	struct proxy_server *s = uc->srv;
	struct core_loop *loop = uc->io.loop;

	if (s->npool >= s->up->keepalive) {
		proxy_upconn_close(uc);
		return;
	}
	uc->io.cb = pool_on_io;
	uc->io.data = uc;
	core_timer_init(loop, &uc->idle, pool_on_idle, uc);
	if (core_io_set(&uc->io, CORE_IO_READ) != CORE_OK ||
	    core_timer_start(&uc->idle, s->up->keepalive_timeout) != CORE_OK) {
		proxy_upconn_close(uc);
		return;
	}
	core_list_add(&s->pool, &uc->link);
	s->npool++;
}
