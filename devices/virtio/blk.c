/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-blk, the block device (virtio 1.2, 5.2), on a disk image opened
 * through the storage library (include/vireo/block.h): raw or qcow2.
 *
 * Options:
 *   path=FILE       the image (required)
 *   format=raw|qcow2  default: probed (a probed raw image refuses writes
 *                   of a first sector that would make it look like qcow2)
 *   readonly=on|off the disk is read-only (default off): VIRTIO_BLK_F_RO,
 *                   no discard or write-zeroes, writes fail with IOERR
 *   serial=S        what GET_ID answers (up to 20 bytes, default empty)
 *   queues=N        request queues (1..64, default 1); N > 1 offers MQ
 *
 * Features: VERSION_1 and the ring features, SEG_MAX, BLK_SIZE (512),
 * FLUSH, and MQ with queues > 1; DISCARD and WRITE_ZEROES (one segment a
 * request) unless read-only, RO if it is. A driver that does not take
 * FLUSH gets a write-through disk: every write is FUA.
 *
 * Data path, all on the event loop thread: a queue kick pops chains,
 * copies the header out of guest memory once, checks type, sector range,
 * alignment and layout, and submits the request to the storage engine
 * with iovecs pointing straight into guest RAM. Requests that fail the
 * checks are completed at once with IOERR (out of range, misaligned,
 * write to a read-only disk, host I/O errors) or UNSUPP (unknown type or
 * a feature not negotiated, bad discard segments); a chain without a
 * writable status byte is returned with nothing written. A malformed
 * chain breaks the queue (virtqueue.h): DEVICE_NEEDS_RESET.
 *
 * The engine's completion fd is on the same loop; its handler takes the
 * device lock around block_engine_process_completions(), so completion
 * callbacks always run with the lock held, and used entries are
 * published with one flush and at most one interrupt per queue per pass.
 *
 * Draining: a request cannot be carried across a migration half done,
 * and after a reset the device must not write into guest memory, so
 * drain() (before save) and reset() wait for the requests in flight
 * (running their callbacks on the calling thread, under the lock the
 * caller holds).
 * reset() can therefore block a vCPU thread for the duration of the I/O
 * already submitted, as QEMU's does; nothing else does.
 *
 * Migration with the image on storage both hosts see: a writable image
 * is held by one VMM at a time. The source lets it go when it stops for
 * the last time (flush, close: set_active(FALSE)); the destination,
 * created inactive, only reads its size at start and opens it for real
 * when the VM first runs there. While inactive, requests wait in the
 * ring. Read-only images are shared and stay open on both sides.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/epoll.h>

#include "vireo/block.h"
#include "vireo/util.h"
#include "vireo/virtio-blk.h"
#include "vireo/virtio-pci.h"

#define BLK_BUDGET 256                  /* chains per queue per pass */
#define BLK_DRAIN_POLL_MS 100
#define F(bit) VIRTIO_BIT(VIRTIO_BLK_F_##bit)

typedef struct VirtioBlk VirtioBlk;

typedef struct BlkReq {
    VirtioBlk *blk;
    unsigned queue;
    VirtqElement *elem;
    struct iovec *iov;                  /* the data part: VIRTIO_BLK_QUEUE_SIZE entries */
    uint8_t *status;                    /* host pointer to the status byte */
    uint32_t type;
    gboolean dropped;                   /* after a reset or at free: complete nothing */
    struct BlkReq *next;                /* free list, or in-flight list */
    struct BlkReq *prev;
} BlkReq;

typedef struct BlkQueue {
    BlkReq *free_reqs;
    BlkReq *in_flight;                  /* doubly linked */
    gboolean pending;                   /* used entries filled, not flushed yet */
    gboolean scheduled;                 /* a continuation pass is queued on the loop */
} BlkQueue;

struct VirtioBlk {
    VirtioDevice vdev;                  /* first: the transport holds &vdev */
    /* Fixed at creation. */
    BlockEngine *engine;                /* ours, shared by every opening of the image */
    EventSource *src;
    char *path;
    char *format;                       /* NULL: probed at every opening */
    uint64_t capacity;                  /* sectors */
    gboolean read_only;
    unsigned nr_queues;
    uint32_t discard_alignment;         /* sectors */
    char serial[VIRTIO_BLK_ID_BYTES];   /* zero-padded */
    /* Under the lock. */
    BlkQueue *queues;
    BlockDev *bs;                       /* NULL while inactive */
};

