/* keel as PID 1: the early mounts, kernel modules and data partition, and
 * the bounded way down to reboot(2). See sysinit.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"
#include "clock.h"
#include "log.h"
#include "sysinit.h"

#define SI_MOUNTS_MAX	256
#define SI_DATA_WAIT_MS	10000	/* for the data partition's device to appear */
#define SI_TERM_MS	1000	/* SIGTERM to SIGKILL */
#define SI_UNMOUNT_MS	4000	/* syncs and unmounts get this long */

static void si_mount(const char *src, const char *dst, const char *type, unsigned long flags,
		     const char *data)
{
	(void)mkdir(dst, 0755);
	if (mount(src, dst, type, flags, data) == -1 && errno != EBUSY)
		core_log_error("init", "cannot mount %s on %s: %s", type, dst, strerror(errno));
}

/* PID 1 starts with whatever fds the kernel gave it: maybe none. */
static void si_console(void)
{
	int fd;

	if (fcntl(2, F_GETFD) != -1)
		return;
	fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd == -1)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

static void si_modules(void)
{
	char line[512], path[600], loaded[400] = "";
	unsigned n = 0, failed = 0;
	size_t used = 0;
	FILE *f = fopen(CORE_SYSINIT_MODULES, "r");

	if (f == NULL)
		return;			/* the image lists none */
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *base;
		int fd;

		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		snprintf(path, sizeof(path), "%s%s", line[0] == '/' ? "" : "/lib/modules/", line);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd == -1 || (syscall(SYS_finit_module, fd, "", 0) == -1 && errno != EEXIST)) {
			core_log_error("init", "kernel module %s: %s", path, strerror(errno));
			failed++;
		} else {
			base = strrchr(line, '/') != NULL ? strrchr(line, '/') + 1 : line;
			if (used + strlen(base) + 2 < sizeof(loaded))
				used += (size_t)snprintf(loaded + used, sizeof(loaded) - used, "%s%.*s",
							 n ? " " : "", (int)strcspn(base, "."), base);
			n++;
		}
		if (fd != -1)
			close(fd);
	}
	fclose(f);
	core_log_info("init", "loaded %u kernel module%s (%s)%s", n, n == 1 ? "" : "s", loaded,
		      failed ? "; some failed, see above" : "");
}

bool core_sysinit_arg(const char *name, char *out, size_t outlen)
{
	char cmdline[4096], *tok, *save;
	size_t len = strlen(name);
	bool found = false;
	ssize_t n;
	int fd;

	fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	n = fd == -1 ? -1 : read(fd, cmdline, sizeof(cmdline) - 1);
	if (fd != -1)
		close(fd);
	if (n <= 0)
		return false;
	cmdline[n] = '\0';
	/* The last one wins, as with the kernel's own parameters. */
	for (tok = strtok_r(cmdline, " \t\n", &save); tok != NULL; tok = strtok_r(NULL, " \t\n", &save))
		if (strncmp(tok, name, len) == 0 && tok[len] == '=') {
			snprintf(out, outlen, "%s", tok + len + 1);
			found = true;
		}
	return found;
}

/* The /dev name of the partition whose GPT name is label: sysfs has it in
 * each block device's uevent as PARTNAME (no udev here for by-partlabel). */
static bool si_partlabel(const char *label, char *dev, size_t devlen)
{
	char path[300], line[256];
	struct dirent *de;
	bool found = false;
	DIR *d = opendir("/sys/class/block");

	if (d == NULL)
		return false;
	while (!found && (de = readdir(d)) != NULL) {
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/block/%s/uevent", de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		while (fgets(line, sizeof(line), f) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			if (strncmp(line, "PARTNAME=", 9) == 0 && strcmp(line + 9, label) == 0) {
				snprintf(dev, devlen, "/dev/%s", de->d_name);
				found = true;
				break;
			}
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

bool core_sysinit_device(const char *spec, char *dev, size_t devlen, unsigned wait_ms)
{
	uint64_t until = core_clock_mono_ms() + wait_ms;

	/* Disks are probed while we run: give the device a moment. */
	for (;;) {
		if (strncmp(spec, "PARTLABEL=", 10) == 0) {
			if (si_partlabel(spec + 10, dev, devlen))
				return true;
		} else if (access(spec, F_OK) == 0) {
			snprintf(dev, devlen, "%s", spec);
			return true;
		}
		if (!core_clock_before(core_clock_mono_ms(), until))
			return false;
		usleep(50000);
	}
}

/* keel.data=DEVICE[:FSTYPE] from the kernel command line; DEVICE is a
 * path or PARTLABEL=NAME. */
static void si_data(void)
{
	char spec[256] = "", dev[300], *fstype;

	if (!core_sysinit_arg("keel.data", spec, sizeof(spec))) {
		core_log_warn("init", "no data partition (keel.data= on the kernel command line): "
			      "what keel stores is lost at power off");
		return;
	}
	fstype = strchr(spec, ':');
	if (fstype != NULL)
		*fstype++ = '\0';
	if (!core_sysinit_device(spec, dev, sizeof(dev), SI_DATA_WAIT_MS)) {
		core_log_error("init", "data partition %s: no such device after %u s; what keel "
			       "stores is lost at power off", spec, SI_DATA_WAIT_MS / 1000);
		return;
	}
	(void)mkdir("/var", 0755);
	(void)mkdir("/var/lib", 0755);
	(void)mkdir(CORE_SYSINIT_DATA_DIR, 0700);
	if (mount(dev, CORE_SYSINIT_DATA_DIR, fstype != NULL && *fstype ? fstype : "ext4",
		  MS_NOATIME | MS_NODEV | MS_NOSUID, NULL) == -1) {
		core_log_error("init", "data partition %s cannot be mounted on %s: %s; what keel "
			       "stores is lost at power off", dev, CORE_SYSINIT_DATA_DIR,
			       strerror(errno));
		return;
	}
	core_log_info("init", "data partition %s mounted on %s", dev, CORE_SYSINIT_DATA_DIR);
}

void core_sysinit_boot(void)
{
	setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 0);	/* the kernel gives none */
	si_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	si_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	si_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	si_console();
	si_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666");
	si_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	si_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	(void)symlink("/proc/self/mounts", "/etc/mtab");
	(void)reboot(RB_DISABLE_CAD);	/* ctrl-alt-del: SIGINT to us, a clean reboot */
	si_modules();
	si_data();
}

