/* `keel import-nginx FILE`: the report on stderr (or JSON), the resulting
 * keel configuration written, stored as a revision, or both. Nothing is
 * written when the nginx configuration has an error. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/cli.h"
#include "core/command.h"
#include "core/conf.h"
#include "core/settings.h"
#include "core/state.h"
#include "core/store.h"
#include "import.h"

#define IMP_CONF_MAX	(16 << 20)

static char *imp_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = malloc(IMP_CONF_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		errno = ENOMEM;
		return NULL;
	}
	n = fread(buf, 1, IMP_CONF_MAX + 1, f);
	fclose(f);
	if (n > IMP_CONF_MAX) {
		free(buf);
		errno = EFBIG;
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void imp_print_errors(const char *file, struct core_conf *c)
{
	const struct core_conf_err *e;

	for (e = c ? c->errors : NULL; e != NULL; e = e->next)
		fprintf(stderr, "%s\n", e->msg);
	if (c == NULL)
		fprintf(stderr, "keel import-nginx: %s: out of memory\n", file);
}

/* base with the imported listeners, upstreams and routes, as YAML in out. */
static int imp_merge_into(const char *base_name, const char *base_text, const char *yaml,
			  struct core_buf *out)
{
	char *errors = NULL;
	enum imp_merge_rc rc = imp_merge(base_name, base_text, yaml, true, out, &errors);

	fputs(errors ? errors : "", stderr);
	free(errors);
	switch (rc) {
	case IMP_MERGE_OK:
		return 0;
	case IMP_MERGE_BASE:
		fprintf(stderr, "keel import-nginx: the keel configuration %s has errors\n",
			base_name);
		break;
	case IMP_MERGE_IMPORTED:
		fprintf(stderr, "keel import-nginx: the imported settings do not load (a bug in "
			"the import: please report it with the lines above)\n");
		break;
	case IMP_MERGE_UNFIT:
		fprintf(stderr, "keel import-nginx: the imported settings do not fit %s's other "
			"settings\n", base_name);
		break;
	case IMP_MERGE_NOMEM:
		fprintf(stderr, "keel import-nginx: out of memory\n");
		break;
	}
	return -1;
}

/* Copies each certificate and key into keel's store; on a failure, removes
 * those it copied. */
static int imp_copy_certs(const struct imp_result *r, const char *certdir)
{
	char path[600], err[300];
	size_t i, j, len;
	int which;

	if (r->ncerts > 0 && core_state_dir(certdir, err, sizeof(err)) != CORE_OK) {
		fprintf(stderr, "keel import-nginx: %s\n", err);
		return -1;
	}
	for (i = 0; i < r->ncerts; i++)
		for (which = 0; which < 2; which++) {
			const char *src = which ? r->certs[i].key : r->certs[i].cert;
			char *data = imp_slurp(src, &len);

			snprintf(path, sizeof(path), "%s/%s.%s", certdir, r->certs[i].name,
				 which ? "key" : "crt");
			if (data == NULL || strstr(data, "-----BEGIN ") == NULL) {
				fprintf(stderr, "keel import-nginx: %s: %s\n", src,
					data ? "not a PEM file" : strerror(errno));
				free(data);
				goto fail;
			}
			if (core_state_write(path, data, len, 0600, err, sizeof(err)) != CORE_OK) {
				fprintf(stderr, "keel import-nginx: %s\n", err);
				free(data);
				goto fail;
			}
			free(data);
		}
	return 0;
fail:
	for (j = 0; j <= i && j < r->ncerts; j++) {
		snprintf(path, sizeof(path), "%s/%s.crt", certdir, r->certs[j].name);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%s.key", certdir, r->certs[j].name);
		unlink(path);
	}
	return -1;
}

static void imp_usage(FILE *f)
{
	fprintf(f, "usage: keel import-nginx NGINX.conf [-c KEEL.yaml] [-o OUT.yaml] [--apply] "
		"[--json] [--dry-run]\n");
}

