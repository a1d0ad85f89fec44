/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Domain commands that only look: list, dominfo, domstate, domid,
 * domname, domuuid; with --json as documented in vireo(1).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "vireo/cli-commands.h"
#include "vireo/cli-out.h"
#include "vireo/rpc-error.h"

#define OPT_DOMAIN_BY(help) \
    { "domain", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL | CLI_OPT_DOMAIN, help, 0 }
#define OPT_BOOL(name, help) { name, CLI_OPT_BOOL, 0, help, 0 }
#define OPT_JSON OPT_BOOL("json", "print JSON (see vireo(1))")
#define OPT_END { NULL, 0, 0, NULL, 0 }

static JsonValue *json_id(gint32 id)
{
    return id < 0 ? json_new_null() : json_new_int(id);
}

/* ------------------------------------------------------------------ list */

static const CliOptDef opts_list[] = {
    OPT_BOOL("inactive", "list inactive domains"),
    OPT_BOOL("all", "list inactive & active domains"),
    OPT_BOOL("transient", "list transient domains"),
    OPT_BOOL("persistent", "list persistent domains"),
    OPT_BOOL("with-snapshot", "list domains with existing snapshot"),
    OPT_BOOL("without-snapshot", "list domains without a snapshot"),
    OPT_BOOL("with-checkpoint", "list domains with existing checkpoint"),
    OPT_BOOL("without-checkpoint", "list domains without a checkpoint"),
    OPT_BOOL("state-running", "list domains in running state"),
    OPT_BOOL("state-paused", "list domains in paused state"),
    OPT_BOOL("state-shutoff", "list domains in shutoff state"),
    OPT_BOOL("state-other", "list domains in other states"),
    OPT_BOOL("autostart", "list domains with autostart enabled"),
    OPT_BOOL("no-autostart", "list domains with autostart disabled"),
    OPT_BOOL("with-managed-save", "list domains with managed save state"),
    OPT_BOOL("without-managed-save", "list domains without managed save"),
    OPT_BOOL("uuid", "list uuid's only"),
    OPT_BOOL("name", "list domain names only"),
    OPT_BOOL("id", "list domain IDs only"),
    OPT_BOOL("table", "list table (default)"),
    OPT_BOOL("managed-save", "mark inactive domains with managed save state"),
    OPT_BOOL("title", "show domain title"),
    OPT_JSON,
    OPT_END,
};

/* virsh's order: running domains by id, then the others by name, ignoring case. */
static int domain_order(const void *pa, const void *pb)
{
    const RemoteNonnullDomain *a = pa, *b = pb;

    if (a->id >= 0 && b->id >= 0)
        return a->id < b->id ? -1 : a->id > b->id;
    if (a->id < 0 && b->id < 0)
        return g_ascii_strcasecmp(a->name, b->name);
    return a->id >= 0 ? -1 : 1;
}

/* The <title> of a domain's XML, "" when it has none (virsh's fallback path). */
static char *domain_title(CliCtl *ctl, const RemoteNonnullDomain *dom)
{
    RemoteDomainGetXmlDescArgs a = { .dom = *dom, .flags = 0 };
    g_auto(RemoteDomainGetXmlDescRet) r = { 0 };
    xmlDocPtr doc;
    char *title = NULL;

    if (!cli_call(ctl, REMOTE_PROC_DOMAIN_GET_XML_DESC, &a, &r))
        return NULL;
    doc = xmlReadMemory(r.xml, (int)strlen(r.xml), "domain.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc) {
        for (xmlNodePtr n = xmlDocGetRootElement(doc)->children; n; n = n->next) {
            if (n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, "title")) {
                xmlChar *t = xmlNodeGetContent(n);

                title = g_strdup((const char *)t);
                xmlFree(t);
                break;
            }
        }
        xmlFreeDoc(doc);
    }
    return title ? title : g_strdup("");
}

#define FILTER(opt, flag) \
    if (cli_cmd_has(cmd, opt)) \
        flags |= (flag)

