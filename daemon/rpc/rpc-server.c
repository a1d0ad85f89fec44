/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The RPC server: connections, framing, dispatch, replies, streams and
 * keepalive. See include/vireo/rpc-server.h for the contracts.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib-unix.h>

#include "rpc-server-priv.h"
#include "vireo/util.h"

#define READ_CHUNK 65536
#define READS_PER_WAKEUP 16
#define ACCEPTS_PER_WAKEUP 64
#define FDS_MAX 32              /* VIR_NET_MESSAGE_NUM_FDS_MAX */
/* libvirt sends events with serial 1 (seen in every capture). */
#define EVENT_SERIAL 1
/*
 * A client must finish its TLS handshake within this, so that idle
 * connections cannot take every client slot (max_clients).
 */
#define TLS_HANDSHAKE_TIMEOUT_S 30

struct RpcCall {
    RpcServerClient *client;    /* reference */
    const RpcProcedure *proc;
    RpcHeader hdr;
    gpointer args;              /* decoded, owned; freed in the loop thread */
    RpcStream *stream;          /* reference, from rpc_call_open_stream() */
};

struct RpcStream {
    gint ref;                   /* atomic */
    gint closed;                /* atomic: no more sending */
    RpcServerClient *client;    /* reference */
    guint32 prog;
    guint32 vers;
    gint32 proc;
    guint32 serial;
    gint64 key;                 /* in client->streams */
    gboolean active;            /* loop thread: the opening call succeeded */
    gboolean ended;             /* loop thread: out of client->streams */
    GQueue pending;             /* loop thread: packets sent before activation */
    RpcStreamCallbacks cb;
    gpointer opaque;
};

typedef struct RpcListener {
    RpcServer *srv;
    int fd;
    gboolean readonly;
    gboolean no_auth;       /* TCP without authentication (rpc_server_add_tcp_listener) */
    RpcTlsCreds *tls;       /* reference, or NULL (rpc_server_add_tls_listener) */
    GSource *source;
} RpcListener;

static void client_close_now(RpcServerClient *c, const char *why);
static void client_update_watch(RpcServerClient *c);
static void client_process_input(RpcServerClient *c);
static void stream_end(RpcStream *st, gboolean notify_abort);

static RateLimit accept_limit;

static gint64 handler_key(guint32 prog, gint32 proc)
{
    return (gint64)(((guint64)prog << 32) | (guint32)proc);
}

static gboolean client_is_closed(RpcServerClient *c)
{
    return g_atomic_int_get(&c->closed);
}

/* ---------------------------------------------------------------- server */

RpcServer *rpc_server_ref_internal(RpcServer *srv)
{
    g_atomic_int_inc(&srv->ref);
    return srv;
}

void rpc_server_unref_internal(RpcServer *srv)
{
    if (!g_atomic_int_dec_and_test(&srv->ref))
        return;
    g_hash_table_unref(srv->handlers);
    g_array_unref(srv->programs);
    g_ptr_array_unref(srv->listeners);
    g_ptr_array_unref(srv->clients);
    g_main_context_unref(srv->ctx);
    g_free(srv);
}

static void listener_free(gpointer data)
{
    RpcListener *l = data;

    if (l->source) {
        g_source_destroy(l->source);
        g_source_unref(l->source);
    }
    if (l->fd >= 0)
        close(l->fd);
    rpc_tls_creds_unref(l->tls);
    g_free(l);
}

RpcServer *rpc_server_new(GMainContext *ctx, const RpcServerLimits *limits)
{
    RpcServer *srv = g_new0(RpcServer, 1);
    guint64 remote = ((guint64)REMOTE_PROGRAM << 32) | REMOTE_PROTOCOL_VERSION;

    srv->ref = 1;
    srv->ctx = ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default();
    srv->limits = (RpcServerLimits) {
        .max_clients = RPC_SERVER_DEFAULT_MAX_CLIENTS,
        .max_calls = RPC_SERVER_DEFAULT_MAX_CALLS,
        .max_output = RPC_SERVER_DEFAULT_MAX_OUTPUT,
        .keepalive_interval = RPC_SERVER_DEFAULT_KEEPALIVE_INTERVAL,
        .keepalive_count = RPC_SERVER_DEFAULT_KEEPALIVE_COUNT,
    };
    if (limits) {
        /* Zero means "default", except for keepalive_interval (off). */
        if (limits->max_clients)
            srv->limits.max_clients = limits->max_clients;
        if (limits->max_calls)
            srv->limits.max_calls = limits->max_calls;
        if (limits->max_output)
            srv->limits.max_output = limits->max_output;
        srv->limits.keepalive_interval = limits->keepalive_interval;
        if (limits->keepalive_count)
            srv->limits.keepalive_count = limits->keepalive_count;
    }
    srv->error_domain = RPC_FROM_QEMU;
    srv->handlers = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    srv->programs = g_array_new(FALSE, FALSE, sizeof(guint64));
    g_array_append_val(srv->programs, remote);
    srv->listeners = g_ptr_array_new_with_free_func(listener_free);
    srv->clients = g_ptr_array_new_with_free_func((GDestroyNotify)rpc_server_client_unref);
    rpc_builtin_register(srv);
    rpc_events_register(srv);
    return srv;
}

void rpc_server_free(RpcServer *srv)
{
    if (!srv)
        return;
    g_ptr_array_set_size(srv->listeners, 0);
    while (srv->clients->len)
        client_close_now(g_ptr_array_index(srv->clients, srv->clients->len - 1),
                         "server shutting down");
    rpc_server_unref_internal(srv);
}

void rpc_server_set_hooks(RpcServer *srv, const RpcServerHooks *hooks, gpointer opaque)
{
    srv->hooks = *hooks;
    srv->hooks_opaque = opaque;
}

void rpc_server_set_error_domain(RpcServer *srv, int domain)
{
    srv->error_domain = domain;
}

