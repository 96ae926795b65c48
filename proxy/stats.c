/* Shared health and counters of one config generation; see stats.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "core/clock.h"
#include "core/conf.h"
#include "core/core.h"
#include "core/settings.h"
#include "stats.h"

const unsigned proxy_lat_bounds[PROXY_LAT_BUCKETS - 1] = {
	1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};

void proxy_stats_latency(struct proxy_stat_route *r, uint64_t ms)
{
	unsigned i = 0;

	while (i < PROXY_LAT_BUCKETS - 1 && ms > proxy_lat_bounds[i])
		i++;
	proxy_stat_add(r->latency[i], 1);
	proxy_stat_add(r->latency_ms, ms);
}

static void route_key(const struct keel_route_conf *r, char *key, size_t len)
{
	char *const *hosts = r->hosts.v;
	size_t i, n = 0;

	for (i = 0; i < r->hosts.n && n < len; i++) {
		int w = snprintf(key + n, len - n, "%s%s", i ? "," : "", hosts[i]);

		if (w < 0)
			break;
		n += (size_t)w;
	}
	if (n < len)
		snprintf(key + n, len - n, "%s", r->path);
}

struct proxy_stats *proxy_stats_create(const struct core_conf *conf,
				       const struct proxy_stats *prev)
{
	const struct keel_conf *k = core_settings_of(conf);
	const struct keel_route_conf *rc = k->routes.v;
	const struct keel_upstream_conf *uc = k->upstreams.v;
	struct proxy_stat_server *srv;
	struct proxy_stats *st;
	size_t nservers = 0, size, i, j, s;

	for (i = 0; i < k->upstreams.n; i++)
		nservers += uc[i].servers.n;
	size = sizeof(*st) + k->routes.n * sizeof(struct proxy_stat_route) +
	       nservers * sizeof(struct proxy_stat_server);
	st = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (st == MAP_FAILED)
		return NULL;
	st->size = size;
	st->generation = conf->generation;
	st->nroutes = (unsigned)k->routes.n;
	st->nservers = (unsigned)nservers;
	srv = proxy_stats_servers(st);

	for (i = 0; i < k->routes.n; i++) {
		route_key(&rc[i], st->routes[i].key, sizeof(st->routes[i].key));
		if (rc[i].upstream[0] != '\0')
			snprintf(st->routes[i].upstream, sizeof(st->routes[i].upstream), "%s",
				 rc[i].upstream);
		else
			snprintf(st->routes[i].upstream, sizeof(st->routes[i].upstream),
				 "static:%.50s", rc[i].serve.mount);
	}
	for (i = 0, s = 0; i < k->upstreams.n; i++) {
		const struct keel_server_conf *sc = uc[i].servers.v;

		for (j = 0; j < uc[i].servers.n; j++, s++) {
			snprintf(srv[s].upstream, sizeof(srv[s].upstream), "%s", uc[i].name);
			snprintf(srv[s].name, sizeof(srv[s].name), "%s", sc[j].address.text);
		}
	}
	if (prev == NULL)
		return st;

	/* Counters (and what health knows) go on across a reload. */
	st->connections = proxy_stat_get(((struct proxy_stats *)prev)->connections);
	st->bad_requests = proxy_stat_get(((struct proxy_stats *)prev)->bad_requests);
	for (i = 0; i < st->nroutes; i++)
		for (j = 0; j < prev->nroutes; j++) {
			const struct proxy_stat_route *o = &prev->routes[j];

			if (strcmp(o->key, st->routes[i].key) != 0 ||
			    strcmp(o->upstream, st->routes[i].upstream) != 0)
				continue;
			st->routes[i].requests = o->requests;
			st->routes[i].bytes = o->bytes;
			memcpy(st->routes[i].responses, o->responses, sizeof(o->responses));
			memcpy(st->routes[i].latency, o->latency, sizeof(o->latency));
			st->routes[i].latency_ms = o->latency_ms;
			break;
		}
	for (i = 0; i < st->nservers; i++) {
		const struct proxy_stat_server *o = proxy_stats_servers((struct proxy_stats *)prev);

		for (j = 0; j < prev->nservers; j++)
			if (!strcmp(o[j].upstream, srv[i].upstream) && !strcmp(o[j].name, srv[i].name)) {
				srv[i].requests = o[j].requests;
				srv[i].failures = o[j].failures;
				srv[i].fails = o[j].fails;
				srv[i].fail_start = o[j].fail_start;
				srv[i].out_until = o[j].out_until;
				memcpy(srv[i].responses, o[j].responses, sizeof(o[j].responses));
				memcpy(srv[i].last_error, o[j].last_error, sizeof(o[j].last_error));
				srv[i].check_down = o[j].check_down;
				srv[i].back_at = o[j].back_at;
				srv[i].checks = o[j].checks;
				srv[i].checks_failed = o[j].checks_failed;
				srv[i].check_wall = o[j].check_wall;
				srv[i].check_ms = o[j].check_ms;
				srv[i].check_status = o[j].check_status;
				srv[i].check_ok = o[j].check_ok;
				memcpy(srv[i].check_error, o[j].check_error, sizeof(o[j].check_error));
				break;
			}
	}
	return st;
}

