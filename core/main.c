/* keel's entry point: the command line, and the master process that loads
 * and reloads the configuration, runs the master modules, and supervises
 * the worker processes that run the worker modules. */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <mbedtls/version.h>
#include <microhttpd.h>
#include <sqlite3.h>
#include <yaml.h>

#include "core.h"
#include "child.h"
#include "cli.h"
#include "clock.h"
#include "conf.h"
#include "log.h"
#include "loop.h"
#include "module.h"
#include "notify.h"
#include "settings.h"
#include "control.h"
#include "event.h"
#include "fault.h"
#include "kv.h"
#include "state.h"
#include "command.h"
#include "store.h"
#include "sysinit.h"
#include "supervise.h"
#include "sync.h"
#include "tls.h"
#include "version.h"

#define DEFAULT_CONF_NAME	"<embedded default>"
#define MAX_WORKERS		CORE_SUP_BEATS
#define MAX_SLOTS		64	/* workers.count's bound */
#define BEAT_MAX_MS		1000	/* a beat at least this often */
#define KILL_GRACE_MS		2000	/* after drain_timeout, before SIGKILL */

extern const struct core_module *const __start_keel_modules[] __attribute__((weak));
extern const struct core_module *const __stop_keel_modules[] __attribute__((weak));

struct worker {
	pid_t		 pid;
	unsigned	 gen;		/* config generation it runs */
	unsigned	 slot;		/* its index in that generation */
	unsigned	 cell;		/* its beat in the shared page */
	bool		 draining;	/* told to finish and exit */
};

static struct {
	const char	*conf_path;	/* NULL: the embedded default */
	struct core_conf *conf;		/* the running configuration */
	struct core_store *store;	/* revisions, users, audit; may be NULL */
	struct core_loop loop;
	const struct core_module *modules[32];
	size_t		 nmodules;
	size_t		 nstarted;	/* modules started in this process */

	/* master */
	struct worker	 workers[MAX_WORKERS];
	size_t		 nworkers;
	unsigned	 want;		/* workers of the current generation */
	bool		 stopping;
	unsigned	 terms;		/* SIGTERMs received */
	struct core_timer respawn;	/* the next worker due to start again */
	struct core_timer kill;		/* SIGKILL what is left after draining */
	struct core_part slots[MAX_SLOTS];	/* each worker slot's record */
	struct core_part self;		/* the master's own, when unsupervised */
	struct core_part_policy pol;
	struct core_sup_shared *sh;	/* beats; NULL: none watched */
	struct core_timer beat;		/* ours, and a look at the workers' */
	struct core_timer sd_watchdog;	/* WATCHDOG=1 to systemd, when it asks */
	uint64_t	 sd_watchdog_ms;
	uint64_t	 beat_every;	/* ms */
	bool		 gating;	/* the first workers wait for supervise.wait_for */
	uint64_t	 gate_since;
	char		 gate_why[240];	/* what was said last */
	struct core_timer gate;

	/* worker */
	bool		 is_worker;
	unsigned	 slot;
	unsigned	 cell;		/* where its beat goes */
	pid_t		 master;	/* who forked it */
	bool		 draining;
	uint64_t	 drain_until;
	struct core_timer drain;
} keel;

/* ---- modules ---------------------------------------------------------------- */

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

/* Starts the modules that run in this process (master or worker). */
static int main_start_modules(bool worker)
{
	char err[256];

	for (keel.nstarted = 0; keel.nstarted < keel.nmodules; keel.nstarted++) {
		const struct core_module *m = keel.modules[keel.nstarted];

		if (m->worker != worker || m->start == NULL)
			continue;
		err[0] = '\0';
		if (m->start(&keel.loop, keel.conf, err, sizeof(err)) != CORE_OK) {
			core_log_error("main", "%s: cannot start: %s", m->name, err);
			return CORE_ERROR;
		}
	}
	return CORE_OK;
}

static void main_stop_modules(bool worker)
{
	while (keel.nstarted > 0) {
		const struct core_module *m = keel.modules[--keel.nstarted];

		if (m->worker == worker && m->stop != NULL)
			m->stop();
	}
	/* What the parts left in core's seams goes with them. */
	core_event_reset();
	core_kv_clear();
}

/* why (if not NULL) gets the refusing module's reason. */
static int main_prepare_modules(const struct core_conf *conf, const struct core_conf *prev,
				char *why, size_t whylen)
{
	char err[256];
	size_t i;

	for (i = 0; i < keel.nmodules; i++) {
		const struct core_module *m = keel.modules[i];

		err[0] = '\0';
		if (m->prepare != NULL && m->prepare(conf, prev, err, sizeof(err)) != CORE_OK) {
			core_log_error("main", "%s: cannot prepare: %s", m->name, err);
			if (why != NULL)
				snprintf(why, whylen, "%s: %s", m->name, err);
			return CORE_ERROR;
		}
	}
	return CORE_OK;
}

/* ---- worker processes ---------------------------------------------------------- */

/* Closes every fd a worker did not ask to keep: the master's epoll set,
 * admin connections, log files. Closing never touches the master's copies. */
static void worker_close_fds(void)
{
	int keep[64], nkeep = 0, fd, i;
	size_t k;
	DIR *d;
	struct dirent *e;

	for (k = 0; k < keel.nmodules; k++)
		if (keel.modules[k]->inherit != NULL)
			nkeep += (int)keel.modules[k]->inherit(keep + nkeep,
							      CORE_ARRAY_SIZE(keep) - (size_t)nkeep);
	d = opendir("/proc/self/fd");
	if (d == NULL) {
		struct rlimit rl;

		getrlimit(RLIMIT_NOFILE, &rl);
		for (fd = 3; fd < (int)rl.rlim_cur && fd < 65536; fd++) {
			for (i = 0; i < nkeep && keep[i] != fd; i++)
				;
			if (i == nkeep)
				close(fd);
		}
		return;
	}
	while ((e = readdir(d)) != NULL) {
		fd = atoi(e->d_name);
		if (fd < 3 || fd == dirfd(d))
			continue;
		for (i = 0; i < nkeep && keep[i] != fd; i++)
			;
		if (i == nkeep)
			close(fd);
	}
	closedir(d);
}

