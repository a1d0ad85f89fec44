/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qcow2 refcounts: lookup, update, cluster allocation, deferred frees,
 * refcount table growth, and check/repair.
 *
 * Only refcount_order 4 (16-bit refcounts, qemu's default) is supported.
 *
 * Ordering rules that keep a crash from corrupting the image:
 * - increments reach the disk before any reference to the cluster
 *   (qcow2-cache.c writes refcount blocks before L2 tables);
 * - decrements are applied only after the metadata that dropped the
 *   reference is durable (qcow2_refcount_free_later + qcow2_flush_locked), so a
 *   crash can leak a cluster but never leave a reference to a free one;
 * - a new refcount block is written and synced before the refcount table
 *   entry that points at it, and a new refcount table before the header.
 */
#include <string.h>

#include "qcow2-internal.h"
#include "vireo/util.h"

#define MAX_CHECK_CLUSTERS (64ull << 20)

static inline gboolean block_missing(Qcow2State *q, uint64_t bi)
{
    return bi >= q->rc_table_size || q->rc_table[bi] == 0;
}

int qcow2_refcount_get(Qcow2State *q, uint64_t idx, uint64_t *refcount)
{
    uint64_t bi = idx >> q->rcb_bits;
    uint64_t *block;
    int ret;

    if (block_missing(q, bi)) {
        *refcount = 0;
        return 0;
    }
    ret = qcow2_cache_get(q->rc_cache, q->rc_table[bi], &block);
    if (ret < 0)
        return ret;
    *refcount = qcow2_rc_get(block, idx & ((1u << q->rcb_bits) - 1));
    qcow2_cache_put(q->rc_cache, block);
    return 0;
}

static int write_rc_table_entry(Qcow2State *q, uint64_t bi)
{
    uint64_t be = GUINT64_TO_BE(q->rc_table[bi]);

    return block_file_pwrite(q->file, &be, sizeof(be),
                             q->hdr.refcount_table_offset + bi * sizeof(uint64_t));
}

/*
 * A new block for range @bi goes inside its own range, so it describes
 * itself and needs no other block: the range has no block yet, so every
 * cluster in it is free. [avoid, avoid + avoid_n) is being allocated.
 */
static int alloc_refcount_block(Qcow2State *q, uint64_t bi, uint64_t avoid, uint64_t avoid_n)
{
    uint64_t first = bi << q->rcb_bits;
    uint64_t last = first + (1ull << q->rcb_bits);
    uint64_t c = first == 0 ? 1 : first;
    uint64_t *block;
    int ret;

    if (c >= avoid && c < avoid + avoid_n)
        c = avoid + avoid_n;
    if (c >= last)
        return -ENOSPC;
    ret = qcow2_cache_get_empty(q->rc_cache, c << q->cluster_bits, &block);
    if (ret < 0)
        return ret;
    qcow2_rc_set(block, c - first, 1);
    ret = block_file_pwrite(q->file, block, q->cluster_size, c << q->cluster_bits);
    qcow2_cache_put(q->rc_cache, block);
    if (ret == 0)
        ret = block_file_sync(q->file);
    if (ret < 0) {
        qcow2_cache_discard(q->rc_cache, c << q->cluster_bits);
        return ret;
    }
    q->rc_table[bi] = c << q->cluster_bits;
    ret = write_rc_table_entry(q, bi);
    if (ret < 0) {
        q->rc_table[bi] = 0;
        return ret;
    }
    q->host_end = MAX(q->host_end, (c + 1) << q->cluster_bits);
    q->phys_end = MAX(q->phys_end, (c + 1) << q->cluster_bits);
    return 0;
}

/*
 * The refcount table is full: write a bigger one after the end of the
 * image, together with refcount blocks for its own clusters, then switch
 * the header to it.
 */
static int grow_rc_table(Qcow2State *q, uint64_t need_bi, uint64_t avoid, uint64_t avoid_n)
{
    uint64_t per_cluster = q->cluster_size / sizeof(uint64_t);
    /* After everything in use, including the run being allocated. */
    uint64_t start = MAX(VIREO_ALIGN_UP(MAX(q->host_end, q->phys_end),
                                        (uint64_t)q->cluster_size) >> q->cluster_bits,
                         avoid + avoid_n);
    uint64_t new_size = MAX(need_bi + 1, (uint64_t)q->rc_table_size * 2);
    uint64_t tc, nb = 0, nb_prev;
    g_autofree uint64_t *table = NULL;
    g_autofree uint64_t *new_bi = NULL;
    uint8_t *blocks = NULL;
    uint64_t old_off = q->hdr.refcount_table_offset;
    uint32_t old_clusters = q->hdr.refcount_table_clusters;
    uint8_t hdr_buf[12];
    int ret;

    /* Iterate until the table and the blocks describing them fit. */
    do {
        uint64_t end;
        nb_prev = nb;
        tc = (new_size + per_cluster - 1) / per_cluster;
        end = start + tc + nb;
        new_size = MAX(new_size, ((end - 1) >> q->rcb_bits) + 1);
        tc = (new_size + per_cluster - 1) / per_cluster;
        end = start + tc + nb;
        nb = 0;
        for (uint64_t bi = start >> q->rcb_bits; bi <= (end - 1) >> q->rcb_bits; bi++)
            if (block_missing(q, bi))
                nb++;
    } while (nb != nb_prev);
    if (tc * q->cluster_size > QCOW2_MAX_REFTABLE_BYTES)
        return -EFBIG;

    table = g_new0(uint64_t, tc * per_cluster);
    for (uint32_t i = 0; i < q->rc_table_size; i++)
        table[i] = q->rc_table[i];
    new_bi = g_new0(uint64_t, MAX(nb, 1));
    blocks = block_file_buf_alloc(MAX(nb, 1) * q->cluster_size);
    {
        uint64_t end = start + tc + nb, k = 0;
        for (uint64_t bi = start >> q->rcb_bits; bi <= (end - 1) >> q->rcb_bits; bi++) {
            if (block_missing(q, bi)) {
                new_bi[k] = bi;
                table[bi] = (start + tc + k) << q->cluster_bits;
                k++;
            }
        }
        /* Refcount 1 for every new cluster, in a new or an existing block. */
        for (uint64_t c = start; c < end; c++) {
            uint64_t bi = c >> q->rcb_bits;
            gboolean is_new = FALSE;
            for (k = 0; k < nb; k++) {
                if (new_bi[k] == bi) {
                    qcow2_rc_set((uint64_t *)(blocks + k * q->cluster_size),
                                 c & ((1u << q->rcb_bits) - 1), 1);
                    is_new = TRUE;
                    break;
                }
            }
            if (!is_new) {
                ret = qcow2_refcount_update(q, c << q->cluster_bits, q->cluster_size, 1);
                if (ret < 0)
                    goto out;
            }
        }
    }
    for (uint64_t i = 0; i < tc * per_cluster; i++)
        table[i] = GUINT64_TO_BE(table[i]);
    ret = block_file_pwrite(q->file, blocks, nb * q->cluster_size,
                            (start + tc) << q->cluster_bits);
    if (ret == 0)
        ret = block_file_pwrite(q->file, table, tc * q->cluster_size,
                                start << q->cluster_bits);
    if (ret == 0)
        ret = qcow2_cache_flush(q->rc_cache);
    if (ret == 0)
        ret = block_file_sync(q->file);
    if (ret < 0)
        goto out;
    qcow2_put_be64(hdr_buf, start << q->cluster_bits);
    qcow2_put_be32(hdr_buf + 8, tc);
    ret = block_file_pwrite(q->file, hdr_buf, sizeof(hdr_buf), 48);
    if (ret == 0)
        ret = block_file_sync(q->file);
    if (ret < 0)
        goto out;
    for (uint64_t i = 0; i < tc * per_cluster; i++)
        table[i] = GUINT64_FROM_BE(table[i]);
    g_free(q->rc_table);
    q->rc_table = g_steal_pointer(&table);
    q->rc_table_size = tc * per_cluster;
    q->hdr.refcount_table_offset = start << q->cluster_bits;
    q->hdr.refcount_table_clusters = tc;
    q->host_end = MAX(q->host_end, (start + tc + nb) << q->cluster_bits);
    q->phys_end = MAX(q->phys_end, (start + tc + nb) << q->cluster_bits);
    /* The old table is unreferenced now that the header is durable. */
    ret = qcow2_refcount_update(q, old_off, (uint64_t)old_clusters << q->cluster_bits, -1);
out:
    block_file_buf_free(blocks);
    return ret;
}

static int update_one(Qcow2State *q, uint64_t idx, int delta, uint64_t avoid,
                      uint64_t avoid_n)
{
    uint64_t bi = idx >> q->rcb_bits;
    uint64_t *block;
    int64_t v;
    int ret;

    if (block_missing(q, bi)) {
        if (delta < 0) {
            qcow2_signal_corruption(q, "freeing cluster %" G_GUINT64_FORMAT
                                    " which has no refcount block", idx);
            return -EIO;
        }
        if (bi >= q->rc_table_size) {
            ret = grow_rc_table(q, bi, avoid, avoid_n);
            if (ret < 0)
                return ret;
        }
        if (block_missing(q, bi)) {
            ret = alloc_refcount_block(q, bi, avoid, avoid_n);
            if (ret < 0)
                return ret;
        }
    }
    ret = qcow2_cache_get(q->rc_cache, q->rc_table[bi], &block);
    if (ret < 0)
        return ret;
    v = (int64_t)qcow2_rc_get(block, idx & ((1u << q->rcb_bits) - 1)) + delta;
    if (v < 0 || v > 0xffff) {
        qcow2_cache_put(q->rc_cache, block);
        if (v > 0xffff)
            return -ERANGE;
        qcow2_signal_corruption(q, "refcount of cluster %" G_GUINT64_FORMAT
                                " would drop below 0", idx);
        return -EIO;
    }
    qcow2_rc_set(block, idx & ((1u << q->rcb_bits) - 1), v);
    qcow2_cache_mark_dirty(q->rc_cache, block);
    qcow2_cache_put(q->rc_cache, block);
    if (v == 0) {
        uint64_t off = idx << q->cluster_bits;
        q->free_hint = MIN(q->free_hint, idx);
        /* A freed metadata cluster must never be written back later. */
        qcow2_cache_discard(q->l2_cache, off);
        qcow2_cache_discard(q->rc_cache, off);
        if (q->bs->discard)
            block_file_discard(q->file, off, q->cluster_size);
    }
    return 0;
}

int qcow2_refcount_update(Qcow2State *q, uint64_t offset, uint64_t length, int delta)
{
    uint64_t first, last;

    if (length == 0)
        return 0;
    first = offset >> q->cluster_bits;
    last = (offset + length - 1) >> q->cluster_bits;
    for (uint64_t idx = first; idx <= last; idx++) {
        int ret = update_one(q, idx, delta, idx, 1);
        if (ret < 0)
            return ret;
    }
    return 0;
}

int64_t qcow2_refcount_alloc(Qcow2State *q, uint64_t n)
{
    uint64_t idx = MAX(q->free_hint, 1);
    gboolean from_hint = TRUE;
    int ret;

    g_assert(n > 0);
restart:
    for (uint64_t i = 0; i < n; i++) {
        uint64_t rc;
        if (((idx + i) << q->cluster_bits) >= q->host_end)
            break;               /* past the end everything is free */
        ret = qcow2_refcount_get(q, idx + i, &rc);
        if (ret < 0)
            return ret;
        if (rc) {
            if (i == 0 && from_hint)
                q->free_hint = idx + 1;
            else
                from_hint = FALSE;
            idx = idx + i + 1;
            goto restart;
        }
    }
    if (((idx + n) << q->cluster_bits) > (1ull << 56))
        return -EFBIG;
    for (uint64_t i = 0; i < n; i++) {
        ret = update_one(q, idx + i, 1, idx, n);
        if (ret < 0) {
            /* Undo what was counted; leaks at worst if this fails too. */
            for (uint64_t j = 0; j < i; j++)
                update_one(q, idx + j, -1, 0, 0);
            return ret;
        }
    }
    if (from_hint)
        q->free_hint = idx + n;
    q->host_end = MAX(q->host_end, (idx + n) << q->cluster_bits);
    return (int64_t)(idx << q->cluster_bits);
}

void qcow2_refcount_free_later(Qcow2State *q, uint64_t offset, uint64_t length)
{
    Qcow2Range r = { offset, length };

    g_array_append_val(q->pending_free, r);
}

int qcow2_refcount_process_pending(Qcow2State *q)
{
    int ret = 0;

    for (guint i = 0; i < q->pending_free->len; i++) {
        Qcow2Range *r = &g_array_index(q->pending_free, Qcow2Range, i);
        int r2 = qcow2_refcount_update(q, r->offset, r->length, -1);
        if (r2 < 0 && ret == 0)
            ret = r2;
    }
    g_array_set_size(q->pending_free, 0);
    return ret;
}

gboolean qcow2_refcount_open(Qcow2State *q, uint64_t file_size, GError **error)
{
    uint64_t bytes = (uint64_t)q->hdr.refcount_table_clusters << q->cluster_bits;
    uint64_t limit = VIREO_ALIGN_UP(file_size, (uint64_t)q->cluster_size);
    int ret;

    q->rc_table_size = bytes / sizeof(uint64_t);
    q->rc_table = g_malloc(bytes);
    ret = block_file_pread(q->file, q->rc_table, bytes, q->hdr.refcount_table_offset);
    if (ret < 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot read the refcount table: %s",
                    g_strerror(-ret));
        return FALSE;
    }
    for (uint32_t i = 0; i < q->rc_table_size; i++) {
        uint64_t e = GUINT64_FROM_BE(q->rc_table[i]);
        q->rc_table[i] = e;
        if (e == 0)
            continue;
        if (e & (q->cluster_size - 1) || e == 0 || e >= limit) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "refcount table entry %u (0x%" G_GINT64_MODIFIER "x) is %s", i, e,
                        e & (q->cluster_size - 1) ? "not cluster aligned" :
                        "beyond the end of the file");
            return FALSE;
        }
    }
    return TRUE;
}

