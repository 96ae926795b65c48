/* RESP framing; see resp.h. Both scanners look at each byte once per call
 * and keep no state between calls: a value not complete yet is scanned
 * again from its start when more bytes came (values are small next to the
 * socket reads, and the front keeps whole values in its buffer anyway). */
#include <stdio.h>
#include <string.h>

#include "resp.h"

/* The line at buf[pos..]: *end is where its "\r\n" starts. */
static int cache_resp_line(const char *buf, size_t len, size_t pos, size_t max, size_t *end,
		     const char **why)
{
	size_t room = len - pos, lim = max + 2 < room ? max + 2 : room;
	const char *nl = memchr(buf + pos, '\n', lim);

	if (nl == NULL) {
		if (room >= max + 2) {
			*why = "line too long";
			return CACHE_RESP_BAD;
		}
		return CACHE_RESP_AGAIN;
	}
	if (nl == buf + pos || nl[-1] != '\r') {
		*why = "line not ended by CRLF";
		return CACHE_RESP_BAD;
	}
	*end = (size_t)(nl - buf) - 1;
	return CACHE_RESP_OK;
}

/* A decimal integer filling buf[from..to): strict, no spaces or '+'. */
static int cache_resp_int(const char *buf, size_t from, size_t to, int64_t *out)
{
	int64_t v = 0;
	int neg = 0;
	size_t i = from;

	if (i < to && buf[i] == '-') {
		neg = 1;
		i++;
	}
	if (i == to || to - i > 18)
		return -1;
	for (; i < to; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
		v = v * 10 + (buf[i] - '0');
	}
	*out = neg ? -v : v;
	return 0;
}

static void cache_resp_lower(char *dst, size_t room, const char *src, size_t n)
{
	size_t i;

	if (n >= room) {
		dst[0] = '\0';
		return;
	}
	for (i = 0; i < n; i++)
		dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
	dst[n] = '\0';
}

/* ---- commands ------------------------------------------------------------------------- */

static int cache_resp_inline(const char *buf, size_t len, const struct cache_resp_limits *lim,
		       size_t *used, struct cache_resp_cmd *cmd, const char **why)
{
	const char *nl = memchr(buf, '\n', len < (size_t)lim->max_inline + 1 ?
					    len : (size_t)lim->max_inline + 1);
	size_t end, i = 0;

	if (nl == NULL) {
		if (len > lim->max_inline) {
			*why = "too big inline request";
			return CACHE_RESP_BAD;
		}
		return CACHE_RESP_AGAIN;
	}
	end = (size_t)(nl - buf);
	*used = end + 1;
	if (end > 0 && buf[end - 1] == '\r')
		end--;
	/* Arguments are separated by spaces; quoting is left to Redis. */
	while (i < end) {
		size_t start;

		while (i < end && (buf[i] == ' ' || buf[i] == '\t'))
			i++;
		if (i == end)
			break;
		start = i;
		while (i < end && buf[i] != ' ' && buf[i] != '\t')
			i++;
		if (cmd->argc == 0)
			cache_resp_lower(cmd->name, sizeof(cmd->name), buf + start, i - start);
		else if (cmd->argc == 1) {
			cmd->arg1_off = (uint32_t)start;
			cmd->arg1_len = (uint32_t)(i - start);
		}
		cmd->argc++;
	}
	cmd->is_inline = 1;
	return CACHE_RESP_OK;
}