static void worker_on_drain(struct core_timer *t)
{
	unsigned busy = 0;
	size_t i;

	for (i = 0; i < keel.nmodules; i++)
		if (keel.modules[i]->worker && keel.modules[i]->drain != NULL)
			busy += keel.modules[i]->drain();
	if (busy == 0) {
		core_loop_stop(t->loop);
		return;
	}
	if (!core_clock_before(core_loop_now(t->loop), keel.drain_until)) {
		core_log_warn("main", "drain time is up: closing %u unfinished", busy);
		core_loop_stop(t->loop);
		return;
	}
	core_timer_start(t, 100);
}

/* The worker's loop turns: the master, which reads this, sees progress. */
static void main_on_beat_worker(struct core_timer *t)
{
	/* Draining, or orphaned (the master died): the cell is not ours to
	 * speak for any more, and the master does not watch it. */
	if (keel.draining || getppid() != keel.master)
		return;
	core_sup_beat(&keel.sh->beat[keel.cell], core_loop_now(t->loop));
	core_timer_start(t, keel.beat_every);
}

static void worker_on_signal(struct core_loop *loop, int signo, void *data)
{
	(void)data;
	if (signo == SIGTERM && !keel.draining) {
		keel.draining = true;
		keel.drain_until = core_loop_now(loop) +
				   (uint64_t)core_settings_of(keel.conf)->workers.drain_timeout;
		core_timer_init(loop, &keel.drain, worker_on_drain, NULL);
		worker_on_drain(&keel.drain);
		return;
	}
	core_loop_stop(loop);		/* SIGINT, or SIGTERM again: now */
}

/* The worker's whole life; never returns. */
static void __attribute__((noreturn)) worker_main(unsigned slot, pid_t master)
{
	char name[16], err[256];
	int rc = 1;

	keel.is_worker = true;
	keel.slot = slot;
	keel.master = master;
	snprintf(name, sizeof(name), "w%u", slot + 1);
	core_log_set_process(name);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != master)	/* the master died while we forked */
		_exit(1);
	worker_close_fds();
	if (core_tls_after_fork() != CORE_OK) {
		core_log_error("main", "cannot reseed the random generator");
		_exit(1);
	}

	/* A loop of our own; the master's fds were closed above, and its
	 * timers belong to the master. */
	core_loop_after_fork(&keel.loop);
	free(keel.loop.heap);
	if (core_loop_init(&keel.loop, err, sizeof(err)) != CORE_OK) {
		core_log_error("main", "cannot create the event loop: %s", err);
		_exit(1);
	}
	signal(SIGHUP, SIG_IGN);	/* the master reloads, not us */
	if (core_loop_signal(&keel.loop, SIGTERM, worker_on_signal, NULL) != CORE_OK ||
	    core_loop_signal(&keel.loop, SIGINT, worker_on_signal, NULL) != CORE_OK)
		_exit(1);

	if (keel.sh != NULL) {
		core_timer_init(&keel.loop, &keel.beat, main_on_beat_worker, NULL);
		core_timer_start(&keel.beat, 0);
	}
	if (main_start_modules(true) == CORE_OK && core_loop_run(&keel.loop) == CORE_OK)
		rc = 0;
	main_stop_modules(true);
	core_loop_free(&keel.loop);
	core_conf_free(keel.conf);
	core_log_shutdown();
	exit(rc);
}

/* A beat cell no live worker has. */
static unsigned main_free_cell(void)
{
	unsigned cell;
	size_t i;

	for (cell = 0; cell < CORE_SUP_BEATS; cell++) {
		for (i = 0; i < keel.nworkers && keel.workers[i].cell != cell; i++)
			;
		if (i == keel.nworkers)
			break;
	}
	return cell;	/* there are fewer workers than cells */
}

static void main_spawn(unsigned slot)
{
	struct core_part *p = &keel.slots[slot];
	uint64_t now = core_loop_now(&keel.loop);
	struct worker *w;
	pid_t pid, master = getpid();
	char why[96];

	if (keel.nworkers == MAX_WORKERS) {
		core_log_error("main", "too many worker processes");
		core_timer_start(&keel.respawn, 1000);
		return;
	}
	keel.cell = main_free_cell();
	if (keel.sh != NULL)
		core_sup_beat(&keel.sh->beat[keel.cell], now);
	pid = fork();
	if (pid == -1) {
		snprintf(why, sizeof(why), "cannot be started: fork: %s", strerror(errno));
		(void)core_part_down(p, 0, why, now, &keel.pol);
		return;
	}
	if (pid == 0)
		worker_main(slot, master);
	w = &keel.workers[keel.nworkers++];
	w->pid = pid;
	w->gen = keel.conf->generation;
	w->slot = slot;
	w->cell = keel.cell;
	w->draining = false;
	core_part_started(p, pid, now);
}

static unsigned main_worker_count(const struct core_conf *conf)
{
	int64_t n = core_settings_of(conf)->workers.count;
	long cores;

	if (n > 0)
		return (unsigned)n;
	cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (cores > MAX_SLOTS)
		cores = MAX_SLOTS;
	return cores > 0 ? (unsigned)cores : 1;
}

static void main_fill_workers(void);

/* The first workers wait until the gates of supervise.wait_for are open,
 * or supervise.wait_max is up. */
