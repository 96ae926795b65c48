/* The admin web server: libmicrohttpd driven from keel's event loop (its
 * epoll fd is one watcher, its timeout one timer), fed by the front
 * (front.c), which accepts every connection. Each request is checked
 * against the route table on its head (route.c) and handed to its handler
 * once its body is in. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "core/buf.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "core/net.h"
#include "core/list.h"
#include "core/settings.h"
#include "core/state.h"
#include "api.h"
#include "front.h"

static struct {
	struct core_loop  *loop;
	struct MHD_Daemon *mhd;
	struct core_io	   io;		/* the daemon's epoll fd */
	struct core_timer  timer;	/* its next connection timeout */
	bool		   https;
	bool		   started;
} web;

static void web_log_mhd(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* Socket options it tries on the front's socketpairs: noise. */
	if (!strncmp(msg, "Setting TCP_", 12) || !strncmp(msg, "Failed to push the data", 23))
		return;
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	core_log_warn("web", "admin: %s", msg);
}

/* ---- requests ---------------------------------------------------------------- */

/*
 * libmicrohttpd calls this first with the head only: the route, the
 * session and the limits are decided then, and a refused request is
 * answered before a byte of its body is read. Then once per body piece,
 * then with none left: the handler runs. A request suspended while a
 * password is hashed comes back here with no body once resumed.
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

		if ((r = calloc(1, sizeof(*r))) == NULL)
			return MHD_NO;
		r->conn = c;
		r->method = method;
		r->url = url;
		r->https = web.https;
		core_buf_init(&r->body, 0);
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ci != NULL && ci->client_addr != NULL)
			core_net_ntop(ci->client_addr, r->ip, sizeof(r->ip));
		*req_cls = r;
		return web_route_head(r);
	}
	if (r->state == WEB_REQ_ANSWERED || r->state == WEB_REQ_HASHING ||
	    r->state == WEB_REQ_COMMAND ||
	    (r->state == WEB_REQ_COMMANDED && *upload_data_size > 0)) {	/* a refused stream */
		if (r->state == WEB_REQ_COMMANDED) {
			r->streamed += *upload_data_size;
			if (r->streamed > r->route->body_max)
				return MHD_NO;	/* dropped only up to the route's limit */
		}
		*upload_data_size = 0;	/* answered already: nothing more is kept */
		return MHD_YES;
	}
	if (*upload_data_size > 0 && r->streaming) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		return web_api_stream_feed(r, upload_data, n);
	}
	if (*upload_data_size > 0) {
		if (!r->too_big && core_buf_append(&r->body, upload_data, *upload_data_size) != CORE_OK) {
			r->too_big = true;
			core_buf_free(&r->body);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	return web_route_run(r);
}

static void web_completed(void *cls, struct MHD_Connection *c, void **req_cls,
			  enum MHD_RequestTerminationCode toe)
{
	struct web_req *r = *req_cls;

	(void)cls;
	(void)c;
	if (r == NULL)
		return;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		core_log_debug("web", "%s: %s %s ended early in state %s", r->ip, r->method, r->url,
			       web_req_state_str(r->state));
	if (r->suspended) {		/* the daemon stops */
		r->suspended = false;
		core_list_del(&r->suspended_link);
	}
	web_api_req_done(r);
	web_api_command_end(r);
	core_buf_free(&r->body);
	explicit_bzero(r, sizeof(*r));
	free(r);
	*req_cls = NULL;
}

/* ---- driving libmicrohttpd from the loop ------------------------------------------ */

static void web_schedule(void)
{
	uint64_t ms;

	if (MHD_get_timeout64(web.mhd, &ms) == MHD_YES)
		core_timer_start(&web.timer, ms);
	else
		core_timer_stop(&web.timer);
}

static void web_run(void)
{
	if (web.mhd == NULL)
		return;
	if (MHD_run(web.mhd) != MHD_YES)
		core_log_warn("web", "admin: processing failed");
	web_schedule();
}

static void web_on_io(struct core_io *io, unsigned revents)
{
	(void)io;
	(void)revents;
	web_run();
}

static void web_on_timer(struct core_timer *t)
{
	(void)t;
	web_run();
}

static void web_stop(void)
{
	if (!web.started)
		return;
	web_front_stop();
	web_api_stop();
	web_api_resume_all();		/* libmicrohttpd panics on a suspended one */
	core_io_stop(&web.io);
	core_timer_stop(&web.timer);
	if (web.mhd != NULL)
		MHD_stop_daemon(web.mhd);
	web.mhd = NULL;
	web.started = false;
}

/* One daemon with no socket of its own: the front feeds it every
 * connection, HTTPS or plain. */
static int web_start(struct core_loop *loop, const struct core_conf *conf,
		     char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);
	const struct keel_admin_conf *ac = &k->admin;
	const union MHD_DaemonInfo *info;

	web.loop = loop;
	web.https = ac->tls.enabled;
	if (core_state_dir(k->state_dir, err, errlen) != CORE_OK)
		return CORE_ERROR;
	web.mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET |
				   MHD_ALLOW_SUSPEND_RESUME, 0,
		NULL, NULL, web_handle, NULL,
		MHD_OPTION_EXTERNAL_LOGGER, web_log_mhd, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, web_completed, NULL,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)ac->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(ac->idle_timeout / 1000),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ac->request_memory,
		MHD_OPTION_END);
	if (web.mhd == NULL) {
		snprintf(err, errlen, "admin: libmicrohttpd did not start");
		return CORE_ERROR;
	}
	web.started = true;
	info = MHD_get_daemon_info(web.mhd, MHD_DAEMON_INFO_EPOLL_FD);
	core_io_init(loop, &web.io, info->epoll_fd, web_on_io, NULL);
	core_timer_init(loop, &web.timer, web_on_timer, NULL);
	if (core_io_set(&web.io, CORE_IO_READ) != CORE_OK) {
		snprintf(err, errlen, "admin: cannot watch: %s", strerror(errno));
		goto fail;
	}
	if (web_front_start(loop, ac, k->state_dir, k->node, web.mhd, web_run,
			    err, errlen) != CORE_OK ||
	    web_api_start(loop, web.https, err, errlen) != CORE_OK)
		goto fail;
	web_api_kick = web_run;
	web_schedule();
	return CORE_OK;
fail:
	web_stop();
	return CORE_ERROR;
}

static int web_reload(const struct core_conf *conf, char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);

	if (k->admin.tls.enabled != web.https)
		core_log_warn("web", "admin.tls.enabled: changing it needs a restart; the admin "
			      "server stays %s", web.https ? "HTTPS" : "plain HTTP");
	return web_front_reload(&k->admin, k->state_dir, k->node, err, errlen);
}

static const struct core_module web_module = {
	.name = "web",
	.order = 90,
	.start = web_start,
	.reload = web_reload,
	.stop = web_stop,
};
CORE_MODULE(web_module);