int cache_resp_scan_command(const char *buf, size_t len, const struct cache_resp_limits *lim,
		      size_t *used, struct cache_resp_cmd *cmd, const char **why)
{
	size_t pos, end;
	int64_t n, blen, i;
	int rc;

	memset(cmd, 0, sizeof(*cmd));
	*why = NULL;
	if (len == 0)
		return CACHE_RESP_AGAIN;
	if (buf[0] != '*')
		return cache_resp_inline(buf, len, lim, used, cmd, why);
	if ((rc = cache_resp_line(buf, len, 0, 32, &end, why)) != CACHE_RESP_OK)
		return rc;
	if (cache_resp_int(buf, 1, end, &n) != 0) {
		*why = "invalid multibulk length";
		return CACHE_RESP_BAD;
	}
	pos = end + 2;
	if (n <= 0) {			/* Redis skips these */
		*used = pos;
		return CACHE_RESP_OK;
	}
	if (n > (int64_t)lim->max_elems) {
		*why = "invalid multibulk length";
		return CACHE_RESP_BAD;
	}
	for (i = 0; i < n; i++) {
		if (pos >= len)
			return CACHE_RESP_AGAIN;
		if (buf[pos] != '$') {
			*why = "expected '$'";
			return CACHE_RESP_BAD;
		}
		if ((rc = cache_resp_line(buf, len, pos, 32, &end, why)) != CACHE_RESP_OK)
			return rc;
		if (cache_resp_int(buf, pos + 1, end, &blen) != 0 || blen < 0 ||
		    (uint64_t)blen > lim->max_bulk) {
			*why = "invalid bulk length";
			return CACHE_RESP_BAD;
		}
		pos = end + 2;
		if (len - pos < (uint64_t)blen + 2) {
			if (len - pos > (uint64_t)blen && buf[pos + (size_t)blen] != '\r') {
				*why = "bulk string not followed by CRLF";
				return CACHE_RESP_BAD;
			}
			return CACHE_RESP_AGAIN;
		}
		if (buf[pos + (size_t)blen] != '\r' || buf[pos + (size_t)blen + 1] != '\n') {
			*why = "bulk string not followed by CRLF";
			return CACHE_RESP_BAD;
		}
		if (i == 0)
			cache_resp_lower(cmd->name, sizeof(cmd->name), buf + pos, (size_t)blen);
		else if (i == 1) {
			cmd->arg1_off = (uint32_t)pos;
			cmd->arg1_len = (uint32_t)blen;
		}
		pos += (size_t)blen + 2;
	}
	cmd->argc = (uint32_t)n;
	*used = pos;
	return CACHE_RESP_OK;
}

/* ---- replies ---------------------------------------------------------------------------- */

int cache_resp_scan_reply(const char *buf, size_t len, const struct cache_resp_limits *lim,
		    size_t *used, struct cache_resp_reply *rep, const char **why)
{
	uint64_t pending = 0;	/* values due before the reply ends */
	size_t pos = 0, end;
	int64_t n;
	int rc, first = 0;

	memset(rep, 0, sizeof(*rep));
	*why = NULL;
	for (;;) {
		char c;
		int is_first = first;	/* the top-level aggregate's first element */

		first = 0;
		if (pos >= len)
			return CACHE_RESP_AGAIN;
		c = buf[pos];
		if (pos == 0)
			rep->type = c;
		if ((rc = cache_resp_line(buf, len, pos, lim->max_inline, &end, why)) != CACHE_RESP_OK)
			return rc;
		switch (c) {
		case '+': case '-': case ':': case '_': case '#': case ',': case '(':
			if (is_first && (c == '+'))
				cache_resp_lower(rep->kind, sizeof(rep->kind), buf + pos + 1, end - pos - 1);
			pos = end + 2;
			break;
		case '$': case '!': case '=':
			if (cache_resp_int(buf, pos + 1, end, &n) != 0 || n < -1 ||
			    (uint64_t)(n < 0 ? 0 : n) > lim->max_bulk) {
				*why = "invalid bulk length";
				return CACHE_RESP_BAD;
			}
			pos = end + 2;
			if (n < 0)	/* null */
				break;
			if (len - pos < (uint64_t)n + 2) {
				if (len - pos > (uint64_t)n && buf[pos + (size_t)n] != '\r') {
					*why = "bulk string not followed by CRLF";
					return CACHE_RESP_BAD;
				}
				return CACHE_RESP_AGAIN;
			}
			if (buf[pos + (size_t)n] != '\r' || buf[pos + (size_t)n + 1] != '\n') {
				*why = "bulk string not followed by CRLF";
				return CACHE_RESP_BAD;
			}
			if (is_first)
				cache_resp_lower(rep->kind, sizeof(rep->kind), buf + pos, (size_t)n);
			pos += (size_t)n + 2;
			break;
		case '*': case '>': case '~': case '%': case '|':
			if (cache_resp_int(buf, pos + 1, end, &n) != 0 || n < -1) {
				*why = "invalid aggregate length";
				return CACHE_RESP_BAD;
			}
			if (n > (int64_t)lim->max_elems) {
				*why = "too many elements";
				return CACHE_RESP_BAD;
			}
			pos = end + 2;
			if (n <= 0)	/* empty or null: one whole value */
				break;
			/* It takes its parent's slot and opens its own: a map
			 * holds pairs, and an attribute's pairs come before the
			 * value they describe, which ends it. */
			if (pending == 0) {
				rep->elems = (uint32_t)((uint64_t)n * (c == '%' || c == '|' ? 2 : 1) +
							(c == '|'));
				first = 1;
			} else
				pending--;
			pending += (uint64_t)n * (c == '%' || c == '|' ? 2 : 1) + (c == '|');
			continue;
		default:
			*why = "unknown RESP type";
			return CACHE_RESP_BAD;
		}
		/* A whole value: the reply's last one, or one less due. */
		if (pending == 0 || --pending == 0) {
			*used = pos;
			return CACHE_RESP_OK;
		}
	}
}

