/* Monitor results kept in SQLite for the UI's uptime and latency charts:
 * raw rows for 48 hours, per-minute rows for 14 days, per-hour rows for
 * 400 days, and the file held under a size cap by dropping the oldest. */
#ifndef KEEL_MONITOR_HISTORY_H
#define KEEL_MONITOR_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define PROXY_HISTORY_RAW_MS	(48ULL * 3600 * 1000)
#define PROXY_HISTORY_MINUTE_MS	(14ULL * 24 * 3600 * 1000)
#define PROXY_HISTORY_HOUR_MS	(400ULL * 24 * 3600 * 1000)

struct monitor_history;

/* Opens (creating) the database at path. NULL with the reason in err. */
struct monitor_history *monitor_history_open(const char *path, int64_t max_bytes,
					 char *err, size_t errlen);
void monitor_history_close(struct monitor_history *h);

/* Records one result (wall_ms: its time). CORE_OK, or CORE_ERROR with the
 * reason in err (a full disk, say): the caller reports it and goes on. */
int monitor_history_add(struct monitor_history *h, const char *monitor, uint64_t wall_ms,
		      bool ok, uint64_t ms, unsigned status, const char *error,
		      char *err, size_t errlen);

/* Appends to out a JSON array of [ts, probes, failed, avg_ms, max_ms] for
 * monitor between wall times from and to, in about `points` buckets: from
 * the raw rows for spans within 2 hours, per-minute rows within 14 days,
 * per-hour rows beyond. */
int monitor_history_json(struct monitor_history *h, const char *monitor, uint64_t from,
		       uint64_t to, unsigned points, struct core_buf *out);

/* Applies the retention periods and the size cap. */
int monitor_history_prune(struct monitor_history *h, uint64_t wall_ms, char *err, size_t errlen);

/* The database's size in bytes (pages in use). */
int64_t monitor_history_size(struct monitor_history *h);

#endif
