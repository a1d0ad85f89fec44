/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The block layer through its public API: round trips for raw and qcow2
 * at every cluster size, requests at depth 32 against a reference model,
 * backing chains, snapshots, locking, probing, resize, compressed
 * clusters, lazy refcounts and repair.
 */
#include <fcntl.h>
#include <unistd.h>

#include "helpers.h"

/* ---- a reference model and an asynchronous driver ---- */

typedef struct Model {
    uint8_t *data;
    uint64_t size;
} Model;

typedef struct Req {
    struct Harness *h;
    gboolean write;
    uint64_t offset;
    uint64_t len;
    uint8_t *buf;
    struct iovec iov[3];
    int iovcnt;
} Req;

typedef struct Harness {
    BlockDev *bs;
    Model m;
    unsigned in_flight;
    unsigned done;
    GPtrArray *active;      /* Req* in flight */
    gboolean failed;
} Harness;

static void req_done(void *opaque, int ret)
{
    Req *r = opaque;
    Harness *h = r->h;

    if (ret != 0) {
        h->failed = TRUE;
        print_error("request %s %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT " failed: %s\n",
                    r->write ? "write" : "read", r->offset, r->len, g_strerror(-ret));
    } else if (!r->write && memcmp(r->buf, h->m.data + r->offset, r->len) != 0) {
        h->failed = TRUE;
        print_error("read %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT " differs from the model\n",
                    r->offset, r->len);
    }
    g_ptr_array_remove_fast(h->active, r);
    h->in_flight--;
    h->done++;
    g_free(r->buf);
    g_free(r);
}

/* In-flight requests never overlap a write in flight, byte-wise, so the
 * model is exact; they do share clusters, which is what we test. */
static gboolean conflicts(Harness *h, gboolean write, uint64_t off, uint64_t len)
{
    for (guint i = 0; i < h->active->len; i++) {
        Req *r = h->active->pdata[i];
        if ((write || r->write) && off < r->offset + r->len && r->offset < off + len)
            return TRUE;
    }
    return FALSE;
}

static void submit(Harness *h, gboolean write, uint64_t off, uint64_t len, uint32_t seed)
{
    Req *r = g_new0(Req, 1);
    uint64_t a, b;

    r->h = h;
    r->write = write;
    r->offset = off;
    r->len = len;
    r->buf = g_malloc(len);
    /* Split into up to three iovec elements at sector boundaries. */
    a = (len / BLOCK_SECTOR_SIZE / 3) * BLOCK_SECTOR_SIZE;
    b = a * 2;
    if (a) {
        r->iov[0] = (struct iovec){ r->buf, a };
        r->iov[1] = (struct iovec){ r->buf + a, b - a };
        r->iov[2] = (struct iovec){ r->buf + b, len - b };
        r->iovcnt = 3;
    } else {
        r->iov[0] = (struct iovec){ r->buf, len };
        r->iovcnt = 1;
    }
    g_ptr_array_add(h->active, r);
    h->in_flight++;
    if (write) {
        pattern_fill(r->buf, len, off, seed);
        memcpy(h->m.data + off, r->buf, len);
        block_writev(h->bs, off, r->iov, r->iovcnt, 0, req_done, r);
    } else {
        block_readv(h->bs, off, r->iov, r->iovcnt, req_done, r);
    }
}

static void drain(Harness *h)
{
    while (h->in_flight)
        block_engine_wait(block_get_engine(h->bs), 1000);
}

static void verify_all(BlockDev *bs, const Model *m)
{
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *buf = g_malloc(m->size);

    if (!block_pread(bs, 0, buf, m->size, &err))
        fail_msg("read: %s", err->message);
    for (uint64_t i = 0; i < m->size; i++)
        if (buf[i] != m->data[i])
            fail_msg("byte %" G_GUINT64_FORMAT " is 0x%02x, expected 0x%02x", i, buf[i],
                     m->data[i]);
}

