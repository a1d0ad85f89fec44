/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * migrate-counter: a Linux user-space program for the Linux test guest's
 * vireo.test=migrate mode (tests/guest/linux/init, tests/integration/
 * linux_test.py), which make-initramfs.sh puts in the initramfs' /bin.
 * Freestanding like vsock-echo.c (raw system calls, no libc).
 *
 *   migrate-counter [PAGES]
 *
 * Fills a buffer of PAGES 4 KiB pages (default 512) with a pattern derived
 * from each word's index and its page's generation, then forever, about
 * five times a second: checks every page against the generation it should
 * have, moves a window of pages to the next generation (so the VM keeps
 * dirtying RAM), hashes the whole buffer and prints
 *
 *   VIREO-MIG: n=N sum=HASH ok
 *
 * with N counting from 0. The host migrates the VM meanwhile; a line
 * lost, repeated or torn shows in N, a page lost or torn on the way in
 * "VIREO-MIG: n=N BAD page=P" (and exit status 1). Everything is a
 * function of N, so HASH at a given N is the same in every run.
 */
#include <stddef.h>
#include <stdint.h>

#include "linux-user.h"

#define SYS_write 1
#define SYS_nanosleep 35
#define SYS_exit_group 231

#define PAGE_WORDS 512
#define MAX_PAGES 4096
#define WINDOW 16                       /* pages moved to the next generation per tick */

static uint64_t buf[MAX_PAGES][PAGE_WORDS];
static uint64_t gens[MAX_PAGES];

static uint64_t pattern(uint64_t page, uint64_t word, uint64_t gen)
{
    uint64_t x = (page * PAGE_WORDS + word) * 0x9e3779b97f4a7c15ull ^
                 gen * 0xc2b2ae3d27d4eb4full;

    x ^= x >> 29;
    return x * 0xbf58476d1ce4e5b9ull;
}

static void fill(uint64_t page, uint64_t gen)
{
    for (unsigned w = 0; w < PAGE_WORDS; w++)
        buf[page][w] = pattern(page, w, gen);
    gens[page] = gen;
}

static size_t put_str(char *p, const char *s)
{
    size_t n = 0;

    while (s[n]) {
        p[n] = s[n];
        n++;
    }
    return n;
}

static size_t put_num(char *p, uint64_t v, unsigned base, unsigned width)
{
    char tmp[24];
    size_t n = 0, i;

    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n < width)
        tmp[n++] = '0';
    for (i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

static void say(uint64_t count, const char *what, uint64_t value, unsigned base)
{
    char line[96];
    size_t n = put_str(line, "VIREO-MIG: n=");

    n += put_num(line + n, count, 10, 1);
    n += put_str(line + n, what);
    n += put_num(line + n, value, base, base == 16 ? 16 : 1);
    n += put_str(line + n, base == 16 ? " ok\n" : "\n");
    /* One write per line: the tty layer keeps it whole. */
    sys(SYS_write, 1, (long)line, (long)n);
}

static uint64_t parse(const char *s, uint64_t dflt)
{
    uint64_t v = 0;

    if (!s || !*s)
        return dflt;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (uint64_t)(*s - '0');
    return v;
}

int start_c(long *sp);

int start_c(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    uint64_t pages = parse(argc > 1 ? argv[1] : NULL, 512), cursor = 0;
    struct {
        long sec, nsec;
    } tick = { 0, 200 * 1000 * 1000 };

    if (pages < WINDOW || pages > MAX_PAGES)
        pages = 512;
    for (uint64_t p = 0; p < pages; p++)
        fill(p, 1);
    for (uint64_t n = 0;; n++) {
        uint64_t h = 0xcbf29ce484222325ull;

        for (uint64_t p = 0; p < pages; p++) {
            for (unsigned w = 0; w < PAGE_WORDS; w++) {
                if (buf[p][w] != pattern(p, w, gens[p])) {
                    say(n, " BAD page=", p, 10);
                    return 1;
                }
            }
        }
        for (unsigned k = 0; k < WINDOW; k++) {
            fill(cursor, gens[cursor] + 1);
            cursor = (cursor + 1) % pages;
        }
        for (uint64_t p = 0; p < pages; p++) {
            for (unsigned w = 0; w < PAGE_WORDS; w++)
                h = (h ^ buf[p][w]) * 0x100000001b3ull;
        }
        say(n, " sum=", h, 16);
        sys(SYS_nanosleep, (long)&tick, 0, 0);
    }
}

__asm__(".globl _start\n"
        "_start:\n"
        "    xor %rbp, %rbp\n"
        "    mov %rsp, %rdi\n"
        "    and $-16, %rsp\n"
        "    call start_c\n"
        "    mov %eax, %edi\n"
        "    mov $231, %eax\n"          /* exit_group */
        "    syscall\n"
        "    hlt\n");
