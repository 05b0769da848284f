# wisp build.  Sources are discovered by folder, so adding a file needs no
# Makefile change.  Out-of-tree objects go to $(BUILD) (build/ by default;
# the sanitizer build uses build-san/).
#
#   make             wisp, the test guest (ELF + bzImage), libwisp (.a, .so, wisp.pc)
#   make install     wisp and libwisp under PREFIX (/usr/local), staged in DESTDIR; make uninstall
#   make test        unit tests, then KVM integration tests
#   make test-vfio   the VFIO layer against QEMU's edu device in the nested testbed
#   make test-vdpa   the vhost-vdpa layer against a VDUSE block device in the nested testbed
#   make test-arm64  the aarch64 wisp boots Debian's arm64 kernel in the arm64 testbed
#   make check-layers  no lower layer includes a header of a layer above it
#   make test-san    the unit and integration tests again under ASan+UBSan
#   make bench       boot-time and memory benchmark -> docs/BENCHMARKS.md (skipped,
#                    with the reason, unless a probe VM runs on /dev/kvm)
#   make format      clang-format every C source
#   make ARCH=aarch64  the aarch64 wisp in build-aarch64/ (cross build, docs/AARCH64.md)

ARCH ?= x86_64
PKG_CONFIG := pkg-config
PKGS := json-c liburing libseccomp libmicrohttpd
ifeq ($(ARCH),aarch64)
# Cross build with Debian's cross compiler and the arm64 libraries from
# multiarch (scripts/setup.sh); libfdt (no .pc file in Debian 12) builds
# the guest's device tree.  Linked dynamically like x86 (see below): the
# arm64 libmicrohttpd.a needs GnuTLS, whose p11-kit and libunistring ship
# no static archives.
BUILD ?= build-aarch64
CROSS_COMPILE ?= aarch64-linux-gnu-
CC := $(CROSS_COMPILE)gcc
AR := $(CROSS_COMPILE)ar
PKG_CONFIG := PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig pkg-config
ARCH_LIBS := -lfdt
else ifneq ($(ARCH),x86_64)
$(error ARCH=$(ARCH): only x86_64 and aarch64 are supported)
endif
BUILD ?= build
CC ?= gcc
SAN ?= 0

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS))
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS))

WARN := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-qual -Wstrict-prototypes \
        -Wmissing-prototypes -Wundef -Wvla -Wformat=2 -Wno-format-nonliteral
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -g -I. $(WARN) $(PKG_CFLAGS) -fno-strict-aliasing \
        -fstack-protector-strong -fPIE
LDFLAGS_COMMON := -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack

ifeq ($(SAN),1)
CFLAGS_OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS_OPT := -fsanitize=address,undefined
# Guard-page tests expect a real SIGSEGV, so ASan must not take it over.
RUN_ENV := ASAN_OPTIONS=handle_segv=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
           LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp)
else
CFLAGS_OPT := -O2 -D_FORTIFY_SOURCE=2
LDFLAGS_OPT :=
endif

# wisp is linked dynamically.  It was a static PIE until the control API
# (vmm/api/) brought in libmicrohttpd: Debian 12's libmicrohttpd.a is built
# with HTTPS and needs GnuTLS, and GnuTLS's own dependencies p11-kit and
# libunistring ship no static archives in Debian, so `-static-pie` cannot
# link.  Rather than drop the API or carry a private HTTP library, wisp
# takes the shared libraries: about 1 MiB more peak RSS and the dynamic
# loader at start-up.  The jailer copies the libraries into the jail
# (docs/JAILER.md), and Debian's loader finds them there.  STATIC=1 still
# tries a static link, for a Debian whose archives allow it.
STATIC ?= 0
ifeq ($(SAN),1)
STATIC := 0
endif
ifeq ($(STATIC),1)
WISP_LDFLAGS := -static-pie
PKG_LIBS := $(shell $(PKG_CONFIG) --static --libs $(PKGS))
endif

CFLAGS += $(CFLAGS_COMMON) $(CFLAGS_OPT)
LDFLAGS += $(LDFLAGS_COMMON) $(LDFLAGS_OPT)
LIBS := $(PKG_LIBS) $(ARCH_LIBS) -lpthread

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
CFLAGS += -DWISP_VERSION='"$(VERSION)"' -DWISP_GIT_REV='"$(GIT_REV)"'

