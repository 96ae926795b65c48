# keel: one static binary for x86_64 and aarch64. `make help` lists targets.

VERSION	:= 0.1.0
ARCH	?= x86_64
SAN	?= 0
V	?= 0

ifeq ($(V),0)
Q	:= @
say	= @printf '  %-7s %s\n' $(1) $(2);
else
Q	:=
say	=
endif

# The sanitizer build uses the host's gcc and glibc (musl has no ASan), with
# the same pinned libraries built for glibc.
ifeq ($(SAN),1)
DEPS_TARGET := glibc
B	:= build/san
else ifeq ($(ARCH),x86_64)
DEPS_TARGET := x86_64
B	:= build
else ifeq ($(ARCH),aarch64)
DEPS_TARGET := aarch64
B	:= build/aarch64
else
$(error ARCH must be x86_64 or aarch64, not '$(ARCH)')
endif

DEPS	:= $(shell core/deps.sh --print $(DEPS_TARGET))

ifeq ($(SAN),1)
CC	:= gcc
AR	:= ar
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
	    -DKEEL_FAULT
# The sanitizer build is also the fault-injection build (core/fault.h);
# -u takes core/fault.c in even where only mbedTLS calls calloc.
LDFAULT	:= -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup \
	   -Wl,-u,__wrap_calloc
LDSTATIC :=
RUN	:=
else ifeq ($(ARCH),x86_64)
CC	:= musl-gcc
AR	:= ar
LDSTATIC := -static
RUN	:=
else
CC	:= $(DEPS)/bin/aarch64-musl-gcc
AR	:= aarch64-linux-gnu-ar
LDSTATIC := -static
RUN	:= qemu-aarch64-static
endif

WARN	:= -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Werror
CFLAGS	:= -std=gnu11 -O2 -g $(WARN) -ffunction-sections -fdata-sections \
	   -D_GNU_SOURCE -I. -I$(B)/gen -isystem $(DEPS)/include $(SANFLAGS)
# -u: mbedTLS's ecp.c, ecdh.c and ecdsa.c call core/ecp25519.c and
# core/p256.c, which nothing before them in the link may name; this takes
# both out of libkeel.a first. --wrap: mbedTLS's calls of mbedtls_ecp_mul
# from outside ecp.c go through core/ecp25519.c (X25519 key pairs).
LDCRYPTO := -Wl,-u,mbedtls_internal_ecp_grp_capable -Wl,-u,mbedtls_ecdsa_sign \
	    -Wl,--wrap=mbedtls_ecp_mul
LDFLAGS	:= $(LDSTATIC) -Wl,--gc-sections $(LDCRYPTO) $(SANFLAGS) $(LDFAULT)
LIBS	:= -L$(DEPS)/lib -lmicrohttpd -lnfs -lhiredis -lsqlite3 -lyaml \
	   -lmbedtls -lmbedx509 -lmbedcrypto -lpthread -lm

