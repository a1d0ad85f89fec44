/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Freestanding basics: string functions, atomics, spinlocks. */
#ifndef GUEST_UTIL_H
#define GUEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTIL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* gcc may emit calls to these four even with -ffreestanding. */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

int util_strncmp(const char *a, const char *b, size_t n);

/* Parse an unsigned number (decimal, or hex with 0x) of at most len chars. */
bool util_parse_u64(const char *s, size_t len, uint64_t *out);

static inline void util_pause(void)
{
    __asm__ volatile("pause" : : : "memory");
}

/*
 * Spinlock that also disables interrupts on this CPU while held, so an
 * interrupt handler on the same CPU can take it too.
 */
typedef struct {
    volatile uint32_t locked;
} Spinlock;

uint64_t util_lock_irqsave(Spinlock *lock);
void util_unlock_irqrestore(Spinlock *lock, uint64_t flags);

#endif
