/* Admin authentication; see auth.h. Password hashes are computed in a
 * small process of their own, so the master never blocks on one and stays
 * single-threaded (it forks workers). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/sha256.h>

#include "auth.h"
#include "core/clock.h"
#include "core/core.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/tls.h"

#define AUTH_SESSIONS	256
#define AUTH_LOCKS	1024
#define AUTH_QUEUE_MAX	16		/* hashes waiting; more get 503 */
#define AUTH_FREE_FAILS	5		/* failures before the delay starts */
#define AUTH_LOCK_MAX	(15 * 60 * 1000)

struct auth_lock {
	char		 key[72];	/* "u:name" or "i:address" */
	unsigned	 fails;
	uint64_t	 until;		/* monotonic ms */
	uint64_t	 last;
};

/* What travels to the hashing process, and back. */
struct hash_req {
	struct auth_job	*job;		/* only echoed back */
	unsigned char	 salt[16];
	uint32_t	 iterations;
	char		 password[256];
};

struct hash_resp {
	struct auth_job	*job;
	unsigned char	 hash[32];
};

static struct {
	struct core_loop *loop;
	struct auth_session sessions[AUTH_SESSIONS];
	struct auth_lock locks[AUTH_LOCKS];
	char		 setup[33];

	/* The hashing process: forked before anything else runs, so the
	 * master stays single-threaded and forks workers safely. */
	pid_t		 pid;
	int		 fd;		/* SOCK_SEQPACKET: one message per job */
	struct core_io	 io;
	struct auth_job	*pending;	/* sent, not answered */
	unsigned	 queued;
} au = { .fd = -1 };

/* ---- hashing ---------------------------------------------------------------------------- */

static void __attribute__((noreturn)) hasher_main(int fd)
{
	struct hash_req q;
	struct hash_resp a;
	int i;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_NAME, "keel-hash");	/* what ps and /proc/PID/comm show */
	for (i = 3; i < 1024; i++)
		if (i != fd)
			close(i);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_IGN);	/* the master decides when it ends */
	core_log_set_process("hash");
	for (;;) {
		ssize_t n = recv(fd, &q, sizeof(q), 0);

		if (n == 0)
			_exit(0);	/* the master closed its end */
		if (n != (ssize_t)sizeof(q))
			continue;
		q.password[sizeof(q.password) - 1] = '\0';
		a.job = q.job;
		if (mbedtls_pkcs5_pbkdf2_hmac_ext(MBEDTLS_MD_SHA256,
						  (const unsigned char *)q.password,
						  strlen(q.password), q.salt, sizeof(q.salt),
						  q.iterations, sizeof(a.hash), a.hash) != 0)
			memset(a.hash, 0, sizeof(a.hash));
		mbedtls_platform_zeroize(&q, sizeof(q));
		(void)!send(fd, &a, sizeof(a), 0);
	}
}

static void auth_on_done(struct core_io *io, unsigned revents)
{
	struct hash_resp a;
	struct auth_job **pp, *j;

	(void)io;
	(void)revents;
	while (recv(au.fd, &a, sizeof(a), MSG_DONTWAIT) == (ssize_t)sizeof(a)) {
		for (pp = &au.pending; *pp != NULL && *pp != a.job; pp = &(*pp)->next)
			;
		if ((j = *pp) == NULL)
			continue;	/* not ours: ignore */
		*pp = j->next;
		au.queued--;
		memcpy(j->hash, a.hash, sizeof(j->hash));
		mbedtls_platform_zeroize(&a, sizeof(a));
		j->done(j);
	}
}

int auth_start(struct core_loop *loop, char *err, size_t errlen)
{
	int sp[2];

	au.loop = loop;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == -1) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return CORE_ERROR;
	}
	au.pid = fork();
	if (au.pid == -1) {
		snprintf(err, errlen, "cannot start the password process: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return CORE_ERROR;
	}
	if (au.pid == 0)
		hasher_main(sp[1]);
	close(sp[1]);
	au.fd = sp[0];
	core_io_init(loop, &au.io, au.fd, auth_on_done, NULL);
	if (core_io_set(&au.io, CORE_IO_READ) != CORE_OK) {
		snprintf(err, errlen, "cannot watch the password process");
		auth_stop();
		return CORE_ERROR;
	}
	return CORE_OK;
}

void auth_stop(void)
{
	if (au.fd != -1) {
		core_io_stop(&au.io);
		close(au.fd);		/* the process sees EOF and exits */
		au.fd = -1;
	}
	if (au.pid > 0) {
		kill(au.pid, SIGKILL);
		(void)waitpid(au.pid, NULL, 0);
		au.pid = 0;
	}
	au.pending = NULL;
	au.queued = 0;
	memset(au.sessions, 0, sizeof(au.sessions));
}

