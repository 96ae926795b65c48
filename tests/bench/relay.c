/*
 * The floor under every proxy on this machine: a TCP relay that does
 * nothing but move bytes between a client and its own origin connection.
 * No parsing, no routing, no logging, no timers. `make bench` runs it
 * beside keel, nginx and HAProxy; what it spends per request is what the
 * kernel charges any proxy for two reads and two writes, and no proxy
 * written against these interfaces spends less.
 *
 *   relay epoll|uring PORT ORIGIN_PORT
 *
 * epoll: readiness, then read(2) and write(2), as keel, nginx and HAProxy
 * do. uring: io_uring with one io_uring_enter(2) per turn of the loop for
 * every receive and send of that turn, the batching nothing else here
 * can do. A bench tool: loopback only, and it stops on SIGTERM.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RELAY_BUF	16384

/* One direction of a relayed connection: what is read from fd is written
 * to peer->fd. Two of them make a pair; the pair is freed when both are
 * done and nothing of theirs is in flight. */
struct half {
	int		 fd;
	struct half	*peer;
	char		 buf[RELAY_BUF];
	size_t		 len, off;	/* bytes read, bytes written of them */
	unsigned	 inflight;	/* io_uring operations not completed */
	unsigned	 dead;
	struct half	*next_dead;	/* epoll: freed after the batch */
};

static struct sockaddr_in origin;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl == -1 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A client accepted on cfd gets its own origin connection. */
static struct half *pair_new(int cfd, int want_nonblock)
{
	struct half *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	int ofd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (a == NULL || b == NULL || ofd == -1)
		die("pair");
	if (connect(ofd, (struct sockaddr *)&origin, sizeof(origin)) == -1)
		die("connect to origin");
	if (want_nonblock && nonblock(ofd) == -1)
		die("fcntl");
	nodelay(cfd);
	nodelay(ofd);
	a->fd = cfd;
	b->fd = ofd;
	a->peer = b;
	b->peer = a;
	return a;
}

/* ---- io_uring, spoken through the raw system calls --------------------- */

struct ring {
	int		 fd;
	unsigned	*sq_tail, sq_mask, *sq_array;
	unsigned	*cq_head, *cq_tail, cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	unsigned	 pending;	/* queued, not yet submitted */
};

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND };

static void ring_init(struct ring *r, unsigned entries)
{
	struct io_uring_params p;
	size_t sq_len, cq_len;
	char *sq, *cq;

	memset(&p, 0, sizeof(p));
	memset(r, 0, sizeof(*r));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	r->fd = (int)syscall(SYS_io_uring_setup, entries, &p);
	if (r->fd == -1)
		die("io_uring_setup");
	sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		  r->fd, IORING_OFF_SQ_RING);
	cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		  r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
		       IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
		die("mmap ring");
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
}

static int ring_enter(struct ring *r, unsigned wait)
{
	int n = (int)syscall(SYS_io_uring_enter, r->fd, r->pending, wait,
			     wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);

	if (n == -1)
		return errno == EINTR || errno == EBUSY ? 0 : -1;
	r->pending -= (unsigned)n;
	return 0;
}

/* The next free entry; the ring is flushed when full. The kernel takes
 * entries between sq tail updates, so each is filled before the tail. */
static struct io_uring_sqe *ring_sqe(struct ring *r, uint64_t data)
{
	unsigned tail = *r->sq_tail, i = tail & r->sq_mask;
	struct io_uring_sqe *e;

	if (r->pending > r->sq_mask && ring_enter(r, 0) == -1)
		die("io_uring_enter");
	e = &r->sqes[i];
	memset(e, 0, sizeof(*e));
	e->user_data = data;
	r->sq_array[i] = i;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	r->pending++;
	return e;
}

static void uring_recv(struct ring *r, struct half *h)
{
	struct io_uring_sqe *e = ring_sqe(r, (uintptr_t)h | OP_RECV);

	e->opcode = IORING_OP_RECV;
	e->fd = h->fd;
	e->addr = (uintptr_t)h->buf;
	e->len = sizeof(h->buf);
	h->inflight++;
}

static void uring_send(struct ring *r, struct half *h)
{
	struct io_uring_sqe *e = ring_sqe(r, (uintptr_t)h | OP_SEND);

	e->opcode = IORING_OP_SEND;
	e->fd = h->peer->fd;
	e->addr = (uintptr_t)(h->buf + h->off);
	e->len = (unsigned)(h->len - h->off);
	h->inflight++;
}

/* One side ended: both sockets are shut so whatever is in flight on the
 * other side completes, and the pair goes when the last one has. */
static void uring_end(struct half *h)
{
	if (!h->dead) {
		h->dead = h->peer->dead = 1;
		(void)shutdown(h->fd, SHUT_RDWR);
		(void)shutdown(h->peer->fd, SHUT_RDWR);
	}
	if (h->inflight == 0 && h->peer->inflight == 0) {
		close(h->fd);
		close(h->peer->fd);
		free(h->peer);
		free(h);
	}
}

