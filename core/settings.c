/* keel's settings, declared once: YAML loading, defaults, bounds, reload
 * rules and docs/CONFIGURATION.md all come from this table. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "conf.h"
#include "settings.h"

#define KB	((int64_t)1 << 10)
#define MB	((int64_t)1 << 20)
#define SEC	((int64_t)1000)
#define VRRP_MAX_ADDRS_CONF	20	/* a VRRP advert carries at most 20 (ha/vrrp.h) */

static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };

static const struct core_conf_def log_defs[] = {
	{ .name = "level", .type = CORE_CONF_ENUM, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_log_conf, level), .dflt = "info",
	  .enums = log_levels,
	  .doc = "Least severe level written to stderr and the in-memory log." },
	{ .name = "ring_lines", .type = CORE_CONF_INT,
	  .offset = offsetof(struct keel_log_conf, ring_lines), .dflt = "2000",
	  .min = 0, .max = 100000,
	  .doc = "Recent log lines kept in memory for the admin UI; 0 keeps none." },
	{ 0 }
};

static const struct core_conf_section log_section = {
	.size = sizeof(struct keel_log_conf), .defs = log_defs,
	.doc = "Logging. Lines go to stderr and to an in-memory ring.",
};

static const struct core_conf_def cert_defs[] = {
	{ .name = "cert", .type = CORE_CONF_STRING, .flags = CORE_CONF_REQUIRED | CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_cert_conf, cert), .min = 1, .max = 255,
	  .doc = "PEM file: the certificate, then its intermediates." },
	{ .name = "key", .type = CORE_CONF_STRING, .flags = CORE_CONF_REQUIRED | CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_cert_conf, key), .min = 1, .max = 255,
	  .doc = "PEM file: the certificate's private key (RSA or ECDSA)." },
	{ 0 }
};

static const struct core_conf_section cert_section = {
	.size = sizeof(struct keel_cert_conf), .defs = cert_defs,
	.line_offset = offsetof(struct keel_cert_conf, line),
	.doc = "A certificate and its key. Clients that send a server name (SNI) get the "
	       "certificate whose names match it; others get the first.",
};

static const char *const tls_versions[] = { "1.2", "1.3", NULL };

#define TLS_COMMON_DEFS(what)							\
	{ .name = "certificates", .type = CORE_CONF_LIST, .item = CORE_CONF_SECTION,	\
	  .flags = CORE_CONF_RELOAD, .sub = &cert_section, .min = 0, .max = 64,	\
	  .offset = offsetof(struct keel_tls_conf, certificates),		\
	  .doc = what },							\
	{ .name = "min_version", .type = CORE_CONF_ENUM, .flags = CORE_CONF_RELOAD, \
	  .offset = offsetof(struct keel_tls_conf, min_version), .dflt = "1.2",	\
	  .enums = tls_versions,						\
	  .doc = "Oldest protocol accepted: `1.2` (ECDHE and AEAD suites only) or `1.3`." }

static const struct core_conf_def listener_tls_defs[] = {
	TLS_COMMON_DEFS("Certificate/key pairs; with at least one the listener speaks HTTPS."),
	{ 0 }
};

static const struct core_conf_section listener_tls_section = {
	.size = sizeof(struct keel_tls_conf), .defs = listener_tls_defs,
	.doc = "HTTPS on a proxy listener: TLS 1.2 and 1.3, SNI, ALPN `http/1.1`, "
	       "session tickets. Certificates are re-read on every reload.",
};

static const struct core_conf_def admin_tls_defs[] = {
	{ .name = "enabled", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_tls_conf, enabled), .dflt = "true",
	  .doc = "Serve the admin UI and API over HTTPS only." },
	TLS_COMMON_DEFS("Certificate/key pairs; none: keel makes a self-signed ECDSA certificate "
			"in `state_dir` and logs its SHA-256 fingerprint."),
	{ 0 }
};

static const struct core_conf_section admin_tls_section = {
	.size = sizeof(struct keel_tls_conf), .defs = admin_tls_defs,
	.doc = "HTTPS for the admin server.",
};

static const struct core_conf_def admin_defs[] = {
	{ .name = "listen", .type = CORE_CONF_LIST, .item = CORE_CONF_ADDR,
	  .flags = CORE_CONF_RELOAD | CORE_CONF_NODE,
	  .offset = offsetof(struct keel_admin_conf, listen),
	  .dflt = "127.0.0.1:8443", .min = 1, .max = 16,
	  .doc = "Addresses the admin server listens on: `1.2.3.4:8443`, `[::1]:8443`, `*:8443`; "
		 "one interface's address keeps it off the others. A change made in the UI or "
		 "API is reverted unless confirmed within `confirm_timeout` (over plain HTTP, "
		 "with `tls.enabled: false`, it needs a restart)." },
	{ .name = "confirm_timeout", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_admin_conf, confirm_timeout), .dflt = "60s",
	  .min = 1000, .max = 600000,
	  .doc = "A change through the UI or API to the listeners, TLS or the admin server's "
		 "addresses is rolled back unless confirmed (`POST /api/v1/config/confirm`) "
		 "within this time, so a mistake cannot lock the admin out." },
	{ .name = "tls", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_admin_conf, tls), .sub = &admin_tls_section },
	{ .name = "metrics_token", .type = CORE_CONF_STRING,
	  .flags = CORE_CONF_RELOAD | CORE_CONF_SECRET,
	  .offset = offsetof(struct keel_admin_conf, metrics_token), .dflt = "",
	  .min = 0, .max = 255,
	  .doc = "Token a scraper sends as `Authorization: Bearer ...` for `GET /metrics`; "
		 "empty: /metrics needs a login like every admin route." },
	{ .name = "max_connections", .type = CORE_CONF_INT,
	  .offset = offsetof(struct keel_admin_conf, max_connections),
	  .dflt = "64", .min = 1, .max = 10000,
	  .doc = "Connections served at once per address; more wait in the listen queue." },
	{ .name = "idle_timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_admin_conf, idle_timeout),
	  .dflt = "30s", .min = 1 * SEC, .max = 3600 * SEC,
	  .doc = "A connection idle this long is closed (whole seconds)." },
	{ .name = "request_memory", .type = CORE_CONF_SIZE,
	  .offset = offsetof(struct keel_admin_conf, request_memory),
	  .dflt = "32k", .min = 4 * KB, .max = 1 * MB,
	  .doc = "Memory for one request's line and headers; larger requests get 431." },
	{ .name = "head_timeout", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_admin_conf, head_timeout),
	  .dflt = "10s", .min = 100, .max = 600 * SEC,
	  .doc = "A request's line and headers must all arrive within this time from their "
		 "first byte (or the connection's start); else the connection is closed." },
	{ .name = "max_connections_per_ip", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_admin_conf, max_connections_per_ip),
	  .dflt = "16", .min = 1, .max = 10000,
	  .doc = "Connections one client address may hold open at once; more are closed at "
		 "once, so one address cannot take all of `max_connections`." },
	{ .name = "session_key_file", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_admin_conf, session_key_file), .dflt = "",
	  .min = 0, .max = 255,
	  .doc = "The key (32 bytes) that signs admin sessions shared through Redis; made "
		 "(mode 0600) when missing. Gateways that share sessions must share this file; "
		 "Redis never sees it. Empty: `state_dir/session.key`." },
	{ 0 }
};

static const struct core_conf_section admin_section = {
	.size = sizeof(struct keel_admin_conf), .defs = admin_defs,
	.doc = "The admin server: the web UI and JSON API under `/api/v1` (login required), "
	       "`/metrics`, and `GET /healthz` (open) for monitors and load balancers.",
};

static const struct core_conf_def proxy_defs[] = {
	{ .name = "cookie_key", .type = CORE_CONF_STRING,
	  .flags = CORE_CONF_RELOAD | CORE_CONF_SECRET,
	  .offset = offsetof(struct keel_proxy_conf, cookie_key), .dflt = "", .min = 0, .max = 256,
	  .doc = "The secret affinity cookies (`balance: cookie`) are signed with. Empty: this "
		 "box's install key, so only this box reads its cookies. Gateways that share an "
		 "address (`ha`) set the same value (16 characters or more), and a user pinned "
		 "through one stays pinned through the other." },
	{ .name = "max_connections", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_proxy_conf, max_connections),
	  .dflt = "10000", .min = 1, .max = 1000000,
	  .doc = "Client connections at once; past it, accepting pauses." },
	{ .name = "header_timeout", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_proxy_conf, header_timeout),
	  .dflt = "10s", .min = 100, .max = 3600 * SEC,
	  .doc = "Time a client has to send a whole request head; then 408." },
	{ .name = "max_request_line", .type = CORE_CONF_SIZE, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_proxy_conf, max_request_line),
	  .dflt = "8k", .min = 256, .max = 64 * KB,
	  .doc = "Longest request line; longer gets 414." },
	{ .name = "max_header_bytes", .type = CORE_CONF_SIZE, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_proxy_conf, max_header_bytes),
	  .dflt = "32k", .min = 1 * KB, .max = 256 * KB,
	  .doc = "Largest request or response head; a larger request gets 431." },
	{ .name = "max_headers", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_proxy_conf, max_headers),
	  .dflt = "100", .min = 8, .max = 128,
	  .doc = "Most header fields in a head; more gets 431." },
	{ .name = "buffer_size", .type = CORE_CONF_SIZE, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_proxy_conf, buffer_size),
	  .dflt = "64k", .min = 4 * KB, .max = 4 * MB,
	  .doc = "Bytes buffered per direction per connection; a slow reader stops the writer there." },
	{ 0 }
};

static const struct core_conf_section proxy_section = {
	.size = sizeof(struct keel_proxy_conf), .defs = proxy_defs,
	.doc = "Limits of the HTTP proxy that apply before a request is routed.",
};

static const char *const log_formats[] = { "off", "combined", "json", NULL };

static const struct core_conf_def access_log_defs[] = {
	{ .name = "format", .type = CORE_CONF_ENUM, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_access_log_conf, format), .dflt = "combined",
	  .enums = log_formats,
	  .doc = "`combined` (nginx's, plus host, upstream and times), `json`, or `off`." },
	{ .name = "path", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_access_log_conf, path), .dflt = "", .min = 0, .max = 255,
	  .doc = "File the lines are appended to; empty: standard output. SIGUSR1 reopens it." },
	{ 0 }
};

static const struct core_conf_section access_log_section = {
	.size = sizeof(struct keel_access_log_conf), .defs = access_log_defs,
	.doc = "One line per proxied request: time, client, host, method, path, status, "
	       "bytes, upstream server, upstream time, total time.",
};

static const struct core_conf_def listener_defs[] = {
	{ .name = "address", .type = CORE_CONF_ADDR, .flags = CORE_CONF_REQUIRED,
	  .offset = offsetof(struct keel_listener_conf, address),
	  .doc = "Address the proxy accepts clients on: `*:80`, `[::]:80`, `10.0.0.5:8080`." },
	{ .name = "tls", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_listener_conf, tls), .sub = &listener_tls_section },
	{ 0 }
};

