/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The format-independent block layer: opening and probing, backing chains,
 * request validation, completion delivery, synchronous wrappers and the
 * dispatch of format-specific operations.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "block-internal.h"
#include "vireo/util.h"

static const BlockDriver *const drivers[] = {
    &block_driver_raw,
    &block_driver_qcow2,
};

const char *block_probe_format(const uint8_t *buf, size_t len)
{
    if (len >= 4 && memcmp(buf, "QFI\xfb", 4) == 0)
        return "qcow2";
    return "raw";
}

char *block_resolve_backing_path(const char *image, const char *backing)
{
    const char *slash;

    if (backing[0] == '/')
        return g_strdup(backing);
    slash = strrchr(image, '/');
    if (!slash)
        return g_strdup(backing);
    /* qemu keeps the directory part as written (no canonicalisation). */
    return g_strdup_printf("%.*s%s", (int)(slash - image + 1), image, backing);
}

static const BlockDriver *find_driver(const char *name)
{
    for (size_t i = 0; i < VIREO_ARRAY_SIZE(drivers); i++)
        if (strcmp(drivers[i]->name, name) == 0)
            return drivers[i];
    return NULL;
}

static BlockDev *open_layer(const char *path, const BlockOpenOptions *opts, unsigned depth,
                            GPtrArray *seen, GError **error);

void block_close(BlockDev *bs)
{
    if (!bs)
        return;
    if (bs->drv && bs->opaque)
        bs->drv->close(bs);
    if (bs->backing)
        block_close(bs->backing);
    block_file_free(bs->file);
    if (bs->owns_engine)
        block_engine_free(bs->engine);
    g_free(bs->filename);
    g_free(bs->backing_file);
    g_free(bs->backing_format);
    g_free(bs);
}

static gboolean read_probe(BlockFile *f, uint8_t *buf, size_t len, GError **error)
{
    int ret = block_file_pread(f, buf, len, 0);

    if (ret < 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot read disk image '%s': %s",
                    f->path, g_strerror(-ret));
        return FALSE;
    }
    return TRUE;
}

static BlockDev *open_layer(const char *path, const BlockOpenOptions *opts, unsigned depth,
                            GPtrArray *seen, GError **error)
{
    g_autoptr(BlockDev) bs = g_new0(BlockDev, 1);
    const char *format = opts->format;
    struct stat st;

    if (opts->force_share && !opts->read_only) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "force-share requires a read-only open of '%s'", path);
        return NULL;
    }
    bs->filename = g_strdup(path);
    bs->read_only = opts->read_only;
    bs->discard = opts->discard;
    bs->opts = *opts;
    bs->chain_depth = depth;
    bs->file = block_file_open(path, opts->read_only, opts->cache, error);
    if (!bs->file)
        return NULL;
    if (fstat(bs->file->fd, &st) == 0) {
        /* dev/inode pairs of the layers above: a loop in the chain. */
        for (guint i = 0; i < seen->len; i += 2) {
            if (GPOINTER_TO_SIZE(seen->pdata[i]) == (gsize)st.st_dev &&
                GPOINTER_TO_SIZE(seen->pdata[i + 1]) == (gsize)st.st_ino) {
                g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                            "backing chain loop: '%s' is already in the chain", path);
                return NULL;
            }
        }
        g_ptr_array_add(seen, GSIZE_TO_POINTER((gsize)st.st_dev));
        g_ptr_array_add(seen, GSIZE_TO_POINTER((gsize)st.st_ino));
    }
    if (!opts->force_share && !block_file_lock(bs->file, !opts->read_only, error))
        return NULL;
    if (!format) {
        uint8_t *buf = block_file_buf_alloc(4096);
        gboolean ok = read_probe(bs->file, buf, 4096, error);
        if (ok)
            format = block_probe_format(buf, 4096);
        block_file_buf_free(buf);
        if (!ok)
            return NULL;
        bs->probed_raw = strcmp(format, "raw") == 0;
    }
    bs->drv = find_driver(format);
    if (!bs->drv) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "unknown image format '%s' for '%s' (raw and qcow2 are supported)",
                    format, path);
        return NULL;
    }
    if (opts->engine) {
        bs->engine = opts->engine;
    } else {
        bs->engine = block_engine_new(error);
        if (!bs->engine)
            return NULL;
        bs->owns_engine = TRUE;
    }
    bs->opts.engine = bs->engine;
    bs->opts.format = NULL;
    if (!bs->drv->open(bs, &bs->opts, error)) {
        g_prefix_error(error, "'%s': ", path);
        return NULL;
    }
    if (bs->backing_file && !opts->no_backing) {
        g_autofree char *full = block_resolve_backing_path(path, bs->backing_file);
        BlockOpenOptions bo = {
            .format = bs->backing_format,
            .read_only = TRUE,
            .cache = opts->cache,
            .discard = FALSE,
            .force_share = opts->force_share,
            .engine = bs->engine,
            .l2_cache_size = opts->l2_cache_size,
        };
        if (depth + 1 >= BLOCK_MAX_CHAIN_DEPTH) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "backing chain of '%s' is deeper than %d images", path,
                        BLOCK_MAX_CHAIN_DEPTH);
            return NULL;
        }
        bs->backing = open_layer(full, &bo, depth + 1, seen, error);
        if (!bs->backing) {
            g_prefix_error(error, "cannot open backing file of '%s': ", path);
            return NULL;
        }
    }
    return g_steal_pointer(&bs);
}

