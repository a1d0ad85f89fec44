/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The RPC client. One I/O thread owns the socket and all connection state;
 * other threads hand it work with g_main_context_invoke() and, for
 * synchronous calls, wait on a condition variable. See
 * include/vireo/rpc-client.h.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib-unix.h>

#include "vireo/rpc-client.h"
#include "vireo/util.h"

#define READ_CHUNK 65536

typedef struct Pending Pending;

struct RpcClient {
    gint ref;                       /* atomic */
    gint closed;                    /* atomic: the connection is gone */
    gint freed;                     /* atomic: rpc_client_free() was called */
    guint32 next_serial;            /* atomic */

    GMainContext *io_ctx;           /* immutable */
    GMainLoop *io_loop;             /* immutable */
    GThread *thread;

    GMutex cb_lock;                 /* guards the four callback fields */
    GMainContext *cb_ctx;
    RpcClientCallbacks cb;
    gpointer cb_opaque;

    /* I/O thread only */
    int fd;
    RpcTlsSession *tls;             /* or NULL: plain socket */
    GSource *watch;
    GIOCondition watch_cond;
    RpcFramer framer;
    GQueue outq;                    /* GBytes */
    gsize out_off;
    gsize out_bytes;
    GHashTable *pending;            /* serial -> Pending */
    GHashTable *streams;            /* (serial << 32 | proc) -> RpcClientStream, one ref */
    GSource *ka_timer;
    gint64 last_rx;
    guint ka_unanswered;
    GError *close_error;

    /* caller side (calls are serialised by the handshake functions' callers) */
    guint ka_interval;
    guint ka_count;
    gboolean opened;
    gboolean close_callback;
};

struct Pending {
    RpcClient *client;              /* reference */
    guint32 serial;
    const RpcProcedure *proc;
    GBytes *pkt;
    RpcClientStream *stream;        /* reference, for stream-opening calls */

    /* synchronous: the caller waits on cv */
    GMutex m;
    GCond cv;
    gboolean sync;
    gboolean done;
    void *ret;
    RemoteError *rerr;
    GError *error;

    /* asynchronous */
    RpcClientReplyFunc fn;
    gpointer opaque;
};

struct RpcClientStream {
    gint ref;                       /* atomic */
    RpcClient *client;              /* reference */
    guint32 prog;
    guint32 vers;
    gint32 proc;
    guint32 serial;
    gint64 key;
    RpcClientStreamCallbacks cb;
    gpointer opaque;
    gint ended;                     /* atomic */
    /* finish/abort: the caller waits for the server's answer */
    GMutex m;
    GCond cv;
    gboolean waiting;
    gboolean answered;
    GError *answer_error;
};

static void client_lost(RpcClient *c, GError *why);
static void client_update_watch(RpcClient *c);

static RpcClient *client_ref(RpcClient *c)
{
    g_atomic_int_inc(&c->ref);
    return c;
}

static void client_unref(RpcClient *c)
{
    if (!g_atomic_int_dec_and_test(&c->ref))
        return;
    g_hash_table_unref(c->pending);
    g_hash_table_unref(c->streams);
    g_queue_clear_full(&c->outq, (GDestroyNotify)g_bytes_unref);
    rpc_framer_clear(&c->framer);
    g_clear_error(&c->close_error);
    g_main_loop_unref(c->io_loop);
    g_main_context_unref(c->io_ctx);
    if (c->cb_ctx)
        g_main_context_unref(c->cb_ctx);
    g_mutex_clear(&c->cb_lock);
    g_free(c);
}

static gpointer io_thread(gpointer data)
{
    RpcClient *c = data;

    g_main_context_push_thread_default(c->io_ctx);
    g_main_loop_run(c->io_loop);
    g_main_context_pop_thread_default(c->io_ctx);
    return NULL;
}

RpcClient *rpc_client_new_fd(int fd, GError **error)
{
    return rpc_client_new_tls(fd, NULL, error);
}

RpcClient *rpc_client_new_tls(int fd, RpcTlsSession *tls, GError **error)
{
    RpcClient *c;

    if (!g_unix_set_fd_nonblocking(fd, TRUE, error)) {
        rpc_tls_session_free(tls);
        close(fd);
        return NULL;
    }
    c = g_new0(RpcClient, 1);
    c->ref = 1;
    c->fd = fd;
    c->tls = tls;
    c->io_ctx = g_main_context_new();
    c->io_loop = g_main_loop_new(c->io_ctx, FALSE);
    g_mutex_init(&c->cb_lock);
    c->cb_ctx = g_main_context_ref_thread_default();
    rpc_framer_init(&c->framer);
    g_queue_init(&c->outq);
    c->pending = g_hash_table_new(g_direct_hash, g_direct_equal);
    c->streams = g_hash_table_new(g_int64_hash, g_int64_equal);
    c->ka_interval = 5;
    c->ka_count = 5;
    c->last_rx = g_get_monotonic_time();
    client_update_watch(c);
    c->thread = g_thread_new("rpc-client", io_thread, c);
    return c;
}

