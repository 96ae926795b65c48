/* libFuzzer target for what the storage part reads from text it does not
 * write itself: the kernel's mount table (/proc/self/mountinfo, whose
 * fields other programs choose: a mount point with spaces, a FUSE source),
 * keel's own list of mounts (which a full disk may have cut short), and
 * the mount options a user configures. The first byte picks which; the
 * rest is the text. Beyond "no crash": a mount point found has a type and
 * a source that fit their buffers, NUL-terminated; every record read back
 * is an absolute path; options built fit the buffer or are refused whole,
 * and keep every option the user gave. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/settings-t.h"
#include "storage/storage.h"

/* What mount.c needs of storage.c, here without the module. */
struct storage_globals sm;
const char *storage_state_str(enum storage_state s) { (void)s; return "?"; }
bool storage_state_up(enum storage_state s) { return s == STORAGE_HEALTHY || s == STORAGE_SLOW; }
const char *storage_nth(unsigned n) { (void)n; return "th"; }
void storage_gate(void) { }

#include "storage/mount.c"

static void scan(const char *text, size_t len)
{
	static const char *const paths[] = { "/share", "/", "/mnt/with space", "/a" };
	char fstype[32], source[400];
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		FILE *f = fmemopen((void *)text, len, "r");

		if (f == NULL)
			return;
		memset(fstype, 'x', sizeof(fstype));
		memset(source, 'x', sizeof(source));
		if (mountinfo_scan(f, paths[i], fstype, sizeof(fstype), source, sizeof(source)) &&
		    (memchr(fstype, '\0', sizeof(fstype)) == NULL ||
		     memchr(source, '\0', sizeof(source)) == NULL))
			abort();
		fclose(f);
	}
}

static void read_records(const char *text, size_t len)
{
	FILE *f = fmemopen((void *)text, len, "r");
	unsigned i;

	if (f == NULL)
		return;
	records_parse(f, "b0a1");
	fclose(f);
	if (nrecords > RECORDS_MAX)
		abort();
	for (i = 0; i < nrecords; i++)
		if (records[i].path[0] != '/' || strchr(records[i].path, '\n') != NULL)
			abort();
}

static void options(const char *user)
{
	static char *servers[] = { "10.0.0.7", "fd00::8", "10.0.0.9" };
	char out[640];
	size_t n;
	int type;

	for (type = KEEL_MOUNT_NFS; type <= KEEL_MOUNT_GLUSTERFS; type++) {
		n = storage_mount_options(out, sizeof(out), type, user, servers, 3, "/var/lib/keel/g.log");
		if (n == 0)
			continue;
		if (n >= sizeof(out) || strlen(out) != n)
			abort();
		/* every option the user named is there, as given, in order */
		if (user[0] != '\0' && strstr(out, user) == NULL)
			abort();
	}
	if (storage_nfs_version(user) != 3 && storage_nfs_version(user) != 4)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size < 1)
		return 0;
	if ((text = malloc(size)) == NULL)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0:
		scan(text, size - 1);
		break;
	case 1:
		read_records(text, size - 1);
		break;
	default:
		if (strlen(text) <= 400)
			options(text);
	}
	free(text);
	return 0;
}