static VirtioBlk *virtio_blk_from_vdev(VirtioDevice *vdev)
{
    return (VirtioBlk *)vdev;
}

static gboolean blk_queue_running(VirtioBlk *b, unsigned index)
{
    /* Inactive: requests wait for set_active(TRUE). */
    if (!b->bs)
        return FALSE;
    /* After DEVICE_NEEDS_RESET nothing moves until the driver resets. */
    if ((b->vdev.status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET)) !=
        VIRTIO_STATUS_DRIVER_OK)
        return FALSE;
    if (index > 0 && !virtio_has_feature(&b->vdev, VIRTIO_BLK_F_MQ))
        return FALSE;
    return virtq_is_enabled(b->vdev.queues[index].vq);
}

/* --- requests --- */

static BlkReq *blk_req_get(VirtioBlk *b, unsigned index)
{
    BlkQueue *q = &b->queues[index];
    BlkReq *r = q->free_reqs;

    if (r) {
        q->free_reqs = r->next;
    } else {
        /* Allocated on first use: most disks never see a deep queue. */
        r = g_new0(BlkReq, 1);
        r->blk = b;
        r->queue = index;
        r->elem = virtq_element_new(b->vdev.queues[index].vq);
        r->iov = g_new(struct iovec, VIRTIO_BLK_QUEUE_SIZE);
    }
    r->next = r->prev = NULL;
    r->dropped = FALSE;
    r->status = NULL;
    return r;
}

static void blk_req_put(BlkReq *r)
{
    BlkQueue *q = &r->blk->queues[r->queue];

    r->next = q->free_reqs;
    q->free_reqs = r;
}

static void blk_req_free_list(BlkReq *r)
{
    while (r) {
        BlkReq *next = r->next;

        virtq_element_free(r->elem);
        g_free(r->iov);
        g_free(r);
        r = next;
    }
}

/* Writes the status and fills a used entry; the pass flushes it. */
static void blk_req_finish(BlkReq *r, uint8_t status)
{
    VirtioBlk *b = r->blk;

    if (!r->dropped) {
        if (r->status)
            *r->status = status;
        /* As QEMU: the whole device-writable part, status byte included. */
        virtq_fill(b->vdev.queues[r->queue].vq, r->elem, r->elem->in_len);
        b->queues[r->queue].pending = TRUE;
    } else if (r->type == VIRTIO_BLK_T_IN) {
        /* A read may have landed in guest RAM anyway: a migration must carry it. */
        guest_memory_mark_iov_dirty(b->vdev.mem, r->elem->in_sg, r->elem->in_num,
                                    r->elem->in_len);
    }
    blk_req_put(r);
}