static bool main_gates_open(void)
{
	const struct keel_supervise_conf *s = &core_settings_of(keel.conf)->supervise;
	uint64_t now = core_clock_mono_ms();
	char why[240];

	if (!keel.gating)
		return true;
	if (core_sup_gates_open(keel.conf, why, sizeof(why))) {
		if (keel.gate_why[0] != '\0')
			core_log_info("main", "ready after %.1f s: starting the workers",
				      (double)(now - keel.gate_since) / 1000);
		keel.gating = false;
	} else if (now - keel.gate_since >= (uint64_t)s->wait_max) {
		core_log_warn("main", "starting the workers after %lld s of waiting, though "
			      "%s", (long long)(s->wait_max / 1000), why);
		keel.gating = false;
	}
	core_sup_waiting(keel.gating);
	if (!keel.gating)
		return true;
	if (strcmp(why, keel.gate_why) != 0)
		core_log_info("main", "the workers wait for %s", why);
	snprintf(keel.gate_why, sizeof(keel.gate_why), "%s", why);
	core_timer_start(&keel.gate, 200);
	return false;
}

static void main_on_gate(struct core_timer *t)
{
	(void)t;
	main_fill_workers();
}

/* Starts every worker of the current generation that is missing and due;
 * the respawn timer wakes us for the next one that is not due yet. */
static void main_fill_workers(void)
{
	uint64_t now = core_loop_now(&keel.loop), next = 0;
	bool later = false;
	unsigned slot;
	size_t i;

	if (keel.stopping || !main_gates_open())
		return;
	for (slot = 0; slot < keel.want; slot++) {
		struct core_part *p = &keel.slots[slot];

		for (i = 0; i < keel.nworkers; i++)
			if (keel.workers[i].gen == keel.conf->generation &&
			    keel.workers[i].slot == slot && !keel.workers[i].draining)
				break;
		if (i < keel.nworkers || p->state == CORE_PART_FAILED)
			continue;
		if (p->state == CORE_PART_RUNNING)	/* of a generation now draining */
			p->state = CORE_PART_WAITING;
		if (core_clock_before(now, p->next)) {
			if (!later || core_clock_before(p->next, next))
				next = p->next;
			later = true;
			continue;
		}
		main_spawn(slot);
		if (p->state == CORE_PART_WAITING) {	/* it could not be started */
			if (!later || core_clock_before(p->next, next))
				next = p->next;
			later = true;
		}
	}
	if (later)
		core_timer_start(&keel.respawn, next - now);
}

static void main_on_respawn(struct core_timer *t)
{
	(void)t;
	main_fill_workers();
}

static void main_signal_workers(int signo, bool only_old)
{
	size_t i;

	for (i = 0; i < keel.nworkers; i++) {
		struct worker *w = &keel.workers[i];

		if (only_old && w->gen == keel.conf->generation)
			continue;
		if (signo == SIGTERM) {
			/* A second SIGTERM would tell it to stop at once. */
			if (w->draining)
				continue;
			w->draining = true;
		}
		kill(w->pid, signo);
	}
}

static void main_on_kill(struct core_timer *t)
{
	(void)t;
	if (keel.nworkers > 0)
		core_log_warn("main", "%zu worker%s still running: killing", keel.nworkers,
			      keel.nworkers == 1 ? "" : "s");
	main_signal_workers(SIGKILL, false);
}

static void main_reap(void)
{
	uint64_t now = core_clock_mono_ms();
	int status;
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct worker w;

		for (i = 0; i < keel.nworkers && keel.workers[i].pid != pid; i++)
			;
		if (i == keel.nworkers) {
			(void)core_child_reaped(pid, status);	/* a part's helper */
			continue;
		}
		w = keel.workers[i];
		keel.workers[i] = keel.workers[--keel.nworkers];

		if (w.draining || keel.stopping || w.gen != keel.conf->generation ||
		    keel.slots[w.slot].pid != pid) {
			core_log_info("main", "worker %u (pid %d, generation %u) finished",
				      w.slot + 1, (int)pid, w.gen);
			continue;
		}
		if (!core_part_down(&keel.slots[w.slot], status, NULL, now, &keel.pol) &&
		    keel.pol.reboot && keel.sh != NULL && keel.sh->init) {
			char err[160];

			if (core_control_shutdown(false, "supervise.escalation", err,
						  sizeof(err)) != CORE_OK)
				core_log_error("main", "cannot reboot: %s", err);
		}
	}
	if (keel.stopping) {
		if (keel.nworkers == 0)
			core_loop_stop(&keel.loop);
		return;
	}
	main_fill_workers();
}

/* The master's beat (for a supervisor), and a look at the workers': one
 * whose loop stopped turning is killed, and main_reap restarts it. */
static void main_on_beat(struct core_timer *t)
{
	uint64_t now = core_clock_mono_ms(), beat;
	size_t i;

	core_sup_beat(&keel.sh->master_beat, now);
	for (i = 0; i < keel.nworkers; i++) {
		struct worker *w = &keel.workers[i];
		struct core_part *p = &keel.slots[w->slot];

		if (w->draining || p->pid != w->pid || p->stalled)
			continue;
		beat = core_sup_beat_read(&keel.sh->beat[w->cell]);
		if (core_clock_before(now, beat) || now - beat <= keel.pol.progress ||
		    (beat == p->started &&
		    now - beat <= CORE_SUP_START_GRACE_MS))
			continue;
		core_part_stall(p, now - beat);
		kill(w->pid, SIGKILL);
	}
	core_timer_start(t, keel.beat_every);
}

