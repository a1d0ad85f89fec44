/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Migration glue: migration/ does the stream and the threads, this file
 * gives it the machine (dirty log, stop and save, load) and QMP.
 *
 * The migration threads never touch the machine directly: to stop and
 * save, or to load, they queue a call on the event loop and wait for its
 * result. The loop never waits for them, except in migrate_free(), which
 * first releases any such wait (shutting_down).
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "vireo/dirty-log.h"
#include "vireo/machine-internal.h"
#include "vireo/migrate.h"
#include "vireo/migration-ram.h"
#include "vireo/migration.h"
#include "vireo/tls.h"
#include "vireo/util.h"

#define MAX_DOWNTIME_LIMIT_MS 2000000
#define MAX_ZSTD_LEVEL 20

struct Migrate {
    Machine *m;
    Loop *loop;
    QmpServer *qmp;
    MigParams params;
    int zstd_level;             /* multifd-zstd-level, used when compression is zstd */
    gboolean compress;
    GHashTable *tls_objects;    /* tls-creds-x509 objects: id -> TlsCreds */
    char *tls_creds;            /* parameter tls-creds: an object id, or NULL */
    char *tls_hostname;         /* parameter tls-hostname, or NULL */

    MigSource *src;             /* the last outgoing migration, kept for query-migrate */
    gboolean src_running;       /* its thread has not finished */
    gboolean stopped_by_us;     /* loop thread: the source VM was stopped for it */
    gboolean was_running;

    MigDest *dst;
    gboolean incoming_deferred; /* --incoming defer, migrate-incoming not yet given */
    gboolean autostart;

    /* Handshake between a migration thread and the loop; under lock. */
    GMutex lock;
    GCond cond;
    gboolean shutting_down;
    gboolean req_done;
    GBytes *req_state;          /* stop_and_save result */
    gboolean req_was_running;
    const uint8_t *req_data;    /* load_state input */
    size_t req_len;
    GError *req_error;

    /* Set by a thread's finished op, read by the loop call it queues. */
    MigStatus final_status;
    gboolean dest_was_running;
    GError *final_error;

    gboolean postcopy_running;  /* loop thread: the destination runs before the stream ends */
};

static MigRam machine_ram(Machine *m)
{
    const GuestMemory *mem = machine_memory(m);
    MigRam ram = {
        /* Region 0 starts at offset 0 of the memfd's single mapping. */
        .base = mem->regions[0].host - mem->regions[0].file_offset,
        .size = mem->ram_size,
        .memfd = machine_ram_fd(m),
    };
    return ram;
}

/* --- events --- */

typedef struct StatusEvent {
    Migrate *mig;
    MigStatus status;
} StatusEvent;

/* Loop thread. */
static void emit_migration_event(Migrate *mig, MigStatus status)
{
    JsonValue *data;

    if (!mig->qmp)
        return;
    data = json_new_object();
    json_object_set_string(data, "status", mig_status_name(status));
    qmp_server_emit_event(mig->qmp, "MIGRATION", data);
}

static void emit_status(void *opaque)
{
    g_autofree StatusEvent *ev = opaque;

    emit_migration_event(ev->mig, ev->status);
}

static void status_changed(void *opaque, MigStatus status)
{
    StatusEvent *ev = g_new0(StatusEvent, 1);

    ev->mig = opaque;
    ev->status = status;
    loop_call(ev->mig->loop, emit_status, ev);
}

/*
 * The source's final status (completed, failed, cancelled) is announced by
 * source_done(), once the migration thread has ended: a client that reacts
 * to the event with a new `migrate` (the daemon retrying a save) must not
 * find the old one still in progress.
 */
static void src_status_changed(void *opaque, MigStatus status)
{
    if (status == MIG_STATUS_COMPLETED || status == MIG_STATUS_FAILED ||
        status == MIG_STATUS_CANCELLED)
        return;
    status_changed(opaque, status);
}

/*
 * Runs @fn on the loop and waits for it to set req_done. FALSE if the VMM
 * is shutting down and it will never run.
 */
static gboolean call_on_loop(Migrate *mig, LoopCallFn fn, GError **error)
{
    gboolean ok;

    g_mutex_lock(&mig->lock);
    mig->req_done = FALSE;
    g_clear_error(&mig->req_error);
    if (!mig->shutting_down) {
        g_mutex_unlock(&mig->lock);
        loop_call(mig->loop, fn, mig);
        g_mutex_lock(&mig->lock);
        while (!mig->req_done && !mig->shutting_down)
            g_cond_wait(&mig->cond, &mig->lock);
    }
    if (!mig->req_done) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "vireo-vmm is shutting down");
        ok = FALSE;
    } else if (mig->req_error) {
        g_propagate_error(error, g_steal_pointer(&mig->req_error));
        ok = FALSE;
    } else {
        ok = TRUE;
    }
    g_mutex_unlock(&mig->lock);
    return ok;
}

static void req_finish(Migrate *mig, GError *err)
{
    g_mutex_lock(&mig->lock);
    mig->req_error = err;
    mig->req_done = TRUE;
    g_cond_broadcast(&mig->cond);
    g_mutex_unlock(&mig->lock);
}

/* --- source ops --- */

/*
 * KVM logs what vCPUs write; device emulation (virtqueues, balloon) logs
 * its own writes into the GuestMemory, merged at every sync.
 */
static gboolean src_log_start(void *opaque, gboolean on, GError **error)
{
    Migrate *mig = opaque;
    GuestMemory *mem = machine_dma_memory(mig->m);

    if (on)
        guest_memory_dirty_start(mem);
    else
        guest_memory_dirty_stop(mem);
    return dirty_log_enable(machine_vm_fd(mig->m), mem, on, error);
}

