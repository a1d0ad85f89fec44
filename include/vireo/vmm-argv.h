/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-vmm's command line for a domain: a pure function of the
 * DomainDef, the per-VM paths and what the vireo-vmm in use offers.
 *
 * The result always has -S (the daemon connects QMP and the console first,
 * then sends "cont"), --qmp unix:QMP and --name. COM1 follows serial 0:
 * pty -> unix:CONSOLE (the daemon bridges it to `virsh console`),
 * file -> file:PATH, unix (mode bind) -> unix:PATH, null or none -> none.
 * --no-reboot when on_reboot is 'destroy' (a guest reset ends vireo-vmm,
 * the daemon records a shutdown); on_poweroff and on_crash are the
 * daemon's business. PCI devices (rng, balloon) are passed in slot order;
 * vireo-vmm gives slots 1, 2, ... in command-line order, so a definition
 * whose slots are not exactly that sequence is refused rather than
 * silently moved.
 */
#ifndef VIREO_VMM_ARGV_H
#define VIREO_VMM_ARGV_H

#include <glib.h>

#include "vireo/domain-conf.h"

typedef struct VmmArgvPaths {
    const char *vmm;            /* the vireo-vmm binary */
    const char *qmp_socket;
    const char *console_socket; /* used for a pty serial */
} VmmArgvPaths;

/*
 * DomainRunCaps of a vireo-vmm from its `--device help` output (one
 * "TYPE  description" per line).
 */
unsigned vmm_argv_caps_from_device_list(const char *device_help);

/*
 * NULL-terminated argv (g_strfreev), or NULL with VIREO_ERROR_UNSUPPORTED
 * ("unsupported configuration: ...") when @def cannot run with @caps.
 */
char **vmm_argv_build(const DomainDef *def, const VmmArgvPaths *paths, unsigned caps,
                      GError **error);

/* TRUE when COM1 is bridged by the daemon (serial 0 of type pty). */
gboolean vmm_argv_console_bridged(const DomainDef *def);

#endif
