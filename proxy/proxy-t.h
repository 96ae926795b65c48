/* Types of the HTTP proxy's data plane: listeners, client connections
 * (streams) and request/response exchanges. */
#ifndef KEEL_PROXY_PROXY_T_H
#define KEEL_PROXY_PROXY_T_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf-t.h"
#include "core/list-t.h"
#include "core/loop-t.h"
#include "core/net-t.h"
#include "core/http-t.h"
#include "upstream-t.h"

struct core_tls;
struct proxy_static_job;
struct core_tls_server;

struct proxy_listener {
	int		 fd;
	struct core_net_listener acc;	/* worker: on the accept path */
	struct core_tls_server *tls;	/* worker: HTTPS when set */
	char		 name[64];
};

enum proxy_stream_state {
	PROXY_ST_HANDSHAKE = 0,	/* TLS: the handshake is under way */
	PROXY_ST_HEAD,	/* waiting for or reading a request head */
	PROXY_ST_CONNECT,	/* connecting to a server */
	PROXY_ST_EXCHANGE,	/* the request goes up, the response comes down */
	PROXY_ST_TUNNEL,	/* after 101: bytes both ways until one side ends */
	PROXY_ST_STATIC,	/* a file from NFS goes out (static.c) */
	PROXY_ST_REPLY,		/* sending keel's own answer, then closing */
	PROXY_ST_LINGER,	/* answer sent, write side shut: draining input */
	PROXY_ST_CLOSED,	/* waiting to be freed */
};

/* How a message body ends. */
enum proxy_body {
	PROXY_BODY_NONE = 0,	/* there is none */
	PROXY_BODY_LENGTH,	/* after Content-Length bytes */
	PROXY_BODY_CHUNKED,	/* at the last chunk */
	PROXY_BODY_EOF,		/* when the server closes (responses only) */
};

/* One request and its response, from the request head to the last byte. */
struct proxy_xchg {
	struct proxy_runtime *rt;	/* holds a reference */
	struct proxy_stream *stream;	/* the client connection it serves */
	struct core_list wait;		/* in srv's list of unanswered requests */
	uint64_t	 sent_at;	/* when the whole request was out */
	bool		 waiting;	/* on that list */
	const struct proxy_route *route;
	struct proxy_server *srv;
	struct proxy_server *pinned;	/* the server the affinity cookie names */
	struct proxy_upconn *uc;
	uint64_t	 tried;		/* a bit per server index */
	unsigned	 tries;
	uint64_t	 started;	/* monotonic ms of the request head */
	uint64_t	 connect_at;	/* when the current try began */
	uint64_t	 up_wait;	/* upstream deadline base: last progress */
	enum core_http_method method;
	unsigned	 client_version; /* 10 or 11 */
	bool		 idempotent;
	bool		 upgrade;	/* the client asked for a protocol switch */
	bool		 pooled;	/* uc came from the idle pool */

	/* request: head in uhead, body straight from the client's buffer */
	struct core_buf	 uhead;
	size_t		 uhead_sent;
	enum proxy_body	 req_body;
	uint64_t	 req_left;	/* LENGTH: body bytes not yet sent */
	struct core_http_chunked req_ch;
	size_t		 req_ready;	/* bytes at the head of cin that are body */
	uint64_t	 req_sent;	/* body bytes sent to the server */
	bool		 req_done;

	/* response: read into uin; our rewritten head goes out through cout */
	struct core_buf	 uin;
	uint32_t	 resp_scan;
	bool		 resp_head;	/* the final head has been parsed */
	bool		 resp_any;	/* bytes of it went to the client */
	enum proxy_body	 resp_body;
	uint64_t	 resp_left;
	struct core_http_chunked resp_ch;
	size_t		 resp_ready;	/* bytes at the head of uin that are body */
	bool		 resp_done;
	bool		 up_eof;	/* the server closed its side */
	bool		 up_reuse;	/* the server allows another request on it */
	unsigned	 status;
	uint64_t	 resp_bytes;
	struct proxy_logrec *log;	/* when the access log is on */
	struct proxy_static_job *job;	/* a static route's answer, else NULL */
};

/* One client connection; small, because most of them sit idle. */
struct proxy_stream {
	int		 fd;
	enum proxy_stream_state state;
	struct core_tls	*tls;		/* HTTPS: the session, else NULL */
	struct core_io	 io;
	struct core_timer timer;
	struct core_defer reap;
	struct core_list link;		/* in the worker's list of open streams */
	struct proxy_listener *ln;
	union {
		struct sockaddr_in  v4;
		struct sockaddr_in6 v6;
		struct sockaddr	    sa;
	} peer;
	struct core_buf	 cin;		/* from the client */
	struct core_buf	 cout;		/* keel's bytes to the client */
	struct proxy_xchg *x;
	uint32_t	 scan;		/* request head search progress */
	uint64_t	 since;		/* start of the current wait (head, idle, write) */
	uint64_t	 deadline;	/* what the timer waits for; it may fire early */
	uint64_t	 idle_timeout;	/* of the last route used */
	unsigned	 requests;
	/* bits: the struct stays in its allocator size class (proxy.c) */
	bool		 close_after:1;	/* close once this response is out */
	bool		 said_close:1;	/* the response head told the client so */
	bool		 wrote:1;	/* something was written to the client */
	bool		 nodelay:1;	/* TCP_NODELAY is set */
	bool		 client_eof:1;
	bool		 hs_begun:1;	/* TLS: the first bytes were looked at */
};

#endif
