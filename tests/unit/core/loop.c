/* Tests of core/loop.c: timers, fd watchers, deferred calls, signals. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "runner.h"
#include "core/loop.c"

static struct core_loop loop;

static void setup(void)
{
	char err[128];

	CHECK(core_loop_init(&loop, err, sizeof(err)) == CORE_OK);
}

/* ---- timers ---- */

static int fired[64], nfired;

static void on_timer(struct core_timer *t)
{
	fired[nfired++] = (int)(intptr_t)t->data;
}

static void check_heap(void)
{
	size_t i;

	for (i = 0; i < loop.nheap; i++) {
		CHECK_INT(loop.heap[i]->slot, ==, i + 1);
		if (i > 0)
			CHECK(!timer_less(loop.heap[i], loop.heap[(i - 1) / 2]));
	}
}

TEST(timers_fire_in_deadline_order_with_ties_in_start_order)
{
	static const int delays[] = { 30, 10, 20, 10, 0, 50, 40, 20 };
	struct core_timer t[8];
	size_t i;

	setup();
	for (i = 0; i < 8; i++) {
		core_timer_init(&loop, &t[i], on_timer, (void *)(intptr_t)i);
		CHECK(core_timer_start(&t[i], (uint64_t)delays[i]) == CORE_OK);
	}
	check_heap();
	while (nfired < 8)
		CHECK(core_loop_run_once(&loop, 1000) == CORE_OK);
	CHECK_INT(fired[0], ==, 4);
	CHECK_INT(fired[1], ==, 1);
	CHECK_INT(fired[2], ==, 3);
	CHECK_INT(fired[3], ==, 2);
	CHECK_INT(fired[4], ==, 7);
	CHECK_INT(fired[5], ==, 0);
	CHECK_INT(fired[6], ==, 6);
	CHECK_INT(fired[7], ==, 5);
}

TEST(timer_heap_survives_random_start_and_stop)
{
	static struct core_timer t[500];
	size_t i, armed = 0;

	setup();
	srand(7);
	for (i = 0; i < 500; i++)
		core_timer_init(&loop, &t[i], on_timer, NULL);
	for (i = 0; i < 5000; i++) {
		struct core_timer *x = &t[rand() % 500];

		if (rand() % 3 == 0)
			core_timer_stop(x);
		else
			CHECK(core_timer_start(x, (uint64_t)(rand() % 100000)) == CORE_OK);
		if (i % 97 == 0)
			check_heap();
	}
	check_heap();
	for (i = 0; i < 500; i++)
		armed += core_timer_armed(&t[i]);
	CHECK_INT(armed, ==, loop.nheap);
	/* Popping in order gives non-decreasing deadlines. */
	{
		uint64_t last = 0;

		while (loop.nheap > 0) {
			struct core_timer *x = loop.heap[0];

			CHECK(x->when >= last);
			last = x->when;
			core_timer_stop(x);
			check_heap();
		}
	}
}

static int spins;

static void rearm_zero(struct core_timer *t)
{
	spins++;
	core_timer_start(t, 0);
}

TEST(a_timer_rearming_itself_with_zero_delay_does_not_spin_one_pass)
{
	struct core_timer t;

	setup();
	core_timer_init(&loop, &t, rearm_zero, NULL);
	core_timer_start(&t, 0);
	CHECK(core_loop_run_once(&loop, 0) == CORE_OK);
	CHECK_INT(spins, ==, 1);
	CHECK(core_loop_run_once(&loop, 0) == CORE_OK);
	CHECK_INT(spins, ==, 2);
}

TEST(timer_stopped_before_due_never_fires)
{
	struct core_timer a, b;

	setup();
	core_timer_init(&loop, &a, on_timer, (void *)1);
	core_timer_init(&loop, &b, on_timer, (void *)2);
	core_timer_start(&a, 5);
	core_timer_start(&b, 10);
	core_timer_stop(&a);
	core_timer_stop(&a);		/* twice is harmless */
	while (nfired == 0)
		core_loop_run_once(&loop, 100);
	CHECK_INT(nfired, ==, 1);
	CHECK_INT(fired[0], ==, 2);
}

/* ---- fd watchers ---- */

struct pipe_w {
	int		fds[2];
	struct core_io	io;
	int		calls;
	struct pipe_w	*victim;	/* stopped by this one's callback */
};

static void on_pipe(struct core_io *io, unsigned revents)
{
	struct pipe_w *p = io->data;
	char c;

	CHECK(revents & CORE_IO_READ);
	p->calls++;
	CHECK_INT(read(io->fd, &c, 1), ==, 1);
	if (p->victim != NULL)
		core_io_stop(&p->victim->io);
}

static void pipe_open(struct pipe_w *p)
{
	memset(p, 0, sizeof(*p));
	CHECK(pipe2(p->fds, O_NONBLOCK | O_CLOEXEC) == 0);
	core_io_init(&loop, &p->io, p->fds[0], on_pipe, p);
	CHECK(core_io_set(&p->io, CORE_IO_READ) == CORE_OK);
}

TEST(readable_fd_calls_back_and_stopped_fd_does_not)
{
	struct pipe_w p;

	setup();
	pipe_open(&p);
	CHECK_INT(write(p.fds[1], "x", 1), ==, 1);
	CHECK(core_loop_run_once(&loop, 1000) == CORE_OK);
	CHECK_INT(p.calls, ==, 1);
	core_io_stop(&p.io);
	CHECK_INT(loop.nio, ==, 0);
	CHECK_INT(write(p.fds[1], "x", 1), ==, 1);
	CHECK(core_loop_run_once(&loop, 20) == CORE_OK);
	CHECK_INT(p.calls, ==, 1);
}

