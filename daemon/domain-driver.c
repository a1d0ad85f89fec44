/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The domain driver (include/vireo/domain-driver.h, docs/daemon.md). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vireo/atomic-file.h"
#include "vireo/conf-value.h"
#include "vireo/domain-conf.h"
#include "vireo/domain-driver.h"
#include "domain-driver-priv.h"
#include "vireo/domain-process.h"
#include "vireo/domain-status.h"
#include "vireo/proc-stat.h"
#include "vireo/rpc-error.h"
#include "vireo/rpc-protocol.h"
#include "vireo/util.h"
#include "vireo/vmm-argv.h"

static void domain_start(Domain *dom, DomainDef *def, guint flags, gboolean keep_id,
                         RpcCall *call, StartDoneFunc done);
static void job_end(Domain *dom);
static void restore_failed(Domain *dom);

/* ------------------------------------------------------------ objects */

static Domain *domain_ref(Domain *dom)
{
    g_atomic_int_inc(&dom->ref);
    return dom;
}

static void domain_unref(Domain *dom)
{
    if (!g_atomic_int_dec_and_test(&dom->ref))
        return;
    g_assert(!dom->vm && !dom->console && g_queue_is_empty(&dom->waiters));
    g_free(dom->name);
    g_clear_pointer(&dom->def, domain_def_free);
    g_clear_pointer(&dom->live, domain_def_free);
    g_clear_pointer(&dom->vcpu_tids, g_array_unref);
    g_free(dom->shutdown_reason);
    g_free(dom->incoming);
    g_strfreev(dom->incoming_extra);
    g_ptr_array_unref(dom->stop_calls);
    g_free(dom);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Domain, domain_unref)

static Domain *domain_new(DomainDriver *drv, const char *name, const uint8_t uuid[16])
{
    Domain *dom = g_new0(Domain, 1);

    dom->ref = 1;
    dom->drv = drv;
    dom->name = g_strdup(name);
    memcpy(dom->uuid, uuid, 16);
    conf_uuid_format(uuid, dom->uuidstr);
    dom->id = -1;
    dom->state = RPC_DOMAIN_SHUTOFF;
    dom->reason = SHUTOFF_UNKNOWN;
    dom->stop_calls = g_ptr_array_new();
    g_queue_init(&dom->waiters);
    return dom;
}

static void driver_add(DomainDriver *drv, Domain *dom)
{
    g_ptr_array_add(drv->domains, dom);
    g_hash_table_insert(drv->by_name, dom->name, dom);
    g_hash_table_insert(drv->by_uuid, dom->uuidstr, dom);
}

static void driver_remove(DomainDriver *drv, Domain *dom)
{
    if (dom->removed)
        return;
    dom->removed = TRUE;
    g_hash_table_remove(drv->by_name, dom->name);
    g_hash_table_remove(drv->by_uuid, dom->uuidstr);
    g_ptr_array_remove(drv->domains, dom);      /* drops the table's reference */
}

static gboolean is_active(const Domain *dom)
{
    return dom->id >= 0;
}

static const DomainDef *cur_def(const Domain *dom)
{
    return dom->live ? dom->live : dom->def;
}

static void to_wire(const Domain *dom, RemoteNonnullDomain *w)
{
    w->name = dom->name;
    memcpy(w->uuid, dom->uuid, 16);
    w->id = dom->id;
}

static void emit(Domain *dom, int event, int detail)
{
    RemoteNonnullDomain w;

    to_wire(dom, &w);
    rpc_server_emit_domain_lifecycle(dom->drv->srv, &w, event, detail);
}

/* A note in the domain's log, next to vireo-vmm's own output. */
static void log_note(Domain *dom, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void log_note(Domain *dom, const char *fmt, ...)
{
    g_autofree char *path = daemon_paths_log(dom->drv->paths, dom->name);
    g_autofree char *msg = NULL;
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    g_autofree char *stamp = g_date_time_format(now, "%Y-%m-%d %H:%M:%S.%f");
    g_autofree char *line = NULL;
    autoclose int fd = -1;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_info("domain '%s': %s", dom->name, msg);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    line = g_strdup_printf("%.23s+0000: vireod: %s\n", stamp, msg);
    if (write(fd, line, strlen(line)) < 0)
        g_debug("cannot write to %s", path);
}

/* ------------------------------------------------------------ errors */

static void fail_no_domain_wire(RpcCall *call, const RemoteNonnullDomain *w)
{
    char uuid[CONF_UUID_STRING_LEN];

    conf_uuid_format(w->uuid, uuid);
    rpc_call_fail(call, RPC_ERR_NO_DOMAIN, "no domain with matching uuid '%s' (%s)", uuid,
                  w->name);
}

/* The domain a call names, or NULL after failing the call as libvirt does. */
static Domain *get_domain(DomainDriver *drv, RpcCall *call, const RemoteNonnullDomain *w)
{
    char uuid[CONF_UUID_STRING_LEN];
    Domain *dom;

    conf_uuid_format(w->uuid, uuid);
    dom = g_hash_table_lookup(drv->by_uuid, uuid);
    if (!dom)
        fail_no_domain_wire(call, w);
    return dom;
}

static gboolean check_active(RpcCall *call, Domain *dom)
{
    if (is_active(dom))
        return TRUE;
    rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s", "domain is not running");
    return FALSE;
}

static gboolean check_flags(RpcCall *call, guint flags, guint known, const char *fn)
{
    if (!(flags & ~known))
        return TRUE;
    rpc_call_fail(call, RPC_ERR_INVALID_ARG, "unsupported flags (0x%x) in function %s",
                  flags & ~known, fn);
    return FALSE;
}

/* "unsupported configuration: X" from domain-conf becomes libvirt's CONFIG_UNSUPPORTED. */
static void fail_gerror(RpcCall *call, const GError *error)
{
    const char *prefix = "unsupported configuration: ";

    if (error->domain == VIREO_ERROR && error->code == VIREO_ERROR_UNSUPPORTED &&
        g_str_has_prefix(error->message, prefix)) {
        rpc_call_fail(call, RPC_ERR_CONFIG_UNSUPPORTED, "%s", error->message + strlen(prefix));
        return;
    }
    rpc_call_fail_gerror(call, error);
}

/* ------------------------------------------------------------ jobs */

static void job_begin(Domain *dom)
{
    g_assert(!dom->job);
    dom->job = TRUE;
    dom->drv->jobs++;
    domain_ref(dom);
}

/* Runs the calls that waited, in order; each may start a new job and defer the rest. */
static void job_end(Domain *dom)
{
    GQueue waiting = G_QUEUE_INIT;
    Deferred *d;

    g_assert(dom->job);
    dom->job = FALSE;
    dom->drv->jobs--;
    waiting = dom->waiters;
    g_queue_init(&dom->waiters);
    while ((d = g_queue_pop_head(&waiting))) {
        if (dom->job) {
            g_queue_push_tail(&dom->waiters, d);
            continue;
        }
        d->fn(d->call, d->args, dom->drv);
        g_free(d);
    }
    domain_unref(dom);
}

/* TRUE when the call must wait: it is queued and runs again after the job. */
static gboolean defer_if_busy(Domain *dom, RpcCall *call, RpcHandlerFunc fn, gpointer args)
{
    Deferred *d;

    if (!dom->job)
        return FALSE;
    d = g_new0(Deferred, 1);
    d->call = call;
    d->fn = fn;
    d->args = args;
    g_queue_push_tail(&dom->waiters, d);
    return TRUE;
}

/* ------------------------------------------------------------ persistence */

static gboolean save_definition(DomainDriver *drv, const DomainDef *def, GError **error)
{
    g_autofree char *path = daemon_paths_definition(drv->paths, def->name);
    g_autofree char *xml = domain_def_format(def, DOMAIN_DEF_FORMAT_INACTIVE |
                                                  DOMAIN_DEF_FORMAT_SECURE);

    return atomic_file_write(path, xml, strlen(xml), 0600, error);
}

static gboolean set_autostart_link(DomainDriver *drv, const char *name, gboolean on,
                                   GError **error)
{
    g_autofree char *link = daemon_paths_autostart_link(drv->paths, name);
    g_autofree char *target = g_strdup_printf("../%s.xml", name);

    if (on) {
        unlink(link);
        if (symlink(target, link) < 0) {
            int saved = errno;

            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                        "cannot create autostart link '%s': %s", link, g_strerror(saved));
            return FALSE;
        }
    } else if (unlink(link) < 0 && errno != ENOENT) {
        int saved = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot remove autostart link '%s': %s", link, g_strerror(saved));
        return FALSE;
    }
    return TRUE;
}

static void save_status(Domain *dom, gboolean complete)
{
    g_autoptr(DomainStatus) st = domain_status_new();
    g_autofree char *path = daemon_paths_vm_file(dom->drv->paths, dom->uuidstr, "state");
    g_autoptr(GError) err = NULL;

    if (!dom->vm || !dom->live)
        return;
    st->name = g_strdup(dom->name);
    memcpy(st->uuid, dom->uuid, 16);
    st->id = dom->id;
    st->pid = vm_process_get_pid(dom->vm);
    st->start_ticks = dom->start_ticks;
    st->started_at = dom->started_at;
    st->persistent = dom->def != NULL;
    st->state = dom->state;
    st->reason = dom->reason;
    st->start_complete = complete;
    st->migration_out = migrate_p2p_out_stage(dom);
    st->live_xml = domain_def_format(dom->live, DOMAIN_DEF_FORMAT_SECURE);
    if (!domain_status_save(st, path, &err))
        g_warning("domain '%s': %s", dom->name, err->message);
}

static void remove_run_dir(DomainDriver *drv, const char *uuid)
{
    static const char *const files[] = { "state", "qmp.sock", "console.sock" };
    g_autofree char *dir = daemon_paths_vm_dir(drv->paths, uuid);

    for (gsize i = 0; i < G_N_ELEMENTS(files); i++) {
        g_autofree char *f = daemon_paths_vm_file(drv->paths, uuid, files[i]);

        unlink(f);
    }
    if (rmdir(dir) < 0 && errno != ENOENT)
        g_warning("cannot remove %s: %s", dir, g_strerror(errno));
}

/* ------------------------------------------------------------ running VMs */

static void console_end(Domain *dom)
{
    if (!dom->console)
        return;
    if (dom->vm)
        vm_process_console_detach(dom->vm);
    g_clear_pointer(&dom->console, rpc_stream_unref);
}

static void set_state(Domain *dom, int state, int reason)
{
    dom->state = state;
    dom->reason = reason;
    if (dom->vm && !dom->job)
        save_status(dom, TRUE);
}