void proxy_stats_free(struct proxy_stats *st)
{
	if (st != NULL)
		munmap(st, st->size);
}

/* Label values come from the config: quote what Prometheus needs quoted. */
static int put_label(struct core_buf *out, const char *v)
{
	for (; *v != '\0'; v++) {
		if ((*v == '"' || *v == '\\') && core_buf_append(out, "\\", 1) != CORE_OK)
			return CORE_ERROR;
		if (core_buf_append(out, v, 1) != CORE_OK)
			return CORE_ERROR;
	}
	return CORE_OK;
}

/* The per-server series that are one counter or gauge each. */
struct series {
	const char	*name, *help, *type;
	size_t		 offset;	/* of its uint64_t in struct proxy_stat_server */
};

static const struct series server_series[] = {
	{ "keel_server_checks_total", "Active health checks run.", "counter",
	  offsetof(struct proxy_stat_server, checks) },
	{ "keel_server_checks_failed_total", "Active health checks that failed.", "counter",
	  offsetof(struct proxy_stat_server, checks_failed) },
	{ "keel_server_requests_total", "Tries sent to each server.", "counter",
	  offsetof(struct proxy_stat_server, requests) },
	{ "keel_server_failures_total", "Tries that failed (connect, timeout, bad response, stall).",
	  "counter", offsetof(struct proxy_stat_server, failures) },
	{ "keel_server_stalls_total", "Times the server was taken out as stalled.", "counter",
	  offsetof(struct proxy_stat_server, stalls) },
	{ "keel_server_active", "Requests in progress on each server.", "gauge",
	  offsetof(struct proxy_stat_server, active) },
};

