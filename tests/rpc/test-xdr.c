/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * XDR primitives and generated codecs against edge cases and hostile
 * input: lengths past the packet or over the protocol limits, "negative"
 * lengths, truncation at every byte, bad booleans, enums and unions,
 * values out of range. Decoding must fail cleanly (no leak, no overread:
 * run under ASan), never allocate more than the input could hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "vireo/rpc-message.h"

#define BE(x) (guint8)((x) >> 24), (guint8)((x) >> 16), (guint8)((x) >> 8), (guint8)(x)

static GByteArray *new_buf(void)
{
    return g_byte_array_new();
}

static void test_scalars(void **state)
{
    g_autoptr(GByteArray) b = new_buf();
    XdrWriter w;
    XdrReader r;
    gint32 i;
    guint32 u;
    gint64 h;
    guint64 uh;
    gdouble d;
    gboolean bo;
    char c;
    guint8 uc;
    guint16 us;
    static const guint8 want[] = {
        BE(0xfffffffe), BE(0xdeadbeef), BE(0xffffffff), BE(0xfffffffd),
        BE(0x01234567), BE(0x89abcdef), 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18,
        BE(1), BE(0xffffffe9), BE(0xff), BE(0xffff),
    };

    xdr_writer_init(&w, b, 1024);
    assert_true(xdr_write_int(&w, -2, NULL));
    assert_true(xdr_write_uint(&w, 0xdeadbeef, NULL));
    assert_true(xdr_write_hyper(&w, -3, NULL));
    assert_true(xdr_write_uhyper(&w, 0x0123456789abcdefull, NULL));
    assert_true(xdr_write_double(&w, 3.141592653589793, NULL));
    assert_true(xdr_write_bool(&w, TRUE, NULL));
    assert_true(xdr_write_char(&w, (char)0xe9, NULL));     /* sign-extended, as glibc */
    assert_true(xdr_write_uint(&w, 0xff, NULL));
    assert_true(xdr_write_uint(&w, 0xffff, NULL));
    assert_int_equal(b->len, sizeof(want));
    assert_memory_equal(b->data, want, sizeof(want));

    xdr_reader_init(&r, b->data, b->len);
    assert_true(xdr_read_int(&r, &i, NULL));
    assert_int_equal(i, -2);
    assert_true(xdr_read_uint(&r, &u, NULL));
    assert_int_equal(u, 0xdeadbeef);
    assert_true(xdr_read_hyper(&r, &h, NULL));
    assert_true(h == -3);
    assert_true(xdr_read_uhyper(&r, &uh, NULL));
    assert_true(uh == 0x0123456789abcdefull);
    assert_true(xdr_read_double(&r, &d, NULL));
    assert_true(d == 3.141592653589793);
    assert_true(xdr_read_bool(&r, &bo, NULL));
    assert_true(bo);
    assert_true(xdr_read_char(&r, &c, NULL));
    assert_int_equal((guint8)c, 0xe9);
    assert_true(xdr_read_uchar(&r, &uc, NULL));
    assert_int_equal(uc, 0xff);
    assert_true(xdr_read_ushort(&r, &us, NULL));
    assert_int_equal(us, 0xffff);
    assert_true(xdr_reader_finish(&r, NULL));
}

static void test_bad_values(void **state)
{
    static const struct {
        guint32 word;
        int what;
    } cases[] = {
        { 2, 0 }, { 0xffffffff, 0 },               /* bool */
        { 2, 1 }, { 0x80000000u, 1 },              /* optional discriminant */
        { 256, 2 }, { 0xffffffff, 2 },             /* unsigned char */
        { 65536, 3 },                              /* unsigned short */
        { 256, 4 }, { 0xffffff7f, 4 },             /* char: not a byte */
        { 3, 5 }, { 0xffffffff, 5 },               /* enum 0..2 */
    };

    for (gsize k = 0; k < G_N_ELEMENTS(cases); k++) {
        guint8 buf[4] = { BE(cases[k].word) };
        XdrReader r;
        g_autoptr(GError) error = NULL;
        gboolean bo;
        guint8 uc;
        guint16 us;
        char c;
        gint32 e;
        gboolean ok = TRUE;

        xdr_reader_init(&r, buf, 4);
        switch (cases[k].what) {
        case 0: ok = xdr_read_bool(&r, &bo, &error); break;
        case 1: ok = xdr_read_optional(&r, &bo, &error); break;
        case 2: ok = xdr_read_uchar(&r, &uc, &error); break;
        case 3: ok = xdr_read_ushort(&r, &us, &error); break;
        case 4: ok = xdr_read_char(&r, &c, &error); break;
        case 5: ok = xdr_read_enum(&r, &e, 0, 2, &error); break;
        }
        assert_false(ok);
        assert_true(g_error_matches(error, RPC_ERROR, RPC_ERROR_DECODE));
    }
}