static gboolean cmd_list(CliCtl *ctl, const CliCmd *cmd)
{
    gboolean managed = cli_cmd_has(cmd, "managed-save"), opt_title = cli_cmd_has(cmd, "title");
    gboolean opt_table = cli_cmd_has(cmd, "table"), opt_uuid = cli_cmd_has(cmd, "uuid");
    gboolean opt_name = cli_cmd_has(cmd, "name"), opt_id = cli_cmd_has(cmd, "id");
    gboolean json = cli_cmd_has(cmd, "json");
    guint flags = CLI_LIST_ACTIVE;
    RemoteConnectListAllDomainsArgs a = { .need_results = 1 };
    g_auto(RemoteConnectListAllDomainsRet) r = { 0 };
    g_autoptr(CliTable) table = NULL;
    JsonValue *arr = NULL;

    if (cli_cmd_has(cmd, "inactive") || cli_cmd_has(cmd, "state-shutoff"))
        flags = CLI_LIST_INACTIVE;
    if (cli_cmd_has(cmd, "all"))
        flags = CLI_LIST_INACTIVE | CLI_LIST_ACTIVE;
    FILTER("persistent", CLI_LIST_PERSISTENT);
    FILTER("transient", CLI_LIST_TRANSIENT);
    FILTER("with-managed-save", CLI_LIST_MANAGEDSAVE);
    FILTER("without-managed-save", CLI_LIST_NO_MANAGEDSAVE);
    FILTER("autostart", CLI_LIST_AUTOSTART);
    FILTER("no-autostart", CLI_LIST_NO_AUTOSTART);
    FILTER("with-snapshot", CLI_LIST_HAS_SNAPSHOT);
    FILTER("without-snapshot", CLI_LIST_NO_SNAPSHOT);
    FILTER("with-checkpoint", CLI_LIST_HAS_CHECKPOINT);
    FILTER("without-checkpoint", CLI_LIST_NO_CHECKPOINT);
    FILTER("state-running", CLI_LIST_RUNNING);
    FILTER("state-paused", CLI_LIST_PAUSED);
    FILTER("state-shutoff", CLI_LIST_SHUTOFF);
    FILTER("state-other", CLI_LIST_OTHER);
    if (!cli_cmd_exclusive(cmd, "table", "name") || !cli_cmd_exclusive(cmd, "table", "id") ||
        !cli_cmd_exclusive(cmd, "json", "table"))
        return FALSE;
    if (!opt_uuid && !opt_name && !opt_id)
        opt_table = TRUE;

    a.flags = flags;
    if (!cli_call(ctl, REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS, &a, &r)) {
        cli_error("Failed to list domains");
        return FALSE;
    }
    if (r.n_domains > 1)
        qsort(r.domains, r.n_domains, sizeof(*r.domains), domain_order);

    ctl->json = json;
    if (json)
        arr = json_new_array();
    else if (opt_table && opt_title && opt_uuid)
        table = cli_table_new("Id", "Name", "State", "Title", "UUID", NULL);
    else if (opt_table && opt_title)
        table = cli_table_new("Id", "Name", "State", "Title", NULL);
    else if (opt_table && opt_uuid)
        table = cli_table_new("Id", "Name", "State", "UUID", NULL);
    else if (opt_table)
        table = cli_table_new("Id", "Name", "State", NULL);

    for (guint i = 0; i < r.n_domains; i++) {
        const RemoteNonnullDomain *d = &r.domains[i];
        char uuid[CLI_UUID_STRING_LEN];
        g_autofree char *id = d->id >= 0 ? g_strdup_printf("%d", d->id) : g_strdup("-");
        g_autofree char *title = NULL;
        const char *state_str;
        int state;

        cli_uuid_format(d->uuid, uuid);
        if (!opt_table && !json) {
            const char *sep = "";

            if (opt_uuid) {
                cli_print("%s", uuid);
                sep = " ";
            }
            if (opt_id) {
                /* --id alone lists running domains only. */
                if (d->id < 0 && !opt_uuid && !opt_name)
                    continue;
                cli_print("%s%s", sep, id);
                sep = " ";
            }
            if (opt_name)
                cli_print("%s%s", sep, d->name);
            cli_print("\n");
            continue;
        }
        state = cli_domain_state(ctl, d, NULL);
        if (state < 0) {
            /* Gone in the meantime. */
            cli_ctl_reset_error(ctl);
            continue;
        }
        state_str = cli_state_to_string(state);
        if (managed && state == RPC_DOMAIN_SHUTOFF) {
            RemoteDomainHasManagedSaveImageArgs ma = { .dom = *d };
            RemoteDomainHasManagedSaveImageRet mr = { 0 };

            if (cli_call(ctl, REMOTE_PROC_DOMAIN_HAS_MANAGED_SAVE_IMAGE, &ma, &mr) && mr.result > 0)
                state_str = "saved";
            cli_ctl_reset_error(ctl);
        }
        if (opt_title) {
            title = domain_title(ctl, d);
            if (!title) {
                if (arr)
                    json_free(arr);
                return FALSE;
            }
        }
        if (json) {
            JsonValue *o = json_new_object();

            json_object_set(o, "id", json_id(d->id));
            json_object_set_string(o, "name", d->name);
            json_object_set_string(o, "uuid", uuid);
            json_object_set_string(o, "state", state_str);
            if (opt_title)
                json_object_set_string(o, "title", title);
            json_array_append(arr, o);
        } else if (opt_title && opt_uuid) {
            cli_table_add(table, id, d->name, state_str, title, uuid, NULL);
        } else if (opt_title) {
            cli_table_add(table, id, d->name, state_str, title, NULL);
        } else if (opt_uuid) {
            cli_table_add(table, id, d->name, state_str, uuid, NULL);
        } else {
            cli_table_add(table, id, d->name, state_str, NULL);
        }
    }
    if (json)
        cli_print_json(arr);
    else if (table)
        cli_table_print(table, !ctl->quiet);
    return TRUE;
}

