/* Accounts and sessions: first-boot setup, login and logout, the users
 * list, adding and removing users, changing one's own password. Password
 * hashes are computed off the loop (auth.c); a handler that needs one
 * suspends its request and runs again when the hash is in. */
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>

#include "api.h"
#include "auth.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/store.h"
#include "core/tls.h"

/* Steps of a handler that hashes (r->step). */
enum {
	STEP_NONE = 0,
	STEP_LOGIN,		/* a login's password: its attempt is in flight */
	STEP_CURRENT,		/* the current password, before a change */
	STEP_NEW,		/* a new password */
};

/* ---- hashing ------------------------------------------------------------------------------- */

static void job_done(struct web_auth_job *job)
{
	struct web_req *r = job->arg;

	r->state = WEB_REQ_HASHED;
	web_api_resume(r);
}

/* Starts hashing password with salt off the loop and suspends the request. */
static enum MHD_Result hash_start(struct web_req *r, int step, const char *password,
				  const unsigned char *salt, uint32_t iterations)
{
	memset(&r->job, 0, sizeof(r->job));
	memcpy(r->job.salt, salt, sizeof(r->job.salt));
	snprintf(r->job.password, sizeof(r->job.password), "%s", password);
	r->job.iterations = iterations;
	r->job.done = job_done;
	r->job.arg = r;
	if (web_auth_hash(&r->job) != CORE_OK)
		return web_api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
				     "too many logins at once; try again");
	r->step = step;
	r->state = WEB_REQ_HASHING;
	web_api_suspend(r);
	return MHD_YES;
}

static const unsigned char *dummy_salt(void)
{
	static unsigned char salt[16];
	static bool made;

	if (!made) {
		(void)core_tls_random(salt, sizeof(salt));
		made = true;
	}
	return salt;
}

/* Starts hashing a new password for user with a fresh salt; the handler
 * stores it when the hash is done (store_user). */
static enum MHD_Result hash_new_password(struct web_req *r, const char *user,
					 const char *password)
{
	unsigned char salt[16];

	if (strlen(password) < WEB_API_MIN_PASSWORD || strlen(password) > 255)
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, "password",
				     "the password must be %d..255 characters", WEB_API_MIN_PASSWORD);
	snprintf(r->user, sizeof(r->user), "%s", user);
	if (core_tls_random(salt, sizeof(salt)) != CORE_OK)
		return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "no randomness");
	return hash_start(r, STEP_NEW, password, salt, WEB_AUTH_ITERATIONS);
}

static bool user_name_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '-' || s[n] == '_' || s[n] == '.'))
			return false;
	return n >= 1 && n <= 63;
}

/* Stores the user whose hash just finished. */
static int store_user(struct web_req *r, char *err, size_t errlen)
{
	struct core_store_user u;

	memset(&u, 0, sizeof(u));
	snprintf(u.name, sizeof(u.name), "%s", r->user);
	memcpy(u.salt, r->job.salt, sizeof(u.salt));
	memcpy(u.hash, r->job.hash, sizeof(u.hash));
	u.iterations = r->job.iterations;
	return core_store_user_put(web_api_store(), &u, err, errlen);
}

/* ---- sessions ------------------------------------------------------------------------------ */

static void session_cookie(char *buf, size_t len, const struct web_session *s)
{
	bool https = web_api_https();

	if (s == NULL)
		snprintf(buf, len, "%s=; Path=/; HttpOnly;%s SameSite=Strict; Max-Age=0",
			 WEB_API_COOKIE, https ? " Secure;" : "");
	else
		snprintf(buf, len, "%s=%s; Path=/; HttpOnly;%s SameSite=Strict", WEB_API_COOKIE,
			 s->token, https ? " Secure;" : "");
}

static enum MHD_Result reply_session(struct web_req *r, unsigned status,
				     const struct web_session *s, bool set_cookie)
{
	char cookie[256];
	struct core_buf b;
	enum MHD_Result rc;

	core_buf_init(&b, 4096);
	web_api_put(&b, "{\"user\":");
	core_json_str(&b, s->user);
	web_api_put(&b, ",\"csrf\":");
	core_json_str(&b, s->csrf);
	core_buf_printf(&b, ",\"idle_timeout_s\":%d}\n", WEB_AUTH_IDLE_MS / 1000);
	session_cookie(cookie, sizeof(cookie), s);
	rc = web_api_reply_json(r, status, &b, set_cookie ? cookie : NULL);
	core_buf_free(&b);
	return rc;
}

