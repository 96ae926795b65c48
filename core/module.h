/* Subsystems (proxy, cache, storage, web...) register here, so core starts,
 * reloads and stops them without including their headers.
 *
 * keel runs as a master process and worker processes. Master modules (the
 * admin server, say) start and reload in the master. Worker modules (the
 * proxy) are prepared in the master, which sets up what workers inherit
 * (listening sockets, shared memory), then start in every worker; a reload
 * prepares them again and replaces the workers, and the old ones drain. */
#ifndef KEEL_CORE_MODULE_H
#define KEEL_CORE_MODULE_H

#include <stdbool.h>
#include <stddef.h>

#include "conf-t.h"
#include "loop-t.h"

struct core_module {
	const char	*name;
	int		 order;		/* lower starts first, stops last */
	bool		 worker;	/* runs in the workers, not the master */

	/* Master: before workers of a configuration exist. prev is the
	 * running config on a reload, NULL at startup. Optional. */
	int		(*prepare)(const struct core_conf *conf,
				   const struct core_conf *prev,
				   char *err, size_t errlen);
	/* Starts in the process the module runs in. */
	int		(*start)(struct core_loop *loop, const struct core_conf *conf,
				 char *err, size_t errlen);
	/* Master modules: applies a validated new config (settings without
	 * CORE_CONF_RELOAD are unchanged). CORE_ERROR keeps the running one. */
	int		(*reload)(const struct core_conf *conf, char *err, size_t errlen);
	/* Workers: stop taking new work; returns what is still under way
	 * (called again until it returns 0 or the drain time is up). */
	unsigned	(*drain)(void);
	void		(*stop)(void);
	/* Master: the fds workers must keep (listening sockets); others close. */
	size_t		(*inherit)(int *fds, size_t max);
};

/* Registers a module: CORE_MODULE(web_module); at file scope. */
#define CORE_MODULE(m)							\
	static const struct core_module *const core_module_ptr_##m	\
	__attribute__((used, section("keel_modules"), aligned(sizeof(void *)))) = &(m)

#endif