static void on_vm_event(VmProcess *vm, const char *event, JsonValue *data, gpointer opaque)
{
    Domain *dom = opaque;

    if (!strcmp(event, "SHUTDOWN")) {
        const char *reason = data ? json_object_get_string(data, "reason") : NULL;
        gboolean guest = FALSE;

        if (data)
            json_object_get_bool(data, "guest", &guest);
        g_free(dom->shutdown_reason);
        dom->shutdown_reason = g_strdup(reason ? reason : "none");
        dom->shutdown_guest = guest;
        if (reason && !strcmp(reason, "guest-panic")) {
            emit(dom, RPC_DOMAIN_EVENT_CRASHED, EV_CRASHED_PANICKED);
            return;
        }
        if (dom->stop_intent == STOP_FAKE_REBOOT)
            return;
        dom->state = RPC_DOMAIN_SHUTDOWN;
        dom->reason = SHUTDOWN_USER;
        emit(dom, RPC_DOMAIN_EVENT_SHUTDOWN, guest ? EV_SHUTDOWN_GUEST : EV_SHUTDOWN_HOST);
    } else if (!strcmp(event, "MIGRATION")) {
        if (dom->djob)
            domain_job_on_migration_event(dom, data);
        else
            migrate_p2p_migration_event(dom, data);
    } else if (dom->job) {
        /* A start's own "cont": on_cont() reports it, as libvirt does. */
        return;
    } else if (!strcmp(event, "STOP")) {
        if (dom->state == RPC_DOMAIN_PAUSED)
            return;
        set_state(dom, RPC_DOMAIN_PAUSED, PAUSED_USER);
        emit(dom, RPC_DOMAIN_EVENT_SUSPENDED, EV_SUSPENDED_PAUSED);
    } else if (!strcmp(event, "RESUME")) {
        if (dom->state == RPC_DOMAIN_RUNNING)
            return;
        set_state(dom, RPC_DOMAIN_RUNNING, RUNNING_UNPAUSED);
        emit(dom, RPC_DOMAIN_EVENT_RESUMED, EV_RESUMED_UNPAUSED);
    }
}

static void restart_done(Domain *dom, RpcCall *call, const GError *error)
{
    if (error)
        g_warning("domain '%s': restart failed: %s", dom->name, error->message);
}

static void reply_stop_calls(Domain *dom)
{
    for (guint i = 0; i < dom->stop_calls->len; i++)
        rpc_call_reply(dom->stop_calls->pdata[i], NULL);
    g_ptr_array_set_size(dom->stop_calls, 0);
}

/*
 * The process is gone: decide why, apply on_poweroff/on_reboot/on_crash,
 * and tell the clients. libvirt's QEMU driver is the model for events.
 */
static void on_vm_exited(VmProcess *vm, int status, gpointer opaque)
{
    Domain *dom = opaque;
    DomainDriver *drv = dom->drv;
    g_autoptr(Domain) hold = domain_ref(dom);
    g_autoptr(DomainDef) restart_def = NULL;
    const char *why = dom->shutdown_reason;
    gboolean crashed = (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 2) ||
                       (why && !strcmp(why, "guest-panic"));
    int reason, detail;
    const char *action = NULL;
    g_autofree char *how = status < 0 ? g_strdup("exited") :
        WIFEXITED(status) ? g_strdup_printf("exited with status %d", WEXITSTATUS(status)) :
                            g_strdup_printf("was killed by signal %d", WTERMSIG(status));

    log_note(dom, "vireo-vmm %d %s (last shutdown reason: %s)", vm_process_get_pid(vm), how,
             why ? why : "none");
    if (dom->incoming_start) {
        /* A restore whose stream vireo-vmm could not load: the start fails. */
        restore_failed(dom);
        return;
    }
    if (dom->djob)
        domain_job_vm_gone(dom);
    if (dom->mig_out)
        migrate_p2p_vm_gone(dom);
    dom->postcopy_in = FALSE;
    if (dom->kill_timer) {
        g_source_destroy(dom->kill_timer);
        g_clear_pointer(&dom->kill_timer, g_source_unref);
    }
    if (dom->stop_intent == STOP_DESTROY) {
        reason = SHUTOFF_DESTROYED;
        detail = EV_STOPPED_DESTROYED;
    } else if (dom->stop_intent == STOP_SAVED) {
        reason = SHUTOFF_SAVED;
        detail = EV_STOPPED_SAVED;
    } else if (dom->stop_intent == STOP_MIGRATED) {
        reason = SHUTOFF_MIGRATED;
        detail = EV_STOPPED_MIGRATED;
    } else if (dom->stop_intent == STOP_FAKE_REBOOT && why && !strcmp(why, "guest-shutdown")) {
        action = "restart";
        reason = SHUTOFF_SHUTDOWN;
        detail = -1;            /* a reboot: no lifecycle events, as libvirt */
    } else if (crashed) {
        action = dom->live->on_crash;
        reason = SHUTOFF_CRASHED;
        detail = EV_STOPPED_CRASHED;
    } else if (why && !strcmp(why, "guest-reset")) {
        action = dom->live->on_reboot;
        reason = SHUTOFF_SHUTDOWN;
        detail = EV_STOPPED_SHUTDOWN;
    } else if (why && !strcmp(why, "guest-shutdown")) {
        action = dom->live->on_poweroff;
        reason = SHUTOFF_SHUTDOWN;
        detail = EV_STOPPED_SHUTDOWN;
    } else if (why) {
        /* host-signal, host-qmp-quit: someone else stopped it. */
        reason = SHUTOFF_SHUTDOWN;
        detail = EV_STOPPED_SHUTDOWN;
    } else {
        /* No SHUTDOWN event: killed, or vireo-vmm itself failed. */
        reason = SHUTOFF_CRASHED;
        detail = EV_STOPPED_FAILED;
    }
    if (action && (!strcmp(action, "restart") || !strcmp(action, "rename-restart")))
        restart_def = domain_def_copy(dom->live, NULL);

    /* virsh console ends when the guest does. */
    if (dom->console)
        rpc_stream_send_eof(dom->console);
    console_end(dom);
    g_clear_pointer(&dom->vm, vm_process_free);
    remove_run_dir(drv, dom->uuidstr);
    g_clear_pointer(&dom->vcpu_tids, g_array_unref);
    g_clear_pointer(&dom->shutdown_reason, g_free);
    dom->stop_intent = STOP_NONE;
    dom->has_balloon = FALSE;
    dom->state = RPC_DOMAIN_SHUTOFF;
    dom->reason = reason;
    /* The domain in the event is already inactive (id -1), as libvirtd sends it. */
    if (!restart_def)
        dom->id = -1;
    if (detail >= 0)
        emit(dom, RPC_DOMAIN_EVENT_STOPPED, detail);
    g_clear_pointer(&dom->live, domain_def_free);
    reply_stop_calls(dom);

    if (restart_def) {
        log_note(dom, "restarting (%s)", detail < 0 ? "reboot" : "life cycle action");
        domain_start(dom, g_steal_pointer(&restart_def), 0, detail < 0, NULL, restart_done);
    } else if (!dom->def) {
        driver_remove(drv, dom);
    }
    if (dom->job && !dom->vm && !restart_def)
        job_end(dom);           /* a destroy job */
}

static const VmProcessCallbacks vm_callbacks = {
    .event = on_vm_event,
    .exited = on_vm_exited,
};

/* ------------------------------------------------------------ start */

typedef struct StartCtx {
    Domain *dom;
    RpcCall *call;
    StartDoneFunc done;
    guint flags;
    gboolean keep_id;
} StartCtx;

static void start_finish(StartCtx *sc, GError *error)
{
    g_autoptr(GError) err = error;
    Domain *dom = sc->dom;

    if (err && dom->drv->closing) {
        /* The daemon is going away in the middle of a start: leave the VM. */
    } else if (err) {
        log_note(dom, "start failed: %s", err->message);
        if (dom->vm) {
            vm_process_kill(dom->vm, SIGKILL, NULL);
            g_clear_pointer(&dom->vm, vm_process_free);
        }
        remove_run_dir(dom->drv, dom->uuidstr);
        g_clear_pointer(&dom->live, domain_def_free);
        g_clear_pointer(&dom->vcpu_tids, g_array_unref);
        dom->id = -1;
        dom->state = RPC_DOMAIN_SHUTOFF;
        dom->reason = SHUTOFF_FAILED;
        if (sc->keep_id)
            emit(dom, RPC_DOMAIN_EVENT_STOPPED, EV_STOPPED_FAILED);
    } else {
        save_status(dom, TRUE);
        if (sc->flags & START_MANAGED_SAVE)
            domain_save_managed_started(dom);
    }
    g_clear_pointer(&dom->incoming, g_free);
    g_clear_pointer(&dom->incoming_extra, g_strfreev);
    dom->incoming_start = NULL;
    if (dom->incoming_timer) {
        g_source_destroy(dom->incoming_timer);
        g_clear_pointer(&dom->incoming_timer, g_source_unref);
    }
    sc->done(dom, sc->call, err);
    if (err && !dom->def)
        driver_remove(dom->drv, dom);
    job_end(dom);
    g_free(sc);
}

static void on_cpus(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque);

static void on_cont(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque)
{
    StartCtx *sc = opaque;
    Domain *dom = sc->dom;

    if (error) {
        start_finish(sc, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED,
                                     "cannot start the vCPUs: %s", error->message));
        return;
    }
    dom->state = RPC_DOMAIN_RUNNING;
    dom->reason = sc->flags & START_RESTORE ? RUNNING_RESTORED : RUNNING_BOOTED;
    if (sc->flags & START_RESTORE) {
        emit(dom, RPC_DOMAIN_EVENT_STARTED, EV_STARTED_RESTORED);
    } else if (!sc->keep_id) {
        /* What libvirtd sends when QEMU leaves -S: RESUMED, then STARTED. */
        emit(dom, RPC_DOMAIN_EVENT_RESUMED, EV_RESUMED_UNPAUSED);
        emit(dom, RPC_DOMAIN_EVENT_STARTED, EV_STARTED_BOOTED);
    }
    /* The vCPU threads exist once they run: ask for their ids now. */
    qmp_client_execute(c, "query-cpus-fast", NULL, dom->drv->start_timeout_ms, on_cpus, sc);
}

static void store_vcpu_tids(Domain *dom, JsonValue *ret)
{
    g_clear_pointer(&dom->vcpu_tids, g_array_unref);
    dom->vcpu_tids = g_array_new(FALSE, TRUE, sizeof(pid_t));
    for (gsize i = 0; json_get_type(ret) == JSON_ARRAY && i < json_array_get_length(ret); i++) {
        JsonValue *cpu = json_array_get_item(ret, i);
        int64_t tid = 0;
        pid_t t;

        if (json_get_type(cpu) == JSON_OBJECT)
            json_object_get_int(cpu, "thread-id", &tid);
        t = (pid_t)tid;
        g_array_append_val(dom->vcpu_tids, t);
    }
}

