/* Tests of cache/conn.c against a real redis-server on loopback: commands
 * through keel's loop, a refused connect, a command timeout against a
 * server that never answers, closing with commands pending, and the server
 * going away (the fd is closed once, by hiredis). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner.h"
#include "cache/conn.c"

static struct core_loop loop;
static struct {
	int	 ups, downs, replies, nulls;
	char	 why[128];
	char	 last[64];
} seen;

static void on_up(struct cache_conn *c, const char *why)
{
	(void)c;
	(void)why;
	seen.ups++;
}

static void on_down(struct cache_conn *c, const char *why)
{
	(void)c;
	seen.downs++;
	snprintf(seen.why, sizeof(seen.why), "%s", why);
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;

	(void)ac;
	(void)priv;
	if (reply == NULL) {
		seen.nulls++;
		return;
	}
	seen.replies++;
	snprintf(seen.last, sizeof(seen.last), "%s",
		 reply->str ? reply->str : reply->type == REDIS_REPLY_INTEGER ? "int" : "?");
}

/* Runs the loop until cond holds or ms pass. */
#define RUN_UNTIL(cond, ms) do {						\
	uint64_t end_ = core_loop_now(&loop) + (ms);				\
	while (!(cond) && core_loop_now(&loop) < end_)				\
		core_loop_run_once(&loop, 20);					\
} while (0)

static int free_port(int *fd_out)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &al);
	port = ntohs(a.sin_port);
	if (fd_out != NULL) {
		listen(fd, 8);		/* accepts (the kernel does) but never answers */
		*fd_out = fd;
	} else
		close(fd);
	return port;
}

