/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The command tables of the `vireo` shell, one per file of cli/, and the
 * entry points other tools reuse (vireo-install attaches the console).
 */
#ifndef VIREO_CLI_COMMANDS_H
#define VIREO_CLI_COMMANDS_H

#include "vireo/cli-cmd.h"
#include "vireo/cli-conn.h"

extern const CliCmdDef cli_domain_cmds[];     /* cli-domain.c: life cycle, define, setmem... */
extern const CliCmdDef cli_migrate_cmds[];    /* cli-migrate.c: migrate, migrate-postcopy,
                                                 host-evacuate */
extern const CliCmdDef cli_monitor_cmds[];    /* cli-monitor.c: list, dominfo, domstate... */
extern const CliCmdDef cli_save_cmds[];       /* cli-save.c: save, restore, managedsave, jobs */
extern const CliCmdDef cli_host_cmds[];       /* cli-host.c: uri, version, nodeinfo... */
extern const CliCmdDef cli_shell_cmds[];      /* cli-shell.c: help, quit, connect, complete */

/* cli-edit.c: `edit` */
gboolean cli_edit_cmd(CliCtl *ctl, const CliCmd *cmd);

/*
 * cli-console.c: virsh's console session on the controlling terminal:
 * checks the domain runs and stdin is a terminal, prints "Connected to
 * domain 'x'" and the escape character, then relays both ways until the
 * escape character or the end of the stream. @flags are
 * virDomainOpenConsole's (FORCE 1, SAFE 2).
 */
gboolean cli_console_run(CliCtl *ctl, const RemoteNonnullDomain *dom, const char *devname,
                         gboolean resume, guint flags);

/* cli-shell.c: the interactive shell, reading commands from a terminal or a pipe. */
int cli_shell_run(CliCtl *ctl);
/* Runs parsed commands as virsh does; returns the last one's result. */
gboolean cli_shell_run_line(CliCtl *ctl, GPtrArray *cmds, gboolean *quit);

/*
 * cli-complete.c: candidates for the last word of @words (the word being
 * completed, maybe empty), for readline and `vireo complete`.
 */
GStrv cli_complete_words(CliCtl *ctl, char **words);

#endif /* VIREO_CLI_COMMANDS_H */
