/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Golden vectors: every packet libvirt 9.0.0's virsh, python3-libvirt,
 * virt-admin and libvirtd exchanged in the reference captures decodes with
 * our typed structs and re-encodes to the same bytes; packets built by hand
 * from typed values (including libvirt-style errors and events) equal the
 * captured ones; the framer splits a byte stream into the same packets
 * however it is cut; random mutations of the captured packets never crash
 * the decoder and whatever decodes re-encodes canonically.
 *
 * Usage: test-codec CAPTURE_DIR
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "captures.h"

static const char *capture_dir;

static const guint8 test_uuid[16] = {
    0xc7, 0xa5, 0xfd, 0xbd, 0xcd, 0xaf, 0x94, 0x55,
    0x92, 0x6a, 0xd6, 0x5c, 0x16, 0xdb, 0x18, 0x09,
};

static void assert_bytes_equal(GBytes *got, GBytes *want, const char *what)
{
    if (!g_bytes_equal(got, want)) {
        g_autofree char *g = bytes_to_hex(got);
        g_autofree char *w = bytes_to_hex(want);

        fail_msg("%s differs:\n got  %s\n want %s", what, g, w);
    }
}

/* Packet @index (1-based) of capture @name. */
static GBytes *capture_packet(const char *name, guint index)
{
    g_autoptr(GPtrArray) pkts = captures_load_one(capture_dir, name);
    CapturePacket *p;

    assert_true(index >= 1 && index <= pkts->len);
    p = g_ptr_array_index(pkts, index - 1);
    return g_bytes_ref(p->bytes);
}

static void test_every_packet_roundtrips(void **state)
{
    g_autoptr(GPtrArray) pkts = captures_load(capture_dir);
    guint to_server = 0, to_client = 0;
    g_autoptr(GHashTable) procs = g_hash_table_new(g_direct_hash, g_direct_equal);

    assert_true(pkts->len > 400);
    for (guint i = 0; i < pkts->len; i++) {
        CapturePacket *p = g_ptr_array_index(pkts, i);
        g_autoptr(GError) error = NULL;
        gsize len;
        const guint8 *data = g_bytes_get_data(p->bytes, &len);
        g_autoptr(GBytes) again = codec_roundtrip(data, len, &error);
        g_autofree char *what = g_strdup_printf("%s packet %u", p->capture, p->index);

        if (!again)
            fail_msg("%s: %s", what, error->message);
        assert_bytes_equal(again, p->bytes, what);
        if (p->to_server)
            to_server++;
        else
            to_client++;
        g_hash_table_add(procs, GUINT_TO_POINTER(((const guint8 *)data)[15] |
                                                 ((const guint8 *)data)[14] << 8));
    }
    /* Both directions, and every procedure the captures use (33 + keepalive + admin). */
    assert_true(to_server > 200 && to_client > 200);
    assert_true(g_hash_table_size(procs) >= 33);
}

