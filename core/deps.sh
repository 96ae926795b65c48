#!/usr/bin/env bash
# Builds the six third-party libraries keel links (static, musl) from Debian's
# source packages into a cache outside the source tree. Nothing is vendored.
#
#   core/deps.sh TARGET          build (or reuse) the cache for TARGET, print its path
#   core/deps.sh --print TARGET  print the cache path only; exit 1 if not built yet
#
# TARGET is x86_64 or aarch64 (musl, for the shipped binary) or glibc (the
# host's gcc and C library, for sanitizer and fuzzing builds, which musl lacks).
# The cache lives in ${KEEL_DEPS_CACHE:-$HOME/.cache/keel-deps}: downloaded
# archives in src/, and one prefix per TARGET-KEY, where KEY hashes the pins and
# RECIPE, so a change to either builds a fresh prefix and an unchanged one is
# reused by every later build and CI run on the machine. Bump RECIPE whenever a
# build step below changes.
set -euo pipefail

# Pins: source package, upstream version, upstream tarball, its sha256.
# The upstream tarball is the pin: Debian's revision of a package moves with
# every security update (and the archive keeps only the newest), but the
# .orig tarball and its sha256 stay the same across those revisions, so any
# revision the archive offers for the pinned upstream version will do.
# All from Debian 13 (trixie): mbedTLS 3.6 is the LTS line with TLS 1.3.
PINS='
mbedtls       3.6.6   mbedtls_3.6.6.orig.tar.bz2          8fb65fae8dcae5840f793c0a334860a411f884cc537ea290ce1c52bb64ca007a
hiredis       1.2.0   hiredis_1.2.0.orig.tar.gz           82ad632d31ee05da13b537c124f819eb88e18851d9cb0c30ae0552084811588c
libnfs        5.0.2   libnfs_5.0.2.orig.tar.gz            637e56643b19da9fba98f06847788c4dad308b723156a64748041035dcdf9bd3
sqlite3       3.46.1  sqlite3_3.46.1.orig.tar.xz          d0cdd2ece271b29e7ce18095745d892517ee26d0f270065b3a25c2e9eb11639c
libmicrohttpd 1.0.1   libmicrohttpd_1.0.1.orig.tar.gz     a89e09fc9b4de34dde19f4fcb4faaa1ce10299b9908db1132bbfa1de47882b94
libyaml       0.2.5   libyaml_0.2.5.orig.tar.gz           fa240dbf262be053f3898006d502d514936c818e422afdcf33921c63bed9bf2e
'
RECIPE=5

print_only=0
if [ "${1:-}" = "--print" ]; then print_only=1; shift; fi
ARCH=${1:-x86_64}
case "$ARCH" in
x86_64|aarch64|glibc) ;;
*) echo "deps: unsupported target '$ARCH' (x86_64, aarch64 or glibc)" >&2; exit 2 ;;
esac

CACHE=${KEEL_DEPS_CACHE:-$HOME/.cache/keel-deps}
KEY=$(echo "$PINS $RECIPE" | sha256sum | cut -c1-12)
PREFIX=$CACHE/$ARCH-$KEY
SRC=$CACHE/src

if [ -f "$PREFIX/.done" ]; then echo "$PREFIX"; exit 0; fi
if [ $print_only = 1 ]; then echo "$PREFIX"; exit 1; fi

# Two builds of one tree (make -j, or two checkouts) share the cache: one
# builds, the other waits and then finds it done.
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock-$ARCH"
flock 9
if [ -f "$PREFIX/.done" ]; then echo "$PREFIX"; exit 0; fi

log() { echo "deps: $*" >&2; }
JOBS=$(nproc 2>/dev/null || echo 2)

# --- host tools -------------------------------------------------------------

apt_ready=0
apt_install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} = 0 ] && return 0
	if [ $apt_ready = 0 ]; then apt-get update -qq >&2; apt_ready=1; fi
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

ensure_deb_src() {
	local f=/etc/apt/sources.list.d/keel-src.sources
	grep -qs debian-security "$f" && return 0
	log "adding deb-src entries ($f)"
	cat >"$f" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	apt-get update -qq >&2
	apt_ready=1
}

apt_install musl-tools autoconf automake libtool tcl dpkg-dev make xz-utils bzip2 file

# --- sources ----------------------------------------------------------------

