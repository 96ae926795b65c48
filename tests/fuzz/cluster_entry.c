/* libFuzzer target for the entries gateways of a cluster publish through
 * Redis (core/sync.c). An entry is opened with the cluster key before it
 * is read, so only a holder of the key reaches the reader; it is fuzzed
 * all the same, and so is the opener (anyone who can write to Redis can
 * put anything there). Beyond "no crash": a refusal says why, what is read
 * is in range, and an entry written again from what was read reads the
 * same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/sync.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[32] = { 1, 2, 3 };
	struct core_sync_entry e, e2;
	struct core_buf b;
	char err[200] = "", *text, *opened;
	unsigned i;

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	/* Whatever is in Redis: opened, which must refuse it (no key). */
	opened = core_sync_open(key, "conf.shop.a", text, err, sizeof(err));
	if (opened != NULL || err[0] == '\0')
		abort();
	if (core_sync_entry_parse(text, &e, err, sizeof(err)) != CORE_OK) {
		if (err[0] == '\0')
			abort();
		free(text);
		return 0;
	}
	if (e.node[0] == '\0' || strlen(e.sha) != CORE_SYNC_SHA || e.nhist > CORE_SYNC_HIST ||
	    e.yaml < text || e.yaml > text + size)
		abort();
	for (i = 0; i < e.nhist; i++)
		if (strlen(e.hist[i].sha) != CORE_SYNC_SHA)
			abort();
	/* Written again (when it had no line breaks a writer would fold)
	 * and read again: the same entry. */
	core_buf_init(&b, 1 << 20);
	if (entry_write(&b, &e, e.yaml) == CORE_OK) {
		if (core_sync_entry_parse(core_buf_head(&b), &e2, err, sizeof(err)) != CORE_OK ||
		    strcmp(e.node, e2.node) || strcmp(e.sha, e2.sha) || e.gen != e2.gen ||
		    e.nhist != e2.nhist || strcmp(e.yaml, e2.yaml) || e.time != e2.time ||
		    strcmp(e.author, e2.author) || strcmp(e.comment, e2.comment))
			abort();
		/* And sealed, then opened: the same bytes. */
		opened = core_sync_seal(key, "conf.shop.a", core_buf_head(&b), err, sizeof(err));
		if (opened == NULL)
			abort();
		text[0] = '\0';
		free(text);
		text = core_sync_open(key, "conf.shop.a", opened, err, sizeof(err));
		if (text == NULL || strcmp(text, core_buf_head(&b)) != 0)
			abort();
		/* Under another entry's name, it does not open. */
		free(text);
		text = core_sync_open(key, "conf.shop.b", opened, err, sizeof(err));
		if (text != NULL)
			abort();
		free(opened);
	}
	core_buf_free(&b);
	free(text);
	return 0;
}
