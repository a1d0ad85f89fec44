/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * acpi-pm, driven as ACPICA drives the PM1a registers: fixed event set-up
 * (acpi_ev_fixed_event_initialize(), acpi_enable_event() with its
 * read-back check), the SCI handler for the power button
 * (acpi_ev_fixed_event_detect()), and S5 (acpi_hw_legacy_sleep()); plus
 * the PM timer and TMR_STS, odd access widths, reset, save/load and a
 * hostile guest.
 */
#include <string.h>

#include "harness.h"
#include "vireo/acpi-pm.h"

#define PM "acpi-pm"
#define PM1_STS 0
#define PM1_EN  2
#define PM1_CNT 4
#define PM_TMR  8

#define TMR_STS         0x0001
#define BM_STS          0x0010
#define GBL_STS         0x0020
#define PWRBTN_STS      0x0100
#define SLPBTN_STS      0x0200
#define RTC_STS         0x0400
#define WAK_STS         0x8000
#define ALL_FIXED_STS   (TMR_STS | BM_STS | GBL_STS | PWRBTN_STS | SLPBTN_STS | RTC_STS | WAK_STS)

#define TMR_EN          0x0001
#define GBL_EN          0x0020
#define PWRBTN_EN       0x0100
#define SLPBTN_EN       0x0200
#define RTC_EN          0x0400
#define PCIEXP_WAKE_DIS 0x4000

#define SCI_EN          0x0001
#define SLP_TYP_MASK    0x1c00
#define SLP_EN          0x2000

#define NS              1000000000LL
#define PM_HZ           3579545LL

typedef struct Fixture {
    HarnessEnv *e;
    Device *dev;
} Fixture;

#define START_NS (77 * NS + 555)

static int fixture_setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->e = harness_env_new("pm", START_NS);
    f->dev = harness_device_new(f->e, PM, NULL);
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    Fixture *f = *state;

    device_free(f->dev);
    harness_env_free(f->e);
    g_free(f);
    return 0;
}

static uint16_t rd16(Device *d, unsigned off)
{
    return harness_read(d, off, 2);
}

static void wr16(Device *d, unsigned off, uint16_t v)
{
    harness_write(d, off, 2, v);
}

/* acpi_write_bit_register() for an enable bit: read-modify-write plus read-back. */
static void acpica_set_enable(Device *d, uint16_t bit, gboolean on)
{
    uint16_t en = rd16(d, PM1_EN);

    wr16(d, PM1_EN, on ? en | bit : en & ~bit);
    /* acpi_enable_event(): "Make sure that the hardware responded". */
    assert_int_equal(!!(rd16(d, PM1_EN) & bit), on);
}

/* acpi_ev_fixed_event_initialize() and acpi_hw_clear_acpi_status(). */
static void acpica_init(Device *d)
{
    static const uint16_t enables[] = { TMR_EN, GBL_EN, PWRBTN_EN, SLPBTN_EN, RTC_EN };

    for (size_t i = 0; i < G_N_ELEMENTS(enables); i++)
        acpica_set_enable(d, enables[i], FALSE);
    acpica_set_enable(d, PCIEXP_WAKE_DIS, TRUE);
    wr16(d, PM1_STS, ALL_FIXED_STS);
    /* acpi_enable(): already in ACPI mode, there is no SMI_CMD. */
    assert_int_equal(rd16(d, PM1_CNT) & SCI_EN, SCI_EN);
}

/* acpi_ev_fixed_event_detect(): returns the fixed events dispatched. */
static uint16_t acpica_sci(Device *d)
{
    uint16_t sts = rd16(d, PM1_STS), en = rd16(d, PM1_EN), handled = 0;
    static const uint16_t events[] = { TMR_STS, GBL_STS, PWRBTN_STS, SLPBTN_STS, RTC_STS };

    for (size_t i = 0; i < G_N_ELEMENTS(events); i++) {
        /* Each enable bit sits at its status bit's position. */
        if ((sts & events[i]) && (en & events[i])) {
            wr16(d, PM1_STS, events[i]);        /* write 1 to clear */
            handled |= events[i];
        }
    }
    return handled;
}

/* acpi_hw_legacy_sleep(): clear status, then SLP_TYP, then SLP_TYP + SLP_EN. */
static void acpica_sleep(Device *d, unsigned slp_typ)
{
    uint16_t cnt;

    wr16(d, PM1_STS, WAK_STS);
    wr16(d, PM1_STS, ALL_FIXED_STS);
    cnt = rd16(d, PM1_CNT);
    cnt &= ~(SLP_TYP_MASK | SLP_EN);
    cnt |= slp_typ << 10;
    wr16(d, PM1_CNT, cnt);
    cnt |= SLP_EN;
    wr16(d, PM1_CNT, cnt);
}