static const struct core_conf_section listener_section = {
	.size = sizeof(struct keel_listener_conf), .defs = listener_defs,
	.line_offset = offsetof(struct keel_listener_conf, line),
	.doc = "A front-end address of the proxy.",
};

static const char *const balances[] = {
	"round_robin", "least_conn", "ip_hash", "p2c", "cookie", NULL
};

static const struct core_conf_def server_defs[] = {
	{ .name = "address", .type = CORE_CONF_ADDR, .flags = CORE_CONF_REQUIRED,
	  .offset = offsetof(struct keel_server_conf, address),
	  .doc = "The app server: `10.0.0.1:8101`." },
	{ .name = "weight", .type = CORE_CONF_INT,
	  .offset = offsetof(struct keel_server_conf, weight),
	  .dflt = "1", .min = 1, .max = 256,
	  .doc = "Share of requests relative to the other servers." },
	{ .name = "max_fails", .type = CORE_CONF_INT,
	  .offset = offsetof(struct keel_server_conf, max_fails),
	  .dflt = "1", .min = 0, .max = 1000,
	  .doc = "Failures within `fail_timeout` that take the server out for `fail_timeout` (nginx semantics); 0 never does." },
	{ .name = "fail_timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_server_conf, fail_timeout),
	  .dflt = "10s", .min = 1 * SEC, .max = 3600 * SEC,
	  .doc = "The window for counting failures, and how long the server then stays out." },
	{ .name = "backup", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_server_conf, backup), .dflt = "false",
	  .doc = "Used only while every non-backup server is out." },
	{ .name = "down", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_server_conf, down), .dflt = "false",
	  .doc = "Maintenance: never used." },
	{ .name = "drain", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_server_conf, drain), .dflt = "false",
	  .doc = "Draining: no new clients, but those pinned to it by an affinity cookie keep "
		 "reaching it, so their sessions end there." },
	{ 0 }
};

static const struct core_conf_section server_section = {
	.size = sizeof(struct keel_server_conf), .defs = server_defs,
	.doc = "An app server of an upstream.",
};

int core_settings_status_match(const char *spec, unsigned status)
{
	const char *p = spec;

	while (*p != '\0') {
		char *end;
		long lo = strtol(p, &end, 10), hi = lo;

		if (end == p)
			return -1;
		p = end;
		if (*p == '-') {
			hi = strtol(p + 1, &end, 10);
			if (end == p + 1)
				return -1;
			p = end;
		}
		if (lo < 100 || hi > 599 || lo > hi)
			return -1;
		if (status >= (unsigned)lo && status <= (unsigned)hi)
			return 1;
		while (*p == ' ')
			p++;
		if (*p == ',')
			p++;
		else if (*p != '\0')
			return -1;
		while (*p == ' ')
			p++;
	}
	return 0;
}

int core_settings_status_ok(const char *spec)
{
	return core_settings_status_match(spec, 0) == 0;
}

static void upstream_check(struct core_conf_load *ld, void *obj, const char *path,
			   int line)
{
	const struct keel_upstream_conf *u = obj;
	const struct keel_server_conf *s = u->servers.v;
	size_t i, primary = 0;

	for (i = 0; i < u->servers.n; i++)
		primary += !s[i].backup;
	for (i = 0; u->cookie != NULL && u->cookie[i] != '\0'; i++)
		if (!((u->cookie[i] >= 'a' && u->cookie[i] <= 'z') ||
		      (u->cookie[i] >= 'A' && u->cookie[i] <= 'Z') ||
		      (u->cookie[i] >= '0' && u->cookie[i] <= '9') ||
		      u->cookie[i] == '_' || u->cookie[i] == '-')) {
			char sub[300];

			snprintf(sub, sizeof(sub), "%s.cookie", path);
			core_conf_error(ld, line, sub, "may hold only letters, digits, '_' and '-'");
			break;
		}
	if (u->health.status != NULL && !core_settings_status_ok(u->health.status)) {
		char sub[300];

		snprintf(sub, sizeof(sub), "%s.health.status", path);
		core_conf_error(ld, line, sub,
				"must be codes or ranges of 100..599, like 200-399 or 200,302; got '%s'",
				u->health.status);
	}
	if (u->health.path != NULL && u->health.path[0] != '/') {
		char sub[300];

		snprintf(sub, sizeof(sub), "%s.health.path", path);
		core_conf_error(ld, line, sub, "must start with '/', got '%s'", u->health.path);
	}
	if (u->servers.n == 0)
		core_conf_error(ld, line, path, "upstream \"%s\" has no servers", u->name);
	else if (primary == 0)
		core_conf_error(ld, line, path,
				"upstream \"%s\" has only backup servers", u->name);
}

static const char *const check_types[] = { "off", "http", "tcp", NULL };
static const char *const all_down_modes[] = { "fail_closed", "fail_open", NULL };

static const struct core_conf_def health_defs[] = {
	{ .name = "type", .type = CORE_CONF_ENUM, .enums = check_types,
	  .offset = offsetof(struct keel_health_conf, type), .dflt = "off",
	  .doc = "Active checks: `http` (a request, judged by status and body), `tcp` (a connect), or `off`." },
	{ .name = "method", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_health_conf, method), .dflt = "GET", .min = 1, .max = 16,
	  .doc = "HTTP method of the check." },
	{ .name = "path", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_health_conf, path), .dflt = "/", .min = 1, .max = 512,
	  .doc = "Path of the check, such as the app's login page." },
	{ .name = "host", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_health_conf, host), .dflt = "", .min = 0, .max = 255,
	  .doc = "Host header of the check; empty: the server's address." },
	{ .name = "status", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_health_conf, status), .dflt = "200-399", .min = 3, .max = 128,
	  .doc = "Statuses that pass: ranges and single codes, comma-separated (`200-399`, `200,302`)." },
	{ .name = "body", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_health_conf, body), .dflt = "", .min = 0, .max = 256,
	  .doc = "Text the response body must contain (first 64 KiB); empty: any." },
	{ .name = "interval", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_health_conf, interval), .dflt = "5s",
	  .min = 100, .max = 3600 * SEC,
	  .doc = "Time between checks of each server." },
	{ .name = "timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_health_conf, timeout), .dflt = "2s",
	  .min = 10, .max = 600 * SEC,
	  .doc = "A check that has not finished by then fails." },
	{ .name = "healthy", .type = CORE_CONF_INT,
	  .offset = offsetof(struct keel_health_conf, healthy), .dflt = "2", .min = 1, .max = 100,
	  .doc = "Checks in a row that must pass before a DOWN server is UP again." },
	{ .name = "unhealthy", .type = CORE_CONF_INT,
	  .offset = offsetof(struct keel_health_conf, unhealthy), .dflt = "2", .min = 1, .max = 100,
	  .doc = "Checks in a row that must fail before an UP server is DOWN." },
	{ 0 }
};

static const struct core_conf_section health_section = {
	.size = sizeof(struct keel_health_conf), .defs = health_defs,
	.doc = "Active health checks of each server of the upstream, run by the master outside "
	       "the request path. A server is used only while both these checks and the "
	       "passive ones (`max_fails`) consider it up.",
};

static const struct core_conf_def upstream_tls_defs[] = {
	{ .name = "enabled", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_upstream_tls_conf, enabled), .dflt = "false",
	  .doc = "Speak HTTPS to the servers (TLS 1.2 or 1.3, modern suites only); health "
		 "checks use it too." },
	{ .name = "verify", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_upstream_tls_conf, verify), .dflt = "true",
	  .doc = "Check each server's certificate chain against `ca_file` and its name against "
		 "`server_name`; a server that fails is a failed try (502 when none is left)." },
	{ .name = "ca_file", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_upstream_tls_conf, ca_file),
	  .dflt = "/etc/ssl/certs/ca-certificates.crt", .min = 1, .max = 255,
	  .doc = "PEM bundle of the certificate authorities trusted for the servers (an "
		 "internal CA, say)." },
	{ .name = "server_name", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_upstream_tls_conf, server_name), .dflt = "",
	  .min = 0, .max = 255,
	  .doc = "Name sent as SNI and required in the certificates, such as `app.internal`; "
		 "empty: each server's IP address (its certificate must then list it)." },
	{ 0 },
};

static const struct core_conf_section upstream_tls_section = {
	.size = sizeof(struct keel_upstream_tls_conf), .defs = upstream_tls_defs,
	.doc = "HTTPS from keel to the upstream's servers, with certificate verification.",
};

static const struct core_conf_def upstream_defs[] = {
	{ .name = "balance", .type = CORE_CONF_ENUM,
	  .offset = offsetof(struct keel_upstream_conf, balance),
	  .dflt = "round_robin", .enums = balances,
	  .doc = "How a server is picked for each request." },
	{ .name = "servers", .type = CORE_CONF_LIST, .item = CORE_CONF_SECTION,
	  .sub = &server_section, .min = 0, .max = 64,
	  .offset = offsetof(struct keel_upstream_conf, servers),
	  .doc = "The app servers." },
	{ .name = "keepalive", .type = CORE_CONF_INT,
	  .offset = offsetof(struct keel_upstream_conf, keepalive),
	  .dflt = "128", .min = 0, .max = 10000,
	  .doc = "Idle connections kept open per server for reuse; 0 closes each after its response." },
	{ .name = "keepalive_timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_upstream_conf, keepalive_timeout),
	  .dflt = "60s", .min = 1 * SEC, .max = 3600 * SEC,
	  .doc = "An idle pooled connection is closed after this long." },
	{ .name = "cookie", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_upstream_conf, cookie),
	  .dflt = "KEELID", .min = 1, .max = 64,
	  .doc = "With `balance: cookie`: the cookie keel sets to pin a client to a server. "
		 "Its value is opaque and signed with `proxy.cookie_key` (else the install key); "
		 "a client whose server is out is moved to a live one with a new cookie." },
	{ .name = "health", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_upstream_conf, health), .sub = &health_section },
	{ .name = "tls", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_upstream_conf, tls), .sub = &upstream_tls_section },
	{ .name = "slow_start", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_upstream_conf, slow_start), .dflt = "0",
	  .min = 0, .max = 3600 * SEC,
	  .doc = "A server back in service gets its weight ramped up over this time; 0: at once." },
	{ .name = "stall_timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_upstream_conf, stall_timeout), .dflt = "500ms",
	  .min = 0, .max = 600 * SEC,
	  .doc = "A server that sends not one byte for this long while two or more requests "
		 "wait for it (and another server is up) is taken out for `fail_timeout`; its "
		 "waiting GET-like requests go to another server at once. 0: off (for apps "
		 "whose only traffic may be long polling)." },
	{ .name = "all_down", .type = CORE_CONF_ENUM, .enums = all_down_modes,
	  .offset = offsetof(struct keel_upstream_conf, all_down), .dflt = "fail_closed",
	  .doc = "When no server is healthy: `fail_closed` answers 503; `fail_open` sends "
		 "requests to every server not marked `down`, as cloud load balancers do." },
	{ 0 }
};

