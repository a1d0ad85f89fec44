/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Several connections for one migration (QEMU's "multifd"): the main
 * channel, as without multifd, plus N channels that carry all of RAM,
 * each with its own thread doing zero detection, optional zstd, optional
 * TLS and the writes (source) or the reads and the copies into RAM
 * (destination).
 *
 *   main:       header (version MIG_STREAM_VERSION_MULTIFD), MULTIFD
 *               (u16 channels, session[16]), later STATE and END;
 *               no RAM records
 *   channel i:  header (same version), HELLO (session[16], u16 index,
 *               u16 channels), then RAM records, a SYNC (u64 pass) at
 *               the end of each pass, and END with the channel's own
 *               checksum
 *
 * The destination learns the count from the MULTIFD record and accepts
 * that many more connections on the socket it listens on; a connection
 * whose HELLO does not fit (another session, a bad or repeated index,
 * not a stream at all) is refused with a warning, and the wait goes on
 * until every channel came or MIG_MULTIFD_ACCEPT_TIMEOUT_MS passed.
 *
 * Passes: a page sent in pass k on one channel may be sent again in
 * pass k+1 on another; the older copy must never land last. So every
 * channel ends pass k with a SYNC(k), and on the destination a channel
 * that reads SYNC(k) waits until all channels have read theirs (a
 * barrier) before it applies anything of pass k+1: every record before
 * the SYNC on every channel is in RAM first. Within a pass a page is
 * sent once, so the order between channels does not matter there. The
 * source needs no answer: it has nothing to wait for, the barrier is the
 * destination's. The main channel's STATE is loaded only once every
 * channel has read its END (the last pass is complete) and all agree on
 * the number of passes.
 *
 * Threads: a sender or receiver is driven by the migration thread that
 * made it; _shutdown(), _get_bytes() and _add_stats() may be called from
 * any thread while it exists.
 */
#ifndef VIREO_MIGRATION_MULTIFD_H
#define VIREO_MIGRATION_MULTIFD_H

#include <glib.h>
#include <stdint.h>

#include "vireo/migration-channel.h"
#include "vireo/migration-ram.h"
#include "vireo/migration.h"
#include "vireo/tls.h"

#define MIG_MULTIFD_MAX_CHANNELS 255
#define MIG_MULTIFD_SESSION_LEN 16
#define MIG_MULTIFD_ANNOUNCE_LEN (2 + MIG_MULTIFD_SESSION_LEN)
#define MIG_MULTIFD_HELLO_LEN (MIG_MULTIFD_SESSION_LEN + 2 + 2)
#define MIG_MULTIFD_SYNC_LEN 8
/* Every announced channel must have said hello within this time. */
#define MIG_MULTIFD_ACCEPT_TIMEOUT_MS 30000
/* A connection that says nothing is dropped after this (TLS: its handshake limit). */
#define MIG_MULTIFD_HELLO_TIMEOUT_MS 5000

/* The main channel's MULTIFD record. */
typedef struct MigMultifdAnnounce {
    unsigned channels;
    uint8_t session[MIG_MULTIFD_SESSION_LEN];
} MigMultifdAnnounce;

/* A channel's HELLO record. */
typedef struct MigMultifdHello {
    uint8_t session[MIG_MULTIFD_SESSION_LEN];
    unsigned index;
    unsigned channels;
} MigMultifdHello;

void mig_multifd_announce_encode(const MigMultifdAnnounce *a,
                                 uint8_t out[MIG_MULTIFD_ANNOUNCE_LEN]);
/* A MULTIFD payload; any length but the right one, or 0 channels, is an error. */
gboolean mig_multifd_announce_parse(const uint8_t *data, size_t len, MigMultifdAnnounce *a,
                                    GError **error);
void mig_multifd_hello_encode(const MigMultifdHello *h, uint8_t out[MIG_MULTIFD_HELLO_LEN]);
gboolean mig_multifd_hello_parse(const uint8_t *data, size_t len, MigMultifdHello *h,
                                 GError **error);
/*
 * Whether @h is a channel of @a that has not come yet: @seen has one
 * byte per channel of @a, non-zero once that index said hello. The error
 * says what is wrong (another session, a count that differs, an index
 * out of range or repeated); @seen is not changed.
 */
gboolean mig_multifd_hello_check(const MigMultifdAnnounce *a, const MigMultifdHello *h,
                                 const uint8_t *seen, GError **error);

/* --- source --- */

typedef struct MigMultifdSender MigMultifdSender;

/* @a: the count and the session the main channel announced. */
MigMultifdSender *mig_multifd_sender_new(const MigRam *ram, const MigMultifdAnnounce *a,
                                         int zstd_level);
/*
 * Connects every channel to @uri, one after the other (TLS with @tls,
 * checking the destination's certificate against @hostname), says hello
 * and starts its thread. _shutdown() from another thread breaks it.
 */
gboolean mig_multifd_sender_connect(MigMultifdSender *s, const MigUri *uri, TlsCreds *tls,
                                    const char *hostname, GError **error);
/*
 * Hands pages [@first, @first + @npages) (at most MIG_RAM_MAX_RUN) to
 * whichever channel is free, batched; blocks while all are busy. FALSE
 * once a channel failed (its error) or after _shutdown().
 */
gboolean mig_multifd_sender_queue(MigMultifdSender *s, uint64_t first, uint64_t npages,
                                  GError **error);
/*
 * The end of a pass: every channel sends what it was given, then SYNC
 * with the pass number, and flushes. Returns once all have written it.
 */
gboolean mig_multifd_sender_sync(MigMultifdSender *s, GError **error);
/* The end of the last pass: the same with END instead of SYNC; the threads end. */
gboolean mig_multifd_sender_finish(MigMultifdSender *s, GError **error);
/* Any thread: breaks every connection, made or being made (cancel). */
void mig_multifd_sender_shutdown(MigMultifdSender *s);
/* Any thread: bytes written on all channels so far. */
uint64_t mig_multifd_sender_get_bytes(MigMultifdSender *s);
/* Any thread: adds the channels' page counts to @stats. */
void mig_multifd_sender_add_stats(MigMultifdSender *s, MigRamStats *stats);
/* Shuts down what still runs, joins the threads, closes the connections. */
void mig_multifd_sender_free(MigMultifdSender *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigMultifdSender, mig_multifd_sender_free)

/* --- destination --- */

typedef struct MigMultifdReceiver MigMultifdReceiver;

/*
 * For the channels @a announces, writing into @ram (@size bytes, all zero
 * at first). @on_failure is called from the receiver's threads when one
 * fails (the first time), so that the migration thread stops waiting on
 * the main channel.
 */
MigMultifdReceiver *mig_multifd_receiver_new(const MigMultifdAnnounce *a, uint8_t *ram,
                                             uint64_t size, void (*on_failure)(void *opaque),
                                             void *opaque);
/*
 * Starts a thread that accepts on @listen_fd (borrowed; shut it down to
 * end the wait) until every channel said hello (TLS first with @tls,
 * server credentials; a reference is taken), starting each channel's
 * thread at once. Connections that are not ours are refused with a
 * warning. The migration thread meanwhile reads the main channel, so a
 * source that goes away during the set-up is seen at once.
 */
void mig_multifd_receiver_start(MigMultifdReceiver *r, int listen_fd, TlsCreds *tls);
/* Before the start: the channels write @ram through @memfd (mig_ram_decoder_set_memfd()). */
void mig_multifd_receiver_set_memfd(MigMultifdReceiver *r, int memfd);
/* Waits until every channel read its END: all RAM is in. */
gboolean mig_multifd_receiver_wait(MigMultifdReceiver *r, GError **error);
/*
 * When a channel failed: replaces *@error (what the main channel saw,
 * typically the shutdown that failure caused) with the channel's reason.
 */
void mig_multifd_receiver_explain(MigMultifdReceiver *r, GError **error);
void mig_multifd_receiver_shutdown(MigMultifdReceiver *r);
uint64_t mig_multifd_receiver_get_bytes(MigMultifdReceiver *r);
void mig_multifd_receiver_free(MigMultifdReceiver *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigMultifdReceiver, mig_multifd_receiver_free)

#endif
