/* Active health checks. The master probes every server of the upstreams
 * that ask for it, on its own loop and outside the request path, and
 * writes the verdict into the generation's shared region, where every
 * worker's balancer reads it: a transition reaches all workers at once. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "core/settings.h"
#include "http.h"
#include "proxy.h"
#include "stats.h"

#define HEALTH_MAX_RESPONSE	(64 * 1024)	/* head and the body searched */

enum health_phase {
	HEALTH_IDLE = 0,	/* waiting for the next check */
	HEALTH_CONNECT,		/* connecting */
	HEALTH_READ,		/* request sent, reading the answer */
};

/* What an upstream's checks look like; copied out of the config. */
struct health_spec {
	int		 type;		/* enum keel_check_type */
	char		 up[64];
	char		 status[129];
	char		 body[257];
	uint64_t	 interval, timeout;
	unsigned	 healthy, unhealthy;
};

struct health_check {
	const struct health_spec *spec;
	struct proxy_stat_server *st;	/* in the current shared region */
	struct sockaddr_storage sa;
	socklen_t	 salen;
	char		 request[1024];
	size_t		 reqlen;
	enum health_phase phase;
	int		 fd;
	struct core_io	 io;
	struct core_timer timer;	/* next check, or this one's timeout */
	struct core_buf	 in;
	uint64_t	 started;
	unsigned	 passes, fails;	/* in a row */
};

static struct {
	struct core_loop   *loop;
	struct health_spec *specs;
	unsigned	    nspecs;
	struct health_check *checks;
	unsigned	    nchecks;
} hc;

static void health_arm(struct health_check *c, uint64_t after);

static void health_close(struct health_check *c)
{
	if (c->fd != -1) {
		core_io_stop(&c->io);
		close(c->fd);
		c->fd = -1;
	}
	core_buf_free(&c->in);
	c->phase = HEALTH_IDLE;
}

/* One check ended: count it, move the state when a threshold is reached,
 * and plan the next one an interval after this one began. */
static void health_result(struct health_check *c, int ok, const char *why)
{
	struct proxy_stat_server *st = c->st;
	uint64_t now = core_loop_now(hc.loop);
	uint64_t next = c->started + c->spec->interval;

	health_close(c);
	proxy_stat_add(st->checks, 1);
	if (ok) {
		c->passes++;
		c->fails = 0;
		if (proxy_stat_get(st->check_down) && c->passes >= c->spec->healthy) {
			proxy_stat_set(st->back_at, now);
			proxy_stat_set(st->check_down, 0);
			core_log_info("health", "%s/%s UP after %u passed check%s", st->upstream,
				      st->name, c->passes, c->passes == 1 ? "" : "s");
		}
	} else {
		proxy_stat_add(st->checks_failed, 1);
		snprintf(st->check_error, sizeof(st->check_error), "%s", why);
		c->fails++;
		c->passes = 0;
		if (!proxy_stat_get(st->check_down) && c->fails >= c->spec->unhealthy) {
			proxy_stat_set(st->check_down, 1);
			core_log_warn("health", "%s/%s DOWN after %u failed check%s: %s",
				      st->upstream, st->name, c->fails, c->fails == 1 ? "" : "s", why);
		} else if (!proxy_stat_get(st->check_down))
			core_log_info("health", "%s/%s check failed (%u of %u): %s", st->upstream,
				      st->name, c->fails, c->spec->unhealthy, why);
	}
	health_arm(c, core_clock_before(now, next) ? next - now : 0);
}

