#!/usr/bin/env bash
# Builds keel's .deb: mkdeb.sh KEEL VERSION ARCH OUT.deb
#   /usr/sbin/keel (the static binary), /lib/systemd/system/keel.service,
#   /etc/keel/keel.yaml (the embedded default, a conffile), /var/lib/keel
#   (0700), the README and docs under /usr/share/doc/keel.
set -euo pipefail
keel=$1 version=$2 arch=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
case "$arch" in
x86_64) debarch=amd64 ;;
aarch64) debarch=arm64 ;;
*) echo "mkdeb: unknown arch $arch" >&2; exit 2 ;;
esac
file "$keel" | grep -q 'statically linked' || { echo "mkdeb: $keel is not static" >&2; exit 1; }
stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 "$keel" "$stage/usr/sbin/keel"
install -D -m 0644 "$here/keel.service" "$stage/lib/systemd/system/keel.service"
# The embedded default, as the file the service runs with.
install -d -m 0755 "$stage/etc/keel"
"$keel" --default-config > "$stage/etc/keel/keel.yaml"
chmod 0644 "$stage/etc/keel/keel.yaml"
install -d -m 0700 "$stage/var/lib/keel"
install -D -m 0644 "$root/README.md" "$stage/usr/share/doc/keel/README.md"
for f in "$root"/docs/*.md; do
	install -m 0644 "$f" "$stage/usr/share/doc/keel/"
done
install -d -m 0755 "$stage/DEBIAN"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$stage/DEBIAN/"
echo /etc/keel/keel.yaml > "$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: keel
Version: $version
Architecture: $debarch
Maintainer: keel developers <keel@localhost>
Installed-Size: $size
Section: net
Priority: optional
Recommends: nfs-common, glusterfs-client
Description: load balancer, Redis failover, shared storage and monitoring in one binary
 keel puts in front of two or three application servers what the usual
 guides build from nginx, Redis, NFS and an outside monitor: an HTTP reverse
 proxy with health checks, one stable Redis address that follows the master
 (Sentinel-aware), NFS and GlusterFS mounts that never hang, synthetic
 monitoring with alerts, and a web UI with a versioned configuration store.
 One static binary; no library dependencies.
CONTROL
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "mkdeb: $out ($debarch, $(du -k "$out" | cut -f1) KiB)"
