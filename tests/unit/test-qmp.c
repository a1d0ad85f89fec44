/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP server (vmm/qmp.c) over a real UNIX socket, with the event loop
 * running in a thread and fake commands; and the machine commands
 * (vmm/qmp-commands.c) against a fake Machine defined below.
 *
 * Expected lines are what QEMU 7.2 prints for the same requests, byte for
 * byte (captured from qemu-system-x86_64 -M none -qmp unix:...).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "vireo/json.h"
#include "vireo/loop.h"
#include "vireo/machine.h"
#include "vireo/qmp-commands.h"
#include "vireo/qmp.h"
#include "vireo/util.h"

#define TIMEOUT_MS 5000

/* --- a fake Machine, so qmp-commands.c links without KVM --- */

struct Machine {
    Loop *loop;
    RunState state;
    MachineEventFn listener;
    void *listener_opaque;
    unsigned cpus;
};

static void fake_emit(Machine *m, MachineEventKind kind, gboolean guest, const char *reason)
{
    MachineEvent ev = { .kind = kind, .guest = guest, .reason = reason };

    if (m->listener)
        m->listener(&ev, m->listener_opaque);
}

const char *run_state_name(RunState state)
{
    static const char *const names[] = {
        [RUN_STATE_PRELAUNCH] = "prelaunch", [RUN_STATE_RUNNING] = "running",
        [RUN_STATE_PAUSED] = "paused", [RUN_STATE_SHUTDOWN] = "shutdown",
        [RUN_STATE_INTERNAL_ERROR] = "internal-error",
    };
    return names[state];
}

void machine_add_listener(Machine *m, MachineEventFn fn, void *opaque)
{
    m->listener = fn;
    m->listener_opaque = opaque;
}

RunState machine_run_state(const Machine *m)
{
    return m->state;
}

void machine_stop(Machine *m)
{
    if (m->state != RUN_STATE_RUNNING)
        return;
    m->state = RUN_STATE_PAUSED;
    fake_emit(m, MACHINE_EVENT_STOP, FALSE, NULL);
}

gboolean machine_cont(Machine *m, GError **error)
{
    if (m->state == RUN_STATE_SHUTDOWN) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "the guest has shut down; it cannot be resumed");
        return FALSE;
    }
    m->state = RUN_STATE_RUNNING;
    fake_emit(m, MACHINE_EVENT_RESUME, FALSE, NULL);
    return TRUE;
}

/* The fake guest reacts to the power button at once by powering off. */
void machine_powerdown(Machine *m)
{
    fake_emit(m, MACHINE_EVENT_POWERDOWN, FALSE, NULL);
    m->state = RUN_STATE_SHUTDOWN;
    fake_emit(m, MACHINE_EVENT_SHUTDOWN, TRUE, "guest-shutdown");
}

void machine_system_reset(Machine *m)
{
    fake_emit(m, MACHINE_EVENT_RESET, FALSE, "host-qmp-system-reset");
}

void machine_quit(Machine *m, const char *reason)
{
    m->state = RUN_STATE_SHUTDOWN;
    fake_emit(m, MACHINE_EVENT_SHUTDOWN, FALSE, reason);
    loop_quit(m->loop, 0);
}

unsigned machine_nr_cpus(const Machine *m)
{
    return m->cpus;
}

pid_t machine_vcpu_thread_id(const Machine *m, unsigned index)
{
    return 1000 + index;
}

const char *machine_name(const Machine *m)
{
    return "fake\xc3\xa9";
}

/* No devices: balloon and query-balloon answer DeviceNotActive. */
Device *machine_find_device(Machine *m, const char *type_name)
{
    return NULL;
}

/* --- fixture: loop thread, server, fake commands --- */

typedef struct Fixture {
    char *dir;
    char *path;
    Loop *loop;
    QmpServer *server;
    GThread *thread;
    Machine machine;
    gboolean quit_pending;
} Fixture;

static gpointer loop_thread(gpointer opaque)
{
    Fixture *f = opaque;

    return GINT_TO_POINTER(loop_run(f->loop));
}

static JsonValue *cmd_echo(const JsonValue *args, void *opaque, GError **error)
{
    return args ? json_copy(args) : json_new_object();
}

static JsonValue *cmd_fail(const JsonValue *args, void *opaque, GError **error)
{
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "disk 'x' failed: %s", "EIO");
    return NULL;
}

static JsonValue *cmd_no_device(const JsonValue *args, void *opaque, GError **error)
{
    g_set_error(error, QMP_ERROR, QMP_ERROR_DEVICE_NOT_FOUND, "Device 'nic0' not found");
    return NULL;
}

static JsonValue *cmd_add(const JsonValue *args, void *opaque, GError **error)
{
    static const char *const allowed[] = { "a", "b", "verbose", "label", NULL };
    int64_t a = 0, b = 0;
    gboolean verbose = FALSE;
    const char *label = "sum";
    JsonValue *ret;

    if (!qmp_check_args(args, allowed, error) ||
        !qmp_get_int_arg(args, "a", TRUE, &a, error) ||
        !qmp_get_int_arg(args, "b", FALSE, &b, error) ||
        !qmp_get_bool_arg(args, "verbose", FALSE, &verbose, error) ||
        !qmp_get_string_arg(args, "label", FALSE, &label, error))
        return NULL;
    ret = json_new_object();
    json_object_set_int(ret, label, a + b);
    if (verbose)
        json_object_set_bool(ret, "verbose", TRUE);
    return ret;
}

