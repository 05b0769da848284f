/*
 * irq.c - IDT, exception reporting, LAPIC/IOAPIC set-up, the
 * interrupt-driven serial round trip (test=serial-irq), and routing of
 * device GSIs to handlers (virtio_irq=1, the report's timer checks).
 */
#include "guest.h"
#include "user.h"

struct idt_gate {
    u16 off_lo;
    u16 selector;
    u8 ist;
    u8 type_attr; /* 0x8E: present, DPL 0, 64-bit interrupt gate */
    u16 off_mid;
    u32 off_hi;
    u32 reserved;
};
_Static_assert(sizeof(struct idt_gate) == 16, "idt gate");
_Static_assert(__builtin_offsetof(struct irq_frame, vector) == 15 * 8, "frame");
_Static_assert(__builtin_offsetof(struct irq_frame, rip) == 17 * 8, "frame");
_Static_assert(sizeof(struct irq_frame) == 22 * 8, "frame");

#define TIMER_VECTOR    0x30
#define GSI_VECTOR_BASE 0x40 /* irq_route_gsi() hands out 0x40..0x4F */
#define GSI_VECTORS     16
#define SPURIOUS_VECTOR 0xFF

#define APIC_ID         0x020
#define APIC_TPR        0x080
#define APIC_EOI        0x0B0
#define APIC_SVR        0x0F0
#define APIC_LVT_TIMER  0x320
#define APIC_TIMER_INIT 0x380
#define APIC_TIMER_DIV  0x3E0

#define IOAPIC_BASE       0xFEC00000ull
#define IOAPIC_REDIR(pin) (0x10 + 2 * (pin))

#define UART_RBR (GUEST_SERIAL_PORT + 0)
#define UART_IER (GUEST_SERIAL_PORT + 1)
#define UART_IIR (GUEST_SERIAL_PORT + 2)
#define UART_FCR (GUEST_SERIAL_PORT + 2)
#define UART_MCR (GUEST_SERIAL_PORT + 4)
#define UART_LSR (GUEST_SERIAL_PORT + 5)
#define UART_MSR (GUEST_SERIAL_PORT + 6)

static struct idt_gate idt[256] __attribute__((aligned(16)));
static u64 lapic;
static volatile u32 rx_irqs, thre_irqs, timer_ticks, other_irqs;
volatile u32 irq_tscdl_count;
static volatile bool line_done;
static char line[201];
static volatile u32 line_len;
static struct {
    void (*fn)(void *);
    void *arg;
} gsi_handlers[GSI_VECTORS];
static u32 gsi_used;

static void set_gate(unsigned v)
{
    u64 a = (u64)isr_stub_base + 16 * v;
    idt[v] = (struct idt_gate){
        .off_lo = (u16)a,
        .selector = 0x10,
        .type_attr = 0x8E,
        .off_mid = (u16)(a >> 16),
        .off_hi = (u32)(a >> 32),
    };
}

/* Exceptions 0-31, the vectors serial-irq uses and the GSI vectors. */
void idt_init(void)
{
    for (unsigned v = 0; v < 32; v++)
        set_gate(v);
    set_gate(GUEST_SERIAL_VECTOR);
    set_gate(TIMER_VECTOR);
    set_gate(IRQ_TSCDL_VECTOR);
    set_gate(SPURIOUS_VECTOR);
    for (unsigned v = 0; v < GSI_VECTORS; v++)
        set_gate(GSI_VECTOR_BASE + v);
    load_idt(idt, sizeof idt - 1);
}

u32 lapic_base(void)
{
    u64 v;
    if (rdmsr_safe(0x1B, &v) && (v & 0xFFFFF000u))
        return (u32)(v & 0xFFFFF000u);
    return 0xFEE00000u;
}

