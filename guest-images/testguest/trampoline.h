/*
 * trampoline.h - data block at the end of the AP trampoline.
 *
 * The BSP copies tramp_start..tramp_end to GUEST_TRAMPOLINE_ADDR and fills
 * this block in the copy, so the trampoline code itself needs no absolute
 * addresses: it finds the block relative to its own segment base.
 * Offsets are shared with trampoline.S and pinned by _Static_assert.
 */
#ifndef WISP_GUEST_TRAMPOLINE_H
#define WISP_GUEST_TRAMPOLINE_H

#define TD_GDT        0  /* 4 descriptors: null, code32, code64, data */
#define TD_GDTR       34 /* u16 limit, u32 base (lgdtl operand) */
#define TD_PM32       40 /* far pointer m16:32 to the 32-bit part */
#define TD_LM64       48 /* far pointer m16:32 to the 64-bit part */
#define TD_CR3        56
#define TD_NEXT_SLOT  60 /* lock xadd'ed by each AP */
#define TD_MAX_SLOTS  64
#define TD_STACK_BASE 72
#define TD_STACK_SIZE 80
#define TD_ENTRY      88 /* C function void ap_main(u32 slot) */
#define TD_SIZE       96

#ifndef __ASSEMBLER__
#include <stddef.h>
#include <stdint.h>

struct tramp_data {
    uint64_t gdt[4];
    uint16_t pad0;
    uint16_t gdtr_limit;
    uint32_t gdtr_base;
    uint32_t pm32_off;
    uint16_t pm32_sel;
    uint16_t pad1;
    uint32_t lm64_off;
    uint16_t lm64_sel;
    uint16_t pad2;
    uint32_t cr3;
    uint32_t next_slot;
    uint32_t max_slots;
    uint32_t pad3;
    uint64_t stack_base;
    uint64_t stack_size;
    uint64_t entry;
};
_Static_assert(offsetof(struct tramp_data, gdtr_limit) == TD_GDTR, "td");
_Static_assert(offsetof(struct tramp_data, pm32_off) == TD_PM32, "td");
_Static_assert(offsetof(struct tramp_data, lm64_off) == TD_LM64, "td");
_Static_assert(offsetof(struct tramp_data, cr3) == TD_CR3, "td");
_Static_assert(offsetof(struct tramp_data, next_slot) == TD_NEXT_SLOT, "td");
_Static_assert(offsetof(struct tramp_data, max_slots) == TD_MAX_SLOTS, "td");
_Static_assert(offsetof(struct tramp_data, stack_base) == TD_STACK_BASE, "td");
_Static_assert(offsetof(struct tramp_data, stack_size) == TD_STACK_SIZE, "td");
_Static_assert(offsetof(struct tramp_data, entry) == TD_ENTRY, "td");
_Static_assert(sizeof(struct tramp_data) == TD_SIZE, "td");
#endif

#endif
