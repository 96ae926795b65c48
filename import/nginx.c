/* nginx.conf reader: nginx's own tokenizer rules (words, "double" and
 * 'single' quotes, backslash escapes, # comments, ; { }), includes with
 * globs, and each directive's file and line for the import report. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nginx.h"

/* ---- the directives nginx knows ---------------------------------------------------------- */

#define B	IMP_NGX_F_BLOCK
#define O	(IMP_NGX_F_BLOCK | IMP_NGX_F_OPAQUE)
#define E	IMP_NGX_F_EITHER

static const struct { const char *name; int flags; } ngx_known[] = {
	/* blocks */
	{ "events", B }, { "http", B }, { "server", E }, { "location", B }, { "upstream", B },
	{ "if", B }, { "limit_except", B }, { "stream", B }, { "mail", B }, { "match", B },
	{ "types", O }, { "map", O }, { "geo", O }, { "split_clients", O }, { "charset_map", O },
	/* main and events */
	{ "daemon", 0 }, { "debug_points", 0 }, { "env", 0 }, { "error_log", 0 },
	{ "include", 0 }, { "load_module", 0 }, { "lock_file", 0 }, { "master_process", 0 },
	{ "pcre_jit", 0 }, { "pid", 0 }, { "ssl_engine", 0 }, { "thread_pool", 0 },
	{ "timer_resolution", 0 }, { "user", 0 }, { "worker_cpu_affinity", 0 },
	{ "worker_priority", 0 }, { "worker_processes", 0 }, { "worker_rlimit_core", 0 },
	{ "worker_rlimit_nofile", 0 }, { "worker_shutdown_timeout", 0 },
	{ "working_directory", 0 }, { "accept_mutex", 0 }, { "accept_mutex_delay", 0 },
	{ "debug_connection", 0 }, { "multi_accept", 0 }, { "use", 0 },
	{ "worker_aio_requests", 0 }, { "worker_connections", 0 },
	/* http core */
	{ "absolute_redirect", 0 }, { "aio", 0 }, { "aio_write", 0 }, { "alias", 0 },
	{ "auth_delay", 0 }, { "chunked_transfer_encoding", 0 }, { "client_body_buffer_size", 0 },
	{ "client_body_in_file_only", 0 }, { "client_body_in_single_buffer", 0 },
	{ "client_body_temp_path", 0 }, { "client_body_timeout", 0 },
	{ "client_header_buffer_size", 0 }, { "client_header_timeout", 0 },
	{ "client_max_body_size", 0 }, { "connection_pool_size", 0 }, { "default_type", 0 },
	{ "directio", 0 }, { "directio_alignment", 0 }, { "disable_symlinks", 0 },
	{ "error_page", 0 }, { "etag", 0 }, { "if_modified_since", 0 },
	{ "ignore_invalid_headers", 0 }, { "internal", 0 }, { "keepalive_disable", 0 },
	{ "keepalive_requests", 0 }, { "keepalive_time", 0 }, { "keepalive_timeout", 0 },
	{ "large_client_header_buffers", 0 }, { "limit_rate", 0 }, { "limit_rate_after", 0 },
	{ "lingering_close", 0 }, { "lingering_time", 0 }, { "lingering_timeout", 0 },
	{ "listen", 0 }, { "log_not_found", 0 }, { "log_subrequest", 0 }, { "max_ranges", 0 },
	{ "merge_slashes", 0 }, { "msie_padding", 0 }, { "msie_refresh", 0 },
	{ "open_file_cache", 0 }, { "open_file_cache_errors", 0 },
	{ "open_file_cache_min_uses", 0 }, { "open_file_cache_valid", 0 }, { "output_buffers", 0 },
	{ "port_in_redirect", 0 }, { "postpone_output", 0 }, { "read_ahead", 0 },
	{ "recursive_error_pages", 0 }, { "request_pool_size", 0 },
	{ "reset_timedout_connection", 0 }, { "resolver", 0 }, { "resolver_timeout", 0 },
	{ "root", 0 }, { "satisfy", 0 }, { "send_lowat", 0 }, { "send_timeout", 0 },
	{ "sendfile", 0 }, { "sendfile_max_chunk", 0 }, { "server_name", 0 },
	{ "server_name_in_redirect", 0 }, { "server_names_hash_bucket_size", 0 },
	{ "server_names_hash_max_size", 0 }, { "server_tokens", 0 },
	{ "subrequest_output_buffer_size", 0 }, { "tcp_nodelay", 0 }, { "tcp_nopush", 0 },
	{ "try_files", 0 }, { "types_hash_bucket_size", 0 }, { "types_hash_max_size", 0 },
	{ "underscores_in_headers", 0 }, { "variables_hash_bucket_size", 0 },
	{ "variables_hash_max_size", 0 }, { "index", 0 }, { "stub_status", 0 },
	/* access, auth, autoindex, charset, headers, logs, limits, realip, rewrite */
	{ "allow", 0 }, { "deny", 0 }, { "auth_basic", 0 }, { "auth_basic_user_file", 0 },
	{ "auth_request", 0 }, { "auth_request_set", 0 }, { "autoindex", 0 },
	{ "autoindex_exact_size", 0 }, { "autoindex_format", 0 }, { "autoindex_localtime", 0 },
	{ "charset", 0 }, { "charset_types", 0 }, { "override_charset", 0 },
	{ "source_charset", 0 }, { "add_header", 0 }, { "add_trailer", 0 }, { "expires", 0 },
	{ "access_log", 0 }, { "log_format", 0 }, { "open_log_file_cache", 0 },
	{ "limit_conn", 0 }, { "limit_conn_dry_run", 0 }, { "limit_conn_log_level", 0 },
	{ "limit_conn_status", 0 }, { "limit_conn_zone", 0 }, { "limit_req", 0 },
	{ "limit_req_dry_run", 0 }, { "limit_req_log_level", 0 }, { "limit_req_status", 0 },
	{ "limit_req_zone", 0 }, { "set_real_ip_from", 0 }, { "real_ip_header", 0 },
	{ "real_ip_recursive", 0 }, { "valid_referers", 0 }, { "rewrite", 0 }, { "break", 0 },
	{ "return", 0 }, { "set", 0 }, { "rewrite_log", 0 }, { "uninitialized_variable_warn", 0 },
	{ "map_hash_bucket_size", 0 }, { "map_hash_max_size", 0 }, { "mirror", 0 },
	{ "mirror_request_body", 0 }, { "sub_filter", 0 }, { "sub_filter_last_modified", 0 },
	{ "sub_filter_once", 0 }, { "sub_filter_types", 0 }, { "gzip", 0 },
	{ "gzip_buffers", 0 }, { "gzip_comp_level", 0 }, { "gzip_disable", 0 },
	{ "gzip_http_version", 0 }, { "gzip_min_length", 0 }, { "gzip_proxied", 0 },
	{ "gzip_types", 0 }, { "gzip_vary", 0 }, { "gzip_static", 0 }, { "gunzip", 0 },
	{ "ssi", 0 }, { "ssi_types", 0 }, { "secure_link", 0 }, { "secure_link_md5", 0 },
	{ "secure_link_secret", 0 }, { "userid", 0 }, { "userid_name", 0 },
	{ "userid_domain", 0 }, { "userid_path", 0 }, { "userid_expires", 0 },
	{ "http2", 0 }, { "http3", 0 }, { "empty_gif", 0 }, { "random_index", 0 },
	{ "dav_methods", 0 }, { "dav_access", 0 }, { "create_full_put_path", 0 },
	/* proxy */
	{ "proxy_bind", 0 }, { "proxy_buffer_size", 0 }, { "proxy_buffering", 0 },
	{ "proxy_buffers", 0 }, { "proxy_busy_buffers_size", 0 }, { "proxy_cache", 0 },
	{ "proxy_cache_background_update", 0 }, { "proxy_cache_bypass", 0 },
	{ "proxy_cache_convert_head", 0 }, { "proxy_cache_key", 0 }, { "proxy_cache_lock", 0 },
	{ "proxy_cache_lock_age", 0 }, { "proxy_cache_lock_timeout", 0 },
	{ "proxy_cache_max_range_offset", 0 }, { "proxy_cache_methods", 0 },
	{ "proxy_cache_min_uses", 0 }, { "proxy_cache_path", 0 }, { "proxy_cache_revalidate", 0 },
	{ "proxy_cache_use_stale", 0 }, { "proxy_cache_valid", 0 },
	{ "proxy_connect_timeout", 0 }, { "proxy_cookie_domain", 0 }, { "proxy_cookie_flags", 0 },
	{ "proxy_cookie_path", 0 }, { "proxy_force_ranges", 0 },
	{ "proxy_headers_hash_bucket_size", 0 }, { "proxy_headers_hash_max_size", 0 },
	{ "proxy_hide_header", 0 }, { "proxy_http_version", 0 }, { "proxy_ignore_client_abort", 0 },
	{ "proxy_ignore_headers", 0 }, { "proxy_intercept_errors", 0 }, { "proxy_limit_rate", 0 },
	{ "proxy_max_temp_file_size", 0 }, { "proxy_method", 0 }, { "proxy_next_upstream", 0 },
	{ "proxy_next_upstream_timeout", 0 }, { "proxy_next_upstream_tries", 0 },
	{ "proxy_no_cache", 0 }, { "proxy_pass", 0 }, { "proxy_pass_header", 0 },
	{ "proxy_pass_request_body", 0 }, { "proxy_pass_request_headers", 0 },
	{ "proxy_read_timeout", 0 }, { "proxy_redirect", 0 }, { "proxy_request_buffering", 0 },
	{ "proxy_send_lowat", 0 }, { "proxy_send_timeout", 0 }, { "proxy_set_body", 0 },
	{ "proxy_set_header", 0 }, { "proxy_socket_keepalive", 0 }, { "proxy_ssl_certificate", 0 },
	{ "proxy_ssl_certificate_key", 0 }, { "proxy_ssl_ciphers", 0 },
	{ "proxy_ssl_conf_command", 0 }, { "proxy_ssl_crl", 0 }, { "proxy_ssl_name", 0 },
	{ "proxy_ssl_password_file", 0 }, { "proxy_ssl_protocols", 0 },
	{ "proxy_ssl_server_name", 0 }, { "proxy_ssl_session_reuse", 0 },
	{ "proxy_ssl_trusted_certificate", 0 }, { "proxy_ssl_verify", 0 },
	{ "proxy_ssl_verify_depth", 0 }, { "proxy_store", 0 }, { "proxy_store_access", 0 },
	{ "proxy_temp_file_write_size", 0 }, { "proxy_temp_path", 0 },
	/* ssl */
	{ "ssl", 0 }, { "ssl_buffer_size", 0 }, { "ssl_certificate", 0 },
	{ "ssl_certificate_key", 0 }, { "ssl_ciphers", 0 }, { "ssl_client_certificate", 0 },
	{ "ssl_conf_command", 0 }, { "ssl_crl", 0 }, { "ssl_dhparam", 0 }, { "ssl_early_data", 0 },
	{ "ssl_ecdh_curve", 0 }, { "ssl_ocsp", 0 }, { "ssl_ocsp_cache", 0 },
	{ "ssl_ocsp_responder", 0 }, { "ssl_password_file", 0 },
	{ "ssl_prefer_server_ciphers", 0 }, { "ssl_protocols", 0 }, { "ssl_reject_handshake", 0 },
	{ "ssl_session_cache", 0 }, { "ssl_session_ticket_key", 0 }, { "ssl_session_tickets", 0 },
	{ "ssl_session_timeout", 0 }, { "ssl_stapling", 0 }, { "ssl_stapling_file", 0 },
	{ "ssl_stapling_responder", 0 }, { "ssl_stapling_verify", 0 },
	{ "ssl_trusted_certificate", 0 }, { "ssl_verify_client", 0 }, { "ssl_verify_depth", 0 },
	/* upstream */
	{ "zone", 0 }, { "state", 0 }, { "hash", 0 }, { "ip_hash", 0 }, { "keepalive", 0 },
	{ "least_conn", 0 }, { "least_time", 0 }, { "random", 0 }, { "ntlm", 0 }, { "queue", 0 },
	{ "sticky", 0 }, { "status_zone", 0 },
};