/* Emits TEST_EVENT, or a BIG event of "size" bytes, before replying. */
static JsonValue *cmd_emit(const JsonValue *args, void *opaque, GError **error)
{
    Fixture *f = opaque;
    int64_t size = 0;
    JsonValue *data = json_new_object();

    if (!qmp_get_int_arg(args, "size", FALSE, &size, error)) {
        json_free(data);
        return NULL;
    }
    if (size) {
        g_autofree char *s = g_malloc(size + 1);
        memset(s, 'x', size);
        s[size] = 0;
        json_object_set_string(data, "s", s);
        qmp_server_emit_event(f->server, "BIG", data);
    } else {
        json_object_set_int(data, "n", 1);
        qmp_server_emit_event(f->server, "TEST_EVENT", data);
    }
    return json_new_object();
}

/* A reply of "size" bytes. */
static JsonValue *cmd_big(const JsonValue *args, void *opaque, GError **error)
{
    int64_t size = 0;
    g_autofree char *s = NULL;

    if (!qmp_get_int_arg(args, "size", TRUE, &size, error))
        return NULL;
    s = g_malloc(size + 1);
    memset(s, 'y', size);
    s[size] = 0;
    return json_new_string(s);
}

/* Ends the loop after replying, like "quit" does. */
static JsonValue *cmd_stop_loop(const JsonValue *args, void *opaque, GError **error)
{
    Fixture *f = opaque;

    loop_quit(f->loop, 0);
    return json_new_object();
}

static const struct {
    const char *name;
    QmpCommandFn fn;
} test_commands[] = {
    { "echo", cmd_echo },
    { "fail", cmd_fail },
    { "no-device", cmd_no_device },
    { "add", cmd_add },
    { "emit", cmd_emit },
    { "big", cmd_big },
    { "stop-loop", cmd_stop_loop },
};

static int setup(void **state)
{
    g_autoptr(GError) err = NULL;
    Fixture *f = g_new0(Fixture, 1);
    g_autofree char *spec = NULL;

    f->dir = g_dir_make_tmp("test-qmp-XXXXXX", &err);
    assert_non_null(f->dir);
    f->path = g_build_filename(f->dir, "qmp.sock", NULL);
    spec = g_strdup_printf("unix:%s", f->path);
    f->loop = loop_new(&err);
    assert_non_null(f->loop);
    f->server = qmp_server_new(spec, f->loop, &err);
    if (!f->server)
        fail_msg("qmp_server_new: %s", err->message);
    for (size_t i = 0; i < G_N_ELEMENTS(test_commands); i++)
        qmp_server_register(f->server, test_commands[i].name, test_commands[i].fn, f);
    f->machine.loop = f->loop;
    f->machine.state = RUN_STATE_RUNNING;
    f->machine.cpus = 2;
    qmp_commands_register(f->server, &f->machine);
    f->thread = g_thread_new("loop", loop_thread, f);
    *state = f;
    return 0;
}

static void quit_loop(void *opaque)
{
    loop_quit(opaque, 0);
}

static void join_loop(Fixture *f)
{
    if (!f->thread)
        return;
    g_thread_join(f->thread);
    f->thread = NULL;
}

static int teardown(void **state)
{
    Fixture *f = *state;

    if (f->thread) {
        loop_call(f->loop, quit_loop, f->loop);
        join_loop(f);
    }
    qmp_server_free(f->server);
    /* The socket file goes with the server. */
    assert_int_equal(access(f->path, F_OK), -1);
    loop_free(f->loop);
    rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
    g_free(f);
    return 0;
}

/* Runs @fn on the loop thread and waits for it. */
typedef struct LoopJob {
    void (*fn)(Fixture *f, void *data);
    Fixture *f;
    void *data;
    GMutex lock;
    GCond cond;
    gboolean done;
} LoopJob;

static void loop_job_run(void *opaque)
{
    LoopJob *job = opaque;

    job->fn(job->f, job->data);
    g_mutex_lock(&job->lock);
    job->done = TRUE;
    g_cond_signal(&job->cond);
    g_mutex_unlock(&job->lock);
}

static void run_on_loop(Fixture *f, void (*fn)(Fixture *f, void *data), void *data)
{
    LoopJob job = { .fn = fn, .f = f, .data = data };
    gint64 deadline = g_get_monotonic_time() + TIMEOUT_MS * 1000;

    g_mutex_init(&job.lock);
    g_cond_init(&job.cond);
    loop_call(f->loop, loop_job_run, &job);
    g_mutex_lock(&job.lock);
    while (!job.done) {
        if (!g_cond_wait_until(&job.cond, &job.lock, deadline))
            fail_msg("the event loop did not run a call within %d ms", TIMEOUT_MS);
    }
    g_mutex_unlock(&job.lock);
    g_mutex_clear(&job.lock);
    g_cond_clear(&job.cond);
}

static void count_clients(Fixture *f, void *data)
{
    *(unsigned *)data = qmp_server_count_clients(f->server);
}

static unsigned server_clients(Fixture *f)
{
    unsigned n = 0;

    run_on_loop(f, count_clients, &n);
    return n;
}

/* --- a test client --- */

typedef struct TestClient {
    int fd;
    GString *buf;
    gboolean eof;
} TestClient;

