/* keel's entry point: the command line, loading and reloading the
 * configuration, and running every registered module on one loop. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <mbedtls/version.h>
#include <microhttpd.h>
#include <sqlite3.h>
#include <yaml.h>

#include "core.h"
#include "conf.h"
#include "log.h"
#include "loop.h"
#include "module.h"
#include "settings.h"
#include "version.h"

#define DEFAULT_CONF_NAME	"<embedded default>"

extern const struct core_module *const __start_keel_modules[] __attribute__((weak));
extern const struct core_module *const __stop_keel_modules[] __attribute__((weak));

static struct {
	const char	*conf_path;	/* NULL: the embedded default */
	struct core_conf *conf;		/* the running configuration */
	struct core_loop loop;
	const struct core_module *modules[32];
	size_t		 nmodules;
	size_t		 nstarted;
} keel;

/* ---- modules ------------------------------------------------------------- */

static void main_collect_modules(void)
{
	const struct core_module *const *m;
	size_t i, j;

	for (m = __start_keel_modules; m != NULL && m < __stop_keel_modules; m++) {
		if (keel.nmodules == CORE_ARRAY_SIZE(keel.modules))
			break;
		keel.modules[keel.nmodules++] = *m;
	}
	/* Insertion sort by order; link order breaks ties. */
	for (i = 1; i < keel.nmodules; i++)
		for (j = i; j > 0 && keel.modules[j]->order < keel.modules[j - 1]->order; j--) {
			const struct core_module *t = keel.modules[j];

			keel.modules[j] = keel.modules[j - 1];
			keel.modules[j - 1] = t;
		}
}

static int main_start_modules(void)
{
	char err[256];

	for (keel.nstarted = 0; keel.nstarted < keel.nmodules; keel.nstarted++) {
		const struct core_module *m = keel.modules[keel.nstarted];

		err[0] = '\0';
		if (m->start(&keel.loop, keel.conf, err, sizeof(err)) != CORE_OK) {
			core_log_error("main", "%s: cannot start: %s", m->name, err);
			return CORE_ERROR;
		}
	}
	return CORE_OK;
}

static void main_stop_modules(void)
{
	while (keel.nstarted > 0) {
		const struct core_module *m = keel.modules[--keel.nstarted];

		if (m->stop != NULL)
			m->stop();
	}
}

/* ---- configuration ---------------------------------------------------------- */

static struct core_conf *main_load_conf(void)
{
	if (keel.conf_path == NULL)
		return core_conf_load(&core_settings, DEFAULT_CONF_NAME,
				      core_settings_default_yaml,
				      strlen(core_settings_default_yaml));
	return core_conf_load_file(&core_settings, keel.conf_path);
}

static void main_apply_log_conf(const struct core_conf *conf)
{
	core_log_level = core_settings_of(conf)->log.level;
}

static void main_report_static(const char *path, void *arg)
{
	(void)arg;
	core_log_warn("main", "%s: changing it needs a restart; the running value stays",
		      path);
}

static void main_reload(void)
{
	struct core_conf *conf;
	const struct core_conf_err *e;
	const char *prev = core_log_action("reloading the configuration");
	char err[256];
	size_t i;

	conf = main_load_conf();
	if (conf == NULL) {
		core_log_error("main", "out of memory; keeping generation %u",
			       keel.conf->generation);
		goto out;
	}
	if (conf->nerrors > 0) {
		for (e = conf->errors; e != NULL; e = e->next)
			core_log_error("conf", "%s", e->msg);
		core_log_error("main", "reload refused (%zu error%s); keeping generation %u",
			       conf->nerrors, conf->nerrors == 1 ? "" : "s",
			       keel.conf->generation);
		core_conf_free(conf);
		goto out;
	}

	core_conf_keep_static(conf, keel.conf, main_report_static, NULL);
	conf->generation = keel.conf->generation + 1;
	main_apply_log_conf(conf);
	for (i = 0; i < keel.nstarted; i++) {
		const struct core_module *m = keel.modules[i];

		err[0] = '\0';
		if (m->reload != NULL && m->reload(conf, err, sizeof(err)) != CORE_OK)
			core_log_error("main", "%s: kept its previous settings: %s",
				       m->name, err);
	}
	core_conf_free(keel.conf);
	keel.conf = conf;
	core_log_info("main", "configuration generation %u loaded from %s",
		      conf->generation, conf->file);
out:
	core_log_action(prev);
}

/* ---- signals ------------------------------------------------------------------ */

static void main_on_signal(struct core_loop *loop, int signo, void *data)
{
	(void)data;
	if (signo == SIGHUP) {
		main_reload();
		return;
	}
	core_log_info("main", "%s received, shutting down",
		      signo == SIGTERM ? "SIGTERM" : signo == SIGINT ? "SIGINT" : "signal");
	core_loop_stop(loop);
}

/* ---- command line ----------------------------------------------------------------- */

static void main_usage(FILE *f)
{
	fprintf(f,
		"usage: keel [-c FILE]        run (no -c: the embedded default config)\n"
		"       keel -t [-c FILE]     check the configuration and exit 0 or 1\n"
		"       keel --version        version, revision, arch, library versions\n"
		"       keel --default-config print the embedded default config\n"
		"       keel --config-reference  print the settings reference (Markdown)\n");
}

