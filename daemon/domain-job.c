/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Jobs of the domain driver that vireo-vmm runs as a migration: a save
 * (started and followed here, through its MIGRATION events) and the job
 * procedures (domjobinfo, domjobabort) and migration parameters
 * (migrate-setmaxdowntime, migrate-setspeed), for a save and for an
 * outgoing peer-to-peer migration (migrate-p2p.c, which runs its own job
 * and answers its progress), all answered from QMP without blocking the
 * loop.
 */
#include <string.h>

#include "domain-driver-priv.h"
#include "vireo/rpc-error.h"
#include "vireo/util.h"

/* libvirt's virDomainJobType, virDomainJobOperation, flags. */
enum { JOB_NONE = 0, JOB_UNBOUNDED = 2, JOB_COMPLETED = 3, JOB_FAILED = 4, JOB_CANCELLED = 5 };
enum { JOB_OPERATION_SAVE = 2, JOB_OPERATION_MIGRATION_OUT = 5 };
enum { JOB_STATS_COMPLETED = 1, JOB_STATS_KEEP_COMPLETED = 2 };

typedef enum {
    PHASE_STOPPING,         /* "stop" sent */
    PHASE_MIGRATING,        /* "migrate" accepted; waiting for its end */
    PHASE_ENDING,           /* ended; resuming or reporting */
} JobPhase;

struct DomainJob {
    Domain *dom;
    int operation;
    JobPhase phase;
    gint64 started_us;      /* monotonic */
    gboolean resume;        /* the domain ran: resume it when the job fails */
    gboolean cancelled;     /* by domjobabort */
    char *uri;
    DomainJobDoneFunc done;
    gpointer opaque;
    GError *error;          /* why it failed, while resuming */
    gint64 saved_bandwidth; /* max-bandwidth before the save; -1 unknown */
};

/* The statistics of the domain's last job, for domjobinfo --completed. */
typedef struct CompletedStats {
    int type;
    GArray *params;         /* RemoteTypedParam, fields static strings */
} CompletedStats;

static GHashTable *completed_stats;   /* uuid string -> CompletedStats */

static void completed_stats_free(gpointer p)
{
    CompletedStats *cs = p;

    g_array_unref(cs->params);
    g_free(cs);
}

static QmpClient *job_qmp(Domain *dom)
{
    return dom->vm ? vm_process_get_qmp(dom->vm) : NULL;
}

/* ------------------------------------------------------------ statistics */

static void add_ull(GArray *a, const char *field, guint64 v)
{
    RemoteTypedParam p = { .field = (char *)field };

    p.value.type = 4;
    p.value.u.ul = v;
    g_array_append_val(a, p);
}

static void add_int(GArray *a, const char *field, gint32 v)
{
    RemoteTypedParam p = { .field = (char *)field };

    p.value.type = 1;
    p.value.u.i = v;
    g_array_append_val(a, p);
}

static guint64 get_u(JsonValue *o, const char *key)
{
    int64_t v = 0;

    return o && json_object_get_int(o, key, &v) && v > 0 ? (guint64)v : 0;
}

/*
 * query-migrate, in the typed parameters libvirt's QEMU driver derives
 * from it (VIR_DOMAIN_JOB_*). @qm NULL: the job has not reached
 * vireo-vmm's migration yet.
 */
static GArray *stats_from_query(int operation, guint64 elapsed_ms, JsonValue *qm,
                                gboolean completed)
{
    GArray *a = g_array_new(FALSE, TRUE, sizeof(RemoteTypedParam));
    JsonValue *ram = qm ? json_object_get_object(qm, "ram") : NULL;
    double mbps = 0;
    guint64 total = get_u(ram, "total"), done = get_u(ram, "transferred");
    guint64 remaining = get_u(ram, "remaining");

    add_int(a, "operation", operation);
    add_ull(a, "time_elapsed", elapsed_ms);
    if (!ram)
        return a;
    if (completed && json_object_get(qm, "downtime"))
        add_ull(a, "downtime", get_u(qm, "downtime"));
    if (json_object_get(qm, "setup-time"))
        add_ull(a, "setup_time", get_u(qm, "setup-time"));
    if (!completed && json_object_get(qm, "expected-downtime"))
        add_ull(a, "downtime", get_u(qm, "expected-downtime"));
    add_ull(a, "data_total", total);
    add_ull(a, "data_processed", done);
    add_ull(a, "data_remaining", remaining);
    add_ull(a, "memory_total", total);
    add_ull(a, "memory_processed", done);
    add_ull(a, "memory_remaining", remaining);
    add_ull(a, "memory_constant", get_u(ram, "duplicate"));
    add_ull(a, "memory_normal", get_u(ram, "normal"));
    add_ull(a, "memory_normal_bytes", get_u(ram, "normal-bytes"));
    json_object_get_double(ram, "mbps", &mbps);
    /* QEMU's "mbps" is megabits per second; libvirt reports bytes per second. */
    add_ull(a, "memory_bps", (guint64)(mbps * 1000 * 1000 / 8));
    add_ull(a, "memory_dirty_rate", get_u(ram, "dirty-pages-rate"));
    add_ull(a, "memory_page_size", get_u(ram, "page-size"));
    /*
     * libvirt's iteration is the pass under way, 1 for the first (QEMU
     * counts the sync before it); vireo-vmm counts the passes done.
     */
    add_ull(a, "memory_iteration", get_u(ram, "dirty-sync-count") + 1);
    if (get_u(ram, "postcopy-requests"))
        add_ull(a, "memory_postcopy_requests", get_u(ram, "postcopy-requests"));
    return a;
}

