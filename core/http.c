/* A strict HTTP/1.x parser. The head is parsed in one pass once its blank
 * line has arrived; until then only the new bytes are searched, so a slow
 * sender costs O(n) in total. Nothing is allocated: results are offsets. */
#include <string.h>

#include "core.h"
#include "http.h"

#define C_TCHAR	0x01	/* token character (RFC 9110 5.6.2) */
#define C_VCHAR	0x02	/* visible, or obs-text (0x80-0xff) */
#define C_WS	0x04	/* SP or HTAB */
#define C_HEX	0x08
#define C_HOST	0x10	/* allowed in a Host value: reg-name, IP literal, port */

static unsigned char ctype[256];

__attribute__((constructor)) static void http_init_ctype(void)
{
	const char *tchar_extra = "!#$%&'*+-.^_`|~";
	const char *host_extra = "-._~!$&'()*+,;=:[]%";
	int c;

	for (c = 0; c < 256; c++) {
		unsigned char t = 0;
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9');

		if (alnum || (c && strchr(tchar_extra, c)))
			t |= C_TCHAR;
		if ((c > 0x20 && c < 0x7f) || c >= 0x80)
			t |= C_VCHAR;
		if (c == ' ' || c == '\t')
			t |= C_WS;
		if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
			t |= C_HEX;
		if (alnum || (c && strchr(host_extra, c)))
			t |= C_HOST;
		ctype[c] = t;
	}
}

#define IS(c, k)	(ctype[(unsigned char)(c)] & (k))

static struct core_http_span span(const char *base, const char *p, size_t n)
{
	return (struct core_http_span){ (uint32_t)(p - base), (uint32_t)n };
}

int core_http_span_eq(const char *buf, struct core_http_span s, const char *lower)
{
	size_t i;

	if (strlen(lower) != s.len)
		return 0;
	for (i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)buf[s.off + i];

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (c != (unsigned char)lower[i])
			return 0;
	}
	return 1;
}

const struct core_http_header *
core_http_find(const struct core_http_msg *m, const char *buf, const char *lower)
{
	unsigned i;

	for (i = 0; i < m->nhdr; i++)
		if (core_http_span_eq(buf, m->hdr[i].name, lower))
			return &m->hdr[i];
	return NULL;
}

/* Recognises the header names the proxy acts on; one compare at most per
 * length, as names of the same length rarely collide. */
static enum core_http_hdr_kind http_header_kind(const char *p, size_t n)
{
#define K(s, k)	{ s, sizeof(s) - 1, k }
	static const struct { const char *name; uint8_t len, kind; } known[] = {
		K("te", CORE_HTTP_H_TE),
		K("host", CORE_HTTP_H_HOST),
		K("cookie", CORE_HTTP_H_COOKIE),
		K("expect", CORE_HTTP_H_EXPECT),
		K("upgrade", CORE_HTTP_H_UPGRADE),
		K("trailer", CORE_HTTP_H_TRAILER),
		K("referer", CORE_HTTP_H_REFERER),
		K("x-real-ip", CORE_HTTP_H_X_REAL_IP),
		K("connection", CORE_HTTP_H_CONNECTION),
		K("keep-alive", CORE_HTTP_H_KEEP_ALIVE),
		K("user-agent", CORE_HTTP_H_USER_AGENT),
		K("content-length", CORE_HTTP_H_CONTENT_LENGTH),
		K("x-forwarded-for", CORE_HTTP_H_X_FORWARDED_FOR),
		K("proxy-connection", CORE_HTTP_H_PROXY_CONNECTION),
		K("x-forwarded-host", CORE_HTTP_H_X_FORWARDED_HOST),
		K("transfer-encoding", CORE_HTTP_H_TRANSFER_ENCODING),
		K("x-forwarded-proto", CORE_HTTP_H_X_FORWARDED_PROTO),
		K("proxy-authenticate", CORE_HTTP_H_PROXY_AUTHENTICATE),
		K("proxy-authorization", CORE_HTTP_H_PROXY_AUTHORIZATION),
	};
#undef K
	size_t i;

	if (n < 2 || n > 19)
		return CORE_HTTP_H_OTHER;
	for (i = 0; i < CORE_ARRAY_SIZE(known); i++)
		if (known[i].len == n && strncasecmp(p, known[i].name, n) == 0)
			return (enum core_http_hdr_kind)known[i].kind;
	return CORE_HTTP_H_OTHER;
}

