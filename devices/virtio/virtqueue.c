/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Split virtqueues, device side. The contract is in
 * include/vireo/virtqueue.h; this file keeps to three rules:
 *
 * - Guest memory is reached only through host pointers that were checked
 *   to lie inside one RAM region for the whole length used (rings at
 *   enable, indirect tables and buffers per chain), never by arithmetic
 *   on an unchecked guest value.
 * - Every value read from the rings is read once into a local, checked,
 *   and only then used: the guest can rewrite the rings between two reads
 *   (the double-fetch bugs of many emulators).
 * - Every loop is bounded by a number we chose, not by the guest.
 *
 * Learned from, not copied: kvmtool virtio/core.c (and its fixes 31e0eac
 * and 3a13530: an index the guest controls, a queue used before set up),
 * QEMU hw/virtio/virtio.c (virtqueue_split_pop, the signalled_used logic)
 * and Firecracker's queue.rs.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vireo/util.h"
#include "vireo/virtqueue.h"

#define VIRTQ_STATE_FORMAT 1
#define VIRTQ_DESC_SIZE 16

/* A descriptor as it is laid out in guest memory (little-endian). */
typedef struct VirtqDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} VirtqDesc;
G_STATIC_ASSERT(sizeof(VirtqDesc) == VIRTQ_DESC_SIZE);

struct VirtQueue {
    const GuestMemory *mem;
    char *name;
    uint16_t max_size;
    /*
     * Bumped whenever the ring starts over (reset, enable, load), so that
     * an element popped before, completed late by asynchronous I/O, is
     * recognised and dropped instead of being written into the new ring.
     */
    uint64_t gen;

    /* Everything below is cleared by virtq_reset(). */
    VirtqConfig cfg;
    gboolean enabled;
    gboolean broken;
    gboolean indirect;          /* VIRTIO_F_RING_INDIRECT_DESC negotiated */
    gboolean event_idx;         /* VIRTIO_F_RING_EVENT_IDX negotiated */
    uint8_t *desc;              /* host addresses of the ring parts */
    uint8_t *avail;
    uint8_t *used;

    uint16_t last_avail_idx;    /* next available-ring entry to take */
    uint16_t shadow_avail_idx;  /* avail->idx when we last read it */
    uint16_t used_idx;          /* used->idx as we last published it */
    uint16_t pending;           /* used entries filled, not yet flushed */
    unsigned inuse;             /* popped and not yet pushed */

    gboolean notify;            /* available buffer notifications wanted */
    /*
     * avail_event as we last wrote it, and whether a full barrier has
     * followed that write (so a driver adding a buffer either saw it or
     * we will see the buffer): lets an empty pop skip the barrier.
     */
    uint16_t avail_event;
    gboolean avail_event_fenced;
    uint16_t signalled_used;    /* used_idx at the last needs_notification */
    gboolean signalled_valid;   /* FALSE once 65536 entries have gone by since */
    uint32_t unsignalled;       /* entries published since then */

    char error[192];
};

/* Sizes of the ring parts with their event-index fields (2.7, table). */
static uint64_t virtq_desc_bytes(uint16_t size)
{
    return (uint64_t)VIRTQ_DESC_SIZE * size;
}

static uint64_t virtq_avail_bytes(uint16_t size)
{
    return 6 + 2 * (uint64_t)size;
}

static uint64_t virtq_used_bytes(uint16_t size)
{
    return 6 + 8 * (uint64_t)size;
}

/*
 * Guest memory shared with running vCPUs is read and written with atomics
 * so that the compiler emits exactly one access of the right size; the
 * ring fields used this way are naturally aligned (checked at enable).
 */
static uint16_t virtq_load16(const uint8_t *p, int order)
{
    return GUINT16_FROM_LE(__atomic_load_n((const uint16_t *)p, order));
}

static void virtq_store16(uint8_t *p, uint16_t v, int order)
{
    __atomic_store_n((uint16_t *)p, GUINT16_TO_LE(v), order);
}

