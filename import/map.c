/* nginx directives to keel settings: upstreams as they are, each server's
 * locations as routes (hosts from server_name, the default server's
 * without hosts), proxy_pass as upstream plus rewrite, the http, server and
 * location levels inherited as nginx does; every directive gets a verdict. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/conf.h"
#include "core/settings.h"
#include "import.h"

#define M_MAX_UPS	1000
#define M_MAX_SERVERS	64		/* per upstream, as keel allows */
#define M_MAX_ROUTES	1000
#define M_MAX_HOSTS	32
#define M_MAX_LISTEN	32

/* ---- what the import builds ----------------------------------------------------------- */

struct m_srv {				/* server ADDR params; in an upstream */
	char		 addr[80];
	unsigned	 weight, max_fails;
	int64_t		 fail_timeout;	/* s; -1: keel's default */
	bool		 backup, down, drain;
};

struct m_up {
	char		 name[64];
	struct m_srv	 srv[M_MAX_SERVERS];
	unsigned	 nsrv;
	const char	*balance;	/* NULL: round_robin */
	int		 keepalive;	/* -1: unset */
	int64_t		 keepalive_timeout;
	bool		 tls, tls_seen, plain_seen;
	bool		 used;
};

struct m_cfg {				/* what locations inherit */
	int64_t		 connect, send, read, idle;	/* ms; -1 unset */
	int64_t		 max_body;	/* bytes; -1 unset */
	int		 tries;		/* -1 unset */
	bool		 next_off, next_5xx;
	bool		 hdrs_set, host_client;	/* proxy_set_header at this level */
	bool		 addh_set;
	int64_t		 hsts;		/* s; 0 none */
	const char	*cert, *key;
};

struct m_route {
	const char	*hosts[M_MAX_HOSTS];
	unsigned	 nhosts;
	bool		 hostless;
	char		 path[1025];
	char		 rewrite[1025];	/* "": keep */
	const struct m_up *up;
	struct m_cfg	 cfg;
	bool		 exact;
	bool		 regex;		/* from a regular expression's literal prefix */
	bool		 dead;		/* reported, not written */
	unsigned	 ret;		/* `return` status; 0: proxied */
	const char	*ret_url, *ret_body;
	bool		 https_redirect;
	unsigned	 server;	/* index in m->servers */
	const struct imp_ngx_dir *at;
};

struct m_listen {
	char		 addr[80];
	unsigned	 port;
	bool		 ssl, dflt;
};

struct m_server {
	const char	*names[M_MAX_HOSTS];
	unsigned	 nnames;
	struct m_listen	 listen[M_MAX_LISTEN];
	unsigned	 nlisten;
	bool		 redirect_https;	/* return 301 https://$host$request_uri; */
	const struct imp_ngx_dir *ret;	/* its server-level return */
	const struct imp_ngx_dir *https_at;	/* where it redirects to HTTPS */
	struct m_cfg	 cfg;
	bool		 any_ssl, any_plain;
	unsigned	 nroutes;
	const char	*cert, *key;
	const struct imp_ngx_dir *at;
};

struct m_map {
	struct imp_result *res;
	const struct imp_ngx_conf *conf;
	const char	*certdir;
	struct m_up	*ups;
	unsigned	 nups;
	struct m_route	*routes;
	unsigned	 nroutes;
	struct m_server	*servers;
	unsigned	 nservers, cap_servers;
	size_t		 errlen;
	bool		 oom;
	bool		 resolve;	/* look names up */
	char		*owned[4096];	/* strings made here, freed at the end */
	unsigned	 nowned;
};

enum m_ctx { M_MAIN = 0, M_EVENTS, M_HTTP, M_SERVER, M_LOCATION, M_UPSTREAM };

/* ---- the report ----------------------------------------------------------------------- */

const char *imp_verdict_str(enum imp_verdict v)
{
	switch (v) {
	case IMP_MAPPED:	return "mapped";
	case IMP_APPROX:	return "approximated";
	case IMP_UNSUPPORTED:	return "not supported";
	}
	return "?";
}

static bool m_secret_header(const char *name)
{
	return strcasecmp(name, "Authorization") == 0 ||
	       strcasecmp(name, "Proxy-Authorization") == 0 || strcasecmp(name, "Cookie") == 0;
}

/* The directive's words as one line; values that may be secrets masked. */
static char *m_words(const struct imp_ngx_dir *d)
{
	struct core_buf b;
	char *s;
	unsigned i;

	core_buf_init(&b, 8192);
	for (i = 0; i < d->argc; i++) {
		const char *w = d->argv[i];

		if (i > 0)
			core_buf_append(&b, " ", 1);
		if (i >= 2 && strcmp(d->argv[0], "proxy_set_header") == 0 &&
		    m_secret_header(d->argv[1]))
			w = "(secret)";
		if (i >= 1 && strncmp(d->argv[0], "secure_link", 11) == 0)
			w = "(secret)";
		for (; *w != '\0'; w++) {	/* one line: control bytes escaped */
			if ((unsigned char)*w < 0x20 || *w == 0x7f)
				core_buf_printf(&b, *w == '\n' ? "\\n" : *w == '\t' ? "\\t" :
						"\\x%02x", (unsigned char)*w);
			else
				core_buf_append(&b, w, 1);
		}
	}
	if (d->kind == IMP_NGX_BLOCK)
		core_buf_append(&b, " {", 2);
	if (core_buf_len(&b) > 200) {
		core_buf_truncate(&b, 197);
		core_buf_append(&b, "...", 3);
	}
	s = strndup(core_buf_head(&b), core_buf_len(&b));
	core_buf_free(&b);
	return s;
}

