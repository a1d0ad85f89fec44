/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The qcow2 header: parsing and validating it with its extensions (every
 * field checked against the file before use, errors naming the field),
 * building it back, writing it, and flagging a corrupt image.
 */
#include <stdarg.h>
#include <string.h>

#include "qcow2-internal.h"
#include "vireo/util.h"

static gboolean field_error(GError **error, const char *field, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static gboolean field_error(GError **error, const char *field, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                "invalid qcow2 header field %s: %s", field, msg);
    return FALSE;
}

/* [off, off+len) lies in the file and does not wrap. */
static gboolean range_in_file(uint64_t off, uint64_t len, uint64_t file_size)
{
    return off <= file_size && len <= file_size - off;
}

gboolean qcow2_parse_header(const uint8_t *buf, size_t len, uint64_t file_size,
                            Qcow2Header *h, GError **error)
{
    uint64_t cs, l2_entries, need_l1;
    uint32_t min_len;

    memset(h, 0, sizeof(*h));
    if (len < QCOW2_V2_HEADER_LEN || qcow2_be32(buf) != QCOW2_MAGIC)
        return field_error(error, "magic", "not a qcow2 image");
    h->version = qcow2_be32(buf + 4);
    if (h->version != 2 && h->version != 3)
        return field_error(error, "version", "%u is not supported (2 and 3 are)", h->version);
    h->backing_file_offset = qcow2_be64(buf + 8);
    h->backing_file_size = qcow2_be32(buf + 16);
    h->cluster_bits = qcow2_be32(buf + 20);
    h->size = qcow2_be64(buf + 24);
    h->crypt_method = qcow2_be32(buf + 32);
    h->l1_size = qcow2_be32(buf + 36);
    h->l1_table_offset = qcow2_be64(buf + 40);
    h->refcount_table_offset = qcow2_be64(buf + 48);
    h->refcount_table_clusters = qcow2_be32(buf + 56);
    h->nb_snapshots = qcow2_be32(buf + 60);
    h->snapshots_offset = qcow2_be64(buf + 64);
    h->refcount_order = 4;
    h->header_length = QCOW2_V2_HEADER_LEN;
    if (h->version >= 3) {
        if (len < QCOW2_V3_HEADER_LEN)
            return field_error(error, "header_length", "file too short for a v3 header");
        h->incompatible_features = qcow2_be64(buf + 72);
        h->compatible_features = qcow2_be64(buf + 80);
        h->autoclear_features = qcow2_be64(buf + 88);
        h->refcount_order = qcow2_be32(buf + 96);
        h->header_length = qcow2_be32(buf + 100);
    }
    if (h->cluster_bits < 9 || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
        return field_error(error, "cluster_bits", "%u is outside 9..%d", h->cluster_bits,
                           QCOW2_MAX_CLUSTER_BITS);
    cs = 1ull << h->cluster_bits;
    if (h->version >= 3) {
        min_len = QCOW2_V3_HEADER_LEN;
        if (h->header_length < min_len || h->header_length > cs || h->header_length % 8)
            return field_error(error, "header_length", "%u is not a multiple of 8 in "
                               "104..cluster size", h->header_length);
        if (h->header_length > len)
            return field_error(error, "header_length", "%u is beyond the end of the file",
                               h->header_length);
        if (h->header_length > 104)
            h->compression_type = buf[104];
    }
    if (h->refcount_order != 4)
        return field_error(error, "refcount_order", "%u (refcount_bits %u) is not supported; "
                           "only 16-bit refcounts are", h->refcount_order,
                           h->refcount_order < 7 ? 1u << h->refcount_order : 0);
    if (h->crypt_method)
        return field_error(error, "crypt_method", "encrypted images (method %u) are not "
                           "supported", h->crypt_method);
    if (h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE)
        return field_error(error, "incompatible_features", "external data files are not "
                           "supported");
    if (h->incompatible_features & QCOW2_INCOMPAT_EXTL2)
        return field_error(error, "incompatible_features", "extended L2 entries "
                           "(subclusters) are not supported");
    if (h->incompatible_features & ~0x1full)
        return field_error(error, "incompatible_features", "unknown feature bits 0x%"
                           G_GINT64_MODIFIER "x", (guint64)(h->incompatible_features & ~0x1full));
    if (h->compression_type > QCOW2_COMPRESSION_ZSTD)
        return field_error(error, "compression_type", "%u is unknown", h->compression_type);
    if (!!(h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION) != !!h->compression_type)
        return field_error(error, "compression_type", "%u does not match the compression "
                           "type feature bit", h->compression_type);
    /* Virtual size: the L1 table must cover it and fit qemu's limits. */
    if (h->size > (1ull << 62))
        return field_error(error, "size", "%" G_GUINT64_FORMAT " is too large", h->size);
    if (h->l1_size > QCOW2_MAX_L1_BYTES / 8)
        return field_error(error, "l1_size", "%u entries is larger than the 32 MiB limit",
                           h->l1_size);
    l2_entries = cs / 8;
    need_l1 = (h->size + cs * l2_entries - 1) / (cs * l2_entries);
    if (h->l1_size < need_l1)
        return field_error(error, "l1_size", "%u entries do not cover the virtual size "
                           "%" G_GUINT64_FORMAT " (need %" G_GUINT64_FORMAT ")", h->l1_size,
                           h->size, need_l1);
    if (h->l1_size && ((h->l1_table_offset & (cs - 1)) || h->l1_table_offset == 0))
        return field_error(error, "l1_table_offset", "0x%" G_GINT64_MODIFIER "x is not a "
                           "cluster-aligned offset after the header", h->l1_table_offset);
    if (h->l1_size && !range_in_file(h->l1_table_offset, (uint64_t)h->l1_size * 8, file_size))
        return field_error(error, "l1_table_offset", "the L1 table (0x%" G_GINT64_MODIFIER
                           "x, %u entries) is beyond the end of the file",
                           h->l1_table_offset, h->l1_size);
    if ((h->refcount_table_offset & (cs - 1)) || h->refcount_table_offset == 0)
        return field_error(error, "refcount_table_offset", "0x%" G_GINT64_MODIFIER "x is not "
                           "a cluster-aligned offset after the header",
                           h->refcount_table_offset);
    if (h->refcount_table_clusters == 0 ||
        (uint64_t)h->refcount_table_clusters * cs > QCOW2_MAX_REFTABLE_BYTES)
        return field_error(error, "refcount_table_clusters", "%u is 0 or larger than the "
                           "8 MiB limit", h->refcount_table_clusters);
    if (!range_in_file(h->refcount_table_offset, (uint64_t)h->refcount_table_clusters * cs,
                       file_size))
        return field_error(error, "refcount_table_offset", "the refcount table is beyond the "
                           "end of the file");
    if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
        return field_error(error, "nb_snapshots", "%u is more than %d", h->nb_snapshots,
                           QCOW2_MAX_SNAPSHOTS);
    if (h->nb_snapshots && ((h->snapshots_offset & (cs - 1)) || h->snapshots_offset == 0 ||
                            h->snapshots_offset >= file_size))
        return field_error(error, "snapshots_offset", "0x%" G_GINT64_MODIFIER "x is not a "
                           "cluster-aligned offset inside the file", h->snapshots_offset);
    if (h->backing_file_offset || h->backing_file_size) {
        if (h->backing_file_size > QCOW2_MAX_BACKING_NAME || h->backing_file_size == 0)
            return field_error(error, "backing_file_size", "%u is not in 1..%d",
                               h->backing_file_size, QCOW2_MAX_BACKING_NAME);
        if (h->backing_file_offset < h->header_length ||
            h->backing_file_offset > cs - h->backing_file_size ||
            !range_in_file(h->backing_file_offset, h->backing_file_size, file_size))
            return field_error(error, "backing_file_offset", "the name (0x%"
                               G_GINT64_MODIFIER "x, %u bytes) is not inside the first "
                               "cluster after the header", h->backing_file_offset,
                               h->backing_file_size);
    }
    return TRUE;
}

gboolean qcow2_parse_extensions(const uint8_t *buf, size_t len, const Qcow2Header *h,
                                GPtrArray *exts, char **backing_fmt, char **backing,
                                GError **error)
{
    uint64_t end = MIN((uint64_t)len, 1ull << h->cluster_bits);
    uint64_t off = h->header_length;

    if (h->backing_file_offset)
        end = MIN(end, h->backing_file_offset);
    while (off + 8 <= end) {
        uint32_t type = qcow2_be32(buf + off);
        uint32_t elen = qcow2_be32(buf + off + 4);
        off += 8;
        if (type == QCOW2_EXT_END)
            break;
        if (elen > end - off) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "invalid qcow2 header extension 0x%x: length %u runs past the end "
                        "of the header area", type, elen);
            return FALSE;
        }
        switch (type) {
        case QCOW2_EXT_BACKING_FORMAT:
            if (elen == 0 || elen >= QCOW2_MAX_BACKING_FMT) {
                g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                            "invalid qcow2 header extension backing format: length %u",
                            elen);
                return FALSE;
            }
            g_free(*backing_fmt);
            *backing_fmt = g_strndup((const char *)buf + off, elen);
            if (strcmp(*backing_fmt, "raw") && strcmp(*backing_fmt, "qcow2") &&
                strcmp(*backing_fmt, "file")) {
                g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                            "backing format '%s' is not supported (raw and qcow2 are)",
                            *backing_fmt);
                return FALSE;
            }
            if (strcmp(*backing_fmt, "file") == 0) {
                g_free(*backing_fmt);
                *backing_fmt = g_strdup("raw");
            }
            break;
        case QCOW2_EXT_FEATURE_TABLE:
            break;      /* names for messages; we write our own */
        case QCOW2_EXT_CRYPTO:
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                        "encrypted qcow2 images are not supported");
            return FALSE;
        case QCOW2_EXT_DATA_FILE:
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                        "qcow2 images with an external data file are not supported");
            return FALSE;
        default: {
            /* Bitmaps and unknown extensions are kept verbatim. */
            Qcow2Extension *x = g_new0(Qcow2Extension, 1);
            x->type = type;
            x->len = elen;
            x->data = g_memdup2(buf + off, elen);
            g_ptr_array_add(exts, x);
            break;
        }
        }
        off += VIREO_ALIGN_UP((uint64_t)elen, (uint64_t)8);
    }
    if (h->backing_file_offset) {
        if (memchr(buf + h->backing_file_offset, 0, h->backing_file_size)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "invalid qcow2 header field backing_file_offset: the backing file "
                        "name contains a NUL byte");
            return FALSE;
        }
        *backing = g_strndup((const char *)buf + h->backing_file_offset, h->backing_file_size);
    }
    return TRUE;
}

