/* The admin server's front: every admin connection, HTTPS or plain HTTP,
 * is accepted here (core/net.h's one accept path), TLS is terminated here
 * when admin.tls is on, and the bytes go to libmicrohttpd over a
 * socketpair with the client's real address; libmicrohttpd never listens
 * itself. The front owns what must hold before a request reaches the
 * daemon: one deadline for a whole request head (a client dripping header
 * lines is closed), and a cap on connections per client address. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/core.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/net.h"
#include "core/tls.h"
#include "front.h"

#define FRONT_BUF		16384
#define FRONT_HANDSHAKE_MS	10000
#define FRONT_LOG_EVERY_MS	10000	/* refusals past the per-address cap */
#define FRONT_LINGER_MS		2000	/* reading what follows a final answer */

struct front_conn {
	enum web_conn_state state;
	struct core_tls	  *tls;		/* NULL: plain HTTP */
	int		   cfd;		/* the client */
	int		   mfd;		/* our end of the pair; -1 before */
	struct core_io	   cio, mio;
	struct core_timer  timer;
	struct core_defer  reap;
	struct core_list   link;	/* fr.conns */
	struct sockaddr_storage peer;
	socklen_t	   peerlen;
	char		   ip[64];	/* the peer's address, for the cap and logs */
	uint64_t	   since;	/* last progress */
	uint64_t	   head_at;	/* when the current head began */
	unsigned	   eoh;		/* end-of-head scanner: CR LF CR LF matched so far */
	bool		   answered;	/* the daemon wrote since the head ended */
	bool		   c_eof, m_eof;
	bool		   m_gone;	/* the daemon stopped reading: client bytes are dropped */
	size_t		   in_len, in_off;	/* client -> daemon */
	size_t		   out_len, out_off;	/* daemon -> client */
	char		   in[FRONT_BUF];
	char		   out[FRONT_BUF];
};

struct front_listener {
	int		   fd;
	struct core_net_listener acc;
	char		   name[64];
};

static struct {
	struct core_loop  *loop;
	struct MHD_Daemon *mhd;
	void		 (*kick)(void);
	bool		   https;
	struct core_tls_server *tls;
	struct front_listener *ls[16];	/* by pointer: a reload keeps some */
	unsigned	   nls;
	struct core_net_acceptor acceptor;
	struct core_list   conns;
	unsigned	   nconns;
	uint64_t	   idle_ms, head_ms;
	unsigned	   per_ip;
	uint64_t	   capped, capped_logged_at;	/* refusals past the cap */
	char		   fingerprint[128];
} fr;

const char *web_conn_state_str(enum web_conn_state s)
{
	static const char *const names[] = {
		[WEB_CONN_HANDSHAKE] = "handshake",
		[WEB_CONN_HEAD] = "head",
		[WEB_CONN_BUSY] = "busy",
		[WEB_CONN_LINGER] = "linger",
		[WEB_CONN_CLOSED] = "closed",
	};

	return (unsigned)s < CORE_ARRAY_SIZE(names) ? names[s] : "?";
}

static void conn_reap(struct core_defer *d)
{
	free(CORE_CONTAINER_OF(d, struct front_conn, reap));
}

static void conn_close(struct front_conn *c)
{
	if (c->state == WEB_CONN_CLOSED)
		return;
	c->state = WEB_CONN_CLOSED;
	core_io_stop(&c->cio);
	core_timer_stop(&c->timer);
	core_tls_free(c->tls);
	c->tls = NULL;
	close(c->cfd);
	c->cfd = -1;
	if (c->mfd != -1) {
		core_io_stop(&c->mio);
		close(c->mfd);	/* the daemon sees its end close */
		c->mfd = -1;
	}
	core_list_del(&c->link);
	fr.nconns--;
	core_loop_defer(fr.loop, &c->reap, conn_reap);
	core_net_accept_wake(&fr.acceptor);
}

static void front_on_io(struct core_io *io, unsigned revents);

/* Hands the connection to the daemon. */
static int conn_attach(struct front_conn *c)
{
	int sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) == -1)
		return CORE_ERROR;
	if (MHD_add_connection(fr.mhd, sp[1], (const struct sockaddr *)&c->peer,
			       c->peerlen) != MHD_YES) {
		close(sp[0]);	/* the daemon closed sp[1] */
		return CORE_ERROR;
	}
	c->mfd = sp[0];
	core_io_init(fr.loop, &c->mio, c->mfd, front_on_io, c);
	c->state = WEB_CONN_HEAD;
	c->head_at = c->since = core_loop_now(fr.loop);
	c->eoh = 0;
	fr.kick();
	return CORE_OK;
}

