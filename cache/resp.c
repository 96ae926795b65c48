/* RESP framing; see resp.h. Both scanners look at each byte once per call
 * and keep no state between calls: a value not complete yet is scanned
 * again from its start when more bytes came (values are small next to the
 * socket reads, and the front keeps whole values in its buffer anyway). */
#include <string.h>

#include "resp.h"

#define RESP_STACK	32	/* depth cap, whatever the limits say */

/* The line at buf[pos..]: *end is where its "\r\n" starts. */
static int resp_line(const char *buf, size_t len, size_t pos, size_t max, size_t *end,
		     const char **why)
{
	size_t room = len - pos, lim = max + 2 < room ? max + 2 : room;
	const char *nl = memchr(buf + pos, '\n', lim);

	if (nl == NULL) {
		if (room >= max + 2) {
			*why = "line too long";
			return RESP_BAD;
		}
		return RESP_AGAIN;
	}
	if (nl == buf + pos || nl[-1] != '\r') {
		*why = "line not ended by CRLF";
		return RESP_BAD;
	}
	*end = (size_t)(nl - buf) - 1;
	return RESP_OK;
}

/* A decimal integer filling buf[from..to): strict, no spaces or '+'. */
static int resp_int(const char *buf, size_t from, size_t to, int64_t *out)
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

static void resp_lower(char *dst, size_t room, const char *src, size_t n)
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

static int resp_inline(const char *buf, size_t len, const struct resp_limits *lim,
		       size_t *used, struct resp_cmd *cmd, const char **why)
{
	const char *nl = memchr(buf, '\n', len < (size_t)lim->max_inline + 1 ?
					    len : (size_t)lim->max_inline + 1);
	size_t end, i = 0;

	if (nl == NULL) {
		if (len > lim->max_inline) {
			*why = "inline command too long";
			return RESP_BAD;
		}
		return RESP_AGAIN;
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
			resp_lower(cmd->name, sizeof(cmd->name), buf + start, i - start);
		else if (cmd->argc == 1) {
			cmd->arg1_off = (uint32_t)start;
			cmd->arg1_len = (uint32_t)(i - start);
		}
		cmd->argc++;
	}
	cmd->is_inline = 1;
	return RESP_OK;
}

int resp_scan_command(const char *buf, size_t len, const struct resp_limits *lim,
		      size_t *used, struct resp_cmd *cmd, const char **why)
{
	size_t pos, end;
	int64_t n, blen, i;
	int rc;

	memset(cmd, 0, sizeof(*cmd));
	*why = NULL;
	if (len == 0)
		return RESP_AGAIN;
	if (buf[0] != '*')
		return resp_inline(buf, len, lim, used, cmd, why);
	if ((rc = resp_line(buf, len, 0, 32, &end, why)) != RESP_OK)
		return rc;
	if (resp_int(buf, 1, end, &n) != 0) {
		*why = "bad array length";
		return RESP_BAD;
	}
	pos = end + 2;
	if (n <= 0) {			/* Redis skips these */
		*used = pos;
		return RESP_OK;
	}
	if (n > (int64_t)lim->max_elems) {
		*why = "too many arguments";
		return RESP_BAD;
	}
	for (i = 0; i < n; i++) {
		if (pos >= len)
			return RESP_AGAIN;
		if (buf[pos] != '$') {
			*why = "expected '$' (a bulk string) in a command";
			return RESP_BAD;
		}
		if ((rc = resp_line(buf, len, pos, 32, &end, why)) != RESP_OK)
			return rc;
		if (resp_int(buf, pos + 1, end, &blen) != 0 || blen < 0) {
			*why = "bad bulk length";
			return RESP_BAD;
		}
		if ((uint64_t)blen > lim->max_bulk) {
			*why = "bulk string too long";
			return RESP_BAD;
		}
		pos = end + 2;
		if (len - pos < (uint64_t)blen + 2)
			return RESP_AGAIN;
		if (buf[pos + (size_t)blen] != '\r' || buf[pos + (size_t)blen + 1] != '\n') {
			*why = "bulk string not followed by CRLF";
			return RESP_BAD;
		}
		if (i == 0)
			resp_lower(cmd->name, sizeof(cmd->name), buf + pos, (size_t)blen);
		else if (i == 1) {
			cmd->arg1_off = (uint32_t)pos;
			cmd->arg1_len = (uint32_t)blen;
		}
		pos += (size_t)blen + 2;
	}
	cmd->argc = (uint32_t)n;
	*used = pos;
	return RESP_OK;
}

/* ---- replies ---------------------------------------------------------------------------- */

int resp_scan_reply(const char *buf, size_t len, const struct resp_limits *lim,
		    size_t *used, struct resp_reply *rep, const char **why)
{
	uint64_t left[RESP_STACK];	/* elements still due, per open aggregate */
	unsigned depth = 0, max_depth = lim->max_depth < RESP_STACK ? lim->max_depth : RESP_STACK;
	size_t pos = 0, end;
	int64_t n;
	int rc;

	memset(rep, 0, sizeof(*rep));
	*why = NULL;
	for (;;) {
		char c;
		int first = depth == 1 && left[0] == rep->elems;

		if (pos >= len)
			return RESP_AGAIN;
		c = buf[pos];
		if (pos == 0)
			rep->type = c;
		if ((rc = resp_line(buf, len, pos, lim->max_inline, &end, why)) != RESP_OK)
			return rc;
		switch (c) {
		case '+': case '-': case ':': case '_': case '#': case ',': case '(':
			if (first && (c == '+'))
				resp_lower(rep->kind, sizeof(rep->kind), buf + pos + 1, end - pos - 1);
			pos = end + 2;
			break;
		case '$': case '!': case '=':
			if (resp_int(buf, pos + 1, end, &n) != 0 || n < -1) {
				*why = "bad bulk length";
				return RESP_BAD;
			}
			if ((uint64_t)(n < 0 ? 0 : n) > lim->max_bulk) {
				*why = "bulk string too long";
				return RESP_BAD;
			}
			pos = end + 2;
			if (n < 0)	/* null */
				break;
			if (len - pos < (uint64_t)n + 2)
				return RESP_AGAIN;
			if (buf[pos + (size_t)n] != '\r' || buf[pos + (size_t)n + 1] != '\n') {
				*why = "bulk string not followed by CRLF";
				return RESP_BAD;
			}
			if (first)
				resp_lower(rep->kind, sizeof(rep->kind), buf + pos, (size_t)n);
			pos += (size_t)n + 2;
			break;
		case '*': case '>': case '~': case '%': case '|':
			if (resp_int(buf, pos + 1, end, &n) != 0 || n < -1) {
				*why = "bad aggregate length";
				return RESP_BAD;
			}
			if (n > (int64_t)lim->max_elems) {
				*why = "too many elements";
				return RESP_BAD;
			}
			pos = end + 2;
			if (n <= 0)	/* empty or null: one whole value */
				break;
			if (depth == max_depth) {
				*why = "nested too deep";
				return RESP_BAD;
			}
			/* A map holds pairs; an attribute's pairs come before the
			 * value they describe, which ends it. */
			left[depth] = (uint64_t)n * (c == '%' || c == '|' ? 2 : 1) + (c == '|');
			if (depth == 0)
				rep->elems = (uint32_t)left[0];
			depth++;
			continue;
		default:
			*why = "unknown RESP type";
			return RESP_BAD;
		}
		/* A whole value: it completes an element of each aggregate
		 * whose last element it was. */
		while (depth > 0 && --left[depth - 1] == 0)
			depth--;
		if (depth == 0) {
			*used = pos;
			return RESP_OK;
		}
	}
}
