/* The config store; see store.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "conf.h"
#include "core.h"
#include "log.h"
#include "state.h"
#include "store.h"

struct core_store {
	sqlite3		*db;
};

static const char store_schema[] =
	"PRAGMA journal_mode = WAL;"
	"PRAGMA synchronous = FULL;"
	"CREATE TABLE IF NOT EXISTS revision ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT, created INTEGER NOT NULL,"
	" author TEXT NOT NULL, comment TEXT NOT NULL, yaml TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS user ("
	" name TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL,"
	" iterations INTEGER NOT NULL, created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS audit ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, user TEXT NOT NULL,"
	" ip TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL);";

static int store_fail(struct core_store *st, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "config store: %s: %s", what, sqlite3_errmsg(st->db));
	return CORE_ERROR;
}

/* The store holds the configuration's secrets: a database (and its WAL
 * files) made readable by others before keel set a umask is made 0600. */
static void store_private(const char *db)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };
	char path[600];
	struct stat sb;
	size_t i;

	for (i = 0; i < CORE_ARRAY_SIZE(suffix); i++) {
		snprintf(path, sizeof(path), "%s%s", db, suffix[i]);
		if (stat(path, &sb) == 0 && (sb.st_mode & 077) != 0 && chmod(path, 0600) == 0)
			core_log_warn("store", "%s was readable by other users (mode %03o); made it 600",
				      path, (unsigned)(sb.st_mode & 0777));
	}
}

struct core_store *core_store_open(const char *state_dir, char *err, size_t errlen)
{
	struct core_store *st;
	char path[512];

	if (core_state_dir(state_dir, err, errlen) != CORE_OK)
		return NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "config store: out of memory");
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/config.db", state_dir);
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(st->db, 2000) != SQLITE_OK ||
	    sqlite3_exec(st->db, store_schema, NULL, NULL, NULL) != SQLITE_OK) {
		store_fail(st, path, err, errlen);
		core_store_close(st);
		return NULL;
	}
	store_private(path);
	return st;
}

void core_store_close(struct core_store *st)
{
	if (st == NULL)
		return;
	sqlite3_close(st->db);
	free(st);
}

static sqlite3_stmt *prep(struct core_store *st, const char *sql)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return NULL;
	return s;
}

static void copy_text(char *dst, size_t len, const unsigned char *src)
{
	snprintf(dst, len, "%s", src ? (const char *)src : "");
}

/* ---- revisions ------------------------------------------------------------------------------- */

static int64_t store_add(struct core_store *st, const char *yaml, const char *author,
			 const char *comment, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	int64_t id;

	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		store_fail(st, "begin", err, errlen);
		return -1;
	}
	s = prep(st, "INSERT INTO revision (created, author, comment, yaml) VALUES (?1, ?2, ?3, ?4)");
	if (s == NULL)
		goto fail;
	sqlite3_bind_int64(s, 1, (int64_t)time(NULL));
	sqlite3_bind_text(s, 2, author, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, comment, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, yaml, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE) {
		sqlite3_finalize(s);
		goto fail;
	}
	sqlite3_finalize(s);
	id = sqlite3_last_insert_rowid(st->db);
	s = prep(st, "INSERT INTO meta (key, value) VALUES ('current', ?1) "
		     "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
	if (s == NULL)
		goto fail;
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) != SQLITE_DONE) {
		sqlite3_finalize(s);
		goto fail;
	}
	sqlite3_finalize(s);
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return id;
fail:
	store_fail(st, "saving a revision", err, errlen);
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int64_t core_store_apply(struct core_store *st, const char *yaml, const char *author,
			 const char *comment, char *err, size_t errlen)
{
	return store_add(st, yaml, author, comment, err, errlen);
}

int64_t core_store_rollback(struct core_store *st, int64_t id, const char *author,
			    char *err, size_t errlen)
{
	struct core_store_rev rev;
	char comment[64];
	int64_t nid;

	if (core_store_get(st, id, &rev, err, errlen) != CORE_OK)
		return -1;
	snprintf(comment, sizeof(comment), "rollback to revision %lld", (long long)id);
	nid = store_add(st, rev.yaml, author, comment, err, errlen);
	free(rev.yaml);
	return nid;
}

