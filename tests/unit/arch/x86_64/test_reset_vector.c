/*
 * Reset vector tests: a tiny real-mode interpreter, written from the Intel
 * SDM's opcode table for just the instructions a reset stub needs, runs the
 * 16 bytes at F000:FFF0 and records its port writes.  The stub must ask for
 * the ACPI reset first, then the i8042 reset, and then halt without leaving
 * the 16 bytes; anything else it executes is a failure.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "arch/x86_64/reset_vector.h"
#include "tests/lib/x86_images.h"

static struct gmem gm;

static void setup(void)
{
    x86_img_gmem(&gm, 2 * MiB);
}

static void teardown(void)
{
    gmem_destroy(&gm);
}

TestSuite(x86_reset_vector, .init = setup, .fini = teardown);

struct port_write {
    uint16_t port;
    uint8_t value;
};

struct cpu16 {
    uint16_t ip; /* offset within the 16-byte stub */
    uint16_t dx;
    uint8_t al;
    int if_flag;
    struct port_write out[8];
    unsigned nout;
};

enum stop { STOP_HLT_LOOP, STOP_BAD_OPCODE, STOP_LEFT_STUB, STOP_STEPS };

static void out8(struct cpu16 *c, uint16_t port)
{
    cr_assert_lt(c->nout, 8, "too many port writes");
    c->out[c->nout++] = (struct port_write){port, c->al};
}

/* Run until a hlt whose next instruction jumps back to it. */
static enum stop run(const uint8_t *code, struct cpu16 *c)
{
    for (unsigned steps = 0; steps < 64; steps++) {
        uint16_t ip = c->ip;
        if (ip >= X86_RESET_VECTOR_SIZE)
            return STOP_LEFT_STUB;
        uint8_t op = code[ip];
        /* Operands must lie inside the stub too. */
        size_t len = op == 0xBA ? 3 : (op == 0xB0 || op == 0xE6 || op == 0xEB) ? 2 : 1;
        if (ip + len > X86_RESET_VECTOR_SIZE)
            return STOP_LEFT_STUB;
        c->ip = (uint16_t)(ip + len);
        switch (op) {
        case 0xFA:
            c->if_flag = 0;
            break;
        case 0xBA:
            c->dx = (uint16_t)(code[ip + 1] | code[ip + 2] << 8);
            break;
        case 0xB0:
            c->al = code[ip + 1];
            break;
        case 0xEE:
            out8(c, c->dx);
            break;
        case 0xE6:
            out8(c, code[ip + 1]);
            break;
        case 0xEB:
            c->ip = (uint16_t)(c->ip + (int8_t)code[ip + 1]);
            break;
        case 0xF4:
            /* With interrupts off a hlt never resumes; otherwise it must loop. */
            if (!c->if_flag)
                return STOP_HLT_LOOP;
            break;
        default:
            return STOP_BAD_OPCODE;
        }
    }
    return STOP_STEPS;
}

Test(x86_reset_vector, asks_acpi_then_i8042_then_halts)
{
    memset(gmem_ptr(&gm, X86_RESET_VECTOR_GPA, X86_RESET_VECTOR_SIZE), 0, X86_RESET_VECTOR_SIZE);
    cr_assert_eq(x86_reset_vector_write(&gm), 0);
    const uint8_t *code = gmem_ptr(&gm, X86_RESET_VECTOR_GPA, X86_RESET_VECTOR_SIZE);
    struct cpu16 c = {.if_flag = 1};
    cr_assert_eq(run(code, &c), STOP_HLT_LOOP, "stub must end halted with interrupts off");
    cr_assert_eq(c.nout, 2);
    cr_assert_eq(c.out[0].port, X86_ACPI_RESET_PORT);
    cr_assert_eq(c.out[0].value, X86_ACPI_RESET_VALUE);
    cr_assert_eq(c.out[1].port, X86_I8042_CMD_PORT);
    cr_assert_eq(c.out[1].value, 0xFE, "i8042 'pulse reset line' command");
}

/* Were the stub's halt reached with interrupts on, it must loop on itself. */
Test(x86_reset_vector, halt_loops_if_woken)
{
    cr_assert_eq(x86_reset_vector_write(&gm), 0);
    const uint8_t *code = gmem_ptr(&gm, X86_RESET_VECTOR_GPA, X86_RESET_VECTOR_SIZE);
    /* Skip the cli: execution starts at the next instruction, interrupts on. */
    struct cpu16 c = {.ip = 1, .if_flag = 1};
    cr_assert_eq(run(code, &c), STOP_STEPS, "a woken halt jumps back and halts again");
    cr_assert_eq(c.nout, 2);
}

Test(x86_reset_vector, outside_ram_fails)
{
    struct gmem small;
    x86_img_gmem(&small, 512 * KiB);
    cr_assert_eq(x86_reset_vector_write(&small), -EFAULT);
    gmem_destroy(&small);
}

Test(x86_reset_vector, layout_leaves_room)
{
    cr_assert_leq(X86_MPTABLE_GPA + X86_MPTABLE_MAX, X86_RESET_VECTOR_GPA);
    cr_assert_eq(X86_RESET_VECTOR_GPA, 0xF0000 + 0xFFF0, "F000:FFF0");
}