void rpc_server_add_program(RpcServer *srv, guint32 prog, guint32 vers)
{
    guint64 key = ((guint64)prog << 32) | vers;

    g_array_append_val(srv->programs, key);
}

static gboolean server_serves(RpcServer *srv, guint32 prog, guint32 vers)
{
    guint64 key = ((guint64)prog << 32) | vers;

    for (guint i = 0; i < srv->programs->len; i++) {
        if (g_array_index(srv->programs, guint64, i) == key)
            return TRUE;
    }
    return FALSE;
}

void rpc_server_set_handler(RpcServer *srv, guint32 prog, gint32 proc,
                            RpcHandlerFunc fn, gpointer opaque)
{
    const RpcProcedure *p = rpc_protocol_find(prog, proc);
    gint64 *key = g_new(gint64, 1);
    RpcHandler *h = g_new(RpcHandler, 1);

    /* Only typed, callable procedures can have handlers. */
    g_assert(p && !(p->flags & RPC_PROC_EVENT));
    *key = handler_key(prog, proc);
    h->fn = fn;
    h->opaque = opaque;
    g_hash_table_replace(srv->handlers, key, h);
}

guint rpc_server_get_n_clients(RpcServer *srv)
{
    return srv->clients->len;
}

/* --------------------------------------------------------------- clients */

RpcServerClient *rpc_server_client_ref(RpcServerClient *c)
{
    g_atomic_int_inc(&c->ref);
    return c;
}

void rpc_server_client_unref(RpcServerClient *c)
{
    if (!c || !g_atomic_int_dec_and_test(&c->ref))
        return;
    g_assert(client_is_closed(c));
    if (c->data_free)
        c->data_free(c->data);
    if (c->streams)
        g_hash_table_unref(c->streams);
    if (c->event_regs)
        g_array_unref(c->event_regs);
    rpc_server_unref_internal(c->srv);
    g_free(c);
}

RpcServer *rpc_server_client_get_server(RpcServerClient *c)
{
    return c->srv;
}

guint64 rpc_server_client_get_id(RpcServerClient *c)
{
    return c->id;
}

gboolean rpc_server_client_is_readonly(RpcServerClient *c)
{
    return c->readonly;
}

gboolean rpc_server_client_is_open(RpcServerClient *c)
{
    return c->opened;
}

gboolean rpc_server_client_is_closed(RpcServerClient *c)
{
    return client_is_closed(c);
}

gboolean rpc_server_client_get_peer(RpcServerClient *c, RpcPeerCred *cred)
{
    if (!c->have_cred)
        return FALSE;
    *cred = c->cred;
    return TRUE;
}

void rpc_server_client_set_data(RpcServerClient *c, gpointer data, GDestroyNotify free_fn)
{
    if (c->data_free)
        c->data_free(c->data);
    c->data = data;
    c->data_free = free_fn;
}

gpointer rpc_server_client_get_data(RpcServerClient *c)
{
    return c->data;
}

gsize rpc_server_client_get_queued(RpcServerClient *c)
{
    return c->out_bytes;
}

static gboolean default_authorize(const RpcPeerCred *cred)
{
    return cred->uid == 0 || cred->uid == geteuid();
}

static RpcServerClient *client_new(RpcServer *srv, int fd, gboolean readonly)
{
    RpcServerClient *c = g_new0(RpcServerClient, 1);
    struct ucred uc;
    socklen_t len = sizeof(uc);

    c->ref = 1;
    c->srv = rpc_server_ref_internal(srv);
    c->id = ++srv->next_client_id;
    c->fd = fd;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0 && len == sizeof(uc)) {
        c->have_cred = TRUE;
        c->cred = (RpcPeerCred) { .uid = uc.uid, .gid = uc.gid, .pid = uc.pid };
    }
    c->readonly = readonly;
    if (readonly) {
        c->authenticated = TRUE;
    } else if (c->have_cred) {
        c->authenticated = srv->hooks.authorize ?
            srv->hooks.authorize(&c->cred, srv->hooks_opaque) : default_authorize(&c->cred);
    }
    rpc_framer_init(&c->framer);
    c->inbuf = g_byte_array_new();
    g_queue_init(&c->outq);
    c->streams = g_hash_table_new(g_int64_hash, g_int64_equal);
    c->event_regs = g_array_new(FALSE, FALSE, sizeof(RpcEventReg));
    c->last_rx = g_get_monotonic_time();
    g_ptr_array_add(srv->clients, c);
    g_debug("client %" G_GUINT64_FORMAT ": connected (%s socket, uid %d, %s)", c->id,
            readonly ? "read-only" : "read-write", c->have_cred ? (int)c->cred.uid : -1,
            c->authenticated ? "authorized" : "not authorized");
    client_update_watch(c);
    return c;
}

RpcServerClient *rpc_server_add_connection(RpcServer *srv, int fd, gboolean readonly,
                                           GError **error)
{
    if (!g_unix_set_fd_nonblocking(fd, TRUE, error)) {
        close(fd);
        return NULL;
    }
    return client_new(srv, fd, readonly);
}

