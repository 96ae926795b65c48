/* A Redis connection's types (see conn.h). */
#ifndef KEEL_CACHE_CONN_T_H
#define KEEL_CACHE_CONN_T_H

#include <stdint.h>

struct cache_conn;

/* Connected (why NULL) or gone (why says why: refused, timed out, closed
 * by the server, closed by us). Called once each, from the loop. */
typedef void (*cache_conn_fn)(struct cache_conn *c, const char *why);

struct cache_conn_opts {
	const char	*ip;		/* an address: names are not resolved */
	int		 port;
	uint64_t	 connect_timeout;	/* ms */
	uint64_t	 command_timeout;	/* ms; 0: none */
	cache_conn_fn	 up, down;
	void		*data;
	const char	*name;		/* CLIENT SETNAME after AUTH, so an operator
					 * tells keel's connections from the apps' */
};

#endif
