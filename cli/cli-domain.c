/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Domain commands that change something: define, undefine, start,
 * shutdown, destroy, reboot, reset, suspend, resume, autostart, setmem,
 * setvcpus, plus dumpxml and vcpucount. Wording, procedures and their
 * order follow virsh 9.0.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "vireo/cli-commands.h"
#include "vireo/cli-out.h"
#include "vireo/rpc-error.h"
#include "vireo/util.h"

#define OPT_DOMAIN(help, list_flags) \
    { "domain", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL | CLI_OPT_DOMAIN, \
      help, list_flags }
#define OPT_DOMAIN_FULL OPT_DOMAIN("domain name, id or uuid", 0)
#define OPT_BOOL(name, help) { name, CLI_OPT_BOOL, 0, help, 0 }
#define OPT_END { NULL, 0, 0, NULL, 0 }

/* Largest file define/edit read, as virsh's VSH_MAX_XML_FILE. */
#define MAX_XML_FILE (10 * 1024 * 1024)

/* virDomainModificationImpact / vcpu flags */
enum { AFFECT_LIVE = 1, AFFECT_CONFIG = 2, VCPU_MAXIMUM = 4, VCPU_GUEST = 8, VCPU_HOTPLUGGABLE = 16 };

/* --------------------------------------------------------------- define */

/* virFileReadAll's errors, as virsh prints them. */
static gboolean read_xml_file(const char *path, char **xml)
{
    g_autoptr(GString) buf = g_string_new(NULL);
    autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
    char chunk[65536];
    ssize_t n;

    if (fd < 0) {
        cli_error("Failed to open file '%s': %s", path, g_strerror(errno));
        return FALSE;
    }
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cli_error("Failed to read file '%s': %s", path, g_strerror(errno));
            return FALSE;
        }
        if (buf->len + n > MAX_XML_FILE) {
            cli_error("File '%s' is too large", path);
            return FALSE;
        }
        g_string_append_len(buf, chunk, n);
    }
    *xml = g_string_free(g_steal_pointer(&buf), FALSE);
    return TRUE;
}

static const CliOptDef opts_define[] = {
    { "file", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL | CLI_OPT_FILE,
      "file containing an XML domain description", 0 },
    OPT_BOOL("validate", "validate the XML against the schema"),
    OPT_END,
};

static gboolean cmd_define(CliCtl *ctl, const CliCmd *cmd)
{
    const char *file = cli_cmd_get(cmd, "file");
    g_autofree char *xml = NULL;
    g_auto(RemoteNonnullDomain) dom = { 0 };
    gboolean ok;

    if (!read_xml_file(file, &xml))
        return FALSE;
    if (cli_cmd_has(cmd, "validate")) {
        RemoteDomainDefineXmlFlagsArgs a = { .xml = xml, .flags = 1 };
        RemoteDomainDefineXmlFlagsRet r = { 0 };

        ok = cli_call(ctl, REMOTE_PROC_DOMAIN_DEFINE_XML_FLAGS, &a, &r);
        dom = r.dom;
    } else {
        RemoteDomainDefineXmlArgs a = { .xml = xml };
        RemoteDomainDefineXmlRet r = { 0 };

        ok = cli_call(ctl, REMOTE_PROC_DOMAIN_DEFINE_XML, &a, &r);
        dom = r.dom;
    }
    if (!ok) {
        cli_error("Failed to define domain from %s", file);
        return FALSE;
    }
    cli_print_extra(ctl, "Domain '%s' defined from %s\n", dom.name, file);
    return TRUE;
}

/* ------------------------------------------------------------- undefine */

static const CliOptDef opts_undefine[] = {
    OPT_DOMAIN_FULL,
    OPT_BOOL("managed-save", "remove domain managed state file"),
    OPT_BOOL("snapshots-metadata", "remove all domain snapshot metadata (vm must be inactive)"),
    OPT_BOOL("checkpoints-metadata", "remove all domain checkpoint metadata (vm must be inactive)"),
    OPT_BOOL("nvram", "remove nvram file"),
    OPT_BOOL("keep-nvram", "keep nvram file"),
    OPT_END,
};

/* An int-returning query whose failure is ignored (older servers lack it). */
static int query_int(CliCtl *ctl, gint32 proc, const void *args, gint32 *field, void *ret)
{
    if (!cli_call(ctl, proc, args, ret)) {
        cli_ctl_reset_error(ctl);
        return -1;
    }
    return *field;
}

