/* The config model: loads YAML against a schema of settings. One walk of
 * the libyaml document fills the structs, one walk of the schema fills
 * defaults, and every problem is collected with its file, line and path. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "conf.h"

#define CONF_PATH_MAX		256
#define CONF_ERR_MAX		512
#define CONF_MAX_ERRORS		100	/* past this, stop collecting */
#define CONF_MAX_DEFS		64	/* settings per section */
#define CONF_FILE_MAX		(4 << 20)

struct conf_block {
	struct conf_block *next;
	size_t		   used, size;
	max_align_t	   data[];
};

struct core_conf_load {
	struct core_conf *conf;
	yaml_document_t	 *doc;
};

/* ---- arena ----------------------------------------------------------------- */

static void *conf_alloc(struct core_conf *c, size_t n)
{
	struct conf_block *b = c->arena;
	size_t align = sizeof(max_align_t);
	void *p;

	n = (n + align - 1) / align * align;
	if (b == NULL || b->size - b->used < n) {
		size_t size = n > 8192 ? n : 8192;

		b = malloc(sizeof(*b) + size);
		if (b == NULL)
			return NULL;
		b->next = c->arena;
		b->used = 0;
		b->size = size;
		c->arena = b;
	}
	p = (char *)b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

static char *conf_strdup(struct core_conf *c, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = conf_alloc(c, n);

	if (p != NULL)
		memcpy(p, s, n);
	return p;
}

void core_conf_free(struct core_conf *conf)
{
	struct conf_block *b, *next;
	struct core_conf_err *e, *enext;

	if (conf == NULL)
		return;
	for (b = conf->arena; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	for (e = conf->errors; e != NULL; e = enext) {
		enext = e->next;
		free(e);
	}
	free(conf->file);
	free(conf);
}

/* ---- errors ---------------------------------------------------------------- */

static void conf_verror(struct core_conf *c, int line, const char *path,
			const char *fmt, va_list ap)
{
	char msg[CONF_ERR_MAX];
	struct core_conf_err *e, **tail;
	int n = 0;
	size_t len;

	c->nerrors++;
	if (c->nerrors > CONF_MAX_ERRORS)
		return;
	if (c->nerrors == CONF_MAX_ERRORS) {
		fmt = "too many errors, stopping here";
		path = NULL;
	}

	if (line > 0)
		n = snprintf(msg, sizeof(msg), "%s:%d: ", c->file, line);
	else
		n = snprintf(msg, sizeof(msg), "%s: ", c->file);
	if (path != NULL && *path != '\0' && n >= 0 && (size_t)n < sizeof(msg))
		n += snprintf(msg + n, sizeof(msg) - (size_t)n, "%s: ", path);
	if (n >= 0 && (size_t)n < sizeof(msg))
		vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);

	len = strlen(msg) + 1;
	e = malloc(sizeof(*e) + len);
	if (e == NULL)
		return;
	memcpy(e->msg, msg, len);
	e->next = NULL;
	for (tail = &c->errors; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = e;
}

static void CORE_PRINTF(4, 5)
conf_error(struct core_conf *c, int line, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_verror(c, line, path, fmt, ap);
	va_end(ap);
}

void core_conf_error(struct core_conf_load *ld, int line, const char *path,
		     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_verror(ld->conf, line, path, fmt, ap);
	va_end(ap);
}

/* ---- scalar parsers: each returns NULL or a message ------------------------ */

static size_t conf_item_size(enum core_conf_type t, const struct core_conf_section *sub)
{
	switch (t) {
	case CORE_CONF_BOOL:		return sizeof(bool);
	case CORE_CONF_INT:
	case CORE_CONF_SIZE:
	case CORE_CONF_DURATION:	return sizeof(int64_t);
	case CORE_CONF_STRING:		return sizeof(char *);
	case CORE_CONF_ENUM:		return sizeof(int);
	case CORE_CONF_ADDR:		return sizeof(struct core_conf_addr);
	case CORE_CONF_URL:		return sizeof(struct core_conf_url);
	case CORE_CONF_SECTION:		return sub->size;
	case CORE_CONF_LIST:
	case CORE_CONF_MAP:		return sizeof(struct core_conf_list);
	}
	return 0;
}

static const char *conf_type_name(enum core_conf_type t)
{
	static const char *const names[] = {
		"bool", "integer", "size", "duration", "string", "enum",
		"address", "url", "section", "list", "map",
	};
	return names[t];
}

/* Writes v with the largest unit that divides it: 64k, 5s, 1500ms. */
static void conf_format_num(enum core_conf_type t, int64_t v, char *buf, size_t len)
{
	static const struct { const char *unit; int64_t mul; }
		sizes[] = { { "G", 1 << 30 }, { "M", 1 << 20 }, { "k", 1 << 10 } },
		times[] = { { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 },
			    { "s", 1000 } };
	size_t i;

	if (t == CORE_CONF_SIZE && v != 0) {
		for (i = 0; i < CORE_ARRAY_SIZE(sizes); i++)
			if (v % sizes[i].mul == 0) {
				snprintf(buf, len, "%lld%s",
					 (long long)(v / sizes[i].mul), sizes[i].unit);
				return;
			}
	}
	if (t == CORE_CONF_DURATION) {
		for (i = 0; v != 0 && i < CORE_ARRAY_SIZE(times); i++)
			if (v % times[i].mul == 0) {
				snprintf(buf, len, "%lld%s",
					 (long long)(v / times[i].mul), times[i].unit);
				return;
			}
		snprintf(buf, len, "%lldms", (long long)v);
		return;
	}
	snprintf(buf, len, "%lld", (long long)v);
}

static int conf_parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (*s == '\0' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s)
		return -1;
	*out = v;
	return (int)(end - s);
}

static const char *conf_parse_scaled(enum core_conf_type t, const char *s,
				     int64_t *out)
{
	static const struct { const char *unit; int64_t mul; }
		sizes[] = { { "", 1 }, { "b", 1 }, { "k", 1 << 10 },
			    { "kb", 1 << 10 }, { "m", 1 << 20 }, { "mb", 1 << 20 },
			    { "g", 1 << 30 }, { "gb", 1 << 30 } },
		times[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
			    { "h", 3600000 }, { "d", 86400000 } };
	const __typeof__(sizes[0]) *units = t == CORE_CONF_SIZE ? sizes : times;
	size_t nunits = t == CORE_CONF_SIZE ? CORE_ARRAY_SIZE(sizes)
					    : CORE_ARRAY_SIZE(times);
	int64_t v;
	int n;
	size_t i;

	n = conf_parse_int(s, &v);
	if (n < 0 || v < 0)
		return t == CORE_CONF_SIZE ? "not a size (like 512, 64k, 4M, 1G)"
					   : "not a duration (like 250ms, 5s, 2m, 1h)";
	s += n;
	if (*s == '\0' && v == 0) {
		*out = 0;
		return NULL;
	}
	for (i = 0; i < nunits; i++) {
		if (strcasecmp(s, units[i].unit) != 0)
			continue;
		if (v > INT64_MAX / units[i].mul)
			return "too large";
		*out = v * units[i].mul;
		return NULL;
	}
	return t == CORE_CONF_SIZE ? "unknown size unit (use k, M or G)"
				   : "needs a unit: ms, s, m, h or d";
}

static const char *conf_parse_addr(const char *s, struct core_conf_addr *a)
{
	char host[64];
	const char *colon, *port;
	int64_t p;
	size_t hlen;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&a->sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->sa;

	memset(a, 0, sizeof(*a));
	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return "IPv6 addresses are written [addr]:port";
		hlen = (size_t)(close - s - 1);
		port = close + 2;
		if (hlen >= sizeof(host))
			return "address too long";
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			return "not an IPv6 address";
		in6->sin6_family = AF_INET6;
		a->salen = sizeof(*in6);
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return "needs a port: host:port";
		hlen = (size_t)(colon - s);
		port = colon + 1;
		if (hlen >= sizeof(host))
			return "address too long";
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		if (strcmp(host, "*") == 0 || hlen == 0)
			strcpy(host, "0.0.0.0");
		if (strchr(host, ':') != NULL)
			return "IPv6 addresses are written [addr]:port";
		if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
			return "not an IPv4 address (names are not resolved here)";
		in4->sin_family = AF_INET;
		a->salen = sizeof(*in4);
	}
	if (conf_parse_int(port, &p) != (int)strlen(port) || p < 1 || p > 65535)
		return "port must be 1..65535";
	if (a->sa.ss_family == AF_INET6) {
		in6->sin6_port = htons((uint16_t)p);
		snprintf(a->text, sizeof(a->text), "[%s]:%d", host, (int)p);
	} else {
		in4->sin_port = htons((uint16_t)p);
		snprintf(a->text, sizeof(a->text), "%s:%d", host, (int)p);
	}
	return NULL;
}

