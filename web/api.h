/* The admin API under /api/v1 and the other admin routes (/healthz,
 * /metrics, the UI's files). route.c holds the one table of routes and
 * checks a request's head against it; the handlers live by resource in
 * api_*.c and answer through the helpers here. Every answer is JSON with
 * Cache-Control: no-store; errors are {"error": "...", "field": "..."}. */
#ifndef KEEL_WEB_API_H
#define KEEL_WEB_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "core/buf.h"
#include "core/core.h"
#include "core/loop-t.h"
#include "web-t.h"

struct core_store;

#define WEB_API_COOKIE		"keel_session"
#define WEB_API_MIN_PASSWORD	10

/* ---- the route table (route.c) ---- */

extern const struct web_route web_routes[];
extern const size_t web_nroutes;

/* The request's head is in: finds its route and checks what the route
 * needs (session, CSRF token, content type, body size). MHD_YES with
 * r->state WEB_REQ_BODY to read the body; otherwise an answer is queued
 * (r->state WEB_REQ_ANSWERED) and no byte of the body is read. */
enum MHD_Result web_route_head(struct web_req *r);
/* The whole request is in (or a suspended one resumed): runs its handler. */
enum MHD_Result web_route_run(struct web_req *r);
const char *web_auth_kind_str(enum web_auth a);
const char *web_req_state_str(enum web_req_state s);

/* ---- answers (api.c) ---- */

void web_api_security_headers(struct MHD_Response *resp, bool https);
enum MHD_Result web_api_reply(struct web_req *r, unsigned status, const char *type,
			      const char *body, size_t len, const char *cookie);
enum MHD_Result web_api_reply_json(struct web_req *r, unsigned status, struct core_buf *b,
				   const char *cookie);
enum MHD_Result web_api_error(struct web_req *r, unsigned status, const char *field,
			      const char *fmt, ...) CORE_PRINTF(4, 5);
int web_api_put(struct core_buf *b, const char *s);
struct core_store *web_api_store(void);
void web_api_audit(struct web_req *r, const char *user, const char *action, const char *detail);
int64_t web_api_query_int(struct web_req *r, const char *key);
void web_api_query_comment(struct web_req *r, char *buf, size_t len, const char *dflt);
bool web_api_https(void);
uint64_t web_api_started(void);
uint64_t web_api_now(void);		/* the loop's monotonic ms */

/* ---- JSON in (api.c): through libyaml, JSON being YAML's flow style ---- */

/* Whether text nests deeper than max ('[' and '{' outside strings): a
 * byte scan done before any parser sees the text. */
bool web_json_too_deep(const char *text, size_t len, unsigned max);
/* Parses the body as one JSON object (refusing deep nesting first). */
bool web_json_parse(struct web_json *j, const struct core_buf *body);
void web_json_free(struct web_json *j);
/* A string (or scalar) member of the top-level object, or NULL. */
const char *web_json_str(struct web_json *j, const char *key);

/* ---- handlers, by resource ---- */

/* api_commands.c: parts' commands (core/command.h) */
enum MHD_Result web_api_commands(struct web_req *r);
enum MHD_Result web_api_command(struct web_req *r);
void web_api_command_end(struct web_req *r);
enum MHD_Result web_api_update(struct web_req *r);
enum MHD_Result web_api_stream_begin(struct web_req *r, int64_t length);
enum MHD_Result web_api_stream_feed(struct web_req *r, const char *data, size_t len);

/* api_status.c: health, status, metrics, logs, audit, the route table */
enum MHD_Result web_api_healthz(struct web_req *r);
enum MHD_Result web_api_status(struct web_req *r);
/* GET /api/v1/status's body (also the control socket's "status"). */
int web_api_status_json(struct core_buf *b);
enum MHD_Result web_api_metrics(struct web_req *r);
enum MHD_Result web_api_logs(struct web_req *r);
enum MHD_Result web_api_audit_list(struct web_req *r);
enum MHD_Result web_api_routes(struct web_req *r);
enum MHD_Result web_api_ui(struct web_req *r);

