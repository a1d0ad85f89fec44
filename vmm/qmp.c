/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP server (see qmp.h). The wire format follows QEMU 7.2 byte for byte
 * where clients can see it: greeting, error classes and descriptions, key
 * order of replies and events, ", " and ": " separators, CRLF line ends.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vireo/qmp.h"
#include "vireo/util.h"

#ifndef VIREO_VERSION
#error "VIREO_VERSION must be defined (meson sets it from the project version)"
#endif

#define QMP_READ_CHUNK 8192
/* A client being closed gets this long to read the error it was sent. */
#define QMP_CLOSE_TIMEOUT_NS (1000LL * 1000 * 1000)
/* After accept() fails with EMFILE and the like, wait before retrying. */
#define QMP_ACCEPT_RETRY_NS (100LL * 1000 * 1000)
/* Output buffers above this size are given back once they drain. */
#define QMP_OUT_KEEP 4096
/* Input discarded at most when closing a client. */
#define QMP_DRAIN_MAX (256 * 1024)

typedef struct QmpCommand {
    char *name;
    QmpCommandFn fn;
    void *opaque;
} QmpCommand;

typedef struct QmpClient {
    QmpServer *server;
    unsigned id;                /* for log messages */
    int fd;                     /* -1 once disconnected */
    LoopSource *src;
    JsonStreamer *in;
    GString *out;
    size_t out_pos;             /* bytes of out already sent */
    gboolean negotiated;
    gboolean closing;           /* input ignored; closed once output is out */
    Timer *close_timer;
} QmpClient;

struct QmpServer {
    Loop *loop;
    char *path;
    int listen_fd;
    dev_t sock_dev;             /* identifies our socket file at free time */
    ino_t sock_ino;
    LoopSource *listen_src;
    Timer *accept_timer;
    GPtrArray *commands;        /* QmpCommand, registration order */
    GHashTable *command_index;  /* name -> QmpCommand */
    /*
     * QmpClient, connected or disconnected (fd -1). Disconnected clients
     * are freed only by reap(), outside any code that may still hold one.
     */
    GPtrArray *clients;
    int busy;                   /* nesting of calls that may hold a client */
    unsigned next_client_id;
    size_t output_limit;
    char *greeting;
};

G_DEFINE_QUARK(vireo-qmp-error-quark, qmp_error)

static const char *const qmp_error_class_names[] = {
    [QMP_ERROR_GENERIC] = "GenericError",
    [QMP_ERROR_COMMAND_NOT_FOUND] = "CommandNotFound",
    [QMP_ERROR_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
    [QMP_ERROR_DEVICE_NOT_FOUND] = "DeviceNotFound",
    [QMP_ERROR_KVM_MISSING_CAP] = "KVMMissingCap",
};

static const char *error_class_name(const GError *err)
{
    if (err->domain == QMP_ERROR && (unsigned)err->code < G_N_ELEMENTS(qmp_error_class_names))
        return qmp_error_class_names[err->code];
    return qmp_error_class_names[QMP_ERROR_GENERIC];
}

/* --- version --- */

JsonValue *qmp_build_version_info(void)
{
    g_autoptr(JsonValue) info = json_new_object();
    JsonValue *qemu = json_new_object();
    unsigned major = 0, minor = 0, micro = 0;

    sscanf(VIREO_VERSION, "%u.%u.%u", &major, &minor, &micro);
    /* QEMU's key order (its QDict hash order), so output matches byte for byte. */
    json_object_set_int(qemu, "micro", micro);
    json_object_set_int(qemu, "minor", minor);
    json_object_set_int(qemu, "major", major);
    json_object_set(info, "qemu", qemu);
    json_object_set_string(info, "package", "vireo-vmm " VIREO_VERSION);
    return g_steal_pointer(&info);
}

static char *build_greeting(void)
{
    g_autoptr(JsonValue) msg = json_new_object();
    JsonValue *qmp = json_new_object();

    json_object_set(qmp, "version", qmp_build_version_info());
    /* No "oob": every command runs to completion in order. */
    json_object_set(qmp, "capabilities", json_new_array());
    json_object_set(msg, "QMP", qmp);
    return json_to_string(msg);
}

/* --- argument helpers --- */

gboolean qmp_check_args(const JsonValue *args, const char *const *allowed, GError **error)
{
    if (!args)
        return TRUE;
    for (size_t i = 0; i < json_object_get_size(args); i++) {
        const char *key = json_object_get_key(args, i);

        if (!allowed || !g_strv_contains(allowed, key)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter '%s' is unexpected",
                        key);
            return FALSE;
        }
    }
    return TRUE;
}

