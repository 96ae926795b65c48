/*
 * Supervision of keel's processes.
 *
 * A part is a process some other process keeps alive: each proxy worker
 * (kept by the master) and the master itself (kept by the supervisor,
 * `keel --supervise` or keel as PID 1). A part proves progress by writing
 * its beat, a monotonic timestamp in memory shared with its keeper, from a
 * timer on its own loop: a loop that stops turning (SIGSTOP, a blocking
 * call, an endless loop) stops the beat. Its keeper kills a part whose
 * beat is older than supervise.progress_limit, and restarts one that
 * exited after a delay that doubles from backoff_min to backoff_max,
 * jittered. After supervise.restarts restarts within supervise.window the
 * next exit marks the part failed: it stays down, "part NAME" is raised,
 * and supervise.escalation says whether the box is to be reset.
 *
 * This file keeps the records and the arithmetic; main.c forks and reaps.
 */
#ifndef KEEL_CORE_SUPERVISE_H
#define KEEL_CORE_SUPERVISE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "conf-t.h"

#define CORE_PART_RECENT	64	/* restarts remembered (supervise.restarts max) */
#define CORE_SUP_BEATS		256	/* beat cells: one per live worker */
#define CORE_SUP_START_GRACE_MS	30000	/* before its first beat, a part starting up */

enum core_part_state {
	CORE_PART_RUNNING,
	CORE_PART_WAITING,	/* exited; starts again at next */
	CORE_PART_FAILED,	/* too many restarts: left down */
};

struct core_part_policy {
	uint64_t	 progress;	/* ms without a beat that make a stall */
	uint64_t	 backoff_min;	/* ms */
	uint64_t	 backoff_max;	/* ms */
	unsigned	 restarts;	/* in window; the next exit fails the part */
	uint64_t	 window;	/* ms */
	bool		 reboot;	/* escalation: reset the box */
};

struct core_part {
	char		 name[24];	/* "worker 1", "master" */
	enum core_part_state state;
	pid_t		 pid;		/* while running */
	uint64_t	 started;	/* monotonic ms it last started */
	uint64_t	 next;		/* waiting: when it may start */
	unsigned	 restarts;	/* since keel started */
	unsigned	 step;		/* the next delay is backoff_min << step */
	uint64_t	 recent[CORE_PART_RECENT];	/* ring of restart times */
	unsigned	 nrecent;	/* restarts written to the ring, all told */
	uint64_t	 stalled;	/* ms without progress when it was killed for it */
	char		 exit[96];	/* why it last went down; "" never */
};

/* What a keeper and its part share (MAP_SHARED, inherited over fork). */
struct core_sup_shared {
	uint64_t	 master_beat;	/* the master's loop */
	bool		 supervised;	/* a supervisor keeps the master */
	bool		 init;		/* ... and it is PID 1 */
	int		 request;	/* PID 1: 0, or how to go down (RB_AUTOBOOT...) */
	bool		 have_policy;	/* the master wrote policy */
	struct core_part_policy policy;	/* the master's supervise settings */
	struct core_part master;	/* the supervisor's record of the master */
	uint64_t	 beat[CORE_SUP_BEATS];	/* the workers' */
};

/* The shared page, mapped on first use (before the first fork). NULL
 * when it cannot be mapped: nothing is then watched for progress. */
struct core_sup_shared *core_sup_shared(void);

/* Writes a beat (a part's loop calls this from a timer). */
static inline void core_sup_beat(uint64_t *cell, uint64_t now)
{
	__atomic_store_n(cell, now, __ATOMIC_RELAXED);
}

static inline uint64_t core_sup_beat_read(const uint64_t *cell)
{
	return __atomic_load_n(cell, __ATOMIC_RELAXED);
}

/* The policy of keel's supervise settings. */
void core_sup_policy(const struct core_conf *conf, struct core_part_policy *pol);

void core_part_init(struct core_part *p, const char *name);
void core_part_started(struct core_part *p, pid_t pid, uint64_t now);
/* A stall seen: silent ms without a beat. The keeper then kills it; its
 * exit is reported as "no progress for N s". */
void core_part_stall(struct core_part *p, uint64_t silent);
/* The part went down (a waitpid status, or why != NULL: it could not be
 * started). Logs it and decides: true when it starts again at p->next,
 * false when it failed; then "part NAME" is raised. */
bool core_part_down(struct core_part *p, int status, const char *why, uint64_t now,
		    const struct core_part_policy *pol);
/* A failed or waiting part may start at once again (an operator's new
 * configuration); the alert is cleared when it was failed. */
void core_part_revive(struct core_part *p, uint64_t now);

/* One part as a JSON object. */
int core_part_json(struct core_buf *out, const struct core_part *p, uint64_t now);
/* Its Prometheus samples (the HELP/TYPE lines come from core_part_metrics_head). */
int core_part_metrics(struct core_buf *out, const struct core_part *p, uint64_t now);
int core_part_metrics_head(struct core_buf *out);

/* The parts the status shows: main.c says which (the worker slots in use).
 * master is the master's own record. */
void core_sup_show(struct core_part *master, struct core_part *workers, size_t nworkers,
		   const struct core_part_policy *pol, const struct core_conf *conf);

/* Readiness gates (supervise.wait_for, enum keel_gate): the parts that
 * know say whether each is open, and why not; the master starts the proxy
 * workers once those asked for are (or supervise.wait_max is up). */
void core_sup_gate(int gate, bool open, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Whether one gate is open (reported and open); why gets its reason. */
bool core_sup_gate_open(int gate, char *why, size_t len);
/* Whether every gate conf waits for is open; if not, the first closed one
 * and why in why. */
bool core_sup_gates_open(const struct core_conf *conf, char *why, size_t len);
/* The master says whether the workers still wait (for the status). */
void core_sup_waiting(bool waiting);

/* A helper process a part keeps (the password hasher) shown with them. */
void core_sup_add(struct core_part *p);
void core_sup_del(struct core_part *p);

/* The first failed part when escalation is reboot, else NULL: the
 * watchdog stops pinging while this is set. */
const char *core_sup_escalated(void);
void core_sup_escalate(const char *why);	/* NULL clears */

/* `keel --supervise` and keel as PID 1: forks master() and keeps it
 * alive as a part; returns the exit status keel ends with. As PID 1 it
 * first sets the system up (core/sysinit.h), never returns, and goes down
 * by reboot(2): SIGTERM or SIGINT reboot, SIGUSR2 powers off, and so does
 * the master's request (sh->request, then SIGTERM or SIGUSR2 to us). */
int core_supervisor_run(int (*master)(void));

#endif
