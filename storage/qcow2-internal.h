/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Private to the qcow2 driver (storage/qcow2*.c). The on-disk format is
 * QEMU's docs/interop/qcow2.txt; all fields are big-endian.
 *
 * Locking: Qcow2State.lock protects every field below except the
 * immutable geometry (cluster_bits, l2_bits, ...). It is held for metadata
 * work, including metadata I/O, and dropped for guest data I/O. The
 * caller's thread only ever try-locks it (the fast path), so the event
 * loop never sleeps behind a worker's metadata read or flush.
 */
#ifndef VIREO_STORAGE_QCOW2_INTERNAL_H
#define VIREO_STORAGE_QCOW2_INTERNAL_H

#include "block-internal.h"
#include "vireo/qcow2.h"

#define QCOW2_MAGIC 0x514649fbu        /* "QFI\xfb" */
#define QCOW2_V2_HEADER_LEN 72
#define QCOW2_V3_HEADER_LEN 104
#define QCOW2_MAX_BACKING_NAME 1023    /* qemu's limit */
#define QCOW2_MAX_BACKING_FMT 16
#define QCOW2_MAX_L1_BYTES (32u << 20) /* qemu: QCOW_MAX_L1_SIZE */
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_SNAPSHOT_EXTRA 1024

/* Incompatible, compatible and autoclear feature bits. */
#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)

/* Header extension types. */
#define QCOW2_EXT_END 0
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

/* L1/L2 entry bits. */
#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO (1ull << 0)
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull   /* bits 9-55 */
#define QCOW2_L1E_RESERVED 0x7f000000000001ffull
#define QCOW2_L2E_RESERVED 0x3f000000000001feull  /* standard clusters */

typedef enum {
    QCOW2_CLUSTER_UNALLOCATED,
    QCOW2_CLUSTER_ZERO_PLAIN,    /* zero flag, no host cluster */
    QCOW2_CLUSTER_ZERO_ALLOC,    /* zero flag, host cluster kept */
    QCOW2_CLUSTER_NORMAL,
    QCOW2_CLUSTER_COMPRESSED,
} Qcow2ClusterType;

typedef struct Qcow2Header {
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
} Qcow2Header;

typedef struct Qcow2Extension {
    uint32_t type;
    uint32_t len;
    uint8_t *data;
} Qcow2Extension;

typedef struct Qcow2Snapshot {
    uint64_t l1_table_offset;
    uint32_t l1_size;
    char *id;
    char *name;
    uint32_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t vm_state_size;
    uint64_t disk_size;
    uint64_t icount;            /* G_MAXUINT64: not recorded */
    uint32_t extra_size;        /* as read; we write at least 24 */
} Qcow2Snapshot;

typedef struct Qcow2Cache Qcow2Cache;

/* A guest cluster whose allocation is in flight (copy-on-write running). */
typedef struct Qcow2Busy {
    uint64_t guest_cluster;
    struct Qcow2Busy *next;
} Qcow2Busy;

typedef struct Qcow2State {
    BlockDev *bs;
    BlockFile *file;
    Qcow2Header hdr;
    GPtrArray *extensions;       /* Qcow2Extension*, kept verbatim */
    GMutex lock;
    GCond busy_cond;
    Qcow2Busy *busy;

    /* geometry, immutable after open */
    uint32_t cluster_bits;
    uint32_t cluster_size;
    uint32_t l2_bits;             /* entries per L2 table = 1 << l2_bits */
    uint32_t rcb_bits;            /* refcounts per block = 1 << rcb_bits */
    uint32_t csize_shift;         /* compressed descriptor: sector count position */
    uint64_t csize_mask;
    uint64_t coffset_mask;

    uint64_t *l1;                 /* CPU byte order */
    uint32_t l1_size;
    uint64_t *rc_table;           /* CPU byte order */
    uint32_t rc_table_size;       /* entries */
    Qcow2Cache *l2_cache;
    Qcow2Cache *rc_cache;
    Qcow2Snapshot *snapshots;
    uint32_t nb_snapshots;

    uint64_t free_hint;           /* cluster index where a free search starts */
    uint64_t host_end;            /* bytes: end of the highest cluster in use */
    uint64_t phys_end;            /* bytes: known end of the file's data */
    uint64_t prealloc_end;        /* bytes: file extended (zeroes) up to here */
    GArray *pending_free;         /* Qcow2Range: refcount decrements after a flush */
    uint64_t compressed_cursor;   /* next free byte for packing compressed data */
    gboolean dirty_marked;        /* header dirty bit written by us */
    gboolean lazy;
    gboolean corrupt_reported;
    gboolean read_only;
} Qcow2State;

