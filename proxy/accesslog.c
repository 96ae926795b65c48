/* The access log. Every byte that came from a client is escaped, so a
 * request cannot forge a line or break the JSON. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/core.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/settings.h"
#include "accesslog.h"
#include "core/http.h"

#define LOG_BUF		65536
#define LOG_FLUSH_MS	1000

static struct {
	int		  fd;		/* -1: off */
	int		  owned;	/* we opened it (not stdout) */
	enum proxy_log_format format;
	char		  path[256];
	char		  buf[LOG_BUF];
	size_t		  len;
	struct core_timer flush;
	struct core_loop *loop;
} al = { .fd = -1 };

static void log_flush(void)
{
	size_t off = 0;

	while (off < al.len) {
		ssize_t n = write(al.fd, al.buf + off, al.len - off);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			/* A full disk must not stop the proxy: drop, say so once a flush. */
			core_log_error("proxy", "access log %s: write failed: %s; %zu bytes dropped",
				       al.path[0] ? al.path : "(stdout)", strerror(errno),
				       al.len - off);
			break;
		}
		off += (size_t)n;
	}
	al.len = 0;
}

static void log_on_timer(struct core_timer *t)
{
	(void)t;
	if (al.len > 0)
		log_flush();
}

void proxy_log_close(void)
{
	if (al.fd != -1 && al.len > 0)
		log_flush();
	if (al.owned && al.fd != -1)
		close(al.fd);
	if (al.loop != NULL)
		core_timer_stop(&al.flush);
	al.fd = -1;
	al.owned = 0;
}

int proxy_log_open(struct core_loop *loop, const struct core_conf *conf,
		   char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);
	int fd;

	if (al.loop == NULL) {
		al.loop = loop;
		core_timer_init(loop, &al.flush, log_on_timer, NULL);
	}
	if (k->access_log.format == PROXY_LOG_OFF) {
		proxy_log_close();
		al.format = PROXY_LOG_OFF;
		return CORE_OK;
	}
	if (k->access_log.path[0] == '\0') {
		fd = STDOUT_FILENO;
	} else {
		fd = open(k->access_log.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd == -1) {
			snprintf(err, errlen, "access log %s: %s", k->access_log.path,
				 strerror(errno));
			return CORE_ERROR;
		}
	}
	proxy_log_close();
	al.fd = fd;
	al.owned = fd != STDOUT_FILENO;
	al.format = (enum proxy_log_format)k->access_log.format;
	snprintf(al.path, sizeof(al.path), "%s", k->access_log.path);
	return CORE_OK;
}

int proxy_log_enabled(void)
{
	return al.fd != -1;
}

/* Copies a field of the head, or "-" when it is missing. */
static void copy_field(char *dst, size_t len, const char *buf, struct core_http_span sp)
{
	size_t n = sp.len < len - 1 ? sp.len : len - 1;

	if (sp.len == 0) {
		snprintf(dst, len, "-");
		return;
	}
	memcpy(dst, buf + sp.off, n);
	dst[n] = '\0';
}

void proxy_log_fill(struct proxy_logrec *r, const char *client,
		    const struct core_http_msg *m, const char *buf, uint64_t now_mono)
{
	const struct core_http_header *h;

	memset(r, 0, sizeof(*r));
	r->start_wall = core_clock_wall_ms();
	r->start_mono = now_mono;
	snprintf(r->client, sizeof(r->client), "%s", client);
	snprintf(r->upstream, sizeof(r->upstream), "-");
	if (m == NULL || buf == NULL || m->method.len == 0) {
		snprintf(r->method, sizeof(r->method), "-");
		snprintf(r->host, sizeof(r->host), "-");
		snprintf(r->path, sizeof(r->path), "-");
		snprintf(r->referer, sizeof(r->referer), "-");
		snprintf(r->agent, sizeof(r->agent), "-");
		return;
	}
	r->version = m->version;
	copy_field(r->method, sizeof(r->method), buf, m->method);
	copy_field(r->host, sizeof(r->host), buf, m->host);
	copy_field(r->path, sizeof(r->path), buf, m->target);
	h = core_http_find(m, buf, "referer");
	copy_field(r->referer, sizeof(r->referer), buf,
		   h ? h->value : (struct core_http_span){ 0, 0 });
	h = core_http_find(m, buf, "user-agent");
	copy_field(r->agent, sizeof(r->agent), buf,
		   h ? h->value : (struct core_http_span){ 0, 0 });
}