static void m_say(struct m_map *m, const struct imp_ngx_dir *d, enum imp_verdict v,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void m_say(struct m_map *m, const struct imp_ngx_dir *d, enum imp_verdict v,
		  const char *fmt, ...)
{
	struct imp_result *r = m->res;
	struct imp_entry *e;
	char note[600];
	va_list ap;

	if (r->nentries == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct imp_entry *grown = realloc(r->entries, cap * sizeof(*grown));

		if (grown == NULL) {
			m->oom = true;
			return;
		}
		r->entries = grown;
		r->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(note, sizeof(note), fmt, ap);
	va_end(ap);
	imp_one_line(note);
	e = &r->entries[r->nentries];
	{
		const struct imp_ngx_file *f;
		unsigned nf = 0;

		for (f = m->conf->files; f != NULL && f != d->file; f = f->next)
			nf++;
		e->order[0] = nf;
		e->order[1] = (unsigned)r->nentries;
	}
	e->file = d->file->path;
	e->line = d->line;
	e->verdict = v;
	e->directive = m_words(d);
	e->note = strdup(note);
	if (e->directive == NULL || e->note == NULL) {
		free(e->directive);
		free(e->note);
		m->oom = true;
		return;
	}
	r->nentries++;
}

static void m_error(struct m_map *m, const struct imp_ngx_dir *d, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void m_error(struct m_map *m, const struct imp_ngx_dir *d, const char *fmt, ...)
{
	struct imp_result *r = m->res;
	va_list ap;

	va_start(ap, fmt);
	if (imp_lines_add(&r->errors, &m->errlen, d->file->path, d->line, fmt, ap) != 0)
		m->oom = true;
	else
		r->nerrors++;
	va_end(ap);
}

static const char *m_own(struct m_map *m, char *s)
{
	if (s == NULL || m->nowned == sizeof(m->owned) / sizeof(m->owned[0])) {
		free(s);
		m->oom = true;
		return "";
	}
	m->owned[m->nowned++] = s;
	return s;
}

/* Printable ASCII (and, with text, newlines and tabs): what keel's YAML
 * takes from words nginx would take any bytes in. */
static bool m_printable(const char *w, bool text)
{
	for (; *w != '\0'; w++)
		if (((unsigned char)*w < 0x20 || (unsigned char)*w >= 0x7f) &&
		    !(text && (*w == '\n' || *w == '\t')))
			return false;
	return true;
}

/* ---- values ------------------------------------------------------------------------------ */

/* nginx time: "30s", "1m30s", "500ms", a bare number is seconds. In ms, or -1. */
static int64_t m_time(const char *s)
{
	int64_t total = 0, n;
	const char *p = s;

	if (*p == '\0')
		return -1;
	while (*p != '\0') {
		if (!isdigit((unsigned char)*p))
			return -1;
		for (n = 0; isdigit((unsigned char)*p); p++) {
			n = n * 10 + (*p - '0');
			if (n > 100000000000LL)
				return -1;
		}
		if (p[0] == 'm' && p[1] == 's') {
			total += n;
			p += 2;
		} else {
			switch (*p) {
			case '\0': case 's': total += n * 1000; break;
			case 'm': total += n * 60000; break;
			case 'h': total += n * 3600000; break;
			case 'd': total += n * 86400000LL; break;
			case 'w': total += n * 604800000LL; break;
			case 'M': total += n * 2592000000LL; break;
			case 'y': total += n * 31536000000LL; break;
			default: return -1;
			}
			if (*p != '\0')
				p++;
		}
	}
	return total;
}

/* nginx size: "10m", "512k", "1g", bytes otherwise; -1 when not one. */
static int64_t m_size(const char *s)
{
	char *end;
	long long n = strtoll(s, &end, 10);

	if (end == s || n < 0)
		return -1;
	switch (*end) {
	case '\0': return n;
	case 'k': case 'K': return end[1] ? -1 : n << 10;
	case 'm': case 'M': return end[1] ? -1 : n << 20;
	case 'g': case 'G': return end[1] ? -1 : n << 30;
	}
	return -1;
}

static int m_int(const char *s, int lo, int hi)
{
	char *end;
	long n = strtol(s, &end, 10);

	return end == s || *end != '\0' || n < lo || n > hi ? -1 : (int)n;
}

static void m_fmt_ms(char *out, size_t len, int64_t ms)
{
	if (ms % 1000 != 0)
		snprintf(out, len, "%lldms", (long long)ms);
	else
		snprintf(out, len, "%llds", (long long)(ms / 1000));
}

static int64_t m_clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* "host:port" of an nginx address (default port given) as keel's address
 * text in out; a name is resolved now. 0, or -1 with why in err. */
static int m_addr(const struct m_map *m, const char *in, unsigned dport, char *out,
		  size_t len, bool *resolved, char *err, size_t errlen)
{
	char host[256], port[8];
	const char *colon, *close;
	struct addrinfo hints, *ai = NULL;
	struct in6_addr a6;
	struct in_addr a4;
	int rc;

	*resolved = false;
	if (in[0] == '[') {
		close = strchr(in, ']');
		if (close == NULL || (size_t)(close - in - 1) >= sizeof(host)) {
			snprintf(err, errlen, "\"%s\" is not an address", in);
			return -1;
		}
		memcpy(host, in + 1, (size_t)(close - in - 1));
		host[close - in - 1] = '\0';
		colon = close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = strrchr(in, ':');
		if ((size_t)(colon ? colon - in : (long)strlen(in)) >= sizeof(host)) {
			snprintf(err, errlen, "\"%s\" is too long a name", in);
			return -1;
		}
		snprintf(host, sizeof(host), "%.*s", colon ? (int)(colon - in) : (int)strlen(in),
			 in);
	}
	if (colon != NULL) {
		if (m_int(colon + 1, 1, 65535) < 0) {
			snprintf(err, errlen, "\"%s\": bad port", in);
			return -1;
		}
		snprintf(port, sizeof(port), "%s", colon + 1);
	} else
		snprintf(port, sizeof(port), "%u", dport);
	if (inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1) {
		int n = snprintf(out, len, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);

		if (n < 0 || (size_t)n >= len) {
			snprintf(err, errlen, "\"%s\" is too long an address", in);
			return -1;
		}
		return 0;
	}
	if (!m->resolve) {
		snprintf(err, errlen, "host \"%s\": names are not looked up here", host);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0 || ai == NULL) {
		snprintf(err, errlen, "host \"%s\" not found: %s", host, gai_strerror(rc));
		return -1;
	}
	if (ai->ai_family == AF_INET6) {
		char t[INET6_ADDRSTRLEN];

		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, t, sizeof(t));
		snprintf(out, len, "[%s]:%s", t, port);
	} else {
		char t[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, t, sizeof(t));
		snprintf(out, len, "%s:%s", t, port);
	}
	freeaddrinfo(ai);
	*resolved = true;
	return 0;
}

/* ---- directives with no keel setting of their own ---------------------------------------- */

struct m_rule {
	const char	*name;
	enum imp_verdict verdict;
	const char	*note;
};

static const struct m_rule m_rules[] = {
	{ "user", IMP_APPROX, "keel runs as root and drops nothing per worker; the box is keel's" },
	{ "worker_processes", IMP_APPROX, "keel's `workers.count` (0: one per CPU) decides" },
	{ "worker_rlimit_nofile", IMP_APPROX, "keel raises its own file limit" },
	{ "worker_connections", IMP_APPROX, "keel's `proxy.max_connections` (10 000) applies" },
	{ "pid", IMP_APPROX, "keel's `pid_file` (/run/keel.pid)" },
	{ "error_log", IMP_APPROX, "keel logs to standard error or the journal; `log.level`" },
	{ "daemon", IMP_APPROX, "keel runs in the foreground under its supervisor" },
	{ "master_process", IMP_APPROX, "keel always runs a master and workers" },
	{ "multi_accept", IMP_APPROX, "keel accepts in a loop per readiness event" },
	{ "use", IMP_APPROX, "keel uses epoll" },
	{ "accept_mutex", IMP_APPROX, "keel's workers share the listening sockets" },
	{ "load_module", IMP_UNSUPPORTED, "keel has no dynamic modules" },
	{ "access_log", IMP_APPROX, "keel's `access_log` (combined or JSON, standard output or "
	  "`access_log.path`) covers every route" },
	{ "log_format", IMP_UNSUPPORTED, "keel writes combined (with host, upstream and times) "
	  "or JSON" },
	{ "sendfile", IMP_APPROX, "keel sets up its sockets itself" },
	{ "tcp_nopush", IMP_APPROX, "keel sets up its sockets itself" },
	{ "tcp_nodelay", IMP_APPROX, "keel sets up its sockets itself" },
	{ "types_hash_max_size", IMP_APPROX, "not needed: keel has no hash tables to size" },
	{ "types_hash_bucket_size", IMP_APPROX, "not needed: keel has no hash tables to size" },
	{ "server_names_hash_bucket_size", IMP_APPROX, "not needed: keel's route index grows "
	  "itself" },
	{ "server_names_hash_max_size", IMP_APPROX, "not needed: keel's route index grows itself" },
	{ "proxy_headers_hash_max_size", IMP_APPROX, "not needed" },
	{ "proxy_headers_hash_bucket_size", IMP_APPROX, "not needed" },
	{ "map_hash_bucket_size", IMP_APPROX, "not needed" },
	{ "variables_hash_max_size", IMP_APPROX, "not needed" },
	{ "default_type", IMP_APPROX, "only for files nginx serves itself; keel passes the "
	  "servers' Content-Type" },
	{ "types", IMP_APPROX, "only for files nginx serves itself; keel passes the servers' "
	  "Content-Type (and has its own table for static routes)" },
	{ "charset", IMP_UNSUPPORTED, "keel does not add a charset" },
	{ "server_tokens", IMP_APPROX, "keel sends no Server header of its own on proxied "
	  "responses" },
	{ "proxy_http_version", IMP_MAPPED, "keel speaks HTTP/1.1 to servers, with pooled "
	  "connections" },
	{ "proxy_buffering", IMP_APPROX, "keel streams responses with `proxy.buffer_size` (64k) "
	  "per direction and never spools to disk" },
	{ "proxy_buffers", IMP_APPROX, "keel streams with `proxy.buffer_size` per direction" },
	{ "proxy_buffer_size", IMP_APPROX, "keel streams with `proxy.buffer_size` per "
	  "direction; response heads up to `proxy.max_header_bytes`" },
	{ "proxy_busy_buffers_size", IMP_APPROX, "keel streams with `proxy.buffer_size`" },
	{ "proxy_request_buffering", IMP_APPROX, "keel streams request bodies as they come" },
	{ "proxy_max_temp_file_size", IMP_APPROX, "keel never spools to disk" },
	{ "proxy_temp_file_write_size", IMP_APPROX, "keel never spools to disk" },
	{ "client_body_buffer_size", IMP_APPROX, "keel streams request bodies with "
	  "`proxy.buffer_size`" },
	{ "client_header_buffer_size", IMP_APPROX, "keel's `proxy.max_header_bytes` and "
	  "`proxy.max_request_line` apply" },
	{ "large_client_header_buffers", IMP_APPROX, "keel's `proxy.max_header_bytes` (32k) and "
	  "`proxy.max_request_line` (8k) apply" },
	{ "client_header_timeout", IMP_APPROX, "keel's `proxy.header_timeout` (10s, all "
	  "listeners) applies" },
	{ "client_body_timeout", IMP_APPROX, "keel's route `read_timeout` bounds silence" },
	{ "send_timeout", IMP_APPROX, "keel's buffers and route timeouts bound a slow client" },
	{ "reset_timedout_connection", IMP_APPROX, "keel closes timed-out connections" },
	{ "keepalive_requests", IMP_APPROX, "keel keeps a client connection for any number of "
	  "requests" },
	{ "proxy_redirect", IMP_APPROX, "keel passes Location headers unchanged (nginx's "
	  "`default` rewrites those naming the upstream)" },
	{ "ssl_protocols", IMP_APPROX, "keel's TLS: 1.2 (ECDHE with AEAD suites) and 1.3; "
	  "`tls.min_version`" },
	{ "ssl_ciphers", IMP_APPROX, "keel's TLS suites are fixed: ECDHE with AEAD, and TLS 1.3's" },
	{ "ssl_prefer_server_ciphers", IMP_APPROX, "keel's TLS suites are fixed" },
	{ "ssl_ecdh_curve", IMP_APPROX, "keel offers X25519 and P-256" },
	{ "ssl_dhparam", IMP_APPROX, "keel uses no finite-field DH" },
	{ "ssl_session_cache", IMP_APPROX, "keel resumes sessions with tickets shared by workers" },
	{ "ssl_session_timeout", IMP_APPROX, "keel's session tickets have their own lifetime" },
	{ "ssl_session_tickets", IMP_APPROX, "keel always issues session tickets" },
	{ "ssl_session_ticket_key", IMP_APPROX, "keel makes and rotates its own ticket keys" },
	{ "ssl_buffer_size", IMP_APPROX, "keel sizes TLS records itself" },
	{ "ssl", IMP_APPROX, "use `listen ... ssl`; keel's listener has TLS when it has "
	  "certificates" },
	{ "http2", IMP_APPROX, "keel speaks HTTP/1.1 to clients (ALPN http/1.1)" },
	{ "resolver", IMP_APPROX, "keel resolved names at import, from /etc/resolv.conf" },
	{ "resolver_timeout", IMP_APPROX, "keel resolved names at import" },
	{ "zone", IMP_APPROX, "keel's workers always share server state" },
	{ "merge_slashes", IMP_APPROX, "keel routes the path as sent" },
	{ "ignore_invalid_headers", IMP_APPROX, "keel refuses malformed heads with 400" },
	{ "underscores_in_headers", IMP_APPROX, "keel passes header names with underscores" },
	{ "absolute_redirect", IMP_APPROX, "keel's redirects are absolute" },
	{ "port_in_redirect", IMP_APPROX, "keel's redirects name `https_port`" },
	{ "server_name_in_redirect", IMP_APPROX, "keel's redirects use the request's Host" },
	{ "proxy_ignore_client_abort", IMP_APPROX, "keel closes the server connection when the "
	  "client goes" },
	{ "proxy_socket_keepalive", IMP_APPROX, "keel's pooled connections are checked before "
	  "reuse" },
	{ "proxy_pass_request_headers", IMP_APPROX, "keel passes the client's headers" },
	{ "proxy_pass_request_body", IMP_APPROX, "keel passes the client's body" },
	{ "chunked_transfer_encoding", IMP_APPROX, "keel relays chunked bodies as they are" },
	{ "root", IMP_UNSUPPORTED, "keel serves no files from local disk (static routes read an "
	  "NFS export)" },
	{ "alias", IMP_UNSUPPORTED, "keel serves no files from local disk" },
	{ "index", IMP_UNSUPPORTED, "keel serves no files from local disk" },
	{ "try_files", IMP_UNSUPPORTED, "keel serves no files from local disk" },
	{ "autoindex", IMP_UNSUPPORTED, "keel serves no files from local disk" },
	{ "expires", IMP_UNSUPPORTED, "keel adds no Expires or Cache-Control" },
	{ "error_page", IMP_UNSUPPORTED, "keel answers errors with its own short pages" },
	{ "gzip", IMP_UNSUPPORTED, "keel does not compress responses" },
	{ "allow", IMP_UNSUPPORTED, "keel has no address-based access rules yet" },
	{ "deny", IMP_UNSUPPORTED, "keel has no address-based access rules yet" },
	{ "auth_basic", IMP_UNSUPPORTED, "keel has no HTTP basic authentication for routes" },
	{ "limit_req", IMP_UNSUPPORTED, "keel has no request-rate limits" },
	{ "limit_conn", IMP_UNSUPPORTED, "keel limits connections per box " "(`proxy.max_connections`), not per key" },
	{ "set_real_ip_from", IMP_UNSUPPORTED, "keel takes the client address from the "
	  "connection" },
	{ "real_ip_header", IMP_UNSUPPORTED, "keel takes the client address from the connection" },
	{ "proxy_cache", IMP_UNSUPPORTED, "keel does not cache responses" },
	{ "proxy_cache_path", IMP_UNSUPPORTED, "keel does not cache responses" },
	{ "proxy_hide_header", IMP_UNSUPPORTED, "keel passes the servers' headers (but "
	  "hop-by-hop ones)" },
	{ "proxy_intercept_errors", IMP_UNSUPPORTED, "keel passes the servers' error pages" },
	{ "keepalive_requests", IMP_APPROX, "keel reuses a pooled connection while the server "
	  "allows" },
	{ "keepalive_time", IMP_APPROX, "keel's `keepalive_timeout` bounds idle pooled "
	  "connections" },
	{ "ip_hash", IMP_MAPPED, "`balance: ip_hash`" },
	{ "least_conn", IMP_MAPPED, "`balance: least_conn`" },
	{ "random", IMP_APPROX, "`balance: p2c` (two random choices, the less busy wins)" },
};

static const struct m_rule *m_rule_find(const char *name)
{
	size_t i, n;

	for (i = 0; i < sizeof(m_rules) / sizeof(m_rules[0]); i++)
		if (strcmp(m_rules[i].name, name) == 0)
			return &m_rules[i];
	/* families */
	static const struct m_rule fam[] = {
		{ "gzip_", IMP_UNSUPPORTED, "keel does not compress responses" },
		{ "proxy_cache_", IMP_UNSUPPORTED, "keel does not cache responses" },
		{ "ssl_stapling", IMP_UNSUPPORTED, "keel does not staple OCSP answers" },
		{ "ssl_verify", IMP_UNSUPPORTED, "keel does not ask clients for certificates" },
		{ "ssl_client_", IMP_UNSUPPORTED, "keel does not ask clients for certificates" },
		{ "limit_req", IMP_UNSUPPORTED, "keel has no request-rate limits" },
		{ "limit_conn", IMP_UNSUPPORTED, "keel has no per-key connection limits" },
		{ "fastcgi_", IMP_UNSUPPORTED, "keel speaks HTTP to servers, not FastCGI" },
		{ "uwsgi_", IMP_UNSUPPORTED, "keel speaks HTTP to servers, not uwsgi" },
		{ "scgi_", IMP_UNSUPPORTED, "keel speaks HTTP to servers, not SCGI" },
		{ "grpc_", IMP_UNSUPPORTED, "keel speaks HTTP/1.1 to servers, not gRPC" },
		{ "http2_", IMP_APPROX, "keel speaks HTTP/1.1 to clients" },
		{ "open_file_cache", IMP_UNSUPPORTED, "keel serves no files from local disk" },
		{ "autoindex_", IMP_UNSUPPORTED, "keel serves no files from local disk" },
		{ "auth_", IMP_UNSUPPORTED, "keel has no per-route authentication" },
		{ "sub_filter", IMP_UNSUPPORTED, "keel does not rewrite bodies" },
		{ "proxy_ssl_", IMP_UNSUPPORTED, "this upstream TLS option has no keel setting; "
		  "see `upstreams.NAME.tls`" },
		{ "worker_", IMP_APPROX, "keel sizes its workers itself" },
		{ "lingering_", IMP_APPROX, "keel closes after a response it could not read a body "
		  "for" },
	};
	for (i = 0; i < sizeof(fam) / sizeof(fam[0]); i++) {
		n = strlen(fam[i].name);
		if (strncmp(name, fam[i].name, n) == 0)
			return &fam[i];
	}
	return NULL;
}

static void m_other(struct m_map *m, const struct imp_ngx_dir *d)
{
	const struct m_rule *r = m_rule_find(d->argv[0]);

	if (r != NULL)
		m_say(m, d, r->verdict, "%s", r->note);
	else
		m_say(m, d, IMP_UNSUPPORTED, "keel has no equivalent");
}

static void m_include(struct m_map *m, const struct imp_ngx_dir *d)
{
	if (d->unread)
		m_say(m, d, IMP_UNSUPPORTED, "not read: only the uploaded file is; what it holds "
		      "is missing (run keel import-nginx on a box that has the files)");
	else
		m_say(m, d, IMP_MAPPED, "read %u file%s", d->nfiles, d->nfiles == 1 ? "" : "s");
}

/* A block keel does not take in: it and everything inside reported. */
static void m_skip_block(struct m_map *m, const struct imp_ngx_dir *d, const char *why)
{
	const struct imp_ngx_dir *c;

	m_say(m, d, IMP_UNSUPPORTED, "%s", why);
	for (c = d->child; c != NULL; c = c->next) {
		if (c->kind == IMP_NGX_BLOCK)
			m_skip_block(m, c, why);
		else
			m_say(m, c, IMP_UNSUPPORTED, "inside \"%s\" above: %s", d->argv[0], why);
	}
}

/* ---- settings a level sets for the locations inside it ------------------------------------- */

static void m_timeout(struct m_map *m, const struct imp_ngx_dir *d, int64_t *slot,
		      const char *keel, int64_t lo, int64_t hi)
{
	int64_t ms;
	char t[32];

	if (d->argc != 2 || (ms = m_time(d->argv[1])) < 0) {
		m_error(m, d, "\"%s\" takes one time", d->argv[0]);
		return;
	}
	*slot = m_clamp(ms, lo, hi);
	m_fmt_ms(t, sizeof(t), *slot);
	if (*slot != ms)
		m_say(m, d, IMP_APPROX, "route `%s: %s` (keel's bounds)", keel, t);
	else
		m_say(m, d, IMP_MAPPED, "route `%s: %s`", keel, t);
}

static bool m_hsts(const char *v, int64_t *secs, bool *extra)
{
	const char *p = strstr(v, "max-age=");
	char *end;
	long long n;

	if (p == NULL)
		return false;
	n = strtoll(p + 8, &end, 10);
	if (end == p + 8 || n < 0)
		return false;
	*secs = n > 730LL * 86400 ? 730LL * 86400 : n;
	*extra = strcasestr(v, "includeSubDomains") != NULL || strcasestr(v, "preload") != NULL;
	return true;
}

/* Handles a directive that sets something locations inherit; false when
 * it is not one. */
static bool m_setting(struct m_map *m, const struct imp_ngx_dir *d, struct m_cfg *cfg,
		      enum m_ctx ctx)
{
	const char *n = d->argv[0];
	unsigned i;

	if (strcmp(n, "proxy_connect_timeout") == 0)
		m_timeout(m, d, &cfg->connect, "connect_timeout", 10, 600000);
	else if (strcmp(n, "proxy_send_timeout") == 0)
		m_timeout(m, d, &cfg->send, "send_timeout", 10, 3600000);
	else if (strcmp(n, "proxy_read_timeout") == 0)
		m_timeout(m, d, &cfg->read, "read_timeout", 10, 3600000);
	else if (strcmp(n, "keepalive_timeout") == 0 && ctx != M_UPSTREAM) {
		int64_t ms = d->argc >= 2 ? m_time(d->argv[1]) : -1;
		char t[32];

		if (d->argc < 2 || d->argc > 3 || ms < 0) {
			m_error(m, d, "\"keepalive_timeout\" takes one or two times");
			return true;
		}
		cfg->idle = m_clamp(ms, 0, 3600000);
		m_fmt_ms(t, sizeof(t), cfg->idle);
		if (d->argc == 3 || cfg->idle != ms)
			m_say(m, d, IMP_APPROX, "route `idle_timeout: %s`%s", t,
			      d->argc == 3 ? "; keel sends no Keep-Alive header" : " (keel's bounds)");
		else
			m_say(m, d, IMP_MAPPED, "route `idle_timeout: %s`", t);
	} else if (strcmp(n, "client_max_body_size") == 0) {
		int64_t sz = d->argc == 2 ? m_size(d->argv[1]) : -1;

		if (sz < 0) {
			m_error(m, d, "\"client_max_body_size\" takes one size");
			return true;
		}
		if (sz == 0) {
			cfg->max_body = 1024LL << 30;
			m_say(m, d, IMP_APPROX, "no limit in nginx: route `max_body: 1024G`");
		} else {
			cfg->max_body = sz;
			m_say(m, d, IMP_MAPPED, "route `max_body: %s`", d->argv[1]);
		}
	} else if (strcmp(n, "proxy_next_upstream") == 0) {
		bool other = false;

		cfg->next_off = false;
		cfg->next_5xx = false;
		for (i = 1; i < d->argc; i++) {
			const char *w = d->argv[i];

			if (strcmp(w, "off") == 0)
				cfg->next_off = true;
			else if (!strcmp(w, "http_500") || !strcmp(w, "http_502") ||
				 !strcmp(w, "http_503") || !strcmp(w, "http_504"))
				cfg->next_5xx = true;
			else if (strcmp(w, "error") && strcmp(w, "timeout") &&
				 strcmp(w, "invalid_header"))
				other = true;
		}
		if (cfg->next_off)
			m_say(m, d, IMP_MAPPED, "route `tries: 1`");
		else if (cfg->next_5xx || other)
			m_say(m, d, IMP_APPROX, "keel tries the next server after a connect failure, "
			      "a timeout before any response byte or an invalid head%s%s",
			      cfg->next_5xx ? "; `retry_5xx: true` retries every 5xx of an "
			      "idempotent request" : "",
			      other ? "; http_403, http_404, http_429 and non_idempotent are not "
			      "retried" : "");
		else
			m_say(m, d, IMP_MAPPED, "keel's tries: after a connect failure, a timeout "
			      "before any response byte, or an invalid response head");
	} else if (strcmp(n, "proxy_next_upstream_tries") == 0) {
		int t = d->argc == 2 ? m_int(d->argv[1], 0, 1000000) : -1;

		if (t < 0) {
			m_error(m, d, "\"proxy_next_upstream_tries\" takes a number");
			return true;
		}
		cfg->tries = t;
		if (t == 0)
			m_say(m, d, IMP_APPROX, "no limit in nginx: route `tries` is the upstream's "
			      "server count (at most 16)");
		else if (t > 16)
			m_say(m, d, IMP_APPROX, "route `tries: 16` (keel's most)");
		else
			m_say(m, d, IMP_MAPPED, "route `tries: %d`", t);
	} else if (strcmp(n, "proxy_set_header") == 0) {
		const char *h = d->argc == 3 ? d->argv[1] : "";
		const char *v = d->argc == 3 ? d->argv[2] : "";

		if (d->argc != 3) {
			m_error(m, d, "\"proxy_set_header\" takes a name and a value");
			return true;
		}
		cfg->hdrs_set = true;
		if (strcasecmp(h, "Host") == 0) {
			if (!strcmp(v, "$host") || !strcmp(v, "$http_host")) {
				cfg->host_client = true;
				m_say(m, d, IMP_MAPPED, "keel sends the client's Host");
			} else
				m_say(m, d, IMP_UNSUPPORTED, "keel sends the client's Host, not \"%s\"",
				      v);
		} else if (!strcasecmp(h, "X-Real-IP") && !strcmp(v, "$remote_addr"))
			m_say(m, d, IMP_MAPPED, "keel always sends X-Real-IP");
		else if (!strcasecmp(h, "X-Forwarded-For") &&
			 (!strcmp(v, "$proxy_add_x_forwarded_for") || !strcmp(v, "$remote_addr")))
			m_say(m, d, strcmp(v, "$remote_addr") ? IMP_MAPPED : IMP_APPROX,
			      "keel always appends the client to X-Forwarded-For");
		else if (!strcasecmp(h, "X-Forwarded-Proto") && !strcmp(v, "$scheme"))
			m_say(m, d, IMP_MAPPED, "keel always sends X-Forwarded-Proto");
		else if (!strcasecmp(h, "X-Forwarded-Host") &&
			 (!strcmp(v, "$host") || !strcmp(v, "$http_host")))
			m_say(m, d, IMP_MAPPED, "keel always sends X-Forwarded-Host");
		else if ((!strcasecmp(h, "Upgrade") && !strcmp(v, "$http_upgrade")) ||
			 (!strcasecmp(h, "Connection") &&
			  (!strcasecmp(v, "upgrade") || !strcmp(v, "$connection_upgrade"))))
			m_say(m, d, IMP_MAPPED, "keel passes Upgrade requests (WebSocket) through");
		else if (!strcasecmp(h, "Connection") && v[0] == '\0')
			m_say(m, d, IMP_MAPPED, "keel keeps server connections alive (`keepalive`)");
		else
			m_say(m, d, IMP_UNSUPPORTED, "keel adds no request headers of its own "
			      "choosing; the client's %s is passed as it is", h);
	} else if (strcmp(n, "add_header") == 0) {
		bool extra = false;
		int64_t secs;

		if (d->argc < 3 || d->argc > 4) {
			m_error(m, d, "\"add_header\" takes a name, a value and maybe \"always\"");
			return true;
		}
		if (!cfg->addh_set)
			cfg->hsts = 0;
		cfg->addh_set = true;
		if (strcasecmp(d->argv[1], "Strict-Transport-Security") == 0 &&
		    m_hsts(d->argv[2], &secs, &extra)) {
			cfg->hsts = secs;
			m_say(m, d, extra ? IMP_APPROX : IMP_MAPPED, "route `hsts: %llds`%s",
			      (long long)secs, extra ? "; keel sends max-age only "
			      "(no includeSubDomains or preload)" : "");
		} else
			m_say(m, d, IMP_UNSUPPORTED, "keel adds no response headers but HSTS");
	} else if (strcmp(n, "ssl_certificate") == 0 && ctx != M_LOCATION) {
		if (d->argc != 2) {
			m_error(m, d, "\"ssl_certificate\" takes one file");
			return true;
		}
		cfg->cert = d->argv[1];
		m_say(m, d, IMP_MAPPED, "copied into keel's certificate store; the listener's "
		      "`tls.certificates`");
	} else if (strcmp(n, "ssl_certificate_key") == 0 && ctx != M_LOCATION) {
		if (d->argc != 2) {
			m_error(m, d, "\"ssl_certificate_key\" takes one file");
			return true;
		}
		cfg->key = d->argv[1];
		m_say(m, d, IMP_MAPPED, "copied into keel's certificate store (0600), never shown");
	} else
		return false;
	return true;
}

/* ---- upstream { } ---------------------------------------------------------------------------- */

static struct m_up *m_up_find(struct m_map *m, const char *name)
{
	unsigned i;

	for (i = 0; i < m->nups; i++)
		if (strcmp(m->ups[i].name, name) == 0)
			return &m->ups[i];
	return NULL;
}

static struct m_up *m_up_new(struct m_map *m, const struct imp_ngx_dir *d, const char *name)
{
	struct m_up *u;

	if (m->nups == M_MAX_UPS) {
		m_error(m, d, "more than %d upstreams", M_MAX_UPS);
		return NULL;
	}
	u = &m->ups[m->nups++];
	memset(u, 0, sizeof(*u));
	snprintf(u->name, sizeof(u->name), "%s", name);
	u->keepalive = -1;
	u->keepalive_timeout = -1;
	return u;
}

/* "server ADDR [weight=N] [max_fails=N] [fail_timeout=T] [backup] [down]" */
static void m_up_server(struct m_map *m, struct m_up *u, const struct imp_ngx_dir *d)
{
	struct m_srv *s;
	char err[300], lost[200] = "";
	bool resolved, approx = false;
	unsigned i;

	if (d->argc < 2) {
		m_error(m, d, "\"server\" in an upstream needs an address");
		return;
	}
	if (u->nsrv == M_MAX_SERVERS) {
		m_say(m, d, IMP_UNSUPPORTED, "keel takes %d servers per upstream", M_MAX_SERVERS);
		return;
	}
	if (strncmp(d->argv[1], "unix:", 5) == 0) {
		m_say(m, d, IMP_UNSUPPORTED, "keel connects to servers over TCP, not UNIX sockets");
		return;
	}
	s = &u->srv[u->nsrv];
	memset(s, 0, sizeof(*s));
	s->weight = 1;
	s->max_fails = 1;
	s->fail_timeout = -1;
	if (m_addr(m, d->argv[1], 80, s->addr, sizeof(s->addr), &resolved, err, sizeof(err)) != 0) {
		m_error(m, d, "%s", err);
		return;
	}
	for (i = 2; i < d->argc; i++) {
		const char *w = d->argv[i];
		int n;

		if (strncmp(w, "weight=", 7) == 0 && (n = m_int(w + 7, 1, 1000)) > 0) {
			s->weight = n > 256 ? 256 : (unsigned)n;
			approx |= n > 256;
		} else if (strncmp(w, "max_fails=", 10) == 0 && (n = m_int(w + 10, 0, 1000)) >= 0)
			s->max_fails = (unsigned)n;
		else if (strncmp(w, "fail_timeout=", 13) == 0 && m_time(w + 13) >= 0) {
			int64_t ms = m_time(w + 13);

			s->fail_timeout = m_clamp((ms + 999) / 1000, 1, 3600);
			approx |= s->fail_timeout * 1000 != ms;
		} else if (strcmp(w, "backup") == 0)
			s->backup = true;
		else if (strcmp(w, "down") == 0)
			s->down = true;
		else if (strcmp(w, "drain") == 0)
			s->drain = true;
		else if (strncmp(w, "max_conns=", 10) == 0 || strncmp(w, "slow_start=", 11) == 0 ||
			 strcmp(w, "resolve") == 0 || strncmp(w, "route=", 6) == 0 ||
			 strncmp(w, "service=", 8) == 0) {
			size_t l = strlen(lost);

			snprintf(lost + l, sizeof(lost) - l, "%s%s", l ? ", " : "", w);
		} else {
			m_error(m, d, "invalid parameter \"%s\"", w);
			return;
		}
	}
	u->nsrv++;
	if (lost[0] != '\0')
		m_say(m, d, IMP_APPROX, "server %s; not taken: %s%s", s->addr, lost,
		      resolved ? "; the name was resolved once, now" : "");
	else if (resolved)
		m_say(m, d, IMP_APPROX, "server %s: the name was resolved once, now (keel does not "
		      "re-resolve yet)", s->addr);
	else if (approx)
		m_say(m, d, IMP_APPROX, "server %s, within keel's bounds (weight 1-256, "
		      "fail_timeout 1s-1h in whole seconds)", s->addr);
	else
		m_say(m, d, IMP_MAPPED, "server %s", s->addr);
}

static void m_upstream(struct m_map *m, const struct imp_ngx_dir *d)
{
	const struct imp_ngx_dir *c;
	struct m_up *u;

	if (d->argc != 2) {
		m_error(m, d, "\"upstream\" takes one name");
		return;
	}
	if (!m_printable(d->argv[1], false) || strlen(d->argv[1]) > 63) {
		m_error(m, d, "upstream names keel takes are printable ASCII, up to 63 bytes");
		return;
	}
	if (m_up_find(m, d->argv[1]) != NULL) {
		m_error(m, d, "duplicate upstream \"%s\"", d->argv[1]);
		return;
	}
	if ((u = m_up_new(m, d, d->argv[1])) == NULL)
		return;
	m_say(m, d, IMP_MAPPED, "`upstreams.%s`", u->name);
	for (c = d->child; c != NULL; c = c->next) {
		const char *n = c->argv[0];

		if (c->kind == IMP_NGX_BLOCK) {
			m_skip_block(m, c, "no such block in an upstream");
		} else if (strcmp(n, "server") == 0) {
			m_up_server(m, u, c);
		} else if (strcmp(n, "ip_hash") == 0 || strcmp(n, "least_conn") == 0) {
			u->balance = n;
			m_other(m, c);
		} else if (strcmp(n, "random") == 0) {
			u->balance = "p2c";
			m_other(m, c);
		} else if (strcmp(n, "hash") == 0) {
			if (c->argc >= 2 && (strcmp(c->argv[1], "$remote_addr") == 0 ||
					     strcmp(c->argv[1], "$binary_remote_addr") == 0)) {
				u->balance = "ip_hash";
				m_say(m, c, IMP_APPROX, "`balance: ip_hash` (keel hashes the client "
				      "address its own way)");
			} else if (c->argc >= 2 && strncmp(c->argv[1], "$cookie_", 8) == 0) {
				u->balance = "cookie";
				m_say(m, c, IMP_APPROX, "`balance: cookie`: keel pins each client "
				      "with its own signed cookie instead of hashing %s", c->argv[1]);
			} else
				m_say(m, c, IMP_UNSUPPORTED, "keel cannot hash on %s; round robin",
				      c->argc >= 2 ? c->argv[1] : "nothing");
		} else if (strcmp(n, "keepalive") == 0) {
			int k = c->argc == 2 ? m_int(c->argv[1], 0, 10000) : -1;

			if (k < 0)
				m_error(m, c, "\"keepalive\" takes a number up to 10000");
			else {
				u->keepalive = k;
				m_say(m, c, IMP_MAPPED, "`keepalive: %d` idle connections per server "
				      "(nginx's count is per worker)", k);
			}
		} else if (strcmp(n, "keepalive_timeout") == 0) {
			int64_t ms = c->argc == 2 ? m_time(c->argv[1]) : -1;

			if (ms < 0)
				m_error(m, c, "\"keepalive_timeout\" takes one time");
			else {
				u->keepalive_timeout = m_clamp(ms / 1000, 1, 3600);
				m_say(m, c, u->keepalive_timeout * 1000 == ms ? IMP_MAPPED : IMP_APPROX,
				      "`keepalive_timeout: %llds`", (long long)u->keepalive_timeout);
			}
		} else
			m_other(m, c);
	}
	if (u->nsrv == 0) {
		m_error(m, d, "upstream \"%s\" has no servers", u->name);
	} else {			/* nginx refuses these too */
		unsigned i, primary = 0;

		for (i = 0; i < u->nsrv; i++)
			primary += !u->srv[i].backup;
		if (primary == 0)
			m_error(m, d, "upstream \"%s\" has only backup servers", u->name);
	}
}

/* ---- server { } and location { } --------------------------------------------------------------- */

/* "^/app_a/" or "^/app_a" of a regex location: the literal prefix it
 * stands for, or false. */
static bool m_regex_prefix(const char *re, char *out, size_t len)
{
	size_t o = 0;

	if (re[0] != '^' || re[1] != '/')
		return false;
	for (re++; *re != '\0'; re++) {
		char ch = *re;

		if (ch == '\\' && re[1] != '\0' && strchr("./-_", re[1]) != NULL)
			ch = *++re;
		else if (!(isalnum((unsigned char)ch) || ch == '/' || ch == '_' || ch == '-'))
			return false;
		if (o + 1 >= len)
			return false;
		out[o++] = ch;
	}
	out[o] = '\0';
	return true;
}

/* A location path as keel's prefix: "/app_a/". */
static bool m_path_ok(const char *p)
{
	size_t i;

	if (p[0] != '/' || strlen(p) > 1024)
		return false;
	for (i = 0; p[i] != '\0'; i++)
		if ((unsigned char)p[i] <= ' ' || p[i] == '?' || p[i] == '#' ||
		    (unsigned char)p[i] >= 0x7f)
			return false;
	return true;
}

static struct m_up *m_implicit_up(struct m_map *m, const struct imp_ngx_dir *d,
				  const char *hostport, bool tls)
{
	char addr[80], name[64], err[300];
	struct m_up *u;
	bool resolved;
	size_t i;

	if (m_addr(m, hostport, tls ? 443 : 80, addr, sizeof(addr), &resolved, err, sizeof(err)) != 0) {
		m_error(m, d, "%s", err);
		return NULL;
	}
	i = strlen(addr) < sizeof(name) ? strlen(addr) : sizeof(name) - 1;
	memcpy(name, addr, i);
	name[i] = '\0';
	for (i = 0; name[i] != '\0'; i++)
		if (!isalnum((unsigned char)name[i]))
			name[i] = '_';
	if ((u = m_up_find(m, name)) != NULL)
		return u;
	if ((u = m_up_new(m, d, name)) == NULL)
		return NULL;
	snprintf(u->srv[0].addr, sizeof(u->srv[0].addr), "%s", addr);
	u->srv[0].weight = 1;
	u->srv[0].max_fails = 1;
	u->srv[0].fail_timeout = -1;
	u->nsrv = 1;
	return u;
}

static struct m_route *m_route_new(struct m_map *m, const struct imp_ngx_dir *d, unsigned srv,
				   const char *path, const struct m_cfg *cfg)
{
	struct m_route *r;

	if (m->nroutes == M_MAX_ROUTES) {
		m_error(m, d, "more than %d locations", M_MAX_ROUTES);
		return NULL;
	}
	r = &m->routes[m->nroutes++];
	memset(r, 0, sizeof(*r));
	snprintf(r->path, sizeof(r->path), "%s", path);
	r->cfg = *cfg;
	r->server = srv;
	r->at = d;
	m->servers[srv].nroutes++;
	return r;
}

/* proxy_pass URL in a location: the route's upstream and rewrite. */
static void m_proxy_pass(struct m_map *m, const struct imp_ngx_dir *d, struct m_route *r,
			 bool regex, bool exact, const char *locpath)
{
	const char *url, *hp, *slash;
	char hostport[300];
	struct m_up *u;
	bool tls;
	char notes[400] = "";

	if (d->argc != 2) {
		m_error(m, d, "\"proxy_pass\" takes one URL");
		return;
	}
	url = d->argv[1];
	if (strncmp(url, "http://", 7) == 0)
		tls = false, hp = url + 7;
	else if (strncmp(url, "https://", 8) == 0)
		tls = true, hp = url + 8;
	else {
		m_error(m, d, "invalid URL prefix in \"%s\"", url);
		return;
	}
	if (strchr(url, '$') != NULL) {
		m_say(m, d, IMP_UNSUPPORTED, "keel cannot take variables in proxy_pass");
		return;
	}
	if (!m_printable(url, false) || strchr(url, ' ') != NULL || strchr(url, '?') != NULL ||
	    strchr(url, '#') != NULL) {
		m_say(m, d, IMP_UNSUPPORTED, "keel's rewrite is a plain path: no spaces, query or "
		      "bytes outside printable ASCII");
		return;
	}
	if (strncmp(hp, "unix:", 5) == 0) {
		m_say(m, d, IMP_UNSUPPORTED, "keel connects to servers over TCP, not UNIX sockets");
		return;
	}
	slash = strchr(hp, '/');
	snprintf(hostport, sizeof(hostport), "%.*s", slash ? (int)(slash - hp) : (int)strlen(hp),
		 hp);
	if (slash != NULL && regex) {
		m_error(m, d, "\"proxy_pass\" cannot have URI part in location given by regular "
			"expression");
		return;
	}
	u = m_up_find(m, hostport);
	if (u == NULL)
		u = m_implicit_up(m, d, hostport, tls);
	if (u == NULL)
		return;
	u->used = true;
	if (tls) {
		u->tls = true;
		u->tls_seen = true;
	} else
		u->plain_seen = true;
	if (u->tls_seen && u->plain_seen)
		snprintf(notes, sizeof(notes), "; upstream %s is proxied to over both HTTP and "
			 "HTTPS, and keel speaks HTTPS to all of it", u->name);
	r->up = u;
	if (slash == NULL || strcmp(slash, locpath) == 0) {
		r->rewrite[0] = '\0';
		m_say(m, d, IMP_MAPPED, "route to upstream %s, path kept%s%s", u->name,
		      tls ? " (`tls.enabled`, `verify: false` as nginx's default)" : "", notes);
	} else {
		size_t pl = strlen(locpath), ul = strlen(slash);
		bool slash_gap = pl > 0 && locpath[pl - 1] != '/' && slash[ul - 1] == '/';

		snprintf(r->rewrite, sizeof(r->rewrite), "%s", strcmp(slash, "/") ? slash : "strip");
		m_say(m, d, IMP_MAPPED, "route to upstream %s, `rewrite: %s`%s%s%s", u->name,
		      r->rewrite, exact ? " (the exact path is replaced)" : "",
		      slash_gap && !exact ? "; and a route for the prefix with its slash, to send "
		      "what nginx sends after it (\"/x/\" becomes \"/x//\")" : "", notes);
		/* nginx swaps the prefix as it is: "/reports/a" becomes "//a"
		 * under proxy_pass http://u/; keel's rewrite keeps one slash
		 * between them, so a route for "/reports/" says "//" itself */
		if (slash_gap && !exact && pl + 1 < sizeof(r->path) && ul + 1 < sizeof(r->rewrite)) {
			struct m_route *n = m_route_new(m, r->at, r->server, "/", &r->cfg);

			if (n != NULL) {
				*n = *r;
				snprintf(n->path, sizeof(n->path), "%s/", locpath);
				snprintf(n->rewrite, sizeof(n->rewrite), "%s/", slash);
			}
		}
	}
	if (!r->cfg.host_client)
		m_say(m, d, IMP_APPROX, "keel sends the client's Host header; nginx sent \"%s\" "
		      "here (add `proxy_set_header Host $host;` to make nginx do the same)",
		      hostport);
}

static bool m_is_https_redirect(const struct imp_ngx_dir *d)
{
	const char *u;

	if (d->argc != 3 || (strcmp(d->argv[1], "301") && strcmp(d->argv[1], "302") &&
			     strcmp(d->argv[1], "307") && strcmp(d->argv[1], "308")))
		return false;
	u = d->argv[2];
	return !strcmp(u, "https://$host$request_uri") ||
	       !strcmp(u, "https://$server_name$request_uri") ||
	       !strcmp(u, "https://$http_host$request_uri");
}

/* "return CODE [TEXT|URL]" or "return URL" as the route's return; the
 * URL's variables those keel fills in. */
static void m_return(struct m_map *m, const struct imp_ngx_dir *d, struct m_route *r)
{
	static const char *const vars[] = { "$scheme", "$host", "$request_uri", "$uri", "$args" };
	const char *arg, *v;
	char url[1025], lost[200] = "";
	bool redirect, approx = false;
	size_t o = 0, i;
	int code;

	if (d->argc < 2 || d->argc > 3) {
		m_error(m, d, "\"return\" takes a code and a text or URL, or a URL");
		return;
	}
	if (d->argc == 2 && (!strncmp(d->argv[1], "http://", 7) ||
			     !strncmp(d->argv[1], "https://", 8) || !strncmp(d->argv[1], "$scheme", 7))) {
		code = 302;
		arg = d->argv[1];
	} else {
		code = m_int(d->argv[1], 0, 999);
		arg = d->argc == 3 ? d->argv[2] : NULL;
	}
	if (code < 0) {
		m_error(m, d, "invalid return code \"%s\"", d->argv[1]);
		return;
	}
	if (code < 200 || code > 599) {
		r->dead = true;
		m_say(m, d, IMP_UNSUPPORTED, "keel answers with statuses 200-599%s",
		      code == 444 ? "; it cannot close without an answer" : "");
		return;
	}
	redirect = code == 301 || code == 302 || code == 303 || code == 307 || code == 308;
	r->ret = (unsigned)code;
	if (!redirect) {
		if (arg != NULL && strchr(arg, '$') != NULL) {
			r->dead = true;
			m_say(m, d, IMP_UNSUPPORTED, "keel's return_body is plain text, without "
			      "variables");
			return;
		}
		if (arg != NULL && !m_printable(arg, true)) {
			r->dead = true;
			m_say(m, d, IMP_UNSUPPORTED, "keel's return_body is printable ASCII text");
			return;
		}
		r->ret_body = arg ? arg : "";
		m_say(m, d, IMP_MAPPED, "route `return: %d`%s", code, arg ? " with its text" : "");
		return;
	}
	if (arg == NULL || !m_printable(arg, false) || strchr(arg, ' ') != NULL) {
		r->dead = true;
		m_say(m, d, IMP_UNSUPPORTED, "a redirect needs a URL keel can send: printable "
		      "ASCII without spaces");
		return;
	}
	for (v = arg; *v != '\0' && o + 16 < sizeof(url);) {
		if (*v != '$') {
			url[o++] = *v++;
			continue;
		}
		for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
			size_t n = strlen(vars[i]);

			if (!strncmp(v, vars[i], n) && !isalnum((unsigned char)v[n]) && v[n] != '_')
				break;
		}
		if (i < sizeof(vars) / sizeof(vars[0])) {
			size_t n = strlen(vars[i]);

			memcpy(url + o, v, n);
			o += n;
			v += n;
		} else if (!strncmp(v, "$server_name", 12) || !strncmp(v, "$http_host", 10)) {
			memcpy(url + o, "$host", 5);
			o += 5;
			v += v[1] == 's' ? 12 : 10;
			approx = true;
		} else {
			size_t l = strlen(lost);

			snprintf(lost + l, sizeof(lost) - l, "%s%.20s", l ? " " : "", v);
			v++;
			while (isalnum((unsigned char)*v) || *v == '_')
				v++;
		}
	}
	url[o] = '\0';
	if (lost[0] != '\0' || *v != '\0') {
		r->dead = true;
		m_say(m, d, IMP_UNSUPPORTED, "keel fills in $scheme, $host, $request_uri, $uri and "
		      "$args only, not %s", lost[0] ? lost : "(too long)");
		return;
	}
	r->ret_url = m_own(m, strdup(url));
	if (url[0] == '/')
		approx = true;
	m_say(m, d, approx ? IMP_APPROX : IMP_MAPPED, "route `return: %d`, `return_url: %s`%s%s",
	      code, url, url[0] == '/' ? " (keel sends it as written; nginx makes it absolute)" :
	      "", approx && url[0] != '/' ? " ($server_name and $http_host become $host)" : "");
}

static void m_location(struct m_map *m, const struct imp_ngx_dir *d, unsigned srv,
		       const struct m_cfg *up_cfg);

/* The directives of a location (or a server's own level), in two passes:
 * settings first, since nginx applies them to locations written above. */
static void m_level_settings(struct m_map *m, const struct imp_ngx_dir *first,
			     struct m_cfg *cfg, enum m_ctx ctx)
{
	const struct imp_ngx_dir *c;
	bool hdrs = false, addh = false;

	/* nginx: a level that sets any proxy_set_header or add_header
	 * replaces the whole inherited list */
	for (c = first; c != NULL; c = c->next) {
		if (c->kind != IMP_NGX_SIMPLE)
			continue;
		hdrs |= strcmp(c->argv[0], "proxy_set_header") == 0;
		addh |= strcmp(c->argv[0], "add_header") == 0;
	}
	if (hdrs) {
		cfg->hdrs_set = false;
		cfg->host_client = false;
	}
	if (addh) {
		cfg->addh_set = false;
		cfg->hsts = 0;
	}
	for (c = first; c != NULL; c = c->next)
		if (c->kind == IMP_NGX_SIMPLE)
			m_setting(m, c, cfg, ctx);
}

static bool m_is_setting(const char *n)
{
	static const char *const set[] = {
		"proxy_connect_timeout", "proxy_send_timeout", "proxy_read_timeout",
		"keepalive_timeout", "client_max_body_size", "proxy_next_upstream",
		"proxy_next_upstream_tries", "proxy_set_header", "add_header",
		"ssl_certificate", "ssl_certificate_key",
	};
	size_t i;

	for (i = 0; i < sizeof(set) / sizeof(set[0]); i++)
		if (strcmp(set[i], n) == 0)
			return true;
	return false;
}

static void m_location(struct m_map *m, const struct imp_ngx_dir *d, unsigned srv,
		       const struct m_cfg *up_cfg)
{
	const struct imp_ngx_dir *c, *pass = NULL, *ret = NULL;
	struct m_cfg cfg = *up_cfg;
	struct m_route *r;
	char path[1025];
	bool regex = false, exact = false, named = false;
	const char *mod = NULL, *p;

	if (d->argc == 2)
		p = d->argv[1];
	else if (d->argc == 3) {
		mod = d->argv[1];
		p = d->argv[2];
	} else {
		m_error(m, d, "\"location\" takes an optional modifier and a path");
		return;
	}
	if (mod == NULL && p[0] == '@')
		named = true;
	else if (mod == NULL && p[0] == '=') {	/* "=/x" */
		exact = true;
		p++;
	} else if (mod != NULL && strcmp(mod, "=") == 0)
		exact = true;
	else if (mod != NULL && (strcmp(mod, "~") == 0 || strcmp(mod, "~*") == 0))
		regex = true;
	else if (mod != NULL && strcmp(mod, "^~") != 0) {
		m_error(m, d, "invalid location modifier \"%s\"", mod);
		return;
	}

	m_level_settings(m, d->child, &cfg, M_LOCATION);
	for (c = d->child; c != NULL; c = c->next)
		if (c->kind == IMP_NGX_SIMPLE && strcmp(c->argv[0], "proxy_pass") == 0)
			pass = c;
		else if (c->kind == IMP_NGX_SIMPLE && strcmp(c->argv[0], "return") == 0 && !ret)
			ret = c;

	path[0] = '\0';
	if (named) {
		m_say(m, d, IMP_UNSUPPORTED, "named locations (for try_files, error_page) have no "
		      "keel equivalent");
	} else if (regex) {
		if (m_regex_prefix(p, path, sizeof(path)) && m_path_ok(path)) {
			if (pass != NULL || ret != NULL)
				m_say(m, d, IMP_APPROX, "route with the prefix %s: keel has no regular "
				      "expressions, and nginx tries them after the longest prefix (and "
				      "does not redirect %.*s to it)%s", path, (int)strlen(path) - 1, path,
				      strcmp(mod, "~*") == 0 ? "; keel's prefixes are case-sensitive" : "");
		} else {
			m_say(m, d, IMP_UNSUPPORTED, "keel routes by path prefix; this regular "
			      "expression is not one");
			path[0] = '\0';
		}
	} else if (!m_path_ok(p)) {
		m_say(m, d, IMP_UNSUPPORTED, "\"%s\" is not a path keel can route", p);
	} else {
		snprintf(path, sizeof(path), "%s", p);
		if ((pass != NULL || ret != NULL) && exact)
			m_say(m, d, IMP_MAPPED, "route for exactly %s (`exact: true`)", path);
		else if (pass != NULL || ret != NULL)
			m_say(m, d, IMP_MAPPED, "route with the prefix %s%s", path,
			      mod ? " (keel has no regular expressions to stop)" : "");
	}
	if (!named && path[0] != '\0' && pass == NULL && ret == NULL)
		m_say(m, d, IMP_UNSUPPORTED, "no proxy_pass or return here: keel makes no route for "
		      "%s (the directives inside say why)", path);

	r = NULL;
	if (!named && path[0] != '\0' && (pass != NULL || ret != NULL)) {
		/* nginx's return runs before proxy_pass: it wins */
		if (ret != NULL && m_is_https_redirect(ret) && strcmp(path, "/") == 0 && !regex &&
		    !exact) {
			m->servers[srv].redirect_https = true;
			m->servers[srv].https_at = ret;
		} else if ((r = m_route_new(m, d, srv, path, &cfg)) != NULL) {
			r->exact = exact;
			r->regex = regex;
		}
	}
	for (c = d->child; c != NULL; c = c->next) {
		const char *n = c->argv[0];

		if (c->kind == IMP_NGX_INCLUDE) {
			m_include(m, c);
		} else if (c->kind == IMP_NGX_BLOCK && strcmp(n, "location") == 0) {
			m_location(m, c, srv, &cfg);
		} else if (c->kind == IMP_NGX_BLOCK) {
			m_skip_block(m, c, strcmp(n, "if") == 0 ? "keel has no conditions in routes" :
				     strcmp(n, "limit_except") == 0 ? "keel has no per-method rules" :
				     "not a block keel knows in a location");
		} else if (m_is_setting(n)) {
			/* reported by m_level_settings */
		} else if (c == pass && ret != NULL) {
			m_say(m, c, IMP_MAPPED, "nginx answers with the return first, and so does keel");
		} else if (c == pass) {
			if (r != NULL)
				m_proxy_pass(m, c, r, regex, exact, path);
			else
				m_say(m, c, IMP_UNSUPPORTED, "its location is not mapped");
		} else if (c == ret) {
			if (m->servers[srv].https_at == c)
				m_say(m, c, IMP_APPROX, "`https_redirect: true` on this server's names' "
				      "HTTPS routes (301 to GET and HEAD, 308 to the rest)");
			else if (r != NULL)
				m_return(m, c, r);
			else
				m_say(m, c, IMP_UNSUPPORTED, "its location is not mapped");
		} else if (strcmp(n, "return") == 0) {
			m_say(m, c, IMP_UNSUPPORTED, "nginx stops at the first return above");
		} else
			m_other(m, c);
	}
	if (r != NULL && r->ret == 0 && r->up == NULL)	/* its proxy_pass said why */
		r->dead = true;
}

/* server_name words as keel hosts; false for a name keel cannot match. */
static void m_server_names(struct m_map *m, struct m_server *s, const struct imp_ngx_dir *d)
{
	unsigned i;
	char lost[300] = "";

	for (i = 1; i < d->argc; i++) {
		const char *w = d->argv[i];
		size_t l;

		if (w[0] == '\0' || strcmp(w, "_") == 0)
			continue;
		if (w[0] == '~' || (strchr(w, '*') && strncmp(w, "*.", 2) != 0) ||
		    strchr(w, '$') != NULL || !m_printable(w, false) || strlen(w) > 250 ||
		    strchr(w + 1, '*') != NULL) {
			l = strlen(lost);
			snprintf(lost + l, sizeof(lost) - l, "%s%s", l ? " " : "", w);
			continue;
		}
		if (s->nnames + 2 > M_MAX_HOSTS) {
			l = strlen(lost);
			snprintf(lost + l, sizeof(lost) - l, "%s%s", l ? " " : "", w);
			continue;
		}
		if (w[0] == '.') {	/* ".example.com": it and its subdomains */
			char *exact = strdup(w + 1), *wild = NULL;

			if (asprintf(&wild, "*%s", w) == -1)
				wild = NULL;
			s->names[s->nnames++] = m_own(m, exact);
			s->names[s->nnames++] = m_own(m, wild);
		} else {
			char *lc = strdup(w);
			size_t k;

			for (k = 0; lc != NULL && lc[k]; k++)
				lc[k] = (char)tolower((unsigned char)lc[k]);
			s->names[s->nnames++] = m_own(m, lc);
		}
	}
	if (lost[0] != '\0')
		m_say(m, d, IMP_APPROX, "route hosts; not taken (keel matches exact names and "
		      "\"*.domain\" only): %s", lost);
	else
		m_say(m, d, IMP_MAPPED, "route `hosts`");
}

static void m_listen(struct m_map *m, struct m_server *s, const struct imp_ngx_dir *d)
{
	struct m_listen *l;
	const char *a;
	char host[80];
	char err[300], lost[200] = "";
	bool resolved;
	unsigned i;
	int port;

	if (d->argc < 2) {
		m_error(m, d, "\"listen\" needs an address");
		return;
	}
	a = d->argv[1];
	if (strncmp(a, "unix:", 5) == 0) {
		m_say(m, d, IMP_UNSUPPORTED, "keel listens on TCP, not UNIX sockets");
		return;
	}
	if (s->nlisten == M_MAX_LISTEN) {
		m_say(m, d, IMP_UNSUPPORTED, "more than %d listen directives", M_MAX_LISTEN);
		return;
	}
	l = &s->listen[s->nlisten];
	memset(l, 0, sizeof(*l));
	if ((port = m_int(a, 1, 65535)) > 0) {		/* "80" */
		snprintf(l->addr, sizeof(l->addr), "*:%d", port);
	} else if (a[0] == '*' && a[1] == ':' && (port = m_int(a + 2, 1, 65535)) > 0) {
		snprintf(l->addr, sizeof(l->addr), "*:%d", port);
	} else {
		if (m_addr(m, a, 80, host, sizeof(host), &resolved, err, sizeof(err)) != 0) {
			m_error(m, d, "%s", err);
			return;
		}
		snprintf(l->addr, sizeof(l->addr), "%s", host);
		port = atoi(strrchr(host, ':') + 1);
	}
	l->port = (unsigned)port;
	for (i = 2; i < d->argc; i++) {
		const char *w = d->argv[i];

		if (strcmp(w, "ssl") == 0)
			l->ssl = true;
		else if (strcmp(w, "default_server") == 0 || strcmp(w, "default") == 0)
			l->dflt = true;
		else {
			size_t n = strlen(lost);

			snprintf(lost + n, sizeof(lost) - n, "%s%s", n ? ", " : "", w);
		}
	}
	s->nlisten++;
	s->any_ssl |= l->ssl;
	s->any_plain |= !l->ssl;
	if (lost[0] != '\0')
		m_say(m, d, IMP_APPROX, "listener %s%s; keel sets these itself or has none: %s",
		      l->addr, l->ssl ? " with TLS" : "", lost);
	else
		m_say(m, d, IMP_MAPPED, "listener %s%s", l->addr, l->ssl ? " with TLS" : "");
}

static void m_server(struct m_map *m, const struct imp_ngx_dir *d, const struct m_cfg *http)
{
	const struct imp_ngx_dir *c;
	struct m_server *s;
	struct m_cfg cfg = *http;
	unsigned idx;

	if (m->nservers == m->cap_servers) {
		unsigned cap = m->cap_servers ? m->cap_servers * 2 : 16;
		struct m_server *grown = realloc(m->servers, cap * sizeof(*grown));

		if (grown == NULL) {
			m->oom = true;
			return;
		}
		m->servers = grown;
		m->cap_servers = cap;
	}
	idx = m->nservers++;
	s = &m->servers[idx];
	memset(s, 0, sizeof(*s));
	s->at = d;
	m_say(m, d, IMP_MAPPED, "its locations become routes");
	m_level_settings(m, d->child, &cfg, M_SERVER);
	s->cfg = cfg;
	s->cert = cfg.cert;
	s->key = cfg.key;
	for (c = d->child; c != NULL; c = c->next) {
		const char *n = c->argv[0];

		if (c->kind == IMP_NGX_INCLUDE)
			m_include(m, c);
		else if (c->kind == IMP_NGX_SIMPLE && strcmp(n, "listen") == 0)
			m_listen(m, &m->servers[idx], c);
		else if (c->kind == IMP_NGX_SIMPLE && strcmp(n, "server_name") == 0)
			m_server_names(m, &m->servers[idx], c);
	}
	if (m->servers[idx].nlisten == 0) {
		s = &m->servers[idx];
		snprintf(s->listen[0].addr, sizeof(s->listen[0].addr), "*:80");
		s->listen[0].port = 80;
		s->nlisten = 1;
		s->any_plain = true;
	}
	for (c = d->child; c != NULL; c = c->next) {
		const char *n = c->argv[0];

		if (c->kind == IMP_NGX_INCLUDE || m_is_setting(n) ||
		    (c->kind == IMP_NGX_SIMPLE && (!strcmp(n, "listen") || !strcmp(n, "server_name"))))
			continue;
		if (c->kind == IMP_NGX_BLOCK && strcmp(n, "location") == 0)
			m_location(m, c, idx, &cfg);
		else if (c->kind == IMP_NGX_BLOCK)
			m_skip_block(m, c, strcmp(n, "if") == 0 ? "keel has no conditions in routes" :
				     "not a block keel knows in a server");
		else if (strcmp(n, "return") == 0 && m->servers[idx].ret != NULL)
			m_say(m, c, IMP_UNSUPPORTED, "nginx stops at the first return above");
		else if (strcmp(n, "return") == 0) {
			m->servers[idx].ret = c;
			if (m_is_https_redirect(c)) {
				m->servers[idx].redirect_https = true;
				m->servers[idx].https_at = c;
				m_say(m, c, IMP_APPROX, "`https_redirect: true` on this server's names' "
				      "HTTPS routes (301 to GET and HEAD, 308 to the rest)");
			} else {
				/* nginx answers before any location: a route for "/" */
				struct m_route *r = m_route_new(m, c, idx, "/", &cfg);

				if (r != NULL)
					m_return(m, c, r);
				if (r != NULL && m->servers[idx].nroutes > 1)
					m_say(m, c, IMP_APPROX, "keel's longer prefixes (this server's "
					      "locations) still win over it");
			}
		} else
			m_other(m, c);
	}
}

static void m_http(struct m_map *m, const struct imp_ngx_dir *d)
{
	const struct imp_ngx_dir *c;
	struct m_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.connect = cfg.send = cfg.read = cfg.idle = cfg.max_body = -1;
	cfg.tries = -1;
	m_say(m, d, IMP_MAPPED, "keel's proxy");
	/* upstreams first: proxy_pass may name one written further down */
	for (c = d->child; c != NULL; c = c->next)
		if (c->kind == IMP_NGX_BLOCK && strcmp(c->argv[0], "upstream") == 0)
			m_upstream(m, c);
	m_level_settings(m, d->child, &cfg, M_HTTP);
	for (c = d->child; c != NULL; c = c->next) {
		const char *n = c->argv[0];

		if (c->kind == IMP_NGX_INCLUDE)
			m_include(m, c);
		else if (c->kind == IMP_NGX_BLOCK && strcmp(n, "upstream") == 0)
			continue;
		else if (c->kind == IMP_NGX_BLOCK && strcmp(n, "server") == 0)
			m_server(m, c, &cfg);
		else if (c->kind == IMP_NGX_BLOCK && strcmp(n, "types") == 0) {
			const struct imp_ngx_dir *t;

			m_other(m, c);
			for (t = c->child; t != NULL; t = t->next)
				m_say(m, t, IMP_APPROX, "a MIME type for files nginx serves itself");
		} else if (c->kind == IMP_NGX_BLOCK)
			m_skip_block(m, c, strcmp(n, "map") == 0 ? "keel has no variables" :
				     "not a block keel knows in http");
		else if (m_is_setting(n))
			continue;
		else
			m_other(m, c);
	}
}

/* ---- after the walk: hosts, HTTPS pairs, listeners -------------------------------------------- */

static bool m_hosts_meet(const struct m_server *a, const struct m_server *b)
{
	unsigned i, j;

	for (i = 0; i < a->nnames; i++)
		for (j = 0; j < b->nnames; j++)
			if (strcmp(a->names[i], b->names[j]) == 0)
				return true;
	return false;
}

static void m_finish(struct m_map *m)
{
	unsigned i, j, k, dflt = UINT32_MAX;

	/* A plain server that sends everything to HTTPS with no HTTPS server
	 * of its names here: it redirects by itself. */
	for (i = 0; i < m->nservers; i++) {
		const struct m_server *p = &m->servers[i];
		bool twin = false;
		struct m_route *r;

		for (k = 0; p->redirect_https && k < m->nservers && !twin; k++)
			twin = m->servers[k].any_ssl && !m->servers[k].any_plain &&
			       (m_hosts_meet(p, &m->servers[k]) || p->nnames == 0);
		if (!p->redirect_https || twin)
			continue;
		if ((r = m_route_new(m, p->https_at, i, "/", &p->cfg)) != NULL) {
			r->ret = 301;
			r->ret_url = "https://$host$request_uri";
		}
		m->servers[i].redirect_https = false;
	}

	/* Which server answers a Host no server names: the default of the
	 * first port with routes (keel's routes are the same on every
	 * listener). */
	for (i = 0; i < m->nservers && dflt == UINT32_MAX; i++) {
		struct m_server *s = &m->servers[i];

		if (s->nroutes == 0)
			continue;
		for (j = 0; j < s->nlisten && dflt == UINT32_MAX; j++) {
			unsigned port = s->listen[j].port, first = UINT32_MAX, marked = UINT32_MAX;

			for (k = 0; k < m->nservers; k++) {
				const struct m_server *o = &m->servers[k];
				unsigned q;

				for (q = 0; q < o->nlisten; q++)
					if (o->listen[q].port == port && o->nroutes > 0) {
						if (first == UINT32_MAX)
							first = k;
						if (o->listen[q].dflt && marked == UINT32_MAX)
							marked = k;
					}
			}
			dflt = marked != UINT32_MAX ? marked : first;
		}
	}
	for (i = 0; i < m->nroutes; i++) {
		struct m_route *r = &m->routes[i];
		const struct m_server *s = &m->servers[r->server];

		if (r->server == dflt)
			r->hostless = true;
		else
			for (j = 0; j < s->nnames; j++)
				r->hosts[r->nhosts++] = s->names[j];
		if (!r->hostless && r->nhosts == 0)
			m_say(m, r->at, IMP_UNSUPPORTED, "its server has no name keel can match and "
			      "is not the default server: no request reaches this route");
	}
	/* server { listen 80; return 301 https://$host$request_uri; } next to
	 * an HTTPS server of the same names: keel redirects plain HTTP on
	 * those routes itself. */
	for (i = 0; i < m->nservers; i++) {
		const struct m_server *p = &m->servers[i];

		if (!p->redirect_https)
			continue;
		for (k = 0; k < m->nroutes; k++) {
			struct m_route *r = &m->routes[k];
			const struct m_server *s = &m->servers[r->server];

			if (s->any_ssl && !s->any_plain && (m_hosts_meet(p, s) || r->hostless))
				r->https_redirect = true;
		}
	}
	/* keel redirects "/legacy" to a route "/legacy/"; nginx does not for a
	 * regular expression: "/legacy" gets what the server's other locations
	 * give it, written as an exact route (or a 404). */
	for (i = 0, k = m->nroutes; i < k; i++) {
		const struct m_route *r = &m->routes[i], *best = NULL;
		size_t plen = strlen(r->path);
		struct m_route *n;

		if (!r->regex || r->dead || plen < 2 || r->path[plen - 1] != '/')
			continue;
		for (j = 0; j < k; j++) {
			const struct m_route *o = &m->routes[j];
			size_t olen = strlen(o->path);

			if (o->server != r->server || o->regex || o->dead)
				continue;
			if (o->exact ? olen == plen - 1 && !strncmp(o->path, r->path, olen) :
			    olen <= plen - 1 && !strncmp(o->path, r->path, olen) &&
			    (best == NULL || (!best->exact && olen > strlen(best->path))))
				best = o;
		}
		if ((n = m_route_new(m, r->at, r->server, "/", &r->cfg)) == NULL)
			break;
		if (best != NULL) {
			size_t blen = strlen(best->path);
			const char *rest = r->path + blen;

			*n = *best;		/* its hosts are the server's, as r's */
			n->at = r->at;
			if (!best->exact && best->rewrite[0] != '\0') {
				const char *with = strcmp(best->rewrite, "strip") ? best->rewrite : "/";
				size_t wl = strlen(with);

				snprintf(n->rewrite, sizeof(n->rewrite), "%.*s%.*s", (int)wl, with,
					 (int)(plen - 1 - blen) - (wl && with[wl - 1] == '/' &&
								   *rest == '/'),
					 rest + (wl && with[wl - 1] == '/' && *rest == '/'));
			}
		} else {		/* nginx finds no location: 404 */
			*n = *r;
			n->ret = 404;
			n->up = NULL;
			n->rewrite[0] = '\0';
			n->https_redirect = false;
		}
		n->exact = true;
		n->regex = false;
		snprintf(n->path, sizeof(n->path), "%.*s", (int)(plen - 1), r->path);
	}
	/* Two servers (on two ports, say) with a route for the same hosts and
	 * path: keel keeps the first. */
	for (i = 0; i < m->nroutes; i++) {
		struct m_route *r = &m->routes[i];

		for (j = 0; j < i && !r->dead; j++) {
			const struct m_route *o = &m->routes[j];
			bool same = !o->dead && o->hostless == r->hostless && o->exact == r->exact &&
				    o->nhosts == r->nhosts && strcmp(o->path, r->path) == 0;

			for (k = 0; same && k < r->nhosts; k++)
				same = strcmp(o->hosts[k], r->hosts[k]) == 0;
			if (same) {
				m_say(m, r->at, IMP_UNSUPPORTED, "%s:%u has a route for the same hosts "
				      "and path, and keel's routes do not tell listeners apart",
				      o->at->file->path, o->at->line);
				r->dead = true;
			}
		}
	}
}

/* ---- YAML ----------------------------------------------------------------------------------- */

static void m_cert_name(const char *path, char *out, size_t len)
{
	const char *base = strrchr(path, '/');
	size_t i, o = 0;

	base = base ? base + 1 : path;
	o = (size_t)snprintf(out, len, "nginx-");
	for (i = 0; base[i] != '\0' && o + 1 < len; i++) {
		char ch = base[i];

		if (ch == '.' && (!strcmp(base + i, ".crt") || !strcmp(base + i, ".pem") ||
				  !strcmp(base + i, ".cer")))
			break;
		out[o++] = isalnum((unsigned char)ch) || ch == '-' || ch == '_' ? ch : '_';
	}
	out[o] = '\0';
}

static int m_add_cert(struct m_map *m, const char *cert, const char *key, char **name)
{
	struct imp_result *r = m->res;
	char nm[64];
	size_t i;
	struct imp_cert *grown;

	for (i = 0; i < r->ncerts; i++)
		if (strcmp(r->certs[i].cert, cert) == 0 && strcmp(r->certs[i].key, key) == 0) {
			*name = r->certs[i].name;
			return 0;
		}
	m_cert_name(cert, nm, sizeof(nm));
	for (i = 0; i < r->ncerts; i++)		/* two folders, one file name */
		if (strcmp(r->certs[i].name, nm) == 0) {
			size_t l = strlen(nm);

			snprintf(nm + (l > 56 ? 56 : l), sizeof(nm) - (l > 56 ? 56 : l), "-%zu",
				 r->ncerts + 1);
			i = (size_t)-1;
		}
	grown = realloc(r->certs, (r->ncerts + 1) * sizeof(*grown));
	if (grown == NULL)
		return -1;
	r->certs = grown;
	grown[r->ncerts].cert = strdup(cert);
	grown[r->ncerts].key = strdup(key);
	grown[r->ncerts].name = strdup(nm);
	if (!grown[r->ncerts].cert || !grown[r->ncerts].key || !grown[r->ncerts].name) {
		free(grown[r->ncerts].cert);
		free(grown[r->ncerts].key);
		free(grown[r->ncerts].name);
		return -1;
	}
	*name = grown[r->ncerts++].name;
	return 0;
}

static void m_emit(struct m_map *m, struct core_buf *y)
{
	char t[32];
	unsigned i, j, k;

	/* listeners: one per address; TLS with every certificate of the
	 * servers on it */
	core_buf_printf(y, "listeners:%s\n", m->nservers == 0 ? " []" : "");
	for (i = 0; i < m->nservers; i++)
		for (j = 0; j < m->servers[i].nlisten; j++) {
			const struct m_listen *l = &m->servers[i].listen[j];
			bool seen = false, wild_seen = false;
			unsigned a, b, ncert = 0;

			for (a = 0; a <= i && !seen; a++)
				for (b = 0; b < m->servers[a].nlisten && !seen; b++) {
					if (a == i && b == j)
						break;
					seen = !strcmp(m->servers[a].listen[b].addr, l->addr);
				}
			/* "*:80" covers "127.0.0.1:80" */
			for (a = 0; a < m->nservers && !wild_seen && l->addr[0] != '*'; a++)
				for (b = 0; b < m->servers[a].nlisten; b++)
					if (m->servers[a].listen[b].addr[0] == '*' &&
					    m->servers[a].listen[b].port == l->port)
						wild_seen = true;
			if (seen || wild_seen)
				continue;
			core_buf_printf(y, "  - address: ");
			core_json_str(y, l->addr);
			core_buf_printf(y, "\n");
			for (a = 0; a < m->nservers; a++) {
				const struct m_server *s = &m->servers[a];
				bool on = false;
				char *name;

				for (b = 0; b < s->nlisten; b++)
					on |= s->listen[b].ssl && s->listen[b].port == l->port &&
					      (!strcmp(s->listen[b].addr, l->addr) ||
					       l->addr[0] == '*');
				if (!on)
					continue;
				if (s->cert == NULL || s->key == NULL) {
					m_error(m, s->at, "this server listens with ssl but has no "
						"\"ssl_certificate\" and \"ssl_certificate_key\"");
					continue;
				}
				if (m_add_cert(m, s->cert, s->key, &name) != 0) {
					m->oom = true;
					continue;
				}
				if (ncert++ == 0)
					core_buf_printf(y, "    tls:\n      certificates:\n");
				core_buf_printf(y, "        - cert: \"%s/%s.crt\"\n", m->certdir, name);
				core_buf_printf(y, "          key: \"%s/%s.key\"\n", m->certdir, name);
			}
		}

	core_buf_printf(y, "\nupstreams:%s\n", m->nups == 0 ? " {}" : "");
	for (i = 0; i < m->nups; i++) {
		const struct m_up *u = &m->ups[i];

		core_buf_printf(y, "  ");
		core_json_str(y, u->name);
		core_buf_printf(y, ":\n");
		if (u->balance != NULL)
			core_buf_printf(y, "    balance: %s\n", u->balance);
		if (u->keepalive >= 0)
			core_buf_printf(y, "    keepalive: %d\n", u->keepalive);
		if (u->keepalive_timeout > 0)
			core_buf_printf(y, "    keepalive_timeout: %llds\n",
					(long long)u->keepalive_timeout);
		if (u->tls)
			core_buf_printf(y, "    tls: { enabled: true, verify: false }\n");
		core_buf_printf(y, "    servers:\n");
		for (j = 0; j < u->nsrv; j++) {
			const struct m_srv *s = &u->srv[j];

			core_buf_printf(y, "      - { address: \"%s\"", s->addr);
			if (s->weight != 1)
				core_buf_printf(y, ", weight: %u", s->weight);
			if (s->max_fails != 1)
				core_buf_printf(y, ", max_fails: %u", s->max_fails);
			if (s->fail_timeout > 0)
				core_buf_printf(y, ", fail_timeout: %llds", (long long)s->fail_timeout);
			if (s->backup)
				core_buf_printf(y, ", backup: true");
			if (s->down)
				core_buf_printf(y, ", down: true");
			if (s->drain)
				core_buf_printf(y, ", drain: true");
			core_buf_printf(y, " }\n");
		}
	}

	for (i = 0, k = 0; i < m->nroutes; i++)
		k += !m->routes[i].dead && (m->routes[i].hostless || m->routes[i].nhosts > 0);
	core_buf_printf(y, "\nroutes:%s\n", k == 0 ? " []" : "");
	for (i = 0; i < m->nroutes; i++) {
		const struct m_route *r = &m->routes[i];
		const struct m_cfg *c = &r->cfg;
		int tries;

		if (r->dead || (!r->hostless && r->nhosts == 0))
			continue;
		core_buf_printf(y, "  # %s:%u\n  - ", r->at->file->path, r->at->line);
		if (!r->hostless) {
			core_buf_printf(y, "hosts: [");
			for (k = 0; k < r->nhosts; k++) {
				if (k > 0)
					core_buf_printf(y, ", ");
				core_json_str(y, r->hosts[k]);
			}
			core_buf_printf(y, "]\n    ");
		}
		core_buf_printf(y, "path: ");
		core_json_str(y, r->path);
		core_buf_printf(y, "\n");
		if (r->exact)
			core_buf_printf(y, "    exact: true\n");
		if (r->ret != 0) {
			core_buf_printf(y, "    return: %u\n", r->ret);
			if (r->ret_url != NULL) {
				core_buf_printf(y, "    return_url: ");
				core_json_str(y, r->ret_url);
				core_buf_printf(y, "\n");
			}
			if (r->ret_body != NULL && r->ret_body[0] != '\0') {
				core_buf_printf(y, "    return_body: ");
				core_json_str(y, r->ret_body);
				core_buf_printf(y, "\n");
			}
			continue;
		}
		core_buf_printf(y, "    upstream: ");
		core_json_str(y, r->up->name);
		core_buf_printf(y, "\n");
		if (r->rewrite[0] != '\0') {
			core_buf_printf(y, "    rewrite: ");
			core_json_str(y, r->rewrite);
			core_buf_printf(y, "\n");
		}
		if (c->connect >= 0)
			m_fmt_ms(t, sizeof(t), c->connect),
			core_buf_printf(y, "    connect_timeout: %s\n", t);
		if (c->send >= 0)
			m_fmt_ms(t, sizeof(t), c->send), core_buf_printf(y, "    send_timeout: %s\n", t);
		if (c->read >= 0)
			m_fmt_ms(t, sizeof(t), c->read), core_buf_printf(y, "    read_timeout: %s\n", t);
		if (c->idle >= 0)
			m_fmt_ms(t, sizeof(t), c->idle), core_buf_printf(y, "    idle_timeout: %s\n", t);
		if (c->max_body >= 0)
			core_buf_printf(y, "    max_body: %lld\n", (long long)c->max_body);
		/* nginx tries every server by default; keel's default is 3 */
		tries = c->next_off ? 1 : c->tries > 0 ? c->tries : (int)r->up->nsrv;
		tries = tries < 1 ? 1 : tries > 16 ? 16 : tries;
		core_buf_printf(y, "    tries: %d\n", tries);
		if (c->next_5xx && !c->next_off)
			core_buf_printf(y, "    retry_5xx: true\n");
		if (r->https_redirect)
			core_buf_printf(y, "    https_redirect: true\n");
		if (c->hsts > 0)
			core_buf_printf(y, "    hsts: %llds\n", (long long)c->hsts);
	}
}

/* The report in the order of the files and lines. */
static int m_entry_cmp(const void *a, const void *b)
{
	const struct imp_entry *x = a, *y = b;

	if (x->order[0] != y->order[0])
		return x->order[0] < y->order[0] ? -1 : 1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->order[1] < y->order[1] ? -1 : x->order[1] > y->order[1];
}

/* ---- into a keel configuration ---------------------------------------------------------- */

static enum imp_merge_rc m_merge_fail(enum imp_merge_rc rc, const struct core_conf *c,
				      char **errors)
{
	const struct core_conf_err *e;
	size_t len = 0;

	for (e = c ? c->errors : NULL; e != NULL; e = e->next) {
		char *grown = realloc(*errors, len + strlen(e->msg) + 2);

		if (grown == NULL)
			break;
		*errors = grown;
		len += (size_t)sprintf(grown + len, "%s\n", e->msg);
	}
	return c == NULL ? IMP_MERGE_NOMEM : rc;
}

enum imp_merge_rc imp_merge(const char *base_name, const char *base_text, const char *yaml,
			    bool secrets, struct core_buf *out, char **errors)
{
	static const char *const taken[] = { "listeners", "upstreams", "routes", NULL };
	struct core_conf *base, *imp = NULL, *merged = NULL;
	enum imp_merge_rc rc;

	*errors = NULL;
	base = core_conf_load(&core_settings, base_name, base_text, strlen(base_text));
	if (base == NULL || base->nerrors > 0) {
		rc = m_merge_fail(IMP_MERGE_BASE, base, errors);
		goto done;
	}
	imp = core_conf_load(&core_settings, "(imported)", yaml, strlen(yaml));
	if (imp == NULL || imp->nerrors > 0) {
		rc = m_merge_fail(IMP_MERGE_IMPORTED, imp, errors);
		goto done;
	}
	if (core_conf_take(base, imp, taken) != CORE_OK ||
	    core_conf_write(out, base, false, true) != CORE_OK) {
		rc = IMP_MERGE_NOMEM;
		goto done;
	}
	merged = core_conf_load(&core_settings, "(merged)", core_buf_head(out), core_buf_len(out));
	if (merged == NULL || merged->nerrors > 0) {
		rc = m_merge_fail(IMP_MERGE_UNFIT, merged, errors);
		goto done;
	}
	rc = IMP_MERGE_OK;
	if (!secrets) {
		core_buf_truncate(out, 0);
		if (core_conf_write(out, merged, false, false) != CORE_OK)
			rc = IMP_MERGE_NOMEM;
	}
done:
	core_conf_free(merged);
	core_conf_free(imp);
	core_conf_free(base);
	return rc;
}

/* ---- the whole ----------------------------------------------------------------------------- */

struct imp_result *imp_nginx_map(const struct imp_ngx_conf *c, const char *certdir,
				 bool resolve)
{
	const struct imp_ngx_dir *d;
	struct imp_result *res;
	struct m_map *m;
	struct core_buf y;
	unsigned nhttp = 0, i;

	res = calloc(1, sizeof(*res));
	m = calloc(1, sizeof(*m));
	if (res == NULL || m == NULL) {
		free(res);
		free(m);
		return NULL;
	}
	m->res = res;
	m->conf = c;
	m->certdir = certdir;
	m->resolve = resolve;
	m->ups = calloc(M_MAX_UPS, sizeof(*m->ups));
	m->routes = calloc(M_MAX_ROUTES, sizeof(*m->routes));
	if (m->ups == NULL || m->routes == NULL) {
		m->oom = true;
		goto done;
	}
	for (d = c->root; d != NULL; d = d->next) {
		const char *n = d->argv[0];

		if (d->kind == IMP_NGX_INCLUDE)
			m_include(m, d);
		else if (d->kind == IMP_NGX_BLOCK && strcmp(n, "http") == 0) {
			if (nhttp++ > 0)
				m_error(m, d, "\"http\" directive is duplicate");
			else
				m_http(m, d);
		} else if (d->kind == IMP_NGX_BLOCK && strcmp(n, "events") == 0) {
			const struct imp_ngx_dir *e;

			m_say(m, d, IMP_APPROX, "keel's event loop (epoll) needs no settings");
			for (e = d->child; e != NULL; e = e->next)
				m_other(m, e);
		} else if (d->kind == IMP_NGX_BLOCK && strcmp(n, "stream") == 0)
			m_skip_block(m, d, "keel proxies HTTP; TCP and UDP streams are not supported");
		else if (d->kind == IMP_NGX_BLOCK && strcmp(n, "mail") == 0)
			m_skip_block(m, d, "keel does not proxy mail");
		else if (d->kind == IMP_NGX_BLOCK)
			m_error(m, d, "\"%s\" directive is not allowed here", n);
		else
			m_other(m, d);
	}
	if (nhttp == 0) {
		struct imp_ngx_dir top = { .file = c->files, .line = 1 };

		if (c->files != NULL)
			m_error(m, &top, "no \"http\" block: nothing to import");
		else
			res->nerrors++;
	}
	m_finish(m);
	if (res->nentries > 1)
		qsort(res->entries, res->nentries, sizeof(*res->entries), m_entry_cmp);
	if (res->nerrors == 0 && !m->oom) {
		core_buf_init(&y, 64 << 20);
		m_emit(m, &y);
		if (res->nerrors == 0 && core_buf_len(&y) > 0) {
			res->yaml = strndup(core_buf_head(&y), core_buf_len(&y));
			res->yaml_len = core_buf_len(&y);
			if (res->yaml == NULL)
				m->oom = true;
		}
		core_buf_free(&y);
	}
done:
	if (m->oom && res->nerrors == 0) {
		free(res->yaml);
		res->yaml = NULL;
		res->errors = strdup("out of memory\n");
		res->nerrors = 1;
	}
	for (i = 0; i < m->nowned; i++)
		free(m->owned[i]);
	free(m->ups);
	free(m->routes);
	free(m->servers);
	free(m);
	return res;
}

void imp_result_free(struct imp_result *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nentries; i++) {
		free(r->entries[i].directive);
		free(r->entries[i].note);
	}
	for (i = 0; i < r->ncerts; i++) {
		free(r->certs[i].cert);
		free(r->certs[i].key);
		free(r->certs[i].name);
	}
	free(r->entries);
	free(r->certs);
	free(r->errors);
	free(r->yaml);
	free(r);
}

