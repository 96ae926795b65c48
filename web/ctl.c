/* The control socket, STATE_DIR/keel.sock: `keel status` and `keel reload`
 * ask the running master through it. Its mode (0600, in the 0700 state
 * directory) is its authentication: root, or whoever runs keel. One line
 * in ("status" or "reload"), one answer out, then the connection closes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api.h"
#include "core/buf.h"
#include "core/conf.h"
#include "core/control.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "core/settings.h"

#define CTL_MAX_CONNS	8
#define CTL_LINE_MAX	64
#define CTL_DEADLINE_MS	5000

enum ctl_state {
	CTL_ST_READING = 0,		/* waiting for the command line */
	CTL_ST_WRITING,			/* sending the answer */
	CTL_ST_FREE			/* slot unused */
};

struct ctl_conn {
	enum ctl_state	 state;
	int		 fd;
	struct core_io	 io;
	struct core_timer deadline;
	char		 line[CTL_LINE_MAX];
	size_t		 len;
	struct core_buf	 out;
};

static struct {
	struct core_loop *loop;
	int		 fd;
	struct core_io	 io;
	char		 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ctl_conn	 conns[CTL_MAX_CONNS];
} ctl = { .fd = -1 };

static const char *ctl_state_str(enum ctl_state s)
{
	switch (s) {
	case CTL_ST_READING:	return "reading";
	case CTL_ST_WRITING:	return "writing";
	case CTL_ST_FREE:	return "free";
	}
	return "?";
}

static void ctl_close(struct ctl_conn *c)
{
	core_timer_stop(&c->deadline);
	core_io_forget(&c->io);
	close(c->fd);
	c->fd = -1;
	core_buf_free(&c->out);
	c->state = CTL_ST_FREE;
}

static void ctl_answer(struct ctl_conn *c)
{
	char err[512];

	if (strcmp(c->line, "status") == 0) {
		if (web_api_status_json(&c->out) != CORE_OK) {
			core_buf_truncate(&c->out, 0);
			core_buf_printf(&c->out, "{\"error\":\"status too large\"}\n");
		}
	} else if (strcmp(c->line, "reload") == 0) {
		core_log_info("web", "control socket: reload asked");
		if (core_control_reload(err, sizeof(err)) == CORE_OK)
			core_buf_printf(&c->out, "ok: generation %u\n",
					core_control_conf()->generation);
		else
			core_buf_printf(&c->out, "error: %s\n", err);
	} else
		core_buf_printf(&c->out, "error: unknown command \"%.32s\" (status, reload)\n",
				c->line);
	c->state = CTL_ST_WRITING;
	core_io_set(&c->io, CORE_IO_WRITE);
}

static void ctl_on_io(struct core_io *io, unsigned revents)
{
	struct ctl_conn *c = io->data;
	ssize_t n;

	(void)revents;
	if (c->state == CTL_ST_READING) {
		n = read(c->fd, c->line + c->len, sizeof(c->line) - 1 - c->len);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			ctl_close(c);
			return;
		}
		c->len += (size_t)n;
		c->line[c->len] = '\0';
		if (strchr(c->line, '\n') == NULL) {
			if (c->len == sizeof(c->line) - 1)	/* no command is that long */
				ctl_close(c);
			return;
		}
		c->line[strcspn(c->line, "\r\n")] = '\0';
		ctl_answer(c);
		return;
	}
	n = core_buf_write(&c->out, c->fd);
	if (n == CORE_AGAIN)
		return;
	if (n < 0 || core_buf_len(&c->out) == 0)
		ctl_close(c);
}

static void ctl_on_deadline(struct core_timer *t)
{
	struct ctl_conn *c = t->data;

	core_log_warn("web", "control socket: a client %s for %d ms: closed",
		      ctl_state_str(c->state), CTL_DEADLINE_MS);
	ctl_close(c);
}

static void ctl_on_accept(struct core_io *io, unsigned revents)
{
	struct ctl_conn *c = NULL;
	unsigned i;
	int fd;

	(void)io;
	(void)revents;
	while ((fd = accept4(ctl.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
		for (i = 0, c = NULL; i < CTL_MAX_CONNS && c == NULL; i++)
			if (ctl.conns[i].state == CTL_ST_FREE)
				c = &ctl.conns[i];
		if (c == NULL) {		/* a few at once is plenty */
			close(fd);
			continue;
		}
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->state = CTL_ST_READING;
		core_buf_init(&c->out, 8 << 20);
		core_io_init(ctl.loop, &c->io, fd, ctl_on_io, c);
		core_timer_init(ctl.loop, &c->deadline, ctl_on_deadline, c);
		core_timer_start(&c->deadline, CTL_DEADLINE_MS);
		core_io_set(&c->io, CORE_IO_READ);
	}
}

static int ctl_start(struct core_loop *loop, const struct core_conf *conf, char *err,
		     size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned i;
	int n;

	ctl.loop = loop;
	for (i = 0; i < CTL_MAX_CONNS; i++)
		ctl.conns[i].state = CTL_ST_FREE;
	n = snprintf(ctl.path, sizeof(ctl.path), "%s/keel.sock", k->state_dir);
	if (n < 0 || (size_t)n >= sizeof(ctl.path)) {
		/* Not fatal: keel runs; `keel status` says it cannot reach it. */
		core_log_warn("web", "control socket: %s/keel.sock is too long a path for a UNIX "
			      "socket: keel status and keel reload fall back to signals",
			      k->state_dir);
		ctl.path[0] = '\0';
		return CORE_OK;
	}
	memcpy(sa.sun_path, ctl.path, (size_t)n + 1);
	unlink(ctl.path);		/* a stale one of an earlier run */
	ctl.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl.fd == -1 || bind(ctl.fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    chmod(ctl.path, 0600) == -1 || listen(ctl.fd, CTL_MAX_CONNS) == -1) {
		snprintf(err, errlen, "control socket %s: %s", ctl.path, strerror(errno));
		if (ctl.fd != -1)
			close(ctl.fd);
		ctl.fd = -1;
		return CORE_ERROR;
	}
	core_io_init(loop, &ctl.io, ctl.fd, ctl_on_accept, NULL);
	core_io_set(&ctl.io, CORE_IO_READ);
	return CORE_OK;
}

static void ctl_stop(void)
{
	unsigned i;

	for (i = 0; i < CTL_MAX_CONNS; i++)
		if (ctl.conns[i].state != CTL_ST_FREE)
			ctl_close(&ctl.conns[i]);
	if (ctl.fd != -1) {
		core_io_forget(&ctl.io);
		close(ctl.fd);
		ctl.fd = -1;
		unlink(ctl.path);
	}
}

static const struct core_module ctl_module = {
	.name = "control",
	.order = 91,
	.start = ctl_start,
	.stop = ctl_stop,
};
CORE_MODULE(ctl_module);
