/* keel's state directory: what must survive restarts and upgrades, such
 * as the per-install secret key that signs affinity cookies. */
#ifndef KEEL_CORE_STATE_H
#define KEEL_CORE_STATE_H

#include <stddef.h>
#include <sys/types.h>

#define CORE_STATE_KEY_LEN	32

/* Creates DIR (and its parents) readable by keel only, if missing; an
 * existing DIR open to other users is made 0700 (logged) or refused. Sets
 * the process umask to 077: every file keel creates is its own. */
int core_state_dir(const char *dir, char *err, size_t errlen);

/*
 * Reads DIR/install.key, or creates it (and DIR) with 32 random bytes,
 * readable by keel only. CORE_OK, or CORE_ERROR with the reason in err.
 */
int core_state_key(const char *dir, unsigned char key[CORE_STATE_KEY_LEN],
		   char *err, size_t errlen);

/* Replaces path with data: written to path.tmp, fsynced, renamed, so a
 * crash leaves the old file or the new one. The file gets mode without
 * its group and other bits (0600 for 0644). CORE_OK, or CORE_ERROR. */
int core_state_write(const char *path, const void *data, size_t len, mode_t mode,
		     char *err, size_t errlen);

#endif