static TestClient *tc_connect(Fixture *f)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    TestClient *c = g_new0(TestClient, 1);

    g_strlcpy(addr.sun_path, f->path, sizeof(addr.sun_path));
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    c->buf = g_string_new(NULL);
    return c;
}

static void tc_free(TestClient *c)
{
    if (!c)
        return;
    close(c->fd);
    g_string_free(c->buf, TRUE);
    g_free(c);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TestClient, tc_free)

/* Reads more; FALSE at EOF. Fails the test after @timeout_ms without data. */
static gboolean tc_fill(TestClient *c, int timeout_ms)
{
    struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
    char buf[65536];
    ssize_t n;

    if (c->eof)
        return FALSE;
    if (poll(&pfd, 1, timeout_ms) != 1)
        fail_msg("no data from the server within %d ms", timeout_ms);
    n = recv(c->fd, buf, sizeof(buf), 0);
    if (n < 0)
        fail_msg("recv: %s", g_strerror(errno));
    if (n == 0) {
        c->eof = TRUE;
        return FALSE;
    }
    g_string_append_len(c->buf, buf, n);
    return TRUE;
}

/* The next line without its CRLF, or NULL at EOF. */
static char *tc_read_line(TestClient *c)
{
    for (;;) {
        char *nl = memchr(c->buf->str, '\n', c->buf->len);

        if (nl) {
            size_t len = nl - c->buf->str;
            char *line;

            assert_true(len > 0 && c->buf->str[len - 1] == '\r');
            line = g_strndup(c->buf->str, len - 1);
            g_string_erase(c->buf, 0, len + 1);
            return line;
        }
        if (!tc_fill(c, TIMEOUT_MS))
            return NULL;
    }
}

static void tc_send(TestClient *c, const char *text)
{
    size_t len = strlen(text);

    assert_int_equal(send(c->fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void tc_expect(TestClient *c, const char *want)
{
    g_autofree char *line = tc_read_line(c);

    if (!line)
        fail_msg("EOF, expected: %s", want);
    assert_string_equal(line, want);
}

/* Sends @req and expects exactly @reply. */
static void tc_call(TestClient *c, const char *req, const char *reply)
{
    tc_send(c, req);
    tc_expect(c, reply);
}

/* Nothing more may arrive: the server answers a probe with its reply first. */
static void tc_expect_quiet(TestClient *c)
{
    tc_call(c, "{\"execute\": \"echo\", \"id\": \"probe\"}", "{\"return\": {}, \"id\": \"probe\"}");
}

static void tc_expect_eof(TestClient *c)
{
    while (tc_fill(c, TIMEOUT_MS))
        ;
}

static char *expected_greeting(void)
{
    unsigned major = 0, minor = 0, micro = 0;

    sscanf(VIREO_VERSION, "%u.%u.%u", &major, &minor, &micro);
    return g_strdup_printf("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": %u, \"minor\": %u, "
                           "\"major\": %u}, \"package\": \"vireo-vmm " VIREO_VERSION "\"}, "
                           "\"capabilities\": []}}", micro, minor, major);
}

static void tc_negotiate(TestClient *c)
{
    g_autofree char *greeting = expected_greeting();

    tc_expect(c, greeting);
    tc_call(c, "{\"execute\": \"qmp_capabilities\"}", "{\"return\": {}}");
}

/*
 * Reads an event and checks it is exactly QEMU's shape: timestamp first
 * (plausible now), then "event", then "data" if @data is not NULL.
 */
static void tc_expect_event(TestClient *c, const char *name, const char *data)
{
    g_autofree char *line = tc_read_line(c);
    g_autoptr(JsonValue) ev = NULL;
    g_autofree char *want = NULL;
    JsonValue *ts;
    int64_t sec = -1, usec = -1;

    if (!line)
        fail_msg("EOF, expected event %s", name);
    ev = json_parse(line, strlen(line), NULL);
    assert_non_null(ev);
    ts = json_object_get_object(ev, "timestamp");
    assert_non_null(ts);
    assert_true(json_object_get_int(ts, "seconds", &sec));
    assert_true(json_object_get_int(ts, "microseconds", &usec));
    assert_true(usec >= 0 && usec < 1000000);
    assert_true(llabs(sec - g_get_real_time() / G_USEC_PER_SEC) < 60);
    want = g_strdup_printf("{\"timestamp\": {\"seconds\": %" G_GINT64_FORMAT ", "
                           "\"microseconds\": %" G_GINT64_FORMAT "}, \"event\": \"%s\"%s%s}",
                           (gint64)sec, (gint64)usec, name, data ? ", \"data\": " : "",
                           data ? data : "");
    assert_string_equal(line, want);
}

/* --- tests --- */

static void test_greeting(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) c = tc_connect(f);
    g_autofree char *greeting = expected_greeting();
    g_autofree char *line = tc_read_line(c);

    assert_string_equal(line, greeting);
    /* Only the greeting: nothing else until we ask. */
    assert_int_equal(c->buf->len, 0);
}

static void test_negotiation(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) c = tc_connect(f);
    g_autoptr(TestClient) other = tc_connect(f);
    g_autofree char *greeting = expected_greeting();

    tc_expect(c, greeting);
    /* Every command, known or not, is refused before negotiation, with QEMU's words. */
    tc_call(c, "{\"execute\": \"query-status\"}",
            "{\"error\": {\"class\": \"CommandNotFound\", "
            "\"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}");
    tc_call(c, "{\"execute\": \"nope\", \"id\": 5}",
            "{\"id\": 5, \"error\": {\"class\": \"CommandNotFound\", "
            "\"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}");
    tc_call(c, "{\"execute\": \"query-commands\"}",
            "{\"error\": {\"class\": \"CommandNotFound\", "
            "\"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}");
    /* We offer no capability. */
    tc_call(c, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}}",
            "{\"error\": {\"class\": \"GenericError\", "
            "\"desc\": \"Capability 'oob' not available\"}}");
    tc_call(c, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": \"oob\"}}",
            "{\"error\": {\"class\": \"GenericError\", "
            "\"desc\": \"Invalid parameter type for 'enable', expected: array\"}}");
    tc_call(c, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"x\": 1}}",
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'x' is unexpected\"}}");

    /* Events skip a client that has not negotiated. */
    tc_negotiate(other);
    tc_send(other, "{\"execute\": \"emit\"}");
    tc_expect_event(other, "TEST_EVENT", "{\"n\": 1}");
    tc_expect(other, "{\"return\": {}}");
    /* The reply to qmp_capabilities is the very next line: no event was queued. */
    tc_call(c, "{\"execute\": \"qmp_capabilities\", \"id\": {\"z\": 1}}",
            "{\"return\": {}, \"id\": {\"z\": 1}}");
    tc_call(c, "{\"execute\": \"qmp_capabilities\"}",
            "{\"error\": {\"class\": \"CommandNotFound\", "
            "\"desc\": \"Capabilities negotiation is already complete, command ignored\"}}");
    tc_call(c, "{\"execute\": \"qmp_capabilities\", \"id\": 2}",
            "{\"id\": 2, \"error\": {\"class\": \"CommandNotFound\", "
            "\"desc\": \"Capabilities negotiation is already complete, command ignored\"}}");
    /* Now commands work, and events arrive. */
    tc_expect_quiet(c);
    tc_send(other, "{\"execute\": \"emit\"}");
    tc_expect_event(other, "TEST_EVENT", "{\"n\": 1}");
    tc_expect(other, "{\"return\": {}}");
    tc_expect_event(c, "TEST_EVENT", "{\"n\": 1}");
}