static void test_strings(void **state)
{
    for (guint n = 0; n <= 9; n++) {
        g_autoptr(GByteArray) b = new_buf();
        g_autofree char *s = g_strnfill(n, 'a' + n);
        g_autofree char *back = NULL;
        XdrWriter w;
        XdrReader r;

        xdr_writer_init(&w, b, 1024);
        assert_true(xdr_write_string(&w, s, 16, NULL));
        assert_int_equal(b->len, 4 + XDR_PAD(n));
        for (gsize k = 4 + n; k < b->len; k++)
            assert_int_equal(b->data[k], 0);      /* zero padding */
        xdr_reader_init(&r, b->data, b->len);
        assert_true(xdr_read_string(&r, &back, 16, NULL));
        assert_string_equal(back, s);
        assert_true(xdr_reader_finish(&r, NULL));
    }
}

static void test_string_hostile(void **state)
{
    static const guint8 nul[] = { BE(3), 'a', 0, 'b', 0 };
    static const guint8 past[] = { BE(5), 'a', 'b', 'c', 'd' };
    static const guint8 negative[] = { BE(0xffffffff), 'a', 'b', 'c', 'd' };
    static const guint8 over[] = { BE(17), 'a', 'b', 'c', 'd' };
    static const guint8 pad_missing[] = { BE(2), 'a', 'b' };
    static const struct {
        const guint8 *data;
        gsize len;
        int code;
    } cases[] = {
        { nul, sizeof(nul), RPC_ERROR_DECODE },
        { past, sizeof(past), RPC_ERROR_DECODE },
        { negative, sizeof(negative), RPC_ERROR_LIMIT },
        { over, sizeof(over), RPC_ERROR_LIMIT },
        { pad_missing, sizeof(pad_missing), RPC_ERROR_DECODE },
    };

    for (gsize k = 0; k < G_N_ELEMENTS(cases); k++) {
        XdrReader r;
        char *s = NULL;
        guint8 *o = NULL;
        guint n;
        g_autoptr(GError) error = NULL;
        g_autoptr(GError) error2 = NULL;

        xdr_reader_init(&r, cases[k].data, cases[k].len);
        assert_false(xdr_read_string(&r, &s, 16, &error));
        assert_null(s);
        assert_true(g_error_matches(error, RPC_ERROR, cases[k].code));
        if (k == 0)
            continue;           /* NUL is fine in an opaque */
        xdr_reader_init(&r, cases[k].data, cases[k].len);
        assert_false(xdr_read_opaque(&r, &o, &n, 16, &error2));
        assert_null(o);
        assert_true(g_error_matches(error2, RPC_ERROR, cases[k].code));
    }
}

static void test_encode_limits(void **state)
{
    g_autoptr(GByteArray) b = new_buf();
    g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL, e4 = NULL, e5 = NULL;
    XdrWriter w;

    xdr_writer_init(&w, b, 12);
    assert_false(xdr_write_string(&w, "0123456789abcdefg", 16, &e1));
    assert_true(g_error_matches(e1, RPC_ERROR, RPC_ERROR_LIMIT));
    assert_false(xdr_write_string(&w, "0123456789", 16, &e2));   /* 4 + 12 > 12 */
    assert_true(g_error_matches(e2, RPC_ERROR, RPC_ERROR_LIMIT));
    assert_false(xdr_write_string(&w, NULL, 16, &e3));
    assert_true(g_error_matches(e3, RPC_ERROR, RPC_ERROR_INVALID));
    assert_false(xdr_write_array_count(&w, 17, 16, &e4));
    assert_true(g_error_matches(e4, RPC_ERROR, RPC_ERROR_LIMIT));
    assert_false(xdr_write_opaque(&w, NULL, 3, 16, &e5));
    assert_true(g_error_matches(e5, RPC_ERROR, RPC_ERROR_INVALID));
    assert_true(xdr_write_string(&w, "01234567", 16, NULL));
    assert_int_equal(b->len, 12);
}

