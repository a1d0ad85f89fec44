/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The state file of a running domain, ROOT/run/vireo/vm/UUID/state: what
 * a daemon started later needs to find the VM again and carry on as if it
 * had never stopped. A GKeyFile (text, versioned) written atomically
 * whenever it changes; the live definition is in it so that a transient
 * domain survives a daemon restart too.
 *
 *   [domain]
 *   version=1
 *   name=NAME
 *   uuid=UUID
 *   id=3
 *   pid=1234
 *   start-ticks=567890      (field 22 of /proc/PID/stat: pid reuse check)
 *   started-at=1732600000   (seconds since the epoch, for messages)
 *   persistent=true
 *   state=1                 (virDomainState; reason: its reason code)
 *   reason=1
 *   start-complete=true     (false while the daemon was still starting it)
 *   migration-out=1         (an outgoing migration: 1 before the destination's
 *                           finish was asked for, 2 after; absent: none)
 *   live-xml=<domain ...    (escaped, one line)
 */
#ifndef VIREO_DOMAIN_STATUS_H
#define VIREO_DOMAIN_STATUS_H

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

#define DOMAIN_STATUS_VERSION 1

typedef struct DomainStatus {
    char *name;
    uint8_t uuid[16];
    int id;
    pid_t pid;
    guint64 start_ticks;
    gint64 started_at;
    gboolean persistent;
    int state;
    int reason;
    gboolean start_complete;
    int migration_out;          /* DOMAIN_MIGRATION_OUT_* */
    char *live_xml;
} DomainStatus;

/*
 * How far an outgoing migration got, for a daemon that restarts in the
 * middle: before the finish the VM is still ours to resume; after it, the
 * destination may run it.
 */
enum {
    DOMAIN_MIGRATION_OUT_NONE = 0,
    DOMAIN_MIGRATION_OUT_PERFORMING = 1,
    DOMAIN_MIGRATION_OUT_FINISHING = 2,
};

DomainStatus *domain_status_new(void);
void domain_status_free(DomainStatus *st);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainStatus, domain_status_free)

char *domain_status_format(const DomainStatus *st);
/* VIREO_ERROR_INVALID_STATE naming the key when something is missing or bad. */
DomainStatus *domain_status_parse(const char *text, GError **error);

gboolean domain_status_save(const DomainStatus *st, const char *path, GError **error);
DomainStatus *domain_status_load(const char *path, GError **error);

#endif
