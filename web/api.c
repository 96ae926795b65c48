/* The admin API; see api.h. Every answer is JSON with Cache-Control:
 * no-store; errors are {"error": "...", "field": "..."} or, for a
 * configuration that does not validate, {"error": ..., "errors": [{"line",
 * "field", "message"}...]}. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <yaml.h>

#include "api.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/event.h"
#include "core/control.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/settings.h"
#include "core/state.h"
#include "core/status.h"
#include "core/store.h"
#include "core/tls.h"
#include "front.h"
#include "version.h"

#define API_COOKIE	"keel_session"
#define API_MIN_PASSWORD 10

void (*api_kick)(void);

static struct {
	struct core_loop *loop;
	bool		  https;	/* cookies get Secure */
	uint64_t	  started;

	/* A change that could cut the admin off, waiting to be confirmed. */
	struct core_timer confirm;
	int64_t		  confirm_back;	/* the revision it reverts to */
	int64_t		  confirm_rev;	/* the one waiting */
	uint64_t	  confirm_at;	/* monotonic deadline; 0: nothing waits */
} api;

/* ---- answers ------------------------------------------------------------------------------ */

void api_security_headers(struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
}

static enum MHD_Result reply_buf(struct web_req *r, unsigned status, const char *type,
				 const char *body, size_t len, const char *cookie)
{
	struct MHD_Response *resp;
	enum MHD_Result rc;

	resp = MHD_create_response_from_buffer_copy(len, body);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	api_security_headers(resp);
	if (cookie != NULL)
		MHD_add_response_header(resp, "Set-Cookie", cookie);
	rc = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result reply_json(struct web_req *r, unsigned status, struct core_buf *b,
				  const char *cookie)
{
	return reply_buf(r, status, "application/json", core_buf_head(b), core_buf_len(b), cookie);
}

static enum MHD_Result reply_error(struct web_req *r, unsigned status, const char *field,
				   const char *fmt, ...) CORE_PRINTF(4, 5);

static enum MHD_Result reply_error(struct web_req *r, unsigned status, const char *field,
				   const char *fmt, ...)
{
	struct core_buf b;
	enum MHD_Result rc;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	core_buf_init(&b, 4096);
	core_buf_append(&b, "{\"error\":", 9);
	core_json_str(&b, msg);
	if (field != NULL) {
		core_buf_append(&b, ",\"field\":", 9);
		core_json_str(&b, field);
	}
	core_buf_append(&b, "}\n", 2);
	rc = reply_json(r, status, &b, NULL);
	core_buf_free(&b);
	return rc;
}

static int put(struct core_buf *b, const char *s)
{
	return core_buf_append(b, s, strlen(s));
}

/* ---- JSON in (through libyaml: JSON is YAML's flow style) -------------------------------- */

struct json_in {
	yaml_document_t	 doc;
	bool		 ok;
};

static bool json_parse(struct json_in *j, const struct core_buf *body)
{
	yaml_parser_t p;

	j->ok = false;
	if (!yaml_parser_initialize(&p))
		return false;
	yaml_parser_set_input_string(&p, (const unsigned char *)core_buf_head(body),
				     core_buf_len(body));
	if (yaml_parser_load(&p, &j->doc)) {
		yaml_node_t *root = yaml_document_get_root_node(&j->doc);

		j->ok = root != NULL && root->type == YAML_MAPPING_NODE;
		if (!j->ok)
			yaml_document_delete(&j->doc);
	}
	yaml_parser_delete(&p);
	return j->ok;
}

static void json_free(struct json_in *j)
{
	if (j->ok)
		yaml_document_delete(&j->doc);
	j->ok = false;
}

/* A string member of the top-level object, or NULL. */
static const char *json_str(struct json_in *j, const char *key)
{
	yaml_node_t *root = yaml_document_get_root_node(&j->doc);
	yaml_node_pair_t *pr;

	for (pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(&j->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(&j->doc, pr->value);

		if (k->type == YAML_SCALAR_NODE && v->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0 &&
		    strlen((const char *)v->data.scalar.value) == v->data.scalar.length)
			return (const char *)v->data.scalar.value;
	}
	return NULL;
}

/* ---- sessions -------------------------------------------------------------------------------- */

static struct auth_session *req_session(struct web_req *r)
{
	const char *token = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, API_COOKIE);

	return auth_session_find(token);
}

static void session_cookie(char *buf, size_t len, const struct auth_session *s)
{
	if (s == NULL)
		snprintf(buf, len, "%s=; Path=/; HttpOnly;%s SameSite=Strict; Max-Age=0",
			 API_COOKIE, api.https ? " Secure;" : "");
	else
		snprintf(buf, len, "%s=%s; Path=/; HttpOnly;%s SameSite=Strict", API_COOKIE,
			 s->token, api.https ? " Secure;" : "");
}

static enum MHD_Result reply_session(struct web_req *r, unsigned status,
				     const struct auth_session *s, bool set_cookie)
{
	char cookie[256];
	struct core_buf b;
	enum MHD_Result rc;

	core_buf_init(&b, 4096);
	put(&b, "{\"user\":");
	core_json_str(&b, s->user);
	put(&b, ",\"csrf\":");
	core_json_str(&b, s->csrf);
	core_buf_printf(&b, ",\"idle_timeout_s\":%d}\n", AUTH_IDLE_MS / 1000);
	session_cookie(cookie, sizeof(cookie), s);
	rc = reply_json(r, status, &b, set_cookie ? cookie : NULL);
	core_buf_free(&b);
	return rc;
}

static struct core_store *store(void)
{
	return core_control_store();
}

static void audit(struct web_req *r, const char *user, const char *action, const char *detail)
{
	if (store() != NULL)
		core_store_audit(store(), user, r->ip, action, detail);
}

/* ---- login and setup --------------------------------------------------------------------------- */

static void job_done(struct auth_job *job)
{
	struct web_req *r = job->arg;

	r->job_state = 2;
	MHD_resume_connection(r->conn);
	if (api_kick != NULL)
		api_kick();
}

/* Starts hashing password with salt off the loop and suspends the request. */
static enum MHD_Result hash_start(struct web_req *r, const char *password,
				  const unsigned char *salt, uint32_t iterations)
{
	memset(&r->job, 0, sizeof(r->job));
	memcpy(r->job.salt, salt, sizeof(r->job.salt));
	snprintf(r->job.password, sizeof(r->job.password), "%s", password);
	r->job.iterations = iterations;
	r->job.done = job_done;
	r->job.arg = r;
	if (auth_hash(&r->job) != CORE_OK)
		return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
				   "too many logins at once; try again");
	r->job_state = 1;
	MHD_suspend_connection(r->conn);
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

static enum MHD_Result api_login(struct web_req *r)
{
	struct core_store_user u;
	struct auth_session *s;
	struct json_in j;
	const char *user, *password;
	uint64_t wait;
	bool known;

	if (r->job_state == 0) {
		if (store() == NULL)
			return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
					   "the config store is not available");
		if (!json_parse(&j, &r->body))
			return reply_error(r, MHD_HTTP_BAD_REQUEST, NULL,
					   "the body must be a JSON object");
		user = json_str(&j, "user");
		password = json_str(&j, "password");
		if (user == NULL || *user == '\0' || strlen(user) > 63) {
			json_free(&j);
			return reply_error(r, MHD_HTTP_BAD_REQUEST, "user", "a user name is required");
		}
		if (password == NULL || strlen(password) > 255) {
			json_free(&j);
			return reply_error(r, MHD_HTTP_BAD_REQUEST, "password",
					   "a password is required");
		}
		snprintf(r->user, sizeof(r->user), "%s", user);
		if ((wait = auth_locked(r->user, r->ip)) > 0) {
			char retry[32];
			struct MHD_Response *resp;
			enum MHD_Result rc;
			const char *msg = "{\"error\":\"too many failed logins; wait and try again\"}\n";

			json_free(&j);
			core_log_warn("web", "login for %s from %s refused: locked for %llu ms more",
				      r->user, r->ip, (unsigned long long)wait);
			snprintf(retry, sizeof(retry), "%llu", (unsigned long long)(wait + 999) / 1000);
			resp = MHD_create_response_from_buffer_copy(strlen(msg), msg);
			if (resp == NULL)
				return MHD_NO;
			MHD_add_response_header(resp, "Content-Type", "application/json");
			MHD_add_response_header(resp, "Retry-After", retry);
			rc = MHD_queue_response(r->conn, MHD_HTTP_TOO_MANY_REQUESTS, resp);
			MHD_destroy_response(resp);
			return rc;
		}
		/* An unknown user costs the same hash, so timing tells nothing. */
		known = core_store_user_get(store(), r->user, &u) == CORE_OK;
		{
			enum MHD_Result rc = hash_start(r, password, known ? u.salt : dummy_salt(),
							known ? u.iterations : AUTH_ITERATIONS);

			json_free(&j);
			return rc;
		}
	}
	if (r->job_state == 1)
		return MHD_YES;		/* still hashing */

	known = core_store_user_get(store(), r->user, &u) == CORE_OK;
	if (!known || !auth_equal(u.hash, r->job.hash, sizeof(u.hash))) {
		uint64_t lock = auth_failed(r->user, r->ip);

		core_log_warn("web", "failed login for %s from %s%s", r->user, r->ip,
			      lock ? "; further logins wait" : "");
		audit(r, r->user, "login failed", lock ? "locked out" : "");
		return reply_error(r, MHD_HTTP_UNAUTHORIZED, NULL, "wrong user name or password");
	}
	auth_succeeded(r->user, r->ip);
	if ((s = auth_session_new(r->user, r->ip)) == NULL)
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "no session");
	core_log_info("web", "%s logged in from %s", r->user, r->ip);
	audit(r, r->user, "login", "");
	return reply_session(r, MHD_HTTP_OK, s, true);
}

