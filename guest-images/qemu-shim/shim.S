/*
 * shim.S - PVH note for the pvh2linux test shim.
 *
 * The shim is a QEMU-only test aid: QEMU boots ELF kernels via PVH but has
 * no 64-bit Linux boot entry, so this small PVH kernel plays the VMM's
 * part of the Linux 64-bit boot protocol for the test guest's bzImage.
 * Long-mode entry, GDT and page tables come from testguest/pvh32.S.
 */
#include "protocol.h"

    .section .note.wisp, "a", @note
    .balign 4
    .long 4
    .long 4
    .long PVH_NOTE_PHYS32_ENTRY
    .asciz "Xen"
    .long pvh_entry32

    .section .note.GNU-stack, "", @progbits
