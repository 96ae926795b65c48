/* Synthetic monitors and alerts, as the rest of the proxy sees them. */
#ifndef KEEL_PROXY_MONITOR_H
#define KEEL_PROXY_MONITOR_H

#include <stdbool.h>

#include "core/buf.h"

/* Master: a health check moved a server DOWN or UP; an incident opens or
 * closes (and is notified). */
void proxy_monitor_health(const char *upstream, const char *server, bool down, const char *why);

/* Master: appends the monitors' and alerts' Prometheus text. */
int proxy_monitor_metrics(struct core_buf *out);

#endif
