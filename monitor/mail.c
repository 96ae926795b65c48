/* Alert e-mail; see mail.h. One connection per message: greeting, EHLO,
 * STARTTLS and the TLS handshake, EHLO again, AUTH, MAIL, RCPT, DATA,
 * QUIT, each step waiting for the server's reply. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/base64.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "core/buf.h"
#include "core/core.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"
#include "mail.h"

#define MAIL_TRIES	5		/* then the message is dropped */
#define MAIL_TIMEOUT_MS	30000		/* for one whole attempt */
#define MAIL_REPLY_MAX	16384

enum mail_state {
	MAIL_CONNECT = 0,	/* TCP connect under way */
	MAIL_GREETING,		/* waiting for 220 */
	MAIL_EHLO,		/* waiting for 250 to EHLO */
	MAIL_STARTTLS,		/* waiting for 220 to STARTTLS */
	MAIL_HANDSHAKE,		/* TLS handshake */
	MAIL_AUTH_PLAIN,	/* waiting for 235 */
	MAIL_AUTH_LOGIN_USER,	/* waiting for 334 (user) */
	MAIL_AUTH_LOGIN_PASS,	/* waiting for 334 (password) */
	MAIL_AUTH_LOGIN_DONE,	/* waiting for 235 */
	MAIL_FROM,		/* waiting for 250 to MAIL FROM */
	MAIL_RCPT,		/* waiting for 250 to RCPT TO */
	MAIL_DATA,		/* waiting for 354 */
	MAIL_SENT,		/* message sent, waiting for 250 */
	MAIL_QUIT,		/* waiting for 221 */
	MAIL_IDLE,		/* between attempts */
};

static const char *mail_state_str(enum mail_state s)
{
	static const char *const names[] = {
		"connect", "greeting", "EHLO", "STARTTLS", "TLS handshake", "AUTH PLAIN",
		"AUTH LOGIN", "AUTH LOGIN", "AUTH LOGIN", "MAIL FROM", "RCPT TO", "DATA",
		"end of data", "QUIT", "idle",
	};
	return (unsigned)s < CORE_ARRAY_SIZE(names) ? names[s] : "?";
}

struct mail {
	struct core_list link;		/* in ml.all */
	enum mail_state	 state;
	int		 fd;
	struct core_io	 io;
	struct core_timer timer;	/* attempt deadline, or the next try */
	unsigned	 tries;
	bool		 tls;		/* the TLS layer is up */
	bool		 has_starttls, has_plain, has_login;
	unsigned	 rcpt;		/* next recipient to send */
	struct core_buf	 in, out;

	/* what to send, copied out of the config */
	struct keel_email_conf conf;
	char		**to;
	size_t		 nto;
	char		*message;	/* headers and dot-stuffed body, ending in CRLF.CRLF */
	char		 subject[200];

	mbedtls_ssl_context ssl;
	mbedtls_ssl_config sslconf;
	mbedtls_x509_crt ca;
	bool		 ssl_ready;
	bool		 finished;	/* sent, or given up: freed by the timer */
};

static struct {
	struct core_list all;		/* mails on their way */
	struct core_loop *loop;
	bool		 rng_ready;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	unsigned long	 failures;
} ml = { .all = { &ml.all, &ml.all } };

static void mail_step(struct mail *m);

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

static void mail_conf_free(struct keel_email_conf *c)
{
	free(c->tls_name);
	free(c->ca_file);
	free(c->user);
	free(c->password);
	free(c->from);
	free(c->helo);
}

static void mail_close_conn(struct mail *m)
{
	if (m->ssl_ready) {
		mbedtls_ssl_free(&m->ssl);
		mbedtls_ssl_config_free(&m->sslconf);
		mbedtls_x509_crt_free(&m->ca);
		m->ssl_ready = false;
	}
	if (m->fd != -1) {
		core_io_stop(&m->io);
		close(m->fd);
		m->fd = -1;
	}
	m->tls = false;
	core_buf_free(&m->in);
	core_buf_free(&m->out);
}

