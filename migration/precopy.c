/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The source side of pre-copy migration, on its own thread: all RAM once
 * (holes of the memfd skipped: they are zero and the destination's RAM
 * starts zero), then the pages dirtied meanwhile, pass after pass, until
 * sending what is left is predicted to take less than the downtime limit;
 * then stop the VM, send the rest and the machine state, END, and wait for
 * the destination's ack. Only then is the migration complete.
 *
 * With multifd this thread walks RAM as before but hands the runs to the
 * channels' threads (migration-multifd.h), ends each pass with a SYNC on
 * every channel and the last one with their END; the main connection
 * carries the header, the MULTIFD record, the state and its own END.
 */
#include <errno.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vireo/migration-multifd.h"
#include "vireo/migration-ram.h"
#include "vireo/migration-tls.h"
#include "vireo/migration.h"
#include "vireo/util.h"

#define BITS_PER_LONG (8 * sizeof(unsigned long))
#define RATE_WINDOW_NS (100 * 1000 * 1000)
#define ACK_TIMEOUT_MS 30000

struct MigSource {
    MigParams params;
    MigRam ram;
    MigUri *uri;
    TlsCreds *tls;              /* reference, or NULL: no TLS */
    char *tls_hostname;         /* what the destination's certificate must name, or NULL */
    const MigSourceOps *ops;
    void *opaque;
    GThread *thread;
    gint cancel;                /* atomic */
    int fd;                     /* under lock: -1 until connected */
    MigTlsLink *link;           /* TLS under fd, or NULL: set by the thread, under lock */
    unsigned long *dirty;       /* thread only */
    uint64_t nr_pages;
    MigStream *stream;          /* thread only */
    MigMultifdSender *multifd;  /* set and cleared by the thread under lock; or NULL */
    MigRamEncoder *enc;
    MigRamStats ram_stats;
    int64_t rate_start;         /* bandwidth limit window */
    uint64_t rate_bytes;
    gint postcopy;              /* atomic: migrate-start-postcopy was asked for */
    MigConverge converge;       /* thread only */

    GMutex lock;                /* protects info and the return path fields */
    GCond cond;
    MigInfo info;
    int64_t start_ns;
    /* Post-copy return path: its thread queues requests, the sender takes them. */
    GThread *rp_thread;
    GArray *requests;           /* uint64_t pairs: first page, count */
    int rp_state;               /* RP_* */
    int rp_fd;                  /* the stream's socket, read by that thread only */
    /* Post-copy recovery. */
    MigUri *resume_uri;         /* under lock: where to connect again */
    uint64_t bytes_base;        /* thread only: sent on earlier main connections */
    uint64_t multifd_base;      /* thread only: sent on multifd channels already closed */
};

enum { RP_RUNNING, RP_ACKED, RP_CLOSED };

const char *mig_status_name(MigStatus status)
{
    switch (status) {
    case MIG_STATUS_NONE: return "none";
    case MIG_STATUS_SETUP: return "setup";
    case MIG_STATUS_ACTIVE: return "active";
    case MIG_STATUS_DEVICE: return "device";
    case MIG_STATUS_POSTCOPY_ACTIVE: return "postcopy-active";
    case MIG_STATUS_POSTCOPY_PAUSED: return "postcopy-paused";
    case MIG_STATUS_POSTCOPY_RECOVER: return "postcopy-recover";
    case MIG_STATUS_COMPLETED: return "completed";
    case MIG_STATUS_FAILED: return "failed";
    case MIG_STATUS_CANCELLING: return "cancelling";
    case MIG_STATUS_CANCELLED: return "cancelled";
    }
    return "unknown";
}

void mig_info_clear(MigInfo *info)
{
    g_free(info->error_desc);
    memset(info, 0, sizeof(*info));
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static gboolean cancelled(MigSource *src, GError **error)
{
    if (!g_atomic_int_get(&src->cancel))
        return FALSE;
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "migration cancelled");
    return TRUE;
}

static void set_status(MigSource *src, MigStatus status)
{
    g_mutex_lock(&src->lock);
    /* A cancel wins over later progress reports. */
    if (src->info.status == MIG_STATUS_CANCELLING && status != MIG_STATUS_CANCELLED &&
        status != MIG_STATUS_FAILED) {
        g_mutex_unlock(&src->lock);
        return;
    }
    src->info.status = status;
    g_mutex_unlock(&src->lock);
    src->ops->status_changed(src->opaque, status);
}

/* Bytes sent on all connections, for the bandwidth and the progress: thread only. */
static uint64_t sent_bytes(MigSource *src, uint64_t *multifd_bytes)
{
    uint64_t mf = src->multifd_base + (src->multifd ? mig_multifd_sender_get_bytes(src->multifd)
                                                    : 0);

    if (multifd_bytes)
        *multifd_bytes = mf;
    return src->bytes_base + mf + (src->stream ? mig_stream_get_bytes(src->stream) : 0);
}

