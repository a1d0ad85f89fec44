/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Peer-to-peer live migration between two vireods (docs/daemon.md,
 * "Migration"): libvirt's migration protocol v3 with typed parameters.
 *
 * Source (PERFORM3_PARAMS with VIR_MIGRATE_PEER2PEER): connect to the
 * destination daemon over TCP, PREPARE3_PARAMS there (it starts vireo-vmm
 * with -S --incoming tcp:ADDR:PORT), QMP `migrate` here, poll query-migrate
 * until it ends, FINISH3_PARAMS there (it resumes the VM), then stop our
 * vireo-vmm: the "confirm" step is local. Blocking RPC calls to the
 * destination run in GTask worker threads; everything else in the loop
 * thread, so other clients are served meanwhile.
 *
 * Failure rule (docs/architecture.md): until the destination's finish has
 * answered, the source VM is ours: vireo-vmm resumes it itself when its
 * migration fails or is cancelled, we resume it when the finish fails after
 * a completed stream, and the destination gets FINISH3_PARAMS(cancelled=1)
 * so that it kills its vireo-vmm (which also exits by itself when its
 * stream breaks).
 *
 * Post-copy (VIR_MIGRATE_POSTCOPY, then MIGRATE_START_POST_COPY or
 * vireo-vmm's own switch): QMP migrate-start-postcopy; at the end of its
 * pass vireo-vmm stops the VM for good and sends the state ahead of the
 * rest of the RAM ("postcopy-active", seen in its MIGRATION event or the
 * poll). FINISH3 then goes to the destination at once (it resumes the VM,
 * whose missing pages are fetched on demand) while the poll goes on until
 * "completed"; the confirm waits for both. From the switch on, the source
 * is never resumed, whatever fails: the destination may have run. A
 * failure then leaves the source paused (post-copy failed) and is
 * reported; the VM is wherever it still runs.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "domain-driver-priv.h"
#include "vireo/atomic-file.h"
#include "vireo/daemon-paths.h"
#include "vireo/domain-status.h"
#include "vireo/rpc-client.h"
#include "vireo/rpc-error.h"
#include "vireo/rpc-protocol.h"
#include "vireo/rpc-remote.h"
#include "vireo/rpc-tcp.h"
#include "vireo/util.h"

/* virDomainMigrateFlags */
enum {
    MIG_LIVE = 1 << 0, MIG_PEER2PEER = 1 << 1, MIG_TUNNELLED = 1 << 2,
    MIG_PERSIST_DEST = 1 << 3, MIG_UNDEFINE_SOURCE = 1 << 4, MIG_PAUSED = 1 << 5,
    MIG_CHANGE_PROTECTION = 1 << 8, MIG_UNSAFE = 1 << 9, MIG_COMPRESSED = 1 << 11,
    MIG_ABORT_ON_ERROR = 1 << 12, MIG_AUTO_CONVERGE = 1 << 13, MIG_POSTCOPY = 1 << 15,
    MIG_TLS = 1 << 16, MIG_PARALLEL = 1 << 17, MIG_POSTCOPY_RESUME = 1 << 19,
};
#define MIG_KNOWN_FLAGS (MIG_LIVE | MIG_PEER2PEER | MIG_PERSIST_DEST | MIG_UNDEFINE_SOURCE | \
                         MIG_PAUSED | MIG_CHANGE_PROTECTION | MIG_UNSAFE | MIG_COMPRESSED | \
                         MIG_ABORT_ON_ERROR | MIG_AUTO_CONVERGE | MIG_POSTCOPY | MIG_TLS | \
                         MIG_PARALLEL | MIG_POSTCOPY_RESUME)

/* VIR_MIGRATE_PARALLEL: QEMU's multifd; libvirt's default and vireo-vmm's limit. */
#define MIG_PARALLEL_DEFAULT 2
#define MIG_PARALLEL_MAX 255

/*
 * VIR_MIGRATE_TLS: the stream itself goes over TLS, with QEMU's file
 * names in libvirt's migrate_tls_x509_cert_dir (ROOT/etc/pki/qemu): the
 * source's vireo-vmm is the client (client-cert.pem), the destination's
 * the server (server-cert.pem), and each checks the other's certificate
 * against ca-cert.pem, as libvirt's default migrate_tls_x509_verify=1.
 */
#define MIG_TLS_DIR "etc/pki/qemu"
#define MIG_TLS_OBJECT "vireo-migrate-tls"

/* libvirt's migration port range (qemu.conf migration_port_min/max). */
#define MIG_PORT_MIN 49152
#define MIG_PORT_MAX 49215
#define MIG_POLL_MS 50
#define MIG_CONNECT_TIMEOUT_MS 10000

/* virTypedParameterType */
enum { TP_INT = 1, TP_UINT = 2, TP_LLONG = 3, TP_ULLONG = 4, TP_DOUBLE = 5, TP_BOOLEAN = 6,
       TP_STRING = 7 };

/* The migration parameters we understand (VIR_MIGRATE_PARAM_*). */
typedef struct MigParams {
    const char *uri;            /* migrate_uri: where vireo-vmm sends the stream */
    const char *dname;          /* destination_name: must be the domain's name */
    const char *xml;            /* destination_xml */
    const char *listen;         /* listen_address: the destination's bind address */
    const char *compression;    /* compression: "zstd" */
    const char *tls_destination;/* tls.destination: the name in the destination's certificate */
    guint64 bandwidth;          /* bandwidth: MiB/s, 0 = vireo-vmm's default */
    int parallel;               /* parallel.connections, 0 = not given */
} MigParams;

static gboolean params_parse(RpcCall *call, const RemoteTypedParam *p, guint n, MigParams *out)
{
    memset(out, 0, sizeof(*out));
    for (guint i = 0; i < n; i++) {
        const char *f = p[i].field;
        const RemoteTypedParamValue *v = &p[i].value;
        const char **s = !strcmp(f, "migrate_uri") ? &out->uri :
                         !strcmp(f, "destination_name") ? &out->dname :
                         !strcmp(f, "destination_xml") ? &out->xml :
                         !strcmp(f, "listen_address") ? &out->listen :
                         !strcmp(f, "compression") ? &out->compression :
                         !strcmp(f, "tls.destination") ? &out->tls_destination : NULL;

        if (s && v->type == TP_STRING) {
            *s = v->u.s;
        } else if (!strcmp(f, "bandwidth") && (v->type == TP_ULLONG || v->type == TP_LLONG)) {
            out->bandwidth = v->type == TP_ULLONG ? v->u.ul : (guint64)MAX(v->u.l, 0);
        } else if (!strcmp(f, "parallel.connections") && v->type == TP_INT) {
            if (v->u.i < 1 || v->u.i > MIG_PARALLEL_MAX) {
                rpc_call_fail(call, RPC_ERR_INVALID_ARG, "parallel.connections must be 1 to "
                              "%d, not %d", MIG_PARALLEL_MAX, v->u.i);
                return FALSE;
            }
            out->parallel = v->u.i;
        } else if (!strcmp(f, "persistent_xml") && v->type == TP_STRING) {
            /* Same as the live XML for us: nothing to change per host. */
        } else {
            rpc_call_fail(call, RPC_ERR_INVALID_ARG, "unsupported migration parameter '%s'", f);
            return FALSE;
        }
    }
    if (out->compression && strcmp(out->compression, "zstd") != 0) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG, "unsupported compression method '%s'",
                      out->compression);
        return FALSE;
    }
    return TRUE;
}

/* libvirt's begin phase: post-copy needs the VM running on both sides. */
static gboolean check_postcopy_flags(RpcCall *call, guint flags)
{
    if ((flags & MIG_POSTCOPY) && (!(flags & MIG_LIVE) || (flags & MIG_PAUSED))) {
        rpc_call_fail(call, RPC_ERR_OPERATION_UNSUPPORTED, "%s",
                      "post-copy migration is not supported with non-live or paused migration");
        return FALSE;
    }
    /* QEMU 7.2's rule, which vireo-vmm follows: multifd has no post-copy. */
    if ((flags & MIG_POSTCOPY) && (flags & MIG_PARALLEL)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_UNSUPPORTED, "%s",
                      "post-copy is not supported with parallel migration");
        return FALSE;
    }
    if ((flags & MIG_POSTCOPY_RESUME) && !(flags & MIG_POSTCOPY)) {
        rpc_call_fail(call, RPC_ERR_ARGUMENT_UNSUPPORTED, "%s",
                      "resuming failed post-copy migration requires post-copy to be enabled");
        return FALSE;
    }
    return TRUE;
}

static char *tls_dir(DomainDriver *drv)
{
    return g_build_filename(*drv->paths->root ? drv->paths->root : "/", MIG_TLS_DIR, NULL);
}

static RemoteTypedParam param_string(const char *field, const char *value)
{
    return (RemoteTypedParam) { .field = (char *)field,
                                .value = { .type = TP_STRING, .u.s = (char *)value } };
}

static void dom_to_wire(Domain *dom, RemoteNonnullDomain *w)
{
    w->name = dom->name;
    memcpy(w->uuid, dom->uuid, 16);
    w->id = dom->id;
}

/* Module state: one domain driver per daemon. */
typedef struct MigrateP2P {
    DomainDriver *drv;
    GHashTable *incoming;       /* domain name -> MigrateIn */
    GHashTable *ports;          /* port (GUINT_TO_POINTER) in use by an incoming VM */
} MigrateP2P;

