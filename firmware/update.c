/*
 * Signed A/B updates of a keel image (keel as PID 1).
 *
 * The EFI system partition (keel.esp= on the kernel command line) is
 * mounted on /boot. systemd-boot boots the unified kernel images in
 * EFI/Linux; keel keeps two there, slots A and B, named
 *
 *	keel-GEN-SLOT[+LEFT[-DONE]].efi
 *
 * systemd-boot boots the first of them in its order: entries with tries
 * left (or no counter at all) before those with none, then by name,
 * highest first. So the highest GEN boots unless it is on trial and out of
 * tries. A committed slot has no counter, and systemd-boot never counts
 * its boots: power cuts alone cannot roll it back. A new slot is written
 * with "+tries": each boot of it takes one; keel removes the counter once
 * the slot has passed its own checks (commit), or sets it to +0 when they
 * fail (and reboots). A slot whose boots never reach keel runs out of
 * tries by itself. Either way the next boot is the old slot's.
 *
 * An update streams in through the admin API (core command
 * "update.install"): the bundle's signature is checked before a byte is
 * written, each block against the hash tree before it is written, into a
 * temporary file beside the slots; only a whole, checked payload replaces
 * the inactive slot (a rename), so a bad or cut-off bundle leaves both
 * slots as they were. /boot/keel/slot-X holds each slot's version and
 * /boot/keel/last the last update's outcome, for the Update page.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "core/clock.h"
#include "core/command.h"
#include "core/conf.h"
#include "core/control.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "core/net.h"
#include "core/probe.h"
#include "core/settings.h"
#include "core/status.h"
#include "core/store.h"
#include "core/supervise.h"
#include "core/sysinit.h"
#include "core/tls.h"
#include "version.h"
#include "bundle.h"
#include "fetch.h"

#define UP_BOOT		"/boot"
#define UP_LINUX	UP_BOOT "/EFI/Linux"
#define UP_INFO		UP_BOOT "/keel"
#define UP_TMP		UP_LINUX "/keel-new.tmp"	/* not *.efi: the loader skips it */
#define UP_LAST		UP_INFO "/last"
#define UP_EFIVARS	"/sys/firmware/efi/efivars"
#define UP_LOADER_GUID	"4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
#define UP_VERSION_FILE	"/etc/keel/version"
#define UP_CHECK_MS	1000
#define UP_REBOOT_MS	500	/* the answer goes out first */
#define UP_KEYS_MAX	8

extern const char *const firmware_update_keys[];	/* name, PEM, ..., NULL */

struct up_slot {
	bool		 present;
	unsigned	 gen;
	int		 left;		/* tries left; -1: no counter (committed) */
	int		 done;
	char		 file[80];	/* its name in EFI/Linux */
	char		 version[BUNDLE_VERSION_MAX + 1];
	char		 installed[32];	/* UTC, when it was written */
	char		 size[24];	/* bytes, as slot-X says */
	long long	 bytes;		/* as the file is */
};

static struct {
	struct core_loop *loop;
	bool		 supported;
	char		 why[400];	/* why not, when not */
	struct up_slot	 slot[2];	/* a, b */
	int		 running;	/* 0, 1, or -1: unknown */
	bool		 from_loader;	/* running came from the boot loader's variable */
	char		 version[BUNDLE_VERSION_MAX + 1];	/* this image's */

	/* A slot on trial: its checks until committed or given up. */
	bool		 trial;
	uint64_t	 trial_since;
	int64_t		 health_timeout;
	struct core_timer timer;
	struct core_probe proxy, admin;
	struct core_conf_addr proxy_at, admin_at;
	bool		 have_proxy, have_admin, proxy_ok, admin_ok;
	char		 proxy_why[160], admin_why[160], failing[300];
	bool		 rebooting;
	struct core_timer reboot;

	/* The last update's outcome (UP_LAST). */
	char		 last_state[16];	/* trying, committed, failed, rolled-back */
	char		 last_version[BUNDLE_VERSION_MAX + 1];
	char		 last_slot[2];
	char		 last_when[32];
	char		 last_why[400];

	/* An update coming in. */
	bool		 busy;
	struct bundle_rd rd;
	int		 fd;
	uint64_t	 started;
	uint64_t	 written;	/* bytes written to the temporary file */
	uint64_t	 refused_written;	/* checked bytes the last refused bundle had
						 * written to the temporary file (removed) */
	int64_t		 length;
	bool		 io_error;	/* the refusal is ours (a write failed), not the bundle's */
	bool		 downgrade;	/* an older version may be installed */

	struct fetch	 fetch;		/* a bundle fetched from a URL */
	bool		 fetching;
	char		 url[300];

	struct bundle_key keys[UP_KEYS_MAX];
	size_t		 nkeys;
	int64_t		 tries;
} up = { .running = -1, .fd = -1 };

static const char up_req[] = "GET / HTTP/1.1\r\nHost: keel-update-check\r\nConnection: close\r\n\r\n";
static const char up_admin_req[] = "GET /healthz HTTP/1.1\r\nHost: keel-update-check\r\n"
				   "Connection: close\r\n\r\n";

static void up_now(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- files on the ESP ---------------------------------------------------------------------- */

/*
 * Makes what was done on the EFI partition durable. vfat has no journal,
 * and a rename there writes the new directory entry at once but its start
 * cluster and size only with the inode: an fsync of the directory alone
 * left a committed slot zero bytes long after a power cut. syncfs writes
 * every dirty inode and buffer of the filesystem.
 */
static int up_sync(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd == -1)
		return -1;
	rc = syncfs(fd);
	close(fd);
	return rc;
}

/* Writes text to path through a temporary file and a rename. */
static int up_write_file(const char *path, const char *text)
{
	char tmp[256];
	size_t len = strlen(text);
	int fd, rc = -1;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	if (write(fd, text, len) == (ssize_t)len && fsync(fd) == 0)
		rc = 0;
	close(fd);
	if (rc == 0 && rename(tmp, path) == 0)
		return up_sync(UP_INFO);
	unlink(tmp);
	return -1;
}

