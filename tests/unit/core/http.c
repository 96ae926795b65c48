/* Tests of core/http.c: strict request and response heads, limits, and
 * the chunked decoder. */
#include <stdio.h>

#include "runner.h"
#include "core/http.c"

static const struct core_http_limits lim = {
	.max_line = 256, .max_head = 1024, .max_headers = 8,
};

static struct core_http_msg msg;

static int req(const char *s)
{
	core_http_msg_reset(&msg);
	return core_http_parse_request(s, strlen(s), &lim, &msg);
}

static int resp(const char *s)
{
	core_http_msg_reset(&msg);
	return core_http_parse_response(s, strlen(s), &lim, &msg);
}

static const char *spanstr(const char *buf, struct core_http_span s)
{
	static char out[4][256];
	static int n;
	char *o = out[n++ % 4];

	snprintf(o, 256, "%.*s", (int)s.len, buf + s.off);
	return o;
}

TEST(simple_get_parses_with_every_part)
{
	const char *r = "GET /app_a/x?y=1 HTTP/1.1\r\nHost: example.com\r\n"
			"X-A:  v with  spaces \t\r\nConnection: keep-alive, X-Hop\r\n"
			"x-hop: 1\r\n\r\n";

	CHECK_INT(req(r), ==, (int)strlen(r));
	CHECK_INT(msg.method_id, ==, CORE_HTTP_M_GET);
	CHECK_STR(spanstr(r, msg.path), "/app_a/x?y=1");
	CHECK_STR(spanstr(r, msg.host), "example.com");
	CHECK_INT(msg.version, ==, 11);
	CHECK_INT(msg.nhdr, ==, 4);
	CHECK_STR(spanstr(r, msg.hdr[1].name), "X-A");
	CHECK_STR(spanstr(r, msg.hdr[1].value), "v with  spaces");
	CHECK(msg.flags & CORE_HTTP_HF_KEEPALIVE);
	CHECK(!(msg.flags & CORE_HTTP_HF_CLOSE));
	CHECK(!(msg.flags & CORE_HTTP_HF_HAS_CL));
	CHECK_INT(msg.nconn, ==, 2);
	CHECK(msg.hdr[2].hop);		/* Connection itself */
	CHECK(msg.hdr[3].hop);		/* named in Connection (any case) */
	CHECK(!msg.hdr[1].hop);
}

TEST(incomplete_head_needs_more_and_resumes_where_it_stopped)
{
	const char *r = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	size_t n;
	int rc = 0;

	core_http_msg_reset(&msg);
	for (n = 1; n <= strlen(r); n++) {
		rc = core_http_parse_request(r, n, &lim, &msg);
		if (n < strlen(r))
			CHECK_INT(rc, ==, 0);
	}
	CHECK_INT(rc, ==, (int)strlen(r));
}

TEST(http10_closes_unless_keepalive)
{
	CHECK(req("GET / HTTP/1.0\r\n\r\n") > 0);
	CHECK(msg.flags & CORE_HTTP_HF_CLOSE);
	CHECK_INT(msg.version, ==, 10);
	CHECK(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0);
	CHECK(!(msg.flags & CORE_HTTP_HF_CLOSE));
}

TEST(content_length_and_chunked_framing)
{
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n") > 0);
	CHECK(msg.flags & CORE_HTTP_HF_HAS_CL);
	CHECK_INT(msg.content_length, ==, 42);
	/* Optional whitespace around the value is not part of it. */
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \t7 \r\n\r\n") > 0);
	CHECK_INT(msg.content_length, ==, 7);
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n") > 0);
	CHECK_INT(msg.content_length, ==, 0);
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n") > 0);
	CHECK_INT(msg.content_length, ==, 7);
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") > 0);
	CHECK(msg.flags & CORE_HTTP_HF_CHUNKED);
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") > 0);
	CHECK(msg.flags & CORE_HTTP_HF_CHUNKED);
}

