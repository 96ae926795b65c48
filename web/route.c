/* The admin server's one table of routes: method, path, the auth each
 * needs, its body and the body's limit, its handler. Everything a route
 * needs is checked on the request's head, before its body is read, so a
 * client without a session cannot make the master buffer anything. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "api.h"
#include "auth.h"
#include "core/control.h"
#include "core/log.h"
#include "core/settings.h"

#define KB	1024
#define MB	(1024 * 1024)

const struct web_route web_routes[] = {
	/* method   path                                            auth              body             limit          handler */
	{ "GET",    "/healthz",                                     WEB_AUTH_NONE,    WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_healthz,
	  "liveness for monitors and load balancers" },
	{ "GET",    "/",                                            WEB_AUTH_NONE,    WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_ui, "the UI" },
	{ "GET",    "/index.html",                                  WEB_AUTH_NONE,    WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_ui, "the UI" },
	{ "GET",    "/ui/*",                                        WEB_AUTH_NONE,    WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_ui,
	  "the UI's script and stylesheet" },
	{ "GET",    "/metrics",                                     WEB_AUTH_BEARER,  WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_metrics,
	  "Prometheus text" },
	{ "GET",    "/api/v1/setup",                                WEB_AUTH_NONE,    WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_setup_state,
	  "whether setup is still to be done" },
	{ "POST",   "/api/v1/setup",                                WEB_AUTH_SETUP,   WEB_BODY_JSON,   WEB_BODY_SMALL, web_api_setup,
	  "the first account, with the setup token" },
	{ "POST",   "/api/v1/login",                                WEB_AUTH_NONE,    WEB_BODY_JSON,   WEB_BODY_SMALL, web_api_login,
	  "a session cookie and its CSRF token" },
	{ "GET",    "/api/v1/session",                              WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_session, NULL },
	{ "POST",   "/api/v1/logout",                               WEB_AUTH_CSRF,    WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_logout, NULL },
	{ "GET",    "/api/v1/routes",                               WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_routes,
	  "this table" },
	{ "GET",    "/api/v1/status",                               WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_status, NULL },
	{ "GET",    "/api/v1/config",                               WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_config_get,
	  "secrets masked" },
	{ "PUT",    "/api/v1/config",                               WEB_AUTH_CSRF,    WEB_BODY_CONFIG, WEB_BODY_CONFIG_MAX, web_api_config_put,
	  "apply; \"(secret)\" keeps a secret whose target is unchanged" },
	{ "GET",    "/api/v1/config/yaml",                          WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_config_yaml_get,
	  "secrets masked" },
	{ "PUT",    "/api/v1/config/yaml",                          WEB_AUTH_CSRF,    WEB_BODY_CONFIG, WEB_BODY_CONFIG_MAX, web_api_config_yaml_put,
	  "import" },
	{ "POST",   "/api/v1/config/confirm",                       WEB_AUTH_CSRF,    WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_confirm, NULL },
	{ "POST",   "/api/v1/cluster/resolve",                      WEB_AUTH_CSRF,    WEB_BODY_JSON,   WEB_BODY_SMALL, web_api_cluster_resolve,
	  "{\"keep\": NODE}: ends a configuration conflict between gateways; audited" },
	{ "GET",    "/api/v1/revisions",                            WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_revisions, NULL },
	{ "GET",    "/api/v1/revisions/diff",                       WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_revision_diff,
	  "secrets masked" },
	{ "GET",    "/api/v1/revisions/:id",                        WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_revision,
	  "secrets masked" },
	{ "POST",   "/api/v1/revisions/:id/rollback",               WEB_AUTH_CSRF,    WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_rollback, NULL },
	{ "PUT",    "/api/v1/upstreams/:upstream/servers/:server/state", WEB_AUTH_CSRF, WEB_BODY_JSON, WEB_BODY_SMALL, web_api_server_state,
	  "drain or down, as a new revision" },
	{ "GET",    "/api/v1/monitors",                             WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_monitors, NULL },
	{ "GET",    "/api/v1/monitors/history",                     WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_history, NULL },
	{ "POST",   "/api/v1/alerts/test",                          WEB_AUTH_CSRF,    WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_alert_test, NULL },
	{ "GET",    "/api/v1/commands",                             WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_commands,
	  "what the parts offer: remount a share, list a server's exports..." },
	{ "POST",   "/api/v1/commands/:name",                       WEB_AUTH_CSRF,    WEB_BODY_JSON,   WEB_BODY_SMALL, web_api_command,
	  "{\"target\", \"arg\"}; audited" },
	{ "POST",   "/api/v1/update",                               WEB_AUTH_CSRF,    WEB_BODY_STREAM, 1024 * MB,      web_api_update,
	  "a signed update bundle (application/octet-stream), streamed to the inactive slot; audited" },
	{ "POST",   "/api/v1/import/nginx",                         WEB_AUTH_CSRF,    WEB_BODY_STREAM, 4 * MB,         web_api_update,
	  "an nginx.conf (application/octet-stream): the report and the keel configuration it becomes (secrets masked), nothing applied" },
	{ "GET",    "/api/v1/certificates",                         WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_certs, NULL },
	{ "POST",   "/api/v1/certificates",                         WEB_AUTH_CSRF,    WEB_BODY_JSON,   256 * KB,       web_api_cert_upload,
	  "PEM certificate and key" },
	{ "GET",    "/api/v1/logs",                                 WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_logs, NULL },
	{ "GET",    "/api/v1/audit",                                WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_audit_list, NULL },
	{ "GET",    "/api/v1/users",                                WEB_AUTH_SESSION, WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_users, NULL },
	{ "POST",   "/api/v1/users",                                WEB_AUTH_CSRF,    WEB_BODY_JSON,   WEB_BODY_SMALL, web_api_user_add, NULL },
	{ "DELETE", "/api/v1/users/:name",                          WEB_AUTH_CSRF,    WEB_BODY_NONE,   WEB_BODY_SMALL, web_api_user_delete, NULL },
	{ "POST",   "/api/v1/password",                             WEB_AUTH_CSRF,    WEB_BODY_JSON,   WEB_BODY_SMALL, web_api_password,
	  "needs the current password" },
};
const size_t web_nroutes = CORE_ARRAY_SIZE(web_routes);