static void up_last_write(const char *state, const char *version, int slot, const char *fmt,
			  ...) __attribute__((format(printf, 4, 5)));

static void up_last_write(const char *state, const char *version, int slot, const char *fmt, ...)
{
	char text[700];
	va_list ap;

	snprintf(up.last_state, sizeof(up.last_state), "%s", state);
	snprintf(up.last_version, sizeof(up.last_version), "%s", version);
	snprintf(up.last_slot, sizeof(up.last_slot), "%c", slot >= 0 ? 'a' + slot : '-');
	up_now(up.last_when, sizeof(up.last_when));
	va_start(ap, fmt);
	vsnprintf(up.last_why, sizeof(up.last_why), fmt, ap);
	va_end(ap);
	snprintf(text, sizeof(text), "state %s\nversion %s\nslot %s\nwhen %s\nwhy %s\n", state,
		 version, up.last_slot, up.last_when, up.last_why);
	if (up_write_file(UP_LAST, text) != 0)
		core_log_error("update", "cannot write %s: %s", UP_LAST, strerror(errno));
}

/* "key value" lines of a small file into the fields asked for. */
static void up_read_kv(const char *path, const char *const *keys, char *const *vals,
		       const size_t *lens, size_t n)
{
	char line[512];
	FILE *f = fopen(path, "r");
	size_t i;

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		for (i = 0; i < n; i++) {
			size_t kl = strlen(keys[i]);

			if (strncmp(line, keys[i], kl) == 0 && line[kl] == ' ')
				snprintf(vals[i], lens[i], "%s", line + kl + 1);
		}
	}
	fclose(f);
}

static void up_last_read(void)
{
	static const char *const keys[] = { "state", "version", "slot", "when", "why" };
	char *const vals[] = { up.last_state, up.last_version, up.last_slot, up.last_when,
			       up.last_why };
	const size_t lens[] = { sizeof(up.last_state), sizeof(up.last_version),
				sizeof(up.last_slot), sizeof(up.last_when), sizeof(up.last_why) };

	up_read_kv(UP_LAST, keys, vals, lens, 5);
}

/* keel-GEN-SLOT[+LEFT[-DONE]].efi */
static int up_parse_name(const char *name, unsigned *gen, int *left, int *done)
{
	const char *p = name;
	char *end;
	unsigned long g;
	int slot;

	if (strncmp(p, "keel-", 5) != 0)
		return -1;
	p += 5;
	if (*p < '0' || *p > '9')
		return -1;
	g = strtoul(p, &end, 10);
	if (*end != '-' || (end[1] != 'a' && end[1] != 'b') || g > 1000000)
		return -1;
	slot = end[1] - 'a';
	p = end + 2;
	*gen = (unsigned)g;
	*left = *done = -1;
	if (*p == '+') {
		if (p[1] < '0' || p[1] > '9')
			return -1;
		*left = (int)strtol(p + 1, &end, 10);
		if (end - p > 3)
			return -1;	/* the loader counts in a digit or two */
		p = end;
		*done = 0;
		if (*p == '-') {
			if (p[1] < '0' || p[1] > '9')
				return -1;
			*done = (int)strtol(p + 1, &end, 10);
			if (end - p > 3)
				return -1;
			p = end;
		}
	}
	return strcmp(p, ".efi") == 0 ? slot : -1;
}

static bool up_empty(const char *name)
{
	char path[160];
	struct stat st;

	snprintf(path, sizeof(path), UP_LINUX "/%s", name);
	return stat(path, &st) != 0 || st.st_size == 0;
}

