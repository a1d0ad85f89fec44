/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * TLS under a migration connection, as QEMU's tls-creds: the source is
 * the client (it checks the destination's certificate against a host
 * name), the destination the server (it checks the source's certificate
 * when its credentials say verify-peer).
 *
 * gnutls allows one thread to send and another to receive on a session.
 * The bulk direction, the stream itself (a source writes, a destination
 * reads), goes through the session on the stream's thread
 * (mig_stream_set_tls()). The other direction (acks, post-copy page
 * requests, the resume bitmap) keeps its code as it was: a pump thread
 * moves it between the session and one end of a socketpair, and the code
 * uses the other end as it would the socket (read, write, shutdown,
 * SO_RCVTIMEO). A TLS failure breaks that socket as a network failure
 * would; a shutdown() of it (cancel, migrate-pause) shuts the real
 * connection down, which also ends a blocked bulk read or write.
 */
#ifndef VIREO_MIGRATION_TLS_H
#define VIREO_MIGRATION_TLS_H

#include <glib.h>

#include "vireo/tls.h"

/* Handshake time limit: a peer that says nothing must not hold a migration forever. */
#define MIG_TLS_HANDSHAKE_TIMEOUT_MS 30000

typedef struct MigTlsLink MigTlsLink;

/*
 * The handshake on the connected socket @fd, as client or server after
 * @creds' endpoint, within MIG_TLS_HANDSHAKE_TIMEOUT_MS; a client that
 * verifies the server needs @hostname. A server first checks that the
 * peer starts a TLS handshake at all, so that a plain-text source gets
 * a clear error. On success the link owns @fd and *@inner_fd is the
 * socket for the small direction (the caller's, to close); on failure
 * the caller keeps @fd. The caller may shutdown(@fd) meanwhile to give up.
 */
MigTlsLink *mig_tls_link_new(TlsCreds *creds, int fd, const char *hostname, int *inner_fd,
                             GError **error);
/*
 * The bulk direction, blocking, from one thread at a time: a source
 * (client) writes, a destination (server) reads; read returns 0 at the
 * end of the stream. Errors say "TLS with the destination: ...".
 */
gboolean mig_tls_link_write(MigTlsLink *link, const void *buf, size_t len, GError **error);
gssize mig_tls_link_read(MigTlsLink *link, void *buf, size_t len, GError **error);
/*
 * Why the pump's direction broke, if it did for a TLS reason of its own
 * (the peer refused our certificate, a bad record), or NULL: a copy.
 */
GError *mig_tls_link_get_error(MigTlsLink *link);
/*
 * For the stream code's error when the stream broke: if the pump saw a
 * reason (it waits a moment for the pump to see it), *@error becomes that
 * reason, e.g. "TLS with the destination: TLS read failed: the peer
 * refused: CA is unknown", rather than what followed from it.
 */
void mig_tls_link_explain(MigTlsLink *link, GError **error);
/* Shuts the connection down, joins the pump thread and closes the socket. */
void mig_tls_link_free(MigTlsLink *link);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigTlsLink, mig_tls_link_free)

#endif
