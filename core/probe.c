/* One probe on the event loop; see probe.h. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "core.h"
#include "loop.h"
#include "net.h"
#include "settings.h"
#include "http.h"
#include "probe.h"

#define PROBE_MAX_RESPONSE	(64 * 1024)	/* head and the body searched */

enum probe_phase {
	PROBE_IDLE = 0,		/* not running */
	PROBE_CONNECT,		/* connecting */
	PROBE_READ,		/* request sent, reading the answer */
	PROBE_FAILED,		/* failed before it began: reported by the timer */
};

static void probe_on_io(struct core_io *io, unsigned revents);
static void probe_on_timer(struct core_timer *t);

void core_probe_init(struct core_loop *loop, struct core_probe *p)
{
	p->fd = -1;
	p->phase = PROBE_IDLE;
	core_io_init(loop, &p->io, -1, probe_on_io, p);
	core_timer_init(loop, &p->timer, probe_on_timer, p);
}

bool core_probe_busy(const struct core_probe *p)
{
	return p->phase != PROBE_IDLE;
}

static void probe_close(struct core_probe *p)
{
	core_tls_free(p->conn);
	p->conn = NULL;
	if (p->fd != -1) {
		core_io_stop(&p->io);
		close(p->fd);
		p->fd = -1;
	}
	core_timer_stop(&p->timer);
	core_buf_free(&p->in);
	p->phase = PROBE_IDLE;
}

void core_probe_tls(struct core_probe *p, struct core_tls_server *cli, const char *server_name,
		     const struct core_conf_addr *a)
{
	p->tls = cli;
	if (server_name[0] != '\0')
		snprintf(p->tls_name, sizeof(p->tls_name), "%s", server_name);
	else
		core_net_ntop((const struct sockaddr *)&a->sa, p->tls_name, sizeof(p->tls_name));
}

void core_probe_cancel(struct core_probe *p)
{
	probe_close(p);
}

static void probe_finish(struct core_probe *p, bool ok, unsigned status, const char *why)
{
	uint64_t ms = core_loop_now(p->timer.loop) - p->started;

	probe_close(p);
	p->done(p, ok, ms, status, why);
}

/* Judges what came back; returns without a verdict while more may come. */
static void probe_judge(struct core_probe *p, bool eof)
{
	static const struct core_http_limits lim = {
		.max_line = 8192, .max_head = PROBE_MAX_RESPONSE, .max_headers = 128,
	};
	struct core_http_msg *m;
	char why[96];
	unsigned status;
	int rc;

	m = malloc(sizeof(*m));
	if (m == NULL) {
		probe_finish(p, false, 0, "out of memory");
		return;
	}
	core_http_msg_reset(m);
	rc = core_http_parse_response(core_buf_head(&p->in), core_buf_len(&p->in), &lim, m);
	status = m->status;
	if (rc == 0) {
		free(m);
		if (eof)
			probe_finish(p, false, 0, "connection closed before a complete response");
		return;
	}
	if (rc < 0) {
		snprintf(why, sizeof(why), "invalid response: %s", m->why ? m->why : "?");
		free(m);
		probe_finish(p, false, 0, why);
		return;
	}
	free(m);
	if (core_settings_status_match(p->status, status) != 1) {
		snprintf(why, sizeof(why), "status %u, expected %.40s", status, p->status);
		probe_finish(p, false, status, why);
		return;
	}
	if (p->body[0] != '\0') {
		/* The body is searched once it is all here (probes ask the
		 * server to close) or the buffer is full. */
		if (!eof && core_buf_len(&p->in) < PROBE_MAX_RESPONSE)
			return;
		if (memmem(core_buf_head(&p->in) + rc, core_buf_len(&p->in) - (size_t)rc,
			   p->body, strlen(p->body)) == NULL) {
			snprintf(why, sizeof(why), "body does not contain \"%.40s\"", p->body);
			probe_finish(p, false, status, why);
			return;
		}
	}
	probe_finish(p, true, status, NULL);
}

/* HTTPS: CORE_OK once up, CORE_AGAIN (waiting on the socket), or
 * CORE_ERROR with the reason (a certificate refused, say) in why. */