# Everything but main goes into libkeel.a for the unit tests. keel links
# the module objects explicitly, because a module registers itself through a
# linker section that nothing references by name.
CORE_SRC := $(filter-out core/main.c,$(wildcard core/*.c))
MOD_SRC	:= $(wildcard proxy/*.c cache/*.c monitor/*.c storage/*.c web/*.c firmware/*.c ha/*.c import/*.c)
LIB_OBJ	:= $(CORE_SRC:%.c=$(B)/%.o) $(MOD_SRC:%.c=$(B)/%.o)
UI_FILES := web/ui/index.html web/ui/app.css web/ui/app.js
KEEL_OBJ := $(B)/core/main.o $(B)/gen/default_yaml.o $(B)/gen/ui_assets.o $(B)/gen/update_keys.o \
	    $(MOD_SRC:%.c=$(B)/%.o)

UNIT_SRC := $(shell find tests/unit -name '*.c' ! -name runner.c | sort)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%)

.PHONY: image update-bundle deb all deps test test-unit test-integration test-ui test-san soak-redis fuzz fuzz-build bench \
	test-redis-suite \
	demo docs check-docs clean help FORCE
.DEFAULT_GOAL := all

all: $(B)/keel

help:
	@echo 'make                  build build/keel (static, musl; runs deps first if needed)'
	@echo 'make ARCH=aarch64     build build/aarch64/keel'
	@echo 'make SAN=1            build with ASan+UBSan (glibc) into build/san'
	@echo 'make deps             build the six pinned libraries into ~/.cache/keel-deps'
	@echo 'make test             everything below, then one "N passed, N failed, N skipped" line'
	@echo 'make test-unit        unit tests (ARCH=aarch64: under qemu-user)'
	@echo 'make test-san         unit and integration tests, built with ASan+UBSan'
	@echo 'make test-integration real keel with real peers on loopback'
	@echo 'make test-ui          the admin UI in headless Chromium (Playwright); screenshots in build/ui'
	@echo 'make soak-redis       the Redis failover tests under ASan+UBSan, 20 rounds (SOAK_ROUNDS=N)'
	@echo 'make fuzz             run the fuzz targets for longer (FUZZ_SECONDS=300)'
	@echo 'make bench            keel against nginx and HAProxy: req/s, latency, memory'
	@echo 'make test-redis-suite Redis'"'"'s own test suite, straight and through the RESP front'
	@echo 'make demo             build keel, start four demo app servers and keel in front'
	@echo 'make docs             regenerate docs/CONFIGURATION.md from the settings table'
	@echo 'make image            disk images (raw and qcow2, UEFI, slots A and B) in build/image'
	@echo 'make update-bundle    a signed update bundle of this build (IMAGE_VERSION=, UPDATE_SIGN_KEY=)'
	@echo 'make deb              a .deb: static keel, systemd unit, /etc/keel/keel.yaml (build/keel_V_ARCH.deb)'
	@echo 'make clean            remove build/ (the deps cache stays)'
	@echo 'V=1                   show full command lines'

# ---- third-party libraries ---------------------------------------------------

deps: $(DEPS)/.done

$(DEPS)/.done:
	$(Q)core/deps.sh $(DEPS_TARGET) >/dev/null

# ---- keel ------------------------------------------------------------------------

$(B)/gen/version.h: FORCE
	@mkdir -p $(@D)
	@{ echo '#define KEEL_VERSION "$(VERSION)"'; \
	   echo '#define KEEL_REVISION "'"$$(git describe --always --dirty 2>/dev/null || echo unknown)"'"'; \
	   echo '#define KEEL_ARCH "$(ARCH)"'; \
	   echo '#define KEEL_LIBNFS_VERSION "'"$$(awk '$$1 == "libnfs" { sub(/-.*/, "", $$2); print $$2 }' $(DEPS)/PINS)"'"'; \
	 } > $@.tmp; cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(B)/gen/default_yaml.c: core/default.yaml core/embed.sh
	@mkdir -p $(@D)
	$(call say,GEN,$@)core/embed.sh core_settings_default_yaml $< > $@

$(B)/gen/ui_assets.c: $(UI_FILES) web/ui/assets.sh core/embed.sh
	@mkdir -p $(@D)
	$(call say,GEN,$@)web/ui/assets.sh $@ $(UI_FILES)

# The public keys keel trusts for signed updates (docs/OPERATIONS.md, "Signed
# updates"). A vendor builds with UPDATE_KEYS=its public key(s); without, a
# development key pair is made once in build/keys and its public half trusted.
UPDATE_KEYS	?= build/keys/dev.pub.pem
UPDATE_SIGN_KEY	?= build/keys/dev.pem
IMAGE_VERSION	?= $(VERSION)

build/keys/dev.pem:
	@mkdir -p $(@D)
	$(call say,KEYGEN,$@)openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $@ 2>/dev/null

build/keys/dev.pub.pem: build/keys/dev.pem
	$(Q)openssl pkey -in $< -pubout -out $@

