# guest.mk - build rules for the wisp test guest (include from a Makefile).
#
# Defines, all under $(BUILD)/guest/:
#   GUEST_ELF        testguest.elf     PVH / Linux 64-bit bootable ELF
#   GUEST_BZIMAGE    testguest.bzImage the same image as a bzImage
#   GUEST_MKBZIMAGE  mkbzimage         host tool (ELF -> bzImage)
#   GUEST_SHIM       pvh2linux.elf     QEMU-only test aid (see README.md)
# and the phony target `guest` that builds them all. The guest is
# freestanding, so it uses GUEST_CFLAGS and never the VMM's CFLAGS.

BUILD ?= build
GUEST_CC ?= gcc
HOSTCC ?= gcc

GUEST_DIR := $(dir $(lastword $(MAKEFILE_LIST)))
GUEST_SRC := $(GUEST_DIR)testguest
GUEST_OUT := $(BUILD)/guest

GUEST_ELF := $(GUEST_OUT)/testguest.elf
GUEST_BZIMAGE := $(GUEST_OUT)/testguest.bzImage
GUEST_MKBZIMAGE := $(GUEST_OUT)/mkbzimage
GUEST_SHIM := $(GUEST_OUT)/pvh2linux.elf

# -mgeneral-regs-only: no SSE/AVX (not every host emulates it at CPL0).
# -mno-red-zone: interrupts are taken on the same stack.
# -mcmodel=small + -fno-pic: the image sits at 2 MiB, below 2 GiB.
GUEST_CFLAGS := -std=c11 -ffreestanding -fno-pic -fno-pie -mno-red-zone \
	-mgeneral-regs-only -mcmodel=small -fno-stack-protector \
	-fno-asynchronous-unwind-tables -nostdlib -static \
	-O2 -Wall -Wextra -Werror -MMD -MP -I$(GUEST_SRC) -I$(GUEST_DIR)common
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none \
	-Wl,-z,noexecstack -Wl,-z,max-page-size=4096

GUEST_OBJS := $(addprefix $(GUEST_OUT)/, entry.o pvh32.o trampoline.o \
	main.o lib.o gstr.o smp.o irq.o timer.o virtio.o vblk.o vnet.o vmisc.o hostile.o \
	user.o user_entry.o bench.o acpi.o migck.o)
GUEST_OBJS += $(GUEST_OUT)/dirty.o $(GUEST_OUT)/pci.o $(GUEST_OUT)/pcidev.o $(GUEST_OUT)/vballoon.o
GUEST_SHIM_OBJS := $(addprefix $(GUEST_OUT)/, shim.o shim-main.o pvh32.o lib.o gstr.o)

$(GUEST_OUT)/%.o: $(GUEST_SRC)/%.c | $(GUEST_OUT)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_OUT)/%.o: $(GUEST_DIR)common/%.c | $(GUEST_OUT)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_OUT)/%.o: $(GUEST_SRC)/%.S | $(GUEST_OUT)
	$(GUEST_CC) $(GUEST_CFLAGS) -D__ASSEMBLER__ -c -o $@ $<

$(GUEST_ELF): $(GUEST_OBJS) $(GUEST_SRC)/testguest.ld
	$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) \
		-T $(GUEST_SRC)/testguest.ld -o $@ $(GUEST_OBJS)

$(GUEST_MKBZIMAGE): $(GUEST_DIR)tools/mkbzimage.c $(GUEST_SRC)/boot.h \
		$(GUEST_SRC)/protocol.h | $(GUEST_OUT)
	$(HOSTCC) -std=c11 -O2 -Wall -Wextra -Werror -I$(GUEST_SRC) -o $@ $<

# mkbzimage re-verifies the header it wrote and fails otherwise.
$(GUEST_BZIMAGE): $(GUEST_ELF) $(GUEST_MKBZIMAGE)
	$(GUEST_MKBZIMAGE) $(GUEST_ELF) $@

# pvh2linux: QEMU boots ELF kernels only via PVH; this small PVH kernel
# plays the loader's part of the Linux 64-bit protocol for the bzImage.
$(GUEST_OUT)/shim.o: $(GUEST_DIR)qemu-shim/shim.S | $(GUEST_OUT)
	$(GUEST_CC) $(GUEST_CFLAGS) -D__ASSEMBLER__ -c -o $@ $<

$(GUEST_OUT)/shim-main.o: $(GUEST_DIR)qemu-shim/shim.c | $(GUEST_OUT)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_SHIM): $(GUEST_SHIM_OBJS) $(GUEST_DIR)qemu-shim/shim.ld
	$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) \
		-T $(GUEST_DIR)qemu-shim/shim.ld -o $@ $(GUEST_SHIM_OBJS)

$(GUEST_OUT):
	mkdir -p $@

.PHONY: guest
guest: $(GUEST_ELF) $(GUEST_BZIMAGE) $(GUEST_SHIM)

-include $(GUEST_OBJS:.o=.d) $(GUEST_OUT)/shim.d $(GUEST_OUT)/shim-main.d