static void update_progress(MigSource *src, uint64_t remaining_pages)
{
    MigRamStats stats = src->ram_stats;
    uint64_t multifd_bytes, bytes = sent_bytes(src, &multifd_bytes);

    if (src->multifd)
        mig_multifd_sender_add_stats(src->multifd, &stats);
    g_mutex_lock(&src->lock);
    src->info.ram_transferred = bytes;
    src->info.multifd_bytes = multifd_bytes;
    src->info.ram_remaining = remaining_pages * MIG_PAGE_SIZE;
    src->info.ram_normal = stats.pages;
    src->info.ram_duplicate = stats.zero_pages;
    g_mutex_unlock(&src->lock);
}

/* Sleeps as long as the bytes sent in this window exceed max-bandwidth. */
static void throttle(MigSource *src)
{
    int64_t now = now_ns(), elapsed;
    uint64_t bytes = sent_bytes(src, NULL);
    uint64_t allowed;

    if (src->params.max_bandwidth <= 0)
        return;
    elapsed = now - src->rate_start;
    allowed = (uint64_t)src->params.max_bandwidth * elapsed / 1000000000;
    if (elapsed >= RATE_WINDOW_NS) {
        /*
         * A new window. What went over the limit is owed in the next one
         * (multifd channels write what was queued a little later, so
         * their excess shows only then); unused credit is not kept.
         */
        src->rate_start = now;
        src->rate_bytes = MIN(bytes, src->rate_bytes + allowed);
        return;
    }
    if (bytes - src->rate_bytes > allowed) {
        uint64_t need_ns = (bytes - src->rate_bytes) * 1000000000 /
                           (uint64_t)src->params.max_bandwidth;
        if (need_ns > (uint64_t)elapsed)
            g_usleep(MIN(need_ns - elapsed, RATE_WINDOW_NS) / 1000);
    }
}

static gboolean send_pages(MigSource *src, uint64_t first, uint64_t n, GError **error)
{
    if (cancelled(src, error))
        return FALSE;
    if (src->multifd) {
        if (!mig_multifd_sender_queue(src->multifd, first, n, error))
            return FALSE;
    } else if (!mig_ram_send(src->enc, src->stream, first * MIG_PAGE_SIZE,
                             src->ram.base + first * MIG_PAGE_SIZE, n, &src->ram_stats,
                             error)) {
        return FALSE;
    }
    throttle(src);
    return TRUE;
}

/*
 * The end of a pass. With multifd, every channel sends a SYNC once all
 * of the pass is out: the destination applies nothing of the next pass
 * before it has all of this one (migration-multifd.h).
 */
static gboolean end_pass(MigSource *src, GError **error)
{
    return !src->multifd || mig_multifd_sender_sync(src->multifd, error);
}

/* Marks every page with data from @first on (holes are zero on both sides). */
static void mark_data_dirty(MigSource *src, uint64_t first)
{
    off_t pos = first * MIG_PAGE_SIZE, size = src->ram.size;

    while (pos < size) {
        off_t data, hole;
        int found = mig_ram_next_data(&src->ram, pos, &data, &hole);

        if (found == 0)
            return;
        if (found < 0) {
            data = pos;         /* no SEEK_DATA: everything from here */
            hole = size;
        }
        for (uint64_t q = data / MIG_PAGE_SIZE;
             q < MIN((uint64_t)(hole + MIG_PAGE_SIZE - 1) / MIG_PAGE_SIZE, src->nr_pages); q++)
            src->dirty[q / BITS_PER_LONG] |= 1UL << (q % BITS_PER_LONG);
        pos = hole;
    }
}

/* First pass: every page with data. Holes of the memfd are zero: skip them unread. */
static gboolean send_all(MigSource *src, GError **error)
{
    off_t pos = 0, size = src->ram.size;

    while (pos < size) {
        off_t data, hole;
        int found = mig_ram_next_data(&src->ram, pos, &data, &hole);

        if (found == 0)
            break;
        if (found < 0) {
            /* No SEEK_DATA: send everything from here. */
            data = pos;
            hole = size;
        }
        uint64_t last = MIN((uint64_t)(hole + MIG_PAGE_SIZE - 1) / MIG_PAGE_SIZE, src->nr_pages);

        /* Never past the hole: reading it would allocate it. */
        for (uint64_t p = data / MIG_PAGE_SIZE; p < last; p += MIG_RAM_MAX_RUN) {
            uint64_t end = MIN(p + MIG_RAM_MAX_RUN, last);

            if (g_atomic_int_get(&src->postcopy)) {
                /* Switch now: what this pass did not reach goes after the state. */
                mark_data_dirty(src, p);
                return TRUE;
            }
            if (!send_pages(src, p, end - p, error))
                return FALSE;
            update_progress(src, src->nr_pages - end);
        }
        pos = hole;
    }
    return TRUE;
}

static uint64_t count_dirty(MigSource *src)
{
    uint64_t n = 0;

    for (uint64_t i = 0; i < (src->nr_pages + BITS_PER_LONG - 1) / BITS_PER_LONG; i++)
        n += __builtin_popcountl(src->dirty[i]);
    return n;
}

