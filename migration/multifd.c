/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Several connections for one migration (migration-multifd.h): the
 * records that set them up, the source's channel threads fed from a
 * queue of page runs, the destination's channel threads and the barrier
 * that keeps passes in order.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vireo/migration-multifd.h"
#include "vireo/migration-stream.h"
#include "vireo/migration-tls.h"
#include "vireo/util.h"

/* A job: runs of pages for one channel, about one full RAM record's worth. */
#define JOB_MAX_PAGES MIG_RAM_MAX_RUN
#define JOB_MAX_RUNS 64
/* Jobs waiting per channel: a channel that finishes one finds the next. */
#define QUEUE_PER_CHANNEL 2
/* How often the accept loop looks at a failure or a shutdown. */
#define ACCEPT_POLL_MS 200

/* --- records --- */

static void session_hex(const uint8_t *session, char out[2 * MIG_MULTIFD_SESSION_LEN + 1])
{
    for (unsigned i = 0; i < MIG_MULTIFD_SESSION_LEN; i++)
        g_snprintf(out + 2 * i, 3, "%02x", session[i]);
}

void mig_multifd_announce_encode(const MigMultifdAnnounce *a,
                                 uint8_t out[MIG_MULTIFD_ANNOUNCE_LEN])
{
    vireo_le_store(out, 2, a->channels);
    memcpy(out + 2, a->session, MIG_MULTIFD_SESSION_LEN);
}

gboolean mig_multifd_announce_parse(const uint8_t *data, size_t len, MigMultifdAnnounce *a,
                                    GError **error)
{
    if (len != MIG_MULTIFD_ANNOUNCE_LEN) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "migration stream: bad MULTIFD section (%zu bytes, expected %u)", len,
                    MIG_MULTIFD_ANNOUNCE_LEN);
        return FALSE;
    }
    a->channels = vireo_le_load(data, 2);
    memcpy(a->session, data + 2, MIG_MULTIFD_SESSION_LEN);
    if (a->channels == 0 || a->channels > MIG_MULTIFD_MAX_CHANNELS) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "migration stream announces %u multifd channels (1 to %u)", a->channels,
                    MIG_MULTIFD_MAX_CHANNELS);
        return FALSE;
    }
    return TRUE;
}

void mig_multifd_hello_encode(const MigMultifdHello *h, uint8_t out[MIG_MULTIFD_HELLO_LEN])
{
    memcpy(out, h->session, MIG_MULTIFD_SESSION_LEN);
    vireo_le_store(out + MIG_MULTIFD_SESSION_LEN, 2, h->index);
    vireo_le_store(out + MIG_MULTIFD_SESSION_LEN + 2, 2, h->channels);
}

gboolean mig_multifd_hello_parse(const uint8_t *data, size_t len, MigMultifdHello *h,
                                 GError **error)
{
    if (len != MIG_MULTIFD_HELLO_LEN) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "bad multifd HELLO section (%zu bytes, expected %u)", len,
                    MIG_MULTIFD_HELLO_LEN);
        return FALSE;
    }
    memcpy(h->session, data, MIG_MULTIFD_SESSION_LEN);
    h->index = vireo_le_load(data + MIG_MULTIFD_SESSION_LEN, 2);
    h->channels = vireo_le_load(data + MIG_MULTIFD_SESSION_LEN + 2, 2);
    if (h->channels == 0 || h->channels > MIG_MULTIFD_MAX_CHANNELS ||
        h->index >= h->channels) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "bad multifd HELLO: channel %u of %u", h->index, h->channels);
        return FALSE;
    }
    return TRUE;
}

gboolean mig_multifd_hello_check(const MigMultifdAnnounce *a, const MigMultifdHello *h,
                                 const uint8_t *seen, GError **error)
{
    if (memcmp(a->session, h->session, MIG_MULTIFD_SESSION_LEN) != 0) {
        char got[2 * MIG_MULTIFD_SESSION_LEN + 1], want[2 * MIG_MULTIFD_SESSION_LEN + 1];

        session_hex(h->session, got);
        session_hex(a->session, want);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "a multifd channel of another migration (session %s, this one is %s)",
                    got, want);
        return FALSE;
    }
    if (h->channels != a->channels || h->index >= a->channels) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "multifd channel %u of %u, but the main channel announced %u", h->index,
                    h->channels, a->channels);
        return FALSE;
    }
    if (seen[h->index]) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "multifd channel %u connected twice", h->index);
        return FALSE;
    }
    return TRUE;
}

