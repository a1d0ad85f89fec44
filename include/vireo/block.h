/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Block devices: disk images (raw, qcow2) behind one interface, for the
 * virtio-blk device model and for vireo-img.
 *
 * Threading contract. A BlockDev belongs to one BlockEngine, and a
 * BlockEngine is driven by one thread at a time, the "caller's thread":
 * requests are submitted there and every completion callback runs there,
 * from block_engine_process_completions(). The caller polls
 * block_engine_get_fd() (readable = completions are waiting) with whatever
 * loop it has (epoll, GMainContext, poll). Internally the engine uses
 * io_uring for data I/O and a few worker threads for requests that must
 * block (qcow2 metadata misses, cluster allocation with copy-on-write,
 * flushes); none of that is visible to callbacks.
 *
 * Requests never complete synchronously: even a request rejected at
 * submission (bad bounds, read-only device) gets its callback from a later
 * block_engine_process_completions(), so callers need no re-entrancy
 * handling. iov arrays and buffers must stay valid until the callback.
 *
 * Offsets and lengths of asynchronous requests must be multiples of
 * BLOCK_SECTOR_SIZE and lie inside the virtual size; anything else fails
 * with -EINVAL without touching the file.
 */
#ifndef VIREO_BLOCK_H
#define VIREO_BLOCK_H

#include <glib.h>
#include <stdint.h>
#include <sys/uio.h>

#define BLOCK_SECTOR_SIZE 512
/* Deeper backing chains are refused (also catches loops through symlinks). */
#define BLOCK_MAX_CHAIN_DEPTH 64

typedef struct BlockEngine BlockEngine;
typedef struct BlockDev BlockDev;

/* ret is 0 or a negative errno. Runs on the engine's caller thread. */
typedef void BlockCompletionFunc(void *opaque, int ret);

typedef enum {
    BLOCK_CACHE_WRITEBACK,  /* host page cache, flush = fdatasync */
    BLOCK_CACHE_NONE,       /* O_DIRECT, flush = fdatasync */
    BLOCK_CACHE_UNSAFE,     /* host page cache, flush does nothing */
} BlockCacheMode;

typedef enum {
    BLOCK_REQ_FUA = 1 << 0,          /* writev: durable when the callback runs */
    BLOCK_REQ_MAY_UNMAP = 1 << 1,    /* write_zeroes: may deallocate */
} BlockRequestFlags;

typedef struct BlockOpenOptions {
    const char *format;       /* "raw", "qcow2", or NULL to probe */
    gboolean read_only;
    BlockCacheMode cache;
    gboolean discard;         /* TRUE: pass discards to the file; FALSE: ignore them */
    gboolean no_backing;      /* do not open the backing chain (reads of unallocated
                               * clusters then return zeroes) */
    gboolean force_share;     /* take no image lock; requires read_only (qemu's -U) */
    BlockEngine *engine;      /* NULL: the device creates and owns its own engine */
    uint64_t l2_cache_size;   /* qcow2 L2 cache in bytes; 0 = default (1 MiB or what
                               * covers the whole disk, whichever is smaller) */
} BlockOpenOptions;

/* ---- engine ---- */

BlockEngine *block_engine_new(GError **error);
void block_engine_free(BlockEngine *engine);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlockEngine, block_engine_free)
/* Readable when completions are waiting. Level-triggered use is fine. */
int block_engine_get_fd(BlockEngine *engine);
/* Runs the callbacks of finished requests. Returns how many ran. */
int block_engine_process_completions(BlockEngine *engine);
/* Blocks until at least one completion ran or @timeout_ms passed (-1: forever). */
int block_engine_wait(BlockEngine *engine, int timeout_ms);
/*
 * Batching: between plug and unplug (they nest), requests queue up and go
 * to the kernel in one system call at the last unplug. Completion
 * callbacks run plugged. Caller's thread only.
 */
void block_engine_plug(BlockEngine *engine);
void block_engine_unplug(BlockEngine *engine);
/* Requests submitted and not yet completed. */
unsigned block_engine_get_in_flight(BlockEngine *engine);
/* "io_uring" or "threads": which data path this engine uses. */
const char *block_engine_get_backend(BlockEngine *engine);

/* ---- devices ---- */

/*
 * Opens an image and its backing chain (read-only). Formats are probed
 * when opts->format is NULL: a qcow2 header selects qcow2, anything else
 * raw. Like qemu, a probed raw image refuses writes to its first sector
 * that would make it look like another format (-EPERM).
 * The image file gets qemu-compatible OFD locks (bytes 100.. and 200..):
 * two writers, or a writer and a reader, cannot have one image open.
 */
