/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The qcow2 driver: open/close/create, the request paths, and the format
 * operations other than snapshots and check (the header is in
 * qcow2-header.c).
 *
 * Request paths. A read or an overwrite whose L2 entries are all cached
 * and need no allocation is mapped on the caller's thread (try-lock only)
 * and goes straight to io_uring: the fast path that benchmarks see. Every
 * other request (L2 miss, allocation, copy-on-write from a backing file or
 * a snapshot, compressed clusters, discard, zeroes, flush) runs as
 * blocking code on an engine worker. Allocation marks the guest cluster
 * busy from the moment it is chosen until its L2 entry is updated; other
 * writers of that guest cluster wait for it, so two writes never allocate
 * the same cluster twice, and readers see either the old mapping or the
 * new, complete cluster.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "qcow2-internal.h"
#include "vireo/util.h"

#define DEFAULT_L2_CACHE_BYTES (32u << 20)

/* With lazy refcounts, the dirty bit is set before the first change. */
static int mark_dirty(Qcow2State *q)
{
    if (!q->lazy || q->dirty_marked)
        return 0;
    q->hdr.incompatible_features |= QCOW2_INCOMPAT_DIRTY;
    q->dirty_marked = TRUE;
    return qcow2_write_incompat(q);
}

int qcow2_flush_locked(Qcow2State *q)
{
    int ret;

    if (!q->lazy) {
        ret = qcow2_cache_flush(q->rc_cache);
        if (ret < 0)
            return ret;
    }
    /* Data and refcounts first, then L2 tables (qcow2-cache.c), then a
     * sync for the L2 tables themselves. */
    ret = qcow2_cache_flush(q->l2_cache);
    if (ret < 0)
        return ret;
    ret = block_file_sync(q->file);
    if (ret < 0)
        return ret;
    if (q->pending_free->len) {
        /* The references are gone on disk: the decrements are safe now. */
        ret = qcow2_refcount_process_pending(q);
        /* The decrements must reach the file too, or the last flush before close leaks. */
        if (ret == 0 && !q->lazy)
            ret = qcow2_cache_flush(q->rc_cache);
    }
    return ret;
}

/* ---- open / close ---- */

static void state_free(Qcow2State *q)
{
    qcow2_cache_free(q->l2_cache);
    qcow2_cache_free(q->rc_cache);
    qcow2_snapshot_free_table(q);
    g_free(q->l1);
    g_free(q->rc_table);
    if (q->extensions)
        g_ptr_array_unref(q->extensions);
    if (q->pending_free)
        g_array_unref(q->pending_free);
    while (q->busy) {
        Qcow2Busy *b = q->busy;
        q->busy = b->next;
        g_free(b);
    }
    g_mutex_clear(&q->lock);
    g_cond_clear(&q->busy_cond);
    g_free(q);
}

static gboolean load_l1(Qcow2State *q, uint64_t file_size, GError **error)
{
    uint64_t limit = VIREO_ALIGN_UP(file_size, (uint64_t)q->cluster_size);
    int ret;

    q->l1_size = q->hdr.l1_size;
    q->l1 = g_new0(uint64_t, MAX(q->l1_size, 1));
    if (!q->l1_size)
        return TRUE;
    ret = block_file_pread(q->file, q->l1, (size_t)q->l1_size * 8, q->hdr.l1_table_offset);
    if (ret < 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot read the L1 table: %s",
                    g_strerror(-ret));
        return FALSE;
    }
    for (uint32_t i = 0; i < q->l1_size; i++) {
        uint64_t e = GUINT64_FROM_BE(q->l1[i]);
        uint64_t off = e & QCOW2_OFFSET_MASK;
        q->l1[i] = e;
        if (e & QCOW2_L1E_RESERVED) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "L1 table entry %u (0x%" G_GINT64_MODIFIER "x) has reserved bits set",
                        i, e);
            return FALSE;
        }
        if (off && ((off & (q->cluster_size - 1)) || off >= limit)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "L1 table entry %u points at 0x%" G_GINT64_MODIFIER "x, which is %s",
                        i, off, off & (q->cluster_size - 1) ? "not cluster aligned" :
                        "beyond the end of the file");
            return FALSE;
        }
    }
    return TRUE;
}

static gboolean qcow2_open(BlockDev *bs, const BlockOpenOptions *opts, GError **error)
{
    Qcow2State *q = g_new0(Qcow2State, 1);
    int64_t file_size = block_file_get_size(bs->file);
    uint8_t *buf = NULL;
    size_t first_len;
    uint64_t l2_bytes, l2_entries;
    g_autofree char *backing = NULL;
    g_autofree char *backing_fmt = NULL;
    int ret;

    g_mutex_init(&q->lock);
    g_cond_init(&q->busy_cond);
    q->bs = bs;
    q->file = bs->file;
    q->read_only = bs->read_only;
    q->extensions = g_ptr_array_new_with_free_func(qcow2_extension_free);
    q->pending_free = g_array_new(FALSE, FALSE, sizeof(Qcow2Range));
    if (file_size < 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot get the file size: %s",
                    g_strerror((int)-file_size));
        goto fail;
    }
    /* The header's own cluster size bounds what is read (at most 2 MiB). */
    buf = block_file_buf_alloc(4096);
    ret = block_file_pread(q->file, buf, 4096, 0);
    if (ret == 0 && file_size >= 24 && qcow2_be32(buf + 20) >= 9 &&
        qcow2_be32(buf + 20) <= QCOW2_MAX_CLUSTER_BITS &&
        (1u << qcow2_be32(buf + 20)) > 4096) {
        first_len = 1u << qcow2_be32(buf + 20);
        block_file_buf_free(buf);
        buf = block_file_buf_alloc(first_len);
        ret = block_file_pread(q->file, buf, first_len, 0);
    } else {
        first_len = 4096;
    }
    if (ret < 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot read the header: %s",
                    g_strerror(-ret));
        goto fail;
    }
    if (!qcow2_parse_header(buf, MIN(first_len, (uint64_t)file_size), file_size, &q->hdr,
                            error) ||
        !qcow2_parse_extensions(buf, MIN(first_len, (uint64_t)file_size), &q->hdr,
                                q->extensions, &backing_fmt, &backing, error))
        goto fail;
    q->cluster_bits = q->hdr.cluster_bits;
    q->cluster_size = 1u << q->cluster_bits;
    q->l2_bits = q->cluster_bits - 3;
    q->rcb_bits = q->cluster_bits - 1;
    q->csize_shift = 62 - (q->cluster_bits - 8);
    q->csize_mask = (1ull << (q->cluster_bits - 8)) - 1;
    q->coffset_mask = (1ull << q->csize_shift) - 1;
    if (!bs->read_only && (q->hdr.incompatible_features & QCOW2_INCOMPAT_CORRUPT)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "the image is marked corrupt; open it read-only or repair it with "
                    "check (repair all errors)");
        goto fail;
    }
    q->host_end = VIREO_ALIGN_UP((uint64_t)file_size, (uint64_t)q->cluster_size);
    q->phys_end = file_size;
    if (!load_l1(q, file_size, error) || !qcow2_refcount_open(q, file_size, error) ||
        !qcow2_snapshot_read_table(q, file_size, error))
        goto fail;
    l2_entries = 1ull << q->l2_bits;
    /* Enough L2 tables for the whole disk, up to the default limit. */
    l2_bytes = opts->l2_cache_size ? opts->l2_cache_size :
               MIN((uint64_t)DEFAULT_L2_CACHE_BYTES,
                   ((q->hdr.size >> q->cluster_bits) / l2_entries + 1) * q->cluster_size);
    q->l2_cache = qcow2_cache_new(q, MAX(l2_bytes >> q->cluster_bits, 4), TRUE);
    q->rc_cache = qcow2_cache_new(q, MAX((l2_bytes >> q->cluster_bits) / 4, 4), FALSE);
    q->free_hint = 1;
    bs->opaque = q;
    bs->size = q->hdr.size;
    bs->backing_file = g_steal_pointer(&backing);
    bs->backing_format = g_steal_pointer(&backing_fmt);
    if (!bs->read_only) {
        gboolean rewrite = FALSE;
        if (q->hdr.incompatible_features & QCOW2_INCOMPAT_DIRTY) {
            /* Refcounts were not kept up to date (lazy refcounts) when the
             * image was last used: rebuild them, like qemu's automatic
             * repair on open. */
            g_mutex_lock(&q->lock);
            gboolean ok = qcow2_refcount_rebuild(q, error) && qcow2_cluster_fix_copied(q) == 0 &&
                          qcow2_flush_locked(q) == 0;
            g_mutex_unlock(&q->lock);
            if (!ok) {
                g_prefix_error(error, "repairing the refcounts of the dirty image: ");
                if (error && !*error)
                    g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                                "repairing the refcounts of the dirty image failed");
                bs->opaque = NULL;
                goto fail;
            }
            q->hdr.incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
            rewrite = TRUE;
        }
        if (q->hdr.autoclear_features) {
            /* We maintain none of them (bitmaps): clearing the bits tells
             * readers that the data they describe is stale. */
            q->hdr.autoclear_features = 0;
            rewrite = TRUE;
        }
        if (rewrite && (ret = qcow2_write_header(q)) == 0)
            ret = block_file_sync(q->file);
        if (rewrite && ret < 0) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot update the header: %s",
                        g_strerror(-ret));
            bs->opaque = NULL;
            goto fail;
        }
        q->lazy = !!(q->hdr.compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS);
    }
    block_file_buf_free(buf);
    return TRUE;