/* Random traffic at depth @depth: @count requests, sizes 512 B .. 64 KiB. */
static void random_traffic(BlockDev *bs, Model *m, unsigned depth, unsigned count,
                           uint32_t seed)
{
    Harness h = { .bs = bs, .m = *m, .active = g_ptr_array_new() };
    GRand *rnd = g_rand_new_with_seed(seed);
    unsigned submitted = 0;

    while (submitted < count) {
        while (h.in_flight < depth && submitted < count) {
            gboolean write = g_rand_int_range(rnd, 0, 100) < 60;
            uint64_t sectors = m->size / BLOCK_SECTOR_SIZE;
            uint64_t len = (uint64_t)g_rand_int_range(rnd, 1, 129) * BLOCK_SECTOR_SIZE;
            uint64_t off = (uint64_t)g_rand_int_range(rnd, 0, sectors) * BLOCK_SECTOR_SIZE;
            if (off + len > m->size)
                len = m->size - off;
            if (conflicts(&h, write, off, len))
                continue;
            submit(&h, write, off, len, seed + submitted);
            submitted++;
        }
        block_engine_wait(block_get_engine(bs), 1000);
    }
    drain(&h);
    assert_false(h.failed);
    g_ptr_array_unref(h.active);
    g_rand_free(rnd);
}

/* ---- raw ---- */

typedef struct Status {
    int ret;
    gboolean done;
} Status;

static void status_cb(void *opaque, int ret)
{
    Status *s = opaque;

    s->ret = ret;
    s->done = TRUE;
}

static int wait_status(BlockDev *bs, Status *s)
{
    while (!s->done)
        block_engine_wait(block_get_engine(bs), 1000);
    return s->ret;
}

static void test_raw_round_trip(void **unused)
{
    g_autofree char *dir = tmpdir_new();
    g_autofree char *path = g_build_filename(dir, "disk.raw", NULL);
    g_autoptr(GError) err = NULL;
    BlockOpenOptions o = { .discard = TRUE };
    Model m = { .size = 8 << 20 };
    uint8_t sector[512];
    struct iovec iov = { sector, sizeof(sector) };
    Status s = { 0 };

    assert_true(block_create_raw(path, m.size, &err));
    m.data = g_malloc0(m.size);
    {
        g_autoptr(BlockDev) bs = open_or_fail(path, &o);
        assert_string_equal(block_get_format(bs), "raw");
        assert_int_equal(block_get_size(bs), m.size);
        random_traffic(bs, &m, 32, 600, 1);
        /* Zeroes and discard go through the model too. */
        assert_true(block_write_zeroes_sync(bs, 4096, 65536, 0, &err));
        memset(m.data + 4096, 0, 65536);
        assert_true(block_write_zeroes_sync(bs, 1 << 20, 1 << 20, BLOCK_REQ_MAY_UNMAP, &err));
        memset(m.data + (1 << 20), 0, 1 << 20);
        assert_true(block_discard_sync(bs, 4 << 20, 1 << 20, &err));
        memset(m.data + (4 << 20), 0, 1 << 20);   /* holes read as zeroes */
        assert_true(block_flush_sync(bs, &err));
        verify_all(bs, &m);
        /* Past the end, unaligned: -EINVAL without touching the file. */
        block_readv(bs, m.size, &iov, 1, status_cb, &s);
        assert_int_equal(wait_status(bs, &s), -EINVAL);
        s.done = FALSE;
        block_writev(bs, m.size - 256, &iov, 1, 0, status_cb, &s);
        assert_int_equal(wait_status(bs, &s), -EINVAL);
        s.done = FALSE;
        iov.iov_len = 100;
        block_writev(bs, 0, &iov, 1, 0, status_cb, &s);
        assert_int_equal(wait_status(bs, &s), -EINVAL);
        iov.iov_len = 512;
        /* Byte-granular synchronous helpers do read-modify-write. */
        assert_true(block_pwrite(bs, 1000, "hello", 5, BLOCK_REQ_FUA, &err));
        memcpy(m.data + 1000, "hello", 5);
        verify_all(bs, &m);
    }
    {
        BlockOpenOptions ro = { .read_only = TRUE };
        g_autoptr(BlockDev) bs = open_or_fail(path, &ro);
        s.done = FALSE;
        block_writev(bs, 0, &iov, 1, 0, status_cb, &s);
        assert_int_equal(wait_status(bs, &s), -EROFS);
        verify_all(bs, &m);
    }
    g_free(m.data);
    rm_rf(dir);
}