/* Array counts are checked against the limit and against the bytes left. */
static void test_array_counts(void **state)
{
    /* CONNECT_LIST_ALL_DOMAINS ret claiming 16384 domains in 8 bytes */
    static const guint8 many[] = { BE(16384), BE(0) };
    static const guint8 over[] = { BE(16385), BE(0) };
    static const guint8 negative[] = { BE(0xffffffff), BE(0) };
    const RpcProcedure *p = rpc_protocol_find(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS);
    RemoteConnectListAllDomainsRet ret;
    g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL;

    assert_false(rpc_payload_decode(&p->ret, many, sizeof(many), &ret, &e1));
    assert_true(g_error_matches(e1, RPC_ERROR, RPC_ERROR_DECODE));
    assert_false(rpc_payload_decode(&p->ret, over, sizeof(over), &ret, &e2));
    assert_true(g_error_matches(e2, RPC_ERROR, RPC_ERROR_LIMIT));
    assert_false(rpc_payload_decode(&p->ret, negative, sizeof(negative), &ret, &e3));
    assert_true(g_error_matches(e3, RPC_ERROR, RPC_ERROR_LIMIT));
}

static void test_enum_in_array(void **state)
{
    static const guint8 good[] = { BE(2), BE(0), BE(2) };
    static const guint8 bad[] = { BE(2), BE(0), BE(3) };
    const RpcProcedure *p = rpc_protocol_find(REMOTE_PROGRAM, REMOTE_PROC_AUTH_LIST);
    g_auto(RemoteAuthListRet) ret = { 0 };
    g_autoptr(GError) error = NULL;

    assert_true(rpc_payload_decode(&p->ret, good, sizeof(good), &ret, NULL));
    assert_int_equal(ret.n_types, 2);
    assert_int_equal(ret.types[1], REMOTE_AUTH_POLKIT);
    remote_auth_list_ret_clear(&ret);
    assert_false(rpc_payload_decode(&p->ret, bad, sizeof(bad), &ret, &error));
    assert_null(ret.types);
}

static void test_typed_param_union(void **state)
{
    RemoteTypedParam params[] = {
        { .field = (char *)"i", .value = { .type = 1, .u.i = -5 } },
        { .field = (char *)"ui", .value = { .type = 2, .u.ui = 5 } },
        { .field = (char *)"l", .value = { .type = 3, .u.l = -(1ll << 40) } },
        { .field = (char *)"ul", .value = { .type = 4, .u.ul = 1ull << 63 } },
        { .field = (char *)"d", .value = { .type = 5, .u.d = 0.25 } },
        { .field = (char *)"b", .value = { .type = 6, .u.b = 1 } },
        { .field = (char *)"s", .value = { .type = 7, .u.s = (char *)"string" } },
    };

    for (gsize k = 0; k < G_N_ELEMENTS(params); k++) {
        g_autoptr(GByteArray) b = new_buf();
        g_auto(RemoteTypedParam) back = { 0 };
        XdrWriter w;
        XdrReader r;
        g_autoptr(GByteArray) b2 = new_buf();

        xdr_writer_init(&w, b, 1024);
        assert_true(remote_typed_param_encode(&w, &params[k], NULL));
        xdr_reader_init(&r, b->data, b->len);
        assert_true(remote_typed_param_decode(&r, &back, NULL));
        assert_true(xdr_reader_finish(&r, NULL));
        assert_string_equal(back.field, params[k].field);
        assert_int_equal(back.value.type, params[k].value.type);
        xdr_writer_init(&w, b2, 1024);
        assert_true(remote_typed_param_encode(&w, &back, NULL));
        assert_int_equal(b->len, b2->len);
        assert_memory_equal(b->data, b2->data, b->len);
    }
    {
        static const guint8 bad[] = { BE(1), 'x', 0, 0, 0, BE(8), BE(0) };
        RemoteTypedParam bad_param = { .field = (char *)"x", .value = { .type = 0 } };
        g_autoptr(GByteArray) b = new_buf();
        g_auto(RemoteTypedParam) back = { 0 };
        g_autoptr(GError) e1 = NULL, e2 = NULL;
        XdrReader r;
        XdrWriter w;

        xdr_reader_init(&r, bad, sizeof(bad));
        assert_false(remote_typed_param_decode(&r, &back, &e1));
        assert_true(g_error_matches(e1, RPC_ERROR, RPC_ERROR_DECODE));
        assert_null(back.field);
        xdr_writer_init(&w, b, 1024);
        assert_false(remote_typed_param_encode(&w, &bad_param, &e2));
        assert_true(g_error_matches(e2, RPC_ERROR, RPC_ERROR_INVALID));
    }
}

static gboolean error_encode(XdrWriter *w, const void *v, GError **error)
{
    return remote_error_encode(w, v, error);
}

