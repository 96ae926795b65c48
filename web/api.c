/* The admin API's common ground: answers, JSON in, the audit log, and
 * starting and stopping; see api.h. The routes are in route.c, the
 * handlers in api_*.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>
#include <yaml.h>

#include "api.h"
#include "auth.h"
#include "core/conf.h"
#include "core/buf.h"
#include "core/command.h"
#include "core/control.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/settings.h"
#include "core/store.h"

void (*web_api_kick)(void);

static struct core_list suspended = { &suspended, &suspended };

static struct {
	struct core_loop *loop;
	bool		  https;	/* cookies get Secure, answers HSTS */
	uint64_t	  started;
} api;

bool web_api_https(void)
{
	return api.https;
}

uint64_t web_api_started(void)
{
	return api.started;
}

uint64_t web_api_now(void)
{
	return core_loop_now(api.loop);
}

/* ---- answers ------------------------------------------------------------------------------ */

void web_api_security_headers(struct MHD_Response *resp, bool https)
{
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	if (https)
		MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
}

enum MHD_Result web_api_reply(struct web_req *r, unsigned status, const char *type,
			      const char *body, size_t len, const char *cookie)
{
	struct MHD_Response *resp;
	enum MHD_Result rc;

	resp = MHD_create_response_from_buffer_copy(len, body);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	web_api_security_headers(resp, api.https);
	if (cookie != NULL)
		MHD_add_response_header(resp, "Set-Cookie", cookie);
	rc = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	r->state = WEB_REQ_ANSWERED;
	return rc;
}

enum MHD_Result web_api_reply_json(struct web_req *r, unsigned status, struct core_buf *b,
				   const char *cookie)
{
	return web_api_reply(r, status, "application/json", core_buf_head(b), core_buf_len(b),
			     cookie);
}

enum MHD_Result web_api_error(struct web_req *r, unsigned status, const char *field,
			      const char *fmt, ...)
{
	struct core_buf b;
	enum MHD_Result rc;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	core_buf_init(&b, 4096);
	core_buf_append(&b, "{\"error\":", 9);
	core_json_str(&b, msg);
	if (field != NULL) {
		core_buf_append(&b, ",\"field\":", 9);
		core_json_str(&b, field);
	}
	core_buf_append(&b, "}\n", 2);
	rc = web_api_reply_json(r, status, &b, NULL);
	core_buf_free(&b);
	return rc;
}

int web_api_put(struct core_buf *b, const char *s)
{
	return core_buf_append(b, s, strlen(s));
}

struct core_store *web_api_store(void)
{
	return core_control_store();
}

void web_api_audit(struct web_req *r, const char *user, const char *action, const char *detail)
{
	if (web_api_store() != NULL)
		core_store_audit(web_api_store(), user, r->ip, action, detail);
}

int64_t web_api_query_int(struct web_req *r, const char *key)
{
	const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);

	return v != NULL ? strtoll(v, NULL, 10) : 0;
}

void web_api_query_comment(struct web_req *r, char *buf, size_t len, const char *dflt)
{
	const char *c = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "comment");
	size_t i;

	snprintf(buf, len, "%s", c != NULL && *c != '\0' ? c : dflt);
	for (i = 0; buf[i] != '\0'; i++)
		if ((unsigned char)buf[i] < 0x20)
			buf[i] = ' ';
}

/* ---- JSON in ------------------------------------------------------------------------------ */

/*
 * libyaml's time grows with the square of the nesting depth (80 000 levels
 * took 15 s), so depth is bounded before it sees anything. YAML's flow
 * collections open with '[' or '{'; block style nests by indentation,
 * which costs it nothing. Quoted strings are skipped, escapes included.
 */
bool web_json_too_deep(const char *text, size_t len, unsigned max)
{
	unsigned depth = 0;
	char quote = '\0';
	size_t i;

	for (i = 0; i < len; i++) {
		char c = text[i];

		if (quote != '\0') {
			if (c == '\\' && quote == '"')
				i++;
			else if (c == quote)
				quote = '\0';
			continue;
		}
		if (c == '"')
			quote = c;
		else if (c == '[' || c == '{') {
			if (++depth > max)
				return true;
		} else if ((c == ']' || c == '}') && depth > 0)
			depth--;
	}
	return false;
}

bool web_json_parse(struct web_json *j, const struct core_buf *body)
{
	yaml_parser_t p;

	j->ok = false;
	if (web_json_too_deep(core_buf_head(body), core_buf_len(body), WEB_JSON_DEPTH))
		return false;
	if (!yaml_parser_initialize(&p))
		return false;
	yaml_parser_set_input_string(&p, (const unsigned char *)core_buf_head(body),
				     core_buf_len(body));
	if (yaml_parser_load(&p, &j->doc)) {
		yaml_node_t *root = yaml_document_get_root_node(&j->doc);

		j->ok = root != NULL && root->type == YAML_MAPPING_NODE;
		if (!j->ok)
			yaml_document_delete(&j->doc);
	}
	yaml_parser_delete(&p);
	return j->ok;
}

void web_json_free(struct web_json *j)
{
	if (j->ok)
		yaml_document_delete(&j->doc);
	j->ok = false;
}

const char *web_json_str(struct web_json *j, const char *key)
{
	yaml_node_t *root = yaml_document_get_root_node(&j->doc);
	yaml_node_pair_t *pr;

	for (pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(&j->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(&j->doc, pr->value);

		if (k->type == YAML_SCALAR_NODE && v->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0 &&
		    strlen((const char *)v->data.scalar.value) == v->data.scalar.length)
			return (const char *)v->data.scalar.value;
	}
	return NULL;
}

/* ---- start and stop ----------------------------------------------------------------------- */

int web_api_start(struct core_loop *loop, bool https, char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(core_control_conf());

	api.loop = loop;
	api.https = https;
	api.started = core_loop_now(loop);
	web_api_config_start(loop);
	if (web_auth_start(loop, k->state_dir, k->admin.session_key_file, err, errlen) != CORE_OK)
		return CORE_ERROR;
	if (web_api_store() != NULL && core_store_user_count(web_api_store()) == 0) {
		web_auth_setup_begin();
		if (web_auth_setup_token()[0] != '\0') {
			const struct core_conf_addr *a = k->admin.listen.v;
			const char *host = a[0].text;

			/* "*:8443" is this box's address, whichever the admin uses. */
			if (host[0] == '*')
				host++;
			core_log_warn("web", "no admin account yet: set keel up at %s://%s%s/#/setup?token=%s",
				      https ? "https" : "http", host[0] == ':' ? "<this box>" : "", host,
				      web_auth_setup_token());
		}
	}
	return CORE_OK;
}

void web_api_suspend(struct web_req *r)
{
	r->suspended = true;
	core_list_add_tail(&suspended, &r->suspended_link);
	MHD_suspend_connection(r->conn);
}

void web_api_resume(struct web_req *r)
{
	if (!r->suspended)
		return;
	r->suspended = false;
	core_list_del(&r->suspended_link);
	MHD_resume_connection(r->conn);
	if (web_api_kick != NULL)
		web_api_kick();
}

void web_api_resume_all(void)
{
	while (suspended.next != &suspended) {
		struct web_req *r = CORE_CONTAINER_OF(suspended.next, struct web_req,
						      suspended_link);

		if (r->cmd_running) {
			core_command_cancel(&r->cmd);
			r->cmd_running = false;
		}
		r->suspended = false;
		core_list_del(&r->suspended_link);
		MHD_resume_connection(r->conn);
	}
}

void web_api_stop(void)
{
	if (api.loop != NULL)
		web_api_config_stop();
	web_auth_stop();
}
