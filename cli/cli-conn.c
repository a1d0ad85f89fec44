/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The command-line tools' connection, calls and domain lookups. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vireo/cli-conn.h"
#include "vireo/cli-out.h"
#include "vireo/cli-uri.h"
#include "vireo/rpc-error.h"
#include "vireo/util.h"

CliCtl *cli_ctl_new(void)
{
    CliCtl *ctl = g_new0(CliCtl, 1);

    ctl->escape_char = 0x1d;
    ctl->escape_str = g_strdup("^]");
    ctl->ka_interval = 5;
    ctl->ka_count = 5;
    return ctl;
}

void cli_ctl_free(CliCtl *ctl)
{
    if (!ctl)
        return;
    cli_conn_close(ctl);
    g_clear_error(&ctl->last_error);
    g_free(ctl->uri);
    g_free(ctl->escape_str);
    g_free(ctl);
}

void cli_ctl_set_error(CliCtl *ctl, GError *error)
{
    g_clear_error(&ctl->last_error);
    ctl->last_error = error;
}

void cli_ctl_reset_error(CliCtl *ctl)
{
    g_clear_error(&ctl->last_error);
}

void cli_ctl_report_error(CliCtl *ctl)
{
    if (!ctl->last_error)
        return;
    cli_error("%s", ctl->last_error->message);
    g_clear_error(&ctl->last_error);
}

int cli_ctl_error_code(CliCtl *ctl)
{
    if (ctl->last_error && ctl->last_error->domain == RPC_REMOTE_ERROR)
        return ctl->last_error->code;
    return -1;
}

gboolean cli_ctl_set_escape(CliCtl *ctl, const char *str)
{
    guint8 c;

    /* virsh's rule: ^ and one of a-z @ A-Z [ \ ] ^ _, or any single other character. */
    if (str[0] == '^' && str[1] && !str[2] &&
        ((str[1] >= 'a' && str[1] <= 'z') || (str[1] >= '@' && str[1] <= '_')))
        c = (guint8)(g_ascii_toupper(str[1]) ^ 0x40);
    else if (str[0] && !str[1] && str[0] != '^')
        c = (guint8)str[0];
    else
        return FALSE;
    ctl->escape_char = c;
    g_free(ctl->escape_str);
    ctl->escape_str = g_strdup(str);
    return TRUE;
}

/* ------------------------------------------------------------ connecting */

static int connect_unix(const char *path, GError **error)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    autoclose int fd = -1;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG,
                    "Socket path '%s' too long", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int saved = errno;

        /* libvirt's wording, so scripts and people see what virsh shows. */
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "Failed to connect socket to '%s': %s", path, g_strerror(saved));
        return -1;
    }
    return vireo_steal_fd(&fd);
}

static gboolean conn_open(CliCtl *ctl, GError **error)
{
    g_autoptr(CliUri) uri = NULL;
    g_autoptr(RpcClient) client = NULL;
    int fd;

    if (ctl->client)
        return TRUE;
    uri = cli_uri_parse(ctl->uri, ctl->readonly, error);
    if (!uri)
        return FALSE;
    if (uri->remote) {
        client = rpc_remote_connect(uri->remote, NULL, 10000, error);
    } else {
        fd = connect_unix(uri->socket, error);
        if (fd < 0)
            return FALSE;
        client = rpc_client_new_fd(fd, error);
    }
    if (!client)
        return FALSE;
    rpc_client_set_keepalive(client, ctl->ka_interval, ctl->ka_count);
    if (!rpc_client_open(client, uri->open_name, ctl->readonly ? RPC_CONNECT_RO : 0, error))
        return FALSE;
    ctl->client = g_steal_pointer(&client);
    return TRUE;
}

gboolean cli_conn_open(CliCtl *ctl)
{
    g_autoptr(GError) error = NULL;

    if (conn_open(ctl, &error))
        return TRUE;
    cli_error("failed to connect to the hypervisor");
    cli_error("%s", error->message);
    return FALSE;
}

gboolean cli_conn_open_silent(CliCtl *ctl)
{
    return conn_open(ctl, NULL);
}

void cli_conn_close(CliCtl *ctl)
{
    if (!ctl->client)
        return;
    /* Nothing to tell anyone if the daemon has gone already. */
    rpc_client_close(ctl->client, NULL);
    g_clear_pointer(&ctl->client, rpc_client_free);
}

gboolean cli_call(CliCtl *ctl, gint32 proc, const void *args, void *ret)
{
    GError *error = NULL;

    if (!ctl->client) {
        g_set_error(&error, RPC_ERROR, RPC_ERROR_CLOSED, "not connected to the hypervisor");
        cli_ctl_set_error(ctl, error);
        return FALSE;
    }
    if (rpc_client_call(ctl->client, REMOTE_PROGRAM, proc, args, ret, &error))
        return TRUE;
    cli_ctl_set_error(ctl, error);
    return FALSE;
}

/* ---------------------------------------------------------------- domains */

void cli_uuid_format(const guint8 *u, char out[CLI_UUID_STRING_LEN])
{
    g_snprintf(out, CLI_UUID_STRING_LEN,
               "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
               u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
               u[12], u[13], u[14], u[15]);
}

/* libvirt's virUUIDParse: 32 hex digits, dashes allowed between pairs. */
gboolean cli_uuid_parse(const char *s, guint8 *uuid)
{
    guint n = 0;

    while (g_ascii_isspace(*s))
        s++;
    for (; *s && n < 32; s++) {
        int v;

        if (*s == '-' && n % 2 == 0)
            continue;
        v = g_ascii_xdigit_value(*s);
        if (v < 0)
            return FALSE;
        if (n % 2 == 0)
            uuid[n / 2] = (guint8)(v << 4);
        else
            uuid[n / 2] |= (guint8)v;
        n++;
    }
    while (g_ascii_isspace(*s))
        s++;
    return n == 32 && !*s;
}

