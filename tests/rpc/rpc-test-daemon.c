/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A tiny daemon built from daemon/rpc/ with a fake in-memory driver, so
 * that real clients (Debian's virsh and python3-libvirt) can be run
 * against our wire layer before vireod exists. It answers like libvirtd's
 * qemu driver did in the reference captures (same type, versions, error
 * wording, events), so recordings of it can be compared with them byte for
 * byte (tests/rpc/test_virsh.py).
 *
 *   rpc-test-daemon --socket PATH [--ro-socket PATH] [--xml FILE]
 *                   [--keepalive SECONDS]
 *
 * --xml: what dumpxml returns for a domain named lvrpc-test (libvirt
 * normalises the XML it is given; we do not parse XML). Prints "ready" on
 * stdout once listening; stops on SIGTERM or SIGINT.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib-unix.h>

#include "vireo/rpc-server.h"

typedef struct FakeDomain {
    char *name;
    guint8 uuid[16];
    char *xml;
    gint32 id;              /* -1: inactive */
    int state;              /* RPC_DOMAIN_* */
    int reason;
    gboolean persistent;
    gboolean autostart;
    guint64 max_mem;        /* KiB */
    guint64 mem;
    guint vcpus;
    guint max_vcpus;
    RpcStream *console;
} FakeDomain;

typedef struct Driver {
    RpcServer *srv;
    GPtrArray *domains;     /* FakeDomain */
    gint32 next_id;
    char *lvrpc_xml;
} Driver;

static Driver drv;

/* virConnectListAllDomainsFlags */
enum {
    LIST_ACTIVE = 1, LIST_INACTIVE = 2, LIST_PERSISTENT = 4, LIST_TRANSIENT = 8,
    LIST_RUNNING = 16, LIST_PAUSED = 32, LIST_SHUTOFF = 64, LIST_OTHER = 128,
};

static void fake_domain_free(gpointer data)
{
    FakeDomain *d = data;

    if (d->console)
        rpc_stream_unref(d->console);
    g_free(d->name);
    g_free(d->xml);
    g_free(d);
}

static void to_wire(const FakeDomain *d, RemoteNonnullDomain *w)
{
    w->name = d->name;
    memcpy(w->uuid, d->uuid, 16);
    w->id = d->id;
}

static void emit(FakeDomain *d, int event, int detail)
{
    RemoteNonnullDomain w;

    to_wire(d, &w);
    rpc_server_emit_domain_lifecycle(drv.srv, &w, event, detail);
}

static char *uuid_str(const guint8 *u)
{
    return g_strdup_printf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                           "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5],
                           u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

static gboolean parse_uuid(const char *s, guint8 *u)
{
    guint n = 0;

    for (; *s && n < 32; s++) {
        int v;

        if (*s == '-')
            continue;
        v = g_ascii_xdigit_value(*s);
        if (v < 0)
            return FALSE;
        if (n % 2 == 0)
            u[n / 2] = v << 4;
        else
            u[n / 2] |= v;
        n++;
    }
    return n == 32 && !*s;
}

static FakeDomain *find_by_uuid(const guint8 *uuid)
{
    for (guint i = 0; i < drv.domains->len; i++) {
        FakeDomain *d = g_ptr_array_index(drv.domains, i);

        if (!memcmp(d->uuid, uuid, 16))
            return d;
    }
    return NULL;
}

static FakeDomain *find_by_name(const char *name)
{
    for (guint i = 0; i < drv.domains->len; i++) {
        FakeDomain *d = g_ptr_array_index(drv.domains, i);

        if (!strcmp(d->name, name))
            return d;
    }
    return NULL;
}

/* libvirt's qemu driver wording for a domain argument it cannot find. */
static FakeDomain *get_domain(RpcCall *call, const RemoteNonnullDomain *w)
{
    FakeDomain *d = find_by_uuid(w->uuid);
    g_autofree char *u = NULL;

    if (d)
        return d;
    u = uuid_str(w->uuid);
    rpc_call_fail(call, RPC_ERR_NO_DOMAIN, "no domain with matching uuid '%s' (%s)", u, w->name);
    return NULL;
}

static gboolean is_active(const FakeDomain *d)
{
    return d->id >= 0;
}

static void reply_domain(RpcCall *call, FakeDomain *d)
{
    RemoteDomainLookupByNameRet ret;

    to_wire(d, &ret.dom);
    rpc_call_reply(call, &ret);
}

/* ------------------------------------------------------------------ host */

static void get_type(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetTypeRet ret = { .type = (char *)"QEMU" };

    rpc_call_reply(call, &ret);
}

static void get_version(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetVersionRet ret = { .hv_ver = 7002022 };

    rpc_call_reply(call, &ret);
}

static void get_lib_version(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetLibVersionRet ret = { .lib_ver = 9000000 };

    rpc_call_reply(call, &ret);
}

static void get_hostname(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetHostnameRet ret = { .hostname = (char *)g_get_host_name() };

    rpc_call_reply(call, &ret);
}

static void get_uri(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetUriRet ret = { .uri = (char *)"qemu:///system" };

    rpc_call_reply(call, &ret);
}

static void get_capabilities(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetCapabilitiesRet ret = {
        .capabilities = (char *)
            "<capabilities>\n"
            "  <host>\n"
            "    <cpu>\n"
            "      <arch>x86_64</arch>\n"
            "    </cpu>\n"
            "  </host>\n"
            "  <guest>\n"
            "    <os_type>hvm</os_type>\n"
            "    <arch name='x86_64'>\n"
            "      <domain type='kvm'/>\n"
            "    </arch>\n"
            "  </guest>\n"
            "</capabilities>\n",
    };

    rpc_call_reply(call, &ret);
}

static void get_max_vcpus(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetMaxVcpusRet ret = { .max_vcpus = 255 };

    rpc_call_reply(call, &ret);
}

static void node_get_info(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteNodeGetInfoRet ret = {
        .memory = 8 * 1024 * 1024, .cpus = 4, .mhz = 2000, .nodes = 1, .sockets = 1,
        .cores = 4, .threads = 1,
    };

    strcpy(ret.model, "x86_64");
    rpc_call_reply(call, &ret);
}

static void node_get_security_model(RpcCall *call, gpointer args, gpointer opaque)
{
    /* As libvirtd without a security driver: "none" and "0", NULs counted. */
    char model[] = "none", doi[] = "0";
    RemoteNodeGetSecurityModelRet ret = { .n_model = 5, .model = model, .n_doi = 2, .doi = doi };

    rpc_call_reply(call, &ret);
}

/* ----------------------------------------------------------------- lists */

static gboolean list_match(const FakeDomain *d, guint flags)
{
    if ((flags & (LIST_ACTIVE | LIST_INACTIVE)) &&
        !((flags & LIST_ACTIVE && is_active(d)) || (flags & LIST_INACTIVE && !is_active(d))))
        return FALSE;
    if ((flags & (LIST_PERSISTENT | LIST_TRANSIENT)) &&
        !((flags & LIST_PERSISTENT && d->persistent) || (flags & LIST_TRANSIENT && !d->persistent)))
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
    return TRUE;
}

static void list_all_domains(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectListAllDomainsArgs *a = args;
    g_autofree RemoteNonnullDomain *doms = g_new0(RemoteNonnullDomain, drv.domains->len + 1);
    RemoteConnectListAllDomainsRet ret = { .domains = doms };

    for (guint i = 0; i < drv.domains->len; i++) {
        FakeDomain *d = g_ptr_array_index(drv.domains, i);

        if (list_match(d, a->flags))
            to_wire(d, &doms[ret.ret++]);
    }
    ret.n_domains = a->need_results ? ret.ret : 0;
    rpc_call_reply(call, &ret);
}

static guint count(gboolean active)
{
    guint n = 0;

    for (guint i = 0; i < drv.domains->len; i++)
        n += is_active(g_ptr_array_index(drv.domains, i)) == active;
    return n;
}

static void num_of_domains(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectNumOfDomainsRet ret = { .num = count(TRUE) };

    rpc_call_reply(call, &ret);
}

static void num_of_defined_domains(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectNumOfDefinedDomainsRet ret = { .num = count(FALSE) };

    rpc_call_reply(call, &ret);
}

static void list_domains(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectListDomainsArgs *a = args;
    g_autofree gint32 *ids = g_new0(gint32, drv.domains->len + 1);
    RemoteConnectListDomainsRet ret = { .ids = ids };

    for (guint i = 0; i < drv.domains->len && (gint32)ret.n_ids < a->maxids; i++) {
        FakeDomain *d = g_ptr_array_index(drv.domains, i);

        if (is_active(d))
            ids[ret.n_ids++] = d->id;
    }
    rpc_call_reply(call, &ret);
}

static void list_defined_domains(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectListDefinedDomainsArgs *a = args;
    g_autofree char **names = g_new0(char *, drv.domains->len + 1);
    RemoteConnectListDefinedDomainsRet ret = { .names = names };

    for (guint i = 0; i < drv.domains->len && (gint32)ret.n_names < a->maxnames; i++) {
        FakeDomain *d = g_ptr_array_index(drv.domains, i);

        if (!is_active(d))
            names[ret.n_names++] = d->name;
    }
    rpc_call_reply(call, &ret);
}

static void lookup_by_name(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainLookupByNameArgs *a = args;
    FakeDomain *d = find_by_name(a->name);

    if (!d) {
        rpc_call_fail(call, RPC_ERR_NO_DOMAIN, "no domain with matching name '%s'", a->name);
        return;
    }
    reply_domain(call, d);
}

static void lookup_by_uuid(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainLookupByUuidArgs *a = args;
    FakeDomain *d = find_by_uuid(a->uuid);
    g_autofree char *u = NULL;

    if (!d) {
        u = uuid_str(a->uuid);
        rpc_call_fail(call, RPC_ERR_NO_DOMAIN, "no domain with matching uuid '%s'", u);
        return;
    }
    reply_domain(call, d);
}

static void lookup_by_id(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainLookupByIdArgs *a = args;

    for (guint i = 0; i < drv.domains->len; i++) {
        FakeDomain *d = g_ptr_array_index(drv.domains, i);

        if (d->id == a->id && a->id >= 0) {
            reply_domain(call, d);
            return;
        }
    }
    rpc_call_fail(call, RPC_ERR_NO_DOMAIN, "no domain with matching id %d", a->id);
}

/* ------------------------------------------------------------ life cycle */

static char *xml_element(const char *xml, const char *tag)
{
    g_autofree char *pattern = g_strdup_printf("<%s>\\s*([^<]*?)\\s*</%s>", tag, tag);
    g_autoptr(GRegex) re = g_regex_new(pattern, 0, 0, NULL);
    g_autoptr(GMatchInfo) m = NULL;

    if (!g_regex_match(re, xml, 0, &m))
        return NULL;
    return g_match_info_fetch(m, 1);
}

static FakeDomain *define(RpcCall *call, const char *xml, gboolean persistent)
{
    g_autofree char *name = xml_element(xml, "name");
    g_autofree char *uuid = xml_element(xml, "uuid");
    FakeDomain *d;
    guint8 u[16];

    if (!strstr(xml, "<domain") || !name || !*name) {
        rpc_call_fail(call, RPC_ERR_XML_ERROR, "%s", "missing domain name");
        return NULL;
    }
    if (uuid && !parse_uuid(uuid, u)) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG, "malformed uuid element");
        return NULL;
    }
    if (!uuid)
        for (guint i = 0; i < 16; i++)
            u[i] = (guint8)g_random_int();
    d = find_by_name(name);
    if (d && uuid && memcmp(d->uuid, u, 16)) {
        g_autofree char *s = uuid_str(d->uuid);

        rpc_call_fail(call, RPC_ERR_OPERATION_FAILED, "domain '%s' already exists with uuid %s",
                      name, s);
        return NULL;
    }
    if (!d) {
        d = g_new0(FakeDomain, 1);
        d->name = g_strdup(name);
        memcpy(d->uuid, u, 16);
        d->id = -1;
        d->state = RPC_DOMAIN_SHUTOFF;
        d->max_mem = d->mem = 65536;
        d->vcpus = d->max_vcpus = 1;
        g_ptr_array_add(drv.domains, d);
    }
    g_free(d->xml);
    d->xml = g_strdup(!strcmp(name, "lvrpc-test") && drv.lvrpc_xml ? drv.lvrpc_xml : xml);
    d->persistent = d->persistent || persistent;
    return d;
}

