/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Asynchronous QMP client (include/vireo/qmp-client.h). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib-unix.h>

#include "vireo/qmp-client.h"
#include "vireo/util.h"

#define QMP_CLIENT_MAX_MESSAGE (4 * 1024 * 1024)

G_DEFINE_QUARK(qmp-client-error-quark, qmp_client_error)

typedef struct QmpPending {
    QmpClient *client;
    gint64 id;
    char *line;              /* serialized command, sent after the handshake */
    QmpReplyFunc cb;
    gpointer opaque;
    GSource *timeout;
} QmpPending;

struct QmpClient {
    GMainContext *ctx;
    QmpEventFunc on_event;
    QmpClosedFunc on_closed;
    gpointer opaque;
    int fd;
    GSource *io;
    GIOCondition io_cond;
    JsonStreamer *streamer;
    GString *out;
    gboolean greeted;        /* greeting read, qmp_capabilities sent */
    gboolean ready;          /* qmp_capabilities answered */
    gboolean closed;
    gboolean closed_notified;
    gint64 next_id;
    GQueue unsent;           /* QmpPending waiting for the handshake */
    GHashTable *pending;     /* id -> QmpPending, sent */
    int *alive;              /* set to 0 when freed during a callback */
};

static void pending_free(QmpPending *p)
{
    if (p->timeout) {
        g_source_destroy(p->timeout);
        g_source_unref(p->timeout);
    }
    g_free(p->line);
    g_free(p);
}

static void update_io(QmpClient *c);

/* Runs @p's callback once and frees it. Returns FALSE if @c was freed. */
static gboolean complete(QmpClient *c, QmpPending *p, JsonValue *ret, const GError *error)
{
    int alive = 1;
    int *outer = c->alive;

    if (!p->cb) {
        pending_free(p);
        return TRUE;
    }
    c->alive = &alive;
    p->cb(c, ret, error, p->opaque);
    pending_free(p);
    if (!alive) {
        if (outer)
            *outer = 0;
        return FALSE;
    }
    c->alive = outer;
    return TRUE;
}

/* Fails everything pending and notifies once. FALSE if @c was freed. */
static gboolean close_with(QmpClient *c, GError *error)
{
    g_autoptr(GError) err = error;
    int alive = 1;
    int *outer = c->alive;
    QmpPending *p;
    GHashTableIter it;
    gpointer value;

    if (!c->closed) {
        c->closed = TRUE;
        if (c->io) {
            g_source_destroy(c->io);
            g_clear_pointer(&c->io, g_source_unref);
        }
        if (c->fd >= 0) {
            close(c->fd);
            c->fd = -1;
        }
    }
    c->alive = &alive;
    while ((p = g_queue_pop_head(&c->unsent))) {
        complete(c, p, NULL, err);
        if (!alive)
            goto freed;
    }
    while (g_hash_table_size(c->pending)) {
        g_hash_table_iter_init(&it, c->pending);
        g_hash_table_iter_next(&it, NULL, &value);
        g_hash_table_iter_steal(&it);
        complete(c, value, NULL, err);
        if (!alive)
            goto freed;
    }
    if (!c->closed_notified) {
        c->closed_notified = TRUE;
        if (c->on_closed)
            c->on_closed(c, err, c->opaque);
        if (!alive)
            goto freed;
    }
    c->alive = outer;
    return TRUE;
freed:
    if (outer)
        *outer = 0;
    return FALSE;
}

static void send_line(QmpClient *c, const char *line)
{
    g_string_append(c->out, line);
    g_string_append(c->out, "\r\n");
    update_io(c);
}

static gboolean on_timeout(gpointer data)
{
    QmpPending *p = data;
    QmpClient *c = p->client;
    g_autoptr(GError) err = g_error_new(QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_TIMEOUT,
                                        "QMP command timed out");

    g_clear_pointer(&p->timeout, g_source_unref);
    if (g_queue_remove(&c->unsent, p) || g_hash_table_steal(c->pending, &p->id))
        complete(c, p, NULL, err);
    return G_SOURCE_REMOVE;
}

