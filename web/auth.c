/* Admin authentication; see auth.h. Password hashes are computed in a
 * small process of their own, so the master never blocks on one and stays
 * single-threaded (it forks workers). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/sha256.h>

#include "auth.h"
#include "core/child.h"
#include "core/clock.h"
#include "core/core.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/control.h"
#include "core/store.h"
#include "core/supervise.h"
#include "core/tls.h"

#define AUTH_SESSIONS	256
#define AUTH_LOCKS	1024
#define AUTH_KEY_LEN	32		/* the session records' HMAC key */
#define AUTH_QUEUE_MAX	16		/* hashes waiting; more get 503 */
#define AUTH_FREE_FAILS	5		/* failures before the delay starts */
#define AUTH_LOCK_MAX	(15 * 60 * 1000)

/* One name the lockout keeps count for: a user ("u:NAME"), an address
 * ("i:ADDR"), or a user at an address ("p:NAME ADDR": one attempt in
 * flight, and whether it ever logged in). */
struct auth_lock {
	char		 key[136];
	unsigned	 fails;
	uint64_t	 until;		/* monotonic ms */
	uint64_t	 last;
	bool		 busy;		/* p: an attempt is being checked */
	bool		 known;		/* p: this address logged in as this user */
};

/* What travels to the hashing process, and back. */
struct hash_req {
	struct web_auth_job	*job;		/* only echoed back */
	unsigned char	 salt[16];
	uint32_t	 iterations;
	char		 password[256];
};

struct hash_resp {
	struct web_auth_job	*job;
	unsigned char	 hash[32];
};

static struct {
	struct core_loop *loop;
	struct web_session sessions[AUTH_SESSIONS];
	struct auth_lock locks[AUTH_LOCKS];
	char		 setup[33];
	unsigned char	 key[AUTH_KEY_LEN];	/* signs shared session records */
	bool		 have_key;

	/* The hashing process: forked before anything else runs, so the
	 * master stays single-threaded and forks workers safely. One that
	 * dies is started again (with backoff, never given up on), and the
	 * jobs it had are sent to the next one. */
	pid_t		 pid;
	int		 fd;		/* SOCK_SEQPACKET: one message per job */
	struct core_io	 io;
	struct core_child child;
	struct core_part part;
	struct core_timer again;
	struct web_auth_job	*pending;	/* sent (or to send), not answered */
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

static int auth_send(struct web_auth_job *job)
{
	struct hash_req q;
	ssize_t n;

	memset(&q, 0, sizeof(q));
	q.job = job;
	memcpy(q.salt, job->salt, sizeof(q.salt));
	q.iterations = job->iterations;
	snprintf(q.password, sizeof(q.password), "%s", job->password);
	n = send(au.fd, &q, sizeof(q), MSG_DONTWAIT | MSG_NOSIGNAL);
	mbedtls_platform_zeroize(&q, sizeof(q));
	return n == (ssize_t)sizeof(q) ? CORE_OK : CORE_ERROR;
}

/* The hashing process is gone, or going: its end of the pair closes. */
static void auth_lost(void)
{
	if (au.fd == -1)
		return;
	core_io_stop(&au.io);
	close(au.fd);
	au.fd = -1;
	if (au.pid > 0)
		kill(au.pid, SIGKILL);	/* its exit comes to auth_on_exit */
}

static void auth_on_done(struct core_io *io, unsigned revents)
{
	struct hash_resp a;
	struct web_auth_job **pp, *j;
	ssize_t n;

	(void)io;
	(void)revents;
	while ((n = recv(au.fd, &a, sizeof(a), MSG_DONTWAIT)) == (ssize_t)sizeof(a)) {
		for (pp = &au.pending; *pp != NULL && *pp != a.job; pp = &(*pp)->next)
			;
		if ((j = *pp) == NULL)
			continue;	/* not ours: ignore */
		*pp = j->next;
		au.queued--;
		memcpy(j->hash, a.hash, sizeof(j->hash));
		mbedtls_platform_zeroize(&a, sizeof(a));
		mbedtls_platform_zeroize(j->password, sizeof(j->password));
		j->done(j);
	}
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
		auth_lost();
}

static int auth_spawn(char *err, size_t errlen);

/* The hasher went down (status, or why it could not start): it is started
 * again after the usual backoff, and never given up on. */
static void auth_down(int status, const char *why)
{
	struct core_part_policy pol;
	uint64_t now = core_loop_now(au.loop);

	core_sup_policy(core_control_conf(), &pol);
	pol.restarts = CORE_PART_RECENT + 1;
	(void)core_part_down(&au.part, status, why, now, &pol);
	core_timer_start(&au.again, au.part.next - now);
}

static void auth_on_again(struct core_timer *t)
{
	char err[160];

	(void)t;
	if (auth_spawn(err, sizeof(err)) != CORE_OK)
		auth_down(0, err);
}

static void auth_on_exit(struct core_child *c, int status)
{
	(void)c;
	au.pid = 0;		/* reaped: never signal that pid again */
	auth_lost();
	auth_down(status, NULL);
}

/* Forks the hashing process and sends it what waits. */
static int auth_spawn(char *err, size_t errlen)
{
	struct web_auth_job *j;
	int sp[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == -1) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return CORE_ERROR;
	}
	au.pid = fork();
	if (au.pid == -1) {
		snprintf(err, errlen, "cannot start the password process: %s", strerror(errno));
		au.pid = 0;
		close(sp[0]);
		close(sp[1]);
		return CORE_ERROR;
	}
	if (au.pid == 0)
		hasher_main(sp[1]);
	close(sp[1]);
	au.fd = sp[0];
	core_child_watch(&au.child, au.pid, auth_on_exit, NULL);
	core_part_started(&au.part, au.pid, core_loop_now(au.loop));
	core_io_init(au.loop, &au.io, au.fd, auth_on_done, NULL);
	if (core_io_set(&au.io, CORE_IO_READ) != CORE_OK) {
		snprintf(err, errlen, "cannot watch the password process");
		auth_lost();
		return CORE_ERROR;
	}
	for (j = au.pending; j != NULL; j = j->next)
		if (auth_send(j) != CORE_OK) {
			auth_lost();
			break;
		}
	return CORE_OK;
}

