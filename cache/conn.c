/* hiredis on keel's loop; see conn.h. hiredis owns the socket: it closes
 * the fd itself when the context is freed, so this adapter only stops
 * watching it (cleanup) and never closes it. A context may be freed inside
 * any hiredis call (a callback that ends it, an error), so the cache_conn
 * that wraps it outlives it until the loop's deferred work runs. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "core/core.h"
#include "core/loop.h"

struct cache_conn {
	redisAsyncContext *ac;		/* NULL once hiredis freed it */
	struct core_loop  *loop;
	struct core_io	   io;
	struct core_timer  timer;	/* hiredis's connect or command timeout */
	struct core_defer  reap;
	struct cache_conn **owner;	/* the slot that holds c, or NULL */
	unsigned	   events;
	cache_conn_fn	   up, down;
	void		  *data;
	bool		   connected, reported, closing, reaping, timed_out;
	char		   name[24];
};

static void conn_reap(struct core_defer *d)
{
	free(CORE_CONTAINER_OF(d, struct cache_conn, reap));
}

static void conn_watch(struct cache_conn *c, unsigned ev)
{
	c->events = ev;
	core_io_set(&c->io, ev);
}

static void ev_add_read(void *p)  { struct cache_conn *c = p; conn_watch(c, c->events | CORE_IO_READ); }
static void ev_del_read(void *p)  { struct cache_conn *c = p; conn_watch(c, c->events & ~CORE_IO_READ); }
static void ev_add_write(void *p) { struct cache_conn *c = p; conn_watch(c, c->events | CORE_IO_WRITE); }
static void ev_del_write(void *p) { struct cache_conn *c = p; conn_watch(c, c->events & ~CORE_IO_WRITE); }

/* hiredis is about to free the context and close the fd. */
static void ev_cleanup(void *p)
{
	struct cache_conn *c = p;

	core_io_stop(&c->io);
	core_timer_stop(&c->timer);
	c->events = 0;
}

static void ev_timer(void *p, struct timeval tv)
{
	struct cache_conn *c = p;

	core_timer_start(&c->timer, (uint64_t)tv.tv_sec * 1000 + (uint64_t)(tv.tv_usec + 999) / 1000);
}

static void conn_on_timer(struct core_timer *t)
{
	struct cache_conn *c = t->data;

	if (c->ac != NULL)
		redisAsyncHandleTimeout(c->ac);
}

static void conn_on_io(struct core_io *io, unsigned revents)
{
	struct cache_conn *c = io->data;

	if ((revents & CORE_IO_READ) && c->ac != NULL)
		redisAsyncHandleRead(c->ac);
	if ((revents & CORE_IO_WRITE) && c->ac != NULL)
		redisAsyncHandleWrite(c->ac);
}

/* The owner's slot lets go of c (if it still holds c). */
static void conn_unlink(struct cache_conn *c)
{
	if (c->owner != NULL && *c->owner == c)
		*c->owner = NULL;
	c->owner = NULL;
}

/* The context is gone (or going): tell the owner once, take c out of its
 * slot, and free c once, after the loop's batch. */
static void conn_gone(struct cache_conn *c, const char *why)
{
	c->ac = NULL;
	if (!c->reported) {
		c->reported = true;
		if (c->down != NULL)
			c->down(c, why);
	}
	conn_unlink(c);
	if (!c->reaping) {
		c->reaping = true;
		core_loop_defer(c->loop, &c->reap, conn_reap);
	}
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct cache_conn *c = ac->data;

	if (status != REDIS_OK) {
		/* hiredis frees the context after this returns. */
		conn_gone(c, ac->errstr[0] ? ac->errstr : "cannot connect");
		return;
	}
	c->connected = true;
	/* A peer that vanishes without a FIN is noticed within a minute. */
	redisEnableKeepAliveWithInterval((redisContext *)&ac->c, 15);
	if (c->up != NULL)
		c->up(c, NULL);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct cache_conn *c = ac->data;

	c->timed_out = ac->err == REDIS_ERR_TIMEOUT;
	conn_gone(c, status == REDIS_OK ? "closed" : ac->errstr[0] ? ac->errstr : "connection lost");
}

