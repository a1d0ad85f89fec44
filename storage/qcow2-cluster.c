/* SPDX-License-Identifier: GPL-2.0-or-later */
/* qcow2 L1/L2 mapping: lookups, writable L2 tables, compressed clusters. */
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "qcow2-internal.h"
#include "vireo/util.h"

Qcow2ClusterType qcow2_cluster_type(Qcow2State *q, uint64_t entry)
{
    if (entry & QCOW2_OFLAG_COMPRESSED)
        return QCOW2_CLUSTER_COMPRESSED;
    if ((entry & QCOW2_OFLAG_ZERO) && q->hdr.version >= 3)
        return entry & QCOW2_OFFSET_MASK ? QCOW2_CLUSTER_ZERO_ALLOC : QCOW2_CLUSTER_ZERO_PLAIN;
    if (entry & QCOW2_OFFSET_MASK)
        return QCOW2_CLUSTER_NORMAL;
    return QCOW2_CLUSTER_UNALLOCATED;
}

void qcow2_cluster_compressed_range(Qcow2State *q, uint64_t entry, uint64_t *offset, uint64_t *len)
{
    uint64_t off = entry & q->coffset_mask;
    uint64_t sectors = ((entry >> q->csize_shift) & q->csize_mask) + 1;

    *offset = off;
    *len = sectors * BLOCK_SECTOR_SIZE - (off & (BLOCK_SECTOR_SIZE - 1));
}

int qcow2_cluster_get_entry(Qcow2State *q, uint64_t guest_offset, gboolean nonblock,
                            uint64_t *entry)
{
    uint64_t l1i = guest_offset >> (q->cluster_bits + q->l2_bits);
    unsigned l2i = (guest_offset >> q->cluster_bits) & ((1u << q->l2_bits) - 1);
    uint64_t l2_off;
    uint64_t *table;
    int ret;

    *entry = 0;
    if (l1i >= q->l1_size)
        return 0;
    l2_off = q->l1[l1i] & QCOW2_OFFSET_MASK;
    if (!l2_off)
        return 0;
    if (nonblock) {
        table = qcow2_cache_lookup(q->l2_cache, l2_off);
        if (!table)
            return -EAGAIN;
        *entry = qcow2_table_get(table, l2i);
        return 0;
    }
    ret = qcow2_cache_get(q->l2_cache, l2_off, &table);
    if (ret < 0)
        return ret;
    *entry = qcow2_table_get(table, l2i);
    qcow2_cache_put(q->l2_cache, table);
    return 0;
}

/* Header, L1 table, refcount table, snapshot table: never guest data. */
static gboolean overlaps_fixed_metadata(Qcow2State *q, uint64_t off, uint64_t len)
{
    struct { uint64_t off, len; } m[] = {
        { 0, q->cluster_size },
        { q->hdr.l1_table_offset, (uint64_t)q->l1_size * 8 },
        { q->hdr.refcount_table_offset,
          (uint64_t)q->hdr.refcount_table_clusters << q->cluster_bits },
    };

    for (size_t i = 0; i < VIREO_ARRAY_SIZE(m); i++)
        if (m[i].len && off < m[i].off + m[i].len && m[i].off < off + len)
            return TRUE;
    return FALSE;
}

