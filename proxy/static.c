/*
 * Static files from an NFS export, through libnfs on the worker's loop
 * (see static.h).
 *
 * Each static route has, in each worker, one libnfs context: mounted on
 * the first request, from the mount's first server, and kept. Requests
 * share it (libnfs keeps many calls in flight on one connection). A call
 * that misses the route's timeout drops the context with every call on it
 * (they all wait on the same dead server) and the next request mounts
 * from the next server. Callbacks of a dropped context are told apart by
 * its generation.
 *
 * Lifetimes. A job is counted: one reference for proxy.c until it ends
 * the job, one while libnfs holds a callback with it, and one for any
 * code here that wakes proxy.c and then looks at the job again. libnfs
 * calls every callback once, with -EINTR when the context is destroyed,
 * so a dropped context is destroyed only outside nfs_service (a depth
 * counts the nesting), and its jobs live until it is gone. Only a job
 * proxy.c still owns is written to: out is proxy.c's buffer.
 *
 * What leaves the folder is refused: the path is decoded once and "." and
 * ".." segments, NUL and '\\' are refused (400); names starting with a
 * dot are not served (404), but for ".well-known". The file itself is
 * looked at with lstat and opened with O_NOFOLLOW: a symbolic link there
 * is not followed (404). Links in the folders above it are resolved by
 * libnfs inside the export, never above its root, as nginx follows them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>

#include "core/buf.h"
#include "core/core.h"
#include "core/http.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"
#include "static.h"

#define STATIC_MAX_SERVERS	8
#define STATIC_CHUNK		(64 << 10)	/* bytes asked of the server at once */
#define STATIC_AHEAD		(128 << 10)	/* at most this much waits for the client */
#define STATIC_LIST_MAX		10000		/* entries shown in a listing */
#define STATIC_LIST_BYTES	(1 << 20)	/* and at most this much of them */

struct proxy_static {
	struct core_loop *loop;
	char		 servers[STATIC_MAX_SERVERS][48];
	unsigned	 nservers, cur;
	char		 export[256], root[256], index[64], route_path[256];
	bool		 listing;
	int		 version;	/* 3 or 4 */
	uint64_t	 timeout;

	struct nfs_context *nfs;
	struct nfs_context *doomed;	/* dropped inside libnfs: destroyed after */
	unsigned	 depth;		/* calls into libnfs under way, nested */
	bool		 mounted, want_connect, destroying;
	uint64_t	 gen;		/* of the context: older callbacks are void */
	struct core_io	 io;
	struct core_list jobs;
};

enum job_step {
	J_MOUNT = 0,		/* waiting for the context to mount */
	J_LSTAT,
	J_INDEX,		/* lstat of the folder's index file */
	J_OPEN,
	J_READ,
	J_OPENDIR,
	J_DONE,
};

struct proxy_static_job {
	struct core_list link;		/* in st->jobs */
	struct proxy_static *st;
	void		(*wake)(void *owner);
	void		*owner;		/* NULL once proxy.c ended the job */
	struct core_buf	*out;		/* proxy.c's: written only while owned */
	unsigned	 refs;
	enum job_step	 step;
	bool		 waiting;	/* for the server: the timeout runs */
	bool		 held;		/* libnfs holds a callback with this job */
	unsigned	 tries;		/* servers that failed to mount for it */
	unsigned	 srv;		/* the server its last call went to */
	uint64_t	 gen;		/* the context its call is on */
	uint64_t	 asked;
	bool		 head_only, broken;
	bool		 quiet;		/* inside a call from proxy.c: it looks itself */
	unsigned	 status;
	char		 path[1400];	/* in the export: root, rel, "/", index */
	char		 rel[1024];	/* decoded, below the route */
	char		 url[1024];	/* the path as sent, for a redirect or a title */
	size_t		 index_at;	/* where the index file's name starts in path */
	char		 query[256];
	char		 extra[256];
	/* conditions */
	char		 inm[160];	/* If-None-Match */
	int64_t		 ims;		/* If-Modified-Since, or -1 */
	char		 range[96];
	char		 if_range[160];
	/* the file */
	uint64_t	 size, mtime, mtime_ns;
	struct nfsfh	*fh;
	uint64_t	 off, end;	/* next byte to read; one past the last */
};

static void static_connect(struct proxy_static *st);
static void static_enter(struct proxy_static *st);
static void static_leave(struct proxy_static *st);
static bool job_next(struct proxy_static_job *j);

