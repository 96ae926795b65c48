/* The admin server's HTTPS front. libmicrohttpd is built without TLS, so
 * keel terminates TLS itself: each accepted connection does its handshake
 * here, then gets a socketpair whose other end is handed to the daemon
 * with the client's real address, and bytes are pumped both ways. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/core.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/net.h"
#include "core/tls.h"
#include "front.h"

#define FRONT_BUF	16384
#define FRONT_HANDSHAKE_MS 10000

struct front_conn {
	struct core_tls	  *tls;
	int		   cfd;		/* the client */
	int		   mfd;		/* our end of the pair; -1 before */
	struct core_io	   cio, mio;
	struct core_timer  timer;
	struct core_defer  reap;
	struct front_conn *prev, *next;
	struct sockaddr_storage peer;
	socklen_t	   peerlen;
	uint64_t	   since;	/* last progress */
	bool		   up;		/* handshake done, pair made */
	bool		   c_eof, m_eof;
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
	struct core_tls_server *tls;
	struct front_listener *ls[16];	/* by pointer: a reload keeps some */
	unsigned	   nls;
	struct core_net_acceptor acceptor;
	struct front_conn *conns;
	unsigned	   nconns;
	uint64_t	   idle_ms;
	char		   fingerprint[128];
} fr;

static void front_step(struct front_conn *c);

static void conn_reap(struct core_defer *d)
{
	free(CORE_CONTAINER_OF(d, struct front_conn, reap));
}

static void conn_close(struct front_conn *c)
{
	if (c->cfd == -1)
		return;
	core_io_stop(&c->cio);
	core_timer_stop(&c->timer);
	core_tls_free(c->tls);
	close(c->cfd);
	c->cfd = -1;
	if (c->mfd != -1) {
		core_io_stop(&c->mio);
		close(c->mfd);	/* the daemon sees its end close */
		c->mfd = -1;
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		fr.conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	fr.nconns--;
	core_loop_defer(fr.loop, &c->reap, conn_reap);
	core_net_accept_wake(&fr.acceptor);
}

static const char *peer_text(const struct front_conn *c, char *buf, size_t len)
{
	return core_net_ntop((const struct sockaddr *)&c->peer, buf, len);
}

static void front_on_io(struct core_io *io, unsigned revents);

/* Hands the established connection to the daemon. */
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
	c->up = true;
	fr.kick();
	return CORE_OK;
}

static void front_arm(struct front_conn *c)
{
	unsigned cev = 0, mev = 0;
	uint64_t now = core_loop_now(fr.loop);

	if (!c->up) {
		cev = core_tls_want(c->tls);
		core_timer_start(&c->timer, c->since + FRONT_HANDSHAKE_MS > now ?
					    c->since + FRONT_HANDSHAKE_MS - now : 0);
	} else {
		if (c->in_len == 0 && !c->c_eof)
			cev |= CORE_IO_READ;
		if (c->out_off < c->out_len)
			cev |= CORE_IO_WRITE;
		if (c->out_len == 0 && !c->m_eof)
			mev |= CORE_IO_READ;
		if (c->in_off < c->in_len)
			mev |= CORE_IO_WRITE;
		core_timer_start(&c->timer, c->since + fr.idle_ms > now ?
					    c->since + fr.idle_ms - now : 0);
	}
	if (core_io_set(&c->cio, cev) != CORE_OK ||
	    (c->mfd != -1 && core_io_set(&c->mio, mev) != CORE_OK))
		conn_close(c);
}

/* Moves what it can; false when the connection closed. */
static bool front_pump(struct front_conn *c)
{
	bool moved = false;
	ssize_t n;

	/* client -> daemon */
	if (c->in_len == 0 && !c->c_eof) {
		n = core_tls_read(c->tls, c->in, sizeof(c->in));
		if (n > 0) {
			c->in_len = (size_t)n;
			c->in_off = 0;
		} else if (n == 0) {
			c->c_eof = true;
			shutdown(c->mfd, SHUT_WR);
		} else if (n != CORE_AGAIN)
			return conn_close(c), false;
	}
	if (c->in_off < c->in_len) {
		n = write(c->mfd, c->in + c->in_off, c->in_len - c->in_off);
		if (n > 0) {
			c->in_off += (size_t)n;
			moved = true;
			if (c->in_off == c->in_len)
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
		} else if (n == 0)
			c->m_eof = true;
		else if (errno != EAGAIN && errno != EINTR)
			return conn_close(c), false;
	}
	if (c->out_off < c->out_len) {
		struct iovec iov = { c->out + c->out_off, c->out_len - c->out_off };

		n = core_tls_writev(c->tls, &iov, 1);
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
		core_tls_close(c->tls);
		conn_close(c);
		return false;
	}
	if (c->c_eof && c->m_eof)
		return conn_close(c), false;
	if (moved)
		c->since = core_loop_now(fr.loop);
	return true;
}

