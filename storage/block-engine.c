/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The block I/O engine: data reads and writes go to io_uring, blocking work
 * (qcow2 metadata misses, allocation with copy-on-write, flushes) to a
 * worker pool, and all completions come back to the caller's thread
 * through one eventfd.
 *
 * Why io_uring and not only a thread pool of preadv/pwritev: a request on
 * the fast path (raw, or qcow2 with its L2 table cached) costs one
 * io_uring_enter on the caller's thread and no thread hand-off, while the
 * pool needs a futex wake-up of a worker, a context switch and an eventfd
 * write per request. Measured on this project's 2-core CI host (tmpfs,
 * 4 KiB random reads, depth 32): see docs/storage.md, "Engine". The pool
 * stays as the data path when io_uring is unavailable (old kernels,
 * seccomp, io_uring_disabled=2) and can be forced with
 * VIREO_BLOCK_ENGINE=threads for comparisons.
 */
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>

#include "block-internal.h"
#include "vireo/util.h"

#define ENGINE_RING_ENTRIES 256
#define ENGINE_MAX_WORKERS 64
#define ENGINE_INLINE_IOV 4

typedef struct EngineOp {
    EngineDoneFunc *done;
    void *opaque;
    int64_t ret;
    BlockEngine *engine;
    /* data I/O */
    BlockFile *file;
    gboolean write;
    gboolean fua;
    uint64_t offset;
    size_t len;
    struct iovec *iov;
    int iovcnt;
    struct iovec inline_iov[ENGINE_INLINE_IOV];
    uint8_t *bounce;              /* O_DIRECT copy of an unaligned request */
    struct iovec bounce_iov;
    /* worker */
    EngineWorkFunc *work;
    struct EngineOp *next;        /* on the done list */
} EngineOp;

struct BlockEngine {
    int efd;
    gboolean use_uring;
    struct io_uring ring;
    unsigned ring_in_flight;
    GQueue ring_waiting;          /* ops that found the ring full */
    GThreadPool *pool;
    GMutex lock;                  /* protects the done list */
    EngineOp *done_head;          /* finished worker ops and deferred completions, */
    EngineOp *done_tail;          /* intrusive so that workers never allocate */
    GThread *processing;          /* thread inside process_completions, or NULL */
    gint in_flight;               /* public requests; atomic */
    unsigned plugged;             /* > 0: submissions wait in the SQ ring for unplug */
    gboolean unsubmitted;         /* entries in the SQ ring the kernel has not seen */
};

