/* The control socket's client: one command line out, the answer read to
 * the end; and the status rendered for a person, a line per thing that
 * matters (servers, Redis, storage, the other gateway, raised alerts). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "core.h"
#include "json.h"

#define CLI_ANSWER_MAX	(8 << 20)

/* Sends cmd, reads the answer into out (NUL-terminated). 0, or -1 with
 * why printed. */
static int cli_ask(const char *state_dir, const char *cmd, struct core_buf *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 30 };
	ssize_t n;
	int fd, len;

	len = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/keel.sock", state_dir);
	if (len < 0 || (size_t)len >= sizeof(sa.sun_path)) {
		fprintf(stderr, "keel: %s/keel.sock is too long a path for a socket\n", state_dir);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		fprintf(stderr, "keel: cannot reach the running keel at %s: %s%s\n", sa.sun_path,
			strerror(errno), errno == ENOENT || errno == ECONNREFUSED ?
			" (is keel running with this configuration's state_dir?)" : "");
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd) || write(fd, "\n", 1) != 1) {
		fprintf(stderr, "keel: %s: %s\n", sa.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	while ((n = core_buf_read(out, fd)) > 0)
		;
	close(fd);
	if (n != 0) {
		fprintf(stderr, "keel: %s: %s\n", sa.sun_path, n == CORE_FULL ?
			"the answer is too large" : n == CORE_AGAIN ? "no answer within 30 s" :
			strerror(n < 0 ? (int)-n : EIO));
		return -1;
	}
	if (core_buf_append(out, "", 1) != CORE_OK)
		return -1;
	return 0;
}

long core_cli_poke(const char *pid_file)
{
	char buf[32];
	FILE *f;
	long pid;

	if (pid_file == NULL || *pid_file == '\0' || (f = fopen(pid_file, "r")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) == NULL || (pid = atol(buf)) <= 1 ||
	    kill((pid_t)pid, SIGHUP) != 0)
		pid = 0;
	fclose(f);
	return pid;
}

int core_cli_reload(const char *state_dir)
{
	struct core_buf b;
	int rc = 2;

	core_buf_init(&b, 1 << 20);
	if (cli_ask(state_dir, "reload", &b) == 0) {
		const char *a = core_buf_head(&b);

		rc = strncmp(a, "ok", 2) == 0 ? 0 : 1;
		fprintf(rc ? stderr : stdout, "keel: %s%s", rc ? "not reloaded: " : "reloaded: ",
			a + (rc ? (strncmp(a, "error: ", 7) ? 0 : 7) : 4));
	}
	core_buf_free(&b);
	return rc;
}

/* ---- for a person ------------------------------------------------------------------------- */

struct cli_out {
	FILE	*f;
	bool	 colour;
};

enum cli_tone { CLI_PLAIN = 0, CLI_GOOD, CLI_WARN, CLI_BAD };

static const char *cli_on(const struct cli_out *o, enum cli_tone t)
{
	static const char *const codes[] = { "", "\033[32m", "\033[33m", "\033[31m" };

	return o->colour ? codes[t] : "";
}

static const char *cli_off(const struct cli_out *o, enum cli_tone t)
{
	return o->colour && t != CLI_PLAIN ? "\033[0m" : "";
}

static enum cli_tone cli_tone_of(const char *state)
{
	static const char *const good[] = { "up", "healthy", "running", "master", "ok", "same",
					    "backup" };
	static const char *const warn[] = { "slow", "draining", "drain", "starting", "mounting",
					    "restarting", "behind", "ahead", "maintenance",
					    "slow_start", "down (maintenance)" };
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (strcmp(state, good[i]) == 0)
			return CLI_GOOD;
	for (i = 0; i < sizeof(warn) / sizeof(warn[0]); i++)
		if (strcmp(state, warn[i]) == 0)
			return CLI_WARN;
	return CLI_BAD;
}

static void cli_state(const struct cli_out *o, const char *state, int width)
{
	enum cli_tone t = cli_tone_of(state);

	fprintf(o->f, "%s%-*s%s", cli_on(o, t), width, state, cli_off(o, t));
}

static void cli_uptime(char *buf, size_t len, double s)
{
	unsigned long long n = (unsigned long long)s;

	if (n >= 86400)
		snprintf(buf, len, "%llud %lluh", n / 86400, n % 86400 / 3600);
	else if (n >= 3600)
		snprintf(buf, len, "%lluh %llum", n / 3600, n % 3600 / 60);
	else
		snprintf(buf, len, "%llum %llus", n / 60, n % 60);
}

static void cli_servers(const struct cli_out *o, const struct core_json *proxy)
{
	const struct core_json *servers = core_json_get(proxy, "servers"), *s;

	if (servers == NULL || servers->child == NULL) {
		fprintf(o->f, "\nServers: none configured\n");
		return;
	}
	fprintf(o->f, "\nServers\n");
	for (s = servers->child; s != NULL; s = s->next) {
		const char *err = core_json_gets(s, "check_error", "");

		fprintf(o->f, "  %-16s %-24s ", core_json_gets(s, "upstream", "?"),
			core_json_gets(s, "address", "?"));
		cli_state(o, core_json_gets(s, "state", "?"), 10);
		fprintf(o->f, " %8.0f requests %6.0f failures%s%s\n",
			core_json_getn(s, "requests", 0), core_json_getn(s, "failures", 0),
			err[0] ? "  " : "", err);
	}
}

static void cli_redis(const struct cli_out *o, const struct core_json *redis)
{
	const struct core_json *t = core_json_get(redis, "topology"), *r;
	const char *master;

	if (redis == NULL || redis->type != CORE_JSON_OBJ)
		return;
	master = core_json_gets(t, "master", NULL);
	fprintf(o->f, "\nRedis (%s)\n  master   ", core_json_gets(t, "mode", "?"));
	if (master != NULL)
		fprintf(o->f, "%s%s%s since %s\n", cli_on(o, CLI_GOOD), master, cli_off(o, CLI_GOOD),
			core_json_gets(t, "since", "?"));
	else
		fprintf(o->f, "%snone%s (%s)\n", cli_on(o, CLI_BAD), cli_off(o, CLI_BAD),
			core_json_gets(t, "step", "?"));
	for (r = core_json_get(t, "replicas") ? core_json_get(t, "replicas")->child : NULL;
	     r != NULL; r = r->next)
		fprintf(o->f, "  replica  %s, %.0f bytes behind\n", core_json_gets(r, "address", "?"),
			core_json_getn(r, "lag_bytes", 0));
	fprintf(o->f, "  failovers %.0f, shared state in %s\n", core_json_getn(t, "failovers", 0),
		core_json_gets(redis, "shared_state", "?"));
}

static void cli_storage(const struct cli_out *o, const struct core_json *storage)
{
	const struct core_json *m = core_json_get(storage, "mounts");

	if (m == NULL)
		return;
	fprintf(o->f, "\nStorage\n");
	for (m = m->child; m != NULL; m = m->next) {
		const char *why = core_json_gets(m, "reason", "");

		fprintf(o->f, "  %-16s %-24s ", core_json_gets(m, "name", "?"),
			core_json_gets(m, "path", ""));
		cli_state(o, core_json_gets(m, "state", "?"), 10);
		fprintf(o->f, "%s%s\n", why[0] ? "  " : "", why);
	}
}

static void cli_ha(const struct cli_out *o, const struct core_json *ha)
{
	const char *fault;

	if (ha == NULL || ha->type != CORE_JSON_OBJ)
		return;
	fault = core_json_gets(ha, "fault", "");
	fprintf(o->f, "\nHigh availability (VRID %.0f on %s)\n  this box ",
		core_json_getn(ha, "vrid", 0), core_json_gets(ha, "interface", "?"));
	cli_state(o, core_json_gets(ha, "role", "?"), 0);
	fprintf(o->f, ", priority %.0f%s%s\n", core_json_getn(ha, "advertised_priority", 0),
		fault[0] ? ", fault: " : "", fault);
}

static void cli_alerts(const struct cli_out *o, const struct core_json *monitors)
{
	const struct core_json *m = core_json_get(monitors, "monitors");
	unsigned n = 0;

	for (m = m ? m->child : NULL; m != NULL; m = m->next) {
		if (!core_json_getb(m, "incident", false))
			continue;
		if (n++ == 0)
			fprintf(o->f, "\nFailing now\n");
		fprintf(o->f, "  %s%s%s: %s\n", cli_on(o, CLI_BAD), core_json_gets(m, "name", "?"),
			cli_off(o, CLI_BAD), core_json_gets(m, "last_error", ""));
	}
}

int core_cli_status(const char *state_dir, bool json, bool colour, FILE *f)
{
	struct cli_out o = { f, colour };
	struct core_json *j;
	struct core_buf b;
	char err[128], up[32];
	int rc = 1;

	core_buf_init(&b, CLI_ANSWER_MAX);
	if (cli_ask(state_dir, "status", &b) != 0)
		goto done;
	if (json) {
		fputs(core_buf_head(&b), f);
		rc = 0;
		goto done;
	}
	j = core_json_parse(core_buf_head(&b), core_buf_len(&b) - 1, err, sizeof(err));
	if (j == NULL) {
		fprintf(stderr, "keel: the status is not JSON (%s)\n", err);
		goto done;
	}
	cli_uptime(up, sizeof(up), core_json_getn(j, "uptime_s", 0));
	fprintf(f, "keel %s on %s%s%s: up %s, configuration generation %.0f, revision %.0f\n",
		core_json_gets(j, "version", "?"), colour ? "\033[1m" : "",
		core_json_gets(j, "node", "?"), colour ? "\033[0m" : "", up,
		core_json_getn(j, "generation", 0), core_json_getn(j, "revision", 0));
	cli_servers(&o, core_json_get(j, "proxy"));
	cli_redis(&o, core_json_get(j, "redis"));
	cli_storage(&o, core_json_get(j, "storage"));
	cli_ha(&o, core_json_get(j, "ha"));
	cli_alerts(&o, core_json_get(j, "monitors"));
	core_json_free(j);
	rc = 0;
done:
	core_buf_free(&b);
	return rc;
}