/* Takes conf's supervise settings: ours, the workers', the supervisor's. */
static void main_supervise_conf(const struct core_conf *conf)
{
	core_sup_policy(conf, &keel.pol);
	keel.beat_every = keel.pol.progress / 5;
	if (keel.beat_every > BEAT_MAX_MS)
		keel.beat_every = BEAT_MAX_MS;
	if (keel.sh != NULL) {
		keel.sh->policy = keel.pol;
		keel.sh->have_policy = true;
	}
	core_sup_show(keel.sh != NULL && keel.sh->supervised ? &keel.sh->master : &keel.self,
		      keel.slots, main_worker_count(conf), &keel.pol, conf);
}

/* A new configuration gives failed workers another chance. */
static void main_revive(void)
{
	uint64_t now = core_loop_now(&keel.loop);
	size_t i;

	for (i = 0; i < MAX_SLOTS; i++)
		if (keel.slots[i].state == CORE_PART_FAILED)
			core_part_revive(&keel.slots[i], now);
	core_sup_escalate(NULL);
}

/* ---- configuration ---------------------------------------------------------------- */

static char *main_read_file(const char *path, size_t *len)
{
	struct core_buf b;
	char chunk[4096], *out;
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return NULL;
	core_buf_init(&b, 16 << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (core_buf_append(&b, chunk, n) != CORE_OK)
			break;
	fclose(f);
	*len = core_buf_len(&b);
	core_buf_append(&b, "", 1);
	out = strdup(core_buf_head(&b));
	core_buf_free(&b);
	return out;
}

/*
 * Where the configuration comes from: the file given with -c, or else the
 * current revision of the config store, or else (first boot, or no store)
 * the embedded default. text gets a malloc'ed copy of what was loaded.
 */
static struct core_conf *main_load_conf_text(char **text)
{
	struct core_store_rev rev;
	struct core_conf *c;
	char err[256], name[64];

	if (text != NULL)
		*text = NULL;
	if (keel.conf_path != NULL) {
		size_t len;

		c = core_conf_load_file(&core_settings, keel.conf_path);
		if (text != NULL && c != NULL && c->nerrors == 0)
			*text = main_read_file(keel.conf_path, &len);
		return c;
	}
	if (keel.store != NULL && core_store_current(keel.store, &rev, err, sizeof(err)) == CORE_OK) {
		snprintf(name, sizeof(name), "revision %lld", (long long)rev.id);
		c = core_conf_load(&core_settings, name, rev.yaml, strlen(rev.yaml));
		if (text != NULL)
			*text = rev.yaml;
		else
			free(rev.yaml);
		return c;
	}
	/* An image's own first configuration (listening on the network, say)
	 * stands in for the embedded default until a revision is saved. */
	if (keel.sh != NULL && keel.sh->init && access(CORE_SYSINIT_DEFAULT, R_OK) == 0) {
		size_t len;

		c = core_conf_load_file(&core_settings, CORE_SYSINIT_DEFAULT);
		if (text != NULL && c != NULL && c->nerrors == 0)
			*text = main_read_file(CORE_SYSINIT_DEFAULT, &len);
		return c;
	}
	if (text != NULL)
		*text = strdup(core_settings_default_yaml);
	return core_conf_load(&core_settings, DEFAULT_CONF_NAME, core_settings_default_yaml,
			      strlen(core_settings_default_yaml));
}

static struct core_conf *main_load_conf(void)
{
	return main_load_conf_text(NULL);
}

/* Records text as a revision unless it is the current one already. */
static void main_record(const char *text, const char *author, const char *comment)
{
	struct core_store_rev rev;
	char err[256];
	int rc;

	if (keel.store == NULL)
		return;
	if (text == NULL) {
		core_log_error("main", "%s: not recorded as a revision: out of memory", comment);
		return;
	}
	rc = core_store_current(keel.store, &rev, err, sizeof(err));
	if (rc == CORE_OK && strcmp(rev.yaml, text) == 0) {
		free(rev.yaml);
		return;
	}
	if (rc == CORE_OK)
		free(rev.yaml);
	if (core_store_apply(keel.store, text, author, comment, err, sizeof(err)) < 0)
		core_log_error("main", "%s", err);
}

/* Opens the store of the state_dir the first configuration names. */
static void main_open_store(char *text)
{
	char err[256];

	if (keel.conf_path == NULL && keel.store == NULL) {
		/* No -c: the store is the source, so look there before the
		 * embedded default (its state_dir says where the store is). */
		keel.store = core_store_open(core_settings_of(keel.conf)->state_dir,
					     err, sizeof(err));
		if (keel.store == NULL)
			core_log_error("main", "%s; running the embedded default, and the "
				       "admin API cannot save changes", err);
		return;
	}
	keel.store = core_store_open(core_settings_of(keel.conf)->state_dir, err, sizeof(err));
	if (keel.store == NULL)
		core_log_error("main", "%s; the admin API cannot save changes", err);
	(void)text;
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

/* Installs conf (free of errors) as the next generation; the running one
 * stays on failure. Takes conf over. */
static int main_install(struct core_conf *conf, const char *author, const char *comment,
			char *why, size_t whylen)
{
	char err[256], *shared;
	size_t i;

	/* What the cluster shares is the text as given: a setting that needs
	 * a restart here is still the cluster's new value. */
	shared = core_sync_capture(conf);
	core_conf_keep_static(conf, keel.conf, main_report_static, NULL);
	conf->generation = keel.conf->generation + 1;
	if (main_prepare_modules(conf, keel.conf, why, whylen) != CORE_OK) {
		core_log_error("main", "reload refused; keeping generation %u",
			       keel.conf->generation);
		core_conf_free(conf);
		free(shared);
		return CORE_ERROR;
	}
	main_apply_log_conf(conf);
	for (i = 0; i < keel.nmodules; i++) {
		const struct core_module *m = keel.modules[i];

		err[0] = '\0';
		if (!m->worker && m->reload != NULL && m->reload(conf, err, sizeof(err)) != CORE_OK)
			core_log_error("main", "%s: kept its previous settings: %s",
				       m->name, err);
	}
	/* Workers got their copy of the old config when they forked. */
	core_conf_free(keel.conf);
	keel.conf = conf;
	keel.want = main_worker_count(conf);
	main_supervise_conf(conf);
	main_revive();
	main_fill_workers();
	main_signal_workers(SIGTERM, true);	/* the old generation drains */
	core_log_info("main", "configuration generation %u loaded from %s",
		      conf->generation, conf->file);
	{
		char state[96];

		snprintf(state, sizeof(state), "STATUS=serving, configuration generation %u",
			 conf->generation);
		core_notify(state);
	}
	core_sync_local(shared, author, comment);
	return CORE_OK;
}

/* ---- systemd ------------------------------------------------------------------------------ */

static void main_on_sd_watchdog(struct core_timer *t)
{
	(void)t;
	core_notify("WATCHDOG=1");
	core_timer_start(&keel.sd_watchdog, keel.sd_watchdog_ms);
}

/* Type=notify: ready once the modules run and the workers are forked;
 * with WatchdogSec=, a ping from the master's loop at half the time. */
static void main_notify_ready(void)
{
	char state[128];

	snprintf(state, sizeof(state), "READY=1\nMAINPID=%d\nSTATUS=serving, configuration "
		 "generation %u", (int)getpid(), keel.conf->generation);
	core_notify(state);
	keel.sd_watchdog_ms = core_notify_watchdog_ms();
	if (keel.sd_watchdog_ms > 0) {
		core_timer_init(&keel.loop, &keel.sd_watchdog, main_on_sd_watchdog, NULL);
		core_timer_start(&keel.sd_watchdog, keel.sd_watchdog_ms);
		core_log_info("main", "systemd watchdog: a ping every %llu ms",
			      (unsigned long long)keel.sd_watchdog_ms);
	}
}

static void main_reload(void)
{
	struct core_conf *conf;
	const struct core_conf_err *e;
	const char *prev = core_log_action("reloading the configuration");
	char why[256], *text = NULL;

	core_fault_arm("reload");
	conf = main_load_conf_text(&text);
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
	if (main_install(conf, "file", "reloaded from the file", why, sizeof(why)) == CORE_OK &&
	    keel.conf_path != NULL)
		main_record(text, "file", "reloaded from the file");
out:
	free(text);
	core_fault_disarm("reload");
	core_log_action(prev);
}

/* ---- what the admin API uses ------------------------------------------------------------ */

int core_control_reload(char *err, size_t errlen)
{
	struct core_conf *conf;
	char *text = NULL;

	conf = main_load_conf_text(&text);
	free(text);
	if (conf == NULL) {
		snprintf(err, errlen, "out of memory");
		return CORE_ERROR;
	}
	if (conf->nerrors > 0) {
		snprintf(err, errlen, "%s", conf->errors != NULL ? conf->errors->msg : "out of memory");
		core_conf_free(conf);
		return CORE_ERROR;
	}
	return main_install(conf, "api", "reloaded from the file", err, errlen);
}

const struct core_conf *core_control_conf(void)
{
	return keel.conf;
}

struct core_store *core_control_store(void)
{
	return keel.store;
}

int core_control_apply(struct core_conf *conf, const char *yaml, const char *author,
		       const char *comment, int64_t *rev, char *err, size_t errlen)
{
	const char *prev = core_log_action("applying a configuration");
	int rc = CORE_ERROR;

	*rev = 0;
	if (keel.store == NULL) {
		snprintf(err, errlen, "the config store is not available (see the log)");
		core_conf_free(conf);
		goto out;
	}
	/* The file first: if that fails, nothing changed. */
	if (keel.conf_path != NULL && core_state_write(keel.conf_path, yaml, strlen(yaml), 0644, err, errlen) != CORE_OK) {
		core_conf_free(conf);
		goto out;
	}
	if (main_install(conf, author, comment, err, errlen) != CORE_OK) {
		if (keel.conf_path != NULL) {
			/* Put the running text back in the file. */
			struct core_store_rev cur;
			char e2[256];

			if (core_store_current(keel.store, &cur, e2, sizeof(e2)) == CORE_OK) {
				(void)core_state_write(keel.conf_path, cur.yaml, strlen(cur.yaml), 0644,
						       e2, sizeof(e2));
				free(cur.yaml);
			}
		}
		goto out;
	}
	*rev = core_store_apply(keel.store, yaml, author, comment, err, errlen);
	if (*rev < 0) {
		core_log_error("main", "applied, but not recorded: %s", err);
		goto out;
	}
	core_log_info("main", "revision %lld applied by %s: %s", (long long)*rev, author, comment);
	rc = CORE_OK;
out:
	core_log_action(prev);
	return rc;
}

/* What core/sync.c applies another gateway's configuration with. */
static const struct core_sync_control sync_control = {
	.conf = core_control_conf,
	.apply = core_control_apply,
};

int core_control_shutdown(bool poweroff, const char *who, char *err, size_t errlen)
{
	const char *what = poweroff ? "power off" : "reboot";

	if (keel.sh == NULL || !keel.sh->init) {
		snprintf(err, errlen, "keel is not this system's init (PID 1): %s the host with "
			 "its own tools", what);
		return CORE_ERROR;
	}
	if (keel.sh->request == 0)
		keel.sh->request = poweroff ? (int)RB_POWER_OFF : (int)RB_AUTOBOOT;
	core_log_warn("main", "%s asked by %s: stopping", what, who);
	if (kill(getppid(), poweroff ? SIGUSR2 : SIGTERM) == -1) {
		snprintf(err, errlen, "cannot signal the init process: %s", strerror(errno));
		return CORE_ERROR;
	}
	return CORE_OK;
}

/* ---- the master's signals ------------------------------------------------------------- */

static void main_stop(bool now)
{
	const struct keel_conf *k = core_settings_of(keel.conf);

	keel.stopping = true;
	core_notify("STOPPING=1");
	main_signal_workers(now ? SIGINT : SIGTERM, false);
	core_timer_start(&keel.kill, (now ? 0 : (uint64_t)k->workers.drain_timeout) +
				     KILL_GRACE_MS);
	if (keel.nworkers == 0)
		core_loop_stop(&keel.loop);
}

static void main_on_signal(struct core_loop *loop, int signo, void *data)
{
	(void)loop;
	(void)data;
	switch (signo) {
	case SIGHUP:
		if (!keel.stopping)
			main_reload();
		break;
	case SIGCHLD:
		main_reap();
		break;
	case SIGUSR1:
		main_signal_workers(SIGUSR1, false);	/* reopen logs */
		break;
	case SIGTERM:
		if (keel.terms++ == 0) {
			core_log_info("main", "SIGTERM received: draining, then stopping "
				      "(again to stop at once)");
			main_stop(false);
			break;
		}
		__attribute__((fallthrough));	/* a second SIGTERM */
	default:
		core_log_info("main", "%s received, stopping now",
			      signo == SIGINT ? "SIGINT" : "SIGTERM");
		main_stop(true);
	}
}

/* ---- pid file and control commands --------------------------------------------------- */

/* Written beside and renamed over: whoever reads it (keel reload, a
 * supervisor, a script) finds the old pid or the new one, never a file
 * cut short while a restarted master writes it. */
static void main_write_pid(const struct core_conf *conf)
{
	const char *path = core_settings_of(conf)->pid_file;
	char buf[32], tmp[PATH_MAX];
	ssize_t w;
	int fd, n;

	if (path == NULL || *path == '\0')
		return;
	n = snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) == -1)
		goto fail;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if ((w = write(fd, buf, (size_t)n)) != n) {
		if (w >= 0)
			errno = ENOSPC;		/* a short write */
		close(fd);
		goto undo;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0)
		goto undo;
	return;
undo:
	n = errno;
	unlink(tmp);
	errno = n;
fail:
	core_log_warn("main", "pid file %s: %s (keel reload and keel stop will not find this keel)",
		      path, strerror(errno));
}

