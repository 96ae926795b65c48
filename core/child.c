/* Helper processes of the master, and who waits for them: see child.h. */
#include <signal.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "child.h"
#include "core.h"
#include "list.h"

static CORE_LIST_HEAD(watched);

void core_child_watch(struct core_child *c, pid_t pid,
		      void (*done)(struct core_child *c, int status), void *data)
{
	c->pid = pid;
	c->done = done;
	c->data = data;
	core_list_add_tail(&watched, &c->link);
}

void core_child_forget(struct core_child *c)
{
	core_list_del(&c->link);
	c->pid = 0;
}

bool core_child_reaped(pid_t pid, int status)
{
	struct core_list *el;

	for (el = watched.next; el != &watched; el = el->next) {
		struct core_child *c = CORE_CONTAINER_OF(el, struct core_child, link);

		if (c->pid != pid)
			continue;
		core_list_del(&c->link);
		c->done(c, status);	/* may watch c again, or free it */
		return true;
	}
	return false;
}

void core_child_prepare_exec(int keep)
{
	static const int sigs[] = { SIGHUP, SIGTERM, SIGINT, SIGCHLD, SIGUSR1, SIGPIPE };
	sigset_t none;
	long fd, max = sysconf(_SC_OPEN_MAX);
	size_t i;

	for (i = 0; i < CORE_ARRAY_SIZE(sigs); i++)
		signal(sigs[i], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (max < 0 || max > 65536)
		max = 65536;
#ifdef SYS_close_range
	if (keep < 0 && syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
		return;
#endif
	for (fd = 3; fd < max; fd++)
		if (fd != keep)
			close((int)fd);
}