/*
 * The key that signs session records in the shared table. It lives in a
 * file only keel reads (0600); gateways that share sessions through one
 * Redis are given the same file (admin.session_key_file). A file another
 * user can read is made private, with a log line.
 */
static int auth_key_load(const char *path, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT) {
		if (getrandom(au.key, sizeof(au.key), 0) != (ssize_t)sizeof(au.key)) {
			snprintf(err, errlen, "session key: getrandom: %s", strerror(errno));
			return CORE_ERROR;
		}
		/* O_EXCL: two keels starting at once must not end with two keys. */
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd == -1 && errno == EEXIST)
			return auth_key_load(path, err, errlen);
		if (fd == -1 || write(fd, au.key, sizeof(au.key)) != (ssize_t)sizeof(au.key) ||
		    fsync(fd) == -1) {
			snprintf(err, errlen, "cannot write the session key %s: %s", path,
				 strerror(errno));
			if (fd != -1) {
				close(fd);
				unlink(path);
			}
			return CORE_ERROR;
		}
		close(fd);
		core_log_info("web", "made the session key %s (share it with the gateways that "
			      "share sessions)", path);
		au.have_key = true;
		return CORE_OK;
	}
	if (fd == -1) {
		snprintf(err, errlen, "session key %s: %s", path, strerror(errno));
		return CORE_ERROR;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
		if (fchmod(fd, st.st_mode & 0700) == 0)
			core_log_warn("web", "session key %s was open to other users (mode %03o); "
				      "made it 0%o", path, (unsigned)(st.st_mode & 0777),
				      (unsigned)(st.st_mode & 0700));
	}
	n = read(fd, au.key, sizeof(au.key));
	close(fd);
	if (n != (ssize_t)sizeof(au.key)) {
		snprintf(err, errlen, "session key %s: expected %zu bytes, got %zd", path,
			 sizeof(au.key), n);
		return CORE_ERROR;
	}
	au.have_key = true;
	return CORE_OK;
}

int web_auth_start(struct core_loop *loop, const char *state_dir, const char *key_file,
		   char *err, size_t errlen)
{
	char path[512];

	au.loop = loop;
	if (key_file != NULL && *key_file != '\0')
		snprintf(path, sizeof(path), "%s", key_file);
	else
		snprintf(path, sizeof(path), "%s/session.key", state_dir);
	if (auth_key_load(path, err, errlen) != CORE_OK)
		return CORE_ERROR;
	core_part_init(&au.part, "password hasher");
	core_timer_init(loop, &au.again, auth_on_again, NULL);
	if (auth_spawn(err, errlen) != CORE_OK) {
		web_auth_stop();
		return CORE_ERROR;
	}
	core_sup_add(&au.part);
	return CORE_OK;
}