/* ---- streams ------------------------------------------------------------------------ */

enum { ST_TYPE, ST_LINE, ST_BODY, ST_CR, ST_LF, ST_BAD };

/* Far more than any server sends, far less than wraps around. */
#define STREAM_PENDING_MAX	(UINT64_MAX >> 4)

void cache_resp_stream_init(struct cache_resp_stream *st, int commands)
{
	memset(st, 0, sizeof(*st));
	st->commands = (uint8_t)(commands != 0);
}

static int stream_bad(struct cache_resp_stream *st, const char **why, const char *what)
{
	st->state = ST_BAD;
	*why = what;
	return CACHE_RESP_BAD;
}

/* Whether the command that just ended is one of stop_after. */
static int stream_stops(const struct cache_resp_stream *st, const struct cache_resp_limits *lim)
{
	const char *const *n;

	if (lim->stop_after == NULL || st->namelen == CACHE_RESP_NO_MATCH)
		return 0;
	for (n = lim->stop_after; *n != NULL; n++)
		if (strlen(*n) == st->namelen && !memcmp(*n, st->name, st->namelen))
			return 1;
	return 0;
}

/* A value ended: one less due in the top-level value, which may end. */
static void stream_value(struct cache_resp_stream *st, const struct cache_resp_limits *lim,
			 uint64_t *values)
{
	st->state = ST_TYPE;
	st->naming = 0;
	if (st->pending > 0 && --st->pending > 0)
		return;
	(*values)++;
	if (st->commands && stream_stops(st, lim))
		st->seen |= CACHE_RESP_SEEN_STOP;
}

/* Bytes of the command's first argument, lower case; a name too long for
 * the buffer matches nothing. */
static void stream_name(struct cache_resp_stream *st, const char *p, size_t n)
{
	size_t k;

	for (k = 0; k < n && st->namelen != CACHE_RESP_NO_MATCH; k++) {
		if (st->namelen == sizeof(st->name)) {
			st->namelen = CACHE_RESP_NO_MATCH;
			break;
		}
		st->name[st->namelen++] = (char)(p[k] >= 'A' && p[k] <= 'Z' ? p[k] + 32 : p[k]);
	}
}

/* The longest line the current one may be, CR included. */
static uint32_t stream_line_max(const struct cache_resp_stream *st, const struct cache_resp_limits *lim)
{
	if (!st->commands)
		return lim->max_inline + 1;
	if (st->pending == 0 && st->type != '*')
		return lim->max_inline;		/* an inline command */
	return 32 + 1;
}

