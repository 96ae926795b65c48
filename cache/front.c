/*
 * The RESP front: one stable Redis address for the apps.
 *
 * Every client connection gets its own connection to the master, opened
 * when the client arrives, and bytes flow both ways as they come, so
 * whatever state Redis keeps per connection (AUTH, SELECT, HELLO, MULTI,
 * a blocking BLPOP, SUBSCRIBE) is exactly what the client set up. Both
 * directions go through the streaming RESP scanner: a client's malformed
 * or oversized command closes it with an error, and a top-level READONLY
 * or LOADING reply makes the topology check the master at once.
 *
 * A client that does not read its replies is not read either: while the
 * replies waiting for it fill its buffer, or FRONT_INFLIGHT of its commands
 * are at Redis unanswered, its next commands wait here (and then in its
 * socket), so neither keel nor Redis's output buffer for it grows without
 * bound (Redis itself would buffer replies for as long as commands come).
 *
 * A client only ever reaches a master that ROLE verified in this worker.
 * When the master is lost or switched, every client on it is closed (what
 * Sentinel does with CLIENT KILL); clients that arrive while there is none
 * wait, reading nothing from Redis, until one is verified or wait_master
 * is over. A master that is only busy (a long script) is not lost: the
 * topology keeps it, and its clients keep their connections.
 *
 * Where Redis would answer, keel answers as Redis does: a malformed
 * command gets Redis's protocol error after the replies to the commands
 * before it, then the connection closes. After SYNC or PSYNC the server's
 * side stops being RESP (an RDB payload, then the replication stream): the
 * replies are relayed as bytes from there on, a tunnel.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cache.h"
#include "resp.h"
#include "core/buf.h"
#include "core/core.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/net.h"

#define FRONT_BUF	(64 << 10)	/* per direction, per client */
#define FRONT_INFLIGHT	128		/* a client's commands at Redis, unanswered */
#define FRONT_RESERVED	"keel:"		/* keel's shared state lives under it */

enum cache_front_state {
	CACHE_FRONT_WAITING = 0,	/* no verified master yet: commands wait */
	CACHE_FRONT_CONNECTING,		/* connecting to the master */
	CACHE_FRONT_OPEN,		/* bytes flow both ways */
};

static const char *cache_front_state_str(enum cache_front_state st)
{
	switch (st) {
	case CACHE_FRONT_WAITING:	return "waiting for a master";
	case CACHE_FRONT_CONNECTING:	return "connecting";
	case CACHE_FRONT_OPEN:		return "open";
	}
	return "?";
}

struct front_client {
	struct core_list link;		/* in fr.clients */
	int		 cfd, sfd;	/* client, server (-1: none yet) */
	struct core_io	 cio, sio;
	struct core_buf	 in, out;	/* to the server, to the client */
	struct cache_resp_stream cmds, reps;
	struct cache_resp_stream fwd;		/* the commands' framing, as far as sent */
	uint64_t	 ncmds, nreps;	/* commands read, replies read */
	uint64_t	 nfwd;		/* commands sent to Redis whole */
	uint64_t	 epoch;		/* of the master it is connected to */
	uint64_t	 since, active;
	struct core_timer timer;
	struct core_defer reap;
	uint64_t	 tunnel_at;	/* the SYNC's number: replies after the one
					 * before it are bytes, not RESP */
	enum cache_front_state state;
	bool		 closing;	/* flush out, then close */
	bool		 gone;		/* closed; freed after the loop's batch */
	bool		 tunnel;	/* a SYNC or PSYNC went by */
	bool		 raw;		/* and its reply began: bytes from here on */
	bool		 refusing;	/* a protocol error: answer what came
					 * before it, then err, then close */
	char		 peer[64];
	char		 err[64];
};

