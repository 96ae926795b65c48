/* One HTTP (or TCP) probe at a time, on the event loop: connect, send,
 * read the answer with one timeout, judge the status and body. Health
 * checks and synthetic monitors are both made of these. */
#ifndef KEEL_CORE_PROBE_H
#define KEEL_CORE_PROBE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "conf-t.h"
#include "loop-t.h"
#include "tls.h"

struct core_probe;

/* What a probe found: ok, the time it took, the status (0: none), why not. */
typedef void (*core_probe_done_fn)(struct core_probe *p, bool ok, uint64_t ms, unsigned status,
			      const char *why);

struct core_probe {
	/* set by the owner */
	struct sockaddr_storage sa;
	socklen_t	 salen;
	bool		 tcp_only;	/* a connect is enough */
	const char	*request;	/* sent as is; the owner keeps it */
	size_t		 reqlen;
	char		 status[129];	/* statuses that pass: "200-399" */
	char		 body[257];	/* text the body must contain; "": any */
	uint64_t	 timeout;	/* ms for the whole probe */
	core_probe_done_fn	 done;
	void		*data;
	struct core_tls_server *tls;	/* a client context: HTTPS; NULL: plain */
	char		 tls_name[256];	/* SNI and the name verified */

	/* private */
	int		 phase;
	int		 fd;
	struct core_tls	*conn;
	struct core_io	 io;
	struct core_timer timer;
	struct core_buf	 in;
	uint64_t	 started;
	char		 fail[96];	/* why it failed before it began */
};

void core_probe_init(struct core_loop *loop, struct core_probe *p);

/* HTTPS for the probe through cli (the owner keeps the reference), sending
 * and checking server_name, or the address a when that is empty. */
void core_probe_tls(struct core_probe *p, struct core_tls_server *cli, const char *server_name,
		     const struct core_conf_addr *a);
/* Starts the probe; p->done is called once, from the loop, never inside. */
void core_probe_start(struct core_probe *p);
bool core_probe_busy(const struct core_probe *p);
/* Abandons a probe under way without calling done. */
void core_probe_cancel(struct core_probe *p);

#endif