int auth_hash(struct auth_job *job)
{
	struct hash_req q;
	ssize_t n;

	if (au.fd == -1 || au.queued >= AUTH_QUEUE_MAX)
		return CORE_ERROR;
	memset(&q, 0, sizeof(q));
	q.job = job;
	memcpy(q.salt, job->salt, sizeof(q.salt));
	q.iterations = job->iterations;
	snprintf(q.password, sizeof(q.password), "%s", job->password);
	n = send(au.fd, &q, sizeof(q), MSG_DONTWAIT | MSG_NOSIGNAL);
	mbedtls_platform_zeroize(&q, sizeof(q));
	mbedtls_platform_zeroize(job->password, sizeof(job->password));
	if (n != (ssize_t)sizeof(q))
		return CORE_ERROR;
	job->next = au.pending;
	au.pending = job;
	au.queued++;
	return CORE_OK;
}

int auth_random_hex(char *buf, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[64];
	size_t i;

	if (n > sizeof(raw) || core_tls_random(raw, n) != CORE_OK)
		return CORE_ERROR;
	for (i = 0; i < n; i++) {
		buf[2 * i] = hex[raw[i] >> 4];
		buf[2 * i + 1] = hex[raw[i] & 15];
	}
	buf[2 * n] = '\0';
	return CORE_OK;
}

bool auth_equal(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	unsigned char d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

/* ---- sessions ------------------------------------------------------------------------------ */

static bool session_live(const struct auth_session *s, uint64_t now)
{
	return s->token[0] != '\0' && now - s->last < AUTH_IDLE_MS &&
	       now - s->created < AUTH_MAX_AGE_MS;
}

/*
 * Sessions are also written to the shared key-value table (cache/kv.h), so
 * a gateway sharing the same Redis knows them: under "session:" and the
 * SHA-256 of the token (the token itself is never stored), the user, the
 * address, the CSRF token and the wall time it was made. Without Redis the
 * table is this process's memory, as before.
 */
static void session_key(const char *token, char *key, size_t len)
{
	unsigned char h[32];
	size_t i, n;

	mbedtls_sha256((const unsigned char *)token, strlen(token), h, 0);
	n = (size_t)snprintf(key, len, "session:");
	for (i = 0; i < sizeof(h) && n + 2 < len; i++, n += 2)
		snprintf(key + n, len - n, "%02x", h[i]);
}

static void session_share(const struct auth_session *s)
{
	uint64_t now = core_loop_now(au.loop);
	char key[80], val[256];

	session_key(s->token, key, sizeof(key));
	snprintf(val, sizeof(val), "%s\t%s\t%s\t%llu", s->user, s->ip, s->csrf,
		 (unsigned long long)(core_clock_wall_ms() - (now - s->created)));
	core_kv_set(key, val, AUTH_MAX_AGE_MS - (now - s->created));
}

static struct auth_session *session_slot(uint64_t now)
{
	struct auth_session *oldest = &au.sessions[0];
	size_t i;

	for (i = 0; i < AUTH_SESSIONS; i++) {
		if (!session_live(&au.sessions[i], now))
			return &au.sessions[i];
		if (au.sessions[i].last < oldest->last)
			oldest = &au.sessions[i];
	}
	return oldest;	/* full: the least recently used goes (here only) */
}

struct auth_session *auth_session_new(const char *user, const char *ip)
{
	uint64_t now = core_loop_now(au.loop);
	struct auth_session *s = session_slot(now);

	memset(s, 0, sizeof(*s));
	if (auth_random_hex(s->token, AUTH_TOKEN_HEX / 2) != CORE_OK ||
	    auth_random_hex(s->csrf, AUTH_TOKEN_HEX / 2) != CORE_OK) {
		memset(s, 0, sizeof(*s));
		return NULL;
	}
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->ip, sizeof(s->ip), "%s", ip);
	s->created = s->last = now;
	session_share(s);
	return s;
}

/* A session another gateway made: from the shared table into a slot. */
static struct auth_session *session_adopt(const char *token, uint64_t now)
{
	char key[80], user[64], ip[64], csrf[AUTH_TOKEN_HEX + 1];
	unsigned long long made;
	struct auth_session *s;
	uint64_t wall = core_clock_wall_ms(), age;
	const char *v;

	session_key(token, key, sizeof(key));
	if ((v = core_kv_get(key)) == NULL ||
	    sscanf(v, "%63[^\t]\t%63[^\t]\t%64[0-9a-f]\t%llu", user, ip, csrf, &made) != 4 ||
	    strlen(csrf) != AUTH_TOKEN_HEX)
		return NULL;
	age = wall > made ? wall - made : 0;
	if (age >= AUTH_MAX_AGE_MS || age > now)
		return NULL;
	s = session_slot(now);
	memset(s, 0, sizeof(*s));
	memcpy(s->token, token, AUTH_TOKEN_HEX);
	memcpy(s->csrf, csrf, AUTH_TOKEN_HEX);
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->ip, sizeof(s->ip), "%s", ip);
	s->created = now - age;
	s->last = now;
	return s;
}

static void session_forget(struct auth_session *s)
{
	char key[80];

	session_key(s->token, key, sizeof(key));
	core_kv_del(key);
	memset(s, 0, sizeof(*s));
}