/* ---- qcow2 at every cluster size ---- */

static void model_write(BlockDev *bs, Model *m, uint64_t off, uint64_t len, uint32_t seed)
{
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *buf = g_malloc(len);

    pattern_fill(buf, len, off, seed);
    if (!block_pwrite(bs, off, buf, len, 0, &err))
        fail_msg("write %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT ": %s", off, len,
                 err->message);
    memcpy(m->data + off, buf, len);
}

static void test_qcow2_cluster_sizes(void **unused)
{
    g_autofree char *dir = tmpdir_new();

    for (uint32_t cs = 4096; cs <= (2u << 20); cs *= 2) {
        g_autofree char *path = g_strdup_printf("%s/cs%u.qcow2", dir, cs);
        g_autoptr(GError) err = NULL;
        BlockOpenOptions o = { .discard = TRUE };
        Model m = { .size = MAX(8ull << 20, 5ull * cs) };

        m.data = g_malloc0(m.size);
        create_qcow2(path, m.size, cs, NULL, NULL);
        {
            g_autoptr(BlockDev) bs = open_or_fail(path, &o);
            assert_int_equal(block_get_cluster_size(bs), cs);
            model_write(bs, &m, 512, 1024, cs);                   /* inside one cluster */
            model_write(bs, &m, cs - 512, 1536, cs + 1);           /* across a boundary */
            model_write(bs, &m, 2ull * cs, cs, cs + 2);            /* one whole cluster */
            model_write(bs, &m, 2ull * cs + 4096, 512, cs + 3);    /* overwrite */
            model_write(bs, &m, m.size - 512, 512, cs + 4);        /* last sector */
            /* Zeroes: partial and whole clusters, allocated or not. */
            assert_true(block_write_zeroes_sync(bs, 2ull * cs, cs, 0, &err));
            memset(m.data + 2ull * cs, 0, cs);
            assert_true(block_write_zeroes_sync(bs, 1024, 1024, BLOCK_REQ_MAY_UNMAP, &err));
            memset(m.data + 1024, 0, 1024);
            model_write(bs, &m, 3ull * cs, cs, cs + 5);
            assert_true(block_discard_sync(bs, 3ull * cs, cs, &err));
            memset(m.data + 3ull * cs, 0, cs);
            model_write(bs, &m, 2ull * cs + 512, 512, cs + 6);     /* into a zero cluster */
            assert_true(block_flush_sync(bs, &err));
            verify_all(bs, &m);
            check_clean(bs);
        }
        {
            g_autoptr(BlockDev) bs = open_or_fail(path, &o);
            verify_all(bs, &m);
            random_traffic(bs, &m, 8, 150, cs);
            verify_all(bs, &m);
            check_clean(bs);
        }
        g_free(m.data);
    }
    rm_rf(dir);
}

/* ---- depth 32 against a model, with allocation ---- */

static void concurrency_with(uint32_t cs, const char *format, BlockCacheMode cache,
                             unsigned depth, uint64_t l2_cache, uint64_t disk)
{
    g_autofree char *dir = tmpdir_new();
    g_autofree char *path = g_build_filename(dir, "c.img", NULL);
    g_autoptr(GError) err = NULL;
    BlockOpenOptions o = { .format = format, .cache = cache, .l2_cache_size = l2_cache };
    Model m = { .size = disk };

    if (strcmp(format, "qcow2") == 0)
        create_qcow2(path, m.size, cs, NULL, NULL);
    else
        assert_true(block_create_raw(path, m.size, &err));
    m.data = g_malloc0(m.size);
    {
        g_autoptr(BlockDev) bs = block_open(path, &o, &err);
        if (!bs && cache == BLOCK_CACHE_NONE) {
            /* The file system under TMPDIR may lack O_DIRECT. */
            g_free(m.data);
            rm_rf(dir);
            skip();
        }
        assert_non_null(bs);
        random_traffic(bs, &m, depth, 3000, cs ^ cache ^ depth);
        assert_true(block_flush_sync(bs, &err));
        verify_all(bs, &m);
        if (strcmp(format, "qcow2") == 0)
            check_clean(bs);
    }
    {
        g_autoptr(BlockDev) bs = open_or_fail(path, &o);
        verify_all(bs, &m);
    }
    g_free(m.data);
    rm_rf(dir);
}