fail:
    block_file_buf_free(buf);
    state_free(q);
    return FALSE;
}

static void qcow2_close(BlockDev *bs)
{
    Qcow2State *q = bs->opaque;

    if (!q->read_only) {
        g_mutex_lock(&q->lock);
        int ret = qcow2_flush_locked(q);
        if (ret == 0 && q->lazy)
            ret = qcow2_cache_flush(q->rc_cache);
        if (ret == 0 && q->dirty_marked) {
            ret = block_file_sync(q->file);
            if (ret == 0) {
                q->hdr.incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
                ret = qcow2_write_incompat(q);
            }
        }
        if (ret == 0 && q->prealloc_end > q->host_end) {
            /* Give back what extend_file() reserved and nothing uses. */
            int64_t size = block_file_get_size(q->file);
            if (size > 0 && (uint64_t)size > q->host_end)
                ret = block_file_truncate(q->file, q->host_end);
        }
        if (ret < 0)
            g_warning("closing qcow2 image '%s': metadata not written: %s (the image "
                      "may have leaked clusters; check can repair them)", bs->filename,
                      g_strerror(-ret));
        g_mutex_unlock(&q->lock);
    }
    state_free(q);
    bs->opaque = NULL;
}

/* ---- busy clusters ---- */

static gboolean is_busy(Qcow2State *q, uint64_t gc)
{
    for (Qcow2Busy *b = q->busy; b; b = b->next)
        if (b->guest_cluster == gc)
            return TRUE;
    return FALSE;
}

static void wait_not_busy(Qcow2State *q, uint64_t gc)
{
    while (is_busy(q, gc))
        g_cond_wait(&q->busy_cond, &q->lock);
}

static void set_busy(Qcow2State *q, uint64_t gc)
{
    Qcow2Busy *b = g_new0(Qcow2Busy, 1);

    b->guest_cluster = gc;
    b->next = q->busy;
    q->busy = b;
}

static void clear_busy(Qcow2State *q, uint64_t gc)
{
    for (Qcow2Busy **p = &q->busy; *p; p = &(*p)->next) {
        if ((*p)->guest_cluster == gc) {
            Qcow2Busy *b = *p;
            *p = b->next;
            g_free(b);
            break;
        }
    }
    g_cond_broadcast(&q->busy_cond);
}

/* ---- synchronous request bodies (workers, backing reads) ---- */

static struct iovec *slice(const struct iovec *iov, int iovcnt, size_t skip, size_t len,
                           int *n)
{
    struct iovec *out = g_new(struct iovec, MAX(iovcnt, 1));

    *n = iov_slice(iov, iovcnt, skip, len, out, iovcnt);
    return out;
}

static int qcow2_do_read(Qcow2State *q, uint64_t offset, const struct iovec *iov, int iovcnt,
                         uint64_t len)
{
    uint64_t done = 0;
    uint8_t *cbuf = NULL;
    int ret = 0;

    while (done < len && ret == 0) {
        uint64_t cur = offset + done;
        uint64_t in_cluster = cur & (q->cluster_size - 1);
        uint64_t chunk = MIN(len - done, q->cluster_size - in_cluster);
        uint64_t e, host = 0;
        Qcow2ClusterType t;
        g_autofree struct iovec *part = NULL;
        int n;

        g_mutex_lock(&q->lock);
        ret = qcow2_cluster_get_entry(q, cur, FALSE, &e);
        if (ret == 0)
            ret = qcow2_cluster_check_entry(q, e, cur);
        t = qcow2_cluster_type(q, e);
        if (t == QCOW2_CLUSTER_NORMAL) {
            /* Extend over host-contiguous clusters. */
            host = (e & QCOW2_OFFSET_MASK) + in_cluster;
            while (ret == 0 && done + chunk < len) {
                uint64_t e2;
                uint64_t next = cur + chunk;
                if (qcow2_cluster_get_entry(q, next, TRUE, &e2) < 0 ||
                    qcow2_cluster_type(q, e2) != QCOW2_CLUSTER_NORMAL ||
                    (e2 & QCOW2_OFFSET_MASK) != host + chunk ||
                    qcow2_cluster_check_entry(q, e2, next) < 0)
                    break;
                chunk += MIN(len - done - chunk, (uint64_t)q->cluster_size);
            }
        }
        g_mutex_unlock(&q->lock);
        if (ret < 0)
            break;
        part = slice(iov, iovcnt, done, chunk, &n);
        switch (t) {
        case QCOW2_CLUSTER_UNALLOCATED:
            if (q->bs->backing)
                ret = block_preadv_sync(q->bs->backing, cur, part, n);
            else
                iov_memset(part, n, 0, 0, chunk);
            break;
        case QCOW2_CLUSTER_ZERO_PLAIN:
        case QCOW2_CLUSTER_ZERO_ALLOC:
            iov_memset(part, n, 0, 0, chunk);
            break;
        case QCOW2_CLUSTER_NORMAL:
            ret = block_file_preadv(q->file, part, n, host);
            break;
        case QCOW2_CLUSTER_COMPRESSED:
            if (!cbuf)
                cbuf = block_file_buf_alloc(q->cluster_size);
            ret = qcow2_cluster_read_compressed(q, e, cbuf);
            if (ret == 0)
                iov_from_buf(part, n, 0, cbuf + in_cluster, chunk);
            break;
        }
        done += chunk;
    }
    block_file_buf_free(cbuf);
    return ret;
}

