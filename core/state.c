/* keel's state directory; see state.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "log.h"
#include "state.h"

/* A state directory that others can enter would show them keel's
 * secrets (config.db, the -c file, session.key): it is made private, with
 * a log line, or refused when that cannot be done. */
static int state_dir_private(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (stat(dir, &st) == -1) {
		snprintf(err, errlen, "state directory %s: %s", dir, strerror(errno));
		return CORE_ERROR;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "state directory %s is not a directory", dir);
		return CORE_ERROR;
	}
	if ((st.st_mode & 077) == 0)
		return CORE_OK;
	if (chmod(dir, st.st_mode & 0700) == -1) {
		snprintf(err, errlen, "state directory %s is open to other users (mode %03o) and "
			 "cannot be made private: %s", dir, (unsigned)(st.st_mode & 0777),
			 strerror(errno));
		return CORE_ERROR;
	}
	core_log_warn("state", "state directory %s was open to other users (mode %03o); made it "
		      "%03o", dir, (unsigned)(st.st_mode & 0777), (unsigned)(st.st_mode & 0700));
	return CORE_OK;
}

int core_state_dir(const char *dir, char *err, size_t errlen)
{
	char path[512];
	size_t i, n = strlen(dir);

	/* What keel creates from now on is its own: databases, the config
	 * file it rewrites, keys. */
	umask(077);
	if (n == 0 || n >= sizeof(path)) {
		snprintf(err, errlen, "state directory '%s' is not usable", dir);
		return CORE_ERROR;
	}
	memcpy(path, dir, n + 1);
	for (i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0700) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
			return CORE_ERROR;
		}
		path[i] = i < n ? '/' : '\0';
	}
	return state_dir_private(dir, err, errlen);
}

int core_state_key(const char *dir, unsigned char key[CORE_STATE_KEY_LEN],
		   char *err, size_t errlen)
{
	char path[600];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/install.key", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd != -1) {
		n = read(fd, key, CORE_STATE_KEY_LEN);
		close(fd);
		if (n == CORE_STATE_KEY_LEN)
			return CORE_OK;
		snprintf(err, errlen, "%s: expected %d bytes, got %zd", path,
			 CORE_STATE_KEY_LEN, n);
		return CORE_ERROR;
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return CORE_ERROR;
	}
	if (core_state_dir(dir, err, errlen) != CORE_OK)
		return CORE_ERROR;
	if (getrandom(key, CORE_STATE_KEY_LEN, 0) != CORE_STATE_KEY_LEN) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		return CORE_ERROR;
	}
	/* O_EXCL: two keels starting at once must not end with two keys. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1 && errno == EEXIST)
		return core_state_key(dir, key, err, errlen);
	if (fd == -1 || write(fd, key, CORE_STATE_KEY_LEN) != CORE_STATE_KEY_LEN ||
	    fsync(fd) == -1) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		if (fd != -1) {
			close(fd);
			unlink(path);
		}
		return CORE_ERROR;
	}
	close(fd);
	return CORE_OK;
}

int core_state_write(const char *path, const void *data, size_t len, mode_t mode,
		     char *err, size_t errlen)
{
	char tmp[512];
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return CORE_ERROR;
	}
	/* Never readable by others, whatever the caller asked: a config file
	 * holds secrets. The old file's mode does not carry over. */
	mode &= 0700;
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return CORE_ERROR;
	}
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno ? errno : EIO));
		close(fd);
		unlink(tmp);
		return CORE_ERROR;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return CORE_ERROR;
	}
	return CORE_OK;
}