TEST(watcher_stopped_by_an_earlier_callback_in_the_batch_is_skipped)
{
	struct pipe_w a, b;

	setup();
	pipe_open(&a);
	pipe_open(&b);
	a.victim = &b;
	b.victim = &a;
	CHECK_INT(write(a.fds[1], "x", 1), ==, 1);
	CHECK_INT(write(b.fds[1], "x", 1), ==, 1);
	CHECK(core_loop_run_once(&loop, 1000) == CORE_OK);
	/* Both were ready; whichever ran first stopped the other. */
	CHECK_INT(a.calls + b.calls, ==, 1);
}

TEST(writable_interest_can_be_switched)
{
	struct pipe_w p;

	setup();
	pipe_open(&p);
	core_io_init(&loop, &p.io, p.fds[1], on_pipe, &p);
	CHECK(core_io_set(&p.io, CORE_IO_WRITE) == CORE_OK);
	CHECK_INT(p.io.events, ==, CORE_IO_WRITE);
	CHECK(core_io_set(&p.io, CORE_IO_READ | CORE_IO_WRITE) == CORE_OK);
	CHECK(core_io_set(&p.io, 0) == CORE_OK);
	CHECK(!p.io.added);
}

/* ---- deferred calls ---- */

struct obj {
	struct core_defer d;
	int		  id;
};

static int order[8], norder;
static struct obj objs[3];

static void on_defer(struct core_defer *d)
{
	struct obj *o = CORE_CONTAINER_OF(d, struct obj, d);

	order[norder++] = o->id;
	if (o->id == 0)		/* queued from a deferred call: same pass */
		core_loop_defer(&loop, &objs[2].d, on_defer);
}

TEST(deferred_calls_run_once_in_order_after_the_batch)
{
	setup();
	objs[0].id = 0;
	objs[1].id = 1;
	objs[2].id = 2;
	core_loop_defer(&loop, &objs[0].d, on_defer);
	core_loop_defer(&loop, &objs[1].d, on_defer);
	core_loop_defer(&loop, &objs[1].d, on_defer);	/* already queued */
	CHECK_INT(norder, ==, 0);
	CHECK(core_loop_run_once(&loop, 1000) == CORE_OK);
	CHECK_INT(norder, ==, 3);
	CHECK_INT(order[0], ==, 0);
	CHECK_INT(order[1], ==, 1);
	CHECK_INT(order[2], ==, 2);
}

/* ---- signals ---- */

static int got_signal;

static void on_signal(struct core_loop *l, int signo, void *data)
{
	got_signal = signo;
	CHECK(data == &got_signal);
	core_loop_stop(l);
}

TEST(signals_are_delivered_through_the_loop)
{
	setup();
	CHECK(core_loop_signal(&loop, SIGUSR1, on_signal, &got_signal) == CORE_OK);
	CHECK(core_loop_signal(&loop, SIGUSR2, on_signal, &got_signal) == CORE_OK);
	CHECK(raise(SIGUSR2) == 0);	/* blocked: waits in the signalfd */
	CHECK(core_loop_run(&loop) == CORE_OK);
	CHECK_INT(got_signal, ==, SIGUSR2);
	core_loop_free(&loop);
}

TEST(run_once_honours_its_timeout)
{
	uint64_t t0;

	setup();
	t0 = core_clock_mono_ms();
	CHECK(core_loop_run_once(&loop, 30) == CORE_OK);
	CHECK(core_clock_mono_ms() - t0 >= 25);
	CHECK(loop.now >= t0 + 25);
}

/* ---- memory freed after the batch ---- */

static struct core_io *late_io;
static int late_calls;

static void on_late(struct core_io *io, unsigned revents)
{
	(void)io;
	(void)revents;
	late_calls++;
}

/* The first callback of a batch lets go of the array that holds the
 * second watcher: the loop must still be able to read that watcher
 * (under ASan a plain free here is a use-after-free). */
static void on_first(struct core_io *io, unsigned revents)
{
	(void)revents;
	core_io_stop(io);
	core_io_stop(late_io);
	core_loop_free_later(io->loop, late_io, 4, sizeof(*late_io));
}

TEST(memory_freed_later_stays_readable_until_the_batch_ends)
{
	struct core_io first;
	int a[2], b[2];

	setup();
	CHECK(pipe(a) == 0 && pipe(b) == 0);
	late_io = core_loop_calloc(4, sizeof(*late_io));
	CHECK(late_io != NULL);
	core_io_init(&loop, &first, a[0], on_first, NULL);
	core_io_init(&loop, late_io, b[0], on_late, NULL);
	CHECK(core_io_set(&first, CORE_IO_READ) == CORE_OK);
	CHECK(core_io_set(late_io, CORE_IO_READ) == CORE_OK);
	CHECK(write(a[1], "x", 1) == 1 && write(b[1], "x", 1) == 1);
	CHECK(core_loop_run_once(&loop, 1000) == CORE_OK);
	CHECK_INT(late_calls, ==, 0);		/* stopped by the first: skipped */
	CHECK(loop.defer_head == NULL);		/* and freed after the batch */
	core_loop_free(&loop);
}

TEST(a_forked_child_frees_the_parents_pending_blocks)
{
	void *p;

	setup();
	p = core_loop_calloc(3, 100);
	CHECK(p != NULL);
	core_loop_free_later(&loop, p, 3, 100);
	CHECK(loop.defer_head != NULL);
	core_loop_after_fork(&loop);		/* LeakSanitizer: nothing lost */
	CHECK(loop.defer_head == NULL);
	core_loop_free(&loop);
}