static void concurrency(uint32_t cs, const char *format, BlockCacheMode cache)
{
    concurrency_with(cs, format, cache, 32, 0, 16 << 20);
}

static void test_concurrency_qcow2_4k(void **unused) { concurrency(4096, "qcow2", 0); }
/* Four L2 tables (and four refcount blocks) for 32 MiB of 4 KiB clusters:
 * constant eviction and write-back while requests are in flight. */
static void test_concurrency_small_cache(void **unused)
{
    concurrency_with(4096, "qcow2", 0, 32, 4 * 4096, 32 << 20);
}
/* More requests in flight than io_uring has entries (256). */
static void test_concurrency_ring_full(void **unused)
{
    concurrency_with(0, "raw", 0, 400, 0, 16 << 20);
}
static void test_concurrency_qcow2_64k(void **unused) { concurrency(65536, "qcow2", 0); }
static void test_concurrency_qcow2_direct(void **unused)
{
    concurrency(65536, "qcow2", BLOCK_CACHE_NONE);
}
static void test_concurrency_raw(void **unused) { concurrency(0, "raw", 0); }

/* ---- backing chains ---- */

static void test_backing_chain(void **unused)
{
    g_autofree char *dir = tmpdir_new();
    g_autofree char *sub = g_build_filename(dir, "sub", NULL);
    g_autofree char *base = g_build_filename(dir, "base.raw", NULL);
    g_autofree char *mid = g_build_filename(sub, "mid.qcow2", NULL);
    g_autofree char *top = g_build_filename(dir, "top.qcow2", NULL);
    g_autoptr(GError) err = NULL;
    BlockOpenOptions o = { 0 };
    Model m = { .size = 4 << 20 };
    BlockStatus st;

    g_mkdir(sub, 0755);
    m.data = g_malloc0(m.size);
    assert_true(block_create_raw(base, 3 << 20, &err));   /* shorter than the overlays */
    {
        BlockOpenOptions ob = { .format = "raw" };
        g_autoptr(BlockDev) bs = open_or_fail(base, &ob);
        model_write(bs, &m, 0, 3 << 20, 11);
    }
    /* Relative names, resolved against the directory of the image naming them. */
    create_qcow2(mid, m.size, 65536, "../base.raw", "raw");
    create_qcow2(top, 0, 65536, "sub/mid.qcow2", "qcow2");   /* size from the backing */
    {
        g_autoptr(BlockDev) bs = open_or_fail(mid, &o);
        model_write(bs, &m, 1 << 20, 512 << 10, 22);
        model_write(bs, &m, (3 << 20) + 4096, 4096, 23);    /* beyond the base's end */
    }
    {
        g_autoptr(BlockDev) bs = open_or_fail(top, &o);
        g_autoptr(BlockInfo) info = block_get_info(bs, &err);
        assert_int_equal(block_get_size(bs), m.size);
        assert_string_equal(info->backing_filename, "sub/mid.qcow2");
        assert_string_equal(info->backing_format, "qcow2");
        assert_non_null(block_get_backing(block_get_backing(bs)));
        verify_all(bs, &m);
        /* Copy-on-write of a partial cluster pulls the rest from below. */
        model_write(bs, &m, (1 << 20) + 512, 512, 33);
        model_write(bs, &m, 100 << 10, 512, 34);
        verify_all(bs, &m);
        assert_true(block_get_status(bs, 0, 65536, &st, &err));
        assert_int_equal(st.depth, 2);
        assert_true(block_get_status(bs, 1 << 20, 65536, &st, &err));
        assert_int_equal(st.depth, 0);
        assert_true(block_get_status(bs, (1 << 20) + 65536, 65536, &st, &err));
        assert_int_equal(st.depth, 1);
        check_clean(bs);
        /* Commit the top into mid, then the top is empty again. */
        assert_true(block_commit(bs, TRUE, &err));
        assert_true(block_get_status_layer(bs, 1 << 20, 65536, &st, &err));
        assert_false(st.flags & BLOCK_STATUS_ALLOCATED);
        verify_all(bs, &m);
    }
    {
        g_autoptr(BlockDev) bs = open_or_fail(mid, &o);
        verify_all(bs, &m);
        check_clean(bs);
    }
    g_free(m.data);
    rm_rf(dir);
}