static void define_xml(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainDefineXmlArgs *a = args;
    gboolean existed;
    FakeDomain *d;
    g_autofree char *name = xml_element(a->xml, "name");

    existed = name && find_by_name(name);
    d = define(call, a->xml, TRUE);
    if (!d)
        return;
    reply_domain(call, d);
    emit(d, RPC_DOMAIN_EVENT_DEFINED, existed ? 1 : 0);
}

static void define_xml_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainDefineXmlFlagsArgs *a = args;
    RemoteDomainDefineXmlArgs plain = { .xml = a->xml };

    define_xml(call, &plain, opaque);
}

static void start(FakeDomain *d)
{
    d->id = drv.next_id++;
    d->state = RPC_DOMAIN_RUNNING;
    d->reason = 1;  /* BOOTED */
    emit(d, RPC_DOMAIN_EVENT_RESUMED, 0);
    emit(d, RPC_DOMAIN_EVENT_STARTED, 0);
}

static void stop(FakeDomain *d, int event, int detail, int stop_detail)
{
    emit(d, event, detail);
    d->id = -1;
    d->state = RPC_DOMAIN_SHUTOFF;
    d->reason = stop_detail == 1 ? 2 : 1;   /* DESTROYED : SHUTDOWN */
    if (d->console) {
        rpc_stream_send_eof(d->console);
        g_clear_pointer(&d->console, rpc_stream_unref);
    }
    emit(d, RPC_DOMAIN_EVENT_STOPPED, stop_detail);
    if (!d->persistent) {
        emit(d, RPC_DOMAIN_EVENT_UNDEFINED, 0);
        g_ptr_array_remove(drv.domains, d);
    }
}

