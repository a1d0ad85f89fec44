/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Start every AP listed in the MADT. Each prints "cpu N up" and runs a
 * loop at CPL3 (loops=N iterations, default 10 M), and the boot CPU waits
 * for all. PASS only if as many CPUs came up as the MADT has local APICs.
 */
#include "lib/guest.h"

const char test_name[] = "smp";

static volatile uint32_t smptest_done;
static uint64_t smptest_loops;

static uint64_t smptest_user_loop(uint64_t n)
{
    uint64_t x = 0;

    for (uint64_t i = 0; i < n; i++) {
        __asm__ volatile("" : "+r"(x) : "r"(i));
        x += i;
    }
    return x;
}

static void smptest_ap(Cpu *cpu)
{
    test_log("cpu %u up (APIC ID %u)", cpu->index, cpu->apic_id);
    user_run(smptest_user_loop, smptest_loops);
    __atomic_fetch_add(&smptest_done, 1, __ATOMIC_RELEASE);
}

int main(void)
{
    smptest_loops = boot_cmdline_u64("loops", 10000000);
    lapic_enable();
    test_log("cpu 0 up (APIC ID %u, boot CPU)", lapic_id());

    SmpResult r = smp_start_aps(smptest_ap);
    if (!r.madt_cpus) {
        test_fail("no MADT (or no local APIC in it)");
    }

    /* Each AP's loop is native speed; allow plenty for CPL0 and printing. */
    uint64_t end = cpu_rdtsc() + 10ULL * 1000 * cpu_tsc_khz();
    while (__atomic_load_n(&smptest_done, __ATOMIC_ACQUIRE) < r.started - 1 &&
           cpu_rdtsc() < end) {
        util_pause();
    }
    unsigned done = __atomic_load_n(&smptest_done, __ATOMIC_ACQUIRE);
    test_log("smp: %u of %u CPUs in the MADT up, %u APs finished the CPL3 loop",
             r.started, r.madt_cpus, done);
    if (r.started != r.madt_cpus) {
        test_fail("%u CPUs up, MADT lists %u", r.started, r.madt_cpus);
    }
    if (done != r.started - 1) {
        test_fail("only %u of %u APs finished their CPL3 loop", done,
                  r.started - 1);
    }
    return 0;
}
