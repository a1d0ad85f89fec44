/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest RAM in the migration stream: runs of pages in RAM records.
 *
 *   RAM record payload: u64 offset u32 npages u8 encoding data
 *
 * @offset is the byte offset in guest RAM (the memfd), page aligned.
 * Encodings: RAW (npages * 4096 bytes), ZERO (no data: the pages are all
 * zero), ZSTD (one zstd frame that inflates to exactly npages * 4096
 * bytes). A run has at most MIG_RAM_MAX_RUN pages.
 */
#ifndef VIREO_MIGRATION_RAM_H
#define VIREO_MIGRATION_RAM_H

#include <glib.h>
#include <stdint.h>

#include "vireo/migration-stream.h"

#define MIG_PAGE_SIZE 4096u
#define MIG_RAM_MAX_RUN 256u
#define MIG_RAM_RECORD_HEAD 13

typedef enum {
    MIG_RAM_RAW = 0,
    MIG_RAM_ZERO = 1,
    MIG_RAM_ZSTD = 2,
} MigRamEncoding;

typedef struct MigRamStats {
    uint64_t pages;             /* sent with data (raw or compressed) */
    uint64_t zero_pages;
    uint64_t data_bytes;        /* page bytes before compression */
    uint64_t wire_bytes;        /* page bytes after compression */
} MigRamStats;

typedef struct MigRamEncoder MigRamEncoder;

/* @zstd_level 0: no compression. */
MigRamEncoder *mig_ram_encoder_new(int zstd_level);
void mig_ram_encoder_free(MigRamEncoder *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigRamEncoder, mig_ram_encoder_free)

/*
 * Sends @npages pages at RAM offset @offset, read from @host, as runs of
 * zero and data pages. Adds to @stats.
 */
gboolean mig_ram_send(MigRamEncoder *e, MigStream *s, uint64_t offset, const uint8_t *host,
                      uint64_t npages, MigRamStats *stats, GError **error);

typedef struct MigRamDecoder MigRamDecoder;

/*
 * Writes into @ram (@size bytes). With @ram_is_zero the memory starts all
 * zero (a fresh memfd): ZERO runs over pages never written are skipped, so
 * they are neither touched nor allocated.
 */
MigRamDecoder *mig_ram_decoder_new(uint8_t *ram, uint64_t size, gboolean ram_is_zero);
/*
 * Another decoder into @d's RAM, for another thread (multifd channels):
 * it shares @d's record of the pages written (atomic bit operations), so
 * a ZERO run on one channel clears a page another channel wrote in an
 * earlier pass. The caller orders passes (a page is never in two
 * channels' records of one pass); @d must outlive the peer.
 */
MigRamDecoder *mig_ram_decoder_new_peer(const MigRamDecoder *d);
/*
 * Data goes into @memfd, the file @ram maps, by pwrite() instead of
 * through the mapping (much cheaper on RAM never mapped yet; ram.c).
 * Peers made afterwards do the same.
 */
void mig_ram_decoder_set_memfd(MigRamDecoder *d, int memfd);
void mig_ram_decoder_free(MigRamDecoder *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigRamDecoder, mig_ram_decoder_free)

/* Applies one RAM record's payload; every field is checked against the RAM size. */
gboolean mig_ram_decoder_apply(MigRamDecoder *d, const uint8_t *payload, size_t len,
                               GError **error);

/* Whether the page at @p is all zero. */
gboolean mig_ram_page_is_zero(const uint8_t *p);

#endif
