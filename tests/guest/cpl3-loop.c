/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A loop of 100 M iterations (iters=N) at CPL3, timed with the TSC at
 * CPL3. On this host CPL3 runs natively while CPL0 is emulated.
 */
#include "lib/guest.h"

const char test_name[] = "cpl3-loop";

static uint64_t cpl3_loop(uint64_t n)
{
    uint64_t t0, t1;

    t0 = cpu_rdtsc();
    __asm__ volatile("1: dec %0\n\t"
                     "jnz 1b" : "+r"(n) : : "cc");
    t1 = cpu_rdtsc();
    return t1 - t0;
}

int main(void)
{
    uint64_t iters = boot_cmdline_u64("iters", 100000000);

    if (!iters) {
        test_fail("iters must be > 0");
    }
    uint64_t cycles = user_run(cpl3_loop, iters);
    test_log("cpl3-loop: %lu iterations in %lu TSC cycles "
             "(~%lu ms at an assumed %lu kHz TSC)", iters, cycles,
             cycles / cpu_tsc_khz(), cpu_tsc_khz());
    return 0;
}
