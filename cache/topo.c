/*
 * Finding the Redis master; see topo.h.
 *
 * Sentinel mode, after the Sentinel client guidelines:
 *   ask     SENTINEL get-master-addr-by-name, one Sentinel at a time, each
 *           with a short timeout; the one that answers moves to the front
 *           and its SENTINEL sentinels list adds the ones we did not know;
 *   verify  ROLE on that address must say "master" before anyone uses it;
 *   follow  one connection stays subscribed to +switch-master, and ROLE
 *           runs on the master every check interval.
 * A lost master (unreachable, ROLE saying replica, a switch) is reported
 * at once, so users drop their connections to it, then the address is
 * asked for again with backoff and jitter until one verifies.
 *
 * A busy master is not a lost one. A script or a slow command keeps Redis
 * from answering ROLE for as long as it runs (then it answers BUSY), and
 * an operator's CLIENT KILL may close keel's check connection: while a new
 * connection to the master still connects, it is alive, its clients keep
 * their connections, and ROLE is asked again on a new connection. Only a
 * master that cannot be reached, says it is not the master, or that the
 * Sentinels replace is lost.
 *
 * Static mode asks every node for its ROLE and verifies the one master.
 *
 * Connections that a newer step replaced are closed, and their late
 * callbacks are told apart by comparing the connection with the one the
 * topology holds now.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "topo.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/core.h"
#include "core/log.h"
#include "core/loop.h"

#define BACKOFF_BASE	25	/* ms, doubled per failure in a row */
#define BACKOFF_MAX	1000

const char *cache_node_role_str(enum cache_node_role r)
{
	switch (r) {
	case CACHE_ROLE_UNKNOWN:	return "unknown";
	case CACHE_ROLE_MASTER:		return "master";
	case CACHE_ROLE_REPLICA:	return "replica";
	case CACHE_ROLE_SENTINEL:	return "sentinel";
	case CACHE_ROLE_DOWN:		return "down";
	}
	return "?";
}

const char *cache_topo_state_str(enum cache_topo_state st)
{
	switch (st) {
	case CACHE_TOPO_IDLE:		return "idle";
	case CACHE_TOPO_ASKING:		return "asking";
	case CACHE_TOPO_VERIFYING:	return "verifying";
	case CACHE_TOPO_WAITING:	return "waiting";
	}
	return "?";
}

struct topo_node {			/* static mode: a node and its probe */
	struct cache_topo *t;
	struct cache_addr addr;
	struct cache_conn *conn;
	enum cache_node_role role;
	long long	 offset;
	char		 why[160];
};

struct topo_replica {
	struct cache_addr addr;
	long long	 offset;
};

struct cache_topo {
	struct core_loop  *loop;
	struct cache_topo_opts o;	/* o.sentinels is kept in answer order */
	enum cache_topo_state state;
	struct core_timer  timer;	/* backoff, or the next ROLE check */
	unsigned	   fails;	/* in a row */

	struct cache_conn *ask;		/* the Sentinel being asked */
	unsigned	   asking;
	struct cache_conn *refresh;	/* SENTINEL sentinels, after an answer */
	bool		   sentinel_ok[CACHE_MAX_NODES];

	struct cache_conn *sub;		/* subscribed to +switch-master */
	struct cache_addr  sub_addr;
	unsigned	   sub_at, sub_fails;
	bool		   sub_lost;	/* a switch may have been missed */
	struct core_timer  sub_timer;

	struct cache_conn *chk;		/* ROLE on the candidate or the master */
	struct cache_addr  cand;
	bool		   check_pending;
	uint64_t	   busy_since;	/* monotonic ms; 0: it answers */
	uint64_t	   busy_wall;
	char		   busy_why[120];

	struct topo_node   nodes[CACHE_MAX_NODES];
	unsigned	   probing;

	bool		   have_master;
	struct cache_addr  master;
	uint64_t	   epoch;
	long long	   offset;
	struct topo_replica replicas[CACHE_MAX_REPLICAS];
	unsigned	   nreplicas;

	uint64_t	   lost_at, switch_at;	/* monotonic ms; 0: none */
	uint64_t	   since_wall, failover_wall;
	uint64_t	   failovers, recovery_ms, switch_ms;
	char		   last_error[160];
	char		   auth_error[128];
	unsigned	   rng;
};

static void topo_resolve(struct cache_topo *t);
static void topo_verify(struct cache_topo *t, const struct cache_addr *a);

void cache_addr_from(struct cache_addr *a, const struct core_conf_addr *ca)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)&ca->sa;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ca->sa;

	if (ca->sa.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &in6->sin6_addr, a->ip, sizeof(a->ip));
		a->port = ntohs(in6->sin6_port);
	} else {
		inet_ntop(AF_INET, &in->sin_addr, a->ip, sizeof(a->ip));
		a->port = ntohs(in->sin_port);
	}
}

static bool addr_eq(const struct cache_addr *a, const struct cache_addr *b)
{
	return a->port == b->port && !strcmp(a->ip, b->ip);
}