static void front_step(struct front_conn *c)
{
	char err[160], peer[64];
	unsigned guard;

	if (!c->up) {
		int rc = core_tls_handshake(c->tls, err, sizeof(err));

		if (rc == CORE_ERROR) {
			core_log_info("web", "%s: TLS: %s", peer_text(c, peer, sizeof(peer)), err);
			conn_close(c);
			return;
		}
		if (rc == CORE_AGAIN) {
			front_arm(c);
			return;
		}
		if (conn_attach(c) != CORE_OK) {
			core_log_warn("web", "%s: the admin server took no connection",
				      peer_text(c, peer, sizeof(peer)));
			conn_close(c);
			return;
		}
		c->since = core_loop_now(fr.loop);
	}
	/* A few rounds: TLS may hold plaintext the socket will not signal. */
	for (guard = 0; guard < 4; guard++) {
		if (!front_pump(c))
			return;
		if (c->in_len != 0 || c->c_eof || core_tls_pending(c->tls) == 0)
			break;
	}
	fr.kick();
	if (c->cfd != -1)
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
	char peer[64];

	core_log_debug("web", "%s: admin connection %s", peer_text(c, peer, sizeof(peer)),
		       c->up ? "idle; closed" : "handshake timed out");
	conn_close(c);
}

/* An admin connection from the accept path (core/net.h): its handshake
 * starts here. */
static void front_on_accept(struct core_net_listener *nl, int fd,
			    const struct sockaddr_storage *ss, socklen_t sl)
{
	struct front_listener *ln = CORE_CONTAINER_OF(nl, struct front_listener, acc);
	struct front_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->tls = core_tls_new(fr.tls, fd)) == NULL) {
		free(c);
		close(fd);
		core_log_error("web", "%s: out of memory for a connection", ln->name);
		return;
	}
	c->cfd = fd;
	c->mfd = -1;
	memcpy(&c->peer, ss, sl);
	c->peerlen = sl;
	c->since = core_loop_now(fr.loop);
	core_io_init(fr.loop, &c->cio, fd, front_on_io, c);
	core_timer_init(fr.loop, &c->timer, front_on_timer, c);
	c->next = fr.conns;
	if (fr.conns != NULL)
		fr.conns->prev = c;
	fr.conns = c;
	fr.nconns++;
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
			core_log_info("web", "admin server listening on %s (https)", next[i]->name);
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

int web_front_start(struct core_loop *loop, const struct keel_admin_conf *ac,
		    const char *state_dir, const char *node, struct MHD_Daemon *mhd,
		    void (*kick)(void), char *err, size_t errlen)
{
	fr.loop = loop;
	fr.mhd = mhd;
	fr.kick = kick;
	core_net_accept_init(&fr.acceptor, loop, "web", (unsigned)ac->max_connections,
			     &fr.nconns, front_on_accept);
	fr.idle_ms = (uint64_t)ac->idle_timeout;
	if ((fr.tls = front_tls(ac, state_dir, node, err, errlen)) == NULL)
		return CORE_ERROR;
	return front_listen(ac, err, errlen);
}

int web_front_reload(const struct keel_admin_conf *ac, const char *state_dir,
		     const char *node, char *err, size_t errlen)
{
	struct core_tls_server *srv;

	if (fr.loop == NULL)
		return CORE_OK;
	if ((srv = front_tls(ac, state_dir, node, err, errlen)) == NULL)
		return CORE_ERROR;
	if (front_listen(ac, err, errlen) != CORE_OK) {
		core_tls_server_drop(srv);
		return CORE_ERROR;
	}
	/* Open connections keep the context they started with. */
	core_tls_server_drop(fr.tls);
	fr.tls = srv;
	core_net_accept_limit(&fr.acceptor, (unsigned)ac->max_connections);
	fr.idle_ms = (uint64_t)ac->idle_timeout;
	return CORE_OK;
}

const char *web_front_fingerprint(void)
{
	return fr.fingerprint;
}

void web_front_stop(void)
{
	unsigned i;

	while (fr.conns != NULL)
		conn_close(fr.conns);
	for (i = 0; i < fr.nls; i++)
		listener_close(fr.ls[i]);
	fr.nls = 0;
	if (fr.loop != NULL)
		core_net_accept_stop(&fr.acceptor);
	fr.loop = NULL;
	core_tls_server_drop(fr.tls);
	fr.tls = NULL;
	fr.mhd = NULL;
}
