/* Active health checks. The master probes every server of the upstreams
 * that ask for it, on its own loop and outside the request path, and
 * writes the verdict into the generation's shared region, where every
 * worker's balancer reads it: a transition reaches all workers at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/event.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/probe.h"
#include "proxy.h"
#include "stats.h"

/* What an upstream's checks look like; copied out of the config. */
struct health_spec {
	int		 type;		/* enum keel_check_type */
	struct core_tls_server *tls;	/* HTTPS upstreams: a client context */
	uint64_t	 interval;
	unsigned	 healthy, unhealthy;
};

struct health_check {
	const struct health_spec *spec;
	struct proxy_stat_server *st;	/* in the current shared region */
	struct core_probe	 probe;
	char		 request[1024];
	struct core_timer next;		/* the next check */
	uint64_t	 started;
	unsigned	 passes, fails;	/* in a row */
};

static struct {
	struct core_loop   *loop;
	struct core_timer   watch;	/* upstreams with no server usable */
	struct health_spec *specs;
	unsigned	    nspecs;
	struct health_check *checks;
	unsigned	    nchecks, cap;	/* in use, allocated */

	/* passive health shared through the table (gateways on one Redis) */
	char		    origin[17];	/* this master's random id */
	char		    node[64];
	uint64_t	   *published;	/* by server: the out_until we told the others */
	uint64_t	   *applied;	/* by server: the out_until another gave us */
	unsigned	    nshare;
} hc;

/* Tells whoever listens (monitoring) that a server went DOWN or came back. */
static void health_event(const struct proxy_stat_server *st, bool down, const char *why)
{
	char subject[160];

	snprintf(subject, sizeof(subject), "server %s/%s", st->upstream, st->name);
	if (down)
		core_event_raise("proxy", subject, "%s", why);
	else
		core_event_clear("proxy", subject, "UP");
}

/* One check ended: count it, move the state when a threshold is reached,
 * and plan the next one an interval after this one began. */
static void health_done(struct core_probe *p, bool ok, uint64_t ms, unsigned status,
			const char *why)
{
	struct health_check *c = p->data;
	struct proxy_stat_server *st = c->st;
	uint64_t now = core_loop_now(hc.loop);
	uint64_t next = c->started + c->spec->interval;

	proxy_stat_add(st->checks, 1);
	proxy_stat_set(st->check_wall, core_clock_wall_ms());
	proxy_stat_set(st->check_ms, ms);
	proxy_stat_set(st->check_status, status);
	proxy_stat_set(st->check_ok, ok ? 1 : 0);
	if (ok) {
		c->passes++;
		c->fails = 0;
		if (proxy_stat_get(st->check_down) && c->passes >= c->spec->healthy) {
			proxy_stat_set(st->back_at, now);
			proxy_stat_set(st->check_down, 0);
			core_log_info("health", "%s/%s UP after %u passed check%s", st->upstream,
				      st->name, c->passes, c->passes == 1 ? "" : "s");
			health_event(st, false, NULL);
		}
	} else {
		proxy_stat_add(st->checks_failed, 1);
		snprintf(st->check_error, sizeof(st->check_error), "%s", why);
		c->fails++;
		c->passes = 0;
		if (!proxy_stat_get(st->check_down) && c->fails >= c->spec->unhealthy) {
			proxy_stat_set(st->check_down, 1);
			core_log_warn("health", "%s/%s DOWN after %u failed check%s: %s",
				      st->upstream, st->name, c->fails, c->fails == 1 ? "" : "s", why);
			health_event(st, true, why);
		} else if (!proxy_stat_get(st->check_down))
			core_log_info("health", "%s/%s check failed (%u of %u): %s", st->upstream,
				      st->name, c->fails, c->spec->unhealthy, why);
	}
	core_timer_start(&c->next, core_clock_before(now, next) ? next - now : 0);
}

static void health_on_next(struct core_timer *t)
{
	struct health_check *c = t->data;

	c->started = core_loop_now(hc.loop);
	core_probe_start(&c->probe);
}

