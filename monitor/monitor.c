/* Synthetic monitoring and alerts, in the master. Monitors probe URLs on a
 * schedule: one per route through keel's front door, one per upstream
 * server, and those an operator adds. Results go to SQLite (history.c).
 * A monitor with `failures` failures within `window` opens an incident,
 * which is notified once and closed, with a recovery notice, after
 * `recover` passes in a row. Conditions other parts raise through core's
 * event seam (a server DOWN by health checks, the Redis master lost) are
 * incidents too: this part is their sink. Notifications go to webhooks
 * (JSON, HMAC-signed) and e-mail, with retries and a cap per hour against
 * storms. What it knows reaches the admin API and /metrics as the
 * "monitors" status provider. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/md.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/event.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "core/net.h"
#include "core/settings.h"
#include "core/probe.h"
#include "core/state.h"
#include "core/status.h"
#include "core/tls.h"
#include "history.h"
#include "mail.h"

#define MON_MAX_FAILS		100	/* alerts.failures' bound */
#define MON_PRUNE_MS		(10 * 60 * 1000)
#define HOOK_TRIES		5	/* then the notification is dropped */
#define HOOK_TIMEOUT_MS		5000

struct monitor {
	char		 name[160];
	char		 request[1024];
	uint64_t	 interval;
	struct core_probe	 probe;
	struct core_timer next;
	uint64_t	 started;

	/* alerting */
	uint64_t	 fails[MON_MAX_FAILS];	/* ring of failure times */
	unsigned	 nfails, head;
	unsigned	 passes;		/* in a row, while an incident is open */
	bool		 open;			/* an incident is open */
	bool		 up;			/* the last probe passed */
	uint64_t	 checks, failed;
	uint64_t	 last_ms;		/* the last probe's time taken */
	uint64_t	 last_wall;		/* and when it ran (wall ms) */
	char		 last_error[96];
};

/* The latest notifications, for the UI. */
#define MON_RECENT	50

struct recent {
	uint64_t	 wall;
	char		 event[12];
	char		 subject[160];
	char		 detail[300];
};

/* A notification on its way to one webhook. */
struct delivery {
	struct core_list link;		/* in mon.deliveries */
	struct core_probe	 probe;
	struct core_timer retry;
	unsigned	 tries;
	char		 url[700];	/* its own copy: a reload replaces mon.hooks */
	char		*request;	/* the whole POST */
	size_t		 len;
};

struct hook {
	struct core_conf_url url;
	char		 secret[257];
};

static struct {
	struct core_loop *loop;
	struct monitor	*mons;
	unsigned	 nmons, capmons;	/* in use, allocated */
	struct monitor_history *db;
	struct core_timer prune;
	char		 node[64];

	/* alert settings */
	unsigned	 failures, recover, max_per_hour;
	uint64_t	 window;
	struct hook	*hooks;
	size_t		 nhooks;
	struct core_list deliveries;	/* in flight or waiting to retry */
	uint64_t	 hour_start;
	unsigned	 sent_this_hour, suppressed;

	const struct keel_email_conf *email;	/* in the running config; NULL: none */
	uint64_t	 alerts, recoveries, delivery_failures;
	bool		 db_error_logged;

	struct recent	 recent[MON_RECENT];	/* a ring */
	unsigned	 nrecent, recent_head;
} mon = { .deliveries = { &mon.deliveries, &mon.deliveries } };

/* ---- webhooks ---------------------------------------------------------------------- */

static size_t json_escape(char *out, size_t room, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *s != '\0' && n + 7 < room; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			memcpy(out + n, "\\u00", 4);
			n += 4;
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		} else
			out[n++] = (char)c;
	}
	out[n] = '\0';
	return n;
}

static void delivery_free(struct delivery *d)
{
	core_list_del(&d->link);
	core_probe_cancel(&d->probe);
	core_timer_stop(&d->retry);
	free(d->request);
	free(d);
}

static void delivery_on_retry(struct core_timer *t)
{
	struct delivery *d = t->data;

	core_probe_start(&d->probe);
}

