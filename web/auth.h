/* Admin authentication: password hashes (PBKDF2-HMAC-SHA256, computed in a
 * helper process so the master's loop never waits on one), sessions with
 * CSRF tokens (shared between gateways through core's key-value table,
 * each record signed with a key the shared store never sees), login
 * lockout, and the one-time setup token of a box with no admin account. */
#ifndef KEEL_WEB_AUTH_H
#define KEEL_WEB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop-t.h"
#include "web-t.h"

/* Starts the hashing process and loads (or makes, 0600) the session key:
 * key_file, or state_dir/session.key when key_file is empty. */
int web_auth_start(struct core_loop *loop, const char *state_dir, const char *key_file,
		   char *err, size_t errlen);
void web_auth_stop(void);

/* Queues job; CORE_ERROR when the queue is full (too many at once). */
int web_auth_hash(struct web_auth_job *job);

/* Fills buf with 2*n hex digits of fresh randomness and a NUL. */
int web_auth_random_hex(char *buf, size_t n);

/* Constant-time comparison. */
bool web_auth_equal(const void *a, const void *b, size_t n);

struct web_session *web_auth_session_new(const char *user, const char *ip);
/* The live session for a cookie value (idle and absolute limits applied),
 * or NULL. Touches it. A session another gateway made is adopted only when
 * its record carries a valid signature and its user exists here. */
struct web_session *web_auth_session_find(const char *token);
void web_auth_session_end(struct web_session *s);
/* Ends every session of user (after a password change or removal). */
void web_auth_sessions_end_user(const char *user, const struct web_session *keep);

/*
 * Lockout. A login attempt for user from ip begins before its hash is
 * computed and counts as a failure at once: CORE_OK to go on, CORE_AGAIN
 * when an attempt for the same user and address is still being checked,
 * CORE_ERROR when locked (*wait_ms to wait). A user's lock does not apply
 * to an address that logged in as that user before; an address's does.
 */
int web_auth_login_begin(const char *user, const char *ip, uint64_t *wait_ms);
/* The attempt's outcome; returns the lock now in force in ms (0: none). */
uint64_t web_auth_login_end(const char *user, const char *ip, bool ok);

/* The setup token while there is no admin account; "" after setup. */
const char *web_auth_setup_token(void);
void web_auth_setup_begin(void);
void web_auth_setup_done(void);

#endif
