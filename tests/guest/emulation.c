/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Instructions Linux runs at CPL0 that some KVM hosts cannot emulate
 * (kvm_pvm: int3, fwait, ldmxcsr; vmm/emulate.c finishes them). Each must
 * behave exactly as on hardware: int3 delivers #BP with RIP after the
 * instruction, fwait is a no-op, ldmxcsr loads MXCSR from every addressing
 * form. On hardware-assisted KVM the same checks run natively.
 */
#include "lib/guest.h"

const char test_name[] = "emulation";

#define CR4_OSFXSR (1ULL << 9)
#define CR4_OSXMMEXCPT (1ULL << 10)

static volatile uint64_t bp_rip;
static volatile unsigned bp_count;

static void bp_handler(TrapFrame *tf, void *opaque)
{
    (void)opaque;
    bp_rip = tf->rip;
    bp_count++;
}

/* MXCSR read natively: at CPL3 this host runs instructions itself. */
static uint64_t read_mxcsr(uint64_t arg)
{
    uint32_t v;

    (void)arg;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v;
}

static void expect_mxcsr(uint32_t want, const char *how)
{
    uint32_t got = user_run(read_mxcsr, 0);

    if (got != want)
        test_fail("ldmxcsr %s: MXCSR 0x%x, expected 0x%x", how, got, want);
}

static uint32_t mx_table[4] __attribute__((aligned(16)));
uint32_t mx_rip_relative __attribute__((used));

int main(void)
{
    uint64_t after;
    uint64_t cr4;
    uint32_t local;

    cpu_set_handler(3, bp_handler, NULL);
    __asm__ volatile("int3\n1:\n\tlea 1b(%%rip), %0" : "=r"(after) : : "memory");
    if (bp_count != 1 || bp_rip != after)
        test_fail("int3: #BP seen %u times, RIP 0x%lx, expected 0x%lx", bp_count, bp_rip,
                  after);

    __asm__ volatile("fwait; fwait" : : : "memory");

    /* SSE state instructions need CR4.OSFXSR. */
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | CR4_OSFXSR | CR4_OSXMMEXCPT));

    local = 0x1f80 | 0x6000;            /* round toward zero */
    __asm__ volatile("ldmxcsr (%0)" : : "r"(&local) : "memory");
    expect_mxcsr(0x7f80, "(reg)");

    mx_rip_relative = 0x1f80 | 0x2000;  /* round down */
    __asm__ volatile("ldmxcsr mx_rip_relative(%%rip)" : : : "memory");
    expect_mxcsr(0x3f80, "disp32(%rip)");

    mx_table[3] = 0x1f80 | 0x4000;      /* round up */
    __asm__ volatile("ldmxcsr 8(%0,%1,4)" : : "r"(mx_table), "r"(1UL) : "memory");
    expect_mxcsr(0x5f80, "disp8(base,index,4)");

    mx_table[2] = 0x1f80 | 0x8000;      /* flush to zero */
    __asm__ volatile("mov %0, %%r13\n\tldmxcsr 0x100(%%r13)"
                     : : "r"((uintptr_t)&mx_table[2] - 0x100) : "r13", "memory");
    expect_mxcsr(0x9f80, "disp32(r13)");

    mx_table[0] = 0x1f80;
    __asm__ volatile("mov %0, %%r12\n\tldmxcsr (%%r12)" : : "r"(mx_table) : "r12", "memory");
    expect_mxcsr(0x1f80, "(r12) with SIB");

    test_log("emulation: int3 (#BP at the next RIP), fwait, ldmxcsr in 5 addressing forms");
    return 0;
}