static gboolean need_state(RpcCall *call, FakeDomain *d, gboolean active)
{
    if (is_active(d) == active)
        return TRUE;
    rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s",
                  active ? "domain is not running" : "domain is already running");
    return FALSE;
}

static void create(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainCreateArgs *a = args;
    FakeDomain *d = get_domain(call, &a->dom);

    if (!d || !need_state(call, d, FALSE))
        return;
    start(d);
    rpc_call_reply(call, NULL);
}

static void create_with_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainCreateWithFlagsArgs *a = args;
    FakeDomain *d = get_domain(call, &a->dom);
    RemoteDomainCreateWithFlagsRet ret;

    if (!d || !need_state(call, d, FALSE))
        return;
    start(d);
    to_wire(d, &ret.dom);
    rpc_call_reply(call, &ret);
}

static void create_xml(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainCreateXmlArgs *a = args;
    g_autofree char *name = xml_element(a->xml_desc, "name");
    FakeDomain *d;

    if (name && find_by_name(name) && is_active(find_by_name(name))) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "domain '%s' is already active", name);
        return;
    }
    d = define(call, a->xml_desc, FALSE);
    if (!d)
        return;
    start(d);
    reply_domain(call, d);
}

static void destroy_common(RpcCall *call, const RemoteNonnullDomain *w)
{
    FakeDomain *d = get_domain(call, w);

    if (!d || !need_state(call, d, TRUE))
        return;
    /* What libvirtd's qemu driver sent for virsh destroy in the captures. */
    stop(d, RPC_DOMAIN_EVENT_SHUTDOWN, 2, 1);
    rpc_call_reply(call, NULL);
}

