/* The logger: one formatted line per call, written to stderr with a single
 * write() and kept in a fixed ring of fixed-size slots for the admin UI. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define LOG_LINE_MAX	1024	/* longer lines are cut, marked with "..." */
#define LOG_SLOT_SIZE	256	/* bytes kept per line in the ring */

struct log_slot {
	uint64_t	seq;
	char		line[LOG_SLOT_SIZE];
};

int core_log_level = CORE_LOG_INFO;

static __thread const char *log_action;
static char log_process[16];	/* "[w1] ", or empty in the master */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_slot *log_ring;
static size_t log_ring_len;
static uint64_t log_seq;	/* sequence number of the newest line */

static const char *const log_level_names[] = { "error", "warn", "info", "debug" };

const char *core_log_level_str(int level)
{
	if (level < 0 || level >= (int)CORE_ARRAY_SIZE(log_level_names))
		return "?";
	return log_level_names[level];
}

int core_log_init(size_t lines)
{
	struct log_slot *ring = NULL;

	if (lines > 0) {
		ring = calloc(lines, sizeof(*ring));
		if (ring == NULL)
			return -ENOMEM;
	}
	pthread_mutex_lock(&log_lock);
	free(log_ring);
	log_ring = ring;
	log_ring_len = lines;
	pthread_mutex_unlock(&log_lock);
	return CORE_OK;
}

void core_log_shutdown(void)
{
	core_log_init(0);
}

void core_log_set_process(const char *name)
{
	if (name == NULL)
		log_process[0] = '\0';
	else
		snprintf(log_process, sizeof(log_process), "[%.10s] ", name);
}

const char *core_log_action(const char *action)
{
	const char *prev = log_action;

	log_action = action;
	return prev;
}

void core_log_write(int level, const char *subsys, const char *fmt, ...)
{
	char line[LOG_LINE_MAX], ts[32];
	size_t len, cap = sizeof(line) - 1;	/* room for the newline */
	va_list ap;
	int n;

	if (!core_log_enabled(level))
		return;

	core_clock_format_utc(core_clock_wall_ms(), ts, sizeof(ts));
	n = snprintf(line, cap, "%s %s %s%s: ", ts, core_log_level_str(level),
		     log_process, subsys);
	len = (size_t)n;

	va_start(ap, fmt);
	n = vsnprintf(line + len, cap - len, fmt, ap);
	va_end(ap);
	len = n < 0 ? len : len + (size_t)n;

	if (log_action != NULL && len < cap) {
		n = snprintf(line + len, cap - len, " (while %s)", log_action);
		len = n < 0 ? len : len + (size_t)n;
	}
	if (len >= cap) {
		len = cap - 1;
		memcpy(line + len - 3, "...", 3);
	}

	/* Control bytes from peers must not forge extra log lines. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
	line[len++] = '\n';

	pthread_mutex_lock(&log_lock);
	log_seq++;
	if (log_ring_len > 0) {
		struct log_slot *s = &log_ring[log_seq % log_ring_len];
		size_t keep = len - 1 < LOG_SLOT_SIZE - 1 ? len - 1 : LOG_SLOT_SIZE - 1;

		s->seq = log_seq;
		memcpy(s->line, line, keep);
		s->line[keep] = '\0';
	}
	pthread_mutex_unlock(&log_lock);

	/* One write per line keeps lines whole when threads log at once. */
	if (write(STDERR_FILENO, line, len) == -1) {
		/* Nowhere left to report it. */
	}
}

uint64_t core_log_ring_walk(uint64_t after,
			    void (*fn)(uint64_t seq, const char *line, void *arg),
			    void *arg)
{
	uint64_t first, seq, last;

	pthread_mutex_lock(&log_lock);
	last = log_seq;
	if (log_ring_len == 0) {
		pthread_mutex_unlock(&log_lock);
		return last;
	}
	first = last >= log_ring_len ? last - log_ring_len + 1 : 1;
	if (after + 1 > first)
		first = after + 1;
	for (seq = first; seq <= last; seq++) {
		struct log_slot *s = &log_ring[seq % log_ring_len];

		if (s->seq == seq)
			fn(seq, s->line, arg);
	}
	pthread_mutex_unlock(&log_lock);
	return last;
}
