/* A server's state through the API: drain or down, applied as a new
 * revision of the configuration. */
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

/* PUT /api/v1/upstreams/NAME/servers/ADDR/state {"drain": bool, "down": bool} */
enum MHD_Result web_api_server_state(struct web_req *r)
{
	const char *up = r->params[0], *addr = r->params[1];
	const struct keel_conf *k = core_settings_of(core_control_conf());
	struct keel_upstream_conf *ups = k->upstreams.v;
	struct core_buf yaml;
	struct web_json j;
	const char *drain, *down;
	char comment[320];
	enum MHD_Result rc;
	size_t i, n;

	for (i = 0; i < k->upstreams.n && strcmp(ups[i].name, up) != 0; i++)
		;
	if (i == k->upstreams.n)
		return web_api_error(r, MHD_HTTP_NOT_FOUND, "upstream", "no upstream named %s", up);
	for (n = 0; n < ups[i].servers.n; n++)
		if (!strcmp(((struct keel_server_conf *)ups[i].servers.v)[n].address.text, addr))
			break;
	if (n == ups[i].servers.n)
		return web_api_error(r, MHD_HTTP_NOT_FOUND, "server", "upstream %s has no server %s",
				   up, addr);
	if (!web_json_parse(&j, &r->body))
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, NULL, "the body must be a JSON object");
	drain = web_json_str(&j, "drain");
	down = web_json_str(&j, "down");
	if ((drain && strcmp(drain, "true") && strcmp(drain, "false")) ||
	    (down && strcmp(down, "true") && strcmp(down, "false")) || (!drain && !down)) {
		web_json_free(&j);
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, drain ? "drain" : "down",
				   "give \"drain\" and/or \"down\" as true or false");
	}
	{
		/* Change the running settings' copy, write it, apply that. */
		struct keel_server_conf *sv = (struct keel_server_conf *)ups[i].servers.v + n;
		bool old_drain = sv->drain, old_down = sv->down;

		if (drain)
			sv->drain = !strcmp(drain, "true");
		if (down)
			sv->down = !strcmp(down, "true");
		snprintf(comment, sizeof(comment), "%s/%s: drain %s, down %s", up, addr,
			 sv->drain ? "on" : "off", sv->down ? "on" : "off");
		core_buf_init(&yaml, 16 << 20);
		rc = core_conf_write(&yaml, core_control_conf(), false, true) == CORE_OK ?
		     MHD_YES : MHD_NO;
		sv->drain = old_drain;
		sv->down = old_down;
	}
	web_json_free(&j);
	if (rc != MHD_YES) {
		core_buf_free(&yaml);
		return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
	}
	rc = web_api_apply(r, r->session->user, core_buf_head(&yaml), core_buf_len(&yaml), true, comment);
	core_buf_free(&yaml);
	return rc;
}
