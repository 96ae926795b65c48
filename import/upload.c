/* The command behind the admin UI's "Import from nginx": an uploaded
 * nginx.conf (one file: its includes stay unread) is mapped into the running
 * configuration and answered with the report and the resulting YAML,
 * secrets masked, for the UI to show as a diff and apply as a revision. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/command.h"
#include "core/conf.h"
#include "core/control.h"
#include "core/settings.h"
#include "core/store.h"
#include "import.h"

#define IMP_UPLOAD_MAX	(4 << 20)

struct imp_upload {
	struct core_buf	 body;
};

static void upload_free(struct core_command_call *call)
{
	struct imp_upload *u = call->priv;

	if (u != NULL)
		core_buf_free(&u->body);
	free(u);
	call->priv = NULL;
	call->cancel = NULL;
}

static int upload_begin(struct core_command_call *call, int64_t length)
{
	struct imp_upload *u;

	if (length > IMP_UPLOAD_MAX) {
		core_command_fail(call, 413, "an nginx configuration of %lld bytes: keel takes up "
				  "to %d", (long long)length, IMP_UPLOAD_MAX);
		return CORE_ERROR;
	}
	if ((u = calloc(1, sizeof(*u))) == NULL) {
		core_command_fail(call, 503, "out of memory");
		return CORE_ERROR;
	}
	core_buf_init(&u->body, IMP_UPLOAD_MAX);
	call->priv = u;
	call->cancel = upload_free;
	return CORE_OK;
}

static int upload_feed(struct core_command_call *call, const void *buf, size_t len)
{
	struct imp_upload *u = call->priv;

	if (core_buf_append(&u->body, buf, len) != CORE_OK) {
		upload_free(call);
		core_command_fail(call, 413, "the nginx configuration is over %d bytes",
				  IMP_UPLOAD_MAX);
		return CORE_ERROR;
	}
	return CORE_OK;
}

/* "a\nb\n" as a JSON array of lines. */
static void upload_lines(struct core_buf *out, const char *text)
{
	const char *p = text, *nl;
	bool first = true;

	core_buf_printf(out, "[");
	while (p != NULL && *p != '\0') {
		char line[1200];

		nl = strchr(p, '\n');
		snprintf(line, sizeof(line), "%.*s", nl ? (int)(nl - p) : (int)strlen(p), p);
		core_buf_printf(out, "%s", first ? "" : ",");
		core_json_str(out, line);
		first = false;
		p = nl ? nl + 1 : NULL;
	}
	core_buf_printf(out, "]");
}

static void upload_refuse(struct core_command_call *call, const char *errors,
			  const struct imp_result *res)
{
	char first[600];

	snprintf(first, sizeof(first), "%.*s", (int)strcspn(errors, "\n"), errors);
	core_buf_printf(&call->out, "{\"error\":");
	core_json_str(&call->out, first);
	core_buf_printf(&call->out, ",\"errors\":");
	upload_lines(&call->out, errors);
	core_buf_printf(&call->out, ",\"report\":");
	if (res != NULL)
		imp_report_json(&call->out, res);
	else
		core_buf_printf(&call->out, "[]");
	core_buf_printf(&call->out, "}");
	core_command_answer(call, 400);
}

/* The current revision (else the running configuration) with the
 * imported listeners, upstreams and routes, as YAML with secrets masked;
 * NULL with why in err. The current revision, not the running conf: a
 * setting that waits for a restart differs in the two, and the UI shows
 * the diff against the revision. */