enum MHD_Result web_api_session(struct web_req *r)
{
	return reply_session(r, MHD_HTTP_OK, r->session, false);
}

enum MHD_Result web_api_logout(struct web_req *r)
{
	char cookie[256];

	web_api_audit(r, r->session->user, "logout", "");
	core_log_info("web", "%s logged out", r->session->user);
	web_auth_session_end(r->session);
	r->session = NULL;
	session_cookie(cookie, sizeof(cookie), NULL);
	return web_api_reply(r, MHD_HTTP_OK, "application/json", "{}\n", 3, cookie);
}

/* ---- login --------------------------------------------------------------------------------- */

static enum MHD_Result reply_locked(struct web_req *r, uint64_t wait, const char *msg)
{
	char retry[32], body[160];
	struct MHD_Response *resp;
	enum MHD_Result rc;

	snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", msg);
	snprintf(retry, sizeof(retry), "%llu", (unsigned long long)(wait + 999) / 1000);
	resp = MHD_create_response_from_buffer_copy(strlen(body), body);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "Retry-After", retry);
	web_api_security_headers(resp, web_api_https());
	rc = MHD_queue_response(r->conn, MHD_HTTP_TOO_MANY_REQUESTS, resp);
	MHD_destroy_response(resp);
	r->state = WEB_REQ_ANSWERED;
	return rc;
}

/* Counts the attempt (before any hash) and starts hashing password with
 * the user's salt, or answers 429. */
static enum MHD_Result attempt_start(struct web_req *r, int step, const char *user,
				     const char *password)
{
	struct core_store_user u;
	enum MHD_Result rc;
	uint64_t wait;
	bool known;
	int lrc;

	snprintf(r->user, sizeof(r->user), "%s", user);
	lrc = web_auth_login_begin(r->user, r->ip, &wait);
	if (lrc == CORE_AGAIN)
		return reply_locked(r, wait, "a login for this user from this address is being "
				    "checked; try again");
	if (lrc != CORE_OK) {
		core_log_warn("web", "login for %s from %s refused: locked for %llu ms more",
			      r->user, r->ip, (unsigned long long)wait);
		return reply_locked(r, wait, "too many failed logins; wait and try again");
	}
	/* An unknown user costs the same hash, so timing tells nothing. */
	known = core_store_user_get(web_api_store(), r->user, &u) == CORE_OK;
	r->step = step;		/* in flight until attempt_end */
	rc = hash_start(r, step, password, known ? u.salt : dummy_salt(),
			known ? u.iterations : WEB_AUTH_ITERATIONS);
	if (r->state != WEB_REQ_HASHING) {	/* not started: answered */
		web_auth_login_end(r->user, r->ip, false);
		r->step = STEP_NONE;
	}
	return rc;
}

/* Whether the hash just computed is r->user's password; ends the attempt. */
static bool attempt_end(struct web_req *r, uint64_t *lock)
{
	struct core_store_user u;
	bool ok;

	ok = core_store_user_get(web_api_store(), r->user, &u) == CORE_OK &&
	     web_auth_equal(u.hash, r->job.hash, sizeof(u.hash));
	*lock = web_auth_login_end(r->user, r->ip, ok);
	r->step = STEP_NONE;
	return ok;
}

void web_api_req_done(struct web_req *r)
{
	/* A login whose client went away while its hash ran. */
	if (r->step == STEP_LOGIN || r->step == STEP_CURRENT)
		web_auth_login_end(r->user, r->ip, false);
	r->step = STEP_NONE;
}

enum MHD_Result web_api_login(struct web_req *r)
{
	struct web_session *s;
	struct web_json j;
	const char *user, *password;
	enum MHD_Result rc;
	uint64_t lock;

