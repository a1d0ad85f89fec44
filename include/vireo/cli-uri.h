/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Connection URIs of the command-line tools, in libvirt's form:
 *
 *   vireo:///system                     /run/vireo/vireo-sock (the default)
 *   vireo+unix:///system?socket=PATH    PATH
 *   vireo:///session                    $XDG_RUNTIME_DIR/vireo/vireo-sock
 *   qemu:///system                      /run/libvirt/libvirt-sock (libvirtd)
 *   qemu+unix:///system?socket=PATH     PATH
 *   vireo+tcp://HOST[:PORT]/system      vireod --listen on HOST (16509)
 *   vireo+tls://HOST[:PORT]/system      vireod --listen-tls on HOST (16514);
 *                                       ?pkipath=DIR, ?no_verify=1 (rpc-remote.h)
 *
 * Read-only connections use the "-ro" socket next to the default one; a
 * socket= given in the URI is used as it is. A host name needs the tcp or
 * tls transport; others (ssh, libssh) are refused. What
 * CONNECT_OPEN carries is the URI without transport and query, as
 * libvirt's remote driver sends it ("qemu:///system").
 *
 * Pure functions but for cli_uri_default() (reads the environment).
 */
#ifndef VIREO_CLI_URI_H
#define VIREO_CLI_URI_H

#include <glib.h>

#include "vireo/rpc-remote.h"

#define CLI_URI_DEFAULT "vireo:///system"
#define CLI_URI_VIREO_SYSTEM_SOCKET "/run/vireo/vireo-sock"
#define CLI_URI_LIBVIRT_SYSTEM_SOCKET "/run/libvirt/libvirt-sock"
/* The environment variable that overrides CLI_URI_DEFAULT (-c overrides both). */
#define CLI_URI_ENV "VIREO_DEFAULT_URI"

typedef struct CliUri {
    char *scheme;        /* "vireo" or "qemu" */
    char *transport;     /* "unix" or NULL */
    char *path;          /* "/system" or "/session" */
    char *socket;        /* the socket to connect to */
    char *open_name;     /* CONNECT_OPEN's name: "vireo:///system" */
    char *host;          /* transport "tcp" or "tls": the daemon's host (else NULL) */
    guint16 port;        /* transport "tcp" or "tls": its port */
    RpcRemoteUri *remote; /* transport "tcp" or "tls": the whole URI (else NULL) */
} CliUri;

/*
 * Parses @uri. Errors (VIREO_ERROR_INVALID_ARGUMENT) are worded as
 * libvirt's: "no connection driver available for foo:///system".
 */
CliUri *cli_uri_parse(const char *uri, gboolean readonly, GError **error);
void cli_uri_free(CliUri *u);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CliUri, cli_uri_free)

/* $VIREO_DEFAULT_URI when set and not empty, else CLI_URI_DEFAULT. */
const char *cli_uri_default(void);

#endif /* VIREO_CLI_URI_H */
