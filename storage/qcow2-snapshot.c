/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qcow2 internal snapshots: the snapshot table, create, apply (goto),
 * delete, list. These run synchronously with no guest I/O in flight
 * (tools and paused VMs only).
 *
 * Each operation first makes its new references durable (refcount
 * increments, a new snapshot table or L1 table, synced), then switches the
 * header, then drops the old references; a crash in between leaks
 * clusters but never frees one that is still referenced.
 */
#include <string.h>

#include "qcow2-internal.h"
#include "vireo/util.h"

#define SN_FIXED 40
#define SN_EXTRA_WRITE 24     /* vm_state_size_large, disk_size, icount */
#define MAX_TABLE_BYTES (64u << 20)

void qcow2_snapshot_free_table(Qcow2State *q)
{
    for (uint32_t i = 0; i < q->nb_snapshots; i++) {
        g_free(q->snapshots[i].id);
        g_free(q->snapshots[i].name);
    }
    g_free(q->snapshots);
    q->snapshots = NULL;
    q->nb_snapshots = 0;
}

static gboolean sn_error(GError **error, uint32_t i, const char *msg)
{
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                "invalid qcow2 snapshot table entry %u: %s", i, msg);
    return FALSE;
}

static gboolean overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

gboolean qcow2_snapshot_read_table(Qcow2State *q, uint64_t file_size, GError **error)
{
    uint64_t off = q->hdr.snapshots_offset;
    uint64_t l1_bytes = (uint64_t)q->l1_size * 8;
    uint64_t rt_bytes = (uint64_t)q->hdr.refcount_table_clusters << q->cluster_bits;
    uint8_t fixed[SN_FIXED];
    int ret;

    /* Fixed metadata must not overlap: a write to one would corrupt another. */
    if (overlaps(q->hdr.l1_table_offset, l1_bytes, 0, q->cluster_size) ||
        overlaps(q->hdr.l1_table_offset, l1_bytes, q->hdr.refcount_table_offset, rt_bytes)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "invalid qcow2 header field l1_table_offset: the L1 table overlaps "
                    "the header or the refcount table");
        return FALSE;
    }
    q->snapshots = g_new0(Qcow2Snapshot, MAX(q->hdr.nb_snapshots, 1));
    for (uint32_t i = 0; i < q->hdr.nb_snapshots; i++) {
        Qcow2Snapshot *sn = &q->snapshots[i];
        uint16_t id_len, name_len;
        uint32_t extra;
        uint8_t extra_buf[QCOW2_MAX_SNAPSHOT_EXTRA];
        char *strs;

        if (off - q->hdr.snapshots_offset > MAX_TABLE_BYTES || off + SN_FIXED > file_size)
            return sn_error(error, i, "the table runs past the end of the file");
        ret = block_file_pread(q->file, fixed, SN_FIXED, off);
        if (ret < 0)
            return sn_error(error, i, g_strerror(-ret));
        sn->l1_table_offset = qcow2_be64(fixed);
        sn->l1_size = qcow2_be32(fixed + 8);
        id_len = qcow2_be16(fixed + 12);
        name_len = qcow2_be16(fixed + 14);
        sn->date_sec = qcow2_be32(fixed + 16);
        sn->date_nsec = qcow2_be32(fixed + 20);
        sn->vm_clock_nsec = qcow2_be64(fixed + 24);
        sn->vm_state_size = qcow2_be32(fixed + 32);
        extra = qcow2_be32(fixed + 36);
        sn->disk_size = q->hdr.size;
        sn->icount = G_MAXUINT64;
        if (extra > QCOW2_MAX_SNAPSHOT_EXTRA)
            return sn_error(error, i, "extra_data_size is larger than 1024");
        sn->extra_size = extra;
        off += SN_FIXED;
        if (off + extra + id_len + name_len > file_size)
            return sn_error(error, i, "the entry runs past the end of the file");
        ret = block_file_pread(q->file, extra_buf, extra, off);
        if (ret < 0)
            return sn_error(error, i, g_strerror(-ret));
        if (extra >= 8)
            sn->vm_state_size = qcow2_be64(extra_buf);
        if (extra >= 16)
            sn->disk_size = qcow2_be64(extra_buf + 8);
        if (extra >= 24)
            sn->icount = qcow2_be64(extra_buf + 16);
        off += extra;
        strs = g_malloc0(id_len + name_len + 2);
        ret = block_file_pread(q->file, strs, id_len + name_len, off);
        sn->id = g_strndup(strs, id_len);
        sn->name = g_strndup(strs + id_len, name_len);
        g_free(strs);
        q->nb_snapshots = i + 1;
        if (ret < 0)
            return sn_error(error, i, g_strerror(-ret));
        off = VIREO_ALIGN_UP(off + id_len + name_len, (uint64_t)8);
        if (sn->l1_size > QCOW2_MAX_L1_BYTES / 8)
            return sn_error(error, i, "l1_size is larger than the 32 MiB limit");
        if (sn->l1_size && ((sn->l1_table_offset & (q->cluster_size - 1)) ||
                            sn->l1_table_offset == 0 ||
                            sn->l1_table_offset > file_size ||
                            (uint64_t)sn->l1_size * 8 > file_size - sn->l1_table_offset))
            return sn_error(error, i, "l1_table_offset is unaligned or outside the file");
        if (sn->disk_size > (1ull << 62))
            return sn_error(error, i, "disk_size is too large");
    }
    if (q->hdr.nb_snapshots) {
        uint64_t len = off - q->hdr.snapshots_offset;
        if (overlaps(q->hdr.snapshots_offset, len, 0, q->cluster_size) ||
            overlaps(q->hdr.snapshots_offset, len, q->hdr.l1_table_offset, l1_bytes) ||
            overlaps(q->hdr.snapshots_offset, len, q->hdr.refcount_table_offset, rt_bytes)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "invalid qcow2 header field snapshots_offset: the snapshot table "
                        "overlaps the L1 or refcount table");
            return FALSE;
        }
    }
    return TRUE;
}

