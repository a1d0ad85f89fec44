/* SPDX-License-Identifier: GPL-2.0-or-later */
/* JSON values, parser, serializer and stream splitter (vmm/json.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "vireo/json.h"

/* Parses @in, which must succeed, and checks it serializes as @out. */
static void check_round_trip(const char *in, const char *out)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonValue) v = json_parse(in, strlen(in), &err);
    g_autoptr(JsonValue) again = NULL;
    g_autofree char *text = NULL;
    g_autofree char *text2 = NULL;

    if (!v)
        fail_msg("parsing '%s': %s", in, err->message);
    text = json_to_string(v);
    assert_string_equal(text, out);
    /* What we write reads back as the same value and the same text. */
    again = json_parse(text, strlen(text), &err);
    assert_non_null(again);
    assert_true(json_equal(v, again));
    text2 = json_to_string(again);
    assert_string_equal(text2, text);
}

/* Parsing @len bytes of @in must fail with @code. */
static void check_fail_len(const char *in, size_t len, JsonErrorCode code)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonValue) v = json_parse(in, len, &err);

    if (v) {
        g_autofree char *text = json_to_string(v);
        fail_msg("'%.*s' parsed as %s", (int)len, in, text);
    }
    assert_non_null(err);
    if (!g_error_matches(err, JSON_ERROR, code))
        fail_msg("'%.*s': expected code %d, got %d (%s)", (int)len, in, code, err->code,
                 err->message);
    assert_non_null(strstr(err->message, " at byte "));
}

static void check_fail(const char *in, JsonErrorCode code)
{
    check_fail_len(in, strlen(in), code);
}

static void test_round_trip(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        { "null", "null" },
        { "true", "true" },
        { "false", "false" },
        { " \t\r\n0 \n", "0" },
        { "-0", "0" },
        { "42", "42" },
        { "\"\"", "\"\"" },
        { "\"abc\"", "\"abc\"" },
        { "[]", "[]" },
        { "{}", "{}" },
        { "[1,2 , 3]", "[1, 2, 3]" },
        { "{\"a\":1,\"b\":[true,null,{}],\"c\":{\"d\":\"e\"}}",
          "{\"a\": 1, \"b\": [true, null, {}], \"c\": {\"d\": \"e\"}}" },
        /* Insertion order is kept, not sorted. */
        { "{\"z\":1,\"a\":2,\"m\":3}", "{\"z\": 1, \"a\": 2, \"m\": 3}" },
        /* QEMU's greeting, byte for byte. */
        { "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
          "\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}",
          "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
          "\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}" },
        { "[[[[[]]]]]", "[[[[[]]]]]" },
        { "1.5", "1.5" },
        { "-2.25e2", "-225.0" },
        { "1E3", "1000.0" },
        { "1e-3", "0.001" },
        { "0.1", "0.1" },
        { "1e300", "1e+300" },
        { "-0.0", "-0.0" },
        { "5e-324", "5e-324" },
        { "1e16", "1e+16" },
        { "1234567890123456.5", "1234567890123456.5" },
        { "0.0001", "0.0001" },
        { "0.00001", "1e-05" },
        { "\"a/b\"", "\"a/b\"" },
        { "\"\\/\"", "\"/\"" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
        check_round_trip(cases[i].in, cases[i].out);
}

static void test_escapes(void **state)
{
    static const char in[] =
        "\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u0041\\u00e9\\u00E9\\u20ac\\uD834\\uDD1E\\u001f\"";
    static const char decoded[] =
        "q\" b\\ s/ \b\f\n\r\t A\xc3\xa9\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\x1f";
    static const char out[] =
        "\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t A\\u00E9\\u00E9\\u20AC\\uD834\\uDD1E\\u001F\"";
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonValue) v = json_parse(in, strlen(in), &err);
    g_autoptr(JsonValue) s = NULL;
    g_autofree char *text = NULL;
    g_autofree char *ctl = NULL;

    assert_non_null(v);
    assert_int_equal(json_get_type(v), JSON_STRING);
    assert_string_equal(json_get_string(v), decoded);
    text = json_to_string(v);
    assert_string_equal(text, out);

    /* Every control character and DEL is escaped; raw UTF-8 becomes \u. */
    s = json_new_string("\x01\x7f\xc2\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf");
    ctl = json_to_string(s);
    assert_string_equal(ctl, "\"\\u0001\\u007F\\u0080\\uFFFF\\uDBFF\\uDFFF\"");

    /* Escapes the parser does not know. */
    check_fail("\"\\a\"", JSON_ERROR_SYNTAX);
    check_fail("\"\\x41\"", JSON_ERROR_SYNTAX);
    check_fail("\"\\U0041\"", JSON_ERROR_SYNTAX);
    check_fail("\"\\u00G1\"", JSON_ERROR_SYNTAX);
    check_fail("\"\\u004\"", JSON_ERROR_SYNTAX);
    check_fail("\"\\u\"", JSON_ERROR_SYNTAX);
    check_fail("\"\\'\"", JSON_ERROR_SYNTAX);
    /* Raw control characters must be escaped (RFC 8259, section 7). */
    check_fail("\"a\nb\"", JSON_ERROR_SYNTAX);
    check_fail("\"\t\"", JSON_ERROR_SYNTAX);
    check_fail_len("\"\0\"", 3, JSON_ERROR_SYNTAX);
    /* NUL would truncate the C string. */
    check_fail("\"a\\u0000b\"", JSON_ERROR_ENCODING);
}

