/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The virtual machine as a whole: KVM VM, RAM, vCPUs, buses, the fixed
 * legacy devices, boot, and the run state (running, paused, shut down).
 *
 * Threads: everything here runs on the event loop thread unless marked.
 * vCPU threads reach the machine only through device register accesses and
 * the MachineControl requests devices make (reset, power off, exit).
 */
#ifndef VIREO_MACHINE_H
#define VIREO_MACHINE_H

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

#include "vireo/loop.h"
#include "vireo/state.h"

typedef struct Machine Machine;
typedef struct Device Device;         /* vireo/device.h */

/* A device from the command line (--device and the options built on it). */
typedef struct MachineDeviceSpec {
    char *type;                 /* a registered DeviceType name */
    char *id;                   /* NULL: <type><index> */
    char *options;              /* "key=value,..." for the device */
    char *chardev;              /* chardev spec for its character backend, or NULL */
} MachineDeviceSpec;

void machine_device_spec_free(MachineDeviceSpec *spec);

typedef struct MachineConfig {
    char *name;
    char *kernel;
    char *initrd;
    char *cmdline;
    uint64_t memory;            /* bytes */
    unsigned cpus;
    char *serial;               /* chardev spec: stdio, pty, file:P, unix:P, none */
    gboolean debug_exit;
    gboolean no_reboot;
    gboolean start_paused;      /* -S: wait for "cont" */
    gboolean incoming;          /* --incoming: no boot; state comes from a migration */
    GPtrArray *devices;         /* MachineDeviceSpec*, in slot order */
} MachineConfig;

MachineConfig *machine_config_new(void);
MachineDeviceSpec *machine_config_add_device(MachineConfig *cfg, const char *type,
                                             const char *id, const char *options);
void machine_config_free(MachineConfig *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MachineConfig, machine_config_free)

/* QEMU's RunState names, as query-status reports them. */
typedef enum {
    RUN_STATE_PRELAUNCH,        /* created, vCPUs not started (-S) */
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,           /* stopped by a "stop" */
    RUN_STATE_SHUTDOWN,         /* guest or host ended it; about to exit */
    RUN_STATE_INTERNAL_ERROR,   /* a vCPU hit something fatal */
    RUN_STATE_INMIGRATE,        /* --incoming: waiting for the migration stream */
    RUN_STATE_FINISH_MIGRATE,   /* stopped by a migration, sending the rest */
    RUN_STATE_POSTMIGRATE,      /* migrated away; stays stopped ("cont" allowed) */
} RunState;

const char *run_state_name(RunState state);

typedef enum {
    MACHINE_EVENT_SHUTDOWN,
    MACHINE_EVENT_POWERDOWN,
    MACHINE_EVENT_RESET,
    MACHINE_EVENT_STOP,
    MACHINE_EVENT_RESUME,
} MachineEventKind;

typedef struct MachineEvent {
    MachineEventKind kind;
    gboolean guest;             /* SHUTDOWN/RESET: caused by the guest */
    const char *reason;         /* SHUTDOWN/RESET: QEMU's ShutdownCause name */
} MachineEvent;

typedef void (*MachineEventFn)(const MachineEvent *ev, void *opaque);

Machine *machine_new(const MachineConfig *cfg, Loop *loop, GError **error);
void machine_free(Machine *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Machine, machine_free)

/* Loads the kernel and starts the vCPUs (or stays in prelaunch with start_paused). */
gboolean machine_start(Machine *m, GError **error);

void machine_add_listener(Machine *m, MachineEventFn fn, void *opaque);

RunState machine_run_state(const Machine *m);
/* "stop": returns once every vCPU is out of the guest. Emits STOP. */
void machine_stop(Machine *m);
/* "cont": from paused or prelaunch. Emits RESUME. */
gboolean machine_cont(Machine *m, GError **error);
/* ACPI power button (system_powerdown). Emits POWERDOWN. */
void machine_powerdown(Machine *m);
/* system_reset: like the guest resetting itself, but caused by the host. */
void machine_system_reset(Machine *m);
/* quit: emits SHUTDOWN (host-qmp-quit) and ends the loop with status 0. */
void machine_quit(Machine *m, const char *reason);

/*
 * The whole machine state but RAM: every vCPU, the in-kernel irqchip, PIT
 * and clock, and every device, as state sections. Save needs the vCPUs
 * stopped (paused or prelaunch); load is for a machine that has not run
 * (prelaunch, as with -S) and leaves it ready to "cont".
 */
gboolean machine_save_state(Machine *m, StateWriter *w, GError **error);
gboolean machine_load_state(Machine *m, StateReader *r, GError **error);

/*
 * Run state changes made by migration (vmm/migrate.c), loop thread:
 * PAUSED -> FINISH_MIGRATE -> POSTMIGRATE on success; FINISH_MIGRATE or
 * INMIGRATE -> PAUSED otherwise (then "cont" if it was running). Any other
 * change is a bug.
 */
void machine_set_migration_state(Machine *m, RunState state);
/* Fails, naming the first device that cannot save its state, if there is one. */
gboolean machine_check_migratable(Machine *m, GError **error);

/* The KVM fds (/dev/kvm, VM, vCPUs) into @fds (at most @max); returns the count. */
unsigned machine_kvm_fds(const Machine *m, int *fds, unsigned max);

unsigned machine_nr_cpus(const Machine *m);
/* Host thread id of vCPU @index (0 before it started). */
pid_t machine_vcpu_thread_id(const Machine *m, unsigned index);
const char *machine_name(const Machine *m);
/* The first device of registered type @type_name (e.g. "virtio-balloon"), or NULL. */
Device *machine_find_device(Machine *m, const char *type_name);

#endif
