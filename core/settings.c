/* keel's settings, declared once: YAML loading, defaults, bounds, reload
 * rules and docs/CONFIGURATION.md all come from this table. */
#include <stddef.h>

#include "core.h"
#include "conf.h"
#include "settings.h"

#define KB	((int64_t)1 << 10)
#define MB	((int64_t)1 << 20)
#define SEC	((int64_t)1000)

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

static const struct core_conf_def admin_defs[] = {
	{ .name = "listen", .type = CORE_CONF_LIST, .item = CORE_CONF_ADDR,
	  .offset = offsetof(struct keel_admin_conf, listen),
	  .dflt = "127.0.0.1:8080", .min = 1, .max = 16,
	  .doc = "Addresses the admin server listens on: `1.2.3.4:80`, `[::1]:80`, `*:80`." },
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
	{ 0 }
};

static const struct core_conf_section admin_section = {
	.size = sizeof(struct keel_admin_conf), .defs = admin_defs,
	.doc = "The admin server: `GET /healthz` for monitors and load balancers.",
};

static const struct core_conf_def keel_defs[] = {
	{ .name = "node", .type = CORE_CONF_STRING, .flags = CORE_CONF_RELOAD,
	  .offset = offsetof(struct keel_conf, node), .dflt = "keel",
	  .min = 1, .max = 63,
	  .doc = "Name of this box, shown in health answers and alerts." },
	{ .name = "log", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_conf, log), .sub = &log_section },
	{ .name = "admin", .type = CORE_CONF_SECTION,
	  .offset = offsetof(struct keel_conf, admin), .sub = &admin_section },
	{ 0 }
};

/* The node name ends up in JSON, alert mails and log lines: keep it plain. */
static void keel_check(struct core_conf_load *ld, void *obj, const char *path,
		       int line)
{
	const struct keel_conf *k = obj;
	const char *p;

	(void)path;
	for (p = k->node; p != NULL && *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.')) {
			core_conf_error(ld, line, "node",
					"may hold only letters, digits, '-', '_' and '.'");
			return;
		}
}

const struct core_conf_section core_settings = {
	.size = sizeof(struct keel_conf), .defs = keel_defs, .check = keel_check,
	.doc = "Settings that apply to the whole box.",
};
