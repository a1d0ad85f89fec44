/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The destination side, on its own thread: wait for the source, read RAM
 * records into guest RAM, hand the machine state over, check the END
 * checksum, and only then ack. Nothing the source sends can make this
 * write outside RAM or allocate without bound (stream.c and ram.c check
 * every length).
 *
 * A multifd stream (migration-multifd.h) announces its channels first:
 * they are accepted on the same listening socket and fill RAM on their
 * own threads; the main stream then carries only the state and END, and
 * the state is loaded once every channel has read its END.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "vireo/migration-multifd.h"
#include "vireo/migration-ram.h"
#include "vireo/migration-tls.h"
#include "vireo/migration.h"
#include "vireo/util.h"

struct MigDest {
    MigRam ram;
    const MigDestOps *ops;
    void *opaque;
    int fd;                     /* listening socket or stream */
    gboolean needs_accept;
    int conn;                   /* under lock: the accepted stream, or -1 */
    TlsCreds *tls;              /* reference, or NULL: no TLS */
    MigTlsLink *link;           /* TLS under conn, or NULL: set by the thread, under lock */
    gboolean closing;           /* under lock */
    GThread *thread;
    MigStream *stream;
    MigMultifdReceiver *multifd; /* under lock (set and freed by the thread), or NULL */

    GMutex lock;                /* protects info, conn, link, closing, recover_fd, multifd */
    GCond cond;
    MigInfo info;
    int64_t start_ns;
    int recover_fd;             /* post-copy recovery: where the source connects again */

    /* Post-copy: missing pages fault into uffd; the fault thread asks for them. */
    int uffd;
    int fault_stop;             /* eventfd that ends the fault thread */
    int stream_fd;              /* under write_lock: the socket requests go out on, or -1 */
    GThread *fault_thread;
    GMutex write_lock;          /* requests and the ack share the socket */
    unsigned long *requested;   /* under write_lock: pages asked for once */
    uint8_t *bounce;            /* incoming thread: one run, inflated or zero */
    ZSTD_DCtx *dctx;
};

#define BITS_PER_LONG (8 * sizeof(unsigned long))

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

/* --- post-copy --- */

/* write_lock held. */
static gboolean write_full_locked(MigDest *dst, const uint8_t *buf, size_t len)
{
    size_t done = 0;

    while (dst->stream_fd >= 0 && done < len) {
        ssize_t n = write(dst->stream_fd, buf + done, len - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += n;
    }
    return done == len;
}

/* write_lock held. A lost request is asked again when the link comes back. */
static void request_page_locked(MigDest *dst, uint64_t page)
{
    uint8_t req[MIG_RETURN_REQUEST_LEN];

    req[0] = MIG_RETURN_REQUEST;
    vireo_le_store(req + 1, 8, page * MIG_PAGE_SIZE);
    vireo_le_store(req + 9, 4, 1);
    write_full_locked(dst, req, sizeof(req));
}

static gpointer fault_thread(gpointer opaque)
{
    MigDest *dst = opaque;
    uint64_t pages = dst->ram.size / MIG_PAGE_SIZE;

    for (;;) {
        struct pollfd p[2] = { { .fd = dst->uffd, .events = POLLIN },
                               { .fd = dst->fault_stop, .events = POLLIN } };
        struct uffd_msg msg;
        uint64_t page;
        gboolean asked;

        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return NULL;
        if (p[1].revents)
            return NULL;
        if (read(dst->uffd, &msg, sizeof(msg)) != sizeof(msg) ||
            msg.event != UFFD_EVENT_PAGEFAULT)
            continue;
        page = (msg.arg.pagefault.address - (uintptr_t)dst->ram.base) / MIG_PAGE_SIZE;
        if (page >= pages)
            continue;
        /* Several threads may wait for one page: ask once, the answer wakes them all. */
        g_mutex_lock(&dst->write_lock);
        asked = dst->requested[page / BITS_PER_LONG] & (1UL << (page % BITS_PER_LONG));
        if (!asked) {
            dst->requested[page / BITS_PER_LONG] |= 1UL << (page % BITS_PER_LONG);
            request_page_locked(dst, page);
        }
        g_mutex_unlock(&dst->write_lock);
        if (asked)
            continue;
        g_mutex_lock(&dst->lock);
        dst->info.postcopy_requests++;
        g_mutex_unlock(&dst->lock);
    }
}

static gboolean postcopy_start(MigDest *dst, int fd, GError **error)
{
    struct uffdio_api api = { .api = UFFD_API };
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)dst->ram.base, .len = dst->ram.size },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };

    if (!is_socket(fd)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "a post-copy stream needs a socket to ask for pages on");
        return FALSE;
    }
    dst->uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (dst->uffd < 0 || ioctl(dst->uffd, UFFDIO_API, &api) < 0 ||
        ioctl(dst->uffd, UFFDIO_REGISTER, &reg) < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "userfaultfd for post-copy: %s",
                    g_strerror(saved));
        return FALSE;
    }
    dst->fault_stop = eventfd(0, EFD_CLOEXEC);
    if (dst->fault_stop < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "eventfd: %s", g_strerror(saved));
        return FALSE;
    }
    g_mutex_lock(&dst->write_lock);
    dst->stream_fd = fd;
    g_mutex_unlock(&dst->write_lock);
    dst->requested = g_new0(unsigned long, dst->ram.size / MIG_PAGE_SIZE / BITS_PER_LONG + 1);
    dst->bounce = g_malloc0((size_t)MIG_RAM_MAX_RUN * MIG_PAGE_SIZE);
    dst->fault_thread = g_thread_new("migration-fault", fault_thread, dst);
    return TRUE;
}