static void test_backing_loop(void **unused)
{
    g_autofree char *dir = tmpdir_new();
    g_autofree char *a = g_build_filename(dir, "a.qcow2", NULL);
    g_autofree char *b = g_build_filename(dir, "b.qcow2", NULL);
    g_autoptr(GError) err = NULL;
    BlockOpenOptions o = { .read_only = TRUE };

    create_qcow2(a, 1 << 20, 65536, "b.qcow2", "qcow2");
    create_qcow2(b, 1 << 20, 65536, "a.qcow2", "qcow2");
    assert_null(block_open(a, &o, &err));
    assert_non_null(strstr(err->message, "loop"));
    rm_rf(dir);
}

/* ---- snapshots ---- */

static void test_snapshots(void **unused)
{
    g_autofree char *dir = tmpdir_new();
    g_autofree char *path = g_build_filename(dir, "s.qcow2", NULL);
    g_autoptr(GError) err = NULL;
    BlockOpenOptions o = { 0 };
    Model m = { .size = 4 << 20 }, first;
    g_autoptr(BlockDev) bs = NULL;
    g_autoptr(GPtrArray) list = NULL;

    m.data = g_malloc0(m.size);
    create_qcow2(path, m.size, 65536, NULL, NULL);
    bs = open_or_fail(path, &o);
    model_write(bs, &m, 0, 1 << 20, 1);
    assert_true(block_snapshot_create(bs, "one", &err));
    first.size = m.size;
    first.data = g_memdup2(m.data, m.size);
    model_write(bs, &m, 512 << 10, 1 << 20, 2);   /* copy-on-write of shared clusters */
    assert_true(block_snapshot_create(bs, "two", &err));
    assert_false(block_snapshot_create(bs, "two", &err));
    g_clear_error(&err);
    model_write(bs, &m, 0, 4096, 3);
    check_clean(bs);
    list = block_snapshot_list(bs, &err);
    assert_int_equal(list->len, 2);
    assert_string_equal(((BlockSnapshotInfo *)list->pdata[0])->name, "one");
    assert_true(block_snapshot_apply(bs, "one", &err));
    verify_all(bs, &first);
    check_clean(bs);
    assert_true(block_snapshot_delete(bs, "1", &err));      /* by id */
    assert_true(block_snapshot_apply(bs, "two", &err));
    /* "two" is the current model without the last 4 KiB write. */
    pattern_fill(m.data, 4096, 0, 1);
    verify_all(bs, &m);
    assert_true(block_snapshot_delete(bs, "two", &err));
    assert_false(block_snapshot_apply(bs, "two", &err));
    check_clean(bs);
    g_free(first.data);
    g_free(m.data);
    g_clear_pointer(&bs, block_close);
    rm_rf(dir);
}

/* ---- locking ---- */

