/* Admin authentication; see auth.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>

#include "auth.h"
#include "core/core.h"
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

static struct {
	struct core_loop *loop;
	struct auth_session sessions[AUTH_SESSIONS];
	struct auth_lock locks[AUTH_LOCKS];
	char		 setup[33];

	/* the hashing thread */
	pthread_t	 thread;
	bool		 running, quit;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct auth_job	*todo, *done;
	unsigned	 queued;
	int		 efd;
	struct core_io	 io;
} au = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .efd = -1 };

/* ---- hashing ---------------------------------------------------------------------------- */

static void *auth_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&au.mu);
	for (;;) {
		struct auth_job *j;
		uint64_t one = 1;

		while (au.todo == NULL && !au.quit)
			pthread_cond_wait(&au.cv, &au.mu);
		if (au.quit)
			break;
		j = au.todo;
		au.todo = j->next;
		pthread_mutex_unlock(&au.mu);

		if (mbedtls_pkcs5_pbkdf2_hmac_ext(MBEDTLS_MD_SHA256,
						  (const unsigned char *)j->password,
						  strlen(j->password), j->salt, sizeof(j->salt),
						  j->iterations, sizeof(j->hash), j->hash) != 0)
			memset(j->hash, 0, sizeof(j->hash));
		mbedtls_platform_zeroize(j->password, sizeof(j->password));

		pthread_mutex_lock(&au.mu);
		j->next = au.done;
		au.done = j;
		/* A full counter means the loop is awake anyway. */
		(void)!write(au.efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&au.mu);
	return NULL;
}

static void auth_on_done(struct core_io *io, unsigned revents)
{
	struct auth_job *j, *next;
	uint64_t n;

	(void)io;
	(void)revents;
	(void)!read(au.efd, &n, sizeof(n));
	pthread_mutex_lock(&au.mu);
	j = au.done;
	au.done = NULL;
	pthread_mutex_unlock(&au.mu);
	for (; j != NULL; j = next) {
		next = j->next;
		au.queued--;
		j->done(j);
	}
}

int auth_start(struct core_loop *loop, char *err, size_t errlen)
{
	au.loop = loop;
	au.quit = false;
	au.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (au.efd == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return CORE_ERROR;
	}
	core_io_init(loop, &au.io, au.efd, auth_on_done, NULL);
	if (core_io_set(&au.io, CORE_IO_READ) != CORE_OK ||
	    pthread_create(&au.thread, NULL, auth_thread, NULL) != 0) {
		snprintf(err, errlen, "cannot start the password thread");
		close(au.efd);
		au.efd = -1;
		return CORE_ERROR;
	}
	au.running = true;
	return CORE_OK;
}

void auth_stop(void)
{
	if (au.running) {
		pthread_mutex_lock(&au.mu);
		au.quit = true;
		pthread_cond_signal(&au.cv);
		pthread_mutex_unlock(&au.mu);
		pthread_join(au.thread, NULL);
		au.running = false;
	}
	if (au.efd != -1) {
		core_io_stop(&au.io);
		close(au.efd);
		au.efd = -1;
	}
	au.todo = au.done = NULL;
	au.queued = 0;
	memset(au.sessions, 0, sizeof(au.sessions));
}

int auth_hash(struct auth_job *job)
{
	if (!au.running || au.queued >= AUTH_QUEUE_MAX)
		return CORE_ERROR;
	au.queued++;
	pthread_mutex_lock(&au.mu);
	job->next = au.todo;
	au.todo = job;
	pthread_cond_signal(&au.cv);
	pthread_mutex_unlock(&au.mu);
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

struct auth_session *auth_session_new(const char *user, const char *ip)
{
	uint64_t now = core_loop_now(au.loop);
	struct auth_session *s = NULL, *oldest = &au.sessions[0];
	size_t i;

	for (i = 0; i < AUTH_SESSIONS; i++) {
		if (!session_live(&au.sessions[i], now)) {
			s = &au.sessions[i];
			break;
		}
		if (au.sessions[i].last < oldest->last)
			oldest = &au.sessions[i];
	}
	if (s == NULL)
		s = oldest;	/* full: the least recently used goes */
	memset(s, 0, sizeof(*s));
	if (auth_random_hex(s->token, AUTH_TOKEN_HEX / 2) != CORE_OK ||
	    auth_random_hex(s->csrf, AUTH_TOKEN_HEX / 2) != CORE_OK) {
		memset(s, 0, sizeof(*s));
		return NULL;
	}
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->ip, sizeof(s->ip), "%s", ip);
	s->created = s->last = now;
	return s;
}

struct auth_session *auth_session_find(const char *token)
{
	uint64_t now = core_loop_now(au.loop);
	size_t i;

	if (token == NULL || strlen(token) != AUTH_TOKEN_HEX)
		return NULL;
	for (i = 0; i < AUTH_SESSIONS; i++) {
		struct auth_session *s = &au.sessions[i];

		if (s->token[0] != '\0' && auth_equal(s->token, token, AUTH_TOKEN_HEX)) {
			if (!session_live(s, now)) {
				memset(s, 0, sizeof(*s));
				return NULL;
			}
			s->last = now;
			return s;
		}
	}
	return NULL;
}

void auth_session_end(struct auth_session *s)
{
	if (s != NULL)
		memset(s, 0, sizeof(*s));
}

void auth_sessions_end_user(const char *user, const struct auth_session *keep)
{
	size_t i;

	for (i = 0; i < AUTH_SESSIONS; i++)
		if (&au.sessions[i] != keep && au.sessions[i].token[0] != '\0' &&
		    strcmp(au.sessions[i].user, user) == 0)
			memset(&au.sessions[i], 0, sizeof(au.sessions[i]));
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
