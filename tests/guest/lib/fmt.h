/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small printf: %s %c %d %i %u %x %X %p %%, length modifiers l, ll, z,
 * flags '-' and '0', a field width, and a precision for %s (%.4s);
 * width and precision may be '*'.
 * Formats into a buffer only; test.h prints. Usable at CPL3.
 */
#ifndef GUEST_FMT_H
#define GUEST_FMT_H

#include <stdarg.h>
#include <stddef.h>

/* Like vsnprintf: always NUL-terminates (size > 0), returns chars written. */
size_t fmt_vsnprint(char *buf, size_t size, const char *fmt, va_list ap);
size_t fmt_snprint(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