static uint32_t pm_timer(Device *d)
{
    return harness_read(d, PM_TMR, 4);
}

/* --- tests --- */

static void test_power_on(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;

    assert_int_equal(rd16(d, PM1_STS), 0);
    assert_int_equal(rd16(d, PM1_EN), 0);
    assert_int_equal(rd16(d, PM1_CNT), SCI_EN);
    assert_int_equal(pm_timer(d), 0);
    assert_false(f->e->irq.level);
    assert_int_equal(harness_timers_armed(f->e->timers), 0);
}

static void test_power_button_and_s5(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    HarnessMachine *m = &f->e->machine;

    acpica_init(d);
    assert_int_equal(rd16(d, PM1_EN), PCIEXP_WAKE_DIS);
    /* The button driver installs its handler. */
    acpica_set_enable(d, PWRBTN_EN, TRUE);
    assert_false(f->e->irq.level);

    /* QMP system_powerdown. */
    acpi_pm_press_power_button(d);
    assert_true(f->e->irq.level);
    assert_int_equal(acpica_sci(d), PWRBTN_STS);
    assert_false(f->e->irq.level);
    assert_int_equal(rd16(d, PM1_STS) & PWRBTN_STS, 0);

    /* The guest shuts down: S5, which is SLP_TYP 5 on this machine. */
    acpica_sleep(d, 5);
    assert_int_equal(m->poweroffs, 1);
    assert_int_equal(m->requests, 1);
    assert_int_equal(m->last, MACHINE_REQUEST_POWEROFF);
    /* SLP_EN reads 0; SLP_TYP stays. */
    assert_int_equal(rd16(d, PM1_CNT), SCI_EN | 5 << 10);

    /* Without PWRBTN_EN the press is only a status bit. */
    acpica_set_enable(d, PWRBTN_EN, FALSE);
    acpi_pm_press_power_button(d);
    assert_false(f->e->irq.level);
    assert_int_equal(rd16(d, PM1_STS) & PWRBTN_STS, PWRBTN_STS);
    /* Enabling it with the status set raises the SCI at once. */
    acpica_set_enable(d, PWRBTN_EN, TRUE);
    assert_true(f->e->irq.level);
}

static void test_other_sleep_states(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;

    acpica_init(d);
    harness_take_guest_warnings();
    for (unsigned typ = 0; typ < 8; typ++) {
        if (typ == 5)
            continue;
        acpica_sleep(d, typ);
        /* Refused with a warning, reported as an immediate wake-up. */
        assert_int_equal(rd16(d, PM1_STS) & WAK_STS, WAK_STS);
        assert_false(f->e->irq.level);
    }
    assert_int_equal(harness_take_guest_warnings(), 7);
    assert_int_equal(f->e->machine.requests, 0);
    wr16(d, PM1_STS, WAK_STS);
    assert_int_equal(rd16(d, PM1_STS), 0);
    /* SLP_TYP without SLP_EN does nothing. */
    wr16(d, PM1_CNT, 5 << 10);
    assert_int_equal(f->e->machine.requests, 0);
}

static void test_pm_timer(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    HarnessTimers *t = f->e->timers;
    uint32_t prev = 0;

    /* 3.579545 MHz, 24 bits, from the monotonic clock. */
    harness_timers_advance(t, NS);
    assert_int_equal(pm_timer(d), PM_HZ);
    harness_timers_advance(t, 1000);
    assert_int_equal(pm_timer(d), PM_HZ + 3);       /* 3.58 ticks per us */
    /* It wraps at 2^24 (4.69 s) and never runs backwards in between. */
    for (int i = 0; i < 1000; i++) {
        uint32_t v;

        harness_timers_advance(t, 7777777);
        v = pm_timer(d);
        assert_true(v <= 0xffffff);
        if (v < prev)
            assert_true(prev > 0xf00000 && v < 0x100000);
        prev = v;
    }
    /* Narrow reads see the same counter; the top byte reads 0. */
    assert_int_equal(harness_read(d, PM_TMR, 1) | harness_read(d, PM_TMR + 1, 2) << 8,
                     pm_timer(d));
    assert_int_equal(harness_read(d, PM_TMR + 3, 1), 0);
    /* Read-only. */
    harness_write(d, PM_TMR, 4, 0);
    assert_int_not_equal(pm_timer(d), 0);
}

