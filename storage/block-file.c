/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Image files: opening, qemu-compatible locking, whole-buffer I/O with
 * O_DIRECT bounce buffers, and the fault injection of the crash tests.
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "block-internal.h"
#include "vireo/util.h"

/*
 * qemu's permission bytes (block/file-posix.c): a process holding
 * permission i read-locks byte 100 + i; one that does not let others have
 * permission i read-locks byte 200 + i. Using the same bytes makes our
 * locks and qemu's see each other.
 */
#define LOCK_PERM_BASE 100
#define LOCK_SHARED_BASE 200
enum {
    PERM_CONSISTENT_READ,
    PERM_WRITE,
    PERM_WRITE_UNCHANGED,
    PERM_RESIZE,
    PERM_COUNT,
};
static const char *const perm_names[PERM_COUNT] = {
    "consistent read", "write", "write unchanged", "resize",
};

static gint64 fault_remaining = -1;

void block_file_fault_set(int64_t n)
{
    __atomic_store_n(&fault_remaining, n, __ATOMIC_SEQ_CST);
}

int64_t block_file_fault_remaining(void)
{
    return __atomic_load_n(&fault_remaining, __ATOMIC_SEQ_CST);
}

gboolean block_file_fault_hit(void)
{
    gint64 v = __atomic_load_n(&fault_remaining, __ATOMIC_SEQ_CST);

    if (v < 0)
        return FALSE;
    /* Counts down to 0 and stays there: once "crashed", nothing is written. */
    while (v > 0) {
        if (__atomic_compare_exchange_n(&fault_remaining, &v, v - 1, FALSE,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return FALSE;
    }
    return TRUE;
}

void *block_file_buf_alloc(size_t len)
{
    void *p = NULL;

    if (posix_memalign(&p, 4096, MAX(len, 1)) != 0)
        g_error("out of memory allocating %zu bytes", len);
    memset(p, 0, len);
    return p;
}

void block_file_buf_free(void *p)
{
    free(p);
}

BlockFile *block_file_open(const char *path, gboolean read_only, BlockCacheMode cache,
                           GError **error)
{
    int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    autoclose int fd = -1;
    struct stat st;
    BlockFile *f;

    if (cache == BLOCK_CACHE_NONE)
        flags |= O_DIRECT;
    fd = open(path, flags);
    if (fd < 0) {
        int saved = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot open disk image '%s': %s%s", path, g_strerror(saved),
                    saved == EINVAL && cache == BLOCK_CACHE_NONE ?
                    " (the file system may not support O_DIRECT, cache mode none)" : "");
        return NULL;
    }
    if (fstat(fd, &st) < 0) {
        int saved = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot stat disk image '%s': %s", path, g_strerror(saved));
        return NULL;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "disk image '%s' is neither a regular file nor a block device", path);
        return NULL;
    }
    f = g_new0(BlockFile, 1);
    f->path = g_strdup(path);
    f->read_only = read_only;
    f->direct = cache == BLOCK_CACHE_NONE;
    f->unsafe = cache == BLOCK_CACHE_UNSAFE;
    f->is_blockdev = S_ISBLK(st.st_mode);
    /*
     * 4 KiB works for every device and file system we know of; a 512-byte
     * device is simply slower on unaligned bounce paths.
     */
    f->align = f->direct ? 4096 : 1;
    if (f->direct && f->is_blockdev) {
        int lbs = 0;
        if (ioctl(fd, BLKSSZGET, &lbs) == 0 && lbs > 0)
            f->align = MAX((uint32_t)lbs, 512);
    } else if (f->direct) {
        /* Files: ask the file system (statx DIOALIGN, Linux 6.1+). */
        struct statx stx;
        if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
            (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align)
            f->align = MAX(stx.stx_dio_offset_align, stx.stx_dio_mem_align);
    }
    if (f->direct) {
        struct statfs sfs;
        /*
         * tmpfs takes O_DIRECT writes through its buffered path, which
         * io_uring cannot run without blocking, so it hands each one to its
         * io-wq workers, serialised per file: 19k 4 KiB writes/s at depth 1
         * here. The write itself is a copy into memory that never waits for
         * a device, so the engine does it in place (docs/storage.md).
         */
        if (fstatfs(fd, &sfs) == 0 && (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC))
            f->inline_writes = TRUE;
    }
    f->fd = vireo_steal_fd(&fd);
    return f;
}