int qcow2_cluster_check_entry(Qcow2State *q, uint64_t entry, uint64_t guest_offset)
{
    Qcow2ClusterType t = qcow2_cluster_type(q, entry);
    uint64_t off, len;

    switch (t) {
    case QCOW2_CLUSTER_NORMAL:
    case QCOW2_CLUSTER_ZERO_ALLOC:
        off = entry & QCOW2_OFFSET_MASK;
        if (off & (q->cluster_size - 1)) {
            qcow2_signal_corruption(q, "L2 entry of guest offset 0x%" G_GINT64_MODIFIER
                                    "x: host offset 0x%" G_GINT64_MODIFIER "x is not "
                                    "cluster aligned", guest_offset, off);
            return -EIO;
        }
        if (off + q->cluster_size > q->host_end) {
            qcow2_signal_corruption(q, "L2 entry of guest offset 0x%" G_GINT64_MODIFIER
                                    "x: host offset 0x%" G_GINT64_MODIFIER "x is beyond "
                                    "the end of the image", guest_offset, off);
            return -EIO;
        }
        if (overlaps_fixed_metadata(q, off, q->cluster_size)) {
            qcow2_signal_corruption(q, "L2 entry of guest offset 0x%" G_GINT64_MODIFIER
                                    "x: host offset 0x%" G_GINT64_MODIFIER "x overlaps "
                                    "image metadata", guest_offset, off);
            return -EIO;
        }
        return 0;
    case QCOW2_CLUSTER_COMPRESSED:
        qcow2_cluster_compressed_range(q, entry, &off, &len);
        if (off + len > q->host_end + BLOCK_SECTOR_SIZE || off < q->cluster_size) {
            qcow2_signal_corruption(q, "L2 entry of guest offset 0x%" G_GINT64_MODIFIER
                                    "x: compressed data at 0x%" G_GINT64_MODIFIER "x+%"
                                    G_GUINT64_FORMAT " is outside the image",
                                    guest_offset, off, len);
            return -EIO;
        }
        return 0;
    default:
        return 0;
    }
}

static int write_l1_entry(Qcow2State *q, uint64_t l1i)
{
    uint64_t be = GUINT64_TO_BE(q->l1[l1i]);

    return block_file_pwrite(q->file, &be, sizeof(be), q->hdr.l1_table_offset + l1i * 8);
}

/* A new or copied L2 table must be on disk before the L1 entry. */
static int commit_new_l2(Qcow2State *q, uint64_t l1i, uint64_t new_off)
{
    int ret = qcow2_cache_flush(q->l2_cache);

    if (ret == 0)
        ret = block_file_sync(q->file);
    if (ret < 0)
        return ret;
    q->l1[l1i] = new_off | QCOW2_OFLAG_COPIED;
    return write_l1_entry(q, l1i);
}

int qcow2_cluster_grow_l1(Qcow2State *q, uint32_t min_size)
{
    uint64_t new_size = MAX((uint64_t)min_size, (uint64_t)q->l1_size * 3 / 2);
    uint64_t bytes, n;
    g_autofree uint64_t *be = NULL;
    uint64_t *mem;
    int64_t off;
    uint8_t hdr_buf[12];
    uint64_t old_off = q->hdr.l1_table_offset;
    uint64_t old_bytes = (uint64_t)q->l1_size * 8;
    int ret;

    new_size = MIN(new_size, (uint64_t)QCOW2_MAX_L1_BYTES / 8);
    if (new_size < min_size)
        return -EFBIG;
    bytes = VIREO_ALIGN_UP(new_size * 8, (uint64_t)q->cluster_size);
    n = bytes >> q->cluster_bits;
    off = qcow2_refcount_alloc(q, n);
    if (off < 0)
        return off;
    be = g_malloc0(bytes);
    for (uint32_t i = 0; i < q->l1_size; i++)
        be[i] = GUINT64_TO_BE(q->l1[i]);
    ret = qcow2_cache_flush(q->rc_cache);
    if (ret == 0)
        ret = block_file_pwrite(q->file, be, bytes, off);
    if (ret == 0)
        ret = block_file_sync(q->file);
    if (ret < 0)
        return ret;
    qcow2_put_be32(hdr_buf, new_size);
    qcow2_put_be64(hdr_buf + 4, off);
    ret = block_file_pwrite(q->file, hdr_buf, sizeof(hdr_buf), 36);
    if (ret == 0)
        ret = block_file_sync(q->file);
    if (ret < 0)
        return ret;
    mem = g_new0(uint64_t, new_size);
    memcpy(mem, q->l1, (size_t)q->l1_size * 8);
    g_free(q->l1);
    q->l1 = mem;
    q->l1_size = new_size;
    q->hdr.l1_size = new_size;
    q->hdr.l1_table_offset = off;
    if (old_bytes)
        return qcow2_refcount_update(q, old_off, old_bytes, -1);
    return 0;
}