/* --- source --- */

typedef struct SendRun {
    uint64_t first;
    uint32_t npages;
} SendRun;

typedef struct SendJob {
    unsigned nruns;
    uint64_t pages;
    SendRun runs[JOB_MAX_RUNS];
} SendJob;

typedef struct SendChannel {
    MigMultifdSender *s;
    unsigned index;
    int sock;                   /* under s->lock: the connection (the link's with TLS), or -1 */
    int inner;                  /* TLS: our end of the link's socketpair, kept open; or -1 */
    MigTlsLink *link;
    MigStream *stream;          /* set under s->lock; then written by the channel's thread */
    MigRamEncoder *enc;         /* the channel's thread */
    MigRamStats stats;          /* under s->lock */
    uint64_t synced;            /* under s->lock: the last pass it wrote SYNC for */
    gboolean ended;             /* under s->lock: END written */
    GThread *thread;
} SendChannel;

struct MigMultifdSender {
    MigRam ram;
    MigMultifdAnnounce announce;
    int zstd_level;
    SendChannel *ch;            /* announce.channels of them */
    SendJob pending;            /* migration thread: the job being filled */

    GMutex lock;                /* protects the fields below and those marked in SendChannel */
    GCond cond;                 /* broadcast on every change of them */
    SendJob *queue;             /* a ring of qcap jobs */
    unsigned qhead, qlen, qcap;
    unsigned busy;              /* channels sending a job */
    uint64_t pass;              /* the SYNC asked for */
    gboolean finishing;         /* END asked for */
    gboolean shut;              /* _shutdown(): everything gives up */
    GError *error;              /* the first channel failure */
};

MigMultifdSender *mig_multifd_sender_new(const MigRam *ram, const MigMultifdAnnounce *a,
                                         int zstd_level)
{
    MigMultifdSender *s = g_new0(MigMultifdSender, 1);

    g_assert(a->channels > 0 && a->channels <= MIG_MULTIFD_MAX_CHANNELS);
    s->ram = *ram;
    s->announce = *a;
    s->zstd_level = zstd_level;
    s->ch = g_new0(SendChannel, a->channels);
    for (unsigned i = 0; i < a->channels; i++) {
        s->ch[i].s = s;
        s->ch[i].index = i;
        s->ch[i].sock = s->ch[i].inner = -1;
    }
    s->qcap = a->channels * QUEUE_PER_CHANNEL;
    s->queue = g_new(SendJob, s->qcap);
    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
    return s;
}

/* Under lock: why waiting is over, if it is. */
static gboolean sender_failed_locked(MigMultifdSender *s, GError **error)
{
    if (s->error) {
        g_propagate_error(error, g_error_copy(s->error));
        return TRUE;
    }
    if (s->shut) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "the multifd channels were shut down");
        return TRUE;
    }
    return FALSE;
}

static gboolean send_job(SendChannel *c, const SendJob *job, MigRamStats *stats, GError **error)
{
    for (unsigned i = 0; i < job->nruns; i++) {
        uint64_t off = job->runs[i].first * MIG_PAGE_SIZE;

        if (!mig_ram_send(c->enc, c->stream, off, c->s->ram.base + off, job->runs[i].npages,
                          stats, error))
            return FALSE;
    }
    return TRUE;
}

static gboolean send_sync(SendChannel *c, uint64_t pass, GError **error)
{
    uint8_t rec[MIG_MULTIFD_SYNC_LEN];

    vireo_le_store(rec, 8, pass);
    return mig_stream_write_record(c->stream, MIG_RECORD_SYNC, rec, sizeof(rec), NULL, 0,
                                   error) &&
           mig_stream_flush(c->stream, error);
}

/*
 * A channel's thread: jobs from the queue while there are any; when the
 * queue is empty and nothing is being sent (the pass is out, see
 * drain()), the SYNC or the END the migration thread asked for.
 */
