/*
 * Shared storage, mounted and watched without ever hanging.
 *
 * Each configured mount has its servers probed from keel's own loop
 * (probe.c) and, when it has a path, is mounted, checked and recovered by
 * helper processes with deadlines (mount.c). This file holds the module:
 * the mounts built from the configuration (a reload keeps every mount
 * whose settings did not change, with its state and its helpers), and
 * what the status API and /metrics show of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/core.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/event.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/status.h"
#include "core/supervise.h"
#include "storage.h"

struct storage_globals sm;

const char *storage_state_str(enum storage_state s)
{
	switch (s) {
	case STORAGE_STARTING:	return "starting";
	case STORAGE_HEALTHY:	return "healthy";
	case STORAGE_SLOW:	return "slow";
	case STORAGE_HUNG:	return "hung";
	case STORAGE_FAILED:	return "failed";
	case STORAGE_MOUNTING:	return "mounting";
	case STORAGE_MISSING:	return "missing";
	}
	return "?";
}

bool storage_state_up(enum storage_state s)
{
	return s == STORAGE_HEALTHY || s == STORAGE_SLOW;
}

/* The storage gate (supervise.wait_for: storage): every managed mount
 * mounted by keel and healthy. */
void storage_gate(void)
{
	unsigned i;

	for (i = 0; i < sm.n; i++) {
		const struct storage_mount *m = sm.mounts[i];

		if (m->path[0] != '\0' && (!m->ours || !storage_state_up(m->state))) {
			core_sup_gate(KEEL_GATE_STORAGE, false, "mount %s is %s%s%s", m->name,
				      m->ours ? storage_state_str(m->state) : "not mounted yet",
				      m->why[0] ? ": " : "", m->why);
			return;
		}
	}
	core_sup_gate(KEEL_GATE_STORAGE, true, "%u mount%s ready", sm.n, sm.n == 1 ? "" : "s");
}

const char *storage_nth(unsigned n)
{
	return n % 10 == 1 && n % 100 != 11 ? "st" : n % 10 == 2 && n % 100 != 12 ? "nd" :
	       n % 10 == 3 && n % 100 != 13 ? "rd" : "th";
}

/* ---- the module ----------------------------------------------------------------------------- */

static void storage_mount_free(struct storage_mount *m)
{
	unsigned j;

	storage_mount_stop(m);
	for (j = 0; j < m->nservers; j++)
		storage_probe_stop(&m->servers[j]);
	/* An event of this batch may still point into it. */
	core_loop_free_later(sm.loop, m, 1, sizeof(*m));
}

/* Everything configured about a mount, as one string: a reload keeps a
 * mount whose string did not change. */
static void storage_conf_key(const struct keel_mount_conf *c, char *out, size_t len)
{
	char *const *srv = c->servers.v;
	size_t n, i;

	n = (size_t)snprintf(out, len, "%s|%d|%s|%s|%s|%s|%d%d%d|%lld|%lld|%lld|%lld|%lld|%lld|%lld",
			     c->name, c->type, c->export, c->volume, c->path, c->options,
			     c->adopt, c->failback, c->canary, (long long)c->mount_timeout,
			     (long long)c->probe_interval, (long long)c->probe_timeout,
			     (long long)c->slow_after, (long long)c->misses,
			     (long long)c->canary_interval, (long long)c->canary_timeout);
	for (i = 0; i < c->servers.n && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "|%s", srv[i]);
}