static const struct core_conf_section upstream_section = {
	.size = sizeof(struct keel_upstream_conf), .defs = upstream_defs,
	.line_offset = offsetof(struct keel_upstream_conf, line),
	.check = upstream_check,
	.doc = "A named group of app servers that routes send requests to.",
};

static int route_host_ok(const char *h)
{
	const char *p = h;

	if (strlen(h) > 253)		/* a DNS name's limit; a Host longer than that matches nothing */
		return 0;
	if (p[0] == '*') {
		if (p[1] != '.' || p[2] == '\0')
			return 0;
		p += 2;
	}
	for (; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return 0;
	return 1;
}

static const struct core_conf_def static_defs[] = {
	{ .name = "mount", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_static_conf, mount), .dflt = "", .min = 0, .max = 63,
	  .doc = "The NFS mount in `storage.mounts` whose servers and export hold the files "
		 "(keel reads them through libnfs, not through a kernel mount)." },
	{ .name = "root", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_static_conf, root), .dflt = "/", .min = 1, .max = 255,
	  .doc = "The folder in the export served at the route's path: `/files/a.txt` on the "
		 "route `/files/` is ROOT/a.txt." },
	{ .name = "index", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_static_conf, index), .dflt = "index.html",
	  .min = 0, .max = 63,
	  .doc = "The file served for a folder; empty: none." },
	{ .name = "listing", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_static_conf, listing), .dflt = "false",
	  .doc = "List a folder that has no index file (else 403)." },
	{ .name = "timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_static_conf, timeout), .dflt = "5s",
	  .min = 100, .max = 300 * SEC,
	  .doc = "How long each answer of the NFS server may take; then 504." },
	{ 0 }
};

static const struct core_conf_section static_section = {
	.size = sizeof(struct keel_static_conf), .defs = static_defs,
	.doc = "Files from an NFS export: GET and HEAD, Range, ETag and Last-Modified with "
	       "304 answers, MIME types by extension; no way out of the folder.",
};

static void route_check(struct core_conf_load *ld, void *obj, const char *path,
			int line)
{
	const struct keel_route_conf *r = obj;
	char *const *hosts = r->hosts.v;
	char sub[300];
	size_t i;

	if (r->path != NULL && r->path[0] != '/') {
		snprintf(sub, sizeof(sub), "%s.path", path);
		core_conf_error(ld, line, sub, "must start with '/', got '%s'", r->path);
	}
	if (r->rewrite != NULL && strcmp(r->rewrite, "keep") != 0 &&
	    strcmp(r->rewrite, "strip") != 0 && r->rewrite[0] != '/') {
		snprintf(sub, sizeof(sub), "%s.rewrite", path);
		core_conf_error(ld, line, sub,
				"must be keep, strip, or a path starting with '/'; got '%s'",
				r->rewrite);
	}
	if (r->upstream != NULL && r->serve.mount != NULL &&
	    (r->upstream[0] != '\0') + (r->serve.mount[0] != '\0') + (r->ret != 0) != 1) {
		snprintf(sub, sizeof(sub), "%s.upstream", path);
		core_conf_error(ld, line, sub, r->upstream[0] != '\0' || r->serve.mount[0] != '\0' ?
				"a route has one of an upstream, static files or a return status" :
				"a route needs an upstream, static.mount or a return status");
	}
	if (r->ret != 0 && r->return_url != NULL && r->return_body != NULL) {
		bool redirect = r->ret == 301 || r->ret == 302 || r->ret == 303 || r->ret == 307 ||
				r->ret == 308;

		snprintf(sub, sizeof(sub), "%s.return", path);
		if (r->ret < 200)
			core_conf_error(ld, line, sub, "must be 0 or a status from 200 to 599, got %lld",
					(long long)r->ret);
		else if (redirect && r->return_url[0] == '\0')
			core_conf_error(ld, line, sub, "a redirect (%lld) needs return_url",
					(long long)r->ret);
		else if (!redirect && r->return_url[0] != '\0')
			core_conf_error(ld, line, sub, "return_url goes with 301, 302, 303, 307 or 308, "
					"not %lld", (long long)r->ret);
		else if (redirect && r->return_body[0] != '\0')
			core_conf_error(ld, line, sub, "a redirect has return_url, not return_body");
	}
	if (r->serve.root != NULL && (r->serve.root[0] != '/' || strstr(r->serve.root, "..") ||
				      strchr(r->serve.root, '\\'))) {
		snprintf(sub, sizeof(sub), "%s.static.root", path);
		core_conf_error(ld, line, sub, "must be a folder of the export, starting with '/', "
				"without '..'");
	}
	if (r->serve.index != NULL && (strchr(r->serve.index, '/') || !strcmp(r->serve.index, "..") ||
				       !strcmp(r->serve.index, "."))) {
		snprintf(sub, sizeof(sub), "%s.static.index", path);
		core_conf_error(ld, line, sub, "must be a file name, without '/'");
	}
	for (i = 0; i < r->hosts.n; i++)
		if (hosts[i] != NULL && !route_host_ok(hosts[i])) {	/* NULL: reported */
			snprintf(sub, sizeof(sub), "%s.hosts[%zu]", path, i);
			core_conf_error(ld, line, sub,
					"must be a host name or *.domain of at most 253 characters, "
					"got '%.64s%s'", hosts[i], strlen(hosts[i]) > 64 ? "..." : "");
		}
}

static const struct core_conf_def route_defs[] = {
	{ .name = "hosts", .type = CORE_CONF_LIST, .item = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_route_conf, hosts), .min = 0, .max = 32,
	  .doc = "Host names this route serves (up to 253 characters each): exact, or `*.example.com`; none: any host." },
	{ .name = "path", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_route_conf, path), .dflt = "/", .min = 1, .max = 1024,
	  .doc = "Path prefix; among routes for the same host, the longest matching prefix wins." },
	{ .name = "upstream", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_route_conf, upstream), .dflt = "", .min = 0, .max = 63,
	  .doc = "Name of the upstream that serves it (or `static`)." },
	{ .name = "exact", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_route_conf, exact), .dflt = "false",
	  .doc = "Match the path itself only (nginx's `location = /x`), before any prefix; the query does not count." },
	{ .name = "return", .type = CORE_CONF_INT,
	  .offset = offsetof(struct keel_route_conf, ret), .dflt = "0", .min = 0, .max = 599,
	  .doc = "Answer every request with this status (200-599) instead of proxying: a redirect (301, 302, 303, 307, 308, to `return_url`), a fixed answer (`return_body`), or an error such as 403 or 404; 0: proxy." },
	{ .name = "return_url", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_route_conf, return_url), .dflt = "", .min = 0, .max = 1024,
	  .doc = "With a redirect `return`: the Location. `$scheme`, `$host`, `$request_uri` (path and query), `$uri` (path) and `$args` (query) are the request's." },
	{ .name = "return_body", .type = CORE_CONF_STRING, .flags = CORE_CONF_TEXT,
	  .offset = offsetof(struct keel_route_conf, return_body), .dflt = "", .min = 0, .max = 4096,
	  .doc = "With another `return` status: the body sent (text/plain); empty: keel's short page." },
	{ .name = "static", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_route_conf, serve), .sub = &static_section,
	  .doc = "Serves files from an NFS export instead of an upstream." },
	{ .name = "rewrite", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_route_conf, rewrite), .dflt = "keep", .min = 1, .max = 1024,
	  .doc = "The prefix sent upstream: `keep` it, `strip` it to `/`, or replace it with a path." },
	{ .name = "connect_timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_route_conf, connect_timeout),
	  .dflt = "5s", .min = 10, .max = 600 * SEC,
	  .doc = "Time to connect to a server." },
	{ .name = "send_timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_route_conf, send_timeout),
	  .dflt = "60s", .min = 10, .max = 3600 * SEC,
	  .doc = "Time a server may take to accept more of the request." },
	{ .name = "read_timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_route_conf, read_timeout),
	  .dflt = "60s", .min = 10, .max = 3600 * SEC,
	  .doc = "Longest silence from a server while a response is due (between bytes)." },
	{ .name = "idle_timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_route_conf, idle_timeout),
	  .dflt = "75s", .min = 0, .max = 3600 * SEC,
	  .doc = "A client keep-alive connection idle this long after a response is closed; 0 closes at once." },
	{ .name = "max_body", .type = CORE_CONF_SIZE,
	  .offset = offsetof(struct keel_route_conf, max_body),
	  .dflt = "1M", .min = 0, .max = (int64_t)1 << 40,
	  .doc = "Largest request body; larger gets 413." },
	{ .name = "tries", .type = CORE_CONF_INT,
	  .offset = offsetof(struct keel_route_conf, tries), .dflt = "3", .min = 1, .max = 16,
	  .doc = "Servers tried for one request: after a connect failure, a timeout before any response byte, or an invalid response head." },
	{ .name = "try_timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_route_conf, try_timeout), .dflt = "0", .min = 0, .max = 3600 * SEC,
	  .doc = "Total time for those tries; 0: no limit beyond the other timeouts." },
	{ .name = "retry_5xx", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_route_conf, retry_5xx), .dflt = "false",
	  .doc = "Also try the next server when one answers 5xx to an idempotent request." },
	{ .name = "upstream_header", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_route_conf, upstream_header), .dflt = "false",
	  .doc = "Add `X-Keel-Upstream: <server address>` to responses, to see which server answered." },
	{ .name = "https_redirect", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_route_conf, https_redirect), .dflt = "false",
	  .doc = "Answer plain-HTTP requests with a redirect to the same URL over HTTPS "
		 "(301 for GET and HEAD, 308 for the rest)." },
	{ .name = "https_port", .type = CORE_CONF_INT,
	  .offset = offsetof(struct keel_route_conf, https_port), .dflt = "443",
	  .min = 1, .max = 65535,
	  .doc = "Port the HTTPS redirect points to." },
	{ .name = "hsts", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_route_conf, hsts), .dflt = "0s",
	  .min = 0, .max = (int64_t)2 * 365 * 86400 * SEC,
	  .doc = "`Strict-Transport-Security` max-age sent on HTTPS responses (`365d`); 0 sends none." },
	{ 0 }
};

static const struct core_conf_section route_section = {
	.size = sizeof(struct keel_route_conf), .defs = route_defs,
	.line_offset = offsetof(struct keel_route_conf, line),
	.check = route_check,
	.doc = "Where requests go, by host and path prefix.",
};

static const struct core_conf_def workers_defs[] = {
	{ .name = "count", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_workers_conf, count), .dflt = "0", .min = 0, .max = 64,
	  .doc = "Worker processes running the proxy; 0: one per core." },
	{ .name = "drain_timeout", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_workers_conf, drain_timeout), .dflt = "30s",
	  .min = 0, .max = 3600 * SEC,
	  .doc = "After a reload or SIGTERM, how long old workers may finish requests and tunnels." },
	{ 0 }
};

static const struct core_conf_section workers_section = {
	.size = sizeof(struct keel_workers_conf), .defs = workers_defs,
	.doc = "The worker processes. A master process supervises them: it restarts one "
	       "that dies, and on a reload starts new ones while the old ones drain.",
};