static int probe_handshake(struct core_probe *p, char *why, size_t len)
{
	char err[200], verify[200];
	int rc;

	if (p->conn == NULL &&
	    (p->conn = core_tls_client(p->tls, p->fd, p->tls_name)) == NULL) {
		snprintf(why, len, "TLS: out of memory");
		return CORE_ERROR;
	}
	rc = core_tls_handshake(p->conn, err, sizeof(err));
	if (rc == CORE_AGAIN) {
		core_io_set(&p->io, core_tls_want(p->conn));
		return CORE_AGAIN;
	}
	if (rc == CORE_OK)
		return CORE_OK;
	if (core_tls_verify_error(p->conn, verify, sizeof(verify)) == CORE_OK)
		snprintf(why, len, "TLS: certificate refused: %s", verify);
	else
		snprintf(why, len, "TLS: %s", err);
	return CORE_ERROR;
}

/* Reads what there is, through TLS when the probe speaks it. */
static ssize_t probe_read(struct core_probe *p)
{
	ssize_t n, total = 0;

	if (p->conn == NULL)
		return core_buf_read(&p->in, p->fd);
	while ((n = core_tls_read_buf(p->conn, &p->in)) > 0) {
		total += n;
		if (core_tls_pending(p->conn) == 0)
			break;
	}
	if (n == CORE_FULL)
		return CORE_FULL;	/* judged now: what is left may sit in the library */
	return total > 0 ? total : n;
}

static void probe_on_io(struct core_io *io, unsigned revents)
{
	struct core_probe *p = io->data;
	char why[320];
	ssize_t n;

	if (p->phase == PROBE_CONNECT) {
		int err = 0;
		socklen_t el = sizeof(err);

		if (p->conn == NULL) {
			getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &el);
			if (err != 0) {
				snprintf(why, sizeof(why), "connect: %s", strerror(err));
				probe_finish(p, false, 0, why);
				return;
			}
		}
		if (p->tcp_only) {
			probe_finish(p, true, 0, NULL);
			return;
		}
		if (p->tls != NULL) {
			switch (probe_handshake(p, why, sizeof(why))) {
			case CORE_AGAIN:
				return;
			case CORE_ERROR:
				probe_finish(p, false, 0, why);
				return;
			}
		}
		/* A few KiB at most into an empty socket buffer: one write. */
		if (p->conn != NULL) {
			struct iovec iov = { (void *)p->request, p->reqlen };

			n = core_tls_writev(p->conn, &iov, 1);
		} else
			n = write(p->fd, p->request, p->reqlen);
		if (n != (ssize_t)p->reqlen) {
			snprintf(why, sizeof(why), "send: %s", n == -1 ? strerror(errno) : "short write");
			probe_finish(p, false, 0, why);
			return;
		}
		p->phase = PROBE_READ;
		core_io_set(&p->io, CORE_IO_READ);
		return;
	}
	if (p->phase == PROBE_READ && (revents & CORE_IO_READ)) {
		n = probe_read(p);
		if (n == CORE_AGAIN)
			return;
		if (n < 0 && n != CORE_FULL) {
			snprintf(why, sizeof(why), "read: %s", strerror((int)-n));
			probe_finish(p, false, 0, why);
			return;
		}
		probe_judge(p, n == 0 || n == CORE_FULL);
	}
}

static void probe_on_timer(struct core_timer *t)
{
	struct core_probe *p = t->data;
	char why[96];

	if (p->phase == PROBE_FAILED) {
		probe_finish(p, false, 0, p->fail);
		return;
	}
	snprintf(why, sizeof(why), "%s timed out after %llu ms",
		 p->phase == PROBE_CONNECT ? "connect" : "read",
		 (unsigned long long)p->timeout);
	probe_finish(p, false, 0, why);
}

void core_probe_start(struct core_probe *p)
{
	int one = 1;

	p->started = core_loop_now(p->timer.loop);
	core_buf_init(&p->in, PROBE_MAX_RESPONSE);
	p->fd = socket(p->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd != -1) {
		setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		p->io.fd = p->fd;
		if (connect(p->fd, (struct sockaddr *)&p->sa, p->salen) == 0 || errno == EINPROGRESS) {
			p->phase = PROBE_CONNECT;
			core_io_set(&p->io, CORE_IO_WRITE);
			core_timer_start(&p->timer, p->timeout);
			return;
		}
	}
	/* Failed at once (no fds, refused on loopback): reported from the
	 * loop, so `done` never runs inside this call. */
	snprintf(p->fail, sizeof(p->fail), "%s: %s", p->fd == -1 ? "socket" : "connect",
		 strerror(errno));
	if (p->fd != -1) {
		close(p->fd);
		p->fd = -1;
	}
	p->phase = PROBE_FAILED;
	core_timer_start(&p->timer, 0);
}
