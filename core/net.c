/* Socket helpers; see net.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "list.h"
#include "log.h"
#include "loop.h"
#include "net.h"

int core_net_listen(const struct core_conf_addr *a, int backlog, char *err, size_t errlen)
{
	int fd, one = 1;

	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail;
	if (a->sa.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->sa, a->salen) == -1 ||
	    listen(fd, backlog) == -1)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s", a->text, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

const char *core_net_ntop(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *a = sa->sa_family == AF_INET6 ?
		(const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr :
		(const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;

	if (inet_ntop(sa->sa_family, a, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
	return buf;
}

void core_net_local_door(struct core_conf_addr *a)
{
	if (a->sa.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&a->sa;

		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (a->sa.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->sa;

		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			in6->sin6_addr = in6addr_loopback;
	}
}

/* ---- the accept path ----------------------------------------------------------------- */

const char *core_net_accept_state_str(enum core_net_accept_state s)
{
	switch (s) {
	case CORE_NET_ACCEPTING:	return "accepting";
	case CORE_NET_PAUSED_LIMIT:	return "paused at the connection limit";
	case CORE_NET_PAUSED_FDS:	return "paused: out of descriptors";
	case CORE_NET_STOPPED:		return "stopped";
	}
	return "?";
}

static void accept_watch(struct core_net_acceptor *a, bool on)
{
	struct core_list *it, *tmp;

	core_list_each(it, tmp, &a->listeners) {
		struct core_net_listener *ln = core_list_elem(it, struct core_net_listener, link);

		if (core_io_set(&ln->io, on ? CORE_IO_READ : 0) != CORE_OK)
			core_log_error(a->who, "%s: cannot %s watching it: %s", ln->name,
				       on ? "start" : "stop", strerror(errno));
	}
}

static void accept_set_state(struct core_net_acceptor *a, enum core_net_accept_state s)
{
	a->state = s;
	accept_watch(a, s == CORE_NET_ACCEPTING);
}

static bool accept_full(const struct core_net_acceptor *a)
{
	return a->max != 0 && a->nconns != NULL && *a->nconns >= a->max;
}

static void accept_on_io(struct core_io *io, unsigned revents);

/* Tries every listener now: an accept either works, finds the queue empty
 * (either ends the pause), or fails the same way (it goes on, silently). */
static void accept_on_retry(struct core_timer *t)
{
	struct core_net_acceptor *a = t->data;
	struct core_list *it, *tmp;

	if (a->state != CORE_NET_PAUSED_FDS)
		return;
	a->retries++;
	accept_set_state(a, CORE_NET_ACCEPTING);
	core_list_each(it, tmp, &a->listeners) {
		struct core_net_listener *ln = core_list_elem(it, struct core_net_listener, link);

		if (a->state != CORE_NET_ACCEPTING)
			break;
		accept_on_io(&ln->io, CORE_IO_READ);
	}
}

/* Out of descriptors (or memory): stop watching until the timer, so a
 * socket that stays readable does not spin the loop. */
static void accept_pause_fds(struct core_net_acceptor *a, const struct core_net_listener *ln,
			     int e)
{
	if (a->retries == 0) {
		a->fd_pauses++;
		a->paused_at = core_loop_now(a->loop);
		core_log_error(a->who, "%s: accept: %s; accepting paused, retried every %u ms",
			       ln->name, strerror(e), CORE_NET_RETRY_MS);
	}
	accept_set_state(a, CORE_NET_PAUSED_FDS);
	if (core_timer_start(&a->retry, CORE_NET_RETRY_MS) != CORE_OK)
		accept_set_state(a, CORE_NET_ACCEPTING);	/* spinning beats deafness */
}

static void accept_on_io(struct core_io *io, unsigned revents)
{
	struct core_net_listener *ln = io->data;
	struct core_net_acceptor *a = ln->acc;
	unsigned i;

	(void)revents;
	for (i = 0; i < CORE_NET_ACCEPT_BATCH && a->state == CORE_NET_ACCEPTING; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd;

		if (accept_full(a)) {
			uint64_t now = core_loop_now(a->loop);

			/* Under sustained load every close lets one more in and
			 * the limit is hit again: say so once a minute. */
			if (a->limit_pauses++ == 0 || now - a->limit_logged >= 60000) {
				core_log_warn(a->who, "%s: %u connections, the limit: accepting "
					      "paused (%llu time%s)", ln->name, *a->nconns,
					      (unsigned long long)a->limit_pauses,
					      a->limit_pauses == 1 ? "" : "s");
				a->limit_logged = now;
			}
			accept_set_state(a, CORE_NET_PAUSED_LIMIT);
			return;
		}
		fd = accept4(ln->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				break;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				accept_pause_fds(a, ln, errno);
				return;
			}
			core_log_error(a->who, "%s: accept: %s", ln->name, strerror(errno));
			break;
		}
		if (a->retries > 0) {
			core_log_info(a->who, "%s: accepting again after %llu ms", ln->name,
				      (unsigned long long)(core_loop_now(a->loop) - a->paused_at));
			a->retries = 0;
		}
		a->accepts++;
		a->accepted(ln, fd, &ss, sl);
		if (a->state != CORE_NET_ACCEPTING)	/* the callback stopped us */
			return;
	}
	/* Descriptors came back (the accept said EAGAIN): the pause is over. */
	if (a->retries > 0 && a->state == CORE_NET_ACCEPTING) {
		core_log_info(a->who, "%s: accepting again after %llu ms", ln->name,
			      (unsigned long long)(core_loop_now(a->loop) - a->paused_at));
		a->retries = 0;
	}
}

void core_net_accept_init(struct core_net_acceptor *a, struct core_loop *loop, const char *who,
			  unsigned max, const unsigned *nconns,
			  void (*accepted)(struct core_net_listener *, int,
					   const struct sockaddr_storage *, socklen_t))
{
	memset(a, 0, sizeof(*a));
	a->loop = loop;
	a->who = who;
	a->max = max;
	a->nconns = nconns;
	a->accepted = accepted;
	a->state = CORE_NET_ACCEPTING;
	core_list_init(&a->listeners);
	core_timer_init(loop, &a->retry, accept_on_retry, a);
}

void core_net_accept_add(struct core_net_acceptor *a, struct core_net_listener *ln, int fd,
			 const char *name)
{
	ln->fd = fd;
	ln->acc = a;
	snprintf(ln->name, sizeof(ln->name), "%s", name);
	core_io_init(a->loop, &ln->io, fd, accept_on_io, ln);
	core_list_add_tail(&a->listeners, &ln->link);
	if (a->state == CORE_NET_ACCEPTING)
		core_io_set(&ln->io, CORE_IO_READ);
}

void core_net_accept_del(struct core_net_listener *ln)
{
	if (ln->acc == NULL)
		return;
	core_io_stop(&ln->io);
	core_list_del(&ln->link);
	ln->acc = NULL;
}

void core_net_accept_limit(struct core_net_acceptor *a, unsigned max)
{
	a->max = max;
	core_net_accept_wake(a);
}

void core_net_accept_wake(struct core_net_acceptor *a)
{
	if (a->state == CORE_NET_PAUSED_LIMIT && !accept_full(a))
		accept_set_state(a, CORE_NET_ACCEPTING);
}

void core_net_accept_stop(struct core_net_acceptor *a)
{
	core_timer_stop(&a->retry);
	a->retries = 0;
	accept_set_state(a, CORE_NET_STOPPED);
}

void core_net_accept_start(struct core_net_acceptor *a)
{
	if (a->state == CORE_NET_STOPPED)
		accept_set_state(a, CORE_NET_ACCEPTING);
}