static void blk_io_done(void *opaque, int ret)
{
    BlkReq *r = opaque;
    BlkQueue *q = &r->blk->queues[r->queue];

    if (r->prev)
        r->prev->next = r->next;
    else
        q->in_flight = r->next;
    if (r->next)
        r->next->prev = r->prev;
    if (ret < 0 && !r->dropped) {
        static RateLimit rl;
        int suppressed;

        if (ratelimit_allow(&rl, &suppressed))
            g_warning("%s: request type %u failed: %s", r->blk->vdev.id, r->type,
                      g_strerror(-ret));
    }
    blk_req_finish(r, ret < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

static void blk_req_submitted(BlkReq *r)
{
    BlkQueue *q = &r->blk->queues[r->queue];

    r->prev = NULL;
    r->next = q->in_flight;
    if (q->in_flight)
        q->in_flight->prev = r;
    q->in_flight = r;
}

/*
 * The @len bytes from @skip of @src as iovecs in @dst (room for
 * VIRTIO_BLK_QUEUE_SIZE, which no element exceeds). Returns the count.
 */
static int blk_iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len,
                         struct iovec *dst)
{
    int cnt = 0;

    for (unsigned i = 0; i < n && len; i++) {
        size_t l = src[i].iov_len;

        if (skip >= l) {
            skip -= l;
            continue;
        }
        dst[cnt].iov_base = (uint8_t *)src[i].iov_base + skip;
        dst[cnt].iov_len = MIN(l - skip, len);
        len -= dst[cnt].iov_len;
        skip = 0;
        cnt++;
    }
    return cnt;
}

/* Whether [sector, sector + bytes / 512) lies on the disk. */
static gboolean blk_range_ok(VirtioBlk *b, uint64_t sector, uint64_t bytes)
{
    return sector <= b->capacity && bytes / BLOCK_SECTOR_SIZE <= b->capacity - sector;
}

/* DISCARD and WRITE_ZEROES; returns a status to complete with now, or -1 if submitted. */
static int blk_dwz(VirtioBlk *b, BlkReq *r, size_t data_len)
{
    const VirtqElement *e = r->elem;
    uint8_t seg[VIRTIO_BLK_DWZ_SIZE];
    uint64_t sector;
    uint32_t num, flags;
    gboolean zeroes = r->type == VIRTIO_BLK_T_WRITE_ZEROES;

    /* One segment a request, as the configuration says (max_*_seg = 1). */
    if (data_len != VIRTIO_BLK_DWZ_SIZE) {
        vireo_guest_warn("%s: %s request with %zu bytes of segments", b->vdev.id,
                         zeroes ? "write-zeroes" : "discard", data_len);
        return VIRTIO_BLK_S_UNSUPP;
    }
    virtq_element_read(e, VIRTIO_BLK_HDR_SIZE, seg, sizeof(seg));
    sector = vireo_le_load(seg, 8);
    num = vireo_le_load(seg + 8, 4);
    flags = vireo_le_load(seg + 12, 4);
    /* The unmap flag means something only for write-zeroes (5.2.6.2). */
    if (flags & ~(zeroes ? VIRTIO_BLK_WRITE_ZEROES_F_UNMAP : 0))
        return VIRTIO_BLK_S_UNSUPP;
    if (num > VIRTIO_BLK_MAX_DWZ_SECTORS || !blk_range_ok(b, sector, (uint64_t)num * 512)) {
        vireo_guest_warn("%s: %s of %u sectors at %" PRIu64 ", beyond the disk or the limit",
                         b->vdev.id, zeroes ? "write-zeroes" : "discard", num, sector);
        return VIRTIO_BLK_S_IOERR;
    }
    if (!num)
        return VIRTIO_BLK_S_OK;
    blk_req_submitted(r);
    if (zeroes)
        block_write_zeroes(b->bs, sector * BLOCK_SECTOR_SIZE, (uint64_t)num * BLOCK_SECTOR_SIZE,
                           flags ? BLOCK_REQ_MAY_UNMAP : 0, blk_io_done, r);
    else
        block_discard(b->bs, sector * BLOCK_SECTOR_SIZE, (uint64_t)num * BLOCK_SECTOR_SIZE,
                      blk_io_done, r);
    return -1;
}

/* Checks and starts one request; returns a status to complete with now, or -1 if submitted. */
static int blk_handle(VirtioBlk *b, BlkReq *r)
{
    const VirtqElement *e = r->elem;
    uint8_t hdr[VIRTIO_BLK_HDR_SIZE];
    uint64_t sector;
    size_t len;
    int cnt;

    /* Our copy only: the guest can rewrite its header at any time. */
    if (virtq_element_read(e, 0, hdr, sizeof(hdr)) != sizeof(hdr)) {
        vireo_guest_warn("%s: request header of %u bytes", b->vdev.id, e->out_len);
        return VIRTIO_BLK_S_IOERR;
    }
    r->type = vireo_le_load(hdr, 4);
    sector = vireo_le_load(hdr + 8, 8);

    switch (r->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        if (r->type == VIRTIO_BLK_T_IN) {
            len = e->in_len - 1;
            cnt = blk_iov_slice(e->in_sg, e->in_num, 0, len, r->iov);
        } else {
            len = e->out_len - VIRTIO_BLK_HDR_SIZE;
            cnt = blk_iov_slice(e->out_sg, e->out_num, VIRTIO_BLK_HDR_SIZE, len, r->iov);
        }
        if (len % BLOCK_SECTOR_SIZE || !blk_range_ok(b, sector, len)) {
            vireo_guest_warn("%s: %s of %zu bytes at sector %" PRIu64 ": misaligned or "
                             "beyond the disk's %" PRIu64 " sectors", b->vdev.id,
                             r->type == VIRTIO_BLK_T_IN ? "read" : "write", len, sector,
                             b->capacity);
            return VIRTIO_BLK_S_IOERR;
        }
        if (r->type == VIRTIO_BLK_T_OUT && b->read_only)
            return VIRTIO_BLK_S_IOERR;
        if (!len)
            return VIRTIO_BLK_S_OK;
        blk_req_submitted(r);
        if (r->type == VIRTIO_BLK_T_IN)
            block_readv(b->bs, sector * BLOCK_SECTOR_SIZE, r->iov, cnt, blk_io_done, r);
        else
            block_writev(b->bs, sector * BLOCK_SECTOR_SIZE, r->iov, cnt,
                         virtio_has_feature(&b->vdev, VIRTIO_BLK_F_FLUSH) ? 0 : BLOCK_REQ_FUA,
                         blk_io_done, r);
        return -1;
    case VIRTIO_BLK_T_FLUSH:
        if (!virtio_has_feature(&b->vdev, VIRTIO_BLK_F_FLUSH))
            return VIRTIO_BLK_S_UNSUPP;
        if (b->read_only)
            return VIRTIO_BLK_S_OK;     /* nothing was written */
        blk_req_submitted(r);
        block_flush(b->bs, blk_io_done, r);
        return -1;
    case VIRTIO_BLK_T_GET_ID:
        virtq_element_write(e, 0, b->serial, MIN((size_t)e->in_len - 1, sizeof(b->serial)));
        return VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        if (!virtio_has_feature(&b->vdev, r->type == VIRTIO_BLK_T_DISCARD ?
                                VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES))
            return VIRTIO_BLK_S_UNSUPP;
        if (b->read_only)
            return VIRTIO_BLK_S_IOERR;
        return blk_dwz(b, r, e->out_len - VIRTIO_BLK_HDR_SIZE);
    default:
        return VIRTIO_BLK_S_UNSUPP;
    }
}

/*
 * Publishes what completions filled; lock held. With @notify, also sends
 * the interrupts due, including for entries published quietly before
 * (virtq_needs_notification() counts everything since its last call).
 */
static void blk_flush_used(VirtioBlk *b, gboolean notify)
{
    for (unsigned i = 0; i < b->nr_queues; i++) {
        if (b->queues[i].pending) {
            b->queues[i].pending = FALSE;
            virtq_flush(b->vdev.queues[i].vq);
        }
        if (notify)
            virtio_notify_queue(&b->vdev, i);
    }
}

static void blk_serve_later(void *opaque);

/* Takes what the driver made available on queue @index; loop thread, lock held. */
static void blk_serve(VirtioBlk *b, unsigned index)
{
    VirtQueue *vq = b->vdev.queues[index].vq;
    unsigned served = 0;
    int r = 0;

    /* Everything this pass pops goes to the kernel in one submission. */
    block_engine_plug(b->engine);
    do {
        virtq_disable_notification(vq);
        for (;;) {
            BlkReq *req;
            int status;

            if (served == BLK_BUDGET) {
                /* The rest in a later pass, so one guest cannot hold the loop. */
                if (!b->queues[index].scheduled) {
                    b->queues[index].scheduled = TRUE;
                    event_loop_call(b->vdev.loop, blk_serve_later, &b->vdev.queues[index]);
                }
                goto out;
            }
            req = blk_req_get(b, index);
            r = virtq_pop(vq, req->elem);
            if (r != 1) {
                blk_req_put(req);
                break;
            }
            served++;
            if (!req->elem->in_len) {
                /* No status byte to answer in: give the chain back untouched. */
                vireo_guest_warn("%s: request without a device-writable status byte",
                                 b->vdev.id);
                blk_req_finish(req, 0);
                continue;
            }
            req->status = (uint8_t *)req->elem->in_sg[req->elem->in_num - 1].iov_base +
                          req->elem->in_sg[req->elem->in_num - 1].iov_len - 1;
            status = blk_handle(b, req);
            if (status >= 0)
                blk_req_finish(req, status);
        }
    } while (r == 0 && virtq_enable_notification(vq));
    if (r < 0)
        virtio_set_needs_reset(&b->vdev, NULL);         /* virtq_pop() said why */
out:
    block_engine_unplug(b->engine);
    blk_flush_used(b, TRUE);
}

static void blk_serve_later(void *opaque)
{
    VirtioQueue *vq = opaque;
    VirtioBlk *b = virtio_blk_from_vdev(vq->vdev);

    virtio_device_lock(&b->vdev);
    b->queues[vq->index].scheduled = FALSE;
    if (blk_queue_running(b, vq->index))
        blk_serve(b, vq->index);
    virtio_device_unlock(&b->vdev);
}

static void blk_engine_event(int fd, uint32_t events, void *opaque)
{
    VirtioBlk *b = opaque;

    virtio_device_lock(&b->vdev);
    block_engine_process_completions(b->engine);
    blk_flush_used(b, TRUE);
    virtio_device_unlock(&b->vdev);
}

/* Interrupts for what a drain published quietly; loop thread, no lock. */
static void blk_notify_later(void *opaque)
{
    VirtioBlk *b = opaque;

    virtio_device_lock(&b->vdev);
    if ((b->vdev.status & VIRTIO_STATUS_DRIVER_OK))
        blk_flush_used(b, TRUE);
    virtio_device_unlock(&b->vdev);
}

/* Waits for every request in flight, running their callbacks here; lock held (or at free). */
static void blk_drain(VirtioBlk *b)
{
    while (block_engine_get_in_flight(b->engine))
        block_engine_wait(b->engine, BLK_DRAIN_POLL_MS);
    /* Completions that came in before the wait, and those it ran. */
    block_engine_process_completions(b->engine);
}

static void blk_drop_in_flight(VirtioBlk *b)
{
    for (unsigned i = 0; i < b->nr_queues; i++)
        for (BlkReq *r = b->queues[i].in_flight; r; r = r->next)
            r->dropped = TRUE;
}

/* --- VirtioDeviceOps --- */

static void virtio_blk_queue_notify(VirtioDevice *vdev, unsigned index)
{
    VirtioBlk *b = virtio_blk_from_vdev(vdev);

    if (blk_queue_running(b, index))
        blk_serve(b, index);
}

static void virtio_blk_config_read(VirtioDevice *vdev, uint32_t off, void *buf, size_t len)
{
    VirtioBlk *b = virtio_blk_from_vdev(vdev);
    uint8_t cfg[VIRTIO_BLK_CFG_SIZE] = { 0 };

    vireo_le_store(cfg + VIRTIO_BLK_CFG_CAPACITY, 8, b->capacity);
    vireo_le_store(cfg + VIRTIO_BLK_CFG_SEG_MAX, 4, VIRTIO_BLK_SEG_MAX);
    vireo_le_store(cfg + VIRTIO_BLK_CFG_BLK_SIZE, 4, BLOCK_SECTOR_SIZE);
    vireo_le_store(cfg + VIRTIO_BLK_CFG_NUM_QUEUES, 2, b->nr_queues);
    if (!b->read_only) {
        vireo_le_store(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, 4, VIRTIO_BLK_MAX_DWZ_SECTORS);
        vireo_le_store(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 4, 1);
        vireo_le_store(cfg + VIRTIO_BLK_CFG_DISCARD_ALIGNMENT, 4, b->discard_alignment);
        vireo_le_store(cfg + VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS, 4,
                       VIRTIO_BLK_MAX_DWZ_SECTORS);
        vireo_le_store(cfg + VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG, 4, 1);
        cfg[VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP] = 1;
    }
    memcpy(buf, cfg + off, len);
}

static void virtio_blk_reset(VirtioDevice *vdev)
{
    VirtioBlk *b = virtio_blk_from_vdev(vdev);

    /* The driver may reuse the buffers at once: no DMA after the reset returns. */
    blk_drop_in_flight(b);
    blk_drain(b);
    for (unsigned i = 0; i < b->nr_queues; i++)
        b->queues[i].pending = FALSE;
}

static void virtio_blk_drain(VirtioDevice *vdev)
{
    VirtioBlk *b = virtio_blk_from_vdev(vdev);

    if (!block_engine_get_in_flight(b->engine))
        return;
    blk_drain(b);
    blk_flush_used(b, FALSE);
    /* Here, if the VM goes on; the destination's catch-up kick does it there. */
    event_loop_call(vdev->loop, blk_notify_later, b);
}

static gboolean virtio_blk_save(VirtioDevice *vdev, StateWriter *w, GError **error)
{
    VirtioBlk *b = virtio_blk_from_vdev(vdev);

    state_write_u64(w, "blk-capacity", b->capacity);
    state_write_u8(w, "blk-read-only", b->read_only);
    return TRUE;
}

static gboolean virtio_blk_load(VirtioDevice *vdev, StateReader *r, GError **error)
{
    VirtioBlk *b = virtio_blk_from_vdev(vdev);
    uint64_t capacity;
    uint8_t ro;

    if (!state_read_u64(r, "blk-capacity", &capacity, error) ||
        !state_read_u8(r, "blk-read-only", &ro, error))
        return FALSE;
    /* The driver sized its disk and chose its requests from these. */
    if (capacity != b->capacity || ro != b->read_only) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "%s: saved for a %s disk of %" PRIu64 " sectors, this one is %s with %"
                    PRIu64, vdev->id, ro ? "read-only" : "writable", capacity,
                    b->read_only ? "read-only" : "writable", b->capacity);
        return FALSE;
    }
    return TRUE;
}