/* ---- check and repair ---- */

typedef struct Check {
    Qcow2State *q;
    uint16_t *refs;
    uint64_t nclusters;
    BlockCheckResult *res;
    BlockCheckFix fix;
    gboolean fixed_entries;
    gboolean quiet;           /* rebuild: count, do not report */
} Check;

static void check_ref(Check *ck, uint64_t offset, uint64_t length, const char *what)
{
    Qcow2State *q = ck->q;

    if (length == 0)
        return;
    for (uint64_t c = offset >> q->cluster_bits;
         c <= (offset + length - 1) >> q->cluster_bits; c++) {
        if (c >= ck->nclusters) {
            if (!ck->quiet)
                g_debug("check: %s at 0x%" G_GINT64_MODIFIER "x is beyond the end of '%s'",
                        what, c << q->cluster_bits, q->bs->filename);
            ck->res->corruptions++;
            return;
        }
        if (ck->refs[c] < 0xffff)
            ck->refs[c]++;
    }
}

/* Clears a bad entry in an L1 or L2 table on disk (repair of errors). */
static void fix_entry(Check *ck, uint64_t table_off, unsigned index)
{
    uint64_t zero = 0;

    if (!(ck->fix & BLOCK_CHECK_FIX_ERRORS))
        return;
    if (block_file_pwrite(ck->q->file, &zero, sizeof(zero), table_off + index * 8) == 0) {
        ck->res->corruptions_fixed++;
        ck->fixed_entries = TRUE;
    }
}