static const char *addr_str(const struct cache_addr *a, char *buf, size_t len)
{
	snprintf(buf, len, strchr(a->ip, ':') ? "[%s]:%d" : "%s:%d", a->ip, a->port);
	return buf;
}

/* Reports go to the log at info in the process that reports, at debug in
 * the others (every worker follows the master on its own). */
#define topo_log(t, lvl, ...)						\
	core_log_write((t)->o.report ? (lvl) : CORE_LOG_DEBUG, "redis", __VA_ARGS__)

static void topo_error(struct cache_topo *t, const char *fmt, ...) CORE_PRINTF(2, 3);

static void topo_error(struct cache_topo *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->last_error, sizeof(t->last_error), fmt, ap);
	va_end(ap);
}

/* Exponential, capped, and jittered to half to full, so a fleet of
 * workers and gateways does not knock in step. */
static uint64_t topo_backoff(struct cache_topo *t, unsigned fails)
{
	uint64_t d = (uint64_t)BACKOFF_BASE << (fails < 6 ? fails : 6);

	if (d > BACKOFF_MAX)
		d = BACKOFF_MAX;
	t->rng = t->rng * 1103515245u + 12345u;
	return d / 2 + (t->rng >> 8) % (d / 2 + 1);
}

static void topo_close(struct cache_conn **cp)
{
	struct cache_conn *c = *cp;

	*cp = NULL;
	if (c != NULL)
		cache_conn_close(c);
}

/* Opens a connection held by *slot (see cache_conn_own): it leaves the
 * slot by itself when it goes, so the slot never points at a freed one. */
static struct cache_conn *topo_open(struct cache_topo *t, struct cache_conn **slot,
				    const struct cache_addr *a, bool sentinel, const char *name,
				    uint64_t command_timeout, cache_conn_fn up,
				    cache_conn_fn down, void *data)
{
	struct cache_conn_opts co = {
		.ip = a->ip, .port = a->port,
		.connect_timeout = sentinel ? t->o.sentinel_timeout : t->o.connect_timeout,
		.command_timeout = command_timeout,
		.up = up, .down = down, .data = data, .name = name,
	};
	struct cache_conn *c;
	char why[160];

	topo_close(slot);
	if ((c = cache_conn_open(t->loop, &co, why, sizeof(why))) == NULL) {
		topo_error(t, "%s", why);
		return NULL;
	}
	cache_conn_own(c, slot);
	return c;
}

/* A refused AUTH is what the next failure is about (not its NOAUTH). */
static void auth_reply(redisAsyncContext *ac, void *reply, void *data)
{
	struct cache_topo *t = data;
	const redisReply *r = reply;

	(void)ac;
	if (r != NULL && r->type == REDIS_REPLY_ERROR)
		snprintf(t->auth_error, sizeof(t->auth_error), "AUTH: %s", r->str);
}

/* AUTH first when a password is set, and the connection's name:
 * pipelined ahead of what follows. */
static void topo_hello(struct cache_topo *t, struct cache_conn *c, const char *user,
		       const char *pass)
{
	cache_conn_hello(c, user, pass, auth_reply, t);
}

static bool reply_str(const redisReply *r, const char *s)
{
	return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
	       !strcasecmp(r->str, s);
}

/* ROLE's answer: the role, and for a master its offset and replicas. */
static enum cache_node_role role_parse(const redisReply *r, long long *offset, const char **why)
{
	if (r == NULL) {
		*why = "no answer";
		return CACHE_ROLE_DOWN;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		*why = r->str;
		return CACHE_ROLE_UNKNOWN;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
		*why = "ROLE answered something else";
		return CACHE_ROLE_UNKNOWN;
	}
	*why = NULL;
	if (reply_str(r->element[0], "master")) {
		if (r->elements > 1 && r->element[1]->type == REDIS_REPLY_INTEGER)
			*offset = r->element[1]->integer;
		return CACHE_ROLE_MASTER;
	}
	if (reply_str(r->element[0], "slave") || reply_str(r->element[0], "replica"))
		return CACHE_ROLE_REPLICA;
	if (reply_str(r->element[0], "sentinel"))
		return CACHE_ROLE_SENTINEL;
	*why = "ROLE answered an unknown role";
	return CACHE_ROLE_UNKNOWN;
}

static void replicas_parse(struct cache_topo *t, const redisReply *r)
{
	const redisReply *list;
	size_t i;

	t->nreplicas = 0;
	if (r->elements < 3 || (list = r->element[2])->type != REDIS_REPLY_ARRAY)
		return;
	for (i = 0; i < list->elements && t->nreplicas < CACHE_MAX_REPLICAS; i++) {
		const redisReply *e = list->element[i];
		struct topo_replica *rp = &t->replicas[t->nreplicas];

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_STRING ||
		    e->element[1]->type != REDIS_REPLY_STRING ||
		    e->element[2]->type != REDIS_REPLY_STRING)
			continue;
		snprintf(rp->addr.ip, sizeof(rp->addr.ip), "%s", e->element[0]->str);
		rp->addr.port = atoi(e->element[1]->str);
		rp->offset = atoll(e->element[2]->str);
		t->nreplicas++;
	}
}

