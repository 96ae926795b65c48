/* What the proxy's own files share (the health checker reads the region).
 * The rest of keel sees the proxy only through core: its module, its status
 * provider "proxy" and the events its health checks raise. */
#ifndef KEEL_PROXY_PROXY_H
#define KEEL_PROXY_PROXY_H

#include <stdint.h>

#include "core/buf.h"

struct proxy_stats;

/* Master: the shared region of the current generation (NULL before the
 * first prepare). */
struct proxy_stats *proxy_stats_current(void);

#endif