/*
 * Grows the file ahead of allocation. An O_DIRECT write past the end of
 * the file is an extending write, which ext4 (and io_uring's punt to
 * io-wq) serialise per file; a write into space already allocated by
 * fallocate() is not. The file is trimmed back to the last cluster in use
 * at close. Best effort: without fallocate, writes simply extend the file.
 */
#define QCOW2_PREALLOC_BYTES (4u << 20)
static void extend_file(Qcow2State *q, uint64_t need)
{
    uint64_t start = MAX(q->prealloc_end, q->phys_end - q->cluster_size);
    uint64_t end = VIREO_ALIGN_UP(need + QCOW2_PREALLOC_BYTES, (uint64_t)q->cluster_size);

    if (!q->file->direct || q->file->is_blockdev || need <= q->prealloc_end)
        return;
    if (block_file_fault_hit())
        return;
    if (fallocate(q->file->fd, 0, start, end - start) == 0)
        q->prealloc_end = end;
}

/* Writes one guest cluster's worth (or less) at @cur. */
static int write_cluster(Qcow2State *q, uint64_t cur, const struct iovec *part, int n,
                         uint64_t chunk)
{
    uint64_t gc = cur >> q->cluster_bits;
    uint64_t in_cluster = cur & (q->cluster_size - 1);
    uint64_t cluster_start = gc << q->cluster_bits;
    uint64_t e, new_host, rc = 0;
    uint64_t free_off = 0, free_len = 0;
    gboolean fresh = FALSE, reuse = FALSE;
    Qcow2ClusterType t;
    uint64_t *l2;
    unsigned idx;
    uint8_t *buf = NULL;
    int ret;

    g_mutex_lock(&q->lock);
    wait_not_busy(q, gc);
    ret = qcow2_cluster_get_entry(q, cur, FALSE, &e);
    if (ret == 0)
        ret = qcow2_cluster_check_entry(q, e, cur);
    if (ret < 0)
        goto unlock;
    t = qcow2_cluster_type(q, e);
    if (t == QCOW2_CLUSTER_NORMAL && (e & QCOW2_OFLAG_COPIED)) {
        g_mutex_unlock(&q->lock);
        return block_file_pwritev(q->file, part, n, (e & QCOW2_OFFSET_MASK) + in_cluster);
    }
    ret = mark_dirty(q);
    if (ret < 0)
        goto unlock;
    if (t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) {
        ret = qcow2_refcount_get(q, (e & QCOW2_OFFSET_MASK) >> q->cluster_bits, &rc);
        if (ret < 0)
            goto unlock;
    }
    ret = qcow2_cluster_get_writable_l2(q, cur, &l2, &idx);
    if (ret < 0)
        goto unlock;
    if (t == QCOW2_CLUSTER_NORMAL && rc == 1) {
        /* Only the COPIED flag was missing: write in place. */
        qcow2_table_set(l2, idx, e | QCOW2_OFLAG_COPIED);
        qcow2_cache_mark_dirty(q->l2_cache, l2);
        qcow2_cache_put(q->l2_cache, l2);
        g_mutex_unlock(&q->lock);
        return block_file_pwritev(q->file, part, n, (e & QCOW2_OFFSET_MASK) + in_cluster);
    }
    qcow2_cache_put(q->l2_cache, l2);
    if (t == QCOW2_CLUSTER_ZERO_ALLOC && rc == 1) {
        new_host = e & QCOW2_OFFSET_MASK;
        reuse = TRUE;
    } else {
        int64_t a = qcow2_refcount_alloc(q, 1);
        if (a < 0) {
            ret = a;
            goto unlock;
        }
        new_host = a;
        fresh = new_host >= q->phys_end;
        q->phys_end = MAX(q->phys_end, new_host + q->cluster_size);
        if (fresh)
            extend_file(q, new_host + q->cluster_size);
        if (t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) {
            free_off = e & QCOW2_OFFSET_MASK;
            free_len = q->cluster_size;
        } else if (t == QCOW2_CLUSTER_COMPRESSED) {
            qcow2_cluster_compressed_range(q, e, &free_off, &free_len);
        }
    }
    set_busy(q, gc);
    g_mutex_unlock(&q->lock);

    /* Copy-on-write outside the lock. */
    if (chunk == q->cluster_size ||
        (fresh && (t == QCOW2_CLUSTER_ZERO_PLAIN || t == QCOW2_CLUSTER_ZERO_ALLOC ||
                   (t == QCOW2_CLUSTER_UNALLOCATED && !q->bs->backing)))) {
        /* Nothing to copy: the rest of a fresh cluster reads as zeroes. */
        ret = block_file_pwritev(q->file, part, n, new_host + in_cluster);
    } else {
        buf = block_file_buf_alloc(q->cluster_size);
        ret = 0;
        if (t == QCOW2_CLUSTER_UNALLOCATED && q->bs->backing) {
            struct iovec v = { buf, q->cluster_size };
            ret = block_preadv_sync(q->bs->backing, cluster_start, &v, 1);
        } else if (t == QCOW2_CLUSTER_NORMAL) {
            ret = block_file_pread(q->file, buf, q->cluster_size, e & QCOW2_OFFSET_MASK);
        } else if (t == QCOW2_CLUSTER_COMPRESSED) {
            ret = qcow2_cluster_read_compressed(q, e, buf);
        }
        if (ret == 0) {
            iov_to_buf(part, n, 0, buf + in_cluster, chunk);
            ret = block_file_pwrite(q->file, buf, q->cluster_size, new_host);
        }
    }

    g_mutex_lock(&q->lock);
    if (ret == 0) {
        ret = qcow2_cluster_get_writable_l2(q, cur, &l2, &idx);
        if (ret == 0) {
            qcow2_table_set(l2, idx, new_host | QCOW2_OFLAG_COPIED);
            qcow2_cache_mark_dirty(q->l2_cache, l2);
            qcow2_cache_put(q->l2_cache, l2);
            if (free_len)
                qcow2_refcount_free_later(q, free_off, free_len);
        }
    }
    if (ret < 0 && !reuse) {
        /* Nothing references the new cluster yet. */
        qcow2_refcount_update(q, new_host, q->cluster_size, -1);
    }
    clear_busy(q, gc);
unlock:
    g_mutex_unlock(&q->lock);
    block_file_buf_free(buf);
    return ret;
}

static int qcow2_do_write(Qcow2State *q, uint64_t offset, const struct iovec *iov, int iovcnt,
                          uint64_t len, gboolean fua)
{
    uint64_t done = 0;
    int ret = 0;

    while (done < len && ret == 0) {
        uint64_t cur = offset + done;
        uint64_t chunk = MIN(len - done, q->cluster_size - (cur & (q->cluster_size - 1)));
        g_autofree struct iovec *part = NULL;
        int n;

        part = slice(iov, iovcnt, done, chunk, &n);
        ret = write_cluster(q, cur, part, n, chunk);
        done += chunk;
    }
    if (ret == 0 && fua) {
        g_mutex_lock(&q->lock);
        ret = qcow2_flush_locked(q);
        g_mutex_unlock(&q->lock);
    }
    return ret;
}