static uint64_t entry_len(const Qcow2Snapshot *sn)
{
    return VIREO_ALIGN_UP(SN_FIXED + MAX(sn->extra_size, SN_EXTRA_WRITE) + strlen(sn->id) +
                          strlen(sn->name), (uint64_t)8);
}

/* Serialises @sns (extra data always 24 bytes or more, as qemu writes it). */
static uint8_t *build_table(Qcow2State *q, Qcow2Snapshot *sns, uint32_t n, uint64_t *len)
{
    uint64_t total = 0, off = 0;
    uint8_t *buf;

    for (uint32_t i = 0; i < n; i++)
        total += entry_len(&sns[i]);
    *len = total;
    /* Whole clusters: the table is written cluster by cluster, zero-padded. */
    buf = block_file_buf_alloc(VIREO_ALIGN_UP(MAX(total, 1), (uint64_t)q->cluster_size));
    for (uint32_t i = 0; i < n; i++) {
        Qcow2Snapshot *sn = &sns[i];
        uint32_t extra = MAX(sn->extra_size, SN_EXTRA_WRITE);
        size_t id_len = strlen(sn->id), name_len = strlen(sn->name);
        uint8_t *p = buf + off;

        qcow2_put_be64(p, sn->l1_table_offset);
        qcow2_put_be32(p + 8, sn->l1_size);
        qcow2_put_be16(p + 12, id_len);
        qcow2_put_be16(p + 14, name_len);
        qcow2_put_be32(p + 16, sn->date_sec);
        qcow2_put_be32(p + 20, sn->date_nsec);
        qcow2_put_be64(p + 24, sn->vm_clock_nsec);
        qcow2_put_be32(p + 32, MIN(sn->vm_state_size, (uint64_t)G_MAXUINT32));
        qcow2_put_be32(p + 36, extra);
        qcow2_put_be64(p + 40, sn->vm_state_size);
        qcow2_put_be64(p + 48, sn->disk_size);
        qcow2_put_be64(p + 56, sn->icount);
        memcpy(p + SN_FIXED + extra, sn->id, id_len);
        memcpy(p + SN_FIXED + extra + id_len, sn->name, name_len);
        off += entry_len(sn);
        sn->extra_size = extra;     /* what is on disk from now on */
    }
    return buf;
}