static struct storage_mount *storage_mount_new(const struct keel_mount_conf *c, const char *key,
					       char *err, size_t errlen)
{
	struct storage_mount *m = core_loop_calloc(1, sizeof(*m));
	char *const *srv = c->servers.v;
	char logfile[400];
	unsigned j;

	if (m == NULL) {
		snprintf(err, errlen, "storage.mounts.%s: out of memory", c->name);
		return NULL;
	}
	snprintf(m->name, sizeof(m->name), "%s", c->name);
	snprintf(m->conf_key, sizeof(m->conf_key), "%s", key);
	m->type = c->type;
	if (c->type == KEEL_MOUNT_GLUSTERFS)
		snprintf(m->remote, sizeof(m->remote), "/%s", c->volume);
	else
		snprintf(m->remote, sizeof(m->remote), "%s", c->export);
	snprintf(m->path, sizeof(m->path), "%s", c->path);
	snprintf(logfile, sizeof(logfile), "%s/glusterfs-%s.log", sm.state_dir, c->name);
	if (storage_mount_options(m->options, sizeof(m->options), c->type, c->options, srv,
				  c->servers.n, logfile) == 0) {
		snprintf(err, errlen, "storage.mounts.%s.options: too long with keel's defaults",
			 c->name);
		core_loop_free_later(sm.loop, m, 1, sizeof(*m));
		return NULL;
	}
	m->nfs_version = storage_nfs_version(m->options);
	snprintf(m->subject, sizeof(m->subject), "storage %s", c->name);
	m->adopt = c->adopt;
	m->failback = c->failback;
	m->canary = c->canary;
	m->interval = (uint64_t)c->probe_interval;
	m->timeout = (uint64_t)c->probe_timeout;
	m->slow_after = (uint64_t)c->slow_after;
	m->max_misses = (unsigned)c->misses;
	m->mount_timeout = (uint64_t)c->mount_timeout;
	m->canary_interval = (uint64_t)c->canary_interval;
	m->canary_timeout = (uint64_t)c->canary_timeout;
	m->current = -1;
	m->since_wall = core_clock_wall_ms();
	m->nservers = (unsigned)(c->servers.n < STORAGE_MAX_SERVERS ?
				 c->servers.n : STORAGE_MAX_SERVERS);
	for (j = 0; j < m->nservers; j++) {
		m->servers[j].m = m;
		m->servers[j].sock = -1;
		m->servers[j].since_wall = m->since_wall;
		snprintf(m->servers[j].addr, sizeof(m->servers[j].addr), "%s", srv[j]);
	}
	return m;
}

static void storage_mount_begin(struct storage_mount *m)
{
	unsigned j;

	storage_mount_start(m);
	for (j = 0; j < m->nservers; j++)
		storage_probe_init(&m->servers[j]);
	core_log_info("storage", "storage %s: %s %s%s on %u server%s", m->name,
		      m->path[0] ? "mounting" : "watching", m->remote,
		      m->path[0] ? "" : " (no path: watch only)", m->nservers,
		      m->nservers == 1 ? "" : "s");
}

/*
 * A configuration, applied: mounts whose settings are unchanged go on as
 * they are; changed ones start over (the new one finds the path mounted
 * by keel and keeps or moves it); mounts that left drop their conditions
 * and, if keel mounted them, are unmounted.
 */
static int storage_build(const struct keel_conf *k, char *err, size_t errlen)
{
	const struct keel_storage_conf *c = &k->storage;
	const struct keel_mount_conf *mc = c->mounts.v;
	struct storage_mount **old = sm.mounts, **mounts = NULL;
	unsigned i, j, oldn = sm.n;
	bool *kept = NULL;
	char *key;
	size_t p;

	snprintf(sm.state_dir, sizeof(sm.state_dir), "%s", k->state_dir);
	snprintf(sm.node, sizeof(sm.node), "%s", k->node);
	for (p = 0; sm.node[p] != '\0'; p++)	/* it names the canary file */
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
			   sm.node[p]) == NULL)
			sm.node[p] = '_';
	key = malloc(sizeof(old[0]->conf_key));
	mounts = calloc(c->mounts.n + 1, sizeof(*mounts));
	kept = calloc(oldn + 1, sizeof(*kept));
	if (key == NULL || mounts == NULL || kept == NULL) {
		snprintf(err, errlen, "out of memory for %zu mounts", c->mounts.n);
		goto fail;
	}
	/* First everything that can fail, with the running mounts untouched. */
	for (i = 0; i < c->mounts.n; i++) {
		storage_conf_key(&mc[i], key, sizeof(old[0]->conf_key));
		for (j = 0; j < oldn && (kept[j] || strcmp(old[j]->conf_key, key) != 0); j++)
			;
		if (j < oldn) {
			mounts[i] = old[j];	/* unchanged: it goes on as it is */
			kept[j] = true;
		} else if ((mounts[i] = storage_mount_new(&mc[i], key, err, errlen)) == NULL)
			goto fail;
	}
	for (j = 0; j < oldn; j++) {
		if (kept[j])
			continue;
		for (i = 0; i < c->mounts.n && strcmp(old[j]->name, mc[i].name) != 0; i++)
			;
		if (i == c->mounts.n)
			core_event_clear("storage", old[j]->subject,
					 "no longer watched (configuration changed)");
		for (i = 0; i < c->mounts.n && strcmp(old[j]->path, mc[i].path) != 0; i++)
			;
		/* Its helpers go first: an unmount never races its mount. */
		storage_mount_free(old[j]);
		if (old[j]->path[0] != '\0' && i == c->mounts.n)
			storage_unmount_dropped(old[j]->name, old[j]->path);
	}
	sm.mounts = mounts;
	sm.n = (unsigned)c->mounts.n;
	for (i = 0; i < sm.n; i++)
		if (mounts[i]->tick.cb == NULL)		/* new: not started yet */
			storage_mount_begin(mounts[i]);
	free(old);
	free(kept);
	free(key);
	return CORE_OK;
