/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's QMP client (daemon/qmp-client.c) against a fake vireo-vmm:
 * a thread serving a UNIX socket with blocking I/O and a per-test script,
 * while the test iterates the client's GMainContext.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "vireo/qmp-client.h"
#include "vireo/util.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 1, \"major\": 0}, " \
                 "\"package\": \"vireo\"}, \"capabilities\": []}}\r\n"

typedef struct Fake {
    char *path;
    int listen_fd;
    int fd;
    GThread *thread;
    void (*script)(struct Fake *f);
    GString *in;
} Fake;

/* Next command line from the client, parsed; NULL at EOF. */
static JsonValue *fake_read(Fake *f)
{
    char buf[4096];

    for (;;) {
        char *nl = strstr(f->in->str, "\r\n");

        if (nl) {
            g_autofree char *line = g_strndup(f->in->str, nl - f->in->str);

            g_string_erase(f->in, 0, nl - f->in->str + 2);
            return json_parse(line, strlen(line), NULL);
        }
        ssize_t n = read(f->fd, buf, sizeof(buf));
        if (n <= 0)
            return NULL;
        g_string_append_len(f->in, buf, n);
    }
}

static void fake_write(Fake *f, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void fake_write(Fake *f, const char *fmt, ...)
{
    g_autofree char *s = NULL;
    va_list ap;

    va_start(ap, fmt);
    s = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (write(f->fd, s, strlen(s)) < 0)
        fail_msg("fake write: %s", g_strerror(errno));
}

/* Reads a command, checks its name, returns its id. */
static int64_t fake_expect(Fake *f, const char *cmd)
{
    g_autoptr(JsonValue) v = fake_read(f);
    int64_t id = -1;

    assert_non_null(v);
    assert_string_equal(json_object_get_string(v, "execute"), cmd);
    assert_true(json_object_get_int(v, "id", &id));
    return id;
}

static void fake_handshake(Fake *f)
{
    int64_t id;

    fake_write(f, GREETING);
    id = fake_expect(f, "qmp_capabilities");
    fake_write(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n", id);
}

static gpointer fake_thread(gpointer data)
{
    Fake *f = data;

    f->fd = accept(f->listen_fd, NULL, NULL);
    assert_true(f->fd >= 0);
    f->script(f);
    close(f->fd);
    return NULL;
}

static Fake *fake_new(void (*script)(Fake *f))
{
    Fake *f = g_new0(Fake, 1);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    g_autofree char *dir = g_dir_make_tmp("vireo-qmp-XXXXXX", NULL);

    f->path = g_build_filename(dir, "qmp.sock", NULL);
    strcpy(addr.sun_path, f->path);
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(f->listen_fd, 1), 0);
    f->in = g_string_new(NULL);
    f->script = script;
    f->thread = g_thread_new("fake-vmm", fake_thread, f);
    return f;
}

static void fake_free(Fake *f)
{
    g_autofree char *dir = g_path_get_dirname(f->path);

    g_thread_join(f->thread);
    close(f->listen_fd);
    unlink(f->path);
    rmdir(dir);
    g_string_free(f->in, TRUE);
    g_free(f->path);
    g_free(f);
}

/* ---- what the client saw ---- */

typedef struct Seen {
    GString *log;           /* "event:NAME;", "reply:JSON;", "error:CODE;", "closed;" */
    QmpClient *client;
    gboolean free_in_reply;
} Seen;

static void on_event(QmpClient *c, const char *event, JsonValue *data, gpointer opaque)
{
    Seen *s = opaque;

    g_string_append_printf(s->log, "event:%s;", event);
}

static void on_closed(QmpClient *c, const GError *error, gpointer opaque)
{
    Seen *s = opaque;

    g_string_append_printf(s->log, "closed:%d;", error ? error->code : -1);
}

static void on_reply(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque)
{
    Seen *s = opaque;

    if (error) {
        g_string_append_printf(s->log, "error:%d:%s;", error->code, error->message);
    } else {
        g_autofree char *j = json_to_string(ret);

        g_string_append_printf(s->log, "reply:%s;", j);
    }
    if (s->free_in_reply) {
        s->free_in_reply = FALSE;
        g_clear_pointer(&s->client, qmp_client_free);
    }
}

static void run_until(Seen *s, const char *needle)
{
    gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    while (!strstr(s->log->str, needle) && g_get_monotonic_time() < end)
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(1000);
    if (!strstr(s->log->str, needle))
        fail_msg("'%s' not seen in '%s'", needle, s->log->str);
}

static Seen *seen_new(Fake *f)
{
    Seen *s = g_new0(Seen, 1);
    g_autoptr(GError) err = NULL;

    s->log = g_string_new(NULL);
    s->client = qmp_client_new(NULL, on_event, on_closed, s);
    assert_true(qmp_client_connect(s->client, f->path, &err));
    return s;
}

static void seen_free(Seen *s)
{
    g_clear_pointer(&s->client, qmp_client_free);
    g_string_free(s->log, TRUE);
    g_free(s);
}

/* ---- tests ---- */

static void script_basic(Fake *f)
{
    int64_t a, b;

    fake_handshake(f);
    a = fake_expect(f, "query-status");
    b = fake_expect(f, "stop");
    /* An event before the replies; replies in any order; a split message. */
    fake_write(f, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n");
    fake_write(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n", b);
    fake_write(f, "{\"return\": {\"status\": \"paused\", \"run");
    g_usleep(20000);
    fake_write(f, "ning\": false}, \"id\": %" G_GINT64_FORMAT "}\r\n", a);
    b = fake_expect(f, "cont");
    fake_write(f, "{\"id\": %" G_GINT64_FORMAT ", \"error\": {\"class\": \"GenericError\", "
               "\"desc\": \"the guest has crashed\"}}\r\n", b);
    /* A reply to nobody, then EOF. */
    fake_write(f, "{\"return\": {}, \"id\": 999}\r\n");
}

static void test_basic(void **state)
{
    Fake *f = fake_new(script_basic);
    Seen *s = seen_new(f);

    /* Queued before the handshake, sent after it, in order. */
    qmp_client_execute(s->client, "query-status", NULL, 0, on_reply, s);
    qmp_client_execute(s->client, "stop", NULL, 0, on_reply, s);
    run_until(s, "\"status\"");
    assert_true(qmp_client_is_ready(s->client));
    qmp_client_execute(s->client, "cont", NULL, 0, on_reply, s);
    run_until(s, "closed");
    assert_string_equal(s->log->str,
                        "event:STOP;reply:{};"
                        "reply:{\"status\": \"paused\", \"running\": false};"
                        "error:4:the guest has crashed;closed:1;");
    seen_free(s);
    fake_free(f);
}

static void script_die(Fake *f)
{
    fake_handshake(f);
    fake_expect(f, "system_powerdown");
    fake_expect(f, "query-status");
    fake_write(f, "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": "
               "\"guest-shutdown\"}}\r\n");
    /* ... and vireo-vmm is gone without a reply. */
}

static void test_peer_dies(void **state)
{
    Fake *f = fake_new(script_die);
    Seen *s = seen_new(f);

    qmp_client_execute(s->client, "system_powerdown", NULL, 0, on_reply, s);
    qmp_client_execute(s->client, "query-status", NULL, 0, on_reply, s);
    run_until(s, "closed");
    /* The event first, then both commands fail, then closed once. */
    assert_true(g_str_has_prefix(s->log->str, "event:SHUTDOWN;error:1:"));
    assert_int_equal(strstr(s->log->str, "error:1:") !=
                     g_strrstr(s->log->str, "error:1:"), TRUE);
    assert_true(qmp_client_is_closed(s->client));
    /* After the close, a command fails at once. */
    qmp_client_execute(s->client, "cont", NULL, 0, on_reply, s);
    assert_true(g_str_has_suffix(s->log->str, "error:1:QMP connection closed;"));
    seen_free(s);
    fake_free(f);
}

static void script_silent(Fake *f)
{
    int64_t id;

    fake_handshake(f);
    id = fake_expect(f, "query-status");
    g_usleep(300000);           /* after the client's timeout */
    fake_write(f, "{\"return\": {\"status\": \"late\"}, \"id\": %" G_GINT64_FORMAT "}\r\n", id);
    id = fake_expect(f, "query-name");
    fake_write(f, "{\"return\": {\"name\": \"vm\"}, \"id\": %" G_GINT64_FORMAT "}\r\n", id);
    fake_read(f);
}

static void test_timeout(void **state)
{
    Fake *f = fake_new(script_silent);
    Seen *s = seen_new(f);

    qmp_client_execute(s->client, "query-status", NULL, 100, on_reply, s);
    run_until(s, "error:3:");
    g_usleep(300000);
    qmp_client_execute(s->client, "query-name", NULL, 0, on_reply, s);
    run_until(s, "\"vm\"");
    /* The late reply was dropped. */
    assert_null(strstr(s->log->str, "late"));
    seen_free(s);
    fake_free(f);
}

static void script_garbage(Fake *f)
{
    fake_handshake(f);
    fake_expect(f, "query-status");
    fake_write(f, "{\"return\": nonsense}\r\n");
    fake_read(f);
}

static void test_garbage(void **state)
{
    Fake *f = fake_new(script_garbage);
    Seen *s = seen_new(f);

    qmp_client_execute(s->client, "query-status", NULL, 0, on_reply, s);
    run_until(s, "closed");
    /* The pending command fails with the protocol error, then closed. */
    assert_true(g_str_has_prefix(s->log->str, "error:2:malformed QMP message"));
    assert_true(g_str_has_suffix(s->log->str, "closed:2;"));
    seen_free(s);
    fake_free(f);
}

static void script_two(Fake *f)
{
    int64_t a;

    fake_handshake(f);
    a = fake_expect(f, "stop");
    fake_expect(f, "cont");
    fake_write(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n", a);
    fake_read(f);
}

static void test_free_in_callback(void **state)
{
    Fake *f = fake_new(script_two);
    Seen *s = seen_new(f);

    qmp_client_execute(s->client, "stop", NULL, 0, on_reply, s);
    qmp_client_execute(s->client, "cont", NULL, 0, on_reply, s);
    s->free_in_reply = TRUE;
    run_until(s, "reply:{};");
    /* Freed inside the first reply: the second command failed, no closed callback. */
    assert_null(s->client);
    assert_string_equal(s->log->str, "reply:{};error:1:QMP connection closed by the daemon;");
    seen_free(s);
    fake_free(f);
}

static void test_connect_fails(void **state)
{
    g_autoptr(QmpClient) c = qmp_client_new(NULL, NULL, NULL, NULL);
    g_autoptr(GError) err = NULL;

    assert_false(qmp_client_connect(c, "/nonexistent/qmp.sock", &err));
    assert_true(g_error_matches(err, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_CONNECT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_peer_dies),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_free_in_callback),
        cmocka_unit_test(test_connect_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