static void on_cpus(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque)
{
    StartCtx *sc = opaque;
    Domain *dom = sc->dom;

    if (error && error->code == QMP_CLIENT_ERROR_CLOSED) {
        start_finish(sc, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED,
                                     "vireo-vmm closed its monitor: %s", error->message));
        return;
    }
    if (error)
        g_warning("domain '%s': query-cpus-fast: %s", dom->name, error->message);
    else
        store_vcpu_tids(dom, ret);
    if (sc->flags & START_MIGRATE_IN) {
        /* Resumed (or not) by the migration's finish step. */
        dom->state = RPC_DOMAIN_PAUSED;
        dom->reason = PAUSED_MIGRATION;
        emit(dom, RPC_DOMAIN_EVENT_STARTED, EV_STARTED_MIGRATED);
    } else if (sc->flags & START_PAUSED) {
        dom->state = RPC_DOMAIN_PAUSED;
        dom->reason = PAUSED_USER;
        emit(dom, RPC_DOMAIN_EVENT_STARTED,
             sc->flags & START_RESTORE ? EV_STARTED_RESTORED : EV_STARTED_BOOTED);
        emit(dom, RPC_DOMAIN_EVENT_SUSPENDED, EV_SUSPENDED_PAUSED);
    }
    start_finish(sc, NULL);
}

/* The last "vireo-vmm: ..." line of the log: why a start failed, in its words. */
static char *last_vmm_message(const char *log)
{
    g_autofree char *text = NULL;
    gsize len;
    const char *p, *end;

    if (!g_file_get_contents(log, &text, &len, NULL))
        return NULL;
    /* Only the tail matters, and it must not be huge in an error message. */
    p = g_strrstr(text + (len > 65536 ? len - 65536 : 0), "\nvireo-vmm: ");
    if (!p)
        return NULL;
    p += strlen("\nvireo-vmm: ");
    end = strchr(p, '\n');
    return g_strndup(p, MIN((gsize)(end ? end - p : (gssize)strlen(p)), 512));
}

static void start_vcpus(StartCtx *sc);
static void incoming_poll(StartCtx *sc);

static gboolean on_incoming_timer(gpointer opaque)
{
    StartCtx *sc = opaque;

    g_clear_pointer(&sc->dom->incoming_timer, g_source_unref);
    incoming_poll(sc);
    return G_SOURCE_REMOVE;
}

/*
 * vireo-vmm loads the image in its migration thread and leaves "inmigrate"
 * for "paused" when done (it was started with -S); a bad image ends it
 * (on_vm_exited -> restore_failed). Polled: there is no QMP "wait".
 */
static void on_incoming_status(QmpClient *c, JsonValue *ret, const GError *error,
                               gpointer opaque)
{
    StartCtx *sc = opaque;
    Domain *dom = sc->dom;
    const char *status = ret ? json_object_get_string(ret, "status") : NULL;

    if (error && error->code == QMP_CLIENT_ERROR_CLOSED)
        return;                 /* the exit follows: restore_failed() */
    if (error || !status) {
        dom->incoming_start = NULL;
        start_finish(sc, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED, "query-status: %s",
                                     error ? error->message : "no status"));
        return;
    }
    if (!strcmp(status, "inmigrate")) {
        dom->incoming_timer = g_timeout_source_new(20);
        g_source_set_callback(dom->incoming_timer, on_incoming_timer, sc, NULL);
        g_source_attach(dom->incoming_timer, dom->drv->ctx);
        return;
    }
    dom->incoming_start = NULL;
    log_note(dom, "restored from the image (%s)", status);
    start_vcpus(sc);
}

static void incoming_poll(StartCtx *sc)
{
    qmp_client_execute(vm_process_get_qmp(sc->dom->vm), "query-status", NULL,
                       sc->dom->drv->start_timeout_ms, on_incoming_status, sc);
}

static void restore_failed(Domain *dom)
{
    StartCtx *sc = dom->incoming_start;
    g_autofree char *log = daemon_paths_log(dom->drv->paths, dom->name);
    g_autofree char *why = last_vmm_message(log);

    dom->incoming_start = NULL;
    start_finish(sc, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED,
                                 "cannot restore the domain: %s (see %s)",
                                 why ? why : "vireo-vmm ended", log));
}

static void on_start_ready(VmProcess *vm, const char *status, const GError *error,
                           gpointer opaque)
{
    StartCtx *sc = opaque;

    if (error) {
        g_autofree char *log = daemon_paths_log(sc->dom->drv->paths, sc->dom->name);
        g_autofree char *why = last_vmm_message(log);

        start_finish(sc, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED, "%s%s%s (see %s)",
                                     error->message, why ? ": " : "", why ? why : "", log));
        return;
    }
    if (sc->flags & START_RESTORE) {
        sc->dom->incoming_start = sc;
        if (sc->flags & START_MIGRATE_IN)
            migrate_p2p_incoming_listening(sc->dom);
        incoming_poll(sc);
        return;
    }
    start_vcpus(sc);
}

/* After the start or the restore: run the vCPUs, or leave them paused. */
static void start_vcpus(StartCtx *sc)
{
    VmProcess *vm = sc->dom->vm;

    if (sc->flags & START_PAUSED)
        qmp_client_execute(vm_process_get_qmp(vm), "query-cpus-fast", NULL,
                           sc->dom->drv->start_timeout_ms, on_cpus, sc);
    else
        qmp_client_execute(vm_process_get_qmp(vm), "cont", NULL,
                           sc->dom->drv->start_timeout_ms, on_cont, sc);
}

static int open_log(Domain *dom, GError **error)
{
    g_autofree char *path = daemon_paths_log(dom->drv->paths, dom->name);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0) {
        int saved = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot open log file '%s': %s", path, g_strerror(saved));
    }
    return fd;
}

/*
 * Starts vireo-vmm for @def (taken; becomes the live definition). The
 * domain's job covers the whole start; @done runs once, then the job ends.
 * @keep_id: a restart of a running domain (reboot, life cycle action).
 */
