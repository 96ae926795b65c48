/* Tests of core/conf.c: loading YAML against a schema, errors with file,
 * line and path, defaults, bounds, reload rules and the reference. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "runner.h"
#include "core/conf.c"
#include "core/settings.h"

/* A schema shaped like the proxy's will be, to exercise every type. */
struct t_server {
	struct core_conf_addr addr;
	int64_t		weight;
	bool		backup;
};

struct t_upstream {
	char		*name;
	struct core_conf_list servers;
	int64_t		max_body;
	int64_t		timeout;
};

struct t_conf {
	char		*title;
	char		*password;
	int		mode;
	struct core_conf_list tags;
	struct core_conf_list upstreams;
	int64_t		workers;
};

static const struct core_conf_def server_defs[] = {
	{ .name = "addr", .type = CORE_CONF_ADDR, .flags = CORE_CONF_REQUIRED,
	  .offset = offsetof(struct t_server, addr) },
	{ .name = "weight", .type = CORE_CONF_INT, .dflt = "1", .min = 1, .max = 256,
	  .offset = offsetof(struct t_server, weight) },
	{ .name = "backup", .type = CORE_CONF_BOOL, .dflt = "false",
	  .offset = offsetof(struct t_server, backup) },
	{ 0 }
};
static const struct core_conf_section server_sec = {
	.size = sizeof(struct t_server), .defs = server_defs,
};

static void upstream_check(struct core_conf_load *ld, void *obj, const char *path,
			   int line)
{
	struct t_upstream *u = obj;

	if (u->servers.n == 0)
		core_conf_error(ld, line, path, "upstream \"%s\" has no servers", u->name);
}

static const struct core_conf_def upstream_defs[] = {
	{ .name = "servers", .type = CORE_CONF_LIST, .item = CORE_CONF_SECTION,
	  .sub = &server_sec, .min = 0, .max = 8,
	  .offset = offsetof(struct t_upstream, servers) },
	{ .name = "max_body", .type = CORE_CONF_SIZE, .dflt = "1M",
	  .min = 1024, .max = 1 << 30, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct t_upstream, max_body) },
	{ .name = "timeout", .type = CORE_CONF_DURATION, .dflt = "5s",
	  .min = 1, .max = 3600000, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct t_upstream, timeout) },
	{ 0 }
};
static const struct core_conf_section upstream_sec = {
	.size = sizeof(struct t_upstream), .defs = upstream_defs,
	.check = upstream_check,
};

static const char *const modes[] = { "fast", "safe", NULL };

static const struct core_conf_def t_defs[] = {
	{ .name = "title", .type = CORE_CONF_STRING, .dflt = "hello", .min = 1, .max = 8,
	  .flags = CORE_CONF_RELOAD, .offset = offsetof(struct t_conf, title) },
	{ .name = "password", .type = CORE_CONF_STRING, .min = 8, .max = 64,
	  .flags = CORE_CONF_SECRET | CORE_CONF_RELOAD,
	  .offset = offsetof(struct t_conf, password) },
	{ .name = "mode", .type = CORE_CONF_ENUM, .enums = modes, .dflt = "safe",
	  .offset = offsetof(struct t_conf, mode) },
	{ .name = "tags", .type = CORE_CONF_LIST, .item = CORE_CONF_STRING,
	  .dflt = "a,b", .min = 0, .max = 3,
	  .offset = offsetof(struct t_conf, tags) },
	{ .name = "upstreams", .type = CORE_CONF_MAP, .sub = &upstream_sec,
	  .min = 0, .max = 100, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct t_conf, upstreams) },
	{ .name = "workers", .type = CORE_CONF_INT, .dflt = "2", .min = 1, .max = 64,
	  .offset = offsetof(struct t_conf, workers) },
	{ 0 }
};
static const struct core_conf_section t_schema = {
	.size = sizeof(struct t_conf), .defs = t_defs,
};

static struct core_conf *load(const char *text)
{
	struct core_conf *c = core_conf_load(&t_schema, "keel.yaml", text, strlen(text));

	CHECK(c != NULL);
	return c;
}

