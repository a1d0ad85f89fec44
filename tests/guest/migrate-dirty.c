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
 */
#include "lib/guest.h"

const char test_name[] = "migrate-dirty";

#define PAGE 4096u
#define WORDS (PAGE / 8)
#define GEN_TABLE 0x400000ul        /* one u64 per page: 2 MiB for 1 GiB of pattern */
#define REGION_START 0x600000ul

static uint64_t nr_pages;
static uint64_t nr_dirty;
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

static uint64_t workload(uint64_t arg)
{
    uint64_t start, last_report, pass = 0, cursor = 0, rewritten = 0;
    uint64_t second = tsc_khz * 1000;

    (void)arg;
    for (uint64_t i = 0; i < nr_pages; i++)
        fill_page(i, 1);
    user_log("filled %lu pages", nr_pages);
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
        for (uint64_t k = 0; k < nr_dirty; k++) {
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
    run_seconds = boot_cmdline_u64("seconds", 10);
    tsc_khz = cpu_tsc_khz();
    if (!nr_pages || nr_pages > 1024 * 1024 * 1024 / PAGE || !nr_dirty)
        test_fail("mem must be 1..1024 (MiB) and dirty > 0");
    test_log("migrate-dirty: %lu MiB from 0x%lx, %lu pages per pass, %lu s", mem,
             REGION_START, nr_dirty, run_seconds);
    passes = user_run(workload, 0);
    if (!passes)
        test_fail("RAM pattern mismatch");
    test_log("migrate-dirty: %lu passes", passes);
    test_pass();
}
