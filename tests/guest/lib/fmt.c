/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "fmt.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    char *buf;
    size_t size;
    size_t len;
} FmtOut;

static void fmt_put(FmtOut *o, char c)
{
    if (o->len + 1 < o->size) {
        o->buf[o->len] = c;
    }
    o->len++;
}

static void fmt_pad(FmtOut *o, char c, int n)
{
    while (n-- > 0) {
        fmt_put(o, c);
    }
}

static void fmt_number(FmtOut *o, uint64_t v, unsigned base, bool upper,
                       bool negative, int width, bool zero, bool left)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0;

    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);

    int total = n + (negative ? 1 : 0);
    if (!left && !zero) {
        fmt_pad(o, ' ', width - total);
    }
    if (negative) {
        fmt_put(o, '-');
    }
    if (!left && zero) {
        fmt_pad(o, '0', width - total);
    }
    while (n) {
        fmt_put(o, tmp[--n]);
    }
    if (left) {
        fmt_pad(o, ' ', width - total);
    }
}

size_t fmt_vsnprint(char *buf, size_t size, const char *fmt, va_list ap)
{
    FmtOut o = { .buf = buf, .size = size, .len = 0 };

    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            fmt_put(&o, *p);
            continue;
        }
        p++;

        bool left = false, zero = false;
        for (;; p++) {
            if (*p == '-') {
                left = true;
            } else if (*p == '0') {
                zero = true;
            } else {
                break;
            }
        }
        int width = 0;
        if (*p == '*') {
            width = va_arg(ap, int);
            p++;
        }
        while (*p >= '0' && *p <= '9') {
            width = width * 10 + (*p++ - '0');
        }
        int prec = -1;
        if (*p == '.') {
            p++;
            prec = 0;
            if (*p == '*') {
                prec = va_arg(ap, int);
                p++;
            }
            while (*p >= '0' && *p <= '9') {
                prec = prec * 10 + (*p++ - '0');
            }
        }
        int lng = 0;
        while (*p == 'l' || *p == 'z') {
            lng++;
            p++;
        }

        switch (*p) {
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            uint64_t mag = v < 0 ? -(uint64_t)v : (uint64_t)v;
            fmt_number(&o, mag, 10, false, v < 0, width, zero, left);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            fmt_number(&o, v, *p == 'u' ? 10 : 16, *p == 'X', false,
                       width, zero, left);
            break;
        }
        case 'p':
            fmt_put(&o, '0');
            fmt_put(&o, 'x');
            fmt_number(&o, (uintptr_t)va_arg(ap, void *), 16, false, false,
                       width, zero, left);
            break;
        case 'c':
            fmt_pad(&o, ' ', left ? 0 : width - 1);
            fmt_put(&o, (char)va_arg(ap, int));
            fmt_pad(&o, ' ', left ? width - 1 : 0);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            int n = 0;
            if (!s) {
                s = "(null)";
            }
            while (s[n] && (prec < 0 || n < prec)) {
                n++;
            }
            fmt_pad(&o, ' ', left ? 0 : width - n);
            for (int i = 0; i < n; i++) {
                fmt_put(&o, s[i]);
            }
            fmt_pad(&o, ' ', left ? width - n : 0);
            break;
        }
        case '%':
            fmt_put(&o, '%');
            break;
        case '\0':
            p--;
            break;
        default:
            fmt_put(&o, '%');
            fmt_put(&o, *p);
            break;
        }
    }
    if (size) {
        buf[o.len < size ? o.len : size - 1] = '\0';
    }
    return o.len;
}

size_t fmt_snprint(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    n = fmt_vsnprint(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