static void test_surrogates(void **state)
{
    /* Lone or misordered surrogates cannot be UTF-8. */
    check_fail("\"\\uD800\"", JSON_ERROR_ENCODING);
    check_fail("\"\\uDBFFx\"", JSON_ERROR_ENCODING);
    check_fail("\"\\uD800\\u0041\"", JSON_ERROR_ENCODING);
    check_fail("\"\\uD800\\uD800\"", JSON_ERROR_ENCODING);
    check_fail("\"\\uDC00\"", JSON_ERROR_ENCODING);
    check_fail("\"\\uDFFF\\uD800\"", JSON_ERROR_ENCODING);
    check_fail("\"\\uD800\\n\"", JSON_ERROR_ENCODING);
    check_fail("\"\\uD800\\", JSON_ERROR_ENCODING);
    check_fail("\"\\uD800\\u12", JSON_ERROR_SYNTAX);
    check_round_trip("\"\\uD800\\uDC00\"", "\"\\uD800\\uDC00\"");
    check_round_trip("\"\\udbff\\udfff\"", "\"\\uDBFF\\uDFFF\"");
}

static void test_utf8(void **state)
{
    static const char *const valid[] = {
        "\xc2\x80",             /* U+0080 */
        "\xdf\xbf",             /* U+07FF */
        "\xe0\xa0\x80",         /* U+0800 */
        "\xed\x9f\xbf",         /* U+D7FF */
        "\xee\x80\x80",         /* U+E000 */
        "\xef\xbf\xbf",         /* U+FFFF */
        "\xf0\x90\x80\x80",     /* U+10000 */
        "\xf4\x8f\xbf\xbf",     /* U+10FFFF */
    };
    static const char *const invalid[] = {
        "\x80",                 /* stray continuation */
        "\xbf",
        "\xc0\x80",             /* overlong NUL */
        "\xc1\xbf",             /* overlong 2 bytes */
        "\xe0\x80\x80",         /* overlong 3 bytes */
        "\xe0\x9f\xbf",
        "\xf0\x80\x80\x80",     /* overlong 4 bytes */
        "\xf0\x8f\xbf\xbf",
        "\xed\xa0\x80",         /* U+D800 encoded directly */
        "\xed\xbf\xbf",         /* U+DFFF */
        "\xed\xa0\xbd\xed\xb8\x80",   /* CESU-8 surrogate pair */
        "\xf4\x90\x80\x80",     /* U+110000 */
        "\xf5\x80\x80\x80",
        "\xf8\x88\x80\x80\x80", /* 5-byte forms */
        "\xfe",
        "\xff",
        "\xc2",                 /* truncated */
        "\xe2\x82",
        "\xf0\x9d\x84",
        "\xc2\x41",             /* continuation missing */
        "\xe2\x28\xa1",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(valid); i++) {
        g_autofree char *in = g_strdup_printf("\"<%s>\"", valid[i]);
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonValue) v = json_parse(in, strlen(in), &err);
        g_autofree char *want = g_strdup_printf("<%s>", valid[i]);

        assert_non_null(v);
        assert_string_equal(json_get_string(v), want);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(invalid); i++) {
        g_autofree char *in = g_strdup_printf("\"<%s>\"", invalid[i]);
        g_autofree char *bare = g_strdup_printf("[%s]", invalid[i]);

        check_fail(in, JSON_ERROR_ENCODING);
        /* Outside strings no byte >= 0x80 is ever valid. */
        check_fail(bare, JSON_ERROR_SYNTAX);
    }
    /* The error names the offset of the bad sequence. */
    {
        static const char in[] = "[\"ab\xc0\x80\"]";
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonValue) v = json_parse(in, strlen(in), &err);

        assert_null(v);
        assert_string_equal(err->message, "invalid UTF-8 in string at byte 4");
    }
    /* The serializer never emits invalid UTF-8 it was handed. */
    {
        g_autoptr(JsonValue) s = json_new_string("a\xff" "b\xed\xa0\x80");
        g_autofree char *text = json_to_string(s);

        assert_string_equal(text, "\"a\\uFFFDb\\uFFFD\\uFFFD\\uFFFD\"");
    }
}

