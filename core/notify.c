/* sd_notify(3)'s protocol: the state as one datagram to the AF_UNIX socket
 * named by $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core.h"
#include "log.h"
#include "notify.h"

int core_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t salen;
	size_t n;
	int fd;

	if (path == NULL || path[0] == '\0')
		return CORE_OK;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path)) {
		core_log_warn("main", "NOTIFY_SOCKET \"%.64s\" is not a socket path: no "
			      "notifications", path);
		unsetenv("NOTIFY_SOCKET");
		return CORE_OK;
	}
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return CORE_ERROR;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) == -1) {
		static int said;

		if (!said++)
			core_log_warn("main", "notifying the service manager at %s: %s", path,
				      strerror(errno));
	}
	close(fd);
	return CORE_OK;
}

uint64_t core_notify_watchdog_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long us;
	char *end;

	if (usec == NULL || getenv("NOTIFY_SOCKET") == NULL)
		return 0;
	if (pid != NULL && strtol(pid, NULL, 10) != (long)getpid())
		return 0;		/* meant for another process */
	us = strtoull(usec, &end, 10);
	if (end == usec || *end != '\0' || us < 2000)
		return 0;
	return us / 2000;		/* half of it, in ms */
}