static const struct core_conf_def monitor_defs[] = {
	{ .name = "url", .type = CORE_CONF_URL, .flags = CORE_CONF_REQUIRED,
	  .offset = offsetof(struct keel_monitor_conf, url),
	  .doc = "What to probe: `http://10.0.0.5:8000/app_a/login` (an IP address or localhost)." },
	{ .name = "status", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_monitor_conf, status), .dflt = "200-399", .min = 3, .max = 128,
	  .doc = "Statuses that pass." },
	{ .name = "body", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_monitor_conf, body), .dflt = "", .min = 0, .max = 256,
	  .doc = "Text the body must contain; empty: any." },
	{ .name = "interval", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_monitor_conf, interval), .dflt = "30s",
	  .min = 1 * SEC, .max = 24 * 3600 * SEC, .doc = "Time between probes." },
	{ .name = "timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_monitor_conf, timeout), .dflt = "5s",
	  .min = 10, .max = 600 * SEC, .doc = "A probe not done by then fails." },
	{ 0 }
};

static void monitor_check(struct core_conf_load *ld, void *obj, const char *path, int line)
{
	const struct keel_monitor_conf *m = obj;
	char sub[300];

	if (m->status != NULL && !core_settings_status_ok(m->status)) {
		snprintf(sub, sizeof(sub), "%s.status", path);
		core_conf_error(ld, line, sub, "must be codes or ranges of 100..599, got '%s'",
				m->status);
	}
}

static const struct core_conf_section monitor_section = {
	.size = sizeof(struct keel_monitor_conf), .defs = monitor_defs, .check = monitor_check,
	.doc = "A monitor an operator adds: a URL probed on a schedule.",
};

static const struct core_conf_def monitors_defs[] = {
	{ .name = "routes", .type = CORE_CONF_BOOL, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_monitors_conf, routes), .dflt = "true",
	  .doc = "Probe every route through keel's own front door (the first listener)." },
	{ .name = "servers", .type = CORE_CONF_BOOL, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_monitors_conf, servers), .dflt = "true",
	  .doc = "Probe every upstream server directly." },
	{ .name = "interval", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_monitors_conf, interval), .dflt = "30s",
	  .min = 1 * SEC, .max = 24 * 3600 * SEC,
	  .doc = "Time between probes of the automatic monitors." },
	{ .name = "timeout", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_monitors_conf, timeout), .dflt = "5s",
	  .min = 10, .max = 600 * SEC, .doc = "Timeout of the automatic monitors." },
	{ .name = "status", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_monitors_conf, status), .dflt = "100-499",
	  .min = 3, .max = 128,
	  .doc = "What passes for the automatic monitors: any answer but a 5xx, by default, "
		 "since an app's root may well answer 404 or 401." },
	{ .name = "database", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_monitors_conf, database), .dflt = "", .min = 0, .max = 255,
	  .doc = "SQLite file for the results; empty: `state_dir/monitor.db`." },
	{ .name = "max_db_size", .type = CORE_CONF_SIZE, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_monitors_conf, max_db_size), .dflt = "64M",
	  .min = 64 * KB, .max = (int64_t)16 << 30,
	  .doc = "The results file is kept under this size by dropping the oldest rows "
		 "(raw rows live 48 h, per-minute rows 14 days, per-hour rows 400 days)." },
	{ .name = "list", .type = CORE_CONF_MAP, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_monitors_conf, list), .sub = &monitor_section,
	  .min = 0, .max = 200, .doc = "Monitors an operator adds, by name." },
	{ 0 }
};

static const struct core_conf_section monitors_section = {
	.size = sizeof(struct keel_monitors_conf), .defs = monitors_defs,
	.doc = "Synthetic monitoring: URLs probed on a schedule by the master, results kept "
	       "in SQLite for the UI's charts, failures turned into alerts.",
};

static const struct core_conf_def webhook_defs[] = {
	{ .name = "url", .type = CORE_CONF_URL, .flags = CORE_CONF_REQUIRED,
	  .offset = offsetof(struct keel_webhook_conf, url),
	  .doc = "Where alerts are POSTed as JSON." },
	{ .name = "secret", .type = CORE_CONF_STRING, .flags = CORE_CONF_SECRET,
	  .offset = offsetof(struct keel_webhook_conf, secret), .dflt = "", .min = 0, .max = 256,
	  .doc = "Key for `X-Keel-Signature: sha256=<HMAC-SHA256 of the body, hex>`; empty: no signature." },
	{ 0 }
};

static const struct core_conf_section webhook_section = {
	.size = sizeof(struct keel_webhook_conf), .defs = webhook_defs,
	.doc = "A receiver of alerts.",
};

static const char *const smtp_tls_modes[] = { "starttls", "none", NULL };

static const struct core_conf_def email_defs[] = {
	{ .name = "to", .type = CORE_CONF_LIST, .item = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_email_conf, to), .min = 0, .max = 16,
	  .doc = "Recipients; none: no e-mail." },
	{ .name = "server", .type = CORE_CONF_ADDR, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_email_conf, server), .dflt = "127.0.0.1:25",
	  .doc = "The SMTP server (an address: names are not resolved)." },
	{ .name = "tls", .type = CORE_CONF_ENUM, .flags = CORE_CONF_RELOAD, .enums = smtp_tls_modes,
	  .offset = offsetof(struct keel_email_conf, tls), .dflt = "starttls",
	  .doc = "`starttls` (required before AUTH, TLS 1.2/1.3 by mbedTLS) or `none` for a plain relay." },
	{ .name = "tls_verify", .type = CORE_CONF_BOOL, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_email_conf, tls_verify), .dflt = "true",
	  .doc = "Check the server's certificate against `ca_file` (and `tls_name`)." },
	{ .name = "tls_name", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_email_conf, tls_name), .dflt = "", .min = 0, .max = 255,
	  .doc = "The name the certificate must carry, such as `smtp.example.com`." },
	{ .name = "ca_file", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_email_conf, ca_file),
	  .dflt = "/etc/ssl/certs/ca-certificates.crt", .min = 1, .max = 255,
	  .doc = "PEM bundle of trusted certificate authorities." },
	{ .name = "user", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_email_conf, user), .dflt = "", .min = 0, .max = 255,
	  .doc = "AUTH (PLAIN, else LOGIN) user; empty: no AUTH." },
	{ .name = "password", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD | CORE_CONF_SECRET,
	  .offset = offsetof(struct keel_email_conf, password), .dflt = "", .min = 0, .max = 255,
	  .doc = "AUTH password." },
	{ .name = "from", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_email_conf, from), .dflt = "keel@localhost", .min = 3, .max = 255,
	  .doc = "Sender address." },
	{ .name = "helo", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_email_conf, helo), .dflt = "keel", .min = 1, .max = 255,
	  .doc = "Name keel gives in EHLO." },
	{ 0 }
};

static void email_check(struct core_conf_load *ld, void *obj, const char *path, int line)
{
	const struct keel_email_conf *e = obj;
	char *const *to = e->to.v;
	char sub[300];
	size_t i;

	for (i = 0; i < e->to.n; i++)
		if (to[i] != NULL &&	/* NULL: it failed to load, already reported */
		    (strchr(to[i], '@') == NULL || strpbrk(to[i], "<>\r\n ") != NULL)) {
			snprintf(sub, sizeof(sub), "%s.to[%zu]", path, i);
			core_conf_error(ld, line, sub, "not an e-mail address: '%s'", to[i]);
		}
	if (e->from != NULL && (strchr(e->from, '@') == NULL || strpbrk(e->from, "<>\r\n ") != NULL)) {
		snprintf(sub, sizeof(sub), "%s.from", path);
		core_conf_error(ld, line, sub, "not an e-mail address: '%s'", e->from);
	}
	if (e->password != NULL && e->password[0] != '\0' && e->tls == KEEL_SMTP_NONE) {
		snprintf(sub, sizeof(sub), "%s.password", path);
		core_conf_error(ld, line, sub, "would be sent in clear text: use tls: starttls");
	}
}

static const struct core_conf_section email_section = {
	.size = sizeof(struct keel_email_conf), .defs = email_defs, .check = email_check,
	.doc = "Alerts by e-mail (SMTP). Failed sends are retried with backoff.",
};

static const struct core_conf_def alerts_defs[] = {
	{ .name = "failures", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_alerts_conf, failures), .dflt = "1", .min = 1, .max = 100,
	  .doc = "A monitor with at least this many failures..." },
	{ .name = "window", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_alerts_conf, window), .dflt = "15m",
	  .min = 1 * SEC, .max = 24 * 3600 * SEC,
	  .doc = "...within this time opens an incident: one alert, then nothing more about it." },
	{ .name = "recover", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_alerts_conf, recover), .dflt = "2", .min = 1, .max = 100,
	  .doc = "Passed probes in a row that close an incident, with a recovery notice." },
	{ .name = "max_per_hour", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_alerts_conf, max_per_hour), .dflt = "30", .min = 1, .max = 10000,
	  .doc = "Notifications sent per hour at most; past it they are logged, not sent." },
	{ .name = "webhooks", .type = CORE_CONF_LIST, .item = CORE_CONF_SECTION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_alerts_conf, webhooks), .sub = &webhook_section,
	  .min = 0, .max = 8, .doc = "Receivers of alerts and recoveries." },
	{ .name = "email", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_alerts_conf, email), .sub = &email_section },
	{ 0 }
};

static const struct core_conf_section alerts_section = {
	.size = sizeof(struct keel_alerts_conf), .defs = alerts_defs,
	.doc = "Alerts from monitors and from servers going DOWN and UP.",
};

static const struct core_conf_def redis_front_defs[] = {
	{ .name = "listen", .type = CORE_CONF_LIST, .item = CORE_CONF_ADDR, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_front_conf, listen), .min = 0, .max = 8,
	  .doc = "Addresses the apps use as their one Redis: `10.0.0.2:6379`. Empty: no front." },
	{ .name = "max_clients", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_front_conf, max_clients), .dflt = "10000",
	  .min = 1, .max = 1000000,
	  .doc = "Client connections per worker at most; past it, new ones wait in the queue." },
	{ .name = "wait_master", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_front_conf, wait_master), .dflt = "5s",
	  .min = 0, .max = 300 * SEC,
	  .doc = "How long a client that connects while no master is known waits for one "
		 "before it gets an error and is closed." },
	{ .name = "max_bulk", .type = CORE_CONF_SIZE, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_front_conf, max_bulk), .dflt = "512M",
	  .min = 1024, .max = 4 * 1024 * MB,
	  .doc = "Longest argument a client may send (Redis's proto-max-bulk-len); a longer "
		 "one closes the connection with an error." },
	{ .name = "idle_timeout", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_front_conf, idle_timeout), .dflt = "0",
	  .min = 0, .max = 24 * 3600 * SEC,
	  .doc = "Closes a client that sent nothing and waits for nothing this long; 0: never "
		 "(blocking commands and subscribers wait as long as they like)." },
	{ 0 }
};

