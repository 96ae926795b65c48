/* Socket helpers that every listener needs, and the one accept path. */
#ifndef KEEL_CORE_NET_H
#define KEEL_CORE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf-t.h"
#include "list.h"
#include "loop-t.h"

/*
 * A non-blocking listening socket on a, with SO_REUSEADDR (and IPV6_V6ONLY,
 * so [::] and 0.0.0.0 can both be listened on). Returns the fd, or -1 with
 * "cannot listen on ADDR: reason" in err.
 */
int core_net_listen(const struct core_conf_addr *a, int backlog, char *err, size_t errlen);

/* The address of sa (IPv4 or IPv6) as text, without the port. */
const char *core_net_ntop(const struct sockaddr *sa, char *buf, size_t len);

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

#define CORE_NET_ACCEPT_BATCH	64	/* accepts per wakeup */
#define CORE_NET_RETRY_MS	250	/* after EMFILE and friends */

void core_net_accept_init(struct core_net_acceptor *a, struct core_loop *loop, const char *who,
			  unsigned max, const unsigned *nconns,
			  void (*accepted)(struct core_net_listener *, int,
					   const struct sockaddr_storage *, socklen_t));
/* Adds a listening socket (watched at once unless stopped or paused). */
void core_net_accept_add(struct core_net_acceptor *a, struct core_net_listener *ln, int fd,
			 const char *name);
/* Stops watching ln; the owner closes its fd. */
void core_net_accept_del(struct core_net_listener *ln);
/* A new limit (0: none), applied at once. */
void core_net_accept_limit(struct core_net_acceptor *a, unsigned max);
/* The owner closed a connection: accepting resumes if the limit paused it. */
void core_net_accept_wake(struct core_net_acceptor *a);
/* Stops accepting for good (a drain) or starts again. */
void core_net_accept_stop(struct core_net_acceptor *a);
void core_net_accept_start(struct core_net_acceptor *a);
const char *core_net_accept_state_str(enum core_net_accept_state s);

#endif