static int http_kind_is_hop(uint8_t k)
{
	switch (k) {
	case CORE_HTTP_H_CONNECTION:
	case CORE_HTTP_H_KEEP_ALIVE:
	case CORE_HTTP_H_PROXY_CONNECTION:
	case CORE_HTTP_H_TE:
	case CORE_HTTP_H_TRAILER:
	case CORE_HTTP_H_TRANSFER_ENCODING:
	case CORE_HTTP_H_UPGRADE:
	case CORE_HTTP_H_PROXY_AUTHENTICATE:
	case CORE_HTTP_H_PROXY_AUTHORIZATION:
		return 1;
	default:
		return 0;
	}
}

int core_http_idempotent(enum core_http_method m)
{
	switch (m) {
	case CORE_HTTP_M_GET:
	case CORE_HTTP_M_HEAD:
	case CORE_HTTP_M_PUT:
	case CORE_HTTP_M_DELETE:
	case CORE_HTTP_M_OPTIONS:
	case CORE_HTTP_M_TRACE:
		return 1;
	default:
		return 0;
	}
}

/* ---- finding the end of the head ------------------------------------------- */

/*
 * Searches for CRLF CRLF from m->scan. Returns the head length, 0 if not
 * there yet, or a negative status when a limit is passed first.
 */
static int http_find_end(const char *buf, size_t len, const struct core_http_limits *lim,
			 struct core_http_msg *m, int is_request)
{
	size_t i = m->scan > 3 ? m->scan - 3 : 0;
	size_t limit = len < lim->max_head ? len : lim->max_head;
	const char *eol;

	for (; i + 3 < limit; i++) {
		if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' &&
		    buf[i + 3] == '\n') {
			m->scan = (uint32_t)(i + 4);
			return (int)(i + 4);
		}
	}
	m->scan = (uint32_t)limit;

	/* A request line must end within max_line, whatever follows. */
	if (is_request) {
		size_t first = len < (size_t)lim->max_line + 2 ? len : (size_t)lim->max_line + 2;

		eol = memchr(buf, '\n', first);
		if (eol == NULL && first > lim->max_line + 1) {
			m->why = "request line too long";
			return -414;
		}
	}
	if (len >= lim->max_head) {
		m->why = "request head too large";
		return is_request ? -431 : -502;
	}
	return 0;
}

/* ---- header fields ------------------------------------------------------------ */

/*
 * Parses a Content-Length value: one plain decimal number and nothing else.
 * A list, even of equal values ("10, 10"), is refused rather than
 * normalised (RFC 9112 6.3 allows either): a server behind us might read
 * such a list its own way, and one message must mean the same to both.
 */
