/* The accept path's types (see net.h). */
#ifndef KEEL_CORE_NET_T_H
#define KEEL_CORE_NET_T_H

#include <stdint.h>
#include <sys/socket.h>

#include "list-t.h"
#include "loop-t.h"

/*
 * Accepting, the same way for every listener of every part. An acceptor
 * owns the policy, its listeners are the sockets: accept4() with
 * SOCK_NONBLOCK|SOCK_CLOEXEC, a batch per wakeup, a connection limit (past
 * it the listeners stop being watched and the kernel's backlog holds the
 * rest until a connection ends), and on EMFILE, ENFILE, ENOBUFS or ENOMEM
 * a pause with a timer instead of a busy loop on a level-triggered socket
 * that stays readable: one log line when a pause begins, one when
 * accepting works again, and counters for the status.
 */
enum core_net_accept_state {
	CORE_NET_ACCEPTING = 0,		/* listeners watched */
	CORE_NET_PAUSED_LIMIT,		/* at the connection limit */
	CORE_NET_PAUSED_FDS,		/* out of descriptors or memory: a timer retries */
	CORE_NET_STOPPED,		/* draining, or not started */
};

struct core_net_acceptor;

struct core_net_listener {
	int		 fd;		/* the owner's; never closed here */
	char		 name[64];	/* "0.0.0.0:80", for the log */
	struct core_io	 io;
	struct core_net_acceptor *acc;
	struct core_list link;
};

struct core_net_acceptor {
	/* set by the owner (core_net_accept_init) */
	struct core_loop *loop;
	const char	*who;		/* the log's subsystem: "proxy", "redis", "web" */
	unsigned	 max;		/* connections at once; 0: no limit */
	const unsigned	*nconns;	/* the owner's count of open connections */
	/* A connection: fd is the callee's now (it closes it on failure). */
	void		(*accepted)(struct core_net_listener *ln, int fd,
				    const struct sockaddr_storage *peer, socklen_t peerlen);

	/* private */
	enum core_net_accept_state state;
	struct core_list listeners;
	struct core_timer retry;
	uint64_t	 paused_at;	/* loop ms the current fd pause began */
	unsigned	 retries;	/* timer retries in the current fd pause */

	/* counters */
	uint64_t	 accepts;
	uint64_t	 fd_pauses;	/* times out of descriptors */
	uint64_t	 limit_pauses;	/* times the limit was reached */
	uint64_t	 limit_logged;	/* loop ms the limit was last logged */
};

#endif
