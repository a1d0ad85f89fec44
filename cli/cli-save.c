/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Save, restore, managed save and job commands of `vireo`: save, restore,
 * save-image-dumpxml, managedsave, managedsave-remove, domjobinfo,
 * domjobabort, migrate-setmaxdowntime, migrate-getmaxdowntime,
 * migrate-setspeed, migrate-getspeed. Wording, procedures and output
 * follow virsh 9.0 (checked against it by tests/daemon/test_vireod.py).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vireo/cli-commands.h"
#include "vireo/cli-out.h"
#include "vireo/rpc-error.h"
#include "vireo/util.h"

#define OPT_DOMAIN(list_flags) \
    { "domain", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL | CLI_OPT_DOMAIN, \
      "domain name, id or uuid", list_flags }
#define OPT_BOOL(name, help) { name, CLI_OPT_BOOL, 0, help, 0 }
#define OPT_END { NULL, 0, 0, NULL, 0 }

/* virDomainSaveRestoreFlags */
enum { SAVE_BYPASS_CACHE = 1, SAVE_RUNNING = 2, SAVE_PAUSED = 4 };

static gboolean save_flags(const CliCmd *cmd, guint *flags)
{
    if (!cli_cmd_exclusive(cmd, "running", "paused"))
        return FALSE;
    *flags = (cli_cmd_has(cmd, "bypass-cache") ? SAVE_BYPASS_CACHE : 0) |
             (cli_cmd_has(cmd, "running") ? SAVE_RUNNING : 0) |
             (cli_cmd_has(cmd, "paused") ? SAVE_PAUSED : 0);
    return TRUE;
}

/* libvirt's client library makes save and restore paths absolute. */
static char *abs_path(const char *path)
{
    return g_canonicalize_filename(path, NULL);
}

/* ------------------------------------------------------------ save */

typedef struct SaveThread {
    RpcClient *client;
    RemoteNonnullDomain dom;    /* borrowed */
    gint32 proc;
    const void *args;
    GError *error;
    gint done;
} SaveThread;

/* The RPC client allows calls from several threads at once. */
static gpointer save_thread(gpointer opaque)
{
    SaveThread *st = opaque;

    rpc_client_call(st->client, REMOTE_PROGRAM, st->proc, st->args, NULL, &st->error);
    g_atomic_int_set(&st->done, 1);
    return NULL;
}

/* virsh's progress line: the share of the job's data already written. */
static void print_progress(const char *label, guint64 remaining, guint64 total)
{
    int pct = total ? (int)(100 - remaining * 100 / total) : 0;

    fprintf(stderr, "\r%s: [%3d %%]", label, pct);
    fflush(stderr);
}

/*
 * Runs the call in a thread while this one watches the job, as virsh's
 * virshWatchJob: a progress line with --verbose, and the blank line virsh
 * prints when the job ends.
 */
static gboolean run_watched(CliCtl *ctl, SaveThread *st, const char *label, gboolean verbose)
{
    GThread *t = g_thread_new("vireo-save", save_thread, st);
    RemoteDomainGetJobInfoArgs ja = { .dom = st->dom };

    while (!g_atomic_int_get(&st->done)) {
        g_usleep(50 * 1000);
        if (verbose && !g_atomic_int_get(&st->done)) {
            RemoteDomainGetJobInfoRet jr = { 0 };

            if (rpc_client_call(ctl->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_GET_JOB_INFO,
                                &ja, &jr, NULL) && jr.type != 0 && jr.dataTotal)
                print_progress(label, jr.dataRemaining, jr.dataTotal);
        }
    }
    g_thread_join(t);
    if (st->error) {
        cli_ctl_set_error(ctl, g_steal_pointer(&st->error));
        return FALSE;
    }
    if (verbose)
        print_progress(label, 0, 1);
    cli_print_extra(ctl, "\n");
    return TRUE;
}

