/*
 * Mounts: keel mounts each share that has a path, watches the mount and
 * brings it back, and never enters the filesystem itself.
 *
 * Everything that may touch the kernel's NFS or FUSE path runs in a helper
 * process with a deadline: the mount attempt (mount(8)), the lazy unmount
 * (umount2 with MNT_DETACH) and the check (statvfs, then a small canary
 * file written, synced and read back). At the deadline keel kills the
 * helper's process group and goes on; a helper the kernel holds (D state)
 * stays watched, is counted and shown, and no second check is started
 * until it ends. Mount attempts of different mounts are different
 * processes, so a dead server delays nobody else.
 *
 * Whether the path is mounted, and from where, is read from
 * /proc/self/mountinfo, which never blocks. A mount is
 *
 *   mounting  an attempt is under way
 *   healthy   mounted, its server answers, the last check passed
 *   slow      the same, but the server answers slower than slow_after
 *   hung      its server stopped answering, or a check did not come back
 *   missing   it was mounted and is not any more (remounted at once)
 *   failed    the last attempt failed, a check failed, or the path is
 *             taken by a mount keel does not own
 *
 * Recovery: a missing mount is mounted again; a stale one (a check got
 * ESTALE, ENOTCONN or EIO) is unmounted lazily, then mounted; an NFS mount
 * whose server is down moves to the next server that answers, and back to
 * the primary (failback) once that has answered for FAILBACK_HOLD_MS.
 * Failed attempts back off, 1 s doubling to 8 s, with a quarter of jitter.
 *
 * keel only touches mounts it made (listed in STATE_DIR/storage.mounts,
 * so a restart knows them again) or was told to adopt. A mount dropped
 * from the configuration is unmounted; stopping keel leaves mounts alone.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"
#include "core/child.h"
#include "core/clock.h"
#include "core/event.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/settings-t.h"
#include "core/state.h"
#include "storage.h"

#define FAILBACK_HOLD_MS	10000	/* the primary answers that long: back to it */
#define FAILBACK_PAUSE_MS	60000	/* after a failed mount from the primary */
#define BACKOFF_MIN_MS		1000
#define BACKOFF_MAX_MS		8000
#define RECORDS_MAX		64

/* ---- what keel mounted: STATE_DIR/storage.mounts -------------------------------------------- */

static struct {
	char	path[256];
	char	options[640];
} records[RECORDS_MAX];
static unsigned nrecords;

/* Mounts do not outlive a boot: records of another boot are void. */
static void boot_id(char *out, size_t len)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

	out[0] = '\0';
	if (f != NULL && fgets(out, (int)len, f) != NULL)
		out[strcspn(out, "\n")] = '\0';
	if (f != NULL)
		fclose(f);
}

static void records_save(void)
{
	char file[300], err[200], boot[64], *buf;
	size_t len, cap = (size_t)nrecords * 900 + 80;
	unsigned i;

	if (sm.state_dir[0] == '\0' || (buf = malloc(cap)) == NULL)
		return;
	boot_id(boot, sizeof(boot));
	len = (size_t)snprintf(buf, cap, "boot\t%s\n", boot);
	for (i = 0; i < nrecords; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s\t%s\n", records[i].path,
					records[i].options);
	snprintf(file, sizeof(file), "%s/storage.mounts", sm.state_dir);
	if (core_state_write(file, buf, len, 0600, err, sizeof(err)) != CORE_OK)
		core_log_warn("storage", "cannot keep the list of keel's mounts: %s", err);
	free(buf);
}

/* The list in f, as records_save wrote it for boot. */
static void records_parse(FILE *f, const char *boot)
{
	char *line = NULL;
	size_t cap = 0;
	bool this_boot = false;

	nrecords = 0;
	while (getline(&line, &cap, f) != -1 && nrecords < RECORDS_MAX) {
		char *tab = strchr(line, '\t'), *nl = strchr(line, '\n');

		if (nl != NULL)
			*nl = '\0';
		if (tab == NULL)
			continue;
		*tab = '\0';
		if (strcmp(line, "boot") == 0)
			this_boot = boot[0] != '\0' && strcmp(tab + 1, boot) == 0;
		if (!this_boot || line[0] != '/')
			continue;
		snprintf(records[nrecords].path, sizeof(records[0].path), "%s", line);
		snprintf(records[nrecords].options, sizeof(records[0].options), "%s", tab + 1);
		nrecords++;
	}
	free(line);
}

void storage_records_load(void)
{
	char file[300], boot[64];
	FILE *f;

	nrecords = 0;
	snprintf(file, sizeof(file), "%s/storage.mounts", sm.state_dir);
	if (sm.state_dir[0] == '\0' || (f = fopen(file, "re")) == NULL)
		return;
	boot_id(boot, sizeof(boot));
	records_parse(f, boot);
	fclose(f);
}

static int record_find(const char *path)
{
	unsigned i;

	for (i = 0; i < nrecords; i++)
		if (strcmp(records[i].path, path) == 0)
			return (int)i;
	return -1;
}