	if (web_api_store() == NULL)
		return web_api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
				     "the config store is not available");
	if (r->state != WEB_REQ_HASHED) {
		if (!web_json_parse(&j, &r->body))
			return web_api_error(r, MHD_HTTP_BAD_REQUEST, NULL,
					     "the body must be a JSON object");
		user = web_json_str(&j, "user");
		password = web_json_str(&j, "password");
		if (user == NULL || *user == '\0' || strlen(user) > 63)
			rc = web_api_error(r, MHD_HTTP_BAD_REQUEST, "user", "a user name is required");
		else if (password == NULL || strlen(password) > 255)
			rc = web_api_error(r, MHD_HTTP_BAD_REQUEST, "password",
					   "a password is required");
		else
			rc = attempt_start(r, STEP_LOGIN, user, password);
		web_json_free(&j);
		return rc;
	}
	if (!attempt_end(r, &lock)) {
		core_log_warn("web", "failed login for %s from %s%s", r->user, r->ip,
			      lock ? "; further logins wait" : "");
		web_api_audit(r, r->user, "login failed", lock ? "locked out" : "");
		return web_api_error(r, MHD_HTTP_UNAUTHORIZED, NULL, "wrong user name or password");
	}
	if ((s = web_auth_session_new(r->user, r->ip)) == NULL)
		return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "no session");
	core_log_info("web", "%s logged in from %s", r->user, r->ip);
	web_api_audit(r, r->user, "login", "");
	return reply_session(r, MHD_HTTP_OK, s, true);
}

/* ---- setup --------------------------------------------------------------------------------- */

enum MHD_Result web_api_setup_state(struct web_req *r)
{
	bool open = web_auth_setup_token()[0] != '\0';

	return web_api_reply(r, MHD_HTTP_OK, "application/json",
			     open ? "{\"setup\":true}\n" : "{\"setup\":false}\n", open ? 15 : 16, NULL);
}

enum MHD_Result web_api_setup(struct web_req *r)
{
	struct web_session *s;
	struct web_json j;
	const char *token, *user, *password;
	enum MHD_Result rc;
	char err[256];

	if (web_api_store() == NULL)
		return web_api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
				     "the config store is not available");
	if (r->state != WEB_REQ_HASHED) {
		if (core_store_user_count(web_api_store()) != 0 || web_auth_setup_token()[0] == '\0')
			return web_api_error(r, MHD_HTTP_CONFLICT, NULL, "setup is already done");
		if (!web_json_parse(&j, &r->body))
			return web_api_error(r, MHD_HTTP_BAD_REQUEST, NULL,
					     "the body must be a JSON object");
		token = web_json_str(&j, "token");
		user = web_json_str(&j, "user");
		password = web_json_str(&j, "password");
		if (token == NULL || strlen(token) != 32 ||
		    !web_auth_equal(token, web_auth_setup_token(), 32)) {
			core_log_warn("web", "setup attempt from %s with a wrong token", r->ip);
			rc = web_api_error(r, MHD_HTTP_FORBIDDEN, "token",
					   "wrong setup token (keel printed it at start)");
		} else if (user == NULL || !user_name_ok(user))
			rc = web_api_error(r, MHD_HTTP_BAD_REQUEST, "user",
					   "user names are 1..63 letters, digits, '-', '_', '.'");
		else if (password == NULL)
			rc = web_api_error(r, MHD_HTTP_BAD_REQUEST, "password",
					   "a password is required");
		else
			rc = hash_new_password(r, user, password);
		web_json_free(&j);
		return rc;
	}
	if (core_store_user_count(web_api_store()) != 0)
		return web_api_error(r, MHD_HTTP_CONFLICT, NULL, "setup is already done");
	if (store_user(r, err, sizeof(err)) != CORE_OK)
		return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "%s", err);
	web_auth_setup_done();
	core_log_info("web", "setup: admin account %s created from %s", r->user, r->ip);
	web_api_audit(r, r->user, "setup", "admin account created");
	if ((s = web_auth_session_new(r->user, r->ip)) == NULL)
		return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "no session");
	return reply_session(r, MHD_HTTP_OK, s, true);
}

/* ---- users --------------------------------------------------------------------------------- */

static int users_json(struct core_store *st, struct core_buf *b)
{
	return core_store_users_json(st, b);
}

enum MHD_Result web_api_users(struct web_req *r)
{
	struct core_buf b;
	enum MHD_Result rc;

	core_buf_init(&b, 16 << 20);
	users_json(web_api_store(), &b);
	web_api_put(&b, "\n");
	rc = web_api_reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

/* POST /api/v1/users {"name", "password"} */
enum MHD_Result web_api_user_add(struct web_req *r)
{
	struct core_store_user u;
	struct web_json j;
	const char *name, *password;
	enum MHD_Result rc;
	char err[256];

