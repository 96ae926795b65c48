/* Tests of import/nginx.c and import/map.c: nginx's tokenizer rules,
 * includes, errors with file:line, and what directives become in keel. */
#include <errno.h>
#include <stdlib.h>

#include "runner.h"
#include "core/conf.h"
#include "core/settings.h"
#include "import/import.h"

/* A tiny file system: "/n/inc.conf" and "/n/conf.d/{a,b}.conf". */
static const char *files[][2] = {
	{ "/n/inc.conf", "proxy_read_timeout 7s;\n" },
	{ "/n/conf.d/a.conf", "server { listen 127.0.0.1:8001; location /a/ { proxy_pass http://u; } }\n" },
	{ "/n/conf.d/b.conf", "server { listen 127.0.0.1:8002; location /b/ { proxy_pass http://u; } }\n" },
	{ "/n/loop.conf", "include loop.conf;\n" },
};

static char *mem_read(const char *path, size_t *len, void *arg)
{
	size_t i;

	(void)arg;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (strcmp(files[i][0], path) == 0) {
			*len = strlen(files[i][1]);
			return strdup(files[i][1]);
		}
	errno = ENOENT;
	return NULL;
}

static char **mem_glob(const char *pattern, size_t *n, void *arg)
{
	char **out = calloc(3, sizeof(char *));

	(void)arg;
	*n = 0;
	if (strcmp(pattern, "/n/conf.d/*.conf") == 0) {
		out[0] = strdup("/n/conf.d/a.conf");
		out[1] = strdup("/n/conf.d/b.conf");
		*n = 2;
	}
	return out;
}

static const struct imp_ngx_io io = { mem_read, mem_glob, NULL };

static struct imp_ngx_conf *parse(const char *text)
{
	return imp_ngx_parse_text("/n/nginx.conf", text, strlen(text), &io);
}

static void want_error(const char *text, const char *msg)
{
	struct imp_ngx_conf *c = parse(text);

	CHECK(c != NULL);
	if (c->nerrors == 0 || strstr(c->errors, msg) == NULL)
		test_fail(__FILE__, __LINE__, "want \"%s\", got \"%s\"", msg,
			  c->errors ? c->errors : "(no error)");
	imp_ngx_free(c);
}

TEST(words_quotes_escapes_and_comments_as_nginx_reads_them)
{
	struct imp_ngx_conf *c = parse(
		"# a comment\n"
		"http { # another\n"
		"  add_header X-A \"two words\" always;\n"
		"  add_header 'X-B' a\\;b;\n"
		"  add_header X-C \"q\\\"uote\\n\";\n"
		"  add_header X-D ${x}y#z;\n"
		"}\n");
	const struct imp_ngx_dir *h, *d;

	CHECK_INT(c->nerrors, ==, 0);
	h = c->root;
	CHECK_STR(h->argv[0], "http");
	CHECK_INT(h->kind, ==, IMP_NGX_BLOCK);
	CHECK_INT(h->line, ==, 2);
	d = h->child;
	CHECK_INT(d->argc, ==, 4);
	CHECK_STR(d->argv[2], "two words");
	CHECK_INT(d->line, ==, 3);
	d = d->next;
	CHECK_STR(d->argv[1], "X-B");
	CHECK_STR(d->argv[2], "a\\;b");	/* nginx keeps an unknown escape */
	d = d->next;
	CHECK_STR(d->argv[2], "q\"uote\n");
	d = d->next;
	CHECK_STR(d->argv[2], "${x}y#z");	/* "${" opens no block, '#' inside a word */
	CHECK_INT(d->line, ==, 6);
	imp_ngx_free(c);
}