bool storage_record_has(const char *path)
{
	return record_find(path) != -1;
}

static void record_set(const char *path, const char *options)
{
	int i = record_find(path);

	if (i == -1) {
		if (nrecords == RECORDS_MAX)
			return;
		i = (int)nrecords++;
	} else if (strcmp(records[i].options, options) == 0)
		return;
	snprintf(records[i].path, sizeof(records[0].path), "%s", path);
	snprintf(records[i].options, sizeof(records[0].options), "%s", options);
	records_save();
}

static void record_del(const char *path)
{
	int i = record_find(path);

	if (i == -1)
		return;
	records[i] = records[--nrecords];
	records_save();
}

/* ---- /proc/self/mountinfo ------------------------------------------------------------------- */

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void mountinfo_unescape(char *p)
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

/* Whether the mount table in f has path, and of what type and source. */
static bool mountinfo_scan(FILE *f, const char *path, char *fstype, size_t tlen, char *source,
			   size_t slen)
{
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

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
		mountinfo_unescape(field[4]);
		if (strcmp(field[4], path) != 0)
			continue;
		save = NULL;	/* the last one listed is the one on top */
		tok = strtok_r(dash + 3, " \n", &save);
		snprintf(fstype, tlen, "%s", tok != NULL ? tok : "");
		tok = tok != NULL ? strtok_r(NULL, " \n", &save) : NULL;
		snprintf(source, slen, "%s", tok != NULL ? tok : "");
		mountinfo_unescape(source);
		found = true;
	}
	free(line);
	return found;
}

/* Whether path is a mount point now, and of what type and source. */
bool storage_mountinfo_find(const char *path, char *fstype, size_t tlen, char *source,
			    size_t slen)
{
	bool found;
	FILE *f;

	if (path[0] == '\0' || (f = fopen("/proc/self/mountinfo", "re")) == NULL)
		return false;
	found = mountinfo_scan(f, path, fstype, tlen, source, slen);
	fclose(f);
	return found;
}

/* ---- options and sources -------------------------------------------------------------------- */

/* The name of option o (up to '=' or ','), with hard and soft one name,
 * and nfsvers and vers too: either replaces the other. */
static size_t option_key(const char *o, const char **key)
{
	size_t n = strcspn(o, "=,");

	*key = o;
	if ((n == 4 && strncmp(o, "soft", 4) == 0) || (n == 4 && strncmp(o, "hard", 4) == 0))
		*key = "hard";
	else if ((n == 4 && strncmp(o, "vers", 4) == 0) || (n == 7 && strncmp(o, "nfsvers", 7) == 0))
		*key = "vers";
	else
		return n;
	return 4;
}

/* Whether the comma-separated list holds an option named like o. */
static bool options_name(const char *list, const char *o)
{
	const char *k1, *k2;
	size_t n1 = option_key(o, &k1), n2;

	while (*list != '\0') {
		n2 = option_key(list, &k2);
		if (n1 == n2 && strncmp(k1, k2, n1) == 0)
			return true;
		list += strcspn(list, ",");
		list += *list == ',';
	}
	return false;
}

/*
 * mount -o for a mount: keel's defaults for the type, less those the user
 * names, then the user's. Returns the length, or 0 if it does not fit.
 */
size_t storage_mount_options(char *out, size_t len, int type, const char *user,
			     char *const *servers, size_t nservers, const char *logfile)
{
	char dflt[600];
	size_t n = 0, k;
	const char *o;
	int w;

	if (type == KEEL_MOUNT_GLUSTERFS) {
		w = snprintf(dflt, sizeof(dflt), "log-file=%s", logfile);
		for (k = 1; k < nservers && w >= 0 && (size_t)w < sizeof(dflt); k++)
			w += snprintf(dflt + w, sizeof(dflt) - (size_t)w, "%s%s",
				      k == 1 ? ",backup-volfile-servers=" : ":", servers[k]);
		if (w < 0 || (size_t)w >= sizeof(dflt))
			return 0;
	} else
		snprintf(dflt, sizeof(dflt), "nfsvers=4.1,hard,timeo=100,retrans=3,noresvport");
	out[0] = '\0';
	for (o = dflt; *o != '\0'; ) {
		k = strcspn(o, ",");
		if (!options_name(user, o)) {
			w = snprintf(out + n, len - n, "%s%.*s", n ? "," : "", (int)k, o);
			if (w < 0 || (size_t)w >= len - n)
				return 0;
			n += (size_t)w;
		}
		o += k;
		o += *o == ',';
	}
	if (user[0] != '\0') {
		w = snprintf(out + n, len - n, "%s%s", n ? "," : "", user);
		if (w < 0 || (size_t)w >= len - n)
			return 0;
		n += (size_t)w;
	}
	return n;
}

/*
 * The NFS version the options ask for, for the probes to speak the same:
 * 3 for vers=3 (or nfsvers=3), else 4 (keel's default is 4.1). The last
 * one named wins, as with mount(8).
 */