/* Starts hashing a new password for user with a fresh salt; the caller
 * stores it when the hash is done (store_user). */
static enum MHD_Result hash_new_password(struct web_req *r, const char *user,
					 const char *password)
{
	unsigned char salt[16];

	if (strlen(password) < API_MIN_PASSWORD || strlen(password) > 255)
		return reply_error(r, MHD_HTTP_BAD_REQUEST, "password",
				   "the password must be %d..255 characters", API_MIN_PASSWORD);
	snprintf(r->user, sizeof(r->user), "%s", user);
	if (core_tls_random(salt, sizeof(salt)) != CORE_OK)
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "no randomness");
	return hash_start(r, password, salt, AUTH_ITERATIONS);
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
	return core_store_user_put(store(), &u, err, errlen);
}

static enum MHD_Result api_setup(struct web_req *r)
{
	struct auth_session *s;
	struct json_in j;
	const char *token, *user, *password;
	char err[256];

	if (store() == NULL)
		return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
				   "the config store is not available");
	if (r->job_state == 0) {
		if (core_store_user_count(store()) != 0 || auth_setup_token()[0] == '\0')
			return reply_error(r, MHD_HTTP_CONFLICT, NULL, "setup is already done");
		if (!json_parse(&j, &r->body))
			return reply_error(r, MHD_HTTP_BAD_REQUEST, NULL,
					   "the body must be a JSON object");
		token = json_str(&j, "token");
		user = json_str(&j, "user");
		password = json_str(&j, "password");
		if (token == NULL || strlen(token) != 32 ||
		    !auth_equal(token, auth_setup_token(), 32)) {
			json_free(&j);
			core_log_warn("web", "setup attempt from %s with a wrong token", r->ip);
			return reply_error(r, MHD_HTTP_FORBIDDEN, "token",
					   "wrong setup token (keel printed it at start)");
		}
		if (user == NULL || !user_name_ok(user)) {
			json_free(&j);
			return reply_error(r, MHD_HTTP_BAD_REQUEST, "user",
					   "user names are 1..63 letters, digits, '-', '_', '.'");
		}
		if (password == NULL) {
			json_free(&j);
			return reply_error(r, MHD_HTTP_BAD_REQUEST, "password", "a password is required");
		}
		{
			enum MHD_Result rc = hash_new_password(r, user, password);

			json_free(&j);
			return rc;
		}
	}
	if (r->job_state == 1)
		return MHD_YES;
	if (core_store_user_count(store()) != 0)
		return reply_error(r, MHD_HTTP_CONFLICT, NULL, "setup is already done");
	if (store_user(r, err, sizeof(err)) != CORE_OK)
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "%s", err);
	auth_setup_done();
	core_log_info("web", "setup: admin account %s created from %s", r->user, r->ip);
	audit(r, r->user, "setup", "admin account created");
	if ((s = auth_session_new(r->user, r->ip)) == NULL)
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "no session");
	return reply_session(r, MHD_HTTP_OK, s, true);
}

/* ---- configuration ------------------------------------------------------------------------------ */

static enum MHD_Result api_config_get(struct web_req *r, bool yaml)
{
	struct core_buf b;
	enum MHD_Result rc;
	struct core_store_rev rev;
	char err[256];

