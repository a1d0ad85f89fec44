/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libvirt's remote protocol over TCP (no TLS yet): the listening socket of
 * `vireod --listen` and the connected socket behind a vireo+tcp:// or
 * qemu+tcp:// URI. Blocking calls; the caller picks the thread.
 */
#ifndef VIREO_RPC_TCP_H
#define VIREO_RPC_TCP_H

#include <glib.h>

#define RPC_TCP_DEFAULT_PORT 16509      /* libvirtd's tcp_port */

/*
 * Parses "ADDR:PORT", "ADDR", "[V6ADDR]:PORT" or ":PORT" (ADDR default
 * 0.0.0.0, PORT default RPC_TCP_DEFAULT_PORT) into *@host and *@port.
 */
gboolean rpc_tcp_parse_address(const char *spec, char **host, guint16 *port, GError **error);
/* A listening socket (SO_REUSEADDR, close-on-exec) bound to @spec. */
int rpc_tcp_listen(const char *spec, GError **error);
/* A socket connected to @host:@port (name or address), within @timeout_ms. */
int rpc_tcp_connect(const char *host, guint16 port, guint timeout_ms, GError **error);

/*
 * A remote URI, DRIVER+tcp://HOST[:PORT]/PATH: *@driver gets "qemu" or
 * "vireo", *@host and *@port the daemon, *@local_uri what the daemon is
 * asked to open ("qemu:///system"). FALSE when the URI is not of this form.
 */
gboolean rpc_tcp_parse_uri(const char *uri, char **driver, char **host, guint16 *port,
                           char **local_uri, GError **error);

#endif /* VIREO_RPC_TCP_H */