static void destroy(RpcCall *call, gpointer args, gpointer opaque)
{
    destroy_common(call, &((RemoteDomainDestroyArgs *)args)->dom);
}

static void destroy_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    destroy_common(call, &((RemoteDomainDestroyFlagsArgs *)args)->dom);
}

static void shutdown_common(RpcCall *call, const RemoteNonnullDomain *w)
{
    FakeDomain *d = get_domain(call, w);

    if (!d || !need_state(call, d, TRUE))
        return;
    rpc_call_reply(call, NULL);
    stop(d, RPC_DOMAIN_EVENT_SHUTDOWN, 0, 0);
}

static void domain_shutdown(RpcCall *call, gpointer args, gpointer opaque)
{
    shutdown_common(call, &((RemoteDomainShutdownArgs *)args)->dom);
}

static void domain_shutdown_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    shutdown_common(call, &((RemoteDomainShutdownFlagsArgs *)args)->dom);
}

static void reboot_common(RpcCall *call, const RemoteNonnullDomain *w)
{
    FakeDomain *d = get_domain(call, w);

    if (!d || !need_state(call, d, TRUE))
        return;
    rpc_call_reply(call, NULL);
}

static void domain_reboot(RpcCall *call, gpointer args, gpointer opaque)
{
    reboot_common(call, &((RemoteDomainRebootArgs *)args)->dom);
}

static void domain_reset(RpcCall *call, gpointer args, gpointer opaque)
{
    reboot_common(call, &((RemoteDomainResetArgs *)args)->dom);
}

static void suspend(RpcCall *call, gpointer args, gpointer opaque)
{
    FakeDomain *d = get_domain(call, &((RemoteDomainSuspendArgs *)args)->dom);

    if (!d || !need_state(call, d, TRUE))
        return;
    d->state = RPC_DOMAIN_PAUSED;
    d->reason = 1;  /* USER */
    emit(d, RPC_DOMAIN_EVENT_SUSPENDED, 0);
    rpc_call_reply(call, NULL);
}

static void resume(RpcCall *call, gpointer args, gpointer opaque)
{
    FakeDomain *d = get_domain(call, &((RemoteDomainResumeArgs *)args)->dom);

    if (!d || !need_state(call, d, TRUE))
        return;
    d->state = RPC_DOMAIN_RUNNING;
    d->reason = 1;
    emit(d, RPC_DOMAIN_EVENT_RESUMED, 0);
    rpc_call_reply(call, NULL);
}

