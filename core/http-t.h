/* Types of the HTTP/1.x parser: a parsed message head, as offsets into the
 * caller's buffer (which may move), and the chunked-body decoder state. */
#ifndef KEEL_CORE_HTTP_T_H
#define KEEL_CORE_HTTP_T_H

#include <stdint.h>

#define CORE_HTTP_MAX_HEADERS		128	/* hard ceiling of the table */
#define CORE_HTTP_MAX_CONN_TOKENS	16	/* names listed in Connection */

/* A byte range of the buffer the head was parsed from. */
struct proxy_span {
	uint32_t	off;
	uint32_t	len;
};

/* Header names the proxy acts on, recognised once while parsing. */
enum proxy_hdr_kind {
	PROXY_H_OTHER = 0,
	PROXY_H_HOST,
	PROXY_H_CONTENT_LENGTH,
	PROXY_H_TRANSFER_ENCODING,
	PROXY_H_CONNECTION,
	PROXY_H_UPGRADE,
	PROXY_H_EXPECT,
	PROXY_H_KEEP_ALIVE,
	PROXY_H_PROXY_CONNECTION,
	PROXY_H_TE,
	PROXY_H_TRAILER,
	PROXY_H_PROXY_AUTHENTICATE,
	PROXY_H_PROXY_AUTHORIZATION,
	PROXY_H_X_FORWARDED_FOR,
	PROXY_H_X_REAL_IP,
	PROXY_H_X_FORWARDED_PROTO,
	PROXY_H_X_FORWARDED_HOST,
	PROXY_H_REFERER,
	PROXY_H_USER_AGENT,
	PROXY_H_COOKIE,
};

struct core_http_header {
	struct proxy_span name;
	struct proxy_span value;	/* without surrounding whitespace */
	uint32_t	line_end;	/* offset just past the line's CRLF */
	uint8_t		kind;		/* enum proxy_hdr_kind */
	uint8_t		hop;		/* hop-by-hop: fixed set or named in Connection */
};

enum core_http_method {
	PROXY_M_OTHER = 0,	/* a valid token we do not know: passed through */
	PROXY_M_GET,
	PROXY_M_HEAD,
	PROXY_M_POST,
	PROXY_M_PUT,
	PROXY_M_DELETE,
	PROXY_M_OPTIONS,
	PROXY_M_PATCH,
	PROXY_M_TRACE,
	PROXY_M_CONNECT,
};

/* Limits on a head; past them the parser answers 414 or 431. */
struct core_http_limits {
	uint32_t	max_line;	/* request line, bytes */
	uint32_t	max_head;	/* line + headers + blank line, bytes */
	uint32_t	max_headers;	/* header fields, at most CORE_HTTP_MAX_HEADERS */
};

/* Message flags, set from the headers. */
#define PROXY_HF_CHUNKED	0x001	/* Transfer-Encoding ends in chunked */
#define PROXY_HF_CLOSE		0x002	/* Connection: close (or 1.0 without keep-alive) */
#define PROXY_HF_KEEPALIVE	0x004	/* Connection: keep-alive */
#define PROXY_HF_UPGRADE	0x008	/* Connection: upgrade with an Upgrade header */
#define PROXY_HF_CONTINUE	0x010	/* Expect: 100-continue */
#define PROXY_HF_HAS_CL		0x020	/* content_length is valid */

struct core_http_msg {
	uint32_t	scan;		/* bytes already searched for the end */
	uint32_t	head_len;	/* bytes of the whole head, once complete */
	unsigned	version;	/* 10 or 11 */
	unsigned	flags;		/* PROXY_HF_* */
	const char	*why;		/* what was wrong, when parsing failed */

	/* request */
	enum core_http_method method_id;
	struct proxy_span method;
	struct proxy_span target;	/* as sent */
	struct proxy_span path;		/* origin-form part of target */
	struct proxy_span host;		/* Host header, or absolute-form authority */

	/* response */
	unsigned	status;
	struct proxy_span reason;

	int64_t		content_length;	/* with PROXY_HF_HAS_CL */
	unsigned	nconn;
	struct proxy_span conn[CORE_HTTP_MAX_CONN_TOKENS]; /* Connection tokens */
	unsigned	nhdr;
	struct core_http_header hdr[CORE_HTTP_MAX_HEADERS];
};

/* Chunked transfer coding, decoded incrementally while it is passed on. */
enum proxy_chunk_state {
	PROXY_CH_SIZE = 0,	/* hex digits of a chunk size */
	PROXY_CH_EXT,		/* ";ext" after the size, until CR */
	PROXY_CH_SIZE_LF,	/* the LF after the size line's CR */
	PROXY_CH_DATA,		/* chunk data; `left` bytes to go */
	PROXY_CH_DATA_CR,	/* the CR after chunk data */
	PROXY_CH_DATA_LF,	/* the LF after chunk data */
	PROXY_CH_TRAILER,	/* start of a trailer line (or the final CRLF) */
	PROXY_CH_TRAILER_LINE,	/* inside a trailer field line */
	PROXY_CH_TRAILER_LF,	/* the LF ending a trailer line */
	PROXY_CH_END_LF,	/* the LF of the final blank line */
	PROXY_CH_DONE,		/* the message ended */
};

struct proxy_chunked {
	enum proxy_chunk_state state;
	uint64_t	left;		/* data bytes left in this chunk, or the size read */
	uint64_t	total;		/* data bytes of all chunks so far */
	unsigned	digits;		/* of the size so far */
	unsigned	ext_len;	/* bytes of extensions on this size line */
	unsigned	trailer_len;	/* bytes of trailer fields so far */
	unsigned	saw_digit:1;	/* the size line has a digit */
	unsigned	semi:1;		/* this extension run has its ';' */
	unsigned	colon:1;	/* this trailer line has its ':' */
};

#endif