/* Modules of many directives keel maps none of: known by their prefix. */
static const char *const ngx_known_prefix[] = {
	"fastcgi_", "uwsgi_", "scgi_", "grpc_", "memcached_", "http2_", "quic_", "geoip_",
	"image_filter", "xslt_", "mp4", "flv", "hls", "perl", "js_", "slice",
};

#undef B
#undef O
#undef E

int imp_ngx_known(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(ngx_known) / sizeof(ngx_known[0]); i++)
		if (strcmp(ngx_known[i].name, name) == 0)
			return ngx_known[i].flags | 0x100;
	for (i = 0; i < sizeof(ngx_known_prefix) / sizeof(ngx_known_prefix[0]); i++)
		if (strncmp(name, ngx_known_prefix[i], strlen(ngx_known_prefix[i])) == 0)
			return 0x100;
	return 0;
}

/* ---- parsing state --------------------------------------------------------------------- */

struct ngx_src {			/* one file being read */
	struct ngx_src	*up;		/* the file that included it */
	const struct imp_ngx_file *file;
	const char	*p, *end;
	unsigned	 line;
};

struct ngx_parse {
	struct imp_ngx_conf *conf;
	const struct imp_ngx_io *io;
	struct imp_ngx_file **file_tail;
	unsigned	 nfiles;
	unsigned	 depth;		/* includes open */
	size_t		 errlen;
	char		*word;		/* one word's bytes, IMP_NGX_MAX_WORD */
};