/*
 * Ends the fault thread; with @complete (every page has come), also lets
 * faults through again. After a failure the registration stays: a vCPU
 * must wait forever rather than run on a zero page where data was.
 */
static void postcopy_stop(MigDest *dst, gboolean complete)
{
    uint64_t one = 1;

    if (dst->fault_thread) {
        if (write(dst->fault_stop, &one, sizeof(one)) != sizeof(one))
            g_warning("cannot stop the post-copy fault thread");
        g_thread_join(dst->fault_thread);
        dst->fault_thread = NULL;
    }
    if (dst->uffd >= 0 && complete) {
        /* Wakes any fault still waiting: what is missing now is zero on the source too. */
        struct uffdio_range range = { .start = (uintptr_t)dst->ram.base, .len = dst->ram.size };
        ioctl(dst->uffd, UFFDIO_UNREGISTER, &range);
        close(dst->uffd);
        dst->uffd = -1;
    }
    if (dst->fault_stop >= 0) {
        close(dst->fault_stop);
        dst->fault_stop = -1;
    }
}

/* A DISCARD record: the source has newer copies of these pages to send. */
static gboolean postcopy_discard(MigDest *dst, const MigRecord *rec, GError **error)
{
    uint64_t offset = 0, len = 0;

    if (rec->len == MIG_DISCARD_LEN) {
        offset = vireo_le_load(rec->data, 8);
        len = (uint64_t)vireo_le_load(rec->data + 8, 4) * MIG_PAGE_SIZE;
    }
    if (offset % MIG_PAGE_SIZE || !len ||
        offset > dst->ram.size || len > dst->ram.size - offset) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "migration stream: bad discard section");
        return FALSE;
    }
    if (fallocate(dst->ram.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len) < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot drop stale RAM: %s",
                    g_strerror(saved));
        return FALSE;
    }
    return TRUE;
}

/*
 * A RAM record once the VM may run: pages are placed atomically with
 * UFFDIO_COPY, which also wakes whoever waits for them. Pages already
 * there (asked for and sent twice) are skipped.
 */
