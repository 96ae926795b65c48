/* Socket helpers that every listener needs, and the one accept path. */
#ifndef KEEL_CORE_NET_H
#define KEEL_CORE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf-t.h"
#include "net-t.h"

/*
 * A non-blocking listening socket on a, with SO_REUSEADDR (and IPV6_V6ONLY,
 * so [::] and 0.0.0.0 can both be listened on). Returns the fd, or -1 with
 * "cannot listen on ADDR: reason" in err.
 */
int core_net_listen(const struct core_conf_addr *a, int backlog, char *err, size_t errlen);

/* The address of sa (IPv4 or IPv6) as text, without the port. */
const char *core_net_ntop(const struct sockaddr *sa, char *buf, size_t len);

/* A listener's address as a client on this box reaches it: a wildcard
 * (0.0.0.0, ::) becomes loopback; the port and text stay. */
void core_net_local_door(struct core_conf_addr *a);

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
