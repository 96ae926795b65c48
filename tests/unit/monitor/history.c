/* Tests of monitor/history.c: results, aggregates, retention and the size cap,
 * on a real SQLite file. */
#include <stdio.h>
#include <unistd.h>

#include "runner.h"
#include "monitor/history.c"

static char path[64];

static struct monitor_history *open_fresh(int64_t cap)
{
	char err[256];
	struct monitor_history *h;

	snprintf(path, sizeof(path), "/tmp/keel-history-%d.db", (int)getpid());
	unlink(path);
	h = monitor_history_open(path, cap, err, sizeof(err));
	if (h == NULL)
		test_fail(__FILE__, __LINE__, "open: %s", err);
	return h;
}

static long count(struct monitor_history *h, const char *sql)
{
	sqlite3_stmt *st;
	long n = -1;

	CHECK(sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) == SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void cleanup(struct monitor_history *h)
{
	char wal[80];

	monitor_history_close(h);
	unlink(path);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	unlink(wal);
	snprintf(wal, sizeof(wal), "%s-shm", path);
	unlink(wal);
}

TEST(results_land_in_raw_minute_and_hour_rows)
{
	struct monitor_history *h = open_fresh(0);
	uint64_t t = 1795329900000ULL;		/* on a minute boundary */
	char err[256];

	CHECK(monitor_history_add(h, "route:/a/", t, true, 5, 200, NULL, err, sizeof(err)) == CORE_OK);
	CHECK(monitor_history_add(h, "route:/a/", t + 1000, false, 9, 0, "timed out", err, sizeof(err)) == CORE_OK);
	CHECK(monitor_history_add(h, "route:/a/", t + 61000, true, 3, 200, NULL, err, sizeof(err)) == CORE_OK);
	CHECK_INT(count(h, "SELECT count(*) FROM raw"), ==, 3);
	CHECK_INT(count(h, "SELECT count(*) FROM minute"), ==, 2);
	CHECK_INT(count(h, "SELECT n FROM minute ORDER BY ts LIMIT 1"), ==, 2);
	CHECK_INT(count(h, "SELECT fails FROM minute ORDER BY ts LIMIT 1"), ==, 1);
	CHECK_INT(count(h, "SELECT ms_max FROM minute ORDER BY ts LIMIT 1"), ==, 9);
	CHECK_INT(count(h, "SELECT n FROM hour"), ==, 3);
	CHECK_INT(count(h, "SELECT count(*) FROM raw WHERE error = 'timed out'"), ==, 1);
	cleanup(h);
}

TEST(retention_drops_raw_after_48h_minutes_after_14d_hours_after_400d)
{
	struct monitor_history *h = open_fresh(0);
	uint64_t now = 1795329900000ULL, day = 24ULL * 3600 * 1000;
	char err[256];

	monitor_history_add(h, "m", now - 3 * day, true, 1, 200, NULL, err, sizeof(err));
	monitor_history_add(h, "m", now - 20 * day, true, 1, 200, NULL, err, sizeof(err));
	monitor_history_add(h, "m", now - 500 * day, true, 1, 200, NULL, err, sizeof(err));
	monitor_history_add(h, "m", now - 1000, true, 1, 200, NULL, err, sizeof(err));
	CHECK(monitor_history_prune(h, now, err, sizeof(err)) == CORE_OK);
	CHECK_INT(count(h, "SELECT count(*) FROM raw"), ==, 1);
	CHECK_INT(count(h, "SELECT count(*) FROM minute"), ==, 2);	/* now, -3d */
	CHECK_INT(count(h, "SELECT count(*) FROM hour"), ==, 3);	/* all but -500d */
	cleanup(h);
}

TEST(size_cap_drops_the_oldest_rows)
{
	struct monitor_history *h = open_fresh(96 * 1024);
	uint64_t t = 1795329900000ULL;
	char err[256];
	long before;
	int i;

	for (i = 0; i < 20000; i++)
		CHECK(monitor_history_add(h, "a-monitor-with-a-long-name", t + (uint64_t)i * 10, i % 7 != 0,
					(uint64_t)i % 100, 200, i % 7 ? NULL : "connect: refused",
					err, sizeof(err)) == CORE_OK);
	before = count(h, "SELECT count(*) FROM raw");
	CHECK(monitor_history_size(h) > 96 * 1024);
	CHECK(monitor_history_prune(h, t + 200000, err, sizeof(err)) == CORE_OK);
	CHECK(monitor_history_size(h) <= 96 * 1024);
	CHECK(count(h, "SELECT count(*) FROM raw") < before);
	/* The newest survive. */
	CHECK_INT(count(h, "SELECT max(ts) FROM raw"), ==, (long)(t + 199990));
	cleanup(h);
}