/* ---- having a master, and losing it ---------------------------------------------- */

static void topo_set_master(struct cache_topo *t, const struct cache_addr *a)
{
	uint64_t now = core_loop_now(t->loop);
	char s[80];

	t->have_master = true;
	t->master = *a;
	t->epoch++;
	t->fails = 0;
	t->busy_since = 0;
	t->state = CACHE_TOPO_IDLE;
	t->since_wall = core_clock_wall_ms();
	t->last_error[0] = '\0';
	if (t->lost_at != 0) {
		t->recovery_ms = now - t->lost_at;
		if (t->switch_at != 0 && t->switch_at >= t->lost_at) {
			t->switch_ms = now - t->switch_at;
			topo_log(t, CORE_LOG_INFO, "master is %s (ROLE says master), %llu ms after "
				 "the old one was lost, %llu ms after +switch-master",
				 addr_str(a, s, sizeof(s)), (unsigned long long)t->recovery_ms,
				 (unsigned long long)t->switch_ms);
		} else
			topo_log(t, CORE_LOG_INFO, "master is %s (ROLE says master), %llu ms after "
				 "the old one was lost", addr_str(a, s, sizeof(s)),
				 (unsigned long long)t->recovery_ms);
	} else
		topo_log(t, CORE_LOG_INFO, "master is %s (ROLE says master)",
			 addr_str(a, s, sizeof(s)));
	t->lost_at = t->switch_at = 0;
	core_timer_start(&t->timer, t->o.check_interval);
	if (t->o.changed != NULL)
		t->o.changed(t->o.data, &t->master, NULL);
}

/* Nobody may use the old master from now on. */
static void topo_drop(struct cache_topo *t, const char *why)
{
	char s[80];

	if (!t->have_master)
		return;
	t->have_master = false;
	t->busy_since = 0;
	t->epoch++;
	t->nreplicas = 0;
	t->lost_at = core_loop_now(t->loop);
	topo_error(t, "%s", why);
	topo_log(t, CORE_LOG_WARN, "master %s lost: %s", addr_str(&t->master, s, sizeof(s)), why);
	if (t->o.changed != NULL)
		t->o.changed(t->o.data, NULL, why);
}

/* A step failed: try again after a backoff. */
static void topo_retry(struct cache_topo *t, const char *why)
{
	uint64_t d = topo_backoff(t, t->fails++);

	topo_close(&t->ask);
	topo_close(&t->chk);
	t->state = CACHE_TOPO_WAITING;
	topo_error(t, "%s", why);
	topo_log(t, t->fails == 1 ? CORE_LOG_WARN : CORE_LOG_DEBUG,
		 "no master yet (%s); trying again in %llu ms", why, (unsigned long long)d);
	core_timer_start(&t->timer, d);
}

/* ---- verifying with ROLE, and checking the master ------------------------------------- */

/* Whether the check is on the master we have (not a candidate). */
static bool topo_checking_master(const struct cache_topo *t)
{
	return t->have_master && addr_eq(&t->cand, &t->master);
}

/* The master did not answer ROLE but is there: say so once, keep it. */
static void topo_busy(struct cache_topo *t, const char *why)
{
	char s[80];

	if (t->busy_since == 0) {
		t->busy_since = core_loop_now(t->loop);
		t->busy_wall = core_clock_wall_ms();
		topo_log(t, CORE_LOG_WARN, "master %s is busy or keel's check of it was cut (%s): "
			 "keeping it and its clients", addr_str(&t->master, s, sizeof(s)), why);
	}
	snprintf(t->busy_why, sizeof(t->busy_why), "%s", why);
}

static void topo_answers(struct cache_topo *t)
{
	char s[80];

	if (t->busy_since == 0)
		return;
	topo_log(t, CORE_LOG_INFO, "master %s answers ROLE again, after %llu ms",
		 addr_str(&t->master, s, sizeof(s)),
		 (unsigned long long)(core_loop_now(t->loop) - t->busy_since));
	t->busy_since = 0;
	t->busy_why[0] = '\0';
}

/* An error that says the server is there and just cannot answer now: a
 * script or function running past busy-reply-threshold, or maxclients. */
static bool role_error_alive(const char *err)
{
	return !strncmp(err, "BUSY", 4) || !strncmp(err, "ERR max number of clients", 25);
}

