/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qcow2 image creation and format constants. Opening, I/O and the other
 * format operations go through include/vireo/block.h.
 */
#ifndef VIREO_QCOW2_H
#define VIREO_QCOW2_H

#include <glib.h>
#include <stdint.h>

#define QCOW2_MIN_CLUSTER_BITS 12   /* 4 KiB */
#define QCOW2_MAX_CLUSTER_BITS 21   /* 2 MiB */
#define QCOW2_DEFAULT_CLUSTER_SIZE 65536

typedef enum {
    QCOW2_COMPRESSION_ZLIB = 0,
    QCOW2_COMPRESSION_ZSTD = 1,
} Qcow2Compression;

typedef enum {
    QCOW2_PREALLOC_OFF,
    QCOW2_PREALLOC_METADATA,    /* L2 tables for the whole disk */
} Qcow2Prealloc;

typedef struct Qcow2CreateOptions {
    uint64_t size;              /* virtual size in bytes, rounded up to 512 */
    uint32_t cluster_size;      /* 0 = 64 KiB; a power of two, 4 KiB .. 2 MiB */
    int version;                /* 0 or 3 = compat 1.1, 2 = compat 0.10 */
    gboolean lazy_refcounts;    /* version 3 only */
    Qcow2Compression compression_type;  /* zstd needs version 3 */
    const char *backing_file;   /* stored as given, resolved relative to the image */
    const char *backing_format; /* "raw" or "qcow2"; NULL = probe when opened */
    Qcow2Prealloc preallocation;
} Qcow2CreateOptions;

/* Creates (or truncates) @path as an empty qcow2 image. */
gboolean qcow2_create(const char *path, const Qcow2CreateOptions *opts, GError **error);

#endif
