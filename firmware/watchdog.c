/*
 * The hardware watchdog (watchdog.device), in the master.
 *
 * Opened at start (which arms it), its timeout set and read back (drivers
 * round or cap it), and pinged only while keel's own checks pass:
 *
 *   - the master's loop runs: the checks are timers on it;
 *   - the front door answers: a request to the first listener, by
 *     loopback, with the Host CORE_WATCHDOG_HOST, which a worker answers
 *     itself (204) without a route or a log line. A ping is sent when such
 *     an answer comes, never on a timer alone, so workers that stop
 *     answering while the master runs let the hardware reset the box
 *     within its timeout;
 *   - state_dir takes a write: a small file written and synced every 30 s;
 *   - no process has failed while supervise.escalation is reboot
 *     (core_sup_escalated): then the pings stop and the hardware resets
 *     the box, which is that escalation.
 *
 * Without front_door (or without a listener) a timer tick is the ping.
 * When a check fails the pings stop, and say why in the log once. A clean
 * stop writes the magic 'V' and closes: the watchdog is disarmed. A crash
 * closes without it and the box resets. The boot status says whether the
 * last reset was the watchdog's: logged, in the status, and raised as a
 * condition (an alert).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/core.h"
#include "core/event.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "core/net.h"
#include "core/probe.h"
#include "core/settings.h"
#include "core/status.h"
#include "core/supervise.h"

/* The kernel's watchdog API (linux/watchdog.h, a stable ABI; musl's
 * toolchain has no kernel headers). */
struct wd_info {
	uint32_t	options;
	uint32_t	firmware_version;
	uint8_t		identity[32];
};
#define WDIOC_GETSUPPORT	_IOR('W', 0, struct wd_info)
#define WDIOC_GETBOOTSTATUS	_IOR('W', 2, int)
#define WDIOC_KEEPALIVE		_IOR('W', 5, int)
#define WDIOC_SETTIMEOUT	_IOWR('W', 6, int)
#define WDIOC_GETTIMEOUT	_IOR('W', 7, int)
#define WDIOF_CARDRESET		0x0020	/* the last reboot was the watchdog's */

#define WD_WRITE_EVERY_MS	30000	/* state_dir's write check */
#define WD_TICK_MAX_MS		1000	/* front door asked at least this often */

static struct {
	struct core_loop *loop;
	int		 fd;
	char		 device[256];
	char		 identity[40];
	char		 state_file[300];
	unsigned	 timeout_s;	/* what the hardware took */
	uint64_t	 tick;		/* ms between checks */
	bool		 front_door;
	bool		 have_door;
	struct core_conf_addr door;
	char		 door_text[64];	/* what is asked: "127.0.0.1:80" */
	char		 request[160];
	struct core_probe probe;
	struct core_timer timer;
	bool		 write_ok;
	uint64_t	 write_at;	/* monotonic ms of the last write check */
	bool		 pinging;	/* the last check passed */
	char		 why[400];	/* why not, when not */
	uint64_t	 pings, last_ping;	/* count, monotonic ms */
	bool		 reset_by_watchdog;	/* the boot status said so */
	bool		 configured;	/* a device was named */
} wd = { .fd = -1 };

/* The named device is not to be had: said once, raised, and keel runs on. */
static void wd_unusable(const char *fmt, const char *detail)
{
	char msg[400];

	snprintf(msg, sizeof(msg), fmt, wd.device, detail);
	snprintf(wd.why, sizeof(wd.why), "%s", msg);
	core_log_error("watchdog", "watchdog %s; keel runs without a watchdog", msg);
	core_event_raise("watchdog", "watchdog", "%s", msg);
}

static void wd_ping(void)
{
	int dummy = 0;

	if (ioctl(wd.fd, WDIOC_KEEPALIVE, &dummy) == -1 && write(wd.fd, "\0", 1) != 1) {
		core_log_error("watchdog", "watchdog %s: ping failed: %s", wd.device,
			       strerror(errno));
		return;
	}
	wd.pings++;
	wd.last_ping = core_loop_now(wd.loop);
}

/* A check passed (ok) or failed for why: the ping, or the log line that
 * says the pings stopped. */
static void wd_judge(bool ok, const char *why)
{
	if (ok && !wd.write_ok) {
		ok = false;
		why = wd.why;	/* set by the write check */
	}
	if (ok) {
		if (!wd.pinging)
			core_log_info("watchdog", "watchdog %s: pinging", wd.device);
		wd.pinging = true;
		wd.why[0] = '\0';
		wd_ping();
		return;
	}
	if (wd.pinging || strcmp(wd.why, why) != 0)
		core_log_warn("watchdog", "watchdog %s: not pinging: %s; the box resets %u s "
			      "after the last ping unless this passes", wd.device, why, wd.timeout_s);
	wd.pinging = false;
	if (why != wd.why)
		snprintf(wd.why, sizeof(wd.why), "%s", why);
}