/* The number after the type byte of a whole line, CR excluded. */
static int stream_int(const struct cache_resp_stream *st, int64_t *n)
{
	if (st->linelen > sizeof(st->line))
		return -1;	/* more digits than cache_resp_int takes anyway */
	return cache_resp_int(st->line, 1, st->linelen - 1, n);
}

/* An inline command's name: its first word, from the line's first bytes. */
static void stream_inline_name(struct cache_resp_stream *st)
{
	size_t n = st->linelen < sizeof(st->line) ? st->linelen : sizeof(st->line), i = 0, from;

	st->namelen = 0;
	while (i < n && (st->line[i] == ' ' || st->line[i] == '\t'))
		i++;
	from = i;
	while (i < n && st->line[i] != ' ' && st->line[i] != '\t')
		i++;
	if (i == n && n < st->linelen) {
		st->namelen = CACHE_RESP_NO_MATCH;	/* longer than the bytes kept */
		return;
	}
	if (i == st->linelen && i > from && st->line[i - 1] == '\r')
		i--;				/* the line's CR, not the word's */
	stream_name(st, st->line + from, i - from);
}

static int stream_line_end(struct cache_resp_stream *st, const struct cache_resp_limits *lim,
			   uint64_t *values, const char **why)
{
	uint64_t elems;
	int64_t n;

	if (st->commands && st->pending == 0 && st->type != '*') {
		/* Inline: CR optional, blank lines get no reply. */
		st->state = ST_TYPE;
		if (st->nonspace > (uint32_t)(st->last == '\r')) {
			stream_inline_name(st);
			stream_value(st, lim, values);
		}
		return CACHE_RESP_OK;
	}
	if (st->linelen == 0 || st->last != '\r')
		return stream_bad(st, why, "line not ended by CRLF");
	if (st->commands) {
		if (st->pending == 0) {
			if (stream_int(st, &n) != 0 || n > (int64_t)lim->max_elems)
				return stream_bad(st, why, "invalid multibulk length");
			st->pending = n > 0 ? (uint64_t)n : 0;
			st->namelen = 0;
			st->naming = 1;
			st->state = ST_TYPE;	/* n <= 0: skipped, as Redis does */
			return CACHE_RESP_OK;
		}
		if (stream_int(st, &n) != 0 || n < 0 || (uint64_t)n > lim->max_bulk)
			return stream_bad(st, why, "invalid bulk length");
		st->skip = (uint64_t)n;
		st->state = n > 0 ? ST_BODY : ST_CR;
		st->pmatch = 0;		/* an argument begins */
		return CACHE_RESP_OK;
	}
	switch (st->type) {
	case '-':
		if (st->pending == 0) {
			if (st->linelen >= 9 && !memcmp(st->line, "-READONLY", 9))
				st->seen |= CACHE_RESP_SEEN_READONLY;
			else if (st->linelen >= 8 && !memcmp(st->line, "-LOADING", 8))
				st->seen |= CACHE_RESP_SEEN_LOADING;
		}
		__attribute__((fallthrough));
	case '+': case ':': case '_': case '#': case ',': case '(':
		stream_value(st, lim, values);
		return CACHE_RESP_OK;
	case '$': case '!': case '=':
		if (stream_int(st, &n) != 0 || n < -1 || (uint64_t)(n < 0 ? 0 : n) > lim->max_bulk)
			return stream_bad(st, why, "invalid bulk length");
		if (n < 0) {
			stream_value(st, lim, values);
			return CACHE_RESP_OK;
		}
		st->skip = (uint64_t)n;
		st->state = n > 0 ? ST_BODY : ST_CR;
		return CACHE_RESP_OK;
	case '*': case '>': case '~': case '%': case '|':
		if (stream_int(st, &n) != 0 || n < -1)
			return stream_bad(st, why, "invalid aggregate length");
		if (n > (int64_t)lim->max_elems)
			return stream_bad(st, why, "too many elements");
		if (n <= 0) {
			stream_value(st, lim, values);
			return CACHE_RESP_OK;
		}
		/* It fills its parent's slot and opens its own: a map holds
		 * pairs, and an attribute's pairs come before the value they
		 * describe, which ends it. */
		elems = (uint64_t)n * (st->type == '%' || st->type == '|' ? 2 : 1) + (st->type == '|');
		if (st->pending > STREAM_PENDING_MAX)
			return stream_bad(st, why, "too many elements");
		st->pending += elems - (st->pending > 0);
		st->state = ST_TYPE;
		return CACHE_RESP_OK;
	default:
		return stream_bad(st, why, "unknown RESP type");
	}
}

