/*
 * What the storage part offers the admin API (core/command.h):
 *
 *   storage.remount  TARGET         unmount lazily and mount again
 *   storage.switch   TARGET ADDR    an NFS mount, moved to another of its servers
 *   storage.exports  ADDR           what an NFS server exports (MOUNT EXPORT),
 *                                   for the form that adds a mount
 *
 * The export listing asks the server through libnfs on keel's loop, with
 * its own deadline, like the probes.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>

#include "core/core.h"
#include "core/command.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/settings-t.h"
#include "storage.h"

#define EXPORTS_TIMEOUT_MS	3000
#define EXPORTS_MAX		256
#define EXPORTS_OUT_MAX		(60 << 10)	/* the answer buffer holds 64 KiB */
#define EXPORTS_TAIL		32		/* room kept for "],\"cut\":false}" */

static struct storage_mount *find_mount(struct core_command_call *call)
{
	unsigned i;

	for (i = 0; i < sm.n; i++)
		if (strcmp(sm.mounts[i]->name, call->target) == 0)
			return sm.mounts[i];
	core_command_fail(call, 404, "no mount named \"%s\"", call->target);
	return NULL;
}

static void answer_mount(struct core_command_call *call, const struct storage_mount *m)
{
	core_buf_append(&call->out, "{\"mount\":", 9);
	core_json_str(&call->out, m->name);
	core_buf_printf(&call->out, ",\"state\":\"%s\",\"reason\":", storage_state_str(m->state));
	core_json_str(&call->out, m->why);
	core_buf_append(&call->out, "}", 1);
	core_command_answer(call, 202);
}

static void cmd_remount(struct core_command_call *call)
{
	struct storage_mount *m = find_mount(call);
	char err[300];

	if (m == NULL)
		return;
	if (storage_mount_move(m, -1, call->who, err, sizeof(err)) != CORE_OK) {
		core_command_fail(call, 409, "%s", err);
		return;
	}
	answer_mount(call, m);
}

static void cmd_switch(struct core_command_call *call)
{
	struct storage_mount *m = find_mount(call);
	char err[300];
	unsigned i;

	if (m == NULL)
		return;
	if (m->type != KEEL_MOUNT_NFS) {
		core_command_fail(call, 400, "mount %s is GlusterFS: its client follows the "
				  "bricks itself; remount it instead", m->name);
		return;
	}
	for (i = 0; i < m->nservers && strcmp(m->servers[i].addr, call->arg) != 0; i++)
		;
	if (i == m->nservers) {
		core_command_fail(call, 400, "\"%s\" is not one of the servers of mount %s",
				  call->arg, m->name);
		return;
	}
	if (m->current == (int)i && m->ours) {
		core_command_fail(call, 409, "mount %s is on %s already", m->name, call->arg);
		return;
	}
	if (storage_mount_move(m, (int)i, call->who, err, sizeof(err)) != CORE_OK) {
		core_command_fail(call, 409, "%s", err);
		return;
	}
	answer_mount(call, m);
}

static const struct core_command remount_command = {
	.name = "storage.remount",
	.doc = "Unmount a mount lazily and mount it again (target: the mount's name).",
	.run = cmd_remount,
};
CORE_COMMAND(remount_command);

static const struct core_command switch_command = {
	.name = "storage.switch",
	.doc = "Move an NFS mount to another of its servers (target: the mount's name).",
	.arg = "the server's address",
	.run = cmd_switch,
};
CORE_COMMAND(switch_command);

/* ---- storage.exports ------------------------------------------------------------------------ */

struct exports_query {
	struct core_command_call *call;	/* NULL once answered or cancelled */
	struct rpc_context *rpc;
	bool		 in_service;
	bool		 finished;	/* the context goes after nfs_service returns */
	struct core_io	 io;
	struct core_timer timer;
	char		 addr[48];
};

static void query_free(struct exports_query *q)
{
	core_io_stop(&q->io);
	core_timer_stop(&q->timer);
	if (q->rpc != NULL)
		rpc_destroy_context(q->rpc);	/* its callback, if pending, sees call NULL */
	q->rpc = NULL;
	core_loop_free_later(sm.loop, q, 1, sizeof(*q));
}

/* Ends the query: freed now, or once libnfs has returned to keel. */
static void query_end(struct exports_query *q)
{
	q->call = NULL;
	if (q->in_service)
		q->finished = true;
	else
		query_free(q);
}

/*
 * libnfs decodes the list into one unaligned arena, so every node is copied
 * out before it is read. One export's JSON goes in whole or not at all: when
 * the answer buffer is full the list ends there and says it was cut.
 */
