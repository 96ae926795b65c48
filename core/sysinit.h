/*
 * keel as PID 1 (the init of its appliance image): what the system needs
 * before keel's configuration can even be read, and the last act before
 * the kernel reboots. The supervisor (core/supervise.c) calls these; the
 * network, the hostname and the clock are firmware/'s, configured like any
 * other part.
 */
#ifndef KEEL_CORE_SYSINIT_H
#define KEEL_CORE_SYSINIT_H

#define CORE_SYSINIT_MODULES	"/etc/keel/modules"	/* .ko paths, dependencies first */
#define CORE_SYSINIT_DATA_DIR	"/var/lib/keel"		/* the data partition's place */
#define CORE_SYSINIT_DEFAULT	"/etc/keel/default.yaml" /* an image's first config */

#include <stdbool.h>
#include <stddef.h>

/* Mounts proc, sys, dev, devpts, run and tmp; gives PID 1 a console; loads
 * the kernel modules CORE_SYSINIT_MODULES lists (finit_module, in its
 * order); mounts the data partition keel.data=DEVICE[:FSTYPE] from the
 * kernel command line on CORE_SYSINIT_DATA_DIR. A step that fails is
 * logged and the boot goes on with what works. */
void core_sysinit_boot(void);

/* The value of NAME=VALUE on the kernel command line into out; false
 * when it is not there. */
bool core_sysinit_arg(const char *name, char *out, size_t outlen);

/* Resolves spec (a /dev path, or PARTLABEL=NAME: a GPT partition's name)
 * to a device path, waiting up to wait_ms for it to appear. */
bool core_sysinit_device(const char *spec, char *dev, size_t devlen, unsigned wait_ms);

/* Stops every process (SIGTERM, then SIGKILL), syncs and unmounts the
 * local filesystems (never a network one: a dead server's sync or unmount
 * blocks, and blocked reboot(2) after it), then reboot(2) with how
 * (RB_AUTOBOOT, RB_POWER_OFF). Bounded in time: a step stuck in the
 * kernel is left behind. Never returns. */
void core_sysinit_halt(int how) __attribute__((noreturn));

#endif
