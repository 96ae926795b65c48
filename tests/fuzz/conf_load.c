/* libFuzzer target for the config loader: arbitrary bytes as keel.yaml,
 * against keel's own settings and against a schema with every type nested
 * (maps of sections holding lists of sections). A loaded config is also
 * put through the reload copy, then freed before its copy is read. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "core/conf.h"
#include "core/core.h"
#include "core/settings.h"

struct f_item {
	struct core_conf_addr addr;
	int64_t		n;
	bool		b;
};

struct f_group {
	char		*name;
	struct core_conf_list items;
	int64_t		size;
	int64_t		time;
};

struct f_root {
	char		*s;
	int		e;
	struct core_conf_list tags;
	struct core_conf_list groups;
};

static const struct core_conf_def item_defs[] = {
	{ .name = "addr", .type = CORE_CONF_ADDR, .flags = CORE_CONF_REQUIRED,
	  .offset = offsetof(struct f_item, addr) },
	{ .name = "n", .type = CORE_CONF_INT, .dflt = "1", .min = 1, .max = 256,
	  .offset = offsetof(struct f_item, n) },
	{ .name = "b", .type = CORE_CONF_BOOL, .dflt = "false",
	  .offset = offsetof(struct f_item, b) },
	{ 0 }
};
static const struct core_conf_section item_sec = { .size = sizeof(struct f_item), .defs = item_defs };

static const struct core_conf_def group_defs[] = {
	{ .name = "items", .type = CORE_CONF_LIST, .item = CORE_CONF_SECTION,
	  .sub = &item_sec, .max = 16, .offset = offsetof(struct f_group, items) },
	{ .name = "size", .type = CORE_CONF_SIZE, .dflt = "1M", .max = INT64_MAX,
	  .offset = offsetof(struct f_group, size) },
	{ .name = "time", .type = CORE_CONF_DURATION, .dflt = "5s", .max = INT64_MAX,
	  .offset = offsetof(struct f_group, time) },
	{ 0 }
};
static const struct core_conf_section group_sec = { .size = sizeof(struct f_group), .defs = group_defs };

static const char *const names[] = { "a", "b", NULL };

static const struct core_conf_def root_defs[] = {
	{ .name = "s", .type = CORE_CONF_STRING, .flags = CORE_CONF_SECRET, .max = 64,
	  .offset = offsetof(struct f_root, s) },
	{ .name = "e", .type = CORE_CONF_ENUM, .enums = names, .dflt = "a",
	  .offset = offsetof(struct f_root, e) },
	{ .name = "tags", .type = CORE_CONF_LIST, .item = CORE_CONF_STRING,
	  .dflt = "x,y", .max = 8, .offset = offsetof(struct f_root, tags) },
	{ .name = "groups", .type = CORE_CONF_MAP, .sub = &group_sec, .max = 32,
	  .offset = offsetof(struct f_root, groups) },
	{ 0 }
};
static const struct core_conf_section root_sec = { .size = sizeof(struct f_root), .defs = root_defs };

static void ignore(const char *path, void *arg)
{
	(void)path;
	(void)arg;
}

/* What keel writes (YAML for the store, JSON for the API) loads back to the
 * same settings: the YAML written again is byte for byte the same. */
static void round_trip(const struct core_conf_section *schema, const struct core_conf *c)
{
	struct core_buf y1, y2, js;
	struct core_conf *a, *b;

	core_buf_init(&y1, 1 << 24);
	core_buf_init(&y2, 1 << 24);
	core_buf_init(&js, 1 << 24);
	if (core_conf_write(&y1, c, false, true) != CORE_OK ||
	    core_conf_write(&js, c, true, true) != CORE_OK)
		__builtin_trap();
	/* All defaults write nothing: an empty buffer has no block. */
	a = core_conf_load(schema, "y1", core_buf_len(&y1) ? core_buf_head(&y1) : "",
			   core_buf_len(&y1));
	b = core_conf_load(schema, "js", core_buf_len(&js) ? core_buf_head(&js) : "",
			   core_buf_len(&js));
	if (a == NULL || b == NULL || a->nerrors != 0 || b->nerrors != 0)
		__builtin_trap();
	if (core_conf_write(&y2, b, false, true) != CORE_OK ||
	    core_buf_len(&y1) != core_buf_len(&y2) ||
	    (core_buf_len(&y1) && memcmp(core_buf_head(&y1), core_buf_head(&y2),
					 core_buf_len(&y1)) != 0))
		__builtin_trap();
	core_conf_free(a);
	core_conf_free(b);
	core_buf_free(&y1);
	core_buf_free(&y2);
	core_buf_free(&js);
}

static void fuzz_schema(const struct core_conf_section *schema,
			const uint8_t *data, size_t size)
{
	struct core_conf *c, *d;

	c = core_conf_load(schema, "fuzz.yaml", (const char *)data, size);
	if (c == NULL)
		return;
	if (c->nerrors == 0) {
		round_trip(schema, c);
		d = core_conf_load(schema, "empty.yaml", "", 0);
		if (d != NULL) {
			/* d takes c's values, then c is gone: d must stand alone. */
			core_conf_keep_static(d, c, ignore, NULL);
			core_conf_free(c);
			c = NULL;
			core_conf_keep_static(d, d, ignore, NULL);
			core_conf_free(d);
		}
	}
	core_conf_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_schema(&core_settings, data, size);
	fuzz_schema(&root_sec, data, size);
	return 0;
}