int imp_report_text(struct core_buf *out, const struct imp_result *r)
{
	size_t i, n[3] = { 0, 0, 0 };
	int rc = 0;

	for (i = 0; i < r->nentries; i++) {
		const struct imp_entry *e = &r->entries[i];

		n[e->verdict]++;
		rc |= core_buf_printf(out, "%s:%u: %s: %s: %s\n", e->file, e->line,
				      imp_verdict_str(e->verdict), e->directive, e->note);
	}
	rc |= core_buf_printf(out, "%zu directives: %zu mapped, %zu approximated, %zu not "
			      "supported\n", r->nentries, n[0], n[1], n[2]);
	return rc;
}

int imp_report_json(struct core_buf *out, const struct imp_result *r)
{
	size_t i;
	int rc = core_buf_printf(out, "[");

	for (i = 0; i < r->nentries; i++) {
		const struct imp_entry *e = &r->entries[i];

		rc |= core_buf_printf(out, "%s{\"file\":", i ? "," : "");
		rc |= core_json_str(out, e->file);
		rc |= core_buf_printf(out, ",\"line\":%u,\"verdict\":\"%s\",\"directive\":", e->line,
				      imp_verdict_str(e->verdict));
		rc |= core_json_str(out, e->directive);
		rc |= core_buf_printf(out, ",\"note\":");
		rc |= core_json_str(out, e->note);
		rc |= core_buf_printf(out, "}");
	}
	rc |= core_buf_printf(out, "]");
	return rc;
}