static int http_content_length(const char *p, size_t n, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (!(p[i] >= '0' && p[i] <= '9'))
			return -1;
		if (v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return 0;
}

/*
 * Calls fn for each element of a comma-separated list value; empty
 * elements are skipped as RFC 9110 5.6.1 requires. Elements are trimmed.
 */
static int http_list_each(const char *buf, struct core_http_span v,
			  int (*fn)(const char *buf, struct core_http_span e, void *arg),
			  void *arg)
{
	const char *p = buf + v.off, *end = p + v.len;

	while (p < end) {
		const char *s, *e;

		while (p < end && (IS(*p, C_WS) || *p == ','))
			p++;
		s = p;
		while (p < end && *p != ',')
			p++;
		e = p;
		while (e > s && IS(e[-1], C_WS))
			e--;
		if (e > s && fn(buf, span(buf, s, (size_t)(e - s)), arg) != 0)
			return -1;
	}
	return 0;
}

struct te_state {
	unsigned	n;
	unsigned	chunked_at;	/* 1-based position of "chunked" */
	unsigned	chunked_count;
};

static int http_te_one(const char *buf, struct core_http_span e, void *arg)
{
	struct te_state *t = arg;
	size_t i;

	t->n++;
	/* A coding is a token, optionally with parameters we do not support. */
	for (i = 0; i < e.len; i++)
		if (!IS(buf[e.off + i], C_TCHAR))
			return -1;
	if (core_http_span_eq(buf, e, "chunked")) {
		t->chunked_at = t->n;
		t->chunked_count++;
	}
	return 0;
}

static int http_conn_one(const char *buf, struct core_http_span e, void *arg)
{
	struct core_http_msg *m = arg;
	size_t i;

	for (i = 0; i < e.len; i++)
		if (!IS(buf[e.off + i], C_TCHAR))
			return -1;
	if (core_http_span_eq(buf, e, "close"))
		m->flags |= CORE_HTTP_HF_CLOSE;
	else if (core_http_span_eq(buf, e, "keep-alive"))
		m->flags |= CORE_HTTP_HF_KEEPALIVE;
	if (m->nconn == CORE_HTTP_MAX_CONN_TOKENS)
		return -1;
	m->conn[m->nconn++] = e;
	return 0;
}

/*
 * Parses the header fields between p and end (end is the blank line's CR),
 * then derives framing. Returns 0 or a negative status.
 */
static int http_parse_fields(const char *buf, const char *p, const char *end,
			     const struct core_http_limits *lim,
			     struct core_http_msg *m, int bad)
{
	struct te_state te = { 0, 0, 0 };
	int nhost = 0, has_te = 0, has_upgrade = 0;
	unsigned max = lim->max_headers < CORE_HTTP_MAX_HEADERS ?
		       lim->max_headers : CORE_HTTP_MAX_HEADERS;

	m->content_length = -1;
	while (p < end) {
		const char *name = p, *colon, *v, *ve, *eol;
		struct core_http_header *h;

		if (IS(*p, C_WS)) {
			m->why = "obsolete line folding";
			return bad;
		}
		while (p < end && IS(*p, C_TCHAR))
			p++;
		if (p == name || p >= end || *p != ':') {
			m->why = p < end && IS(*p, C_WS) ? "whitespace before colon"
				 : "invalid header name";
			return bad;
		}
		colon = p++;
		while (p < end && IS(*p, C_WS))
			p++;
		v = p;
		while (p < end && (IS(*p, C_VCHAR) || IS(*p, C_WS)))
			p++;
		if (p >= end || p[0] != '\r' || p[1] != '\n') {
			m->why = *p == '\0' ? "NUL in header value"
				 : *p == '\r' ? "bare CR in header value"
				 : *p == '\n' ? "bare LF in header" : "control byte in header value";
			return bad;
		}
		eol = p;
		ve = eol;
		while (ve > v && IS(ve[-1], C_WS))
			ve--;
		p = eol + 2;

		if (m->nhdr == max) {
			m->why = "too many header fields";
			return bad == -400 ? -431 : bad;
		}
		h = &m->hdr[m->nhdr++];
		h->name = span(buf, name, (size_t)(colon - name));
		h->value = span(buf, v, (size_t)(ve - v));
		h->line_end = (uint32_t)(p - buf);
		h->kind = (uint8_t)http_header_kind(name, (size_t)(colon - name));
		h->hop = (uint8_t)http_kind_is_hop(h->kind);

		if (h->kind == CORE_HTTP_H_OTHER)
			continue;
		if (h->kind == CORE_HTTP_H_CONTENT_LENGTH) {
			if (m->flags & CORE_HTTP_HF_HAS_CL) {
				m->why = "more than one Content-Length";
				return bad;
			}
			if (http_content_length(buf + h->value.off, h->value.len,
						&m->content_length) != 0) {
				m->why = "Content-Length is not a single decimal number";
				return bad;
			}
			m->flags |= CORE_HTTP_HF_HAS_CL;
		} else if (h->kind == CORE_HTTP_H_TRANSFER_ENCODING) {
			has_te = 1;
			if (http_list_each(buf, h->value, http_te_one, &te) != 0) {
				m->why = "invalid Transfer-Encoding";
				return bad;
			}
		} else if (h->kind == CORE_HTTP_H_HOST) {
			nhost++;
			m->host = h->value;
		} else if (h->kind == CORE_HTTP_H_CONNECTION) {
			if (http_list_each(buf, h->value, http_conn_one, m) != 0) {
				m->why = "invalid Connection header";
				return bad;
			}
		} else if (h->kind == CORE_HTTP_H_UPGRADE) {
			has_upgrade = 1;
		} else if (h->kind == CORE_HTTP_H_EXPECT) {
			if (core_http_span_eq(buf, h->value, "100-continue"))
				m->flags |= CORE_HTTP_HF_CONTINUE;
		}
	}

	if (has_te) {
		if (m->flags & CORE_HTTP_HF_HAS_CL) {
			m->why = "both Content-Length and Transfer-Encoding";
			return bad;
		}
		if (m->version == 10 && bad == -400) {
			m->why = "Transfer-Encoding in an HTTP/1.0 request";
			return bad;
		}
		if (te.chunked_count != 1 || te.chunked_at != te.n) {
			m->why = "Transfer-Encoding must end with a single chunked";
			return bad == -400 && te.chunked_count == 0 ? -501 : bad;
		}
		m->flags |= CORE_HTTP_HF_CHUNKED;
	}

	if (bad == -400) {		/* request-only rules */
		if (nhost > 1) {
			m->why = "more than one Host header";
			return bad;
		}
		if (nhost == 0 && m->version == 11 && m->host.len == 0) {
			m->why = "HTTP/1.1 request without Host";
			return bad;
		}
		if (nhost == 1) {
			uint32_t i;

			for (i = 0; i < m->host.len; i++)
				if (!IS(buf[m->host.off + i], C_HOST)) {
					m->why = "invalid Host";
					return bad;
				}
		}
	}

	if (has_upgrade) {
		unsigned i;

		for (i = 0; i < m->nconn; i++)
			if (core_http_span_eq(buf, m->conn[i], "upgrade"))
				m->flags |= CORE_HTTP_HF_UPGRADE;
	}
	/* Names listed in Connection are hop-by-hop too (RFC 9110 7.6.1). */
	if (m->nconn > 0) {
		unsigned i, j;

		for (i = 0; i < m->nconn; i++) {
			struct core_http_span c = m->conn[i];

			if (core_http_span_eq(buf, c, "close") || core_http_span_eq(buf, c, "keep-alive"))
				continue;
			for (j = 0; j < m->nhdr; j++)
				if (m->hdr[j].name.len == c.len &&
				    strncasecmp(buf + c.off, buf + m->hdr[j].name.off, c.len) == 0)
					m->hdr[j].hop = 1;
		}
	}
	if (m->version == 10 && !(m->flags & CORE_HTTP_HF_KEEPALIVE))
		m->flags |= CORE_HTTP_HF_CLOSE;
	return 0;
}

static int http_version(const char *p, unsigned *v)
{
	if (memcmp(p, "HTTP/1.", 7) != 0) {
		if (memcmp(p, "HTTP/", 5) == 0 && p[5] >= '0' && p[5] <= '9' &&
		    p[6] == '.' && p[7] >= '0' && p[7] <= '9')
			return -505;
		return -400;
	}
	if (p[7] == '1')
		*v = 11;
	else if (p[7] == '0')
		*v = 10;
	else if (p[7] >= '2' && p[7] <= '9')
		*v = 11;	/* a later 1.x minor: answer as 1.1 (RFC 9110 6.2) */
	else
		return -400;
	return 0;
}

static enum core_http_method http_method_id(const char *p, size_t n)
{
	static const struct { const char *s; enum core_http_method id; } ms[] = {
		{ "GET", CORE_HTTP_M_GET }, { "HEAD", CORE_HTTP_M_HEAD },
		{ "POST", CORE_HTTP_M_POST }, { "PUT", CORE_HTTP_M_PUT },
		{ "DELETE", CORE_HTTP_M_DELETE }, { "OPTIONS", CORE_HTTP_M_OPTIONS },
		{ "PATCH", CORE_HTTP_M_PATCH }, { "TRACE", CORE_HTTP_M_TRACE },
		{ "CONNECT", CORE_HTTP_M_CONNECT },
	};
	size_t i;

	for (i = 0; i < CORE_ARRAY_SIZE(ms); i++)
		if (strlen(ms[i].s) == n && memcmp(ms[i].s, p, n) == 0)
			return ms[i].id;
	return CORE_HTTP_M_OTHER;
}

int core_http_parse_request(const char *buf, size_t len,
			     const struct core_http_limits *lim,
			     struct core_http_msg *m)
{
	const char *p, *end, *s;
	int rc, head;

	head = http_find_end(buf, len, lim, m, 1);
	if (head <= 0)
		return head;
	p = buf;
	end = buf + head - 2;		/* the blank line's CR */

	/* Method SP request-target SP HTTP-version CRLF, single spaces. */
	s = p;
	while (p < end && IS(*p, C_TCHAR))
		p++;
	if (p == s || *p != ' ') {
		m->why = p == s && (*p == '\r' || *p == '\n') ? "empty request line"
			 : "invalid method";
		return -400;
	}
	m->method = span(buf, s, (size_t)(p - s));
	m->method_id = http_method_id(s, (size_t)(p - s));
	s = ++p;
	while (p < end && IS(*p, C_VCHAR))
		p++;
	if (p == s || *p != ' ') {
		m->why = "invalid request target";
		return -400;
	}
	if ((size_t)(p - buf) > lim->max_line) {
		m->why = "request line too long";
		return -414;
	}
	m->target = span(buf, s, (size_t)(p - s));
	p++;
	if (end - p < 10) {
		m->why = "invalid HTTP version";
		return -400;
	}
	rc = http_version(p, &m->version);
	if (rc != 0 || p[8] != '\r' || p[9] != '\n') {
		m->why = "invalid HTTP version";
		return rc != 0 ? rc : -400;
	}
	p += 10;

	/* Request target: origin-form, absolute-form, or OPTIONS's asterisk. */
	s = buf + m->target.off;
	m->host = (struct core_http_span){ 0, 0 };
	if (*s == '/') {
		m->path = m->target;
	} else if (m->target.len == 1 && *s == '*' && m->method_id == CORE_HTTP_M_OPTIONS) {
		m->path = m->target;
	} else if (m->target.len > 7 && strncasecmp(s, "http://", 7) == 0) {
		const char *a = s + 7, *te = s + m->target.len, *slash;

		slash = memchr(a, '/', (size_t)(te - a));
		if (slash == a) {
			m->why = "absolute-form target without a host";
			return -400;
		}
		m->host = span(buf, a, (size_t)((slash ? slash : te) - a));
		m->path = slash ? span(buf, slash, (size_t)(te - slash))
				: span(buf, te, 0);	/* "/" is implied */
	} else {
		m->why = m->method_id == CORE_HTTP_M_CONNECT ? "CONNECT is not supported"
			 : "invalid request target";
		return m->method_id == CORE_HTTP_M_CONNECT ? -405 : -400;
	}

	rc = http_parse_fields(buf, p, end, lim, m, -400);
	if (rc != 0)
		return rc;
	/* An absolute-form authority wins over Host (RFC 9112 3.2.2). */
	if (m->target.len > 0 && buf[m->target.off] != '/' && buf[m->target.off] != '*') {
		const char *a = buf + m->target.off + 7;
		const char *ae = memchr(a, '/', m->target.len - 7);

		m->host = span(buf, a, (size_t)((ae ? ae : buf + m->target.off + m->target.len) - a));
	}
	m->head_len = (uint32_t)head;
	return head;
}

int core_http_parse_response(const char *buf, size_t len,
			      const struct core_http_limits *lim,
			      struct core_http_msg *m)
{
	const char *p, *end, *s;
	int rc, head;

	head = http_find_end(buf, len, lim, m, 0);
	if (head <= 0)
		return head;
	p = buf;
	end = buf + head - 2;

	/* HTTP-version SP 3DIGIT SP [reason] CRLF */
	if (end - p < 12 || http_version(p, &m->version) != 0 || p[8] != ' ') {
		m->why = "invalid status line";
		return -502;
	}
	p += 9;
	if (!(p[0] >= '1' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
	      p[2] >= '0' && p[2] <= '9') || (p[3] != ' ' && p[3] != '\r')) {
		m->why = "invalid status code";
		return -502;
	}
	m->status = (unsigned)((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'));
	p += p[3] == ' ' ? 4 : 3;	/* servers may leave out an empty reason */
	s = p;
	while (p < end && (IS(*p, C_VCHAR) || IS(*p, C_WS)))
		p++;
	if (p[0] != '\r' || p[1] != '\n') {
		m->why = "invalid reason phrase";
		return -502;
	}
	m->reason = span(buf, s, (size_t)(p - s));
	p += 2;

	rc = http_parse_fields(buf, p, end, lim, m, -502);
	if (rc != 0)
		return rc;
	m->head_len = (uint32_t)head;
	return head;
}

/* ---- chunked transfer coding ---------------------------------------------------- */

#define CHUNK_MAX_DIGITS	16
#define CHUNK_MAX_EXT		256	/* bytes of extensions per size line */
#define CHUNK_MAX_TRAILER	8192	/* bytes of all trailer fields */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return c - 'A' + 10;
}

ssize_t core_http_chunked_feed(struct core_http_chunked *c, const char *p, size_t len,
			   const char **why)
{
	size_t i = 0;

	while (i < len && c->state != CORE_HTTP_CH_DONE) {
		char ch = p[i];

		switch (c->state) {
		case CORE_HTTP_CH_SIZE:
			if (IS(ch, C_HEX)) {
				if (++c->digits > CHUNK_MAX_DIGITS) {
					*why = "chunk size has too many digits";
					return -1;
				}
				c->left = c->left * 16 + (uint64_t)hexval(ch);
				c->saw_digit = 1;
			} else if (c->saw_digit && ch == '\r') {
				c->state = CORE_HTTP_CH_SIZE_LF;
			} else if (c->saw_digit && (ch == ';' || IS(ch, C_WS))) {
				c->state = CORE_HTTP_CH_EXT;
				c->semi = ch == ';';
				c->ext_len = 1;
			} else {
				*why = "invalid chunk size";
				return -1;
			}
			i++;
			break;

		case CORE_HTTP_CH_EXT:
			/* BWS ";" name [ "=" value ]: only whitespace may come
			 * between the size and the first ';'. */
			if (ch == '\r' && c->semi) {
				c->state = CORE_HTTP_CH_SIZE_LF;
			} else if (ch == ';') {
				c->semi = 1;
			} else if (!c->semi && !IS(ch, C_WS)) {
				*why = "invalid chunk extension";
				return -1;
			} else if (!IS(ch, C_VCHAR) && !IS(ch, C_WS)) {
				*why = "control byte in chunk extension";
				return -1;
			}
			if (++c->ext_len > CHUNK_MAX_EXT) {
				*why = "chunk extension too long";
				return -1;
			}
			i++;
			break;

		case CORE_HTTP_CH_SIZE_LF:
			if (ch != '\n') {
				*why = "bare CR in chunk size line";
				return -1;
			}
			i++;
			c->digits = 0;
			c->saw_digit = 0;
			if (c->left == 0) {
				c->state = CORE_HTTP_CH_TRAILER;
				c->trailer_len = 0;
			} else
				c->state = CORE_HTTP_CH_DATA;
			break;

		case CORE_HTTP_CH_DATA: {
			size_t n = len - i;

			if (n > c->left)
				n = (size_t)c->left;
			c->left -= n;
			c->total += n;
			i += n;
			if (c->left == 0)
				c->state = CORE_HTTP_CH_DATA_CR;
			break;
		}

		case CORE_HTTP_CH_DATA_CR:
			if (ch != '\r') {
				*why = "chunk data longer than its size";
				return -1;
			}
			c->state = CORE_HTTP_CH_DATA_LF;
			i++;
			break;

		case CORE_HTTP_CH_DATA_LF:
			if (ch != '\n') {
				*why = "bare CR after chunk data";
				return -1;
			}
			c->state = CORE_HTTP_CH_SIZE;
			i++;
			break;

		case CORE_HTTP_CH_TRAILER:
			if (ch == '\r') {
				c->state = CORE_HTTP_CH_END_LF;
			} else if (IS(ch, C_TCHAR)) {
				c->state = CORE_HTTP_CH_TRAILER_LINE;
				c->colon = 0;
			} else {
				*why = "invalid trailer field";
				return -1;
			}
			if (++c->trailer_len > CHUNK_MAX_TRAILER) {
				*why = "trailer section too large";
				return -1;
			}
			i++;
			break;

		case CORE_HTTP_CH_TRAILER_LINE:
			if (ch == '\r') {
				if (!c->colon) {
					*why = "trailer field without a colon";
					return -1;
				}
				c->state = CORE_HTTP_CH_TRAILER_LF;
			} else if (!c->colon) {
				if (ch == ':')
					c->colon = 1;
				else if (!IS(ch, C_TCHAR)) {
					*why = "invalid trailer field name";
					return -1;
				}
			} else if (!IS(ch, C_VCHAR) && !IS(ch, C_WS)) {
				*why = "control byte in trailer field";
				return -1;
			}
			if (++c->trailer_len > CHUNK_MAX_TRAILER) {
				*why = "trailer section too large";
				return -1;
			}
			i++;
			break;

		case CORE_HTTP_CH_TRAILER_LF:
		case CORE_HTTP_CH_END_LF:
			if (ch != '\n') {
				*why = "bare CR in trailer section";
				return -1;
			}
			c->state = c->state == CORE_HTTP_CH_END_LF ? CORE_HTTP_CH_DONE
							       : CORE_HTTP_CH_TRAILER;
			i++;
			break;

		case CORE_HTTP_CH_DONE:
			break;
		}
	}
	return (ssize_t)i;
}