/*
 * Zeroes or discards whole clusters in [offset, offset+len); partial
 * clusters at the ends are left to the caller. @full: always deallocate,
 * even if that exposes the backing file (commit's make-empty).
 */
static int zero_clusters(Qcow2State *q, uint64_t offset, uint64_t len, gboolean discard,
                         gboolean may_unmap, gboolean full)
{
    gboolean v3 = q->hdr.version >= 3;
    gboolean backing = q->bs->backing_file != NULL;
    int ret = 0;

    g_mutex_lock(&q->lock);
    for (uint64_t cur = offset; cur < offset + len && ret == 0; cur += q->cluster_size) {
        uint64_t gc = cur >> q->cluster_bits;
        uint64_t e, new_e, rc = 0, free_off = 0, free_len = 0;
        Qcow2ClusterType t;
        uint64_t *l2;
        unsigned idx;

        wait_not_busy(q, gc);
        ret = qcow2_cluster_get_entry(q, cur, FALSE, &e);
        if (ret == 0)
            ret = qcow2_cluster_check_entry(q, e, cur);
        if (ret < 0)
            break;
        t = qcow2_cluster_type(q, e);
        if (full) {
            new_e = 0;
        } else if (discard) {
            if (backing && !v3)
                continue;     /* v2 cannot say "zero" over a backing file */
            new_e = backing ? QCOW2_OFLAG_ZERO : 0;
        } else if (!v3) {
            if (backing || !may_unmap)
                continue;     /* qcow2_do_zeroes writes real zeroes */
            new_e = 0;
        } else if (may_unmap) {
            new_e = backing ? QCOW2_OFLAG_ZERO : 0;
        } else {
            new_e = QCOW2_OFLAG_ZERO;
            if (t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) {
                ret = qcow2_refcount_get(q, (e & QCOW2_OFFSET_MASK) >> q->cluster_bits, &rc);
                if (ret < 0)
                    break;
                if (rc == 1)      /* keep the allocation: write zeroes without unmap */
                    new_e = (e & QCOW2_OFFSET_MASK) | QCOW2_OFLAG_ZERO | QCOW2_OFLAG_COPIED;
            }
        }
        if (e == new_e || (t == QCOW2_CLUSTER_UNALLOCATED && new_e == 0))
            continue;
        if (t == QCOW2_CLUSTER_ZERO_PLAIN && new_e == QCOW2_OFLAG_ZERO)
            continue;
        if (!(new_e & QCOW2_OFFSET_MASK)) {
            if (t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) {
                free_off = e & QCOW2_OFFSET_MASK;
                free_len = q->cluster_size;
            } else if (t == QCOW2_CLUSTER_COMPRESSED) {
                qcow2_cluster_compressed_range(q, e, &free_off, &free_len);
            }
        }
        ret = mark_dirty(q);
        if (ret == 0)
            ret = qcow2_cluster_get_writable_l2(q, cur, &l2, &idx);
        if (ret < 0)
            break;
        qcow2_table_set(l2, idx, new_e);
        qcow2_cache_mark_dirty(q->l2_cache, l2);
        qcow2_cache_put(q->l2_cache, l2);
        if (free_len)
            qcow2_refcount_free_later(q, free_off, free_len);
    }
    g_mutex_unlock(&q->lock);
    return ret;
}

static int qcow2_do_zeroes(Qcow2State *q, uint64_t offset, uint64_t len, gboolean may_unmap)
{
    uint64_t cs = q->cluster_size;
    uint64_t head_end = MIN(offset + len, VIREO_ALIGN_UP(offset, cs));
    uint64_t tail_start = MAX(head_end, VIREO_ALIGN_DOWN(offset + len, cs));
    uint64_t zlen = MAX(head_end - offset, offset + len - tail_start);
    uint8_t *zero = zlen ? block_file_buf_alloc(zlen) : NULL;
    int ret = 0;

    if (head_end > offset) {
        struct iovec v = { zero, head_end - offset };
        ret = qcow2_do_write(q, offset, &v, 1, v.iov_len, FALSE);
    }
    if (ret == 0 && tail_start > head_end) {
        ret = zero_clusters(q, head_end, tail_start - head_end, FALSE, may_unmap, FALSE);
    }
    if (ret == 0 && tail_start < offset + len && tail_start >= head_end &&
        offset + len > head_end) {
        struct iovec v = { zero, offset + len - tail_start };
        ret = qcow2_do_write(q, tail_start, &v, 1, v.iov_len, FALSE);
    }
    /* v2 images, or clusters zero_clusters() left alone: plain zeroes. */
    if (ret == 0 && q->hdr.version < 3 && tail_start > head_end) {
        uint8_t *big = block_file_buf_alloc(cs);
        for (uint64_t c = head_end; c < tail_start && ret == 0; c += cs) {
            uint64_t e;
            g_mutex_lock(&q->lock);
            ret = qcow2_cluster_get_entry(q, c, FALSE, &e);
            g_mutex_unlock(&q->lock);
            if (ret == 0 && (e != 0 || q->bs->backing_file)) {
                struct iovec v = { big, cs };
                ret = qcow2_do_write(q, c, &v, 1, cs, FALSE);
            }
        }
        block_file_buf_free(big);
    }
    block_file_buf_free(zero);
    return ret;
}

static int qcow2_preadv_sync(BlockDev *bs, uint64_t offset, const struct iovec *iov,
                             int iovcnt)
{
    uint64_t len = 0;

    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    return qcow2_do_read(bs->opaque, offset, iov, iovcnt, len);
}

/* ---- asynchronous entry points ---- */

typedef enum { OP_READ, OP_WRITE, OP_FLUSH, OP_DISCARD, OP_ZEROES } Qcow2Op;

typedef struct Qcow2Work {
    BlockRequest *req;
    Qcow2Op op;
} Qcow2Work;

static int64_t qcow2_work(void *opaque)
{
    Qcow2Work *w = opaque;
    BlockRequest *req = w->req;
    Qcow2State *q = req->bs->opaque;
    int ret = 0;

    switch (w->op) {
    case OP_READ:
        return qcow2_do_read(q, req->offset, req->iov, req->iovcnt, req->length);
    case OP_WRITE:
        return qcow2_do_write(q, req->offset, req->iov, req->iovcnt, req->length,
                              req->flags & BLOCK_REQ_FUA);
    case OP_FLUSH:
        g_mutex_lock(&q->lock);
        ret = qcow2_flush_locked(q);
        g_mutex_unlock(&q->lock);
        return ret;
    case OP_DISCARD: {
        uint64_t start = VIREO_ALIGN_UP(req->offset, (uint64_t)q->cluster_size);
        uint64_t end = VIREO_ALIGN_DOWN(req->offset + req->length, (uint64_t)q->cluster_size);
        /* The last cluster counts as whole when the request ends at the disk's end. */
        if (req->offset + req->length >= req->bs->size)
            end = VIREO_ALIGN_UP(req->offset + req->length, (uint64_t)q->cluster_size);
        if (end > start)
            ret = zero_clusters(q, start, end - start, TRUE, TRUE, FALSE);
        return ret;
    }
    case OP_ZEROES:
        return qcow2_do_zeroes(q, req->offset, req->length, req->flags & BLOCK_REQ_MAY_UNMAP);
    }
    return -EINVAL;
}