static void role_reply(redisAsyncContext *ac, void *reply, void *data)
{
	struct cache_topo *t = data;
	struct cache_conn *c = ac->data;
	const redisReply *r = reply;
	long long offset = 0;
	const char *why;
	char s[80], msg[200];
	enum cache_node_role role;

	if (r == NULL || c != t->chk)
		return;		/* gone: the down callback takes it from here */
	t->check_pending = false;
	role = role_parse(r, &offset, &why);
	if (role == CACHE_ROLE_MASTER) {
		t->offset = offset;
		replicas_parse(t, r);
		if (!t->have_master || !addr_eq(&t->master, &t->cand)) {
			topo_set_master(t, &t->cand);
			return;
		}
		topo_answers(t);
		if (t->state == CACHE_TOPO_VERIFYING)
			t->state = CACHE_TOPO_IDLE;
		core_timer_start(&t->timer, t->o.check_interval);
		return;
	}
	if (role == CACHE_ROLE_UNKNOWN && r->type == REDIS_REPLY_ERROR &&
	    topo_checking_master(t) && role_error_alive(r->str)) {
		topo_busy(t, r->str);
		if (t->state == CACHE_TOPO_VERIFYING)
			t->state = CACHE_TOPO_IDLE;
		core_timer_start(&t->timer, t->o.check_interval);
		return;
	}
	if (why != NULL && t->auth_error[0] != '\0')
		snprintf(msg, sizeof(msg), "%s: %.100s", addr_str(&t->cand, s, sizeof(s)), t->auth_error);
	else if (why != NULL)
		snprintf(msg, sizeof(msg), "%s: ROLE: %s", addr_str(&t->cand, s, sizeof(s)), why);
	else
		snprintf(msg, sizeof(msg), "%s is a %s, not the master",
			 addr_str(&t->cand, s, sizeof(s)), cache_node_role_str(role));
	topo_drop(t, msg);
	topo_retry(t, msg);
}

static void chk_up(struct cache_conn *c, const char *why)
{
	struct cache_topo *t = cache_conn_data(c);
	redisAsyncContext *ac = cache_conn_ctx(c);

	(void)why;
	if (c != t->chk)
		return;
	topo_hello(t, c, t->o.username, t->o.password);
	t->check_pending = true;
	redisAsyncCommand(ac, role_reply, t, "ROLE");
}

static void chk_down(struct cache_conn *c, const char *why)
{
	struct cache_topo *t = cache_conn_data(c);
	char s[80], msg[200];

	if (c != t->chk)
		return;
	t->chk = NULL;
	t->check_pending = false;
	if (topo_checking_master(t) && cache_conn_was_up(c)) {
		/* It took the connection, then ROLE timed out (busy) or the
		 * server closed it (CLIENT KILL, or a crash the next connect
		 * tells): ask again on a new one at the next check, quietly;
		 * the apps' connections are their own. */
		if (cache_conn_timed_out(c))
			topo_busy(t, "ROLE timed out");
		else
			topo_log(t, CORE_LOG_DEBUG, "%s: keel's check connection went (%s): "
				 "checking again in %llu ms", addr_str(&t->master, s, sizeof(s)), why,
				 (unsigned long long)t->o.check_interval);
		if (t->state == CACHE_TOPO_VERIFYING)
			t->state = CACHE_TOPO_IDLE;
		core_timer_start(&t->timer, t->o.check_interval);
		return;
	}
	snprintf(msg, sizeof(msg), "%s: %s", addr_str(&t->cand, s, sizeof(s)), why);
	topo_drop(t, msg);
	topo_retry(t, msg);
}

static void topo_verify(struct cache_topo *t, const struct cache_addr *a)
{
	topo_close(&t->chk);
	t->auth_error[0] = '\0';
	t->cand = *a;
	t->state = CACHE_TOPO_VERIFYING;
	t->check_pending = false;
	(void)topo_open(t, &t->chk, a, false, "keel-check", t->o.command_timeout, chk_up,
			chk_down, t);
	if (t->chk == NULL)
		topo_retry(t, t->last_error);
}

static void topo_check(struct cache_topo *t)
{
	redisAsyncContext *ac;

	if (t->chk == NULL || (ac = cache_conn_ctx(t->chk)) == NULL) {
		topo_verify(t, &t->master);
		return;
	}
	/* Still connecting: chk_up asks, after AUTH and the name. */
	if (!t->check_pending && cache_conn_was_up(t->chk)) {
		t->check_pending = true;
		redisAsyncCommand(ac, role_reply, t, "ROLE");
	}
	core_timer_start(&t->timer, t->o.check_interval);
}

void cache_topo_suspect(struct cache_topo *t, const char *why)
{
	topo_log(t, CORE_LOG_DEBUG, "checking the master again: %s", why);
	if (t->have_master)
		topo_check(t);
	else if (t->state == CACHE_TOPO_WAITING) {
		core_timer_stop(&t->timer);
		topo_resolve(t);
	}
}

/* ---- asking the Sentinels ------------------------------------------------------------- */

static void topo_ask(struct cache_topo *t, unsigned i);

