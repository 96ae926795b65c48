/* The admin web server: libmicrohttpd driven from keel's event loop (its
 * epoll fd is one watcher, its timeout one timer). It answers GET /healthz
 * for monitors and load balancers and GET /metrics for Prometheus; the
 * admin UI and API build on it. */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/clock.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "core/net.h"
#include "core/settings.h"
#include "core/state.h"
#include "front.h"
#include "proxy/proxy.h"
#include "version.h"

#define WEB_MAX_SERVERS	16

/* One libmicrohttpd daemon per listen address. */
struct web_server {
	struct MHD_Daemon *mhd;
	struct core_io	   io;		/* the daemon's epoll fd */
	struct core_timer  timer;	/* its next connection timeout */
	unsigned	   limit;	/* admin.max_connections */
	char		   addr[64];
};

static struct {
	struct core_loop  *loop;
	struct web_server  servers[WEB_MAX_SERVERS];
	size_t		   n;
	uint64_t	   started;	/* monotonic ms */
	char		   node[64];
	unsigned	   generation;
	bool		   https;	/* one daemon behind the TLS front */
} web;

static void web_log_mhd(void *cls, const char *fmt, va_list ap)
{
	struct web_server *s = cls;
	char msg[256];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	core_log_warn("web", "%s: %s", s->addr, msg);
}

static void web_apply(const struct core_conf *conf)
{
	const struct keel_conf *k = core_settings_of(conf);

	snprintf(web.node, sizeof(web.node), "%s", k->node);
	web.generation = conf->generation;
}

/* ---- requests ---------------------------------------------------------------- */

static enum MHD_Result web_reply(struct MHD_Connection *c, unsigned status,
				 const char *body, const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	r = MHD_create_response_from_buffer_copy(strlen(body), body);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (allow != NULL)
		MHD_add_response_header(r, "Allow", allow);
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* Prometheus text exposition of the proxy's counters. */
static enum MHD_Result web_metrics(struct MHD_Connection *c)
{
	struct MHD_Response *r;
	struct core_buf out;
	enum MHD_Result rc;

	core_buf_init(&out, 4 << 20);
	if (proxy_metrics_write(&out, core_loop_now(web.loop)) != CORE_OK) {
		core_buf_free(&out);
		return web_reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				 "{\"error\":\"metrics too large\"}\n", NULL);
	}
	r = MHD_create_response_from_buffer_copy(core_buf_len(&out), core_buf_head(&out));
	core_buf_free(&out);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	rc = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result web_handle(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **req_cls)
{
	char body[512];
	int is_get = !strcmp(method, MHD_HTTP_METHOD_GET);
	int is_head = !strcmp(method, MHD_HTTP_METHOD_HEAD);

	(void)cls;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;

	if (strcmp(url, "/metrics") == 0 && (is_get || is_head))
		return web_metrics(c);
	if (strcmp(url, "/healthz") != 0)
		return web_reply(c, MHD_HTTP_NOT_FOUND,
				 "{\"error\":\"not found\"}\n", NULL);
	if (!is_get && !is_head)
		return web_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED,
				 "{\"error\":\"method not allowed\"}\n", "GET, HEAD");

	snprintf(body, sizeof(body),
		 "{\"status\":\"ok\",\"node\":\"%s\",\"version\":\"%s\","
		 "\"uptime_s\":%llu,\"config_generation\":%u}\n",
		 web.node, KEEL_VERSION,
		 (unsigned long long)((core_loop_now(web.loop) - web.started) / 1000),
		 web.generation);
	return web_reply(c, MHD_HTTP_OK, body, NULL);
}

/* ---- driving libmicrohttpd from the loop ------------------------------------------ */

static void web_schedule(struct web_server *s)
{
	uint64_t ms;

	if (MHD_get_timeout64(s->mhd, &ms) == MHD_YES)
		core_timer_start(&s->timer, ms);
	else
		core_timer_stop(&s->timer);
}

static unsigned web_connections(const struct web_server *s)
{
	const union MHD_DaemonInfo *info;

	info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return info != NULL ? info->num_connections : 0;
}

/*
 * At its connection limit libmicrohttpd takes its listen socket out of its
 * epoll set, and puts it back only at the start of a later run. When a run
 * frees a slot, run once more so clients waiting in the listen queue are
 * accepted now rather than never (nothing else would wake us).
 */
static void web_run(struct web_server *s)
{
	unsigned before = web_connections(s);

	if (MHD_run(s->mhd) != MHD_YES)
		core_log_warn("web", "%s: processing failed", s->addr);
	if (before >= s->limit && web_connections(s) < before)
		MHD_run(s->mhd);
	web_schedule(s);
}

static void web_on_io(struct core_io *io, unsigned revents)
{
	(void)revents;
	web_run(io->data);
}