int storage_nfs_version(const char *options)
{
	const char *o = options;
	int v = 4;

	while (*o != '\0') {
		if (strncmp(o, "vers=", 5) == 0 || strncmp(o, "nfsvers=", 8) == 0)
			v = o[o[0] == 'v' ? 5 : 8] == '3' ? 3 : 4;
		o += strcspn(o, ",");
		o += *o == ',';
	}
	return v;
}

/* What mount(8) is given and what mountinfo then shows: addr:/export
 * ([addr]:/export for IPv6), addr:/volume for GlusterFS. */
static void mount_source(const struct storage_mount *m, int i, char *out, size_t len)
{
	const char *a = m->servers[i].addr;

	snprintf(out, len, strchr(a, ':') != NULL ? "[%s]:%s" : "%s:%s", a, m->remote);
}

/* Which of the mount's servers a mountinfo entry is from; -1: none. */
static int mount_source_server(const struct storage_mount *m, const char *fstype,
			       const char *source)
{
	char want[320];
	unsigned i;

	if (m->type == KEEL_MOUNT_GLUSTERFS ? strcmp(fstype, "fuse.glusterfs") != 0 :
	    strncmp(fstype, "nfs", 3) != 0)
		return -1;
	for (i = 0; i < m->nservers; i++) {
		mount_source(m, (int)i, want, sizeof(want));
		if (strcmp(want, source) == 0)
			return (int)i;
	}
	return -1;
}

/* The first server that answers, from next_try on (after a failed
 * attempt the next one gets its turn). */
static int pick(const struct storage_mount *m)
{
	unsigned k;

	for (k = 0; k < m->nservers; k++) {
		unsigned i = ((unsigned)m->next_try + k) % m->nservers;

		if (storage_state_up(m->servers[i].state))
			return (int)i;
	}
	return -1;
}

static int first_up(const struct storage_mount *m)
{
	unsigned i;

	for (i = 0; i < m->nservers; i++)
		if (storage_state_up(m->servers[i].state))
			return (int)i;
	return -1;
}

/* ---- the mount's state ---------------------------------------------------------------------- */

static bool state_bad(enum storage_state st)
{
	return st == STORAGE_HUNG || st == STORAGE_FAILED || st == STORAGE_MISSING;
}

/*
 * Sets the mount's state and reason, logs a change, and raises the
 * condition "storage NAME" when it goes bad (monitor/ makes an alert of
 * it) and clears it when the mount is healthy or slow again.
 */
static void __attribute__((format(printf, 3, 4)))
mount_set(struct storage_mount *m, enum storage_state st, const char *fmt, ...)
{
	char why[sizeof(m->why)];
	bool changed = st != m->state;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (!changed && strcmp(why, m->why) == 0)
		return;
	snprintf(m->why, sizeof(m->why), "%s", why);
	if (changed) {
		m->state = st;
		m->since_wall = core_clock_wall_ms();
	}
	if (changed || st == STORAGE_FAILED)	/* each failed attempt says why */
		core_log_write(state_bad(st) ? CORE_LOG_WARN : CORE_LOG_INFO, "storage",
			       "storage %s: %s", m->name, why[0] ? why : storage_state_str(st));
	if (state_bad(st)) {
		if (changed) {
			m->last_incident_wall = m->since_wall;
			snprintf(m->last_incident, sizeof(m->last_incident), "%s", why);
		}
		core_event_raise("storage", m->subject, "%s", why);
	} else if (storage_state_up(st) && changed)
		core_event_clear("storage", m->subject, "UP: %s", why);
}

/* A mount without a path: as good as its best server, in order. */
static void mount_watch_only(struct storage_mount *m)
{
	int cur = first_up(m);
	const struct storage_server *s = &m->servers[cur != -1 ? cur : 0];

	bool moved = cur != m->current;

	if (moved && cur != -1 && m->current != -1)
		core_log_warn("storage", "storage %s: now on %s (%s)", m->name, s->addr,
			      cur == 0 ? "the primary" : "a backup");
	m->current = cur;
	if (s->state == m->state && !moved)
		return;
	if (cur != -1)
		mount_set(m, s->state, "%s:%s %s", s->addr, m->remote, storage_state_str(s->state));
	else if (s->state != STORAGE_STARTING)
		mount_set(m, s->state, "%s:%.60s %s: %s", s->addr, m->remote,
			  storage_state_str(s->state), s->why);
}

/* ---- helper processes ----------------------------------------------------------------------- */

static void mount_eval(struct storage_mount *m);

static void job_clear(struct storage_job *j)
{
	core_timer_stop(&j->deadline);
	core_io_stop(&j->out);
	if (j->fd != -1)
		close(j->fd);
	j->fd = -1;
	j->child.pid = 0;
	j->kind = JOB_NONE;
	j->late = false;
	j->msglen = 0;
	j->msg[0] = '\0';
}