static void qcow2_work_done(void *opaque, int64_t ret)
{
    Qcow2Work *w = opaque;
    BlockRequest *req = w->req;

    g_free(w);
    block_request_done(req, ret < 0 ? (int)ret : 0);
}

static void submit_work(BlockDev *bs, BlockRequest *req, Qcow2Op op)
{
    Qcow2Work *w = g_new0(Qcow2Work, 1);

    w->req = req;
    w->op = op;
    block_engine_submit_work(bs->engine, qcow2_work, qcow2_work_done, w);
}

/* One part of a fast-path request finished. */
static void fast_part_done(void *opaque, int64_t ret)
{
    BlockRequest *req = opaque;

    if (ret < 0 && req->ret == 0)
        req->ret = ret;
    if (--req->parts == 0)
        block_request_done(req, req->ret);
}

typedef struct FastSeg {
    uint64_t skip;       /* into the request */
    uint64_t len;
    uint64_t host;       /* 0: zeroes */
} FastSeg;

/* Requests in more pieces than this take the worker path (large ones). */
#define FAST_MAX_SEGS 16

/*
 * Maps the whole request from cached L2 tables without blocking. FALSE
 * means "take the worker path" (cache miss, lock busy, allocation needed,
 * backing file, compressed data, too many pieces, or anything that looks
 * wrong).
 */
static gboolean fast_map(Qcow2State *q, BlockRequest *req, gboolean write, FastSeg *segs,
                         unsigned *nsegs)
{
    uint64_t done = 0;
    unsigned n = 0;

    if (!g_mutex_trylock(&q->lock))
        return FALSE;
    while (done < req->length) {
        uint64_t cur = req->offset + done;
        uint64_t in_cluster = cur & (q->cluster_size - 1);
        uint64_t chunk = MIN(req->length - done, q->cluster_size - in_cluster);
        uint64_t e, host;
        FastSeg *last = n ? &segs[n - 1] : NULL;
        Qcow2ClusterType t;

        if (qcow2_cluster_get_entry(q, cur, TRUE, &e) < 0 ||
            qcow2_cluster_check_entry(q, e, cur) < 0)
            goto slow;
        t = qcow2_cluster_type(q, e);
        if (write) {
            if (t != QCOW2_CLUSTER_NORMAL || !(e & QCOW2_OFLAG_COPIED))
                goto slow;
        } else if (t == QCOW2_CLUSTER_COMPRESSED ||
                   (t == QCOW2_CLUSTER_UNALLOCATED && q->bs->backing)) {
            goto slow;
        }
        host = t == QCOW2_CLUSTER_NORMAL ? (e & QCOW2_OFFSET_MASK) + in_cluster : 0;
        if (last && ((host && last->host && last->host + last->len == host) ||
                     (!host && !last->host))) {
            last->len += chunk;
        } else {
            if (n == FAST_MAX_SEGS)
                goto slow;
            segs[n++] = (FastSeg){ done, chunk, host };
        }
        done += chunk;
    }
    g_mutex_unlock(&q->lock);
    *nsegs = n;
    return TRUE;
slow:
    g_mutex_unlock(&q->lock);
    return FALSE;
}

static void fast_submit(BlockDev *bs, BlockRequest *req, gboolean write, const FastSeg *segs,
                        unsigned nsegs)
{
    req->parts = 1;     /* held until every part is submitted */
    for (unsigned i = 0; i < nsegs; i++) {
        const FastSeg *s = &segs[i];
        struct iovec local[8];
        g_autofree struct iovec *heap = NULL;
        struct iovec *part = local;
        int n;

        /* The engine copies the iovec array, so a stack one will do. */
        if (req->iovcnt <= (int)VIREO_ARRAY_SIZE(local))
            n = iov_slice(req->iov, req->iovcnt, s->skip, s->len, local, req->iovcnt);
        else
            part = heap = slice(req->iov, req->iovcnt, s->skip, s->len, &n);
        if (!s->host) {
            iov_memset(part, n, 0, 0, s->len);
            continue;
        }
        req->parts++;
        block_engine_submit_rw(bs->engine, bs->file, write, s->host, part, n,
                               write && (req->flags & BLOCK_REQ_FUA), fast_part_done, req);
    }
    if (--req->parts == 0)
        block_request_done(req, req->ret);
}

/*
 * Fast allocation: a write inside one cluster that reads as zeroes (no
 * backing file), whose L2 table is cached and private and whose new host
 * cluster can be counted in a cached refcount block, is allocated on the
 * caller's thread with no I/O and no hand-off. It follows the worker's
 * order exactly: refcount in the cache, data written, then the L2 entry.
 */
typedef struct FastAlloc {
    BlockRequest *req;
    Qcow2State *q;
    uint64_t host;
    int64_t ret;
} FastAlloc;

/* The data is written: publish the L2 entry (or, on failure, free the cluster). */
static void fast_alloc_finish_locked(FastAlloc *fa)
{
    Qcow2State *q = fa->q;
    uint64_t gc = fa->req->offset >> q->cluster_bits;
    uint64_t *l2;
    unsigned idx;
    int ret = fa->ret < 0 ? (int)fa->ret : 0;

    if (ret == 0)
        ret = qcow2_cluster_get_writable_l2(q, fa->req->offset, &l2, &idx);
    if (ret == 0) {
        qcow2_table_set(l2, idx, fa->host | QCOW2_OFLAG_COPIED);
        qcow2_cache_mark_dirty(q->l2_cache, l2);
        qcow2_cache_put(q->l2_cache, l2);
    } else {
        qcow2_refcount_update(q, fa->host, q->cluster_size, -1);
    }
    clear_busy(q, gc);
    fa->ret = ret;
}

static int64_t fast_alloc_finish_work(void *opaque)
{
    FastAlloc *fa = opaque;

    g_mutex_lock(&fa->q->lock);
    fast_alloc_finish_locked(fa);
    g_mutex_unlock(&fa->q->lock);
    return fa->ret;
}

static void fast_alloc_finished(void *opaque, int64_t ret)
{
    FastAlloc *fa = opaque;
    BlockRequest *req = fa->req;

    g_free(fa);
    block_request_done(req, ret < 0 ? (int)ret : 0);
}

static void fast_alloc_written(void *opaque, int64_t ret)
{
    FastAlloc *fa = opaque;
    Qcow2State *q = fa->q;

    fa->ret = ret;
    if (ret >= 0 && g_mutex_trylock(&q->lock)) {
        uint64_t l1i = fa->req->offset >> (q->cluster_bits + q->l2_bits);
        if (qcow2_cache_lookup(q->l2_cache, q->l1[l1i] & QCOW2_OFFSET_MASK) &&
            (q->l1[l1i] & QCOW2_OFLAG_COPIED)) {
            fast_alloc_finish_locked(fa);
            g_mutex_unlock(&q->lock);
            fast_alloc_finished(fa, fa->ret);
            return;
        }
        g_mutex_unlock(&q->lock);
    }
    /* Lock busy, table evicted or write failed: finish on a worker. */
    block_engine_submit_work(fa->req->bs->engine, fast_alloc_finish_work, fast_alloc_finished,
                             fa);
}