static void domain_start(Domain *dom, DomainDef *def, guint flags, gboolean keep_id,
                         RpcCall *call, StartDoneFunc done)
{
    DomainDriver *drv = dom->drv;
    StartCtx *sc = g_new0(StartCtx, 1);
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = daemon_paths_vm_dir(drv->paths, dom->uuidstr);
    g_autofree char *qmp = daemon_paths_vm_file(drv->paths, dom->uuidstr, "qmp.sock");
    g_autofree char *console = daemon_paths_vm_file(drv->paths, dom->uuidstr, "console.sock");
    VmmArgvPaths vp = { .vmm = drv->vmm_path, .qmp_socket = qmp, .console_socket = console };
    g_auto(GStrv) argv = NULL;
    g_autofree char *cmd = NULL;
    autoclose int log_fd = -1;
    ProcStat ps;

    sc->dom = dom;
    sc->call = call;
    sc->done = done;
    sc->flags = flags;
    sc->keep_id = keep_id;
    job_begin(dom);
    dom->live = def;
    dom->id = keep_id && dom->id >= 0 ? dom->id : drv->next_id++;
    def->id = dom->id;

    argv = vmm_argv_build(def, &vp, drv->caps, &err);
    if (!argv)
        goto fail;
    if (flags & START_RESTORE) {
        guint n = g_strv_length(argv);
        guint extra = dom->incoming_extra ? g_strv_length(dom->incoming_extra) : 0;

        g_assert(dom->incoming);
        argv = g_renew(char *, argv, n + extra + 3);
        for (guint i = 0; i < extra; i++)
            argv[n++] = g_strdup(dom->incoming_extra[i]);
        argv[n] = g_strdup("--incoming");
        argv[n + 1] = g_strdup(dom->incoming);
        argv[n + 2] = NULL;
    }
    remove_run_dir(drv, dom->uuidstr);
    if (g_mkdir_with_parents(dir, 0700) < 0) {
        int saved = errno;

        g_set_error(&err, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot create '%s': %s", dir, g_strerror(saved));
        goto fail;
    }
    log_fd = open_log(dom, &err);
    if (log_fd < 0)
        goto fail;
    cmd = g_strjoinv(" ", argv);
    log_note(dom, "starting: %s", cmd);
    dom->vm = vm_process_spawn(drv->ctx, argv, log_fd, qmp,
                               vmm_argv_console_bridged(def) ? console : NULL,
                               &vm_callbacks, dom, &err);
    if (!dom->vm)
        goto fail;
    dom->started_at = g_get_real_time() / G_USEC_PER_SEC;
    dom->start_ticks = proc_stat_read(vm_process_get_pid(dom->vm), 0, &ps) ? ps.start_ticks : 0;
    dom->has_balloon = def->memballoon && strcmp(def->memballoon->model, "none") != 0;
    /* On disk before anything can go wrong: a daemon restarted now finds it. */
    save_status(dom, FALSE);
    vm_process_wait_ready(dom->vm, drv->start_timeout_ms, on_start_ready, sc);
    return;

fail:
    start_finish(sc, g_steal_pointer(&err));
}

/* ------------------------------------------------------------ reconnect */

typedef struct ReconnectCtx {
    Domain *dom;
    DomainStatus *st;
} ReconnectCtx;

static void on_reconnect_cpus(QmpClient *c, JsonValue *ret, const GError *error,
                              gpointer opaque)
{
    Domain *dom = opaque;

    if (!error && dom->vm)
        store_vcpu_tids(dom, ret);
    domain_unref(dom);
}

static void on_reconnect_ready(VmProcess *vm, const char *status, const GError *error,
                               gpointer opaque)
{
    ReconnectCtx *rc = opaque;
    Domain *dom = rc->dom;

    if (error) {
        /* Alive but not answering: keep it, commands needing QMP will fail. */
        g_warning("domain '%s': cannot reconnect to vireo-vmm %d: %s", dom->name,
                  vm_process_get_pid(vm), error->message);
        log_note(dom, "reconnect failed: %s", error->message);
        if (vm_process_has_exited(vm)) {
            g_clear_pointer(&dom->vm, vm_process_free);
            remove_run_dir(dom->drv, dom->uuidstr);
            g_clear_pointer(&dom->live, domain_def_free);
            dom->id = -1;
            dom->state = RPC_DOMAIN_SHUTOFF;
            dom->reason = SHUTOFF_UNKNOWN;
            if (!dom->def)
                driver_remove(dom->drv, dom);
        }
    } else if (!strcmp(status, "prelaunch") && !rc->st->start_complete) {
        /* The earlier daemon died in the middle of the start: finish it off. */
        log_note(dom, "reconnected to a start that never completed; stopping it");
        dom->stop_intent = STOP_DESTROY;
        vm_process_kill(vm, SIGKILL, NULL);
    } else {
        gboolean paused = strcmp(status, "running") != 0;

        log_note(dom, "reconnected to vireo-vmm %d (%s)", vm_process_get_pid(vm), status);
        if (rc->st->migration_out == DOMAIN_MIGRATION_OUT_PERFORMING) {
            /*
             * The earlier daemon stopped before asking the destination to
             * finish: the destination never ran the VM and gives up when
             * our connection goes. Take the VM back here.
             */
            log_note(dom, "an outgoing migration was left unfinished; resuming the domain here");
            qmp_client_execute(vm_process_get_qmp(vm), "migrate_cancel", NULL, 5000, NULL, NULL);
            if (!strcmp(status, "postmigrate")) {
                qmp_client_execute(vm_process_get_qmp(vm), "cont", NULL, 10000, NULL, NULL);
                paused = FALSE;
            }
        } else if (rc->st->migration_out == DOMAIN_MIGRATION_OUT_FINISHING && paused) {
            /* The destination may run it: resuming here could run the VM twice. */
            log_note(dom, "an outgoing migration stopped during its finish: the domain stays "
                     "paused here; check the destination before resuming it");
        }
        if (paused)
            dom->state = RPC_DOMAIN_PAUSED,
            dom->reason = rc->st->migration_out ? PAUSED_MIGRATION :
                          rc->st->state == RPC_DOMAIN_PAUSED ? rc->st->reason : PAUSED_UNKNOWN;
        else
            dom->state = RPC_DOMAIN_RUNNING,
            dom->reason = rc->st->state == RPC_DOMAIN_RUNNING ? rc->st->reason : RUNNING_UNKNOWN;
        qmp_client_execute(vm_process_get_qmp(vm), "query-cpus-fast", NULL, 5000,
                           on_reconnect_cpus, domain_ref(dom));
        save_status(dom, TRUE);
    }
    domain_status_free(rc->st);
    g_free(rc);
    job_end(dom);
}

/* A VM directory left by an earlier daemon. */
static void reconnect_one(DomainDriver *drv, const char *uuid)
{
    g_autofree char *path = daemon_paths_vm_file(drv->paths, uuid, "state");
    g_autofree char *qmp = daemon_paths_vm_file(drv->paths, uuid, "qmp.sock");
    g_autofree char *console = daemon_paths_vm_file(drv->paths, uuid, "console.sock");
    g_autofree char *qmp_arg = g_strconcat("unix:", qmp, NULL);
    g_autoptr(GError) err = NULL;
    g_autoptr(DomainStatus) st = domain_status_load(path, &err);
    g_autoptr(DomainDef) live = NULL;
    Domain *dom;
    ProcStat ps;
    ReconnectCtx *rc;

    if (!st) {
        g_warning("ignoring %s/%s: %s", drv->paths->vm_run_dir, uuid, err->message);
        return;
    }
    dom = g_hash_table_lookup(drv->by_uuid, uuid);
    if (!proc_stat_read(st->pid, 0, &ps) || ps.state == 'Z' || ps.start_ticks != st->start_ticks ||
        !proc_cmdline_has_arg(st->pid, qmp_arg)) {
        /* It ended while no daemon watched: its reason is lost. */
        if (dom)
            log_note(dom, "vireo-vmm %d ended while the daemon was away", st->pid);
        remove_run_dir(drv, uuid);
        return;
    }
    live = domain_def_parse_string(st->live_xml, 0, &err);
    if (!live) {
        g_warning("domain '%s' (vireo-vmm %d): bad live definition, left alone: %s", st->name,
                  st->pid, err->message);
        return;
    }
    if (!dom) {
        dom = domain_new(drv, st->name, st->uuid);
        driver_add(drv, dom);
    }
    dom->live = g_steal_pointer(&live);
    dom->id = st->id;
    dom->live->id = st->id;
    dom->state = st->state;
    dom->reason = st->reason;
    dom->started_at = st->started_at;
    dom->start_ticks = st->start_ticks;
    dom->has_balloon = dom->live->memballoon && strcmp(dom->live->memballoon->model, "none");
    drv->next_id = MAX(drv->next_id, st->id + 1);
    dom->vm = vm_process_adopt(drv->ctx, st->pid, qmp,
                               vmm_argv_console_bridged(dom->live) ? console : NULL,
                               &vm_callbacks, dom, &err);
    if (!dom->vm) {
        g_warning("domain '%s': %s", dom->name, err->message);
        g_clear_pointer(&dom->live, domain_def_free);
        dom->id = -1;
        return;
    }
    job_begin(dom);
    rc = g_new0(ReconnectCtx, 1);
    rc->dom = dom;
    rc->st = g_steal_pointer(&st);
    vm_process_wait_ready(dom->vm, drv->start_timeout_ms, on_reconnect_ready, rc);
}

static void reconnect_all(DomainDriver *drv)
{
    g_autoptr(GDir) dir = g_dir_open(drv->paths->vm_run_dir, 0, NULL);
    const char *name;
    uint8_t uuid[16];

    while (dir && (name = g_dir_read_name(dir)))
        if (conf_uuid_parse(name, uuid))
            reconnect_one(drv, name);
}

/* ------------------------------------------------------------ loading */

static void load_definitions(DomainDriver *drv)
{
    g_autoptr(GDir) dir = g_dir_open(drv->paths->domains_dir, 0, NULL);
    const char *file;

    while (dir && (file = g_dir_read_name(dir))) {
        g_autofree char *path = g_build_filename(drv->paths->domains_dir, file, NULL);
        g_autofree char *link = NULL;
        g_autoptr(GError) err = NULL;
        g_autoptr(DomainDef) def = NULL;
        Domain *dom;

        if (!g_str_has_suffix(file, ".xml") || file[0] == '.' ||
            !g_file_test(path, G_FILE_TEST_IS_REGULAR))
            continue;
        def = domain_def_parse_file(path, DOMAIN_DEF_PARSE_INACTIVE, &err);
        if (!def) {
            g_warning("ignoring definition %s: %s", path, err->message);
            continue;
        }
        if (strlen(file) != strlen(def->name) + 4 || strncmp(file, def->name, strlen(def->name))) {
            g_warning("ignoring definition %s: it names domain '%s'", path, def->name);
            continue;
        }
        dom = domain_new(drv, def->name, def->uuid);
        if (g_hash_table_contains(drv->by_uuid, dom->uuidstr)) {
            g_warning("ignoring definition %s: UUID %s is used twice", path, dom->uuidstr);
            domain_unref(dom);
            continue;
        }
        dom->def = g_steal_pointer(&def);
        link = daemon_paths_autostart_link(drv->paths, dom->name);
        dom->autostart = g_file_test(link, G_FILE_TEST_EXISTS);
        driver_add(drv, dom);
    }
}

/* ------------------------------------------------------------ lookups and lists */

static void reply_domain(RpcCall *call, Domain *dom)
{
    RemoteDomainLookupByNameRet ret;

    to_wire(dom, &ret.dom);
    rpc_call_reply(call, &ret);
}

static void h_lookup_by_name(RpcCall *call, gpointer args, gpointer opaque)
{
    DomainDriver *drv = opaque;
    RemoteDomainLookupByNameArgs *a = args;
    Domain *dom = g_hash_table_lookup(drv->by_name, a->name);

    if (!dom) {
        rpc_call_fail(call, RPC_ERR_NO_DOMAIN, "no domain with matching name '%s'", a->name);
        return;
    }
    reply_domain(call, dom);
}

static void h_lookup_by_uuid(RpcCall *call, gpointer args, gpointer opaque)
{
    DomainDriver *drv = opaque;
    RemoteDomainLookupByUuidArgs *a = args;
    char uuid[CONF_UUID_STRING_LEN];
    Domain *dom;

    conf_uuid_format(a->uuid, uuid);
    dom = g_hash_table_lookup(drv->by_uuid, uuid);
    if (!dom) {
        rpc_call_fail(call, RPC_ERR_NO_DOMAIN, "no domain with matching uuid '%s'", uuid);
        return;
    }
    reply_domain(call, dom);
}

static void h_lookup_by_id(RpcCall *call, gpointer args, gpointer opaque)
{
    DomainDriver *drv = opaque;
    RemoteDomainLookupByIdArgs *a = args;

    for (guint i = 0; a->id >= 0 && i < drv->domains->len; i++) {
        Domain *dom = drv->domains->pdata[i];

        if (dom->id == a->id) {
            reply_domain(call, dom);
            return;
        }
    }
    rpc_call_fail(call, RPC_ERR_NO_DOMAIN, "no domain with matching id %d", a->id);
}

static gboolean list_match(const Domain *d, guint flags)
{
    gboolean act = is_active(d), pers = d->def != NULL;

    if ((flags & (LIST_ACTIVE | LIST_INACTIVE)) &&
        !((flags & LIST_ACTIVE && act) || (flags & LIST_INACTIVE && !act)))
        return FALSE;
    if ((flags & (LIST_PERSISTENT | LIST_TRANSIENT)) &&
        !((flags & LIST_PERSISTENT && pers) || (flags & LIST_TRANSIENT && !pers)))
        return FALSE;
    if (flags & (LIST_RUNNING | LIST_PAUSED | LIST_SHUTOFF | LIST_OTHER)) {
        gboolean ok = (flags & LIST_RUNNING && d->state == RPC_DOMAIN_RUNNING) ||
                      (flags & LIST_PAUSED && d->state == RPC_DOMAIN_PAUSED) ||
                      (flags & LIST_SHUTOFF && d->state == RPC_DOMAIN_SHUTOFF) ||
                      (flags & LIST_OTHER && d->state != RPC_DOMAIN_RUNNING &&
                       d->state != RPC_DOMAIN_PAUSED && d->state != RPC_DOMAIN_SHUTOFF);
        if (!ok)
            return FALSE;
    }
    if ((flags & (LIST_MANAGEDSAVE | LIST_NO_MANAGEDSAVE))) {
        gboolean ms = !act && domain_save_has_managed(d->drv, d->name);

        if (!((flags & LIST_MANAGEDSAVE && ms) || (flags & LIST_NO_MANAGEDSAVE && !ms)))
            return FALSE;
    }
    if ((flags & (LIST_AUTOSTART | LIST_NO_AUTOSTART)) &&
        !((flags & LIST_AUTOSTART && d->autostart) || (flags & LIST_NO_AUTOSTART && !d->autostart)))
        return FALSE;
    if ((flags & LIST_HAS_SNAPSHOT) && !(flags & LIST_NO_SNAPSHOT))
        return FALSE;
    if ((flags & LIST_HAS_CHECKPOINT) && !(flags & LIST_NO_CHECKPOINT))
        return FALSE;
    return TRUE;
}

static void h_list_all(RpcCall *call, gpointer args, gpointer opaque)
{
    DomainDriver *drv = opaque;
    RemoteConnectListAllDomainsArgs *a = args;
    g_autofree RemoteNonnullDomain *doms = g_new0(RemoteNonnullDomain, drv->domains->len + 1);
    RemoteConnectListAllDomainsRet ret = { .domains = doms };

    for (guint i = 0; i < drv->domains->len; i++) {
        Domain *d = drv->domains->pdata[i];

        if (list_match(d, a->flags))
            to_wire(d, &doms[ret.ret++]);
    }
    ret.n_domains = a->need_results ? ret.ret : 0;
    rpc_call_reply(call, &ret);
}

static guint count_active(DomainDriver *drv, gboolean active)
{
    guint n = 0;

    for (guint i = 0; i < drv->domains->len; i++)
        n += is_active(drv->domains->pdata[i]) == active;
    return n;
}

static void h_num_of_domains(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectNumOfDomainsRet ret = { .num = count_active(opaque, TRUE) };

    rpc_call_reply(call, &ret);
}

static void h_num_of_defined(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectNumOfDefinedDomainsRet ret = { .num = count_active(opaque, FALSE) };

    rpc_call_reply(call, &ret);
}

static void h_list_domains(RpcCall *call, gpointer args, gpointer opaque)
{
    DomainDriver *drv = opaque;
    RemoteConnectListDomainsArgs *a = args;
    g_autofree gint32 *ids = g_new0(gint32, drv->domains->len + 1);
    RemoteConnectListDomainsRet ret = { .ids = ids };

    for (guint i = 0; i < drv->domains->len && (gint32)ret.n_ids < a->maxids; i++) {
        Domain *d = drv->domains->pdata[i];

        if (is_active(d))
            ids[ret.n_ids++] = d->id;
    }
    rpc_call_reply(call, &ret);
}

static void h_list_defined(RpcCall *call, gpointer args, gpointer opaque)
{
    DomainDriver *drv = opaque;
    RemoteConnectListDefinedDomainsArgs *a = args;
    g_autofree char **names = g_new0(char *, drv->domains->len + 1);
    RemoteConnectListDefinedDomainsRet ret = { .names = names };

    for (guint i = 0; i < drv->domains->len && (gint32)ret.n_names < a->maxnames; i++) {
        Domain *d = drv->domains->pdata[i];

        if (!is_active(d))
            names[ret.n_names++] = d->name;
    }
    rpc_call_reply(call, &ret);
}

/* ------------------------------------------------------------ define / undefine */

static DomainDef *parse_xml(RpcCall *call, const char *xml, unsigned flags)
{
    g_autoptr(GError) err = NULL;
    DomainDef *def = domain_def_parse_string(xml, flags, &err);

    if (!def)
        rpc_call_fail(call, RPC_ERR_XML_ERROR, "%s", err->message);
    return def;
}

/*
 * libvirt's checks against existing domains (virDomainObjListAddLocked):
 * same name with another UUID, or same UUID with another name.
 */
static gboolean check_identity(DomainDriver *drv, RpcCall *call, const DomainDef *def,
                               Domain **found)
{
    char uuid[CONF_UUID_STRING_LEN];
    Domain *by_uuid, *by_name;

    conf_uuid_format(def->uuid, uuid);
    by_uuid = g_hash_table_lookup(drv->by_uuid, uuid);
    by_name = g_hash_table_lookup(drv->by_name, def->name);
    if (by_uuid && strcmp(by_uuid->name, def->name) != 0) {
        rpc_call_fail(call, RPC_ERR_OPERATION_FAILED, "domain '%s' is already defined with uuid %s",
                      by_uuid->name, uuid);
        return FALSE;
    }
    if (!by_uuid && by_name) {
        rpc_call_fail(call, RPC_ERR_OPERATION_FAILED, "domain '%s' already exists with uuid %s",
                      by_name->name, by_name->uuidstr);
        return FALSE;
    }
    *found = by_uuid;
    return TRUE;
}

static void define_common(DomainDriver *drv, RpcCall *call, const char *xml, guint flags)
{
    g_autoptr(DomainDef) def = NULL;
    g_autoptr(GError) err = NULL;
    Domain *dom = NULL;
    gboolean existed;

    if (!check_flags(call, flags, DEFINE_VALIDATE, "vireoDomainDefineXMLFlags"))
        return;
    def = parse_xml(call, xml, DOMAIN_DEF_PARSE_INACTIVE);
    if (!def || !check_identity(drv, call, def, &dom))
        return;
    if (!save_definition(drv, def, &err)) {
        rpc_call_fail_gerror(call, err);
        return;
    }
    existed = dom != NULL;
    if (!dom) {
        dom = domain_new(drv, def->name, def->uuid);
        driver_add(drv, dom);
    }
    /* Over a running domain this becomes the next start's definition. */
    existed = existed && dom->def != NULL;
    g_clear_pointer(&dom->def, domain_def_free);
    dom->def = g_steal_pointer(&def);
    if (dom->vm)
        save_status(dom, TRUE);         /* persistent now */
    reply_domain(call, dom);
    emit(dom, RPC_DOMAIN_EVENT_DEFINED, existed ? EV_DEFINED_UPDATED : EV_DEFINED_ADDED);
}

static void h_define_xml(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainDefineXmlArgs *a = args;

    define_common(opaque, call, a->xml, 0);
}

static void h_define_xml_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainDefineXmlFlagsArgs *a = args;

    define_common(opaque, call, a->xml, a->flags);
}