static void serial_isr(void)
{
    for (int guard = 0; guard < 64; guard++) {
        u8 iir = inb(UART_IIR);
        if (iir & 1)
            break; /* nothing pending */
        switch ((iir >> 1) & 7) {
        case 2: /* received data */
        case 6: /* FIFO timeout */
            rx_irqs++;
            while (inb(UART_LSR) & 1) {
                char c = (char)inb(UART_RBR);
                if (line_done || c == '\r')
                    continue;
                if (c == '\n' || line_len == sizeof line - 1) {
                    line_done = true;
                    continue;
                }
                line[line_len++] = (c >= 'a' && c <= 'z') ? c - 32 : c;
            }
            break;
        case 1: /* THR empty: reading IIR acked it */
            thre_irqs++;
            outb(UART_IER, inb(UART_IER) & ~2); /* else every putc re-fires */
            break;
        case 3:
            inb(UART_LSR);
            break;
        default:
            inb(UART_MSR);
        }
    }
}

void isr_dispatch(struct irq_frame *f)
{
    /* The end of a user_run(): ud2 at user_exit in ring 3. */
    if (f->vector == 6 && (f->cs & 3) == 3 && f->rip == (u64)user_exit)
        user_return(f->rax);
    if (f->vector == 13 && (f->rip == (u64)rdmsr_fault_ip || f->rip == (u64)wrmsr_fault_ip)) {
        f->rip = (u64)msr_fault_fixup;
        return;
    }
    if (f->vector < 32) {
        u64 cr2;
        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        SAY("exception vector=%lu error=0x%lx rip=0x%lx cs=0x%lx cr2=0x%lx rsp=0x%lx", f->vector,
            f->error, f->rip, f->cs, cr2, f->rsp);
        SAY("RESULT FAIL");
        guest_exit(GUEST_FAIL);
    }
    if (f->vector == SPURIOUS_VECTOR)
        return; /* no EOI for spurious */
    if (f->vector == GUEST_SERIAL_VECTOR)
        serial_isr();
    else if (f->vector == TIMER_VECTOR)
        timer_ticks++;
    else if (f->vector == IRQ_TSCDL_VECTOR)
        irq_tscdl_count++;
    else if (f->vector >= GSI_VECTOR_BASE && f->vector < GSI_VECTOR_BASE + gsi_used)
        gsi_handlers[f->vector - GSI_VECTOR_BASE].fn(gsi_handlers[f->vector - GSI_VECTOR_BASE].arg);
    else
        other_irqs++;
    if (lapic)
        mmio_write32(lapic + APIC_EOI, 0);
}

static void ioapic_write(u32 reg, u32 v)
{
    mmio_write32(IOAPIC_BASE, reg);
    mmio_write32(IOAPIC_BASE + 0x10, v);
}

/* Sleep until cond() or until `ticks` timer ticks (100 ms each) passed.
 * sti;hlt is atomic (interrupt shadow), so no wake-up is lost. */
static bool wait_irq(volatile bool *flag, volatile u32 *count, u32 ticks)
{
    u32 start = timer_ticks;
    for (;;) {
        if ((flag && *flag) || (count && *count))
            return true;
        if (timer_ticks - start >= ticks)
            return false;
        __asm__ volatile("sti; hlt; cli" ::: "memory");
    }
}

/* 8259s masked (IOAPIC only), LAPIC enabled with a periodic ~100 ms
 * tick (KVM's APIC bus is 1 GHz; /16) as a watchdog for sti;hlt waits.
 * Returns the BSP's APIC id. Idempotent. */
static u32 lapic_setup(void)
{
    if (!lapic) {
        outb(0x21, 0xFF);
        outb(0xA1, 0xFF);
        lapic = lapic_base();
        mmio_write32(lapic + APIC_TPR, 0);
        mmio_write32(lapic + APIC_SVR, 0x100 | SPURIOUS_VECTOR);
        mmio_write32(lapic + APIC_TIMER_DIV, 0x3);
        mmio_write32(lapic + APIC_LVT_TIMER, TIMER_VECTOR | (1u << 17));
        mmio_write32(lapic + APIC_TIMER_INIT, 6250000);
    }
    return mmio_read32(lapic + APIC_ID) >> 24;
}

u64 irq_lapic(void)
{
    lapic_setup();
    return lapic;
}