static int imp_tool(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "output", required_argument, NULL, 'o' },
		{ "apply", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *conf_path = NULL, *out_path = NULL, *in;
	bool apply = false, json = false, dry = false;
	struct imp_ngx_conf *nc = NULL;
	struct imp_result *res = NULL;
	struct core_buf merged, rep;
	char *base_text = NULL, certdir[512], err[300];
	const struct keel_conf *k;
	struct core_conf *base = NULL;
	size_t len;
	int ch, rc = 1;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:o:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': conf_path = optarg; break;
		case 'o': out_path = optarg; break;
		case 'a': apply = true; break;
		case 'j': json = true; break;
		case 'n': dry = true; break;
		case 'h': imp_usage(stdout); return 0;
		default: imp_usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		imp_usage(stderr);
		return 2;
	}
	in = argv[optind];
	core_buf_init(&merged, 64 << 20);
	core_buf_init(&rep, 64 << 20);

	/* keel's configuration the import goes into: its state_dir holds the
	 * certificates, its other settings stay */
	if (conf_path != NULL) {
		if ((base_text = imp_slurp(conf_path, &len)) == NULL) {
			fprintf(stderr, "keel import-nginx: %s: %s\n", conf_path, strerror(errno));
			goto done;
		}
	} else if ((base_text = strdup(core_settings_default_yaml)) == NULL)
		goto done;
	base = core_conf_load(&core_settings, conf_path ? conf_path : "(default)", base_text,
			      strlen(base_text));
	if (base == NULL || base->nerrors > 0) {
		imp_print_errors(conf_path ? conf_path : "(default)", base);
		fprintf(stderr, "keel import-nginx: the keel configuration has errors\n");
		goto done;
	}
	k = core_settings_of(base);
	snprintf(certdir, sizeof(certdir), "%s/certs", k->state_dir);

	nc = imp_ngx_parse(in, NULL);
	if (nc == NULL) {
		fprintf(stderr, "keel import-nginx: out of memory\n");
		goto done;
	}
	if (nc->nerrors > 0) {
		fputs(nc->errors ? nc->errors : "", stderr);
		fprintf(stderr, "keel import-nginx: %s: %u error%s; nothing written\n", in,
			nc->nerrors, nc->nerrors == 1 ? "" : "s");
		goto done;
	}
	res = imp_nginx_map(nc, certdir, true);
	if (res == NULL) {
		fprintf(stderr, "keel import-nginx: out of memory\n");
		goto done;
	}
	if (res->nerrors > 0 || res->yaml == NULL) {
		fputs(res->errors ? res->errors : "", stderr);
		fprintf(stderr, "keel import-nginx: %s: %u error%s; nothing written\n", in,
			res->nerrors, res->nerrors == 1 ? "" : "s");
		goto done;
	}
	if (imp_merge_into(conf_path ? conf_path : "(default)", base_text, res->yaml, &merged) != 0)
		goto done;

	if (json) {
		core_buf_printf(&rep, "{\"report\":");
		imp_report_json(&rep, res);
		core_buf_printf(&rep, ",\"config\":");
		core_buf_append(&merged, "", 1);
		core_json_str(&rep, core_buf_head(&merged));
		core_buf_truncate(&merged, core_buf_len(&merged) - 1);
		core_buf_printf(&rep, "}\n");
	} else
		imp_report_text(&rep, res);

	if (dry) {
		fwrite(core_buf_head(&rep), 1, core_buf_len(&rep), json ? stdout : stderr);
		rc = 0;
		goto done;
	}
	if (imp_copy_certs(res, certdir) != 0)
		goto done;
	if (out_path != NULL && core_state_write(out_path, core_buf_head(&merged),
						 core_buf_len(&merged), 0644, err, sizeof(err)) != CORE_OK) {
		fprintf(stderr, "keel import-nginx: %s\n", err);
		goto done;
	}
	if (apply) {
		struct core_store *st = core_store_open(k->state_dir, err, sizeof(err));
		char comment[600];
		int64_t id;
		long pid;

		if (st == NULL) {
			fprintf(stderr, "keel import-nginx: not applied: %s\n", err);
			goto done;
		}
		core_buf_append(&merged, "", 1);
		snprintf(comment, sizeof(comment), "imported from nginx %s", in);
		id = core_store_apply(st, core_buf_head(&merged), "cli", comment, err, sizeof(err));
		core_store_close(st);
		if (id < 0) {
			fprintf(stderr, "keel import-nginx: not applied: %s\n", err);
			goto done;
		}
		core_buf_truncate(&merged, core_buf_len(&merged) - 1);
		if (conf_path != NULL && core_state_write(conf_path, core_buf_head(&merged),
							  core_buf_len(&merged), 0644, err,
							  sizeof(err)) != CORE_OK) {
			fprintf(stderr, "keel import-nginx: revision %lld stored, but %s\n",
				(long long)id, err);
			goto done;
		}
		printf("keel import-nginx: %s applied as revision %lld\n", in, (long long)id);
		if ((pid = core_cli_poke(k->pid_file)) > 0)
			printf("keel import-nginx: the running keel (pid %ld) reloads it\n", pid);
	}
	fwrite(core_buf_head(&rep), 1, core_buf_len(&rep), json ? stdout : stderr);
	if (out_path == NULL && !apply && !json)
		fwrite(core_buf_head(&merged), 1, core_buf_len(&merged), stdout);
	rc = 0;
done:
	imp_result_free(res);
	imp_ngx_free(nc);
	core_conf_free(base);
	core_buf_free(&merged);
	core_buf_free(&rep);
	free(base_text);
	return rc;
}

static const struct core_tool import_tool = {
	.name = "import-nginx",
	.usage = "       keel import-nginx NGINX.conf [-c KEEL.yaml] [-o OUT.yaml] [--apply] "
		 "[--json] [--dry-run]\n"
		 "                               turn an nginx configuration into keel's, with "
		 "a report\n"
		 "                               of every directive (mapped, approximated, "
		 "not supported)\n",
	.main = imp_tool,
};
CORE_TOOL(import_tool);
