/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * TLS for the remote protocol (include/vireo/rpc-tls.h): libvirt's file
 * layout and the server's confirmation byte, on top of the generic
 * sessions of include/vireo/tls.h (which loads gnutls on first use).
 */
#include <unistd.h>

#include "vireo/rpc-error.h"
#include "vireo/rpc-tls.h"
#include "vireo/tls.h"

struct RpcTlsCreds {
    gint ref;                       /* atomic */
    TlsCreds *tls;                  /* immutable */
};

struct RpcTlsSession {
    TlsSession *tls;
};

/*
 * The generic layer's errors in the RPC domain, as callers (and the
 * client at the other end) have always seen them.
 */
static void set_rpc_error(GError **error, GError *err)
{
    int code = RPC_ERROR_TLS;

    if (err->domain == TLS_ERROR && err->code == TLS_ERROR_TIMEOUT)
        code = RPC_ERROR_TIMEOUT;
    else if (err->domain == TLS_ERROR && err->code == TLS_ERROR_IO)
        code = RPC_ERROR_IO;
    g_set_error_literal(error, RPC_ERROR, code, err->message);
    g_error_free(err);
}

/* ------------------------------------------------------------------ files */

RpcTlsFiles *rpc_tls_files_new(RpcTlsRole role, const char *root, const char *dir)
{
    RpcTlsFiles *f = g_new0(RpcTlsFiles, 1);
    const char *who = role == RPC_TLS_SERVER ? "server" : "client";
    g_autofree char *cert = g_strdup_printf("%scert.pem", who);
    g_autofree char *key = g_strdup_printf("%skey.pem", who);

    if (dir) {
        f->cacert = g_build_filename(dir, "cacert.pem", NULL);
        f->cert = g_build_filename(dir, cert, NULL);
        f->key = g_build_filename(dir, key, NULL);
        return f;
    }
    if (!root || !*root)
        root = "/";
    f->cacert = g_build_filename(root, "etc/pki/CA/cacert.pem", NULL);
    f->cert = g_build_filename(root, "etc/pki/vireo", cert, NULL);
    f->key = g_build_filename(root, "etc/pki/vireo/private", key, NULL);
    return f;
}

RpcTlsFiles *rpc_tls_files_new_user(void)
{
    g_autofree char *dir = NULL;

    /* libvirt's rule: system-wide files for root, per-user ones otherwise. */
    if (geteuid() == 0)
        return rpc_tls_files_new(RPC_TLS_CLIENT, NULL, NULL);
    dir = g_build_filename(g_get_home_dir(), ".pki", "vireo", NULL);
    return rpc_tls_files_new(RPC_TLS_CLIENT, NULL, dir);
}

void rpc_tls_files_free(RpcTlsFiles *f)
{
    if (!f)
        return;
    g_free(f->cacert);
    g_free(f->cert);
    g_free(f->key);
    g_free(f);
}

/* ------------------------------------------------------------ credentials */

RpcTlsCreds *rpc_tls_creds_new(RpcTlsRole role, const RpcTlsFiles *files,
                               gboolean verify_peer, GError **error)
{
    GError *err = NULL;
    TlsCreds *tls = tls_creds_new(role == RPC_TLS_SERVER ? TLS_ENDPOINT_SERVER
                                                         : TLS_ENDPOINT_CLIENT,
                                  files->cacert, files->cert, files->key, verify_peer, &err);
    RpcTlsCreds *creds;

    if (!tls) {
        set_rpc_error(error, err);
        return NULL;
    }
    creds = g_new0(RpcTlsCreds, 1);
    creds->ref = 1;
    creds->tls = tls;
    return creds;
}

RpcTlsCreds *rpc_tls_creds_ref(RpcTlsCreds *creds)
{
    g_atomic_int_inc(&creds->ref);
    return creds;
}

void rpc_tls_creds_unref(RpcTlsCreds *creds)
{
    if (!creds || !g_atomic_int_dec_and_test(&creds->ref))
        return;
    tls_creds_unref(creds->tls);
    g_free(creds);
}

/* --------------------------------------------------------------- sessions */

RpcTlsSession *rpc_tls_session_new(RpcTlsCreds *creds, int fd, const char *hostname,
                                   GError **error)
{
    GError *err = NULL;
    TlsSession *tls = tls_session_new(creds->tls, fd, hostname, &err);
    RpcTlsSession *s;

    if (!tls) {
        set_rpc_error(error, err);
        return NULL;
    }
    s = g_new0(RpcTlsSession, 1);
    s->tls = tls;
    return s;
}

void rpc_tls_session_free(RpcTlsSession *s)
{
    if (!s)
        return;
    tls_session_free(s->tls);
    g_free(s);
}

RpcTlsStatus rpc_tls_session_handshake(RpcTlsSession *s, GError **error)
{
    GError *err = NULL;

    switch (tls_session_handshake(s->tls, &err)) {
    case TLS_DONE:
        return RPC_TLS_DONE;
    case TLS_WANT_READ:
        return RPC_TLS_WANT_READ;
    case TLS_WANT_WRITE:
        return RPC_TLS_WANT_WRITE;
    case TLS_FAILED:
        break;
    }
    set_rpc_error(error, err);
    return RPC_TLS_FAILED;
}

gssize rpc_tls_session_recv(RpcTlsSession *s, void *buf, gsize len, GError **error)
{
    GError *err = NULL;
    gssize n = tls_session_recv(s->tls, buf, len, &err);

    if (n == TLS_AGAIN)
        return RPC_TLS_AGAIN;
    if (n < 0)
        set_rpc_error(error, err);
    return n;
}

gssize rpc_tls_session_send(RpcTlsSession *s, const void *buf, gsize len, GError **error)
{
    GError *err = NULL;
    gssize n = tls_session_send(s->tls, buf, len, &err);

    if (n == TLS_AGAIN)
        return RPC_TLS_AGAIN;
    if (n < 0)
        set_rpc_error(error, err);
    return n;
}

gsize rpc_tls_session_pending(RpcTlsSession *s)
{
    return tls_session_pending(s->tls);
}

/* ----------------------------------------------------- blocking client side */

RpcTlsSession *rpc_tls_client_handshake(RpcTlsCreds *creds, int fd, const char *hostname,
                                        guint timeout_ms, GError **error)
{
    g_autoptr(RpcTlsSession) s = rpc_tls_session_new(creds, fd, hostname, error);
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    GError *err = NULL;
    guint8 confirm = 0;
    gssize n;

    if (!s)
        return NULL;
    if (!tls_session_handshake_sync(s->tls, deadline, &err)) {
        set_rpc_error(error, err);
        return NULL;
    }
    /* The server's verdict on our certificate: one byte 1, or the connection closed. */
    while ((n = rpc_tls_session_recv(s, &confirm, 1, error)) == RPC_TLS_AGAIN) {
        if (!tls_wait_fd(fd, FALSE, deadline, "waiting for the server's TLS confirmation",
                         &err)) {
            set_rpc_error(error, err);
            return NULL;
        }
    }
    if (n < 0) {
        g_prefix_error(error, "the server refused our certificate: ");
        return NULL;
    }
    if (n != 1 || confirm != 1) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "the server refused the connection after "
                    "the TLS handshake (our certificate, or our address)");
        return NULL;
    }
    return g_steal_pointer(&s);
}
