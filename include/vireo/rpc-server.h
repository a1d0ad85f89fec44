/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Server side of libvirt's remote protocol, for vireod and its modular
 * daemons: accepts clients on UNIX sockets the daemon hands over, frames
 * and decodes their packets, and dispatches each CALL to a handler
 * registered for its procedure. The daemon's drivers plug in as handlers.
 *
 * Threads and loop: a server runs on one GMainContext (given at creation)
 * and everything it calls -- handlers, hooks, stream callbacks -- runs in
 * the thread that iterates that context ("the loop thread"). Functions are
 * for the loop thread only, except those marked "any thread": completing
 * a call, sending stream data and events. Those encode in the caller's
 * thread and hand the bytes to the loop with g_main_context_invoke(), so a
 * handler may pass its RpcCall to a worker thread and complete it there.
 * Called from the loop thread they take effect at once.
 *
 * Calls: a client may have several calls outstanding (distinct serials,
 * answered in any order). A handler completes its call exactly once, at
 * once or later, with rpc_call_reply() or one of the rpc_call_fail*()
 * functions; the call and its decoded args are freed then. If the client
 * disconnects first, completing the call later is still required and
 * harmless: the reply is dropped.
 *
 * What the RPC layer answers by itself (daemon/rpc/rpc-builtin.c,
 * rpc-events.c): AUTH_LIST, AUTH_POLKIT, CONNECT_SUPPORTS_FEATURE,
 * CONNECT_OPEN (asking the open hook), CONNECT_CLOSE, the close-callback
 * pair, domain event (de)registration; keepalive PING/PONG. Registering a
 * handler for one of those replaces the built-in one. Every procedure
 * without a handler gets libvirt's VIR_ERR_NO_SUPPORT error; numbers
 * libvirt does not know get "unknown procedure: N", as libvirtd answers.
 * The connection stays up in both cases.
 *
 * Access: a client on a read-only listener (or that opened with
 * VIR_CONNECT_RO) may only call procedures flagged RPC_PROC_RO; others
 * get VIR_ERR_OPERATION_DENIED. On a read-write listener a peer must pass
 * the authorize hook (default: uid 0 or the daemon's own uid, from
 * SO_PEERCRED); others are offered only polkit by AUTH_LIST, which fails,
 * so they can call nothing but AUTH_LIST and AUTH_POLKIT.
 *
 * Limits (RpcServerLimits): input is not read from a client while it has
 * max_calls calls outstanding or more than max_output bytes queued for it;
 * a client that lets unsolicited output (events, stream data) pile up past
 * max_output, or answers no keepalive ping for keepalive_count intervals,
 * is disconnected. A packet whose length word is out of range ends the
 * connection (it cannot be framed); a well-framed but malformed CALL gets
 * an error reply.
 */
#ifndef VIREO_RPC_SERVER_H
#define VIREO_RPC_SERVER_H

#include <glib.h>
#include <sys/types.h>

#include "vireo/rpc-message.h"
#include "vireo/rpc-tls.h"

typedef struct RpcServer RpcServer;
typedef struct RpcServerClient RpcServerClient;
typedef struct RpcCall RpcCall;
typedef struct RpcStream RpcStream;

typedef struct RpcServerLimits {
    guint max_clients;          /* connections; more are closed at accept (5000) */
    guint max_calls;            /* outstanding calls per client (5, libvirt's max_client_requests) */
    gsize max_output;           /* bytes queued per client, see above (16 MiB) */
    guint keepalive_interval;   /* seconds between pings to an idle client; 0: never (5) */
    guint keepalive_count;      /* unanswered pings before disconnecting (5) */
} RpcServerLimits;

#define RPC_SERVER_DEFAULT_MAX_CLIENTS 5000
#define RPC_SERVER_DEFAULT_MAX_CALLS 5
#define RPC_SERVER_DEFAULT_MAX_OUTPUT (16u * 1024 * 1024)
#define RPC_SERVER_DEFAULT_KEEPALIVE_INTERVAL 5
#define RPC_SERVER_DEFAULT_KEEPALIVE_COUNT 5

/* Peer credentials from SO_PEERCRED. */
typedef struct RpcPeerCred {
    uid_t uid;
    gid_t gid;
    pid_t pid;
} RpcPeerCred;