static void mail_free(struct mail *m)
{
	size_t i;

	core_list_del(&m->link);
	mail_close_conn(m);
	core_timer_stop(&m->timer);
	for (i = 0; i < m->nto; i++)
		free(m->to[i]);
	free(m->to);
	free(m->message);
	mail_conf_free(&m->conf);
	free(m);
}

static void mail_attempt(struct mail *m);

/* Done with the message, either way: it is freed from the loop, never
 * under a caller that still holds it. */
static void mail_finish(struct mail *m)
{
	mail_close_conn(m);
	m->state = MAIL_IDLE;
	m->finished = true;
	core_timer_start(&m->timer, 0);
}

/* An attempt failed: try again later, or give up. */
static void mail_fail(struct mail *m, const char *why)
{
	mail_close_conn(m);
	if (++m->tries >= MAIL_TRIES) {
		ml.failures++;
		core_log_error("alert", "e-mail via %s not sent after %u tries (%s): %s",
			       m->conf.server.text, m->tries, m->subject, why);
		mail_finish(m);
		return;
	}
	core_log_warn("alert", "e-mail via %s: try %u failed: %s; again in %u s",
		      m->conf.server.text, m->tries, why, 1u << (m->tries - 1));
	m->state = MAIL_IDLE;
	core_timer_start(&m->timer, 1000ULL << (m->tries - 1));
}

/* ---- bytes in and out, plain or through TLS ----------------------------------------- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct mail *m = ctx;
	ssize_t n = write(m->fd, buf, len);

	if (n >= 0)
		return (int)n;
	return errno == EAGAIN ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct mail *m = ctx;
	ssize_t n = read(m->fd, buf, len);

	if (n >= 0)
		return (int)n;
	return errno == EAGAIN ? MBEDTLS_ERR_SSL_WANT_READ : MBEDTLS_ERR_NET_RECV_FAILED;
}

/* Sends what is queued; CORE_OK (maybe partly), or CORE_ERROR. */
static int mail_flush(struct mail *m)
{
	while (core_buf_len(&m->out) > 0) {
		ssize_t n;

		if (m->tls) {
			int r = mbedtls_ssl_write(&m->ssl, (unsigned char *)core_buf_head(&m->out),
						  core_buf_len(&m->out));

			if (r == MBEDTLS_ERR_SSL_WANT_WRITE || r == MBEDTLS_ERR_SSL_WANT_READ)
				break;
			if (r < 0)
				return CORE_ERROR;
			n = r;
		} else {
			n = write(m->fd, core_buf_head(&m->out), core_buf_len(&m->out));
			if (n == -1 && errno == EAGAIN)
				break;
			if (n == -1)
				return CORE_ERROR;
		}
		core_buf_consume(&m->out, (size_t)n);
	}
	core_io_set(&m->io, CORE_IO_READ | (core_buf_len(&m->out) ? CORE_IO_WRITE : 0));
	return CORE_OK;
}

static int mail_sendf(struct mail *m, const char *fmt, ...) CORE_PRINTF(2, 3);

static int mail_sendf(struct mail *m, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) ||
	    core_buf_append(&m->out, line, (size_t)n) != CORE_OK)
		return CORE_ERROR;
	return mail_flush(m);
}