/* state_dir takes a small write, synced. */
static void wd_write_check(void)
{
	char line[64];
	int fd, n, e = 0;

	wd.write_at = core_loop_now(wd.loop);
	n = snprintf(line, sizeof(line), "keel watchdog check at %llu\n",
		     (unsigned long long)core_clock_wall_ms());
	if ((fd = open(wd.state_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1)
		e = errno;
	else {
		if (write(fd, line, (size_t)n) != n || fsync(fd) == -1)
			e = errno ? errno : EIO;
		if (close(fd) == -1 && e == 0)
			e = errno;
	}
	wd.write_ok = e == 0;
	if (e != 0)
		snprintf(wd.why, sizeof(wd.why), "%s takes no write: %s", wd.state_file,
			 strerror(e));
}

static void wd_door_done(struct core_probe *p, bool ok, uint64_t ms, unsigned status,
			 const char *why)
{
	char msg[160];

	(void)p;
	(void)ms;
	(void)ok;			/* any status is an answer: the proxy runs */
	if (core_sup_escalated() != NULL)
		return;			/* asked before: the timer says why not */
	if (status != 0) {
		wd_judge(true, "");
		return;
	}
	snprintf(msg, sizeof(msg), "the front door %s did not answer: %s", wd.door_text,
		 why != NULL && why[0] ? why : "no answer");
	wd_judge(false, msg);
}

static void wd_on_timer(struct core_timer *t)
{
	uint64_t now = core_loop_now(wd.loop);
	const char *esc;

	if (now - wd.write_at >= WD_WRITE_EVERY_MS)
		wd_write_check();
	if ((esc = core_sup_escalated()) != NULL) {
		char msg[300];

		snprintf(msg, sizeof(msg), "%s, and supervise.escalation is reboot", esc);
		wd_judge(false, msg);
	} else if (wd.front_door && wd.have_door) {
		if (!core_probe_busy(&wd.probe))
			core_probe_start(&wd.probe);
	} else
		wd_judge(true, "");
	core_timer_start(t, wd.tick);
}

/* The first listener, as a client reaches it (a wildcard by loopback). */
static void wd_door(const struct keel_conf *k)
{
	const struct keel_listener_conf *lc = k->listeners.v;
	char host[INET6_ADDRSTRLEN];
	bool v4;

	wd.have_door = false;
	if (k->listeners.n == 0 || lc[0].tls.certificates.n > 0)
		return;		/* no plain listener to ask: the tick is the ping */
	wd.door = lc[0].address;
	core_net_local_door(&wd.door);
	v4 = wd.door.sa.ss_family == AF_INET;
	core_net_ntop((const struct sockaddr *)&wd.door.sa, host, sizeof(host));
	snprintf(wd.door_text, sizeof(wd.door_text), v4 ? "%s:%u" : "[%s]:%u", host,
		 ntohs(v4 ? ((const struct sockaddr_in *)&wd.door.sa)->sin_port :
		       ((const struct sockaddr_in6 *)&wd.door.sa)->sin6_port));
	memcpy(&wd.probe.sa, &wd.door.sa, sizeof(wd.probe.sa));
	wd.probe.salen = wd.door.salen;
	wd.have_door = true;
}

static int wd_start(struct core_loop *loop, const struct core_conf *conf, char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);
	const struct keel_watchdog_conf *c = &k->watchdog;
	struct wd_info info;
	int want = (int)(c->timeout / 1000), got = 0, flags = 0;

	(void)err;
	(void)errlen;
	if (c->device[0] == '\0')
		return CORE_OK;
	wd.loop = loop;
	wd.configured = true;
	snprintf(wd.device, sizeof(wd.device), "%s", c->device);
	snprintf(wd.state_file, sizeof(wd.state_file), "%s/watchdog.check", k->state_dir);
	if ((wd.fd = open(wd.device, O_WRONLY | O_CLOEXEC)) == -1) {
		wd_unusable("%s cannot be opened: %s", strerror(errno));
		return CORE_OK;
	}
	if (ioctl(wd.fd, WDIOC_GETSUPPORT, &info) == -1) {
		wd_unusable("%s is not a watchdog (it does not answer WDIOC_GETSUPPORT: %s)",
			    strerror(errno));
		close(wd.fd);
		wd.fd = -1;
		return CORE_OK;
	}
	/* Armed from here: the first ping comes before anything can fail. */
	wd_ping();
	snprintf(wd.identity, sizeof(wd.identity), "%.32s", (const char *)info.identity);
	if (ioctl(wd.fd, WDIOC_SETTIMEOUT, &want) == -1)
		core_log_warn("watchdog", "watchdog %s refuses a timeout of %d s (%s): it keeps "
			      "its own", wd.device, (int)(c->timeout / 1000), strerror(errno));
	if (ioctl(wd.fd, WDIOC_GETTIMEOUT, &got) == -1 || got <= 0)
		got = (int)(c->timeout / 1000);
	wd.timeout_s = (unsigned)got;
	wd.tick = (uint64_t)got * 1000 / 4;
	if (wd.tick > WD_TICK_MAX_MS)
		wd.tick = WD_TICK_MAX_MS;
	if (ioctl(wd.fd, WDIOC_GETBOOTSTATUS, &flags) == 0 && (flags & WDIOF_CARDRESET)) {
		wd.reset_by_watchdog = true;
		core_log_warn("watchdog", "watchdog %s: the last reset was by the watchdog",
			      wd.device);
		core_event_raise("watchdog", "box", "the last reset was by the watchdog %s",
				 wd.device);
	}
	core_log_info("watchdog", "watchdog %s (%s) armed: timeout %u s (asked %d s), pinged "
		      "while the master runs%s and %s takes a write", wd.device,
		      wd.identity[0] ? wd.identity : "no identity", wd.timeout_s,
		      (int)(c->timeout / 1000), c->front_door ? ", the front door answers" : "",
		      k->state_dir);
	wd.front_door = c->front_door;
	/* The proxy answers this Host itself (204): no route, no log line. */
	snprintf(wd.request, sizeof(wd.request), "GET / HTTP/1.1\r\nHost: " CORE_WATCHDOG_HOST
		 "\r\nUser-Agent: keel-watchdog\r\nConnection: close\r\n\r\n");
	core_probe_init(loop, &wd.probe);
	wd.probe.request = wd.request;
	wd.probe.reqlen = strlen(wd.request);
	snprintf(wd.probe.status, sizeof(wd.probe.status), "100-599");
	wd.probe.timeout = wd.tick;
	wd.probe.done = wd_door_done;
	wd_door(k);
	wd.pinging = true;
	wd_write_check();
	core_timer_init(loop, &wd.timer, wd_on_timer, NULL);
	core_timer_start(&wd.timer, 0);
	return CORE_OK;
}

static int wd_reload(const struct core_conf *conf, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	if (wd.fd != -1)
		wd_door(core_settings_of(conf));	/* the listeners may have changed */
	return CORE_OK;
}

/* A clean stop: the magic close disarms it. */
static void wd_stop(void)
{
	if (wd.fd == -1)
		return;
	core_timer_stop(&wd.timer);
	core_probe_cancel(&wd.probe);
	if (write(wd.fd, "V", 1) != 1)
		core_log_warn("watchdog", "watchdog %s: the magic close failed: %s", wd.device,
			      strerror(errno));
	close(wd.fd);
	wd.fd = -1;
	core_log_info("watchdog", "watchdog %s disarmed (a clean stop)", wd.device);
}

static const struct core_module watchdog_module = {
	.name = "watchdog",
	.order = 90,		/* starts last, stops first */
	.start = wd_start,
	.reload = wd_reload,
	.stop = wd_stop,
};
CORE_MODULE(watchdog_module);

/* ---- status --------------------------------------------------------------------------------- */

static int wd_status_json(struct core_buf *out)
{
	int rc;

	if (!wd.configured)
		return core_buf_append(out, "null", 4);
	rc = core_buf_append(out, "{\"device\":", 10);
	rc |= core_json_str(out, wd.device);
	rc |= core_buf_append(out, ",\"identity\":", 12);
	rc |= core_json_str(out, wd.identity);
	rc |= core_buf_printf(out, ",\"armed\":%s,\"timeout_s\":%u,\"pinging\":%s,\"pings\":%llu,"
			      "\"last_ping_ms_ago\":%llu,\"last_reset_by_watchdog\":%s,\"why\":",
			      wd.fd != -1 ? "true" : "false", wd.timeout_s,
			      wd.pinging ? "true" : "false", (unsigned long long)wd.pings,
			      wd.fd != -1 ? (unsigned long long)(core_loop_now(wd.loop) -
							       wd.last_ping) : 0ULL,
			      wd.reset_by_watchdog ? "true" : "false");
	rc |= core_json_str(out, wd.why);
	rc |= core_buf_append(out, "}", 1);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

static int wd_status_metrics(struct core_buf *out)
{
	if (wd.fd == -1)
		return CORE_OK;
	return core_buf_printf(out, "# HELP keel_watchdog_pinging Whether keel pings the hardware "
			       "watchdog (its checks pass).\n# TYPE keel_watchdog_pinging gauge\n"
			       "keel_watchdog_pinging %d\n# HELP keel_watchdog_pings_total Pings "
			       "sent to the hardware watchdog.\n# TYPE keel_watchdog_pings_total "
			       "counter\nkeel_watchdog_pings_total %llu\n", wd.pinging ? 1 : 0,
			       (unsigned long long)wd.pings);
}

static const struct core_status_provider watchdog_status = {
	.name = "watchdog",
	.order = 90,
	.json = wd_status_json,
	.metrics = wd_status_metrics,
};
CORE_STATUS_PROVIDER(watchdog_status);