static MigrateP2P *p2p;

/* ================================================================ source */

typedef enum {
    OUT_PREPARE,        /* connecting to the destination, PREPARE3 */
    OUT_MIGRATE,        /* vireo-vmm sends the stream */
    OUT_POSTCOPY,       /* switched: the rest of RAM follows; FINISH3 meanwhile */
    OUT_FINISH,         /* FINISH3 on the destination */
    OUT_CONFIRM,        /* our vireo-vmm is being stopped */
    OUT_CANCEL,         /* FINISH3(cancelled) after a failure */
} OutPhase;

struct MigrateOut {
    Domain *dom;                /* a reference */
    RpcCall *call;
    guint flags;
    OutPhase phase;
    char *dest_host;
    RpcRemoteUri *dest_remote;  /* the tcp or tls URI of the destination daemon */
    RpcTlsFiles *tls_files;     /* our client certificate, for a tls URI */
    char *dest_uri;             /* "qemu:///system", what the destination opens */
    char *migrate_uri;          /* migrate_uri parameter, or NULL */
    char *compression;
    guint64 bandwidth;
    char *tls_hostname;         /* VIR_MIGRATE_TLS: the name the destination's certificate carries */
    int parallel;               /* VIR_MIGRATE_PARALLEL: connections, else 0 */
    gboolean tls_object;        /* our vireo-vmm holds MIG_TLS_OBJECT: remove it at the end */
    char *xml;                  /* live definition for the destination */
    RpcClient *dest;            /* used by one thread at a time */
    char *uri_out;              /* from PREPARE3 */
    gboolean aborted;           /* domjobabort */
    gboolean cancel_sent;
    gboolean vm_gone;           /* vireo-vmm ended: the driver ended our job */
    gboolean stopped_by_us;     /* non-live migration: we paused it */
    GSource *timer;
    gint64 start_us;
    GError *error;              /* why it failed */
    /* the last query-migrate */
    JsonValue *last_query;
    guint64 downtime_ms, total_ms;
    gint64 iteration;           /* the last MIGRATION_ITERATION sent */
    gboolean completed;
    JsonValue *saved_params;    /* vireo-vmm's own, put back if the VM stays here */
    /* post-copy */
    gboolean resume;            /* VIR_MIGRATE_POSTCOPY_RESUME: a recovery, post-copy throughout */
    gboolean postcopy_wanted;   /* asked for before the stream started */
    gboolean postcopy_asked;    /* vireo-vmm accepted migrate-start-postcopy */
    gboolean settle_polled;     /* a failure after the ask: polled once more */
    gboolean postcopy;          /* switched: never resume the source from here on */
    guint64 switch_ms, resume_ms;   /* since the start: switch seen, destination resumed */
    gboolean finish_pending;    /* FINISH3 runs in its thread */
    gboolean finish_sent;       /* the destination may run the VM from now on */
    gboolean finished;          /* ... and the destination resumed the VM */
    gboolean stream_ended;      /* the poll has stopped: completed or failed */
};
typedef struct MigrateOut MigrateOut;

static void out_fail(MigrateOut *mo, GError *error);
static void out_poll(MigrateOut *mo);

/* Each poll schedules the next one. */
static gboolean out_poll_timer(gpointer data)
{
    MigrateOut *mo = data;

    g_clear_pointer(&mo->timer, g_source_unref);
    out_poll(mo);
    return G_SOURCE_REMOVE;
}

static void out_free(MigrateOut *mo)
{
    if (mo->timer) {
        g_source_destroy(mo->timer);
        g_source_unref(mo->timer);
    }
    if (mo->dest)
        rpc_client_free(mo->dest);
    domain_driver_unref(mo->dom);
    g_free(mo->dest_host);
    rpc_remote_uri_free(mo->dest_remote);
    rpc_tls_files_free(mo->tls_files);
    g_free(mo->dest_uri);
    g_free(mo->migrate_uri);
    g_free(mo->compression);
    g_free(mo->tls_hostname);
    g_free(mo->xml);
    g_free(mo->uri_out);
    g_clear_error(&mo->error);
    json_free(mo->saved_params);
    json_free(mo->last_query);
    g_free(mo);
}

static void on_restore_reply(QmpClient *c, JsonValue *ret, const GError *error, gpointer data)
{
    if (error)
        g_warning("cannot restore the migration parameters: %s", error->message);
}

static JsonValue *multifd_capability(gboolean on)
{
    JsonValue *args = json_new_object(), *caps = json_new_array(), *cap = json_new_object();

    json_object_set_string(cap, "capability", "multifd");
    json_object_set_bool(cap, "state", on);
    json_array_append(caps, cap);
    json_object_set(args, "capabilities", caps);
    return args;
}

static JsonValue *tls_object_id_args(void)
{
    JsonValue *args = json_new_object();

    json_object_set_string(args, "id", MIG_TLS_OBJECT);
    return args;
}

/* Ends the migration: the job (unless the driver ended it with the VM), the call. */
/* Recorded before FINISH3 goes out: a restarted daemon must not resume the VM then. */
static void out_finish_sent(MigrateOut *mo)
{
    mo->finish_sent = TRUE;
    domain_driver_save_status(mo->dom);
}

int migrate_p2p_out_stage(Domain *dom)
{
    if (!dom->mig_out || dom->mig_out->phase < OUT_MIGRATE)
        return DOMAIN_MIGRATION_OUT_NONE;
    return dom->mig_out->finish_sent ? DOMAIN_MIGRATION_OUT_FINISHING
                                     : DOMAIN_MIGRATION_OUT_PERFORMING;
}

static void out_end(MigrateOut *mo)
{
    Domain *dom = mo->dom;

    if (dom->mig_out == mo) {
        dom->mig_out = NULL;
        if (!mo->vm_gone)
            domain_driver_save_status(dom);
    }
    /* --bandwidth and --compressed are for this migration only (migrate-setspeed stays). */
    if (mo->saved_params && !mo->vm_gone && dom->vm)
        qmp_client_execute(vm_process_get_qmp(dom->vm), "migrate-set-parameters",
                           g_steal_pointer(&mo->saved_params), 10000, on_restore_reply, NULL);
    if (mo->parallel && !mo->vm_gone && dom->vm)
        qmp_client_execute(vm_process_get_qmp(dom->vm), "migrate-set-capabilities",
                           multifd_capability(FALSE), 10000, on_restore_reply, NULL);
    /* After the parameters: tls-creds no longer names it. */
    if (mo->tls_object && !mo->vm_gone && dom->vm)
        qmp_client_execute(vm_process_get_qmp(dom->vm), "object-del", tls_object_id_args(),
                           10000, on_restore_reply, NULL);
    if (mo->error) {
        domain_driver_log(dom, "migration failed: %s", mo->error->message);
        /* Our own RPC_REMOTE_ERRORs carry libvirt's detail; the template is added here. */
        if (mo->error->domain == RPC_REMOTE_ERROR)
            rpc_call_fail(mo->call, mo->error->code, "%s", mo->error->message);
        else
            rpc_call_fail(mo->call, RPC_ERR_OPERATION_FAILED, "migration failed: %s",
                          mo->error->message);
    } else {
        RemoteDomainMigratePerform3ParamsRet ret = { 0 };

        rpc_call_reply(mo->call, &ret);
    }
    if (!mo->vm_gone)
        domain_driver_job_end(dom);
    out_free(mo);
}

/* ---- worker threads: the blocking calls to the destination daemon ---- */

static gboolean th_prepare(MigrateOut *mo, GError **error)
{
    RemoteTypedParam params[2];
    RemoteDomainMigratePrepare3ParamsArgs args = { .params = params };
    g_auto(RemoteDomainMigratePrepare3ParamsRet) ret = { 0 };

    mo->dest = rpc_remote_connect(mo->dest_remote, mo->tls_files, MIG_CONNECT_TIMEOUT_MS, error);
    if (!mo->dest || !rpc_client_open(mo->dest, mo->dest_uri, 0, error)) {
        g_prefix_error(error, "cannot open %s on %s: ", mo->dest_uri, mo->dest_host);
        return FALSE;
    }
    params[args.n_params++] = param_string("destination_xml", mo->xml);
    params[args.n_params++] = param_string("destination_name", mo->dom->name);
    args.flags = mo->flags;
    if (!rpc_client_call(mo->dest, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_MIGRATE_PREPARE3_PARAMS,
                         &args, &ret, error))
        return FALSE;
    if (!ret.uri_out) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "the destination gave no migration URI");
        return FALSE;
    }
    mo->uri_out = g_strdup(ret.uri_out);
    return TRUE;
}

static gboolean th_finish(MigrateOut *mo, GError **error)
{
    RemoteTypedParam params[1] = { param_string("destination_name", mo->dom->name) };
    RemoteDomainMigrateFinish3ParamsArgs args = {
        .n_params = 1, .params = params, .flags = mo->flags,
        .cancelled = mo->phase == OUT_CANCEL,
    };
    g_auto(RemoteDomainMigrateFinish3ParamsRet) ret = { 0 };

    if (!mo->dest) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "no destination connection");
        return FALSE;
    }
    return rpc_client_call(mo->dest, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_MIGRATE_FINISH3_PARAMS,
                           &args, &ret, error);
}

