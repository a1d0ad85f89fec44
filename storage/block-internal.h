/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Private to storage/: the BlockDev structure, the driver table, the
 * engine's internal submission calls and the file helpers.
 *
 * Internal I/O helpers return 0 or -errno rather than a GError: their
 * results become request completions (which carry -errno, like virtio-blk
 * status), and the public calls turn them into GErrors with context.
 */
#ifndef VIREO_STORAGE_BLOCK_INTERNAL_H
#define VIREO_STORAGE_BLOCK_INTERNAL_H

#include <stdint.h>
#include <sys/uio.h>

#include "vireo/block.h"

/* ---- files ---- */

typedef struct BlockFile {
    int fd;
    char *path;
    gboolean read_only;
    gboolean direct;        /* O_DIRECT: buffers and offsets must be aligned */
    gboolean unsafe;        /* cache=unsafe: syncs are skipped */
    gboolean is_blockdev;
    uint32_t align;         /* O_DIRECT alignment of offsets, lengths and memory */
    gboolean inline_writes; /* O_DIRECT on tmpfs: a write is a memory copy, done in place */
    gboolean locked;
} BlockFile;

BlockFile *block_file_open(const char *path, gboolean read_only, BlockCacheMode cache,
                           GError **error);
void block_file_free(BlockFile *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlockFile, block_file_free)
/* qemu-compatible OFD locks: write = exclusive writer, else shared reader. */
gboolean block_file_lock(BlockFile *f, gboolean write, GError **error);
/* Size of the file or block device in bytes, or -errno. */
int64_t block_file_get_size(BlockFile *f);
/* Whole-buffer I/O with EINTR/short-transfer handling and O_DIRECT bounce
 * buffers. Reads past the end of the file return zeroes. */
int block_file_pread(BlockFile *f, void *buf, size_t len, uint64_t offset);
int block_file_pwrite(BlockFile *f, const void *buf, size_t len, uint64_t offset);
int block_file_preadv(BlockFile *f, const struct iovec *iov, int iovcnt, uint64_t offset);
int block_file_pwritev(BlockFile *f, const struct iovec *iov, int iovcnt, uint64_t offset);
int block_file_sync(BlockFile *f);
int block_file_truncate(BlockFile *f, uint64_t size);
/* Punches a hole (or zeroes the range on block devices). */
int block_file_discard(BlockFile *f, uint64_t offset, uint64_t len);
/* The range reads as zeroes afterwards; unmap allows deallocation. */
int block_file_write_zeroes(BlockFile *f, uint64_t offset, uint64_t len, gboolean unmap);
int64_t block_file_get_allocated(BlockFile *f);
/* Zero-filled memory aligned for O_DIRECT; free with block_file_buf_free(). */
void *block_file_buf_alloc(size_t len);
void block_file_buf_free(void *p);

/*
 * Fault injection for the crash-consistency tests: after @n more writes
 * (data and metadata) or syncs, every write and sync fails with -EIO,
 * as if the machine had stopped there. n < 0 disables. Also set from the
 * environment variable VIREO_BLOCK_FAULT_AFTER when the engine starts.
 */
void block_file_fault_set(int64_t n);
/* Events left before the fault (-1: disabled); tests count events with it. */
int64_t block_file_fault_remaining(void);
/* TRUE when the write or sync about to happen must fail. */
gboolean block_file_fault_hit(void);

/* ---- engine ---- */

/* Runs on the caller's thread. ret: bytes transferred or -errno. */
typedef void EngineDoneFunc(void *opaque, int64_t ret);
/* Runs on a worker thread; returns what EngineDoneFunc receives. */
typedef int64_t EngineWorkFunc(void *opaque);

/* Data I/O on @f. Reads past EOF are zero-filled. Caller's thread only. */
void block_engine_submit_rw(BlockEngine *e, BlockFile *f, gboolean write, uint64_t offset,
                            const struct iovec *iov, int iovcnt, gboolean fua,
                            EngineDoneFunc *done, void *opaque);
/* Blocking work on a worker thread, completion on the caller's thread. */
void block_engine_submit_work(BlockEngine *e, EngineWorkFunc *work, EngineDoneFunc *done,
                              void *opaque);
/* Delivers @ret to @done from the next process_completions (any thread). */
void block_engine_defer(BlockEngine *e, EngineDoneFunc *done, void *opaque, int64_t ret);
/* Public requests in flight (block_engine_get_in_flight), counted by block.c. */
void block_engine_request_started(BlockEngine *e);
void block_engine_request_finished(BlockEngine *e);
/* TRUE on the thread running this engine's process_completions: a request
 * finished there may call its callback at once instead of deferring it. */