static void undefine_common(RpcCall *call, const RemoteNonnullDomain *w)
{
    FakeDomain *d = get_domain(call, w);

    if (!d)
        return;
    if (!d->persistent) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s", "cannot undefine transient domain");
        return;
    }
    rpc_call_reply(call, NULL);
    emit(d, RPC_DOMAIN_EVENT_UNDEFINED, 0);
    if (is_active(d))
        d->persistent = FALSE;
    else
        g_ptr_array_remove(drv.domains, d);
}

static void undefine(RpcCall *call, gpointer args, gpointer opaque)
{
    undefine_common(call, &((RemoteDomainUndefineArgs *)args)->dom);
}

static void undefine_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    undefine_common(call, &((RemoteDomainUndefineFlagsArgs *)args)->dom);
}

/* --------------------------------------------------------------- queries */

static void get_info(RpcCall *call, gpointer args, gpointer opaque)
{
    FakeDomain *d = get_domain(call, &((RemoteDomainGetInfoArgs *)args)->dom);
    RemoteDomainGetInfoRet ret = { 0 };

    if (!d)
        return;
    ret.state = d->state;
    ret.maxMem = d->max_mem;
    ret.memory = d->mem;
    ret.nrVirtCpu = d->vcpus;
    /* The figure in the running capture ("CPU time: 1.2s"). */
    ret.cpuTime = is_active(d) ? 1240000000 : 0;
    rpc_call_reply(call, &ret);
}

static void get_state(RpcCall *call, gpointer args, gpointer opaque)
{
    FakeDomain *d = get_domain(call, &((RemoteDomainGetStateArgs *)args)->dom);
    RemoteDomainGetStateRet ret;

    if (!d)
        return;
    ret.state = d->state;
    ret.reason = d->reason;
    rpc_call_reply(call, &ret);
}

static void get_xml_desc(RpcCall *call, gpointer args, gpointer opaque)
{
    FakeDomain *d = get_domain(call, &((RemoteDomainGetXmlDescArgs *)args)->dom);
    RemoteDomainGetXmlDescRet ret;

    if (!d)
        return;
    ret.xml = d->xml;
    rpc_call_reply(call, &ret);
}

static void get_os_type(RpcCall *call, gpointer args, gpointer opaque)
{
    FakeDomain *d = get_domain(call, &((RemoteDomainGetOsTypeArgs *)args)->dom);
    RemoteDomainGetOsTypeRet ret = { .type = (char *)"hvm" };

    if (d)
        rpc_call_reply(call, &ret);
}

#define INT_QUERY(fn, ArgsT, RetT, field, expr)                              \
    static void fn(RpcCall *call, gpointer args, gpointer opaque)           \
    {                                                                        \
        FakeDomain *d = get_domain(call, &((ArgsT *)args)->dom);             \
        RetT ret;                                                            \
                                                                             \
        if (!d)                                                              \
            return;                                                          \
        ret.field = (expr);                                                  \
        rpc_call_reply(call, &ret);                                          \
    }

INT_QUERY(is_active_q, RemoteDomainIsActiveArgs, RemoteDomainIsActiveRet, active, is_active(d))
INT_QUERY(is_persistent_q, RemoteDomainIsPersistentArgs, RemoteDomainIsPersistentRet, persistent,
          d->persistent)
INT_QUERY(is_updated_q, RemoteDomainIsUpdatedArgs, RemoteDomainIsUpdatedRet, updated, 0)
INT_QUERY(get_autostart, RemoteDomainGetAutostartArgs, RemoteDomainGetAutostartRet, autostart,
          d->autostart)
INT_QUERY(has_managed_save, RemoteDomainHasManagedSaveImageArgs,
          RemoteDomainHasManagedSaveImageRet, result, 0)
INT_QUERY(snapshot_num, RemoteDomainSnapshotNumArgs, RemoteDomainSnapshotNumRet, num, 0)
INT_QUERY(get_max_memory, RemoteDomainGetMaxMemoryArgs, RemoteDomainGetMaxMemoryRet, memory,
          d->max_mem)
INT_QUERY(get_max_vcpus_dom, RemoteDomainGetMaxVcpusArgs, RemoteDomainGetMaxVcpusRet, num,
          d->max_vcpus)

static void get_vcpus_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainGetVcpusFlagsArgs *a = args;
    FakeDomain *d = get_domain(call, &a->dom);
    RemoteDomainGetVcpusFlagsRet ret;

    if (!d)
        return;
    /* VIR_DOMAIN_VCPU_MAXIMUM = 4 */
    ret.num = a->flags & 4 ? d->max_vcpus : d->vcpus;
    rpc_call_reply(call, &ret);
}

