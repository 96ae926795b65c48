/* The admin UI's files, built into the binary (web/ui/assets.sh) and
 * served to anyone: they hold no data, the API behind them does. */
#ifndef KEEL_WEB_UI_H
#define KEEL_WEB_UI_H

#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

#include "web-t.h"

extern const struct web_ui_asset web_ui_assets[];	/* ends with a NULL path */

/* Answers a GET or HEAD for url: "/", "/index.html", "/ui/...". */
enum MHD_Result web_ui_serve(struct MHD_Connection *c, const char *method, const char *url,
			     bool https);

#endif
