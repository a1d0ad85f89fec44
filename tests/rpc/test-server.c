/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Server and client over a socketpair. The server runs on its own
 * GMainContext in a thread (as in the daemon); the test drives an RpcClient
 * or a raw socket and checks the wire behaviour: the virsh handshake,
 * overlapping calls answered out of order and from other threads, the
 * outstanding-call limit, errors for unknown and unsupported procedures,
 * read-only and authorization rules, keepalive both ways, events with
 * per-domain filters, console streams (data, finish, abort, EOF, failure),
 * clients disconnecting with calls in flight, malformed packets, the
 * output limit, and big messages. And our client against libvirtd's
 * recorded answers: it must send what virsh sent, byte for byte.
 *
 * Usage: test-rpc-server CAPTURE_DIR
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "vireo/rpc-client.h"
#include "vireo/rpc-server.h"
#include "captures.h"

typedef struct Env {
    GMainContext *ctx;
    GMainLoop *loop;
    GThread *thread;
    RpcServer *srv;
    RpcClient *client;
    int raw;                        /* raw client end, or -1 */
    gboolean deny;                  /* authorize hook answer */

    gint inflight;                  /* atomic */
    gint max_inflight;              /* atomic */
    gint disconnected;              /* atomic */
    gint stream_finished;           /* atomic */
    gint stream_aborted;            /* atomic */
    RpcCall *held;                  /* atomic pointer */
} Env;

static Env *env;                    /* the current test's */
static const char *capture_dir;

/* ---------------------------------------------------------------- helpers */

typedef struct LoopCall {
    void (*fn)(gpointer);
    gpointer data;
    GMutex m;
    GCond cv;
    gboolean done;
} LoopCall;

static gboolean loop_call_run(gpointer data)
{
    LoopCall *lc = data;

    lc->fn(lc->data);
    g_mutex_lock(&lc->m);
    lc->done = TRUE;
    g_cond_signal(&lc->cv);
    g_mutex_unlock(&lc->m);
    return G_SOURCE_REMOVE;
}

/* Runs @fn in the server's loop thread and waits for it. */
static void in_loop(void (*fn)(gpointer), gpointer data)
{
    LoopCall lc = { .fn = fn, .data = data };

    g_mutex_init(&lc.m);
    g_cond_init(&lc.cv);
    g_main_context_invoke(env->ctx, loop_call_run, &lc);
    g_mutex_lock(&lc.m);
    while (!lc.done)
        g_cond_wait(&lc.cv, &lc.m);
    g_mutex_unlock(&lc.m);
    g_mutex_clear(&lc.m);
    g_cond_clear(&lc.cv);
}

/* Waits up to 10 s for *@counter >= @n, running the default context. */
static gboolean wait_for(gint *counter, gint n)
{
    gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    while (g_atomic_int_get(counter) < n) {
        if (g_get_monotonic_time() > end)
            return FALSE;
        while (g_main_context_iteration(NULL, FALSE))
            ;
        g_usleep(1000);
    }
    return TRUE;
}

