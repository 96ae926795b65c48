/* libFuzzer target for the HTTP parser: the input is parsed as a request
 * head, as a response head, and as a chunked body fed in pieces whose size
 * the first byte picks. Beyond "no crash", it checks the invariants the
 * proxy relies on: spans lie inside the head, a complete head is no longer
 * than its input, and the chunked decoder never claims more than it got. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/http.h"

static const struct core_http_limits lim = {
	.max_line = 512, .max_head = 4096, .max_headers = 32,
};

static void check_span(struct core_http_span s, int head)
{
	if ((int64_t)s.off + s.len > head)
		abort();
}

static void check_msg(const struct core_http_msg *m, int rc, size_t len)
{
	unsigned i;

	if (rc <= 0)
		return;
	if ((size_t)rc > len || m->head_len != (uint32_t)rc)
		abort();
	for (i = 0; i < m->nhdr; i++) {
		check_span(m->hdr[i].name, rc);
		check_span(m->hdr[i].value, rc);
		if (m->hdr[i].name.len == 0)
			abort();
	}
	for (i = 0; i < m->nconn; i++)
		check_span(m->conn[i], rc);
	if ((m->flags & CORE_HTTP_HF_CHUNKED) && (m->flags & CORE_HTTP_HF_HAS_CL))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct core_http_msg m;
	struct core_http_chunked c;
	const char *p = (const char *)data, *why = NULL;
	size_t off, step;
	int rc;

	core_http_msg_reset(&m);
	rc = core_http_parse_request(p, size, &lim, &m);
	check_msg(&m, rc, size);
	if (rc > 0) {
		check_span(m.method, rc);
		check_span(m.target, rc);
		check_span(m.path, rc);
		check_span(m.host, rc);
	}

	core_http_msg_reset(&m);
	rc = core_http_parse_response(p, size, &lim, &m);
	check_msg(&m, rc, size);

	if (size == 0)
		return 0;
	step = (size_t)(data[0] % 17) + 1;
	core_http_chunked_init(&c);
	for (off = 1; off < size && c.state != CORE_HTTP_CH_DONE; ) {
		size_t n = size - off < step ? size - off : step;
		ssize_t k = core_http_chunked_feed(&c, p + off, n, &why);

		if (k < 0)
			break;
		if ((size_t)k > n || ((size_t)k < n && c.state != CORE_HTTP_CH_DONE))
			abort();
		off += (size_t)k;
	}
	return 0;
}
