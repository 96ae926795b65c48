/* The admin JSON API under /api/v1, the login and setup flow, and the
 * other admin routes (/metrics, the UI's files). web.c feeds it whole
 * requests; every route but /healthz, login and setup needs a session. */
#ifndef KEEL_WEB_API_H
#define KEEL_WEB_API_H

#include <stdbool.h>

#include <microhttpd.h>

#include "auth.h"
#include "core/buf.h"

struct web_req {
	struct MHD_Connection *conn;
	const char	*method;
	const char	*url;
	char		 ip[64];
	struct core_buf	 body;
	bool		 too_big;
	bool		 https;
	struct auth_job	 job;		/* a password being hashed */
	int		 job_state;	/* 0 none, 1 running, 2 done */
	int		 step;		/* where a suspended handler resumes */
	char		 user[64];	/* the login being checked */
};

enum MHD_Result api_handle(struct web_req *r);

/* The headers every admin answer carries: nosniff, no framing, no referrer. */
void api_security_headers(struct MHD_Response *resp);

/* Called once the daemon runs: setup token, password thread. */
int api_start(struct core_loop *loop, bool https, char *err, size_t errlen);
void api_stop(void);

/* Runs the daemon again (after a suspended request resumed). */
extern void (*api_kick)(void);

#endif