static void delivery_done(struct core_probe *p, bool ok, uint64_t ms, unsigned status,
			  const char *why)
{
	struct delivery *d = p->data;

	(void)ms;
	(void)status;
	if (ok) {
		core_log_info("alert", "webhook %s: delivered", d->url);
		delivery_free(d);
		return;
	}
	if (++d->tries >= HOOK_TRIES) {
		mon.delivery_failures++;
		core_log_error("alert", "webhook %s: not delivered after %u tries: %s", d->url,
			       d->tries, why);
		delivery_free(d);
		return;
	}
	core_log_warn("alert", "webhook %s: try %u failed (%s); again in %u s", d->url,
		      d->tries, why, 1u << (d->tries - 1));
	core_timer_start(&d->retry, 1000ULL << (d->tries - 1));
}

static void hook_send(size_t i, const char *body, size_t blen)
{
	const struct hook *h = &mon.hooks[i];
	unsigned char mac[32];
	char sig[96] = "";
	struct delivery *d;
	size_t cap = blen + 1024;
	int n;

	if (h->secret[0] != '\0') {
		static const char hex[] = "0123456789abcdef";
		unsigned k;

		mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
				(const unsigned char *)h->secret, strlen(h->secret),
				(const unsigned char *)body, blen, mac);
		memcpy(sig, "X-Keel-Signature: sha256=", 25);
		for (k = 0; k < 32; k++) {
			sig[25 + 2 * k] = hex[mac[k] >> 4];
			sig[26 + 2 * k] = hex[mac[k] & 15];
		}
		memcpy(sig + 25 + 64, "\r\n", 3);
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL || (d->request = malloc(cap)) == NULL) {
		free(d);
		core_log_error("alert", "webhook %s: out of memory", h->url.text);
		return;
	}
	n = snprintf(d->request, cap,
		     "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: keel-alert\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n%s"
		     "Connection: close\r\n\r\n%s",
		     h->url.path, h->url.host, blen, sig, body);
	d->len = (size_t)n;
	snprintf(d->url, sizeof(d->url), "%s", h->url.text);
	core_probe_init(mon.loop, &d->probe);
	memcpy(&d->probe.sa, &h->url.addr.sa, sizeof(d->probe.sa));
	d->probe.salen = h->url.addr.salen;
	d->probe.request = d->request;
	d->probe.reqlen = d->len;
	snprintf(d->probe.status, sizeof(d->probe.status), "200-299");
	d->probe.timeout = HOOK_TIMEOUT_MS;
	d->probe.done = delivery_done;
	d->probe.data = d;
	core_timer_init(mon.loop, &d->retry, delivery_on_retry, d);
	core_list_add(&mon.deliveries, &d->link);
	core_probe_start(&d->probe);
}

/* One notification, to every webhook, within the hourly cap. */
static void notify(const char *event, const char *subject, const char *detail)
{
	uint64_t now = core_loop_now(mon.loop);
	char body[1400], esub[400], edet[600], ts[32];
	size_t i;
	int n;

	struct recent *rc = &mon.recent[mon.recent_head];

	if (strcmp(event, "alert") == 0)
		mon.alerts++;
	else if (strcmp(event, "recovery") == 0)
		mon.recoveries++;
	core_log_warn("alert", "%s: %s: %s", event, subject, detail);
	rc->wall = core_clock_wall_ms();
	snprintf(rc->event, sizeof(rc->event), "%s", event);
	snprintf(rc->subject, sizeof(rc->subject), "%s", subject);
	snprintf(rc->detail, sizeof(rc->detail), "%s", detail);
	mon.recent_head = (mon.recent_head + 1) % MON_RECENT;
	if (mon.nrecent < MON_RECENT)
		mon.nrecent++;
	if (now - mon.hour_start >= 3600000) {
		if (mon.suppressed > 0)
			core_log_warn("alert", "%u notification%s not sent in the last hour "
				      "(max_per_hour)", mon.suppressed, mon.suppressed == 1 ? "" : "s");
		mon.hour_start = now;
		mon.sent_this_hour = 0;
		mon.suppressed = 0;
	}
	if (mon.sent_this_hour >= mon.max_per_hour) {
		mon.suppressed++;
		return;
	}
	mon.sent_this_hour++;
	json_escape(esub, sizeof(esub), subject);
	json_escape(edet, sizeof(edet), detail);
	n = snprintf(body, sizeof(body),
		     "{\"event\":\"%s\",\"node\":\"%s\",\"subject\":\"%s\",\"detail\":\"%s\","
		     "\"time\":\"%s\"}", event, mon.node, esub, edet,
		     core_clock_format_utc(core_clock_wall_ms(), ts, sizeof(ts)));
	for (i = 0; i < mon.nhooks; i++)
		hook_send(i, body, (size_t)n);
	if (mon.email != NULL) {
		char subj[300], text[800], ts2[32];

		snprintf(subj, sizeof(subj), "%s: %s", !strcmp(event, "alert") ? "ALERT" :
			 !strcmp(event, "recovery") ? "RECOVERED" : "TEST", subject);
		snprintf(text, sizeof(text), "%s\n\n%s\n\nnode: %s\ntime: %s\n", subject, detail,
			 mon.node, core_clock_format_utc(core_clock_wall_ms(), ts2, sizeof(ts2)));
		monitor_mail_send(mon.loop, mon.email, mon.node, subj, text);
	}
}