/* Sends every page marked dirty, in runs, clearing the bits. */
static gboolean send_dirty(MigSource *src, GError **error)
{
    uint64_t words = (src->nr_pages + BITS_PER_LONG - 1) / BITS_PER_LONG;
    uint64_t left = count_dirty(src);

    for (uint64_t w = 0; w < words; w++) {
        while (src->dirty[w]) {
            uint64_t first = w * BITS_PER_LONG + __builtin_ctzl(src->dirty[w]);
            uint64_t p = first;

            /* Switch now: the bits still set are what post-copy sends. */
            if (g_atomic_int_get(&src->postcopy))
                return TRUE;

            while (p < src->nr_pages && p - first < MIG_RAM_MAX_RUN &&
                   (src->dirty[p / BITS_PER_LONG] & (1UL << (p % BITS_PER_LONG)))) {
                src->dirty[p / BITS_PER_LONG] &= ~(1UL << (p % BITS_PER_LONG));
                p++;
            }
            if (!send_pages(src, first, p - first, error))
                return FALSE;
            left -= p - first;
            update_progress(src, left);
        }
    }
    return TRUE;
}

static gboolean wait_ack(MigSource *src, int fd, GError **error)
{
    struct timeval tv = { .tv_sec = ACK_TIMEOUT_MS / 1000 };
    uint8_t b;
    ssize_t n;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    do {
        n = read(fd, &b, 1);
    } while (n < 0 && errno == EINTR && !g_atomic_int_get(&src->cancel));
    if (cancelled(src, error))
        return FALSE;
    if (n != 1 || b != MIG_ACK_BYTE) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                    "the destination did not confirm the migration%s%s",
                    n < 0 ? ": " : "", n < 0 ? g_strerror(errno) : "");
        return FALSE;
    }
    return TRUE;
}

/* --- post-copy --- */

static gboolean read_full(int fd, uint8_t *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = read(fd, buf + done, len - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FALSE;
        done += n;
    }
    return TRUE;
}

/* Reads the destination's page requests and its final ack. */
static gpointer return_path_thread(gpointer opaque)
{
    MigSource *src = opaque;
    int state = RP_CLOSED;
    uint8_t msg[MIG_RETURN_REQUEST_LEN];

    while (read_full(src->rp_fd, msg, 1)) {
        uint64_t offset, pages[2];
        uint32_t n;

        if (msg[0] == MIG_ACK_BYTE) {
            state = RP_ACKED;
            break;
        }
        if (msg[0] != MIG_RETURN_REQUEST || !read_full(src->rp_fd, msg + 1, sizeof(msg) - 1))
            break;
        offset = vireo_le_load(msg + 1, 8);
        n = vireo_le_load(msg + 9, 4);
        /* A bad request is a broken peer: stop listening, the sender fails. */
        if (offset % MIG_PAGE_SIZE || n == 0 || n > MIG_RAM_MAX_RUN ||
            offset / MIG_PAGE_SIZE > src->nr_pages || n > src->nr_pages - offset / MIG_PAGE_SIZE)
            break;
        pages[0] = offset / MIG_PAGE_SIZE;
        pages[1] = n;
        g_mutex_lock(&src->lock);
        g_array_append_vals(src->requests, pages, 2);
        src->info.postcopy_requests += n;
        g_mutex_unlock(&src->lock);
    }
    g_mutex_lock(&src->lock);
    src->rp_state = state;
    g_cond_broadcast(&src->cond);
    g_mutex_unlock(&src->lock);
    return NULL;
}

static void clear_dirty(MigSource *src, uint64_t first, uint64_t n)
{
    for (uint64_t p = first; p < first + n; p++)
        src->dirty[p / BITS_PER_LONG] &= ~(1UL << (p % BITS_PER_LONG));
}

/* Answers queued requests, unthrottled and flushed: a vCPU waits for each. */
static gboolean serve_requests(MigSource *src, GError **error)
{
    for (;;) {
        uint64_t first, n;
        int state;

        g_mutex_lock(&src->lock);
        state = src->rp_state;
        if (src->requests->len == 0) {
            g_mutex_unlock(&src->lock);
            if (state == RP_CLOSED) {
                g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                            "the destination's return path broke during post-copy");
                return FALSE;
            }
            return TRUE;
        }
        first = g_array_index(src->requests, uint64_t, 0);
        n = g_array_index(src->requests, uint64_t, 1);
        g_array_remove_range(src->requests, 0, 2);
        g_mutex_unlock(&src->lock);
        /* Sent again even if sent before: it may still sit in a buffer. */
        clear_dirty(src, first, n);
        if (cancelled(src, error) ||
            !mig_ram_send(src->enc, src->stream, first * MIG_PAGE_SIZE,
                          src->ram.base + first * MIG_PAGE_SIZE, n, &src->ram_stats, error) ||
            !mig_stream_flush(src->stream, error))
            return FALSE;
    }
}

