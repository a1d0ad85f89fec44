/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The domain driver of vireod and vireo-domaind (docs/daemon.md): domain
 * objects, their libvirt states and reasons, persistent definitions, one
 * supervised vireo-vmm per running domain (domain-process.h), and the
 * RPC handlers virsh and python3-libvirt call.
 *
 * Everything runs in the loop thread of the RpcServer's context. State-
 * changing operations on one domain are serialized: while a "job" (start,
 * destroy, reconnect) is in progress, further calls that need the domain
 * to hold still wait for it, in arrival order, then run.
 *
 * Contracts:
 * - a definition reaches the disk (atomically) before define replies;
 * - a running VM's state file is on disk before start replies, and is
 *   rewritten on every state change, so a daemon started later carries on
 *   (domain_driver_new() finds and reconnects running VMs);
 * - freeing the driver leaves every VM running.
 */
#ifndef VIREO_DOMAIN_DRIVER_H
#define VIREO_DOMAIN_DRIVER_H

#include <glib.h>

#include "vireo/daemon-paths.h"
#include "vireo/rpc-server.h"

typedef struct DomainDriver DomainDriver;

typedef struct DomainDriverConfig {
    const DaemonPaths *paths;
    const char *vmm_path;       /* the vireo-vmm binary */
    unsigned caps;              /* DomainRunCaps of that vireo-vmm */
    guint start_timeout_ms;     /* vireo-vmm's QMP must answer within (10000) */
    guint destroy_timeout_ms;   /* SIGTERM, then SIGKILL after (5000) */
    const char *tls_dir;        /* --tls-dir, or NULL: ROOT/etc/pki (rpc-tls.h) */
} DomainDriverConfig;

/*
 * Loads the definitions, then finds the VMs still running from an earlier
 * daemon and reconnects to them (completing in the loop). Registers the
 * domain procedures on @srv.
 */
DomainDriver *domain_driver_new(RpcServer *srv, const DomainDriverConfig *cfg, GError **error);
void domain_driver_free(DomainDriver *drv);

/* Starts every inactive persistent domain marked autostart. */
void domain_driver_autostart(DomainDriver *drv);
/* TRUE while a VM runs or an operation is in progress (no idle exit). */
gboolean domain_driver_is_busy(DomainDriver *drv);
guint domain_driver_count(DomainDriver *drv);

#endif
