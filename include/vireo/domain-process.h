/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One vireo-vmm process, as the daemon supervises it: started by us
 * (vm_process_spawn) or found again after a daemon restart
 * (vm_process_adopt). It is watched through a pidfd, driven through its
 * QMP socket, and its COM1 -- when the daemon bridges it -- is read
 * continuously from the console socket so the guest never blocks on it.
 *
 * Survival: a spawned vireo-vmm runs in its own session (setsid), with
 * stdin from /dev/null and stdout/stderr appended to the domain's log
 * file, and inherits no other descriptor of the daemon. Killing the
 * daemon, even with SIGKILL, does not touch it; freeing a VmProcess only
 * stops watching.
 *
 * Life cycle seen by the owner, all in the loop thread of @ctx:
 *   vm_process_wait_ready() -> ready(run status) or ready(error);
 *   then events (QMP), and finally exited() once. If the process exits
 *   before it is ready, only ready(error) is called. exited() gets the
 *   waitpid() status when the process was our child, -1 otherwise.
 *
 * The console keeps what the guest printed while no sink was attached
 * (up to VM_PROCESS_CONSOLE_BUFFER bytes, oldest dropped), as a pty's
 * buffer would, and hands it to the next sink.
 */
#ifndef VIREO_DOMAIN_PROCESS_H
#define VIREO_DOMAIN_PROCESS_H

#include <glib.h>
#include <sys/types.h>

#include "vireo/qmp-client.h"

#define VM_PROCESS_CONSOLE_BUFFER (64 * 1024)

typedef struct VmProcess VmProcess;

typedef struct VmProcessCallbacks {
    void (*event)(VmProcess *vm, const char *event, JsonValue *data, gpointer opaque);
    void (*exited)(VmProcess *vm, int wait_status, gpointer opaque);
} VmProcessCallbacks;

/* @run_status: QMP query-status "status" ("running", "paused", "prelaunch"...). */
typedef void (*VmProcessReadyFunc)(VmProcess *vm, const char *run_status, const GError *error,
                                   gpointer opaque);
typedef void (*VmConsoleSink)(const guint8 *data, gsize len, gpointer opaque);

/*
 * Starts @argv[0] with @argv. @log_fd (kept by the caller) becomes the
 * child's stdout and stderr. @console_path NULL: no bridged console.
 */
VmProcess *vm_process_spawn(GMainContext *ctx, char **argv, int log_fd, const char *qmp_path,
                            const char *console_path, const VmProcessCallbacks *cb,
                            gpointer opaque, GError **error);
/* Watches an existing process (not our child). */
VmProcess *vm_process_adopt(GMainContext *ctx, pid_t pid, const char *qmp_path,
                            const char *console_path, const VmProcessCallbacks *cb,
                            gpointer opaque, GError **error);
/* Stops watching and closes the sockets; the process goes on. */
void vm_process_free(VmProcess *vm);

/*
 * Connects QMP (retrying while the socket is not there yet), then the
 * console, then asks query-status. @timeout_ms bounds the whole.
 */
void vm_process_wait_ready(VmProcess *vm, guint timeout_ms, VmProcessReadyFunc cb,
                           gpointer opaque);

pid_t vm_process_get_pid(VmProcess *vm);
/* NULL before wait_ready() connected it. */
QmpClient *vm_process_get_qmp(VmProcess *vm);
gboolean vm_process_kill(VmProcess *vm, int sig, GError **error);
gboolean vm_process_has_exited(VmProcess *vm);

gboolean vm_process_has_console(VmProcess *vm);
void vm_process_console_attach(VmProcess *vm, VmConsoleSink sink, gpointer opaque);
void vm_process_console_detach(VmProcess *vm);
void vm_process_console_write(VmProcess *vm, const guint8 *data, gsize len);

#endif
