/* Tests of storage/storage.c's reading of /proc/self/mountinfo (the one
 * way keel learns what is mounted without entering a filesystem). */
#include <string.h>

#include "core/core.h"
#include "runner.h"
#include "storage/storage.c"

TEST(mountinfo_escapes_are_undone)
{
	char s[] = "/mnt/with\\040space\\011tab\\134back";

	unescape(s);
	CHECK_STR(s, "/mnt/with space\ttab\\back");
}

TEST(mountinfo_finds_real_mount_points_only)
{
	char fstype[32], source[300];

	CHECK(mountinfo_find("/proc", fstype, sizeof(fstype), source, sizeof(source)));
	CHECK_STR(fstype, "proc");
	CHECK(mountinfo_find("/", fstype, sizeof(fstype), source, sizeof(source)));
	CHECK(!mountinfo_find("/proc/self", fstype, sizeof(fstype), source, sizeof(source)));
	CHECK(!mountinfo_find("/no/such/mount", fstype, sizeof(fstype), source, sizeof(source)));
	CHECK(!mountinfo_find("", fstype, sizeof(fstype), source, sizeof(source)));
}

TEST(ordinals_read_as_english)
{
	CHECK_STR(nth(1), "st");
	CHECK_STR(nth(2), "nd");
	CHECK_STR(nth(3), "rd");
	CHECK_STR(nth(4), "th");
	CHECK_STR(nth(11), "th");
	CHECK_STR(nth(12), "th");
	CHECK_STR(nth(21), "st");
	CHECK_STR(nth(113), "th");
}
