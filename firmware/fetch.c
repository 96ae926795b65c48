/* A streaming HTTP GET on the loop: see fetch.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "core/http.h"
#include "core/loop.h"
#include "fetch.h"

enum { F_IDLE, F_CONNECT, F_SEND, F_HEAD, F_BODY, F_DONE };

int fetch_url_parse(const char *url, struct fetch_url *u, char *err, size_t errlen)
{
	const char *p, *hend, *pstart;
	char host[64];
	unsigned long port = 80;
	size_t hlen;

	memset(u, 0, sizeof(*u));
	if (strncmp(url, "http://", 7) != 0) {
		snprintf(err, errlen, "%s", strncmp(url, "https://", 8) == 0 ?
			 "https is not supported for fetching: use http (the bundle is signed, "
			 "so the way it travels needs no trust)" : "the URL must start with http://");
		return -1;
	}
	p = url + 7;
	if (*p == '[') {
		hend = strchr(p, ']');
		if (hend == NULL) {
			snprintf(err, errlen, "the URL's [IPv6 address] is not closed");
			return -1;
		}
		hlen = (size_t)(hend - p - 1);
		if (hlen == 0 || hlen >= sizeof(host)) {
			snprintf(err, errlen, "the URL's address is empty or too long");
			return -1;
		}
		memcpy(host, p + 1, hlen);
		hend++;
	} else {
		hend = p + strcspn(p, ":/?#");
		hlen = (size_t)(hend - p);
		if (hlen == 0 || hlen >= sizeof(host)) {
			snprintf(err, errlen, "the URL's address is empty or too long");
			return -1;
		}
		memcpy(host, p, hlen);
	}
	host[hlen] = '\0';
	pstart = hend;
	if (*hend == ':') {
		char *end;

		port = strtoul(hend + 1, &end, 10);
		if (end == hend + 1 || port == 0 || port > 65535) {
			snprintf(err, errlen, "the URL's port is not 1..65535");
			return -1;
		}
		pstart = end;
	}
	if (*pstart != '/' && *pstart != '\0') {
		snprintf(err, errlen, "the URL's path must start with /");
		return -1;
	}
	if (strlen(*pstart ? pstart : "/") >= sizeof(u->path)) {
		snprintf(err, errlen, "the URL's path is too long (at most %zu bytes)",
			 sizeof(u->path) - 1);
		return -1;
	}
	for (p = pstart; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			snprintf(err, errlen, "the URL's path has a space or a control character");
			return -1;
		}
	snprintf(u->path, sizeof(u->path), "%s", *pstart ? pstart : "/");
	if ((size_t)(pstart - (url + 7)) >= sizeof(u->host)) {
		snprintf(err, errlen, "the URL's address and port are too long");
		return -1;
	}
	memcpy(u->host, url + 7, (size_t)(pstart - (url + 7)));	/* for Host: */
	u->host[pstart - (url + 7)] = '\0';
	if (strchr(host, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&u->sa;

		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			goto name;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		u->salen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&u->sa;

		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			goto name;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		u->salen = sizeof(*s4);
	}
	return 0;
name:
	snprintf(err, errlen, "'%s' is not an IP address: keel fetches from an address (it has "
		 "no resolver yet)", host);
	return -1;
}

static void fetch_close(struct fetch *f)
{
	core_timer_stop(&f->timer);
	if (f->fd != -1) {
		core_io_stop(&f->io);
		close(f->fd);
		f->fd = -1;
	}
}

static void fetch_end(struct fetch *f, bool ok, const char *why)
{
	fetch_close(f);
	f->phase = F_DONE;
	f->done(f, ok, why);
}

/* The caller stopped it (head or body said -1): its why goes on. */
static void fetch_stopped(struct fetch *f)
{
	fetch_end(f, false, NULL);
}

static void fetch_body(struct fetch *f, const char *p, size_t n)
{
	if (f->length >= 0 && f->received + n > (uint64_t)f->length)
		n = (size_t)((uint64_t)f->length - f->received);	/* what follows is not ours */
	if (n == 0)
		return;
	f->received += n;
	if (f->body(f, p, n) != 0) {
		fetch_stopped(f);
		return;
	}
	if (f->length >= 0 && f->received == (uint64_t)f->length)
		fetch_end(f, true, NULL);
}

