/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "smp.h"

#include "acpi.h"
#include "lapic.h"
#include "test.h"
#include "util.h"

/* start.S */
extern const uint8_t trampoline_start[], trampoline_end[];
extern const uint8_t trampoline_params[];
extern uint64_t gdt[];
extern const uint8_t gdt_desc[];
extern const uint8_t boot_pml4[];
void ap_entry64(void);

/* Mirrors trampoline_params in start.S. */
typedef struct __attribute__((packed)) {
    uint16_t pad;
    uint16_t gdt_limit;
    uint32_t gdt_base;
    uint32_t cr3;
    uint32_t pad2;
    uint64_t stack;
    uint64_t cpu;
    uint64_t entry;
} TrampolineParams;

static SmpApFn smp_ap_fn;

/* Called by start.S's ap_entry64 on the AP's own stack. */
void smp_ap_main(Cpu *cpu);
void smp_ap_main(Cpu *cpu)
{
    cpu_init(cpu, cpu->index);
    lapic_enable();
    __atomic_store_n(&cpu->online, 1, __ATOMIC_RELEASE);
    smp_ap_fn(cpu);
    for (;;) {
        cpu_cli();
        cpu_hlt();
    }
}

static bool smp_wait_online(Cpu *cpu, uint64_t us)
{
    uint64_t end = cpu_rdtsc() + us * cpu_tsc_khz() / 1000;

    while (cpu_rdtsc() < end) {
        if (__atomic_load_n(&cpu->online, __ATOMIC_ACQUIRE)) {
            return true;
        }
        util_pause();
    }
    return false;
}

SmpResult smp_start_aps(SmpApFn fn)
{
    uint32_t ids[LAYOUT_MAX_CPUS];
    SmpResult r = { 0, 1 };
    Cpu *bsp = cpu_self();
    TrampolineParams *tp = (TrampolineParams *)(uintptr_t)
        (LAYOUT_TRAMPOLINE + (trampoline_params - trampoline_start));

    r.madt_cpus = acpi_madt_cpus(ids, LAYOUT_MAX_CPUS);
    if (r.madt_cpus > LAYOUT_MAX_CPUS) {
        test_fail("MADT lists %u CPUs, this runtime handles %u",
                  r.madt_cpus, LAYOUT_MAX_CPUS);
    }
    bsp->apic_id = lapic_id();
    bsp->online = 1;
    smp_ap_fn = fn;

    memcpy((void *)LAYOUT_TRAMPOLINE, trampoline_start,
           trampoline_end - trampoline_start);
    tp->gdt_limit = *(const uint16_t *)gdt_desc;
    tp->gdt_base = (uint32_t)(uintptr_t)gdt;
    tp->cr3 = (uint32_t)(uintptr_t)boot_pml4;
    tp->entry = (uintptr_t)ap_entry64;

    unsigned next = 1;
    for (unsigned i = 0; i < r.madt_cpus; i++) {
        if (ids[i] == bsp->apic_id) {
            continue;
        }
        if (next >= LAYOUT_MAX_CPUS) {
            break;
        }
        Cpu *cpu = cpu_get(next);
        cpu->index = next;
        cpu->apic_id = ids[i];
        cpu->online = 0;
        tp->stack = (uintptr_t)cpu_stack_top(next);
        tp->cpu = (uintptr_t)cpu;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);

        /* Intel's sequence: INIT, 10 ms, SIPI, 200 us, SIPI if needed. */
        lapic_send_init(ids[i]);
        cpu_delay_us(10000);
        lapic_send_sipi(ids[i], LAYOUT_TRAMPOLINE);
        if (!smp_wait_online(cpu, 200)) {
            lapic_send_sipi(ids[i], LAYOUT_TRAMPOLINE);
            if (!smp_wait_online(cpu, 1000000)) {
                test_log("smp: APIC ID %u did not come up", ids[i]);
                continue;
            }
        }
        r.started++;
        next++;
    }
    return r;
}
