/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Connection and host procedures (include/vireo/host-driver.h). */
#include <string.h>
#include <unistd.h>

#include "vireo/host-driver.h"
#include "vireo/rpc-error.h"
#include "vireo/rpc-protocol.h"

struct HostDriver {
    DaemonRole role;
    char *vmm_path;
};

/* Per connection: the URI it opened. */
typedef struct HostClient {
    char *uri;
} HostClient;

static void host_client_free(gpointer data)
{
    HostClient *hc = data;

    g_free(hc->uri);
    g_free(hc);
}

guint64 host_driver_version_number(const char *version)
{
    g_auto(GStrv) parts = g_strsplit(version, ".", 3);
    guint64 v = 0;

    for (guint i = 0; i < 3; i++)
        v = v * 1000 + (parts[0] && i < g_strv_length(parts) ?
                        g_ascii_strtoull(parts[i], NULL, 10) % 1000 : 0);
    return v;
}

/*
 * Which URIs a role serves: the hypervisor ones for domains, network:///
 * and storage:/// for the secondary drivers, and no name at all (a client
 * that lets the daemon choose). Only "system" instances exist.
 */
static gboolean on_open(RpcServerClient *client, const char *name, guint flags,
                        gpointer opaque, GError **error)
{
    HostDriver *hd = opaque;
    HostClient *hc;
    g_autofree char *scheme = NULL;
    const char *rest;
    gboolean ok;

    if (name && *name) {
        rest = strstr(name, "://");
        scheme = rest ? g_strndup(name, rest - name) : g_strdup(name);
        rest = rest ? rest + 3 : "";
        if (!strcmp(scheme, "qemu") || !strcmp(scheme, "vireo"))
            ok = daemon_role_has_domains(hd->role);
        else if (!strcmp(scheme, "network"))
            ok = hd->role == DAEMON_ROLE_ALL || hd->role == DAEMON_ROLE_NETWORK;
        else if (!strcmp(scheme, "storage"))
            ok = hd->role == DAEMON_ROLE_ALL || hd->role == DAEMON_ROLE_STORAGE;
        else
            ok = FALSE;
        if (ok && strcmp(rest, "/system") != 0 && strncmp(rest, "/system?", 8) != 0) {
            g_set_error(error, RPC_REMOTE_ERROR, RPC_ERR_INVALID_ARG,
                        "unexpected %s URI path '%s', try %s:///system", scheme, rest, scheme);
            return FALSE;
        }
        if (!ok) {
            g_set_error(error, RPC_REMOTE_ERROR, RPC_ERR_NO_CONNECT,
                        "no connection driver available for %s", name);
            return FALSE;
        }
    }
    hc = g_new0(HostClient, 1);
    hc->uri = g_strdup(name && *name ? name :
                       daemon_role_has_domains(hd->role) ? "qemu:///system" :
                       hd->role == DAEMON_ROLE_NETWORK ? "network:///system" :
                                                         "storage:///system");
    rpc_server_client_set_data(client, hc, host_client_free);
    return TRUE;
}

static void h_get_type(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetTypeRet ret = { .type = (char *)"QEMU" };

    rpc_call_reply(call, &ret);
}

static void h_get_version(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetVersionRet ret = { .hv_ver = host_driver_version_number(VIREO_VERSION) };

    rpc_call_reply(call, &ret);
}

static void h_get_lib_version(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetLibVersionRet ret = { .lib_ver = HOST_DRIVER_LIB_VERSION };

    rpc_call_reply(call, &ret);
}

static void h_get_hostname(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetHostnameRet ret = { .hostname = (char *)g_get_host_name() };

    rpc_call_reply(call, &ret);
}

static void h_get_uri(RpcCall *call, gpointer args, gpointer opaque)
{
    HostClient *hc = rpc_server_client_get_data(rpc_call_get_client(call));
    RemoteConnectGetUriRet ret = { .uri = hc ? hc->uri : (char *)"qemu:///system" };

    rpc_call_reply(call, &ret);
}

