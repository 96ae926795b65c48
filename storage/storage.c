/*
 * Shared storage, watched without ever hanging.
 *
 * Every tool that touches an NFS mount from inside the kernel's NFS path
 * (df, a stat of the mount point) can sit in D state for as long as the
 * server is gone. keel never goes there: each server of each mount is
 * probed from keel's own event loop through libnfs, over keel's own
 * sockets, with keel's own deadline. A probe mounts the export once (the
 * portmapper, MOUNT), then every probe_interval asks GETATTR of the
 * export's root and FSSTAT (free space) on the same connection. A probe
 * that misses its deadline has its libnfs context destroyed, which closes
 * its sockets; the next one starts over at once.
 *
 *   healthy   answered within slow_after
 *   slow      answered, but slower
 *   hung      `misses` probes in a row timed out (a frozen server, a cut
 *             network: the kernel would sit in its 60 s RPC timeouts)
 *   failed    refused: no server there, no such export, access denied
 *
 * A mount is as good as its best server, in the configured order: the
 * first that is healthy or slow is the one in use; with none, the
 * primary's state is the mount's. A mount that is hung or failed raises
 * the condition "storage NAME" (monitor/ turns it into an alert); a
 * healthy or slow one clears it. Whether the mount point is mounted comes
 * from /proc/self/mountinfo, which never blocks. Mounting and remounting
 * are not done here yet.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <nfsc/libnfs.h>

#include "core/clock.h"
#include "core/conf.h"
#include "core/core.h"
#include "core/event.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/status.h"

#define STORAGE_MAX_SERVERS	8

enum storage_state {
	STORAGE_STARTING = 0,	/* no probe has ended yet */
	STORAGE_HEALTHY,
	STORAGE_SLOW,
	STORAGE_HUNG,
	STORAGE_FAILED,
};

static const char *storage_state_str(enum storage_state s)
{
	switch (s) {
	case STORAGE_STARTING:	return "starting";
	case STORAGE_HEALTHY:	return "healthy";
	case STORAGE_SLOW:	return "slow";
	case STORAGE_HUNG:	return "hung";
	case STORAGE_FAILED:	return "failed";
	}
	return "?";
}

static bool storage_state_up(enum storage_state s)
{
	return s == STORAGE_HEALTHY || s == STORAGE_SLOW;
}

/* What a probe is waiting for. */
enum storage_step {
	STEP_IDLE = 0,
	STEP_MOUNT,		/* the portmapper, then MOUNT */
	STEP_GETATTR,		/* of the export's root */
	STEP_FSSTAT,		/* free space */
};

static const char *storage_step_str(enum storage_step s)
{
	switch (s) {
	case STEP_IDLE:		return "nothing";
	case STEP_MOUNT:	return "MOUNT";
	case STEP_GETATTR:	return "GETATTR";
	case STEP_FSSTAT:	return "FSSTAT";
	}
	return "?";
}

struct storage_mount;

struct storage_server {
	struct storage_mount *m;
	char		 addr[48];
	struct nfs_context *nfs;	/* NULL between a failure and the next probe */
	struct nfs_context *doomed;	/* dropped inside nfs_service: freed after it */
	bool		 in_service;
	bool		 mounted;	/* nfs holds the export */
	struct core_io	 io;
	struct core_timer timer;	/* the next probe, or this one's deadline */
	enum storage_step step;
	uint64_t	 asked;		/* monotonic ms GETATTR was sent */
	unsigned	 misses;	/* timeouts in a row */
	enum storage_state state;
	uint64_t	 latency_ms;	/* the last answered probe's */
	uint64_t	 free_bytes, total_bytes;
	uint64_t	 probes, timeouts, failures;
	uint64_t	 since_wall;	/* when state last changed */
	char		 why[200];
};

struct storage_mount {
	char		 name[64];
	char		 export[256], path[256];
	uint64_t	 interval, timeout, slow_after;
	unsigned	 max_misses;
	struct storage_server servers[STORAGE_MAX_SERVERS];
	unsigned	 nservers;
	enum storage_state state;
	int		 current;	/* the server in use; -1: none */
	uint64_t	 since_wall;
	char		 why[240];
	char		 subject[80];	/* the condition's name */
};