	if (r->state != WEB_REQ_HASHED) {
		if (!web_json_parse(&j, &r->body))
			return web_api_error(r, MHD_HTTP_BAD_REQUEST, NULL,
					     "the body must be a JSON object");
		name = web_json_str(&j, "name");
		password = web_json_str(&j, "password");
		if (name == NULL || !user_name_ok(name))
			rc = web_api_error(r, MHD_HTTP_BAD_REQUEST, "name",
					   "user names are 1..63 letters, digits, '-', '_', '.'");
		else if (core_store_user_get(web_api_store(), name, &u) == CORE_OK)
			rc = web_api_error(r, MHD_HTTP_CONFLICT, "name", "user %s exists", name);
		else if (password == NULL)
			rc = web_api_error(r, MHD_HTTP_BAD_REQUEST, "password",
					   "a password is required");
		else
			rc = hash_new_password(r, name, password);
		web_json_free(&j);
		return rc;
	}
	if (store_user(r, err, sizeof(err)) != CORE_OK)
		return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "%s", err);
	web_api_audit(r, r->session->user, "user added", r->user);
	return web_api_error(r, MHD_HTTP_OK, NULL, "ok");
}

/*
 * POST /api/v1/password {"current", "password"}: the current password is
 * checked first (a session left open must not be enough to take the
 * account), counted by the lockout like a login; then the new one is
 * hashed and stored, and the user's other sessions end.
 */
enum MHD_Result web_api_password(struct web_req *r)
{
	struct web_json j;
	const char *current, *password;
	enum MHD_Result rc;
	char err[256];
	uint64_t lock;

	if (r->state != WEB_REQ_HASHED) {
		if (!web_json_parse(&j, &r->body))
			return web_api_error(r, MHD_HTTP_BAD_REQUEST, NULL,
					     "the body must be a JSON object");
		current = web_json_str(&j, "current");
		password = web_json_str(&j, "password");
		if (current == NULL || *current == '\0' || strlen(current) > 255)
			rc = web_api_error(r, MHD_HTTP_BAD_REQUEST, "current",
					   "your current password is required");
		else if (password == NULL || strlen(password) < WEB_API_MIN_PASSWORD ||
			 strlen(password) > 255)
			rc = web_api_error(r, MHD_HTTP_BAD_REQUEST, "password",
					   "the password must be %d..255 characters",
					   WEB_API_MIN_PASSWORD);
		else {
			snprintf(r->password, sizeof(r->password), "%s", password);
			rc = attempt_start(r, STEP_CURRENT, r->session->user, current);
		}
		web_json_free(&j);
		return rc;
	}
	if (r->step == STEP_CURRENT) {
		bool ok = attempt_end(r, &lock);

		if (!ok) {
			explicit_bzero(r->password, sizeof(r->password));
			core_log_warn("web", "password change for %s from %s: wrong current password",
				      r->session->user, r->ip);
			web_api_audit(r, r->session->user, "password change refused",
				      "wrong current password");
			return web_api_error(r, MHD_HTTP_FORBIDDEN, "current",
					     "the current password is wrong");
		}
		rc = hash_new_password(r, r->session->user, r->password);
		explicit_bzero(r->password, sizeof(r->password));
		return rc;
	}
	if (store_user(r, err, sizeof(err)) != CORE_OK)
		return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "%s", err);
	web_auth_sessions_end_user(r->session->user, r->session);	/* other logins end */
	web_api_audit(r, r->session->user, "password changed", "");
	return web_api_error(r, MHD_HTTP_OK, NULL, "ok");
}

enum MHD_Result web_api_user_delete(struct web_req *r)
{
	const char *name = r->params[0];

	if (!strcmp(name, r->session->user))
		return web_api_error(r, MHD_HTTP_CONFLICT, "name", "you cannot remove yourself");
	if (core_store_user_delete(web_api_store(), name) != CORE_OK)
		return web_api_error(r, MHD_HTTP_NOT_FOUND, "name", "no user %s", name);
	web_auth_sessions_end_user(name, NULL);
	web_api_audit(r, r->session->user, "user removed", name);
	return web_api_error(r, MHD_HTTP_OK, NULL, "ok");
}
