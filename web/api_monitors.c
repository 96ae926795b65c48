/* Monitors and alerts: what the monitor part publishes (core/status.h),
 * a monitor's history, and a test alert (core/event.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/control.h"
#include "core/event.h"
#include "core/log.h"
#include "core/settings.h"
#include "core/state.h"
#include "core/status.h"
#include "core/store.h"
#include "core/tls.h"

enum MHD_Result web_api_monitors(struct web_req *r)
{
	const struct core_status_provider *p = core_status_find("monitors");
	struct core_buf b;
	enum MHD_Result rc;

	core_buf_init(&b, 4 << 20);
	if (p == NULL || p->json(&b) != CORE_OK) {
		core_buf_free(&b);
		return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "too many monitors");
	}
	web_api_put(&b, "\n");
	rc = web_api_reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

/* GET /api/v1/monitors/history?name=N&range=SECONDS[&points=P] */
enum MHD_Result web_api_history(struct web_req *r)
{
	const char *name = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "name");
	int64_t range = web_api_query_int(r, "range"), points = web_api_query_int(r, "points");
	uint64_t to = core_clock_wall_ms(), from;
	const struct core_status_provider *p;
	struct core_buf b;
	enum MHD_Result rc;

	if (name == NULL || *name == '\0')
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, "name", "which monitor? (?name=)");
	if (range <= 0)
		range = 24 * 3600;
	if (range < 60 || range > 400 * 24 * 3600)
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, "range",
				   "range is 60..34560000 seconds");
	if (points <= 0 || points > 1000)
		points = 120;
	from = to - (uint64_t)range * 1000;
	core_buf_init(&b, 1 << 20);
	web_api_put(&b, "{\"name\":");
	core_json_str(&b, name);
	core_buf_printf(&b, ",\"from\":%llu,\"to\":%llu,\"points\":", (unsigned long long)from,
	     (unsigned long long)to);
	p = core_status_find("monitors");
	if (p == NULL || p->history == NULL ||
	    p->history(name, from, to, (unsigned)points, &b) != CORE_OK) {
		core_buf_free(&b);
		return web_api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
				   "monitor results are not being kept (see the log)");
	}
	web_api_put(&b, "}\n");
	rc = web_api_reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

enum MHD_Result web_api_alert_test(struct web_req *r)
{
	char err[200];

	if (core_event_test(r->session->user, err, sizeof(err)) != CORE_OK)
		return web_api_error(r, MHD_HTTP_CONFLICT, "alerts", "%s", err);
	web_api_audit(r, r->session->user, "test alert", "");
	return web_api_error(r, MHD_HTTP_OK, NULL, "sent");
}
