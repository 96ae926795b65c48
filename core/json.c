/* JSON text to a tree (RFC 8259): objects, arrays, strings with every
 * escape (\u surrogate pairs to UTF-8), numbers, true, false, null. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct json_in {
	const char	*p, *end, *start;
	char		*err;
	size_t		 errlen;
};

static void json_fail(struct json_in *in, const char *why)
{
	if (in->err[0] == '\0')
		snprintf(in->err, in->errlen, "byte %zu: %s", (size_t)(in->p - in->start), why);
}

static void json_space(struct json_in *in)
{
	while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' ||
				   *in->p == '\r'))
		in->p++;
}

static int json_hex4(struct json_in *in, unsigned *out)
{
	unsigned v = 0, i;

	if (in->end - in->p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		char ch = *in->p++;

		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v |= (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v |= (unsigned)(ch - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* A string at in->p (after its quote) into a new buffer. */
static char *json_string(struct json_in *in)
{
	size_t cap = 32, n = 0;
	char *s = malloc(cap), *grown;

	while (s != NULL) {
		unsigned char ch;
		unsigned cp;

		if (in->p >= in->end) {
			json_fail(in, "unterminated string");
			break;
		}
		if (n + 5 > cap) {
			cap *= 2;
			if ((grown = realloc(s, cap)) == NULL)
				break;
			s = grown;
		}
		ch = (unsigned char)*in->p++;
		if (ch == '"') {
			s[n] = '\0';
			return s;
		}
		if (ch < 0x20) {
			json_fail(in, "control byte in a string");
			break;
		}
		if (ch != '\\') {
			s[n++] = (char)ch;
			continue;
		}
		if (in->p >= in->end) {
			json_fail(in, "unterminated string");
			break;
		}
		switch (*in->p++) {
		case '"': s[n++] = '"'; continue;
		case '\\': s[n++] = '\\'; continue;
		case '/': s[n++] = '/'; continue;
		case 'b': s[n++] = '\b'; continue;
		case 'f': s[n++] = '\f'; continue;
		case 'n': s[n++] = '\n'; continue;
		case 'r': s[n++] = '\r'; continue;
		case 't': s[n++] = '\t'; continue;
		case 'u': break;
		default:
			json_fail(in, "bad escape");
			goto fail;
		}
		if (json_hex4(in, &cp) != 0) {
			json_fail(in, "bad \\u escape");
			break;
		}
		if (cp >= 0xd800 && cp < 0xdc00) {	/* a surrogate pair */
			unsigned lo;

			if (in->end - in->p < 6 || in->p[0] != '\\' || in->p[1] != 'u' ||
			    (in->p += 2, json_hex4(in, &lo)) != 0 || lo < 0xdc00 || lo > 0xdfff) {
				json_fail(in, "a lone surrogate");
				break;
			}
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		} else if (cp >= 0xdc00 && cp < 0xe000) {
			json_fail(in, "a lone surrogate");
			break;
		}
		if (cp < 0x80)
			s[n++] = (char)cp;
		else if (cp < 0x800) {
			s[n++] = (char)(0xc0 | cp >> 6);
			s[n++] = (char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			s[n++] = (char)(0xe0 | cp >> 12);
			s[n++] = (char)(0x80 | (cp >> 6 & 0x3f));
			s[n++] = (char)(0x80 | (cp & 0x3f));
		} else {
			s[n++] = (char)(0xf0 | cp >> 18);
			s[n++] = (char)(0x80 | (cp >> 12 & 0x3f));
			s[n++] = (char)(0x80 | (cp >> 6 & 0x3f));
			s[n++] = (char)(0x80 | (cp & 0x3f));
		}
	}
fail:
	if (s == NULL)
		json_fail(in, "out of memory");
	free(s);
	return NULL;
}

static bool json_word(struct json_in *in, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(in->end - in->p) < n || memcmp(in->p, w, n) != 0)
		return false;
	in->p += n;
	return true;
}

static struct core_json *json_value(struct json_in *in, unsigned depth)
{
	struct core_json *j, **tail;
	char *end;

