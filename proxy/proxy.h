/* The HTTP proxy, as the rest of keel sees it. */
#ifndef KEEL_PROXY_PROXY_H
#define KEEL_PROXY_PROXY_H

#include <stdint.h>

#include "core/buf.h"

/* Master: appends the Prometheus text of the current generation's
 * counters (routes, servers, connections) to out. */
int proxy_metrics_write(struct core_buf *out, uint64_t now);

struct proxy_stats;

/* Master: the shared region of the current generation (NULL before the
 * first prepare). */
struct proxy_stats *proxy_stats_current(void);

#endif