/* --------------------------------------------------------------- dominfo */

static const CliOptDef opts_dominfo[] = {
    OPT_DOMAIN_BY("domain name, id or uuid"),
    OPT_JSON,
    OPT_END,
};

static void line(JsonValue *obj, const char *label, const char *value)
{
    if (!obj)
        cli_print("%-15s %s\n", label, value);
}

static gboolean cmd_dominfo(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    JsonValue *obj = cli_cmd_has(cmd, "json") ? json_new_object() : NULL;
    char uuid[CLI_UUID_STRING_LEN];
    gboolean ret = TRUE;

    ctl->json = obj != NULL;
    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL)) {
        if (obj)
            json_free(obj);
        return FALSE;
    }
    {
        g_autofree char *id = dom.id < 0 ? g_strdup("-") : g_strdup_printf("%d", dom.id);

        line(obj, "Id:", id);
        line(obj, "Name:", dom.name);
        cli_uuid_format(dom.uuid, uuid);
        line(obj, "UUID:", uuid);
        if (obj) {
            json_object_set(obj, "id", json_id(dom.id));
            json_object_set_string(obj, "name", dom.name);
            json_object_set_string(obj, "uuid", uuid);
        }
    }
    {
        RemoteDomainGetOsTypeArgs a = { .dom = dom };
        g_auto(RemoteDomainGetOsTypeRet) r = { 0 };

        if (cli_call(ctl, REMOTE_PROC_DOMAIN_GET_OS_TYPE, &a, &r)) {
            line(obj, "OS Type:", r.type);
            if (obj)
                json_object_set_string(obj, "os_type", r.type);
        }
    }
    {
        RemoteDomainGetInfoArgs a = { .dom = dom };
        RemoteDomainGetInfoRet r = { 0 };

        if (cli_call(ctl, REMOTE_PROC_DOMAIN_GET_INFO, &a, &r)) {
            g_autofree char *cpus = g_strdup_printf("%d", r.nrVirtCpu);
            g_autofree char *maxmem = r.maxMem != UINT_MAX ?
                g_strdup_printf("%" G_GUINT64_FORMAT " KiB", r.maxMem) : g_strdup("no limit");
            g_autofree char *mem = g_strdup_printf("%" G_GUINT64_FORMAT " KiB", r.memory);

            line(obj, "State:", cli_state_to_string(r.state));
            line(obj, "CPU(s):", cpus);
            if (r.cpuTime != 0) {
                g_autofree char *t = g_strdup_printf("%.1fs", r.cpuTime / 1000000000.0);

                line(obj, "CPU time:", t);
            }
            line(obj, "Max memory:", maxmem);
            line(obj, "Used memory:", mem);
            if (obj) {
                json_object_set_string(obj, "state", cli_state_to_string(r.state));
                json_object_set_int(obj, "cpus", r.nrVirtCpu);
                json_object_set_int(obj, "cpu_time_ns", (gint64)r.cpuTime);
                if (r.maxMem != UINT_MAX)
                    json_object_set_int(obj, "max_memory_kib", (gint64)r.maxMem);
                else
                    json_object_set_null(obj, "max_memory_kib");
                json_object_set_int(obj, "used_memory_kib", (gint64)r.memory);
            }
        } else {
            ret = FALSE;
        }
    }
    {
        RemoteDomainIsPersistentArgs a = { .dom = dom };
        RemoteDomainIsPersistentRet r = { 0 };
        GError *saved = g_steal_pointer(&ctl->last_error);

        if (cli_call(ctl, REMOTE_PROC_DOMAIN_IS_PERSISTENT, &a, &r)) {
            line(obj, "Persistent:", r.persistent ? "yes" : "no");
            if (obj)
                json_object_set_bool(obj, "persistent", r.persistent != 0);
        } else {
            line(obj, "Persistent:", "unknown");
            if (obj)
                json_object_set_null(obj, "persistent");
        }
        cli_ctl_set_error(ctl, saved);
    }
    {
        RemoteDomainGetAutostartArgs a = { .dom = dom };
        RemoteDomainGetAutostartRet r = { 0 };
        GError *saved = g_steal_pointer(&ctl->last_error);

        if (cli_call(ctl, REMOTE_PROC_DOMAIN_GET_AUTOSTART, &a, &r)) {
            line(obj, "Autostart:", r.autostart ? "enable" : "disable");
            if (obj)
                json_object_set_bool(obj, "autostart", r.autostart != 0);
        }
        cli_ctl_set_error(ctl, saved);
    }
    {
        RemoteDomainHasManagedSaveImageArgs a = { .dom = dom, .flags = 0 };
        RemoteDomainHasManagedSaveImageRet r = { 0 };
        GError *saved = g_steal_pointer(&ctl->last_error);

        if (cli_call(ctl, REMOTE_PROC_DOMAIN_HAS_MANAGED_SAVE_IMAGE, &a, &r)) {
            line(obj, "Managed save:", r.result ? "yes" : "no");
            if (obj)
                json_object_set_bool(obj, "managed_save", r.result != 0);
        } else {
            line(obj, "Managed save:", "unknown");
            if (obj)
                json_object_set_null(obj, "managed_save");
        }
        cli_ctl_set_error(ctl, saved);
    }
    {
        g_auto(RemoteNodeGetSecurityModelRet) m = { 0 };
        GError *saved = g_steal_pointer(&ctl->last_error);

        if (!cli_call(ctl, REMOTE_PROC_NODE_GET_SECURITY_MODEL, NULL, &m)) {
            if (cli_ctl_error_code(ctl) != RPC_ERR_NO_SUPPORT) {
                g_clear_error(&saved);
                if (obj)
                    json_free(obj);
                return FALSE;
            }
            cli_ctl_reset_error(ctl);
        } else if (m.n_model && m.model[0]) {
            RemoteDomainGetSecurityLabelArgs la = { .dom = dom };
            g_auto(RemoteDomainGetSecurityLabelRet) lr = { 0 };

            line(obj, "Security model:", m.model);
            line(obj, "Security DOI:", m.n_doi ? m.doi : "");
            if (obj) {
                json_object_set_string(obj, "security_model", m.model);
                json_object_set_string(obj, "security_doi", m.n_doi ? m.doi : "");
            }
            if (!cli_call(ctl, REMOTE_PROC_DOMAIN_GET_SECURITY_LABEL, &la, &lr)) {
                g_clear_error(&saved);
                if (obj)
                    json_free(obj);
                return FALSE;
            }
            if (lr.n_label && lr.label[0]) {
                g_autofree char *l = g_strdup_printf("%s (%s)", lr.label,
                                                     lr.enforcing ? "enforcing" : "permissive");

                line(obj, "Security label:", l);
                if (obj)
                    json_object_set_string(obj, "security_label", l);
            }
        }
        cli_ctl_set_error(ctl, saved);
    }
    {
        RemoteDomainGetMessagesArgs a = { .dom = dom, .flags = 0 };
        g_auto(RemoteDomainGetMessagesRet) r = { 0 };
        GError *saved = g_steal_pointer(&ctl->last_error);
        JsonValue *msgs = obj ? json_new_array() : NULL;

        if (cli_call(ctl, REMOTE_PROC_DOMAIN_GET_MESSAGES, &a, &r)) {
            for (guint i = 0; i < r.n_msgs; i++) {
                line(obj, i == 0 ? "Messages:" : "", r.msgs[i]);
                if (msgs)
                    json_array_append(msgs, json_new_string(r.msgs[i]));
            }
        }
        if (obj)
            json_object_set(obj, "messages", msgs);
        cli_ctl_reset_error(ctl);
        cli_ctl_set_error(ctl, saved);
    }
    if (obj)
        cli_print_json(obj);
    return ret;
}