static void test_id_echo(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) c = tc_connect(f);
    static const char *const ids[] = {
        "1", "-7", "\"x\"", "\"\"", "null", "true", "1.5", "[1, {\"a\": null}]", "{\"z\": 1}",
        "{\"deep\": [[[\"\\u00E9\\n\"]]]}", "9223372036854775807",
    };

    tc_negotiate(c);
    for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
        g_autofree char *ok = g_strdup_printf("{\"execute\": \"echo\", \"id\": %s}", ids[i]);
        g_autofree char *ok_reply = g_strdup_printf("{\"return\": {}, \"id\": %s}", ids[i]);
        /* "id" may come first; errors still carry it. */
        g_autofree char *bad = g_strdup_printf("{\"id\": %s, \"execute\": \"nope\"}", ids[i]);
        g_autofree char *bad_reply = g_strdup_printf(
            "{\"id\": %s, \"error\": {\"class\": \"CommandNotFound\", "
            "\"desc\": \"The command nope has not been found\"}}", ids[i]);

        tc_call(c, ok, ok_reply);
        tc_call(c, bad, bad_reply);
    }
    /* Arguments come back in the reply, in order. */
    tc_call(c, "{\"execute\": \"echo\", \"arguments\": {\"b\": 1, \"a\": [true, \"\\u0001\"]}, "
            "\"id\": 3}",
            "{\"return\": {\"b\": 1, \"a\": [true, \"\\u0001\"]}, \"id\": 3}");
}

static void test_unknown_command(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) c = tc_connect(f);

    tc_negotiate(c);
    tc_call(c, "{\"execute\": \"nope\"}",
            "{\"error\": {\"class\": \"CommandNotFound\", "
            "\"desc\": \"The command nope has not been found\"}}");
    tc_call(c, "{\"execute\": \"\"}",
            "{\"error\": {\"class\": \"CommandNotFound\", "
            "\"desc\": \"The command  has not been found\"}}");
    tc_expect_quiet(c);
}

static void test_bad_requests(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) c = tc_connect(f);
    static const struct {
        const char *req, *reply;
    } cases[] = {
        /* Valid JSON of the wrong shape: an error, but the connection stays (QEMU). */
        { "[1]", "{\"error\": {\"class\": \"GenericError\", "
                 "\"desc\": \"QMP input must be a JSON object\"}}" },
        { "\"abc\"", "{\"error\": {\"class\": \"GenericError\", "
                     "\"desc\": \"QMP input must be a JSON object\"}}" },
        { "{}", "{\"error\": {\"class\": \"GenericError\", "
                "\"desc\": \"QMP input lacks member 'execute'\"}}" },
        { "{\"id\": 4}", "{\"id\": 4, \"error\": {\"class\": \"GenericError\", "
                         "\"desc\": \"QMP input lacks member 'execute'\"}}" },
        { "{\"exec\": 1}", "{\"error\": {\"class\": \"GenericError\", "
                           "\"desc\": \"QMP input member 'exec' is unexpected\"}}" },
        { "{\"execute\": 1}", "{\"error\": {\"class\": \"GenericError\", "
                              "\"desc\": \"QMP input member 'execute' must be a string\"}}" },
        { "{\"execute\": \"echo\", \"arguments\": []}",
          "{\"error\": {\"class\": \"GenericError\", "
          "\"desc\": \"QMP input member 'arguments' must be an object\"}}" },
        { "{\"execute\": \"echo\", \"control\": 1, \"id\": 9}",
          "{\"id\": 9, \"error\": {\"class\": \"GenericError\", "
          "\"desc\": \"QMP input member 'control' is unexpected\"}}" },
        { "{\"exec-oob\": \"echo\"}", "{\"error\": {\"class\": \"GenericError\", "
                                      "\"desc\": \"QMP input member 'exec-oob' is unexpected\"}}" },
    };

    tc_negotiate(c);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
        tc_call(c, cases[i].req, cases[i].reply);
    tc_expect_quiet(c);
}