/* ---- the way down ------------------------------------------------------------------------ */

struct si_mnt {
	char	 dir[512];
	char	 type[64];
};

static bool si_network_fs(const char *type)
{
	return strncmp(type, "nfs", 3) == 0 || strncmp(type, "fuse", 4) == 0 ||
	       strcmp(type, "glusterfs") == 0 || strcmp(type, "cifs") == 0 ||
	       strcmp(type, "smb3") == 0 || strcmp(type, "ceph") == 0 || strcmp(type, "9p") == 0;
}

static bool si_virtual_fs(const char *type)
{
	return strcmp(type, "proc") == 0 || strcmp(type, "sysfs") == 0 ||
	       strcmp(type, "devtmpfs") == 0 || strcmp(type, "devpts") == 0 ||
	       strcmp(type, "rootfs") == 0 || strcmp(type, "tmpfs") == 0;
}

/* /proc/self/mounts writes a space in a path as \040. */
static void si_unescape(char *s)
{
	char *out = s;

	for (; *s != '\0'; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else
			*out++ = *s;
	}
	*out = '\0';
}

static size_t si_read_mounts(struct si_mnt *m, size_t max)
{
	char line[1024];
	size_t n = 0;
	FILE *f = fopen("/proc/self/mounts", "r");

	if (f == NULL)
		return 0;
	while (n < max && fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%*s %511s %63s", m[n].dir, m[n].type) != 2)
			continue;
		si_unescape(m[n].dir);
		n++;
	}
	fclose(f);
	return n;
}

/* In a child of PID 1, which gives it SI_UNMOUNT_MS. */
static void __attribute__((noreturn)) si_unmount_all(void)
{
	static struct si_mnt m[SI_MOUNTS_MAX];
	size_t n = si_read_mounts(m, SI_MOUNTS_MAX), i;

	for (i = 0; i < n; i++) {
		int fd;

		if (si_network_fs(m[i].type) || si_virtual_fs(m[i].type))
			continue;
		fd = open(m[i].dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
		if (fd != -1) {
			(void)syncfs(fd);
			close(fd);
		}
	}
	for (i = n; i-- > 0;) {
		const char *d = m[i].dir;

		if (strcmp(d, "/") == 0 || strcmp(d, "/proc") == 0 || strcmp(d, "/sys") == 0 ||
		    strcmp(d, "/dev") == 0)
			continue;
		/*
		 * Network filesystems are left mounted for the kernel to drop:
		 * on a dead server their unmount (forced or lazy) blocks, and
		 * so did reboot(2) after it, or after a flush stuck on it
		 * (NFSv4, measured in a qemu guest). On the gateway they carry
		 * keel's canaries and what the static routes read.
		 */
		if (si_network_fs(m[i].type))
			continue;
		if (umount2(d, 0) == -1 && !si_virtual_fs(m[i].type) &&
		    mount(NULL, d, NULL, MS_REMOUNT | MS_RDONLY, NULL) == -1)
			(void)umount2(d, MNT_DETACH);
	}
	_exit(0);
}

/* Reaps whatever ends until nothing is left or the time is up. */
static void si_reap_until(uint64_t until)
{
	while (core_clock_before(core_clock_mono_ms(), until)) {
		pid_t pid = waitpid(-1, NULL, WNOHANG);

		if (pid == -1 && errno == ECHILD)
			return;
		if (pid <= 0)
			usleep(10000);
	}
}

void core_sysinit_halt(int how)
{
	const char *what = how == (int)RB_POWER_OFF ? "powering off" : "rebooting";
	uint64_t until;
	pid_t pid;

	core_log_info("init", "%s: stopping every process", what);
	kill(-1, SIGTERM);
	si_reap_until(core_clock_mono_ms() + SI_TERM_MS);
	kill(-1, SIGKILL);
	si_reap_until(core_clock_mono_ms() + 200);
	core_log_info("init", "%s: syncing and unmounting", what);
	pid = fork();
	if (pid == 0)
		si_unmount_all();
	until = core_clock_mono_ms() + SI_UNMOUNT_MS;
	while (pid > 0 && core_clock_before(core_clock_mono_ms(), until) &&
	       waitpid(pid, NULL, WNOHANG) == 0)
		usleep(10000);
	if (pid > 0 && kill(pid, 0) == 0 && waitpid(pid, NULL, WNOHANG) == 0)
		core_log_warn("init", "unmounting is stuck in the kernel after %u ms: %s anyway",
			      SI_UNMOUNT_MS, what);

	core_log_info("init", "%s now", what);
	for (;;) {
		reboot(how);
		core_log_error("init", "reboot(2) failed: %s; trying again", strerror(errno));
		sleep(1);
	}
}
