/* Socket helpers that every listener needs. */
#ifndef KEEL_CORE_NET_H
#define KEEL_CORE_NET_H

#include <stddef.h>

#include "conf-t.h"

/*
 * A non-blocking listening socket on a, with SO_REUSEADDR (and IPV6_V6ONLY,
 * so [::] and 0.0.0.0 can both be listened on). Returns the fd, or -1 with
 * "cannot listen on ADDR: reason" in err.
 */
int core_net_listen(const struct core_conf_addr *a, int backlog, char *err, size_t errlen);

/* The address of sa (IPv4 or IPv6) as text, without the port. */
const char *core_net_ntop(const struct sockaddr *sa, char *buf, size_t len);

#endif