static void undefine_common(RpcCall *call, gpointer args, gpointer opaque, guint flags,
                            RpcHandlerFunc self)
{
    DomainDriver *drv = opaque;
    Domain *dom = get_domain(drv, call, args);
    g_autofree char *path = NULL;
    g_autoptr(GError) err = NULL;

    if (!dom || defer_if_busy(dom, call, self, args))
        return;
    if (!check_flags(call, flags, UNDEFINE_KNOWN_FLAGS, "vireoDomainUndefineFlags"))
        return;
    if (!dom->def) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s", "cannot undefine transient domain");
        return;
    }
    /* Issue #5: refuse (libvirt would make the running domain transient). */
    if (is_active(dom)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s",
                      "cannot undefine a running domain: destroy or shut it down first");
        return;
    }
    if (domain_save_has_managed(drv, dom->name)) {
        g_autofree char *image = domain_save_managed_path(drv, dom->name);

        /* libvirt's rule: the image goes only when the caller says so. */
        if (!(flags & 1 /* VIR_DOMAIN_UNDEFINE_MANAGED_SAVE */)) {
            rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s",
                          "Refusing to undefine while domain managed save image exists");
            return;
        }
        if (unlink(image) < 0 && errno != ENOENT) {
            rpc_call_fail(call, RPC_ERR_SYSTEM_ERROR, "Failed to remove domain managed save "
                          "image '%s': %s", image, g_strerror(errno));
            return;
        }
    }
    path = daemon_paths_definition(drv->paths, dom->name);
    if (unlink(path) < 0 && errno != ENOENT) {
        int saved = errno;

        rpc_call_fail(call, RPC_ERR_SYSTEM_ERROR, "cannot remove config %s: %s", path,
                      g_strerror(saved));
        return;
    }
    set_autostart_link(drv, dom->name, FALSE, NULL);
    rpc_call_reply(call, NULL);
    emit(dom, RPC_DOMAIN_EVENT_UNDEFINED, EV_UNDEFINED_REMOVED);
    driver_remove(drv, dom);
}

static void h_undefine(RpcCall *call, gpointer args, gpointer opaque)
{
    undefine_common(call, args, opaque, 0, h_undefine);
}

static void h_undefine_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    undefine_common(call, args, opaque, ((RemoteDomainUndefineFlagsArgs *)args)->flags,
                    h_undefine_flags);
}

/* ------------------------------------------------------------ start / create */

static void done_void(Domain *dom, RpcCall *call, const GError *error)
{
    if (error)
        fail_gerror(call, error);
    else
        rpc_call_reply(call, NULL);
}

static void done_dom(Domain *dom, RpcCall *call, const GError *error)
{
    if (error)
        fail_gerror(call, error);
    else
        reply_domain(call, dom);
}

static void create_common(RpcCall *call, gpointer args, gpointer opaque, guint flags,
                          StartDoneFunc done, RpcHandlerFunc self)
{
    DomainDriver *drv = opaque;
    Domain *dom = get_domain(drv, call, args);
    g_autoptr(GError) err = NULL;
    DomainDef *def;

    if (!dom || defer_if_busy(dom, call, self, args))
        return;
    if (!check_flags(call, flags, START_PAUSED | START_AUTODESTROY | START_BYPASS_CACHE |
                     START_FORCE_BOOT | START_VALIDATE | START_RESET_NVRAM,
                     "vireoDomainCreateWithFlags"))
        return;
    if (is_active(dom)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s", "domain is already running");
        return;
    }
    def = domain_def_copy(dom->def, &err);
    if (!def) {
        rpc_call_fail_gerror(call, err);
        return;
    }
    /* As libvirt: a managed save image is restored instead of a boot. */
    if (!domain_save_prepare_managed_start(dom, call, &def, &flags)) {
        domain_def_free(def);
        return;
    }
    domain_start(dom, def, flags, FALSE, call, done);
}

static void h_create(RpcCall *call, gpointer args, gpointer opaque)
{
    create_common(call, args, opaque, 0, done_void, h_create);
}

static void h_create_with_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    create_common(call, args, opaque, ((RemoteDomainCreateWithFlagsArgs *)args)->flags,
                  done_dom, h_create_with_flags);
}

static void h_create_xml(RpcCall *call, gpointer args, gpointer opaque)
{
    DomainDriver *drv = opaque;
    RemoteDomainCreateXmlArgs *a = args;
    g_autoptr(DomainDef) def = NULL;
    Domain *dom = NULL;

    if (!check_flags(call, a->flags, START_PAUSED | START_AUTODESTROY | START_BYPASS_CACHE |
                     START_VALIDATE | START_RESET_NVRAM, "vireoDomainCreateXML"))
        return;
    def = parse_xml(call, a->xml_desc, DOMAIN_DEF_PARSE_INACTIVE);
    if (!def || !check_identity(drv, call, def, &dom))
        return;
    if (dom && defer_if_busy(dom, call, h_create_xml, args))
        return;
    if (dom && is_active(dom)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "domain '%s' is already active",
                      dom->name);
        return;
    }
    if (!dom) {
        dom = domain_new(drv, def->name, def->uuid);
        driver_add(drv, dom);
    }
    domain_start(dom, g_steal_pointer(&def), a->flags, FALSE, call, done_dom);
}

/* ------------------------------------------------------------ stop */

static gboolean on_kill_timer(gpointer data)
{
    Domain *dom = data;

    g_clear_pointer(&dom->kill_timer, g_source_unref);
    if (dom->vm) {
        log_note(dom, "vireo-vmm %d did not end on SIGTERM; sending SIGKILL",
                 vm_process_get_pid(dom->vm));
        vm_process_kill(dom->vm, SIGKILL, NULL);
    }
    return G_SOURCE_REMOVE;
}

static void destroy_common(RpcCall *call, gpointer args, gpointer opaque, guint flags,
                           RpcHandlerFunc self)
{
    DomainDriver *drv = opaque;
    Domain *dom = get_domain(drv, call, args);
    g_autoptr(GError) err = NULL;

    if (!dom || defer_if_busy(dom, call, self, args))
        return;
    if (!check_flags(call, flags, DESTROY_GRACEFUL, "vireoDomainDestroyFlags") ||
        !check_active(call, dom))
        return;
    job_begin(dom);
    dom->stop_intent = STOP_DESTROY;
    g_ptr_array_add(dom->stop_calls, call);
    log_note(dom, "destroy requested");
    /* SIGTERM: vireo-vmm stops the vCPUs and says SHUTDOWN (host-signal), as QEMU. */
    if (!vm_process_kill(dom->vm, SIGTERM, &err))
        g_warning("domain '%s': %s", dom->name, err->message);
    if (!(flags & DESTROY_GRACEFUL)) {
        dom->kill_timer = g_timeout_source_new(drv->destroy_timeout_ms);
        g_source_set_callback(dom->kill_timer, on_kill_timer, dom, NULL);
        g_source_attach(dom->kill_timer, drv->ctx);
    }
}