static void raw_send(int fd, const RpcHeader *h, const RpcPayloadType *t, const void *v)
{
    g_autoptr(GBytes) pkt = rpc_packet_build(h, t, v, NULL);
    gsize len;
    const guint8 *p = g_bytes_get_data(pkt, &len);

    assert_int_equal(send(fd, p, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void raw_send_bytes(int fd, const void *p, gsize len)
{
    assert_int_equal(send(fd, p, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Next packet within @ms, or NULL on end of file (*eof set) or timeout. */
static GBytes *raw_recv(int fd, int ms, gboolean *eof)
{
    static RpcFramer f;
    static int framer_fd = -1;
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

    if (framer_fd != fd) {
        rpc_framer_clear(&f);
        framer_fd = fd;
    }
    if (eof)
        *eof = FALSE;
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        guint8 b;
        ssize_t n;
        GBytes *pkt = NULL;
        int left = (int)((end - g_get_monotonic_time()) / 1000);

        if (left < 0 || poll(&pfd, 1, left) <= 0)
            return NULL;
        /* One byte at a time: simple, and exercises the framer. */
        n = recv(fd, &b, 1, 0);
        if (n <= 0) {
            rpc_framer_clear(&f);
            if (eof)
                *eof = TRUE;
            return NULL;
        }
        assert_true(rpc_framer_push(&f, &b, 1, &pkt, NULL) == 1);
        if (pkt)
            return pkt;
    }
}

static void parse(GBytes *pkt, RpcHeader *h, const guint8 **payload, gsize *plen)
{
    gsize len;
    const guint8 *d = g_bytes_get_data(pkt, &len);

    assert_true(rpc_packet_parse(d, len, h, payload, plen, NULL));
}

/* Next non-keepalive packet. */
static GBytes *raw_recv_reply(int fd)
{
    for (;;) {
        GBytes *pkt = raw_recv(fd, 5000, NULL);
        RpcHeader h;
        const guint8 *p;
        gsize n;

        assert_non_null(pkt);
        parse(pkt, &h, &p, &n);
        if (h.prog != KEEPALIVE_PROGRAM)
            return pkt;
        g_bytes_unref(pkt);
    }
}

/* A raw call and its reply's error (NULL if the reply was OK). */
static RemoteError *raw_call(int fd, guint32 prog, gint32 proc, guint32 serial,
                             const RpcPayloadType *t, const void *args, RpcHeader *reply)
{
    RpcHeader h = { prog, 1, proc, RPC_CALL, serial, RPC_STATUS_OK };
    g_autoptr(GBytes) pkt = NULL;
    const guint8 *p;
    gsize n;
    RemoteError *e;
    XdrReader r;

    raw_send(fd, &h, t, args);
    pkt = raw_recv_reply(fd);
    parse(pkt, reply, &p, &n);
    assert_int_equal(reply->serial, serial);
    assert_int_equal(reply->type, RPC_REPLY);
    if (reply->status == RPC_STATUS_OK)
        return NULL;
    assert_int_equal(reply->status, RPC_STATUS_ERROR);
    e = g_new0(RemoteError, 1);
    xdr_reader_init(&r, p, n);
    assert_true(remote_error_decode(&r, e, NULL));
    assert_true(xdr_reader_finish(&r, NULL));
    return e;
}

static const RpcPayloadType *args_of(gint32 proc)
{
    return &rpc_protocol_find(REMOTE_PROGRAM, proc)->args;
}

/* ------------------------------------------------------------- handlers */

static void track_enter(void)
{
    gint now = g_atomic_int_add(&env->inflight, 1) + 1;
    gint max;

    while ((max = g_atomic_int_get(&env->max_inflight)) < now &&
           !g_atomic_int_compare_and_exchange(&env->max_inflight, max, now))
        ;
}

static void h_get_type(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectGetTypeRet ret = { .type = (char *)"TEST" };

    rpc_call_reply(call, &ret);
}

typedef struct Delayed {
    RpcCall *call;
    char *tag;
} Delayed;

static gboolean delayed_reply(gpointer data)
{
    Delayed *d = data;
    RemoteDomainLookupByNameRet ret = { .dom = { .name = d->tag, .id = 1 } };

    g_atomic_int_add(&env->inflight, -1);
    rpc_call_reply(d->call, &ret);
    g_free(d->tag);
    g_free(d);
    return G_SOURCE_REMOVE;
}

/* "delay:MS:TAG" answers TAG after MS milliseconds. */
static void h_lookup_by_name(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainLookupByNameArgs *a = args;
    g_auto(GStrv) parts = g_strsplit(a->name, ":", 3);
    Delayed *d;
    GSource *s;

    if (g_strv_length(parts) != 3) {
        rpc_call_fail(call, RPC_ERR_NO_DOMAIN, "no domain with matching name '%s'", a->name);
        return;
    }
    track_enter();
    d = g_new0(Delayed, 1);
    d->call = call;
    d->tag = g_strdup(parts[2]);
    s = g_timeout_source_new(atoi(parts[1]));
    g_source_set_callback(s, delayed_reply, d, NULL);
    g_source_attach(s, env->ctx);
    g_source_unref(s);
}

static gpointer xml_thread(gpointer data)
{
    RemoteDomainGetXmlDescRet ret = { .xml = (char *)"<domain from='worker'/>" };

    g_usleep(10000);
    rpc_call_reply(data, &ret);
    return NULL;
}

static void h_get_xml_desc(RpcCall *call, gpointer args, gpointer opaque)
{
    g_thread_unref(g_thread_new("worker", xml_thread, call));
}

static void h_lookup_by_id(RpcCall *call, gpointer args, gpointer opaque)
{
    g_atomic_pointer_set(&env->held, call);
}

static void h_destroy(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainDestroyArgs *a = args;

    rpc_server_emit_domain_lifecycle(env->srv, &a->dom, RPC_DOMAIN_EVENT_STOPPED, 1);
    rpc_call_reply(call, NULL);
}

static void h_capabilities(RpcCall *call, gpointer args, gpointer opaque)
{
    g_autofree char *big = g_malloc(3 * 1024 * 1024 + 1);
    RemoteConnectGetCapabilitiesRet ret = { .capabilities = big };

    for (gsize i = 0; i < 3 * 1024 * 1024; i++)
        big[i] = 'a' + i % 26;
    big[3 * 1024 * 1024] = 0;
    rpc_call_reply(call, &ret);
}

static void h_hostname(RpcCall *call, gpointer args, gpointer opaque)
{
    /* Over REMOTE_STRING_MAX: cannot be encoded. */
    g_autofree char *big = g_strnfill(REMOTE_STRING_MAX + 1, 'h');
    RemoteConnectGetHostnameRet ret = { .hostname = big };

    rpc_call_reply(call, &ret);
}

static void console_data(RpcStream *st, const guint8 *data, gsize len, gpointer opaque)
{
    g_autofree char *up = g_ascii_strup((const char *)data, len);

    rpc_stream_send(st, up, len);
}

static void console_finish(RpcStream *st, gpointer opaque)
{
    g_atomic_int_inc(&env->stream_finished);
    rpc_stream_unref(st);
}

static void console_abort(RpcStream *st, gpointer opaque)
{
    g_atomic_int_inc(&env->stream_aborted);
    rpc_stream_unref(st);
}

static void h_open_console(RpcCall *call, gpointer args, gpointer opaque)
{
    static const RpcStreamCallbacks cb = {
        .data = console_data, .finish = console_finish, .abort = console_abort,
    };
    RemoteDomainOpenConsoleArgs *a = args;
    const char *mode = a->dev_name ? a->dev_name : "";
    /* @args goes with the call: decide before completing it. */
    gboolean fail = !strcmp(mode, "fail"), eof = !strcmp(mode, "eof");
    gboolean do_abort = !strcmp(mode, "abort");
    /* The stream's reference is dropped by finish/abort. */
    RpcStream *st = rpc_call_open_stream(call, &cb, NULL);

    rpc_stream_send(st, "hi\n", 3);             /* before the reply: held until it */
    if (fail) {
        rpc_call_fail(call, RPC_ERR_OPERATION_FAILED, "no console");
        return;
    }
    rpc_call_reply(call, NULL);
    if (eof)
        rpc_stream_send_eof(st);
    if (do_abort) {
        rpc_stream_abort(st, rpc_remote_error_new(RPC_ERR_OPERATION_FAILED, RPC_FROM_STREAMS,
                                                  "console went away"));
        rpc_stream_unref(st);
    }
}

static gboolean authorize(const RpcPeerCred *cred, gpointer opaque)
{
    return !env->deny;
}

static void disconnected(RpcServerClient *client, gpointer opaque)
{
    g_atomic_int_inc(&env->disconnected);
}

/* ---------------------------------------------------------------- setup */

static gpointer server_thread(gpointer data)
{
    g_main_context_push_thread_default(env->ctx);
    g_main_loop_run(env->loop);
    g_main_context_pop_thread_default(env->ctx);
    return NULL;
}

static void start_full(const RpcServerLimits *limits, gboolean readonly, gboolean raw,
                       gboolean deny)
{
    static const RpcServerHooks hooks = { .authorize = authorize, .disconnected = disconnected };
    int sv[2];

    env = g_new0(Env, 1);
    env->deny = deny;
    env->raw = -1;
    env->ctx = g_main_context_new();
    env->loop = g_main_loop_new(env->ctx, FALSE);
    env->srv = rpc_server_new(env->ctx, limits);
    rpc_server_set_hooks(env->srv, &hooks, env);
    rpc_server_set_handler(env->srv, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_TYPE, h_get_type, NULL);
    rpc_server_set_handler(env->srv, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME,
                           h_lookup_by_name, NULL);
    rpc_server_set_handler(env->srv, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_GET_XML_DESC,
                           h_get_xml_desc, NULL);
    rpc_server_set_handler(env->srv, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_LOOKUP_BY_ID,
                           h_lookup_by_id, NULL);
    rpc_server_set_handler(env->srv, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_DESTROY, h_destroy, NULL);
    rpc_server_set_handler(env->srv, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_CAPABILITIES,
                           h_capabilities, NULL);
    rpc_server_set_handler(env->srv, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_HOSTNAME,
                           h_hostname, NULL);
    rpc_server_set_handler(env->srv, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_OPEN_CONSOLE,
                           h_open_console, NULL);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_non_null(rpc_server_add_connection(env->srv, sv[0], readonly, NULL));
    env->thread = g_thread_new("server", server_thread, NULL);
    if (raw) {
        env->raw = sv[1];
    } else {
        env->client = rpc_client_new_fd(sv[1], NULL);
        assert_non_null(env->client);
        rpc_client_set_keepalive(env->client, 0, 0);
    }
}

static void start(void)
{
    start_full(NULL, FALSE, FALSE, FALSE);
}

static void quit_loop(gpointer data)
{
    rpc_server_free(env->srv);
    g_main_loop_quit(env->loop);
}

static void stop(void)
{
    RpcCall *held = g_atomic_pointer_get(&env->held);

    if (env->client)
        rpc_client_free(env->client);
    if (env->raw >= 0)
        close(env->raw);
    if (held)
        rpc_call_reply(held, &(RemoteDomainLookupByIdRet) { .dom = { .name = (char *)"x" } });
    in_loop(quit_loop, NULL);
    g_thread_join(env->thread);
    /* Let deferred deliveries (completions after shutdown) run and free. */
    while (g_main_context_iteration(env->ctx, FALSE))
        ;
    g_main_loop_unref(env->loop);
    g_main_context_unref(env->ctx);
    g_free(env);
    env = NULL;
}

static void open_client(void)
{
    g_autoptr(GError) error = NULL;

    if (!rpc_client_open(env->client, "test:///default", 0, &error))
        fail_msg("open: %s", error->message);
}

/* ----------------------------------------------------------------- tests */

static void test_handshake(void **state)
{
    g_auto(RemoteConnectGetTypeRet) ret = { 0 };
    g_autoptr(GError) error = NULL;

    start();
    assert_int_equal(rpc_client_next_serial(env->client), 0);
    open_client();
    /* AUTH_LIST, SF(10), OPEN, SF(14), SF(15), REGISTER_CLOSE_CALLBACK: as virsh */
    assert_int_equal(rpc_client_next_serial(env->client), 6);
    assert_true(rpc_client_is_open(env->client));
    assert_true(rpc_client_call(env->client, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_TYPE,
                                NULL, &ret, &error));
    assert_string_equal(ret.type, "TEST");
    assert_true(rpc_client_close(env->client, &error));
    /* The server drops the connection after CONNECT_CLOSE. */
    assert_true(wait_for(&env->disconnected, 1));
    stop();
}

typedef struct Replies {
    gint count;                     /* atomic */
    char order[16];
    gboolean mismatch;
} Replies;

static void on_reply(RpcClient *c, gpointer ret, const GError *error, gpointer opaque)
{
    Replies *r = opaque;
    RemoteDomainLookupByNameRet *v = ret;
    gint n = g_atomic_int_get(&r->count);

    if (error || !v) {
        r->mismatch = TRUE;
    } else {
        r->order[n] = v->dom.name[0];
    }
    g_atomic_int_inc(&r->count);
}

static void test_overlapping_calls(void **state)
{
    Replies r = { 0 };
    static const char *const names[] = {
        "delay:200:a", "delay:150:b", "delay:100:c", "delay:50:d", "delay:0:e",
    };

    start();
    open_client();
    for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
        RemoteDomainLookupByNameArgs a = { .name = (char *)names[i] };

        rpc_client_call_async(env->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME,
                              &a, on_reply, &r);
    }
    assert_true(wait_for(&r.count, 5));
    assert_false(r.mismatch);
    /* Answered in the order the handlers finished, each to its own call. */
    assert_string_equal(r.order, "edcba");
    assert_int_equal(g_atomic_int_get(&env->max_inflight), 5);
    stop();
}

static void test_call_limit(void **state)
{
    RpcServerLimits limits = { .max_calls = 2 };
    Replies r = { 0 };

    start_full(&limits, FALSE, FALSE, FALSE);
    open_client();
    for (int i = 0; i < 8; i++) {
        RemoteDomainLookupByNameArgs a = { .name = (char *)"delay:20:x" };

        rpc_client_call_async(env->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME,
                              &a, on_reply, &r);
    }
    assert_true(wait_for(&r.count, 8));
    assert_false(r.mismatch);
    assert_int_equal(g_atomic_int_get(&env->max_inflight), 2);
    stop();
}

static void test_worker_thread_reply(void **state)
{
    RemoteDomainGetXmlDescArgs a = { .dom = { .name = (char *)"d" } };
    g_auto(RemoteDomainGetXmlDescRet) ret = { 0 };

    start();
    open_client();
    assert_true(rpc_client_call(env->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_GET_XML_DESC,
                                &a, &ret, NULL));
    assert_string_equal(ret.xml, "<domain from='worker'/>");
    stop();
}

static void expect_remote_error(guint32 prog, gint32 proc, const void *args, int code,
                                int domain, const char *message)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(RemoteError) rerr = NULL;
    gpointer ret = g_malloc0(256);

    assert_false(rpc_client_call_full(env->client, prog, proc, args, ret, &rerr, &error));
    g_free(ret);
    if (!g_error_matches(error, RPC_REMOTE_ERROR, code))
        fail_msg("proc %d: wanted code %d, got %s", proc, code, error->message);
    assert_string_equal(error->message, message);
    assert_non_null(rerr);
    assert_int_equal(rerr->domain, domain);
    assert_int_equal(rerr->level, RPC_ERR_LEVEL_ERROR);
}

static void test_unknown_procedures(void **state)
{
    RemoteDomainSuspendArgs dom = { .dom = { .name = (char *)"d" } };
    g_auto(RemoteConnectGetTypeRet) ret = { 0 };

    start();
    open_client();
    expect_remote_error(REMOTE_PROGRAM, 999, NULL, RPC_ERR_RPC, RPC_FROM_RPC,
                        "unknown procedure: 999");
    expect_remote_error(REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_ATTACH_DEVICE, NULL,
                        RPC_ERR_NO_SUPPORT, RPC_FROM_DOMAIN,
                        "this function is not supported by the connection driver: "
                        "virDomainAttachDevice");
    expect_remote_error(REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_SUSPEND, &dom,
                        RPC_ERR_NO_SUPPORT, RPC_FROM_DOMAIN,
                        "this function is not supported by the connection driver: "
                        "virDomainSuspend");
    expect_remote_error(0x20008087, 1, NULL, RPC_ERR_RPC, RPC_FROM_RPC,
                        "Cannot find program 536903815 version 1");
    /* The connection is still fine. */
    assert_true(rpc_client_call(env->client, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_TYPE,
                                NULL, &ret, NULL));
    stop();
}

static void test_not_open(void **state)
{
    RemoteConnectOpenArgs open = { .name = NULL };

    start();
    expect_remote_error(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_TYPE, NULL,
                        RPC_ERR_INTERNAL_ERROR, RPC_FROM_RPC,
                        "internal error: hypervisor connection not open");
    assert_true(rpc_client_call(env->client, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_OPEN,
                                &open, NULL, NULL));
    expect_remote_error(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_OPEN, &open,
                        RPC_ERR_INTERNAL_ERROR, RPC_FROM_RPC,
                        "internal error: connection already open");
    stop();
}

static void test_readonly(void **state)
{
    RemoteDomainDestroyArgs a = { .dom = { .name = (char *)"d" } };
    g_auto(RemoteConnectGetTypeRet) ret = { 0 };

    /* A read-only socket */
    start_full(NULL, TRUE, FALSE, FALSE);
    open_client();
    assert_true(rpc_client_call(env->client, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_TYPE,
                                NULL, &ret, NULL));
    expect_remote_error(REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_DESTROY, &a,
                        RPC_ERR_OPERATION_DENIED, RPC_FROM_DOMAIN,
                        "operation forbidden: read only access prevents virDomainDestroy");
    stop();

    /* A read-write socket, opened with VIR_CONNECT_RO */
    start();
    assert_true(rpc_client_open(env->client, NULL, RPC_CONNECT_RO, NULL));
    expect_remote_error(REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_DESTROY, &a,
                        RPC_ERR_OPERATION_DENIED, RPC_FROM_DOMAIN,
                        "operation forbidden: read only access prevents virDomainDestroy");
    stop();
}

static void test_auth_denied(void **state)
{
    g_autoptr(GError) error = NULL;
    g_auto(RemoteAuthListRet) auth = { 0 };

    start_full(NULL, FALSE, FALSE, TRUE);
    assert_true(rpc_client_call(env->client, REMOTE_PROGRAM, REMOTE_PROC_AUTH_LIST, NULL,
                                &auth, NULL));
    assert_int_equal(auth.n_types, 1);
    assert_int_equal(auth.types[0], REMOTE_AUTH_POLKIT);
    expect_remote_error(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_TYPE, NULL, RPC_ERR_RPC,
                        RPC_FROM_RPC, "authentication required");
    assert_false(rpc_client_open(env->client, "test:///default", 0, &error));
    assert_true(g_error_matches(error, RPC_REMOTE_ERROR, RPC_ERR_AUTH_FAILED));
    assert_true(g_str_has_prefix(error->message, "authentication failed: "));
    stop();

    /* The same peer is fine on a read-only socket. */
    start_full(NULL, TRUE, FALSE, TRUE);
    open_client();
    stop();
}

static void test_keepalive_server(void **state)
{
    RpcServerLimits limits = { .keepalive_interval = 1, .keepalive_count = 2 };
    g_auto(RemoteConnectGetTypeRet) ret = { 0 };
    RemoteConnectSupportsFeatureArgs feat = { .feature = RPC_FEATURE_PROGRAM_KEEPALIVE };
    RpcHeader h;
    guint pings = 0;
    gboolean eof = FALSE;
    gint64 t0;

    /* Our client answers the pings: the connection survives idle periods. */
    start_full(&limits, FALSE, FALSE, FALSE);
    open_client();
    g_usleep(3500 * 1000);
    assert_true(rpc_client_call(env->client, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_TYPE,
                                NULL, &ret, NULL));
    assert_int_equal(g_atomic_int_get(&env->disconnected), 0);
    stop();

    /* A raw peer that asks for keepalive and never answers is dropped. */
    start_full(&limits, FALSE, TRUE, FALSE);
    assert_null(raw_call(env->raw, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_SUPPORTS_FEATURE, 0,
                         args_of(REMOTE_PROC_CONNECT_SUPPORTS_FEATURE), &feat, &h));
    t0 = g_get_monotonic_time();
    while (!eof) {
        g_autoptr(GBytes) pkt = raw_recv(env->raw, 5000, &eof);
        const guint8 *p;
        gsize n;

        if (!pkt)
            break;
        parse(pkt, &h, &p, &n);
        assert_int_equal(h.prog, KEEPALIVE_PROGRAM);
        assert_int_equal(h.proc, KEEPALIVE_PROC_PING);
        assert_int_equal(h.type, RPC_MESSAGE);
        pings++;
    }
    assert_true(eof);
    assert_int_equal(pings, 2);
    /* ping at 1 s, 2 s, give up at 3 s */
    assert_true(g_get_monotonic_time() - t0 > 2500 * 1000);
    assert_true(wait_for(&env->disconnected, 1));
    stop();
}

/* The test plays a server that answers calls but never pings back. */
typedef struct MuteServer {
    int fd;
    gint pings;                     /* atomic */
    gint stop;                      /* atomic */
} MuteServer;

static gpointer mute_server(gpointer data)
{
    MuteServer *m = data;

    while (!g_atomic_int_get(&m->stop)) {
        gboolean eof;
        g_autoptr(GBytes) pkt = raw_recv(m->fd, 100, &eof);
        RpcHeader h;
        const guint8 *p;
        gsize n;
        RemoteAuthType none = REMOTE_AUTH_NONE;
        RemoteAuthListRet auth = { .n_types = 1, .types = &none };
        RemoteConnectSupportsFeatureRet yes = { .supported = 1 };
        const RpcProcedure *proc;

        if (eof)
            break;
        if (!pkt)
            continue;
        parse(pkt, &h, &p, &n);
        if (h.prog == KEEPALIVE_PROGRAM) {
            if (h.proc == KEEPALIVE_PROC_PING)
                g_atomic_int_inc(&m->pings);
            continue;
        }
        proc = rpc_protocol_find(h.prog, h.proc);
        h.type = RPC_REPLY;
        if (h.proc == REMOTE_PROC_AUTH_LIST)
            raw_send(m->fd, &h, &proc->ret, &auth);
        else if (h.proc == REMOTE_PROC_CONNECT_SUPPORTS_FEATURE)
            raw_send(m->fd, &h, &proc->ret, &yes);
        else
            raw_send(m->fd, &h, NULL, NULL);
    }
    return NULL;
}

static gint client_closed;
static int client_closed_code;

static void on_closed(RpcClient *c, const GError *reason, gpointer opaque)
{
    client_closed_code = reason->code;
    g_atomic_int_inc(&client_closed);
}

static void test_keepalive_client(void **state)
{
    int sv[2];
    MuteServer m = { 0 };
    GThread *t;
    RpcClient *c;
    RpcClientCallbacks cb = { .closed = on_closed };
    g_autoptr(GError) error = NULL;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    m.fd = sv[0];
    t = g_thread_new("mute", mute_server, &m);
    c = rpc_client_new_fd(sv[1], NULL);
    rpc_client_set_callbacks(c, &cb, NULL, NULL);
    rpc_client_set_keepalive(c, 1, 2);
    g_atomic_int_set(&client_closed, 0);
    assert_true(rpc_client_open(c, "test:///default", 0, NULL));
    assert_true(wait_for(&client_closed, 1));
    assert_int_equal(client_closed_code, RPC_ERROR_TIMEOUT);
    assert_int_equal(g_atomic_int_get(&m.pings), 2);
    assert_false(rpc_client_call(c, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_TYPE, NULL,
                                 &(RemoteConnectGetTypeRet) { 0 }, &error));
    assert_true(g_error_matches(error, RPC_ERROR, RPC_ERROR_TIMEOUT));
    g_atomic_int_set(&m.stop, 1);
    g_thread_join(t);
    rpc_client_free(c);
    close(sv[0]);
}

typedef struct Events {
    gint count;                     /* atomic */
    gint32 callback_ids[16];
    gint32 legacy;
    int last_event;
    char *last_name;
} Events;

static void on_event(RpcClient *c, const RpcProcedure *proc, gconstpointer msg, gpointer opaque)
{
    Events *ev = opaque;

    if (proc->proc == REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE) {
        const RemoteDomainEventCallbackLifecycleMsg *m = msg;

        ev->callback_ids[m->callbackID]++;
        ev->last_event = m->msg.event;
        g_free(ev->last_name);
        ev->last_name = g_strdup(m->msg.dom.name);
    } else if (proc->proc == REMOTE_PROC_DOMAIN_EVENT_LIFECYCLE) {
        ev->legacy++;
    }
    g_atomic_int_inc(&ev->count);
}

static gint32 register_any(const RemoteNonnullDomain *dom)
{
    RemoteConnectDomainEventCallbackRegisterAnyArgs a = {
        .eventID = RPC_DOMAIN_EVENT_ID_LIFECYCLE, .dom = (RemoteNonnullDomain *)dom,
    };
    RemoteConnectDomainEventCallbackRegisterAnyRet ret;

    assert_true(rpc_client_call(env->client, REMOTE_PROGRAM,
                                REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, &a, &ret,
                                NULL));
    return ret.callbackID;
}

static void test_events(void **state)
{
    Events ev = { 0 };
    RpcClientCallbacks cb = { .event = on_event };
    RemoteNonnullDomain x = { .name = (char *)"x", .uuid = { 1 }, .id = 1 };
    RemoteNonnullDomain y = { .name = (char *)"y", .uuid = { 2 }, .id = 2 };
    RemoteConnectDomainEventRegisterRet legacy;
    RemoteConnectDomainEventCallbackDeregisterAnyArgs dereg = { .callbackID = 0 };
    RemoteConnectDomainEventCallbackRegisterAnyArgs bad = { .eventID = RPC_DOMAIN_EVENT_ID_LAST };
    RemoteDomainDestroyArgs destroy = { .dom = y };

    start();
    rpc_client_set_callbacks(env->client, &cb, &ev, NULL);
    open_client();
    assert_int_equal(register_any(NULL), 0);
    assert_int_equal(register_any(&x), 1);
    assert_true(rpc_client_call(env->client, REMOTE_PROGRAM,
                                REMOTE_PROC_CONNECT_DOMAIN_EVENT_REGISTER, NULL, &legacy, NULL));
    assert_int_equal(legacy.cb_registered, 1);
    expect_remote_error(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
                        &bad, RPC_ERR_INTERNAL_ERROR, RPC_FROM_RPC,
                        "internal error: unsupported event ID 27");

    /* For y: the all-domains callback and the legacy registration. */
    rpc_server_emit_domain_lifecycle(env->srv, &y, RPC_DOMAIN_EVENT_STARTED, 0);
    assert_true(wait_for(&ev.count, 2));
    assert_int_equal(ev.callback_ids[0], 1);
    assert_int_equal(ev.callback_ids[1], 0);
    assert_int_equal(ev.legacy, 1);
    assert_string_equal(ev.last_name, "y");

    /* For x: all three. */
    rpc_server_emit_domain_lifecycle(env->srv, &x, RPC_DOMAIN_EVENT_SUSPENDED, 0);
    assert_true(wait_for(&ev.count, 5));
    assert_int_equal(ev.callback_ids[0], 2);
    assert_int_equal(ev.callback_ids[1], 1);
    assert_int_equal(ev.legacy, 2);
    assert_int_equal(ev.last_event, RPC_DOMAIN_EVENT_SUSPENDED);

    /* From a handler, before its reply. */
    assert_true(rpc_client_call(env->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_DESTROY,
                                &destroy, NULL, NULL));
    assert_true(wait_for(&ev.count, 7));
    assert_int_equal(ev.last_event, RPC_DOMAIN_EVENT_STOPPED);

    /* Deregistered callbacks get nothing. */
    assert_true(rpc_client_call(env->client, REMOTE_PROGRAM,
                                REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
                                &dereg, NULL, NULL));
    expect_remote_error(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
                        &dereg, RPC_ERR_INTERNAL_ERROR, RPC_FROM_RPC,
                        "internal error: domain event 0 not registered");
    rpc_server_emit_domain_lifecycle(env->srv, &x, RPC_DOMAIN_EVENT_RESUMED, 0);
    assert_true(wait_for(&ev.count, 9));
    assert_int_equal(ev.callback_ids[0], 3);
    assert_int_equal(ev.callback_ids[1], 2);
    stop();
    g_free(ev.last_name);
}

typedef struct StreamLog {
    GString *data;
    gint eof;                       /* atomic */
    gint errors;                    /* atomic */
    char *error;
} StreamLog;

static void st_data(RpcClientStream *st, const guint8 *data, gsize len, gpointer opaque)
{
    StreamLog *l = opaque;

    if (len)
        g_string_append_len(l->data, (const char *)data, len);
    else
        g_atomic_int_inc(&l->eof);
}

static void st_error(RpcClientStream *st, const GError *error, gpointer opaque)
{
    StreamLog *l = opaque;

    g_free(l->error);
    l->error = g_strdup(error->message);
    g_atomic_int_inc(&l->errors);
}

static gboolean wait_data(StreamLog *l, const char *want)
{
    gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    while (strcmp(l->data->str, want)) {
        if (g_get_monotonic_time() > end)
            return FALSE;
        while (g_main_context_iteration(NULL, FALSE))
            ;
        g_usleep(1000);
    }
    return TRUE;
}

static RpcClientStream *open_console(const char *mode, StreamLog *l, GError **error)
{
    static const RpcClientStreamCallbacks cb = { .data = st_data, .error = st_error };
    RemoteDomainOpenConsoleArgs a = { .dom = { .name = (char *)"d" }, .dev_name = (char *)mode };

    g_string_truncate(l->data, 0);
    return rpc_client_stream_open(env->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_OPEN_CONSOLE,
                                  &a, &cb, l, error);
}

static void test_streams(void **state)
{
    StreamLog l = { .data = g_string_new(NULL) };
    RpcClientStream *st;
    g_autoptr(GError) error = NULL;
    g_autofree char *big = g_strnfill(1000000, 'q');
    g_autofree char *big_up = g_strnfill(1000000, 'Q');

    start();
    open_client();

    /* Data both ways (the banner was sent before the reply), then finish. */
    st = open_console(NULL, &l, NULL);
    assert_non_null(st);
    assert_true(wait_data(&l, "hi\n"));
    assert_true(rpc_client_stream_send(st, "hello", 5, NULL));
    assert_true(wait_data(&l, "hi\nHELLO"));
    /* Bigger than a packet's worth of stream data. */
    g_string_truncate(l.data, 0);
    assert_true(rpc_client_stream_send(st, big, 1000000, NULL));
    assert_true(wait_data(&l, big_up));
    assert_true(rpc_client_stream_finish(st, NULL));
    assert_true(wait_for(&env->stream_finished, 1));
    assert_false(rpc_client_stream_send(st, "x", 1, NULL));
    rpc_client_stream_free(st);

    /* The server ends the data; the client finishes. */
    st = open_console("eof", &l, NULL);
    assert_true(wait_for(&l.eof, 1));
    assert_string_equal(l.data->str, "hi\n");
    assert_true(rpc_client_stream_finish(st, NULL));
    assert_true(wait_for(&env->stream_finished, 2));
    rpc_client_stream_free(st);

    /* The server aborts with an error. */
    st = open_console("abort", &l, NULL);
    assert_true(wait_for(&l.errors, 1));
    assert_string_equal(l.error, "operation failed: console went away");
    rpc_client_stream_free(st);

    /* The call fails: no stream, and the server's callbacks hear of it. */
    assert_null(open_console("fail", &l, &error));
    assert_true(g_error_matches(error, RPC_REMOTE_ERROR, RPC_ERR_OPERATION_FAILED));
    assert_true(wait_for(&env->stream_aborted, 1));

    /* The client aborts. */
    st = open_console(NULL, &l, NULL);
    assert_true(wait_data(&l, "hi\n"));
    assert_true(rpc_client_stream_abort(st, NULL));
    assert_true(wait_for(&env->stream_aborted, 2));
    rpc_client_stream_free(st);

    /* A client going away aborts its streams. */
    st = open_console(NULL, &l, NULL);
    assert_true(wait_data(&l, "hi\n"));
    rpc_client_stream_free(st);
    assert_true(wait_for(&env->stream_aborted, 3));
    st = open_console(NULL, &l, NULL);
    assert_true(wait_data(&l, "hi\n"));
    rpc_client_free(env->client);
    env->client = NULL;
    assert_true(wait_for(&env->stream_aborted, 4));
    rpc_client_stream_free(st);
    stop();
    g_string_free(l.data, TRUE);
    g_free(l.error);
}

typedef struct SyncCall {
    gboolean ok;
    GError *error;
} SyncCall;

static gpointer held_call_thread(gpointer data)
{
    SyncCall *sc = data;
    RemoteDomainLookupByIdArgs a = { .id = 1 };
    g_auto(RemoteDomainLookupByIdRet) ret = { 0 };

    sc->ok = rpc_client_call(env->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_LOOKUP_BY_ID, &a,
                             &ret, &sc->error);
    return NULL;
}

static void close_all_clients(gpointer data)
{
    RpcServer *srv = data;

    /* There is one: the test's. Reach it through the held call. */
    rpc_server_client_close(rpc_call_get_client(g_atomic_pointer_get(&env->held)), FALSE);
    (void)srv;
}

static void test_disconnect_midcall(void **state)
{
    RpcCall *call;
    SyncCall sc = { 0 };
    GThread *t;
    RemoteDomainLookupByIdArgs a = { .id = 1 };

    /* The client goes away; the handler completes later. */
    start();
    open_client();
    rpc_client_call_async(env->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_LOOKUP_BY_ID, &a,
                          NULL, NULL);
    while (!g_atomic_pointer_get(&env->held))
        g_usleep(1000);
    rpc_client_free(env->client);
    env->client = NULL;
    assert_true(wait_for(&env->disconnected, 1));
    call = g_atomic_pointer_get(&env->held);
    assert_true(rpc_call_is_cancelled(call));
    g_atomic_pointer_set(&env->held, NULL);
    rpc_call_reply(call, &(RemoteDomainLookupByIdRet) { .dom = { .name = (char *)"late" } });
    stop();

    /* The server drops the client: a waiting call fails, the handler completes later. */
    start();
    open_client();
    t = g_thread_new("caller", held_call_thread, &sc);
    while (!g_atomic_pointer_get(&env->held))
        g_usleep(1000);
    in_loop(close_all_clients, env->srv);
    g_thread_join(t);
    assert_false(sc.ok);
    assert_true(g_error_matches(sc.error, RPC_ERROR, RPC_ERROR_CLOSED));
    g_clear_error(&sc.error);
    stop();         /* completes the held call */
}

static void test_malformed(void **state)
{
    RpcHeader h;
    g_autoptr(RemoteError) e1 = NULL, e2 = NULL, e3 = NULL, e4 = NULL, e5 = NULL;
    RemoteError *ok;
    RemoteConnectSupportsFeatureArgs feat = { .feature = 14 };
    /* CONNECT_OPEN args without the flags word */
    static const guint8 short_open[] = {
        0, 0, 0, 40, 0x20, 0x00, 0x80, 0x86, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0,
        0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 'x', 0, 0, 0,
    };
    static const guint8 too_short[] = { 0, 0, 0, 8, 0, 0, 0, 0 };
    gboolean eof;
    GBytes *pkt;

    start_full(NULL, FALSE, TRUE, FALSE);
    raw_send_bytes(env->raw, short_open, sizeof(short_open));
    pkt = raw_recv_reply(env->raw);
    {
        const guint8 *p;
        gsize n;
        XdrReader r;

        parse(pkt, &h, &p, &n);
        assert_int_equal(h.serial, 7);
        assert_int_equal(h.status, RPC_STATUS_ERROR);
        e1 = g_new0(RemoteError, 1);
        xdr_reader_init(&r, p, n);
        assert_true(remote_error_decode(&r, e1, NULL));
        assert_string_equal(e1->message, "Unable to decode message payload");
        assert_int_equal(e1->code, RPC_ERR_RPC);
        g_bytes_unref(pkt);
    }
    /* Trailing bytes after the args. */
    {
        RpcHeader c = { REMOTE_PROGRAM, 1, REMOTE_PROC_AUTH_LIST, RPC_CALL, 8, RPC_STATUS_OK };
        guint8 junk[4] = { 1, 2, 3, 4 };
        g_autoptr(GBytes) b = rpc_packet_build_raw(&c, junk, 4, NULL);

        raw_send_bytes(env->raw, g_bytes_get_data(b, NULL), g_bytes_get_size(b));
        pkt = raw_recv_reply(env->raw);
        parse(pkt, &h, &(const guint8 *) { NULL }, &(gsize) { 0 });
        assert_int_equal(h.status, RPC_STATUS_ERROR);
        g_bytes_unref(pkt);
    }
    /* A CALL with a status. */
    {
        RpcHeader c = { REMOTE_PROGRAM, 1, REMOTE_PROC_AUTH_LIST, RPC_CALL, 9, RPC_STATUS_CONTINUE };
        const guint8 *p;
        gsize n;
        XdrReader r;

        raw_send(env->raw, &c, NULL, NULL);
        pkt = raw_recv_reply(env->raw);
        parse(pkt, &h, &p, &n);
        e2 = g_new0(RemoteError, 1);
        xdr_reader_init(&r, p, n);
        assert_true(remote_error_decode(&r, e2, NULL));
        assert_string_equal(e2->message, "Unexpected message status 2");
        g_bytes_unref(pkt);
    }
    /* Packets that expect no answer are dropped: REPLY, MESSAGE, unknown program. */
    {
        RpcHeader r1 = { REMOTE_PROGRAM, 1, REMOTE_PROC_AUTH_LIST, RPC_REPLY, 10, 0 };
        RpcHeader r2 = { REMOTE_PROGRAM, 1, REMOTE_PROC_AUTH_LIST, RPC_MESSAGE, 11, 0 };
        RpcHeader r3 = { 0x12345678, 1, 1, RPC_MESSAGE, 12, 0 };
        RpcHeader r4 = { REMOTE_PROGRAM, 1, REMOTE_PROC_AUTH_LIST, 99, 13, 0 };

        raw_send(env->raw, &r1, NULL, NULL);
        raw_send(env->raw, &r2, NULL, NULL);
        raw_send(env->raw, &r3, NULL, NULL);
        raw_send(env->raw, &r4, NULL, NULL);
    }
    /* An event procedure called as a procedure; fd passing. */
    e3 = raw_call(env->raw, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE, 14,
                  NULL, NULL, &h);
    assert_string_equal(e3->message, "unknown procedure: 318");
    {
        RpcHeader c = { REMOTE_PROGRAM, 1, REMOTE_PROC_AUTH_LIST, RPC_CALL_WITH_FDS, 15, 0 };
        const guint8 *p;
        gsize n;
        XdrReader r;

        raw_send(env->raw, &c, NULL, NULL);
        pkt = raw_recv_reply(env->raw);
        parse(pkt, &h, &p, &n);
        assert_int_equal(h.serial, 15);
        e4 = g_new0(RemoteError, 1);
        xdr_reader_init(&r, p, n);
        assert_true(remote_error_decode(&r, e4, NULL));
        assert_string_equal(e4->message, "file descriptor passing is not supported");
        g_bytes_unref(pkt);
    }
    /* Still talking: the next reply is to serial 16, nothing came for 10-13. */
    ok = raw_call(env->raw, REMOTE_PROGRAM, REMOTE_PROC_AUTH_LIST, 16, NULL, NULL, &h);
    assert_null(ok);
    e5 = raw_call(env->raw, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_SUPPORTS_FEATURE, 17,
                  args_of(REMOTE_PROC_CONNECT_SUPPORTS_FEATURE), &feat, &h);
    assert_string_equal(e5->message, "internal error: hypervisor connection not open");
    /* A length word that cannot be framed ends the connection. */
    raw_send_bytes(env->raw, too_short, sizeof(too_short));
    assert_null(raw_recv(env->raw, 5000, &eof));
    assert_true(eof);
    assert_true(wait_for(&env->disconnected, 1));
    stop();

    /* 32 MiB announced, a few bytes sent, then hang up. */
    start_full(NULL, FALSE, TRUE, FALSE);
    {
        static const guint8 huge[] = { 0x02, 0x00, 0x00, 0x04, 0x20, 0x00, 0x80, 0x86 };

        raw_send_bytes(env->raw, huge, sizeof(huge));
        close(env->raw);
        env->raw = -1;
        assert_true(wait_for(&env->disconnected, 1));
    }
    stop();
}

static void test_output_limit(void **state)
{
    RpcServerLimits limits = { .max_output = 64 * 1024 };
    RpcHeader h;
    RemoteConnectOpenArgs open = { .name = NULL };
    RemoteConnectDomainEventCallbackRegisterAnyArgs reg = { .eventID = 0 };
    g_autofree char *name = g_strnfill(60000, 'n');
    RemoteNonnullDomain dom = { .name = name };
    int sndbuf = 4096;

    start_full(&limits, FALSE, TRUE, FALSE);
    setsockopt(env->raw, SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
    assert_null(raw_call(env->raw, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_OPEN, 0,
                         args_of(REMOTE_PROC_CONNECT_OPEN), &open, &h));
    assert_null(raw_call(env->raw, REMOTE_PROGRAM,
                         REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, 1,
                         args_of(REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY), &reg,
                         &h));
    /* The client reads nothing more; events pile up until the server gives up. */
    for (int i = 0; i < 2000 && !g_atomic_int_get(&env->disconnected); i++) {
        rpc_server_emit_domain_lifecycle(env->srv, &dom, RPC_DOMAIN_EVENT_STARTED, 0);
        g_usleep(200);
    }
    assert_true(wait_for(&env->disconnected, 1));
    stop();
}

static void test_big_messages(void **state)
{
    g_auto(RemoteConnectGetCapabilitiesRet) caps = { 0 };

    start();
    open_client();
    assert_true(rpc_client_call(env->client, REMOTE_PROGRAM,
                                REMOTE_PROC_CONNECT_GET_CAPABILITIES, NULL, &caps, NULL));
    assert_int_equal(strlen(caps.capabilities), 3 * 1024 * 1024);
    assert_int_equal(caps.capabilities[3 * 1024 * 1024 - 1], 'a' + (3 * 1024 * 1024 - 1) % 26);
    /* A reply that cannot be encoded becomes libvirtd's error. */
    expect_remote_error(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_HOSTNAME, NULL, RPC_ERR_RPC,
                        RPC_FROM_RPC, "Unable to encode message payload");
    stop();
}

static void test_connect_close_raw(void **state)
{
    RpcHeader h;
    RemoteConnectOpenArgs open = { .name = (char *)"qemu:///system" };
    gboolean eof;

    start_full(NULL, FALSE, TRUE, FALSE);
    assert_null(raw_call(env->raw, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_OPEN, 0,
                         args_of(REMOTE_PROC_CONNECT_OPEN), &open, &h));
    assert_null(raw_call(env->raw, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_CLOSE, 1, NULL, NULL, &h));
    assert_null(raw_recv(env->raw, 5000, &eof));
    assert_true(eof);
    stop();
}

/* Plays libvirtd from a capture: checks each packet the client sends, answers as recorded. */
typedef struct Replay {
    int fd;
    GPtrArray *pkts;
    guint matched;                  /* client packets equal to the capture's */
    guint mismatched;
} Replay;

static gpointer replay_server(gpointer data)
{
    Replay *r = data;

    for (guint i = 0; i < r->pkts->len; i++) {
        CapturePacket *c = g_ptr_array_index(r->pkts, i);

        if (c->to_server) {
            g_autoptr(GBytes) got = raw_recv(r->fd, 5000, NULL);

            if (got && g_bytes_equal(got, c->bytes)) {
                r->matched++;
            } else {
                g_autofree char *g = got ? bytes_to_hex(got) : g_strdup("(nothing)");
                g_autofree char *w = bytes_to_hex(c->bytes);

                g_printerr("packet %u: got %s\n            want %s\n", c->index, g, w);
                r->mismatched++;
            }
        } else {
            raw_send_bytes(r->fd, g_bytes_get_data(c->bytes, NULL), g_bytes_get_size(c->bytes));
        }
    }
    return NULL;
}

static void test_client_replays_virsh(void **state)
{
    int sv[2];
    Replay r = { 0 };
    GThread *t;
    RpcClient *c;
    g_auto(RemoteConnectGetTypeRet) type = { 0 };
    RemoteConnectGetVersionRet ver = { 0 };
    g_autoptr(GError) error = NULL;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    r.fd = sv[0];
    r.pkts = captures_load_one(capture_dir, "version");
    t = g_thread_new("libvirtd", replay_server, &r);
    c = rpc_client_new_fd(sv[1], NULL);
    rpc_client_set_keepalive(c, 0, 0);
    /* virsh -c qemu+unix:///system?socket=... version */
    if (!rpc_client_open(c, "qemu:///system", 0, &error))
        fail_msg("open: %s", error->message);
    assert_true(rpc_client_call(c, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_TYPE, NULL, &type, NULL));
    assert_true(rpc_client_call(c, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_VERSION, NULL, &ver,
                                NULL));
    assert_true(rpc_client_close(c, NULL));
    g_thread_join(t);
    rpc_client_free(c);
    close(sv[0]);
    assert_string_equal(type.type, "QEMU");
    assert_int_equal(ver.hv_ver, 7002022);
    assert_int_equal(r.mismatched, 0);
    assert_int_equal(r.matched, 10);
    g_ptr_array_unref(r.pkts);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_overlapping_calls),
        cmocka_unit_test(test_call_limit),
        cmocka_unit_test(test_worker_thread_reply),
        cmocka_unit_test(test_unknown_procedures),
        cmocka_unit_test(test_not_open),
        cmocka_unit_test(test_readonly),
        cmocka_unit_test(test_auth_denied),
        cmocka_unit_test(test_keepalive_server),
        cmocka_unit_test(test_keepalive_client),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_disconnect_midcall),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_big_messages),
        cmocka_unit_test(test_connect_close_raw),
        cmocka_unit_test(test_client_replays_virsh),
    };

    if (argc != 2) {
        g_printerr("usage: %s CAPTURE_DIR\n", argv[0]);
        return 2;
    }
    capture_dir = argv[1];
    return cmocka_run_group_tests(tests, NULL, NULL);
}