static void client_close_now(RpcServerClient *c, const char *why)
{
    RpcServer *srv = c->srv;
    GHashTableIter it;
    gpointer value;
    GPtrArray *streams;

    if (!g_atomic_int_compare_and_exchange(&c->closed, 0, 1))
        return;
    g_debug("client %" G_GUINT64_FORMAT ": closing: %s", c->id, why);
    rpc_server_client_ref(c);
    if (c->watch) {
        g_source_destroy(c->watch);
        g_clear_pointer(&c->watch, g_source_unref);
    }
    if (c->ka_timer) {
        g_source_destroy(c->ka_timer);
        g_clear_pointer(&c->ka_timer, g_source_unref);
    }
    if (c->tls_timer) {
        g_source_destroy(c->tls_timer);
        g_clear_pointer(&c->tls_timer, g_source_unref);
    }
    close(c->fd);
    c->fd = -1;
    g_clear_pointer(&c->tls, rpc_tls_session_free);
    g_queue_clear_full(&c->outq, (GDestroyNotify)g_bytes_unref);
    c->out_bytes = 0;
    c->out_off = 0;
    rpc_framer_clear(&c->framer);
    g_clear_pointer(&c->inbuf, g_byte_array_unref);

    streams = g_ptr_array_new();
    g_hash_table_iter_init(&it, c->streams);
    while (g_hash_table_iter_next(&it, NULL, &value))
        g_ptr_array_add(streams, value);
    for (guint i = 0; i < streams->len; i++)
        stream_end(g_ptr_array_index(streams, i), TRUE);
    g_ptr_array_unref(streams);

    rpc_events_client_clear(c);
    if (srv->hooks.disconnected)
        srv->hooks.disconnected(c, srv->hooks_opaque);
    g_ptr_array_remove_fast(srv->clients, c);
    rpc_server_client_unref(c);
}

void rpc_server_client_close(RpcServerClient *c, gboolean flush)
{
    if (client_is_closed(c))
        return;
    if (flush && c->out_bytes) {
        c->close_after_flush = TRUE;
        client_update_watch(c);
        return;
    }
    client_close_now(c, "closed by the server");
}

/* Input is processed only while the client is within its limits. */
static gboolean client_can_dispatch(RpcServerClient *c)
{
    return !client_is_closed(c) && !c->close_after_flush &&
           c->ncalls < c->srv->limits.max_calls &&
           c->out_bytes <= c->srv->limits.max_output;
}

static gboolean client_io(gint fd, GIOCondition cond, gpointer data);

static gboolean client_tls_pending(RpcServerClient *c)
{
    return c->tls && !c->tls_handshaking && rpc_tls_session_pending(c->tls) > 0;
}

/*
 * Records gnutls decrypted already do not wake poll(): when input is
 * wanted again after a pause, run the watch at once to take them.
 */
static void client_kick_tls_pending(RpcServerClient *c)
{
    if (c->watch && (c->watch_cond & G_IO_IN) && client_tls_pending(c))
        g_source_set_ready_time(c->watch, 0);
}

static void client_update_watch(RpcServerClient *c)
{
    GIOCondition want = 0;

    if (client_is_closed(c))
        return;
    if (c->tls_handshaking)
        want = c->tls_want_write ? G_IO_OUT : G_IO_IN;
    else if (client_can_dispatch(c) && (!c->inbuf || c->in_off >= c->inbuf->len))
        want |= G_IO_IN;
    if (c->out_bytes)
        want |= G_IO_OUT;
    if (c->watch && want == c->watch_cond) {
        client_kick_tls_pending(c);
        return;
    }
    if (c->watch) {
        g_source_destroy(c->watch);
        g_clear_pointer(&c->watch, g_source_unref);
    }
    c->watch_cond = want;
    if (!want)
        return;
    c->watch = g_unix_fd_source_new(c->fd, want);
    /* The server's list holds a reference for as long as the watch exists. */
    g_source_set_callback(c->watch, G_SOURCE_FUNC(client_io), c, NULL);
    g_source_attach(c->watch, c->srv->ctx);
    client_kick_tls_pending(c);
}

static void client_queue(RpcServerClient *c, GBytes *pkt)
{
    if (client_is_closed(c))
        return;
    g_queue_push_tail(&c->outq, g_bytes_ref(pkt));
    c->out_bytes += g_bytes_get_size(pkt);
    client_update_watch(c);
}

void rpc_server_client_queue_unsolicited(RpcServerClient *c, GBytes *pkt)
{
    if (client_is_closed(c))
        return;
    if (c->out_bytes > c->srv->limits.max_output) {
        static RateLimit rl;
        int suppressed;

        if (ratelimit_allow(&rl, &suppressed))
            g_warning("client %" G_GUINT64_FORMAT ": dropped: %zu bytes of output not read%s",
                      c->id, c->out_bytes, suppressed ? " (and others)" : "");
        client_close_now(c, "output limit");
        return;
    }
    client_queue(c, pkt);
}

static void client_flush(RpcServerClient *c)
{
    while (!g_queue_is_empty(&c->outq)) {
        GBytes *head = g_queue_peek_head(&c->outq);
        gsize size;
        const guint8 *p = g_bytes_get_data(head, &size);
        ssize_t n;

        if (c->tls) {
            g_autoptr(GError) error = NULL;

            n = rpc_tls_session_send(c->tls, p + c->out_off, size - c->out_off, &error);
            if (n == RPC_TLS_AGAIN)
                return;
            if (n < 0) {
                client_close_now(c, error->message);
                return;
            }
        } else {
            n = send(c->fd, p + c->out_off, size - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                client_close_now(c, g_strerror(errno));
            return;
        }
        c->out_off += n;
        c->out_bytes -= n;
        if (c->out_off == size) {
            g_bytes_unref(g_queue_pop_head(&c->outq));
            c->out_off = 0;
        }
    }
    if (c->close_after_flush)
        client_close_now(c, "closed after the last reply");
}

/* client_read_some() over TLS: one record, into c->inbuf sized READ_CHUNK. */
static gboolean client_read_tls(RpcServerClient *c)
{
    g_autoptr(GError) error = NULL;
    gssize n = rpc_tls_session_recv(c->tls, c->inbuf->data, READ_CHUNK, &error);

    g_byte_array_set_size(c->inbuf, n > 0 ? n : 0);
    if (n == RPC_TLS_AGAIN)
        return FALSE;
    if (n < 0)
        client_close_now(c, error->message);
    else if (n == 0)
        client_close_now(c, "end of file");
    return n > 0;
}

/* Reads once; FALSE when nothing more can be read now. */
static gboolean client_read_some(RpcServerClient *c)
{
    guint8 cbuf[CMSG_SPACE(sizeof(int) * FDS_MAX)];
    struct iovec iov;
    struct msghdr msg = { 0 };
    struct cmsghdr *cm;
    ssize_t n;

    g_byte_array_set_size(c->inbuf, READ_CHUNK);
    c->in_off = 0;
    if (c->tls)
        return client_read_tls(c);
    iov.iov_base = c->inbuf->data;
    iov.iov_len = READ_CHUNK;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof(cbuf);
    do {
        n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        g_byte_array_set_size(c->inbuf, 0);
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            client_close_now(c, g_strerror(errno));
        return FALSE;
    }
    /* We never take file descriptors: close any that came along. */
    for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            gsize nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            for (gsize i = 0; i < nfd; i++) {
                int fd;

                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                close(fd);
            }
        }
    }
    g_byte_array_set_size(c->inbuf, n);
    if (n == 0) {
        client_close_now(c, "end of file");
        return FALSE;
    }
    return TRUE;
}