void block_file_free(BlockFile *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    g_free(f->path);
    g_free(f);
}

static int lock_byte(int fd, int cmd, short type, off_t start)
{
    struct flock fl = {
        .l_whence = SEEK_SET,
        .l_start = start,
        .l_len = 1,
        .l_type = type,
    };

    if (fcntl(fd, cmd, &fl) < 0)
        return -errno;
    if (cmd == F_OFD_GETLK)
        return fl.l_type == F_UNLCK ? 0 : -EAGAIN;
    return 0;
}

gboolean block_file_lock(BlockFile *f, gboolean write, GError **error)
{
    unsigned perm = 1u << PERM_CONSISTENT_READ;
    unsigned shared = (1u << PERM_CONSISTENT_READ) | (1u << PERM_WRITE_UNCHANGED);
    int ret;

    if (write)
        perm |= (1u << PERM_WRITE) | (1u << PERM_WRITE_UNCHANGED) | (1u << PERM_RESIZE);
    /* Take ours first, then look for conflicts: two racing openers both see
     * each other's read locks. */
    for (int i = 0; i < PERM_COUNT; i++) {
        if (perm & (1u << i)) {
            ret = lock_byte(f->fd, F_OFD_SETLK, F_RDLCK, LOCK_PERM_BASE + i);
            if (ret < 0)
                goto fail;
        }
        if (!(shared & (1u << i))) {
            ret = lock_byte(f->fd, F_OFD_SETLK, F_RDLCK, LOCK_SHARED_BASE + i);
            if (ret < 0)
                goto fail;
        }
    }
    for (int i = 0; i < PERM_COUNT; i++) {
        if ((perm & (1u << i)) &&
            lock_byte(f->fd, F_OFD_GETLK, F_WRLCK, LOCK_SHARED_BASE + i) == -EAGAIN) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                        "disk image '%s' is locked: failed to get \"%s\" lock; "
                        "is another process using the image?", f->path, perm_names[i]);
            goto unlock;
        }
        if (!(shared & (1u << i)) &&
            lock_byte(f->fd, F_OFD_GETLK, F_WRLCK, LOCK_PERM_BASE + i) == -EAGAIN) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                        "disk image '%s' is locked: failed to get shared \"%s\" lock; "
                        "is another process using the image?", f->path, perm_names[i]);
            goto unlock;
        }
    }
    f->locked = TRUE;
    return TRUE;

fail:
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot lock disk image '%s': %s",
                f->path, g_strerror(-ret));
unlock:
    {
        /* l_len 0: every byte we may have locked above. */
        struct flock fl = { .l_whence = SEEK_SET, .l_start = 0, .l_len = 0,
                            .l_type = F_UNLCK };
        fcntl(f->fd, F_OFD_SETLK, &fl);
    }
    return FALSE;
}

int64_t block_file_get_size(BlockFile *f)
{
    struct stat st;

    if (f->is_blockdev) {
        uint64_t sz;
        if (ioctl(f->fd, BLKGETSIZE64, &sz) < 0)
            return -errno;
        return sz;
    }
    if (fstat(f->fd, &st) < 0)
        return -errno;
    return st.st_size;
}

int64_t block_file_get_allocated(BlockFile *f)
{
    struct stat st;

    if (fstat(f->fd, &st) < 0)
        return -errno;
    return (int64_t)st.st_blocks * 512;
}