static gpointer send_thread(gpointer opaque)
{
    SendChannel *c = opaque;
    MigMultifdSender *s = c->s;
    g_autofree SendJob *job = g_new(SendJob, 1);

    g_mutex_lock(&s->lock);
    for (;;) {
        g_autoptr(GError) err = NULL;
        gboolean ok;

        while (!s->shut && !s->error && !s->qlen && c->synced == s->pass && !s->finishing)
            g_cond_wait(&s->cond, &s->lock);
        if (s->shut || s->error)
            break;
        if (s->qlen) {
            MigRamStats stats = { 0 };

            *job = s->queue[s->qhead];
            s->qhead = (s->qhead + 1) % s->qcap;
            s->qlen--;
            s->busy++;
            g_cond_broadcast(&s->cond);         /* room in the queue */
            g_mutex_unlock(&s->lock);
            ok = send_job(c, job, &stats, &err);
            g_mutex_lock(&s->lock);
            s->busy--;
            c->stats.pages += stats.pages;
            c->stats.zero_pages += stats.zero_pages;
            c->stats.data_bytes += stats.data_bytes;
            c->stats.wire_bytes += stats.wire_bytes;
        } else if (c->synced < s->pass) {
            uint64_t pass = s->pass;

            g_mutex_unlock(&s->lock);
            ok = send_sync(c, pass, &err);
            g_mutex_lock(&s->lock);
            if (ok)
                c->synced = pass;
        } else {
            g_mutex_unlock(&s->lock);
            ok = mig_stream_write_end(c->stream, &err);
            g_mutex_lock(&s->lock);
            c->ended = ok;
        }
        g_cond_broadcast(&s->cond);
        if (!ok) {
            /* The TLS explanation may wait for the pump: not under the lock. */
            g_mutex_unlock(&s->lock);
            if (c->link)
                mig_tls_link_explain(c->link, &err);
            g_prefix_error(&err, "multifd channel %u: ", c->index);
            g_mutex_lock(&s->lock);
            if (!s->error)
                s->error = g_steal_pointer(&err);
            g_cond_broadcast(&s->cond);
            break;
        }
        if (c->ended)
            break;
    }
    g_mutex_unlock(&s->lock);
    return NULL;
}

/* The channel's connection: TLS, header and HELLO, then its thread. */
static gboolean channel_start(MigMultifdSender *s, SendChannel *c, int fd, TlsCreds *tls,
                              const char *hostname, const MigUri *uri, GError **error)
{
    MigMultifdHello hello = { .index = c->index, .channels = s->announce.channels };
    uint8_t rec[MIG_MULTIFD_HELLO_LEN];
    MigStream *stream;

    if (tls) {
        c->link = mig_tls_link_new(tls, fd, hostname, &c->inner, error);
        if (!c->link)
            return FALSE;
    }
    stream = mig_stream_new_writer(c->link ? c->inner : fd);
    if (c->link)
        mig_stream_set_tls(stream, c->link);
    g_mutex_lock(&s->lock);
    c->stream = stream;
    g_mutex_unlock(&s->lock);
    memcpy(hello.session, s->announce.session, MIG_MULTIFD_SESSION_LEN);
    mig_multifd_hello_encode(&hello, rec);
    if (!mig_stream_write_header_version(stream, MIG_STREAM_VERSION_MULTIFD, s->ram.size,
                                         error) ||
        !mig_stream_write_record(stream, MIG_RECORD_HELLO, rec, sizeof(rec), NULL, 0, error) ||
        !mig_stream_flush(stream, error)) {
        if (c->link)
            mig_tls_link_explain(c->link, error);
        return FALSE;
    }
    c->enc = mig_ram_encoder_new(s->zstd_level);
    c->thread = g_thread_new("migration-mfd", send_thread, c);
    g_debug("multifd channel %u of %u connected%s", c->index, s->announce.channels,
            uri->kind == MIG_CHANNEL_TCP ? " (tcp)" : "");
    return TRUE;
}

gboolean mig_multifd_sender_connect(MigMultifdSender *s, const MigUri *uri, TlsCreds *tls,
                                    const char *hostname, GError **error)
{
    for (unsigned i = 0; i < s->announce.channels; i++) {
        SendChannel *c = &s->ch[i];
        gboolean shut;
        int fd = mig_channel_connect(uri, error);

        if (fd < 0) {
            g_prefix_error(error, "multifd channel %u: ", i);
            return FALSE;
        }
        /* Published first: a shutdown breaks a handshake that hangs. */
        g_mutex_lock(&s->lock);
        c->sock = fd;
        shut = s->shut;
        if (shut)
            shutdown(fd, SHUT_RDWR);
        g_mutex_unlock(&s->lock);
        if (shut) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                        "the multifd channels were shut down");
            return FALSE;
        }
        if (!channel_start(s, c, fd, tls, hostname, uri, error)) {
            g_prefix_error(error, "multifd channel %u: ", i);
            return FALSE;
        }
    }
    return TRUE;
}