static int check_l2(Check *ck, uint64_t l2_off, gboolean active, uint64_t *buf,
                    uint64_t guest_base, uint64_t *prev_host)
{
    Qcow2State *q = ck->q;
    unsigned n = 1u << q->l2_bits;
    int ret = block_file_pread(q->file, buf, q->cluster_size, l2_off);

    if (ret < 0) {
        ck->res->check_errors++;
        return ret;
    }
    for (unsigned i = 0; i < n; i++) {
        uint64_t e = GUINT64_FROM_BE(buf[i]);
        Qcow2ClusterType t = qcow2_cluster_type(q, e);
        uint64_t off, len;

        if (active && guest_base + ((uint64_t)i << q->cluster_bits) >= q->bs->size)
            break;
        switch (t) {
        case QCOW2_CLUSTER_COMPRESSED:
            qcow2_cluster_compressed_range(q, e, &off, &len);
            if (active) {
                ck->res->compressed_clusters++;
                ck->res->allocated_clusters++;
                /* qemu-img counts every compressed cluster as fragmented:
                 * reading one re-reads sectors shared with its neighbours. */
                ck->res->fragmented_clusters++;
            }
            if (off + len > (ck->nclusters << q->cluster_bits) + BLOCK_SECTOR_SIZE) {
                ck->res->corruptions++;
                fix_entry(ck, l2_off, i);
                break;
            }
            check_ref(ck, off, MIN(len, (ck->nclusters << q->cluster_bits) - off),
                      "compressed data");
            break;
        case QCOW2_CLUSTER_NORMAL:
        case QCOW2_CLUSTER_ZERO_ALLOC:
            off = e & QCOW2_OFFSET_MASK;
            if (off & (q->cluster_size - 1) || (off >> q->cluster_bits) >= ck->nclusters) {
                ck->res->corruptions++;
                fix_entry(ck, l2_off, i);
                break;
            }
            if (active) {
                ck->res->allocated_clusters++;
                if (*prev_host && off != *prev_host + q->cluster_size)
                    ck->res->fragmented_clusters++;
                *prev_host = off;
            }
            check_ref(ck, off, q->cluster_size, "data cluster");
            break;
        default:
            if (e & QCOW2_L2E_RESERVED & ~QCOW2_OFLAG_ZERO) {
                ck->res->corruptions++;
                fix_entry(ck, l2_off, i);
            }
            break;
        }
    }
    return 0;
}