	core_buf_init(&b, 16 << 20);
	if (yaml && store() != NULL && core_store_current(store(), &rev, err, sizeof(err)) == CORE_OK) {
		rc = reply_buf(r, MHD_HTTP_OK, "application/yaml", rev.yaml, strlen(rev.yaml), NULL);
		free(rev.yaml);
		core_buf_free(&b);
		return rc;
	}
	if (core_conf_write(&b, core_control_conf(), !yaml, yaml) != CORE_OK) {
		core_buf_free(&b);
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "configuration too large");
	}
	rc = yaml ? reply_buf(r, MHD_HTTP_OK, "application/yaml", core_buf_head(&b),
			      core_buf_len(&b), NULL)
		  : reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

/* Loader messages are "api:LINE: path: text" (or "api:LINE: text"). */
static void put_conf_errors(struct core_buf *b, const struct core_conf *c)
{
	const struct core_conf_err *e;
	int n = 0;

	put(b, "{\"error\":\"the configuration has errors; nothing was changed\",\"errors\":[");
	for (e = c->errors; e != NULL; e = e->next) {
		const char *p = strchr(e->msg, ':'), *q, *sep;
		long line = 0;
		char field[256] = "";

		if (p != NULL) {
			line = strtol(p + 1, (char **)&q, 10);
			if (*q == ':')
				p = q + 1;
			while (*p == ' ')
				p++;
		} else
			p = e->msg;
		sep = strstr(p, ": ");
		if (sep != NULL && (size_t)(sep - p) < sizeof(field) && !memchr(p, ' ', (size_t)(sep - p))) {
			snprintf(field, sizeof(field), "%.*s", (int)(sep - p), p);
			p = sep + 2;
		}
		core_buf_printf(b, "%s{\"line\":%ld,\"field\":", n++ ? "," : "", line);
		core_json_str(b, field);
		put(b, ",\"message\":");
		core_json_str(b, p);
		put(b, "}");
	}
	put(b, "]}\n");
}

/* ---- confirm or revert ---------------------------------------------------------------------- */

static bool strs_equal(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

static bool tls_equal(const struct keel_tls_conf *a, const struct keel_tls_conf *b)
{
	const struct keel_cert_conf *ca = a->certificates.v, *cb = b->certificates.v;
	size_t i;

	if (a->enabled != b->enabled || a->min_version != b->min_version ||
	    a->certificates.n != b->certificates.n)
		return false;
	for (i = 0; i < a->certificates.n; i++)
		if (!strs_equal(ca[i].cert, cb[i].cert) || !strs_equal(ca[i].key, cb[i].key))
			return false;
	return true;
}

static bool addrs_equal(const struct core_conf_list *a, const struct core_conf_list *b)
{
	const struct core_conf_addr *x = a->v, *y = b->v;
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(x[i].text, y[i].text))
			return false;
	return true;
}

/* Whether going from a to b touches what the admin reaches keel by: the
 * admin server's addresses and TLS, the listeners and their TLS. */
static bool risky_change(const struct keel_conf *a, const struct keel_conf *b)
{
	const struct keel_listener_conf *la = a->listeners.v, *lb = b->listeners.v;
	size_t i;

	if (!addrs_equal(&a->admin.listen, &b->admin.listen) ||
	    !tls_equal(&a->admin.tls, &b->admin.tls) || a->listeners.n != b->listeners.n)
		return true;
	for (i = 0; i < a->listeners.n; i++)
		if (strcmp(la[i].address.text, lb[i].address.text) ||
		    !tls_equal(&la[i].tls, &lb[i].tls))
			return true;
	return false;
}

/* The deadline passed: back to the last confirmed revision. */
static void confirm_expired(struct core_timer *t)
{
	struct core_store_rev rev;
	struct core_conf *c;
	char err[512], comment[128];
	int64_t id;

	(void)t;
	api.confirm_at = 0;
	if (store() == NULL || core_store_current_id(store()) != api.confirm_rev)
		return;		/* something else was applied since */
	if (core_store_get(store(), api.confirm_back, &rev, err, sizeof(err)) != CORE_OK) {
		core_log_error("web", "revision %lld was not confirmed, and cannot be reverted: %s",
			       (long long)api.confirm_rev, err);
		return;
	}
	c = core_conf_load(&core_settings, "store", rev.yaml, strlen(rev.yaml));
	if (c == NULL || c->nerrors > 0) {
		core_log_error("web", "revision %lld was not confirmed, and revision %lld "
			       "no longer loads; kept", (long long)api.confirm_rev,
			       (long long)api.confirm_back);
		core_conf_free(c);
		free(rev.yaml);
		return;
	}
	core_conf_restore_secrets(c, core_control_conf());
	snprintf(comment, sizeof(comment), "revision %lld not confirmed in time: back to %lld",
		 (long long)api.confirm_rev, (long long)api.confirm_back);
	if (core_control_apply(c, rev.yaml, "keel", comment, &id, err, sizeof(err)) != CORE_OK)
		core_log_error("web", "%s: not applied: %s", comment, err);
	else {
		core_log_warn("web", "%s (now revision %lld)", comment, (long long)id);
		core_store_audit(store(), "keel", "", "reverted", comment);
	}
	free(rev.yaml);
}

/* Validates text (YAML or JSON), then applies and records it. */
static enum MHD_Result apply_text(struct web_req *r, const char *user, const char *text,
				  size_t len, bool canonical, const char *comment)
{
	struct core_conf *c = core_conf_load(&core_settings, "api", text, len);
	struct core_buf b, yaml;
	enum MHD_Result rc;
	char err[512];
	int64_t rev, back;
	bool risky;

	if (c == NULL)
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
	core_buf_init(&b, 1 << 20);
	if (c->nerrors > 0) {
		put_conf_errors(&b, c);
		core_conf_free(c);
		rc = reply_json(r, MHD_HTTP_BAD_REQUEST, &b, NULL);
		core_buf_free(&b);
		return rc;
	}
	core_conf_restore_secrets(c, core_control_conf());
	if (strcmp(core_settings_of(c)->state_dir, core_settings_of(core_control_conf())->state_dir)) {
		core_conf_free(c);
		core_buf_free(&b);
		return reply_error(r, MHD_HTTP_BAD_REQUEST, "state_dir",
				   "state_dir holds the config store; it cannot change here");
	}
	/* What is stored: keel's own YAML of the validated settings, or the
	 * text as given (an imported YAML file keeps its comments). */
	core_buf_init(&yaml, 16 << 20);
	if (canonical ? core_conf_write(&yaml, c, false, true) != CORE_OK
		      : core_buf_append(&yaml, text, len) != CORE_OK) {
		core_conf_free(c);
		core_buf_free(&b);
		core_buf_free(&yaml);
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
	}
	core_buf_append(&yaml, "", 1);
	risky = risky_change(core_settings_of(core_control_conf()), core_settings_of(c));
	back = api.confirm_at ? api.confirm_back : core_store_current_id(store());
	if (core_control_apply(c, core_buf_head(&yaml), user, comment, &rev, err,
			       sizeof(err)) != CORE_OK) {
		core_buf_free(&yaml);
		core_buf_free(&b);
		return reply_error(r, MHD_HTTP_CONFLICT, NULL, "not applied: %s", err);
	}
	core_buf_free(&yaml);
	audit(r, user, "apply", comment);
	core_buf_printf(&b, "{\"revision\":%lld,\"generation\":%u", (long long)rev,
	     core_control_conf()->generation);
	if (risky || api.confirm_at) {
		uint64_t ms = (uint64_t)core_settings_of(core_control_conf())->admin.confirm_timeout;

		/* Unconfirmed changes on top of one go back with it. */
		api.confirm_back = back;
		api.confirm_rev = rev;
		if (risky || api.confirm_at == 0) {
			api.confirm_at = core_loop_now(api.loop) + ms;
			core_timer_start(&api.confirm, ms);
			core_log_warn("web", "revision %lld changes how keel is reached: it is "
				      "reverted to %lld unless confirmed within %llu s", (long long)rev,
				      (long long)back, (unsigned long long)(ms / 1000));
		}
		core_buf_printf(&b, ",\"confirm\":{\"revert_to\":%lld,\"seconds\":%llu}",
		     (long long)back,
		     (unsigned long long)((api.confirm_at - core_loop_now(api.loop) + 999) / 1000));
	}
	put(&b, "}\n");
	rc = reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

static void query_comment(struct web_req *r, char *buf, size_t len, const char *dflt)
{
	const char *c = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "comment");
	size_t i;

	snprintf(buf, len, "%s", c != NULL && *c != '\0' ? c : dflt);
	for (i = 0; buf[i] != '\0'; i++)
		if ((unsigned char)buf[i] < 0x20)
			buf[i] = ' ';
}

