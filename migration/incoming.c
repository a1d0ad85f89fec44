/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The destination side, on its own thread: wait for the source, read RAM
 * records into guest RAM, hand the machine state over, check the END
 * checksum, and only then ack. Nothing the source sends can make this
 * write outside RAM or allocate without bound (stream.c and ram.c check
 * every length).
 */
#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vireo/migration-ram.h"
#include "vireo/migration.h"
#include "vireo/util.h"

struct MigDest {
    MigRam ram;
    const MigDestOps *ops;
    void *opaque;
    int fd;                     /* listening socket or stream */
    gboolean needs_accept;
    int conn;                   /* under lock: the accepted stream, or -1 */
    gboolean closing;           /* under lock */
    GThread *thread;
    MigStream *stream;

    GMutex lock;                /* protects info, conn, closing */
    MigInfo info;
    int64_t start_ns;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void set_status(MigDest *dst, MigStatus status)
{
    g_mutex_lock(&dst->lock);
    dst->info.status = status;
    g_mutex_unlock(&dst->lock);
    dst->ops->status_changed(dst->opaque, status);
}

static gboolean is_socket(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static gboolean receive(MigDest *dst, gboolean *was_running, GError **error)
{
    g_autoptr(MigRamDecoder) dec = mig_ram_decoder_new(dst->ram.base, dst->ram.size, TRUE);
    gboolean have_state = FALSE;
    uint64_t ram_size;
    int fd = dst->fd;

    if (dst->needs_accept) {
        fd = mig_channel_accept(dst->fd, error);
        if (fd < 0)
            return FALSE;
        g_mutex_lock(&dst->lock);
        if (dst->closing) {
            g_mutex_unlock(&dst->lock);
            close(fd);
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "incoming migration cancelled");
            return FALSE;
        }
        dst->conn = fd;
        g_mutex_unlock(&dst->lock);
    }
    g_mutex_lock(&dst->lock);
    dst->start_ns = now_ns();
    g_mutex_unlock(&dst->lock);
    set_status(dst, MIG_STATUS_ACTIVE);
    dst->stream = mig_stream_new_reader(fd);
    if (!mig_stream_read_header(dst->stream, &ram_size, error))
        return FALSE;
    if (ram_size != dst->ram.size) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "the migration stream is for %" G_GUINT64_FORMAT " MiB of RAM, this VM has %"
                    G_GUINT64_FORMAT " MiB", (guint64)(ram_size >> 20),
                    (guint64)(dst->ram.size >> 20));
        return FALSE;
    }
    for (;;) {
        MigRecord rec;

        if (!mig_stream_read_record(dst->stream, &rec, error))
            return FALSE;
        switch (rec.type) {
        case MIG_RECORD_RAM:
            if (have_state) {
                g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                            "migration stream has RAM after the machine state");
                return FALSE;
            }
            if (!mig_ram_decoder_apply(dec, rec.data, rec.len, error))
                return FALSE;
            break;
        case MIG_RECORD_STATE:
            if (have_state || rec.len < 1) {
                g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                            "migration stream has a bad or second machine state section");
                return FALSE;
            }
            *was_running = rec.data[0] & MIG_STATE_FLAG_RUNNING;
            /*
             * Loaded before the END is checked: the VM has not run yet,
             * and a bad checksum still fails the whole migration.
             */
            if (!dst->ops->load_state(dst->opaque, rec.data + 1, rec.len - 1, error))
                return FALSE;
            have_state = TRUE;
            break;
        case MIG_RECORD_END:
            if (!have_state) {
                g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                            "migration stream ended without the machine state");
                return FALSE;
            }
            if (is_socket(fd)) {
                uint8_t ack = MIG_ACK_BYTE;
                ssize_t n;
                do {
                    n = write(fd, &ack, 1);
                } while (n < 0 && errno == EINTR);
                if (n != 1) {
                    g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                                "cannot confirm the migration to the source: %s",
                                g_strerror(n < 0 ? errno : EPIPE));
                    return FALSE;
                }
            }
            return TRUE;
        }
    }
}

static gpointer dest_thread(gpointer opaque)
{
    MigDest *dst = opaque;
    g_autoptr(GError) err = NULL;
    gboolean was_running = FALSE;
    gboolean ok = receive(dst, &was_running, &err);

    g_mutex_lock(&dst->lock);
    dst->info.total_time = (now_ns() - dst->start_ns) / 1000000;
    dst->info.ram_transferred = dst->stream ? mig_stream_get_bytes(dst->stream) : 0;
    if (!ok)
        dst->info.error_desc = g_strdup(err->message);
    g_mutex_unlock(&dst->lock);
    set_status(dst, ok ? MIG_STATUS_COMPLETED : MIG_STATUS_FAILED);
    dst->ops->finished(dst->opaque, was_running, ok ? NULL : err);
    return NULL;
}

MigDest *mig_dest_start(const MigRam *ram, int fd, gboolean needs_accept, const MigDestOps *ops,
                        void *opaque)
{
    MigDest *dst = g_new0(MigDest, 1);

    dst->ram = *ram;
    dst->ops = ops;
    dst->opaque = opaque;
    dst->fd = fd;
    dst->conn = -1;
    dst->needs_accept = needs_accept;
    dst->start_ns = now_ns();
    dst->info.status = MIG_STATUS_SETUP;
    dst->info.ram_total = ram->size;
    g_mutex_init(&dst->lock);
    ops->status_changed(opaque, MIG_STATUS_SETUP);
    dst->thread = g_thread_new("migration-in", dest_thread, dst);
    return dst;
}

void mig_dest_get_info(MigDest *dst, MigInfo *info)
{
    g_mutex_lock(&dst->lock);
    *info = dst->info;
    info->error_desc = g_strdup(dst->info.error_desc);
    if (dst->stream && info->status == MIG_STATUS_ACTIVE)
        info->ram_transferred = mig_stream_get_bytes(dst->stream);
    g_mutex_unlock(&dst->lock);
}

void mig_dest_free(MigDest *dst)
{
    if (!dst)
        return;
    /* Wakes a thread waiting in accept() or read(). */
    g_mutex_lock(&dst->lock);
    dst->closing = TRUE;
    shutdown(dst->fd, SHUT_RDWR);
    if (dst->conn >= 0)
        shutdown(dst->conn, SHUT_RDWR);
    g_mutex_unlock(&dst->lock);
    g_thread_join(dst->thread);
    if (dst->conn >= 0)
        close(dst->conn);
    close(dst->fd);
    mig_stream_free(dst->stream);
    mig_info_clear(&dst->info);
    g_mutex_clear(&dst->lock);
    g_free(dst);
}
