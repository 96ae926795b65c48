/* Parts' commands through the API (core/command.h): the list, and running
 * one. A command that answers later (a server asked over the network)
 * suspends its request until it does; a client that goes away cancels it.
 * Every run is audited with its user, target, argument and outcome. */
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>

#include "api.h"
#include "core/command.h"
#include "core/conf.h"
#include "core/core.h"
#include "core/log.h"

static void list_one(const struct core_command *c, void *arg)
{
	struct core_buf *b = arg;

	core_buf_append(b, core_buf_len(b) > 13 ? ",{\"name\":" : "{\"name\":",
			core_buf_len(b) > 13 ? 9 : 8);
	core_json_str(b, c->name);
	core_buf_append(b, ",\"doc\":", 7);
	core_json_str(b, c->doc);
	core_buf_append(b, ",\"arg\":", 7);
	if (c->arg != NULL)
		core_json_str(b, c->arg);
	else
		core_buf_append(b, "null", 4);
	core_buf_append(b, "}", 1);
}

/* GET /api/v1/commands */
enum MHD_Result web_api_commands(struct web_req *r)
{
	struct core_buf b;
	enum MHD_Result rc;

	core_buf_init(&b, 64 << 10);
	core_buf_append(&b, "{\"commands\":[", 13);
	core_command_each(list_one, &b);
	core_buf_append(&b, "]}", 2);
	rc = web_api_reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

static void command_done(struct core_command_call *call)
{
	struct web_req *r = call->ctx;

	r->cmd_running = false;
	r->state = WEB_REQ_COMMANDED;
	web_api_resume(r);
}

static enum MHD_Result command_answer(struct web_req *r)
{
	const struct core_command *c = core_command_find(r->params[0]);
	char detail[400];
	enum MHD_Result rc;

	snprintf(detail, sizeof(detail), "%s%s%s%s%s: %d", r->params[0],
		 r->cmd.target[0] ? " " : "", r->cmd.target, r->cmd.arg[0] ? " " : "",
		 r->cmd.arg, r->cmd.status);
	web_api_audit(r, r->session->user, "command", detail);
	if (c != NULL && (r->cmd.status < 200 || r->cmd.status > 299))
		core_log_warn("web", "admin: %s ran %s: %d %.*s", r->session->user, detail,
			      r->cmd.status, (int)core_buf_len(&r->cmd.out), core_buf_head(&r->cmd.out));
	rc = web_api_reply_json(r, r->cmd.status >= 200 && r->cmd.status <= 599 ?
				(unsigned)r->cmd.status : MHD_HTTP_INTERNAL_SERVER_ERROR, &r->cmd.out, NULL);
	core_command_call_free(&r->cmd);
	return rc;
}

/* POST /api/v1/commands/:name {"target": "...", "arg": "..."} */
enum MHD_Result web_api_command(struct web_req *r)
{
	const struct core_command *c;
	struct web_json j;
	const char *target, *arg;

	if (r->state == WEB_REQ_COMMANDED)
		return command_answer(r);
	if ((c = core_command_find(r->params[0])) == NULL)
		return web_api_error(r, MHD_HTTP_NOT_FOUND, "name", "no command named %s",
				     r->params[0]);
	if (!web_json_parse(&j, &r->body))
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, NULL, "the body must be a JSON object");
	target = web_json_str(&j, "target");
	arg = web_json_str(&j, "arg");
	if ((target != NULL && strlen(target) >= sizeof(r->cmd.target)) ||
	    (arg != NULL && strlen(arg) >= sizeof(r->cmd.arg))) {
		web_json_free(&j);
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, target != NULL &&
				     strlen(target) >= sizeof(r->cmd.target) ? "target" : "arg",
				     "too long");
	}
	memset(&r->cmd, 0, sizeof(r->cmd));
	snprintf(r->cmd.target, sizeof(r->cmd.target), "%s", target != NULL ? target : "");
	snprintf(r->cmd.arg, sizeof(r->cmd.arg), "%s", arg != NULL ? arg : "");
	snprintf(r->cmd.who, sizeof(r->cmd.who), "%s", r->session->user);
	web_json_free(&j);
	r->cmd.done = command_done;
	r->cmd.ctx = r;
	r->cmd_running = true;
	r->state = WEB_REQ_COMMAND;
	core_command_run(c, &r->cmd);
	if (!r->cmd_running)		/* answered at once */
		return command_answer(r);
	web_api_suspend(r);
	return MHD_YES;
}