BlockDev *block_open(const char *path, const BlockOpenOptions *opts, GError **error)
{
    static const BlockOpenOptions defaults = { 0 };
    g_autoptr(GPtrArray) seen = g_ptr_array_new();

    return open_layer(path, opts ? opts : &defaults, 0, seen, error);
}

gboolean block_open_backing(BlockDev *bs, GError **error)
{
    g_autoptr(GPtrArray) seen = g_ptr_array_new();
    g_autofree char *full = NULL;
    BlockOpenOptions bo = {
        .format = bs->backing_format,
        .read_only = TRUE,
        .cache = bs->opts.cache,
        .force_share = bs->opts.force_share,
        .engine = bs->engine,
        .l2_cache_size = bs->opts.l2_cache_size,
    };

    if (bs->backing) {
        block_close(bs->backing);
        bs->backing = NULL;
    }
    if (!bs->backing_file)
        return TRUE;
    full = block_resolve_backing_path(bs->filename, bs->backing_file);
    bs->backing = open_layer(full, &bo, bs->chain_depth + 1, seen, error);
    return bs->backing != NULL;
}

BlockEngine *block_get_engine(BlockDev *bs) { return bs->engine; }
uint64_t block_get_size(BlockDev *bs) { return bs->size; }
const char *block_get_format(BlockDev *bs) { return bs->drv->name; }
const char *block_get_filename(BlockDev *bs) { return bs->filename; }
gboolean block_is_read_only(BlockDev *bs) { return bs->read_only; }
BlockDev *block_get_backing(BlockDev *bs) { return bs->backing; }

/* ---- requests ---- */

static void request_finish(void *opaque, int64_t ret)
{
    BlockRequest *req = opaque;
    BlockEngine *e = req->bs->engine;

    req->cb(req->opaque, (int)ret);
    g_free(req);
    block_engine_request_finished(e);
}

void block_request_done(BlockRequest *req, int ret)
{
    BlockEngine *e = req->bs->engine;

    if (block_engine_in_completion_context(e))
        request_finish(req, ret);
    else
        block_engine_defer(e, request_finish, req, ret);
}

static BlockRequest *request_new(BlockDev *bs, uint64_t offset, uint64_t length,
                                 const struct iovec *iov, int iovcnt, unsigned flags,
                                 BlockCompletionFunc *cb, void *opaque)
{
    BlockRequest *req = g_new0(BlockRequest, 1);

    req->bs = bs;
    req->offset = offset;
    req->length = length;
    req->iov = iov;
    req->iovcnt = iovcnt;
    req->flags = flags;
    req->cb = cb;
    req->opaque = opaque;
    block_engine_request_started(bs->engine);
    return req;
}

/* Sectors up to the end of the virtual size rounded up to a sector. */
static gboolean range_ok(BlockDev *bs, uint64_t offset, uint64_t length)
{
    uint64_t end = VIREO_ALIGN_UP(bs->size, (uint64_t)BLOCK_SECTOR_SIZE);

    return ((offset | length) & (BLOCK_SECTOR_SIZE - 1)) == 0 &&
           offset <= end && length <= end - offset;
}

static uint64_t iov_length(const struct iovec *iov, int iovcnt)
{
    uint64_t n = 0;

    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    return n;
}

