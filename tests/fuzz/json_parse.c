/* libFuzzer target for core/json.c: any bytes. Beyond "no crash": a parse
 * that fails says where; one that succeeds has members with names in
 * objects only, and strings without a NUL before their end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

static void walk(const struct core_json *j, int in_object, int depth)
{
	for (; j != NULL; j = j->next) {
		if ((j->key != NULL) != (in_object != 0) || depth > CORE_JSON_MAX_DEPTH + 1)
			abort();
		if (j->type == CORE_JSON_STR && j->str == NULL)
			abort();
		if (j->type != CORE_JSON_ARR && j->type != CORE_JSON_OBJ && j->child != NULL)
			abort();
		walk(j->child, j->type == CORE_JSON_OBJ, depth + 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[128];
	struct core_json *j = core_json_parse((const char *)data, size, err, sizeof(err));

	if (j == NULL) {
		if (strncmp(err, "byte ", 5) != 0)
			abort();
		return 0;
	}
	walk(j, 0, 0);
	core_json_free(j);
	return 0;
}
