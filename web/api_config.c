/* The configuration through the API: read it (secrets masked), apply a
 * new one (validated completely first), its revisions with their diffs
 * and rollbacks, and the confirm-or-revert of a change that could cut the
 * admin off. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "api.h"
#include "core/conf.h"
#include "core/fault.h"
#include "core/control.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/settings.h"
#include "core/store.h"
#include "core/sync.h"

static struct {
	/* A change that could cut the admin off, waiting to be confirmed. */
	struct core_timer confirm;
	int64_t		  confirm_back;	/* the revision it reverts to */
	int64_t		  confirm_rev;	/* the one waiting */
	uint64_t	  confirm_at;	/* monotonic deadline; 0: nothing waits */
} cf;

static void confirm_expired(struct core_timer *t);

/* GET /api/v1/config: the running settings as JSON, secrets masked. */
enum MHD_Result web_api_config_get(struct web_req *r)
{
	struct core_buf b;
	enum MHD_Result rc;

	core_buf_init(&b, 16 << 20);
	if (core_conf_write(&b, core_control_conf(), true, false) != CORE_OK) {
		core_buf_free(&b);
		return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "configuration too large");
	}
	rc = web_api_reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

/* GET /api/v1/config/yaml: the current revision's text as it was given
 * (comments kept), every secret's value replaced by "(secret)". */
enum MHD_Result web_api_config_yaml_get(struct web_req *r)
{
	struct core_store_rev rev;
	struct core_buf b;
	enum MHD_Result rc;
	char err[256];
	int ok = CORE_ERROR;

	core_buf_init(&b, 16 << 20);
	if (web_api_store() != NULL &&
	    core_store_current(web_api_store(), &rev, err, sizeof(err)) == CORE_OK) {
		ok = web_secret_mask(rev.yaml, strlen(rev.yaml), &b);
		explicit_bzero(rev.yaml, strlen(rev.yaml));
		free(rev.yaml);
	}
	if (ok != CORE_OK) {
		core_buf_free(&b);
		core_buf_init(&b, 16 << 20);
		if (core_conf_write(&b, core_control_conf(), false, false) != CORE_OK) {
			core_buf_free(&b);
			return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL,
					     "configuration too large");
		}
	}
	rc = web_api_reply(r, MHD_HTTP_OK, "application/yaml", core_buf_head(&b), core_buf_len(&b),
			   NULL);
	core_buf_free(&b);
	return rc;
}

/* Loader messages are "api:LINE: path: text" (or "api:LINE: text"). */
static void put_conf_errors(struct core_buf *b, const struct core_conf *c)
{
	const struct core_conf_err *e;
	int n = 0;

	web_api_put(b, "{\"error\":\"the configuration has errors; nothing was changed\",\"errors\":[");
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
		web_api_put(b, ",\"message\":");
		core_json_str(b, p);
		web_api_put(b, "}");
	}
	web_api_put(b, "]}\n");
}

/* ---- confirm or revert ---------------------------------------------------------------------- */

static bool tls_equal(const struct keel_tls_conf *a, const struct keel_tls_conf *b)
{
	const struct keel_cert_conf *ca = a->certificates.v, *cb = b->certificates.v;
	size_t i;

	if (a->enabled != b->enabled || a->min_version != b->min_version ||
	    a->certificates.n != b->certificates.n)
		return false;
	for (i = 0; i < a->certificates.n; i++)
		if (!web_conf_str_same(ca[i].cert, cb[i].cert) ||
		    !web_conf_str_same(ca[i].key, cb[i].key))
			return false;
	return true;
}

/* Whether going from a to b touches what the admin reaches keel by: the
 * admin server's addresses and TLS, the listeners and their TLS. */