static void h_destroy(RpcCall *call, gpointer args, gpointer opaque)
{
    destroy_common(call, args, opaque, 0, h_destroy);
}

static void h_destroy_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    destroy_common(call, args, opaque, ((RemoteDomainDestroyFlagsArgs *)args)->flags,
                   h_destroy_flags);
}

/* A QMP command whose success is the whole answer. */
typedef struct QmpCallCtx {
    RpcCall *call;
    Domain *dom;
    const char *what;
} QmpCallCtx;

static void on_qmp_call_reply(QmpClient *c, JsonValue *ret, const GError *error,
                              gpointer opaque)
{
    QmpCallCtx *qc = opaque;

    if (error && error->code == QMP_CLIENT_ERROR_CLOSED)
        rpc_call_fail(qc->call, RPC_ERR_OPERATION_INVALID, "%s", "domain is not running");
    else if (error)
        rpc_call_fail(qc->call, RPC_ERR_OPERATION_FAILED, "%s: %s", qc->what, error->message);
    else
        rpc_call_reply(qc->call, NULL);
    domain_unref(qc->dom);
    g_free(qc);
}

static void qmp_call(RpcCall *call, Domain *dom, const char *cmd, JsonValue *args,
                     const char *what)
{
    QmpCallCtx *qc = g_new0(QmpCallCtx, 1);
    QmpClient *qmp = dom->vm ? vm_process_get_qmp(dom->vm) : NULL;

    if (!qmp) {
        json_free(args);
        g_free(qc);
        rpc_call_fail(call, RPC_ERR_OPERATION_FAILED, "%s", "no connection to vireo-vmm");
        return;
    }
    qc->call = call;
    qc->dom = domain_ref(dom);
    qc->what = what;
    qmp_client_execute(qmp, cmd, args, 30000, on_qmp_call_reply, qc);
}

static void shutdown_common(RpcCall *call, gpointer args, gpointer opaque, guint flags,
                            RpcHandlerFunc self)
{
    Domain *dom = get_domain(opaque, call, args);

    if (!dom || defer_if_busy(dom, call, self, args))
        return;
    if (!check_flags(call, flags, SHUTDOWN_ACPI | SHUTDOWN_AGENT | 4 | 8 | 16,
                     "vireoDomainShutdownFlags") || !check_active(call, dom))
        return;
    if (flags && !(flags & SHUTDOWN_ACPI)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_UNSUPPORTED, "%s",
                      "only the ACPI power button shutdown mode is supported by Vireo");
        return;
    }
    log_note(dom, "shutdown requested (ACPI power button)");
    qmp_call(call, dom, "system_powerdown", NULL, "system_powerdown");
}

static void h_shutdown(RpcCall *call, gpointer args, gpointer opaque)
{
    shutdown_common(call, args, opaque, 0, h_shutdown);
}

static void h_shutdown_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    shutdown_common(call, args, opaque, ((RemoteDomainShutdownFlagsArgs *)args)->flags,
                    h_shutdown_flags);
}

static void h_reboot(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainRebootArgs *a = args;
    Domain *dom = get_domain(opaque, call, args);

    if (!dom || defer_if_busy(dom, call, h_reboot, args))
        return;
    if (!check_flags(call, a->flags, 1 | 2 | 4 | 8 | 16, "vireoDomainReboot") ||
        !check_active(call, dom))
        return;
    if (a->flags && !(a->flags & SHUTDOWN_ACPI)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_UNSUPPORTED, "%s",
                      "only the ACPI power button reboot mode is supported by Vireo");
        return;
    }
    /* libvirt's "fake reboot": the power button, and a new start once it is off. */
    log_note(dom, "reboot requested (ACPI power button, then start again)");
    dom->stop_intent = STOP_FAKE_REBOOT;
    qmp_call(call, dom, "system_powerdown", NULL, "system_powerdown");
}

static void h_reset(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainResetArgs *a = args;
    Domain *dom = get_domain(opaque, call, args);

    if (!dom || defer_if_busy(dom, call, h_reset, args))
        return;
    if (!check_flags(call, a->flags, 0, "vireoDomainReset") || !check_active(call, dom))
        return;
    log_note(dom, "reset requested");
    qmp_call(call, dom, "system_reset", NULL, "system_reset");
}

static void h_suspend(RpcCall *call, gpointer args, gpointer opaque)
{
    Domain *dom = get_domain(opaque, call, args);

    /* virsh migrate --timeout: pausing makes a migration converge, so it may not wait. */
    if (dom && dom->mig_out && migrate_p2p_suspend(dom, call))
        return;
    if (!dom || defer_if_busy(dom, call, h_suspend, args) || !check_active(call, dom))
        return;
    if (dom->state == RPC_DOMAIN_PAUSED) {
        rpc_call_reply(call, NULL);
        return;
    }
    qmp_call(call, dom, "stop", NULL, "stop");
}

static void h_resume(RpcCall *call, gpointer args, gpointer opaque)
{
    Domain *dom = get_domain(opaque, call, args);

    if (!dom || defer_if_busy(dom, call, h_resume, args) || !check_active(call, dom))
        return;
    if (dom->state != RPC_DOMAIN_PAUSED) {
        rpc_call_reply(call, NULL);
        return;
    }
    qmp_call(call, dom, "cont", NULL, "cont");
}

/* ------------------------------------------------------------ queries */

static guint64 cpu_time_ns(Domain *dom)
{
    ProcStat ps;

    if (!dom->vm || !proc_stat_read(vm_process_get_pid(dom->vm), 0, &ps))
        return 0;
    return ps.cpu_time_ns;
}

static void h_get_info(RpcCall *call, gpointer args, gpointer opaque)
{
    Domain *dom = get_domain(opaque, call, args);
    RemoteDomainGetInfoRet ret = { 0 };
    const DomainDef *def;

    if (!dom)
        return;
    def = cur_def(dom);
    ret.state = dom->state;
    ret.maxMem = def->memory_kib;
    ret.memory = def->current_memory_kib;
    ret.nrVirtCpu = def->vcpus_current;
    ret.cpuTime = cpu_time_ns(dom);
    rpc_call_reply(call, &ret);
}

static void h_get_state(RpcCall *call, gpointer args, gpointer opaque)
{
    Domain *dom = get_domain(opaque, call, args);
    RemoteDomainGetStateRet ret;

    if (!dom)
        return;
    ret.state = dom->state;
    ret.reason = dom->reason;
    rpc_call_reply(call, &ret);
}

static void h_get_xml_desc(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainGetXmlDescArgs *a = args;
    Domain *dom = get_domain(opaque, call, args);
    g_autofree char *xml = NULL;
    RemoteDomainGetXmlDescRet ret;
    const DomainDef *def;
    unsigned fmt = 0;

    if (!dom || !check_flags(call, a->flags, XML_SECURE | XML_INACTIVE | XML_UPDATE_CPU |
                             XML_MIGRATABLE, "vireoDomainGetXMLDesc"))
        return;
    if ((a->flags & XML_SECURE) && rpc_server_client_is_readonly(rpc_call_get_client(call))) {
        rpc_call_fail(call, RPC_ERR_OPERATION_DENIED, "%s",
                      "virDomainGetXMLDesc with secure flag");
        return;
    }
    def = (a->flags & XML_INACTIVE) && dom->def ? dom->def : cur_def(dom);
    if ((a->flags & (XML_INACTIVE | XML_MIGRATABLE)) || !dom->live || def != dom->live)
        fmt |= DOMAIN_DEF_FORMAT_INACTIVE;
    if (a->flags & XML_SECURE)
        fmt |= DOMAIN_DEF_FORMAT_SECURE;
    xml = domain_def_format(def, fmt);
    ret.xml = xml;
    rpc_call_reply(call, &ret);
}

static void h_get_os_type(RpcCall *call, gpointer args, gpointer opaque)
{
    Domain *dom = get_domain(opaque, call, args);
    RemoteDomainGetOsTypeRet ret;

    if (!dom)
        return;
    ret.type = cur_def(dom)->os.type;
    rpc_call_reply(call, &ret);
}

#define INT_QUERY(fn, RetT, field, expr)                                     \
    static void fn(RpcCall *call, gpointer args, gpointer opaque)           \
    {                                                                        \
        Domain *dom = get_domain(opaque, call, args);                        \
        RetT ret;                                                            \
                                                                             \
        if (!dom)                                                            \
            return;                                                          \
        ret.field = (expr);                                                  \
        rpc_call_reply(call, &ret);                                          \
    }

INT_QUERY(h_is_active, RemoteDomainIsActiveRet, active, is_active(dom))
INT_QUERY(h_is_persistent, RemoteDomainIsPersistentRet, persistent, dom->def != NULL)
INT_QUERY(h_is_updated, RemoteDomainIsUpdatedRet, updated, 0)
INT_QUERY(h_get_autostart, RemoteDomainGetAutostartRet, autostart, dom->autostart)
INT_QUERY(h_has_managed_save, RemoteDomainHasManagedSaveImageRet, result,
          domain_save_has_managed(dom->drv, dom->name))
INT_QUERY(h_snapshot_num, RemoteDomainSnapshotNumRet, num, 0)
INT_QUERY(h_get_max_memory, RemoteDomainGetMaxMemoryRet, memory, cur_def(dom)->memory_kib)
INT_QUERY(h_get_max_vcpus, RemoteDomainGetMaxVcpusRet, num, cur_def(dom)->vcpus)

static void h_get_security_label(RpcCall *call, gpointer args, gpointer opaque)
{
    Domain *dom = get_domain(opaque, call, args);
    char empty[] = "";
    RemoteDomainGetSecurityLabelRet ret = { .n_label = 1, .label = empty, .enforcing = 0 };

    if (dom)
        rpc_call_reply(call, &ret);
}

static void h_get_messages(RpcCall *call, gpointer args, gpointer opaque)
{
    Domain *dom = get_domain(opaque, call, args);
    RemoteDomainGetMessagesRet ret = { 0 };

    if (dom)
        rpc_call_reply(call, &ret);
}

static void h_set_autostart(RpcCall *call, gpointer args, gpointer opaque)
{
    DomainDriver *drv = opaque;
    RemoteDomainSetAutostartArgs *a = args;
    Domain *dom = get_domain(drv, call, args);
    g_autoptr(GError) err = NULL;

    if (!dom)
        return;
    if (!dom->def) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s",
                      "cannot set autostart for transient domain");
        return;
    }
    if ((a->autostart != 0) != dom->autostart &&
        !set_autostart_link(drv, dom->name, a->autostart != 0, &err)) {
        rpc_call_fail_gerror(call, err);
        return;
    }
    dom->autostart = a->autostart != 0;
    rpc_call_reply(call, NULL);
}