int64_t core_store_current_id(struct core_store *st)
{
	sqlite3_stmt *s = prep(st, "SELECT value FROM meta WHERE key = 'current'");
	int64_t id = 0;

	if (s != NULL && sqlite3_step(s) == SQLITE_ROW)
		id = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return id;
}

int core_store_get(struct core_store *st, int64_t id, struct core_store_rev *rev,
		   char *err, size_t errlen)
{
	sqlite3_stmt *s = prep(st, "SELECT id, created, author, comment, yaml FROM revision "
				   "WHERE id = ?1");
	int rc;

	memset(rev, 0, sizeof(*rev));
	if (s == NULL)
		return store_fail(st, "reading a revision", err, errlen);
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(s);
		if (rc == SQLITE_DONE) {
			snprintf(err, errlen, "no revision %lld", (long long)id);
			return CORE_AGAIN;
		}
		return store_fail(st, "reading a revision", err, errlen);
	}
	rev->id = sqlite3_column_int64(s, 0);
	rev->created = sqlite3_column_int64(s, 1);
	copy_text(rev->author, sizeof(rev->author), sqlite3_column_text(s, 2));
	copy_text(rev->comment, sizeof(rev->comment), sqlite3_column_text(s, 3));
	rev->yaml = strdup(sqlite3_column_text(s, 4) ? (const char *)sqlite3_column_text(s, 4) : "");
	sqlite3_finalize(s);
	if (rev->yaml == NULL) {
		snprintf(err, errlen, "out of memory");
		return CORE_ERROR;
	}
	return CORE_OK;
}

int core_store_current(struct core_store *st, struct core_store_rev *rev,
		       char *err, size_t errlen)
{
	int64_t id = core_store_current_id(st);

	if (id == 0) {
		memset(rev, 0, sizeof(*rev));
		return CORE_AGAIN;
	}
	return core_store_get(st, id, rev, err, errlen);
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static int json_printf(struct core_buf *out, const char *fmt, ...) CORE_PRINTF(2, 3);

static int json_printf(struct core_buf *out, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return CORE_ERROR;
	return core_buf_append(out, buf, (size_t)n);
}

int core_store_list_json(struct core_store *st, unsigned limit, struct core_buf *out)
{
	sqlite3_stmt *s = prep(st, "SELECT id, created, author, comment FROM revision "
				   "ORDER BY id DESC LIMIT ?1");
	int64_t cur = core_store_current_id(st);
	int rc = CORE_OK, n = 0;

	if (s == NULL)
		return CORE_ERROR;
	sqlite3_bind_int(s, 1, (int)limit);
	rc |= core_buf_append(out, "[", 1);
	while (sqlite3_step(s) == SQLITE_ROW) {
		rc |= json_printf(out, "%s{\"id\":%lld,\"created\":%lld,\"current\":%s,\"author\":",
				  n++ ? "," : "", (long long)sqlite3_column_int64(s, 0),
				  (long long)sqlite3_column_int64(s, 1),
				  sqlite3_column_int64(s, 0) == cur ? "true" : "false");
		rc |= core_json_str(out, (const char *)sqlite3_column_text(s, 2));
		rc |= core_buf_append(out, ",\"comment\":", 11);
		rc |= core_json_str(out, (const char *)sqlite3_column_text(s, 3));
		rc |= core_buf_append(out, "}", 1);
	}
	rc |= core_buf_append(out, "]", 1);
	sqlite3_finalize(s);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

/* ---- users ----------------------------------------------------------------------------------- */

int core_store_user_count(struct core_store *st)
{
	sqlite3_stmt *s = prep(st, "SELECT count(*) FROM user");
	int n = -1;

	if (s != NULL && sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return n;
}

int core_store_user_get(struct core_store *st, const char *name, struct core_store_user *u)
{
	sqlite3_stmt *s = prep(st, "SELECT name, salt, hash, iterations, created FROM user "
				   "WHERE name = ?1");
	int rc = CORE_AGAIN;

	memset(u, 0, sizeof(*u));
	if (s == NULL)
		return CORE_ERROR;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW &&
	    sqlite3_column_bytes(s, 1) == (int)sizeof(u->salt) &&
	    sqlite3_column_bytes(s, 2) == (int)sizeof(u->hash)) {
		copy_text(u->name, sizeof(u->name), sqlite3_column_text(s, 0));
		memcpy(u->salt, sqlite3_column_blob(s, 1), sizeof(u->salt));
		memcpy(u->hash, sqlite3_column_blob(s, 2), sizeof(u->hash));
		u->iterations = (uint32_t)sqlite3_column_int64(s, 3);
		u->created = sqlite3_column_int64(s, 4);
		rc = CORE_OK;
	}
	sqlite3_finalize(s);
	return rc;
}

int core_store_user_put(struct core_store *st, const struct core_store_user *u,
			char *err, size_t errlen)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO user (name, salt, hash, iterations, created) "
				   "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET "
				   "salt = excluded.salt, hash = excluded.hash, "
				   "iterations = excluded.iterations");
	int rc;

	if (s == NULL)
		return store_fail(st, "saving a user", err, errlen);
	sqlite3_bind_text(s, 1, u->name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, u->salt, sizeof(u->salt), SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, u->hash, sizeof(u->hash), SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, u->iterations);
	sqlite3_bind_int64(s, 5, (int64_t)time(NULL));
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? CORE_OK : store_fail(st, "saving a user", err, errlen);
}