typedef struct RpcServerHooks {
    /*
     * CONNECT_OPEN with @name (NULL when the client sent none) and @flags.
     * Return FALSE and set @error to refuse; an RPC_REMOTE_ERROR keeps its
     * code. NULL hook: every open succeeds.
     */
    gboolean (*open)(RpcServerClient *client, const char *name, guint flags,
                     gpointer opaque, GError **error);
    /*
     * CONNECT_SUPPORTS_FEATURE for the driver features (migration ones);
     * the RPC layer answers the protocol ones itself. NULL: 0.
     */
    int (*supports_feature)(RpcServerClient *client, int feature, gpointer opaque);
    /* May this peer use a read-write socket? NULL: uid 0 or our euid. */
    gboolean (*authorize)(const RpcPeerCred *cred, gpointer opaque);
    /* A client is gone; its outstanding calls are still to be completed. */
    void (*disconnected)(RpcServerClient *client, gpointer opaque);
} RpcServerHooks;

/*
 * A handler. @args is the decoded CALL payload, of the procedure's args
 * type (NULL for void), owned by @call until it completes.
 */
typedef void (*RpcHandlerFunc)(RpcCall *call, gpointer args, gpointer opaque);

/* @ctx NULL: the thread-default context. @limits NULL: the defaults. */
RpcServer *rpc_server_new(GMainContext *ctx, const RpcServerLimits *limits);
/* Closes all clients and listeners, then drops the caller's reference. */
void rpc_server_free(RpcServer *srv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RpcServer, rpc_server_free)

void rpc_server_set_hooks(RpcServer *srv, const RpcServerHooks *hooks, gpointer opaque);
/*
 * Error domain (RPC_FROM_*) for errors built from a GError and for
 * rpc_call_fail() (default RPC_FROM_QEMU, what libvirtd's qemu driver uses).
 */
void rpc_server_set_error_domain(RpcServer *srv, int domain);
/* Serves another program (REMOTE version 1 is always served). */
void rpc_server_add_program(RpcServer *srv, guint32 prog, guint32 vers);

/* Registers @fn for (@prog, @proc); the procedure must be in the table. */
void rpc_server_set_handler(RpcServer *srv, guint32 prog, gint32 proc,
                            RpcHandlerFunc fn, gpointer opaque);

/*
 * Accepts connections on @fd, a listening UNIX socket (made non-blocking
 * here). Takes ownership of @fd, also on failure.
 */
gboolean rpc_server_add_listener(RpcServer *srv, int fd, gboolean readonly, GError **error);
/*
 * A listening TCP socket, read-write, whose clients need no authentication
 * (libvirtd's auth_tcp = "none": for trusted networks only).
 */
gboolean rpc_server_add_tcp_listener(RpcServer *srv, int fd, GError **error);
/*
 * A listening TCP socket whose clients speak TLS with @creds (a reference
 * is taken): each client is served once its handshake (driven by the
 * loop, never blocking it) and the check of its certificate succeed;
 * then it needs no further authentication (libvirtd's auth_tls = "none").
 */
gboolean rpc_server_add_tls_listener(RpcServer *srv, int fd, RpcTlsCreds *creds,
                                     GError **error);
/* Serves an already connected socket (socket activation, socketpair tests). */
RpcServerClient *rpc_server_add_connection(RpcServer *srv, int fd, gboolean readonly,
                                           GError **error);
guint rpc_server_get_n_clients(RpcServer *srv);

/* ---- clients ---- */
RpcServerClient *rpc_server_client_ref(RpcServerClient *c);   /* any thread */
void rpc_server_client_unref(RpcServerClient *c);             /* any thread */
RpcServer *rpc_server_client_get_server(RpcServerClient *c);
guint64 rpc_server_client_get_id(RpcServerClient *c);
/* Read-only socket, or opened with VIR_CONNECT_RO. */
gboolean rpc_server_client_is_readonly(RpcServerClient *c);
gboolean rpc_server_client_is_open(RpcServerClient *c);
/* Any thread: TRUE once the connection is gone (the peer closed it, or we did). */
gboolean rpc_server_client_is_closed(RpcServerClient *c);
/* FALSE when SO_PEERCRED was not available. */
gboolean rpc_server_client_get_peer(RpcServerClient *c, RpcPeerCred *cred);
/*
 * Per-connection data for the daemon, freed with @free_fn when the last
 * reference to the client goes (after the disconnected hook, once the
 * client's calls are all completed; in the thread dropping it).
 */