static void test_numbers(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonValue) max = json_parse("9223372036854775807", 19, &err);
    g_autoptr(JsonValue) min = json_parse("-9223372036854775808", 20, &err);
    g_autoptr(JsonValue) over = json_parse("9223372036854775808", 19, &err);
    g_autoptr(JsonValue) under = json_parse("-9223372036854775809", 20, &err);
    g_autoptr(JsonValue) big = json_parse("18446744073709551616", 20, &err);
    g_autoptr(JsonValue) nan = json_new_double(NAN);
    g_autoptr(JsonValue) inf = json_new_double(-INFINITY);
    g_autofree char *nan_text = json_to_string(nan);
    g_autofree char *inf_text = json_to_string(inf);

    assert_non_null(max);
    assert_int_equal(json_get_type(max), JSON_INT);
    assert_true(json_get_int(max) == INT64_MAX);
    assert_non_null(min);
    assert_int_equal(json_get_type(min), JSON_INT);
    assert_true(json_get_int(min) == INT64_MIN);
    /* Past int64_t they become doubles rather than errors. */
    assert_int_equal(json_get_type(over), JSON_DOUBLE);
    assert_true(json_get_double(over) == 9223372036854775808.0);
    assert_int_equal(json_get_type(under), JSON_DOUBLE);
    assert_true(json_get_double(under) == -9223372036854775808.0);
    assert_int_equal(json_get_type(big), JSON_DOUBLE);
    assert_true(json_get_double(big) == 18446744073709551616.0);
    check_round_trip("9223372036854775807", "9223372036854775807");
    check_round_trip("-9223372036854775808", "-9223372036854775808");
    check_round_trip("9223372036854775808", "9.223372036854776e+18");
    check_round_trip("1.7976931348623157e308", "1.7976931348623157e+308");
    check_round_trip("2.2250738585072014e-308", "2.2250738585072014e-308");
    check_round_trip("0.30000000000000004", "0.30000000000000004");
    check_round_trip("123456789012345678901234567890", "1.2345678901234568e+29");
    check_round_trip("1e-400", "0.0");
    /* JSON has no NaN or infinity: write null rather than invalid JSON. */
    assert_string_equal(nan_text, "null");
    assert_string_equal(inf_text, "null");
    check_fail("1e400", JSON_ERROR_RANGE);
    check_fail("-1e400", JSON_ERROR_RANGE);

    static const char *const bad[] = {
        "01", "-01", "00", "-", "+1", "1.", ".5", "1.e3", "1e", "1e+", "1E-", "0x10",
        "NaN", "Infinity", "-Infinity", "1_000", "- 1", "1.5.5", "--1", "1ee3",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        check_fail(bad[i], JSON_ERROR_SYNTAX);
}

