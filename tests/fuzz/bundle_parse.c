/* libFuzzer target for update bundles (firmware/bundle.c): what anyone
 * with an admin session can upload. The first byte picks how the input is
 * cut into pieces; the rest is fed to the streaming reader, and also read
 * as a manifest on its own. No key is trusted here, so no input may get
 * past the signature: a block handed on is a failure. Beyond "no crash": a
 * manifest that parses has its fields within their bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/bundle.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int never(struct bundle_rd *rd, const void *d, size_t len, void *arg)
{
	(void)rd;
	(void)d;
	(void)len;
	(void)arg;
	abort();		/* nothing unsigned may come through */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bundle_manifest m;
	struct bundle_rd rd;
	char err[256];
	size_t step, i;
	char *copy;

	if (size < 1)
		return 0;
	step = (size_t)data[0] % 64 + 1;
	data++;
	size--;
	bundle_rd_init(&rd);
	rd.block = never;
	for (i = 0; i < size; i += step)
		if (bundle_rd_feed(&rd, data + i, size - i < step ? size - i : step) != 0)
			break;
	(void)bundle_rd_finish(&rd);
	if (rd.stage != BUNDLE_FAILED || rd.err[0] == '\0')
		abort();
	bundle_rd_free(&rd);

	copy = malloc(size);		/* exactly the text: ASan sees any overrun */
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	if (bundle_manifest_parse(copy, size, &m, err, sizeof(err)) == 0) {
		if (strlen(m.version) > BUNDLE_VERSION_MAX || m.size == 0 ||
		    m.block < 4096 || m.block > BUNDLE_BLOCK_MAX || strlen(m.key) != 16)
			abort();
	} else if (err[0] == '\0')
		abort();
	free(copy);
	return 0;
}