BlockDev *block_open(const char *path, const BlockOpenOptions *opts, GError **error);
/* Completes nothing: all requests must have completed. Flushes metadata. */
void block_close(BlockDev *bs);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlockDev, block_close)

BlockEngine *block_get_engine(BlockDev *bs);
uint64_t block_get_size(BlockDev *bs);
const char *block_get_format(BlockDev *bs);
const char *block_get_filename(BlockDev *bs);
gboolean block_is_read_only(BlockDev *bs);
/* The opened backing image (borrowed), or NULL. */
BlockDev *block_get_backing(BlockDev *bs);

void block_readv(BlockDev *bs, uint64_t offset, const struct iovec *iov, int iovcnt,
                 BlockCompletionFunc *cb, void *opaque);
void block_writev(BlockDev *bs, uint64_t offset, const struct iovec *iov, int iovcnt,
                  BlockRequestFlags flags, BlockCompletionFunc *cb, void *opaque);
/* Makes every write that completed before this call durable. */
void block_flush(BlockDev *bs, BlockCompletionFunc *cb, void *opaque);
/* Advisory: the range may read back as anything the format allows (zeroes
 * for qcow2 v3). Ignored when the device was opened with discard off. */
void block_discard(BlockDev *bs, uint64_t offset, uint64_t length,
                   BlockCompletionFunc *cb, void *opaque);
void block_write_zeroes(BlockDev *bs, uint64_t offset, uint64_t length,
                        BlockRequestFlags flags, BlockCompletionFunc *cb, void *opaque);

/*
 * Synchronous versions for tools, built on the same engine (they run its
 * completions, so do not call them from a completion callback). Any byte
 * offset and length inside the image is accepted.
 */
gboolean block_pread(BlockDev *bs, uint64_t offset, void *buf, size_t len, GError **error);
gboolean block_pwrite(BlockDev *bs, uint64_t offset, const void *buf, size_t len,
                      BlockRequestFlags flags, GError **error);
gboolean block_flush_sync(BlockDev *bs, GError **error);
gboolean block_discard_sync(BlockDev *bs, uint64_t offset, uint64_t length, GError **error);
gboolean block_write_zeroes_sync(BlockDev *bs, uint64_t offset, uint64_t length,
                                 BlockRequestFlags flags, GError **error);

/* ---- information ---- */

typedef struct BlockSnapshotInfo {
    char *id;
    char *name;
    uint64_t vm_state_size;
    int64_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t icount;          /* G_MAXUINT64 when the image does not record it */
    uint64_t disk_size;       /* virtual size when the snapshot was taken */
} BlockSnapshotInfo;

/* What qemu-img info --output json shows for raw and qcow2. */
typedef struct BlockInfo {
    char *filename;
    char *format;
    uint64_t virtual_size;
    uint64_t actual_size;     /* bytes allocated on the host (st_blocks * 512) */
    gboolean dirty;           /* qcow2 dirty bit (lazy refcounts in use) */
    gboolean read_only;
    uint32_t cluster_size;    /* 0 for raw */
    char *backing_filename;           /* as stored in the image, or NULL */
    char *full_backing_filename;      /* resolved like qemu does */
    char *backing_format;             /* from the image's header extension, or NULL */
    /* format-specific (qcow2) */
    char *compat;             /* "0.10" or "1.1" */
    gboolean lazy_refcounts;
    gboolean corrupt;
    gboolean extended_l2;
    gboolean encrypted;       /* always FALSE: encrypted images are refused */
    uint32_t refcount_bits;
    char *compression_type;   /* "zlib" or "zstd" */
    GPtrArray *snapshots;     /* of BlockSnapshotInfo*, may be empty, never NULL */
} BlockInfo;

BlockInfo *block_get_info(BlockDev *bs, GError **error);
void block_info_free(BlockInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlockInfo, block_info_free)
void block_snapshot_info_free(BlockSnapshotInfo *sn);

/* ---- block status (qemu-img map) ---- */

typedef enum {
    BLOCK_STATUS_DATA = 1 << 0,        /* reads from a data area (not known zero) */
    BLOCK_STATUS_ZERO = 1 << 1,        /* reads as zeroes */
    BLOCK_STATUS_ALLOCATED = 1 << 2,   /* defined by this layer or one below (present) */
    BLOCK_STATUS_OFFSET_VALID = 1 << 3,/* host_offset is where the data lives */
    BLOCK_STATUS_COMPRESSED = 1 << 4,
} BlockStatusFlags;

