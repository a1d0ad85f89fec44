/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Local APIC timer in periodic mode; HLT until 10 interrupts arrived.
 * Parameters: ticks=N, count=N (initial count, divide-by-16; the default
 * 625000 is 10 ms with KVM's 1 GHz APIC bus).
 */
#include "lib/guest.h"

const char test_name[] = "lapic-timer";

#define LTIMER_VECTOR   0x40

static volatile unsigned ltimer_ticks;

static void ltimer_handler(TrapFrame *tf, void *opaque)
{
    (void)tf;
    (void)opaque;
    ltimer_ticks++;
    lapic_eoi();
}

int main(void)
{
    unsigned want = boot_cmdline_u64("ticks", 10);
    uint32_t count = boot_cmdline_u64("count", 625000);

    lapic_enable();
    cpu_set_handler(LTIMER_VECTOR, ltimer_handler, NULL);

    cpu_cli();
    uint64_t t0 = cpu_rdtsc();
    lapic_timer_start(LTIMER_VECTOR, count, true);
    uint32_t lvt = lapic_read(LAPIC_REG_LVT_TIMER);
    if (!(lvt & LAPIC_TIMER_PERIODIC)) {
        /* KVM derives the timer mode mask from the vCPU's CPUID. */
        test_fail("LVT timer reads 0x%x: periodic mode did not stick "
                  "(KVM drops it until KVM_SET_CPUID2)", lvt);
    }
    while (ltimer_ticks < want) {
        cpu_sti_hlt();
        cpu_cli();
    }
    uint64_t cycles = cpu_rdtsc() - t0;
    lapic_timer_stop();

    test_log("lapic-timer: %u periodic interrupts (initial count %u, "
             "divide 16) in %lu TSC cycles (~%lu ms)", ltimer_ticks, count,
             cycles, cycles / cpu_tsc_khz());
    return 0;
}