static void add_sentinel(struct cache_topo *t, const char *ip, const char *port)
{
	struct cache_addr a;
	unsigned i;
	char s[80];

	snprintf(a.ip, sizeof(a.ip), "%s", ip);
	a.port = atoi(port);
	if (a.port <= 0 || a.port > 65535)
		return;
	for (i = 0; i < t->o.nsentinels; i++)
		if (addr_eq(&t->o.sentinels[i], &a))
			return;
	if (t->o.nsentinels == CACHE_MAX_NODES)
		return;
	t->sentinel_ok[t->o.nsentinels] = false;
	t->o.sentinels[t->o.nsentinels++] = a;
	topo_log(t, CORE_LOG_INFO, "Sentinel %s learnt from SENTINEL sentinels",
		 addr_str(&a, s, sizeof(s)));
}

/* SENTINEL sentinels: a list of flat field/value arrays. */
static void sentinels_reply(redisAsyncContext *ac, void *reply, void *data)
{
	struct cache_topo *t = data;
	struct cache_conn *c = ac->data;
	const redisReply *r = reply;
	size_t i, j;

	if (r == NULL || c != t->refresh)
		return;
	if (r->type == REDIS_REPLY_ARRAY)
		for (i = 0; i < r->elements; i++) {
			const redisReply *e = r->element[i];
			const char *ip = NULL, *port = NULL;

			if (e->type != REDIS_REPLY_ARRAY)
				continue;
			for (j = 0; j + 1 < e->elements; j += 2) {
				if (e->element[j + 1]->type != REDIS_REPLY_STRING)
					continue;
				if (reply_str(e->element[j], "ip"))
					ip = e->element[j + 1]->str;
				else if (reply_str(e->element[j], "port"))
					port = e->element[j + 1]->str;
			}
			if (ip != NULL && port != NULL)
				add_sentinel(t, ip, port);
		}
	topo_close(&t->refresh);
}

static void ask_reply(redisAsyncContext *ac, void *reply, void *data)
{
	struct cache_topo *t = data;
	struct cache_conn *c = ac->data;
	const redisReply *r = reply;
	struct cache_addr a, first;
	char s[80];
	unsigned i = t->asking;

	if (r == NULL || c != t->ask)
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		topo_error(t, "Sentinel %s: %s", addr_str(&t->o.sentinels[i], s, sizeof(s)),
			   t->auth_error[0] ? t->auth_error : r->type == REDIS_REPLY_ERROR ? r->str :
			   "does not know the master");
		topo_log(t, CORE_LOG_WARN, "%s", t->last_error);
		t->sentinel_ok[i] = false;
		topo_close(&t->ask);
		topo_ask(t, i + 1);
		return;
	}
	snprintf(a.ip, sizeof(a.ip), "%s", r->element[0]->str);
	a.port = atoi(r->element[1]->str);

	/* The one that answered goes first next time. */
	first = t->o.sentinels[i];
	memmove(&t->o.sentinels[1], &t->o.sentinels[0], i * sizeof(t->o.sentinels[0]));
	memmove(&t->sentinel_ok[1], &t->sentinel_ok[0], i * sizeof(t->sentinel_ok[0]));
	t->o.sentinels[0] = first;
	t->sentinel_ok[0] = true;

	/* The same connection then lists the other Sentinels. */
	topo_close(&t->refresh);
	cache_conn_own(t->ask, &t->refresh);	/* and t->ask lets go of it */
	redisAsyncCommand(ac, sentinels_reply, t, "SENTINEL sentinels %s", t->o.master_name);

	if (t->have_master && addr_eq(&a, &t->master)) {
		t->state = CACHE_TOPO_IDLE;	/* asked again, same answer */
		return;
	}
	if (t->have_master) {
		char msg[200], m[80];

		snprintf(msg, sizeof(msg), "Sentinel says the master is now %s, not %s",
			 addr_str(&a, s, sizeof(s)), addr_str(&t->master, m, sizeof(m)));
		topo_drop(t, msg);
	}
	topo_verify(t, &a);
}

static void ask_up(struct cache_conn *c, const char *why)
{
	struct cache_topo *t = cache_conn_data(c);
	redisAsyncContext *ac = cache_conn_ctx(c);

	(void)why;
	if (c != t->ask)
		return;
	topo_hello(t, c, t->o.sentinel_username, t->o.sentinel_password);
	redisAsyncCommand(ac, ask_reply, t, "SENTINEL get-master-addr-by-name %s",
			  t->o.master_name);
}

static void ask_down(struct cache_conn *c, const char *why)
{
	struct cache_topo *t = cache_conn_data(c);
	char s[80];

	if (c != t->ask)
		return;
	t->ask = NULL;
	t->sentinel_ok[t->asking] = false;
	topo_error(t, "Sentinel %s: %s", addr_str(&t->o.sentinels[t->asking], s, sizeof(s)), why);
	topo_log(t, CORE_LOG_WARN, "%s", t->last_error);
	topo_ask(t, t->asking + 1);
}

/* Asks Sentinel i, then the next ones in order. */
static void topo_ask(struct cache_topo *t, unsigned i)
{
	for (; i < t->o.nsentinels; i++) {
		t->state = CACHE_TOPO_ASKING;
		t->auth_error[0] = '\0';
		t->asking = i;
		(void)topo_open(t, &t->ask, &t->o.sentinels[i], true, "keel-sentinel",
				t->o.sentinel_timeout, ask_up, ask_down, t);
		if (t->ask != NULL)
			return;
		t->sentinel_ok[i] = false;
	}
	if (t->have_master) {
		t->state = CACHE_TOPO_IDLE;	/* keep it: ROLE still says master */
		return;
	}
	topo_retry(t, "no Sentinel answered");
}