static void test_locking(void **unused)
{
    g_autofree char *dir = tmpdir_new();
    g_autofree char *path = g_build_filename(dir, "l.qcow2", NULL);
    g_autoptr(GError) err = NULL;
    BlockOpenOptions rw = { 0 }, ro = { .read_only = TRUE },
                     shared = { .read_only = TRUE, .force_share = TRUE };

    create_qcow2(path, 1 << 20, 65536, NULL, NULL);
    {
        g_autoptr(BlockDev) a = open_or_fail(path, &rw);
        assert_null(block_open(path, &rw, &err));
        assert_non_null(strstr(err->message, "locked"));
        assert_non_null(strstr(err->message, path));
        g_clear_error(&err);
        assert_null(block_open(path, &ro, &err));
        g_clear_error(&err);
        g_autoptr(BlockDev) c = open_or_fail(path, &shared);
    }
    {
        g_autoptr(BlockDev) a = open_or_fail(path, &ro);
        g_autoptr(BlockDev) b = open_or_fail(path, &ro);
        assert_null(block_open(path, &rw, &err));
        assert_non_null(strstr(err->message, "locked"));
    }
    rm_rf(dir);
}

/* ---- probing ---- */

static void test_probe(void **unused)
{
    g_autofree char *dir = tmpdir_new();
    g_autofree char *path = g_build_filename(dir, "p.img", NULL);
    g_autofree char *q = g_build_filename(dir, "p.qcow2", NULL);
    g_autoptr(GError) err = NULL;
    BlockOpenOptions probe = { 0 }, raw = { .format = "raw" };
    uint8_t sector[512] = "QFI\xfb";
    struct iovec iov = { sector, sizeof(sector) };
    Status s = { 0 };

    assert_true(block_create_raw(path, 1 << 20, &err));
    create_qcow2(q, 1 << 20, 65536, NULL, NULL);
    {
        g_autoptr(BlockDev) bs = open_or_fail(q, &probe);
        assert_string_equal(block_get_format(bs), "qcow2");
    }
    {
        g_autoptr(BlockDev) bs = open_or_fail(path, &probe);
        assert_string_equal(block_get_format(bs), "raw");
        /* A probed raw image must not become a qcow2 header. */
        block_writev(bs, 0, &iov, 1, 0, status_cb, &s);
        assert_int_equal(wait_status(bs, &s), -EPERM);
    }
    {
        g_autoptr(BlockDev) bs = open_or_fail(path, &raw);
        s.done = FALSE;
        block_writev(bs, 0, &iov, 1, 0, status_cb, &s);
        assert_int_equal(wait_status(bs, &s), 0);
    }
    /* Now it looks like qcow2 and is probed as such (and rejected). */
    assert_null(block_open(path, &probe, &err));
    assert_non_null(strstr(err->message, "qcow2"));
    rm_rf(dir);
}

/* ---- resize, compressed clusters, refcount growth ---- */

static void test_resize(void **unused)
{
    g_autofree char *dir = tmpdir_new();
    g_autofree char *path = g_build_filename(dir, "r.qcow2", NULL);
    g_autoptr(GError) err = NULL;
    BlockOpenOptions o = { 0 };
    Model m = { .size = 64 << 20 };

    m.data = g_malloc0(m.size);
    create_qcow2(path, 1 << 20, 4096, NULL, NULL);      /* one L1 entry covers 2 MiB */
    {
        g_autoptr(BlockDev) bs = open_or_fail(path, &o);
        model_write(bs, &m, 0, 8192, 1);
        assert_false(block_truncate(bs, 512 << 10, &err));   /* no shrinking */
        g_clear_error(&err);
        assert_true(block_truncate(bs, m.size, &err));
        assert_int_equal(block_get_size(bs), m.size);
        model_write(bs, &m, m.size - 4096, 4096, 2);
        verify_all(bs, &m);
        check_clean(bs);
    }
    {
        g_autoptr(BlockDev) bs = open_or_fail(path, &o);
        assert_int_equal(block_get_size(bs), m.size);
        verify_all(bs, &m);
    }
    g_free(m.data);
    rm_rf(dir);
}