static void test_arguments(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) c = tc_connect(f);

    tc_negotiate(c);
    tc_call(c, "{\"execute\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}",
            "{\"return\": {\"sum\": 3}}");
    tc_call(c, "{\"execute\": \"add\", \"arguments\": {\"a\": 1, \"verbose\": true, "
            "\"label\": \"total\"}}",
            "{\"return\": {\"total\": 1, \"verbose\": true}}");
    tc_call(c, "{\"execute\": \"add\", \"arguments\": {\"a\": 1, \"x\": 2}}",
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'x' is unexpected\"}}");
    tc_call(c, "{\"execute\": \"add\"}",
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'a' is missing\"}}");
    tc_call(c, "{\"execute\": \"add\", \"arguments\": {}}",
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'a' is missing\"}}");
    tc_call(c, "{\"execute\": \"add\", \"arguments\": {\"a\": \"1\"}}",
            "{\"error\": {\"class\": \"GenericError\", "
            "\"desc\": \"Invalid parameter type for 'a', expected: integer\"}}");
    tc_call(c, "{\"execute\": \"add\", \"arguments\": {\"a\": 1.0}}",
            "{\"error\": {\"class\": \"GenericError\", "
            "\"desc\": \"Invalid parameter type for 'a', expected: integer\"}}");
    tc_call(c, "{\"execute\": \"add\", \"arguments\": {\"a\": 1, \"verbose\": 1}}",
            "{\"error\": {\"class\": \"GenericError\", "
            "\"desc\": \"Invalid parameter type for 'verbose', expected: boolean\"}}");
    tc_call(c, "{\"execute\": \"add\", \"arguments\": {\"a\": 1, \"label\": null}}",
            "{\"error\": {\"class\": \"GenericError\", "
            "\"desc\": \"Invalid parameter type for 'label', expected: string\"}}");
    /* Commands without parameters refuse any. */
    tc_call(c, "{\"execute\": \"query-status\", \"arguments\": {\"x\": 1}, \"id\": 3}",
            "{\"id\": 3, \"error\": {\"class\": \"GenericError\", "
            "\"desc\": \"Parameter 'x' is unexpected\"}}");
    tc_call(c, "{\"execute\": \"query-status\", \"arguments\": {}}",
            "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}}");
}

static void test_errors(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) c = tc_connect(f);

    tc_negotiate(c);
    /* Any GError is a GenericError; QMP_ERROR keeps its class. */
    tc_call(c, "{\"execute\": \"fail\", \"id\": 1}",
            "{\"id\": 1, \"error\": {\"class\": \"GenericError\", "
            "\"desc\": \"disk 'x' failed: EIO\"}}");
    tc_call(c, "{\"execute\": \"no-device\"}",
            "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'nic0' not found\"}}");
    tc_call(c, "{\"execute\": \"query-commands\"}",
            "{\"return\": [{\"name\": \"qmp_capabilities\"}, {\"name\": \"query-commands\"}, "
            "{\"name\": \"echo\"}, {\"name\": \"fail\"}, {\"name\": \"no-device\"}, "
            "{\"name\": \"add\"}, {\"name\": \"emit\"}, {\"name\": \"big\"}, "
            "{\"name\": \"stop-loop\"}, {\"name\": \"query-status\"}, {\"name\": \"stop\"}, "
            "{\"name\": \"cont\"}, {\"name\": \"system_powerdown\"}, "
            "{\"name\": \"system_reset\"}, {\"name\": \"quit\"}, "
            "{\"name\": \"query-cpus-fast\"}, {\"name\": \"query-version\"}, "
            "{\"name\": \"query-name\"}, {\"name\": \"balloon\"}, "
            "{\"name\": \"query-balloon\"}]}");
    /* QEMU's words without a balloon; a size is checked first. */
    tc_call(c, "{\"execute\": \"query-balloon\"}",
            "{\"error\": {\"class\": \"DeviceNotActive\", "
            "\"desc\": \"No balloon device has been activated\"}}");
    tc_call(c, "{\"execute\": \"balloon\", \"arguments\": {\"value\": 1048576}}",
            "{\"error\": {\"class\": \"DeviceNotActive\", "
            "\"desc\": \"No balloon device has been activated\"}}");
    tc_call(c, "{\"execute\": \"balloon\", \"arguments\": {\"value\": 0}}",
            "{\"error\": {\"class\": \"GenericError\", "
            "\"desc\": \"Parameter 'target' expects a size\"}}");
}