/* Writes a new table for @sns and points the header at it; frees the old. */
static int replace_table(Qcow2State *q, Qcow2Snapshot *sns, uint32_t n)
{
    uint64_t len, old_off = q->hdr.snapshots_offset, old_len = 0;
    uint8_t *buf = build_table(q, sns, n, &len);
    uint8_t hdr_buf[12];
    int64_t off = 0;
    int ret = 0;

    for (uint32_t i = 0; i < q->nb_snapshots; i++)
        old_len += entry_len(&q->snapshots[i]);
    if (n) {
        off = qcow2_refcount_alloc(q, (len + q->cluster_size - 1) >> q->cluster_bits);
        if (off < 0)
            ret = off;
    }
    if (ret == 0 && n)
        ret = block_file_pwrite(q->file, buf, VIREO_ALIGN_UP(len, (uint64_t)q->cluster_size),
                                off);
    block_file_buf_free(buf);
    if (ret == 0)
        ret = qcow2_flush_locked(q);
    if (ret < 0)
        return ret;
    qcow2_put_be32(hdr_buf, n);
    qcow2_put_be64(hdr_buf + 4, off);
    ret = block_file_pwrite(q->file, hdr_buf, sizeof(hdr_buf), 60);
    if (ret == 0)
        ret = block_file_sync(q->file);
    if (ret < 0)
        return ret;
    q->hdr.nb_snapshots = n;
    q->hdr.snapshots_offset = off;
    if (q->nb_snapshots && old_len)
        ret = qcow2_refcount_update(q, old_off, old_len, -1);
    return ret;
}

static int find_snapshot(Qcow2State *q, const char *name_or_id)
{
    for (uint32_t i = 0; i < q->nb_snapshots; i++)
        if (strcmp(q->snapshots[i].id, name_or_id) == 0)
            return i;
    for (uint32_t i = 0; i < q->nb_snapshots; i++)
        if (strcmp(q->snapshots[i].name, name_or_id) == 0)
            return i;
    return -1;
}

static gboolean fail(GError **error, BlockDev *bs, const char *what, int ret)
{
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "%s in '%s' failed: %s", what,
                bs->filename, g_strerror(-ret));
    return FALSE;
}

static int read_l1(Qcow2State *q, uint64_t off, uint32_t size, uint64_t **out)
{
    uint64_t *l1 = g_new0(uint64_t, MAX(size, 1));
    uint64_t limit = q->host_end;
    int ret = block_file_pread(q->file, l1, (size_t)size * 8, off);

    for (uint32_t i = 0; ret == 0 && i < size; i++) {
        uint64_t l2 = (l1[i] = GUINT64_FROM_BE(l1[i])) & QCOW2_OFFSET_MASK;
        if (l2 && ((l2 & (q->cluster_size - 1)) || l2 >= limit)) {
            qcow2_signal_corruption(q, "snapshot L1 entry %u points at 0x%"
                                    G_GINT64_MODIFIER "x", i, l2);
            ret = -EIO;
        }
    }
    if (ret < 0) {
        g_free(l1);
        return ret;
    }
    *out = l1;
    return 0;
}