static void test_compressed(void **unused)
{
    g_autofree char *dir = tmpdir_new();
    g_autoptr(GError) err = NULL;

    for (int type = 0; type < 2; type++) {
        g_autofree char *path = g_strdup_printf("%s/z%d.qcow2", dir, type);
        Qcow2CreateOptions co = { .size = 1 << 20, .compression_type = type };
        BlockOpenOptions o = { 0 };
        Model m = { .size = 1 << 20 };
        g_autoptr(BlockDev) bs = NULL;

        assert_true(qcow2_create(path, &co, &err));
        m.data = g_malloc0(m.size);
        for (uint64_t off = 0; off < m.size; off += 65536) {
            /* Compressible (text-like), except one random cluster. */
            for (int i = 0; i < 65536; i++)
                m.data[off + i] = off == 65536 ? (uint8_t)g_random_int() :
                                                 (uint8_t)"vireo"[(i / 7) % 5];
        }
        bs = open_or_fail(path, &o);
        for (uint64_t off = 0; off < m.size; off += 65536)
            assert_true(block_write_compressed(bs, off, m.data + off, 65536, &err));
        assert_false(block_write_compressed(bs, 0, m.data, 65536, &err));
        g_clear_error(&err);
        verify_all(bs, &m);
        /* Partial overwrite of a compressed cluster: decompress, merge, write. */
        model_write(bs, &m, 4096 * 3, 1024, 9);
        verify_all(bs, &m);
        check_clean(bs);
        g_clear_pointer(&bs, block_close);
        bs = open_or_fail(path, &o);
        verify_all(bs, &m);
        g_clear_pointer(&bs, block_close);
        g_free(m.data);
    }
    rm_rf(dir);
}

static void test_refcount_table_growth(void **unused)
{
    g_autofree char *dir = tmpdir_new();
    g_autofree char *path = g_build_filename(dir, "g.qcow2", NULL);
    BlockOpenOptions o = { 0 };
    Model m = { .size = 12 << 20 };

    /* 512-byte clusters: one refcount table cluster covers 8 MiB of file. */
    m.data = g_malloc0(m.size);
    create_qcow2(path, m.size, 512, NULL, NULL);
    {
        g_autoptr(BlockDev) bs = open_or_fail(path, &o);
        for (uint64_t off = 0; off < m.size; off += 1 << 20)
            model_write(bs, &m, off, 1 << 20, off >> 20);
        verify_all(bs, &m);
        check_clean(bs);
    }
    {
        g_autoptr(BlockDev) bs = open_or_fail(path, &o);
        verify_all(bs, &m);
    }
    g_free(m.data);
    rm_rf(dir);
}

/* ---- lazy refcounts and repair ---- */

void block_file_fault_set(int64_t n);

static void quiet_log(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                      gpointer data)
{
}

static void test_lazy_refcounts(void **unused)
{
    g_autofree char *dir = tmpdir_new();
    g_autofree char *path = g_build_filename(dir, "lazy.qcow2", NULL);
    g_autoptr(GError) err = NULL;
    Qcow2CreateOptions co = { .size = 4 << 20, .lazy_refcounts = TRUE };
    BlockOpenOptions o = { 0 };
    Model m = { .size = 4 << 20 };
    guint h;

    m.data = g_malloc0(m.size);
    assert_true(qcow2_create(path, &co, &err));
    {
        BlockDev *bs = open_or_fail(path, &o);
        g_autoptr(BlockInfo) info = NULL;
        model_write(bs, &m, 0, 1 << 20, 5);
        assert_true(block_flush_sync(bs, &err));
        info = block_get_info(bs, &err);
        assert_true(info->lazy_refcounts);
        assert_true(info->dirty);
        /* "Crash": nothing more reaches the disk, the dirty bit stays. */
        block_file_fault_set(0);
        h = g_log_set_handler("vireo-storage", G_LOG_LEVEL_WARNING, quiet_log, NULL);
        block_close(bs);
        g_log_remove_handler("vireo-storage", h);
        block_file_fault_set(-1);
    }
    {
        BlockOpenOptions ro = { .read_only = TRUE };
        g_autoptr(BlockDev) bs = open_or_fail(path, &ro);
        g_autoptr(BlockInfo) info = block_get_info(bs, &err);
        assert_true(info->dirty);
    }
    {
        /* Opening read-write rebuilds the refcounts and clears the bit. */
        g_autoptr(BlockDev) bs = open_or_fail(path, &o);
        g_autoptr(BlockInfo) info = block_get_info(bs, &err);
        assert_false(info->dirty);
        verify_all(bs, &m);
        check_clean(bs);
    }
    g_free(m.data);
    rm_rf(dir);
}