const char *web_auth_kind_str(enum web_auth a)
{
	static const char *const names[] = {
		[WEB_AUTH_NONE] = "none",
		[WEB_AUTH_SETUP] = "setup-token",
		[WEB_AUTH_BEARER] = "bearer-or-session",
		[WEB_AUTH_SESSION] = "session",
		[WEB_AUTH_CSRF] = "session+csrf",
	};

	return (unsigned)a < CORE_ARRAY_SIZE(names) ? names[a] : "?";
}

const char *web_req_state_str(enum web_req_state s)
{
	static const char *const names[] = {
		[WEB_REQ_HEAD] = "head",
		[WEB_REQ_BODY] = "body",
		[WEB_REQ_HASHING] = "hashing",
		[WEB_REQ_HASHED] = "hashed",
		[WEB_REQ_COMMAND] = "command",
		[WEB_REQ_COMMANDED] = "commanded",
		[WEB_REQ_ANSWERED] = "answered",
	};

	return (unsigned)s < CORE_ARRAY_SIZE(names) ? names[s] : "?";
}

/* Whether path (without its query) matches pattern; ":x" segments are
 * copied into params in order, a last "*" takes the rest. */
static bool route_match(const char *pattern, const char *path,
			char params[WEB_ROUTE_PARAMS][128])
{
	const char *p = pattern, *u = path;
	unsigned np = 0;

	while (*p != '\0') {
		if (p[0] == '*' && p[1] == '\0')
			return *u != '\0';
		if (*p == ':') {
			size_t n = strcspn(u, "/");

			if (n == 0 || n >= 128 || np >= WEB_ROUTE_PARAMS)
				return false;
			memcpy(params[np], u, n);
			params[np++][n] = '\0';
			u += n;
			p += strcspn(p, "/");
			continue;
		}
		if (*p != *u)
			return false;
		p++;
		u++;
	}
	return *u == '\0';
}

static bool method_is(const char *want, const char *got)
{
	return !strcmp(want, got) || (!strcmp(want, "GET") && !strcmp(got, "HEAD"));
}

/* The route for method and url, or NULL. Otherwise the methods other
 * routes take on the path go to allow ("" when none), and *open says
 * whether all of them are open to anyone. */
static const struct web_route *route_find(struct web_req *r, char *allow, size_t len,
					  bool *open)
{
	char params[WEB_ROUTE_PARAMS][128];
	size_t i, n = 0;

	allow[0] = '\0';
	*open = true;
	for (i = 0; i < web_nroutes; i++) {
		if (!route_match(web_routes[i].path, r->url, params))
			continue;
		if (!method_is(web_routes[i].method, r->method)) {
			n += (size_t)snprintf(allow + n, n < len ? len - n : 0, "%s%s%s", n ? ", " : "",
					      web_routes[i].method,
					      strcmp(web_routes[i].method, "GET") ? "" : ", HEAD");
			if (web_routes[i].auth != WEB_AUTH_NONE)
				*open = false;
			continue;
		}
		memcpy(r->params, params, sizeof(params));
		return &web_routes[i];
	}
	return NULL;
}

static bool bearer_ok(struct web_req *r)
{
	const char *want = core_settings_of(core_control_conf())->admin.metrics_token;
	const char *got = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");

	if (want == NULL || *want == '\0' || got == NULL || strncmp(got, "Bearer ", 7) != 0)
		return false;
	got += 7;
	return strlen(got) == strlen(want) && web_auth_equal(got, want, strlen(want));
}

static bool type_is(const char *type, const char *want)
{
	size_t n = strlen(want);

	return type != NULL && !strncasecmp(type, want, n) && (type[n] == '\0' || type[n] == ';' ||
							     type[n] == ' ');
}

static enum MHD_Result refuse(struct web_req *r, unsigned status, const char *msg)
{
	return web_api_error(r, status, NULL, "%s", msg);
}