/* ---- parsers ------------------------------------------------------------------------------ */

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int proxy_static_path(const char *in, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0, seg;

	if (outlen < 2)
		return -1;
	out[o++] = '/';
	seg = o;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len || (hi = hexval(in[i + 1])) < 0 || (lo = hexval(in[i + 2])) < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f || c == '\\')
			return -1;
		if (c == '/') {
			if (o - seg == 1 && out[seg] == '.')
				return -1;
			if (o - seg == 2 && out[seg] == '.' && out[seg + 1] == '.')
				return -1;
			if (o > 0 && out[o - 1] == '/')
				continue;		/* "//" */
			if (o + 1 >= outlen)
				return -1;
			out[o++] = '/';
			seg = o;
			continue;
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	if ((o - seg == 1 && out[seg] == '.') || (o - seg == 2 && out[seg] == '.' && out[seg + 1] == '.'))
		return -1;
	out[o] = '\0';
	return 0;
}

static bool digits(const char **p, const char *e, uint64_t *v)
{
	const char *s = *p;

	*v = 0;
	while (*p < e && **p >= '0' && **p <= '9') {
		if (*v > (UINT64_MAX - 9) / 10)
			return false;
		*v = *v * 10 + (uint64_t)(**p - '0');
		(*p)++;
	}
	return *p > s;
}

int proxy_static_range(const char *v, size_t len, uint64_t size, uint64_t *from, uint64_t *to)
{
	const char *p = v, *e = v + len, *c;
	uint64_t a, b;

	if (len < 7 || strncasecmp(v, "bytes=", 6) != 0)
		return 0;
	p += 6;
	while (p < e && *p == ' ')
		p++;
	for (c = p; c < e; c++)
		if (*c == ',')
			return 0;	/* several ranges: the whole file instead */
	if (p < e && *p == '-') {	/* the last N bytes */
		p++;
		if (!digits(&p, e, &b))
			return 0;
		while (p < e && *p == ' ')
			p++;
		if (p != e)
			return 0;
		if (b == 0 || size == 0)
			return -1;
		*from = b >= size ? 0 : size - b;
		*to = size - 1;
		return 1;
	}
	if (!digits(&p, e, &a) || p >= e || *p != '-')
		return 0;
	p++;
	if (p < e && *p >= '0' && *p <= '9') {
		if (!digits(&p, e, &b) || b < a)
			return 0;
	} else
		b = UINT64_MAX;
	while (p < e && *p == ' ')
		p++;
	if (p != e)
		return 0;
	if (a >= size)
		return -1;
	*from = a;
	*to = b >= size ? size - 1 : b;
	return 1;
}

int64_t proxy_static_http_date(const char *v, size_t len)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char s[30];
	struct tm tm;
	unsigned d, y, h, mi, se;
	char mon[4], wd[4];
	const char *m;

	if (len != 29)
		return -1;
	memcpy(s, v, len);
	s[len] = '\0';
	if (sscanf(s, "%3s, %2u %3s %4u %2u:%2u:%2u GMT", wd, &d, mon, &y, &h, &mi, &se) != 7 ||
	    s[3] != ',' || strcmp(s + 25, " GMT") != 0)
		return -1;
	if ((m = strstr(months, mon)) == NULL || (m - months) % 3 != 0 || strlen(mon) != 3 ||
	    d < 1 || d > 31 || y < 1970 || y > 9999 || h > 23 || mi > 59 || se > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_mday = (int)d;
	tm.tm_mon = (int)((m - months) / 3);
	tm.tm_year = (int)y - 1900;
	tm.tm_hour = (int)h;
	tm.tm_min = (int)mi;
	tm.tm_sec = (int)se;
	return (int64_t)timegm(&tm);
}

/* ---- MIME types --------------------------------------------------------------------------- */