static struct {
	struct core_loop	*loop;
	struct cache_front_stats *stats;
	struct cache_topo	*topo;
	const struct keel_redis_front_conf *conf;
	struct cache_resp_limits	 cmd_lim, rep_lim;
	struct cache_resp_limits	 fwd_lim;	/* framing what was sent: no checks */
	struct core_list	 clients;	/* every client, open or closing */
	unsigned		 nclients;
	struct sockaddr_storage	 master;
	socklen_t		 masterlen;
	uint64_t		 epoch;
	char			 why[160];	/* no master: the last reason */
	struct core_net_acceptor acceptor;
	struct core_net_listener *ls;
	unsigned		 nl;
	bool			 draining;
} fr;

static void stat_add(uint64_t *v, int64_t d)
{
	if (fr.stats != NULL)
		__atomic_fetch_add(v, (uint64_t)d, __ATOMIC_RELAXED);
}

/* ---- closing ------------------------------------------------------------------------------ */

static void client_reap(struct core_defer *d)
{
	free(CORE_CONTAINER_OF(d, struct front_client, reap));
}

/* Closes both sides now; the memory goes after the loop's batch, which
 * may still hold an event for the other side. */
static void client_free(struct front_client *c)
{
	if (c->gone)
		return;
	c->gone = true;
	if (c->cfd != -1) {
		core_io_stop(&c->cio);
		close(c->cfd);
	}
	if (c->sfd != -1) {
		core_io_stop(&c->sio);
		close(c->sfd);
	}
	core_timer_stop(&c->timer);
	core_buf_free(&c->in);
	core_buf_free(&c->out);
	core_list_del(&c->link);
	fr.nclients--;
	stat_add(&fr.stats->clients, -1);
	core_loop_defer(fr.loop, &c->reap, client_reap);
	if (!fr.draining)
		core_net_accept_wake(&fr.acceptor);
}

/* Writes what is pending toward fd; false when the peer is gone. */
static bool flush(struct core_buf *b, int fd)
{
	ssize_t n;

	if (core_buf_len(b) == 0)
		return true;
	n = core_buf_write(b, fd);
	return n >= 0 || n == CORE_AGAIN;
}

/* Sends one error line where the client expects a reply, then closes. */
static void client_fail(struct front_client *c, const char *line)
{
	if (c->sfd != -1) {
		core_io_stop(&c->sio);
		close(c->sfd);
		c->sfd = -1;
	}
	c->closing = true;
	core_buf_consume(&c->in, core_buf_len(&c->in));
	/* Half a reply may be in flight: an error then would be read as its
	 * rest, so only a client between replies is told. */
	if (cache_resp_stream_idle(&c->reps) && !c->raw)
		core_buf_append(&c->out, line, strlen(line));
	if (!flush(&c->out, c->cfd) || core_buf_len(&c->out) == 0) {
		client_free(c);
		return;
	}
	core_io_set(&c->cio, CORE_IO_WRITE);
	core_timer_start(&c->timer, 1000);	/* a client that does not read */
}

/* ---- moving bytes ------------------------------------------------------------------------- */

static bool buf_room(const struct core_buf *b)
{
	return core_buf_len(b) < b->max;
}

/* Commands at Redis without their reply yet (pub/sub replies without a
 * command may outnumber them: then none). */
static uint64_t client_inflight(const struct front_client *c)
{
	return c->nfwd > c->nreps ? c->nfwd - c->nreps : 0;
}

/* Whether the client's commands may go to Redis now: only while its
 * replies are being read. A replica's acknowledgements get no reply. */
static bool client_may_send(const struct front_client *c)
{
	return core_buf_len(&c->in) > 0 && buf_room(&c->out) &&
	       (c->tunnel || client_inflight(c) < FRONT_INFLIGHT);
}