static uint64_t left(uint64_t deadline, uint64_t now)
{
	return deadline > now ? deadline - now : 0;
}

static void front_arm(struct front_conn *c)
{
	unsigned cev = 0, mev = 0;
	uint64_t now = core_loop_now(fr.loop), ms;

	if (c->state == WEB_CONN_HANDSHAKE) {
		cev = core_tls_want(c->tls);
		ms = left(c->since + FRONT_HANDSHAKE_MS, now);
	} else if (c->state == WEB_CONN_LINGER) {
		cev = CORE_IO_READ;
		ms = left(c->head_at + FRONT_LINGER_MS, now);
	} else {
		if (c->in_len == 0 && !c->c_eof)
			cev |= CORE_IO_READ;
		if (c->out_off < c->out_len)
			cev |= CORE_IO_WRITE;
		if (c->out_len == 0 && !c->m_eof)
			mev |= CORE_IO_READ;
		if (c->in_off < c->in_len)
			mev |= CORE_IO_WRITE;
		ms = left(c->since + fr.idle_ms, now);
		/* The head has one deadline, however steadily its bytes come. */
		if (c->state == WEB_CONN_HEAD && left(c->head_at + fr.head_ms, now) < ms)
			ms = left(c->head_at + fr.head_ms, now);
	}
	core_timer_start(&c->timer, ms);
	if (core_io_set(&c->cio, cev) != CORE_OK ||
	    (c->mfd != -1 && core_io_set(&c->mio, mev) != CORE_OK))
		conn_close(c);
}

/*
 * Follows the client's bytes for the end of a request head (an empty
 * line). After the daemon answered, the next byte from the client starts
 * the next head and its deadline. Body bytes are not parsed: a body is
 * the daemon's to read, under admin.idle_timeout.
 */
static void conn_scan(struct front_conn *c, const char *p, size_t n)
{
	size_t i;

	if (n > 0 && c->state == WEB_CONN_BUSY && c->answered) {
		c->state = WEB_CONN_HEAD;
		c->head_at = core_loop_now(fr.loop);
		c->eoh = 0;
		c->answered = false;
	}
	for (i = 0; i < n && c->state == WEB_CONN_HEAD; i++) {
		if (p[i] == '\n')
			c->eoh = c->eoh >= 1 ? 2 : 1;	/* "\n\n" or "\r\n\r\n" */
		else if (p[i] != '\r')
			c->eoh = 0;
		if (c->eoh == 2) {
			c->state = WEB_CONN_BUSY;
			c->answered = false;
		}
	}
}

static ssize_t client_read(struct front_conn *c, void *buf, size_t len)
{
	ssize_t n;

	if (c->tls != NULL)
		return core_tls_read(c->tls, buf, len);
	n = read(c->cfd, buf, len);
	if (n >= 0)
		return n;
	return errno == EAGAIN || errno == EINTR ? CORE_AGAIN : CORE_ERROR;
}

static ssize_t client_write(struct front_conn *c, const char *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };
	ssize_t n;

	if (c->tls != NULL)
		return core_tls_writev(c->tls, &iov, 1);
	n = write(c->cfd, buf, len);
	if (n >= 0)
		return n;
	return errno == EAGAIN || errno == EINTR ? 0 : CORE_ERROR;
}

/* The daemon closed after its answer while the client may still be
 * sending (a body refused on its head): a close now would reset the
 * connection and could destroy the answer before the client reads it. */
static void conn_linger(struct front_conn *c)
{
	core_io_stop(&c->mio);
	close(c->mfd);
	c->mfd = -1;
	shutdown(c->cfd, SHUT_WR);
	c->state = WEB_CONN_LINGER;
	c->head_at = core_loop_now(fr.loop);
}

/* Reads and drops; false when the connection closed. */
static bool conn_drain(struct front_conn *c)
{
	unsigned i;
	ssize_t n;

	for (i = 0; i < 16; i++) {
		n = client_read(c, c->in, sizeof(c->in));
		if (n == CORE_AGAIN)
			return true;
		if (n <= 0)
			break;
	}
	if (i == 16)
		return true;	/* more later: the loop comes back */
	conn_close(c);
	return false;
}