RpcClient *rpc_client_new_unix(const char *path, GError **error)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_INVALID, "socket path '%s' is too long", path);
        return NULL;
    }
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int saved = errno;

        if (fd >= 0)
            close(fd);
        g_set_error(error, RPC_ERROR, RPC_ERROR_IO, "cannot connect to '%s': %s",
                    path, g_strerror(saved));
        return NULL;
    }
    return rpc_client_new_fd(fd, error);
}

static gboolean io_stop(gpointer data)
{
    RpcClient *c = data;

    client_lost(c, g_error_new_literal(RPC_ERROR, RPC_ERROR_CLOSED, "connection closed"));
    g_main_loop_quit(c->io_loop);
    return G_SOURCE_REMOVE;
}

void rpc_client_free(RpcClient *c)
{
    if (!c)
        return;
    g_atomic_int_set(&c->freed, 1);
    g_main_context_invoke(c->io_ctx, io_stop, c);
    g_thread_join(c->thread);
    client_unref(c);
}

void rpc_client_set_callbacks(RpcClient *c, const RpcClientCallbacks *cb,
                              gpointer opaque, GMainContext *ctx)
{
    g_mutex_lock(&c->cb_lock);
    c->cb = *cb;
    c->cb_opaque = opaque;
    if (ctx) {
        g_main_context_unref(c->cb_ctx);
        c->cb_ctx = g_main_context_ref(ctx);
    }
    g_mutex_unlock(&c->cb_lock);
}

void rpc_client_set_keepalive(RpcClient *c, guint interval, guint count)
{
    c->ka_interval = interval;
    c->ka_count = count ? count : 5;
}

guint32 rpc_client_next_serial(RpcClient *c)
{
    return g_atomic_int_get(&c->next_serial);
}

/* ---------------------------------------------------- callbacks, cb_ctx */

typedef struct CbCall {
    RpcClient *client;              /* reference */
    void (*run)(struct CbCall *cc);
    void (*free)(struct CbCall *cc);
    gpointer a, b;
    gsize len;
    GError *error;
} CbCall;

static gboolean cb_dispatch(gpointer data)
{
    CbCall *cc = data;

    if (!g_atomic_int_get(&cc->client->freed))
        cc->run(cc);
    return G_SOURCE_REMOVE;
}

static void cb_destroy(gpointer data)
{
    CbCall *cc = data;

    if (cc->free)
        cc->free(cc);
    g_clear_error(&cc->error);
    client_unref(cc->client);
    g_free(cc);
}

static void cb_post(RpcClient *c, CbCall *cc)
{
    GMainContext *ctx;

    cc->client = client_ref(c);
    g_mutex_lock(&c->cb_lock);
    ctx = g_main_context_ref(c->cb_ctx);
    g_mutex_unlock(&c->cb_lock);
    /* Not g_main_context_invoke(): callbacks never run in the I/O thread. */
    {
        GSource *s = g_idle_source_new();

        g_source_set_callback(s, cb_dispatch, cc, cb_destroy);
        g_source_attach(s, ctx);
        g_source_unref(s);
    }
    g_main_context_unref(ctx);
}

static void run_closed(CbCall *cc)
{
    RpcClient *c = cc->client;
    RpcClientCallbacks cb;
    gpointer opaque;

    g_mutex_lock(&c->cb_lock);
    cb = c->cb;
    opaque = c->cb_opaque;
    g_mutex_unlock(&c->cb_lock);
    if (cb.closed)
        cb.closed(c, cc->error, opaque);
}

static void run_event(CbCall *cc)
{
    RpcClient *c = cc->client;
    RpcClientCallbacks cb;
    gpointer opaque;

    g_mutex_lock(&c->cb_lock);
    cb = c->cb;
    opaque = c->cb_opaque;
    g_mutex_unlock(&c->cb_lock);
    if (cb.event)
        cb.event(c, cc->a, cc->b, opaque);
}

static void free_event(CbCall *cc)
{
    const RpcProcedure *p = cc->a;

    rpc_payload_free(&p->args, cc->b);
}

/* ------------------------------------------------------------- streams */

static RpcClientStream *stream_ref(RpcClientStream *st)
{
    g_atomic_int_inc(&st->ref);
    return st;
}

static void stream_unref(RpcClientStream *st)
{
    if (!g_atomic_int_dec_and_test(&st->ref))
        return;
    g_clear_error(&st->answer_error);
    g_mutex_clear(&st->m);
    g_cond_clear(&st->cv);
    client_unref(st->client);
    g_free(st);
}

static void run_stream_data(CbCall *cc)
{
    RpcClientStream *st = cc->a;

    if (st->cb.data)
        st->cb.data(st, cc->b, cc->len, st->opaque);
}

