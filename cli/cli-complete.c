/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Completion of command names, options and domain names (asked from the
 * daemon), shared by the interactive shell (readline) and `vireo
 * complete`, which the bash completion script calls.
 */
#include <string.h>

#include "vireo/cli-commands.h"

static void add_if(GPtrArray *out, const char *cand, const char *prefix)
{
    if (g_str_has_prefix(cand, prefix))
        g_ptr_array_add(out, g_strdup(cand));
}

static void add_domains(CliCtl *ctl, GPtrArray *out, const CliOptDef *o, const char *prefix)
{
    g_autoptr(GPtrArray) names = NULL;

    if (!ctl->client && !cli_conn_open_silent(ctl))
        return;
    names = cli_domain_names(ctl, o->complete_flags);
    for (guint i = 0; i < names->len; i++)
        add_if(out, g_ptr_array_index(names, i), prefix);
}

GStrv cli_complete_words(CliCtl *ctl, char **words)
{
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
    guint n = g_strv_length(words);
    const char *cur = n ? words[n - 1] : "";
    const CliCmdDef *def;
    const CliOptDef *pending = NULL;
    g_autoptr(GHashTable) seen = g_hash_table_new(g_direct_hash, g_direct_equal);
    gboolean data_only = FALSE;

    if (n <= 1) {
        for (const CliCmdGroup *g = cli_cmd_get_groups(); g && g->name; g++)
            for (const CliCmdDef *d = g->cmds; d->name; d++)
                if (!(d->flags & CLI_CMD_HIDDEN))
                    add_if(out, d->name, cur);
        goto done;
    }
    def = cli_cmd_find(words[0]);
    if (!def)
        goto done;

    /* Which options the words before the current one have used. */
    for (guint i = 1; i + 1 < n; i++) {
        const char *w = words[i];
        const CliOptDef *o = NULL;

        if (pending) {
            g_hash_table_add(seen, (gpointer)pending);
            pending = NULL;
            continue;
        }
        if (!data_only && g_str_has_prefix(w, "--") && w[2]) {
            g_autofree char *name = g_strndup(w + 2, strcspn(w + 2, "="));

            o = cli_cmd_find_opt(def, name);
            if (o && o->type != CLI_OPT_BOOL && !strchr(w, '='))
                pending = o;
            else if (o)
                g_hash_table_add(seen, (gpointer)o);
        } else if (!data_only && !strcmp(w, "--")) {
            data_only = TRUE;
        } else {
            for (const CliOptDef *p = def->opts; p && p->name; p++) {
                if ((p->flags & CLI_OPT_POSITIONAL) && !g_hash_table_contains(seen, p)) {
                    g_hash_table_add(seen, (gpointer)p);
                    break;
                }
            }
        }
    }

    if (pending) {
        if (pending->flags & CLI_OPT_DOMAIN)
            add_domains(ctl, out, pending, cur);
        goto done;
    }
    if (!g_str_has_prefix(cur, "-") || data_only) {
        for (const CliOptDef *p = def->opts; p && p->name; p++) {
            if ((p->flags & CLI_OPT_POSITIONAL) && !g_hash_table_contains(seen, p)) {
                if (p->flags & CLI_OPT_DOMAIN)
                    add_domains(ctl, out, p, cur);
                goto done;
            }
        }
    }
    if (!data_only) {
        for (const CliOptDef *p = def->opts; p && p->name; p++) {
            g_autofree char *opt = g_strdup_printf("--%s", p->name);

            if (!g_hash_table_contains(seen, p))
                add_if(out, opt, cur);
        }
    }

done:
    g_ptr_array_add(out, NULL);
    return (GStrv)g_ptr_array_free(g_steal_pointer(&out), FALSE);
}