static void test_syntax(void **state)
{
    static const char *const bad[] = {
        "", " ", "nul", "tru", "True", "nullx", "[1,]", "[,1]", "[1 2]", "{\"a\"}",
        "{\"a\":}", "{\"a\":1,}", "{,}", "{a:1}", "{'a':1}", "{\"a\" 1}", "{1:2}", "[}",
        "{]", "]", "}", "\"abc", "'abc'", "[1]]", "{} {}", "1 2", "\xef\xbb\xbf{}",
        "/* c */ 1", "[1]//", "\x01", "[\"a\",\"b\"", "{\"a\":{\"b\":1}",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        check_fail(bad[i], JSON_ERROR_SYNTAX);
    check_fail("{\"a\":1,\"a\":2}", JSON_ERROR_SYNTAX);
    {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonValue) v = json_parse("{\"a\" 1}", 7, &err);

        assert_null(v);
        assert_string_equal(err->message,
                            "unexpected '1', expected ':' after object key at byte 5");
    }
    {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonValue) v = json_parse("[1, 2", 5, &err);

        assert_null(v);
        assert_string_equal(err->message,
                            "unexpected end of input, expected ',' or ']' at byte 5");
    }
    {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonValue) v = json_parse("{\"x\":1,\"x\":2}", 13, &err);

        assert_null(v);
        assert_string_equal(err->message, "duplicate key at byte 7");
    }
    /* Only the first @len bytes count: the rest may be anything. */
    {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonValue) v = json_parse("[1]garbage", 3, &err);

        assert_non_null(v);
    }
}

static void test_depth(void **state)
{
    g_autoptr(GString) ok = g_string_new(NULL);
    g_autoptr(GString) deep = g_string_new(NULL);
    g_autoptr(GString) huge = g_string_new(NULL);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonValue) v = NULL;

    /* JSON_MAX_DEPTH containers, alternating arrays and objects. */
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        g_string_append(ok, i % 2 ? "{\"k\":" : "[");
    g_string_append_c(ok, '0');
    for (int i = JSON_MAX_DEPTH - 1; i >= 0; i--)
        g_string_append(ok, i % 2 ? "}" : "]");
    v = json_parse(ok->str, ok->len, &err);
    assert_non_null(v);

    for (int i = 0; i <= JSON_MAX_DEPTH; i++)
        g_string_append_c(deep, '[');
    for (int i = 0; i <= JSON_MAX_DEPTH; i++)
        g_string_append_c(deep, ']');
    check_fail_len(deep->str, deep->len, JSON_ERROR_DEPTH);

    /* A million brackets must not reach the recursion, let alone overflow the stack. */
    for (int i = 0; i < 1000000; i++)
        g_string_append_c(huge, '[');
    check_fail_len(huge->str, huge->len, JSON_ERROR_DEPTH);
}

static void test_truncated(void **state)
{
    static const char doc[] =
        "{\"execute\": \"x\", \"arguments\": {\"s\": \"a\\\"b\\u00e9\xe2\x82\xac\\uD834\\uDD1E\","
        " \"n\": -12.5e-3, \"i\": 123, \"t\": true, \"f\": false, \"z\": null,"
        " \"a\": [1, [2], {}]}, \"id\": 7}";
    size_t len = strlen(doc);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonValue) full = json_parse(doc, len, &err);

    assert_non_null(full);
    /* Every proper prefix is an error, never a crash or a partial value. */
    for (size_t n = 0; n < len; n++) {
        g_autoptr(GError) e = NULL;
        /* A heap copy of exactly @n bytes lets ASan catch any over-read. */
        g_autofree char *prefix = g_memdup2(doc, n ? n : 1);
        g_autoptr(JsonValue) v = json_parse(prefix, n, &e);

        assert_null(v);
        assert_non_null(e);
        assert_true(e->domain == JSON_ERROR);
    }
}

