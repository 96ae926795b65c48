/* The HTTP proxy's data plane: accepts clients, reads request heads,
 * routes them, forwards them to a server (pooled or new), and streams
 * bodies both ways with backpressure. One stream per client connection,
 * one exchange per request; every step is driven by stream_step(). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "core/clock.h"
#include "core/conf.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "core/net.h"
#include "core/settings.h"
#include "core/state.h"
#include "core/status.h"
#include "core/tls.h"
#include "core/http.h"
#include "proxy-t.h"
#include "proxy.h"
#include "upstream.h"
#include "core/list.h"
#include "accesslog.h"
#include "static.h"
#include "stats.h"

#define PROXY_MAX_LISTENERS	32
#define PROXY_LINGER_MS		2000	/* reading after an error reply */
#define PROXY_HEAD_EXTRA	4096	/* room for the headers keel adds */
#define PROXY_LOCATION_MAX	2048	/* longest Location keel redirects to */

static struct {
	struct core_loop     *loop;
	struct proxy_runtime *rt;	/* the current runtime */
	struct proxy_listener ls[PROXY_MAX_LISTENERS];
	unsigned	      nls;
	unsigned	      nconns;
	struct core_list      streams;	/* every open client connection */
	struct core_net_acceptor acceptor;	/* worker: every listener's */
	bool		      draining;	/* this worker's generation is ending */
	struct core_timer     tick;	/* housekeeping, once a second */
	struct core_timer     stall;	/* stalled servers, ten times a second */
	struct proxy_stats   *stats;	/* master: the current generation's */
	unsigned char	      key[CORE_STATE_KEY_LEN];	/* affinity cookies' key */
	enum { KEY_NONE, KEY_INSTALL, KEY_CONFIG } key_from;
	unsigned char	      ticket_key[32];	/* the generation's, for TLS tickets */
	unsigned char	      ticket_prev[32];	/* the last one's, still read */
	bool		      have_prev;
	struct core_http_msg msg;	/* scratch: one head parsed at a time */
} px = { .streams = { &px.streams, &px.streams } };

/* An idle client connection is one stream and nothing else; musl's
 * allocator serves 316 bytes from its 320-byte class and the next is 400,
 * so a few bytes more here cost 80 per idle connection (make bench). */
_Static_assert(sizeof(struct proxy_stream) <= 316, "struct proxy_stream outgrew its size class");

#define XF_SERVER_FAULT	0x1	/* count it against the server */
#define XF_QUIET	0x2	/* part of a batch logged once elsewhere */

static void stream_step(struct proxy_stream *s);
static void stream_arm(struct proxy_stream *s);
static void xchg_fail(struct proxy_stream *s, unsigned status, const char *why,
		      unsigned flags);
static void up_on_io(struct core_io *io, unsigned revents);
static ssize_t client_write(struct proxy_stream *s);
static void xchg_finish(struct proxy_stream *s);

static const char *proxy_stream_state_str(enum proxy_stream_state st)
{
	static const char *const names[] = {
		"handshake", "head", "connect", "exchange", "tunnel", "static", "reply", "linger",
		"closed",
	};
	return (unsigned)st < CORE_ARRAY_SIZE(names) ? names[st] : "?";
}

/* The client's address as text; IPv4 by hand, as it is on every request
 * (X-Forwarded-For) and inet_ntop goes through printf. */
static const char *peer_str(const struct proxy_stream *s, char *buf, size_t len)
{
	if (s->peer.sa.sa_family == AF_INET && len >= INET_ADDRSTRLEN) {
		const unsigned char *a = (const unsigned char *)&s->peer.v4.sin_addr;
		char *p = buf;
		int i;

		for (i = 0; i < 4; i++) {
			unsigned v = a[i];

			if (v >= 100)
				*p++ = (char)('0' + v / 100);
			if (v >= 10)
				*p++ = (char)('0' + v / 10 % 10);
			*p++ = (char)('0' + v % 10);
			*p++ = i < 3 ? '.' : '\0';
		}
		return buf;
	}
	if (inet_ntop(s->peer.sa.sa_family, &s->peer.v6.sin6_addr, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
	return buf;
}

/* ---- listeners and accepting -------------------------------------------------------- */

static void stream_on_io(struct core_io *io, unsigned revents);
static void stream_on_timer(struct core_timer *t);

/*
 * TCP_NODELAY on a client connection from its second write on (or its
 * TLS handshake): Nagle holds a small write only while an earlier one is
 * unacknowledged, so the first never waits, and a response that leaves in
 * one writev to a client that then closes spares the syscall.
 */
static void stream_nodelay(struct proxy_stream *s)
{
	int one = 1;

	if (!s->nodelay) {
		setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		s->nodelay = true;
	}
}

static inline void stream_will_write(struct proxy_stream *s)
{
	if (s->nodelay)
		return;
	if (s->wrote)
		stream_nodelay(s);
	s->wrote = true;
}

/* A client connection from the accept path (core/net.h). */
static void proxy_on_accept(struct core_net_listener *nl, int fd,
			    const struct sockaddr_storage *ss, socklen_t sl)
{
	struct proxy_listener *ln = CORE_CONTAINER_OF(nl, struct proxy_listener, acc);
	struct proxy_stream *s;

	core_fault_arm("request");
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		close(fd);
		core_log_error("proxy", "%s: out of memory for a connection", ln->name);
		core_fault_disarm("request");
		return;
	}
	s->fd = fd;
	s->ln = ln;
	memcpy(&s->peer, ss, sl < sizeof(s->peer) ? sl : sizeof(s->peer));
	s->since = core_loop_now(px.loop);
	s->state = PROXY_ST_HEAD;
	if (ln->tls != NULL) {
		if ((s->tls = core_tls_new(ln->tls, fd)) == NULL) {
			close(fd);
			free(s);
			core_log_error("proxy", "%s: out of memory for TLS", ln->name);
			core_fault_disarm("request");
			return;
		}
		s->state = PROXY_ST_HANDSHAKE;
		stream_nodelay(s);	/* a handshake flight is several writes */
	}
	core_buf_init(&s->cin, px.rt->lim.max_head > px.rt->buffer_size ?
			       px.rt->lim.max_head : px.rt->buffer_size);
	core_buf_init(&s->cout, px.rt->buffer_size + PROXY_HEAD_EXTRA +
				px.rt->lim.max_head);
	core_io_init(px.loop, &s->io, fd, stream_on_io, s);
	core_timer_init(px.loop, &s->timer, stream_on_timer, s);
	core_list_add(&px.streams, &s->link);
	px.nconns++;
	proxy_stat_add(px.rt->stats->connections, 1);
	proxy_stat_add(px.rt->stats->active, 1);
	stream_arm(s);
}

static int listener_open(struct proxy_listener *ln, const struct core_conf_addr *a,
			 char *err, size_t errlen)
{
	snprintf(ln->name, sizeof(ln->name), "%s", a->text);
	ln->fd = core_net_listen(a, 1024, err, errlen);
	return ln->fd == -1 ? CORE_ERROR : CORE_OK;
}

/* ---- closing ---------------------------------------------------------------------------- */

/* ---- servers that stop answering ------------------------------------------------------ */

/* A request fully sent and not yet answered waits on its server's list,
 * oldest first, so a stalled server is found without scanning streams. */
static void wait_add(struct proxy_xchg *x, uint64_t now)
{
	struct proxy_server *srv = x->srv;

	x->sent_at = now;
	x->waiting = true;
	core_list_add_tail(&srv->waiting, &x->wait);
	srv->nwait++;
}

static void wait_remove(struct proxy_xchg *x)
{
	struct proxy_server *srv = x->srv;

	if (!x->waiting)
		return;
	core_list_del(&x->wait);
	srv->nwait--;
	x->waiting = false;
}

/* Exchanges come and go with every request: keep a few for the next. */
static struct proxy_xchg *xchg_cache;
static unsigned xchg_ncached;
static unsigned xchg_low;	/* fewest cached since the last trim */

static struct proxy_xchg *xchg_get(void)
{
	struct proxy_xchg *x = xchg_cache;

	if (x == NULL)
		return calloc(1, sizeof(*x));
	xchg_cache = *(struct proxy_xchg **)(void *)x;
	xchg_ncached--;
	if (xchg_ncached < xchg_low)
		xchg_low = xchg_ncached;
	memset(x, 0, sizeof(*x));
	return x;
}

/*
 * A server that has sent not one byte, on any connection of any worker,
 * for stall_timeout while requests wait for it is frozen (SIGSTOP, a
 * deadlock, a full disk), not slow: a slow one still answers something.
 * Take it out, as max_fails would, if another server can take over, and
 * send its overdue GET-like requests there now rather than after
 * read_timeout. Requests with a body, or not idempotent, keep waiting.
 */
static void stall_check_server(struct proxy_server *srv, uint64_t now)
{
	struct proxy_upstream *up = srv->up;
	struct core_list *it, *tmp;
	uint64_t stall = up->stall_timeout, last, age;
	unsigned moved = 0, i;
	bool other = false;

	if (srv->nwait == 0 || stall == 0)
		return;
	age = now - core_list_first(&srv->waiting, struct proxy_xchg, wait)->sent_at;
	last = proxy_stat_get(srv->st->last_byte);
	if (age < stall || now - last < stall)
		return;
	if (proxy_server_usable(srv, now)) {
		if (srv->nwait < 2)
			return;
		for (i = 0; i < up->nservers && !other; i++)
			other = &up->servers[i] != srv && proxy_server_usable(&up->servers[i], now);
		if (!other)
			return;
		proxy_stat_set(srv->st->out_until, now + srv->fail_timeout);
		proxy_stat_add(srv->st->stalls, 1);
		proxy_stat_add(srv->st->failures, 1);
		snprintf(srv->st->last_error, sizeof(srv->st->last_error),
			 "stalled: no byte for %llu ms", (unsigned long long)(now - last));
		core_log_warn("proxy", "upstream %s: server %s stalled: no byte for %llu ms with "
			      "%u request%s waiting; out of service for %llu ms", up->name, srv->name,
			      (unsigned long long)(now - last), srv->nwait, srv->nwait == 1 ? "" : "s",
			      (unsigned long long)srv->fail_timeout);
	}
	/* Out (by us, another worker, or health): move what may be moved. */
	core_list_each(it, tmp, &srv->waiting) {
		struct proxy_xchg *x = core_list_elem(it, struct proxy_xchg, wait);
		struct proxy_stream *s = x->stream;

		if (now - x->sent_at < stall)
			break;
		if (!x->idempotent || x->req_sent > 0 || x->resp_any)
			continue;
		xchg_fail(s, 504, "server stalled", XF_QUIET);
		if (s->state != PROXY_ST_CLOSED)
			stream_step(s);
		moved++;
	}
	if (moved > 0)
		core_log_info("proxy", "upstream %s: %u request%s moved off stalled server %s",
			      up->name, moved, moved == 1 ? "" : "s", srv->name);
}

static void proxy_on_stall_check(struct core_timer *t)
{
	uint64_t now = core_loop_now(px.loop);
	unsigned i, j;

	for (i = 0; i < px.rt->nups; i++)
		for (j = 0; j < px.rt->ups[i].nservers; j++)
			stall_check_server(&px.rt->ups[i].servers[j], now);
	core_timer_start(t, 100);
}

/* Once a second: give back what a burst left cached and nobody used since. */
static void proxy_on_tick(struct core_timer *t)
{
	unsigned n = xchg_low;

	while (n-- > 0 && xchg_cache != NULL) {
		struct proxy_xchg *x = xchg_cache;

		xchg_cache = *(struct proxy_xchg **)(void *)x;
		xchg_ncached--;
		free(x);
	}
	xchg_low = xchg_ncached;
	core_buf_cache_trim();
	core_timer_start(t, 1000);
}

static void xchg_put(struct proxy_xchg *x)
{
	if (xchg_ncached >= 256) {
		free(x);
		return;
	}
	*(struct proxy_xchg **)(void *)x = xchg_cache;
	xchg_cache = x;
	xchg_ncached++;
}

static void xchg_free(struct proxy_xchg *x, bool reuse)
{
	if (x == NULL)
		return;
	wait_remove(x);
	if (x->job != NULL) {
		proxy_static_end(x->job);
		x->job = NULL;
	}
	if (x->log != NULL) {
		/* 499, as nginx says it: the client left before an answer. */
		x->log->status = x->status ? x->status : 499;
		x->log->bytes = x->resp_bytes;
		proxy_log_write(x->log, core_loop_now(px.loop));
		free(x->log);
	}
	if (x->uc != NULL) {
		if (reuse) {
			x->uc->served++;
			proxy_pool_put(x->uc);
		} else
			proxy_upconn_close(x->uc);
	}
	if (x->srv != NULL)
		proxy_stat_sub(x->srv->st->active, 1);
	if (x->status >= 100 && x->status < 600) {
		proxy_stat_add(x->route->st->responses[x->status / 100 - 1], 1);
		proxy_stat_add(x->route->st->bytes, x->resp_bytes);
		proxy_stats_latency(x->route->st, core_loop_now(px.loop) - x->started);
	}
	core_buf_free(&x->uhead);
	core_buf_free(&x->uin);
	proxy_runtime_unref(x->rt);
	xchg_put(x);
}

static void stream_reap(struct core_defer *d)
{
	struct proxy_stream *s = CORE_CONTAINER_OF(d, struct proxy_stream, reap);

	free(s);
}

/* Closes the client connection and whatever serves it; freed after the batch. */
static void stream_close(struct proxy_stream *s)
{
	if (s->state == PROXY_ST_CLOSED)
		return;
	core_log_debug("proxy", "connection closed in state %s after %u request%s",
		       proxy_stream_state_str(s->state), s->requests,
		       s->requests == 1 ? "" : "s");
	s->state = PROXY_ST_CLOSED;
	core_list_del(&s->link);
	xchg_free(s->x, false);
	s->x = NULL;
	core_io_forget(&s->io);		/* the close below: workers never fork */
	core_timer_stop(&s->timer);
	core_tls_free(s->tls);
	s->tls = NULL;
	close(s->fd);
	s->fd = -1;
	core_buf_free(&s->cin);
	core_buf_free(&s->cout);
	px.nconns--;
	proxy_stat_sub(px.rt->stats->active, 1);
	if (!px.draining)
		core_net_accept_wake(&px.acceptor);
	core_fault_disarm("request");
	core_loop_defer(px.loop, &s->reap, stream_reap);
}

/* An idle keep-alive connection ends: over TLS with close_notify, or the
 * client takes the close for truncation and drops its session. */
static void stream_close_idle(struct proxy_stream *s)
{
	if (s->tls != NULL && !s->client_eof)
		core_tls_close(s->tls);
	stream_close(s);
}

/* ---- keel's own answers ------------------------------------------------------------------- */

static const char *status_reason(unsigned status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 410: return "Gone";
	case 429: return "Too Many Requests";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default:  return "Error";
	}
}