static void test_tmr_sts(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    HarnessTimers *t = f->e->timers;
    int64_t toggle = START_NS + ((1LL << 23) * NS + PM_HZ - 1) / PM_HZ;  /* bit 23 flips */

    acpica_init(d);
    /* Polled: TMR_STS appears once bit 23 has toggled; no timer needed. */
    harness_timers_advance(t, toggle - 1 - harness_timers_now(t));
    assert_int_equal(pm_timer(d), (1 << 23) - 1);
    assert_int_equal(rd16(d, PM1_STS) & TMR_STS, 0);
    harness_timers_advance(t, 1);
    assert_int_equal(rd16(d, PM1_STS) & TMR_STS, TMR_STS);
    assert_int_equal(harness_timers_armed(t), 0);
    assert_false(f->e->irq.level);

    /* With TMR_EN the SCI comes exactly at the next toggle. */
    wr16(d, PM1_STS, TMR_STS);
    acpica_set_enable(d, TMR_EN, TRUE);
    assert_int_equal(harness_timers_armed(t), 1);
    toggle = START_NS + ((2LL << 23) * NS + PM_HZ - 1) / PM_HZ;
    assert_int_equal(harness_timers_next(t), toggle);
    harness_timers_advance(t, toggle - 1 - harness_timers_now(t));
    assert_false(f->e->irq.level);
    harness_timers_advance(t, 1);
    assert_true(f->e->irq.level);
    assert_int_equal(acpica_sci(d), TMR_STS);
    assert_false(f->e->irq.level);
    /* And again 2^23 ticks later. */
    harness_timers_advance(t, ((1LL << 23) * NS) / PM_HZ + 1);
    assert_true(f->e->irq.level);
    /* Status set: no timer until the guest clears it. */
    assert_int_equal(harness_timers_armed(t), 0);
    acpica_set_enable(d, TMR_EN, FALSE);
    assert_false(f->e->irq.level);
    wr16(d, PM1_STS, TMR_STS);
    assert_int_equal(harness_timers_armed(t), 0);
}

static void test_access_widths(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;

    wr16(d, PM1_EN, PWRBTN_EN | RTC_EN);
    acpi_pm_press_power_button(d);
    /* One 4-byte read of the event block: status low, enable high. */
    assert_int_equal(harness_read(d, PM1_STS, 4),
                     PWRBTN_STS | (uint32_t)(PWRBTN_EN | RTC_EN) << 16);
    /* A 2-byte read straddling status and enable. */
    assert_int_equal(harness_read(d, 1, 2), (PWRBTN_STS >> 8) | ((PWRBTN_EN | RTC_EN) & 0xff) << 8);
    /* A 1-byte write-1-to-clear of the status high byte. */
    harness_write(d, 1, 1, PWRBTN_STS >> 8);
    assert_int_equal(rd16(d, PM1_STS), 0);
    assert_false(f->e->irq.level);
    /* A 4-byte write at 0: clears status bits, sets the enables. */
    acpi_pm_press_power_button(d);
    harness_write(d, PM1_STS, 4, PWRBTN_STS | (uint32_t)TMR_EN << 16);
    assert_int_equal(rd16(d, PM1_STS), 0);
    assert_int_equal(rd16(d, PM1_EN), TMR_EN);
    /* A 1-byte write of the enable high byte keeps the low byte. */
    harness_write(d, PM1_EN + 1, 1, PWRBTN_EN >> 8);
    assert_int_equal(rd16(d, PM1_EN), TMR_EN | PWRBTN_EN);
    /* SCI_EN cannot be cleared. */
    wr16(d, PM1_CNT, 0);
    assert_int_equal(rd16(d, PM1_CNT), SCI_EN);
    /* S5 by a single byte write to the control register's high byte. */
    harness_write(d, PM1_CNT + 1, 1, (5 << 2) | (SLP_EN >> 8));
    assert_int_equal(f->e->machine.poweroffs, 1);
    /* An 8-byte read of the timer and the reserved bytes after it. */
    harness_timers_advance(f->e->timers, 1000000);
    assert_int_equal(harness_read(d, PM_TMR, 8), pm_timer(d));
    /* Reserved bytes read 0 and ignore writes, with a warning. */
    harness_take_guest_warnings();
    assert_int_equal(harness_read(d, 6, 2), 0);
    harness_write(d, 12, 4, 0xffffffff);
    assert_int_equal(harness_read(d, 12, 4), 0);
    assert_int_equal(harness_take_guest_warnings(), 3);
    assert_int_equal(f->e->machine.requests, 1);
}

