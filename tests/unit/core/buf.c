/* Tests of core/buf.c: growth, compaction and the hard cap. */
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "runner.h"
#include "core/buf.c"

TEST(append_grows_up_to_the_cap_and_refuses_past_it)
{
	struct core_buf b;
	char chunk[1000];

	memset(chunk, 'a', sizeof(chunk));
	core_buf_init(&b, 4096);
	CHECK(core_buf_append(&b, chunk, 1000) == CORE_OK);
	CHECK(core_buf_append(&b, chunk, 1000) == CORE_OK);
	CHECK(core_buf_append(&b, chunk, 1000) == CORE_OK);
	CHECK(core_buf_append(&b, chunk, 1000) == CORE_OK);
	CHECK_INT(core_buf_len(&b), ==, 4000);
	CHECK_INT(core_buf_append(&b, chunk, 97), ==, CORE_FULL);
	CHECK(core_buf_append(&b, chunk, 96) == CORE_OK);
	CHECK_INT(b.size, ==, 4096);
	core_buf_free(&b);
}

TEST(consumed_space_is_reused_without_growing)
{
	struct core_buf b;
	char chunk[3000];

	memset(chunk, 'b', sizeof(chunk));
	core_buf_init(&b, 4096);
	CHECK(core_buf_append(&b, chunk, 3000) == CORE_OK);
	core_buf_consume(&b, 2500);
	CHECK_INT(core_buf_len(&b), ==, 500);
	CHECK(core_buf_append(&b, "xyz", 3) == CORE_OK);
	CHECK(core_buf_append(&b, chunk, 3000) == CORE_OK);	/* slides down */
	CHECK_INT(b.start, ==, 0);
	CHECK_INT(core_buf_len(&b), ==, 3503);
	CHECK(memcmp(core_buf_head(&b) + 500, "xyz", 3) == 0);
	core_buf_consume(&b, 99999);
	CHECK_INT(core_buf_len(&b), ==, 0);
	core_buf_free(&b);
}

TEST(read_stops_at_the_cap_with_full)
{
	struct core_buf b;
	char chunk[6000];
	int fds[2];
	ssize_t n, total = 0;

	memset(chunk, 'c', sizeof(chunk));
	CHECK(pipe2(fds, O_NONBLOCK) == 0);
	CHECK_INT(write(fds[1], chunk, sizeof(chunk)), ==, 6000);
	core_buf_init(&b, 5000);
	while ((n = core_buf_read(&b, fds[0])) > 0)
		total += n;
	CHECK_INT(n, ==, CORE_FULL);
	CHECK_INT(total, ==, 5000);
	core_buf_consume(&b, 5000);
	CHECK_INT(core_buf_read(&b, fds[0]), ==, 1000);
	CHECK_INT(core_buf_read(&b, fds[0]), ==, CORE_AGAIN);
	close(fds[1]);
	CHECK_INT(core_buf_read(&b, fds[0]), ==, 0);
	core_buf_free(&b);
}

TEST(write_consumes_what_the_fd_took)
{
	struct core_buf b;
	char out[16];
	int fds[2];

	CHECK(pipe2(fds, O_NONBLOCK) == 0);
	core_buf_init(&b, 1024);
	CHECK(core_buf_append(&b, "hello", 5) == CORE_OK);
	CHECK_INT(core_buf_write(&b, fds[1]), ==, 5);
	CHECK_INT(core_buf_len(&b), ==, 0);
	CHECK_INT(read(fds[0], out, sizeof(out)), ==, 5);
	close(fds[0]);
	CHECK(core_buf_append(&b, "x", 1) == CORE_OK);
	CHECK_INT(core_buf_write(&b, fds[1]), ==, -EPIPE);	/* SIGPIPE ignored below */
	core_buf_free(&b);
}

__attribute__((constructor)) static void ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}
