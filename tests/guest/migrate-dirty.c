/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A workload for live migration, at CPL3 (native speed on this host):
 * fills mem=MiB of RAM from 6 MiB up with a pattern derived from each
 * word's address and its page's generation, then loops: verify every page,
 * rewrite dirty=N pages with the next generation (a moving window, so all
 * of RAM keeps changing), report progress about every second. After
 * seconds=S of guest TSC time it passes; any mismatch fails at once.
 *
 * The program cannot know when it migrates: a page or a generation lost
 * or torn on the way shows up as a mismatch in the next pass. Generations
 * are kept twice (word 0 of the page and a table at 4 MiB), so a page
 * update lost without its table entry (or the other way) is caught too.
 *
 * For benchmarks (tests/bench/migrate.py), which compare VMMs on the same
 * RAM contents and the same dirtying rate:
 * - rate=K rewrites K KiB per second of guest TSC time instead of dirty=
 *   pages per pass: each pass writes what is due since the fill, so the
 *   rate holds however long a verification pass takes (it slows down when
 *   the host is busy, with a migration for instance);
 * - dirty=0 fills RAM, then stays idle (HLT, woken 10 times a second by
 *   the local APIC timer) for seconds=, verifies the pattern once and
 *   passes: RAM full of data that is not written any more;
 * - mem= may go up to 3000 MiB (all of low RAM, which ends at 3 GiB on
 *   vireo-vmm and QEMU's microvm); above 1024 MiB the generation table
 *   no longer fits below 6 MiB and follows the pattern region instead.
 */
#include "lib/guest.h"

const char test_name[] = "migrate-dirty";

#define PAGE 4096u
#define WORDS (PAGE / 8)
#define GEN_TABLE_LOW 0x400000ul    /* one u64 per page: 2 MiB for 1 GiB of pattern */
#define REGION_START 0x600000ul
#define MEM_MAX_LOW 1024            /* MiB of pattern whose table fits at GEN_TABLE_LOW */
#define MEM_MAX 3000                /* region and table end below 3 GiB */
#define IDLE_VECTOR 0x40
#define IDLE_TIMER_COUNT 6250000    /* 100 ms on KVM's 1 GHz APIC bus, divide by 16 */

#define GEN_TABLE gen_table

static uint64_t gen_table;
static uint64_t nr_pages;
static uint64_t nr_dirty;
static uint64_t rate_kib;
static uint64_t tsc_khz;
static uint64_t run_seconds;

static inline uint64_t pattern(uint64_t addr, uint64_t gen)
{
    uint64_t x = addr * 0x9e3779b97f4a7c15ull ^ gen * 0xc2b2ae3d27d4eb4full;
    x ^= x >> 29;
    return x * 0xbf58476d1ce4e5b9ull;
}

static void fill_page(uint64_t i, uint64_t gen)
{
    volatile uint64_t *p = (volatile uint64_t *)(REGION_START + i * PAGE);
    volatile uint64_t *gens = (volatile uint64_t *)GEN_TABLE;

    for (unsigned w = 1; w < WORDS; w++)
        p[w] = pattern((uint64_t)&p[w], gen);
    p[0] = gen;
    gens[i] = gen;
}

/* 0 if page @i is intact, else 1 + the index of the first bad word. */
static uint64_t check_page(uint64_t i)
{
    const uint64_t *p = (const uint64_t *)(REGION_START + i * PAGE);
    const uint64_t *gens = (const uint64_t *)GEN_TABLE;
    uint64_t gen = p[0];

    if (gen != gens[i])
        return 1;
    for (unsigned w = 1; w < WORDS; w++) {
        if (p[w] != pattern((uint64_t)&p[w], gen))
            return 1 + w;
    }
    return 0;
}

/* CPL3, dirty=0: one verification pass; 1 if all pages are intact. */
static uint64_t verify_all(uint64_t arg)
{
    (void)arg;
    for (uint64_t i = 0; i < nr_pages; i++) {
        uint64_t bad = check_page(i);
        if (bad) {
            user_log("error: page %lu (0x%lx) word %lu", i, REGION_START + i * PAGE, bad - 1);
            return 0;
        }
    }
    return 1;
}

static void idle_tick(TrapFrame *tf, void *opaque)
{
    (void)tf;
    (void)opaque;
    lapic_eoi();
}

/* CPL0, dirty=0: HLT until @seconds of TSC time have gone by. */
static void idle_wait(uint64_t seconds)
{
    uint64_t start = cpu_rdtsc(), cycles = seconds * tsc_khz * 1000;

    lapic_enable();
    cpu_set_handler(IDLE_VECTOR, idle_tick, NULL);
    cpu_cli();
    lapic_timer_start(IDLE_VECTOR, IDLE_TIMER_COUNT, true);
    while (cpu_rdtsc() - start < cycles) {
        cpu_sti_hlt();
        cpu_cli();
    }
    lapic_timer_stop();
}

static uint64_t workload(uint64_t arg)
{
    uint64_t start, last_report, pass = 0, cursor = 0, rewritten = 0;
    uint64_t second = tsc_khz * 1000;

    (void)arg;
    for (uint64_t i = 0; i < nr_pages; i++)
        fill_page(i, 1);
    user_log("filled %lu pages", nr_pages);
    if (!nr_dirty && !rate_kib)
        return 1;               /* dirty=0: main() idles */
    start = last_report = cpu_rdtsc();
    for (;;) {
        uint64_t now;

        for (uint64_t i = 0; i < nr_pages; i++) {
            uint64_t bad = check_page(i);
            if (bad) {
                const uint64_t *p = (const uint64_t *)(REGION_START + i * PAGE);
                user_log("error: pass %lu page %lu (0x%lx) word %lu: gen %lu, table %lu",
                         pass, i, REGION_START + i * PAGE, bad - 1, p[0],
                         ((const uint64_t *)GEN_TABLE)[i]);
                return 0;
            }
        }
        uint64_t n = nr_dirty;
        if (rate_kib) {
            /* Pages due since the fill at rate_kib KiB per TSC second. */
            uint64_t due = (cpu_rdtsc() - start) / tsc_khz * rate_kib / (PAGE / 1024) / 1000;
            n = due > rewritten ? due - rewritten : 0;
            if (n > nr_pages)
                n = nr_pages;
        }
        for (uint64_t k = 0; k < n; k++) {
            fill_page(cursor, ((const uint64_t *)GEN_TABLE)[cursor] + 1);
            cursor = (cursor + 1) % nr_pages;
            rewritten++;
        }
        pass++;
        now = cpu_rdtsc();
        if (now - last_report >= second) {
            user_log("progress: pass %lu ok, %lu pages rewritten", pass, rewritten);
            last_report = now;
        }
        if (now - start >= run_seconds * second)
            return pass;
    }
}

int main(void)
{
    uint64_t mem = boot_cmdline_u64("mem", 32);
    uint64_t passes;

    nr_pages = mem * 1024 * 1024 / PAGE;
    nr_dirty = boot_cmdline_u64("dirty", 64);
    rate_kib = boot_cmdline_u64("rate", 0);
    run_seconds = boot_cmdline_u64("seconds", 10);
    tsc_khz = cpu_tsc_khz();
    if (!nr_pages || mem > MEM_MAX)
        test_fail("mem must be 1..%d (MiB)", MEM_MAX);
    gen_table = mem <= MEM_MAX_LOW ? GEN_TABLE_LOW : REGION_START + nr_pages * PAGE;
    if (rate_kib)
        test_log("migrate-dirty: %lu MiB from 0x%lx, %lu KiB/s, %lu s, TSC %lu kHz", mem,
                 REGION_START, rate_kib, run_seconds, tsc_khz);
    else
        test_log("migrate-dirty: %lu MiB from 0x%lx, %lu pages per pass, %lu s, TSC %lu kHz",
                 mem, REGION_START, nr_dirty, run_seconds, tsc_khz);
    passes = user_run(workload, 0);
    if (!passes)
        test_fail("RAM pattern mismatch");
    if (!nr_dirty && !rate_kib) {
        test_log("migrate-dirty: idle");
        idle_wait(run_seconds);
        if (!user_run(verify_all, 0))
            test_fail("RAM pattern mismatch");
        test_log("migrate-dirty: idle for %lu s, pattern intact", run_seconds);
        test_pass();
    }
    test_log("migrate-dirty: %lu passes", passes);
    test_pass();
}