/* `keel status`: what the running keel says through its control socket,
 * in colour only on a terminal (and never with NO_COLOR set). */
static int main_status(bool json)
{
	const char *nc = getenv("NO_COLOR");
	int rc;

	keel.conf = main_load_conf();
	if (keel.conf == NULL || keel.conf->nerrors > 0) {
		fprintf(stderr, "keel: configuration %s has errors (keel -t shows them)\n",
			keel.conf ? keel.conf->file : "?");
		core_conf_free(keel.conf);
		return 1;
	}
	rc = core_cli_status(core_settings_of(keel.conf)->state_dir, json,
			     isatty(STDOUT_FILENO) && (nc == NULL || nc[0] == '\0'), stdout);
	core_conf_free(keel.conf);
	return rc;
}

/* `keel reload` and `keel stop`: check the config, then ask or signal the master. */
static int main_control(const char *cmd)
{
	const struct core_conf_err *e;
	const char *path;
	char buf[32];
	FILE *f;
	long pid;
	int rc = 1;

	keel.conf = main_load_conf();
	if (keel.conf == NULL)
		return 1;
	if (keel.conf->nerrors > 0 && strcmp(cmd, "reload") == 0) {
		for (e = keel.conf->errors; e != NULL; e = e->next)
			fprintf(stderr, "%s\n", e->msg);
		fprintf(stderr, "keel: not reloaded: configuration %s has %zu error%s\n",
			keel.conf->file, keel.conf->nerrors, keel.conf->nerrors == 1 ? "" : "s");
		goto out;
	}
	/* A reload through the control socket says how it went; a keel
	 * that cannot be reached there gets the signal. */
	if (strcmp(cmd, "reload") == 0) {
		rc = core_cli_reload(core_settings_of(keel.conf)->state_dir);
		if (rc != 2)
			goto out;
		rc = 1;
		fprintf(stderr, "keel: reload: sending SIGHUP instead (see the log for how it "
			"went)\n");
	}
	path = core_settings_of(keel.conf)->pid_file;
	if (path == NULL || *path == '\0') {
		fprintf(stderr, "keel: %s: the configuration sets no pid_file\n", cmd);
		goto out;
	}
	f = fopen(path, "r");
	if (f == NULL || fgets(buf, sizeof(buf), f) == NULL || (pid = atol(buf)) <= 1) {
		fprintf(stderr, "keel: %s: cannot read a pid from %s%s%s\n", cmd, path,
			f == NULL ? ": " : "", f == NULL ? strerror(errno) : "");
		if (f != NULL)
			fclose(f);
		goto out;
	}
	fclose(f);
	if (kill((pid_t)pid, strcmp(cmd, "reload") == 0 ? SIGHUP : SIGTERM) == -1) {
		fprintf(stderr, "keel: %s: pid %ld from %s: %s\n", cmd, pid, path, strerror(errno));
		goto out;
	}
	printf("keel: %s signalled to pid %ld\n", cmd, pid);
	rc = 0;
out:
	core_conf_free(keel.conf);
	return rc;
}