static const char *mime_type(const char *path)
{
	static const struct { const char *ext, *type; } types[] = {
		{ "html", "text/html; charset=utf-8" }, { "htm", "text/html; charset=utf-8" },
		{ "css", "text/css; charset=utf-8" }, { "js", "text/javascript; charset=utf-8" },
		{ "mjs", "text/javascript; charset=utf-8" }, { "json", "application/json" },
		{ "txt", "text/plain; charset=utf-8" }, { "csv", "text/csv; charset=utf-8" },
		{ "xml", "application/xml" }, { "svg", "image/svg+xml" }, { "png", "image/png" },
		{ "jpg", "image/jpeg" }, { "jpeg", "image/jpeg" }, { "gif", "image/gif" },
		{ "webp", "image/webp" }, { "ico", "image/x-icon" }, { "avif", "image/avif" },
		{ "pdf", "application/pdf" }, { "zip", "application/zip" },
		{ "gz", "application/gzip" }, { "tar", "application/x-tar" },
		{ "mp4", "video/mp4" }, { "webm", "video/webm" }, { "mp3", "audio/mpeg" },
		{ "wav", "audio/wav" }, { "ogg", "audio/ogg" }, { "woff", "font/woff" },
		{ "woff2", "font/woff2" }, { "ttf", "font/ttf" }, { "otf", "font/otf" },
		{ "wasm", "application/wasm" }, { "md", "text/markdown; charset=utf-8" },
		{ "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document" },
		{ "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" },
	};
	const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
	size_t i;

	if (dot == NULL || (slash != NULL && dot < slash))
		return "application/octet-stream";
	for (i = 0; i < CORE_ARRAY_SIZE(types); i++)
		if (strcasecmp(dot + 1, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

/* ---- answers ------------------------------------------------------------------------------ */

static const char *reason(unsigned status)
{
	switch (status) {
	case 200: return "OK";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 416: return "Range Not Satisfiable";
	case 502: return "Bad Gateway";
	case 504: return "Gateway Timeout";
	default:  return "Error";
	}
}

static void job_wake(struct proxy_static_job *j)
{
	if (j->owner != NULL && !j->quiet)
		j->wake(j->owner);
}

/* A small page with status, and the headers in more (or ""). */
static void job_page(struct proxy_static_job *j, unsigned status, const char *more)
{
	char body[256];
	int bn = snprintf(body, sizeof(body), "<html><head><title>%u %s</title></head><body>"
			  "<h1>%u %s</h1><hr>keel</body></html>\n", status, reason(status), status,
			  reason(status));

	j->status = status;
	j->step = J_DONE;
	core_buf_printf(j->out, "HTTP/1.1 %u %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
			"%s%s\r\n", status, reason(status), bn, more, j->extra);
	if (!j->head_only)
		core_buf_append(j->out, body, (size_t)bn);
	job_wake(j);
}

/* The server failed this job: 502, or 504 when it did not answer. */
static void job_fail(struct proxy_static_job *j, unsigned status, const char *what, const char *err)
{
	struct proxy_static *st = j->st;

	core_log_warn("proxy", "static %s: %s:%s%s: %s: %s", st->route_path,
		      st->servers[j->srv], st->export, j->path, what,
		      err != NULL && err[0] ? err : "failed");
	if (j->status != 0) {		/* the head went out: only closing tells */
		j->broken = true;
		j->step = J_DONE;
		job_wake(j);
		return;
	}
	job_page(j, status, "");
}

static void fmt_http_date(uint64_t t, char *out, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(out, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* If-None-Match holds etag (or "*"), weakly compared. */
static bool etag_listed(const char *list, const char *etag)
{
	const char *p = list;
	size_t n = strlen(etag);

	while (*p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '*')
			return true;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

/* The file's head, then its bytes as they come. */
static void job_file(struct proxy_static_job *j)
{
	char etag[64], lm[40], more[200] = "";
	uint64_t from = 0, to = j->size ? j->size - 1 : 0;
	int r = 0;

	snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)j->mtime,
		 (unsigned long long)j->size);
	fmt_http_date(j->mtime, lm, sizeof(lm));
	if ((j->inm[0] != '\0' && etag_listed(j->inm, etag)) ||
	    (j->inm[0] == '\0' && j->ims >= 0 && (int64_t)j->mtime <= j->ims)) {
		snprintf(more, sizeof(more), "ETag: %s\r\nLast-Modified: %s\r\n", etag, lm);
		j->status = 304;
		j->step = J_DONE;
		core_buf_printf(j->out, "HTTP/1.1 304 Not Modified\r\n%s%s\r\n", more, j->extra);
		job_wake(j);
		return;
	}
	if (j->range[0] != '\0' && (j->if_range[0] == '\0' || strcmp(j->if_range, etag) == 0))
		r = proxy_static_range(j->range, strlen(j->range), j->size, &from, &to);
	if (r < 0) {
		snprintf(more, sizeof(more), "Content-Range: bytes */%llu\r\n",
			 (unsigned long long)j->size);
		job_page(j, 416, more);
		return;
	}
	j->status = r > 0 ? 206 : 200;
	if (r > 0)
		snprintf(more, sizeof(more), "Content-Range: bytes %llu-%llu/%llu\r\n",
			 (unsigned long long)from, (unsigned long long)to,
			 (unsigned long long)j->size);
	core_buf_printf(j->out, "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %llu\r\n"
			"Last-Modified: %s\r\nETag: %s\r\nAccept-Ranges: bytes\r\n%s%s\r\n",
			j->status, reason(j->status), mime_type(j->path),
			(unsigned long long)(j->size ? to - from + 1 : 0), lm, etag, more, j->extra);
	j->off = from;
	j->end = j->size ? to + 1 : 0;
	if (j->head_only || j->off >= j->end) {
		j->step = J_DONE;
		job_wake(j);
		return;
	}
	j->step = J_READ;
	if (job_next(j))
		job_wake(j);
}

/* ---- the connection ----------------------------------------------------------------------- */

static void job_get(struct proxy_static_job *j)
{
	j->refs++;
}

static void close_done(int err, struct nfs_context *nfs, void *data, void *arg)
{
	(void)err;
	(void)nfs;
	(void)data;
	(void)arg;
}

/* Gives the file handle back to the context it came from, if that is still
 * usable; a destroyed context took its handles' calls with it. */
static void job_close(struct proxy_static_job *j, struct nfs_context *nfs)
{
	if (j->fh != NULL && nfs != NULL && !j->st->destroying)
		(void)nfs_close_async(nfs, j->fh, close_done, NULL);
	j->fh = NULL;
}

static void job_put(struct proxy_static_job *j)
{
	struct proxy_static *st = j->st;

	if (--j->refs > 0)
		return;
	if (j->fh != NULL && j->gen == st->gen && st->nfs != NULL) {
		static_enter(st);
		job_close(j, st->nfs);
		static_leave(st);
	}
	core_list_del(&j->link);
	free(j);
}

static void static_watch(struct proxy_static *st)
{
	int fd, ev;

	core_io_stop(&st->io);
	if (st->nfs == NULL || (fd = nfs_get_fd(st->nfs)) < 0)
		return;
	ev = nfs_which_events(st->nfs);
	st->io.fd = fd;
	(void)core_io_set(&st->io, (ev & POLLIN ? CORE_IO_READ : 0) |
			  (ev & POLLOUT ? CORE_IO_WRITE : 0));
}

/* Destroying a context calls its callbacks (-EINTR): never from inside one. */
static void static_destroy(struct proxy_static *st, struct nfs_context *nfs)
{
	st->destroying = true;
	nfs_destroy_context(nfs);
	st->destroying = false;
}

static void static_enter(struct proxy_static *st)
{
	st->depth++;
}

/* Out of libnfs: a context dropped inside goes now, a new one is mounted
 * if a request asked meanwhile, and the loop watches what libnfs wants. */
static void static_leave(struct proxy_static *st)
{
	if (--st->depth > 0)
		return;
	if (st->doomed != NULL) {
		struct nfs_context *nfs = st->doomed;

		st->doomed = NULL;
		static_destroy(st, nfs);
	}
	if (st->want_connect) {
		st->want_connect = false;
		static_connect(st);	/* watches */
		return;
	}
	if (st->loop != NULL)
		static_watch(st);
}

/*
 * The context goes, with every call on it: the jobs that waited on it or
 * hold a file of it fail (status: 504 after a timeout, 502 after an
 * error), and the next request mounts afresh from the next server; a
 * job still waiting for the mount tries that one too, once per server. The
 * jobs are failed from a list of their own, taken off one at a time, as
 * each wake may end jobs or start new ones on a new context.
 */
static void static_drop(struct proxy_static *st, unsigned status, const char *why)
{
	struct nfs_context *nfs = st->nfs;
	struct core_list failing, *el, *next;
	uint64_t old = st->gen;

	st->gen++;
	st->nfs = NULL;
	st->mounted = false;
	if (st->loop != NULL)
		core_io_stop(&st->io);
	if (nfs != NULL && st->nservers > 1) {
		st->cur = (st->cur + 1) % st->nservers;
		core_log_warn("proxy", "static %s: trying %s next", st->route_path,
			      st->servers[st->cur]);
	}
	core_list_init(&failing);
	for (el = st->jobs.next; el != &st->jobs; el = next) {
		struct proxy_static_job *j = CORE_CONTAINER_OF(el, struct proxy_static_job, link);

		next = el->next;
		if (j->gen != old || (!j->waiting && j->fh == NULL))
			continue;
		job_close(j, nfs);
		core_list_del(&j->link);
		core_list_add_tail(&failing, &j->link);
	}
	if (nfs != NULL && st->depth > 0) {
		if (st->doomed != NULL)		/* cannot be: one context is served at a time */
			static_destroy(st, st->doomed);
		st->doomed = nfs;
	} else if (nfs != NULL)
		static_destroy(st, nfs);	/* its callbacks find their jobs stale */
	while (failing.next != &failing) {
		struct proxy_static_job *j = CORE_CONTAINER_OF(failing.next,
							       struct proxy_static_job, link);

		core_list_del(&j->link);
		core_list_add_tail(&st->jobs, &j->link);
		j->waiting = false;
		if (j->owner == NULL || j->step == J_DONE)
			continue;
		job_get(j);
		if (j->step == J_MOUNT && nfs != NULL && ++j->tries < st->nservers)
			job_next(j);	/* nothing was sent: the next server */
		else
			job_fail(j, status, "the connection", why);
		job_put(j);
	}
}

static void static_on_io(struct core_io *io, unsigned revents)
{
	struct proxy_static *st = io->data;
	int ev = (revents & CORE_IO_READ ? POLLIN : 0) | (revents & CORE_IO_WRITE ? POLLOUT : 0);

	if (st->nfs == NULL)
		return;
	static_enter(st);
	if (nfs_service(st->nfs, ev) < 0 && st->nfs != NULL) {
		const char *e = nfs_get_error(st->nfs);

		static_drop(st, 502, e != NULL && e[0] ? e : "the connection failed");
	}
	static_leave(st);
}

/*
 * A callback's start: libnfs lets go of the job. Whether the answer is
 * still news: the job waits on this context and proxy.c still owns it.
 * The caller puts libnfs's reference after it is done.
 */
static bool job_called(struct proxy_static_job *j, struct nfs_context *nfs)
{
	j->held = false;
	if (nfs != j->st->nfs || j->gen != j->st->gen || !j->waiting)
		return false;
	j->waiting = false;
	return j->owner != NULL;
}

static void mount_done(int err, struct nfs_context *nfs, void *data, void *arg)
{
	struct proxy_static *st = arg;
	struct core_list ready, *el, *next;

	if (nfs != st->nfs)
		return;
	if (err < 0) {
		const char *e = nfs_get_error(nfs);

		static_drop(st, 502, e != NULL && e[0] ? e : data);
		return;
	}
	st->mounted = true;
	core_list_init(&ready);
	for (el = st->jobs.next; el != &st->jobs; el = next) {
		struct proxy_static_job *j = CORE_CONTAINER_OF(el, struct proxy_static_job, link);

		next = el->next;
		if (j->step == J_MOUNT && j->waiting && j->gen == st->gen) {
			core_list_del(&j->link);
			core_list_add_tail(&ready, &j->link);
		}
	}
	while (ready.next != &ready) {
		struct proxy_static_job *j = CORE_CONTAINER_OF(ready.next,
							       struct proxy_static_job, link);

		core_list_del(&j->link);
		core_list_add_tail(&st->jobs, &j->link);
		j->waiting = false;
		if (j->owner == NULL)
			continue;
		job_get(j);
		j->step = J_LSTAT;
		job_next(j);		/* mounts again if it went meanwhile */
		job_put(j);
	}
}

/* Mounts the export from the current server; later, when inside libnfs. */
static void static_connect(struct proxy_static *st)
{
	char name[320];

	if (st->nfs != NULL)
		return;
	if (st->depth > 0) {
		st->want_connect = true;
		return;
	}
	if ((st->nfs = nfs_init_context()) == NULL) {
		static_drop(st, 502, "out of memory");
		return;
	}
	/* libnfs names every context "Libnfs pid:P <second>": two routes
	 * mounting in one second would take each other's NFSv4 state. */
	snprintf(name, sizeof(name), "keel:%d:static:%s:%llu", (int)getpid(), st->route_path,
		 (unsigned long long)st->gen);
	nfs4_set_client_name(st->nfs, name);
	static_enter(st);
	if (nfs_set_version(st->nfs, st->version) != 0 ||
	    nfs_mount_async(st->nfs, st->servers[st->cur], st->export, mount_done, st) != 0)
		static_drop(st, 502, nfs_get_error(st->nfs));
	static_leave(st);
}

/* ---- a job's calls ------------------------------------------------------------------------ */

static void read_answer(struct proxy_static_job *j, int err, void *data)
{
	if (err <= 0) {
		/* 0 bytes before the end: the file shrank under us */
		job_fail(j, 502, "READ", err < 0 ? (const char *)data : "the file got shorter");
		return;
	}
	if ((uint64_t)err > j->end - j->off)
		err = (int)(j->end - j->off);
	if (core_buf_append(j->out, data, (size_t)err) != CORE_OK) {
		job_fail(j, 502, "READ", "no room for the data");
		return;
	}
	j->off += (uint64_t)err;
	if (j->off >= j->end)
		j->step = J_DONE;
	else if (core_buf_len(j->out) < STATIC_AHEAD && !job_next(j))
		return;			/* else proxy_static_more, once the client took some */
	job_wake(j);
}

static void read_done(int err, struct nfs_context *nfs, void *data, void *arg)
{
	struct proxy_static_job *j = arg;

	if (job_called(j, nfs))
		read_answer(j, err, data);
	job_put(j);			/* libnfs's */
}

static void open_done(int err, struct nfs_context *nfs, void *data, void *arg)
{
	struct proxy_static_job *j = arg;

	if (!job_called(j, nfs)) {
		if (err >= 0 && !j->st->destroying)	/* a handle nobody wants */
			(void)nfs_close_async(nfs, data, close_done, NULL);
		job_put(j);
		return;
	}
	if (err < 0) {
		if (err == -ENOENT || err == -EACCES)
			job_page(j, err == -ENOENT ? 404 : 403, "");
		else if (err == -ELOOP)		/* became a link after the lstat */
			job_page(j, 404, "");
		else
			job_fail(j, 502, "OPEN", data);
	} else {
		j->fh = data;
		job_file(j);
	}
	job_put(j);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void put_html(struct core_buf *b, const char *s)
{
	for (; *s != '\0'; s++)
		switch (*s) {
		case '<': core_buf_append(b, "&lt;", 4); break;
		case '>': core_buf_append(b, "&gt;", 4); break;
		case '&': core_buf_append(b, "&amp;", 5); break;
		case '"': core_buf_append(b, "&quot;", 6); break;
		default:  core_buf_append(b, s, 1);
		}
}

static void put_href(struct core_buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-._~/", c) != NULL)
			core_buf_append(b, s, 1);
		else
			core_buf_printf(b, "%%%02X", c);
	}
}

static void opendir_answer(struct proxy_static_job *j, int err, struct nfs_context *nfs,
			   void *data)
{
	struct nfsdir *dir = data;
	struct nfsdirent *e;
	struct core_buf page;
	char **names = NULL, where[1300];
	size_t n = 0, cap = 0, i;

	snprintf(where, sizeof(where), "%s", j->url);
	if (err < 0) {
		job_fail(j, 502, "READDIR", data);
		return;
	}
	while ((e = nfs_readdir(nfs, dir)) != NULL && n < STATIC_LIST_MAX) {
		size_t l = strlen(e->name);

		if (e->name[0] == '.')
			continue;	/* ".", "..", and hidden files (the canary) */
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **grown = realloc(names, ncap * sizeof(*names));

			if (grown == NULL)
				break;
			names = grown;
			cap = ncap;
		}
		if ((names[n] = malloc(l + 2)) == NULL)
			break;
		memcpy(names[n], e->name, l);
		/* type 2 is NF3DIR, which libnfs gives for v4 too */
		names[n][l] = (e->mode & S_IFMT) == S_IFDIR || e->type == 2 ? '/' : '\0';
		names[n][l + 1] = '\0';
		n++;
	}
	nfs_closedir(nfs, dir);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_names);
	core_buf_init(&page, 8 << 20);
	core_buf_append(&page, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ", 65);
	put_html(&page, where);
	core_buf_append(&page, "</title></head><body><h1>Index of ", 34);
	put_html(&page, where);
	core_buf_append(&page, "</h1><hr><pre><a href=\"../\">../</a>\n", 36);
	for (i = 0; i < n; i++) {
		if (core_buf_len(&page) > STATIC_LIST_BYTES) {
			core_buf_printf(&page, "(%zu more)\n", n - i);
			for (; i < n; i++)
				free(names[i]);
			break;
		}
		core_buf_append(&page, "<a href=\"", 9);
		put_href(&page, names[i]);
		core_buf_append(&page, "\">", 2);
		put_html(&page, names[i]);
		core_buf_append(&page, "</a>\n", 5);
		free(names[i]);
	}
	free(names);
	core_buf_append(&page, "</pre><hr></body></html>\n", 25);
	j->status = 200;
	j->step = J_DONE;
	core_buf_printf(j->out, "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
			"Content-Length: %zu\r\n%s\r\n", core_buf_len(&page), j->extra);
	if (!j->head_only)
		core_buf_append(j->out, core_buf_head(&page), core_buf_len(&page));
	core_buf_free(&page);
	job_wake(j);
}

static void opendir_done(int err, struct nfs_context *nfs, void *data, void *arg)
{
	struct proxy_static_job *j = arg;

	if (job_called(j, nfs))
		opendir_answer(j, err, nfs, data);
	else if (err >= 0 && data != NULL)
		nfs_closedir(nfs, data);
	job_put(j);
}

static void lstat_answer(struct proxy_static_job *j, int err, void *data)
{
	const struct nfs_stat_64 *sb = data;
	bool index = j->step == J_INDEX;

	if (err < 0) {
		if (err == -ENOENT || err == -ENOTDIR) {
			if (!index)
				job_page(j, 404, "");
			else if (j->st->listing) {
				j->path[j->index_at] = '\0';
				j->step = J_OPENDIR;
				job_next(j);
			} else
				job_page(j, 403, "");
		} else if (err == -EACCES)
			job_page(j, 403, "");
		else
			job_fail(j, 502, "GETATTR", data);
		return;
	}
	switch (sb->nfs_mode & S_IFMT) {
	case S_IFREG:
		j->size = sb->nfs_size;
		j->mtime = sb->nfs_mtime;
		j->mtime_ns = sb->nfs_mtime_nsec;
		j->step = J_OPEN;
		job_next(j);
		return;
	case S_IFDIR:
		if (index) {
			job_page(j, 403, "");
			return;
		}
		if (j->rel[strlen(j->rel) - 1] != '/') {	/* nginx's way: to the folder */
			const char *u = j->url;
			char loc[1400];

			while (u[0] == '/' && u[1] == '/')	/* "//host/" would leave */
				u++;
			snprintf(loc, sizeof(loc), "Location: %s/%s%s\r\n", u,
				 j->query[0] ? "?" : "", j->query);
			job_page(j, 301, loc);
			return;
		}
		if (j->st->index[0] != '\0') {
			size_t l = strlen(j->path);

			j->index_at = l;
			snprintf(j->path + l, sizeof(j->path) - l, "%s%s",
				 j->path[l - 1] == '/' ? "" : "/", j->st->index);
			j->step = J_INDEX;
			job_next(j);
		} else if (j->st->listing) {
			j->step = J_OPENDIR;
			job_next(j);
		} else
			job_page(j, 403, "");
		return;
	default:			/* a symbolic link, a device... */
		job_page(j, 404, "");
	}
}

static void lstat_done(int err, struct nfs_context *nfs, void *data, void *arg)
{
	struct proxy_static_job *j = arg;

	if (job_called(j, nfs))
		lstat_answer(j, err, data);
	job_put(j);
}

/*
 * Sends the job's next call, once the context is mounted. false when the
 * job failed at once: proxy.c was woken and may have ended it, so only a
 * caller holding a reference may look at it again.
 */
static bool job_next(struct proxy_static_job *j)
{
	struct proxy_static *st = j->st;
	int rc = 0;

	j->asked = core_loop_now(st->loop);
	j->gen = st->gen;
	j->srv = st->cur;
	j->waiting = true;
	if (!st->mounted) {
		if (j->step != J_MOUNT && j->step != J_LSTAT) {
			j->waiting = false;	/* its file went with the context */
			job_fail(j, 502, "the connection", "lost");
			return false;
		}
		j->step = J_MOUNT;
		static_connect(st);
		return true;
	}
	static_enter(st);
	job_get(j);			/* libnfs's, put by the callback */
	j->held = true;
	switch (j->step) {
	case J_LSTAT:
	case J_INDEX:
		rc = nfs_lstat64_async(st->nfs, j->path, lstat_done, j);
		break;
	case J_OPEN:
		rc = nfs_open_async(st->nfs, j->path, O_RDONLY | O_NOFOLLOW, open_done, j);
		break;
	case J_READ:
		rc = nfs_pread_async(st->nfs, j->fh, j->off, j->end - j->off < STATIC_CHUNK ?
				     j->end - j->off : STATIC_CHUNK, read_done, j);
		break;
	case J_OPENDIR:
		rc = nfs_opendir_async(st->nfs, j->path, opendir_done, j);
		break;
	case J_MOUNT:
	case J_DONE:
		rc = -1;
		break;
	}
	if (rc != 0 && j->held) {	/* not sent: libnfs keeps no callback */
		const char *e = st->nfs != NULL ? nfs_get_error(st->nfs) : NULL;

		j->held = false;
		j->refs--;		/* the caller holds one too */
		if (j->waiting) {
			j->waiting = false;
			job_fail(j, 502, "a call", e);
		}
		static_leave(st);
		return false;
	}
	static_leave(st);
	return true;
}

/* ---- what proxy.c calls ------------------------------------------------------------------- */

struct proxy_static *proxy_static_new(const struct keel_static_conf *c,
				      const struct keel_mount_conf *m, const char *route_path,
				      char *err, size_t errlen)
{
	struct proxy_static *st = calloc(1, sizeof(*st));
	char *const *srv = m->servers.v;
	const char *o;
	size_t i;

	if (st == NULL) {
		snprintf(err, errlen, "out of memory for the static route %s", route_path);
		return NULL;
	}
	for (i = 0; i < m->servers.n && i < STATIC_MAX_SERVERS; i++)
		snprintf(st->servers[i], sizeof(st->servers[i]), "%s", srv[i]);
	st->nservers = (unsigned)i;
	snprintf(st->export, sizeof(st->export), "%s", m->export);
	snprintf(st->root, sizeof(st->root), "%s", c->root);
	snprintf(st->index, sizeof(st->index), "%s", c->index);
	snprintf(st->route_path, sizeof(st->route_path), "%s", route_path);
	st->listing = c->listing;
	st->timeout = (uint64_t)c->timeout;
	/* The NFS version the mount's options name, as storage/ probes it. */
	st->version = 4;
	for (o = m->options; o != NULL && *o != '\0'; o += strcspn(o, ","), o += *o == ',')
		if (strncmp(o, "vers=", 5) == 0 || strncmp(o, "nfsvers=", 8) == 0)
			st->version = o[o[0] == 'v' ? 5 : 8] == '3' ? 3 : 4;
	core_list_init(&st->jobs);
	st->io.fd = -1;
	return st;
}

void proxy_static_free(struct proxy_static *st)
{
	struct core_list *el, *next;

	if (st == NULL)
		return;
	if (st->loop != NULL)
		core_io_stop(&st->io);
	if (st->nfs != NULL) {
		struct nfs_context *nfs = st->nfs;

		st->nfs = NULL;		/* its callbacks find their jobs stale */
		st->gen++;
		static_destroy(st, nfs);
	}
	/* proxy.c ended every job before the route went; what is left was
	 * held by a context and leaks nothing else now. */
	for (el = st->jobs.next; el != &st->jobs; el = next) {
		next = el->next;
		free(CORE_CONTAINER_OF(el, struct proxy_static_job, link));
	}
	free(st);
}

/* A name starting with a dot (keel's canary files, .git, .htpasswd) is not
 * served, as it is not listed; ".well-known" is, for ACME and the like. */
static bool hidden(const char *rel)
{
	const char *p;

	for (p = rel; (p = strstr(p, "/.")) != NULL; p++)
		if (strncmp(p, "/.well-known", 12) != 0 || (p[12] != '/' && p[12] != '\0'))
			return true;
	return false;
}

/* A header's value, NUL-terminated into out ("" when absent or too long). */
static void header(const struct core_http_msg *m, const char *buf, const char *name, char *out,
		   size_t len)
{
	const struct core_http_header *h = core_http_find(m, buf, name);

	out[0] = '\0';
	if (h != NULL && h->value.len < len) {
		memcpy(out, buf + h->value.off, h->value.len);
		out[h->value.len] = '\0';
	}
}

struct proxy_static_job *proxy_static_begin(struct proxy_static *st, struct core_loop *loop,
					    const char *path, size_t path_len, size_t skip,
					    const char *query, size_t query_len,
					    const struct core_http_msg *m, const char *buf,
					    const char *extra, struct core_buf *out,
					    void (*wake)(void *owner), void *owner)
{
	struct proxy_static_job *j = calloc(1, sizeof(*j));
	char ims[64];
	size_t l;

	if (j == NULL)
		return NULL;
	if (st->loop == NULL) {		/* the first request in this worker */
		st->loop = loop;
		core_io_init(loop, &st->io, -1, static_on_io, st);
	}
	j->st = st;
	j->wake = wake;
	j->owner = owner;
	j->refs = 1;			/* proxy.c's */
	j->out = out;
	j->ims = -1;
	core_list_add_tail(&st->jobs, &j->link);
	snprintf(j->extra, sizeof(j->extra), "%s", extra);
	if (query_len < sizeof(j->query)) {
		memcpy(j->query, query, query_len);
		j->query[query_len] = '\0';
	}
	j->head_only = m->method_id == CORE_HTTP_M_HEAD;
	j->quiet = true;
	if (path_len < sizeof(j->url)) {
		memcpy(j->url, path, path_len);
		j->url[path_len] = '\0';
	}
	if (m->method_id != CORE_HTTP_M_GET && m->method_id != CORE_HTTP_M_HEAD) {
		job_page(j, 405, "Allow: GET, HEAD\r\n");
		j->quiet = false;
		return j;
	}
	l = strlen(st->root);
	if (path_len < skip || path_len >= sizeof(j->url) ||
	    proxy_static_path(path + skip, path_len - skip, j->rel, sizeof(j->rel)) != 0 ||
	    (size_t)snprintf(j->path, sizeof(j->path), "%.*s%s", (int)(l > 1 ? l : 0), st->root,
			     l > 1 && j->rel[1] == '\0' ? "" : j->rel) >= sizeof(j->path)) {
		job_page(j, 400, "");
		j->quiet = false;
		return j;
	}
	if (hidden(j->rel)) {
		job_page(j, 404, "");
		j->quiet = false;
		return j;
	}
	header(m, buf, "if-none-match", j->inm, sizeof(j->inm));
	header(m, buf, "range", j->range, sizeof(j->range));
	header(m, buf, "if-range", j->if_range, sizeof(j->if_range));
	header(m, buf, "if-modified-since", ims, sizeof(ims));
	if (ims[0] != '\0')
		j->ims = proxy_static_http_date(ims, strlen(ims));
	j->step = J_LSTAT;
	job_next(j);
	j->quiet = false;
	return j;
}

void proxy_static_more(struct proxy_static_job *j)
{
	if (j->step == J_READ && !j->waiting && j->off < j->end &&
	    core_buf_len(j->out) < STATIC_AHEAD) {
		j->quiet = true;
		job_next(j);
		j->quiet = false;
	}
}

bool proxy_static_done(const struct proxy_static_job *j)
{
	return j->step == J_DONE && !j->broken;
}

bool proxy_static_broken(const struct proxy_static_job *j)
{
	return j->broken;
}

bool proxy_static_waiting(const struct proxy_static_job *j, uint64_t *since, uint64_t *timeout)
{
	if (!j->waiting)
		return false;
	*since = j->asked;
	*timeout = j->st->timeout;
	return true;
}

void proxy_static_timeout(struct proxy_static_job *j)
{
	struct proxy_static *st = j->st;
	char why[120];

	snprintf(why, sizeof(why), "no answer within %llu ms", (unsigned long long)st->timeout);
	static_drop(st, 504, why);	/* fails j too */
}

unsigned proxy_static_status(const struct proxy_static_job *j)
{
	return j->status;
}

void proxy_static_end(struct proxy_static_job *j)
{
	if (j == NULL)
		return;
	j->owner = NULL;
	j->waiting = false;
	job_put(j);		/* freed now, or when libnfs gives it back */
}