static int check_l1(Check *ck, uint64_t l1_off, uint32_t l1_size, gboolean active)
{
    Qcow2State *q = ck->q;
    g_autofree uint64_t *l1 = NULL;
    uint64_t *buf = block_file_buf_alloc(q->cluster_size);
    uint64_t prev_host = 0;
    int ret;

    check_ref(ck, l1_off, (uint64_t)l1_size * 8, "L1 table");
    if (active) {
        l1 = g_memdup2(q->l1, (size_t)l1_size * 8);
    } else {
        l1 = g_malloc0((size_t)MAX(l1_size, 1) * 8);
        ret = block_file_pread(q->file, l1, (size_t)l1_size * 8, l1_off);
        if (ret < 0) {
            ck->res->check_errors++;
            block_file_buf_free(buf);
            return 0;
        }
        for (uint32_t i = 0; i < l1_size; i++)
            l1[i] = GUINT64_FROM_BE(l1[i]);
    }
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2_off = l1[i] & QCOW2_OFFSET_MASK;
        if (!l2_off)
            continue;
        if (l2_off & (q->cluster_size - 1) || (l2_off >> q->cluster_bits) >= ck->nclusters) {
            ck->res->corruptions++;
            if (active && (ck->fix & BLOCK_CHECK_FIX_ERRORS)) {
                q->l1[i] = 0;
                fix_entry(ck, l1_off, i);
            }
            continue;
        }
        check_ref(ck, l2_off, q->cluster_size, "L2 table");
        /* qemu-img counts fragmentation within each L2 table only. */
        prev_host = 0;
        check_l2(ck, l2_off, active, buf,
                 (uint64_t)i << (q->cluster_bits + q->l2_bits), &prev_host);
    }
    block_file_buf_free(buf);
    return 0;
}

