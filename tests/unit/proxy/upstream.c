/* Tests of proxy/upstream.c: route matching, the balancers, passive health
 * (nginx's max_fails/fail_timeout) and affinity cookies, on runtimes built
 * from YAML through keel's settings table. */
#include <arpa/inet.h>
#include <stdio.h>
#include <unistd.h>

#include "runner.h"
#include "proxy/upstream.c"
#include "core/conf.h"

static struct core_conf *conf;
static struct proxy_runtime *rt;

static void build(const char *yaml, const unsigned char *key)
{
	char err[256];

	conf = core_conf_load(&core_settings, "t.yaml", yaml, strlen(yaml));
	CHECK(conf != NULL);
	if (conf->nerrors)
		test_fail(__FILE__, __LINE__, "config: %s", conf->errors->msg);
	rt = proxy_runtime_build(conf, NULL, NULL, key, err, sizeof(err));
	if (rt == NULL)
		test_fail(__FILE__, __LINE__, "runtime: %s", err);
}

static const struct proxy_route *route(const char *host, const char *path)
{
	const struct proxy_route *redirect;

	return proxy_route_find(rt, host, strlen(host), path, strlen(path), &redirect);
}

static const char *routes_yaml =
	"upstreams:\n"
	"  a: { servers: [ { address: '10.0.0.1:80' } ] }\n"
	"routes:\n"
	"  - { path: /, upstream: a }\n"
	"  - { path: /app/, upstream: a }\n"
	"  - { path: /app/deep/, upstream: a }\n"
	"  - { hosts: ['*.example.com'], path: /, upstream: a }\n"
	"  - { hosts: ['*.eu.example.com'], path: /, upstream: a }\n"
	"  - { hosts: [Exact.Example.com], path: /x/, upstream: a }\n";

TEST(routes_exact_host_beats_wildcard_beats_any_then_longest_prefix)
{
	const struct proxy_route *redirect;

	build(routes_yaml, NULL);
	CHECK_INT(route("h", "/zzz")->index, ==, 0);
	CHECK_INT(route("h", "/app/q?x=/app/deep/")->index, ==, 1);
	CHECK_INT(route("h", "/app/deep/q")->index, ==, 2);
	CHECK_INT(route("w.example.com", "/app/")->index, ==, 3);
	CHECK_INT(route("w.eu.example.com:8080", "/")->index, ==, 4);
	CHECK_INT(route("EXACT.example.COM.", "/x/y")->index, ==, 5);
	CHECK_INT(route("exact.example.com", "/other")->index, ==, 3);
	CHECK_INT(route("example.com", "/")->index, ==, 0);
	/* "/" matches, but as in nginx the slash redirect wins over it */
	CHECK(proxy_route_find(rt, "h", 1, "/app", 4, &redirect) == NULL);
	CHECK(redirect != NULL && redirect->index == 1);
	proxy_runtime_unref(rt);
	core_conf_free(conf);
}

TEST(missing_trailing_slash_is_offered_as_a_redirect)
{
	const struct proxy_route *redirect;

	build("upstreams: { a: { servers: [ { address: '10.0.0.1:80' } ] } }\n"
	      "routes: [ { path: /app_a/, upstream: a } ]\n", NULL);
	CHECK(proxy_route_find(rt, "h", 1, "/app_a?q", 8, &redirect) == NULL);
	CHECK(redirect != NULL && redirect->index == 0);
	CHECK(proxy_route_find(rt, "h", 1, "/app_b", 6, &redirect) == NULL);
	CHECK(redirect == NULL);
	proxy_runtime_unref(rt);
	core_conf_free(conf);
}

/* The rule as the config reference states it, by scanning every route:
 * exact host before the longest "*.domain" before no hosts; within the
 * first of those groups with a route for the path, the longest prefix, the
 * first in the config on a tie, unless the path plus "/" is a route of that
 * group and no route is the path itself: then nginx's redirect. A group
 * with only that redirect offers it when no later group has a route. The
 * index must agree. */
