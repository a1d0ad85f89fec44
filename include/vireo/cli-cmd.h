/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Commands of the `vireo` shell: their definitions, virsh's command-line
 * syntax, and the parsed form handlers read their options from.
 *
 * Syntax, as virsh's:
 * - a command line is split into words at blanks; '...' quotes literally,
 *   "..." quotes with backslash escapes, a backslash escapes one character;
 *   ';' and newlines separate commands; '#' at the start of a word begins
 *   a comment;
 * - `--name` sets a boolean, `--name VALUE` or `--name=VALUE` gives a value;
 *   words without `--` fill the positional options in order; after `--`
 *   every word is positional;
 * - errors are printed as virsh prints them ("command 'x' doesn't support
 *   option --y", "unexpected data 'z'", "command 'x' requires <domain>
 *   option") and the command is not run.
 */
#ifndef VIREO_CLI_CMD_H
#define VIREO_CLI_CMD_H

#include <glib.h>

typedef struct CliCtl CliCtl;

typedef enum {
    CLI_OPT_BOOL,
    CLI_OPT_STRING,
    CLI_OPT_INT,              /* a string the handler parses as a number */
} CliOptType;

typedef enum {
    CLI_OPT_REQUIRED = 1 << 0,
    CLI_OPT_POSITIONAL = 1 << 1,   /* may be given without its --name */
    CLI_OPT_DOMAIN = 1 << 2,       /* completes with domain names */
    CLI_OPT_FILE = 1 << 3,         /* completes with file names */
} CliOptFlags;

typedef struct CliOptDef {
    const char *name;
    CliOptType type;
    guint flags;                   /* CliOptFlags */
    const char *help;
    guint complete_flags;          /* CONNECT_LIST_ALL_DOMAINS flags for CLI_OPT_DOMAIN */
} CliOptDef;

typedef struct CliCmd CliCmd;

/* Returns TRUE on success; on failure it has printed or left an error. */
typedef gboolean (*CliCmdHandler)(CliCtl *ctl, const CliCmd *cmd);

typedef enum {
    CLI_CMD_NOCONNECT = 1 << 0,    /* runs without a connection */
    CLI_CMD_HIDDEN = 1 << 1,       /* not listed by help */
    CLI_CMD_NO_TRAILER = 1 << 2,   /* no blank line after it (quit) */
} CliCmdFlags;

typedef struct CliCmdDef {
    const char *name;
    CliCmdHandler handler;
    const CliOptDef *opts;         /* terminated by a NULL name */
    const char *help;              /* one line */
    const char *desc;
    guint flags;                   /* CliCmdFlags */
} CliCmdDef;

typedef struct CliCmdGroup {
    const char *name;              /* "Domain Management" */
    const char *keyword;           /* "domain" */
    const CliCmdDef *cmds;         /* terminated by a NULL name */
} CliCmdGroup;

struct CliCmd {
    const CliCmdDef *def;
    char **values;                 /* per def->opts entry; NULL = absent; "" for a bool */
    guint n_opts;
};

/* The command table (groups terminated by a NULL name), set once at start. */
void cli_cmd_set_groups(const CliCmdGroup *groups);
const CliCmdGroup *cli_cmd_get_groups(void);
const CliCmdDef *cli_cmd_find(const char *name);
const CliOptDef *cli_cmd_find_opt(const CliCmdDef *def, const char *name);

void cli_cmd_free(CliCmd *cmd);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CliCmd, cli_cmd_free)

/*
 * Splits @line into commands, each a NULL-terminated word vector (free the
 * array with g_ptr_array_unref). NULL on an unterminated quote or a
 * trailing backslash, with the error printed when @report.
 */
GPtrArray *cli_cmd_split(const char *line, gboolean report);

/* Parses one command's words; NULL with the errors printed. */
CliCmd *cli_cmd_parse(char **words);

/* ---- reading options (the handler's side) ---- */
gboolean cli_cmd_has(const CliCmd *cmd, const char *name);
/* The value, or NULL when the option was not given. */
const char *cli_cmd_get(const CliCmd *cmd, const char *name);
/*
 * Numbers, as virsh reads them: 1 given and valid, 0 absent, -1 invalid
 * (error printed: "Numeric value 'x' for <name> option is malformed or
 * out of range").
 */
int cli_cmd_get_uint(const CliCmd *cmd, const char *name, guint *out);
/*
 * A size with an optional unit suffix (b, k/KiB, KB, M/MiB, MB, ... E),
 * @scale the unit without suffix; result in bytes, at most @max. Errors:
 * "Scaled numeric value 'x' for <name> option is malformed or out of
 * range".
 */
int cli_cmd_get_scaled(const CliCmd *cmd, const char *name, guint64 scale, guint64 max,
                       guint64 *out);
/*
 * libvirt's suffix scaling; FALSE when invalid, with *@detail (if not
 * NULL) set to libvirt's own message when it has one ("invalid argument:
 * unknown suffix 'x'", "numerical overflow: value too large: 17E").
 */
gboolean cli_scale_integer(const char *str, guint64 scale, guint64 max, guint64 *out,
                           char **detail);

/*
 * virsh's option checks: "Options --a and --b are mutually exclusive",
 * "Option --b is required by option --a". FALSE with the error printed.
 */
gboolean cli_cmd_exclusive(const CliCmd *cmd, const char *a, const char *b);
gboolean cli_cmd_requires(const CliCmd *cmd, const char *a, const char *b);

/* `help` output: the grouped list, or one command's page. */
void cli_cmd_print_help_all(void);
gboolean cli_cmd_print_help(const char *name);

#endif /* VIREO_CLI_CMD_H */