/* One step of a TLS client's handshake; the loop calls it when the socket is ready. */
static void client_tls_handshake(RpcServerClient *c)
{
    g_autoptr(GError) error = NULL;
    static RateLimit tls_limit;
    int suppressed;
    GBytes *confirm;

    switch (rpc_tls_session_handshake(c->tls, &error)) {
    case RPC_TLS_WANT_READ:
        c->tls_want_write = FALSE;
        return;
    case RPC_TLS_WANT_WRITE:
        c->tls_want_write = TRUE;
        return;
    case RPC_TLS_FAILED:
        if (ratelimit_allow(&tls_limit, &suppressed))
            g_warning("client %" G_GUINT64_FORMAT ": refused: %s%s", c->id, error->message,
                      suppressed ? " (and others)" : "");
        client_close_now(c, error->message);
        return;
    case RPC_TLS_DONE:
        break;
    }
    c->tls_handshaking = FALSE;
    g_source_destroy(c->tls_timer);
    g_clear_pointer(&c->tls_timer, g_source_unref);
    c->authenticated = TRUE;    /* libvirtd's auth_tls = "none": the certificate is enough */
    g_debug("client %" G_GUINT64_FORMAT ": TLS handshake done", c->id);
    /* libvirt's client waits for this byte before its first call. */
    confirm = g_bytes_new_static("\1", 1);
    client_queue(c, confirm);
    g_bytes_unref(confirm);
}

static gboolean client_io(gint fd, GIOCondition cond, gpointer data)
{
    RpcServerClient *c = data;

    rpc_server_client_ref(c);
    if (c->tls_handshaking) {
        client_tls_handshake(c);
        if (!client_is_closed(c))
            client_update_watch(c);
        rpc_server_client_unref(c);
        return G_SOURCE_CONTINUE;
    }
    if (c->tls) {
        /* Woken by client_kick_tls_pending(), or by the socket: either way, once. */
        g_source_set_ready_time(c->watch, -1);
        if (client_tls_pending(c))
            cond |= G_IO_IN;
    }
    if (cond & (G_IO_OUT | G_IO_ERR | G_IO_HUP))
        client_flush(c);
    /* Input left over from when the client was over a limit. */
    client_process_input(c);
    for (guint i = 0; i < READS_PER_WAKEUP && !client_is_closed(c); i++) {
        if (!(cond & (G_IO_IN | G_IO_ERR | G_IO_HUP) || client_tls_pending(c)) ||
            !client_can_dispatch(c) || c->in_off < c->inbuf->len)
            break;
        if (!client_read_some(c))
            break;
        client_process_input(c);
    }
    if (!client_is_closed(c))
        client_update_watch(c);
    rpc_server_client_unref(c);
    return G_SOURCE_CONTINUE;
}

/* ------------------------------------------------------------ dispatching */

static void send_error(RpcServerClient *c, const RpcHeader *call, guint32 type,
                       RemoteError *err)
{
    g_autoptr(GError) error = NULL;
    GBytes *pkt = rpc_packet_build_error(call, type, err, &error);

    if (!pkt) {
        g_warning("cannot encode an error reply: %s", error->message);
        rpc_remote_error_free(err);
        return;
    }
    client_queue(c, pkt);
    g_bytes_unref(pkt);
    rpc_remote_error_free(err);
}