static guint64 elapsed_ms(const DomainJob *job)
{
    return (g_get_monotonic_time() - job->started_us) / 1000;
}

static void keep_completed(DomainJob *job, int type, JsonValue *qm)
{
    CompletedStats *cs = g_new0(CompletedStats, 1);

    if (!completed_stats)
        completed_stats = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                                completed_stats_free);
    cs->type = type;
    cs->params = stats_from_query(job->operation, elapsed_ms(job), qm, TRUE);
    g_hash_table_replace(completed_stats, g_strdup(job->dom->uuidstr), cs);
}

/* ------------------------------------------------------------ the job */

static void job_free(DomainJob *job)
{
    g_clear_error(&job->error);
    g_free(job->uri);
    domain_driver_unref(job->dom);
    g_free(job);
}

/* Ends the job: detaches it from the domain, then tells its owner. */
static void job_finish(DomainJob *job, GError *error)
{
    g_autoptr(GError) err = error;
    Domain *dom = job->dom;

    if (dom->djob == job)
        dom->djob = NULL;
    job->done(dom, err, job->opaque);
    job_free(job);
}

static void restore_bandwidth(DomainJob *job);

static const char *job_name(const DomainJob *job)
{
    return job->operation == JOB_OPERATION_SAVE ? "domain save job" : "migration job";
}

static void on_resumed(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque)
{
    DomainJob *job = opaque;
    Domain *dom = job->dom;

    if (error) {
        domain_driver_log(dom, "cannot resume after the failed %s: %s", job_name(job),
                          error->message);
    } else {
        domain_driver_set_state(dom, RPC_DOMAIN_RUNNING, RUNNING_SAVE_CANCELED);
        domain_driver_emit(dom, RPC_DOMAIN_EVENT_RESUMED, EV_RESUMED_UNPAUSED);
    }
    job_finish(job, g_steal_pointer(&job->error));
}

/* The job failed or was cancelled: the domain runs again if it ran. */
static void job_fail(DomainJob *job, GError *error)
{
    QmpClient *qmp = job_qmp(job->dom);

    job->phase = PHASE_ENDING;
    job->error = error;
    domain_driver_log(job->dom, "%s failed: %s", job_name(job), error->message);
    restore_bandwidth(job);
    if (job->resume && qmp) {
        qmp_client_execute(qmp, "cont", NULL, 30000, on_resumed, job);
        return;
    }
    job_finish(job, g_steal_pointer(&job->error));
}

static GError *cancelled_error(const DomainJob *job)
{
    return g_error_new(RPC_REMOTE_ERROR, RPC_ERR_OPERATION_ABORTED,
                       "%s: canceled by client", job_name(job));
}

static void on_final_query(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque)
{
    DomainJob *job = opaque;
    const char *status = ret ? json_object_get_string(ret, "status") : NULL;
    const char *desc = ret ? json_object_get_string(ret, "error-desc") : NULL;

    if (status && !strcmp(status, "completed")) {
        keep_completed(job, JOB_COMPLETED, ret);
        job->phase = PHASE_ENDING;
        job_finish(job, NULL);
        return;
    }
    keep_completed(job, job->cancelled ? JOB_CANCELLED : JOB_FAILED, ret);
    if (job->cancelled || (status && !strcmp(status, "cancelled")))
        job_fail(job, cancelled_error(job));
    else
        job_fail(job, g_error_new(RPC_REMOTE_ERROR, RPC_ERR_OPERATION_FAILED,
                                  "%s: %s", job_name(job),
                                  desc ? desc : error ? error->message : "unexpectedly failed"));
}

