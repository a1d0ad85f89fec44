/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * migrate, migrate-postcopy and host-evacuate: peer-to-peer live migration
 * driven by the source daemon (docs/daemon.md, "Migration"). The client
 * makes one MIGRATE_PERFORM3_PARAMS call with VIR_MIGRATE_PEER2PEER, as
 * virsh migrate --p2p does; the source daemon talks to the destination
 * itself. migrate --postcopy-after-precopy polls the job's statistics for
 * the end of the first pass (virsh waits for the MIGRATION_ITERATION event,
 * which vireod sends too, but polling works against any libvirtd).
 */
#include <stdio.h>
#include <string.h>

#include "vireo/cli-commands.h"
#include "vireo/cli-out.h"
#include "vireo/rpc-error.h"
#include "vireo/util.h"

/* virDomainMigrateFlags */
enum { MIG_LIVE = 1, MIG_PEER2PEER = 2, MIG_PERSIST_DEST = 8, MIG_UNDEFINE_SOURCE = 16,
       MIG_PAUSED = 32, MIG_COMPRESSED = 2048, MIG_POSTCOPY = 1 << 15, MIG_TLS = 1 << 16,
       MIG_PARALLEL = 1 << 17, MIG_POSTCOPY_RESUME = 1 << 19 };
enum { TP_INT = 1, TP_ULLONG = 4, TP_STRING = 7 };
#define EVACUATE_DEFAULT_BATCH 10

typedef struct Migration {
    RpcClient *client;
    RemoteNonnullDomain dom;    /* borrowed */
    const char *desturi;
    guint flags;
    guint64 bandwidth;          /* MiB/s, 0: none given */
    const char *migrateuri;
    const char *tls_destination;
    guint parallel;             /* connections, 0: none given */
    GError *error;
    gint done;                  /* atomic */
} Migration;

static gboolean migration_run(Migration *m)
{
    RemoteTypedParam params[4];
    RemoteDomainMigratePerform3ParamsArgs a = {
        .dom = m->dom, .dconnuri = (char *)m->desturi, .params = params, .flags = m->flags,
    };
    g_auto(RemoteDomainMigratePerform3ParamsRet) r = { 0 };

    if (m->bandwidth)
        params[a.n_params++] = (RemoteTypedParam) {
            .field = "bandwidth", .value = { .type = TP_ULLONG, .u.ul = m->bandwidth } };
    if (m->migrateuri)
        params[a.n_params++] = (RemoteTypedParam) {
            .field = "migrate_uri", .value = { .type = TP_STRING, .u.s = (char *)m->migrateuri } };
    if (m->parallel)
        params[a.n_params++] = (RemoteTypedParam) {
            .field = "parallel.connections",
            .value = { .type = TP_INT, .u.i = (gint32)m->parallel } };
    if (m->tls_destination)
        params[a.n_params++] = (RemoteTypedParam) {
            .field = "tls.destination",
            .value = { .type = TP_STRING, .u.s = (char *)m->tls_destination } };
    return rpc_client_call(m->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_MIGRATE_PERFORM3_PARAMS,
                           &a, &r, &m->error);
}

static gpointer migration_thread(gpointer data)
{
    Migration *m = data;

    migration_run(m);
    g_atomic_int_set(&m->done, 1);
    return NULL;
}

/*
 * libvirt's memory_iteration is the pass under way (1: the first, over all
 * of RAM): from 2 on, the first pass is done, when virsh's
 * MIGRATION_ITERATION handler switches.
 */
static gboolean first_pass_done(CliCtl *ctl, const RemoteNonnullDomain *dom)
{
    RemoteDomainGetJobStatsArgs a = { .dom = *dom };
    g_auto(RemoteDomainGetJobStatsRet) r = { 0 };

    if (!rpc_client_call(ctl->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_GET_JOB_STATS, &a, &r,
                         NULL))
        return FALSE;
    for (guint i = 0; i < r.n_params; i++) {
        if (!strcmp(r.params[i].field, "memory_iteration") &&
            r.params[i].value.type == TP_ULLONG)
            return r.params[i].value.u.ul >= 2;
    }
    return FALSE;
}