static void get_vcpus(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainGetVcpusArgs *a = args;
    FakeDomain *d = get_domain(call, &a->dom);
    g_autofree RemoteVcpuInfo *info = NULL;
    g_autofree guint8 *maps = NULL;
    RemoteDomainGetVcpusRet ret = { 0 };

    if (!d || !need_state(call, d, TRUE))
        return;
    ret.n_info = MIN((guint)MAX(a->maxinfo, 0), d->vcpus);
    info = g_new0(RemoteVcpuInfo, ret.n_info + 1);
    for (guint i = 0; i < ret.n_info; i++)
        info[i] = (RemoteVcpuInfo) { .number = i, .state = 1, .cpu_time = 1000000000, .cpu = i };
    ret.info = info;
    ret.n_cpumaps = ret.n_info * MAX(a->maplen, 0);
    maps = g_malloc0(ret.n_cpumaps + 1);
    memset(maps, 0xff, ret.n_cpumaps);
    ret.cpumaps = maps;
    rpc_call_reply(call, &ret);
}

static void get_security_label(RpcCall *call, gpointer args, gpointer opaque)
{
    FakeDomain *d = get_domain(call, &((RemoteDomainGetSecurityLabelArgs *)args)->dom);
    char empty[] = "";
    RemoteDomainGetSecurityLabelRet ret = { .n_label = 1, .label = empty, .enforcing = 0 };

    if (d)
        rpc_call_reply(call, &ret);
}

static void get_messages(RpcCall *call, gpointer args, gpointer opaque)
{
    FakeDomain *d = get_domain(call, &((RemoteDomainGetMessagesArgs *)args)->dom);
    char *taint = (char *)"tainted: running with undesirable elevated privileges";
    RemoteDomainGetMessagesRet ret = { 0 };

    if (!d)
        return;
    if (is_active(d)) {
        ret.n_msgs = 1;
        ret.msgs = &taint;
    }
    rpc_call_reply(call, &ret);
}

static void set_autostart(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainSetAutostartArgs *a = args;
    FakeDomain *d = get_domain(call, &a->dom);

    if (!d)
        return;
    if (!d->persistent) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s",
                      "cannot set autostart for transient domain");
        return;
    }
    d->autostart = a->autostart != 0;
    rpc_call_reply(call, NULL);
}

static void set_memory_common(RpcCall *call, const RemoteNonnullDomain *w, guint64 mem,
                              gboolean max)
{
    FakeDomain *d = get_domain(call, w);

    if (!d)
        return;
    if (!max && mem > d->max_mem) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG, "cannot set memory higher than max memory");
        return;
    }
    if (max) {
        d->max_mem = mem;
        d->mem = MIN(d->mem, mem);
    } else {
        d->mem = mem;
    }
    rpc_call_reply(call, NULL);
}

static void set_memory(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainSetMemoryArgs *a = args;

    set_memory_common(call, &a->dom, a->memory, FALSE);
}

static void set_memory_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainSetMemoryFlagsArgs *a = args;

    /* VIR_DOMAIN_MEM_MAXIMUM = 4 */
    set_memory_common(call, &a->dom, a->memory, (a->flags & 4) != 0);
}

static void set_max_memory(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainSetMaxMemoryArgs *a = args;

    set_memory_common(call, &a->dom, a->memory, TRUE);
}

static void set_vcpus_common(RpcCall *call, const RemoteNonnullDomain *w, guint n, guint flags)
{
    FakeDomain *d = get_domain(call, w);

    if (!d)
        return;
    if (flags & 4) {        /* VIR_DOMAIN_VCPU_MAXIMUM */
        d->max_vcpus = n;
        d->vcpus = MIN(d->vcpus, n);
    } else if (n > d->max_vcpus) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG,
                      "requested vcpus is greater than max allowable vcpus for the persistent domain: %u > %u",
                      n, d->max_vcpus);
        return;
    } else {
        d->vcpus = n;
    }
    rpc_call_reply(call, NULL);
}

static void set_vcpus(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainSetVcpusArgs *a = args;

    set_vcpus_common(call, &a->dom, a->nvcpus, 0);
}

static void set_vcpus_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainSetVcpusFlagsArgs *a = args;

    set_vcpus_common(call, &a->dom, a->nvcpus, a->flags);
}

/* --------------------------------------------------------------- console */

/* The console echoes what it gets, upper-cased, after a banner. */
static void console_data(RpcStream *st, const guint8 *data, gsize len, gpointer opaque)
{
    g_autofree char *up = g_ascii_strup((const char *)data, len);

    rpc_stream_send(st, up, len);
}

static void console_end(RpcStream *st, gpointer opaque)
{
    FakeDomain *d = find_by_uuid(opaque);

    if (d && d->console == st)
        g_clear_pointer(&d->console, rpc_stream_unref);
}