/* Counts every reference from the metadata (except the refcount structures
 * when @with_refcounts is FALSE). */
static int count_refs(Check *ck, gboolean with_refcounts)
{
    Qcow2State *q = ck->q;

    check_ref(ck, 0, q->cluster_size, "header");
    check_l1(ck, q->hdr.l1_table_offset, q->l1_size, TRUE);
    for (uint32_t i = 0; i < q->nb_snapshots; i++)
        check_l1(ck, q->snapshots[i].l1_table_offset, q->snapshots[i].l1_size, FALSE);
    if (q->nb_snapshots) {
        /* The table's size: entries are variable-length. */
        uint64_t len = 0;
        for (uint32_t i = 0; i < q->nb_snapshots; i++) {
            Qcow2Snapshot *sn = &q->snapshots[i];
            len += VIREO_ALIGN_UP(40 + sn->extra_size + strlen(sn->id) + strlen(sn->name),
                                  (uint64_t)8);
        }
        check_ref(ck, q->hdr.snapshots_offset, len, "snapshot table");
    }
    if (with_refcounts) {
        check_ref(ck, q->hdr.refcount_table_offset,
                  (uint64_t)q->hdr.refcount_table_clusters << q->cluster_bits,
                  "refcount table");
        for (uint32_t i = 0; i < q->rc_table_size; i++)
            if (q->rc_table[i])
                check_ref(ck, q->rc_table[i], q->cluster_size, "refcount block");
    }
    return 0;
}