static void flush_unsent(QmpClient *c)
{
    QmpPending *p;

    while ((p = g_queue_pop_head(&c->unsent))) {
        send_line(c, p->line);
        g_clear_pointer(&p->line, g_free);
        g_hash_table_insert(c->pending, &p->id, p);
    }
}

static void on_capabilities(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque)
{
    if (error)
        return;     /* the connection is failing; close_with() reports it */
    c->ready = TRUE;
    flush_unsent(c);
}

static gint64 queue_command(QmpClient *c, const char *cmd, JsonValue *args, guint timeout_ms,
                            QmpReplyFunc cb, gpointer opaque, gboolean now)
{
    g_autoptr(JsonValue) msg = json_new_object();
    QmpPending *p = g_new0(QmpPending, 1);

    p->client = c;
    p->id = ++c->next_id;
    p->cb = cb;
    p->opaque = opaque;
    json_object_set_string(msg, "execute", cmd);
    if (args)
        json_object_set(msg, "arguments", args);
    json_object_set_int(msg, "id", p->id);
    p->line = json_to_string(msg);
    if (timeout_ms) {
        p->timeout = g_timeout_source_new(timeout_ms);
        g_source_set_callback(p->timeout, on_timeout, p, NULL);
        g_source_attach(p->timeout, c->ctx);
    }
    if (now) {
        send_line(c, p->line);
        g_clear_pointer(&p->line, g_free);
        g_hash_table_insert(c->pending, &p->id, p);
    } else {
        g_queue_push_tail(&c->unsent, p);
    }
    return p->id;
}

/* One complete message. FALSE if @c was freed or closed. */
static gboolean handle_message(QmpClient *c, const char *text, gsize len)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonValue) msg = json_parse(text, len, &err);
    JsonValue *id_val;
    const char *event;

    if (!msg || json_get_type(msg) != JSON_OBJECT) {
        return close_with(c, g_error_new(QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_PROTOCOL,
                                         "malformed QMP message: %s",
                                         err ? err->message : "not an object")) && FALSE;
    }
    if (!c->greeted) {
        if (!json_object_get_object(msg, "QMP"))
            return close_with(c, g_error_new(QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_PROTOCOL,
                                             "no QMP greeting")) && FALSE;
        c->greeted = TRUE;
        queue_command(c, "qmp_capabilities", NULL, 0, on_capabilities, NULL, TRUE);
        return TRUE;
    }
    event = json_object_get_string(msg, "event");
    if (event) {
        int alive = 1;
        int *outer = c->alive;

        if (!c->on_event)
            return TRUE;
        c->alive = &alive;
        c->on_event(c, event, json_object_get(msg, "data"), c->opaque);
        if (!alive) {
            if (outer)
                *outer = 0;
            return FALSE;
        }
        c->alive = outer;
        return !c->closed;
    }
    id_val = json_object_get(msg, "id");
    if (id_val && json_get_type(id_val) == JSON_INT) {
        gint64 id = json_get_int(id_val);
        QmpPending *p = g_hash_table_lookup(c->pending, &id);
        JsonValue *qerr = json_object_get_object(msg, "error");

        if (!p)
            return TRUE;        /* timed out earlier */
        g_hash_table_steal(c->pending, &id);
        if (qerr) {
            const char *desc = json_object_get_string(qerr, "desc");
            g_autoptr(GError) cerr = g_error_new(QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_COMMAND,
                                                 "%s", desc ? desc : "unknown QMP error");

            return complete(c, p, NULL, cerr) && !c->closed;
        }
        return complete(c, p, json_object_get(msg, "return"), NULL) && !c->closed;
    }
    return TRUE;                /* replies without our ids are not ours */
}