static void test_repair(void **unused)
{
    g_autofree char *dir = tmpdir_new();
    g_autofree char *path = g_build_filename(dir, "fix.qcow2", NULL);
    g_autoptr(GError) err = NULL;
    BlockOpenOptions o = { 0 };
    BlockCheckResult r;
    Model m = { .size = 4 << 20 };
    uint8_t rc[2];
    int fd;

    m.data = g_malloc0(m.size);
    create_qcow2(path, m.size, 65536, NULL, NULL);
    {
        g_autoptr(BlockDev) bs = open_or_fail(path, &o);
        model_write(bs, &m, 0, 256 << 10, 3);
    }
    /* Layout of a new image: header, refcount table, refcount block, L1.
     * Break refcounts by hand: cluster 10 (never used) gets refcount 1 (a
     * leak), cluster 4 (the first L2 table, in use) gets 0 (corruption). */
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    rc[0] = 0; rc[1] = 1;
    assert_int_equal(pwrite(fd, rc, 2, 2 * 65536 + 10 * 2), 2);
    rc[1] = 0;
    assert_int_equal(pwrite(fd, rc, 2, 2 * 65536 + 4 * 2), 2);
    close(fd);
    {
        g_autoptr(BlockDev) bs = open_or_fail(path, &o);
        assert_true(block_check(bs, 0, &r, &err));
        assert_int_equal(r.leaks, 1);
        assert_true(r.corruptions >= 1);
        assert_true(block_check(bs, BLOCK_CHECK_FIX_LEAKS, &r, &err));
        assert_int_equal(r.leaks, 0);
        assert_int_equal(r.leaks_fixed, 1);
        assert_true(r.corruptions >= 1);
        assert_true(block_check(bs, BLOCK_CHECK_FIX_LEAKS | BLOCK_CHECK_FIX_ERRORS, &r, &err));
        assert_int_equal(r.corruptions, 0);
        assert_true(r.corruptions_fixed >= 1);
        check_clean(bs);
        verify_all(bs, &m);
        model_write(bs, &m, 1 << 20, 1 << 20, 4);
        check_clean(bs);
    }
    g_free(m.data);
    rm_rf(dir);
}

/* ---- engine ---- */

static void test_engine_fd(void **unused)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(BlockEngine) e = block_engine_new(&err);

    assert_non_null(e);
    assert_true(block_engine_get_fd(e) >= 0);
    assert_int_equal(block_engine_process_completions(e), 0);
    assert_int_equal(block_engine_get_in_flight(e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_fd),
        cmocka_unit_test(test_raw_round_trip),
        cmocka_unit_test(test_qcow2_cluster_sizes),
        cmocka_unit_test(test_concurrency_raw),
        cmocka_unit_test(test_concurrency_qcow2_4k),
        cmocka_unit_test(test_concurrency_qcow2_64k),
        cmocka_unit_test(test_concurrency_qcow2_direct),
        cmocka_unit_test(test_concurrency_small_cache),
        cmocka_unit_test(test_concurrency_ring_full),
        cmocka_unit_test(test_backing_chain),
        cmocka_unit_test(test_backing_loop),
        cmocka_unit_test(test_snapshots),
        cmocka_unit_test(test_locking),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_compressed),
        cmocka_unit_test(test_refcount_table_growth),
        cmocka_unit_test(test_lazy_refcounts),
        cmocka_unit_test(test_repair),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