static bool risky_change(const struct keel_conf *a, const struct keel_conf *b)
{
	const struct keel_listener_conf *la = a->listeners.v, *lb = b->listeners.v;
	size_t i;

	if (!web_conf_addrs_same(&a->admin.listen, &b->admin.listen) ||
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
	cf.confirm_at = 0;
	if (web_api_store() == NULL || core_store_current_id(web_api_store()) != cf.confirm_rev)
		return;		/* something else was applied since */
	if (core_store_get(web_api_store(), cf.confirm_back, &rev, err, sizeof(err)) != CORE_OK) {
		core_log_error("web", "revision %lld was not confirmed, and cannot be reverted: %s",
			       (long long)cf.confirm_rev, err);
		return;
	}
	c = core_conf_load(&core_settings, "store", rev.yaml, strlen(rev.yaml));
	if (c == NULL || c->nerrors > 0) {
		core_log_error("web", "revision %lld was not confirmed, and revision %lld "
			       "no longer loads; kept", (long long)cf.confirm_rev,
			       (long long)cf.confirm_back);
		core_conf_free(c);
		free(rev.yaml);
		return;
	}
	core_conf_restore_secrets(c, core_control_conf());
	snprintf(comment, sizeof(comment), "revision %lld not confirmed in time: back to %lld",
		 (long long)cf.confirm_rev, (long long)cf.confirm_back);
	if (core_control_apply(c, rev.yaml, "keel", comment, &id, err, sizeof(err)) != CORE_OK)
		core_log_error("web", "%s: not applied: %s", comment, err);
	else {
		core_log_warn("web", "%s (now revision %lld)", comment, (long long)id);
		core_store_audit(web_api_store(), "keel", "", "reverted", comment);
	}
	free(rev.yaml);
}

/* Validates text (YAML or JSON), then applies and records it. */
enum MHD_Result web_api_apply(struct web_req *r, const char *user, const char *text,
				  size_t len, bool canonical, const char *comment)
{
	struct core_conf *c = core_conf_load(&core_settings, "api", text, len);
	struct core_buf b, yaml;
	enum MHD_Result rc;
	char err[512], field[128];
	int64_t rev, back;
	bool risky;

	if (c == NULL)
		return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
	core_buf_init(&b, 1 << 20);
	if (c->nerrors > 0) {
		put_conf_errors(&b, c);
		core_conf_free(c);
		rc = web_api_reply_json(r, MHD_HTTP_BAD_REQUEST, &b, NULL);
		core_buf_free(&b);
		return rc;
	}
	/* "(secret)" keeps a secret only where its target did not change: a
	 * masked SMTP password must not follow a new SMTP server. */
	if (web_secret_check_targets(core_settings_of(c), core_settings_of(core_control_conf()),
				     field, sizeof(field)) != CORE_OK) {
		core_conf_free(c);
		core_buf_free(&b);
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, field,
				     "%s: its target changed, so the kept secret is not used; "
				     "enter it again", field);
	}
	core_conf_restore_secrets(c, core_control_conf());
	if (strcmp(core_settings_of(c)->state_dir, core_settings_of(core_control_conf())->state_dir)) {
		core_conf_free(c);
		core_buf_free(&b);
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, "state_dir",
				   "state_dir holds the config store; it cannot change here");
	}
	/* What is stored: keel's own YAML of the validated settings, or the
	 * text as given (an imported YAML file keeps its comments). */
	core_buf_init(&yaml, 16 << 20);
	/* Text that kept a secret as "(secret)" (a masked export sent back) is
	 * stored as keel's own YAML, which holds the secret's value: the file
	 * keel runs from must not lose it. Its comments are lost then. */
	if (!canonical && memmem(text, len, "(secret)", 8) != NULL)
		canonical = true;
	if (canonical ? core_conf_write(&yaml, c, false, true) != CORE_OK
		      : core_buf_append(&yaml, text, len) != CORE_OK) {
		core_conf_free(c);
		core_buf_free(&b);
		core_buf_free(&yaml);
		return web_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
	}
	core_buf_append(&yaml, "", 1);
	risky = risky_change(core_settings_of(core_control_conf()), core_settings_of(c));
	back = cf.confirm_at ? cf.confirm_back : core_store_current_id(web_api_store());
	if (core_control_apply(c, core_buf_head(&yaml), user, comment, &rev, err,
			       sizeof(err)) != CORE_OK) {
		core_buf_free(&yaml);
		core_buf_free(&b);
		return web_api_error(r, MHD_HTTP_CONFLICT, NULL, "not applied: %s", err);
	}
	core_buf_free(&yaml);
	web_api_audit(r, user, "apply", comment);
	core_buf_printf(&b, "{\"revision\":%lld,\"generation\":%u", (long long)rev,
	     core_control_conf()->generation);
	if (risky || cf.confirm_at) {
		uint64_t ms = (uint64_t)core_settings_of(core_control_conf())->admin.confirm_timeout;

		/* Unconfirmed changes on top of one go back with it. */
		cf.confirm_back = back;
		cf.confirm_rev = rev;
		if (risky || cf.confirm_at == 0) {
			cf.confirm_at = web_api_now() + ms;
			core_timer_start(&cf.confirm, ms);
			core_log_warn("web", "revision %lld changes how keel is reached: it is "
				      "reverted to %lld unless confirmed within %llu s", (long long)rev,
				      (long long)back, (unsigned long long)(ms / 1000));
		}
		core_buf_printf(&b, ",\"confirm\":{\"revert_to\":%lld,\"seconds\":%llu}",
		     (long long)back,
		     (unsigned long long)((cf.confirm_at - web_api_now() + 999) / 1000));
	}
	web_api_put(&b, "}\n");
	rc = web_api_reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

static enum MHD_Result config_put_body(struct web_req *r, bool yaml);