static void client_arm(struct front_client *c)
{
	unsigned ce = 0, se = 0;

	if (c->closing)
		return;
	/* A refused client is still read (and what it sends dropped), so
	 * that its leaving is noticed. */
	if ((buf_room(&c->in) && buf_room(&c->out)) || c->refusing)
		ce |= CORE_IO_READ;
	if (core_buf_len(&c->out) > 0)
		ce |= CORE_IO_WRITE;
	core_io_set(&c->cio, ce);
	if (c->state == CACHE_FRONT_CONNECTING)
		se = CORE_IO_WRITE;
	else if (c->state == CACHE_FRONT_OPEN) {
		if (buf_room(&c->out))
			se |= CORE_IO_READ;
		if (client_may_send(c))
			se |= CORE_IO_WRITE;
	}
	if (c->sfd != -1)
		core_io_set(&c->sio, se);
}

/*
 * Sends the client's buffered commands to Redis, whole commands up to
 * FRONT_INFLIGHT unanswered ones (a command larger than the buffer streams
 * through). False when the server side is gone.
 */
static bool server_send(struct front_client *c)
{
	const char *head = core_buf_head(&c->in), *why;
	size_t len = core_buf_len(&c->in), n = len;
	struct cache_resp_stream st;
	uint64_t count;
	ssize_t w;

	if (!client_may_send(c))
		return true;
	if (!c->tunnel && c->ncmds > c->nreps + FRONT_INFLIGHT) {
		/* More than the bound is buffered: find where it ends. */
		st = c->fwd;
		count = c->nfwd;
		(void)cache_resp_stream_feed_until(&st, head, len, &fr.fwd_lim, &count,
					     c->nreps + FRONT_INFLIGHT, &n, &why);
		if (n == 0)
			return true;
	}
	do
		w = write(c->sfd, head, n);
	while (w == -1 && errno == EINTR);
	if (w == -1)
		return errno == EAGAIN || errno == EWOULDBLOCK;
	if ((size_t)w == len) {
		c->fwd = c->cmds;	/* all read is sent: the same framing */
		c->nfwd = c->ncmds;
	} else
		(void)cache_resp_stream_feed(&c->fwd, head, (size_t)w, &fr.fwd_lim, &c->nfwd, &why);
	core_buf_consume(&c->in, (size_t)w);
	return true;
}

/*
 * Once a protocol error was found: every whole command before it has been
 * answered (Redis answers those first), so the error goes out and the
 * client is closed. True when the client was closed here.
 */
static bool client_refused(struct front_client *c)
{
	if (!c->refusing || core_buf_len(&c->in) > 0 || c->nreps < c->nfwd ||
	    !cache_resp_stream_idle(&c->reps))
		return false;
	client_fail(c, c->err);
	return true;
}

/* A command Redis would refuse as a protocol error: only the whole
 * commands before it go on, and nothing more is read. */
static void client_refuse(struct front_client *c, const char *why)
{
	struct cache_resp_stream st = c->fwd;
	uint64_t count = c->nfwd;
	size_t keep = 0;
	const char *w;

	core_log_info("redis", "front: %s (%s): closed: %s", c->peer,
		      cache_front_state_str(c->state), why);
	stat_add(&fr.stats->bad_commands, 1);
	if (c->tunnel) {
		client_free(c);		/* a replica: no reply of its own to wait for */
		return;
	}
	snprintf(c->err, sizeof(c->err), "-ERR Protocol error: %s\r\n", why);
	if (count < c->ncmds)
		(void)cache_resp_stream_feed_until(&st, core_buf_head(&c->in), core_buf_len(&c->in),
						   &fr.fwd_lim, &count, c->ncmds, &keep, &w);
	core_buf_truncate(&c->in, keep);
	c->refusing = true;
	if (client_refused(c))
		return;
	if (c->state == CACHE_FRONT_OPEN && !server_send(c)) {
		client_free(c);
		return;
	}
	client_arm(c);
}