/* ---- incidents ------------------------------------------------------------------------ */

static void monitor_judge(struct monitor *m, bool ok, const char *why, uint64_t now)
{
	char detail[300];
	unsigned i, recent = 0;

	m->up = ok;
	if (ok) {
		if (m->open && ++m->passes >= mon.recover) {
			m->open = false;
			m->nfails = 0;
			snprintf(detail, sizeof(detail), "%u probes passed in a row", m->passes);
			notify("recovery", m->name, detail);
		}
		return;
	}
	m->passes = 0;
	m->fails[m->head] = now;
	m->head = (m->head + 1) % MON_MAX_FAILS;
	if (m->nfails < MON_MAX_FAILS)
		m->nfails++;
	for (i = 0; i < m->nfails; i++)
		if (now - m->fails[i] < mon.window)
			recent++;
	if (!m->open && recent >= mon.failures) {
		m->open = true;
		snprintf(detail, sizeof(detail), "%u failure%s within %llu min; last: %s", recent,
			 recent == 1 ? "" : "s", (unsigned long long)(mon.window / 60000), why);
		notify("alert", m->name, detail);
	}
}

/* Another part's condition: raised opens an incident, cleared closes it. */
static void monitor_on_event(const struct core_event *ev, void *arg)
{
	char detail[300];

	(void)arg;
	if (mon.loop == NULL)
		return;
	if (ev->raised) {
		snprintf(detail, sizeof(detail), "DOWN: %s", ev->reason);
		notify("alert", ev->subject, detail);
	} else
		notify("recovery", ev->subject, ev->reason[0] != '\0' ? ev->reason : "UP");
}

static int monitor_on_test(const char *who, char *err, size_t errlen, void *arg)
{
	char detail[200];

	(void)arg;
	if (mon.loop == NULL || (mon.nhooks == 0 && mon.email == NULL)) {
		snprintf(err, errlen, "no alert channel is configured: "
			 "add a webhook or e-mail recipients");
		return CORE_ERROR;
	}
	snprintf(detail, sizeof(detail), "a test notification, sent by %s from the admin UI", who);
	notify("test", "test alert", detail);
	return CORE_OK;
}

static struct core_event_sink monitor_sink = {
	.name = "monitor",
	.notify = monitor_on_event,
	.test = monitor_on_test,
};

/* ---- monitors --------------------------------------------------------------------------- */

static void monitor_done(struct core_probe *p, bool ok, uint64_t ms, unsigned status,
			 const char *why)
{
	struct monitor *m = p->data;
	uint64_t now = core_loop_now(mon.loop), next = m->started + m->interval;
	char err[256];

	m->checks++;
	if (!ok)
		m->failed++;
	m->last_ms = ms;
	m->last_wall = core_clock_wall_ms();
	snprintf(m->last_error, sizeof(m->last_error), "%s", ok || why == NULL ? "" : why);
	if (mon.db != NULL &&
	    monitor_history_add(mon.db, m->name, core_clock_wall_ms(), ok, ms, status, why,
			      err, sizeof(err)) != CORE_OK) {
		if (!mon.db_error_logged)	/* a full disk: once, not per probe */
			core_log_error("monitor", "results not kept: %s", err);
		mon.db_error_logged = true;
	} else
		mon.db_error_logged = false;
	monitor_judge(m, ok, why ? why : "", now);
	core_timer_start(&m->next, core_clock_before(now, next) ? next - now : 0);
}