static gboolean src_log_sync(void *opaque, unsigned long *bitmap, GError **error)
{
    Migrate *mig = opaque;
    GuestMemory *mem = machine_dma_memory(mig->m);

    if (!dirty_log_sync(machine_vm_fd(mig->m), mem, bitmap, error))
        return FALSE;
    guest_memory_dirty_collect(mem, bitmap);
    return TRUE;
}

/* Loop thread. */
static void do_stop_and_save(void *opaque)
{
    Migrate *mig = opaque;
    g_autoptr(StateWriter) w = state_writer_new();
    RunState state = machine_run_state(mig->m);
    GError *err = NULL;

    if (state != RUN_STATE_RUNNING && state != RUN_STATE_PAUSED &&
        state != RUN_STATE_PRELAUNCH && state != RUN_STATE_POSTMIGRATE) {
        g_set_error(&err, VIREO_ERROR, VIREO_ERROR_FAILED, "the VM is %s; it cannot migrate",
                    run_state_name(state));
        req_finish(mig, err);
        return;
    }
    mig->was_running = state == RUN_STATE_RUNNING;
    machine_stop(mig->m);
    /*
     * Devices keep no RAM write for later: what the save's drain completes
     * is logged for the final sync, and nothing new starts until cont.
     */
    machine_quiesce_devices(mig->m);
    if (machine_run_state(mig->m) == RUN_STATE_PAUSED)
        machine_set_migration_state(mig->m, RUN_STATE_FINISH_MIGRATE);
    mig->stopped_by_us = TRUE;
    /*
     * Then the disk images go, flushed, so that the destination can open
     * them once it runs; a failed migration takes them back at cont.
     */
    if (!machine_save_state(mig->m, w, &err) ||
        !machine_set_devices_active(mig->m, FALSE, &err)) {
        req_finish(mig, err);
        return;
    }
    g_mutex_lock(&mig->lock);
    mig->req_state = state_writer_steal_bytes(w);
    mig->req_was_running = mig->was_running;
    g_mutex_unlock(&mig->lock);
    req_finish(mig, NULL);
}

static GBytes *src_stop_and_save(void *opaque, gboolean *was_running, GError **error)
{
    Migrate *mig = opaque;
    GBytes *state;

    if (!call_on_loop(mig, do_stop_and_save, error))
        return NULL;
    g_mutex_lock(&mig->lock);
    state = g_steal_pointer(&mig->req_state);
    *was_running = mig->req_was_running;
    g_mutex_unlock(&mig->lock);
    return state;
}

/* Loop thread: the migration thread has ended. */
static void source_done(void *opaque)
{
    Migrate *mig = opaque;
    g_autoptr(GError) err = NULL;
    MigStatus status;

    g_mutex_lock(&mig->lock);
    status = mig->final_status;
    err = g_steal_pointer(&mig->final_error);
    g_mutex_unlock(&mig->lock);
    mig->src_running = FALSE;
    emit_migration_event(mig, status);
    if (err)
        g_warning("migration failed: %s", err->message);
    if (!mig->stopped_by_us)
        return;
    mig->stopped_by_us = FALSE;
    if (machine_run_state(mig->m) != RUN_STATE_FINISH_MIGRATE)
        return;
    if (status == MIG_STATUS_COMPLETED) {
        machine_set_migration_state(mig->m, RUN_STATE_POSTMIGRATE);
        return;
    }
    if (mig_source_in_postcopy(mig->src)) {
        /* The destination has run: resuming here would fork the VM. */
        machine_set_migration_state(mig->m, RUN_STATE_PAUSED);
        g_warning("post-copy migration failed after the switch: the VM stays paused");
        return;
    }
    /* Not confirmed by the destination: the VM is still ours. */
    machine_set_migration_state(mig->m, RUN_STATE_PAUSED);
    if (mig->was_running && !machine_cont(mig->m, &err))
        g_warning("cannot resume after the failed migration: %s", err->message);
}

static void src_finished(void *opaque, MigStatus status, const GError *err)
{
    Migrate *mig = opaque;

    g_mutex_lock(&mig->lock);
    mig->final_status = status;
    g_clear_error(&mig->final_error);
    mig->final_error = err ? g_error_copy(err) : NULL;
    g_mutex_unlock(&mig->lock);
    loop_call(mig->loop, source_done, mig);
}

static void src_set_throttle(void *opaque, int percent)
{
    Migrate *mig = opaque;

    machine_set_cpu_throttle(mig->m, percent);
}

static const MigSourceOps source_ops = {
    .log_start = src_log_start,
    .log_sync = src_log_sync,
    .stop_and_save = src_stop_and_save,
    .set_throttle = src_set_throttle,
    .status_changed = src_status_changed,
    .finished = src_finished,
};

/* --- destination ops --- */

/* Loop thread. */
static void do_load(void *opaque)
{
    Migrate *mig = opaque;
    g_autoptr(StateReader) r = state_reader_new(mig->req_data, mig->req_len);
    GError *err = NULL;

    if (machine_load_state(mig->m, r, &err) && !state_reader_at_end(r)) {
        g_autofree char *name = state_reader_peek_section(r);
        g_set_error(&err, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "the migration stream has state for a device this VM does not have: '%s'",
                    name ? name : "(garbage)");
    }
    req_finish(mig, err);
}

static gboolean dst_load_state(void *opaque, const uint8_t *data, size_t len, GError **error)
{
    Migrate *mig = opaque;

    g_mutex_lock(&mig->lock);
    mig->req_data = data;
    mig->req_len = len;
    g_mutex_unlock(&mig->lock);
    if (!call_on_loop(mig, do_load, error)) {
        g_prefix_error(error, "loading the machine state: ");
        return FALSE;
    }
    return TRUE;
}

