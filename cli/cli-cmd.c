/* SPDX-License-Identifier: GPL-2.0-or-later */
/* virsh's command-line syntax: words, options, help pages. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vireo/cli-cmd.h"
#include "vireo/cli-out.h"

static const CliCmdGroup *cmd_groups;

void cli_cmd_set_groups(const CliCmdGroup *groups)
{
    cmd_groups = groups;
}

const CliCmdGroup *cli_cmd_get_groups(void)
{
    return cmd_groups;
}

const CliCmdDef *cli_cmd_find(const char *name)
{
    for (const CliCmdGroup *g = cmd_groups; g && g->name; g++)
        for (const CliCmdDef *d = g->cmds; d->name; d++)
            if (!strcmp(d->name, name))
                return d;
    return NULL;
}

const CliOptDef *cli_cmd_find_opt(const CliCmdDef *def, const char *name)
{
    for (const CliOptDef *o = def->opts; o && o->name; o++)
        if (!strcmp(o->name, name))
            return o;
    return NULL;
}

void cli_cmd_free(CliCmd *cmd)
{
    if (!cmd)
        return;
    for (guint i = 0; i < cmd->n_opts; i++)
        g_free(cmd->values[i]);
    g_free(cmd->values);
    g_free(cmd);
}

/* ------------------------------------------------------------- splitting */

typedef enum { TOK_END, TOK_CMD_END, TOK_WORD, TOK_ERROR } Tok;

static Tok next_word(const char **pos, char **word, gboolean report)
{
    const char *p = *pos;
    gboolean sq = FALSE, dq = FALSE;
    GString *w;

    while (*p == ' ' || *p == '\t' || (*p == '\\' && p[1] == '\n'))
        p += 1 + (*p == '\\');
    if (!*p) {
        *pos = p;
        return TOK_END;
    }
    if (*p == ';' || *p == '\n') {
        *pos = p + 1;
        return TOK_CMD_END;
    }
    if (*p == '#') {
        while (*p && *p != '\n')
            p++;
        *pos = p + !!*p;
        return TOK_CMD_END;
    }
    w = g_string_new(NULL);
    while (*p) {
        if (!sq && !dq && (*p == ' ' || *p == '\t' || *p == ';' || *p == '\n'))
            break;
        if (!dq && *p == '\'') {
            sq = !sq;
            p++;
            continue;
        }
        if (!sq && *p == '\\') {
            p++;
            if (!*p) {
                if (report)
                    cli_error("dangling \\");
                g_string_free(w, TRUE);
                return TOK_ERROR;
            }
            if (*p == '\n') {
                p++;
                continue;
            }
        } else if (!sq && *p == '"') {
            dq = !dq;
            p++;
            continue;
        }
        g_string_append_c(w, *p++);
    }
    if (dq || sq) {
        if (report)
            cli_error("missing %c", dq ? '"' : '\'');
        g_string_free(w, TRUE);
        return TOK_ERROR;
    }
    *pos = p;
    *word = g_string_free(w, FALSE);
    return TOK_WORD;
}

static void push_cmd(GPtrArray *cmds, GPtrArray *words)
{
    if (words->len == 0) {
        g_ptr_array_unref(words);
        return;
    }
    g_ptr_array_add(words, NULL);
    g_ptr_array_add(cmds, g_ptr_array_free(words, FALSE));
}

GPtrArray *cli_cmd_split(const char *line, gboolean report)
{
    g_autoptr(GPtrArray) cmds = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    GPtrArray *words = g_ptr_array_new_with_free_func(g_free);
    const char *pos = line;

    for (;;) {
        char *word = NULL;
        Tok t = next_word(&pos, &word, report);

        if (t == TOK_ERROR) {
            g_ptr_array_unref(words);
            return NULL;
        }
        if (t == TOK_WORD) {
            g_ptr_array_add(words, word);
            continue;
        }
        g_ptr_array_set_free_func(words, NULL);
        push_cmd(cmds, words);
        if (t == TOK_END)
            break;
        words = g_ptr_array_new_with_free_func(g_free);
    }
    return g_steal_pointer(&cmds);
}

/* --------------------------------------------------------------- parsing */

static int opt_index(const CliCmdDef *def, const CliOptDef *o)
{
    return (int)(o - def->opts);
}