/* Small runs in the background, so that a request waits for little. */
#define POSTCOPY_RUN 16

static void start_return_path(MigSource *src, int fd)
{
    g_array_set_size(src->requests, 0);
    src->rp_state = RP_RUNNING;
    g_mutex_lock(&src->lock);
    src->rp_fd = fd;
    g_mutex_unlock(&src->lock);
    src->rp_thread = g_thread_new("migration-rp", return_path_thread, src);
}

/* After the switch: what is still dirty, requests first, then END and the ack. */
static gboolean send_rest(MigSource *src, uint64_t left, GError **error)
{
    uint64_t words = (src->nr_pages + BITS_PER_LONG - 1) / BITS_PER_LONG;
    gboolean acked;

    for (uint64_t w = 0; w < words;) {
        uint64_t first, p;

        if (!serve_requests(src, error))
            return FALSE;
        if (!src->dirty[w]) {
            w++;
            continue;
        }
        first = p = w * BITS_PER_LONG + __builtin_ctzl(src->dirty[w]);
        while (p < src->nr_pages && p - first < POSTCOPY_RUN &&
               (src->dirty[p / BITS_PER_LONG] & (1UL << (p % BITS_PER_LONG))))
            p++;
        clear_dirty(src, first, p - first);
        if (!send_pages(src, first, p - first, error))
            return FALSE;
        left = left > p - first ? left - (p - first) : 0;
        update_progress(src, left);
    }
    if (!serve_requests(src, error) || !mig_stream_write_end(src->stream, error))
        return FALSE;
    /* The destination acks once it has everything; requests meanwhile are in the stream. */
    g_mutex_lock(&src->lock);
    while (src->rp_state == RP_RUNNING && !g_atomic_int_get(&src->cancel))
        g_cond_wait_until(&src->cond, &src->lock, g_get_monotonic_time() + G_TIME_SPAN_SECOND);
    acked = src->rp_state == RP_ACKED;
    g_mutex_unlock(&src->lock);
    if (cancelled(src, error))
        return FALSE;
    if (!acked) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                    "the destination did not confirm the post-copy migration");
        return FALSE;
    }
    return TRUE;
}

/* Drops the broken connection: the return path ends, the stream is forgotten. */
static void drop_link(MigSource *src)
{
    MigTlsLink *link;
    int fd;

    g_mutex_lock(&src->lock);
    fd = src->fd;
    src->fd = -1;
    link = g_steal_pointer(&src->link);
    g_mutex_unlock(&src->lock);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    if (src->rp_thread) {
        g_thread_join(src->rp_thread);
        src->rp_thread = NULL;
    }
    if (fd >= 0)
        close(fd);
    mig_tls_link_free(link);
    if (src->stream) {
        src->bytes_base += mig_stream_get_bytes(src->stream);
        mig_stream_free(src->stream);
        src->stream = NULL;
    }
}

/* The name the destination's certificate must carry. */
static const char *tls_peer_name(MigSource *src, const MigUri *uri)
{
    if (!src->tls_hostname && uri->kind == MIG_CHANNEL_TCP)
        return uri->host;
    return src->tls_hostname;
}

/*
 * TLS on the connection just made to @uri (file: stays plain, as in
 * QEMU): afterwards src->fd and *@fd are the socket the stream code uses.
 */
static gboolean start_tls(MigSource *src, const MigUri *uri, int *fd, GError **error)
{
    MigTlsLink *link;
    int inner;

    if (!src->tls || !mig_uri_is_bidirectional(uri))
        return TRUE;
    link = mig_tls_link_new(src->tls, *fd, tls_peer_name(src, uri), &inner, error);
    if (!link)
        return FALSE;
    g_mutex_lock(&src->lock);
    src->fd = inner;
    src->link = link;
    g_mutex_unlock(&src->lock);
    *fd = inner;
    return TRUE;
}

/*
 * The new link: the destination says which pages it holds, everything
 * else is sent again on a new stream. The fd is published first, so a
 * cancel can break a handshake that hangs.
 */
static gboolean reconnect(MigSource *src, const MigUri *uri, GError **error)
{
    uint64_t words = (src->nr_pages + BITS_PER_LONG - 1) / BITS_PER_LONG;
    g_autofree uint8_t *present = g_malloc(words * 8);
    struct timeval tv = { .tv_sec = ACK_TIMEOUT_MS / 1000 }, none = { 0 };
    uint8_t tag = 0;
    int fd = mig_channel_connect(uri, error);

    if (fd < 0)
        return FALSE;
    g_mutex_lock(&src->lock);
    src->fd = fd;
    g_mutex_unlock(&src->lock);
    if (cancelled(src, error) || !start_tls(src, uri, &fd, error))
        return FALSE;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (!read_full(fd, &tag, 1) || tag != MIG_RESUME_BITMAP || !read_full(fd, present, words * 8)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                    "the destination did not say which pages it has");
        return FALSE;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    for (uint64_t w = 0; w < words; w++)
        src->dirty[w] = ~(unsigned long)vireo_le_load(present + w * 8, 8);
    if (src->nr_pages % BITS_PER_LONG)
        src->dirty[words - 1] &= (1UL << (src->nr_pages % BITS_PER_LONG)) - 1;
    src->stream = mig_stream_new_writer(fd);
    if (src->link)
        mig_stream_set_tls(src->stream, src->link);
    src->rate_start = now_ns();
    src->rate_bytes = sent_bytes(src, NULL);
    start_return_path(src, fd);
    return mig_stream_write_header(src->stream, src->ram.size, error) &&
           mig_stream_flush(src->stream, error);
}