int proxy_stats_write(const struct proxy_stats *cst, uint64_t now, struct core_buf *out)
{
	static const char *const classes[] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
	struct proxy_stats *st = (struct proxy_stats *)cst;
	struct proxy_stat_server *srv = proxy_stats_servers(st);
	unsigned i, c;
	size_t k;
	int rc = CORE_OK;

	rc |= core_buf_printf(out, "# HELP keel_proxy_connections_total Client connections accepted.\n"
		   "# TYPE keel_proxy_connections_total counter\n"
		   "keel_proxy_connections_total %llu\n",
		   (unsigned long long)proxy_stat_get(st->connections));
	rc |= core_buf_printf(out, "# HELP keel_proxy_connections_active Client connections open now.\n"
		   "# TYPE keel_proxy_connections_active gauge\n"
		   "keel_proxy_connections_active %llu\n",
		   (unsigned long long)proxy_stat_get(st->active));
	rc |= core_buf_printf(out, "# HELP keel_proxy_bad_requests_total Requests refused before routing (400, 408, 414, 431...).\n"
		   "# TYPE keel_proxy_bad_requests_total counter\n"
		   "keel_proxy_bad_requests_total %llu\n",
		   (unsigned long long)proxy_stat_get(st->bad_requests));

	rc |= core_buf_printf(out, "# HELP keel_route_requests_total Requests per route.\n"
		   "# TYPE keel_route_requests_total counter\n");
	for (i = 0; i < st->nroutes; i++) {
		rc |= core_buf_printf(out, "keel_route_requests_total{route=\"");
		rc |= put_label(out, st->routes[i].key);
		rc |= core_buf_printf(out, "\",upstream=\"");
		rc |= put_label(out, st->routes[i].upstream);
		rc |= core_buf_printf(out, "\"} %llu\n", (unsigned long long)proxy_stat_get(st->routes[i].requests));
	}
	rc |= core_buf_printf(out, "# HELP keel_route_responses_total Responses per route and status class.\n"
		   "# TYPE keel_route_responses_total counter\n");
	for (i = 0; i < st->nroutes; i++)
		for (c = 0; c < 5; c++) {
			rc |= core_buf_printf(out, "keel_route_responses_total{route=\"");
			rc |= put_label(out, st->routes[i].key);
			rc |= core_buf_printf(out, "\",code=\"%s\"} %llu\n", classes[c],
				   (unsigned long long)proxy_stat_get(st->routes[i].responses[c]));
		}
	rc |= core_buf_printf(out, "# HELP keel_route_sent_bytes_total Response body bytes sent per route.\n"
		   "# TYPE keel_route_sent_bytes_total counter\n");
	for (i = 0; i < st->nroutes; i++) {
		rc |= core_buf_printf(out, "keel_route_sent_bytes_total{route=\"");
		rc |= put_label(out, st->routes[i].key);
		rc |= core_buf_printf(out, "\"} %llu\n", (unsigned long long)proxy_stat_get(st->routes[i].bytes));
	}

	rc |= core_buf_printf(out, "# HELP keel_route_duration_seconds Time from a request's head to its "
		   "response's last byte, per route.\n"
		   "# TYPE keel_route_duration_seconds histogram\n");
	for (i = 0; i < st->nroutes; i++) {
		uint64_t cum = 0;

		for (c = 0; c < PROXY_LAT_BUCKETS; c++) {
			cum += proxy_stat_get(st->routes[i].latency[c]);
			rc |= core_buf_printf(out, "keel_route_duration_seconds_bucket{route=\"");
			rc |= put_label(out, st->routes[i].key);
			if (c < PROXY_LAT_BUCKETS - 1)
				rc |= core_buf_printf(out, "\",le=\"%g\"} %llu\n", proxy_lat_bounds[c] / 1000.0,
					   (unsigned long long)cum);
			else
				rc |= core_buf_printf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
		}
		rc |= core_buf_printf(out, "keel_route_duration_seconds_sum{route=\"");
		rc |= put_label(out, st->routes[i].key);
		rc |= core_buf_printf(out, "\"} %.3f\nkeel_route_duration_seconds_count{route=\"",
			   proxy_stat_get(st->routes[i].latency_ms) / 1000.0);
		rc |= put_label(out, st->routes[i].key);
		rc |= core_buf_printf(out, "\"} %llu\n", (unsigned long long)cum);
	}

	rc |= core_buf_printf(out, "# HELP keel_server_up Whether the server takes requests (active and passive health).\n"
		   "# TYPE keel_server_up gauge\n");
	for (i = 0; i < st->nservers; i++) {
		rc |= core_buf_printf(out, "keel_server_up{upstream=\"");
		rc |= put_label(out, srv[i].upstream);
		rc |= core_buf_printf(out, "\",server=\"%s\"} %d\n", srv[i].name,
			   core_clock_before(now, proxy_stat_get(srv[i].out_until)) ||
			   proxy_stat_get(srv[i].check_down) ? 0 : 1);
	}
	for (k = 0; k < CORE_ARRAY_SIZE(server_series); k++) {
		const struct series *se = &server_series[k];

		rc |= core_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", se->name, se->help, se->name,
			   se->type);
		for (i = 0; i < st->nservers; i++) {
			const uint64_t *v = (const uint64_t *)(const void *)
					    ((const char *)&srv[i] + se->offset);

			rc |= core_buf_printf(out, "%s{upstream=\"", se->name);
			rc |= put_label(out, srv[i].upstream);
			rc |= core_buf_printf(out, "\",server=\"%s\"} %llu\n", srv[i].name,
				   (unsigned long long)__atomic_load_n(v, __ATOMIC_RELAXED));
		}
	}
	rc |= core_buf_printf(out, "# HELP keel_server_responses_total Responses from each server by status class.\n"
		   "# TYPE keel_server_responses_total counter\n");
	for (i = 0; i < st->nservers; i++)
		for (c = 0; c < 5; c++) {
			rc |= core_buf_printf(out, "keel_server_responses_total{upstream=\"");
			rc |= put_label(out, srv[i].upstream);
			rc |= core_buf_printf(out, "\",server=\"%s\",code=\"%s\"} %llu\n", srv[i].name,
				   classes[c], (unsigned long long)proxy_stat_get(srv[i].responses[c]));
		}
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

/* The admin API's view of the region: connections, every route's counters
 * and response-time histogram, every server's state and its last check. */