/* Loop thread. */
static void dest_done(void *opaque)
{
    Migrate *mig = opaque;
    g_autoptr(GError) err = NULL;
    gboolean was_running;

    g_mutex_lock(&mig->lock);
    err = g_steal_pointer(&mig->final_error);
    was_running = mig->dest_was_running;
    g_mutex_unlock(&mig->lock);
    if (err) {
        /*
         * The source keeps the VM; this process has nothing left to do.
         * After a post-copy switch a broken link pauses instead, so this
         * is only reached when the VMM is told to give up.
         */
        fprintf(stderr, "vireo-vmm: incoming %smigration failed: %s\n",
                mig->postcopy_running ? "post-copy " : "", err->message);
        loop_quit(mig->loop, 1);
        return;
    }
    if (mig->postcopy_running)
        return;                 /* running (or paused with -S) since the switch */
    machine_set_migration_state(mig->m, RUN_STATE_PAUSED);
    if (was_running && mig->autostart && !machine_cont(mig->m, &err)) {
        fprintf(stderr, "vireo-vmm: cannot start the migrated VM: %s\n", err->message);
        loop_quit(mig->loop, 1);
    }
}

static void dst_finished(void *opaque, gboolean was_running, const GError *err)
{
    Migrate *mig = opaque;

    g_mutex_lock(&mig->lock);
    mig->dest_was_running = was_running;
    g_clear_error(&mig->final_error);
    mig->final_error = err ? g_error_copy(err) : NULL;
    g_mutex_unlock(&mig->lock);
    loop_call(mig->loop, dest_done, mig);
}

typedef struct PostcopyStart {
    Migrate *mig;
    GBytes *state;
    gboolean was_running;
} PostcopyStart;

/* Loop thread: the source has stopped; this VM runs while its RAM arrives. */
static void do_postcopy_start(void *opaque)
{
    g_autofree PostcopyStart *ps = opaque;
    g_autoptr(GBytes) state = ps->state;
    Migrate *mig = ps->mig;
    gsize len;
    const uint8_t *data = g_bytes_get_data(state, &len);
    g_autoptr(StateReader) r = state_reader_new(data, len);
    g_autoptr(GError) err = NULL;

    if (!machine_load_state(mig->m, r, &err) || !state_reader_at_end(r)) {
        fprintf(stderr, "vireo-vmm: post-copy: cannot load the machine state: %s\n",
                err ? err->message : "state for a device this VM does not have");
        loop_quit(mig->loop, 1);
        return;
    }
    mig->postcopy_running = TRUE;
    machine_set_migration_state(mig->m, RUN_STATE_PAUSED);
    if (ps->was_running && mig->autostart && !machine_cont(mig->m, &err)) {
        fprintf(stderr, "vireo-vmm: cannot start the migrated VM: %s\n", err->message);
        loop_quit(mig->loop, 1);
    }
}

static void dst_start_postcopy(void *opaque, GBytes *state, gboolean was_running)
{
    PostcopyStart *ps = g_new0(PostcopyStart, 1);

    ps->mig = opaque;
    ps->state = state;
    ps->was_running = was_running;
    loop_call(ps->mig->loop, do_postcopy_start, ps);
}

static const MigDestOps dest_ops = {
    .load_state = dst_load_state,
    .start_postcopy = dst_start_postcopy,
    .status_changed = status_changed,
    .finished = dst_finished,
};

/* --- life cycle --- */

Migrate *migrate_new(Machine *m, Loop *loop)
{
    Migrate *mig = g_new0(Migrate, 1);

    mig->m = m;
    mig->loop = loop;
    mig->params.downtime_limit_ms = MIG_DEFAULT_DOWNTIME_LIMIT_MS;
    mig->params.max_bandwidth = MIG_DEFAULT_MAX_BANDWIDTH;
    mig->params.multifd_channels = MIG_DEFAULT_MULTIFD_CHANNELS;
    mig->zstd_level = MIG_DEFAULT_ZSTD_LEVEL;
    mig->params.auto_converge = MIG_DEFAULT_AUTO_CONVERGE;
    mig->params.throttle_initial = MIG_DEFAULT_THROTTLE_INITIAL;
    mig->params.throttle_increment = MIG_DEFAULT_THROTTLE_INCREMENT;
    mig->params.max_throttle = MIG_DEFAULT_MAX_THROTTLE;
    mig->params.throttle_trigger_threshold = MIG_DEFAULT_THROTTLE_TRIGGER;
    mig->tls_objects = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                             (GDestroyNotify)tls_creds_unref);
    g_mutex_init(&mig->lock);
    g_cond_init(&mig->cond);
    return mig;
}

void migrate_free(Migrate *mig)
{
    if (!mig)
        return;
    g_mutex_lock(&mig->lock);
    mig->shutting_down = TRUE;
    g_cond_broadcast(&mig->cond);
    g_mutex_unlock(&mig->lock);
    if (mig->src) {
        mig_source_cancel(mig->src);
        mig_source_free(mig->src);
    }
    mig_dest_free(mig->dst);
    if (mig->req_state)
        g_bytes_unref(mig->req_state);
    g_clear_error(&mig->req_error);
    g_clear_error(&mig->final_error);
    g_hash_table_unref(mig->tls_objects);
    g_free(mig->tls_creds);
    g_free(mig->tls_hostname);
    g_mutex_clear(&mig->lock);
    g_cond_clear(&mig->cond);
    g_free(mig);
}

/*
 * The credentials tls-creds names for this end of a migration (the source
 * is the client), or NULL without an error when TLS is off.
 */