# Debian versions of source package $1 whose upstream part is $2, newest
# first: "1:3.6.6-0.1~deb13u1" has upstream "3.6.6".
debian_versions() {
	apt-cache showsrc "$1" 2>/dev/null | awk -v up="$2" '
		$1 == "Version:" { v = $2; u = v; sub(/^[0-9]+:/, "", u); sub(/-[^-]*$/, "", u)
				   if (u == up) print v }' | sort -ruV
}

have() { echo "$2  $SRC/$1" | sha256sum -c --status 2>/dev/null; }

fetch() {			# fetch PKG UPSTREAM TARBALL SHA256
	local pkg=$1 up=$2 tar=$3 sum=$4 v tried=
	mkdir -p "$SRC"
	have "$tar" "$sum" && return 0
	ensure_deb_src
	# Twice: the second time with fresh package lists (an old list names a
	# revision the archive has replaced since).
	for pass in 1 2; do
		if [ $pass = 2 ]; then
			log "$pkg: refreshing the package lists"
			apt-get update -qq >&2 || true
		fi
		for v in $(debian_versions "$pkg" "$up"); do
			log "downloading $pkg $v (upstream $up)"
			tried="$tried $v"
			# apt-get may fail on a missing .dsc or .debian.tar
			# after fetching the tarball; the sha256 decides.
			(cd "$SRC" && apt-get source -qq -o APT::Sandbox::User=root \
				--download-only "$pkg=$v" >&2) || true
			have "$tar" "$sum" && return 0
		done
	done
	if [ -z "$tried" ]; then
		log "$pkg: the archive offers no revision of upstream $up" \
		    "(apt-cache showsrc $pkg); update the pin in core/deps.sh"
	else
		log "$pkg: $tar missing or sha256 mismatch after trying$tried (want $sum)"
	fi
	exit 1
}

while read -r pkg ver tar sum; do
	[ -n "$pkg" ] && fetch "$pkg" "$ver" "$tar" "$sum"
done <<<"$PINS"

# --- toolchain --------------------------------------------------------------

WORK=$CACHE/build-$ARCH-$KEY
rm -rf "$WORK" "$PREFIX"
mkdir -p "$WORK" "$PREFIX/include" "$PREFIX/lib" "$PREFIX/bin"

if [ "$ARCH" = x86_64 ]; then
	CC=musl-gcc
	AR=ar
	HOST=x86_64-linux-musl
elif [ "$ARCH" = glibc ]; then
	CC=gcc
	AR=ar
	HOST=x86_64-linux-gnu
else
	apt_install gcc-aarch64-linux-gnu qemu-user-static
	# musl for arm64 comes from Debian's musl-dev:arm64, unpacked (not
	# installed) so the host's multiarch state is left alone.
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		dpkg --add-architecture arm64
		apt_ready=0
	fi
	MUSL=$PREFIX/musl
	(cd "$WORK" && { apt-get download -qq musl-dev:arm64 >&2 2>/dev/null ||
		{ apt-get update -qq >&2 && apt-get download -qq musl-dev:arm64 >&2; }; })
	dpkg -x "$WORK"/musl-dev_*_arm64.deb "$MUSL"
	sed -e "s#/usr/include/aarch64-linux-musl#$MUSL/usr/include/aarch64-linux-musl#g" \
	    -e "s#/usr/lib/aarch64-linux-musl#$MUSL/usr/lib/aarch64-linux-musl#g" \
	    "$MUSL/usr/lib/aarch64-linux-musl/musl-gcc.specs" >"$MUSL/musl-gcc.specs"
	cat >"$PREFIX/bin/aarch64-musl-gcc" <<EOF
#!/bin/sh
exec aarch64-linux-gnu-gcc "\$@" -specs "$MUSL/musl-gcc.specs"
EOF
	chmod +x "$PREFIX/bin/aarch64-musl-gcc"
	CC=$PREFIX/bin/aarch64-musl-gcc
	AR=aarch64-linux-gnu-ar
	HOST=aarch64-linux-musl
fi
CFLAGS="-O2 -fPIC -ffunction-sections -fdata-sections"
export PKG_CONFIG_LIBDIR=$PREFIX/lib/pkgconfig

unpack() {			# unpack TARBALL -> prints the directory
	local dir
	dir=$(tar tf "$SRC/$1" | head -1 | cut -d/ -f1)
	tar xf "$SRC/$1" -C "$WORK"
	echo "$WORK/$dir"
}