int proxy_stats_json(const struct proxy_stats *st, uint64_t now, struct core_buf *b)
{
	const struct proxy_stat_server *sv;
	unsigned i, c;
	int rc = CORE_OK;

	if (st == NULL)
		return core_buf_append(b, "null", 4);
	sv = proxy_stats_servers((struct proxy_stats *)(uintptr_t)st);
	rc |= core_buf_printf(b, "{\"generation\":%u,\"connections\":%llu,\"active\":%llu,"
			      "\"bad_requests\":%llu,\"routes\":[", st->generation,
			      (unsigned long long)proxy_stat_get(st->connections),
			      (unsigned long long)proxy_stat_get(st->active),
			      (unsigned long long)proxy_stat_get(st->bad_requests));
	for (i = 0; i < st->nroutes; i++) {
		const struct proxy_stat_route *r = &st->routes[i];

		rc |= core_buf_append(b, i ? ",{\"key\":" : "{\"key\":", i ? 8 : 7);
		rc |= core_json_str(b, r->key);
		rc |= core_buf_append(b, ",\"upstream\":", 12);
		rc |= core_json_str(b, r->upstream);
		rc |= core_buf_printf(b, ",\"requests\":%llu,\"responses\":[",
				      (unsigned long long)proxy_stat_get(r->requests));
		for (c = 0; c < 5; c++)
			rc |= core_buf_printf(b, "%s%llu", c ? "," : "",
					      (unsigned long long)proxy_stat_get(r->responses[c]));
		rc |= core_buf_append(b, "],\"latency\":[", 13);
		for (c = 0; c < PROXY_LAT_BUCKETS; c++)
			rc |= core_buf_printf(b, "%s%llu", c ? "," : "",
					      (unsigned long long)proxy_stat_get(r->latency[c]));
		rc |= core_buf_printf(b, "],\"latency_ms\":%llu,\"bytes\":%llu}",
				      (unsigned long long)proxy_stat_get(r->latency_ms),
				      (unsigned long long)proxy_stat_get(r->bytes));
	}
	rc |= core_buf_append(b, "],\"latency_bounds_ms\":[", 23);
	for (c = 0; c < PROXY_LAT_BUCKETS - 1; c++)
		rc |= core_buf_printf(b, "%s%u", c ? "," : "", proxy_lat_bounds[c]);
	rc |= core_buf_append(b, "],\"servers\":[", 13);
	for (i = 0; i < st->nservers; i++) {
		uint64_t out_until = proxy_stat_get(sv[i].out_until);
		const char *state = proxy_stat_get(sv[i].check_down) ? "down" :
				    out_until > now ? "failed" : "up";

		rc |= core_buf_append(b, i ? ",{\"upstream\":" : "{\"upstream\":", i ? 13 : 12);
		rc |= core_json_str(b, sv[i].upstream);
		rc |= core_buf_append(b, ",\"address\":", 11);
		rc |= core_json_str(b, sv[i].name);
		rc |= core_buf_printf(b, ",\"state\":\"%s\",\"requests\":%llu,\"failures\":%llu,"
				      "\"active\":%llu,\"checks\":%llu,\"checks_failed\":%llu,"
				      "\"last_check\":%llu,\"last_check_ms\":%llu,"
				      "\"last_check_status\":%llu,\"last_check_ok\":%s,"
				      "\"check_error\":",
				      state, (unsigned long long)proxy_stat_get(sv[i].requests),
				      (unsigned long long)proxy_stat_get(sv[i].failures),
				      (unsigned long long)proxy_stat_get(sv[i].active),
				      (unsigned long long)proxy_stat_get(sv[i].checks),
				      (unsigned long long)proxy_stat_get(sv[i].checks_failed),
				      (unsigned long long)proxy_stat_get(sv[i].check_wall),
				      (unsigned long long)proxy_stat_get(sv[i].check_ms),
				      (unsigned long long)proxy_stat_get(sv[i].check_status),
				      proxy_stat_get(sv[i].check_ok) ? "true" : "false");
		rc |= core_json_str(b, sv[i].check_error);
		rc |= core_buf_append(b, ",\"responses\":[", 14);
		for (c = 0; c < 5; c++)
			rc |= core_buf_printf(b, "%s%llu", c ? "," : "",
					      (unsigned long long)proxy_stat_get(sv[i].responses[c]));
		rc |= core_buf_append(b, "]}", 2);
	}
	rc |= core_buf_append(b, "]}", 2);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}