/* Scans what the client sent; false when it was refused (and is closing). */
static bool client_scan(struct front_client *c, const char *p, size_t n)
{
	const char *why;
	size_t used;
	int rc;

	for (;;) {
		rc = cache_resp_stream_feed_until(&c->cmds, p, n, &fr.cmd_lim, &c->ncmds, UINT64_MAX,
						  &used, &why);
		if (c->cmds.seen & CACHE_RESP_SEEN_RESERVED) {
			/* keel's own keys and channel (the shared admin state):
			 * nothing of this read reaches Redis, and the client is
			 * closed. */
			core_log_warn("redis", "front: %s: closed: a command named a \"%s\" key or "
				      "channel, which keel keeps for itself", c->peer, FRONT_RESERVED);
			stat_add(&fr.stats->bad_commands, 1);
			client_fail(c, "-NOPERM keys and channels starting with \"" FRONT_RESERVED
				    "\" are reserved for keel\r\n");
			return false;
		}
		if (rc != CACHE_RESP_OK) {
			client_refuse(c, why);
			return false;
		}
		if (!(c->cmds.seen & CACHE_RESP_SEEN_STOP))
			return true;
		/* SYNC or PSYNC: its reply is an RDB payload, then a stream. */
		c->cmds.seen &= ~(unsigned)CACHE_RESP_SEEN_STOP;
		if (!c->tunnel) {
			c->tunnel = true;
			c->tunnel_at = c->ncmds;
			core_log_info("redis", "front: %s: a replication stream (SYNC/PSYNC): relayed "
				      "as bytes", c->peer);
		}
		p += used;
		n -= used;
	}
}

/* After a protocol error Redis reads on and ignores what comes. */
static void client_drop_input(struct front_client *c)
{
	char junk[4096];
	ssize_t n;

	do
		n = read(c->cfd, junk, sizeof(junk));
	while (n > 0 || (n == -1 && errno == EINTR));
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
		client_free(c);
}

static void client_read(struct front_client *c)
{
	size_t before = core_buf_len(&c->in);
	ssize_t n;

	if (c->refusing) {
		client_drop_input(c);
		return;
	}
	n = core_buf_read(&c->in, c->cfd);

	if (n == 0 || (n < 0 && n != CORE_AGAIN && n != CORE_FULL)) {
		client_free(c);		/* the client left: so does its server side */
		return;
	}
	if (n <= 0)
		return;
	c->active = core_loop_now(fr.loop);
	if (!client_scan(c, core_buf_head(&c->in) + before, (size_t)n))
		return;
	stat_add(&fr.stats->bytes_in, n);
	if (c->state == CACHE_FRONT_OPEN && !server_send(c)) {
		client_free(c);
		return;
	}
	client_arm(c);
}

/* Scans the server's bytes up to the SYNC's reply; from there on they are
 * relayed as they are, unless that reply is an error (NOAUTH, a SYNC in
 * MULTI): then the connection goes on speaking RESP. */
static int server_scan(struct front_client *c, const char *p, size_t n, const char **why)
{
	size_t used;
	int rc;

	if (c->raw)
		return CACHE_RESP_OK;
	if (c->tunnel && c->nreps + 1 < c->tunnel_at) {
		rc = cache_resp_stream_feed_until(&c->reps, p, n, &fr.rep_lim, &c->nreps,
						  c->tunnel_at - 1, &used, why);
		if (rc != CACHE_RESP_OK || c->nreps + 1 < c->tunnel_at)
			return rc;
		p += used;
		n -= used;
	}
	if (c->tunnel && n > 0) {
		if (p[0] != '-') {
			c->raw = true;	/* +FULLRESYNC, $<rdb size>, or a keepalive \n */
			return CACHE_RESP_OK;
		}
		c->tunnel = false;
	}
	return cache_resp_stream_feed(&c->reps, p, n, &fr.rep_lim, &c->nreps, why);
}