CliCmd *cli_cmd_parse(char **words)
{
    const CliCmdDef *def;
    g_autoptr(CliCmd) cmd = NULL;
    gboolean data_only = FALSE, ok = TRUE;

    def = cli_cmd_find(words[0]);
    if (!def) {
        cli_error("unknown command: '%s'", words[0]);
        return NULL;
    }
    cmd = g_new0(CliCmd, 1);
    cmd->def = def;
    for (const CliOptDef *o = def->opts; o && o->name; o++)
        cmd->n_opts++;
    cmd->values = g_new0(char *, cmd->n_opts + 1);

    for (guint i = 1; words[i]; i++) {
        const char *w = words[i];
        const CliOptDef *o = NULL;
        g_autofree char *name = NULL;
        const char *value = NULL;

        if (!data_only && w[0] == '-' && w[1] == '-' && w[2]) {
            const char *eq = strchr(w + 2, '=');

            name = eq ? g_strndup(w + 2, eq - w - 2) : g_strdup(w + 2);
            o = cli_cmd_find_opt(def, name);
            if (!o) {
                cli_error("command '%s' doesn't support option --%s", def->name, name);
                return NULL;
            }
            if (o->type == CLI_OPT_BOOL) {
                if (eq) {
                    cli_error("invalid '=' after option --%s", o->name);
                    return NULL;
                }
                value = "";
            } else if (eq) {
                value = eq + 1;
            } else if (words[i + 1]) {
                value = words[++i];
            } else {
                cli_error("expected syntax: --%s <%s>", o->name,
                          o->type == CLI_OPT_INT ? "number" : "string");
                return NULL;
            }
        } else if (!data_only && !strcmp(w, "--")) {
            data_only = TRUE;
            continue;
        } else {
            for (const CliOptDef *p = def->opts; p && p->name; p++) {
                if ((p->flags & CLI_OPT_POSITIONAL) && !cmd->values[opt_index(def, p)]) {
                    o = p;
                    break;
                }
            }
            if (!o) {
                cli_error("unexpected data '%s'", w);
                return NULL;
            }
            value = w;
        }
        if (cmd->values[opt_index(def, o)]) {
            cli_error("option --%s already seen", o->name);
            return NULL;
        }
        cmd->values[opt_index(def, o)] = g_strdup(value);
    }

    for (const CliOptDef *o = def->opts; o && o->name; o++) {
        if (!(o->flags & CLI_OPT_REQUIRED) || cmd->values[opt_index(def, o)])
            continue;
        if ((o->flags & CLI_OPT_POSITIONAL) && o->type == CLI_OPT_STRING)
            cli_error("command '%s' requires <%s> option", def->name, o->name);
        else
            cli_error("command '%s' requires --%s option", def->name, o->name);
        ok = FALSE;
    }
    return ok ? g_steal_pointer(&cmd) : NULL;
}

/* ------------------------------------------------------- reading options */

static int find_value(const CliCmd *cmd, const char *name)
{
    const CliOptDef *o = cli_cmd_find_opt(cmd->def, name);

    g_assert(o);    /* a handler asking for an option it does not define */
    return opt_index(cmd->def, o);
}

gboolean cli_cmd_has(const CliCmd *cmd, const char *name)
{
    return cmd->values[find_value(cmd, name)] != NULL;
}

const char *cli_cmd_get(const CliCmd *cmd, const char *name)
{
    return cmd->values[find_value(cmd, name)];
}

/* virStrToLong_ullp: decimal, no sign, the whole string. */
static gboolean parse_ull(const char *s, guint64 *out, const char **end)
{
    char *e = NULL;
    guint64 v;

    while (*s == ' ' || *s == '\t')
        s++;
    if (!g_ascii_isdigit(*s))
        return FALSE;
    errno = 0;
    v = g_ascii_strtoull(s, &e, 10);
    if (errno || e == s)
        return FALSE;
    *out = v;
    if (end)
        *end = e;
    else if (*e)
        return FALSE;
    return TRUE;
}

int cli_cmd_get_uint(const CliCmd *cmd, const char *name, guint *out)
{
    const char *v = cli_cmd_get(cmd, name);
    guint64 n;

    if (!v)
        return 0;
    if (!parse_ull(v, &n, NULL) || n > G_MAXUINT) {
        cli_error("Numeric value '%s' for <%s> option is malformed or out of range", v, name);
        return -1;
    }
    *out = (guint)n;
    return 1;
}

gboolean cli_scale_integer(const char *str, guint64 scale, guint64 max, guint64 *out,
                           char **detail)
{
    const char *suffix = NULL;
    guint64 v, base, mult = 1;

    if (!parse_ull(str, &v, &suffix))
        return FALSE;
    if (!*suffix) {
        mult = scale;
    } else if (!g_ascii_strcasecmp(suffix, "b") || !g_ascii_strcasecmp(suffix, "byte") ||
               !g_ascii_strcasecmp(suffix, "bytes")) {
        mult = 1;
    } else {
        int steps;

        if (!suffix[1] || !g_ascii_strcasecmp(suffix + 1, "iB"))
            base = 1024;
        else if (!g_ascii_strcasecmp(suffix + 1, "B"))
            base = 1000;
        else
            goto bad_suffix;
        switch (g_ascii_tolower(*suffix)) {
        case 'k': steps = 1; break;
        case 'm': steps = 2; break;
        case 'g': steps = 3; break;
        case 't': steps = 4; break;
        case 'p': steps = 5; break;
        case 'e': steps = 6; break;
        default: goto bad_suffix;
        }
        while (steps--)
            mult *= base;
    }
    if (v > G_MAXUINT64 / mult) {
        if (detail)
            *detail = g_strdup_printf("numerical overflow: value too large: %" G_GUINT64_FORMAT
                                      "%s", v, suffix);
        return FALSE;
    }
    if (v * mult > max)
        return FALSE;
    *out = v * mult;
    return TRUE;

bad_suffix:
    if (detail)
        *detail = g_strdup_printf("invalid argument: unknown suffix '%s'", suffix);
    return FALSE;
}