static gboolean submit(MigMultifdSender *s, GError **error)
{
    gboolean failed;

    if (!s->pending.nruns)
        return TRUE;
    g_mutex_lock(&s->lock);
    while (!s->shut && !s->error && s->qlen == s->qcap)
        g_cond_wait(&s->cond, &s->lock);
    failed = sender_failed_locked(s, error);
    if (!failed) {
        s->queue[(s->qhead + s->qlen) % s->qcap] = s->pending;
        s->qlen++;
        g_cond_broadcast(&s->cond);
    }
    g_mutex_unlock(&s->lock);
    s->pending.nruns = 0;
    s->pending.pages = 0;
    return !failed;
}

gboolean mig_multifd_sender_queue(MigMultifdSender *s, uint64_t first, uint64_t npages,
                                  GError **error)
{
    SendJob *job = &s->pending;

    g_assert(npages > 0 && npages <= MIG_RAM_MAX_RUN);
    if ((job->nruns == JOB_MAX_RUNS || job->pages + npages > JOB_MAX_PAGES) &&
        !submit(s, error))
        return FALSE;
    job->runs[job->nruns].first = first;
    job->runs[job->nruns].npages = npages;
    job->nruns++;
    job->pages += npages;
    return job->pages < JOB_MAX_PAGES || submit(s, error);
}

/* Everything queued is sent (in the channels' buffers, not yet flushed). Returns locked. */
static gboolean drain(MigMultifdSender *s, GError **error)
{
    if (!submit(s, error)) {
        g_mutex_lock(&s->lock);
        return FALSE;
    }
    g_mutex_lock(&s->lock);
    while (!s->shut && !s->error && (s->qlen || s->busy))
        g_cond_wait(&s->cond, &s->lock);
    return !sender_failed_locked(s, error);
}

gboolean mig_multifd_sender_sync(MigMultifdSender *s, GError **error)
{
    gboolean ok = drain(s, error);

    if (ok) {
        s->pass++;
        g_cond_broadcast(&s->cond);
        for (unsigned i = 0; ok && i < s->announce.channels;) {
            if (s->ch[i].synced == s->pass) {
                i++;
                continue;
            }
            g_cond_wait(&s->cond, &s->lock);
            ok = !sender_failed_locked(s, error);
        }
    }
    g_mutex_unlock(&s->lock);
    return ok;
}

gboolean mig_multifd_sender_finish(MigMultifdSender *s, GError **error)
{
    gboolean ok = drain(s, error);

    if (ok) {
        s->finishing = TRUE;
        g_cond_broadcast(&s->cond);
        for (unsigned i = 0; ok && i < s->announce.channels;) {
            if (s->ch[i].ended) {
                i++;
                continue;
            }
            g_cond_wait(&s->cond, &s->lock);
            ok = !sender_failed_locked(s, error);
        }
    }
    g_mutex_unlock(&s->lock);
    return ok;
}

void mig_multifd_sender_shutdown(MigMultifdSender *s)
{
    g_mutex_lock(&s->lock);
    s->shut = TRUE;
    /* The raw socket also under TLS: its shutdown ends the session's I/O and its pump. */
    for (unsigned i = 0; i < s->announce.channels; i++) {
        if (s->ch[i].sock >= 0)
            shutdown(s->ch[i].sock, SHUT_RDWR);
    }
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
}

uint64_t mig_multifd_sender_get_bytes(MigMultifdSender *s)
{
    uint64_t bytes = 0;

    g_mutex_lock(&s->lock);
    for (unsigned i = 0; i < s->announce.channels; i++) {
        if (s->ch[i].stream)
            bytes += mig_stream_get_bytes(s->ch[i].stream);
    }
    g_mutex_unlock(&s->lock);
    return bytes;
}

void mig_multifd_sender_add_stats(MigMultifdSender *s, MigRamStats *stats)
{
    g_mutex_lock(&s->lock);
    for (unsigned i = 0; i < s->announce.channels; i++) {
        stats->pages += s->ch[i].stats.pages;
        stats->zero_pages += s->ch[i].stats.zero_pages;
        stats->data_bytes += s->ch[i].stats.data_bytes;
        stats->wire_bytes += s->ch[i].stats.wire_bytes;
    }
    g_mutex_unlock(&s->lock);
}