static void server_read(struct front_client *c)
{
	size_t before = core_buf_len(&c->out);
	ssize_t n = core_buf_read(&c->out, c->sfd);
	uint64_t was = c->nreps;
	const char *why;

	if (n == 0 || (n < 0 && n != CORE_AGAIN && n != CORE_FULL)) {
		/* Redis closed it (QUIT, a kill, a crash): so do we, after
		 * what it said. */
		core_io_stop(&c->sio);
		close(c->sfd);
		c->sfd = -1;
		c->closing = true;
		if (!flush(&c->out, c->cfd) || core_buf_len(&c->out) == 0)
			client_free(c);
		else {
			core_io_set(&c->cio, CORE_IO_WRITE);
			core_timer_start(&c->timer, 1000);
		}
		return;
	}
	if (n <= 0)
		return;
	if (server_scan(c, core_buf_head(&c->out) + before, (size_t)n, &why) != CACHE_RESP_OK) {
		core_log_warn("redis", "front: %s: the server's reply: %s", c->peer, why);
		client_free(c);
		return;
	}
	stat_add(&fr.stats->replies, (int64_t)(c->nreps - was));
	stat_add(&fr.stats->bytes_out, n);
	if (c->reps.seen != 0) {
		cache_topo_suspect(fr.topo, c->reps.seen & CACHE_RESP_SEEN_READONLY ?
				   "a client got READONLY" : "a client got LOADING");
		c->reps.seen = 0;
	}
	if (!flush(&c->out, c->cfd) || !server_send(c)) {
		client_free(c);		/* answers make room for more commands */
		return;
	}
	if (client_refused(c))
		return;
	client_arm(c);
}

static void client_on_io(struct core_io *io, unsigned revents)
{
	struct front_client *c = io->data;

	if (c->closing) {
		if (!flush(&c->out, c->cfd) || core_buf_len(&c->out) == 0)
			client_free(c);
		return;
	}
	if (revents & CORE_IO_WRITE) {
		if (!flush(&c->out, c->cfd)) {
			client_free(c);
			return;
		}
		if (!(revents & CORE_IO_READ)) {
			client_arm(c);
			return;
		}
	}
	client_read(c);
}

static void server_connected(struct front_client *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->sfd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		char msg[160];

		core_log_info("redis", "front: %s: connecting to the master: %s", c->peer,
			      strerror(err));
		snprintf(msg, sizeof(msg), "connecting to the master: %s", strerror(err));
		cache_topo_suspect(fr.topo, msg);
		client_fail(c, "-MASTERDOWN keel could not reach the Redis master\r\n");
		return;
	}
	c->state = CACHE_FRONT_OPEN;
	if (!server_send(c)) {
		client_free(c);
		return;
	}
	if (client_refused(c))
		return;
	client_arm(c);
}

static void server_on_io(struct core_io *io, unsigned revents)
{
	struct front_client *c = io->data;

	if (c->state == CACHE_FRONT_CONNECTING) {
		server_connected(c);
		return;
	}
	if (revents & CORE_IO_WRITE) {
		if (!server_send(c)) {
			client_free(c);
			return;
		}
		if (!(revents & CORE_IO_READ)) {
			client_arm(c);
			return;
		}
	}
	server_read(c);
}