void block_readv(BlockDev *bs, uint64_t offset, const struct iovec *iov, int iovcnt,
                 BlockCompletionFunc *cb, void *opaque)
{
    uint64_t len = iovcnt >= 0 ? iov_length(iov, iovcnt) : 0;
    BlockRequest *req = request_new(bs, offset, len, iov, iovcnt, 0, cb, opaque);

    if (iovcnt < 0 || !range_ok(bs, offset, len))
        block_request_done(req, -EINVAL);
    else if (len == 0)
        block_request_done(req, 0);
    else
        bs->drv->readv(bs, req);
}

/*
 * qemu's rule for probed raw images: a write must not turn the first
 * sector into a header of another format, or the next probe would trust
 * guest-controlled metadata (and, for qcow2, its backing file name).
 */
static gboolean probed_raw_write_ok(BlockDev *bs, uint64_t offset, const struct iovec *iov,
                                    int iovcnt)
{
    uint8_t head[8];

    if (!bs->probed_raw || offset != 0)
        return TRUE;
    if (iov_to_buf(iov, iovcnt, 0, head, sizeof(head)) < sizeof(head))
        return TRUE;
    return strcmp(block_probe_format(head, sizeof(head)), "raw") == 0;
}

void block_writev(BlockDev *bs, uint64_t offset, const struct iovec *iov, int iovcnt,
                  BlockRequestFlags flags, BlockCompletionFunc *cb, void *opaque)
{
    uint64_t len = iovcnt >= 0 ? iov_length(iov, iovcnt) : 0;
    BlockRequest *req = request_new(bs, offset, len, iov, iovcnt, flags, cb, opaque);

    if (bs->read_only)
        block_request_done(req, -EROFS);
    else if (iovcnt < 0 || !range_ok(bs, offset, len))
        block_request_done(req, -EINVAL);
    else if (!probed_raw_write_ok(bs, offset, iov, iovcnt))
        block_request_done(req, -EPERM);
    else if (len == 0)
        block_request_done(req, 0);
    else
        bs->drv->writev(bs, req);
}

void block_flush(BlockDev *bs, BlockCompletionFunc *cb, void *opaque)
{
    BlockRequest *req = request_new(bs, 0, 0, NULL, 0, 0, cb, opaque);

    if (bs->read_only)
        block_request_done(req, 0);
    else
        bs->drv->flush(bs, req);
}

void block_discard(BlockDev *bs, uint64_t offset, uint64_t length,
                   BlockCompletionFunc *cb, void *opaque)
{
    BlockRequest *req = request_new(bs, offset, length, NULL, 0, 0, cb, opaque);

    if (bs->read_only)
        block_request_done(req, -EROFS);
    else if (!range_ok(bs, offset, length))
        block_request_done(req, -EINVAL);
    else if (!bs->discard || length == 0)
        block_request_done(req, 0);
    else
        bs->drv->discard(bs, req);
}

void block_write_zeroes(BlockDev *bs, uint64_t offset, uint64_t length,
                        BlockRequestFlags flags, BlockCompletionFunc *cb, void *opaque)
{
    BlockRequest *req = request_new(bs, offset, length, NULL, 0, flags, cb, opaque);

    if (bs->read_only)
        block_request_done(req, -EROFS);
    else if (!range_ok(bs, offset, length))
        block_request_done(req, -EINVAL);
    else if (bs->probed_raw && offset == 0 && length)
        block_request_done(req, -EPERM);
    else if (length == 0)
        block_request_done(req, 0);
    else
        bs->drv->write_zeroes(bs, req);
}

int block_preadv_sync(BlockDev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
    uint64_t len = iov_length(iov, iovcnt);
    uint64_t avail = offset < bs->size ? bs->size - offset : 0;

    if (avail < len) {
        /* A backing file shorter than its overlay reads as zeroes beyond its end. */
        iov_memset(iov, iovcnt, avail, 0, len - avail);
        if (avail == 0)
            return 0;
        struct iovec part[64];
        int n = iov_slice(iov, iovcnt, 0, avail, part, 64);
        if (n < 0)
            return -EINVAL;
        return bs->drv->preadv_sync(bs, offset, part, n);
    }
    return bs->drv->preadv_sync(bs, offset, iov, iovcnt);
}

/* ---- synchronous wrappers ---- */

typedef struct SyncWait {
    gboolean done;
    int ret;
} SyncWait;

static void sync_cb(void *opaque, int ret)
{
    SyncWait *w = opaque;

    w->ret = ret;
    w->done = TRUE;
}

static int sync_wait(BlockDev *bs, SyncWait *w)
{
    while (!w->done)
        block_engine_wait(bs->engine, -1);
    return w->ret;
}

