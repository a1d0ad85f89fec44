/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Crash consistency by fault injection. A fixed workload (allocating and
 * overwriting writes with copy-on-write from a backing file, discards,
 * zeroes, flushes) runs on a qcow2 image; the library is told to "stop the
 * machine" after the Nth write or sync (every later write and sync fails,
 * nothing more reaches the file). For every N: reopen, check (no
 * corruption; leaks are allowed), repair, and verify that every 4 KiB
 * block holds what the last successful flush made durable or something
 * written after it.
 */
#include <stdlib.h>

#include "helpers.h"
#include "block-internal.h"

#define DISK (4u << 20)
#define BLK 4096u
#define NBLK (DISK / BLK)
#define SEED_BACKING 0xffffffffu

typedef struct Expect {
    uint32_t durable[NBLK];
    GArray *pending[NBLK];      /* seeds written since the last successful flush */
} Expect;

static void expect_init(Expect *x)
{
    for (unsigned i = 0; i < NBLK; i++) {
        x->durable[i] = SEED_BACKING;
        x->pending[i] = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    }
}

static void expect_free(Expect *x)
{
    for (unsigned i = 0; i < NBLK; i++)
        g_array_unref(x->pending[i]);
}

static void expect_write(Expect *x, uint64_t off, uint64_t len, uint32_t seed)
{
    for (uint64_t b = off / BLK; b < (off + len) / BLK; b++)
        g_array_append_val(x->pending[b], seed);
}

static void expect_flushed(Expect *x)
{
    for (unsigned i = 0; i < NBLK; i++) {
        if (x->pending[i]->len)
            x->durable[i] = g_array_index(x->pending[i], uint32_t, x->pending[i]->len - 1);
        g_array_set_size(x->pending[i], 0);
    }
}

static void fill(uint8_t *buf, uint64_t off, uint32_t seed)
{
    if (seed == 0)
        memset(buf, 0, BLK);
    else if (seed == SEED_BACKING)
        pattern_fill(buf, BLK, off, 77);
    else
        pattern_fill(buf, BLK, off, seed);
}

/* The workload; stops at the first failure (the "crash"). */
static void workload(BlockDev *bs, Expect *x)
{
    GRand *rnd = g_rand_new_with_seed(4242);
    g_autofree uint8_t *buf = g_malloc(128 * 1024);

    for (uint32_t op = 1; op <= 60; op++) {
        unsigned kind = g_rand_int_range(rnd, 0, 100);
        uint64_t off = (uint64_t)g_rand_int_range(rnd, 0, NBLK) * BLK;
        uint64_t len = (uint64_t)g_rand_int_range(rnd, 1, 33) * BLK;
        gboolean ok;

        len = MIN(len, DISK - off);
        if (kind < 12) {
            ok = block_flush_sync(bs, NULL);
            if (ok)
                expect_flushed(x);
        } else if (kind < 18) {
            /* Whole clusters only: partial discards are ignored. */
            off = VIREO_ALIGN_DOWN(off, (uint64_t)65536);
            len = MIN((uint64_t)65536 * (1 + op % 2), DISK - off);
            ok = block_discard_sync(bs, off, len, NULL);
            /* A failed request may have written part of its range. */
            expect_write(x, off, len, 0);
        } else if (kind < 24) {
            ok = block_write_zeroes_sync(bs, off, len, op % 2 ? BLOCK_REQ_MAY_UNMAP : 0, NULL);
            /* A failed request may have written part of its range. */
            expect_write(x, off, len, 0);
        } else {
            for (uint64_t b = 0; b < len; b += BLK)
                fill(buf + b, off + b, op);
            ok = block_pwrite(bs, off, buf, len, 0, NULL);
            /* A failed request may have written part of its range. */
            expect_write(x, off, len, op);
        }
        if (!ok)
            break;
    }
    g_rand_free(rnd);
}

static void quiet_log(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                      gpointer data)
{
}

static void copy_file(const char *from, const char *to)
{
    g_autofree char *data = NULL;
    gsize len;

    assert_true(g_file_get_contents(from, &data, &len, NULL));
    assert_true(g_file_set_contents(to, data, len, NULL));
}