static gboolean check_prepare(Check *ck, Qcow2State *q, BlockCheckResult *res, GError **error)
{
    int64_t size = block_file_get_size(q->file);

    ck->q = q;
    ck->res = res;
    if (size < 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot get the size of '%s': %s",
                    q->bs->filename, g_strerror((int)-size));
        return FALSE;
    }
    ck->nclusters = MAX(VIREO_ALIGN_UP((uint64_t)size, (uint64_t)q->cluster_size),
                        q->host_end) >> q->cluster_bits;
    if (ck->nclusters > MAX_CHECK_CLUSTERS) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                    "'%s' has %" G_GUINT64_FORMAT " clusters, more than check handles",
                    q->bs->filename, ck->nclusters);
        return FALSE;
    }
    ck->refs = g_new0(uint16_t, MAX(ck->nclusters, 1));
    return TRUE;
}

gboolean qcow2_refcount_rebuild(Qcow2State *q, GError **error)
{
    BlockCheckResult res = { 0 };
    Check ck = { .quiet = TRUE };
    uint64_t per_cluster = q->cluster_size / sizeof(uint64_t);
    uint64_t start = 0, tc, nb, end, nbits = q->rcb_bits;
    g_autofree uint64_t *table = NULL;
    uint8_t *blocks = NULL;
    uint8_t hdr_buf[12];
    int ret;

    if (!check_prepare(&ck, q, &res, error))
        return FALSE;
    count_refs(&ck, FALSE);
    for (uint64_t c = 0; c < ck.nclusters; c++)
        if (ck.refs[c])
            start = c + 1;
    /* New structures after everything still referenced: the table, then
     * blocks covering [0, end) including themselves. Grows monotonically,
     * so the loop ends. */
    nb = 1;
    tc = 1;
    for (;;) {
        uint64_t nb2, tc2;
        end = start + tc + nb;
        nb2 = (end + (1ull << nbits) - 1) >> nbits;
        tc2 = (nb2 + per_cluster - 1) / per_cluster;
        if (nb2 == nb && tc2 == tc)
            break;
        nb = MAX(nb, nb2);
        tc = MAX(tc, tc2);
    }
    if (tc * q->cluster_size > QCOW2_MAX_REFTABLE_BYTES) {
        g_free(ck.refs);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                    "refcount table of '%s' would be too large", q->bs->filename);
        return FALSE;
    }
    table = g_new0(uint64_t, tc * per_cluster);
    blocks = block_file_buf_alloc(nb * q->cluster_size);
    for (uint64_t k = 0; k < nb; k++)
        table[k] = GUINT64_TO_BE((start + tc + k) << q->cluster_bits);
    for (uint64_t c = 0; c < end; c++) {
        uint16_t v = c < ck.nclusters ? ck.refs[c] : 0;
        if (c >= start)
            v = 1;
        qcow2_rc_set((uint64_t *)(blocks + (c >> nbits) * q->cluster_size),
                     c & ((1u << nbits) - 1), v);
    }
    g_free(ck.refs);
    ret = block_file_pwrite(q->file, blocks, nb * q->cluster_size,
                            (start + tc) << q->cluster_bits);
    if (ret == 0)
        ret = block_file_pwrite(q->file, table, tc * q->cluster_size,
                                start << q->cluster_bits);
    if (ret == 0)
        ret = block_file_sync(q->file);
    block_file_buf_free(blocks);
    if (ret == 0) {
        qcow2_put_be64(hdr_buf, start << q->cluster_bits);
        qcow2_put_be32(hdr_buf + 8, tc);
        ret = block_file_pwrite(q->file, hdr_buf, sizeof(hdr_buf), 48);
    }
    if (ret == 0)
        ret = block_file_sync(q->file);
    if (ret < 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                    "cannot write the new refcount structures of '%s': %s",
                    q->bs->filename, g_strerror(-ret));
        return FALSE;
    }
    for (uint64_t i = 0; i < tc * per_cluster; i++)
        table[i] = GUINT64_FROM_BE(table[i]);
    qcow2_cache_clear(q->rc_cache);
    g_free(q->rc_table);
    q->rc_table = g_steal_pointer(&table);
    q->rc_table_size = tc * per_cluster;
    q->hdr.refcount_table_offset = start << q->cluster_bits;
    q->hdr.refcount_table_clusters = tc;
    q->host_end = end << q->cluster_bits;
    q->phys_end = MAX(q->phys_end, q->host_end);
    q->free_hint = 1;
    g_array_set_size(q->pending_free, 0);
    return TRUE;
}