/*
 * Answers the client with a small page and closes after it (with a short
 * linger so the answer is not lost to a reset). `location` is for 3xx.
 * `buf`: the request head that px.msg describes, when there is one. text:
 * the body instead of the page (a route's return_body), sent as text/plain.
 */
static void stream_answer(struct proxy_stream *s, unsigned status, const char *location,
			  const char *text, const char *buf)
{
	char head[PROXY_LOCATION_MAX + 512], page[256];
	const char *body = page;
	int bn, hn;

	if (text != NULL) {
		body = text;
		bn = (int)strlen(text);
	} else
		bn = snprintf(page, sizeof(page),
			      "<html><head><title>%u %s</title></head><body><h1>%u %s</h1>"
			      "<hr>keel</body></html>\n",
			      status, status_reason(status), status, status_reason(status));
	if (s->x != NULL) {
		s->x->status = status;
		s->x->resp_bytes = (uint64_t)bn;
	} else if (proxy_log_enabled()) {
		struct proxy_logrec r;
		char peer[INET6_ADDRSTRLEN];

		proxy_log_fill(&r, peer_str(s, peer, sizeof(peer)), buf ? &px.msg : NULL,
			       buf, core_loop_now(px.loop));
		r.status = status;
		r.bytes = (uint64_t)bn;
		proxy_log_write(&r, core_loop_now(px.loop));
	}
	xchg_free(s->x, false);
	s->x = NULL;
	hn = snprintf(head, sizeof(head),
		      "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
		      "%s%s%sConnection: close\r\n\r\n",
		      status, status_reason(status), text ? "text/plain" : "text/html", bn,
		      location ? "Location: " : "", location ? location : "",
		      location ? "\r\n" : "");
	s->cout.start = s->cout.end = 0;
	if (core_buf_append(&s->cout, head, (size_t)hn) != CORE_OK ||
	    core_buf_append(&s->cout, body, (size_t)bn) != CORE_OK) {
		stream_close(s);
		return;
	}
	s->state = PROXY_ST_REPLY;
	s->since = core_loop_now(px.loop);
}

static void stream_reply(struct proxy_stream *s, unsigned status, const char *location,
			 const char *buf)
{
	stream_answer(s, status, location, NULL, buf);
}

/* From this box: 127/8 or ::1. */
static bool stream_loopback(const struct proxy_stream *s)
{
	if (s->peer.sa.sa_family == AF_INET)
		return (ntohl(s->peer.v4.sin_addr.s_addr) >> 24) == 127;
	return s->peer.sa.sa_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&s->peer.v6.sin6_addr);
}

/* keel's watchdog asked whether this worker answers: it does, and closes.
 * Nothing is logged or counted; it comes every second. */
static void stream_alive(struct proxy_stream *s)
{
	static const char answer[] = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";

	s->cout.start = s->cout.end = 0;
	if (core_buf_append(&s->cout, answer, sizeof(answer) - 1) != CORE_OK) {
		stream_close(s);
		return;
	}
	s->state = PROXY_ST_REPLY;
	s->since = core_loop_now(px.loop);
}

/* ---- the request head ---------------------------------------------------------------------- */

static int put(struct core_buf *b, const char *p, size_t n)
{
	return core_buf_append(b, p, n);
}

/* A string literal, its length known at compile time. */
#define PUT_LIT(b, lit)	core_buf_append((b), (lit), sizeof(lit) - 1)

static int put_str(struct core_buf *b, const char *s)
{
	return core_buf_append(b, s, strlen(s));
}


/*
 * Copies the header lines `keep` accepts as they came, in runs of
 * consecutive kept lines: a head costs a few copies, not one per field.
 */
static int put_headers(struct core_buf *b, const struct core_http_msg *m, const char *buf,
		       bool (*keep)(const struct core_http_header *h, const void *arg),
		       const void *arg)
{
	uint32_t run = 0, end = 0;
	bool open = false;
	unsigned i;
	int rc = CORE_OK;

	for (i = 0; i < m->nhdr; i++) {
		const struct core_http_header *h = &m->hdr[i];

		if (keep(h, arg)) {
			if (!open)
				run = h->name.off;
			open = true;
			end = h->line_end;
		} else if (open) {
			rc |= core_buf_append(b, buf + run, end - run);
			open = false;
		}
	}
	if (open)
		rc |= core_buf_append(b, buf + run, end - run);
	return rc;
}

static int put_span(struct core_buf *b, const char *base, struct core_http_span sp)
{
	return core_buf_append(b, base + sp.off, sp.len);
}

/* Writes the path the server gets: the route's prefix kept, stripped or replaced. */
static int put_path(struct core_buf *b, const struct proxy_route *r, const char *path,
		    size_t plen)
{
	const char *rest;
	size_t rlen;

	if (plen == 0)
		return PUT_LIT(b, "/");
	if (r->rewrite == PROXY_REWRITE_KEEP)
		return put(b, path, plen);
	rest = path + r->path_len;
	rlen = plen - r->path_len;
	if (r->rewrite == PROXY_REWRITE_STRIP) {
		if (rlen == 0 || rest[0] != '/')
			if (PUT_LIT(b, "/") != CORE_OK)
				return CORE_ERROR;
		return put(b, rest, rlen);
	}
	/* Replace: "/app_a/" -> "/x/" keeps one slash between them. */
	if (r->replace[r->replace_len - 1] == '/' && rlen > 0 && rest[0] == '/') {
		rest++;
		rlen--;
	}
	if (put(b, r->replace, r->replace_len) != CORE_OK)
		return CORE_ERROR;
	return put(b, rest, rlen);
}

/* Request headers that go to the server as they are: not hop-by-hop, and
 * not one of the forwarding headers keel writes itself (a client's copies
 * of X-Real-IP and friends are dropped; X-Forwarded-For is appended to). */
static bool keep_request_header(const struct core_http_header *h, const void *arg)
{
	(void)arg;
	if (h->hop)
		return false;
	switch (h->kind) {
	case CORE_HTTP_H_HOST:
	case CORE_HTTP_H_X_FORWARDED_FOR:
	case CORE_HTTP_H_X_REAL_IP:
	case CORE_HTTP_H_X_FORWARDED_PROTO:
	case CORE_HTTP_H_X_FORWARDED_HOST:
		return false;
	default:
		return true;
	}
}

