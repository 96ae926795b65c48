/* Byte buffers with a hard cap. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "buf.h"

#define BUF_MIN_SIZE	1024

void core_buf_init(struct core_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void core_buf_free(struct core_buf *b)
{
	free(b->data);
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

	want = b->size ? b->size : BUF_MIN_SIZE;
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
	rc = core_buf_reserve(b, room < 4096 ? room : 4096);
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
