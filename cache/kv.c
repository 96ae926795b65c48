/* The mirror of core's key-value table on the Redis master; see kv.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "kv.h"
#include "core/clock.h"
#include "core/core.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/loop.h"

#define KV_PREFIX	"keel:kv:"
#define KV_CHANNEL	"keel:kv"

static struct {
	struct core_loop  *loop;
	struct cache_conn *cmd, *sub;	/* to the master: commands, pub/sub */
	struct cache_addr  master;
	struct cache_topo_opts o;
	int		   db;
	bool		   have_master, ready;
	struct core_timer  retry;
} kv;

/* ---- the Redis mirror ---------------------------------------------------------------------- */

static void kv_reconnect(void);

static redisAsyncContext *kv_ctx(void)
{
	return kv.ready && kv.cmd != NULL ? cache_conn_ctx(kv.cmd) : NULL;
}

static void kv_push(redisAsyncContext *ac, const char *key, const char *val, uint64_t expires)
{
	uint64_t now = core_clock_wall_ms();

	if (expires != 0 && expires <= now)
		return;
	if (expires != 0)
		redisAsyncCommand(ac, NULL, NULL, "SET " KV_PREFIX "%s %s PX %llu", key, val,
				  (unsigned long long)(expires - now));
	else
		redisAsyncCommand(ac, NULL, NULL, "SET " KV_PREFIX "%s %s", key, val);
	redisAsyncCommand(ac, NULL, NULL, "PUBLISH " KV_CHANNEL " %s", key);
}

/* A key's value and time to live, as Redis has them now. */
static void got_value(redisAsyncContext *ac, void *reply, void *data)
{
	const redisReply *r = reply;
	char *key = data;

	(void)ac;
	if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
		const redisReply *v = r->element[0], *ttl = r->element[1];

		if (v->type == REDIS_REPLY_STRING && ttl->type == REDIS_REPLY_INTEGER)
			core_kv_store(key, v->str, ttl->integer > 0 ?
				      core_clock_wall_ms() + (uint64_t)ttl->integer : 0);
		else if (v->type == REDIS_REPLY_NIL)
			core_kv_forget(key);
	}
	free(key);
}

static void kv_fetch(redisAsyncContext *ac, const char *key)
{
	char *k = strdup(key);

	if (k == NULL)
		return;
	/* Both in one round trip, consistent with each other. */
	redisAsyncCommand(ac, NULL, NULL, "MULTI");
	redisAsyncCommand(ac, NULL, NULL, "GET " KV_PREFIX "%s", key);
	redisAsyncCommand(ac, NULL, NULL, "PTTL " KV_PREFIX "%s", key);
	redisAsyncCommand(ac, got_value, k, "EXEC");
}

static void scanned(redisAsyncContext *ac, void *reply, void *data)
{
	const redisReply *r = reply;
	size_t i;

	(void)data;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[1]->type != REDIS_REPLY_ARRAY)
		return;
	for (i = 0; i < r->element[1]->elements; i++) {
		const redisReply *k = r->element[1]->element[i];

		if (k->type == REDIS_REPLY_STRING && !strncmp(k->str, KV_PREFIX, strlen(KV_PREFIX)))
			kv_fetch(ac, k->str + strlen(KV_PREFIX));
	}
	if (r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "0") != 0)
		redisAsyncCommand(ac, scanned, NULL, "SCAN %s MATCH " KV_PREFIX "* COUNT 500",
				  r->element[0]->str);
}

static void kv_hello(struct cache_conn *c)
{
	cache_conn_hello(c, kv.o.username, kv.o.password, NULL, NULL);
}

static void push_entry(const char *key, const char *val, uint64_t expires, void *arg)
{
	kv_push(arg, key, val, expires);
}

static void kv_close(struct cache_conn **cp);

/* A refused SELECT (BUSY while a script runs, a bad db) would leave the
 * writes in another database: the connection goes, and is opened again. */
static void selected(redisAsyncContext *ac, void *reply, void *data)
{
	const redisReply *r = reply;

	(void)data;
	if (r != NULL && r->type == REDIS_REPLY_ERROR && ac->data == kv.cmd) {
		core_log_debug("redis", "shared state: SELECT %d: %s", kv.db, r->str);
		kv_close(&kv.cmd);
		kv.ready = false;
		if (kv.have_master)
			core_timer_start(&kv.retry, 1000);
	}
}

static void cmd_up(struct cache_conn *c, const char *why)
{
	redisAsyncContext *ac = cache_conn_ctx(c);
	unsigned n = core_kv_count();

	(void)why;
	if (c != kv.cmd)
		return;
	kv_hello(c);
	redisAsyncCommand(ac, selected, NULL, "SELECT %d", kv.db);
	kv.ready = true;
	/* What was written while Redis was away goes there first; then
	 * everything the other gateways wrote comes here. */
	core_kv_each_entry(push_entry, ac);
	redisAsyncCommand(ac, scanned, NULL, "SCAN 0 MATCH " KV_PREFIX "* COUNT 500");
	core_log_info("redis", "shared state mirrored to the master (%u key%s here)", n,
		      n == 1 ? "" : "s");
}

static void cmd_down(struct cache_conn *c, const char *why)
{
	if (c != kv.cmd)
		return;
	kv.cmd = NULL;
	/* Said once, not at every retry while the master is busy. */
	core_log_write(kv.ready ? CORE_LOG_INFO : CORE_LOG_DEBUG, "redis",
		       "shared state kept in memory only: %s", why);
	kv.ready = false;
	if (kv.have_master)
		core_timer_start(&kv.retry, 1000);
}