static const CliOptDef opts_save[] = {
    OPT_DOMAIN(CLI_LIST_ACTIVE),
    { "file", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL | CLI_OPT_FILE,
      "where to save the data", 0 },
    OPT_BOOL("bypass-cache", "avoid file system cache when saving"),
    { "xml", CLI_OPT_STRING, CLI_OPT_FILE, "filename containing updated XML for the target", 0 },
    OPT_BOOL("running", "set domain to be running on restore"),
    OPT_BOOL("paused", "set domain to be paused on restore"),
    OPT_BOOL("verbose", "display the progress of save"),
    OPT_END,
};

static gboolean cmd_save(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    g_autofree char *to = abs_path(cli_cmd_get(cmd, "file"));
    g_autofree char *xml = NULL;
    const char *name, *xmlfile = cli_cmd_get(cmd, "xml");
    SaveThread st = { 0 };
    guint flags;

    if (!save_flags(cmd, &flags) || !cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, &name))
        return FALSE;
    if (xmlfile && !g_file_get_contents(xmlfile, &xml, NULL, NULL)) {
        cli_error("Failed to read file '%s' to save", xmlfile);
        return FALSE;
    }
    RemoteDomainSaveFlagsArgs fa = { .dom = dom, .to = to, .dxml = xml, .flags = flags };
    RemoteDomainSaveArgs pa = { .dom = dom, .to = to };

    st.client = ctl->client;
    st.dom = dom;
    /* virsh calls the old procedure when it can. */
    st.proc = flags || xml ? REMOTE_PROC_DOMAIN_SAVE_FLAGS : REMOTE_PROC_DOMAIN_SAVE;
    st.args = flags || xml ? (const void *)&fa : (const void *)&pa;
    if (!run_watched(ctl, &st, "Save", cli_cmd_has(cmd, "verbose"))) {
        cli_error("Failed to save domain '%s' to %s", name, to);
        return FALSE;
    }
    cli_print_extra(ctl, "Domain '%s' saved to %s\n", name, to);
    return TRUE;
}

/* ------------------------------------------------------------ restore */

static const CliOptDef opts_restore[] = {
    { "file", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL | CLI_OPT_FILE,
      "the state to restore", 0 },
    OPT_BOOL("bypass-cache", "avoid file system cache when restoring"),
    { "xml", CLI_OPT_STRING, CLI_OPT_FILE, "filename containing updated XML for the target", 0 },
    OPT_BOOL("running", "restore domain into running state"),
    OPT_BOOL("paused", "restore domain into paused state"),
    OPT_BOOL("reset-nvram", "re-initialize NVRAM from its pristine template"),
    OPT_END,
};

static gboolean cmd_restore(CliCtl *ctl, const CliCmd *cmd)
{
    g_autofree char *from = abs_path(cli_cmd_get(cmd, "file"));
    g_autofree char *xml = NULL;
    const char *xmlfile = cli_cmd_get(cmd, "xml");
    gboolean ok;
    guint flags;

    if (!save_flags(cmd, &flags))
        return FALSE;
    if (cli_cmd_has(cmd, "reset-nvram"))
        flags |= 8;
    if (xmlfile && !g_file_get_contents(xmlfile, &xml, NULL, NULL)) {
        cli_error("Failed to read file '%s' to restore", xmlfile);
        return FALSE;
    }
    if (flags || xml) {
        RemoteDomainRestoreFlagsArgs a = { .from = from, .dxml = xml, .flags = flags };

        ok = cli_call(ctl, REMOTE_PROC_DOMAIN_RESTORE_FLAGS, &a, NULL);
    } else {
        RemoteDomainRestoreArgs a = { .from = from };

        ok = cli_call(ctl, REMOTE_PROC_DOMAIN_RESTORE, &a, NULL);
    }
    if (!ok) {
        cli_error("Failed to restore domain from %s", from);
        return FALSE;
    }
    cli_print_extra(ctl, "Domain restored from %s\n", from);
    return TRUE;
}