/* Opens the client's own connection to the verified master. */
static void client_connect(struct front_client *c)
{
	int fd, one = 1;

	core_timer_stop(&c->timer);
	fd = socket(fr.master.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		core_log_error("redis", "front: socket: %s", strerror(errno));
		client_fail(c, "-ERR keel is out of sockets\r\n");
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->sfd = fd;
	c->epoch = fr.epoch;
	c->state = CACHE_FRONT_CONNECTING;
	core_io_init(fr.loop, &c->sio, fd, server_on_io, c);
	if (fr.conf->idle_timeout > 0)
		core_timer_start(&c->timer, (uint64_t)fr.conf->idle_timeout);
	if (connect(fd, (struct sockaddr *)&fr.master, fr.masterlen) == 0) {
		server_connected(c);
		return;
	}
	if (errno != EINPROGRESS) {
		char msg[160];

		snprintf(msg, sizeof(msg), "connecting to the master: %s", strerror(errno));
		cache_topo_suspect(fr.topo, msg);
		client_fail(c, "-MASTERDOWN keel could not reach the Redis master\r\n");
		return;
	}
	client_arm(c);
}

static void client_on_timer(struct core_timer *t)
{
	struct front_client *c = t->data;
	uint64_t now = core_loop_now(fr.loop), idle = (uint64_t)fr.conf->idle_timeout;

	if (c->closing) {
		client_free(c);		/* it would not read its error */
		return;
	}
	if (c->state == CACHE_FRONT_WAITING) {
		char line[240];

		stat_add(&fr.stats->waits_expired, 1);
		snprintf(line, sizeof(line), "-MASTERDOWN keel has no Redis master: %.180s\r\n",
			 fr.why[0] ? fr.why : "none verified yet");
		client_fail(c, line);
		return;
	}
	if (idle == 0)
		return;
	if (now - c->active >= idle && c->ncmds <= c->nreps && core_buf_len(&c->in) == 0) {
		client_free(c);
		return;
	}
	core_timer_start(t, now - c->active >= idle ? idle : idle - (now - c->active));
}

/* ---- accepting ---------------------------------------------------------------------------- */

/* A client from the accept path (core/net.h). */
static void front_on_accept(struct core_net_listener *ln, int fd,
			    const struct sockaddr_storage *ss, socklen_t sl)
{
	struct front_client *c;
	char ip[48];
	int one = 1;

	(void)ln;
	(void)sl;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		core_log_error("redis", "front: out of memory for a client");
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->cfd = fd;
	c->sfd = -1;
	c->since = c->active = core_loop_now(fr.loop);
	snprintf(c->peer, sizeof(c->peer), "%s:%u",
		 core_net_ntop((const struct sockaddr *)ss, ip, sizeof(ip)),
		 ntohs(((const struct sockaddr_in *)ss)->sin_port));
	core_buf_init(&c->in, FRONT_BUF);
	core_buf_init(&c->out, FRONT_BUF);
	cache_resp_stream_init(&c->cmds, 1);
	cache_resp_stream_init(&c->reps, 0);
	cache_resp_stream_init(&c->fwd, 1);
	core_io_init(fr.loop, &c->cio, fd, client_on_io, c);
	core_timer_init(fr.loop, &c->timer, client_on_timer, c);
	core_list_add(&fr.clients, &c->link);
	fr.nclients++;
	stat_add(&fr.stats->clients, 1);
	stat_add(&fr.stats->connections, 1);
	if (fr.masterlen > 0)
		client_connect(c);
	else {
		c->state = CACHE_FRONT_WAITING;
		client_arm(c);
		core_timer_start(&c->timer, (uint64_t)fr.conf->wait_master);
	}
}

/* ---- the master moving ---------------------------------------------------------------------- */

static void front_changed(void *data, const struct cache_addr *m, const char *why)
{
	struct core_list *it, *tmp;
	unsigned dropped = 0;

	(void)data;
	cache_topo_master(fr.topo, &fr.epoch);
	fr.masterlen = 0;
	snprintf(fr.why, sizeof(fr.why), "%s", why != NULL ? why : "");
	if (m != NULL) {
		struct sockaddr_in *in = (struct sockaddr_in *)&fr.master;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&fr.master;

		memset(&fr.master, 0, sizeof(fr.master));
		if (inet_pton(AF_INET, m->ip, &in->sin_addr) == 1) {
			in->sin_family = AF_INET;
			in->sin_port = htons((uint16_t)m->port);
			fr.masterlen = sizeof(*in);
		} else if (inet_pton(AF_INET6, m->ip, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)m->port);
			fr.masterlen = sizeof(*in6);
		} else
			core_log_error("redis", "front: the master's address %s is not an IP", m->ip);
	}
	/* Nobody stays on the old master; those waiting go to the new one. */
	core_list_each(it, tmp, &fr.clients) {
		struct front_client *c = core_list_elem(it, struct front_client, link);

		if (c->closing)
			continue;
		if (c->state != CACHE_FRONT_WAITING && c->epoch != fr.epoch) {
			dropped++;
			client_free(c);
		} else if (c->state == CACHE_FRONT_WAITING && fr.masterlen > 0)
			client_connect(c);
	}
	if (dropped > 0) {
		stat_add(&fr.stats->dropped_at_failover, dropped);
		core_log_info("redis", "front: %u client%s disconnected from the old master",
			      dropped, dropped == 1 ? "" : "s");
	}
}