static void message(redisAsyncContext *ac, void *reply, void *data)
{
	const redisReply *r = reply;
	redisAsyncContext *cmd = kv_ctx();

	(void)data;
	if (r != NULL && r->type == REDIS_REPLY_ERROR && ac->data == kv.sub) {
		/* SUBSCRIBE refused (BUSY): subscribed again later. */
		core_log_debug("redis", "shared state: SUBSCRIBE: %s", r->str);
		kv_close(&kv.sub);
		if (kv.have_master)
			core_timer_start(&kv.retry, 1000);
		return;
	}
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING || cmd == NULL)
		return;
	/* Subscribed: what others wrote between the load at connect and now
	 * was published to nobody here, so load everything once more. */
	if (!strcmp(r->element[0]->str, "subscribe"))
		redisAsyncCommand(cmd, scanned, NULL, "SCAN 0 MATCH " KV_PREFIX "* COUNT 500");
	else if (!strcmp(r->element[0]->str, "message") &&
		 r->element[2]->type == REDIS_REPLY_STRING)
		kv_fetch(cmd, r->element[2]->str);
}

static void sub_up(struct cache_conn *c, const char *why)
{
	redisAsyncContext *ac = cache_conn_ctx(c);

	(void)why;
	if (c != kv.sub)
		return;
	kv_hello(c);
	redisAsyncCommand(ac, message, NULL, "SUBSCRIBE " KV_CHANNEL);
}

/* Killed (CLIENT KILL) or timed out: subscribed again after a while, and
 * the table loaded again once it is. */
static void sub_down(struct cache_conn *c, const char *why)
{
	if (c != kv.sub)
		return;
	kv.sub = NULL;
	core_log_debug("redis", "shared state: subscription lost: %s", why);
	if (kv.have_master)
		core_timer_start(&kv.retry, 1000);
}

static void kv_close(struct cache_conn **cp)
{
	struct cache_conn *c = *cp;

	*cp = NULL;
	if (c != NULL)
		cache_conn_close(c);
}

/* *slot holds the connection until it goes (see cache_conn_own). */
static void kv_open(struct cache_conn **slot, const struct cache_conn_opts *co)
{
	struct cache_conn *c;
	char why[160];

	if ((c = cache_conn_open(kv.loop, co, why, sizeof(why))) == NULL) {
		core_log_warn("redis", "shared state: %s", why);
		return;
	}
	cache_conn_own(c, slot);
}

static void kv_open_cmd(struct cache_conn_opts *co)
{
	co->up = cmd_up;
	co->down = cmd_down;
	co->name = "keel-kv";
	kv_open(&kv.cmd, co);
}

static void kv_open_sub(struct cache_conn_opts *co)
{
	co->up = sub_up;
	co->down = sub_down;
	co->name = "keel-kv-sub";
	co->command_timeout = 0;	/* messages come when they come */
	kv_open(&kv.sub, co);
}

/* To the master, with the topology's timeouts. */
static struct cache_conn_opts kv_opts(void)
{
	return (struct cache_conn_opts){
		.ip = kv.master.ip, .port = kv.master.port,
		.connect_timeout = kv.o.connect_timeout, .command_timeout = kv.o.command_timeout,
	};
}

static void kv_reconnect(void)
{
	struct cache_conn_opts co = kv_opts();

	kv.ready = false;
	kv_close(&kv.cmd);
	kv_close(&kv.sub);
	if (!kv.have_master)
		return;
	kv_open_cmd(&co);
	kv_open_sub(&co);
}

/* ---- the interface -------------------------------------------------------------------------- */

/* Whichever of the two went is opened again; the other is left alone. */
static void kv_on_retry(struct core_timer *t)
{
	struct cache_conn_opts co = kv_opts();

	(void)t;
	if (!kv.have_master)
		return;
	if (kv.cmd == NULL)
		kv_open_cmd(&co);
	if (kv.sub == NULL)
		kv_open_sub(&co);
	if (kv.cmd == NULL || kv.sub == NULL)
		core_timer_start(&kv.retry, 1000);	/* could not even start one */
}

static void mirror_set(const char *key, const char *val, uint64_t expires, void *arg)
{
	redisAsyncContext *ac = kv_ctx();

	(void)arg;
	if (ac != NULL)
		kv_push(ac, key, val, expires);
}

static void mirror_del(const char *key, void *arg)
{
	redisAsyncContext *ac = kv_ctx();

	(void)arg;
	if (ac != NULL) {
		redisAsyncCommand(ac, NULL, NULL, "DEL " KV_PREFIX "%s", key);
		redisAsyncCommand(ac, NULL, NULL, "PUBLISH " KV_CHANNEL " %s", key);
	}
}

static bool mirror_up(void *arg)
{
	(void)arg;
	return kv_ctx() != NULL;
}

static const struct core_kv_mirror kv_mirror = {
	.set = mirror_set,
	.del = mirror_del,
	.up = mirror_up,
};

void cache_kv_init(struct core_loop *loop)
{
	kv.loop = loop;
	core_timer_init(loop, &kv.retry, kv_on_retry, NULL);
	core_kv_mirror_set(&kv_mirror);
}

void cache_kv_shutdown(void)
{
	core_kv_mirror_set(NULL);
	kv.have_master = false;
	if (kv.loop != NULL)
		core_timer_stop(&kv.retry);
	kv_reconnect();
}

void cache_kv_master(const struct cache_addr *m, const struct cache_topo_opts *o, int db)
{
	kv.have_master = m != NULL;
	if (m != NULL) {
		kv.master = *m;
		kv.o = *o;
		kv.db = db;
	}
	if (kv.loop != NULL)
		kv_reconnect();
}
