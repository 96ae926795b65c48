/* Synthetic monitors and alerts, as the rest of the proxy sees them. */
#ifndef KEEL_PROXY_MONITOR_H
#define KEEL_PROXY_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

/* Master: a health check moved a server DOWN or UP; an incident opens or
 * closes (and is notified). */
void proxy_monitor_health(const char *upstream, const char *server, bool down, const char *why);
/* The same for anything else keel watches ("redis master", say). */
void proxy_monitor_incident(const char *subject, bool down, const char *why);

/* Master: appends the monitors' and alerts' Prometheus text. */
int proxy_monitor_metrics(struct core_buf *out);

/* Master, for the admin API: the monitors' state and the latest
 * notifications as a JSON object. */
int proxy_monitor_json(struct core_buf *out);

/* A monitor's results between wall times from and to (see history.h);
 * CORE_ERROR when no results are kept. */
int proxy_monitor_history(const char *name, uint64_t from, uint64_t to, unsigned points,
			  struct core_buf *out);

/* Sends a test notification to every channel; CORE_ERROR if there is none. */
int proxy_monitor_test(const char *who);

#endif