static gboolean cmd_undefine(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    const char *name;
    guint flags = 0;

    if (!cli_cmd_exclusive(cmd, "nvram", "keep-nvram"))
        return FALSE;
    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, &name))
        return FALSE;
    {
        /* The questions virsh asks before undefining (what the captures show). */
        RemoteDomainIsActiveArgs aa = { .dom = dom };
        RemoteDomainIsActiveRet ar = { 0 };
        RemoteDomainHasManagedSaveImageArgs ma = { .dom = dom };
        RemoteDomainHasManagedSaveImageRet mr = { 0 };
        RemoteDomainSnapshotNumArgs sa = { .dom = dom };
        RemoteDomainSnapshotNumRet sr = { 0 };

        query_int(ctl, REMOTE_PROC_DOMAIN_IS_ACTIVE, &aa, &ar.active, &ar);
        query_int(ctl, REMOTE_PROC_DOMAIN_HAS_MANAGED_SAVE_IMAGE, &ma, &mr.result, &mr);
        query_int(ctl, REMOTE_PROC_DOMAIN_SNAPSHOT_NUM, &sa, &sr.num, &sr);
    }
    if (cli_cmd_has(cmd, "managed-save"))
        flags |= 1;
    if (cli_cmd_has(cmd, "snapshots-metadata"))
        flags |= 2;
    if (cli_cmd_has(cmd, "nvram"))
        flags |= 4;
    if (cli_cmd_has(cmd, "keep-nvram"))
        flags |= 8;
    if (cli_cmd_has(cmd, "checkpoints-metadata"))
        flags |= 16;
    {
        RemoteDomainUndefineFlagsArgs a = { .dom = dom, .flags = flags };
        RemoteDomainUndefineArgs plain = { .dom = dom };
        gboolean ok = cli_call(ctl, REMOTE_PROC_DOMAIN_UNDEFINE_FLAGS, &a, NULL);

        if (!ok && flags == 0 && cli_ctl_error_code(ctl) == RPC_ERR_NO_SUPPORT) {
            cli_ctl_reset_error(ctl);
            ok = cli_call(ctl, REMOTE_PROC_DOMAIN_UNDEFINE, &plain, NULL);
        }
        if (!ok) {
            cli_error("Failed to undefine domain '%s'", name);
            return FALSE;
        }
    }
    cli_print_extra(ctl, "Domain '%s' has been undefined\n", name);
    return TRUE;
}

/* ---------------------------------------------------------------- start */

static const CliOptDef opts_start[] = {
    OPT_DOMAIN("name of the inactive domain", CLI_LIST_INACTIVE),
    OPT_BOOL("console", "attach to console after creation"),
    OPT_BOOL("paused", "leave the guest paused after creation"),
    OPT_BOOL("autodestroy", "automatically destroy the guest when virsh disconnects"),
    OPT_BOOL("bypass-cache", "avoid file system cache when loading"),
    OPT_BOOL("force-boot", "force fresh boot by discarding any managed save"),
    OPT_BOOL("reset-nvram", "re-initialize NVRAM from its pristine template"),
    OPT_END,
};

static gboolean cmd_start(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    guint flags = 0;
    gboolean ok;

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_NAME | CLI_BY_UUID, &dom, NULL))
        return FALSE;
    if (dom.id != -1) {
        cli_error("Domain is already active");
        return FALSE;
    }
    /* virDomainCreateFlags */
    if (cli_cmd_has(cmd, "paused"))
        flags |= 1;
    if (cli_cmd_has(cmd, "autodestroy"))
        flags |= 2;
    if (cli_cmd_has(cmd, "bypass-cache"))
        flags |= 4;
    if (cli_cmd_has(cmd, "force-boot"))
        flags |= 8;
    if (cli_cmd_has(cmd, "reset-nvram"))
        flags |= 32;
    if (flags) {
        RemoteDomainCreateWithFlagsArgs a = { .dom = dom, .flags = flags };
        RemoteDomainCreateWithFlagsRet r = { 0 };

        ok = cli_call(ctl, REMOTE_PROC_DOMAIN_CREATE_WITH_FLAGS, &a, &r);
        if (ok) {
            remote_nonnull_domain_clear(&dom);
            dom = r.dom;
        }
    } else {
        RemoteDomainCreateArgs a = { .dom = dom };
        RemoteDomainLookupByUuidArgs la;
        RemoteDomainLookupByUuidRet lr = { 0 };

        ok = cli_call(ctl, REMOTE_PROC_DOMAIN_CREATE, &a, NULL);
        /* libvirt's remote driver refreshes the id this way after CREATE. */
        memcpy(la.uuid, dom.uuid, sizeof(la.uuid));
        if (ok && cli_call(ctl, REMOTE_PROC_DOMAIN_LOOKUP_BY_UUID, &la, &lr)) {
            remote_nonnull_domain_clear(&dom);
            dom = lr.dom;
        } else if (ok) {
            cli_ctl_reset_error(ctl);
        }
    }
    if (!ok) {
        cli_error("Failed to start domain '%s'", dom.name);
        return FALSE;
    }
    cli_print_extra(ctl, "Domain '%s' started\n", dom.name);
    if (cli_cmd_has(cmd, "console"))
        return cli_console_run(ctl, &dom, NULL, FALSE, 0);
    return TRUE;
}