static const char *conf_parse_url(const char *s, struct core_conf_url *u)
{
	const char *host = s + 7, *slash, *why;
	char hostport[160];
	size_t hlen, i;

	memset(u, 0, sizeof(*u));
	if (strncmp(s, "https://", 8) == 0)
		return "https is not supported yet; use http://";
	if (strncmp(s, "http://", 7) != 0)
		return "must start with http://";
	if (strlen(s) >= sizeof(u->text))
		return "too long";
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return "spaces and control characters are not allowed";
	slash = strchr(host, '/');
	hlen = slash ? (size_t)(slash - host) : strlen(host);
	if (hlen == 0 || hlen >= sizeof(u->host))
		return "needs a host";
	memcpy(u->host, host, hlen);
	u->host[hlen] = '\0';
	snprintf(u->path, sizeof(u->path), "%s", slash ? slash : "/");
	snprintf(u->text, sizeof(u->text), "%s", s);

	/* localhost is the only name: others would need DNS. */
	if (strncmp(u->host, "localhost", 9) == 0 && (u->host[9] == '\0' || u->host[9] == ':'))
		snprintf(hostport, sizeof(hostport), "127.0.0.1%s",
			 u->host[9] == ':' ? u->host + 9 : ":80");
	else if (u->host[0] == '[' ? strstr(u->host, "]:") != NULL
				   : strchr(u->host, ':') != NULL)
		snprintf(hostport, sizeof(hostport), "%s", u->host);
	else
		snprintf(hostport, sizeof(hostport), "%s:80", u->host);
	why = conf_parse_addr(hostport, &u->addr);
	if (why != NULL)
		return strstr(why, "IPv4") ? "the host must be an IP address or localhost "
					     "(names are not resolved)" : why;
	return NULL;
}

/*
 * Parses one scalar of type t into p. Returns NULL, or a message; messages
 * built here go to buf. The value is quoted back only if not secret.
 */