/* ---- keel config export | import ----------------------------------------------------------- */

/* Signals a running master to reload, when there is one. */
static void main_poke(const struct core_conf *conf)
{
	long pid = core_cli_poke(core_settings_of(conf)->pid_file);

	if (pid > 0)
		printf("keel: the running keel (pid %ld) reloads it\n", pid);
}

static int main_config(const char *sub, const char *file)
{
	struct core_conf *boot, *conf;
	const struct core_conf_err *e;
	struct core_store_rev rev;
	char err[256], *text;
	size_t len;
	int rc = 1;

	boot = main_load_conf();
	if (boot == NULL || boot->nerrors > 0) {
		fprintf(stderr, "keel: configuration %s has errors (keel -t shows them)\n",
			keel.conf_path ? keel.conf_path : DEFAULT_CONF_NAME);
		core_conf_free(boot);
		return 1;
	}
	keel.store = core_store_open(core_settings_of(boot)->state_dir, err, sizeof(err));
	if (strcmp(sub, "export") == 0) {
		struct core_buf out;

		if (keel.store != NULL && core_store_current(keel.store, &rev, err,
							     sizeof(err)) == CORE_OK) {
			fputs(rev.yaml, stdout);
			free(rev.yaml);
			rc = 0;
			goto done;
		}
		core_buf_init(&out, 16 << 20);
		if (core_conf_write(&out, boot, false, true) == CORE_OK) {
			fwrite(core_buf_head(&out), 1, core_buf_len(&out), stdout);
			rc = 0;
		}
		core_buf_free(&out);
		goto done;
	}
	if ((text = main_read_file(file, &len)) == NULL) {
		fprintf(stderr, "keel: %s: %s\n", file, strerror(errno));
		goto done;
	}
	conf = core_conf_load(&core_settings, file, text, len);
	if (conf == NULL || conf->nerrors > 0) {
		for (e = conf ? conf->errors : NULL; e != NULL; e = e->next)
			fprintf(stderr, "%s\n", e->msg);
		fprintf(stderr, "keel: not imported: %s has %zu error%s\n", file,
			conf ? conf->nerrors : 1, conf && conf->nerrors == 1 ? "" : "s");
	} else if (keel.store == NULL) {
		fprintf(stderr, "keel: not imported: %s\n", err);
	} else if (keel.conf_path != NULL &&
		   core_state_write(keel.conf_path, text, len, 0644, err, sizeof(err)) != CORE_OK) {
		fprintf(stderr, "keel: not imported: %s\n", err);
	} else {
		char comment[300];
		int64_t id;

		snprintf(comment, sizeof(comment), "imported from %s", file);
		id = core_store_apply(keel.store, text, "cli", comment, err, sizeof(err));
		if (id < 0)
			fprintf(stderr, "keel: not imported: %s\n", err);
		else {
			printf("keel: %s imported as revision %lld\n", file, (long long)id);
			main_poke(boot);
			rc = 0;
		}
	}
	core_conf_free(conf);
	free(text);
done:
	core_store_close(keel.store);
	keel.store = NULL;
	core_conf_free(boot);
	return rc;
}

