/* RESP, the Redis protocol, as keel's RESP front needs it: where each
 * value ends in a byte stream, with limits, without copying or allocating.
 * Commands from clients are arrays of bulk strings (or one inline line);
 * replies may be any RESP2 or RESP3 type, nested. The front forwards bytes
 * as they came and only needs boundaries, the command's name and argument
 * count, and whether a reply is a push (pub/sub) message. */
#ifndef KEEL_CACHE_RESP_H
#define KEEL_CACHE_RESP_H

#include <stddef.h>
#include <stdint.h>

enum {
	RESP_OK = 0,		/* one whole value; *used bytes */
	RESP_AGAIN = 1,		/* not all there yet */
	RESP_BAD = 2,		/* a protocol error or a limit: close */
};

struct resp_limits {
	uint64_t	max_bulk;	/* bytes in one bulk string */
	uint32_t	max_elems;	/* elements in one aggregate */
	uint32_t	max_depth;	/* aggregates inside aggregates (replies) */
	uint32_t	max_inline;	/* bytes of an inline command or a simple line */
	const char	*reserved;	/* streams of commands: an argument starting
					 * with it sets RESP_SEEN_RESERVED; NULL: none */
};

/* What the front learns about a command. */
struct resp_cmd {
	char		name[24];	/* the first argument, lower case; "" if longer */
	uint32_t	argc;
	uint32_t	arg1_off, arg1_len;	/* the second argument, for SELECT and the like */
	int		is_inline;
};

/* What the front learns about a reply. */
struct resp_reply {
	char		type;		/* '+', '-', ':', '$', '*', '>', '%', ... */
	uint32_t	elems;		/* of the outer aggregate */
	char		kind[16];	/* a push's or an array's first string, lower case
					 * ("message", "subscribe"...); "" otherwise */
};

/* One command at buf[0..len). RESP_BAD sets *why. */
int resp_scan_command(const char *buf, size_t len, const struct resp_limits *lim,
		      size_t *used, struct resp_cmd *cmd, const char **why);

/* One reply (any type, nested) at buf[0..len). */
int resp_scan_reply(const char *buf, size_t len, const struct resp_limits *lim,
		    size_t *used, struct resp_reply *rep, const char **why);

/*
 * The same framing for a stream of any size, fed in whatever pieces the
 * socket gives: the RESP front forwards bytes as they arrive (a 100 MB
 * value never has to fit a buffer) and learns from this how many whole
 * commands or replies went by. Values are accepted and refused exactly as
 * the scanners above accept and refuse them.
 */
#define RESP_STACK	32	/* depth cap, whatever the limits say */
#define RESP_NO_MATCH	0xff

enum {
	RESP_SEEN_READONLY = 0x1,	/* a top-level -READONLY error */
	RESP_SEEN_LOADING = 0x2,	/* a top-level -LOADING error */
	RESP_SEEN_RESERVED = 0x4,	/* a command argument in the reserved prefix */
};

struct resp_stream {
	uint64_t	left[RESP_STACK];	/* elements due per open aggregate */
	uint64_t	skip;		/* bulk bytes still to come, then CRLF */
	uint32_t	depth;
	uint32_t	linelen;	/* bytes of the current line so far */
	uint32_t	nonspace;	/* an inline command's non-blank bytes */
	uint8_t		state;
	uint8_t		commands;	/* a client's commands, not replies */
	char		type;		/* the current line's first byte */
	char		last;		/* and its last one so far */
	char		line[24];	/* its first bytes */
	uint8_t		pmatch;		/* bytes of the current argument matching
					 * the reserved prefix; RESP_NO_MATCH: none */
	unsigned	seen;		/* RESP_SEEN_*: set here, cleared by the caller */
};

void resp_stream_init(struct resp_stream *st, int commands);

/* Between two top-level values (nothing half-read). */
static inline int resp_stream_idle(const struct resp_stream *st)
{
	return st->depth == 0 && st->state == 0;
}

/* Feeds buf[0..len): RESP_OK, with *values increased by the whole values
 * (commands that get a reply, or top-level replies) it ended, or RESP_BAD
 * with *why; a stream that went bad stays bad. */
int resp_stream_feed(struct resp_stream *st, const char *buf, size_t len,
		     const struct resp_limits *lim, uint64_t *values, const char **why);

/* The same, but it stops right after the value that brings *values to
 * stop (at once if it is there already): *used gets the bytes it took, so
 * a caller can pass on exactly that many whole values. */
int resp_stream_feed_until(struct resp_stream *st, const char *buf, size_t len,
			   const struct resp_limits *lim, uint64_t *values, uint64_t stop,
			   size_t *used, const char **why);

#endif