void qcow2_extension_free(gpointer p)
{
    Qcow2Extension *x = p;

    g_free(x->data);
    g_free(x);
}

static const struct {
    uint8_t type;
    uint8_t bit;
    const char *name;
} feature_names[] = {
    { 0, 0, "dirty bit" }, { 0, 1, "corrupt bit" }, { 0, 2, "external data file" },
    { 0, 3, "compression type" }, { 0, 4, "extended L2 entries" },
    { 1, 0, "lazy refcounts" }, { 2, 0, "bitmaps" }, { 2, 1, "raw external data" },
};

/* The first cluster: header, extensions, backing file name. */
uint8_t *qcow2_build_header(const Qcow2Header *h, GPtrArray *exts, const char *backing,
                            const char *backing_fmt, uint64_t cs, int *err)
{
    uint8_t *buf = block_file_buf_alloc(cs);
    uint32_t hlen = h->version >= 3 ? 112 : QCOW2_V2_HEADER_LEN;
    uint64_t off = hlen;
    size_t blen = backing ? strlen(backing) : 0;

#define NEED(n) do { if (off + (n) > cs) goto too_big; } while (0)
    qcow2_put_be32(buf, QCOW2_MAGIC);
    qcow2_put_be32(buf + 4, h->version);
    qcow2_put_be32(buf + 20, h->cluster_bits);
    qcow2_put_be64(buf + 24, h->size);
    qcow2_put_be32(buf + 32, 0);
    qcow2_put_be32(buf + 36, h->l1_size);
    qcow2_put_be64(buf + 40, h->l1_table_offset);
    qcow2_put_be64(buf + 48, h->refcount_table_offset);
    qcow2_put_be32(buf + 56, h->refcount_table_clusters);
    qcow2_put_be32(buf + 60, h->nb_snapshots);
    qcow2_put_be64(buf + 64, h->snapshots_offset);
    if (h->version >= 3) {
        qcow2_put_be64(buf + 72, h->incompatible_features);
        qcow2_put_be64(buf + 80, h->compatible_features);
        qcow2_put_be64(buf + 88, h->autoclear_features);
        qcow2_put_be32(buf + 96, 4);
        qcow2_put_be32(buf + 100, hlen);
        buf[104] = h->compression_type;
    }
    if (backing_fmt) {
        size_t n = strlen(backing_fmt);
        NEED(8 + VIREO_ALIGN_UP(n, 8));
        qcow2_put_be32(buf + off, QCOW2_EXT_BACKING_FORMAT);
        qcow2_put_be32(buf + off + 4, n);
        memcpy(buf + off + 8, backing_fmt, n);
        off += 8 + VIREO_ALIGN_UP(n, 8);
    }
    if (h->version >= 3) {
        size_t n = VIREO_ARRAY_SIZE(feature_names) * 48;
        NEED(8 + n);
        qcow2_put_be32(buf + off, QCOW2_EXT_FEATURE_TABLE);
        qcow2_put_be32(buf + off + 4, n);
        for (size_t i = 0; i < VIREO_ARRAY_SIZE(feature_names); i++) {
            uint8_t *e = buf + off + 8 + i * 48;
            e[0] = feature_names[i].type;
            e[1] = feature_names[i].bit;
            strncpy((char *)e + 2, feature_names[i].name, 46);
        }
        off += 8 + n;
    }
    for (guint i = 0; exts && i < exts->len; i++) {
        Qcow2Extension *x = exts->pdata[i];
        NEED(8 + VIREO_ALIGN_UP((uint64_t)x->len, 8));
        qcow2_put_be32(buf + off, x->type);
        qcow2_put_be32(buf + off + 4, x->len);
        if (x->len)
            memcpy(buf + off + 8, x->data, x->len);
        off += 8 + VIREO_ALIGN_UP((uint64_t)x->len, 8);
    }
    NEED(8);
    off += 8;   /* end-of-extensions marker: type 0, length 0 */
    if (blen) {
        NEED(blen);
        qcow2_put_be64(buf + 8, off);
        qcow2_put_be32(buf + 16, blen);
        memcpy(buf + off, backing, blen);
    }
#undef NEED
    *err = 0;
    return buf;
too_big:
    block_file_buf_free(buf);
    *err = -ENOSPC;
    return NULL;
}

