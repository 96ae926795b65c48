/* The event loop: epoll for fds, a min-heap of timers on monotonic ms,
 * signals through signalfd, and deferred calls run after each batch so no
 * object is ever freed inside its own callback. One loop per thread. */
#ifndef KEEL_CORE_LOOP_H
#define KEEL_CORE_LOOP_H

#include "loop-t.h"

int core_loop_init(struct core_loop *loop, char *err, size_t errlen);
void core_loop_free(struct core_loop *loop);

/* Runs until core_loop_stop(); returns CORE_OK or -errno from epoll. */
int core_loop_run(struct core_loop *loop);
/* One wait (at most timeout_ms, -1 for none) and its dispatch. */
int core_loop_run_once(struct core_loop *loop, int timeout_ms);
void core_loop_stop(struct core_loop *loop);

static inline uint64_t core_loop_now(const struct core_loop *loop)
{
	return loop->now;
}

void core_io_init(struct core_loop *loop, struct core_io *io, int fd,
		  void (*cb)(struct core_io *io, unsigned revents), void *data);
/* Watches exactly `events` (CORE_IO_READ|CORE_IO_WRITE); 0 stops. */
int core_io_set(struct core_io *io, unsigned events);
/* Removes the fd from the loop; does not close it. */
void core_io_stop(struct core_io *io);
/* For an fd the caller closes right after, that no other process and no
 * dup() holds: close() takes it out of epoll, so no syscall is spent. */
void core_io_forget(struct core_io *io);

void core_timer_init(struct core_loop *loop, struct core_timer *t,
		     void (*cb)(struct core_timer *t), void *data);
/* Arms (or re-arms) the timer to fire after_ms from the loop's now. */
int core_timer_start(struct core_timer *t, uint64_t after_ms);
void core_timer_stop(struct core_timer *t);

static inline int core_timer_armed(const struct core_timer *t)
{
	return t->slot != 0;
}

/* Queues fn(d) to run after the current batch; a queued d is left as is. */
void core_loop_defer(struct core_loop *loop, struct core_defer *d,
		     void (*fn)(struct core_defer *d));

/* Memory that holds watchers or timers (an array of probes, say) and may
 * be let go while the loop's current batch still points into it: allocate
 * it with core_loop_calloc() and release it with core_loop_free_later()
 * and the same n and size, which frees it after the batch (or at
 * core_loop_free). The block starts where the caller's memory does (its
 * deferred call sits after it), so leak checkers see the caller's pointer
 * as the block's. NULL is ignored. */
void *core_loop_calloc(size_t n, size_t size);
void core_loop_free_later(struct core_loop *loop, void *p, size_t n, size_t size);
/* A forked child drops the parent's queued calls, freeing the blocks of
 * core_loop_free_later that were among them. */
void core_loop_after_fork(struct core_loop *loop);

/* Delivers signo through the loop instead of an async handler. */
int core_loop_signal(struct core_loop *loop, int signo,
		     void (*cb)(struct core_loop *loop, int signo, void *data),
		     void *data);

#endif