static void monitor_on_next(struct core_timer *t)
{
	struct monitor *m = t->data;

	m->started = core_loop_now(mon.loop);
	core_probe_start(&m->probe);
}

static void monitor_on_prune(struct core_timer *t)
{
	char err[256];

	if (mon.db != NULL && monitor_history_prune(mon.db, core_clock_wall_ms(), err,
						  sizeof(err)) != CORE_OK)
		core_log_error("monitor", "pruning the results: %s", err);
	core_timer_start(t, MON_PRUNE_MS);
}

static struct monitor *monitor_add(const char *name, const struct core_conf_addr *addr,
				   const char *host, const char *path, const char *status,
				   const char *body, uint64_t interval, uint64_t timeout)
{
	struct monitor *m = &mon.mons[mon.nmons++];
	struct core_probe *p = &m->probe;

	snprintf(m->name, sizeof(m->name), "%s", name);
	m->interval = interval;
	m->up = true;
	core_probe_init(mon.loop, p);
	memcpy(&p->sa, &addr->sa, sizeof(p->sa));
	p->salen = addr->salen;
	p->request = m->request;
	p->reqlen = (size_t)snprintf(m->request, sizeof(m->request),
				     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: keel-monitor\r\n"
				     "Connection: close\r\n\r\n", path, host);
	snprintf(p->status, sizeof(p->status), "%s", status);
	snprintf(p->body, sizeof(p->body), "%s", body);
	p->timeout = timeout;
	p->done = monitor_done;
	p->data = m;
	core_timer_init(mon.loop, &m->next, monitor_on_next, m);
	return m;
}

static void monitor_stop_all(void)
{
	unsigned i;

	for (i = 0; i < mon.nmons; i++) {
		core_probe_cancel(&mon.mons[i].probe);
		core_timer_stop(&mon.mons[i].next);
		core_tls_server_drop(mon.mons[i].probe.tls);
	}
	/* The loop's current batch may still point at a probe in there. */
	core_loop_free_later(mon.loop, mon.mons, mon.capmons, sizeof(*mon.mons));
	mon.mons = NULL;
	mon.nmons = 0;
}