static const char *conf_parse_scalar(struct core_conf *c,
				     const struct core_conf_def *d,
				     enum core_conf_type t, const char *s,
				     void *p, char *buf, size_t len)
{
	const char *shown = d->flags & CORE_CONF_SECRET ? "(secret)" : s;
	char lo[32], hi[32];
	const char *why;
	int64_t v, min = d->min, max = d->max;
	size_t i;

	/* A list's bounds count its items; an item's own are generous. */
	if (d->type == CORE_CONF_LIST) {
		min = t == CORE_CONF_STRING ? 1 : INT64_MIN;
		max = t == CORE_CONF_STRING ? 1024 : INT64_MAX;
	}

	switch (t) {
	case CORE_CONF_BOOL:
		if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
			*(bool *)p = true;
		else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
			*(bool *)p = false;
		else {
			snprintf(buf, len, "must be true or false, got '%s'", shown);
			return buf;
		}
		return NULL;

	case CORE_CONF_INT:
	case CORE_CONF_SIZE:
	case CORE_CONF_DURATION:
		if (t == CORE_CONF_INT) {
			why = conf_parse_int(s, &v) == (int)strlen(s) ? NULL
				: "not an integer";
		} else
			why = conf_parse_scaled(t, s, &v);
		if (why != NULL) {
			snprintf(buf, len, "%s, got '%s'", why, shown);
			return buf;
		}
		if (v < min || v > max) {
			conf_format_num(t, min, lo, sizeof(lo));
			conf_format_num(t, max, hi, sizeof(hi));
			snprintf(buf, len, "must be %s..%s, got %s", lo, hi, shown);
			return buf;
		}
		*(int64_t *)p = v;
		return NULL;

	case CORE_CONF_STRING:
		for (i = 0; s[i] != '\0'; i++)
			if (((unsigned char)s[i] < 0x20 || s[i] == 0x7f) &&
			    !((d->flags & CORE_CONF_TEXT) && (s[i] == '\n' || s[i] == '\t'))) {
				snprintf(buf, len, "control characters are not allowed");
				return buf;
			}
		if ((int64_t)i < min || (int64_t)i > max) {
			snprintf(buf, len, "length must be %lld..%lld, got %zu",
				 (long long)min, (long long)max, i);
			return buf;
		}
		if ((*(char **)p = conf_strdup(c, s)) == NULL)
			return "out of memory";
		return NULL;

	case CORE_CONF_ENUM:
		for (i = 0; d->enums[i] != NULL; i++)
			if (strcmp(s, d->enums[i]) == 0) {
				*(int *)p = (int)i;
				return NULL;
			}
		{
			size_t n = (size_t)snprintf(buf, len, "must be one of");

			for (i = 0; d->enums[i] != NULL && n < len; i++)
				n += (size_t)snprintf(buf + n, len - n, "%s %s",
						      i ? "," : "", d->enums[i]);
			if (n < len)
				snprintf(buf + n, len - n, "; got '%s'", shown);
		}
		return buf;

	case CORE_CONF_ADDR:
		why = conf_parse_addr(s, p);
		if (why != NULL) {
			snprintf(buf, len, "%s, got '%s'", why, shown);
			return buf;
		}
		return NULL;

	case CORE_CONF_URL:
		why = conf_parse_url(s, p);
		if (why != NULL) {
			snprintf(buf, len, "%s, got '%s'", why, shown);
			return buf;
		}
		return NULL;

	default:
		return "not a scalar setting";
	}
}

/* ---- the walk ------------------------------------------------------------- */

static void conf_load_section(struct core_conf_load *ld,
			      const struct core_conf_section *sec, void *obj,
			      yaml_node_t *node, const char *path, int line);

static int node_line(const yaml_node_t *n)
{
	return n != NULL ? (int)n->start_mark.line + 1 : 0;
}

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE:		return "a mapping";
	case YAML_SEQUENCE_NODE:	return "a list";
	default:			return "a single value";
	}
}

/* Paths longer than CONF_PATH_MAX are cut; they only name things in messages. */
static void CORE_PRINTF(3, 4)
path_fmt(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, len, fmt, ap);
	va_end(ap);
}

static void path_join(char *out, size_t len, const char *path, const char *name)
{
	if (*path == '\0')
		path_fmt(out, len, "%s", name);
	else
		path_fmt(out, len, "%s.%s", path, name);
}

static void conf_load_scalar(struct core_conf_load *ld,
			     const struct core_conf_def *d, enum core_conf_type t,
			     void *p, yaml_node_t *n, const char *path)
{
	char buf[CONF_ERR_MAX];
	const char *why;

	if (n->type != YAML_SCALAR_NODE) {
		conf_error(ld->conf, node_line(n), path,
			   "expected a single %s value, got %s", conf_type_name(t),
			   node_kind(n));
		return;
	}
	if (n->data.scalar.length == 0 && t != CORE_CONF_STRING) {
		conf_error(ld->conf, node_line(n), path, "no value given");
		return;
	}
	if (strlen((char *)n->data.scalar.value) != n->data.scalar.length) {
		conf_error(ld->conf, node_line(n), path, "NUL byte in value");
		return;
	}
	why = conf_parse_scalar(ld->conf, d, t, (char *)n->data.scalar.value, p,
				buf, sizeof(buf));
	if (why != NULL)
		conf_error(ld->conf, node_line(n), path, "%s", why);
}

static void conf_load_list(struct core_conf_load *ld, const struct core_conf_def *d,
			   struct core_conf_list *l, yaml_node_t *n, const char *path)
{
	size_t isize = conf_item_size(d->item, d->sub), count, i;
	char ipath[CONF_PATH_MAX];
	yaml_node_item_t *it;

	if (n->type != YAML_SEQUENCE_NODE) {
		conf_error(ld->conf, node_line(n), path, "expected a list, got %s",
			   node_kind(n));
		return;
	}
	count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if ((int64_t)count < d->min || (int64_t)count > d->max) {
		conf_error(ld->conf, node_line(n), path,
			   "must have %lld..%lld items, got %zu",
			   (long long)d->min, (long long)d->max, count);
		return;
	}
	l->n = count;
	l->v = count ? conf_alloc(ld->conf, isize * count) : NULL;
	if (count && l->v == NULL) {
		conf_error(ld->conf, node_line(n), path, "out of memory");
		return;
	}
	for (i = 0, it = n->data.sequence.items.start; i < count; i++, it++) {
		yaml_node_t *in = yaml_document_get_node(ld->doc, *it);
		void *ip = (char *)l->v + i * isize;

		path_fmt(ipath, sizeof(ipath), "%s[%zu]", path, i);
		if (d->item == CORE_CONF_SECTION)
			conf_load_section(ld, d->sub, ip, in, ipath, node_line(in));
		else
			conf_load_scalar(ld, d, d->item, ip, in, ipath);
	}
}

static void conf_load_map(struct core_conf_load *ld, const struct core_conf_def *d,
			  struct core_conf_list *l, yaml_node_t *n, const char *path)
{
	size_t isize = d->sub->size, count, i, j;
	char ipath[CONF_PATH_MAX];
	yaml_node_pair_t *pr;