static int route_class(const struct proxy_route *r, const char *host, size_t hlen,
		       int c, size_t w)
{
	unsigned j;

	if (r->nhosts == 0)
		return c == 1;
	for (j = 0; j < r->nhosts; j++) {
		const char *h = r->hosts[j];
		size_t n = strlen(h);

		if (c == 3 && h[0] != '*' && n == hlen && strncasecmp(host, h, n) == 0)
			return 1;
		if (c == 2 && h[0] == '*' && n - 1 == w && hlen > w &&
		    strncasecmp(host + hlen - w, h + 1, w) == 0)
			return 1;
	}
	return 0;
}

static const struct proxy_route *route_scan(const char *host, const char *path,
					    const struct proxy_route **redirect)
{
	size_t hlen = strlen(host), qlen = strcspn(path, "?"), w;
	unsigned i;
	int c;

	if (memchr(host, ':', hlen))
		hlen = (size_t)((const char *)memchr(host, ':', hlen) - host);
	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	*redirect = NULL;
	for (c = 3; c >= 1; c--)
		for (w = c == 2 ? hlen : 0;; w--) {
			const struct proxy_route *best = NULL, *slash = NULL;

			for (i = 0; i < rt->nroutes; i++) {
				const struct proxy_route *r = &rt->routes[i];

				if (!route_class(r, host, hlen, c, w))
					continue;
				if (qlen >= r->path_len && memcmp(path, r->path, r->path_len) == 0) {
					if (best == NULL || r->path_len > best->path_len)
						best = r;
				} else if (slash == NULL && qlen + 1 == r->path_len &&
					   r->path[qlen] == '/' && memcmp(path, r->path, qlen) == 0)
					slash = r;
			}
			if (best != NULL && slash != NULL && best->path_len < qlen) {
				*redirect = slash;
				return NULL;
			}
			if (best != NULL) {
				*redirect = NULL;
				return best;
			}
			if (slash != NULL && *redirect == NULL)
				*redirect = slash;
			if (w == 0)
				break;
		}
	return NULL;
}

TEST(exact_routes_match_only_their_path_and_come_first)
{
	const struct proxy_route *redirect;

	build("upstreams: { a: { servers: [ { address: '10.0.0.1:80' } ] } }\n"
	      "routes:\n"
	      "  - { path: /, upstream: a }\n"
	      "  - { path: /x, upstream: a, exact: true }\n"
	      "  - { path: /x, upstream: a }\n"
	      "  - { path: /app/, upstream: a }\n"
	      "  - { path: /app, upstream: a, exact: true }\n"
	      "  - { hosts: [h.com], path: /, return: 404 }\n", NULL);
	CHECK_INT(route("h", "/x")->index, ==, 1);
	CHECK_INT(route("h", "/x?q=1")->index, ==, 1);
	CHECK_INT(route("h", "/xy")->index, ==, 2);
	CHECK_INT(route("h", "/x/")->index, ==, 2);
	/* an exact route for the path stops the slash redirect */
	CHECK(proxy_route_find(rt, "h", 1, "/app", 4, &redirect)->index == 4);
	CHECK(redirect == NULL);
	CHECK_INT(route("h.com", "/x")->index, ==, 5);
	CHECK_INT(route("h.com", "/x")->ret, ==, 404);
	proxy_runtime_unref(rt);
	core_conf_free(conf);
}

