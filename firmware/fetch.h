/* One HTTP GET on the master's loop whose body is handed on as it comes,
 * never kept: how an update bundle is fetched from a URL. Plain HTTP to an
 * address (no TLS, no name lookup): a bundle is signed, so the way it
 * travels needs no trust. A body of known length only (Content-Length);
 * a chunked one is refused. */
#ifndef KEEL_FIRMWARE_FETCH_H
#define KEEL_FIRMWARE_FETCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/loop-t.h"

#define FETCH_HEAD_MAX	16384

struct fetch_url {
	struct sockaddr_storage sa;
	socklen_t	 salen;
	char		 host[64];	/* as written, for the Host header */
	char		 path[1024];
};

/* "http://ADDRESS[:PORT]/PATH" into u; -1 with err saying what is wrong. */
int fetch_url_parse(const char *url, struct fetch_url *u, char *err, size_t errlen);

struct fetch {
	/* The caller's: head once the response head is in (its status and
	 * Content-Length), body per piece, done once at the end (ok, or why
	 * not). head and body return 0, or -1 to stop: done then gets the
	 * caller's own why. None runs inside fetch_start. */
	int		(*head)(struct fetch *f, unsigned status, int64_t length);
	int		(*body)(struct fetch *f, const void *buf, size_t len);
	void		(*done)(struct fetch *f, bool ok, const char *why);
	void		*data;
	uint64_t	 idle_ms;	/* no byte for this long ends it */

	/* Read by the caller. */
	uint64_t	 received;	/* body bytes */
	int64_t		 length;

	/* Private. */
	struct fetch_url url;
	int		 fd;
	int		 phase;
	struct core_io	 io;
	struct core_timer timer;
	char		 req[1200];
	size_t		 reqlen, sent;
	char		 headbuf[FETCH_HEAD_MAX];
	size_t		 headlen;
	char		 why[256];
};

/* Starts fetching url; -1 with err when the URL is unusable. */
int fetch_start(struct fetch *f, struct core_loop *loop, const char *url, const char *agent,
		char *err, size_t errlen);
/* Stops a fetch under way; done is not called. */
void fetch_cancel(struct fetch *f);

#endif