static void health_stop(void)
{
	unsigned i;

	for (i = 0; i < hc.nchecks; i++) {
		core_probe_cancel(&hc.checks[i].probe);
		core_timer_stop(&hc.checks[i].next);
	}
	/* The loop's current batch may still point at a probe in there. */
	core_loop_free_later(hc.loop, hc.checks, hc.cap, sizeof(*hc.checks));
	for (i = 0; i < hc.nspecs; i++)
		core_tls_server_drop(hc.specs[i].tls);
	free(hc.specs);
	free(hc.published);
	free(hc.applied);
	hc.checks = NULL;
	hc.specs = NULL;
	hc.published = hc.applied = NULL;
	hc.nchecks = hc.nspecs = hc.cap = hc.nshare = 0;
}

/* Builds the checks of a config against the current shared region. The
 * region lists servers in config order, which is how they are matched. */
static int health_build(const struct core_conf *conf, char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);
	const struct keel_upstream_conf *uc = k->upstreams.v;
	struct proxy_stats *st = proxy_stats_current();
	struct proxy_stat_server *sst;
	unsigned i, j, n = 0, s = 0;

	if (st == NULL)
		return CORE_OK;
	snprintf(hc.node, sizeof(hc.node), "%s", k->node);
	hc.published = calloc(st->nservers + 1, sizeof(*hc.published));
	hc.applied = calloc(st->nservers + 1, sizeof(*hc.applied));
	if (hc.published == NULL || hc.applied == NULL) {
		snprintf(err, errlen, "out of memory for %u servers", st->nservers);
		return CORE_ERROR;
	}
	hc.nshare = st->nservers;
	sst = proxy_stats_servers(st);
	for (i = 0; i < k->upstreams.n; i++)
		if (uc[i].health.type != KEEL_CHECK_OFF)
			n += (unsigned)uc[i].servers.n;
	if (n == 0)
		return CORE_OK;
	hc.specs = calloc(k->upstreams.n, sizeof(*hc.specs));
	hc.checks = core_loop_calloc(n, sizeof(*hc.checks));
	hc.cap = hc.checks != NULL ? n : 0;
	if (hc.specs == NULL || hc.checks == NULL) {
		snprintf(err, errlen, "out of memory for %u health checks", n);
		return CORE_ERROR;
	}
	for (i = 0; i < k->upstreams.n; i++) {
		const struct keel_health_conf *h = &uc[i].health;
		const struct keel_server_conf *sc = uc[i].servers.v;
		struct health_spec *spec = &hc.specs[hc.nspecs++];

		if (h->type == KEEL_CHECK_OFF) {
			s += (unsigned)uc[i].servers.n;
			continue;
		}
		spec->type = h->type;
		if (uc[i].tls.enabled && h->type == KEEL_CHECK_HTTP &&
		    (spec->tls = core_tls_client_new(uc[i].tls.ca_file, uc[i].tls.verify,
						     err, errlen)) == NULL)
			return CORE_ERROR;
		spec->interval = (uint64_t)h->interval;
		spec->healthy = (unsigned)h->healthy;
		spec->unhealthy = (unsigned)h->unhealthy;
		for (j = 0; j < uc[i].servers.n; j++, s++) {
			struct health_check *c = &hc.checks[hc.nchecks++];
			struct core_probe *p = &c->probe;

			c->spec = spec;
			c->st = &sst[s];
			core_probe_init(hc.loop, p);
			memcpy(&p->sa, &sc[j].address.sa, sizeof(p->sa));
			p->salen = sc[j].address.salen;
			p->tcp_only = h->type == KEEL_CHECK_TCP;
			core_probe_tls(p, spec->tls, uc[i].tls.server_name, &sc[j].address);
			p->request = c->request;
			p->reqlen = (size_t)snprintf(c->request, sizeof(c->request),
				"%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: keel-health\r\n"
				"Connection: close\r\n\r\n", h->method, h->path,
				h->host[0] ? h->host : sc[j].address.text);
			snprintf(p->status, sizeof(p->status), "%s", h->status);
			snprintf(p->body, sizeof(p->body), "%s", h->body);
			p->timeout = (uint64_t)h->timeout;
			p->done = health_done;
			p->data = c;
			core_timer_init(hc.loop, &c->next, health_on_next, c);
			/* Spread the first checks over the interval. */
			core_timer_start(&c->next, spec->interval * j / uc[i].servers.n);
		}
	}
	core_log_info("health", "checking %u server%s", hc.nchecks, hc.nchecks == 1 ? "" : "s");
	return CORE_OK;
}

