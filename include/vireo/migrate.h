/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Migration of this VM: the machine side of migration/ (dirty logging,
 * stopping the vCPUs, device state) and its QMP commands, in QEMU 7.2's
 * shapes: migrate, migrate-incoming, query-migrate, migrate_cancel,
 * migrate-set-parameters, query-migrate-parameters (tls-creds and
 * tls-hostname included), the MIGRATION event, object-add and object-del
 * for tls-creds-x509 objects, and x-vireo-ram-checksum (for tests: a hash
 * of guest RAM).
 *
 * Threads: the event loop thread; the migration threads reach the
 * machine only through loop_call().
 */
#ifndef VIREO_MIGRATE_H
#define VIREO_MIGRATE_H

#include <glib.h>

#include "vireo/loop.h"
#include "vireo/machine.h"
#include "vireo/qmp.h"

typedef struct Migrate Migrate;

Migrate *migrate_new(Machine *m, Loop *loop);
/* Cancels what runs and joins the threads; before machine_free(). */
void migrate_free(Migrate *mig);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Migrate, migrate_free)

void migrate_qmp_register(Migrate *mig, QmpServer *server);

/*
 * --incoming URI: listens (or opens the file) now, so errors show at start;
 * "defer" waits for QMP migrate-incoming. After the stream the VM runs if
 * the source ran and @autostart (no -S). A failed incoming migration ends
 * the process with status 1.
 */
gboolean migrate_incoming(Migrate *mig, const char *uri, gboolean autostart, GError **error);

/*
 * A tls-creds-x509 object (--object, QMP object-add), with QEMU's file
 * names in @dir: ca-cert.pem, and server-cert.pem with server-key.pem
 * (@server) or client-cert.pem with client-key.pem (a client may have
 * neither). Loaded and checked now (gnutls is loaded then, not before):
 * the error names the file and what is wrong with it.
 */
gboolean migrate_add_tls_creds(Migrate *mig, const char *id, const char *dir, gboolean server,
                               gboolean verify_peer, GError **error);
/* --migrate-tls-creds ID: the tls-creds parameter from the start, before --incoming. */
gboolean migrate_set_tls_creds(Migrate *mig, const char *id, GError **error);

#endif