static enum MHD_Result refuse_method(struct web_req *r, const char *allow)
{
	char body[160];
	struct MHD_Response *resp;
	enum MHD_Result rc;

	snprintf(body, sizeof(body), "{\"error\":\"method not allowed; use %s\"}\n", allow);
	resp = MHD_create_response_from_buffer_copy(strlen(body), body);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "Allow", allow);
	web_api_security_headers(resp, web_api_https());
	rc = MHD_queue_response(r->conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
	MHD_destroy_response(resp);
	r->state = WEB_REQ_ANSWERED;
	return rc;
}

enum MHD_Result web_route_head(struct web_req *r)
{
	const char *len = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
	const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Transfer-Encoding");
	const char *type = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
	const char *token, *csrf;
	enum web_auth auth;
	char allow[64];
	bool open, has_body;
	unsigned long long n = len != NULL ? strtoull(len, NULL, 10) : 0;

	r->route = route_find(r, allow, sizeof(allow), &open);
	/* A wrong method on an open path is said so to anyone; any other
	 * unknown route is no business of anyone without a session. */
	auth = r->route != NULL ? r->route->auth :
	       allow[0] != '\0' && open ? WEB_AUTH_NONE : WEB_AUTH_SESSION;
	if (auth == WEB_AUTH_BEARER && bearer_ok(r))
		auth = WEB_AUTH_NONE;
	else if (auth == WEB_AUTH_BEARER)
		auth = WEB_AUTH_SESSION;
	if (auth == WEB_AUTH_SESSION || auth == WEB_AUTH_CSRF) {
		token = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, WEB_API_COOKIE);
		if ((r->session = web_auth_session_find(token)) == NULL)
			return refuse(r, MHD_HTTP_UNAUTHORIZED, "log in first");
		snprintf(r->token, sizeof(r->token), "%s", r->session->token);
	}
	if (r->route == NULL) {
		if (allow[0] != '\0')
			return refuse_method(r, allow);
		return web_api_error(r, MHD_HTTP_NOT_FOUND, NULL, "no such route: %s %s",
				     r->method, r->url);
	}
	if (auth == WEB_AUTH_CSRF) {
		csrf = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-CSRF-Token");
		if (csrf == NULL || strlen(csrf) != WEB_AUTH_TOKEN_HEX ||
		    !web_auth_equal(csrf, r->session->csrf, WEB_AUTH_TOKEN_HEX))
			return refuse(r, MHD_HTTP_FORBIDDEN, "missing or wrong X-CSRF-Token header");
	}
	/* A cross-site form posts text/plain or a form encoding: only JSON is
	 * taken (YAML too where a configuration is), even for an empty body on
	 * the open routes. */
	has_body = n > 0 || te != NULL;
	if ((r->route->body == WEB_BODY_JSON && (has_body || r->route->auth <= WEB_AUTH_SETUP) &&
	     !type_is(type, "application/json")) ||
	    (r->route->body == WEB_BODY_CONFIG && has_body && !type_is(type, "application/json") &&
	     !type_is(type, "application/yaml")) ||
	    (r->route->body == WEB_BODY_NONE && has_body && !type_is(type, "application/json")) ||
	    (r->route->body == WEB_BODY_STREAM && !type_is(type, "application/octet-stream")))
		return refuse(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
			      r->route->body == WEB_BODY_CONFIG ?
			      "send application/json (or application/yaml)" :
			      r->route->body == WEB_BODY_STREAM ? "send application/octet-stream" :
			      "send application/json");
	if (n > r->route->body_max)
		return web_api_error(r, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
				     "the body is too large (at most %zu bytes here)",
				     r->route->body_max);
	if ((auth == WEB_AUTH_SESSION || auth == WEB_AUTH_CSRF) && web_api_store() == NULL &&
	    r->route->handler != web_api_status && r->route->handler != web_api_metrics)
		return refuse(r, MHD_HTTP_SERVICE_UNAVAILABLE,
			      "the config store is not available (see the log)");
	/* An open route that takes no body (/healthz, the UI's files) is
	 * answered on the head, as it always was: libmicrohttpd then closes
	 * the connection after the answer, so a load balancer's probes and a
	 * page load hold no admin connection open. */
	if (auth == WEB_AUTH_NONE && r->route->body == WEB_BODY_NONE && !has_body) {
		r->state = WEB_REQ_BODY;
		return r->route->handler(r);
	}
	r->state = WEB_REQ_BODY;
	if (r->route->body == WEB_BODY_STREAM)
		return web_api_stream_begin(r, len != NULL ? (int64_t)n : -1);
	core_buf_init(&r->body, r->route->body_max);
	return MHD_YES;
}

enum MHD_Result web_route_run(struct web_req *r)
{
	if (r->too_big)
		return web_api_error(r, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
				     "the body is too large (at most %zu bytes here)",
				     r->route->body_max);
	/* The session may have ended while the body came in. */
	if (r->token[0] != '\0' &&
	    (r->session = web_auth_session_find(r->token)) == NULL)
		return refuse(r, MHD_HTTP_UNAUTHORIZED, "log in first");
	return r->route->handler(r);
}
