/* Conditions that parts raise and clear, and the sinks that hear of them.
 * A part says what went wrong and when it is right again ("server
 * app_a/10.0.0.2:8101" is DOWN because "connect refused"; "redis master"
 * is back); it never knows who listens. The monitoring part is a sink: it
 * turns a raise into an alert and a clear into a recovery notice, keeps
 * them in its history and sends the notifications.
 *
 * Core keeps the conditions raised now, so a raise of one already raised
 * only updates its reason, a clear of one not raised is nothing, a sink
 * added later hears of every condition still raised, and the admin API can
 * list them. Master process only: workers report through shared memory. */
#ifndef KEEL_CORE_EVENT_H
#define KEEL_CORE_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "list.h"

#define CORE_EVENT_MAX		256	/* conditions raised at once */

struct core_event {
	char		 source[16];	/* the part that raised it: "proxy", "redis" */
	char		 subject[160];	/* what: "server app_a/10.0.0.2:8101" */
	char		 reason[240];	/* why it was raised or cleared */
	bool		 raised;	/* false: this is the clear */
	uint64_t	 since;		/* wall ms it was raised */
};

struct core_event_sink {
	const char	*name;
	/* A condition was raised or cleared. Called from the raising part's
	 * code: a sink copies what it keeps and does not call back into the
	 * raising part. */
	void		(*notify)(const struct core_event *ev, void *arg);
	/* Optional: sends a test notification on behalf of who. CORE_ERROR,
	 * with the reason in err, when it has nowhere to send it. */
	int		(*test)(const char *who, char *err, size_t errlen, void *arg);
	void		*arg;
	struct core_list link;		/* private */
};

/* Raises or clears source's condition subject; reason is printf-like.
 * CORE_ERROR only when CORE_EVENT_MAX conditions are already raised (the
 * raise is then logged and dropped). */
int core_event_raise(const char *source, const char *subject, const char *fmt, ...)
	CORE_PRINTF(3, 4);
int core_event_clear(const char *source, const char *subject, const char *fmt, ...)
	CORE_PRINTF(3, 4);
bool core_event_is_raised(const char *source, const char *subject);

/* Calls fn for every condition raised now, oldest first. */
void core_event_each(void (*fn)(const struct core_event *ev, void *arg), void *arg);

/* A sink hears of every condition still raised when it is added. */
void core_event_sink_add(struct core_event_sink *s);
void core_event_sink_del(struct core_event_sink *s);

/* Asks every sink with a test callback to send a test notification.
 * CORE_ERROR with the reason in err when none could. */
int core_event_test(const char *who, char *err, size_t errlen);

/* Forgets every condition and sink (at shutdown, and between tests). */
void core_event_reset(void);

#endif