TEST(includes_expand_in_place_relative_to_the_main_file)
{
	struct imp_ngx_conf *c = parse("http {\n  include inc.conf;\n  include conf.d/*.conf;\n"
				       "  include conf.d/none-*.conf;\n}\n");
	const struct imp_ngx_dir *d;

	CHECK_INT(c->nerrors, ==, 0);
	d = c->root->child;
	CHECK_INT(d->kind, ==, IMP_NGX_INCLUDE);
	CHECK_INT(d->nfiles, ==, 1);
	d = d->next;
	CHECK_STR(d->argv[0], "proxy_read_timeout");
	CHECK_STR(d->file->path, "/n/inc.conf");
	CHECK_INT(d->line, ==, 1);
	d = d->next;
	CHECK_INT(d->nfiles, ==, 2);
	CHECK_STR(d->next->file->path, "/n/conf.d/a.conf");
	CHECK_STR(d->next->next->file->path, "/n/conf.d/b.conf");
	CHECK_INT(d->next->next->next->nfiles, ==, 0);	/* a pattern may match nothing */
	imp_ngx_free(c);
}

TEST(bad_input_is_an_error_with_file_and_line)
{
	want_error("http {\n  server {\n", "/n/nginx.conf:3: unexpected end of file, expecting \"}\"");
	want_error("http {\n}\n}\n", "/n/nginx.conf:3: unexpected \"}\"");
	want_error("http {\n  listen 80\n}\n", "/n/nginx.conf:3: unexpected \"}\": \"listen\" is not "
		   "terminated by \";\"");
	want_error("http {\n  proxy_pas x;\n}\n", "/n/nginx.conf:2: unknown directive \"proxy_pas\"");
	want_error("http {\n  include missing.conf;\n}\n",
		   "/n/nginx.conf:2: include \"/n/missing.conf\": No such file or directory");
	want_error("include loop.conf;\n", "/n/loop.conf:1: include loop");
	want_error("http {\n  server_name \"a\"b;\n}\n", "/n/nginx.conf:2: unexpected \"b\" after a "
		   "quoted string");
	want_error("http {\n  server_name \"a;\n}\n", "unexpected end of file in a double-quoted "
		   "string");
	want_error("http;\n", "/n/nginx.conf:1: directive \"http\" has no opening \"{\"");
	want_error("http {\n  proxy_pass x { }\n}\n", "/n/nginx.conf:2: directive \"proxy_pass\" is "
		   "not terminated by \";\"");
	want_error(";\n", "/n/nginx.conf:1: unexpected \";\"");
}

static struct imp_result *map(const char *text, struct imp_ngx_conf **c)
{
	*c = parse(text);
	CHECK((*c)->nerrors == 0);
	return imp_nginx_map(*c, "/state/certs", false);
}

static const struct imp_entry *entry(const struct imp_result *r, unsigned line,
				     const char *name)
{
	size_t i;

	for (i = 0; i < r->nentries; i++)
		if (r->entries[i].line == line && strncmp(r->entries[i].directive, name,
							  strlen(name)) == 0)
			return &r->entries[i];
	test_fail(__FILE__, __LINE__, "no report for line %u %s", line, name);
}