static enum MHD_Result api_config_put(struct web_req *r, const struct auth_session *s,
				      bool yaml)
{
	char comment[256];

	query_comment(r, comment, sizeof(comment), yaml ? "YAML import" : "changed in the API");
	if (core_buf_len(&r->body) == 0)
		return reply_error(r, MHD_HTTP_BAD_REQUEST, NULL, "no configuration in the body");
	return apply_text(r, s->user, core_buf_head(&r->body), core_buf_len(&r->body), !yaml,
			  comment);
}

/* PUT /api/v1/upstreams/NAME/servers/ADDR/state {"drain": bool, "down": bool} */
static enum MHD_Result api_server_state(struct web_req *r, const struct auth_session *s,
					const char *up, const char *addr)
{
	const struct keel_conf *k = core_settings_of(core_control_conf());
	struct keel_upstream_conf *ups = k->upstreams.v;
	struct core_buf yaml;
	struct json_in j;
	const char *drain, *down;
	char comment[256];
	enum MHD_Result rc;
	size_t i, n;

	for (i = 0; i < k->upstreams.n && strcmp(ups[i].name, up) != 0; i++)
		;
	if (i == k->upstreams.n)
		return reply_error(r, MHD_HTTP_NOT_FOUND, "upstream", "no upstream named %s", up);
	for (n = 0; n < ups[i].servers.n; n++)
		if (!strcmp(((struct keel_server_conf *)ups[i].servers.v)[n].address.text, addr))
			break;
	if (n == ups[i].servers.n)
		return reply_error(r, MHD_HTTP_NOT_FOUND, "server", "upstream %s has no server %s",
				   up, addr);
	if (!json_parse(&j, &r->body))
		return reply_error(r, MHD_HTTP_BAD_REQUEST, NULL, "the body must be a JSON object");
	drain = json_str(&j, "drain");
	down = json_str(&j, "down");
	if ((drain && strcmp(drain, "true") && strcmp(drain, "false")) ||
	    (down && strcmp(down, "true") && strcmp(down, "false")) || (!drain && !down)) {
		json_free(&j);
		return reply_error(r, MHD_HTTP_BAD_REQUEST, drain ? "drain" : "down",
				   "give \"drain\" and/or \"down\" as true or false");
	}
	{
		/* Change the running settings' copy, write it, apply that. */
		struct keel_server_conf *sv = (struct keel_server_conf *)ups[i].servers.v + n;
		bool old_drain = sv->drain, old_down = sv->down;

		if (drain)
			sv->drain = !strcmp(drain, "true");
		if (down)
			sv->down = !strcmp(down, "true");
		snprintf(comment, sizeof(comment), "%s/%s: drain %s, down %s", up, addr,
			 sv->drain ? "on" : "off", sv->down ? "on" : "off");
		core_buf_init(&yaml, 16 << 20);
		rc = core_conf_write(&yaml, core_control_conf(), false, true) == CORE_OK ?
		     MHD_YES : MHD_NO;
		sv->drain = old_drain;
		sv->down = old_down;
	}
	json_free(&j);
	if (rc != MHD_YES) {
		core_buf_free(&yaml);
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
	}
	rc = apply_text(r, s->user, core_buf_head(&yaml), core_buf_len(&yaml), true, comment);
	core_buf_free(&yaml);
	return rc;
}

/* ---- revisions ------------------------------------------------------------------------------- */

/* A line diff (longest common subsequence) of two texts, unified-style
 * without hunks: "  same", "- gone", "+ new". Bounded in lines. */
