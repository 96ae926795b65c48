/* A small JSON reader into a tree, for keel's own answers read back (the
 * control socket's status in `keel status`). Bounded depth and size. */
#ifndef KEEL_CORE_JSON_H
#define KEEL_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define CORE_JSON_MAX_DEPTH	64

enum core_json_type {
	CORE_JSON_NULL = 0,
	CORE_JSON_BOOL,
	CORE_JSON_NUM,
	CORE_JSON_STR,
	CORE_JSON_ARR,
	CORE_JSON_OBJ
};

struct core_json {
	enum core_json_type type;
	char		*key;		/* its name in an object, else NULL */
	char		*str;		/* STR: UTF-8, NUL-terminated */
	double		 num;
	bool		 b;
	struct core_json *child;	/* ARR, OBJ: the first member */
	struct core_json *next;
};

/* The tree of text, or NULL with where and why in err. */
struct core_json *core_json_parse(const char *text, size_t len, char *err, size_t errlen);
void core_json_free(struct core_json *j);

/* obj's member named key, or NULL (also when obj is not an object). */
const struct core_json *core_json_get(const struct core_json *obj, const char *key);
/* Shorthands: a member's string (or def), number (or def), bool (or def). */
const char *core_json_gets(const struct core_json *obj, const char *key, const char *def);
double core_json_getn(const struct core_json *obj, const char *key, double def);
bool core_json_getb(const struct core_json *obj, const char *key, bool def);

#endif
