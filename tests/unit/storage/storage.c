/* Tests of the storage part's pure pieces: its reading of
 * /proc/self/mountinfo (the one way keel learns what is mounted without
 * entering a filesystem), the mount options it builds over its defaults,
 * the sources it recognises as its own, and its backoff. */
#include <string.h>

#include "core/core.h"
#include "core/settings-t.h"
#include "runner.h"
#include "storage/storage.c"
#include "storage/mount.c"
#include "storage/probe.c"

TEST(mountinfo_escapes_are_undone)
{
	char s[] = "/mnt/with\\040space\\011tab\\134back";

	mountinfo_unescape(s);
	CHECK_STR(s, "/mnt/with space\ttab\\back");
}

TEST(mountinfo_finds_real_mount_points_only)
{
	char fstype[32], source[300];

	CHECK(storage_mountinfo_find("/proc", fstype, sizeof(fstype), source, sizeof(source)));
	CHECK_STR(fstype, "proc");
	CHECK(storage_mountinfo_find("/", fstype, sizeof(fstype), source, sizeof(source)));
	CHECK(!storage_mountinfo_find("/proc/self", fstype, sizeof(fstype), source, sizeof(source)));
	CHECK(!storage_mountinfo_find("/no/such/mount", fstype, sizeof(fstype), source, sizeof(source)));
	CHECK(!storage_mountinfo_find("", fstype, sizeof(fstype), source, sizeof(source)));
}

TEST(ordinals_read_as_english)
{
	CHECK_STR(storage_nth(1), "st");
	CHECK_STR(storage_nth(2), "nd");
	CHECK_STR(storage_nth(3), "rd");
	CHECK_STR(storage_nth(4), "th");
	CHECK_STR(storage_nth(11), "th");
	CHECK_STR(storage_nth(12), "th");
	CHECK_STR(storage_nth(21), "st");
	CHECK_STR(storage_nth(113), "th");
}

TEST(nfs_options_are_keels_defaults_less_what_the_user_names)
{
	char out[640];
	char *srv[] = { "10.0.0.7", "10.0.0.8" };

	CHECK(storage_mount_options(out, sizeof(out), KEEL_MOUNT_NFS, "", srv, 2, "") > 0);
	CHECK_STR(out, "nfsvers=4.1,hard,timeo=100,retrans=3,noresvport");
	/* soft replaces hard, vers replaces nfsvers; the rest stays in order */
	CHECK(storage_mount_options(out, sizeof(out), KEEL_MOUNT_NFS, "soft,vers=3,timeo=50,ro",
				    srv, 2, "") > 0);
	CHECK_STR(out, "retrans=3,noresvport,soft,vers=3,timeo=50,ro");
	/* a name that only starts like a default is not that default */
	CHECK(storage_mount_options(out, sizeof(out), KEEL_MOUNT_NFS, "hardware", srv, 2, "") > 0);
	CHECK_STR(out, "nfsvers=4.1,hard,timeo=100,retrans=3,noresvport,hardware");
	/* too long for the buffer: 0, not a cut list */
	CHECK(storage_mount_options(out, 20, KEEL_MOUNT_NFS, "", srv, 2, "") == 0);
}

TEST(glusterfs_options_name_the_backup_volfile_servers_and_the_log)
{
	char out[640];
	char *srv[] = { "127.0.0.2", "127.0.0.3", "127.0.0.4" };

	CHECK(storage_mount_options(out, sizeof(out), KEEL_MOUNT_GLUSTERFS, "", srv, 3,
				    "/var/lib/keel/glusterfs-share.log") > 0);
	CHECK_STR(out, "log-file=/var/lib/keel/glusterfs-share.log,"
		  "backup-volfile-servers=127.0.0.3:127.0.0.4");
	CHECK(storage_mount_options(out, sizeof(out), KEEL_MOUNT_GLUSTERFS, "log-level=WARNING",
				    srv, 1, "/l") > 0);
	CHECK_STR(out, "log-file=/l,log-level=WARNING");
}

TEST(only_a_source_of_the_mounts_own_servers_is_its_own)
{
	struct storage_mount m;

	memset(&m, 0, sizeof(m));
	m.type = KEEL_MOUNT_NFS;
	m.nservers = 3;
	snprintf(m.remote, sizeof(m.remote), "/export");
	snprintf(m.servers[0].addr, sizeof(m.servers[0].addr), "10.0.0.7");
	snprintf(m.servers[1].addr, sizeof(m.servers[1].addr), "10.0.0.8");
	snprintf(m.servers[2].addr, sizeof(m.servers[2].addr), "fd00::8");
	CHECK(mount_source_server(&m, "nfs4", "10.0.0.8:/export") == 1);
	CHECK(mount_source_server(&m, "nfs", "10.0.0.7:/export") == 0);
	CHECK(mount_source_server(&m, "nfs4", "[fd00::8]:/export") == 2);
	CHECK(mount_source_server(&m, "nfs4", "10.0.0.9:/export") == -1);
	CHECK(mount_source_server(&m, "nfs4", "10.0.0.7:/export/sub") == -1);
	CHECK(mount_source_server(&m, "ext4", "10.0.0.7:/export") == -1);
	m.type = KEEL_MOUNT_GLUSTERFS;
	snprintf(m.remote, sizeof(m.remote), "/gv0");
	CHECK(mount_source_server(&m, "fuse.glusterfs", "10.0.0.8:/gv0") == 1);
	CHECK(mount_source_server(&m, "nfs4", "10.0.0.8:/gv0") == -1);
}

TEST(backoff_doubles_from_1_s_to_8_s_with_jitter)
{
	unsigned i, f;

	for (i = 0; i < 200; i++) {
		uint64_t b1 = backoff(1), b4 = backoff(4), b9 = backoff(9);

		CHECK(b1 >= 875 && b1 <= 1125);
		CHECK(b4 >= 7000 && b4 <= 9000);
		CHECK(b9 >= 7000 && b9 <= 9000);
	}
	for (f = 1; f < 40; f++)
		CHECK(backoff(f) <= 9000);
}

TEST(the_probes_speak_the_nfs_version_the_mount_asks_for)
{
	CHECK(storage_nfs_version("nfsvers=4.1,hard") == 4);
	CHECK(storage_nfs_version("") == 4);
	CHECK(storage_nfs_version("retrans=3,vers=3") == 3);
	CHECK(storage_nfs_version("nfsvers=3,vers=4.2") == 4);	/* the last one named */
	CHECK(storage_nfs_version("minorversion=1,nfsvers=3") == 3);
	CHECK(storage_nfs_version("nconnect=3") == 4);
}
