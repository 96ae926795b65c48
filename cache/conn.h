/* One connection to a Redis node through hiredis's asynchronous API,
 * driven by keel's event loop, with a connect timeout and a per-command
 * timeout. The Sentinel and static-topology logic and the RESP front are
 * built on these. */
#ifndef KEEL_CACHE_CONN_H
#define KEEL_CACHE_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/async.h>

#include "conn-t.h"
#include "core/loop-t.h"

/* Starts connecting. NULL (out of memory, a bad address) with why set. */
struct cache_conn *cache_conn_open(struct core_loop *loop, const struct cache_conn_opts *o,
				   char *why, size_t len);

/* The hiredis context, for redisAsyncCommand; NULL once it is gone. */
redisAsyncContext *cache_conn_ctx(struct cache_conn *c);
void *cache_conn_data(struct cache_conn *c);

/* What every connection sends first: AUTH (with user when not "") if pass
 * is not "", fn getting its reply, then CLIENT SETNAME with the name it
 * was opened with. */
void cache_conn_hello(struct cache_conn *c, const char *user, const char *pass,
		      redisCallbackFn *fn, void *data);

/* Whether it ever connected: one that did and then went was closed by the
 * server or timed out a command; one that did not is unreachable. */
bool cache_conn_was_up(const struct cache_conn *c);
/* Whether it went because a command timed out (the server did not answer). */
bool cache_conn_timed_out(const struct cache_conn *c);

/* Who holds c: *slot. When c goes (the server closed it, a timeout, or
 * cache_conn_close), `down` runs first, then *slot is set to NULL if it
 * still holds c, and only then is c queued for freeing; so an owner never
 * keeps a pointer to a connection that the loop will free. Handing c to
 * another slot unlinks the one it had. */
void cache_conn_own(struct cache_conn *c, struct cache_conn **slot);

/* Closes it: pending commands get a NULL reply, `down` is called with
 * "closed", its slot is unlinked, and c is freed after the loop's current
 * batch. Only for a c that its caller still owns (its slot holds it). */
void cache_conn_close(struct cache_conn *c);

#endif
