/*
 * Each server of each mount, probed from keel's own loop, over keel's own
 * sockets, with keel's own deadline: never through the kernel's NFS path,
 * which can sit in D state for as long as a server is gone.
 *
 * NFS: a probe mounts the export once through libnfs (the portmapper,
 * MOUNT), then every probe_interval asks GETATTR of the export's root and
 * FSSTAT (free space) on the same connection. GlusterFS: a probe is a TCP
 * connect to glusterd, which hands out the volume's layout (the FUSE
 * client itself follows the bricks; the mount's checks see what it sees).
 * A probe that misses its deadline has its context or socket closed, and
 * the next one starts at once.
 *
 *   healthy   answered within slow_after
 *   slow      answered, but slower
 *   hung      `misses` probes in a row timed out (a frozen server, a cut
 *             network: the kernel would sit in its 60 s RPC timeouts)
 *   failed    refused: no server there, no such export, access denied
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>

#include "core/core.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/settings-t.h"
#include "storage.h"

static void server_probe(struct storage_server *s);

static void server_set(struct storage_server *s, enum storage_state st, const char *why)
{
	struct storage_mount *m = s->m;

	snprintf(s->why, sizeof(s->why), "%s", why);
	if (st != s->state) {
		if (storage_state_up(st) && !storage_state_up(s->state))
			s->up_since = core_loop_now(sm.loop);
		s->state = st;
		s->since_wall = core_clock_wall_ms();
		core_log_write(storage_state_up(st) ? CORE_LOG_INFO : CORE_LOG_WARN, "storage",
			       "storage %s: %s:%s %s%s%s", m->name, s->addr, m->remote,
			       storage_state_str(st), why[0] ? ": " : "", why);
	}
	storage_mount_update(m);
}

/* An answer in took ms: healthy or slow. */
static void server_answered(struct storage_server *s, uint64_t took)
{
	char why[120] = "";

	s->latency_ms = took;
	s->misses = 0;
	if (took > s->m->slow_after)
		snprintf(why, sizeof(why), "answered in %llu ms (slow_after %llu ms)",
			 (unsigned long long)took, (unsigned long long)s->m->slow_after);
	server_set(s, took > s->m->slow_after ? STORAGE_SLOW : STORAGE_HEALTHY, why);
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

/* Closes the context or socket; libnfs's callbacks, called then with an
 * error, see that it is not the server's any more and do nothing. Inside
 * nfs_service (a callback that failed) it is freed once nfs_service has
 * returned. */
static void server_drop(struct storage_server *s)
{
	struct nfs_context *nfs = s->nfs;

	core_io_stop(&s->io);
	if (s->sock != -1) {
		close(s->sock);
		s->sock = -1;
	}
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

static const char *step_str(enum storage_step s)
{
	switch (s) {
	case STEP_IDLE:		return "nothing";
	case STEP_MOUNT:	return "MOUNT";
	case STEP_GETATTR:	return "GETATTR";
	case STEP_FSSTAT:	return "FSSTAT";
	case STEP_CONNECT:	return "connect to glusterd";
	}
	return "?";
}

static void fsstat_done(int err, struct nfs_context *nfs, void *data, void *arg)
{
	struct storage_server *s = arg;
	const struct nfs_statvfs_64 *v = data;

	if (nfs != s->nfs || s->step != STEP_FSSTAT)
		return;
	if (err < 0) {
		server_failed(s, "FSSTAT", data);
		return;
	}
	s->free_bytes = v->f_bavail * v->f_frsize;
	s->total_bytes = v->f_blocks * v->f_frsize;
	server_next(s, s->m->interval);
	server_answered(s, core_loop_now(sm.loop) - s->asked);
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

		if (e == NULL || e[0] == '\0')
			e = data;
		if (e == NULL || e[0] == '\0')	/* libnfs's NFSv4 connect says nothing */
			e = "the connection to port 2049 failed (no NFS server there?)";
		server_failed(s, "MOUNT", e);
		return;
	}
	s->mounted = true;
	server_getattr(s);
}

/* ---- GlusterFS: glusterd answers a connect ------------------------------------------------ */

static void server_connect(struct storage_server *s)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, s->addr, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(STORAGE_GLUSTERD_PORT);
		len = sizeof(*in4);
	} else {
		(void)inet_pton(AF_INET6, s->addr, &in6->sin6_addr);	/* checked in config */
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(STORAGE_GLUSTERD_PORT);
		len = sizeof(*in6);
	}
	s->step = STEP_CONNECT;
	s->asked = core_loop_now(sm.loop);
	s->sock = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->sock == -1) {
		server_failed(s, step_str(s->step), strerror(errno));
		return;
	}
	if (connect(s->sock, (struct sockaddr *)&ss, len) == -1 && errno != EINPROGRESS) {
		server_failed(s, step_str(s->step), strerror(errno));
		return;
	}
	s->io.fd = s->sock;
	(void)core_io_set(&s->io, CORE_IO_WRITE);
}