/* The handshake packets every virsh command sends, built from typed values. */
static void test_build_handshake(void **state)
{
    RpcHeader h = { REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, REMOTE_PROC_AUTH_LIST,
                    RPC_CALL, 0, RPC_STATUS_OK };
    RemoteAuthType none = REMOTE_AUTH_NONE;
    RemoteAuthListRet auth = { .n_types = 1, .types = &none };
    RemoteConnectSupportsFeatureArgs feat = { .feature = RPC_FEATURE_PROGRAM_KEEPALIVE };
    RemoteConnectOpenArgs open = { .name = (char *)"qemu:///system", .flags = 0 };
    const RpcProcedure *p;
    g_autoptr(GBytes) b1 = NULL, b2 = NULL, b3 = NULL, b5 = NULL, b6 = NULL;
    g_autoptr(GBytes) w1 = capture_packet("version", 1);
    g_autoptr(GBytes) w2 = capture_packet("version", 2);
    g_autoptr(GBytes) w3 = capture_packet("version", 3);
    g_autoptr(GBytes) w5 = capture_packet("version", 5);
    g_autoptr(GBytes) w6 = capture_packet("version", 6);

    p = rpc_protocol_find(REMOTE_PROGRAM, REMOTE_PROC_AUTH_LIST);
    b1 = rpc_packet_build(&h, &p->args, NULL, NULL);
    assert_bytes_equal(b1, w1, "AUTH_LIST call");
    h.type = RPC_REPLY;
    b2 = rpc_packet_build(&h, &p->ret, &auth, NULL);
    assert_bytes_equal(b2, w2, "AUTH_LIST reply");

    p = rpc_protocol_find(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_SUPPORTS_FEATURE);
    h = (RpcHeader) { REMOTE_PROGRAM, 1, p->proc, RPC_CALL, 1, RPC_STATUS_OK };
    b3 = rpc_packet_build(&h, &p->args, &feat, NULL);
    assert_bytes_equal(b3, w3, "SUPPORTS_FEATURE call");

    p = rpc_protocol_find(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_OPEN);
    h = (RpcHeader) { REMOTE_PROGRAM, 1, p->proc, RPC_CALL, 2, RPC_STATUS_OK };
    b5 = rpc_packet_build(&h, &p->args, &open, NULL);
    assert_bytes_equal(b5, w5, "CONNECT_OPEN call");
    h.type = RPC_REPLY;
    b6 = rpc_packet_build(&h, &p->ret, NULL, NULL);
    assert_bytes_equal(b6, w6, "CONNECT_OPEN reply");
}

/* Replies with domains, lists and 64-bit values. */
static void test_build_replies(void **state)
{
    RemoteNonnullDomain dom = { .name = (char *)"lvrpc-test", .id = 3 };
    RemoteConnectListAllDomainsRet list = { .n_domains = 1, .domains = &dom, .ret = 1 };
    RemoteConnectGetVersionRet ver = { .hv_ver = 7002022 };
    RemoteDomainGetInfoRet info = {
        .state = RPC_DOMAIN_RUNNING, .maxMem = 65536, .memory = 65536, .nrVirtCpu = 1,
        .cpuTime = 1240000000,
    };
    char none[] = "none", zero[] = "0";
    RemoteNodeGetSecurityModelRet model = {
        .n_model = 5, .model = none, .n_doi = 2, .doi = zero,
    };
    char *msg = (char *)"tainted: running with undesirable elevated privileges";
    RemoteDomainGetMessagesRet msgs = { .n_msgs = 1, .msgs = &msg };
    const RpcProcedure *p;
    RpcHeader h = { REMOTE_PROGRAM, 1, 0, RPC_REPLY, 0, RPC_STATUS_OK };
    struct {
        gint32 proc;
        const void *ret;
        const char *capture;
        guint index;
    } cases[] = {
        { REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS, &list, "list-all-running", 14 },
        { REMOTE_PROC_CONNECT_GET_VERSION, &ver, "version", 16 },
        { REMOTE_PROC_DOMAIN_GET_INFO, &info, "dominfo-running", 18 },
        { REMOTE_PROC_NODE_GET_SECURITY_MODEL, &model, "dominfo-running", 26 },
        { REMOTE_PROC_DOMAIN_GET_MESSAGES, &msgs, "dominfo-running", 30 },
    };

    memcpy(dom.uuid, test_uuid, 16);
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GBytes) want = capture_packet(cases[i].capture, cases[i].index);
        g_autoptr(GBytes) got = NULL;
        const guint8 *w = g_bytes_get_data(want, NULL);

        p = rpc_protocol_find(REMOTE_PROGRAM, cases[i].proc);
        h.proc = p->proc;
        h.serial = (guint32)w[20] << 24 | w[21] << 16 | w[22] << 8 | w[23];
        got = rpc_packet_build(&h, &p->ret, cases[i].ret, NULL);
        assert_bytes_equal(got, want, p->name);
    }
}