static TlsCreds *tls_creds_for(Migrate *mig, TlsEndpoint endpoint, GError **error)
{
    TlsCreds *creds;

    if (!mig->tls_creds)
        return NULL;
    creds = g_hash_table_lookup(mig->tls_objects, mig->tls_creds);
    if (!creds) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "tls-creds '%s': no such tls-creds-x509 object", mig->tls_creds);
        return NULL;
    }
    if (tls_creds_get_endpoint(creds) != endpoint) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "tls-creds '%s' has endpoint=%s; %s migration needs endpoint=%s",
                    mig->tls_creds, endpoint == TLS_ENDPOINT_SERVER ? "client" : "server",
                    endpoint == TLS_ENDPOINT_SERVER ? "an incoming" : "an outgoing",
                    endpoint == TLS_ENDPOINT_SERVER ? "server" : "client");
        return NULL;
    }
    return creds;
}

static gboolean start_incoming(Migrate *mig, const char *uri, GError **error)
{
    g_autoptr(MigUri) u = mig_uri_parse(uri, error);
    MigRam ram = machine_ram(mig->m);
    GError *err = NULL;
    TlsCreds *tls = tls_creds_for(mig, TLS_ENDPOINT_SERVER, &err);
    gboolean needs_accept;
    int fd;

    if (!u)
        return FALSE;
    if (err) {
        g_propagate_error(error, err);
        return FALSE;
    }
    fd = mig_channel_listen(u, &needs_accept, error);
    if (fd < 0)
        return FALSE;
    /*
     * Loaded devices serve nothing until the VM runs (cont), so RAM stays
     * as the source left it at its stop (-S destinations compare it).
     */
    machine_quiesce_devices(mig->m);
    mig->dst = mig_dest_start(&ram, fd, needs_accept, tls, &dest_ops, mig);
    return TRUE;
}

gboolean migrate_incoming(Migrate *mig, const char *uri, gboolean autostart, GError **error)
{
    mig->autostart = autostart;
    if (strcmp(uri, "defer") == 0) {
        mig->incoming_deferred = TRUE;
        return TRUE;
    }
    if (!start_incoming(mig, uri, error)) {
        g_prefix_error(error, "--incoming: ");
        return FALSE;
    }
    return TRUE;
}

/* --- QMP --- */

/* An incoming post-copy migration still fetching pages: this VM is not whole yet. */
static gboolean incoming_postcopy_busy(Migrate *mig)
{
    MigInfo info = { 0 };
    gboolean busy;

    if (!mig->dst || !mig->postcopy_running)
        return FALSE;
    mig_dest_get_info(mig->dst, &info);
    busy = info.status != MIG_STATUS_COMPLETED;
    mig_info_clear(&info);
    return busy;
}

static JsonValue *cmd_migrate(const JsonValue *args, void *opaque, GError **error)
{
    static const char *const allowed[] = { "uri", "blk", "inc", "detach", "resume", NULL };
    Migrate *mig = opaque;
    const char *uri = NULL;
    gboolean flag = FALSE;
    RunState state = machine_run_state(mig->m);
    MigParams params = mig->params;
    g_autoptr(GError) err = NULL;
    TlsCreds *tls;
    MigUri *u;
    MigRam ram;

    if (!qmp_check_args(args, allowed, error) || !qmp_get_string_arg(args, "uri", TRUE, &uri, error))
        return NULL;
    if (!qmp_get_bool_arg(args, "resume", FALSE, &flag, error))
        return NULL;
    if (flag) {
        /* Post-copy recovery: the same migration, on a new link. */
        if (!mig->src || !mig->src_running) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Cannot resume if there is no "
                        "paused migration");
            return NULL;
        }
        u = mig_uri_parse(uri, error);
        if (!u)
            return NULL;
        if (!mig_uri_is_bidirectional(u)) {
            mig_uri_free(u);
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                        "post-copy recovery needs a return path: unix: or tcp:");
            return NULL;
        }
        if (!mig_source_resume(mig->src, u, &err)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "%s", err->message);
            return NULL;
        }
        return json_new_object();
    }
    if ((qmp_get_bool_arg(args, "blk", FALSE, &flag, NULL) && flag) ||
        (qmp_get_bool_arg(args, "inc", FALSE, &flag, NULL) && flag)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "block migration is not supported; copy the disks with the daemon");
        return NULL;
    }
    if (mig->src_running) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "There's a migration process in progress");
        return NULL;
    }
    if (incoming_postcopy_busy(mig)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "the incoming post-copy migration "
                    "has not brought all of RAM yet");
        return NULL;
    }
    if (state != RUN_STATE_RUNNING && state != RUN_STATE_PAUSED &&
        state != RUN_STATE_PRELAUNCH && state != RUN_STATE_POSTMIGRATE) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "the VM is %s; it cannot migrate",
                    run_state_name(state));
        return NULL;
    }
    tls = tls_creds_for(mig, TLS_ENDPOINT_CLIENT, &err);
    if (err) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "%s", err->message);
        return NULL;
    }
    u = mig_uri_parse(uri, error);
    if (!u)
        return NULL;
    /* As QEMU: the channels are new connections to where the main one went. */
    if (params.multifd && u->kind != MIG_CHANNEL_UNIX && u->kind != MIG_CHANNEL_TCP) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "multifd is not supported by %s: "
                    "its channels need unix: or tcp:; turn the capability multifd off",
                    u->kind == MIG_CHANNEL_FD ? "fd:" : "file:");
        mig_uri_free(u);
        return NULL;
    }
    /* The destination's certificate is checked against a name: tcp: has one. */
    if (tls && tls_creds_get_verify_peer(tls) && !mig->tls_hostname &&
        u->kind != MIG_CHANNEL_TCP && mig_uri_is_bidirectional(u)) {
        mig_uri_free(u);
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "TLS over %s needs tls-hostname, "
                    "the name the destination's certificate carries", uri);
        return NULL;
    }
    /*
     * A device without save() blocks the migration: find out now, not after
     * the RAM was sent. Saving with the vCPUs running is not allowed, so
     * ask the devices only (cheap; their state is discarded).
     */
    if (!machine_check_migratable(mig->m, error)) {
        mig_uri_free(u);
        return NULL;
    }
    params.zstd_level = mig->compress ? mig->zstd_level : 0;
    /* Level 0 means "default" to zstd; we use it as "off", so bump it. */
    if (mig->compress && params.zstd_level == 0)
        params.zstd_level = 1;
    mig_source_free(mig->src);
    ram = machine_ram(mig->m);
    mig->src_running = TRUE;
    mig->src = mig_source_start(&params, &ram, u, tls, mig->tls_hostname, &source_ops, mig);
    return json_new_object();
}

