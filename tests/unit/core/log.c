/* Tests of core/log.c: levels, the action suffix, the ring. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "runner.h"
#include "core/log.c"

static char lines[16][LOG_SLOT_SIZE];
static uint64_t seqs[16];
static int nlines;

static void collect(uint64_t seq, const char *line, void *arg)
{
	(void)arg;
	seqs[nlines] = seq;
	snprintf(lines[nlines++], LOG_SLOT_SIZE, "%s", line);
}

static void quiet_stderr(void)
{
	int fd = open("/dev/null", O_WRONLY);

	dup2(fd, STDERR_FILENO);
	close(fd);
}

TEST(ring_keeps_the_newest_lines_and_walks_from_a_sequence)
{
	uint64_t last;
	int i;

	quiet_stderr();
	CHECK(core_log_init(4) == CORE_OK);
	for (i = 1; i <= 6; i++)
		core_log_info("test", "line %d", i);
	last = core_log_ring_walk(0, collect, NULL);
	CHECK_INT(last, ==, 6);
	CHECK_INT(nlines, ==, 4);
	CHECK(strstr(lines[0], " info test: line 3") != NULL);
	CHECK(strstr(lines[3], " info test: line 6") != NULL);
	CHECK_INT(seqs[0], ==, 3);

	nlines = 0;
	core_log_info("test", "line 7");
	CHECK_INT(core_log_ring_walk(last, collect, NULL), ==, 7);
	CHECK_INT(nlines, ==, 1);
	CHECK(strstr(lines[0], "line 7") != NULL);
}

TEST(levels_below_the_threshold_are_dropped)
{
	quiet_stderr();
	CHECK(core_log_init(8) == CORE_OK);
	core_log_level = CORE_LOG_WARN;
	core_log_info("test", "hidden");
	core_log_debug("test", "hidden");
	core_log_warn("test", "shown");
	core_log_error("test", "shown too");
	core_log_ring_walk(0, collect, NULL);
	CHECK_INT(nlines, ==, 2);
	CHECK(strstr(lines[0], " warn test: shown") != NULL);
	CHECK(strstr(lines[1], " error test: shown too") != NULL);
}

TEST(action_is_appended_and_restored)
{
	const char *prev;

	quiet_stderr();
	CHECK(core_log_init(8) == CORE_OK);
	prev = core_log_action("reloading the configuration");
	core_log_error("main", "bad");
	core_log_action(prev);
	core_log_error("main", "plain");
	core_log_ring_walk(0, collect, NULL);
	CHECK(strstr(lines[0], "main: bad (while reloading the configuration)") != NULL);
	CHECK(strstr(lines[1], "(while") == NULL);
}

TEST(control_bytes_cannot_forge_lines_and_long_lines_are_cut)
{
	char big[4000];
	int fds[2];
	char out[8192];
	ssize_t n;

	CHECK(pipe(fds) == 0);
	dup2(fds[1], STDERR_FILENO);
	CHECK(core_log_init(8) == CORE_OK);
	core_log_info("web", "peer said %s", "GET /\r\n2026-01-01 error forged");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	core_log_info("web", "%s", big);
	n = read(fds[0], out, sizeof(out) - 1);
	CHECK(n > 0);
	out[n] = '\0';
	CHECK(strstr(out, "GET /??2026-01-01 error forged\n") != NULL);
	CHECK(strstr(out, "xxx...\n") != NULL);
	/* Exactly two lines came out. */
	CHECK(strchr(out, '\n') != strrchr(out, '\n'));
	CHECK(strchr(strchr(out, '\n') + 1, '\n') == strrchr(out, '\n'));
	core_log_ring_walk(0, collect, NULL);
	CHECK_INT(strlen(lines[1]), ==, LOG_SLOT_SIZE - 1);
}
