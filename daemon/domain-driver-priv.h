/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The domain driver's objects, shared by its files: domain-driver.c (life
 * cycle, most handlers), domain-save.c (save, restore, managed save) and
 * domain-job.c (job info, abort, migration parameters). Not a public
 * header: everything here runs in the driver's loop thread.
 */
#ifndef VIREO_DOMAIN_DRIVER_PRIV_H
#define VIREO_DOMAIN_DRIVER_PRIV_H

#include <glib.h>

#include "vireo/conf-value.h"
#include "vireo/domain-conf.h"
#include "vireo/domain-driver.h"
#include "vireo/domain-process.h"
#include "vireo/rpc-protocol.h"

/* libvirt's state reasons (virDomain*Reason) and event details. */
enum { RUNNING_UNKNOWN = 0, RUNNING_BOOTED = 1, RUNNING_RESTORED = 3, RUNNING_UNPAUSED = 5,
       RUNNING_SAVE_CANCELED = 7 };
enum { PAUSED_UNKNOWN = 0, PAUSED_USER = 1, PAUSED_SAVE = 3 };
enum { SHUTDOWN_UNKNOWN = 0, SHUTDOWN_USER = 1 };
enum { SHUTOFF_UNKNOWN = 0, SHUTOFF_SHUTDOWN = 1, SHUTOFF_DESTROYED = 2, SHUTOFF_CRASHED = 3,
       SHUTOFF_SAVED = 5, SHUTOFF_FAILED = 6 };
enum { EV_DEFINED_ADDED = 0, EV_DEFINED_UPDATED = 1 };
enum { EV_UNDEFINED_REMOVED = 0 };
enum { EV_STARTED_BOOTED = 0, EV_STARTED_RESTORED = 2 };
enum { EV_SUSPENDED_PAUSED = 0 };
enum { EV_RESUMED_UNPAUSED = 0 };
enum { EV_STOPPED_SHUTDOWN = 0, EV_STOPPED_DESTROYED = 1, EV_STOPPED_CRASHED = 2,
       EV_STOPPED_SAVED = 4, EV_STOPPED_FAILED = 5 };
enum { EV_SHUTDOWN_FINISHED = 0, EV_SHUTDOWN_GUEST = 1, EV_SHUTDOWN_HOST = 2 };
enum { EV_CRASHED_PANICKED = 0 };

/* API flags. */
enum { LIST_ACTIVE = 1, LIST_INACTIVE = 2, LIST_PERSISTENT = 4, LIST_TRANSIENT = 8,
       LIST_RUNNING = 16, LIST_PAUSED = 32, LIST_SHUTOFF = 64, LIST_OTHER = 128,
       LIST_MANAGEDSAVE = 256, LIST_NO_MANAGEDSAVE = 512, LIST_AUTOSTART = 1024,
       LIST_NO_AUTOSTART = 2048, LIST_HAS_SNAPSHOT = 4096, LIST_NO_SNAPSHOT = 8192,
       LIST_HAS_CHECKPOINT = 16384, LIST_NO_CHECKPOINT = 32768 };
enum { START_PAUSED = 1, START_AUTODESTROY = 2, START_BYPASS_CACHE = 4, START_FORCE_BOOT = 8,
       START_VALIDATE = 16, START_RESET_NVRAM = 32,
       /* Ours, never on the wire: vireo-vmm loads dom->incoming (a restore). */
       START_RESTORE = 1 << 24, START_MANAGED_SAVE = 1 << 25,
       /* With START_RESTORE: the stream comes from a migrating source (migrate-p2p.c). */
       START_MIGRATE_IN = 1 << 26 };
enum { XML_SECURE = 1, XML_INACTIVE = 2, XML_UPDATE_CPU = 4, XML_MIGRATABLE = 8 };
enum { DEFINE_VALIDATE = 1 };
enum { UNDEFINE_KNOWN_FLAGS = 1 | 2 | 4 | 8 | 16 | 32 | 64 };
enum { DESTROY_GRACEFUL = 1 };
enum { SHUTDOWN_ACPI = 1, SHUTDOWN_AGENT = 2 };
enum { AFFECT_LIVE = 1, AFFECT_CONFIG = 2, MEM_MAXIMUM = 4, VCPU_MAXIMUM = 4, VCPU_GUEST = 8 };
enum { CONSOLE_FORCE = 1, CONSOLE_SAFE = 2 };