/* POSTCOPY_PAUSED until migrate resume=true gives a link that works, or a cancel. */
static gboolean pause_and_reconnect(MigSource *src, GError **error)
{
    for (;;) {
        g_autoptr(MigUri) uri = NULL;
        g_autoptr(GError) err = NULL;

        drop_link(src);
        set_status(src, MIG_STATUS_POSTCOPY_PAUSED);
        g_mutex_lock(&src->lock);
        while (!src->resume_uri && !g_atomic_int_get(&src->cancel))
            g_cond_wait(&src->cond, &src->lock);
        uri = g_steal_pointer(&src->resume_uri);
        g_mutex_unlock(&src->lock);
        if (cancelled(src, error))
            return FALSE;
        set_status(src, MIG_STATUS_POSTCOPY_RECOVER);
        if (reconnect(src, uri, &err)) {
            set_status(src, MIG_STATUS_POSTCOPY_ACTIVE);
            return TRUE;
        }
        g_warning("post-copy recovery failed: %s", err->message);
        /* Back in POSTCOPY_PAUSED, with the reason: whoever asked sees the attempt failed. */
        g_mutex_lock(&src->lock);
        g_free(src->info.error_desc);
        src->info.error_desc = g_strdup_printf("post-copy recovery failed: %s", err->message);
        g_mutex_unlock(&src->lock);
    }
}

static gboolean run_postcopy(MigSource *src, GBytes *state, gboolean was_running,
                             int64_t stop_start, GError **error)
{
    uint64_t words = (src->nr_pages + BITS_PER_LONG - 1) / BITS_PER_LONG;
    uint64_t left = count_dirty(src);
    uint8_t flags = was_running ? MIG_STATE_FLAG_RUNNING : 0;
    gsize state_len;
    const uint8_t *state_data = g_bytes_get_data(state, &state_len);

    /* Pages dirtied since they were sent: the destination drops its copies. */
    for (uint64_t w = 0; w < words; w++) {
        unsigned long bits = src->dirty[w];

        while (bits) {
            uint64_t first = w * BITS_PER_LONG + __builtin_ctzl(bits), p = first;
            uint8_t rec[MIG_DISCARD_LEN];

            while (p < (w + 1) * BITS_PER_LONG && (bits & (1UL << (p % BITS_PER_LONG)))) {
                bits &= ~(1UL << (p % BITS_PER_LONG));
                p++;
            }
            vireo_le_store(rec, 8, first * MIG_PAGE_SIZE);
            vireo_le_store(rec + 8, 4, p - first);
            if (!mig_stream_write_record(src->stream, MIG_RECORD_DISCARD, rec, sizeof(rec), NULL,
                                         0, error))
                return FALSE;
        }
    }
    if (state_len > MIG_STATE_MAX - 1) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "machine state too large (%zu bytes)",
                    (size_t)state_len);
        return FALSE;
    }
    src->requests = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    start_return_path(src, src->fd);
    if (!mig_stream_write_record(src->stream, MIG_RECORD_POSTCOPY, &flags, 1, state_data,
                                 state_len, error) ||
        !mig_stream_flush(src->stream, error))
        return FALSE;
    /* From here on the destination runs: a failure must not resume the source. */
    g_mutex_lock(&src->lock);
    src->info.postcopy = TRUE;
    src->info.downtime = (now_ns() - stop_start) / 1000000;
    g_mutex_unlock(&src->lock);
    set_status(src, MIG_STATUS_POSTCOPY_ACTIVE);

    for (;;) {
        g_autoptr(GError) err = NULL;

        if (send_rest(src, left, &err)) {
            update_progress(src, 0);
            return TRUE;
        }
        if (cancelled(src, NULL)) {
            g_propagate_error(error, g_steal_pointer(&err));
            return FALSE;
        }
        /* The VM lives on the destination now: wait for a new link, never give up alone. */
        g_warning("post-copy migration paused: %s; migrate with resume=true continues it",
                  err->message);
        if (!pause_and_reconnect(src, error))
            return FALSE;
        left = count_dirty(src);
    }
}

