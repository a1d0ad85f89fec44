/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Internals shared by rpc-server.c (connections, dispatch), rpc-builtin.c
 * (connection-level procedures) and rpc-events.c (event registrations).
 * Every field is touched by the loop thread only unless it says otherwise.
 */
#ifndef VIREO_RPC_SERVER_PRIV_H
#define VIREO_RPC_SERVER_PRIV_H

#include "vireo/rpc-server.h"
#include "vireo/rpc-tls.h"

typedef struct RpcHandler {
    RpcHandlerFunc fn;
    gpointer opaque;
} RpcHandler;

struct RpcServer {
    gint ref;                       /* atomic */
    GMainContext *ctx;              /* immutable */
    RpcServerLimits limits;         /* immutable after rpc_server_new() */
    int error_domain;
    RpcServerHooks hooks;
    gpointer hooks_opaque;
    GHashTable *handlers;           /* (prog << 32 | proc) -> RpcHandler */
    GArray *programs;               /* guint64 prog << 32 | vers */
    GPtrArray *listeners;
    GPtrArray *clients;             /* RpcServerClient, one reference each */
    guint64 next_client_id;
};

/* An event registration (CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY). */
typedef struct RpcEventReg {
    gint32 callback_id;
    gint32 event_id;
    gboolean any_domain;
    guint8 uuid[VIR_UUID_BUFLEN];
} RpcEventReg;

struct RpcServerClient {
    gint ref;                       /* atomic */
    gint closed;                    /* atomic; set once, by the loop thread */
    RpcServer *srv;                 /* reference; immutable */
    guint64 id;                     /* immutable */
    int fd;
    gboolean have_cred;             /* immutable after accept */
    RpcPeerCred cred;

    /* connection state, driven by rpc-builtin.c */
    gboolean readonly;              /* read-only socket, or opened read-only */
    gboolean authenticated;
    gboolean opened;
    gboolean close_callback;

    /* TLS (rpc-tls.h): nothing else is read or written until the handshake ends */
    RpcTlsSession *tls;             /* or NULL */
    gboolean tls_handshaking;
    gboolean tls_want_write;        /* the handshake waits for a writable socket */
    GSource *tls_timer;             /* closes a client stuck in its handshake */

    /* I/O */
    GSource *watch;
    GIOCondition watch_cond;
    RpcFramer framer;
    GByteArray *inbuf;              /* read from the socket, not yet framed */
    gsize in_off;
    GQueue outq;                    /* GBytes, whole packets */
    gsize out_off;                  /* written bytes of the head packet */
    gsize out_bytes;                /* unwritten bytes in outq */
    gboolean close_after_flush;
    gboolean processing;            /* in client_process_input(): no re-entry */

    /* calls and streams */
    guint ncalls;                   /* outstanding */
    GHashTable *streams;            /* (proc << 32 | serial) -> RpcStream, one ref */

    /* keepalive */
    GSource *ka_timer;
    gint64 last_rx;                 /* monotonic us */
    guint ka_unanswered;

    /* events (rpc-events.c) */
    GArray *event_regs;             /* RpcEventReg */
    gint32 next_callback_id;
    gboolean legacy_lifecycle;      /* CONNECT_DOMAIN_EVENT_REGISTER */

    gpointer data;
    GDestroyNotify data_free;
};

/* References on the server, for deferred work that must outlive rpc_server_free(). */
RpcServer *rpc_server_ref_internal(RpcServer *srv);
void rpc_server_unref_internal(RpcServer *srv);

/* Queues an unsolicited packet (event, stream data); loop thread. */
void rpc_server_client_queue_unsolicited(RpcServerClient *c, GBytes *pkt);

/* rpc-builtin.c / rpc-events.c: register the built-in handlers. */
void rpc_builtin_register(RpcServer *srv);
void rpc_events_register(RpcServer *srv);
/* rpc-events.c: forget a client's registrations. */
void rpc_events_client_clear(RpcServerClient *c);

#endif /* VIREO_RPC_SERVER_PRIV_H */
