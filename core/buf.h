/* Byte buffers with a hard cap: data lives in [start, end) of a block that
 * grows on demand but never past max. */
#ifndef KEEL_CORE_BUF_H
#define KEEL_CORE_BUF_H

#include <stddef.h>
#include <sys/types.h>

#include "buf-t.h"


void core_buf_init(struct core_buf *b, size_t max);

/* Frees the cached blocks no buffer took since the last call; call it now
 * and then (keel's proxy does every second) so a burst's memory goes back. */
void core_buf_cache_trim(void);
void core_buf_free(struct core_buf *b);

static inline size_t core_buf_len(const struct core_buf *b)
{
	return b->end - b->start;
}

static inline char *core_buf_head(const struct core_buf *b)
{
	return b->data + b->start;
}

/* Makes room for n more bytes at the end. CORE_OK, CORE_FULL past the cap,
 * or -ENOMEM. */
int core_buf_reserve(struct core_buf *b, size_t n);
int core_buf_append(struct core_buf *b, const void *p, size_t n);
/* Appends formatted text; CORE_OK, CORE_FULL or CORE_ERROR. */
int core_buf_printf(struct core_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void core_buf_consume(struct core_buf *b, size_t n);

/* Keeps only the first n bytes of what is buffered. */
static inline void core_buf_truncate(struct core_buf *b, size_t n)
{
	if (n < core_buf_len(b))
		b->end = b->start + n;
}

/* Reads what the fd has into free space, growing up to the cap. Returns the
 * byte count, 0 at end of file, CORE_AGAIN, CORE_FULL, or -errno. */
ssize_t core_buf_read(struct core_buf *b, int fd);

/* Writes buffered bytes to the fd and consumes what was written. Returns the
 * byte count, CORE_AGAIN, or -errno. */
ssize_t core_buf_write(struct core_buf *b, int fd);

#endif