static void engine_signal(BlockEngine *e)
{
    uint64_t one = 1;

    /* Cannot fail short of a counter overflow, which the reader prevents. */
    while (write(e->efd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

/*
 * Appends to the done list. Only the first entry signals: the reader
 * clears the eventfd and then drains the whole list, so later entries
 * are seen without another system call.
 */
static void push_done(BlockEngine *e, EngineOp *op)
{
    gboolean was_empty;

    op->next = NULL;
    g_mutex_lock(&e->lock);
    was_empty = e->done_head == NULL;
    if (was_empty)
        e->done_head = op;
    else
        e->done_tail->next = op;
    e->done_tail = op;
    g_mutex_unlock(&e->lock);
    if (was_empty)
        engine_signal(e);
}

static void engine_worker(gpointer data, gpointer user_data)
{
    EngineOp *op = data;
    BlockEngine *e = user_data;

    op->ret = op->work(op->opaque);
    push_done(e, op);
}

BlockEngine *block_engine_new(GError **error)
{
    g_autofree BlockEngine *e = g_new0(BlockEngine, 1);
    const char *backend = g_getenv("VIREO_BLOCK_ENGINE");
    const char *fault = g_getenv("VIREO_BLOCK_FAULT_AFTER");

    if (fault)
        block_file_fault_set(g_ascii_strtoll(fault, NULL, 10));
    e->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e->efd < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot create eventfd: %s",
                    g_strerror(saved));
        return NULL;
    }
    g_mutex_init(&e->lock);
    g_queue_init(&e->ring_waiting);
    if (g_strcmp0(backend, "threads") != 0 &&
        io_uring_queue_init(ENGINE_RING_ENTRIES, &e->ring, 0) == 0) {
        if (io_uring_register_eventfd(&e->ring, e->efd) == 0)
            e->use_uring = TRUE;
        else
            io_uring_queue_exit(&e->ring);
    }
    if (!e->use_uring)
        g_debug("io_uring unavailable or disabled, data I/O uses worker threads");
    e->pool = g_thread_pool_new(engine_worker, e, ENGINE_MAX_WORKERS, FALSE, NULL);
    return g_steal_pointer(&e);
}

void block_engine_free(BlockEngine *e)
{
    if (!e)
        return;
    /* Waits for running workers; callers have no requests in flight. */
    g_thread_pool_free(e->pool, FALSE, TRUE);
    block_engine_process_completions(e);
    g_assert(g_atomic_int_get(&e->in_flight) == 0);
    if (e->use_uring)
        io_uring_queue_exit(&e->ring);
    close(e->efd);
    g_mutex_clear(&e->lock);
    g_free(e);
}

int block_engine_get_fd(BlockEngine *e)
{
    return e->efd;
}

const char *block_engine_get_backend(BlockEngine *e)
{
    return e->use_uring ? "io_uring" : "threads";
}

unsigned block_engine_get_in_flight(BlockEngine *e)
{
    return g_atomic_int_get(&e->in_flight);
}

void block_engine_request_started(BlockEngine *e)
{
    g_atomic_int_inc(&e->in_flight);
}

void block_engine_request_finished(BlockEngine *e)
{
    g_atomic_int_dec_and_test(&e->in_flight);
}

gboolean block_engine_in_completion_context(BlockEngine *e)
{
    return e->processing == g_thread_self();
}

static EngineOp *op_new(BlockEngine *e, EngineDoneFunc *done, void *opaque)
{
    EngineOp *op = g_new0(EngineOp, 1);

    op->engine = e;
    op->done = done;
    op->opaque = opaque;
    return op;
}

static void op_free(EngineOp *op)
{
    if (op->iov != op->inline_iov && op->iov != &op->bounce_iov)
        g_free(op->iov);
    block_file_buf_free(op->bounce);
    g_free(op);
}

void block_engine_defer(BlockEngine *e, EngineDoneFunc *done, void *opaque, int64_t ret)
{
    EngineOp *op = op_new(e, done, opaque);

    op->ret = ret;
    push_done(e, op);
}

void block_engine_submit_work(BlockEngine *e, EngineWorkFunc *work, EngineDoneFunc *done,
                              void *opaque)
{
    EngineOp *op = op_new(e, done, opaque);

    op->work = work;
    g_thread_pool_push(e->pool, op, NULL);
}

/* The thread-pool data path. */
static int64_t op_rw_work(void *opaque)
{
    EngineOp *op = opaque;
    int ret;

    if (!op->write) {
        ret = block_file_preadv(op->file, op->iov, op->iovcnt, op->offset);
    } else {
        ret = block_file_pwritev(op->file, op->iov, op->iovcnt, op->offset);
        if (ret == 0 && op->fua)
            ret = block_file_sync(op->file);
    }
    return ret < 0 ? ret : (int64_t)op->len;
}

/* The worker op wraps the rw op; hand the result to the rw op's owner. */
static void op_rw_work_done(void *opaque, int64_t ret)
{
    EngineOp *op = opaque;

    op->done(op->opaque, ret);
    op_free(op);
}

static gboolean ring_submit_op(BlockEngine *e, EngineOp *op)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);

    if (!sqe)
        return FALSE;
    if (op->write) {
        io_uring_prep_writev(sqe, op->file->fd, op->iov, op->iovcnt, op->offset);
        if (op->fua)
            sqe->rw_flags = RWF_DSYNC;
    } else {
        io_uring_prep_readv(sqe, op->file->fd, op->iov, op->iovcnt, op->offset);
    }
    io_uring_sqe_set_data(sqe, op);
    e->ring_in_flight++;
    return TRUE;
}

static void ring_flush_submissions(BlockEngine *e)
{
    int ret;

    /* One io_uring_enter() for a whole batch of requests (block_engine_plug). */
    if (e->plugged) {
        e->unsubmitted = TRUE;
        return;
    }
    e->unsubmitted = FALSE;
    do {
        ret = io_uring_submit(&e->ring);
    } while (ret == -EINTR);
    /* -EAGAIN/-EBUSY: the kernel is short of resources; the entries stay
     * queued in the SQ ring and go with the next submit. */
}

void block_engine_submit_rw(BlockEngine *e, BlockFile *f, gboolean write, uint64_t offset,
                            const struct iovec *iov, int iovcnt, gboolean fua,
                            EngineDoneFunc *done, void *opaque)
{
    EngineOp *op = op_new(e, done, opaque);
    gboolean aligned = TRUE;

    op->file = f;
    op->write = write;
    op->fua = fua && !f->unsafe;
    op->offset = offset;
    for (int i = 0; i < iovcnt; i++) {
        op->len += iov[i].iov_len;
        if (f->direct && (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & (f->align - 1)))
            aligned = FALSE;
    }
    if (f->direct && (offset & (f->align - 1)))
        aligned = FALSE;
    if (write && block_file_fault_hit()) {
        op->ret = -EIO;
        push_done(e, op);
        return;
    }
    if (write && f->inline_writes && aligned) {
        /* A memory copy (block-file.c): cheaper here than any hand-off. */
        int ret = block_file_pwritev(f, iov, iovcnt, offset);
        if (ret == 0 && op->fua)
            ret = block_file_sync(f);
        op->ret = ret < 0 ? ret : (int64_t)op->len;
        push_done(e, op);
        return;
    }
    if (!e->use_uring || !aligned) {
        /* Unaligned O_DIRECT requests are rare (guest buffers are aligned);
         * the worker's helpers bounce them. */
        op->iov = iovcnt <= ENGINE_INLINE_IOV ? op->inline_iov : g_new(struct iovec, iovcnt);
        memcpy(op->iov, iov, iovcnt * sizeof(*iov));
        op->iovcnt = iovcnt;
        block_engine_submit_work(e, op_rw_work, op_rw_work_done, op);
        return;
    }
    op->iov = iovcnt <= ENGINE_INLINE_IOV ? op->inline_iov : g_new(struct iovec, iovcnt);
    memcpy(op->iov, iov, iovcnt * sizeof(*iov));
    op->iovcnt = iovcnt;
    if (e->ring_in_flight >= ENGINE_RING_ENTRIES || !ring_submit_op(e, op)) {
        g_queue_push_tail(&e->ring_waiting, op);
        return;
    }
    ring_flush_submissions(e);
}