void web_auth_stop(void)
{
	struct web_auth_job *j;

	core_sup_del(&au.part);
	core_timer_stop(&au.again);
	if (au.pid > 0) {
		core_child_forget(&au.child);
		auth_lost();
		(void)waitpid(au.pid, NULL, 0);
		au.pid = 0;
	}
	auth_lost();
	for (j = au.pending; j != NULL; j = j->next)
		mbedtls_platform_zeroize(j->password, sizeof(j->password));
	au.pending = NULL;
	au.queued = 0;
	memset(au.sessions, 0, sizeof(au.sessions));
	mbedtls_platform_zeroize(au.key, sizeof(au.key));
	au.have_key = false;
}

/* The password stays in job until its hash comes back: a hashing process
 * that dies has it sent again to the next one. */
int web_auth_hash(struct web_auth_job *job)
{
	if (au.queued >= AUTH_QUEUE_MAX || au.loop == NULL)
		return CORE_ERROR;
	/* No process right now, or it just died: the next one gets it. */
	if (au.fd != -1 && auth_send(job) != CORE_OK)
		auth_lost();
	job->next = au.pending;
	au.pending = job;
	au.queued++;
	return CORE_OK;
}

int web_auth_random_hex(char *buf, size_t n)
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

bool web_auth_equal(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	unsigned char d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

/* ---- sessions ------------------------------------------------------------------------------ */

static bool session_live(const struct web_session *s, uint64_t now)
{
	return s->token[0] != '\0' && now - s->last < WEB_AUTH_IDLE_MS &&
	       now - s->created < WEB_AUTH_MAX_AGE_MS;
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

/* The record's signature: HMAC-SHA256 under the session key of the
 * table key and the fields, so a record is good for its own token only. */
static int session_sign(const char *key, const char *fields, char *hex, size_t len)
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	mbedtls_md_context_t ctx;
	unsigned char mac[32];
	size_t i;
	int rc;

	if (!au.have_key || md == NULL || len < 2 * sizeof(mac) + 1)
		return CORE_ERROR;
	mbedtls_md_init(&ctx);
	rc = mbedtls_md_setup(&ctx, md, 1) != 0 ||
	     mbedtls_md_hmac_starts(&ctx, au.key, sizeof(au.key)) != 0 ||
	     mbedtls_md_hmac_update(&ctx, (const unsigned char *)key, strlen(key) + 1) != 0 ||
	     mbedtls_md_hmac_update(&ctx, (const unsigned char *)fields, strlen(fields)) != 0 ||
	     mbedtls_md_hmac_finish(&ctx, mac) != 0;
	mbedtls_md_free(&ctx);
	if (rc)
		return CORE_ERROR;
	for (i = 0; i < sizeof(mac); i++)
		snprintf(hex + 2 * i, len - 2 * i, "%02x", mac[i]);
	return CORE_OK;
}

/* "user TAB ip TAB csrf TAB made TAB signature". */
static void session_share(const struct web_session *s)
{
	uint64_t now = core_loop_now(au.loop);
	char key[80], val[384], mac[65];
	int n;

	session_key(s->token, key, sizeof(key));
	n = snprintf(val, sizeof(val), "%s\t%s\t%s\t%llu", s->user, s->ip, s->csrf,
		     (unsigned long long)(core_clock_wall_ms() - (now - s->created)));
	if (n < 0 || (size_t)n + 66 >= sizeof(val) || session_sign(key, val, mac, sizeof(mac)) != CORE_OK)
		return;		/* not shared: this gateway alone knows it */
	snprintf(val + n, sizeof(val) - (size_t)n, "\t%s", mac);
	core_kv_set(key, val, WEB_AUTH_MAX_AGE_MS - (now - s->created));
}

static struct web_session *session_slot(uint64_t now)
{
	struct web_session *oldest = &au.sessions[0];
	size_t i;

	for (i = 0; i < AUTH_SESSIONS; i++) {
		if (!session_live(&au.sessions[i], now))
			return &au.sessions[i];
		if (au.sessions[i].last < oldest->last)
			oldest = &au.sessions[i];
	}
	return oldest;	/* full: the least recently used goes (here only) */
}

struct web_session *web_auth_session_new(const char *user, const char *ip)
{
	uint64_t now = core_loop_now(au.loop);
	struct web_session *s = session_slot(now);

	memset(s, 0, sizeof(*s));
	if (web_auth_random_hex(s->token, WEB_AUTH_TOKEN_HEX / 2) != CORE_OK ||
	    web_auth_random_hex(s->csrf, WEB_AUTH_TOKEN_HEX / 2) != CORE_OK) {
		memset(s, 0, sizeof(*s));
		return NULL;
	}
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->ip, sizeof(s->ip), "%s", ip);
	s->created = s->last = now;
	session_share(s);
	return s;
}

