/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Remote daemon URIs and connections (include/vireo/rpc-remote.h). */
#include <string.h>
#include <unistd.h>

#include "vireo/rpc-error.h"
#include "vireo/rpc-remote.h"
#include "vireo/rpc-tcp.h"

void rpc_remote_uri_free(RpcRemoteUri *u)
{
    if (!u)
        return;
    g_free(u->driver);
    g_free(u->host);
    g_free(u->local_uri);
    g_free(u->pkipath);
    g_free(u);
}

static gboolean parse_query(RpcRemoteUri *u, const char *uri, const char *query,
                            GError **error)
{
    g_autoptr(GHashTable) params = NULL;
    const char *v;

    if (!query)
        return TRUE;
    params = g_uri_parse_params(query, -1, "&", G_URI_PARAMS_NONE, error);
    if (!params) {
        g_prefix_error(error, "invalid query in URI '%s': ", uri);
        return FALSE;
    }
    v = g_hash_table_lookup(params, "pkipath");
    if (v && *v)
        u->pkipath = g_strdup(v);
    v = g_hash_table_lookup(params, "no_verify");
    if (v) {
        guint64 n;

        if (!g_ascii_string_to_unsigned(v, 10, 0, 1, &n, NULL)) {
            g_set_error(error, RPC_ERROR, RPC_ERROR_INVALID,
                        "no_verify must be 0 or 1 in URI '%s'", uri);
            return FALSE;
        }
        u->no_verify = n == 1;
    }
    return TRUE;
}

RpcRemoteUri *rpc_remote_uri_parse(const char *uri, GError **error)
{
    g_autoptr(GUri) gu = g_uri_parse(uri, G_URI_FLAGS_ENCODED_QUERY, NULL);
    const char *scheme = gu ? g_uri_get_scheme(gu) : NULL;
    const char *plus = scheme ? strchr(scheme, '+') : NULL;
    g_autoptr(RpcRemoteUri) u = NULL;

    if (!plus || (strcmp(plus, "+tcp") && strcmp(plus, "+tls")) || !g_uri_get_host(gu) ||
        !*g_uri_get_host(gu)) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_INVALID,
                    "'%s' is not a DRIVER+tcp:// or DRIVER+tls://HOST[:PORT]/PATH URI", uri);
        return NULL;
    }
    u = g_new0(RpcRemoteUri, 1);
    u->driver = g_ascii_strdown(scheme, plus - scheme);
    if (strcmp(u->driver, "qemu") && strcmp(u->driver, "vireo")) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_INVALID,
                    "unsupported driver '%s' in URI '%s' (qemu or vireo)", u->driver, uri);
        return NULL;
    }
    u->tls = !strcmp(plus, "+tls");
    u->host = g_strdup(g_uri_get_host(gu));
    u->port = g_uri_get_port(gu) > 0 ? (guint16)g_uri_get_port(gu)
            : u->tls ? RPC_TLS_DEFAULT_PORT : RPC_TCP_DEFAULT_PORT;
    u->local_uri = g_strdup_printf("%s://%s", u->driver,
                                   *g_uri_get_path(gu) ? g_uri_get_path(gu) : "/system");
    if (!parse_query(u, uri, g_uri_get_query(gu), error))
        return NULL;
    return g_steal_pointer(&u);
}

RpcClient *rpc_remote_connect(const RpcRemoteUri *u, const RpcTlsFiles *files,
                              guint timeout_ms, GError **error)
{
    g_autoptr(RpcTlsFiles) own = NULL;
    g_autoptr(RpcTlsCreds) creds = NULL;
    RpcTlsSession *tls;
    int fd;

    if (u->tls) {
        /* Certificates first: a missing file is reported without touching the network. */
        if (u->pkipath)
            files = own = rpc_tls_files_new(RPC_TLS_CLIENT, NULL, u->pkipath);
        else if (!files)
            files = own = rpc_tls_files_new_user();
        creds = rpc_tls_creds_new(RPC_TLS_CLIENT, files, !u->no_verify, error);
        if (!creds)
            return NULL;
    }
    fd = rpc_tcp_connect(u->host, u->port, timeout_ms, error);
    if (fd < 0)
        return NULL;
    if (!creds)
        return rpc_client_new_fd(fd, error);
    tls = rpc_tls_client_handshake(creds, fd, u->host, timeout_ms, error);
    if (!tls) {
        g_prefix_error(error, "TLS connection to '%s:%u': ", u->host, u->port);
        close(fd);
        return NULL;
    }
    return rpc_client_new_tls(fd, tls, error);
}
