/* Monotonic and wall clocks in milliseconds. */
#ifndef KEEL_CORE_CLOCK_H
#define KEEL_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

uint64_t core_clock_mono_ms(void);
uint64_t core_clock_wall_ms(void);

/* "2026-11-21T06:45:12.345Z"; buf needs 25 bytes. Returns buf. */
char *core_clock_format_utc(uint64_t wall_ms, char *buf, size_t len);

/* Wrap-safe "a is before b" for millisecond timestamps. */
static inline int core_clock_before(uint64_t a, uint64_t b)
{
	return (int64_t)(a - b) < 0;
}

#endif
