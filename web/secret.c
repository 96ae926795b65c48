/* Secrets out of every answer: a configuration's text with the value of
 * each secret setting (CORE_CONF_SECRET in the settings table) replaced
 * by "(secret)", comments and layout kept; and the rule that a "(secret)"
 * sent back keeps the running value only while the secret's target (the
 * server it is a password for, the URL it signs for) is unchanged. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "api.h"
#include "core/buf.h"
#include "core/conf.h"
#include "core/settings.h"

#define SECRET_MASK	"\"(secret)\""
#define SECRET_MAX	256	/* secret values in one text */

struct mask_walk {
	yaml_parser_t	 p;
	size_t		 at[SECRET_MAX][2];	/* character ranges to replace */
	unsigned	 n;
	bool		 failed;
};

/* The next event; false at the end or on an error. */
static bool walk_next(struct mask_walk *w, yaml_event_t *ev)
{
	if (w->failed || !yaml_parser_parse(&w->p, ev)) {
		w->failed = true;
		return false;
	}
	return true;
}

/* Consumes the rest of the node that ev opened. */
static void walk_skip(struct mask_walk *w, yaml_event_t *ev)
{
	int depth = ev->type == YAML_MAPPING_START_EVENT || ev->type == YAML_SEQUENCE_START_EVENT;
	yaml_event_t e;

	while (depth > 0 && walk_next(w, &e)) {
		if (e.type == YAML_MAPPING_START_EVENT || e.type == YAML_SEQUENCE_START_EVENT)
			depth++;
		else if (e.type == YAML_MAPPING_END_EVENT || e.type == YAML_SEQUENCE_END_EVENT)
			depth--;
		yaml_event_delete(&e);
	}
}

static void walk_section(struct mask_walk *w, const struct core_conf_section *sec,
			 yaml_event_t *ev);

/* The value of setting d, whose first event is ev. */
static void walk_value(struct mask_walk *w, const struct core_conf_def *d, yaml_event_t *ev)
{
	yaml_event_t e;

	if (d == NULL) {
		walk_skip(w, ev);
		return;
	}
	if (d->type == CORE_CONF_STRING && (d->flags & CORE_CONF_SECRET)) {
		if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.length > 0) {
			if (w->n == SECRET_MAX) {
				w->failed = true;
				return;
			}
			w->at[w->n][0] = ev->start_mark.index;
			w->at[w->n][1] = ev->end_mark.index;
			w->n++;
		} else
			walk_skip(w, ev);
		return;
	}
	if (d->type == CORE_CONF_SECTION && ev->type == YAML_MAPPING_START_EVENT) {
		walk_section(w, d->sub, ev);
		return;
	}
	if (d->type == CORE_CONF_LIST && d->item == CORE_CONF_SECTION &&
	    ev->type == YAML_SEQUENCE_START_EVENT) {
		while (walk_next(w, &e)) {
			if (e.type == YAML_SEQUENCE_END_EVENT) {
				yaml_event_delete(&e);
				return;
			}
			if (e.type == YAML_MAPPING_START_EVENT)
				walk_section(w, d->sub, &e);
			else
				walk_skip(w, &e);
			yaml_event_delete(&e);
		}
		return;
	}
	if (d->type == CORE_CONF_MAP && ev->type == YAML_MAPPING_START_EVENT) {
		while (walk_next(w, &e)) {		/* name: { section } */
			yaml_event_t v;

			if (e.type == YAML_MAPPING_END_EVENT) {
				yaml_event_delete(&e);
				return;
			}
			walk_skip(w, &e);
			yaml_event_delete(&e);
			if (!walk_next(w, &v))
				return;
			if (v.type == YAML_MAPPING_START_EVENT)
				walk_section(w, d->sub, &v);
			else
				walk_skip(w, &v);
			yaml_event_delete(&v);
		}
		return;
	}
	walk_skip(w, ev);
}

/* A mapping described by sec; ev opened it. */
static void walk_section(struct mask_walk *w, const struct core_conf_section *sec,
			 yaml_event_t *ev)
{
	yaml_event_t k, v;

	(void)ev;
	while (walk_next(w, &k)) {
		const struct core_conf_def *d = NULL;

		if (k.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&k);
			return;
		}
		if (k.type == YAML_SCALAR_EVENT)
			for (d = sec->defs; d->name != NULL; d++)
				if (!strcmp(d->name, (const char *)k.data.scalar.value))
					break;
		if (d != NULL && d->name == NULL)
			d = NULL;
		if (k.type != YAML_SCALAR_EVENT)
			walk_skip(w, &k);
		yaml_event_delete(&k);
		if (!walk_next(w, &v))
			return;
		walk_value(w, d, &v);
		yaml_event_delete(&v);
	}
}

