/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-install: virt-install's options for what Vireo runs. Builds the
 * domain XML (install-xml.c), creates the new disk images, defines and
 * starts the domain (or creates it, --transient), and attaches to its
 * console unless told not to. See docs/vireo-install.1.
 *
 * --print-xml prints the XML instead of defining (new images are still
 * made, as virt-install does, unless --dry-run); --dry-run goes through
 * every check and makes nothing. Neither connects to the daemon.
 *
 * On a failed start the domain just defined is undefined again and the
 * images made for it are removed, so a failure leaves nothing behind.
 * Errors print as virt-install's: "ERROR    message", exit status 1.
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vireo/cli-commands.h"
#include "vireo/cli-out.h"
#include "vireo/cli-uri.h"
#include "vireo/install-config.h"

#define IMAGE_DIR "/var/lib/vireo/images"
/* Where `--disk size=N` puts images without a path; tests point it elsewhere. */
#define IMAGE_DIR_ENV "VIREO_IMAGE_DIR"

static int fail(const GError *error)
{
    fflush(stdout);
    fprintf(stderr, "ERROR    %s\n", error->message);
    return EXIT_FAILURE;
}

static int fail_ctl(CliCtl *ctl, const char *what)
{
    fflush(stdout);
    fprintf(stderr, "ERROR    %s%s%s\n", what, ctl->last_error ? ": " : "",
            ctl->last_error ? ctl->last_error->message : "");
    cli_ctl_reset_error(ctl);
    return EXIT_FAILURE;
}

static void list_osinfo(void)
{
    gsize n;
    const InstallOsInfo *t = install_osinfo_table(&n);

    for (gsize i = 0; i < n; i++)
        printf("%s\n", t[i].id);
}

static void remove_created(const InstallConfig *cfg)
{
    for (guint i = 0; i < cfg->disks->len; i++) {
        const InstallDisk *d = g_ptr_array_index(cfg->disks, i);

        if (d->create)
            unlink(d->path);
    }
}

static gboolean create_disks(const InstallConfig *cfg, GError **error)
{
    for (guint i = 0; i < cfg->disks->len; i++) {
        const InstallDisk *d = g_ptr_array_index(cfg->disks, i);

        if (!d->create)
            continue;
        if (!cfg->print_xml)
            printf("Allocating '%s' (%.1f GiB, %s)\n", d->path,
                   d->size_bytes / (1024.0 * 1024 * 1024), d->format);
        if (!install_disk_create(d, error)) {
            remove_created(cfg);
            return FALSE;
        }
    }
    return TRUE;
}

/* Defines and starts (or creates, --transient); the domain on success. */
static gboolean define_and_start(CliCtl *ctl, const InstallConfig *cfg, const char *xml,
                                 RemoteNonnullDomain *dom)
{
    if (cfg->transient) {
        RemoteDomainCreateXmlArgs a = { .xml_desc = (char *)xml, .flags = 0 };
        RemoteDomainCreateXmlRet r = { 0 };

        if (!cli_call(ctl, REMOTE_PROC_DOMAIN_CREATE_XML, &a, &r)) {
            fail_ctl(ctl, "Failed to create the domain");
            return FALSE;
        }
        *dom = r.dom;
        return TRUE;
    }
    {
        RemoteDomainDefineXmlArgs a = { .xml = (char *)xml };
        RemoteDomainDefineXmlRet r = { 0 };

        if (!cli_call(ctl, REMOTE_PROC_DOMAIN_DEFINE_XML, &a, &r)) {
            fail_ctl(ctl, "Failed to define the domain");
            return FALSE;
        }
        *dom = r.dom;
    }
    if (cfg->autostart) {
        RemoteDomainSetAutostartArgs a = { .dom = *dom, .autostart = 1 };

        if (!cli_call(ctl, REMOTE_PROC_DOMAIN_SET_AUTOSTART, &a, NULL))
            goto undefine;
    }
    {
        RemoteDomainCreateArgs a = { .dom = *dom };
        RemoteDomainLookupByUuidArgs la;
        RemoteDomainLookupByUuidRet lr = { 0 };

        if (!cli_call(ctl, REMOTE_PROC_DOMAIN_CREATE, &a, NULL))
            goto undefine;
        memcpy(la.uuid, dom->uuid, sizeof(la.uuid));
        if (cli_call(ctl, REMOTE_PROC_DOMAIN_LOOKUP_BY_UUID, &la, &lr)) {
            remote_nonnull_domain_clear(dom);
            *dom = lr.dom;
        }
        cli_ctl_reset_error(ctl);
    }
    return TRUE;

undefine:
    {
        /* Leave nothing behind: the definition goes, the error stays. */
        GError *saved = g_steal_pointer(&ctl->last_error);
        RemoteDomainUndefineArgs ua = { .dom = *dom };

        cli_call(ctl, REMOTE_PROC_DOMAIN_UNDEFINE, &ua, NULL);
        cli_ctl_set_error(ctl, saved);
        fail_ctl(ctl, "Failed to start the domain");
    }
    return FALSE;
}

int main(int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(InstallConfig) cfg = NULL;
    g_autoptr(CliCtl) ctl = NULL;
    g_autofree char *xml = NULL;
    g_auto(RemoteNonnullDomain) dom = { 0 };
    const char *image_dir = g_getenv(IMAGE_DIR_ENV);
    gboolean exit_now = FALSE;

    setlocale(LC_ALL, "");
    cfg = install_opts_parse(argc, argv, &exit_now, &error);
    if (!cfg)
        return fail(error);
    if (exit_now)
        return EXIT_SUCCESS;
    if (cfg->list_osinfo) {
        list_osinfo();
        return EXIT_SUCCESS;
    }
    if (!install_config_finish(cfg, image_dir && *image_dir ? image_dir : IMAGE_DIR, &error))
        return fail(error);
    xml = install_xml_build(cfg, &error);
    if (!xml)
        return fail(error);

    if (cfg->dry_run && !cfg->print_xml) {
        printf("Dry run completed successfully\n");
        return EXIT_SUCCESS;
    }
    if (cfg->print_xml) {
        if (!cfg->dry_run && !create_disks(cfg, &error))
            return fail(error);
        fputs(xml, stdout);
        return EXIT_SUCCESS;
    }

    ctl = cli_ctl_new();
    ctl->uri = g_strdup(cfg->connect ? cfg->connect : cli_uri_default());
    if (!cli_conn_open(ctl))
        return EXIT_FAILURE;
    printf("\nStarting install...\n");
    if (!create_disks(cfg, &error))
        return fail(error);
    printf("Creating domain...\n");
    fflush(stdout);
    if (!define_and_start(ctl, cfg, xml, &dom)) {
        remove_created(cfg);
        return EXIT_FAILURE;
    }
    if (cfg->noautoconsole || !isatty(STDIN_FILENO)) {
        printf("Domain creation completed.\n");
        if (!cfg->noautoconsole)
            printf("No terminal to attach the console to; connect later with:\n"
                   "  vireo --connect %s console %s\n", ctl->uri, dom.name);
        return EXIT_SUCCESS;
    }
    printf("Running text console command: vireo --connect %s console %s\n", ctl->uri, dom.name);
    if (!cli_console_run(ctl, &dom, NULL, FALSE, 0)) {
        cli_ctl_report_error(ctl);
        return EXIT_FAILURE;
    }
    printf("\n");
    return EXIT_SUCCESS;
}
