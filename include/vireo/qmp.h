/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP server: QEMU's machine protocol, as QEMU 7.2 speaks it on the wire,
 * on a UNIX socket, so that QMP tools and our daemon drive vireo-vmm as
 * they would drive QEMU.
 *
 * - Any number of clients. Each gets the greeting, must send
 *   qmp_capabilities first (anything else: CommandNotFound, as in QEMU),
 *   then may run registered commands. Replies carry the request's "id".
 *   Every message is one line ending in CRLF.
 * - Events go to every client that has negotiated capabilities.
 * - A client cannot hurt the VM or other clients: input that is not JSON,
 *   or breaks the size or depth limits, gets a GenericError reply and the
 *   connection is closed; a client that does not read its replies and
 *   events is dropped once more than the output limit is queued for it.
 *   Sockets are non-blocking and nothing here waits on a client.
 *
 * Threads: the event loop thread only (or before loop_run()), including
 * command handlers and qmp_server_emit_event().
 */
#ifndef VIREO_QMP_H
#define VIREO_QMP_H

#include <glib.h>
#include <stddef.h>

#include "vireo/json.h"
#include "vireo/loop.h"

typedef struct QmpServer QmpServer;

/* Largest request a client may send. */
#define QMP_MAX_REQUEST_SIZE (1024 * 1024)
/* Default bound on output queued for one client (qmp_server_set_output_limit()). */
#define QMP_DEFAULT_OUTPUT_LIMIT (1024 * 1024)

/*
 * Errors a handler returns in this domain keep their class; any other
 * GError is reported as a GenericError with its message as "desc".
 */
#define QMP_ERROR qmp_error_quark()
GQuark qmp_error_quark(void);

typedef enum {
    QMP_ERROR_GENERIC,              /* "GenericError" */
    QMP_ERROR_COMMAND_NOT_FOUND,    /* "CommandNotFound" */
    QMP_ERROR_DEVICE_NOT_ACTIVE,    /* "DeviceNotActive" */
    QMP_ERROR_DEVICE_NOT_FOUND,     /* "DeviceNotFound" */
    QMP_ERROR_KVM_MISSING_CAP,      /* "KVMMissingCap" */
} QmpErrorClass;

/*
 * A command. @args is the request's "arguments" object, or NULL when it had
 * none. Returns the "return" value (owned by the server; an empty object
 * for commands without output), or NULL with @error set.
 */
typedef JsonValue *(*QmpCommandFn)(const JsonValue *args, void *opaque, GError **error);

/*
 * Listens on @spec, "unix:PATH". A stale socket at PATH is replaced; a
 * socket someone still listens on, or any other file, is an error.
 */
QmpServer *qmp_server_new(const char *spec, Loop *loop, GError **error);
/* Disconnects every client and removes the socket file. */
void qmp_server_free(QmpServer *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpServer, qmp_server_free)

/*
 * Adds command @name. qmp_capabilities and query-commands are built in;
 * registering a name twice is a bug.
 */
void qmp_server_register(QmpServer *server, const char *name, QmpCommandFn fn, void *opaque);

/*
 * Sends event @name to every negotiated client, with QEMU's "timestamp"
 * and @data (an object, owned by the server afterwards) unless NULL.
 */
void qmp_server_emit_event(QmpServer *server, const char *name, JsonValue *data);

/*
 * Writes out queued output, waiting at most @timeout_ms: for use after
 * loop_run() returned, so that the reply to "quit" and the SHUTDOWN event
 * reach the clients before the process exits. FALSE if some is left.
 */
gboolean qmp_server_flush(QmpServer *server, int timeout_ms);

/* Bytes that may wait for one client before it is dropped (> 0). */
void qmp_server_set_output_limit(QmpServer *server, size_t bytes);

/* The socket's path. */
const char *qmp_server_get_path(const QmpServer *server);
/* Clients connected now (those being closed included). */
unsigned qmp_server_count_clients(const QmpServer *server);

/*
 * {"qemu": {"micro": .., "minor": .., "major": ..}, "package": "vireo-vmm X.Y.Z"}
 * from VIREO_VERSION: the greeting's "version" and query-version's reply.
 */
JsonValue *qmp_build_version_info(void);

/*
 * Argument checks for handlers, with QEMU's wording; @args may be NULL.
 * qmp_check_args() refuses members not in @allowed (NULL-terminated; NULL
 * for none): "Parameter 'x' is unexpected". The getters leave *@out alone
 * when the member is absent and not @required ("Parameter 'x' is missing"),
 * and refuse another type ("Invalid parameter type for 'x', expected: string").
 */
gboolean qmp_check_args(const JsonValue *args, const char *const *allowed, GError **error);
gboolean qmp_get_string_arg(const JsonValue *args, const char *name, gboolean required,
                            const char **out, GError **error);
gboolean qmp_get_int_arg(const JsonValue *args, const char *name, gboolean required,
                         int64_t *out, GError **error);
gboolean qmp_get_bool_arg(const JsonValue *args, const char *name, gboolean required,
                          gboolean *out, GError **error);

#endif
