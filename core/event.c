/* Raised conditions and their sinks; see event.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "log.h"

static struct {
	struct core_event raised[CORE_EVENT_MAX];	/* oldest first */
	unsigned	  n;
	struct core_list  sinks;
	bool		  init;
} ev;

static void event_init(void)
{
	if (!ev.init) {
		core_list_init(&ev.sinks);
		ev.init = true;
	}
}

/* Subjects and sources are kept cut to their fields' size: compare so. */
static int event_find(const char *source, const char *subject)
{
	unsigned i;

	for (i = 0; i < ev.n; i++)
		if (!strncmp(ev.raised[i].source, source, sizeof(ev.raised[i].source) - 1) &&
		    !strncmp(ev.raised[i].subject, subject, sizeof(ev.raised[i].subject) - 1))
			return (int)i;
	return -1;
}

static void event_tell(const struct core_event *e)
{
	struct core_list *it, *tmp;

	event_init();
	core_list_each(it, tmp, &ev.sinks) {
		struct core_event_sink *s = core_list_elem(it, struct core_event_sink, link);

		s->notify(e, s->arg);
	}
}

static int event_set(bool raise, const char *source, const char *subject, const char *fmt,
		     va_list ap)
{
	struct core_event e;
	int i = event_find(source, subject);

	if (!raise && i < 0)
		return CORE_OK;
	memset(&e, 0, sizeof(e));
	snprintf(e.source, sizeof(e.source), "%s", source);
	snprintf(e.subject, sizeof(e.subject), "%s", subject);
	vsnprintf(e.reason, sizeof(e.reason), fmt, ap);
	e.raised = raise;
	if (raise) {
		if (i >= 0) {		/* still raised: a fresh reason, no news */
			memcpy(ev.raised[i].reason, e.reason, sizeof(e.reason));
			return CORE_OK;
		}
		if (ev.n == CORE_EVENT_MAX) {
			core_log_warn("event", "%s: %s: %s (not kept: %u conditions are raised)",
				      source, subject, e.reason, ev.n);
			return CORE_ERROR;
		}
		e.since = core_clock_wall_ms();
		ev.raised[ev.n++] = e;
	} else {
		e.since = ev.raised[i].since;
		memmove(&ev.raised[i], &ev.raised[i + 1], (ev.n - (unsigned)i - 1) * sizeof(e));
		ev.n--;
	}
	event_tell(&e);
	return CORE_OK;
}

int core_event_raise(const char *source, const char *subject, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = event_set(true, source, subject, fmt, ap);
	va_end(ap);
	return rc;
}

int core_event_clear(const char *source, const char *subject, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = event_set(false, source, subject, fmt, ap);
	va_end(ap);
	return rc;
}

bool core_event_is_raised(const char *source, const char *subject)
{
	return event_find(source, subject) >= 0;
}

void core_event_each(void (*fn)(const struct core_event *e, void *arg), void *arg)
{
	unsigned i;

	for (i = 0; i < ev.n; i++)
		fn(&ev.raised[i], arg);
}

void core_event_sink_add(struct core_event_sink *s)
{
	unsigned i;

	event_init();
	core_list_add_tail(&ev.sinks, &s->link);
	for (i = 0; i < ev.n; i++)
		s->notify(&ev.raised[i], s->arg);
}

void core_event_sink_del(struct core_event_sink *s)
{
	core_list_del(&s->link);
}

int core_event_test(const char *who, char *err, size_t errlen)
{
	struct core_list *it, *tmp;
	int sent = 0;

	event_init();
	snprintf(err, errlen, "no alert channel is configured: add a webhook or e-mail recipients");
	core_list_each(it, tmp, &ev.sinks) {
		struct core_event_sink *s = core_list_elem(it, struct core_event_sink, link);

		if (s->test != NULL && s->test(who, err, errlen, s->arg) == CORE_OK)
			sent++;
	}
	return sent > 0 ? CORE_OK : CORE_ERROR;
}

void core_event_reset(void)
{
	struct core_list *it, *tmp;

	event_init();
	core_list_each(it, tmp, &ev.sinks)
		core_list_del(it);
	ev.n = 0;
}