static JsonValue *cmd_migrate_start_postcopy(const JsonValue *args, void *opaque,
                                             GError **error)
{
    Migrate *mig = opaque;
    g_autoptr(GError) err = NULL;

    if (!qmp_check_args(args, NULL, error))
        return NULL;
    if (!mig->src || !mig->src_running) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "No migration is in progress");
        return NULL;
    }
    if (!mig_source_start_postcopy(mig->src, &err)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "%s", err->message);
        return NULL;
    }
    return json_new_object();
}

static JsonValue *cmd_migrate_pause(const JsonValue *args, void *opaque, GError **error)
{
    Migrate *mig = opaque;
    g_autoptr(GError) err = NULL;
    gboolean ok;

    if (!qmp_check_args(args, NULL, error))
        return NULL;
    if (!mig->dst && !(mig->src && mig->src_running)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "No migration is in progress");
        return NULL;
    }
    ok = mig->src && mig->src_running ? mig_source_pause(mig->src, &err)
                                      : mig_dest_pause(mig->dst, &err);
    if (!ok) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "%s", err->message);
        return NULL;
    }
    return json_new_object();
}

/* Destination of a paused post-copy migration: listen for the source on @uri. */
static JsonValue *cmd_migrate_recover(const JsonValue *args, void *opaque, GError **error)
{
    static const char *const allowed[] = { "uri", NULL };
    Migrate *mig = opaque;
    g_autoptr(MigUri) u = NULL;
    g_autoptr(GError) err = NULL;
    const char *uri = NULL;
    gboolean needs_accept;
    int fd;

    if (!qmp_check_args(args, allowed, error) || !qmp_get_string_arg(args, "uri", TRUE, &uri, error))
        return NULL;
    if (!mig->dst) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Migrate recover can only be run when "
                    "postcopy is paused.");
        return NULL;
    }
    u = mig_uri_parse(uri, error);
    if (!u)
        return NULL;
    if (!mig_uri_is_bidirectional(u)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "post-copy recovery needs a return path: unix: or tcp:");
        return NULL;
    }
    fd = mig_channel_listen(u, &needs_accept, &err);
    if (fd < 0 || !mig_dest_recover(mig->dst, fd, &err)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "%s", err->message);
        return NULL;
    }
    return json_new_object();
}

static JsonValue *cmd_migrate_cancel(const JsonValue *args, void *opaque, GError **error)
{
    Migrate *mig = opaque;

    if (!qmp_check_args(args, NULL, error))
        return NULL;
    if (mig->src && mig->src_running && mig_source_in_postcopy(mig->src)) {
        /* The destination has run: the VM can no longer come back here. */
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Postcopy migration cannot be "
                    "cancelled; if the link broke, migrate-recover and migrate resume=true "
                    "carry it on");
        return NULL;
    }
    if (mig->src && mig->src_running)
        mig_source_cancel(mig->src);
    return json_new_object();
}

static JsonValue *cmd_migrate_incoming(const JsonValue *args, void *opaque, GError **error)
{
    static const char *const allowed[] = { "uri", NULL };
    Migrate *mig = opaque;
    const char *uri = NULL;

    if (!qmp_check_args(args, allowed, error) || !qmp_get_string_arg(args, "uri", TRUE, &uri, error))
        return NULL;
    if (!mig->incoming_deferred) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, mig->dst
                    ? "The incoming migration has already been started"
                    : "'-incoming' was not specified on the command line");
        return NULL;
    }
    if (!start_incoming(mig, uri, error))
        return NULL;
    mig->incoming_deferred = FALSE;
    return json_new_object();
}

static JsonValue *build_info(const MigInfo *info, gboolean outgoing)
{
    JsonValue *obj = json_new_object();
    JsonValue *ram;
    gboolean done = info->status == MIG_STATUS_COMPLETED;

    json_object_set_string(obj, "status", mig_status_name(info->status));
    if (info->status == MIG_STATUS_SETUP)
        return obj;
    if (outgoing && !done && info->status != MIG_STATUS_FAILED &&
        info->status != MIG_STATUS_CANCELLED)
        json_object_set_int(obj, "expected-downtime", info->expected_downtime);
    if (outgoing)
        json_object_set_int(obj, "setup-time", info->setup_time);
    json_object_set_int(obj, "total-time", info->total_time);
    if (outgoing && done)
        json_object_set_int(obj, "downtime", info->downtime);
    if (outgoing && info->auto_converge)
        json_object_set_int(obj, "cpu-throttle-percentage", info->cpu_throttle_percentage);
    ram = json_new_object();
    json_object_set_int(ram, "total", info->ram_total);
    json_object_set_int(ram, "dirty-sync-count", info->dirty_sync_count);
    json_object_set_int(ram, "page-size", MIG_PAGE_SIZE);
    json_object_set_int(ram, "remaining", info->ram_remaining);
    json_object_set_double(ram, "mbps", info->mbps);
    json_object_set_int(ram, "transferred", info->ram_transferred);
    json_object_set_int(ram, "duplicate", info->ram_duplicate);
    json_object_set_int(ram, "dirty-pages-rate", info->dirty_pages_rate);
    json_object_set_int(ram, "normal-bytes", info->ram_normal * MIG_PAGE_SIZE);
    json_object_set_int(ram, "normal", info->ram_normal);
    json_object_set_int(ram, "postcopy-requests", info->postcopy_requests);
    json_object_set_int(ram, "multifd-bytes", info->multifd_bytes);
    json_object_set(obj, "ram", ram);
    if (info->error_desc)
        json_object_set_string(obj, "error-desc", info->error_desc);
    return obj;
}

