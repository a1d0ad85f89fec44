/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The `vireo` shell: running parsed commands as virsh does (connect on
 * first need, errors after the command's own message, a blank line after
 * each command unless --quiet), the interactive loop with GNU readline
 * (line editing, history in $XDG_CACHE_HOME/vireo/history, completion of
 * commands, options and domain names), and the built-in commands help,
 * quit, exit, connect and complete.
 *
 * Input that is not a terminal goes through readline too, as in virsh:
 * the prompt and the command are echoed, so a session piped into vireo
 * prints what virsh prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_READLINE
#include <readline/readline.h>
#include <readline/history.h>
#endif

#include "vireo/cli-commands.h"
#include "vireo/cli-out.h"

#define HISTORY_MAX 500

/* ------------------------------------------------------------- built-ins */

static gboolean quit_requested;

static const CliOptDef opts_help[] = {
    { "command", CLI_OPT_STRING, CLI_OPT_POSITIONAL, "Prints global help, command specific help, "
      "or help for a group of related commands", 0 },
    { NULL, 0, 0, NULL, 0 },
};

static gboolean cmd_help(CliCtl *ctl, const CliCmd *cmd)
{
    const char *name = cli_cmd_get(cmd, "command");

    if (!name) {
        cli_cmd_print_help_all();
        return TRUE;
    }
    return cli_cmd_print_help(name);
}

static gboolean cmd_quit(CliCtl *ctl, const CliCmd *cmd)
{
    quit_requested = TRUE;
    return TRUE;
}

static const CliOptDef opts_connect[] = {
    { "name", CLI_OPT_STRING, CLI_OPT_POSITIONAL, "hypervisor connection URI", 0 },
    { "readonly", CLI_OPT_BOOL, 0, "read-only connection", 0 },
    { NULL, 0, 0, NULL, 0 },
};

static gboolean cmd_connect(CliCtl *ctl, const CliCmd *cmd)
{
    const char *name = cli_cmd_get(cmd, "name");

    cli_conn_close(ctl);
    if (name) {
        g_free(ctl->uri);
        ctl->uri = g_strdup(name);
    }
    ctl->readonly = cli_cmd_has(cmd, "readonly");
    return cli_conn_open(ctl);
}

static const CliOptDef opts_complete[] = {
    { "words", CLI_OPT_STRING, CLI_OPT_POSITIONAL, "the command line to complete", 0 },
    { NULL, 0, 0, NULL, 0 },
};

/*
 * `vireo complete -- WORDS...`: one-shot only, called by the bash
 * completion with the words of the command line, the last one being the
 * word to complete. The words are collected by main() (see
 * cli_shell_complete_argv()), so this handler never runs.
 */
static gboolean cmd_complete(CliCtl *ctl, const CliCmd *cmd)
{
    return TRUE;
}

const CliCmdDef cli_shell_cmds[] = {
    { "complete", cmd_complete, opts_complete, "completion for the bash completion script",
      "Prints the completions of the last word of a command line.",
      CLI_CMD_NOCONNECT | CLI_CMD_HIDDEN },
    { "connect", cmd_connect, opts_connect, "(re)connect to hypervisor",
      "Connect to local hypervisor. This is built-in command after shell start up.",
      CLI_CMD_NOCONNECT },
    { "exit", cmd_quit, NULL, "quit this interactive terminal", "",
      CLI_CMD_NOCONNECT | CLI_CMD_NO_TRAILER },
    { "help", cmd_help, opts_help, "print help", "Prints global help, command specific help, "
      "or help for a\n    group of related commands", CLI_CMD_NOCONNECT },
    { "quit", cmd_quit, NULL, "quit this interactive terminal", "",
      CLI_CMD_NOCONNECT | CLI_CMD_NO_TRAILER },
    { NULL, NULL, NULL, NULL, NULL, 0 },
};

/* ---------------------------------------------------------------- running */

gboolean cli_shell_run_line(CliCtl *ctl, GPtrArray *words, gboolean *quit)
{
    g_autoptr(GPtrArray) cmds = g_ptr_array_new_with_free_func((GDestroyNotify)cli_cmd_free);
    gboolean ret = TRUE;

    /* Like virsh, nothing runs when any command of the line is malformed. */
    for (guint i = 0; i < words->len; i++) {
        CliCmd *cmd = cli_cmd_parse(g_ptr_array_index(words, i));

        if (!cmd)
            return FALSE;
        g_ptr_array_add(cmds, cmd);
    }
    for (guint i = 0; i < cmds->len; i++) {
        const CliCmd *cmd = g_ptr_array_index(cmds, i);

        cli_ctl_reset_error(ctl);
        ctl->json = FALSE;
        if (!(cmd->def->flags & CLI_CMD_NOCONNECT) && !ctl->client && !cli_conn_open(ctl))
            return FALSE;
        ret = cmd->def->handler(ctl, cmd);
        if (!ret)
            cli_ctl_report_error(ctl);
        cli_ctl_reset_error(ctl);
        if (quit_requested) {
            *quit = TRUE;
            return ret;
        }
        if (!ctl->json && !(cmd->def->flags & CLI_CMD_NO_TRAILER))
            cli_print_extra(ctl, "\n");
        fflush(stdout);
    }
    return ret;
}