TEST(the_route_index_agrees_with_a_scan_of_every_route)
{
	static const char *hosts[] = { "a.com", "b.a.com", "*.a.com", "*.b.a.com", "c.org",
				       "*.org", "x.c.org" };
	static const char *paths[] = { "/", "/a", "/a/", "/a/b", "/a/b/", "/ab/", "/b/", "/a/bc" };
	static const char *qhosts[] = { "a.com", "B.A.com", "z.b.a.com", "q.a.com", "c.org.",
					"x.c.org:80", "y.x.c.org", "org", "", "zz.com", "a.com:8" };
	static const char *qpaths[] = { "/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/ab/x?y",
					"/b", "/b/", "/a/bc/d", "/a?/b/", "/zzz" };
	unsigned seed = 7, round, i, j, checked = 0;

	for (round = 0; round < 200; round++) {
		char yaml[8192];
		size_t off;
		unsigned n = 1 + (seed = seed * 1103515245 + 12345) % 12;

		off = (size_t)snprintf(yaml, sizeof(yaml), "upstreams: { u: { servers: "
				       "[ { address: '10.0.0.1:80' } ] } }\nroutes:\n");
		for (i = 0; i < n; i++) {
			unsigned hmask = (seed = seed * 1103515245 + 12345) >> 8, nh = 0;
			const char *p = paths[(seed >> 20) % 8];

			off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "  - { path: %s, "
						"upstream: u, hosts: [", p);
			/* at most one wildcard a route: with two, which one the
			 * scan counts depends on their order */
			for (j = 0; j < 7; j++) {
				if (!(hmask >> j & 1) || (hmask & 3) == 0)
					continue;
				if (hosts[j][0] == '*' && (hmask & 0x80))
					continue;
				if (hosts[j][0] == '*')
					hmask |= 0x80;
				off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "%s'%s'",
							nh++ ? ", " : "", hosts[j]);
			}
			off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "] }\n");
		}
		build(yaml, NULL);
		for (i = 0; i < sizeof(qhosts) / sizeof(*qhosts); i++)
			for (j = 0; j < sizeof(qpaths) / sizeof(*qpaths); j++) {
				const struct proxy_route *want, *got, *wr, *gr;

				want = route_scan(qhosts[i], qpaths[j], &wr);
				got = proxy_route_find(rt, qhosts[i], strlen(qhosts[i]), qpaths[j],
						       strlen(qpaths[j]), &gr);
				if (want != got || (wr == NULL) != (gr == NULL) ||
				    (wr != NULL && strcmp(wr->path, gr->path) != 0))
					test_fail(__FILE__, __LINE__, "host %s path %s: route %d, "
						  "want %d (redirect %s, want %s) in\n%s", qhosts[i],
						  qpaths[j], got ? (int)got->index : -1,
						  want ? (int)want->index : -1, gr ? gr->path : "-",
						  wr ? wr->path : "-", yaml);
				checked++;
			}
		proxy_runtime_unref(rt);
		core_conf_free(conf);
	}
	CHECK_INT(checked, ==, 200 * 11 * 12);
}

TEST(a_thousand_routes_each_found)
{
	static char yaml[1 << 17];
	size_t off;
	unsigned i;
	char host[64], path[64];

	off = (size_t)snprintf(yaml, sizeof(yaml), "upstreams: { u: { servers: "
			       "[ { address: '10.0.0.1:80' } ] } }\nroutes:\n");
	for (i = 0; i < 1000; i++)	/* the config's limit */
		off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "  - { path: /p%u/, hosts: "
					"[ h%u.example.com ], upstream: u }\n", i, i % 100);
	build(yaml, NULL);
	for (i = 0; i < 1000; i++) {
		snprintf(host, sizeof(host), "H%u.example.com", i % 100);
		snprintf(path, sizeof(path), "/p%u/x", i);
		CHECK_INT(route(host, path)->index, ==, i);
	}
	CHECK(route("h1.example.com", "/p2/x") == NULL);
	proxy_runtime_unref(rt);
	core_conf_free(conf);
}

static char pick(struct proxy_upstream *up, uint64_t tried, uint64_t now)
{
	struct sockaddr_storage ss = { .ss_family = AF_INET };
	struct proxy_server *s = proxy_server_pick(up, tried, &ss, now);

	return s ? (char)('a' + (s - up->servers)) : '-';
}

TEST(smooth_weighted_round_robin_interleaves)
{
	char seq[16];
	int i;

	build("upstreams:\n  u:\n    servers:\n"
	      "      - { address: '10.0.0.1:80', weight: 5 }\n"
	      "      - { address: '10.0.0.2:80' }\n"
	      "      - { address: '10.0.0.3:80' }\n"
	      "routes: [ { path: /, upstream: u } ]\n", NULL);
	for (i = 0; i < 14; i++)
		seq[i] = pick(&rt->ups[0], 0, 1);
	seq[14] = '\0';
	CHECK_STR(seq, "aabacaaaabacaa");
	proxy_runtime_unref(rt);
	core_conf_free(conf);
}

