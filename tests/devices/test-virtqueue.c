/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The split virtqueue library against a driver that builds its rings as
 * Linux's drivers/virtio/virtio_ring.c does (free list through desc.next,
 * indirect tables for multi-buffer requests, avail/used index shadows,
 * used_event and avail_event handling), in guest memory made of guarded
 * mappings: every region has PROT_NONE pages on both sides, so a read or
 * write outside guest RAM kills the test instead of passing unnoticed.
 *
 * Guest memory: region 0 (4 MiB at 0) and region 1 (64 KiB) are adjacent
 * in guest physical space but not on the host; region 2 (64 KiB at 8 MiB)
 * lies after a hole.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "vireo/virtqueue.h"

#define KIB 1024ULL
#define MIB (1024 * KIB)

#define R0_GPA 0ULL
#define R0_SIZE (4 * MIB)
#define R1_GPA (R0_GPA + R0_SIZE)       /* adjacent to region 0 */
#define R1_SIZE (64 * KIB)
#define R2_GPA (8 * MIB)                /* after a hole */
#define R2_SIZE (64 * KIB)
#define HOLE_GPA (R1_GPA + R1_SIZE)     /* not RAM */

#define RING_GPA 0x10000ULL             /* descriptor table; rings follow */
#define INDIRECT_GPA 0x20000ULL         /* one table per head */
#define INDIRECT_STRIDE 1024            /* 64 entries */
#define BIG_TABLE_GPA 0x180000ULL       /* room for 1024 entries */
#define SLOT_GPA 0x200000ULL            /* data buffers, one slot per request */
#define SLOT_SIZE (8 * KIB)
#define NR_SLOTS 256

#define F_V1 (1ULL << VIRTQ_F_VERSION_1)
#define F_INDIRECT (1ULL << VIRTQ_F_RING_INDIRECT_DESC)
#define F_EVENT (1ULL << VIRTQ_F_RING_EVENT_IDX)

/* --- guarded guest memory --- */

typedef struct TestMem {
    GuestMemory mem;
    uint8_t *maps[GUEST_MEMORY_MAX_REGIONS];
    size_t map_lens[GUEST_MEMORY_MAX_REGIONS];
} TestMem;

static void test_mem_add(TestMem *tm, uint64_t gpa, size_t size, int prot)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = size + 2 * page;
    uint8_t *map = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    unsigned i = tm->mem.nr_regions++;

    assert_true(map != MAP_FAILED);
    if (prot != PROT_NONE)
        assert_int_equal(mprotect(map + page, size, prot), 0);
    tm->maps[i] = map;
    tm->map_lens[i] = len;
    tm->mem.regions[i] = (GuestRegion){ .gpa = gpa, .size = size, .host = map + page };
    tm->mem.ram_size += size;
}

static TestMem *test_mem_new(void)
{
    TestMem *tm = g_new0(TestMem, 1);

    test_mem_add(tm, R0_GPA, R0_SIZE, PROT_READ | PROT_WRITE);
    test_mem_add(tm, R1_GPA, R1_SIZE, PROT_READ | PROT_WRITE);
    test_mem_add(tm, R2_GPA, R2_SIZE, PROT_READ | PROT_WRITE);
    return tm;
}

static void test_mem_free(TestMem *tm)
{
    for (unsigned i = 0; i < tm->mem.nr_regions; i++)
        munmap(tm->maps[i], tm->map_lens[i]);
    g_free(tm);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TestMem, test_mem_free)

static uint8_t *host(TestMem *tm, uint64_t gpa)
{
    uint8_t *p = guest_memory_ptr(&tm->mem, gpa, 1);

    assert_non_null(p);
    return p;
}

/* Is [p, p + len) inside one region's host mapping? */
static gboolean in_guest_ram(const TestMem *tm, const void *p, size_t len)
{
    for (unsigned i = 0; i < tm->mem.nr_regions; i++) {
        const GuestRegion *r = &tm->mem.regions[i];
        if ((const uint8_t *)p >= r->host && (const uint8_t *)p - r->host < (ptrdiff_t)r->size &&
            len <= r->size - (uint64_t)((const uint8_t *)p - r->host))
            return TRUE;
    }
    return FALSE;
}

static uint16_t rd16(const uint8_t *p)
{
    return GUINT16_FROM_LE(__atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE));
}

static void wr16(uint8_t *p, uint16_t v)
{
    __atomic_store_n((uint16_t *)p, GUINT16_TO_LE(v), __ATOMIC_RELEASE);
}

static uint32_t rd32(const uint8_t *p)
{
    return GUINT32_FROM_LE(__atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE));
}