static void h_is_secure(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectIsSecureRet ret = { .secure = 1 };     /* a local UNIX socket */

    rpc_call_reply(call, &ret);
}

static void h_get_max_vcpus(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetMaxVcpusRet ret = { .max_vcpus = 64 };     /* LAYOUT_MAX_CPUS */

    rpc_call_reply(call, &ret);
}

static guint64 meminfo_total_kib(void)
{
    g_autofree char *text = NULL;
    const char *p;

    if (!g_file_get_contents("/proc/meminfo", &text, NULL, NULL))
        return 0;
    p = strstr(text, "MemTotal:");
    return p ? g_ascii_strtoull(p + strlen("MemTotal:"), NULL, 10) : 0;
}

static int cpu_mhz(void)
{
    g_autofree char *text = NULL;
    const char *p;

    if (!g_file_get_contents("/proc/cpuinfo", &text, NULL, NULL))
        return 0;
    p = strstr(text, "cpu MHz");
    p = p ? strchr(p, ':') : NULL;
    return p ? (int)g_ascii_strtod(p + 1, NULL) : 0;
}

static void h_node_get_info(RpcCall *call, gpointer args, gpointer opaque)
{
    int cpus = g_get_num_processors();
    RemoteNodeGetInfoRet ret = {
        .memory = meminfo_total_kib(), .cpus = cpus, .mhz = cpu_mhz(), .nodes = 1,
        .sockets = 1, .cores = cpus, .threads = 1,
    };

    strcpy(ret.model, "x86_64");
    rpc_call_reply(call, &ret);
}

static void h_node_get_security_model(RpcCall *call, gpointer args, gpointer opaque)
{
    /* No security driver: "none" and "0", NULs counted, as libvirtd. */
    char model[] = "none", doi[] = "0";
    RemoteNodeGetSecurityModelRet ret = { .n_model = 5, .model = model, .n_doi = 2, .doi = doi };

    rpc_call_reply(call, &ret);
}

static void h_get_capabilities(RpcCall *call, gpointer args, gpointer opaque)
{
    HostDriver *hd = opaque;
    g_autofree char *caps = g_strdup_printf(
        "<capabilities>\n"
        "\n"
        "  <host>\n"
        "    <cpu>\n"
        "      <arch>x86_64</arch>\n"
        "    </cpu>\n"
        "    <power_management/>\n"
        "    <iommu support='no'/>\n"
        "    <migration_features>\n"
        "      <live/>\n"
        "    </migration_features>\n"
        "    <topology>\n"
        "      <cells num='1'>\n"
        "        <cell id='0'>\n"
        "          <memory unit='KiB'>%" G_GUINT64_FORMAT "</memory>\n"
        "          <cpus num='%d'/>\n"
        "        </cell>\n"
        "      </cells>\n"
        "    </topology>\n"
        "    <secmodel>\n"
        "      <model>none</model>\n"
        "      <doi>0</doi>\n"
        "    </secmodel>\n"
        "  </host>\n"
        "\n"
        "  <guest>\n"
        "    <os_type>hvm</os_type>\n"
        "    <arch name='x86_64'>\n"
        "      <wordsize>64</wordsize>\n"
        "      <emulator>%s</emulator>\n"
        "      <machine maxCpus='64'>vireo</machine>\n"
        "      <machine canonical='pc-i440fx-7.2' maxCpus='64'>pc</machine>\n"
        "      <machine canonical='pc-q35-7.2' maxCpus='64'>q35</machine>\n"
        "      <domain type='kvm'/>\n"
        "    </arch>\n"
        "    <features>\n"
        "      <acpi default='on' toggle='yes'/>\n"
        "      <apic default='on' toggle='no'/>\n"
        "    </features>\n"
        "  </guest>\n"
        "\n"
        "</capabilities>\n",
        meminfo_total_kib(), g_get_num_processors(), hd->vmm_path ? hd->vmm_path : "");
    RemoteConnectGetCapabilitiesRet ret = { .capabilities = caps };

    rpc_call_reply(call, &ret);
}

