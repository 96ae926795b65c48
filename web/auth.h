/* Admin authentication: password hashes (PBKDF2-HMAC-SHA256, computed in a
 * helper process so the master's loop never waits on one), sessions
 * with CSRF tokens, login lockout, and the one-time setup token of a box
 * with no admin account yet. */
#ifndef KEEL_WEB_AUTH_H
#define KEEL_WEB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop-t.h"

#define AUTH_ITERATIONS	600000		/* OWASP's figure for PBKDF2-SHA256 */
#define AUTH_TOKEN_HEX	64		/* 256-bit tokens, in hex */
#define AUTH_IDLE_MS	(30 * 60 * 1000)
#define AUTH_MAX_AGE_MS	(12 * 3600 * 1000)

struct auth_session {
	char		 token[AUTH_TOKEN_HEX + 1];
	char		 csrf[AUTH_TOKEN_HEX + 1];
	char		 user[64];
	char		 ip[64];
	uint64_t	 created, last;	/* monotonic ms */
};

/* A hash to compute off the loop; done() runs on the loop when it is. */
struct auth_job {
	unsigned char	 salt[16];
	char		 password[256];
	uint32_t	 iterations;
	unsigned char	 hash[32];
	void		(*done)(struct auth_job *job);
	void		*arg;
	struct auth_job	*next;
};

int auth_start(struct core_loop *loop, char *err, size_t errlen);
void auth_stop(void);

/* Queues job; CORE_ERROR when the queue is full (too many at once). */
int auth_hash(struct auth_job *job);

/* Fills buf with 2*n hex digits of fresh randomness and a NUL. */
int auth_random_hex(char *buf, size_t n);

/* Constant-time comparison. */
bool auth_equal(const void *a, const void *b, size_t n);

struct auth_session *auth_session_new(const char *user, const char *ip);
/* The live session for a cookie value (idle and absolute limits applied),
 * or NULL. Touches it. */
struct auth_session *auth_session_find(const char *token);
void auth_session_end(struct auth_session *s);
/* Ends every session of user (after a password change or removal). */
void auth_sessions_end_user(const char *user, const struct auth_session *keep);

/* Lockout: the milliseconds a login for user from ip must still wait, or 0. */
uint64_t auth_locked(const char *user, const char *ip);
/* Records a failed login; returns the new lock time in ms (0: not locked). */
uint64_t auth_failed(const char *user, const char *ip);
void auth_succeeded(const char *user, const char *ip);

/* The setup token while there is no admin account; "" after setup. */
const char *auth_setup_token(void);
void auth_setup_begin(void);
void auth_setup_done(void);

#endif