static gboolean error_decode(XdrReader *r, void *v, GError **error)
{
    return remote_error_decode(r, v, error);
}

static void error_clear(void *v)
{
    remote_error_clear(v);
}

/* Every strict prefix of a rich value fails to decode, and leaks nothing. */
static void test_truncated_everywhere(void **state)
{
    RemoteNonnullDomain doms[2] = {
        { .name = (char *)"first", .id = 1 },
        { .name = (char *)"second-domain", .id = -1 },
    };
    RemoteNonnullDomain errdom = { .name = (char *)"d", .id = 7 };
    RemoteNonnullNetwork net = { .name = (char *)"default" };
    RemoteError err = {
        .code = 42, .domain = 10, .message = (char *)"message", .level = 2, .dom = &errdom,
        .str1 = (char *)"s1", .str2 = (char *)"s2", .str3 = (char *)"s3", .int1 = -1,
        .int2 = 5, .net = &net,
    };
    RemoteConnectListAllDomainsRet list = { .n_domains = 2, .domains = doms, .ret = 2 };
    guint8 cpumaps[5] = { 1, 2, 3, 4, 5 };
    RemoteVcpuInfo vi[2] = { { 0, 1, 100, 0 }, { 1, 1, 200, 1 } };
    RemoteDomainGetVcpusRet vcpus = { .n_info = 2, .info = vi, .n_cpumaps = 5, .cpumaps = cpumaps };
    struct {
        RpcPayloadType t;
        const void *v;
    } cases[] = {
        { { sizeof(RemoteError), "remote_error", error_encode, error_decode, error_clear }, &err },
        { rpc_protocol_find(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS)->ret, &list },
        { rpc_protocol_find(REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_GET_VCPUS)->ret, &vcpus },
    };

    for (gsize k = 0; k < G_N_ELEMENTS(cases); k++) {
        g_autoptr(GByteArray) b = new_buf();
        XdrWriter w;

        xdr_writer_init(&w, b, 4096);
        assert_true(cases[k].t.encode(&w, cases[k].v, NULL));
        for (gsize n = 0; n <= b->len; n++) {
            /* A copy of exactly n bytes, so ASan sees any overread. */
            g_autofree guint8 *copy = g_memdup2(b->data, n ? n : 1);
            g_autofree void *v = g_malloc0(cases[k].t.size);
            XdrReader r;
            gboolean ok;

            xdr_reader_init(&r, copy, n);
            ok = cases[k].t.decode(&r, v, NULL);
            assert_int_equal(ok, n == b->len);
            if (ok)
                cases[k].t.clear(v);
        }
    }
}

static void test_trailing_bytes(void **state)
{
    static const guint8 extra[] = { BE(10), BE(0) };
    const RpcProcedure *p = rpc_protocol_find(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_SUPPORTS_FEATURE);
    RemoteConnectSupportsFeatureArgs a;
    g_autoptr(GError) error = NULL;

    assert_false(rpc_payload_decode(&p->args, extra, sizeof(extra), &a, &error));
    assert_true(g_error_matches(error, RPC_ERROR, RPC_ERROR_DECODE));
}

static void test_packet_parse(void **state)
{
    guint8 pkt[28] = { BE(28), BE(REMOTE_PROGRAM), BE(1), BE(66), BE(0), BE(0), BE(0) };
    RpcHeader h;
    const guint8 *payload;
    gsize plen;
    g_autoptr(GError) e1 = NULL, e2 = NULL;

    assert_true(rpc_packet_parse(pkt, 28, &h, &payload, &plen, NULL));
    assert_int_equal(h.proc, 66);
    assert_int_equal(plen, 0);
    assert_false(rpc_packet_parse(pkt, 27, &h, &payload, &plen, &e1));
    pkt[3] = 32;
    assert_false(rpc_packet_parse(pkt, 28, &h, &payload, &plen, &e2));
    assert_true(g_error_matches(e2, RPC_ERROR, RPC_ERROR_PROTOCOL));
}