/* Keeps the first bytes the helper writes: mount(8)'s error, say. */
static void job_read(struct storage_job *j)
{
	char chunk[256];
	ssize_t n;

	while (j->fd != -1) {
		n = read(j->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			core_io_stop(&j->out);
			close(j->fd);
			j->fd = -1;
			return;
		}
		if (j->msglen + 1 < sizeof(j->msg)) {
			size_t k = (size_t)n < sizeof(j->msg) - 1 - j->msglen ?
				   (size_t)n : sizeof(j->msg) - 1 - j->msglen;

			memcpy(j->msg + j->msglen, chunk, k);
			j->msglen += k;
			j->msg[j->msglen] = '\0';
		}
	}
}

static void job_on_out(struct core_io *io, unsigned revents)
{
	(void)revents;
	job_read(io->data);
}

/* The helper's words on one line, without what mount(8) repeats. */
static const char *job_words(struct storage_job *j)
{
	char *p;

	while (j->msglen > 0 && (j->msg[j->msglen - 1] == '\n' || j->msg[j->msglen - 1] == ' '))
		j->msg[--j->msglen] = '\0';
	for (p = j->msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\t' || (unsigned char)*p < ' ')
			*p = ' ';
	return j->msg;
}

static void job_finished(struct storage_job *j, int status);

static void job_reaped(struct core_child *c, int status)
{
	struct storage_job *j = c->data;

	job_read(j);
	if (j->late) {
		/* Its deadline already said what there was to say. */
		struct storage_mount *m = j->m;
		uint64_t took = core_loop_now(sm.loop) - j->started;

		if (j->kind == JOB_MOUNT && m != NULL)
			m->last_attempt_ms = took;
		if (j->kind == JOB_UMOUNT && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			record_del(j->path);	/* it did come off, late */
			if (m != NULL)
				m->ours = false;
		}
		core_log_info("storage", "storage %s: the late %s helper (pid %d) ended after %llu ms",
			      m != NULL ? m->name : "-", j->kind == JOB_CHECK ? "check" :
			      j->kind == JOB_MOUNT ? "mount" : "unmount", (int)c->pid,
			      (unsigned long long)took);
		job_clear(j);
		if (m != NULL)
			mount_eval(m);
		return;
	}
	job_finished(j, status);
}

static void job_on_deadline(struct core_timer *t)
{
	struct storage_job *j = t->data;

	if (j->child.pid <= 0)
		return;
	(void)kill(-j->child.pid, SIGKILL);	/* mount(8) and mount.nfs under it */
	(void)kill(j->child.pid, SIGKILL);
	j->late = true;
	job_finished(j, -1);
}

/*
 * Runs fn(j) in a child process of its own group, its stdout and stderr
 * into a pipe keel reads. fn never returns: it execs or _exits.
 */
static int job_spawn(struct storage_job *j, enum storage_job_kind kind, uint64_t deadline,
		     void (*fn)(const struct storage_job *j, const void *arg), const void *arg)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -errno;
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) == -1) {
		int e = errno;

		close(p[0]);
		close(p[1]);
		return -e;
	}
	pid = fork();
	if (pid == -1) {
		int e = errno;

		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

		(void)setpgid(0, 0);
		if (fd != -1)
			(void)dup2(fd, 0);
		(void)dup2(p[1], 1);
		(void)dup2(p[1], 2);
		core_child_prepare_exec(-1);
		fn(j, arg);
		_exit(127);
	}
	(void)setpgid(pid, pid);	/* as the child does: a kill at once finds the group */
	close(p[1]);
	j->kind = kind;
	j->fd = p[0];
	j->late = false;
	j->msglen = 0;
	j->msg[0] = '\0';
	j->started = core_loop_now(sm.loop);
	j->out.fd = p[0];
	(void)core_io_set(&j->out, CORE_IO_READ);
	core_child_watch(&j->child, pid, job_reaped, j);
	core_timer_start(&j->deadline, deadline);
	return 0;
}

/* Ends a helper for good (a reload, keel stopping): killed, not waited for. */
static void job_kill(struct storage_job *j)
{
	if (j->child.pid > 0) {
		(void)kill(-j->child.pid, SIGKILL);
		(void)kill(j->child.pid, SIGKILL);
		core_child_forget(&j->child);
	}
	if (j->kind != JOB_NONE)
		job_clear(j);
}

static void job_init(struct storage_job *j, struct storage_mount *m)
{
	j->m = m;
	j->fd = -1;
	j->kind = JOB_NONE;
	core_timer_init(sm.loop, &j->deadline, job_on_deadline, j);
	core_io_init(sm.loop, &j->out, -1, job_on_out, j);
}

/* ---- inside the helpers (after fork: no loop, no malloc'd state of keel's) ------------------ */

/* An exit status for errno: never 0, as a short write leaves errno 0. */
static int errno_code(void)
{
	return errno > 0 && errno < 256 ? errno : EIO;
}

struct mount_args {
	const char	*fstype, *options, *source, *path;
};

static void mkdirs(const char *path)
{
	char p[256];
	size_t i;

	snprintf(p, sizeof(p), "%s", path);
	for (i = 1; p[i] != '\0'; i++)
		if (p[i] == '/') {
			p[i] = '\0';
			(void)mkdir(p, 0755);
			p[i] = '/';
		}
	(void)mkdir(p, 0755);
}

