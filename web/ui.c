/* The admin UI's files; see ui.h. The page is one HTML file, one script
 * and one stylesheet; the policy below lets the browser run nothing else
 * (no inline script or style, no other origin). */
#include <string.h>

#include "api.h"
#include "ui.h"
#include "version.h"

#define UI_POLICY	"default-src 'none'; script-src 'self'; style-src 'self'; " \
			"img-src 'self' data:; connect-src 'self'; base-uri 'none'; " \
			"form-action 'self'; frame-ancestors 'none'"

static const struct web_ui_asset *ui_find(const char *url)
{
	const struct web_ui_asset *a;

	if (!strcmp(url, "/") || !strcmp(url, "/index.html"))
		url = "/ui/index.html";
	for (a = web_ui_assets; a->path != NULL; a++)
		if (!strcmp(a->path, url))
			return a;
	return NULL;
}

static enum MHD_Result ui_reply(struct MHD_Connection *c, unsigned status, const char *type,
				const char *body, size_t len, const char *etag, bool https)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	r = MHD_create_response_from_buffer_static(len, body);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	MHD_add_response_header(r, "Content-Security-Policy", UI_POLICY);
	web_api_security_headers(r, https);
	if (etag != NULL)
		MHD_add_response_header(r, "ETag", etag);
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

enum MHD_Result web_ui_serve(struct MHD_Connection *c, const char *method, const char *url,
			     bool https)
{
	/* The build's revision names the files' version. */
	static const char etag[] = "\"" KEEL_REVISION "\"";
	const struct web_ui_asset *a;
	const char *inm;

	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return ui_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "use GET\n", 8, NULL,
				https);
	if ((a = ui_find(url)) == NULL)
		return ui_reply(c, MHD_HTTP_NOT_FOUND, "text/plain", "no such file\n", 13, NULL, https);
	inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
	if (inm != NULL && !strcmp(inm, etag) && strstr(etag, "dirty") == NULL)
		return ui_reply(c, MHD_HTTP_NOT_MODIFIED, a->type, "", 0, etag, https);
	return ui_reply(c, MHD_HTTP_OK, a->type, a->data, a->len, etag, https);
}