fail:
	for (i = 0; mounts != NULL && i < c->mounts.n; i++)
		if (mounts[i] != NULL && mounts[i]->tick.cb == NULL)
			core_loop_free_later(sm.loop, mounts[i], 1, sizeof(**mounts));
	free(mounts);
	free(kept);
	free(key);
	return CORE_ERROR;
}

static int storage_start(struct core_loop *loop, const struct core_conf *conf, char *err,
			 size_t errlen)
{
	sm.loop = loop;
	snprintf(sm.state_dir, sizeof(sm.state_dir), "%s", core_settings_of(conf)->state_dir);
	storage_records_load();
	if (storage_build(core_settings_of(conf), err, errlen) != CORE_OK)
		return CORE_ERROR;
	storage_gate();
	return CORE_OK;
}

static int storage_reload(const struct core_conf *conf, char *err, size_t errlen)
{
	return storage_build(core_settings_of(conf), err, errlen);
}

/* Mounts stay mounted: the apps go on using them while keel restarts. */
static void storage_stop(void)
{
	unsigned i;

	for (i = 0; i < sm.n; i++)
		storage_mount_free(sm.mounts[i]);
	free(sm.mounts);
	sm.mounts = NULL;
	sm.n = 0;
	storage_jobs_stop();
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

static void storage_json_mount(struct core_buf *out, const struct storage_mount *m)
{
	char when[40], fstype[32], source[400];
	bool mounted = storage_mountinfo_find(m->path, fstype, sizeof(fstype), source,
					      sizeof(source));
	unsigned j;

	core_buf_append(out, "{\"name\":", 8);
	core_json_str(out, m->name);
	core_buf_printf(out, ",\"type\":\"%s\",\"%s\":",
			m->type == KEEL_MOUNT_GLUSTERFS ? "glusterfs" : "nfs",
			m->type == KEEL_MOUNT_GLUSTERFS ? "volume" : "export");
	core_json_str(out, m->type == KEEL_MOUNT_GLUSTERFS ? m->remote + 1 : m->remote);
	core_buf_append(out, ",\"path\":", 8);
	core_json_str(out, m->path);
	core_buf_printf(out, ",\"managed\":%s,\"mounted\":%s", m->path[0] ? "true" : "false",
			mounted ? "true" : "false");
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
		core_buf_printf(out, ",\"latency_ms\":%llu,\"free_bytes\":%llu,\"total_bytes\":%llu",
				(unsigned long long)s->latency_ms, (unsigned long long)s->free_bytes,
				(unsigned long long)s->total_bytes);
	} else
		core_buf_append(out, "null", 4);
	core_buf_append(out, ",\"reason\":", 10);
	core_json_str(out, m->why);
	if (m->path[0] != '\0') {
		core_buf_append(out, ",\"options\":", 11);
		core_json_str(out, m->options);
		core_buf_printf(out, ",\"owner\":\"%s\",\"attempts\":%llu,\"mounts\":%llu,"
				"\"giveups\":%llu,\"last_attempt\":", m->ours ? "keel" : mounted ?
				"other" : "none", (unsigned long long)m->attempts,
				(unsigned long long)m->mounts_ok, (unsigned long long)m->giveups);
		core_json_str(out, m->last_attempt);
		core_buf_printf(out, ",\"last_attempt_ms\":%llu,\"check\":{\"ok\":%s,\"ms\":%llu,"
				"\"error\":", (unsigned long long)m->last_attempt_ms,
				m->check_ok ? "true" : "false", (unsigned long long)m->check_ms);
		core_json_str(out, m->check_err);
		core_buf_printf(out, ",\"abandoned\":%llu,\"held_pid\":%d}",
				(unsigned long long)m->abandoned,
				m->check.late ? (int)m->check.child.pid : 0);
	}
	core_buf_append(out, ",\"last_incident\":", 17);
	if (m->last_incident_wall != 0) {
		core_buf_printf(out, "{\"at\":\"%s\",\"reason\":",
				core_clock_format_utc(m->last_incident_wall, when, sizeof(when)));
		core_json_str(out, m->last_incident);
		core_buf_append(out, "}", 1);
	} else
		core_buf_append(out, "null", 4);
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

static int storage_status_json(struct core_buf *out)
{
	unsigned i;

	if (sm.n == 0)
		return core_buf_append(out, "null", 4);
	core_buf_append(out, "{\"mounts\":[", 11);
	for (i = 0; i < sm.n; i++) {
		if (i > 0)
			core_buf_append(out, ",", 1);
		storage_json_mount(out, sm.mounts[i]);
	}
	return core_buf_append(out, "]}", 2);
}

static int storage_status_metrics(struct core_buf *out)
{
	unsigned i, j;

	if (sm.n == 0)
		return CORE_OK;
	core_buf_printf(out, "# HELP keel_storage_up Whether the mount is healthy or slow.\n"
			"# TYPE keel_storage_up gauge\n");
	for (i = 0; i < sm.n; i++)
		core_buf_printf(out, "keel_storage_up{mount=\"%s\"} %d\n", sm.mounts[i]->name,
				storage_state_up(sm.mounts[i]->state));
	core_buf_printf(out, "# HELP keel_storage_free_bytes Free space on the server in use.\n"
			"# TYPE keel_storage_free_bytes gauge\n");
	for (i = 0; i < sm.n; i++)
		if (sm.mounts[i]->current != -1)
			core_buf_printf(out, "keel_storage_free_bytes{mount=\"%s\"} %llu\n",
					sm.mounts[i]->name, (unsigned long long)
					sm.mounts[i]->servers[sm.mounts[i]->current].free_bytes);
	core_buf_printf(out, "# HELP keel_storage_mount_attempts_total Mount attempts, and how "
			"they ended.\n# TYPE keel_storage_mount_attempts_total counter\n");
	for (i = 0; i < sm.n; i++)
		if (sm.mounts[i]->path[0] != '\0')
			core_buf_printf(out, "keel_storage_mount_attempts_total{mount=\"%s\","
					"result=\"mounted\"} %llu\nkeel_storage_mount_attempts_total"
					"{mount=\"%s\",result=\"gave_up\"} %llu\n", sm.mounts[i]->name,
					(unsigned long long)sm.mounts[i]->mounts_ok, sm.mounts[i]->name,
					(unsigned long long)sm.mounts[i]->giveups);
	core_buf_printf(out, "# HELP keel_storage_mount_last_attempt_ms How long the last mount "
			"attempt took, to its helper's end.\n# TYPE keel_storage_mount_last_attempt_ms "
			"gauge\n");
	for (i = 0; i < sm.n; i++)
		if (sm.mounts[i]->path[0] != '\0' && sm.mounts[i]->attempts > 0)
			core_buf_printf(out, "keel_storage_mount_last_attempt_ms{mount=\"%s\"} %llu\n",
					sm.mounts[i]->name,
					(unsigned long long)sm.mounts[i]->last_attempt_ms);
	core_buf_printf(out, "# HELP keel_storage_abandoned_checks_total Checks that did not come "
			"back by their deadline.\n# TYPE keel_storage_abandoned_checks_total counter\n");
	for (i = 0; i < sm.n; i++)
		if (sm.mounts[i]->path[0] != '\0')
			core_buf_printf(out, "keel_storage_abandoned_checks_total{mount=\"%s\"} %llu\n",
					sm.mounts[i]->name,
					(unsigned long long)sm.mounts[i]->abandoned);
	core_buf_printf(out, "# HELP keel_storage_server_latency_ms The last answered probe's time.\n"
			"# TYPE keel_storage_server_latency_ms gauge\n");
	for (i = 0; i < sm.n; i++)
		for (j = 0; j < sm.mounts[i]->nservers; j++)
			core_buf_printf(out, "keel_storage_server_latency_ms{mount=\"%s\",server=\"%s\"} "
					"%llu\n", sm.mounts[i]->name, sm.mounts[i]->servers[j].addr,
					(unsigned long long)sm.mounts[i]->servers[j].latency_ms);
	core_buf_printf(out, "# HELP keel_storage_server_timeouts_total Probes that missed their "
			"deadline.\n# TYPE keel_storage_server_timeouts_total counter\n");
	for (i = 0; i < sm.n; i++)
		for (j = 0; j < sm.mounts[i]->nservers; j++)
			core_buf_printf(out, "keel_storage_server_timeouts_total{mount=\"%s\","
					"server=\"%s\"} %llu\n", sm.mounts[i]->name,
					sm.mounts[i]->servers[j].addr,
					(unsigned long long)sm.mounts[i]->servers[j].timeouts);
	return CORE_OK;
}

static const struct core_status_provider storage_status = {
	.name = "storage",
	.order = 45,
	.json = storage_status_json,
	.metrics = storage_status_metrics,
};
CORE_STATUS_PROVIDER(storage_status);