typedef struct Domain Domain;
typedef struct DomainJob DomainJob;
typedef void (*StartDoneFunc)(Domain *dom, RpcCall *call, const GError *error);

/* A call that waits for the domain's current job. */
typedef struct Deferred {
    RpcCall *call;
    RpcHandlerFunc fn;
    gpointer args;
} Deferred;

typedef enum {
    STOP_NONE,
    STOP_DESTROY,           /* we sent SIGTERM/SIGKILL */
    STOP_FAKE_REBOOT,       /* virsh reboot: power button, then start again */
    STOP_SAVED,             /* its state is in a save image: shut off (saved) */
    STOP_MIGRATED,          /* it runs on another host now: shut off (migrated) */
} StopIntent;

struct Domain {
    gint ref;
    DomainDriver *drv;
    char *name;
    uint8_t uuid[16];
    char uuidstr[CONF_UUID_STRING_LEN];
    DomainDef *def;          /* persistent definition; NULL: transient */
    DomainDef *live;         /* while active */
    gboolean autostart;
    gboolean removed;        /* no longer in the driver's tables */
    int id;                  /* -1 when inactive */
    int state, reason;
    gint64 started_at;
    guint64 start_ticks;

    VmProcess *vm;
    GArray *vcpu_tids;       /* pid_t per vCPU, from query-cpus-fast */
    gboolean job;
    GQueue waiters;          /* Deferred */
    StopIntent stop_intent;
    char *shutdown_reason;   /* of the last QMP SHUTDOWN event */
    gboolean shutdown_guest;
    GSource *kill_timer;
    GPtrArray *stop_calls;   /* RpcCall waiting for the process to end */
    RpcStream *console;
    gboolean has_balloon;
    char *incoming;          /* --incoming URI for the next start (restore) */
    char **incoming_extra;   /* more vireo-vmm arguments for it (migration TLS), or NULL */
    struct StartCtx *incoming_start;  /* a restore waiting for vireo-vmm to load */
    GSource *incoming_timer;
    DomainJob *djob;         /* save in progress (domain-job.c) */
    struct MigrateOut *mig_out;  /* outgoing migration (migrate-p2p.c) */
    gboolean postcopy_in;    /* resumed by an incoming post-copy: memory still arrives */
};

struct DomainDriver {
    RpcServer *srv;
    GMainContext *ctx;
    DaemonPaths *paths;
    char *vmm_path;
    char *tls_dir;           /* our client certificate for migration: rpc_tls_files_new() */
    unsigned caps;
    guint start_timeout_ms;
    guint destroy_timeout_ms;
    GPtrArray *domains;      /* Domain, owned references, in definition order */
    GHashTable *by_name;     /* borrowed */
    GHashTable *by_uuid;     /* uuid string -> Domain, borrowed */
    int next_id;
    guint jobs;              /* domains with a job, for is_busy */
    gboolean closing;        /* domain_driver_free(): leave every VM alone */
};