TEST(tried_down_and_out_servers_are_skipped_and_backups_wait)
{
	struct proxy_upstream *up;

	build("upstreams:\n  u:\n    servers:\n"
	      "      - { address: '10.0.0.1:80' }\n"
	      "      - { address: '10.0.0.2:80', down: true }\n"
	      "      - { address: '10.0.0.3:80', backup: true }\n"
	      "routes: [ { path: /, upstream: u } ]\n", NULL);
	up = &rt->ups[0];
	CHECK(pick(up, 0, 1) == 'a');
	CHECK(pick(up, 0, 1) == 'a');
	CHECK(pick(up, 1, 1) == 'c');		/* a tried: the backup */
	CHECK(pick(up, 1 | 4, 1) == '-');
	proxy_server_failed(&up->servers[0], "test", 1);	/* max_fails 1 */
	CHECK(pick(up, 0, 2) == 'c');
	CHECK(pick(up, 0, 1 + 10000) == 'a');	/* fail_timeout (10s) is over */
	proxy_runtime_unref(rt);
	core_conf_free(conf);
}

TEST(max_fails_counts_within_fail_timeout_only)
{
	struct proxy_server *s;

	build("upstreams:\n  u:\n    servers:\n"
	      "      - { address: '10.0.0.1:80', max_fails: 3, fail_timeout: 20s }\n"
	      "routes: [ { path: /, upstream: u } ]\n", NULL);
	s = &rt->ups[0].servers[0];
	proxy_server_failed(s, "x", 1000);
	proxy_server_failed(s, "x", 2000);
	CHECK(proxy_server_usable(s, 2000));
	/* The window began at 1000: this one is in a new window. */
	proxy_server_failed(s, "x", 22000);
	CHECK(proxy_server_usable(s, 22000));
	proxy_server_failed(s, "x", 23000);
	proxy_server_failed(s, "x", 24000);
	CHECK(!proxy_server_usable(s, 24000));
	CHECK(!proxy_server_usable(s, 43999));
	CHECK(proxy_server_usable(s, 44000));
	CHECK_STR(s->st->last_error, "x");
	/* A success clears the count. */
	proxy_server_failed(s, "y", 50000);
	proxy_server_succeeded(s);
	proxy_server_failed(s, "y", 50001);
	proxy_server_failed(s, "y", 50002);
	CHECK(proxy_server_usable(s, 50002));
	proxy_runtime_unref(rt);
	core_conf_free(conf);
}

TEST(ip_hash_keeps_a_client_on_one_server)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct proxy_server *first, *s;
	int i, j, spread[3] = { 0, 0, 0 };

	build("upstreams:\n  u:\n    balance: ip_hash\n    servers:\n"
	      "      - { address: '10.0.0.1:80' }\n"
	      "      - { address: '10.0.0.2:80' }\n"
	      "      - { address: '10.0.0.3:80' }\n"
	      "routes: [ { path: /, upstream: u } ]\n", NULL);
	for (i = 0; i < 300; i++) {
		in.sin_addr.s_addr = htonl(0x0a010000u + (uint32_t)i * 7919u);
		first = proxy_server_pick(&rt->ups[0], 0, (struct sockaddr_storage *)(void *)&in, 1);
		for (j = 0; j < 3; j++) {
			s = proxy_server_pick(&rt->ups[0], 0, (struct sockaddr_storage *)(void *)&in, 1);
			CHECK(s == first);
		}
		spread[first - rt->ups[0].servers]++;
	}
	for (i = 0; i < 3; i++)
		CHECK(spread[i] > 50);
	proxy_runtime_unref(rt);
	core_conf_free(conf);
}

TEST(least_conn_prefers_idle_servers_and_round_robins_ties)
{
	struct proxy_upstream *up;

	build("upstreams:\n  u:\n    balance: least_conn\n    servers:\n"
	      "      - { address: '10.0.0.1:80' }\n"
	      "      - { address: '10.0.0.2:80' }\n"
	      "routes: [ { path: /, upstream: u } ]\n", NULL);
	up = &rt->ups[0];
	CHECK(pick(up, 0, 1) != pick(up, 0, 1));	/* tie: alternate */
	up->servers[0].st->active = 5;
	CHECK(pick(up, 0, 1) == 'b');
	CHECK(pick(up, 0, 1) == 'b');
	proxy_runtime_unref(rt);
	core_conf_free(conf);
}