/* Reads what there is. CORE_OK, CORE_AGAIN (nothing new), or CORE_ERROR. */
static int mail_read(struct mail *m)
{
	int got = 0;

	for (;;) {
		ssize_t n;

		if (core_buf_reserve(&m->in, 1024) != CORE_OK)
			return CORE_ERROR;
		if (m->tls) {
			int r = mbedtls_ssl_read(&m->ssl, (unsigned char *)m->in.data + m->in.end,
						 m->in.size - m->in.end);

			/* Drain what TLS holds: epoll will not say it is there. */
			if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
				break;
			if (r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
				continue;
			if (r <= 0)
				return CORE_ERROR;
			n = r;
		} else {
			n = read(m->fd, m->in.data + m->in.end, m->in.size - m->in.end);
			if (n == -1 && errno == EAGAIN)
				break;
			if (n <= 0)
				return CORE_ERROR;
		}
		m->in.end += (size_t)n;
		got = 1;
	}
	return got ? CORE_OK : CORE_AGAIN;
}

/*
 * Takes one complete reply off the input: code, and the text of its last
 * line (for errors). Multi-line replies ("250-...") are collected so EHLO's
 * extensions can be seen. Returns 0 if no whole reply is there yet.
 */
static int mail_reply(struct mail *m, char *text, size_t textlen)
{
	char *p = core_buf_head(&m->in), *end = p + core_buf_len(&m->in), *line = p;

	while (line < end) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t len;

		if (nl == NULL)
			return 0;
		len = (size_t)(nl - line);
		if (len < 3)
			return -1;
		if (m->state == MAIL_EHLO && len > 4) {
			if (strncasecmp(line + 4, "STARTTLS", 8) == 0)
				m->has_starttls = true;
			if (strncasecmp(line + 4, "AUTH", 4) == 0) {
				char caps[256];

				snprintf(caps, sizeof(caps), "%.*s", (int)(len - 4), line + 4);
				m->has_plain = strcasestr(caps, "PLAIN") != NULL;
				m->has_login = strcasestr(caps, "LOGIN") != NULL;
			}
		}
		if (len == 3 || line[3] == ' ' || line[3] == '\r') {
			int code = atoi(line);

			snprintf(text, textlen, "%.*s", (int)(len && line[len - 1] == '\r' ? len - 1 : len),
				 line);
			core_buf_consume(&m->in, (size_t)(nl + 1 - p));
			return code > 0 ? code : -1;
		}
		line = nl + 1;
	}
	return 0;
}

/* ---- the conversation ----------------------------------------------------------------- */

static int mail_tls_setup(struct mail *m, char *why, size_t len)
{
	int r;

	if (!ml.rng_ready) {
		psa_crypto_init();
		mbedtls_entropy_init(&ml.entropy);
		mbedtls_ctr_drbg_init(&ml.drbg);
		if (mbedtls_ctr_drbg_seed(&ml.drbg, mbedtls_entropy_func, &ml.entropy,
					  (const unsigned char *)"keel-mail", 9) != 0) {
			snprintf(why, len, "cannot seed the random generator");
			return CORE_ERROR;
		}
		ml.rng_ready = true;
	}
	mbedtls_ssl_init(&m->ssl);
	mbedtls_ssl_config_init(&m->sslconf);
	mbedtls_x509_crt_init(&m->ca);
	m->ssl_ready = true;
	if (mbedtls_ssl_config_defaults(&m->sslconf, MBEDTLS_SSL_IS_CLIENT,
					MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT) != 0) {
		snprintf(why, len, "TLS setup failed");
		return CORE_ERROR;
	}
	mbedtls_ssl_conf_rng(&m->sslconf, mbedtls_ctr_drbg_random, &ml.drbg);
	if (m->conf.tls_verify) {
		r = mbedtls_x509_crt_parse_file(&m->ca, m->conf.ca_file);
		if (r < 0) {
			snprintf(why, len, "cannot load CA file %s", m->conf.ca_file);
			return CORE_ERROR;
		}
		mbedtls_ssl_conf_ca_chain(&m->sslconf, &m->ca, NULL);
		mbedtls_ssl_conf_authmode(&m->sslconf, MBEDTLS_SSL_VERIFY_REQUIRED);
	} else
		mbedtls_ssl_conf_authmode(&m->sslconf, MBEDTLS_SSL_VERIFY_NONE);
	if (mbedtls_ssl_setup(&m->ssl, &m->sslconf) != 0 ||
	    mbedtls_ssl_set_hostname(&m->ssl, m->conf.tls_name[0] ? m->conf.tls_name : NULL) != 0) {
		snprintf(why, len, "TLS setup failed");
		return CORE_ERROR;
	}
	mbedtls_ssl_set_bio(&m->ssl, m, bio_send, bio_recv, NULL);
	return CORE_OK;
}