/* api_users.c: setup, login, sessions, users, passwords */
enum MHD_Result web_api_setup_state(struct web_req *r);
enum MHD_Result web_api_setup(struct web_req *r);
enum MHD_Result web_api_login(struct web_req *r);
enum MHD_Result web_api_logout(struct web_req *r);
enum MHD_Result web_api_session(struct web_req *r);
enum MHD_Result web_api_users(struct web_req *r);
enum MHD_Result web_api_user_add(struct web_req *r);
enum MHD_Result web_api_user_delete(struct web_req *r);
enum MHD_Result web_api_password(struct web_req *r);
/* The request is over (answered or its client gone): ends a login in flight. */
void web_api_req_done(struct web_req *r);

/* api_config.c: the configuration, its revisions, confirm or revert */
enum MHD_Result web_api_config_get(struct web_req *r);
enum MHD_Result web_api_config_yaml_get(struct web_req *r);
enum MHD_Result web_api_config_put(struct web_req *r);
enum MHD_Result web_api_config_yaml_put(struct web_req *r);
enum MHD_Result web_api_confirm(struct web_req *r);
enum MHD_Result web_api_cluster_resolve(struct web_req *r);
enum MHD_Result web_api_revisions(struct web_req *r);
enum MHD_Result web_api_revision(struct web_req *r);
enum MHD_Result web_api_revision_diff(struct web_req *r);
enum MHD_Result web_api_rollback(struct web_req *r);
/* Validates text (YAML or JSON), then applies and records it. */
enum MHD_Result web_api_apply(struct web_req *r, const char *user, const char *text,
			      size_t len, bool canonical, const char *comment);
/* The revert timer; the waiting change for the status. */
void web_api_config_start(struct core_loop *loop);
void web_api_config_stop(void);
void web_api_config_status(struct core_buf *b);

/* api_servers.c */
enum MHD_Result web_api_server_state(struct web_req *r);

/* api_monitors.c: monitors, their history, alerts */
enum MHD_Result web_api_monitors(struct web_req *r);
enum MHD_Result web_api_history(struct web_req *r);
enum MHD_Result web_api_alert_test(struct web_req *r);

/* api_certs.c */
enum MHD_Result web_api_certs(struct web_req *r);
enum MHD_Result web_api_cert_upload(struct web_req *r);

/* secret.c: secrets kept out of every answer */
/* text (a configuration in YAML or JSON) with every secret setting's value
 * replaced by "(secret)", into out. CORE_ERROR if it does not parse (out
 * then holds nothing). */
int web_secret_mask(const char *text, size_t len, struct core_buf *out);
/* Before "(secret)" in new takes old's value: every such secret's target
 * (the webhook URL, the SMTP server, the Redis nodes...) must be unchanged.
 * CORE_ERROR with the setting named in field otherwise. */
int web_secret_check_targets(const void *new_settings, const void *old_settings,
			     char *field, size_t fieldlen);
/* Two settings' values are the same (NULL reads as ""), for strings and
 * lists of addresses. */
struct core_conf_list;
bool web_conf_str_same(const char *a, const char *b);
bool web_conf_addrs_same(const struct core_conf_list *a, const struct core_conf_list *b);

/* Called once the daemon runs: setup token, password process, session key. */
int web_api_start(struct core_loop *loop, bool https, char *err, size_t errlen);
void web_api_stop(void);

/* Runs the daemon again (after a suspended request resumed). */
extern void (*web_api_kick)(void);

/* A request waits for something off the daemon (a hash, a command) and
 * goes on when it is there. libmicrohttpd cannot stop with a request
 * suspended: web_api_resume_all cancels what they wait for and lets them
 * go, before the daemon stops. */
void web_api_suspend(struct web_req *r);
void web_api_resume(struct web_req *r);
void web_api_resume_all(void);

#endif