static void ring_complete(BlockEngine *e, EngineOp *op, int res)
{
    e->ring_in_flight--;
    if (res >= 0 && (size_t)res < op->len) {
        /* Short transfer: at the end of the file for reads (zero-filled by
         * the helper), or a full disk for writes. Finish synchronously;
         * this is rare. */
        int ret;
        size_t skip = res;
        struct iovec rest[64];
        int n = iov_slice(op->iov, op->iovcnt, skip, op->len - skip, rest, 64);

        if (n < 0)
            ret = -EIO;
        else if (op->write)
            ret = block_file_pwritev(op->file, rest, n, op->offset + skip);
        else
            ret = block_file_preadv(op->file, rest, n, op->offset + skip);
        res = ret < 0 ? ret : (int)op->len;
    }
    op->done(op->opaque, res);
    op_free(op);
}

void block_engine_plug(BlockEngine *e)
{
    e->plugged++;
}

void block_engine_unplug(BlockEngine *e)
{
    g_assert(e->plugged > 0);
    if (--e->plugged == 0 && e->unsubmitted)
        ring_flush_submissions(e);
}

int block_engine_process_completions(BlockEngine *e)
{
    GThread *prev = e->processing;
    uint64_t v;
    int count = 0;

    /* Callbacks that submit again (a device refilling its queue, a
     * benchmark keeping its depth) share one submission at the end. */
    block_engine_plug(e);
    e->processing = g_thread_self();
    /* Read first: a completion posted after this read re-arms the fd. */
    while (read(e->efd, &v, sizeof(v)) < 0 && errno == EINTR) {
    }
    for (;;) {
        gboolean progress = FALSE;

        if (e->use_uring) {
            struct io_uring_cqe *cqe;
            while (io_uring_peek_cqe(&e->ring, &cqe) == 0) {
                EngineOp *op = io_uring_cqe_get_data(cqe);
                int res = cqe->res;
                io_uring_cqe_seen(&e->ring, cqe);
                ring_complete(e, op, res);
                count++;
                progress = TRUE;
            }
            if (e->ring_waiting.length) {
                while (e->ring_waiting.length && e->ring_in_flight < ENGINE_RING_ENTRIES) {
                    EngineOp *op = g_queue_peek_head(&e->ring_waiting);
                    if (!ring_submit_op(e, op))
                        break;
                    g_queue_pop_head(&e->ring_waiting);
                }
                ring_flush_submissions(e);
            }
        }
        {
            EngineOp *op, *next;
            g_mutex_lock(&e->lock);
            op = e->done_head;
            e->done_head = e->done_tail = NULL;
            g_mutex_unlock(&e->lock);
            for (; op; op = next) {
                next = op->next;
                op->done(op->opaque, op->ret);
                op_free(op);
                count++;
                progress = TRUE;
            }
        }
        if (!progress)
            break;
    }
    e->processing = prev;
    block_engine_unplug(e);
    return count;
}

int block_engine_wait(BlockEngine *e, int timeout_ms)
{
    struct pollfd pfd = { .fd = e->efd, .events = POLLIN };
    unsigned plugged = e->plugged;
    int n;

    /* Waiting while plugged must not wait for requests never submitted. */
    if (e->unsubmitted) {
        e->plugged = 0;
        ring_flush_submissions(e);
        e->plugged = plugged;
    }

    /* Look before reaping: at depth 1 the usual case is "nothing yet", and
     * skipping a useless eventfd read saves a system call per request. */
    g_mutex_lock(&e->lock);
    n = e->done_head != NULL;
    g_mutex_unlock(&e->lock);
    if (n || (e->use_uring && io_uring_cq_ready(&e->ring))) {
        n = block_engine_process_completions(e);
        if (n)
            return n;
    }
    if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR)
        return 0;
    return block_engine_process_completions(e);
}