static char *upload_merge(const char *yaml, char *err, size_t errlen)
{
	const struct core_conf *run = core_control_conf();
	struct core_store_rev rev = { 0 };
	struct core_buf text, out;
	char *ret = NULL, *errors = NULL;
	enum imp_merge_rc rc;

	core_buf_init(&text, 64 << 20);
	core_buf_init(&out, 64 << 20);
	if (core_control_store() != NULL &&
	    core_store_current(core_control_store(), &rev, err, errlen) == CORE_OK &&
	    rev.yaml != NULL) {
		core_buf_append(&text, rev.yaml, strlen(rev.yaml));
		free(rev.yaml);
	} else if (run == NULL || core_conf_write(&text, run, false, true) != CORE_OK) {
		snprintf(err, errlen, "the running configuration cannot be read");
		goto done;
	}
	core_buf_append(&text, "", 1);
	rc = imp_merge("(running)", core_buf_head(&text), yaml, false, &out, &errors);
	if (rc != IMP_MERGE_OK) {
		snprintf(err, errlen, "%s%.*s", rc == IMP_MERGE_UNFIT ? "the imported settings do "
			 "not fit the others: " : "", errors ? (int)strcspn(errors, "\n") : 13,
			 errors ? errors : "out of memory");
		goto done;
	}
	if (core_buf_append(&out, "", 1) == CORE_OK)
		ret = strdup(core_buf_head(&out));
done:
	free(errors);
	core_buf_free(&text);
	core_buf_free(&out);
	return ret;
}

static void upload_run(struct core_command_call *call)
{
	static const struct imp_ngx_io alone = { NULL, NULL, NULL };
	struct imp_upload *u = call->priv;
	const struct core_conf *run = core_control_conf();
	struct imp_ngx_conf *nc = NULL;
	struct imp_result *res = NULL;
	char certdir[512], err[600], *yaml = NULL;
	size_t i;

	/* the body is this function's from here: the answer may end the call */
	call->priv = NULL;
	call->cancel = NULL;
	if (u == NULL || core_buf_len(&u->body) == 0) {
		if (u != NULL)
			core_buf_free(&u->body);
		free(u);
		core_command_fail(call, 400, "no nginx configuration came");
		return;
	}
	snprintf(certdir, sizeof(certdir), "%s/certs",
		 run ? core_settings_of(run)->state_dir : "/var/lib/keel");
	nc = imp_ngx_parse_text("nginx.conf", core_buf_head(&u->body), core_buf_len(&u->body),
				&alone);
	if (nc == NULL) {
		core_command_fail(call, 503, "out of memory");
		goto done;
	}
	if (nc->nerrors > 0) {
		upload_refuse(call, nc->errors ? nc->errors : "too many errors\n", NULL);
		goto done;
	}
	/* Names are not looked up here: a lookup would hold the master's loop. */
	res = imp_nginx_map(nc, certdir, false);
	if (res == NULL) {
		core_command_fail(call, 503, "out of memory");
		goto done;
	}
	if (res->nerrors > 0 || res->yaml == NULL) {
		upload_refuse(call, res->errors ? res->errors : "nothing to import\n", res);
		goto done;
	}
	if ((yaml = upload_merge(res->yaml, err, sizeof(err))) == NULL) {
		char line[640];

		snprintf(line, sizeof(line), "%s\n", err);
		upload_refuse(call, line, res);
		goto done;
	}
	core_buf_printf(&call->out, "{\"report\":");
	imp_report_json(&call->out, res);
	core_buf_printf(&call->out, ",\"certificates\":[");
	for (i = 0; i < res->ncerts; i++) {
		core_buf_printf(&call->out, "%s", i ? "," : "");
		core_json_str(&call->out, res->certs[i].name);
	}
	core_buf_printf(&call->out, "],\"config\":");
	core_json_str(&call->out, yaml);
	core_buf_printf(&call->out, "}");
	core_command_answer(call, 200);
done:
	free(yaml);
	imp_result_free(res);
	imp_ngx_free(nc);
	core_buf_free(&u->body);
	free(u);
}

static const struct core_command import_command = {
	.name = "config.import-nginx",
	.doc = "Map an nginx.conf (the request's body; its includes are not read) into the "
	       "running configuration: the report of every directive and the resulting YAML "
	       "(secrets masked), to apply with PUT /api/v1/config/yaml.",
	.run = upload_run,
	.begin = upload_begin,
	.feed = upload_feed,
};
CORE_COMMAND(import_command);