gboolean mig_source_start_postcopy(MigSource *src, GError **error)
{
    MigStatus status;

    g_mutex_lock(&src->lock);
    status = src->info.status;
    g_mutex_unlock(&src->lock);
    /* As QEMU 7.2: a page would have to come on one channel while others still carry it. */
    if (src->params.multifd) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "Postcopy is not yet compatible with multifd");
        return FALSE;
    }
    if (!mig_uri_is_bidirectional(src->uri)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "post-copy needs a return path: migrate over unix: or tcp:");
        return FALSE;
    }
    if (status != MIG_STATUS_SETUP && status != MIG_STATUS_ACTIVE) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "the migration is %s",
                    mig_status_name(status));
        return FALSE;
    }
    g_atomic_int_set(&src->postcopy, 1);
    return TRUE;
}

gboolean mig_source_pause(MigSource *src, GError **error)
{
    gboolean ok;

    g_mutex_lock(&src->lock);
    ok = src->info.status == MIG_STATUS_POSTCOPY_ACTIVE && src->fd >= 0;
    /* Both directions: the sender and the return path notice at once. */
    if (ok)
        shutdown(src->fd, SHUT_RDWR);
    g_mutex_unlock(&src->lock);
    if (!ok)
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "migrate-pause is only for a post-copy migration under way");
    return ok;
}

gboolean mig_source_resume(MigSource *src, MigUri *uri, GError **error)
{
    gboolean ok;

    g_mutex_lock(&src->lock);
    ok = src->info.status == MIG_STATUS_POSTCOPY_PAUSED && !src->resume_uri;
    if (ok) {
        src->resume_uri = uri;
        g_clear_pointer(&src->info.error_desc, g_free);
        g_cond_broadcast(&src->cond);
    }
    g_mutex_unlock(&src->lock);
    if (!ok) {
        mig_uri_free(uri);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "Cannot resume if there is no paused migration");
    }
    return ok;
}

gboolean mig_source_in_postcopy(MigSource *src)
{
    gboolean on;

    g_mutex_lock(&src->lock);
    on = src->info.postcopy;
    g_mutex_unlock(&src->lock);
    return on;
}

static void set_cpu_throttle(MigSource *src, int percent)
{
    /* This thread is the only writer: reading without the lock is fine. */
    if (percent == src->info.cpu_throttle_percentage)
        return;
    g_mutex_lock(&src->lock);
    src->info.cpu_throttle_percentage = percent;
    g_mutex_unlock(&src->lock);
    src->ops->set_throttle(src->opaque, percent);
}

/*
 * Header and MULTIFD record on the main connection, then the channels
 * (migration-multifd.h). The sender is published first, so that a cancel
 * breaks a connection or handshake that hangs.
 */
static gboolean start_multifd(MigSource *src, GError **error)
{
    MigMultifdAnnounce a = { .channels = src->params.multifd_channels };
    uint8_t rec[MIG_MULTIFD_ANNOUNCE_LEN];
    MigMultifdSender *sender;

    /* Tells this migration's channels from anything else that connects there. */
    if (getrandom(a.session, sizeof(a.session), 0) != sizeof(a.session)) {
        for (unsigned i = 0; i < sizeof(a.session); i++)
            a.session[i] = g_random_int();
    }
    mig_multifd_announce_encode(&a, rec);
    if (!mig_stream_write_header_version(src->stream, MIG_STREAM_VERSION_MULTIFD, src->ram.size,
                                         error) ||
        !mig_stream_write_record(src->stream, MIG_RECORD_MULTIFD, rec, sizeof(rec), NULL, 0,
                                 error) ||
        !mig_stream_flush(src->stream, error))
        return FALSE;
    sender = mig_multifd_sender_new(&src->ram, &a, src->params.zstd_level);
    g_mutex_lock(&src->lock);
    src->multifd = sender;
    g_mutex_unlock(&src->lock);
    return !cancelled(src, error) &&
           mig_multifd_sender_connect(sender, src->uri, src->tls, tls_peer_name(src, src->uri),
                                      error);
}

/* Ends the channels' threads and connections; their bytes and pages stay counted. */
static void drop_multifd(MigSource *src)
{
    MigMultifdSender *sender;

    if (!src->multifd)
        return;
    mig_multifd_sender_add_stats(src->multifd, &src->ram_stats);
    src->multifd_base += mig_multifd_sender_get_bytes(src->multifd);
    g_mutex_lock(&src->lock);
    sender = g_steal_pointer(&src->multifd);
    g_mutex_unlock(&src->lock);
    mig_multifd_sender_free(sender);
}