static void test_garbage(void **state)
{
    g_autoptr(GRand) rand = g_rand_new_with_seed(20240611);
    static const char alphabet[] = "{}[]\",:\\ 0123456789-+.eEtrufalsn\x80\xc3\xa9\xff\x01";

    for (int round = 0; round < 20000; round++) {
        size_t len = g_rand_int_range(rand, 0, 40);
        g_autofree char *buf = g_malloc(len ? len : 1);
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonValue) v = NULL;

        for (size_t i = 0; i < len; i++) {
            if (g_rand_boolean(rand))
                buf[i] = alphabet[g_rand_int_range(rand, 0, sizeof(alphabet) - 1)];
            else
                buf[i] = g_rand_int_range(rand, 0, 256);
        }
        v = json_parse(buf, len, &err);
        if (v) {
            /* Anything accepted must survive a round trip. */
            g_autofree char *text = json_to_string(v);
            g_autoptr(JsonValue) again = json_parse(text, strlen(text), NULL);
            assert_non_null(again);
            assert_true(json_equal(v, again));
            assert_null(err);
        } else {
            assert_non_null(err);
        }
    }
}

static void test_builders(void **state)
{
    g_autoptr(JsonValue) obj = json_new_object();
    g_autoptr(JsonValue) arr = json_new_array();
    g_autoptr(JsonValue) copy = NULL;
    g_autoptr(JsonValue) stolen = NULL;
    g_autofree char *text = NULL;
    g_autofree char *text2 = NULL;
    int64_t i = 0;
    gboolean b = FALSE;
    double d = 0;

    json_array_append(arr, json_new_int(1));
    json_array_append(arr, json_new_string("two"));
    json_object_set_string(obj, "name", "vm");
    json_object_set_int(obj, "cpus", 2);
    json_object_set_bool(obj, "running", TRUE);
    json_object_set_double(obj, "ratio", 0.5);
    json_object_set_null(obj, "none");
    json_object_set(obj, "list", g_steal_pointer(&arr));
    /* Replacing keeps the position. */
    json_object_set_int(obj, "cpus", 4);
    text = json_to_string(obj);
    assert_string_equal(text, "{\"name\": \"vm\", \"cpus\": 4, \"running\": true, "
                        "\"ratio\": 0.5, \"none\": null, \"list\": [1, \"two\"]}");

    assert_string_equal(json_object_get_string(obj, "name"), "vm");
    assert_null(json_object_get_string(obj, "cpus"));
    assert_null(json_object_get_string(obj, "missing"));
    assert_true(json_object_get_int(obj, "cpus", &i));
    assert_int_equal(i, 4);
    assert_false(json_object_get_int(obj, "ratio", &i));
    assert_true(json_object_get_bool(obj, "running", &b));
    assert_true(b);
    assert_false(json_object_get_bool(obj, "none", &b));
    assert_true(json_object_get_double(obj, "ratio", &d));
    assert_true(d == 0.5);
    assert_true(json_object_get_double(obj, "cpus", &d));
    assert_true(d == 4.0);
    assert_non_null(json_object_get_array(obj, "list"));
    assert_null(json_object_get_object(obj, "list"));
    assert_int_equal(json_array_get_length(json_object_get_array(obj, "list")), 2);
    assert_string_equal(json_get_string(json_array_get_item(json_object_get(obj, "list"), 1)),
                        "two");
    assert_int_equal(json_object_get_size(obj), 6);
    assert_string_equal(json_object_get_key(obj, 2), "running");
    assert_true(json_get_bool(json_object_get_value(obj, 2)));
    assert_string_equal(json_type_name(JSON_INT), "integer");

    copy = json_copy(obj);
    assert_true(json_equal(obj, copy));
    stolen = json_object_steal(copy, "name");
    assert_string_equal(json_get_string(stolen), "vm");
    assert_false(json_object_has(copy, "name"));
    assert_false(json_equal(obj, copy));
    assert_true(json_object_remove(copy, "none"));
    assert_false(json_object_remove(copy, "none"));
    text2 = json_to_string(copy);
    assert_string_equal(text2, "{\"cpus\": 4, \"running\": true, \"ratio\": 0.5, "
                        "\"list\": [1, \"two\"]}");
}