TEST(the_usual_guide_maps_and_every_directive_has_a_verdict)
{
	struct imp_ngx_conf *c;
	struct imp_result *r = map(
		"worker_processes 2;\n"
		"events { worker_connections 100; }\n"
		"http {\n"
		"  upstream app_a {\n"
		"    ip_hash;\n"
		"    server 127.0.0.1:8101 max_fails=30 fail_timeout=20s;\n"
		"    server 127.0.0.1:8102 weight=2 backup;\n"
		"  }\n"
		"  server {\n"
		"    listen 127.0.0.1:8000;\n"
		"    gzip on;\n"
		"    location ^~ /app_a/ { proxy_pass http://app_a/; proxy_set_header Host $host; }\n"
		"    location = /ping { return 200 \"pong\"; }\n"
		"    location /old { return 301 https://$host/new$is_args; }\n"
		"  }\n"
		"}\n", &c);
	struct core_conf *k;

	CHECK_INT(r->nerrors, ==, 0);
	CHECK(r->yaml != NULL);
	CHECK(strstr(r->yaml, "balance: ip_hash") != NULL);
	CHECK(strstr(r->yaml, "fail_timeout: 20s") != NULL);
	CHECK(strstr(r->yaml, "weight: 2, backup: true") != NULL);
	CHECK(strstr(r->yaml, "rewrite: \"strip\"") != NULL);
	CHECK(strstr(r->yaml, "exact: true\n    return: 200\n    return_body: \"pong\"") != NULL);
	CHECK(strstr(r->yaml, "/old") == NULL);		/* $is_args: not supported, no route */
	CHECK_INT(entry(r, 1, "worker_processes")->verdict, ==, IMP_APPROX);
	CHECK_INT(entry(r, 2, "worker_connections")->verdict, ==, IMP_APPROX);
	CHECK_INT(entry(r, 5, "ip_hash")->verdict, ==, IMP_MAPPED);
	CHECK_INT(entry(r, 11, "gzip")->verdict, ==, IMP_UNSUPPORTED);
	CHECK_INT(entry(r, 12, "proxy_pass")->verdict, ==, IMP_MAPPED);
	CHECK_INT(entry(r, 14, "return")->verdict, ==, IMP_UNSUPPORTED);
	k = core_conf_load(&core_settings, "t", r->yaml, r->yaml_len);
	CHECK(k != NULL && k->nerrors == 0);
	core_conf_free(k);
	imp_result_free(r);
	imp_ngx_free(c);
}

TEST(names_are_errors_when_not_looked_up_and_ssl_needs_a_certificate)
{
	struct imp_ngx_conf *c;
	struct imp_result *r = map("http { server { listen 443 ssl; location / { "
				   "proxy_pass http://app.internal:8080; } } }\n", &c);

	CHECK(r->nerrors >= 1 && r->yaml == NULL);
	CHECK(strstr(r->errors, "host \"app.internal\"") != NULL);
	imp_result_free(r);
	imp_ngx_free(c);
	r = map("http { server { listen 443 ssl; location / { proxy_pass http://127.0.0.1:1; } } }\n",
		&c);
	CHECK(r->nerrors == 1 && strstr(r->errors, "no \"ssl_certificate\"") != NULL);
	imp_result_free(r);
	imp_ngx_free(c);
	r = map("http {\n  upstream b { server 127.0.0.1:1 backup; }\n  server { location / { "
		"proxy_pass http://b; } } }\n", &c);
	CHECK(r->yaml == NULL && strstr(r->errors, "/n/nginx.conf:2: upstream \"b\" has only "
					"backup servers") != NULL);
	imp_result_free(r);
	imp_ngx_free(c);
}

TEST(a_regex_prefix_is_not_redirected_to_as_keel_would)
{
	struct imp_ngx_conf *c;
	struct imp_result *r = map("http { server { listen 80; server_name a.example;\n"
				   "  location ~ ^/legacy/ { proxy_pass http://127.0.0.1:1; }\n"
				   "  location ~ ^/old/ { proxy_pass http://127.0.0.1:2; }\n"
				   "  location / { proxy_pass http://127.0.0.1:3; } } }\n", &c);

	CHECK(r->yaml != NULL);
	/* "/legacy" gets what "/" gives it in nginx, as an exact route */
	CHECK(strstr(r->yaml, "path: \"/legacy\"\n    exact: true\n    upstream: \"127_0_0_1_3\"")
	      != NULL);
	imp_result_free(r);
	imp_ngx_free(c);
	r = map("http { server { listen 80; server_name a.example;\n"
		"  location ~ ^/legacy/ { proxy_pass http://127.0.0.1:1; } } }\n", &c);
	/* no other location: nginx's 404, not keel's redirect */
	CHECK(strstr(r->yaml, "path: \"/legacy\"\n    exact: true\n    return: 404") != NULL);
	imp_result_free(r);
	imp_ngx_free(c);
}