static void main_version(void)
{
	char mbed[32];

	mbedtls_version_get_string(mbed);
	printf("keel %s (revision %s, %s)\n", KEEL_VERSION, KEEL_REVISION, KEEL_ARCH);
	printf("  mbedtls %s\n", mbed);
	printf("  hiredis %d.%d.%d\n", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
	printf("  libnfs %s\n", KEEL_LIBNFS_VERSION);
	printf("  sqlite %s\n", sqlite3_libversion());
	printf("  libmicrohttpd %s\n", MHD_get_version());
	printf("  libyaml %s\n", yaml_get_version_string());
}

static void main_reference(void)
{
	printf("# Configuration reference\n\n"
	       "Generated by `keel --config-reference` (`make docs`) from the settings\n"
	       "table in `core/settings.c`; do not edit by hand.\n\n"
	       "keel reads one YAML file (`keel -c FILE`); without `-c` it runs the\n"
	       "embedded default (`keel --default-config`). `keel -t -c FILE` checks a\n"
	       "file and lists every error with its line. `kill -HUP` reloads: a file\n"
	       "with errors is refused and the running configuration stays; settings\n"
	       "marked *restart* keep their running value until keel restarts.\n\n"
	       "Sizes take `k`, `M`, `G` (1024-based); durations take `ms`, `s`, `m`,\n"
	       "`h`, `d`.\n");
	core_conf_write_reference(stdout, &core_settings);
}

static int main_check(void)
{
	const struct core_conf_err *e;
	int rc = 0;

	keel.conf = main_load_conf();
	if (keel.conf == NULL) {
		fprintf(stderr, "keel: out of memory\n");
		return 1;
	}
	for (e = keel.conf->errors; e != NULL; e = e->next)
		fprintf(stderr, "%s\n", e->msg);
	if (keel.conf->nerrors > 0) {
		fprintf(stderr, "keel: configuration %s has %zu error%s\n",
			keel.conf->file, keel.conf->nerrors,
			keel.conf->nerrors == 1 ? "" : "s");
		rc = 1;
	} else
		printf("keel: configuration %s is ok\n", keel.conf->file);
	core_conf_free(keel.conf);
	keel.conf = NULL;
	return rc;
}

static int main_run(void)
{
	const struct core_conf_err *e;
	char err[256];
	int rc = 1;

	keel.conf = main_load_conf();
	if (keel.conf == NULL) {
		fprintf(stderr, "keel: out of memory\n");
		return 1;
	}
	if (keel.conf->nerrors > 0) {
		for (e = keel.conf->errors; e != NULL; e = e->next)
			fprintf(stderr, "%s\n", e->msg);
		fprintf(stderr, "keel: not started: configuration %s has %zu error%s\n",
			keel.conf->file, keel.conf->nerrors,
			keel.conf->nerrors == 1 ? "" : "s");
		return 1;
	}
	keel.conf->generation = 1;

	if (core_log_init((size_t)core_settings_of(keel.conf)->log.ring_lines) != CORE_OK) {
		fprintf(stderr, "keel: out of memory for the log ring\n");
		return 1;
	}
	main_apply_log_conf(keel.conf);
	signal(SIGPIPE, SIG_IGN);

	if (core_loop_init(&keel.loop, err, sizeof(err)) != CORE_OK) {
		core_log_error("main", "cannot create the event loop: %s", err);
		return 1;
	}
	if (core_loop_signal(&keel.loop, SIGHUP, main_on_signal, NULL) != CORE_OK ||
	    core_loop_signal(&keel.loop, SIGTERM, main_on_signal, NULL) != CORE_OK ||
	    core_loop_signal(&keel.loop, SIGINT, main_on_signal, NULL) != CORE_OK) {
		core_log_error("main", "cannot set up signal handling");
		goto out;
	}

	main_collect_modules();
	if (main_start_modules() != CORE_OK)
		goto out;

	core_log_info("main", "keel %s started (pid %d, %s, config %s, generation 1)",
		      KEEL_VERSION, (int)getpid(), KEEL_ARCH, keel.conf->file);
	if (core_loop_run(&keel.loop) != CORE_OK)
		core_log_error("main", "event loop failed: %s", strerror(errno));
	else
		rc = 0;
out:
	main_stop_modules();
	core_loop_free(&keel.loop);
	core_conf_free(keel.conf);
	core_log_info("main", "stopped");
	core_log_shutdown();
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "version",		no_argument,	   NULL, 'v' },
		{ "help",		no_argument,	   NULL, 'h' },
		{ "config",		required_argument, NULL, 'c' },
		{ "test",		no_argument,	   NULL, 't' },
		{ "default-config",	no_argument,	   NULL, 'D' },
		{ "config-reference",	no_argument,	   NULL, 'R' },
		{ NULL, 0, NULL, 0 }
	};
	int c, check = 0;

	while ((c = getopt_long(argc, argv, "c:thv", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			keel.conf_path = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'v':
			main_version();
			return 0;
		case 'h':
			main_usage(stdout);
			return 0;
		case 'D':
			fputs(core_settings_default_yaml, stdout);
			return 0;
		case 'R':
			main_reference();
			return 0;
		default:
			main_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "keel: unexpected argument '%s'\n", argv[optind]);
		main_usage(stderr);
		return 2;
	}
	return check ? main_check() : main_run();
}
