/* Supervision records, restart arithmetic, the status of keel's processes,
 * and the supervisor process that keeps the master alive. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "clock.h"
#include "conf.h"
#include "event.h"
#include "log.h"
#include "settings.h"
#include "status.h"
#include "supervise.h"
#include "sysinit.h"

#define SUP_POLL_MS	100	/* the supervisor looks at the master's beat */
#define SUP_DOWN_MS	3000	/* PID 1 going down: the master's time to stop */

static struct core_sup_shared *shared;
static uint64_t rng;

static struct {
	struct core_part *master;
	struct core_part *workers;
	size_t		 nworkers;
	struct core_part *helpers[8];
	struct core_part_policy pol;
	char		 escalated[200];
	bool		 waiting;	/* the workers wait for gates */
	const struct core_conf *conf;	/* the gates it waits for */
} show;

static const char *const gate_names[KEEL_GATE_COUNT] = { "link", "address", "clock", "storage" };

static struct {
	bool		 known;		/* a part reported it */
	bool		 open;
	char		 why[200];
} gates[KEEL_GATE_COUNT];

void core_sup_gate(int gate, bool open, const char *fmt, ...)
{
	va_list ap;

	if (gate < 0 || gate >= KEEL_GATE_COUNT)
		return;
	gates[gate].known = true;
	gates[gate].open = open;
	va_start(ap, fmt);
	vsnprintf(gates[gate].why, sizeof(gates[gate].why), fmt, ap);
	va_end(ap);
}

bool core_sup_gate_open(int gate, char *why, size_t len)
{
	if (gate < 0 || gate >= KEEL_GATE_COUNT)
		return false;
	snprintf(why, len, "%s", gates[gate].known ? gates[gate].why : "nothing reported yet");
	return gates[gate].known && gates[gate].open;
}

bool core_sup_gates_open(const struct core_conf *conf, char *why, size_t len)
{
	const struct keel_supervise_conf *s = &core_settings_of(conf)->supervise;
	const int *g = s->wait_for.v;
	size_t i;

	for (i = 0; i < s->wait_for.n; i++) {
		if (g[i] < 0 || g[i] >= KEEL_GATE_COUNT || gates[g[i]].open)
			continue;
		snprintf(why, len, "%s: %s", gate_names[g[i]], gates[g[i]].known ?
			 gates[g[i]].why : "nothing reported yet");
		return false;
	}
	return true;
}

void core_sup_waiting(bool waiting)
{
	show.waiting = waiting;
}

static int sup_gates_json(struct core_buf *out)
{
	const struct keel_supervise_conf *s;
	const int *g;
	size_t i;
	int rc = core_buf_append(out, ",\"gates\":[", 10);

	if (show.conf == NULL)
		return rc | core_buf_append(out, "]", 1);
	s = &core_settings_of(show.conf)->supervise;
	g = s->wait_for.v;
	for (i = 0; i < s->wait_for.n; i++) {
		if (g[i] < 0 || g[i] >= KEEL_GATE_COUNT)
			continue;
		rc |= core_buf_printf(out, "%s{\"gate\":\"%s\",\"open\":%s,\"why\":", i ? "," : "",
				      gate_names[g[i]], gates[g[i]].open ? "true" : "false");
		rc |= core_json_str(out, gates[g[i]].known ? gates[g[i]].why : "nothing reported yet");
		rc |= core_buf_append(out, "}", 1);
	}
	return rc | core_buf_printf(out, "],\"waiting\":%s", show.waiting ? "true" : "false");
}

struct core_sup_shared *core_sup_shared(void)
{
	void *p;

	if (shared != NULL)
		return shared;
	p = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED) {
		core_log_error("supervise", "cannot map the beat page: %s; processes are "
			       "restarted when they exit, but not watched for progress",
			       strerror(errno));
		return NULL;
	}
	shared = p;
	return shared;
}

void core_sup_policy(const struct core_conf *conf, struct core_part_policy *pol)
{
	const struct keel_supervise_conf *s = &core_settings_of(conf)->supervise;

	pol->progress = (uint64_t)s->progress_limit;
	pol->backoff_min = (uint64_t)s->backoff_min;
	pol->backoff_max = (uint64_t)s->backoff_max;
	pol->restarts = (unsigned)s->restarts;
	pol->window = (uint64_t)s->window;
	pol->reboot = s->escalation == KEEL_ESCALATE_REBOOT;
}