/*
 * One blocking step in a thread of its own; @done runs in the loop thread
 * with its error (NULL: success). The MigrateOut is not touched by the
 * loop thread meanwhile except for flags it only reads there.
 */
typedef gboolean (*OutThreadFunc)(MigrateOut *mo, GError **error);
typedef void (*OutDoneFunc)(MigrateOut *mo, GError *error);

typedef struct OutWork {
    MigrateOut *mo;
    OutThreadFunc fn;
    OutDoneFunc done;
    GError *error;
} OutWork;

static gboolean work_done(gpointer data)
{
    OutWork *w = data;

    w->done(w->mo, w->error);
    g_free(w);
    return G_SOURCE_REMOVE;
}

static gpointer work_thread(gpointer data)
{
    OutWork *w = data;

    if (!w->fn(w->mo, &w->error) && !w->error)
        w->error = g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED, "failed");
    g_main_context_invoke(w->mo->dom->drv->ctx, work_done, w);
    return NULL;
}

static void run_in_thread(MigrateOut *mo, OutThreadFunc fn, OutDoneFunc done)
{
    OutWork *w = g_new0(OutWork, 1);

    w->mo = mo;
    w->fn = fn;
    w->done = done;
    g_thread_unref(g_thread_new("vireod-migrate", work_thread, w));
}

/* ---- the end: success (confirm) or failure (cancel on the destination) ---- */

static void on_cancelled_dest(MigrateOut *mo, GError *error)
{
    /* The destination may be gone already; its vireo-vmm exits with the stream anyway. */
    if (error)
        g_debug("migration cancel on the destination: %s", error->message);
    g_clear_error(&error);
    out_end(mo);
}

static void out_resume_reply(QmpClient *c, JsonValue *ret, const GError *error, gpointer data)
{
    MigrateOut *mo = data;

    if (error)
        domain_driver_log(mo->dom, "cannot resume after the failed migration: %s",
                          error->message);
    mo->phase = OUT_CANCEL;
    run_in_thread(mo, th_finish, on_cancelled_dest);
}

/* The VM stays here. vireo-vmm resumed it unless the stream was complete or we paused it. */
static void out_fail(MigrateOut *mo, GError *error)
{
    QmpClient *qmp = mo->dom->vm ? vm_process_get_qmp(mo->dom->vm) : NULL;

    if (!mo->error)
        mo->error = error;
    else
        g_error_free(error);
    if (mo->timer) {
        g_source_destroy(mo->timer);
        g_clear_pointer(&mo->timer, g_source_unref);
    }
    if (qmp && !mo->vm_gone && (mo->completed || mo->stopped_by_us) &&
        mo->dom->state == RPC_DOMAIN_RUNNING) {
        mo->phase = OUT_CANCEL;
        qmp_client_execute(qmp, "cont", NULL, 10000, out_resume_reply, mo);
        return;
    }
    if (!mo->dest) {
        out_end(mo);
        return;
    }
    mo->phase = OUT_CANCEL;
    run_in_thread(mo, th_finish, on_cancelled_dest);
}

static gboolean out_confirmed(gpointer data)
{
    MigrateOut *mo = data;
    Domain *dom = mo->dom;

    /* on_vm_exited has run: shut off (migrated), STOPPED (migrated), job ended. */
    if ((mo->flags & MIG_UNDEFINE_SOURCE) && dom->def && !dom->removed && !domain_driver_is_active(dom)) {
        g_autofree char *path = daemon_paths_definition(dom->drv->paths, dom->name);

        if (unlink(path) < 0 && errno != ENOENT)
            domain_driver_log(dom, "cannot remove %s: %s", path, g_strerror(errno));
        g_clear_pointer(&dom->def, domain_def_free);
        domain_driver_emit(dom, RPC_DOMAIN_EVENT_UNDEFINED, 0);
        g_hash_table_remove(dom->drv->by_name, dom->name);
        g_hash_table_remove(dom->drv->by_uuid, dom->uuidstr);
        dom->removed = TRUE;
        g_ptr_array_remove(dom->drv->domains, dom);
    }
    out_end(mo);
    return G_SOURCE_REMOVE;
}

/* The stream is complete and the destination has resumed the VM: stop ours. */
static void out_confirm(MigrateOut *mo)
{
    Domain *dom = mo->dom;
    g_autofree char *how = mo->resume ? g_strdup(", post-copy recovered") : mo->postcopy ?
        g_strdup_printf(", post-copy from %" G_GUINT64_FORMAT " ms, resumed on the destination %"
                        G_GUINT64_FORMAT " ms after the switch", mo->switch_ms,
                        mo->resume_ms - mo->switch_ms) : NULL;

    if (mo->vm_gone) {
        /* Nothing to stop: our side ended on its own after the stream was complete. */
        out_confirmed(mo);
        return;
    }
    mo->phase = OUT_CONFIRM;
    if (mo->parallel && !how) {
        JsonValue *ram = mo->last_query ? json_object_get_object(mo->last_query, "ram") : NULL;
        int64_t mf = 0;

        if (ram)
            json_object_get_int(ram, "multifd-bytes", &mf);
        how = g_strdup_printf(", %d parallel connections carried %" G_GINT64_FORMAT " MiB",
                              mo->parallel, mf >> 20);
    }
    domain_driver_log(dom, "migrated to %s in %" G_GUINT64_FORMAT " ms (downtime %"
                      G_GUINT64_FORMAT " ms)%s; stopping vireo-vmm", mo->dest_host, mo->total_ms,
                      mo->downtime_ms, how ? how : "");
    dom->stop_intent = STOP_MIGRATED;
    /* The stream is complete and confirmed: nothing of the process is needed. */
    vm_process_kill(dom->vm, SIGKILL, NULL);
    /* migrate_p2p_vm_gone() continues. */
}

static void on_finished_dest(MigrateOut *mo, GError *err)
{
    if (err) {
        g_prefix_error(&err, "finish on the destination: ");
        out_fail(mo, err);
        return;
    }
    out_confirm(mo);
}

/* ---- post-copy: the finish and the rest of the stream run side by side ---- */

static void postcopy_set_error(MigrateOut *mo, GError *err)
{
    if (!mo->error)
        mo->error = err;
    else
        g_error_free(err);
}

/* Both the finish and the poll have ended. */
static void postcopy_end(MigrateOut *mo)
{
    Domain *dom = mo->dom;
    g_autoptr(GError) why = NULL;
    const char *where;

    if (mo->completed && mo->finished && !mo->error) {
        out_confirm(mo);
        return;
    }
    where = mo->resume ? "the recovery failed; it runs on the destination without the rest "
                         "of its memory"
          : mo->finished ? "it ran on the destination without the rest of its memory"
          : mo->completed ? "the destination has all of it but did not resume it"
          : "the destination did not resume it";
    /* Whatever the cause, the answer is ours: the state of both sides matters most. */
    why = g_steal_pointer(&mo->error);
    mo->error = g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED,
                            "post-copy, the source stays paused (%s): %s", where,
                            why ? why->message : "failed");
    if (!mo->vm_gone && mo->dom->vm) {
        domain_driver_set_state(dom, RPC_DOMAIN_PAUSED, PAUSED_POSTCOPY_FAILED);
        domain_driver_emit(dom, RPC_DOMAIN_EVENT_SUSPENDED, EV_SUSPENDED_POSTCOPY_FAILED);
    }
    out_end(mo);
}

static void on_postcopy_finished(MigrateOut *mo, GError *err)
{
    mo->finish_pending = FALSE;
    if (err) {
        g_prefix_error(&err, "finish on the destination: ");
        domain_driver_log(mo->dom, "post-copy: %s", err->message);
        postcopy_set_error(mo, err);
    } else {
        mo->finished = TRUE;
        mo->resume_ms = (g_get_monotonic_time() - mo->start_us) / 1000;
        if (!mo->resume)
            domain_driver_log(mo->dom, "post-copy: the domain runs on %s; its memory follows",
                              mo->dest_host);
    }
    if (mo->stream_ended)
        postcopy_end(mo);
}

/* The poll has stopped after the switch; @err: why the stream failed. */
static void postcopy_stream_end(MigrateOut *mo, GError *err)
{
    mo->stream_ended = TRUE;
    if (err)
        postcopy_set_error(mo, err);
    if (!mo->finish_pending)
        postcopy_end(mo);
}

/*
 * vireo-vmm has stopped the VM for good and sent its state ahead of the
 * rest of the RAM: the destination resumes it now, and the source is
 * never resumed again.
 */
static void out_postcopy_switch(MigrateOut *mo)
{
    Domain *dom = mo->dom;

    if (mo->postcopy || mo->phase != OUT_MIGRATE)
        return;
    mo->postcopy = TRUE;
    mo->phase = OUT_POSTCOPY;
    mo->switch_ms = (g_get_monotonic_time() - mo->start_us) / 1000;
    domain_driver_log(dom, "switched to post-copy after %" G_GUINT64_FORMAT " ms; resuming on %s",
                      mo->switch_ms, mo->dest_host);
    domain_driver_set_state(dom, RPC_DOMAIN_PAUSED, PAUSED_POSTCOPY);
    domain_driver_emit(dom, RPC_DOMAIN_EVENT_SUSPENDED, EV_SUSPENDED_POSTCOPY);
    mo->finish_pending = TRUE;
    out_finish_sent(mo);
    run_in_thread(mo, th_finish, on_postcopy_finished);
}

