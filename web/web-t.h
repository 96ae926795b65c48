/* The admin server's types: the route table's rows, a request on its way
 * through them, sessions and password jobs, and the states of the front's
 * connections. The handlers return libmicrohttpd's result and JSON comes
 * in through libyaml, so their headers are the library headers here. */
#ifndef KEEL_WEB_WEB_T_H
#define KEEL_WEB_WEB_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>
#include <yaml.h>

#include "core/buf-t.h"
#include "core/command-t.h"
#include "core/list-t.h"

/* ---- authentication ---- */

#define WEB_AUTH_ITERATIONS	600000		/* OWASP's figure for PBKDF2-SHA256 */
#define WEB_AUTH_TOKEN_HEX	64		/* 256-bit tokens, in hex */
#define WEB_AUTH_IDLE_MS	(30 * 60 * 1000)
#define WEB_AUTH_MAX_AGE_MS	(12 * 3600 * 1000)

struct web_session {
	char		 token[WEB_AUTH_TOKEN_HEX + 1];
	char		 csrf[WEB_AUTH_TOKEN_HEX + 1];
	char		 user[64];
	char		 ip[64];
	uint64_t	 created, last;	/* monotonic ms */
};

/* A hash to compute off the loop; done() runs on the loop when it is. */
struct web_auth_job {
	unsigned char	 salt[16];
	char		 password[256];
	uint32_t	 iterations;
	unsigned char	 hash[32];
	void		(*done)(struct web_auth_job *job);
	void		*arg;
	struct web_auth_job *next;
};

/* ---- routes ---- */

/* What a route needs before its handler runs; checked on the request's
 * head, before a byte of its body is read. */
enum web_auth {
	WEB_AUTH_NONE = 0,	/* anyone: /healthz, the UI's files, login */
	WEB_AUTH_SETUP,		/* anyone while there is no account; the handler checks the
				 * one-time setup token in the body */
	WEB_AUTH_BEARER,	/* admin.metrics_token as a Bearer token, or a session */
	WEB_AUTH_SESSION,	/* a session cookie */
	WEB_AUTH_CSRF,		/* a session cookie and its X-CSRF-Token header */
};

/* The body a route takes. */
enum web_body {
	WEB_BODY_NONE = 0,	/* none used; a small one (an empty JSON object) is read and ignored */
	WEB_BODY_JSON,		/* Content-Type: application/json, and nothing else */
	WEB_BODY_CONFIG,	/* application/json or application/yaml */
	WEB_BODY_STREAM,	/* application/octet-stream, handed on as it comes, never kept */
};

struct web_req;

struct web_route {
	const char	*method;	/* "GET" answers HEAD too */
	const char	*path;		/* "/api/v1/users/:name"; a last segment "*" takes the rest */
	enum web_auth	 auth;
	enum web_body	 body;
	size_t		 body_max;	/* bytes; a longer body is refused with 413 */
	enum MHD_Result	(*handler)(struct web_req *r);
	const char	*doc;
};

#define WEB_ROUTE_PARAMS	2	/* ":name" captures per path */
#define WEB_BODY_SMALL		4096	/* open routes and bodies that hold a few fields */
#define WEB_BODY_CONFIG_MAX	(4 << 20)
#define WEB_JSON_DEPTH		32	/* nesting a JSON body may have; configs need about 8 */

/* ---- requests ---- */

enum web_req_state {
	WEB_REQ_HEAD = 0,	/* the head is in; route, session and limits are checked now */
	WEB_REQ_BODY,		/* accepted: the body is being read */
	WEB_REQ_HASHING,	/* suspended while a password is hashed */
	WEB_REQ_HASHED,		/* resumed: the hash is in job.hash */
	WEB_REQ_COMMAND,	/* suspended while a part's command runs on */
	WEB_REQ_COMMANDED,	/* resumed: the command's answer is in cmd */
	WEB_REQ_ANSWERED,	/* a response is queued; nothing more is read */
};

struct web_req {
	struct MHD_Connection *conn;
	const struct web_route *route;	/* NULL: no route has this method and path */
	const char	*method;
	const char	*url;
	char		 params[WEB_ROUTE_PARAMS][128];
	char		 ip[64];
	char		 token[WEB_AUTH_TOKEN_HEX + 1];	/* the session cookie, checked */
	struct web_session *session;	/* found again before the handler runs */
	struct core_buf	 body;
	bool		 too_big;
	bool		 https;
	enum web_req_state state;
	int		 step;		/* which hash of a two-hash handler this is */
	struct web_auth_job job;	/* a password being hashed */
	char		 user[64];	/* the login being checked */
	char		 password[256];	/* a new password waiting for the current one's check */
	struct core_command_call cmd;	/* a part's command (api_commands.c) */
	bool		 cmd_running;
	bool		 streaming;	/* the body goes to cmd's command piece by piece */
	size_t		 streamed;	/* bytes of it so far, dropped ones too */
	bool		 suspended;	/* waiting on a hash or a command */
	struct core_list suspended_link;	/* in the suspended requests */
};

/* A JSON body, parsed by libyaml (JSON is YAML's flow style). */
struct web_json {
	yaml_document_t	 doc;
	bool		 ok;
};

/* One of the UI's files, built into the binary (web/ui/assets.sh). */
struct web_ui_asset {
	const char	*path;		/* "/ui/app.js" */
	const char	*type;
	const char	*data;
	size_t		 len;
};

/* ---- the front's connections ---- */

enum web_conn_state {
	WEB_CONN_HANDSHAKE = 0,	/* TLS handshake under way (HTTPS only) */
	WEB_CONN_HEAD,		/* a request head is arriving: admin.head_timeout runs */
	WEB_CONN_BUSY,		/* the head is in: body and answer, admin.idle_timeout runs */
	WEB_CONN_LINGER,	/* answered and closing: what the client still sends (a body
				 * refused on its head) is read and dropped for a moment, so
				 * the close does not reset the answer away */
	WEB_CONN_CLOSED,	/* closed, waiting for its deferred free */
};

#endif