static void dispatch_call(RpcServerClient *c, const RpcHeader *h,
                          const guint8 *payload, gsize len)
{
    RpcServer *srv = c->srv;
    const RpcProcedure *p;
    const char *api;
    RpcHandler *handler;
    gint64 key;
    gpointer args;
    RpcCall *call;
    g_autoptr(GError) error = NULL;

    if (h->status != RPC_STATUS_OK) {
        send_error(c, h, RPC_REPLY, rpc_remote_error_new(RPC_ERR_RPC, RPC_FROM_RPC,
                   "Unexpected message status %u", h->status));
        return;
    }
    p = rpc_protocol_find(h->prog, h->proc);
    if (!p || (p->flags & RPC_PROC_EVENT)) {
        api = p ? NULL : rpc_protocol_api_name(h->prog, h->proc);
        if (api)
            send_error(c, h, RPC_REPLY,
                       rpc_remote_error_new(RPC_ERR_NO_SUPPORT, RPC_FROM_DOMAIN, "%s", api));
        else
            send_error(c, h, RPC_REPLY, rpc_remote_error_new(RPC_ERR_RPC, RPC_FROM_RPC,
                       "unknown procedure: %d", h->proc));
        return;
    }
    if (!c->authenticated && !(p->flags & RPC_PROC_NOAUTH)) {
        send_error(c, h, RPC_REPLY, rpc_remote_error_new(RPC_ERR_RPC, RPC_FROM_RPC,
                   "authentication required"));
        return;
    }
    args = rpc_payload_decode_new(&p->args, payload, len, &error);
    if (error) {
        g_debug("client %" G_GUINT64_FORMAT ": %s serial %u: %s", c->id, p->name,
                h->serial, error->message);
        send_error(c, h, RPC_REPLY, rpc_remote_error_new(RPC_ERR_RPC, RPC_FROM_RPC,
                   "Unable to decode message payload"));
        return;
    }
    if (!c->opened && !(p->flags & RPC_PROC_NOOPEN)) {
        send_error(c, h, RPC_REPLY, rpc_remote_error_new(RPC_ERR_INTERNAL_ERROR, RPC_FROM_RPC,
                   "hypervisor connection not open"));
        rpc_payload_free(&p->args, args);
        return;
    }
    if (c->readonly && !(p->flags & RPC_PROC_RO)) {
        send_error(c, h, RPC_REPLY, rpc_remote_error_new(RPC_ERR_OPERATION_DENIED, RPC_FROM_DOMAIN,
                   "read only access prevents %s", p->api));
        rpc_payload_free(&p->args, args);
        return;
    }
    key = handler_key(h->prog, h->proc);
    handler = g_hash_table_lookup(srv->handlers, &key);
    if (!handler) {
        send_error(c, h, RPC_REPLY, rpc_remote_error_new(RPC_ERR_NO_SUPPORT, RPC_FROM_DOMAIN,
                   "%s", p->api));
        rpc_payload_free(&p->args, args);
        return;
    }
    call = g_new0(RpcCall, 1);
    call->client = rpc_server_client_ref(c);
    call->proc = p;
    call->hdr = *h;
    call->args = args;
    c->ncalls++;
    handler->fn(call, args, handler->opaque);
}

static RpcStream *stream_lookup(RpcServerClient *c, gint32 proc, guint32 serial)
{
    gint64 key = handler_key(serial, proc);

    return g_hash_table_lookup(c->streams, &key);
}

static void stream_input(RpcServerClient *c, const RpcHeader *h,
                         const guint8 *payload, gsize len)
{
    RpcStream *st = stream_lookup(c, h->proc, h->serial);
    RpcHeader reply = *h;

    /* Late packets for an ended stream are normal (data is not acked). */
    if (!st || !st->active) {
        g_debug("client %" G_GUINT64_FORMAT ": ignoring stream packet proc %d serial %u",
                c->id, h->proc, h->serial);
        return;
    }
    if (h->type == RPC_STREAM_HOLE) {
        g_debug("client %" G_GUINT64_FORMAT ": ignoring stream hole", c->id);
        return;
    }
    rpc_stream_ref(st);
    switch (h->status) {
    case RPC_STATUS_CONTINUE:
        if (st->cb.data)
            st->cb.data(st, payload, len, st->opaque);
        break;
    case RPC_STATUS_OK: {
        GBytes *pkt;

        g_atomic_int_set(&st->closed, 1);
        if (st->cb.finish)
            st->cb.finish(st, st->opaque);
        stream_end(st, FALSE);
        reply.status = RPC_STATUS_OK;
        pkt = rpc_packet_build_raw(&reply, NULL, 0, NULL);
        client_queue(c, pkt);
        g_bytes_unref(pkt);
        break;
    }
    default:
        g_atomic_int_set(&st->closed, 1);
        stream_end(st, TRUE);
        if (h->status == RPC_STATUS_ERROR)
            send_error(c, h, RPC_STREAM, rpc_remote_error_new(RPC_ERR_RPC, RPC_FROM_STREAMS,
                       "stream aborted at client request"));
        else
            send_error(c, h, RPC_STREAM, rpc_remote_error_new(RPC_ERR_RPC, RPC_FROM_STREAMS,
                       "stream aborted with unexpected status %u", h->status));
        break;
    }
    rpc_stream_unref(st);
}

static void client_dispatch(RpcServerClient *c, GBytes *pkt)
{
    RpcHeader h;
    const guint8 *payload;
    gsize len, plen;
    const guint8 *data = g_bytes_get_data(pkt, &len);
    g_autoptr(GError) error = NULL;

    if (!rpc_packet_parse(data, len, &h, &payload, &plen, &error)) {
        client_close_now(c, error->message);
        return;
    }
    c->last_rx = g_get_monotonic_time();
    c->ka_unanswered = 0;

    if (h.prog == KEEPALIVE_PROGRAM && h.vers == KEEPALIVE_PROTOCOL_VERSION &&
        h.type == RPC_MESSAGE) {
        if (h.proc == KEEPALIVE_PROC_PING) {
            GBytes *pong = rpc_packet_keepalive(KEEPALIVE_PROC_PONG);

            client_queue(c, pong);
            g_bytes_unref(pong);
        }
        return;
    }
    if (!server_serves(c->srv, h.prog, h.vers)) {
        /* Only calls expect an answer; anything else is dropped, as libvirtd does. */
        if (h.type == RPC_CALL || h.type == RPC_CALL_WITH_FDS)
            send_error(c, &h, RPC_REPLY, rpc_remote_error_new(RPC_ERR_RPC, RPC_FROM_RPC,
                       "Cannot find program %d version %d", (int)h.prog, (int)h.vers));
        return;
    }
    switch (h.type) {
    case RPC_CALL:
        dispatch_call(c, &h, payload, plen);
        break;
    case RPC_CALL_WITH_FDS:
        send_error(c, &h, RPC_REPLY, rpc_remote_error_new(RPC_ERR_RPC, RPC_FROM_RPC,
                   "file descriptor passing is not supported"));
        break;
    case RPC_STREAM:
    case RPC_STREAM_HOLE:
        stream_input(c, &h, payload, plen);
        break;
    default:
        g_debug("client %" G_GUINT64_FORMAT ": dropping %s packet, proc %d", c->id,
                rpc_type_name(h.type), h.proc);
        break;
    }
}