/* The member @name of type @type, NULL if absent; FALSE on an error. */
static gboolean get_arg(const JsonValue *args, const char *name, gboolean required,
                        JsonType type, const char *type_name, JsonValue **out, GError **error)
{
    JsonValue *v = args ? json_object_get(args, name) : NULL;

    *out = NULL;
    if (!v) {
        if (!required)
            return TRUE;
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter '%s' is missing", name);
        return FALSE;
    }
    if (json_get_type(v) != type) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "Invalid parameter type for '%s', expected: %s", name, type_name);
        return FALSE;
    }
    *out = v;
    return TRUE;
}

gboolean qmp_get_string_arg(const JsonValue *args, const char *name, gboolean required,
                            const char **out, GError **error)
{
    JsonValue *v;

    if (!get_arg(args, name, required, JSON_STRING, "string", &v, error))
        return FALSE;
    if (v)
        *out = json_get_string(v);
    return TRUE;
}

gboolean qmp_get_int_arg(const JsonValue *args, const char *name, gboolean required,
                         int64_t *out, GError **error)
{
    JsonValue *v;

    if (!get_arg(args, name, required, JSON_INT, "integer", &v, error))
        return FALSE;
    if (v)
        *out = json_get_int(v);
    return TRUE;
}

gboolean qmp_get_bool_arg(const JsonValue *args, const char *name, gboolean required,
                          gboolean *out, GError **error)
{
    JsonValue *v;

    if (!get_arg(args, name, required, JSON_BOOL, "boolean", &v, error))
        return FALSE;
    if (v)
        *out = json_get_bool(v);
    return TRUE;
}

/* --- clients: output --- */

static void client_watch(QmpClient *c);

static gboolean client_alive(const QmpClient *c)
{
    return c->fd >= 0;
}

/*
 * Closes the connection at once. The struct stays in server->clients until
 * reap(), because a caller up the stack may still use it.
 */
static void client_disconnect(QmpClient *c, const char *why)
{
    if (!client_alive(c))
        return;
    g_debug("QMP client %u disconnected: %s", c->id, why);
    loop_source_remove(c->src);
    c->src = NULL;
    close(c->fd);
    c->fd = -1;
    if (c->close_timer)
        timer_cancel(c->close_timer);
}

static void client_free(QmpClient *c)
{
    client_disconnect(c, "server shutting down");
    timer_free(c->close_timer);
    json_streamer_free(c->in);
    g_string_free(c->out, TRUE);
    g_free(c);
}

/* Frees disconnected clients, unless some caller up the stack may hold one. */
static void reap(QmpServer *server)
{
    if (server->busy)
        return;
    for (guint i = server->clients->len; i-- > 0;) {
        QmpClient *c = g_ptr_array_index(server->clients, i);
        if (!client_alive(c))
            g_ptr_array_remove_index(server->clients, i);
    }
}

/*
 * Reads and drops what the client sent but we will never process: closing
 * a UNIX socket with unread input makes the peer's recv() fail with
 * ECONNRESET instead of delivering our last reply and then EOF.
 */
static void client_drain_input(QmpClient *c)
{
    char buf[QMP_READ_CHUNK];
    size_t total = 0;

    while (total < QMP_DRAIN_MAX) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        total += n;
    }
}

static void client_finish_close(QmpClient *c)
{
    client_drain_input(c);
    client_disconnect(c, "closed after an error");
}

/* Sends what is queued; FALSE if the client was disconnected. */
static gboolean client_write(QmpClient *c)
{
    while (c->out_pos < c->out->len) {
        ssize_t n = send(c->fd, c->out->str + c->out_pos, c->out->len - c->out_pos,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            client_disconnect(c, n < 0 ? g_strerror(errno) : "send failed");
            return FALSE;
        }
        c->out_pos += n;
    }
    if (c->out_pos == c->out->len) {
        if (c->out->allocated_len > QMP_OUT_KEEP) {
            g_string_free(c->out, TRUE);
            c->out = g_string_new(NULL);
        } else {
            g_string_truncate(c->out, 0);
        }
        c->out_pos = 0;
        if (c->closing) {
            client_finish_close(c);
            return FALSE;
        }
    } else if (c->out_pos >= c->out->len / 2) {
        /*
         * A client that reads, but never quite catches up, would otherwise
         * grow the buffer without bound behind out_pos.
         */
        g_string_erase(c->out, 0, c->out_pos);
        c->out_pos = 0;
    }
    client_watch(c);
    return TRUE;
}

