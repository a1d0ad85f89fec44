/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Where vireod and the modular daemons keep things (docs/daemon.md).
 * Every path lives under one root ("/" normally, a test's directory with
 * --root), so a test never touches the host's state:
 *
 *   ROOT/etc/vireo/                      configuration (reserved)
 *   ROOT/var/lib/vireo/domains/NAME.xml  persistent definitions
 *   ROOT/var/lib/vireo/domains/autostart/NAME.xml  symlinks: autostart
 *   ROOT/run/vireo/                      sockets, daemon pid files
 *   ROOT/run/vireo/vm/UUID/              one running VM: qmp.sock,
 *                                        console.sock, pid, state, live.xml
 *   ROOT/var/log/vireo/NAME.log          vireo-vmm's output, daemon notes
 *
 * The role decides the socket names: vireod uses libvirtd-like
 * "vireo-sock", "vireo-sock-ro", "vireo-admin-sock"; a modular daemon
 * "<name>-sock", "<name>-sock-ro", "<name>-admin-sock" (as virtqemud).
 */
#ifndef VIREO_DAEMON_PATHS_H
#define VIREO_DAEMON_PATHS_H

#include <glib.h>

typedef enum {
    DAEMON_ROLE_ALL,        /* vireod: every driver */
    DAEMON_ROLE_DOMAIN,     /* vireo-domaind */
    DAEMON_ROLE_NETWORK,    /* vireo-networkd */
    DAEMON_ROLE_STORAGE,    /* vireo-storaged */
} DaemonRole;

typedef struct DaemonPaths {
    char *root;             /* without trailing slash; "" for "/" */
    char *config_dir;
    char *state_dir;
    char *domains_dir;
    char *autostart_dir;
    char *run_dir;
    char *vm_run_dir;
    char *log_dir;
    char *sock;             /* read-write */
    char *sock_ro;
    char *sock_admin;
    char *pid_file;         /* ROOT/run/vireo/<daemon name>.pid */
    char *autostarted;      /* marker: autostart already ran since boot */
} DaemonPaths;

/* "vireod", "vireo-domaind", ... */
const char *daemon_role_name(DaemonRole role);
/* From a program name (basename of argv[0]) or a role name; FALSE if unknown. */
gboolean daemon_role_from_name(const char *name, DaemonRole *role);
gboolean daemon_role_has_domains(DaemonRole role);

/* @root NULL or "/" for the host. */
DaemonPaths *daemon_paths_new(const char *root, DaemonRole role);
void daemon_paths_free(DaemonPaths *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DaemonPaths, daemon_paths_free)

/* Creates the directories above (0755; run and log 0700 for VMs). */
gboolean daemon_paths_create_dirs(const DaemonPaths *p, GError **error);

/* ROOT/run/vireo/vm/UUID and the files in it. */
char *daemon_paths_vm_dir(const DaemonPaths *p, const char *uuid);
char *daemon_paths_vm_file(const DaemonPaths *p, const char *uuid, const char *file);
char *daemon_paths_definition(const DaemonPaths *p, const char *name);
char *daemon_paths_autostart_link(const DaemonPaths *p, const char *name);
char *daemon_paths_log(const DaemonPaths *p, const char *name);

#endif