/* ---- the stream ---- */

static void poll_later(MigrateOut *mo)
{
    mo->timer = g_timeout_source_new(MIG_POLL_MS);
    g_source_set_callback(mo->timer, out_poll_timer, mo, NULL);
    g_source_attach(mo->timer, mo->dom->drv->ctx);
}

static void on_query_migrate(QmpClient *c, JsonValue *ret, const GError *error, gpointer data)
{
    MigrateOut *mo = data;
    const char *status = ret ? json_object_get_string(ret, "status") : NULL;
    gboolean failed = status && (!strcmp(status, "failed") || !strcmp(status, "cancelled"));
    const char *desc = ret ? json_object_get_string(ret, "error-desc") : NULL;
    JsonValue *ram;
    int64_t v;

    if (error) {
        /* Mostly the process ended (killed, crashed): say that first. */
        GError *err = g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED,
                                  "lost the source vireo-vmm during the migration "
                                  "(query-migrate: %s)", error->message);

        if (mo->postcopy)
            postcopy_stream_end(mo, err);
        else
            out_fail(mo, err);
        return;
    }
    json_free(mo->last_query);
    mo->last_query = json_copy(ret);
    ram = json_object_get_object(ret, "ram");
    if (ram && json_object_get_int(ram, "dirty-sync-count", &v) && v + 1 > mo->iteration) {
        RemoteNonnullDomain w;

        /* memory_iteration's count (domain-job.c): the pass under way, 1 for the first. */
        mo->iteration = v + 1;
        dom_to_wire(mo->dom, &w);
        rpc_server_emit_domain_migration_iteration(mo->dom->drv->srv, &w, (int)mo->iteration);
    }
    if (json_object_get_int(ret, "total-time", &v))
        mo->total_ms = v;
    if (json_object_get_int(ret, "downtime", &v))
        mo->downtime_ms = v;
    /*
     * Once vireo-vmm took migrate-start-postcopy, a failure may come after
     * its switch, whose MIGRATION event can be a step behind this answer:
     * ask once more before the pre-copy rules (resume here) apply.
     */
    if (failed && mo->postcopy_asked && !mo->postcopy && !mo->settle_polled) {
        mo->settle_polled = TRUE;
        poll_later(mo);
        return;
    }
    /* Once asked, vireo-vmm always ends through post-copy. */
    if (status && (!strcmp(status, "postcopy-active") ||
                   (!strcmp(status, "completed") && mo->postcopy_asked)))
        out_postcopy_switch(mo);
    if (mo->postcopy) {
        if (status && !strcmp(status, "completed")) {
            mo->completed = TRUE;
            /* A recovery: the destination runs the VM already; its finish ends the job. */
            if (mo->resume && !mo->finish_pending && !mo->finished) {
                mo->finish_pending = TRUE;
                run_in_thread(mo, th_finish, on_postcopy_finished);
            }
            postcopy_stream_end(mo, NULL);
        } else if (mo->resume && status && !strcmp(status, "postcopy-paused") && !desc) {
            /* vireo-vmm has not taken up the resume yet; a failed attempt says why. */
            poll_later(mo);
        } else if (failed) {
            postcopy_stream_end(mo, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED, "%s",
                                                desc ? desc : status));
        } else if (status && !strcmp(status, "postcopy-paused")) {
            /*
             * The link broke; vireo-vmm keeps the RAM and waits for a
             * recovery (QMP migrate resume=true), which we do not drive yet.
             */
            postcopy_stream_end(mo, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED, "%s%s%s",
                                                "the link to the destination broke (vireo-vmm "
                                                "waits in postcopy-paused)", desc ? ": " : "",
                                                desc ? desc : ""));
        } else {
            poll_later(mo);
        }
        return;
    }
    if (status && !strcmp(status, "completed")) {
        mo->completed = TRUE;
        mo->phase = OUT_FINISH;
        out_finish_sent(mo);
        run_in_thread(mo, th_finish, on_finished_dest);
        return;
    }
    if (failed) {
        if (mo->aborted)
            out_fail(mo, g_error_new(RPC_REMOTE_ERROR, RPC_ERR_OPERATION_ABORTED,
                                     "migration out job: canceled by client"));
        else
            out_fail(mo, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED, "%s",
                                     desc ? desc : mo->cancel_sent ?
                                     "the destination daemon went away" : status));
        return;
    }
    poll_later(mo);
}

static void on_cancel_reply(QmpClient *c, JsonValue *ret, const GError *error, gpointer data)
{
    if (error)
        g_debug("migrate_cancel: %s", error->message);
}

static void out_cancel_stream(MigrateOut *mo)
{
    if (mo->cancel_sent || mo->vm_gone || !mo->dom->vm)
        return;
    mo->cancel_sent = TRUE;
    qmp_client_execute(vm_process_get_qmp(mo->dom->vm), "migrate_cancel", NULL, 10000,
                       on_cancel_reply, mo);
}

static void out_poll(MigrateOut *mo)
{
    if (mo->vm_gone || !mo->dom->vm) {
        GError *err = g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED,
                                  "vireo-vmm ended during the migration");

        if (mo->postcopy)
            postcopy_stream_end(mo, err);
        else
            out_fail(mo, err);
        return;
    }
    /*
     * A destination daemon that went away cannot finish: stop sending
     * (libvirt does too). Not after the switch: the destination's
     * vireo-vmm may run the VM, and needs the rest of its memory.
     */
    if (!mo->postcopy && (mo->aborted || (mo->dest && !rpc_client_is_open(mo->dest))))
        out_cancel_stream(mo);
    qmp_client_execute(vm_process_get_qmp(mo->dom->vm), "query-migrate", NULL, 10000,
                       on_query_migrate, mo);
}

static void ask_postcopy(Domain *dom, RpcCall *call);

static void on_migrate_reply(QmpClient *c, JsonValue *ret, const GError *error, gpointer data)
{
    MigrateOut *mo = data;

    if (error) {
        GError *err = g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED, "migrate: %s",
                                  error->message);

        /* A recovery refused: the source stays paused, never resumed. */
        if (mo->postcopy) {
            postcopy_stream_end(mo, err);
        } else {
            out_fail(mo, err);
        }
        return;
    }
    /* MIGRATE_START_POST_COPY came before the stream: its turn now. */
    if (mo->postcopy_wanted)
        ask_postcopy(mo->dom, NULL);
    out_poll(mo);
}

static char *vmm_target_uri(MigrateOut *mo)
{
    const char *port;

    if (mo->migrate_uri)
        return g_strdup(mo->migrate_uri);
    /*
     * The destination names itself by host name (libvirt does the same),
     * which need not resolve here: use the address we reached its daemon
     * at, with the port it chose.
     */
    port = strrchr(mo->uri_out, ':');
    if (!port)
        return NULL;
    return strchr(mo->dest_host, ':') ? g_strdup_printf("tcp:[%s]%s", mo->dest_host, port)
                                      : g_strdup_printf("tcp:%s%s", mo->dest_host, port);
}

static void start_stream(MigrateOut *mo)
{
    g_autofree char *uri = vmm_target_uri(mo);
    JsonValue *args = json_new_object();

    if (!uri) {
        json_free(args);
        out_fail(mo, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED,
                                 "bad migration URI '%s' from the destination", mo->uri_out));
        return;
    }
    json_object_set_string(args, "uri", uri);
    if (mo->resume) {
        /* The same migration on a new link: post-copy from the first byte. */
        domain_driver_log(mo->dom, "recovering the post-copy migration to %s (%s)",
                          mo->dest_host, uri);
        json_object_set_bool(args, "resume", TRUE);
        mo->phase = OUT_POSTCOPY;
        domain_driver_set_state(mo->dom, RPC_DOMAIN_PAUSED, PAUSED_POSTCOPY);
        domain_driver_emit(mo->dom, RPC_DOMAIN_EVENT_SUSPENDED, EV_SUSPENDED_POSTCOPY);
        qmp_client_execute(vm_process_get_qmp(mo->dom->vm), "migrate", args, 10000,
                           on_migrate_reply, mo);
        return;
    }
    domain_driver_log(mo->dom, "migrating to %s (%s)", mo->dest_host, uri);
    mo->phase = OUT_MIGRATE;
    /* A daemon restarted from here on finds the VM still ours (domain-status.h). */
    domain_driver_save_status(mo->dom);
    qmp_client_execute(vm_process_get_qmp(mo->dom->vm), "migrate", args, 10000,
                       on_migrate_reply, mo);
}

static void on_stop_reply(QmpClient *c, JsonValue *ret, const GError *error, gpointer data)
{
    MigrateOut *mo = data;

    if (error) {
        out_fail(mo, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED, "stop: %s", error->message));
        return;
    }
    mo->stopped_by_us = TRUE;
    start_stream(mo);
}

static void on_caps_reply(QmpClient *c, JsonValue *ret, const GError *error, gpointer data)
{
    MigrateOut *mo = data;

    if (error) {
        out_fail(mo, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED, "migrate-set-capabilities: %s",
                                 error->message));
        return;
    }
    /* Without VIR_MIGRATE_LIVE, libvirt pauses the VM for the whole migration. */
    if (!(mo->flags & MIG_LIVE) && mo->dom->state == RPC_DOMAIN_RUNNING)
        qmp_client_execute(c, "stop", NULL, 10000, on_stop_reply, mo);
    else
        start_stream(mo);
}