/* libvirt's error reply for an unknown domain, built with our helper. */
static void test_build_error(void **state)
{
    g_autoptr(GBytes) want = capture_packet("error-dominfo-nosuchdomain", 14);
    RpcHeader call = { REMOTE_PROGRAM, 1, REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME, RPC_CALL, 6,
                       RPC_STATUS_OK };
    g_autoptr(RemoteError) e = rpc_remote_error_new(RPC_ERR_NO_DOMAIN, RPC_FROM_QEMU,
                                                    "no domain with matching name '%s'",
                                                    "no-such-domain");
    g_autoptr(GBytes) got = rpc_packet_build_error(&call, RPC_REPLY, e, NULL);
    g_autoptr(GError) gerr = NULL;

    assert_bytes_equal(got, want, "no-such-domain error");
    assert_string_equal(e->message,
                        "Domain not found: no domain with matching name 'no-such-domain'");
    rpc_remote_error_to_gerror(e, &gerr);
    assert_true(g_error_matches(gerr, RPC_REMOTE_ERROR, RPC_ERR_NO_DOMAIN));
    assert_string_equal(gerr->message, e->message);
}

/* A lifecycle event (callback style) and keepalive, from typed values. */
static void test_build_messages(void **state)
{
    RemoteDomainEventCallbackLifecycleMsg ev = {
        .callbackID = 0,
        .msg = { .dom = { .name = (char *)"lvrpc-test", .id = 4 },
                 .event = RPC_DOMAIN_EVENT_SUSPENDED, .detail = 0 },
    };
    RpcHeader h = { REMOTE_PROGRAM, 1, REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE,
                    RPC_MESSAGE, 1, RPC_STATUS_OK };
    const RpcProcedure *p = rpc_protocol_find(REMOTE_PROGRAM, h.proc);
    g_autoptr(GPtrArray) pkts = captures_load_one(capture_dir, "event-all-loop");
    g_autoptr(GBytes) got = NULL;
    g_autoptr(GBytes) ping = rpc_packet_keepalive(KEEPALIVE_PROC_PING);
    g_autoptr(GBytes) pong = rpc_packet_keepalive(KEEPALIVE_PROC_PONG);
    gboolean seen_event = FALSE, seen_ping = FALSE, seen_pong = FALSE;

    memcpy(ev.msg.dom.uuid, test_uuid, 16);
    got = rpc_packet_build(&h, &p->args, &ev, NULL);
    for (guint i = 0; i < pkts->len; i++) {
        CapturePacket *c = g_ptr_array_index(pkts, i);

        seen_event |= g_bytes_equal(c->bytes, got);
        seen_ping |= g_bytes_equal(c->bytes, ping) && !c->to_server;
        seen_pong |= g_bytes_equal(c->bytes, pong) && c->to_server;
    }
    assert_true(seen_event);
    assert_true(seen_ping);
    assert_true(seen_pong);
}

/* Decoded values match what virsh printed (virsh-stdout.txt). */
static void test_decoded_values(void **state)
{
    g_autoptr(GBytes) pkt = capture_packet("dominfo", 18);
    RpcHeader h;
    const guint8 *payload;
    gsize len, plen;
    const guint8 *data = g_bytes_get_data(pkt, &len);
    g_auto(RemoteDomainGetInfoRet) info = { 0 };
    g_auto(RemoteNodeGetSecurityModelRet) model = { 0 };
    const RpcProcedure *p = rpc_protocol_find(REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_GET_INFO);
    g_autoptr(GBytes) mpkt = capture_packet("dominfo", 26);

    assert_true(rpc_packet_parse(data, len, &h, &payload, &plen, NULL));
    assert_int_equal(h.proc, REMOTE_PROC_DOMAIN_GET_INFO);
    assert_true(rpc_payload_decode(&p->ret, payload, plen, &info, NULL));
    assert_int_equal(info.state, RPC_DOMAIN_SHUTOFF);
    assert_int_equal(info.maxMem, 65536);
    assert_int_equal(info.nrVirtCpu, 1);

    data = g_bytes_get_data(mpkt, &len);
    p = rpc_protocol_find(REMOTE_PROGRAM, REMOTE_PROC_NODE_GET_SECURITY_MODEL);
    assert_true(rpc_packet_parse(data, len, &h, &payload, &plen, NULL));
    assert_true(rpc_payload_decode(&p->ret, payload, plen, &model, NULL));
    /* libvirt counts the terminating NUL. */
    assert_int_equal(model.n_model, 5);
    assert_string_equal(model.model, "none");
    assert_int_equal(model.n_doi, 2);
    assert_string_equal(model.doi, "0");
}