int qcow2_cluster_get_writable_l2(Qcow2State *q, uint64_t guest_offset, uint64_t **table,
                                  unsigned *index)
{
    uint64_t l1i = guest_offset >> (q->cluster_bits + q->l2_bits);
    uint64_t l1e, l2_off, rc;
    uint64_t *old, *new_table;
    int64_t new_off;
    int ret;

    *index = (guest_offset >> q->cluster_bits) & ((1u << q->l2_bits) - 1);
    if (l1i >= q->l1_size) {
        ret = qcow2_cluster_grow_l1(q, l1i + 1);
        if (ret < 0)
            return ret;
    }
    l1e = q->l1[l1i];
    l2_off = l1e & QCOW2_OFFSET_MASK;
    if (l2_off && (l1e & QCOW2_OFLAG_COPIED))
        return qcow2_cache_get(q->l2_cache, l2_off, table);
    if (l2_off) {
        ret = qcow2_refcount_get(q, l2_off >> q->cluster_bits, &rc);
        if (ret < 0)
            return ret;
        if (rc == 1) {
            q->l1[l1i] = l2_off | QCOW2_OFLAG_COPIED;
            ret = write_l1_entry(q, l1i);
            if (ret < 0)
                return ret;
            return qcow2_cache_get(q->l2_cache, l2_off, table);
        }
    }
    /* A new table, or a private copy of one shared with a snapshot. */
    new_off = qcow2_refcount_alloc(q, 1);
    if (new_off < 0)
        return new_off;
    ret = qcow2_cache_get_empty(q->l2_cache, new_off, &new_table);
    if (ret < 0)
        return ret;
    if (l2_off) {
        ret = qcow2_cache_get(q->l2_cache, l2_off, &old);
        if (ret < 0) {
            qcow2_cache_put(q->l2_cache, new_table);
            return ret;
        }
        memcpy(new_table, old, q->cluster_size);
        qcow2_cache_put(q->l2_cache, old);
    }
    ret = commit_new_l2(q, l1i, new_off);
    if (ret < 0) {
        qcow2_cache_put(q->l2_cache, new_table);
        return ret;
    }
    if (l2_off)
        qcow2_refcount_free_later(q, l2_off, q->cluster_size);
    q->phys_end = MAX(q->phys_end, (uint64_t)new_off + q->cluster_size);
    *table = new_table;
    return 0;
}

int qcow2_cluster_read_compressed(Qcow2State *q, uint64_t entry, uint8_t *out)
{
    uint64_t off, len;
    uint8_t *buf;
    int ret;

    qcow2_cluster_compressed_range(q, entry, &off, &len);
    buf = block_file_buf_alloc(len);
    ret = block_file_pread(q->file, buf, len, off);
    if (ret < 0)
        goto out;
    ret = -EIO;
    if (q->hdr.compression_type == QCOW2_COMPRESSION_ZLIB) {
        z_stream zs = { 0 };
        int zr;
        /* Raw deflate with a 4 KiB window, as qemu writes it. */
        if (inflateInit2(&zs, -12) != Z_OK)
            goto out;
        zs.next_in = buf;
        zs.avail_in = len;
        zs.next_out = out;
        zs.avail_out = q->cluster_size;
        zr = inflate(&zs, Z_FINISH);
        /* Trailing bytes of the last sector are padding, not an error. */
        if ((zr == Z_STREAM_END || zr == Z_BUF_ERROR || zr == Z_OK) && zs.avail_out == 0)
            ret = 0;
        inflateEnd(&zs);
    } else {
        ZSTD_DCtx *dctx = ZSTD_createDCtx();
        ZSTD_inBuffer in = { buf, len, 0 };
        ZSTD_outBuffer o = { out, q->cluster_size, 0 };
        while (dctx && o.pos < o.size) {
            size_t prev_in = in.pos, prev_out = o.pos;
            size_t zr = ZSTD_decompressStream(dctx, &o, &in);
            if (ZSTD_isError(zr))
                break;
            if (in.pos == prev_in && o.pos == prev_out)
                break;     /* no progress: truncated data */
        }
        if (o.pos == o.size)
            ret = 0;
        ZSTD_freeDCtx(dctx);
    }
out:
    block_file_buf_free(buf);
    return ret;
}

