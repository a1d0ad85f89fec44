/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What every libFuzzer target here needs, whatever it drives: reading
 * its input as little-endian numbers and byte strings, and silencing the
 * logging of the code under test. Header-only, so that a target without
 * the fake machine of fuzz-virtio.h (fuzz-virtqueue.c) links nothing more.
 */
#ifndef VIREO_TESTS_FUZZ_COMMON_H
#define VIREO_TESTS_FUZZ_COMMON_H

#include <glib.h>
#include <stdint.h>
#include <string.h>

typedef struct FuzzInput {
    const uint8_t *p;
    size_t left;
} FuzzInput;

/* Up to @n bytes of the input as a little-endian number (0 past its end). */
static inline uint64_t fuzz_take(FuzzInput *in, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n && in->left; i++, in->p++, in->left--)
        v |= (uint64_t)in->p[0] << (8 * i);
    return v;
}

/* Copies up to @n bytes of the input to @buf; returns how many there were. */
static inline size_t fuzz_take_bytes(FuzzInput *in, void *buf, size_t n)
{
    n = MIN(n, in->left);
    memcpy(buf, in->p, n);
    in->p += n;
    in->left -= n;
    return n;
}

static inline void fuzz_ignore_log(const gchar *domain, GLogLevelFlags level,
                                   const gchar *message, gpointer data)
{
}

/*
 * Silences the code under test (guest warnings are expected); criticals
 * and errors still print, as they are bugs. Once per process: every call
 * of g_log_set_handler() adds a handler.
 */
static inline void fuzz_quiet_logs(void)
{
    static gboolean done;

    if (done)
        return;
    g_log_set_handler(G_LOG_DOMAIN, G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE |
                      G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG, fuzz_ignore_log, NULL);
    done = TRUE;
}

#endif