typedef struct BlockStatus {
    uint64_t length;        /* of the extent starting at the queried offset */
    unsigned flags;         /* BlockStatusFlags */
    uint64_t host_offset;   /* in the file of layer @depth */
    unsigned depth;         /* 0 = this image, 1 = its backing file, ... */
    const char *filename;   /* of the layer that defines it (borrowed) */
} BlockStatus;

/*
 * Status of the range starting at @offset through the whole backing chain
 * (like qemu-img map): one extent of at most @length bytes with the same
 * flags, depth and contiguous host offsets.
 */
gboolean block_get_status(BlockDev *bs, uint64_t offset, uint64_t length,
                          BlockStatus *st, GError **error);
/* Same, but for this layer alone: unallocated here means depth 0 and no flags. */
gboolean block_get_status_layer(BlockDev *bs, uint64_t offset, uint64_t length,
                                BlockStatus *st, GError **error);

/* ---- format-specific operations, dispatched on the format ----
 *
 * These are synchronous and meant for tools and for a paused device: no
 * asynchronous request of @bs may be in flight while one runs (check,
 * resize, snapshots, compressed writes, backing file changes, commit).
 */

typedef enum {
    BLOCK_CHECK_NO_FIX = 0,
    BLOCK_CHECK_FIX_LEAKS = 1 << 0,
    BLOCK_CHECK_FIX_ERRORS = 1 << 1,
} BlockCheckFix;

/* What qemu-img check reports. */
typedef struct BlockCheckResult {
    uint64_t corruptions;
    uint64_t leaks;
    uint64_t check_errors;
    uint64_t corruptions_fixed;
    uint64_t leaks_fixed;
    uint64_t image_end_offset;
    uint64_t allocated_clusters;
    uint64_t total_clusters;
    uint64_t fragmented_clusters;
    uint64_t compressed_clusters;
} BlockCheckResult;

/* Raw images have nothing to check (success, all zero). */
gboolean block_check(BlockDev *bs, BlockCheckFix fix, BlockCheckResult *result,
                     GError **error);
/* Grow (raw and qcow2) or shrink (raw only; qcow2 refuses, unlike qemu --shrink). */
gboolean block_truncate(BlockDev *bs, uint64_t size, GError **error);

/* Internal snapshots (qcow2). @name_or_id matches an id first, then a name. */
gboolean block_snapshot_create(BlockDev *bs, const char *name, GError **error);
gboolean block_snapshot_apply(BlockDev *bs, const char *name_or_id, GError **error);
gboolean block_snapshot_delete(BlockDev *bs, const char *name_or_id, GError **error);
/* Array of BlockSnapshotInfo* (empty for raw). */
GPtrArray *block_snapshot_list(BlockDev *bs, GError **error);

/*
 * Writes one whole cluster compressed (qcow2, for convert -c). @offset is
 * cluster aligned, @len is the cluster size or what is left at the end of
 * the image. The cluster must not be allocated yet. Data that does not
 * compress is written normally. Not safe concurrently with other writes.
 */
gboolean block_write_compressed(BlockDev *bs, uint64_t offset, const void *buf,
                                size_t len, GError **error);
/* Cluster size, or 0 for formats without clusters. */
uint32_t block_get_cluster_size(BlockDev *bs);

/*
 * Changes the backing file recorded in the image header (qcow2) without
 * touching data: qemu-img rebase -u. NULL @backing removes it. The tool
 * implements safe rebase by copying the differing clusters first.
 */
gboolean block_change_backing_file(BlockDev *bs, const char *backing, const char *backing_fmt,
                                   GError **error);

/*
 * Copies every extent allocated in @bs (depth 0) into its backing file,
 * reopened read-write for the copy, then (if @empty) makes @bs empty
 * again: qemu-img commit.
 */
gboolean block_commit(BlockDev *bs, gboolean empty, GError **error);

/* "raw" or "qcow2" from the file's first bytes. */
const char *block_probe_format(const uint8_t *buf, size_t len);
/* Creates a raw image of @size bytes (sparse). */
gboolean block_create_raw(const char *path, uint64_t size, GError **error);
/* qemu's rule: @backing relative to the directory of @image unless absolute. */
char *block_resolve_backing_path(const char *image, const char *backing);

#endif
