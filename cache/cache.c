/*
 * The cache modules: the shared Redis as keel sees it.
 *
 * In the master, one topology follows the Redis master for the reports:
 * the log, /metrics, the status API and alerts when the master is lost.
 * In every worker, the RESP front follows it on its own (front.c), so a
 * switch reaches each worker's clients without a hop through the master.
 * The master opens the front's listening sockets, which the workers
 * inherit and keep across reloads, and maps the counters they share.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cache.h"
#include "kv.h"
#include "topo.h"
#include "core/conf.h"
#include "core/core.h"
#include "core/event.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/module.h"
#include "core/net.h"
#include "core/settings.h"
#include "core/status.h"

#define FRONT_MAX_LISTEN	8

static struct {
	struct core_loop	*loop;
	struct cache_topo	*topo;		/* master: for the reports */
	struct cache_topo_opts	 opts;
	int			 db;
	struct cache_front_stats *stats;	/* shared with the workers */
	int			 lfd[FRONT_MAX_LISTEN];
	char			 lname[FRONT_MAX_LISTEN][64];
	unsigned		 nl;
} cm;

static bool redis_configured(const struct keel_redis_conf *r)
{
	return r->sentinels.n > 0 || r->nodes.n > 0;
}

static void topo_opts(const struct keel_redis_conf *r, struct cache_topo_opts *o)
{
	const struct core_conf_addr *a;
	size_t i;

	memset(o, 0, sizeof(*o));
	a = r->sentinels.v;
	for (i = 0; i < r->sentinels.n && i < CACHE_MAX_NODES; i++)
		cache_addr_from(&o->sentinels[o->nsentinels++], &a[i]);
	a = r->nodes.v;
	for (i = 0; i < r->nodes.n && i < CACHE_MAX_NODES; i++)
		cache_addr_from(&o->nodes[o->nnodes++], &a[i]);
	snprintf(o->master_name, sizeof(o->master_name), "%s", r->master_name);
	snprintf(o->username, sizeof(o->username), "%s", r->username);
	snprintf(o->password, sizeof(o->password), "%s", r->password);
	snprintf(o->sentinel_username, sizeof(o->sentinel_username), "%s", r->sentinel_username);
	snprintf(o->sentinel_password, sizeof(o->sentinel_password), "%s", r->sentinel_password);
	o->connect_timeout = (uint64_t)r->connect_timeout;
	o->command_timeout = (uint64_t)r->command_timeout;
	o->sentinel_timeout = (uint64_t)r->sentinel_timeout;
	o->check_interval = (uint64_t)r->check_interval;
}

/* ---- master: reports ------------------------------------------------------------------- */

static void master_changed(void *data, const struct cache_addr *m, const char *why)
{
	(void)data;
	cache_kv_master(m, &cm.opts, cm.db);
	if (m == NULL)
		core_event_raise("redis", "redis master", "%s", why != NULL ? why : "lost");
	else
		core_event_clear("redis", "redis master", "UP: %s:%d", m->ip, m->port);
}

static int cache_build(const struct core_conf *conf)
{
	const struct keel_redis_conf *r = &core_settings_of(conf)->redis;
	struct cache_topo_opts o;

	if (!redis_configured(r)) {
		if (cm.topo != NULL)
			core_log_info("redis", "no sentinels or nodes configured: not following Redis");
		cache_topo_free(cm.topo);
		cm.topo = NULL;
		cache_kv_master(NULL, NULL, 0);
		return CORE_OK;
	}
	topo_opts(r, &o);
	o.report = true;
	o.changed = master_changed;
	if (cm.topo != NULL && !memcmp(&o, &cm.opts, sizeof(o)))
		return CORE_OK;		/* the same Redis: keep following it */
	cache_topo_free(cm.topo);
	cache_kv_master(NULL, NULL, 0);
	cm.opts = o;
	cm.db = (int)r->db;
	if ((cm.topo = cache_topo_new(cm.loop, &o)) == NULL)
		return CORE_ERROR;
	if (o.nsentinels > 0)
		core_log_info("redis", "following master \"%s\" through %u Sentinel%s",
			      o.master_name, o.nsentinels, o.nsentinels == 1 ? "" : "s");
	else
		core_log_info("redis", "following %u node%s by ROLE", o.nnodes,
			      o.nnodes == 1 ? "" : "s");
	return CORE_OK;
}

static int cache_start(struct core_loop *loop, const struct core_conf *conf,
		       char *err, size_t errlen)
{
	cm.loop = loop;
	cache_kv_init(loop);
	if (cache_build(conf) != CORE_OK) {
		snprintf(err, errlen, "out of memory");
		return CORE_ERROR;
	}
	return CORE_OK;
}

static int cache_reload(const struct core_conf *conf, char *err, size_t errlen)
{
	return cache_start(cm.loop, conf, err, errlen);
}

static void cache_stop(void)
{
	cache_topo_free(cm.topo);
	cm.topo = NULL;
	cache_kv_shutdown();
}

static int cache_status_json(struct core_buf *out)
{
	const struct cache_front_stats *s = cm.stats;

	if (cm.topo == NULL)
		return core_buf_append(out, "null", 4);
	core_buf_printf(out, "{\"shared_state\":\"%s\",\"topology\":",
			core_kv_mirrored() ? "redis" : "memory");
	cache_topo_json(cm.topo, out);
	if (s != NULL && cm.nl > 0)
		core_buf_printf(out, ",\"front\":{\"clients\":%llu,\"connections\":%llu,"
				"\"replies\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,"
				"\"bad_commands\":%llu,\"dropped_at_failover\":%llu,"
				"\"waits_expired\":%llu}",
				(unsigned long long)s->clients, (unsigned long long)s->connections,
				(unsigned long long)s->replies, (unsigned long long)s->bytes_in,
				(unsigned long long)s->bytes_out, (unsigned long long)s->bad_commands,
				(unsigned long long)s->dropped_at_failover,
				(unsigned long long)s->waits_expired);
	return core_buf_append(out, "}", 1);
}

