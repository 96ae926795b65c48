/* An open-loop HTTP load generator for `make bench`: requests leave on a
 * fixed schedule whether or not earlier ones were answered, and latency is
 * counted from each request's scheduled time. (A closed-loop tool's few
 * connections all stall at once behind a frozen server and then send
 * nothing, which hides the damage.) Like wrk2 it keeps connections alive,
 * one request in flight on each, and opens another when none is idle.
 *
 *   openloop HOST PORT PATH RATE SECONDS [TIMEOUT_S]
 *
 * Prints one JSON object: sent, ok, failed, slow (> 1 s), max latency. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int		 fd;
	int		 busy;		/* a request is in flight */
	double		 scheduled;	/* its scheduled time, s since start */
	size_t		 sent;
	char		 in[4096];
	size_t		 got;
	struct conn	*next_idle;
};

static struct {
	struct sockaddr_in sa;
	struct timespec	 t0;
	int		 ep;
	char		 request[512];
	size_t		 reqlen;
	struct conn	*idle;
	long		 ok, failed, slow, busy;
	double		 max_lat;
} ol;

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - ol.t0.tv_sec) + (double)(t.tv_nsec - ol.t0.tv_nsec) / 1e9;
}

static void conn_drop(struct conn *c)
{
	epoll_ctl(ol.ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static void conn_write(struct conn *c)
{
	ssize_t k = write(c->fd, ol.request + c->sent, ol.reqlen - c->sent);

	if (k > 0)
		c->sent += (size_t)k;
}

static void send_one(double scheduled)
{
	struct conn *c = ol.idle;
	int one = 1;

	if (c != NULL) {
		ol.idle = c->next_idle;
	} else {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET };

		c = calloc(1, sizeof(*c));
		c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (c->fd == -1) {
			ol.failed++;
			free(c);
			return;
		}
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(c->fd, (struct sockaddr *)&ol.sa, sizeof(ol.sa)) == -1 &&
		    errno != EINPROGRESS) {
			ol.failed++;
			close(c->fd);
			free(c);
			return;
		}
		ev.data.ptr = c;
		epoll_ctl(ol.ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	c->busy = 1;
	c->scheduled = scheduled;
	c->sent = 0;
	c->got = 0;
	ol.busy++;
	conn_write(c);
}

/* The response is complete when its head and Content-Length bytes are in. */
static int response_done(struct conn *c, int *good)
{
	char *end = memmem(c->in, c->got, "\r\n\r\n", 4), *cl;
	size_t head, len = 0;

	if (end == NULL)
		return 0;
	head = (size_t)(end - c->in) + 4;
	c->in[head - 1] = '\0';
	cl = strcasestr(c->in, "\r\ncontent-length:");
	c->in[head - 1] = '\n';
	if (cl != NULL)
		len = (size_t)strtoul(cl + 17, NULL, 10);
	if (c->got < head + len)
		return 0;
	*good = memcmp(c->in, "HTTP/1.1 2", 10) == 0;
	return 1;
}

static void conn_read(struct conn *c, double t)
{
	int good = 0;
	ssize_t k;

	for (;;) {
		k = read(c->fd, c->in + c->got, sizeof(c->in) - c->got);
		if (k > 0) {
			c->got += (size_t)k;
			if (c->got == sizeof(c->in))
				break;
			continue;
		}
		if (k == -1 && errno == EAGAIN)
			break;
		/* Closed or failed: whatever it carried did not finish. */
		if (c->busy) {
			ol.failed++;
			ol.busy--;
		}
		if (!c->busy) {
			struct conn **pp;

			for (pp = &ol.idle; *pp != NULL; pp = &(*pp)->next_idle)
				if (*pp == c) {
					*pp = c->next_idle;
					break;
				}
		}
		conn_drop(c);
		return;
	}
	if (!c->busy || !response_done(c, &good))
		return;
	if (good) {
		double lat = t - c->scheduled;

		ol.ok++;
		if (lat > 1.0)
			ol.slow++;
		if (lat > ol.max_lat)
			ol.max_lat = lat;
	} else
		ol.failed++;
	ol.busy--;
	c->busy = 0;
	c->next_idle = ol.idle;
	ol.idle = c;
}

int main(int argc, char **argv)
{
	struct epoll_event evs[512];
	struct rlimit rl;
	double rate, seconds, timeout = 30.0;
	long sent = 0, total;
	int i;

	if (argc < 6) {
		fprintf(stderr, "usage: openloop HOST PORT PATH RATE SECONDS [TIMEOUT_S]\n");
		return 2;
	}
	ol.sa.sin_family = AF_INET;
	inet_pton(AF_INET, argv[1], &ol.sa.sin_addr);
	ol.sa.sin_port = htons((unsigned short)atoi(argv[2]));
	rate = atof(argv[4]);
	seconds = atof(argv[5]);
	if (argc > 6)
		timeout = atof(argv[6]);
	total = (long)(rate * seconds);
	ol.reqlen = (size_t)snprintf(ol.request, sizeof(ol.request),
				     "GET %s HTTP/1.1\r\nHost: bench\r\n\r\n", argv[3]);
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);

	ol.ep = epoll_create1(0);
	clock_gettime(CLOCK_MONOTONIC, &ol.t0);
	for (;;) {
		double t = now_s();
		int n, wait_ms;

		while (sent < total && (double)sent / rate <= t) {
			send_one((double)sent / rate);
			sent++;
		}
		if (sent >= total && ol.busy == 0)
			break;
		if (t > seconds + timeout) {
			ol.failed += ol.busy;	/* never answered */
			break;
		}
		wait_ms = sent < total ? (int)(((double)sent / rate - t) * 1000) : 100;
		n = epoll_wait(ol.ep, evs, 512, wait_ms < 0 ? 0 : wait_ms > 100 ? 100 : wait_ms);
		t = now_s();
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if ((evs[i].events & EPOLLOUT) && c->busy && c->sent < ol.reqlen)
				conn_write(c);
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_read(c, t);
		}
	}
	printf("{\"sent\": %ld, \"ok\": %ld, \"failed\": %ld, \"slow\": %ld, \"max_s\": %.3f}\n",
	       sent, ol.ok, ol.failed, ol.slow, ol.max_lat);
	return 0;
}