static gboolean check_once(Qcow2State *q, BlockCheckFix fix, BlockCheckResult *res,
                           GError **error)
{
    Check ck = { .fix = fix };
    uint64_t last = 0, rc_limit;

    memset(res, 0, sizeof(*res));
    if (!check_prepare(&ck, q, res, error))
        return FALSE;
    count_refs(&ck, TRUE);
    rc_limit = MAX(ck.nclusters, (uint64_t)q->rc_table_size << q->rcb_bits);
    rc_limit = MIN(rc_limit, ck.nclusters + (1ull << q->rcb_bits));
    for (uint64_t c = 0; c < rc_limit; c++) {
        uint64_t disk = 0, want = c < ck.nclusters ? ck.refs[c] : 0;
        if (qcow2_refcount_get(q, c, &disk) < 0) {
            res->check_errors++;
            continue;
        }
        if (disk || want)
            last = c + 1;
        if (disk > want) {
            res->leaks++;
            if (fix & BLOCK_CHECK_FIX_LEAKS) {
                gboolean ok = TRUE;
                for (uint64_t k = want; k < disk && ok; k++)
                    ok = qcow2_refcount_update(q, c << q->cluster_bits, 1, -1) == 0;
                if (ok)
                    res->leaks_fixed++;
            }
        } else if (disk < want) {
            res->corruptions++;
            g_debug("check: cluster %" G_GUINT64_FORMAT " refcount=%" G_GUINT64_FORMAT
                    " reference=%" G_GUINT64_FORMAT, c, disk, want);
        }
    }
    /* COPIED must be set exactly where the refcount is 1. */
    for (uint32_t i = 0; i < q->l1_size; i++) {
        uint64_t l2_off = q->l1[i] & QCOW2_OFFSET_MASK;
        uint64_t *l2;
        if (!l2_off || (l2_off >> q->cluster_bits) >= ck.nclusters)
            continue;
        if ((ck.refs[l2_off >> q->cluster_bits] == 1) != !!(q->l1[i] & QCOW2_OFLAG_COPIED))
            res->corruptions++;
        if (qcow2_cache_get(q->l2_cache, l2_off, &l2) < 0) {
            res->check_errors++;
            continue;
        }
        for (unsigned j = 0; j < (1u << q->l2_bits); j++) {
            uint64_t e = qcow2_table_get(l2, j);
            Qcow2ClusterType t = qcow2_cluster_type(q, e);
            uint64_t off = e & QCOW2_OFFSET_MASK;
            if (t != QCOW2_CLUSTER_NORMAL && t != QCOW2_CLUSTER_ZERO_ALLOC)
                continue;
            if ((off >> q->cluster_bits) >= ck.nclusters)
                continue;
            if ((ck.refs[off >> q->cluster_bits] == 1) != !!(e & QCOW2_OFLAG_COPIED))
                res->corruptions++;
        }
        qcow2_cache_put(q->l2_cache, l2);
    }
    res->image_end_offset = last << q->cluster_bits;
    res->total_clusters = (q->bs->size + q->cluster_size - 1) >> q->cluster_bits;
    g_free(ck.refs);
    if (ck.fixed_entries) {
        /* Entries changed on disk behind the cache. */
        qcow2_cache_clear(q->l2_cache);
    }
    return TRUE;
}