void mig_multifd_sender_free(MigMultifdSender *s)
{
    if (!s)
        return;
    mig_multifd_sender_shutdown(s);
    for (unsigned i = 0; i < s->announce.channels; i++) {
        SendChannel *c = &s->ch[i];

        if (c->thread)
            g_thread_join(c->thread);
        mig_stream_free(c->stream);
        mig_ram_encoder_free(c->enc);
        /* The link owns the socket once it exists. */
        if (c->link)
            mig_tls_link_free(c->link);
        else if (c->sock >= 0)
            close(c->sock);
        if (c->inner >= 0)
            close(c->inner);
    }
    g_clear_error(&s->error);
    g_cond_clear(&s->cond);
    g_mutex_clear(&s->lock);
    g_free(s->queue);
    g_free(s->ch);
    g_free(s);
}

/* --- destination --- */

typedef struct RecvChannel {
    MigMultifdReceiver *r;
    unsigned index;
    int sock;                   /* the connection (the link's with TLS) */
    int inner;                  /* TLS: our end of the link's socketpair, kept open; or -1 */
    MigTlsLink *link;
    MigStream *stream;
    MigRamDecoder *dec;
    uint64_t pass;              /* under r->lock: the last SYNC read */
    GThread *thread;
} RecvChannel;

struct MigMultifdReceiver {
    MigMultifdAnnounce announce;
    MigRamDecoder *dec;         /* owns the record of pages written, which channels share */
    uint64_t ram_size;
    void (*on_failure)(void *opaque);
    void *opaque;
    uint8_t *seen;              /* accept thread: a byte per index, set at its hello */
    unsigned connected;         /* accept thread */
    int listen_fd;              /* borrowed */
    TlsCreds *tls;              /* reference, or NULL */
    GThread *accept_thread;

    GMutex lock;                /* protects the fields below and ch[] */
    GCond cond;                 /* broadcast on every change of them */
    RecvChannel **ch;           /* by index, NULL until it said hello */
    int pending;                /* a connection being looked at, or -1 */
    unsigned arrived;           /* channels waiting at the barrier */
    uint64_t released;          /* the last pass every channel has completed */
    unsigned ended;             /* channels that read their END */
    gboolean shut;
    GError *error;              /* the first channel failure */
};

void mig_multifd_receiver_set_memfd(MigMultifdReceiver *r, int memfd)
{
    mig_ram_decoder_set_memfd(r->dec, memfd);
}

MigMultifdReceiver *mig_multifd_receiver_new(const MigMultifdAnnounce *a, uint8_t *ram,
                                             uint64_t size, void (*on_failure)(void *opaque),
                                             void *opaque)
{
    MigMultifdReceiver *r = g_new0(MigMultifdReceiver, 1);

    g_assert(a->channels > 0 && a->channels <= MIG_MULTIFD_MAX_CHANNELS);
    r->announce = *a;
    r->dec = mig_ram_decoder_new(ram, size, TRUE);
    r->ram_size = size;
    r->on_failure = on_failure;
    r->opaque = opaque;
    r->seen = g_new0(uint8_t, a->channels);
    r->ch = g_new0(RecvChannel *, a->channels);
    r->pending = -1;
    g_mutex_init(&r->lock);
    g_cond_init(&r->cond);
    return r;
}

/* From a channel's thread: the migration fails; the first reason is kept. */
static void receiver_fail(MigMultifdReceiver *r, GError *err)
{
    gboolean first;

    g_mutex_lock(&r->lock);
    first = !r->error && !r->shut;
    if (first)
        r->error = g_steal_pointer(&err);
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
    g_clear_error(&err);
    if (first && r->on_failure)
        r->on_failure(r->opaque);
}

/*
 * SYNC(k): this channel has everything of pass k; wait until every
 * channel has, so that nothing of pass k+1 lands before an older copy
 * of the same page still on its way on another channel.
 */