/* ---- following +switch-master ----------------------------------------------------------- */

static void topo_subscribe(struct cache_topo *t);

static void sub_on_timer(struct core_timer *tm)
{
	topo_subscribe(tm->data);
}

static void sub_message(redisAsyncContext *ac, void *reply, void *data)
{
	struct cache_topo *t = data;
	struct cache_conn *c = ac->data;
	const redisReply *r = reply;
	char name[64], oip[48], nip[48];
	struct cache_addr a;
	int oport, nport;

	if (r == NULL || c != t->sub || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
		return;
	if (reply_str(r->element[0], "subscribe")) {
		t->sub_fails = 0;
		if (t->sub_lost) {
			/* A switch may have gone by while we were not listening. */
			t->sub_lost = false;
			if (t->state == CACHE_TOPO_IDLE)
				topo_ask(t, 0);
		}
		return;
	}
	if (!reply_str(r->element[0], "message") || r->element[2]->type != REDIS_REPLY_STRING)
		return;
	if (sscanf(r->element[2]->str, "%63s %47s %d %47s %d", name, oip, &oport, nip, &nport) != 5 ||
	    strcmp(name, t->o.master_name) != 0)
		return;
	snprintf(a.ip, sizeof(a.ip), "%s", nip);
	a.port = nport;
	t->switch_at = core_loop_now(t->loop);
	t->failovers++;
	t->failover_wall = core_clock_wall_ms();
	topo_log(t, CORE_LOG_WARN, "Sentinel: +switch-master %s %s:%d -> %s:%d", name, oip, oport,
		 nip, nport);
	if (t->have_master && addr_eq(&a, &t->master))
		return;
	if (t->have_master)
		topo_drop(t, "Sentinel switched the master");
	else if (t->lost_at == 0)
		t->lost_at = t->switch_at;
	topo_close(&t->ask);
	core_timer_stop(&t->timer);
	t->fails = 0;
	topo_verify(t, &a);
}

static void sub_up(struct cache_conn *c, const char *why)
{
	struct cache_topo *t = cache_conn_data(c);
	redisAsyncContext *ac = cache_conn_ctx(c);

	(void)why;
	if (c != t->sub)
		return;
	topo_hello(t, c, t->o.sentinel_username, t->o.sentinel_password);
	redisAsyncCommand(ac, sub_message, t, "SUBSCRIBE +switch-master");
}

static void sub_down(struct cache_conn *c, const char *why)
{
	struct cache_topo *t = cache_conn_data(c);
	char s[80];

	if (c != t->sub)
		return;
	t->sub = NULL;
	t->sub_lost = true;
	topo_log(t, t->sub_fails == 0 ? CORE_LOG_WARN : CORE_LOG_DEBUG,
		 "Sentinel %s: subscription lost: %s",
		 addr_str(&t->sub_addr, s, sizeof(s)), why);
	t->sub_at++;
	core_timer_start(&t->sub_timer, topo_backoff(t, t->sub_fails++));
}

/* Subscribes through the Sentinel that answered last, else the next. */
static void topo_subscribe(struct cache_topo *t)
{
	unsigned i = t->sub_fails == 0 ? 0 : t->sub_at % t->o.nsentinels;

	t->sub_at = i;
	t->sub_addr = t->o.sentinels[i];
	(void)topo_open(t, &t->sub, &t->o.sentinels[i], true, "keel-switch", 0, sub_up, sub_down, t);
	if (t->sub == NULL) {
		t->sub_at++;
		core_timer_start(&t->sub_timer, topo_backoff(t, t->sub_fails++));
	}
}

/* ---- static nodes ------------------------------------------------------------------------- */

static void probe_done(struct cache_topo *t)
{
	struct topo_node *best = NULL;
	unsigned i, masters = 0;
	char s[80], why[200];
	size_t n = 0;

	if (--t->probing > 0)
		return;
	for (i = 0; i < t->o.nnodes; i++) {
		struct topo_node *nd = &t->nodes[i];

		if (nd->role != CACHE_ROLE_MASTER)
			continue;
		masters++;
		if (best == NULL || nd->offset > best->offset)
			best = nd;
	}
	if (best == NULL) {
		why[0] = '\0';
		for (i = 0; i < t->o.nnodes && n < sizeof(why) - 1; i++)
			n += (size_t)snprintf(why + n, sizeof(why) - n, "%s%s: %s", i ? "; " : "",
					      addr_str(&t->nodes[i].addr, s, sizeof(s)),
					      t->nodes[i].why[0] ? t->nodes[i].why :
					      cache_node_role_str(t->nodes[i].role));
		topo_retry(t, why);
		return;
	}
	if (masters > 1)
		topo_log(t, CORE_LOG_WARN, "%u nodes say master: using %s, the furthest ahead",
			 masters, addr_str(&best->addr, s, sizeof(s)));
	topo_verify(t, &best->addr);
}

static void probe_reply(redisAsyncContext *ac, void *reply, void *data)
{
	struct topo_node *nd = data;
	struct cache_conn *c = ac->data;
	const char *why;

	if (reply == NULL || c != nd->conn)
		return;
	nd->offset = 0;
	nd->role = role_parse(reply, &nd->offset, &why);
	snprintf(nd->why, sizeof(nd->why), "%s", why && nd->t->auth_error[0] ? nd->t->auth_error :
		 why ? why : "");
	topo_close(&nd->conn);
	probe_done(nd->t);
}

static void probe_up(struct cache_conn *c, const char *why)
{
	struct topo_node *nd = cache_conn_data(c);
	redisAsyncContext *ac = cache_conn_ctx(c);

	(void)why;
	if (c != nd->conn)
		return;
	topo_hello(nd->t, c, nd->t->o.username, nd->t->o.password);
	redisAsyncCommand(ac, probe_reply, nd, "ROLE");
}

static void probe_down(struct cache_conn *c, const char *why)
{
	struct topo_node *nd = cache_conn_data(c);

	if (c != nd->conn)
		return;
	nd->conn = NULL;
	nd->role = CACHE_ROLE_DOWN;
	snprintf(nd->why, sizeof(nd->why), "%s", why);
	probe_done(nd->t);
}

static void topo_probe_all(struct cache_topo *t)
{
	unsigned i;

	t->state = CACHE_TOPO_ASKING;
	t->probing = t->o.nnodes + 1;	/* held until every probe is out */
	for (i = 0; i < t->o.nnodes; i++) {
		struct topo_node *nd = &t->nodes[i];

		topo_close(&nd->conn);
		nd->role = CACHE_ROLE_UNKNOWN;
		nd->why[0] = '\0';
		(void)topo_open(t, &nd->conn, &nd->addr, false, "keel-probe",
				t->o.command_timeout, probe_up, probe_down, nd);
		if (nd->conn == NULL) {
			nd->role = CACHE_ROLE_DOWN;
			snprintf(nd->why, sizeof(nd->why), "%s", t->last_error);
			t->probing--;
		}
	}
	probe_done(t);
}

/* ---- the whole ---------------------------------------------------------------------------- */

static void topo_resolve(struct cache_topo *t)
{
	if (t->o.nsentinels > 0)
		topo_ask(t, 0);
	else
		topo_probe_all(t);
}

static void topo_on_timer(struct core_timer *tm)
{
	struct cache_topo *t = tm->data;

	if (t->have_master)
		topo_check(t);
	else if (t->state == CACHE_TOPO_WAITING)
		topo_resolve(t);
}

struct cache_topo *cache_topo_new(struct core_loop *loop, const struct cache_topo_opts *o)
{
	struct cache_topo *t;
	unsigned i;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->loop = loop;
	t->o = *o;
	t->rng = (unsigned)getpid() ^ (unsigned)core_clock_wall_ms();
	core_timer_init(loop, &t->timer, topo_on_timer, t);
	core_timer_init(loop, &t->sub_timer, sub_on_timer, t);
	for (i = 0; i < o->nnodes; i++) {
		t->nodes[i].t = t;
		t->nodes[i].addr = o->nodes[i];
	}
	if (o->nsentinels > 0)
		topo_subscribe(t);
	topo_resolve(t);
	return t;
}

void cache_topo_free(struct cache_topo *t)
{
	unsigned i;

	if (t == NULL)
		return;
	t->o.changed = NULL;
	core_timer_stop(&t->timer);
	core_timer_stop(&t->sub_timer);
	topo_close(&t->ask);
	topo_close(&t->refresh);
	topo_close(&t->sub);
	topo_close(&t->chk);
	for (i = 0; i < t->o.nnodes; i++)
		topo_close(&t->nodes[i].conn);
	/* Each slot holds only a live connection (one that went has left
	 * its slot), so this closes exactly what the topology still owns.
	 * Outside hiredis callbacks, closing runs the connections' last
	 * callbacks now: they find nothing that is theirs. */
	free(t);
}

const struct cache_addr *cache_topo_master(const struct cache_topo *t, uint64_t *epoch)
{
	if (epoch != NULL)
		*epoch = t->epoch;
	return t->have_master ? &t->master : NULL;
}

/* ---- reports -------------------------------------------------------------------------------- */

int cache_topo_json(const struct cache_topo *t, struct core_buf *out)
{
	char s[80], when[40];
	unsigned i;

	core_buf_printf(out, "{\"mode\":\"%s\",\"step\":\"%s\",", t->o.nsentinels ? "sentinel" : "static",
			cache_topo_state_str(t->state));
	if (t->o.nsentinels) {
		core_buf_append(out, "\"master_name\":", 14);
		core_json_str(out, t->o.master_name);
		core_buf_append(out, ",", 1);
	}
	if (t->have_master) {
		core_buf_printf(out, "\"master\":\"%s\",\"offset\":%lld,\"since\":\"%s\",",
				addr_str(&t->master, s, sizeof(s)), t->offset,
				core_clock_format_utc(t->since_wall, when, sizeof(when)));
		if (t->busy_since != 0) {
			core_buf_printf(out, "\"busy_since\":\"%s\",\"busy_reason\":",
					core_clock_format_utc(t->busy_wall, when, sizeof(when)));
			core_json_str(out, t->busy_why);
			core_buf_append(out, ",", 1);
		}
		core_buf_printf(out, "\"busy\":%s,", t->busy_since != 0 ? "true" : "false");
	} else
		core_buf_printf(out, "\"master\":null,");
	core_buf_append(out, "\"replicas\":[", 12);
	for (i = 0; i < t->nreplicas; i++)
		core_buf_printf(out, "%s{\"address\":\"%s\",\"offset\":%lld,\"lag_bytes\":%lld}",
				i ? "," : "", addr_str(&t->replicas[i].addr, s, sizeof(s)),
				t->replicas[i].offset, t->offset - t->replicas[i].offset);
	core_buf_append(out, "],\"sentinels\":[", 15);
	for (i = 0; i < t->o.nsentinels; i++)
		core_buf_printf(out, "%s{\"address\":\"%s\",\"answered\":%s,\"subscribed\":%s}",
				i ? "," : "", addr_str(&t->o.sentinels[i], s, sizeof(s)),
				t->sentinel_ok[i] ? "true" : "false",
				t->sub != NULL && addr_eq(&t->sub_addr, &t->o.sentinels[i]) ?
				"true" : "false");
	core_buf_append(out, "],\"nodes\":[", 11);
	for (i = 0; i < t->o.nnodes; i++) {
		core_buf_printf(out, "%s{\"address\":\"%s\",\"role\":\"%s\",\"error\":", i ? "," : "",
				addr_str(&t->nodes[i].addr, s, sizeof(s)),
				cache_node_role_str(t->nodes[i].role));
		core_json_str(out, t->nodes[i].why);
		core_buf_append(out, "}", 1);
	}
	core_buf_printf(out, "],\"failovers\":%llu,\"last_failover\":",
			(unsigned long long)t->failovers);
	if (t->failover_wall)
		core_buf_printf(out, "\"%s\"", core_clock_format_utc(t->failover_wall, when,
								  sizeof(when)));
	else
		core_buf_append(out, "null", 4);
	core_buf_printf(out, ",\"last_recovery_ms\":%llu,\"last_switch_to_ready_ms\":%llu,"
			"\"last_error\":", (unsigned long long)t->recovery_ms,
			(unsigned long long)t->switch_ms);
	core_json_str(out, t->last_error);
	return core_buf_append(out, "}", 1);
}

int cache_topo_metrics(const struct cache_topo *t, struct core_buf *out)
{
	char s[80];
	unsigned i;

	core_buf_printf(out, "# HELP keel_redis_master_up Whether a master verified by ROLE is known.\n"
			"# TYPE keel_redis_master_up gauge\nkeel_redis_master_up %d\n"
			"# HELP keel_redis_master_busy Whether the master took keel's check "
			"connection but did not answer ROLE (a long script), or answered BUSY.\n"
			"# TYPE keel_redis_master_busy gauge\nkeel_redis_master_busy %d\n"
			"# HELP keel_redis_failovers_total +switch-master announcements seen.\n"
			"# TYPE keel_redis_failovers_total counter\nkeel_redis_failovers_total %llu\n"
			"# HELP keel_redis_recovery_ms From losing the master to verifying the next.\n"
			"# TYPE keel_redis_recovery_ms gauge\nkeel_redis_recovery_ms %llu\n",
			t->have_master, t->have_master && t->busy_since != 0,
			(unsigned long long)t->failovers,
			(unsigned long long)t->recovery_ms);
	core_buf_printf(out, "# HELP keel_redis_replica_lag_bytes Master offset minus the replica's.\n"
			"# TYPE keel_redis_replica_lag_bytes gauge\n");
	for (i = 0; i < t->nreplicas; i++)
		core_buf_printf(out, "keel_redis_replica_lag_bytes{replica=\"%s\"} %lld\n",
				addr_str(&t->replicas[i].addr, s, sizeof(s)),
				t->offset - t->replicas[i].offset);
	if (t->o.nsentinels)
		core_buf_printf(out, "# HELP keel_redis_sentinel_up Whether the Sentinel answered "
				"when last asked.\n# TYPE keel_redis_sentinel_up gauge\n");
	for (i = 0; i < t->o.nsentinels; i++)
		core_buf_printf(out, "keel_redis_sentinel_up{sentinel=\"%s\"} %d\n",
				addr_str(&t->o.sentinels[i], s, sizeof(s)), t->sentinel_ok[i]);
	return CORE_OK;
}