static void virtq_store32(uint8_t *p, uint32_t v)
{
    __atomic_store_n((uint32_t *)p, GUINT32_TO_LE(v), __ATOMIC_RELAXED);
}

static void virtq_mb(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* For migration: the used-ring bytes at @off that were just written. */
static void virtq_mark_used(const VirtQueue *vq, size_t off, size_t len)
{
    guest_memory_mark_dirty(vq->mem, vq->used + off, len);
}

/* The spec's vring_need_event(): did the index move past @event? */
static gboolean virtq_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

static void virtq_clear_state(VirtQueue *vq)
{
    vq->cfg = (VirtqConfig){ 0 };
    vq->enabled = vq->broken = vq->indirect = vq->event_idx = FALSE;
    vq->desc = vq->avail = vq->used = NULL;
    vq->last_avail_idx = vq->shadow_avail_idx = vq->used_idx = vq->pending = 0;
    vq->inuse = 0;
    vq->notify = TRUE;
    vq->avail_event = 0;
    vq->avail_event_fenced = FALSE;
    /* Nothing published yet: the first entry is checked against used_event. */
    vq->signalled_used = 0;
    vq->signalled_valid = TRUE;
    vq->unsignalled = 0;
    vq->error[0] = '\0';
    vq->gen++;
}

VirtQueue *virtq_new(const GuestMemory *mem, const char *name, uint16_t max_size)
{
    VirtQueue *vq = g_new0(VirtQueue, 1);

    g_assert(max_size >= 1 && max_size <= VIRTQ_MAX_SIZE && (max_size & (max_size - 1)) == 0);
    vq->mem = mem;
    vq->name = g_strdup(name);
    vq->max_size = max_size;
    virtq_clear_state(vq);
    return vq;
}

void virtq_free(VirtQueue *vq)
{
    if (!vq)
        return;
    g_free(vq->name);
    g_free(vq);
}

void virtq_reset(VirtQueue *vq)
{
    virtq_clear_state(vq);
}

gboolean virtq_is_enabled(const VirtQueue *vq)
{
    return vq->enabled;
}

gboolean virtq_is_broken(const VirtQueue *vq)
{
    return vq->broken;
}

const char *virtq_get_error(const VirtQueue *vq)
{
    return vq->error;
}

const char *virtq_get_name(const VirtQueue *vq)
{
    return vq->name;
}

uint16_t virtq_get_max_size(const VirtQueue *vq)
{
    return vq->max_size;
}

uint16_t virtq_get_size(const VirtQueue *vq)
{
    return vq->enabled ? vq->cfg.size : 0;
}

/* Records why the guest's queue is unusable and says so, rate-limited. */
static void G_GNUC_PRINTF(2, 3) virtq_set_error(VirtQueue *vq, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_vsnprintf(vq->error, sizeof(vq->error), fmt, ap);
    va_end(ap);
    vireo_guest_warn("virtqueue %s: %s", vq->name, vq->error);
}

/*
 * Checks @cfg against this queue and its guest memory; on success stores
 * the host addresses of the three parts, else writes the reason to @why.
 */
static gboolean virtq_check_config(const VirtQueue *vq, const VirtqConfig *cfg, uint8_t **desc,
                                   uint8_t **avail, uint8_t **used, char *why, size_t why_len)
{
    uint16_t size = cfg->size;

    if (!(cfg->features & (1ULL << VIRTQ_F_VERSION_1))) {
        g_snprintf(why, why_len, "VIRTIO_F_VERSION_1 not negotiated (legacy rings unsupported)");
        return FALSE;
    }
    if (size == 0 || (size & (size - 1)) != 0 || size > vq->max_size) {
        g_snprintf(why, why_len, "queue size %u is not a power of two from 1 to %u", size,
                   vq->max_size);
        return FALSE;
    }
    if (cfg->desc_addr % 16 || cfg->avail_addr % 2 || cfg->used_addr % 4) {
        g_snprintf(why, why_len,
                   "misaligned rings: descriptors 0x%" PRIx64 " (16), available 0x%" PRIx64
                   " (2), used 0x%" PRIx64 " (4)",
                   cfg->desc_addr, cfg->avail_addr, cfg->used_addr);
        return FALSE;
    }
    *desc = guest_memory_ptr(vq->mem, cfg->desc_addr, virtq_desc_bytes(size));
    *avail = guest_memory_ptr(vq->mem, cfg->avail_addr, virtq_avail_bytes(size));
    *used = guest_memory_ptr(vq->mem, cfg->used_addr, virtq_used_bytes(size));
    if (!*desc || !*avail || !*used) {
        g_snprintf(why, why_len,
                   "%s ring at 0x%" PRIx64 " (%" PRIu64 " bytes) is not inside one RAM region",
                   !*desc ? "descriptor" : !*avail ? "available" : "used",
                   !*desc ? cfg->desc_addr : !*avail ? cfg->avail_addr : cfg->used_addr,
                   !*desc ? virtq_desc_bytes(size)
                          : !*avail ? virtq_avail_bytes(size) : virtq_used_bytes(size));
        return FALSE;
    }
    /*
     * Host mappings keep guest alignment (regions start page-aligned), so
     * the atomic accesses to ring fields are aligned too.
     */
    g_assert(((uintptr_t)*avail & 1) == 0 && ((uintptr_t)*used & 3) == 0);
    return TRUE;
}

/* Starts the ring over with a checked configuration. */
static void virtq_start(VirtQueue *vq, const VirtqConfig *cfg, uint8_t *desc, uint8_t *avail,
                        uint8_t *used)
{
    virtq_clear_state(vq);
    vq->cfg = *cfg;
    vq->indirect = !!(cfg->features & (1ULL << VIRTQ_F_RING_INDIRECT_DESC));
    vq->event_idx = !!(cfg->features & (1ULL << VIRTQ_F_RING_EVENT_IDX));
    vq->desc = desc;
    vq->avail = avail;
    vq->used = used;
    vq->enabled = TRUE;
}

gboolean virtq_enable(VirtQueue *vq, const VirtqConfig *cfg)
{
    uint8_t *desc, *avail, *used;
    char why[sizeof(vq->error)];

    if (vq->enabled) {
        virtq_set_error(vq, "enabled again while running");
        return FALSE;
    }
    if (!virtq_check_config(vq, cfg, &desc, &avail, &used, why, sizeof(why))) {
        virtq_clear_state(vq);
        virtq_set_error(vq, "cannot enable: %s", why);
        return FALSE;
    }
    virtq_start(vq, cfg, desc, avail, used);
    return TRUE;
}

VirtqElement *virtq_element_new(const VirtQueue *vq)
{
    VirtqElement *elem = g_malloc0(sizeof(*elem) + vq->max_size * sizeof(struct iovec));

    elem->capacity = vq->max_size;
    elem->out_sg = elem->in_sg = elem->iov;
    return elem;
}

void virtq_element_free(VirtqElement *elem)
{
    g_free(elem);
}

/* --- popping --- */

/* Marks the queue broken; always returns -1 for virtq_pop(). */
#define virtq_break(vq, ...) \
    (virtq_set_error((vq), __VA_ARGS__), (vq)->broken = TRUE, -1)

/*
 * Reads avail->idx, once everything read before has been used up, and
 * returns how many entries are available, or -1 if the guest moved it
 * further than the ring can hold. A move backwards shows up here as a
 * jump of more than 32768 - the driver must never decrement it (2.7.6).
 */
static int virtq_fetch_avail(VirtQueue *vq)
{
    /* Acquire: the entries and descriptors it exposes are read after it. */
    uint16_t idx = virtq_load16(vq->avail + 2, __ATOMIC_ACQUIRE);
    uint16_t n = idx - vq->last_avail_idx;

    if (n > vq->cfg.size)
        return virtq_break(vq, "available index moved from %u to %u: back, or more than the "
                           "queue size %u ahead", vq->last_avail_idx, idx, vq->cfg.size);
    vq->shadow_avail_idx = idx;
    return n;
}

static void virtq_read_desc(const uint8_t *table, unsigned i, VirtqDesc *d)
{
    VirtqDesc raw;

    memcpy(&raw, table + (size_t)i * VIRTQ_DESC_SIZE, sizeof(raw));
    /*
     * The guest may rewrite the descriptor while we use it. This barrier
     * keeps the compiler from re-reading guest memory for a field later,
     * so the values we check are the values we use.
     */
    __asm__ __volatile__("" ::: "memory");
    d->addr = GUINT64_FROM_LE(raw.addr);
    d->len = GUINT32_FROM_LE(raw.len);
    d->flags = GUINT16_FROM_LE(raw.flags);
    d->next = GUINT16_FROM_LE(raw.next);
}

/* The region holding @gpa, or NULL (the same test as guest_memory_ptr()). */
static const GuestRegion *virtq_find_region(const GuestMemory *mem, uint64_t gpa)
{
    for (unsigned i = 0; i < mem->nr_regions; i++) {
        const GuestRegion *r = &mem->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size)
            return r;
    }
    return NULL;
}

