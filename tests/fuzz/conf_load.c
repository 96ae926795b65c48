/* libFuzzer target for the config loader: arbitrary bytes as keel.yaml,
 * against keel's own settings and against a schema with every type nested
 * (maps of sections holding lists of sections). A loaded config is also
 * put through the reload copy, then freed before its copy is read. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/conf.h"
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

static void fuzz_schema(const struct core_conf_section *schema,
			const uint8_t *data, size_t size)
{
	struct core_conf *c, *d;

	c = core_conf_load(schema, "fuzz.yaml", (const char *)data, size);
	if (c == NULL)
		return;
	if (c->nerrors == 0) {
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