/* Requests split anywhere, or several in one write, are answered in order. */
static void test_pipelining(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) c = tc_connect(f);
    static const char req[] =
        "{\"execute\": \"echo\", \"arguments\": {\"s\": \"}{\\\"\"}, \"id\": 1}\r\n"
        "{\"execute\": \"add\", \"arguments\": {\"a\": 2}, \"id\": 2}"
        "{\"execute\":\"echo\",\"id\":3}   \n\n";

    tc_negotiate(c);
    for (size_t i = 0; i < sizeof(req) - 1; i++) {
        char one[2] = { req[i], 0 };
        tc_send(c, one);
    }
    tc_expect(c, "{\"return\": {\"s\": \"}{\\\"\"}, \"id\": 1}");
    tc_expect(c, "{\"return\": {\"sum\": 2}, \"id\": 2}");
    tc_expect(c, "{\"return\": {}, \"id\": 3}");
    tc_send(c, req);
    tc_expect(c, "{\"return\": {\"s\": \"}{\\\"\"}, \"id\": 1}");
    tc_expect(c, "{\"return\": {\"sum\": 2}, \"id\": 2}");
    tc_expect(c, "{\"return\": {}, \"id\": 3}");
}

static void test_events_many_clients(void **state)
{
    Fixture *f = *state;
    TestClient *clients[12];

    for (size_t i = 0; i < G_N_ELEMENTS(clients); i++) {
        clients[i] = tc_connect(f);
        tc_negotiate(clients[i]);
    }
    tc_send(clients[0], "{\"execute\": \"emit\", \"id\": 1}");
    /* The event goes out before the reply that caused it, as in QEMU. */
    tc_expect_event(clients[0], "TEST_EVENT", "{\"n\": 1}");
    tc_expect(clients[0], "{\"return\": {}, \"id\": 1}");
    for (size_t i = 1; i < G_N_ELEMENTS(clients); i++) {
        tc_expect_event(clients[i], "TEST_EVENT", "{\"n\": 1}");
        tc_expect_quiet(clients[i]);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(clients); i++)
        tc_free(clients[i]);
}

static void check_hostile(Fixture *f, const char *input, size_t len, const char *desc)
{
    g_autoptr(TestClient) good = tc_connect(f);
    g_autoptr(TestClient) bad = tc_connect(f);
    g_autofree char *reply = g_strdup_printf(
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"%s\"}}", desc);
    size_t off = 0;

    tc_negotiate(good);
    tc_negotiate(bad);
    assert_int_equal(server_clients(f), 2);
    /* The server may stop reading (EPIPE) once it has seen enough. */
    while (off < len) {
        ssize_t n = send(bad->fd, input + off, len - off, MSG_NOSIGNAL);
        if (n < 0) {
            assert_int_equal(errno, EPIPE);
            break;
        }
        off += n;
    }
    tc_expect(bad, reply);
    /* Then the connection is closed: a clean EOF, not ECONNRESET. */
    tc_expect_eof(bad);
    assert_int_equal(bad->buf->len, 0);
    assert_int_equal(server_clients(f), 1);
    /* The other client and the VM carry on. */
    tc_call(good, "{\"execute\": \"query-status\"}",
            "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}}");
    tc_send(good, "{\"execute\": \"emit\"}");
    tc_expect_event(good, "TEST_EVENT", "{\"n\": 1}");
    tc_expect(good, "{\"return\": {}}");
}

static void test_garbage_disconnects(void **state)
{
    Fixture *f = *state;
    g_autoptr(GString) deep = g_string_new(NULL);
    g_autoptr(GString) huge = g_string_new("{\"execute\": \"echo\", \"arguments\": {\"s\": \"");

    check_hostile(f, "garbage\n", 8,
                  "JSON parse error, unexpected 'g', expected a value at byte 0");
    check_hostile(f, "{\"execute\": \"echo\" 1}", 21,
                  "JSON parse error, unexpected '1', expected ',' or '}' at byte 19");
    check_hostile(f, "{\"execute\": \"ech\xc0\x80\"}", 21,
                  "JSON parse error, invalid UTF-8 in string at byte 16");
    check_hostile(f, "{\"execute\": \"echo\", \"id\": 1, \"id\": 2}", 37,
                  "JSON parse error, duplicate key at byte 29");
    check_hostile(f, "}", 1, "JSON parse error, unexpected '}', expected a value at byte 0");
    for (int i = 0; i <= JSON_MAX_DEPTH; i++)
        g_string_append_c(deep, '[');
    check_hostile(f, deep->str, deep->len,
                  "JSON parse error, JSON nesting deeper than 128 levels");
    /* Over the request size limit: refused without buffering it all. */
    while (huge->len <= QMP_MAX_REQUEST_SIZE + 4096)
        g_string_append(huge, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    check_hostile(f, huge->str, huge->len,
                  "JSON parse error, JSON message longer than 1048576 bytes");
}

/* A request just under the limit is fine. */
static void test_large_request(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) c = tc_connect(f);
    g_autoptr(GString) req = g_string_new("{\"execute\": \"echo\", \"arguments\": {\"s\": \"");
    g_autofree char *line = NULL;

    tc_negotiate(c);
    while (req->len < QMP_MAX_REQUEST_SIZE - 100)
        g_string_append_c(req, 'z');
    g_string_append(req, "\"}, \"id\": 1}");
    tc_send(c, req->str);
    line = tc_read_line(c);
    assert_non_null(line);
    assert_true(g_str_has_prefix(line, "{\"return\": {\"s\": \"zzz"));
    assert_true(g_str_has_suffix(line, "zzz\"}, \"id\": 1}"));
}