static JsonValue *cmd_query_migrate(const JsonValue *args, void *opaque, GError **error)
{
    Migrate *mig = opaque;
    MigInfo info = { 0 };
    JsonValue *obj;

    if (!qmp_check_args(args, NULL, error))
        return NULL;
    /* QEMU: an empty object before any migration. */
    if (mig->src)
        mig_source_get_info(mig->src, &info);
    else if (mig->dst)
        mig_dest_get_info(mig->dst, &info);
    else
        return json_new_object();
    obj = build_info(&info, mig->src != NULL);
    mig_info_clear(&info);
    return obj;
}

static JsonValue *build_params(Migrate *mig)
{
    JsonValue *obj = json_new_object();

    json_object_set_int(obj, "downtime-limit", mig->params.downtime_limit_ms);
    json_object_set_int(obj, "max-bandwidth", mig->params.max_bandwidth);
    json_object_set_int(obj, "multifd-channels", mig->params.multifd_channels);
    json_object_set_string(obj, "multifd-compression", mig->compress ? "zstd" : "none");
    json_object_set_int(obj, "multifd-zstd-level", mig->zstd_level);
    json_object_set_int(obj, "cpu-throttle-initial", mig->params.throttle_initial);
    json_object_set_int(obj, "cpu-throttle-increment", mig->params.throttle_increment);
    json_object_set_int(obj, "max-cpu-throttle", mig->params.max_throttle);
    json_object_set_int(obj, "throttle-trigger-threshold",
                        mig->params.throttle_trigger_threshold);
    /* QEMU reports both as "" when unset. */
    json_object_set_string(obj, "tls-creds", mig->tls_creds ? mig->tls_creds : "");
    json_object_set_string(obj, "tls-hostname", mig->tls_hostname ? mig->tls_hostname : "");
    return obj;
}

static JsonValue *cmd_query_migrate_parameters(const JsonValue *args, void *opaque,
                                               GError **error)
{
    if (!qmp_check_args(args, NULL, error))
        return NULL;
    return build_params(opaque);
}

static gboolean int_param(const JsonValue *args, const char *name, int64_t min, int64_t max,
                          int64_t *out, GError **error)
{
    int64_t v = *out;

    if (!qmp_get_int_arg(args, name, FALSE, &v, error))
        return FALSE;
    if (v < min || v > max) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "Parameter '%s' expects a value from %" G_GINT64_FORMAT " to %"
                    G_GINT64_FORMAT, name, min, max);
        return FALSE;
    }
    *out = v;
    return TRUE;
}

static JsonValue *cmd_migrate_set_parameters(const JsonValue *args, void *opaque, GError **error)
{
    static const char *const allowed[] = { "downtime-limit", "max-bandwidth", "multifd-channels",
                                           "multifd-compression", "multifd-zstd-level",
                                           "cpu-throttle-initial", "cpu-throttle-increment",
                                           "max-cpu-throttle", "throttle-trigger-threshold",
                                           "tls-creds", "tls-hostname", NULL };
    Migrate *mig = opaque;
    MigParams p = mig->params;
    int64_t level = mig->zstd_level;
    int64_t initial = p.throttle_initial, increment = p.throttle_increment;
    int64_t max_throttle = p.max_throttle, trigger = p.throttle_trigger_threshold;
    const char *comp = NULL;
    const char *tls_creds = NULL, *tls_hostname = NULL;

    /* All or nothing: check every value before changing any. */
    if (!qmp_check_args(args, allowed, error) ||
        !int_param(args, "downtime-limit", 0, MAX_DOWNTIME_LIMIT_MS, &p.downtime_limit_ms,
                   error) ||
        !int_param(args, "max-bandwidth", 0, G_MAXINT64, &p.max_bandwidth, error) ||
        !int_param(args, "multifd-channels", 1, 255, &p.multifd_channels, error) ||
        !int_param(args, "multifd-zstd-level", 0, MAX_ZSTD_LEVEL, &level, error) ||
        !int_param(args, "cpu-throttle-initial", 1, 99, &initial, error) ||
        !int_param(args, "cpu-throttle-increment", 1, 99, &increment, error) ||
        !int_param(args, "max-cpu-throttle", 1, 99, &max_throttle, error) ||
        !int_param(args, "throttle-trigger-threshold", 1, 100, &trigger, error) ||
        !qmp_get_string_arg(args, "multifd-compression", FALSE, &comp, error) ||
        !qmp_get_string_arg(args, "tls-creds", FALSE, &tls_creds, error) ||
        !qmp_get_string_arg(args, "tls-hostname", FALSE, &tls_hostname, error))
        return NULL;
    /* "" turns TLS off; an id must name credentials that exist (the endpoint is checked at use). */
    if (tls_creds && *tls_creds && !g_hash_table_contains(mig->tls_objects, tls_creds)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "Parameter 'tls-creds': no tls-creds-x509 object '%s'", tls_creds);
        return NULL;
    }
    p.throttle_initial = initial;
    p.throttle_increment = increment;
    p.max_throttle = max_throttle;
    p.throttle_trigger_threshold = trigger;
    if (comp && strcmp(comp, "none") != 0 && strcmp(comp, "zstd") != 0) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "Parameter 'multifd-compression': '%s' is not supported (none, zstd)", comp);
        return NULL;
    }
    mig->params = p;
    mig->zstd_level = level;
    if (comp)
        mig->compress = strcmp(comp, "zstd") == 0;
    if (tls_creds) {
        g_free(mig->tls_creds);
        mig->tls_creds = *tls_creds ? g_strdup(tls_creds) : NULL;
    }
    if (tls_hostname) {
        g_free(mig->tls_hostname);
        mig->tls_hostname = *tls_hostname ? g_strdup(tls_hostname) : NULL;
    }
    return json_new_object();
}