static void start_postcopy(CliCtl *ctl, const RemoteNonnullDomain *dom)
{
    RemoteDomainMigrateStartPostCopyArgs a = { .dom = *dom };
    g_autoptr(GError) err = NULL;

    g_debug("iteration 1 finished; switching to post-copy");
    if (!rpc_client_call(ctl->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_MIGRATE_START_POST_COPY,
                         &a, NULL, &err))
        g_debug("switching to post-copy failed: %s", err->message);
}

/* virsh's vshPrintJobProgress, on stderr. */
static void print_progress(guint64 remaining, guint64 total)
{
    int pct = remaining == 0 ? 100 : total ? (int)(100 - remaining * 100 / total) : 0;

    fprintf(stderr, "\rMigration: [%3d %%]", pct);
    fflush(stderr);
}

static const CliOptDef opts_migrate[] = {
    { "live", CLI_OPT_BOOL, 0, "live migration", 0 },
    { "p2p", CLI_OPT_BOOL, 0, "peer-2-peer migration (always: the source daemon drives it)", 0 },
    { "persistent", CLI_OPT_BOOL, 0, "persist VM on destination", 0 },
    { "undefinesource", CLI_OPT_BOOL, 0, "undefine VM on source", 0 },
    { "suspend", CLI_OPT_BOOL, 0, "do not restart the domain on the destination host", 0 },
    { "compressed", CLI_OPT_BOOL, 0, "compress repeated pages during live migration", 0 },
    { "tls", CLI_OPT_BOOL, 0, "use TLS for the migration stream "
      "(certificates in /etc/pki/qemu on both hosts)", 0 },
    { "verbose", CLI_OPT_BOOL, 0, "display the progress of migration", 0 },
    { "postcopy", CLI_OPT_BOOL, 0,
      "enable post-copy migration; switch to it using migrate-postcopy command", 0 },
    { "postcopy-after-precopy", CLI_OPT_BOOL, 0,
      "automatically switch to post-copy migration after one pass of pre-copy", 0 },
    { "postcopy-resume", CLI_OPT_BOOL, 0, "resume failed post-copy migration", 0 },
    { "parallel", CLI_OPT_BOOL, 0, "enable parallel migration", 0 },
    { "parallel-connections", CLI_OPT_INT, 0,
      "number of connections for parallel migration", 0 },
    { "domain", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL | CLI_OPT_DOMAIN,
      "domain name, id or uuid", CLI_LIST_ACTIVE },
    { "desturi", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL,
      "connection URI of the destination host as seen from the source "
      "(vireo+tcp://HOST/system)", 0 },
    { "migrateuri", CLI_OPT_STRING, 0, "migration URI (tcp:HOST:PORT), usually can be omitted", 0 },
    { "tls-destination", CLI_OPT_STRING, 0,
      "override the destination host name used for TLS verification", 0 },
    { "bandwidth", CLI_OPT_INT, 0, "migration bandwidth limit in MiB/s", 0 },
    { "timeout", CLI_OPT_INT, 0, "suspend the guest after timeout seconds", 0 },
    { NULL, 0, 0, NULL, 0 },
};

