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
#include <sys/uio.h>

#define GUEST_MEMORY_MAX_REGIONS 4

typedef struct GuestRegion {
    uint64_t gpa;
    uint64_t size;
    uint8_t *host;
    uint64_t file_offset;       /* offset in the backing memfd */
} GuestRegion;

#define GUEST_MEMORY_PAGE_SIZE 4096
#define GUEST_MEMORY_BITS_PER_LONG (8 * sizeof(unsigned long))

typedef struct GuestMemory {
    GuestRegion regions[GUEST_MEMORY_MAX_REGIONS];
    unsigned nr_regions;
    uint64_t ram_size;          /* sum of region sizes */
    /*
     * Pages written by device emulation while migration tracks them (KVM's
     * dirty log sees only vCPU writes), one bit per page of the backing
     * memfd. Allocated by the first guest_memory_dirty_start(), then kept
     * until guest_memory_dirty_free(): a device thread may still be setting
     * a bit when tracking is switched off.
     */
    unsigned long *dev_dirty;
    uint64_t dev_dirty_pages;
    gint dev_dirty_on;          /* atomic */
    /*
     * Atomic: while set, virtqueues take no new requests and write no
     * notification fields, so device emulation leaves RAM alone (the VM
     * is stopped and its RAM and device state are being captured).
     */
    gint dev_quiesced;
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

/*
 * Device-side dirty tracking (devices/guest-memory.c). start and stop are
 * called by the migration source (any thread); collect moves the bits set
 * since the last collect into @bitmap (memfd page numbers, ORed in).
 */
void guest_memory_dirty_start(GuestMemory *mem);
void guest_memory_dirty_stop(GuestMemory *mem);
void guest_memory_dirty_collect(GuestMemory *mem, unsigned long *bitmap);
void guest_memory_dirty_free(GuestMemory *mem);

/* Inline so that users of the virtqueue library need no other object. */
static inline void guest_memory_mark_dirty_slow(const GuestMemory *mem, const void *host,
                                                size_t len)
{
    const uint8_t *p = host;

    if (!mem->dev_dirty)
        return;
    /* A range may run on into the next region (a balloon run at 4 GiB). */
    while (len) {
        const GuestRegion *r = NULL;
        uint64_t off, chunk, first, last;

        for (unsigned i = 0; i < mem->nr_regions && !r; i++) {
            if (p >= mem->regions[i].host &&
                (uint64_t)(p - mem->regions[i].host) < mem->regions[i].size)
                r = &mem->regions[i];
        }
        if (!r)
            return;
        off = p - r->host;
        chunk = MIN((uint64_t)len, r->size - off);
        first = (r->file_offset + off) / GUEST_MEMORY_PAGE_SIZE;
        last = (r->file_offset + off + chunk - 1) / GUEST_MEMORY_PAGE_SIZE;
        for (uint64_t pg = first; pg <= last && pg < mem->dev_dirty_pages; pg++)
            __atomic_fetch_or(&mem->dev_dirty[pg / GUEST_MEMORY_BITS_PER_LONG],
                              1UL << (pg % GUEST_MEMORY_BITS_PER_LONG), __ATOMIC_RELEASE);
        p += chunk;
        len -= chunk;
    }
}

/*
 * Records that a device wrote [host, host + len) of guest RAM (a host
 * pointer into a region, e.g. from a virtqueue element). Call it after the
 * write: a page collected and sent between write and mark is marked again.
 * Any thread; one predictable branch while migration is not running.
 */
static inline void guest_memory_mark_dirty(const GuestMemory *mem, const void *host, size_t len)
{
    if (G_LIKELY(!__atomic_load_n(&mem->dev_dirty_on, __ATOMIC_ACQUIRE)) || !len)
        return;
    guest_memory_mark_dirty_slow(mem, host, len);
}

/* The first @len bytes of @iov (device-writable buffers) as written. */
static inline void guest_memory_mark_iov_dirty(const GuestMemory *mem, const struct iovec *iov,
                                               unsigned n, size_t len)
{
    if (G_LIKELY(!__atomic_load_n(&mem->dev_dirty_on, __ATOMIC_ACQUIRE)))
        return;
    for (unsigned i = 0; i < n && len; i++) {
        size_t chunk = MIN(len, iov[i].iov_len);

        guest_memory_mark_dirty_slow(mem, iov[i].iov_base, chunk);
        len -= chunk;
    }
}

static inline gboolean guest_memory_is_quiesced(const GuestMemory *mem)
{
    return G_UNLIKELY(__atomic_load_n(&mem->dev_quiesced, __ATOMIC_ACQUIRE));
}

static inline void guest_memory_set_quiesced(GuestMemory *mem, gboolean on)
{
    __atomic_store_n(&mem->dev_quiesced, on ? 1 : 0, __ATOMIC_RELEASE);
}

#endif