static gboolean postcopy_ram(MigDest *dst, const MigRecord *rec, GError **error)
{
    const uint8_t *p = rec->data;
    uint64_t offset, bytes;
    uint32_t npages;
    const uint8_t *src;
    size_t data_len;

    if (rec->len < MIG_RAM_RECORD_HEAD)
        goto bad;
    offset = vireo_le_load(p, 8);
    npages = vireo_le_load(p + 8, 4);
    bytes = (uint64_t)npages * MIG_PAGE_SIZE;
    data_len = rec->len - MIG_RAM_RECORD_HEAD;
    if (npages == 0 || npages > MIG_RAM_MAX_RUN || offset % MIG_PAGE_SIZE ||
        offset > dst->ram.size || bytes > dst->ram.size - offset)
        goto bad;
    switch (p[12]) {
    case MIG_RAM_ZERO:
        if (data_len)
            goto bad;
        memset(dst->bounce, 0, bytes);
        src = dst->bounce;
        break;
    case MIG_RAM_RAW:
        if (data_len != bytes)
            goto bad;
        src = p + MIG_RAM_RECORD_HEAD;
        break;
    case MIG_RAM_ZSTD: {
        size_t n;

        if (!dst->dctx)
            dst->dctx = ZSTD_createDCtx();
        n = ZSTD_decompressDCtx(dst->dctx, dst->bounce, bytes, p + MIG_RAM_RECORD_HEAD,
                                data_len);
        if (ZSTD_isError(n) || n != bytes)
            goto bad;
        src = dst->bounce;
        break;
    }
    default:
        goto bad;
    }
    for (uint64_t done = 0; done < bytes;) {
        struct uffdio_copy copy = {
            .dst = (uintptr_t)dst->ram.base + offset + done,
            .src = (uintptr_t)src + done,
            .len = bytes - done,
        };

        if (ioctl(dst->uffd, UFFDIO_COPY, &copy) == 0) {
            done += copy.len;
            continue;
        }
        if (copy.copy > 0)
            done += copy.copy;
        else if (errno == EEXIST)
            done += MIG_PAGE_SIZE;      /* the page is there: the next one */
        else if (errno != EAGAIN && errno != EINTR) {
            int saved = errno;
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                        "cannot place RAM at 0x%" G_GINT64_MODIFIER "x: %s",
                        (guint64)(offset + done), g_strerror(saved));
            return FALSE;
        }
    }
    return TRUE;

bad:
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                "migration stream: bad RAM section (%u bytes) in post-copy", rec->len);
    return FALSE;
}

/* What receive() keeps across records. */
typedef struct Receiver {
    MigRamDecoder *dec;
    int fd;                     /* the stream's socket or file */
    gboolean have_state;
    gboolean postcopy;
    gboolean multifd;           /* RAM comes on the channels, not on this stream */
    gboolean done;              /* END checked and acked */
    gboolean was_running;
} Receiver;

/* STATE and POSTCOPY: one per stream, a flags byte first. */
static gboolean take_state_flags(Receiver *rx, const MigRecord *rec, GError **error)
{
    if (rx->have_state || rec->len < 1) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "migration stream has a bad or second machine state section");
        return FALSE;
    }
    rx->was_running = rec->data[0] & MIG_STATE_FLAG_RUNNING;
    return TRUE;
}

