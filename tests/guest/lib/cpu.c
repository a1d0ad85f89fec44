/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cpu.h"

#include "test.h"

typedef struct __attribute__((packed)) {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t reserved;
} IdtEntry;

typedef struct __attribute__((packed)) {
    uint16_t limit;
    uint64_t base;
} DescPtr;

typedef struct {
    TrapHandler fn;
    void *opaque;
} TrapSlot;

/* start.S */
extern uint64_t gdt[];
extern const uint8_t isr_stubs[];

uint8_t cpu_stacks[LAYOUT_MAX_CPUS][LAYOUT_STACK_SIZE]
    __attribute__((aligned(LAYOUT_STACK_SIZE)));

static IdtEntry cpu_idt[256] __attribute__((aligned(16)));
static TrapSlot cpu_handlers[256];

static const char *const cpu_exception_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
    "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "22", "23",
    "24", "25", "26", "27", "#HV", "#VC", "#SX", "31",
};

Cpu *cpu_get(unsigned index)
{
    return (Cpu *)cpu_stacks[index];
}

void *cpu_stack_top(unsigned index)
{
    return cpu_stacks[index] + LAYOUT_STACK_SIZE;
}

void cpu_idt_init(void)
{
    for (unsigned v = 0; v < 256; v++) {
        uint64_t addr = (uintptr_t)isr_stubs + 16 * v;
        bool user = v == LAYOUT_VEC_SYSCALL || v == LAYOUT_VEC_USER_RETURN;

        cpu_idt[v] = (IdtEntry) {
            .offset_lo = (uint16_t)addr,
            .selector = LAYOUT_SEL_CODE64,
            .ist = 0,
            .type_attr = user ? 0xee : 0x8e,    /* present, interrupt gate */
            .offset_mid = (uint16_t)(addr >> 16),
            .offset_hi = (uint32_t)(addr >> 32),
        };
    }
}

void cpu_init(Cpu *cpu, unsigned index)
{
    uint64_t base = (uintptr_t)&cpu->tss;
    uint64_t limit = sizeof(Tss) - 1;
    unsigned slot = LAYOUT_GDT_FIXED + 2 * index;
    DescPtr idtr = { sizeof(cpu_idt) - 1, (uintptr_t)cpu_idt };

    cpu->index = index;
    cpu->tss.rsp[0] = (uintptr_t)cpu_stack_top(index);
    cpu->tss.iomap_base = sizeof(Tss);  /* no I/O bitmap: CPL3 port I/O faults */

    gdt[slot] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
                (0x89ULL << 40) |       /* present, available 64-bit TSS */
                (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    gdt[slot + 1] = base >> 32;

    __asm__ volatile("ltr %w0" : : "r"(LAYOUT_SEL_TSS0 + 16 * index));
    __asm__ volatile("lidt %0" : : "m"(idtr));
}

void cpu_set_handler(uint8_t vector, TrapHandler fn, void *opaque)
{
    cpu_handlers[vector].opaque = opaque;
    __atomic_store_n(&cpu_handlers[vector].fn, fn, __ATOMIC_RELEASE);
}

void cpu_trap_fatal(const TrapFrame *tf)
{
    unsigned v = (unsigned)tf->vector;

    if (v < 32) {
        test_fail("exception %u (%s) error 0x%lx rip 0x%lx cs 0x%lx "
                  "rsp 0x%lx cr2 0x%lx cpu %u", v, cpu_exception_names[v],
                  tf->error, tf->rip, tf->cs, tf->rsp, cpu_read_cr2(),
                  cpu_self()->index);
    }
    test_fail("unexpected interrupt vector 0x%x rip 0x%lx cs 0x%lx", v,
              tf->rip, tf->cs);
}

/*
 * On this host (nested kvm_pvm) `int $n` at CPL3 raises #UD instead of
 * going through the DPL-3 gate, and at CPL0 it is an emulation failure.
 * So a #UD from CPL3 on "cd nn" with a DPL-3 gate nn is turned into what
 * the CPU should have done: vector nn, RIP after the instruction. On a
 * KVM where the gate works, this never triggers.
 */
static void cpu_emulate_soft_int(TrapFrame *tf)
{
    static bool noted;
    const uint8_t *ip = (const uint8_t *)tf->rip;

    if (ip[0] != 0xcd || (cpu_idt[ip[1]].type_attr & 0x60) != 0x60) {
        return;
    }
    if (!noted) {
        noted = true;
        test_log("note: int $0x%x at CPL3 raised #UD; emulating the gate",
                 ip[1]);
    }
    tf->vector = ip[1];
    tf->rip += 2;
}

/* Called by start.S's isr_common. */
void cpu_trap_dispatch(TrapFrame *tf);
void cpu_trap_dispatch(TrapFrame *tf)
{
    if (tf->vector == 6 && (tf->cs & 3) == 3) {
        cpu_emulate_soft_int(tf);
    }

    const TrapSlot *slot = &cpu_handlers[tf->vector & 0xff];
    TrapHandler fn = __atomic_load_n(&slot->fn, __ATOMIC_ACQUIRE);

    if (fn) {
        fn(tf, slot->opaque);
        return;
    }
    if (tf->vector == LAYOUT_VEC_SPURIOUS) {
        return;
    }
    cpu_trap_fatal(tf);
}

uint64_t cpu_tsc_khz(void)
{
    static uint64_t khz;
    uint32_t a, b, c, d;

    if (khz) {
        return khz;
    }
    cpu_cpuid(0, 0, &a, &b, &c, &d);
    uint32_t max = a;
    if (max >= 0x15) {
        cpu_cpuid(0x15, 0, &a, &b, &c, &d);
        if (a && b && c) {
            khz = (uint64_t)c * b / a / 1000;
        }
    }
    if (!khz && max >= 0x16) {
        cpu_cpuid(0x16, 0, &a, &b, &c, &d);
        khz = (uint64_t)(a & 0xffff) * 1000;
    }
    if (!khz) {
        cpu_cpuid(0x40000000, 0, &a, &b, &c, &d);
        if (a >= 0x40000010 && a < 0x40000100) {
            cpu_cpuid(0x40000010, 0, &a, &b, &c, &d);
            khz = a;
        }
    }
    if (!khz) {
        khz = 3000000;
    }
    return khz;
}

void cpu_delay_us(uint64_t us)
{
    uint64_t end = cpu_rdtsc() + us * cpu_tsc_khz() / 1000;

    while (cpu_rdtsc() < end) {
        __asm__ volatile("pause");
    }
}
