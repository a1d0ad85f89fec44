/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Device-side dirty tracking for migration (guest-memory.h): a used
 * element marks exactly the pages of what the device wrote plus the used
 * ring's, numbered by memfd offset; nothing is marked while tracking is
 * off; a quiesced GuestMemory stops virtqueues from taking requests.
 *
 * Guest memory: region 0 (1 MiB at 0, memfd offset 0) and region 1
 * (256 KiB at 4 GiB, memfd offset 1 MiB), as vireo-vmm lays out RAM.
 */
#include <string.h>

#include "harness.h"
#include "vireo/guest-memory.h"
#include "vireo/virtqueue.h"

#define PAGE 4096ULL
#define R0_SIZE (1024 * 1024ULL)
#define R1_GPA 0x100000000ULL
#define R1_SIZE (256 * 1024ULL)
#define NR_PAGES ((R0_SIZE + R1_SIZE) / PAGE)
#define BITMAP_LONGS ((NR_PAGES + GUEST_MEMORY_BITS_PER_LONG - 1) / GUEST_MEMORY_BITS_PER_LONG)

#define QSIZE 8
#define DESC_GPA 0x10000ULL
#define AVAIL_GPA 0x10080ULL
#define USED_GPA 0x11000ULL             /* a page of its own */

typedef struct Mem {
    GuestMemory mem;
    uint8_t *r0, *r1;
} Mem;

static Mem *mem_new(void)
{
    Mem *m = g_new0(Mem, 1);

    m->r0 = g_malloc0(R0_SIZE);
    m->r1 = g_malloc0(R1_SIZE);
    m->mem.regions[0] = (GuestRegion){ .gpa = 0, .size = R0_SIZE, .host = m->r0 };
    m->mem.regions[1] = (GuestRegion){ .gpa = R1_GPA, .size = R1_SIZE, .host = m->r1,
                                       .file_offset = R0_SIZE };
    m->mem.nr_regions = 2;
    m->mem.ram_size = R0_SIZE + R1_SIZE;
    return m;
}

static void mem_free(Mem *m)
{
    guest_memory_dirty_free(&m->mem);
    g_free(m->r0);
    g_free(m->r1);
    g_free(m);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Mem, mem_free)

static void write_desc(Mem *m, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                       uint16_t next)
{
    uint8_t *d = guest_memory_ptr(&m->mem, DESC_GPA + 16 * i, 16);

    vireo_le_store(d, 8, addr);
    vireo_le_store(d + 8, 4, len);
    vireo_le_store(d + 12, 2, flags);
    vireo_le_store(d + 14, 2, next);
}

/* Makes the chain at @head available as the driver's entry @idx. */
static void make_available(Mem *m, uint16_t idx, uint16_t head)
{
    uint8_t *avail = guest_memory_ptr(&m->mem, AVAIL_GPA, 6 + 2 * QSIZE);

    vireo_le_store(avail + 4 + 2 * (idx % QSIZE), 2, head);
    __atomic_store_n((uint16_t *)(avail + 2), GUINT16_TO_LE(idx + 1), __ATOMIC_RELEASE);
}

static VirtQueue *queue_new(Mem *m)
{
    VirtqConfig cfg = {
        .size = QSIZE, .desc_addr = DESC_GPA, .avail_addr = AVAIL_GPA, .used_addr = USED_GPA,
        .features = 1ULL << VIRTQ_F_VERSION_1,
    };
    VirtQueue *vq = virtq_new(&m->mem, "dirty/0", QSIZE);

    assert_true(virtq_enable(vq, &cfg));
    return vq;
}

/*
 * A request with a readable header and two writable buffers: one that
 * crosses from page 0x30 into 0x31, one in region 1 from its page 2 on.
 */
