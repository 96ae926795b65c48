/* Monitor results in SQLite; see history.h. Writes are a few rows per
 * probe, on the master's loop; WAL and synchronous=NORMAL keep them cheap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/core.h"
#include "history.h"

struct monitor_history {
	sqlite3		*db;
	int64_t		 max_bytes;
	sqlite3_stmt	*add_raw;
	sqlite3_stmt	*add_minute;
	sqlite3_stmt	*add_hour;
};

static const char schema[] =
	"PRAGMA auto_vacuum = INCREMENTAL;"
	"PRAGMA journal_mode = WAL;"
	"PRAGMA synchronous = NORMAL;"
	"CREATE TABLE IF NOT EXISTS raw ("
	" ts INTEGER NOT NULL, monitor TEXT NOT NULL, ok INTEGER NOT NULL,"
	" ms INTEGER NOT NULL, status INTEGER NOT NULL, error TEXT);"
	"CREATE INDEX IF NOT EXISTS raw_ts ON raw(ts);"
	"CREATE TABLE IF NOT EXISTS minute ("
	" ts INTEGER NOT NULL, monitor TEXT NOT NULL, n INTEGER NOT NULL,"
	" fails INTEGER NOT NULL, ms_sum INTEGER NOT NULL, ms_max INTEGER NOT NULL,"
	" PRIMARY KEY (monitor, ts)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS minute_ts ON minute(ts);"
	"CREATE TABLE IF NOT EXISTS hour ("
	" ts INTEGER NOT NULL, monitor TEXT NOT NULL, n INTEGER NOT NULL,"
	" fails INTEGER NOT NULL, ms_sum INTEGER NOT NULL, ms_max INTEGER NOT NULL,"
	" PRIMARY KEY (monitor, ts)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS hour_ts ON hour(ts);";

#define UPSERT(table)							\
	"INSERT INTO " table " VALUES (?1, ?2, 1, ?3, ?4, ?4) "		\
	"ON CONFLICT (monitor, ts) DO UPDATE SET n = n + 1, "		\
	"fails = fails + excluded.fails, ms_sum = ms_sum + excluded.ms_sum, " \
	"ms_max = max(ms_max, excluded.ms_max)"

static int history_fail(struct monitor_history *h, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s", what, sqlite3_errmsg(h->db));
	return CORE_ERROR;
}

void monitor_history_close(struct monitor_history *h)
{
	if (h == NULL)
		return;
	sqlite3_finalize(h->add_raw);
	sqlite3_finalize(h->add_minute);
	sqlite3_finalize(h->add_hour);
	sqlite3_close(h->db);
	free(h);
}

struct monitor_history *monitor_history_open(const char *path, int64_t max_bytes,
					 char *err, size_t errlen)
{
	struct monitor_history *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->max_bytes = max_bytes;
	if (sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, h->db ? sqlite3_errmsg(h->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(h->db, 100);
	if (sqlite3_exec(h->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		history_fail(h, path, err, errlen);
		goto fail;
	}
	if (sqlite3_prepare_v2(h->db, "INSERT INTO raw VALUES (?1, ?2, ?3, ?4, ?5, ?6)", -1,
			       &h->add_raw, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h->db, UPSERT("minute"), -1, &h->add_minute, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h->db, UPSERT("hour"), -1, &h->add_hour, NULL) != SQLITE_OK) {
		history_fail(h, path, err, errlen);
		goto fail;
	}
	return h;
fail:
	monitor_history_close(h);
	return NULL;
}

static int step(struct monitor_history *h, sqlite3_stmt *st, const char *what,
		char *err, size_t errlen)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return history_fail(h, what, err, errlen);
	return CORE_OK;
}

static int add_aggregate(struct monitor_history *h, sqlite3_stmt *st, uint64_t bucket,
			 const char *monitor, bool ok, uint64_t ms, char *err, size_t errlen)
{
	sqlite3_bind_int64(st, 1, (sqlite3_int64)bucket);
	sqlite3_bind_text(st, 2, monitor, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, ok ? 0 : 1);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)ms);
	return step(h, st, "recording an aggregate", err, errlen);
}

int monitor_history_add(struct monitor_history *h, const char *monitor, uint64_t wall_ms,
		      bool ok, uint64_t ms, unsigned status, const char *error,
		      char *err, size_t errlen)
{
	int rc;

	if (sqlite3_exec(h->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return history_fail(h, "beginning a write", err, errlen);
	sqlite3_bind_int64(h->add_raw, 1, (sqlite3_int64)wall_ms);
	sqlite3_bind_text(h->add_raw, 2, monitor, -1, SQLITE_STATIC);
	sqlite3_bind_int(h->add_raw, 3, ok);
	sqlite3_bind_int64(h->add_raw, 4, (sqlite3_int64)ms);
	sqlite3_bind_int(h->add_raw, 5, (int)status);
	if (error != NULL)
		sqlite3_bind_text(h->add_raw, 6, error, -1, SQLITE_STATIC);
	rc = step(h, h->add_raw, "recording a result", err, errlen);
	if (rc == CORE_OK)
		rc = add_aggregate(h, h->add_minute, wall_ms / 60000 * 60000, monitor, ok, ms,
				   err, errlen);
	if (rc == CORE_OK)
		rc = add_aggregate(h, h->add_hour, wall_ms / 3600000 * 3600000, monitor, ok, ms,
				   err, errlen);
	if (rc == CORE_OK && sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = history_fail(h, "committing a result", err, errlen);
	if (rc != CORE_OK)
		sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int monitor_history_json(struct monitor_history *h, const char *monitor, uint64_t from,
		       uint64_t to, unsigned points, struct core_buf *out)
{
	static const char raw[] =
		"SELECT ts / ?3 * ?3 AS t, count(*), sum(ok = 0), sum(ms), max(ms) FROM raw "
		"WHERE monitor = ?1 AND ts >= ?2 AND ts < ?4 GROUP BY t ORDER BY t";
	static const char agg[] =
		"SELECT ts / ?3 * ?3 AS t, sum(n), sum(fails), sum(ms_sum), max(ms_max) FROM %s "
		"WHERE monitor = ?1 AND ts >= ?2 AND ts < ?4 GROUP BY t ORDER BY t";
	uint64_t span = to > from ? to - from : 1, unit, step;
	sqlite3_stmt *st;
	char sql[256], row[128];
	int rc = CORE_OK, n;
	bool first = true;

	if (span <= 2 * 3600 * 1000ULL) {
		unit = 1000;
		snprintf(sql, sizeof(sql), "%s", raw);
	} else {
		unit = span <= PROXY_HISTORY_MINUTE_MS ? 60000 : 3600000;
		snprintf(sql, sizeof(sql), agg, unit == 60000 ? "minute" : "hour");
	}
	step = span / (points ? points : 1);
	step = step < unit ? unit : step / unit * unit;
	if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK)
		return CORE_ERROR;
	sqlite3_bind_text(st, 1, monitor, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)from);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)step);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)to);
	rc |= core_buf_append(out, "[", 1);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t probes = sqlite3_column_int64(st, 1);

		n = snprintf(row, sizeof(row), "%s[%lld,%lld,%lld,%lld,%lld]", first ? "" : ",",
			     (long long)sqlite3_column_int64(st, 0), (long long)probes,
			     (long long)sqlite3_column_int64(st, 2),
			     (long long)(probes ? sqlite3_column_int64(st, 3) / probes : 0),
			     (long long)sqlite3_column_int64(st, 4));
		rc |= core_buf_append(out, row, (size_t)n);
		first = false;
	}
	sqlite3_finalize(st);
	rc |= core_buf_append(out, "]", 1);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

int64_t monitor_history_size(struct monitor_history *h)
{
	sqlite3_stmt *st;
	int64_t pages = 0, size = 0, freel = 0;

	if (sqlite3_prepare_v2(h->db, "SELECT page_count, page_size, freelist_count "
			       "FROM pragma_page_count, pragma_page_size, pragma_freelist_count",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		pages = sqlite3_column_int64(st, 0);
		size = sqlite3_column_int64(st, 1);
		freel = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	return (pages - freel) * size;
}

static int exec_at(struct monitor_history *h, const char *sql, int64_t value,
		   char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK)
		return history_fail(h, "pruning", err, errlen);
	sqlite3_bind_int64(st, 1, value);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return history_fail(h, "pruning", err, errlen);
	return CORE_OK;
}

int monitor_history_prune(struct monitor_history *h, uint64_t wall_ms, char *err, size_t errlen)
{
	static const char *const oldest[] = {
		/* Over the cap: drop the oldest tenth, raw rows first. */
		"DELETE FROM raw WHERE rowid IN (SELECT rowid FROM raw ORDER BY ts "
		"LIMIT max(1, (SELECT count(*) FROM raw) / 10))",
		"DELETE FROM minute WHERE (monitor, ts) IN (SELECT monitor, ts FROM minute "
		"ORDER BY ts LIMIT max(1, (SELECT count(*) FROM minute) / 10))",
		"DELETE FROM hour WHERE (monitor, ts) IN (SELECT monitor, ts FROM hour "
		"ORDER BY ts LIMIT max(1, (SELECT count(*) FROM hour) / 10))",
	};
	unsigned i, rounds;

	if (exec_at(h, "DELETE FROM raw WHERE ts < ?1",
		    (int64_t)(wall_ms - PROXY_HISTORY_RAW_MS), err, errlen) != CORE_OK ||
	    exec_at(h, "DELETE FROM minute WHERE ts < ?1",
		    (int64_t)(wall_ms - PROXY_HISTORY_MINUTE_MS), err, errlen) != CORE_OK ||
	    exec_at(h, "DELETE FROM hour WHERE ts < ?1",
		    (int64_t)(wall_ms - PROXY_HISTORY_HOUR_MS), err, errlen) != CORE_OK)
		return CORE_ERROR;
	for (rounds = 0, i = 0; h->max_bytes > 0 && monitor_history_size(h) > h->max_bytes &&
	     rounds < 60; rounds++) {
		sqlite3_stmt *st;
		int changed;

		if (sqlite3_exec(h->db, oldest[i], NULL, NULL, NULL) != SQLITE_OK)
			return history_fail(h, "pruning to the size cap", err, errlen);
		changed = sqlite3_changes(h->db);
		if (changed == 0 && ++i == CORE_ARRAY_SIZE(oldest))
			break;
		if (sqlite3_prepare_v2(h->db, "PRAGMA incremental_vacuum", -1, &st, NULL) == SQLITE_OK) {
			while (sqlite3_step(st) == SQLITE_ROW)
				;
			sqlite3_finalize(st);
		}
	}
	return CORE_OK;
}
