/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Remote daemon URIs, as libvirt's remote driver takes them:
 *
 *   DRIVER+tcp://HOST[:PORT]/PATH    plain TCP (port 16509), vireod --listen
 *   DRIVER+tls://HOST[:PORT]/PATH    TLS (port 16514), vireod --listen-tls
 *
 * DRIVER is qemu or vireo; PATH /system by default. Query parameters of
 * tls: pkipath=DIR (cacert.pem, clientcert.pem, clientkey.pem in DIR)
 * and no_verify=1 (do not check the server's certificate); others are
 * ignored, as libvirt ignores those it does not know.
 */
#ifndef VIREO_RPC_REMOTE_H
#define VIREO_RPC_REMOTE_H

#include <glib.h>

#include "vireo/rpc-client.h"
#include "vireo/rpc-tls.h"

typedef struct RpcRemoteUri {
    char *driver;           /* "qemu" or "vireo" */
    gboolean tls;           /* +tls, else +tcp */
    char *host;
    guint16 port;
    char *local_uri;        /* what CONNECT_OPEN asks for: "qemu:///system" */
    char *pkipath;          /* ?pkipath=DIR, or NULL */
    gboolean no_verify;     /* ?no_verify=1 */
} RpcRemoteUri;

/* RPC_ERROR_INVALID when @uri is not a tcp or tls URI of DRIVER qemu or vireo. */
RpcRemoteUri *rpc_remote_uri_parse(const char *uri, GError **error);
void rpc_remote_uri_free(RpcRemoteUri *u);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RpcRemoteUri, rpc_remote_uri_free)

/*
 * Blocking: connects to the daemon of @u within @timeout_ms (TCP connect,
 * then the TLS handshake). The TLS files are the URI's pkipath, else
 * @files, else the user's (rpc_tls_files_new_user()). The client is not
 * open yet: rpc_client_open(client, u->local_uri, ...) comes next.
 */
RpcClient *rpc_remote_connect(const RpcRemoteUri *u, const RpcTlsFiles *files,
                              guint timeout_ms, GError **error);

#endif /* VIREO_RPC_REMOTE_H */
