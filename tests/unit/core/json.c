/* Tests of core/json.c: values, escapes, nesting bounds and errors. */
#include <stdlib.h>

#include "runner.h"
#include "core/json.h"

static struct core_json *parse(const char *s, char *err)
{
	return core_json_parse(s, strlen(s), err, 128);
}

TEST(values_members_and_escapes)
{
	char err[128];
	struct core_json *j = parse(" {\"a\": [1, -2.5e1, true, null], \"s\": \"q\\\"\\n\\u00e9\\ud83d\\ude00\","
				    " \"o\": {}} ", err);
	const struct core_json *a;

	CHECK(j != NULL);
	a = core_json_get(j, "a");
	CHECK(a != NULL && a->type == CORE_JSON_ARR);
	CHECK(a->child->num == 1 && a->child->next->num == -25);
	CHECK(a->child->next->next->b && a->child->next->next->next->type == CORE_JSON_NULL);
	CHECK_STR(core_json_gets(j, "s", NULL), "q\"\n\xc3\xa9\xf0\x9f\x98\x80");
	CHECK(core_json_get(j, "o")->type == CORE_JSON_OBJ && core_json_get(j, "o")->child == NULL);
	CHECK(core_json_getn(j, "missing", 7) == 7);
	core_json_free(j);
}

TEST(bad_text_is_refused_saying_where)
{
	static const char *bad[] = { "", "{", "[1,]", "{\"a\" 1}", "\"\\ud800\"", "tru", "1 2",
				     "\"a\x01\"", "{\"a\":1,}", "-" };
	char err[128], deep[200];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct core_json *j = parse(bad[i], err);

		if (j != NULL)
			test_fail(__FILE__, __LINE__, "took %s", bad[i]);
		CHECK(strncmp(err, "byte ", 5) == 0);
	}
	memset(deep, '[', 100);
	deep[100] = '\0';
	CHECK(parse(deep, err) == NULL && strstr(err, "deep") != NULL);
}