static gboolean sync_error(BlockDev *bs, int ret, const char *what, uint64_t offset,
                           uint64_t len, GError **error)
{
    if (ret >= 0)
        return TRUE;
    g_set_error(error, VIREO_ERROR, ret == -EINVAL ? VIREO_ERROR_INVALID_ARGUMENT :
                VIREO_ERROR_IO, "%s of %" G_GUINT64_FORMAT " bytes at offset %"
                G_GUINT64_FORMAT " of '%s' failed: %s", what, len, offset, bs->filename,
                g_strerror(-ret));
    return FALSE;
}

/* Whole sectors around [offset, offset+len), or the caller's buffer if it fits. */
gboolean block_pread(BlockDev *bs, uint64_t offset, void *buf, size_t len, GError **error)
{
    uint64_t start = VIREO_ALIGN_DOWN(offset, (uint64_t)BLOCK_SECTOR_SIZE);
    uint64_t end = VIREO_ALIGN_UP(offset + len, (uint64_t)BLOCK_SECTOR_SIZE);
    SyncWait w = { 0 };
    struct iovec iov;
    uint8_t *bounce = NULL;

    if (offset + len < offset || !range_ok(bs, start, end - start))
        return sync_error(bs, -EINVAL, "read", offset, len, error);
    if (start == offset && end == offset + len) {
        iov = (struct iovec){ buf, len };
    } else {
        bounce = block_file_buf_alloc(end - start);
        iov = (struct iovec){ bounce, end - start };
    }
    block_readv(bs, start, &iov, 1, sync_cb, &w);
    sync_wait(bs, &w);
    if (bounce) {
        if (w.ret == 0)
            memcpy(buf, bounce + (offset - start), len);
        block_file_buf_free(bounce);
    }
    return sync_error(bs, w.ret, "read", offset, len, error);
}

gboolean block_pwrite(BlockDev *bs, uint64_t offset, const void *buf, size_t len,
                      BlockRequestFlags flags, GError **error)
{
    uint64_t start = VIREO_ALIGN_DOWN(offset, (uint64_t)BLOCK_SECTOR_SIZE);
    uint64_t end = VIREO_ALIGN_UP(offset + len, (uint64_t)BLOCK_SECTOR_SIZE);
    SyncWait w = { 0 };
    struct iovec iov;
    uint8_t *bounce = NULL;

    if (offset + len < offset || !range_ok(bs, start, end - start))
        return sync_error(bs, -EINVAL, "write", offset, len, error);
    if (start == offset && end == offset + len) {
        iov = (struct iovec){ (void *)buf, len };
    } else {
        /* Read-modify-write of the partial sectors at both ends. */
        bounce = block_file_buf_alloc(end - start);
        if (!block_pread(bs, start, bounce, end - start, error)) {
            block_file_buf_free(bounce);
            return FALSE;
        }
        memcpy(bounce + (offset - start), buf, len);
        iov = (struct iovec){ bounce, end - start };
    }
    block_writev(bs, start, &iov, 1, flags, sync_cb, &w);
    sync_wait(bs, &w);
    block_file_buf_free(bounce);
    return sync_error(bs, w.ret, "write", offset, len, error);
}

gboolean block_flush_sync(BlockDev *bs, GError **error)
{
    SyncWait w = { 0 };

    block_flush(bs, sync_cb, &w);
    return sync_error(bs, sync_wait(bs, &w), "flush", 0, 0, error);
}

gboolean block_discard_sync(BlockDev *bs, uint64_t offset, uint64_t length, GError **error)
{
    SyncWait w = { 0 };

    block_discard(bs, offset, length, sync_cb, &w);
    return sync_error(bs, sync_wait(bs, &w), "discard", offset, length, error);
}

gboolean block_write_zeroes_sync(BlockDev *bs, uint64_t offset, uint64_t length,
                                 BlockRequestFlags flags, GError **error)
{
    SyncWait w = { 0 };

    block_write_zeroes(bs, offset, length, flags, sync_cb, &w);
    return sync_error(bs, sync_wait(bs, &w), "write zeroes", offset, length, error);
}

/* ---- information ---- */

void block_snapshot_info_free(BlockSnapshotInfo *sn)
{
    if (!sn)
        return;
    g_free(sn->id);
    g_free(sn->name);
    g_free(sn);
}

void block_info_free(BlockInfo *info)
{
    if (!info)
        return;
    g_free(info->filename);
    g_free(info->format);
    g_free(info->backing_filename);
    g_free(info->full_backing_filename);
    g_free(info->backing_format);
    g_free(info->compat);
    g_free(info->compression_type);
    if (info->snapshots)
        g_ptr_array_unref(info->snapshots);
    g_free(info);
}