/* ---- command line ------------------------------------------------------------------------ */

static void main_usage_tool(const struct core_tool *t, void *arg)
{
	fputs(t->usage, arg);
}

static void main_usage(FILE *f)
{
	fprintf(f,
		"usage: keel [-c FILE]          run (no -c: the embedded default config)\n"
		"       keel --supervise [-c FILE]  run under a supervisor that restarts the\n"
		"                               master (the default as PID 1)\n"
		"       keel -t [-c FILE]       check the configuration and exit 0 or 1\n"
		"       keel reload [-c FILE]   check it, then make the running keel reload it\n"
		"                               and say how it went\n"
		"       keel status [-c FILE] [--json]  servers, health, Redis master, storage\n"
		"       keel stop [-c FILE]     make the running keel drain and stop\n"
		"       keel config export [-c FILE]       print the current configuration\n"
		"       keel config import IN [-c FILE]    check IN, store it as a revision, reload\n"
		"       keel --version          version, revision, arch, library versions\n"
		"       keel --default-config   print the embedded default config\n"
		"       keel --config-reference print the settings reference (Markdown)\n");
	core_tool_each(main_usage_tool, f);
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
	       "file and lists every error with its line. `keel reload` (or `kill -HUP`)\n"
	       "reloads: a file with errors is refused and the running configuration\n"
	       "stays; settings marked *restart* keep their running value until keel\n"
	       "restarts.\n\n"
	       "Sizes take `k`, `M`, `G` (1024-based); durations take `ms`, `s`, `m`,\n"
	       "`h`, `d`.\n");
	core_conf_write_reference(stdout, &core_settings);
}

/* keel -t, and before a supervisor starts (quiet: no "is ok" line): every
 * error of the configuration on stderr; 1 when it has some. */
static int main_check(bool quiet)
{
	const struct core_conf_err *e;
	int rc = 0;

	core_fault_arm("load");
	keel.conf = main_load_conf();
	core_fault_disarm("load");
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
	} else if (!quiet)
		printf("keel: configuration %s is ok\n", keel.conf->file);
	core_conf_free(keel.conf);
	keel.conf = NULL;
	return rc;
}

