/* Subsystems (proxy, cache, storage, web...) register here, so core starts,
 * reloads and stops them without including their headers. */
#ifndef KEEL_CORE_MODULE_H
#define KEEL_CORE_MODULE_H

#include <stddef.h>

#include "conf-t.h"
#include "loop-t.h"

struct core_module {
	const char	*name;
	int		 order;		/* lower starts first, stops last */
	/* Starts with the first config; CORE_OK, or CORE_ERROR with err set. */
	int		(*start)(struct core_loop *loop, const struct core_conf *conf,
				 char *err, size_t errlen);
	/* Applies a validated new config; settings without CORE_CONF_RELOAD
	 * are unchanged. CORE_ERROR leaves the running one in place. */
	int		(*reload)(const struct core_conf *conf, char *err, size_t errlen);
	void		(*stop)(void);
};

/* Registers a module: CORE_MODULE(web_module); at file scope. */
#define CORE_MODULE(m)							\
	static const struct core_module *const core_module_ptr_##m	\
	__attribute__((used, section("keel_modules"), aligned(sizeof(void *)))) = &(m)

#endif