/* -------------------------------------------------------------- domstate */

static const CliOptDef opts_domstate[] = {
    OPT_DOMAIN_BY("domain name, id or uuid"),
    OPT_BOOL("reason", "also print reason for the state"),
    OPT_JSON,
    OPT_END,
};

static gboolean cmd_domstate(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    int state, reason = 0;

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL))
        return FALSE;
    state = cli_domain_state(ctl, &dom, &reason);
    if (state < 0)
        return FALSE;
    if (cli_cmd_has(cmd, "json")) {
        JsonValue *o = json_new_object();

        ctl->json = TRUE;
        json_object_set_string(o, "state", cli_state_to_string(state));
        json_object_set_string(o, "reason", cli_state_reason_to_string(state, reason));
        cli_print_json(o);
    } else if (cli_cmd_has(cmd, "reason")) {
        cli_print("%s (%s)\n", cli_state_to_string(state),
                  cli_state_reason_to_string(state, reason));
    } else {
        cli_print("%s\n", cli_state_to_string(state));
    }
    return TRUE;
}

/* ------------------------------------------------- domid, domname, domuuid */

static const CliOptDef opts_domid[] = {
    OPT_DOMAIN_BY("domain name or uuid"),
    OPT_JSON,
    OPT_END,
};

static const CliOptDef opts_domname[] = {
    OPT_DOMAIN_BY("domain id or uuid"),
    OPT_JSON,
    OPT_END,
};