/* Helpers of domain-driver.c for the other files of the driver. */
Domain *domain_driver_ref(Domain *dom);
void domain_driver_unref(Domain *dom);
/* The domain a call names, or NULL after failing the call as libvirt does. */
Domain *domain_driver_lookup(DomainDriver *drv, RpcCall *call, const RemoteNonnullDomain *w);
gboolean domain_driver_is_active(const Domain *dom);
gboolean domain_driver_check_active(RpcCall *call, Domain *dom);
gboolean domain_driver_check_flags(RpcCall *call, guint flags, guint known, const char *fn);
void domain_driver_fail(RpcCall *call, const GError *error);
void domain_driver_emit(Domain *dom, int event, int detail);
void domain_driver_log(Domain *dom, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void domain_driver_set_state(Domain *dom, int state, int reason);
/* Writes the state file again (it records how far an outgoing migration got). */
void domain_driver_save_status(Domain *dom);
void domain_driver_job_begin(Domain *dom);
void domain_driver_job_end(Domain *dom);
/* TRUE when the call must wait: it is queued and runs again after the job. */
gboolean domain_driver_defer(Domain *dom, RpcCall *call, RpcHandlerFunc fn, gpointer args);
/* libvirt's identity checks against a definition (define, create, restore). */
gboolean domain_driver_check_identity(DomainDriver *drv, RpcCall *call, const DomainDef *def,
                                      Domain **found);
Domain *domain_driver_add(DomainDriver *drv, const DomainDef *def);
void domain_driver_start(Domain *dom, DomainDef *def, guint flags, RpcCall *call,
                         StartDoneFunc done);
void domain_driver_done_void(Domain *dom, RpcCall *call, const GError *error);

/* domain-save.c */
void domain_save_register(DomainDriver *drv, RpcServer *srv);
/* The managed save image of @dom (may not exist). */
char *domain_save_managed_path(DomainDriver *drv, const char *name);
gboolean domain_save_has_managed(DomainDriver *drv, const char *name);
/*
 * A start of a domain with a managed save image restores it instead
 * (FALSE: @call was failed).
 */
gboolean domain_save_prepare_managed_start(Domain *dom, RpcCall *call, DomainDef **def,
                                           guint *flags);
/* After a successful start from the managed save image. */
void domain_save_managed_started(Domain *dom);

/* domain-job.c */
typedef void (*DomainJobDoneFunc)(Domain *dom, const GError *error, gpointer opaque);
/*
 * A save runs as a migration of vireo-vmm into @uri: stop (if running),
 * migrate, wait for its MIGRATION event. @done runs once: NULL error when
 * the stream is complete (the VM is then in postmigrate), else the error
 * (cancelled by domjobabort, failed) after the VM was resumed if it ran.
 */
void domain_job_start_save(Domain *dom, const char *uri, DomainJobDoneFunc done,
                           gpointer opaque);
void domain_job_on_migration_event(Domain *dom, JsonValue *data);
/* vireo-vmm ended under a job: the job fails (its callback runs). */
void domain_job_vm_gone(Domain *dom);
void domain_job_register(DomainDriver *drv, RpcServer *srv);

/* migrate-p2p.c (docs/daemon.md, "Migration") */
enum { RUNNING_MIGRATED = 2, RUNNING_POSTCOPY = 10, RUNNING_POSTCOPY_FAILED = 11,
       PAUSED_MIGRATION = 2, PAUSED_POSTCOPY = 12, PAUSED_POSTCOPY_FAILED = 13,
       SHUTOFF_MIGRATED = 4, EV_STARTED_MIGRATED = 1, EV_RESUMED_MIGRATED = 1,
       EV_RESUMED_POSTCOPY = 3, EV_RESUMED_POSTCOPY_FAILED = 4, EV_SUSPENDED_POSTCOPY = 7,
       EV_SUSPENDED_POSTCOPY_FAILED = 8, EV_STOPPED_MIGRATED = 3 };
void migrate_p2p_register(DomainDriver *drv, RpcServer *srv);
/* An incoming vireo-vmm listens for the stream now: the prepare call can answer. */
void migrate_p2p_incoming_listening(Domain *dom);
/* vireo-vmm ended while dom->mig_out was set (called from on_vm_exited). */
void migrate_p2p_vm_gone(Domain *dom);
/*
 * vireo-vmm's MIGRATION event of a domain without a save job: the switch
 * to post-copy (source and destination) and the end of an incoming one.
 */
void migrate_p2p_migration_event(Domain *dom, JsonValue *data);
/* domjobabort: cancels dom->mig_out (FALSE: no outgoing migration). */
gboolean migrate_p2p_abort(Domain *dom);
/* dom->mig_out has switched to post-copy: it can no longer be cancelled. */
gboolean migrate_p2p_in_postcopy(Domain *dom);
/* virDomainSuspend during dom->mig_out's stream: pauses and answers @call (FALSE: not now). */
gboolean migrate_p2p_suspend(Domain *dom, RpcCall *call);
/* DOMAIN_MIGRATION_OUT_* of dom->mig_out, for the state file. */
int migrate_p2p_out_stage(Domain *dom);
/* domjobinfo of dom->mig_out: FALSE when there is none. */
typedef struct MigrateP2PProgress {
    guint64 elapsed_ms;
    JsonValue *query;           /* the last query-migrate (borrowed), NULL before the stream */
    gboolean completed;
} MigrateP2PProgress;
gboolean migrate_p2p_get_progress(Domain *dom, MigrateP2PProgress *p);

#endif
