/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Guest memory for unit tests: one region of ordinary heap from address 0. */
#ifndef VIREO_TESTS_UNIT_TEST_RAM_H
#define VIREO_TESTS_UNIT_TEST_RAM_H

#include <glib.h>

#include "vireo/guest-memory.h"

typedef struct TestRam {
    GuestMemory mem;
    uint8_t *buf;
} TestRam;

static inline TestRam *test_ram_new(uint64_t size)
{
    TestRam *r = g_new0(TestRam, 1);

    r->buf = g_malloc0(size);
    r->mem.regions[0] = (GuestRegion){ .gpa = 0, .size = size, .host = r->buf };
    r->mem.nr_regions = 1;
    r->mem.ram_size = size;
    return r;
}

static inline void test_ram_free(TestRam *r)
{
    g_free(r->buf);
    g_free(r);
}

#endif
