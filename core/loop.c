/* The event loop. See loop.h for the contract. */
#include <limits.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core.h"
#include "clock.h"
#include "loop.h"

#define LOOP_MAX_EVENTS	256

static void loop_signal_read(struct core_io *io, unsigned revents);

int core_loop_init(struct core_loop *loop, char *err, size_t errlen)
{
	memset(loop, 0, sizeof(*loop));
	loop->sigfd = -1;
	loop->defer_tail = &loop->defer_head;
	loop->now = core_clock_mono_ms();
	sigemptyset(&loop->sigmask);

	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd == -1) {
		snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
		return CORE_ERROR;
	}
	return CORE_OK;
}

static void loop_run_defers(struct core_loop *loop);

void core_loop_free(struct core_loop *loop)
{
	loop_run_defers(loop);		/* objects queued for freeing */
	if (loop->sigfd != -1) {
		core_io_stop(&loop->sigio);
		close(loop->sigfd);
		loop->sigfd = -1;
	}
	if (loop->epfd != -1)
		close(loop->epfd);
	loop->epfd = -1;
	free(loop->heap);
	loop->heap = NULL;
	loop->nheap = loop->heapcap = 0;
}

void core_loop_stop(struct core_loop *loop)
{
	loop->stopping = 1;
}

/* ---- fd watchers -------------------------------------------------------- */

void core_io_init(struct core_loop *loop, struct core_io *io, int fd,
		  void (*cb)(struct core_io *io, unsigned revents), void *data)
{
	memset(io, 0, sizeof(*io));
	io->loop = loop;
	io->fd = fd;
	io->cb = cb;
	io->data = data;
}

int core_io_set(struct core_io *io, unsigned events)
{
	struct epoll_event ev;
	int op;

	if (events == 0) {
		core_io_stop(io);
		return CORE_OK;
	}
	if (io->added && io->events == events)
		return CORE_OK;

	memset(&ev, 0, sizeof(ev));
	ev.events = (events & CORE_IO_READ ? EPOLLIN | EPOLLRDHUP : 0) |
		    (events & CORE_IO_WRITE ? EPOLLOUT : 0);
	ev.data.ptr = io;
	op = io->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(io->loop->epfd, op, io->fd, &ev) == -1)
		return -errno;
	if (!io->added)
		io->loop->nio++;
	io->added = 1;
	io->events = events;
	return CORE_OK;
}