/*
 * An upstream none of whose servers can take a request now (each is DOWN
 * by checks or out after max_fails) is a condition of its own: the
 * routes to it answer 502/503. Monitoring alerts on it, and a gateway
 * that shares its addresses with others (ha) gives them away while it
 * lasts. Read from the shared region, so every worker's passive health
 * counts, every 250 ms.
 */
#define HEALTH_WATCH_MS	250

struct stale {
	char	subject[sizeof(((struct core_event *)0)->subject)];
	bool	found;
};

static bool health_upstream_gone(const char *subject)
{
	struct proxy_stats *st = proxy_stats_current();
	struct proxy_stat_server *sst;
	unsigned i;

	if (st == NULL)
		return true;
	sst = proxy_stats_servers(st);
	for (i = 0; i < st->nservers; i++)
		if (strcmp(subject + 9, sst[i].upstream) == 0)
			return false;
	return true;
}

static void health_find_gone(const struct core_event *ev, void *arg)
{
	struct stale *st = arg;

	if (!st->found && strcmp(ev->source, "proxy") == 0 &&
	    strncmp(ev->subject, "upstream ", 9) == 0 && health_upstream_gone(ev->subject)) {
		snprintf(st->subject, sizeof(st->subject), "%s", ev->subject);
		st->found = true;
	}
}

/*
 * Passive health shared between gateways on one Redis (through core's
 * table, which cache/ mirrors there): a server one gateway's workers took
 * out (max_fails, a stall) is out on the others too, for what is left of
 * its time, one watch tick and the table's delay later at most. Each
 * master publishes its own decisions as "px.out.UPSTREAM/SERVER", expiring
 * when the server is due back, and applies the others'. Without a mirror
 * nothing leaves the box.
 */
#define SHARE_PREFIX	"px.out."

struct share_walk {
	struct proxy_stat_server *sst;
	unsigned	 n;
	uint64_t	 now, wall;
};

static void health_share_apply(const char *key, const char *val, uint64_t expires, void *arg)
{
	struct share_walk *w = arg;
	const char *name = key + strlen(SHARE_PREFIX), *comma = strchr(val, ',');
	uint64_t until;
	unsigned i;

	if (strncmp(key, SHARE_PREFIX, strlen(SHARE_PREFIX)) != 0 || comma == NULL ||
	    (size_t)(comma - val) != strlen(hc.origin) ||
	    memcmp(val, hc.origin, strlen(hc.origin)) == 0 || expires <= w->wall)
		return;				/* not one, or ours, or over */
	until = w->now + (expires - w->wall);
	for (i = 0; i < w->n; i++) {
		struct proxy_stat_server *s = &w->sst[i];
		size_t ul = strlen(s->upstream);

		if (strncmp(name, s->upstream, ul) != 0 || name[ul] != '/' ||
		    strcmp(name + ul + 1, s->name) != 0)
			continue;
		if (!core_clock_before(proxy_stat_get(s->out_until) + 50, until))
			return;			/* out as long already */
		proxy_stat_set(s->out_until, until);
		hc.applied[i] = until;
		core_log_warn("health", "%s/%s out for %llu ms more: gateway %s took it out",
			      s->upstream, s->name, (unsigned long long)(until - w->now),
			      comma + 1);
		return;
	}
}

static void health_share(struct proxy_stats *st, uint64_t now)
{
	struct share_walk w = { proxy_stats_servers(st), st->nservers, now,
				core_clock_wall_ms() };
	char key[160], val[96];
	unsigned i;

	if (!core_kv_mirrored() || hc.published == NULL || hc.nshare != st->nservers)
		return;
	for (i = 0; i < st->nservers; i++) {
		uint64_t out = proxy_stat_get(w.sst[i].out_until);

		if (!core_clock_before(now, out) || out == hc.applied[i] || out == hc.published[i])
			continue;
		snprintf(key, sizeof(key), SHARE_PREFIX "%s/%s", w.sst[i].upstream, w.sst[i].name);
		snprintf(val, sizeof(val), "%s,%s", hc.origin, hc.node[0] ? hc.node : "(unnamed)");
		if (core_kv_set(key, val, out - now) == CORE_OK)
			hc.published[i] = out;
	}
	core_kv_each_entry(health_share_apply, &w);
}