static gboolean is_aligned(BlockFile *f, const void *buf, size_t len, uint64_t offset)
{
    return !f->direct ||
           (((uintptr_t)buf | len | offset) & (f->align - 1)) == 0;
}

/* Plain loop; @buf, @len and @offset already fit the file's alignment. */
static int pread_full(BlockFile *f, void *buf, size_t len, uint64_t offset)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = pread(f->fd, p, len, offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0) {
            memset(p, 0, len);    /* past the end of the file */
            return 0;
        }
        p += n;
        len -= n;
        offset += n;
    }
    return 0;
}

static int pwrite_full(BlockFile *f, const void *buf, size_t len, uint64_t offset)
{
    const uint8_t *p = buf;

    if (block_file_fault_hit())
        return -EIO;
    while (len) {
        ssize_t n = pwrite(f->fd, p, len, offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        p += n;
        len -= n;
        offset += n;
    }
    return 0;
}

int block_file_pread(BlockFile *f, void *buf, size_t len, uint64_t offset)
{
    uint64_t start, end;
    uint8_t *bounce;
    int ret;

    if (is_aligned(f, buf, len, offset))
        return pread_full(f, buf, len, offset);
    start = VIREO_ALIGN_DOWN(offset, (uint64_t)f->align);
    end = VIREO_ALIGN_UP(offset + len, (uint64_t)f->align);
    bounce = block_file_buf_alloc(end - start);
    ret = pread_full(f, bounce, end - start, start);
    if (ret == 0)
        memcpy(buf, bounce + (offset - start), len);
    block_file_buf_free(bounce);
    return ret;
}

/*
 * Unaligned O_DIRECT writes read-modify-write whole blocks. Callers
 * serialise writes to the same block (metadata lock, or single-threaded
 * compressed writes).
 */
int block_file_pwrite(BlockFile *f, const void *buf, size_t len, uint64_t offset)
{
    uint64_t start, end;
    uint8_t *bounce;
    int ret;

    if (is_aligned(f, buf, len, offset))
        return pwrite_full(f, buf, len, offset);
    start = VIREO_ALIGN_DOWN(offset, (uint64_t)f->align);
    end = VIREO_ALIGN_UP(offset + len, (uint64_t)f->align);
    bounce = block_file_buf_alloc(end - start);
    ret = pread_full(f, bounce, end - start, start);
    if (ret == 0) {
        memcpy(bounce + (offset - start), buf, len);
        ret = pwrite_full(f, bounce, end - start, start);
    }
    block_file_buf_free(bounce);
    return ret;
}

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    return n;
}

static gboolean iov_aligned(BlockFile *f, const struct iovec *iov, int iovcnt, uint64_t off)
{
    if (!f->direct)
        return TRUE;
    if (off & (f->align - 1))
        return FALSE;
    for (int i = 0; i < iovcnt; i++)
        if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & (f->align - 1))
            return FALSE;
    return TRUE;
}

int block_file_preadv(BlockFile *f, const struct iovec *iov, int iovcnt, uint64_t offset)
{
    size_t len = iov_total(iov, iovcnt);
    int ret;

    if (iovcnt == 1)
        return block_file_pread(f, iov[0].iov_base, iov[0].iov_len, offset);
    if (iov_aligned(f, iov, iovcnt, offset)) {
        /* preadv may stop at EOF mid-vector; finish element by element then. */
        ssize_t n;
        do {
            n = preadv(f->fd, iov, iovcnt, offset);
        } while (n < 0 && errno == EINTR);
        if (n < 0)
            return -errno;
        if ((size_t)n == len)
            return 0;
        size_t done = 0;
        for (int i = 0; i < iovcnt; i++) {
            if (done + iov[i].iov_len > (size_t)n) {
                size_t skip = n > (ssize_t)done ? n - done : 0;
                ret = block_file_pread(f, (uint8_t *)iov[i].iov_base + skip,
                                       iov[i].iov_len - skip, offset + done + skip);
                if (ret < 0)
                    return ret;
            }
            done += iov[i].iov_len;
        }
        return 0;
    }
    {
        uint8_t *buf = block_file_buf_alloc(len);
        ret = block_file_pread(f, buf, len, offset);
        if (ret == 0)
            iov_from_buf(iov, iovcnt, 0, buf, len);
        block_file_buf_free(buf);
    }
    return ret;
}