/* ------------------------------------------------- shutdown, reboot... */

static const CliOptDef opts_shutdown[] = {
    OPT_DOMAIN("domain name, id or uuid", CLI_LIST_ACTIVE),
    { "mode", CLI_OPT_STRING, 0, "shutdown mode: acpi|agent|initctl|signal|paravirt", 0 },
    OPT_END,
};

/* virDomainShutdownFlagValues and virDomainRebootFlagValues share the bits. */
static gboolean parse_modes(const CliCmd *cmd, const char *sep_word, guint *flags)
{
    const char *mode = cli_cmd_get(cmd, "mode");
    g_auto(GStrv) modes = NULL;
    static const char *const names[] = { "acpi", "agent", "initctl", "signal", "paravirt" };

    *flags = 0;
    if (!mode)
        return TRUE;
    modes = g_strsplit(mode, ",", 0);
    for (guint i = 0; modes[i]; i++) {
        guint j;

        for (j = 0; j < G_N_ELEMENTS(names); j++)
            if (!strcmp(modes[i], names[j]))
                break;
        if (j == G_N_ELEMENTS(names)) {
            cli_error("Unknown mode %s value, expecting 'acpi', 'agent', 'initctl', 'signal'%s "
                      "'paravirt'", modes[i], sep_word);
            return FALSE;
        }
        *flags |= 1u << j;
    }
    return TRUE;
}

static gboolean cmd_shutdown(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    const char *name;
    guint flags;
    gboolean ok;

    if (!parse_modes(cmd, ", or", &flags) ||
        !cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, &name))
        return FALSE;
    if (flags) {
        RemoteDomainShutdownFlagsArgs a = { .dom = dom, .flags = flags };

        ok = cli_call(ctl, REMOTE_PROC_DOMAIN_SHUTDOWN_FLAGS, &a, NULL);
    } else {
        RemoteDomainShutdownArgs a = { .dom = dom };

        ok = cli_call(ctl, REMOTE_PROC_DOMAIN_SHUTDOWN, &a, NULL);
    }
    if (!ok) {
        cli_error("Failed to shutdown domain '%s'", name);
        return FALSE;
    }
    cli_print_extra(ctl, "Domain '%s' is being shutdown\n", name);
    return TRUE;
}

static gboolean cmd_reboot(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    const char *name;
    guint flags;

    if (!parse_modes(cmd, " or", &flags) ||
        !cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, &name))
        return FALSE;
    {
        RemoteDomainRebootArgs a = { .dom = dom, .flags = flags };

        if (!cli_call(ctl, REMOTE_PROC_DOMAIN_REBOOT, &a, NULL)) {
            cli_error("Failed to reboot domain '%s'", name);
            return FALSE;
        }
    }
    cli_print_extra(ctl, "Domain '%s' is being rebooted\n", name);
    return TRUE;
}

static const CliOptDef opts_destroy[] = {
    OPT_DOMAIN("domain name, id or uuid", CLI_LIST_ACTIVE),
    OPT_BOOL("graceful", "terminate gracefully"),
    OPT_BOOL("remove-logs", "remove domain logs"),
    OPT_END,
};

