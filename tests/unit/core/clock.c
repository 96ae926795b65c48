/* Tests of core/clock.c. */
#include "runner.h"
#include "core/clock.c"

TEST(utc_format_is_iso8601_with_milliseconds)
{
	char buf[32];

	CHECK_STR(core_clock_format_utc(1795329912345ULL, buf, sizeof(buf)),
		  "2026-11-22T06:45:12.345Z");
	CHECK_STR(core_clock_format_utc(0, buf, sizeof(buf)),
		  "1970-01-01T00:00:00.000Z");
}

TEST(monotonic_clock_does_not_go_back)
{
	uint64_t a = core_clock_mono_ms(), b = core_clock_mono_ms();

	CHECK(b >= a);
	CHECK(core_clock_wall_ms() > 1700000000000ULL);
}

TEST(before_is_wrap_safe)
{
	CHECK(core_clock_before(UINT64_MAX - 5, 3));
	CHECK(!core_clock_before(3, UINT64_MAX - 5));
	CHECK(core_clock_before(1, 2));
	CHECK(!core_clock_before(2, 2));
}
