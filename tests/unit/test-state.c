/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The state section format: round trips and every way a stream can be bad. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "vireo/state.h"
#include "vireo/util.h"

static GBytes *sample(void)
{
    g_autoptr(StateWriter) w = state_writer_new();
    uint8_t blob[5] = { 1, 2, 3, 4, 5 };

    state_writer_begin_section(w, "dev0", 2);
    state_write_u8(w, "a", 0xab);
    state_write_u16(w, "b", 0xbeef);
    state_write_u32(w, "c", 0xdeadbeef);
    state_write_u64(w, "d", 0x0123456789abcdefULL);
    state_write_bytes(w, "e", blob, sizeof(blob));
    state_writer_end_section(w);
    state_writer_begin_section(w, "dev1", 1);
    state_write_u8(w, "x", 7);
    state_writer_end_section(w);
    return state_writer_steal_bytes(w);
}

static void test_round_trip(void **unused)
{
    g_autoptr(GBytes) b = sample();
    gsize len;
    const uint8_t *data = g_bytes_get_data(b, &len);
    g_autoptr(StateReader) r = state_reader_new(data, len);
    g_autoptr(GError) err = NULL;
    uint32_t version;
    uint8_t a, x, blob[5];
    uint16_t bb;
    uint32_t c;
    uint64_t d;
    g_autofree char *peek = state_reader_peek_section(r);

    assert_string_equal(peek, "dev0");
    assert_true(state_reader_begin_section(r, "dev0", 3, &version, &err));
    assert_int_equal(version, 2);
    assert_true(state_read_u8(r, "a", &a, &err));
    assert_true(state_read_u16(r, "b", &bb, &err));
    assert_true(state_read_u32(r, "c", &c, &err));
    assert_true(state_read_u64(r, "d", &d, &err));
    assert_true(state_read_bytes(r, "e", blob, sizeof(blob), &err));
    assert_true(state_reader_end_section(r, &err));
    assert_int_equal(a, 0xab);
    assert_int_equal(bb, 0xbeef);
    assert_int_equal(c, 0xdeadbeef);
    assert_true(d == 0x0123456789abcdefULL);
    assert_int_equal(blob[4], 5);
    assert_true(state_reader_begin_section(r, "dev1", 1, &version, &err));
    assert_true(state_read_u8(r, "x", &x, &err));
    assert_true(state_reader_end_section(r, &err));
    assert_int_equal(x, 7);
    assert_true(state_reader_at_end(r));
}

static void test_wrong_name_and_version(void **unused)
{
    g_autoptr(GBytes) b = sample();
    gsize len;
    const uint8_t *data = g_bytes_get_data(b, &len);
    g_autoptr(StateReader) r = state_reader_new(data, len);
    g_autoptr(GError) err = NULL;
    uint32_t version;

    assert_false(state_reader_begin_section(r, "other", 3, &version, &err));
    assert_non_null(strstr(err->message, "found 'dev0'"));
    g_clear_error(&err);
    /* A newer stream than this build reads. */
    assert_false(state_reader_begin_section(r, "dev0", 1, &version, &err));
    assert_int_equal(err->code, VIREO_ERROR_INVALID_STATE);
    assert_non_null(strstr(err->message, "version 2"));
    g_clear_error(&err);
    /* The reader is still usable at the same place. */
    assert_true(state_reader_begin_section(r, "dev0", 2, &version, &err));
}

static void test_field_mismatch(void **unused)
{
    g_autoptr(GBytes) b = sample();
    gsize len;
    const uint8_t *data = g_bytes_get_data(b, &len);
    g_autoptr(StateReader) r = state_reader_new(data, len);
    g_autoptr(GError) err = NULL;
    uint32_t version, v32;
    uint8_t a;

    assert_true(state_reader_begin_section(r, "dev0", 2, &version, &err));
    /* Right name, wrong type. */
    assert_false(state_read_u32(r, "a", &v32, &err));
    assert_non_null(strstr(err->message, "expected field 'a' (u32), found 'a' (u8)"));
    g_clear_error(&err);

    r = (state_reader_free(r), state_reader_new(data, len));
    assert_true(state_reader_begin_section(r, "dev0", 2, &version, &err));
    assert_true(state_read_u8(r, "a", &a, &err));
    /* Fields left over: the stream has state this code would silently drop. */
    assert_false(state_reader_end_section(r, &err));
    assert_non_null(strstr(err->message, "does not know"));
}

static void test_truncated_everywhere(void **unused)
{
    g_autoptr(GBytes) b = sample();
    gsize len;
    const uint8_t *data = g_bytes_get_data(b, &len);

    /* Every prefix of a valid stream fails cleanly somewhere, never reads past it. */
    for (gsize cut = 0; cut < len; cut++) {
        g_autofree uint8_t *copy = g_memdup2(data, cut);
        g_autoptr(StateReader) r = state_reader_new(copy, cut);
        g_autoptr(GError) err = NULL;
        uint32_t version, c;
        uint8_t a, x, blob[5];
        uint16_t bb;
        uint64_t d;
        gboolean ok =
            state_reader_begin_section(r, "dev0", 2, &version, &err) &&
            state_read_u8(r, "a", &a, &err) && state_read_u16(r, "b", &bb, &err) &&
            state_read_u32(r, "c", &c, &err) && state_read_u64(r, "d", &d, &err) &&
            state_read_bytes(r, "e", blob, 5, &err) && state_reader_end_section(r, &err) &&
            state_reader_begin_section(r, "dev1", 1, &version, &err) &&
            state_read_u8(r, "x", &x, &err) && state_reader_end_section(r, &err);
        assert_false(ok);
        assert_non_null(err);
    }
}

static void test_garbage(void **unused)
{
    GRand *rand = g_rand_new_with_seed(42);

    for (int round = 0; round < 2000; round++) {
        g_autoptr(GBytes) b = sample();
        gsize len;
        const void *data = g_bytes_get_data(b, &len);
        g_autofree uint8_t *copy = g_memdup2(data, len);
        uint8_t buf[64];
        size_t got;

        for (int i = 0; i < 3; i++)
            copy[g_rand_int_range(rand, 0, len)] = g_rand_int(rand);
        {
            g_autoptr(StateReader) r = state_reader_new(copy, len);
            uint32_t version;
            /* Whatever happens, only defined errors. */
            while (!state_reader_at_end(r)) {
                g_autofree char *name = state_reader_peek_section(r);
                if (!name || !state_reader_begin_section(r, name, 10, &version, NULL))
                    break;
                if (!state_read_bytes_var(r, "e", buf, sizeof(buf), &got, NULL))
                    break;
            }
        }
    }
    g_rand_free(rand);
}

static void test_skip_section(void **unused)
{
    g_autoptr(GBytes) b = sample();
    gsize len;
    const uint8_t *data = g_bytes_get_data(b, &len);
    g_autoptr(StateReader) r = state_reader_new(data, len);
    g_autoptr(GError) err = NULL;
    uint32_t version;

    assert_true(state_reader_skip_section(r, &err));
    assert_true(state_reader_begin_section(r, "dev1", 1, &version, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_wrong_name_and_version),
        cmocka_unit_test(test_field_mismatch),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_skip_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