/* A client that never reads is dropped at the output bound; others are not. */
static void test_slow_reader(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) reader = tc_connect(f);
    g_autoptr(TestClient) sleeper = tc_connect(f);
    const int64_t size = 64 * 1024;
    size_t sent = 0;
    int rounds;

    tc_negotiate(reader);
    tc_negotiate(sleeper);
    for (rounds = 0; rounds < 200 && server_clients(f) == 2; rounds++) {
        g_autofree char *req = g_strdup_printf("{\"execute\": \"emit\", \"arguments\": "
                                               "{\"size\": %" G_GINT64_FORMAT "}}", (gint64)size);
        g_autofree char *ev = NULL;

        tc_send(reader, req);
        ev = tc_read_line(reader);
        assert_non_null(ev);
        assert_true(g_str_has_suffix(ev, "xxx\"}}"));
        tc_expect(reader, "{\"return\": {}}");
        sent += strlen(ev) + 2;
    }
    assert_int_equal(server_clients(f), 1);
    /* Not before the bound was passed (the socket buffer holds some more). */
    assert_true(sent > QMP_DEFAULT_OUTPUT_LIMIT);
    assert_true(sent < QMP_DEFAULT_OUTPUT_LIMIT + 4 * 1024 * 1024);
    /* The sleeper finds part of its output, then EOF. */
    tc_expect_eof(sleeper);
    assert_true(sleeper->buf->len > 0);
    tc_expect_quiet(reader);
}

static void set_small_limit(Fixture *f, void *data)
{
    qmp_server_set_output_limit(f->server, 1);
}

/* The bound counts only what the socket does not take: a client that reads is fine. */
static void test_output_limit_setting(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) c = tc_connect(f);
    gint64 deadline;

    tc_negotiate(c);
    run_on_loop(f, set_small_limit, NULL);
    /* Fits in the socket buffer: nothing waits, so the client stays. */
    tc_call(c, "{\"execute\": \"big\", \"arguments\": {\"size\": 10}}",
            "{\"return\": \"yyyyyyyyyy\"}");
    assert_int_equal(server_clients(f), 1);
    /*
     * 4 MiB cannot all go into the socket while we do not read, so more
     * than the 1-byte bound waits and the client is dropped.
     */
    tc_send(c, "{\"execute\": \"big\", \"arguments\": {\"size\": 4194304}}");
    deadline = g_get_monotonic_time() + TIMEOUT_MS * 1000;
    while (server_clients(f) != 0) {
        if (g_get_monotonic_time() > deadline)
            fail_msg("the client was not dropped");
        g_usleep(1000);
    }
    /* What the socket took is still readable, then EOF. */
    tc_expect_eof(c);
    assert_true(c->buf->len > 0 && c->buf->len < 4194304);
}

typedef struct Reader {
    TestClient *c;
    GPtrArray *lines;
} Reader;

static gpointer reader_thread(gpointer opaque)
{
    Reader *r = opaque;
    char *line;

    while ((line = tc_read_line(r->c)))
        g_ptr_array_add(r->lines, line);
    return NULL;
}

/* Output still queued when the loop ends goes out through qmp_server_flush(). */
static void test_flush(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) c = tc_connect(f);
    g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
    Reader r = { .c = c, .lines = lines };
    GThread *thread;
    int64_t size = 700 * 1024;
    g_autofree char *req = g_strdup_printf(
        "{\"execute\": \"big\", \"arguments\": {\"size\": %" G_GINT64_FORMAT "}, \"id\": 1}"
        "{\"execute\": \"stop-loop\", \"id\": 2}"
        "{\"execute\": \"echo\", \"id\": 3}", (gint64)size);

    tc_negotiate(c);
    /* Not reading yet: most of the 700 KiB reply stays queued in the server. */
    tc_send(c, req);
    join_loop(f);
    thread = g_thread_new("reader", reader_thread, &r);
    assert_true(qmp_server_flush(f->server, TIMEOUT_MS));
    /* Everything flushed; now drop the clients so the reader sees EOF. */
    qmp_server_free(f->server);
    f->server = NULL;
    g_thread_join(thread);
    /* Requests after the one that ended the loop are not run. */
    assert_int_equal(lines->len, 2);
    assert_int_equal(strlen(g_ptr_array_index(lines, 0)),
                     size + strlen("{\"return\": \"\", \"id\": 1}"));
    assert_string_equal(g_ptr_array_index(lines, 1), "{\"return\": {}, \"id\": 2}");
}

/* --- machine commands, on the fake Machine --- */

