/* Status providers: each part publishes what it knows (its state as JSON,
 * its counters as Prometheus text) through callbacks registered here, and
 * the admin API and /metrics render whatever is registered, without
 * knowing the parts. Registered like modules (core/module.h), in a linker
 * section; called in the master. */
#ifndef KEEL_CORE_STATUS_H
#define KEEL_CORE_STATUS_H

#include <stdint.h>

#include "buf.h"

struct core_status_provider {
	const char	*name;		/* its key in GET /api/v1/status */
	int		 order;		/* lower comes first in /metrics */
	/* Appends one JSON value: an object, or null when there is nothing
	 * to say (the part is not configured). CORE_ERROR: out grew past
	 * its cap. */
	int		(*json)(struct core_buf *out);
	/* Appends Prometheus text. Optional. */
	int		(*metrics)(struct core_buf *out);
	/* Optional: the results of check name between wall times from and
	 * to, in at most points buckets, as a JSON array. CORE_ERROR when no
	 * results are kept. */
	int		(*history)(const char *name, uint64_t from, uint64_t to,
				   unsigned points, struct core_buf *out);
};

/* Registers a provider: CORE_STATUS_PROVIDER(proxy_status); at file scope. */
#define CORE_STATUS_PROVIDER(p)							\
	static const struct core_status_provider *const core_status_ptr_##p	\
	__attribute__((used, section("keel_status"), aligned(sizeof(void *)))) = &(p)

/* Appends ,"name":value for every provider with a json callback. */
int core_status_json(struct core_buf *out);
/* Appends every provider's metrics. */
int core_status_metrics(struct core_buf *out);
/* The provider called name, or NULL. */
const struct core_status_provider *core_status_find(const char *name);

#endif
