/* Commands that parts offer to the admin API: see command.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "command.h"
#include "conf.h"
#include "core.h"

extern const struct core_command *const __start_keel_commands[] __attribute__((weak));
extern const struct core_command *const __stop_keel_commands[] __attribute__((weak));

extern const struct core_tool *const __start_keel_tools[] __attribute__((weak));
extern const struct core_tool *const __stop_keel_tools[] __attribute__((weak));

const struct core_tool *core_tool_find(const char *name)
{
	const struct core_tool *const *t;

	for (t = __start_keel_tools; t != NULL && t < __stop_keel_tools; t++)
		if (strcmp((*t)->name, name) == 0)
			return *t;
	return NULL;
}

void core_tool_each(void (*fn)(const struct core_tool *t, void *arg), void *arg)
{
	const struct core_tool *const *t;

	for (t = __start_keel_tools; t != NULL && t < __stop_keel_tools; t++)
		fn(*t, arg);
}

const struct core_command *core_command_find(const char *name)
{
	const struct core_command *const *c;

	for (c = __start_keel_commands; c != NULL && c < __stop_keel_commands; c++)
		if (strcmp((*c)->name, name) == 0)
			return *c;
	return NULL;
}

void core_command_each(void (*fn)(const struct core_command *c, void *arg), void *arg)
{
	const struct core_command *const *c;

	for (c = __start_keel_commands; c != NULL && c < __stop_keel_commands; c++)
		fn(*c, arg);
}

void core_command_run(const struct core_command *c, struct core_command_call *call)
{
	core_buf_init(&call->out, 64 << 10);
	call->status = 0;
	call->cancel = NULL;
	call->priv = NULL;
	c->run(call);
}

int core_command_begin(const struct core_command *c, struct core_command_call *call,
		       int64_t length)
{
	core_buf_init(&call->out, 64 << 10);
	call->status = 0;
	call->cancel = NULL;
	call->priv = NULL;
	return c->begin(call, length);
}

int core_command_feed(const struct core_command *c, struct core_command_call *call,
		      const void *buf, size_t len)
{
	return c->feed(call, buf, len);
}

void core_command_finish(const struct core_command *c, struct core_command_call *call)
{
	c->run(call);
}

void core_command_cancel(struct core_command_call *call)
{
	void (*cancel)(struct core_command_call *) = call->cancel;

	call->cancel = NULL;
	call->done = NULL;
	if (cancel != NULL)
		cancel(call);
}

void core_command_call_free(struct core_command_call *call)
{
	core_buf_free(&call->out);
}

void core_command_answer(struct core_command_call *call, int status)
{
	call->status = status;
	call->cancel = NULL;
	if (call->done != NULL)
		call->done(call);
}

void core_command_fail(struct core_command_call *call, int status, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	core_buf_truncate(&call->out, 0);
	core_buf_append(&call->out, "{\"error\":", 9);
	core_json_str(&call->out, msg);
	core_buf_append(&call->out, "}", 1);
	core_command_answer(call, status);
}
