/* The admin server's front: accepts every admin connection (core/net.h),
 * terminates TLS when admin.tls is on, enforces the head deadline and the
 * per-address cap, and hands each connection to libmicrohttpd over a
 * socketpair. */
#ifndef KEEL_WEB_FRONT_H
#define KEEL_WEB_FRONT_H

#include <stddef.h>

#include "core/loop-t.h"
#include "core/settings.h"
#include "web-t.h"

struct MHD_Daemon;

/* Listens on ac->listen; kick runs the daemon after the front fed it. */
int web_front_start(struct core_loop *loop, const struct keel_admin_conf *ac,
		    const char *state_dir, const char *node, struct MHD_Daemon *mhd,
		    void (*kick)(void), char *err, size_t errlen);

/* New addresses, limits and (HTTPS) certificates for new connections;
 * open ones keep theirs. */
int web_front_reload(const struct keel_admin_conf *ac, const char *state_dir,
		     const char *node, char *err, size_t errlen);

/* SHA-256 of the admin certificate, "AB:CD:..."; "" over plain HTTP. */
const char *web_front_fingerprint(void);

const char *web_conn_state_str(enum web_conn_state s);

void web_front_stop(void);

#endif