static const CliOptDef opts_save_image_dumpxml[] = {
    { "file", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL | CLI_OPT_FILE,
      "saved state file to read", 0 },
    OPT_BOOL("security-info", "include security sensitive information in XML dump"),
    { "xpath", CLI_OPT_STRING, 0, "xpath expression to filter the XML document", 0 },
    OPT_BOOL("wrap", "wrap xpath results in an common root element"),
    OPT_END,
};

static gboolean cmd_save_image_dumpxml(CliCtl *ctl, const CliCmd *cmd)
{
    g_autofree char *file = abs_path(cli_cmd_get(cmd, "file"));
    RemoteDomainSaveImageGetXmlDescArgs a = {
        .file = file, .flags = cli_cmd_has(cmd, "security-info") ? 1 : 0,
    };
    g_auto(RemoteDomainSaveImageGetXmlDescRet) r = { 0 };

    if (cli_cmd_get(cmd, "xpath")) {
        cli_error("%s", "--xpath is not supported by vireo");
        return FALSE;
    }
    if (!cli_call(ctl, REMOTE_PROC_DOMAIN_SAVE_IMAGE_GET_XML_DESC, &a, &r))
        return FALSE;
    cli_print("%s", r.xml);
    return TRUE;
}

/* ------------------------------------------------------------ managed save */

static const CliOptDef opts_managedsave[] = {
    OPT_DOMAIN(CLI_LIST_PERSISTENT | CLI_LIST_ACTIVE),
    OPT_BOOL("bypass-cache", "avoid file system cache when saving"),
    OPT_BOOL("running", "set domain to be running on next start"),
    OPT_BOOL("paused", "set domain to be paused on next start"),
    OPT_BOOL("verbose", "display the progress of save"),
    OPT_END,
};

static gboolean cmd_managedsave(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    const char *name;
    RemoteDomainManagedSaveArgs a = { 0 };
    SaveThread st = { 0 };
    guint flags;

    if (!save_flags(cmd, &flags) || !cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, &name))
        return FALSE;
    a = (RemoteDomainManagedSaveArgs) { .dom = dom, .flags = flags };
    st.client = ctl->client;
    st.dom = dom;
    st.proc = REMOTE_PROC_DOMAIN_MANAGED_SAVE;
    st.args = &a;
    if (!run_watched(ctl, &st, "Managedsave", cli_cmd_has(cmd, "verbose"))) {
        cli_error("Failed to save domain '%s' state", name);
        return FALSE;
    }
    cli_print_extra(ctl, "Domain '%s' state saved by libvirt\n", name);
    return TRUE;
}

static gboolean cmd_managedsave_remove(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    const char *name;
    RemoteDomainHasManagedSaveImageArgs ha = { 0 };
    RemoteDomainHasManagedSaveImageRet hr = { 0 };

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, &name))
        return FALSE;
    ha.dom = dom;
    if (!cli_call(ctl, REMOTE_PROC_DOMAIN_HAS_MANAGED_SAVE_IMAGE, &ha, &hr)) {
        cli_error("%s", "Failed to check for domain managed save image");
        return FALSE;
    }
    if (hr.result) {
        RemoteDomainManagedSaveRemoveArgs a = { .dom = dom };

        if (!cli_call(ctl, REMOTE_PROC_DOMAIN_MANAGED_SAVE_REMOVE, &a, NULL)) {
            cli_error("Failed to remove managed save image for domain '%s'", name);
            return FALSE;
        }
        cli_print_extra(ctl, "Removed managedsave image for domain '%s'\n", name);
    } else {
        cli_print_extra(ctl, "Domain '%s' has no manage save image; removal skipped\n", name);
    }
    return TRUE;
}

static const CliOptDef opts_domain_inactive[] = {
    OPT_DOMAIN(CLI_LIST_PERSISTENT | CLI_LIST_INACTIVE),
    OPT_END,
};

/* ------------------------------------------------------------ jobs */

static const char *const job_types[] = {
    "None", "Bounded", "Unbounded", "Completed", "Failed", "Cancelled",
};
static const char *const job_operations[] = {
    "Unknown", "Start", "Save", "Restore", "Incoming migration", "Outgoing migration",
    "Snapshot", "Snapshot revert", "Dump", "Backup", "Snapshot delete",
};

