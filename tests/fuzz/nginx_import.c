/* libFuzzer target for keel import-nginx (import/nginx.c, import/map.c): the
 * input is nginx.conf, and also any file it includes. Beyond "no crash":
 * every error names a file and line; a config that maps without errors
 * gives YAML keel's own loader takes with no error; every directive has a
 * verdict line on one line. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/conf.h"
#include "core/settings.h"
#include "import/import.h"

static const char *input;
static size_t input_len;

static char *mem_read(const char *path, size_t *len, void *arg)
{
	char *buf;

	(void)arg;
	if (strstr(path, "missing") != NULL) {
		errno = ENOENT;
		return NULL;
	}
	buf = malloc(input_len + 1);
	if (buf == NULL)
		return NULL;
	memcpy(buf, input, input_len);
	buf[input_len] = '\0';
	*len = input_len;
	return buf;
}

static char **mem_glob(const char *pattern, size_t *n, void *arg)
{
	char **out = calloc(3, sizeof(char *));

	(void)arg;
	*n = 0;
	if (out == NULL || strstr(pattern, "none") != NULL)
		return out;
	out[0] = strdup("/etc/nginx/conf.d/a.conf");
	out[1] = strdup("/etc/nginx/conf.d/b.conf");
	*n = out[0] && out[1] ? 2 : 0;
	return out;
}

static void check_lines(const char *text)
{
	const char *p;

	/* "file:line: ..." */
	for (p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		const char *colon = strchr(p, ':');

		if (*p == '\n' || colon == NULL || colon[1] < '0' || colon[1] > '9')
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct imp_ngx_io io = { mem_read, mem_glob, NULL };
	struct imp_ngx_conf *c;
	struct imp_result *r;
	struct core_conf *k;
	struct core_buf b;
	size_t i;

	input = (const char *)data;
	input_len = size;
	c = imp_ngx_parse_text("/etc/nginx/nginx.conf", input, size, &io);
	if (c == NULL)
		return 0;
	if (c->nerrors > 0) {
		if (c->errors != NULL)
			check_lines(c->errors);
		imp_ngx_free(c);
		return 0;
	}
	r = imp_nginx_map(c, "/var/lib/keel/certs", false);
	if (r == NULL) {
		imp_ngx_free(c);
		return 0;
	}
	if (r->nerrors > 0 && r->errors != NULL && strcmp(r->errors, "out of memory\n") != 0)
		check_lines(r->errors);
	if (r->nerrors == 0 && r->yaml != NULL) {
		k = core_conf_load(&core_settings, "(imported)", r->yaml, r->yaml_len);
		if (k != NULL && k->nerrors > 0) {
			fprintf(stderr, "%s\n--- %s\n", r->yaml, k->errors->msg);
			abort();
		}
		core_conf_free(k);
	}
	for (i = 0; i < r->nentries; i++)
		if (strchr(r->entries[i].directive, '\n') || strchr(r->entries[i].note, '\n'))
			abort();
	core_buf_init(&b, 1 << 24);
	imp_report_json(&b, r);
	core_buf_free(&b);
	imp_result_free(r);
	imp_ngx_free(c);
	return 0;
}