static gboolean handle_record(MigDest *dst, Receiver *rx, const MigRecord *rec, GError **error)
{
    if (rx->multifd && (rec->type == MIG_RECORD_RAM || rec->type == MIG_RECORD_DISCARD ||
                        rec->type == MIG_RECORD_POSTCOPY)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "migration stream: a '%c' section on the main channel of a multifd stream "
                    "(RAM goes on the channels; post-copy is not compatible with multifd)",
                    rec->type);
        return FALSE;
    }
    switch (rec->type) {
    case MIG_RECORD_RAM:
        if (rx->postcopy)
            return postcopy_ram(dst, rec, error);
        if (rx->have_state) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "migration stream has RAM after the machine state");
            return FALSE;
        }
        return mig_ram_decoder_apply(rx->dec, rec->data, rec->len, error);
    case MIG_RECORD_DISCARD:
        if (rx->have_state) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "migration stream discards RAM after the machine state");
            return FALSE;
        }
        return postcopy_discard(dst, rec, error);
    case MIG_RECORD_POSTCOPY:
        if (!take_state_flags(rx, rec, error))
            return FALSE;
        /* Missing pages must fault to us before anything can touch them. */
        if (!postcopy_start(dst, rx->fd, error))
            return FALSE;
        rx->have_state = rx->postcopy = TRUE;
        g_mutex_lock(&dst->lock);
        dst->info.postcopy = TRUE;
        g_mutex_unlock(&dst->lock);
        set_status(dst, MIG_STATUS_POSTCOPY_ACTIVE);
        dst->ops->start_postcopy(dst->opaque, g_bytes_new(rec->data + 1, rec->len - 1),
                                 rx->was_running);
        return TRUE;
    case MIG_RECORD_STATE:
        if (!take_state_flags(rx, rec, error))
            return FALSE;
        /* All of RAM first: every channel has read its last pass and its END. */
        if (rx->multifd && !mig_multifd_receiver_wait(dst->multifd, error))
            return FALSE;
        /*
         * Loaded before the END is checked: the VM has not run yet,
         * and a bad checksum still fails the whole migration.
         */
        if (!dst->ops->load_state(dst->opaque, rec->data + 1, rec->len - 1, error))
            return FALSE;
        rx->have_state = TRUE;
        return TRUE;
    case MIG_RECORD_END:
        if (!rx->have_state) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "migration stream ended without the machine state");
            return FALSE;
        }
        if (rx->postcopy)
            postcopy_stop(dst, TRUE);
        rx->done = TRUE;
        if (is_socket(rx->fd)) {
            uint8_t ack = MIG_ACK_BYTE;
            gboolean ok;

            g_mutex_lock(&dst->write_lock);
            dst->stream_fd = rx->fd;
            ok = write_full_locked(dst, &ack, 1);
            g_mutex_unlock(&dst->write_lock);
            if (!ok) {
                g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                            "cannot confirm the migration to the source: %s",
                            g_strerror(errno ? errno : EPIPE));
                return FALSE;
            }
        }
        return TRUE;
    case MIG_RECORD_MULTIFD:
    case MIG_RECORD_HELLO:
    case MIG_RECORD_SYNC:
        break;
    }
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                "migration stream: unexpected '%c' section on the main channel", rec->type);
    return FALSE;
}

/* From a channel's thread: the main stream's reader must not wait for a source gone. */
static void channel_failed(void *opaque)
{
    MigDest *dst = opaque;

    g_mutex_lock(&dst->lock);
    if (dst->conn >= 0)
        shutdown(dst->conn, SHUT_RDWR);
    g_mutex_unlock(&dst->lock);
}

/*
 * A stream of version MIG_STREAM_VERSION_MULTIFD: its MULTIFD record,
 * then the channels it announces, on the socket the main one came on
 * (accepted on a thread of the receiver's while this one reads on).
 */
static gboolean start_multifd(MigDest *dst, Receiver *rx, GError **error)
{
    MigMultifdAnnounce a;
    MigMultifdReceiver *r;
    MigRecord rec;
    gboolean closing;

    if (!mig_stream_read_record(dst->stream, &rec, error))
        return FALSE;
    if (rec.type != MIG_RECORD_MULTIFD) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "migration stream: a multifd stream that starts with '%c', not MULTIFD",
                    rec.type);
        return FALSE;
    }
    if (!mig_multifd_announce_parse(rec.data, rec.len, &a, error))
        return FALSE;
    if (!dst->needs_accept) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "the source uses %u multifd channels, which need --incoming unix: or tcp: "
                    "here", a.channels);
        return FALSE;
    }
    r = mig_multifd_receiver_new(&a, dst->ram.base, dst->ram.size, channel_failed, dst);
    mig_multifd_receiver_set_memfd(r, dst->ram.memfd);
    g_mutex_lock(&dst->lock);
    closing = dst->closing;
    if (!closing)
        dst->multifd = r;
    g_mutex_unlock(&dst->lock);
    if (closing) {
        mig_multifd_receiver_free(r);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "incoming migration cancelled");
        return FALSE;
    }
    rx->multifd = TRUE;
    g_debug("multifd: waiting for %u channels", a.channels);
    mig_multifd_receiver_start(r, dst->fd, dst->tls);
    return TRUE;
}

/* Sets the bit of every page the memfd holds (holes are what is missing). */
static void present_pages(MigDest *dst, uint8_t *bitmap)
{
    off_t pos = 0, size = dst->ram.size;

    while (pos < size) {
        off_t data, hole;

        if (mig_ram_next_data(&dst->ram, pos, &data, &hole) <= 0)
            break;
        for (uint64_t p = data / MIG_PAGE_SIZE; p < (uint64_t)hole / MIG_PAGE_SIZE; p++)
            bitmap[p / 8] |= 1u << (p % 8);
        pos = hole;
    }
}

