/* Short-lived helper processes of the master (a mount attempt, a canary
 * write into a network filesystem): the part that forks one watches it
 * here, and main's SIGCHLD handler, which reaps every child with
 * waitpid(-1), hands each exit to its watcher. A part never waits for a
 * child itself, and a child nobody watches any more (its part let it go:
 * a reload, a helper stuck in the kernel) is reaped quietly whenever it
 * ends. Master process only. */
#ifndef KEEL_CORE_CHILD_H
#define KEEL_CORE_CHILD_H

#include <stdbool.h>
#include <sys/types.h>

#include "list-t.h"

struct core_child {
	pid_t		 pid;		/* 0: not watching */
	void		(*done)(struct core_child *c, int status);	/* wait status */
	void		*data;
	struct core_list link;
};

/* done(c, status) runs from the loop once pid has exited; c->pid is still
 * that pid then, and c is not watched any more. */
void core_child_watch(struct core_child *c, pid_t pid,
		      void (*done)(struct core_child *c, int status), void *data);
/* Stops watching; the process is reaped quietly when it ends. */
void core_child_forget(struct core_child *c);

/* For main's SIGCHLD handler: hands a reaped pid to its watcher. False
 * when nobody watches it. */
bool core_child_reaped(pid_t pid, int status);

/* In a child just forked that will exec: closes every fd above 2 but
 * keep (-1: none), empties the signal mask and puts back the default
 * action of the signals the master handles or ignores. */
void core_child_prepare_exec(int keep);

#endif
