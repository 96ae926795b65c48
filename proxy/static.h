/*
 * Static files from an NFS export (routes[].static), read through libnfs
 * on the worker's loop: never through a kernel mount, so a dead NFS server
 * makes these requests fail with 504 after the route's timeout and holds
 * up nothing else.
 *
 * proxy.c starts a job for a request; the job writes the whole answer
 * (head and body, or a small error page) into the stream's output buffer
 * as the server's answers come, and calls wake() after each. proxy.c asks
 * for more when the client has taken what is there, and ends the job when
 * the answer is out, or earlier (the client left, a timeout).
 */
#ifndef KEEL_PROXY_STATIC_H
#define KEEL_PROXY_STATIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf-t.h"
#include "core/http-t.h"
#include "core/loop-t.h"
#include "core/settings-t.h"

struct proxy_static;
struct proxy_static_job;

/* The most a job puts in the output buffer at once (a listing, or a head
 * and the bytes read ahead): the buffer's cap must allow it. */
#define PROXY_STATIC_OUT_MAX	(2 << 20)

/* A route's files, from its static settings and the storage mount they
 * name (its servers, its export, the NFS version of its options). */
struct proxy_static *proxy_static_new(const struct keel_static_conf *c,
				      const struct keel_mount_conf *m, const char *route_path,
				      char *err, size_t errlen);
void proxy_static_free(struct proxy_static *st);

/*
 * Starts answering a GET or HEAD for path (as sent, without the query),
 * whose first skip bytes are the route's prefix. m and buf are the request head,
 * read now and not kept. extra holds header lines for the answer's head
 * (Connection, HSTS). NULL when out of memory.
 */
struct proxy_static_job *proxy_static_begin(struct proxy_static *st, struct core_loop *loop,
					    const char *path, size_t path_len, size_t skip,
					    const char *query, size_t query_len,
					    const struct core_http_msg *m, const char *buf,
					    const char *extra, struct core_buf *out,
					    void (*wake)(void *owner), void *owner);
/* The client took what there was: reads on if there is more. */
void proxy_static_more(struct proxy_static_job *j);
/* Every byte of the answer is in out. */
bool proxy_static_done(const struct proxy_static_job *j);
/* Something went wrong after the head went out: the stream must close. */
bool proxy_static_broken(const struct proxy_static_job *j);
/* Waiting for the NFS server since *since (monotonic ms), with its timeout. */
bool proxy_static_waiting(const struct proxy_static_job *j, uint64_t *since, uint64_t *timeout);
/* The NFS server did not answer in time: the connection goes (every job
 * on it fails), and the next request tries the next server. */
void proxy_static_timeout(struct proxy_static_job *j);
unsigned proxy_static_status(const struct proxy_static_job *j);
/* proxy.c is done with the job (answered, or gone). */
void proxy_static_end(struct proxy_static_job *j);

/* Parsers, apart for tests and fuzzing. */
/* Decodes a request path (%XX), refusing NUL, control bytes, '\\' and "."
 * or ".." segments; collapses "//". 0, or -1 when refused. */
int proxy_static_path(const char *in, size_t len, char *out, size_t outlen);
/* "bytes=A-B", "bytes=A-", "bytes=-N" against size: 1 and [*from, *to]
 * (inclusive), 0 to ignore the header (absent, malformed, several
 * ranges), -1 when unsatisfiable (416). */
int proxy_static_range(const char *v, size_t len, uint64_t size, uint64_t *from, uint64_t *to);
/* An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") to Unix seconds; -1. */
int64_t proxy_static_http_date(const char *v, size_t len);

#endif