/* A session another gateway made: from the shared table into a slot, if
 * its signature is ours and its user is one of ours. */
static struct web_session *session_adopt(const char *token, uint64_t now)
{
	char key[80], user[64], ip[64], csrf[WEB_AUTH_TOKEN_HEX + 1], fields[384], mac[65];
	struct core_store_user u;
	struct core_store *st = core_control_store();
	unsigned long long made;
	struct web_session *s;
	uint64_t wall = core_clock_wall_ms(), age;
	const char *v, *sig;

	session_key(token, key, sizeof(key));
	if ((v = core_kv_get(key)) == NULL)
		return NULL;
	sig = strrchr(v, '\t');
	if (sig == NULL || (size_t)(sig - v) >= sizeof(fields) || strlen(sig + 1) != 64) {
		core_log_warn("web", "shared session record %.20s... is not signed; refused", key + 8);
		return NULL;
	}
	snprintf(fields, sizeof(fields), "%.*s", (int)(sig - v), v);
	if (session_sign(key, fields, mac, sizeof(mac)) != CORE_OK ||
	    !web_auth_equal(mac, sig + 1, 64)) {
		core_log_warn("web", "shared session record %.20s... has a wrong signature "
			      "(forged, or signed with another session key); refused", key + 8);
		return NULL;
	}
	if (sscanf(fields, "%63[^\t]\t%63[^\t]\t%64[0-9a-f]\t%llu", user, ip, csrf, &made) != 4 ||
	    strlen(csrf) != WEB_AUTH_TOKEN_HEX)
		return NULL;
	if (st == NULL || core_store_user_get(st, user, &u) != CORE_OK) {
		core_log_warn("web", "shared session of %s refused: no such user here", user);
		return NULL;
	}
	age = wall > made ? wall - made : 0;
	if (age >= WEB_AUTH_MAX_AGE_MS || age > now)
		return NULL;
	s = session_slot(now);
	memset(s, 0, sizeof(*s));
	memcpy(s->token, token, WEB_AUTH_TOKEN_HEX);
	memcpy(s->csrf, csrf, WEB_AUTH_TOKEN_HEX);
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->ip, sizeof(s->ip), "%s", ip);
	s->created = now - age;
	s->last = now;
	return s;
}

static void session_forget(struct web_session *s)
{
	char key[80];

	session_key(s->token, key, sizeof(key));
	core_kv_del(key);
	memset(s, 0, sizeof(*s));
}

struct web_session *web_auth_session_find(const char *token)
{
	uint64_t now = core_loop_now(au.loop);
	size_t i;

