/* SPDX-License-Identifier: GPL-2.0-or-later */
/* KVM dirty page logging on the guest RAM slots. */
#include "vireo/dirty-log.h"
#include "vireo/kvm.h"
#include "vireo/util.h"

#define PAGE_SIZE 4096
#define BITS_PER_LONG (8 * sizeof(unsigned long))

gboolean dirty_log_enable(int vm_fd, const GuestMemory *mem, gboolean on, GError **error)
{
    for (unsigned i = 0; i < mem->nr_regions; i++) {
        const GuestRegion *r = &mem->regions[i];

        /* Same slot, address and size: KVM only changes the flags. */
        if (!kvm_set_memory_region(vm_fd, i, r->gpa, r->size, r->host,
                                   on ? KVM_MEM_LOG_DIRTY_PAGES : 0, error))
            return FALSE;
    }
    return TRUE;
}

gboolean dirty_log_sync(int vm_fd, const GuestMemory *mem, unsigned long *bitmap,
                        GError **error)
{
    for (unsigned i = 0; i < mem->nr_regions; i++) {
        const GuestRegion *r = &mem->regions[i];
        uint64_t pages = r->size / PAGE_SIZE, first = r->file_offset / PAGE_SIZE;
        /* KVM writes whole 64-bit words. */
        g_autofree unsigned long *slot = g_new0(unsigned long, (pages + 63) / 64 * 64 /
                                                                   BITS_PER_LONG);
        struct kvm_dirty_log log = { .slot = i, .dirty_bitmap = slot };

        if (KVM_IOCTL(vm_fd, KVM_GET_DIRTY_LOG, &log, error) < 0)
            return FALSE;
        if (first % BITS_PER_LONG == 0) {
            for (uint64_t w = 0; w < (pages + BITS_PER_LONG - 1) / BITS_PER_LONG; w++)
                bitmap[first / BITS_PER_LONG + w] |= slot[w];
            continue;
        }
        for (uint64_t p = 0; p < pages; p++) {
            if (slot[p / BITS_PER_LONG] & (1UL << (p % BITS_PER_LONG)))
                bitmap[(first + p) / BITS_PER_LONG] |= 1UL << ((first + p) % BITS_PER_LONG);
        }
    }
    return TRUE;
}
