/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The one-byte devices: reset-control (0xcf9), debug-exit (0x501) and
 * post-sink (0x80), and the device registry they all live in.
 */
#include <string.h>

#include "harness.h"

static void test_registry(void **state)
{
    static const char *const types[] = {
        "acpi-pm", "debug-exit", "i8042", "post-sink", "reset-control", "rtc-mc146818",
        "uart-16550a",
    };
    g_autoptr(GPtrArray) list = device_type_list();
    g_autoptr(HarnessEnv) e = harness_env_new("x", 0);
    g_autoptr(GError) err = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(types); i++) {
        const DeviceType *t = device_type_find(types[i]);
        const DeviceOps *ops;

        assert_non_null(t);
        assert_non_null(t->description);
        ops = t->ops;
        /* Every one of them can migrate. */
        assert_non_null(ops->read);
        assert_non_null(ops->write);
        assert_non_null(ops->save);
        assert_non_null(ops->load);
        assert_non_null(ops->free);
    }
    assert_true(list->len >= G_N_ELEMENTS(types));
    assert_null(device_create("no-such-device", &e->env, NULL, &err));
    assert_true(g_error_matches(err, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT));
}

/* --- reset-control --- */

static void test_reset_control(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("reset", 0);
    Device *d = harness_device_new(e, "reset-control", NULL);

    assert_int_equal(harness_read8(d, 0), 0);
    /* SYS_RST alone (bit 1) only selects the kind of reset. */
    harness_write8(d, 0, 0x02);
    assert_int_equal(e->machine.requests, 0);
    assert_int_equal(harness_read8(d, 0), 0x02);
    /* RST_CPU: the FADT's RESET_VALUE 6. */
    harness_write8(d, 0, 0x06);
    assert_int_equal(e->machine.resets, 1);
    assert_int_equal(e->machine.last, MACHINE_REQUEST_RESET);
    assert_int_equal(harness_read8(d, 0), 0x02);
    harness_write8(d, 0, 0x0e);
    assert_int_equal(e->machine.resets, 2);
    assert_int_equal(harness_read8(d, 0), 0x0a);
    assert_int_equal(e->machine.requests, 2);

    device_reset(d);
    assert_int_equal(harness_read8(d, 0), 0);
    device_free(d);
}

static void test_reset_control_state(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("reset", 0);
    g_autoptr(HarnessEnv) e2 = harness_env_new("reset", 0);
    Device *d = harness_device_new(e, "reset-control", NULL);
    g_autoptr(GBytes) good = NULL;
    g_autoptr(GBytes) bad = NULL;
    Device *d2;

    harness_write8(d, 0, 0x0b);
    d2 = harness_clone(d, e2, "reset-control", NULL);
    assert_int_equal(harness_read8(d2, 0), 0x0b);
    /* Loading does not reset the machine; a later write does. */
    assert_int_equal(e2->machine.requests, 0);
    harness_write8(d2, 0, 0x04);
    assert_int_equal(e2->machine.resets, 1);

    good = harness_save(d);
    harness_check_bad_loads(d, good);
    bad = harness_state_poked(good, "value", 0, 0x04);
    harness_load_fails(d, bad);
    assert_int_equal(harness_read8(d, 0), 0x0b);
    device_free(d2);
    device_free(d);
}

/* --- debug-exit --- */

static void test_debug_exit(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("debug-exit", 0);
    Device *d = harness_device_new(e, "debug-exit", NULL);
    static const struct {
        uint8_t v;
        int status;
    } cases[] = { { 0x00, 1 }, { 0x01, 3 }, { 0x10, 0x21 }, { 0x7f, 0xff }, { 0xff, 0x1ff } };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        harness_write8(d, 0, cases[i].v);
        assert_int_equal(e->machine.exits, i + 1);
        assert_int_equal(e->machine.last, MACHINE_REQUEST_EXIT);
        assert_int_equal(e->machine.last_status, cases[i].status);
    }
    assert_int_equal(harness_read8(d, 0), 0xff);
    assert_int_equal(e->machine.requests, G_N_ELEMENTS(cases));
    device_reset(d);                        /* no state: a no-op */
    device_free(d);
}

static void test_debug_exit_state(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("debug-exit", 0);
    g_autoptr(HarnessEnv) e2 = harness_env_new("debug-exit", 0);
    Device *d = harness_device_new(e, "debug-exit", NULL);
    g_autoptr(GBytes) good = harness_save(d);
    Device *d2 = harness_clone(d, e2, "debug-exit", NULL);

    harness_write8(d2, 0, 0x03);
    assert_int_equal(e2->machine.last_status, 7);
    harness_check_bad_loads(d, good);
    device_free(d2);
    device_free(d);
}

/* --- post-sink --- */

static void test_post(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("post", 0);
    Device *d = harness_device_new(e, "post-sink", NULL);

    harness_take_guest_warnings();
    /* Linux's io_delay writes: silent, no requests. */
    for (unsigned i = 0; i < 10000; i++)
        harness_write8(d, 0, i);
    assert_int_equal(harness_read8(d, 0), 9999 & 0xff);
    assert_int_equal(harness_take_guest_warnings(), 0);
    assert_int_equal(e->machine.requests, 0);
    device_reset(d);
    assert_int_equal(harness_read8(d, 0), 0);
    device_free(d);
}

static void test_post_state(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("post", 0);
    g_autoptr(HarnessEnv) e2 = harness_env_new("post", 0);
    Device *d = harness_device_new(e, "post-sink", NULL);
    g_autoptr(GBytes) good = NULL;
    Device *d2;

    harness_write8(d, 0, 0x55);
    d2 = harness_clone(d, e2, "post-sink", NULL);
    assert_int_equal(harness_read8(d2, 0), 0x55);
    good = harness_save(d);
    harness_check_bad_loads(d, good);
    assert_int_equal(harness_read8(d, 0), 0x55);
    device_free(d2);
    device_free(d);
}

static void test_options(void **state)
{
    static const char *const types[] = { "reset-control", "debug-exit", "post-sink" };
    g_autoptr(HarnessEnv) e = harness_env_new("x", 0);

    for (size_t i = 0; i < G_N_ELEMENTS(types); i++)
        g_free(harness_device_new_fail(e, types[i], "iosize=2", VIREO_ERROR_INVALID_ARGUMENT));
}

static void test_hostile_guests(void **state)
{
    static const char *const types[] = { "reset-control", "debug-exit", "post-sink" };

    for (size_t i = 0; i < G_N_ELEMENTS(types); i++) {
        g_autoptr(HarnessEnv) e = harness_env_new("x", 0);
        Device *d = harness_device_new(e, types[i], NULL);

        harness_hostile(d, e, 1, 0x501 + i, 100000, NULL);
        /* Only debug-exit and reset-control make requests, and post-sink never warns. */
        if (strcmp(types[i], "post-sink") == 0) {
            assert_int_equal(e->machine.requests, 0);
            assert_int_equal(harness_take_guest_warnings(), 0);
        }
        harness_take_guest_warnings();
        device_free(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_reset_control),
        cmocka_unit_test(test_reset_control_state),
        cmocka_unit_test(test_debug_exit),
        cmocka_unit_test(test_debug_exit_state),
        cmocka_unit_test(test_post),
        cmocka_unit_test(test_post_state),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_hostile_guests),
    };

    harness_init();
    return cmocka_run_group_tests_name("small devices", tests, NULL, NULL);
}