static int has_error(const struct core_conf *c, const char *msg)
{
	const struct core_conf_err *e;

	for (e = c->errors; e != NULL; e = e->next)
		if (strcmp(e->msg, msg) == 0)
			return 1;
	return 0;
}

static void dump_errors(const struct core_conf *c)
{
	const struct core_conf_err *e;

	for (e = c->errors; e != NULL; e = e->next)
		printf("    error: %s\n", e->msg);
}

#define CHECK_ERROR(c, msg) do {		\
	if (!has_error(c, msg)) {		\
		dump_errors(c);			\
		test_fail(__FILE__, __LINE__, "missing error: %s", msg); \
	}					\
} while (0)

TEST(empty_file_gives_every_default)
{
	struct core_conf *c = load("");
	struct t_conf *t = c->root;

	CHECK_INT(c->nerrors, ==, 0);
	CHECK_STR(t->title, "hello");
	CHECK(t->password == NULL);
	CHECK_INT(t->mode, ==, 1);
	CHECK_INT(t->tags.n, ==, 2);
	CHECK_STR(((char **)t->tags.v)[1], "b");
	CHECK_INT(t->upstreams.n, ==, 0);
	CHECK_INT(t->workers, ==, 2);
	core_conf_free(c);
}

TEST(nested_map_list_section_values_load)
{
	struct core_conf *c = load(
		"mode: fast\n"
		"upstreams:\n"
		"  app_a:\n"
		"    max_body: 64k\n"
		"    timeout: 250ms\n"
		"    servers:\n"
		"      - addr: 10.0.0.1:8101\n"
		"        weight: 3\n"
		"      - { addr: \"[::1]:8102\", backup: yes }\n");
	struct t_conf *t = c->root;
	struct t_upstream *u;
	struct t_server *s;

	dump_errors(c);
	CHECK_INT(c->nerrors, ==, 0);
	CHECK_INT(t->mode, ==, 0);
	CHECK_INT(t->upstreams.n, ==, 1);
	u = t->upstreams.v;
	CHECK_STR(u->name, "app_a");
	CHECK_INT(u->max_body, ==, 65536);
	CHECK_INT(u->timeout, ==, 250);
	CHECK_INT(u->servers.n, ==, 2);
	s = u->servers.v;
	CHECK_STR(s[0].addr.text, "10.0.0.1:8101");
	CHECK_INT(s[0].addr.sa.ss_family, ==, AF_INET);
	CHECK_INT(ntohs(((struct sockaddr_in *)&s[0].addr.sa)->sin_port), ==, 8101);
	CHECK_INT(s[0].weight, ==, 3);
	CHECK(!s[0].backup);
	CHECK_STR(s[1].addr.text, "[::1]:8102");
	CHECK_INT(s[1].addr.sa.ss_family, ==, AF_INET6);
	CHECK_INT(s[1].weight, ==, 1);
	CHECK(s[1].backup);
	core_conf_free(c);
}

TEST(error_names_file_line_and_full_path)
{
	struct core_conf *c = load(
		"upstreams:\n"
		"  app_a:\n"
		"    servers:\n"
		"      - addr: 10.0.0.1:8101\n"
		"      - addr: 10.0.0.2:8101\n"
		"        weight: 0\n");

	CHECK_INT(c->nerrors, ==, 1);
	CHECK_ERROR(c, "keel.yaml:6: upstreams.app_a.servers[1].weight: must be 1..256, got 0");
	core_conf_free(c);
}