static void child_mount(const struct storage_job *j, const void *arg)
{
	const struct mount_args *a = arg;
	char *argv[] = { "mount", "-t", (char *)a->fstype, "-o", (char *)a->options,
			 (char *)a->source, (char *)a->path, NULL };

	char real[PATH_MAX];

	(void)j;
	mkdirs(a->path);
	if (realpath(a->path, real) == NULL) {
		dprintf(2, "%s: %s\n", a->path, strerror(errno));
		_exit(1);
	}
	if (strcmp(real, a->path) != 0) {
		dprintf(2, "%s leads to %s (a symbolic link): give that path\n", a->path, real);
		_exit(1);
	}
	execvp("mount", argv);
	dprintf(2, "cannot run mount(8): %s\n", strerror(errno));
	_exit(127);
}

static void child_umount(const struct storage_job *j, const void *arg)
{
	(void)arg;
	if (umount2(j->path, MNT_DETACH) == -1 && errno != EINVAL && errno != ENOENT) {
		dprintf(2, "%s\n", strerror(errno));
		_exit(errno_code());
	}
	_exit(0);
}

/* statvfs, then the canary: written, synced, read back. The exit status
 * is the errno of what failed, so the parent can tell stale from full. */
static void child_check(const struct storage_job *j, const void *arg)
{
	const struct storage_mount *m = j->m;
	char file[400], want[160], got[160];
	struct statvfs v;
	ssize_t n;
	int fd, len;

	(void)arg;
	if (statvfs(m->path, &v) == -1)
		goto fail_statvfs;
	if (!m->canary)
		_exit(0);
	snprintf(file, sizeof(file), "%s/.keel-canary-%s-%s", m->path, sm.node, m->name);
	len = snprintf(want, sizeof(want), "keel %s pid %d at %llu\n", sm.node, (int)getpid(),
		       (unsigned long long)core_clock_wall_ms());
	if ((fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) == -1)
		goto fail_open;
	if (write(fd, want, (size_t)len) != len || fsync(fd) == -1)
		goto fail_write;
	if (close(fd) == -1)
		goto fail_write;
	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1 ||
	    (n = read(fd, got, sizeof(got))) == -1)
		goto fail_read;
	/* Another box with the same node name may have written meanwhile:
	 * its whole line is as good an answer. Anything else is not. */
	if ((n != len || memcmp(got, want, (size_t)len) != 0) &&
	    (n < 6 || memcmp(got, "keel ", 5) != 0 || got[n - 1] != '\n' ||
	     memchr(got, '\n', (size_t)n - 1) != NULL)) {
		dprintf(2, "read back %s: %zd bytes, not what was written\n", file, n);
		_exit(EIO);
	}
	_exit(0);
fail_statvfs:
	dprintf(2, "statvfs %s: %s\n", m->path, strerror(errno));
	_exit(errno_code());
fail_open:
	dprintf(2, "create %s: %s\n", file, strerror(errno));
	_exit(errno_code());
fail_write:
	dprintf(2, "write %s: %s\n", file, strerror(errno));
	_exit(errno_code());
fail_read:
	dprintf(2, "read %s: %s\n", file, strerror(errno));
	_exit(errno_code());
}

/* ---- starting helpers ----------------------------------------------------------------------- */

static void mount_attempt(struct storage_mount *m, int i)
{
	char source[320];
	struct mount_args a = {
		.fstype = m->type == KEEL_MOUNT_GLUSTERFS ? "glusterfs" : "nfs",
		.options = m->options, .source = source, .path = m->path,
	};
	int rc;

	mount_source(m, i, source, sizeof(source));
	record_set(m->path, m->options);	/* before: a mount it makes is keel's */
	m->attempts++;
	m->job.server = i;
	rc = job_spawn(&m->job, JOB_MOUNT, m->mount_timeout, child_mount, &a);
	if (rc < 0) {
		m->failed_attempts++;
		m->retry_at = core_loop_now(sm.loop) + BACKOFF_MIN_MS;
		mount_set(m, STORAGE_FAILED, "cannot start a mount helper: %s", strerror(-rc));
		return;
	}
	mount_set(m, STORAGE_MOUNTING, "mounting %s on %s", source, m->path);
}