static BlockDev *blk_open(VirtioBlk *b, gboolean inactive, GError **error)
{
    BlockOpenOptions bo = {
        .format = b->format,
        .cache = BLOCK_CACHE_WRITEBACK,
        .discard = TRUE,
        /* Inactive: only look (the size); the other VMM may be writing. */
        .read_only = b->read_only || inactive,
        .force_share = inactive,
        .engine = b->engine,
    };
    BlockDev *bs = block_open(b->path, &bo, error);

    if (!bs)
        g_prefix_error(error, "virtio-blk: ");
    return bs;
}

static gboolean virtio_blk_set_active(VirtioDevice *vdev, gboolean active, GError **error)
{
    VirtioBlk *b = virtio_blk_from_vdev(vdev);
    BlockDev *bs;

    if (b->read_only || active == (b->bs != NULL))
        return TRUE;
    if (!active) {
        /* The save drained every request; what completed must be on disk. */
        if (!block_flush_sync(b->bs, error)) {
            g_prefix_error(error, "%s: cannot flush '%s': ", vdev->id, b->path);
            return FALSE;
        }
        g_clear_pointer(&b->bs, block_close);
        return TRUE;
    }
    bs = blk_open(b, FALSE, error);
    if (!bs)
        return FALSE;
    if (block_get_size(bs) / BLOCK_SECTOR_SIZE != b->capacity) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "%s: '%s' changed size while another VMM had it (%" PRIu64 " bytes, the "
                    "guest knows %" PRIu64 ")", vdev->id, b->path, block_get_size(bs),
                    b->capacity * BLOCK_SECTOR_SIZE);
        block_close(bs);
        return FALSE;
    }
    b->bs = bs;
    /* Serve what the driver queued meanwhile. */
    for (unsigned i = 0; i < b->nr_queues; i++) {
        if (blk_queue_running(b, i) && !b->queues[i].scheduled) {
            b->queues[i].scheduled = TRUE;
            event_loop_call(vdev->loop, blk_serve_later, &vdev->queues[i]);
        }
    }
    return TRUE;
}