/*
 * Capabilities as QEMU names them. auto-converge and multifd are
 * switches; events is always on; postcopy-ram is on (migrate-start-postcopy
 * works without asking first) unless multifd is, as QEMU 7.2 refuses the
 * two together: it is reported off then, and asking for both fails.
 */
static JsonValue *cmd_query_migrate_capabilities(const JsonValue *args, void *opaque,
                                                 GError **error)
{
    Migrate *mig = opaque;
    const struct {
        const char *name;
        gboolean state;
    } caps[] = {
        { "auto-converge", mig->params.auto_converge },
        { "events", TRUE },
        { "postcopy-ram", !mig->params.multifd },
        { "multifd", mig->params.multifd },
    };
    JsonValue *list;

    if (!qmp_check_args(args, NULL, error))
        return NULL;
    list = json_new_array();
    for (size_t i = 0; i < G_N_ELEMENTS(caps); i++) {
        JsonValue *cap = json_new_object();
        json_object_set_string(cap, "capability", caps[i].name);
        json_object_set_bool(cap, "state", caps[i].state);
        json_array_append(list, cap);
    }
    return list;
}

static JsonValue *cmd_migrate_set_capabilities(const JsonValue *args, void *opaque,
                                               GError **error)
{
    static const char *const allowed[] = { "capabilities", NULL };
    static const char *const cap_keys[] = { "capability", "state", NULL };
    Migrate *mig = opaque;
    const JsonValue *list;
    gboolean auto_converge = mig->params.auto_converge;
    gboolean multifd = mig->params.multifd;
    int postcopy = -1;          /* postcopy-ram as asked for, or -1 */

    if (!qmp_check_args(args, allowed, error))
        return NULL;
    list = args ? json_object_get(args, "capabilities") : NULL;
    if (!list || json_get_type(list) != JSON_ARRAY) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "Parameter 'capabilities' is missing or not an array");
        return NULL;
    }
    if (mig->src_running) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "There's a migration process in progress");
        return NULL;
    }
    /* All or nothing, as for the parameters. */
    for (size_t i = 0; i < json_array_get_length(list); i++) {
        const JsonValue *cap = json_array_get_item(list, i);
        const char *name = NULL;
        gboolean state = FALSE;

        if (json_get_type(cap) != JSON_OBJECT) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                        "Parameter 'capabilities[%zu]' expects an object", i);
            return NULL;
        }
        if (!qmp_check_args(cap, cap_keys, error) ||
            !qmp_get_string_arg(cap, "capability", TRUE, &name, error) ||
            !qmp_get_bool_arg(cap, "state", TRUE, &state, error))
            return NULL;
        if (strcmp(name, "auto-converge") == 0) {
            auto_converge = state;
        } else if (strcmp(name, "multifd") == 0) {
            multifd = state;
        } else if (strcmp(name, "postcopy-ram") == 0) {
            postcopy = state;
        } else if (strcmp(name, "events") == 0) {
            if (!state) {
                g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                            "Capability '%s' is always on in vireo-vmm", name);
                return NULL;
            }
        } else {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                        "Capability '%s' is not supported by vireo-vmm "
                        "(auto-converge, events, multifd, postcopy-ram)", name);
            return NULL;
        }
    }
    /* postcopy-ram follows multifd: asking for it with multifd is QEMU's error. */
    if (postcopy == TRUE && multifd) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "Postcopy is not yet compatible with multifd");
        return NULL;
    }
    if (postcopy == FALSE && !multifd) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "Capability 'postcopy-ram' is always on in vireo-vmm unless multifd is on");
        return NULL;
    }
    mig->params.auto_converge = auto_converge;
    mig->params.multifd = multifd;
    return json_new_object();
}

/*
 * x-vireo-ram-checksum: a hash of every non-zero page with its offset, so
 * RAM compares equal whether zero pages are allocated or holes. Holes are
 * skipped unread. For tests; reads RAM on the loop thread.
 */
static JsonValue *cmd_ram_checksum(const JsonValue *args, void *opaque, GError **error)
{
    Migrate *mig = opaque;
    MigRam ram = machine_ram(mig->m);
    MigHasher h;
    uint64_t pages = 0;
    off_t pos = 0;
    JsonValue *obj;
    g_autofree char *hex = NULL;

    if (!qmp_check_args(args, NULL, error))
        return NULL;
    mig_hasher_init(&h, 0);
    while (pos < (off_t)ram.size) {
        off_t data, hole;

        if (mig_ram_next_data(&ram, pos, &data, &hole) <= 0)
            break;
        for (uint64_t off = data & ~(uint64_t)(MIG_PAGE_SIZE - 1); off < (uint64_t)hole;
             off += MIG_PAGE_SIZE) {
            const uint8_t *page = ram.base + off;
            if (mig_ram_page_is_zero(page))
                continue;
            mig_hasher_update(&h, &off, sizeof(off));
            mig_hasher_update(&h, page, MIG_PAGE_SIZE);
            pages++;
        }
        pos = hole;
    }
    hex = g_strdup_printf("%016" G_GINT64_MODIFIER "x", (guint64)mig_hasher_final(&h));
    obj = json_new_object();
    json_object_set_string(obj, "checksum", hex);
    json_object_set_int(obj, "pages", pages);
    return obj;
}