static int monitor_build(const struct core_conf *conf, const struct monitor *old,
			 unsigned nold, char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);
	const struct keel_monitors_conf *mc = &k->monitors;
	const struct keel_route_conf *rc = k->routes.v;
	const struct keel_upstream_conf *uc = k->upstreams.v;
	const struct keel_listener_conf *lc = k->listeners.v;
	const struct keel_monitor_conf *oc = mc->list.v;
	const struct keel_webhook_conf *wc = k->alerts.webhooks.v;
	unsigned n = (unsigned)mc->list.n, i, j;
	char name[160];

	snprintf(mon.node, sizeof(mon.node), "%s", k->node);
	mon.failures = (unsigned)k->alerts.failures;
	mon.window = (uint64_t)k->alerts.window;
	mon.recover = (unsigned)k->alerts.recover;
	mon.max_per_hour = (unsigned)k->alerts.max_per_hour;
	/* monitor_mail_send() copies what it needs: pointing into the running
	 * config is safe until the next reload replaces this pointer. */
	mon.email = k->alerts.email.to.n > 0 ? &k->alerts.email : NULL;
	free(mon.hooks);
	mon.nhooks = k->alerts.webhooks.n;
	mon.hooks = mon.nhooks ? calloc(mon.nhooks, sizeof(*mon.hooks)) : NULL;
	if (mon.nhooks > 0 && mon.hooks == NULL) {
		mon.nhooks = 0;
		snprintf(err, errlen, "out of memory for %zu webhooks", k->alerts.webhooks.n);
		return CORE_ERROR;
	}
	for (i = 0; i < mon.nhooks; i++) {
		mon.hooks[i].url = wc[i].url;
		snprintf(mon.hooks[i].secret, sizeof(mon.hooks[i].secret), "%s", wc[i].secret);
	}

	if (mc->routes && k->listeners.n > 0)
		n += (unsigned)k->routes.n;
	for (i = 0; mc->servers && i < k->upstreams.n; i++)
		n += (unsigned)uc[i].servers.n;
	mon.mons = n ? core_loop_calloc(n, sizeof(*mon.mons)) : NULL;
	mon.capmons = mon.mons != NULL ? n : 0;
	if (n && mon.mons == NULL) {
		snprintf(err, errlen, "out of memory for %u monitors", n);
		return CORE_ERROR;
	}
	if (mc->routes && k->listeners.n > 0) {
		struct core_conf_addr door;

		door = lc[0].address;	/* as a client reaches it */
		core_net_local_door(&door);
		for (i = 0; i < k->routes.n; i++) {
			char *const *hosts = rc[i].hosts.v;
			const char *host = rc[i].hosts.n && hosts[0][0] != '*' ? hosts[0] : door.text;

			if (rc[i].ret != 0)	/* keel answers it itself: nothing to watch */
				continue;
			snprintf(name, sizeof(name), "route %s%s", rc[i].hosts.n ? host : "",
				 rc[i].path);
			monitor_add(name, &door, host, rc[i].path, mc->status, "",
				    (uint64_t)mc->interval, (uint64_t)mc->timeout);
		}
	}
	for (i = 0; mc->servers && i < k->upstreams.n; i++) {
		const struct keel_server_conf *sc = uc[i].servers.v;
		struct core_tls_server *cli = NULL;
		char why[384];

		/* HTTPS upstreams are probed over HTTPS, as the proxy reaches them. */
		if (uc[i].tls.enabled &&
		    (cli = core_tls_client_new(uc[i].tls.ca_file, uc[i].tls.verify, why,
					       sizeof(why))) == NULL)
			core_log_error("monitor", "upstreams.%s.tls: %s", uc[i].name, why);
		for (j = 0; j < uc[i].servers.n; j++) {
			struct monitor *m;

			snprintf(name, sizeof(name), "server %s/%s", uc[i].name, sc[j].address.text);
			m = monitor_add(name, &sc[j].address, sc[j].address.text, "/", mc->status, "",
					(uint64_t)mc->interval, (uint64_t)mc->timeout);
			if (cli == NULL)
				continue;
			core_tls_server_hold(cli);
			core_probe_tls(&m->probe, cli, uc[i].tls.server_name, &sc[j].address);
		}
		core_tls_server_drop(cli);
	}
	for (i = 0; i < mc->list.n; i++) {
		snprintf(name, sizeof(name), "monitor %s", oc[i].name);
		monitor_add(name, &oc[i].url.addr, oc[i].url.host, oc[i].url.path, oc[i].status,
			    oc[i].body, (uint64_t)oc[i].interval, (uint64_t)oc[i].timeout);
	}

	for (i = 0; i < mon.nmons; i++) {
		struct monitor *m = &mon.mons[i];

		/* An incident under way stays open across a reload. */
		for (j = 0; j < nold; j++)
			if (strcmp(old[j].name, m->name) == 0) {
				m->open = old[j].open;
				m->passes = old[j].passes;
				m->checks = old[j].checks;
				m->failed = old[j].failed;
				memcpy(m->fails, old[j].fails, sizeof(m->fails));
				m->nfails = old[j].nfails;
				m->head = old[j].head;
				break;
			}
		/* Spread the first probes over a second, then the interval. */
		core_timer_start(&m->next, 1000ULL * i / (mon.nmons ? mon.nmons : 1));
	}
	if (mon.nmons > 0)
		core_log_info("monitor", "%u monitor%s, %zu webhook%s", mon.nmons,
			      mon.nmons == 1 ? "" : "s", mon.nhooks, mon.nhooks == 1 ? "" : "s");
	return CORE_OK;
}

