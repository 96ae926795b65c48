/* Tests of cache/resp.c: command and reply boundaries, what the front
 * learns from them, partial input, and every limit. */
#include <string.h>

#include "core/core.h"
#include "runner.h"
#include "cache/resp.c"

static const struct cache_resp_limits lim = {
	.max_bulk = 64, .max_elems = 8, .max_inline = 32,
};

static const char *why;
static size_t used;

static int cmd(const char *s, struct cache_resp_cmd *c)
{
	used = 0;
	return cache_resp_scan_command(s, strlen(s), &lim, &used, c, &why);
}

static int rep(const char *s, struct cache_resp_reply *r)
{
	used = 0;
	return cache_resp_scan_reply(s, strlen(s), &lim, &used, r, &why);
}

TEST(commands_end_where_they_end_and_name_themselves)
{
	struct cache_resp_cmd c;
	const char *s = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*1\r\n$4\r\nPING\r\n";

	CHECK_INT(cmd(s, &c), ==, CACHE_RESP_OK);
	CHECK_INT(used, ==, 31);
	CHECK_STR(c.name, "set");
	CHECK_INT(c.argc, ==, 3);
	CHECK(c.arg1_len == 1 && s[c.arg1_off] == 'k');
	CHECK_INT(cmd(s + used, &c), ==, CACHE_RESP_OK);
	CHECK_STR(c.name, "ping");
	/* Binary-safe values: CRLF inside a bulk string is data. */
	CHECK_INT(cmd("*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n", &c), ==, CACHE_RESP_OK);
	CHECK_INT(used, ==, 24);
}

TEST(every_prefix_of_a_command_asks_for_more)
{
	const char *s = "*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n";
	struct cache_resp_cmd c;
	size_t n;

	for (n = 0; n < strlen(s); n++) {
		used = 0;
		CHECK_INT(cache_resp_scan_command(s, n, &lim, &used, &c, &why), ==, CACHE_RESP_AGAIN);
	}
	CHECK_INT(cmd(s, &c), ==, CACHE_RESP_OK);
	CHECK_INT(used, ==, strlen(s));
}

TEST(inline_commands_and_empty_ones)
{
	struct cache_resp_cmd c;

	CHECK_INT(cmd("ping\r\n", &c), ==, CACHE_RESP_OK);
	CHECK(c.is_inline && c.argc == 1);
	CHECK_STR(c.name, "ping");
	CHECK_INT(cmd("  GET   key \n", &c), ==, CACHE_RESP_OK);
	CHECK_INT(c.argc, ==, 2);
	CHECK_STR(c.name, "get");
	CHECK_INT(cmd("\r\n", &c), ==, CACHE_RESP_OK);
	CHECK_INT(c.argc, ==, 0);
	CHECK_INT(cmd("*0\r\n", &c), ==, CACHE_RESP_OK);
	CHECK_INT(c.argc, ==, 0);
	CHECK_INT(cmd("get k", &c), ==, CACHE_RESP_AGAIN);
}

TEST(bad_commands_and_limits_are_refused_with_a_reason)
{
	struct cache_resp_cmd c;

	/* In Redis's words, which clients match on. */
	CHECK_INT(cmd("*9\r\n", &c), ==, CACHE_RESP_BAD);
	CHECK_STR(why, "invalid multibulk length");
	CHECK_INT(cmd("*1\r\n$65\r\n", &c), ==, CACHE_RESP_BAD);
	CHECK_STR(why, "invalid bulk length");
	CHECK_INT(cmd("*1\r\n$-5\r\n", &c), ==, CACHE_RESP_BAD);
	CHECK_STR(why, "invalid bulk length");
	CHECK_INT(cmd("*1\r\n:1\r\n", &c), ==, CACHE_RESP_BAD);
	CHECK_INT(cmd("*1\r\n$-1\r\n", &c), ==, CACHE_RESP_BAD);
	CHECK_INT(cmd("*1\r\n$3\r\nabcd\r\n", &c), ==, CACHE_RESP_BAD);
	CHECK_STR(why, "bulk string not followed by CRLF");
	CHECK_INT(cmd("*x\r\n", &c), ==, CACHE_RESP_BAD);
	CHECK_INT(cmd("*1\n", &c), ==, CACHE_RESP_BAD);
	CHECK_INT(cmd("*+1\r\n", &c), ==, CACHE_RESP_BAD);
	CHECK_INT(cmd("this inline command is much longer than thirty-two bytes", &c), ==, CACHE_RESP_BAD);
	CHECK_STR(why, "too big inline request");
}

