/* libFuzzer target for the URL an admin gives update.fetch
 * (firmware/fetch.c's parser). Beyond "no crash": a URL that parses has
 * an address of its family, a path that starts with / and holds no space
 * or control byte, and a Host that fits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/fetch.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fetch_url u;
	char err[200], *url = malloc(size + 1);
	const char *p;

	if (url == NULL)
		return 0;
	memcpy(url, data, size);
	url[size] = '\0';
	if (fetch_url_parse(url, &u, err, sizeof(err)) == 0) {
		if ((u.sa.ss_family != AF_INET && u.sa.ss_family != AF_INET6) || u.path[0] != '/' ||
		    strlen(u.host) >= sizeof(u.host))
			abort();
		for (p = u.path; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f)
				abort();
	} else if (err[0] == '\0')
		abort();
	free(url);
	return 0;
}