static void virtio_blk_free(VirtioDevice *vdev)
{
    VirtioBlk *b = virtio_blk_from_vdev(vdev);

    event_source_remove(vdev->loop, b->src);
    if (b->queues) {
        /* The queues are gone: completions must not touch them. */
        blk_drop_in_flight(b);
        blk_drain(b);
        for (unsigned i = 0; i < b->nr_queues; i++)
            blk_req_free_list(b->queues[i].free_reqs);
    }
    g_free(b->queues);
    block_close(b->bs);
    block_engine_free(b->engine);
    g_free(b->path);
    g_free(b->format);
    g_free(b);
}

static const VirtioDeviceOps virtio_blk_ops = {
    .device_id = VIRTIO_ID_BLOCK,
    .config_read = virtio_blk_config_read,
    .queue_notify = virtio_blk_queue_notify,
    .reset = virtio_blk_reset,
    .drain = virtio_blk_drain,
    .save = virtio_blk_save,
    .load = virtio_blk_load,
    .set_active = virtio_blk_set_active,
    .free = virtio_blk_free,
};

static Device *virtio_blk_create(const DeviceEnv *env, const char *options, GError **error);

VIRTIO_PCI_DEVICE_TYPE(virtio_blk_type, "virtio-blk",
                       "virtio disk on a raw or qcow2 image "
                       "(path=FILE,format=raw|qcow2,readonly=on,serial=S,queues=N)",
                       virtio_blk_create)