static gboolean barrier(RecvChannel *c, const MigRecord *rec, GError **error)
{
    MigMultifdReceiver *r = c->r;
    uint64_t pass;
    gboolean ok;

    if (rec->len != MIG_MULTIFD_SYNC_LEN) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "bad SYNC section (%u bytes)", rec->len);
        return FALSE;
    }
    pass = vireo_le_load(rec->data, 8);
    g_mutex_lock(&r->lock);
    if (pass != c->pass + 1) {
        g_mutex_unlock(&r->lock);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "SYNC for pass %" G_GUINT64_FORMAT " after pass %" G_GUINT64_FORMAT,
                    (guint64)pass, (guint64)c->pass);
        return FALSE;
    }
    c->pass = pass;
    if (++r->arrived == r->announce.channels) {
        r->arrived = 0;
        r->released = pass;
        g_cond_broadcast(&r->cond);
    }
    /* A channel that ended will never arrive: this barrier cannot complete. */
    while (r->released < pass && !r->error && !r->shut && !r->ended)
        g_cond_wait(&r->cond, &r->lock);
    ok = r->released >= pass;
    if (!ok && !r->error && !r->shut)
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "another channel ended before pass %" G_GUINT64_FORMAT, (guint64)pass);
    else if (!ok)
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "given up");
    g_mutex_unlock(&r->lock);
    return ok;
}

static gpointer recv_thread(gpointer opaque)
{
    RecvChannel *c = opaque;
    MigMultifdReceiver *r = c->r;
    g_autoptr(GError) err = NULL;

    for (;;) {
        MigRecord rec;

        if (!mig_stream_read_record(c->stream, &rec, &err))
            break;
        if (rec.type == MIG_RECORD_RAM) {
            if (!mig_ram_decoder_apply(c->dec, rec.data, rec.len, &err))
                break;
        } else if (rec.type == MIG_RECORD_SYNC) {
            if (!barrier(c, &rec, &err))
                break;
        } else if (rec.type == MIG_RECORD_END) {
            g_mutex_lock(&r->lock);
            r->ended++;
            g_cond_broadcast(&r->cond);
            g_mutex_unlock(&r->lock);
            return NULL;
        } else {
            g_set_error(&err, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "unexpected '%c' section", rec.type);
            break;
        }
    }
    if (c->link)
        mig_tls_link_explain(c->link, &err);
    g_prefix_error(&err, "multifd channel %u: ", c->index);
    receiver_fail(r, g_steal_pointer(&err));
    return NULL;
}

/* A plain channel's first bytes: the header and the HELLO record. */
#define HELLO_BYTES (MIG_STREAM_HEADER_LEN + MIG_RECORD_HEADER_LEN + MIG_MULTIFD_HELLO_LEN)
#define HELLO_POLL_US (10 * 1000)

/*
 * A connection that says nothing, or dribbles, must not hold the real
 * channels up for long: within MIG_MULTIFD_HELLO_TIMEOUT_MS, the first
 * byte (TLS: the handshake has a limit of its own from there) or, plain,
 * the whole header and HELLO (or the end of the connection), so that
 * reading them afterwards does not wait.
 */
static gboolean wait_hello(int fd, gboolean tls, GError **error)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)MIG_MULTIFD_HELLO_TIMEOUT_MS * 1000;
    uint8_t peek[HELLO_BYTES];
    ssize_t got = 0;

    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
        gint64 left = deadline - g_get_monotonic_time();
        int n = left > 0 ? poll(&p, 1, left / 1000 + 1) : 0;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (tls || (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
            return TRUE;        /* what is wrong, if anything, the reading says */
        got = recv(fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
        if (got < 0 || got == (ssize_t)sizeof(peek))
            return TRUE;
        /* What cannot become a HELLO is refused now, not in 5 s. */
        if (memcmp(peek, MIG_STREAM_MAGIC, MIN((size_t)got, 8)) != 0) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "not a vireo migration stream (bad magic)");
            return FALSE;
        }
        if (got >= 12 && vireo_le_load(peek + 8, 4) != MIG_STREAM_VERSION_MULTIFD) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "a stream of version %u, not a multifd channel",
                        (unsigned)vireo_le_load(peek + 8, 4));
            return FALSE;
        }
        /* Readable but short: poll() would say so again at once. */
        g_usleep(HELLO_POLL_US);
    }
    if (got > 0)
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                    "a connection that sent %zd bytes in %d s, no multifd HELLO", got,
                    MIG_MULTIFD_HELLO_TIMEOUT_MS / 1000);
    else
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "a connection that said nothing for %d s",
                    MIG_MULTIFD_HELLO_TIMEOUT_MS / 1000);
    return FALSE;
}