void domain_job_on_migration_event(Domain *dom, JsonValue *data)
{
    DomainJob *job = dom->djob;
    const char *status = data ? json_object_get_string(data, "status") : NULL;
    QmpClient *qmp = job_qmp(dom);

    if (!job || job->phase != PHASE_MIGRATING || !status || !qmp)
        return;
    if (strcmp(status, "completed") && strcmp(status, "failed") && strcmp(status, "cancelled"))
        return;
    /* The final numbers (and the error) come with query-migrate. */
    job->phase = PHASE_ENDING;
    qmp_client_execute(qmp, "query-migrate", NULL, 30000, on_final_query, job);
}

void domain_job_vm_gone(Domain *dom)
{
    DomainJob *job = dom->djob;

    if (!job)
        return;
    /* Its QMP replies will not come: the callbacks holding @job were failed already. */
    dom->djob = NULL;
    job->resume = FALSE;
    job->phase = PHASE_ENDING;
    job_finish(job, g_error_new(RPC_REMOTE_ERROR, RPC_ERR_OPERATION_FAILED,
                                "%s: vireo-vmm ended", job_name(job)));
}

static void on_migrate(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque)
{
    DomainJob *job = opaque;

    if (job->phase == PHASE_ENDING)
        return;
    if (error) {
        if (error->code == QMP_CLIENT_ERROR_CLOSED)
            return;             /* domain_job_vm_gone() reports it */
        job_fail(job, g_error_new(RPC_REMOTE_ERROR, RPC_ERR_OPERATION_FAILED,
                                  "%s: %s", job_name(job), error->message));
        return;
    }
}

static void on_old_params(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque)
{
    DomainJob *job = opaque;
    int64_t v;

    if (!error && json_object_get_int(ret, "max-bandwidth", &v))
        job->saved_bandwidth = v;
}

static void send_migrate(DomainJob *job)
{
    QmpClient *qmp = job_qmp(job->dom);
    JsonValue *args = json_new_object();
    JsonValue *unlimited = json_new_object();

    job->phase = PHASE_MIGRATING;
    /*
     * As libvirt: a save goes to a local file at full speed; the limit set
     * with migrate-setspeed is for migrations and comes back afterwards.
     * QMP answers in order, so the three commands need no chaining.
     */
    qmp_client_execute(qmp, "query-migrate-parameters", NULL, 30000, on_old_params, job);
    json_object_set_int(unlimited, "max-bandwidth", 0);
    qmp_client_execute(qmp, "migrate-set-parameters", unlimited, 30000, NULL, NULL);
    json_object_set_string(args, "uri", job->uri);
    qmp_client_execute(qmp, "migrate", args, 30000, on_migrate, job);
}

static void restore_bandwidth(DomainJob *job)
{
    QmpClient *qmp = job_qmp(job->dom);
    JsonValue *args;

    if (job->saved_bandwidth < 0 || !qmp)
        return;
    args = json_new_object();
    json_object_set_int(args, "max-bandwidth", job->saved_bandwidth);
    qmp_client_execute(qmp, "migrate-set-parameters", args, 30000, NULL, NULL);
}

static void on_stopped(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque)
{
    DomainJob *job = opaque;
    Domain *dom = job->dom;

    if (error) {
        if (error->code == QMP_CLIENT_ERROR_CLOSED)
            return;
        job->resume = FALSE;
        job_fail(job, g_error_new(RPC_REMOTE_ERROR, RPC_ERR_OPERATION_FAILED,
                                  "cannot stop the vCPUs: %s",
                                  error->message));
        return;
    }
    /* libvirt pauses before saving: the image is one consistent pass. */
    domain_driver_set_state(dom, RPC_DOMAIN_PAUSED, PAUSED_SAVE);
    domain_driver_emit(dom, RPC_DOMAIN_EVENT_SUSPENDED, EV_SUSPENDED_PAUSED);
    if (job->cancelled) {
        job_fail(job, cancelled_error(job));
        return;
    }
    send_migrate(job);
}