static void health_on_watch(struct core_timer *t)
{
	struct proxy_stats *st = proxy_stats_current();
	struct proxy_stat_server *sst;
	uint64_t now = core_loop_now(hc.loop);
	char subject[160];
	unsigned i, j;

	core_timer_start(t, HEALTH_WATCH_MS);
	if (st == NULL)
		return;
	health_share(st, now);
	sst = proxy_stats_servers(st);
	for (i = 0; i < st->nservers; i = j) {
		const struct proxy_stat_server *why = NULL;
		bool usable = false;

		for (j = i; j < st->nservers && strcmp(sst[j].upstream, sst[i].upstream) == 0; j++) {
			bool out = core_clock_before(now, proxy_stat_get(sst[j].out_until));

			if (!out && !proxy_stat_get(sst[j].check_down))
				usable = true;
			else if (why == NULL)
				why = &sst[j];
		}
		snprintf(subject, sizeof(subject), "upstream %s", sst[i].upstream);
		if (usable)
			core_event_clear("proxy", subject, "a server takes requests again");
		else if (!core_event_is_raised("proxy", subject))
			core_event_raise("proxy", subject, "no server can take requests (%s: %s)",
					 why->name, proxy_stat_get(why->check_down) ?
					 (why->check_error[0] ? why->check_error : "DOWN by checks") :
					 (why->last_error[0] ? why->last_error : "out after max_fails"));
	}
}

static int health_start(struct core_loop *loop, const struct core_conf *conf,
			char *err, size_t errlen)
{
	unsigned char id[8];
	unsigned i;

	hc.loop = loop;
	if (getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
		uint64_t x = core_clock_wall_ms() ^ (uint64_t)getpid() << 40;

		memcpy(id, &x, sizeof(id));
	}
	for (i = 0; i < sizeof(id); i++)
		snprintf(hc.origin + 2 * i, 3, "%02x", id[i]);
	core_timer_init(loop, &hc.watch, health_on_watch, NULL);
	core_timer_start(&hc.watch, HEALTH_WATCH_MS);
	return health_build(conf, err, errlen);
}

/* A DOWN condition of ours for a server no check watches any more. */
static void health_find_stale(const struct core_event *ev, void *arg)
{
	struct stale *st = arg;
	char subject[sizeof(ev->subject)];
	unsigned i;

	if (st->found || strcmp(ev->source, "proxy") != 0 || strncmp(ev->subject, "server ", 7))
		return;
	for (i = 0; i < hc.nchecks; i++) {
		snprintf(subject, sizeof(subject), "server %s/%s", hc.checks[i].st->upstream,
			 hc.checks[i].st->name);
		if (!strcmp(subject, ev->subject))
			return;
	}
	snprintf(st->subject, sizeof(st->subject), "%s", ev->subject);
	st->found = true;
}

/* A reload has a new shared region (counters and states carried over):
 * check again from scratch against it. A server removed (or no longer
 * checked) while DOWN has its condition cleared, or it would stay raised. */
static int health_reload(const struct core_conf *conf, char *err, size_t errlen)
{
	struct stale st;
	int rc;

	health_stop();
	rc = health_build(conf, err, errlen);
	for (;;) {
		st.found = false;
		core_event_each(health_find_stale, &st);
		if (!st.found)
			break;
		core_event_clear("proxy", st.subject, "no longer checked (configuration changed)");
	}
	for (;;) {
		st.found = false;
		core_event_each(health_find_gone, &st);
		if (!st.found)
			break;
		core_event_clear("proxy", st.subject, "no longer configured");
	}
	return rc;
}

static void health_module_stop(void)
{
	core_timer_stop(&hc.watch);
	health_stop();
}

static const struct core_module health_module = {
	.name = "health",
	.order = 60,
	.start = health_start,
	.reload = health_reload,
	.stop = health_module_stop,
};
CORE_MODULE(health_module);
