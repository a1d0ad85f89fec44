/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libvirt's remote protocol over TCP: the listening socket of `vireod
 * --listen` and `--listen-tls`, and the connected socket behind a remote URI
 * (rpc-remote.h; TLS on top: rpc-tls.h). Blocking calls; the caller picks
 * the thread.
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

#endif /* VIREO_RPC_TCP_H */