static pid_t redis_start(int port)
{
	char p[16];
	pid_t pid;
	int i, fd;

	snprintf(p, sizeof(p), "%d", port);
	if ((pid = fork()) == 0) {
		fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200; i++) {	/* ready when it accepts */
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
			close(fd);
			return pid;
		}
		close(fd);
		usleep(25000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static struct cache_conn *open_conn(int port, uint64_t cmd_ms)
{
	struct cache_conn_opts o = { .ip = "127.0.0.1", .port = port, .connect_timeout = 2000,
				     .command_timeout = cmd_ms, .up = on_up, .down = on_down };
	char why[128];

	memset(&seen, 0, sizeof(seen));
	return cache_conn_open(&loop, &o, why, sizeof(why));
}

TEST(commands_through_the_loop_against_a_real_redis)
{
	char err[128];
	int port = free_port(NULL);
	pid_t pid;
	struct cache_conn *c;

	signal(SIGPIPE, SIG_IGN);
	CHECK(core_loop_init(&loop, err, sizeof(err)) == CORE_OK);
	pid = redis_start(port);
	CHECK(pid > 0);
	c = open_conn(port, 2000);
	CHECK(c != NULL);
	RUN_UNTIL(seen.ups == 1, 5000);
	CHECK_INT(seen.ups, ==, 1);
	redisAsyncCommand(cache_conn_ctx(c), on_reply, NULL, "SET %s %s", "k", "v1");
	redisAsyncCommand(cache_conn_ctx(c), on_reply, NULL, "GET %s", "k");
	RUN_UNTIL(seen.replies == 2, 5000);
	CHECK_INT(seen.replies, ==, 2);
	CHECK_STR(seen.last, "v1");

	/* The server goes away: down once, with a reason; pending get NULL. */
	redisAsyncCommand(cache_conn_ctx(c), on_reply, NULL, "BLPOP %s %d", "nolist", 10);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	RUN_UNTIL(seen.downs == 1, 5000);
	CHECK_INT(seen.downs, ==, 1);
	CHECK_INT(seen.nulls, ==, 1);
	core_loop_run_once(&loop, 0);	/* the deferred free */

	/* Refused: nobody listens there any more. */
	c = open_conn(port, 0);
	CHECK(c != NULL);
	RUN_UNTIL(seen.downs == 1, 5000);
	CHECK_INT(seen.ups, ==, 0);
	CHECK_INT(seen.downs, ==, 1);
	CHECK(strstr(seen.why, "refused") != NULL || strstr(seen.why, "Connection") != NULL);
	core_loop_run_once(&loop, 0);
	core_loop_free(&loop);
}

TEST(a_server_that_never_answers_times_the_command_out)
{
	char err[128];
	int lfd, port = free_port(&lfd);
	struct cache_conn *c;
	uint64_t t0;

	CHECK(core_loop_init(&loop, err, sizeof(err)) == CORE_OK);
	c = open_conn(port, 300);
	CHECK(c != NULL);
	RUN_UNTIL(seen.ups == 1, 5000);
	CHECK_INT(seen.ups, ==, 1);
	t0 = core_loop_now(&loop);
	redisAsyncCommand(cache_conn_ctx(c), on_reply, NULL, "PING");
	RUN_UNTIL(seen.downs == 1, 5000);
	CHECK_INT(seen.nulls, ==, 1);
	CHECK_INT(seen.downs, ==, 1);
	CHECK(strstr(seen.why, "imeout") != NULL || strstr(seen.why, "imed out") != NULL);
	CHECK(core_loop_now(&loop) - t0 >= 250);
	core_loop_run_once(&loop, 0);
	close(lfd);
	core_loop_free(&loop);
}

TEST(closing_with_commands_pending_answers_them_null_once)
{
	char err[128];
	int lfd, port = free_port(&lfd);
	struct cache_conn *c;

	CHECK(core_loop_init(&loop, err, sizeof(err)) == CORE_OK);
	c = open_conn(port, 0);
	CHECK(c != NULL);
	RUN_UNTIL(seen.ups == 1, 5000);
	redisAsyncCommand(cache_conn_ctx(c), on_reply, NULL, "PING");
	redisAsyncCommand(cache_conn_ctx(c), on_reply, NULL, "PING");
	cache_conn_close(c);
	cache_conn_close(c);		/* twice: harmless */
	CHECK_INT(seen.nulls, ==, 2);
	CHECK_INT(seen.downs, ==, 1);
	CHECK_STR(seen.why, "closed");
	core_loop_run_once(&loop, 0);
	/* Closed before it connected, too. */
	c = open_conn(port, 0);
	cache_conn_close(c);
	CHECK_INT(seen.downs, ==, 1);
	core_loop_run_once(&loop, 0);
	close(lfd);
	core_loop_free(&loop);
}

static struct cache_conn *watched_slot_holder;
static struct cache_conn **watched_slot;

static void on_down_slot(struct cache_conn *c, const char *why)
{
	on_down(c, why);
	watched_slot_holder = *watched_slot;	/* what the owner sees in `down` */
}

TEST(a_connection_that_goes_leaves_its_slot_before_it_is_freed)
{
	struct cache_conn_opts o = { .ip = "127.0.0.1", .connect_timeout = 2000,
				     .command_timeout = 300, .up = on_up, .down = on_down_slot };
	struct cache_conn *slot_a = NULL, *slot_b = NULL, *c;
	char err[128], why[128];
	int lfd;

	CHECK(core_loop_init(&loop, err, sizeof(err)) == CORE_OK);
	o.port = free_port(&lfd);
	memset(&seen, 0, sizeof(seen));
	c = cache_conn_open(&loop, &o, why, sizeof(why));
	CHECK(c != NULL);
	cache_conn_own(c, &slot_a);
	CHECK(slot_a == c);
	/* Handed on (the topology's ask -> refresh): the first slot lets go. */
	cache_conn_own(c, &slot_b);
	CHECK(slot_a == NULL && slot_b == c);
	watched_slot = &slot_b;
	RUN_UNTIL(seen.ups == 1, 5000);
	CHECK_INT(seen.ups, ==, 1);
	/* It times out: the owner still sees it in `down`, and the slot is
	 * empty before the deferred free runs. */
	redisAsyncCommand(cache_conn_ctx(c), on_reply, NULL, "PING");
	RUN_UNTIL(seen.downs == 1, 5000);
	CHECK_INT(seen.downs, ==, 1);
	CHECK(watched_slot_holder == c);
	CHECK(slot_b == NULL);
	core_loop_run_once(&loop, 0);		/* the free */

	/* Closing unlinks too. */
	c = cache_conn_open(&loop, &o, why, sizeof(why));
	CHECK(c != NULL);
	cache_conn_own(c, &slot_a);
	watched_slot = &slot_a;
	cache_conn_close(slot_a);
	CHECK(slot_a == NULL);
	core_loop_run_once(&loop, 0);
	close(lfd);
	core_loop_free(&loop);
}
