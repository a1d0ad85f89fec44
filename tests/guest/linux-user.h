/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the freestanding Linux user-space helpers of the Linux test guest
 * (vsock-echo.c, migrate-counter.c) share: raw x86-64 system calls and the
 * two memory functions the compiler may call for structure copies and
 * zeroing. Each helper is one translation unit, so the definitions live
 * here.
 */
#ifndef VIREO_TESTS_GUEST_LINUX_USER_H
#define VIREO_TESTS_GUEST_LINUX_USER_H

#include <stddef.h>
#include <stdint.h>

static inline long sys(long n, long a, long b, long c)
{
    long ret;

    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}

void *memset(void *s, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);

void *memset(void *s, int c, size_t n)
{
    uint8_t *p = s;

    while (n--)
        *p++ = c;
    return s;
}

void *memcpy(void *d, const void *s, size_t n)
{
    uint8_t *p = d;
    const uint8_t *q = s;

    while (n--)
        *p++ = *q++;
    return d;
}

#endif
