/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest physical memory as the host sees it: a few contiguous regions,
 * each a range of guest physical addresses backed by host memory.
 *
 * Every lookup is bounds-checked: a guest-supplied address that is not
 * wholly inside one region gives NULL, never a pointer outside guest RAM.
 * The VMM backs the regions with a memfd (vmm/memory.c); device tests back
 * them with ordinary allocations.
 */
#ifndef VIREO_GUEST_MEMORY_H
#define VIREO_GUEST_MEMORY_H

#include <glib.h>
#include <stdint.h>
#include <string.h>

#define GUEST_MEMORY_MAX_REGIONS 4

typedef struct GuestRegion {
    uint64_t gpa;
    uint64_t size;
    uint8_t *host;
    uint64_t file_offset;       /* offset in the backing memfd */
} GuestRegion;

typedef struct GuestMemory {
    GuestRegion regions[GUEST_MEMORY_MAX_REGIONS];
    unsigned nr_regions;
    uint64_t ram_size;          /* sum of region sizes */
} GuestMemory;

/* Host pointer for [gpa, gpa + len), or NULL unless wholly inside one region. */
static inline void *guest_memory_ptr(const GuestMemory *mem, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < mem->nr_regions; i++) {
        const GuestRegion *r = &mem->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
            return r->host + (gpa - r->gpa);
    }
    return NULL;
}

static inline gboolean guest_memory_read(const GuestMemory *mem, uint64_t gpa, void *buf,
                                         uint64_t len)
{
    const void *p = guest_memory_ptr(mem, gpa, len);
    if (!p)
        return FALSE;
    memcpy(buf, p, len);
    return TRUE;
}

static inline gboolean guest_memory_write(const GuestMemory *mem, uint64_t gpa,
                                          const void *buf, uint64_t len)
{
    void *p = guest_memory_ptr(mem, gpa, len);
    if (!p)
        return FALSE;
    memcpy(p, buf, len);
    return TRUE;
}

#endif