static const struct core_conf_section redis_front_section = {
	.size = sizeof(struct keel_redis_front_conf), .defs = redis_front_defs,
	.doc = "The RESP front: one stable Redis address for the apps. Each client gets its "
	       "own connection to the current master, so pipelining, MULTI/EXEC, blocking "
	       "commands, SUBSCRIBE, AUTH, HELLO and SELECT behave as they do on Redis. When "
	       "the master changes, clients are disconnected (as Sentinel does with CLIENT "
	       "KILL) and their reconnects reach the new master.",
};

static const struct core_conf_def redis_defs[] = {
	{ .name = "sentinels", .type = CORE_CONF_LIST, .item = CORE_CONF_ADDR, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_conf, sentinels), .min = 0, .max = 16,
	  .doc = "Sentinel addresses, asked in order; others they know of are added." },
	{ .name = "master_name", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_conf, master_name), .dflt = "mymaster",
	  .min = 1, .max = 63, .doc = "The master's name in the Sentinels' configuration." },
	{ .name = "nodes", .type = CORE_CONF_LIST, .item = CORE_CONF_ADDR, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_conf, nodes), .min = 0, .max = 16,
	  .doc = "Without Sentinels: the Redis nodes, each asked ROLE; the one master is used." },
	{ .name = "username", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_conf, username), .dflt = "", .min = 0, .max = 63,
	  .doc = "ACL user keel's own connections authenticate as; empty: `default`." },
	{ .name = "password", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD | CORE_CONF_SECRET,
	  .offset = offsetof(struct keel_redis_conf, password), .dflt = "", .min = 0, .max = 127,
	  .doc = "Password for keel's own connections (ROLE checks, shared state); clients of "
		 "the front send their own AUTH." },
	{ .name = "sentinel_username", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_conf, sentinel_username), .dflt = "",
	  .min = 0, .max = 63, .doc = "ACL user for the Sentinels, if they require one." },
	{ .name = "sentinel_password", .type = CORE_CONF_STRING,
	  .flags = CORE_CONF_RELOAD | CORE_CONF_SECRET,
	  .offset = offsetof(struct keel_redis_conf, sentinel_password), .dflt = "",
	  .min = 0, .max = 127, .doc = "Password for the Sentinels (their requirepass)." },
	{ .name = "db", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_conf, db), .dflt = "0", .min = 0, .max = 15,
	  .doc = "Database index for keel's own keys." },
	{ .name = "connect_timeout", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_conf, connect_timeout), .dflt = "1s",
	  .min = 10, .max = 60 * SEC, .doc = "Connecting to a Redis node." },
	{ .name = "command_timeout", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_conf, command_timeout), .dflt = "1s",
	  .min = 10, .max = 60 * SEC,
	  .doc = "keel's own commands (ROLE, shared state); a node that does not answer in "
		 "time counts as lost." },
	{ .name = "sentinel_timeout", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_conf, sentinel_timeout), .dflt = "300ms",
	  .min = 10, .max = 10 * SEC,
	  .doc = "Connecting to and asking one Sentinel, before the next is asked." },
	{ .name = "check_interval", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_redis_conf, check_interval), .dflt = "1s",
	  .min = 100, .max = 60 * SEC,
	  .doc = "Time between ROLE checks of the master (they also read the replicas' lag)." },
	{ .name = "front", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_redis_conf, front), .sub = &redis_front_section },
	{ 0 }
};

static void redis_check(struct core_conf_load *ld, void *obj, const char *path, int line)
{
	const struct keel_redis_conf *r = obj;

	(void)path;
	if (r->sentinels.n > 0 && r->nodes.n > 0)
		core_conf_error(ld, line, "redis.nodes",
				"give either sentinels (and master_name) or nodes, not both");
	if (r->front.listen.n > 0 && r->sentinels.n == 0 && r->nodes.n == 0)
		core_conf_error(ld, line, "redis.front.listen",
				"the front needs redis.sentinels or redis.nodes to find the master");
}

static const struct core_conf_section redis_section = {
	.size = sizeof(struct keel_redis_conf), .defs = redis_defs, .check = redis_check,
	.line_offset = offsetof(struct keel_redis_conf, line),
	.doc = "The shared Redis (the apps' session store). keel finds the master through "
	       "Sentinel or by asking each node, verifies it with ROLE, follows failovers, "
	       "and gives the apps one stable address (`front`). Without sentinels or nodes, "
	       "keel keeps its own shared state in memory.",
};

/* ---- storage ------------------------------------------------------------------------ */

static const char *const mount_types[] = { "nfs", "glusterfs", NULL };

static const struct core_conf_def mount_defs[] = {
	{ .name = "type", .type = CORE_CONF_ENUM, .enums = mount_types,
	  .offset = offsetof(struct keel_mount_conf, type), .dflt = "nfs",
	  .doc = "`nfs` (the servers are probed through libnfs from keel's own loop) or "
		 "`glusterfs` (a FUSE mount; the servers' glusterd is probed over TCP)." },
	{ .name = "servers", .type = CORE_CONF_LIST, .item = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_mount_conf, servers), .min = 1, .max = 8,
	  .doc = "The servers that export it, as IP addresses, primary first, then backups. "
		 "NFS: keel mounts from the first that answers and switches when it stops. "
		 "GlusterFS: the first is the volfile server, the others its "
		 "`backup-volfile-servers`." },
	{ .name = "export", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_mount_conf, export), .dflt = "", .min = 0, .max = 255,
	  .doc = "NFS: the exported path on the servers, such as `/export`." },
	{ .name = "volume", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_mount_conf, volume), .dflt = "", .min = 0, .max = 255,
	  .doc = "GlusterFS: the volume's name, such as `gv0`." },
	{ .name = "path", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_mount_conf, path), .dflt = "", .min = 0, .max = 255,
	  .doc = "Where keel mounts the share on this box (`/share`), creating the folder if "
		 "needed. Empty: keel only watches the servers and mounts nothing." },
	{ .name = "options", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_mount_conf, options), .dflt = "", .min = 0, .max = 400,
	  .doc = "Mount options, comma-separated, added to keel's defaults (an option named "
		 "here replaces the default of the same name). NFS defaults: "
		 "`nfsvers=4.1,hard,timeo=100,retrans=3,noresvport`. GlusterFS defaults: "
		 "`backup-volfile-servers=` the other servers and `log-file=` "
		 "`STATE_DIR/glusterfs-NAME.log`." },
	{ .name = "adopt", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_mount_conf, adopt), .dflt = "false",
	  .doc = "Take over a mount of `path` that keel did not make (from fstab, by hand), if "
		 "it is from one of `servers`. Without it keel never touches such a mount and "
		 "reports the mount `failed`." },
	{ .name = "failback", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_mount_conf, failback), .dflt = "true",
	  .doc = "NFS: once the primary has answered for 10 s again, remount from it." },
	{ .name = "mount_timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_mount_conf, mount_timeout), .dflt = "5s",
	  .min = 100, .max = 300 * SEC,
	  .doc = "Deadline of one mount attempt. The attempt runs in its own process, which "
		 "keel kills when the deadline passes; attempts for other mounts never wait "
		 "for it." },
	{ .name = "canary", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_mount_conf, canary), .dflt = "true",
	  .doc = "Write, sync and read back `.keel-canary-NODE-MOUNT` in the mount every "
		 "`canary_interval` (set false for a read-only share: then only statvfs)." },
	{ .name = "canary_interval", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_mount_conf, canary_interval), .dflt = "2s",
	  .min = 100, .max = 3600 * SEC,
	  .doc = "Time between two checks of the mounted filesystem (statvfs and the canary), "
		 "each in a child process." },
	{ .name = "canary_timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_mount_conf, canary_timeout), .dflt = "3s",
	  .min = 50, .max = 300 * SEC,
	  .doc = "A check that has not come back by then makes the mount `hung`; its process "
		 "is killed, or abandoned (and counted) if the kernel holds it." },
	{ .name = "probe_interval", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_mount_conf, probe_interval), .dflt = "500ms",
	  .min = 100, .max = 3600 * SEC,
	  .doc = "Time between two probes of each server (GETATTR of the export's root and "
		 "FSSTAT, through libnfs in keel's own loop)." },
	{ .name = "probe_timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_mount_conf, probe_timeout), .dflt = "1s",
	  .min = 50, .max = 60 * SEC,
	  .doc = "keel's own deadline for a probe (connecting and mounting included), instead "
		 "of the 60 s RPC timeouts of libnfs and of the kernel." },
	{ .name = "slow_after", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_mount_conf, slow_after), .dflt = "200ms",
	  .min = 1, .max = 60 * SEC,
	  .doc = "A server that answers a probe slower than this is `slow`." },
	{ .name = "misses", .type = CORE_CONF_INT,
	  .offset = offsetof(struct keel_mount_conf, misses), .dflt = "2", .min = 1, .max = 100,
	  .doc = "Probes in a row that time out before a server is `hung`; with the defaults "
		 "a server that stops answering is `hung` within 2.5 s." },
	{ 0 }
};

/* Whether s holds only letters, digits and the characters of also. */
static bool mount_plain(const char *s, const char *also)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(also, *s) != NULL))
			return false;
	return true;
}

/* A path as the kernel shows it in mountinfo: no "//", no "." or ".."
 * part, no control character. */
static bool mount_path_plain(const char *p)
{
	for (; *p != '\0'; p++) {
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			return false;
		if (p[0] == '/' && (p[1] == '/' ||
		    (p[1] == '.' && (p[2] == '/' || p[2] == '\0')) ||
		    (p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == '\0'))))
			return false;
	}
	return true;
}