void irq_watchdog_restart(void)
{
    lapic_setup();
    mmio_write32(lapic + APIC_LVT_TIMER, TIMER_VECTOR | (1u << 17));
    mmio_write32(lapic + APIC_TIMER_INIT, 6250000);
}

void irq_mask_pin(u32 pin)
{
    if (pin < 24)
        ioapic_write(IOAPIC_REDIR(pin), 1u << 16);
}

int irq_route_gsi(u32 gsi, void (*fn)(void *), void *arg)
{
    /* Only the first IOAPIC (24 pins) is programmed. */
    if (gsi >= 24 || gsi_used == GSI_VECTORS)
        return -1;
    u32 bsp = lapic_setup();
    u32 v = GSI_VECTOR_BASE + gsi_used;
    gsi_handlers[gsi_used].fn = fn;
    gsi_handlers[gsi_used].arg = arg;
    gsi_used++;
    /* Edge, active high, fixed, physical: works for a pulsed irqfd and for
     * a level line the handler lowers by acknowledging the device. */
    ioapic_write(IOAPIC_REDIR(gsi) + 1, bsp << 24);
    ioapic_write(IOAPIC_REDIR(gsi), v);
    return (int)v;
}

int irq_msi_vector(void (*fn)(void *), void *arg, u32 *apic_id)
{
    if (gsi_used == GSI_VECTORS)
        return -1;
    *apic_id = lapic_setup();
    u32 v = GSI_VECTOR_BASE + gsi_used;
    gsi_handlers[gsi_used].fn = fn;
    gsi_handlers[gsi_used].arg = arg;
    gsi_used++;
    return (int)v;
}

void irq_wait(void)
{
    __asm__ volatile("sti; hlt; cli" ::: "memory");
}

void irq_window(void)
{
    /* The port write forces an exit, after which KVM injects what is
     * pending; hosts that interpret CPL0 code may not look for interrupts
     * between interpreted instructions (a bare sti; nop; cli saw none). */
    __asm__ volatile("sti; outb %%al, $0x80; cli" ::: "memory", "eax");
}

void test_serial_irq(void)
{
    u32 bsp = lapic_setup();

    /* Pin 4: fixed, physical, edge, active high, unmasked -> vector 0x24. */
    ioapic_write(IOAPIC_REDIR(GUEST_SERIAL_IRQ) + 1, bsp << 24);
    ioapic_write(IOAPIC_REDIR(GUEST_SERIAL_IRQ), GUEST_SERIAL_VECTOR);

    outb(UART_FCR, 0); /* plain 8250: one byte per IRQ */
    inb(UART_LSR);
    inb(UART_MSR);
    SAY("echo ready");    /* same cue as test=echo */
    outb(UART_MCR, 0x0B); /* DTR, RTS, OUT2 gates the IRQ */
    outb(UART_IER, 0x01); /* received-data interrupt */
    bool rx_ok = wait_irq(&line_done, NULL, 600);

    outb(UART_IER, 0x02); /* THR-empty interrupt only */
    bool thre_ok = wait_irq(NULL, &thre_irqs, 20);
    outb(UART_IER, 0);
    mmio_write32(lapic + APIC_TIMER_INIT, 0);
    mmio_write32(lapic + APIC_LVT_TIMER, 1u << 16); /* masked */

    line[line_len] = 0;
    SAY("serial-irq rx_irqs=%u thre_irqs=%u timer_ticks=%u other_irqs=%u", rx_irqs, thre_irqs,
        timer_ticks, other_irqs);
    if (!rx_ok)
        SAY("serial-irq timeout waiting for a line (%u bytes)", line_len);
    SAY("echo %s", line);
    check("serial_rx_irq", rx_ok && rx_irqs > 0, "rx_irqs=%u", rx_irqs);
    check("serial_thre_irq", thre_ok && thre_irqs > 0, "thre_irqs=%u", thre_irqs);
    SAY("RESULT %s", any_failed ? "FAIL" : "PASS");
    guest_exit(any_failed ? GUEST_FAIL : GUEST_PASS);
}