/* Large objects switch to an index; lookups must stay right across removals. */
static void test_large_object(void **state)
{
    g_autoptr(JsonValue) obj = json_new_object();
    g_autoptr(GString) text = g_string_new("{");
    g_autoptr(JsonValue) parsed = NULL;
    g_autoptr(GError) err = NULL;

    for (int i = 0; i < 1000; i++) {
        g_autofree char *key = g_strdup_printf("k%d", i);
        json_object_set_int(obj, key, i);
    }
    for (int i = 0; i < 1000; i += 3) {
        g_autofree char *key = g_strdup_printf("k%d", i);
        assert_true(json_object_remove(obj, key));
    }
    for (int i = 0; i < 1000; i++) {
        g_autofree char *key = g_strdup_printf("k%d", i);
        int64_t v = -1;
        assert_int_equal(json_object_get_int(obj, key, &v), i % 3 != 0);
        if (i % 3)
            assert_int_equal(v, i);
    }
    assert_string_equal(json_object_get_key(obj, 0), "k1");

    /* 50000 keys parse quickly, and a duplicate at the end is still found. */
    for (int i = 0; i < 50000; i++)
        g_string_append_printf(text, "\"key%d\":%d,", i, i);
    g_string_append(text, "\"key17\":0}");
    parsed = json_parse(text->str, text->len, &err);
    assert_null(parsed);
    assert_true(g_error_matches(err, JSON_ERROR, JSON_ERROR_SYNTAX));
    assert_non_null(strstr(err->message, "duplicate key"));
}

/* --- streamer --- */

static const char *const stream_msgs[] = {
    "{\"execute\": \"qmp_capabilities\"}",
    "{\"a\": \"}]{[\\\"\\\\\", \"b\": [{}, []]}",
    "[1, 2, {\"x\": \"\\\"}\"}]",
    "\"top-level string with } and \\\" inside\"",
    "123",
    "true",
    "{\"s\": \"\xc3\xa9\xf0\x9d\x84\x9e\"}",
    "null",
};

static GString *stream_input(void)
{
    GString *in = g_string_new("  \r\n");

    for (size_t i = 0; i < G_N_ELEMENTS(stream_msgs); i++) {
        g_string_append(in, stream_msgs[i]);
        /* Scalars need a delimiter to end; containers and strings do not. */
        g_string_append(in, i % 2 ? "\r\n" : " ");
    }
    return in;
}

/* Feeds @in in chunks of the sizes @next_chunk returns, checking every message. */
static void check_stream(GString *in, GRand *rand)
{
    g_autoptr(JsonStreamer) js = json_streamer_new(4096);
    size_t pos = 0, got = 0;

    while (pos < in->len) {
        size_t n = rand ? (size_t)g_rand_int_range(rand, 1, 17) : 1;
        char *msg;
        size_t len;

        n = MIN(n, in->len - pos);
        assert_true(json_streamer_feed(js, in->str + pos, n, NULL));
        pos += n;
        while ((msg = json_streamer_pop(js, &len))) {
            g_autoptr(GError) err = NULL;
            g_autoptr(JsonValue) v = json_parse(msg, len, &err);

            assert_true(got < G_N_ELEMENTS(stream_msgs));
            assert_string_equal(msg, stream_msgs[got]);
            assert_int_equal(len, strlen(stream_msgs[got]));
            assert_non_null(v);
            got++;
            g_free(msg);
        }
    }
    assert_int_equal(got, G_N_ELEMENTS(stream_msgs));
    assert_false(json_streamer_failed(js));
}

static void test_streamer_bytewise(void **state)
{
    g_autoptr(GString) in = stream_input();

    check_stream(in, NULL);
}

static void test_streamer_chunks(void **state)
{
    g_autoptr(GString) in = stream_input();

    for (int seed = 0; seed < 200; seed++) {
        g_autoptr(GRand) rand = g_rand_new_with_seed(seed);
        check_stream(in, rand);
    }
}

static void test_streamer_all_at_once(void **state)
{
    g_autoptr(GString) in = stream_input();
    g_autoptr(JsonStreamer) js = json_streamer_new(4096);
    size_t count = 0;
    char *msg;

    assert_true(json_streamer_feed(js, in->str, in->len, NULL));
    while ((msg = json_streamer_pop(js, NULL))) {
        assert_string_equal(msg, stream_msgs[count]);
        count++;
        g_free(msg);
    }
    assert_int_equal(count, G_N_ELEMENTS(stream_msgs));
}