/*
 * Appends the buffer [addr, addr + len) to @elem, one iovec per RAM region
 * it touches: a buffer crossing into an adjacent region is legal for the
 * guest, one reaching outside RAM is not. Returns NULL or why not.
 */
static const char *virtq_map_buffer(const VirtQueue *vq, VirtqElement *elem, uint64_t addr,
                                    uint32_t len, gboolean write)
{
    if (addr + (len - 1) < addr)
        return "wraps around the address space";
    while (len) {
        const GuestRegion *r = virtq_find_region(vq->mem, addr);
        unsigned n = elem->out_num + elem->in_num;
        uint64_t off, chunk;

        if (!r)
            return "is not inside RAM";
        if (n == vq->max_size)
            return "needs more iovecs than the queue's maximum size";
        off = addr - r->gpa;
        chunk = MIN((uint64_t)len, r->size - off);
        elem->iov[n].iov_base = r->host + off;
        elem->iov[n].iov_len = chunk;
        if (write)
            elem->in_num++;
        else
            elem->out_num++;
        addr += chunk;
        len -= chunk;
    }
    return NULL;
}

/* Where in the ring a chain went wrong, for the warning. */
typedef struct VirtqWhere {
    uint16_t avail_idx;
    uint16_t head;
    unsigned desc;
    gboolean indirect;
} VirtqWhere;