static gboolean parse_id(const char *s, gint32 *id)
{
    char *end = NULL;
    gint64 v;

    if (!*s)
        return FALSE;
    errno = 0;
    v = g_ascii_strtoll(s, &end, 10);
    if (errno || *end || v < 0 || v > G_MAXINT32)
        return FALSE;
    *id = (gint32)v;
    return TRUE;
}

gboolean cli_domain_lookup(CliCtl *ctl, const char *name, guint by, RemoteNonnullDomain *dom)
{
    gboolean found = FALSE;
    gint32 id;

    memset(dom, 0, sizeof(*dom));
    if ((by & CLI_BY_ID) && parse_id(name, &id)) {
        RemoteDomainLookupByIdArgs a = { .id = id };
        RemoteDomainLookupByIdRet r = { 0 };

        if (cli_call(ctl, REMOTE_PROC_DOMAIN_LOOKUP_BY_ID, &a, &r)) {
            *dom = r.dom;
            found = TRUE;
        }
    }
    if (!found && (by & CLI_BY_UUID) && strlen(name) == CLI_UUID_STRING_LEN - 1) {
        RemoteDomainLookupByUuidArgs a;
        RemoteDomainLookupByUuidRet r = { 0 };

        if (cli_uuid_parse(name, a.uuid) &&
            cli_call(ctl, REMOTE_PROC_DOMAIN_LOOKUP_BY_UUID, &a, &r)) {
            *dom = r.dom;
            found = TRUE;
        }
    }
    if (!found && (by & CLI_BY_NAME)) {
        RemoteDomainLookupByNameArgs a = { .name = (char *)name };
        RemoteDomainLookupByNameRet r = { 0 };

        if (cli_call(ctl, REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME, &a, &r)) {
            *dom = r.dom;
            found = TRUE;
        }
    }
    /* As virsh: the server's "Domain not found: ..." is not shown. */
    cli_ctl_reset_error(ctl);
    if (!found)
        cli_error("failed to get domain '%s'", name);
    return found;
}

gboolean cli_domain_from_cmd(CliCtl *ctl, const CliCmd *cmd, guint by, RemoteNonnullDomain *dom,
                             const char **name)
{
    const char *n = cli_cmd_get(cmd, "domain");

    g_assert(n);    /* a required option: the parser checked it */
    if (name)
        *name = n;
    return cli_domain_lookup(ctl, n, by, dom);
}

int cli_domain_state(CliCtl *ctl, const RemoteNonnullDomain *dom, int *reason)
{
    RemoteDomainGetStateArgs a = { .dom = *dom, .flags = 0 };
    RemoteDomainGetStateRet r = { 0 };
    RemoteDomainGetInfoArgs ia = { .dom = *dom };
    RemoteDomainGetInfoRet ir = { 0 };

    if (cli_call(ctl, REMOTE_PROC_DOMAIN_GET_STATE, &a, &r)) {
        if (reason)
            *reason = r.reason;
        return r.state;
    }
    if (cli_ctl_error_code(ctl) != RPC_ERR_NO_SUPPORT)
        return -1;
    cli_ctl_reset_error(ctl);
    if (!cli_call(ctl, REMOTE_PROC_DOMAIN_GET_INFO, &ia, &ir))
        return -1;
    if (reason)
        *reason = 0;
    return ir.state;
}

GPtrArray *cli_domain_names(CliCtl *ctl, guint flags)
{
    RemoteConnectListAllDomainsArgs a = { .need_results = 1, .flags = flags };
    g_auto(RemoteConnectListAllDomainsRet) r = { 0 };
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);

    if (!cli_call(ctl, REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS, &a, &r)) {
        cli_ctl_reset_error(ctl);
        return names;
    }
    for (guint i = 0; i < r.n_domains; i++)
        g_ptr_array_add(names, g_strdup(r.domains[i].name));
    return names;
}

/* ------------------------------------------------------ states and reasons */

static const char *const state_names[] = {
    "no state", "running", "idle", "paused", "in shutdown", "shut off", "crashed",
    "pmsuspended",
};

const char *cli_state_to_string(int state)
{
    if (state < 0 || state >= (int)G_N_ELEMENTS(state_names))
        return "no state";
    return state_names[state];
}

static const char *const running_reasons[] = {
    "unknown", "booted", "migrated", "restored", "from snapshot", "unpaused",
    "migration canceled", "save canceled", "event wakeup", "crashed", "post-copy",
    "post-copy failed", NULL,
};
static const char *const paused_reasons[] = {
    "unknown", "user", "migrating", "saving", "dumping", "I/O error", "watchdog",
    "from snapshot", "shutting down", "creating snapshot", "crashed", "starting up",
    "post-copy", "post-copy failed", "api error", NULL,
};
static const char *const shutdown_reasons[] = { "unknown", "user", NULL };
static const char *const shutoff_reasons[] = {
    "unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed",
    "from snapshot", "daemon", NULL,
};
static const char *const crashed_reasons[] = { "unknown", "panicked", NULL };
static const char *const unknown_only[] = { "unknown", NULL };

const char *cli_state_reason_to_string(int state, int reason)
{
    const char *const *table = unknown_only;

    switch (state) {
    case 1: table = running_reasons; break;
    case 3: table = paused_reasons; break;
    case 4: table = shutdown_reasons; break;
    case 5: table = shutoff_reasons; break;
    case 6: table = crashed_reasons; break;
    default: break;
    }
    for (int i = 0; table[i]; i++)
        if (i == reason)
            return table[i];
    return "unknown";
}
