/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Host commands: uri, version, hostname, nodeinfo, capabilities. */
#include <string.h>

#include "vireo/cli-commands.h"
#include "vireo/cli-out.h"

/*
 * The libvirt API level whose remote protocol we speak (the procedure
 * table of daemon/rpc/ is libvirt 9.0.0's). `version` reports it where
 * virsh reports its library, so scripts parsing virsh's output keep
 * working; --json also names vireo itself.
 */
#define CLI_LIBVIRT_API_VERSION "9.0.0"

#define OPT_JSON { "json", CLI_OPT_BOOL, 0, "print JSON (see vireo(1))", 0 }
#define OPT_END { NULL, 0, 0, NULL, 0 }

static const CliOptDef opts_json[] = { OPT_JSON, OPT_END };

static gboolean cmd_uri(CliCtl *ctl, const CliCmd *cmd)
{
    if (cli_cmd_has(cmd, "json")) {
        JsonValue *o = json_new_object();

        ctl->json = TRUE;
        json_object_set_string(o, "uri", ctl->uri);
        cli_print_json(o);
    } else {
        cli_print("%s\n", ctl->uri);
    }
    return TRUE;
}

static gboolean cmd_hostname(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteConnectGetHostnameRet) r = { 0 };

    if (!cli_call(ctl, REMOTE_PROC_CONNECT_GET_HOSTNAME, NULL, &r)) {
        cli_error("failed to get hostname");
        return FALSE;
    }
    if (cli_cmd_has(cmd, "json")) {
        JsonValue *o = json_new_object();

        ctl->json = TRUE;
        json_object_set_string(o, "hostname", r.hostname);
        cli_print_json(o);
    } else {
        cli_print("%s\n", r.hostname);
    }
    return TRUE;
}

static const CliOptDef opts_version[] = {
    { "daemon", CLI_OPT_BOOL, 0, "report daemon version too", 0 },
    OPT_JSON,
    OPT_END,
};

static char *version_str(guint64 v)
{
    return g_strdup_printf("%u.%u.%u", (guint)(v / 1000000), (guint)(v / 1000 % 1000),
                           (guint)(v % 1000));
}

static gboolean cmd_version(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteConnectGetTypeRet) type = { 0 };
    RemoteConnectGetVersionRet hv = { 0 };
    RemoteConnectGetLibVersionRet lib = { 0 };
    gboolean json = cli_cmd_has(cmd, "json");
    g_autofree char *hv_str = NULL;

    if (!cli_call(ctl, REMOTE_PROC_CONNECT_GET_TYPE, NULL, &type)) {
        cli_error("failed to get hypervisor type");
        return FALSE;
    }
    if (!json) {
        cli_print("Compiled against library: libvirt %s\n", CLI_LIBVIRT_API_VERSION);
        cli_print("Using library: libvirt %s\n", CLI_LIBVIRT_API_VERSION);
        cli_print("Using API: %s %s\n", type.type, CLI_LIBVIRT_API_VERSION);
    }
    if (!cli_call(ctl, REMOTE_PROC_CONNECT_GET_VERSION, NULL, &hv)) {
        cli_error("failed to get the hypervisor version");
        return FALSE;
    }
    hv_str = version_str(hv.hv_ver);
    if (!json) {
        if (hv.hv_ver == 0)
            cli_print("Cannot extract running %s hypervisor version\n", type.type);
        else
            cli_print("Running hypervisor: %s %s\n", type.type, hv_str);
    }
    if (cli_cmd_has(cmd, "daemon")) {
        if (!cli_call(ctl, REMOTE_PROC_CONNECT_GET_LIB_VERSION, NULL, &lib)) {
            cli_error("failed to get the daemon version");
        } else if (!json) {
            g_autofree char *d = version_str(lib.lib_ver);

            cli_print("Running against daemon: %s\n", d);
        }
    }
    if (json) {
        JsonValue *o = json_new_object();

        ctl->json = TRUE;
        json_object_set_string(o, "client", "vireo " VIREO_VERSION);
        json_object_set_string(o, "api", CLI_LIBVIRT_API_VERSION);
        json_object_set_string(o, "hypervisor_type", type.type);
        if (hv.hv_ver)
            json_object_set_string(o, "hypervisor_version", hv_str);
        else
            json_object_set_null(o, "hypervisor_version");
        if (lib.lib_ver) {
            g_autofree char *d = version_str(lib.lib_ver);

            json_object_set_string(o, "daemon_version", d);
        }
        cli_print_json(o);
    }
    return TRUE;
}

static gboolean cmd_nodeinfo(CliCtl *ctl, const CliCmd *cmd)
{
    RemoteNodeGetInfoRet r = { 0 };
    char model[REMOTE_NODE_MODEL_LEN + 1];

    if (!cli_call(ctl, REMOTE_PROC_NODE_GET_INFO, NULL, &r)) {
        cli_error("failed to get node information");
        return FALSE;
    }
    memcpy(model, r.model, REMOTE_NODE_MODEL_LEN);
    model[REMOTE_NODE_MODEL_LEN] = '\0';
    if (cli_cmd_has(cmd, "json")) {
        JsonValue *o = json_new_object();

        ctl->json = TRUE;
        json_object_set_string(o, "cpu_model", model);
        json_object_set_int(o, "cpus", r.cpus);
        json_object_set_int(o, "mhz", r.mhz);
        json_object_set_int(o, "sockets", r.sockets);
        json_object_set_int(o, "cores_per_socket", r.cores);
        json_object_set_int(o, "threads_per_core", r.threads);
        json_object_set_int(o, "numa_cells", r.nodes);
        json_object_set_int(o, "memory_kib", (gint64)r.memory);
        cli_print_json(o);
        return TRUE;
    }
    cli_print("%-20s %s\n", "CPU model:", model);
    cli_print("%-20s %d\n", "CPU(s):", r.cpus);
    if (r.mhz)
        cli_print("%-20s %d MHz\n", "CPU frequency:", r.mhz);
    cli_print("%-20s %d\n", "CPU socket(s):", r.sockets);
    cli_print("%-20s %d\n", "Core(s) per socket:", r.cores);
    cli_print("%-20s %d\n", "Thread(s) per core:", r.threads);
    cli_print("%-20s %d\n", "NUMA cell(s):", r.nodes);
    cli_print("%-20s %" G_GUINT64_FORMAT " KiB\n", "Memory size:", r.memory);
    return TRUE;
}

static gboolean cmd_capabilities(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteConnectGetCapabilitiesRet) r = { 0 };

    if (!cli_call(ctl, REMOTE_PROC_CONNECT_GET_CAPABILITIES, NULL, &r)) {
        cli_error("failed to get capabilities");
        return FALSE;
    }
    cli_print("%s\n", r.capabilities);
    return TRUE;
}

static const CliOptDef opts_none[] = { OPT_END };

const CliCmdDef cli_host_cmds[] = {
    { "capabilities", cmd_capabilities, opts_none, "capabilities",
      "Returns capabilities of hypervisor/driver.", 0 },
    { "hostname", cmd_hostname, opts_json, "print the hypervisor hostname", "", 0 },
    { "nodeinfo", cmd_nodeinfo, opts_json, "node information",
      "Returns basic information about the node.", 0 },
    { "uri", cmd_uri, opts_json, "print the hypervisor canonical URI", "", 0 },
    { "version", cmd_version, opts_version, "show version",
      "Display the system version information.", 0 },
    { NULL, NULL, NULL, NULL, NULL, 0 },
};
