/* Types of core/command.h: a command, and one call of it. */
#ifndef KEEL_CORE_COMMAND_T_H
#define KEEL_CORE_COMMAND_T_H

#include <stddef.h>
#include <stdint.h>

#include "buf-t.h"

struct core_command_call {
	/* The caller's. */
	char		 target[64];	/* what it acts on: a mount's name */
	char		 arg[128];	/* its argument, if any: an address */
	char		 who[64];	/* for the log: the user */
	void		(*done)(struct core_command_call *call);
	void		*ctx;
	/* The command's answer, read in done. */
	int		 status;	/* as HTTP: 200, 202, 400, 404, 409, 502, 504 */
	struct core_buf	 out;		/* a JSON object; with an error, {"error": "..."} */
	/* The command's own, while it runs on. */
	void		(*cancel)(struct core_command_call *call);
	void		*priv;
};

struct core_command {
	const char	*name;		/* "storage.remount" */
	const char	*doc;		/* for GET /api/v1/commands */
	const char	*arg;		/* what arg means, or NULL if it takes none */
	void		(*run)(struct core_command_call *call);
	/* Optional: the command takes a body streamed to it (an update
	 * bundle) instead of target and arg. begin once the request's head
	 * is accepted (length: its Content-Length, or -1), feed per piece as
	 * it arrives, then run once it has all come. begin and feed return
	 * CORE_OK, or answer with the failure (core_command_fail) and return
	 * CORE_ERROR: the rest of the body is then dropped unread. */
	int		(*begin)(struct core_command_call *call, int64_t length);
	int		(*feed)(struct core_command_call *call, const void *buf, size_t len);
};

/* A word of keel's command line a part answers: `keel update sign ...`.
 * main is given the words after keel's own and returns the exit status. */
struct core_tool {
	const char	*name;		/* "update" */
	const char	*usage;		/* lines for keel --help */
	int		(*main)(int argc, char **argv);
};

#endif