TEST(replies_of_every_type_and_nesting)
{
	struct cache_resp_reply r;

	CHECK_INT(rep("+OK\r\n", &r), ==, CACHE_RESP_OK);
	CHECK(r.type == '+' && used == 5);
	CHECK_INT(rep("-ERR no\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_INT(rep(":42\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_INT(rep("$-1\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_INT(rep("*-1\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_INT(rep("*0\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_INT(rep("$5\r\nhello\r\n+next\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_INT(used, ==, 11);
	CHECK_INT(rep("*2\r\n*2\r\n:1\r\n:2\r\n$1\r\nx\r\n:9\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_INT(used, ==, 23);
	CHECK_INT(r.elems, ==, 2);
	/* RESP3: a map counts pairs; an attribute precedes its value. */
	CHECK_INT(rep("%1\r\n+a\r\n:1\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_INT(used, ==, 12);
	CHECK_INT(rep("|1\r\n+ttl\r\n:3\r\n+v\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_INT(used, ==, 18);
	CHECK_INT(rep("_\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_INT(rep("#t\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_INT(rep(",1.5\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_INT(rep("=8\r\ntxt:abcd\r\n", &r), ==, CACHE_RESP_OK);
}

TEST(pubsub_messages_say_what_they_are)
{
	struct cache_resp_reply r;

	CHECK_INT(rep("*3\r\n$7\r\nMESSAGE\r\n$2\r\nch\r\n$2\r\nhi\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_STR(r.kind, "message");
	CHECK(r.type == '*' && r.elems == 3);
	CHECK_INT(rep(">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_STR(r.kind, "subscribe");
	CHECK(r.type == '>');
	CHECK_INT(rep("*2\r\n:1\r\n$7\r\nmessage\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_STR(r.kind, "");		/* only the first element names it */
}

TEST(partial_and_bad_replies)
{
	const char *s = "*2\r\n$3\r\nabc\r\n*1\r\n:7\r\n";
	struct cache_resp_reply r;
	size_t n;

	for (n = 0; n < strlen(s); n++) {
		used = 0;
		CHECK_INT(cache_resp_scan_reply(s, n, &lim, &used, &r, &why), ==, CACHE_RESP_AGAIN);
	}
	CHECK_INT(rep(s, &r), ==, CACHE_RESP_OK);
	/* Nested as deep as the server likes (a Lua script's recursive table). */
	CHECK_INT(rep("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", &r), ==, CACHE_RESP_OK);
	CHECK_INT(used, ==, 20);
	CHECK_INT(rep("*9\r\n", &r), ==, CACHE_RESP_BAD);
	CHECK_INT(rep("$65\r\n", &r), ==, CACHE_RESP_BAD);
	CHECK_INT(rep("$-2\r\n", &r), ==, CACHE_RESP_BAD);
	CHECK_INT(rep("?x\r\n", &r), ==, CACHE_RESP_BAD);
	CHECK_STR(why, "unknown RESP type");
	CHECK_INT(rep("+a long simple string that goes past the limit\r\n", &r), ==, CACHE_RESP_BAD);
	CHECK_STR(why, "line too long");
}

static int feed(struct cache_resp_stream *st, const char *s, size_t piece, uint64_t *n)
{
	size_t pos = 0, len = strlen(s);

	while (pos < len) {
		size_t k = piece < len - pos ? piece : len - pos;

		if (cache_resp_stream_feed(st, s + pos, k, &lim, n, &why) != CACHE_RESP_OK)
			return CACHE_RESP_BAD;
		pos += k;
	}
	return CACHE_RESP_OK;
}

TEST(a_stream_counts_commands_in_any_pieces)
{
	const char *s = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"
			"PING\r\n   \r\n*0\r\n*1\r\n$4\r\nEXEC\r\n";
	size_t piece;

	for (piece = 1; piece <= strlen(s); piece++) {
		struct cache_resp_stream st;
		uint64_t n = 0;

		cache_resp_stream_init(&st, 1);
		CHECK_INT(feed(&st, s, piece, &n), ==, CACHE_RESP_OK);
		/* The blank inline line and *0 get no reply from Redis. */
		CHECK_INT(n, ==, 3);
	}
}

TEST(a_stream_passes_values_larger_than_any_buffer)
{
	struct cache_resp_limits big = lim;
	struct cache_resp_stream st;
	static char body[1 << 16];
	uint64_t n = 0;

	big.max_bulk = sizeof(body);
	memset(body, '\n', sizeof(body));	/* CRLF-looking data is data */
	cache_resp_stream_init(&st, 0);
	CHECK_INT(cache_resp_stream_feed(&st, "*2\r\n$65536\r\n", 12, &big, &n, &why), ==, CACHE_RESP_OK);
	CHECK_INT(cache_resp_stream_feed(&st, body, 1000, &big, &n, &why), ==, CACHE_RESP_OK);
	CHECK_INT(cache_resp_stream_feed(&st, body, sizeof(body) - 1000, &big, &n, &why), ==, CACHE_RESP_OK);
	CHECK_INT(n, ==, 0);
	CHECK_INT(cache_resp_stream_feed(&st, "\r\n:1\r\n", 6, &big, &n, &why), ==, CACHE_RESP_OK);
	CHECK_INT(n, ==, 1);
	/* Past the limit: refused, and refused from then on. */
	CHECK_INT(cache_resp_stream_feed(&st, "$65537\r\n", 8, &big, &n, &why), ==, CACHE_RESP_BAD);
	CHECK_STR(why, "invalid bulk length");
	CHECK_INT(cache_resp_stream_feed(&st, "+OK\r\n", 5, &big, &n, &why), ==, CACHE_RESP_BAD);
}

TEST(a_stream_sees_readonly_and_loading_only_at_the_top)
{
	struct cache_resp_stream st;
	uint64_t n = 0;

	cache_resp_stream_init(&st, 0);
	CHECK_INT(feed(&st, "*1\r\n-READONLY inside\r\n+OK\r\n", 3, &n), ==, CACHE_RESP_OK);
	CHECK_INT(st.seen, ==, 0);
	CHECK_INT(feed(&st, "-READONLY replica\r\n", 5, &n),
		  ==, CACHE_RESP_OK);
	CHECK_INT(st.seen, ==, CACHE_RESP_SEEN_READONLY);
	CHECK_INT(feed(&st, "-LOADING dataset\r\n", 7, &n), ==, CACHE_RESP_OK);
	CHECK_INT(st.seen, ==, CACHE_RESP_SEEN_READONLY | CACHE_RESP_SEEN_LOADING);
	CHECK_INT(n, ==, 4);
}

TEST(a_stream_refuses_what_the_scanner_refuses)
{
	static const char *const bad[] = {
		"*2\r\n:1\r\n",			/* a command holds bulk strings */
		"*1\r\n$-1\r\n",
		"*99\r\n",			/* more than max_elems */
		"*1\r\n$3\r\nGETX\r\n",		/* body longer than said */
		"*1\n",				/* no CR */
	};
	size_t i;

	for (i = 0; i < CORE_ARRAY_SIZE(bad); i++) {
		struct cache_resp_stream st;
		uint64_t n = 0;

		cache_resp_stream_init(&st, 1);
		CHECK_INT(feed(&st, bad[i], 2, &n), ==, CACHE_RESP_BAD);
		CHECK(why != NULL);
	}
}

TEST(a_stream_quotes_the_byte_redis_quotes)
{
	struct cache_resp_stream st;
	uint64_t n = 0;

	cache_resp_stream_init(&st, 1);
	CHECK_INT(feed(&st, "*1\r\nfoo\r\n", 3, &n), ==, CACHE_RESP_BAD);
	CHECK_STR(why, "expected '$', got 'f'");
	cache_resp_stream_init(&st, 1);
	CHECK_INT(feed(&st, "*1\r\n\r\n", 3, &n), ==, CACHE_RESP_BAD);
	CHECK_STR(why, "expected '$', got ' '");	/* the error stays one line */
	cache_resp_stream_init(&st, 1);
	CHECK_INT(feed(&st, "*1\r\n$1234567890123456789012345678901234\r\n", 5, &n), ==, CACHE_RESP_BAD);
	CHECK_STR(why, "too big bulk count string");
}

TEST(a_stream_follows_replies_nested_past_any_stack)
{
	struct cache_resp_stream st;
	static char deep[4 * 1000 + 16];
	size_t i, len = 0;
	uint64_t n = 0;

	/* 1000 levels of *1, then a leaf, then another whole reply. */
	for (i = 0; i < 1000; i++) {
		memcpy(deep + len, "*1\r\n", 4);
		len += 4;
	}
	memcpy(deep + len, ":7\r\n+OK\r\n", 9);
	deep[len + 9] = '\0';
	cache_resp_stream_init(&st, 0);
	CHECK_INT(feed(&st, deep, 7, &n), ==, CACHE_RESP_OK);
	CHECK_INT(n, ==, 2);
	CHECK(cache_resp_stream_idle(&st));
	/* A map inside an array inside a push, and an attribute. */
	n = 0;
	CHECK_INT(feed(&st, ">3\r\n*2\r\n%1\r\n+k\r\n:1\r\n_\r\n|1\r\n+a\r\n:1\r\n+v\r\n", 1, &n),
		  ==, CACHE_RESP_OK);
	CHECK_INT(n, ==, 0);
	CHECK(!cache_resp_stream_idle(&st));
	CHECK_INT(feed(&st, ":2\r\n", 1, &n), ==, CACHE_RESP_OK);
	CHECK_INT(n, ==, 1);
	CHECK(cache_resp_stream_idle(&st));
}

TEST(a_stream_stops_right_after_a_command_that_ends_resp)
{
	static const char *const stops[] = { "sync", "psync", NULL };
	struct cache_resp_limits l = lim;
	static const char *const cases[] = {
		"*1\r\n$4\r\nPING\r\n*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n",
		"*1\r\n$4\r\nPING\r\n  SyNc\r\n",
		"*1\r\n$4\r\nPING\r\nsync\n",
	};
	size_t i, piece;

	l.stop_after = stops;
	for (i = 0; i < CORE_ARRAY_SIZE(cases); i++)
		for (piece = 1; piece <= strlen(cases[i]); piece++) {
			const char *s = cases[i];
			char tail[64];
			struct cache_resp_stream st;
			size_t pos = 0, took, len;
			uint64_t n = 0;

			/* Bytes that are not RESP follow the command. */
			snprintf(tail, sizeof(tail), "%s\n$5\r\nab", s);
			len = strlen(tail);
			cache_resp_stream_init(&st, 1);
			while (pos < len && !(st.seen & CACHE_RESP_SEEN_STOP)) {
				size_t k = piece < len - pos ? piece : len - pos;

				CHECK_INT(cache_resp_stream_feed_until(&st, tail + pos, k, &l, &n,
								       UINT64_MAX, &took, &why),
					  ==, CACHE_RESP_OK);
				pos += took;
			}
			CHECK(st.seen & CACHE_RESP_SEEN_STOP);
			CHECK_INT(n, ==, 2);
			CHECK_INT(pos, ==, strlen(s));
		}
	/* Names that only start like one, and arguments that are one. */
	{
		const char *s = "*1\r\n$5\r\nSYNCX\r\n*2\r\n$4\r\nECHO\r\n$4\r\nsync\r\nsyncx\r\n"
				"sync\rx\r\n";
		struct cache_resp_stream st;
		uint64_t n = 0;

		cache_resp_stream_init(&st, 1);
		CHECK_INT(cache_resp_stream_feed(&st, s, strlen(s), &l, &n, &why), ==, CACHE_RESP_OK);
		CHECK_INT(n, ==, 4);
		CHECK_INT(st.seen, ==, 0);
	}
}

TEST(a_stream_fed_until_a_count_stops_right_after_that_value)
{
	const char *s = "*1\r\n$4\r\nPING\r\n" "GET k\r\n" "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" "*1\r\n$4";
	size_t first = 14, third = 14 + 7 + 20;	/* after PING, and after the GETs */
	struct cache_resp_stream st;
	uint64_t n = 0;
	size_t took;

	cache_resp_stream_init(&st, 1);
	CHECK_INT(cache_resp_stream_feed_until(&st, s, strlen(s), &lim, &n, 1, &took, &why), ==, CACHE_RESP_OK);
	CHECK_INT(n, ==, 1);
	CHECK_INT(took, ==, first);
	/* At the count already: nothing taken. */
	CHECK_INT(cache_resp_stream_feed_until(&st, s + took, strlen(s) - took, &lim, &n, 1, &took, &why),
		  ==, CACHE_RESP_OK);
	CHECK_INT(took, ==, 0);
	CHECK_INT(cache_resp_stream_feed_until(&st, s + first, strlen(s) - first, &lim, &n, 3, &took, &why),
		  ==, CACHE_RESP_OK);
	CHECK_INT(n, ==, 3);
	CHECK_INT(first + took, ==, third);
	/* Past the last whole value, the rest (half a command) is taken. */
	CHECK_INT(cache_resp_stream_feed_until(&st, s + third, strlen(s) - third, &lim, &n, 10, &took, &why),
		  ==, CACHE_RESP_OK);
	CHECK_INT(n, ==, 3);
	CHECK_INT(took, ==, strlen(s) - third);
	CHECK(!cache_resp_stream_idle(&st));
}

/* Whether commands s, fed in pieces of every size, name the reserved prefix. */
static int reserved_in(const char *s)
{
	struct cache_resp_limits r = lim;
	size_t len = strlen(s), piece, pos;
	int seen = -1;

	r.reserved = "keel:";
	for (piece = 1; piece <= len; piece++) {
		struct cache_resp_stream st;
		uint64_t n = 0;
		int now;

		cache_resp_stream_init(&st, 1);
		for (pos = 0; pos < len; pos += piece) {
			size_t k = len - pos < piece ? len - pos : piece;

			CHECK(cache_resp_stream_feed(&st, s + pos, k, &r, &n, &why) == CACHE_RESP_OK);
		}
		now = (st.seen & CACHE_RESP_SEEN_RESERVED) != 0;
		if (seen != -1)
			CHECK_INT(now, ==, seen);	/* the same in any pieces */
		seen = now;
	}
	return seen;
}

TEST(a_stream_flags_arguments_in_the_reserved_prefix_in_any_pieces)
{
	CHECK(reserved_in("*3\r\n$3\r\nSET\r\n$12\r\nkeel:kv:abcd\r\n$1\r\nv\r\n"));
	CHECK(reserved_in("*3\r\n$7\r\nPUBLISH\r\n$7\r\nkeel:kv\r\n$1\r\nx\r\n"));
	CHECK(reserved_in("*2\r\n$4\r\nPING\r\n$1\r\nx\r\n*2\r\n$3\r\nDEL\r\n$5\r\nkeel:\r\n"));
	CHECK(reserved_in("SET keel:kv:a b\r\n"));
	CHECK(reserved_in("SET \"keel:kv:a\" b\r\n"));
	CHECK(!reserved_in("*3\r\n$3\r\nSET\r\n$4\r\nkeel\r\n$5\r\nxkeel\r\n"));
	CHECK(!reserved_in("*2\r\n$3\r\nGET\r\n$5\r\nKEEL:\r\n"));
	CHECK(!reserved_in("SET skeel:a b\r\n"));
	CHECK(!reserved_in("*1\r\n$4\r\nPING\r\n"));
}