static void on_params_reply(QmpClient *c, JsonValue *ret, const GError *error, gpointer data)
{
    MigrateOut *mo = data;

    if (error) {
        out_fail(mo, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED, "migrate-set-parameters: %s",
                                 error->message));
        return;
    }
    if (mo->parallel) {
        qmp_client_execute(c, "migrate-set-capabilities", multifd_capability(TRUE), 10000,
                           on_caps_reply, mo);
        return;
    }
    on_caps_reply(c, NULL, NULL, mo);
}

static void on_query_params(QmpClient *c, JsonValue *ret, const GError *error, gpointer data)
{
    MigrateOut *mo = data;
    JsonValue *args;
    int64_t bw, channels;
    const char *comp;

    if (error) {
        out_fail(mo, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED, "query-migrate-parameters: %s",
                                 error->message));
        return;
    }
    if (!mo->bandwidth && !mo->compression && !mo->tls_object && !mo->parallel) {
        on_params_reply(c, NULL, NULL, mo);
        return;
    }
    mo->saved_params = json_new_object();
    if (json_object_get_int(ret, "max-bandwidth", &bw))
        json_object_set_int(mo->saved_params, "max-bandwidth", bw);
    comp = json_object_get_string(ret, "multifd-compression");
    json_object_set_string(mo->saved_params, "multifd-compression", comp ? comp : "none");
    if (json_object_get_int(ret, "multifd-channels", &channels))
        json_object_set_int(mo->saved_params, "multifd-channels", channels);
    args = json_new_object();
    if (mo->parallel)
        json_object_set_int(args, "multifd-channels", mo->parallel);
    if (mo->bandwidth)
        json_object_set_int(args, "max-bandwidth", (int64_t)MIN(mo->bandwidth, G_MAXINT64 >> 20)
                                                   << 20);
    if (mo->compression)
        json_object_set_string(args, "multifd-compression", "zstd");
    if (mo->tls_object) {
        /* "" turns TLS off again for a later migration without the flag. */
        json_object_set_string(mo->saved_params, "tls-creds", "");
        json_object_set_string(mo->saved_params, "tls-hostname", "");
        json_object_set_string(args, "tls-creds", MIG_TLS_OBJECT);
        json_object_set_string(args, "tls-hostname", mo->tls_hostname);
    }
    qmp_client_execute(c, "migrate-set-parameters", args, 10000, on_params_reply, mo);
}

static void on_prepared(MigrateOut *mo, GError *err)
{
    if (err) {
        out_fail(mo, err);
        return;
    }
    if (mo->vm_gone || !mo->dom->vm) {
        out_fail(mo, g_error_new(RPC_REMOTE_ERROR, RPC_ERR_OPERATION_INVALID,
                                 "domain is not running"));
        return;
    }
    if (mo->aborted) {
        out_fail(mo, g_error_new(RPC_REMOTE_ERROR, RPC_ERR_OPERATION_ABORTED,
                                 "migration out job: canceled by client"));
        return;
    }
    if (mo->resume) {
        start_stream(mo);
        return;
    }
    qmp_client_execute(vm_process_get_qmp(mo->dom->vm), "query-migrate-parameters", NULL,
                       10000, on_query_params, mo);
}

static void on_tls_object_added(QmpClient *c, JsonValue *ret, const GError *error,
                                gpointer data)
{
    MigrateOut *mo = data;

    if (error) {
        out_fail(mo, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED,
                                 "TLS for the migration stream: %s", error->message));
        return;
    }
    mo->tls_object = TRUE;
    run_in_thread(mo, th_prepare, on_prepared);
}

static void on_stale_object_del(QmpClient *c, JsonValue *ret, const GError *error,
                                gpointer data)
{
    /* Usually "not found": a migration before this one cleaned up after itself. */
}

/*
 * Our client certificate, loaded and checked by vireo-vmm before the
 * destination is asked for anything: a missing or expired file fails
 * here, naming it.
 */
static void add_tls_object(MigrateOut *mo)
{
    QmpClient *qmp = vm_process_get_qmp(mo->dom->vm);
    g_autofree char *dir = tls_dir(mo->dom->drv);
    JsonValue *args = json_new_object();

    json_object_set_string(args, "qom-type", "tls-creds-x509");
    json_object_set_string(args, "id", MIG_TLS_OBJECT);
    json_object_set_string(args, "dir", dir);
    json_object_set_string(args, "endpoint", "client");
    json_object_set_bool(args, "verify-peer", TRUE);
    /* A daemon killed mid-migration may have left one. */
    qmp_client_execute(qmp, "object-del", tls_object_id_args(), 10000, on_stale_object_del,
                       NULL);
    qmp_client_execute(qmp, "object-add", args, 10000, on_tls_object_added, mo);
}

static void h_perform(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainMigratePerform3ParamsArgs *a = args;
    DomainDriver *drv = opaque;
    Domain *dom = domain_driver_lookup(drv, call, &a->dom);
    g_autoptr(RpcRemoteUri) remote = NULL;
    g_autoptr(GError) err = NULL;
    MigParams mp;
    MigrateOut *mo;

    if (!dom || domain_driver_defer(dom, call, h_perform, args))
        return;
    if (!domain_driver_check_flags(call, a->flags, MIG_KNOWN_FLAGS, "vireoDomainMigratePerform3Params") ||
        !params_parse(call, a->params, a->n_params, &mp) || !domain_driver_check_active(call, dom))
        return;
    if (!(a->flags & MIG_PEER2PEER)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_UNSUPPORTED, "%s",
                      "only peer-to-peer migration (VIR_MIGRATE_PEER2PEER) is supported");
        return;
    }
    if (!check_postcopy_flags(call, a->flags))
        return;
    /* vireo-vmm would send pages it has not received yet. */
    if (dom->postcopy_in) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s",
                      "the incoming post-copy migration of the domain has not completed yet");
        return;
    }
    if (mp.dname && strcmp(mp.dname, dom->name) != 0) {
        rpc_call_fail(call, RPC_ERR_OPERATION_UNSUPPORTED, "%s",
                      "renaming a domain on migration is not supported");
        return;
    }
    if (!a->dconnuri || !(remote = rpc_remote_uri_parse(a->dconnuri, &err))) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG, "%s",
                      err ? err->message : "a destination URI is required");
        return;
    }
    if ((a->flags & MIG_UNDEFINE_SOURCE) && !dom->def) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s",
                      "cannot undefine the source of a transient domain");
        return;
    }
    if (dom->state != RPC_DOMAIN_RUNNING && dom->state != RPC_DOMAIN_PAUSED) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s", "domain is not running");
        return;
    }
    if ((a->flags & MIG_POSTCOPY_RESUME) &&
        (dom->state != RPC_DOMAIN_PAUSED || dom->reason != PAUSED_POSTCOPY_FAILED)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s", "resuming failed post-copy "
                      "migration requires a domain paused after a failed post-copy migration");
        return;
    }
    mo = g_new0(MigrateOut, 1);
    mo->dom = domain_driver_ref(dom);
    mo->call = call;
    mo->flags = a->flags;
    mo->dest_host = g_strdup(remote->host);
    mo->dest_uri = g_strdup(remote->local_uri);
    /* Like libvirtd, the daemon presents its own client certificate to its peer. */
    if (remote->tls)
        mo->tls_files = rpc_tls_files_new(RPC_TLS_CLIENT, drv->paths->root, drv->tls_dir);
    mo->dest_remote = g_steal_pointer(&remote);
    mo->migrate_uri = g_strdup(mp.uri);
    mo->compression = (a->flags & MIG_COMPRESSED) || mp.compression ? g_strdup("zstd") : NULL;
    mo->bandwidth = mp.bandwidth;
    if (a->flags & MIG_PARALLEL)
        mo->parallel = mp.parallel ? mp.parallel : MIG_PARALLEL_DEFAULT;
    mo->xml = domain_def_format(dom->live, DOMAIN_DEF_FORMAT_SECURE);
    mo->start_us = g_get_monotonic_time();
    domain_driver_job_begin(dom);
    dom->mig_out = mo;
    domain_driver_log(dom, "migration to %s requested (flags 0x%x)", a->dconnuri, a->flags);
    if (a->flags & MIG_POSTCOPY_RESUME) {
        /*
         * The destination may run the VM: from the first step on, nothing
         * here resumes it (a restarted daemon neither), whatever fails.
         * vireo-vmm keeps the TLS credentials of the migration it resumes.
         */
        mo->resume = TRUE;
        mo->postcopy = TRUE;
        out_finish_sent(mo);
        run_in_thread(mo, th_prepare, on_prepared);
        return;
    }
    if (a->flags & MIG_TLS) {
        mo->tls_hostname = g_strdup(mp.tls_destination ? mp.tls_destination : mo->dest_host);
        add_tls_object(mo);
        return;
    }
    run_in_thread(mo, th_prepare, on_prepared);
}

