/* Health, status, metrics, the log tail, the audit log, the UI's files and
 * the route table: the admin routes that only read. */
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>

#include "api.h"
#include "front.h"
#include "ui.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/control.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/settings.h"
#include "core/status.h"
#include "core/store.h"
#include "version.h"

enum MHD_Result web_api_healthz(struct web_req *r)
{
	const struct core_conf *conf = core_control_conf();
	char body[512];
	uint64_t now = web_api_now();

	snprintf(body, sizeof(body),
		 "{\"status\":\"ok\",\"node\":\"%s\",\"version\":\"%s\","
		 "\"uptime_s\":%llu,\"config_generation\":%u}\n",
		 core_settings_of(conf)->node, KEEL_VERSION,
		 (unsigned long long)((now - web_api_started()) / 1000), conf->generation);
	return web_api_reply(r, MHD_HTTP_OK, "application/json", body, strlen(body), NULL);
}

enum MHD_Result web_api_ui(struct web_req *r)
{
	r->state = WEB_REQ_ANSWERED;
	return web_ui_serve(r->conn, r->method, r->url, web_api_https());
}

/* The node, then whatever the parts publish, each under its own name
 * ("proxy", "redis", "monitors"; core/status.h). */
int web_api_status_json(struct core_buf *b)
{
	uint64_t now = web_api_now();
	struct core_store *st = web_api_store();

	web_api_put(b, "{\"node\":");
	core_json_str(b, core_settings_of(core_control_conf())->node);
	core_buf_printf(b, ",\"version\":\"%s\",\"generation\":%u,\"revision\":%lld,\"uptime_s\":%llu",
	     KEEL_VERSION, core_control_conf()->generation,
	     st ? (long long)core_store_current_id(st) : 0LL,
	     (unsigned long long)((now - web_api_started()) / 1000));
	core_buf_printf(b, ",\"time\":%llu", (unsigned long long)core_clock_wall_ms());
	if (web_api_https()) {
		web_api_put(b, ",\"admin_fingerprint\":");
		core_json_str(b, web_front_fingerprint());
	}
	web_api_config_status(b);
	if (core_status_json(b) != CORE_OK)
		return CORE_ERROR;
	web_api_put(b, "}\n");
	return CORE_OK;
}

enum MHD_Result web_api_status(struct web_req *r)
{
	struct core_buf b;
	enum MHD_Result rc;

	core_buf_init(&b, 8 << 20);
	if (web_api_status_json(&b) != CORE_OK) {
		core_buf_free(&b);
		return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "status too large");
	}
	rc = web_api_reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

enum MHD_Result web_api_metrics(struct web_req *r)
{
	struct core_buf out;
	enum MHD_Result rc;

	core_buf_init(&out, 4 << 20);
	if (core_status_metrics(&out) != CORE_OK) {
		core_buf_free(&out);
		return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "metrics too large");
	}
	rc = web_api_reply(r, MHD_HTTP_OK, "text/plain; version=0.0.4", core_buf_head(&out),
			   core_buf_len(&out), NULL);
	core_buf_free(&out);
	return rc;
}

struct log_walk {
	struct core_buf	*b;
	unsigned	 n;
};

static void log_line(uint64_t seq, const char *line, void *arg)
{
	struct log_walk *w = arg;

	core_buf_printf(w->b, "%s{\"seq\":%llu,\"line\":", w->n++ ? "," : "", (unsigned long long)seq);
	core_json_str(w->b, line);
	web_api_put(w->b, "}");
}

enum MHD_Result web_api_logs(struct web_req *r)
{
	struct core_buf b;
	struct log_walk w = { &b, 0 };
	enum MHD_Result rc;
	uint64_t last;

	core_buf_init(&b, 16 << 20);
	web_api_put(&b, "{\"lines\":[");
	last = core_log_ring_walk((uint64_t)web_api_query_int(r, "after"), log_line, &w);
	core_buf_printf(&b, "],\"last\":%llu}\n", (unsigned long long)last);
	rc = web_api_reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

enum MHD_Result web_api_audit_list(struct web_req *r)
{
	struct core_buf b;
	enum MHD_Result rc;

	core_buf_init(&b, 16 << 20);
	core_store_audit_json(web_api_store(), 500, &b);
	web_api_put(&b, "\n");
	rc = web_api_reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

/* The route table itself, for audits and for the test that walks it. */
enum MHD_Result web_api_routes(struct web_req *r)
{
	static const char *const bodies[] = {
		[WEB_BODY_NONE] = "none", [WEB_BODY_JSON] = "json", [WEB_BODY_CONFIG] = "json-or-yaml",
		[WEB_BODY_STREAM] = "octet-stream",
	};
	struct core_buf b;
	enum MHD_Result rc;
	size_t i;

	core_buf_init(&b, 1 << 20);
	web_api_put(&b, "[");
	for (i = 0; i < web_nroutes; i++) {
		const struct web_route *rt = &web_routes[i];

		web_api_put(&b, i ? ",\n{\"method\":" : "{\"method\":");
		core_json_str(&b, rt->method);
		web_api_put(&b, ",\"path\":");
		core_json_str(&b, rt->path);
		core_buf_printf(&b, ",\"auth\":\"%s\",\"body\":\"%s\",\"body_max\":%zu,\"doc\":",
				web_auth_kind_str(rt->auth), bodies[rt->body], rt->body_max);
		core_json_str(&b, rt->doc != NULL ? rt->doc : "");
		web_api_put(&b, "}");
	}
	web_api_put(&b, "]\n");
	rc = web_api_reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}