/* Queues one message line and sends what the socket takes now. */
static void client_send(QmpClient *c, const char *line)
{
    QmpServer *server = c->server;
    size_t pending;

    if (!client_alive(c))
        return;
    g_string_append(c->out, line);
    g_string_append(c->out, "\r\n");
    if (!client_write(c))
        return;
    pending = c->out->len - c->out_pos;
    if (pending > server->output_limit) {
        /* It is not reading: drop it rather than buffer without bound. */
        g_warning("QMP client %u is not reading (%zu bytes queued); disconnecting it",
                  c->id, pending);
        client_disconnect(c, "output limit exceeded");
    }
}

static void client_send_value(QmpClient *c, const JsonValue *msg)
{
    g_autofree char *line = json_to_string(msg);

    client_send(c, line);
}

static void on_close_timeout(void *opaque)
{
    QmpClient *c = opaque;

    client_disconnect(c, "did not read the error sent to it");
    reap(c->server);
}

/*
 * Stops reading from the client and closes it once what is queued has been
 * sent (or after QMP_CLOSE_TIMEOUT_NS), so that it sees why.
 */
static void client_close(QmpClient *c)
{
    if (!client_alive(c) || c->closing)
        return;
    c->closing = TRUE;
    /* Anything it sends from now on fails at its end, so input stays bounded. */
    shutdown(c->fd, SHUT_RD);
    if (!client_write(c))
        return;
    c->close_timer = timer_new(loop_timer_service(c->server->loop), on_close_timeout, c);
    timer_arm(c->close_timer, loop_now_ns() + QMP_CLOSE_TIMEOUT_NS);
}

static void client_send_error(QmpClient *c, JsonValue *id, const char *class,
                              const char *desc)
{
    g_autoptr(JsonValue) msg = json_new_object();
    JsonValue *error = json_new_object();

    json_object_set_string(error, "class", class);
    json_object_set_string(error, "desc", desc);
    /* QEMU puts "id" first in errors and last in returns. */
    if (id)
        json_object_set(msg, "id", id);
    json_object_set(msg, "error", error);
    client_send_value(c, msg);
}

static void client_send_return(QmpClient *c, JsonValue *id, JsonValue *result)
{
    g_autoptr(JsonValue) msg = json_new_object();

    json_object_set(msg, "return", result);
    if (id)
        json_object_set(msg, "id", id);
    client_send_value(c, msg);
}

/* --- clients: requests --- */

static JsonValue *run_capabilities(QmpClient *c, const JsonValue *args, GError **error)
{
    static const char *const allowed[] = { "enable", NULL };
    JsonValue *enable = NULL;

    if (!qmp_check_args(args, allowed, error))
        return NULL;
    if (!get_arg(args, "enable", FALSE, JSON_ARRAY, "array", &enable, error))
        return NULL;
    /* The greeting offers no capability, so none can be enabled. */
    if (enable && json_array_get_length(enable) > 0) {
        JsonValue *cap = json_array_get_item(enable, 0);
        if (json_get_type(cap) != JSON_STRING) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                        "Invalid parameter type for 'enable[0]', expected: string");
        } else {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Capability '%s' not available",
                        json_get_string(cap));
        }
        return NULL;
    }
    c->negotiated = TRUE;
    return json_new_object();
}

/* Checks the request's shape the way QEMU's qmp_dispatch() does. */
static const char *request_command(const JsonValue *req, GError **error)
{
    const char *name = NULL;

    if (json_get_type(req) != JSON_OBJECT) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "QMP input must be a JSON object");
        return NULL;
    }
    for (size_t i = 0; i < json_object_get_size(req); i++) {
        const char *key = json_object_get_key(req, i);
        JsonValue *v = json_object_get_value(req, i);

        if (strcmp(key, "execute") == 0) {
            if (json_get_type(v) != JSON_STRING) {
                g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                            "QMP input member 'execute' must be a string");
                return NULL;
            }
            name = json_get_string(v);
        } else if (strcmp(key, "arguments") == 0) {
            if (json_get_type(v) != JSON_OBJECT) {
                g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                            "QMP input member 'arguments' must be an object");
                return NULL;
            }
        } else if (strcmp(key, "id") != 0) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                        "QMP input member '%s' is unexpected", key);
            return NULL;
        }
    }
    if (!name) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "QMP input lacks member 'execute'");
        return NULL;
    }
    return name;
}