void migrate_p2p_vm_gone(Domain *dom)
{
    MigrateOut *mo = dom->mig_out;

    /* on_vm_exited ends the job right after this. */
    mo->vm_gone = TRUE;
    dom->mig_out = NULL;
    if (mo->phase == OUT_CONFIRM) {
        g_idle_add_full(G_PRIORITY_DEFAULT, out_confirmed, mo, NULL);
        return;
    }
    if (!mo->error)
        mo->error = g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED,
                                "vireo-vmm ended during the migration");
    /* The pending QMP call or worker fails and out_fail() finishes up. */
}

gboolean migrate_p2p_abort(Domain *dom)
{
    MigrateOut *mo = dom->mig_out;

    if (!mo || mo->phase >= OUT_FINISH)
        return mo != NULL;
    mo->aborted = TRUE;
    if (mo->phase == OUT_MIGRATE)
        out_cancel_stream(mo);
    return TRUE;
}

static void on_suspend_reply(QmpClient *c, JsonValue *ret, const GError *error, gpointer data)
{
    RpcCall *call = data;

    if (error)
        rpc_call_fail(call, RPC_ERR_OPERATION_FAILED, "stop: %s", error->message);
    else
        rpc_call_reply(call, NULL);
}

gboolean migrate_p2p_suspend(Domain *dom, RpcCall *call)
{
    MigrateOut *mo = dom->mig_out;

    if (!mo || (mo->phase != OUT_PREPARE && mo->phase != OUT_MIGRATE) || !dom->vm)
        return FALSE;
    /* The destination resumes it at the finish; a failure resumes it here (out_fail). */
    mo->stopped_by_us = TRUE;
    domain_driver_log(dom, "paused during the migration");
    qmp_client_execute(vm_process_get_qmp(dom->vm), "stop", NULL, 10000, on_suspend_reply, call);
    return TRUE;
}

gboolean migrate_p2p_get_progress(Domain *dom, MigrateP2PProgress *p)
{
    MigrateOut *mo = dom->mig_out;

    if (!mo)
        return FALSE;
    *p = (MigrateP2PProgress) {
        .elapsed_ms = (g_get_monotonic_time() - mo->start_us) / 1000,
        .query = mo->last_query,
        .completed = mo->completed,
    };
    return TRUE;
}

gboolean migrate_p2p_in_postcopy(Domain *dom)
{
    return dom->mig_out && dom->mig_out->postcopy;
}

/* ---- MIGRATE_START_POST_COPY ---- */

typedef struct PostcopyAsk {
    Domain *dom;                /* a reference */
    RpcCall *call;              /* NULL: asked earlier, before the stream */
} PostcopyAsk;

static void on_postcopy_reply(QmpClient *c, JsonValue *ret, const GError *error, gpointer data)
{
    PostcopyAsk *pa = data;
    MigrateOut *mo = pa->dom->mig_out;

    if (error) {
        if (pa->call)
            rpc_call_fail(pa->call, RPC_ERR_OPERATION_FAILED, "migrate-start-postcopy: %s",
                          error->message);
        else
            domain_driver_log(pa->dom, "migrate-start-postcopy: %s", error->message);
    } else {
        if (mo)
            mo->postcopy_asked = TRUE;
        if (pa->call)
            rpc_call_reply(pa->call, NULL);
    }
    domain_driver_unref(pa->dom);
    g_free(pa);
}

/* vireo-vmm switches at the end of its current pass. */
static void ask_postcopy(Domain *dom, RpcCall *call)
{
    PostcopyAsk *pa = g_new0(PostcopyAsk, 1);

    pa->dom = domain_driver_ref(dom);
    pa->call = call;
    domain_driver_log(dom, "switch to post-copy requested");
    qmp_client_execute(vm_process_get_qmp(dom->vm), "migrate-start-postcopy", NULL, 10000,
                       on_postcopy_reply, pa);
}

static void h_start_postcopy(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainMigrateStartPostCopyArgs *a = args;
    Domain *dom = domain_driver_lookup(opaque, call, &a->dom);
    MigrateOut *mo;

    if (!dom || !domain_driver_check_flags(call, a->flags, 0, "vireoDomainMigrateStartPostCopy") ||
        !domain_driver_check_active(call, dom))
        return;
    mo = dom->mig_out;
    if (!mo || mo->phase > OUT_POSTCOPY || mo->vm_gone || !dom->vm) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s",
                      "post-copy can only be started while outgoing migration is in progress");
        return;
    }
    if (!(mo->flags & MIG_POSTCOPY)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s", "switching to post-copy requires "
                      "migration to be started with VIR_MIGRATE_POSTCOPY flag");
        return;
    }
    if (mo->phase == OUT_PREPARE) {
        /* No stream in vireo-vmm yet: on_migrate_reply() asks. */
        mo->postcopy_wanted = TRUE;
        rpc_call_reply(call, NULL);
        return;
    }
    if (mo->postcopy || mo->postcopy_asked) {
        rpc_call_reply(call, NULL);
        return;
    }
    ask_postcopy(dom, call);
}

/* BEGIN3_PARAMS: what a client-driven (non-p2p) migration would send to PREPARE3. */
static void h_begin(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainMigrateBegin3ParamsArgs *a = args;
    Domain *dom = domain_driver_lookup(opaque, call, &a->dom);
    g_autofree char *xml = NULL;
    RemoteDomainMigrateBegin3ParamsRet ret = { 0 };
    MigParams mp;

    if (!dom || !domain_driver_check_flags(call, a->flags, MIG_KNOWN_FLAGS,
                                           "vireoDomainMigrateBegin3Params") ||
        !params_parse(call, a->params, a->n_params, &mp) ||
        !domain_driver_check_active(call, dom) || !check_postcopy_flags(call, a->flags))
        return;
    xml = domain_def_format(dom->live, DOMAIN_DEF_FORMAT_SECURE);
    ret.xml = xml;
    rpc_call_reply(call, &ret);
}

/* ================================================================ destination */

typedef struct MigrateIn {
    Domain *dom;                /* a reference */
    char *name;
    guint16 port;
    guint flags;
    RpcCall *prepare;           /* until vireo-vmm listens */
    RpcCall *finish;            /* waiting for the stream to be loaded */
    gboolean loaded;
    gboolean created;           /* the domain did not exist here before */
    gboolean postcopy;          /* "postcopy-active": the state came before the RAM */
    gboolean link_broken;       /* "postcopy-paused": the source is out of reach */
    gboolean stream_done;       /* "completed": all of the RAM is here */
    gboolean resume;            /* a post-copy recovery: the VM runs here already */
    RpcServerClient *source;    /* the source daemon's connection (PREPARE3's) */
    GSource *watch;             /* gives up when it closes before FINISH3 */
    gboolean finish_seen;
} MigrateIn;

static void in_free(MigrateIn *mi)
{
    if (mi->watch) {
        g_source_destroy(mi->watch);
        g_source_unref(mi->watch);
    }
    if (mi->source)
        rpc_server_client_unref(mi->source);
    g_hash_table_remove(p2p->ports, GUINT_TO_POINTER(mi->port));
    domain_driver_unref(mi->dom);
    g_free(mi->name);
    g_free(mi);
}

static void in_remove(MigrateIn *mi)
{
    g_hash_table_remove(p2p->incoming, mi->name);     /* frees */
}

static MigrateIn *in_lookup(Domain *dom)
{
    MigrateIn *mi = g_hash_table_lookup(p2p->incoming, dom->name);

    return mi && mi->dom == dom ? mi : NULL;
}

/* A free port of the range: bindable now and not promised to another incoming VM. */
static guint16 pick_port(const char *listen, GError **error)
{
    for (guint port = MIG_PORT_MIN; port <= MIG_PORT_MAX; port++) {
        g_autofree char *spec = NULL;
        int fd;

        if (g_hash_table_contains(p2p->ports, GUINT_TO_POINTER(port)))
            continue;
        spec = strchr(listen, ':') ? g_strdup_printf("[%s]:%u", listen, port)
                                   : g_strdup_printf("%s:%u", listen, port);
        fd = rpc_tcp_listen(spec, NULL);
        if (fd < 0)
            continue;
        close(fd);
        return (guint16)port;
    }
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                "no free migration port in %d-%d", MIG_PORT_MIN, MIG_PORT_MAX);
    return 0;
}

static void finish_reply(MigrateIn *mi)
{
    RemoteDomainMigrateFinish3ParamsRet ret = { 0 };

    dom_to_wire(mi->dom, &ret.dom);
    rpc_call_reply(mi->finish, &ret);
    mi->finish = NULL;
}

static gboolean make_persistent(Domain *dom, GError **error)
{
    g_autoptr(DomainDef) def = domain_def_copy(dom->live, error);
    g_autofree char *path = daemon_paths_definition(dom->drv->paths, dom->name);
    g_autofree char *xml = NULL;
    gboolean existed = dom->def != NULL;

    if (!def)
        return FALSE;
    def->id = -1;
    xml = domain_def_format(def, DOMAIN_DEF_FORMAT_INACTIVE | DOMAIN_DEF_FORMAT_SECURE);
    if (!atomic_file_write(path, xml, strlen(xml), 0600, error))
        return FALSE;
    g_clear_pointer(&dom->def, domain_def_free);
    dom->def = g_steal_pointer(&def);
    domain_driver_emit(dom, RPC_DOMAIN_EVENT_DEFINED, existed ? EV_DEFINED_UPDATED
                                                             : EV_DEFINED_ADDED);
    return TRUE;
}