static void run_stream_error(CbCall *cc)
{
    RpcClientStream *st = cc->a;

    if (st->cb.error)
        st->cb.error(st, cc->error, st->opaque);
}

static void free_stream_cb(CbCall *cc)
{
    stream_unref(cc->a);
    g_free(cc->b);
}

static void stream_post_data(RpcClientStream *st, const guint8 *data, gsize len)
{
    CbCall *cc = g_new0(CbCall, 1);

    cc->run = run_stream_data;
    cc->free = free_stream_cb;
    cc->a = stream_ref(st);
    cc->b = len ? g_memdup2(data, len) : NULL;
    cc->len = len;
    cb_post(st->client, cc);
}

/* I/O thread: the stream ends; @error (taken) goes to the error callback. */
static void stream_end(RpcClient *c, RpcClientStream *st, GError *error)
{
    g_atomic_int_set(&st->ended, 1);
    if (g_hash_table_remove(c->streams, &st->key)) {
        gboolean waiting;

        g_mutex_lock(&st->m);
        g_atomic_int_set(&st->ended, 1);
        waiting = st->waiting;
        if (waiting) {
            st->answered = TRUE;
            if (error)
                st->answer_error = g_error_copy(error);
            g_cond_broadcast(&st->cv);
        }
        g_mutex_unlock(&st->m);
        if (error && !waiting) {
            CbCall *cc = g_new0(CbCall, 1);

            cc->run = run_stream_error;
            cc->free = free_stream_cb;
            cc->a = stream_ref(st);
            cc->error = g_error_copy(error);
            cb_post(c, cc);
        }
        stream_unref(st);
    }
    if (error)
        g_error_free(error);
}

/* The payload of an ERROR packet as a GError; *out (optional) gets the remote_error. */
static GError *error_from_payload(const guint8 *payload, gsize len, RemoteError **out)
{
    RemoteError *e = g_new0(RemoteError, 1);
    g_autoptr(GError) dec = NULL;
    GError *err = NULL;
    XdrReader r;

    xdr_reader_init(&r, payload, len);
    if (!remote_error_decode(&r, e, &dec) || !xdr_reader_finish(&r, &dec)) {
        rpc_remote_error_free(e);
        return g_error_new(RPC_ERROR, RPC_ERROR_DECODE, "malformed error reply: %s",
                           dec->message);
    }
    rpc_remote_error_to_gerror(e, &err);
    if (out)
        *out = e;
    else
        rpc_remote_error_free(e);
    return err;
}

static void stream_input(RpcClient *c, const RpcHeader *h, const guint8 *payload, gsize len)
{
    gint64 key = (gint64)(((guint64)h->serial << 32) | (guint32)h->proc);
    RpcClientStream *st = g_hash_table_lookup(c->streams, &key);

    if (!st) {
        g_debug("ignoring stream packet for proc %d serial %u", h->proc, h->serial);
        return;
    }
    if (h->type == RPC_STREAM_HOLE)
        return;
    switch (h->status) {
    case RPC_STATUS_CONTINUE:
        stream_post_data(st, payload, len);
        break;
    case RPC_STATUS_OK:
        stream_end(c, st, NULL);
        break;
    case RPC_STATUS_ERROR:
        stream_end(c, st, error_from_payload(payload, len, NULL));
        break;
    default:
        stream_end(c, st, g_error_new(RPC_ERROR, RPC_ERROR_PROTOCOL,
                                      "stream packet with status %u", h->status));
        break;
    }
}

/* -------------------------------------------------------------- pending */

static void pending_free(Pending *p)
{
    if (p->stream)
        stream_unref(p->stream);
    g_bytes_unref(p->pkt);
    rpc_remote_error_free(p->rerr);
    g_clear_error(&p->error);
    g_mutex_clear(&p->m);
    g_cond_clear(&p->cv);
    client_unref(p->client);
    g_free(p);
}

/* A procedure the table does not know is called as void -> void (tests). */
static const RpcProcedure *lookup_proc(guint32 prog, gint32 proc, RpcProcedure *scratch)
{
    const RpcProcedure *p = rpc_protocol_find(prog, proc);

    if (p)
        return p;
    *scratch = (RpcProcedure) { .prog = prog, .vers = 1, .proc = proc, .name = "?" };
    return scratch;
}

typedef struct PendingProc {
    Pending p;
    RpcProcedure scratch;
} PendingProc;

static Pending *pending_new(RpcClient *c, guint32 prog, gint32 proc, const void *args,
                            GError **error)
{
    PendingProc *pp = g_new0(PendingProc, 1);
    Pending *p = &pp->p;
    RpcHeader h = { .prog = prog, .proc = proc, .type = RPC_CALL, .status = RPC_STATUS_OK };

    p->client = client_ref(c);
    g_mutex_init(&p->m);
    g_cond_init(&p->cv);
    p->proc = lookup_proc(prog, proc, &pp->scratch);
    if (p->proc->flags & RPC_PROC_EVENT) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_INVALID, "%s is an event, not a call",
                    p->proc->name);
        pending_free(p);
        return NULL;
    }
    h.vers = p->proc->vers;
    h.serial = p->serial = (guint32)g_atomic_int_add(&c->next_serial, 1);
    p->pkt = rpc_packet_build(&h, &p->proc->args, args, error);
    if (!p->pkt) {
        pending_free(p);
        return NULL;
    }
    return p;
}