static int diff_lines(const char *a, const char *b, struct core_buf *out)
{
	enum { MAXL = 4000 };
	const char *la[MAXL], *lb[MAXL];
	size_t na = 0, nb = 0, i, j, w;
	unsigned short *t;
	const char *p;
	int rc = CORE_OK;

	for (p = a; *p && na < MAXL; na++, p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
		la[na] = p;
	for (p = b; *p && nb < MAXL; nb++, p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
		lb[nb] = p;
	if (*p || na == MAXL)
		return CORE_ERROR;
	w = nb + 1;
	t = calloc((na + 1) * w, sizeof(*t));
	if (t == NULL)
		return CORE_ERROR;
#define LEN(s)	(strchr((s), '\n') ? (size_t)(strchr((s), '\n') - (s)) : strlen(s))
#define SAME(x, y) (LEN(x) == LEN(y) && memcmp((x), (y), LEN(x)) == 0)
	for (i = na; i-- > 0;)
		for (j = nb; j-- > 0;)
			t[i * w + j] = SAME(la[i], lb[j]) ? t[(i + 1) * w + j + 1] + 1 :
				       t[(i + 1) * w + j] > t[i * w + j + 1] ?
				       t[(i + 1) * w + j] : t[i * w + j + 1];
	for (i = j = 0; i < na || j < nb;) {
		if (i < na && j < nb && SAME(la[i], lb[j])) {
			rc |= put(out, "  ");
			rc |= core_buf_append(out, la[i], LEN(la[i]));
			i++, j++;
		} else if (j < nb && (i == na || t[i * w + j + 1] >= t[(i + 1) * w + j])) {
			rc |= put(out, "+ ");
			rc |= core_buf_append(out, lb[j], LEN(lb[j]));
			j++;
		} else {
			rc |= put(out, "- ");
			rc |= core_buf_append(out, la[i], LEN(la[i]));
			i++;
		}
		rc |= put(out, "\n");
	}
#undef SAME
#undef LEN
	free(t);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

static int64_t query_int(struct web_req *r, const char *key)
{
	const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);

	return v != NULL ? strtoll(v, NULL, 10) : 0;
}

static enum MHD_Result api_revisions(struct web_req *r, const struct auth_session *s,
				     const char *rest)
{
	struct core_store_rev a, b;
	struct core_buf out;
	enum MHD_Result rc;
	char err[256], *end;
	int64_t id;

	core_buf_init(&out, 32 << 20);
	if (*rest == '\0' && !strcmp(r->method, "GET")) {
		core_store_list_json(store(), (unsigned)(query_int(r, "limit") > 0 ?
							 query_int(r, "limit") : 100), &out);
		put(&out, "\n");
		rc = reply_json(r, MHD_HTTP_OK, &out, NULL);
		core_buf_free(&out);
		return rc;
	}
	if (!strcmp(rest, "/diff") && !strcmp(r->method, "GET")) {
		if (core_store_get(store(), query_int(r, "from"), &a, err, sizeof(err)) != CORE_OK) {
			core_buf_free(&out);
			return reply_error(r, MHD_HTTP_NOT_FOUND, "from", "%s", err);
		}
		if (core_store_get(store(), query_int(r, "to"), &b, err, sizeof(err)) != CORE_OK) {
			free(a.yaml);
			core_buf_free(&out);
			return reply_error(r, MHD_HTTP_NOT_FOUND, "to", "%s", err);
		}
		{
			struct core_buf d;

			core_buf_init(&d, 16 << 20);
			if (diff_lines(a.yaml, b.yaml, &d) == CORE_OK) {
				core_buf_append(&d, "", 1);
				core_buf_printf(&out, "{\"from\":%lld,\"to\":%lld,\"diff\":", (long long)a.id,
				     (long long)b.id);
				core_json_str(&out, core_buf_head(&d));
				put(&out, "}\n");
				rc = reply_json(r, MHD_HTTP_OK, &out, NULL);
			} else
				rc = reply_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, NULL,
						 "the revisions are too long to compare");
			core_buf_free(&d);
		}
		free(a.yaml);
		free(b.yaml);
		core_buf_free(&out);
		return rc;
	}
	id = strtoll(rest + 1, &end, 10);
	if (rest[0] != '/' || id <= 0 || (strcmp(end, "") && strcmp(end, "/rollback"))) {
		core_buf_free(&out);
		return reply_error(r, MHD_HTTP_NOT_FOUND, NULL, "no such route");
	}
	if (core_store_get(store(), id, &a, err, sizeof(err)) != CORE_OK) {
		core_buf_free(&out);
		return reply_error(r, MHD_HTTP_NOT_FOUND, "revision", "%s", err);
	}
	if (!strcmp(end, "/rollback")) {
		char comment[64];

		if (strcmp(r->method, "POST")) {
			free(a.yaml);
			core_buf_free(&out);
			return reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, "use POST");
		}
		snprintf(comment, sizeof(comment), "rollback to revision %lld", (long long)id);
		rc = apply_text(r, s->user, a.yaml, strlen(a.yaml), false, comment);
		free(a.yaml);
		core_buf_free(&out);
		return rc;
	}
	core_buf_printf(&out, "{\"id\":%lld,\"created\":%lld,\"author\":", (long long)a.id,
	     (long long)a.created);
	core_json_str(&out, a.author);
	put(&out, ",\"comment\":");
	core_json_str(&out, a.comment);
	put(&out, ",\"yaml\":");
	core_json_str(&out, a.yaml);
	put(&out, "}\n");
	free(a.yaml);
	rc = reply_json(r, MHD_HTTP_OK, &out, NULL);
	core_buf_free(&out);
	return rc;
}

/* ---- status, logs, audit ---------------------------------------------------------------------- */

/* The node, then whatever the parts publish, each under its own name
 * ("proxy", "redis", "monitors"; core/status.h). */
static enum MHD_Result api_status(struct web_req *r)
{
	uint64_t now = core_loop_now(api.loop);
	struct core_buf b;
	enum MHD_Result rc;

	core_buf_init(&b, 8 << 20);
	put(&b, "{\"node\":");
	core_json_str(&b, core_settings_of(core_control_conf())->node);
	core_buf_printf(&b, ",\"version\":\"%s\",\"generation\":%u,\"revision\":%lld,\"uptime_s\":%llu",
	     KEEL_VERSION, core_control_conf()->generation,
	     store() ? (long long)core_store_current_id(store()) : 0LL,
	     (unsigned long long)((now - api.started) / 1000));
	core_buf_printf(&b, ",\"time\":%llu", (unsigned long long)core_clock_wall_ms());
	if (api.https) {
		put(&b, ",\"admin_fingerprint\":");
		core_json_str(&b, web_front_fingerprint());
	}
	if (api.confirm_at != 0)
		core_buf_printf(&b, ",\"confirm\":{\"revision\":%lld,\"revert_to\":%lld,\"seconds\":%llu}",
		     (long long)api.confirm_rev, (long long)api.confirm_back,
		     (unsigned long long)((api.confirm_at - now + 999) / 1000));
	if (core_status_json(&b) != CORE_OK) {
		core_buf_free(&b);
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "status too large");
	}
	put(&b, "}\n");
	rc = reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

struct log_walk {
	struct core_buf	*b;
	unsigned	 n;
};

static void log_line(uint64_t seq, const char *line, void *arg)
{
	struct log_walk *w = arg;

	core_buf_printf(w->b, "%s{\"seq\":%llu,\"line\":", w->n++ ? "," : "", (unsigned long long)seq);
	core_json_str(w->b, line);
	put(w->b, "}");
}

static enum MHD_Result api_logs(struct web_req *r)
{
	struct core_buf b;
	struct log_walk w = { &b, 0 };
	enum MHD_Result rc;
	uint64_t last;

	core_buf_init(&b, 16 << 20);
	put(&b, "{\"lines\":[");
	last = core_log_ring_walk((uint64_t)query_int(r, "after"), log_line, &w);
	core_buf_printf(&b, "],\"last\":%llu}\n", (unsigned long long)last);
	rc = reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

static enum MHD_Result api_list(struct web_req *r, int (*fn)(struct core_store *, unsigned,
							   struct core_buf *))
{
	struct core_buf b;
	enum MHD_Result rc;