static JsonValue *run_command(QmpClient *c, const char *name, const JsonValue *args,
                              GError **error)
{
    QmpCommand *cmd;
    JsonValue *result;

    if (!c->negotiated) {
        if (strcmp(name, "qmp_capabilities") != 0) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_COMMAND_NOT_FOUND,
                        "Expecting capabilities negotiation with 'qmp_capabilities'");
            return NULL;
        }
        return run_capabilities(c, args, error);
    }
    if (strcmp(name, "qmp_capabilities") == 0) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_COMMAND_NOT_FOUND,
                    "Capabilities negotiation is already complete, command ignored");
        return NULL;
    }
    cmd = g_hash_table_lookup(c->server->command_index, name);
    if (!cmd) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_COMMAND_NOT_FOUND,
                    "The command %s has not been found", name);
        return NULL;
    }
    result = cmd->fn(args, cmd->opaque, error);
    if (!result && (!error || !*error)) {
        g_critical("QMP command %s failed without an error", name);
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "command %s failed", name);
    }
    return result;
}

static void client_handle(QmpClient *c, const char *text, size_t len)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonValue) req = json_parse(text, len, &err);
    g_autoptr(JsonValue) id = NULL;
    JsonValue *result = NULL;
    const char *name;

    if (!req) {
        g_autofree char *desc = g_strdup_printf("JSON parse error, %s", err->message);

        g_info("QMP client %u sent invalid JSON (%s); closing it", c->id, err->message);
        client_send_error(c, NULL, qmp_error_class_names[QMP_ERROR_GENERIC], desc);
        client_close(c);
        return;
    }
    if (json_get_type(req) == JSON_OBJECT)
        id = json_object_steal(req, "id");
    name = request_command(req, &err);
    if (name)
        result = run_command(c, name, json_object_get_object(req, "arguments"), &err);
    if (result)
        client_send_return(c, g_steal_pointer(&id), result);
    else
        client_send_error(c, g_steal_pointer(&id), error_class_name(err), err->message);
}

static void client_read(QmpClient *c)
{
    QmpServer *server = c->server;
    g_autoptr(GError) err = NULL;
    char buf[QMP_READ_CHUNK];
    gboolean ok;
    ssize_t n;
    char *msg;
    size_t len;

    if (c->closing) {
        client_drain_input(c);
        return;
    }
    n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        client_disconnect(c, n < 0 ? g_strerror(errno) : "end of file");
        return;
    }
    ok = json_streamer_feed(c->in, buf, n, &err);
    /* Requests complete before a limit was broken still run, in order. */
    while (client_alive(c) && !c->closing && !loop_quitting(server->loop) &&
           (msg = json_streamer_pop(c->in, &len))) {
        client_handle(c, msg, len);
        g_free(msg);
    }
    if (!ok && client_alive(c) && !c->closing) {
        g_autofree char *desc = g_strdup_printf("JSON parse error, %s", err->message);

        g_info("QMP client %u: %s; closing it", c->id, err->message);
        client_send_error(c, NULL, qmp_error_class_names[QMP_ERROR_GENERIC], desc);
        client_close(c);
    }
}