static struct {
	struct core_loop	*loop;
	struct storage_mount	*mounts;
	unsigned		 n;
} sm;

static void server_probe(struct storage_server *s);

/* ---- the mount's state -------------------------------------------------------------------- */

static const char *nth(unsigned n)
{
	return n % 10 == 1 && n % 100 != 11 ? "st" : n % 10 == 2 && n % 100 != 12 ? "nd" :
	       n % 10 == 3 && n % 100 != 13 ? "rd" : "th";
}

/* The first server in order that answers is the one in use. */
static void mount_update(struct storage_mount *m)
{
	enum storage_state st;
	int cur = -1;
	unsigned i;

	for (i = 0; i < m->nservers && cur == -1; i++)
		if (storage_state_up(m->servers[i].state))
			cur = (int)i;
	st = cur != -1 ? m->servers[cur].state : m->servers[0].state;
	if (st == m->state && cur == m->current)
		return;
	if (cur != m->current && cur != -1 && m->current != -1)
		core_log_warn("storage", "storage %s: now on %s (%s)", m->name,
			      m->servers[cur].addr, cur == 0 ? "the primary" : "a backup");
	m->current = cur;
	if (st == m->state)
		return;
	m->state = st;
	m->since_wall = core_clock_wall_ms();
	if (st == STORAGE_HUNG || st == STORAGE_FAILED) {
		snprintf(m->why, sizeof(m->why), "%s:%.60s %s: %.120s", m->servers[0].addr, m->export,
			 storage_state_str(st), m->servers[0].why);
		core_event_raise("storage", m->subject, "%s", m->why);
	} else if (storage_state_up(st)) {
		snprintf(m->why, sizeof(m->why), "%s:%.60s %s", m->servers[cur].addr, m->export,
			 storage_state_str(st));
		core_event_clear("storage", m->subject, "UP: %s", m->why);
	}
}

static void server_set(struct storage_server *s, enum storage_state st, const char *why)
{
	struct storage_mount *m = s->m;

	snprintf(s->why, sizeof(s->why), "%s", why);
	if (st != s->state) {
		s->state = st;
		s->since_wall = core_clock_wall_ms();
		core_log_write(storage_state_up(st) ? CORE_LOG_INFO : CORE_LOG_WARN, "storage",
			       "storage %s: %s:%s %s%s%s", m->name, s->addr, m->export,
			       storage_state_str(st), why[0] ? ": " : "", why);
	}
	mount_update(m);
}

/* ---- libnfs on keel's loop ------------------------------------------------------------------ */

/*
 * libnfs changes sockets as it goes (the portmapper, mountd, nfsd) and may
 * close one and open the next under the same number, so the fd is looked
 * up again after every call into it and watched afresh. Only libnfs runs
 * between its close and this, so the number is never someone else's.
 */
static void server_watch(struct storage_server *s)
{
	int fd, ev;
	unsigned want = 0;

	core_io_stop(&s->io);
	if (s->nfs == NULL || (fd = nfs_get_fd(s->nfs)) < 0)
		return;
	ev = nfs_which_events(s->nfs);
	if (ev & POLLIN)
		want |= CORE_IO_READ;
	if (ev & POLLOUT)
		want |= CORE_IO_WRITE;
	s->io.fd = fd;
	(void)core_io_set(&s->io, want);
}

/*
 * libnfs may call back inside any call into it (nfs_service, and an async
 * call that finishes at once), and a callback may drop the context: it is
 * then destroyed only once that call has returned.
 */
static void server_enter(struct storage_server *s)
{
	s->in_service = true;
}

static void server_leave(struct storage_server *s)
{
	s->in_service = false;
	if (s->doomed != NULL) {
		nfs_destroy_context(s->doomed);
		s->doomed = NULL;
	}
	server_watch(s);
}

/* Closes the context; its callbacks, called then with an error, see that
 * it is not the server's any more and do nothing. Inside nfs_service (a
 * callback that failed) it is freed once nfs_service has returned. */
