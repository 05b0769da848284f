# guest.mk - the arm64 test guest (include from the top Makefile when
# ARCH=aarch64).  Defines A64_GUEST_IMAGE ($(BUILD)/guest/testguest-a64.Image),
# an arm64 Image wisp boots at 0x40000000, and the phony target guest-a64.
# Freestanding: A64_GUEST_CFLAGS, never the VMM's CFLAGS.
A64_GUEST_CC ?= aarch64-linux-gnu-gcc
A64_GUEST_OBJCOPY ?= aarch64-linux-gnu-objcopy
A64_GUEST_DIR := $(dir $(lastword $(MAKEFILE_LIST)))
A64_GUEST_OUT := $(BUILD)/guest
A64_GUEST_ELF := $(A64_GUEST_OUT)/testguest-a64.elf
A64_GUEST_IMAGE := $(A64_GUEST_OUT)/testguest-a64.Image

# -mgeneral-regs-only: no FP/SIMD state to enable or save.
# -mstrict-align: the device tree is parsed before the MMU is on, when all
# memory is Device memory and unaligned accesses fault.
# -mno-outline-atomics: no libgcc helpers.  -fno-tree-loop-distribute-patterns:
# memcpy/memset must not become calls to themselves.
A64_GUEST_CFLAGS := -std=c11 -ffreestanding -fno-pic -fno-pie -mgeneral-regs-only -mstrict-align \
	-mno-outline-atomics -fno-tree-loop-distribute-patterns -fno-stack-protector \
	-fno-asynchronous-unwind-tables -nostdlib -static -O2 -Wall -Wextra -Werror -MMD -MP \
	-I$(A64_GUEST_DIR) -I$(A64_GUEST_DIR)../common -I$(A64_GUEST_DIR)../testguest
A64_GUEST_OBJS := $(addprefix $(A64_GUEST_OUT)/a64-, head.o main.o lib.o dt.o gic.o virtio.o ticks.o gstr.o)

$(A64_GUEST_OUT)/a64-%.o: $(A64_GUEST_DIR)%.c
	@mkdir -p $(dir $@)
	$(A64_GUEST_CC) $(A64_GUEST_CFLAGS) -c -o $@ $<
$(A64_GUEST_OUT)/a64-%.o: $(A64_GUEST_DIR)../common/%.c
	@mkdir -p $(dir $@)
	$(A64_GUEST_CC) $(A64_GUEST_CFLAGS) -c -o $@ $<
$(A64_GUEST_OUT)/a64-%.o: $(A64_GUEST_DIR)%.S
	@mkdir -p $(dir $@)
	$(A64_GUEST_CC) $(A64_GUEST_CFLAGS) -D__ASSEMBLER__ -c -o $@ $<

$(A64_GUEST_ELF): $(A64_GUEST_OBJS) $(A64_GUEST_DIR)guest.ld
	$(A64_GUEST_CC) $(A64_GUEST_CFLAGS) -nostdlib -static -no-pie -Wl,--build-id=none \
		-Wl,-z,noexecstack -Wl,-z,max-page-size=4096 -T $(A64_GUEST_DIR)guest.ld -o $@ $(A64_GUEST_OBJS)

$(A64_GUEST_IMAGE): $(A64_GUEST_ELF)
	$(A64_GUEST_OBJCOPY) -O binary $< $@

guest-a64: $(A64_GUEST_IMAGE)
.PHONY: guest-a64

-include $(A64_GUEST_OBJS:.o=.d)