static gboolean run(MigSource *src, GError **error)
{
    int64_t t, pass_start, stop_start;
    uint64_t pass_bytes;
    double bandwidth;           /* bytes per ms */
    g_autoptr(GBytes) state = NULL;
    gboolean was_running = FALSE;
    uint8_t flags;
    gsize state_len;
    const uint8_t *state_data;
    int fd;

    fd = mig_channel_connect(src->uri, error);
    if (fd < 0)
        return FALSE;
    g_mutex_lock(&src->lock);
    src->fd = fd;
    g_mutex_unlock(&src->lock);
    /* A cancel that came while connecting did not see the fd. */
    if (cancelled(src, error) || !start_tls(src, src->uri, &fd, error))
        return FALSE;
    src->stream = mig_stream_new_writer(fd);
    if (src->link)
        mig_stream_set_tls(src->stream, src->link);
    src->rate_start = now_ns();
    if (src->params.multifd ? !start_multifd(src, error)
                            : !mig_stream_write_header(src->stream, src->ram.size, error))
        return FALSE;
    if (!src->ops->log_start(src->opaque, TRUE, error) ||
        !src->ops->log_sync(src->opaque, src->dirty, error))
        return FALSE;
    /* Everything goes in the first pass: what was dirty before does not matter. */
    memset(src->dirty, 0, (src->nr_pages + BITS_PER_LONG - 1) / BITS_PER_LONG * sizeof(long));
    t = now_ns();
    g_mutex_lock(&src->lock);
    src->info.setup_time = (t - src->start_ns) / 1000000;
    g_mutex_unlock(&src->lock);
    set_status(src, MIG_STATUS_ACTIVE);

    pass_start = t;
    pass_bytes = sent_bytes(src, NULL);
    if (!send_all(src, error) || !end_pass(src, error))
        return FALSE;
    for (;;) {
        int64_t now, expected;
        uint64_t dirty, sent;

        if (!src->ops->log_sync(src->opaque, src->dirty, error))
            return FALSE;
        now = now_ns();
        dirty = count_dirty(src);
        sent = sent_bytes(src, NULL) - pass_bytes;
        bandwidth = (double)sent / MAX((now - pass_start) / 1e6, 0.001);
        if (src->params.max_bandwidth > 0)
            bandwidth = MIN(bandwidth, src->params.max_bandwidth / 1000.0);
        /* A pass that sent little says little about the link: assume 1 GB/s at most. */
        if (sent < 1024 * 1024)
            bandwidth = MAX(bandwidth, src->params.max_bandwidth > 0
                                           ? MIN(src->params.max_bandwidth / 1000.0, 1e6)
                                           : 1e6);
        expected = (int64_t)(dirty * MIG_PAGE_SIZE / MAX(bandwidth, 1.0));
        g_mutex_lock(&src->lock);
        src->info.dirty_sync_count++;
        src->info.expected_downtime = expected;
        src->info.dirty_pages_rate = (uint64_t)(dirty * 1e9 / MAX(now - pass_start, 1));
        src->info.mbps = bandwidth * 1000.0 * 8 / 1e6;
        g_mutex_unlock(&src->lock);
        update_progress(src, dirty);
        if (expected <= src->params.downtime_limit_ms || g_atomic_int_get(&src->postcopy))
            break;
        set_cpu_throttle(src, mig_converge_step(&src->converge, &src->params,
                                                dirty * MIG_PAGE_SIZE, sent));
        pass_start = now;
        pass_bytes = sent_bytes(src, NULL);
        if (!send_dirty(src, error) || !end_pass(src, error))
            return FALSE;
    }

    /* Stop and copy. */
    if (cancelled(src, error))
        return FALSE;
    stop_start = now_ns();
    state = src->ops->stop_and_save(src->opaque, &was_running, error);
    if (!state)
        return FALSE;
    set_status(src, MIG_STATUS_DEVICE);
    if (g_atomic_int_get(&src->postcopy)) {
        if (!src->ops->log_sync(src->opaque, src->dirty, error))
            return FALSE;
        return run_postcopy(src, state, was_running, stop_start, error);
    }
    if (!src->ops->log_sync(src->opaque, src->dirty, error) || !send_dirty(src, error))
        return FALSE;
    /* The channels' END: the destination loads the state once it has read them all. */
    if (src->multifd && !mig_multifd_sender_finish(src->multifd, error))
        return FALSE;
    flags = was_running ? MIG_STATE_FLAG_RUNNING : 0;
    state_data = g_bytes_get_data(state, &state_len);
    if (state_len > MIG_STATE_MAX - 1) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "machine state too large (%zu bytes)",
                    (size_t)state_len);
        return FALSE;
    }
    if (!mig_stream_write_record(src->stream, MIG_RECORD_STATE, &flags, 1, state_data, state_len,
                                 error) ||
        !mig_stream_write_end(src->stream, error))
        return FALSE;
    if (mig_uri_is_bidirectional(src->uri) && !wait_ack(src, fd, error))
        return FALSE;
    if (src->uri->kind == MIG_CHANNEL_FILE && fsync(fd) < 0 && errno != EINVAL) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot write '%s': %s", src->uri->path,
                    g_strerror(saved));
        return FALSE;
    }
    g_mutex_lock(&src->lock);
    src->info.downtime = (now_ns() - stop_start) / 1000000;
    g_mutex_unlock(&src->lock);
    update_progress(src, 0);
    return TRUE;
}