static void run_async(CbCall *cc)
{
    Pending *p = cc->a;

    if (p->fn)
        p->fn(cc->client, cc->b, p->error, p->opaque);
}

static void free_async(CbCall *cc)
{
    Pending *p = cc->a;

    rpc_payload_free(&p->proc->ret, cc->b);
    pending_free(p);
}

/* I/O thread: the answer to @p is in (@status, @payload), or @error (taken). */
static void pending_complete(RpcClient *c, Pending *p, guint32 status,
                             const guint8 *payload, gsize len, GError *error)
{
    gpointer heap_ret = NULL;

    if (!error) {
        if (status == RPC_STATUS_OK) {
            if (p->sync) {
                rpc_payload_decode(&p->proc->ret, payload, len, p->ret, &error);
            } else {
                heap_ret = rpc_payload_decode_new(&p->proc->ret, payload, len, &error);
            }
        } else if (status == RPC_STATUS_ERROR) {
            error = error_from_payload(payload, len, &p->rerr);
        } else {
            error = g_error_new(RPC_ERROR, RPC_ERROR_PROTOCOL, "reply with status %u", status);
        }
    }
    if (p->stream && error)
        stream_end(c, p->stream, NULL);
    if (p->sync) {
        g_mutex_lock(&p->m);
        p->error = error;
        p->done = TRUE;
        g_cond_signal(&p->cv);
        g_mutex_unlock(&p->m);
        /* The caller owns @p from here. */
    } else {
        CbCall *cc = g_new0(CbCall, 1);

        p->error = error;
        cc->run = run_async;
        cc->free = free_async;
        cc->a = p;
        cc->b = heap_ret;
        cb_post(c, cc);
    }
}

/* ------------------------------------------------------------ I/O thread */

static void client_queue(RpcClient *c, GBytes *pkt)
{
    if (g_atomic_int_get(&c->closed))
        return;
    g_queue_push_tail(&c->outq, g_bytes_ref(pkt));
    c->out_bytes += g_bytes_get_size(pkt);
    client_update_watch(c);
}

static void client_lost(RpcClient *c, GError *why)
{
    GHashTableIter it;
    gpointer value;
    GPtrArray *list;

    if (!g_atomic_int_compare_and_exchange(&c->closed, 0, 1)) {
        g_error_free(why);
        return;
    }
    g_debug("connection lost: %s", why->message);
    c->close_error = why;
    if (c->watch) {
        g_source_destroy(c->watch);
        g_clear_pointer(&c->watch, g_source_unref);
    }
    if (c->ka_timer) {
        g_source_destroy(c->ka_timer);
        g_clear_pointer(&c->ka_timer, g_source_unref);
    }
    close(c->fd);
    c->fd = -1;
    g_clear_pointer(&c->tls, rpc_tls_session_free);
    g_queue_clear_full(&c->outq, (GDestroyNotify)g_bytes_unref);
    c->out_bytes = 0;

    list = g_ptr_array_new();
    g_hash_table_iter_init(&it, c->pending);
    while (g_hash_table_iter_next(&it, NULL, &value))
        g_ptr_array_add(list, value);
    g_hash_table_remove_all(c->pending);
    for (guint i = 0; i < list->len; i++)
        pending_complete(c, g_ptr_array_index(list, i), 0, NULL, 0, g_error_copy(why));
    g_ptr_array_set_size(list, 0);

    g_hash_table_iter_init(&it, c->streams);
    while (g_hash_table_iter_next(&it, NULL, &value))
        g_ptr_array_add(list, value);
    for (guint i = 0; i < list->len; i++)
        stream_end(c, g_ptr_array_index(list, i), g_error_copy(why));
    g_ptr_array_unref(list);

    {
        CbCall *cc = g_new0(CbCall, 1);

        cc->run = run_closed;
        cc->error = g_error_copy(why);
        cb_post(c, cc);
    }
}