TEST(every_error_is_listed_not_just_the_first)
{
	struct core_conf *c = load(
		"title: waytoolongtitle\n"
		"mode: turbo\n"
		"workers: many\n"
		"colour: blue\n"
		"upstreams:\n"
		"  app_b: {}\n"
		"  app_c:\n"
		"    timeout: 5\n"
		"    max_body: 12q\n"
		"    servers:\n"
		"      - addr: 10.0.0.1\n"
		"      - weight: 2\n");

	CHECK_ERROR(c, "keel.yaml:1: title: length must be 1..8, got 15");
	CHECK_ERROR(c, "keel.yaml:2: mode: must be one of fast, safe; got 'turbo'");
	CHECK_ERROR(c, "keel.yaml:3: workers: not an integer, got 'many'");
	CHECK_ERROR(c, "keel.yaml:4: colour: unknown setting");
	CHECK_ERROR(c, "keel.yaml:6: upstreams.app_b: upstream \"app_b\" has no servers");
	CHECK_ERROR(c, "keel.yaml:8: upstreams.app_c.timeout: needs a unit: ms, s, m, h or d, got '5'");
	CHECK_ERROR(c, "keel.yaml:9: upstreams.app_c.max_body: unknown size unit (use k, M or G), got '12q'");
	CHECK_ERROR(c, "keel.yaml:11: upstreams.app_c.servers[0].addr: needs a port: host:port, got '10.0.0.1'");
	CHECK_ERROR(c, "keel.yaml:12: upstreams.app_c.servers[1].addr: required setting is missing");
	CHECK_INT(c->nerrors, ==, 9);
	core_conf_free(c);
}

TEST(bounds_are_shown_in_the_settings_units)
{
	struct core_conf *c = load(
		"upstreams:\n"
		"  a:\n"
		"    max_body: 2G\n"
		"    timeout: 2h\n"
		"    servers: [ { addr: '1.2.3.4:80' } ]\n");

	CHECK_ERROR(c, "keel.yaml:3: upstreams.a.max_body: must be 1k..1G, got 2G");
	CHECK_ERROR(c, "keel.yaml:4: upstreams.a.timeout: must be 1ms..1h, got 2h");
	core_conf_free(c);
}

TEST(duplicates_and_wrong_shapes_are_refused)
{
	struct core_conf *c = load(
		"workers: 2\n"
		"workers: 3\n"
		"tags: solo\n"
		"upstreams:\n"
		"  a: { servers: [ { addr: '1.2.3.4:80' } ] }\n"
		"  a: { servers: [ { addr: '1.2.3.4:81' } ] }\n"
		"mode: [fast]\n");

	CHECK_ERROR(c, "keel.yaml:2: workers: set twice");
	CHECK_ERROR(c, "keel.yaml:3: tags: expected a list, got a single value");
	CHECK_ERROR(c, "keel.yaml:6: upstreams.a: defined twice");
	CHECK_ERROR(c, "keel.yaml:7: mode: expected a single enum value, got a list");
	core_conf_free(c);
}

TEST(list_length_bounds)
{
	struct core_conf *c = load("tags: [a, b, c, d]\n");

	CHECK_ERROR(c, "keel.yaml:1: tags: must have 0..3 items, got 4");
	core_conf_free(c);
}

TEST(list_bounds_count_items_not_the_length_of_each)
{
	struct core_conf *c = load("tags: [a-rather-long-tag-name, another-long-tag-name]\n");
	struct t_conf *t = c->root;

	dump_errors(c);
	CHECK_INT(c->nerrors, ==, 0);
	CHECK_STR(((char **)t->tags.v)[1], "another-long-tag-name");
	core_conf_free(c);
}

TEST(keel_check_survives_an_item_that_failed_to_load)
{
	static const char text[] =
		"upstreams: { a: { servers: [ { address: '10.0.0.1:80' } ] } }\n"
		"routes: [ { hosts: [ \"a\\x01b\", ok.example.com ], upstream: a } ]\n"
		"alerts: { email: { to: [ \"x\\x02y\", ops@example.com ] } }\n";
	struct core_conf *c = core_conf_load(&core_settings, "keel.yaml", text, strlen(text));

	CHECK_ERROR(c, "keel.yaml:2: routes[0].hosts[0]: control characters are not allowed");
	CHECK_ERROR(c, "keel.yaml:3: alerts.email.to[0]: control characters are not allowed");
	core_conf_free(c);
}

TEST(yaml_syntax_error_has_a_line)
{
	struct core_conf *c = load("title: ok\nmode: [fast\nworkers: 2\n");

	CHECK_INT(c->nerrors, ==, 1);
	CHECK(strncmp(c->errors->msg, "keel.yaml:", 10) == 0);
	CHECK(strstr(c->errors->msg, "YAML syntax") != NULL);
	core_conf_free(c);
}