/* Builds the head the server gets from the parsed request in px.msg. */
static int xchg_build_head(struct proxy_stream *s, struct proxy_xchg *x, const char *buf)
{
	const struct core_http_msg *m = &px.msg;
	struct core_buf *b = &x->uhead;
	char ip[INET6_ADDRSTRLEN];
	const struct core_http_header *up_hdr = NULL, *te_hdr = NULL;
	unsigned i;
	int rc = CORE_OK;

	peer_str(s, ip, sizeof(ip));
	rc |= put_span(b, buf, m->method);
	rc |= PUT_LIT(b, " ");
	rc |= put_path(b, x->route, buf + m->path.off, m->path.len);
	if (x->client_version == 10)
		rc |= PUT_LIT(b, " HTTP/1.0\r\nHost: ");
	else
		rc |= PUT_LIT(b, " HTTP/1.1\r\nHost: ");
	if (m->host.len > 0)
		rc |= put_span(b, buf, m->host);
	else
		rc |= put_str(b, x->route->up->name);
	rc |= PUT_LIT(b, "\r\n");
	rc |= put_headers(b, m, buf, keep_request_header, NULL);

	/* One X-Forwarded-For listing every hop so far, then this client. */
	rc |= PUT_LIT(b, "X-Forwarded-For: ");
	for (i = 0; i < m->nhdr; i++) {
		const struct core_http_header *h = &m->hdr[i];

		if (h->kind == CORE_HTTP_H_X_FORWARDED_FOR) {
			rc |= put_span(b, buf, h->value);
			rc |= PUT_LIT(b, ", ");
		} else if (h->kind == CORE_HTTP_H_UPGRADE)
			up_hdr = h;
		else if (h->kind == CORE_HTTP_H_TRANSFER_ENCODING)
			te_hdr = h;
	}
	rc |= put_str(b, ip);
	rc |= PUT_LIT(b, "\r\nX-Real-IP: ");
	rc |= put_str(b, ip);
	if (s->tls != NULL)
		rc |= PUT_LIT(b, "\r\nX-Forwarded-Proto: https\r\n");
	else
		rc |= PUT_LIT(b, "\r\nX-Forwarded-Proto: http\r\n");
	if (m->host.len > 0) {
		rc |= PUT_LIT(b, "X-Forwarded-Host: ");
		rc |= put_span(b, buf, m->host);
		rc |= PUT_LIT(b, "\r\n");
	}
	if (te_hdr != NULL) {
		rc |= PUT_LIT(b, "Transfer-Encoding: ");
		rc |= put_span(b, buf, te_hdr->value);
		rc |= PUT_LIT(b, "\r\n");
	}
	if (x->upgrade && up_hdr != NULL) {
		rc |= PUT_LIT(b, "Connection: upgrade\r\nUpgrade: ");
		rc |= put_span(b, buf, up_hdr->value);
		rc |= PUT_LIT(b, "\r\n");
	} else if (x->client_version == 10 || x->route->up->keepalive == 0)
		rc |= PUT_LIT(b, "Connection: close\r\n");
	rc |= PUT_LIT(b, "\r\n");
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

/* ---- trying servers ---------------------------------------------------------------------- */

static void xchg_reset_response(struct proxy_xchg *x)
{
	core_buf_free(&x->uin);
	core_buf_init(&x->uin, x->rt->lim.max_head > x->rt->buffer_size ?
			       x->rt->lim.max_head : x->rt->buffer_size);
	x->resp_scan = 0;
	x->resp_head = false;
	x->resp_ready = 0;
	x->resp_done = false;
	x->up_eof = false;
	x->up_reuse = false;
	x->uhead_sent = 0;
}

static int up_connect(struct proxy_stream *s, struct proxy_xchg *x, const char **why)
{
	struct proxy_upconn *uc;
	int fd, one = 1;

	uc = calloc(1, sizeof(*uc));
	if (uc == NULL) {
		*why = "out of memory";
		return CORE_ERROR;
	}
	fd = socket(x->srv->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		*why = strerror(errno);
		free(uc);
		return CORE_ERROR;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	uc->fd = fd;
	uc->srv = x->srv;
	core_io_init(px.loop, &uc->io, fd, up_on_io, s);
	x->uc = uc;
	if (connect(fd, (const struct sockaddr *)&x->srv->sa, x->srv->salen) == -1 &&
	    errno != EINPROGRESS) {
		*why = strerror(errno);
		return CORE_ERROR;
	}
	s->state = PROXY_ST_CONNECT;
	return CORE_OK;
}

/* Starts one try on a server not tried yet. CORE_ERROR: no server left. */
static int xchg_try(struct proxy_stream *s, const char **why)
{
	struct proxy_xchg *x = s->x;
	uint64_t now = core_loop_now(px.loop);
	struct proxy_server *srv;

	for (;;) {
		srv = x->pinned;
		if (srv == NULL || (x->tried & (1ULL << (srv - x->route->up->servers))) ||
		    !proxy_server_usable(srv, now))
			srv = proxy_server_pick(x->route->up, x->tried,
						(const struct sockaddr_storage *)(void *)&s->peer,
						now);
		if (srv == NULL) {
			*why = "no server available";
			return CORE_ERROR;
		}
		x->tried |= 1ULL << (srv - x->route->up->servers);
		x->tries++;
		x->srv = srv;
		proxy_stat_add(srv->st->active, 1);
		proxy_stat_add(srv->st->requests, 1);
		x->connect_at = now;
		x->up_wait = now;
		xchg_reset_response(x);

		/* Only a request that can be sent twice may risk a pooled
		 * connection the server might be closing right now. */
		x->uc = x->idempotent ? proxy_pool_get(srv) : NULL;
		if (x->uc != NULL) {
			x->pooled = true;
			x->uc->io.cb = up_on_io;	/* still in the epoll set */
			x->uc->io.data = s;
			s->state = PROXY_ST_EXCHANGE;
			return CORE_OK;
		}
		x->pooled = false;
		if (up_connect(s, x, why) == CORE_OK)
			return CORE_OK;

		/* Failed at once (refused on loopback, say): next server. */
		proxy_server_failed(srv, *why, now);
		proxy_upconn_close(x->uc);
		x->uc = NULL;
		proxy_stat_sub(srv->st->active, 1);
		x->srv = NULL;
		if (x->tries >= x->route->tries)
			return CORE_ERROR;
	}
}

/*
 * The current try failed before its response reached the client. Tries
 * the next server when the request allows it, else answers `status`.
 * XF_SERVER_FAULT counts it against the server (a stale pooled connection
 * is not the server's fault).
 */
static void xchg_fail(struct proxy_stream *s, unsigned status, const char *why,
		      unsigned flags)
{
	struct proxy_xchg *x = s->x;
	uint64_t now = core_loop_now(px.loop);
	bool sent = x->uhead_sent > 0 || x->pooled;
	char peer[INET6_ADDRSTRLEN];
	const char *next_why = why;

	wait_remove(x);
	if (flags & XF_SERVER_FAULT)
		proxy_server_failed(x->srv, why, now);
	peer_str(s, peer, sizeof(peer));
	if (!(flags & XF_QUIET))
		core_log_warn("proxy", "%s: upstream %s: server %s: %s (try %u of %u)",
			      peer, x->route->up->name, x->srv->name, why, x->tries,
			      x->route->tries);
	proxy_upconn_close(x->uc);
	x->uc = NULL;
	proxy_stat_sub(x->srv->st->active, 1);
	x->srv = NULL;

	if (!x->resp_any && x->req_sent == 0 && (!sent || x->idempotent) &&
	    x->tries < x->route->tries &&
	    (x->route->try_timeout == 0 || now - x->started < x->route->try_timeout)) {
		if (xchg_try(s, &next_why) == CORE_OK)
			return;
		if (x->srv == NULL && x->tries < x->route->tries) {
			char all[512];

			proxy_upstream_why_none(x->route->up, now, all, sizeof(all));
			core_log_error("proxy", "%s: upstream %s: no server left to try: %s",
				       peer, x->route->up->name, all);
		}
	}
	if (x->resp_any) {		/* mid-response: nothing to answer with */
		stream_close(s);
		return;
	}
	stream_reply(s, status, NULL, NULL);
}

/* The server a request's affinity cookie names, from its Cookie headers. */
static struct proxy_server *cookie_find(struct proxy_upstream *up,
					const struct core_http_msg *m, const char *buf)
{
	unsigned i;

	for (i = 0; i < m->nhdr; i++) {
		const char *p, *end;

		if (m->hdr[i].kind != CORE_HTTP_H_COOKIE)
			continue;
		p = buf + m->hdr[i].value.off;
		end = p + m->hdr[i].value.len;
		while (p < end) {
			const char *pair = p, *semi = memchr(p, ';', (size_t)(end - p));
			const char *pend = semi ? semi : end;

			if ((size_t)(pend - pair) > up->cookie_len &&
			    memcmp(pair, up->cookie, up->cookie_len) == 0 &&
			    pair[up->cookie_len] == '=')
				return proxy_cookie_server(up, pair + up->cookie_len + 1,
							   (size_t)(pend - pair) - up->cookie_len - 1);
			p = pend + 1;
			while (p < end && *p == ' ')
				p++;
		}
	}
	return NULL;
}

/* A parsed request head in px.msg: route it and start the exchange. */
/* Plain HTTP on a route that wants HTTPS: the same URL with https://,
 * 301 for GET and HEAD, 308 (method and body kept) for the rest. */
static void stream_redirect_https(struct proxy_stream *s, const struct proxy_route *route,
				  const char *buf)
{
	const struct core_http_msg *m = &px.msg;
	const char *host = buf + m->host.off;
	uint32_t hlen = m->host.len;
	char loc[PROXY_LOCATION_MAX], port[8] = "";
	bool safe = m->method_id == CORE_HTTP_M_GET || m->method_id == CORE_HTTP_M_HEAD;
	int n;

	if (hlen == 0) {
		stream_reply(s, 400, NULL, buf);
		return;
	}
	if (host[0] == '[') {		/* [v6]:port */
		const char *e = memchr(host, ']', hlen);

		if (e != NULL)
			hlen = (uint32_t)(e - host + 1);
	} else {
		const char *c = memchr(host, ':', hlen);

		if (c != NULL)
			hlen = (uint32_t)(c - host);
	}
	if (route->https_port != 443)
		snprintf(port, sizeof(port), ":%u", route->https_port);
	n = snprintf(loc, sizeof(loc), "https://%.*s%s%.*s", (int)hlen, host, port,
		     (int)m->path.len, buf + m->path.off);
	if (n >= (int)sizeof(loc)) {
		stream_reply(s, 414, NULL, buf);
		return;
	}
	stream_reply(s, safe ? 301 : 308, loc, buf);
}

/* A route's `return`: its status, with return_url's variables filled in
 * from the request ($scheme $host $request_uri $uri $args), or its body. */
static void stream_return(struct proxy_stream *s, const struct proxy_route *route,
			  const char *buf)
{
	const struct core_http_msg *m = &px.msg;
	const char *t = route->ret_url, *path = buf + m->path.off, *q;
	size_t plen = m->path.len, hlen = m->host.len, o = 0, n;
	char loc[PROXY_LOCATION_MAX];

	if (t == NULL) {
		stream_answer(s, route->ret, NULL, route->ret_body, buf);
		return;
	}
	if (hlen > 0 && buf[m->host.off] != '[') {	/* $host has no port */
		const char *c = memchr(buf + m->host.off, ':', hlen);

		if (c != NULL)
			hlen = (size_t)(c - (buf + m->host.off));
	}
	q = memchr(path, '?', plen);
	while (*t != '\0') {
		const char *v = NULL;
		size_t vlen = 0;

		if (*t == '$' && strncmp(t, "$scheme", 7) == 0) {
			v = s->tls ? "https" : "http";
			vlen = strlen(v);
			t += 7;
		} else if (*t == '$' && strncmp(t, "$host", 5) == 0) {
			v = buf + m->host.off;
			vlen = hlen;
			t += 5;
		} else if (*t == '$' && strncmp(t, "$request_uri", 12) == 0) {
			v = path;
			vlen = plen;
			t += 12;
		} else if (*t == '$' && strncmp(t, "$uri", 4) == 0) {
			v = path;
			vlen = q ? (size_t)(q - path) : plen;
			t += 4;
		} else if (*t == '$' && strncmp(t, "$args", 5) == 0) {
			v = q ? q + 1 : "";
			vlen = q ? plen - (size_t)(q + 1 - path) : 0;
			t += 5;
		} else {
			v = t++;
			vlen = 1;
		}
		n = vlen < sizeof(loc) - o ? vlen : sizeof(loc) - o;
		memcpy(loc + o, v, n);
		o += n;
		if (o == sizeof(loc)) {
			stream_reply(s, 414, NULL, buf);
			return;
		}
	}
	loc[o] = '\0';
	stream_answer(s, route->ret, loc, NULL, buf);
}

/* ---- static files (static.c) ---------------------------------------------------------------- */

static void static_wake(void *owner)
{
	struct proxy_stream *s = owner;

	if (s->state == PROXY_ST_STATIC)
		stream_step(s);
}

/*
 * A static route's request: static.c writes the answer into cout as the
 * NFS server gives it. A request body is not read: the answer says close.
 */
static void stream_static(struct proxy_stream *s, struct proxy_xchg *x, int head_len,
			  const char *buf)
{
	const struct core_http_msg *m = &px.msg;
	const struct proxy_route *route = x->route;
	const char *path = buf + m->path.off, *q = memchr(path, '?', m->path.len);
	size_t plen = q ? (size_t)(q - path) : m->path.len;
	char extra[160] = "";
	size_t skip;
	int n = 0;

	if ((m->flags & (CORE_HTTP_HF_CHUNKED | CORE_HTTP_HF_UPGRADE)) ||
	    ((m->flags & CORE_HTTP_HF_HAS_CL) && m->content_length > 0) || px.draining)
		s->close_after = true;
	if (s->tls != NULL && route->hsts > 0)
		n = snprintf(extra, sizeof(extra), "Strict-Transport-Security: max-age=%llu\r\n",
			     (unsigned long long)route->hsts);
	if (s->close_after) {
		snprintf(extra + n, sizeof(extra) - (size_t)n, "Connection: close\r\n");
		s->said_close = true;
	} else if (x->client_version == 10)
		snprintf(extra + n, sizeof(extra) - (size_t)n, "Connection: keep-alive\r\n");
	/* cout is empty between requests; its cap grows to what a job may put. */
	if (core_buf_len(&s->cout) == 0 &&
	    s->cout.max < px.rt->buffer_size + PROXY_STATIC_OUT_MAX) {
		core_buf_free(&s->cout);
		core_buf_init(&s->cout, px.rt->buffer_size + PROXY_STATIC_OUT_MAX);
	}
	s->state = PROXY_ST_STATIC;
	s->since = core_loop_now(px.loop);
	/* What is below the route: "/files/a" on "/files/" is "/a". */
	skip = route->path[route->path_len - 1] == '/' ? route->path_len - 1 : route->path_len;
	x->job = proxy_static_begin(route->files, px.loop, path, plen, skip, q ? q + 1 : "",
				    q ? m->path.len - plen - 1 : 0, m, buf, extra, &s->cout,
				    static_wake, s);
	core_buf_consume(&s->cin, (size_t)head_len);
	s->scan = 0;
	if (x->job == NULL) {
		stream_reply(s, 503, NULL, NULL);
		return;
	}
	if (s->close_after)
		core_buf_consume(&s->cin, core_buf_len(&s->cin));	/* a body: not read */
}

static void stream_static_step(struct proxy_stream *s)
{
	struct proxy_xchg *x = s->x;

	if (core_buf_len(&s->cout) > 0) {
		ssize_t n = client_write(s);

		if (n < 0 && n != CORE_AGAIN) {
			stream_close(s);	/* the client went away */
			return;
		}
		if (n > 0) {
			x->resp_any = true;
			x->resp_bytes += (uint64_t)n;
			s->since = core_loop_now(px.loop);
		}
	}
	if (proxy_static_broken(x->job)) {
		stream_close(s);	/* the head went out: only closing tells */
		return;
	}
	x->status = proxy_static_status(x->job);
	if (core_buf_len(&s->cout) == 0 && proxy_static_done(x->job)) {
		if (s->close_after && !s->client_eof) {
			/* A body may still be coming: shut down and linger as
			 * after keel's own replies, so no reset eats the answer. */
			s->x = NULL;
			xchg_free(x, false);
			s->state = PROXY_ST_REPLY;
			s->since = core_loop_now(px.loop);
			return;
		}
		xchg_finish(s);
		return;
	}
	proxy_static_more(x->job);
	if (proxy_static_broken(x->job))
		stream_close(s);
}

static void stream_handle_head(struct proxy_stream *s, int head_len)
{
	const struct core_http_msg *m = &px.msg;
	const char *buf = core_buf_head(&s->cin);
	const struct proxy_route *route, *redirect;
	struct proxy_xchg *x;
	char peer[INET6_ADDRSTRLEN];
	const char *why = NULL;

	s->requests++;
	if (m->host.len == sizeof(CORE_WATCHDOG_HOST) - 1 && stream_loopback(s) &&
	    memcmp(buf + m->host.off, CORE_WATCHDOG_HOST, m->host.len) == 0) {
		stream_alive(s);
		return;
	}
	route = proxy_route_find(px.rt, buf + m->host.off, m->host.len,
				 buf + m->path.off, m->path.len, &redirect);
	if (route == NULL) {
		if (redirect != NULL) {
			char loc[PROXY_LOCATION_MAX];
			const char *q = memchr(buf + m->path.off, '?', m->path.len);
			int n = snprintf(loc, sizeof(loc), "%s%.*s", redirect->path,
					 q ? (int)(m->path.len - (uint32_t)(q - (buf + m->path.off))) : 0,
					 q ? q : "");

			stream_reply(s, n < (int)sizeof(loc) ? 301 : 414,
				     n < (int)sizeof(loc) ? loc : NULL, buf);
		} else
			stream_reply(s, 404, NULL, buf);
		return;
	}
	if (route->https_redirect && s->tls == NULL) {
		stream_redirect_https(s, route, buf);
		return;
	}
	if (route->ret != 0) {
		stream_return(s, route, buf);
		return;
	}
	if ((m->flags & CORE_HTTP_HF_HAS_CL) && m->content_length > route->max_body) {
		core_log_info("proxy", "%s: %.*s body of %lld bytes refused (route %u allows %lld)",
			      peer_str(s, peer, sizeof(peer)), (int)m->path.len, buf + m->path.off,
			      (long long)m->content_length, route->index,
			      (long long)route->max_body);
		stream_reply(s, 413, NULL, buf);
		return;
	}

	x = xchg_get();
	if (x == NULL) {
		stream_reply(s, 503, NULL, buf);
		return;
	}
	s->x = x;
	x->stream = s;
	x->rt = px.rt;
	proxy_runtime_ref(x->rt);
	x->route = route;
	proxy_stat_add(route->st->requests, 1);
	x->started = core_loop_now(px.loop);
	x->method = m->method_id;
	x->client_version = m->version;
	x->idempotent = core_http_idempotent(m->method_id);
	x->upgrade = (m->flags & CORE_HTTP_HF_UPGRADE) != 0;
	if (route->up != NULL && route->up->balance == KEEL_BALANCE_COOKIE)
		x->pinned = cookie_find(route->up, m, buf);
	if (proxy_log_enabled() && (x->log = malloc(sizeof(*x->log))) != NULL)
		proxy_log_fill(x->log, peer_str(s, peer, sizeof(peer)), m, buf, x->started);
	s->idle_timeout = route->idle_timeout;
	if (m->flags & CORE_HTTP_HF_CLOSE)
		s->close_after = true;
	if (route->files != NULL) {
		stream_static(s, x, head_len, buf);
		return;
	}

	if (m->flags & CORE_HTTP_HF_CHUNKED) {
		x->req_body = PROXY_BODY_CHUNKED;
		core_http_chunked_init(&x->req_ch);
	} else if ((m->flags & CORE_HTTP_HF_HAS_CL) && m->content_length > 0) {
		x->req_body = PROXY_BODY_LENGTH;
		x->req_left = (uint64_t)m->content_length;
	} else {
		x->req_body = PROXY_BODY_NONE;
		x->req_done = true;
	}

	core_buf_init(&x->uhead, x->rt->lim.max_head + PROXY_HEAD_EXTRA);
	if (xchg_build_head(s, x, buf) != CORE_OK) {
		stream_reply(s, 431, NULL, NULL);
		return;
	}
	core_buf_consume(&s->cin, (size_t)head_len);
	s->scan = 0;

	if (xchg_try(s, &why) != CORE_OK) {
		char all[512];

		proxy_upstream_why_none(route->up, core_loop_now(px.loop), all, sizeof(all));
		core_log_error("proxy", "%s: upstream %s: %s: %s",
			       peer_str(s, peer, sizeof(peer)), route->up->name, why, all);
		stream_reply(s, x->tries > 0 ? 502 : 503, NULL, NULL);
	}
}

static void stream_read_head(struct proxy_stream *s)
{
	int rc;

	if (core_buf_len(&s->cin) == 0)
		return;
	core_http_msg_reset(&px.msg);
	px.msg.scan = s->scan;
	rc = core_http_parse_request(core_buf_head(&s->cin), core_buf_len(&s->cin),
				      &px.rt->lim, &px.msg);
	s->scan = px.msg.scan;
	if (rc == 0)
		return;
	if (rc < 0) {
		char peer[INET6_ADDRSTRLEN];

		core_log_info("proxy", "%s: bad request (%d): %s", peer_str(s, peer, sizeof(peer)),
			      -rc, px.msg.why ? px.msg.why : "?");
		proxy_stat_add(px.rt->stats->bad_requests, 1);
		stream_reply(s, (unsigned)-rc, NULL, NULL);
		return;
	}
	stream_handle_head(s, rc);
}

/* ---- the response head ------------------------------------------------------------------- */

/* Response headers that reach the client: hop-by-hop ones do not, except
 * the framing and protocol switch keel passes on unchanged. */
static bool keep_response_header(const struct core_http_header *h, const void *arg)
{
	const struct core_http_msg *m = arg;

	if (!h->hop)
		return true;
	return (h->kind == CORE_HTTP_H_TRANSFER_ENCODING && (m->flags & CORE_HTTP_HF_CHUNKED)) ||
	       (h->kind == CORE_HTTP_H_UPGRADE && m->status == 101);
}

/* Builds the client's head from the response in px.msg (parsed from uin). */
static int xchg_build_resp_head(struct proxy_stream *s, struct proxy_xchg *x, const char *buf)
{
	const struct core_http_msg *m = &px.msg;
	struct core_buf *b = &s->cout;
	char code[4] = { (char)('0' + m->status / 100), (char)('0' + m->status / 10 % 10),
			 (char)('0' + m->status % 10), ' ' };
	int rc = CORE_OK;

	rc |= PUT_LIT(b, "HTTP/1.1 ");
	rc |= core_buf_append(b, code, sizeof(code));
	rc |= put_span(b, buf, m->reason);
	rc |= PUT_LIT(b, "\r\n");
	rc |= put_headers(b, m, buf, keep_response_header, m);
	if (x->route->up->balance == KEEL_BALANCE_COOKIE && m->status >= 200 &&
	    x->srv != x->pinned) {
		/* New client, or its server is out: pin it to this one. */
		rc |= PUT_LIT(b, "Set-Cookie: ");
		rc |= core_buf_append(b, x->route->up->cookie, x->route->up->cookie_len);
		rc |= PUT_LIT(b, "=");
		rc |= core_buf_append(b, x->srv->cookie, 22);
		rc |= PUT_LIT(b, "; Path=/; HttpOnly; SameSite=Lax");
		rc |= s->tls != NULL ? PUT_LIT(b, "; Secure\r\n") : PUT_LIT(b, "\r\n");
	}
	if (s->tls != NULL && x->route->hsts > 0 && m->status >= 200) {
		char sts[64];
		int n = snprintf(sts, sizeof(sts), "Strict-Transport-Security: max-age=%llu\r\n",
				 (unsigned long long)x->route->hsts);

		rc |= core_buf_append(b, sts, (size_t)n);
	}
	if (x->route->upstream_header && m->status >= 200) {
		rc |= PUT_LIT(b, "X-Keel-Upstream: ");
		rc |= put_str(b, x->srv->name);
		rc |= PUT_LIT(b, "\r\n");
	}
	if (m->status == 101)
		rc |= PUT_LIT(b, "Connection: upgrade\r\n");
	else if (m->status >= 200 && s->close_after) {
		rc |= PUT_LIT(b, "Connection: close\r\n");
		s->said_close = true;
	} else if (m->status >= 200 && x->client_version == 10)
		rc |= PUT_LIT(b, "Connection: keep-alive\r\n");
	rc |= PUT_LIT(b, "\r\n");
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

/* Parses response heads in uin; returns false when the exchange ended. */
static bool xchg_read_resp_head(struct proxy_stream *s)
{
	struct proxy_xchg *x = s->x;
	const struct core_http_msg *m = &px.msg;
	int rc;

	while (!x->resp_head) {
		if (core_buf_len(&x->uin) == 0 && !x->up_eof)
			return true;
		core_http_msg_reset(&px.msg);
		px.msg.scan = x->resp_scan;
		rc = core_http_parse_response(core_buf_head(&x->uin), core_buf_len(&x->uin),
					       &x->rt->lim, &px.msg);
		x->resp_scan = px.msg.scan;
		if (rc == 0) {
			if (!x->up_eof)
				return true;
			xchg_fail(s, 502, core_buf_len(&x->uin) == 0 && x->pooled ?
				  "idle connection closed by the server" :
				  "connection closed before a complete response head",
				  core_buf_len(&x->uin) == 0 && x->pooled ? 0 : XF_SERVER_FAULT);
			return false;
		}
		if (rc < 0) {
			xchg_fail(s, 502, px.msg.why ? px.msg.why : "invalid response head", XF_SERVER_FAULT);
			return false;
		}

		/* Every answer counts against the server that gave it, even
		 * one keel then retries elsewhere. */
		proxy_stat_add(x->srv->st->responses[m->status / 100 - 1], 1);
		if (m->status >= 100 && m->status < 200 && m->status != 101) {
			/* Interim (100 Continue, 103 Early Hints): pass on, read on. */
			if (xchg_build_resp_head(s, x, core_buf_head(&x->uin)) != CORE_OK) {
				xchg_fail(s, 502, "response head too large", XF_SERVER_FAULT);
				return false;
			}
			core_buf_consume(&x->uin, (size_t)rc);
			x->resp_scan = 0;
			continue;
		}
		if (m->status == 101 && !x->upgrade) {
			xchg_fail(s, 502, "101 without an upgrade request", XF_SERVER_FAULT);
			return false;
		}
		/* Opted in: an idempotent request that got 5xx tries the next
		 * server, if there is one; the last answer goes to the client. */
		if (m->status >= 500 && x->route->retry_5xx && x->idempotent &&
		    x->req_sent == 0 && x->tries < x->route->tries && !x->resp_any &&
		    proxy_upstream_has_untried(x->route->up, x->tried, core_loop_now(px.loop))) {
			xchg_fail(s, 502, "answered 5xx", XF_SERVER_FAULT);
			return false;
		}
		if (x->client_version == 10 && (m->flags & CORE_HTTP_HF_CHUNKED)) {
			xchg_fail(s, 502, "chunked response to an HTTP/1.0 request", XF_SERVER_FAULT);
			return false;
		}

		/* Body framing (RFC 9112 6.3). */
		if (x->method == CORE_HTTP_M_HEAD || m->status == 204 || m->status == 304 ||
		    m->status == 101)
			x->resp_body = PROXY_BODY_NONE;
		else if (m->flags & CORE_HTTP_HF_CHUNKED) {
			x->resp_body = PROXY_BODY_CHUNKED;
			core_http_chunked_init(&x->resp_ch);
		} else if (m->flags & CORE_HTTP_HF_HAS_CL) {
			x->resp_body = m->content_length ? PROXY_BODY_LENGTH : PROXY_BODY_NONE;
			x->resp_left = (uint64_t)m->content_length;
		} else
			x->resp_body = PROXY_BODY_EOF;

		x->up_reuse = m->version == 11 && !(m->flags & CORE_HTTP_HF_CLOSE) &&
			      x->resp_body != PROXY_BODY_EOF && m->status != 101 &&
			      x->client_version == 11 && x->route->up->keepalive > 0;
		if (x->resp_body == PROXY_BODY_EOF || (!x->req_done && m->status >= 200))
			s->close_after = true;	/* the end is the close, or the
						 * request body was cut short */
		if (s->idle_timeout == 0)
			s->close_after = true;
		x->status = m->status;
		if (xchg_build_resp_head(s, x, core_buf_head(&x->uin)) != CORE_OK) {
			xchg_fail(s, 502, "response head too large", XF_SERVER_FAULT);
			return false;
		}
		core_buf_consume(&x->uin, (size_t)rc);
		x->resp_head = true;
		proxy_server_succeeded(x->srv);
		if (x->log != NULL) {
			snprintf(x->log->upstream, sizeof(x->log->upstream), "%s", x->srv->name);
			x->log->upstream_ms = core_loop_now(px.loop) - x->connect_at;
		}
		if (m->status == 101) {
			s->state = PROXY_ST_TUNNEL;
			x->req_done = true;
			x->resp_body = PROXY_BODY_NONE;
		}
	}
	return true;
}

/* ---- moving bytes -------------------------------------------------------------------------- */

/* How much of cin is request body not yet sent; enforces max_body. */
static bool xchg_scan_request(struct proxy_stream *s)
{
	struct proxy_xchg *x = s->x;
	size_t len = core_buf_len(&s->cin);
	const char *why = NULL;

	if (s->state == PROXY_ST_TUNNEL) {
		x->req_ready = len;
		return true;
	}
	switch (x->req_body) {
	case PROXY_BODY_LENGTH:
		x->req_ready = len < x->req_left ? len : (size_t)x->req_left;
		break;
	case PROXY_BODY_CHUNKED:
		if (x->req_ch.state != CORE_HTTP_CH_DONE && x->req_ready < len) {
			ssize_t k = core_http_chunked_feed(&x->req_ch, core_buf_head(&s->cin) + x->req_ready,
						       len - x->req_ready, &why);

			if (k < 0) {
				char peer[INET6_ADDRSTRLEN];

				core_log_info("proxy", "%s: bad chunked request body: %s",
					      peer_str(s, peer, sizeof(peer)), why);
				if (x->resp_any)
					stream_close(s);
				else
					stream_reply(s, 400, NULL, NULL);
				return false;
			}
			x->req_ready += (size_t)k;
		}
		if (x->req_ch.total > (uint64_t)x->route->max_body) {
			if (x->resp_any)
				stream_close(s);
			else
				stream_reply(s, 413, NULL, NULL);
			return false;
		}
		break;
	default:
		x->req_ready = 0;
	}
	return true;
}

/* How much of uin is response body the client may get now. */
static bool xchg_scan_response(struct proxy_stream *s)
{
	struct proxy_xchg *x = s->x;
	size_t len = core_buf_len(&x->uin);
	const char *why = NULL;

	if (!x->resp_head)
		return true;
	switch (x->resp_body) {
	case PROXY_BODY_LENGTH:
		x->resp_ready = len < x->resp_left ? len : (size_t)x->resp_left;
		break;
	case PROXY_BODY_CHUNKED:
		if (x->resp_ch.state != CORE_HTTP_CH_DONE && x->resp_ready < len) {
			ssize_t k = core_http_chunked_feed(&x->resp_ch, core_buf_head(&x->uin) + x->resp_ready,
						       len - x->resp_ready, &why);

			if (k < 0) {
				core_log_warn("proxy", "upstream %s: server %s: bad chunked body: %s",
					      x->route->up->name, x->srv->name, why);
				stream_close(s);
				return false;
			}
			x->resp_ready += (size_t)k;
		}
		break;
	case PROXY_BODY_EOF:
		x->resp_ready = len;
		break;
	default:
		x->resp_ready = s->state == PROXY_ST_TUNNEL ? len : 0;
	}
	return true;
}

/* Writes keel's head bytes and then `body` bytes of `from` to fd. Returns
 * the body bytes written, or -1 with errno on a hard error. */
static ssize_t write2(int fd, struct core_tls *tls, struct core_buf *head, size_t *head_off,
		      struct core_buf *from, size_t body, size_t *hw)
{
	struct iovec iov[2];
	size_t hlen = core_buf_len(head) - (head_off ? *head_off : 0);
	int n = 0;
	ssize_t w;

	*hw = 0;
	if (hlen > 0) {
		iov[n].iov_base = core_buf_head(head) + (head_off ? *head_off : 0);
		iov[n++].iov_len = hlen;
	}
	if (body > 0) {
		iov[n].iov_base = core_buf_head(from);
		iov[n++].iov_len = body;
	}
	if (n == 0)
		return 0;
	if (tls != NULL) {
		if ((w = core_tls_writev(tls, iov, n)) < 0) {
			errno = EPROTO;
			return -1;
		}
	} else {
		do
			w = writev(fd, iov, n);
		while (w == -1 && errno == EINTR);
		if (w == -1)
			return errno == EAGAIN ? 0 : -1;
	}
	if ((size_t)w <= hlen) {
		*hw = (size_t)w;
		return 0;
	}
	*hw = hlen;
	return w - (ssize_t)hlen;
}

/* Sends what the server may have now: head, then request body. */
static bool xchg_write_up(struct proxy_stream *s)
{
	struct proxy_xchg *x = s->x;
	size_t hw, before = x->uhead_sent;
	ssize_t bw;

	if (x->uc == NULL || s->state == PROXY_ST_CONNECT)
		return true;
	bw = write2(x->uc->fd, x->uc->tls, &x->uhead, &x->uhead_sent, &s->cin, x->req_ready, &hw);
	if (bw < 0) {
		xchg_fail(s, 502, strerror(errno), x->pooled ? 0 : XF_SERVER_FAULT);
		return false;
	}
	x->uhead_sent += hw;
	if (bw > 0) {
		core_buf_consume(&s->cin, (size_t)bw);
		x->req_ready -= (size_t)bw;
		x->req_sent += (uint64_t)bw;
		if (x->req_body == PROXY_BODY_LENGTH)
			x->req_left -= (uint64_t)bw;
	}
	if (hw > 0 || bw > 0 || before == 0)
		x->up_wait = core_loop_now(px.loop);
	if (x->uhead_sent == core_buf_len(&x->uhead) && x->req_ready == 0 &&
	    ((x->req_body == PROXY_BODY_LENGTH && x->req_left == 0) ||
	     (x->req_body == PROXY_BODY_CHUNKED && x->req_ch.state == CORE_HTTP_CH_DONE)))
		x->req_done = true;
	if (x->req_done && !x->waiting && !x->resp_head && core_buf_len(&x->uin) == 0 &&
	    x->uhead_sent == core_buf_len(&x->uhead) && s->state == PROXY_ST_EXCHANGE)
		wait_add(x, core_loop_now(px.loop));
	return true;
}

/* Sends the client keel's head bytes, then response body. */
static bool xchg_write_client(struct proxy_stream *s)
{
	struct proxy_xchg *x = s->x;
	size_t hw;
	ssize_t bw;

	if (core_buf_len(&s->cout) == 0 && x->resp_ready == 0)
		return true;
	stream_will_write(s);
	bw = write2(s->fd, s->tls, &s->cout, NULL, &x->uin, x->resp_ready, &hw);
	if (bw < 0) {
		stream_close(s);	/* the client went away */
		return false;
	}
	if (hw > 0 || bw > 0) {
		x->resp_any = true;
		s->since = core_loop_now(px.loop);
	}
	core_buf_consume(&s->cout, hw);
	if (bw > 0) {
		x->up_wait = s->since;	/* room again: the server's wait starts now */
		core_buf_consume(&x->uin, (size_t)bw);
		x->resp_ready -= (size_t)bw;
		x->resp_bytes += (uint64_t)bw;
		if (x->resp_body == PROXY_BODY_LENGTH)
			x->resp_left -= (uint64_t)bw;
	}
	return true;
}

static bool xchg_response_complete(const struct proxy_xchg *x, const struct proxy_stream *s)
{
	if (!x->resp_head || core_buf_len(&s->cout) > 0 || s->state == PROXY_ST_TUNNEL)
		return false;
	switch (x->resp_body) {
	case PROXY_BODY_NONE:	 return true;
	case PROXY_BODY_LENGTH:	 return x->resp_left == 0;
	case PROXY_BODY_CHUNKED: return x->resp_ch.state == CORE_HTTP_CH_DONE && x->resp_ready == 0;
	case PROXY_BODY_EOF:	 return x->up_eof && core_buf_len(&x->uin) == 0;
	}
	return false;
}

/* The response is out: park or close the server connection, then wait
 * for the next request or close. */
static void xchg_finish(struct proxy_stream *s)
{
	struct proxy_xchg *x = s->x;
	bool reuse = x->up_reuse && x->req_done && core_buf_len(&x->uin) == 0 && !x->up_eof;

	s->x = NULL;
	xchg_free(x, reuse);
	/* Close only when the client was told so: a client told keep-alive
	 * may already be sending its next request, which then gets the
	 * "Connection: close" (a draining worker decides late). */
	if (s->said_close || s->client_eof) {
		/* close_notify first: without it, a TLS client (OpenSSL's
		 * s_time, say) takes the end for a truncation attack and will
		 * not resume the session. */
		if (s->tls != NULL && !s->client_eof)
			core_tls_close(s->tls);
		stream_close(s);
		return;
	}
	s->state = PROXY_ST_HEAD;
	s->since = core_loop_now(px.loop);
	if (core_buf_len(&s->cin) == 0) {
		/* Idle connections hold no buffers. */
		core_buf_free(&s->cin);
		core_buf_free(&s->cout);
	}
}

/* ---- events ---------------------------------------------------------------------------------- */

/* Reads what the client sent, through TLS when it is on. */
/* Reads from fd, through tls when there is one, into b. */
static ssize_t buf_read(struct core_buf *b, int fd, struct core_tls *tls)
{
	return tls != NULL ? core_tls_read_buf(tls, b) : core_buf_read(b, fd);
}

static ssize_t client_read(struct proxy_stream *s)
{
	return buf_read(&s->cin, s->fd, s->tls);
}

/* Writes keel's own bytes in cout. */
static ssize_t client_write(struct proxy_stream *s)
{
	size_t hw;

	if (core_buf_len(&s->cout) > 0)
		stream_will_write(s);
	if (s->tls == NULL)
		return core_buf_write(&s->cout, s->fd);
	if (write2(s->fd, s->tls, &s->cout, NULL, NULL, 0, &hw) < 0)
		return -EPROTO;
	core_buf_consume(&s->cout, hw);
	return hw > 0 ? (ssize_t)hw : CORE_AGAIN;
}

/* Plain HTTP on an HTTPS port gets a readable 400 rather than a TLS
 * alert, as nginx does. True when that is what came. */
static bool stream_plain_on_tls(struct proxy_stream *s)
{
	unsigned char c;

	if (recv(s->fd, &c, 1, MSG_PEEK) != 1 || c < 'A' || c > 'Z')
		return false;
	core_tls_free(s->tls);
	s->tls = NULL;
	s->state = PROXY_ST_HEAD;
	stream_reply(s, 400, NULL, NULL);
	stream_step(s);
	return true;
}

/* The TLS handshake; false when the stream closed. */
static bool stream_handshake(struct proxy_stream *s)
{
	char err[160], peer[INET6_ADDRSTRLEN];
	int rc;

	if (!s->hs_begun) {
		s->hs_begun = true;
		if (stream_plain_on_tls(s))
			return false;
	}
	rc = core_tls_handshake(s->tls, err, sizeof(err));

	if (rc == CORE_AGAIN)
		return true;
	if (rc != CORE_OK) {
		core_log_info("proxy", "%s: TLS: %s", peer_str(s, peer, sizeof(peer)), err);
		proxy_stat_add(px.rt->stats->bad_requests, 1);
		stream_close(s);
		return false;
	}
	core_log_debug("proxy", "%s: %s established", peer_str(s, peer, sizeof(peer)),
		       core_tls_version(s->tls));
	s->state = PROXY_ST_HEAD;
	s->since = core_loop_now(px.loop);
	return true;
}

/* One read from the client; false when the stream closed. */
static bool stream_read(struct proxy_stream *s)
{
	ssize_t n = client_read(s);

	if (n == 0 || (n < 0 && n != CORE_AGAIN && n != CORE_FULL)) {
		s->client_eof = true;
		if (s->state == PROXY_ST_HEAD || s->state == PROXY_ST_LINGER ||
		    s->state == PROXY_ST_TUNNEL || n < 0 ||
		    (s->x != NULL && !s->x->req_done)) {
			stream_close(s);
			return false;
		}
	} else if (n > 0 && s->state == PROXY_ST_HEAD && core_buf_len(&s->cin) == (size_t)n)
		s->since = core_loop_now(px.loop);	/* a head starts: header_timeout */
	if (s->state == PROXY_ST_LINGER)
		core_buf_consume(&s->cin, core_buf_len(&s->cin));
	return true;
}

static void stream_on_io(struct core_io *io, unsigned revents)
{
	struct proxy_stream *s = io->data;

	if (s->state == PROXY_ST_HANDSHAKE) {
		if (!stream_handshake(s))
			return;
		if (s->state == PROXY_ST_HANDSHAKE) {
			stream_arm(s);
			return;
		}
		revents |= CORE_IO_READ;	/* a request may follow at once */
	}
	if ((revents & CORE_IO_READ) && !stream_read(s))
		return;
	stream_step(s);
}

/*
 * An HTTPS upstream: the handshake runs in the CONNECT state, so
 * connect_timeout covers it and a failure (a refused certificate, say) is
 * a failed try like a refused connection. false: the try ended.
 */
static bool up_handshake(struct proxy_stream *s, bool *done)
{
	static char why[400];	/* xchg_fail logs it; one worker, one thread */
	struct proxy_xchg *x = s->x;
	struct proxy_upstream *up = x->route->up;
	char err[256], verify[256];
	int rc;

	*done = false;
	if (x->uc->tls == NULL &&
	    (x->uc->tls = core_tls_client(up->tls, x->uc->fd,
					  up->tls_name ? up->tls_name : x->srv->host)) == NULL) {
		xchg_fail(s, 502, "TLS: out of memory", 0);
		return false;
	}
	rc = core_tls_handshake(x->uc->tls, err, sizeof(err));
	if (rc == CORE_AGAIN)
		return true;
	if (rc != CORE_OK) {
		if (core_tls_verify_error(x->uc->tls, verify, sizeof(verify)) == CORE_OK)
			snprintf(why, sizeof(why), "TLS: certificate refused: %s", verify);
		else
			snprintf(why, sizeof(why), "TLS: %s", err);
		xchg_fail(s, 502, why, XF_SERVER_FAULT);
		return false;
	}
	*done = true;
	return true;
}

/* Reads what the server sent into uin. false: the stream ended here. */
static bool up_read(struct proxy_stream *s)
{
	struct proxy_xchg *x = s->x;
	ssize_t n = buf_read(&x->uin, x->uc->fd, x->uc->tls);

	if (n > 0) {
		x->up_wait = core_loop_now(px.loop);
		proxy_stat_set(x->srv->st->last_byte, x->up_wait);
		wait_remove(x);
	} else if (n == 0)
		x->up_eof = true;
	else if (n != CORE_AGAIN && n != CORE_FULL) {
		if (!x->resp_head) {
			xchg_fail(s, 502, n == -EPROTO ? "TLS: connection failed" : strerror((int)-n),
				  x->pooled ? 0 : XF_SERVER_FAULT);
			stream_step(s);
			return false;
		}
		x->up_eof = true;
		if (x->resp_body != PROXY_BODY_EOF) {
			stream_close(s);
			return false;
		}
	}
	return true;
}

static void up_on_io(struct core_io *io, unsigned revents)
{
	struct proxy_stream *s = io->data;
	struct proxy_xchg *x = s->x;

	if (s->state == PROXY_ST_CONNECT) {
		int err = 0;
		socklen_t el = sizeof(err);

		if (x->uc->tls == NULL) {
			getsockopt(x->uc->fd, SOL_SOCKET, SO_ERROR, &err, &el);
			if (err != 0) {
				xchg_fail(s, 502, strerror(err), XF_SERVER_FAULT);
				stream_step(s);
				return;
			}
		}
		if (x->route->up->tls != NULL) {
			bool done;

			if (!up_handshake(s, &done)) {
				stream_step(s);
				return;
			}
			if (!done) {
				stream_arm(s);
				return;
			}
			revents |= CORE_IO_READ;	/* records may sit in the library */
		}
		s->state = PROXY_ST_EXCHANGE;
		x->up_wait = core_loop_now(px.loop);
	}
	if ((revents & CORE_IO_READ) && !x->up_eof && !up_read(s))
		return;
	stream_step(s);
}

/* Makes all the progress the buffers allow, then sets interests and timer. */
static void stream_step(struct proxy_stream *s)
{
	unsigned guard;

	for (guard = 0; guard < 8; guard++) {
		enum proxy_stream_state st = s->state;
		struct proxy_xchg *x = s->x;

		/* TLS may hold decrypted bytes the socket will not signal. */
		if (s->tls != NULL && st != PROXY_ST_HANDSHAKE && !s->client_eof &&
		    core_tls_pending(s->tls) > 0 && core_buf_len(&s->cin) < s->cin.max) {
			if (!stream_read(s))
				return;
			st = s->state;
		}
		if (x != NULL && x->uc != NULL && x->uc->tls != NULL && !x->up_eof &&
		    (st == PROXY_ST_EXCHANGE || st == PROXY_ST_TUNNEL) &&
		    core_tls_pending(x->uc->tls) > 0 && core_buf_len(&x->uin) < x->uin.max) {
			if (!up_read(s))
				return;
			st = s->state;
			x = s->x;
		}
		switch (st) {
		case PROXY_ST_HANDSHAKE:
			break;
		case PROXY_ST_HEAD:
			stream_read_head(s);
			break;
		case PROXY_ST_CONNECT:
			break;
		case PROXY_ST_EXCHANGE:
		case PROXY_ST_TUNNEL:
			if (!xchg_scan_request(s) || !xchg_write_up(s))
				break;
			if (s->state == PROXY_ST_EXCHANGE && !xchg_read_resp_head(s))
				break;
			if (!xchg_scan_response(s) || !xchg_write_client(s))
				break;
			if (s->state == PROXY_ST_TUNNEL) {
				if ((x->up_eof && core_buf_len(&x->uin) == 0) ||
				    (s->client_eof && core_buf_len(&s->cin) == 0))
					stream_close(s);
				break;
			}
			if (x->up_eof && x->resp_head && x->resp_body != PROXY_BODY_EOF &&
			    !xchg_response_complete(x, s) && x->resp_ready == 0) {
				core_log_warn("proxy", "upstream %s: server %s closed mid-response",
					      x->route->up->name, x->srv->name);
				stream_close(s);
				break;
			}
			if (xchg_response_complete(x, s))
				xchg_finish(s);
			break;
		case PROXY_ST_STATIC:
			stream_static_step(s);
			break;
		case PROXY_ST_REPLY:
			if (core_buf_len(&s->cout) > 0) {
				ssize_t n = client_write(s);

				if (n < 0 && n != CORE_AGAIN) {
					stream_close(s);
					break;
				}
			}
			if (core_buf_len(&s->cout) == 0) {
				if (s->tls != NULL)
					core_tls_close(s->tls);
				shutdown(s->fd, SHUT_WR);
				s->state = PROXY_ST_LINGER;
				s->since = core_loop_now(px.loop);
				core_buf_consume(&s->cin, core_buf_len(&s->cin));
			}
			break;
		case PROXY_ST_LINGER:
		case PROXY_ST_CLOSED:
			break;
		}
		if (s->state == st || s->state == PROXY_ST_CLOSED)
			break;
	}
	if (s->state != PROXY_ST_CLOSED)
		stream_arm(s);
}

/* Sets what each fd waits for and the one timer, from the state. */
static void stream_arm(struct proxy_stream *s)
{
	struct proxy_xchg *x = s->x;
	uint64_t now = core_loop_now(px.loop), deadline = UINT64_MAX, d;
	unsigned cev = 0, uev = 0;
	bool cin_room = core_buf_len(&s->cin) < s->cin.max;

	switch (s->state) {
	case PROXY_ST_HANDSHAKE:
		cev = core_tls_want(s->tls);
		deadline = s->since + px.rt->header_timeout;
		break;
	case PROXY_ST_HEAD:
		if (cin_room)
			cev = CORE_IO_READ;
		deadline = s->since + (core_buf_len(&s->cin) > 0 || s->requests == 0 ?
				       px.rt->header_timeout : s->idle_timeout);
		break;
	case PROXY_ST_CONNECT:
		uev = x->uc != NULL && x->uc->tls != NULL ? core_tls_want(x->uc->tls) : CORE_IO_WRITE;
		deadline = x->connect_at + x->route->connect_timeout;
		break;
	case PROXY_ST_EXCHANGE:
	case PROXY_ST_TUNNEL: {
		bool up_out = x->uhead_sent < core_buf_len(&x->uhead) || x->req_ready > 0;
		bool c_out = core_buf_len(&s->cout) > 0 || x->resp_ready > 0;
		uint64_t t = s->state == PROXY_ST_TUNNEL ? x->route->read_timeout
							 : x->route->send_timeout;

		if (cin_room && !s->client_eof)
			cev |= CORE_IO_READ;
		if (c_out)
			cev |= CORE_IO_WRITE;
		if (core_buf_len(&x->uin) < x->uin.max && !x->up_eof)
			uev |= CORE_IO_READ;
		if (up_out)
			uev |= CORE_IO_WRITE;

		/* The server's clock runs only while keel waits on it, not
		 * while a full buffer holds it back for a slow client. */
		if (up_out)
			deadline = x->up_wait + t;
		else if (uev & CORE_IO_READ)
			deadline = x->up_wait + x->route->read_timeout;
		if (c_out && (d = s->since + x->route->send_timeout) < deadline)
			deadline = d;
		if (!x->resp_any && x->route->try_timeout &&
		    (d = x->started + x->route->try_timeout) < deadline)
			deadline = d;
		break;
	}
	case PROXY_ST_STATIC: {
		uint64_t since, t;

		if (core_buf_len(&s->cout) > 0) {
			cev = CORE_IO_WRITE;
			deadline = s->since + x->route->send_timeout;
		}
		if (proxy_static_waiting(x->job, &since, &t) && (d = since + t) < deadline)
			deadline = d;
		break;
	}
	case PROXY_ST_REPLY:
		cev = CORE_IO_WRITE;
		deadline = s->since + PROXY_LINGER_MS;
		break;
	case PROXY_ST_LINGER:
		cev = CORE_IO_READ;
		deadline = s->since + PROXY_LINGER_MS;
		break;
	case PROXY_ST_CLOSED:
		return;
	}

	if (core_io_set(&s->io, cev) != CORE_OK ||
	    (x != NULL && x->uc != NULL && core_io_set(&x->uc->io, uev) != CORE_OK)) {
		stream_close(s);
		return;
	}
	/* Lazily: the timer moves only when the deadline comes earlier; one
	 * that fires early finds the real deadline and waits again. This
	 * spares the heap a remove and an insert on every step. */
	s->deadline = deadline;
	if (deadline == UINT64_MAX)
		core_timer_stop(&s->timer);
	else if (!core_timer_armed(&s->timer) || core_clock_before(deadline, s->timer.when))
		core_timer_start(&s->timer, deadline > now ? deadline - now : 0);
}

static void stream_on_timer(struct core_timer *t)
{
	struct proxy_stream *s = t->data;
	struct proxy_xchg *x = s->x;
	uint64_t now = core_loop_now(px.loop);
	char peer[INET6_ADDRSTRLEN];

	if (core_clock_before(now, s->deadline)) {	/* moved later since armed */
		core_timer_start(t, s->deadline - now);
		return;
	}
	switch (s->state) {
	case PROXY_ST_HANDSHAKE:
		core_log_info("proxy", "%s: TLS handshake not complete after %llu ms",
			      peer_str(s, peer, sizeof(peer)),
			      (unsigned long long)px.rt->header_timeout);
		stream_close(s);
		return;
	case PROXY_ST_HEAD:
		if (core_buf_len(&s->cin) > 0) {
			core_log_info("proxy", "%s: request head not complete after %llu ms",
				      peer_str(s, peer, sizeof(peer)),
				      (unsigned long long)px.rt->header_timeout);
			stream_reply(s, 408, NULL, NULL);
			stream_step(s);
		} else
			stream_close_idle(s);	/* idle keep-alive ended */
		return;
	case PROXY_ST_CONNECT:
		xchg_fail(s, 504, "connect timed out", XF_SERVER_FAULT);
		break;
	case PROXY_ST_STATIC: {
		uint64_t since, to;

		if (core_buf_len(&s->cout) > 0 && now - s->since >= x->route->send_timeout) {
			core_log_info("proxy", "%s: client took no data for %llu ms; closing",
				      peer_str(s, peer, sizeof(peer)),
				      (unsigned long long)x->route->send_timeout);
			stream_close(s);
			return;
		}
		if (proxy_static_waiting(x->job, &since, &to) && now - since >= to)
			proxy_static_timeout(x->job);	/* the job answers 504, or breaks */
		break;
	}
	case PROXY_ST_EXCHANGE:
		if ((core_buf_len(&s->cout) > 0 || x->resp_ready > 0) &&
		    now - s->since >= x->route->send_timeout) {
			core_log_info("proxy", "%s: client took no data for %llu ms; closing",
				      peer_str(s, peer, sizeof(peer)),
				      (unsigned long long)x->route->send_timeout);
			stream_close(s);
			return;
		}
		if (x->resp_any) {
			core_log_warn("proxy", "upstream %s: server %s timed out mid-response",
				      x->route->up->name, x->srv->name);
			stream_close(s);
			return;
		}
		xchg_fail(s, 504, x->route->try_timeout && now - x->started >= x->route->try_timeout ?
			  "try_timeout reached" : "timed out", XF_SERVER_FAULT);
		break;
	default:
		stream_close(s);
		return;
	}
	if (s->state != PROXY_ST_CLOSED)
		stream_step(s);
}

/* ---- the module ------------------------------------------------------------------------------ */

struct proxy_stats *proxy_stats_current(void)
{
	return px.stats;
}

static int proxy_status_json(struct core_buf *out)
{
	return proxy_stats_json(px.stats, core_clock_mono_ms(), out);
}

static int proxy_status_metrics(struct core_buf *out)
{
	return px.stats != NULL ? proxy_stats_write(px.stats, core_clock_mono_ms(), out) : CORE_OK;
}

static const struct core_status_provider proxy_status = {
	.name = "proxy",
	.order = 30,
	.json = proxy_status_json,
	.metrics = proxy_status_metrics,
};
CORE_STATUS_PROVIDER(proxy_status);

static void proxy_close_listeners(void)
{
	unsigned i;

	for (i = 0; i < px.nls; i++) {
		core_net_accept_del(&px.ls[i].acc);
		close(px.ls[i].fd);
		core_tls_server_drop(px.ls[i].tls);
		px.ls[i].tls = NULL;
	}
	px.nls = 0;
}

/* The certificate pairs of a listener, for core_tls. */
static size_t listener_pairs(const struct keel_listener_conf *l, struct core_tls_pair *pairs,
			     size_t max)
{
	const struct keel_cert_conf *c = l->tls.certificates.v;
	size_t i;

	for (i = 0; i < l->tls.certificates.n && i < max; i++) {
		pairs[i].cert = c[i].cert;
		pairs[i].key = c[i].key;
	}
	return i;
}

/* Master: opens the configured addresses, keeping the sockets of the ones
 * already open (their queues carry over to the next generation), and
 * closes the ones no longer listed. */
static int listeners_update(const struct keel_conf *k, char *err, size_t errlen)
{
	const struct keel_listener_conf *ls = k->listeners.v;
	struct proxy_listener next[PROXY_MAX_LISTENERS];
	bool kept[PROXY_MAX_LISTENERS] = { false };
	unsigned i, j, n = 0;

	for (i = 0; i < k->listeners.n && i < PROXY_MAX_LISTENERS; i++, n++) {
		memset(&next[i], 0, sizeof(next[i]));
		for (j = 0; j < px.nls; j++)
			if (!kept[j] && !strcmp(px.ls[j].name, ls[i].address.text))
				break;
		if (j < px.nls) {
			next[i] = px.ls[j];
			kept[j] = true;
			continue;
		}
		if (listener_open(&next[i], &ls[i].address, err, errlen) != CORE_OK) {
			while (i-- > 0) {
				for (j = 0; j < px.nls; j++)
					if (kept[j] && px.ls[j].fd == next[i].fd)
						break;
				if (j == px.nls)
					close(next[i].fd);
			}
			return CORE_ERROR;
		}
		core_log_info("proxy", "listening on %s%s", next[i].name,
			      ls[i].tls.certificates.n > 0 ? " (https)" : "");
	}
	for (j = 0; j < px.nls; j++)
		if (!kept[j]) {
			core_log_info("proxy", "no longer listening on %s", px.ls[j].name);
			close(px.ls[j].fd);
		}
	memcpy(px.ls, next, n * sizeof(next[0]));
	px.nls = n;
	return CORE_OK;
}

/* Master: listening sockets (once: they are restart-only) and the shared
 * region of the new generation, counters carried over. */
static int proxy_prepare(const struct core_conf *conf, const struct core_conf *prev,
			 char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);
	const struct keel_listener_conf *ls = k->listeners.v;
	struct proxy_stats *st;
	unsigned i;

	/* Affinity cookies are signed with proxy.cookie_key (gateways that
	 * share an address share it), else with the install key, made once,
	 * when a configuration first asks for it. */
	if (k->proxy.cookie_key[0] != '\0') {
		mbedtls_sha256((const unsigned char *)k->proxy.cookie_key,
			       strlen(k->proxy.cookie_key), px.key, 0);
		px.key_from = KEY_CONFIG;
	} else if (px.key_from != KEY_INSTALL) {
		const struct keel_upstream_conf *uc = k->upstreams.v;

		for (i = 0; i < k->upstreams.n; i++)
			if (uc[i].balance == KEEL_BALANCE_COOKIE)
				break;
		if (i < k->upstreams.n) {
			if (core_state_key(k->state_dir, px.key, err, errlen) != CORE_OK)
				return CORE_ERROR;
			px.key_from = KEY_INSTALL;
		}
	}
	/* Certificates are checked before anything changes, so a bad one
	 * leaves the running generation alone. */
	for (i = 0; i < k->listeners.n; i++) {
		struct core_tls_pair pairs[64];
		size_t j, n = listener_pairs(&ls[i], pairs, CORE_ARRAY_SIZE(pairs));

		for (j = 0; j < n; j++) {
			char why[384];

			if (core_tls_check_pair(&pairs[j], why, sizeof(why)) != CORE_OK) {
				snprintf(err, errlen, "listeners[%u].tls.certificates[%zu]: %s",
					 i, j, why);
				return CORE_ERROR;
			}
		}
	}
	for (i = 0; i < k->upstreams.n; i++) {
		const struct keel_upstream_conf *uc = (const struct keel_upstream_conf *)k->upstreams.v + i;
		struct core_tls_server *cli;
		char why[384];

		if (!uc->tls.enabled)
			continue;
		if ((cli = core_tls_client_new(uc->tls.ca_file, uc->tls.verify, why,
					       sizeof(why))) == NULL) {
			snprintf(err, errlen, "upstreams.%s.tls: %s", uc->name, why);
			return CORE_ERROR;
		}
		core_tls_server_drop(cli);
	}
	if (listeners_update(k, err, errlen) != CORE_OK)
		return CORE_ERROR;
	if (prev != NULL) {
		memcpy(px.ticket_prev, px.ticket_key, sizeof(px.ticket_key));
		px.have_prev = true;
	}
	if (core_tls_random(px.ticket_key, sizeof(px.ticket_key)) != CORE_OK) {
		snprintf(err, errlen, "no random bytes for the TLS ticket key");
		return CORE_ERROR;
	}
	st = proxy_stats_create(conf, px.stats);
	if (st == NULL) {
		snprintf(err, errlen, "shared memory for %u routes: %s",
			 (unsigned)k->routes.n, strerror(errno));
		return CORE_ERROR;
	}
	/* Workers of the old generation keep their own mapping of the old one. */
	proxy_stats_free(px.stats);
	px.stats = st;
	return CORE_OK;
}

static size_t proxy_inherit(int *fds, size_t max)
{
	size_t i;

	for (i = 0; i < px.nls && i < max; i++)
		fds[i] = px.ls[i].fd;
	return i;
}

static const struct core_conf *px_conf;	/* for SIGUSR1's reopen */

static void proxy_on_usr1(struct core_loop *loop, int signo, void *data)
{
	char err[256];

	(void)loop;
	(void)signo;
	(void)data;
	if (px_conf != NULL && proxy_log_open(px.loop, px_conf, err, sizeof(err)) != CORE_OK)
		core_log_error("proxy", "reopening the access log: %s", err);
	else
		core_log_info("proxy", "access log reopened");
}

/* Worker: takes over the inherited sockets and serves. */
static int proxy_start(struct core_loop *loop, const struct core_conf *conf,
		       char *err, size_t errlen)
{
	unsigned i;

	px.loop = loop;
	core_timer_init(loop, &px.tick, proxy_on_tick, NULL);
	core_timer_start(&px.tick, 1000);
	core_timer_init(loop, &px.stall, proxy_on_stall_check, NULL);
	core_timer_start(&px.stall, 100);
	if (proxy_log_open(loop, conf, err, errlen) != CORE_OK)
		return CORE_ERROR;
	px_conf = conf;
	core_loop_signal(loop, SIGUSR1, proxy_on_usr1, NULL);
	px.rt = proxy_runtime_build(conf, loop, px.stats, px.key_from != KEY_NONE ? px.key : NULL, err, errlen);
	if (px.rt == NULL)
		return CORE_ERROR;
	core_net_accept_init(&px.acceptor, loop, "proxy", px.rt->max_connections, &px.nconns,
			     proxy_on_accept);
	for (i = 0; i < px.nls; i++) {
		const struct keel_listener_conf *lc = (const struct keel_listener_conf *)
			core_settings_of(conf)->listeners.v + i;
		struct core_tls_pair pairs[64];
		size_t n = listener_pairs(lc, pairs, CORE_ARRAY_SIZE(pairs));

		if (n > 0) {
			struct core_tls_opts o = {
				.tls13_only = lc->tls.min_version == KEEL_TLS_13,
				.ticket_key = px.ticket_key,
				.ticket_prev = px.have_prev ? px.ticket_prev : NULL,
			};
			char why[384];

			px.ls[i].tls = core_tls_server_new(pairs, n, &o, why, sizeof(why));
			if (px.ls[i].tls == NULL) {
				snprintf(err, errlen, "%s: %s", px.ls[i].name, why);
				return CORE_ERROR;
			}
		}
		core_net_accept_add(&px.acceptor, &px.ls[i].acc, px.ls[i].fd, px.ls[i].name);
	}
	return CORE_OK;
}

/*
 * Worker: stop accepting (the next generation takes the sockets' queue),
 * and let every connection finish what it is doing. Idle keep-alive ones
 * are closed now; the rest close after their current response, which says
 * "Connection: close". Returns the connections still open.
 */
static unsigned proxy_drain(void)
{
	struct core_list *it, *tmp;

	if (!px.draining) {
		px.draining = true;
		core_net_accept_stop(&px.acceptor);
		proxy_close_listeners();
		core_log_info("proxy", "draining %u connection%s", px.nconns,
			      px.nconns == 1 ? "" : "s");
	}
	core_list_each(it, tmp, &px.streams) {
		struct proxy_stream *s = core_list_elem(it, struct proxy_stream, link);

		s->close_after = true;
		if (s->state == PROXY_ST_HEAD && core_buf_len(&s->cin) == 0 && s->requests > 0 &&
		    core_loop_now(px.loop) - s->since > 1000)
			stream_close_idle(s);	/* idle for a while: not about to send */
	}
	return px.nconns;
}

static void proxy_stop(void)
{
	while (!core_list_empty(&px.streams))
		stream_close(core_list_first(&px.streams, struct proxy_stream, link));
	proxy_close_listeners();
	proxy_log_close();
	px_conf = NULL;
	if (px.loop != NULL) {
		core_net_accept_stop(&px.acceptor);
		core_timer_stop(&px.tick);
		core_timer_stop(&px.stall);
	}
	while (xchg_cache != NULL) {
		struct proxy_xchg *x = xchg_cache;

		xchg_cache = *(struct proxy_xchg **)(void *)x;
		free(x);
	}
	xchg_ncached = xchg_low = 0;
	proxy_runtime_unref(px.rt);
	px.rt = NULL;
	proxy_stats_free(px.stats);
	px.stats = NULL;
}

static const struct core_module proxy_module = {
	.name = "proxy",
	.order = 50,
	.worker = true,
	.prepare = proxy_prepare,
	.inherit = proxy_inherit,
	.start = proxy_start,
	.drain = proxy_drain,
	.stop = proxy_stop,
};
CORE_MODULE(proxy_module);