static gboolean cmd_destroy(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    const char *name;
    guint flags = 0;
    gboolean ok;

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, &name))
        return FALSE;
    if (cli_cmd_has(cmd, "graceful"))
        flags |= 1;
    if (cli_cmd_has(cmd, "remove-logs"))
        flags |= 2;
    if (flags) {
        RemoteDomainDestroyFlagsArgs a = { .dom = dom, .flags = flags };

        ok = cli_call(ctl, REMOTE_PROC_DOMAIN_DESTROY_FLAGS, &a, NULL);
    } else {
        RemoteDomainDestroyArgs a = { .dom = dom };

        ok = cli_call(ctl, REMOTE_PROC_DOMAIN_DESTROY, &a, NULL);
    }
    if (!ok) {
        cli_error("Failed to destroy domain '%s'", name);
        return FALSE;
    }
    cli_print_extra(ctl, "Domain '%s' destroyed\n", name);
    return TRUE;
}

static const CliOptDef opts_domain_active[] = {
    OPT_DOMAIN("domain name, id or uuid", CLI_LIST_ACTIVE),
    OPT_END,
};

static const CliOptDef opts_domain_paused[] = {
    OPT_DOMAIN("domain name, id or uuid", CLI_LIST_PAUSED),
    OPT_END,
};

/* A command that calls one procedure taking just the domain (and flags 0). */
static gboolean simple_op(CliCtl *ctl, const CliCmd *cmd, gint32 proc, const char *what,
                          const char *done)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    const char *name;
    /* DOMAIN_RESET's args are dom + flags; the others are dom alone. */
    RemoteDomainResetArgs a = { 0 };

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, &name))
        return FALSE;
    a.dom = dom;
    if (!cli_call(ctl, proc, &a, NULL)) {
        cli_error("Failed to %s domain '%s'", what, name);
        return FALSE;
    }
    cli_print_extra(ctl, "Domain '%s' %s\n", name, done);
    return TRUE;
}

static gboolean cmd_reset(CliCtl *ctl, const CliCmd *cmd)
{
    return simple_op(ctl, cmd, REMOTE_PROC_DOMAIN_RESET, "reset", "was reset");
}

static gboolean cmd_suspend(CliCtl *ctl, const CliCmd *cmd)
{
    return simple_op(ctl, cmd, REMOTE_PROC_DOMAIN_SUSPEND, "suspend", "suspended");
}

static gboolean cmd_resume(CliCtl *ctl, const CliCmd *cmd)
{
    return simple_op(ctl, cmd, REMOTE_PROC_DOMAIN_RESUME, "resume", "resumed");
}

/* ------------------------------------------------------------ autostart */

static const CliOptDef opts_autostart[] = {
    OPT_DOMAIN("domain name, id or uuid", CLI_LIST_PERSISTENT),
    OPT_BOOL("disable", "disable autostarting"),
    OPT_END,
};

static gboolean cmd_autostart(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    const char *name;
    gboolean on = !cli_cmd_has(cmd, "disable");

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, &name))
        return FALSE;
    {
        RemoteDomainSetAutostartArgs a = { .dom = dom, .autostart = on };

        if (!cli_call(ctl, REMOTE_PROC_DOMAIN_SET_AUTOSTART, &a, NULL)) {
            cli_error("Failed to %smark domain '%s' as autostarted", on ? "" : "un", name);
            return FALSE;
        }
    }
    cli_print_extra(ctl, "Domain '%s' %smarked as autostarted\n", name, on ? "" : "un");
    return TRUE;
}

/* -------------------------------------------------------------- dumpxml */

static const CliOptDef opts_dumpxml[] = {
    OPT_DOMAIN_FULL,
    OPT_BOOL("inactive", "show inactive defined XML"),
    OPT_BOOL("security-info", "include security sensitive information in XML dump"),
    OPT_BOOL("update-cpu", "update guest CPU according to host CPU"),
    OPT_BOOL("migratable", "provide XML suitable for migrations"),
    OPT_END,
};

static gboolean cmd_dumpxml(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    g_auto(RemoteDomainGetXmlDescRet) r = { 0 };
    guint flags = 0;

    /* virDomainXMLFlags */
    if (cli_cmd_has(cmd, "security-info"))
        flags |= 1;
    if (cli_cmd_has(cmd, "inactive"))
        flags |= 2;
    if (cli_cmd_has(cmd, "update-cpu"))
        flags |= 4;
    if (cli_cmd_has(cmd, "migratable"))
        flags |= 8;
    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL))
        return FALSE;
    {
        RemoteDomainGetXmlDescArgs a = { .dom = dom, .flags = flags };

        if (!cli_call(ctl, REMOTE_PROC_DOMAIN_GET_XML_DESC, &a, &r))
            return FALSE;
    }
    cli_print("%s", r.xml);
    return TRUE;
}