static int monitor_start(struct core_loop *loop, const struct core_conf *conf,
			 char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);
	char path[512], dberr[256];

	mon.loop = loop;
	mon.hour_start = core_loop_now(loop);
	if (k->monitors.database[0] != '\0')
		snprintf(path, sizeof(path), "%s", k->monitors.database);
	else
		snprintf(path, sizeof(path), "%s/monitor.db", k->state_dir);

	/* Without a results file keel still monitors and alerts; say why. */
	if (k->monitors.routes || k->monitors.servers || k->monitors.list.n > 0) {
		if (k->monitors.database[0] == '\0' &&
		    core_state_dir(k->state_dir, dberr, sizeof(dberr)) != CORE_OK)
			core_log_error("monitor", "results not kept: %s", dberr);
		else if ((mon.db = monitor_history_open(path, k->monitors.max_db_size, dberr,
						      sizeof(dberr))) == NULL)
			core_log_error("monitor", "results not kept: %s", dberr);
	}
	core_timer_init(loop, &mon.prune, monitor_on_prune, NULL);
	if (mon.db != NULL)
		core_timer_start(&mon.prune, 0);
	if (monitor_build(conf, NULL, 0, err, errlen) != CORE_OK)
		return CORE_ERROR;
	/* Conditions raised before now (a server already DOWN) alert now. */
	core_event_sink_add(&monitor_sink);
	return CORE_OK;
}

static int monitor_reload(const struct core_conf *conf, char *err, size_t errlen)
{
	struct monitor *old = mon.mons;
	unsigned nold = mon.nmons, capold = mon.capmons, i;
	int rc;

	for (i = 0; i < nold; i++) {
		core_probe_cancel(&old[i].probe);
		core_timer_stop(&old[i].next);
	}
	mon.mons = NULL;
	mon.nmons = mon.capmons = 0;
	rc = monitor_build(conf, old, nold, err, errlen);
	for (i = 0; i < nold; i++)
		core_tls_server_drop(old[i].probe.tls);
	core_loop_free_later(mon.loop, old, capold, sizeof(*old));
	return rc;
}

static void monitor_stop(void)
{
	core_event_sink_del(&monitor_sink);
	monitor_stop_all();
	monitor_mail_stop();
	mon.email = NULL;
	while (!core_list_empty(&mon.deliveries))
		delivery_free(core_list_first(&mon.deliveries, struct delivery, link));
	if (mon.loop != NULL)
		core_timer_stop(&mon.prune);
	monitor_history_close(mon.db);
	mon.db = NULL;
	free(mon.hooks);
	mon.hooks = NULL;
	mon.loop = NULL;
}

/* A monitor's name as a Prometheus label value. */
static const char *label(const char *name, char *buf, size_t len)
{
	size_t n = 0;

	for (; *name != '\0' && n + 2 < len; name++) {
		if (*name == '"' || *name == '\\')
			buf[n++] = '\\';
		buf[n++] = *name;
	}
	buf[n] = '\0';
	return buf;
}