/* Servers are addresses: keel resolves no names for storage yet. */
static void mount_check(struct core_conf_load *ld, void *obj, const char *path, int line)
{
	const struct keel_mount_conf *m = obj;
	char *const *srv = m->servers.v;
	unsigned char a[16];
	char sub[160];
	size_t i;

	/* The name is in alert subjects, mail headers and metric labels. */
	if (m->name != NULL && !mount_plain(m->name, "-_."))
		core_conf_error(ld, line, path, "a mount's name may hold only letters, "
				"digits, '-', '_' and '.'");
	for (i = 0; i < m->servers.n; i++)
		if (inet_pton(AF_INET, srv[i], a) != 1 && inet_pton(AF_INET6, srv[i], a) != 1) {
			snprintf(sub, sizeof(sub), "%s.servers[%zu]", path, i);
			core_conf_error(ld, line, sub, "\"%s\" is not an IP address", srv[i]);
		}
	if (m->type == KEEL_MOUNT_NFS && (m->export == NULL || m->export[0] != '/')) {
		snprintf(sub, sizeof(sub), "%s.export", path);
		core_conf_error(ld, line, sub, m->export == NULL || m->export[0] == '\0' ?
				"an NFS mount needs the exported path, such as \"/export\"" :
				"must start with '/'");
	}
	if (m->type == KEEL_MOUNT_NFS && m->volume != NULL && m->volume[0] != '\0') {
		snprintf(sub, sizeof(sub), "%s.volume", path);
		core_conf_error(ld, line, sub, "is for GlusterFS; an NFS mount names its export");
	}
	if (m->type == KEEL_MOUNT_GLUSTERFS) {
		snprintf(sub, sizeof(sub), "%s.volume", path);
		if (m->volume == NULL || m->volume[0] == '\0')
			core_conf_error(ld, line, sub, "a GlusterFS mount needs its volume's name");
		else if (!mount_plain(m->volume, "-_."))
			core_conf_error(ld, line, sub, "a volume's name may hold only letters, "
					"digits, '-', '_' and '.'");
		if (m->export != NULL && m->export[0] != '\0') {
			snprintf(sub, sizeof(sub), "%s.export", path);
			core_conf_error(ld, line, sub, "is for NFS; a GlusterFS mount names its volume");
		}
		if (m->path == NULL || m->path[0] == '\0') {
			snprintf(sub, sizeof(sub), "%s.path", path);
			core_conf_error(ld, line, sub, "a GlusterFS mount needs its mount point");
		}
	}
	/* Options go to mount(8) as one argument: no spaces, nothing odd. */
	if (m->options != NULL && !mount_plain(m->options, "-_.,=/:+@")) {
		snprintf(sub, sizeof(sub), "%s.options", path);
		core_conf_error(ld, line, sub, "may hold only letters, digits and -_.,=/:+@");
	}
	if (m->path != NULL && m->path[0] != '\0' &&
	    (m->path[0] != '/' || (m->path[1] != '\0' && m->path[strlen(m->path) - 1] == '/'))) {
		snprintf(sub, sizeof(sub), "%s.path", path);
		core_conf_error(ld, line, sub, "must be an absolute path, without a trailing '/'");
	} else if (m->path != NULL && strcmp(m->path, "/") == 0) {
		snprintf(sub, sizeof(sub), "%s.path", path);
		core_conf_error(ld, line, sub, "keel does not mount over /");
	} else if (m->path != NULL && !mount_path_plain(m->path)) {
		snprintf(sub, sizeof(sub), "%s.path", path);
		core_conf_error(ld, line, sub, "must be a plain path: no '//', '.' or '..' "
				"parts, no control characters");
	}
	if (m->probe_timeout >= m->probe_interval * 10) {
		snprintf(sub, sizeof(sub), "%s.probe_timeout", path);
		core_conf_error(ld, line, sub, "must be less than 10 times probe_interval");
	}
}

static const struct core_conf_section mount_section = {
	.size = sizeof(struct keel_mount_conf), .defs = mount_defs, .check = mount_check,
	.line_offset = offsetof(struct keel_mount_conf, line),
	.doc = "A shared folder (the apps' `/share`) and the NFS or GlusterFS servers that "
	       "export it. keel mounts it, watches each server from its own event loop and the "
	       "mount from child processes with deadlines, remounts and fails over, and never "
	       "blocks on it.",
};

static const struct core_conf_def storage_defs[] = {
	{ .name = "mounts", .type = CORE_CONF_MAP, .flags = CORE_CONF_RELOAD,
	  .sub = &mount_section, .min = 0, .max = 32,
	  .offset = offsetof(struct keel_storage_conf, mounts),
	  .doc = "Shared storage, by name." },
	{ 0 }
};

/* Two mounts on one folder would take it from each other. */
static void storage_check(struct core_conf_load *ld, void *obj, const char *path, int line)
{
	const struct keel_storage_conf *c = obj;
	const struct keel_mount_conf *m = c->mounts.v;
	char sub[160];
	size_t i, j;

	(void)line;
	for (i = 0; i < c->mounts.n; i++)
		for (j = 0; j < c->mounts.n; j++) {
			size_t n = strlen(m[j].path);

			if (i == j || m[i].path[0] == '\0' || m[j].path[0] == '\0')
				continue;
			snprintf(sub, sizeof(sub), "%s.mounts.%s.path", path, m[i].name);
			if (j < i && strcmp(m[i].path, m[j].path) == 0)
				core_conf_error(ld, m[i].line, sub, "%s is already the path of mount %s",
						m[i].path, m[j].name);
			else if (strncmp(m[i].path, m[j].path, n) == 0 && m[i].path[n] == '/')
				core_conf_error(ld, m[i].line, sub, "%s is inside mount %s (%s): one "
						"mount's unmount would take the other", m[i].path,
						m[j].name, m[j].path);
		}
}

static const struct core_conf_section storage_section = {
	.size = sizeof(struct keel_storage_conf), .defs = storage_defs, .check = storage_check,
	.doc = "Shared storage for the app servers.",
};

static const struct core_conf_def watchdog_defs[] = {
	{ .name = "device", .type = CORE_CONF_STRING,
	  .offset = offsetof(struct keel_watchdog_conf, device), .dflt = "",
	  .min = 0, .max = 255,
	  .doc = "The hardware watchdog keel pings, such as `/dev/watchdog`; empty: none (a host "
		 "that did not ask for one never has it armed). When keel stops cleanly it "
		 "disarms it." },
	{ .name = "timeout", .type = CORE_CONF_DURATION,
	  .offset = offsetof(struct keel_watchdog_conf, timeout), .dflt = "15s",
	  .min = SEC, .max = 600 * SEC,
	  .doc = "How long the hardware waits for a ping before it resets the box (in whole "
		 "seconds; the hardware may round it, and the log says what it took). keel "
		 "pings four times per timeout, and only while its checks pass." },
	{ .name = "front_door", .type = CORE_CONF_BOOL,
	  .offset = offsetof(struct keel_watchdog_conf, front_door), .dflt = "true",
	  .doc = "Ping only while a request to the first listener is answered (any HTTP "
		 "status): workers that stopped answering reset the box though the master runs." },
	{ 0 }
};

static const struct core_conf_section watchdog_section = {
	.size = sizeof(struct keel_watchdog_conf), .defs = watchdog_defs,
	.doc = "The hardware watchdog, pinged only while keel's master loop runs, the front "
	       "door answers and `state_dir` takes a write.",
};

static const struct core_conf_def ha_defs[] = {
	{ .name = "interface", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD | CORE_CONF_NODE,
	  .offset = offsetof(struct keel_ha_conf, interface), .dflt = "", .min = 0, .max = 15,
	  .doc = "The network interface the virtual addresses live on and VRRP adverts go out "
		 "of (to 224.0.0.18, or ff02::12 for IPv6); empty: high availability is off." },
	{ .name = "vrid", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_ha_conf, vrid), .dflt = "51", .min = 1, .max = 255,
	  .doc = "Virtual router id: the same on every box (keel or keepalived) that shares "
		 "these addresses, and different from any other VRRP group on the link." },
	{ .name = "priority", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD | CORE_CONF_NODE,
	  .offset = offsetof(struct keel_ha_conf, priority), .dflt = "100", .min = 1, .max = 254,
	  .doc = "This box's priority; the box with the highest holds the addresses (on a tie, "
		 "the higher interface address)." },
	{ .name = "addresses", .type = CORE_CONF_LIST, .item = CORE_CONF_STRING,
	  .flags = CORE_CONF_RELOAD, .min = 0, .max = VRRP_MAX_ADDRS_CONF,
	  .offset = offsetof(struct keel_ha_conf, addresses),
	  .doc = "The virtual addresses (`IP` or `IP/prefix`, /32 or /128 when not given), each "
		 "on the interface's subnet, all IPv4 or all IPv6: the router's family follows "
		 "them. The master adds them to the interface and announces them with gratuitous "
		 "ARP (IPv6: unsolicited neighbour adverts); IPv6 adverts go from the interface's "
		 "link-local address to ff02::12." },
	{ .name = "advert_interval", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_ha_conf, advert_interval), .dflt = "1s",
	  .min = 100, .max = 40 * SEC,
	  .doc = "Time between the master's adverts (in 10 ms steps). A backup takes over after "
		 "three missed ones and a skew that is shorter for a higher priority: about 3.6 s "
		 "at 1 s, 0.36 s at 100 ms." },
	{ .name = "preempt", .type = CORE_CONF_BOOL, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_ha_conf, preempt), .dflt = "true",
	  .doc = "A box of higher priority takes the addresses from a master of lower priority; "
		 "false: a master keeps them until it fails." },
	{ .name = "preempt_delay", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_ha_conf, preempt_delay), .dflt = "0s",
	  .min = 0, .max = 3600 * SEC,
	  .doc = "After this box starts, how long it waits before it preempts a master of lower "
		 "priority (so a box that flaps does not take the addresses at every start)." },
	{ .name = "track", .type = CORE_CONF_BOOL, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_ha_conf, track), .dflt = "true",
	  .doc = "Track this box's own health: its first plain listener answers a request (any "
		 "status), every upstream has a server up, and no storage mount is failing. A box "
		 "that fails `fall` checks in a row advertises priority 1; a master gives the "
		 "addresses away at once (a priority-0 advert). It counts as healthy again after "
		 "`rise` good checks in a row." },
	{ .name = "check_interval", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_ha_conf, check_interval), .dflt = "1s",
	  .min = 100, .max = 60 * SEC,
	  .doc = "Time between two of those checks." },
	{ .name = "fall", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_ha_conf, fall), .dflt = "3", .min = 1, .max = 100,
	  .doc = "Failed checks in a row that make this box faulty." },
	{ .name = "rise", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_ha_conf, rise), .dflt = "5", .min = 1, .max = 100,
	  .doc = "Good checks in a row that make a faulty box healthy again." },
	{ .name = "peers", .type = CORE_CONF_LIST, .item = CORE_CONF_STRING,
	  .flags = CORE_CONF_RELOAD | CORE_CONF_NODE, .min = 0, .max = 8,
	  .offset = offsetof(struct keel_ha_conf, peers),
	  .doc = "The other boxes' interface addresses (of the virtual addresses' family), for "
		 "networks without multicast "
		 "(most clouds): adverts go to each of them, and only theirs are heard. Empty: "
		 "multicast to 224.0.0.18. keepalived's `unicast_peer` is the same." },
	{ .name = "auth_key", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD | CORE_CONF_SECRET,
	  .offset = offsetof(struct keel_ha_conf, auth_key), .dflt = "", .min = 0, .max = 255,
	  .doc = "keel-to-keel only: a shared secret (16 characters or more, the same on every "
		 "box) that signs each advert (HMAC-SHA256, with a counter against replay); "
		 "adverts without a good signature are ignored. RFC 5798 has no authentication, "
		 "so keepalived neither reads these adverts nor sends ones keel takes. Empty: "
		 "plain VRRP version 3." },
	{ 0 }
};

/* Every address must be an IPv4 address, with a prefix of 1-32, listed once. */
/* An address of either family: AF_INET or AF_INET6 with its 16 bytes
 * (IPv4 in the first 4), or 0. */
static int ha_parse_ip(const char *s, unsigned char out[16])
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, out) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, s, out) == 1)
		return AF_INET6;
	return 0;
}