/* xorshift64: jitter needs spread, not secrecy. */
static uint64_t sup_random(void)
{
	if (rng == 0)
		rng = core_clock_mono_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid() ^ 1;
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

void core_part_init(struct core_part *p, const char *name)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->state = CORE_PART_WAITING;	/* next = 0: at once */
}

void core_part_started(struct core_part *p, pid_t pid, uint64_t now)
{
	p->state = CORE_PART_RUNNING;
	p->pid = pid;
	p->started = now;
	p->stalled = 0;
}

void core_part_stall(struct core_part *p, uint64_t silent)
{
	if (p->stalled == 0)
		core_log_error("supervise", "%s (pid %d) made no progress for %.1f s: killing it",
			       p->name, (int)p->pid, (double)silent / 1000);
	p->stalled = silent > 0 ? silent : 1;
}

static unsigned part_in_window(const struct core_part *p, uint64_t now, uint64_t window)
{
	unsigned i, n = p->nrecent < CORE_PART_RECENT ? p->nrecent : CORE_PART_RECENT, in = 0;

	for (i = 0; i < n; i++)
		if (now - p->recent[i] < window)
			in++;
	return in;
}

static void part_why(const struct core_part *p, int status, const char *why, char *out,
		     size_t len)
{
	if (why != NULL)
		snprintf(out, len, "%s", why);
	else if (p->stalled)
		snprintf(out, len, "no progress for %.0f s", (double)p->stalled / 1000);
	else if (WIFSIGNALED(status))
		snprintf(out, len, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
}

bool core_part_down(struct core_part *p, int status, const char *why, uint64_t now,
		    const struct core_part_policy *pol)
{
	char who[48], subject[40];
	uint64_t delay, base;
	unsigned in;

	if (p->pid > 0)
		snprintf(who, sizeof(who), "%s (pid %d)", p->name, (int)p->pid);
	else
		snprintf(who, sizeof(who), "%s", p->name);
	part_why(p, status, why, p->exit, sizeof(p->exit));
	if (p->state == CORE_PART_RUNNING && now - p->started >= pol->backoff_max)
		p->step = 0;		/* it ran a good while: a fresh start */
	p->pid = 0;
	p->stalled = 0;

	in = part_in_window(p, now, pol->window);
	if (in >= pol->restarts) {
		p->state = CORE_PART_FAILED;
		snprintf(subject, sizeof(subject), "process %s", p->name);
		core_log_error("supervise", "%s %s, after %u restart%s within %llu s: left down "
			       "(failed)%s", who, p->exit, in, in == 1 ? "" : "s",
			       (unsigned long long)(pol->window / 1000),
			       pol->reboot ? "; supervise.escalation is reboot" : "");
		core_event_raise("supervise", subject, "failed: %s, after %u restarts within %llu s",
				 p->exit, in, (unsigned long long)(pol->window / 1000));
		if (pol->reboot) {
			char esc[160];

			snprintf(esc, sizeof(esc), "%s failed (%s)", p->name, p->exit);
			core_sup_escalate(esc);
		}
		return false;
	}
	base = pol->backoff_min << p->step;
	if (base > pol->backoff_max || p->step >= 40)
		base = pol->backoff_max;
	else
		p->step++;
	delay = base - base / 2 + sup_random() % (base / 2 + 1);	/* upper half */
	p->recent[p->nrecent++ % CORE_PART_RECENT] = now;
	p->restarts++;
	p->state = CORE_PART_WAITING;
	p->next = now + delay;
	if (pol->restarts > CORE_PART_RECENT)	/* never given up on */
		core_log_error("supervise", "%s %s; starting another in %llu ms", who, p->exit,
			       (unsigned long long)delay);
	else
		core_log_error("supervise", "%s %s; starting another in %llu ms (restart %u "
			       "within %llu s; %u more and it is left down)", who, p->exit,
			       (unsigned long long)delay, in + 1,
			       (unsigned long long)(pol->window / 1000), pol->restarts - in - 1);
	return true;
}

void core_part_revive(struct core_part *p, uint64_t now)
{
	if (p->state == CORE_PART_RUNNING)
		return;
	if (p->state == CORE_PART_FAILED) {
		char subject[40];

		snprintf(subject, sizeof(subject), "process %s", p->name);
		core_log_info("supervise", "%s: starting again (it had failed: %s)", p->name,
			      p->exit);
		core_event_clear("supervise", subject, "started again");
	}
	p->state = CORE_PART_WAITING;
	p->next = now;
	p->step = 0;
	p->nrecent = 0;
}

static const char *part_state(const struct core_part *p)
{
	switch (p->state) {
	case CORE_PART_RUNNING:	return "running";
	case CORE_PART_WAITING:	return "restarting";
	default:		return "failed";
	}
}

int core_part_json(struct core_buf *out, const struct core_part *p, uint64_t now)
{
	int rc;

	rc = core_buf_append(out, "{\"name\":", 8);
	rc |= core_json_str(out, p->name);
	rc |= core_buf_printf(out, ",\"state\":\"%s\",\"pid\":%d,\"uptime_s\":%.1f,\"restarts\":%u,"
			      "\"next_start_ms\":%llu,\"last_exit\":", part_state(p),
			      p->state == CORE_PART_RUNNING ? (int)p->pid : 0,
			      p->state == CORE_PART_RUNNING ? (double)(now - p->started) / 1000 : 0.0,
			      p->restarts, p->state == CORE_PART_WAITING &&
			      core_clock_before(now, p->next) ?
			      (unsigned long long)(p->next - now) : 0ULL);
	if (p->exit[0] != '\0')
		rc |= core_json_str(out, p->exit);
	else
		rc |= core_buf_append(out, "null", 4);
	rc |= core_buf_append(out, "}", 1);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

int core_part_metrics_head(struct core_buf *out)
{
	return core_buf_printf(out,
		"# HELP keel_part_up Whether the process runs (0: restarting or failed).\n"
		"# TYPE keel_part_up gauge\n"
		"# HELP keel_part_failed Whether the process failed: too many restarts.\n"
		"# TYPE keel_part_failed gauge\n"
		"# HELP keel_part_restarts_total Restarts of the process since keel started.\n"
		"# TYPE keel_part_restarts_total counter\n"
		"# HELP keel_part_uptime_seconds Seconds since the process last started.\n"
		"# TYPE keel_part_uptime_seconds gauge\n");
}

int core_part_metrics(struct core_buf *out, const struct core_part *p, uint64_t now)
{
	bool up = p->state == CORE_PART_RUNNING;

	return core_buf_printf(out, "keel_part_up{part=\"%s\"} %d\nkeel_part_failed{part=\"%s\"} %d\n"
			       "keel_part_restarts_total{part=\"%s\"} %u\n"
			       "keel_part_uptime_seconds{part=\"%s\"} %.1f\n",
			       p->name, up, p->name, p->state == CORE_PART_FAILED, p->name,
			       p->restarts, p->name,
			       up ? (double)(now - p->started) / 1000 : 0.0);
}

void core_sup_show(struct core_part *master, struct core_part *workers, size_t nworkers,
		   const struct core_part_policy *pol, const struct core_conf *conf)
{
	show.conf = conf;
	show.master = master;
	show.workers = workers;
	show.nworkers = nworkers;
	show.pol = *pol;
}

void core_sup_add(struct core_part *p)
{
	size_t i;

	for (i = 0; i < CORE_ARRAY_SIZE(show.helpers); i++)
		if (show.helpers[i] == NULL || show.helpers[i] == p) {
			show.helpers[i] = p;
			return;
		}
}

void core_sup_del(struct core_part *p)
{
	size_t i;

	for (i = 0; i < CORE_ARRAY_SIZE(show.helpers); i++)
		if (show.helpers[i] == p)
			show.helpers[i] = NULL;
}

const char *core_sup_escalated(void)
{
	return show.escalated[0] != '\0' ? show.escalated : NULL;
}

void core_sup_escalate(const char *why)
{
	snprintf(show.escalated, sizeof(show.escalated), "%s", why != NULL ? why : "");
}

/* ---- status ------------------------------------------------------------------------- */

static int sup_status_json(struct core_buf *out)
{
	uint64_t now = core_clock_mono_ms();
	size_t i;
	int rc;

	if (show.master == NULL)
		return core_buf_append(out, "null", 4);
	rc = core_buf_printf(out, "{\"supervised\":%s,\"escalation\":\"%s\",\"progress_limit_ms\":%llu,"
			     "\"restarts\":%u,\"window_s\":%llu,\"escalated\":",
			     shared != NULL && shared->supervised ? "true" : "false",
			     show.pol.reboot ? "reboot" : "degraded",
			     (unsigned long long)show.pol.progress, show.pol.restarts,
			     (unsigned long long)(show.pol.window / 1000));
	if (show.escalated[0] != '\0')
		rc |= core_json_str(out, show.escalated);
	else
		rc |= core_buf_append(out, "null", 4);
	rc |= sup_gates_json(out);
	rc |= core_buf_append(out, ",\"parts\":[", 10);
	rc |= core_part_json(out, show.master, now);
	for (i = 0; i < show.nworkers; i++) {
		rc |= core_buf_append(out, ",", 1);
		rc |= core_part_json(out, &show.workers[i], now);
	}
	for (i = 0; i < CORE_ARRAY_SIZE(show.helpers); i++)
		if (show.helpers[i] != NULL) {
			rc |= core_buf_append(out, ",", 1);
			rc |= core_part_json(out, show.helpers[i], now);
		}
	rc |= core_buf_append(out, "]}", 2);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

static int sup_status_metrics(struct core_buf *out)
{
	uint64_t now = core_clock_mono_ms();
	size_t i;
	int rc;

	if (show.master == NULL)
		return CORE_OK;
	rc = core_part_metrics_head(out);
	rc |= core_part_metrics(out, show.master, now);
	for (i = 0; i < show.nworkers; i++)
		rc |= core_part_metrics(out, &show.workers[i], now);
	for (i = 0; i < CORE_ARRAY_SIZE(show.helpers); i++)
		if (show.helpers[i] != NULL)
			rc |= core_part_metrics(out, show.helpers[i], now);
	return rc == CORE_OK ? CORE_OK : CORE_ERROR;
}

static const struct core_status_provider supervise_status = {
	.name = "supervise",
	.order = 5,
	.json = sup_status_json,
	.metrics = sup_status_metrics,
};
CORE_STATUS_PROVIDER(supervise_status);

/* ---- the supervisor process ------------------------------------------------------------ */

static const struct core_part_policy sup_default = {
	.progress = 5000, .backoff_min = 100, .backoff_max = 30000,
	.restarts = 10, .window = 300000,
};

/* The supervisor cannot end as PID 1 (the kernel would panic): it goes
 * down the way it was asked, or powers off. */
static int sup_end(int rc, bool init)
{
	if (!init)
		return rc;
	core_sysinit_halt(shared->request ? shared->request : (int)RB_POWER_OFF);
}

static void sup_start(struct core_sup_shared *sh, int (*master)(void), const sigset_t *old)
{
	uint64_t now = core_clock_mono_ms();
	pid_t pid;

	sh->master_beat = now;
	pid = fork();
	if (pid == -1) {
		char why[96];

		snprintf(why, sizeof(why), "cannot be started: fork: %s", strerror(errno));
		(void)core_part_down(&sh->master, 0, why, now,
				     sh->have_policy ? &sh->policy : &sup_default);
		return;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, old, NULL);
		core_log_set_process(NULL);
		exit(master());
	}
	core_part_started(&sh->master, pid, now);
}

int core_supervisor_run(int (*master)(void))
{
	static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 };
	bool init = getpid() == 1, stopping = false, killed = false;
	struct core_sup_shared *sh;
	uint64_t down_by = 0;
	sigset_t set, old;
	size_t i;
	int rc = 0;

	core_log_set_process(init ? "init" : "sup");
	if (init)
		core_sysinit_boot();
	sh = core_sup_shared();
	if (sh == NULL) {
		if (!init)
			return master();
		core_log_error("supervise", "running the master as PID 1 itself, unsupervised");
		rc = master();
		core_sysinit_halt(RB_POWER_OFF);
	}
	sh->supervised = true;
	sh->init = init;
	sigemptyset(&set);
	for (i = 0; i < CORE_ARRAY_SIZE(sigs); i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, &old);
	/* Workers the master leaves behind when it dies come to us. */
	if (!init && prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
		core_log_warn("supervise", "cannot become a subreaper: %s", strerror(errno));
	core_part_init(&sh->master, "master");
	core_log_info("supervise", "supervisor (pid %d) keeps the master running", (int)getpid());

	for (;;) {
		const struct core_part_policy *pol = sh->have_policy ? &sh->policy : &sup_default;
		uint64_t now = core_clock_mono_ms(), wait = SUP_POLL_MS, beat;
		struct timespec ts;
		siginfo_t si;
		int sig, status;
		pid_t pid;

		if (sh->master.state == CORE_PART_WAITING && !stopping) {
			if (!core_clock_before(now, sh->master.next)) {
				sup_start(sh, master, &old);
				killed = false;
				continue;
			}
			if (sh->master.next - now < wait)
				wait = sh->master.next - now;
		}
		if (stopping && init && down_by != 0) {
			if (!core_clock_before(now, down_by)) {
				core_log_warn("supervise", "the master did not stop within %u ms",
					      SUP_DOWN_MS);
				return sup_end(1, init);
			}
			if (down_by - now < wait)
				wait = down_by - now;
		}
		if (sh->master.state == CORE_PART_RUNNING && !killed) {
			beat = core_sup_beat_read(&sh->master_beat);
			now = core_clock_mono_ms();
			if (!core_clock_before(now, beat) && now - beat > pol->progress &&
			    (beat != sh->master.started || now - beat > CORE_SUP_START_GRACE_MS)) {
				core_part_stall(&sh->master, now - beat);
				kill(sh->master.pid, SIGKILL);
				killed = true;
			}
		}
		ts.tv_sec = (time_t)(wait / 1000);
		ts.tv_nsec = (long)(wait % 1000) * 1000000;
		sig = sigtimedwait(&set, &si, &ts);
		switch (sig) {
		case SIGCHLD:
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
				if (pid != sh->master.pid || sh->master.state != CORE_PART_RUNNING)
					continue;	/* an orphan of a dead master */
				now = core_clock_mono_ms();
				if (stopping) {
					rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
					return sup_end(rc, init);
				}
				if (!sh->master.stalled && WIFEXITED(status) &&
				    WEXITSTATUS(status) == 0) {
					core_log_info("supervise", "the master stopped (keel stop)");
					return sup_end(0, init);
				}
				if (core_part_down(&sh->master, status, NULL, now, pol))
					continue;
				if (!init)
					return 1;	/* failed: the service manager's turn */
				if (pol->reboot) {
					if (sh->request == 0)
						sh->request = (int)RB_AUTOBOOT;
					return sup_end(1, init);
				}
				/* PID 1 has no one to hand over to: it keeps trying. */
				sh->master.state = CORE_PART_WAITING;
				sh->master.next = now + pol->backoff_max;
				core_log_error("supervise", "trying the master again every %llu s",
					       (unsigned long long)(pol->backoff_max / 1000));
			}
			break;
		case SIGUSR2:
			if (!init)
				break;
			__attribute__((fallthrough));
		case SIGTERM:
		case SIGINT:
			if (init) {
				if (sh->request == 0)
					sh->request = sig == SIGUSR2 ? (int)RB_POWER_OFF :
						      (int)RB_AUTOBOOT;
				core_log_info("supervise", "%s: stopping the master",
					      sh->request == (int)RB_POWER_OFF ? "powering off" :
					      "rebooting");
				down_by = core_clock_mono_ms() + SUP_DOWN_MS;
				sig = SIGTERM;
			}
			stopping = true;
			if (sh->master.state != CORE_PART_RUNNING)
				return sup_end(rc, init);
			kill(sh->master.pid, sig);
			break;
		case SIGHUP:
		case SIGUSR1:
			/* Only once it beats: before, its signal handling is not set up
			 * (and a master starting reads the newest config anyway). */
			if (sh->master.state == CORE_PART_RUNNING &&
			    core_sup_beat_read(&sh->master_beat) != sh->master.started)
				kill(sh->master.pid, sig);
			break;
		default:		/* the timeout, or EINTR */
			break;
		}
	}
}