BlockInfo *block_get_info(BlockDev *bs, GError **error)
{
    g_autoptr(BlockInfo) info = g_new0(BlockInfo, 1);
    int64_t alloc = block_file_get_allocated(bs->file);

    info->filename = g_strdup(bs->filename);
    info->format = g_strdup(bs->drv->name);
    info->virtual_size = bs->size;
    info->actual_size = alloc > 0 ? alloc : 0;
    info->read_only = bs->read_only;
    info->snapshots = g_ptr_array_new_with_free_func((GDestroyNotify)block_snapshot_info_free);
    if (bs->backing_file) {
        info->backing_filename = g_strdup(bs->backing_file);
        info->full_backing_filename = block_resolve_backing_path(bs->filename,
                                                                 bs->backing_file);
        info->backing_format = g_strdup(bs->backing_format);
    }
    if (bs->drv->fill_info && !bs->drv->fill_info(bs, info, error))
        return NULL;
    return g_steal_pointer(&info);
}

gboolean block_get_status_layer(BlockDev *bs, uint64_t offset, uint64_t length,
                                BlockStatus *st, GError **error)
{
    memset(st, 0, sizeof(*st));
    st->filename = bs->filename;
    if (offset >= bs->size || length == 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "block status at %" G_GUINT64_FORMAT " is outside '%s'", offset,
                    bs->filename);
        return FALSE;
    }
    length = MIN(length, bs->size - offset);
    return bs->drv->get_status(bs, offset, length, st, error);
}

gboolean block_get_status(BlockDev *bs, uint64_t offset, uint64_t length, BlockStatus *st,
                          GError **error)
{
    unsigned depth = 0;

    if (!block_get_status_layer(bs, offset, length, st, error))
        return FALSE;
    while (!(st->flags & BLOCK_STATUS_ALLOCATED)) {
        BlockDev *below = bs->backing;
        if (!below) {
            /* Nothing defines it: zeroes, attributed to the bottom layer. */
            st->flags |= BLOCK_STATUS_ZERO;
            st->depth = depth;
            st->filename = bs->filename;
            return TRUE;
        }
        length = st->length;
        if (offset >= below->size) {
            /* Past the end of the backing file: zeroes, attributed (like
             * qemu-img map) to the last layer that covers the offset. */
            memset(st, 0, sizeof(*st));
            st->length = length;
            st->flags = BLOCK_STATUS_ZERO;
            st->depth = depth;
            st->filename = bs->filename;
            return TRUE;
        }
        depth++;
        if (!block_get_status_layer(below, offset, length, st, error))
            return FALSE;
        bs = below;
    }
    st->depth = depth;
    return TRUE;
}

/* ---- format-specific operations ---- */

static gboolean unsupported(BlockDev *bs, const char *what, GError **error)
{
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                "format '%s' of '%s' does not support %s", bs->drv->name, bs->filename, what);
    return FALSE;
}

static gboolean need_writable(BlockDev *bs, const char *what, GError **error)
{
    if (!bs->read_only)
        return TRUE;
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                "%s needs '%s' opened read-write", what, bs->filename);
    return FALSE;
}

gboolean block_check(BlockDev *bs, BlockCheckFix fix, BlockCheckResult *result,
                     GError **error)
{
    memset(result, 0, sizeof(*result));
    if (fix && !need_writable(bs, "repair", error))
        return FALSE;
    if (!bs->drv->check)
        return TRUE;
    return bs->drv->check(bs, fix, result, error);
}

gboolean block_truncate(BlockDev *bs, uint64_t size, GError **error)
{
    if (!need_writable(bs, "resize", error))
        return FALSE;
    if (!bs->drv->truncate)
        return unsupported(bs, "resize", error);
    return bs->drv->truncate(bs, size, error);
}

gboolean block_snapshot_create(BlockDev *bs, const char *name, GError **error)
{
    if (!bs->drv->snapshot_create)
        return unsupported(bs, "internal snapshots", error);
    if (!need_writable(bs, "creating a snapshot", error))
        return FALSE;
    return bs->drv->snapshot_create(bs, name, error);
}

gboolean block_snapshot_apply(BlockDev *bs, const char *name_or_id, GError **error)
{
    if (!bs->drv->snapshot_apply)
        return unsupported(bs, "internal snapshots", error);
    if (!need_writable(bs, "applying a snapshot", error))
        return FALSE;
    return bs->drv->snapshot_apply(bs, name_or_id, error);
}