static gboolean fast_alloc(BlockDev *bs, BlockRequest *req)
{
    Qcow2State *q = bs->opaque;
    uint64_t gc = req->offset >> q->cluster_bits;
    uint64_t in_cluster = req->offset & (q->cluster_size - 1);
    uint64_t l1i = req->offset >> (q->cluster_bits + q->l2_bits);
    uint64_t idx, bi, host, e, *block;
    Qcow2ClusterType t;
    FastAlloc *fa;

    /* FUA needs the L2 entry durable too: the worker path flushes. */
    if (in_cluster + req->length > q->cluster_size || bs->backing_file ||
        (req->flags & BLOCK_REQ_FUA) ||
        l1i >= q->l1_size || !(q->l1[l1i] & QCOW2_OFLAG_COPIED) ||
        !g_mutex_trylock(&q->lock))
        return FALSE;
    if ((q->lazy && !q->dirty_marked) || is_busy(q, gc) ||
        !qcow2_cache_lookup(q->l2_cache, q->l1[l1i] & QCOW2_OFFSET_MASK) ||
        qcow2_cluster_get_entry(q, req->offset, TRUE, &e) < 0)
        goto slow;
    t = qcow2_cluster_type(q, e);
    if (t != QCOW2_CLUSTER_UNALLOCATED && t != QCOW2_CLUSTER_ZERO_PLAIN)
        goto slow;
    /* The next free cluster, counted in a cached block, past the data
     * end (a fresh cluster reads as zeroes around the new bytes). */
    idx = MAX(q->free_hint, 1);
    host = idx << q->cluster_bits;
    bi = idx >> q->rcb_bits;
    if (host < q->phys_end || bi >= q->rc_table_size || !q->rc_table[bi] ||
        host + q->cluster_size > (1ull << 56))
        goto slow;
    block = qcow2_cache_lookup(q->rc_cache, q->rc_table[bi]);
    if (!block || qcow2_rc_get(block, idx & ((1u << q->rcb_bits) - 1)) != 0)
        goto slow;
    qcow2_rc_set(block, idx & ((1u << q->rcb_bits) - 1), 1);
    qcow2_cache_mark_dirty(q->rc_cache, block);
    q->free_hint = idx + 1;
    q->host_end = MAX(q->host_end, host + q->cluster_size);
    q->phys_end = host + q->cluster_size;
    extend_file(q, host + q->cluster_size);
    set_busy(q, gc);
    g_mutex_unlock(&q->lock);

    fa = g_new0(FastAlloc, 1);
    fa->req = req;
    fa->q = q;
    fa->host = host;
    block_engine_submit_rw(bs->engine, bs->file, TRUE, host + in_cluster, req->iov,
                           req->iovcnt, FALSE, fast_alloc_written, fa);
    return TRUE;
slow:
    g_mutex_unlock(&q->lock);
    return FALSE;
}

static void qcow2_rw(BlockDev *bs, BlockRequest *req, gboolean write)
{
    FastSeg segs[FAST_MAX_SEGS];
    unsigned nsegs;

    if (fast_map(bs->opaque, req, write, segs, &nsegs))
        fast_submit(bs, req, write, segs, nsegs);
    else if (!write || !fast_alloc(bs, req))
        submit_work(bs, req, write ? OP_WRITE : OP_READ);
}

static void qcow2_readv(BlockDev *bs, BlockRequest *req)
{
    qcow2_rw(bs, req, FALSE);
}

static void qcow2_writev(BlockDev *bs, BlockRequest *req)
{
    qcow2_rw(bs, req, TRUE);
}

static void qcow2_flush(BlockDev *bs, BlockRequest *req)
{
    submit_work(bs, req, OP_FLUSH);
}

static void qcow2_discard(BlockDev *bs, BlockRequest *req)
{
    submit_work(bs, req, OP_DISCARD);
}

static void qcow2_write_zeroes(BlockDev *bs, BlockRequest *req)
{
    submit_work(bs, req, OP_ZEROES);
}

/* ---- synchronous format operations ---- */

static gboolean io_error(GError **error, BlockDev *bs, const char *what, int ret)
{
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "%s of '%s' failed: %s", what,
                bs->filename, g_strerror(-ret));
    return FALSE;
}

static gboolean qcow2_fill_info(BlockDev *bs, BlockInfo *info, GError **error)
{
    Qcow2State *q = bs->opaque;
    GPtrArray *sn;

    info->cluster_size = q->cluster_size;
    info->compat = g_strdup(q->hdr.version >= 3 ? "1.1" : "0.10");
    info->lazy_refcounts = !!(q->hdr.compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS);
    info->corrupt = !!(q->hdr.incompatible_features & QCOW2_INCOMPAT_CORRUPT);
    info->dirty = !!(q->hdr.incompatible_features & QCOW2_INCOMPAT_DIRTY);
    info->refcount_bits = 16;
    info->compression_type = g_strdup(q->hdr.compression_type ? "zstd" : "zlib");
    sn = qcow2_snapshot_list(bs, error);
    if (!sn)
        return FALSE;
    g_ptr_array_unref(info->snapshots);
    info->snapshots = sn;
    return TRUE;
}

static gboolean qcow2_get_status(BlockDev *bs, uint64_t offset, uint64_t length,
                                 BlockStatus *st, GError **error)
{
    Qcow2State *q = bs->opaque;
    uint64_t done = 0;
    Qcow2ClusterType first = QCOW2_CLUSTER_UNALLOCATED;
    uint64_t first_host = 0;
    int ret = 0;

    g_mutex_lock(&q->lock);
    while (done < length) {
        uint64_t cur = offset + done;
        uint64_t in_cluster = cur & (q->cluster_size - 1);
        uint64_t chunk = MIN(length - done, q->cluster_size - in_cluster);
        uint64_t e, host;
        Qcow2ClusterType t;

        ret = qcow2_cluster_get_entry(q, cur, FALSE, &e);
        if (ret == 0)
            ret = qcow2_cluster_check_entry(q, e, cur);
        if (ret < 0)
            break;
        t = qcow2_cluster_type(q, e);
        host = (e & QCOW2_OFFSET_MASK) + in_cluster;
        if (done == 0) {
            first = t;
            first_host = host;
        } else if (t != first || t == QCOW2_CLUSTER_COMPRESSED ||
                   ((t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) &&
                    host != first_host + done)) {
            break;
        }
        done += chunk;
    }
    g_mutex_unlock(&q->lock);
    if (ret < 0)
        return io_error(error, bs, "reading the L2 tables", ret);
    st->length = done;
    switch (first) {
    case QCOW2_CLUSTER_UNALLOCATED:
        st->flags = 0;
        break;
    case QCOW2_CLUSTER_ZERO_PLAIN:
        st->flags = BLOCK_STATUS_ALLOCATED | BLOCK_STATUS_ZERO;
        break;
    case QCOW2_CLUSTER_ZERO_ALLOC:
        st->flags = BLOCK_STATUS_ALLOCATED | BLOCK_STATUS_ZERO | BLOCK_STATUS_OFFSET_VALID;
        st->host_offset = first_host;
        break;
    case QCOW2_CLUSTER_NORMAL:
        st->flags = BLOCK_STATUS_ALLOCATED | BLOCK_STATUS_DATA | BLOCK_STATUS_OFFSET_VALID;
        st->host_offset = first_host;
        break;
    case QCOW2_CLUSTER_COMPRESSED:
        st->flags = BLOCK_STATUS_ALLOCATED | BLOCK_STATUS_DATA | BLOCK_STATUS_COMPRESSED;
        break;
    }
    return TRUE;
}

