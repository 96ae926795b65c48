/* libFuzzer target for what a static route parses from a request
 * (proxy/static.c): the path below the route, a Range header and an HTTP
 * date. Beyond "no crash": a path accepted starts with '/', holds no NUL,
 * no control byte, no '\\' and no "." or ".." segment, and fits; a range
 * accepted lies inside the file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/static.h"

static void check_path(const char *in, size_t len)
{
	char out[512];
	const char *seg;
	size_t n;

	if (proxy_static_path(in, len, out, sizeof(out)) != 0)
		return;
	n = strlen(out);
	if (out[0] != '/' || n >= sizeof(out))
		abort();
	for (seg = out; *seg != '\0'; seg++)
		if ((unsigned char)*seg < 0x20 || *seg == 0x7f || *seg == '\\')
			abort();
	for (seg = out; seg != NULL; seg = strchr(seg + 1, '/')) {
		const char *s = seg + 1;
		size_t l = strcspn(s, "/");

		if ((l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.'))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	uint64_t from = 0, to = 0, sizes[] = { 0, 1, 100, 1 << 20, UINT64_MAX };
	size_t i;

	check_path(in, size);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		if (proxy_static_range(in, size, sizes[i], &from, &to) == 1 &&
		    (from > to || to >= sizes[i]))
			abort();
	(void)proxy_static_http_date(in, size);
	return 0;
}