void imp_one_line(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

int imp_lines_add(char **lines, size_t *len, const char *file, unsigned line,
		  const char *fmt, va_list ap)
{
	char msg[1200], *grown;
	size_t n;

	n = file ? (size_t)snprintf(msg, sizeof(msg), "%s:%u: ", file, line) : 0;
	if (n >= sizeof(msg))
		n = sizeof(msg) - 1;
	vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	imp_one_line(msg);
	n = strlen(msg);
	grown = realloc(*lines, *len + n + 2);
	if (grown == NULL)
		return -1;
	memcpy(grown + *len, msg, n);
	*len += n;
	grown[(*len)++] = '\n';
	grown[*len] = '\0';
	*lines = grown;
	return 0;
}

static void ngx_error(struct ngx_parse *ps, const struct ngx_src *src, unsigned line,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void ngx_error(struct ngx_parse *ps, const struct ngx_src *src, unsigned line,
		      const char *fmt, ...)
{
	struct imp_ngx_conf *c = ps->conf;
	va_list ap;

	if (c->nerrors < 100) {		/* beyond, enough to fix first */
		va_start(ap, fmt);
		if (imp_lines_add(&c->errors, &ps->errlen, src ? src->file->path : NULL, line,
				  fmt, ap) != 0) {
			va_end(ap);
			return;
		}
		va_end(ap);
	}
	c->nerrors++;
}

/* A word as nginx keeps it: \" \' \\ \t \r \n become the byte, any other
 * backslash stays with what follows. */
static void ngx_unescape(char *w, size_t *len)
{
	size_t i, o = 0;

	for (i = 0; i < *len; i++) {
		if (w[i] == '\\' && i + 1 < *len) {
			switch (w[i + 1]) {
			case '"': case '\'': case '\\':
				w[o++] = w[++i];
				continue;
			case 't': w[o++] = '\t'; i++; continue;
			case 'r': w[o++] = '\r'; i++; continue;
			case 'n': w[o++] = '\n'; i++; continue;
			}
		}
		w[o++] = w[i];
	}
	*len = o;
}

enum ngx_tok {
	NGX_TOK_WORD = 0,
	NGX_TOK_SEMI,			/* ; */
	NGX_TOK_OPEN,			/* { */
	NGX_TOK_CLOSE,			/* } */
	NGX_TOK_EOF,
	NGX_TOK_ERROR
};

static bool ngx_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* The next token of src; a word goes to ps->word (NUL-terminated, *wlen). */
static enum ngx_tok ngx_token(struct ngx_parse *ps, struct ngx_src *s, size_t *wlen,
			      unsigned *line)
{
	char quote = 0, ch;
	size_t n = 0;
	bool escaped = false;

	for (;;) {			/* skip space and comments */
		if (s->p >= s->end)
			return NGX_TOK_EOF;
		ch = *s->p;
		if (ch == '\n')
			s->line++;
		if (ngx_space(ch)) {
			s->p++;
			continue;
		}
		if (ch == '#') {
			while (s->p < s->end && *s->p != '\n')
				s->p++;
			continue;
		}
		break;
	}
	*line = s->line;
	ch = *s->p;
	if (ch == ';' || ch == '{' || ch == '}') {
		s->p++;
		return ch == ';' ? NGX_TOK_SEMI : ch == '{' ? NGX_TOK_OPEN : NGX_TOK_CLOSE;
	}
	if (ch == '"' || ch == '\'') {
		quote = ch;
		s->p++;
	}
	for (;;) {
		if (s->p >= s->end) {
			if (quote) {
				ngx_error(ps, s, *line, "unexpected end of file in a %s-quoted string",
					  quote == '"' ? "double" : "single");
				return NGX_TOK_ERROR;
			}
			break;
		}
		ch = *s->p;
		if (!escaped && quote && ch == quote) {
			s->p++;
			/* nginx wants a space or a terminator after a closing quote */
			if (s->p < s->end && !ngx_space(*s->p) && *s->p != ';' && *s->p != '{' &&
			    *s->p != '}' && *s->p != ')') {
				ngx_error(ps, s, s->line, "unexpected \"%c\" after a quoted string",
					  *s->p);
				return NGX_TOK_ERROR;
			}
			break;
		}
		/* a word ends at a space, ';' or '{' (but the '{' of "${name}") */
		if (!escaped && !quote && (ngx_space(ch) || ch == ';' ||
					   (ch == '{' && !(n > 0 && ps->word[n - 1] == '$'))))
			break;
		if (ch == '\n')
			s->line++;
		if (n >= IMP_NGX_MAX_WORD - 1) {
			ngx_error(ps, s, *line, "a word longer than %d bytes", IMP_NGX_MAX_WORD);
			return NGX_TOK_ERROR;
		}
		escaped = !escaped && ch == '\\';
		ps->word[n++] = ch;
		s->p++;
	}
	ngx_unescape(ps->word, &n);
	ps->word[n] = '\0';
	*wlen = n;
	return NGX_TOK_WORD;
}

static struct imp_ngx_dir *ngx_dir_new(struct ngx_parse *ps, const struct ngx_src *s,
				       unsigned line)
{
	struct imp_ngx_dir *d;

	if (ps->conf->ndirs >= IMP_NGX_MAX_DIRS) {
		ngx_error(ps, s, line, "more than %d directives", IMP_NGX_MAX_DIRS);
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		ngx_error(ps, s, line, "out of memory");
		return NULL;
	}
	d->argv = calloc(IMP_NGX_MAX_ARGS + 1, sizeof(char *));
	if (d->argv == NULL) {
		free(d);
		ngx_error(ps, s, line, "out of memory");
		return NULL;
	}
	d->file = s->file;
	d->line = line;
	ps->conf->ndirs++;
	return d;
}

static void ngx_dirs_free(struct imp_ngx_dir *d)
{
	struct imp_ngx_dir *next;
	unsigned i;

	for (; d != NULL; d = next) {
		next = d->next;
		ngx_dirs_free(d->child);
		for (i = 0; i < d->argc; i++)
			free(d->argv[i]);
		free(d->argv);
		free(d);
	}
}

static int ngx_read_src(struct ngx_parse *ps, struct ngx_src *up, unsigned line,
			const char *path, const char *text, size_t len,
			struct imp_ngx_dir ***tail, int nest, bool opaque);

/* ---- includes ----------------------------------------------------------------------------- */

static char *fs_read(const char *path, size_t *len, void *arg)
{
	struct stat st;
	char *buf;
	ssize_t n;
	size_t got = 0;
	int fd;

	(void)arg;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		if (errno == 0 || !S_ISREG(st.st_mode))
			errno = EISDIR;
		close(fd);
		return NULL;
	}
	if (st.st_size > IMP_NGX_MAX_FILE) {
		close(fd);
		errno = EFBIG;
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
	return buf;
}

static char **fs_glob(const char *pattern, size_t *n, void *arg)
{
	glob_t g;
	char **out;
	size_t i;

	(void)arg;
	*n = 0;
	if (glob(pattern, GLOB_ERR, NULL, &g) != 0)
		return NULL;
	out = calloc(g.gl_pathc + 1, sizeof(char *));
	for (i = 0; out != NULL && i < g.gl_pathc; i++)
		if ((out[i] = strdup(g.gl_pathv[i])) != NULL)
			(*n)++;
	globfree(&g);
	return out;
}

static const struct imp_ngx_io fs_io = { fs_read, fs_glob, NULL };

static bool ngx_has_glob(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* Reads one file of an include (or the main file: up NULL). */
static int ngx_read_file(struct ngx_parse *ps, struct ngx_src *up, unsigned line,
			 const char *path, struct imp_ngx_dir ***tail, int nest)
{
	const struct ngx_src *s;
	char *text;
	size_t len = 0;
	int rc;

	for (s = up; s != NULL; s = s->up)
		if (strcmp(s->file->path, path) == 0) {
			ngx_error(ps, up, line, "include loop: \"%s\" is already being read "
				  "(included from %s)", path, up->file->path);
			return -1;
		}
	if (ps->depth >= IMP_NGX_MAX_DEPTH) {
		ngx_error(ps, up, line, "includes nested more than %d deep", IMP_NGX_MAX_DEPTH);
		return -1;
	}
	if (ps->nfiles >= IMP_NGX_MAX_FILES) {
		ngx_error(ps, up, line, "more than %d files", IMP_NGX_MAX_FILES);
		return -1;
	}
	errno = 0;
	text = ps->io->read(path, &len, ps->io->arg);
	if (text == NULL) {
		if (up != NULL)
			ngx_error(ps, up, line, "include \"%s\": %s", path,
				  strerror(errno ? errno : ENOENT));
		else
			ngx_error(ps, NULL, 0, "%s: %s", path, strerror(errno ? errno : ENOENT));
		return -1;
	}
	ps->depth++;
	rc = ngx_read_src(ps, up, line, path, text, len, tail, nest, false);
	ps->depth--;
	free(text);
	return rc;
}

/* include PATTERN: relative to the main file's folder; a pattern with a
 * wildcard may match nothing, a plain name must exist (as in nginx). */
static int ngx_include(struct ngx_parse *ps, struct ngx_src *s, struct imp_ngx_dir *d,
		       struct imp_ngx_dir ***tail, int nest)
{
	char *full, **paths = NULL;
	size_t n = 0, i;
	int rc = 0;

	if (d->argc != 2) {
		ngx_error(ps, s, d->line, "\"include\" takes one file name or pattern");
		return -1;
	}
	if (ps->io->read == NULL) {
		d->unread = true;
		return 0;
	}
	if (d->argv[1][0] == '/')
		full = strdup(d->argv[1]);
	else if (asprintf(&full, "%s%s", ps->conf->prefix, d->argv[1]) == -1)
		full = NULL;
	if (full == NULL) {
		ngx_error(ps, s, d->line, "out of memory");
		return -1;
	}
	if (ngx_has_glob(full)) {
		paths = ps->io->glob(full, &n, ps->io->arg);
	} else {
		paths = calloc(2, sizeof(char *));
		if (paths != NULL && (paths[0] = strdup(full)) != NULL)
			n = 1;
	}
	for (i = 0; i < n; i++)
		if (ngx_read_file(ps, s, d->line, paths[i], tail, nest) != 0)
			rc = -1;
	d->nfiles = (unsigned)n;
	for (i = 0; paths != NULL && paths[i] != NULL; i++)
		free(paths[i]);
	free(paths);
	free(full);
	return rc;
}

/* ---- directives and blocks ------------------------------------------------------------------ */

/* Reads directives until the end of the file (nest 0 of this file) or a
 * '}' (the end of the block). Returns 0, 1 for the '}', or -1. */
static int ngx_read_block(struct ngx_parse *ps, struct ngx_src *s, struct imp_ngx_dir ***tail,
			  int nest, bool in_block, bool opaque)
{
	struct imp_ngx_dir *d = NULL;
	enum ngx_tok t;
	size_t wlen;
	unsigned line;
	int flags, rc;

	for (;;) {
		t = ngx_token(ps, s, &wlen, &line);
		if (t == NGX_TOK_ERROR)
			goto fail;
		if (t == NGX_TOK_EOF) {
			if (d != NULL) {
				ngx_error(ps, s, line, "unexpected end of file, expecting \";\" or "
					  "\"}\" after \"%s\"", d->argv[0]);
				goto fail;
			}
			if (in_block) {
				ngx_error(ps, s, s->line, "unexpected end of file, expecting \"}\"");
				return -1;
			}
			return 0;
		}
		if (t == NGX_TOK_WORD) {
			if (d == NULL && (d = ngx_dir_new(ps, s, line)) == NULL)
				return -1;
			if (d->argc >= IMP_NGX_MAX_ARGS) {
				ngx_error(ps, s, d->line, "\"%s\" has more than %d arguments",
					  d->argv[0], IMP_NGX_MAX_ARGS);
				goto fail;
			}
			if ((d->argv[d->argc] = malloc(wlen + 1)) == NULL) {
				ngx_error(ps, s, line, "out of memory");
				goto fail;
			}
			memcpy(d->argv[d->argc++], ps->word, wlen + 1);
			continue;
		}
		if (t == NGX_TOK_CLOSE) {
			if (d != NULL) {
				ngx_error(ps, s, line, "unexpected \"}\": \"%s\" is not terminated "
					  "by \";\"", d->argv[0]);
				goto fail;
			}
			if (!in_block) {
				ngx_error(ps, s, line, "unexpected \"}\"");
				return -1;
			}
			return 1;
		}
		if (d == NULL) {
			ngx_error(ps, s, line, "unexpected \"%c\"", t == NGX_TOK_SEMI ? ';' : '{');
			return -1;
		}
		/* ; or { ends the directive */
		flags = opaque ? 0x100 : imp_ngx_known(d->argv[0]);
		if (flags == 0) {
			ngx_error(ps, s, d->line, "unknown directive \"%s\"", d->argv[0]);
			goto fail;
		}
		if (t == NGX_TOK_OPEN) {
			if (opaque || !(flags & (IMP_NGX_F_BLOCK | IMP_NGX_F_EITHER))) {
				ngx_error(ps, s, d->line, "directive \"%s\" is not terminated by \";\"",
					  d->argv[0]);
				goto fail;
			}
			if (nest >= IMP_NGX_MAX_NEST) {
				ngx_error(ps, s, d->line, "blocks nested more than %d deep",
					  IMP_NGX_MAX_NEST);
				goto fail;
			}
			d->kind = IMP_NGX_BLOCK;
			**tail = d;
			*tail = &d->next;
			{
				struct imp_ngx_dir **ctail = &d->child;

				rc = ngx_read_block(ps, s, &ctail, nest + 1, true,
						    (flags & IMP_NGX_F_OPAQUE) != 0);
			}
			d = NULL;
			if (rc != 1)
				return -1;
			continue;
		}
		if (!opaque && (flags & IMP_NGX_F_BLOCK) && !(flags & IMP_NGX_F_EITHER)) {
			ngx_error(ps, s, d->line, "directive \"%s\" has no opening \"{\"", d->argv[0]);
			goto fail;
		}
		**tail = d;
		*tail = &d->next;
		if (!opaque && strcmp(d->argv[0], "include") == 0) {
			d->kind = IMP_NGX_INCLUDE;
			if (ngx_include(ps, s, d, tail, nest) != 0)
				return -1;
		}
		d = NULL;
	}
fail:
	if (d != NULL)
		ngx_dirs_free(d);
	return -1;
}

static int ngx_read_src(struct ngx_parse *ps, struct ngx_src *up, unsigned line,
			const char *path, const char *text, size_t len,
			struct imp_ngx_dir ***tail, int nest, bool opaque)
{
	struct imp_ngx_file *f;
	struct ngx_src s;
	int rc;

	(void)line;
	f = calloc(1, sizeof(*f));
	if (f == NULL || (f->path = strdup(path)) == NULL) {
		free(f);
		ngx_error(ps, up, line, "out of memory");
		return -1;
	}
	*ps->file_tail = f;
	ps->file_tail = &f->next;
	ps->nfiles++;
	s.up = up;
	s.file = f;
	s.p = text;
	s.end = text + len;
	s.line = 1;
	/* An included file holds whole directives: it may not close its
	 * includer's block, nor leave one of its own open. */
	rc = ngx_read_block(ps, &s, tail, nest, false, opaque);
	return rc == 0 ? 0 : -1;
}

static struct imp_ngx_conf *ngx_parse(const char *path, const char *text, size_t len,
				      const struct imp_ngx_io *io)
{
	struct imp_ngx_conf *c;
	struct imp_ngx_dir **tail;
	struct ngx_parse ps;
	const char *slash;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	memset(&ps, 0, sizeof(ps));
	ps.conf = c;
	ps.io = io ? io : &fs_io;
	ps.file_tail = &c->files;
	slash = strrchr(path, '/');
	c->prefix = slash ? strndup(path, (size_t)(slash - path) + 1) : strdup("");
	ps.word = malloc(IMP_NGX_MAX_WORD);
	if (c->prefix == NULL || ps.word == NULL) {
		free(ps.word);
		imp_ngx_free(c);
		return NULL;
	}
	tail = &c->root;
	if (text != NULL) {
		ps.depth++;
		ngx_read_src(&ps, NULL, 0, path, text, len, &tail, 0, false);
	} else
		ngx_read_file(&ps, NULL, 0, path, &tail, 0);
	free(ps.word);
	return c;
}

struct imp_ngx_conf *imp_ngx_parse(const char *path, const struct imp_ngx_io *io)
{
	return ngx_parse(path, NULL, 0, io);
}

struct imp_ngx_conf *imp_ngx_parse_text(const char *path, const char *text, size_t len,
					const struct imp_ngx_io *io)
{
	return ngx_parse(path, text, len, io);
}

void imp_ngx_free(struct imp_ngx_conf *c)
{
	struct imp_ngx_file *f, *next;

	if (c == NULL)
		return;
	ngx_dirs_free(c->root);
	for (f = c->files; f != NULL; f = next) {
		next = f->next;
		free(f->path);
		free(f);
	}
	free(c->prefix);
	free(c->errors);
	free(c);
}