static void crash_loop(gboolean lazy, unsigned step, uint32_t cs, uint64_t l2_cache)
{
    g_autofree char *dir = tmpdir_new();
    g_autofree char *base = g_build_filename(dir, "base.raw", NULL);
    g_autofree char *pristine = g_build_filename(dir, "pristine.qcow2", NULL);
    g_autofree char *img = g_build_filename(dir, "img.qcow2", NULL);
    g_autoptr(GError) err = NULL;
    Qcow2CreateOptions co = { .size = DISK, .backing_file = "base.raw",
                              .backing_format = "raw", .lazy_refcounts = lazy,
                              .cluster_size = cs };
    BlockOpenOptions o = { .discard = TRUE, .l2_cache_size = l2_cache };
    g_autofree uint8_t *want = g_malloc(BLK);
    g_autofree uint8_t *got = g_malloc(BLK);
    int64_t total;
    guint h = g_log_set_handler("vireo-storage", G_LOG_LEVEL_WARNING, quiet_log, NULL);

    assert_true(block_create_raw(base, DISK, &err));
    {
        BlockOpenOptions ob = { .format = "raw" };
        g_autoptr(BlockDev) bs = open_or_fail(base, &ob);
        for (uint64_t off = 0; off < DISK; off += BLK) {
            fill(want, off, SEED_BACKING);
            assert_true(block_pwrite(bs, off, want, BLK, 0, &err));
        }
    }
    assert_true(qcow2_create(pristine, &co, &err));

    /* Count the events of a complete run. */
    copy_file(pristine, img);
    {
        Expect x;
        BlockDev *bs = open_or_fail(img, &o);
        expect_init(&x);
        block_file_fault_set(G_MAXINT64);
        workload(bs, &x);
        block_close(bs);
        total = G_MAXINT64 - block_file_fault_remaining();
        block_file_fault_set(-1);
        expect_free(&x);
    }
    assert_true(total > 20);
    if (g_getenv("VIREO_CRASH_STEP"))      /* 1: every point, for long runs */
        step = MAX(1, atoi(g_getenv("VIREO_CRASH_STEP")));
    print_message("%s: %" G_GINT64_FORMAT " writes and syncs, crashing after every %u\n",
                  lazy ? "lazy refcounts" : "ordered refcounts", total, step);

    for (int64_t n = 0; n <= total; n += step) {
        Expect x;
        BlockCheckResult r;
        BlockDev *bs;

        copy_file(pristine, img);
        expect_init(&x);
        bs = open_or_fail(img, &o);
        block_file_fault_set(n);
        workload(bs, &x);
        block_file_fault_set(0);          /* the machine is off: close writes nothing */
        block_close(bs);
        block_file_fault_set(-1);

        bs = open_or_fail(img, &o);
        if (!block_check(bs, 0, &r, &err))
            fail_msg("crash after %" G_GINT64_FORMAT " events: check: %s", n, err->message);
        if (r.corruptions || r.check_errors)
            fail_msg("crash after %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " events: %"
                     G_GUINT64_FORMAT " corruptions", n, total, r.corruptions);
        assert_true(block_check(bs, BLOCK_CHECK_FIX_LEAKS | BLOCK_CHECK_FIX_ERRORS, &r, &err));
        assert_int_equal(r.leaks + r.corruptions, 0);
        for (unsigned b = 0; b < NBLK; b++) {
            gboolean match;
            assert_true(block_pread(bs, (uint64_t)b * BLK, got, BLK, &err));
            fill(want, (uint64_t)b * BLK, x.durable[b]);
            match = memcmp(want, got, BLK) == 0;
            for (guint k = 0; !match && k < x.pending[b]->len; k++) {
                fill(want, (uint64_t)b * BLK, g_array_index(x.pending[b], uint32_t, k));
                match = memcmp(want, got, BLK) == 0;
            }
            if (!match) {
                int found = -2;
                for (uint32_t sd = 0; sd <= 61 && found == -2; sd++) {
                    fill(want, (uint64_t)b * BLK, sd == 61 ? SEED_BACKING : sd);
                    if (memcmp(want, got, BLK) == 0)
                        found = sd;
                }
                print_error("block %u holds seed %d; pending:", b, found);
                for (guint k = 0; k < x.pending[b]->len; k++)
                    print_error(" %u", g_array_index(x.pending[b], uint32_t, k));
                print_error("\n");
            }
            if (!match)
                fail_msg("crash after %" G_GINT64_FORMAT " events: block %u holds neither "
                         "its flushed data (seed %u) nor a later write", n, b, x.durable[b]);
        }
        block_close(bs);
        expect_free(&x);
    }
    g_log_remove_handler("vireo-storage", h);
    rm_rf(dir);
}

static void test_crash_every_event(void **unused)
{
    crash_loop(FALSE, 1, 65536, 0);
}

static void test_crash_lazy_refcounts(void **unused)
{
    crash_loop(TRUE, 3, 65536, 0);
}

/* 4 KiB clusters and a four-table cache: metadata is evicted and written
 * back in the middle of requests, not only at flushes. */
static void test_crash_small_cache(void **unused)
{
    crash_loop(FALSE, 5, 4096, 4 * 4096);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_every_event),
        cmocka_unit_test(test_crash_lazy_refcounts),
        cmocka_unit_test(test_crash_small_cache),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
