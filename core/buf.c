/* Byte buffers with a hard cap. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "buf.h"

/*
 * Buffers start at one block (or their cap, if smaller). Freed blocks of
 * exactly that size wait in a small per-thread cache for the next buffer,
 * so a proxy that takes and drops buffers per request does not make the
 * allocator map and unmap memory under load. Idle connections hold none.
 */
#define BUF_BLOCK	16384
#define BUF_CACHE_MAX	256

struct buf_cached {
	struct buf_cached *next;
};

static __thread struct buf_cached *buf_cache;
static __thread unsigned buf_ncached;
static __thread unsigned buf_low;	/* fewest cached since the last trim */

static void *buf_block_get(void)
{
	struct buf_cached *c = buf_cache;

	if (c == NULL)
		return malloc(BUF_BLOCK);
	buf_cache = c->next;
	buf_ncached--;
	if (buf_ncached < buf_low)
		buf_low = buf_ncached;
	return c;
}

void core_buf_cache_trim(void)
{
	unsigned n = buf_low;

	/* Blocks that sat in the cache since the last trim were not needed. */
	while (n-- > 0 && buf_cache != NULL) {
		struct buf_cached *c = buf_cache;

		buf_cache = c->next;
		buf_ncached--;
		free(c);
	}
	buf_low = buf_ncached;
}

static void buf_block_put(void *p, size_t size)
{
	struct buf_cached *c = p;

	if (size != BUF_BLOCK || buf_ncached >= BUF_CACHE_MAX) {
		free(p);
		return;
	}
	c->next = buf_cache;
	buf_cache = c;
	buf_ncached++;
}

void core_buf_init(struct core_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void core_buf_free(struct core_buf *b)
{
	if (b->data != NULL)
		buf_block_put(b->data, b->size);
	b->data = NULL;
	b->start = b->end = b->size = 0;
}

int core_buf_reserve(struct core_buf *b, size_t n)
{
	size_t len = core_buf_len(b), want;
	char *p;

	if (b->size - b->end >= n)
		return CORE_OK;
	if (n > b->max - len)
		return CORE_FULL;

	/* Sliding the data down is enough when the block already fits. */
	if (b->size - len >= n) {
		memmove(b->data, b->data + b->start, len);
		b->start = 0;
		b->end = len;
		return CORE_OK;
	}

	if (b->size == 0 && b->max >= BUF_BLOCK && n <= BUF_BLOCK) {
		b->data = buf_block_get();
		if (b->data == NULL)
			return -ENOMEM;
		b->size = BUF_BLOCK;
		return CORE_OK;
	}
	want = b->size ? b->size : (b->max < BUF_BLOCK ? b->max : BUF_BLOCK);
	while (want - len < n)
		want *= 2;
	if (want > b->max)
		want = b->max;

	if (b->start > 0) {
		memmove(b->data, b->data + b->start, len);
		b->start = 0;
		b->end = len;
	}
	p = realloc(b->data, want);
	if (p == NULL)
		return -ENOMEM;
	b->data = p;
	b->size = want;
	return CORE_OK;
}

int core_buf_append(struct core_buf *b, const void *p, size_t n)
{
	int rc = core_buf_reserve(b, n);

	if (rc != CORE_OK)
		return rc;
	memcpy(b->data + b->end, p, n);
	b->end += n;
	return CORE_OK;
}

void core_buf_consume(struct core_buf *b, size_t n)
{
	if (n >= core_buf_len(b)) {
		b->start = b->end = 0;
		return;
	}
	b->start += n;
}

ssize_t core_buf_read(struct core_buf *b, int fd)
{
	size_t room;
	ssize_t n;
	int rc;

	/* Ask for a useful amount, but take whatever the cap still allows. */
	room = b->max - core_buf_len(b);
	if (room == 0)
		return CORE_FULL;
	rc = core_buf_reserve(b, room < 2048 ? room : 2048);
	if (rc != CORE_OK)
		return rc;

	do
		n = read(fd, b->data + b->end, b->size - b->end);
	while (n == -1 && errno == EINTR);

	if (n == -1)
		return errno == EWOULDBLOCK ? CORE_AGAIN : -errno;
	b->end += (size_t)n;
	return n;
}

ssize_t core_buf_write(struct core_buf *b, int fd)
{
	ssize_t n;

	do
		n = write(fd, core_buf_head(b), core_buf_len(b));
	while (n == -1 && errno == EINTR);

	if (n == -1)
		return errno == EWOULDBLOCK ? CORE_AGAIN : -errno;
	core_buf_consume(b, (size_t)n);
	return n;
}

int core_buf_printf(struct core_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(b->data != NULL ? b->data + b->end : NULL,
		      b->data != NULL ? b->size - b->end : 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return CORE_ERROR;
	if (b->data != NULL && (size_t)n < b->size - b->end) {
		b->end += (size_t)n;
		return CORE_OK;
	}
	if ((rc = core_buf_reserve(b, (size_t)n + 1)) != CORE_OK)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->end, b->size - b->end, fmt, ap);
	va_end(ap);
	b->end += (size_t)n;
	return CORE_OK;
}
