/*
 * The x86 reset vector: the 16 bytes at physical 0xFFFF0, where a CPU (and
 * any OS that "restarts through the BIOS") starts in real mode at
 * F000:FFF0.
 *
 * wisp has no BIOS, so without this the bytes there are zeros and a guest
 * that jumps to the reset vector spins forever.  Linux does exactly that on
 * a hardware-reduced ACPI machine: reboot(2) and panic try EFI, then
 * machine_real_restart() into F000:FFF0.  The stub written here asks wisp
 * for a reset the two ways it understands: the FADT's reset register
 * (devices/legacy/acpi_pm.h) and, failing that, the i8042 pulse (0xFE to port
 * 0x64); both end the VM with status 0.  If neither is wired it halts.
 */
#ifndef ARCH_X86_64_RESET_VECTOR_H
#define ARCH_X86_64_RESET_VECTOR_H

#include "vmm/error.h"
#include "vmm/gmem.h"

#define X86_RESET_VECTOR_GPA  0xffff0ULL /* F000:FFF0 */
#define X86_RESET_VECTOR_SIZE 16U        /* up to the 1 MiB line */

/*
 * Write the reset stub at X86_RESET_VECTOR_GPA, padding the rest of the 16
 * bytes with hlt.  Returns 0, or -EFAULT when that range is not guest RAM.
 */
int x86_reset_vector_write(const struct gmem *gm) __must_check;

#endif /* ARCH_X86_64_RESET_VECTOR_H */
