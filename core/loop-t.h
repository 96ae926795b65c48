/* Types of the event loop: fd watchers, timers, deferred calls. */
#ifndef KEEL_CORE_LOOP_T_H
#define KEEL_CORE_LOOP_T_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define CORE_IO_READ	0x1
#define CORE_IO_WRITE	0x2

struct core_loop;

/* Watches one non-blocking fd. */
struct core_io {
	int		  fd;
	unsigned	  events;	/* CORE_IO_*: what is watched now */
	unsigned	  added;	/* the fd is in the epoll set */
	void		(*cb)(struct core_io *io, unsigned revents);
	void		 *data;
	struct core_loop *loop;
};

/* Fires once, `after` ms from when it is started; restart it to repeat. */
struct core_timer {
	uint64_t	  when;		/* monotonic ms */
	uint64_t	  seq;		/* start order: ties fire first-started first */
	size_t		  slot;		/* heap index + 1; 0 when not armed */
	void		(*cb)(struct core_timer *t);
	void		 *data;
	struct core_loop *loop;
};

/* A call queued to run after the current batch of events; embed it in the
 * object whose teardown it performs so queueing never allocates. */
struct core_defer {
	struct core_defer *next;
	void		 (*fn)(struct core_defer *d);
	unsigned	   queued;
};

struct core_loop_signal {
	void		(*cb)(struct core_loop *loop, int signo, void *data);
	void		 *data;
};

struct core_loop {
	int		   epfd;
	int		   sigfd;	/* signalfd for the signals we handle */
	sigset_t	   sigmask;
	struct core_io	   sigio;
	struct core_loop_signal sig[65];

	struct core_timer **heap;	/* min-heap on (when, seq) */
	size_t		   nheap;
	size_t		   heapcap;
	uint64_t	   timer_seq;

	struct core_defer *defer_head;
	struct core_defer **defer_tail;

	uint64_t	   now;		/* monotonic ms, refreshed after each wait */
	unsigned	   stopping;
	unsigned	   nio;		/* watchers in the epoll set */
};

#endif
