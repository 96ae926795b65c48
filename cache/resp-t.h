/* RESP's types, for whoever embeds a stream or its limits (see resp.h). */
#ifndef KEEL_CACHE_RESP_T_H
#define KEEL_CACHE_RESP_T_H

#include <stdint.h>

enum {
	CACHE_RESP_OK = 0,		/* one whole value; *used bytes */
	CACHE_RESP_AGAIN = 1,		/* not all there yet */
	CACHE_RESP_BAD = 2,		/* a protocol error or a limit: close */
};

struct cache_resp_limits {
	uint64_t	max_bulk;	/* bytes in one bulk string */
	uint32_t	max_elems;	/* elements in one aggregate */
	uint32_t	max_inline;	/* bytes of an inline command or a simple line */
	const char	*reserved;	/* streams of commands: an argument starting
					 * with it sets CACHE_RESP_SEEN_RESERVED; NULL: none */
	const char *const *stop_after;	/* streams of commands: names (lower case,
					 * NULL-ended) after which the connection stops
					 * speaking RESP (SYNC): CACHE_RESP_SEEN_STOP */
};

/* What the front learns about a command. */
struct cache_resp_cmd {
	char		name[24];	/* the first argument, lower case; "" if longer */
	uint32_t	argc;
	uint32_t	arg1_off, arg1_len;	/* the second argument, for SELECT and the like */
	int		is_inline;
};

/* What the front learns about a reply. */
struct cache_resp_reply {
	char		type;		/* '+', '-', ':', '$', '*', '>', '%', ... */
	uint32_t	elems;		/* of the outer aggregate */
	char		kind[16];	/* a push's or an array's first string, lower case
					 * ("message", "subscribe"...); "" otherwise */
};

/* A stream's framing state (resp.h: cache_resp_stream_feed). Replies nest
 * as deep as the server likes (a Lua script may return a recursive table):
 * one count of the values still due is all it takes to find where a
 * top-level value ends. */
#define CACHE_RESP_NO_MATCH	0xff

enum {
	CACHE_RESP_SEEN_READONLY = 0x1,	/* a top-level -READONLY error */
	CACHE_RESP_SEEN_LOADING = 0x2,	/* a top-level -LOADING error */
	CACHE_RESP_SEEN_RESERVED = 0x4,	/* a command argument in the reserved prefix */
	CACHE_RESP_SEEN_STOP = 0x8,	/* a command in limits' stop_after ended (a
					 * feed_until stops right after it) */
};

struct cache_resp_stream {
	uint64_t	pending;	/* values still due in the current top-level
					 * one (0: between top-level values) */
	uint64_t	skip;		/* bulk bytes still to come, then CRLF */
	uint32_t	linelen;	/* bytes of the current line so far */
	uint32_t	nonspace;	/* an inline command's non-blank bytes */
	uint8_t		state;
	uint8_t		commands;	/* a client's commands, not replies */
	char		type;		/* the current line's first byte */
	char		last;		/* and its last one so far */
	char		line[24];	/* its first bytes */
	uint8_t		pmatch;		/* bytes of the current argument matching
					 * the reserved prefix; CACHE_RESP_NO_MATCH: none */
	uint8_t		namelen;	/* bytes of name; CACHE_RESP_NO_MATCH: too long */
	uint8_t		naming;		/* the command's first argument is being read */
	char		name[15];	/* commands: the first argument, lower case */
	char		msg[32];	/* a refusal quoting the input ("got 'f'") */
	unsigned	seen;		/* CACHE_RESP_SEEN_*: set here, cleared by the caller */
};

#endif
