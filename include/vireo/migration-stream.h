/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The migration stream: what one vireo-vmm sends another (or writes to a
 * file) to move a VM. Framing only; RAM pages (migration-ram.h) and the
 * state sections (state.h) are payloads.
 *
 *   header:  "VIREOMIG" u32 version u64 ram_size
 *   record:  u8 type u32 len payload[len]
 *   end:     the END record, whose payload is a u64 checksum of every
 *            byte before it (header and records, the END's own type and
 *            length included)
 *
 * All integers are little-endian. The reader checks every length against
 * a per-type bound before it allocates or reads, so a hostile or broken
 * peer gets a clear error, never a crash or a huge allocation.
 *
 * Threads: one stream is used by one thread at a time; only
 * mig_stream_get_bytes() may be read from another.
 */
#ifndef VIREO_MIGRATION_STREAM_H
#define VIREO_MIGRATION_STREAM_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#define MIG_STREAM_MAGIC "VIREOMIG"
#define MIG_STREAM_VERSION 1
/*
 * A migration over several connections (migration-multifd.h): the main
 * channel and every other channel start with this version, so a reader
 * that knows only version 1 refuses it with a clear error. One channel
 * keeps version 1: saved files read the same in both directions.
 */
#define MIG_STREAM_VERSION_MULTIFD 2

typedef enum {
    MIG_RECORD_RAM = 'R',       /* a run of pages (migration-ram.h) */
    MIG_RECORD_STATE = 'S',     /* u8 flags, then machine state sections */
    MIG_RECORD_END = 'E',       /* u64 checksum */
    /*
     * Post-copy: DISCARD runs (u64 offset, u32 npages) name pages the
     * destination holds stale copies of; then POSTCOPY, which is laid out
     * as STATE and lets the destination run; RAM records and END follow.
     */
    MIG_RECORD_DISCARD = 'D',
    MIG_RECORD_POSTCOPY = 'P',
    /*
     * Version MIG_STREAM_VERSION_MULTIFD only (migration-multifd.h):
     * MULTIFD, the main channel's first record, announces the channels;
     * HELLO is every other channel's first record; SYNC ends a pass on
     * such a channel.
     */
    MIG_RECORD_MULTIFD = 'M',
    MIG_RECORD_HELLO = 'H',
    MIG_RECORD_SYNC = 'Y',
} MigRecordType;

/*
 * Post-copy return path, destination to source on the same socket:
 * 'Q' u64 offset u32 npages asks for pages a vCPU or device waits for;
 * the final ack is MIG_ACK_BYTE.
 */
#define MIG_RETURN_REQUEST 'Q'
#define MIG_RETURN_REQUEST_LEN 13
/*
 * Post-copy recovery: on the new connection the destination speaks first,
 * 'B' then a bitmap of the pages it holds (u64 little-endian words, bit i
 * of word w = page 64w + i); the source sends everything else on a new
 * stream (header, RAM records, END) and answers requests as before.
 */
#define MIG_RESUME_BITMAP 'B'
#define MIG_DISCARD_LEN 12

/* MIG_RECORD_STATE flags */
#define MIG_STATE_FLAG_RUNNING 0x01     /* the source VM was running */

#define MIG_STREAM_HEADER_LEN 20        /* magic, u32 version, u64 RAM size */
#define MIG_RECORD_HEADER_LEN 5
#define MIG_STATE_MAX (64u * 1024 * 1024)
#define MIG_RAM_RECORD_MAX (2u * 1024 * 1024 + 64)

typedef struct MigStream MigStream;

typedef struct MigRecord {
    uint8_t type;
    uint32_t len;
    const uint8_t *data;        /* valid until the next read */
} MigRecord;

/* @fd is not owned; it may be a socket, a pipe or a file. */
MigStream *mig_stream_new_writer(int fd);
MigStream *mig_stream_new_reader(int fd);
/*
 * The stream goes through TLS (migration-tls.h: a source's writer, a
 * destination's reader) instead of the fd; @link is borrowed and must
 * outlive the stream's I/O.
 */
typedef struct MigTlsLink MigTlsLink;
void mig_stream_set_tls(MigStream *s, MigTlsLink *link);
void mig_stream_free(MigStream *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigStream, mig_stream_free)

/* The header of version MIG_STREAM_VERSION. */
gboolean mig_stream_write_header(MigStream *s, uint64_t ram_size, GError **error);
gboolean mig_stream_write_header_version(MigStream *s, uint32_t version, uint64_t ram_size,
                                         GError **error);
/* One record whose payload is @head followed by @body (either may be empty). */
gboolean mig_stream_write_record(MigStream *s, MigRecordType type, const void *head,
                                 size_t head_len, const void *body, size_t body_len,
                                 GError **error);
/* The END record with the checksum, then a flush. */
gboolean mig_stream_write_end(MigStream *s, GError **error);
gboolean mig_stream_flush(MigStream *s, GError **error);

/* Accepts versions MIG_STREAM_VERSION and MIG_STREAM_VERSION_MULTIFD. */
gboolean mig_stream_read_header(MigStream *s, uint64_t *ram_size, GError **error);
/* The version read or written, 0 before the header. */
uint32_t mig_stream_get_version(const MigStream *s);
/*
 * The next record. For END the checksum has been verified: an END record
 * is only returned when it matches.
 */
gboolean mig_stream_read_record(MigStream *s, MigRecord *rec, GError **error);

/* Bytes written or read so far (any thread). */
uint64_t mig_stream_get_bytes(const MigStream *s);

/*
 * The stream's 64-bit hash (also used for RAM checksums in tests). The
 * result does not depend on how the data is split into updates.
 */
typedef struct MigHasher {
    uint64_t lane[4];
    uint64_t total;
    uint8_t tail[32];
    unsigned tail_len;
} MigHasher;

void mig_hasher_init(MigHasher *h, uint64_t seed);
void mig_hasher_update(MigHasher *h, const void *data, size_t len);
uint64_t mig_hasher_final(const MigHasher *h);
uint64_t mig_hash(uint64_t seed, const void *data, size_t len);

#endif