	core_buf_init(&b, 16 << 20);
	fn(store(), 500, &b);
	put(&b, "\n");
	rc = reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

static int users_json(struct core_store *st, unsigned limit, struct core_buf *b)
{
	(void)limit;
	return core_store_users_json(st, b);
}

/* ---- users --------------------------------------------------------------------------------- */

/* POST /api/v1/users {"name","password"}; POST /api/v1/password {"password"} */
static enum MHD_Result api_user_set(struct web_req *r, const struct auth_session *s, bool self)
{
	struct core_store_user u;
	struct json_in j;
	const char *name, *password;
	char err[256];

	if (r->job_state == 0) {
		if (!json_parse(&j, &r->body))
			return reply_error(r, MHD_HTTP_BAD_REQUEST, NULL,
					   "the body must be a JSON object");
		name = self ? s->user : json_str(&j, "name");
		password = json_str(&j, "password");
		if (name == NULL || !user_name_ok(name)) {
			json_free(&j);
			return reply_error(r, MHD_HTTP_BAD_REQUEST, "name",
					   "user names are 1..63 letters, digits, '-', '_', '.'");
		}
		if (!self && core_store_user_get(store(), name, &u) == CORE_OK) {
			json_free(&j);
			return reply_error(r, MHD_HTTP_CONFLICT, "name", "user %s exists", name);
		}
		if (password == NULL) {
			json_free(&j);
			return reply_error(r, MHD_HTTP_BAD_REQUEST, "password", "a password is required");
		}
		{
			enum MHD_Result rc = hash_new_password(r, name, password);

			json_free(&j);
			return rc;
		}
	}
	if (r->job_state == 1)
		return MHD_YES;
	if (store_user(r, err, sizeof(err)) != CORE_OK)
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "%s", err);
	if (self) {
		auth_sessions_end_user(s->user, s);	/* other logins of this user end */
		audit(r, s->user, "password changed", "");
	} else
		audit(r, s->user, "user added", r->user);
	return reply_error(r, MHD_HTTP_OK, NULL, "ok");
}

static enum MHD_Result api_user_delete(struct web_req *r, const struct auth_session *s,
				       const char *name)
{
	if (!strcmp(name, s->user))
		return reply_error(r, MHD_HTTP_CONFLICT, "name", "you cannot remove yourself");
	if (core_store_user_delete(store(), name) != CORE_OK)
		return reply_error(r, MHD_HTTP_NOT_FOUND, "name", "no user %s", name);
	auth_sessions_end_user(name, NULL);
	audit(r, s->user, "user removed", name);
	return reply_error(r, MHD_HTTP_OK, NULL, "ok");
}

/* ---- monitors and alerts ------------------------------------------------------------------------ */

static enum MHD_Result api_monitors(struct web_req *r)
{
	const struct core_status_provider *p = core_status_find("monitors");
	struct core_buf b;
	enum MHD_Result rc;

	core_buf_init(&b, 4 << 20);
	if (p == NULL || p->json(&b) != CORE_OK) {
		core_buf_free(&b);
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "too many monitors");
	}
	put(&b, "\n");
	rc = reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

/* GET /api/v1/monitors/history?name=N&range=SECONDS[&points=P] */
static enum MHD_Result api_history(struct web_req *r)
{
	const char *name = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "name");
	int64_t range = query_int(r, "range"), points = query_int(r, "points");
	uint64_t to = core_clock_wall_ms(), from;
	const struct core_status_provider *p;
	struct core_buf b;
	enum MHD_Result rc;

	if (name == NULL || *name == '\0')
		return reply_error(r, MHD_HTTP_BAD_REQUEST, "name", "which monitor? (?name=)");
	if (range <= 0)
		range = 24 * 3600;
	if (range < 60 || range > 400 * 24 * 3600)
		return reply_error(r, MHD_HTTP_BAD_REQUEST, "range",
				   "range is 60..34560000 seconds");
	if (points <= 0 || points > 1000)
		points = 120;
	from = to - (uint64_t)range * 1000;
	core_buf_init(&b, 1 << 20);
	put(&b, "{\"name\":");
	core_json_str(&b, name);
	core_buf_printf(&b, ",\"from\":%llu,\"to\":%llu,\"points\":", (unsigned long long)from,
	     (unsigned long long)to);
	p = core_status_find("monitors");
	if (p == NULL || p->history == NULL ||
	    p->history(name, from, to, (unsigned)points, &b) != CORE_OK) {
		core_buf_free(&b);
		return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
				   "monitor results are not being kept (see the log)");
	}
	put(&b, "}\n");
	rc = reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

static enum MHD_Result api_alert_test(struct web_req *r, const struct auth_session *s)
{
	char err[200];

	if (core_event_test(s->user, err, sizeof(err)) != CORE_OK)
		return reply_error(r, MHD_HTTP_CONFLICT, "alerts", "%s", err);
	audit(r, s->user, "test alert", "");
	return reply_error(r, MHD_HTTP_OK, NULL, "sent");
}

/* ---- certificates ------------------------------------------------------------------------------ */

static void put_cert(struct core_buf *b, const char *used_by, const char *cert, const char *key)
{
	struct core_tls_pair p = { cert, key };
	struct core_tls_info info;
	char err[384];

	put(b, "{\"used_by\":");
	core_json_str(b, used_by);
	put(b, ",\"cert\":");
	core_json_str(b, cert);
	put(b, ",\"key\":");
	core_json_str(b, key);
	if (core_tls_pair_info(&p, &info, err, sizeof(err)) != CORE_OK) {
		put(b, ",\"error\":");
		core_json_str(b, err);
	} else {
		put(b, ",\"subject\":");
		core_json_str(b, info.subject);
		put(b, ",\"issuer\":");
		core_json_str(b, info.issuer);
		put(b, ",\"names\":");
		core_json_str(b, info.names);
		core_buf_printf(b, ",\"not_before\":\"%s\",\"not_after\":\"%s\",\"fingerprint\":\"%s\","
			"\"self_signed\":%s", info.not_before, info.not_after, info.fingerprint,
		     info.self_signed ? "true" : "false");
	}
	put(b, "}");
}

static enum MHD_Result api_certs(struct web_req *r)
{
	const struct keel_conf *k = core_settings_of(core_control_conf());
	const struct keel_listener_conf *ln = k->listeners.v;
	const struct keel_cert_conf *cc;
	struct core_buf b;
	enum MHD_Result rc;
	char who[160], crt[300], key[300];
	size_t i, j, n = 0;

