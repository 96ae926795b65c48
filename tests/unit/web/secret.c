/* Tests of web/secret.c (masking secrets in a configuration's text) and of
 * the nesting scan that guards the JSON parser (web/api.c). */
#include "runner.h"
#include "web/secret.c"

static char *mask_of(const char *text)
{
	static char out[8192];
	struct core_buf b;

	core_buf_init(&b, sizeof(out) - 1);
	if (web_secret_mask(text, strlen(text), &b) != CORE_OK) {
		core_buf_free(&b);
		return NULL;
	}
	snprintf(out, sizeof(out), "%.*s", (int)core_buf_len(&b), core_buf_head(&b));
	core_buf_free(&b);
	return out;
}

TEST(every_secret_setting_is_masked_and_the_rest_kept_as_written)
{
	const char *in =
		"# the gateway \xc3\xa9t\xc3\xa9\n"
		"node: gw-\xc3\xa9\n"
		"admin:\n"
		"  metrics_token: \"tok-1\"   # for Prometheus\n"
		"alerts:\n"
		"  webhooks:\n"
		"    - { url: \"http://127.0.0.1:9/h\", secret: 'hook-2' }\n"
		"  email: { server: 127.0.0.1:25, user: ops, password: pw-3 }\n"
		"redis:\n"
		"  password: |\n"
		"    block-4\n"
		"  sentinel_password: \"\"\n";
	const char *out = mask_of(in);

	CHECK(out != NULL);
	CHECK(strstr(out, "tok-1") == NULL);
	CHECK(strstr(out, "hook-2") == NULL);
	CHECK(strstr(out, "pw-3") == NULL);
	CHECK(strstr(out, "block-4") == NULL);
	CHECK(strstr(out, "metrics_token: \"(secret)\"   # for Prometheus\n") != NULL);
	CHECK(strstr(out, "secret: \"(secret)\" }") != NULL);
	CHECK(strstr(out, "user: ops, password: \"(secret)\" }") != NULL);
	CHECK(strstr(out, "# the gateway \xc3\xa9t\xc3\xa9\nnode: gw-\xc3\xa9\n") == out);
	CHECK(strstr(out, "sentinel_password: \"\"") != NULL);	/* empty: nothing to hide */
}

TEST(json_is_masked_too_and_names_elsewhere_are_not_secrets)
{
	const char *out = mask_of("{\"alerts\":{\"email\":{\"password\":\"x1\"}},"
				 "\"routes\":[{\"path\":\"/password\"}],\"password\":\"top\"}");

	CHECK(out != NULL);
	CHECK(strstr(out, "x1") == NULL);
	CHECK(strstr(out, "\"password\":\"(secret)\"") != NULL);
	CHECK(strstr(out, "/password") != NULL);
	CHECK(strstr(out, "\"password\":\"top\"") != NULL);	/* not a setting */
}

TEST(text_that_does_not_parse_is_not_shown)
{
	CHECK(mask_of("a: [1, 2\nb: {") == NULL);
	CHECK(mask_of("a: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]") == NULL);
}

TEST(nesting_is_counted_outside_strings)
{
	char deep[100];

	memset(deep, '[', sizeof(deep));
	CHECK(web_json_too_deep(deep, sizeof(deep), 32));
	CHECK(!web_json_too_deep(deep, 32, 32));
	CHECK(web_json_too_deep(deep, 33, 32));
	CHECK(!web_json_too_deep("{\"a\":\"[[[[[[\",\"b\":[1]}", 22, 2));
	CHECK(!web_json_too_deep("{\"a\":\"\\\"[[[[\"}", 14, 1));
	CHECK(!web_json_too_deep("[][][][][][]", 12, 1));
	CHECK(web_json_too_deep("[[]]", 4, 1));
}