gboolean qcow2_refcount_check(BlockDev *bs, BlockCheckFix fix, BlockCheckResult *res,
                              GError **error)
{
    Qcow2State *q = bs->opaque;
    gboolean ok;
    int ret;

    g_mutex_lock(&q->lock);
    if (!q->read_only) {
        ret = qcow2_flush_locked(q);
        if (ret < 0) {
            g_mutex_unlock(&q->lock);
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot flush '%s': %s",
                        bs->filename, g_strerror(-ret));
            return FALSE;
        }
    }
    ok = check_once(q, fix & BLOCK_CHECK_FIX_ERRORS ? BLOCK_CHECK_FIX_ERRORS : 0, res, error);
    if (ok && (fix & BLOCK_CHECK_FIX_ERRORS) && (res->corruptions || res->leaks)) {
        /* Repair everything: rebuild refcounts from the (fixed) tables,
         * then make the COPIED flags agree with them. */
        BlockCheckResult after;
        uint64_t fixed = res->corruptions_fixed;
        ok = qcow2_refcount_rebuild(q, error) &&
             qcow2_cluster_fix_copied(q) == 0 &&
             qcow2_flush_locked(q) == 0 &&
             check_once(q, 0, &after, error);
        if (ok) {
            /* Like qemu-img: the counts are what is left after the repair,
             * the *_fixed fields what the repair changed. */
            after.corruptions_fixed = MAX(fixed, res->corruptions > after.corruptions ?
                                          res->corruptions - after.corruptions : 0);
            after.leaks_fixed = res->leaks > after.leaks ? res->leaks - after.leaks : 0;
            *res = after;
        }
    } else if (ok && (fix & BLOCK_CHECK_FIX_LEAKS) && res->leaks) {
        BlockCheckResult after;
        ok = check_once(q, BLOCK_CHECK_FIX_LEAKS, res, error) &&
             qcow2_flush_locked(q) == 0 &&
             check_once(q, 0, &after, error);
        if (ok) {
            after.leaks_fixed = res->leaks_fixed;
            *res = after;
        }
    }
    if (ok && (fix & BLOCK_CHECK_FIX_ERRORS) && q->hdr.incompatible_features &
        QCOW2_INCOMPAT_CORRUPT && res->corruptions == res->corruptions_fixed) {
        q->hdr.incompatible_features &= ~QCOW2_INCOMPAT_CORRUPT;
        qcow2_write_incompat(q);
    }
    g_mutex_unlock(&q->lock);
    return ok;
}
