/* systemd's service notifications (sd_notify(3)) without libsystemd: a
 * datagram to $NOTIFY_SOCKET. Nothing happens when keel is not run by a
 * service manager that asks for them. */
#ifndef KEEL_CORE_NOTIFY_H
#define KEEL_CORE_NOTIFY_H

#include <stdint.h>

/* Sends "READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=..." (lines may be
 * joined with '\n'). CORE_OK, also when nobody listens. */
int core_notify(const char *state);
/* How often to send WATCHDOG=1 (half of WATCHDOG_USEC, when it is meant
 * for this process), in ms; 0: no watchdog. */
uint64_t core_notify_watchdog_ms(void);

#endif
