/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * `vireo edit`: the persistent definition (dumpxml --inactive
 * --security-info) in a temporary file, $VISUAL or $EDITOR (default vi),
 * then a define with validation. The old definition stays until a define
 * succeeds: on an error the user is asked, as virsh asks, "Failed. Try
 * again? [y,n,i,f,?]" (y: edit again, n: keep the old definition, i:
 * define without validation, f: define the same text again). Without a
 * terminal to ask on, the error is printed and the old definition kept.
 *
 * Before defining, the XML is checked to be well-formed here, so that
 * even a daemon that parses leniently never gets a broken definition.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <libxml/parser.h>

#include "vireo/cli-commands.h"
#include "vireo/cli-out.h"
#include "vireo/rpc-error.h"
#include "vireo/util.h"

/* virDomainXMLFlags SECURE | INACTIVE */
#define EDIT_XML_FLAGS 3
/* VIR_DOMAIN_DEFINE_VALIDATE */
#define DEFINE_VALIDATE 1

static char *get_xml(CliCtl *ctl, const RemoteNonnullDomain *dom)
{
    RemoteDomainGetXmlDescArgs a = { .dom = *dom, .flags = EDIT_XML_FLAGS };
    RemoteDomainGetXmlDescRet r = { 0 };

    if (!cli_call(ctl, REMOTE_PROC_DOMAIN_GET_XML_DESC, &a, &r))
        return NULL;
    return r.xml;
}

static char *write_temp(const char *xml)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *path = NULL;
    int fd = g_file_open_tmp("vireoXXXXXX.xml", &path, &error);

    if (fd < 0) {
        cli_error("%s", error->message);
        return NULL;
    }
    close(fd);
    if (!g_file_set_contents(path, xml, -1, &error)) {
        cli_error("%s", error->message);
        unlink(path);
        return NULL;
    }
    return g_steal_pointer(&path);
}

static gboolean run_editor(const char *path)
{
    const char *editor = g_getenv("VISUAL");
    g_autofree char *quoted = NULL;
    g_autofree char *cmdline = NULL;
    int status;

    if (!editor || !*editor)
        editor = g_getenv("EDITOR");
    if (!editor || !*editor)
        editor = "vi";
    /* $EDITOR may hold arguments, so it goes through the shell, as in virsh. */
    quoted = path[strspn(path, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                         "/._-+")] ? g_shell_quote(path) : g_strdup(path);
    cmdline = g_strdup_printf("%s %s", editor, quoted);
    fflush(stdout);
    status = system(cmdline);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        /* libvirt's wording for a child that failed */
        if (status != -1 && WIFEXITED(status))
            cli_error("internal error: Child process (%s) unexpected exit status %d", cmdline,
                      WEXITSTATUS(status));
        else
            cli_error("internal error: Child process (%s) failed", cmdline);
        return FALSE;
    }
    return TRUE;
}

