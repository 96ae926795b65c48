/* RESP, the Redis protocol, as keel's RESP front needs it: where each
 * value ends in a byte stream, with limits, without copying or allocating.
 * Commands from clients are arrays of bulk strings (or one inline line);
 * replies may be any RESP2 or RESP3 type, nested as deep as they come. The
 * front forwards bytes as they came and only needs boundaries, the
 * command's name and argument count, and whether a reply is a push
 * (pub/sub) message. Refusals of commands use Redis's own words
 * ("invalid bulk length"), which clients and their tests match on. */
#ifndef KEEL_CACHE_RESP_H
#define KEEL_CACHE_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "resp-t.h"

/* One command at buf[0..len). CACHE_RESP_BAD sets *why. */
int cache_resp_scan_command(const char *buf, size_t len, const struct cache_resp_limits *lim,
		      size_t *used, struct cache_resp_cmd *cmd, const char **why);

/* One reply (any type, nested) at buf[0..len). */
int cache_resp_scan_reply(const char *buf, size_t len, const struct cache_resp_limits *lim,
		    size_t *used, struct cache_resp_reply *rep, const char **why);

/*
 * The same framing for a stream of any size, fed in whatever pieces the
 * socket gives: the RESP front forwards bytes as they arrive (a 100 MB
 * value never has to fit a buffer) and learns from this how many whole
 * commands or replies went by. Values are accepted and refused exactly as
 * the scanners above accept and refuse them.
 */
void cache_resp_stream_init(struct cache_resp_stream *st, int commands);

/* Between two top-level values (nothing half-read). */
static inline int cache_resp_stream_idle(const struct cache_resp_stream *st)
{
	return st->pending == 0 && st->state == 0;
}

/* Feeds buf[0..len): CACHE_RESP_OK, with *values increased by the whole values
 * (commands that get a reply, or top-level replies) it ended, or CACHE_RESP_BAD
 * with *why; a stream that went bad stays bad. */
int cache_resp_stream_feed(struct cache_resp_stream *st, const char *buf, size_t len,
		     const struct cache_resp_limits *lim, uint64_t *values, const char **why);

/* The same, but it stops right after the value that brings *values to
 * stop (at once if it is there already), or after a command named in the
 * limits' stop_after (CACHE_RESP_SEEN_STOP; cache_resp_stream_feed only
 * sets the flag): *used gets the bytes it took, so a caller can pass on
 * exactly that many whole values. */
int cache_resp_stream_feed_until(struct cache_resp_stream *st, const char *buf, size_t len,
			   const struct cache_resp_limits *lim, uint64_t *values, uint64_t stop,
			   size_t *used, const char **why);

#endif