gboolean qcow2_snapshot_create(BlockDev *bs, const char *name, GError **error)
{
    Qcow2State *q = bs->opaque;
    g_autofree Qcow2Snapshot *sns = NULL;
    Qcow2Snapshot *sn;
    uint64_t max_id = 0, l1_bytes = (uint64_t)q->l1_size * 8;
    g_autofree uint64_t *be = NULL;
    g_autofree char *id = NULL;
    gint64 now = g_get_real_time();
    int64_t l1_off = 0;
    int ret;

    if (!name || !*name || strlen(name) > 65535) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "snapshot name must be 1..65535 bytes long");
        return FALSE;
    }
    g_mutex_lock(&q->lock);
    if (find_snapshot(q, name) >= 0) {
        g_mutex_unlock(&q->lock);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "a snapshot named '%s' already exists in '%s'", name, bs->filename);
        return FALSE;
    }
    if (q->nb_snapshots >= QCOW2_MAX_SNAPSHOTS) {
        g_mutex_unlock(&q->lock);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "'%s' already has %d snapshots", bs->filename, QCOW2_MAX_SNAPSHOTS);
        return FALSE;
    }
    for (uint32_t i = 0; i < q->nb_snapshots; i++)
        max_id = MAX(max_id, g_ascii_strtoull(q->snapshots[i].id, NULL, 10));
    id = g_strdup_printf("%" G_GUINT64_FORMAT, max_id + 1);
    ret = qcow2_flush_locked(q);
    if (ret == 0 && l1_bytes) {
        l1_off = qcow2_refcount_alloc(q, (l1_bytes + q->cluster_size - 1) >> q->cluster_bits);
        ret = l1_off < 0 ? l1_off : 0;
    }
    if (ret == 0 && l1_bytes) {
        be = g_malloc0(VIREO_ALIGN_UP(l1_bytes, (uint64_t)q->cluster_size));
        for (uint32_t i = 0; i < q->l1_size; i++)
            be[i] = GUINT64_TO_BE(q->l1[i]);
        ret = block_file_pwrite(q->file, be, VIREO_ALIGN_UP(l1_bytes, (uint64_t)q->cluster_size),
                                l1_off);
    }
    /* The snapshot shares every table and cluster: one more reference each. */
    if (ret == 0)
        ret = qcow2_cluster_update_l1_refcounts(q, q->l1, q->l1_size, 1);
    if (ret == 0)
        ret = qcow2_cluster_fix_copied(q);
    if (ret < 0)
        goto out;
    sns = g_new0(Qcow2Snapshot, q->nb_snapshots + 1);
    memcpy(sns, q->snapshots, sizeof(*sns) * q->nb_snapshots);
    sn = &sns[q->nb_snapshots];
    sn->l1_table_offset = l1_off;
    sn->l1_size = q->l1_size;
    sn->id = g_steal_pointer(&id);
    sn->name = g_strdup(name);
    sn->date_sec = now / G_USEC_PER_SEC;
    sn->date_nsec = (now % G_USEC_PER_SEC) * 1000;
    sn->disk_size = bs->size;
    sn->icount = G_MAXUINT64;
    sn->extra_size = SN_EXTRA_WRITE;
    ret = replace_table(q, sns, q->nb_snapshots + 1);
    if (ret < 0) {
        g_free(sn->id);
        g_free(sn->name);
        goto out;
    }
    g_free(q->snapshots);
    q->snapshots = g_steal_pointer(&sns);
    q->nb_snapshots++;
    ret = qcow2_flush_locked(q);
out:
    g_mutex_unlock(&q->lock);
    if (ret < 0)
        return fail(error, bs, "creating a snapshot", ret);
    return TRUE;
}

static int write_active_l1(Qcow2State *q)
{
    uint64_t bytes = (uint64_t)q->l1_size * 8;
    g_autofree uint64_t *be = g_new0(uint64_t, MAX(q->l1_size, 1));
    int ret;

    for (uint32_t i = 0; i < q->l1_size; i++)
        be[i] = GUINT64_TO_BE(q->l1[i]);
    ret = block_file_pwrite(q->file, be, bytes, q->hdr.l1_table_offset);
    if (ret == 0)
        ret = block_file_sync(q->file);
    return ret;
}

gboolean qcow2_snapshot_apply(BlockDev *bs, const char *name_or_id, GError **error)
{
    Qcow2State *q = bs->opaque;
    g_autofree uint64_t *sn_l1 = NULL;
    g_autofree uint64_t *old_l1 = NULL;
    uint32_t old_size;
    Qcow2Snapshot *sn;
    int idx, ret;

    g_mutex_lock(&q->lock);
    idx = find_snapshot(q, name_or_id);
    if (idx < 0) {
        g_mutex_unlock(&q->lock);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "no snapshot '%s' in '%s'", name_or_id, bs->filename);
        return FALSE;
    }
    sn = &q->snapshots[idx];
    ret = qcow2_flush_locked(q);
    if (ret == 0 && sn->l1_size > q->l1_size)
        ret = qcow2_cluster_grow_l1(q, sn->l1_size);
    if (ret == 0)
        ret = read_l1(q, sn->l1_table_offset, sn->l1_size, &sn_l1);
    if (ret == 0)
        ret = qcow2_cluster_update_l1_refcounts(q, sn_l1, sn->l1_size, 1);
    if (ret == 0)
        ret = qcow2_flush_locked(q);
    if (ret < 0)
        goto out;
    old_size = q->l1_size;
    old_l1 = g_memdup2(q->l1, (size_t)old_size * 8);
    memset(q->l1, 0, (size_t)q->l1_size * 8);
    memcpy(q->l1, sn_l1, (size_t)sn->l1_size * 8);
    ret = write_active_l1(q);
    if (ret < 0) {
        memcpy(q->l1, old_l1, (size_t)old_size * 8);
        goto out;
    }
    /* The old active tree is unreferenced now that the new L1 is durable. */
    ret = qcow2_cluster_update_l1_refcounts(q, old_l1, old_size, -1);
    if (ret == 0)
        ret = qcow2_cluster_fix_copied(q);
    if (ret == 0 && sn->disk_size != q->hdr.size) {
        uint8_t be[8];
        qcow2_put_be64(be, sn->disk_size);
        ret = block_file_pwrite(q->file, be, sizeof(be), 24);
        if (ret == 0) {
            q->hdr.size = sn->disk_size;
            bs->size = sn->disk_size;
        }
    }
    if (ret == 0)
        ret = qcow2_flush_locked(q);