static void client_dispatch(RpcClient *c, GBytes *pkt)
{
    RpcHeader h;
    const guint8 *payload;
    gsize len, plen;
    const guint8 *data = g_bytes_get_data(pkt, &len);
    GError *error = NULL;

    if (!rpc_packet_parse(data, len, &h, &payload, &plen, &error)) {
        client_lost(c, error);
        return;
    }
    c->last_rx = g_get_monotonic_time();
    c->ka_unanswered = 0;
    if (h.prog == KEEPALIVE_PROGRAM && h.type == RPC_MESSAGE) {
        if (h.proc == KEEPALIVE_PROC_PING) {
            GBytes *pong = rpc_packet_keepalive(KEEPALIVE_PROC_PONG);

            client_queue(c, pong);
            g_bytes_unref(pong);
        }
        return;
    }
    switch (h.type) {
    case RPC_REPLY: {
        Pending *p = g_hash_table_lookup(c->pending, GUINT_TO_POINTER(h.serial));

        if (!p || p->proc->prog != h.prog || p->proc->proc != h.proc) {
            g_debug("ignoring reply to unknown call: proc %d serial %u", h.proc, h.serial);
            return;
        }
        g_hash_table_remove(c->pending, GUINT_TO_POINTER(h.serial));
        pending_complete(c, p, h.status, payload, plen, NULL);
        break;
    }
    case RPC_MESSAGE: {
        const RpcProcedure *p = rpc_protocol_find(h.prog, h.proc);
        gpointer msg;
        CbCall *cc;

        if (!p || !(p->flags & RPC_PROC_EVENT)) {
            g_debug("ignoring message proc %d", h.proc);
            return;
        }
        msg = rpc_payload_decode_new(&p->args, payload, plen, &error);
        if (error) {
            g_debug("ignoring malformed %s: %s", p->name, error->message);
            g_error_free(error);
            return;
        }
        cc = g_new0(CbCall, 1);
        cc->run = run_event;
        cc->free = free_event;
        cc->a = (gpointer)p;
        cc->b = msg;
        cb_post(c, cc);
        break;
    }
    case RPC_STREAM:
    case RPC_STREAM_HOLE:
        stream_input(c, &h, payload, plen);
        break;
    default:
        g_debug("ignoring %s packet", rpc_type_name(h.type));
        break;
    }
}

static void client_flush(RpcClient *c)
{
    while (!g_queue_is_empty(&c->outq)) {
        GBytes *head = g_queue_peek_head(&c->outq);
        gsize size;
        const guint8 *p = g_bytes_get_data(head, &size);
        ssize_t n;

        if (c->tls) {
            GError *error = NULL;

            n = rpc_tls_session_send(c->tls, p + c->out_off, size - c->out_off, &error);
            if (n == RPC_TLS_AGAIN)
                return;
            if (n < 0) {
                client_lost(c, error);
                return;
            }
        } else {
            n = send(c->fd, p + c->out_off, size - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                client_lost(c, g_error_new(RPC_ERROR, RPC_ERROR_IO, "cannot write: %s",
                                           g_strerror(errno)));
            return;
        }
        c->out_off += n;
        c->out_bytes -= n;
        if (c->out_off == size) {
            g_bytes_unref(g_queue_pop_head(&c->outq));
            c->out_off = 0;
        }
    }
}

/* Decrypts one record; returns as client_read()'s recv() would, errno set. */
static ssize_t client_recv_tls(RpcClient *c, guint8 *buf, gsize len)
{
    GError *error = NULL;
    gssize n = rpc_tls_session_recv(c->tls, buf, len, &error);

    if (n == RPC_TLS_AGAIN) {
        errno = EAGAIN;
        return -1;
    }
    if (n < 0) {
        client_lost(c, error);
        errno = EAGAIN;         /* reported already */
        return -1;
    }
    return n;
}

static void client_read(RpcClient *c)
{
    guint8 buf[READ_CHUNK];
    ssize_t n;
    gsize off = 0;

again:
    off = 0;
    do {
        n = c->tls ? client_recv_tls(c, buf, sizeof(buf))
                   : recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            client_lost(c, g_error_new(RPC_ERROR, RPC_ERROR_IO, "cannot read: %s",
                                       g_strerror(errno)));
        return;
    }
    if (n == 0) {
        client_lost(c, g_error_new_literal(RPC_ERROR, RPC_ERROR_CLOSED,
                                           "the server closed the connection"));
        return;
    }
    while (off < (gsize)n && !g_atomic_int_get(&c->closed)) {
        GError *error = NULL;
        GBytes *pkt = NULL;
        gssize used = rpc_framer_push(&c->framer, buf + off, n - off, &pkt, &error);

        if (used < 0) {
            client_lost(c, error);
            return;
        }
        off += used;
        if (pkt) {
            client_dispatch(c, pkt);
            g_bytes_unref(pkt);
        }
    }
    /* Records gnutls decrypted already would not wake poll(). */
    if (c->tls && !g_atomic_int_get(&c->closed) && rpc_tls_session_pending(c->tls))
        goto again;
}

static gboolean client_io(gint fd, GIOCondition cond, gpointer data)
{
    RpcClient *c = data;

    if (cond & G_IO_OUT)
        client_flush(c);
    if (!g_atomic_int_get(&c->closed) && (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)))
        client_read(c);
    if (!g_atomic_int_get(&c->closed))
        client_update_watch(c);
    return G_SOURCE_CONTINUE;
}

