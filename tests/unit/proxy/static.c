/* Tests of proxy/static.c's parsers: the request path below a static
 * route (decoded once, nothing that leaves the folder), Range against a
 * file's size, and HTTP dates. */
#include <string.h>

#include "core/core.h"
#include "runner.h"
#include "proxy/static.h"

static const char *path(const char *in)
{
	static char out[256];

	return proxy_static_path(in, strlen(in), out, sizeof(out)) == 0 ? out : NULL;
}

TEST(paths_are_decoded_once_and_never_leave_the_folder)
{
	CHECK_STR(path("/a/b.txt"), "/a/b.txt");
	CHECK_STR(path(""), "/");
	CHECK_STR(path("a.txt"), "/a.txt");
	CHECK_STR(path("/with%20space/%41"), "/with space/A");
	CHECK_STR(path("//a///b/"), "/a/b/");
	CHECK_STR(path("/%252e%252e/x"), "/%2e%2e/x");	/* decoded once only */
	CHECK_STR(path("/..a/b..c/"), "/..a/b..c/");
	CHECK(path("/../x") == NULL);
	CHECK(path("/a/..") == NULL);
	CHECK(path("/%2e%2e/x") == NULL);
	CHECK(path("/%2E%2e/x") == NULL);
	CHECK(path("/..%2fx") == NULL);
	CHECK(path("/a/./b") == NULL);
	CHECK(path("/a/%2e") == NULL);
	CHECK(path("/a%00b") == NULL);
	CHECK(path("/a%0d%0ab") == NULL);
	CHECK(path("/a\\b") == NULL);
	CHECK(path("/a%5cb") == NULL);
	CHECK(path("/a%2") == NULL);
	CHECK(path("/a%zz") == NULL);
}

TEST(a_long_path_is_refused_not_cut)
{
	char in[600], out[64];

	memset(in, 'a', sizeof(in) - 1);
	in[0] = '/';
	in[sizeof(in) - 1] = '\0';
	CHECK(proxy_static_path(in, strlen(in), out, sizeof(out)) == -1);
}

static int range(const char *v, uint64_t size, uint64_t *a, uint64_t *b)
{
	return proxy_static_range(v, strlen(v), size, a, b);
}

TEST(ranges_follow_rfc_9110)
{
	uint64_t a = 0, b = 0;

	CHECK(range("bytes=0-9", 100, &a, &b) == 1 && a == 0 && b == 9);
	CHECK(range("bytes=90-", 100, &a, &b) == 1 && a == 90 && b == 99);
	CHECK(range("bytes=90-500", 100, &a, &b) == 1 && a == 90 && b == 99);
	CHECK(range("bytes=-10", 100, &a, &b) == 1 && a == 90 && b == 99);
	CHECK(range("bytes=-500", 100, &a, &b) == 1 && a == 0 && b == 99);
	CHECK(range("BYTES=1-1", 100, &a, &b) == 1 && a == 1 && b == 1);
	CHECK(range("bytes=100-", 100, &a, &b) == -1);	/* 416 */
	CHECK(range("bytes=-0", 100, &a, &b) == -1);
	CHECK(range("bytes=0-0", 0, &a, &b) == -1);
	CHECK(range("bytes=0-1,5-6", 100, &a, &b) == 0);	/* several: the whole file */
	CHECK(range("bytes=9-1", 100, &a, &b) == 0);
	CHECK(range("bytes=x-1", 100, &a, &b) == 0);
	CHECK(range("lines=0-1", 100, &a, &b) == 0);
	CHECK(range("bytes=1-2x", 100, &a, &b) == 0);
	CHECK(range("bytes=99999999999999999999-", 100, &a, &b) == 0);	/* overflows */
}

TEST(http_dates_are_imf_fixdates)
{
	CHECK(proxy_static_http_date("Sun, 06 Nov 1994 08:49:37 GMT", 29) == 784111777);
	CHECK(proxy_static_http_date("Thu, 01 Jan 1970 00:00:00 GMT", 29) == 0);
	CHECK(proxy_static_http_date("Sunday, 06-Nov-94 08:49:37 GMT", 30) == -1);
	CHECK(proxy_static_http_date("Sun, 06 Nov 1994 08:49:37 UTC", 29) == -1);
	CHECK(proxy_static_http_date("Sun, 06 Foo 1994 08:49:37 GMT", 29) == -1);
	CHECK(proxy_static_http_date("Sun, 32 Nov 1994 08:49:37 GMT", 29) == -1);
	CHECK(proxy_static_http_date("", 0) == -1);
}