static void fetch_head(struct fetch *f)
{
	static const struct core_http_limits lim = { 8192, FETCH_HEAD_MAX, 100 };
	struct core_http_msg m;
	int rc;

	core_http_msg_reset(&m);
	rc = core_http_parse_response(f->headbuf, f->headlen, &lim, &m);
	if (rc == 0) {
		if (f->headlen == sizeof(f->headbuf))
			fetch_end(f, false, "the server's answer head is too large");
		return;
	}
	if (rc < 0) {
		snprintf(f->why, sizeof(f->why), "the server's answer is not valid HTTP: %s",
			 m.why != NULL ? m.why : "malformed");
		fetch_end(f, false, f->why);
		return;
	}
	if (m.flags & CORE_HTTP_HF_CHUNKED) {
		fetch_end(f, false, "the server sent a chunked body; keel takes a bundle of known "
			  "length (Content-Length)");
		return;
	}
	f->length = (m.flags & CORE_HTTP_HF_HAS_CL) ? m.content_length : -1;
	f->phase = F_BODY;
	if (f->head(f, m.status, f->length) != 0) {
		fetch_stopped(f);
		return;
	}
	if (f->headlen > (size_t)rc)
		fetch_body(f, f->headbuf + rc, f->headlen - (size_t)rc);
}

static void fetch_on_io(struct core_io *io, unsigned revents)
{
	struct fetch *f = io->data;
	char buf[65536];
	ssize_t n;

	(void)revents;
	if (f->phase == F_CONNECT) {
		int err = 0;
		socklen_t el = sizeof(err);

		getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err != 0) {
			snprintf(f->why, sizeof(f->why), "connect to %s: %s", f->url.host,
				 strerror(err));
			fetch_end(f, false, f->why);
			return;
		}
		f->phase = F_SEND;
	}
	if (f->phase == F_SEND) {
		n = write(f->fd, f->req + f->sent, f->reqlen - f->sent);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			snprintf(f->why, sizeof(f->why), "send to %s: %s", f->url.host, strerror(errno));
			fetch_end(f, false, f->why);
			return;
		}
		f->sent += (size_t)n;
		if (f->sent == f->reqlen) {
			f->phase = F_HEAD;
			core_io_set(&f->io, CORE_IO_READ);
		}
		core_timer_start(&f->timer, f->idle_ms);
		return;
	}
	if (f->phase == F_HEAD)
		n = read(f->fd, f->headbuf + f->headlen, sizeof(f->headbuf) - f->headlen);
	else
		n = read(f->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		snprintf(f->why, sizeof(f->why), "read from %s: %s", f->url.host, strerror(errno));
		fetch_end(f, false, f->why);
		return;
	}
	core_timer_start(&f->timer, f->idle_ms);
	if (n == 0) {
		if (f->phase == F_HEAD)
			fetch_end(f, false, "the server closed the connection before its answer");
		else if (f->length >= 0) {
			snprintf(f->why, sizeof(f->why), "the server closed the connection after %llu "
				 "of %lld bytes", (unsigned long long)f->received,
				 (long long)f->length);
			fetch_end(f, false, f->why);
		} else
			fetch_end(f, true, NULL);	/* the close ends a body of no length */
		return;
	}
	if (f->phase == F_HEAD) {
		f->headlen += (size_t)n;
		fetch_head(f);
	} else
		fetch_body(f, buf, (size_t)n);
}

static void fetch_on_timer(struct core_timer *t)
{
	struct fetch *f = t->data;

	snprintf(f->why, sizeof(f->why), "%s: nothing for %llu s (%s)", f->url.host,
		 (unsigned long long)(f->idle_ms / 1000),
		 f->phase == F_CONNECT ? "connecting" : f->phase == F_HEAD ? "waiting for the "
		 "answer" : f->phase == F_BODY ? "in the body" : "sending");
	fetch_end(f, false, f->why);
}

int fetch_start(struct fetch *f, struct core_loop *loop, const char *url, const char *agent,
		char *err, size_t errlen)
{
	int one = 1, n;

	f->fd = -1;
	f->received = 0;
	f->length = -1;
	f->headlen = f->sent = 0;
	f->phase = F_IDLE;
	if (fetch_url_parse(url, &f->url, err, errlen) != 0)
		return -1;
	n = snprintf(f->req, sizeof(f->req), "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
		     "Accept: application/octet-stream\r\nConnection: close\r\n\r\n", f->url.path,
		     f->url.host, agent);
	if (n < 0 || (size_t)n >= sizeof(f->req)) {
		snprintf(err, errlen, "the URL is too long");
		return -1;
	}
	f->reqlen = (size_t)n;
	core_io_init(loop, &f->io, -1, fetch_on_io, f);
	core_timer_init(loop, &f->timer, fetch_on_timer, f);
	f->fd = socket(f->url.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(f->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	f->io.fd = f->fd;
	if (connect(f->fd, (struct sockaddr *)&f->url.sa, f->url.salen) != 0 &&
	    errno != EINPROGRESS) {
		snprintf(err, errlen, "connect to %s: %s", f->url.host, strerror(errno));
		close(f->fd);
		f->fd = -1;
		return -1;
	}
	f->phase = F_CONNECT;
	core_io_set(&f->io, CORE_IO_WRITE);
	core_timer_start(&f->timer, f->idle_ms);
	return 0;
}

void fetch_cancel(struct fetch *f)
{
	if (f->phase != F_IDLE && f->phase != F_DONE)
		fetch_close(f);
	f->phase = F_DONE;
}