static void client_process_input(RpcServerClient *c)
{
    if (c->processing || client_is_closed(c))
        return;
    c->processing = TRUE;
    rpc_server_client_ref(c);
    while (!client_is_closed(c) && c->in_off < c->inbuf->len && client_can_dispatch(c)) {
        g_autoptr(GError) error = NULL;
        GBytes *pkt = NULL;
        gssize n = rpc_framer_push(&c->framer, c->inbuf->data + c->in_off,
                                   c->inbuf->len - c->in_off, &pkt, &error);

        if (n < 0) {
            client_close_now(c, error->message);
            break;
        }
        c->in_off += n;
        if (pkt) {
            client_dispatch(c, pkt);
            g_bytes_unref(pkt);
        }
    }
    if (!client_is_closed(c) && c->in_off >= c->inbuf->len) {
        g_byte_array_set_size(c->inbuf, 0);
        c->in_off = 0;
    }
    c->processing = FALSE;
    if (!client_is_closed(c))
        client_update_watch(c);
    rpc_server_client_unref(c);
}

/* --------------------------------------------------------------- accept */

static gboolean client_tls_timeout(gpointer data)
{
    RpcServerClient *c = data;

    g_debug("client %" G_GUINT64_FORMAT ": no TLS handshake within %d s", c->id,
            TLS_HANDSHAKE_TIMEOUT_S);
    client_close_now(c, "TLS handshake timed out");
    return G_SOURCE_REMOVE;
}

static void client_start_tls(RpcServerClient *c, RpcTlsCreds *creds)
{
    g_autoptr(GError) error = NULL;

    c->authenticated = FALSE;
    c->tls = rpc_tls_session_new(creds, c->fd, NULL, &error);
    if (!c->tls) {
        g_warning("client %" G_GUINT64_FORMAT ": %s", c->id, error->message);
        client_close_now(c, error->message);
        return;
    }
    c->tls_handshaking = TRUE;
    c->tls_want_write = FALSE;
    c->tls_timer = g_timeout_source_new_seconds(TLS_HANDSHAKE_TIMEOUT_S);
    g_source_set_callback(c->tls_timer, client_tls_timeout, c, NULL);
    g_source_attach(c->tls_timer, c->srv->ctx);
    client_update_watch(c);
}

static gboolean listener_io(gint fd, GIOCondition cond, gpointer data)
{
    RpcListener *l = data;
    RpcServer *srv = l->srv;

    for (guint i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        int cfd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        RpcServerClient *c;
        int suppressed;

        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK &&
                ratelimit_allow(&accept_limit, &suppressed))
                g_warning("accept: %s", g_strerror(errno));
            break;
        }
        if (srv->clients->len >= srv->limits.max_clients) {
            if (ratelimit_allow(&accept_limit, &suppressed))
                g_warning("refusing a connection: %u clients already", srv->clients->len);
            close(cfd);
            continue;
        }
        c = client_new(srv, cfd, l->readonly);
        if (l->no_auth)
            c->authenticated = TRUE;    /* libvirtd's auth_tcp = "none" */
        if (l->tls)
            client_start_tls(c, l->tls);
    }
    return G_SOURCE_CONTINUE;
}

gboolean rpc_server_add_listener(RpcServer *srv, int fd, gboolean readonly, GError **error)
{
    RpcListener *l;

    if (!g_unix_set_fd_nonblocking(fd, TRUE, error)) {
        close(fd);
        return FALSE;
    }
    l = g_new0(RpcListener, 1);
    l->srv = srv;
    l->fd = fd;
    l->readonly = readonly;
    l->source = g_unix_fd_source_new(fd, G_IO_IN);
    g_source_set_callback(l->source, G_SOURCE_FUNC(listener_io), l, NULL);
    g_source_attach(l->source, srv->ctx);
    g_ptr_array_add(srv->listeners, l);
    return TRUE;
}

gboolean rpc_server_add_tcp_listener(RpcServer *srv, int fd, GError **error)
{
    if (!rpc_server_add_listener(srv, fd, FALSE, error))
        return FALSE;
    ((RpcListener *)g_ptr_array_index(srv->listeners, srv->listeners->len - 1))->no_auth = TRUE;
    return TRUE;
}

gboolean rpc_server_add_tls_listener(RpcServer *srv, int fd, RpcTlsCreds *creds,
                                     GError **error)
{
    if (!rpc_server_add_listener(srv, fd, FALSE, error))
        return FALSE;
    ((RpcListener *)g_ptr_array_index(srv->listeners, srv->listeners->len - 1))->tls =
        rpc_tls_creds_ref(creds);
    return TRUE;
}

/* ------------------------------------------------------------- keepalive */

static gboolean ka_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    return cb(data);
}

static GSourceFuncs ka_funcs = { .dispatch = ka_dispatch };

/*
 * libvirt's rule: ping when nothing was received for an interval, ping
 * again each interval without an answer, give up after keepalive_count
 * pings. Any packet counts as an answer.
 */
static gboolean ka_tick(gpointer data)
{
    RpcServerClient *c = data;
    gint64 now = g_get_monotonic_time();
    gint64 iv = (gint64)c->srv->limits.keepalive_interval * G_USEC_PER_SEC;
    GBytes *ping;

    /* While we do not read from the client, its answers cannot arrive. */
    if (!client_can_dispatch(c))
        c->last_rx = now;
    if (now - c->last_rx < iv) {
        g_source_set_ready_time(c->ka_timer, c->last_rx + iv);
        return G_SOURCE_CONTINUE;
    }
    if (c->ka_unanswered >= c->srv->limits.keepalive_count) {
        client_close_now(c, "no answer to keepalive");
        return G_SOURCE_REMOVE;
    }
    ping = rpc_packet_keepalive(KEEPALIVE_PROC_PING);
    client_queue(c, ping);
    g_bytes_unref(ping);
    c->ka_unanswered++;
    g_source_set_ready_time(c->ka_timer, now + iv);
    return G_SOURCE_CONTINUE;
}