/* Judges what came back once the answer is complete (or cut short). */
static void health_judge(struct health_check *c, int eof)
{
	static const struct proxy_http_limits lim = {
		.max_line = 8192, .max_head = HEALTH_MAX_RESPONSE, .max_headers = 128,
	};
	struct proxy_http_msg *m;
	char why[96];
	int rc;

	m = malloc(sizeof(*m));
	if (m == NULL) {
		health_result(c, 0, "out of memory");
		return;
	}
	proxy_http_msg_reset(m);
	rc = proxy_http_parse_response(core_buf_head(&c->in), core_buf_len(&c->in), &lim, m);
	if (rc == 0) {
		free(m);
		if (eof)
			health_result(c, 0, "connection closed before a complete response");
		return;			/* more to come */
	}
	if (rc < 0) {
		snprintf(why, sizeof(why), "invalid response: %s", m->why ? m->why : "?");
		free(m);
		health_result(c, 0, why);
		return;
	}
	if (core_settings_status_match(c->spec->status, m->status) != 1) {
		snprintf(why, sizeof(why), "status %u, expected %.40s", m->status, c->spec->status);
		free(m);
		health_result(c, 0, why);
		return;
	}
	if (c->spec->body[0] != '\0') {
		size_t blen = core_buf_len(&c->in) - (size_t)rc;

		/* The body is searched once it is all here (the check asks
		 * the server to close) or the buffer is full. */
		if (!eof && core_buf_len(&c->in) < HEALTH_MAX_RESPONSE) {
			free(m);
			return;
		}
		if (memmem(core_buf_head(&c->in) + rc, blen, c->spec->body,
			   strlen(c->spec->body)) == NULL) {
			snprintf(why, sizeof(why), "body does not contain \"%.40s\"", c->spec->body);
			free(m);
			health_result(c, 0, why);
			return;
		}
	}
	free(m);
	health_result(c, 1, NULL);
}

static void health_on_io(struct core_io *io, unsigned revents)
{
	struct health_check *c = io->data;
	char why[96];
	ssize_t n;

	if (c->phase == HEALTH_CONNECT) {
		int err = 0;
		socklen_t el = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err != 0) {
			snprintf(why, sizeof(why), "connect: %s", strerror(err));
			health_result(c, 0, why);
			return;
		}
		if (c->spec->type == KEEL_CHECK_TCP) {
			health_result(c, 1, NULL);
			return;
		}
		/* A few hundred bytes into an empty socket buffer: one write. */
		n = write(c->fd, c->request, c->reqlen);
		if (n != (ssize_t)c->reqlen) {
			snprintf(why, sizeof(why), "send: %s", n == -1 ? strerror(errno) : "short write");
			health_result(c, 0, why);
			return;
		}
		c->phase = HEALTH_READ;
		core_io_set(&c->io, CORE_IO_READ);
		return;
	}
	if (c->phase == HEALTH_READ && (revents & CORE_IO_READ)) {
		n = core_buf_read(&c->in, c->fd);
		if (n == CORE_AGAIN)
			return;
		if (n < 0 && n != CORE_FULL) {
			snprintf(why, sizeof(why), "read: %s", strerror((int)-n));
			health_result(c, 0, why);
			return;
		}
		health_judge(c, n == 0 || n == CORE_FULL);
	}
}