int cli_cmd_get_scaled(const CliCmd *cmd, const char *name, guint64 scale, guint64 max,
                       guint64 *out)
{
    const char *v = cli_cmd_get(cmd, name);
    g_autofree char *detail = NULL;

    if (!v)
        return 0;
    if (!cli_scale_integer(v, scale, max, out, &detail)) {
        cli_error("Scaled numeric value '%s' for <%s> option is malformed or out of range",
                  v, name);
        if (detail)
            cli_error("%s", detail);
        return -1;
    }
    return 1;
}

gboolean cli_cmd_exclusive(const CliCmd *cmd, const char *a, const char *b)
{
    if (cli_cmd_has(cmd, a) && cli_cmd_has(cmd, b)) {
        cli_error("Options --%s and --%s are mutually exclusive", a, b);
        return FALSE;
    }
    return TRUE;
}

gboolean cli_cmd_requires(const CliCmd *cmd, const char *a, const char *b)
{
    if (cli_cmd_has(cmd, a) && !cli_cmd_has(cmd, b)) {
        cli_error("Option --%s is required by option --%s", b, a);
        return FALSE;
    }
    return TRUE;
}

/* ------------------------------------------------------------------ help */

void cli_cmd_print_help_all(void)
{
    printf("Grouped commands:\n\n");
    for (const CliCmdGroup *g = cmd_groups; g && g->name; g++) {
        printf(" %s (help keyword '%s'):\n", g->name, g->keyword);
        for (const CliCmdDef *d = g->cmds; d->name; d++)
            if (!(d->flags & CLI_CMD_HIDDEN))
                printf("    %-30s %s\n", d->name, d->help);
        printf("\n");
    }
}

static void print_group(const CliCmdGroup *g)
{
    printf(" %s (help keyword '%s'):\n", g->name, g->keyword);
    for (const CliCmdDef *d = g->cmds; d->name; d++)
        if (!(d->flags & CLI_CMD_HIDDEN))
            printf("    %-30s %s\n", d->name, d->help);
}

gboolean cli_cmd_print_help(const char *name)
{
    const CliCmdDef *def = cli_cmd_find(name);
    g_autoptr(GString) syn = NULL;

    for (const CliCmdGroup *g = cmd_groups; !def && g && g->name; g++) {
        if (!strcmp(g->keyword, name)) {
            print_group(g);
            return TRUE;
        }
    }
    if (!def) {
        cli_error("command or command group '%s' doesn't exist", name);
        return FALSE;
    }
    syn = g_string_new(def->name);
    for (const CliOptDef *o = def->opts; o && o->name; o++) {
        gboolean req = o->flags & CLI_OPT_REQUIRED;

        if (o->type == CLI_OPT_BOOL)
            g_string_append_printf(syn, " [--%s]", o->name);
        else if (o->flags & CLI_OPT_POSITIONAL)
            g_string_append_printf(syn, req ? " <%s>" : " [<%s>]", o->name);
        else
            g_string_append_printf(syn, req ? " --%s <%s>" : " [--%s <%s>]", o->name,
                                   o->type == CLI_OPT_INT ? "number" : "string");
    }
    printf("  NAME\n    %s - %s\n\n  SYNOPSIS\n    %s\n\n", def->name, def->help, syn->str);
    if (def->desc)
        printf("  DESCRIPTION\n    %s\n\n", def->desc);
    if (def->opts && def->opts->name) {
        printf("  OPTIONS\n");
        for (const CliOptDef *o = def->opts; o->name; o++) {
            g_autofree char *buf = NULL;
            const char *kind = o->type == CLI_OPT_INT ? "number" : "string";

            if (o->type == CLI_OPT_BOOL)
                buf = g_strdup_printf("--%s", o->name);
            else if (o->flags & CLI_OPT_POSITIONAL)
                buf = g_strdup_printf("[--%s] <%s>", o->name, kind);
            else
                buf = g_strdup_printf("--%s <%s>", o->name, kind);
            printf("    %-15s  %s\n", buf, o->help);
        }
        printf("\n");
    }
    return TRUE;
}
