/* Tests of cache/topo.c: who owns the topology's connections. A stand-in
 * Sentinel (a forked child on loopback) names a real redis-server as the
 * master and never answers SENTINEL sentinels, so the connection that
 * asked it times out while the topology holds it as `refresh`: the case
 * that left a freed connection in t->refresh (a use-after-free at
 * cache_topo_free, seen under ASan during a failover). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner.h"
#include "cache/topo.c"

static struct core_loop loop;

/* Answers every get-master-addr-by-name with 127.0.0.1:master_port and
 * nothing else, on every connection, until killed. */
static void sentinel_serve(int lfd, int master_port)
{
	struct pollfd p[32];
	unsigned n = 1, i;
	char buf[4096], ans[128];
	int alen;

	alen = snprintf(ans, sizeof(ans), "*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%d\r\n",
			master_port >= 10000 ? 5 : 4, master_port);
	p[0].fd = lfd;
	p[0].events = POLLIN;
	for (;;) {
		if (poll(p, n, -1) <= 0)
			continue;
		if ((p[0].revents & POLLIN) && n < 32) {
			p[n].fd = accept(lfd, NULL, NULL);
			p[n].events = POLLIN;
			p[n].revents = 0;
			if (p[n].fd != -1)
				n++;
		}
		for (i = 1; i < n; i++) {
			ssize_t r;

			if (!(p[i].revents & POLLIN))
				continue;
			r = read(p[i].fd, buf, sizeof(buf) - 1);
			if (r <= 0) {
				close(p[i].fd);
				p[i--] = p[--n];
				continue;
			}
			buf[r] = '\0';
			/* CLIENT SETNAME comes first, in the same write. */
			if (strstr(buf, "SETNAME") != NULL && write(p[i].fd, "+OK\r\n", 5) != 5)
				_exit(1);
			if (strstr(buf, "get-master-addr-by-name") != NULL &&
			    write(p[i].fd, ans, (size_t)alen) != alen)
				_exit(1);
		}
	}
}

static int listen_any(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd == -1 || bind(fd, (struct sockaddr *)&a, sizeof(a)) == -1 || listen(fd, 16) == -1)
		return -1;
	getsockname(fd, (struct sockaddr *)&a, &al);
	*port = ntohs(a.sin_port);
	return fd;
}

static pid_t redis_start(int port)
{
	char p[16];
	pid_t pid;
	int i;

	snprintf(p, sizeof(p), "%d", port);
	if ((pid = fork()) == 0) {
		int fd = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* a failed CHECK leaves no orphan */
		dup2(fd, 1);
		execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200; i++) {	/* ready when it accepts */
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int fd = socket(AF_INET, SOCK_STREAM, 0);

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

TEST(a_refresh_connection_that_times_out_leaves_the_topology)
{
	struct cache_topo_opts o;
	struct cache_topo *t;
	char err[128];
	int lfd, sport, master_port, mfd;
	pid_t pid, redis;
	uint64_t end;

	signal(SIGPIPE, SIG_IGN);
	CHECK(core_loop_init(&loop, err, sizeof(err)) == CORE_OK);
	mfd = listen_any(&master_port);
	CHECK(mfd != -1);
	close(mfd);
	redis = redis_start(master_port);
	CHECK(redis > 0);
	lfd = listen_any(&sport);
	CHECK(lfd != -1);
	if ((pid = fork()) == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sentinel_serve(lfd, master_port);
	}
	close(lfd);

	memset(&o, 0, sizeof(o));
	snprintf(o.sentinels[0].ip, sizeof(o.sentinels[0].ip), "127.0.0.1");
	o.sentinels[0].port = sport;
	o.nsentinels = 1;
	snprintf(o.master_name, sizeof(o.master_name), "m");
	o.connect_timeout = o.command_timeout = o.sentinel_timeout = 150;
	o.check_interval = 1000;
	t = cache_topo_new(&loop, &o);
	CHECK(t != NULL);

	/* An answer (ask becomes refresh), then ROLE verifies the master. */
	end = core_loop_now(&loop) + 3000;
	while (!(t->refresh != NULL && t->have_master) && core_loop_now(&loop) < end)
		core_loop_run_once(&loop, 10);
	CHECK(t->refresh != NULL);
	CHECK(t->have_master);
	/* Nothing asks again while the master is verified: refresh times out
	 * (150 ms), its connection is freed, and the topology lets go of it. */
	end = core_loop_now(&loop) + 150 + 500;
	while (core_loop_now(&loop) < end)
		core_loop_run_once(&loop, 10);
	CHECK(t->have_master);
	CHECK(t->refresh == NULL);
	cache_topo_free(t);		/* closes only what it still owns */
	core_loop_run_once(&loop, 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	kill(redis, SIGKILL);
	waitpid(redis, NULL, 0);
	core_loop_free(&loop);
}