static int range_cmp(const void *a, const void *b)
{
	const size_t *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* From byte (character *ch) on to character to; the new byte offset. */
static size_t utf8_advance(const char *t, size_t len, size_t byte, size_t *ch, size_t to)
{
	while (byte < len && *ch < to) {
		byte++;
		while (byte < len && ((unsigned char)t[byte] & 0xc0) == 0x80)
			byte++;
		(*ch)++;
	}
	return byte;
}

int web_secret_mask(const char *text, size_t len, struct core_buf *out)
{
	struct mask_walk *w = calloc(1, sizeof(*w));
	yaml_event_t ev;
	size_t byte = 0, ch = 0, i;
	int rc = CORE_ERROR;

	if (w == NULL)
		return CORE_ERROR;
	if (web_json_too_deep(text, len, WEB_JSON_DEPTH) || !yaml_parser_initialize(&w->p)) {
		free(w);
		return CORE_ERROR;
	}
	yaml_parser_set_input_string(&w->p, (const unsigned char *)text, len);
	/* stream start, document start, then the root mapping */
	while (walk_next(w, &ev)) {
		yaml_event_type_t t = ev.type;

		if (t == YAML_MAPPING_START_EVENT)
			walk_section(w, &core_settings, &ev);
		else if (t == YAML_SEQUENCE_START_EVENT)
			walk_skip(w, &ev);
		yaml_event_delete(&ev);
		if (t == YAML_STREAM_END_EVENT)
			break;
	}
	if (w->failed)
		goto done;
	/* libyaml counts characters (after a BOM); the text is UTF-8. */
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		byte = 3;
	qsort(w->at, w->n, sizeof(w->at[0]), range_cmp);
	for (i = 0; i < w->n; i++) {
		size_t from = byte;

		byte = utf8_advance(text, len, byte, &ch, w->at[i][0]);
		if (core_buf_append(out, text + from, byte - from) != CORE_OK)
			goto done;
		byte = utf8_advance(text, len, byte, &ch, w->at[i][1]);
		if (core_buf_append(out, SECRET_MASK, strlen(SECRET_MASK)) != CORE_OK)
			goto done;
	}
	if (core_buf_append(out, text + byte, len - byte) != CORE_OK)
		goto done;
	rc = CORE_OK;
done:
	yaml_parser_delete(&w->p);
	explicit_bzero(w, sizeof(*w));
	free(w);
	return rc;
}

/* ---- kept secrets and their targets -------------------------------------------------------------- */

static bool masked(const char *s)
{
	return s != NULL && !strcmp(s, "(secret)");
}

bool web_conf_str_same(const char *a, const char *b)
{
	return !strcmp(a != NULL ? a : "", b != NULL ? b : "");
}

bool web_conf_addrs_same(const struct core_conf_list *a, const struct core_conf_list *b)
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

/* One check per secret setting: the secret, and whether its target in the
 * new settings is the one it was given for. */
struct secret_rule {
	const char	*field;		/* a list's name, then [i] and suffix */
	const char	*suffix;
	bool		(*kept)(const struct keel_conf *n, size_t i);
	bool		(*same)(const struct keel_conf *n, const struct keel_conf *o, size_t i);
	size_t		(*count)(const struct keel_conf *n);
};

static size_t one(const struct keel_conf *n)
{
	(void)n;
	return 1;
}

static size_t webhooks(const struct keel_conf *n)
{
	return n->alerts.webhooks.n;
}

static bool webhook_kept(const struct keel_conf *n, size_t i)
{
	return masked(((const struct keel_webhook_conf *)n->alerts.webhooks.v)[i].secret);
}

/* The i-th webhook keeps its secret only if the old i-th had the same URL. */
static bool webhook_same(const struct keel_conf *n, const struct keel_conf *o, size_t i)
{
	const struct keel_webhook_conf *a = n->alerts.webhooks.v, *b = o->alerts.webhooks.v;

	return i < o->alerts.webhooks.n && !strcmp(a[i].url.text, b[i].url.text);
}

static bool smtp_kept(const struct keel_conf *n, size_t i)
{
	(void)i;
	return masked(n->alerts.email.password);
}

static bool smtp_same(const struct keel_conf *n, const struct keel_conf *o, size_t i)
{
	(void)i;
	return !strcmp(n->alerts.email.server.text, o->alerts.email.server.text) &&
	       web_conf_str_same(n->alerts.email.user, o->alerts.email.user) &&
	       web_conf_str_same(n->alerts.email.tls_name, o->alerts.email.tls_name);
}

static bool redis_kept(const struct keel_conf *n, size_t i)
{
	(void)i;
	return masked(n->redis.password);
}

static bool redis_same(const struct keel_conf *n, const struct keel_conf *o, size_t i)
{
	(void)i;
	return web_conf_addrs_same(&n->redis.nodes, &o->redis.nodes) &&
	       web_conf_addrs_same(&n->redis.sentinels, &o->redis.sentinels) &&
	       web_conf_str_same(n->redis.master_name, o->redis.master_name) &&
	       web_conf_str_same(n->redis.username, o->redis.username);
}

static bool sentinel_kept(const struct keel_conf *n, size_t i)
{
	(void)i;
	return masked(n->redis.sentinel_password);
}

static bool sentinel_same(const struct keel_conf *n, const struct keel_conf *o, size_t i)
{
	(void)i;
	return web_conf_addrs_same(&n->redis.sentinels, &o->redis.sentinels) &&
	       web_conf_str_same(n->redis.sentinel_username, o->redis.sentinel_username);
}

/* admin.metrics_token has no target outside keel: it is kept as it is. */
static const struct secret_rule secret_rules[] = {
	{ "alerts.webhooks", ".secret", webhook_kept, webhook_same, webhooks },
	{ "alerts.email.password", NULL, smtp_kept, smtp_same, one },
	{ "redis.password", NULL, redis_kept, redis_same, one },
	{ "redis.sentinel_password", NULL, sentinel_kept, sentinel_same, one },
};

int web_secret_check_targets(const void *new_settings, const void *old_settings,
			     char *field, size_t fieldlen)
{
	const struct keel_conf *n = new_settings, *o = old_settings;
	size_t r, i;

	for (r = 0; r < CORE_ARRAY_SIZE(secret_rules); r++) {
		const struct secret_rule *sr = &secret_rules[r];

		for (i = 0; i < sr->count(n); i++)
			if (sr->kept(n, i) && !sr->same(n, o, i)) {
				if (sr->suffix != NULL)
					snprintf(field, fieldlen, "%s[%zu]%s", sr->field, i, sr->suffix);
				else
					snprintf(field, fieldlen, "%s", sr->field);
				return CORE_ERROR;
			}
	}
	return CORE_OK;
}