static gboolean page_present(MigDest *dst, uint64_t page)
{
    off_t off = page * MIG_PAGE_SIZE;

    return lseek(dst->ram.memfd, off, SEEK_DATA) == off;
}

/*
 * TLS on the connection just accepted (dst->conn, owned by the link
 * afterwards); a file stays plain, as in QEMU. *@fd becomes the socket
 * the stream code uses, published as dst->conn.
 */
static gboolean start_tls(MigDest *dst, int *fd, GError **error)
{
    MigTlsLink *link;
    int inner;

    if (!dst->tls || !is_socket(*fd))
        return TRUE;
    link = mig_tls_link_new(dst->tls, *fd, NULL, &inner, error);
    if (!link)
        return FALSE;
    g_mutex_lock(&dst->lock);
    dst->conn = inner;
    dst->link = link;
    g_mutex_unlock(&dst->lock);
    *fd = inner;
    return TRUE;
}

/*
 * A source connecting again after a broken post-copy link: tell it which
 * pages are here, read its new stream's header, and ask again for the
 * pages vCPUs still wait for (their requests may have been lost).
 */
static gboolean accept_again(MigDest *dst, Receiver *rx, int listen_fd, GError **error)
{
    uint64_t pages = dst->ram.size / MIG_PAGE_SIZE;
    size_t words = (pages + 63) / 64;
    g_autofree uint8_t *msg = g_malloc0(1 + words * 8);
    uint64_t ram_size;
    int fd = mig_channel_accept(listen_fd, error);

    if (fd < 0)
        return FALSE;
    g_mutex_lock(&dst->lock);
    dst->conn = fd;
    g_mutex_unlock(&dst->lock);
    if (!start_tls(dst, &fd, error))
        return FALSE;
    rx->fd = fd;
    msg[0] = MIG_RESUME_BITMAP;
    present_pages(dst, msg + 1);
    g_mutex_lock(&dst->write_lock);
    dst->stream_fd = fd;
    if (!write_full_locked(dst, msg, 1 + words * 8)) {
        dst->stream_fd = -1;
        g_mutex_unlock(&dst->write_lock);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot tell the source our pages");
        return FALSE;
    }
    for (uint64_t p = 0; p < pages; p++) {
        if ((dst->requested[p / BITS_PER_LONG] & (1UL << (p % BITS_PER_LONG))) &&
            !page_present(dst, p))
            request_page_locked(dst, p);
    }
    g_mutex_unlock(&dst->write_lock);
    dst->stream = mig_stream_new_reader(fd);
    if (dst->link)
        mig_stream_set_tls(dst->stream, dst->link);
    if (!mig_stream_read_header(dst->stream, &ram_size, error))
        return FALSE;
    if (ram_size != dst->ram.size) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "the resumed stream is for another RAM size");
        return FALSE;
    }
    return TRUE;
}

/* POSTCOPY_PAUSED until mig_dest_recover() gives a socket a source comes back on. */
static gboolean pause_and_accept(MigDest *dst, Receiver *rx, GError **error)
{
    for (;;) {
        g_autoptr(GError) err = NULL;
        MigTlsLink *old_link;
        int old, listen_fd;
        gboolean ok;

        g_mutex_lock(&dst->write_lock);
        dst->stream_fd = -1;
        g_mutex_unlock(&dst->write_lock);
        g_mutex_lock(&dst->lock);
        old = dst->conn;
        dst->conn = -1;
        old_link = g_steal_pointer(&dst->link);
        g_mutex_unlock(&dst->lock);
        if (old >= 0 && old != dst->fd)
            close(old);
        mig_tls_link_free(old_link);
        mig_stream_free(dst->stream);
        dst->stream = NULL;
        set_status(dst, MIG_STATUS_POSTCOPY_PAUSED);
        g_mutex_lock(&dst->lock);
        while (dst->recover_fd < 0 && !dst->closing)
            g_cond_wait(&dst->cond, &dst->lock);
        listen_fd = dst->recover_fd;
        g_mutex_unlock(&dst->lock);
        if (listen_fd < 0) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                        "incoming post-copy migration given up while paused");
            return FALSE;
        }
        set_status(dst, MIG_STATUS_POSTCOPY_RECOVER);
        ok = accept_again(dst, rx, listen_fd, &err);
        g_mutex_lock(&dst->lock);
        dst->recover_fd = -1;
        g_mutex_unlock(&dst->lock);
        close(listen_fd);
        if (ok) {
            set_status(dst, MIG_STATUS_POSTCOPY_ACTIVE);
            return TRUE;
        }
        g_warning("post-copy recovery failed: %s", err->message);
    }
}

