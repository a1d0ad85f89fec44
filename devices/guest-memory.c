/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Pages of guest RAM written by device emulation, for migration. The
 * inline fast path is in include/vireo/guest-memory.h.
 */
#include "vireo/guest-memory.h"

#define BPL GUEST_MEMORY_BITS_PER_LONG

static uint64_t guest_memory_dirty_words(const GuestMemory *mem)
{
    return (mem->dev_dirty_pages + BPL - 1) / BPL;
}

void guest_memory_dirty_start(GuestMemory *mem)
{
    if (!mem->dev_dirty) {
        uint64_t end = 0;

        for (unsigned i = 0; i < mem->nr_regions; i++)
            end = MAX(end, mem->regions[i].file_offset + mem->regions[i].size);
        mem->dev_dirty_pages = (end + GUEST_MEMORY_PAGE_SIZE - 1) / GUEST_MEMORY_PAGE_SIZE;
        mem->dev_dirty = g_new0(unsigned long, guest_memory_dirty_words(mem));
    } else {
        for (uint64_t w = 0; w < guest_memory_dirty_words(mem); w++)
            __atomic_store_n(&mem->dev_dirty[w], 0, __ATOMIC_RELAXED);
    }
    /*
     * The caller reads every page after this (the first pass sends all
     * RAM); the full barrier orders the switch before those reads.
     */
    __atomic_store_n(&mem->dev_dirty_on, 1, __ATOMIC_SEQ_CST);
}

void guest_memory_dirty_stop(GuestMemory *mem)
{
    __atomic_store_n(&mem->dev_dirty_on, 0, __ATOMIC_SEQ_CST);
}

void guest_memory_dirty_collect(GuestMemory *mem, unsigned long *bitmap)
{
    if (!mem->dev_dirty)
        return;
    for (uint64_t w = 0; w < guest_memory_dirty_words(mem); w++) {
        /* Cheap read first: most words are clear. */
        if (!__atomic_load_n(&mem->dev_dirty[w], __ATOMIC_RELAXED))
            continue;
        /* Acquire: the device's write is visible before the page is read. */
        bitmap[w] |= __atomic_exchange_n(&mem->dev_dirty[w], 0, __ATOMIC_ACQ_REL);
    }
}

void guest_memory_dirty_free(GuestMemory *mem)
{
    g_clear_pointer(&mem->dev_dirty, g_free);
    mem->dev_dirty_pages = 0;
    mem->dev_dirty_on = 0;
}