static int G_GNUC_PRINTF(3, 4) virtq_chain_fail(VirtQueue *vq, const VirtqWhere *w,
                                                const char *fmt, ...)
{
    char why[128];
    va_list ap;

    va_start(ap, fmt);
    g_vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return virtq_break(vq, "available entry %u (head %u), %sdescriptor %u: %s", w->avail_idx,
                       w->head, w->indirect ? "indirect " : "", w->desc, why);
}

/*
 * Follows the chain from @w->head into @elem. The spec forbids chains
 * longer than their table (2.7.5.3.1), so counting the descriptors visited
 * catches every loop after at most one pass over the table.
 */
static int virtq_walk_chain(VirtQueue *vq, VirtqElement *elem, VirtqWhere *w)
{
    const uint8_t *table = vq->desc;
    unsigned entries = vq->cfg.size, seen = 0;
    uint64_t total = 0;
    VirtqDesc d;

    w->desc = w->head;
    for (;;) {
        if (++seen > entries)
            return virtq_chain_fail(vq, w, "chain loops or is longer than its table (%u)",
                                    entries);
        virtq_read_desc(table, w->desc, &d);
        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            if (w->indirect)
                return virtq_chain_fail(vq, w, "indirect table inside an indirect table");
            if (!vq->indirect)
                return virtq_chain_fail(vq, w, "indirect table but INDIRECT_DESC not negotiated");
            if (d.flags & VIRTQ_DESC_F_NEXT)
                return virtq_chain_fail(vq, w, "indirect table with NEXT set");
            if (d.len == 0 || d.len % VIRTQ_DESC_SIZE || d.len / VIRTQ_DESC_SIZE > vq->max_size)
                return virtq_chain_fail(vq, w, "indirect table of %u bytes (need a multiple "
                                        "of 16, 1 to %u entries)", d.len, vq->max_size);
            table = guest_memory_ptr(vq->mem, d.addr, d.len);
            if (!table)
                return virtq_chain_fail(vq, w, "indirect table at 0x%" PRIx64 " (%u bytes) "
                                        "is not inside one RAM region", d.addr, d.len);
            /* The WRITE flag of this descriptor means nothing (2.7.5.3.2). */
            entries = d.len / VIRTQ_DESC_SIZE;
            seen = 0;
            w->indirect = TRUE;
            w->desc = 0;
            continue;
        }
        /*
         * A zero-length descriptor carries no data: the spec does not
         * forbid it, so it is accepted and skipped, address and WRITE
         * flag included (it cannot break the readable-then-writable order).
         */
        if (d.len) {
            gboolean write = !!(d.flags & VIRTQ_DESC_F_WRITE);
            const char *why;

            if (!write && elem->in_num)
                return virtq_chain_fail(vq, w, "device-readable buffer after a device-writable one");
            total += d.len;
            if (total > UINT32_MAX)
                return virtq_chain_fail(vq, w, "chain longer than 4 GiB - 1 in total");
            why = virtq_map_buffer(vq, elem, d.addr, d.len, write);
            if (why)
                return virtq_chain_fail(vq, w, "buffer at 0x%" PRIx64 " (%u bytes) %s",
                                        d.addr, d.len, why);
            if (write)
                elem->in_len += d.len;
            else
                elem->out_len += d.len;
        }
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            return 1;
        if (d.next >= entries)
            return virtq_chain_fail(vq, w, "next index %u outside the table (%u)", d.next,
                                    entries);
        w->desc = d.next;
    }
}