static gboolean receive(MigDest *dst, gboolean *was_running, GError **error)
{
    g_autoptr(MigRamDecoder) dec = mig_ram_decoder_new(dst->ram.base, dst->ram.size, TRUE);
    Receiver rx = { .dec = dec, .fd = dst->fd };
    uint64_t ram_size;

    mig_ram_decoder_set_memfd(dec, dst->ram.memfd);
    if (dst->needs_accept || (dst->tls && is_socket(dst->fd))) {
        /* A socket passed as fd:N is the link's once TLS runs on it: a copy, then. */
        rx.fd = dst->needs_accept ? mig_channel_accept(dst->fd, error)
                                  : fcntl(dst->fd, F_DUPFD_CLOEXEC, 3);
        if (rx.fd < 0) {
            if (!dst->needs_accept)
                g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "dup: %s", g_strerror(errno));
            return FALSE;
        }
        g_mutex_lock(&dst->lock);
        if (dst->closing) {
            g_mutex_unlock(&dst->lock);
            close(rx.fd);
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "incoming migration cancelled");
            return FALSE;
        }
        dst->conn = rx.fd;
        g_mutex_unlock(&dst->lock);
        if (!start_tls(dst, &rx.fd, error))
            return FALSE;
    }
    g_mutex_lock(&dst->lock);
    dst->start_ns = now_ns();
    g_mutex_unlock(&dst->lock);
    set_status(dst, MIG_STATUS_ACTIVE);
    dst->stream = mig_stream_new_reader(rx.fd);
    if (dst->link)
        mig_stream_set_tls(dst->stream, dst->link);
    if (!mig_stream_read_header(dst->stream, &ram_size, error))
        return FALSE;
    if (ram_size != dst->ram.size) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "the migration stream is for %" G_GUINT64_FORMAT " MiB of RAM, this VM has %"
                    G_GUINT64_FORMAT " MiB", (guint64)(ram_size >> 20),
                    (guint64)(dst->ram.size >> 20));
        return FALSE;
    }
    if (mig_stream_get_version(dst->stream) == MIG_STREAM_VERSION_MULTIFD &&
        !start_multifd(dst, &rx, error))
        return FALSE;
    while (!rx.done) {
        g_autoptr(GError) err = NULL;
        MigRecord rec;

        if (mig_stream_read_record(dst->stream, &rec, &err) &&
            handle_record(dst, &rx, &rec, &err))
            continue;
        /* After the switch the VM runs here: a broken link pauses, it never fails alone. */
        if (!rx.postcopy || rx.done) {
            g_propagate_error(error, g_steal_pointer(&err));
            return FALSE;
        }
        g_warning("post-copy migration paused: %s; migrate-recover continues it", err->message);
        if (!pause_and_accept(dst, &rx, error))
            return FALSE;
    }
    *was_running = rx.was_running;
    return TRUE;
}

