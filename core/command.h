/* Commands: operations a part offers (remount a share, switch its server,
 * list what a server exports) that the admin API runs by name, without
 * knowing the part. Registered like modules, in a linker section; run in
 * the master.
 *
 * A command answers through call->done, exactly once, at once or later (a
 * lookup over the network). A caller that goes away first cancels the
 * call; done is then never called. */
#ifndef KEEL_CORE_COMMAND_H
#define KEEL_CORE_COMMAND_H

#include "buf.h"
#include "command-t.h"

#define CORE_COMMAND(c)							\
	static const struct core_command *const core_command_ptr_##c		\
	__attribute__((used, section("keel_commands"), aligned(sizeof(void *)))) = &(c)

const struct core_command *core_command_find(const char *name);
/* Calls fn for every command, in name order of registration. */
void core_command_each(void (*fn)(const struct core_command *c, void *arg), void *arg);

/* Runs c. The caller fills target, arg, who, done and ctx, and frees
 * call->out after done (core_command_call_free). */
void core_command_run(const struct core_command *c, struct core_command_call *call);
/* A streamed command (c->begin set): its body starts, then comes in
 * pieces; CORE_ERROR when the command answered with a failure. */
int core_command_begin(const struct core_command *c, struct core_command_call *call,
		       int64_t length);
int core_command_feed(const struct core_command *c, struct core_command_call *call,
		      const void *buf, size_t len);
/* Runs a streamed command once its body has all come. */
void core_command_finish(const struct core_command *c, struct core_command_call *call);
/* The caller goes away: a call still running is dropped, done never runs. */
void core_command_cancel(struct core_command_call *call);
void core_command_call_free(struct core_command_call *call);

/* For commands: answers with status and a JSON error naming what. */
void core_command_fail(struct core_command_call *call, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* For commands: the answer is in call->out; done runs. */
void core_command_answer(struct core_command_call *call, int status);

#define CORE_TOOL(t)							\
	static const struct core_tool *const core_tool_ptr_##t			\
	__attribute__((used, section("keel_tools"), aligned(sizeof(void *)))) = &(t)

const struct core_tool *core_tool_find(const char *name);
void core_tool_each(void (*fn)(const struct core_tool *t, void *arg), void *arg);

#endif