typedef struct Qcow2Range {
    uint64_t offset;
    uint64_t length;
} Qcow2Range;

/* ---- qcow2.c: header ---- */

/*
 * Parses and validates the fixed header in @buf (the first cluster or
 * less) against @file_size. Pure: the fuzz target calls it directly.
 */
gboolean qcow2_parse_header(const uint8_t *buf, size_t len, uint64_t file_size,
                            Qcow2Header *h, GError **error);
/* Parses the header extensions and the backing file name. */
gboolean qcow2_parse_extensions(const uint8_t *buf, size_t len, const Qcow2Header *h,
                                GPtrArray *exts, char **backing_fmt, char **backing,
                                GError **error);
/* Rewrites the first cluster from q->hdr, q->extensions and the backing
 * name. Caller holds the lock. */
int qcow2_write_header(Qcow2State *q);
/* The first cluster: header, extensions (Qcow2Extension*), backing file name. */
uint8_t *qcow2_build_header(const Qcow2Header *h, GPtrArray *exts, const char *backing,
                            const char *backing_fmt, uint64_t cs, int *err);
void qcow2_extension_free(gpointer p);
/* Writes just the incompatible-features field (dirty/corrupt bits). */
int qcow2_write_incompat(Qcow2State *q);
/* Marks the image corrupt (header bit) after finding broken metadata. */
void qcow2_signal_corruption(Qcow2State *q, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Everything dirty to disk in the crash-safe order; lock held. */
int qcow2_flush_locked(Qcow2State *q);

/* ---- qcow2-cache.c ---- */

Qcow2Cache *qcow2_cache_new(Qcow2State *q, unsigned entries, gboolean is_l2);
void qcow2_cache_free(Qcow2Cache *c);
/* Pinned table for the cluster at @offset, read from disk on a miss. */
int qcow2_cache_get(Qcow2Cache *c, uint64_t offset, uint64_t **table);
/* Pinned zero-filled table for a newly allocated cluster (no read). */
int qcow2_cache_get_empty(Qcow2Cache *c, uint64_t offset, uint64_t **table);
void qcow2_cache_put(Qcow2Cache *c, uint64_t *table);
void qcow2_cache_mark_dirty(Qcow2Cache *c, uint64_t *table);
/* The cached table or NULL, without I/O and without pinning (lock held). */
uint64_t *qcow2_cache_lookup(Qcow2Cache *c, uint64_t offset);
/* Writes the dirty tables (L2: refcounts and a sync first). */
int qcow2_cache_flush(Qcow2Cache *c);
/* Forgets a table whose cluster was freed (must not be pinned). */
void qcow2_cache_discard(Qcow2Cache *c, uint64_t offset);
/* Forgets everything (after metadata was rewritten behind the cache). */
void qcow2_cache_clear(Qcow2Cache *c);
gboolean qcow2_cache_is_dirty(Qcow2Cache *c);

/* ---- qcow2-refcount.c ---- */

int qcow2_refcount_get(Qcow2State *q, uint64_t cluster_index, uint64_t *refcount);
/* Adds @delta to every cluster touched by [offset, offset+length). */
int qcow2_refcount_update(Qcow2State *q, uint64_t offset, uint64_t length, int delta);
/* Allocates @n contiguous clusters with refcount 1; returns the byte offset. */
int64_t qcow2_refcount_alloc(Qcow2State *q, uint64_t n);
/* Frees later, once the references are gone on disk (after the next flush). */
void qcow2_refcount_free_later(Qcow2State *q, uint64_t offset, uint64_t length);
/* Applies the deferred frees; lock held, after a sync. */
int qcow2_refcount_process_pending(Qcow2State *q);
/* Validates and loads the refcount table at open. */
gboolean qcow2_refcount_open(Qcow2State *q, uint64_t file_size, GError **error);
gboolean qcow2_refcount_check(BlockDev *bs, BlockCheckFix fix, BlockCheckResult *res,
                              GError **error);
/* Recomputes every refcount from the metadata and writes a new refcount
 * table and blocks after the end of the image (repair, dirty images). */
gboolean qcow2_refcount_rebuild(Qcow2State *q, GError **error);

/* ---- qcow2-cluster.c ---- */

Qcow2ClusterType qcow2_cluster_type(Qcow2State *q, uint64_t entry);
/* Where the compressed data of an L2 entry lies in the file. */
void qcow2_cluster_compressed_range(Qcow2State *q, uint64_t entry, uint64_t *offset,
                                    uint64_t *len);
/* L2 entry of @guest_offset; @nonblock: -EAGAIN instead of reading the L2
 * table. Lock held. An L2 table that is not there gives entry 0. */
int qcow2_cluster_get_entry(Qcow2State *q, uint64_t guest_offset, gboolean nonblock,
                            uint64_t *entry);
/* Checks an entry's host offset against the image: -EIO if it is wrong. */
int qcow2_cluster_check_entry(Qcow2State *q, uint64_t entry, uint64_t guest_offset);
/* Makes the L2 table of @guest_offset writable (allocating it or copying a
 * shared one) and returns it pinned with the entry's index. Lock held. */
int qcow2_cluster_get_writable_l2(Qcow2State *q, uint64_t guest_offset, uint64_t **table,
                                  unsigned *index);
/* Reads one compressed cluster into @out (cluster_size bytes). No lock. */
int qcow2_cluster_read_compressed(Qcow2State *q, uint64_t entry, uint8_t *out);
/* Compresses @in (cluster_size) into @out; returns the size or -errno. */
int64_t qcow2_cluster_compress(Qcow2State *q, const uint8_t *in, uint8_t *out, size_t out_len);
/* Updates refcounts (and COPIED flags) for everything an L1 table references. */
int qcow2_cluster_update_l1_refcounts(Qcow2State *q, const uint64_t *l1, uint32_t l1_size,
                                      int delta);
/* Sets or clears COPIED flags in the active tables to match refcounts. */
int qcow2_cluster_fix_copied(Qcow2State *q);
int qcow2_cluster_grow_l1(Qcow2State *q, uint32_t min_size);

/* ---- qcow2-snapshot.c ---- */

gboolean qcow2_snapshot_read_table(Qcow2State *q, uint64_t file_size, GError **error);
void qcow2_snapshot_free_table(Qcow2State *q);
gboolean qcow2_snapshot_create(BlockDev *bs, const char *name, GError **error);
gboolean qcow2_snapshot_apply(BlockDev *bs, const char *name_or_id, GError **error);
gboolean qcow2_snapshot_delete(BlockDev *bs, const char *name_or_id, GError **error);
GPtrArray *qcow2_snapshot_list(BlockDev *bs, GError **error);

/* Big-endian helpers. */
static inline uint64_t qcow2_be64(const void *p)
{
    const uint8_t *b = p;
    return ((uint64_t)b[0] << 56) | ((uint64_t)b[1] << 48) | ((uint64_t)b[2] << 40) |
           ((uint64_t)b[3] << 32) | ((uint64_t)b[4] << 24) | ((uint64_t)b[5] << 16) |
           ((uint64_t)b[6] << 8) | b[7];
}
static inline uint32_t qcow2_be32(const void *p)
{
    const uint8_t *b = p;
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}
static inline uint16_t qcow2_be16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)((b[0] << 8) | b[1]);
}
static inline void qcow2_put_be64(void *p, uint64_t v)
{
    uint8_t *b = p;
    for (int i = 0; i < 8; i++)
        b[i] = v >> (56 - 8 * i);
}
static inline void qcow2_put_be32(void *p, uint32_t v)
{
    uint8_t *b = p;
    for (int i = 0; i < 4; i++)
        b[i] = v >> (24 - 8 * i);
}
static inline void qcow2_put_be16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = v >> 8;
    b[1] = v;
}

/* Tables are kept big-endian in the caches, as on disk. */
static inline uint64_t qcow2_table_get(const uint64_t *t, unsigned i)
{
    return GUINT64_FROM_BE(t[i]);
}
static inline void qcow2_table_set(uint64_t *t, unsigned i, uint64_t v)
{
    t[i] = GUINT64_TO_BE(v);
}
static inline uint16_t qcow2_rc_get(const uint64_t *block, unsigned i)
{
    return GUINT16_FROM_BE(((const uint16_t *)block)[i]);
}
static inline void qcow2_rc_set(uint64_t *block, unsigned i, uint16_t v)
{
    ((uint16_t *)block)[i] = GUINT16_TO_BE(v);
}

#endif
