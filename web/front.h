/* The admin server's HTTPS front: TLS terminated by keel, requests served
 * by libmicrohttpd over a socketpair per connection. */
#ifndef KEEL_WEB_FRONT_H
#define KEEL_WEB_FRONT_H

#include <stddef.h>

#include "core/loop-t.h"
#include "core/settings.h"

struct MHD_Daemon;

/* Listens on ac->listen; kick runs the daemon after the front fed it. */
int web_front_start(struct core_loop *loop, const struct keel_admin_conf *ac,
		    const char *state_dir, const char *node, struct MHD_Daemon *mhd,
		    void (*kick)(void), char *err, size_t errlen);

/* New certificates for new connections; open ones keep theirs. */
int web_front_reload(const struct keel_admin_conf *ac, const char *state_dir,
		     const char *node, char *err, size_t errlen);

/* SHA-256 of the admin certificate, "AB:CD:...". */
const char *web_front_fingerprint(void);

void web_front_stop(void);

#endif