static void add_request(Mem *m, uint16_t idx)
{
    write_desc(m, 0, 0x20000, 100, VIRTQ_DESC_F_NEXT, 1);
    write_desc(m, 1, 0x30ff0, 0x40, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
    write_desc(m, 2, R1_GPA + 0x2000, 0x3000, VIRTQ_DESC_F_WRITE, 0);
    make_available(m, idx, 0);
}

static GArray *collect(Mem *m)
{
    unsigned long bitmap[BITMAP_LONGS] = { 0 };
    GArray *pages = g_array_new(FALSE, FALSE, sizeof(uint64_t));

    guest_memory_dirty_collect(&m->mem, bitmap);
    for (uint64_t p = 0; p < NR_PAGES; p++) {
        if (bitmap[p / GUEST_MEMORY_BITS_PER_LONG] & (1UL << (p % GUEST_MEMORY_BITS_PER_LONG)))
            g_array_append_val(pages, p);
    }
    return pages;
}

static void assert_pages(GArray *got, const uint64_t *want, unsigned n)
{
    if (got->len != n) {
        for (unsigned i = 0; i < got->len; i++)
            print_error("dirty page %" G_GUINT64_FORMAT "\n", g_array_index(got, uint64_t, i));
    }
    assert_int_equal(got->len, n);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(g_array_index(got, uint64_t, i), want[i]);
    g_array_unref(got);
}

static void test_used_element_marks_pages(void **state)
{
    g_autoptr(Mem) m = mem_new();
    g_autoptr(VirtQueue) vq = queue_new(m);
    g_autoptr(VirtqElement) e = virtq_element_new(vq);
    uint8_t data[0x40 + 0x1000 + 10];
    /* Used ring, region 0 pages 0x30-0x31, region 1 pages 2-3 (after 256 of region 0). */
    static const uint64_t want[] = { 0x11, 0x30, 0x31, 256 + 2, 256 + 3 };

    (void)state;
    guest_memory_dirty_start(&m->mem);
    add_request(m, 0);
    assert_int_equal(virtq_pop(vq, e), 1);
    assert_int_equal(e->in_len, 0x3040);
    /* Pops read only: nothing is dirty yet. */
    assert_pages(collect(m), NULL, 0);

    /* 0x40 bytes in the first buffer, 0x1000 + 10 in the second: up to page 3 of region 1. */
    memset(data, 0xa5, sizeof(data));
    assert_int_equal(virtq_element_write(e, 0, data, sizeof(data)), sizeof(data));
    virtq_push(vq, e, sizeof(data));
    assert_pages(collect(m), want, G_N_ELEMENTS(want));
    /* Collected bits are cleared. */
    assert_pages(collect(m), NULL, 0);
}

static void test_written_clamps_marks(void **state)
{
    g_autoptr(Mem) m = mem_new();
    g_autoptr(VirtQueue) vq = queue_new(m);
    g_autoptr(VirtqElement) e = virtq_element_new(vq);
    static const uint64_t nothing_written[] = { 0x11 };
    static const uint64_t all_written[] = { 0x11, 0x30, 0x31, 258, 259, 260 };

    (void)state;
    guest_memory_dirty_start(&m->mem);
    add_request(m, 0);
    assert_int_equal(virtq_pop(vq, e), 1);
    virtq_push(vq, e, 0);
    assert_pages(collect(m), nothing_written, G_N_ELEMENTS(nothing_written));

    /* A length beyond the buffers is clamped, as the driver sees it. */
    add_request(m, 1);
    assert_int_equal(virtq_pop(vq, e), 1);
    virtq_push(vq, e, UINT32_MAX);
    assert_pages(collect(m), all_written, G_N_ELEMENTS(all_written));
}

static void test_off_marks_nothing(void **state)
{
    g_autoptr(Mem) m = mem_new();
    g_autoptr(VirtQueue) vq = queue_new(m);
    g_autoptr(VirtqElement) e = virtq_element_new(vq);

    (void)state;
    /* Never started: no bitmap at all. */
    add_request(m, 0);
    assert_int_equal(virtq_pop(vq, e), 1);
    virtq_push(vq, e, 0x100);
    assert_null(m->mem.dev_dirty);

    /* Started and stopped: the bitmap stays, untouched. */
    guest_memory_dirty_start(&m->mem);
    guest_memory_dirty_stop(&m->mem);
    add_request(m, 1);
    assert_int_equal(virtq_pop(vq, e), 1);
    virtq_push(vq, e, 0x100);
    assert_pages(collect(m), NULL, 0);

    /* A restart forgets what was marked before it. */
    guest_memory_dirty_start(&m->mem);
    guest_memory_mark_dirty(&m->mem, m->r0 + 0x5000, 1);
    guest_memory_dirty_start(&m->mem);
    assert_pages(collect(m), NULL, 0);
}

static void test_mark_across_regions(void **state)
{
    g_autoptr(Mem) m = mem_new();
    static const uint64_t want[] = { 255, 256 };
    static const uint64_t want_end[] = { 319 };

    (void)state;
    guest_memory_dirty_start(&m->mem);
    /* Not RAM: ignored. */
    guest_memory_mark_dirty(&m->mem, &want, sizeof(want));
    assert_pages(collect(m), NULL, 0);
    /* memfd-contiguous ranges are one call (a balloon run); here the hosts differ. */
    guest_memory_mark_dirty(&m->mem, m->r0 + R0_SIZE - 8, 8);
    guest_memory_mark_dirty(&m->mem, m->r1, 1);
    assert_pages(collect(m), want, G_N_ELEMENTS(want));
    /* The last byte of RAM, and a range running past it, stop at the end. */
    guest_memory_mark_dirty(&m->mem, m->r1 + R1_SIZE - 1, 4096);
    assert_pages(collect(m), want_end, G_N_ELEMENTS(want_end));
}

static void test_quiesced(void **state)
{
    g_autoptr(Mem) m = mem_new();
    g_autoptr(VirtQueue) vq = queue_new(m);
    g_autoptr(VirtqElement) e = virtq_element_new(vq);
    uint8_t *used = guest_memory_ptr(&m->mem, USED_GPA, 6 + 8 * QSIZE);
    uint8_t before[6 + 8 * QSIZE];

    (void)state;
    guest_memory_dirty_start(&m->mem);
    add_request(m, 0);
    memcpy(before, used, sizeof(before));
    guest_memory_set_quiesced(&m->mem, TRUE);
    /* Work is available, but nothing is taken or written. */
    virtq_disable_notification(vq);
    assert_int_equal(virtq_pop(vq, e), 0);
    assert_false(virtq_enable_notification(vq));
    assert_memory_equal(used, before, sizeof(before));
    assert_pages(collect(m), NULL, 0);

    guest_memory_set_quiesced(&m->mem, FALSE);
    assert_int_equal(virtq_pop(vq, e), 1);
    virtq_push(vq, e, 0);
    assert_int_equal(vireo_le_load(used + 2, 2), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_used_element_marks_pages),
        cmocka_unit_test(test_written_clamps_marks),
        cmocka_unit_test(test_off_marks_nothing),
        cmocka_unit_test(test_mark_across_regions),
        cmocka_unit_test(test_quiesced),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