TEST(top_level_must_be_a_mapping_and_one_document)
{
	struct core_conf *c = load("- a\n- b\n");

	CHECK_ERROR(c, "keel.yaml:1: the top level must be a mapping of sections, got a list");
	core_conf_free(c);
	c = load("workers: 2\n---\nworkers: 3\n");
	CHECK_ERROR(c, "keel.yaml:2: only one YAML document is allowed");
	core_conf_free(c);
}

TEST(secret_values_are_never_echoed)
{
	struct core_conf *c = load("password: \"hunter2\"\n");

	CHECK_INT(c->nerrors, ==, 1);
	CHECK(strstr(c->errors->msg, "hunter2") == NULL);
	core_conf_free(c);
	c = load("password: [hunter2secret]\n");
	CHECK(strstr(c->errors->msg, "hunter2") == NULL);
	core_conf_free(c);
}

TEST(control_bytes_and_nul_in_values_are_refused)
{
	static const char text[] = "title: \"a\\x01b\"\n";
	static const char nul[] = "title: \"a\\0b\"\n";
	struct core_conf *c = load(text);

	CHECK_ERROR(c, "keel.yaml:1: title: control characters are not allowed");
	core_conf_free(c);
	c = load(nul);
	CHECK_ERROR(c, "keel.yaml:1: title: NUL byte in value");
	core_conf_free(c);
}

TEST(address_forms)
{
	struct core_conf_addr a;

	CHECK(conf_parse_addr("*:80", &a) == NULL);
	CHECK_STR(a.text, "0.0.0.0:80");
	CHECK(conf_parse_addr(":8080", &a) == NULL);
	CHECK_STR(a.text, "0.0.0.0:8080");
	CHECK(conf_parse_addr("[::]:443", &a) == NULL);
	CHECK_STR(a.text, "[::]:443");
	CHECK(conf_parse_addr("[::1]", &a) != NULL);
	CHECK(conf_parse_addr("::1:80", &a) != NULL);
	CHECK(conf_parse_addr("1.2.3.4:0", &a) != NULL);
	CHECK(conf_parse_addr("1.2.3.4:65536", &a) != NULL);
	CHECK(conf_parse_addr("1.2.3.4:80x", &a) != NULL);
	CHECK(conf_parse_addr("example.com:80", &a) != NULL);
	CHECK(conf_parse_addr("[fe80::1%eth0]:80", &a) != NULL);
}

TEST(url_forms)
{
	struct core_conf_url u;

	CHECK(conf_parse_url("http://10.0.0.1:8080/login?x=1", &u) == NULL);
	CHECK_STR(u.addr.text, "10.0.0.1:8080");
	CHECK_STR(u.host, "10.0.0.1:8080");
	CHECK_STR(u.path, "/login?x=1");
	CHECK(conf_parse_url("http://localhost", &u) == NULL);
	CHECK_STR(u.addr.text, "127.0.0.1:80");
	CHECK_STR(u.path, "/");
	CHECK(conf_parse_url("http://[::1]:81/x", &u) == NULL);
	CHECK_STR(u.addr.text, "[::1]:81");
	CHECK(conf_parse_url("https://10.0.0.1/", &u) != NULL);
	CHECK(conf_parse_url("ftp://10.0.0.1/", &u) != NULL);
	CHECK(conf_parse_url("http://app.example.com/", &u) != NULL);
	CHECK(conf_parse_url("http:///x", &u) != NULL);
	CHECK(conf_parse_url("http://10.0.0.1/a b", &u) != NULL);
}