static void test_streamer_limits(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonStreamer) js = json_streamer_new(64);
    g_autoptr(JsonStreamer) deep = json_streamer_new(1 << 20);
    g_autoptr(JsonStreamer) str = json_streamer_new(64);
    g_autofree char *first = NULL;
    char big[100];

    /* A message that fits, then one that does not. */
    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"a\": 1}", 8);
    assert_true(json_streamer_feed(js, big, sizeof(big), NULL));
    memset(big, 'x', sizeof(big));
    big[0] = '[';
    big[1] = '"';
    assert_false(json_streamer_feed(js, big, sizeof(big), &err));
    assert_true(g_error_matches(err, JSON_ERROR, JSON_ERROR_TOO_BIG));
    assert_true(json_streamer_failed(js));
    /* What was complete before the failure is still delivered. */
    first = json_streamer_pop(js, NULL);
    assert_string_equal(first, "{\"a\": 1}");
    assert_null(json_streamer_pop(js, NULL));
    /* Failure is sticky. */
    g_clear_error(&err);
    assert_false(json_streamer_feed(js, "{}", 2, &err));
    assert_null(json_streamer_pop(js, NULL));

    /* An unterminated top-level string or scalar is bounded too. */
    g_clear_error(&err);
    assert_true(json_streamer_feed(str, "\"", 1, NULL));
    for (int i = 0; i < 64 && !err; i++)
        json_streamer_feed(str, "a", 1, &err);
    assert_true(g_error_matches(err, JSON_ERROR, JSON_ERROR_TOO_BIG));

    g_clear_error(&err);
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        assert_true(json_streamer_feed(deep, i % 2 ? "{\"k\":" : "[", i % 2 ? 5 : 1, NULL));
    assert_false(json_streamer_feed(deep, "[", 1, &err));
    assert_true(g_error_matches(err, JSON_ERROR, JSON_ERROR_DEPTH));
}

static void test_streamer_garbage(void **state)
{
    g_autoptr(JsonStreamer) js = json_streamer_new(1024);
    static const char in[] = "garbage\n} {\"ok\": 1}x{\"a\":\"b\"}";
    static const char *const want[] = { "garbage", "}", "{\"ok\": 1}", "x", "{\"a\":\"b\"}" };
    size_t count = 0;
    char *msg;

    assert_true(json_streamer_feed(js, in, strlen(in), NULL));
    while ((msg = json_streamer_pop(js, NULL))) {
        assert_true(count < G_N_ELEMENTS(want));
        assert_string_equal(msg, want[count]);
        count++;
        g_free(msg);
    }
    assert_int_equal(count, G_N_ELEMENTS(want));

    /* A NUL byte is part of a scalar, not a delimiter; the parser then refuses it. */
    {
        g_autoptr(JsonStreamer) ns = json_streamer_new(64);
        g_autofree char *m = NULL;
        size_t len = 0;

        assert_true(json_streamer_feed(ns, "ab\0cd ", 6, NULL));
        m = json_streamer_pop(ns, &len);
        assert_int_equal(len, 5);
        assert_memory_equal(m, "ab\0cd", 5);
        assert_null(json_parse(m, len, NULL));
    }

    /* Random bytes: never a crash, never a message over the limit. */
    {
        g_autoptr(GRand) rand = g_rand_new_with_seed(7);
        g_autoptr(JsonStreamer) rs = json_streamer_new(256);

        for (int i = 0; i < 100000 && !json_streamer_failed(rs); i++) {
            static const char alphabet[] = "{}[]\"\\ ax\n";
            char c = g_rand_boolean(rand) ? alphabet[g_rand_int_range(rand, 0, 10)]
                                          : (char)g_rand_int_range(rand, 0, 256);
            size_t len;
            json_streamer_feed(rs, &c, 1, NULL);
            while ((msg = json_streamer_pop(rs, &len))) {
                assert_true(len <= 256);
                g_free(msg);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_surrogates),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_syntax),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_builders),
        cmocka_unit_test(test_large_object),
        cmocka_unit_test(test_streamer_bytewise),
        cmocka_unit_test(test_streamer_chunks),
        cmocka_unit_test(test_streamer_all_at_once),
        cmocka_unit_test(test_streamer_limits),
        cmocka_unit_test(test_streamer_garbage),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