void domain_job_start_save(Domain *dom, const char *uri, DomainJobDoneFunc done,
                           gpointer opaque)
{
    DomainJob *job = g_new0(DomainJob, 1);

    g_assert(!dom->djob);
    job->dom = domain_driver_ref(dom);
    job->operation = JOB_OPERATION_SAVE;
    job->started_us = g_get_monotonic_time();
    job->saved_bandwidth = -1;
    job->uri = g_strdup(uri);
    job->done = done;
    job->opaque = opaque;
    dom->djob = job;
    if (!job_qmp(dom)) {
        job_fail(job, g_error_new(RPC_REMOTE_ERROR, RPC_ERR_OPERATION_FAILED, "%s",
                                  "no connection to vireo-vmm"));
        return;
    }
    if (dom->state == RPC_DOMAIN_RUNNING) {
        job->resume = TRUE;
        job->phase = PHASE_STOPPING;
        qmp_client_execute(job_qmp(dom), "stop", NULL, 30000, on_stopped, job);
        return;
    }
    send_migrate(job);
}

/* ------------------------------------------------------------ procedures */

typedef struct StatsCall {
    RpcCall *call;
    Domain *dom;
    gboolean legacy;        /* GET_JOB_INFO rather than GET_JOB_STATS */
} StatsCall;

static guint64 param_ull(GArray *a, const char *field)
{
    for (guint i = 0; i < a->len; i++) {
        RemoteTypedParam *p = &g_array_index(a, RemoteTypedParam, i);

        if (!strcmp(p->field, field) && p->value.type == 4)
            return p->value.u.ul;
    }
    return 0;
}

static void reply_stats(RpcCall *call, gboolean legacy, int type, GArray *a)
{
    if (legacy) {
        RemoteDomainGetJobInfoRet r = { .type = type };

        if (a) {
            r.timeElapsed = param_ull(a, "time_elapsed");
            r.dataTotal = param_ull(a, "data_total");
            r.dataProcessed = param_ull(a, "data_processed");
            r.dataRemaining = param_ull(a, "data_remaining");
            r.memTotal = param_ull(a, "memory_total");
            r.memProcessed = param_ull(a, "memory_processed");
            r.memRemaining = param_ull(a, "memory_remaining");
        }
        rpc_call_reply(call, &r);
    } else {
        RemoteDomainGetJobStatsRet r = { .type = type };

        if (a) {
            r.n_params = a->len;
            r.params = (RemoteTypedParam *)a->data;
        }
        rpc_call_reply(call, &r);
    }
}

static void on_stats_query(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque)
{
    StatsCall *sc = opaque;
    DomainJob *job = sc->dom->djob;

    if (!job) {
        /* It ended meanwhile: nothing runs now. */
        reply_stats(sc->call, sc->legacy, JOB_NONE, NULL);
    } else {
        g_autoptr(GArray) a = stats_from_query(job->operation, elapsed_ms(job),
                                               error ? NULL : ret, FALSE);

        reply_stats(sc->call, sc->legacy, JOB_UNBOUNDED, a);
    }
    domain_driver_unref(sc->dom);
    g_free(sc);
}

static void job_stats_common(RpcCall *call, DomainDriver *drv, const RemoteNonnullDomain *w,
                             guint flags, gboolean legacy)
{
    Domain *dom = domain_driver_lookup(drv, call, w);
    MigrateP2PProgress mp = { 0 };
    StatsCall *sc;

    if (!dom || !domain_driver_check_flags(call, flags,
                                           JOB_STATS_COMPLETED | JOB_STATS_KEEP_COMPLETED,
                                           "vireoDomainGetJobStats"))
        return;
    if (flags & JOB_STATS_COMPLETED) {
        CompletedStats *cs = completed_stats ?
                             g_hash_table_lookup(completed_stats, dom->uuidstr) : NULL;

        reply_stats(call, legacy, cs ? cs->type : JOB_NONE, cs ? cs->params : NULL);
        if (cs && !(flags & JOB_STATS_KEEP_COMPLETED))
            g_hash_table_remove(completed_stats, dom->uuidstr);
        return;
    }
    /* An outgoing peer-to-peer migration (migrate-p2p.c): its last query-migrate. */
    if (!dom->djob && dom->mig_out && migrate_p2p_get_progress(dom, &mp)) {
        g_autoptr(GArray) a = stats_from_query(JOB_OPERATION_MIGRATION_OUT, mp.elapsed_ms,
                                               mp.query, mp.completed);

        reply_stats(call, legacy, JOB_UNBOUNDED, a);
        return;
    }
    if (!dom->djob || !job_qmp(dom)) {
        reply_stats(call, legacy, JOB_NONE, NULL);
        return;
    }
    if (dom->djob->phase == PHASE_STOPPING) {
        g_autoptr(GArray) a = stats_from_query(dom->djob->operation, elapsed_ms(dom->djob),
                                               NULL, FALSE);

        reply_stats(call, legacy, JOB_UNBOUNDED, a);
        return;
    }
    sc = g_new0(StatsCall, 1);
    sc->call = call;
    sc->dom = domain_driver_ref(dom);
    sc->legacy = legacy;
    qmp_client_execute(job_qmp(dom), "query-migrate", NULL, 30000, on_stats_query, sc);
}