/*
 * Nothing is available. With notifications on and EVENT_IDX, the driver
 * kicks only when its new index passes avail_event, so publish the index
 * we wait for, and then look again: a buffer added before the driver could
 * see avail_event would otherwise never be kicked (2.7.10). Without
 * EVENT_IDX, virtq_enable_notification() did the same with the flag.
 */
static int virtq_pop_empty(VirtQueue *vq)
{
    if (!vq->notify || !vq->event_idx ||
        (vq->avail_event_fenced && vq->avail_event == vq->last_avail_idx))
        return 0;
    vq->avail_event = vq->last_avail_idx;
    virtq_store16(vq->used + 4 + 8 * (size_t)vq->cfg.size, vq->avail_event, __ATOMIC_RELAXED);
    virtq_mark_used(vq, 4 + 8 * (size_t)vq->cfg.size, 2);
    virtq_mb();
    vq->avail_event_fenced = TRUE;
    return virtq_fetch_avail(vq);
}

int virtq_pop(VirtQueue *vq, VirtqElement *elem)
{
    VirtqWhere w = { 0 };
    int r;

    g_assert(elem->capacity >= vq->max_size);
    elem->out_num = elem->in_num = 0;
    elem->out_len = elem->in_len = 0;
    elem->out_sg = elem->in_sg = elem->iov;
    elem->gen = 0;              /* pushing it does nothing unless we return 1 */
    if (!vq->enabled || guest_memory_is_quiesced(vq->mem))
        return 0;
    if (vq->broken)
        return -1;
    if (vq->last_avail_idx == vq->shadow_avail_idx) {
        r = virtq_fetch_avail(vq);
        if (r == 0)
            r = virtq_pop_empty(vq);
        if (r <= 0)
            return r;
    }
    /*
     * The driver owns at most size chains; more in flight means it reused
     * heads we still hold. It also bounds what a device allocates per request.
     */
    if (vq->inuse >= vq->cfg.size)
        return virtq_break(vq, "more than %u buffers in flight at available entry %u",
                           vq->cfg.size, vq->last_avail_idx);
    w.avail_idx = vq->last_avail_idx;
    w.head = virtq_load16(vq->avail + 4 + 2 * (size_t)(w.avail_idx & (vq->cfg.size - 1)),
                          __ATOMIC_RELAXED);
    if (w.head >= vq->cfg.size)
        return virtq_break(vq, "available entry %u: head index %u outside the queue (%u)",
                           w.avail_idx, w.head, vq->cfg.size);
    r = virtq_walk_chain(vq, elem, &w);
    if (r < 0) {
        elem->out_num = elem->in_num = 0;
        elem->out_len = elem->in_len = 0;
        return r;
    }
    elem->head = w.head;
    elem->out_sg = elem->iov;
    elem->in_sg = elem->iov + elem->out_num;
    elem->gen = vq->gen;
    elem->avail_idx = w.avail_idx;
    vq->last_avail_idx++;
    vq->inuse++;
    return 1;
}