/* Reads and checks a channel's header and HELLO; fills @c (stream, link) as it goes. */
static gboolean read_hello(MigMultifdReceiver *r, RecvChannel *c, TlsCreds *tls,
                           MigMultifdHello *hello, GError **error)
{
    uint64_t ram_size;
    MigRecord rec;

    if (tls) {
        c->link = mig_tls_link_new(tls, c->sock, NULL, &c->inner, error);
        if (!c->link)
            return FALSE;
    }
    c->stream = mig_stream_new_reader(c->link ? c->inner : c->sock);
    if (c->link)
        mig_stream_set_tls(c->stream, c->link);
    if (!mig_stream_read_header(c->stream, &ram_size, error))
        return FALSE;
    if (mig_stream_get_version(c->stream) != MIG_STREAM_VERSION_MULTIFD) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "a stream of version %u, not a multifd channel",
                    mig_stream_get_version(c->stream));
        return FALSE;
    }
    if (ram_size != r->ram_size) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "a multifd channel for another RAM size");
        return FALSE;
    }
    if (!mig_stream_read_record(c->stream, &rec, error))
        return FALSE;
    if (rec.type != MIG_RECORD_HELLO) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "a stream that starts with '%c', not a multifd HELLO", rec.type);
        return FALSE;
    }
    return mig_multifd_hello_parse(rec.data, rec.len, hello, error) &&
           mig_multifd_hello_check(&r->announce, hello, r->seen, error);
}

static void channel_free(RecvChannel *c)
{
    if (!c)
        return;
    mig_stream_free(c->stream);
    mig_ram_decoder_free(c->dec);
    if (c->link)
        mig_tls_link_free(c->link);
    else if (c->sock >= 0)
        close(c->sock);
    if (c->inner >= 0)
        close(c->inner);
    g_free(c);
}

/* A new connection (@fd, owned): one of ours gets its thread, anything else is refused. */
static gboolean take_channel(MigMultifdReceiver *r, int fd, TlsCreds *tls, GError **error)
{
    RecvChannel *c = g_new0(RecvChannel, 1);
    MigMultifdHello hello;
    gboolean ok;

    c->r = r;
    c->sock = fd;
    c->inner = -1;
    g_mutex_lock(&r->lock);
    r->pending = fd;
    if (r->shut)
        shutdown(fd, SHUT_RDWR);
    g_mutex_unlock(&r->lock);
    ok = wait_hello(fd, tls != NULL, error) && read_hello(r, c, tls, &hello, error);
    g_mutex_lock(&r->lock);
    r->pending = -1;
    if (ok && !r->shut) {
        c->index = hello.index;
        c->dec = mig_ram_decoder_new_peer(r->dec);
        r->ch[hello.index] = c;
    }
    g_mutex_unlock(&r->lock);
    if (!ok) {
        channel_free(c);
        return FALSE;
    }
    if (!c->dec) {
        channel_free(c);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "incoming migration cancelled");
        return FALSE;
    }
    r->seen[hello.index] = 1;
    r->connected++;
    c->thread = g_thread_new("migration-mfd", recv_thread, c);
    g_debug("multifd channel %u of %u connected", hello.index, r->announce.channels);
    return TRUE;
}

static gboolean accept_channels(MigMultifdReceiver *r, int listen_fd, TlsCreds *tls,
                                GError **error)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)MIG_MULTIFD_ACCEPT_TIMEOUT_MS * 1000;

    while (r->connected < r->announce.channels) {
        struct pollfd p = { .fd = listen_fd, .events = POLLIN };
        g_autoptr(GError) err = NULL;
        gint64 left = deadline - g_get_monotonic_time();
        gboolean failed;
        int n, fd;

        g_mutex_lock(&r->lock);
        failed = r->shut || r->error;
        if (r->error)
            g_propagate_error(error, g_error_copy(r->error));
        else if (r->shut)
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "incoming migration cancelled");
        g_mutex_unlock(&r->lock);
        if (failed)
            return FALSE;
        if (left <= 0) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                        "only %u of the %u multifd channels connected within %d s",
                        r->connected, r->announce.channels,
                        MIG_MULTIFD_ACCEPT_TIMEOUT_MS / 1000);
            return FALSE;
        }
        n = poll(&p, 1, MIN(left / 1000 + 1, ACCEPT_POLL_MS));
        if (n <= 0)
            continue;
        if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                        "waiting for the multifd channels: the listening socket closed");
            return FALSE;
        }
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            int saved = errno;

            if (saved == EINTR || saved == EAGAIN || saved == ECONNABORTED)
                continue;
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                        "waiting for the multifd channels: %s", g_strerror(saved));
            return FALSE;
        }
        mig_channel_watch_link(fd);
        if (!take_channel(r, fd, tls, &err))
            g_warning("multifd: refused a connection: %s", err->message);
    }
    return TRUE;
}

