#!/usr/bin/env bash
# Installs what building and testing keel needs on Debian 12, only what is
# missing, so `make test` passes on a fresh machine. core/deps.sh installs
# the toolchain for the libraries itself.
set -euo pipefail
cd "$(dirname "$0")/.."
need=(
	gcc make musl-tools file git python3 curl wrk	# build, harness, load
	redis-server nginx python3-websockets		# real peers
	nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils	# a real NFS server, nfs-ls
	nfs-common glusterfs-server glusterfs-client	# mount.nfs; GlusterFS and its FUSE mount
	python3-aiosmtpd openssl				# alert mail: SMTP server, a test cert
	testssl.sh bsdextrautils				# TLS: weak protocols and ciphers
	clang libclang-rt-14-dev			# libFuzzer
	gcc-aarch64-linux-gnu qemu-user-static		# ARCH=aarch64
	qemu-system-x86 busybox-static			# a guest whose kernel mounts NFS
	iproute2 keepalived				# network namespaces (DHCP, HA); VRRP interop
	debootstrap					# make deb's package installed into a fresh Debian
	systemd-boot-efi ovmf mtools dosfstools fdisk	# disk images: the boot loader and EFI stub,
	e2fsprogs qemu-utils binutils			# UEFI firmware, FAT, GPT, ext4, qcow2, objcopy
	qemu-system-arm qemu-efi-aarch64 binutils-aarch64-linux-gnu	# the aarch64 image
	chromium fonts-dejavu-core			# the admin UI's browser tests
)
# Node and npm for Playwright, unless a node is already installed (a
# NodeSource node conflicts with Debian's npm package).
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
# make bench also compares against nginx and HAProxy, and runs Redis's own
# test suite (Tcl, and dpkg-source to unpack it); strace counts syscalls and
# stress-ng hogs the proxies' CPU.
[ "${1:-}" = "--bench" ] && need+=(haproxy tcl dpkg-dev strace stress-ng)
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "setup: missing packages: ${missing[*]} (run as root or install them)" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
fi
# Packages that start system services (redis-server, nginx): keel's tests
# and benchmarks start their own instances on free ports.
# playwright-core, pinned in tests/ui/package-lock.json (it drives Debian's
# chromium; it downloads no browser).
if [ ! -d tests/ui/node_modules/playwright-core ]; then
	echo "setup: npm ci in tests/ui"
	(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
fi
# Debian's kernel for that guest, unpacked (its NFS client is modules;
# tests/integration/guest.py makes the initramfs).
guest="${KEEL_GUEST_CACHE:-$HOME/.cache/keel-guest}"
if ! ls "$guest"/linux/boot/vmlinuz-* >/dev/null 2>&1; then
	kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
	echo "setup: $kpkg for the test guest"
	mkdir -p "$guest"
	(cd "$guest" && rm -f linux-image-*.deb && apt-get download -q "$kpkg" >/dev/null 2>&1 &&
	 rm -rf linux && dpkg -x linux-image-*.deb linux && rm -f linux-image-*.deb) ||
		echo "setup: could not fetch $kpkg: the guest test will be skipped" >&2
fi
# The same for the aarch64 image (images/mkimage.py --arch aarch64): Debian's
# arm64 kernel and systemd-boot's arm64 EFI stub and boot loader, unpacked.
if ! ls "$guest"/linux-arm64/boot/vmlinuz-* >/dev/null 2>&1 ||
   [ ! -f "$guest"/systemd-boot-arm64/usr/lib/systemd/boot/efi/linuxaa64.efi.stub ]; then
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		dpkg --add-architecture arm64
		apt-get update -qq
	fi
	kpkg=$(apt-cache depends linux-image-arm64:arm64 | awk '/Depends: linux-image-/ { print $2; exit }')
	echo "setup: ${kpkg%:arm64} and systemd-boot-efi for arm64, for the aarch64 image"
	mkdir -p "$guest/dl"
	(cd "$guest/dl" && rm -f ./*.deb &&
	 apt-get download -q "${kpkg%:arm64}:arm64" systemd-boot-efi:arm64 >/dev/null 2>&1 &&
	 rm -rf ../linux-arm64 ../systemd-boot-arm64 &&
	 dpkg -x linux-image-*_arm64.deb ../linux-arm64 &&
	 dpkg -x systemd-boot-efi_*_arm64.deb ../systemd-boot-arm64 && rm -f ./*.deb) ||
		echo "setup: could not fetch the arm64 kernel: the aarch64 image test will be skipped" >&2
fi
