/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * TLS with x509 certificates (gnutls) on a connected socket, for whoever
 * needs it: the daemon's remote protocol (rpc-tls.c adds libvirt's file
 * layout and its confirmation byte) and vireo-vmm's migration stream
 * (migration-tls.h). Nothing here knows either protocol.
 *
 * gnutls is loaded (dlopen) with the first credentials, not at start:
 * linked in, its constructor and relocations cost about 2.5 MiB of RSS in
 * every process, whether TLS is used or not.
 *
 * A session belongs to one thread at a time; credentials are immutable
 * once created and may be shared by the sessions of every thread.
 */
#ifndef VIREO_TLS_H
#define VIREO_TLS_H

#include <glib.h>

#define TLS_ERROR tls_error_quark()
GQuark tls_error_quark(void);

typedef enum {
    TLS_ERROR_FAILED,       /* certificate files, handshake, peer refused, records */
    TLS_ERROR_CLOSED,       /* the connection broke (reset, or closed without a word) */
    TLS_ERROR_IO,           /* waiting on the socket failed */
    TLS_ERROR_TIMEOUT,      /* a deadline passed (tls_wait_fd) */
} TlsErrorCode;

typedef enum {
    TLS_ENDPOINT_SERVER,
    TLS_ENDPOINT_CLIENT,
} TlsEndpoint;

typedef struct TlsCreds TlsCreds;

/*
 * Loads the CA certificate @cacert and our certificate @cert with its key
 * @key, and checks them before anyone connects: every file readable, the
 * certificates current and ours issued by the CA. The error names the file
 * and the reason. A client may have no certificate (@cert and @key NULL).
 * @verify_peer FALSE skips the check of the other side's certificate
 * (a server then asks for one without requiring it).
 */
TlsCreds *tls_creds_new(TlsEndpoint endpoint, const char *cacert, const char *cert,
                        const char *key, gboolean verify_peer, GError **error);
TlsCreds *tls_creds_ref(TlsCreds *creds);
void tls_creds_unref(TlsCreds *creds);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TlsCreds, tls_creds_unref)
TlsEndpoint tls_creds_get_endpoint(const TlsCreds *creds);
gboolean tls_creds_get_verify_peer(const TlsCreds *creds);

typedef struct TlsSession TlsSession;

/*
 * A session on the connected socket @fd (which the caller keeps and
 * closes; it may be blocking or not). @hostname: the name the client
 * connected to, which the server's certificate must match (client side
 * only; NULL skips that check).
 */
TlsSession *tls_session_new(TlsCreds *creds, int fd, const char *hostname, GError **error);
void tls_session_free(TlsSession *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TlsSession, tls_session_free)

typedef enum {
    TLS_DONE,               /* handshake finished and the peer verified */
    TLS_WANT_READ,          /* call again when the socket is readable */
    TLS_WANT_WRITE,         /* ... writable */
    TLS_FAILED,             /* *error set */
} TlsStatus;

/* One non-blocking step of the handshake; the peer is verified at its end. */
TlsStatus tls_session_handshake(TlsSession *s, GError **error);
/*
 * The whole handshake, waiting on the socket until @deadline (monotonic
 * time, g_get_monotonic_time()); TLS_ERROR_TIMEOUT when it passes.
 */
gboolean tls_session_handshake_sync(TlsSession *s, gint64 deadline, GError **error);

/* A one-line description of the session (protocol, key exchange, cipher). */
char *tls_session_get_desc(TlsSession *s);

/* recv/send return this, without an error, when the socket would block. */
#define TLS_AGAIN (-2)
/* Bytes read, 0 at the end of the stream, TLS_AGAIN, or -1 with *error. */
gssize tls_session_recv(TlsSession *s, void *buf, gsize len, GError **error);
/*
 * Bytes written (at most one record, 16 KiB), TLS_AGAIN (then call again
 * with the same data), or -1 with *error.
 */
gssize tls_session_send(TlsSession *s, const void *buf, gsize len, GError **error);
/*
 * Decrypted bytes gnutls holds already: poll() does not see them, so a
 * reader must drain them before it waits on the socket again.
 */
gsize tls_session_pending(TlsSession *s);

/*
 * Waits until @fd is readable (or writable) or @deadline passes; the
 * error says "@what: timed out" (TLS_ERROR_TIMEOUT) or why poll failed.
 */
gboolean tls_wait_fd(int fd, gboolean for_write, gint64 deadline, const char *what,
                     GError **error);

#endif /* VIREO_TLS_H */