/* ------------------------------------------------------------ memory and vCPUs */

/* VIR_DOMAIN_AFFECT_CURRENT resolved: live for a running domain, else config. */
static gboolean resolve_affect(RpcCall *call, Domain *dom, guint *flags)
{
    if (!(*flags & (AFFECT_LIVE | AFFECT_CONFIG)))
        *flags |= is_active(dom) ? AFFECT_LIVE : AFFECT_CONFIG;
    if ((*flags & AFFECT_LIVE) && !is_active(dom)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s", "domain is not running");
        return FALSE;
    }
    if ((*flags & AFFECT_CONFIG) && !dom->def) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s",
                      "cannot change persistent config of a transient domain");
        return FALSE;
    }
    return TRUE;
}

static void set_memory_common(RpcCall *call, gpointer args, DomainDriver *drv, guint64 mem,
                              guint flags)
{
    Domain *dom = get_domain(drv, call, args);
    g_autoptr(GError) err = NULL;
    g_autoptr(DomainDef) newdef = NULL;

    if (!dom || !check_flags(call, flags, AFFECT_LIVE | AFFECT_CONFIG | MEM_MAXIMUM,
                             "vireoDomainSetMemoryFlags") ||
        !resolve_affect(call, dom, &flags))
        return;
    if (flags & AFFECT_LIVE) {
        JsonValue *qargs;

        if (flags & MEM_MAXIMUM) {
            rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s",
                          "cannot resize the maximum memory on an active domain");
            return;
        }
        if (mem > dom->live->memory_kib) {
            rpc_call_fail(call, RPC_ERR_INVALID_ARG, "%s",
                          "cannot set memory higher than max memory");
            return;
        }
        if (!dom->has_balloon) {
            rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s",
                          "Unable to change memory of active domain without the balloon "
                          "device and guest OS balloon driver");
            return;
        }
        if (flags & AFFECT_CONFIG) {
            rpc_call_fail(call, RPC_ERR_OPERATION_UNSUPPORTED, "%s",
                          "changing live and config memory at once is not supported yet");
            return;
        }
        dom->live->current_memory_kib = mem;
        qargs = json_new_object();
        json_object_set_int(qargs, "value", (int64_t)mem * 1024);
        qmp_call(call, dom, "balloon", qargs, "balloon");
        return;
    }
    newdef = domain_def_copy(dom->def, &err);
    if (!newdef) {
        rpc_call_fail_gerror(call, err);
        return;
    }
    if (flags & MEM_MAXIMUM) {
        newdef->memory_kib = mem;
        newdef->current_memory_kib = MIN(newdef->current_memory_kib, mem);
    } else if (mem > newdef->memory_kib) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG, "%s", "cannot set memory higher than max memory");
        return;
    } else {
        newdef->current_memory_kib = mem;
    }
    if (!save_definition(drv, newdef, &err)) {
        rpc_call_fail_gerror(call, err);
        return;
    }
    domain_def_free(dom->def);
    dom->def = g_steal_pointer(&newdef);
    rpc_call_reply(call, NULL);
}

static void h_set_memory(RpcCall *call, gpointer args, gpointer opaque)
{
    set_memory_common(call, args, opaque, ((RemoteDomainSetMemoryArgs *)args)->memory,
                      AFFECT_LIVE);
}

static void h_set_max_memory(RpcCall *call, gpointer args, gpointer opaque)
{
    set_memory_common(call, args, opaque, ((RemoteDomainSetMaxMemoryArgs *)args)->memory,
                      MEM_MAXIMUM);
}

static void h_set_memory_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainSetMemoryFlagsArgs *a = args;

    set_memory_common(call, args, opaque, a->memory, a->flags);
}

static void set_vcpus_common(RpcCall *call, gpointer args, DomainDriver *drv, guint n,
                             guint flags)
{
    Domain *dom = get_domain(drv, call, args);
    g_autoptr(GError) err = NULL;
    g_autoptr(DomainDef) newdef = NULL;

    if (!dom || !check_flags(call, flags, AFFECT_LIVE | AFFECT_CONFIG | VCPU_MAXIMUM |
                             VCPU_GUEST | 16, "vireoDomainSetVcpusFlags") ||
        !resolve_affect(call, dom, &flags))
        return;
    if (flags & (AFFECT_LIVE | VCPU_GUEST)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_UNSUPPORTED, "%s",
                      "changing the vCPUs of a running domain is not supported by Vireo "
                      "(no vCPU hotplug); use --config");
        return;
    }
    if (n < 1 || n > 64) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG, "requested vcpus %u is out of range 1..64", n);
        return;
    }
    if (!(flags & VCPU_MAXIMUM) && n > dom->def->vcpus) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG,
                      "requested vcpus is greater than max allowable vcpus for the persistent "
                      "domain: %u > %u", n, dom->def->vcpus);
        return;
    }
    newdef = domain_def_copy(dom->def, &err);
    if (!newdef) {
        rpc_call_fail_gerror(call, err);
        return;
    }
    /* No hotplug in Vireo: the maximum and the current count move together. */
    newdef->vcpus = n;
    newdef->vcpus_current = n;
    if (!save_definition(drv, newdef, &err)) {
        rpc_call_fail_gerror(call, err);
        return;
    }
    domain_def_free(dom->def);
    dom->def = g_steal_pointer(&newdef);
    rpc_call_reply(call, NULL);
}

static void h_set_vcpus(RpcCall *call, gpointer args, gpointer opaque)
{
    set_vcpus_common(call, args, opaque, ((RemoteDomainSetVcpusArgs *)args)->nvcpus,
                     AFFECT_LIVE);
}

static void h_set_vcpus_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainSetVcpusFlagsArgs *a = args;

    set_vcpus_common(call, args, opaque, a->nvcpus, a->flags);
}

static void h_get_vcpus_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainGetVcpusFlagsArgs *a = args;
    Domain *dom = get_domain(opaque, call, args);
    RemoteDomainGetVcpusFlagsRet ret;
    guint flags = a->flags;
    const DomainDef *def;

    if (!dom || !check_flags(call, flags, AFFECT_LIVE | AFFECT_CONFIG | VCPU_MAXIMUM |
                             VCPU_GUEST | 16, "vireoDomainGetVcpusFlags") ||
        !resolve_affect(call, dom, &flags))
        return;
    if ((flags & (AFFECT_LIVE | AFFECT_CONFIG)) == (AFFECT_LIVE | AFFECT_CONFIG)) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG, "%s",
                      "flags 'affect live' and 'affect config' are mutually exclusive");
        return;
    }
    def = flags & AFFECT_LIVE ? dom->live : dom->def;
    ret.num = flags & VCPU_MAXIMUM ? def->vcpus : def->vcpus_current;
    rpc_call_reply(call, &ret);
}

static void h_get_vcpus(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainGetVcpusArgs *a = args;
    Domain *dom = get_domain(opaque, call, args);
    g_autofree RemoteVcpuInfo *info = NULL;
    g_autofree guint8 *maps = NULL;
    RemoteDomainGetVcpusRet ret = { 0 };
    guint ncpus = g_get_num_processors();

    if (!dom || !check_active(call, dom))
        return;
    if (a->maxinfo < 0 || a->maplen < 0 || a->maxinfo > 16384 || a->maplen > 4096 ||
        (gint64)a->maxinfo * a->maplen > 262144) {
        rpc_call_fail(call, RPC_ERR_RPC, "%s", "too many vCPUs or map too long");
        return;
    }
    ret.n_info = MIN((guint)a->maxinfo, dom->live->vcpus);
    info = g_new0(RemoteVcpuInfo, ret.n_info + 1);
    for (guint i = 0; i < ret.n_info; i++) {
        pid_t tid = dom->vcpu_tids && i < dom->vcpu_tids->len ?
                    g_array_index(dom->vcpu_tids, pid_t, i) : 0;
        ProcStat ps = { .processor = -1 };

        if (tid > 0)
            proc_stat_read(vm_process_get_pid(dom->vm), tid, &ps);
        info[i] = (RemoteVcpuInfo) {
            .number = i, .state = 1 /* VIR_VCPU_RUNNING */, .cpu_time = ps.cpu_time_ns,
            .cpu = ps.processor,
        };
    }
    ret.info = info;
    ret.n_cpumaps = ret.n_info * a->maplen;
    maps = g_malloc0(ret.n_cpumaps + 1);
    /* No pinning: every host CPU is usable. */
    for (guint i = 0; i < ret.n_info; i++)
        for (guint c = 0; c < ncpus && c / 8 < (guint)a->maplen; c++)
            maps[i * a->maplen + c / 8] |= 1u << (c % 8);
    ret.cpumaps = maps;
    rpc_call_reply(call, &ret);
}

/* ------------------------------------------------------------ console */

static void console_sink(const guint8 *data, gsize len, gpointer opaque)
{
    Domain *dom = opaque;

    if (dom->console)
        rpc_stream_send(dom->console, data, len);
}

static void console_stream_data(RpcStream *st, const guint8 *data, gsize len, gpointer opaque)
{
    Domain *dom = opaque;

    if (dom->console == st && dom->vm)
        vm_process_console_write(dom->vm, data, len);
}

static void console_stream_end(RpcStream *st, gpointer opaque)
{
    Domain *dom = opaque;

    if (dom->console == st)
        console_end(dom);
    domain_unref(dom);
}

static void h_open_console(RpcCall *call, gpointer args, gpointer opaque)
{
    static const RpcStreamCallbacks cb = {
        .data = console_stream_data, .finish = console_stream_end, .abort = console_stream_end,
    };
    RemoteDomainOpenConsoleArgs *a = args;
    Domain *dom = get_domain(opaque, call, args);

    if (!dom || defer_if_busy(dom, call, h_open_console, args) ||
        !check_flags(call, a->flags, CONSOLE_FORCE | CONSOLE_SAFE, "vireoDomainOpenConsole") ||
        !check_active(call, dom))
        return;
    if (a->dev_name && strcmp(a->dev_name, "console0") != 0 &&
        strcmp(a->dev_name, "serial0") != 0) {
        rpc_call_fail(call, RPC_ERR_INTERNAL_ERROR, "cannot find character device %s",
                      a->dev_name);
        return;
    }
    if (!vmm_argv_console_bridged(dom->live) || !vm_process_has_console(dom->vm)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_FAILED, "character device %s is not using a PTY",
                      a->dev_name ? a->dev_name : "console0");
        return;
    }
    if (dom->console && !rpc_stream_is_closed(dom->console)) {
        if (!(a->flags & CONSOLE_FORCE)) {
            rpc_call_fail(call, RPC_ERR_OPERATION_FAILED, "%s",
                          "Active console session exists for this domain");
            return;
        }
        rpc_stream_abort(dom->console, rpc_remote_error_new(RPC_ERR_OPERATION_ABORTED,
                                                            RPC_FROM_STREAMS, "%s",
                                                            "console taken over by another "
                                                            "client"));
    }
    console_end(dom);
    dom->console = rpc_call_open_stream(call, &cb, domain_ref(dom));
    rpc_call_reply(call, NULL);
    vm_process_console_attach(dom->vm, console_sink, dom);
}