static void test_machine_commands(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) c = tc_connect(f);
    g_autoptr(TestClient) watcher = tc_connect(f);
    g_autofree char *version = NULL;
    unsigned major = 0, minor = 0, micro = 0;

    sscanf(VIREO_VERSION, "%u.%u.%u", &major, &minor, &micro);
    version = g_strdup_printf("{\"return\": {\"qemu\": {\"micro\": %u, \"minor\": %u, "
                              "\"major\": %u}, \"package\": \"vireo-vmm " VIREO_VERSION "\"}}",
                              micro, minor, major);
    tc_negotiate(c);
    tc_negotiate(watcher);
    tc_call(c, "{\"execute\": \"query-version\"}", version);
    tc_call(c, "{\"execute\": \"query-name\"}", "{\"return\": {\"name\": \"fake\\u00E9\"}}");
    tc_call(c, "{\"execute\": \"query-status\"}",
            "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}}");
    tc_call(c, "{\"execute\": \"query-cpus-fast\", \"id\": 7}",
            "{\"return\": [{\"thread-id\": 1000, \"props\": {\"core-id\": 0, \"thread-id\": 0, "
            "\"socket-id\": 0}, \"qom-path\": \"/machine/unattached/device[0]\", "
            "\"cpu-index\": 0, \"target\": \"x86_64\"}, {\"thread-id\": 1001, \"props\": "
            "{\"core-id\": 1, \"thread-id\": 0, \"socket-id\": 0}, \"qom-path\": "
            "\"/machine/unattached/device[1]\", \"cpu-index\": 1, \"target\": \"x86_64\"}], "
            "\"id\": 7}");

    tc_send(c, "{\"execute\": \"stop\"}");
    tc_expect_event(c, "STOP", NULL);
    tc_expect(c, "{\"return\": {}}");
    tc_expect_event(watcher, "STOP", NULL);
    tc_call(c, "{\"execute\": \"query-status\"}",
            "{\"return\": {\"status\": \"paused\", \"singlestep\": false, \"running\": false}}");
    tc_send(c, "{\"execute\": \"cont\"}");
    tc_expect_event(c, "RESUME", NULL);
    tc_expect(c, "{\"return\": {}}");
    tc_expect_event(watcher, "RESUME", NULL);

    tc_send(c, "{\"execute\": \"system_reset\"}");
    tc_expect_event(c, "RESET", "{\"guest\": false, \"reason\": \"host-qmp-system-reset\"}");
    tc_expect(c, "{\"return\": {}}");
    tc_expect_event(watcher, "RESET", "{\"guest\": false, \"reason\": \"host-qmp-system-reset\"}");

    tc_send(c, "{\"execute\": \"system_powerdown\"}");
    tc_expect_event(c, "POWERDOWN", NULL);
    tc_expect_event(c, "SHUTDOWN", "{\"guest\": true, \"reason\": \"guest-shutdown\"}");
    tc_expect(c, "{\"return\": {}}");
    tc_expect_event(watcher, "POWERDOWN", NULL);
    tc_expect_event(watcher, "SHUTDOWN", "{\"guest\": true, \"reason\": \"guest-shutdown\"}");
    tc_call(c, "{\"execute\": \"cont\"}",
            "{\"error\": {\"class\": \"GenericError\", "
            "\"desc\": \"the guest has shut down; it cannot be resumed\"}}");
}

static void test_machine_quit(void **state)
{
    Fixture *f = *state;
    g_autoptr(TestClient) c = tc_connect(f);
    g_autoptr(TestClient) watcher = tc_connect(f);

    tc_negotiate(c);
    tc_negotiate(watcher);
    tc_send(c, "{\"execute\": \"quit\", \"id\": \"q\"}{\"execute\": \"echo\"}");
    join_loop(f);
    assert_true(qmp_server_flush(f->server, TIMEOUT_MS));
    qmp_server_free(f->server);
    f->server = NULL;
    tc_expect_event(c, "SHUTDOWN", "{\"guest\": false, \"reason\": \"host-qmp-quit\"}");
    tc_expect(c, "{\"return\": {}, \"id\": \"q\"}");
    tc_expect_eof(c);
    assert_int_equal(c->buf->len, 0);
    tc_expect_event(watcher, "SHUTDOWN", "{\"guest\": false, \"reason\": \"host-qmp-quit\"}");
    tc_expect_eof(watcher);
}

/* --- creation and the socket file --- */

static void test_specs(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(Loop) loop = loop_new(&err);
    g_autofree char *dir = g_dir_make_tmp("test-qmp-XXXXXX", &err);
    g_autofree char *path = g_build_filename(dir, "s", NULL);
    g_autofree char *spec = g_strdup_printf("unix:%s", path);
    g_autofree char *long_spec = g_strdup_printf("unix:/tmp/%0200d", 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    QmpServer *s;
    int fd;

    static const char *const bad[] = { "tcp:localhost:4444", "unix:", "", "stdio", "unix" };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_clear_error(&err);
        assert_null(qmp_server_new(bad[i], loop, &err));
        assert_true(g_error_matches(err, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT));
        assert_non_null(strstr(err->message, "expected unix:PATH"));
    }
    g_clear_error(&err);
    assert_null(qmp_server_new(long_spec, loop, &err));
    assert_non_null(strstr(err->message, "too long"));

    /* A regular file is never replaced. */
    g_clear_error(&err);
    assert_true(g_file_set_contents(path, "precious", -1, NULL));
    assert_null(qmp_server_new(spec, loop, &err));
    assert_non_null(strstr(err->message, "not a socket"));
    assert_int_equal(unlink(path), 0);

    /* A socket nobody listens on is stale: replaced. */
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(fd);
    g_clear_error(&err);
    s = qmp_server_new(spec, loop, &err);
    assert_non_null(s);
    assert_string_equal(qmp_server_get_path(s), path);

    /* A live one is not taken over. */
    {
        g_autoptr(GError) err2 = NULL;
        assert_null(qmp_server_new(spec, loop, &err2));
        assert_non_null(strstr(err2->message, "another process listens"));
    }
    qmp_server_free(s);
    assert_int_equal(access(path, F_OK), -1);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_greeting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negotiation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_id_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_many_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_disconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_limit_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_quit, setup, teardown),
        cmocka_unit_test(test_specs),
    };

    /* A client we drop must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* TEST_FILTER=test_flush runs one test (a glob). */
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
