/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The command-line tools' connection to vireod (or libvirtd): the shared
 * state of one `vireo` session, calls that keep the error for virsh-style
 * reporting, and domain lookups worded as virsh's.
 *
 * Errors follow virsh: a failed call leaves its error pending
 * (cli_ctl_set_error); the command prints its own context first ("error:
 * Failed to start domain 'x'"), and the runner then prints the pending
 * error ("error: Requested operation is not valid: ..."). A lookup that
 * fails drops the server's error and prints only "error: failed to get
 * domain 'x'".
 */
#ifndef VIREO_CLI_CONN_H
#define VIREO_CLI_CONN_H

#include <glib.h>

#include "vireo/rpc-client.h"
#include "vireo/cli-cmd.h"

struct CliCtl {
    char *uri;                 /* the URI in use */
    gboolean readonly;
    gboolean quiet;
    gboolean interactive;
    guint8 escape_char;        /* console escape byte, ^] by default */
    char *escape_str;          /* as given: "^]" */
    RpcClient *client;         /* NULL until connected */
    GError *last_error;        /* pending, see above */
    gboolean json;             /* the running command prints JSON */
    guint ka_interval;         /* keepalive (virsh -k, -K): 5 s, 5 pings */
    guint ka_count;
};

CliCtl *cli_ctl_new(void);
void cli_ctl_free(CliCtl *ctl);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CliCtl, cli_ctl_free)

/* Takes @error as the pending one (replacing an older one). */
void cli_ctl_set_error(CliCtl *ctl, GError *error);
void cli_ctl_reset_error(CliCtl *ctl);
/* Prints the pending error, if any, as "error: MESSAGE", and clears it. */
void cli_ctl_report_error(CliCtl *ctl);
/* The libvirt error number of the pending error, or -1. */
int cli_ctl_error_code(CliCtl *ctl);

/*
 * virsh -e: "^X" (control-X, X one of a-z @ A-Z [ \ ] ^ _) or one other character. FALSE if
 * @str is neither.
 */
gboolean cli_ctl_set_escape(CliCtl *ctl, const char *str);

/*
 * Connects to ctl->uri (read-only with ctl->readonly) and performs
 * virsh's handshake. On failure prints "error: failed to connect to the
 * hypervisor" and the cause, as virsh does.
 */
gboolean cli_conn_open(CliCtl *ctl);
/* The same without printing anything (completion). */
gboolean cli_conn_open_silent(CliCtl *ctl);
/* Closes politely (CONNECT_CLOSE) when connected. */
void cli_conn_close(CliCtl *ctl);

/* A REMOTE_PROGRAM call; on failure the error is left pending. */
gboolean cli_call(CliCtl *ctl, gint32 proc, const void *args, void *ret);

/* ---- domains ---- */
#define CLI_UUID_STRING_LEN 37      /* 36 characters and a NUL */

typedef enum {
    CLI_BY_ID = 1 << 0,
    CLI_BY_UUID = 1 << 1,
    CLI_BY_NAME = 1 << 2,
    CLI_BY_ANY = CLI_BY_ID | CLI_BY_UUID | CLI_BY_NAME,
} CliLookupFlags;

/* virsh's lookup order: ID (a number >= 0), UUID (36 characters), name. */
gboolean cli_domain_lookup(CliCtl *ctl, const char *name, guint by, RemoteNonnullDomain *dom);
/* The command's "domain" option, looked up; *@name (may be NULL) gets the word given. */
gboolean cli_domain_from_cmd(CliCtl *ctl, const CliCmd *cmd, guint by, RemoteNonnullDomain *dom,
                             const char **name);
/* virDomainGetState, falling back to GetInfo on old servers; -1 on error (pending). */
int cli_domain_state(CliCtl *ctl, const RemoteNonnullDomain *dom, int *reason);
/* Names of all domains matching CONNECT_LIST_ALL_DOMAINS @flags. */
GPtrArray *cli_domain_names(CliCtl *ctl, guint flags);

const char *cli_state_to_string(int state);
const char *cli_state_reason_to_string(int state, int reason);

void cli_uuid_format(const guint8 *uuid, char out[CLI_UUID_STRING_LEN]);
gboolean cli_uuid_parse(const char *s, guint8 *uuid);

/* virConnectListAllDomains flags */
enum {
    CLI_LIST_ACTIVE = 1,
    CLI_LIST_INACTIVE = 2,
    CLI_LIST_PERSISTENT = 4,
    CLI_LIST_TRANSIENT = 8,
    CLI_LIST_RUNNING = 16,
    CLI_LIST_PAUSED = 32,
    CLI_LIST_SHUTOFF = 64,
    CLI_LIST_OTHER = 128,
    CLI_LIST_MANAGEDSAVE = 256,
    CLI_LIST_NO_MANAGEDSAVE = 512,
    CLI_LIST_AUTOSTART = 1024,
    CLI_LIST_NO_AUTOSTART = 2048,
    CLI_LIST_HAS_SNAPSHOT = 4096,
    CLI_LIST_NO_SNAPSHOT = 8192,
    CLI_LIST_HAS_CHECKPOINT = 16384,
    CLI_LIST_NO_CHECKPOINT = 32768,
};

#endif /* VIREO_CLI_CONN_H */