static void client_update_watch(RpcClient *c)
{
    GIOCondition want = G_IO_IN;

    if (g_atomic_int_get(&c->closed))
        return;
    if (c->out_bytes)
        want |= G_IO_OUT;
    if (c->watch && want == c->watch_cond)
        return;
    if (c->watch) {
        g_source_destroy(c->watch);
        g_clear_pointer(&c->watch, g_source_unref);
    }
    c->watch_cond = want;
    c->watch = g_unix_fd_source_new(c->fd, want);
    g_source_set_callback(c->watch, G_SOURCE_FUNC(client_io), c, NULL);
    g_source_attach(c->watch, c->io_ctx);
}

static gboolean io_send(gpointer data)
{
    Pending *p = data;
    RpcClient *c = p->client;

    if (g_atomic_int_get(&c->closed)) {
        pending_complete(c, p, 0, NULL, 0,
                         c->close_error ? g_error_copy(c->close_error) :
                         g_error_new_literal(RPC_ERROR, RPC_ERROR_CLOSED, "connection closed"));
        return G_SOURCE_REMOVE;
    }
    g_hash_table_insert(c->pending, GUINT_TO_POINTER(p->serial), p);
    if (p->stream)
        g_hash_table_insert(c->streams, &p->stream->key, stream_ref(p->stream));
    client_queue(c, p->pkt);
    return G_SOURCE_REMOVE;
}

typedef struct RawSend {
    RpcClient *client;              /* reference */
    GBytes *pkt;
} RawSend;

static gboolean io_send_raw(gpointer data)
{
    RawSend *rs = data;

    client_queue(rs->client, rs->pkt);
    g_bytes_unref(rs->pkt);
    client_unref(rs->client);
    g_free(rs);
    return G_SOURCE_REMOVE;
}

static gboolean post_raw(RpcClient *c, GBytes *pkt, GError **error)
{
    RawSend *rs;

    if (g_atomic_int_get(&c->closed)) {
        g_set_error_literal(error, RPC_ERROR, RPC_ERROR_CLOSED, "connection closed");
        g_bytes_unref(pkt);
        return FALSE;
    }
    rs = g_new0(RawSend, 1);
    rs->client = client_ref(c);
    rs->pkt = pkt;
    g_main_context_invoke(c->io_ctx, io_send_raw, rs);
    return TRUE;
}

gboolean rpc_client_send_raw(RpcClient *c, GBytes *packet, GError **error)
{
    return post_raw(c, g_bytes_ref(packet), error);
}

/* ------------------------------------------------------------- keepalive */

static gboolean ka_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    return cb(data);
}

static GSourceFuncs ka_funcs = { .dispatch = ka_dispatch };

static gboolean ka_tick(gpointer data)
{
    RpcClient *c = data;
    gint64 now = g_get_monotonic_time();
    gint64 iv = (gint64)c->ka_interval * G_USEC_PER_SEC;
    GBytes *ping;

    if (now - c->last_rx < iv) {
        g_source_set_ready_time(c->ka_timer, c->last_rx + iv);
        return G_SOURCE_CONTINUE;
    }
    if (c->ka_unanswered >= c->ka_count) {
        client_lost(c, g_error_new_literal(RPC_ERROR, RPC_ERROR_TIMEOUT,
                                           "no keepalive response from the server"));
        return G_SOURCE_REMOVE;
    }
    ping = rpc_packet_keepalive(KEEPALIVE_PROC_PING);
    client_queue(c, ping);
    g_bytes_unref(ping);
    c->ka_unanswered++;
    g_source_set_ready_time(c->ka_timer, now + iv);
    return G_SOURCE_CONTINUE;
}

static gboolean io_start_keepalive(gpointer data)
{
    RpcClient *c = data;

    if (!g_atomic_int_get(&c->closed) && !c->ka_timer && c->ka_interval) {
        c->ka_timer = g_source_new(&ka_funcs, sizeof(GSource));
        g_source_set_callback(c->ka_timer, ka_tick, c, NULL);
        g_source_set_ready_time(c->ka_timer,
                                c->last_rx + (gint64)c->ka_interval * G_USEC_PER_SEC);
        g_source_attach(c->ka_timer, c->io_ctx);
    }
    client_unref(c);
    return G_SOURCE_REMOVE;
}

/* ----------------------------------------------------------------- calls */

static gboolean wait_pending(Pending *p, RemoteError **remote_error, GError **error)
{
    gboolean ok;

    g_main_context_invoke(p->client->io_ctx, io_send, p);
    g_mutex_lock(&p->m);
    while (!p->done)
        g_cond_wait(&p->cv, &p->m);
    g_mutex_unlock(&p->m);
    ok = p->error == NULL;
    if (!ok)
        g_propagate_error(error, g_steal_pointer(&p->error));
    if (remote_error)
        *remote_error = g_steal_pointer(&p->rerr);
    return ok;
}

