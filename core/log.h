/* The logger: levels, the action under way, stderr and an in-memory ring
 * that the admin UI reads. Safe to call from any thread. */
#ifndef KEEL_CORE_LOG_H
#define KEEL_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

enum core_log_level {
	CORE_LOG_ERROR = 0,	/* something failed and was not recovered */
	CORE_LOG_WARN,		/* something failed and keel worked around it */
	CORE_LOG_INFO,		/* state changes an operator wants to see */
	CORE_LOG_DEBUG,		/* details for developers */
};

extern int core_log_level;

/* Names this process in every line ("w1" for worker 1); NULL: the master. */
void core_log_set_process(const char *name);

/* Sizes the ring to `lines` entries; 0 disables it. Call before threads. */
int core_log_init(size_t lines);
void core_log_shutdown(void);
const char *core_log_level_str(int level);

/*
 * Sets what this thread is doing ("reloading configuration"); lines logged
 * meanwhile end with "(while ...)". Returns the previous action so callers
 * can restore it: prev = core_log_action("..."); ...; core_log_action(prev);
 * The string must outlive its use (a literal, normally).
 */
const char *core_log_action(const char *action);

void core_log_write(int level, const char *subsys, const char *fmt, ...)
	CORE_PRINTF(3, 4);

#define core_log_enabled(l)		((l) <= core_log_level)
#define core_log_error(sub, ...)	core_log_write(CORE_LOG_ERROR, sub, __VA_ARGS__)
#define core_log_warn(sub, ...)		core_log_write(CORE_LOG_WARN, sub, __VA_ARGS__)
#define core_log_info(sub, ...)		core_log_write(CORE_LOG_INFO, sub, __VA_ARGS__)
#define core_log_debug(sub, ...) do {					\
	if (core_log_enabled(CORE_LOG_DEBUG))				\
		core_log_write(CORE_LOG_DEBUG, sub, __VA_ARGS__);	\
} while (0)

/*
 * Calls fn for each line in the ring with a sequence number above `after`,
 * oldest first. Returns the sequence number of the newest line seen, to
 * pass as `after` next time.
 */
uint64_t core_log_ring_walk(uint64_t after,
			    void (*fn)(uint64_t seq, const char *line, void *arg),
			    void *arg);

#endif