static void server_drop(struct storage_server *s)
{
	struct nfs_context *nfs = s->nfs;

	core_io_stop(&s->io);
	s->nfs = NULL;
	s->mounted = false;
	s->step = STEP_IDLE;
	if (nfs != NULL && s->in_service)
		s->doomed = nfs;
	else if (nfs != NULL)
		nfs_destroy_context(nfs);
}

static void server_next(struct storage_server *s, uint64_t after)
{
	s->step = STEP_IDLE;
	core_timer_start(&s->timer, after);
}

/* The server refused or broke the exchange: failed until it answers. */
static void server_failed(struct storage_server *s, const char *what, const char *err)
{
	char why[200];

	snprintf(why, sizeof(why), "%s: %s", what, err != NULL && err[0] ? err : "failed");
	s->failures++;
	s->misses = 0;
	server_drop(s);
	server_set(s, STORAGE_FAILED, why);
	server_next(s, s->m->interval);
}

static void fsstat_done(int err, struct nfs_context *nfs, void *data, void *arg)
{
	struct storage_server *s = arg;
	const struct nfs_statvfs_64 *v = data;
	uint64_t took;
	char why[120] = "";

	if (nfs != s->nfs || s->step != STEP_FSSTAT)
		return;
	if (err < 0) {
		server_failed(s, "FSSTAT", data);
		return;
	}
	s->free_bytes = v->f_bavail * v->f_frsize;
	s->total_bytes = v->f_blocks * v->f_frsize;
	took = core_loop_now(sm.loop) - s->asked;
	s->latency_ms = took;
	s->misses = 0;
	if (took > s->m->slow_after)
		snprintf(why, sizeof(why), "answered in %llu ms (slow_after %llu ms)",
			 (unsigned long long)took, (unsigned long long)s->m->slow_after);
	server_set(s, took > s->m->slow_after ? STORAGE_SLOW : STORAGE_HEALTHY, why);
	server_next(s, s->m->interval);
}

static void getattr_done(int err, struct nfs_context *nfs, void *data, void *arg)
{
	struct storage_server *s = arg;

	if (nfs != s->nfs || s->step != STEP_GETATTR)
		return;
	if (err < 0) {
		server_failed(s, "GETATTR", data);
		return;
	}
	s->step = STEP_FSSTAT;
	if (nfs_statvfs64_async(nfs, "/", fsstat_done, s) != 0)
		server_failed(s, "FSSTAT", nfs_get_error(nfs));
}

static void server_getattr(struct storage_server *s)
{
	s->step = STEP_GETATTR;
	s->asked = core_loop_now(sm.loop);
	if (nfs_stat64_async(s->nfs, "/", getattr_done, s) != 0)
		server_failed(s, "GETATTR", nfs_get_error(s->nfs));
}

static void mount_done(int err, struct nfs_context *nfs, void *data, void *arg)
{
	struct storage_server *s = arg;

	if (nfs != s->nfs || s->step != STEP_MOUNT)
		return;
	if (err < 0) {
		/* data is not always a string here (a nested export's reply),
		 * but libnfs then says what went wrong in the context. */
		const char *e = nfs_get_error(nfs);

		server_failed(s, "MOUNT", e != NULL && e[0] ? e : data);
		return;
	}
	s->mounted = true;
	server_getattr(s);
}

static void server_on_io(struct core_io *io, unsigned revents)
{
	struct storage_server *s = io->data;
	int ev = (revents & CORE_IO_READ ? POLLIN : 0) | (revents & CORE_IO_WRITE ? POLLOUT : 0);

	if (s->nfs == NULL)
		return;
	server_enter(s);
	if (nfs_service(s->nfs, ev) < 0 && s->nfs != NULL) {
		if (s->step == STEP_IDLE)
			server_drop(s);		/* a lost idle connection: the next probe says */
		else
			server_failed(s, storage_step_str(s->step), nfs_get_error(s->nfs));
	}
	server_leave(s);
}