static void h_get_job_info(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainGetJobInfoArgs *a = args;

    job_stats_common(call, opaque, &a->dom, 0, TRUE);
}

static void h_get_job_stats(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainGetJobStatsArgs *a = args;

    job_stats_common(call, opaque, &a->dom, a->flags, FALSE);
}

typedef struct QmpReplyCall {
    RpcCall *call;
    Domain *dom;
} QmpReplyCall;

static void on_void_reply(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque)
{
    QmpReplyCall *qc = opaque;

    if (error && error->code == QMP_CLIENT_ERROR_CLOSED)
        rpc_call_fail(qc->call, RPC_ERR_OPERATION_INVALID, "%s", "domain is not running");
    else if (error)
        rpc_call_fail(qc->call, RPC_ERR_OPERATION_FAILED, "%s", error->message);
    else
        rpc_call_reply(qc->call, NULL);
    domain_driver_unref(qc->dom);
    g_free(qc);
}

static void qmp_void(RpcCall *call, Domain *dom, const char *cmd, JsonValue *args)
{
    QmpReplyCall *qc = g_new0(QmpReplyCall, 1);

    qc->call = call;
    qc->dom = domain_driver_ref(dom);
    qmp_client_execute(job_qmp(dom), cmd, args, 30000, on_void_reply, qc);
}

static void abort_common(RpcCall *call, DomainDriver *drv, const RemoteNonnullDomain *w,
                         guint flags)
{
    Domain *dom = domain_driver_lookup(drv, call, w);
    DomainJob *job;

    if (!dom || !domain_driver_check_flags(call, flags, 0, "vireoDomainAbortJobFlags") ||
        !domain_driver_check_active(call, dom))
        return;
    job = dom->djob;
    if (!job && migrate_p2p_in_postcopy(dom)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s",
                      "cannot abort migration in post-copy mode");
        return;
    }
    if (!job && dom->mig_out && migrate_p2p_abort(dom)) {
        rpc_call_reply(call, NULL);
        return;
    }
    if (!job || job->phase == PHASE_ENDING) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s", "no job is active on the domain");
        return;
    }
    domain_driver_log(dom, "abort of the %s requested", job_name(job));
    job->cancelled = TRUE;
    if (job->phase == PHASE_STOPPING) {
        rpc_call_reply(call, NULL);     /* on_stopped() sees the flag */
        return;
    }
    qmp_void(call, dom, "migrate_cancel", NULL);
}

static void h_abort_job(RpcCall *call, gpointer args, gpointer opaque)
{
    abort_common(call, opaque, &((RemoteDomainAbortJobArgs *)args)->dom, 0);
}

static void h_abort_job_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainAbortJobFlagsArgs *a = args;

    abort_common(call, opaque, &a->dom, a->flags);
}

/* ------------------------------------------------------------ migration parameters */

static Domain *param_domain(RpcCall *call, DomainDriver *drv, const RemoteNonnullDomain *w,
                            guint flags, guint known, const char *fn)
{
    Domain *dom = domain_driver_lookup(drv, call, w);

    if (!dom || !domain_driver_check_flags(call, flags, known, fn) ||
        !domain_driver_check_active(call, dom))
        return NULL;
    if (!job_qmp(dom)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_FAILED, "%s", "no connection to vireo-vmm");
        return NULL;
    }
    return dom;
}

static void h_set_max_downtime(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainMigrateSetMaxDowntimeArgs *a = args;
    Domain *dom = param_domain(call, opaque, &a->dom, a->flags, 0,
                               "vireoDomainMigrateSetMaxDowntime");
    JsonValue *q;

    if (!dom)
        return;
    if (a->downtime > G_MAXINT64 / 1000) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG, "%s", "downtime is too large");
        return;
    }
    q = json_new_object();
    json_object_set_int(q, "downtime-limit", (int64_t)a->downtime);
    qmp_void(call, dom, "migrate-set-parameters", q);
}