static void in_finish_done(MigrateIn *mi, gboolean running)
{
    Domain *dom = mi->dom;
    g_autoptr(GError) err = NULL;
    /* Its memory still arrives: migrate_p2p_migration_event() sees the end. */
    gboolean postcopy = running && mi->postcopy && !mi->stream_done;

    if ((mi->flags & MIG_PERSIST_DEST) && !make_persistent(dom, &err))
        domain_driver_log(dom, "cannot make the migrated domain persistent: %s", err->message);
    if (running)
        domain_driver_emit(dom, RPC_DOMAIN_EVENT_RESUMED,
                           postcopy ? EV_RESUMED_POSTCOPY : EV_RESUMED_MIGRATED);
    else
        domain_driver_emit(dom, RPC_DOMAIN_EVENT_SUSPENDED, 0);
    domain_driver_log(dom, "incoming migration finished (%s)", !running ? "paused" :
                      postcopy ? "running, post-copy: the memory follows" : "running");
    dom->postcopy_in = postcopy;
    finish_reply(mi);
    domain_driver_job_end(dom);
    domain_driver_set_state(dom, running ? RPC_DOMAIN_RUNNING : RPC_DOMAIN_PAUSED,
                            !running ? PAUSED_USER : !postcopy ? RUNNING_MIGRATED :
                            mi->link_broken ? RUNNING_POSTCOPY_FAILED : RUNNING_POSTCOPY);
    in_remove(mi);
}

static void on_in_cont(QmpClient *c, JsonValue *ret, const GError *error, gpointer data)
{
    MigrateIn *mi = data;

    if (error) {
        rpc_call_fail(mi->finish, RPC_ERR_OPERATION_FAILED, "cannot resume the domain: %s",
                      error->message);
        mi->finish = NULL;
        domain_driver_job_end(mi->dom);
        if (mi->dom->vm)
            vm_process_kill(mi->dom->vm, SIGKILL, NULL);
        in_remove(mi);
        return;
    }
    in_finish_done(mi, TRUE);
}

/* The stream is loaded and the source wants the VM to go on here. */
static void in_finish(MigrateIn *mi)
{
    Domain *dom = mi->dom;

    if (!dom->vm) {
        rpc_call_fail(mi->finish, RPC_ERR_OPERATION_FAILED, "%s",
                      "the incoming vireo-vmm is gone");
        mi->finish = NULL;
        in_remove(mi);
        return;
    }
    /* A job, so that vireo-vmm's RESUME is ours to report (RESUMED migrated). */
    domain_driver_job_begin(dom);
    if (mi->flags & MIG_PAUSED)
        in_finish_done(mi, FALSE);
    else
        qmp_client_execute(vm_process_get_qmp(dom->vm), "cont", NULL, 10000, on_in_cont, mi);
}

/* A finish that waited for the load, once the start job has ended. */
static gboolean in_finish_later(gpointer data)
{
    Domain *dom = data;
    MigrateIn *mi = in_lookup(dom);

    if (mi && mi->finish)
        in_finish(mi);
    domain_driver_unref(dom);
    return G_SOURCE_REMOVE;
}

/* The start job of the incoming domain ends: loaded (paused), or failed. */
static void in_start_done(Domain *dom, RpcCall *call, const GError *error)
{
    MigrateIn *mi = in_lookup(dom);

    if (!mi)
        return;
    if (!error) {
        mi->loaded = TRUE;
        domain_driver_log(dom, "incoming migration stream loaded");
        /* The start job is still held here; in_finish() takes its own. */
        if (mi->finish) {
            GSource *idle = g_idle_source_new();

            g_source_set_callback(idle, in_finish_later, domain_driver_ref(dom), NULL);
            g_source_attach(idle, dom->drv->ctx);
            g_source_unref(idle);
        }
        return;
    }
    if (mi->prepare) {
        rpc_call_fail(mi->prepare, RPC_ERR_OPERATION_FAILED, "%s", error->message);
        mi->prepare = NULL;
    }
    if (mi->finish) {
        rpc_call_fail(mi->finish, RPC_ERR_OPERATION_FAILED, "incoming migration failed: %s",
                      error->message);
        mi->finish = NULL;
    }
    in_remove(mi);
}

void migrate_p2p_incoming_listening(Domain *dom)
{
    MigrateIn *mi = in_lookup(dom);
    RemoteDomainMigratePrepare3ParamsRet ret = { 0 };
    g_autofree char *uri = NULL;

    if (!mi || !mi->prepare)
        return;
    uri = g_strdup_printf("tcp:%s:%u", g_get_host_name(), mi->port);
    ret.uri_out = uri;
    rpc_call_reply(mi->prepare, &ret);
    mi->prepare = NULL;
}

/*
 * Without FINISH3 from the daemon that prepared it, nobody will ever tell
 * this VM to run or to go: when that daemon's connection closes first
 * (it died, or the network between the hosts), give up the migration, as
 * libvirt does. The source VM was never stopped for good: its daemon
 * resumes it (migrate-p2p's restart rule, domain-status.h).
 */
static gboolean in_watch_source(gpointer data)
{
    MigrateIn *mi = data;
    Domain *dom = mi->dom;

    if (mi->finish_seen || !rpc_server_client_is_closed(mi->source))
        return mi->finish_seen ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
    domain_driver_log(dom, "the source daemon went away before finishing the migration; "
                      "giving it up");
    g_clear_pointer(&mi->watch, g_source_unref);
    if (dom->vm) {
        dom->stop_intent = STOP_DESTROY;
        vm_process_kill(dom->vm, SIGKILL, NULL);
    }
    /* Loaded already: no start job will report; forget it here (as a cancel). */
    if (mi->loaded)
        in_remove(mi);
    return G_SOURCE_REMOVE;
}

/* vireo-vmm's TLS server credentials for an incoming stream (VIR_MIGRATE_TLS). */
static char **tls_server_args(DomainDriver *drv)
{
    g_autofree char *dir = tls_dir(drv);
    char **argv = g_new0(char *, 5);

    argv[0] = g_strdup("--object");
    argv[1] = g_strdup_printf("tls-creds-x509,id=%s,dir=%s,endpoint=server,verify-peer=on",
                              MIG_TLS_OBJECT, dir);
    argv[2] = g_strdup("--migrate-tls-creds");
    argv[3] = g_strdup(MIG_TLS_OBJECT);
    return argv;
}

static void on_recover_reply(QmpClient *c, JsonValue *ret, const GError *error, gpointer data)
{
    Domain *dom = data;
    MigrateIn *mi = in_lookup(dom);

    if (mi && mi->prepare) {
        if (error) {
            rpc_call_fail(mi->prepare, RPC_ERR_OPERATION_FAILED, "migrate-recover: %s",
                          error->message);
            mi->prepare = NULL;
            in_remove(mi);
        } else {
            migrate_p2p_incoming_listening(dom);
        }
    }
    domain_driver_unref(dom);
}

/*
 * VIR_MIGRATE_POSTCOPY_RESUME: the domain runs here after a post-copy
 * switch and its vireo-vmm waits in postcopy-paused for the source to
 * come back. migrate-recover opens a port for it; FINISH3 only ends it.
 */
static void prepare_resume(RpcCall *call, DomainDriver *drv, const char *name,
                           const char *listen, guint flags)
{
    Domain *dom = g_hash_table_lookup(drv->by_name, name);
    MigrateIn *mi = g_hash_table_lookup(p2p->incoming, name);
    g_autoptr(GError) err = NULL;
    g_autofree char *uri = NULL;
    JsonValue *args;
    guint16 port;

    if (mi && mi->resume && !mi->prepare && !mi->finish)
        in_remove(mi);          /* an earlier attempt that never finished */
    else if (mi) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "domain '%s' is being migrated", name);
        return;
    }
    if (!dom || !dom->vm || !dom->postcopy_in) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID,
                      "domain '%s' has no incoming post-copy migration to resume", name);
        return;
    }
    port = pick_port(listen, &err);
    if (!port) {
        rpc_call_fail_gerror(call, err);
        return;
    }
    mi = g_new0(MigrateIn, 1);
    mi->dom = domain_driver_ref(dom);
    mi->name = g_strdup(name);
    mi->port = port;
    mi->flags = flags;
    mi->prepare = call;
    mi->resume = TRUE;
    mi->loaded = TRUE;
    mi->postcopy = TRUE;
    g_hash_table_insert(p2p->ports, GUINT_TO_POINTER(port), GUINT_TO_POINTER(1));
    g_hash_table_insert(p2p->incoming, mi->name, mi);
    uri = strchr(listen, ':') ? g_strdup_printf("tcp:[%s]:%u", listen, port)
                              : g_strdup_printf("tcp:%s:%u", listen, port);
    args = json_new_object();
    json_object_set_string(args, "uri", uri);
    domain_driver_log(dom, "post-copy recovery: waiting for the source on port %u", port);
    qmp_client_execute(vm_process_get_qmp(dom->vm), "migrate-recover", args, 10000,
                       on_recover_reply, domain_driver_ref(dom));
}