/* -------------------------------------------------------------- readline */

#ifdef HAVE_READLINE
static CliCtl *rl_ctl;
static GStrv rl_matches;
static guint rl_next;

static char *match_generator(const char *text, int state)
{
    if (!rl_matches || !rl_matches[rl_next])
        return NULL;
    return strdup(rl_matches[rl_next++]);
}

static char **attempt_completion(const char *text, int start, int end)
{
    g_autofree char *before = g_strndup(rl_line_buffer, start);
    const char *seg = strrchr(before, ';');
    g_autoptr(GPtrArray) cmds = cli_cmd_split(seg ? seg + 1 : before, FALSE);
    g_autoptr(GPtrArray) words = g_ptr_array_new();

    rl_attempted_completion_over = 1;
    g_clear_pointer(&rl_matches, g_strfreev);
    rl_next = 0;
    if (!cmds)
        return NULL;
    if (cmds->len) {
        char **w = g_ptr_array_index(cmds, cmds->len - 1);

        for (guint i = 0; w[i]; i++)
            g_ptr_array_add(words, w[i]);
    }
    g_ptr_array_add(words, (gpointer)text);
    g_ptr_array_add(words, NULL);
    rl_matches = cli_complete_words(rl_ctl, (char **)words->pdata);
    if (!rl_matches[0] && words->len > 2) {
        /* A file argument: readline's own file name completion. */
        const CliCmdDef *def = cli_cmd_find(((char **)words->pdata)[0]);

        for (const CliOptDef *o = def ? def->opts : NULL; o && o->name; o++)
            if (o->flags & CLI_OPT_FILE)
                rl_attempted_completion_over = 0;
        return NULL;
    }
    return rl_completion_matches(text, match_generator);
}

static char *history_path(void)
{
    return g_build_filename(g_get_user_cache_dir(), "vireo", "history", NULL);
}
#endif

static char *read_line(const char *prompt)
{
#ifdef HAVE_READLINE
    return readline(prompt);
#else
    g_autoptr(GString) line = g_string_new(NULL);
    int c;

    fputs(prompt, stdout);
    fflush(stdout);
    while ((c = getchar()) != EOF && c != '\n')
        g_string_append_c(line, (char)c);
    if (c == EOF && !line->len)
        return NULL;
    if (!isatty(STDIN_FILENO))
        printf("%s\n", line->str);
    return strdup(line->str);
#endif
}

int cli_shell_run(CliCtl *ctl)
{
    gboolean quit = FALSE;
#ifdef HAVE_READLINE
    g_autofree char *hist = history_path();

    rl_ctl = ctl;
    rl_readline_name = "vireo";
    rl_attempted_completion_function = attempt_completion;
    rl_basic_word_break_characters = (char *)" \t\n\"\\'`@$><=;|&{(";
    using_history();
    stifle_history(HISTORY_MAX);
    read_history(hist);
#endif

    if (!ctl->quiet)
        printf("Welcome to vireo, the virtualization interactive terminal.\n\n"
               "Type:  'help' for help with commands\n"
               "       'quit' to quit\n\n");
    while (!quit) {
        char *line = read_line(ctl->readonly ? "vireo > " : "vireo # ");
        g_autoptr(GPtrArray) cmds = NULL;

        if (!line)
            break;
        if (*line) {
#ifdef HAVE_READLINE
            add_history(line);
#endif
            cmds = cli_cmd_split(line, TRUE);
            if (cmds)
                cli_shell_run_line(ctl, cmds, &quit);
        }
        free(line);
    }
    /* A line break after the last prompt, as virsh prints. */
    printf("\n");
    fflush(stdout);
#ifdef HAVE_READLINE
    {
        g_autofree char *dir = g_path_get_dirname(hist);

        if (g_mkdir_with_parents(dir, 0755) == 0)
            write_history(hist);
    }
    g_clear_pointer(&rl_matches, g_strfreev);
    clear_history();
#endif
    return 0;
}