	core_buf_init(&b, 4 << 20);
	put(&b, "{\"certificates\":[");
	cc = k->admin.tls.certificates.v;
	for (j = 0; j < k->admin.tls.certificates.n; j++, n++) {
		put(&b, n ? "," : "");
		put_cert(&b, "admin", cc[j].cert, cc[j].key);
	}
	if (k->admin.tls.enabled && k->admin.tls.certificates.n == 0) {
		snprintf(crt, sizeof(crt), "%s/admin.crt", k->state_dir);
		snprintf(key, sizeof(key), "%s/admin.key", k->state_dir);
		put(&b, n++ ? "," : "");
		put_cert(&b, "admin (made by keel)", crt, key);
	}
	for (i = 0; i < k->listeners.n; i++) {
		cc = ln[i].tls.certificates.v;
		snprintf(who, sizeof(who), "listener %s", ln[i].address.text);
		for (j = 0; j < ln[i].tls.certificates.n; j++, n++) {
			put(&b, n ? "," : "");
			put_cert(&b, who, cc[j].cert, cc[j].key);
		}
	}
	put(&b, "]}\n");
	rc = reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

static bool cert_name_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '-' || s[n] == '_' ||
		      (s[n] == '.' && n > 0)))
			return false;
	return n > 0 && n < 64;
}

/*
 * POST /api/v1/certificates {"name", "cert", "key"}: PEM text, checked
 * (parses, the key matches), kept as state_dir/certs/NAME.crt and .key.
 * Replacing a pair the running configuration uses reloads it: new
 * handshakes get the new certificate, open connections carry on.
 */
static enum MHD_Result api_cert_upload(struct web_req *r, const struct auth_session *s)
{
	const struct keel_conf *k = core_settings_of(core_control_conf());
	const char *name, *cert, *key;
	struct core_tls_pair p;
	struct json_in j;
	char dir[300], tc[400], tk[400], fc[400], fk[400], err[512];
	bool replaced;
	struct core_buf b;
	enum MHD_Result rc;

	if (!json_parse(&j, &r->body))
		return reply_error(r, MHD_HTTP_BAD_REQUEST, NULL, "the body must be a JSON object");
	name = json_str(&j, "name");
	cert = json_str(&j, "cert");
	key = json_str(&j, "key");
	if (name == NULL || !cert_name_ok(name)) {
		json_free(&j);
		return reply_error(r, MHD_HTTP_BAD_REQUEST, "name",
				   "a name is 1..63 letters, digits, '-', '_', '.'");
	}
	if (cert == NULL || strstr(cert, "-----BEGIN CERTIFICATE-----") == NULL) {
		json_free(&j);
		return reply_error(r, MHD_HTTP_BAD_REQUEST, "cert",
				   "paste the certificate in PEM (-----BEGIN CERTIFICATE-----...)");
	}
	if (key == NULL || strstr(key, "PRIVATE KEY-----") == NULL) {
		json_free(&j);
		return reply_error(r, MHD_HTTP_BAD_REQUEST, "key",
				   "paste the private key in PEM (-----BEGIN ... PRIVATE KEY-----)");
	}
	snprintf(dir, sizeof(dir), "%s/certs", k->state_dir);
	snprintf(tc, sizeof(tc), "%s/.%s.crt.check", dir, name);
	snprintf(tk, sizeof(tk), "%s/.%s.key.check", dir, name);
	snprintf(fc, sizeof(fc), "%s/%s.crt", dir, name);
	snprintf(fk, sizeof(fk), "%s/%s.key", dir, name);
	if (core_state_dir(dir, err, sizeof(err)) != CORE_OK ||
	    core_state_write(tc, cert, strlen(cert) + 1, 0644, err, sizeof(err)) != CORE_OK ||
	    core_state_write(tk, key, strlen(key) + 1, 0600, err, sizeof(err)) != CORE_OK) {
		json_free(&j);
		unlink(tc);
		return reply_error(r, MHD_HTTP_INSUFFICIENT_STORAGE, NULL, "not stored: %s", err);
	}
	json_free(&j);
	p.cert = tc;
	p.key = tk;
	if (core_tls_check_pair(&p, err, sizeof(err)) != CORE_OK) {
		unlink(tc);
		unlink(tk);
		return reply_error(r, MHD_HTTP_BAD_REQUEST,
				   strstr(err, "key") == err || strstr(err, "does not belong") ?
				   "key" : "cert", "%s", err);
	}
	replaced = access(fc, F_OK) == 0;
	if (rename(tk, fk) != 0 || rename(tc, fc) != 0) {
		snprintf(err, sizeof(err), "%s", strerror(errno));
		unlink(tc);
		unlink(tk);
		return reply_error(r, MHD_HTTP_INSUFFICIENT_STORAGE, NULL, "not stored: %s", err);
	}
	audit(r, s->user, replaced ? "certificate replaced" : "certificate added", fc);
	core_log_info("web", "%s %s certificate %s", s->user, replaced ? "replaced" : "added", fc);
	if (replaced && core_control_reload(err, sizeof(err)) != CORE_OK)
		return reply_error(r, MHD_HTTP_CONFLICT, NULL, "stored, but the reload failed: %s",
				   err);
	core_buf_init(&b, 4096);
	put(&b, "{\"cert\":");
	core_json_str(&b, fc);
	put(&b, ",\"key\":");
	core_json_str(&b, fk);
	core_buf_printf(&b, ",\"replaced\":%s}\n", replaced ? "true" : "false");
	rc = reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

static enum MHD_Result api_confirm(struct web_req *r, const struct auth_session *s)
{
	char detail[64];

	if (api.confirm_at == 0)
		return reply_error(r, MHD_HTTP_CONFLICT, NULL, "no change is waiting to be confirmed");
	core_timer_stop(&api.confirm);
	api.confirm_at = 0;
	snprintf(detail, sizeof(detail), "revision %lld", (long long)api.confirm_rev);
	audit(r, s->user, "confirmed", detail);
	core_log_info("web", "%s confirmed %s", s->user, detail);
	return reply_error(r, MHD_HTTP_OK, NULL, "confirmed");
}

/* ---- dispatch -------------------------------------------------------------------------------- */

static bool is(const struct web_req *r, const char *method, const char *url)
{
	return !strcmp(r->method, method) && !strcmp(r->url, url);
}

static enum MHD_Result api_metrics(struct web_req *r)
{
	struct core_buf out;
	enum MHD_Result rc;

	core_buf_init(&out, 4 << 20);
	if (core_status_metrics(&out) != CORE_OK) {
		core_buf_free(&out);
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "metrics too large");
	}
	rc = reply_buf(r, MHD_HTTP_OK, "text/plain; version=0.0.4", core_buf_head(&out),
		       core_buf_len(&out), NULL);
	core_buf_free(&out);
	return rc;
}