void virtq_unpop(VirtQueue *vq, const VirtqElement *elem)
{
    if (elem->gen != vq->gen)
        return;
    g_assert(elem->avail_idx == (uint16_t)(vq->last_avail_idx - 1) && vq->inuse > 0);
    vq->last_avail_idx--;
    vq->inuse--;
}

/* --- returning buffers --- */

void virtq_fill(VirtQueue *vq, const VirtqElement *elem, uint32_t written)
{
    uint8_t *entry;

    /*
     * The device wrote this before filling; stale elements too, as their
     * buffers are still guest RAM that a migration must carry.
     */
    guest_memory_mark_iov_dirty(vq->mem, elem->in_sg, elem->in_num, MIN(written, elem->in_len));
    if (elem->gen != vq->gen)
        return;                 /* popped before a reset or load */
    g_assert(vq->inuse > 0);
    vq->inuse--;
    if (vq->broken)
        return;
    entry = vq->used + 4 + 8 * (size_t)((vq->used_idx + vq->pending) & (vq->cfg.size - 1));
    virtq_store32(entry, elem->head);
    virtq_store32(entry + 4, MIN(written, elem->in_len));
    guest_memory_mark_dirty(vq->mem, entry, 8);
    vq->pending++;
}

void virtq_flush(VirtQueue *vq)
{
    uint16_t idx;

    if (!vq->pending)
        return;
    if (vq->broken) {
        vq->pending = 0;
        return;
    }
    idx = vq->used_idx + vq->pending;
    /* Release: the driver must see the entries (id and len) before the index (2.7.8). */
    virtq_store16(vq->used + 2, idx, __ATOMIC_RELEASE);
    virtq_mark_used(vq, 2, 2);
    vq->used_idx = idx;
    vq->unsignalled += vq->pending;
    if (vq->unsignalled > 0xffff)
        vq->signalled_valid = FALSE;    /* 16-bit indices can no longer tell */
    vq->pending = 0;
}

void virtq_push(VirtQueue *vq, const VirtqElement *elem, uint32_t written)
{
    virtq_fill(vq, elem, written);
    virtq_flush(vq);
}

/* --- notifications --- */

gboolean virtq_needs_notification(VirtQueue *vq)
{
    uint16_t old = vq->signalled_used, now = vq->used_idx;
    gboolean valid = vq->signalled_valid;

    if (!vq->enabled || vq->broken)
        return FALSE;
    /*
     * The used index we published must be visible before we read the
     * driver's suppression fields: a driver that re-enabled interrupts and
     * then saw the old index would otherwise wait for an interrupt we skip.
     */
    virtq_mb();
    vq->signalled_used = now;
    vq->signalled_valid = TRUE;
    vq->unsignalled = 0;
    if (valid && old == now)
        return FALSE;
    if (!vq->event_idx)
        return !(virtq_load16(vq->avail, __ATOMIC_RELAXED) & VIRTQ_AVAIL_F_NO_INTERRUPT);
    if (!valid)
        return TRUE;
    return virtq_need_event(virtq_load16(vq->avail + 4 + 2 * (size_t)vq->cfg.size,
                                         __ATOMIC_RELAXED), now, old);
}