/* Each of these is ambiguous or malformed: 400 and close. */
static const struct { const char *req; int rc; const char *why; } bad[] = {
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	  -400, "both Content-Length and Transfer-Encoding" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	  -400, "Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", -400, "Content-Length" },
	/* Lists and repeats of one value too: never forwarded as they came. */
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10, 10\r\n\r\n", -400,
	  "not a single decimal number" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10,10\r\n\r\n", -400, "Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10,\r\n\r\n", -400, "Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ,10\r\n\r\n", -400, "Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", -400,
	  "more than one Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n", -400,
	  "Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n", -400, "Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10;x\r\n\r\n", -400, "Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", -400,
	  "Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", -400, "Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", -400, "Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", -400, "Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", -400, "Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", -400, "Content-Length" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", -400, "chunked" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", -400, "chunked" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", -501, "chunked" },
	{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", -400, "Transfer-Encoding" },
	{ "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400, "HTTP/1.0" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", -400, "folding" },
	{ "GET / HTTP/1.1\r\nHost : a\r\n\r\n", -400, "whitespace before colon" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", -400, "bare CR" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\nX-B: c\r\n\r\n", -400, "bare LF" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01\r\n\r\n", -400, "control byte" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n", -400, "control byte" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", -400, "header name" },
	{ "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", -400, "header name" },
	{ "GET / HTTP/1.1\r\n\r\n", -400, "without Host" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400, "Host" },
	{ "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", -400, "invalid Host" },
	{ "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", -400, "invalid Host" },
	{ "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", -400, "target" },
	{ "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", -400, "version" },
	{ "GET /\tx HTTP/1.1\r\nHost: a\r\n\r\n", -400, "target" },
	{ "GET x HTTP/1.1\r\nHost: a\r\n\r\n", -400, "target" },
	{ "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", -400, "method" },
	{ "GET / HTTP/1.1\nHost: a\r\n\r\n", -400, "version" },
	{ "GET / http/1.1\r\nHost: a\r\n\r\n", -400, "version" },
	{ "GET / HTTP/2.0\r\nHost: a\r\n\r\n", -505, "version" },
	{ "GET / HTTP/1.1\r\nConnection: a b\r\nHost: a\r\n\r\n", -400, "Connection" },
	{ "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", -405, "CONNECT" },
	{ "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -400, "request line" },
};

TEST(ambiguous_and_malformed_requests_are_refused)
{
	size_t i;

	for (i = 0; i < CORE_ARRAY_SIZE(bad); i++) {
		int rc = req(bad[i].req);

		if (rc != bad[i].rc || msg.why == NULL || strstr(msg.why, bad[i].why) == NULL)
			test_fail(__FILE__, __LINE__, "case %zu: got %d (%s), want %d (%s)",
				  i, rc, msg.why ? msg.why : "-", bad[i].rc, bad[i].why);
	}
}

TEST(nul_in_a_header_value_is_refused)
{
	static const char r[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n";

	core_http_msg_reset(&msg);
	CHECK_INT(core_http_parse_request(r, sizeof(r) - 1, &lim, &msg), ==, -400);
	CHECK_STR(msg.why, "NUL in header value");
}

TEST(limits_give_414_and_431)
{
	char big[2048];

	/* A request line past max_line, even before its CRLF arrives. */
	memset(big, 0, sizeof(big));
	strcpy(big, "GET /");
	memset(big + 5, 'a', 300);
	CHECK_INT(req(big), ==, -414);

	/* A head past max_head without its end. */
	snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX-A: ");
	memset(big + strlen(big), 'b', 1100);
	CHECK_INT(req(big), ==, -431);

	/* More fields than max_headers. */
	CHECK_INT(req("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n"
		      "E: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\n\r\n"), ==, -431);
	CHECK_STR(msg.why, "too many header fields");
}

TEST(absolute_form_target_gives_host_and_path)
{
	const char *r = "GET http://app.example.com:8080/a/b HTTP/1.1\r\nHost: other\r\n\r\n";

	CHECK(req(r) > 0);
	CHECK_STR(spanstr(r, msg.host), "app.example.com:8080");
	CHECK_STR(spanstr(r, msg.path), "/a/b");
	CHECK(req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	CHECK_INT(msg.method_id, ==, CORE_HTTP_M_OPTIONS);
}

TEST(upgrade_needs_both_headers)
{
	CHECK(req("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n") > 0);
	CHECK(msg.flags & CORE_HTTP_HF_UPGRADE);
	CHECK(req("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n") > 0);
	CHECK(!(msg.flags & CORE_HTTP_HF_UPGRADE));
	CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n") > 0);
	CHECK(msg.flags & CORE_HTTP_HF_CONTINUE);
}

TEST(unknown_methods_pass_as_tokens)
{
	CHECK(req("PROPFIND /dav HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	CHECK_INT(msg.method_id, ==, CORE_HTTP_M_OTHER);
	CHECK(!core_http_idempotent(CORE_HTTP_M_POST));
	CHECK(core_http_idempotent(CORE_HTTP_M_PUT));
	CHECK(!core_http_idempotent(CORE_HTTP_M_OTHER));
}

TEST(responses)
{
	const char *r = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n";

	CHECK_INT(resp(r), ==, (int)strlen(r));
	CHECK_INT(msg.status, ==, 404);
	CHECK_STR(spanstr(r, msg.reason), "Not Found");
	CHECK_INT(msg.content_length, ==, 3);
	CHECK(resp("HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\n\r\n") > 0);
	CHECK(msg.flags & CORE_HTTP_HF_CHUNKED);
	CHECK(resp("HTTP/1.0 200 OK\r\n\r\n") > 0);
	CHECK(msg.flags & CORE_HTTP_HF_CLOSE);
	CHECK(resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n") > 0);
	CHECK(msg.flags & CORE_HTTP_HF_UPGRADE);

	CHECK_INT(resp("HTTP/1.1 20 OK\r\n\r\n"), ==, -502);
	CHECK_INT(resp("HTTP/1.1 600 What\r\n\r\n"), ==, -502);
	CHECK_INT(resp("ICY 200 OK\r\n\r\n"), ==, -502);
	CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), ==, -502);
	CHECK_INT(resp("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"), ==, -502);
	CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), ==, -502);
	/* A server's list of equal values is refused as well (nginx does). */
	CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n"), ==, -502);
	CHECK(msg.why != NULL && strstr(msg.why, "Content-Length") != NULL);
	CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n"), ==, -502);
	CHECK(msg.why != NULL && strstr(msg.why, "more than one Content-Length") != NULL);
}

/* ---- chunked ---- */

static int chunked_all(const char *s, size_t len, size_t step, size_t *used, const char **why)
{
	struct core_http_chunked c;
	size_t off = 0;

	core_http_chunked_init(&c);
	*why = NULL;
	while (off < len && c.state != CORE_HTTP_CH_DONE) {
		size_t n = len - off < step ? len - off : step;
		ssize_t k = core_http_chunked_feed(&c, s + off, n, why);

		if (k < 0)
			return -1;
		off += (size_t)k;
		if ((size_t)k < n)
			break;
	}
	*used = off;
	return c.state == CORE_HTTP_CH_DONE ? 1 : 0;
}

TEST(chunked_body_ends_exactly_and_in_any_split)
{
	static const char body[] = "5\r\nhello\r\n1a;name=val;x=\"q\"\r\nabcdefghijklmnopqrstuvwxyz\r\n"
				   "0\r\nX-Trailer: yes\r\n\r\nNEXT REQUEST";
	size_t len = sizeof(body) - 1, used, step;
	const char *why;

	for (step = 1; step <= len; step++) {
		CHECK_INT(chunked_all(body, len, step, &used, &why), ==, 1);
		CHECK_INT(used, ==, len - strlen("NEXT REQUEST"));
	}
	CHECK_INT(chunked_all("0\r\n\r\n", 5, 5, &used, &why), ==, 1);
	CHECK_INT(chunked_all("A\r\n0123456789\r\n", 15, 4, &used, &why), ==, 0);
	CHECK_INT(used, ==, 15);
}

static const struct { const char *body; const char *why; } bad_chunks[] = {
	{ "\r\n", "invalid chunk size" },
	{ "g\r\n", "invalid chunk size" },
	{ "-1\r\n", "invalid chunk size" },
	{ "0x5\r\n", "invalid chunk size" },
	{ "12345678901234567\r\n", "too many digits" },
	{ "5\nhello\r\n", "invalid chunk size" },
	{ "5\rhello\r\n", "bare CR" },
	{ "5\r\nhelloX\r\n", "longer than its size" },
	{ "5\r\nhello\rX", "bare CR after chunk data" },
	{ "5 x\r\nhello\r\n", "invalid chunk extension" },
	{ "5 \r\nhello\r\n", "invalid chunk extension" },
	{ "5;a\x01\r\nhello\r\n", "control byte" },
	{ "0\r\n: x\r\n\r\n", "invalid trailer field" },
	{ "0\r\nX-A x\r\n\r\n", "trailer field name" },
	{ "0\r\nX-A\r\n\r\n", "without a colon" },
	{ "0\r\nX-A: \x01\r\n\r\n", "control byte" },
	{ "0\r\n\rX", "bare CR" },
};

TEST(malformed_chunked_framing_is_refused)
{
	size_t i, used;
	const char *why;

	for (i = 0; i < CORE_ARRAY_SIZE(bad_chunks); i++) {
		int rc = chunked_all(bad_chunks[i].body, strlen(bad_chunks[i].body), 1, &used, &why);

		if (rc != -1 || why == NULL || strstr(why, bad_chunks[i].why) == NULL)
			test_fail(__FILE__, __LINE__, "case %zu: got %d (%s), want error (%s)",
				  i, rc, why ? why : "-", bad_chunks[i].why);
	}
}

TEST(chunk_extension_and_trailer_sizes_are_capped)
{
	char big[12000];
	size_t used;
	const char *why;

	strcpy(big, "1;");
	memset(big + 2, 'e', 300);
	strcpy(big + 302, "\r\nx\r\n");
	CHECK_INT(chunked_all(big, strlen(big), 7, &used, &why), ==, -1);
	CHECK_STR(why, "chunk extension too long");

	strcpy(big, "0\r\nX: ");
	memset(big + 6, 'v', 9000);
	strcpy(big + 9006, "\r\n\r\n");
	CHECK_INT(chunked_all(big, strlen(big), 100, &used, &why), ==, -1);
	CHECK_STR(why, "trailer section too large");
}