static void health_start_one(struct health_check *c)
{
	char why[96];
	int one = 1;

	c->started = core_loop_now(hc.loop);
	core_buf_init(&c->in, HEALTH_MAX_RESPONSE);
	c->fd = socket(c->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		health_result(c, 0, why);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	core_io_init(hc.loop, &c->io, c->fd, health_on_io, c);
	if (connect(c->fd, (struct sockaddr *)&c->sa, c->salen) == -1 && errno != EINPROGRESS) {
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		health_result(c, 0, why);
		return;
	}
	c->phase = HEALTH_CONNECT;
	core_io_set(&c->io, CORE_IO_WRITE);
	health_arm(c, c->spec->timeout);
}

static void health_on_timer(struct core_timer *t)
{
	struct health_check *c = t->data;
	char why[96];

	if (c->phase == HEALTH_IDLE) {
		health_start_one(c);
		return;
	}
	snprintf(why, sizeof(why), "%s timed out after %llu ms",
		 c->phase == HEALTH_CONNECT ? "connect" : "read",
		 (unsigned long long)c->spec->timeout);
	health_result(c, 0, why);
}

static void health_arm(struct health_check *c, uint64_t after)
{
	core_timer_start(&c->timer, after);
}

static void health_stop(void)
{
	unsigned i;

	for (i = 0; i < hc.nchecks; i++) {
		health_close(&hc.checks[i]);
		core_timer_stop(&hc.checks[i].timer);
	}
	free(hc.checks);
	free(hc.specs);
	hc.checks = NULL;
	hc.specs = NULL;
	hc.nchecks = hc.nspecs = 0;
}

/* Builds the checks of a config against the current shared region. The
 * region lists servers in config order, which is how they are matched. */
static int health_build(const struct core_conf *conf, char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);
	const struct keel_upstream_conf *uc = k->upstreams.v;
	struct proxy_stats *st = proxy_stats_current();
	struct proxy_stat_server *sst;
	unsigned i, j, n = 0, s = 0;

	if (st == NULL)
		return CORE_OK;
	sst = proxy_stats_servers(st);
	for (i = 0; i < k->upstreams.n; i++)
		if (uc[i].health.type != KEEL_CHECK_OFF)
			n += (unsigned)uc[i].servers.n;
	if (n == 0)
		return CORE_OK;
	hc.specs = calloc(k->upstreams.n, sizeof(*hc.specs));
	hc.checks = calloc(n, sizeof(*hc.checks));
	if (hc.specs == NULL || hc.checks == NULL) {
		snprintf(err, errlen, "out of memory for %u health checks", n);
		return CORE_ERROR;
	}
	for (i = 0; i < k->upstreams.n; i++) {
		const struct keel_health_conf *h = &uc[i].health;
		const struct keel_server_conf *sc = uc[i].servers.v;
		struct health_spec *spec = &hc.specs[hc.nspecs++];

		if (h->type == KEEL_CHECK_OFF) {
			s += (unsigned)uc[i].servers.n;
			continue;
		}
		spec->type = h->type;
		snprintf(spec->up, sizeof(spec->up), "%s", uc[i].name);
		snprintf(spec->status, sizeof(spec->status), "%s", h->status);
		snprintf(spec->body, sizeof(spec->body), "%s", h->body);
		spec->interval = (uint64_t)h->interval;
		spec->timeout = (uint64_t)h->timeout;
		spec->healthy = (unsigned)h->healthy;
		spec->unhealthy = (unsigned)h->unhealthy;
		for (j = 0; j < uc[i].servers.n; j++, s++) {
			struct health_check *c = &hc.checks[hc.nchecks++];

			c->spec = spec;
			c->st = &sst[s];
			c->fd = -1;
			memcpy(&c->sa, &sc[j].address.sa, sizeof(c->sa));
			c->salen = sc[j].address.salen;
			c->reqlen = (size_t)snprintf(c->request, sizeof(c->request),
				"%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: keel-health\r\n"
				"Connection: close\r\n\r\n", h->method, h->path,
				h->host[0] ? h->host : sc[j].address.text);
			core_timer_init(hc.loop, &c->timer, health_on_timer, c);
			/* Spread the first checks over the interval. */
			health_arm(c, spec->interval * j / uc[i].servers.n);
		}
	}
	core_log_info("health", "checking %u server%s", hc.nchecks, hc.nchecks == 1 ? "" : "s");
	return CORE_OK;
}

static int health_start(struct core_loop *loop, const struct core_conf *conf,
			char *err, size_t errlen)
{
	hc.loop = loop;
	return health_build(conf, err, errlen);
}

/* A reload has a new shared region (counters and states carried over):
 * check again from scratch against it. */
static int health_reload(const struct core_conf *conf, char *err, size_t errlen)
{
	health_stop();
	return health_build(conf, err, errlen);
}

static const struct core_module health_module = {
	.name = "health",
	.order = 60,
	.start = health_start,
	.reload = health_reload,
	.stop = health_stop,
};
CORE_MODULE(health_module);