TEST(cookie_values_are_opaque_stable_and_checked)
{
	static const unsigned char key[32] = "0123456789abcdef0123456789abcdef";
	char bad[23];
	struct proxy_upstream *up;

	build("upstreams:\n  u:\n    balance: cookie\n    servers:\n"
	      "      - { address: '10.0.0.1:80' }\n"
	      "      - { address: '10.0.0.2:80' }\n"
	      "routes: [ { path: /, upstream: u } ]\n", key);
	up = &rt->ups[0];
	CHECK_INT(strlen(up->servers[0].cookie), ==, 22);
	CHECK(strcmp(up->servers[0].cookie, up->servers[1].cookie) != 0);
	CHECK(strstr(up->servers[0].cookie, "10.0") == NULL);
	CHECK(proxy_cookie_server(up, up->servers[1].cookie, 22) == &up->servers[1]);
	memcpy(bad, up->servers[1].cookie, 23);
	bad[21] = bad[21] == 'A' ? 'B' : 'A';
	CHECK(proxy_cookie_server(up, bad, 22) == NULL);
	CHECK(proxy_cookie_server(up, bad, 21) == NULL);
	proxy_runtime_unref(rt);
	core_conf_free(conf);
}

TEST(a_runtime_that_cannot_be_built_says_why)
{
	static const char *yaml =
		"upstreams:\n"
		"  s: { servers: [ { address: '10.0.0.1:443' } ],\n"
		"       tls: { enabled: true, ca_file: /nonexistent/keel-test-ca.pem } }\n"
		"routes:\n"
		"  - { path: /, upstream: s }\n";
	struct core_conf *c = core_conf_load(&core_settings, "t.yaml", yaml, strlen(yaml));
	struct proxy_runtime *r;
	char err[256] = "";

	CHECK(c != NULL);
	if (c->nerrors)
		test_fail(__FILE__, __LINE__, "config: %s", c->errors->msg);
	r = proxy_runtime_build(c, NULL, NULL, NULL, err, sizeof(err));
	CHECK(r == NULL);
	/* The cause, with where it came from; not "out of memory". */
	if (strstr(err, "upstreams.s.tls: ") != err || strstr(err, "keel-test-ca.pem") == NULL)
		test_fail(__FILE__, __LINE__, "err: %s", err);
	CHECK(strstr(err, "out of memory") == NULL);
	core_conf_free(c);
}

TEST(a_route_host_longer_than_a_dns_name_is_refused_by_name)
{
	char yaml[1024], host[300];
	struct core_conf *c;

	memset(host, 'a', 254);
	host[254] = '\0';
	snprintf(yaml, sizeof(yaml), "upstreams: { u: { servers: [ { address: '10.0.0.1:80' } ] } }\n"
		 "routes: [ { path: /, upstream: u, hosts: [ %s ] } ]\n", host);
	c = core_conf_load(&core_settings, "t.yaml", yaml, strlen(yaml));
	CHECK(c != NULL && c->nerrors == 1);
	CHECK(strstr(c->errors->msg, "at most 253 characters") != NULL);
	core_conf_free(c);
	host[253] = '\0';
	snprintf(yaml, sizeof(yaml), "upstreams: { u: { servers: [ { address: '10.0.0.1:80' } ] } }\n"
		 "routes: [ { path: /, upstream: u, hosts: [ %s ] } ]\n", host);
	build(yaml, NULL);
	CHECK(route(host, "/") != NULL);
	proxy_runtime_unref(rt);
	core_conf_free(conf);
}

TEST(a_host_of_many_dots_tries_only_the_wildcard_lengths_there_are)
{
	char host[256];

	build("upstreams: { u: { servers: [ { address: '10.0.0.1:80' } ] } }\n"
	      "routes: [ { path: /, upstream: u, hosts: ['*.example.com'] },\n"
	      "          { path: /, upstream: u } ]\n", NULL);
	for (int i = 0; i < 240; i += 2)
		memcpy(host + i, "a.", 2);
	strcpy(host + 240, "example.com");
	CHECK_INT(route(host, "/x")->index, ==, 0);
	host[240] = 'a';	/* "...a.axample.com" */
	CHECK_INT(route(host, "/x")->index, ==, 1);
	proxy_runtime_unref(rt);
	core_conf_free(conf);
}