static void on_client_io(int fd, uint32_t events, void *opaque)
{
    QmpClient *c = opaque;
    QmpServer *server = c->server;

    server->busy++;
    if (events & EPOLLOUT)
        client_write(c);
    if (client_alive(c) && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        client_read(c);
    /* A closing client that hung up will never read what is left. */
    if (client_alive(c) && c->closing && (events & (EPOLLHUP | EPOLLERR)))
        client_disconnect(c, "hung up");
    server->busy--;
    reap(server);
}

static void client_watch(QmpClient *c)
{
    uint32_t events = c->out_pos < c->out->len ? EPOLLOUT : 0;

    if (!c->closing)
        events |= EPOLLIN;
    if (c->src)
        loop_source_set_events(c->src, events);
}

/* --- listening --- */

static void on_accept_retry(void *opaque)
{
    QmpServer *server = opaque;

    loop_source_set_events(server->listen_src, EPOLLIN);
}

static void on_accept(int fd, uint32_t events, void *opaque)
{
    QmpServer *server = opaque;
    g_autoptr(GError) err = NULL;
    QmpClient *c;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (cfd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
            errno == ECONNABORTED)
            return;
        /* EMFILE and friends: the socket stays readable, so pause or we would spin. */
        g_warning("QMP: cannot accept a connection: %s", g_strerror(errno));
        loop_source_set_events(server->listen_src, 0);
        timer_arm(server->accept_timer, loop_now_ns() + QMP_ACCEPT_RETRY_NS);
        return;
    }
    c = g_new0(QmpClient, 1);
    c->server = server;
    c->id = server->next_client_id++;
    c->fd = cfd;
    c->in = json_streamer_new(QMP_MAX_REQUEST_SIZE);
    c->out = g_string_new(NULL);
    g_ptr_array_add(server->clients, c);
    c->src = loop_add_fd(server->loop, cfd, EPOLLIN, on_client_io, c, &err);
    if (!c->src) {
        g_warning("QMP: %s", err->message);
        client_disconnect(c, "cannot watch it");
        reap(server);
        return;
    }
    g_debug("QMP client %u connected", c->id);
    server->busy++;
    client_send(c, server->greeting);
    server->busy--;
    reap(server);
}

/* TRUE if a server accepts connections on @path (so it is not stale). */
static gboolean socket_in_use(const struct sockaddr_un *addr)
{
    autoclose int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return FALSE;
    /* EAGAIN: a full backlog, so someone listens. */
    return connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0 || errno == EAGAIN;
}

static gboolean server_listen(QmpServer *server, const char *path, GError **error)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct stat st;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "QMP socket path '%s' is too long (at most %zu bytes)", path,
                    sizeof(addr.sun_path) - 1);
        return FALSE;
    }
    strcpy(addr.sun_path, path);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "cannot use '%s' as QMP socket: the file exists and is not a socket",
                        path);
            return FALSE;
        }
        if (socket_in_use(&addr)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                        "cannot use '%s' as QMP socket: another process listens on it", path);
            return FALSE;
        }
        /* Left behind by a process that died: replace it. */
        unlink(path);
    }
    server->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (server->listen_fd < 0 ||
        bind(server->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(server->listen_fd, 16) < 0 || stat(path, &st) < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot listen on QMP socket '%s': %s",
                    path, g_strerror(saved));
        return FALSE;
    }
    server->path = g_strdup(path);
    server->sock_dev = st.st_dev;
    server->sock_ino = st.st_ino;
    server->listen_src = loop_add_fd(server->loop, server->listen_fd, EPOLLIN, on_accept,
                                     server, error);
    return server->listen_src != NULL;
}

/* --- server --- */

/* Built in, like QEMU's, since only the server knows the full list. */
static JsonValue *cmd_query_commands(const JsonValue *args, void *opaque, GError **error)
{
    QmpServer *server = opaque;
    g_autoptr(JsonValue) list = json_new_array();
    JsonValue *item;

    if (!qmp_check_args(args, NULL, error))
        return NULL;
    item = json_new_object();
    json_object_set_string(item, "name", "qmp_capabilities");
    json_array_append(list, item);
    for (guint i = 0; i < server->commands->len; i++) {
        QmpCommand *cmd = g_ptr_array_index(server->commands, i);
        item = json_new_object();
        json_object_set_string(item, "name", cmd->name);
        json_array_append(list, item);
    }
    return g_steal_pointer(&list);
}

static void command_free(QmpCommand *cmd)
{
    g_free(cmd->name);
    g_free(cmd);
}

QmpServer *qmp_server_new(const char *spec, Loop *loop, GError **error)
{
    g_autoptr(QmpServer) server = g_new0(QmpServer, 1);

    server->loop = loop;
    server->listen_fd = -1;
    server->output_limit = QMP_DEFAULT_OUTPUT_LIMIT;
    server->commands = g_ptr_array_new_with_free_func((GDestroyNotify)command_free);
    server->command_index = g_hash_table_new(g_str_hash, g_str_equal);
    server->clients = g_ptr_array_new_with_free_func((GDestroyNotify)client_free);
    server->greeting = build_greeting();
    server->accept_timer = timer_new(loop_timer_service(loop), on_accept_retry, server);
    if (!g_str_has_prefix(spec, "unix:") || !spec[5]) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "unsupported QMP address '%s' (expected unix:PATH)", spec);
        return NULL;
    }
    if (!server_listen(server, spec + 5, error))
        return NULL;
    qmp_server_register(server, "query-commands", cmd_query_commands, server);
    return g_steal_pointer(&server);
}