gboolean rpc_client_call_full(RpcClient *c, guint32 prog, gint32 proc,
                              const void *args, void *ret, RemoteError **remote_error,
                              GError **error)
{
    Pending *p;
    gboolean ok;

    if (remote_error)
        *remote_error = NULL;
    p = pending_new(c, prog, proc, args, error);
    if (!p)
        return FALSE;
    if (p->proc->ret.size) {
        g_assert(ret);
        memset(ret, 0, p->proc->ret.size);
    }
    p->sync = TRUE;
    p->ret = ret;
    ok = wait_pending(p, remote_error, error);
    pending_free(p);
    return ok;
}

gboolean rpc_client_call(RpcClient *c, guint32 prog, gint32 proc,
                         const void *args, void *ret, GError **error)
{
    return rpc_client_call_full(c, prog, proc, args, ret, NULL, error);
}

void rpc_client_call_async(RpcClient *c, guint32 prog, gint32 proc,
                           const void *args, RpcClientReplyFunc fn, gpointer opaque)
{
    GError *error = NULL;
    Pending *p = pending_new(c, prog, proc, args, &error);

    if (!p) {
        /* Report through the callback, like any other failure. */
        PendingProc *pp = g_new0(PendingProc, 1);
        CbCall *cc = g_new0(CbCall, 1);

        p = &pp->p;
        p->client = client_ref(c);
        g_mutex_init(&p->m);
        g_cond_init(&p->cv);
        p->proc = lookup_proc(prog, proc, &pp->scratch);
        p->pkt = g_bytes_new(NULL, 0);
        p->error = error;
        p->fn = fn;
        p->opaque = opaque;
        cc->run = run_async;
        cc->free = free_async;
        cc->a = p;
        cb_post(c, cc);
        return;
    }
    p->fn = fn;
    p->opaque = opaque;
    g_main_context_invoke(c->io_ctx, io_send, p);
}

/* ------------------------------------------------------------- handshake */

static gboolean feature(RpcClient *c, int which, gboolean *supported, GError **error)
{
    RemoteConnectSupportsFeatureArgs args = { .feature = which };
    RemoteConnectSupportsFeatureRet ret;

    if (!rpc_client_call(c, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_SUPPORTS_FEATURE,
                         &args, &ret, error))
        return FALSE;
    *supported = ret.supported != 0;
    return TRUE;
}

gboolean rpc_client_open(RpcClient *c, const char *uri, guint flags, GError **error)
{
    g_auto(RemoteAuthListRet) auth = { 0 };
    RemoteConnectOpenArgs open_args = { .name = (char *)uri, .flags = flags };
    gboolean keepalive, event_cb, close_cb;
    gint32 type;

    if (!rpc_client_call(c, REMOTE_PROGRAM, REMOTE_PROC_AUTH_LIST, NULL, &auth, error))
        return FALSE;
    type = auth.n_types ? auth.types[0] : REMOTE_AUTH_NONE;
    if (type == REMOTE_AUTH_POLKIT) {
        RemoteAuthPolkitRet pk;

        if (!rpc_client_call(c, REMOTE_PROGRAM, REMOTE_PROC_AUTH_POLKIT, NULL, &pk, error))
            return FALSE;
        if (!pk.complete) {
            g_set_error_literal(error, RPC_ERROR, RPC_ERROR_PROTOCOL,
                                "polkit authentication did not complete");
            return FALSE;
        }
    } else if (type != REMOTE_AUTH_NONE) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_PROTOCOL,
                    "the server wants authentication type %d, which we do not support", type);
        return FALSE;
    }
    if (!feature(c, RPC_FEATURE_PROGRAM_KEEPALIVE, &keepalive, error))
        return FALSE;
    if (!rpc_client_call(c, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_OPEN, &open_args, NULL, error))
        return FALSE;
    if (!feature(c, RPC_FEATURE_REMOTE_EVENT_CALLBACK, &event_cb, error) ||
        !feature(c, RPC_FEATURE_REMOTE_CLOSE_CALLBACK, &close_cb, error))
        return FALSE;
    if (close_cb) {
        if (!rpc_client_call(c, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_REGISTER_CLOSE_CALLBACK,
                             NULL, NULL, error))
            return FALSE;
        c->close_callback = TRUE;
    }
    if (keepalive && c->ka_interval)
        g_main_context_invoke(c->io_ctx, io_start_keepalive, client_ref(c));
    c->opened = TRUE;
    return TRUE;
}

static gboolean io_close(gpointer data)
{
    RpcClient *c = data;

    client_lost(c, g_error_new_literal(RPC_ERROR, RPC_ERROR_CLOSED, "connection closed"));
    client_unref(c);
    return G_SOURCE_REMOVE;
}

gboolean rpc_client_close(RpcClient *c, GError **error)
{
    gboolean ok = TRUE;

    if (c->close_callback) {
        ok = rpc_client_call(c, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_UNREGISTER_CLOSE_CALLBACK,
                             NULL, NULL, error);
        c->close_callback = FALSE;
    }
    if (ok)
        ok = rpc_client_call(c, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_CLOSE, NULL, NULL, error);
    c->opened = FALSE;
    g_main_context_invoke(c->io_ctx, io_close, client_ref(c));
    return ok;
}