/* Follows an argument's bytes p[0..n) against the reserved prefix (the
 * argument's first bytes; a prefix may arrive in pieces). */
static void stream_reserved(struct cache_resp_stream *st, const struct cache_resp_limits *lim,
			    const char *p, size_t n)
{
	size_t plen, k;

	if (lim->reserved == NULL || st->pmatch == CACHE_RESP_NO_MATCH)
		return;
	plen = strlen(lim->reserved);
	for (k = 0; k < n && st->pmatch < plen; k++)
		if (p[k] != lim->reserved[st->pmatch++]) {
			st->pmatch = CACHE_RESP_NO_MATCH;
			return;
		}
	if (st->pmatch == plen) {
		st->seen |= CACHE_RESP_SEEN_RESERVED;
		st->pmatch = CACHE_RESP_NO_MATCH;
	}
}

/* An inline command's arguments are its words (quotes dropped). */
static void stream_reserved_inline(struct cache_resp_stream *st, const struct cache_resp_limits *lim,
				   const char *p, size_t n)
{
	size_t k;

	if (lim->reserved == NULL)
		return;
	for (k = 0; k < n; k++) {
		if (p[k] == ' ' || p[k] == '\t')
			st->pmatch = 0;			/* the next word begins */
		else if (st->pmatch == 0 && (p[k] == '"' || p[k] == '\''))
			continue;
		else
			stream_reserved(st, lim, p + k, 1);
	}
}

/* An argument's bytes: the reserved prefix and the command's name. */
static void stream_arg(struct cache_resp_stream *st, const struct cache_resp_limits *lim,
		       const char *p, size_t n)
{
	stream_reserved(st, lim, p, n);
	if (st->naming)
		stream_name(st, p, n);
}

/* The common case in one step: a whole "$N\r\n<N bytes>\r\n" at p with
 * nothing unusual about it. Returns the bytes it took, or 0 to leave it
 * to the general path (which also finds any error). */
static size_t stream_bulk_fast(struct cache_resp_stream *st, const char *p, size_t len,
			       const struct cache_resp_limits *lim, uint64_t *values)
{
	uint64_t n = 0;
	size_t i = 1;

	while (i < len && i <= 19 && p[i] >= '0' && p[i] <= '9')
		n = n * 10 + (uint64_t)(p[i++] - '0');
	if (i == 1 || i > 19 || i + 1 >= len || p[i] != '\r' || p[i + 1] != '\n' ||
	    n > lim->max_bulk || (p[1] == '0' && i > 2))
		return 0;
	i += 2;
	if (len - i < n + 2 || p[i + n] != '\r' || p[i + n + 1] != '\n')
		return 0;
	if (st->commands) {
		st->pmatch = 0;
		stream_arg(st, lim, p + i, (size_t)n);
	}
	stream_value(st, lim, values);
	return i + (size_t)n + 2;
}

/* Feeds buf[0..len) until *values reaches stop (or, if at_stop_after, a
 * stop_after command ended); *used gets the bytes taken. */