static gboolean qcow2_truncate(BlockDev *bs, uint64_t size, GError **error)
{
    Qcow2State *q = bs->opaque;
    uint64_t need_l1, per_l1 = (uint64_t)q->cluster_size << q->l2_bits;
    uint8_t be[8];
    int ret = 0;

    if (size % BLOCK_SECTOR_SIZE) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "the new size %" G_GUINT64_FORMAT " is not a multiple of 512", size);
        return FALSE;
    }
    if (size < bs->size) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                    "shrinking qcow2 image '%s' is not supported", bs->filename);
        return FALSE;
    }
    if (size > (1ull << 62)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "the new size %" G_GUINT64_FORMAT " is too large", size);
        return FALSE;
    }
    need_l1 = (size + per_l1 - 1) / per_l1;
    if (need_l1 > QCOW2_MAX_L1_BYTES / 8) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "the new size %" G_GUINT64_FORMAT " needs an L1 table over 32 MiB", size);
        return FALSE;
    }
    g_mutex_lock(&q->lock);
    ret = qcow2_flush_locked(q);
    if (ret == 0 && need_l1 > q->l1_size)
        ret = qcow2_cluster_grow_l1(q, need_l1);
    if (ret == 0) {
        qcow2_put_be64(be, size);
        ret = block_file_pwrite(q->file, be, sizeof(be), 24);
    }
    if (ret == 0)
        ret = block_file_sync(q->file);
    if (ret == 0) {
        q->hdr.size = size;
        bs->size = size;
    }
    g_mutex_unlock(&q->lock);
    if (ret < 0)
        return io_error(error, bs, "resizing", ret);
    return TRUE;
}

static gboolean qcow2_write_compressed(BlockDev *bs, uint64_t offset, const void *data,
                                       size_t len, GError **error)
{
    Qcow2State *q = bs->opaque;
    uint8_t *in, *out;
    int64_t csize;
    uint64_t e, *l2;
    unsigned idx;
    int ret;

    if ((offset & (q->cluster_size - 1)) || len > q->cluster_size || offset >= bs->size ||
        (len < q->cluster_size && offset + len != bs->size)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "a compressed write must cover one whole cluster (offset %"
                    G_GUINT64_FORMAT ", length %zu)", offset, len);
        return FALSE;
    }
    in = block_file_buf_alloc(q->cluster_size);
    out = block_file_buf_alloc(q->cluster_size);
    memcpy(in, data, len);
    csize = qcow2_cluster_compress(q, in, out, q->cluster_size - 1);
    if (csize < 0) {
        /* Incompressible: an ordinary cluster. */
        block_file_buf_free(in);
        block_file_buf_free(out);
        return block_pwrite(bs, offset, data, len, 0, error);
    }
    g_mutex_lock(&q->lock);
    ret = qcow2_cluster_get_entry(q, offset, FALSE, &e);
    if (ret == 0 && qcow2_cluster_type(q, e) != QCOW2_CLUSTER_UNALLOCATED &&
        qcow2_cluster_type(q, e) != QCOW2_CLUSTER_ZERO_PLAIN)
        ret = -EEXIST;
    if (ret == 0)
        ret = mark_dirty(q);
    if (ret == 0) {
        uint64_t cur = q->compressed_cursor;
        uint64_t cend = VIREO_ALIGN_UP(cur + 1, (uint64_t)q->cluster_size);
        uint64_t host, nsec;
        if (cur && (cur & (q->cluster_size - 1)) && cur + csize <= cend &&
            cur + csize <= q->host_end) {
            /* Pack into the partly used cluster: one more reference to it. */
            host = cur;
            ret = qcow2_refcount_update(q, host, 1, 1);
        } else {
            int64_t a = qcow2_refcount_alloc(q, (csize + q->cluster_size - 1) >>
                                             q->cluster_bits);
            ret = a < 0 ? a : 0;
            host = a;
        }
        if (ret == 0) {
            ret = block_file_pwrite(q->file, out, csize, host);
            q->phys_end = MAX(q->phys_end, host + csize);
        }
        if (ret == 0)
            ret = qcow2_cluster_get_writable_l2(q, offset, &l2, &idx);
        if (ret == 0) {
            nsec = ((host + csize - 1) >> 9) - (host >> 9);
            qcow2_table_set(l2, idx, QCOW2_OFLAG_COMPRESSED | (nsec << q->csize_shift) | host);
            qcow2_cache_mark_dirty(q->l2_cache, l2);
            qcow2_cache_put(q->l2_cache, l2);
            q->compressed_cursor = host + csize;
        }
    }
    g_mutex_unlock(&q->lock);
    block_file_buf_free(in);
    block_file_buf_free(out);
    if (ret == -EEXIST) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "compressed write to an allocated cluster at %" G_GUINT64_FORMAT, offset);
        return FALSE;
    }
    if (ret < 0)
        return io_error(error, bs, "compressed write", ret);
    return TRUE;
}

static gboolean qcow2_change_backing(BlockDev *bs, const char *backing, const char *fmt,
                                     GError **error)
{
    Qcow2State *q = bs->opaque;
    g_autofree char *old = bs->backing_file;
    g_autofree char *old_fmt = bs->backing_format;
    int ret;

    if (backing && (strlen(backing) == 0 || strlen(backing) > QCOW2_MAX_BACKING_NAME)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "backing file name must be 1..%d bytes long", QCOW2_MAX_BACKING_NAME);
        bs->backing_file = g_steal_pointer(&old);
        bs->backing_format = g_steal_pointer(&old_fmt);
        return FALSE;
    }
    bs->backing_file = g_strdup(backing);
    bs->backing_format = backing ? g_strdup(fmt) : NULL;
    g_mutex_lock(&q->lock);
    ret = qcow2_flush_locked(q);
    if (ret == 0)
        ret = qcow2_write_header(q);
    if (ret == 0)
        ret = block_file_sync(q->file);
    g_mutex_unlock(&q->lock);
    /* block.c owns the strings; it sets them again on success. */
    g_free(bs->backing_file);
    g_free(bs->backing_format);
    bs->backing_file = g_steal_pointer(&old);
    bs->backing_format = g_steal_pointer(&old_fmt);
    if (ret == -ENOSPC) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "the backing file name does not fit in the header cluster");
        return FALSE;
    }
    if (ret < 0)
        return io_error(error, bs, "writing the header", ret);
    return TRUE;
}

static gboolean qcow2_make_empty(BlockDev *bs, GError **error)
{
    Qcow2State *q = bs->opaque;
    int ret = zero_clusters(q, 0, VIREO_ALIGN_UP(bs->size, (uint64_t)q->cluster_size),
                            TRUE, TRUE, TRUE);

    if (ret == 0) {
        g_mutex_lock(&q->lock);
        ret = qcow2_flush_locked(q);
        g_mutex_unlock(&q->lock);
    }
    if (ret < 0)
        return io_error(error, bs, "emptying the image", ret);
    return TRUE;
}

/* ---- create ---- */