gboolean block_engine_in_completion_context(BlockEngine *e);

/* ---- devices and drivers ---- */

typedef struct BlockRequest {
    BlockDev *bs;
    uint64_t offset;
    uint64_t length;
    const struct iovec *iov;
    int iovcnt;
    unsigned flags;
    BlockCompletionFunc *cb;
    void *opaque;
    int ret;              /* first error of the parts */
    int parts;            /* sub-requests still running (driver use) */
} BlockRequest;

typedef struct BlockDriver {
    const char *name;
    /* bs->file is open and locked; fill bs->size, bs->opaque, bs->backing_*. */
    gboolean (*open)(BlockDev *bs, const BlockOpenOptions *opts, GError **error);
    void (*close)(BlockDev *bs);
    /* Asynchronous, caller's thread; finish with block_request_done(). */
    void (*readv)(BlockDev *bs, BlockRequest *req);
    void (*writev)(BlockDev *bs, BlockRequest *req);
    void (*flush)(BlockDev *bs, BlockRequest *req);
    void (*discard)(BlockDev *bs, BlockRequest *req);
    void (*write_zeroes)(BlockDev *bs, BlockRequest *req);
    /* Synchronous and thread-safe: used by worker threads of images stacked
     * on this one (copy-on-write and reads through a backing chain). */
    int (*preadv_sync)(BlockDev *bs, uint64_t offset, const struct iovec *iov, int iovcnt);
    /* Optional synchronous operations. */
    gboolean (*fill_info)(BlockDev *bs, BlockInfo *info, GError **error);
    gboolean (*get_status)(BlockDev *bs, uint64_t offset, uint64_t length, BlockStatus *st,
                           GError **error);
    gboolean (*check)(BlockDev *bs, BlockCheckFix fix, BlockCheckResult *res,
                      GError **error);
    gboolean (*truncate)(BlockDev *bs, uint64_t size, GError **error);
    gboolean (*snapshot_create)(BlockDev *bs, const char *name, GError **error);
    gboolean (*snapshot_apply)(BlockDev *bs, const char *name_or_id, GError **error);
    gboolean (*snapshot_delete)(BlockDev *bs, const char *name_or_id, GError **error);
    GPtrArray *(*snapshot_list)(BlockDev *bs, GError **error);
    gboolean (*write_compressed)(BlockDev *bs, uint64_t offset, const void *buf, size_t len,
                                 GError **error);
    gboolean (*change_backing)(BlockDev *bs, const char *backing, const char *fmt,
                               GError **error);
    gboolean (*make_empty)(BlockDev *bs, GError **error);
    /* Closes / reopens the backing chain (commit needs the base read-write). */
} BlockDriver;

struct BlockDev {
    const BlockDriver *drv;
    BlockEngine *engine;
    gboolean owns_engine;
    BlockFile *file;
    char *filename;
    uint64_t size;             /* virtual size */
    gboolean read_only;
    gboolean probed_raw;       /* format guessed as raw: guard sector 0 */
    gboolean discard;
    BlockOpenOptions opts;     /* as opened (format and engine not owned) */
    BlockDev *backing;         /* opened chain, read-only */
    char *backing_file;        /* as recorded in the image */
    char *backing_format;
    unsigned chain_depth;      /* 0 for the top */
    void *opaque;              /* driver state */
};

extern const BlockDriver block_driver_raw;
extern const BlockDriver block_driver_qcow2;

/* Ends @req (once all its parts are done): runs the callback on the caller's
 * thread. Safe from any thread. */
void block_request_done(BlockRequest *req, int ret);
/* Opens the backing chain of @bs from bs->backing_file / backing_format. */
gboolean block_open_backing(BlockDev *bs, GError **error);
/* Synchronous, thread-safe read through @bs (any depth); zeroes past its end. */
int block_preadv_sync(BlockDev *bs, uint64_t offset, const struct iovec *iov, int iovcnt);
/* ---- iov.c ---- */

/* Copies @len bytes of an iovec starting at byte @skip into/out of @buf. */
size_t iov_to_buf(const struct iovec *iov, int iovcnt, size_t skip, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, int iovcnt, size_t skip, const void *buf,
                    size_t len);
void iov_memset(const struct iovec *iov, int iovcnt, size_t skip, int c, size_t len);
/* Fills @out (up to @max entries) with the part [skip, skip+len) of @iov. */
int iov_slice(const struct iovec *iov, int iovcnt, size_t skip, size_t len,
              struct iovec *out, int max);

#endif