/* A probe's deadline passed: the context goes, with its sockets. */
static void server_timed_out(struct storage_server *s)
{
	char why[200];

	s->timeouts++;
	s->misses++;
	snprintf(why, sizeof(why), "%s timed out after %llu ms (%u%s miss)",
		 storage_step_str(s->step), (unsigned long long)s->m->timeout, s->misses,
		 nth(s->misses));
	if (s->misses >= s->m->max_misses)
		server_set(s, STORAGE_HUNG, why);
	else
		snprintf(s->why, sizeof(s->why), "%s", why);
	if (s->step == STEP_MOUNT) {
		/* Still connecting or mounting: that attempt goes on (libnfs
		 * cannot cancel a connect without leaking it), and answers
		 * as soon as the server does. */
		core_timer_start(&s->timer, s->m->timeout);
		return;
	}
	server_drop(s);
	server_probe(s);		/* at once: a miss is news */
}

static void server_on_timer(struct core_timer *t)
{
	struct storage_server *s = t->data;

	if (s->step != STEP_IDLE)
		server_timed_out(s);
	else
		server_probe(s);
}

static void server_probe(struct storage_server *s)
{
	s->probes++;
	core_timer_start(&s->timer, s->m->timeout);
	if (s->nfs != NULL && s->mounted) {
		server_enter(s);
		server_getattr(s);
		server_leave(s);
		return;
	}
	server_drop(s);
	if ((s->nfs = nfs_init_context()) == NULL) {
		server_failed(s, "MOUNT", "out of memory");
		return;
	}
	s->step = STEP_MOUNT;
	server_enter(s);
	if (nfs_mount_async(s->nfs, s->addr, s->m->export, mount_done, s) != 0)
		server_failed(s, "MOUNT", nfs_get_error(s->nfs));
	server_leave(s);
}

/* ---- /proc/self/mountinfo ------------------------------------------------------------------- */

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *p)
{
	char *o = p;

	for (; *p != '\0'; p++, o++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*o = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else
			*o = *p;
	}
	*o = '\0';
}

/* Whether path is a mount point now, and of what type and source. */
static bool mountinfo_find(const char *path, char *fstype, size_t tlen, char *source,
			   size_t slen)
{
	char *line = NULL;
	size_t cap = 0;
	bool found = false;
	FILE *f;

	if (path[0] == '\0' || (f = fopen("/proc/self/mountinfo", "re")) == NULL)
		return false;
	while (getline(&line, &cap, f) != -1) {
		char *field[6], *save = NULL, *dash, *tok;
		unsigned n = 0;

		if ((dash = strstr(line, " - ")) == NULL)
			continue;
		*dash = '\0';
		for (tok = strtok_r(line, " ", &save); tok != NULL && n < 6;
		     tok = strtok_r(NULL, " ", &save))
			field[n++] = tok;
		if (n < 5)
			continue;
		unescape(field[4]);
		if (strcmp(field[4], path) != 0)
			continue;
		save = NULL;	/* the last one listed is the one on top */
		tok = strtok_r(dash + 3, " \n", &save);
		snprintf(fstype, tlen, "%s", tok != NULL ? tok : "");
		tok = tok != NULL ? strtok_r(NULL, " \n", &save) : NULL;
		snprintf(source, slen, "%s", tok != NULL ? tok : "");
		unescape(source);
		found = true;
	}
	free(line);
	fclose(f);
	return found;
}

/* ---- the module ----------------------------------------------------------------------------- */

static void storage_free_all(void)
{
	unsigned i, j;

	for (i = 0; i < sm.n; i++)
		for (j = 0; j < sm.mounts[i].nservers; j++) {
			core_timer_stop(&sm.mounts[i].servers[j].timer);
			server_drop(&sm.mounts[i].servers[j]);
		}
	/* An event of this batch may still point into them. */
	if (sm.mounts != NULL)
		core_loop_free_later(sm.loop, sm.mounts, sm.n, sizeof(*sm.mounts));
	sm.mounts = NULL;
	sm.n = 0;
}

