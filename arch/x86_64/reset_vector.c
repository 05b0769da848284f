/*
 * The real-mode reset stub at F000:FFF0 (see reset_vector.h for why a VMM
 * without a BIOS needs one).  Hand-assembled 16-bit code, 14 bytes:
 *
 *   cli
 *   mov  dx, X86_ACPI_RESET_PORT
 *   mov  al, X86_ACPI_RESET_VALUE
 *   out  dx, al            ; the FADT's RESET_REG
 *   mov  al, 0xFE
 *   out  0x64, al          ; i8042: pulse the reset line
 * 1:hlt
 *   jmp  1b
 */
#include "arch/x86_64/reset_vector.h"

#include <errno.h>
#include <string.h>

#include "arch/x86_64/layout.h"

_Static_assert(X86_MPTABLE_GPA + X86_MPTABLE_MAX <= X86_RESET_VECTOR_GPA,
               "the MP table area ends below the reset vector");
_Static_assert(X86_RESET_VECTOR_GPA + X86_RESET_VECTOR_SIZE == X86_LOWMEM_RESERVED_END,
               "the reset vector is the last 16 bytes below 1 MiB");
_Static_assert(X86_ACPI_RESET_PORT <= 0xffff && X86_ACPI_RESET_VALUE <= 0xff,
               "the stub encodes a 16-bit port and an 8-bit value");

#define OP_CLI      0xFA
#define OP_MOV_DX   0xBA /* mov dx, imm16 */
#define OP_MOV_AL   0xB0 /* mov al, imm8 */
#define OP_OUT_DX   0xEE /* out dx, al */
#define OP_OUT_IMM8 0xE6 /* out imm8, al */
#define OP_HLT      0xF4
#define OP_JMP_REL8 0xEB
#define I8042_RESET 0xFE

int x86_reset_vector_write(const struct gmem *gm)
{
    uint8_t code[X86_RESET_VECTOR_SIZE];
    memset(code, OP_HLT, sizeof(code));
    size_t n = 0; /* 14 bytes below: fits */
    code[n++] = OP_CLI;
    code[n++] = OP_MOV_DX;
    code[n++] = (uint8_t)(X86_ACPI_RESET_PORT & 0xff);
    code[n++] = (uint8_t)(X86_ACPI_RESET_PORT >> 8);
    code[n++] = OP_MOV_AL;
    code[n++] = X86_ACPI_RESET_VALUE;
    code[n++] = OP_OUT_DX;
    code[n++] = OP_MOV_AL;
    code[n++] = I8042_RESET;
    code[n++] = OP_OUT_IMM8;
    code[n++] = (uint8_t)X86_I8042_CMD_PORT;
    code[n++] = OP_HLT;
    code[n++] = OP_JMP_REL8;
    code[n++] = (uint8_t)-3; /* back to the hlt */
    return gmem_write(gm, X86_RESET_VECTOR_GPA, code, sizeof(code)) < 0 ? -EFAULT : 0;
}