/* ----------------------------------------------------------------- setmem */

static const CliOptDef opts_setmem[] = {
    OPT_DOMAIN_FULL,
    { "size", CLI_OPT_INT, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL,
      "new memory size, as scaled integer (default KiB)", 0 },
    OPT_BOOL("config", "affect next boot"),
    OPT_BOOL("live", "affect running domain"),
    OPT_BOOL("current", "affect current domain"),
    OPT_END,
};

static gboolean cmd_setmem(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    gboolean config = cli_cmd_has(cmd, "config"), live = cli_cmd_has(cmd, "live");
    gboolean current = cli_cmd_has(cmd, "current");
    guint64 bytes = 0;
    guint flags = 0;

    if (!cli_cmd_exclusive(cmd, "current", "live") || !cli_cmd_exclusive(cmd, "current", "config"))
        return FALSE;
    if (config)
        flags |= AFFECT_CONFIG;
    if (live)
        flags |= AFFECT_LIVE;
    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL))
        return FALSE;
    if (cli_cmd_get_scaled(cmd, "size", 1024, G_MAXUINT64, &bytes) < 0)
        return FALSE;
    if (!current && !live && !config) {
        RemoteDomainSetMemoryArgs a = { .dom = dom, .memory = (bytes + 1023) / 1024 };

        return cli_call(ctl, REMOTE_PROC_DOMAIN_SET_MEMORY, &a, NULL);
    } else {
        RemoteDomainSetMemoryFlagsArgs a = { .dom = dom, .memory = (bytes + 1023) / 1024,
                                             .flags = flags };

        return cli_call(ctl, REMOTE_PROC_DOMAIN_SET_MEMORY_FLAGS, &a, NULL);
    }
}

/* --------------------------------------------------------------- setvcpus */

static const CliOptDef opts_setvcpus[] = {
    OPT_DOMAIN_FULL,
    { "count", CLI_OPT_INT, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL, "number of virtual CPUs", 0 },
    OPT_BOOL("maximum", "set maximum limit on next boot"),
    OPT_BOOL("config", "affect next boot"),
    OPT_BOOL("live", "affect running domain"),
    OPT_BOOL("current", "affect current domain"),
    OPT_BOOL("guest", "modify cpu state in the guest"),
    OPT_BOOL("hotpluggable", "make added vcpus hot(un)pluggable"),
    OPT_END,
};

static gboolean cmd_setvcpus(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    guint count = 0, flags = 0;

    if (!cli_cmd_exclusive(cmd, "current", "live") ||
        !cli_cmd_exclusive(cmd, "current", "config") ||
        !cli_cmd_exclusive(cmd, "guest", "config") ||
        !cli_cmd_requires(cmd, "maximum", "config"))
        return FALSE;
    if (cli_cmd_has(cmd, "config"))
        flags |= AFFECT_CONFIG;
    if (cli_cmd_has(cmd, "live"))
        flags |= AFFECT_LIVE;
    if (cli_cmd_has(cmd, "guest"))
        flags |= VCPU_GUEST;
    if (cli_cmd_has(cmd, "maximum"))
        flags |= VCPU_MAXIMUM;
    if (cli_cmd_has(cmd, "hotpluggable"))
        flags |= VCPU_HOTPLUGGABLE;
    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL))
        return FALSE;
    if (cli_cmd_get_uint(cmd, "count", &count) < 0)
        return FALSE;
    if (count == 0) {
        cli_error("Can't set 0 processors for a VM");
        return FALSE;
    }
    if (!cli_cmd_has(cmd, "current") && flags == 0) {
        RemoteDomainSetVcpusArgs a = { .dom = dom, .nvcpus = count };

        return cli_call(ctl, REMOTE_PROC_DOMAIN_SET_VCPUS, &a, NULL);
    } else {
        RemoteDomainSetVcpusFlagsArgs a = { .dom = dom, .nvcpus = count, .flags = flags };

        return cli_call(ctl, REMOTE_PROC_DOMAIN_SET_VCPUS_FLAGS, &a, NULL);
    }
}

/* -------------------------------------------------------------- vcpucount */