static int storage_build(const struct keel_storage_conf *c, char *err, size_t errlen)
{
	const struct keel_mount_conf *mc = c->mounts.v;
	struct storage_mount *old = sm.mounts, *mounts = NULL;
	unsigned i, j, oldn = sm.n;

	if (c->mounts.n > 0 &&
	    (mounts = core_loop_calloc(c->mounts.n, sizeof(*mounts))) == NULL) {
		snprintf(err, errlen, "out of memory for %zu mounts", c->mounts.n);
		return CORE_ERROR;
	}
	/* Conditions of mounts that go away are cleared, not left raised. */
	for (i = 0; i < oldn; i++) {
		for (j = 0; j < c->mounts.n && strcmp(old[i].name, mc[j].name) != 0; j++)
			;
		if (j == c->mounts.n)
			core_event_clear("storage", old[i].subject,
					 "no longer watched (configuration changed)");
	}
	storage_free_all();
	sm.mounts = mounts;
	sm.n = (unsigned)c->mounts.n;
	for (i = 0; i < sm.n; i++) {
		struct storage_mount *m = &mounts[i];
		char *const *srv = mc[i].servers.v;

		snprintf(m->name, sizeof(m->name), "%s", mc[i].name);
		snprintf(m->export, sizeof(m->export), "%s", mc[i].export);
		snprintf(m->path, sizeof(m->path), "%s", mc[i].path);
		snprintf(m->subject, sizeof(m->subject), "storage %s", mc[i].name);
		m->interval = (uint64_t)mc[i].probe_interval;
		m->timeout = (uint64_t)mc[i].probe_timeout;
		m->slow_after = (uint64_t)mc[i].slow_after;
		m->max_misses = (unsigned)mc[i].misses;
		m->current = -1;
		m->since_wall = core_clock_wall_ms();
		m->nservers = (unsigned)(mc[i].servers.n < STORAGE_MAX_SERVERS ?
					 mc[i].servers.n : STORAGE_MAX_SERVERS);
		for (j = 0; j < m->nservers; j++) {
			struct storage_server *s = &m->servers[j];

			s->m = m;
			snprintf(s->addr, sizeof(s->addr), "%s", srv[j]);
			s->since_wall = m->since_wall;
			core_io_init(sm.loop, &s->io, -1, server_on_io, s);
			core_timer_init(sm.loop, &s->timer, server_on_timer, s);
			server_probe(s);
		}
		core_log_info("storage", "storage %s: watching %s on %u server%s", m->name,
			      m->export, m->nservers, m->nservers == 1 ? "" : "s");
	}
	return CORE_OK;
}

static int storage_start(struct core_loop *loop, const struct core_conf *conf, char *err,
			 size_t errlen)
{
	sm.loop = loop;
	return storage_build(&core_settings_of(conf)->storage, err, errlen);
}

static int storage_reload(const struct core_conf *conf, char *err, size_t errlen)
{
	return storage_build(&core_settings_of(conf)->storage, err, errlen);
}

static void storage_stop(void)
{
	storage_free_all();
}

static const struct core_module storage_module = {
	.name = "storage",
	.order = 45,
	.start = storage_start,
	.reload = storage_reload,
	.stop = storage_stop,
};
CORE_MODULE(storage_module);

/* ---- status --------------------------------------------------------------------------------- */