/* 1 MiB/s: libvirt's unit for bandwidth. */
#define MIB (1024 * 1024ULL)

static void h_set_max_speed(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainMigrateSetMaxSpeedArgs *a = args;
    Domain *dom = param_domain(call, opaque, &a->dom, a->flags, 0,
                               "vireoDomainMigrateSetMaxSpeed");
    JsonValue *q;

    if (!dom)
        return;
    /* libvirt's limit: the value in bytes/s must fit QEMU's int64. */
    if (a->bandwidth > (guint64)G_MAXINT64 / MIB) {
        rpc_call_fail(call, RPC_ERR_OVERFLOW, "bandwidth must be less than %llu",
                      (unsigned long long)((guint64)G_MAXINT64 / MIB + 1));
        return;
    }
    q = json_new_object();
    json_object_set_int(q, "max-bandwidth", (int64_t)(a->bandwidth * MIB));
    qmp_void(call, dom, "migrate-set-parameters", q);
}

typedef struct ParamGet {
    RpcCall *call;
    Domain *dom;
    gboolean speed;
} ParamGet;

static void on_params(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque)
{
    ParamGet *pg = opaque;
    int64_t v = 0;

    if (error && error->code == QMP_CLIENT_ERROR_CLOSED) {
        rpc_call_fail(pg->call, RPC_ERR_OPERATION_INVALID, "%s", "domain is not running");
    } else if (error) {
        rpc_call_fail(pg->call, RPC_ERR_OPERATION_FAILED, "%s", error->message);
    } else if (!json_object_get_int(ret, pg->speed ? "max-bandwidth" : "downtime-limit", &v) ||
               v < 0) {
        rpc_call_fail(pg->call, RPC_ERR_INTERNAL_ERROR, "%s",
                      "missing or bad value in query-migrate-parameters");
    } else if (pg->speed) {
        RemoteDomainMigrateGetMaxSpeedRet r = { .bandwidth = (guint64)v / MIB };

        rpc_call_reply(pg->call, &r);
    } else {
        RemoteDomainMigrateGetMaxDowntimeRet r = { .downtime = (guint64)v };

        rpc_call_reply(pg->call, &r);
    }
    domain_driver_unref(pg->dom);
    g_free(pg);
}

static void get_param(RpcCall *call, Domain *dom, gboolean speed)
{
    ParamGet *pg = g_new0(ParamGet, 1);

    pg->call = call;
    pg->dom = domain_driver_ref(dom);
    pg->speed = speed;
    qmp_client_execute(job_qmp(dom), "query-migrate-parameters", NULL, 30000, on_params, pg);
}

static void h_get_max_downtime(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainMigrateGetMaxDowntimeArgs *a = args;
    Domain *dom = param_domain(call, opaque, &a->dom, a->flags, 0,
                               "vireoDomainMigrateGetMaxDowntime");

    if (dom)
        get_param(call, dom, FALSE);
}

static void h_get_max_speed(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainMigrateGetMaxSpeedArgs *a = args;
    /* 1: VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY, which has no separate limit here. */
    Domain *dom = param_domain(call, opaque, &a->dom, a->flags, 0,
                               "vireoDomainMigrateGetMaxSpeed");

    if (dom)
        get_param(call, dom, TRUE);
}

void domain_job_register(DomainDriver *drv, RpcServer *srv)
{
    static const struct {
        gint32 proc;
        RpcHandlerFunc fn;
    } procs[] = {
        { REMOTE_PROC_DOMAIN_GET_JOB_INFO, h_get_job_info },
        { REMOTE_PROC_DOMAIN_GET_JOB_STATS, h_get_job_stats },
        { REMOTE_PROC_DOMAIN_ABORT_JOB, h_abort_job },
        { REMOTE_PROC_DOMAIN_ABORT_JOB_FLAGS, h_abort_job_flags },
        { REMOTE_PROC_DOMAIN_MIGRATE_SET_MAX_DOWNTIME, h_set_max_downtime },
        { REMOTE_PROC_DOMAIN_MIGRATE_GET_MAX_DOWNTIME, h_get_max_downtime },
        { REMOTE_PROC_DOMAIN_MIGRATE_SET_MAX_SPEED, h_set_max_speed },
        { REMOTE_PROC_DOMAIN_MIGRATE_GET_MAX_SPEED, h_get_max_speed },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(procs); i++)
        rpc_server_set_handler(srv, REMOTE_PROGRAM, procs[i].proc, procs[i].fn, drv);
}