/* ---- the module's side ---------------------------------------------------------------------- */

/* After these, the server's side of the connection is not RESP any more. */
static const char *const front_stop_after[] = { "sync", "psync", NULL };

int cache_front_start(struct core_loop *loop, const struct keel_redis_front_conf *conf,
		      const int *lfd, const char (*lname)[64], unsigned nl, struct cache_front_stats *stats,
		      struct cache_topo_opts *topo, char *err, size_t errlen)
{
	unsigned i;

	memset(&fr, 0, sizeof(fr));
	core_list_init(&fr.clients);
	fr.loop = loop;
	fr.conf = conf;
	fr.stats = stats;
	fr.cmd_lim = (struct cache_resp_limits){
		.max_bulk = (uint64_t)conf->max_bulk, .max_elems = 1u << 20,
		.max_inline = 64 << 10,
		.reserved = FRONT_RESERVED, .stop_after = front_stop_after,
	};
	fr.fwd_lim = fr.cmd_lim;
	fr.fwd_lim.reserved = NULL;
	fr.fwd_lim.stop_after = NULL;
	fr.rep_lim = (struct cache_resp_limits){
		.max_bulk = UINT64_MAX >> 2, .max_elems = UINT32_MAX, .max_inline = 1 << 20,
	};
	fr.nl = nl;
	if ((fr.ls = calloc(nl ? nl : 1, sizeof(*fr.ls))) == NULL) {
		snprintf(err, errlen, "out of memory for %u listeners", nl);
		return CORE_ERROR;
	}
	core_net_accept_init(&fr.acceptor, loop, "redis", (unsigned)conf->max_clients,
			     &fr.nclients, front_on_accept);
	topo->changed = front_changed;
	if ((fr.topo = cache_topo_new(loop, topo)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CORE_ERROR;
	}
	for (i = 0; i < nl; i++)
		core_net_accept_add(&fr.acceptor, &fr.ls[i], lfd[i], lname[i]);
	return CORE_OK;
}

unsigned cache_front_drain(void)
{
	struct core_list *it, *tmp;
	unsigned i;

	if (!fr.draining) {
		fr.draining = true;
		core_net_accept_stop(&fr.acceptor);
		for (i = 0; i < fr.nl; i++)
			core_net_accept_del(&fr.ls[i]);
	}
	/* Clients between commands go now; the next generation takes their
	 * reconnects. The others finish what they asked first. */
	core_list_each(it, tmp, &fr.clients) {
		struct front_client *c = core_list_elem(it, struct front_client, link);

		if (!c->closing && c->ncmds <= c->nreps && core_buf_len(&c->in) == 0 &&
		    core_buf_len(&c->out) == 0)
			client_free(c);
	}
	return fr.nclients;
}

void cache_front_stop(void)
{
	unsigned i;

	while (fr.clients.next != NULL && !core_list_empty(&fr.clients))
		client_free(core_list_first(&fr.clients, struct front_client, link));
	if (fr.ls != NULL) {
		core_net_accept_stop(&fr.acceptor);
		for (i = 0; i < fr.nl; i++)
			core_net_accept_del(&fr.ls[i]);
	}
	free(fr.ls);
	fr.ls = NULL;
	cache_topo_free(fr.topo);
	fr.topo = NULL;
}