static int storage_status_json(struct core_buf *out)
{
	char when[40], fstype[32], source[300];
	unsigned i, j;

	if (sm.n == 0)
		return core_buf_append(out, "null", 4);
	core_buf_append(out, "{\"mounts\":[", 11);
	for (i = 0; i < sm.n; i++) {
		const struct storage_mount *m = &sm.mounts[i];
		bool mounted = mountinfo_find(m->path, fstype, sizeof(fstype), source, sizeof(source));

		core_buf_append(out, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
		core_json_str(out, m->name);
		core_buf_append(out, ",\"type\":\"nfs\",\"export\":", 23);
		core_json_str(out, m->export);
		core_buf_append(out, ",\"path\":", 8);
		core_json_str(out, m->path);
		core_buf_printf(out, ",\"mounted\":%s", mounted ? "true" : "false");
		if (mounted) {
			core_buf_append(out, ",\"fstype\":", 10);
			core_json_str(out, fstype);
			core_buf_append(out, ",\"source\":", 10);
			core_json_str(out, source);
		}
		core_buf_printf(out, ",\"state\":\"%s\",\"since\":\"%s\",\"server\":",
				storage_state_str(m->state),
				core_clock_format_utc(m->since_wall, when, sizeof(when)));
		if (m->current != -1) {
			const struct storage_server *s = &m->servers[m->current];

			core_json_str(out, s->addr);
			core_buf_printf(out, ",\"latency_ms\":%llu,\"free_bytes\":%llu,"
					"\"total_bytes\":%llu", (unsigned long long)s->latency_ms,
					(unsigned long long)s->free_bytes,
					(unsigned long long)s->total_bytes);
		} else
			core_buf_append(out, "null", 4);
		core_buf_append(out, ",\"reason\":", 10);
		core_json_str(out, m->why);
		core_buf_append(out, ",\"servers\":[", 12);
		for (j = 0; j < m->nservers; j++) {
			const struct storage_server *s = &m->servers[j];

			core_buf_append(out, j ? ",{\"address\":" : "{\"address\":", j ? 12 : 11);
			core_json_str(out, s->addr);
			core_buf_printf(out, ",\"state\":\"%s\",\"since\":\"%s\",\"latency_ms\":%llu,"
					"\"misses\":%u,\"probes\":%llu,\"timeouts\":%llu,"
					"\"failures\":%llu,\"reason\":", storage_state_str(s->state),
					core_clock_format_utc(s->since_wall, when, sizeof(when)),
					(unsigned long long)s->latency_ms, s->misses,
					(unsigned long long)s->probes, (unsigned long long)s->timeouts,
					(unsigned long long)s->failures);
			core_json_str(out, s->why);
			core_buf_append(out, "}", 1);
		}
		core_buf_append(out, "]}", 2);
	}
	return core_buf_append(out, "]}", 2);
}

static int storage_status_metrics(struct core_buf *out)
{
	unsigned i, j;

	if (sm.n == 0)
		return CORE_OK;
	core_buf_printf(out, "# HELP keel_storage_up Whether a server of the mount answers probes.\n"
			"# TYPE keel_storage_up gauge\n");
	for (i = 0; i < sm.n; i++)
		core_buf_printf(out, "keel_storage_up{mount=\"%s\"} %d\n", sm.mounts[i].name,
				storage_state_up(sm.mounts[i].state));
	core_buf_printf(out, "# HELP keel_storage_free_bytes Free space on the server in use.\n"
			"# TYPE keel_storage_free_bytes gauge\n");
	for (i = 0; i < sm.n; i++)
		if (sm.mounts[i].current != -1)
			core_buf_printf(out, "keel_storage_free_bytes{mount=\"%s\"} %llu\n",
					sm.mounts[i].name, (unsigned long long)
					sm.mounts[i].servers[sm.mounts[i].current].free_bytes);
	core_buf_printf(out, "# HELP keel_storage_server_latency_ms The last answered probe's time.\n"
			"# TYPE keel_storage_server_latency_ms gauge\n");
	for (i = 0; i < sm.n; i++)
		for (j = 0; j < sm.mounts[i].nservers; j++)
			core_buf_printf(out, "keel_storage_server_latency_ms{mount=\"%s\",server=\"%s\"} "
					"%llu\n", sm.mounts[i].name, sm.mounts[i].servers[j].addr,
					(unsigned long long)sm.mounts[i].servers[j].latency_ms);
	core_buf_printf(out, "# HELP keel_storage_server_timeouts_total Probes that missed their "
			"deadline.\n# TYPE keel_storage_server_timeouts_total counter\n");
	for (i = 0; i < sm.n; i++)
		for (j = 0; j < sm.mounts[i].nservers; j++)
			core_buf_printf(out, "keel_storage_server_timeouts_total{mount=\"%s\","
					"server=\"%s\"} %llu\n", sm.mounts[i].name,
					sm.mounts[i].servers[j].addr,
					(unsigned long long)sm.mounts[i].servers[j].timeouts);
	return CORE_OK;
}

static const struct core_status_provider storage_status = {
	.name = "storage",
	.order = 45,
	.json = storage_status_json,
	.metrics = storage_status_metrics,
};
CORE_STATUS_PROVIDER(storage_status);