static gpointer source_thread(gpointer opaque)
{
    MigSource *src = opaque;
    g_autoptr(GError) err = NULL;
    g_autoptr(GError) log_err = NULL;
    gboolean ok = run(src, &err);
    MigTlsLink *link;
    MigStatus status;
    int fd;

    if (src->stream && !ok)
        update_progress(src, 0);
    if (!ok && src->link)
        mig_tls_link_explain(src->link, &err);
    /* Shut down and joined before finished(): no channel outlives the migration. */
    drop_multifd(src);
    /* Before finished(): a source that resumes must run at full speed. */
    set_cpu_throttle(src, 0);
    src->ops->log_start(src->opaque, FALSE, &log_err);
    g_mutex_lock(&src->lock);
    fd = src->fd;
    src->fd = -1;
    link = g_steal_pointer(&src->link);
    g_mutex_unlock(&src->lock);
    if (src->rp_thread) {
        /* A blocked read() is not woken by close(). */
        shutdown(fd, SHUT_RDWR);
        g_thread_join(src->rp_thread);
        src->rp_thread = NULL;
    }
    if (fd >= 0)
        close(fd);
    mig_tls_link_free(link);
    if (ok)
        status = MIG_STATUS_COMPLETED;
    else if (g_atomic_int_get(&src->cancel))
        status = MIG_STATUS_CANCELLED;
    else
        status = MIG_STATUS_FAILED;
    g_mutex_lock(&src->lock);
    src->info.total_time = (now_ns() - src->start_ns) / 1000000;
    if (status == MIG_STATUS_FAILED)
        src->info.error_desc = g_strdup(err->message);
    g_mutex_unlock(&src->lock);
    set_status(src, status);
    src->ops->finished(src->opaque, status, status == MIG_STATUS_FAILED ? err : NULL);
    return NULL;
}

MigSource *mig_source_start(const MigParams *params, const MigRam *ram, MigUri *uri,
                            TlsCreds *tls, const char *tls_hostname, const MigSourceOps *ops,
                            void *opaque)
{
    MigSource *src = g_new0(MigSource, 1);

    src->params = *params;
    src->ram = *ram;
    src->uri = uri;
    src->tls = tls ? tls_creds_ref(tls) : NULL;
    src->tls_hostname = g_strdup(tls_hostname);
    src->ops = ops;
    src->opaque = opaque;
    src->fd = -1;
    src->nr_pages = ram->size / MIG_PAGE_SIZE;
    src->dirty = g_new0(unsigned long, (src->nr_pages + BITS_PER_LONG - 1) / BITS_PER_LONG + 1);
    src->enc = mig_ram_encoder_new(params->zstd_level);
    src->start_ns = now_ns();
    src->info.status = MIG_STATUS_SETUP;
    src->info.ram_total = ram->size;
    src->info.ram_remaining = ram->size;
    src->info.auto_converge = params->auto_converge;
    g_mutex_init(&src->lock);
    g_cond_init(&src->cond);
    src->ops->status_changed(src->opaque, MIG_STATUS_SETUP);
    src->thread = g_thread_new("migration", source_thread, src);
    return src;
}

void mig_source_cancel(MigSource *src)
{
    g_mutex_lock(&src->lock);
    if (src->info.status == MIG_STATUS_COMPLETED || src->info.status == MIG_STATUS_FAILED ||
        src->info.status == MIG_STATUS_CANCELLED || src->info.status == MIG_STATUS_CANCELLING) {
        g_mutex_unlock(&src->lock);
        return;
    }
    g_atomic_int_set(&src->cancel, 1);
    src->info.status = MIG_STATUS_CANCELLING;
    /* Wakes a thread blocked in write() or in the wait for the ack or a new link. */
    if (src->fd >= 0)
        shutdown(src->fd, SHUT_RDWR);
    if (src->multifd)
        mig_multifd_sender_shutdown(src->multifd);
    g_cond_broadcast(&src->cond);
    g_mutex_unlock(&src->lock);
    src->ops->status_changed(src->opaque, MIG_STATUS_CANCELLING);
}

void mig_source_get_info(MigSource *src, MigInfo *info)
{
    g_mutex_lock(&src->lock);
    *info = src->info;
    info->error_desc = g_strdup(src->info.error_desc);
    if (info->status != MIG_STATUS_COMPLETED && info->status != MIG_STATUS_FAILED &&
        info->status != MIG_STATUS_CANCELLED)
        info->total_time = (now_ns() - src->start_ns) / 1000000;
    g_mutex_unlock(&src->lock);
}

void mig_source_free(MigSource *src)
{
    if (!src)
        return;
    g_thread_join(src->thread);
    if (src->rp_thread)
        g_thread_join(src->rp_thread);
    if (src->requests)
        g_array_unref(src->requests);
    g_cond_clear(&src->cond);
    mig_stream_free(src->stream);
    mig_ram_encoder_free(src->enc);
    mig_uri_free(src->uri);
    mig_uri_free(src->resume_uri);
    tls_creds_unref(src->tls);
    g_free(src->tls_hostname);
    g_free(src->dirty);
    mig_info_clear(&src->info);
    g_mutex_clear(&src->lock);
    g_free(src);
}
