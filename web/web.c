/* The admin web server: libmicrohttpd driven from keel's event loop (its
 * epoll fd is one watcher, its timeout one timer). It answers GET /healthz
 * for monitors and load balancers and GET /metrics for Prometheus; the
 * admin UI and API build on it. */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
#include "api.h"
#include "front.h"
#include "ui.h"
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
	/* Socket options it tries on the TLS front's socketpairs: noise. */
	if (!strncmp(msg, "Setting TCP_", 12) || !strncmp(msg, "Failed to push the data", 23))
		return;
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

#define WEB_MAX_BODY	(4 << 20)	/* a configuration, with room */

static enum MHD_Result web_healthz(struct MHD_Connection *c, bool get_or_head)
{
	char body[512];

	if (!get_or_head)
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

/*
 * libmicrohttpd calls this first with no body, then once per body piece,
 * then with none left: the request is collected into a web_req and handed
 * to the API whole. A request the API suspended (a password being hashed)
 * comes back here with no body once it is resumed.
 */
static enum MHD_Result web_handle(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **req_cls)
{
	struct web_req *r = *req_cls;

	(void)cls;
	(void)version;
	if (r == NULL) {
		const union MHD_ConnectionInfo *ci;

		if (strcmp(url, "/healthz") == 0)
			return web_healthz(c, !strcmp(method, MHD_HTTP_METHOD_GET) ||
					      !strcmp(method, MHD_HTTP_METHOD_HEAD));
		if (ui_is(url))
			return ui_serve(c, method, url);
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return MHD_NO;
		r->conn = c;
		r->method = method;
		r->url = url;
		r->https = web.https;
		core_buf_init(&r->body, WEB_MAX_BODY);
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ci != NULL && ci->client_addr != NULL)
			core_net_ntop(ci->client_addr, r->ip, sizeof(r->ip));
		*req_cls = r;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (!r->too_big && core_buf_append(&r->body, upload_data, *upload_data_size) != CORE_OK) {
			r->too_big = true;
			core_buf_free(&r->body);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	return api_handle(r);
}

static void web_completed(void *cls, struct MHD_Connection *c, void **req_cls,
			  enum MHD_RequestTerminationCode toe)
{
	struct web_req *r = *req_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (r == NULL)
		return;
	core_buf_free(&r->body);
	free(r);
	*req_cls = NULL;
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
	size_t i;

	for (i = 0; i < web.n; i++)
		web_run(&web.servers[i]);
}

static void web_stop(void)
{
	size_t i;

	if (web.https)
		web_front_stop();
	api_stop();

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
	s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET |
				  MHD_ALLOW_SUSPEND_RESUME, 0,
		NULL, NULL, web_handle, NULL,
		MHD_OPTION_EXTERNAL_LOGGER, web_log_mhd, s,
		MHD_OPTION_NOTIFY_COMPLETED, web_completed, NULL,
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
			    err, errlen) != CORE_OK ||
	    api_start(loop, true, err, errlen) != CORE_OK) {
		web_stop();
		return CORE_ERROR;
	}
	api_kick = web_kick;
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
		s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME, 0,
			NULL, NULL, web_handle, NULL,
			MHD_OPTION_EXTERNAL_LOGGER, web_log_mhd, s,
			MHD_OPTION_NOTIFY_COMPLETED, web_completed, NULL,
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
	if (api_start(loop, false, err, errlen) != CORE_OK)
		goto fail;
	api_kick = web_kick;
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
	if (!web.https) {
		/* Plain HTTP: one libmicrohttpd daemon per address, started once. */
		const struct core_conf_addr *a = k->admin.listen.v;
		size_t i;
		bool same = k->admin.listen.n == web.n;

		for (i = 0; same && i < web.n; i++)
			same = !strcmp(a[i].text, web.servers[i].addr);
		if (!same)
			core_log_warn("web", "admin.listen: changing it needs a restart when "
				      "admin.tls is off; the running addresses stay");
	}
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
