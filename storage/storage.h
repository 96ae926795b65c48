/*
 * The storage part's own pieces, shared between its files and with no
 * other part: the servers' probes (probe.c), the mounts and their helper
 * processes (mount.c), the module, its configuration and its status
 * (storage.c).
 */
#ifndef KEEL_STORAGE_STORAGE_H
#define KEEL_STORAGE_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/child.h"
#include "core/loop-t.h"

#define STORAGE_MAX_SERVERS	8
#define STORAGE_GLUSTERD_PORT	24007

enum storage_state {
	STORAGE_STARTING = 0,	/* nothing known yet */
	STORAGE_HEALTHY,
	STORAGE_SLOW,
	STORAGE_HUNG,		/* stopped answering: probes or checks time out */
	STORAGE_FAILED,		/* refused: no server, no export, a mount that failed */
	STORAGE_MOUNTING,	/* a mount attempt is under way */
	STORAGE_MISSING,	/* was mounted, is not any more */
};

/* What a server's probe is waiting for. */
enum storage_step {
	STEP_IDLE = 0,
	STEP_MOUNT,		/* NFS: the portmapper, then MOUNT */
	STEP_GETATTR,		/* NFS: of the export's root */
	STEP_FSSTAT,		/* NFS: free space */
	STEP_CONNECT,		/* GlusterFS: a TCP connect to glusterd */
};

/* A helper process and what keel waits for from it. */
enum storage_job_kind {
	JOB_NONE = 0,
	JOB_MOUNT,
	JOB_UMOUNT,		/* lazy: MNT_DETACH */
	JOB_CHECK,		/* statvfs, and the canary write and read */
};

struct storage_mount;
struct nfs_context;

struct storage_job {
	enum storage_job_kind kind;
	struct storage_mount *m;	/* NULL: the unmount of a mount that left the config */
	struct core_child child;	/* pid 0: finished and reaped */
	struct core_timer deadline;
	struct core_io	 out;		/* its stderr, for the reason */
	int		 fd;
	int		 server;	/* JOB_MOUNT: which one */
	int		 then;		/* JOB_UMOUNT: the server to mount from next; -1 */
	bool		 late;		/* its deadline passed: killed, maybe held */
	uint64_t	 started;	/* monotonic ms */
	char		 msg[240];
	size_t		 msglen;
	char		 path[256];	/* JOB_UMOUNT of a dropped mount */
};

struct storage_server {
	struct storage_mount *m;
	char		 addr[48];
	struct nfs_context *nfs;	/* NULL between a failure and the next probe */
	struct nfs_context *doomed;	/* dropped inside nfs_service: freed after it */
	int		 sock;		/* GlusterFS: the connect under way; -1 */
	bool		 in_service;
	bool		 mounted;	/* nfs holds the export */
	struct core_io	 io;
	struct core_timer timer;	/* the next probe, or this one's deadline */
	enum storage_step step;
	uint64_t	 asked;		/* monotonic ms the timed request went out */
	unsigned	 misses;	/* timeouts in a row */
	enum storage_state state;
	uint64_t	 up_since;	/* monotonic ms it last became healthy or slow */
	uint64_t	 latency_ms;	/* the last answered probe's */
	uint64_t	 free_bytes, total_bytes;
	uint64_t	 probes, timeouts, failures;
	uint64_t	 since_wall;	/* when state last changed */
	char		 why[200];
};

struct storage_mount {
	char		 name[64];
	int		 type;		/* enum keel_mount_type */
	char		 remote[256];	/* NFS: the export; GlusterFS: "/" and the volume */
	char		 path[256];	/* "": watch only */
	char		 options[640];	/* what goes to mount -o */
	char		 conf_key[2048];	/* everything configured: equal means unchanged */
	bool		 adopt, failback, canary;
	int		 nfs_version;	/* the probes': 3 or 4, as the mount's options say */
	uint64_t	 interval, timeout, slow_after, mount_timeout;
	uint64_t	 canary_interval, canary_timeout;
	unsigned	 max_misses;
	struct storage_server servers[STORAGE_MAX_SERVERS];
	unsigned	 nservers;

	enum storage_state state;
	int		 current;	/* the server in use (or answering); -1: none */
	uint64_t	 since_wall;
	char		 why[300];
	char		 subject[80];	/* the condition's name */

	/* Managed mounts (a path) only. */
	struct storage_job job;		/* a mount or an unmount */
	struct storage_job check;	/* statvfs and the canary */
	struct core_timer tick;		/* mountinfo, retries, checks */
	bool		 ours;		/* keel made it or adopted it */
	bool		 stale;		/* a check said ESTALE, ENOTCONN or EIO */
	unsigned	 failed_attempts;	/* in a row: the backoff */
	int		 next_try;	/* the server to try first */
	uint64_t	 primary_failed_at;	/* a mount from the primary failed then */
	uint64_t	 retry_at;	/* monotonic ms */
	uint64_t	 check_at;
	bool		 check_ok;	/* the last check passed */
	bool		 check_late;	/* the last check missed its deadline */
	uint64_t	 check_ms;	/* how long the last one took */
	char		 check_err[160];
	uint64_t	 attempts, mounts_ok, giveups, abandoned;
	char		 last_attempt[300];
	uint64_t	 last_attempt_ms;
	uint64_t	 last_incident_wall;
	char		 last_incident[300];
};

extern struct storage_globals {
	struct core_loop	*loop;
	struct storage_mount	**mounts;
	unsigned		 n;
	char			 node[64];
	char			 state_dir[256];
	struct storage_job	 drops[32];	/* unmounts of mounts that left the config */
} sm;

const char *storage_state_str(enum storage_state s);
bool storage_state_up(enum storage_state s);
const char *storage_nth(unsigned n);
void storage_gate(void);

/* probe.c: each server, from keel's loop. */
void storage_probe_init(struct storage_server *s);
void storage_probe_stop(struct storage_server *s);

/* mount.c: a mount's state from its servers and, with a path, mounting. */
void storage_mount_start(struct storage_mount *m);
void storage_mount_stop(struct storage_mount *m);
void storage_mount_update(struct storage_mount *m);	/* a server changed */
void storage_unmount_dropped(const char *name, const char *path);
int storage_mount_move(struct storage_mount *m, int server, const char *who, char *err,
		       size_t errlen);
void storage_jobs_stop(void);
size_t storage_mount_options(char *out, size_t len, int type, const char *user,
			     char *const *servers, size_t nservers, const char *logfile);
int storage_nfs_version(const char *options);
bool storage_mountinfo_find(const char *path, char *fstype, size_t tlen, char *source,
			    size_t slen);
void storage_records_load(void);
bool storage_record_has(const char *path);

#endif