out:
    g_mutex_unlock(&q->lock);
    if (ret < 0)
        return fail(error, bs, "applying a snapshot", ret);
    return TRUE;
}

gboolean qcow2_snapshot_delete(BlockDev *bs, const char *name_or_id, GError **error)
{
    Qcow2State *q = bs->opaque;
    g_autofree uint64_t *sn_l1 = NULL;
    g_autofree Qcow2Snapshot *sns = NULL;
    Qcow2Snapshot victim;
    int idx, ret;

    g_mutex_lock(&q->lock);
    idx = find_snapshot(q, name_or_id);
    if (idx < 0) {
        g_mutex_unlock(&q->lock);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "no snapshot '%s' in '%s'", name_or_id, bs->filename);
        return FALSE;
    }
    victim = q->snapshots[idx];
    ret = qcow2_flush_locked(q);
    if (ret == 0)
        ret = read_l1(q, victim.l1_table_offset, victim.l1_size, &sn_l1);
    if (ret < 0)
        goto out;
    sns = g_new0(Qcow2Snapshot, MAX(q->nb_snapshots, 1));
    memcpy(sns, q->snapshots, sizeof(*sns) * idx);
    memcpy(sns + idx, q->snapshots + idx + 1, sizeof(*sns) * (q->nb_snapshots - idx - 1));
    ret = replace_table(q, sns, q->nb_snapshots - 1);
    if (ret < 0)
        goto out;
    g_free(q->snapshots);
    q->snapshots = g_steal_pointer(&sns);
    q->nb_snapshots--;
    ret = qcow2_cluster_update_l1_refcounts(q, sn_l1, victim.l1_size, -1);
    if (ret == 0 && victim.l1_size)
        ret = qcow2_refcount_update(q, victim.l1_table_offset, (uint64_t)victim.l1_size * 8,
                                    -1);
    if (ret == 0)
        ret = qcow2_cluster_fix_copied(q);
    if (ret == 0)
        ret = qcow2_flush_locked(q);
    g_free(victim.id);
    g_free(victim.name);
out:
    g_mutex_unlock(&q->lock);
    if (ret < 0)
        return fail(error, bs, "deleting a snapshot", ret);
    return TRUE;
}

GPtrArray *qcow2_snapshot_list(BlockDev *bs, GError **error)
{
    Qcow2State *q = bs->opaque;
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)block_snapshot_info_free);

    g_mutex_lock(&q->lock);
    for (uint32_t i = 0; i < q->nb_snapshots; i++) {
        Qcow2Snapshot *sn = &q->snapshots[i];
        BlockSnapshotInfo *info = g_new0(BlockSnapshotInfo, 1);
        info->id = g_strdup(sn->id);
        info->name = g_strdup(sn->name);
        info->vm_state_size = sn->vm_state_size;
        info->date_sec = sn->date_sec;
        info->date_nsec = sn->date_nsec;
        info->vm_clock_nsec = sn->vm_clock_nsec;
        info->icount = sn->icount;
        info->disk_size = sn->disk_size;
        g_ptr_array_add(a, info);
    }
    g_mutex_unlock(&q->lock);
    return a;
}