$(B)/gen/update_keys.c: $(UPDATE_KEYS) firmware/keys.sh
	@mkdir -p $(@D)
	$(call say,GEN,$@)firmware/keys.sh $(UPDATE_KEYS) > $@

$(B)/gen/%.o: $(B)/gen/%.c
	$(call say,CC,$@)$(CC) $(CFLAGS) -c $< -o $@

# version.h is order-only: the -MMD files know which objects include it.
$(B)/%.o: %.c $(DEPS)/.done | $(B)/gen/version.h
	@mkdir -p $(@D)
	$(call say,CC,$@)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/libkeel.a: $(LIB_OBJ)
	$(call say,AR,$@)rm -f $@ && $(AR) rcs $@ $^

$(B)/keel: $(KEEL_OBJ) $(B)/libkeel.a
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $(KEEL_OBJ) $(B)/libkeel.a $(LIBS)

# ---- tests -------------------------------------------------------------------------

# Each unit test file is its own program: it may #include the .c it tests,
# and the archive then leaves that module's object out.
$(B)/tests/unit/%: tests/unit/%.c $(B)/tests/unit/runner.o $(B)/libkeel.a $(B)/gen/default_yaml.o
	@mkdir -p $(@D)
	$(call say,CC,$@)$(CC) $(CFLAGS) -Itests/unit -MMD -MP -o $@ $< \
		$(B)/tests/unit/runner.o $(B)/gen/default_yaml.o $(B)/libkeel.a $(LDFLAGS) $(LIBS)

test-unit: $(UNIT_BIN)
	$(Q)tests/unit/run.sh $(B) "$(RUN)"

test-san:
	$(Q)$(MAKE) --no-print-directory SAN=1 test-unit test-integration

# Timing-dependent bugs (a failover mid-request) show up only now and then:
# the failover tests under ASan+UBSan, many times in a row, 0 reports.
soak-redis:
	$(Q)$(MAKE) --no-print-directory SAN=1 all
	$(Q)tests/soak-redis.sh build/san/keel $${SOAK_ROUNDS:-20}

test-integration: $(B)/keel
	$(Q)python3 tests/integration/run.py --keel $(B)/keel --result $(B)/tests/integration/result \
		$(if $(filter 1,$(SAN)),--san)

# Installs what the tests need (only what is missing), then runs every suite.
test:
	$(Q)tests/setup.sh
	$(Q)tests/run.sh

test-ui: $(B)/keel
	$(Q)node tests/ui/run.js --keel $(B)/keel --out build/ui --result build/tests/ui/result