int block_file_pwritev(BlockFile *f, const struct iovec *iov, int iovcnt, uint64_t offset)
{
    size_t len = iov_total(iov, iovcnt);
    uint8_t *buf;
    int ret;

    if (iovcnt == 1)
        return block_file_pwrite(f, iov[0].iov_base, iov[0].iov_len, offset);
    if (iov_aligned(f, iov, iovcnt, offset)) {
        if (block_file_fault_hit())
            return -EIO;
        ssize_t n;
        do {
            n = pwritev(f->fd, iov, iovcnt, offset);
        } while (n < 0 && errno == EINTR);
        if (n < 0)
            return -errno;
        if ((size_t)n == len)
            return 0;
        /* Short vectored write: finish the rest as one buffer. */
        buf = block_file_buf_alloc(len - n);
        iov_to_buf(iov, iovcnt, n, buf, len - n);
        ret = pwrite_full(f, buf, len - n, offset + n);
        block_file_buf_free(buf);
        return ret;
    }
    buf = block_file_buf_alloc(len);
    iov_to_buf(iov, iovcnt, 0, buf, len);
    ret = block_file_pwrite(f, buf, len, offset);
    block_file_buf_free(buf);
    return ret;
}

int block_file_sync(BlockFile *f)
{
    if (block_file_fault_hit())
        return -EIO;
    if (f->unsafe)
        return 0;
    if (fdatasync(f->fd) < 0)
        return -errno;
    return 0;
}

int block_file_truncate(BlockFile *f, uint64_t size)
{
    if (f->is_blockdev) {
        int64_t cur = block_file_get_size(f);
        if (cur < 0)
            return cur;
        return (uint64_t)cur >= size ? 0 : -ENOSPC;
    }
    if (block_file_fault_hit())
        return -EIO;
    if (ftruncate(f->fd, size) < 0)
        return -errno;
    return 0;
}

int block_file_discard(BlockFile *f, uint64_t offset, uint64_t len)
{
    if (block_file_fault_hit())
        return -EIO;
    if (f->is_blockdev) {
        uint64_t range[2] = { offset, len };
        if (ioctl(f->fd, BLKDISCARD, range) < 0)
            return -errno;
        return 0;
    }
    if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len) < 0)
        return -errno;
    return 0;
}

/* Writes real zeroes, for file systems without fallocate modes. */
static int write_zero_buffers(BlockFile *f, uint64_t offset, uint64_t len)
{
    size_t chunk = MIN(len, (uint64_t)1 << 20);
    uint8_t *zero = block_file_buf_alloc(chunk);
    int ret = 0;

    while (len && ret == 0) {
        size_t n = MIN(len, (uint64_t)chunk);
        ret = block_file_pwrite(f, zero, n, offset);
        offset += n;
        len -= n;
    }
    block_file_buf_free(zero);
    return ret;
}

int block_file_write_zeroes(BlockFile *f, uint64_t offset, uint64_t len, gboolean unmap)
{
    if (f->is_blockdev) {
        uint64_t range[2] = { offset, len };
        if (block_file_fault_hit())
            return -EIO;
        if (ioctl(f->fd, BLKZEROOUT, range) == 0)
            return 0;
        return write_zero_buffers(f, offset, len);
    }
    if (block_file_fault_hit())
        return -EIO;
    if (unmap &&
        fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len) == 0)
        return 0;
    if (fallocate(f->fd, FALLOC_FL_ZERO_RANGE, offset, len) == 0)
        return 0;
    return write_zero_buffers(f, offset, len);
}