struct auth_session *auth_session_find(const char *token)
{
	uint64_t now = core_loop_now(au.loop);
	size_t i;

	if (token == NULL || strlen(token) != AUTH_TOKEN_HEX ||
	    strspn(token, "0123456789abcdef") != AUTH_TOKEN_HEX)
		return NULL;
	for (i = 0; i < AUTH_SESSIONS; i++) {
		struct auth_session *s = &au.sessions[i];

		if (s->token[0] != '\0' && auth_equal(s->token, token, AUTH_TOKEN_HEX)) {
			char key[80];

			if (!session_live(s, now)) {
				session_forget(s);
				return NULL;
			}
			/* Ended on another gateway: gone from the shared table. */
			session_key(token, key, sizeof(key));
			if (core_kv_get(key) == NULL) {
				memset(s, 0, sizeof(*s));
				return NULL;
			}
			s->last = now;
			return s;
		}
	}
	return session_adopt(token, now);
}

void auth_session_end(struct auth_session *s)
{
	if (s != NULL)
		session_forget(s);
}

struct end_user {
	const char	*user;
	char		 keep[80];
};

static void end_shared(const char *key, const char *val, void *arg)
{
	const struct end_user *eu = arg;
	size_t n = strlen(eu->user);

	if (strcmp(key, eu->keep) != 0 && !strncmp(val, eu->user, n) && val[n] == '\t')
		core_kv_del(key);
}

void auth_sessions_end_user(const char *user, const struct auth_session *keep)
{
	struct end_user eu = { .user = user, .keep = "" };
	size_t i;

	if (keep != NULL)
		session_key(keep->token, eu.keep, sizeof(eu.keep));
	for (i = 0; i < AUTH_SESSIONS; i++)
		if (&au.sessions[i] != keep && au.sessions[i].token[0] != '\0' &&
		    strcmp(au.sessions[i].user, user) == 0)
			memset(&au.sessions[i], 0, sizeof(au.sessions[i]));
	core_kv_each("session:", end_shared, &eu);
}

/* ---- lockout ------------------------------------------------------------------------------- */

static struct auth_lock *lock_find(const char *kind, const char *what, bool make)
{
	char key[72];
	struct auth_lock *free_one = NULL, *oldest = &au.locks[0];
	size_t i;

	snprintf(key, sizeof(key), "%s:%s", kind, what);
	for (i = 0; i < AUTH_LOCKS; i++) {
		struct auth_lock *l = &au.locks[i];

		if (l->key[0] == '\0') {
			if (free_one == NULL)
				free_one = l;
			continue;
		}
		if (strcmp(l->key, key) == 0)
			return l;
		if (l->last < oldest->last)
			oldest = l;
	}
	if (!make)
		return NULL;
	if (free_one == NULL)
		free_one = oldest;
	memset(free_one, 0, sizeof(*free_one));
	snprintf(free_one->key, sizeof(free_one->key), "%s", key);
	return free_one;
}

uint64_t auth_locked(const char *user, const char *ip)
{
	uint64_t now = core_loop_now(au.loop), wait = 0;
	struct auth_lock *l;

	if ((l = lock_find("u", user, false)) != NULL && l->until > now)
		wait = l->until - now;
	if ((l = lock_find("i", ip, false)) != NULL && l->until > now && l->until - now > wait)
		wait = l->until - now;
	return wait;
}

static uint64_t lock_fail(struct auth_lock *l, uint64_t now)
{
	uint64_t delay;

	l->fails++;
	l->last = now;
	if (l->fails < AUTH_FREE_FAILS)
		return 0;
	/* 1 s after the fifth failure, doubling with each one after. */
	delay = l->fails - AUTH_FREE_FAILS >= 20 ? AUTH_LOCK_MAX
						 : 1000ULL << (l->fails - AUTH_FREE_FAILS);
	if (delay > AUTH_LOCK_MAX)
		delay = AUTH_LOCK_MAX;
	l->until = now + delay;
	return delay;
}

uint64_t auth_failed(const char *user, const char *ip)
{
	uint64_t now = core_loop_now(au.loop), a, b;

	a = lock_fail(lock_find("u", user, true), now);
	b = lock_fail(lock_find("i", ip, true), now);
	return a > b ? a : b;
}

void auth_succeeded(const char *user, const char *ip)
{
	struct auth_lock *l;

	if ((l = lock_find("u", user, false)) != NULL)
		memset(l, 0, sizeof(*l));
	if ((l = lock_find("i", ip, false)) != NULL)
		memset(l, 0, sizeof(*l));
}

/* ---- first boot ---------------------------------------------------------------------------- */

const char *auth_setup_token(void)
{
	return au.setup;
}

void auth_setup_begin(void)
{
	if (au.setup[0] == '\0' && auth_random_hex(au.setup, 16) != CORE_OK)
		au.setup[0] = '\0';
}

void auth_setup_done(void)
{
	mbedtls_platform_zeroize(au.setup, sizeof(au.setup));
}