/* Moves what it can; false when the connection closed. */
static bool front_pump(struct front_conn *c)
{
	bool moved = false;
	ssize_t n;

	/* client -> daemon */
	if (c->in_len == 0 && !c->c_eof) {
		n = client_read(c, c->in, sizeof(c->in));
		if (n > 0) {
			c->in_len = (size_t)n;
			c->in_off = 0;
			conn_scan(c, c->in, (size_t)n);
		} else if (n == 0) {
			c->c_eof = true;
			shutdown(c->mfd, SHUT_WR);
		} else if (n != CORE_AGAIN)
			return conn_close(c), false;
	}
	if (c->in_off < c->in_len && c->m_gone) {
		c->in_len = c->in_off = 0;	/* nobody reads it: dropped */
		moved = true;
	}
	if (c->in_off < c->in_len) {
		n = send(c->mfd, c->in + c->in_off, c->in_len - c->in_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->in_off += (size_t)n;
			moved = true;
			if (c->in_off == c->in_len)
				c->in_len = c->in_off = 0;
		} else if (n == -1 && (errno == EPIPE || errno == ECONNRESET)) {
			/* The daemon answered and closed without reading it all
			 * (a body refused on its head): its answer still goes out. */
			c->m_gone = true;
			c->in_len = c->in_off = 0;
		} else if (n == -1 && errno != EAGAIN && errno != EINTR)
			return conn_close(c), false;
	}

	/* daemon -> client */
	if (c->out_len == 0 && !c->m_eof) {
		n = read(c->mfd, c->out, sizeof(c->out));
		if (n > 0) {
			c->out_len = (size_t)n;
			c->out_off = 0;
			c->answered = true;
		} else if (n == 0)
			c->m_eof = true;
		else if (errno != EAGAIN && errno != EINTR)
			return conn_close(c), false;
	}
	if (c->out_off < c->out_len) {
		n = client_write(c, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0)
			return conn_close(c), false;
		if (n > 0) {
			c->out_off += (size_t)n;
			moved = true;
			if (c->out_off == c->out_len)
				c->out_len = c->out_off = 0;
		}
	}
	if (c->m_eof && c->out_len == 0) {
		if (c->tls != NULL)
			core_tls_close(c->tls);
		if (c->c_eof) {
			conn_close(c);
			return false;
		}
		conn_linger(c);
		return true;
	}
	if (c->c_eof && c->m_eof)
		return conn_close(c), false;
	if (moved)
		c->since = core_loop_now(fr.loop);
	return true;
}

static void front_step(struct front_conn *c)
{
	char err[160];
	unsigned guard;

	if (c->state == WEB_CONN_HANDSHAKE) {
		int rc = core_tls_handshake(c->tls, err, sizeof(err));

		if (rc == CORE_ERROR) {
			core_log_info("web", "%s: TLS: %s", c->ip, err);
			conn_close(c);
			return;
		}
		if (rc == CORE_AGAIN) {
			front_arm(c);
			return;
		}
		if (conn_attach(c) != CORE_OK) {
			core_log_warn("web", "%s: the admin server took no connection", c->ip);
			conn_close(c);
			return;
		}
	}
	if (c->state == WEB_CONN_LINGER) {
		if (conn_drain(c))
			front_arm(c);
		return;
	}
	/* A few rounds: TLS may hold plaintext the socket will not signal. */
	for (guard = 0; guard < 4; guard++) {
		if (!front_pump(c))
			return;
		if (c->state == WEB_CONN_LINGER || c->tls == NULL || c->in_len != 0 || c->c_eof || core_tls_pending(c->tls) == 0)
			break;
	}
	fr.kick();
	if (c->state != WEB_CONN_CLOSED)
		front_arm(c);
}

static void front_on_io(struct core_io *io, unsigned revents)
{
	(void)revents;
	front_step(io->data);
}

static void front_on_timer(struct core_timer *t)
{
	struct front_conn *c = t->data;
	uint64_t now = core_loop_now(fr.loop);

	if (c->state == WEB_CONN_HEAD && now >= c->head_at + fr.head_ms)
		core_log_info("web", "%s: request head not complete after %llu ms; closed", c->ip,
			      (unsigned long long)fr.head_ms);
	else
		core_log_debug("web", "%s: admin connection timed out in state %s; closed", c->ip,
			       web_conn_state_str(c->state));
	conn_close(c);
}

/* Connections open from the address ip. The list holds at most
 * admin.max_connections, so a walk is cheap next to an accept. */
static unsigned conns_from(const char *ip)
{
	struct core_list *it, *tmp;
	unsigned n = 0;

	core_list_each(it, tmp, &fr.conns)
		if (!strcmp(core_list_elem(it, struct front_conn, link)->ip, ip))
			n++;
	return n;
}