static gboolean cmd_migrate(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    Migration m = { 0 };
    guint bandwidth = 0, timeout = 0;
    gboolean verbose = cli_cmd_has(cmd, "verbose");
    gboolean after_precopy = cli_cmd_has(cmd, "postcopy-after-precopy");
    gboolean suspended = FALSE, switched = FALSE;
    GThread *th;
    gint64 start;

    if (!cli_cmd_requires(cmd, "postcopy-after-precopy", "postcopy") ||
        !cli_cmd_requires(cmd, "tls-destination", "tls") ||
        !cli_cmd_requires(cmd, "parallel-connections", "parallel"))
        return FALSE;
    if (cli_cmd_get_uint(cmd, "bandwidth", &bandwidth) < 0 ||
        cli_cmd_get_uint(cmd, "timeout", &timeout) < 0 ||
        cli_cmd_get_uint(cmd, "parallel-connections", &m.parallel) < 0)
        return FALSE;
    if (cli_cmd_has(cmd, "timeout") && (!cli_cmd_has(cmd, "live") || timeout == 0)) {
        cli_error("%s", cli_cmd_has(cmd, "live") ? "migrate: Invalid timeout"
                  : "migrate: Unexpected timeout for offline migration");
        return FALSE;
    }
    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL))
        return FALSE;
    m.client = ctl->client;
    m.dom = dom;
    m.desturi = cli_cmd_get(cmd, "desturi");
    m.migrateuri = cli_cmd_get(cmd, "migrateuri");
    m.tls_destination = cli_cmd_get(cmd, "tls-destination");
    m.bandwidth = bandwidth;
    m.flags = MIG_PEER2PEER |
              (cli_cmd_has(cmd, "live") ? MIG_LIVE : 0) |
              (cli_cmd_has(cmd, "persistent") ? MIG_PERSIST_DEST : 0) |
              (cli_cmd_has(cmd, "undefinesource") ? MIG_UNDEFINE_SOURCE : 0) |
              (cli_cmd_has(cmd, "suspend") ? MIG_PAUSED : 0) |
              (cli_cmd_has(cmd, "compressed") ? MIG_COMPRESSED : 0) |
              (cli_cmd_has(cmd, "postcopy") ? MIG_POSTCOPY : 0) |
              (cli_cmd_has(cmd, "tls") ? MIG_TLS : 0) |
              (cli_cmd_has(cmd, "parallel") ? MIG_PARALLEL : 0) |
              (cli_cmd_has(cmd, "postcopy-resume") ? MIG_POSTCOPY_RESUME : 0);
    if (!verbose && !timeout && !after_precopy) {
        if (!migration_run(&m)) {
            cli_ctl_set_error(ctl, m.error);
            return FALSE;
        }
        return TRUE;
    }
    /* The call runs in a thread; this one watches the job, as virsh does. */
    start = g_get_monotonic_time();
    th = g_thread_new("migrate", migration_thread, &m);
    while (!g_atomic_int_get(&m.done)) {
        g_usleep(100 * 1000);
        if (timeout && !suspended && g_get_monotonic_time() - start >= (gint64)timeout * G_USEC_PER_SEC) {
            RemoteDomainSuspendArgs sa = { .dom = dom };
            g_autoptr(GError) err = NULL;

            suspended = TRUE;
            if (!rpc_client_call(ctl->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_SUSPEND, &sa,
                                 NULL, &err))
                g_debug("suspend on timeout: %s", err->message);
            else if (verbose)
                fprintf(stderr, "\nmigrate: Suspending the domain after %u s\n", timeout);
        }
        if (after_precopy && !switched && first_pass_done(ctl, &dom)) {
            switched = TRUE;
            start_postcopy(ctl, &dom);
        }
        if (verbose) {
            RemoteDomainGetJobInfoArgs ja = { .dom = dom };
            RemoteDomainGetJobInfoRet jr = { 0 };

            if (rpc_client_call(ctl->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_GET_JOB_INFO, &ja,
                                &jr, NULL) && jr.type != 0 && jr.dataTotal)
                print_progress(jr.dataRemaining, jr.dataTotal);
        }
    }
    g_thread_join(th);
    if (m.error) {
        if (verbose)
            fprintf(stderr, "\n");
        cli_ctl_set_error(ctl, m.error);
        return FALSE;
    }
    if (verbose) {
        print_progress(0, 0);
        fprintf(stderr, "\n");
    }
    return TRUE;
}

/* ------------------------------------------------------------ migrate-postcopy */

static const CliOptDef opts_migrate_postcopy[] = {
    { "domain", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL | CLI_OPT_DOMAIN,
      "domain name, id or uuid", CLI_LIST_ACTIVE },
    { NULL, 0, 0, NULL, 0 },
};

static gboolean cmd_migrate_postcopy(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    RemoteDomainMigrateStartPostCopyArgs a = { 0 };

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL))
        return FALSE;
    a.dom = dom;
    return cli_call(ctl, REMOTE_PROC_DOMAIN_MIGRATE_START_POST_COPY, &a, NULL);
}

