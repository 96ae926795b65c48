/* A byte buffer with a hard cap (see buf.h). */
#ifndef KEEL_CORE_BUF_T_H
#define KEEL_CORE_BUF_T_H

#include <stddef.h>

struct core_buf {
	char	*data;
	size_t	 start;		/* first unread byte */
	size_t	 end;		/* one past the last byte */
	size_t	 size;		/* bytes allocated */
	size_t	 max;		/* hard cap on size */
};

#endif
