/* libFuzzer target for the RESP scanners (cache/resp.c): the input is
 * scanned as a stream of commands and as a stream of replies. Beyond "no
 * crash" it checks what the RESP front relies on: a value is never longer
 * than its input, a value found once is found again with more bytes after
 * it (the same length), and every shorter prefix of it asks for more. The
 * streaming scanner, fed the input in pieces of varying size, must count
 * the same values as the whole-buffer scanners and refuse what they refuse,
 * and stop after exactly the commands the whole-buffer scanner names SYNC
 * or PSYNC. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/resp.h"

static const char *const stops[] = { "sync", "psync", NULL };

static const struct cache_resp_limits lim = {
	.max_bulk = 1024, .max_elems = 64, .max_inline = 256,
	.reserved = "keel:",	/* exercised on the command streams; flags only */
	.stop_after = stops,	/* and the names of commands */
};

typedef int (*scan_fn)(const char *buf, size_t len, size_t *used, const char **why);

static int scan_cmd(const char *buf, size_t len, size_t *used, const char **why)
{
	struct cache_resp_cmd c;
	int rc = cache_resp_scan_command(buf, len, &lim, used, &c, why);

	if (rc == CACHE_RESP_OK && c.argc > 1 && (size_t)c.arg1_off + c.arg1_len > *used)
		abort();
	if (rc == CACHE_RESP_OK && strlen(c.name) >= sizeof(c.name))
		abort();
	return rc;
}

static int scan_rep(const char *buf, size_t len, size_t *used, const char **why)
{
	struct cache_resp_reply r;

	return cache_resp_scan_reply(buf, len, &lim, used, &r, why);
}

static void stream(const char *buf, size_t len, scan_fn scan)
{
	size_t pos = 0, used, again;
	const char *why;
	unsigned n = 0;

	while (pos < len && n++ < 64) {
		int rc = scan(buf + pos, len - pos, &used, &why);

		if (rc == CACHE_RESP_AGAIN || rc == CACHE_RESP_BAD) {
			if (rc == CACHE_RESP_BAD && why == NULL)
				abort();
			return;
		}
		if (rc != CACHE_RESP_OK || used == 0 || used > len - pos)
			abort();
		/* The same value, cut where it ends: found whole again. */
		if (scan(buf + pos, used, &again, &why) != CACHE_RESP_OK || again != used)
			abort();
		/* One byte short: more is needed, never another answer. */
		if (scan(buf + pos, used - 1, &again, &why) != CACHE_RESP_AGAIN)
			abort();
		pos += used;
	}
}

/* What the whole-buffer scanner makes of buf: values that get a reply,
 * and whether it ends on a refusal. */
static uint64_t count_whole(const char *buf, size_t len, int commands, int *bad)
{
	uint64_t n = 0;
	size_t pos = 0, used;
	const char *why;

	*bad = 0;
	while (pos < len) {
		struct cache_resp_cmd c;
		struct cache_resp_reply r;
		int rc = commands ? cache_resp_scan_command(buf + pos, len - pos, &lim, &used, &c, &why)
				  : cache_resp_scan_reply(buf + pos, len - pos, &lim, &used, &r, &why);

		if (rc == CACHE_RESP_AGAIN)
			break;
		if (rc == CACHE_RESP_BAD) {
			*bad = 1;
			break;
		}
		n += !commands || c.argc > 0;
		pos += used;
	}
	return n;
}

static void differ(const char *buf, size_t len, int commands, unsigned seed)
{
	struct cache_resp_stream st;
	uint64_t whole, streamed = 0;
	size_t pos = 0;
	int bad, sbad = 0;
	const char *why;

	whole = count_whole(buf, len, commands, &bad);
	cache_resp_stream_init(&st, commands);
	while (pos < len) {
		size_t piece = 1 + (seed = seed * 1103515245u + 12345u) % 7;

		if (piece > len - pos)
			piece = len - pos;
		if (cache_resp_stream_feed(&st, buf + pos, piece, &lim, &streamed, &why) != CACHE_RESP_OK) {
			if (why == NULL)
				abort();
			sbad = 1;
			break;
		}
		pos += piece;
	}
	if (sbad != bad || streamed != whole)
		abort();
}

/* Fed one value at a time (the RESP front's bound on commands in flight),
 * the stream takes the same values and refuses the same input. */
static void until_one(const char *buf, size_t len, int commands)
{
	struct cache_resp_stream st;
	uint64_t whole, n = 0, before;
	size_t pos = 0, used;
	int bad, sbad = 0;
	const char *why;

	whole = count_whole(buf, len, commands, &bad);
	cache_resp_stream_init(&st, commands);
	while (pos < len) {
		before = n;
		if (cache_resp_stream_feed_until(&st, buf + pos, len - pos, &lim, &n, n + 1, &used,
					   &why) != CACHE_RESP_OK) {
			if (why == NULL)
				abort();
			sbad = 1;
			break;
		}
		if (n - before > 1 || used > len - pos || (used == 0 && n == before))
			abort();
		if (commands && (st.seen & CACHE_RESP_SEEN_STOP)) {
			/* It stopped after a command the whole scanner names so. */
			struct cache_resp_cmd c = { .name = "" };
			size_t p = pos, u;
			int named = 0;

			while (p < pos + used && cache_resp_scan_command(buf + p, pos + used - p, &lim,
									 &u, &c, &why) == CACHE_RESP_OK) {
				named = !strcmp(c.name, "sync") || !strcmp(c.name, "psync");
				p += u;
			}
			if (!named || p != pos + used)
				abort();
			st.seen &= ~(unsigned)CACHE_RESP_SEEN_STOP;
		}
		pos += used;
	}
	if (sbad != bad || n != whole)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned seed = size > 0 ? data[0] : 0;

	stream((const char *)data, size, scan_cmd);
	stream((const char *)data, size, scan_rep);
	differ((const char *)data, size, 1, seed);
	differ((const char *)data, size, 0, seed);
	until_one((const char *)data, size, 1);
	until_one((const char *)data, size, 0);
	return 0;
}