static void ha_check(struct core_conf_load *ld, void *obj, const char *path, int line)
{
	const struct keel_ha_conf *c = obj;
	char *const *a = c->addresses.v;
	char sub[96], ip[64];
	unsigned char in[VRRP_MAX_ADDRS_CONF][16], peer[16];
	int fam = 0, f;
	size_t i, j;

	if (c->interface[0] != '\0' && c->addresses.n == 0)
		core_conf_error(ld, line, path, "ha.interface is set but ha.addresses is empty");
	if (c->auth_key != NULL && c->auth_key[0] != '\0' && strlen(c->auth_key) < 16 &&
	    strcmp(c->auth_key, "(secret)") != 0) {
		snprintf(sub, sizeof(sub), "%s.auth_key", path);
		core_conf_error(ld, line, sub, "16 characters or more, the same on every box");
	}
	for (i = 0; i < c->addresses.n; i++) {
		const char *slash = strchr(a[i], '/');
		size_t n = slash != NULL ? (size_t)(slash - a[i]) : strlen(a[i]);
		char *end;
		long plen = 0;

		snprintf(sub, sizeof(sub), "%s.addresses[%zu]", path, i);
		if (n >= sizeof(ip) || (memcpy(ip, a[i], n), ip[n] = '\0',
					f = ha_parse_ip(ip, in[i])) == 0) {
			core_conf_error(ld, line, sub, "\"%s\" is not an IP address (IP or IP/prefix)",
					a[i]);
			continue;
		}
		if (slash != NULL) {
			errno = 0;
			plen = strtol(slash + 1, &end, 10);
			if (slash[1] == '\0' || *end != '\0' || errno != 0 || plen < 1 ||
			    plen > (f == AF_INET ? 32 : 128)) {
				core_conf_error(ld, line, sub, "\"%s\": the prefix length must be 1-%d",
						a[i], f == AF_INET ? 32 : 128);
				continue;
			}
		}
		if (fam != 0 && f != fam) {
			core_conf_error(ld, line, sub, "%s is %s and the first address is not: a "
					"virtual router is of one family", ip,
					f == AF_INET ? "IPv4" : "IPv6");
			continue;
		}
		fam = f;
		for (j = 0; j < i; j++)
			if (!memcmp(in[j], in[i], 16))
				core_conf_error(ld, line, sub, "%s is listed twice", ip);
	}
	for (i = 0; i < c->peers.n; i++) {
		char *const *peers = c->peers.v;

		snprintf(sub, sizeof(sub), "%s.peers[%zu]", path, i);
		f = ha_parse_ip(peers[i], peer);
		if (f == 0 || (fam != 0 && f != fam))
			core_conf_error(ld, line, sub, "\"%s\" is not an %s address", peers[i],
					fam == AF_INET6 ? "IPv6" : "IPv4");
	}
}

static const struct core_conf_section ha_section = {
	.size = sizeof(struct keel_ha_conf), .defs = ha_defs, .check = ha_check,
	.doc = "High availability: two or more keel boxes (or keel and keepalived) share "
	       "virtual addresses by VRRP version 3 (RFC 5798). The master holds them; when it "
	       "stops advertising, the backup with the highest priority takes them over.",
};

static const struct core_conf_def cluster_defs[] = {
	{ .name = "name", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_cluster_conf, name), .dflt = "", .min = 0, .max = 63,
	  .doc = "The cluster this gateway belongs to; empty: none. Gateways with the same name "
		 "and `key` that share a Redis (the `redis` section) share their configuration: "
		 "a change applied on one is applied on all, but for each box's own settings "
		 "(`node`, `listeners`, `admin.listen`, `ha.interface`, `ha.priority`, "
		 "`ha.peers`, `workers`, `system`, `watchdog`, `update`, `cluster`). A gateway "
		 "that was away catches up on its return; two that changed it apart are shown in "
		 "conflict until an admin keeps one." },
	{ .name = "key", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD | CORE_CONF_SECRET,
	  .offset = offsetof(struct keel_cluster_conf, key), .dflt = "", .min = 0, .max = 255,
	  .doc = "A shared secret, the same on every gateway of the cluster (16 characters or "
		 "more): what goes through Redis is encrypted and authenticated with it, so "
		 "Redis never sees the configuration's secrets and a gateway takes a change "
		 "only from another holder of the key." },
	{ 0 }
};

static void cluster_check(struct core_conf_load *ld, void *obj, const char *path, int line)
{
	const struct keel_cluster_conf *c = obj;
	const char *p;
	char sub[64];

	snprintf(sub, sizeof(sub), "%s.name", path);
	for (p = c->name; p != NULL && *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.')) {
			core_conf_error(ld, line, sub, "may hold only letters, digits, '-', '_' "
					"and '.'");
			break;
		}
	snprintf(sub, sizeof(sub), "%s.key", path);
	/* "(secret)": a masked key sent back, which the running one replaces. */
	if (c->name != NULL && c->name[0] != '\0' &&
	    (c->key == NULL || (strlen(c->key) < 16 && strcmp(c->key, "(secret)") != 0)))
		core_conf_error(ld, line, sub, "a cluster needs a key of 16 characters or more, "
				"the same on every gateway");
}

static const struct core_conf_section cluster_section = {
	.size = sizeof(struct keel_cluster_conf), .defs = cluster_defs, .check = cluster_check,
	.doc = "Gateways that share one configuration. It travels through the Redis of the "
	       "`redis` section, encrypted with `key`; each gateway keeps every revision in its "
	       "own store.",
};

static const struct core_conf_def update_defs[] = {
	{ .name = "health_timeout", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_update_conf, health_timeout), .dflt = "120s",
	  .min = 10 * SEC, .max = 3600 * SEC,
	  .doc = "After an update, how long the new slot has to pass keel's own checks (the "
		 "proxy and the admin UI answer, the config store reads, the storage is mounted "
		 "as configured) before it is committed. If it does not, keel marks the slot bad "
		 "and reboots into the old one, and says why on the Update page." },
	{ .name = "tries", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_update_conf, tries), .dflt = "3",
	  .min = 1, .max = 9,
	  .doc = "Boots a new slot gets before the boot loader goes back to the old one by "
		 "itself (a power cut during its first boot then costs one try, not the update). "
		 "Counted only while a slot is on trial, never for a committed one." },
	{ 0 }
};

static const struct core_conf_section update_section = {
	.size = sizeof(struct keel_update_conf), .defs = update_defs,
	.doc = "Signed A/B updates of a keel image (keel as PID 1 only).",
};

static const char *const escalations[] = { "degraded", "reboot", NULL };
static const char *const gates[] = { "link", "address", "clock", "storage", NULL };

static const struct core_conf_def supervise_defs[] = {
	{ .name = "progress_limit", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_supervise_conf, progress_limit), .dflt = "5s",
	  .min = SEC, .max = 600 * SEC,
	  .doc = "A process whose loop makes no progress for this long is killed and "
		 "restarted (\"no progress for 5 s\")." },
	{ .name = "backoff_min", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_supervise_conf, backoff_min), .dflt = "100ms",
	  .min = 10, .max = 60 * SEC,
	  .doc = "Delay before the first restart; it doubles with each restart up to "
		 "`backoff_max`, each delay picked at random in its upper half, and starts over "
		 "once a process has run `backoff_max` without exiting." },
	{ .name = "backoff_max", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_supervise_conf, backoff_max), .dflt = "30s",
	  .min = 10, .max = 3600 * SEC,
	  .doc = "Longest delay between restarts." },
	{ .name = "restarts", .type = CORE_CONF_INT, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_supervise_conf, restarts), .dflt = "10",
	  .min = 1, .max = 64,
	  .doc = "After this many restarts within `window`, the next exit marks the process "
		 "failed: it stays down, an alert goes out, the rest keeps running, and "
		 "`escalation` says what follows. A configuration applied (or a reload) "
		 "starts failed processes again." },
	{ .name = "window", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_supervise_conf, window), .dflt = "5m",
	  .min = 10 * SEC, .max = 86400 * SEC,
	  .doc = "The span `restarts` counts over." },
	{ .name = "escalation", .type = CORE_CONF_ENUM, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_supervise_conf, escalation), .dflt = "degraded",
	  .enums = escalations,
	  .doc = "What a failed process leads to: `degraded` (the rest runs on) or `reboot` "
		 "(the hardware watchdog is no longer pinged, so it resets the box; keel as "
		 "PID 1 reboots it itself)." },
	{ .name = "wait_for", .type = CORE_CONF_LIST, .item = CORE_CONF_ENUM, .enums = gates,
	  .flags = CORE_CONF_RELOAD, .min = 0, .max = 4,
	  .offset = offsetof(struct keel_supervise_conf, wait_for),
	  .doc = "Readiness gates the proxy workers wait for before they start: `link` (every "
		 "interface of `system.interfaces` has its link), `address` (and its address or "
		 "DHCP lease), `clock` (the clock was set from NTP), `storage` (every managed "
		 "mount is mounted). The status and the dashboard show what is awaited." },
	{ .name = "wait_max", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_supervise_conf, wait_max), .dflt = "60s",
	  .min = 0, .max = 3600 * SEC,
	  .doc = "The longest the workers wait for `wait_for`; then they start anyway, and the "
		 "log says which gate was still closed." },
	{ 0 }
};

static void supervise_check(struct core_conf_load *ld, void *obj, const char *path,
			    int line)
{
	const struct keel_supervise_conf *s = obj;

	if (s->backoff_min > s->backoff_max)
		core_conf_error(ld, line, path, "backoff_min (%lld ms) is above backoff_max "
				"(%lld ms)", (long long)s->backoff_min, (long long)s->backoff_max);
}

static const struct core_conf_section supervise_section = {
	.size = sizeof(struct keel_supervise_conf), .defs = supervise_defs,
	.check = supervise_check,
	.doc = "Supervision of keel's processes: the master restarts a proxy worker that dies "
	       "or stops making progress, and `keel --supervise` (or keel as PID 1) runs a "
	       "small supervisor that does the same for the master.",
};

static const struct core_conf_def iface_defs[] = {
	{ .name = "name", .type = CORE_CONF_STRING, .flags = CORE_CONF_REQUIRED | CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_iface_conf, name), .min = 1, .max = 15,
	  .doc = "The network interface, such as `eth0`." },
	{ .name = "address", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_iface_conf, address), .dflt = "", .min = 0, .max = 18,
	  .doc = "A static IPv4 address with its prefix length, such as `192.168.1.10/24`; "
		 "empty: keel's own DHCP client gets one (and the default route, DNS and NTP "
		 "servers with it)." },
	{ .name = "gateway", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_iface_conf, gateway), .dflt = "", .min = 0, .max = 15,
	  .doc = "With a static address: the default route's gateway; empty: none." },
	{ 0 }
};

static bool ipv4_ok(const char *s)
{
	struct in_addr a;

	return inet_pton(AF_INET, s, &a) == 1;
}