int64_t qcow2_cluster_compress(Qcow2State *q, const uint8_t *in, uint8_t *out, size_t out_len)
{
    if (q->hdr.compression_type == QCOW2_COMPRESSION_ZLIB) {
        z_stream zs = { 0 };
        int64_t ret = -ENOSPC;
        if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            return -ENOMEM;
        zs.next_in = (uint8_t *)in;
        zs.avail_in = q->cluster_size;
        zs.next_out = out;
        zs.avail_out = out_len;
        if (deflate(&zs, Z_FINISH) == Z_STREAM_END)
            ret = out_len - zs.avail_out;
        deflateEnd(&zs);
        return ret;
    }
    {
        size_t n = ZSTD_compress(out, out_len, in, q->cluster_size, ZSTD_CLEVEL_DEFAULT);
        if (ZSTD_isError(n))
            return -ENOSPC;
        return n;
    }
}

static int update_l2_refcounts(Qcow2State *q, uint64_t l2_off, int delta)
{
    uint64_t *l2;
    int ret = qcow2_cache_get(q->l2_cache, l2_off, &l2);

    if (ret < 0)
        return ret;
    for (unsigned j = 0; j < (1u << q->l2_bits) && ret == 0; j++) {
        uint64_t e = qcow2_table_get(l2, j), off, len;
        switch (qcow2_cluster_type(q, e)) {
        case QCOW2_CLUSTER_NORMAL:
        case QCOW2_CLUSTER_ZERO_ALLOC:
            ret = qcow2_refcount_update(q, e & QCOW2_OFFSET_MASK, q->cluster_size, delta);
            break;
        case QCOW2_CLUSTER_COMPRESSED:
            qcow2_cluster_compressed_range(q, e, &off, &len);
            ret = qcow2_refcount_update(q, off, len, delta);
            break;
        default:
            break;
        }
    }
    qcow2_cache_put(q->l2_cache, l2);
    if (ret == 0)
        ret = qcow2_refcount_update(q, l2_off, q->cluster_size, delta);
    return ret;
}

int qcow2_cluster_update_l1_refcounts(Qcow2State *q, const uint64_t *l1, uint32_t l1_size,
                                      int delta)
{
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2_off = l1[i] & QCOW2_OFFSET_MASK;
        int ret;
        if (!l2_off)
            continue;
        ret = update_l2_refcounts(q, l2_off, delta);
        if (ret < 0)
            return ret;
    }
    return 0;
}

int qcow2_cluster_fix_copied(Qcow2State *q)
{
    for (uint32_t i = 0; i < q->l1_size; i++) {
        uint64_t l2_off = q->l1[i] & QCOW2_OFFSET_MASK;
        uint64_t rc, *l2;
        gboolean dirty = FALSE;
        int ret;

        if (!l2_off)
            continue;
        ret = qcow2_refcount_get(q, l2_off >> q->cluster_bits, &rc);
        if (ret < 0)
            return ret;
        if ((rc == 1) != !!(q->l1[i] & QCOW2_OFLAG_COPIED)) {
            q->l1[i] = l2_off | (rc == 1 ? QCOW2_OFLAG_COPIED : 0);
            ret = write_l1_entry(q, i);
            if (ret < 0)
                return ret;
        }
        ret = qcow2_cache_get(q->l2_cache, l2_off, &l2);
        if (ret < 0)
            return ret;
        for (unsigned j = 0; j < (1u << q->l2_bits); j++) {
            uint64_t e = qcow2_table_get(l2, j), drc;
            Qcow2ClusterType t = qcow2_cluster_type(q, e);
            if (t != QCOW2_CLUSTER_NORMAL && t != QCOW2_CLUSTER_ZERO_ALLOC)
                continue;
            ret = qcow2_refcount_get(q, (e & QCOW2_OFFSET_MASK) >> q->cluster_bits, &drc);
            if (ret < 0)
                break;
            if ((drc == 1) != !!(e & QCOW2_OFLAG_COPIED)) {
                e = drc == 1 ? e | QCOW2_OFLAG_COPIED : e & ~QCOW2_OFLAG_COPIED;
                qcow2_table_set(l2, j, e);
                dirty = TRUE;
            }
        }
        if (dirty)
            qcow2_cache_mark_dirty(q->l2_cache, l2);
        qcow2_cache_put(q->l2_cache, l2);
        if (ret < 0)
            return ret;
    }
    return 0;
}