/* ------------------------------------------------------------ driver */

static const struct {
    gint32 proc;
    RpcHandlerFunc fn;
} handlers[] = {
    { REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS, h_list_all },
    { REMOTE_PROC_CONNECT_NUM_OF_DOMAINS, h_num_of_domains },
    { REMOTE_PROC_CONNECT_LIST_DOMAINS, h_list_domains },
    { REMOTE_PROC_CONNECT_NUM_OF_DEFINED_DOMAINS, h_num_of_defined },
    { REMOTE_PROC_CONNECT_LIST_DEFINED_DOMAINS, h_list_defined },
    { REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME, h_lookup_by_name },
    { REMOTE_PROC_DOMAIN_LOOKUP_BY_UUID, h_lookup_by_uuid },
    { REMOTE_PROC_DOMAIN_LOOKUP_BY_ID, h_lookup_by_id },
    { REMOTE_PROC_DOMAIN_DEFINE_XML, h_define_xml },
    { REMOTE_PROC_DOMAIN_DEFINE_XML_FLAGS, h_define_xml_flags },
    { REMOTE_PROC_DOMAIN_UNDEFINE, h_undefine },
    { REMOTE_PROC_DOMAIN_UNDEFINE_FLAGS, h_undefine_flags },
    { REMOTE_PROC_DOMAIN_CREATE, h_create },
    { REMOTE_PROC_DOMAIN_CREATE_WITH_FLAGS, h_create_with_flags },
    { REMOTE_PROC_DOMAIN_CREATE_XML, h_create_xml },
    { REMOTE_PROC_DOMAIN_DESTROY, h_destroy },
    { REMOTE_PROC_DOMAIN_DESTROY_FLAGS, h_destroy_flags },
    { REMOTE_PROC_DOMAIN_SHUTDOWN, h_shutdown },
    { REMOTE_PROC_DOMAIN_SHUTDOWN_FLAGS, h_shutdown_flags },
    { REMOTE_PROC_DOMAIN_REBOOT, h_reboot },
    { REMOTE_PROC_DOMAIN_RESET, h_reset },
    { REMOTE_PROC_DOMAIN_SUSPEND, h_suspend },
    { REMOTE_PROC_DOMAIN_RESUME, h_resume },
    { REMOTE_PROC_DOMAIN_GET_INFO, h_get_info },
    { REMOTE_PROC_DOMAIN_GET_STATE, h_get_state },
    { REMOTE_PROC_DOMAIN_GET_XML_DESC, h_get_xml_desc },
    { REMOTE_PROC_DOMAIN_GET_OS_TYPE, h_get_os_type },
    { REMOTE_PROC_DOMAIN_IS_ACTIVE, h_is_active },
    { REMOTE_PROC_DOMAIN_IS_PERSISTENT, h_is_persistent },
    { REMOTE_PROC_DOMAIN_IS_UPDATED, h_is_updated },
    { REMOTE_PROC_DOMAIN_GET_AUTOSTART, h_get_autostart },
    { REMOTE_PROC_DOMAIN_SET_AUTOSTART, h_set_autostart },
    { REMOTE_PROC_DOMAIN_HAS_MANAGED_SAVE_IMAGE, h_has_managed_save },
    { REMOTE_PROC_DOMAIN_SNAPSHOT_NUM, h_snapshot_num },
    { REMOTE_PROC_DOMAIN_GET_SECURITY_LABEL, h_get_security_label },
    { REMOTE_PROC_DOMAIN_GET_MESSAGES, h_get_messages },
    { REMOTE_PROC_DOMAIN_GET_MAX_MEMORY, h_get_max_memory },
    { REMOTE_PROC_DOMAIN_SET_MEMORY, h_set_memory },
    { REMOTE_PROC_DOMAIN_SET_MEMORY_FLAGS, h_set_memory_flags },
    { REMOTE_PROC_DOMAIN_SET_MAX_MEMORY, h_set_max_memory },
    { REMOTE_PROC_DOMAIN_SET_VCPUS, h_set_vcpus },
    { REMOTE_PROC_DOMAIN_SET_VCPUS_FLAGS, h_set_vcpus_flags },
    { REMOTE_PROC_DOMAIN_GET_VCPUS_FLAGS, h_get_vcpus_flags },
    { REMOTE_PROC_DOMAIN_GET_MAX_VCPUS, h_get_max_vcpus },
    { REMOTE_PROC_DOMAIN_GET_VCPUS, h_get_vcpus },
    { REMOTE_PROC_DOMAIN_OPEN_CONSOLE, h_open_console },
};

DomainDriver *domain_driver_new(RpcServer *srv, const DomainDriverConfig *cfg, GError **error)
{
    DomainDriver *drv = g_new0(DomainDriver, 1);

    drv->srv = srv;
    drv->ctx = g_main_context_ref_thread_default();
    drv->paths = daemon_paths_new(cfg->paths->root, DAEMON_ROLE_DOMAIN);
    drv->vmm_path = g_strdup(cfg->vmm_path);
    drv->tls_dir = g_strdup(cfg->tls_dir);
    drv->caps = cfg->caps;
    drv->start_timeout_ms = cfg->start_timeout_ms ? cfg->start_timeout_ms : 10000;
    drv->destroy_timeout_ms = cfg->destroy_timeout_ms ? cfg->destroy_timeout_ms : 5000;
    drv->domains = g_ptr_array_new_with_free_func((GDestroyNotify)domain_unref);
    drv->by_name = g_hash_table_new(g_str_hash, g_str_equal);
    drv->by_uuid = g_hash_table_new(g_str_hash, g_str_equal);
    drv->next_id = 1;
    load_definitions(drv);
    reconnect_all(drv);
    for (gsize i = 0; i < G_N_ELEMENTS(handlers); i++)
        rpc_server_set_handler(srv, REMOTE_PROGRAM, handlers[i].proc, handlers[i].fn, drv);
    domain_save_register(drv, srv);
    domain_job_register(drv, srv);
    migrate_p2p_register(drv, srv);
    (void)error;
    return drv;
}

static void autostart_done(Domain *dom, RpcCall *call, const GError *error)
{
    if (error)
        g_warning("autostart of domain '%s' failed: %s", dom->name, error->message);
}

void domain_driver_autostart(DomainDriver *drv)
{
    g_autoptr(GPtrArray) doms = g_ptr_array_new();

    for (guint i = 0; i < drv->domains->len; i++)
        g_ptr_array_add(doms, drv->domains->pdata[i]);
    for (guint i = 0; i < doms->len; i++) {
        Domain *dom = doms->pdata[i];
        g_autoptr(GError) err = NULL;
        DomainDef *def;

        if (!dom->autostart || is_active(dom) || dom->job || !dom->def)
            continue;
        def = domain_def_copy(dom->def, &err);
        if (!def) {
            g_warning("autostart of domain '%s': %s", dom->name, err->message);
            continue;
        }
        log_note(dom, "autostart");
        domain_start(dom, def, 0, FALSE, NULL, autostart_done);
    }
}

gboolean domain_driver_is_busy(DomainDriver *drv)
{
    if (drv->jobs)
        return TRUE;
    for (guint i = 0; i < drv->domains->len; i++)
        if (is_active(drv->domains->pdata[i]))
            return TRUE;
    return FALSE;
}

guint domain_driver_count(DomainDriver *drv)
{
    return drv->domains->len;
}

void domain_driver_free(DomainDriver *drv)
{
    if (!drv)
        return;
    /* The VMs go on; only our watches and connections end. */
    drv->closing = TRUE;
    for (guint i = 0; i < drv->domains->len; i++) {
        Domain *dom = drv->domains->pdata[i];

        g_clear_pointer(&dom->console, rpc_stream_unref);
        if (dom->kill_timer) {
            g_source_destroy(dom->kill_timer);
            g_clear_pointer(&dom->kill_timer, g_source_unref);
        }
        g_clear_pointer(&dom->vm, vm_process_free);
        g_queue_clear_full(&dom->waiters, g_free);
        g_ptr_array_set_size(dom->stop_calls, 0);
    }
    g_ptr_array_unref(drv->domains);
    g_hash_table_unref(drv->by_name);
    g_hash_table_unref(drv->by_uuid);
    daemon_paths_free(drv->paths);
    g_free(drv->vmm_path);
    g_free(drv->tls_dir);
    g_main_context_unref(drv->ctx);
    g_free(drv);
}

/* ------------------------------------------------------------ for the driver's other files */

Domain *domain_driver_ref(Domain *dom) { return domain_ref(dom); }
void domain_driver_unref(Domain *dom) { domain_unref(dom); }
gboolean domain_driver_is_active(const Domain *dom) { return is_active(dom); }
void domain_driver_emit(Domain *dom, int event, int detail) { emit(dom, event, detail); }
void domain_driver_set_state(Domain *dom, int state, int reason) { set_state(dom, state, reason); }
void domain_driver_save_status(Domain *dom) { save_status(dom, TRUE); }
void domain_driver_job_begin(Domain *dom) { job_begin(dom); }
void domain_driver_job_end(Domain *dom) { job_end(dom); }
void domain_driver_fail(RpcCall *call, const GError *error) { fail_gerror(call, error); }

Domain *domain_driver_lookup(DomainDriver *drv, RpcCall *call, const RemoteNonnullDomain *w)
{
    return get_domain(drv, call, w);
}

gboolean domain_driver_check_active(RpcCall *call, Domain *dom)
{
    return check_active(call, dom);
}

gboolean domain_driver_check_flags(RpcCall *call, guint flags, guint known, const char *fn)
{
    return check_flags(call, flags, known, fn);
}

void domain_driver_log(Domain *dom, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    log_note(dom, "%s", msg);
}

gboolean domain_driver_defer(Domain *dom, RpcCall *call, RpcHandlerFunc fn, gpointer args)
{
    return defer_if_busy(dom, call, fn, args);
}

gboolean domain_driver_check_identity(DomainDriver *drv, RpcCall *call, const DomainDef *def,
                                      Domain **found)
{
    return check_identity(drv, call, def, found);
}

Domain *domain_driver_add(DomainDriver *drv, const DomainDef *def)
{
    Domain *dom = domain_new(drv, def->name, def->uuid);

    driver_add(drv, dom);
    return dom;
}

void domain_driver_start(Domain *dom, DomainDef *def, guint flags, RpcCall *call,
                         StartDoneFunc done)
{
    domain_start(dom, def, flags, FALSE, call, done);
}

void domain_driver_done_void(Domain *dom, RpcCall *call, const GError *error)
{
    done_void(dom, call, error);
}