/* Appends s escaped for a JSON string or for combined's quoted fields. */
static size_t put_escaped(char *out, size_t room, const char *s, int json)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *s != '\0' && n + 6 < room; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			if (json) {
				memcpy(out + n, "\\u00", 4);
				n += 4;
			} else {
				out[n++] = '\\';
				out[n++] = 'x';
			}
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		} else
			out[n++] = (char)c;
	}
	return n;
}

void proxy_log_write(const struct proxy_logrec *r, uint64_t now_mono)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	char line[2048], ts[40];
	size_t n = 0, room = sizeof(line) - 1;
	uint64_t total = now_mono - r->start_mono;
	time_t secs = (time_t)(r->start_wall / 1000);
	struct tm tm;
	int json = al.format == PROXY_LOG_JSON;

	if (al.fd == -1)
		return;
	gmtime_r(&secs, &tm);

#define APPEND(...) do {							\
	int w_ = snprintf(line + n, room - n, __VA_ARGS__);		\
	if (w_ > 0)							\
		n += (size_t)w_ < room - n ? (size_t)w_ : room - n - 1;	\
} while (0)
#define APPEND_ESC(s) (n += put_escaped(line + n, room - n, (s), json))

	if (json) {
		core_clock_format_utc(r->start_wall, ts, sizeof(ts));
		APPEND("{\"time\":\"%s\",\"client\":\"", ts);
		APPEND_ESC(r->client);
		APPEND("\",\"host\":\"");
		APPEND_ESC(r->host);
		APPEND("\",\"method\":\"");
		APPEND_ESC(r->method);
		APPEND("\",\"path\":\"");
		APPEND_ESC(r->path);
		APPEND("\",\"status\":%u,\"bytes\":%llu,\"upstream\":\"", r->status,
		       (unsigned long long)r->bytes);
		APPEND_ESC(r->upstream);
		APPEND("\",\"upstream_ms\":%llu,\"time_ms\":%llu,\"referer\":\"",
		       (unsigned long long)r->upstream_ms, (unsigned long long)total);
		APPEND_ESC(r->referer);
		APPEND("\",\"agent\":\"");
		APPEND_ESC(r->agent);
		APPEND("\"}");
	} else {
		APPEND("%s - - [%02d/%s/%04d:%02d:%02d:%02d +0000] \"", r->client,
		       tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900,
		       tm.tm_hour, tm.tm_min, tm.tm_sec);
		APPEND_ESC(r->method);
		APPEND(" ");
		APPEND_ESC(r->path);
		if (r->version)
			APPEND(" HTTP/1.%u", r->version % 10);
		APPEND("\" %u %llu \"", r->status, (unsigned long long)r->bytes);
		APPEND_ESC(r->referer);
		APPEND("\" \"");
		APPEND_ESC(r->agent);
		APPEND("\" host=\"");
		APPEND_ESC(r->host);
		APPEND("\" upstream=%s upstream_time=%llu.%03llu request_time=%llu.%03llu",
		       r->upstream,
		       (unsigned long long)(r->upstream_ms / 1000),
		       (unsigned long long)(r->upstream_ms % 1000),
		       (unsigned long long)(total / 1000), (unsigned long long)(total % 1000));
	}
#undef APPEND
#undef APPEND_ESC
	line[n++] = '\n';

	if (al.len + n > sizeof(al.buf))
		log_flush();
	memcpy(al.buf + al.len, line, n);
	al.len += n;
	if (!core_timer_armed(&al.flush))
		core_timer_start(&al.flush, LOG_FLUSH_MS);
}
