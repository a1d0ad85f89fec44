/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hostile qcow2 images: a generator of malformed files, one per header
 * field and metadata table, plus seeded random corruption. Each must be
 * refused with a GError naming the field, or (where the damage is only
 * found on use) fail the affected requests with -EIO. Never a crash, a
 * hang, a huge allocation or a write outside the file. Run under
 * ASan/UBSan too (make check-asan).
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include "helpers.h"

#define CS 65536ull
#define MAX_GROWTH (16ull << 20)

typedef struct Fixture {
    char *dir;
    char *good;      /* a valid image with backing file, snapshot, data */
    char *img;       /* the copy each case mutates */
} Fixture;

static int setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);
    g_autofree char *base = NULL;
    g_autoptr(GError) err = NULL;
    BlockOpenOptions o = { 0 };

    f->dir = tmpdir_new();
    f->good = g_build_filename(f->dir, "good.qcow2", NULL);
    f->img = g_build_filename(f->dir, "img.qcow2", NULL);
    base = g_build_filename(f->dir, "base.raw", NULL);
    assert_true(block_create_raw(base, 4 << 20, &err));
    create_qcow2(f->good, 4 << 20, CS, "base.raw", "raw");
    {
        g_autoptr(BlockDev) bs = open_or_fail(f->good, &o);
        uint8_t buf[65536];
        memset(buf, 0x5a, sizeof(buf));
        assert_true(block_pwrite(bs, 0, buf, sizeof(buf), 0, &err));
        assert_true(block_snapshot_create(bs, "snap", &err));
        assert_true(block_pwrite(bs, 1 << 20, buf, 4096, 0, &err));
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;

    rm_rf(f->dir);
    g_free(f->dir);
    g_free(f->good);
    g_free(f->img);
    g_free(f);
    return 0;
}

static void copy_good(Fixture *f)
{
    g_autofree char *data = NULL;
    gsize len;

    assert_true(g_file_get_contents(f->good, &data, &len, NULL));
    assert_true(g_file_set_contents(f->img, data, len, NULL));
}

static void patch(const char *path, uint64_t off, const void *buf, size_t len)
{
    int fd = open(path, O_RDWR);

    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
    close(fd);
}

static void patch_be(const char *path, uint64_t off, int width, uint64_t v)
{
    uint8_t b[8];

    for (int i = 0; i < width; i++)
        b[i] = v >> (8 * (width - 1 - i));
    patch(path, off, b, width);
}

static uint64_t read_be(const char *path, uint64_t off, int width)
{
    uint8_t b[8] = { 0 };
    uint64_t v = 0;
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, b, width, off), width);
    close(fd);
    for (int i = 0; i < width; i++)
        v = v << 8 | b[i];
    return v;
}

