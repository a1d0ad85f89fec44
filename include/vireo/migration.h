/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Live migration, both ends, independent of the machine: the source runs
 * pre-copy (all RAM, then dirty pages until the predicted downtime fits
 * the limit, then stop, the rest, the machine state, END, wait for the
 * ack), the destination reads the stream into RAM and hands the state
 * over. What is machine-specific (dirty logging, stopping the vCPUs,
 * saving and loading device state) comes through ops tables from vmm/.
 *
 * Threads: each end runs its own thread, so neither the event loop nor the
 * vCPUs wait for the network. The ops are called on that thread; they
 * must not block on the event loop while it may be waiting for them (see
 * vmm/migrate.c for how stop_and_save does it). The other functions are
 * for the thread that owns the object (the event loop).
 */
#ifndef VIREO_MIGRATION_H
#define VIREO_MIGRATION_H

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

#include "vireo/migration-channel.h"
#include "vireo/tls.h"

/* QEMU's MigrationStatus names, as query-migrate and MIGRATION report them. */
typedef enum {
    MIG_STATUS_NONE,
    MIG_STATUS_SETUP,
    MIG_STATUS_ACTIVE,
    MIG_STATUS_DEVICE,          /* vCPUs stopped, sending the rest */
    MIG_STATUS_POSTCOPY_ACTIVE, /* the destination runs; the source sends what is left */
    MIG_STATUS_POSTCOPY_PAUSED, /* the link broke after the switch: both wait for a new one */
    MIG_STATUS_POSTCOPY_RECOVER,/* connecting again */
    MIG_STATUS_COMPLETED,
    MIG_STATUS_FAILED,
    MIG_STATUS_CANCELLING,
    MIG_STATUS_CANCELLED,
} MigStatus;

const char *mig_status_name(MigStatus status);

typedef struct MigParams {
    int64_t downtime_limit_ms;  /* QEMU's downtime-limit */
    int64_t max_bandwidth;      /* bytes per second, 0 = no limit */
    /*
     * QEMU's capability multifd: RAM goes over multifd_channels more
     * connections beside the main one (migration-multifd.h); unix: and
     * tcp: only, and never with post-copy.
     */
    gboolean multifd;
    int64_t multifd_channels;
    int zstd_level;             /* 0: no compression (multifd-compression none) */
    /* Auto-converge (QEMU's capability and cpu-throttle-* parameters), percentages. */
    gboolean auto_converge;
    int throttle_initial;
    int throttle_increment;
    int max_throttle;
    int throttle_trigger_threshold; /* dirtied vs sent in a pass that counts as too fast */
} MigParams;

#define MIG_DEFAULT_DOWNTIME_LIMIT_MS 50
#define MIG_DEFAULT_MAX_BANDWIDTH (128 * 1024 * 1024)
#define MIG_DEFAULT_MULTIFD_CHANNELS 2
#define MIG_DEFAULT_ZSTD_LEVEL 1
/*
 * QEMU's throttle figures, but on by default: a guest that outruns the
 * link would otherwise never finish migrating (docs/migration.md).
 */
#define MIG_DEFAULT_AUTO_CONVERGE TRUE
#define MIG_DEFAULT_THROTTLE_INITIAL 20
#define MIG_DEFAULT_THROTTLE_INCREMENT 10
#define MIG_DEFAULT_MAX_THROTTLE 99
#define MIG_DEFAULT_THROTTLE_TRIGGER 50

/* Auto-converge state across the passes of one migration. */
typedef struct MigConverge {
    int high_passes;            /* passes in a row that dirtied too much */
    int percent;                /* current vCPU throttle, 0 = none */
} MigConverge;

/*
 * After a pass that sent @sent_bytes while the guest dirtied @dirty_bytes:
 * the vCPU throttle percentage to apply from now on.
 */
int mig_converge_step(MigConverge *c, const MigParams *p, uint64_t dirty_bytes,
                      uint64_t sent_bytes);

/* Guest RAM: one mapping of the memfd (offsets in the stream are memfd offsets). */
typedef struct MigRam {
    uint8_t *base;
    uint64_t size;
    int memfd;                  /* for SEEK_DATA: holes are never read */
} MigRam;

/*
 * The next run of data in @ram's memfd at or after @pos: [*@data, *@hole),
 * *@hole at most the RAM size. 1: found; 0: none left (the rest is holes,
 * which read as zero); -1: the memfd cannot tell (no SEEK_DATA), the
 * caller decides what that means.
 */
int mig_ram_next_data(const MigRam *ram, off_t pos, off_t *data, off_t *hole);

/* What query-migrate reports. Times in ms, rates in pages/s. */
typedef struct MigInfo {
    MigStatus status;
    int64_t total_time;
    int64_t setup_time;
    int64_t downtime;
    int64_t expected_downtime;
    uint64_t ram_total;
    uint64_t ram_transferred;   /* bytes on the wire, all channels */
    uint64_t multifd_bytes;     /* of which on the multifd channels */
    uint64_t ram_remaining;
    uint64_t ram_normal;        /* pages sent with data */
    uint64_t ram_duplicate;     /* zero pages */
    uint64_t dirty_pages_rate;
    uint64_t dirty_sync_count;
    double mbps;
    char *error_desc;           /* FAILED: why (owned) */
    gboolean postcopy;          /* the destination was let run: the source must not */
    uint64_t postcopy_requests; /* pages the destination asked for */
    int cpu_throttle_percentage;
    gboolean auto_converge;     /* report cpu-throttle-percentage */
} MigInfo;