int qcow2_write_header(Qcow2State *q)
{
    int err;
    uint8_t *buf = qcow2_build_header(&q->hdr, q->extensions, q->bs->backing_file,
                                q->bs->backing_format, q->cluster_size, &err);

    if (!buf)
        return err;
    err = block_file_pwrite(q->file, buf, q->cluster_size, 0);
    block_file_buf_free(buf);
    return err;
}

int qcow2_write_incompat(Qcow2State *q)
{
    uint8_t be[8];
    int ret;

    if (q->hdr.version < 3)
        return 0;
    qcow2_put_be64(be, q->hdr.incompatible_features);
    ret = block_file_pwrite(q->file, be, sizeof(be), 72);
    if (ret == 0)
        ret = block_file_sync(q->file);
    return ret;
}

void qcow2_signal_corruption(Qcow2State *q, const char *fmt, ...)
{
    static RateLimit rl;
    g_autofree char *msg = NULL;
    int suppressed;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* Logged, not returned: the request that found it fails with -EIO and
     * an error code carries no text. */
    if (ratelimit_allow(&rl, &suppressed))
        g_warning("qcow2 image '%s' is corrupt: %s", q->bs->filename, msg);
    if (!q->read_only && !q->corrupt_reported && q->hdr.version >= 3) {
        /* Like qemu: flag the image so nothing writes to it until repaired. */
        q->corrupt_reported = TRUE;
        q->hdr.incompatible_features |= QCOW2_INCOMPAT_CORRUPT;
        qcow2_write_incompat(q);
    }
}