static gboolean blk_bad_option(GError **error, const char *key, const char *value,
                               const char *expected)
{
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT, "%s: %s=%s: expected %s",
                virtio_blk_type.name, key, value, expected);
    return FALSE;
}

static Device *virtio_blk_create(const DeviceEnv *env, const char *options, GError **error)
{
    static const char *const known[] = { "path", "format", "readonly", "serial", "queues",
                                         NULL };
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    g_autoptr(BlockDev) bs = NULL;
    BlockOpenOptions bo = { 0 };
    const char *path, *str, *serial = NULL;
    uint64_t queues = 1, features;
    uint32_t cluster;
    VirtioBlk *b;

    if (!opts || !device_options_check_known(opts, known, virtio_blk_type.name, error))
        return NULL;
    if (!env->loop || !env->mem) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s needs an event loop and guest memory", virtio_blk_type.name);
        return NULL;
    }
    path = g_hash_table_lookup(opts, "path");
    if (!path || !*path) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT, "%s: path=FILE is required",
                    virtio_blk_type.name);
        return NULL;
    }
    if ((str = g_hash_table_lookup(opts, "format"))) {
        if (strcmp(str, "raw") != 0 && strcmp(str, "qcow2") != 0) {
            blk_bad_option(error, "format", str, "raw or qcow2");
            return NULL;
        }
        bo.format = str;
    }
    if ((str = g_hash_table_lookup(opts, "readonly"))) {
        if (strcmp(str, "on") != 0 && strcmp(str, "off") != 0) {
            blk_bad_option(error, "readonly", str, "on or off");
            return NULL;
        }
        bo.read_only = strcmp(str, "on") == 0;
    }
    if ((serial = g_hash_table_lookup(opts, "serial")) && strlen(serial) > VIRTIO_BLK_ID_BYTES) {
        blk_bad_option(error, "serial", serial, "at most 20 bytes");
        return NULL;
    }
    if ((str = g_hash_table_lookup(opts, "queues"))) {
        char *end = NULL;

        errno = 0;
        queues = g_ascii_strtoull(str, &end, 10);
        if (end == str || *end || errno || !g_ascii_isdigit(*str) || queues < 1 ||
            queues > VIRTIO_BLK_MAX_QUEUES) {
            blk_bad_option(error, "queues", str, "a number from 1 to 64");
            return NULL;
        }
    }
    b = g_new0(VirtioBlk, 1);
    b->engine = block_engine_new(error);
    if (!b->engine) {
        g_free(b);
        return NULL;
    }
    b->path = g_strdup(path);
    b->format = g_strdup(bo.format);
    b->read_only = bo.read_only;
    bs = blk_open(b, env->inactive, error);
    if (!bs) {
        block_engine_free(b->engine);
        g_free(b->path);
        g_free(b->format);
        g_free(b);
        return NULL;
    }
    b->capacity = block_get_size(bs) / BLOCK_SECTOR_SIZE;
    cluster = block_get_cluster_size(bs);
    b->discard_alignment = MAX(cluster / BLOCK_SECTOR_SIZE, 1u);
    if (env->inactive && !b->read_only)
        g_clear_pointer(&bs, block_close);
    b->bs = g_steal_pointer(&bs);

    features = F(SEG_MAX) | F(BLK_SIZE) | F(FLUSH);
    if (bo.read_only)
        features |= F(RO);
    else
        features |= F(DISCARD) | F(WRITE_ZEROES);
    if (queues > 1)
        features |= F(MQ);

    virtio_device_init(&b->vdev, &virtio_blk_ops, env, features, VIRTIO_BLK_CFG_SIZE);
    b->nr_queues = queues;
    if (serial)
        memcpy(b->serial, serial, strlen(serial));
    for (unsigned i = 0; i < queues; i++)
        virtio_device_add_queue(&b->vdev, VIRTIO_BLK_QUEUE_SIZE);
    b->queues = g_new0(BlkQueue, queues);
    b->src = event_loop_add_fd(env->loop, block_engine_get_fd(b->engine), EPOLLIN,
                               blk_engine_event, b, error);
    if (!b->src) {
        g_prefix_error(error, "%s: ", virtio_blk_type.name);
        virtio_device_free(&b->vdev);
        return NULL;
    }
    return virtio_pci_device_new(&virtio_blk_type, env, &b->vdev, error);
}