/* An admin connection from the accept path (core/net.h). */
static void front_on_accept(struct core_net_listener *nl, int fd,
			    const struct sockaddr_storage *ss, socklen_t sl)
{
	struct front_listener *ln = CORE_CONTAINER_OF(nl, struct front_listener, acc);
	uint64_t now = core_loop_now(fr.loop);
	struct front_conn *c;
	char ip[64];

	core_net_ntop((const struct sockaddr *)ss, ip, sizeof(ip));
	if (conns_from(ip) >= fr.per_ip) {
		close(fd);
		fr.capped++;
		if (now - fr.capped_logged_at >= FRONT_LOG_EVERY_MS || fr.capped_logged_at == 0) {
			core_log_warn("web", "%s: %s already holds %u admin connections "
				      "(admin.max_connections_per_ip); refused (%llu so far)",
				      ln->name, ip, fr.per_ip, (unsigned long long)fr.capped);
			fr.capped_logged_at = now;
		}
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (fr.https && (c->tls = core_tls_new(fr.tls, fd)) == NULL)) {
		free(c);
		close(fd);
		core_log_error("web", "%s: out of memory for a connection", ln->name);
		return;
	}
	c->cfd = fd;
	c->mfd = -1;
	memcpy(&c->peer, ss, sl);
	c->peerlen = sl;
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	c->since = now;
	c->state = WEB_CONN_HANDSHAKE;
	core_io_init(fr.loop, &c->cio, fd, front_on_io, c);
	core_timer_init(fr.loop, &c->timer, front_on_timer, c);
	core_list_add(&fr.conns, &c->link);
	fr.nconns++;
	if (!fr.https && conn_attach(c) != CORE_OK) {
		core_log_warn("web", "%s: the admin server took no connection", c->ip);
		conn_close(c);
		return;
	}
	front_arm(c);
}

/* The server context for the configured or self-signed certificates. */
static struct core_tls_server *front_tls(const struct keel_admin_conf *ac,
					 const char *state_dir, const char *node,
					 char *err, size_t errlen)
{
	const struct keel_cert_conf *cc = ac->tls.certificates.v;
	struct core_tls_pair pairs[64];
	struct core_tls_opts o = { .tls13_only = ac->tls.min_version == KEEL_TLS_13 };
	unsigned char key[32];
	char crt[300], kf[300], why[384];
	struct core_tls_server *srv;
	size_t i, n = 0;

	for (i = 0; i < ac->tls.certificates.n && i < 64; i++, n++) {
		pairs[i].cert = cc[i].cert;
		pairs[i].key = cc[i].key;
	}
	if (n == 0) {
		snprintf(crt, sizeof(crt), "%s/admin.crt", state_dir);
		snprintf(kf, sizeof(kf), "%s/admin.key", state_dir);
		if (core_tls_self_signed(crt, kf, node, why, sizeof(why)) != CORE_OK) {
			snprintf(err, errlen, "admin certificate: %s", why);
			return NULL;
		}
		pairs[0].cert = crt;
		pairs[0].key = kf;
		n = 1;
	}
	if (core_tls_random(key, sizeof(key)) == CORE_OK)
		o.ticket_key = key;
	srv = core_tls_server_new(pairs, n, &o, why, sizeof(why));
	if (srv == NULL) {
		snprintf(err, errlen, "admin.tls: %s", why);
		return NULL;
	}
	core_log_info("web", "admin certificate %s, SHA-256 fingerprint %s",
		      pairs[0].cert, core_tls_server_fingerprint(srv));
	snprintf(fr.fingerprint, sizeof(fr.fingerprint), "%s", core_tls_server_fingerprint(srv));
	return srv;
}

static void listener_close(struct front_listener *ln)
{
	core_net_accept_del(&ln->acc);
	close(ln->fd);
	free(ln);
}

/*
 * Listens on every address of ac: sockets already open on one are kept
 * (clients in their queues are not lost), new ones opened, the rest
 * closed. Nothing changes when one cannot be opened.
 */