static int export_json(struct core_buf *out, const void *node, unsigned n)
{
	struct exportnode e;
	struct groupnode g;
	const void *gp;
	int rc;

	memcpy(&e, node, sizeof(e));
	rc = core_buf_append(out, n ? ",{\"path\":" : "{\"path\":", n ? 9 : 8);
	rc |= core_json_str(out, e.ex_dir != NULL ? e.ex_dir : "");
	rc |= core_buf_append(out, ",\"groups\":[", 11);
	for (gp = e.ex_groups; gp != NULL; gp = g.gr_next) {
		memcpy(&g, gp, sizeof(g));
		if (gp != (const void *)e.ex_groups)
			rc |= core_buf_append(out, ",", 1);
		rc |= core_json_str(out, g.gr_name != NULL ? g.gr_name : "");
	}
	rc |= core_buf_append(out, "]}", 2);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

static void exports_done(struct rpc_context *rpc, int status, void *data, void *arg)
{
	struct exports_query *q = arg;
	struct core_command_call *call = q->call;
	struct exportnode e;
	const void *node;
	bool cut = false;
	unsigned n = 0;
	size_t len;

	(void)rpc;
	if (call == NULL)
		return;
	if (status != RPC_STATUS_SUCCESS) {
		core_command_fail(call, 502, "%s answers no export list: %s", q->addr,
				  status == RPC_STATUS_ERROR && data != NULL ? (const char *)data :
				  "the exchange failed (is it an NFSv3 server with rpcbind and mountd?)");
		query_end(q);
		return;
	}
	if (core_buf_append(&call->out, "{\"server\":", 10) != CORE_OK ||
	    core_json_str(&call->out, q->addr) != CORE_OK ||
	    core_buf_append(&call->out, ",\"exports\":[", 12) != CORE_OK) {
		core_command_fail(call, 500, "out of memory listing %s's exports", q->addr);
		query_end(q);
		return;
	}
	memcpy(&node, data, sizeof(node));
	for (; node != NULL; node = e.ex_next, n++) {
		memcpy(&e, node, sizeof(e));
		len = core_buf_len(&call->out);
		if (n == EXPORTS_MAX || export_json(&call->out, node, n) != CORE_OK ||
		    core_buf_len(&call->out) + EXPORTS_TAIL > EXPORTS_OUT_MAX) {
			core_buf_truncate(&call->out, len);
			cut = true;
			break;
		}
	}
	core_buf_printf(&call->out, "],\"cut\":%s}", cut ? "true" : "false");
	core_command_answer(call, 200);
	query_end(q);
}

static void query_watch(struct exports_query *q)
{
	int fd, ev;

	core_io_stop(&q->io);
	if (q->rpc == NULL || (fd = rpc_get_fd(q->rpc)) < 0)
		return;
	ev = rpc_which_events(q->rpc);
	q->io.fd = fd;
	(void)core_io_set(&q->io, (ev & POLLIN ? CORE_IO_READ : 0) |
			  (ev & POLLOUT ? CORE_IO_WRITE : 0));
}

static void query_on_io(struct core_io *io, unsigned revents)
{
	struct exports_query *q = io->data;
	int ev = (revents & CORE_IO_READ ? POLLIN : 0) | (revents & CORE_IO_WRITE ? POLLOUT : 0);
	int rc;

	q->in_service = true;
	rc = rpc_service(q->rpc, ev);
	if (rc < 0 && q->call != NULL) {
		const char *e = rpc_get_error(q->rpc);

		core_command_fail(q->call, 502, "%s: %s", q->addr, e != NULL && e[0] ? e :
				  "the connection failed");
		q->call = NULL;
	}
	q->in_service = false;
	if (q->finished || q->call == NULL) {
		query_free(q);
		return;
	}
	query_watch(q);
}

static void query_on_timer(struct core_timer *t)
{
	struct exports_query *q = t->data;

	if (q->call != NULL)
		core_command_fail(q->call, 504, "%s did not list its exports within %d ms",
				  q->addr, EXPORTS_TIMEOUT_MS);
	query_end(q);
}

static void query_cancel(struct core_command_call *call)
{
	struct exports_query *q = call->priv;

	query_end(q);
}

static void cmd_exports(struct core_command_call *call)
{
	struct exports_query *q;
	unsigned char a[16];

	if (inet_pton(AF_INET, call->arg, a) != 1 && inet_pton(AF_INET6, call->arg, a) != 1) {
		core_command_fail(call, 400, "\"%s\" is not an IP address", call->arg);
		return;
	}
	if ((q = core_loop_calloc(1, sizeof(*q))) == NULL || (q->rpc = rpc_init_context()) == NULL) {
		if (q != NULL)
			core_loop_free_later(sm.loop, q, 1, sizeof(*q));
		core_command_fail(call, 503, "out of memory");
		return;
	}
	q->call = call;
	snprintf(q->addr, sizeof(q->addr), "%.47s", call->arg);	/* an address: it fits */
	core_io_init(sm.loop, &q->io, -1, query_on_io, q);
	core_timer_init(sm.loop, &q->timer, query_on_timer, q);
	call->priv = q;
	call->cancel = query_cancel;
	core_timer_start(&q->timer, EXPORTS_TIMEOUT_MS);
	q->in_service = true;
	if (mount_getexports_async(q->rpc, q->addr, exports_done, q) != 0 && q->call != NULL) {
		const char *e = rpc_get_error(q->rpc);

		core_command_fail(call, 502, "%s: %s", q->addr, e != NULL && e[0] ? e :
				  "cannot ask it");
		query_end(q);
	}
	q->in_service = false;
	if (q->finished || q->call == NULL) {
		query_free(q);
		return;
	}
	query_watch(q);
}

static const struct core_command exports_command = {
	.name = "storage.exports",
	.doc = "List what an NFS server exports (MOUNT EXPORT, NFSv3), to pick one for a "
	       "new mount.",
	.arg = "the server's address",
	.run = cmd_exports,
};
CORE_COMMAND(exports_command);
