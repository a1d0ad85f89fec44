/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * PIT channel 0 at 100 Hz (ISA IRQ 0, GSI 2 per the MADT override) through
 * the IOAPIC; HLT until 10 ticks arrived. Parameters: ticks=N, hz=N.
 */
#include "lib/guest.h"

const char test_name[] = "pit";

#define PITTEST_VECTOR      0x30
#define PITTEST_WATCHDOG_VECTOR 0x31

/* Local APIC one-shot, divide 16: ~3 s with KVM's 1 GHz APIC bus. */
#define PITTEST_WATCHDOG_COUNT 187500000u

static volatile unsigned pittest_ticks;

static void pittest_watchdog(TrapFrame *tf, void *opaque)
{
    (void)tf;
    (void)opaque;
    test_fail("only %u PIT ticks after ~3 s (ISA IRQ 0 must reach IOAPIC "
              "pin 2; with KVM's in-kernel PIT that takes a GSI route "
              "0 -> IOAPIC pin 2)", pittest_ticks);
}

static void pittest_handler(TrapFrame *tf, void *opaque)
{
    (void)tf;
    (void)opaque;
    pittest_ticks++;
    lapic_eoi();
}

int main(void)
{
    unsigned want = boot_cmdline_u64("ticks", 10);
    unsigned hz = boot_cmdline_u64("hz", 100);

    lapic_enable();
    cpu_set_handler(PITTEST_VECTOR, pittest_handler, NULL);
    cpu_set_handler(PITTEST_WATCHDOG_VECTOR, pittest_watchdog, NULL);
    uint32_t gsi = ioapic_route_isa(PIT_IRQ, PITTEST_VECTOR, lapic_id());
    test_log("pit: IRQ 0 -> GSI %u -> vector 0x%x, %u Hz", gsi, PITTEST_VECTOR,
             hz);

    cpu_cli();
    uint64_t t0 = cpu_rdtsc();
    pit_start_periodic(hz);
    lapic_timer_start(PITTEST_WATCHDOG_VECTOR, PITTEST_WATCHDOG_COUNT, false);
    while (pittest_ticks < want) {
        cpu_sti_hlt();
        cpu_cli();
    }
    uint64_t cycles = cpu_rdtsc() - t0;
    lapic_timer_stop();
    pit_stop();
    ioapic_mask(gsi);

    uint64_t ms = cycles / (cpu_tsc_khz() ? cpu_tsc_khz() : 1);
    uint64_t expect_ms = 1000ULL * want / hz;
    test_log("pit: %u ticks in %lu TSC cycles (~%lu ms, expected %lu ms)",
             pittest_ticks, cycles, ms, expect_ms);
    /* The TSC rate is a guess here; only catch ticks arriving in a burst. */
    if (ms * 10 < expect_ms) {
        test_fail("%u ticks took only ~%lu ms", want, ms);
    }
    return 0;
}