void core_io_stop(struct core_io *io)
{
	if (io->added) {
		/* Failure means the fd was closed already, which also removed it. */
		(void)epoll_ctl(io->loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
		io->loop->nio--;
	}
	io->added = 0;
	io->events = 0;
}

void core_io_forget(struct core_io *io)
{
	if (io->added)
		io->loop->nio--;
	io->added = 0;
	io->events = 0;
}

/* ---- timers: a binary min-heap on (when, seq) --------------------------- */

static int timer_less(const struct core_timer *a, const struct core_timer *b)
{
	if (a->when != b->when)
		return core_clock_before(a->when, b->when);
	return a->seq < b->seq;
}

static void heap_place(struct core_loop *loop, size_t i, struct core_timer *t)
{
	loop->heap[i] = t;
	t->slot = i + 1;
}

static void heap_up(struct core_loop *loop, size_t i)
{
	struct core_timer *t = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!timer_less(t, loop->heap[parent]))
			break;
		heap_place(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_place(loop, i, t);
}

static void heap_down(struct core_loop *loop, size_t i)
{
	struct core_timer *t = loop->heap[i];
	size_t n = loop->nheap;

	for (;;) {
		size_t child = 2 * i + 1;

		if (child >= n)
			break;
		if (child + 1 < n && timer_less(loop->heap[child + 1], loop->heap[child]))
			child++;
		if (!timer_less(loop->heap[child], t))
			break;
		heap_place(loop, i, loop->heap[child]);
		i = child;
	}
	heap_place(loop, i, t);
}

void core_timer_init(struct core_loop *loop, struct core_timer *t,
		     void (*cb)(struct core_timer *t), void *data)
{
	memset(t, 0, sizeof(*t));
	t->loop = loop;
	t->cb = cb;
	t->data = data;
}

int core_timer_start(struct core_timer *t, uint64_t after_ms)
{
	struct core_loop *loop = t->loop;

	core_timer_stop(t);
	if (loop->nheap == loop->heapcap) {
		size_t cap = loop->heapcap ? loop->heapcap * 2 : 64;
		struct core_timer **h = realloc(loop->heap, cap * sizeof(*h));

		if (h == NULL)
			return -ENOMEM;
		loop->heap = h;
		loop->heapcap = cap;
	}
	t->when = loop->now + after_ms;
	t->seq = loop->timer_seq++;
	loop->heap[loop->nheap++] = t;
	heap_up(loop, loop->nheap - 1);
	return CORE_OK;
}

void core_timer_stop(struct core_timer *t)
{
	struct core_loop *loop = t->loop;
	size_t i;

	if (t->slot == 0)
		return;
	i = t->slot - 1;
	t->slot = 0;
	loop->nheap--;
	if (i == loop->nheap)
		return;

	/* Move the last timer into the hole and restore the heap around it. */
	heap_place(loop, i, loop->heap[loop->nheap]);
	if (i > 0 && timer_less(loop->heap[i], loop->heap[(i - 1) / 2]))
		heap_up(loop, i);
	else
		heap_down(loop, i);
}

static void loop_run_timers(struct core_loop *loop)
{
	/* Timers started by these callbacks wait for the next pass, even with
	 * a zero delay, so a timer that re-arms itself cannot spin here. */
	uint64_t limit = loop->timer_seq;

	while (loop->nheap > 0) {
		struct core_timer *t = loop->heap[0];

		if (core_clock_before(loop->now, t->when) || t->seq >= limit)
			break;
		core_timer_stop(t);
		t->cb(t);
	}
}

static int loop_wait_ms(const struct core_loop *loop, int timeout_ms)
{
	uint64_t due;

	if (loop->defer_head != NULL || loop->stopping)
		return 0;
	if (loop->nheap == 0)
		return timeout_ms;
	due = loop->heap[0]->when;
	if (!core_clock_before(loop->now, due))
		return 0;
	due -= loop->now;
	if (timeout_ms >= 0 && due > (uint64_t)timeout_ms)
		return timeout_ms;
	return due > INT_MAX ? INT_MAX : (int)due;
}

/* ---- deferred calls ------------------------------------------------------ */

void core_loop_defer(struct core_loop *loop, struct core_defer *d,
		     void (*fn)(struct core_defer *d))
{
	if (d->queued)
		return;
	d->queued = 1;
	d->fn = fn;
	d->next = NULL;
	*loop->defer_tail = d;
	loop->defer_tail = &d->next;
}

static void loop_run_defers(struct core_loop *loop)
{
	struct core_defer *d;

	/* Calls queued by these calls run in the same pass. */
	while ((d = loop->defer_head) != NULL) {
		loop->defer_head = d->next;
		if (loop->defer_head == NULL)
			loop->defer_tail = &loop->defer_head;
		d->queued = 0;
		d->fn(d);
	}
}

/* ---- signals ------------------------------------------------------------- */

int core_loop_signal(struct core_loop *loop, int signo,
		     void (*cb)(struct core_loop *loop, int signo, void *data),
		     void *data)
{
	int fd, rc;

	if (signo <= 0 || signo >= (int)CORE_ARRAY_SIZE(loop->sig))
		return -EINVAL;
	loop->sig[signo].cb = cb;
	loop->sig[signo].data = data;
	sigaddset(&loop->sigmask, signo);
	if (pthread_sigmask(SIG_BLOCK, &loop->sigmask, NULL) != 0)
		return -EINVAL;

	fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd == -1)
		return -errno;
	if (loop->sigfd == -1) {
		loop->sigfd = fd;
		core_io_init(loop, &loop->sigio, fd, loop_signal_read, NULL);
		rc = core_io_set(&loop->sigio, CORE_IO_READ);
		if (rc != CORE_OK)
			return rc;
	}
	return CORE_OK;
}