/* A whole conversation as one byte stream, cut at random: same packets out. */
static void test_framer_random_cuts(void **state)
{
    g_autoptr(GPtrArray) pkts = captures_load_one(capture_dir, "dominfo-running");
    g_autoptr(GByteArray) stream = g_byte_array_new();
    g_autoptr(GRand) rand = g_rand_new_with_seed(42);

    for (guint i = 0; i < pkts->len; i++) {
        CapturePacket *c = g_ptr_array_index(pkts, i);

        g_byte_array_append(stream, g_bytes_get_data(c->bytes, NULL),
                            g_bytes_get_size(c->bytes));
    }
    for (int round = 0; round < 200; round++) {
        RpcFramer f;
        gsize off = 0;
        guint n = 0;

        rpc_framer_init(&f);
        while (off < stream->len) {
            gsize want = g_rand_int_range(rand, 1, 300);
            gsize cut = MIN(stream->len - off, want);
            gsize used = 0;

            while (used < cut) {
                GBytes *pkt = NULL;
                gssize r = rpc_framer_push(&f, stream->data + off + used, cut - used, &pkt, NULL);

                assert_true(r > 0);
                used += r;
                if (pkt) {
                    CapturePacket *c = g_ptr_array_index(pkts, n++);

                    assert_true(g_bytes_equal(pkt, c->bytes));
                    g_bytes_unref(pkt);
                }
            }
            off += cut;
        }
        assert_int_equal(n, pkts->len);
        assert_false(rpc_framer_busy(&f));
        rpc_framer_clear(&f);
    }
}

static void test_framer_bad_lengths(void **state)
{
    static const guint32 bad[] = { 0, 4, 27, RPC_PACKET_MAX + 1, 0x80000000u, 0xffffffffu };
    static const guint32 good[] = { 28, RPC_PACKET_MAX };

    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
        RpcFramer f;
        guint32 be = GUINT32_TO_BE(bad[i]);
        GBytes *pkt = NULL;
        g_autoptr(GError) error = NULL;

        rpc_framer_init(&f);
        assert_int_equal(rpc_framer_push(&f, (guint8 *)&be, 4, &pkt, &error), -1);
        assert_true(g_error_matches(error, RPC_ERROR, RPC_ERROR_PROTOCOL));
        assert_null(pkt);
        rpc_framer_clear(&f);
    }
    for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
        RpcFramer f;
        guint32 be = GUINT32_TO_BE(good[i]);
        GBytes *pkt = NULL;

        rpc_framer_init(&f);
        assert_int_equal(rpc_framer_push(&f, (guint8 *)&be, 4, &pkt, NULL), 4);
        assert_true(rpc_framer_busy(&f));
        rpc_framer_clear(&f);
    }
}

static const guint32 interesting[] = {
    0, 1, 2, 3, 4, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000u,
    0xfffffffeu, 0xffffffffu, 16384, 16385, 4194304, 4194305, 33554432,
};

/*
 * Random mutations of the captured packets: never a crash or a leak
 * (ASan), and whatever decodes re-encodes canonically.
 */