static const CliOptDef opts_domuuid[] = {
    OPT_DOMAIN_BY("domain id or name"),
    OPT_JSON,
    OPT_END,
};

static void print_one(CliCtl *ctl, const CliCmd *cmd, const char *key, JsonValue *v,
                      const char *text)
{
    if (cli_cmd_has(cmd, "json")) {
        JsonValue *o = json_new_object();

        ctl->json = TRUE;
        json_object_set(o, key, v);
        cli_print_json(o);
    } else {
        json_free(v);
        cli_print("%s\n", text);
    }
}

static gboolean cmd_domid(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    g_autofree char *id = NULL;

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_NAME | CLI_BY_UUID, &dom, NULL))
        return FALSE;
    id = dom.id < 0 ? g_strdup("-") : g_strdup_printf("%d", dom.id);
    print_one(ctl, cmd, "id", json_id(dom.id), id);
    return TRUE;
}

static gboolean cmd_domname(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ID | CLI_BY_UUID, &dom, NULL))
        return FALSE;
    print_one(ctl, cmd, "name", json_new_string(dom.name), dom.name);
    return TRUE;
}

static gboolean cmd_domuuid(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    char uuid[CLI_UUID_STRING_LEN];

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ID | CLI_BY_NAME, &dom, NULL))
        return FALSE;
    cli_uuid_format(dom.uuid, uuid);
    print_one(ctl, cmd, "uuid", json_new_string(uuid), uuid);
    return TRUE;
}

const CliCmdDef cli_monitor_cmds[] = {
    { "domid", cmd_domid, opts_domid, "convert a domain name or UUID to domain id",
      "Converts a domain name or UUID to a domain id.", 0 },
    { "dominfo", cmd_dominfo, opts_dominfo, "domain information",
      "Returns basic information about the domain.", 0 },
    { "domname", cmd_domname, opts_domname, "convert a domain id or UUID to domain name",
      "Converts a domain id or UUID to a domain name.", 0 },
    { "domstate", cmd_domstate, opts_domstate, "domain state",
      "Returns state about a domain.", 0 },
    { "domuuid", cmd_domuuid, opts_domuuid, "convert a domain name or id to domain UUID",
      "Converts a domain name or id to a domain UUID.", 0 },
    { "list", cmd_list, opts_list, "list domains", "Returns list of domains.", 0 },
    { NULL, NULL, NULL, NULL, NULL, 0 },
};