static gpointer accept_thread(gpointer opaque)
{
    MigMultifdReceiver *r = opaque;
    g_autoptr(GError) err = NULL;

    if (!accept_channels(r, r->listen_fd, r->tls, &err))
        receiver_fail(r, g_steal_pointer(&err));
    return NULL;
}

void mig_multifd_receiver_start(MigMultifdReceiver *r, int listen_fd, TlsCreds *tls)
{
    g_assert(!r->accept_thread);
    r->listen_fd = listen_fd;
    r->tls = tls ? tls_creds_ref(tls) : NULL;
    r->accept_thread = g_thread_new("migration-mfd-in", accept_thread, r);
}

gboolean mig_multifd_receiver_wait(MigMultifdReceiver *r, GError **error)
{
    gboolean ok;

    g_mutex_lock(&r->lock);
    while (!r->error && !r->shut && r->ended < r->announce.channels)
        g_cond_wait(&r->cond, &r->lock);
    ok = !r->error && !r->shut;
    if (r->error)
        g_propagate_error(error, g_error_copy(r->error));
    else if (r->shut)
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "incoming migration cancelled");
    /* The barrier already guarantees it; a cheap check against a broken source. */
    for (unsigned i = 1; ok && i < r->announce.channels; i++) {
        if (r->ch[i]->pass != r->ch[0]->pass) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "multifd channels 0 and %u ended after %" G_GUINT64_FORMAT " and %"
                        G_GUINT64_FORMAT " passes", i, (guint64)r->ch[0]->pass,
                        (guint64)r->ch[i]->pass);
            ok = FALSE;
        }
    }
    g_mutex_unlock(&r->lock);
    return ok;
}

void mig_multifd_receiver_explain(MigMultifdReceiver *r, GError **error)
{
    g_mutex_lock(&r->lock);
    if (r->error && error && *error) {
        g_debug("%s, hence: %s", r->error->message, (*error)->message);
        g_clear_error(error);
        g_propagate_error(error, g_error_copy(r->error));
    }
    g_mutex_unlock(&r->lock);
}

void mig_multifd_receiver_shutdown(MigMultifdReceiver *r)
{
    g_mutex_lock(&r->lock);
    r->shut = TRUE;
    if (r->pending >= 0)
        shutdown(r->pending, SHUT_RDWR);
    for (unsigned i = 0; i < r->announce.channels; i++) {
        if (r->ch[i])
            shutdown(r->ch[i]->sock, SHUT_RDWR);
    }
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
}

uint64_t mig_multifd_receiver_get_bytes(MigMultifdReceiver *r)
{
    uint64_t bytes = 0;

    g_mutex_lock(&r->lock);
    for (unsigned i = 0; i < r->announce.channels; i++) {
        if (r->ch[i])
            bytes += mig_stream_get_bytes(r->ch[i]->stream);
    }
    g_mutex_unlock(&r->lock);
    return bytes;
}

void mig_multifd_receiver_free(MigMultifdReceiver *r)
{
    if (!r)
        return;
    mig_multifd_receiver_shutdown(r);
    /* First: it may still start channels. */
    if (r->accept_thread)
        g_thread_join(r->accept_thread);
    for (unsigned i = 0; i < r->announce.channels; i++) {
        if (r->ch[i] && r->ch[i]->thread)
            g_thread_join(r->ch[i]->thread);
    }
    /* Peers before the decoder whose record they share. */
    for (unsigned i = 0; i < r->announce.channels; i++)
        channel_free(r->ch[i]);
    mig_ram_decoder_free(r->dec);
    tls_creds_unref(r->tls);
    g_clear_error(&r->error);
    g_cond_clear(&r->cond);
    g_mutex_clear(&r->lock);
    g_free(r->ch);
    g_free(r->seen);
    g_free(r);
}