run() {				# run NAME CMD...: quiet unless it fails
	local name=$1; shift
	if ! "$@" >>"$WORK/$name.log" 2>&1; then
		log "$name failed: $*"
		tail -n 30 "$WORK/$name.log" >&2
		exit 1
	fi
}

autotools() {			# autotools NAME DIR CONFIGURE-ARGS...
	local name=$1 dir=$2; shift 2
	cd "$dir"
	[ -x configure ] || run "$name" ./bootstrap
	run "$name" ./configure --host="$HOST" --prefix="$PREFIX" \
		--disable-shared --enable-static CC="$CC" AR="$AR" CFLAGS="$CFLAGS" "$@"
	run "$name" make -j"$JOBS"
	run "$name" make install
}

build_mbedtls() {
	local d; d=$(unpack mbedtls_3.6.6.orig.tar.bz2)
	cd "$d"
	# keel gives mbedTLS its own allocator (core/tls.c): a handshake's
	# bignum code allocates and frees small blocks thousands of times.
	run mbedtls python3 scripts/config.py set MBEDTLS_PLATFORM_MEMORY
	# ...its own X25519 (core/ecp25519.c: the ladder step and the final
	# inversion mbedTLS calls for Curve25519 only, and the ECDH shared
	# secret), and its own ECDSA signing (core/p256.c: P-256 in limbs,
	# other curves on mbedTLS's public functions).
	for opt in MBEDTLS_ECP_INTERNAL_ALT MBEDTLS_ECP_DOUBLE_ADD_MXZ_ALT \
		   MBEDTLS_ECP_NORMALIZE_MXZ_ALT MBEDTLS_ECDH_COMPUTE_SHARED_ALT \
		   MBEDTLS_ECDSA_SIGN_ALT; do
		run mbedtls python3 scripts/config.py set "$opt"
	done
	run mbedtls make -j"$JOBS" CC="$CC" AR="$AR" CFLAGS="$CFLAGS" lib
	cp -r include/mbedtls include/psa "$PREFIX/include/"
	cp library/libmbedtls.a library/libmbedx509.a library/libmbedcrypto.a "$PREFIX/lib/"
}

build_hiredis() {
	local d; d=$(unpack hiredis_1.2.0.orig.tar.gz)
	cd "$d"
	run hiredis make -j"$JOBS" CC="$CC" AR="$AR" OPTIMIZATION=-O2 USE_SSL=0 static
	mkdir -p "$PREFIX/include/hiredis/adapters"
	cp hiredis.h async.h read.h sds.h alloc.h "$PREFIX/include/hiredis/"
	cp libhiredis.a "$PREFIX/lib/"
}

build_sqlite() {
	local d; d=$(unpack sqlite3_3.46.1.orig.tar.xz)
	cd "$d"
	# The amalgamation is generated with host tools, then cross-compiled.
	run sqlite ./configure --disable-tcl
	run sqlite make sqlite3.c
	run sqlite "$CC" $CFLAGS -c sqlite3.c -o sqlite3.o \
		-DSQLITE_THREADSAFE=1 -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_DQS=0 \
		-DSQLITE_DEFAULT_FOREIGN_KEYS=1 -DSQLITE_OMIT_DEPRECATED
	run sqlite "$AR" rcs "$PREFIX/lib/libsqlite3.a" sqlite3.o
	cp sqlite3.h "$PREFIX/include/"
}

build_all() {
	build_mbedtls
	build_hiredis
	build_sqlite
	autotools libyaml "$(unpack libyaml_0.2.5.orig.tar.gz)"
	autotools libnfs "$(unpack libnfs_5.0.2.orig.tar.gz)" \
		--disable-utils --disable-examples --disable-werror
	autotools libmicrohttpd "$(unpack libmicrohttpd_1.0.1.orig.tar.gz)" \
		--disable-https --without-gnutls --disable-doc --disable-examples \
		--disable-curl --disable-nls --disable-tools
}

log "building for $ARCH into $PREFIX"
t0=$(date +%s)
build_all
echo "$PINS" >"$PREFIX/PINS"
rm -rf "$WORK"
touch "$PREFIX/.done"
log "done in $(( $(date +%s) - t0 )) s"
echo "$PREFIX"