/* ------------------------------------------------------------ host-evacuate */

static const CliOptDef opts_evacuate[] = {
    { "desturi", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL,
      "connection URI of the destination host as seen from this one", 0 },
    { "batch", CLI_OPT_INT, 0, "domains migrated at the same time (default 10)", 0 },
    { "tls", CLI_OPT_BOOL, 0, "use TLS for the migration streams", 0 },
    { NULL, 0, 0, NULL, 0 },
};

static void evacuate_one(gpointer data, gpointer user)
{
    Migration *m = data;

    migration_run(m);
    g_atomic_int_set(&m->done, 1);
}

/*
 * XenServer's host-evacuate: every running domain leaves, @batch at a
 * time (the source daemon runs each migration as its own job, so they
 * proceed in parallel).
 */
static gboolean cmd_host_evacuate(CliCtl *ctl, const CliCmd *cmd)
{
    RemoteConnectListAllDomainsArgs la = { .need_results = 1, .flags = CLI_LIST_ACTIVE };
    g_auto(RemoteConnectListAllDomainsRet) lr = { 0 };
    guint batch = EVACUATE_DEFAULT_BATCH;
    g_autofree Migration *migs = NULL;
    GThreadPool *pool;
    gboolean ok = TRUE;
    guint failed = 0;

    if (cli_cmd_get_uint(cmd, "batch", &batch) < 0)
        return FALSE;
    if (batch == 0) {
        cli_error("%s", "host-evacuate: --batch must be at least 1");
        return FALSE;
    }
    if (!cli_call(ctl, REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS, &la, &lr))
        return FALSE;
    migs = g_new0(Migration, lr.n_domains + 1);
    pool = g_thread_pool_new(evacuate_one, NULL, (gint)batch, TRUE, NULL);
    for (guint i = 0; i < lr.n_domains; i++) {
        RemoteDomainIsPersistentArgs pa = { .dom = lr.domains[i] };
        RemoteDomainIsPersistentRet pr = { 0 };

        /* The definition moves with a persistent domain; a transient one stays transient. */
        if (!cli_call(ctl, REMOTE_PROC_DOMAIN_IS_PERSISTENT, &pa, &pr))
            cli_ctl_reset_error(ctl);
        migs[i] = (Migration) {
            .client = ctl->client, .dom = lr.domains[i], .desturi = cli_cmd_get(cmd, "desturi"),
            .flags = MIG_PEER2PEER | MIG_LIVE |
                     (pr.persistent ? MIG_PERSIST_DEST | MIG_UNDEFINE_SOURCE : 0) |
                     (cli_cmd_has(cmd, "tls") ? MIG_TLS : 0),
        };
        g_thread_pool_push(pool, &migs[i], NULL);
    }
    g_thread_pool_free(pool, FALSE, TRUE);
    for (guint i = 0; i < lr.n_domains; i++) {
        if (migs[i].error) {
            cli_print("%-20s failed: %s\n", migs[i].dom.name, migs[i].error->message);
            g_clear_error(&migs[i].error);
            failed++;
            ok = FALSE;
        } else {
            cli_print("%-20s migrated\n", migs[i].dom.name);
        }
    }
    if (!ok)
        cli_error("host-evacuate: %u of %u domains could not be migrated", failed, lr.n_domains);
    return ok;
}

const CliCmdDef cli_migrate_cmds[] = {
    { "migrate", cmd_migrate, opts_migrate, "migrate domain to another host",
      "Migrate domain to another host (peer-to-peer, driven by the source daemon).", 0 },
    { "migrate-postcopy", cmd_migrate_postcopy, opts_migrate_postcopy,
      "Switch running migration from pre-copy to post-copy",
      "Switch running migration from pre-copy to post-copy. The migration must have been "
      "started with --postcopy option.", 0 },
    { "host-evacuate", cmd_host_evacuate, opts_evacuate,
      "migrate every running domain to another host",
      "Live-migrate all running domains to another host, several at a time.", 0 },
    { NULL, NULL, NULL, NULL, NULL, 0 },
};