gboolean block_snapshot_delete(BlockDev *bs, const char *name_or_id, GError **error)
{
    if (!bs->drv->snapshot_delete)
        return unsupported(bs, "internal snapshots", error);
    if (!need_writable(bs, "deleting a snapshot", error))
        return FALSE;
    return bs->drv->snapshot_delete(bs, name_or_id, error);
}

GPtrArray *block_snapshot_list(BlockDev *bs, GError **error)
{
    if (!bs->drv->snapshot_list)
        return g_ptr_array_new_with_free_func((GDestroyNotify)block_snapshot_info_free);
    return bs->drv->snapshot_list(bs, error);
}

gboolean block_write_compressed(BlockDev *bs, uint64_t offset, const void *buf, size_t len,
                                GError **error)
{
    if (!bs->drv->write_compressed)
        return unsupported(bs, "compressed writes", error);
    if (!need_writable(bs, "a compressed write", error))
        return FALSE;
    return bs->drv->write_compressed(bs, offset, buf, len, error);
}

uint32_t block_get_cluster_size(BlockDev *bs)
{
    g_autoptr(BlockInfo) info = NULL;

    if (!bs->drv->fill_info)
        return 0;
    info = block_get_info(bs, NULL);
    return info ? info->cluster_size : 0;
}

gboolean block_change_backing_file(BlockDev *bs, const char *backing, const char *backing_fmt,
                                   GError **error)
{
    if (!bs->drv->change_backing)
        return unsupported(bs, "backing files", error);
    if (!need_writable(bs, "changing the backing file", error))
        return FALSE;
    if (backing_fmt && !find_driver(backing_fmt)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "unknown backing format '%s'", backing_fmt);
        return FALSE;
    }
    if (!bs->drv->change_backing(bs, backing, backing_fmt, error))
        return FALSE;
    g_free(bs->backing_file);
    g_free(bs->backing_format);
    bs->backing_file = g_strdup(backing);
    bs->backing_format = g_strdup(backing_fmt);
    if (bs->opts.no_backing)
        return TRUE;
    return block_open_backing(bs, error);
}

gboolean block_commit(BlockDev *bs, gboolean empty, GError **error)
{
    g_autoptr(BlockDev) base = NULL;
    g_autofree char *base_path = NULL;
    g_autofree uint8_t *buf = NULL;
    BlockOpenOptions bo = { 0 };
    const size_t chunk = 1 << 20;
    uint64_t off = 0;

    if (!bs->backing) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "'%s' has no backing file to commit into", bs->filename);
        return FALSE;
    }
    if (empty && !need_writable(bs, "emptying after commit", error))
        return FALSE;
    /* Our own read-only lock on the base would conflict with opening it
     * for writing, so the chain below is closed for the copy. */
    base_path = g_strdup(bs->backing->filename);
    bo.format = bs->backing->drv->name;
    bo.cache = bs->opts.cache;
    bo.engine = bs->engine;
    block_close(bs->backing);
    bs->backing = NULL;
    base = block_open(base_path, &bo, error);
    if (!base)
        goto reopen;
    buf = g_malloc(chunk);
    while (off < bs->size) {
        BlockStatus st;
        if (!block_get_status_layer(bs, off, MIN((uint64_t)chunk, bs->size - off), &st,
                                    error))
            goto reopen;
        if (st.flags & BLOCK_STATUS_ALLOCATED) {
            uint64_t len = st.length;
            if (off + len > base->size && off < base->size)
                len = MIN(len, base->size - off);
            if (off < base->size) {
                if (!block_pread(bs, off, buf, len, error) ||
                    !block_pwrite(base, off, buf, len, 0, error))
                    goto reopen;
            }
            off += st.length;
        } else {
            off += st.length;
        }
    }
    if (!block_flush_sync(base, error))
        goto reopen;
    g_clear_pointer(&base, block_close);
    if (empty && bs->drv->make_empty && !bs->drv->make_empty(bs, error))
        goto reopen;
    return block_open_backing(bs, error);

reopen:
    g_clear_pointer(&base, block_close);
    block_open_backing(bs, NULL);
    return FALSE;
}

gboolean block_create_raw(const char *path, uint64_t size, GError **error)
{
    autoclose int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd < 0 || ftruncate(fd, size) < 0) {
        int saved = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot create raw image '%s': %s", path, g_strerror(saved));
        return FALSE;
    }
    return TRUE;
}
