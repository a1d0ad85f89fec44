/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo: virsh's commands, options and output for Vireo (and libvirtd),
 * over libvirt's remote protocol. See docs/vireo.1.
 *
 *   vireo [OPTION]... [COMMAND_STRING]
 *   vireo [OPTION]... COMMAND [ARG]...
 *
 * Without a command: the interactive shell (also reading from a pipe).
 * One argument is a command string (`vireo "list --all; version"`),
 * several are one command. Exit status 0 on success, 1 on failure, as
 * virsh.
 */
#include <getopt.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vireo/cli-commands.h"
#include "vireo/cli-out.h"
#include "vireo/cli-uri.h"

static const CliCmdGroup groups[] = {
    { "Domain Management", "domain", cli_domain_cmds },
    { "Domain Saved State and Jobs", "save", cli_save_cmds },
    { "Domain Migration", "migration", cli_migrate_cmds },
    { "Domain Monitoring", "monitor", cli_monitor_cmds },
    { "Host and Hypervisor", "host", cli_host_cmds },
    { "Virsh itself", "virsh", cli_shell_cmds },
    { NULL, NULL, NULL },
};

static void usage(void)
{
    printf("\n"
           "vireo [options]... [<command_string>]\n"
           "vireo [options]... <command> [args...]\n"
           "\n"
           "  options:\n"
           "    -c | --connect=URI      hypervisor connection URI (default %s,\n"
           "                            or $%s)\n"
           "    -e | --escape <char>    set escape sequence for console\n"
           "    -h | --help             this help\n"
           "    -k | --keepalive-interval=<sec>\n"
           "                            keepalive interval in seconds, 0 for disable\n"
           "    -K | --keepalive-count=<times>\n"
           "                            number of possible missed keepalive messages\n"
           "    -q | --quiet            quiet mode\n"
           "    -r | --readonly         connect readonly\n"
           "    -v | --version          program version\n"
           "\n"
           "  commands (non interactive mode):\n\n", CLI_URI_DEFAULT, CLI_URI_ENV);
    for (const CliCmdGroup *g = groups; g->name; g++) {
        printf(" %s (help keyword '%s')\n", g->name, g->keyword);
        for (const CliCmdDef *d = g->cmds; d->name; d++)
            if (!(d->flags & CLI_CMD_HIDDEN))
                printf("    %-30s %s\n", d->name, d->help);
        printf("\n");
    }
    printf("  (specify help <group> for details about the commands in the group)\n\n"
           "  (specify help <command> for details about the command)\n\n");
}

static gboolean parse_uint(const char *s, guint *out)
{
    char *end = NULL;
    guint64 v = g_ascii_strtoull(s, &end, 10);

    if (!*s || *end || v > G_MAXINT)
        return FALSE;
    *out = (guint)v;
    return TRUE;
}

/* `vireo complete [--] WORDS...`: for the bash completion script. */
static int complete(CliCtl *ctl, int argc, char **argv)
{
    g_autoptr(GPtrArray) words = g_ptr_array_new();
    g_auto(GStrv) found = NULL;
    int i = 1;

    if (i < argc && !strcmp(argv[i], "--"))
        i++;
    for (; i < argc; i++)
        g_ptr_array_add(words, argv[i]);
    if (!words->len)
        g_ptr_array_add(words, (gpointer)"");
    g_ptr_array_add(words, NULL);
    found = cli_complete_words(ctl, (char **)words->pdata);
    for (guint j = 0; found[j]; j++)
        printf("%s\n", found[j]);
    return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "connect", required_argument, NULL, 'c' },
        { "debug", required_argument, NULL, 'd' },
        { "escape", required_argument, NULL, 'e' },
        { "help", no_argument, NULL, 'h' },
        { "keepalive-interval", required_argument, NULL, 'k' },
        { "keepalive-count", required_argument, NULL, 'K' },
        { "quiet", no_argument, NULL, 'q' },
        { "readonly", no_argument, NULL, 'r' },
        { "version", no_argument, NULL, 'v' },
        { NULL, 0, NULL, 0 },
    };
    g_autoptr(CliCtl) ctl = cli_ctl_new();
    g_autoptr(GPtrArray) cmds = NULL;
    const char *uri = NULL;
    gboolean quit = FALSE;
    int c;

    setlocale(LC_ALL, "");
    cli_cmd_set_groups(groups);
    while ((c = getopt_long(argc, argv, "+:c:d:e:hk:K:qrvV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            uri = optarg;
            break;
        case 'd':
            /* Accepted for virsh compatibility; use G_MESSAGES_DEBUG=vireo-rpc. */
            break;
        case 'e':
            if (!cli_ctl_set_escape(ctl, optarg)) {
                cli_error("Invalid string '%s' for escape sequence", optarg);
                return EXIT_FAILURE;
            }
            break;
        case 'h':
            usage();
            return EXIT_SUCCESS;
        case 'k':
            if (!parse_uint(optarg, &ctl->ka_interval)) {
                cli_error("Invalid value for option %s", "-k");
                return EXIT_FAILURE;
            }
            break;
        case 'K':
            if (!parse_uint(optarg, &ctl->ka_count)) {
                cli_error("Invalid value for option %s", "-K");
                return EXIT_FAILURE;
            }
            break;
        case 'q':
            ctl->quiet = TRUE;
            break;
        case 'r':
            ctl->readonly = TRUE;
            break;
        case 'v':
        case 'V':
            printf("%s\n", VIREO_VERSION);
            return EXIT_SUCCESS;
        case ':':
            cli_error("option '-%c' requires an argument", optopt);
            return EXIT_FAILURE;
        default:
            if (optopt)
                cli_error("unsupported option '-%c'. See --help.", optopt);
            else
                cli_error("unsupported option '%s'. See --help.", argv[optind - 1]);
            return EXIT_FAILURE;
        }
    }
    ctl->uri = g_strdup(uri ? uri : cli_uri_default());

    if (optind == argc) {
        ctl->interactive = TRUE;
        if (!cli_conn_open(ctl))
            return EXIT_FAILURE;
        return cli_shell_run(ctl);
    }
    if (!strcmp(argv[optind], "complete"))
        return complete(ctl, argc - optind, argv + optind);
    if (argc - optind == 1) {
        cmds = cli_cmd_split(argv[optind], TRUE);
        if (!cmds)
            return EXIT_FAILURE;
    } else {
        cmds = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
        g_ptr_array_add(cmds, g_strdupv(argv + optind));
    }
    return cli_shell_run_line(ctl, cmds, &quit) ? EXIT_SUCCESS : EXIT_FAILURE;
}