static int cache_status_metrics(struct core_buf *out)
{
	const struct cache_front_stats *s = cm.stats;

	if (cm.topo == NULL)
		return CORE_OK;
	cache_topo_metrics(cm.topo, out);
	if (s == NULL || cm.nl == 0)
		return CORE_OK;
	return core_buf_printf(out,
		"# HELP keel_redis_front_clients Clients connected to the RESP front.\n"
		"# TYPE keel_redis_front_clients gauge\nkeel_redis_front_clients %llu\n"
		"# HELP keel_redis_front_connections_total Clients accepted by the RESP front.\n"
		"# TYPE keel_redis_front_connections_total counter\n"
		"keel_redis_front_connections_total %llu\n"
		"# HELP keel_redis_front_replies_total Replies relayed to clients.\n"
		"# TYPE keel_redis_front_replies_total counter\nkeel_redis_front_replies_total %llu\n"
		"# HELP keel_redis_front_bad_commands_total Clients closed for a protocol error.\n"
		"# TYPE keel_redis_front_bad_commands_total counter\n"
		"keel_redis_front_bad_commands_total %llu\n"
		"# HELP keel_redis_front_dropped_total Clients disconnected because the master changed.\n"
		"# TYPE keel_redis_front_dropped_total counter\nkeel_redis_front_dropped_total %llu\n",
		(unsigned long long)s->clients, (unsigned long long)s->connections,
		(unsigned long long)s->replies, (unsigned long long)s->bad_commands,
		(unsigned long long)s->dropped_at_failover);
}

static const struct core_status_provider cache_status = {
	.name = "redis",
	.order = 40,
	.json = cache_status_json,
	.metrics = cache_status_metrics,
};
CORE_STATUS_PROVIDER(cache_status);

static const struct core_module cache_module = {
	.name = "redis",
	.order = 40,
	.start = cache_start,
	.reload = cache_reload,
	.stop = cache_stop,
};
CORE_MODULE(cache_module);

/* ---- workers: the RESP front -------------------------------------------------------------- */

/* Master: the front's sockets, keeping those already open. */
static int front_prepare(const struct core_conf *conf, const struct core_conf *prev,
			 char *err, size_t errlen)
{
	const struct keel_redis_conf *r = &core_settings_of(conf)->redis;
	const struct core_conf_addr *a = r->front.listen.v;
	int lfd[FRONT_MAX_LISTEN];
	bool kept[FRONT_MAX_LISTEN] = { false };
	unsigned i, j, n = 0;

	(void)prev;
	if (cm.stats == NULL) {
		cm.stats = mmap(NULL, sizeof(*cm.stats), PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (cm.stats == MAP_FAILED) {
			cm.stats = NULL;
			snprintf(err, errlen, "shared memory for the Redis front: %s",
				 strerror(errno));
			return CORE_ERROR;
		}
	}
	for (i = 0; i < r->front.listen.n && i < FRONT_MAX_LISTEN; i++, n++) {
		for (j = 0; j < cm.nl; j++)
			if (!kept[j] && !strcmp(cm.lname[j], a[i].text))
				break;
		if (j < cm.nl) {
			lfd[i] = cm.lfd[j];
			kept[j] = true;
			continue;
		}
		if ((lfd[i] = core_net_listen(&a[i], 1024, err, errlen)) == -1) {
			while (i-- > 0) {
				for (j = 0; j < cm.nl && cm.lfd[j] != lfd[i]; j++)
					;
				if (j == cm.nl)
					close(lfd[i]);
			}
			return CORE_ERROR;
		}
		core_log_info("redis", "front listening on %s", a[i].text);
	}
	for (j = 0; j < cm.nl; j++)
		if (!kept[j]) {
			core_log_info("redis", "front no longer listening on %s", cm.lname[j]);
			close(cm.lfd[j]);
		}
	for (i = 0; i < n; i++) {
		cm.lfd[i] = lfd[i];
		snprintf(cm.lname[i], sizeof(cm.lname[i]), "%s", a[i].text);
	}
	cm.nl = n;
	return CORE_OK;
}

static size_t front_inherit(int *fds, size_t max)
{
	size_t i;

	for (i = 0; i < cm.nl && i < max; i++)
		fds[i] = cm.lfd[i];
	return i;
}

static bool front_running;

static int front_start(struct core_loop *loop, const struct core_conf *conf,
		       char *err, size_t errlen)
{
	const struct keel_redis_conf *r = &core_settings_of(conf)->redis;
	struct cache_topo_opts o;

	if (cm.nl == 0 || !redis_configured(r))
		return CORE_OK;
	topo_opts(r, &o);
	if (cache_front_start(loop, &r->front, cm.lfd, (const char (*)[64])cm.lname, cm.nl, cm.stats, &o, err, errlen) != CORE_OK)
		return CORE_ERROR;
	front_running = true;
	return CORE_OK;
}

static unsigned front_drain(void)
{
	return front_running ? cache_front_drain() : 0;
}

static void front_stop(void)
{
	if (front_running)
		cache_front_stop();
	front_running = false;
}

static const struct core_module front_module = {
	.name = "redis-front",
	.order = 55,
	.worker = true,
	.prepare = front_prepare,
	.inherit = front_inherit,
	.start = front_start,
	.drain = front_drain,
	.stop = front_stop,
};
CORE_MODULE(front_module);