static void up_scan(void)
{
	static const char *const keys[] = { "version", "installed", "size" };
	struct dirent *de;
	DIR *d;
	int i;

	memset(up.slot, 0, sizeof(up.slot));
	if ((d = opendir(UP_LINUX)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		struct up_slot *s;
		unsigned gen;
		int left, done, k = up_parse_name(de->d_name, &gen, &left, &done);

		if (k < 0 || strlen(de->d_name) >= sizeof(up.slot[0].file))
			continue;
		s = &up.slot[k];
		if (s->present && s->gen > gen)
			continue;	/* two files for one slot: the newer counts */
		if (s->present && s->gen == gen && up_empty(de->d_name)) {
			/* A rename cut short: the entry without its data. */
			char path[160];

			snprintf(path, sizeof(path), UP_LINUX "/%s", de->d_name);
			core_log_warn("update", "%s is empty beside %s (a rename cut short): removed",
				      de->d_name, s->file);
			unlink(path);
			continue;
		}
		s->present = true;
		s->gen = gen;
		s->left = left;
		s->done = done;
		memcpy(s->file, de->d_name, strlen(de->d_name) + 1);
	}
	closedir(d);
	for (i = 0; i < 2; i++) {
		char path[64];
		char *const vals[] = { up.slot[i].version, up.slot[i].installed, up.slot[i].size };
		const size_t lens[] = { sizeof(up.slot[i].version), sizeof(up.slot[i].installed),
					sizeof(up.slot[i].size) };
		char file[160];
		struct stat st;

		snprintf(path, sizeof(path), UP_INFO "/slot-%c", 'a' + i);
		up_read_kv(path, keys, vals, lens, 3);
		snprintf(file, sizeof(file), UP_LINUX "/%s", up.slot[i].file);
		up.slot[i].bytes = up.slot[i].present && stat(file, &st) == 0 ? (long long)st.st_size : -1;
	}
}

/* What systemd-boot picks with no menu: tries left before none, then the
 * higher generation. */
static int up_first(void)
{
	int best = -1, i;

	for (i = 0; i < 2; i++) {
		const struct up_slot *s = &up.slot[i];

		if (!s->present)
			continue;
		if (best < 0 || ((s->left != 0) > (up.slot[best].left != 0)) ||
		    ((s->left != 0) == (up.slot[best].left != 0) && s->gen > up.slot[best].gen))
			best = i;
	}
	return best;
}

/* The entry systemd-boot booted: its LoaderEntrySelected variable (four
 * bytes of attributes, then UTF-16), "keel-3-a+2-1.efi" or the like. */
static int up_loader_entry(void)
{
	unsigned char buf[256];
	char name[100];
	const char *p;
	size_t i, j;
	ssize_t n;
	int fd;

	fd = open(UP_EFIVARS "/LoaderEntrySelected-" UP_LOADER_GUID, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 6)
		return -1;
	for (i = 4, j = 0; i + 1 < (size_t)n && j + 1 < sizeof(name); i += 2) {
		if (buf[i] == 0 && buf[i + 1] == 0)
			break;
		name[j++] = (char)buf[i];
	}
	name[j] = '\0';
	/* keel-GEN-SLOT... whatever the counter reads now */
	if (strncmp(name, "keel-", 5) != 0)
		return -1;
	p = strchr(name + 5, '-');
	if (p == NULL || (p[1] != 'a' && p[1] != 'b'))
		return -1;
	return p[1] - 'a';
}

static int up_rename(struct up_slot *s, int slot, unsigned gen, int left, int done)
{
	char from[160], to[160], name[80];

	if (left < 0)
		snprintf(name, sizeof(name), "keel-%u-%c.efi", gen, 'a' + slot);
	else
		snprintf(name, sizeof(name), "keel-%u-%c+%d-%d.efi", gen, 'a' + slot, left, done);
	snprintf(from, sizeof(from), UP_LINUX "/%s", s->file);
	snprintf(to, sizeof(to), UP_LINUX "/%s", name);
	if (rename(from, to) != 0 || up_sync(UP_LINUX) != 0) {
		core_log_error("update", "cannot rename %s to %s: %s", from, name, strerror(errno));
		return -1;
	}
	snprintf(s->file, sizeof(s->file), "%s", name);
	s->gen = gen;
	s->left = left;
	s->done = done;
	return 0;
}

/* ---- the trial of a new slot ---------------------------------------------------------------- */

static void up_reboot_now(struct core_timer *t)
{
	char err[200];

	(void)t;
	if (core_control_shutdown(false, "update", err, sizeof(err)) != CORE_OK)
		core_log_error("update", "cannot reboot: %s", err);
}

static void up_reboot_soon(void)
{
	up.rebooting = true;
	core_timer_start(&up.reboot, UP_REBOOT_MS);
}

static void up_commit(void)
{
	struct up_slot *s = &up.slot[up.running];
	double took = (double)(core_clock_mono_ms() - up.trial_since) / 1000.0;

	if (up_rename(s, up.running, s->gen, -1, -1) != 0) {
		core_timer_start(&up.timer, UP_CHECK_MS);	/* tried again; the timeout holds */
		return;
	}
	up.trial = false;
	core_timer_stop(&up.timer);
	up_last_write("committed", up.version, up.running, "its checks passed %.1f s after "
		      "keel started", took);
	core_log_info("update", "slot %c (%s) committed: its checks passed after %.1f s",
		      'a' + up.running, up.version, took);
}

static void up_give_up(const char *why)
{
	struct up_slot *s = &up.slot[up.running];

	up.trial = false;
	core_timer_stop(&up.timer);
	core_log_error("update", "slot %c (%s) failed its checks: %s; going back to slot %c",
		       'a' + up.running, up.version, why, 'b' - up.running);
	up_last_write("failed", up.version, up.running, "%s", why);
	if (up_rename(s, up.running, s->gen, 0, s->done < 0 ? 1 : s->done) != 0)
		core_log_error("update", "the slot could not be marked bad; the boot loader "
			       "gives up on it after its tries");
	sync();
	up_reboot_soon();
}

/* The config store reads, and sits on the data partition when the
 * image has one. NULL when fine, else why not. */
static const char *up_store_check(char *why, size_t len)
{
	const struct keel_conf *k = core_settings_of(core_control_conf());
	struct core_store *st = core_control_store();
	struct core_store_rev rev;
	char spec[128], err[200];
	struct stat a, b;
	char parent[512];

	if (core_sysinit_arg("keel.data", spec, sizeof(spec))) {
		snprintf(parent, sizeof(parent), "%s/..", k->state_dir);
		if (stat(k->state_dir, &a) != 0 || stat(parent, &b) != 0 || a.st_dev == b.st_dev) {
			snprintf(why, len, "config store: the data partition %s is not mounted on "
				 "%s", spec, k->state_dir);
			return why;
		}
	}
	if (st == NULL) {
		snprintf(why, len, "config store: it could not be opened (see the log)");
		return why;
	}
	if (core_store_current(st, &rev, err, sizeof(err)) != CORE_OK) {
		snprintf(why, len, "config store: %s", err);
		return why;
	}
	free(rev.yaml);
	return NULL;
}

static void up_probe_done(struct core_probe *p, bool ok, uint64_t ms, unsigned status,
			  const char *why)
{
	bool *okp = p == &up.proxy ? &up.proxy_ok : &up.admin_ok;
	char *whyp = p == &up.proxy ? up.proxy_why : up.admin_why;

	(void)ms;
	(void)status;
	*okp = ok;
	snprintf(whyp, sizeof(up.proxy_why), "%s", ok ? "" : why);
}

static void up_on_check(struct core_timer *t)
{
	const struct keel_conf *k = core_settings_of(core_control_conf());
	uint64_t age = core_clock_mono_ms() - up.trial_since;
	char why[300];

	(void)t;
	why[0] = '\0';
	if (up_store_check(why, sizeof(why)) != NULL) {
		/* A missing data partition does not come back: no use waiting. */
		if (strstr(why, "not mounted") != NULL) {
			up_give_up(why);
			return;
		}
	} else if (!up.have_proxy)
		snprintf(why, sizeof(why), "proxy: no listener is configured");
	else if (!up.proxy_ok)
		snprintf(why, sizeof(why), "proxy: %s", up.proxy_why[0] ? up.proxy_why :
			 "not asked yet");
	else if (up.have_admin && !up.admin_ok)
		snprintf(why, sizeof(why), "admin: %s", up.admin_why[0] ? up.admin_why :
			 "not asked yet");
	else if (k->storage.mounts.n > 0 && !core_sup_gate_open(KEEL_GATE_STORAGE, why + 9,
								 sizeof(why) - 9))
		memcpy(why, "storage: ", 9);
	else if (age < (uint64_t)up.health_timeout) {
		up_commit();
		return;
	} else
		snprintf(why, sizeof(why), "the slot could not be committed (see the log)");
	snprintf(up.failing, sizeof(up.failing), "%s", why);
	if (age >= (uint64_t)up.health_timeout) {
		char msg[400];

		snprintf(msg, sizeof(msg), "not healthy %lld s after keel started: %s",
			 (long long)(up.health_timeout / 1000), why);
		up_give_up(msg);
		return;
	}
	if (up.have_proxy && !core_probe_busy(&up.proxy))
		core_probe_start(&up.proxy);
	if (up.have_admin && !core_probe_busy(&up.admin))
		core_probe_start(&up.admin);
	core_timer_start(&up.timer, UP_CHECK_MS);
}

static void up_targets(const struct keel_conf *k)
{
	const struct keel_listener_conf *lc = k->listeners.v;
	const struct core_conf_addr *admin = k->admin.listen.v;

	up.have_proxy = k->listeners.n > 0;
	if (up.have_proxy) {
		up.proxy_at = lc[0].address;
		core_net_local_door(&up.proxy_at);
		memcpy(&up.proxy.sa, &up.proxy_at.sa, sizeof(up.proxy.sa));
		up.proxy.salen = up.proxy_at.salen;
		up.proxy.tcp_only = lc[0].tls.certificates.n > 0;	/* HTTPS: connecting is it */
	}
	up.have_admin = false;
	if (k->admin.listen.n > 0) {
		up.admin_at = admin[0];
		core_net_local_door(&up.admin_at);
		memcpy(&up.admin.sa, &up.admin_at.sa, sizeof(up.admin.sa));
		up.admin.salen = up.admin_at.salen;
		/* Over TLS a connection accepted is the answer asked for. */
		up.admin.tcp_only = k->admin.tls.enabled;
		up.have_admin = true;
	}
}

/* ---- the module ------------------------------------------------------------------------------ */

static void up_keys(void)
{
	char err[200];
	size_t i;

	for (i = 0; firmware_update_keys[i] != NULL && firmware_update_keys[i + 1] != NULL &&
		    up.nkeys < UP_KEYS_MAX; i += 2) {
		const char *pem = firmware_update_keys[i + 1];

		if (bundle_key_load(&up.keys[up.nkeys], firmware_update_keys[i],
				    (const unsigned char *)pem, strlen(pem) + 1, err,
				    sizeof(err)) != 0) {
			core_log_error("update", "%s", err);
			continue;
		}
		up.nkeys++;
	}
}

static bool up_mount_esp(void)
{
	char spec[128], dev[160];

	if (!core_sysinit_arg("keel.esp", spec, sizeof(spec))) {
		snprintf(up.why, sizeof(up.why), "the kernel command line names no EFI system "
			 "partition (keel.esp=): this is not a keel disk image");
		return false;
	}
	if (!core_sysinit_device(spec, dev, sizeof(dev), 3000)) {
		snprintf(up.why, sizeof(up.why), "EFI system partition %s: no such device", spec);
		return false;
	}
	(void)mkdir(UP_BOOT, 0755);
	/* dirsync: a rename writes the new entry, the file's size into it, and
	 * only then drops the old entry, each at once. */
	if (mount(dev, UP_BOOT, "vfat", MS_NOATIME | MS_NODEV | MS_NOSUID | MS_NOEXEC | MS_DIRSYNC,
		  "flush") == -1 && errno != EBUSY) {
		snprintf(up.why, sizeof(up.why), "EFI system partition %s cannot be mounted on "
			 UP_BOOT ": %s", dev, strerror(errno));
		return false;
	}
	(void)mkdir(UP_INFO, 0755);
	return true;
}

static void up_read_version(void)
{
	FILE *f = fopen(UP_VERSION_FILE, "r");

	snprintf(up.version, sizeof(up.version), "%s", KEEL_VERSION);
	if (f != NULL) {
		if (fgets(up.version, sizeof(up.version), f) != NULL)
			up.version[strcspn(up.version, "\n")] = '\0';
		fclose(f);
	}
}

/* A slot whose file is not as long as its record says was cut short by a
 * power cut in the filesystem's own metadata: the boot loader cannot load
 * it, so it goes (the running slot is never touched). */
static void up_damaged(int i)
{
	struct up_slot *s = &up.slot[i];
	char path[160];

	if (!s->present || s->size[0] == '\0' || s->bytes == atoll(s->size))
		return;
	snprintf(path, sizeof(path), UP_LINUX "/%s", s->file);
	core_log_error("update", "slot %c (%s) is damaged: %s is %lld bytes, not %s; removed",
		       'a' + i, s->version, s->file, s->bytes, s->size);
	if (unlink(path) == 0)
		up_sync(UP_LINUX);
	up_scan();
}

/* After a boot: what ran, and what became of the last update. */
static void up_settle(void)
{
	struct up_slot *me = &up.slot[up.running], *other = &up.slot[1 - up.running];

	/* A slot with a counter is on trial: the loader takes a try before it
	 * boots one, so on its last try it reads +0 already. Only keel's own
	 * verdict (it failed, and said so) ends a trial early. */
	if (me->left >= 0) {
		if (strcmp(up.last_state, "failed") == 0 && up.last_slot[0] == 'a' + up.running) {
			core_log_warn("update", "running slot %c, which failed its update (%s): "
				      "the other slot could not be booted", 'a' + up.running,
				      up.last_why);
			return;
		}
		up.trial = true;
		core_log_info("update", "slot %c (%s) is on trial (boot %d, %d more tr%s): "
			      "committed once its checks pass, within %lld s", 'a' + up.running,
			      up.version, me->done, me->left, me->left == 1 ? "y" : "ies",
			      (long long)(up.health_timeout / 1000));
		if (strcmp(up.last_state, "trying") != 0)
			up_last_write("trying", up.version, up.running, "booted %d time%s", me->done,
				      me->done == 1 ? "" : "s");
		return;
	}
	/* Committed. A trial of the other slot that never reported back. */
	if (other->present && other->left == 0 && strcmp(up.last_state, "trying") == 0) {
		up_last_write("failed", other->version[0] ? other->version : up.last_version,
			      1 - up.running, "it did not pass its checks in %d boot%s (it never "
			      "reported: the kernel or keel did not come up)", other->done,
			      other->done == 1 ? "" : "s");
		core_log_error("update", "the update to %s in slot %c failed: back on slot %c",
			       up.last_version, 'b' - up.running, 'a' + up.running);
	} else if (strcmp(up.last_state, "failed") == 0 && up.last_slot[0] == 'b' - up.running)
		core_log_error("update", "the update to %s in slot %c failed (%s): back on slot %c",
			       up.last_version, up.last_slot[0], up.last_why, 'a' + up.running);
	else if (strcmp(up.last_state, "trying") == 0 && up.last_slot[0] == 'a' + up.running)
		/* Committed, and cut off before it said so. */
		up_last_write("committed", up.version, up.running, "committed");
}

static int up_start(struct core_loop *loop, const struct core_conf *conf, char *err,
		    size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);
	struct core_sup_shared *sh = core_sup_shared();

	(void)err;
	(void)errlen;
	up.loop = loop;
	up.health_timeout = k->update.health_timeout;
	up.tries = k->update.tries;
	core_timer_init(loop, &up.timer, up_on_check, NULL);
	core_timer_init(loop, &up.reboot, up_reboot_now, NULL);
	core_probe_init(loop, &up.proxy);
	core_probe_init(loop, &up.admin);
	up.proxy.request = up_req;
	up.proxy.reqlen = sizeof(up_req) - 1;
	snprintf(up.proxy.status, sizeof(up.proxy.status), "100-599");
	up.proxy.timeout = 3000;
	up.proxy.done = up_probe_done;
	up.admin.request = up_admin_req;
	up.admin.reqlen = sizeof(up_admin_req) - 1;
	snprintf(up.admin.status, sizeof(up.admin.status), "200");
	up.admin.timeout = 3000;
	up.admin.done = up_probe_done;
	up_targets(k);
	up_read_version();
	if (up.nkeys == 0)
		up_keys();
	if (sh == NULL || !sh->init) {
		snprintf(up.why, sizeof(up.why), "keel is not this system's init (PID 1): "
			 "updates are for keel's disk images");
		return CORE_OK;
	}
	if (!up_mount_esp()) {
		core_log_warn("update", "updates are off: %s", up.why);
		return CORE_OK;
	}
	(void)mkdir(UP_EFIVARS, 0755);
	if (mount("efivarfs", UP_EFIVARS, "efivarfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  NULL) == -1 && errno != EBUSY)
		core_log_debug("update", "efivarfs: %s", strerror(errno));
	unlink(UP_TMP);		/* an update cut off by a power cut */
	up_scan();
	up_last_read();
	up.running = up_loader_entry();
	up.from_loader = up.running >= 0;
	if (up.running < 0)
		up.running = up_first();
	if (up.running < 0 || !up.slot[up.running].present) {
		snprintf(up.why, sizeof(up.why), "no slot found in " UP_LINUX);
		up.running = -1;
		return CORE_OK;
	}
	up.supported = true;
	up_damaged(1 - up.running);
	core_log_info("update", "running slot %c (%s%s); slot %c %s", 'a' + up.running,
		      up.version, up.from_loader ? "" : ", by the loader's order",
		      'b' - up.running, up.slot[1 - up.running].present ?
		      up.slot[1 - up.running].version : "empty");
	up_settle();
	if (up.trial) {
		up.trial_since = core_clock_mono_ms();
		core_timer_start(&up.timer, 0);
	}
	return CORE_OK;
}

static int up_reload(const struct core_conf *conf, char *err, size_t errlen)
{
	const struct keel_conf *k = core_settings_of(conf);

	(void)err;
	(void)errlen;
	up.health_timeout = k->update.health_timeout;
	up.tries = k->update.tries;
	up_targets(k);
	return CORE_OK;
}

static void up_abort(void);

static void up_stop(void)
{
	core_timer_stop(&up.timer);
	core_timer_stop(&up.reboot);
	core_probe_cancel(&up.proxy);
	core_probe_cancel(&up.admin);
	if (up.busy)
		up_abort();
}

static const struct core_module update_module = {
	.name = "update",
	.order = 85,
	.start = up_start,
	.reload = up_reload,
	.stop = up_stop,
};
CORE_MODULE(update_module);

/* ---- an update coming in ---------------------------------------------------------------------- */

static void up_abort(void)
{
	if (up.fetching) {
		fetch_cancel(&up.fetch);
		up.fetching = false;
	}
	if (up.fd != -1) {
		close(up.fd);
		up.fd = -1;
		unlink(UP_TMP);
	}
	bundle_rd_free(&up.rd);
	up.busy = false;
}

static void up_cancel(struct core_command_call *call)
{
	(void)call;
	core_log_warn("update", "the upload was cut off after %llu bytes: nothing installed",
		      (unsigned long long)up.rd.offset);
	up_abort();
}

static int up_verified(struct bundle_rd *rd, void *arg)
{
	struct statvfs vfs;
	uint64_t room;

	(void)arg;
	if (strcmp(rd->m.arch, KEEL_ARCH) != 0) {
		snprintf(rd->err, sizeof(rd->err), "the bundle is for %s; this box is %s",
			 rd->m.arch, KEEL_ARCH);
		return -1;
	}
	if (strverscmp(rd->m.version, up.version) < 0 && !up.downgrade) {
		snprintf(rd->err, sizeof(rd->err), "the bundle's %s is older than the running "
			 "%s: use Roll back, or ask for a downgrade (?downgrade=1)", rd->m.version,
			 up.version);
		return -1;
	}
	if (strcmp(rd->m.part, "uki") != 0) {
		snprintf(rd->err, sizeof(rd->err), "the bundle holds a '%s'; keel takes a 'uki'",
			 rd->m.part);
		return -1;
	}
	if (statvfs(UP_BOOT, &vfs) == 0) {
		room = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		if (rd->m.size + (1 << 20) > room) {
			snprintf(rd->err, sizeof(rd->err), "the image needs %llu MiB; the EFI "
				 "partition has %llu MiB free",
				 (unsigned long long)(rd->m.size >> 20) + 1,
				 (unsigned long long)(room >> 20));
			return -1;
		}
	}
	up.fd = open(UP_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (up.fd == -1) {
		snprintf(rd->err, sizeof(rd->err), "%s: %s", UP_TMP, strerror(errno));
		return -1;
	}
	core_log_info("update", "bundle %s for %s signed by key %s (%s): writing %llu bytes",
		      rd->m.version, rd->m.arch, rd->signer->id, rd->signer->name,
		      (unsigned long long)rd->m.size);
	return 0;
}

static int up_block(struct bundle_rd *rd, const void *data, size_t len, void *arg)
{
	const char *p = data;

	(void)arg;
	while (len > 0) {
		ssize_t n = write(up.fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			up.io_error = true;
			snprintf(rd->err, sizeof(rd->err), "writing the new slot: %s",
				 n < 0 ? strerror(errno) : "no progress");
			return -1;
		}
		p += n;
		len -= (size_t)n;
		up.written += (uint64_t)n;
	}
	return 0;
}

static void up_refuse(struct core_command_call *call, int status)
{
	char why[sizeof(up.rd.err)];

	snprintf(why, sizeof(why), "%s", up.rd.err[0] ? up.rd.err : "refused");
	up.refused_written = up.written;	/* only checked blocks: what stayed */
	core_log_error("update", "update refused from %s after %llu bytes: %s", call->who,
		       (unsigned long long)up.rd.offset, why);
	up_abort();
	up_last_write("refused", "-", -1, "%s", why);
	core_command_fail(call, status, "%s", why);
}

static int up_begin(struct core_command_call *call, int64_t length)
{
	if (!up.supported) {
		core_command_fail(call, 409, "updates are off: %s", up.why);
		return CORE_ERROR;
	}
	if (up.busy) {
		core_command_fail(call, 409, "another update is coming in");
		return CORE_ERROR;
	}
	if (up.trial || up.slot[up.running].left >= 0) {
		core_command_fail(call, 409, "slot %c is still on trial%s%s%s: it must be "
				  "committed first", 'a' + up.running, up.failing[0] ? " (" : "",
				  up.failing, up.failing[0] ? ")" : "");
		return CORE_ERROR;
	}
	if (up.rebooting) {
		core_command_fail(call, 409, "keel is rebooting");
		return CORE_ERROR;
	}
	bundle_rd_init(&up.rd);
	up.rd.keys = up.keys;
	up.rd.nkeys = up.nkeys;
	up.rd.verified = up_verified;
	up.rd.block = up_block;
	up.busy = true;
	up.written = 0;
	up.io_error = false;
	up.downgrade = strcmp(call->arg, "downgrade") == 0;
	up.length = length;
	up.started = core_clock_mono_ms();
	call->cancel = up_cancel;
	core_log_info("update", "update from %s: %lld bytes coming", call->who, (long long)length);
	return CORE_OK;
}

static int up_feed(struct core_command_call *call, const void *buf, size_t len)
{
	if (bundle_rd_feed(&up.rd, buf, len) != 0) {
		up_refuse(call, up.io_error ? 500 : 400);
		return CORE_ERROR;
	}
	return CORE_OK;
}

static void up_install(struct core_command_call *call)
{
	int slot = 1 - up.running;
	struct up_slot *s = &up.slot[slot];
	unsigned gen = (up.slot[0].gen > up.slot[1].gen ? up.slot[0].gen : up.slot[1].gen) + 1;
	char info[300], path[80], to[160], name[80], when[32];
	double took;

	if (bundle_rd_finish(&up.rd) != 0) {
		up_refuse(call, 400);
		return;
	}
	if ((fsync(up.fd) != 0) | (close(up.fd) != 0)) {	/* both, always */
		up.fd = -1;
		snprintf(up.rd.err, sizeof(up.rd.err), "writing the new slot: %s", strerror(errno));
		unlink(UP_TMP);
		up_refuse(call, 500);
		return;
	}
	up.fd = -1;
	/* The old image of the inactive slot goes; the running one stays. */
	if (s->present) {
		snprintf(path, sizeof(path), UP_LINUX "/%s", s->file);
		if (unlink(path) != 0 && errno != ENOENT)
			core_log_warn("update", "cannot remove %s: %s", path, strerror(errno));
	}
	snprintf(name, sizeof(name), "keel-%u-%c+%lld-0.efi", gen, 'a' + slot, (long long)up.tries);
	snprintf(to, sizeof(to), UP_LINUX "/%s", name);
	up_now(when, sizeof(when));
	snprintf(info, sizeof(info), "version %s\narch %s\nsize %llu\ninstalled %s\nkey %s\n",
		 up.rd.m.version, up.rd.m.arch, (unsigned long long)up.rd.m.size, when,
		 up.rd.m.key);
	snprintf(path, sizeof(path), UP_INFO "/slot-%c", 'a' + slot);
	if (up_write_file(path, info) != 0 || rename(UP_TMP, to) != 0 ||
	    up_sync(UP_LINUX) != 0) {
		snprintf(up.rd.err, sizeof(up.rd.err), "installing the new slot: %s",
			 strerror(errno));
		unlink(UP_TMP);
		up_scan();
		up_refuse(call, 500);
		return;
	}
	up_last_write("trying", up.rd.m.version, slot, "installed by %s; rebooting into it",
		      call->who);
	sync();
	up_scan();
	took = (double)(core_clock_mono_ms() - up.started) / 1000.0;
	core_log_info("update", "slot %c now holds %s (%llu bytes in %.1f s, signed by %s): "
		      "rebooting into it for a trial of %lld boot%s", 'a' + slot, up.rd.m.version,
		      (unsigned long long)up.rd.m.size, took, up.rd.signer->id,
		      (long long)up.tries, up.tries == 1 ? "" : "s");
	core_buf_printf(&call->out, "{\"ok\":true,\"slot\":\"%c\",\"version\":", 'a' + slot);
	core_json_str(&call->out, up.rd.m.version);
	core_buf_printf(&call->out, ",\"bytes\":%llu,\"seconds\":%.2f,\"rebooting\":true}",
			(unsigned long long)up.rd.m.size, took);
	up.refused_written = 0;
	up_abort();
	up_reboot_soon();
	core_command_answer(call, 200);
}

static const struct core_command install_command = {
	.name = "update.install",
	.doc = "Install a signed update bundle (the request's body, application/octet-stream) "
	       "into the inactive slot and reboot into it for a trial.",
	.run = up_install,
	.begin = up_begin,
	.feed = up_feed,
};
CORE_COMMAND(install_command);

/* ---- fetched from a URL ---------------------------------------------------------------------- */

static int up_fetch_head(struct fetch *f, unsigned status, int64_t length)
{
	struct core_command_call *call = f->data;

	if (status != 200) {
		snprintf(up.rd.err, sizeof(up.rd.err), "%.200s answered %u, not 200", up.url, status);
		up.io_error = true;
		return -1;
	}
	if (length > (int64_t)(1024LL << 20)) {
		snprintf(up.rd.err, sizeof(up.rd.err), "%.200s is %lld bytes: more than 1 GiB", up.url,
			 (long long)length);
		return -1;
	}
	up.length = length;
	core_log_info("update", "fetching %s for %s: %lld bytes", up.url, call->who,
		      (long long)length);
	return 0;
}

static int up_fetch_body(struct fetch *f, const void *buf, size_t len)
{
	(void)f;
	return bundle_rd_feed(&up.rd, buf, len) == 0 ? 0 : -1;
}

static void up_fetch_done(struct fetch *f, bool ok, const char *why)
{
	struct core_command_call *call = f->data;

	up.fetching = false;
	if (!ok) {
		if (why != NULL) {
			snprintf(up.rd.err, sizeof(up.rd.err), "%s", why);
			up.io_error = true;
		}
		up_refuse(call, up.io_error ? 502 : 400);
		return;
	}
	up_install(call);
}

static void up_fetch(struct core_command_call *call)
{
	char err[200];

	if (call->arg[0] == '\0') {
		core_command_fail(call, 400, "give the bundle's URL as arg: http://ADDRESS[:PORT]/PATH");
		return;
	}
	if (up_begin(call, -1) != CORE_OK)
		return;
	snprintf(up.url, sizeof(up.url), "%s", call->arg);
	up.downgrade = strcmp(call->target, "downgrade") == 0;
	memset(&up.fetch, 0, sizeof(up.fetch));
	up.fetch.head = up_fetch_head;
	up.fetch.body = up_fetch_body;
	up.fetch.done = up_fetch_done;
	up.fetch.data = call;
	up.fetch.idle_ms = 30000;
	if (fetch_start(&up.fetch, up.loop, up.url, "keel/" KEEL_VERSION, err, sizeof(err)) != 0) {
		snprintf(up.rd.err, sizeof(up.rd.err), "%s", err);
		up_refuse(call, 400);
		return;
	}
	up.fetching = true;
}

static const struct core_command fetch_command = {
	.name = "update.fetch",
	.doc = "Fetch a signed update bundle from an http:// URL (arg; target \"downgrade\" "
	       "allows an older version) into the inactive slot and reboot into it for a trial.",
	.arg = "http://ADDRESS[:PORT]/PATH of the bundle",
	.run = up_fetch,
};
CORE_COMMAND(fetch_command);

static void up_rollback(struct core_command_call *call)
{
	int slot;
	unsigned gen;

	if (!up.supported) {
		core_command_fail(call, 409, "updates are off: %s", up.why);
		return;
	}
	slot = 1 - up.running;
	if (up.busy || up.rebooting) {
		core_command_fail(call, 409, "an update is under way");
		return;
	}
	if (up.trial) {
		core_command_fail(call, 409, "slot %c is on trial: it is committed or given up "
				  "within %lld s", 'a' + up.running,
				  (long long)(up.health_timeout / 1000));
		return;
	}
	if (!up.slot[slot].present) {
		core_command_fail(call, 409, "slot %c is empty: nothing to roll back to", 'a' + slot);
		return;
	}
	if (up.slot[slot].left == 0) {
		core_command_fail(call, 409, "slot %c holds an update that failed (%s): nothing "
				  "good to roll back to", 'a' + slot, up.slot[slot].version);
		return;
	}
	gen = (up.slot[0].gen > up.slot[1].gen ? up.slot[0].gen : up.slot[1].gen) + 1;
	if (up_rename(&up.slot[slot], slot, gen, -1, -1) != 0) {
		core_command_fail(call, 500, "cannot rename the slot (see the log)");
		return;
	}
	up_last_write("rolled-back", up.slot[slot].version, slot, "rolled back by %s from %s",
		      call->who, up.version);
	sync();
	core_log_warn("update", "%s rolls back to slot %c (%s): rebooting", call->who, 'a' + slot,
		      up.slot[slot].version);
	core_buf_printf(&call->out, "{\"ok\":true,\"slot\":\"%c\",\"version\":", 'a' + slot);
	core_json_str(&call->out, up.slot[slot].version);
	core_buf_append(&call->out, ",\"rebooting\":true}", 18);
	up_reboot_soon();
	core_command_answer(call, 202);
}

static const struct core_command rollback_command = {
	.name = "update.rollback",
	.doc = "Boot the other slot from now on (it becomes the committed one) and reboot.",
	.run = up_rollback,
};
CORE_COMMAND(rollback_command);

/* ---- status ----------------------------------------------------------------------------------- */

static int up_status_json(struct core_buf *out)
{
	int rc = 0, i;
	size_t k;

	rc |= core_buf_printf(out, "{\"supported\":%s,\"why\":", up.supported ? "true" : "false");
	rc |= core_json_str(out, up.supported ? "" : up.why);
	rc |= core_buf_append(out, ",\"version\":", 11);
	rc |= core_json_str(out, up.version);
	rc |= core_buf_printf(out, ",\"running\":%s%c%s,\"slots\":[",
			      up.running >= 0 ? "\"" : "", up.running >= 0 ? 'a' + up.running : 'n',
			      up.running >= 0 ? "\"" : "ull");
	for (i = 0; up.supported && i < 2; i++) {
		const struct up_slot *s = &up.slot[i];
		const char *state = !s->present ? "empty" : s->left < 0 ? "committed" :
				    s->left == 0 ? "bad" : "trying";

		rc |= core_buf_printf(out, "%s{\"slot\":\"%c\",\"present\":%s,\"state\":\"%s\","
				      "\"running\":%s,\"tries_left\":%d,\"boots\":%d,\"file\":",
				      i ? "," : "", 'a' + i, s->present ? "true" : "false", state,
				      i == up.running ? "true" : "false", s->left, s->done);
		rc |= core_json_str(out, s->file);
		rc |= core_buf_append(out, ",\"version\":", 11);
		rc |= core_json_str(out, s->version);
		rc |= core_buf_append(out, ",\"installed\":", 13);
		rc |= core_json_str(out, s->installed);
		rc |= core_buf_append(out, "}", 1);
	}
	rc |= core_buf_append(out, "],\"last\":", 9);
	if (up.last_state[0] != '\0') {
		rc |= core_buf_append(out, "{\"state\":", 9);
		rc |= core_json_str(out, up.last_state);
		rc |= core_buf_append(out, ",\"version\":", 11);
		rc |= core_json_str(out, up.last_version);
		rc |= core_buf_append(out, ",\"slot\":", 8);
		rc |= core_json_str(out, up.last_slot);
		rc |= core_buf_append(out, ",\"when\":", 8);
		rc |= core_json_str(out, up.last_when);
		rc |= core_buf_append(out, ",\"why\":", 7);
		rc |= core_json_str(out, up.last_why);
		rc |= core_buf_append(out, "}", 1);
	} else
		rc |= core_buf_append(out, "null", 4);
	rc |= core_buf_printf(out, ",\"trial\":%s,\"trial_s\":%llu,\"failing\":",
			      up.trial ? "true" : "false",
			      up.trial ? (unsigned long long)((core_clock_mono_ms() -
							       up.trial_since) / 1000) : 0ULL);
	rc |= core_json_str(out, up.trial ? up.failing : "");
	rc |= core_buf_printf(out, ",\"health_timeout_s\":%lld,\"tries\":%lld,\"busy\":%s,"
			      "\"received\":%llu,\"expected\":%lld,\"refused_bytes_written\":%llu,"
			      "\"keys\":[", (long long)(up.health_timeout / 1000),
			      (long long)up.tries, up.busy ? "true" : "false",
			      (unsigned long long)(up.busy ? up.rd.offset : 0),
			      (long long)(up.busy ? up.length : -1),
			      (unsigned long long)up.refused_written);
	for (k = 0; k < up.nkeys; k++) {
		rc |= core_buf_printf(out, "%s{\"id\":\"%s\",\"name\":", k ? "," : "",
				      up.keys[k].id);
		rc |= core_json_str(out, up.keys[k].name);
		rc |= core_buf_append(out, "}", 1);
	}
	rc |= core_buf_append(out, "]}", 2);
	return rc == 0 ? CORE_OK : CORE_ERROR;
}

static const struct core_status_provider update_status = {
	.name = "update",
	.order = 85,
	.json = up_status_json,
};
CORE_STATUS_PROVIDER(update_status);

/* ---- keel update sign ---------------------------------------------------------------------- */

static int up_rng(void *ctx, unsigned char *buf, size_t len)
{
	(void)ctx;
	return core_tls_random(buf, len) == CORE_OK ? 0 : -1;
}

static int up_tool(int argc, char **argv)
{
	const char *key = NULL, *version = NULL, *arch = KEEL_ARCH, *in = NULL, *out = NULL;
	char err[300];
	int i;

	if (argc < 2 || strcmp(argv[1], "sign") != 0) {
		fprintf(stderr, "usage: keel update sign --key KEY.pem --version V [--arch A] "
			"IMAGE.efi OUT.bundle\n");
		return 2;
	}
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key = argv[++i];
		else if (strcmp(argv[i], "--version") == 0 && i + 1 < argc)
			version = argv[++i];
		else if (strcmp(argv[i], "--arch") == 0 && i + 1 < argc)
			arch = argv[++i];
		else if (argv[i][0] != '-' && in == NULL)
			in = argv[i];
		else if (argv[i][0] != '-' && out == NULL)
			out = argv[i];
		else {
			fprintf(stderr, "keel update sign: unexpected '%s'\n", argv[i]);
			return 2;
		}
	}
	if (key == NULL || version == NULL || in == NULL || out == NULL) {
		fprintf(stderr, "keel update sign: needs --key, --version, the image and the "
			"bundle to write\n");
		return 2;
	}
	if (bundle_sign(key, in, version, arch, out, up_rng, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "keel update sign: %s\n", err);
		return 1;
	}
	printf("keel update sign: %s (version %s, %s)\n", out, version, arch);
	return 0;
}

static const struct core_tool update_tool = {
	.name = "update",
	.usage = "       keel update sign --key KEY.pem --version V [--arch A] IMAGE.efi OUT\n"
		 "                               sign an image into an update bundle\n",
	.main = up_tool,
};
CORE_TOOL(update_tool);
