/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * TLS (gnutls, x509 certificates) under libvirt's remote protocol, as
 * libvirt's qemu+tls:// transport: `vireod --listen-tls` and the client
 * behind vireo+tls:// and qemu+tls:// URIs. The RPC framing inside TLS is
 * unchanged. After the handshake and the check of the client's
 * certificate, the server sends one encrypted byte 1, which libvirt's
 * client waits for before its first call; a refused client sees the
 * connection closed instead.
 *
 * A session belongs to one thread at a time; credentials are immutable
 * once created and may be shared by the sessions of every thread. The
 * gnutls plumbing (loaded on first use) is include/vireo/tls.h's; this
 * adds libvirt's file layout and the confirmation byte.
 */
#ifndef VIREO_RPC_TLS_H
#define VIREO_RPC_TLS_H

#include <glib.h>

#define RPC_TLS_DEFAULT_PORT 16514      /* libvirtd's tls_port */

typedef enum {
    RPC_TLS_SERVER,
    RPC_TLS_CLIENT,
} RpcTlsRole;

/* The three files one side needs. */
typedef struct RpcTlsFiles {
    char *cacert;
    char *cert;
    char *key;
} RpcTlsFiles;

/*
 * libvirt's layout. @dir set (--tls-dir, ?pkipath=): DIR/cacert.pem,
 * DIR/{server,client}cert.pem, DIR/{server,client}key.pem. Otherwise under
 * @root (NULL or "" for /): ROOT/etc/pki/CA/cacert.pem,
 * ROOT/etc/pki/vireo/{server,client}cert.pem and
 * ROOT/etc/pki/vireo/private/{server,client}key.pem.
 */
RpcTlsFiles *rpc_tls_files_new(RpcTlsRole role, const char *root, const char *dir);
/* A client's default: the /etc/pki layout for root, $HOME/.pki/vireo/ otherwise. */
RpcTlsFiles *rpc_tls_files_new_user(void);
void rpc_tls_files_free(RpcTlsFiles *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RpcTlsFiles, rpc_tls_files_free)

typedef struct RpcTlsCreds RpcTlsCreds;

/*
 * Loads @files and checks them as libvirt does before it listens or
 * connects: every file readable, our certificate current and issued by
 * the CA. The error names the file and the reason. @verify_peer FALSE
 * (no_verify=1) skips the check of the other side's certificate.
 */
RpcTlsCreds *rpc_tls_creds_new(RpcTlsRole role, const RpcTlsFiles *files,
                               gboolean verify_peer, GError **error);
RpcTlsCreds *rpc_tls_creds_ref(RpcTlsCreds *creds);
void rpc_tls_creds_unref(RpcTlsCreds *creds);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RpcTlsCreds, rpc_tls_creds_unref)

typedef struct RpcTlsSession RpcTlsSession;

/*
 * A session on the connected socket @fd (which the caller keeps and
 * closes). @hostname: the name the client connected to, which the
 * server's certificate must match (client side only).
 */
RpcTlsSession *rpc_tls_session_new(RpcTlsCreds *creds, int fd, const char *hostname,
                                   GError **error);
void rpc_tls_session_free(RpcTlsSession *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RpcTlsSession, rpc_tls_session_free)

typedef enum {
    RPC_TLS_DONE,           /* handshake finished and the peer verified */
    RPC_TLS_WANT_READ,      /* call again when the socket is readable */
    RPC_TLS_WANT_WRITE,     /* ... writable */
    RPC_TLS_FAILED,         /* *error set */
} RpcTlsStatus;

/* One non-blocking step of the handshake; the peer is verified at its end. */
RpcTlsStatus rpc_tls_session_handshake(RpcTlsSession *s, GError **error);

/* recv/send return this, without an error, when the socket would block. */
#define RPC_TLS_AGAIN (-2)
/* Bytes read, 0 at the end of the stream, RPC_TLS_AGAIN, or -1 with *error. */
gssize rpc_tls_session_recv(RpcTlsSession *s, void *buf, gsize len, GError **error);
/*
 * Bytes written, RPC_TLS_AGAIN (then call again with the same data), or -1
 * with *error.
 */
gssize rpc_tls_session_send(RpcTlsSession *s, const void *buf, gsize len, GError **error);
/*
 * Decrypted bytes gnutls holds already: poll() does not see them, so a
 * reader must drain them before it waits on the socket again.
 */
gsize rpc_tls_session_pending(RpcTlsSession *s);

/*
 * Client side, blocking: the handshake on @fd within @timeout_ms, the
 * check of the server's certificate against @hostname, then the server's
 * confirmation byte (its verdict on our certificate).
 */
RpcTlsSession *rpc_tls_client_handshake(RpcTlsCreds *creds, int fd, const char *hostname,
                                        guint timeout_ms, GError **error);

#endif /* VIREO_RPC_TLS_H */