static void loop_signal_read(struct core_io *io, unsigned revents)
{
	struct core_loop *loop = io->loop;
	struct signalfd_siginfo si;
	ssize_t n;

	(void)revents;
	for (;;) {
		n = read(io->fd, &si, sizeof(si));
		if (n != (ssize_t)sizeof(si))
			break;
		if (si.ssi_signo < CORE_ARRAY_SIZE(loop->sig) &&
		    loop->sig[si.ssi_signo].cb != NULL)
			loop->sig[si.ssi_signo].cb(loop, (int)si.ssi_signo,
						   loop->sig[si.ssi_signo].data);
	}
}

/* ---- memory freed after the batch ------------------------------------------ */

/* What sits after the caller's memory: the deferred call, and how far
 * back the block begins (kept out of struct core_defer, which every
 * connection embeds). */
struct loop_block_tail {
	struct core_defer d;
	size_t		  off;
};

/* Where the tail sits: after n * size bytes, aligned. */
static size_t loop_block_tail(size_t n, size_t size)
{
	size_t a = _Alignof(struct loop_block_tail);

	return (n * size + a - 1) / a * a;
}

void *core_loop_calloc(size_t n, size_t size)
{
	if (size != 0 && n > (SIZE_MAX - 2 * sizeof(struct loop_block_tail)) / size)
		return NULL;
	return calloc(1, loop_block_tail(n, size) + sizeof(struct loop_block_tail));
}

static void loop_block_reap(struct core_defer *d)
{
	struct loop_block_tail *t = CORE_CONTAINER_OF(d, struct loop_block_tail, d);

	free((char *)t - t->off);
}

void core_loop_free_later(struct core_loop *loop, void *p, size_t n, size_t size)
{
	struct loop_block_tail *t;

	if (p == NULL)
		return;
	if (loop == NULL) {
		free(p);
		return;
	}
	t = (struct loop_block_tail *)(void *)((char *)p + loop_block_tail(n, size));
	t->off = loop_block_tail(n, size);
	core_loop_defer(loop, &t->d, loop_block_reap);
}

/* In a child just forked: the parent's queued calls are the parent's
 * business, but memory it was about to free is this process's copy, so
 * it is freed here rather than lost when the child builds its own loop. */
void core_loop_after_fork(struct core_loop *loop)
{
	struct core_defer *d, *next;

	for (d = loop->defer_head; d != NULL; d = next) {
		next = d->next;
		if (d->fn == loop_block_reap)
			loop_block_reap(d);
	}
	loop->defer_head = NULL;
	loop->defer_tail = &loop->defer_head;
}

/* ---- running ------------------------------------------------------------- */

int core_loop_run_once(struct core_loop *loop, int timeout_ms)
{
	struct epoll_event events[LOOP_MAX_EVENTS];
	int i, n;

	n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS,
		       loop_wait_ms(loop, timeout_ms));
	if (n == -1 && errno != EINTR)
		return -errno;
	loop->now = core_clock_mono_ms();

	for (i = 0; i < n; i++) {
		struct core_io *io = events[i].data.ptr;
		unsigned ev = events[i].events, revents = 0;

		if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			revents |= CORE_IO_READ;
		if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			revents |= CORE_IO_WRITE;
		/* An earlier callback of this batch may have stopped it. */
		revents &= io->events;
		if (revents == 0) {
			/* Errors are reported to whoever still listens at all. */
			if (io->added && (ev & (EPOLLHUP | EPOLLERR)))
				revents = io->events;
			else
				continue;
		}
		io->cb(io, revents);
	}

	loop_run_timers(loop);
	loop_run_defers(loop);
	return CORE_OK;
}

int core_loop_run(struct core_loop *loop)
{
	int rc;

	loop->stopping = 0;
	while (!loop->stopping) {
		rc = core_loop_run_once(loop, -1);
		if (rc != CORE_OK)
			return rc;
	}
	return CORE_OK;
}