/* virsh's vshPrettyCapacity. */
static double pretty(guint64 v, const char **unit)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double d = v;
    int i = 0;

    while (i < 4 && d >= 1024.0) {
        d /= 1024.0;
        i++;
    }
    *unit = units[i];
    return d;
}

static const RemoteTypedParam *param(const RemoteDomainGetJobStatsRet *r, const char *field)
{
    for (guint i = 0; i < r->n_params; i++)
        if (!strcmp(r->params[i].field, field))
            return &r->params[i];
    return NULL;
}

static gboolean param_ull(const RemoteDomainGetJobStatsRet *r, const char *field, guint64 *v)
{
    const RemoteTypedParam *p = param(r, field);

    if (!p)
        return FALSE;
    switch (p->value.type) {
    case 1: *v = (guint64)p->value.u.i; return TRUE;
    case 2: *v = p->value.u.ui; return TRUE;
    case 3: *v = (guint64)p->value.u.l; return TRUE;
    case 4: *v = p->value.u.ul; return TRUE;
    default: return FALSE;
    }
}

static void line_ull(const RemoteDomainGetJobStatsRet *r, const char *field, const char *label,
                     const char *suffix)
{
    guint64 v;

    if (param_ull(r, field, &v))
        cli_print("%-18s%-12" G_GUINT64_FORMAT "%s\n", label, v, suffix);
}

static void line_size(const RemoteDomainGetJobStatsRet *r, const char *field, const char *label,
                      const char *suffix)
{
    const char *unit;
    guint64 v;

    if (param_ull(r, field, &v)) {
        double d = pretty(v, &unit);

        cli_print("%-18s%.3f %s%s\n", label, d, unit, suffix);
    }
}

static const CliOptDef opts_domjobinfo[] = {
    OPT_DOMAIN(0),
    OPT_BOOL("completed", "return statistics of a recently completed job"),
    OPT_BOOL("keep-completed", "don't destroy statistics of a recently completed job"),
    OPT_BOOL("anystats", "print statistics for any kind of job (even failed ones)"),
    OPT_BOOL("rawstats", "print the raw data returned by libvirt"),
    OPT_END,
};

static gboolean cmd_domjobinfo(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    g_auto(RemoteDomainGetJobStatsRet) r = { 0 };
    RemoteDomainGetJobStatsArgs a = { 0 };
    guint64 op;

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL))
        return FALSE;
    a.dom = dom;
    a.flags = (cli_cmd_has(cmd, "completed") ? 1 : 0) |
              (cli_cmd_has(cmd, "keep-completed") ? 2 : 0);
    if (!cli_call(ctl, REMOTE_PROC_DOMAIN_GET_JOB_STATS, &a, &r))
        return FALSE;
    if (cli_cmd_has(cmd, "rawstats")) {
        cli_print("Job type: %d\n\n", r.type);
        for (guint i = 0; i < r.n_params; i++) {
            guint64 v;

            if (param_ull(&r, r.params[i].field, &v))
                cli_print("%s: %" G_GUINT64_FORMAT "\n", r.params[i].field, v);
        }
        return TRUE;
    }
    cli_print("%-18s%-12s\n", "Job type:",
              r.type >= 0 && r.type < (int)G_N_ELEMENTS(job_types) ? job_types[r.type] : "Unknown");
    /* virsh shows only the type of a failed or cancelled job unless --anystats. */
    if (r.type == 0 || (!cli_cmd_has(cmd, "anystats") && (r.type == 4 || r.type == 5)))
        return TRUE;
    if (param_ull(&r, "operation", &op))
        cli_print("%-18s%-12s\n", "Operation:",
                  op < G_N_ELEMENTS(job_operations) ? job_operations[op] : "Unknown");
    line_ull(&r, "time_elapsed", "Time elapsed:", " ms");
    line_ull(&r, "time_elapsed_net", "Time elapsed w/o network:", " ms");
    line_ull(&r, "time_remaining", "Time remaining:", " ms");
    line_size(&r, "data_processed", "Data processed:", "");
    line_size(&r, "data_remaining", "Data remaining:", "");
    line_size(&r, "data_total", "Data total:", "");
    line_size(&r, "memory_processed", "Memory processed:", "");
    line_size(&r, "memory_remaining", "Memory remaining:", "");
    line_size(&r, "memory_total", "Memory total:", "");
    line_size(&r, "memory_bps", "Memory bandwidth:", "/s");
    line_ull(&r, "memory_dirty_rate", "Dirty rate:", " pages/s");
    line_ull(&r, "memory_page_size", "Page size:", " bytes");
    line_ull(&r, "memory_iteration", "Iteration:", "");
    line_ull(&r, "memory_postcopy_requests", "Postcopy requests:", "");
    line_ull(&r, "memory_constant", "Constant pages:", "");
    line_ull(&r, "memory_normal", "Normal pages:", "");
    line_size(&r, "memory_normal_bytes", "Normal data:", "");
    line_ull(&r, "downtime", r.type == 3 ? "Total downtime:" : "Expected downtime:", " ms");
    line_ull(&r, "setup_time", "Setup time:", " ms");
    return TRUE;
}