	if (n->type != YAML_MAPPING_NODE) {
		conf_error(ld->conf, node_line(n), path,
			   "expected a mapping of names, got %s", node_kind(n));
		return;
	}
	count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	if ((int64_t)count < d->min || (int64_t)count > d->max) {
		conf_error(ld->conf, node_line(n), path,
			   "must have %lld..%lld entries, got %zu",
			   (long long)d->min, (long long)d->max, count);
		return;
	}
	l->n = 0;
	l->v = count ? conf_alloc(ld->conf, isize * count) : NULL;
	if (count && l->v == NULL) {
		conf_error(ld->conf, node_line(n), path, "out of memory");
		return;
	}
	for (i = 0, pr = n->data.mapping.pairs.start; i < count; i++, pr++) {
		yaml_node_t *k = yaml_document_get_node(ld->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(ld->doc, pr->value);
		const char *name;
		void *ip = (char *)l->v + l->n * isize;
		int dup = 0;

		if (k->type != YAML_SCALAR_NODE || k->data.scalar.length == 0 ||
		    k->data.scalar.length > 63) {
			conf_error(ld->conf, node_line(k), path,
				   "names must be 1..63 characters");
			continue;
		}
		name = (const char *)k->data.scalar.value;
		for (j = 0; j < l->n && !dup; j++)
			dup = !strcmp(*(char **)((char *)l->v + j * isize), name);
		path_join(ipath, sizeof(ipath), path, name);
		if (dup) {
			conf_error(ld->conf, node_line(k), ipath, "defined twice");
			continue;
		}
		*(char **)ip = conf_strdup(ld->conf, name);
		l->n++;
		conf_load_section(ld, d->sub, ip, v, ipath, node_line(k));
	}
}

/* Fills a setting that the file left out: its default, or an error. */
static void conf_load_default(struct core_conf_load *ld,
			      const struct core_conf_def *d, void *p,
			      const char *path, int line)
{
	char buf[CONF_ERR_MAX], item[256];
	const char *why, *s, *comma;
	struct core_conf_list *l = p;
	size_t isize, n;

	if (d->flags & CORE_CONF_REQUIRED) {
		conf_error(ld->conf, line, path, "required setting is missing");
		return;
	}
	switch (d->type) {
	case CORE_CONF_SECTION:
		conf_load_section(ld, d->sub, p, NULL, path, line);
		return;
	case CORE_CONF_MAP:
		return;		/* empty */
	case CORE_CONF_LIST:
		if (d->dflt == NULL || *d->dflt == '\0')
			return;
		isize = conf_item_size(d->item, d->sub);
		for (n = 1, s = d->dflt; (s = strchr(s, ',')) != NULL; s++)
			n++;
		l->v = conf_alloc(ld->conf, isize * n);
		if (l->v == NULL)
			return;
		for (s = d->dflt; l->n < n; s = comma + 1) {
			comma = strchr(s, ',');
			if (comma == NULL)
				comma = s + strlen(s);
			snprintf(item, sizeof(item), "%.*s", (int)(comma - s), s);
			why = conf_parse_scalar(ld->conf, d, d->item, item,
						(char *)l->v + l->n * isize,
						buf, sizeof(buf));
			if (why != NULL) {
				conf_error(ld->conf, 0, path, "bad default: %s", why);
				return;
			}
			l->n++;
		}
		return;
	default:
		if (d->dflt == NULL)
			return;
		why = conf_parse_scalar(ld->conf, d, d->type, d->dflt, p,
					buf, sizeof(buf));
		if (why != NULL)
			conf_error(ld->conf, 0, path, "bad default: %s", why);
	}
}

/* Loads a mapping node (or only defaults, when node is NULL) into obj. */
static void conf_load_section(struct core_conf_load *ld,
			      const struct core_conf_section *sec, void *obj,
			      yaml_node_t *node, const char *path, int line)
{
	unsigned char seen[CONF_MAX_DEFS] = { 0 };
	char sub[CONF_PATH_MAX];
	const struct core_conf_def *d;
	yaml_node_pair_t *pr;
	size_t i;

	if (node != NULL && node->type == YAML_SCALAR_NODE &&
	    node->data.scalar.length == 0 && node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
		node = NULL;	/* "section:" with nothing under it */

	if (node != NULL && node->type != YAML_MAPPING_NODE) {
		conf_error(ld->conf, node_line(node), path,
			   "expected a mapping of settings, got %s", node_kind(node));
		return;
	}

	for (pr = node ? node->data.mapping.pairs.start : NULL;
	     node && pr < node->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(ld->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(ld->doc, pr->value);
		const char *name;

		if (k->type != YAML_SCALAR_NODE) {
			conf_error(ld->conf, node_line(k), path,
				   "setting names must be plain words");
			continue;
		}
		name = (const char *)k->data.scalar.value;
		for (i = 0, d = sec->defs; d->name != NULL; d++, i++)
			if (strcmp(d->name, name) == 0)
				break;
		path_join(sub, sizeof(sub), path, name);
		if (d->name == NULL) {
			conf_error(ld->conf, node_line(k), sub, "unknown setting");
			continue;
		}
		if (i >= CONF_MAX_DEFS) {	/* a schema bug, caught by tests */
			conf_error(ld->conf, node_line(k), sub,
				   "section has more than %d settings", CONF_MAX_DEFS);
			continue;
		}
		if (seen[i]) {
			conf_error(ld->conf, node_line(k), sub, "set twice");
			continue;
		}
		seen[i] = 1;

		switch (d->type) {
		case CORE_CONF_SECTION:
			conf_load_section(ld, d->sub, (char *)obj + d->offset, v,
					  sub, node_line(k));
			break;
		case CORE_CONF_LIST:
			conf_load_list(ld, d, (void *)((char *)obj + d->offset), v, sub);
			break;
		case CORE_CONF_MAP:
			conf_load_map(ld, d, (void *)((char *)obj + d->offset), v, sub);
			break;
		default:
			conf_load_scalar(ld, d, d->type, (char *)obj + d->offset, v, sub);
		}
	}

	for (i = 0, d = sec->defs; d->name != NULL && i < CONF_MAX_DEFS; d++, i++) {
		if (seen[i])
			continue;
		path_join(sub, sizeof(sub), path, d->name);
		conf_load_default(ld, d, (char *)obj + d->offset, sub, line);
	}

	if (sec->line_offset != 0)
		*(int *)(void *)((char *)obj + sec->line_offset) = line;
	if (sec->check != NULL)
		sec->check(ld, obj, path, line);
}

struct core_conf *core_conf_load(const struct core_conf_section *schema,
				 const char *file, const char *text, size_t len)
{
	struct core_conf_load ld;
	struct core_conf *c;
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;

	if (text == NULL) {
		text = "";
		len = 0;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->schema = schema;
	c->file = strdup(file);
	c->root = conf_alloc(c, schema->size);
	if (c->file == NULL || c->root == NULL) {
		core_conf_free(c);
		return NULL;
	}

	if (!yaml_parser_initialize(&parser)) {
		conf_error(c, 0, NULL, "out of memory");
		return c;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		if (parser.error == YAML_MEMORY_ERROR || parser.problem == NULL)
			conf_error(c, 0, NULL, "out of memory while parsing");
		else
			conf_error(c, (int)parser.problem_mark.line + 1, NULL,
				   "YAML syntax: %s%s%s", parser.problem,
				   parser.context ? " " : "",
				   parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		return c;
	}

	ld.conf = c;
	ld.doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (root != NULL && root->type != YAML_MAPPING_NODE &&
	    !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0))
		conf_error(c, node_line(root), NULL,
			   "the top level must be a mapping of sections, got %s",
			   node_kind(root));
	else
		conf_load_section(&ld, schema, c->root,
				  root && root->type == YAML_MAPPING_NODE ? root : NULL,
				  "", 1);

	yaml_document_delete(&doc);

	/* A second document in the stream is almost surely a mistake. */
	if (c->nerrors == 0 && yaml_parser_load(&parser, &doc)) {
		if (yaml_document_get_root_node(&doc) != NULL)
			conf_error(c, (int)doc.start_mark.line + 1, NULL,
				   "only one YAML document is allowed");
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	return c;
}

struct core_conf *core_conf_load_file(const struct core_conf_section *schema,
				      const char *path)
{
	struct core_conf *c;
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int err = 0;

	f = fopen(path, "r");
	if (f != NULL) {
		text = malloc(CONF_FILE_MAX + 1);
		if (text != NULL) {
			len = fread(text, 1, CONF_FILE_MAX + 1, f);
			if (ferror(f))
				err = errno ? errno : EIO;
		} else
			err = ENOMEM;
		fclose(f);
	} else
		err = errno;

	if (err == 0 && len > CONF_FILE_MAX) {
		c = core_conf_load(schema, path, "", 0);
		if (c != NULL)
			conf_error(c, 0, NULL, "file is larger than %d bytes",
				   CONF_FILE_MAX);
	} else if (err == 0)
		c = core_conf_load(schema, path, text, len);
	else {
		c = core_conf_load(schema, path, "", 0);
		if (c != NULL)
			conf_error(c, 0, NULL, "cannot read: %s", strerror(err));
	}
	free(text);
	return c;
}

/* ---- reload diff ----------------------------------------------------------- */

static bool conf_equal(const struct core_conf_def *d, enum core_conf_type t,
		       const void *a, const void *b);

static bool conf_section_equal(const struct core_conf_section *sec,
			       const void *a, const void *b)
{
	const struct core_conf_def *d;

	for (d = sec->defs; d->name != NULL; d++)
		if (!conf_equal(d, d->type, (const char *)a + d->offset,
				(const char *)b + d->offset))
			return false;
	return true;
}

static bool conf_equal(const struct core_conf_def *d, enum core_conf_type t,
		       const void *a, const void *b)
{
	const struct core_conf_list *la = a, *lb = b;
	const char *sa, *sb;
	size_t i, isize;

	switch (t) {
	case CORE_CONF_BOOL:
		return *(const bool *)a == *(const bool *)b;
	case CORE_CONF_INT:
	case CORE_CONF_SIZE:
	case CORE_CONF_DURATION:
		return *(const int64_t *)a == *(const int64_t *)b;
	case CORE_CONF_ENUM:
		return *(const int *)a == *(const int *)b;
	case CORE_CONF_STRING:
		sa = *(char *const *)a;
		sb = *(char *const *)b;
		return sa == sb || (sa && sb && !strcmp(sa, sb));
	case CORE_CONF_ADDR:
		return !strcmp(((const struct core_conf_addr *)a)->text,
			       ((const struct core_conf_addr *)b)->text);
	case CORE_CONF_URL:
		return !strcmp(((const struct core_conf_url *)a)->text,
			       ((const struct core_conf_url *)b)->text);
	case CORE_CONF_SECTION:
		return conf_section_equal(d->sub, a, b);
	case CORE_CONF_LIST:
	case CORE_CONF_MAP:
		if (la->n != lb->n)
			return false;
		t = d->type == CORE_CONF_MAP ? CORE_CONF_SECTION : d->item;
		isize = conf_item_size(t, d->sub);
		for (i = 0; i < la->n; i++) {
			const char *ia = (const char *)la->v + i * isize;
			const char *ib = (const char *)lb->v + i * isize;

			if (t == CORE_CONF_SECTION ? !conf_section_equal(d->sub, ia, ib)
						   : !conf_equal(d, t, ia, ib))
				return false;
		}
		return true;
	}
	return false;
}

/* Copies a value of type t from another conf into c's arena. */
static int conf_copy(struct core_conf *c, const struct core_conf_def *d,
		     enum core_conf_type t, void *dst, const void *src)
{
	const struct core_conf_list *ls = src;
	struct core_conf_list *ld = dst;
	const struct core_conf_def *sd;
	size_t i, isize;

	switch (t) {
	case CORE_CONF_STRING:
		if (*(char *const *)src == NULL) {
			*(char **)dst = NULL;
			return CORE_OK;
		}
		*(char **)dst = conf_strdup(c, *(char *const *)src);
		return *(char **)dst ? CORE_OK : -ENOMEM;
	case CORE_CONF_SECTION:
		for (sd = d->sub->defs; sd->name != NULL; sd++)
			if (conf_copy(c, sd, sd->type, (char *)dst + sd->offset,
				      (const char *)src + sd->offset) != CORE_OK)
				return -ENOMEM;
		return CORE_OK;
	case CORE_CONF_LIST:
	case CORE_CONF_MAP:
		t = d->type == CORE_CONF_MAP ? CORE_CONF_SECTION : d->item;
		isize = conf_item_size(t, d->sub);
		ld->n = 0;
		ld->v = ls->n ? conf_alloc(c, isize * ls->n) : NULL;
		if (ls->n && ld->v == NULL)
			return -ENOMEM;
		for (i = 0; i < ls->n; i++) {
			/* A map item's name is the string its struct starts with. */
			if (d->type == CORE_CONF_MAP &&
			    conf_copy(c, d, CORE_CONF_STRING, (char *)ld->v + i * isize,
				      (const char *)ls->v + i * isize) != CORE_OK)
				return -ENOMEM;
			if (conf_copy(c, d, t, (char *)ld->v + i * isize,
				      (const char *)ls->v + i * isize) != CORE_OK)
				return -ENOMEM;
		}
		ld->n = ls->n;
		return CORE_OK;
	default:
		memcpy(dst, src, conf_item_size(t, d->sub));
		return CORE_OK;
	}
}

/* A setting a reload cannot change; a section is looked into instead. */
static bool keep_static(const struct core_conf_def *d)
{
	return d->type != CORE_CONF_SECTION && !(d->flags & CORE_CONF_RELOAD);
}

static bool keep_node(const struct core_conf_def *d)
{
	return (d->flags & CORE_CONF_NODE) != 0;
}

static size_t conf_keep_section(struct core_conf *c,
				const struct core_conf_section *sec, void *nobj,
				const void *oobj, const char *path,
				bool (*keep)(const struct core_conf_def *d),
				void (*fn)(const char *path, void *arg), void *arg)
{
	const struct core_conf_def *d;
	char sub[CONF_PATH_MAX];
	size_t n = 0;

	for (d = sec->defs; d->name != NULL; d++) {
		void *nv = (char *)nobj + d->offset;
		const void *ov = (const char *)oobj + d->offset;

		path_join(sub, sizeof(sub), path, d->name);
		if (keep(d)) {
			if (conf_equal(d, d->type, nv, ov))
				continue;
			if (conf_copy(c, d, d->type, nv, ov) != CORE_OK)
				conf_error(c, 0, sub, "out of memory");
			if (fn != NULL)
				fn(sub, arg);
			n++;
		} else if (d->type == CORE_CONF_SECTION)
			n += conf_keep_section(c, d->sub, nv, ov, sub, keep, fn, arg);
	}
	return n;
}

size_t core_conf_keep_static(struct core_conf *new, const struct core_conf *old,
			     void (*fn)(const char *path, void *arg), void *arg)
{
	return conf_keep_section(new, new->schema, new->root, old->root, "",
				 keep_static, fn, arg);
}

size_t core_conf_keep_node(struct core_conf *new, const struct core_conf *own)
{
	return conf_keep_section(new, new->schema, new->root, own->root, "",
				 keep_node, NULL, NULL);
}

int core_conf_take(struct core_conf *dst, const struct core_conf *src,
		   const char *const *names)
{
	const struct core_conf_def *d;
	size_t i;

	for (d = dst->schema->defs; d->name != NULL; d++)
		for (i = 0; names[i] != NULL; i++)
			if (strcmp(names[i], d->name) == 0 &&
			    conf_copy(dst, d, d->type, (char *)dst->root + d->offset,
				      (const char *)src->root + d->offset) != CORE_OK)
				return CORE_ERROR;
	return CORE_OK;
}

/* ---- reference --------------------------------------------------------------- */

static void conf_write_bounds(FILE *f, const struct core_conf_def *d)
{
	char lo[32], hi[32];
	size_t i;

	switch (d->type) {
	case CORE_CONF_INT:
	case CORE_CONF_SIZE:
	case CORE_CONF_DURATION:
		conf_format_num(d->type, d->min, lo, sizeof(lo));
		conf_format_num(d->type, d->max, hi, sizeof(hi));
		fprintf(f, "%s..%s", lo, hi);
		break;
	case CORE_CONF_STRING:
		fprintf(f, "%lld..%lld chars", (long long)d->min, (long long)d->max);
		break;
	case CORE_CONF_LIST:
		fprintf(f, "%lld..%lld %s items", (long long)d->min,
			(long long)d->max, conf_type_name(d->item));
		break;
	case CORE_CONF_MAP:
		fprintf(f, "%lld..%lld entries", (long long)d->min, (long long)d->max);
		break;
	case CORE_CONF_ENUM:
		for (i = 0; d->enums[i] != NULL; i++)
			fprintf(f, "%s`%s`", i ? ", " : "", d->enums[i]);
		break;
	default:
		break;
	}
}

static void conf_write_section(FILE *f, const struct core_conf_section *sec,
			       const char *path)
{
	const struct core_conf_def *d;
	char sub[CONF_PATH_MAX];
	int header = 0;

	for (d = sec->defs; d->name != NULL; d++) {
		if (d->type == CORE_CONF_SECTION)
			continue;
		if (!header) {
			fprintf(f, "\n## `%s`\n\n", *path ? path : "(top level)");
			if (sec->doc != NULL)
				fprintf(f, "%s\n\n", sec->doc);
			fprintf(f, "| setting | type | default | allowed | reload | description |\n");
			fprintf(f, "|---|---|---|---|---|---|\n");
			header = 1;
		}
		fprintf(f, "| `%s` | %s | %s%s%s | ", d->name, conf_type_name(d->type),
			d->dflt && *d->dflt ? "`" : "",
			d->flags & CORE_CONF_REQUIRED ? "(required)"
				: d->dflt && *d->dflt ? d->dflt : "(none)",
			d->dflt && *d->dflt ? "`" : "");
		conf_write_bounds(f, d);
		fprintf(f, " | %s | %s%s |\n",
			d->flags & CORE_CONF_RELOAD ? "yes" : "restart",
			d->doc ? d->doc : "",
			d->flags & CORE_CONF_SECRET ? " Secret: never shown in logs or exports." : "");
	}
	for (d = sec->defs; d->name != NULL; d++) {
		path_join(sub, sizeof(sub), path, d->name);
		if (d->type == CORE_CONF_SECTION)
			conf_write_section(f, d->sub, sub);
		else if (d->type == CORE_CONF_MAP) {
			strncat(sub, ".<name>", sizeof(sub) - strlen(sub) - 1);
			conf_write_section(f, d->sub, sub);
		} else if (d->type == CORE_CONF_LIST && d->item == CORE_CONF_SECTION) {
			strncat(sub, "[]", sizeof(sub) - strlen(sub) - 1);
			conf_write_section(f, d->sub, sub);
		}
	}
}

void core_conf_write_reference(FILE *f, const struct core_conf_section *schema)
{
	conf_write_section(f, schema, "");
}

/* ---- writing YAML and JSON ------------------------------------------------------------------- */

int core_json_str(struct core_buf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	int rc = core_buf_append(out, "\"", 1);

	for (; s != NULL && *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		char esc[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };

		if (ch == '"' || ch == '\\') {
			esc[1] = (char)ch;
			rc |= core_buf_append(out, esc, 2);
		} else if (ch < 0x20 || ch == 0x7f)
			rc |= core_buf_append(out, esc, 6);
		else
			rc |= core_buf_append(out, s, 1);
	}
	rc |= core_buf_append(out, "\"", 1);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

struct conf_writer {
	struct core_buf	*out;
	struct core_conf *scratch;	/* arena for defaults */
	bool		 json;
	bool		 secrets;	/* write them; else "(secret)" */
	bool		 shared;	/* leave out CORE_CONF_NODE settings */
	int		 rc;
};

static void w_put(struct conf_writer *w, const char *s, size_t n)
{
	w->rc |= core_buf_append(w->out, s, n);
}

static void w_puts(struct conf_writer *w, const char *s)
{
	w_put(w, s, strlen(s));
}

static void w_indent(struct conf_writer *w, int n)
{
	static const char sp[] = "                                                  ";

	w_put(w, sp, (size_t)(n < (int)sizeof(sp) - 1 ? n : (int)sizeof(sp) - 1));
}

/* A mapping key: plain when it is a simple word, quoted otherwise. */
static void w_key(struct conf_writer *w, const char *name)
{
	const char *p = name;

	if (!w->json && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_')) {
		for (p++; (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'; p++)
			;
		if (*p == '\0') {
			w_puts(w, name);
			w_put(w, ":", 1);
			return;
		}
	}
	w->rc |= core_json_str(w->out, name);
	w_put(w, ":", 1);
}

static void w_scalar(struct conf_writer *w, const struct core_conf_def *d,
		     enum core_conf_type t, const void *p)
{
	char num[32];
	const char *s;

	switch (t) {
	case CORE_CONF_BOOL:
		w_puts(w, *(const bool *)p ? "true" : "false");
		return;
	case CORE_CONF_INT:
		snprintf(num, sizeof(num), "%lld", (long long)*(const int64_t *)p);
		w_puts(w, num);
		return;
	case CORE_CONF_SIZE:
	case CORE_CONF_DURATION:
		conf_format_num(t, *(const int64_t *)p, num, sizeof(num));
		w->rc |= w->json ? core_json_str(w->out, num) : core_buf_append(w->out, num, strlen(num));
		return;
	case CORE_CONF_ENUM:
		w->rc |= core_json_str(w->out, d->enums[*(const int *)p]);
		return;
	case CORE_CONF_STRING:
		s = *(char *const *)p;
		if ((d->flags & CORE_CONF_SECRET) && !w->secrets && s != NULL && *s != '\0')
			s = "(secret)";
		w->rc |= core_json_str(w->out, s ? s : "");
		return;
	case CORE_CONF_ADDR:
		w->rc |= core_json_str(w->out, ((const struct core_conf_addr *)p)->text);
		return;
	case CORE_CONF_URL:
		w->rc |= core_json_str(w->out, ((const struct core_conf_url *)p)->text);
		return;
	default:
		return;
	}
}

/* True when the value is what the setting's default would give. */
static bool w_is_default(struct conf_writer *w, const struct core_conf_def *d, const void *p)
{
	const struct core_conf_list *l = p;
	const struct core_conf_def *sd;
	struct core_conf_load ld = { .conf = w->scratch, .doc = NULL };
	union {
		int64_t		      i;
		struct core_conf_list l;
		struct core_conf_url  url;
	} dv;
	size_t before = w->scratch->nerrors;

	switch (d->type) {
	case CORE_CONF_SECTION:
		for (sd = d->sub->defs; sd->name != NULL; sd++)
			if (!w_is_default(w, sd, (const char *)p + sd->offset))
				return false;
		return true;
	case CORE_CONF_MAP:
		return l->n == 0;
	default:
		if (d->flags & CORE_CONF_REQUIRED)
			return false;
		if (d->type == CORE_CONF_STRING && d->dflt == NULL)	/* unset is "" */
			return *(char *const *)p == NULL || **(char *const *)p == '\0';
		memset(&dv, 0, sizeof(dv));
		conf_load_default(&ld, d, &dv, "", 0);
		if (w->scratch->nerrors != before)
			return false;
		return conf_equal(d, d->type, &dv, p);
	}
}

static void w_section(struct conf_writer *w, const struct core_conf_section *sec,
		      const void *obj, int indent);

static void w_value(struct conf_writer *w, const struct core_conf_def *d, const void *p,
		    int indent)
{
	const struct core_conf_list *l = p;
	enum core_conf_type t;
	size_t i, isize;

	switch (d->type) {
	case CORE_CONF_SECTION:
		w_section(w, d->sub, p, indent + 2);
		return;
	case CORE_CONF_LIST:
	case CORE_CONF_MAP:
		t = d->type == CORE_CONF_MAP ? CORE_CONF_SECTION : d->item;
		isize = conf_item_size(t, d->sub);
		if (w->json)
			w_put(w, d->type == CORE_CONF_MAP ? "{" : "[", 1);
		else if (l->n == 0)
			w_puts(w, d->type == CORE_CONF_MAP ? " {}\n" : " []\n");
		else
			w_put(w, "\n", 1);
		for (i = 0; i < l->n; i++) {
			const char *ip = (const char *)l->v + i * isize;

			if (w->json && i > 0)
				w_put(w, ",", 1);
			if (d->type == CORE_CONF_MAP) {
				if (!w->json)
					w_indent(w, indent + 2);
				size_t before;

				w_key(w, *(char *const *)ip);
				before = core_buf_len(w->out);
				w_section(w, d->sub, ip, indent + 4);
				if (!w->json && core_buf_len(w->out) == before)
					w_puts(w, " {}\n");	/* all defaults */
			} else if (t == CORE_CONF_SECTION) {
				struct core_buf item, *saved = w->out;

				if (w->json) {
					w_section(w, d->sub, ip, 0);
					continue;
				}
				/* The first setting goes on the "- " line. */
				core_buf_init(&item, saved->max);
				w->out = &item;
				w_section(w, d->sub, ip, indent + 4);
				w->out = saved;
				w_indent(w, indent + 2);
				if (core_buf_len(&item) <= 1)
					w_puts(w, "- {}\n");
				else {
					w_puts(w, "- ");
					w_put(w, core_buf_head(&item) + 1 + indent + 4,
					      core_buf_len(&item) - 1 - (size_t)(indent + 4));
				}
				core_buf_free(&item);
			} else {
				if (!w->json) {
					w_indent(w, indent + 2);
					w_puts(w, "- ");
				}
				w_scalar(w, d, t, ip);
				if (!w->json)
					w_put(w, "\n", 1);
			}
		}
		if (w->json)
			w_put(w, d->type == CORE_CONF_MAP ? "}" : "]", 1);
		return;
	default:
		if (!w->json)
			w_put(w, " ", 1);
		w_scalar(w, d, d->type, p);
		if (!w->json)
			w_put(w, "\n", 1);
	}
}

/* YAML: the settings that differ from their defaults, one per line under
 * a newline; JSON: every setting, as an object. */
static void w_section(struct conf_writer *w, const struct core_conf_section *sec,
		      const void *obj, int indent)
{
	const struct core_conf_def *d;
	bool first = true;

	if (w->json)
		w_put(w, "{", 1);
	else
		w_put(w, "\n", 1);
	for (d = sec->defs; d->name != NULL; d++) {
		const void *p = (const char *)obj + d->offset;

		if ((w->shared && (d->flags & CORE_CONF_NODE)) || (!w->json && w_is_default(w, d, p)))
			continue;
		if (w->json && !first)
			w_put(w, ",", 1);
		first = false;
		if (!w->json)
			w_indent(w, indent);
		w_key(w, d->name);
		w_value(w, d, p, indent);
	}
	if (w->json)
		w_put(w, "}", 1);
	else if (first)
		w->out->end--;		/* nothing under it: take the newline back */
}

static int conf_write(struct core_buf *out, const struct core_conf *c, bool json, bool secrets,
		      bool shared)
{
	struct conf_writer w = { .out = out, .json = json, .secrets = secrets, .shared = shared };
	const struct core_conf_def *d;
	bool first = true;

	if ((w.scratch = calloc(1, sizeof(*w.scratch))) == NULL)
		return CORE_ERROR;
	if (json)
		w_put(&w, "{", 1);
	/* The top level: like a section, without the leading newline. */
	for (d = c->schema->defs; d->name != NULL; d++) {
		const void *p = (const char *)c->root + d->offset;

		if ((shared && (d->flags & CORE_CONF_NODE)) || (!json && w_is_default(&w, d, p)))
			continue;
		if (json && !first)
			w_put(&w, ",", 1);
		if (!json && !first && (d->type == CORE_CONF_SECTION || d->type == CORE_CONF_LIST ||
					d->type == CORE_CONF_MAP))
			w_put(&w, "\n", 1);	/* a blank line between blocks */
		first = false;
		w_key(&w, d->name);
		w_value(&w, d, p, -2 + 2);
	}
	if (json)
		w_put(&w, "}\n", 2);
	core_conf_free(w.scratch);
	return w.rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

int core_conf_write(struct core_buf *out, const struct core_conf *c, bool json, bool secrets)
{
	return conf_write(out, c, json, secrets, false);
}

int core_conf_write_shared(struct core_buf *out, const struct core_conf *c)
{
	return conf_write(out, c, false, true, true);
}

/* Secret strings written as "(secret)" (by an API client that was shown
 * the masked JSON) get the running value back: lists by position, maps by
 * name. */
static void conf_restore_section(struct core_conf *c, const struct core_conf_section *sec,
				 void *nobj, const void *oobj)
{
	const struct core_conf_def *d;
	size_t i, j, isize;

	for (d = sec->defs; d->name != NULL; d++) {
		void *nv = (char *)nobj + d->offset;
		const void *ov = (const char *)oobj + d->offset;
		const struct core_conf_list *ol = ov;
		struct core_conf_list *nl = nv;

		switch (d->type) {
		case CORE_CONF_STRING:
			if ((d->flags & CORE_CONF_SECRET) && *(char **)nv != NULL &&
			    !strcmp(*(char **)nv, "(secret)"))
				(void)conf_copy(c, d, CORE_CONF_STRING, nv, ov);
			break;
		case CORE_CONF_SECTION:
			conf_restore_section(c, d->sub, nv, ov);
			break;
		case CORE_CONF_LIST:
			if (d->item != CORE_CONF_SECTION)
				break;
			isize = d->sub->size;
			for (i = 0; i < nl->n && i < ol->n; i++)
				conf_restore_section(c, d->sub, (char *)nl->v + i * isize,
						     (const char *)ol->v + i * isize);
			break;
		case CORE_CONF_MAP:
			isize = d->sub->size;
			for (i = 0; i < nl->n; i++)
				for (j = 0; j < ol->n; j++)
					if (!strcmp(*(char **)((char *)nl->v + i * isize),
						    *(char *const *)((const char *)ol->v + j * isize)))
						conf_restore_section(c, d->sub,
								     (char *)nl->v + i * isize,
								     (const char *)ol->v + j * isize);
			break;
		default:
			break;
		}
	}
}

void core_conf_restore_secrets(struct core_conf *new, const struct core_conf *old)
{
	conf_restore_section(new, new->schema, new->root, old->root);
}