	json_space(in);
	if (in->p >= in->end) {
		json_fail(in, "a value was expected");
		return NULL;
	}
	if (depth > CORE_JSON_MAX_DEPTH) {
		json_fail(in, "nested too deep");
		return NULL;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		json_fail(in, "out of memory");
		return NULL;
	}
	switch (*in->p) {
	case '{':
	case '[': {
		char close = *in->p == '{' ? '}' : ']';

		j->type = close == '}' ? CORE_JSON_OBJ : CORE_JSON_ARR;
		in->p++;
		tail = &j->child;
		json_space(in);
		if (in->p < in->end && *in->p == close) {
			in->p++;
			return j;
		}
		for (;;) {
			char *key = NULL;
			struct core_json *m;

			json_space(in);
			if (j->type == CORE_JSON_OBJ) {
				if (in->p >= in->end || *in->p != '"') {
					json_fail(in, "a member name was expected");
					goto fail;
				}
				in->p++;
				if ((key = json_string(in)) == NULL)
					goto fail;
				json_space(in);
				if (in->p >= in->end || *in->p != ':') {
					free(key);
					json_fail(in, "':' was expected");
					goto fail;
				}
				in->p++;
			}
			if ((m = json_value(in, depth + 1)) == NULL) {
				free(key);
				goto fail;
			}
			m->key = key;
			*tail = m;
			tail = &m->next;
			json_space(in);
			if (in->p < in->end && *in->p == ',') {
				in->p++;
				continue;
			}
			if (in->p < in->end && *in->p == close) {
				in->p++;
				return j;
			}
			json_fail(in, close == '}' ? "',' or '}' was expected" :
				  "',' or ']' was expected");
			goto fail;
		}
	}
	case '"':
		in->p++;
		j->type = CORE_JSON_STR;
		if ((j->str = json_string(in)) == NULL)
			goto fail;
		return j;
	case 't':
	case 'f':
		j->type = CORE_JSON_BOOL;
		j->b = *in->p == 't';
		if (!json_word(in, j->b ? "true" : "false"))
			break;
		return j;
	case 'n':
		if (!json_word(in, "null"))
			break;
		return j;
	default: {
		char num[64];
		size_t n = 0;

		while (in->p + n < in->end && n < sizeof(num) - 1 &&
		       strchr("+-0123456789.eE", in->p[n]) != NULL)
			n++;
		memcpy(num, in->p, n);
		num[n] = '\0';
		j->type = CORE_JSON_NUM;
		j->num = strtod(num, &end);
		if (n == 0 || end != num + n)
			break;
		in->p += n;
		return j;
	}
	}
	json_fail(in, "not a JSON value");
fail:
	core_json_free(j);
	return NULL;
}

struct core_json *core_json_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct json_in in = { text, text + len, text, err, errlen };
	struct core_json *j;

	err[0] = '\0';
	j = json_value(&in, 0);
	json_space(&in);
	if (j != NULL && in.p != in.end) {
		json_fail(&in, "text after the value");
		core_json_free(j);
		return NULL;
	}
	return j;
}

void core_json_free(struct core_json *j)
{
	struct core_json *next;

	for (; j != NULL; j = next) {
		next = j->next;
		core_json_free(j->child);
		free(j->key);
		free(j->str);
		free(j);
	}
}

const struct core_json *core_json_get(const struct core_json *obj, const char *key)
{
	const struct core_json *m;

	if (obj == NULL || obj->type != CORE_JSON_OBJ)
		return NULL;
	for (m = obj->child; m != NULL; m = m->next)
		if (strcmp(m->key, key) == 0)
			return m;
	return NULL;
}

const char *core_json_gets(const struct core_json *obj, const char *key, const char *def)
{
	const struct core_json *m = core_json_get(obj, key);

	return m != NULL && m->type == CORE_JSON_STR ? m->str : def;
}

double core_json_getn(const struct core_json *obj, const char *key, double def)
{
	const struct core_json *m = core_json_get(obj, key);

	return m != NULL && m->type == CORE_JSON_NUM ? m->num : def;
}

bool core_json_getb(const struct core_json *obj, const char *key, bool def)
{
	const struct core_json *m = core_json_get(obj, key);

	return m != NULL && m->type == CORE_JSON_BOOL ? m->b : def;
}