static const CliOptDef opts_domjobabort[] = {
    OPT_DOMAIN(CLI_LIST_ACTIVE),
    OPT_BOOL("postcopy", "interrupt post-copy migration"),
    OPT_END,
};

static gboolean cmd_domjobabort(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL))
        return FALSE;
    if (cli_cmd_has(cmd, "postcopy")) {
        RemoteDomainAbortJobFlagsArgs a = { .dom = dom, .flags = 1 };

        return cli_call(ctl, REMOTE_PROC_DOMAIN_ABORT_JOB_FLAGS, &a, NULL);
    } else {
        RemoteDomainAbortJobArgs a = { .dom = dom };

        return cli_call(ctl, REMOTE_PROC_DOMAIN_ABORT_JOB, &a, NULL);
    }
}

/* ------------------------------------------------------------ migration parameters */

static gboolean parse_ull(const CliCmd *cmd, const char *opt, guint64 *v)
{
    const char *s = cli_cmd_get(cmd, opt);
    char *end;

    errno = 0;
    *v = s && *s != '-' ? g_ascii_strtoull(s, &end, 10) : 0;
    if (!s || *s == '-' || !*s || *end || errno) {
        cli_error("Numeric value '%s' for <%s> option is malformed or out of range",
                  s ? s : "", opt);
        return FALSE;
    }
    return TRUE;
}

static const CliOptDef opts_setmaxdowntime[] = {
    OPT_DOMAIN(CLI_LIST_ACTIVE),
    { "downtime", CLI_OPT_INT, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL,
      "maximum tolerable downtime (in milliseconds) for migration", 0 },
    OPT_END,
};

static gboolean cmd_setmaxdowntime(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    RemoteDomainMigrateSetMaxDowntimeArgs a = { 0 };

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL) ||
        !parse_ull(cmd, "downtime", &a.downtime))
        return FALSE;
    if (a.downtime < 1) {
        cli_error("%s", "Invalid downtime.");
        return FALSE;
    }
    a.dom = dom;
    return cli_call(ctl, REMOTE_PROC_DOMAIN_MIGRATE_SET_MAX_DOWNTIME, &a, NULL);
}

static const CliOptDef opts_domain_active[] = {
    OPT_DOMAIN(CLI_LIST_ACTIVE),
    OPT_END,
};

static gboolean cmd_getmaxdowntime(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    RemoteDomainMigrateGetMaxDowntimeArgs a = { 0 };
    RemoteDomainMigrateGetMaxDowntimeRet r = { 0 };

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL))
        return FALSE;
    a.dom = dom;
    if (!cli_call(ctl, REMOTE_PROC_DOMAIN_MIGRATE_GET_MAX_DOWNTIME, &a, &r))
        return FALSE;
    cli_print("%" G_GUINT64_FORMAT "\n", r.downtime);
    return TRUE;
}