static void mail_auth(struct mail *m)
{
	unsigned char raw[600], b64[900];
	size_t rawlen, olen;

	if (m->conf.user[0] == '\0') {
		m->state = MAIL_FROM;
		mail_sendf(m, "MAIL FROM:<%s>\r\n", m->conf.from);
		return;
	}
	if (m->conf.tls == KEEL_SMTP_STARTTLS && !m->tls) {
		mail_fail(m, "refusing to send the password before TLS");
		return;
	}
	if (m->has_plain) {
		rawlen = (size_t)snprintf((char *)raw, sizeof(raw), "%c%s%c%s", 0, m->conf.user, 0,
					  m->conf.password);
		mbedtls_base64_encode(b64, sizeof(b64), &olen, raw, rawlen);
		m->state = MAIL_AUTH_PLAIN;
		mail_sendf(m, "AUTH PLAIN %s\r\n", b64);
		memset(raw, 0, sizeof(raw));
		memset(b64, 0, sizeof(b64));
	} else if (m->has_login) {
		m->state = MAIL_AUTH_LOGIN_USER;
		mail_sendf(m, "AUTH LOGIN\r\n");
	} else
		mail_fail(m, "the server offers neither AUTH PLAIN nor AUTH LOGIN");
}

static void mail_send_b64(struct mail *m, const char *s)
{
	unsigned char b64[600];
	size_t olen;

	mbedtls_base64_encode(b64, sizeof(b64), &olen, (const unsigned char *)s, strlen(s));
	mail_sendf(m, "%s\r\n", b64);
	memset(b64, 0, sizeof(b64));
}

/* One reply arrived in state m->state: check it and take the next step. */
static void mail_on_reply(struct mail *m, int code, const char *text)
{
	char why[300];

#define EXPECT(c) do {								\
	if (code != (c)) {							\
		snprintf(why, sizeof(why), "%s: the server said \"%.200s\"",	\
			 mail_state_str(m->state), text);			\
		mail_fail(m, why);						\
		return;								\
	}									\
} while (0)

	switch (m->state) {
	case MAIL_GREETING:
		EXPECT(220);
		m->state = MAIL_EHLO;
		mail_sendf(m, "EHLO %s\r\n", m->conf.helo);
		return;
	case MAIL_EHLO:
		EXPECT(250);
		if (m->conf.tls == KEEL_SMTP_STARTTLS && !m->tls) {
			if (!m->has_starttls) {
				mail_fail(m, "the server does not offer STARTTLS");
				return;
			}
			m->state = MAIL_STARTTLS;
			mail_sendf(m, "STARTTLS\r\n");
			return;
		}
		mail_auth(m);
		return;
	case MAIL_STARTTLS:
		EXPECT(220);
		if (mail_tls_setup(m, why, sizeof(why)) != CORE_OK) {
			mail_fail(m, why);
			return;
		}
		m->state = MAIL_HANDSHAKE;
		mail_step(m);
		return;
	case MAIL_AUTH_PLAIN:
	case MAIL_AUTH_LOGIN_DONE:
		if (code == 535 || code == 534) {
			snprintf(why, sizeof(why), "authentication refused: \"%.200s\"", text);
			mail_fail(m, why);
			return;
		}
		EXPECT(235);
		m->state = MAIL_FROM;
		mail_sendf(m, "MAIL FROM:<%s>\r\n", m->conf.from);
		return;
	case MAIL_AUTH_LOGIN_USER:
		EXPECT(334);
		m->state = MAIL_AUTH_LOGIN_PASS;
		mail_send_b64(m, m->conf.user);
		return;
	case MAIL_AUTH_LOGIN_PASS:
		EXPECT(334);
		m->state = MAIL_AUTH_LOGIN_DONE;
		mail_send_b64(m, m->conf.password);
		return;
	case MAIL_FROM:
		EXPECT(250);
		m->state = MAIL_RCPT;
		m->rcpt = 0;
		mail_sendf(m, "RCPT TO:<%s>\r\n", m->to[m->rcpt++]);
		return;
	case MAIL_RCPT:
		if (code != 251)
			EXPECT(250);
		if (m->rcpt < m->nto) {
			mail_sendf(m, "RCPT TO:<%s>\r\n", m->to[m->rcpt++]);
			return;
		}
		m->state = MAIL_DATA;
		mail_sendf(m, "DATA\r\n");
		return;
	case MAIL_DATA:
		EXPECT(354);
		m->state = MAIL_SENT;
		if (core_buf_append(&m->out, m->message, strlen(m->message)) != CORE_OK ||
		    mail_flush(m) != CORE_OK)
			mail_fail(m, "cannot send the message");
		return;
	case MAIL_SENT:
		EXPECT(250);
		core_log_info("alert", "e-mail via %s sent to %zu recipient%s (%s)",
			      m->conf.server.text, m->nto, m->nto == 1 ? "" : "s", m->subject);
		m->state = MAIL_QUIT;
		mail_sendf(m, "QUIT\r\n");
		return;
	case MAIL_QUIT:
		mail_finish(m);		/* sent: whatever QUIT gets back */
		return;
	default:
		return;
	}