static void run_uring(int lfd)
{
	struct ring r;
	struct io_uring_sqe *e;

	ring_init(&r, 4096);
	e = ring_sqe(&r, OP_ACCEPT);
	e->opcode = IORING_OP_ACCEPT;
	e->fd = lfd;
	e->ioprio = IORING_ACCEPT_MULTISHOT;
	e->accept_flags = SOCK_CLOEXEC;

	for (;;) {
		unsigned head, tail;

		if (ring_enter(&r, 1) == -1)
			die("io_uring_enter");
		head = *r.cq_head;
		tail = __atomic_load_n(r.cq_tail, __ATOMIC_ACQUIRE);
		for (; head != tail; head++) {
			struct io_uring_cqe *c = &r.cqes[head & r.cq_mask];
			struct half *h = (struct half *)(uintptr_t)(c->user_data & ~7ULL);
			int res = c->res;

			switch (c->user_data & 7) {
			case OP_ACCEPT:
				if (res >= 0) {
					h = pair_new(res, 0);
					uring_recv(&r, h);
					uring_recv(&r, h->peer);
				}
				if (!(c->flags & IORING_CQE_F_MORE))
					die("multishot accept ended");
				break;
			case OP_RECV:
				h->inflight--;
				if (res <= 0 || h->dead) {
					uring_end(h);
					break;
				}
				h->len = (size_t)res;
				h->off = 0;
				uring_send(&r, h);
				break;
			case OP_SEND:
				h->inflight--;
				if (res < 0 || h->dead) {
					uring_end(h);
					break;
				}
				h->off += (size_t)res;
				if (h->off < h->len)
					uring_send(&r, h);
				else
					uring_recv(&r, h);
				break;
			}
		}
		__atomic_store_n(r.cq_head, head, __ATOMIC_RELEASE);
	}
}

/* ---- epoll: readiness, then read and write ------------------------------ */

static void epoll_watch(int ep, int op, struct half *h, unsigned events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = h;
	if (epoll_ctl(ep, op, h->fd, &ev) == -1 && op != EPOLL_CTL_DEL)
		die("epoll_ctl");
}

/* Later events of this batch may name either half: the pair is closed
 * now and freed after the batch. */
static struct half *dead_pairs;

static void epoll_end(int ep, struct half *h)
{
	if (h->dead)
		return;
	h->dead = h->peer->dead = 1;
	epoll_watch(ep, EPOLL_CTL_DEL, h, 0);
	epoll_watch(ep, EPOLL_CTL_DEL, h->peer, 0);
	close(h->fd);
	close(h->peer->fd);
	h->next_dead = dead_pairs;
	dead_pairs = h;
}

/* Writes what h holds to its peer. A short write stops h's reading and
 * waits for the peer to be writable; 1 when all of it went. */
static int epoll_flush(int ep, struct half *h)
{
	while (h->off < h->len) {
		ssize_t n = write(h->peer->fd, h->buf + h->off, h->len - h->off);

		if (n == -1 && errno == EAGAIN) {
			epoll_watch(ep, EPOLL_CTL_MOD, h, 0);
			epoll_watch(ep, EPOLL_CTL_MOD, h->peer, EPOLLIN | EPOLLOUT);
			return 0;
		}
		if (n <= 0)
			return -1;
		h->off += (size_t)n;
	}
	return 1;
}

static void run_epoll(int lfd)
{
	struct epoll_event evs[256];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct half listener = { .fd = lfd };

	if (ep == -1)
		die("epoll_create1");
	epoll_watch(ep, EPOLL_CTL_ADD, &listener, EPOLLIN);
	for (;;) {
		int i, n = epoll_wait(ep, evs, 256, -1);

		if (n == -1 && errno != EINTR)
			die("epoll_wait");
		for (i = 0; i < n; i++) {
			struct half *h = evs[i].data.ptr;
			ssize_t got;

			if (h->dead)
				continue;
			if (h == &listener) {
				int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

				if (fd == -1)
					continue;
				h = pair_new(fd, 1);
				epoll_watch(ep, EPOLL_CTL_ADD, h, EPOLLIN);
				epoll_watch(ep, EPOLL_CTL_ADD, h->peer, EPOLLIN);
				continue;
			}
			if (evs[i].events & EPOLLOUT) {
				/* h's peer has drained: finish its write, read again. */
				struct half *w = h->peer;
				int rc = epoll_flush(ep, w);

				if (rc == -1) {
					epoll_end(ep, h);
					continue;
				}
				if (rc == 1) {
					epoll_watch(ep, EPOLL_CTL_MOD, h, EPOLLIN);
					epoll_watch(ep, EPOLL_CTL_MOD, w, EPOLLIN);
				}
				continue;
			}
			got = read(h->fd, h->buf, sizeof(h->buf));
			if (got == -1 && errno == EAGAIN)
				continue;
			if (got <= 0) {
				epoll_end(ep, h);
				continue;
			}
			h->len = (size_t)got;
			h->off = 0;
			if (epoll_flush(ep, h) == -1)
				epoll_end(ep, h);
		}
		while (dead_pairs != NULL) {
			struct half *h = dead_pairs;

			dead_pairs = h->next_dead;
			free(h->peer);
			free(h);
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in a;
	int lfd, one = 1;

	if (argc != 4 || (strcmp(argv[1], "epoll") != 0 && strcmp(argv[1], "uring") != 0)) {
		fprintf(stderr, "usage: relay epoll|uring PORT ORIGIN_PORT\n");
		return 2;
	}
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	origin = a;
	a.sin_port = htons((uint16_t)atoi(argv[2]));
	origin.sin_port = htons((uint16_t)atoi(argv[3]));

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd == -1)
		die("socket");
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) == -1 || listen(lfd, 4096) == -1)
		die("listen");
	if (strcmp(argv[1], "uring") == 0)
		run_uring(lfd);
	else
		run_epoll(lfd);
	return 0;
}