static void h_prepare(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainMigratePrepare3ParamsArgs *a = args;
    DomainDriver *drv = opaque;
    g_autoptr(DomainDef) def = NULL;
    g_autoptr(GError) err = NULL;
    const char *listen;
    Domain *found = NULL, *dom;
    MigrateIn *mi;
    MigParams mp;
    guint16 port;

    if (!domain_driver_check_flags(call, a->flags, MIG_KNOWN_FLAGS,
                                   "vireoDomainMigratePrepare3Params") ||
        !params_parse(call, a->params, a->n_params, &mp))
        return;
    if (!mp.xml) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG, "%s",
                      "the destination_xml migration parameter is required");
        return;
    }
    def = domain_def_parse_string(mp.xml, 0, &err);
    if (!def) {
        rpc_call_fail(call, RPC_ERR_XML_ERROR, "%s", err->message);
        return;
    }
    if (mp.dname && strcmp(mp.dname, def->name) != 0) {
        rpc_call_fail(call, RPC_ERR_OPERATION_UNSUPPORTED, "%s",
                      "renaming a domain on migration is not supported");
        return;
    }
    if (a->flags & MIG_POSTCOPY_RESUME) {
        prepare_resume(call, drv, def->name, mp.listen ? mp.listen : "0.0.0.0", a->flags);
        return;
    }
    mi = g_hash_table_lookup(p2p->incoming, def->name);
    if (mi && !mi->prepare && !mi->finish && !mi->dom->vm)
        in_remove(mi);          /* its vireo-vmm ended and no finish came */
    if (!domain_driver_check_identity(drv, call, def, &found))
        return;
    if (found && domain_driver_defer(found, call, h_prepare, args))
        return;
    if ((found && domain_driver_is_active(found)) ||
        g_hash_table_contains(p2p->incoming, def->name)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "domain '%s' is already active",
                      def->name);
        return;
    }
    if (a->flags & MIG_TLS) {
        g_autofree char *dir = tls_dir(drv);

        /* vireo-vmm's option syntax separates with commas. */
        if (strchr(dir, ',')) {
            rpc_call_fail(call, RPC_ERR_CONFIG_UNSUPPORTED,
                          "the TLS directory '%s' has a comma in its name", dir);
            return;
        }
    }
    listen = mp.listen ? mp.listen : "0.0.0.0";
    port = pick_port(listen, &err);
    if (!port) {
        rpc_call_fail_gerror(call, err);
        return;
    }
    dom = found ? found : domain_driver_add(drv, def);
    mi = g_new0(MigrateIn, 1);
    mi->dom = domain_driver_ref(dom);
    mi->name = g_strdup(def->name);
    mi->port = port;
    mi->flags = a->flags;
    mi->prepare = call;
    mi->created = !found;
    mi->source = rpc_server_client_ref(rpc_call_get_client(call));
    mi->watch = g_timeout_source_new_seconds(1);
    g_source_set_callback(mi->watch, in_watch_source, mi, NULL);
    g_source_attach(mi->watch, drv->ctx);
    g_hash_table_insert(p2p->ports, GUINT_TO_POINTER(port), GUINT_TO_POINTER(1));
    g_hash_table_insert(p2p->incoming, mi->name, mi);
    g_free(dom->incoming);
    dom->incoming = strchr(listen, ':') ? g_strdup_printf("tcp:[%s]:%u", listen, port)
                                        : g_strdup_printf("tcp:%s:%u", listen, port);
    g_clear_pointer(&dom->incoming_extra, g_strfreev);
    if (a->flags & MIG_TLS)
        dom->incoming_extra = tls_server_args(drv);
    domain_driver_log(dom, "incoming migration on %s", dom->incoming);
    /* Answered from migrate_p2p_incoming_listening(), or failed from in_start_done(). */
    domain_driver_start(dom, g_steal_pointer(&def), START_RESTORE | START_PAUSED |
                        START_MIGRATE_IN, NULL, in_start_done);
}

static void h_finish(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainMigrateFinish3ParamsArgs *a = args;
    MigrateIn *mi;
    MigParams mp;

    if (!params_parse(call, a->params, a->n_params, &mp))
        return;
    mi = mp.dname ? g_hash_table_lookup(p2p->incoming, mp.dname) : NULL;
    if (!mi || mi->prepare || mi->finish) {
        rpc_call_fail(call, RPC_ERR_NO_DOMAIN, "no incoming migration of domain '%s'",
                      mp.dname ? mp.dname : "");
        return;
    }
    mi->finish = call;
    mi->finish_seen = TRUE;
    mi->flags = a->flags;
    if (mi->resume) {
        /* The VM runs here whatever the source says: nothing to start or stop. */
        domain_driver_log(mi->dom, "post-copy recovery %s", a->cancelled ? "given up by the "
                          "source" : "finished: all of the memory is here");
        if (a->cancelled) {
            rpc_call_fail(call, RPC_ERR_OPERATION_FAILED, "%s", "migration cancelled");
            mi->finish = NULL;
        } else {
            finish_reply(mi);
        }
        in_remove(mi);
        return;
    }
    if (a->cancelled) {
        Domain *dom = mi->dom;

        domain_driver_log(dom, "incoming migration cancelled by the source");
        rpc_call_fail(call, RPC_ERR_OPERATION_FAILED, "%s", "migration cancelled");
        mi->finish = NULL;
        if (dom->vm) {
            dom->stop_intent = STOP_DESTROY;
            vm_process_kill(dom->vm, SIGKILL, NULL);
        }
        /* Loaded already: no start job will report; forget it here. */
        if (mi->loaded)
            in_remove(mi);
        return;
    }
    if (mi->loaded)
        in_finish(mi);
    /* else in_start_done() continues when vireo-vmm has loaded the stream. */
}

/* ================================================================ events */

void migrate_p2p_migration_event(Domain *dom, JsonValue *data)
{
    const char *status = data ? json_object_get_string(data, "status") : NULL;
    MigrateIn *mi;

    if (!status || !p2p)
        return;
    if (dom->mig_out) {
        if (!strcmp(status, "postcopy-active"))
            out_postcopy_switch(dom->mig_out);
        return;
    }
    mi = in_lookup(dom);
    if (mi && !mi->resume) {
        if (!strcmp(status, "postcopy-active")) {
            mi->postcopy = TRUE;
            mi->link_broken = FALSE;
        } else if (!strcmp(status, "postcopy-paused")) {
            mi->link_broken = TRUE;
        } else if (!strcmp(status, "completed")) {
            mi->stream_done = TRUE;
        }
        return;
    }
    if (!dom->postcopy_in)
        return;
    if (!strcmp(status, "postcopy-active") && dom->state == RPC_DOMAIN_RUNNING &&
        dom->reason == RUNNING_POSTCOPY_FAILED) {
        domain_driver_log(dom, "incoming post-copy migration recovered");
        domain_driver_set_state(dom, RPC_DOMAIN_RUNNING, RUNNING_POSTCOPY);
        domain_driver_emit(dom, RPC_DOMAIN_EVENT_RESUMED, EV_RESUMED_POSTCOPY);
    } else if (!strcmp(status, "postcopy-paused")) {
        /* Its vCPUs wait for pages until the source comes back, if it does. */
        domain_driver_log(dom, "incoming post-copy migration paused: the source is out of reach");
        if (dom->state == RPC_DOMAIN_RUNNING) {
            domain_driver_set_state(dom, RPC_DOMAIN_RUNNING, RUNNING_POSTCOPY_FAILED);
            domain_driver_emit(dom, RPC_DOMAIN_EVENT_RESUMED, EV_RESUMED_POSTCOPY_FAILED);
        }
    } else if (!strcmp(status, "failed")) {
        /* vireo-vmm ends: the exit tells the clients. */
        dom->postcopy_in = FALSE;
    } else if (!strcmp(status, "completed")) {
        dom->postcopy_in = FALSE;
        domain_driver_log(dom, "incoming post-copy migration completed");
        if (dom->state == RPC_DOMAIN_RUNNING &&
            (dom->reason == RUNNING_POSTCOPY || dom->reason == RUNNING_POSTCOPY_FAILED)) {
            /* libvirt's second RESUMED at the very end of a post-copy migration. */
            domain_driver_set_state(dom, RPC_DOMAIN_RUNNING, RUNNING_MIGRATED);
            domain_driver_emit(dom, RPC_DOMAIN_EVENT_RESUMED, EV_RESUMED_MIGRATED);
        }
    }
}

/* ================================================================ registration */

static const struct {
    gint32 proc;
    RpcHandlerFunc fn;
} handlers[] = {
    { REMOTE_PROC_DOMAIN_MIGRATE_BEGIN3_PARAMS, h_begin },
    { REMOTE_PROC_DOMAIN_MIGRATE_PREPARE3_PARAMS, h_prepare },
    { REMOTE_PROC_DOMAIN_MIGRATE_PERFORM3_PARAMS, h_perform },
    { REMOTE_PROC_DOMAIN_MIGRATE_FINISH3_PARAMS, h_finish },
    { REMOTE_PROC_DOMAIN_MIGRATE_START_POST_COPY, h_start_postcopy },
};

void migrate_p2p_register(DomainDriver *drv, RpcServer *srv)
{
    if (!p2p) {
        p2p = g_new0(MigrateP2P, 1);
        p2p->incoming = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                              (GDestroyNotify)in_free);
        p2p->ports = g_hash_table_new(g_direct_hash, g_direct_equal);
    }
    p2p->drv = drv;
    for (gsize i = 0; i < G_N_ELEMENTS(handlers); i++)
        rpc_server_set_handler(srv, REMOTE_PROGRAM, handlers[i].proc, handlers[i].fn, drv);
}
