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

#endif