void rpc_server_client_start_keepalive(RpcServerClient *c)
{
    guint iv = c->srv->limits.keepalive_interval;

    if (!iv || c->ka_timer || client_is_closed(c))
        return;
    c->last_rx = g_get_monotonic_time();
    c->ka_unanswered = 0;
    c->ka_timer = g_source_new(&ka_funcs, sizeof(GSource));
    g_source_set_callback(c->ka_timer, ka_tick, c, NULL);
    g_source_set_ready_time(c->ka_timer, c->last_rx + (gint64)iv * G_USEC_PER_SEC);
    g_source_attach(c->ka_timer, c->srv->ctx);
}

/* ------------------------------------------------- completion from any thread */

typedef struct Delivery {
    RpcServerClient *client;    /* reference */
    RpcCall *call;              /* or NULL */
    RpcStream *stream;          /* reference, or NULL */
    GBytes *pkt;
    gboolean ok;                /* call: success reply */
    gboolean unsolicited;
    gboolean ends_stream;       /* stream: this packet ends it (abort) */
} Delivery;

static void call_free(RpcCall *call)
{
    rpc_payload_free(&call->proc->args, call->args);
    if (call->stream)
        rpc_stream_unref(call->stream);
    rpc_server_client_unref(call->client);
    g_free(call);
}

static void stream_activate(RpcStream *st)
{
    GBytes *pkt;

    if (st->ended)
        return;
    st->active = TRUE;
    while ((pkt = g_queue_pop_head(&st->pending))) {
        rpc_server_client_queue_unsolicited(st->client, pkt);
        g_bytes_unref(pkt);
    }
}

static gboolean deliver(gpointer data)
{
    Delivery *d = data;
    RpcServerClient *c = d->client;

    if (d->call) {
        c->ncalls--;
        client_queue(c, d->pkt);
        if (d->call->stream) {
            if (d->ok)
                stream_activate(d->call->stream);
            else
                stream_end(d->call->stream, TRUE);
        }
        call_free(d->call);
        /* Throttled input may go on now. */
        if (!client_is_closed(c)) {
            client_process_input(c);
            client_update_watch(c);
        }
    } else if (d->stream) {
        RpcStream *st = d->stream;

        if (!st->ended) {
            if (!st->active && !d->ends_stream) {
                g_queue_push_tail(&st->pending, g_bytes_ref(d->pkt));
            } else {
                if (st->active)
                    rpc_server_client_queue_unsolicited(c, d->pkt);
                if (d->ends_stream)
                    stream_end(st, FALSE);
            }
        }
        rpc_stream_unref(st);
    } else if (d->unsolicited) {
        rpc_server_client_queue_unsolicited(c, d->pkt);
    }
    g_bytes_unref(d->pkt);
    rpc_server_client_unref(c);
    g_free(d);
    return G_SOURCE_REMOVE;
}

static void post(Delivery *d)
{
    g_main_context_invoke_full(d->client->srv->ctx, G_PRIORITY_DEFAULT, deliver, d, NULL);
}

RpcServerClient *rpc_call_get_client(RpcCall *call)
{
    return call->client;
}

const RpcProcedure *rpc_call_get_procedure(RpcCall *call)
{
    return call->proc;
}

const RpcHeader *rpc_call_get_header(RpcCall *call)
{
    return &call->hdr;
}

gboolean rpc_call_is_cancelled(RpcCall *call)
{
    return client_is_closed(call->client);
}

static void call_complete(RpcCall *call, GBytes *pkt, gboolean ok)
{
    Delivery *d = g_new0(Delivery, 1);

    d->client = rpc_server_client_ref(call->client);
    d->call = call;
    d->pkt = pkt;
    d->ok = ok;
    post(d);
}

void rpc_call_reply_error(RpcCall *call, RemoteError *err)
{
    g_autoptr(GError) error = NULL;
    GBytes *pkt = rpc_packet_build_error(&call->hdr, RPC_REPLY, err, &error);

    if (!pkt) {
        g_autoptr(RemoteError) fallback = rpc_remote_error_new(RPC_ERR_RPC, RPC_FROM_RPC,
                                                               "Unable to encode message payload");

        g_warning("%s: cannot encode the error reply: %s", call->proc->name, error->message);
        pkt = rpc_packet_build_error(&call->hdr, RPC_REPLY, fallback, NULL);
    }
    rpc_remote_error_free(err);
    call_complete(call, pkt, FALSE);
}

void rpc_call_reply(RpcCall *call, const void *ret)
{
    g_autoptr(GError) error = NULL;
    RpcHeader h = call->hdr;
    GBytes *pkt;

    h.type = RPC_REPLY;
    h.status = RPC_STATUS_OK;
    pkt = rpc_packet_build(&h, &call->proc->ret, ret, &error);
    if (!pkt) {
        /* libvirtd's answer when a reply does not fit (or is invalid). */
        g_warning("%s: cannot encode the reply: %s", call->proc->name, error->message);
        rpc_call_reply_error(call, rpc_remote_error_new(RPC_ERR_RPC, RPC_FROM_RPC,
                             "Unable to encode message payload"));
        return;
    }
    call_complete(call, pkt, TRUE);
}

void rpc_call_fail(RpcCall *call, int code, const char *fmt, ...)
{
    va_list ap;
    RemoteError *err;

    va_start(ap, fmt);
    err = rpc_remote_error_newv(code, call->client->srv->error_domain, fmt, ap);
    va_end(ap);
    rpc_call_reply_error(call, err);
}