static void iface_check(struct core_conf_load *ld, void *obj, const char *path, int line)
{
	const struct keel_iface_conf *c = obj;
	char ip[32], sub[160];
	const char *slash;
	char *end;
	long len;

	if (c->address != NULL && c->address[0] != '\0') {
		slash = strchr(c->address, '/');
		snprintf(sub, sizeof(sub), "%s.address", path);
		snprintf(ip, sizeof(ip), "%.*s", slash ? (int)(slash - c->address) : 0, c->address);
		len = slash ? strtol(slash + 1, &end, 10) : -1;
		if (slash == NULL || !ipv4_ok(ip) || *end != '\0' || end == slash + 1 || len < 1 ||
		    len > 32)
			core_conf_error(ld, line, sub, "\"%s\" is not an IPv4 address with a prefix "
					"length, such as 192.168.1.10/24", c->address);
	}
	if (c->gateway != NULL && c->gateway[0] != '\0') {
		snprintf(sub, sizeof(sub), "%s.gateway", path);
		if (!ipv4_ok(c->gateway))
			core_conf_error(ld, line, sub, "\"%s\" is not an IPv4 address", c->gateway);
		else if (c->address == NULL || c->address[0] == '\0')
			core_conf_error(ld, line, sub, "goes with a static address; DHCP gives the "
					"gateway itself");
	}
}

static const struct core_conf_section iface_section = {
	.size = sizeof(struct keel_iface_conf), .defs = iface_defs, .check = iface_check,
	.doc = "One network interface keel configures.",
};

static const struct core_conf_def system_defs[] = {
	{ .name = "hostname", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_system_conf, hostname), .dflt = "", .min = 0, .max = 63,
	  .doc = "The system's host name; empty: left as it is (keel as PID 1 uses `node`)." },
	{ .name = "interfaces", .type = CORE_CONF_LIST, .item = CORE_CONF_SECTION,
	  .flags = CORE_CONF_RELOAD, .sub = &iface_section, .min = 0, .max = 16,
	  .offset = offsetof(struct keel_system_conf, interfaces),
	  .doc = "Network interfaces keel brings up and addresses. Empty: keel leaves the "
		 "network alone, except as PID 1, where every interface found gets DHCP." },
	{ .name = "ntp", .type = CORE_CONF_LIST, .item = CORE_CONF_STRING,
	  .flags = CORE_CONF_RELOAD, .min = 0, .max = 4,
	  .offset = offsetof(struct keel_system_conf, ntp),
	  .doc = "NTP servers (`IP` or `IP:port`) keel sets the system clock from (SNTP); "
		 "empty: those DHCP names, else none." },
	{ .name = "dns", .type = CORE_CONF_LIST, .item = CORE_CONF_STRING,
	  .flags = CORE_CONF_RELOAD, .min = 0, .max = 3,
	  .offset = offsetof(struct keel_system_conf, dns),
	  .doc = "DNS servers for keel's resolver (written to /etc/resolv.conf as PID 1); "
		 "empty: those DHCP names." },
	{ .name = "ntp_interval", .type = CORE_CONF_DURATION, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_system_conf, ntp_interval), .dflt = "15m",
	  .min = 10 * SEC, .max = 86400 * SEC,
	  .doc = "Time between clock syncs once the clock is set (until then, every 5 s)." },
	{ 0 }
};

static void system_check(struct core_conf_load *ld, void *obj, const char *path, int line)
{
	const struct keel_system_conf *c = obj;
	char *const *ntp = c->ntp.v, *const *dns = c->dns.v;
	char sub[160], ip[64];
	size_t i;

	for (i = 0; i < c->ntp.n; i++) {
		const char *colon = strchr(ntp[i], ':');
		long port = colon ? strtol(colon + 1, NULL, 10) : 123;

		snprintf(ip, sizeof(ip), "%.*s", colon ? (int)(colon - ntp[i]) : 63, ntp[i]);
		if (!ipv4_ok(ip) || port < 1 || port > 65535) {
			snprintf(sub, sizeof(sub), "%s.ntp[%zu]", path, i);
			core_conf_error(ld, line, sub, "\"%s\" is not an IPv4 address (with an "
					"optional :port)", ntp[i]);
		}
	}
	for (i = 0; i < c->dns.n; i++)
		if (!ipv4_ok(dns[i])) {
			snprintf(sub, sizeof(sub), "%s.dns[%zu]", path, i);
			core_conf_error(ld, line, sub, "\"%s\" is not an IPv4 address", dns[i]);
		}
}

static const struct core_conf_section system_section = {
	.size = sizeof(struct keel_system_conf), .defs = system_defs, .check = system_check,
	.doc = "The system keel runs on: its network, host name and clock. On a host keel "
	       "touches none of it unless told; as PID 1 (the appliance image) it is the init.",
};

static const struct core_conf_def keel_defs[] = {
	{ .name = "node", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD | CORE_CONF_NODE,
	  .offset = offsetof(struct keel_conf, node), .dflt = "keel",
	  .min = 1, .max = 63,
	  .doc = "Name of this box, shown in health answers and alerts." },
	{ .name = "pid_file", .type = CORE_CONF_STRING, .flags = CORE_CONF_NODE,
	  .offset = offsetof(struct keel_conf, pid_file), .dflt = "/run/keel.pid",
	  .min = 0, .max = 255,
	  .doc = "Where the master writes its pid, for `keel reload` and `keel stop`; empty: nowhere." },
	{ .name = "state_dir", .type = CORE_CONF_STRING, .flags = CORE_CONF_NODE,
	  .offset = offsetof(struct keel_conf, state_dir), .dflt = "/var/lib/keel",
	  .min = 1, .max = 255,
	  .doc = "Directory for what survives restarts: the install key (made on first start)." },
	{ .name = "workers", .type = CORE_CONF_SECTION, .flags = CORE_CONF_NODE,
	  .offset = offsetof(struct keel_conf, workers), .sub = &workers_section },
	{ .name = "log", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_conf, log), .sub = &log_section },
	{ .name = "admin", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_conf, admin), .sub = &admin_section },
	{ .name = "proxy", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_conf, proxy), .sub = &proxy_section },
	{ .name = "access_log", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_conf, access_log), .sub = &access_log_section },
	{ .name = "listeners", .type = CORE_CONF_LIST, .item = CORE_CONF_SECTION,
	  .flags = CORE_CONF_RELOAD | CORE_CONF_NODE, .sub = &listener_section, .min = 0, .max = 32,
	  .offset = offsetof(struct keel_conf, listeners),
	  .doc = "Front-end addresses of the proxy." },
	{ .name = "upstreams", .type = CORE_CONF_MAP, .flags = CORE_CONF_RELOAD,
	  .sub = &upstream_section, .min = 0, .max = 1000,
	  .offset = offsetof(struct keel_conf, upstreams),
	  .doc = "Groups of app servers, by name." },
	{ .name = "routes", .type = CORE_CONF_LIST, .item = CORE_CONF_SECTION,
	  .flags = CORE_CONF_RELOAD, .sub = &route_section, .min = 0, .max = 1000,
	  .offset = offsetof(struct keel_conf, routes),
	  .doc = "Which upstream serves which host and path." },
	{ .name = "monitors", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_conf, monitors), .sub = &monitors_section },
	{ .name = "alerts", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_conf, alerts), .sub = &alerts_section },
	{ .name = "redis", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_conf, redis), .sub = &redis_section },
	{ .name = "storage", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_conf, storage), .sub = &storage_section },
	{ .name = "watchdog", .type = CORE_CONF_SECTION, .flags = CORE_CONF_NODE,
	  .offset = offsetof(struct keel_conf, watchdog), .sub = &watchdog_section },
	{ .name = "supervise", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_conf, supervise), .sub = &supervise_section },
	{ .name = "system", .type = CORE_CONF_SECTION, .flags = CORE_CONF_NODE,
	  .offset = offsetof(struct keel_conf, system), .sub = &system_section },
	{ .name = "update", .type = CORE_CONF_SECTION, .flags = CORE_CONF_NODE,
	  .offset = offsetof(struct keel_conf, update), .sub = &update_section },
	{ .name = "ha", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_conf, ha), .sub = &ha_section },
	{ .name = "cluster", .type = CORE_CONF_SECTION, .flags = CORE_CONF_NODE,
	  .offset = offsetof(struct keel_conf, cluster), .sub = &cluster_section },
	{ 0 }
};

/* The node name ends up in JSON, alert mails and log lines: keep it plain. */
static void keel_check(struct core_conf_load *ld, void *obj, const char *path,
		       int line)
{
	const struct keel_conf *k = obj;
	const char *p;

	const struct keel_route_conf *routes = k->routes.v;
	const struct keel_upstream_conf *ups = k->upstreams.v;
	const struct keel_listener_conf *ls = k->listeners.v;
	const struct core_conf_addr *admin = k->admin.listen.v;
	char sub[64];
	size_t i, j;

	(void)path;
	for (p = k->node; p != NULL && *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.')) {
			core_conf_error(ld, line, "node",
					"may hold only letters, digits, '-', '_' and '.'");
			break;
		}

	/* Every route names an upstream, or an NFS mount, that exists. */
	for (i = 0; i < k->routes.n; i++) {
		const struct keel_mount_conf *mc = k->storage.mounts.v;
		const char *sm = routes[i].serve.mount;

		for (j = 0; sm != NULL && sm[0] != '\0' && j < k->storage.mounts.n &&
		     strcmp(mc[j].name, sm) != 0; j++)
			;
		if (sm != NULL && sm[0] != '\0' && (j == k->storage.mounts.n ||
						     mc[j].type != KEEL_MOUNT_NFS)) {
			snprintf(sub, sizeof(sub), "routes[%zu].static.mount", i);
			core_conf_error(ld, routes[i].line, sub, j == k->storage.mounts.n ?
					"no mount named \"%s\" in storage.mounts" :
					"mount \"%s\" is GlusterFS: static files come from NFS", sm);
		}
		for (j = 0; j < k->upstreams.n; j++)
			if (routes[i].upstream && !strcmp(routes[i].upstream, ups[j].name))
				break;
		if (routes[i].upstream && routes[i].upstream[0] != '\0' && j == k->upstreams.n) {
			snprintf(sub, sizeof(sub), "routes[%zu].upstream", i);
			core_conf_error(ld, routes[i].line, sub, "no upstream named \"%s\"",
					routes[i].upstream);
		}
	}

	/* A port serves either the proxy or the admin server. */
	for (i = 0; i < k->listeners.n; i++) {
		for (j = 0; j < i; j++)
			if (!strcmp(ls[i].address.text, ls[j].address.text)) {
				snprintf(sub, sizeof(sub), "listeners[%zu].address", i);
				core_conf_error(ld, ls[i].line, sub, "%s is listed twice",
						ls[i].address.text);
			}
		for (j = 0; j < k->admin.listen.n; j++)
			if (!strcmp(ls[i].address.text, admin[j].text)) {
				snprintf(sub, sizeof(sub), "listeners[%zu].address", i);
				core_conf_error(ld, ls[i].line, sub,
						"%s is also an admin.listen address",
						ls[i].address.text);
			}
	}
}

const struct core_conf_section core_settings = {
	.size = sizeof(struct keel_conf), .defs = keel_defs, .check = keel_check,
	.doc = "Settings that apply to the whole box.",
};