TEST(sizes_and_durations)
{
	int64_t v;

	CHECK(conf_parse_scaled(CORE_CONF_SIZE, "512", &v) == NULL && v == 512);
	CHECK(conf_parse_scaled(CORE_CONF_SIZE, "64k", &v) == NULL && v == 65536);
	CHECK(conf_parse_scaled(CORE_CONF_SIZE, "4MB", &v) == NULL && v == 4 << 20);
	CHECK(conf_parse_scaled(CORE_CONF_SIZE, "1G", &v) == NULL && v == 1 << 30);
	CHECK(conf_parse_scaled(CORE_CONF_SIZE, "-1", &v) != NULL);
	CHECK(conf_parse_scaled(CORE_CONF_SIZE, "99999999999G", &v) != NULL);
	CHECK(conf_parse_scaled(CORE_CONF_DURATION, "0", &v) == NULL && v == 0);
	CHECK(conf_parse_scaled(CORE_CONF_DURATION, "1500ms", &v) == NULL && v == 1500);
	CHECK(conf_parse_scaled(CORE_CONF_DURATION, "20s", &v) == NULL && v == 20000);
	CHECK(conf_parse_scaled(CORE_CONF_DURATION, "2m", &v) == NULL && v == 120000);
	CHECK(conf_parse_scaled(CORE_CONF_DURATION, "1d", &v) == NULL && v == 86400000);
	CHECK(conf_parse_scaled(CORE_CONF_DURATION, "5", &v) != NULL);
	CHECK(conf_parse_scaled(CORE_CONF_DURATION, " 5s", &v) != NULL);
	CHECK(conf_parse_scaled(CORE_CONF_DURATION, "5 s", &v) != NULL);
}

static void note_path(const char *path, void *arg)
{
	char *out = arg;

	strcat(out, path);
	strcat(out, ";");
}

TEST(reload_keeps_running_values_of_restart_only_settings)
{
	struct core_conf *old = load("workers: 4\ntags: [x]\ntitle: one\n");
	struct core_conf *new = load("workers: 8\ntags: [y, z]\ntitle: two\n");
	struct t_conf *t;
	char seen[256] = "";

	CHECK_INT(core_conf_keep_static(new, old, note_path, seen), ==, 2);
	CHECK_STR(seen, "tags;workers;");
	core_conf_free(old);		/* nothing in new may point into old */
	t = new->root;
	CHECK_INT(t->workers, ==, 4);
	CHECK_INT(t->tags.n, ==, 1);
	CHECK_STR(((char **)t->tags.v)[0], "x");
	CHECK_STR(t->title, "two");	/* reloadable: the new value */
	core_conf_free(new);
}

TEST(too_many_errors_stop_at_the_cap)
{
	char text[8192] = "";
	struct core_conf *c;
	int i;

	for (i = 0; i < 150; i++)
		sprintf(text + strlen(text), "bogus%d: 1\n", i);
	c = load(text);
	CHECK_INT(c->nerrors, >, 100);
	{
		size_t n = 0;
		const struct core_conf_err *e;

		for (e = c->errors; e != NULL; e = e->next)
			n++;
		CHECK_INT(n, ==, CONF_MAX_ERRORS);
	}
	core_conf_free(c);
}

TEST(unreadable_file_is_reported)
{
	struct core_conf *c = core_conf_load_file(&t_schema, "/nonexistent/keel.yaml");

	CHECK_INT(c->nerrors, ==, 1);
	CHECK_STR(c->errors->msg, "/nonexistent/keel.yaml: cannot read: No such file or directory");
	core_conf_free(c);
}

TEST(reference_lists_every_setting_with_bounds)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	core_conf_write_reference(f, &t_schema);
	fclose(f);
	CHECK(strstr(buf, "| `workers` | integer | `2` | 1..64 | restart |") != NULL);
	CHECK(strstr(buf, "## `upstreams.<name>`") != NULL);
	CHECK(strstr(buf, "## `upstreams.<name>.servers[]`") != NULL);
	CHECK(strstr(buf, "| `max_body` | size | `1M` | 1k..1G | yes |") != NULL);
	CHECK(strstr(buf, "| `addr` | address | (required) |") != NULL);
	free(buf);
}

/* keel's own table: its defaults must load, and so must the embedded file. */
TEST(keel_settings_defaults_and_embedded_default_load_cleanly)
{
	struct core_conf *c = core_conf_load(&core_settings, "x", "", 0);
	const struct keel_conf *k;

	dump_errors(c);
	CHECK_INT(c->nerrors, ==, 0);
	k = core_settings_of(c);
	CHECK_STR(k->node, "keel");
	CHECK_INT(k->admin.listen.n, ==, 1);
	CHECK_INT(k->admin.idle_timeout, ==, 30000);
	core_conf_free(c);

	c = core_conf_load(&core_settings, "default", core_settings_default_yaml,
			   strlen(core_settings_default_yaml));
	dump_errors(c);
	CHECK_INT(c->nerrors, ==, 0);
	core_conf_free(c);
}