static gpointer dest_thread(gpointer opaque)
{
    MigDest *dst = opaque;
    g_autoptr(GError) err = NULL;
    gboolean was_running = FALSE;
    gboolean ok = receive(dst, &was_running, &err);
    MigMultifdReceiver *multifd;

    postcopy_stop(dst, ok);
    /* This thread is the only one that sets the link. */
    if (!ok && dst->link)
        mig_tls_link_explain(dst->link, &err);
    /* A channel that failed broke the main stream on purpose: its reason is the one. */
    if (!ok && dst->multifd)
        mig_multifd_receiver_explain(dst->multifd, &err);

    g_mutex_lock(&dst->lock);
    dst->info.total_time = (now_ns() - dst->start_ns) / 1000000;
    dst->info.multifd_bytes = dst->multifd ? mig_multifd_receiver_get_bytes(dst->multifd) : 0;
    dst->info.ram_transferred = (dst->stream ? mig_stream_get_bytes(dst->stream) : 0) +
                                dst->info.multifd_bytes;
    if (!ok)
        dst->info.error_desc = g_strdup(err->message);
    multifd = g_steal_pointer(&dst->multifd);
    g_mutex_unlock(&dst->lock);
    /* Joined before finished(): no channel outlives the migration. */
    mig_multifd_receiver_free(multifd);
    set_status(dst, ok ? MIG_STATUS_COMPLETED : MIG_STATUS_FAILED);
    dst->ops->finished(dst->opaque, was_running, ok ? NULL : err);
    return NULL;
}

MigDest *mig_dest_start(const MigRam *ram, int fd, gboolean needs_accept, TlsCreds *tls,
                        const MigDestOps *ops, void *opaque)
{
    MigDest *dst = g_new0(MigDest, 1);

    dst->ram = *ram;
    dst->tls = tls ? tls_creds_ref(tls) : NULL;
    dst->ops = ops;
    dst->opaque = opaque;
    dst->fd = fd;
    dst->conn = -1;
    dst->uffd = dst->fault_stop = dst->stream_fd = dst->recover_fd = -1;
    g_cond_init(&dst->cond);
    g_mutex_init(&dst->write_lock);
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
    if (dst->multifd)
        info->multifd_bytes = mig_multifd_receiver_get_bytes(dst->multifd);
    if (dst->stream && info->status == MIG_STATUS_ACTIVE)
        info->ram_transferred = mig_stream_get_bytes(dst->stream) + info->multifd_bytes;
    g_mutex_unlock(&dst->lock);
}

gboolean mig_dest_pause(MigDest *dst, GError **error)
{
    gboolean ok;

    g_mutex_lock(&dst->lock);
    ok = dst->info.status == MIG_STATUS_POSTCOPY_ACTIVE && dst->conn >= 0;
    if (ok)
        shutdown(dst->conn, SHUT_RDWR);
    g_mutex_unlock(&dst->lock);
    if (!ok)
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "migrate-pause is only for a post-copy migration under way");
    return ok;
}

gboolean mig_dest_recover(MigDest *dst, int listen_fd, GError **error)
{
    gboolean ok;

    g_mutex_lock(&dst->lock);
    ok = dst->info.status == MIG_STATUS_POSTCOPY_PAUSED && dst->recover_fd < 0 &&
         !dst->closing;
    if (ok) {
        dst->recover_fd = listen_fd;
        g_cond_broadcast(&dst->cond);
    }
    g_mutex_unlock(&dst->lock);
    if (!ok) {
        close(listen_fd);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "Migrate recover can only be run when postcopy is paused.");
    }
    return ok;
}

void mig_dest_free(MigDest *dst)
{
    if (!dst)
        return;
    /* Wakes a thread waiting in accept() or read(), or paused. */
    g_mutex_lock(&dst->lock);
    dst->closing = TRUE;
    shutdown(dst->fd, SHUT_RDWR);
    if (dst->conn >= 0)
        shutdown(dst->conn, SHUT_RDWR);
    if (dst->recover_fd >= 0)
        shutdown(dst->recover_fd, SHUT_RDWR);
    if (dst->multifd)
        mig_multifd_receiver_shutdown(dst->multifd);
    g_cond_broadcast(&dst->cond);
    g_mutex_unlock(&dst->lock);
    g_thread_join(dst->thread);
    if (dst->conn >= 0)
        close(dst->conn);
    mig_tls_link_free(dst->link);
    tls_creds_unref(dst->tls);
    close(dst->fd);
    mig_stream_free(dst->stream);
    mig_info_clear(&dst->info);
    g_cond_clear(&dst->cond);
    g_mutex_clear(&dst->lock);
    g_mutex_clear(&dst->write_lock);
    g_free(dst->requested);
    g_free(dst->bounce);
    ZSTD_freeDCtx(dst->dctx);
    g_free(dst);
}
