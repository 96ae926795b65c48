/* The admin UI's files, built into the binary (web/ui/assets.sh) and
 * served to anyone: they hold no data, the API behind them does. */
#ifndef KEEL_WEB_UI_H
#define KEEL_WEB_UI_H

#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

struct ui_asset {
	const char	*path;		/* "/ui/app.js" */
	const char	*type;
	const char	*data;
	size_t		 len;
};

extern const struct ui_asset ui_assets[];	/* ends with a NULL path */

/* Whether url is one of the UI's: "/", "/ui/...". */
bool ui_is(const char *url);

/* Answers a GET or HEAD for url (ui_is said yes). */
enum MHD_Result ui_serve(struct MHD_Connection *c, const char *method, const char *url);

#endif