#undef EXPECT
}

static void mail_step(struct mail *m)
{
	char text[300];
	int code, r;

	if (m->state == MAIL_HANDSHAKE) {
		r = mbedtls_ssl_handshake(&m->ssl);
		if (r == MBEDTLS_ERR_SSL_WANT_READ) {
			core_io_set(&m->io, CORE_IO_READ);
			return;
		}
		if (r == MBEDTLS_ERR_SSL_WANT_WRITE) {
			core_io_set(&m->io, CORE_IO_READ | CORE_IO_WRITE);
			return;
		}
		if (r != 0) {
			char err[120], why[200];

			mbedtls_strerror(r, err, sizeof(err));
			snprintf(why, sizeof(why), "TLS handshake: %s", err);
			mail_fail(m, why);
			return;
		}
		m->tls = true;
		m->has_starttls = m->has_plain = m->has_login = false;
		m->state = MAIL_EHLO;
		mail_sendf(m, "EHLO %s\r\n", m->conf.helo);
		return;
	}
	for (;;) {
		enum mail_state before = m->state;

		code = mail_reply(m, text, sizeof(text));
		if (code == 0)
			return;
		if (code < 0) {
			mail_fail(m, "malformed reply from the server");
			return;
		}
		mail_on_reply(m, code, text);
		/* Done, failed or waiting on TLS: stop reading replies here. */
		if (before == MAIL_QUIT || m->state == MAIL_IDLE || m->state == MAIL_HANDSHAKE)
			return;
	}
}

static void mail_on_io(struct core_io *io, unsigned revents)
{
	struct mail *m = io->data;

	if (m->state == MAIL_CONNECT) {
		int err = 0;
		socklen_t el = sizeof(err);
		char why[160];

		getsockopt(m->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err != 0) {
			snprintf(why, sizeof(why), "connect: %s", strerror(err));
			mail_fail(m, why);
			return;
		}
		m->state = MAIL_GREETING;
		core_io_set(&m->io, CORE_IO_READ);
		return;
	}
	if (m->state == MAIL_HANDSHAKE) {
		mail_step(m);
		return;
	}
	if ((revents & CORE_IO_WRITE) && mail_flush(m) != CORE_OK) {
		mail_fail(m, "the connection broke");
		return;
	}
	if (revents & CORE_IO_READ) {
		int r = mail_read(m);

		if (r == CORE_ERROR) {
			if (m->state == MAIL_QUIT)
				mail_finish(m);
			else
				mail_fail(m, "the server closed the connection");
			return;
		}
		mail_step(m);
	}
}

static void mail_on_timer(struct core_timer *t)
{
	struct mail *m = t->data;
	char why[120];

	if (m->finished) {
		mail_free(m);		/* its own timer: the loop is done with it */
		return;
	}
	if (m->state == MAIL_IDLE) {
		mail_attempt(m);
		return;
	}
	snprintf(why, sizeof(why), "timed out after %d s in %s", MAIL_TIMEOUT_MS / 1000,
		 mail_state_str(m->state));
	mail_fail(m, why);
}

static void mail_attempt(struct mail *m)
{
	char why[160];

	m->state = MAIL_CONNECT;
	m->tls = false;
	core_buf_init(&m->in, MAIL_REPLY_MAX);
	core_buf_init(&m->out, 1 << 20);
	m->fd = socket(m->conf.server.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->fd == -1 ||
	    (connect(m->fd, (struct sockaddr *)&m->conf.server.sa, m->conf.server.salen) == -1 &&
	     errno != EINPROGRESS)) {
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		mail_fail(m, why);
		return;
	}
	core_io_init(ml.loop, &m->io, m->fd, mail_on_io, m);
	core_io_set(&m->io, CORE_IO_WRITE);
	core_timer_start(&m->timer, MAIL_TIMEOUT_MS);
}