static int stream_feed(struct cache_resp_stream *st, const char *buf, size_t len,
		       const struct cache_resp_limits *lim, uint64_t *values, uint64_t stop,
		       int at_stop_after, size_t *used, const char **why)
{
	unsigned halt = at_stop_after ? CACHE_RESP_SEEN_STOP : 0;
	size_t i = 0;

	*why = NULL;
	*used = 0;
	if (st->state == ST_BAD) {
		*why = "the stream went bad earlier";
		return CACHE_RESP_BAD;
	}
	while (i < len && *values < stop && !(st->seen & halt)) {
		switch (st->state) {
		case ST_BODY: {
			uint64_t take = st->skip < len - i ? st->skip : len - i;

			if (st->commands)
				stream_arg(st, lim, buf + i, (size_t)take);
			i += (size_t)take;
			if ((st->skip -= take) == 0)
				st->state = ST_CR;
			continue;
		}
		case ST_CR:
			if (buf[i++] != '\r')
				return stream_bad(st, why, "bulk string not followed by CRLF");
			st->state = ST_LF;
			continue;
		case ST_LF:
			if (buf[i++] != '\n')
				return stream_bad(st, why, "bulk string not followed by CRLF");
			stream_value(st, lim, values);
			continue;
		case ST_TYPE:
			if (buf[i] == '$' && (st->pending > 0 || !st->commands)) {
				size_t k = stream_bulk_fast(st, buf + i, len - i, lim, values);

				if (k > 0) {
					i += k;
					continue;
				}
			}
			if (st->commands && st->pending > 0 && buf[i] != '$') {
				/* Redis's words, which clients match on; a
				 * control byte would break the error line. */
				snprintf(st->msg, sizeof(st->msg), "expected '$', got '%c'",
					 (unsigned char)buf[i] < 0x20 || buf[i] == 0x7f ? ' ' : buf[i]);
				return stream_bad(st, why, st->msg);
			}
			st->type = buf[i];
			st->linelen = st->nonspace = 0;
			st->last = 0;
			st->pmatch = 0;
			st->state = ST_LINE;
			__attribute__((fallthrough));	/* the type byte is the line's first */
		case ST_LINE: {
			const char *nl = memchr(buf + i, '\n', len - i);
			size_t take = nl != NULL ? (size_t)(nl - (buf + i)) : len - i, k;
			int is_inline = st->commands && st->pending == 0 && st->type != '*';

			if ((uint64_t)st->linelen + take > stream_line_max(st, lim))
				return stream_bad(st, why, is_inline ? "too big inline request" :
						  !st->commands ? "line too long" :
						  st->pending == 0 ? "too big mbulk count string" :
						  "too big bulk count string");
			for (k = 0; k < take && st->linelen + k < sizeof(st->line); k++)
				st->line[st->linelen + k] = buf[i + k];
			if (is_inline) {
				for (k = 0; k < take; k++)
					st->nonspace += buf[i + k] != ' ' && buf[i + k] != '\t';
				stream_reserved_inline(st, lim, buf + i, take);
			}
			if (take > 0)
				st->last = buf[i + take - 1];
			st->linelen += (uint32_t)take;
			i += take;
			if (nl == NULL)
				continue;
			i++;
			if (stream_line_end(st, lim, values, why) != CACHE_RESP_OK)
				return CACHE_RESP_BAD;
			continue;
		}
		}
	}
	*used = i;
	return CACHE_RESP_OK;
}

int cache_resp_stream_feed(struct cache_resp_stream *st, const char *buf, size_t len,
		     const struct cache_resp_limits *lim, uint64_t *values, const char **why)
{
	size_t used;

	return stream_feed(st, buf, len, lim, values, UINT64_MAX, 0, &used, why);
}

int cache_resp_stream_feed_until(struct cache_resp_stream *st, const char *buf, size_t len,
			   const struct cache_resp_limits *lim, uint64_t *values, uint64_t stop,
			   size_t *used, const char **why)
{
	return stream_feed(st, buf, len, lim, values, stop, 1, used, why);
}