	if (token == NULL || strlen(token) != WEB_AUTH_TOKEN_HEX ||
	    strspn(token, "0123456789abcdef") != WEB_AUTH_TOKEN_HEX)
		return NULL;
	for (i = 0; i < AUTH_SESSIONS; i++) {
		struct web_session *s = &au.sessions[i];

		if (s->token[0] != '\0' && web_auth_equal(s->token, token, WEB_AUTH_TOKEN_HEX)) {
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

void web_auth_session_end(struct web_session *s)
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

void web_auth_sessions_end_user(const char *user, const struct web_session *keep)
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

static struct auth_lock *lock_find(const char *kind, const char *user, const char *ip, bool make)
{
	char key[136];
	struct auth_lock *free_one = NULL, *oldest = &au.locks[0];
	size_t i;

	snprintf(key, sizeof(key), "%s:%s%s%s", kind, user ? user : "", user && ip ? " " : "",
		 ip ? ip : "");
	for (i = 0; i < AUTH_LOCKS; i++) {
		struct auth_lock *l = &au.locks[i];

		if (l->key[0] == '\0') {
			if (free_one == NULL)
				free_one = l;
			continue;
		}
		if (strcmp(l->key, key) == 0)
			return l;
		if (l->last < oldest->last && !l->busy)
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

static uint64_t lock_wait(const struct auth_lock *l, uint64_t now)
{
	return l != NULL && l->until > now ? l->until - now : 0;
}

/* 1 s after the fifth failure, doubling with each one after. */
static uint64_t lock_delay(unsigned fails)
{
	uint64_t delay;

	if (fails < AUTH_FREE_FAILS)
		return 0;
	delay = fails - AUTH_FREE_FAILS >= 20 ? AUTH_LOCK_MAX : 1000ULL << (fails - AUTH_FREE_FAILS);
	return delay > AUTH_LOCK_MAX ? AUTH_LOCK_MAX : delay;
}

static uint64_t lock_fail(struct auth_lock *l, uint64_t now)
{
	uint64_t delay;

	/* Quiet for as long as the longest lock: the count starts again. */
	if (l->fails > 0 && now - l->last > AUTH_LOCK_MAX && l->until <= now)
		l->fails = 0;
	l->fails++;
	l->last = now;
	if ((delay = lock_delay(l->fails)) > 0)
		l->until = now + delay;
	return delay;
}

/* A failure confirmed by its hash: its lock runs from now, not from when
 * the attempt began. */
static void lock_restamp(struct auth_lock *l, uint64_t now)
{
	uint64_t delay;

	if (l != NULL && (delay = lock_delay(l->fails)) > 0)
		l->until = now + delay;
}

/* The wait in force for user from ip: the address's lock, and the user's
 * unless this address logged in as the user before. */
static uint64_t lock_now(const char *user, const char *ip, uint64_t now)
{
	struct auth_lock *p = lock_find("p", user, ip, false);
	uint64_t wait = lock_wait(lock_find("i", NULL, ip, false), now), w;

	if (p == NULL || !p->known) {
		w = lock_wait(lock_find("u", user, NULL, false), now);
		if (w > wait)
			wait = w;
	}
	return wait;
}

int web_auth_login_begin(const char *user, const char *ip, uint64_t *wait_ms)
{
	uint64_t now = core_loop_now(au.loop);
	struct auth_lock *p;

	if ((*wait_ms = lock_now(user, ip, now)) > 0)
		return CORE_ERROR;
	p = lock_find("p", user, ip, true);
	if (p->busy) {
		*wait_ms = 1000;
		return CORE_AGAIN;
	}
	p->busy = true;
	p->last = now;
	/* Counted now, before the hash: parallel guesses are not all checked. */
	if (!p->known)
		(void)lock_fail(lock_find("u", user, NULL, true), now);
	(void)lock_fail(lock_find("i", NULL, ip, true), now);
	return CORE_OK;
}

uint64_t web_auth_login_end(const char *user, const char *ip, bool ok)
{
	uint64_t now = core_loop_now(au.loop);
	struct auth_lock *p = lock_find("p", user, ip, true), *l;

	p->busy = false;
	p->last = now;
	if (!ok) {
		if (!p->known)
			lock_restamp(lock_find("u", user, NULL, false), now);
		lock_restamp(lock_find("i", NULL, ip, false), now);
		return lock_now(user, ip, now);
	}
	p->known = true;
	if ((l = lock_find("i", NULL, ip, false)) != NULL)
		memset(l, 0, sizeof(*l));
	/* The failure counted for this attempt is taken back; the user's other
	 * failures (from elsewhere) stay counted. */
	if ((l = lock_find("u", user, NULL, false)) != NULL && l->fails > 0 && l->until <= now)
		l->fails--;
	return 0;
}

/* ---- first boot ---------------------------------------------------------------------------- */

const char *web_auth_setup_token(void)
{
	return au.setup;
}

void web_auth_setup_begin(void)
{
	if (au.setup[0] == '\0' && web_auth_random_hex(au.setup, 16) != CORE_OK)
		au.setup[0] = '\0';
}

void web_auth_setup_done(void)
{
	mbedtls_platform_zeroize(au.setup, sizeof(au.setup));
}