LIB_SRCS := $(sort $(wildcard vmm/*.c vmm/api/*.c vmm/libwisp/*.c jailer/*.c sandbox/*.c arch/$(ARCH)/*.c arch/common/*.c devices/*.c \
                    devices/*/*.c devices/*/*/*.c migration/*.c))
LIB_SRCS := $(filter-out vmm/main.c,$(LIB_SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ := $(BUILD)/obj/vmm/main.o

TESTLIB_SRCS := $(sort $(wildcard tests/lib/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/*.c tests/unit/*/*.c tests/unit/*/*/*.c))
INTEG_SRCS := $(sort $(wildcard tests/integration/*.c))
TESTLIB_OBJS := $(TESTLIB_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_OBJS := $(UNIT_SRCS:%.c=$(BUILD)/obj/%.o)
INTEG_OBJS := $(INTEG_SRCS:%.c=$(BUILD)/obj/%.o)

WISP := $(BUILD)/wisp
KVM_PROBE := $(BUILD)/kvm-probe
# Everything but main(), for wisp and the test programs (internal symbols
# visible); the public libwisp artefacts are below ("libwisp").
LIBWISP := $(BUILD)/libwisp-core.a
UNIT_BIN := $(BUILD)/tests/unit
INTEG_BIN := $(BUILD)/tests/integration

.PHONY: all libwisp libwisp-example install uninstall test test-build testbed test-linux test-vfio test-vdpa test-arm64 test-unit test-integration test-san check-layers demo bench format format-check \
        clean guest
ifeq ($(ARCH),aarch64)
all: $(WISP) guest-a64 $(BUILD)/tests/a64-state-forge
-include guest-images/testguest-arm64/guest.mk
# Forges aarch64 state sections for the arm64 stage's refusal checks.
$(BUILD)/tests/a64-state-forge: tests/testbed/arm64/state_forge.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 $(WARN) -static -o $@ $<
else
all: $(WISP) guest libwisp
endif

-include guest-images/guest.mk
-include tests/fuzz/fuzz.mk

guest: $(GUEST_ELF) $(GUEST_BZIMAGE)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# Seccomp programs are compiled at build time (security.md B2): sandbox-gen
# runs libseccomp over sandbox/sandbox_rules.c and writes C arrays that wisp
# embeds; wisp itself never compiles policy.
SANDBOX_GEN := $(BUILD)/sandbox-gen
SANDBOX_GEN_C := $(BUILD)/gen/sandbox_bpf.c
SANDBOX_GEN_OBJ := $(BUILD)/obj/gen/sandbox_bpf.o
SANDBOX_GEN_SRCS := sandbox/gen/sandbox_gen.c sandbox/sandbox_build.c sandbox/sandbox_rules.c vmm/error.c
ifeq ($(ARCH),aarch64)
# The generator runs on the build host but compiles aarch64 programs:
# libseccomp translates each rule's syscall to its aarch64 number by name.
HOST_CC ?= gcc
HOST_OBJ := $(BUILD)/host-obj
$(HOST_OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(HOST_CC) -std=c11 -D_GNU_SOURCE -g -O2 -I. $(WARN) -DSANDBOX_TARGET_AARCH64 -MMD -MP -c $< -o $@
$(SANDBOX_GEN): $(SANDBOX_GEN_SRCS:%.c=$(HOST_OBJ)/%.o)
	$(HOST_CC) -o $@ $^ -lseccomp
else
$(SANDBOX_GEN): $(SANDBOX_GEN_SRCS:%.c=$(BUILD)/obj/%.o)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
endif
$(SANDBOX_GEN_C): $(SANDBOX_GEN)
	@mkdir -p $(dir $@)
	$(RUN_ENV) $(SANDBOX_GEN) $@
$(SANDBOX_GEN_OBJ): $(SANDBOX_GEN_C)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIBWISP): $(LIB_OBJS) $(SANDBOX_GEN_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(WISP): $(MAIN_OBJ) $(LIBWISP)
	$(CC) $(LDFLAGS) $(WISP_LDFLAGS) -o $@ $^ $(LIBS)

# The aarch64 device tree builder and Image parser need no KVM or Arm
# headers: the x86 unit tests build them for the host (tests/unit/arch/aarch64/).
ifeq ($(ARCH),x86_64)
A64_HOST_OBJS := $(BUILD)/obj/arch/aarch64/fdt.o $(BUILD)/obj/arch/aarch64/image.o
# Debian's libfdt-dev cannot be installed for two architectures at once:
# the header comes with libfdt-dev:arm64, the host library from libfdt1.
A64_HOST_LIBS := -l:libfdt.so.1
endif

$(UNIT_BIN): $(UNIT_OBJS) $(TESTLIB_OBJS) $(LIBWISP) $(A64_HOST_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(A64_HOST_LIBS) -lcriterion

$(INTEG_BIN): $(INTEG_OBJS) $(TESTLIB_OBJS) $(LIBWISP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcriterion

# wisp with the test-only hooks of sandbox/sandbox.c (forbidden-syscall triggers);
# only the tests use it, and the release binary carries none of it.
WISP_TEST := $(BUILD)/wisp-test
$(BUILD)/obj/sandbox/sandbox-hooks.o: sandbox/sandbox.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DWISP_TEST_HOOKS -MMD -MP -c $< -o $@
$(WISP_TEST): $(MAIN_OBJ) $(BUILD)/obj/sandbox/sandbox-hooks.o $(LIBWISP)
	$(CC) $(LDFLAGS) $(WISP_LDFLAGS) -o $@ $^ $(LIBS)

# The VFIO layer against QEMU's edu device in the testbed's L1
# (tests/testbed/vfio/run; the vfio stage of tests/run-all).
VFIO_EDU := $(BUILD)/tests/vfio-edu
$(VFIO_EDU): $(BUILD)/obj/tests/testbed/vfio/edu_test.o $(LIBWISP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# The vhost-vdpa layer against a VDUSE block device in the testbed's L1
# (tests/testbed/vdpa/run; the vdpa stage of tests/run-all).
VDPA_BLK := $(BUILD)/tests/vdpa-blk
$(VDPA_BLK): $(BUILD)/obj/tests/testbed/vdpa/vdpa_blk_test.o $(BUILD)/obj/tests/lib/virtq_builder.o \
             $(LIBWISP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Integration tests find their inputs through the environment.
TEST_ENV = WISP_BIN=$(abspath $(WISP)) WISP_TEST_BIN=$(abspath $(WISP_TEST)) \
           WISP_GUEST_ELF=$(abspath $(GUEST_ELF)) WISP_GUEST_BZIMAGE=$(abspath $(GUEST_BZIMAGE))

# Everything CI runs (tests/run-all): unit tests, the KVM suites (natively
# where build/kvm-probe runs a VM, otherwise in the nested testbed), both
# again under ASan+UBSan, the stock-Linux guest tests (in the testbed unless
# KVM is hardware-backed), and every libFuzzer target for FUZZ_SECONDS (30).
# Prerequisites build in parallel; WISP_TEST_KVM=testbed forces the testbed.
FUZZ_SECONDS ?= 30
test: check-layers test-build $(KVM_PROBE)
	$(MAKE) BUILD=build-san SAN=1 test-build
	$(MAKE) ARCH=aarch64 BUILD=build-aarch64 all
	+BUILD=$(BUILD) SAN_BUILD=build-san FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run-all

test-build: $(UNIT_BIN) $(INTEG_BIN) $(WISP) $(WISP_TEST) $(VFIO_EDU) $(VDPA_BLK) guest libwisp-example

# Does /dev/kvm run a VM, and at hardware speed?  (tests/testbed/kvm_probe.c)
$(KVM_PROBE): tests/testbed/kvm_probe.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

# Run a command in the nested testbed: make testbed CMD='uname -r'
testbed:
	tests/testbed/run -- sh -c '$(CMD)'

# The stock-Linux guest tests alone, where they belong (see tests/run-all).
# Kernels and initramfs images are prepared on the host first (L1 has no
# network, and the host is faster).
test-linux: $(WISP) $(KVM_PROBE)
	@tests/testbed/linux/run --prepare-only
	@if $(KVM_PROBE) >/dev/null; then tests/testbed/linux/run --wisp $(WISP); \
	else tests/testbed/run -- tests/testbed/linux/run --wisp $(WISP); fi

# The VFIO layer against QEMU's edu device, in the testbed (tests/run-all's vfio stage).
test-vfio: $(VFIO_EDU) $(WISP) $(BUILD)/tests/integration $(GUEST_ELF) $(GUEST_BZIMAGE)
	tests/testbed/run -- tests/testbed/vfio/run $(abspath $(BUILD))

# The vhost-vdpa layer against a VDUSE block device, in the testbed (tests/run-all's vdpa stage).
test-vdpa: $(VDPA_BLK) $(WISP) $(GUEST_ELF)
	tests/testbed/run -- tests/testbed/vdpa/run $(abspath $(BUILD))

# The aarch64 wisp boots Debian's stock arm64 kernel in the arm64 testbed
# (tests/run-all's arm64 stage, docs/AARCH64.md).
test-arm64:
	$(MAKE) ARCH=aarch64 BUILD=build-aarch64 all
	tests/testbed/arm64/test build-aarch64

test-unit: check-layers $(UNIT_BIN)
	$(RUN_ENV) $(UNIT_BIN) --jobs 2

test-integration: $(INTEG_BIN) $(WISP) $(WISP_TEST) guest libwisp-example
	$(RUN_ENV) $(TEST_ENV) $(INTEG_BIN) --jobs 2

# arch/ and devices/ reach the core only through vmm/services.h and friends,
# never vm.c; sandbox/ and jailer/ know no devices (docs/ARCHITECTURE.md).
check-layers:
	@scripts/check_layers.sh

# Both suites under ASan+UBSan.
test-san:
	$(MAKE) BUILD=build-san SAN=1 test-unit test-integration

# Boot the bundled test guest: what README's first command runs.
# (natively, or in the nested testbed where no VM runs on /dev/kvm)
demo: $(WISP) $(KVM_PROBE)
	scripts/demo.sh $(WISP) $(KVM_PROBE)

bench: $(WISP) guest $(KVM_PROBE)
	$(MAKE) -C bench BUILD=$(abspath $(BUILD)) WISP=$(abspath $(WISP)) KVMPROBE=$(abspath $(KVM_PROBE)) \
	    GUEST_ELF=$(abspath $(GUEST_ELF))

C_SOURCES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(C_SOURCES)
format-check:
	clang-format --dry-run -Werror $(C_SOURCES)

clean:
	rm -rf build build-san build-aarch64

-include $(shell find $(BUILD)/obj $(BUILD)/host-obj -name '*.d' 2>/dev/null)

# The vfio-user test device server (tests/peers/vfio_user_server/, docs/VFIO_USER.md):
# the client tests run it as a child process.
VFIO_USER_SERVER := $(BUILD)/vfio-user-server
VFIO_USER_SERVER_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/peers/vfio_user_server/*.c))
$(VFIO_USER_SERVER): $(VFIO_USER_SERVER_OBJS) $(LIBWISP)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
all test-build: $(VFIO_USER_SERVER)
$(UNIT_BIN): | $(VFIO_USER_SERVER)

# ---- libwisp, the embeddable library (docs/LIBWISP.md) ----------------------
# build/libwisp.a (the -fPIE objects of the core archive) and
# build/libwisp.so.0.X.Y (the same sources again as -fPIC objects in
# $(BUILD)/pic/, linked with lib/libwisp.map so that only the wisp_* symbols
# of include/wisp/wisp.h are exported, under the version node WISP_0.1).
LIBWISP_A := $(BUILD)/libwisp.a
LIBWISP_SONAME := libwisp.so.$(word 1,$(subst ., ,$(VERSION)))
LIBWISP_SO := $(BUILD)/libwisp.so.$(VERSION)
LIBWISP_PC := $(BUILD)/wisp.pc
PIC_OBJS := $(LIB_SRCS:%.c=$(BUILD)/pic/%.o) $(BUILD)/pic/gen/sandbox_bpf.o
PIC_CFLAGS := $(filter-out -fPIE,$(CFLAGS)) -fPIC

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(PIC_CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/pic/gen/sandbox_bpf.o: $(SANDBOX_GEN_C)
	@mkdir -p $(dir $@)
	$(CC) $(PIC_CFLAGS) -MMD -MP -c $< -o $@

# The archive holds one object: every library object linked together
# (ld -r) with all but the wisp_* symbols of lib/libwisp.map made local,
# so a static link exports no more than the shared library does and
# wisp's internal names cannot clash with the embedder's.
OBJCOPY ?= objcopy
$(LIBWISP_A): $(LIB_OBJS) $(SANDBOX_GEN_OBJ) lib/libwisp.map
	$(CC) -nostdlib -r -o $(BUILD)/libwisp-all.o $(LIB_OBJS) $(SANDBOX_GEN_OBJ)
	sed -n 's/^ *\(wisp_[a-z_]*\);$$/\1/p' lib/libwisp.map > $(BUILD)/libwisp.syms
	$(OBJCOPY) --keep-global-symbols=$(BUILD)/libwisp.syms $(BUILD)/libwisp-all.o \
	    $(BUILD)/libwisp-public.o
	rm -f $@ && $(AR) rcs $@ $(BUILD)/libwisp-public.o

$(LIBWISP_SO): $(PIC_OBJS) lib/libwisp.map
	$(CC) -shared -Wl,-soname,$(LIBWISP_SONAME) -Wl,--version-script=lib/libwisp.map \
	    -Wl,-z,relro,-z,now -Wl,-z,noexecstack -Wl,--no-undefined $(LDFLAGS_OPT) \
	    -o $@ $(PIC_OBJS) $(LIBS)
	ln -sf $(notdir $@) $(BUILD)/$(LIBWISP_SONAME)
	ln -sf $(LIBWISP_SONAME) $(BUILD)/libwisp.so

# Installation layout; DESTDIR stages it (make install DESTDIR=build/stage PREFIX=/usr).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

$(LIBWISP_PC): lib/wisp.pc.in VERSION Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(strip $(LIBS))|' $< > $@
# The prefix is in the file: rebuild it whenever one is given.
.PHONY: $(LIBWISP_PC)

libwisp: $(LIBWISP_A) $(LIBWISP_SO) $(LIBWISP_PC)

install: $(WISP) libwisp
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/wisp \
	    $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0755 $(WISP) $(DESTDIR)$(BINDIR)/wisp
	install -m 0644 $(LIBWISP_A) $(DESTDIR)$(LIBDIR)/libwisp.a
	install -m 0755 $(LIBWISP_SO) $(DESTDIR)$(LIBDIR)/$(notdir $(LIBWISP_SO))
	ln -sf $(notdir $(LIBWISP_SO)) $(DESTDIR)$(LIBDIR)/$(LIBWISP_SONAME)
	ln -sf $(LIBWISP_SONAME) $(DESTDIR)$(LIBDIR)/libwisp.so
	install -m 0644 include/wisp/wisp.h $(DESTDIR)$(INCLUDEDIR)/wisp/wisp.h
	install -m 0644 $(LIBWISP_PC) $(DESTDIR)$(PKGCONFIGDIR)/wisp.pc

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/wisp $(DESTDIR)$(LIBDIR)/libwisp.a \
	    $(DESTDIR)$(LIBDIR)/libwisp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(LIBWISP_SONAME) \
	    $(DESTDIR)$(LIBDIR)/libwisp.so $(DESTDIR)$(INCLUDEDIR)/wisp/wisp.h \
	    $(DESTDIR)$(PKGCONFIGDIR)/wisp.pc
	-rmdir $(DESTDIR)$(INCLUDEDIR)/wisp 2>/dev/null

# examples/boot.c built the way a user builds it: against a copy installed
# into $(BUILD)/stage and found through its wisp.pc, once linked with
# libwisp.so and once with libwisp.a (tests/libwisp/build-example).  The
# host checks (tests/libwisp/check) and the KVM test (test_libwisp.c) run them.
libwisp-example: $(WISP) libwisp examples/boot.c
	EXAMPLE_FLAGS="$(LDFLAGS_OPT)" tests/libwisp/build-example $(BUILD) "$(MAKE) SAN=$(SAN)"
-include $(shell find $(BUILD)/pic -name '*.d' 2>/dev/null)