struct cache_conn *cache_conn_open(struct core_loop *loop, const struct cache_conn_opts *o,
				   char *why, size_t len)
{
	struct timeval ct = { (time_t)(o->connect_timeout / 1000),
			      (suseconds_t)(o->connect_timeout % 1000) * 1000 };
	struct timeval cmd = { (time_t)(o->command_timeout / 1000),
			       (suseconds_t)(o->command_timeout % 1000) * 1000 };
	redisOptions ro = { 0 };
	struct cache_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(why, len, "out of memory");
		return NULL;
	}
	REDIS_OPTIONS_SET_TCP(&ro, o->ip, o->port);
	ro.connect_timeout = &ct;
	if (o->command_timeout > 0)
		ro.command_timeout = &cmd;
	c->ac = redisAsyncConnectWithOptions(&ro);
	if (c->ac == NULL || c->ac->err) {
		snprintf(why, len, "%s:%d: %s", o->ip, o->port,
			 c->ac ? c->ac->errstr : "out of memory");
		if (c->ac != NULL)
			redisAsyncFree(c->ac);
		free(c);
		return NULL;
	}
	c->loop = loop;
	c->up = o->up;
	c->down = o->down;
	c->data = o->data;
	snprintf(c->name, sizeof(c->name), "%s", o->name != NULL ? o->name : "");
	c->ac->data = c;
	core_io_init(loop, &c->io, c->ac->c.fd, conn_on_io, c);
	core_timer_init(loop, &c->timer, conn_on_timer, c);
	c->ac->ev.data = c;
	c->ac->ev.addRead = ev_add_read;
	c->ac->ev.delRead = ev_del_read;
	c->ac->ev.addWrite = ev_add_write;
	c->ac->ev.delWrite = ev_del_write;
	c->ac->ev.cleanup = ev_cleanup;
	c->ac->ev.scheduleTimer = ev_timer;
	redisAsyncSetDisconnectCallback(c->ac, on_disconnect);
	/* This also waits for the socket to be writable: connected. */
	redisAsyncSetConnectCallback(c->ac, on_connect);
	return c;
}

redisAsyncContext *cache_conn_ctx(struct cache_conn *c)
{
	return c->ac;
}

void *cache_conn_data(struct cache_conn *c)
{
	return c->data;
}

void cache_conn_hello(struct cache_conn *c, const char *user, const char *pass,
		      redisCallbackFn *fn, void *data)
{
	redisAsyncContext *ac = c->ac;

	if (ac == NULL)
		return;
	if (pass[0] != '\0' && user[0] != '\0')
		redisAsyncCommand(ac, fn, data, "AUTH %s %s", user, pass);
	else if (pass[0] != '\0')
		redisAsyncCommand(ac, fn, data, "AUTH %s", pass);
	/* An old server's or a Sentinel's refusal changes nothing. */
	if (c->name[0] != '\0')
		redisAsyncCommand(ac, NULL, NULL, "CLIENT SETNAME %s", c->name);
}

bool cache_conn_was_up(const struct cache_conn *c)
{
	return c->connected;
}

bool cache_conn_timed_out(const struct cache_conn *c)
{
	return c->timed_out;
}

void cache_conn_own(struct cache_conn *c, struct cache_conn **slot)
{
	if (c->owner != slot)
		conn_unlink(c);
	c->owner = slot;
	*slot = c;
}

void cache_conn_close(struct cache_conn *c)
{
	conn_unlink(c);
	if (c->closing)
		return;
	c->closing = true;
	if (c->ac == NULL)
		return;		/* already gone; freed after the batch */
	if (!c->connected) {
		/* No disconnect callback before the connect finished. */
		redisAsyncContext *ac = c->ac;

		conn_gone(c, "closed");
		redisAsyncFree(ac);
		return;
	}
	redisAsyncFree(c->ac);	/* calls on_disconnect, which defers the free */
}