gboolean qcow2_create(const char *path, const Qcow2CreateOptions *opts, GError **error)
{
    uint64_t cs = opts->cluster_size ? opts->cluster_size : QCOW2_DEFAULT_CLUSTER_SIZE;
    int version = opts->version ? opts->version : 3;
    uint64_t size = VIREO_ALIGN_UP(opts->size, (uint64_t)BLOCK_SECTOR_SIZE);
    Qcow2Header h = { 0 };
    uint64_t l1_size, l1c, rcb_entries, nb = 1, tc = 1, total;
    uint8_t *hdr = NULL, *meta = NULL;
    g_autoptr(BlockFile) f = NULL;
    int bits = 0, ret, err;

    while ((1ull << bits) < cs)
        bits++;
    if ((1ull << bits) != cs || bits < 9 || bits > QCOW2_MAX_CLUSTER_BITS) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "cluster size %" G_GUINT64_FORMAT " must be a power of two between 512 "
                    "and 2 MiB", cs);
        return FALSE;
    }
    if (version != 2 && version != 3) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "qcow2 version %d is not 2 (compat 0.10) or 3 (compat 1.1)", version);
        return FALSE;
    }
    if (version < 3 && (opts->lazy_refcounts || opts->compression_type)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "lazy refcounts and zstd compression need compat 1.1 (version 3)");
        return FALSE;
    }
    if (opts->backing_format && strcmp(opts->backing_format, "raw") &&
        strcmp(opts->backing_format, "qcow2")) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "backing format '%s' is not raw or qcow2", opts->backing_format);
        return FALSE;
    }
    if (opts->backing_file && strlen(opts->backing_file) > QCOW2_MAX_BACKING_NAME) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "backing file name is longer than %d bytes", QCOW2_MAX_BACKING_NAME);
        return FALSE;
    }
    if (opts->backing_file && opts->size == 0) {
        /* Like qemu-img create: the size defaults to the backing file's. */
        g_autofree char *full = block_resolve_backing_path(path, opts->backing_file);
        BlockOpenOptions bo = { .format = opts->backing_format, .read_only = TRUE,
                                .force_share = TRUE, .no_backing = TRUE };
        g_autoptr(BlockDev) b = block_open(full, &bo, error);
        if (!b) {
            g_prefix_error(error, "cannot open the backing file to get its size: ");
            return FALSE;
        }
        size = VIREO_ALIGN_UP(block_get_size(b), (uint64_t)BLOCK_SECTOR_SIZE);
    }
    l1_size = (size + (cs << (bits - 3)) - 1) / (cs << (bits - 3));
    if (size > (1ull << 62) || l1_size > QCOW2_MAX_L1_BYTES / 8) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "virtual size %" G_GUINT64_FORMAT " is too large for cluster size %"
                    G_GUINT64_FORMAT, size, cs);
        return FALSE;
    }
    l1c = MAX(VIREO_ALIGN_UP(l1_size * 8, cs) / cs, 1);
    rcb_entries = cs / 2;
    /* header, refcount table, refcount blocks, L1 table. */
    for (;;) {
        uint64_t nb2, tc2;
        total = 1 + tc + nb + l1c;
        nb2 = (total + rcb_entries - 1) / rcb_entries;
        tc2 = (nb2 * 8 + cs - 1) / cs;
        if (nb2 == nb && tc2 == tc)
            break;
        nb = MAX(nb, nb2);
        tc = MAX(tc, tc2);
    }
    h.version = version;
    h.cluster_bits = bits;
    h.size = size;
    h.l1_size = l1_size;
    h.refcount_table_offset = cs;
    h.refcount_table_clusters = tc;
    h.l1_table_offset = (1 + tc + nb) * cs;
    h.refcount_order = 4;
    h.compatible_features = opts->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0;
    h.compression_type = opts->compression_type;
    h.incompatible_features = opts->compression_type ? QCOW2_INCOMPAT_COMPRESSION : 0;
    hdr = qcow2_build_header(&h, NULL, opts->backing_file,
                       opts->backing_file ? opts->backing_format : NULL, cs, &err);
    if (!hdr) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "the backing file name does not fit in the header cluster");
        return FALSE;
    }
    meta = block_file_buf_alloc((total - 1) * cs);
    for (uint64_t k = 0; k < nb; k++)
        qcow2_put_be64(meta + k * 8, (1 + tc + k) * cs);
    for (uint64_t c = 0; c < total; c++)
        qcow2_put_be16(meta + tc * cs + c * 2, 1);
    {
        autoclose int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            int saved = errno;
            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                        "cannot create '%s': %s", path, g_strerror(saved));
            goto fail;
        }
    }
    f = block_file_open(path, FALSE, BLOCK_CACHE_WRITEBACK, error);
    if (!f || !block_file_lock(f, TRUE, error))
        goto fail;
    ret = block_file_pwrite(f, hdr, cs, 0);
    if (ret == 0)
        ret = block_file_pwrite(f, meta, (total - 1) * cs, cs);
    if (ret == 0)
        ret = block_file_sync(f);
    if (ret < 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot write '%s': %s", path,
                    g_strerror(-ret));
        goto fail;
    }
    g_clear_pointer(&f, block_file_free);
    block_file_buf_free(hdr);
    block_file_buf_free(meta);
    hdr = meta = NULL;
    if (opts->preallocation == QCOW2_PREALLOC_METADATA) {
        BlockOpenOptions o = { .format = "qcow2", .no_backing = TRUE };
        g_autoptr(BlockDev) bs = block_open(path, &o, error);
        Qcow2State *q;
        if (!bs)
            return FALSE;
        q = bs->opaque;
        g_mutex_lock(&q->lock);
        ret = 0;
        for (uint64_t off = 0; off < size && ret == 0; off += cs) {
            uint64_t *l2;
            unsigned idx;
            int64_t a = qcow2_refcount_alloc(q, 1);
            ret = a < 0 ? a : qcow2_cluster_get_writable_l2(q, off, &l2, &idx);
            if (ret == 0) {
                qcow2_table_set(l2, idx, (uint64_t)a | QCOW2_OFLAG_COPIED);
                qcow2_cache_mark_dirty(q->l2_cache, l2);
                qcow2_cache_put(q->l2_cache, l2);
            }
        }
        if (ret == 0)
            ret = block_file_truncate(q->file, q->host_end);
        if (ret == 0)
            ret = qcow2_flush_locked(q);
        g_mutex_unlock(&q->lock);
        if (ret < 0) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot preallocate '%s': %s",
                        path, g_strerror(-ret));
            return FALSE;
        }
    }
    return TRUE;
fail:
    block_file_buf_free(hdr);
    block_file_buf_free(meta);
    return FALSE;
}

const BlockDriver block_driver_qcow2 = {
    .name = "qcow2",
    .open = qcow2_open,
    .close = qcow2_close,
    .readv = qcow2_readv,
    .writev = qcow2_writev,
    .flush = qcow2_flush,
    .discard = qcow2_discard,
    .write_zeroes = qcow2_write_zeroes,
    .preadv_sync = qcow2_preadv_sync,
    .fill_info = qcow2_fill_info,
    .get_status = qcow2_get_status,
    .check = qcow2_refcount_check,
    .truncate = qcow2_truncate,
    .snapshot_create = qcow2_snapshot_create,
    .snapshot_apply = qcow2_snapshot_apply,
    .snapshot_delete = qcow2_snapshot_delete,
    .snapshot_list = qcow2_snapshot_list,
    .write_compressed = qcow2_write_compressed,
    .change_backing = qcow2_change_backing,
    .make_empty = qcow2_make_empty,
};