static void mb(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void write_desc(uint8_t *table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                       uint16_t next)
{
    uint8_t *d = table + 16 * (size_t)i;

    vireo_le_store(d, 8, addr);
    vireo_le_store(d + 8, 4, len);
    vireo_le_store(d + 12, 2, flags);
    vireo_le_store(d + 14, 2, next);
}

static uint16_t desc_flags(const uint8_t *table, unsigned i)
{
    return vireo_le_load(table + 16 * (size_t)i + 12, 2);
}

static uint16_t desc_next(const uint8_t *table, unsigned i)
{
    return vireo_le_load(table + 16 * (size_t)i + 14, 2);
}

/* The spec's vring_need_event(), the reference for notification decisions. */
static gboolean need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

/* --- the driver, after Linux's virtio_ring.c (split ring) --- */

typedef struct TBuf {
    uint64_t gpa;
    uint32_t len;
} TBuf;

typedef struct Drv {
    TestMem *tm;
    uint16_t num;
    uint64_t features;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    uint8_t *desc, *avail, *used;
    gboolean event;
    uint16_t free_head, num_free;
    uint16_t avail_idx_shadow, num_added, last_used_idx;
    uint16_t avail_flags_shadow;
    struct {
        gboolean busy;
        gboolean indirect;
        unsigned ndesc;
        uint32_t token;
    } state[VIRTQ_MAX_SIZE];
} Drv;

/* Rings at @desc_gpa in the layout vring_init() uses (used ring 4-aligned). */
static void drv_init(Drv *d, TestMem *tm, uint16_t num, uint64_t features, uint64_t desc_gpa)
{
    memset(d, 0, sizeof(*d));
    d->tm = tm;
    d->num = num;
    d->features = features;
    d->event = !!(features & F_EVENT);
    d->desc_gpa = desc_gpa;
    d->avail_gpa = desc_gpa + 16ULL * num;
    d->used_gpa = VIREO_ALIGN_UP(d->avail_gpa + 6 + 2ULL * num, 4);
    d->desc = host(tm, d->desc_gpa);
    d->avail = host(tm, d->avail_gpa);
    d->used = host(tm, d->used_gpa);
    memset(d->desc, 0, 16ULL * num);
    memset(d->avail, 0, 6 + 2ULL * num);
    memset(d->used, 0, 6 + 8ULL * num);
    for (unsigned i = 0; i + 1 < num; i++)
        write_desc(d->desc, i, 0, 0, 0, i + 1);
    d->num_free = num;
}

static VirtqConfig drv_config(const Drv *d)
{
    return (VirtqConfig){
        .size = d->num, .desc_addr = d->desc_gpa, .avail_addr = d->avail_gpa,
        .used_addr = d->used_gpa, .features = d->features,
    };
}

static uint8_t *drv_used_event(Drv *d)
{
    return d->avail + 4 + 2 * (size_t)d->num;
}

static uint8_t *drv_avail_event(Drv *d)
{
    return d->used + 4 + 8 * (size_t)d->num;
}

/*
 * virtqueue_add_split(): @n_out device-readable then @n_in device-writable
 * buffers; an indirect table when asked, allowed and more than one buffer.
 * Returns the head, or -1 when the ring has no room.
 */
static int drv_add(Drv *d, const TBuf *bufs, unsigned n_out, unsigned n_in, uint32_t token,
                   gboolean indirect)
{
    unsigned total = n_out + n_in, head = d->free_head, i, prev = 0;
    gboolean use_indirect = indirect && (d->features & F_INDIRECT) && total > 1;
    uint8_t *table;

    assert_true(total >= 1);
    if (d->num_free < (use_indirect ? 1 : total))
        return -1;
    if (use_indirect) {
        uint64_t table_gpa = INDIRECT_GPA + (uint64_t)head * INDIRECT_STRIDE;

        assert_true(total * 16 <= INDIRECT_STRIDE);
        table = host(d->tm, table_gpa);
        for (i = 0; i < total; i++)
            write_desc(table, i, bufs[i].gpa, bufs[i].len,
                       VIRTQ_DESC_F_NEXT | (i >= n_out ? VIRTQ_DESC_F_WRITE : 0), i + 1);
        write_desc(table, total - 1, bufs[total - 1].gpa, bufs[total - 1].len,
                   total - 1 >= n_out ? VIRTQ_DESC_F_WRITE : 0, 0);
        /* The free-list link stays in next, as Linux leaves it. */
        write_desc(d->desc, head, table_gpa, total * 16, VIRTQ_DESC_F_INDIRECT,
                   desc_next(d->desc, head));
        d->free_head = desc_next(d->desc, head);
        d->num_free--;
    } else {
        i = head;
        for (unsigned k = 0; k < total; k++) {
            uint16_t next = desc_next(d->desc, i);
            write_desc(d->desc, i, bufs[k].gpa, bufs[k].len,
                       VIRTQ_DESC_F_NEXT | (k >= n_out ? VIRTQ_DESC_F_WRITE : 0), next);
            prev = i;
            i = next;
        }
        write_desc(d->desc, prev, bufs[total - 1].gpa, bufs[total - 1].len,
                   total - 1 >= n_out ? VIRTQ_DESC_F_WRITE : 0, desc_next(d->desc, prev));
        d->free_head = i;
        d->num_free -= total;
    }
    d->state[head].busy = TRUE;
    d->state[head].indirect = use_indirect;
    d->state[head].ndesc = use_indirect ? 1 : total;
    d->state[head].token = token;
    wr16(d->avail + 4 + 2 * (size_t)(d->avail_idx_shadow & (d->num - 1)), head);
    d->avail_idx_shadow++;
    wr16(d->avail + 2, d->avail_idx_shadow);   /* release: after the ring entry */
    d->num_added++;
    return head;
}

/* virtqueue_kick_prepare_split(): does the device want a notification? */
static gboolean drv_kick_prepare(Drv *d)
{
    uint16_t new_idx = d->avail_idx_shadow, old_idx = new_idx - d->num_added;

    mb();
    d->num_added = 0;
    if (d->event)
        return need_event(rd16(drv_avail_event(d)), new_idx, old_idx);
    return !(rd16(d->used) & VIRTQ_USED_F_NO_NOTIFY);
}

/* virtqueue_get_buf_ctx_split(): the next used buffer's token, or -1. */
static int64_t drv_get_buf(Drv *d, uint32_t *len)
{
    const uint8_t *e;
    uint32_t id;
    unsigned i;

    if (d->last_used_idx == rd16(d->used + 2))
        return -1;
    e = d->used + 4 + 8 * (size_t)(d->last_used_idx & (d->num - 1));
    id = rd32(e);
    *len = rd32(e + 4);
    assert_true(id < d->num);
    assert_true(d->state[id].busy);
    /* detach_buf_split() */
    i = id;
    if (!d->state[id].indirect) {
        for (unsigned k = 1; k < d->state[id].ndesc; k++) {
            assert_true(desc_flags(d->desc, i) & VIRTQ_DESC_F_NEXT);
            i = desc_next(d->desc, i);
        }
    }
    write_desc(d->desc, i, 0, 0, 0, d->free_head);
    d->free_head = id;
    d->num_free += d->state[id].ndesc;
    d->state[id].busy = FALSE;
    d->last_used_idx++;
    if (d->event && !(d->avail_flags_shadow & VIRTQ_AVAIL_F_NO_INTERRUPT)) {
        wr16(drv_used_event(d), d->last_used_idx);
        mb();
    }
    return d->state[id].token;
}

/* virtqueue_disable_cb_split() */
static void drv_disable_cb(Drv *d)
{
    if (d->avail_flags_shadow & VIRTQ_AVAIL_F_NO_INTERRUPT)
        return;
    d->avail_flags_shadow |= VIRTQ_AVAIL_F_NO_INTERRUPT;
    if (d->event)
        wr16(drv_used_event(d), d->last_used_idx - 0x8000); /* far behind: no interrupts */
    else
        wr16(d->avail, d->avail_flags_shadow);
}

/* virtqueue_enable_cb_prepare_split() + virtqueue_poll(): TRUE if more are used already. */
static gboolean drv_enable_cb(Drv *d)
{
    if (d->avail_flags_shadow & VIRTQ_AVAIL_F_NO_INTERRUPT) {
        d->avail_flags_shadow &= ~VIRTQ_AVAIL_F_NO_INTERRUPT;
        if (!d->event)
            wr16(d->avail, d->avail_flags_shadow);
    }
    if (d->event)
        wr16(drv_used_event(d), d->last_used_idx);
    mb();
    return d->last_used_idx != rd16(d->used + 2);
}

/* --- fixture: a queue, its driver, and what each request should look like --- */

#define MAX_BUFS 12

typedef struct Request {
    TBuf bufs[MAX_BUFS];
    unsigned n_out, n_in;
    uint32_t out_len, in_len;
    gboolean live;
} Request;

typedef struct Fix {
    TestMem *tm;
    VirtQueue *vq;
    Drv drv;
    Request req[NR_SLOTS];
    unsigned free_slots[NR_SLOTS], nr_free_slots;
    GRand *rand;
    unsigned completed;
} Fix;

static Fix *fix_new(uint16_t max_size, uint16_t size, uint64_t features, guint32 seed)
{
    Fix *f = g_new0(Fix, 1);
    VirtqConfig cfg;

    f->tm = test_mem_new();
    f->vq = virtq_new(&f->tm->mem, "test/0", max_size);
    drv_init(&f->drv, f->tm, size, features | F_V1, RING_GPA);
    cfg = drv_config(&f->drv);
    assert_true(virtq_enable(f->vq, &cfg));
    for (unsigned i = 0; i < NR_SLOTS; i++)
        f->free_slots[f->nr_free_slots++] = NR_SLOTS - 1 - i;
    f->rand = g_rand_new_with_seed(seed);
    return f;
}

static void fix_free(Fix *f)
{
    virtq_free(f->vq);
    test_mem_free(f->tm);
    g_rand_free(f->rand);
    g_free(f);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Fix, fix_free)

static uint8_t pattern(uint32_t token, uint32_t i, gboolean out)
{
    return (uint8_t)(token * 131 + i * 7 + (out ? 1 : 99));
}

/*
 * Adds a request with random buffers inside its slot (so requests in
 * flight never share memory): @n_out readable, @n_in writable, random
 * lengths, the readable ones filled with a pattern the device checks.
 * Returns the token (the slot), or -1 when the ring or the slots are full.
 */
static int fix_add(Fix *f, unsigned n_out, unsigned n_in, gboolean indirect)
{
    unsigned slot;
    Request *r;
    uint64_t at;

    if (!f->nr_free_slots)
        return -1;
    slot = f->free_slots[f->nr_free_slots - 1];
    r = &f->req[slot];
    memset(r, 0, sizeof(*r));
    r->n_out = n_out;
    r->n_in = n_in;
    at = SLOT_GPA + (uint64_t)slot * SLOT_SIZE;
    for (unsigned i = 0; i < n_out + n_in; i++) {
        uint32_t len = g_rand_int_range(f->rand, 1, SLOT_SIZE / MAX_BUFS - 16);
        uint8_t *p = host(f->tm, at);

        r->bufs[i] = (TBuf){ at, len };
        if (i < n_out) {
            for (uint32_t k = 0; k < len; k++)
                p[k] = pattern(slot, r->out_len + k, TRUE);
            r->out_len += len;
        } else {
            memset(p, 0, len);
            r->in_len += len;
        }
        at += len + g_rand_int_range(f->rand, 0, 16);
    }
    if (drv_add(&f->drv, r->bufs, n_out, n_in, slot, indirect) < 0)
        return -1;
    r->live = TRUE;
    f->nr_free_slots--;
    return slot;
}

/* Every iovec of @elem must be exactly the buffers @r was given. */
static void check_element(Fix *f, const VirtqElement *elem, const Request *r)
{
    unsigned b = 0;
    uint64_t off = 0;

    assert_int_equal(elem->out_len, r->out_len);
    assert_int_equal(elem->in_len, r->in_len);
    assert_ptr_equal(elem->out_sg, elem->iov);
    assert_ptr_equal(elem->in_sg, elem->iov + elem->out_num);
    for (unsigned i = 0; i < elem->out_num + elem->in_num; i++) {
        const struct iovec *v = &elem->iov[i];

        while (b < r->n_out + r->n_in && off == r->bufs[b].len) {
            b++;
            off = 0;
        }
        assert_true(b < r->n_out + r->n_in);
        assert_true((i < elem->out_num) == (b < r->n_out));
        assert_ptr_equal(v->iov_base, host(f->tm, r->bufs[b].gpa + off));
        assert_true(v->iov_len > 0 && v->iov_len <= r->bufs[b].len - off);
        assert_true(in_guest_ram(f->tm, v->iov_base, v->iov_len));
        off += v->iov_len;
    }
    while (b < r->n_out + r->n_in && off == r->bufs[b].len) {
        b++;
        off = 0;
    }
    assert_int_equal(b, r->n_out + r->n_in);
}

/*
 * The device's side of a request: check its buffers and the bytes the
 * driver wrote, write the answer. Returns the bytes to report as written.
 */
static uint32_t serve(Fix *f, const VirtqElement *elem)
{
    const Request *r;
    uint32_t token, written;
    g_autofree uint8_t *buf = NULL;

    assert_true(elem->head < f->drv.num && f->drv.state[elem->head].busy);
    token = f->drv.state[elem->head].token;
    r = &f->req[token];
    assert_true(r->live);
    check_element(f, elem, r);
    buf = g_malloc(MAX(elem->out_len, elem->in_len) + 1);
    assert_int_equal(virtq_element_read(elem, 0, buf, elem->out_len + 1), elem->out_len);
    for (uint32_t k = 0; k < elem->out_len; k++)
        assert_int_equal(buf[k], pattern(token, k, TRUE));
    written = elem->in_len ? g_rand_int_range(f->rand, 0, elem->in_len + 1) : 0;
    for (uint32_t k = 0; k < written; k++)
        buf[k] = pattern(token, k, FALSE);
    assert_int_equal(virtq_element_write(elem, 0, buf, written), written);
    return written;
}

/* The driver takes back every used buffer and checks what the device wrote. */
static unsigned reap(Fix *f)
{
    unsigned n = 0;
    uint32_t len;
    int64_t token;

    while ((token = drv_get_buf(&f->drv, &len)) >= 0) {
        Request *r = &f->req[token];
        uint32_t seen = 0;

        assert_true(r->live);
        assert_true(len <= r->in_len);
        for (unsigned b = r->n_out; b < r->n_out + r->n_in && seen < len; b++) {
            const uint8_t *p = host(f->tm, r->bufs[b].gpa);
            for (uint32_t k = 0; k < r->bufs[b].len && seen < len; k++, seen++)
                assert_int_equal(p[k], pattern(token, seen, FALSE));
        }
        r->live = FALSE;
        f->free_slots[f->nr_free_slots++] = token;
        f->completed++;
        n++;
    }
    return n;
}

/*
 * Random traffic: the driver adds @requests mixed requests in bursts; the
 * device pops some, completes a random subset in random order (devices
 * finish out of order), in batches published with one index update.
 * Returns when every request, including any left from before, is back
 * with the driver. @elems has @nelem elements, at least the queue size.
 */
static void traffic(Fix *f, unsigned requests, VirtqElement **elems, unsigned nelem)
{
    g_autofree VirtqElement **held = g_new0(VirtqElement *, nelem);
    unsigned nheld = 0, added = 0, idle = 0;

    while (added < requests || f->nr_free_slots < NR_SLOTS) {
        unsigned burst = g_rand_int_range(f->rand, 0, 8), progress = 0;

        for (unsigned i = 0; i < burst && added < requests; i++) {
            unsigned n_out = g_rand_int_range(f->rand, 0, 5);
            unsigned n_in = g_rand_int_range(f->rand, n_out ? 0 : 1, 5);

            if (fix_add(f, n_out, n_in, g_rand_boolean(f->rand)) < 0)
                break;
            added++;
        }
        drv_kick_prepare(&f->drv);
        /* Pop into free elements. */
        for (unsigned i = 0; i < nelem && g_rand_int_range(f->rand, 0, 4); i++) {
            int r;

            if (held[i])
                continue;
            r = virtq_pop(f->vq, elems[i]);
            assert_int_not_equal(r, -1);
            if (r == 0)
                break;
            held[i] = elems[i];
            nheld++;
        }
        /* Complete a random subset, then publish them at once. */
        for (unsigned i = 0; i < nelem; i++) {
            if (held[i] && g_rand_boolean(f->rand)) {
                virtq_fill(f->vq, held[i], serve(f, held[i]));
                held[i] = NULL;
                nheld--;
            }
        }
        virtq_flush(f->vq);
        virtq_needs_notification(f->vq);
        progress = reap(f);
        /* Whatever was added comes back: no request gets stuck. */
        idle = progress ? 0 : idle + 1;
        assert_true(idle < 1000);
    }
    assert_int_equal(nheld, 0);
    assert_false(virtq_is_broken(f->vq));
}

static VirtqElement **elems_new(const VirtQueue *vq, unsigned n)
{
    VirtqElement **e = g_new0(VirtqElement *, n);

    for (unsigned i = 0; i < n; i++)
        e[i] = virtq_element_new(vq);
    return e;
}

static void elems_free(VirtqElement **e, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        virtq_element_free(e[i]);
    g_free(e);
}

/* --- round trips --- */

static void test_roundtrip(void **state)
{
    static const uint64_t features[] = { 0, F_INDIRECT, F_EVENT, F_INDIRECT | F_EVENT };

    for (unsigned i = 0; i < G_N_ELEMENTS(features); i++) {
        g_autoptr(Fix) f = fix_new(256, 128, features[i], 1000 + i);
        VirtqElement **elems = elems_new(f->vq, 128);

        traffic(f, 4000, elems, 128);
        assert_int_equal(f->completed, 4000);
        /* Used index in guest memory is what the driver saw. */
        assert_int_equal(rd16(f->drv.used + 2), 4000);
        elems_free(elems, 128);
    }
}

/* 16-bit indices wrap: twice round with a small queue. */
static void test_wraparound(void **state)
{
    g_autoptr(Fix) f = fix_new(8, 8, F_INDIRECT | F_EVENT, 7);
    VirtqElement **elems = elems_new(f->vq, 8);

    traffic(f, 140000, elems, 8);
    assert_int_equal(f->completed, 140000);
    assert_int_equal(rd16(f->drv.used + 2), 140000 % 65536);
    assert_int_equal(rd16(f->drv.avail + 2), 140000 % 65536);
    elems_free(elems, 8);
}

/* Start at an index just short of 65535 and cross it, checking kicks both ways. */
static void test_wrap_near_limit(void **state)
{
    g_autoptr(Fix) f = fix_new(4, 4, F_EVENT, 8);
    g_autoptr(VirtqElement) e = virtq_element_new(f->vq);
    TBuf b = { SLOT_GPA, 64 };
    uint32_t len;

    for (unsigned i = 0; i < 65533; i++) {
        assert_true(drv_add(&f->drv, &b, 0, 1, i, FALSE) >= 0);
        assert_int_equal(virtq_pop(f->vq, e), 1);
        virtq_push(f->vq, e, 1);
        assert_true(drv_get_buf(&f->drv, &len) >= 0);
    }
    assert_int_equal(f->drv.avail_idx_shadow, 65533);
    for (unsigned i = 0; i < 12; i++) {
        gboolean kick, irq;

        /* Device waiting with notifications on: every add must kick. */
        assert_int_equal(virtq_pop(f->vq, e), 0);
        assert_true(drv_add(&f->drv, &b, 0, 1, i, FALSE) >= 0);
        kick = drv_kick_prepare(&f->drv);
        assert_true(kick);
        assert_int_equal(virtq_pop(f->vq, e), 1);
        virtq_push(f->vq, e, 64);
        /* Driver asked for an interrupt after this one (used_event = last_used). */
        irq = virtq_needs_notification(f->vq);
        assert_true(irq);
        assert_true(drv_get_buf(&f->drv, &len) >= 0);
        assert_int_equal(len, 64);
    }
    assert_int_equal(rd16(f->drv.used + 2), (65533 + 12) % 65536);
}

/* --- malformed rings --- */

typedef struct BadCase {
    const char *name;
    uint16_t max_size, size;
    uint64_t features;
    void (*setup)(Fix *f);
    const char *why;            /* expected in virtq_get_error() */
} BadCase;

static void publish(Fix *f, uint16_t head)
{
    Drv *d = &f->drv;

    wr16(d->avail + 4 + 2 * (size_t)(d->avail_idx_shadow & (d->num - 1)), head);
    d->avail_idx_shadow++;
    wr16(d->avail + 2, d->avail_idx_shadow);
}

static void bad_avail_jump(Fix *f)
{
    wr16(f->drv.avail + 2, f->drv.num + 1);
}

static void bad_avail_back(Fix *f)
{
    g_autoptr(VirtqElement) e = virtq_element_new(f->vq);

    write_desc(f->drv.desc, 0, SLOT_GPA, 8, 0, 0);
    publish(f, 0);
    assert_int_equal(virtq_pop(f->vq, e), 1);
    virtq_push(f->vq, e, 0);
    wr16(f->drv.avail + 2, 0);
}

static void bad_head(Fix *f)
{
    publish(f, f->drv.num);
}

static void bad_head_max(Fix *f)
{
    publish(f, 0xffff);
}

static void bad_next(Fix *f)
{
    write_desc(f->drv.desc, 0, SLOT_GPA, 8, VIRTQ_DESC_F_NEXT, f->drv.num);
    publish(f, 0);
}

static void bad_loop(Fix *f)
{
    write_desc(f->drv.desc, 0, SLOT_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
    write_desc(f->drv.desc, 1, SLOT_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
    publish(f, 0);
}

static void bad_self_loop(Fix *f)
{
    write_desc(f->drv.desc, 3, SLOT_GPA, 0, VIRTQ_DESC_F_NEXT, 3);
    publish(f, 3);
}

/* The chain visits all of a full table once and comes back to the start. */
static void bad_loop_full(Fix *f)
{
    for (unsigned i = 0; i < f->drv.num; i++)
        write_desc(f->drv.desc, i, SLOT_GPA, 1, VIRTQ_DESC_F_NEXT, (i + 1) % f->drv.num);
    publish(f, 0);
}

static void indirect_desc(Fix *f, uint64_t table, uint32_t len, uint16_t flags)
{
    write_desc(f->drv.desc, 0, table, len, VIRTQ_DESC_F_INDIRECT | flags, 1);
    publish(f, 0);
}

static void bad_indirect_feature(Fix *f)
{
    write_desc(host(f->tm, INDIRECT_GPA), 0, SLOT_GPA, 8, 0, 0);
    indirect_desc(f, INDIRECT_GPA, 16, 0);
}

static void bad_indirect_next(Fix *f)
{
    write_desc(host(f->tm, INDIRECT_GPA), 0, SLOT_GPA, 8, 0, 0);
    indirect_desc(f, INDIRECT_GPA, 16, VIRTQ_DESC_F_NEXT);
}

static void bad_indirect_empty(Fix *f)
{
    indirect_desc(f, INDIRECT_GPA, 0, 0);
}

static void bad_indirect_len(Fix *f)
{
    indirect_desc(f, INDIRECT_GPA, 24, 0);
}

static void bad_indirect_big(Fix *f)
{
    indirect_desc(f, BIG_TABLE_GPA, 16 * (virtq_get_max_size(f->vq) + 1), 0);
}

static void bad_indirect_hole(Fix *f)
{
    indirect_desc(f, HOLE_GPA, 16, 0);
}

/* A table crossing from region 0 into region 1 (adjacent): rejected, documented. */
static void bad_indirect_split(Fix *f)
{
    indirect_desc(f, R1_GPA - 16, 32, 0);
}

/* Running off the end of RAM, where the guard page is. */
static void bad_indirect_end(Fix *f)
{
    indirect_desc(f, R2_GPA + R2_SIZE - 16, 32, 0);
}

static void bad_indirect_nested(Fix *f)
{
    uint8_t *t = host(f->tm, INDIRECT_GPA);

    write_desc(t, 0, SLOT_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
    write_desc(t, 1, INDIRECT_GPA + 1024, 16, VIRTQ_DESC_F_INDIRECT, 0);
    indirect_desc(f, INDIRECT_GPA, 32, 0);
}

static void bad_indirect_next_index(Fix *f)
{
    uint8_t *t = host(f->tm, INDIRECT_GPA);

    write_desc(t, 0, SLOT_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
    write_desc(t, 1, SLOT_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
    indirect_desc(f, INDIRECT_GPA, 32, 0);
}

static void bad_indirect_loop(Fix *f)
{
    uint8_t *t = host(f->tm, INDIRECT_GPA);

    write_desc(t, 0, SLOT_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
    write_desc(t, 1, SLOT_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
    write_desc(t, 2, SLOT_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
    indirect_desc(f, INDIRECT_GPA, 48, 0);
}

static void one_buffer(Fix *f, uint64_t addr, uint32_t len)
{
    write_desc(f->drv.desc, 0, addr, len, VIRTQ_DESC_F_WRITE, 0);
    publish(f, 0);
}

static void bad_buffer_hole(Fix *f)
{
    one_buffer(f, HOLE_GPA + 4096, 16);
}

static void bad_buffer_into_hole(Fix *f)
{
    one_buffer(f, HOLE_GPA - 8, 16);
}

static void bad_buffer_past_ram(Fix *f)
{
    one_buffer(f, R2_GPA + R2_SIZE - 8, 4096 + 16);
}

static void bad_buffer_wrap(Fix *f)
{
    one_buffer(f, 0xfffffffffffff000ULL, 0x2000);
}

static void bad_buffer_high(Fix *f)
{
    one_buffer(f, 0xffff000000000000ULL, 1);
}

static void bad_order(Fix *f)
{
    write_desc(f->drv.desc, 0, SLOT_GPA, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
    write_desc(f->drv.desc, 1, SLOT_GPA + 64, 8, 0, 0);
    publish(f, 0);
}

static void bad_order_indirect(Fix *f)
{
    uint8_t *t = host(f->tm, INDIRECT_GPA);

    write_desc(t, 0, SLOT_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
    write_desc(t, 1, SLOT_GPA + 64, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
    write_desc(t, 2, SLOT_GPA + 128, 8, 0, 0);
    indirect_desc(f, INDIRECT_GPA, 48, 0);
}

/* A writable direct descriptor, then an indirect table that starts readable. */
static void bad_order_mixed(Fix *f)
{
    uint8_t *t = host(f->tm, INDIRECT_GPA);

    write_desc(t, 0, SLOT_GPA, 8, 0, 0);
    write_desc(f->drv.desc, 0, SLOT_GPA + 64, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
    write_desc(f->drv.desc, 1, INDIRECT_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
    publish(f, 0);
}

/* 1024 descriptors of all of region 0: 4 GiB, one byte too many. */
static void bad_total_len(Fix *f)
{
    for (unsigned i = 0; i < f->drv.num; i++)
        write_desc(f->drv.desc, i, R0_GPA, R0_SIZE, VIRTQ_DESC_F_NEXT, i + 1);
    write_desc(f->drv.desc, f->drv.num - 1, R0_GPA, R0_SIZE, 0, 0);
    publish(f, 0);
}

/* Each buffer crosses from region 0 into region 1: two iovecs per descriptor. */
static void bad_too_many_iovecs(Fix *f)
{
    for (unsigned i = 0; i < f->drv.num; i++)
        write_desc(f->drv.desc, i, R1_GPA - 4, 8, VIRTQ_DESC_F_NEXT, i + 1);
    write_desc(f->drv.desc, f->drv.num - 1, R1_GPA - 4, 8, 0, 0);
    publish(f, 0);
}

/* The driver offers head 0 again and again without waiting for it. */
static void bad_in_flight(Fix *f)
{
    VirtqElement *e = virtq_element_new(f->vq);

    write_desc(f->drv.desc, 0, SLOT_GPA, 8, 0, 0);
    for (unsigned i = 0; i < f->drv.num; i++) {
        publish(f, 0);
        assert_int_equal(virtq_pop(f->vq, e), 1);
    }
    publish(f, 0);
    virtq_element_free(e);      /* never pushed: the device is still "working" */
}

static const BadCase bad_cases[] = {
    { "avail index jump", 16, 16, 0, bad_avail_jump, "more than the queue size 16 ahead" },
    { "avail index back", 16, 16, 0, bad_avail_back, "moved from 1 to 0" },
    { "head = size", 16, 16, 0, bad_head, "head index 16 outside the queue" },
    { "head = 0xffff", 16, 16, 0, bad_head_max, "head index 65535" },
    { "next = size", 16, 16, 0, bad_next, "next index 16 outside the table" },
    { "two-descriptor loop", 16, 16, 0, bad_loop, "loops" },
    { "self loop", 16, 16, 0, bad_self_loop, "loops" },
    { "loop over the whole table", 16, 16, 0, bad_loop_full, "loops" },
    { "indirect not negotiated", 16, 16, 0, bad_indirect_feature, "not negotiated" },
    { "indirect with NEXT", 16, 16, F_INDIRECT, bad_indirect_next, "with NEXT" },
    { "indirect table empty", 16, 16, F_INDIRECT, bad_indirect_empty, "table of 0 bytes" },
    { "indirect table 24 bytes", 16, 16, F_INDIRECT, bad_indirect_len, "table of 24 bytes" },
    { "indirect table too long", 16, 16, F_INDIRECT, bad_indirect_big, "table of 272 bytes" },
    { "indirect table in hole", 16, 16, F_INDIRECT, bad_indirect_hole, "not inside one RAM" },
    { "indirect table across regions", 16, 16, F_INDIRECT, bad_indirect_split,
      "not inside one RAM" },
    { "indirect table past RAM", 16, 16, F_INDIRECT, bad_indirect_end, "not inside one RAM" },
    { "nested indirect", 16, 16, F_INDIRECT, bad_indirect_nested, "inside an indirect table" },
    { "indirect next out of table", 16, 16, F_INDIRECT, bad_indirect_next_index,
      "indirect descriptor 1: next index 2 outside the table (2)" },
    { "indirect loop", 16, 16, F_INDIRECT, bad_indirect_loop, "loops" },
    { "buffer in hole", 16, 16, 0, bad_buffer_hole, "is not inside RAM" },
    { "buffer into hole", 16, 16, 0, bad_buffer_into_hole, "is not inside RAM" },
    { "buffer past RAM", 16, 16, 0, bad_buffer_past_ram, "is not inside RAM" },
    { "buffer wraps", 16, 16, 0, bad_buffer_wrap, "wraps around" },
    { "buffer at high address", 16, 16, 0, bad_buffer_high, "is not inside RAM" },
    { "readable after writable", 16, 16, 0, bad_order, "device-readable buffer after" },
    { "readable after writable, indirect", 16, 16, F_INDIRECT, bad_order_indirect,
      "device-readable buffer after" },
    { "readable indirect after writable", 16, 16, F_INDIRECT, bad_order_mixed,
      "device-readable buffer after" },
    { "4 GiB chain", 1024, 1024, 0, bad_total_len, "longer than 4 GiB - 1" },
    { "more iovecs than max_size", 8, 8, 0, bad_too_many_iovecs, "needs more iovecs" },
    { "more in flight than size", 4, 4, 0, bad_in_flight, "more than 4 buffers in flight" },
};

static void test_malformed(void **state)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
        const BadCase *c = &bad_cases[i];
        g_autoptr(Fix) f = fix_new(c->max_size, c->size, c->features, i);
        g_autoptr(VirtqElement) e = virtq_element_new(f->vq);
        g_autoptr(VirtqElement) good = virtq_element_new(f->vq);
        uint16_t used_before;
        VirtqConfig cfg;
        TBuf b = { SLOT_GPA, 8 };

        c->setup(f);
        used_before = rd16(f->drv.used + 2);
        if (virtq_pop(f->vq, e) != -1)
            fail_msg("%s: malformed ring accepted", c->name);
        assert_true(virtq_is_broken(f->vq));
        assert_int_equal(e->out_num + e->in_num, 0);
        if (!strstr(virtq_get_error(f->vq), c->why))
            fail_msg("%s: error '%s' does not say '%s'", c->name, virtq_get_error(f->vq), c->why);
        /* Broken stays broken and writes nothing. */
        assert_int_equal(virtq_pop(f->vq, e), -1);
        virtq_push(f->vq, e, 8);
        assert_false(virtq_needs_notification(f->vq));
        assert_false(virtq_enable_notification(f->vq));
        assert_int_equal(rd16(f->drv.used + 2), used_before);
        /* Until the driver resets the device and sets the queue up again. */
        virtq_reset(f->vq);
        assert_false(virtq_is_broken(f->vq));
        assert_string_equal(virtq_get_error(f->vq), "");
        assert_int_equal(virtq_pop(f->vq, e), 0);
        drv_init(&f->drv, f->tm, c->size, c->features | F_V1, RING_GPA);
        cfg = drv_config(&f->drv);
        assert_true(virtq_enable(f->vq, &cfg));
        assert_true(drv_add(&f->drv, &b, 1, 0, 1, FALSE) >= 0);
        assert_int_equal(virtq_pop(f->vq, good), 1);
        assert_int_equal(good->out_len, 8);
    }
    harness_take_guest_warnings();
}

/* Many broken queues in a burst: the log gets a bounded number of lines. */
static void test_warnings_rate_limited(void **state)
{
    unsigned warnings;

    harness_take_guest_warnings();
    for (unsigned i = 0; i < 100; i++) {
        g_autoptr(Fix) f = fix_new(16, 16, 0, i);
        g_autoptr(VirtqElement) e = virtq_element_new(f->vq);

        bad_head(f);
        assert_int_equal(virtq_pop(f->vq, e), -1);
    }
    warnings = harness_take_guest_warnings();
    assert_true(warnings >= 1);
    /* One window's burst, maybe two if the test straddles a window. */
    assert_true(warnings <= 2 * RATELIMIT_BURST);
}

/* --- configuration --- */

typedef struct BadConfig {
    const char *name;
    VirtqConfig cfg;
    const char *why;
} BadConfig;

static void test_enable_checks(void **state)
{
    g_autoptr(TestMem) tm = test_mem_new();
    g_autoptr(VirtQueue) vq = virtq_new(&tm->mem, "test/cfg", 256);
    g_autoptr(VirtqElement) e = virtq_element_new(vq);
    const uint64_t r2_end = R2_GPA + R2_SIZE;
    const BadConfig bad[] = {
        { "legacy", { 8, RING_GPA, 0x11000, 0x12000, 0 }, "VERSION_1" },
        { "size 0", { 0, RING_GPA, 0x11000, 0x12000, F_V1 }, "queue size 0" },
        { "size 3", { 3, RING_GPA, 0x11000, 0x12000, F_V1 }, "queue size 3" },
        { "size above max", { 512, RING_GPA, 0x11000, 0x12000, F_V1 }, "queue size 512" },
        { "size 0xffff", { 0xffff, RING_GPA, 0x11000, 0x12000, F_V1 }, "queue size 65535" },
        { "size 32768", { 32768, RING_GPA, 0x11000, 0x12000, F_V1 }, "queue size 32768" },
        { "desc misaligned", { 8, RING_GPA + 8, 0x11000, 0x12000, F_V1 }, "misaligned" },
        { "avail misaligned", { 8, RING_GPA, 0x11001, 0x12000, F_V1 }, "misaligned" },
        { "used misaligned", { 8, RING_GPA, 0x11000, 0x12002, F_V1 }, "misaligned" },
        { "desc in hole", { 8, HOLE_GPA, 0x11000, 0x12000, F_V1 }, "descriptor ring" },
        /* The event-index field does not fit: the spec's size counts it. */
        { "avail past RAM", { 8, RING_GPA, r2_end - 20, 0x12000, F_V1 }, "available ring" },
        { "used across regions", { 8, RING_GPA, 0x11000, R1_GPA - 32, F_V1 }, "used ring" },
        { "desc at top of address space", { 8, 0xfffffffffffffff0ULL, 0x11000, 0x12000, F_V1 },
          "descriptor ring" },
    };
    /* Rings flush against the guard page at the end of RAM are fine. */
    VirtqConfig edge = { 8, r2_end - 128, r2_end - 128 - 22, r2_end - 128 - 22 - 74, F_V1 };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        if (virtq_enable(vq, &bad[i].cfg))
            fail_msg("%s: enabled", bad[i].name);
        assert_false(virtq_is_enabled(vq));
        assert_int_equal(virtq_get_size(vq), 0);
        if (!strstr(virtq_get_error(vq), bad[i].why))
            fail_msg("%s: error '%s' does not say '%s'", bad[i].name, virtq_get_error(vq),
                     bad[i].why);
        /* A kick now is harmless. */
        assert_int_equal(virtq_pop(vq, e), 0);
    }
    assert_true(virtq_enable(vq, &edge));
    assert_int_equal(virtq_get_size(vq), 8);
    wr16(host(tm, edge.avail_addr + 2), 0);
    assert_int_equal(virtq_pop(vq, e), 0);
    assert_true(virtq_needs_notification(vq) == FALSE);
    /* Enabling a running queue again is refused; it keeps running. */
    assert_false(virtq_enable(vq, &edge));
    assert_true(virtq_is_enabled(vq));
    assert_non_null(strstr(virtq_get_error(vq), "enabled again"));
    harness_take_guest_warnings();
}

/*
 * kvmtool 3a13530: a queue used before the driver set it up. Region 3
 * is mapped PROT_NONE, so any access to rings placed there faults.
 */
static void test_use_before_enable(void **state)
{
    g_autoptr(TestMem) tm = test_mem_new();
    g_autoptr(VirtQueue) vq = NULL;
    g_autoptr(VirtqElement) e = NULL;
    const uint64_t gpa = 0x40000000ULL;

    test_mem_add(tm, gpa, 64 * KIB, PROT_NONE);
    vq = virtq_new(&tm->mem, "test/early", 64);
    e = virtq_element_new(vq);
    assert_int_equal(virtq_get_size(vq), 0);
    assert_int_equal(virtq_pop(vq, e), 0);
    /* Set up wrongly (legacy driver, bad size) with rings in that region. */
    assert_false(virtq_enable(vq, &(VirtqConfig){ 8, gpa, gpa + 0x1000, gpa + 0x2000, 0 }));
    assert_int_equal(virtq_pop(vq, e), 0);
    assert_false(virtq_enable(vq, &(VirtqConfig){ 3, gpa, gpa + 0x1000, gpa + 0x2000, F_V1 }));
    assert_int_equal(virtq_pop(vq, e), 0);
    virtq_push(vq, e, 100);             /* never popped: nothing happens */
    virtq_flush(vq);
    assert_false(virtq_needs_notification(vq));
    virtq_disable_notification(vq);
    assert_false(virtq_enable_notification(vq));
    assert_false(virtq_is_broken(vq));
    /* After a reset as well. */
    virtq_reset(vq);
    assert_int_equal(virtq_pop(vq, e), 0);
    assert_false(virtq_enable_notification(vq));
    harness_take_guest_warnings();
}

/* --- buffer shapes --- */

static void test_zero_length(void **state)
{
    g_autoptr(Fix) f = fix_new(16, 16, F_INDIRECT, 3);
    g_autoptr(VirtqElement) e = virtq_element_new(f->vq);
    uint8_t *d = f->drv.desc, *t = host(f->tm, INDIRECT_GPA);

    /*
     * Zero-length buffers anywhere, even at addresses outside RAM and
     * readable after writable: ignored. The rest comes through.
     */
    write_desc(d, 0, HOLE_GPA, 0, VIRTQ_DESC_F_NEXT, 1);
    write_desc(d, 1, SLOT_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
    write_desc(d, 2, SLOT_GPA + 64, 0, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 3);
    write_desc(d, 3, SLOT_GPA + 128, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 4);
    write_desc(d, 4, 0xffffffffffffffffULL, 0, VIRTQ_DESC_F_NEXT, 5);
    write_desc(d, 5, INDIRECT_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
    write_desc(t, 0, SLOT_GPA + 256, 0, VIRTQ_DESC_F_NEXT, 1);
    write_desc(t, 1, SLOT_GPA + 512, 4, VIRTQ_DESC_F_WRITE, 0);
    publish(f, 0);
    assert_int_equal(virtq_pop(f->vq, e), 1);
    assert_int_equal(e->head, 0);
    assert_int_equal(e->out_num, 1);
    assert_int_equal(e->in_num, 2);
    assert_int_equal(e->out_len, 16);
    assert_int_equal(e->in_len, 12);
    assert_ptr_equal(e->out_sg[0].iov_base, host(f->tm, SLOT_GPA));
    assert_ptr_equal(e->in_sg[0].iov_base, host(f->tm, SLOT_GPA + 128));
    assert_ptr_equal(e->in_sg[1].iov_base, host(f->tm, SLOT_GPA + 512));
    virtq_push(f->vq, e, 12);

    /* A chain of nothing but zero-length descriptors is an empty element. */
    write_desc(d, 6, SLOT_GPA, 0, VIRTQ_DESC_F_NEXT, 7);
    write_desc(d, 7, SLOT_GPA, 0, VIRTQ_DESC_F_WRITE, 0);
    publish(f, 6);
    assert_int_equal(virtq_pop(f->vq, e), 1);
    assert_int_equal(e->head, 6);
    assert_int_equal(e->out_num + e->in_num, 0);
    assert_int_equal(e->out_len + e->in_len, 0);
    virtq_push(f->vq, e, 99);           /* clamped to in_len, 0 */
    assert_int_equal(rd16(f->drv.used + 2), 2);
    assert_int_equal(rd32(f->drv.used + 4 + 8), 6);
    assert_int_equal(rd32(f->drv.used + 4 + 12), 0);
}

/* A buffer across two adjacent regions becomes two iovecs; reads see one buffer. */
static void test_region_split(void **state)
{
    g_autoptr(Fix) f = fix_new(16, 16, 0, 4);
    g_autoptr(VirtqElement) e = virtq_element_new(f->vq);
    uint8_t out[64], in[100];
    size_t n;

    for (unsigned i = 0; i < 64; i++)
        host(f->tm, R1_GPA - 32 + i)[0] = i;
    write_desc(f->drv.desc, 0, R1_GPA - 32, 64, VIRTQ_DESC_F_NEXT, 1);
    write_desc(f->drv.desc, 1, R1_GPA - 40, 80, VIRTQ_DESC_F_WRITE, 0);
    publish(f, 0);
    assert_int_equal(virtq_pop(f->vq, e), 1);
    assert_int_equal(e->out_num, 2);
    assert_int_equal(e->in_num, 2);
    assert_ptr_equal(e->out_sg[0].iov_base, host(f->tm, R1_GPA - 32));
    assert_int_equal(e->out_sg[0].iov_len, 32);
    assert_ptr_equal(e->out_sg[1].iov_base, host(f->tm, R1_GPA));
    assert_int_equal(e->out_sg[1].iov_len, 32);
    assert_int_equal(e->in_sg[0].iov_len, 40);
    assert_int_equal(e->in_sg[1].iov_len, 40);
    n = virtq_element_read(e, 0, out, sizeof(out));
    assert_int_equal(n, 64);
    for (unsigned i = 0; i < 64; i++)
        assert_int_equal(out[i], i);
    /* Offsets inside and past the buffers. */
    assert_int_equal(virtq_element_read(e, 30, out, 4), 4);
    assert_int_equal(out[0], 30);
    assert_int_equal(out[3], 33);
    assert_int_equal(virtq_element_read(e, 64, out, 4), 0);
    memset(in, 0xab, sizeof(in));
    assert_int_equal(virtq_element_write(e, 0, in, sizeof(in)), 80);
    assert_int_equal(virtq_element_write(e, 70, in, sizeof(in)), 10);
    assert_int_equal(host(f->tm, R1_GPA + 39)[0], 0xab);
}

/* The largest queue: full of one-buffer chains, one chain of 1024, a 1024-entry table. */
static void test_max_size(void **state)
{
    g_autoptr(Fix) f = fix_new(1024, 1024, F_INDIRECT | F_EVENT, 5);
    VirtqElement **elems = elems_new(f->vq, 1024);
    g_autoptr(VirtqElement) e = virtq_element_new(f->vq);
    TBuf b = { SLOT_GPA, 16 };
    uint8_t *t = host(f->tm, BIG_TABLE_GPA);
    uint32_t len;

    for (unsigned i = 0; i < 1024; i++)
        assert_true(drv_add(&f->drv, &b, 1, 0, i, FALSE) >= 0);
    assert_int_equal(drv_add(&f->drv, &b, 1, 0, 0, FALSE), -1);
    for (unsigned i = 0; i < 1024; i++)
        assert_int_equal(virtq_pop(f->vq, elems[i]), 1);
    assert_int_equal(virtq_pop(f->vq, e), 0);
    for (unsigned i = 0; i < 1024; i++)
        virtq_fill(f->vq, elems[1023 - i], 0);
    virtq_flush(f->vq);
    for (unsigned i = 0; i < 1024; i++)
        assert_true(drv_get_buf(&f->drv, &len) >= 0);

    /* One chain through all 1024 descriptors. */
    for (unsigned i = 0; i < 1024; i++)
        write_desc(f->drv.desc, i, SLOT_GPA + i, 1, i < 1023 ? VIRTQ_DESC_F_NEXT : 0, i + 1);
    publish(f, 0);
    assert_int_equal(virtq_pop(f->vq, e), 1);
    assert_int_equal(e->out_num, 1024);
    assert_int_equal(e->out_len, 1024);
    virtq_push(f->vq, e, 0);

    /* An indirect table of 1024 entries, readable then writable. */
    for (unsigned i = 0; i < 1024; i++)
        write_desc(t, i, SLOT_GPA + i, 2, (i < 1023 ? VIRTQ_DESC_F_NEXT : 0) |
                   (i >= 512 ? VIRTQ_DESC_F_WRITE : 0), i + 1);
    write_desc(f->drv.desc, 5, BIG_TABLE_GPA, 1024 * 16, VIRTQ_DESC_F_INDIRECT, 0);
    publish(f, 5);
    assert_int_equal(virtq_pop(f->vq, e), 1);
    assert_int_equal(e->head, 5);
    assert_int_equal(e->out_num, 512);
    assert_int_equal(e->in_num, 512);
    assert_int_equal(e->in_len, 1024);
    virtq_push(f->vq, e, 1024);
    assert_false(virtq_is_broken(f->vq));
    elems_free(elems, 1024);
}

static void test_unpop(void **state)
{
    g_autoptr(Fix) f = fix_new(16, 16, 0, 6);
    g_autoptr(VirtqElement) e = virtq_element_new(f->vq);
    TBuf b[2] = { { SLOT_GPA, 8 }, { SLOT_GPA + 64, 16 } };

    assert_true(drv_add(&f->drv, &b[0], 1, 0, 1, FALSE) >= 0);
    assert_true(drv_add(&f->drv, &b[1], 0, 1, 2, FALSE) >= 0);
    assert_int_equal(virtq_pop(f->vq, e), 1);
    assert_int_equal(virtq_pop(f->vq, e), 1);
    assert_int_equal(e->in_len, 16);
    virtq_unpop(f->vq, e);
    assert_int_equal(virtq_pop(f->vq, e), 1);
    assert_int_equal(e->in_len, 16);
    assert_int_equal(virtq_pop(f->vq, e), 0);
}

/* An element completed after the device was reset must not reach the new ring. */
static void test_stale_push(void **state)
{
    g_autoptr(Fix) f = fix_new(16, 16, 0, 7);
    g_autoptr(VirtqElement) old = virtq_element_new(f->vq);
    g_autoptr(VirtqElement) e = virtq_element_new(f->vq);
    TBuf b = { SLOT_GPA, 8 };
    VirtqConfig cfg;
    uint32_t len;

    assert_true(drv_add(&f->drv, &b, 0, 1, 1, FALSE) >= 0);
    assert_int_equal(virtq_pop(f->vq, old), 1);
    virtq_reset(f->vq);
    drv_init(&f->drv, f->tm, 16, F_V1, RING_GPA);
    cfg = drv_config(&f->drv);
    assert_true(virtq_enable(f->vq, &cfg));
    virtq_push(f->vq, old, 8);
    assert_int_equal(rd16(f->drv.used + 2), 0);
    assert_true(drv_add(&f->drv, &b, 0, 1, 2, FALSE) >= 0);
    assert_int_equal(virtq_pop(f->vq, e), 1);
    virtq_push(f->vq, e, 100);
    assert_int_equal(drv_get_buf(&f->drv, &len), 2);
    assert_int_equal(len, 8);           /* clamped to the buffer */
}

/* --- notifications --- */

/*
 * Used buffer notifications against the spec's rule over random
 * sequences: the driver moves used_event around the used index (or sets
 * and clears NO_INTERRUPT), the device publishes random batches.
 */
static void test_needs_notification(void **state)
{
    for (int event = 0; event < 2; event++) {
        g_autoptr(Fix) f = fix_new(16, 16, event ? F_EVENT : 0, 20 + event);
        VirtqElement **elems = elems_new(f->vq, 16);
        TBuf b = { SLOT_GPA, 8 };
        uint16_t old = 0;
        uint32_t len;
        unsigned yes = 0, no = 0;

        for (unsigned it = 0; it < 20000; it++) {
            unsigned n = g_rand_int_range(f->rand, 0, f->drv.num_free + 1), popped = 0, pushed;
            gboolean expect, got;
            uint16_t now;

            for (unsigned i = 0; i < n; i++)
                assert_true(drv_add(&f->drv, &b, 0, 1, i, FALSE) >= 0);
            while (popped < 16 && virtq_pop(f->vq, elems[popped]) == 1)
                popped++;
            /* Some are used; the rest go back, most recent first, for the next round. */
            pushed = popped ? g_rand_int_range(f->rand, 0, popped + 1) : 0;
            for (unsigned i = 0; i < popped; i++) {
                if (i < pushed)
                    virtq_fill(f->vq, elems[i], 8);
                else
                    virtq_unpop(f->vq, elems[popped - 1 - (i - pushed)]);
            }
            virtq_flush(f->vq);
            now = rd16(f->drv.used + 2);
            if (event) {
                uint16_t ev = now + g_rand_int_range(f->rand, -6, 4);
                wr16(drv_used_event(&f->drv), ev);
                expect = now != old && need_event(ev, now, old);
            } else {
                uint16_t flags = g_rand_boolean(f->rand) ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0;
                wr16(f->drv.avail, flags);
                expect = now != old && !flags;
            }
            got = virtq_needs_notification(f->vq);
            if (got != expect)
                fail_msg("iteration %u: used %u, last check at %u: got %d, expected %d", it,
                         now, old, got, expect);
            yes += got;
            no += !got;
            old = now;
            /* The driver takes a random share of what was used. */
            for (unsigned k = g_rand_int_range(f->rand, 0, 17); k; k--) {
                if (drv_get_buf(&f->drv, &len) < 0)
                    break;
            }
        }
        assert_true(yes > 1000 && no > 1000);
        assert_false(virtq_is_broken(f->vq));
        elems_free(elems, 16);
    }
}

/*
 * With EVENT_IDX, 65536 entries published without asking means the 16-bit
 * used_event comparison can no longer be trusted: notify.
 */
static void test_notification_after_65536(void **state)
{
    g_autoptr(Fix) f = fix_new(4, 4, F_EVENT, 9);
    g_autoptr(VirtqElement) e = virtq_element_new(f->vq);
    TBuf b = { SLOT_GPA, 8 };
    uint32_t len;

    for (unsigned i = 0; i < 65536; i++) {
        assert_true(drv_add(&f->drv, &b, 0, 1, i, FALSE) >= 0);
        assert_int_equal(virtq_pop(f->vq, e), 1);
        virtq_push(f->vq, e, 8);
        assert_true(drv_get_buf(&f->drv, &len) >= 0);
    }
    /* Formula alone (old == new) would say no. */
    wr16(drv_used_event(&f->drv), 5);
    assert_true(virtq_needs_notification(f->vq));
    assert_false(virtq_needs_notification(f->vq));
}

/* Available buffer notification suppression as the driver sees it. */
static void test_kick_suppression(void **state)
{
    for (int event = 0; event < 2; event++) {
        g_autoptr(Fix) f = fix_new(16, 16, event ? F_EVENT : 0, 30 + event);
        g_autoptr(VirtqElement) e = virtq_element_new(f->vq);
        TBuf b = { SLOT_GPA, 8 };

        /* Fresh queue: the first buffer kicks. */
        assert_true(drv_add(&f->drv, &b, 1, 0, 0, FALSE) >= 0);
        assert_true(drv_kick_prepare(&f->drv));
        /* Device working with notifications off: no kicks. */
        virtq_disable_notification(f->vq);
        assert_int_equal(virtq_pop(f->vq, e), 1);
        virtq_push(f->vq, e, 0);
        for (unsigned i = 0; i < 3; i++) {
            assert_true(drv_add(&f->drv, &b, 1, 0, 0, FALSE) >= 0);
            assert_false(drv_kick_prepare(&f->drv));
        }
        /* Enabling finds the three waiting: the caller must keep going. */
        assert_true(virtq_enable_notification(f->vq));
        for (unsigned i = 0; i < 3; i++) {
            assert_int_equal(virtq_pop(f->vq, e), 1);
            virtq_push(f->vq, e, 0);
        }
        assert_int_equal(virtq_pop(f->vq, e), 0);
        assert_false(virtq_enable_notification(f->vq));
        /* Now idle and listening: the next buffer kicks. */
        assert_true(drv_add(&f->drv, &b, 1, 0, 0, FALSE) >= 0);
        assert_true(drv_kick_prepare(&f->drv));
        /* Notifications left on while working: a pop that empties the ring re-arms. */
        assert_int_equal(virtq_pop(f->vq, e), 1);
        virtq_push(f->vq, e, 0);
        assert_int_equal(virtq_pop(f->vq, e), 0);
        assert_true(drv_add(&f->drv, &b, 1, 0, 0, FALSE) >= 0);
        assert_true(drv_kick_prepare(&f->drv));
        /* Disabled while caught up: not even the very next buffer kicks. */
        assert_int_equal(virtq_pop(f->vq, e), 1);
        virtq_push(f->vq, e, 0);
        assert_int_equal(virtq_pop(f->vq, e), 0);
        virtq_disable_notification(f->vq);
        assert_true(drv_add(&f->drv, &b, 1, 0, 0, FALSE) >= 0);
        assert_false(drv_kick_prepare(&f->drv));
        if (event)
            assert_int_equal(rd16(f->drv.used), 0);     /* flags stay 0 with EVENT_IDX */
    }
}

/*
 * Driver and device on two threads, as a vCPU and the event loop: the
 * device waits for kicks and runs the disable/drain/enable/recheck loop,
 * the driver adds buffers and waits for interrupts when the ring is full.
 * A lost kick or interrupt leaves one side waiting: it gives up after
 * seconds and the test fails instead of hanging.
 */
typedef struct Race {
    Fix *f;
    unsigned total;
    int kick_fd, irq_fd;
    unsigned device_done;
    char failure[128];
    gint failed;
    VirtqElement *elem;
} Race;

static gboolean race_wait_timeout(Race *r, int fd, const char *what)
{
    for (int tries = 0; tries < 50; tries++) {     /* 5 s */
        struct pollfd p = { .fd = fd, .events = POLLIN };
        uint64_t v;

        if (g_atomic_int_get(&r->failed))
            return FALSE;
        if (poll(&p, 1, 100) > 0)
            return read(fd, &v, sizeof(v)) == sizeof(v);
    }
    g_snprintf(r->failure, sizeof(r->failure), "%s never came", what);
    g_atomic_int_set(&r->failed, 1);
    return FALSE;
}

static void race_signal(int fd)
{
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof(one));

    (void)n;
}

static gpointer race_device(gpointer opaque)
{
    Race *r = opaque;
    VirtQueue *vq = r->f->vq;
    int ret;

    while (r->device_done < r->total) {
        if (!race_wait_timeout(r, r->kick_fd, "a kick"))
            return NULL;
        do {
            virtq_disable_notification(vq);
            while ((ret = virtq_pop(vq, r->elem)) == 1) {
                virtq_push(vq, r->elem, 0);
                r->device_done++;
                if (virtq_needs_notification(vq))
                    race_signal(r->irq_fd);
            }
        } while (ret == 0 && virtq_enable_notification(vq));
        if (ret < 0) {
            g_snprintf(r->failure, sizeof(r->failure), "broken: %s", virtq_get_error(vq));
            g_atomic_int_set(&r->failed, 1);
            return NULL;
        }
    }
    return NULL;
}

static void race_driver(Race *r)
{
    Drv *d = &r->f->drv;
    TBuf b = { SLOT_GPA, 8 };
    unsigned added = 0, used = 0;
    uint32_t len;

    drv_disable_cb(d);
    while (used < r->total) {
        while (added < r->total && d->num_free) {
            assert_true(drv_add(d, &b, 1, 0, added, FALSE) >= 0);
            added++;
            /* Kick after a few, as a driver batching requests would. */
            if ((added % 3 == 0 || !d->num_free || added == r->total) && drv_kick_prepare(d))
                race_signal(r->kick_fd);
        }
        while (drv_get_buf(d, &len) >= 0)
            used++;
        if (used == r->total || (added < r->total && d->num_free))
            continue;
        /* Nothing to do until the device uses something: wait for an interrupt. */
        if (drv_enable_cb(d)) {
            drv_disable_cb(d);
            continue;
        }
        if (!race_wait_timeout(r, r->irq_fd, "an interrupt"))
            return;
        drv_disable_cb(d);
    }
}

static void test_notification_race(void **state)
{
    for (int event = 0; event < 2; event++) {
        g_autoptr(Fix) f = fix_new(64, 64, event ? F_EVENT : 0, 40 + event);
        Race r = { .f = f, .total = 100000 };
        GThread *dev;

        r.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        r.irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(r.kick_fd >= 0 && r.irq_fd >= 0);
        r.elem = virtq_element_new(f->vq);
        dev = g_thread_new("race-device", race_device, &r);
        race_driver(&r);
        if (g_atomic_int_get(&r.failed))
            race_signal(r.kick_fd);
        g_thread_join(dev);
        if (g_atomic_int_get(&r.failed))
            fail_msg("event_idx=%d: %s (device used %u of %u)", event, r.failure,
                     r.device_done, r.total);
        assert_int_equal(r.device_done, r.total);
        virtq_element_free(r.elem);
        close(r.kick_fd);
        close(r.irq_fd);
    }
}

/* --- save and load --- */

static GBytes *save_queue(VirtQueue *vq)
{
    g_autoptr(StateWriter) w = state_writer_new();

    state_writer_begin_section(w, "vq", 1);
    virtq_save(vq, w, "q0.");
    state_writer_end_section(w);
    return state_writer_steal_bytes(w);
}

static gboolean load_queue(VirtQueue *vq, GBytes *state, GError **error)
{
    gsize len;
    const void *data = g_bytes_get_data(state, &len);
    g_autoptr(StateReader) r = state_reader_new(data, len);
    uint32_t version;

    return state_reader_begin_section(r, "vq", 1, &version, error) &&
           virtq_load(vq, r, "q0.", error) && state_reader_end_section(r, error);
}

/*
 * Migration in the middle of traffic: the device quiesces (completes what
 * it holds), saves, and a new queue on the destination loads and carries
 * on; the driver never notices.
 */
static void test_save_load_traffic(void **state)
{
    g_autoptr(Fix) f = fix_new(64, 64, F_INDIRECT | F_EVENT, 50);
    VirtqElement **elems = elems_new(f->vq, 64);

    for (unsigned round = 0; round < 20; round++) {
        g_autoptr(GBytes) saved = NULL;
        g_autoptr(GBytes) again = NULL;
        g_autoptr(GError) err = NULL;
        VirtQueue *dst;
        unsigned n = 0;

        traffic(f, 300, elems, 64);
        /* Some requests are waiting in the ring, some being worked on. */
        for (unsigned i = 0; i < 10; i++)
            fix_add(f, 1, 1, g_rand_boolean(f->rand));
        while (n < 4 && virtq_pop(f->vq, elems[n]) == 1)
            n++;
        for (unsigned i = 0; i < n; i++)
            virtq_fill(f->vq, elems[i], serve(f, elems[i]));
        virtq_flush(f->vq);
        saved = save_queue(f->vq);
        dst = virtq_new(&f->tm->mem, "test/0", 64);
        if (!load_queue(dst, saved, &err))
            fail_msg("round %u: %s", round, err->message);
        again = save_queue(dst);
        assert_true(g_bytes_equal(saved, again));
        for (unsigned i = 0; i < 64; i++) {
            virtq_element_free(elems[i]);
            elems[i] = virtq_element_new(dst);
        }
        virtq_free(f->vq);
        f->vq = dst;
    }
    traffic(f, 300, elems, 64);
    assert_int_equal(f->completed, 21 * 300 + 20 * 10);
    elems_free(elems, 64);
}

static void test_save_load_states(void **state)
{
    g_autoptr(Fix) f = fix_new(16, 16, F_EVENT, 60);
    g_autoptr(VirtqElement) e = virtq_element_new(f->vq);
    g_autoptr(VirtQueue) small = virtq_new(&f->tm->mem, "test/small", 8);
    g_autoptr(VirtQueue) dst = virtq_new(&f->tm->mem, "test/dst", 16);
    g_autoptr(GBytes) disabled = save_queue(dst);
    g_autoptr(GBytes) good = NULL;
    g_autoptr(GBytes) broken = NULL;
    g_autoptr(GError) err = NULL;
    TBuf b = { SLOT_GPA, 8 };
    static const HarnessPoke pokes[] = {
        { "q0.format", 0, 0 },
        { "q0.format", 0, 2 },
        { "q0.enabled", 0, 2 },
        { "q0.broken", 0, 7 },
        { "q0.notify", 0, 2 },
        { "q0.signalled-valid", 0, 2 },
        { "q0.size", 0, 3 },            /* 3: not a power of two */
        { "q0.size", 1, 1 },            /* 256+: above max_size */
        { "q0.desc", 0, 8 },            /* misaligned */
        { "q0.avail", 0, 1 },
        { "q0.used", 0, 2 },
        { "q0.desc", 6, 0x10 },         /* far outside RAM */
        { "q0.features", 4, 0 },        /* VERSION_1 cleared */
        { "q0.last-avail", 0, 9 },      /* taken != returned */
    };

    for (unsigned i = 0; i < 5; i++) {
        assert_true(drv_add(&f->drv, &b, 1, 0, i, FALSE) >= 0);
        assert_int_equal(virtq_pop(f->vq, e), 1);
        virtq_push(f->vq, e, 0);
    }
    good = save_queue(f->vq);
    /* A disabled queue loads as disabled. */
    assert_true(load_queue(dst, good, NULL));
    assert_true(load_queue(dst, disabled, NULL));
    assert_false(virtq_is_enabled(dst));
    /* Into a queue offering less than the saved size. */
    assert_false(load_queue(small, good, &err));
    assert_true(g_error_matches(err, VIREO_ERROR, VIREO_ERROR_INVALID_STATE));
    g_clear_error(&err);
    /* Every damaged copy fails and leaves the queue as it was. */
    assert_true(load_queue(dst, good, NULL));
    for (size_t i = 0; i < G_N_ELEMENTS(pokes); i++) {
        g_autoptr(GBytes) bad = harness_state_poked(good, pokes[i].field, pokes[i].at,
                                                    pokes[i].value);
        g_autoptr(GBytes) after = NULL;

        if (load_queue(dst, bad, &err))
            fail_msg("poke %s[%zu] = %u loaded", pokes[i].field, pokes[i].at, pokes[i].value);
        assert_true(g_error_matches(err, VIREO_ERROR, VIREO_ERROR_INVALID_STATE));
        g_clear_error(&err);
        after = save_queue(dst);
        assert_true(g_bytes_equal(after, good));
    }
    for (size_t keep = 0; keep < g_bytes_get_size(good); keep += 7) {
        g_autoptr(GBytes) cut = harness_state_truncated(good, keep);

        assert_false(load_queue(dst, cut, NULL));
    }
    /* The loaded queue works where the saved one left off. */
    assert_true(drv_add(&f->drv, &b, 1, 0, 9, FALSE) >= 0);
    assert_int_equal(virtq_pop(dst, e), 1);
    virtq_push(dst, e, 0);
    assert_int_equal(rd16(f->drv.used + 2), 6);

    /* A broken queue stays broken across save and load. */
    bad_head(f);
    assert_int_equal(virtq_pop(dst, e), -1);
    broken = save_queue(dst);
    assert_true(load_queue(f->vq, broken, NULL));
    assert_true(virtq_is_broken(f->vq));
    assert_int_equal(virtq_pop(f->vq, e), -1);
    harness_take_guest_warnings();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First, while no other test has used up the warning budget. */
        cmocka_unit_test(test_warnings_rate_limited),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_wraparound),
        cmocka_unit_test(test_wrap_near_limit),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_enable_checks),
        cmocka_unit_test(test_use_before_enable),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_region_split),
        cmocka_unit_test(test_max_size),
        cmocka_unit_test(test_unpop),
        cmocka_unit_test(test_stale_push),
        cmocka_unit_test(test_needs_notification),
        cmocka_unit_test(test_notification_after_65536),
        cmocka_unit_test(test_kick_suppression),
        cmocka_unit_test(test_notification_race),
        cmocka_unit_test(test_save_load_traffic),
        cmocka_unit_test(test_save_load_states),
    };

    harness_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