static void test_mutations(void **state)
{
    g_autoptr(GPtrArray) pkts = captures_load(capture_dir);
    const char *env = g_getenv("VIREO_RPC_MUTATIONS");
    guint rounds = env ? (guint)g_ascii_strtoull(env, NULL, 10) : 100000;
    g_autoptr(GRand) rand = g_rand_new_with_seed(0x5eed);
    guint decoded = 0;

    for (guint round = 0; round < rounds; round++) {
        CapturePacket *c = g_ptr_array_index(pkts, g_rand_int_range(rand, 0, pkts->len));
        gsize len;
        const guint8 *orig = g_bytes_get_data(c->bytes, &len);
        g_autoptr(GByteArray) b = g_byte_array_new();
        int edits = g_rand_int_range(rand, 1, 4);
        g_autoptr(GBytes) once = NULL;
        g_autoptr(GError) error = NULL;
        guint32 be;

        g_byte_array_append(b, orig, len);
        for (int e = 0; e < edits; e++) {
            guint pos = b->len > 28 ? g_rand_int_range(rand, 28, b->len) : 0;

            switch (g_rand_int_range(rand, 0, 5)) {
            case 0:     /* flip a byte */
                if (b->len > 28)
                    b->data[pos] ^= (guint8)g_rand_int_range(rand, 1, 256);
                break;
            case 1:     /* an interesting word at a word boundary */
                if (b->len >= 32) {
                    pos = 28 + 4 * g_rand_int_range(rand, 0, (b->len - 28) / 4);
                    be = GUINT32_TO_BE(interesting[g_rand_int_range(rand, 0,
                                                   G_N_ELEMENTS(interesting))]);
                    if (pos + 4 <= b->len)
                        memcpy(b->data + pos, &be, 4);
                }
                break;
            case 2:     /* truncate */
                g_byte_array_set_size(b, g_rand_int_range(rand, 28, b->len + 1));
                break;
            case 3: {   /* append garbage */
                guint n = g_rand_int_range(rand, 1, 64);

                for (guint k = 0; k < n; k++) {
                    guint8 x = (guint8)g_rand_int(rand);

                    g_byte_array_append(b, &x, 1);
                }
                break;
            }
            default:    /* header field: proc, type or status */
                be = GUINT32_TO_BE(g_rand_int_range(rand, 0, 8));
                memcpy(b->data + 12 + 4 * g_rand_int_range(rand, 0, 4), &be, 4);
                break;
            }
        }
        be = GUINT32_TO_BE(b->len);
        memcpy(b->data, &be, 4);
        once = codec_roundtrip(b->data, b->len, &error);
        if (once) {
            gsize l1;
            const guint8 *d1 = g_bytes_get_data(once, &l1);
            g_autoptr(GBytes) twice = codec_roundtrip(d1, l1, NULL);

            assert_non_null(twice);
            assert_true(g_bytes_equal(once, twice));
            decoded++;
        }
    }
    /* The mutations should not all be rejected, or the test proves little. */
    print_message("%u of %u mutated packets decoded and re-encoded canonically\n",
                  decoded, rounds);
    assert_true(decoded > rounds / 10);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_packet_roundtrips),
        cmocka_unit_test(test_build_handshake),
        cmocka_unit_test(test_build_replies),
        cmocka_unit_test(test_build_error),
        cmocka_unit_test(test_build_messages),
        cmocka_unit_test(test_decoded_values),
        cmocka_unit_test(test_framer_random_cuts),
        cmocka_unit_test(test_framer_bad_lengths),
        cmocka_unit_test(test_mutations),
    };

    if (argc != 2) {
        g_printerr("usage: %s CAPTURE_DIR\n", argv[0]);
        return 2;
    }
    capture_dir = argv[1];
    return cmocka_run_group_tests(tests, NULL, NULL);
}