gboolean rpc_client_is_open(RpcClient *c)
{
    return c->opened && !g_atomic_int_get(&c->closed);
}

/* --------------------------------------------------------------- streams */

RpcClientStream *rpc_client_stream_open(RpcClient *c, guint32 prog, gint32 proc,
                                        const void *args,
                                        const RpcClientStreamCallbacks *cb, gpointer opaque,
                                        GError **error)
{
    Pending *p = pending_new(c, prog, proc, args, error);
    RpcClientStream *st;

    if (!p)
        return NULL;
    if (!(p->proc->flags & RPC_PROC_STREAM)) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_INVALID, "%s does not open a stream",
                    p->proc->name);
        pending_free(p);
        return NULL;
    }
    st = g_new0(RpcClientStream, 1);
    st->ref = 1;
    st->client = client_ref(c);
    st->prog = prog;
    st->vers = p->proc->vers;
    st->proc = proc;
    st->serial = p->serial;
    st->key = (gint64)(((guint64)st->serial << 32) | (guint32)proc);
    if (cb)
        st->cb = *cb;
    st->opaque = opaque;
    g_mutex_init(&st->m);
    g_cond_init(&st->cv);
    p->stream = stream_ref(st);
    p->sync = TRUE;
    if (!wait_pending(p, NULL, error)) {
        pending_free(p);
        stream_unref(st);
        return NULL;
    }
    pending_free(p);
    return st;
}

static GBytes *stream_packet(RpcClientStream *st, guint32 status, const void *data, gsize len)
{
    RpcHeader h = {
        .prog = st->prog, .vers = st->vers, .proc = st->proc, .type = RPC_STREAM,
        .serial = st->serial, .status = status,
    };

    return rpc_packet_build_raw(&h, data, len, NULL);
}

gboolean rpc_client_stream_send(RpcClientStream *st, const void *data, gsize len,
                                GError **error)
{
    const guint8 *p = data;

    if (g_atomic_int_get(&st->ended)) {
        g_set_error_literal(error, RPC_ERROR, RPC_ERROR_CLOSED, "the stream has ended");
        return FALSE;
    }
    while (len) {
        gsize n = MIN(len, RPC_STREAM_CHUNK);

        if (!post_raw(st->client, stream_packet(st, RPC_STATUS_CONTINUE, p, n), error))
            return FALSE;
        p += n;
        len -= n;
    }
    return TRUE;
}

/* Sends the last packet of the stream (@status OK or ERROR) and waits for the answer. */
static gboolean stream_close(RpcClientStream *st, guint32 status, GError **error)
{
    GError *answer;

    g_mutex_lock(&st->m);
    if (g_atomic_int_get(&st->ended)) {
        g_mutex_unlock(&st->m);
        g_set_error_literal(error, RPC_ERROR, RPC_ERROR_CLOSED, "the stream has ended");
        return FALSE;
    }
    st->waiting = TRUE;
    g_mutex_unlock(&st->m);
    if (!post_raw(st->client, stream_packet(st, status, NULL, 0), error))
        return FALSE;
    g_mutex_lock(&st->m);
    while (!st->answered)
        g_cond_wait(&st->cv, &st->m);
    answer = g_steal_pointer(&st->answer_error);
    g_mutex_unlock(&st->m);
    /* An abort is answered with an error: that is the expected answer. */
    if (answer && status == RPC_STATUS_ERROR && answer->domain == RPC_REMOTE_ERROR) {
        g_error_free(answer);
        return TRUE;
    }
    if (answer) {
        g_propagate_error(error, answer);
        return FALSE;
    }
    return TRUE;
}

gboolean rpc_client_stream_finish(RpcClientStream *st, GError **error)
{
    return stream_close(st, RPC_STATUS_OK, error);
}

gboolean rpc_client_stream_abort(RpcClientStream *st, GError **error)
{
    return stream_close(st, RPC_STATUS_ERROR, error);
}

static gboolean io_stream_drop(gpointer data)
{
    RpcClientStream *st = data;
    RpcClient *c = st->client;

    if (g_hash_table_lookup(c->streams, &st->key) == st) {
        GBytes *pkt = stream_packet(st, RPC_STATUS_ERROR, NULL, 0);

        client_queue(c, pkt);
        g_bytes_unref(pkt);
        g_atomic_int_set(&st->ended, 1);
        g_hash_table_remove(c->streams, &st->key);
        stream_unref(st);
    }
    stream_unref(st);
    return G_SOURCE_REMOVE;
}

void rpc_client_stream_free(RpcClientStream *st)
{
    if (!st)
        return;
    if (!g_atomic_int_get(&st->ended))
        g_main_context_invoke(st->client->io_ctx, io_stream_drop, stream_ref(st));
    stream_unref(st);
}
