/* The config store: state_dir/config.db (SQLite, WAL). It keeps every
 * configuration ever applied as a numbered revision with author, time and
 * comment, which one is current, the admin users, and the audit log.
 *
 * A revision and the switch to it commit in one transaction, so a crash or
 * power loss during an apply leaves the old revision or the new one. */
#ifndef KEEL_CORE_STORE_H
#define KEEL_CORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct core_store;

struct core_store_rev {
	int64_t		 id;
	int64_t		 created;	/* unix seconds */
	char		 author[64];
	char		 comment[256];
	char		*yaml;		/* malloc'ed; NULL in listings */
};

struct core_store_user {
	char		 name[64];
	unsigned char	 salt[16];
	unsigned char	 hash[32];
	uint32_t	 iterations;
	int64_t		 created;
};

struct core_store *core_store_open(const char *state_dir, char *err, size_t errlen);
void core_store_close(struct core_store *st);

/* Adds a revision and makes it current, in one transaction: its id, or -1. */
int64_t core_store_apply(struct core_store *st, const char *yaml, const char *author,
			 const char *comment, char *err, size_t errlen);

/* Makes an existing revision current again (a rollback is an apply of an
 * old text, recorded as a new revision): the new id, or -1. */
int64_t core_store_rollback(struct core_store *st, int64_t id, const char *author,
			    char *err, size_t errlen);

/* The current revision (yaml filled; free it), or CORE_AGAIN when there is
 * none yet, CORE_ERROR on a failure. */
int core_store_current(struct core_store *st, struct core_store_rev *rev,
		       char *err, size_t errlen);
int core_store_get(struct core_store *st, int64_t id, struct core_store_rev *rev,
		   char *err, size_t errlen);
int64_t core_store_current_id(struct core_store *st);

/* Revisions as a JSON array, newest first, at most limit. */
int core_store_list_json(struct core_store *st, unsigned limit, struct core_buf *out);

int core_store_user_count(struct core_store *st);
int core_store_user_get(struct core_store *st, const char *name, struct core_store_user *u);
int core_store_user_put(struct core_store *st, const struct core_store_user *u,
			char *err, size_t errlen);
int core_store_user_delete(struct core_store *st, const char *name);
int core_store_users_json(struct core_store *st, struct core_buf *out);

/* The audit log: who did what from where. */
void core_store_audit(struct core_store *st, const char *user, const char *ip,
		      const char *action, const char *detail);
int core_store_audit_json(struct core_store *st, unsigned limit, struct core_buf *out);

#endif