int core_store_user_delete(struct core_store *st, const char *name)
{
	sqlite3_stmt *s = prep(st, "DELETE FROM user WHERE name = ?1");
	int rc;

	if (s == NULL)
		return CORE_ERROR;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE && sqlite3_changes(st->db) == 1 ? CORE_OK : CORE_AGAIN;
}

int core_store_users_json(struct core_store *st, struct core_buf *out)
{
	sqlite3_stmt *s = prep(st, "SELECT name, created FROM user ORDER BY name");
	int rc = CORE_OK, n = 0;

	if (s == NULL)
		return CORE_ERROR;
	rc |= core_buf_append(out, "[", 1);
	while (sqlite3_step(s) == SQLITE_ROW) {
		if (n++)
			rc |= core_buf_append(out, ",", 1);
		rc |= core_buf_append(out, "{\"name\":", 8);
		rc |= core_json_str(out, (const char *)sqlite3_column_text(s, 0));
		rc |= json_printf(out, ",\"created\":%lld}", (long long)sqlite3_column_int64(s, 1));
	}
	rc |= core_buf_append(out, "]", 1);
	sqlite3_finalize(s);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

/* ---- audit ----------------------------------------------------------------------------------- */

void core_store_audit(struct core_store *st, const char *user, const char *ip,
		      const char *action, const char *detail)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO audit (at, user, ip, action, detail) "
				   "VALUES (?1, ?2, ?3, ?4, ?5)");

	if (s == NULL)
		return;
	sqlite3_bind_int64(s, 1, (int64_t)time(NULL));
	sqlite3_bind_text(s, 2, user ? user : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, ip ? ip : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, detail ? detail : "", -1, SQLITE_STATIC);
	(void)sqlite3_step(s);
	sqlite3_finalize(s);
}

int core_store_audit_json(struct core_store *st, unsigned limit, struct core_buf *out)
{
	sqlite3_stmt *s = prep(st, "SELECT at, user, ip, action, detail FROM audit "
				   "ORDER BY id DESC LIMIT ?1");
	int rc = CORE_OK, n = 0, i;
	static const char *const keys[] = { ",\"user\":", ",\"ip\":", ",\"action\":",
					    ",\"detail\":" };

	if (s == NULL)
		return CORE_ERROR;
	sqlite3_bind_int(s, 1, (int)limit);
	rc |= core_buf_append(out, "[", 1);
	while (sqlite3_step(s) == SQLITE_ROW) {
		rc |= json_printf(out, "%s{\"at\":%lld", n++ ? "," : "",
				  (long long)sqlite3_column_int64(s, 0));
		for (i = 0; i < 4; i++) {
			rc |= core_buf_append(out, keys[i], strlen(keys[i]));
			rc |= core_json_str(out, (const char *)sqlite3_column_text(s, i + 1));
		}
		rc |= core_buf_append(out, "}", 1);
	}
	rc |= core_buf_append(out, "]", 1);
	sqlite3_finalize(s);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}