static const CliOptDef opts_vcpucount[] = {
    OPT_DOMAIN_FULL,
    OPT_BOOL("maximum", "get maximum count of vcpus"),
    OPT_BOOL("active", "get number of currently active vcpus"),
    OPT_BOOL("live", "get value from running domain"),
    OPT_BOOL("config", "get value to be used on next boot"),
    OPT_BOOL("current", "get value according to current domain state"),
    OPT_BOOL("guest", "retrieve vcpu count from the guest instead of the hypervisor"),
    OPT_BOOL("json", "print JSON (see vireo(1))"),
    OPT_END,
};

/*
 * One count; -1 when @check_state says it does not apply (a live value of
 * an inactive domain, a config value of a transient one), -2 on error.
 */
static int vcpu_count(CliCtl *ctl, const RemoteNonnullDomain *dom, guint flags,
                      gboolean check_state)
{
    RemoteDomainGetVcpusFlagsArgs a = { .dom = *dom, .flags = flags };
    RemoteDomainGetVcpusFlagsRet r = { 0 };

    if (check_state) {
        RemoteDomainIsActiveArgs aa = { .dom = *dom };
        RemoteDomainIsActiveRet ar = { 0 };
        RemoteDomainIsPersistentArgs pa = { .dom = *dom };
        RemoteDomainIsPersistentRet pr = { 0 };

        if (flags & AFFECT_LIVE &&
            query_int(ctl, REMOTE_PROC_DOMAIN_IS_ACTIVE, &aa, &ar.active, &ar) < 1)
            return -1;
        if (flags & AFFECT_CONFIG &&
            query_int(ctl, REMOTE_PROC_DOMAIN_IS_PERSISTENT, &pa, &pr.persistent, &pr) < 1)
            return -1;
    }
    if (!cli_call(ctl, REMOTE_PROC_DOMAIN_GET_VCPUS_FLAGS, &a, &r))
        return -2;
    return r.num;
}

static gboolean cmd_vcpucount(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    gboolean maximum = cli_cmd_has(cmd, "maximum"), active = cli_cmd_has(cmd, "active");
    gboolean current = cli_cmd_has(cmd, "current"), config = cli_cmd_has(cmd, "config");
    gboolean live = cli_cmd_has(cmd, "live"), guest = cli_cmd_has(cmd, "guest");
    gboolean all = !maximum && !active && !current && !config && !live && !guest;
    guint flags = 0;

    /* virsh's compatibility rule: a lone --current means nothing. */
    if (!maximum && !active && current)
        current = FALSE;
    if (current && live) {
        cli_error("Options --current and --live are mutually exclusive");
        return FALSE;
    }
    if (current && config) {
        cli_error("Options --current and --config are mutually exclusive");
        return FALSE;
    }
    if (!cli_cmd_exclusive(cmd, "active", "maximum") || !cli_cmd_exclusive(cmd, "guest", "config"))
        return FALSE;
    if (live)
        flags |= AFFECT_LIVE;
    if (config)
        flags |= AFFECT_CONFIG;
    if (maximum)
        flags |= VCPU_MAXIMUM;
    if (guest)
        flags |= VCPU_GUEST;
    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL))
        return FALSE;
    ctl->json = cli_cmd_has(cmd, "json");
    if (all) {
        int conf_max = vcpu_count(ctl, &dom, AFFECT_CONFIG | VCPU_MAXIMUM, TRUE);
        int conf_cur = vcpu_count(ctl, &dom, AFFECT_CONFIG, TRUE);
        int live_max = vcpu_count(ctl, &dom, AFFECT_LIVE | VCPU_MAXIMUM, TRUE);
        int live_cur = vcpu_count(ctl, &dom, AFFECT_LIVE, TRUE);
        const struct { int n; const char *which, *state; } rows[] = {
            { conf_max, "maximum", "config" }, { live_max, "maximum", "live" },
            { conf_cur, "current", "config" }, { live_cur, "current", "live" },
        };
        JsonValue *obj = ctl->json ? json_new_object() : NULL;

        if (conf_max == -2 || conf_cur == -2 || live_max == -2 || live_cur == -2) {
            if (obj)
                json_free(obj);
            return FALSE;
        }
        for (guint i = 0; i < G_N_ELEMENTS(rows); i++) {
            JsonValue *sub;

            if (rows[i].n <= 0)
                continue;
            if (!obj) {
                cli_print("%-12s %-12s %3d\n", rows[i].which, rows[i].state, rows[i].n);
                continue;
            }
            sub = json_object_get_object(obj, rows[i].which);
            if (!sub) {
                sub = json_new_object();
                json_object_set(obj, rows[i].which, sub);
            }
            json_object_set_int(sub, rows[i].state, rows[i].n);
        }
        if (obj)
            cli_print_json(obj);
    } else {
        int n = vcpu_count(ctl, &dom, flags, FALSE);

        if (n < 0)
            return FALSE;
        if (ctl->json) {
            JsonValue *obj = json_new_object();

            json_object_set_int(obj, "count", n);
            cli_print_json(obj);
        } else {
            cli_print("%d\n", n);
        }
    }
    return TRUE;
}