static int monitor_status_metrics(struct core_buf *out)
{
	char line[800], lab[330];
	unsigned i;
	int n, rc = CORE_OK;

	n = snprintf(line, sizeof(line),
		     "# HELP keel_monitor_up Whether the monitor's last probe passed.\n"
		     "# TYPE keel_monitor_up gauge\n");
	rc |= core_buf_append(out, line, (size_t)n);
	for (i = 0; i < mon.nmons; i++) {
		n = snprintf(line, sizeof(line), "keel_monitor_up{monitor=\"%s\"} %d\n",
			     label(mon.mons[i].name, lab, sizeof(lab)), mon.mons[i].up ? 1 : 0);
		rc |= core_buf_append(out, line, (size_t)n);
	}
	n = snprintf(line, sizeof(line),
		     "# HELP keel_monitor_probes_total Probes run, and failed.\n"
		     "# TYPE keel_monitor_probes_total counter\n");
	rc |= core_buf_append(out, line, (size_t)n);
	for (i = 0; i < mon.nmons; i++) {
		n = snprintf(line, sizeof(line),
			     "keel_monitor_probes_total{monitor=\"%s\",result=\"pass\"} %llu\n"
			     "keel_monitor_probes_total{monitor=\"%s\",result=\"fail\"} %llu\n",
			     label(mon.mons[i].name, lab, sizeof(lab)),
			     (unsigned long long)(mon.mons[i].checks - mon.mons[i].failed),
			     lab, (unsigned long long)mon.mons[i].failed);
		rc |= core_buf_append(out, line, (size_t)n);
	}
	n = snprintf(line, sizeof(line),
		     "# HELP keel_alerts_total Incidents opened and closed.\n"
		     "# TYPE keel_alerts_total counter\n"
		     "keel_alerts_total{event=\"alert\"} %llu\n"
		     "keel_alerts_total{event=\"recovery\"} %llu\n"
		     "# HELP keel_alert_deliveries_failed_total Notifications dropped after every retry.\n"
		     "# TYPE keel_alert_deliveries_failed_total counter\n"
		     "keel_alert_deliveries_failed_total{via=\"webhook\"} %llu\n"
		     "keel_alert_deliveries_failed_total{via=\"email\"} %lu\n",
		     (unsigned long long)mon.alerts, (unsigned long long)mon.recoveries,
		     (unsigned long long)mon.delivery_failures, monitor_mail_failures());
	rc |= core_buf_append(out, line, (size_t)n);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

/* ---- for the admin API ------------------------------------------------------------------ */

static int monitor_status_json(struct core_buf *out)
{
	char line[1400], a[400], b[700];
	unsigned i;
	int n, rc = CORE_OK;

	rc |= core_buf_append(out, "{\"monitors\":[", 13);
	for (i = 0; i < mon.nmons; i++) {
		const struct monitor *m = &mon.mons[i];

		json_escape(a, sizeof(a), m->name);
		json_escape(b, sizeof(b), m->last_error);
		n = snprintf(line, sizeof(line),
			     "%s{\"name\":\"%s\",\"up\":%s,\"incident\":%s,\"probes\":%llu,"
			     "\"failed\":%llu,\"interval_ms\":%llu,\"last_ms\":%llu,"
			     "\"last_time\":%llu,\"last_error\":\"%s\"}", i ? "," : "", a,
			     m->up ? "true" : "false", m->open ? "true" : "false",
			     (unsigned long long)m->checks, (unsigned long long)m->failed,
			     (unsigned long long)m->interval, (unsigned long long)m->last_ms,
			     (unsigned long long)m->last_wall, b);
		rc |= core_buf_append(out, line, (size_t)n);
	}
	rc |= core_buf_append(out, "],\"alerts\":[", 12);
	for (i = 0; i < mon.nrecent; i++) {	/* newest first */
		const struct recent *r =
			&mon.recent[(mon.recent_head + MON_RECENT - 1 - i) % MON_RECENT];

		json_escape(a, sizeof(a), r->subject);
		json_escape(b, sizeof(b), r->detail);
		n = snprintf(line, sizeof(line),
			     "%s{\"time\":%llu,\"event\":\"%s\",\"subject\":\"%s\",\"detail\":\"%s\"}",
			     i ? "," : "", (unsigned long long)r->wall, r->event, a, b);
		rc |= core_buf_append(out, line, (size_t)n);
	}
	n = snprintf(line, sizeof(line),
		     "],\"webhooks\":%zu,\"email\":%s,\"sent_this_hour\":%u,\"suppressed\":%u,"
		     "\"delivery_failures\":%llu,\"history\":%s}",
		     mon.nhooks, mon.email != NULL ? "true" : "false", mon.sent_this_hour,
		     mon.suppressed, (unsigned long long)(mon.delivery_failures + monitor_mail_failures()),
		     mon.db != NULL ? "true" : "false");
	rc |= core_buf_append(out, line, (size_t)n);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

static int monitor_status_history(const char *name, uint64_t from, uint64_t to,
				  unsigned points, struct core_buf *out)
{
	if (mon.db == NULL)
		return CORE_ERROR;
	return monitor_history_json(mon.db, name, from, to, points, out);
}

static const struct core_status_provider monitor_status = {
	.name = "monitors",
	.order = 70,
	.json = monitor_status_json,
	.metrics = monitor_status_metrics,
	.history = monitor_status_history,
};
CORE_STATUS_PROVIDER(monitor_status);

static const struct core_module monitor_module = {
	.name = "monitor",
	.order = 70,
	.start = monitor_start,
	.reload = monitor_reload,
	.stop = monitor_stop,
};
CORE_MODULE(monitor_module);
