/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Auto-converge's decisions without a guest: when the throttle starts,
 * how it climbs and where it stops, and that it stays off when disabled
 * or when the link keeps up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vireo/migration.h"

#define MIB (1024 * 1024ull)

static MigParams defaults(void)
{
    MigParams p = {
        .auto_converge = TRUE,
        .throttle_initial = MIG_DEFAULT_THROTTLE_INITIAL,
        .throttle_increment = MIG_DEFAULT_THROTTLE_INCREMENT,
        .max_throttle = MIG_DEFAULT_MAX_THROTTLE,
        .throttle_trigger_threshold = MIG_DEFAULT_THROTTLE_TRIGGER,
    };
    return p;
}

static void test_climbs_every_second_fast_pass(void **state)
{
    MigParams p = defaults();
    MigConverge c = { 0 };
    const int want[] = { 0, 20, 20, 30, 30, 40 };

    (void)state;
    for (size_t i = 0; i < G_N_ELEMENTS(want); i++)
        assert_int_equal(mig_converge_step(&c, &p, 100 * MIB, 100 * MIB), want[i]);
}

static void test_caps_at_max(void **state)
{
    MigParams p = defaults();
    MigConverge c = { 0 };
    int pct = 0;

    (void)state;
    p.max_throttle = 75;
    p.throttle_increment = 30;
    for (int i = 0; i < 20; i++)
        pct = mig_converge_step(&c, &p, 10 * MIB, 1 * MIB);
    assert_int_equal(pct, 75);
}

static void test_slow_pass_resets_count(void **state)
{
    MigParams p = defaults();
    MigConverge c = { 0 };

    (void)state;
    /* Fast, slow, fast: never two fast passes in a row. */
    for (int i = 0; i < 6; i++)
        assert_int_equal(mig_converge_step(&c, &p, i % 2 ? 1 * MIB : 100 * MIB, 100 * MIB), 0);
    /* Exactly at the threshold (50% of what was sent) is not too fast. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(mig_converge_step(&c, &p, 50 * MIB, 100 * MIB), 0);
    assert_int_equal(mig_converge_step(&c, &p, 50 * MIB + 1, 100 * MIB), 0);
    assert_int_equal(mig_converge_step(&c, &p, 50 * MIB + 1, 100 * MIB), 20);
    /* The throttle stays where it got to when passes slow down. */
    assert_int_equal(mig_converge_step(&c, &p, 0, 100 * MIB), 20);
}

static void test_disabled(void **state)
{
    MigParams p = defaults();
    MigConverge c = { 0 };

    (void)state;
    p.auto_converge = FALSE;
    for (int i = 0; i < 10; i++)
        assert_int_equal(mig_converge_step(&c, &p, 1000 * MIB, 1 * MIB), 0);
}

static void test_huge_figures(void **state)
{
    MigParams p = defaults();
    MigConverge c = { 0 };

    (void)state;
    /* No overflow in the threshold arithmetic. */
    p.throttle_trigger_threshold = 100;
    assert_int_equal(mig_converge_step(&c, &p, UINT64_MAX, UINT64_MAX), 0);
    assert_int_equal(mig_converge_step(&c, &p, UINT64_MAX, UINT64_MAX - 1), 0);
    assert_int_equal(mig_converge_step(&c, &p, UINT64_MAX, UINT64_MAX - 1), 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_climbs_every_second_fast_pass),
        cmocka_unit_test(test_caps_at_max),
        cmocka_unit_test(test_slow_pass_resets_count),
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_huge_figures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