void qmp_server_free(QmpServer *server)
{
    struct stat st;

    if (!server)
        return;
    g_assert(!server->busy);
    g_ptr_array_unref(server->clients);
    loop_source_remove(server->listen_src);
    timer_free(server->accept_timer);
    if (server->listen_fd >= 0)
        close(server->listen_fd);
    /* Only our own socket: another process may have taken the path since. */
    if (server->path && stat(server->path, &st) == 0 && st.st_dev == server->sock_dev &&
        st.st_ino == server->sock_ino)
        unlink(server->path);
    g_hash_table_unref(server->command_index);
    g_ptr_array_unref(server->commands);
    g_free(server->greeting);
    g_free(server->path);
    g_free(server);
}

void qmp_server_register(QmpServer *server, const char *name, QmpCommandFn fn, void *opaque)
{
    QmpCommand *cmd = g_new0(QmpCommand, 1);

    g_assert(strcmp(name, "qmp_capabilities") != 0);
    g_assert(!g_hash_table_contains(server->command_index, name));
    cmd->name = g_strdup(name);
    cmd->fn = fn;
    cmd->opaque = opaque;
    g_ptr_array_add(server->commands, cmd);
    g_hash_table_insert(server->command_index, cmd->name, cmd);
}

void qmp_server_emit_event(QmpServer *server, const char *name, JsonValue *data)
{
    g_autoptr(JsonValue) msg = json_new_object();
    JsonValue *ts = json_new_object();
    int64_t now = g_get_real_time();
    g_autofree char *line = NULL;

    json_object_set_int(ts, "seconds", now / G_USEC_PER_SEC);
    json_object_set_int(ts, "microseconds", now % G_USEC_PER_SEC);
    json_object_set(msg, "timestamp", ts);
    json_object_set_string(msg, "event", name);
    if (data)
        json_object_set(msg, "data", data);
    line = json_to_string(msg);
    server->busy++;
    for (guint i = 0; i < server->clients->len; i++) {
        QmpClient *c = g_ptr_array_index(server->clients, i);
        /* Clients still negotiating get no events (QEMU). */
        if (client_alive(c) && c->negotiated && !c->closing)
            client_send(c, line);
    }
    server->busy--;
    reap(server);
}

gboolean qmp_server_flush(QmpServer *server, int timeout_ms)
{
    int64_t deadline = loop_now_ns() + (int64_t)timeout_ms * 1000000;
    g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(struct pollfd));
    g_autoptr(GPtrArray) waiting = g_ptr_array_new();
    gboolean done = FALSE;

    server->busy++;
    for (;;) {
        int64_t left;

        g_array_set_size(fds, 0);
        g_ptr_array_set_size(waiting, 0);
        for (guint i = 0; i < server->clients->len; i++) {
            QmpClient *c = g_ptr_array_index(server->clients, i);
            if (client_alive(c) && c->out_pos < c->out->len) {
                struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
                g_array_append_val(fds, pfd);
                g_ptr_array_add(waiting, c);
            }
        }
        if (!fds->len) {
            done = TRUE;
            break;
        }
        left = deadline - loop_now_ns();
        if (left <= 0)
            break;
        if (poll((struct pollfd *)fds->data, fds->len, (int)((left + 999999) / 1000000)) < 0 &&
            errno != EINTR)
            break;
        for (guint i = 0; i < fds->len; i++) {
            struct pollfd *pfd = &g_array_index(fds, struct pollfd, i);
            QmpClient *c = g_ptr_array_index(waiting, i);
            if (pfd->revents & (POLLERR | POLLNVAL))
                client_disconnect(c, "error while flushing");
            else if (pfd->revents & (POLLOUT | POLLHUP))
                client_write(c);
        }
    }
    server->busy--;
    reap(server);
    return done;
}

void qmp_server_set_output_limit(QmpServer *server, size_t bytes)
{
    g_assert(bytes > 0);
    server->output_limit = bytes;
}

const char *qmp_server_get_path(const QmpServer *server)
{
    return server->path;
}

unsigned qmp_server_count_clients(const QmpServer *server)
{
    unsigned n = 0;

    for (guint i = 0; i < server->clients->len; i++) {
        if (client_alive(g_ptr_array_index(server->clients, i)))
            n++;
    }
    return n;
}