void rpc_server_client_set_data(RpcServerClient *c, gpointer data, GDestroyNotify free_fn);
gpointer rpc_server_client_get_data(RpcServerClient *c);
/* Bytes queued for the client, not yet written. */
gsize rpc_server_client_get_queued(RpcServerClient *c);
/* Closes now (or, with @flush, once the queued output is written). */
void rpc_server_client_close(RpcServerClient *c, gboolean flush);
/* Starts pinging the client every keepalive_interval when idle. */
void rpc_server_client_start_keepalive(RpcServerClient *c);
/*
 * Any thread: sends a MESSAGE (event) of procedure (@prog, @proc), whose
 * args type @msg has. FALSE if it cannot be encoded or the client is gone.
 */
gboolean rpc_server_client_send_message(RpcServerClient *c, guint32 prog, gint32 proc,
                                        const void *msg);

/* ---- calls ---- */
RpcServerClient *rpc_call_get_client(RpcCall *call);
const RpcProcedure *rpc_call_get_procedure(RpcCall *call);
const RpcHeader *rpc_call_get_header(RpcCall *call);
/* Any thread: TRUE once the client has disconnected. */
gboolean rpc_call_is_cancelled(RpcCall *call);
/* Any thread: replies with @ret (the procedure's ret type; NULL for void). */
void rpc_call_reply(RpcCall *call, const void *ret);
/* Any thread: replies with @err (taken). */
void rpc_call_reply_error(RpcCall *call, RemoteError *err);
/* Any thread: replies with a libvirt error from the server's error domain. */
void rpc_call_fail(RpcCall *call, int code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* Any thread: replies with @error (see rpc_remote_error_from_gerror()). */
void rpc_call_fail_gerror(RpcCall *call, const GError *error);

/* ---- streams (DOMAIN_OPEN_CONSOLE and other RPC_PROC_STREAM procedures) ---- */
typedef struct RpcStreamCallbacks {
    /* Data from the client (STREAM, CONTINUE). */
    void (*data)(RpcStream *st, const guint8 *data, gsize len, gpointer opaque);
    /* The client finished (STREAM, OK); the server confirms, the stream ends. */
    void (*finish)(RpcStream *st, gpointer opaque);
    /* The client aborted or disconnected, or the call failed; the stream ends. */
    void (*abort)(RpcStream *st, gpointer opaque);
} RpcStreamCallbacks;

/*
 * Loop thread, in the handler of an RPC_PROC_STREAM procedure, before the
 * call is completed: binds a stream to the call's (procedure, serial).
 * Data sent before the successful reply is held until it; a failed call
 * ends the stream (abort callback). Returns a reference for the caller;
 * callbacks run in the loop thread.
 */
RpcStream *rpc_call_open_stream(RpcCall *call, const RpcStreamCallbacks *cb,
                                gpointer opaque);
RpcStream *rpc_stream_ref(RpcStream *st);       /* any thread */
void rpc_stream_unref(RpcStream *st);           /* any thread */
/* Any thread: data to the client, split into packets; FALSE once ended. */
gboolean rpc_stream_send(RpcStream *st, const void *data, gsize len);
/* Any thread: end of data (empty CONTINUE); the client then finishes. */
void rpc_stream_send_eof(RpcStream *st);
/* Any thread: ends the stream with an error (@err taken; NULL: generic). */
void rpc_stream_abort(RpcStream *st, RemoteError *err);
gboolean rpc_stream_is_closed(RpcStream *st);

/* ---- events (daemon/rpc/rpc-events.c) ---- */
/*
 * Any thread: a lifecycle event (RPC_DOMAIN_EVENT_*, detail) for @dom,
 * sent to every client that registered for lifecycle events of all
 * domains or of @dom (by UUID), callback style (318) and legacy (107).
 */
void rpc_server_emit_domain_lifecycle(RpcServer *srv, const RemoteNonnullDomain *dom,
                                      int event, int detail);
/*
 * Any thread: MIGRATION_ITERATION (virsh migrate --postcopy-after-precopy
 * switches on iteration 2): the pass @iteration of @dom's outgoing
 * migration has begun, counted as libvirt does (1: the first).
 */
void rpc_server_emit_domain_migration_iteration(RpcServer *srv, const RemoteNonnullDomain *dom,
                                                int iteration);

#endif /* VIREO_RPC_SERVER_H */