static uint64_t file_size(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void quiet_log(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                      gpointer data)
{
}

/*
 * Uses an image that opened: reads, status, check, a write, a repair.
 * Errors are fine; crashes, hangs and growth beyond MAX_GROWTH are not.
 */
static void exercise(const char *path, uint64_t size_before)
{
    g_autoptr(GError) err = NULL;
    BlockOpenOptions o = { .format = "qcow2", .no_backing = FALSE };
    g_autoptr(BlockDev) bs = block_open(path, &o, &err);
    g_autofree uint8_t *buf = g_malloc(1 << 20);
    BlockCheckResult r;
    BlockStatus st;
    uint64_t size;

    if (!bs)
        return;
    size = block_get_size(bs);
    block_pread(bs, 0, buf, MIN(size, (uint64_t)1 << 20), NULL);
    if (size > (1 << 20))
        block_pread(bs, size - (1 << 20), buf, 1 << 20, NULL);
    for (uint64_t off = 0, n = 0; off < size && n < 16; n++) {
        if (!block_get_status(bs, off, size - off, &st, NULL))
            break;
        off += st.length;
    }
    block_check(bs, 0, &r, NULL);
    memset(buf, 0xa5, 65536);
    block_pwrite(bs, 0, buf, 65536, 0, NULL);
    block_pwrite(bs, MIN(size, (uint64_t)3 << 20) & ~65535ull, buf, 4096, 0, NULL);
    block_flush_sync(bs, NULL);
    block_check(bs, BLOCK_CHECK_FIX_LEAKS | BLOCK_CHECK_FIX_ERRORS, &r, NULL);
    block_close(g_steal_pointer(&bs));
    assert_true(file_size(path) <= size_before + MAX_GROWTH);
}

typedef enum { AT_HEADER, AT_L1, AT_RCT, AT_SN, AT_EXT, AT_L2 } Base;

typedef struct Case {
    const char *what;
    Base base;
    uint64_t off;       /* from the base */
    int width;
    uint64_t value;
    const char *expect; /* substring of the open error; NULL: open may work */
} Case;

static const Case cases[] = {
    { "bad magic", AT_HEADER, 0, 4, 0x12345678, "magic" },
    { "version 1", AT_HEADER, 4, 4, 1, "version" },
    { "version 4", AT_HEADER, 4, 4, 4, "version" },
    { "cluster_bits 8", AT_HEADER, 20, 4, 8, "cluster_bits" },
    { "cluster_bits 22", AT_HEADER, 20, 4, 22, "cluster_bits" },
    { "cluster_bits huge", AT_HEADER, 20, 4, 0xffffffff, "cluster_bits" },
    { "size 2^63", AT_HEADER, 24, 8, 1ull << 63, "size" },
    { "size beyond L1", AT_HEADER, 24, 8, 1ull << 50, "l1_size" },
    { "crypt_method", AT_HEADER, 32, 4, 1, "crypt_method" },
    { "l1_size huge", AT_HEADER, 36, 4, 0xffffffff, "l1_size" },
    { "l1_size 0", AT_HEADER, 36, 4, 0, "l1_size" },
    { "l1_table_offset unaligned", AT_HEADER, 40, 8, 0x30008, "l1_table_offset" },
    { "l1_table_offset 0", AT_HEADER, 40, 8, 0, "l1_table_offset" },
    { "l1_table_offset past EOF", AT_HEADER, 40, 8, 1ull << 55, "l1_table_offset" },
    { "l1_table_offset wraps", AT_HEADER, 40, 8, 0xffffffffffff0000ull, "l1_table_offset" },
    { "L1 over refcount table", AT_HEADER, 40, 8, CS, "l1_table_offset" },
    { "refcount_table_offset 0", AT_HEADER, 48, 8, 0, "refcount_table_offset" },
    { "refcount_table_offset unaligned", AT_HEADER, 48, 8, CS + 8, "refcount_table_offset" },
    { "refcount_table_offset past EOF", AT_HEADER, 48, 8, 1ull << 60, "refcount_table_offset" },
    { "refcount_table_clusters 0", AT_HEADER, 56, 4, 0, "refcount_table_clusters" },
    { "refcount_table_clusters huge", AT_HEADER, 56, 4, 0xffffffff, "refcount_table_clusters" },
    { "nb_snapshots huge", AT_HEADER, 60, 4, 0xffffffff, "nb_snapshots" },
    { "nb_snapshots past table", AT_HEADER, 60, 4, 5000, "snapshot table entry" },
    { "snapshots_offset unaligned", AT_HEADER, 64, 8, 0x1234, "snapshots_offset" },
    { "snapshots_offset past EOF", AT_HEADER, 64, 8, 1ull << 50, "snapshots_offset" },
    { "snapshot table over L1", AT_HEADER, 64, 8, 3 * CS, "snapshot" },
    { "unknown incompatible bit", AT_HEADER, 72, 8, 1ull << 40, "incompatible_features" },
    { "external data file bit", AT_HEADER, 72, 8, 1 << 2, "incompatible_features" },
    { "extended L2 bit", AT_HEADER, 72, 8, 1 << 4, "incompatible_features" },
    { "compression bit without type", AT_HEADER, 72, 8, 1 << 3, "compression_type" },
    { "refcount_order 3", AT_HEADER, 96, 4, 3, "refcount_order" },
    { "refcount_order 200", AT_HEADER, 96, 4, 200, "refcount_order" },
    { "header_length 100", AT_HEADER, 100, 4, 100, "header_length" },
    { "header_length unaligned", AT_HEADER, 100, 4, 113, "header_length" },
    { "header_length past cluster", AT_HEADER, 100, 4, 0x20000, "header_length" },
    { "compression_type 9", AT_HEADER, 104, 1, 9, "compression_type" },
    { "backing_file_size 2000", AT_HEADER, 16, 4, 2000, "backing_file_size" },
    { "backing name too long", AT_HEADER, 16, 4, 1024, "backing_file_size" },
    { "backing_file_offset past cluster", AT_HEADER, 8, 8, CS - 4, "backing_file_offset" },
    { "backing_file_offset in header", AT_HEADER, 8, 8, 16, "backing_file_offset" },
    { "backing_file_offset huge", AT_HEADER, 8, 8, 1ull << 62, "backing_file_offset" },
    { "extension length huge", AT_EXT, 4, 4, 0xfffffff0, "extension" },
    { "L1 entry past EOF", AT_L1, 0, 8, 1ull << 50, "L1 table entry" },
    { "L1 entry unaligned", AT_L1, 0, 8, 0x8000000000040200ull, "L1 table entry" },
    { "L1 entry reserved bits", AT_L1, 0, 8, 0x0100000000040000ull, "L1 table entry" },
    { "refcount table entry past EOF", AT_RCT, 0, 8, 1ull << 45, "refcount table entry" },
    { "refcount table entry unaligned", AT_RCT, 0, 8, 2 * CS + 512, "refcount table entry" },
    { "snapshot L1 past EOF", AT_SN, 0, 8, 1ull << 45, "snapshot table entry" },
    { "snapshot l1_size huge", AT_SN, 8, 4, 0xffffffff, "snapshot table entry" },
    { "snapshot extra data huge", AT_SN, 36, 4, 0x7fffffff, "snapshot table entry" },
    /* Found only on use: the requests fail, check reports, repair fixes. */
    { "L2 entry past EOF", AT_L2, 0, 8, 0x8000400000000000ull, NULL },
    { "L2 entry unaligned", AT_L2, 0, 8, 0x8000000000050200ull, NULL },
    { "L2 entry at the L1 table", AT_L2, 0, 8, 0x8000000000030000ull, NULL },
    { "L2 compressed past EOF", AT_L2, 0, 8, 0x4000000400000000ull, NULL },
    { "refcount block at the L1 table", AT_RCT, 0, 8, 3 * CS, NULL },
    { "refcount table entry 0", AT_RCT, 0, 8, 0, NULL },
    { "lazy refcounts and dirty", AT_HEADER, 72, 8, 1, NULL },
    { "corrupt bit", AT_HEADER, 72, 8, 2, "corrupt" },
};

static uint64_t base_of(const char *path, Base b)
{
    switch (b) {
    case AT_HEADER: return 0;
    case AT_L1: return read_be(path, 40, 8);
    case AT_RCT: return read_be(path, 48, 8);
    case AT_SN: return read_be(path, 64, 8);
    case AT_EXT: return 112;     /* our images: first extension after the v3 header */
    case AT_L2: return read_be(path, read_be(path, 40, 8), 8) & 0x00fffffffffffe00ull;
    }
    return 0;
}

static void test_cases(void **state)
{
    Fixture *f = *state;
    guint h = g_log_set_handler("vireo-storage", G_LOG_LEVEL_WARNING, quiet_log, NULL);

    for (size_t i = 0; i < VIREO_ARRAY_SIZE(cases); i++) {
        const Case *c = &cases[i];
        g_autoptr(GError) err = NULL;
        BlockOpenOptions o = { .format = "qcow2" };
        BlockDev *bs;
        uint64_t before;

        copy_good(f);
        patch_be(f->img, base_of(f->img, c->base) + c->off, c->width, c->value);
        before = file_size(f->img);
        bs = block_open(f->img, &o, &err);
        if (c->expect) {
            if (bs)
                fail_msg("%s: opened, expected an error about '%s'", c->what, c->expect);
            if (!strstr(err->message, c->expect))
                fail_msg("%s: error '%s' does not mention '%s'", c->what, err->message,
                         c->expect);
            assert_int_equal(file_size(f->img), before);
        } else {
            if (bs)
                block_close(bs);
            exercise(f->img, before);
        }
    }
    g_log_remove_handler("vireo-storage", h);
}

/* Requests on a cluster whose L2 entry is wrong fail; the file never grows. */
static void test_bad_l2_requests(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    BlockOpenOptions o = { .format = "qcow2" };
    uint8_t buf[4096];
    guint h = g_log_set_handler("vireo-storage", G_LOG_LEVEL_WARNING, quiet_log, NULL);
    uint64_t before;

    copy_good(f);
    patch_be(f->img, base_of(f->img, AT_L2), 8, 0x8000400000000000ull);
    before = file_size(f->img);
    {
        BlockOpenOptions ro = { .format = "qcow2", .read_only = TRUE };
        g_autoptr(BlockDev) bs = open_or_fail(f->img, &ro);
        assert_false(block_pread(bs, 0, buf, sizeof(buf), &err));
        g_clear_error(&err);
        assert_true(block_pread(bs, 2 << 20, buf, sizeof(buf), &err));
    }
    {
        g_autoptr(BlockDev) bs = open_or_fail(f->img, &o);
        BlockCheckResult r;
        memset(buf, 1, sizeof(buf));
        assert_false(block_pwrite(bs, 0, buf, sizeof(buf), 0, &err));
        g_clear_error(&err);
        assert_true(file_size(f->img) <= before + MAX_GROWTH);
        assert_true(block_check(bs, 0, &r, &err));
        assert_true(r.corruptions > 0);
    }
    {
        /* Marked corrupt by the failed write: read-write opens are refused
         * until check repairs it (read-only access still works). */
        g_autoptr(BlockDev) bs = block_open(f->img, &o, &err);
        assert_null(bs);
        assert_non_null(strstr(err->message, "corrupt"));
    }
    g_log_remove_handler("vireo-storage", h);
}

static void test_backing_self(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autofree char *p = g_build_filename(f->dir, "self.qcow2", NULL);
    g_autofree char *deep = NULL;
    BlockOpenOptions o = { .read_only = TRUE };

    create_qcow2(p, 1 << 20, CS, "self.qcow2", "qcow2");
    assert_null(block_open(p, &o, &err));
    assert_non_null(strstr(err->message, "loop"));
    g_clear_error(&err);
    /* A chain one deeper than allowed. */
    for (int i = 0; i <= BLOCK_MAX_CHAIN_DEPTH; i++) {
        g_autofree char *name = g_strdup_printf("%s/d%d.qcow2", f->dir, i);
        g_autofree char *below = g_strdup_printf("d%d.qcow2", i + 1);
        if (i == BLOCK_MAX_CHAIN_DEPTH)
            create_qcow2(name, 1 << 20, CS, NULL, NULL);
        else
            create_qcow2(name, 1 << 20, CS, below, "qcow2");
    }
    deep = g_strdup_printf("%s/d0.qcow2", f->dir);
    assert_null(block_open(deep, &o, &err));
    assert_non_null(strstr(err->message, "deeper"));
}

/* Seeded random damage to the first clusters: no crash, bounded growth. */
static void test_random_damage(void **state)
{
    Fixture *f = *state;
    GRand *rnd = g_rand_new_with_seed(1234);
    guint h = g_log_set_handler("vireo-storage", G_LOG_LEVEL_WARNING, quiet_log, NULL);
    unsigned iterations = g_getenv("VIREO_HOSTILE_ITERATIONS") ?
        atoi(g_getenv("VIREO_HOSTILE_ITERATIONS")) : 150;

    for (unsigned i = 0; i < iterations; i++) {
        uint64_t size;
        copy_good(f);
        size = file_size(f->img);
        for (int k = g_rand_int_range(rnd, 1, 6); k > 0; k--) {
            uint64_t off;
            if (g_rand_boolean(rnd))
                off = g_rand_int_range(rnd, 0, 128);            /* header fields */
            else
                off = g_rand_int_range(rnd, 0, (gint32)MIN(size, 8 * CS) / 8) * 8;
            patch_be(f->img, off, 8, ((uint64_t)g_rand_int(rnd) << 32) | g_rand_int(rnd));
        }
        exercise(f->img, size);
    }
    g_log_remove_handler("vireo-storage", h);
    g_rand_free(rnd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_l2_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backing_self, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_damage, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