static const CliOptDef opts_setspeed[] = {
    OPT_DOMAIN(CLI_LIST_ACTIVE),
    { "bandwidth", CLI_OPT_INT, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL,
      "migration bandwidth limit in MiB/s", 0 },
    OPT_BOOL("postcopy", "set post-copy migration bandwidth"),
    OPT_END,
};

static gboolean cmd_setspeed(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    RemoteDomainMigrateSetMaxSpeedArgs a = { 0 };

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL) ||
        !parse_ull(cmd, "bandwidth", &a.bandwidth))
        return FALSE;
    a.dom = dom;
    a.flags = cli_cmd_has(cmd, "postcopy") ? 1 : 0;
    return cli_call(ctl, REMOTE_PROC_DOMAIN_MIGRATE_SET_MAX_SPEED, &a, NULL);
}

static const CliOptDef opts_getspeed[] = {
    OPT_DOMAIN(CLI_LIST_ACTIVE),
    OPT_BOOL("postcopy", "get post-copy migration bandwidth"),
    OPT_END,
};

static gboolean cmd_getspeed(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    RemoteDomainMigrateGetMaxSpeedArgs a = { 0 };
    RemoteDomainMigrateGetMaxSpeedRet r = { 0 };

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL))
        return FALSE;
    a.dom = dom;
    a.flags = cli_cmd_has(cmd, "postcopy") ? 1 : 0;
    if (!cli_call(ctl, REMOTE_PROC_DOMAIN_MIGRATE_GET_MAX_SPEED, &a, &r))
        return FALSE;
    cli_print("%" G_GUINT64_FORMAT "\n", r.bandwidth);
    return TRUE;
}

const CliCmdDef cli_save_cmds[] = {
    { "domjobabort", cmd_domjobabort, opts_domjobabort, "abort active domain job",
      "Aborts the currently running domain job", 0 },
    { "domjobinfo", cmd_domjobinfo, opts_domjobinfo, "domain job information",
      "Returns information about jobs running on a domain.", 0 },
    { "managedsave", cmd_managedsave, opts_managedsave, "managed save of a domain state",
      "Save and destroy a running domain, so it can be restarted from\n"
      "    the same state at a later time.  When the virsh 'start'\n"
      "    command is next run for the domain, it will automatically\n"
      "    be started from this saved state.", 0 },
    { "managedsave-remove", cmd_managedsave_remove, opts_domain_inactive,
      "Remove managed save of a domain", "Remove an existing managed save state file from a domain",
      CLI_CMD_NO_TRAILER },
    { "migrate-getmaxdowntime", cmd_getmaxdowntime, opts_domain_active,
      "get maximum tolerable downtime",
      "Get maximum tolerable downtime of a domain which is being live-migrated to another host.", 0 },
    { "migrate-getspeed", cmd_getspeed, opts_getspeed, "Get the maximum migration bandwidth",
      "Get the maximum migration bandwidth (in MiB/s) for a domain.", 0 },
    { "migrate-setmaxdowntime", cmd_setmaxdowntime, opts_setmaxdowntime,
      "set maximum tolerable downtime",
      "Set maximum tolerable downtime of a domain which is being live-migrated to another host.", 0 },
    { "migrate-setspeed", cmd_setspeed, opts_setspeed, "Set the maximum migration bandwidth",
      "Set the maximum migration bandwidth (in MiB/s) for a domain which is being migrated to another host.", 0 },
    { "restore", cmd_restore, opts_restore, "restore a domain from a saved state in a file",
      "Restore a domain.", 0 },
    { "save", cmd_save, opts_save, "save a domain state to a file", "Save the RAM state of a running domain.", 0 },
    { "save-image-dumpxml", cmd_save_image_dumpxml, opts_save_image_dumpxml,
      "saved state domain information in XML", "Dump XML of domain information for a saved state file to stdout.", 0 },
    { NULL, NULL, NULL, NULL, NULL, 0 },
};