/* The request ends: a command still running is dropped. */
void web_api_command_end(struct web_req *r)
{
	if (r->cmd_running) {
		core_command_cancel(&r->cmd);
		r->cmd_running = false;
	}
	/* Whatever answer is left (a refused stream whose request then ended
	 * otherwise): freeing twice is harmless. */
	core_command_call_free(&r->cmd);
	r->streaming = false;
}

/* ---- a body streamed to a command -------------------------------------------------------- */

/* The routes that stream their body to a command, and the command. */
static const struct {
	const char	*path;
	const char	*command;
} stream_commands[] = {
	{ "/api/v1/update", "update.install" },
	{ "/api/v1/import/nginx", "config.import-nginx" },
};

/* The head of a streamed POST is accepted: the command starts. */
enum MHD_Result web_api_stream_begin(struct web_req *r, int64_t length)
{
	const struct core_command *c = NULL;
	const char *name = "?";
	size_t i;

	for (i = 0; i < sizeof(stream_commands) / sizeof(stream_commands[0]); i++)
		if (strcmp(stream_commands[i].path, r->route->path) == 0) {
			name = stream_commands[i].command;
			c = core_command_find(name);
		}
	if (c == NULL || c->begin == NULL)
		return web_api_error(r, MHD_HTTP_NOT_FOUND, NULL, "this keel has no %s", name);
	memset(&r->cmd, 0, sizeof(r->cmd));
	snprintf(r->params[0], sizeof(r->params[0]), "%s", name);
	snprintf(r->cmd.who, sizeof(r->cmd.who), "%s", r->session->user);
	{
		const char *dg = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
							     "downgrade");

		if (dg != NULL && strcmp(dg, "1") == 0)
			snprintf(r->cmd.arg, sizeof(r->cmd.arg), "downgrade");
	}
	r->cmd.done = command_done;
	r->cmd.ctx = r;
	r->cmd_running = true;
	r->streaming = true;
	if (core_command_begin(c, &r->cmd, length) != CORE_OK) {
		r->streaming = false;
		r->cmd_running = false;
		return command_answer(r);	/* refused before a byte is read */
	}
	return MHD_YES;
}

/* A piece of the body, handed on; after a refusal the rest is dropped. */
enum MHD_Result web_api_stream_feed(struct web_req *r, const char *data, size_t len)
{
	const struct core_command *c = core_command_find(r->params[0]);

	/* Content-Length was checked on the head; a chunked body is counted. */
	r->streamed += len;
	if (r->streamed > r->route->body_max) {
		core_log_warn("web", "%s: %s %s: the body passed %zu bytes: connection closed",
			      r->ip, r->method, r->url, r->route->body_max);
		return MHD_NO;
	}
	if (core_command_feed(c, &r->cmd, data, len) == CORE_OK)
		return MHD_YES;
	/* Answered (state COMMANDED): libmicrohttpd takes a response only
	 * before the body or after it, so the rest is read and dropped, and
	 * the refusal goes out at its end. */
	r->streaming = false;
	r->cmd_running = false;
	return MHD_YES;
}

/* POST /api/v1/update (or another streamed route): the whole body is in. */
enum MHD_Result web_api_update(struct web_req *r)
{
	const struct core_command *c = core_command_find(r->params[0]);

	if (r->state == WEB_REQ_COMMANDED)
		return command_answer(r);
	if (!r->streaming || c == NULL)
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, NULL, "no body is coming in");
	r->streaming = false;
	r->state = WEB_REQ_COMMAND;
	core_command_finish(c, &r->cmd);
	if (!r->cmd_running)
		return command_answer(r);
	web_api_suspend(r);
	return MHD_YES;
}
