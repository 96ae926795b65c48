/* libFuzzer target for the RESP scanners (cache/resp.c): the input is
 * scanned as a stream of commands and as a stream of replies. Beyond "no
 * crash" it checks what the RESP front relies on: a value is never longer
 * than its input, a value found once is found again with more bytes after
 * it (the same length), and every shorter prefix of it asks for more. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/resp.h"

static const struct resp_limits lim = {
	.max_bulk = 1024, .max_elems = 64, .max_depth = 8, .max_inline = 256,
};

typedef int (*scan_fn)(const char *buf, size_t len, size_t *used, const char **why);

static int scan_cmd(const char *buf, size_t len, size_t *used, const char **why)
{
	struct resp_cmd c;
	int rc = resp_scan_command(buf, len, &lim, used, &c, why);

	if (rc == RESP_OK && c.argc > 1 && (size_t)c.arg1_off + c.arg1_len > *used)
		abort();
	if (rc == RESP_OK && strlen(c.name) >= sizeof(c.name))
		abort();
	return rc;
}

static int scan_rep(const char *buf, size_t len, size_t *used, const char **why)
{
	struct resp_reply r;

	return resp_scan_reply(buf, len, &lim, used, &r, why);
}

static void stream(const char *buf, size_t len, scan_fn scan)
{
	size_t pos = 0, used, again;
	const char *why;
	unsigned n = 0;

	while (pos < len && n++ < 64) {
		int rc = scan(buf + pos, len - pos, &used, &why);

		if (rc == RESP_AGAIN || rc == RESP_BAD) {
			if (rc == RESP_BAD && why == NULL)
				abort();
			return;
		}
		if (rc != RESP_OK || used == 0 || used > len - pos)
			abort();
		/* The same value, cut where it ends: found whole again. */
		if (scan(buf + pos, used, &again, &why) != RESP_OK || again != used)
			abort();
		/* One byte short: more is needed, never another answer. */
		if (scan(buf + pos, used - 1, &again, &why) != RESP_AGAIN)
			abort();
		pos += used;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	stream((const char *)data, size, scan_cmd);
	stream((const char *)data, size, scan_rep);
	return 0;
}
