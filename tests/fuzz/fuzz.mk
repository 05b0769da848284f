# tests/fuzz/fuzz.mk - libFuzzer targets (included by the top-level Makefile).
#
#   make fuzz                 build every target, run each for FUZZ_SECONDS from its
#                             seed corpus, one after the other; fail on any crash
#   make fuzz-build           build every target into $(FUZZ_BUILD)/
#   make fuzz-NAME            run one target (tests/fuzz/fuzz_NAME.c), e.g. fuzz-serial
#   make fuzz-seeds           regenerate tests/fuzz/corpus/ with seedgen (needs `make guest`)
#   make fuzz-check-release   check that RELEASE=1 refuses fuzzing builds
#   make fuzz-clean           remove $(FUZZ_BUILD)/
#
# Knobs: FUZZ_SECONDS (30), FUZZ_RSS_MB (2048), FUZZ_TIMEOUT (10 s per input),
# FUZZ_ARGS (extra libFuzzer flags), FUZZ_CC (clang).
#
# The library is compiled again here, with clang, coverage instrumentation,
# ASan+UBSan and -DWISP_FUZZING, into $(FUZZ_BUILD)/obj/; the normal build's
# objects and flags are never touched.  Nothing built here is shippable.

FUZZ_CC ?= clang
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30
FUZZ_RSS_MB ?= 2048
FUZZ_TIMEOUT ?= 10
FUZZ_ARGS ?=

FUZZ_DIR := tests/fuzz
FUZZ_GOALS := $(filter fuzz fuzz-% $(FUZZ_BUILD)/%,$(MAKECMDGOALS))

# A release build must never contain fuzzing hooks (security.md I).
ifneq ($(filter 1 y yes true,$(RELEASE)),)
ifneq ($(FUZZ_GOALS)$(filter 1,$(FUZZ))$(findstring WISP_FUZZING,$(CFLAGS)),)
$(error fuzzing builds are never release builds: RELEASE=1 cannot be combined with fuzzing)
endif
endif

FUZZ_SRCS := $(sort $(wildcard $(FUZZ_DIR)/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRCS:$(FUZZ_DIR)/fuzz_%.c=%)
FUZZ_BINS := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LIB := $(FUZZ_BUILD)/libwisp-fuzz.a
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_SEEDGEN := $(FUZZ_BUILD)/seedgen

FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# The library keeps the project's warnings but not -Werror: clang warns about
# things gcc does not, and a new clang warning in someone else's file must not
# stop the fuzzers.  The targets themselves build with -Werror.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -I. $(WARN) -Wno-error \
        $(PKG_CFLAGS) -fno-strict-aliasing -DWISP_FUZZING \
        -DWISP_VERSION='"$(VERSION)+fuzzing"' -DWISP_GIT_REV='"$(GIT_REV)"'
FUZZ_LIBS := $(PKG_LIBS) -lpthread

.PHONY: fuzz fuzz-build fuzz-seeds fuzz-clean fuzz-check-release $(FUZZ_NAMES:%=fuzz-%)

fuzz-build: $(FUZZ_BINS)

# A library file that does not compile (someone is mid-edit) is left out with a
# warning instead of stopping every target: only a target that needs it then
# fails, at link time, naming the missing symbols.
$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "FUZZ_CC $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@ || \
	    { rm -f $@; echo "fuzz: warning: $< does not compile; left out of $(FUZZ_LIB)"; }

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@rm -f $@ && ar rcs $@ $(wildcard $(FUZZ_LIB_OBJS))

# Shared harness code (tests/fuzz/harness_*.c) is an archive too: a target
# links only the harness it uses.
FUZZ_HARNESS_SRCS := $(sort $(wildcard $(FUZZ_DIR)/harness_*.c))
FUZZ_HARNESS_OBJS := $(FUZZ_HARNESS_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_HARNESS := $(FUZZ_BUILD)/libfuzz-harness.a

$(FUZZ_BUILD)/obj/$(FUZZ_DIR)/harness_%.o: $(FUZZ_DIR)/harness_%.c
	@mkdir -p $(dir $@)
	@echo "FUZZ_CC $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_HARNESS): $(FUZZ_HARNESS_OBJS)
	@rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_DIR)/fuzz_%.c $(FUZZ_DIR)/fuzz.h $(FUZZ_HARNESS) $(FUZZ_LIB)
	@mkdir -p $(FUZZ_BUILD)/obj
	@echo "FUZZ_LD $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror $(FUZZ_SAN) -fsanitize=fuzzer -MMD -MP \
	    -MF $(FUZZ_BUILD)/obj/$(@F).d -MT $@ $< $(FUZZ_HARNESS) $(FUZZ_LIB) $(FUZZ_LIBS) -o $@

FUZZ_SEEDGEN_SRCS := $(wildcard $(FUZZ_DIR)/seedgen*.c)
$(FUZZ_SEEDGEN): $(FUZZ_SEEDGEN_SRCS) $(FUZZ_DIR)/seedgen.h $(FUZZ_DIR)/fuzz.h $(FUZZ_LIB)
	@echo "FUZZ_LD $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror $(FUZZ_SAN) $(FUZZ_SEEDGEN_SRCS) $(FUZZ_LIB) $(FUZZ_LIBS) \
	    -o $@

# Run one target.  New inputs go to $(FUZZ_BUILD)/corpus/NAME, so the checked-in
# seeds stay as they are; crashes go to $(FUZZ_BUILD)/artifacts/NAME/.
$(FUZZ_NAMES:%=fuzz-%): fuzz-%: $(FUZZ_BUILD)/fuzz_%
	@$(FUZZ_DIR)/run.sh $(FUZZ_BUILD) $* $(FUZZ_SECONDS) $(FUZZ_RSS_MB) $(FUZZ_TIMEOUT) $(FUZZ_ARGS)

# All targets, sequentially (each one is single-threaded; builds may run in parallel).
fuzz: $(FUZZ_BINS) fuzz-check-release
	@failed=""; \
	for t in $(FUZZ_NAMES); do \
	    $(FUZZ_DIR)/run.sh $(FUZZ_BUILD) $$t $(FUZZ_SECONDS) $(FUZZ_RSS_MB) $(FUZZ_TIMEOUT) \
	        $(FUZZ_ARGS) || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed"; exit 1; fi; \
	echo "fuzz: $(words $(FUZZ_NAMES)) targets, no crashes"

fuzz-seeds: $(FUZZ_SEEDGEN) $(GUEST_ELF) $(GUEST_BZIMAGE)
	$(FUZZ_SEEDGEN) $(FUZZ_DIR)/corpus $(GUEST_ELF) $(GUEST_BZIMAGE)

# The refusal above, checked: asking for a fuzzing build with RELEASE=1 must fail.
FUZZ_REFUSAL := never release builds
fuzz-check-release:
	@for args in "RELEASE=1 fuzz-build" "RELEASE=1 FUZZ=1 all"; do \
	    out=$$($(MAKE) --no-print-directory -n $$args 2>&1); \
	    case "$$out" in *"$(FUZZ_REFUSAL)"*) ;; \
	    *) echo "fuzz: 'make $$args' was not refused"; exit 1;; esac; \
	done

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

ifneq ($(FUZZ_GOALS),)
-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
endif
