/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's QMP client for vireo-vmm's control socket: asynchronous,
 * on a GMainContext, built on json.h.
 *
 * Connecting: qmp_client_connect() connects the UNIX socket (at once or
 * failing), then reads the greeting and sends qmp_capabilities by itself.
 * Commands may be queued right after connect; they are sent once the
 * handshake is done, in order.
 *
 * Callbacks run in the thread iterating @ctx. Each command's callback runs
 * exactly once: with the "return" value, or with an error (the QMP error's
 * class and desc, a timeout, or the connection closing). A client may be
 * freed from inside any callback; pending commands then get their error
 * callback (QMP_CLIENT_ERROR_CLOSED) first.
 *
 * vireo-vmm may die at any moment: EOF, a read/write error and malformed
 * JSON all end the connection the same way -- pending commands fail, then
 * the closed callback runs once. Events that arrived before the EOF are
 * delivered before it.
 */
#ifndef VIREO_QMP_CLIENT_H
#define VIREO_QMP_CLIENT_H

#include <glib.h>

#include "vireo/json.h"

#define QMP_CLIENT_ERROR qmp_client_error_quark()
GQuark qmp_client_error_quark(void);

typedef enum {
    QMP_CLIENT_ERROR_CONNECT,   /* the socket could not be connected */
    QMP_CLIENT_ERROR_CLOSED,    /* EOF, I/O error, client freed */
    QMP_CLIENT_ERROR_PROTOCOL,  /* malformed message, bad greeting */
    QMP_CLIENT_ERROR_TIMEOUT,   /* no reply in time (a late one is dropped) */
    QMP_CLIENT_ERROR_COMMAND,   /* the peer's {"error": ...}; message = desc */
} QmpClientErrorCode;

typedef struct QmpClient QmpClient;

/* @ret: the "return" value (borrowed) or NULL with @error set. */
typedef void (*QmpReplyFunc)(QmpClient *c, JsonValue *ret, const GError *error,
                             gpointer opaque);
/* @data may be NULL; borrowed. */
typedef void (*QmpEventFunc)(QmpClient *c, const char *event, JsonValue *data,
                             gpointer opaque);
typedef void (*QmpClosedFunc)(QmpClient *c, const GError *error, gpointer opaque);

QmpClient *qmp_client_new(GMainContext *ctx, QmpEventFunc on_event, QmpClosedFunc on_closed,
                          gpointer opaque);
/* Closes (pending commands fail) and frees. */
void qmp_client_free(QmpClient *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpClient, qmp_client_free)

/* Connects to the UNIX socket @path; FALSE if connect() fails. */
gboolean qmp_client_connect(QmpClient *c, const char *path, GError **error);
/* TRUE once the greeting was read and qmp_capabilities answered. */
gboolean qmp_client_is_ready(QmpClient *c);
gboolean qmp_client_is_closed(QmpClient *c);

/*
 * Sends {"execute": @cmd, "arguments": @args (taken; may be NULL), "id": N}.
 * @timeout_ms 0: no timeout. @cb may be NULL.
 */
void qmp_client_execute(QmpClient *c, const char *cmd, JsonValue *args, guint timeout_ms,
                        QmpReplyFunc cb, gpointer opaque);

#endif
