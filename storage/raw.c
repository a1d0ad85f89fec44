/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The raw format: guest offsets are file offsets. */
#include <fcntl.h>
#include <unistd.h>

#include "block-internal.h"
#include "vireo/util.h"


static gboolean raw_open(BlockDev *bs, const BlockOpenOptions *opts, GError **error)
{
    int64_t size = block_file_get_size(bs->file);

    if (size < 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot get the size: %s",
                    g_strerror(-size));
        return FALSE;
    }
    bs->size = size;
    bs->opaque = bs;        /* no state, but non-NULL marks "open" */
    return TRUE;
}

static void raw_close(BlockDev *bs)
{
    bs->opaque = NULL;
}

static void raw_rw_done(void *opaque, int64_t ret)
{
    BlockRequest *req = opaque;

    block_request_done(req, ret < 0 ? (int)ret : 0);
}

static void raw_readv(BlockDev *bs, BlockRequest *req)
{
    block_engine_submit_rw(bs->engine, bs->file, FALSE, req->offset, req->iov, req->iovcnt, FALSE,
                           raw_rw_done, req);
}

static void raw_writev(BlockDev *bs, BlockRequest *req)
{
    block_engine_submit_rw(bs->engine, bs->file, TRUE, req->offset, req->iov, req->iovcnt,
                           req->flags & BLOCK_REQ_FUA, raw_rw_done, req);
}

static int64_t raw_flush_work(void *opaque)
{
    BlockRequest *req = opaque;

    return block_file_sync(req->bs->file);
}

static int64_t raw_discard_work(void *opaque)
{
    BlockRequest *req = opaque;
    int ret = block_file_discard(req->bs->file, req->offset, req->length);

    /* Discard is advisory: a file system without hole punching is fine. */
    return ret == -EOPNOTSUPP ? 0 : ret;
}

static int64_t raw_zeroes_work(void *opaque)
{
    BlockRequest *req = opaque;

    return block_file_write_zeroes(req->bs->file, req->offset, req->length,
                                   req->flags & BLOCK_REQ_MAY_UNMAP);
}

static void raw_flush(BlockDev *bs, BlockRequest *req)
{
    block_engine_submit_work(bs->engine, raw_flush_work, raw_rw_done, req);
}

static void raw_discard(BlockDev *bs, BlockRequest *req)
{
    block_engine_submit_work(bs->engine, raw_discard_work, raw_rw_done, req);
}

static void raw_write_zeroes(BlockDev *bs, BlockRequest *req)
{
    block_engine_submit_work(bs->engine, raw_zeroes_work, raw_rw_done, req);
}

static int raw_preadv_sync(BlockDev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
    return block_file_preadv(bs->file, iov, iovcnt, offset);
}

static gboolean raw_get_status(BlockDev *bs, uint64_t offset, uint64_t length,
                               BlockStatus *st, GError **error)
{
    off_t data, hole;

    st->flags = BLOCK_STATUS_ALLOCATED | BLOCK_STATUS_OFFSET_VALID;
    st->host_offset = offset;
    st->length = length;
    if (bs->file->is_blockdev) {
        st->flags |= BLOCK_STATUS_DATA;
        return TRUE;
    }
    data = lseek(bs->file->fd, offset, SEEK_DATA);
    if (data < 0 && errno == ENXIO) {
        st->flags |= BLOCK_STATUS_ZERO;     /* a hole up to the end of the file */
        return TRUE;
    }
    if (data < 0) {
        st->flags |= BLOCK_STATUS_DATA;     /* no SEEK_DATA: assume data */
        return TRUE;
    }
    if ((uint64_t)data > offset) {
        st->flags |= BLOCK_STATUS_ZERO;
        st->length = MIN(length, (uint64_t)data - offset);
        return TRUE;
    }
    hole = lseek(bs->file->fd, offset, SEEK_HOLE);
    st->flags |= BLOCK_STATUS_DATA;
    if (hole > (off_t)offset)
        st->length = MIN(length, (uint64_t)hole - offset);
    return TRUE;
}

static gboolean raw_truncate(BlockDev *bs, uint64_t size, GError **error)
{
    int ret = block_file_truncate(bs->file, size);

    if (ret < 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot resize '%s': %s",
                    bs->filename, g_strerror(-ret));
        return FALSE;
    }
    bs->size = size;
    return TRUE;
}

const BlockDriver block_driver_raw = {
    .name = "raw",
    .open = raw_open,
    .close = raw_close,
    .readv = raw_readv,
    .writev = raw_writev,
    .flush = raw_flush,
    .discard = raw_discard,
    .write_zeroes = raw_write_zeroes,
    .preadv_sync = raw_preadv_sync,
    .get_status = raw_get_status,
    .truncate = raw_truncate,
};