static void web_on_timer(struct core_timer *t)
{
	web_run(t->data);
}

static void web_kick(void)
{
	if (web.n > 0)
		web_run(&web.servers[0]);
}

static void web_stop(void)
{
	size_t i;

	if (web.https)
		web_front_stop();

	for (i = 0; i < web.n; i++) {
		struct web_server *s = &web.servers[i];

		core_io_stop(&s->io);
		core_timer_stop(&s->timer);
		MHD_stop_daemon(s->mhd);	/* closes the listen socket */
		s->mhd = NULL;
	}
	web.n = 0;
	web.https = false;
}

/* One daemon with no socket of its own; the TLS front feeds it. */
static int web_start_https(struct core_loop *loop, const struct core_conf *conf,
			   char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);
	const struct keel_admin_conf *ac = &k->admin;
	struct web_server *s = &web.servers[0];
	const union MHD_DaemonInfo *info;

	if (core_state_dir(k->state_dir, err, errlen) != CORE_OK)
		return CORE_ERROR;
	snprintf(s->addr, sizeof(s->addr), "admin");
	s->limit = (unsigned)ac->max_connections;
	s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET, 0,
		NULL, NULL, web_handle, NULL,
		MHD_OPTION_EXTERNAL_LOGGER, web_log_mhd, s,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)ac->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(ac->idle_timeout / 1000),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ac->request_memory,
		MHD_OPTION_END);
	if (s->mhd == NULL) {
		snprintf(err, errlen, "libmicrohttpd did not start");
		return CORE_ERROR;
	}
	web.n = 1;
	web.https = true;
	info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	core_io_init(loop, &s->io, info->epoll_fd, web_on_io, s);
	core_timer_init(loop, &s->timer, web_on_timer, s);
	if (core_io_set(&s->io, CORE_IO_READ) != CORE_OK) {
		snprintf(err, errlen, "admin: cannot watch: %s", strerror(errno));
		web_stop();
		return CORE_ERROR;
	}
	if (web_front_start(loop, ac, k->state_dir, k->node, s->mhd, web_kick,
			    err, errlen) != CORE_OK) {
		web_stop();
		return CORE_ERROR;
	}
	return CORE_OK;
}

static int web_start(struct core_loop *loop, const struct core_conf *conf,
		     char *err, size_t errlen)
{
	const struct keel_admin_conf *ac = &core_settings_of(conf)->admin;
	const struct core_conf_addr *addrs = ac->listen.v;
	size_t i;

	web.loop = loop;
	web.started = core_loop_now(loop);
	web_apply(conf);

	if (ac->tls.enabled)
		return web_start_https(loop, conf, err, errlen);
	for (i = 0; i < ac->listen.n && i < WEB_MAX_SERVERS; i++) {
		struct web_server *s = &web.servers[web.n];
		const union MHD_DaemonInfo *info;
		int fd;

		snprintf(s->addr, sizeof(s->addr), "%s", addrs[i].text);
		s->limit = (unsigned)ac->max_connections;
		/* Our own socket: IPv6 and the wording of errors are then ours. */
		fd = core_net_listen(&addrs[i], 128, err, errlen);
		if (fd == -1)
			goto fail;
		s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0,
			NULL, NULL, web_handle, NULL,
			MHD_OPTION_EXTERNAL_LOGGER, web_log_mhd, s,
			MHD_OPTION_LISTEN_SOCKET, fd,
			MHD_OPTION_CONNECTION_LIMIT, (unsigned)ac->max_connections,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(ac->idle_timeout / 1000),
			MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ac->request_memory,
			MHD_OPTION_END);
		if (s->mhd == NULL) {
			close(fd);
			snprintf(err, errlen, "%s: libmicrohttpd did not start", s->addr);
			goto fail;
		}
		web.n++;
		info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
		core_io_init(loop, &s->io, info->epoll_fd, web_on_io, s);
		core_timer_init(loop, &s->timer, web_on_timer, s);
		if (core_io_set(&s->io, CORE_IO_READ) != CORE_OK) {
			snprintf(err, errlen, "%s: cannot watch: %s", s->addr,
				 strerror(errno));
			goto fail;
		}
		web_schedule(s);
		core_log_info("web", "admin server listening on %s", s->addr);
	}
	return CORE_OK;
fail:
	web_stop();
	return CORE_ERROR;
}

static int web_reload(const struct core_conf *conf, char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);

	if (web.https && web_front_reload(&k->admin, k->state_dir, k->node,
					  err, errlen) != CORE_OK)
		return CORE_ERROR;
	web_apply(conf);
	return CORE_OK;
}

static const struct core_module web_module = {
	.name = "web",
	.order = 90,
	.start = web_start,
	.reload = web_reload,
	.stop = web_stop,
};
CORE_MODULE(web_module);