/* Well-formedness, with libxml2's first error; FALSE sets the pending error. */
static gboolean check_xml(CliCtl *ctl, const char *xml)
{
    xmlParserCtxtPtr pc = xmlNewParserCtxt();
    xmlDocPtr doc;
    gboolean ok;

    doc = xmlCtxtReadMemory(pc, xml, (int)strlen(xml), "domain.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    ok = doc != NULL;
    if (!ok) {
        const xmlError *e = xmlCtxtGetLastError(pc);
        g_autofree char *msg = g_strstrip(g_strdup(e && e->message ? e->message : "parse error"));

        cli_ctl_set_error(ctl, g_error_new(RPC_REMOTE_ERROR, RPC_ERR_XML_ERROR,
                                           "XML error: domain XML is not well-formed: line %d: %s",
                                           e ? e->line : 0, msg));
    }
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(pc);
    return ok;
}

static gboolean define(CliCtl *ctl, const char *xml, guint flags, RemoteNonnullDomain *out)
{
    if (!check_xml(ctl, xml))
        return FALSE;
    if (flags) {
        RemoteDomainDefineXmlFlagsArgs a = { .xml = (char *)xml, .flags = flags };
        RemoteDomainDefineXmlFlagsRet r = { 0 };

        if (cli_call(ctl, REMOTE_PROC_DOMAIN_DEFINE_XML_FLAGS, &a, &r)) {
            *out = r.dom;
            return TRUE;
        }
        /* As virsh: a server without the flags API gets a plain define. */
        if (cli_ctl_error_code(ctl) != RPC_ERR_NO_SUPPORT || flags != DEFINE_VALIDATE)
            return FALSE;
        cli_ctl_reset_error(ctl);
    }
    {
        RemoteDomainDefineXmlArgs a = { .xml = (char *)xml };
        RemoteDomainDefineXmlRet r = { 0 };

        if (!cli_call(ctl, REMOTE_PROC_DOMAIN_DEFINE_XML, &a, &r))
            return FALSE;
        *out = r.dom;
        return TRUE;
    }
}

/*
 * virsh's question after a failed define; -1 when there is no terminal
 * to ask on. Prints the pending error first.
 */
static int ask_reedit(CliCtl *ctl, const char *msg, gboolean relax_avail)
{
    struct termios saved, raw;
    int c;

    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved) < 0)
        return -1;
    cli_ctl_report_error(ctl);
    raw = saved;
    cfmakeraw(&raw);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
    for (;;) {
        printf("\r%s %s %s: ", msg, "Try again?", relax_avail ? "[y,n,i,f,?]" : "[y,n,f,?]");
        fflush(stdout);
        c = g_ascii_tolower(getchar());
        if (c == '?') {
            /* Raw mode: no output processing, so the lines end in \r\n. */
            printf("\r\n%s", "y - yes, start editor again\r\n"
                   "n - no, throw away my changes\r\n"
                   "i - turn off validation and try to redefine again\r\n"
                   "f - force, try to redefine again\r\n"
                   "? - print this help\r\n");
            continue;
        }
        if (c == 'y' || c == 'n' || c == 'f' || (relax_avail && c == 'i'))
            break;
        if (c == EOF) {
            c = 'n';
            break;
        }
    }
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    printf("\r\n");
    return c;
}

gboolean cli_edit_cmd(CliCtl *ctl, const CliCmd *cmd)
{
    g_auto(RemoteNonnullDomain) dom = { 0 };
    g_auto(RemoteNonnullDomain) edited = { 0 };
    g_autofree char *orig = NULL, *path = NULL, *text = NULL;
    gboolean relax_avail = !cli_cmd_has(cmd, "skip-validate");
    guint flags = relax_avail ? DEFINE_VALIDATE : 0;
    gboolean ok = FALSE;

    if (!cli_domain_from_cmd(ctl, cmd, CLI_BY_ANY, &dom, NULL))
        return FALSE;
    orig = get_xml(ctl, &dom);
    if (!orig || !(path = write_temp(orig)))
        return FALSE;

reedit:
    if (!run_editor(path))
        goto out;
    g_clear_pointer(&text, g_free);
    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        cli_error("Failed to read file '%s': %s", path, g_strerror(errno));
        goto out;
    }
    if (!strcmp(orig, text)) {
        cli_print_extra(ctl, "Domain '%s' XML configuration not changed.\n", dom.name);
        ok = TRUE;
        goto out;
    }

redefine:
    {
        /* Someone else may have changed the definition meanwhile. */
        g_autofree char *now = get_xml(ctl, &dom);
        const char *msg = NULL;
        int c;

        if (!now)
            goto out;
        if (strcmp(orig, now)) {
            msg = "The XML configuration was changed by another user.";
            g_free(orig);
            orig = g_steal_pointer(&now);
        }
        remote_nonnull_domain_clear(&edited);
        if (!msg && !define(ctl, text, flags, &edited))
            msg = "Failed.";
        if (msg) {
            c = ask_reedit(ctl, msg, relax_avail);
            switch (c) {
            case 'y':
                goto reedit;
            case 'f':
                goto redefine;
            case 'i':
                relax_avail = FALSE;
                flags &= ~DEFINE_VALIDATE;
                goto redefine;
            case 'n':
                goto out;
            default:
                /* No terminal: keep the old definition and say why. */
                cli_ctl_report_error(ctl);
                cli_error("%s", msg);
                cli_error("Domain '%s' XML configuration not changed; the edited copy was "
                          "discarded", dom.name);
                goto out;
            }
        }
    }
    cli_print_extra(ctl, "Domain '%s' XML configuration edited.\n", edited.name);
    ok = TRUE;

out:
    if (path)
        unlink(path);
    return ok;
}