static int front_listen(const struct keel_admin_conf *ac, char *err, size_t errlen)
{
	const struct core_conf_addr *addrs = ac->listen.v;
	struct front_listener *next[CORE_ARRAY_SIZE(fr.ls)] = { NULL };
	bool fresh[CORE_ARRAY_SIZE(fr.ls)] = { false };
	size_t i, j, n = ac->listen.n < CORE_ARRAY_SIZE(fr.ls) ? ac->listen.n : CORE_ARRAY_SIZE(fr.ls);

	for (i = 0; i < n; i++) {
		for (j = 0; j < fr.nls; j++)
			if (fr.ls[j] != NULL && !strcmp(fr.ls[j]->name, addrs[i].text)) {
				next[i] = fr.ls[j];
				fr.ls[j] = NULL;
				break;
			}
		if (next[i] != NULL)
			continue;
		if ((next[i] = calloc(1, sizeof(*next[i]))) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		fresh[i] = true;
		snprintf(next[i]->name, sizeof(next[i]->name), "%s", addrs[i].text);
		if ((next[i]->fd = core_net_listen(&addrs[i], 128, err, errlen)) == -1) {
			free(next[i]);
			next[i] = NULL;
			goto fail;
		}
		core_net_accept_add(&fr.acceptor, &next[i]->acc, next[i]->fd, next[i]->name);
	}
	for (j = 0; j < fr.nls; j++)
		if (fr.ls[j] != NULL) {
			core_log_info("web", "admin server no longer listening on %s", fr.ls[j]->name);
			listener_close(fr.ls[j]);
		}
	for (i = 0; i < n; i++) {
		fr.ls[i] = next[i];
		if (fresh[i])
			core_log_info("web", "admin server listening on %s%s", next[i]->name,
				      fr.https ? " (https)" : "");
	}
	fr.nls = (unsigned)n;
	return CORE_OK;
fail:
	/* Put back what was taken, close what was opened. */
	for (i = 0; i < n; i++) {
		if (next[i] == NULL)
			continue;
		if (fresh[i]) {
			listener_close(next[i]);
			continue;
		}
		for (j = 0; j < fr.nls && fr.ls[j] != NULL; j++)
			;
		fr.ls[j] = next[i];
	}
	return CORE_ERROR;
}

static bool front_same_addresses(const struct keel_admin_conf *ac)
{
	const struct core_conf_addr *a = ac->listen.v;
	size_t i;

	if (ac->listen.n != fr.nls)
		return false;
	for (i = 0; i < fr.nls; i++)
		if (strcmp(a[i].text, fr.ls[i]->name))
			return false;
	return true;
}

static void front_limits(const struct keel_admin_conf *ac)
{
	fr.idle_ms = (uint64_t)ac->idle_timeout;
	fr.head_ms = (uint64_t)ac->head_timeout;
	fr.per_ip = (unsigned)ac->max_connections_per_ip;
}

int web_front_start(struct core_loop *loop, const struct keel_admin_conf *ac,
		    const char *state_dir, const char *node, struct MHD_Daemon *mhd,
		    void (*kick)(void), char *err, size_t errlen)
{
	fr.loop = loop;
	fr.mhd = mhd;
	fr.kick = kick;
	fr.https = ac->tls.enabled;
	core_list_init(&fr.conns);
	core_net_accept_init(&fr.acceptor, loop, "web", (unsigned)ac->max_connections,
			     &fr.nconns, front_on_accept);
	front_limits(ac);
	if (fr.https && (fr.tls = front_tls(ac, state_dir, node, err, errlen)) == NULL)
		return CORE_ERROR;
	return front_listen(ac, err, errlen);
}

int web_front_reload(const struct keel_admin_conf *ac, const char *state_dir,
		     const char *node, char *err, size_t errlen)
{
	struct core_tls_server *srv = NULL;

	if (fr.loop == NULL)
		return CORE_OK;
	if (fr.https && (srv = front_tls(ac, state_dir, node, err, errlen)) == NULL)
		return CORE_ERROR;
	/* Over plain HTTP the addresses stay what they were at start: there is
	 * no confirm-or-revert to save an admin who moved it by mistake from
	 * a browser that cannot follow (documented; a restart applies it). */
	if (!fr.https && !front_same_addresses(ac))
		core_log_warn("web", "admin.listen: changing it needs a restart when admin.tls is off; "
			      "the running addresses stay");
	else if (front_listen(ac, err, errlen) != CORE_OK) {
		core_tls_server_drop(srv);
		return CORE_ERROR;
	}
	/* Open connections keep the context they started with. */
	if (fr.https) {
		core_tls_server_drop(fr.tls);
		fr.tls = srv;
	}
	core_net_accept_limit(&fr.acceptor, (unsigned)ac->max_connections);
	front_limits(ac);
	return CORE_OK;
}

const char *web_front_fingerprint(void)
{
	return fr.fingerprint;
}

void web_front_stop(void)
{
	unsigned i;

	if (fr.loop == NULL)
		return;
	while (!core_list_empty(&fr.conns))
		conn_close(core_list_first(&fr.conns, struct front_conn, link));
	for (i = 0; i < fr.nls; i++)
		listener_close(fr.ls[i]);
	fr.nls = 0;
	core_net_accept_stop(&fr.acceptor);
	fr.loop = NULL;
	core_tls_server_drop(fr.tls);
	fr.tls = NULL;
	fr.mhd = NULL;
}
