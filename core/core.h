/* Definitions every keel module shares: return codes and a few macros. */
#ifndef KEEL_CORE_H
#define KEEL_CORE_H

#include <errno.h>
#include <stddef.h>

/*
 * Return codes. Functions that wrap syscalls return a byte count or -errno;
 * CORE_AGAIN and CORE_FULL are errno values too, so both kinds mix safely.
 * Functions that build things return CORE_OK or CORE_ERROR and write the
 * reason into a caller's buffer.
 */
/* The Host keel's hardware watchdog asks the front door with, from
 * loopback: the proxy answers it itself (204), routes and logs nothing. */
#define CORE_WATCHDOG_HOST	"keel-watchdog.invalid"

#define CORE_OK		0
#define CORE_ERROR	(-1)
#define CORE_AGAIN	(-EAGAIN)	/* would block: wait for the fd */
#define CORE_FULL	(-ENOBUFS)	/* a buffer's hard cap was reached */

#define CORE_ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define CORE_CONTAINER_OF(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

#define core_likely(x)		__builtin_expect(!!(x), 1)
#define core_unlikely(x)	__builtin_expect(!!(x), 0)

#define CORE_PRINTF(f, a)	__attribute__((format(printf, f, a)))

#endif
