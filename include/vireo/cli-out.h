/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the command-line tools print: messages and errors worded and
 * routed as virsh's (results on stdout, "error: ..." on stderr), virsh's
 * table layout, and JSON for --json.
 */
#ifndef VIREO_CLI_OUT_H
#define VIREO_CLI_OUT_H

#include <glib.h>

#include "vireo/json.h"

typedef struct CliCtl CliCtl;

/* "error: MESSAGE\n" on stderr (stdout is flushed first, as virsh does). */
void cli_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* Results: always printed. */
void cli_print(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* Informational messages: not with --quiet (virsh's vshPrintExtra). */
void cli_print_extra(CliCtl *ctl, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/*
 * virsh's tables: a leading blank, columns left-aligned and separated by
 * at least three blanks, a dashed line under the header; without the
 * header (--quiet) the widths ignore the header cells.
 */
typedef struct CliTable CliTable;

CliTable *cli_table_new(const char *first, ...) G_GNUC_NULL_TERMINATED;
void cli_table_add(CliTable *t, const char *first, ...) G_GNUC_NULL_TERMINATED;
void cli_table_print(const CliTable *t, gboolean header);
void cli_table_free(CliTable *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CliTable, cli_table_free)

/* Display width of a UTF-8 string in a terminal (wide characters count 2). */
gsize cli_display_width(const char *s);

/* Prints @v as one line of JSON and frees it. */
void cli_print_json(JsonValue *v);

#endif /* VIREO_CLI_OUT_H */