void rpc_call_fail_gerror(RpcCall *call, const GError *error)
{
    rpc_call_reply_error(call, rpc_remote_error_from_gerror(error,
                                                            call->client->srv->error_domain));
}

gboolean rpc_server_client_send_message(RpcServerClient *c, guint32 prog, gint32 proc,
                                        const void *msg)
{
    const RpcProcedure *p = rpc_protocol_find(prog, proc);
    RpcHeader h = {
        .prog = prog, .proc = proc, .type = RPC_MESSAGE, .serial = EVENT_SERIAL,
        .status = RPC_STATUS_OK,
    };
    g_autoptr(GError) error = NULL;
    GBytes *pkt;
    Delivery *d;

    g_assert(p && (p->flags & RPC_PROC_EVENT));
    if (client_is_closed(c))
        return FALSE;
    h.vers = p->vers;
    pkt = rpc_packet_build(&h, &p->args, msg, &error);
    if (!pkt) {
        g_warning("%s: cannot encode the event: %s", p->name, error->message);
        return FALSE;
    }
    d = g_new0(Delivery, 1);
    d->client = rpc_server_client_ref(c);
    d->pkt = pkt;
    d->unsolicited = TRUE;
    post(d);
    return TRUE;
}

/* --------------------------------------------------------------- streams */

RpcStream *rpc_call_open_stream(RpcCall *call, const RpcStreamCallbacks *cb,
                                gpointer opaque)
{
    RpcServerClient *c = call->client;
    RpcStream *st;

    g_assert(call->proc->flags & RPC_PROC_STREAM);
    g_assert(!call->stream);
    st = g_new0(RpcStream, 1);
    st->ref = 2;                /* the caller's, and the call's until it completes */
    st->client = rpc_server_client_ref(c);
    st->prog = call->hdr.prog;
    st->vers = call->hdr.vers;
    st->proc = call->hdr.proc;
    st->serial = call->hdr.serial;
    st->key = handler_key(st->serial, st->proc);
    g_queue_init(&st->pending);
    if (cb)
        st->cb = *cb;
    st->opaque = opaque;
    call->stream = st;
    if (client_is_closed(c) || g_hash_table_contains(c->streams, &st->key)) {
        /* Gone already, or a client reusing a serial: the stream is dead. */
        st->ended = TRUE;
        g_atomic_int_set(&st->closed, 1);
        return st;
    }
    g_hash_table_insert(c->streams, &st->key, rpc_stream_ref(st));
    return st;
}

RpcStream *rpc_stream_ref(RpcStream *st)
{
    g_atomic_int_inc(&st->ref);
    return st;
}

void rpc_stream_unref(RpcStream *st)
{
    if (!st || !g_atomic_int_dec_and_test(&st->ref))
        return;
    g_queue_clear_full(&st->pending, (GDestroyNotify)g_bytes_unref);
    rpc_server_client_unref(st->client);
    g_free(st);
}

gboolean rpc_stream_is_closed(RpcStream *st)
{
    return g_atomic_int_get(&st->closed);
}

/* Loop thread: takes the stream out of its client. */
static void stream_end(RpcStream *st, gboolean notify_abort)
{
    if (st->ended)
        return;
    st->ended = TRUE;
    g_atomic_int_set(&st->closed, 1);
    g_queue_clear_full(&st->pending, (GDestroyNotify)g_bytes_unref);
    rpc_stream_ref(st);
    if (g_hash_table_remove(st->client->streams, &st->key))
        rpc_stream_unref(st);
    if (notify_abort && st->cb.abort)
        st->cb.abort(st, st->opaque);
    rpc_stream_unref(st);
}

static void stream_post(RpcStream *st, GBytes *pkt, gboolean ends)
{
    Delivery *d = g_new0(Delivery, 1);

    d->client = rpc_server_client_ref(st->client);
    d->stream = rpc_stream_ref(st);
    d->pkt = pkt;
    d->ends_stream = ends;
    post(d);
}

gboolean rpc_stream_send(RpcStream *st, const void *data, gsize len)
{
    RpcHeader h = {
        .prog = st->prog, .vers = st->vers, .proc = st->proc, .type = RPC_STREAM,
        .serial = st->serial, .status = RPC_STATUS_CONTINUE,
    };
    const guint8 *p = data;

    if (rpc_stream_is_closed(st))
        return FALSE;
    while (len) {
        gsize n = MIN(len, RPC_STREAM_CHUNK);

        stream_post(st, rpc_packet_build_raw(&h, p, n, NULL), FALSE);
        p += n;
        len -= n;
    }
    return TRUE;
}

void rpc_stream_send_eof(RpcStream *st)
{
    RpcHeader h = {
        .prog = st->prog, .vers = st->vers, .proc = st->proc, .type = RPC_STREAM,
        .serial = st->serial, .status = RPC_STATUS_CONTINUE,
    };

    if (!rpc_stream_is_closed(st))
        stream_post(st, rpc_packet_build_raw(&h, NULL, 0, NULL), FALSE);
}

void rpc_stream_abort(RpcStream *st, RemoteError *err)
{
    RpcHeader h = {
        .prog = st->prog, .vers = st->vers, .proc = st->proc, .type = RPC_STREAM,
        .serial = st->serial, .status = RPC_STATUS_ERROR,
    };
    GBytes *pkt;

    if (!g_atomic_int_compare_and_exchange(&st->closed, 0, 1)) {
        rpc_remote_error_free(err);
        return;
    }
    if (!err)
        err = rpc_remote_error_new(RPC_ERR_INTERNAL_ERROR, RPC_FROM_STREAMS, "stream aborted");
    pkt = rpc_packet_build_error(&h, RPC_STREAM, err, NULL);
    rpc_remote_error_free(err);
    if (!pkt)
        pkt = rpc_packet_build_raw(&h, NULL, 0, NULL);
    stream_post(st, pkt, TRUE);
}