static void h_get_sysinfo(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetSysinfoArgs *a = args;

    if (a->flags) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG,
                      "unsupported flags (0x%x) in function vireoConnectGetSysinfo", a->flags);
        return;
    }
    rpc_call_fail(call, RPC_ERR_OPERATION_UNSUPPORTED, "%s",
                  "Host SMBIOS information is not available");
}

static const struct {
    gint32 proc;
    RpcHandlerFunc fn;
} handlers[] = {
    { REMOTE_PROC_CONNECT_GET_TYPE, h_get_type },
    { REMOTE_PROC_CONNECT_GET_VERSION, h_get_version },
    { REMOTE_PROC_CONNECT_GET_LIB_VERSION, h_get_lib_version },
    { REMOTE_PROC_CONNECT_GET_HOSTNAME, h_get_hostname },
    { REMOTE_PROC_CONNECT_GET_URI, h_get_uri },
    { REMOTE_PROC_CONNECT_IS_SECURE, h_is_secure },
    { REMOTE_PROC_CONNECT_GET_SYSINFO, h_get_sysinfo },
    { REMOTE_PROC_NODE_GET_SECURITY_MODEL, h_node_get_security_model },
};

/* Only the hypervisor roles describe a hypervisor. */
static const struct {
    gint32 proc;
    RpcHandlerFunc fn;
} hv_handlers[] = {
    { REMOTE_PROC_CONNECT_GET_CAPABILITIES, h_get_capabilities },
    { REMOTE_PROC_CONNECT_GET_MAX_VCPUS, h_get_max_vcpus },
    { REMOTE_PROC_NODE_GET_INFO, h_node_get_info },
};

/* What virDomainMigrateToURI3(VIR_MIGRATE_PEER2PEER) asks before migrating (migrate-p2p.c). */
static int on_supports_feature(RpcServerClient *client, int feature, gpointer opaque)
{
    HostDriver *hd = opaque;

    if (!daemon_role_has_domains(hd->role))
        return 0;
    switch (feature) {
    case RPC_FEATURE_MIGRATION_V3:
    case RPC_FEATURE_MIGRATION_P2P:
    case RPC_FEATURE_MIGRATION_PARAMS:
    case RPC_FEATURE_MIGRATE_CHANGE_PROTECTION:
    case RPC_FEATURE_XML_MIGRATABLE:
        return 1;
    default:
        return 0;
    }
}

HostDriver *host_driver_new(RpcServer *srv, DaemonRole role, const char *vmm_path)
{
    static const RpcServerHooks hooks = { .open = on_open,
                                          .supports_feature = on_supports_feature };
    HostDriver *hd = g_new0(HostDriver, 1);

    hd->role = role;
    hd->vmm_path = g_strdup(vmm_path);
    rpc_server_set_hooks(srv, &hooks, hd);
    for (gsize i = 0; i < G_N_ELEMENTS(handlers); i++)
        rpc_server_set_handler(srv, REMOTE_PROGRAM, handlers[i].proc, handlers[i].fn, hd);
    for (gsize i = 0; daemon_role_has_domains(role) && i < G_N_ELEMENTS(hv_handlers); i++)
        rpc_server_set_handler(srv, REMOTE_PROGRAM, hv_handlers[i].proc, hv_handlers[i].fn, hd);
    return hd;
}

void host_driver_free(HostDriver *hd)
{
    if (!hd)
        return;
    g_free(hd->vmm_path);
    g_free(hd);
}

/* ---- admin program (virt-admin); its open and close are the RPC layer's ---- */

static void h_admin_lib_version(RpcCall *call, gpointer args, gpointer opaque)
{
    AdminConnectGetLibVersionRet ret = { .libVer = HOST_DRIVER_LIB_VERSION };

    rpc_call_reply(call, &ret);
}

void host_driver_register_admin(RpcServer *srv)
{
    rpc_server_add_program(srv, ADMIN_PROGRAM, ADMIN_PROTOCOL_VERSION);
    rpc_server_set_handler(srv, ADMIN_PROGRAM, ADMIN_PROC_CONNECT_GET_LIB_VERSION,
                           h_admin_lib_version, NULL);
}