static void open_console(RpcCall *call, gpointer args, gpointer opaque)
{
    static const RpcStreamCallbacks cb = {
        .data = console_data, .finish = console_end, .abort = console_end,
    };
    RemoteDomainOpenConsoleArgs *a = args;
    FakeDomain *d = get_domain(call, &a->dom);
    static const char banner[] = "vireo test console\r\n";

    if (!d || !need_state(call, d, TRUE))
        return;
    if (d->console && !rpc_stream_is_closed(d->console)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_FAILED, "%s", "Active console session exists for this domain");
        return;
    }
    if (d->console)
        g_clear_pointer(&d->console, rpc_stream_unref);
    d->console = rpc_call_open_stream(call, &cb, d->uuid);
    rpc_stream_send(d->console, banner, strlen(banner));
    rpc_call_reply(call, NULL);
}

/* ------------------------------------------------------------------ main */

static const struct {
    gint32 proc;
    RpcHandlerFunc fn;
} handlers[] = {
    { REMOTE_PROC_CONNECT_GET_TYPE, get_type },
    { REMOTE_PROC_CONNECT_GET_VERSION, get_version },
    { REMOTE_PROC_CONNECT_GET_LIB_VERSION, get_lib_version },
    { REMOTE_PROC_CONNECT_GET_HOSTNAME, get_hostname },
    { REMOTE_PROC_CONNECT_GET_URI, get_uri },
    { REMOTE_PROC_CONNECT_GET_CAPABILITIES, get_capabilities },
    { REMOTE_PROC_CONNECT_GET_MAX_VCPUS, get_max_vcpus },
    { REMOTE_PROC_NODE_GET_INFO, node_get_info },
    { REMOTE_PROC_NODE_GET_SECURITY_MODEL, node_get_security_model },
    { REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS, list_all_domains },
    { REMOTE_PROC_CONNECT_NUM_OF_DOMAINS, num_of_domains },
    { REMOTE_PROC_CONNECT_LIST_DOMAINS, list_domains },
    { REMOTE_PROC_CONNECT_NUM_OF_DEFINED_DOMAINS, num_of_defined_domains },
    { REMOTE_PROC_CONNECT_LIST_DEFINED_DOMAINS, list_defined_domains },
    { REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME, lookup_by_name },
    { REMOTE_PROC_DOMAIN_LOOKUP_BY_UUID, lookup_by_uuid },
    { REMOTE_PROC_DOMAIN_LOOKUP_BY_ID, lookup_by_id },
    { REMOTE_PROC_DOMAIN_DEFINE_XML, define_xml },
    { REMOTE_PROC_DOMAIN_DEFINE_XML_FLAGS, define_xml_flags },
    { REMOTE_PROC_DOMAIN_UNDEFINE, undefine },
    { REMOTE_PROC_DOMAIN_UNDEFINE_FLAGS, undefine_flags },
    { REMOTE_PROC_DOMAIN_CREATE, create },
    { REMOTE_PROC_DOMAIN_CREATE_WITH_FLAGS, create_with_flags },
    { REMOTE_PROC_DOMAIN_CREATE_XML, create_xml },
    { REMOTE_PROC_DOMAIN_DESTROY, destroy },
    { REMOTE_PROC_DOMAIN_DESTROY_FLAGS, destroy_flags },
    { REMOTE_PROC_DOMAIN_SHUTDOWN, domain_shutdown },
    { REMOTE_PROC_DOMAIN_SHUTDOWN_FLAGS, domain_shutdown_flags },
    { REMOTE_PROC_DOMAIN_REBOOT, domain_reboot },
    { REMOTE_PROC_DOMAIN_RESET, domain_reset },
    { REMOTE_PROC_DOMAIN_SUSPEND, suspend },
    { REMOTE_PROC_DOMAIN_RESUME, resume },
    { REMOTE_PROC_DOMAIN_GET_INFO, get_info },
    { REMOTE_PROC_DOMAIN_GET_STATE, get_state },
    { REMOTE_PROC_DOMAIN_GET_XML_DESC, get_xml_desc },
    { REMOTE_PROC_DOMAIN_GET_OS_TYPE, get_os_type },
    { REMOTE_PROC_DOMAIN_IS_ACTIVE, is_active_q },
    { REMOTE_PROC_DOMAIN_IS_PERSISTENT, is_persistent_q },
    { REMOTE_PROC_DOMAIN_IS_UPDATED, is_updated_q },
    { REMOTE_PROC_DOMAIN_GET_AUTOSTART, get_autostart },
    { REMOTE_PROC_DOMAIN_SET_AUTOSTART, set_autostart },
    { REMOTE_PROC_DOMAIN_HAS_MANAGED_SAVE_IMAGE, has_managed_save },
    { REMOTE_PROC_DOMAIN_SNAPSHOT_NUM, snapshot_num },
    { REMOTE_PROC_DOMAIN_GET_SECURITY_LABEL, get_security_label },
    { REMOTE_PROC_DOMAIN_GET_MESSAGES, get_messages },
    { REMOTE_PROC_DOMAIN_GET_MAX_MEMORY, get_max_memory },
    { REMOTE_PROC_DOMAIN_SET_MEMORY, set_memory },
    { REMOTE_PROC_DOMAIN_SET_MEMORY_FLAGS, set_memory_flags },
    { REMOTE_PROC_DOMAIN_SET_MAX_MEMORY, set_max_memory },
    { REMOTE_PROC_DOMAIN_SET_VCPUS, set_vcpus },
    { REMOTE_PROC_DOMAIN_SET_VCPUS_FLAGS, set_vcpus_flags },
    { REMOTE_PROC_DOMAIN_GET_VCPUS_FLAGS, get_vcpus_flags },
    { REMOTE_PROC_DOMAIN_GET_MAX_VCPUS, get_max_vcpus_dom },
    { REMOTE_PROC_DOMAIN_GET_VCPUS, get_vcpus },
    { REMOTE_PROC_DOMAIN_OPEN_CONSOLE, open_console },
};

