/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Connection URIs: libvirt's syntax, local UNIX sockets, TCP and TLS. */
#include <string.h>

#include "vireo/cli-uri.h"
#include "vireo/rpc-remote.h"
#include "vireo/util.h"

void cli_uri_free(CliUri *u)
{
    if (!u)
        return;
    g_free(u->scheme);
    g_free(u->transport);
    g_free(u->path);
    g_free(u->socket);
    g_free(u->open_name);
    g_free(u->host);
    rpc_remote_uri_free(u->remote);
    g_free(u);
}

const char *cli_uri_default(void)
{
    const char *env = g_getenv(CLI_URI_ENV);

    return env && *env ? env : CLI_URI_DEFAULT;
}

static gboolean no_driver(const char *uri, GError **error)
{
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                "no connection driver available for %s", uri);
    return FALSE;
}

/* The query's socket= (percent-decoded); other parameters are ignored. */
static gboolean parse_query(const char *uri, const char *query, char **socket,
                            GError **error)
{
    g_auto(GStrv) params = g_strsplit(query, "&", -1);

    for (guint i = 0; params[i]; i++) {
        const char *eq = strchr(params[i], '=');
        g_autofree char *key = NULL;

        if (!eq)
            continue;
        key = g_strndup(params[i], eq - params[i]);
        if (strcmp(key, "socket"))
            continue;
        g_free(*socket);
        *socket = g_uri_unescape_string(eq + 1, NULL);
        if (!*socket || !**socket) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "invalid socket path in URI %s", uri);
            return FALSE;
        }
    }
    return TRUE;
}

static char *default_socket(const char *scheme, const char *path, gboolean readonly,
                            GError **error)
{
    gboolean vireo = !strcmp(scheme, "vireo");
    const char *base = vireo ? "vireo-sock" : "libvirt-sock";
    const char *ro = readonly ? "-ro" : "";

    if (!strcmp(path, "/system"))
        return g_strdup_printf("%s%s",
                               vireo ? CLI_URI_VIREO_SYSTEM_SOCKET : CLI_URI_LIBVIRT_SYSTEM_SOCKET,
                               ro);
    if (!strcmp(path, "/session")) {
        const char *rt = g_getenv("XDG_RUNTIME_DIR");

        if (!rt || !*rt)
            rt = g_get_user_runtime_dir();
        /* A session daemon has no read-only socket (libvirt's neither). */
        return g_build_filename(rt, vireo ? "vireo" : "libvirt", base, NULL);
    }
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                "unexpected %s URI path '%s', try %s:///system", scheme, path, scheme);
    return NULL;
}

CliUri *cli_uri_parse(const char *uri, gboolean readonly, GError **error)
{
    g_autoptr(CliUri) u = g_new0(CliUri, 1);
    const char *sep = strstr(uri, "://");
    g_autofree char *scheme = NULL;
    const char *rest, *slash, *q;
    char *plus;

    if (!sep || sep == uri)
        return no_driver(uri, error), NULL;
    scheme = g_ascii_strdown(uri, sep - uri);
    plus = strchr(scheme, '+');
    if (plus) {
        u->transport = g_strdup(plus + 1);
        *plus = '\0';
    }
    if (strcmp(scheme, "vireo") && strcmp(scheme, "qemu"))
        return no_driver(uri, error), NULL;
    u->scheme = g_steal_pointer(&scheme);
    if (u->transport && (!strcmp(u->transport, "tcp") || !strcmp(u->transport, "tls"))) {
        /* A remote daemon: vireod --listen or --listen-tls. */
        u->remote = rpc_remote_uri_parse(uri, error);
        if (!u->remote)
            return NULL;
        u->host = g_strdup(u->remote->host);
        u->port = u->remote->port;
        u->open_name = g_strdup(u->remote->local_uri);
        u->path = g_strdup(strstr(u->open_name, "://") + 3);
        return g_steal_pointer(&u);
    }
    if (u->transport && strcmp(u->transport, "unix")) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "transport '%s' in URI %s is not supported: only local UNIX sockets",
                    u->transport, uri);
        return NULL;
    }
    rest = sep + 3;
    slash = strchr(rest, '/');
    q = strchr(rest, '?');
    if (!slash || (q && q < slash) || slash != rest) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "remote host in URI %s is not supported: only local UNIX sockets", uri);
        return NULL;
    }
    u->path = q ? g_strndup(slash, q - slash) : g_strdup(slash);
    if (q && !parse_query(uri, q + 1, &u->socket, error))
        return NULL;
    if (!u->socket) {
        u->socket = default_socket(u->scheme, u->path, readonly, error);
        if (!u->socket)
            return NULL;
    } else if (strcmp(u->path, "/system") && strcmp(u->path, "/session")) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "unexpected %s URI path '%s', try %s:///system", u->scheme, u->path,
                    u->scheme);
        return NULL;
    }
    u->open_name = g_strdup_printf("%s://%s", u->scheme, u->path);
    return g_steal_pointer(&u);
}
