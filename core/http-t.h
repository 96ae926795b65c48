/* Types of the HTTP/1.x parser: a parsed message head, as offsets into the
 * caller's buffer (which may move), and the chunked-body decoder state. */
#ifndef KEEL_CORE_HTTP_T_H
#define KEEL_CORE_HTTP_T_H

#include <stdint.h>

#define CORE_HTTP_MAX_HEADERS		128	/* hard ceiling of the table */
#define CORE_HTTP_MAX_CONN_TOKENS	16	/* names listed in Connection */

/* A byte range of the buffer the head was parsed from. */
struct core_http_span {
	uint32_t	off;
	uint32_t	len;
};

/* Header names the proxy acts on, recognised once while parsing. */
enum core_http_hdr_kind {
	CORE_HTTP_H_OTHER = 0,
	CORE_HTTP_H_HOST,
	CORE_HTTP_H_CONTENT_LENGTH,
	CORE_HTTP_H_TRANSFER_ENCODING,
	CORE_HTTP_H_CONNECTION,
	CORE_HTTP_H_UPGRADE,
	CORE_HTTP_H_EXPECT,
	CORE_HTTP_H_KEEP_ALIVE,
	CORE_HTTP_H_PROXY_CONNECTION,
	CORE_HTTP_H_TE,
	CORE_HTTP_H_TRAILER,
	CORE_HTTP_H_PROXY_AUTHENTICATE,
	CORE_HTTP_H_PROXY_AUTHORIZATION,
	CORE_HTTP_H_X_FORWARDED_FOR,
	CORE_HTTP_H_X_REAL_IP,
	CORE_HTTP_H_X_FORWARDED_PROTO,
	CORE_HTTP_H_X_FORWARDED_HOST,
	CORE_HTTP_H_REFERER,
	CORE_HTTP_H_USER_AGENT,
	CORE_HTTP_H_COOKIE,
};

struct core_http_header {
	struct core_http_span name;
	struct core_http_span value;	/* without surrounding whitespace */
	uint32_t	line_end;	/* offset just past the line's CRLF */
	uint8_t		kind;		/* enum core_http_hdr_kind */
	uint8_t		hop;		/* hop-by-hop: fixed set or named in Connection */
};

enum core_http_method {
	CORE_HTTP_M_OTHER = 0,	/* a valid token we do not know: passed through */
	CORE_HTTP_M_GET,
	CORE_HTTP_M_HEAD,
	CORE_HTTP_M_POST,
	CORE_HTTP_M_PUT,
	CORE_HTTP_M_DELETE,
	CORE_HTTP_M_OPTIONS,
	CORE_HTTP_M_PATCH,
	CORE_HTTP_M_TRACE,
	CORE_HTTP_M_CONNECT,
};

/* Limits on a head; past them the parser answers 414 or 431. */
struct core_http_limits {
	uint32_t	max_line;	/* request line, bytes */
	uint32_t	max_head;	/* line + headers + blank line, bytes */
	uint32_t	max_headers;	/* header fields, at most CORE_HTTP_MAX_HEADERS */
};

/* Message flags, set from the headers. */
#define CORE_HTTP_HF_CHUNKED	0x001	/* Transfer-Encoding ends in chunked */
#define CORE_HTTP_HF_CLOSE		0x002	/* Connection: close (or 1.0 without keep-alive) */
#define CORE_HTTP_HF_KEEPALIVE	0x004	/* Connection: keep-alive */
#define CORE_HTTP_HF_UPGRADE	0x008	/* Connection: upgrade with an Upgrade header */
#define CORE_HTTP_HF_CONTINUE	0x010	/* Expect: 100-continue */
#define CORE_HTTP_HF_HAS_CL		0x020	/* content_length is valid */

struct core_http_msg {
	uint32_t	scan;		/* bytes already searched for the end */
	uint32_t	head_len;	/* bytes of the whole head, once complete */
	unsigned	version;	/* 10 or 11 */
	unsigned	flags;		/* CORE_HTTP_HF_* */
	const char	*why;		/* what was wrong, when parsing failed */

	/* request */
	enum core_http_method method_id;
	struct core_http_span method;
	struct core_http_span target;	/* as sent */
	struct core_http_span path;		/* origin-form part of target */
	struct core_http_span host;		/* Host header, or absolute-form authority */

	/* response */
	unsigned	status;
	struct core_http_span reason;

	int64_t		content_length;	/* with CORE_HTTP_HF_HAS_CL */
	unsigned	nconn;
	struct core_http_span conn[CORE_HTTP_MAX_CONN_TOKENS]; /* Connection tokens */
	unsigned	nhdr;
	struct core_http_header hdr[CORE_HTTP_MAX_HEADERS];
};

/* Chunked transfer coding, decoded incrementally while it is passed on. */
enum core_http_chunk_state {
	CORE_HTTP_CH_SIZE = 0,	/* hex digits of a chunk size */
	CORE_HTTP_CH_EXT,		/* ";ext" after the size, until CR */
	CORE_HTTP_CH_SIZE_LF,	/* the LF after the size line's CR */
	CORE_HTTP_CH_DATA,		/* chunk data; `left` bytes to go */
	CORE_HTTP_CH_DATA_CR,	/* the CR after chunk data */
	CORE_HTTP_CH_DATA_LF,	/* the LF after chunk data */
	CORE_HTTP_CH_TRAILER,	/* start of a trailer line (or the final CRLF) */
	CORE_HTTP_CH_TRAILER_LINE,	/* inside a trailer field line */
	CORE_HTTP_CH_TRAILER_LF,	/* the LF ending a trailer line */
	CORE_HTTP_CH_END_LF,	/* the LF of the final blank line */
	CORE_HTTP_CH_DONE,		/* the message ended */
};

struct core_http_chunked {
	enum core_http_chunk_state state;
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