# Fuzz targets: clang's libFuzzer with ASan+UBSan, linked against the glibc
# build of the pinned libraries.
FUZZ_DEPS := $(shell core/deps.sh --print glibc)
FUZZ_SRC  := $(wildcard tests/fuzz/*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)

fuzz-build: $(FUZZ_BIN)

# The targets need core, the HTTP parser and the RESP scanner; storage_parse
# includes storage/mount.c itself. core/sync.c needs main's control API:
# cluster_entry includes it with its own stand-ins, the others go without.
build/fuzz/%: tests/fuzz/%.c $(CORE_SRC) cache/resp.c build/fuzz/gen/default_yaml.c
	@test -f $(FUZZ_DEPS)/.done || core/deps.sh glibc >/dev/null
	@mkdir -p $(@D)
	$(call say,FUZZ,$@)clang -std=gnu11 -g -O1 -D_GNU_SOURCE \
		-fsanitize=fuzzer,address,undefined -I. -Ibuild/fuzz/gen \
		-isystem $(FUZZ_DEPS)/include $(filter-out storage/% firmware/% ha/% core/sync.c,$(filter %.c,$^)) \
		-L$(FUZZ_DEPS)/lib -lyaml -lsqlite3 -lmbedtls -lmbedx509 -lmbedcrypto -lnfs -lpthread -lm \
		$(LDCRYPTO) -o $@

# storage_parse, dhcp_parse, bundle_parse, fetch_url, vrrp_parse and vrrp_parse6 #include these (prerequisites only: not
# compiled apart);
# static_parse is linked with proxy/static.c and libnfs; nginx_import with
# import/nginx.c and import/map.c.
build/fuzz/storage_parse: storage/mount.c storage/storage.h
build/fuzz/static_parse: proxy/static.c
build/fuzz/dhcp_parse: firmware/dhcp.c firmware/dhcp.h
build/fuzz/bundle_parse: firmware/bundle.c firmware/bundle.h
build/fuzz/fetch_url: firmware/fetch.c firmware/fetch.h
build/fuzz/vrrp_parse build/fuzz/vrrp_parse6: ha/vrrp.c ha/vrrp.h
build/fuzz/nginx_import: import/nginx.c import/map.c

build/fuzz/gen/default_yaml.c: core/default.yaml core/embed.sh
	@mkdir -p $(@D)
	$(Q)core/embed.sh core_settings_default_yaml $< > $@

fuzz:
	$(Q)tests/fuzz/run.sh $${FUZZ_SECONDS:-300}

# Speed and memory against nginx and HAProxy, in one run on this machine.
# build/bench/relay (a relay that only moves bytes) is the floor the proxy
# figures are read against; it is a host program, built with the host cc.
bench: $(B)/keel build/bench/relay
	$(Q)tests/setup.sh --bench
	$(Q)python3 tests/bench/proxy.py
	$(Q)python3 tests/bench/hung.py
	$(Q)python3 tests/bench/ha.py
	$(Q)python3 tests/bench/tls.py
	$(Q)python3 tests/bench/redis.py
	$(Q)python3 tests/bench/storage.py
	$(Q)python3 tests/bench/supervise.py
	$(Q)python3 tests/bench/update.py
	$(Q)python3 tests/redis-suite/run.py --keel $(B)/keel

# Redis's own test suite (from the Debian source package of the installed
# redis-server) in external mode, each unit straight to a fresh server and
# through keel's RESP front; writes resp_suite_* to build/bench.json.
test-redis-suite: $(B)/keel
	$(Q)tests/setup.sh --bench
	$(Q)python3 tests/redis-suite/run.py --keel $(B)/keel

build/bench/relay: tests/bench/relay.c
	@mkdir -p $(@D)
	$(Q)cc -O2 -Wall -Wextra -Werror -o $@ $<

demo: $(B)/keel
	$(Q)tests/demo.sh $(B)/keel

# Disk images and update bundles (images/mkimage.py; no loop mounts, no root).
image: $(B)/keel
	$(Q)python3 images/mkimage.py disk --keel $(B)/keel --arch $(ARCH) --version $(IMAGE_VERSION) \
		--out $(B)/image

# A Debian package of this build: the static keel, a systemd unit
# (Type=notify, watchdog), /etc/keel/keel.yaml and /var/lib/keel.
deb: $(B)/keel
	$(call say,DEB,build/keel_$(VERSION)_$(ARCH).deb)images/deb/mkdeb.sh $(B)/keel $(VERSION) $(ARCH) \
		build/keel_$(VERSION)_$(ARCH).deb

update-bundle: $(B)/keel $(UPDATE_SIGN_KEY)
	$(Q)python3 images/mkimage.py uki --keel $(B)/keel --arch $(ARCH) --version $(IMAGE_VERSION) \
		--out $(B)/image/keel-$(ARCH)-$(IMAGE_VERSION).efi
	$(Q)$(RUN) $(B)/keel update sign --key $(UPDATE_SIGN_KEY) --version $(IMAGE_VERSION) \
		--arch $(ARCH) $(B)/image/keel-$(ARCH)-$(IMAGE_VERSION).efi \
		$(B)/image/keel-$(ARCH)-$(IMAGE_VERSION).bundle

docs: $(B)/keel
	$(Q)$(B)/keel --config-reference > docs/CONFIGURATION.md
	@echo 'docs/CONFIGURATION.md regenerated'

clean:
	rm -rf build

FORCE:

.SECONDARY:

-include $(shell find $(B) -name '*.d' 2>/dev/null)