/* Headers, then the body with lines starting with '.' doubled (RFC 5321). */
static char *mail_message(const struct keel_email_conf *c, char *const *to, size_t nto,
			  const char *node, const char *subject, const char *body)
{
	struct core_buf b;
	char date[64], head[1200];
	time_t now = time(NULL);
	struct tm tm;
	size_t i;
	const char *p;
	int n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	core_buf_init(&b, 64 * 1024);
	n = snprintf(head, sizeof(head),
		     "From: keel <%s>\r\nDate: %s\r\nSubject: [keel %s] %s\r\n"
		     "Message-ID: <%lld.%d@%s>\r\nMIME-Version: 1.0\r\n"
		     "Content-Type: text/plain; charset=utf-8\r\nTo: ",
		     c->from, date, node, subject, (long long)now, rand(), c->helo);
	core_buf_append(&b, head, (size_t)n);
	for (i = 0; i < nto; i++) {
		core_buf_append(&b, i ? ", " : "", i ? 2 : 0);
		core_buf_append(&b, to[i], strlen(to[i]));
	}
	core_buf_append(&b, "\r\n\r\n", 4);
	for (p = body; *p != '\0'; ) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (*p == '.')
			core_buf_append(&b, ".", 1);
		core_buf_append(&b, p, len && p[len - 1] == '\r' ? len - 1 : len);
		core_buf_append(&b, "\r\n", 2);
		p += len + (nl ? 1 : 0);
	}
	if (core_buf_append(&b, ".\r\n", 4) != CORE_OK) {	/* with its NUL */
		core_buf_free(&b);
		return NULL;
	}
	return b.data;
}

void monitor_mail_send(struct core_loop *loop, const struct keel_email_conf *conf,
		     const char *node, const char *subject, const char *body)
{
	char *const *to = conf->to.v;
	struct mail *m;
	size_t i;

	if (conf->to.n == 0)
		return;
	ml.loop = loop;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		goto oom;
	m->fd = -1;
	m->conf = *conf;
	m->conf.tls_name = dup_or_empty(conf->tls_name);
	m->conf.ca_file = dup_or_empty(conf->ca_file);
	m->conf.user = dup_or_empty(conf->user);
	m->conf.password = dup_or_empty(conf->password);
	m->conf.from = dup_or_empty(conf->from);
	m->conf.helo = dup_or_empty(conf->helo);
	if (m->conf.tls_name == NULL || m->conf.ca_file == NULL || m->conf.user == NULL ||
	    m->conf.password == NULL || m->conf.from == NULL || m->conf.helo == NULL)
		goto oom;
	snprintf(m->subject, sizeof(m->subject), "%s", subject);
	m->to = calloc(conf->to.n, sizeof(char *));
	if (m->to == NULL)
		goto oom;
	for (i = 0; i < conf->to.n; i++)
		if ((m->to[m->nto++] = strdup(to[i])) == NULL)
			goto oom;
	m->message = mail_message(&m->conf, m->to, m->nto, node, subject, body);
	if (m->message == NULL)
		goto oom;
	core_timer_init(loop, &m->timer, mail_on_timer, m);
	core_list_add(&ml.all, &m->link);
	mail_attempt(m);
	return;
oom:
	core_log_error("alert", "e-mail: out of memory");
	if (m != NULL) {
		for (i = 0; i < m->nto; i++)
			free(m->to[i]);
		free(m->to);
		mail_conf_free(&m->conf);
		free(m);
	}
}

void monitor_mail_stop(void)
{
	while (!core_list_empty(&ml.all))
		mail_free(core_list_first(&ml.all, struct mail, link));
	if (ml.rng_ready) {
		mbedtls_ctr_drbg_free(&ml.drbg);
		mbedtls_entropy_free(&ml.entropy);
		ml.rng_ready = false;
	}
}

unsigned long monitor_mail_failures(void)
{
	return ml.failures;
}