void virtq_disable_notification(VirtQueue *vq)
{
    if (!vq->enabled || vq->broken || !vq->notify || guest_memory_is_quiesced(vq->mem))
        return;
    vq->notify = FALSE;
    if (vq->event_idx) {
        /*
         * An avail_event just behind the next entry to take is one the
         * driver has already passed, so it stops kicking until its index
         * wraps (the spec leaves flags at 0 with EVENT_IDX).
         */
        vq->avail_event = vq->last_avail_idx - 1;
        vq->avail_event_fenced = FALSE;
        virtq_store16(vq->used + 4 + 8 * (size_t)vq->cfg.size, vq->avail_event,
                      __ATOMIC_RELAXED);
        virtq_mark_used(vq, 4 + 8 * (size_t)vq->cfg.size, 2);
    } else {
        virtq_store16(vq->used, VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
        virtq_mark_used(vq, 0, 2);
    }
}

gboolean virtq_enable_notification(VirtQueue *vq)
{
    /* Quiesced: the device stops here and is kicked when the VM goes on. */
    if (!vq->enabled || vq->broken || guest_memory_is_quiesced(vq->mem))
        return FALSE;
    vq->notify = TRUE;
    if (vq->event_idx) {
        vq->avail_event = vq->last_avail_idx;
        virtq_store16(vq->used + 4 + 8 * (size_t)vq->cfg.size, vq->avail_event,
                      __ATOMIC_RELAXED);
        virtq_mark_used(vq, 4 + 8 * (size_t)vq->cfg.size, 2);
    } else {
        virtq_store16(vq->used, 0, __ATOMIC_RELAXED);
        virtq_mark_used(vq, 0, 2);
    }
    /* Store then load: without a full barrier both sides could miss the other. */
    virtq_mb();
    vq->avail_event_fenced = vq->event_idx;
    return virtq_load16(vq->avail + 2, __ATOMIC_ACQUIRE) != vq->last_avail_idx;
}

/* --- copying --- */

static size_t virtq_iov_copy(const struct iovec *iov, unsigned n, size_t offset, void *buf,
                             size_t len, gboolean to_iov)
{
    uint8_t *p = buf;
    size_t done = 0;

    for (unsigned i = 0; i < n && done < len; i++) {
        size_t chunk;

        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        chunk = MIN(iov[i].iov_len - offset, len - done);
        if (to_iov)
            memcpy((uint8_t *)iov[i].iov_base + offset, p + done, chunk);
        else
            memcpy(p + done, (const uint8_t *)iov[i].iov_base + offset, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

size_t virtq_element_read(const VirtqElement *elem, size_t offset, void *buf, size_t len)
{
    return virtq_iov_copy(elem->out_sg, elem->out_num, offset, buf, len, FALSE);
}

size_t virtq_element_write(const VirtqElement *elem, size_t offset, const void *buf, size_t len)
{
    return virtq_iov_copy(elem->in_sg, elem->in_num, offset, (void *)buf, len, TRUE);
}

/* --- state --- */

/* "<prefix><name>" in @buf, which has room for any field name. */
static const char *virtq_field(char *buf, const char *prefix, const char *name)
{
    int n = g_snprintf(buf, STATE_MAX_NAME + 1, "%s%s", prefix, name);

    g_assert(n > 0 && n <= STATE_MAX_NAME);
    return buf;
}

void virtq_save(const VirtQueue *vq, StateWriter *w, const char *prefix)
{
    char f[STATE_MAX_NAME + 1];

    /* In-flight requests cannot be migrated: the device drains them first. */
    g_assert(vq->inuse == 0 && vq->pending == 0);
    state_write_u8(w, virtq_field(f, prefix, "format"), VIRTQ_STATE_FORMAT);
    state_write_u8(w, virtq_field(f, prefix, "enabled"), vq->enabled);
    state_write_u8(w, virtq_field(f, prefix, "broken"), vq->broken);
    state_write_u16(w, virtq_field(f, prefix, "size"), vq->cfg.size);
    state_write_u64(w, virtq_field(f, prefix, "desc"), vq->cfg.desc_addr);
    state_write_u64(w, virtq_field(f, prefix, "avail"), vq->cfg.avail_addr);
    state_write_u64(w, virtq_field(f, prefix, "used"), vq->cfg.used_addr);
    state_write_u64(w, virtq_field(f, prefix, "features"), vq->cfg.features);
    state_write_u16(w, virtq_field(f, prefix, "last-avail"), vq->last_avail_idx);
    state_write_u16(w, virtq_field(f, prefix, "used-idx"), vq->used_idx);
    state_write_u8(w, virtq_field(f, prefix, "notify"), vq->notify);
    state_write_u16(w, virtq_field(f, prefix, "signalled-used"), vq->signalled_used);
    state_write_u8(w, virtq_field(f, prefix, "signalled-valid"), vq->signalled_valid);
}

gboolean virtq_load(VirtQueue *vq, StateReader *r, const char *prefix, GError **error)
{
    char f[STATE_MAX_NAME + 1];
    uint8_t format, enabled, broken, notify, signalled_valid;
    uint16_t last_avail, used_idx, signalled_used;
    VirtqConfig cfg = { 0 };
    uint8_t *desc = NULL, *avail = NULL, *used = NULL;
    char why[sizeof(vq->error)];

    if (!state_read_u8(r, virtq_field(f, prefix, "format"), &format, error))
        return FALSE;
    if (format < 1 || format > VIRTQ_STATE_FORMAT) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "virtqueue %s: state format %u, this build reads 1 to %u", vq->name,
                    format, VIRTQ_STATE_FORMAT);
        return FALSE;
    }
    if (!state_read_u8(r, virtq_field(f, prefix, "enabled"), &enabled, error) ||
        !state_read_u8(r, virtq_field(f, prefix, "broken"), &broken, error) ||
        !state_read_u16(r, virtq_field(f, prefix, "size"), &cfg.size, error) ||
        !state_read_u64(r, virtq_field(f, prefix, "desc"), &cfg.desc_addr, error) ||
        !state_read_u64(r, virtq_field(f, prefix, "avail"), &cfg.avail_addr, error) ||
        !state_read_u64(r, virtq_field(f, prefix, "used"), &cfg.used_addr, error) ||
        !state_read_u64(r, virtq_field(f, prefix, "features"), &cfg.features, error) ||
        !state_read_u16(r, virtq_field(f, prefix, "last-avail"), &last_avail, error) ||
        !state_read_u16(r, virtq_field(f, prefix, "used-idx"), &used_idx, error) ||
        !state_read_u8(r, virtq_field(f, prefix, "notify"), &notify, error) ||
        !state_read_u16(r, virtq_field(f, prefix, "signalled-used"), &signalled_used, error) ||
        !state_read_u8(r, virtq_field(f, prefix, "signalled-valid"), &signalled_valid, error))
        return FALSE;

    if (enabled > 1 || broken > 1 || notify > 1 || signalled_valid > 1 || (broken && !enabled)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "virtqueue %s: bad flags (enabled %u, broken %u, notify %u, "
                    "signalled-valid %u)", vq->name, enabled, broken, notify, signalled_valid);
        return FALSE;
    }
    if (!enabled) {
        virtq_clear_state(vq);
        return TRUE;
    }
    if (!virtq_check_config(vq, &cfg, &desc, &avail, &used, why, sizeof(why))) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE, "virtqueue %s: %s",
                    vq->name, why);
        return FALSE;
    }
    /*
     * Nothing was in flight at save, so every chain taken was returned:
     * a working queue has taken exactly as many as it has used.
     */
    if (!broken && last_avail != used_idx) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "virtqueue %s: %u chains taken but %u returned", vq->name, last_avail,
                    used_idx);
        return FALSE;
    }

    virtq_start(vq, &cfg, desc, avail, used);
    vq->broken = broken;
    if (broken)
        g_snprintf(vq->error, sizeof(vq->error), "broken before the state was saved");
    vq->last_avail_idx = vq->shadow_avail_idx = last_avail;
    vq->used_idx = used_idx;
    vq->notify = notify;
    vq->signalled_used = signalled_used;
    vq->signalled_valid = signalled_valid;
    return TRUE;
}