static enum MHD_Result config_put(struct web_req *r, bool yaml)
{
	enum MHD_Result rc;

	/* The whole apply, from the body to the store, is one fault phase
	 * (core/fault.h; test builds only). */
	core_fault_arm("apply");
	rc = config_put_body(r, yaml);
	core_fault_disarm("apply");
	return rc;
}

static enum MHD_Result config_put_body(struct web_req *r, bool yaml)
{
	char comment[256];

	web_api_query_comment(r, comment, sizeof(comment), yaml ? "YAML import" : "changed in the API");
	if (core_buf_len(&r->body) == 0)
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, NULL, "no configuration in the body");
	if (web_json_too_deep(core_buf_head(&r->body), core_buf_len(&r->body), WEB_JSON_DEPTH))
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, NULL,
				     "the body nests deeper than %d levels", WEB_JSON_DEPTH);
	return web_api_apply(r, r->session->user, core_buf_head(&r->body), core_buf_len(&r->body),
			     !yaml, comment);
}

enum MHD_Result web_api_config_put(struct web_req *r)
{
	return config_put(r, false);
}

enum MHD_Result web_api_config_yaml_put(struct web_req *r)
{
	return config_put(r, true);
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
			rc |= web_api_put(out, "  ");
			rc |= core_buf_append(out, la[i], LEN(la[i]));
			i++, j++;
		} else if (j < nb && (i == na || t[i * w + j + 1] >= t[(i + 1) * w + j])) {
			rc |= web_api_put(out, "+ ");
			rc |= core_buf_append(out, lb[j], LEN(lb[j]));
			j++;
		} else {
			rc |= web_api_put(out, "- ");
			rc |= core_buf_append(out, la[i], LEN(la[i]));
			i++;
		}
		rc |= web_api_put(out, "\n");
	}
#undef SAME
#undef LEN
	free(t);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

enum MHD_Result web_api_revisions(struct web_req *r)
{
	int64_t limit = web_api_query_int(r, "limit");
	struct core_buf out;
	enum MHD_Result rc;

	core_buf_init(&out, 32 << 20);
	core_store_list_json(web_api_store(), (unsigned)(limit > 0 ? limit : 100), &out);
	web_api_put(&out, "\n");
	rc = web_api_reply_json(r, MHD_HTTP_OK, &out, NULL);
	core_buf_free(&out);
	return rc;
}

/* A stored revision with its secrets masked, into out (NUL-terminated). */
static int revision_masked(int64_t id, struct core_store_rev *rev, struct core_buf *out,
			   char *err, size_t errlen)
{
	int rc;

	if (core_store_get(web_api_store(), id, rev, err, errlen) != CORE_OK)
		return CORE_ERROR;
	rc = web_secret_mask(rev->yaml, strlen(rev->yaml), out);
	explicit_bzero(rev->yaml, strlen(rev->yaml));
	free(rev->yaml);
	rev->yaml = NULL;
	if (rc != CORE_OK || core_buf_append(out, "", 1) != CORE_OK) {
		snprintf(err, errlen, "revision %lld cannot be shown", (long long)id);
		return CORE_ERROR;
	}
	return CORE_OK;
}

/* GET /api/v1/revisions/diff?from=A&to=B, both masked before comparing. */
enum MHD_Result web_api_revision_diff(struct web_req *r)
{
	struct core_store_rev a, b;
	struct core_buf ta, tb, d, out;
	enum MHD_Result rc;
	char err[256];

	core_buf_init(&ta, 16 << 20);
	core_buf_init(&tb, 16 << 20);
	core_buf_init(&d, 16 << 20);
	core_buf_init(&out, 32 << 20);
	if (revision_masked(web_api_query_int(r, "from"), &a, &ta, err, sizeof(err)) != CORE_OK)
		rc = web_api_error(r, MHD_HTTP_NOT_FOUND, "from", "%s", err);
	else if (revision_masked(web_api_query_int(r, "to"), &b, &tb, err, sizeof(err)) != CORE_OK)
		rc = web_api_error(r, MHD_HTTP_NOT_FOUND, "to", "%s", err);
	else if (diff_lines(core_buf_head(&ta), core_buf_head(&tb), &d) != CORE_OK)
		rc = web_api_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, NULL,
				   "the revisions are too long to compare");
	else {
		core_buf_append(&d, "", 1);
		core_buf_printf(&out, "{\"from\":%lld,\"to\":%lld,\"diff\":", (long long)a.id,
				(long long)b.id);
		core_json_str(&out, core_buf_head(&d));
		web_api_put(&out, "}\n");
		rc = web_api_reply_json(r, MHD_HTTP_OK, &out, NULL);
	}
	core_buf_free(&ta);
	core_buf_free(&tb);
	core_buf_free(&d);
	core_buf_free(&out);
	return rc;
}