void mig_info_clear(MigInfo *info);

/* --- source --- */

typedef struct MigSourceOps {
    gboolean (*log_start)(void *opaque, gboolean on, GError **error);
    /* ORs pages dirtied since the last call into @bitmap (a bit per page of RAM). */
    gboolean (*log_sync)(void *opaque, unsigned long *bitmap, GError **error);
    /* Stops the vCPUs and returns the machine state; *@was_running for the resume. */
    GBytes *(*stop_and_save)(void *opaque, gboolean *was_running, GError **error);
    /* Slows the vCPUs to (100 - @percent)% of their time; 0 lets them run. */
    void (*set_throttle)(void *opaque, int percent);
    /* Status changes (for MIGRATION events), in order. */
    void (*status_changed)(void *opaque, MigStatus status);
    /* The thread's last call: COMPLETED, FAILED (with @err) or CANCELLED. */
    void (*finished)(void *opaque, MigStatus status, const GError *err);
} MigSourceOps;

typedef struct MigSource MigSource;

/*
 * Starts the migration thread: connects to @uri (owned afterwards) and
 * sends; with params->multifd, over that many more connections too (the
 * caller has checked that @uri is unix: or tcp:). With @tls (client credentials; a reference is taken) a socket
 * carries TLS (migration-tls.h), also the new connections of post-copy
 * recovery; the destination's certificate must name @tls_hostname, or
 * for tcp: without it the URI's host. Files stay plain, as in QEMU.
 */
MigSource *mig_source_start(const MigParams *params, const MigRam *ram, MigUri *uri,
                            TlsCreds *tls, const char *tls_hostname, const MigSourceOps *ops,
                            void *opaque);
/* Asks the thread to stop; returns at once (status CANCELLING, then CANCELLED). */
void mig_source_cancel(MigSource *src);
/*
 * Switches to post-copy once the run of pages being sent is out (what the
 * pass did not reach yet is sent afterwards): stop, send the state, let the destination run and serve its page faults
 * first while sending the rest. FALSE if the URI has no return path or the
 * migration is not active.
 */
gboolean mig_source_start_postcopy(MigSource *src, GError **error);
/* Whether the destination was let run (a failure then must not resume the source). */
gboolean mig_source_in_postcopy(MigSource *src);
/*
 * Post-copy recovery. A link that breaks after the switch pauses both
 * ends (POSTCOPY_PAUSED) instead of failing: the destination's vCPUs wait
 * for their pages, the source keeps RAM. pause breaks the link on purpose
 * (QMP migrate-pause); resume connects to @uri (owned afterwards), where
 * the destination listens after mig_dest_recover(), and carries on. Both
 * FALSE with @error when the migration is not in the right state.
 */
gboolean mig_source_pause(MigSource *src, GError **error);
gboolean mig_source_resume(MigSource *src, MigUri *uri, GError **error);
void mig_source_get_info(MigSource *src, MigInfo *info);
/* Joins the thread (cancel first to make that quick). */
void mig_source_free(MigSource *src);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigSource, mig_source_free)

/* --- destination --- */

typedef struct MigDestOps {
    /* Loads the machine state (RAM is complete by then). */
    gboolean (*load_state)(void *opaque, const uint8_t *data, size_t len, GError **error);
    /*
     * Post-copy: loads the state (@data is owned now) and runs the VM if
     * @was_running, without waiting (RAM arrives meanwhile, and loading
     * may fault on pages this thread must still receive). A failure there
     * ends the VMM: the source has stopped for good.
     */
    void (*start_postcopy)(void *opaque, GBytes *data, gboolean was_running);
    void (*status_changed)(void *opaque, MigStatus status);
    /*
     * Last call: @err NULL once the stream was read, checked and acked;
     * @was_running tells whether the source was running.
     */
    void (*finished)(void *opaque, gboolean was_running, const GError *err);
} MigDestOps;

typedef struct MigDest MigDest;

/*
 * Starts the receiving thread on @fd (owned): a listening socket when
 * @needs_accept, else the stream itself. A multifd stream's channels are
 * accepted on the same listening socket, as many as it announces. @ram starts all zero. With @tls
 * (server credentials; a reference is taken) the source must speak TLS on
 * a socket, also when it connects again for post-copy recovery.
 */
MigDest *mig_dest_start(const MigRam *ram, int fd, gboolean needs_accept, TlsCreds *tls,
                        const MigDestOps *ops, void *opaque);
void mig_dest_get_info(MigDest *dst, MigInfo *info);
/* Post-copy recovery (see mig_source_pause): @listen_fd is owned afterwards. */
gboolean mig_dest_pause(MigDest *dst, GError **error);
gboolean mig_dest_recover(MigDest *dst, int listen_fd, GError **error);
/* Unblocks the thread if it still waits and joins it. */
void mig_dest_free(MigDest *dst);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigDest, mig_dest_free)

#define MIG_ACK_BYTE 'A'

#endif