static gboolean on_io(gint fd, GIOCondition cond, gpointer data)
{
    QmpClient *c = data;
    char buf[4096];
    char *msg;
    gsize len;

    if (cond & G_IO_OUT && c->out->len) {
        ssize_t n = send(c->fd, c->out->str, c->out->len, MSG_NOSIGNAL);

        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            int saved = errno;

            close_with(c, g_error_new(QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_CLOSED,
                                      "QMP write: %s", g_strerror(saved)));
            return G_SOURCE_CONTINUE;   /* destroyed by close_with() */
        }
        if (n > 0)
            g_string_erase(c->out, 0, n);
    }
    if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        g_autoptr(GError) err = NULL;

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return G_SOURCE_CONTINUE;
        if (n <= 0) {
            int saved = errno;

            close_with(c, g_error_new(QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_CLOSED, "%s",
                                      n == 0 ? "QMP connection closed"
                                             : g_strerror(saved)));
            return G_SOURCE_CONTINUE;
        }
        if (!json_streamer_feed(c->streamer, buf, n, &err)) {
            close_with(c, g_error_new(QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_PROTOCOL, "%s",
                                      err->message));
            return G_SOURCE_CONTINUE;
        }
        while ((msg = json_streamer_pop(c->streamer, &len))) {
            gboolean go_on = handle_message(c, msg, len);

            g_free(msg);
            if (!go_on)
                return G_SOURCE_CONTINUE;
        }
    }
    update_io(c);
    return G_SOURCE_CONTINUE;
}

static void update_io(QmpClient *c)
{
    GIOCondition want = G_IO_IN | (c->out->len ? G_IO_OUT : 0);

    if (c->closed || c->fd < 0 || (c->io && want == c->io_cond))
        return;
    if (c->io) {
        g_source_destroy(c->io);
        g_source_unref(c->io);
    }
    c->io = g_unix_fd_source_new(c->fd, want);
    c->io_cond = want;
    g_source_set_callback(c->io, (GSourceFunc)(void (*)(void))on_io, c, NULL);
    g_source_attach(c->io, c->ctx);
}

QmpClient *qmp_client_new(GMainContext *ctx, QmpEventFunc on_event, QmpClosedFunc on_closed,
                          gpointer opaque)
{
    QmpClient *c = g_new0(QmpClient, 1);

    c->ctx = g_main_context_ref(ctx ? ctx : g_main_context_default());
    c->on_event = on_event;
    c->on_closed = on_closed;
    c->opaque = opaque;
    c->fd = -1;
    c->streamer = json_streamer_new(QMP_CLIENT_MAX_MESSAGE);
    c->out = g_string_new(NULL);
    c->pending = g_hash_table_new(g_int64_hash, g_int64_equal);
    g_queue_init(&c->unsent);
    return c;
}

void qmp_client_free(QmpClient *c)
{
    if (!c)
        return;
    /* Pending callbacks see the error; the closed callback is not called. */
    c->closed_notified = TRUE;
    c->on_event = NULL;
    if (c->alive)
        *c->alive = 0;
    c->alive = NULL;
    close_with(c, g_error_new(QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_CLOSED,
                              "QMP connection closed by the daemon"));
    g_hash_table_unref(c->pending);
    json_streamer_free(c->streamer);
    g_string_free(c->out, TRUE);
    g_main_context_unref(c->ctx);
    g_free(c);
}

gboolean qmp_client_connect(QmpClient *c, const char *path, GError **error)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    autoclose int fd = -1;

    g_return_val_if_fail(c->fd < 0 && !c->closed, FALSE);
    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(error, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_CONNECT,
                    "QMP socket path too long: %s", path);
        return FALSE;
    }
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int saved = errno;

        g_set_error(error, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_CONNECT,
                    "cannot connect to QMP socket '%s': %s", path, g_strerror(saved));
        return FALSE;
    }
    c->fd = vireo_steal_fd(&fd);
    update_io(c);
    return TRUE;
}

gboolean qmp_client_is_ready(QmpClient *c)
{
    return c->ready && !c->closed;
}

gboolean qmp_client_is_closed(QmpClient *c)
{
    return c->closed;
}

void qmp_client_execute(QmpClient *c, const char *cmd, JsonValue *args, guint timeout_ms,
                        QmpReplyFunc cb, gpointer opaque)
{
    if (c->closed) {
        g_autoptr(GError) err = g_error_new(QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_CLOSED,
                                            "QMP connection closed");
        QmpPending p = { .cb = cb, .opaque = opaque };

        json_free(args);
        if (cb)
            cb(c, NULL, err, p.opaque);
        return;
    }
    queue_command(c, cmd, args, timeout_ms, cb, opaque, c->ready);
}
