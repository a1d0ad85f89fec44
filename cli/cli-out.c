/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Output of the command-line tools: virsh's wording, routing and tables. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vireo/cli-out.h"
#include "vireo/cli-conn.h"

void cli_error(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void cli_print(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

void cli_print_extra(CliCtl *ctl, const char *fmt, ...)
{
    va_list ap;

    if (ctl->quiet)
        return;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

gsize cli_display_width(const char *s)
{
    gsize w = 0;

    if (!g_utf8_validate(s, -1, NULL))
        return strlen(s);
    for (const char *p = s; *p; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);

        if (g_unichar_iszerowidth(c))
            continue;
        w += g_unichar_iswide(c) ? 2 : 1;
    }
    return w;
}

/* ------------------------------------------------------------------ tables */

struct CliTable {
    guint ncols;
    GPtrArray *rows;        /* GStrv, the first is the header */
};

static GStrv collect(const char *first, va_list ap)
{
    GPtrArray *cells = g_ptr_array_new();

    for (const char *c = first; c; c = va_arg(ap, const char *))
        g_ptr_array_add(cells, g_strdup(c));
    g_ptr_array_add(cells, NULL);
    return (GStrv)g_ptr_array_free(cells, FALSE);
}

CliTable *cli_table_new(const char *first, ...)
{
    CliTable *t = g_new0(CliTable, 1);
    va_list ap;
    GStrv hdr;

    va_start(ap, first);
    hdr = collect(first, ap);
    va_end(ap);
    t->ncols = g_strv_length(hdr);
    t->rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    g_ptr_array_add(t->rows, hdr);
    return t;
}

void cli_table_add(CliTable *t, const char *first, ...)
{
    va_list ap;
    GStrv row;

    va_start(ap, first);
    row = collect(first, ap);
    va_end(ap);
    g_assert(g_strv_length(row) == t->ncols);
    g_ptr_array_add(t->rows, row);
}

void cli_table_free(CliTable *t)
{
    if (!t)
        return;
    g_ptr_array_unref(t->rows);
    g_free(t);
}

static void print_row(GString *out, GStrv row, const gsize *maxw, guint ncols)
{
    for (guint i = 0; i < ncols; i++) {
        g_string_append_c(out, ' ');
        g_string_append(out, row[i]);
        if (i + 1 < ncols) {
            gsize pad = maxw[i] - cli_display_width(row[i]) + 2;

            for (gsize j = 0; j < pad; j++)
                g_string_append_c(out, ' ');
        }
    }
    g_string_append_c(out, '\n');
}

void cli_table_print(const CliTable *t, gboolean header)
{
    g_autofree gsize *maxw = g_new0(gsize, t->ncols);
    g_autoptr(GString) out = g_string_new(NULL);

    for (guint r = header ? 0 : 1; r < t->rows->len; r++) {
        GStrv row = g_ptr_array_index(t->rows, r);

        for (guint i = 0; i < t->ncols; i++)
            maxw[i] = MAX(maxw[i], cli_display_width(row[i]));
    }
    if (header) {
        print_row(out, g_ptr_array_index(t->rows, 0), maxw, t->ncols);
        for (guint i = 0; i < t->ncols; i++)
            for (gsize j = 0; j < maxw[i] + 3; j++)
                g_string_append_c(out, '-');
        g_string_append_c(out, '\n');
    }
    for (guint r = 1; r < t->rows->len; r++)
        print_row(out, g_ptr_array_index(t->rows, r), maxw, t->ncols);
    fputs(out->str, stdout);
}

void cli_print_json(JsonValue *v)
{
    g_autofree char *s = json_to_string(v);

    printf("%s\n", s);
    json_free(v);
}