/* Bearer token for Prometheus, when admin.metrics_token is set. */
static bool metrics_token_ok(struct web_req *r)
{
	const char *want = core_settings_of(core_control_conf())->admin.metrics_token;
	const char *got = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");

	if (want == NULL || *want == '\0' || got == NULL || strncmp(got, "Bearer ", 7) != 0)
		return false;
	got += 7;
	return strlen(got) == strlen(want) && auth_equal(got, want, strlen(want));
}

enum MHD_Result api_handle(struct web_req *r)
{
	struct auth_session *s;
	bool changing = strcmp(r->method, "GET") && strcmp(r->method, "HEAD");
	const char *csrf;

	if (r->too_big)
		return reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "the body is too large");

	/* The routes open to everyone. */
	if (is(r, "POST", "/api/v1/login"))
		return api_login(r);
	if (is(r, "POST", "/api/v1/setup"))
		return api_setup(r);
	if (is(r, "GET", "/api/v1/setup"))
		return reply_buf(r, MHD_HTTP_OK, "application/json",
				 auth_setup_token()[0] ? "{\"setup\":true}\n" : "{\"setup\":false}\n",
				 auth_setup_token()[0] ? 15 : 16, NULL);
	if (!strcmp(r->url, "/metrics") && !strcmp(r->method, "GET") && metrics_token_ok(r))
		return api_metrics(r);

	s = req_session(r);
	if (s == NULL)
		return reply_error(r, MHD_HTTP_UNAUTHORIZED, NULL, "log in first");
	if (changing) {
		const char *type = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
							       "Content-Type");

		csrf = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-CSRF-Token");
		if (csrf == NULL || strlen(csrf) != AUTH_TOKEN_HEX ||
		    !auth_equal(csrf, s->csrf, AUTH_TOKEN_HEX))
			return reply_error(r, MHD_HTTP_FORBIDDEN, NULL,
					   "missing or wrong X-CSRF-Token header");
		if (core_buf_len(&r->body) > 0 && (type == NULL ||
		    (strncmp(type, "application/json", 16) && strncmp(type, "application/yaml", 16))))
			return reply_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL,
					   "send application/json (or application/yaml)");
	}
	if (store() == NULL && strncmp(r->url, "/api/v1/status", 14) && strcmp(r->url, "/metrics"))
		return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
				   "the config store is not available (see the log)");

	if (is(r, "GET", "/metrics"))
		return api_metrics(r);
	if (is(r, "GET", "/api/v1/session"))
		return reply_session(r, MHD_HTTP_OK, s, false);
	if (is(r, "POST", "/api/v1/logout")) {
		char cookie[256];

		audit(r, s->user, "logout", "");
		core_log_info("web", "%s logged out", s->user);
		auth_session_end(s);
		session_cookie(cookie, sizeof(cookie), NULL);
		return reply_buf(r, MHD_HTTP_OK, "application/json", "{}\n", 3, cookie);
	}
	if (is(r, "GET", "/api/v1/status"))
		return api_status(r);
	if (is(r, "GET", "/api/v1/config"))
		return api_config_get(r, false);
	if (is(r, "PUT", "/api/v1/config"))
		return api_config_put(r, s, false);
	if (is(r, "GET", "/api/v1/config/yaml"))
		return api_config_get(r, true);
	if (is(r, "PUT", "/api/v1/config/yaml"))
		return api_config_put(r, s, true);
	if (!strncmp(r->url, "/api/v1/revisions", 17) &&
	    (r->url[17] == '\0' || r->url[17] == '/'))
		return api_revisions(r, s, r->url + 17);
	if (is(r, "POST", "/api/v1/config/confirm"))
		return api_confirm(r, s);
	if (is(r, "GET", "/api/v1/monitors"))
		return api_monitors(r);
	if (is(r, "GET", "/api/v1/monitors/history"))
		return api_history(r);
	if (is(r, "POST", "/api/v1/alerts/test"))
		return api_alert_test(r, s);
	if (is(r, "GET", "/api/v1/certificates"))
		return api_certs(r);
	if (is(r, "POST", "/api/v1/certificates"))
		return api_cert_upload(r, s);
	if (is(r, "GET", "/api/v1/logs"))
		return api_logs(r);
	if (is(r, "GET", "/api/v1/audit"))
		return api_list(r, core_store_audit_json);
	if (is(r, "GET", "/api/v1/users"))
		return api_list(r, users_json);
	if (is(r, "POST", "/api/v1/users"))
		return api_user_set(r, s, false);
	if (is(r, "POST", "/api/v1/password"))
		return api_user_set(r, s, true);
	if (!strcmp(r->method, "DELETE") && !strncmp(r->url, "/api/v1/users/", 14))
		return api_user_delete(r, s, r->url + 14);
	if (!strcmp(r->method, "PUT") && !strncmp(r->url, "/api/v1/upstreams/", 18)) {
		/* /api/v1/upstreams/NAME/servers/ADDR/state */
		char up[64], addr[80];
		const char *p = r->url + 18, *q = strchr(p, '/');

		if (q != NULL && (size_t)(q - p) < sizeof(up) && !strncmp(q, "/servers/", 9)) {
			const char *a = q + 9, *e = strstr(a, "/state");

			if (e != NULL && e[6] == '\0' && (size_t)(e - a) < sizeof(addr)) {
				snprintf(up, sizeof(up), "%.*s", (int)(q - p), p);
				snprintf(addr, sizeof(addr), "%.*s", (int)(e - a), a);
				return api_server_state(r, s, up, addr);
			}
		}
	}
	return reply_error(r, MHD_HTTP_NOT_FOUND, NULL, "no such route: %s %s", r->method, r->url);
}

int api_start(struct core_loop *loop, bool https, char *err, size_t errlen)
{
	api.loop = loop;
	api.https = https;
	api.started = core_loop_now(loop);
	api.confirm_at = 0;
	core_timer_init(loop, &api.confirm, confirm_expired, NULL);
	if (auth_start(loop, err, errlen) != CORE_OK)
		return CORE_ERROR;
	if (store() != NULL && core_store_user_count(store()) == 0) {
		auth_setup_begin();
		if (auth_setup_token()[0] != '\0') {
			const struct keel_admin_conf *ac = &core_settings_of(core_control_conf())->admin;
			const struct core_conf_addr *a = ac->listen.v;
			const char *host = a[0].text;

			/* "*:8443" is this box's address, whichever the admin uses. */
			if (host[0] == '*')
				host++;
			core_log_warn("web", "no admin account yet: set keel up at %s://%s%s/#/setup?token=%s",
				      https ? "https" : "http", host[0] == ':' ? "<this box>" : "", host,
				      auth_setup_token());
		}
	}
	return CORE_OK;
}

void api_stop(void)
{
	if (api.loop != NULL)
		core_timer_stop(&api.confirm);
	auth_stop();
}
