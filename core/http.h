/* A strict HTTP/1.x parser (RFC 9112/9110): heads of requests and
 * responses, and the chunked transfer coding. It allocates nothing and
 * refuses anything ambiguous, because a proxy that reads a message one way
 * while the server behind it reads it another is open to smuggling. */
#ifndef KEEL_CORE_HTTP_H
#define KEEL_CORE_HTTP_H

#include <stddef.h>
#include <sys/types.h>

#include "http-t.h"

static inline void core_http_msg_reset(struct core_http_msg *m)
{
	m->scan = 0;
	m->head_len = 0;
	m->nhdr = 0;
	m->nconn = 0;
	m->flags = 0;
	m->why = NULL;
}

/*
 * Parses a request head from buf[0..len). Returns the head's length once it
 * is complete; 0 when more bytes are needed (m->scan remembers how far the
 * search got); or a negative HTTP status to answer with before closing:
 * -400 (malformed or ambiguous), -405 (CONNECT), -414 (request line too
 * long), -431 (head too large or too many fields), -501 (unsupported
 * transfer coding), -505 (HTTP version). m->why says what was wrong.
 */
int core_http_parse_request(const char *buf, size_t len,
			     const struct core_http_limits *lim,
			     struct core_http_msg *m);

/* The same for a response head; any failure is -502 (invalid header). */
int core_http_parse_response(const char *buf, size_t len,
			      const struct core_http_limits *lim,
			      struct core_http_msg *m);

/* Case-insensitive match of a span against a lowercase literal. */
int core_http_span_eq(const char *buf, struct core_http_span s, const char *lower);

/* Finds a header by lowercase name; NULL when absent. */
const struct core_http_header *
core_http_find(const struct core_http_msg *m, const char *buf, const char *lower);

/* Whether a method may be sent twice with the effect of once (RFC 9110 9.2.2). */
int core_http_idempotent(enum core_http_method m);

static inline void core_http_chunked_init(struct core_http_chunked *c)
{
	*c = (struct core_http_chunked){ 0 };
}

/*
 * Walks len bytes of a chunked body. Returns how many bytes belong to the
 * body (all of len unless the body ended inside it); the caller forwards
 * those bytes unchanged. c->state is CORE_HTTP_CH_DONE once the last chunk and
 * trailers have passed. Returns -1 on malformed framing, with *why set.
 */
ssize_t core_http_chunked_feed(struct core_http_chunked *c, const char *p, size_t len,
			   const char **why);

#endif