/* Lazily unmounts the path, then mounts it from server then (-1: none). */
static void mount_release(struct storage_mount *m, int then, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void mount_release(struct storage_mount *m, int then, const char *fmt, ...)
{
	char why[240];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	core_log_warn("storage", "storage %s: unmounting %s: %s", m->name, m->path, why);
	snprintf(m->job.path, sizeof(m->job.path), "%s", m->path);
	m->job.then = then;
	rc = job_spawn(&m->job, JOB_UMOUNT, m->mount_timeout, child_umount, NULL);
	if (rc < 0)
		mount_set(m, STORAGE_FAILED, "cannot start an unmount helper: %s", strerror(-rc));
}

static void mount_check_start(struct storage_mount *m)
{
	int rc = job_spawn(&m->check, JOB_CHECK, m->canary_timeout, child_check, NULL);

	if (rc < 0) {
		m->check_ok = false;
		snprintf(m->check_err, sizeof(m->check_err), "cannot start a check: %s",
			 strerror(-rc));
		m->check_at = core_loop_now(sm.loop) + m->canary_interval;
	}
}

/* ---- helpers' ends -------------------------------------------------------------------------- */

static uint64_t backoff(unsigned failed)
{
	uint64_t ms = BACKOFF_MIN_MS;

	while (--failed > 0 && ms < BACKOFF_MAX_MS)
		ms *= 2;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	return ms - ms / 8 + (uint64_t)random() % (ms / 4 + 1);	/* +-12.5% */
}

static void mount_attempt_done(struct storage_mount *m, struct storage_job *j, int status)
{
	uint64_t now = core_loop_now(sm.loop), took = now - j->started;
	char source[320], fstype[32], where[400];
	const char *words = job_words(j);

	mount_source(m, j->server, source, sizeof(source));
	m->last_attempt_ms = took;
	if (!j->late && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    storage_mountinfo_find(m->path, fstype, sizeof(fstype), where, sizeof(where)) &&
	    mount_source_server(m, fstype, where) == j->server) {
		m->ours = true;
		m->mounts_ok++;
		m->next_try = 0;
		m->stale = false;
		job_kill(&m->check);	/* of the mount before: held, or beside the point */
		m->check_late = false;
		m->check_ok = false;
		m->check_err[0] = '\0';
		m->check_at = now;
		m->current = j->server;
		record_set(m->path, m->options);
		snprintf(m->last_attempt, sizeof(m->last_attempt), "mounted %.200s in %llu ms", source,
			 (unsigned long long)took);
		core_log_info("storage", "storage %s: mounted %s on %s in %llu ms", m->name, source,
			      m->path, (unsigned long long)took);
		return;
	}
	m->failed_attempts++;
	m->retry_at = now + backoff(m->failed_attempts);
	m->next_try = (j->server + 1) % (int)m->nservers;
	if (j->server == 0)
		m->primary_failed_at = now;
	if (!j->late && !storage_mountinfo_find(m->path, fstype, sizeof(fstype), where,
						sizeof(where)))
		record_del(m->path);	/* nothing was mounted: not keel's */
	if (j->late) {
		m->giveups++;
		snprintf(m->last_attempt, sizeof(m->last_attempt), "mount %.200s: gave up after %llu ms "
			 "(no answer; the helper was killed)", source, (unsigned long long)took);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		snprintf(m->last_attempt, sizeof(m->last_attempt), "mount %.150s: mount(8) succeeded "
			 "but %.60s is not mounted from it", source, m->path);
	else if (WIFSIGNALED(status))
		snprintf(m->last_attempt, sizeof(m->last_attempt), "mount %.200s: killed by signal %d",
			 source, WTERMSIG(status));
	else
		snprintf(m->last_attempt, sizeof(m->last_attempt), "mount %.200s: %s", source,
			 words[0] ? words : "failed");
	mount_set(m, STORAGE_FAILED, "%s (failure %u in a row; next attempt in %.1f s)",
		  m->last_attempt, m->failed_attempts, (double)(m->retry_at - now) / 1000.0);
}

static void mount_check_done(struct storage_mount *m, struct storage_job *j, int status)
{
	uint64_t now = core_loop_now(sm.loop);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;

	m->check_at = now + m->canary_interval;
	if (j->late) {
		m->abandoned++;
		m->check_ok = false;
		m->check_late = true;
		snprintf(m->check_err, sizeof(m->check_err), "the check of %.80s did not come back "
			 "within %llu ms (helper pid %d killed)", m->path,
			 (unsigned long long)m->canary_timeout, (int)j->child.pid);
		return;
	}
	m->check_ms = now - j->started;
	m->check_late = false;
	if (code == 0) {
		m->check_ok = true;
		m->check_err[0] = '\0';
		m->failed_attempts = 0;	/* the mount works: the backoff starts over */
		return;
	}
	m->check_ok = false;
	snprintf(m->check_err, sizeof(m->check_err), "%.150s", code == -1 ?
		 "the check was killed" : job_words(j)[0] ? j->msg : "the check failed");
	if (code == ESTALE || code == ENOTCONN || code == EIO)
		m->stale = true;
}

static void job_finished(struct storage_job *j, int status)
{
	struct storage_mount *m = j->m;

	if (m == NULL) {		/* a mount that left the configuration */
		if (!j->late && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			core_log_info("storage", "storage: unmounted %s (its mount left the "
				      "configuration)", j->path);
			record_del(j->path);
		} else
			core_log_warn("storage", "storage: cannot unmount %s: %s", j->path,
				      j->late ? "timed out" : job_words(j));
		if (!j->late)
			job_clear(j);
		return;
	}
	switch (j->kind) {
	case JOB_MOUNT:
		mount_attempt_done(m, j, status);
		break;
	case JOB_UMOUNT:
		if (!j->late && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			m->ours = false;
			record_del(m->path);
			if (j->then != -1) {
				job_clear(j);
				mount_attempt(m, j->then);
				return;
			}
			m->retry_at = core_loop_now(sm.loop);
		} else {
			m->failed_attempts++;
			m->retry_at = core_loop_now(sm.loop) + backoff(m->failed_attempts);
			mount_set(m, STORAGE_FAILED, "cannot unmount %s: %s", m->path,
				  j->late ? "timed out" : job_words(j));
		}
		break;
	case JOB_CHECK:
		mount_check_done(m, j, status);
		break;
	case JOB_NONE:
		break;
	}
	if (!j->late)
		job_clear(j);
	mount_eval(m);
}

/* ---- deciding ------------------------------------------------------------------------------- */

/* Not mounted: mount it, from the first server that answers, else the
 * next in turn, once the backoff allows. */
static void mount_absent(struct storage_mount *m, uint64_t now)
{
	int i;

	if (m->ours) {
		m->ours = false;
		record_del(m->path);
		m->retry_at = now;
		mount_set(m, STORAGE_MISSING, "%s is no longer mounted", m->path);
	}
	m->current = -1;
	if (now < m->retry_at)
		return;
	mount_attempt(m, (i = pick(m)) != -1 ? i : m->next_try % (int)m->nservers);
}

/* The mount's state, from its server and its last check. */
static void mount_judge(struct storage_mount *m, int on)
{
	const struct storage_server *s = &m->servers[on];
	char source[320];

	mount_source(m, on, source, sizeof(source));
	if (m->check_late)
		mount_set(m, STORAGE_HUNG, "%s hung: %s", source, m->check_err);
	else if (m->type == KEEL_MOUNT_NFS && (s->state == STORAGE_HUNG || s->state == STORAGE_FAILED))
		mount_set(m, s->state, "%s %s: %s", source, storage_state_str(s->state), s->why);
	else if (!m->check_ok && m->check_err[0] != '\0')
		mount_set(m, STORAGE_FAILED, "%s failed: %s", source, m->check_err);
	else if (!m->check_ok)
		return;		/* mounted; the first check is under way */
	else if (m->type == KEEL_MOUNT_NFS && s->state == STORAGE_SLOW)
		mount_set(m, STORAGE_SLOW, "%s slow: %s", source, s->why);
	else if (m->check_ms > m->slow_after && m->type == KEEL_MOUNT_GLUSTERFS)
		mount_set(m, STORAGE_SLOW, "%s slow: the check took %llu ms", source,
			  (unsigned long long)m->check_ms);
	else
		mount_set(m, STORAGE_HEALTHY, "%s healthy, mounted on %s", source, m->path);
}

static void mount_eval(struct storage_mount *m)
{
	uint64_t now = core_loop_now(sm.loop);
	char fstype[32], source[400];
	const struct storage_server *s;
	int on, alt, r;
	bool wait;

	if (m->job.kind != JOB_NONE)
		return;			/* mounting or unmounting: its end decides */
	if (!storage_mountinfo_find(m->path, fstype, sizeof(fstype), source, sizeof(source))) {
		mount_absent(m, now);
		return;
	}
	on = mount_source_server(m, fstype, source);
	if (!m->ours) {
		bool keels = storage_record_has(m->path);

		if (!keels && (on == -1 || !m->adopt)) {
			m->current = -1;
			mount_set(m, STORAGE_FAILED, "%s is already mounted (%s %s), not by keel: %s",
				  m->path, fstype, source, on == -1 ? "not from one of its servers" :
				  "set adopt: true to let keel take it over");
			return;
		}
		m->ours = true;
		core_log_info("storage", "storage %s: %s %s on %s", m->name,
			      keels ? "found its mount of" : "adopted", source, m->path);
		if (!keels)
			record_set(m->path, m->options);
	}
	m->current = on;
	/* Every move waits for the backoff, so a move that fails (an
	 * unmount refused, a check that fails at once) cannot loop. */
	wait = now < m->retry_at;
	if (on == -1) {
		if (!wait)
			mount_release(m, (r = pick(m)) != -1 ? r : 0, "mounted from %s, which is not "
				      "one of its servers any more", source);
		return;
	}
	s = &m->servers[on];
	if (m->stale) {
		if (wait) {
			mount_set(m, STORAGE_FAILED, "%s failed: %s (remounting in %.1f s)", source,
				  m->check_err, (double)(m->retry_at - now) / 1000.0);
			return;
		}
		m->stale = false;
		m->failed_attempts++;
		m->retry_at = now + backoff(m->failed_attempts);
		mount_set(m, STORAGE_FAILED, "%s failed: %s (remounting)", source, m->check_err);
		mount_release(m, (r = pick(m)) != -1 ? r : on, "stale: %s", m->check_err);
		return;
	}
	if (wait)
		;
	else if ((r = record_find(m->path)) != -1 && strcmp(records[r].options, m->options) != 0) {
		mount_release(m, on, "its options changed");
		return;
	} else if (m->type == KEEL_MOUNT_NFS && (s->state == STORAGE_HUNG ||
		   s->state == STORAGE_FAILED) && (alt = pick(m)) != -1) {
		mount_release(m, alt, "%s is %s (%s); switching to %s", s->addr,
			      storage_state_str(s->state), s->why, m->servers[alt].addr);
		return;
	} else if (m->type == KEEL_MOUNT_NFS && m->failback && on != 0 &&
		   storage_state_up(m->servers[0].state) &&
		   now - m->servers[0].up_since >= FAILBACK_HOLD_MS &&
		   (m->primary_failed_at == 0 || now - m->primary_failed_at >= FAILBACK_PAUSE_MS)) {
		mount_release(m, 0, "the primary %s has answered for %d s: failing back",
			      m->servers[0].addr, FAILBACK_HOLD_MS / 1000);
		return;
	}
	mount_judge(m, on);
	/* No check into an NFS mount whose server does not answer: it
	 * would only sit in the kernel. */
	if (m->check.kind == JOB_NONE && now >= m->check_at &&
	    (m->type == KEEL_MOUNT_GLUSTERFS || storage_state_up(s->state) ||
	     s->state == STORAGE_STARTING))
		mount_check_start(m);
}

static void mount_on_tick(struct core_timer *t)
{
	struct storage_mount *m = t->data;

	mount_eval(m);
	storage_gate();
	core_timer_start(&m->tick, m->interval);
}

/* ---- asked for (storage.c's commands) ------------------------------------------------------ */

/*
 * An operator's remount (server -1: from the server in use, or the best
 * one) or switch (server i). It does not wait for the backoff. CORE_OK,
 * or CORE_ERROR with why not in err.
 */
int storage_mount_move(struct storage_mount *m, int server, const char *who, char *err,
		       size_t errlen)
{
	char fstype[32], source[400];
	int to;

	if (m->path[0] == '\0') {
		snprintf(err, errlen, "mount %s has no path: keel only watches it", m->name);
		return CORE_ERROR;
	}
	if (m->job.kind != JOB_NONE) {
		snprintf(err, errlen, "mount %s: %s under way; try again when it ends", m->name,
			 m->job.kind == JOB_MOUNT ? "a mount attempt is" : "an unmount is");
		return CORE_ERROR;
	}
	m->stale = false;
	m->retry_at = 0;
	if (!storage_mountinfo_find(m->path, fstype, sizeof(fstype), source, sizeof(source))) {
		if (server != -1)
			m->next_try = server;
		core_log_info("storage", "storage %s: %s asked for a mount now", m->name, who);
		mount_eval(m);
		return CORE_OK;
	}
	if (!m->ours) {
		snprintf(err, errlen, "%s is mounted (%s), not by keel: keel does not touch it",
			 m->path, source);
		return CORE_ERROR;
	}
	to = server != -1 ? server : m->current != -1 ? m->current : pick(m) != -1 ? pick(m) : 0;
	mount_release(m, to, "%s asked for %s", who, server != -1 ? "a switch" : "a remount");
	return CORE_OK;
}

/* ---- the seams with storage.c --------------------------------------------------------------- */

void storage_mount_update(struct storage_mount *m)
{
	if (m->path[0] == '\0')
		mount_watch_only(m);
	else
		mount_eval(m);
}

void storage_mount_start(struct storage_mount *m)
{
	job_init(&m->job, m);
	job_init(&m->check, m);
	core_timer_init(sm.loop, &m->tick, mount_on_tick, m);
	if (m->path[0] == '\0')
		return;
	mount_eval(m);
	storage_gate();
	core_timer_start(&m->tick, m->interval);
}

void storage_mount_stop(struct storage_mount *m)
{
	core_timer_stop(&m->tick);
	job_kill(&m->job);
	job_kill(&m->check);
}

void storage_unmount_dropped(const char *name, const char *path)
{
	unsigned i;
	int rc;

	if (!storage_record_has(path))
		return;
	for (i = 0; i < CORE_ARRAY_SIZE(sm.drops) && sm.drops[i].kind != JOB_NONE; i++)
		;
	if (i == CORE_ARRAY_SIZE(sm.drops)) {
		core_log_warn("storage", "storage %s: left the configuration; %s stays mounted "
			      "(too many unmounts under way)", name, path);
		return;
	}
	if (sm.drops[i].deadline.cb == NULL)
		job_init(&sm.drops[i], NULL);
	snprintf(sm.drops[i].path, sizeof(sm.drops[i].path), "%s", path);
	core_log_info("storage", "storage %s: left the configuration: unmounting %s", name, path);
	rc = job_spawn(&sm.drops[i], JOB_UMOUNT, 5000, child_umount, NULL);
	if (rc < 0)
		core_log_warn("storage", "storage %s: cannot unmount %s: %s", name, path,
			      strerror(-rc));
}

void storage_jobs_stop(void)
{
	unsigned i;

	for (i = 0; i < CORE_ARRAY_SIZE(sm.drops); i++)
		job_kill(&sm.drops[i]);
}
