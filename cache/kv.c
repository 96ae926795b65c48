/* The shared key-value table; see kv.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "kv.h"
#include "core/clock.h"
#include "core/core.h"
#include "core/log.h"
#include "core/loop.h"

#define KV_BUCKETS	256
#define KV_PREFIX	"keel:kv:"
#define KV_CHANNEL	"keel:kv"
#define KV_MAX		4096		/* entries; past it the soonest to expire goes */

struct kv_entry {
	struct kv_entry	*next;
	uint64_t	 expires;	/* wall ms; 0: never */
	char		*val;
	char		 key[];
};

static struct {
	struct core_loop  *loop;
	struct kv_entry   *b[KV_BUCKETS];
	unsigned	   n;
	struct cache_conn *cmd, *sub;	/* to the master: commands, pub/sub */
	struct cache_addr  master;
	struct cache_topo_opts o;
	int		   db;
	bool		   have_master, ready;
	struct core_timer  retry;
} kv;

static unsigned kv_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % KV_BUCKETS;
}

static bool expired(const struct kv_entry *e, uint64_t now)
{
	return e->expires != 0 && e->expires <= now;
}

static struct kv_entry **kv_slot(const char *key)
{
	struct kv_entry **pp = &kv.b[kv_hash(key)];

	while (*pp != NULL && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

static void kv_unlink(struct kv_entry **pp)
{
	struct kv_entry *e = *pp;

	*pp = e->next;
	free(e->val);
	free(e);
	kv.n--;
}

/* Makes room: the expired go first, then the one expiring soonest. */
static void kv_evict(void)
{
	uint64_t now = core_clock_wall_ms();
	struct kv_entry **victim = NULL;
	unsigned i;

	for (i = 0; i < KV_BUCKETS; i++) {
		struct kv_entry **pp = &kv.b[i];

		while (*pp != NULL) {
			if (expired(*pp, now)) {
				kv_unlink(pp);
				continue;
			}
			if (victim == NULL || ((*pp)->expires != 0 &&
					       ((*victim)->expires == 0 ||
						(*pp)->expires < (*victim)->expires)))
				victim = pp;
			pp = &(*pp)->next;
		}
	}
	if (kv.n >= KV_MAX && victim != NULL)
		kv_unlink(victim);
}

/* The local table alone. */
static int kv_put(const char *key, const char *val, uint64_t expires)
{
	struct kv_entry **pp = kv_slot(key), *e = *pp;
	char *v = strdup(val);

	if (v == NULL)
		return CORE_ERROR;
	if (e == NULL) {
		if (kv.n >= KV_MAX) {
			kv_evict();
			pp = kv_slot(key);
		}
		if ((e = calloc(1, sizeof(*e) + strlen(key) + 1)) == NULL) {
			free(v);
			return CORE_ERROR;
		}
		strcpy(e->key, key);
		e->next = *pp;
		*pp = e;
		kv.n++;
	} else
		free(e->val);
	e->val = v;
	e->expires = expires;
	return CORE_OK;
}

static void kv_remove(const char *key)
{
	struct kv_entry **pp = kv_slot(key);

	if (*pp != NULL)
		kv_unlink(pp);
}

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
			kv_put(key, v->str, ttl->integer > 0 ?
			       core_clock_wall_ms() + (uint64_t)ttl->integer : 0);
		else if (v->type == REDIS_REPLY_NIL)
			kv_remove(key);
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

static void kv_auth(redisAsyncContext *ac)
{
	cache_conn_auth(ac, kv.o.username, kv.o.password, NULL, NULL);
}

static void cmd_up(struct cache_conn *c, const char *why)
{
	redisAsyncContext *ac = cache_conn_ctx(c);
	unsigned i;

	(void)why;
	if (c != kv.cmd)
		return;
	kv_auth(ac);
	redisAsyncCommand(ac, NULL, NULL, "SELECT %d", kv.db);
	kv.ready = true;
	/* What was written while Redis was away goes there first; then
	 * everything the other gateways wrote comes here. */
	for (i = 0; i < KV_BUCKETS; i++) {
		struct kv_entry *e;

		for (e = kv.b[i]; e != NULL; e = e->next)
			kv_push(ac, e->key, e->val, e->expires);
	}
	redisAsyncCommand(ac, scanned, NULL, "SCAN 0 MATCH " KV_PREFIX "* COUNT 500");
	core_log_info("redis", "shared state mirrored to the master (%u key%s here)", kv.n,
		      kv.n == 1 ? "" : "s");
}

static void cmd_down(struct cache_conn *c, const char *why)
{
	if (c != kv.cmd)
		return;
	kv.cmd = NULL;
	kv.ready = false;
	core_log_info("redis", "shared state kept in memory only: %s", why);
	if (kv.have_master)
		core_timer_start(&kv.retry, 1000);
}

static void message(redisAsyncContext *ac, void *reply, void *data)
{
	const redisReply *r = reply;
	redisAsyncContext *cmd = kv_ctx();

	(void)ac;
	(void)data;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[2]->type != REDIS_REPLY_STRING || cmd == NULL)
		return;
	if (!strcmp(r->element[0]->str, "message"))
		kv_fetch(cmd, r->element[2]->str);
}

static void sub_up(struct cache_conn *c, const char *why)
{
	redisAsyncContext *ac = cache_conn_ctx(c);

	(void)why;
	if (c != kv.sub)
		return;
	kv_auth(ac);
	redisAsyncCommand(ac, message, NULL, "SUBSCRIBE " KV_CHANNEL);
}

static void sub_down(struct cache_conn *c, const char *why)
{
	(void)why;
	if (c == kv.sub)
		kv.sub = NULL;
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

static void kv_reconnect(void)
{
	struct cache_conn_opts co = {
		.ip = kv.master.ip, .port = kv.master.port,
		.connect_timeout = kv.o.connect_timeout, .command_timeout = kv.o.command_timeout,
	};

	kv.ready = false;
	kv_close(&kv.cmd);
	kv_close(&kv.sub);
	if (!kv.have_master)
		return;
	co.up = cmd_up;
	co.down = cmd_down;
	kv_open(&kv.cmd, &co);
	co.up = sub_up;
	co.down = sub_down;
	co.command_timeout = 0;		/* messages come when they come */
	kv_open(&kv.sub, &co);
}

/* ---- the interface -------------------------------------------------------------------------- */

static void kv_on_retry(struct core_timer *t)
{
	(void)t;
	if (kv.have_master && kv.cmd == NULL)
		kv_reconnect();
}

void cache_kv_init(struct core_loop *loop)
{
	kv.loop = loop;
	core_timer_init(loop, &kv.retry, kv_on_retry, NULL);
}

void cache_kv_shutdown(void)
{
	unsigned i;

	kv.have_master = false;
	if (kv.loop != NULL)
		core_timer_stop(&kv.retry);
	kv_reconnect();
	for (i = 0; i < KV_BUCKETS; i++)
		while (kv.b[i] != NULL)
			kv_unlink(&kv.b[i]);
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

int cache_kv_set(const char *key, const char *val, uint64_t ttl_ms)
{
	uint64_t expires = ttl_ms ? core_clock_wall_ms() + ttl_ms : 0;
	redisAsyncContext *ac;

	if (kv_put(key, val, expires) != CORE_OK)
		return CORE_ERROR;
	if ((ac = kv_ctx()) != NULL)
		kv_push(ac, key, val, expires);
	return CORE_OK;
}

const char *cache_kv_get(const char *key)
{
	struct kv_entry **pp = kv_slot(key);

	if (*pp == NULL)
		return NULL;
	if (expired(*pp, core_clock_wall_ms())) {
		kv_unlink(pp);
		return NULL;
	}
	return (*pp)->val;
}

void cache_kv_del(const char *key)
{
	redisAsyncContext *ac;

	kv_remove(key);
	if ((ac = kv_ctx()) != NULL) {
		redisAsyncCommand(ac, NULL, NULL, "DEL " KV_PREFIX "%s", key);
		redisAsyncCommand(ac, NULL, NULL, "PUBLISH " KV_CHANNEL " %s", key);
	}
}

void cache_kv_each(const char *prefix, void (*fn)(const char *key, const char *val, void *arg),
		   void *arg)
{
	uint64_t now = core_clock_wall_ms();
	size_t n = strlen(prefix);
	unsigned i;

	for (i = 0; i < KV_BUCKETS; i++) {
		struct kv_entry *e, *next;

		for (e = kv.b[i]; e != NULL; e = next) {
			next = e->next;		/* fn may delete e */
			if (!expired(e, now) && !strncmp(e->key, prefix, n))
				fn(e->key, e->val, arg);
		}
	}
}

int cache_kv_mirrored(void)
{
	return kv_ctx() != NULL;
}