static void test_reset(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    uint32_t before;

    wr16(d, PM1_EN, TMR_EN | PWRBTN_EN);
    wr16(d, PM1_CNT, 3 << 10);
    acpi_pm_press_power_button(d);
    harness_timers_advance(f->e->timers, 3 * NS);
    assert_true(f->e->irq.level);
    before = pm_timer(d);

    device_reset(d);
    assert_false(f->e->irq.level);
    assert_int_equal(rd16(d, PM1_STS), 0);
    assert_int_equal(rd16(d, PM1_EN), 0);
    assert_int_equal(rd16(d, PM1_CNT), SCI_EN);
    assert_int_equal(harness_timers_armed(f->e->timers), 0);
    /* The timer runs on. */
    assert_int_equal(pm_timer(d), before);
    harness_timers_advance(f->e->timers, 10 * NS);
    assert_int_equal(rd16(d, PM1_STS) & TMR_STS, TMR_STS);
    assert_false(f->e->irq.level);
}

static void test_save_load(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    g_autoptr(HarnessEnv) e2 = harness_env_new("pm", 5 * NS);
    Device *d2;

    acpica_init(d);
    acpica_set_enable(d, TMR_EN, TRUE);
    acpica_set_enable(d, PWRBTN_EN, TRUE);
    wr16(d, PM1_CNT, 3 << 10);
    harness_timers_advance(f->e->timers, 1234567890);
    acpi_pm_press_power_button(d);
    assert_true(f->e->irq.level);

    /* Another process with another monotonic clock. */
    d2 = harness_clone(d, e2, PM, NULL);
    assert_true(e2->irq.level);
    for (unsigned off = 0; off < 16; off += 2)
        assert_int_equal(rd16(d, off), rd16(d2, off));
    /* The same events at the same moments from here on. */
    for (int i = 0; i < 50; i++) {
        int64_t step = 100000000 + i * 1234567;

        harness_timers_advance(f->e->timers, step);
        harness_timers_advance(e2->timers, step);
        assert_int_equal(f->e->irq.level, e2->irq.level);
        assert_int_equal(pm_timer(d), pm_timer(d2));
        assert_int_equal(acpica_sci(d), acpica_sci(d2));
    }
    acpica_sleep(d2, 5);
    assert_int_equal(e2->machine.poweroffs, 1);
    device_free(d2);
}

static void test_bad_state(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    static const HarnessPoke pokes[] = {
        { "sts", 0, 0x02 }, { "cnt", 0, SCI_EN }, { "cnt", 1, 0x20 },
        { "tmr-checked", 7, 0x01 }, { "tmr-elapsed-ns", 7, 0x80 },
    };

    wr16(d, PM1_EN, PWRBTN_EN);
    harness_timers_advance(f->e->timers, 3 * NS);
    harness_check_corrupt_state(d, pokes, G_N_ELEMENTS(pokes), FALSE);
    acpi_pm_press_power_button(d);
    assert_true(f->e->irq.level);
}

static void test_options(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("pm", 0);

    g_free(harness_device_new_fail(e, PM, "s3=on", VIREO_ERROR_INVALID_ARGUMENT));
    e->env.timers = NULL;
    g_free(harness_device_new_fail(e, PM, NULL, VIREO_ERROR_INVALID_ARGUMENT));
}

/* QMP presses the button from the event loop while a vCPU handles SCIs. */
static gpointer press_thread(gpointer data)
{
    Device *d = data;

    for (int i = 0; i < 20000; i++)
        acpi_pm_press_power_button(d);
    return NULL;
}

static void test_press_from_thread(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    GThread *thread;
    unsigned handled = 0;

    acpica_init(d);
    acpica_set_enable(d, PWRBTN_EN, TRUE);
    thread = g_thread_new("loop", press_thread, d);
    for (int i = 0; i < 20000; i++)
        handled += acpica_sci(d) == PWRBTN_STS;
    g_thread_join(thread);
    handled += acpica_sci(d) == PWRBTN_STS;
    assert_true(handled >= 1);
    assert_false(f->e->irq.level);
}

static void hostile_extra(Device *dev, HarnessEnv *e, GRand *rand)
{
    acpi_pm_press_power_button(dev);
}

static void test_hostile_guest(void **state)
{
    Fixture *f = *state;

    harness_hostile(f->dev, f->e, 16, 0xacb1, 300000, hostile_extra);
    harness_take_guest_warnings();
    device_reset(f->dev);
    acpica_init(f->dev);
    acpica_set_enable(f->dev, PWRBTN_EN, TRUE);
    acpi_pm_press_power_button(f->dev);
    assert_int_equal(acpica_sci(f->dev), PWRBTN_STS);
    assert_false(f->e->irq.level);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_on, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_power_button_and_s5, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_other_sleep_states, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pm_timer, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tmr_sts, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_access_widths, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reset, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_save_load, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_state, fixture_setup, fixture_teardown),
        cmocka_unit_test(test_options),
        cmocka_unit_test_setup_teardown(test_press_from_thread, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_guest, fixture_setup, fixture_teardown),
    };

    harness_init();
    return cmocka_run_group_tests_name("acpi-pm", tests, NULL, NULL);
}