static void server_connected(struct storage_server *s)
{
	int err = 0;
	socklen_t elen = sizeof(err);

	if (getsockopt(s->sock, SOL_SOCKET, SO_ERROR, &err, &elen) == -1)
		err = errno;
	if (err != 0) {
		server_failed(s, step_str(s->step), strerror(err));
		return;
	}
	server_drop(s);
	server_next(s, s->m->interval);
	server_answered(s, core_loop_now(sm.loop) - s->asked);
}

/* ---- the probe's rhythm --------------------------------------------------------------------- */

static void server_on_io(struct core_io *io, unsigned revents)
{
	struct storage_server *s = io->data;
	int ev = (revents & CORE_IO_READ ? POLLIN : 0) | (revents & CORE_IO_WRITE ? POLLOUT : 0);

	if (s->step == STEP_CONNECT) {
		server_connected(s);
		return;
	}
	if (s->nfs == NULL)
		return;
	server_enter(s);
	if (nfs_service(s->nfs, ev) < 0 && s->nfs != NULL) {
		const char *e = nfs_get_error(s->nfs);

		/* libnfs's NFSv4 connect says nothing when it fails */
		if ((e == NULL || e[0] == '\0') && s->step == STEP_MOUNT)
			e = "the connection to port 2049 failed (no NFS server there?)";
		if (s->step == STEP_IDLE)
			server_drop(s);		/* a lost idle connection: the next probe says */
		else
			server_failed(s, step_str(s->step), e);
	}
	server_leave(s);
}

/* A probe's deadline passed: the context goes, with its sockets. */
static void server_timed_out(struct storage_server *s)
{
	char why[200];

	s->timeouts++;
	s->misses++;
	snprintf(why, sizeof(why), "%s timed out after %llu ms (%u%s miss)", step_str(s->step),
		 (unsigned long long)s->m->timeout, s->misses, storage_nth(s->misses));
	if (s->misses >= s->m->max_misses && s->state != STORAGE_FAILED)
		server_set(s, STORAGE_HUNG, why);
	else			/* not yet; or down already, and silence is no news */
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
	char name[320];

	s->probes++;
	core_timer_start(&s->timer, s->m->timeout);
	if (s->m->type == KEEL_MOUNT_GLUSTERFS) {
		server_connect(s);
		return;
	}
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
	/* Its own NFSv4 client name: libnfs's default ("Libnfs pid:P <second>")
	 * is shared by contexts made in the same second, which then expire
	 * each other's state on the server. */
	snprintf(name, sizeof(name), "keel:%d:probe:%s:%s", (int)getpid(), s->m->name, s->addr);
	nfs4_set_client_name(s->nfs, name);
	/* The version the kernel mounts with: NFSv4 goes straight to port
	 * 2049 (a v4-only server has no portmapper or MOUNT service). */
	if (nfs_set_version(s->nfs, s->m->nfs_version) != 0) {
		server_failed(s, "MOUNT", nfs_get_error(s->nfs));
		return;
	}
	s->step = STEP_MOUNT;
	server_enter(s);
	if (nfs_mount_async(s->nfs, s->addr, s->m->remote, mount_done, s) != 0)
		server_failed(s, "MOUNT", nfs_get_error(s->nfs));
	server_leave(s);
}

void storage_probe_init(struct storage_server *s)
{
	s->sock = -1;
	core_io_init(sm.loop, &s->io, -1, server_on_io, s);
	core_timer_init(sm.loop, &s->timer, server_on_timer, s);
	server_probe(s);
}

void storage_probe_stop(struct storage_server *s)
{
	core_timer_stop(&s->timer);
	server_drop(s);
}
