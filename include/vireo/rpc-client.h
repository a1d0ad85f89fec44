/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Client side of libvirt's remote protocol, for our `vireo` tool and the
 * tests: connects to a UNIX socket of vireod (or libvirtd), performs the
 * handshake virsh performs, calls procedures, receives events and stream
 * data.
 *
 * Threads: the client owns one I/O thread with a private GMainContext;
 * the socket is only touched there. Public functions may be called from
 * any thread, callbacks included, and several threads may have calls
 * outstanding at once; only rpc_client_open() and rpc_client_close() must
 * not run concurrently. Events, async replies and stream data are
 * delivered on the callback context given to
 * rpc_client_set_callbacks() (default: the thread-default context of the
 * thread that created the client), so that thread must run a main loop to
 * get them; synchronous calls do not need one.
 *
 * Errors: RPC_REMOTE_ERROR with the libvirt error number when the server
 * answered with an error (the message is the server's, unchanged, as
 * virsh prints it); RPC_ERROR otherwise (RPC_ERROR_CLOSED once the
 * connection is gone, RPC_ERROR_TIMEOUT when keepalive gave up).
 */
#ifndef VIREO_RPC_CLIENT_H
#define VIREO_RPC_CLIENT_H

#include <glib.h>

#include "vireo/rpc-message.h"
#include "vireo/rpc-tls.h"

typedef struct RpcClient RpcClient;
typedef struct RpcClientStream RpcClientStream;

typedef struct RpcClientCallbacks {
    /* A MESSAGE (event) whose procedure is typed; @msg is its decoded payload. */
    void (*event)(RpcClient *client, const RpcProcedure *proc, gconstpointer msg,
                  gpointer opaque);
    /* The connection is gone (end of file, socket error, keepalive timeout). */
    void (*closed)(RpcClient *client, const GError *reason, gpointer opaque);
} RpcClientCallbacks;

/* Connects to the UNIX socket at @path. */
RpcClient *rpc_client_new_unix(const char *path, GError **error);
/* Uses a connected socket; takes @fd, also on failure. */
RpcClient *rpc_client_new_fd(int fd, GError **error);
/*
 * Uses a connected socket whose TLS handshake is done (rpc_tls_client_
 * handshake()); takes @fd and @tls, also on failure. @tls NULL: plain.
 */
RpcClient *rpc_client_new_tls(int fd, RpcTlsSession *tls, GError **error);
/* Closes the socket (no CONNECT_CLOSE: see rpc_client_close()) and frees. */
void rpc_client_free(RpcClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RpcClient, rpc_client_free)

/* @ctx NULL: keep the current callback context. */
void rpc_client_set_callbacks(RpcClient *client, const RpcClientCallbacks *cb,
                              gpointer opaque, GMainContext *ctx);
/*
 * Keepalive that rpc_client_open() starts when the server supports it:
 * ping after @interval idle seconds, give up after @count unanswered pings
 * (virsh: 5 and 5, the default). @interval 0: none.
 */
void rpc_client_set_keepalive(RpcClient *client, guint interval, guint count);

/*
 * The handshake of every virsh command: AUTH_LIST (auth "none", or polkit),
 * SUPPORTS_FEATURE(PROGRAM_KEEPALIVE), CONNECT_OPEN(@uri, @flags),
 * SUPPORTS_FEATURE(REMOTE_EVENT_CALLBACK), SUPPORTS_FEATURE
 * (REMOTE_CLOSE_CALLBACK), CONNECT_REGISTER_CLOSE_CALLBACK. @uri is what
 * virsh sends for qemu+unix:///system, i.e. "qemu:///system", or NULL.
 */
gboolean rpc_client_open(RpcClient *client, const char *uri, guint flags, GError **error);
/* UNREGISTER_CLOSE_CALLBACK (if registered) and CONNECT_CLOSE, then closes. */
gboolean rpc_client_close(RpcClient *client, GError **error);
gboolean rpc_client_is_open(RpcClient *client);

/*
 * Calls (@prog, @proc) with @args of its args type (NULL for void) and
 * waits; on success *@ret (its ret type, zeroed here) holds the result, to
 * be freed with the type's _clear(). @remote_error, if not NULL, receives
 * the server's remote_error when there was one.
 */
gboolean rpc_client_call(RpcClient *client, guint32 prog, gint32 proc,
                         const void *args, void *ret, GError **error);
gboolean rpc_client_call_full(RpcClient *client, guint32 prog, gint32 proc,
                              const void *args, void *ret, RemoteError **remote_error,
                              GError **error);

/*
 * Asynchronous call; @fn runs on the callback context with the decoded
 * result (freed after @fn returns) or the error.
 */
typedef void (*RpcClientReplyFunc)(RpcClient *client, gpointer ret, const GError *error,
                                   gpointer opaque);
void rpc_client_call_async(RpcClient *client, guint32 prog, gint32 proc,
                           const void *args, RpcClientReplyFunc fn, gpointer opaque);

/* Any thread: sends a raw packet, bypassing the codec (tests). */
gboolean rpc_client_send_raw(RpcClient *client, GBytes *packet, GError **error);
/* The serial the next call will use (virsh: 0 for the first). */
guint32 rpc_client_next_serial(RpcClient *client);

/* ---- streams ---- */
typedef struct RpcClientStreamCallbacks {
    /* Data from the server; @len 0 is the end of data (then finish). */
    void (*data)(RpcClientStream *st, const guint8 *data, gsize len, gpointer opaque);
    /* The server ended the stream with an error, or the connection is gone. */
    void (*error)(RpcClientStream *st, const GError *error, gpointer opaque);
} RpcClientStreamCallbacks;

/*
 * Calls an RPC_PROC_STREAM procedure (e.g. DOMAIN_OPEN_CONSOLE) and, when
 * it succeeds, returns the stream bound to its serial.
 */
RpcClientStream *rpc_client_stream_open(RpcClient *client, guint32 prog, gint32 proc,
                                        const void *args,
                                        const RpcClientStreamCallbacks *cb, gpointer opaque,
                                        GError **error);
gboolean rpc_client_stream_send(RpcClientStream *st, const void *data, gsize len,
                                GError **error);
/* Sends the finish (STREAM OK) and waits for the server's confirmation. */
gboolean rpc_client_stream_finish(RpcClientStream *st, GError **error);
/* Sends an abort (STREAM ERROR) and waits for the server's answer. */
gboolean rpc_client_stream_abort(RpcClientStream *st, GError **error);
/* Frees; a stream still open is aborted without waiting. */
void rpc_client_stream_free(RpcClientStream *st);

#endif /* VIREO_RPC_CLIENT_H */