static int listen_unix(const char *path, GError **error)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG, "path too long: %s", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 64) < 0) {
        int saved = errno;

        if (fd >= 0)
            close(fd);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved), "%s: %s", path,
                    g_strerror(saved));
        return -1;
    }
    return fd;
}

static gboolean on_signal(gpointer data)
{
    g_main_loop_quit(data);
    return G_SOURCE_REMOVE;
}

int main(int argc, char **argv)
{
    g_autofree char *sock = NULL, *ro_sock = NULL, *xml = NULL;
    int keepalive = RPC_SERVER_DEFAULT_KEEPALIVE_INTERVAL;
    GOptionEntry entries[] = {
        { "socket", 0, 0, G_OPTION_ARG_FILENAME, &sock, "read-write socket", "PATH" },
        { "ro-socket", 0, 0, G_OPTION_ARG_FILENAME, &ro_sock, "read-only socket", "PATH" },
        { "xml", 0, 0, G_OPTION_ARG_FILENAME, &xml, "dumpxml of lvrpc-test", "FILE" },
        { "keepalive", 0, 0, G_OPTION_ARG_INT, &keepalive, "keepalive interval", "SECONDS" },
        { NULL },
    };
    g_autoptr(GOptionContext) oc = g_option_context_new("- test daemon for the RPC layer");
    g_autoptr(GError) error = NULL;
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    RpcServerLimits limits = { .keepalive_interval = keepalive };
    int fd;

    g_option_context_add_main_entries(oc, entries, NULL);
    if (!g_option_context_parse(oc, &argc, &argv, &error) || !sock) {
        g_printerr("%s\n", error ? error->message : "--socket is required");
        return 2;
    }
    if (xml && !g_file_get_contents(xml, &drv.lvrpc_xml, NULL, &error)) {
        g_printerr("%s\n", error->message);
        return 1;
    }
    limits.keepalive_interval = keepalive;
    drv.srv = rpc_server_new(NULL, &limits);
    drv.domains = g_ptr_array_new_with_free_func(fake_domain_free);
    drv.next_id = 3;      /* the captures' daemon had started two domains before */
    for (gsize i = 0; i < G_N_ELEMENTS(handlers); i++)
        rpc_server_set_handler(drv.srv, REMOTE_PROGRAM, handlers[i].proc, handlers[i].fn, NULL);

    fd = listen_unix(sock, &error);
    if (fd < 0 || !rpc_server_add_listener(drv.srv, fd, FALSE, &error)) {
        g_printerr("%s\n", error->message);
        return 1;
    }
    if (ro_sock) {
        fd = listen_unix(ro_sock, &error);
        if (fd < 0 || !rpc_server_add_listener(drv.srv, fd, TRUE, &error)) {
            g_printerr("%s\n", error->message);
            return 1;
        }
    }
    g_unix_signal_add(SIGTERM, on_signal, loop);
    g_unix_signal_add(SIGINT, on_signal, loop);
    printf("ready\n");
    fflush(stdout);
    g_main_loop_run(loop);
    rpc_server_free(drv.srv);
    g_ptr_array_unref(drv.domains);
    g_free(drv.lvrpc_xml);
    unlink(sock);
    if (ro_sock)
        unlink(ro_sock);
    return 0;
}