TEST(keel_node_name_is_checked)
{
	static const char text[] = "node: \"gw 1\"\n";
	struct core_conf *c = core_conf_load(&core_settings, "keel.yaml", text,
					     strlen(text));

	CHECK_ERROR(c, "keel.yaml:1: node: may hold only letters, digits, '-', '_' and '.'");
	core_conf_free(c);
}

/* keel's own settings: what it writes as YAML (the store) and JSON (the
 * API) loads back to the same settings, and the YAML is stable. */
static void round_trip(const char *text)
{
	struct core_conf *c = core_conf_load(&core_settings, "in", text, strlen(text));
	struct core_conf *a, *b;
	struct core_buf y1, y2, js;
	const struct core_conf_err *e;

	for (e = c->errors; e != NULL; e = e->next)
		fprintf(stderr, "%s\n", e->msg);
	CHECK_INT(c->nerrors, ==, 0);
	core_buf_init(&y1, 1 << 24);
	core_buf_init(&y2, 1 << 24);
	core_buf_init(&js, 1 << 24);
	CHECK(core_conf_write(&y1, c, false, true) == CORE_OK);
	CHECK(core_conf_write(&js, c, true, true) == CORE_OK);
	core_buf_append(&y1, "", 1);
	core_buf_append(&js, "", 1);
	a = core_conf_load(&core_settings, "yaml", core_buf_head(&y1), core_buf_len(&y1) - 1);
	b = core_conf_load(&core_settings, "json", core_buf_head(&js), core_buf_len(&js) - 1);
	for (e = a->errors; e != NULL; e = e->next)
		fprintf(stderr, "%s\n%s\n", e->msg, core_buf_head(&y1));
	for (e = b->errors; e != NULL; e = e->next)
		fprintf(stderr, "%s\n%s\n", e->msg, core_buf_head(&js));
	CHECK_INT(a->nerrors, ==, 0);
	CHECK_INT(b->nerrors, ==, 0);
	CHECK(core_conf_write(&y2, b, false, true) == CORE_OK);
	core_buf_append(&y2, "", 1);
	CHECK_STR(core_buf_head(&y2), core_buf_head(&y1));
	core_conf_free(a);
	core_conf_free(b);
	core_conf_free(c);
	core_buf_free(&y1);
	core_buf_free(&y2);
	core_buf_free(&js);
}

TEST(keel_settings_round_trip_through_yaml_and_json)
{
	round_trip("");
	round_trip(core_settings_default_yaml);
	round_trip("node: \"box-1\"\nalerts:\n  webhooks: [ { url: \"http://127.0.0.1:9/x\", "
		   "secret: \"s3\\\"c\" } ]\n  email: { to: [a@b.c], password: \"p w\" }\n"
		   "listeners:\n  - { address: \"[::1]:80\", tls: { certificates: "
		   "[ { cert: /a.crt, key: /a.key } ], min_version: \"1.3\" } }\n");
}

TEST(secrets_are_masked_in_json_and_restored_on_the_way_back)
{
	const char *text = "alerts:\n  webhooks: [ { url: \"http://127.0.0.1:9/x\", secret: s3c } ]\n";
	struct core_conf *c = core_conf_load(&core_settings, "in", text, strlen(text)), *b;
	struct core_buf js;

	core_buf_init(&js, 1 << 24);
	CHECK(core_conf_write(&js, c, true, false) == CORE_OK);
	core_buf_append(&js, "", 1);
	CHECK(strstr(core_buf_head(&js), "s3c") == NULL);
	CHECK(strstr(core_buf_head(&js), "\"secret\":\"(secret)\"") != NULL);
	b = core_conf_load(&core_settings, "json", core_buf_head(&js), core_buf_len(&js) - 1);
	CHECK_INT(b->nerrors, ==, 0);
	core_conf_restore_secrets(b, c);
	CHECK_STR(((struct keel_webhook_conf *)core_settings_of(b)->alerts.webhooks.v)->secret,
		  "s3c");
	core_conf_free(b);
	core_conf_free(c);
	core_buf_free(&js);
}