static int64_t revision_id(struct web_req *r)
{
	char *end;
	long long id = strtoll(r->params[0], &end, 10);

	return *end == '\0' && id > 0 ? id : 0;
}

enum MHD_Result web_api_revision(struct web_req *r)
{
	struct core_store_rev a;
	struct core_buf text, out;
	enum MHD_Result rc;
	char err[256];

	core_buf_init(&text, 16 << 20);
	core_buf_init(&out, 32 << 20);
	if (revision_id(r) == 0 ||
	    revision_masked(revision_id(r), &a, &text, err, sizeof(err)) != CORE_OK)
		rc = web_api_error(r, MHD_HTTP_NOT_FOUND, "revision", "no revision %s", r->params[0]);
	else {
		core_buf_printf(&out, "{\"id\":%lld,\"created\":%lld,\"author\":", (long long)a.id,
				(long long)a.created);
		core_json_str(&out, a.author);
		web_api_put(&out, ",\"comment\":");
		core_json_str(&out, a.comment);
		web_api_put(&out, ",\"yaml\":");
		core_json_str(&out, core_buf_head(&text));
		web_api_put(&out, "}\n");
		rc = web_api_reply_json(r, MHD_HTTP_OK, &out, NULL);
	}
	core_buf_free(&text);
	core_buf_free(&out);
	return rc;
}

/* POST /api/v1/revisions/N/rollback: the stored text (secrets and all) is
 * applied again as a new revision. */
enum MHD_Result web_api_rollback(struct web_req *r)
{
	struct core_store_rev a;
	enum MHD_Result rc;
	char err[256], comment[64];
	int64_t id = revision_id(r);

	if (id == 0 || core_store_get(web_api_store(), id, &a, err, sizeof(err)) != CORE_OK)
		return web_api_error(r, MHD_HTTP_NOT_FOUND, "revision", "no revision %s",
				     r->params[0]);
	snprintf(comment, sizeof(comment), "rollback to revision %lld", (long long)id);
	rc = web_api_apply(r, r->session->user, a.yaml, strlen(a.yaml), false, comment);
	explicit_bzero(a.yaml, strlen(a.yaml));
	free(a.yaml);
	return rc;
}

enum MHD_Result web_api_confirm(struct web_req *r)
{
	char detail[64];

	if (cf.confirm_at == 0)
		return web_api_error(r, MHD_HTTP_CONFLICT, NULL, "no change is waiting to be confirmed");
	core_timer_stop(&cf.confirm);
	cf.confirm_at = 0;
	snprintf(detail, sizeof(detail), "revision %lld", (long long)cf.confirm_rev);
	web_api_audit(r, r->session->user, "confirmed", detail);
	core_log_info("web", "%s confirmed %s", r->session->user, detail);
	return web_api_error(r, MHD_HTTP_OK, NULL, "confirmed");
}
/* POST /api/v1/cluster/resolve {"keep": NODE}: the admin chooses which
 * gateway's configuration the cluster keeps; nothing is merged. */
enum MHD_Result web_api_cluster_resolve(struct web_req *r)
{
	struct web_json j;
	enum MHD_Result rc;
	const char *keep;
	char err[300], detail[96];

	if (!web_json_parse(&j, &r->body))
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, NULL, "the body must be a JSON object");
	keep = web_json_str(&j, "keep");
	if (keep == NULL || *keep == '\0' || strlen(keep) > 63)
		rc = web_api_error(r, MHD_HTTP_BAD_REQUEST, "keep",
				   "keep: the node whose configuration the cluster keeps");
	else if (core_sync_resolve(keep, r->session->user, err, sizeof(err)) != CORE_OK)
		rc = web_api_error(r, MHD_HTTP_CONFLICT, "keep", "%s", err);
	else {
		snprintf(detail, sizeof(detail), "kept %s's configuration", keep);
		web_api_audit(r, r->session->user, "cluster resolve", detail);
		rc = web_api_error(r, MHD_HTTP_OK, NULL, "%s", detail);
	}
	web_json_free(&j);
	return rc;
}

void web_api_config_start(struct core_loop *loop)
{
	cf.confirm_at = 0;
	core_timer_init(loop, &cf.confirm, confirm_expired, NULL);
}

void web_api_config_stop(void)
{
	core_timer_stop(&cf.confirm);
	cf.confirm_at = 0;
}

void web_api_config_status(struct core_buf *b)
{
	if (cf.confirm_at != 0)
		core_buf_printf(b, ",\"confirm\":{\"revision\":%lld,\"revert_to\":%lld,\"seconds\":%llu}",
				(long long)cf.confirm_rev, (long long)cf.confirm_back,
				(unsigned long long)((cf.confirm_at - web_api_now() + 999) / 1000));
}