/* ---------------------------------------------------------------- console */

static const CliOptDef opts_console[] = {
    OPT_DOMAIN("domain name, id or uuid", CLI_LIST_ACTIVE),
    { "devname", CLI_OPT_STRING, CLI_OPT_POSITIONAL, "character device name", 0 },
    OPT_BOOL("force", "force console connection (disconnect already connected sessions)"),
    OPT_BOOL("safe", "only connect if safe console handling is supported"),
    OPT_BOOL("resume", "resume a paused guest after connecting to console"),
    OPT_END,
};

static gboolean cmd_console(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    guint flags = 0;

    if (cli_cmd_has(cmd, "force"))
        flags |= 1;
    if (cli_cmd_has(cmd, "safe"))
        flags |= 2;
    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL))
        return FALSE;
    return cli_console_run(ctl, &dom, cli_cmd_get(cmd, "devname"), cli_cmd_has(cmd, "resume"),
                           flags);
}

static const CliOptDef opts_edit[] = {
    OPT_DOMAIN_FULL,
    OPT_BOOL("skip-validate", "skip validation of the XML against the schema"),
    OPT_END,
};

const CliCmdDef cli_domain_cmds[] = {
    { "autostart", cmd_autostart, opts_autostart, "autostart a domain",
      "Configure a domain to be automatically started at boot.", 0 },
    { "console", cmd_console, opts_console, "connect to the guest console",
      "Connect the virtual serial console for the guest", 0 },
    { "define", cmd_define, opts_define, "define (but don't start) a domain from an XML file",
      "Define a domain.", 0 },
    { "destroy", cmd_destroy, opts_destroy, "destroy (stop) a domain",
      "Forcefully stop a given domain, but leave its resources intact.", 0 },
    { "dumpxml", cmd_dumpxml, opts_dumpxml, "domain information in XML",
      "Output the domain information as an XML dump to stdout.", 0 },
    { "edit", cli_edit_cmd, opts_edit, "edit XML configuration for a domain",
      "Edit the XML configuration for a domain.", 0 },
    { "reboot", cmd_reboot, opts_shutdown, "reboot a domain", "Run a reboot command in the target domain.", 0 },
    { "reset", cmd_reset, opts_domain_active, "reset a domain",
      "Reset the target domain as if by power button", 0 },
    { "resume", cmd_resume, opts_domain_paused, "resume a domain",
      "Resume a previously suspended domain.", 0 },
    { "setmem", cmd_setmem, opts_setmem, "change memory allocation",
      "Change the current memory allocation in the guest domain.", 0 },
    { "setvcpus", cmd_setvcpus, opts_setvcpus, "change number of virtual CPUs",
      "Change the number of virtual CPUs in the guest domain.", 0 },
    { "shutdown", cmd_shutdown, opts_shutdown, "gracefully shutdown a domain",
      "Run shutdown in the target domain.", 0 },
    { "start", cmd_start, opts_start, "start a (previously defined) inactive domain",
      "Start a domain, either from the last managedsave\n    state, or via a fresh boot if no "
      "managedsave state\n    is present.", 0 },
    { "suspend", cmd_suspend, opts_domain_active, "suspend a domain",
      "Suspend a running domain.", 0 },
    { "undefine", cmd_undefine, opts_undefine, "undefine a domain",
      "Undefine an inactive domain, or convert persistent to transient.", 0 },
    { "vcpucount", cmd_vcpucount, opts_vcpucount, "domain vcpu counts",
      "Returns the number of virtual CPUs used by the domain.", 0 },
    { NULL, NULL, NULL, NULL, NULL, 0 },
};