static int main_run(void)
{
	static const int sigs[] = { SIGHUP, SIGTERM, SIGINT, SIGCHLD, SIGUSR1 };
	const struct core_conf_err *e;
	char err[256];
	size_t i;
	int rc = 1;

	keel.sh = core_sup_shared();	/* before the config: it says if we are PID 1's */
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
		core_conf_free(keel.conf);
		return 1;
	}
	keel.conf->generation = 1;
	main_open_store(NULL);
	if (keel.conf_path == NULL && keel.store != NULL) {
		/* The store's current revision, when there is one. */
		struct core_conf *from_store;
		char *text = NULL;

		from_store = main_load_conf_text(&text);
		if (from_store != NULL && from_store->nerrors == 0) {
			core_conf_free(keel.conf);
			keel.conf = from_store;
			keel.conf->generation = 1;
			main_record(text, "keel", "factory default");
		} else {
			for (e = from_store ? from_store->errors : NULL; e != NULL; e = e->next)
				fprintf(stderr, "%s\n", e->msg);
			fprintf(stderr, "keel: the stored configuration is unusable; "
				"running the embedded default\n");
			core_conf_free(from_store);
		}
		free(text);
	} else if (keel.store != NULL) {
		char *text = NULL;
		struct core_conf *again = main_load_conf_text(&text);

		main_record(text, "file", "loaded from the file");
		core_conf_free(again);
		free(text);
	}

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
	for (i = 0; i < CORE_ARRAY_SIZE(sigs); i++)
		if (core_loop_signal(&keel.loop, sigs[i], main_on_signal, NULL) != CORE_OK) {
			core_log_error("main", "cannot set up signal handling");
			goto out;
		}
	core_timer_init(&keel.loop, &keel.respawn, main_on_respawn, NULL);
	core_timer_init(&keel.loop, &keel.kill, main_on_kill, NULL);
	core_timer_init(&keel.loop, &keel.gate, main_on_gate, NULL);
	keel.gating = core_settings_of(keel.conf)->supervise.wait_for.n > 0;
	keel.gate_since = core_clock_mono_ms();
	for (i = 0; i < MAX_SLOTS; i++) {
		char name[24];

		snprintf(name, sizeof(name), "worker %zu", i + 1);
		core_part_init(&keel.slots[i], name);
	}
	core_part_init(&keel.self, "master");
	core_part_started(&keel.self, getpid(), core_clock_mono_ms());
	main_supervise_conf(keel.conf);
	if (keel.sh != NULL) {
		core_timer_init(&keel.loop, &keel.beat, main_on_beat, NULL);
		core_timer_start(&keel.beat, 0);
	}

	main_collect_modules();
	core_sync_set_control(&sync_control);
	if (main_prepare_modules(keel.conf, NULL, NULL, 0) != CORE_OK ||
	    main_start_modules(false) != CORE_OK)
		goto out;
	main_write_pid(keel.conf);

	keel.want = main_worker_count(keel.conf);
	main_fill_workers();
	core_log_info("main", "keel %s started (pid %d, %s, config %s, generation 1, "
		      "%u worker%s)", KEEL_VERSION, (int)getpid(), KEEL_ARCH,
		      keel.conf->file, keel.want, keel.want == 1 ? "" : "s");
	main_notify_ready();
	if (core_loop_run(&keel.loop) != CORE_OK)
		core_log_error("main", "event loop failed: %s", strerror(errno));
	else
		rc = 0;
out:
	if (keel.nworkers > 0) {
		/* Left the loop early: do not leave workers behind. */
		size_t w;

		/* Only them: a part's helper may be stuck in the kernel. */
		main_signal_workers(SIGKILL, false);
		for (w = 0; w < keel.nworkers; w++)
			(void)waitpid(keel.workers[w].pid, NULL, 0);
	}
	main_stop_modules(false);
	core_loop_free(&keel.loop);
	{
		const char *pf = core_settings_of(keel.conf)->pid_file;

		if (rc == 0 && pf != NULL && *pf != '\0')
			unlink(pf);
	}
	core_conf_free(keel.conf);
	core_store_close(keel.store);
	keel.store = NULL;
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
		{ "supervise",		no_argument,	   NULL, 'S' },
		{ "json",		no_argument,	   NULL, 'J' },
		{ NULL, 0, NULL, 0 }
	};
	const char *cmd = NULL, *sub = NULL, *in = NULL;
	int c, check = 0, init = getpid() == 1, supervise = init, json = 0;

	core_tls_mem_init();		/* before any mbedTLS call */
	/* As PID 1 nothing may end main(): the kernel would panic. Words the
	 * kernel passes on that are not keel's are left alone. */
	if (init)
		opterr = 0;
	/* A part's word: keel update sign ... */
	if (!init && argc > 1 && core_tool_find(argv[1]) != NULL)
		return core_tool_find(argv[1])->main(argc - 1, argv + 1);
	/* keel config export|import [IN] [-c FILE] */
	if (!init && argc > 2 && strcmp(argv[1], "config") == 0) {
		sub = argv[2];
		if (strcmp(sub, "export") != 0 && strcmp(sub, "import") != 0) {
			main_usage(stderr);
			return 2;
		}
		argv += 2;
		argc -= 2;
		argv[0] = "keel";
		if (strcmp(sub, "import") == 0) {
			if (argc < 2 || argv[1][0] == '-') {
				fprintf(stderr, "keel: config import needs a file\n");
				return 2;
			}
			in = argv[1];
			argv++;
			argc--;
			argv[0] = "keel";
		}
	}

	/* A command word may come first: keel reload -c FILE. */
	if (!init && argc > 1 && (strcmp(argv[1], "reload") == 0 || strcmp(argv[1], "stop") == 0 ||
				  strcmp(argv[1], "status") == 0)) {
		cmd = argv[1];
		argv[1] = argv[0];
		argv++;
		argc--;
	}
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
		case 'S':
			supervise = 1;
			break;
		case 'J':
			json = 1;
			break;
		default:
			if (init)
				break;
			main_usage(stderr);
			return 2;
		}
	}
	if (init)
		return core_supervisor_run(main_run);	/* never returns */
	if (optind < argc) {
		fprintf(stderr, "keel: unexpected argument '%s'\n", argv[optind]);
		main_usage(stderr);
		return 2;
	}
	if (sub != NULL)
		return main_config(sub, in);
	if (cmd != NULL && strcmp(cmd, "status") == 0)
		return main_status(json);
	if (cmd != NULL)
		return main_control(cmd);
	if (check)
		return main_check(false);
	if (!supervise)
		return main_run();
	/* A configuration that cannot start is said once, not restarted. */
	if (main_check(true) != 0)
		return 1;
	return core_supervisor_run(main_run);
}