/* --- TLS credentials: QEMU's tls-creds-x509 objects --- */

gboolean migrate_add_tls_creds(Migrate *mig, const char *id, const char *dir, gboolean server,
                               gboolean verify_peer, GError **error)
{
    const char *who = server ? "server" : "client";
    g_autofree char *cacert = g_build_filename(dir, "ca-cert.pem", NULL);
    g_autofree char *cert = g_strdup_printf("%s/%s-cert.pem", dir, who);
    g_autofree char *key = g_strdup_printf("%s/%s-key.pem", dir, who);
    g_autoptr(GError) err = NULL;
    TlsCreds *creds;

    if (!*id) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "tls-creds-x509: the id is empty");
        return FALSE;
    }
    if (g_hash_table_contains(mig->tls_objects, id)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "an object with id '%s' exists already", id);
        return FALSE;
    }
    /* As QEMU: a client may go without a certificate of its own (neither file there). */
    if (!server && access(cert, F_OK) != 0 && access(key, F_OK) != 0) {
        g_clear_pointer(&cert, g_free);
        g_clear_pointer(&key, g_free);
    }
    creds = tls_creds_new(server ? TLS_ENDPOINT_SERVER : TLS_ENDPOINT_CLIENT, cacert, cert, key,
                          verify_peer, &err);
    if (!creds) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT, "tls-creds-x509 '%s': %s",
                    id, err->message);
        return FALSE;
    }
    g_hash_table_insert(mig->tls_objects, g_strdup(id), creds);
    return TRUE;
}

gboolean migrate_set_tls_creds(Migrate *mig, const char *id, GError **error)
{
    if (!g_hash_table_contains(mig->tls_objects, id)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "--migrate-tls-creds '%s': no --object tls-creds-x509 with that id", id);
        return FALSE;
    }
    g_free(mig->tls_creds);
    mig->tls_creds = g_strdup(id);
    return TRUE;
}

/* QEMU's object-add, for tls-creds-x509 only (the one object type here). */
static JsonValue *cmd_object_add(const JsonValue *args, void *opaque, GError **error)
{
    static const char *const allowed[] = { "qom-type", "id", "dir", "endpoint", "verify-peer",
                                           NULL };
    Migrate *mig = opaque;
    const char *type = NULL, *id = NULL, *dir = NULL, *endpoint = "client";
    gboolean verify_peer = TRUE;
    g_autoptr(GError) err = NULL;

    if (!qmp_check_args(args, allowed, error) ||
        !qmp_get_string_arg(args, "qom-type", TRUE, &type, error) ||
        !qmp_get_string_arg(args, "id", TRUE, &id, error))
        return NULL;
    if (strcmp(type, "tls-creds-x509") != 0) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "object type '%s' is not supported by vireo-vmm (tls-creds-x509)", type);
        return NULL;
    }
    if (!qmp_get_string_arg(args, "dir", TRUE, &dir, error) ||
        !qmp_get_string_arg(args, "endpoint", FALSE, &endpoint, error) ||
        !qmp_get_bool_arg(args, "verify-peer", FALSE, &verify_peer, error))
        return NULL;
    if (strcmp(endpoint, "server") != 0 && strcmp(endpoint, "client") != 0) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "Parameter 'endpoint' expects server or client");
        return NULL;
    }
    if (!migrate_add_tls_creds(mig, id, dir, strcmp(endpoint, "server") == 0, verify_peer,
                               &err)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "%s", err->message);
        return NULL;
    }
    return json_new_object();
}

/* A migration under way keeps its own reference: it goes on. */
static JsonValue *cmd_object_del(const JsonValue *args, void *opaque, GError **error)
{
    static const char *const allowed[] = { "id", NULL };
    Migrate *mig = opaque;
    const char *id = NULL;

    if (!qmp_check_args(args, allowed, error) || !qmp_get_string_arg(args, "id", TRUE, &id, error))
        return NULL;
    if (!g_hash_table_remove(mig->tls_objects, id)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "object '%s' not found", id);
        return NULL;
    }
    return json_new_object();
}

static const struct {
    const char *name;
    QmpCommandFn fn;
} migrate_commands[] = {
    { "migrate", cmd_migrate },
    { "migrate_cancel", cmd_migrate_cancel },
    { "migrate-start-postcopy", cmd_migrate_start_postcopy },
    { "migrate-pause", cmd_migrate_pause },
    { "migrate-recover", cmd_migrate_recover },
    { "migrate-incoming", cmd_migrate_incoming },
    { "query-migrate", cmd_query_migrate },
    { "migrate-set-parameters", cmd_migrate_set_parameters },
    { "query-migrate-parameters", cmd_query_migrate_parameters },
    { "migrate-set-capabilities", cmd_migrate_set_capabilities },
    { "query-migrate-capabilities", cmd_query_migrate_capabilities },
    { "x-vireo-ram-checksum", cmd_ram_checksum },
    { "object-add", cmd_object_add },
    { "object-del", cmd_object_del },
};

void migrate_qmp_register(Migrate *mig, QmpServer *server)
{
    mig->qmp = server;
    for (size_t i = 0; i < G_N_ELEMENTS(migrate_commands); i++)
        qmp_server_register(server, migrate_commands[i].name, migrate_commands[i].fn, mig);
}