static void test_payload_limit(void **state)
{
    RpcHeader h = { REMOTE_PROGRAM, 1, REMOTE_PROC_DOMAIN_GET_XML_DESC, RPC_REPLY, 0, 0 };
    const RpcProcedure *p = rpc_protocol_find(REMOTE_PROGRAM, h.proc);
    g_autofree char *big = g_malloc(REMOTE_STRING_MAX + 2);
    RemoteDomainGetXmlDescRet ret = { .xml = big };
    g_autoptr(GError) error = NULL;
    g_autoptr(GBytes) ok = NULL;

    memset(big, 'x', REMOTE_STRING_MAX + 1);
    big[REMOTE_STRING_MAX + 1] = 0;
    assert_null(rpc_packet_build(&h, &p->ret, &ret, &error));
    assert_true(g_error_matches(error, RPC_ERROR, RPC_ERROR_LIMIT));
    big[REMOTE_STRING_MAX] = 0;
    ok = rpc_packet_build(&h, &p->ret, &ret, NULL);
    assert_non_null(ok);
    assert_int_equal(g_bytes_get_size(ok), 28 + 4 + REMOTE_STRING_MAX);
}

static void test_table(void **state)
{
    const RpcProcedure *p;
    guint32 last_prog = 0;
    gint32 last_proc = 0;

    for (gsize i = 0; i < rpc_protocol_n_procedures; i++) {
        p = &rpc_protocol_procedures[i];
        /* sorted, for bsearch */
        assert_true(p->prog > last_prog || (p->prog == last_prog && p->proc > last_proc));
        last_prog = p->prog;
        last_proc = p->proc;
        assert_ptr_equal(rpc_protocol_find(p->prog, p->proc), p);
        if (p->prog == REMOTE_PROGRAM)
            assert_string_equal(rpc_protocol_proc_name(p->prog, p->proc), p->name);
    }
    assert_string_equal(rpc_protocol_api_name(REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_GET_XML_DESC),
                        "virDomainGetXMLDesc");
    assert_string_equal(rpc_protocol_api_name(REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_ATTACH_DEVICE),
                        "virDomainAttachDevice");
    assert_string_equal(rpc_protocol_api_name(REMOTE_PROGRAM, REMOTE_PROC_CONNECT_GET_URI),
                        "virConnectGetURI");
    assert_string_equal(rpc_protocol_api_name(REMOTE_PROGRAM, REMOTE_PROC_NODE_GET_CPU_MAP),
                        "virNodeGetCPUMap");
    assert_null(rpc_protocol_find(REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_ATTACH_DEVICE));
    assert_null(rpc_protocol_proc_name(REMOTE_PROGRAM, REMOTE_PROC_LAST + 1));
    assert_null(rpc_protocol_proc_name(REMOTE_PROGRAM, -1));
    assert_null(rpc_protocol_find(0x12345678, 1));
    assert_int_equal(REMOTE_PROC_LAST, 443);
}

static void test_remote_error_builder(void **state)
{
    g_autoptr(RemoteError) e = rpc_remote_error_new(RPC_ERR_NO_SUPPORT, RPC_FROM_DOMAIN,
                                                    "%s", "virDomainFoo");
    g_autoptr(RemoteError) bare = rpc_remote_error_new(RPC_ERR_OPERATION_DENIED, RPC_FROM_DOMAIN,
                                                       NULL);
    g_autoptr(RemoteError) rpc = rpc_remote_error_new(RPC_ERR_RPC, RPC_FROM_RPC,
                                                      "unknown procedure: %d", 999);
    g_autoptr(GError) gerr = g_error_new(RPC_REMOTE_ERROR, RPC_ERR_NO_DOMAIN, "no domain '%s'",
                                         "x");
    g_autoptr(RemoteError) from = rpc_remote_error_from_gerror(gerr, RPC_FROM_QEMU);

    assert_string_equal(e->message,
                        "this function is not supported by the connection driver: virDomainFoo");
    assert_string_equal(e->str1, "this function is not supported by the connection driver: %s");
    assert_string_equal(e->str2, "virDomainFoo");
    assert_null(e->str3);
    assert_int_equal(e->int1, -1);
    assert_int_equal(e->level, RPC_ERR_LEVEL_ERROR);
    assert_string_equal(bare->message, "operation forbidden for read only access");
    assert_string_equal(bare->str2, "");
    assert_string_equal(rpc->message, "unknown procedure: 999");
    assert_string_equal(rpc->str1, "%s");
    assert_int_equal(from->code, RPC_ERR_NO_DOMAIN);
    assert_int_equal(from->domain, RPC_FROM_QEMU);
    assert_string_equal(from->message, "Domain not found: no domain 'x'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_string_hostile),
        cmocka_unit_test(test_encode_limits),
        cmocka_unit_test(test_array_counts),
        cmocka_unit_test(test_enum_in_array),
        cmocka_unit_test(test_typed_param_union),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_packet_parse),
        cmocka_unit_test(test_payload_limit),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_remote_error_builder),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
