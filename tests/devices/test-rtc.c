/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rtc-mc146818, driven as Linux drives it (drivers/rtc/rtc-mc146818-lib.c:
 * mc146818_set_time() and mc146818_get_time() with mc146818_avoid_UIP()),
 * on the fake monotonic clock (clock=rt) so every second boundary is
 * exact: UIP, the periodic, update and alarm interrupts, formats, the CMOS
 * memory-size bytes, options, reset, save/load and a hostile guest.
 */
#include <string.h>

#include "harness.h"

#define RTC "rtc-mc146818"
#define RTC_OPTS "clock=rt"

#define SECONDS         0x00
#define SECONDS_ALARM   0x01
#define MINUTES         0x02
#define MINUTES_ALARM   0x03
#define HOURS           0x04
#define HOURS_ALARM     0x05
#define DAY_OF_WEEK     0x06
#define DAY_OF_MONTH    0x07
#define MONTH           0x08
#define YEAR            0x09
#define REG_A           0x0a
#define REG_B           0x0b
#define REG_C           0x0c
#define REG_D           0x0d
#define CENTURY         0x32

#define A_UIP           0x80
#define A_DIV_RESET2    0x70
#define B_SET           0x80
#define B_PIE           0x40
#define B_AIE           0x20
#define B_UIE           0x10
#define B_SQWE          0x08
#define B_DM_BINARY     0x04
#define B_24H           0x02
#define C_IRQF          0x80
#define C_PF            0x40
#define C_AF            0x20
#define C_UF            0x10

#define NS              1000000000LL
#define MS              1000000LL
#define US              1000LL

typedef struct Fixture {
    HarnessEnv *e;
    Device *dev;
} Fixture;

/* The fake clock starts well away from zero, at no particular phase. */
#define START_NS (1000 * NS + 123456789)

static int fixture_setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->e = harness_env_new("rtc", START_NS);
    f->dev = harness_device_new(f->e, RTC, RTC_OPTS);
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

/* Each port access takes this long, as a VM exit would. */
static int64_t io_cost_ns;
static HarnessTimers *io_clock;

static void io_tick(void)
{
    if (io_cost_ns && io_clock)
        harness_timers_advance(io_clock, io_cost_ns);
}

/* CMOS_READ()/CMOS_WRITE(): index port, then data port. */
static uint8_t cmos_read(Device *d, uint8_t idx)
{
    harness_write8(d, 0, idx);
    io_tick();
    return harness_read8(d, 1);
}

static void cmos_write(Device *d, uint8_t idx, uint8_t v)
{
    harness_write8(d, 0, idx);
    io_tick();
    harness_write8(d, 1, v);
}

static uint8_t bin2bcd(unsigned v)
{
    return (v / 10) << 4 | v % 10;
}

static unsigned bcd2bin(uint8_t v)
{
    return (v >> 4) * 10 + (v & 0x0f);
}

typedef struct RtcTm {
    unsigned sec, min, hour, mday, mon, year, wday;
} RtcTm;

/* mc146818_set_time(), with the FADT's century register. */
static void linux_set_time(Device *d, const RtcTm *tm)
{
    uint8_t save_control, save_freq_select;
    uint8_t yrs = tm->year % 100, century = tm->year / 100;
    uint8_t mon = tm->mon, day = tm->mday, hrs = tm->hour, min = tm->min, sec = tm->sec;

    save_control = cmos_read(d, REG_B);
    if (!(save_control & B_DM_BINARY)) {
        sec = bin2bcd(sec);
        min = bin2bcd(min);
        hrs = bin2bcd(hrs);
        day = bin2bcd(day);
        mon = bin2bcd(mon);
        yrs = bin2bcd(yrs);
        century = bin2bcd(century);
    }
    cmos_write(d, REG_B, save_control | B_SET);
    save_freq_select = cmos_read(d, REG_A);
    cmos_write(d, REG_A, save_freq_select | A_DIV_RESET2);
    cmos_write(d, YEAR, yrs);
    cmos_write(d, MONTH, mon);
    cmos_write(d, DAY_OF_MONTH, day);
    cmos_write(d, HOURS, hrs);
    cmos_write(d, MINUTES, min);
    cmos_write(d, SECONDS, sec);
    cmos_write(d, CENTURY, century);
    cmos_write(d, REG_B, save_control);
    cmos_write(d, REG_A, save_freq_select);
}

/* udelay(): the fake clock moves, or (clock=host) real time passes. */
static void linux_udelay(HarnessTimers *clock, int64_t us)
{
    if (clock)
        harness_timers_advance(clock, us * US);
    else
        g_usleep(us);
}

/*
 * mc146818_get_time(): mc146818_avoid_UIP() rereads until UIP is clear
 * around the whole read and the seconds did not change, waiting 100 us
 * between tries. Returns the number of tries, 0 for failure. @clock is
 * NULL for a device on the host's real-time clock.
 */
static unsigned linux_get_time(Device *d, HarnessTimers *clock, RtcTm *tm)
{
    for (unsigned i = 0; i < 100; i++) {
        uint8_t seconds, century, ctrl;

        seconds = cmos_read(d, SECONDS);
        if (cmos_read(d, REG_A) & A_UIP) {
            linux_udelay(clock, 100);
            continue;
        }
        if (seconds != cmos_read(d, SECONDS))
            continue;
        tm->sec = seconds;
        tm->min = cmos_read(d, MINUTES);
        tm->hour = cmos_read(d, HOURS);
        tm->mday = cmos_read(d, DAY_OF_MONTH);
        tm->mon = cmos_read(d, MONTH);
        tm->year = cmos_read(d, YEAR);
        tm->wday = cmos_read(d, DAY_OF_WEEK);
        century = cmos_read(d, CENTURY);
        ctrl = cmos_read(d, REG_B);
        if (cmos_read(d, REG_A) & A_UIP) {
            linux_udelay(clock, 100);
            continue;
        }
        if (seconds != cmos_read(d, SECONDS))
            continue;
        if (!(ctrl & B_DM_BINARY)) {
            tm->sec = bcd2bin(tm->sec);
            tm->min = bcd2bin(tm->min);
            tm->hour = bcd2bin(tm->hour);
            tm->mday = bcd2bin(tm->mday);
            tm->mon = bcd2bin(tm->mon);
            tm->year = bcd2bin(tm->year);
            tm->wday = bcd2bin(tm->wday);
            century = bcd2bin(century);
        }
        tm->year += century * 100;
        return i + 1;
    }
    return 0;
}

static void assert_time(Device *d, HarnessTimers *clock, unsigned year, unsigned mon,
                        unsigned mday, unsigned hour, unsigned min, unsigned sec)
{
    RtcTm tm;

    assert_true(linux_get_time(d, clock, &tm) > 0);
    if (tm.year != year || tm.mon != mon || tm.mday != mday || tm.hour != hour ||
        tm.min != min || tm.sec != sec)
        fail_msg("RTC reads %04u-%02u-%02u %02u:%02u:%02u, expected "
                 "%04u-%02u-%02u %02u:%02u:%02u", tm.year, tm.mon, tm.mday, tm.hour, tm.min,
                 tm.sec, year, mon, mday, hour, min, sec);
}

/*
 * Sets the clock the Linux way; the divider restarts, so the next update
 * comes 500 ms later. Returns the fake time of that update.
 */
static int64_t set_time(Device *d, HarnessTimers *clock, unsigned year, unsigned mon,
                        unsigned mday, unsigned hour, unsigned min, unsigned sec)
{
    RtcTm tm = { .year = year, .mon = mon, .mday = mday, .hour = hour, .min = min, .sec = sec };

    linux_set_time(d, &tm);
    return harness_timers_now(clock) + 500 * MS;
}

/* --- tests --- */

static void test_power_on(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    RtcTm tm;

    /* 24-hour BCD, 32.768 kHz with the 1024 Hz rate, valid RAM and time. */
    assert_int_equal(cmos_read(d, REG_A) & ~A_UIP, 0x26);
    assert_int_equal(cmos_read(d, REG_B), B_24H);
    assert_int_equal(cmos_read(d, REG_C), 0);
    assert_int_equal(cmos_read(d, REG_D), 0x80);
    assert_false(f->e->irq.level);
    assert_int_equal(harness_timers_armed(f->e->timers), 0);
    /* Starts at the host's time (UTC). */
    assert_true(linux_get_time(d, f->e->timers, &tm) > 0);
    assert_int_equal(tm.year, g_date_time_get_year(now));
    assert_in_range(tm.mon, 1, 12);
    assert_in_range(tm.mday, 1, 31);
    assert_in_range(tm.hour, 0, 23);
    assert_int_equal(tm.wday, g_date_time_get_day_of_week(now) % 7 + 1);
    /* The index port reads as all ones on a PC. */
    assert_int_equal(harness_read8(d, 0), 0xff);
}

static void test_linux_set_get(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    HarnessTimers *clock = f->e->timers;
    int64_t update = set_time(d, clock, 2024, 2, 29, 23, 59, 58);
    RtcTm tm;

    assert_time(d, clock, 2024, 2, 29, 23, 59, 58);
    /*
     * Half a second after the divider restarts: the first update. (Linux
     * waits out UIP, so it reads the old second only before the last 244 us.)
     */
    harness_timers_advance(clock, update - 245 * US - harness_timers_now(clock));
    assert_time(d, clock, 2024, 2, 29, 23, 59, 58);
    harness_timers_advance(clock, 245 * US - 1);
    assert_int_equal(cmos_read(d, SECONDS), 0x58);
    harness_timers_advance(clock, 1);
    assert_int_equal(cmos_read(d, SECONDS), 0x59);
    assert_time(d, clock, 2024, 2, 29, 23, 59, 59);
    /* Leap day rolls over into March, a Friday. */
    harness_timers_advance(clock, NS);
    assert_true(linux_get_time(d, clock, &tm) > 0);
    assert_int_equal(tm.year, 2024);
    assert_int_equal(tm.mon, 3);
    assert_int_equal(tm.mday, 1);
    assert_int_equal(tm.hour, 0);
    assert_int_equal(tm.min, 0);
    assert_int_equal(tm.sec, 0);
    assert_int_equal(tm.wday, 6);
    assert_int_equal(cmos_read(d, CENTURY), 0x20);
    /* A century rollover. */
    set_time(d, clock, 2099, 12, 31, 23, 59, 59);
    harness_timers_advance(clock, 500 * MS);
    assert_time(d, clock, 2100, 1, 1, 0, 0, 0);
    assert_int_equal(cmos_read(d, CENTURY), 0x21);
}

static void test_uip(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    HarnessTimers *clock = f->e->timers;
    int64_t update = set_time(d, clock, 2023, 6, 30, 12, 0, 0);
    RtcTm tm;

    /* UIP is set for the 244 us before each update and only then. */
    harness_timers_advance(clock, update - 245 * US - harness_timers_now(clock));
    assert_int_equal(cmos_read(d, REG_A) & A_UIP, 0);
    harness_timers_advance(clock, 1 * US);
    assert_int_equal(cmos_read(d, REG_A) & A_UIP, A_UIP);
    assert_int_equal(cmos_read(d, SECONDS), 0x00);
    harness_timers_advance(clock, 243 * US);
    assert_int_equal(cmos_read(d, REG_A) & A_UIP, A_UIP);
    harness_timers_advance(clock, 1 * US);
    assert_int_equal(cmos_read(d, REG_A) & A_UIP, 0);
    assert_int_equal(cmos_read(d, SECONDS), 0x01);

    /*
     * Linux starting its read inside the window, with every port access
     * taking 5 us: it retries and still reads a consistent time.
     */
    harness_timers_advance(clock, NS - 200 * US);
    io_clock = clock;
    io_cost_ns = 5 * US;
    assert_true(linux_get_time(d, clock, &tm) > 1);
    io_cost_ns = 0;
    assert_int_equal(tm.sec, 2);
    assert_int_equal(tm.min, 0);

    /* With SET there are no updates, so UIP stays clear. */
    cmos_write(d, REG_B, cmos_read(d, REG_B) | B_SET);
    for (int i = 0; i < 20; i++) {
        harness_timers_advance(clock, 50 * MS + 7 * US);
        assert_int_equal(cmos_read(d, REG_A) & A_UIP, 0);
    }
}

static void test_set_keeps_phase(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    HarnessTimers *clock = f->e->timers;
    int64_t update = set_time(d, clock, 2023, 1, 1, 0, 0, 0);

    /* Setting with SET alone (no divider reset) keeps the sub-second phase. */
    harness_timers_advance(clock, update + 300 * MS - harness_timers_now(clock));
    cmos_write(d, REG_B, B_24H | B_SET);
    cmos_write(d, MINUTES, 0x30);
    cmos_write(d, REG_B, B_24H);
    assert_time(d, clock, 2023, 1, 1, 0, 30, 1);
    harness_timers_advance(clock, 700 * MS - 1);
    assert_int_equal(cmos_read(d, SECONDS), 0x01);
    harness_timers_advance(clock, 1);
    assert_int_equal(cmos_read(d, SECONDS), 0x02);
    assert_time(d, clock, 2023, 1, 1, 0, 30, 2);
    /* A write while the clock runs takes effect at once. */
    cmos_write(d, HOURS, 0x17);
    assert_time(d, clock, 2023, 1, 1, 17, 30, 2);
    /* While stopped, the registers hold what was written. */
    cmos_write(d, REG_B, B_24H | B_SET);
    cmos_write(d, SECONDS, 0x45);
    harness_timers_advance(clock, 3 * NS);
    assert_int_equal(cmos_read(d, SECONDS), 0x45);
    assert_int_equal(cmos_read(d, MINUTES), 0x30);
}

/* Runs the clock for @ns in 10 us steps, acknowledging each interrupt as a handler would. */
static unsigned run_acking(Fixture *f, int64_t ns, uint8_t want_flags)
{
    unsigned irqs = 0;

    for (int64_t t = 0; t < ns; t += 10 * US) {
        harness_timers_advance(f->e->timers, 10 * US);
        if (f->e->irq.level) {
            uint8_t c = cmos_read(f->dev, REG_C);

            assert_int_equal(c & (C_IRQF | want_flags), C_IRQF | want_flags);
            assert_false(f->e->irq.level);
            irqs++;
        }
    }
    return irqs;
}

static void test_periodic(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;

    cmos_read(d, REG_C);
    /* 1024 Hz (the power-on rate 6), interrupts on. */
    cmos_write(d, REG_B, B_24H | B_PIE);
    assert_int_equal(harness_timers_armed(f->e->timers), 1);
    assert_int_equal(run_acking(f, NS, C_PF), 1024);
    /* 2 Hz and 8192 Hz. */
    cmos_write(d, REG_A, 0x2f);
    assert_int_equal(run_acking(f, 3 * NS, C_PF), 6);
    cmos_write(d, REG_A, 0x23);
    assert_in_range(run_acking(f, 100 * MS, C_PF), 819, 820);      /* 100 ms of 122 us */

    /* Not acknowledged: IRQF stays, the line stays up and no timer runs. */
    cmos_write(d, REG_A, 0x26);
    harness_timers_advance(f->e->timers, 5 * MS);
    assert_true(f->e->irq.level);
    assert_int_equal(harness_timers_armed(f->e->timers), 0);
    harness_timers_advance(f->e->timers, 50 * MS);
    assert_int_equal(cmos_read(d, REG_C) & (C_IRQF | C_PF), C_IRQF | C_PF);
    assert_false(f->e->irq.level);
    /* Rate 0 or PIE off: no interrupt, no timer; PF is still set for pollers. */
    cmos_write(d, REG_B, B_24H);
    assert_int_equal(harness_timers_armed(f->e->timers), 0);
    harness_timers_advance(f->e->timers, 5 * MS);
    assert_false(f->e->irq.level);
    assert_int_equal(cmos_read(d, REG_C) & (C_IRQF | C_PF), C_PF);
    cmos_write(d, REG_A, 0x20);
    cmos_write(d, REG_B, B_24H | B_PIE);
    assert_int_equal(harness_timers_armed(f->e->timers), 0);
    harness_timers_advance(f->e->timers, NS);
    assert_false(f->e->irq.level);
    /* A divider in reset stops the periodic interrupt too. */
    cmos_write(d, REG_A, 0x76);
    harness_timers_advance(f->e->timers, NS);
    assert_false(f->e->irq.level);
    assert_int_equal(cmos_read(d, REG_C) & C_PF, 0);
}

static void test_update_interrupt(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    HarnessTimers *clock = f->e->timers;
    int64_t update = set_time(d, clock, 2023, 3, 4, 5, 6, 7);

    cmos_read(d, REG_C);
    cmos_write(d, REG_B, B_24H | B_UIE);
    /* Exactly at each update, not a nanosecond before. */
    for (int i = 0; i < 3; i++) {
        harness_timers_advance(clock, update - 1 - harness_timers_now(clock));
        assert_false(f->e->irq.level);
        harness_timers_advance(clock, 1);
        assert_true(f->e->irq.level);
        assert_int_equal(cmos_read(d, REG_C) & (C_IRQF | C_UF | C_AF), C_IRQF | C_UF);
        assert_false(f->e->irq.level);
        update += NS;
    }
    assert_time(d, clock, 2023, 3, 4, 5, 6, 10);
    /* Polled without interrupts: UF shows up once a second has passed. */
    cmos_write(d, REG_B, B_24H);
    cmos_read(d, REG_C);
    assert_int_equal(cmos_read(d, REG_C) & C_UF, 0);
    harness_timers_advance(clock, NS);
    assert_int_equal(cmos_read(d, REG_C) & C_UF, C_UF);
    /* SET clears UIE and stops the updates. */
    cmos_write(d, REG_B, B_24H | B_UIE | B_SET);
    assert_int_equal(cmos_read(d, REG_B), B_24H | B_SET);
    harness_timers_advance(clock, 3 * NS);
    assert_false(f->e->irq.level);
    assert_int_equal(cmos_read(d, REG_C) & C_UF, 0);
}

static void test_alarm(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    HarnessTimers *clock = f->e->timers;
    int64_t update = set_time(d, clock, 2023, 12, 31, 23, 59, 50);
    unsigned irqs = 0;

    cmos_read(d, REG_C);
    /* 00:00:05 tomorrow (the alarm has no date). */
    cmos_write(d, HOURS_ALARM, 0x00);
    cmos_write(d, MINUTES_ALARM, 0x00);
    cmos_write(d, SECONDS_ALARM, 0x05);
    cmos_write(d, REG_B, B_24H | B_AIE);
    assert_int_equal(harness_timers_next(clock), update + 14 * NS);
    harness_timers_advance(clock, update + 14 * NS - 1 - harness_timers_now(clock));
    assert_false(f->e->irq.level);
    harness_timers_advance(clock, 1);
    assert_true(f->e->irq.level);
    assert_int_equal(cmos_read(d, REG_C) & (C_IRQF | C_AF), C_IRQF | C_AF);
    assert_time(d, clock, 2024, 1, 1, 0, 0, 5);

    /* Don't-care hours and minutes: every minute at second 30. */
    cmos_write(d, HOURS_ALARM, 0xc0);
    cmos_write(d, MINUTES_ALARM, 0xff);
    cmos_write(d, SECONDS_ALARM, 0x30);
    for (int s = 0; s < 180; s++) {
        harness_timers_advance(clock, NS);
        if (f->e->irq.level) {
            assert_int_equal(cmos_read(d, REG_C) & C_AF, C_AF);
            assert_int_equal(cmos_read(d, SECONDS), 0x30);
            irqs++;
        }
    }
    assert_int_equal(irqs, 3);
    /* All don't-care: every second. */
    cmos_write(d, SECONDS_ALARM, 0xc0);
    irqs = 0;
    for (int s = 0; s < 10; s++) {
        harness_timers_advance(clock, NS);
        irqs += f->e->irq.level;
        cmos_read(d, REG_C);
    }
    assert_int_equal(irqs, 10);
    /* A byte the seconds register never holds never matches. */
    cmos_write(d, SECONDS_ALARM, 0x5a);
    assert_int_equal(harness_timers_armed(clock), 0);
    harness_timers_advance(clock, 100 * NS);
    assert_int_equal(cmos_read(d, REG_C) & C_AF, 0);
    /* Polled alarm without AIE: AF is set all the same. */
    cmos_write(d, REG_B, B_24H);
    cmos_write(d, SECONDS_ALARM, 0xc0);
    harness_timers_advance(clock, NS);
    assert_false(f->e->irq.level);
    assert_int_equal(cmos_read(d, REG_C) & (C_IRQF | C_AF), C_AF);
    /* Enabling an interrupt whose flag is already set raises IRQF at once. */
    harness_timers_advance(clock, NS);
    cmos_write(d, REG_B, B_24H | B_AIE);
    assert_true(f->e->irq.level);
}

static void test_formats(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    HarnessTimers *clock = f->e->timers;

    set_time(d, clock, 2023, 7, 4, 13, 45, 9);
    harness_timers_advance(clock, 100 * MS);
    /* Binary, 24 hours. */
    cmos_write(d, REG_B, B_24H | B_DM_BINARY);
    assert_int_equal(cmos_read(d, HOURS), 13);
    assert_int_equal(cmos_read(d, MINUTES), 45);
    assert_int_equal(cmos_read(d, YEAR), 23);
    assert_int_equal(cmos_read(d, CENTURY), 20);
    /* 12 hours: 1 PM. */
    cmos_write(d, REG_B, B_DM_BINARY);
    assert_int_equal(cmos_read(d, HOURS), 0x80 | 1);
    cmos_write(d, REG_B, 0);
    assert_int_equal(cmos_read(d, HOURS), 0x81);
    /* Midnight is 12 AM. */
    cmos_write(d, HOURS, 0x12);
    cmos_write(d, REG_B, B_24H);
    assert_int_equal(cmos_read(d, HOURS), 0x00);
    /* A 12-hour alarm at 12:45:10 AM fires one second later. */
    cmos_write(d, REG_B, 0);
    cmos_write(d, HOURS_ALARM, 0x12);
    cmos_write(d, MINUTES_ALARM, 0x45);
    cmos_write(d, SECONDS_ALARM, 0x10);
    cmos_read(d, REG_C);
    cmos_write(d, REG_B, B_AIE);
    harness_timers_advance(clock, 400 * MS);
    assert_true(f->e->irq.level);
    /* Setting a binary time in binary mode. */
    cmos_write(d, REG_B, B_24H | B_DM_BINARY);
    set_time(d, clock, 1999, 12, 31, 23, 59, 59);
    harness_timers_advance(clock, 600 * MS);
    assert_time(d, clock, 2000, 1, 1, 0, 0, 0);
    assert_int_equal(cmos_read(d, DAY_OF_WEEK), 7);  /* a Saturday */
}

static void test_nvram_and_ports(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;

    for (unsigned i = 0x0e; i < 0x80; i++) {
        if (i != CENTURY)
            cmos_write(d, i, i ^ 0x5a);
    }
    for (unsigned i = 0x0e; i < 0x80; i++) {
        if (i != CENTURY)
            assert_int_equal(cmos_read(d, i), i ^ 0x5a);
    }
    /* Bit 7 of the index disables NMIs; it does not change the register. */
    harness_write8(d, 0, 0x80 | 0x40);
    assert_int_equal(harness_read8(d, 1), 0x40 ^ 0x5a);
    /* outw(0x70): index and data in one access. */
    harness_write(d, 0, 2, 0x41 | (0x99 << 8));
    assert_int_equal(cmos_read(d, 0x41), 0x99);
    /* REG_C and REG_D are read-only. */
    cmos_write(d, REG_D, 0);
    assert_int_equal(cmos_read(d, REG_D), 0x80);
    cmos_write(d, REG_C, 0xff);
    assert_int_equal(cmos_read(d, REG_C) & 0x0f, 0);
}

static void test_reset(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    HarnessTimers *clock = f->e->timers;
    int64_t update = set_time(d, clock, 2022, 2, 2, 2, 2, 2);

    cmos_write(d, 0x40, 0xab);
    cmos_write(d, REG_B, B_24H | B_PIE | B_AIE | B_UIE | B_SQWE);
    harness_timers_advance(clock, update - harness_timers_now(clock));
    assert_true(f->e->irq.level);

    device_reset(d);
    /* Enables and flags cleared, the line low; format, time and NVRAM kept. */
    assert_false(f->e->irq.level);
    assert_int_equal(cmos_read(d, REG_B), B_24H);
    assert_int_equal(cmos_read(d, REG_C), 0);
    assert_int_equal(harness_timers_armed(clock), 0);
    assert_int_equal(cmos_read(d, 0x40), 0xab);
    assert_time(d, clock, 2022, 2, 2, 2, 2, 3);
    harness_timers_advance(clock, NS);
    assert_time(d, clock, 2022, 2, 2, 2, 2, 4);
    assert_false(f->e->irq.level);
}

static void test_memory_bytes(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("rtc", 0);
    Device *d = harness_device_new(e, RTC, "clock=rt,ram-below-4g=3G,ram-above-4g=5368709120");

    assert_int_equal(cmos_read(d, 0x15) | cmos_read(d, 0x16) << 8, 640);
    assert_int_equal(cmos_read(d, 0x17) | cmos_read(d, 0x18) << 8, 0xffff);
    assert_int_equal(cmos_read(d, 0x30) | cmos_read(d, 0x31) << 8, 0xffff);
    assert_int_equal(cmos_read(d, 0x34) | cmos_read(d, 0x35) << 8,
                     (3 * 1024 - 16) * 1024 / 64);
    assert_int_equal(cmos_read(d, 0x5b) | cmos_read(d, 0x5c) << 8 | cmos_read(d, 0x5d) << 16,
                     5 * 1024 * 1024 / 64);
    device_free(d);

    d = harness_device_new(e, RTC, "ram-below-4g=0x2000000");
    assert_int_equal(cmos_read(d, 0x17) | cmos_read(d, 0x18) << 8, 31 * 1024);
    assert_int_equal(cmos_read(d, 0x34) | cmos_read(d, 0x35) << 8, (32 - 16) * 16);
    assert_int_equal(cmos_read(d, 0x5b) | cmos_read(d, 0x5c) | cmos_read(d, 0x5d), 0);
    device_free(d);

    /* Binary suffixes, either case. */
    d = harness_device_new(e, RTC, "ram-below-4g=32m,ram-above-4g=128K");
    assert_int_equal(cmos_read(d, 0x34) | cmos_read(d, 0x35) << 8, (32 - 16) * 16);
    assert_int_equal(cmos_read(d, 0x5b), 2);
    device_free(d);
}

static void test_options(void **state)
{
    static const char *const bad[] = {
        "base=mars", "clock=vm", "ram-below-4g=5G", "ram-below-4g=lots", "ram-below-4g=-1",
        "ram-below-4g=1Q", "ram-above-4g=2T", "ram-above-4g=99999999999999999999", "tick=1",
        "base", "base=utc,base=utc",
    };
    g_autoptr(HarnessEnv) e = harness_env_new("rtc", 0);

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *msg = harness_device_new_fail(e, RTC, bad[i],
                                                       VIREO_ERROR_INVALID_ARGUMENT);

        assert_non_null(msg);
    }
    /* The RTC cannot work without timers. */
    e->env.timers = NULL;
    g_free(harness_device_new_fail(e, RTC, NULL, VIREO_ERROR_INVALID_ARGUMENT));
}

static unsigned seconds_of_day(Device *d, HarnessTimers *clock)
{
    RtcTm tm;

    assert_true(linux_get_time(d, clock, &tm) > 0);
    return tm.hour * 3600 + tm.min * 60 + tm.sec;
}

static void test_localtime(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("rtc", 0);
    g_autofree char *old_tz = g_strdup(g_getenv("TZ"));
    Device *utc, *local;
    int diff;

    /* POSIX TZ: 5 hours east of Greenwich, no daylight saving time. */
    g_setenv("TZ", "VRT-5", TRUE);
    utc = harness_device_new(e, RTC, "clock=rt,base=utc");
    local = harness_device_new(e, RTC, "clock=rt,base=localtime");
    if (old_tz)
        g_setenv("TZ", old_tz, TRUE);
    else
        g_unsetenv("TZ");
    diff = ((int)seconds_of_day(local, e->timers) - (int)seconds_of_day(utc, e->timers) +
            86400) % 86400;
    /* The two started a few microseconds apart. */
    assert_in_range(diff, 5 * 3600 - 1, 5 * 3600 + 1);
    device_free(utc);
    device_free(local);
}

static void test_host_clock(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("rtc", 0);
    Device *d = harness_device_new(e, RTC, NULL);
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    int diff;
    RtcTm tm;

    /* The default follows the host's real time. */
    diff = (int)seconds_of_day(d, NULL) -
           (g_date_time_get_hour(now) * 3600 + g_date_time_get_minute(now) * 60 +
            g_date_time_get_second(now));
    assert_true(abs(diff) <= 2 || abs(diff) >= 86400 - 2);
    /* Setting the time moves an offset; the clock then runs with the host. */
    set_time(d, e->timers, 2040, 5, 6, 7, 8, 9);
    g_usleep(1100 * 1000);
    assert_true(linux_get_time(d, NULL, &tm) > 0);
    assert_int_equal(tm.year, 2040);
    assert_int_equal(tm.hour, 7);
    assert_int_equal(tm.min, 8);
    assert_in_range(tm.sec, 10, 11);

    /* Saved and loaded in "another process": the same wall-clock offset. */
    {
        g_autoptr(HarnessEnv) e2 = harness_env_new("rtc", 12345);
        Device *d2 = harness_clone(d, e2, RTC, NULL);
        RtcTm tm2;

        assert_true(linux_get_time(d, NULL, &tm) > 0);
        assert_true(linux_get_time(d2, NULL, &tm2) > 0);
        assert_int_equal(tm2.year, 2040);
        /* Read microseconds apart: at most a second boundary between them. */
        assert_in_range((int)(tm2.hour * 3600 + tm2.min * 60 + tm2.sec) -
                        (int)(tm.hour * 3600 + tm.min * 60 + tm.sec), 0, 1);
        device_free(d2);
    }
    device_free(d);
}

static void test_save_load(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    g_autoptr(HarnessEnv) e2 = harness_env_new("rtc", START_NS);
    int64_t update = set_time(d, f->e->timers, 2031, 8, 9, 10, 11, 12);
    Device *d2;

    cmos_write(d, 0x50, 0x77);
    cmos_write(d, HOURS_ALARM, 0x10);
    cmos_write(d, MINUTES_ALARM, 0x11);
    cmos_write(d, SECONDS_ALARM, 0x20);
    cmos_write(d, REG_A, 0x2f);                 /* 2 Hz */
    cmos_write(d, REG_B, B_24H | B_PIE | B_AIE);
    /*
     * An eighth of a second from any periodic edge, here and at every step
     * below, so microseconds of drift between save and load do not matter.
     */
    harness_timers_advance(f->e->timers, update + 375 * MS - harness_timers_now(f->e->timers));
    assert_true(f->e->irq.level);               /* periodic, not acknowledged */

    harness_timers_advance(e2->timers,
                           harness_timers_now(f->e->timers) - harness_timers_now(e2->timers));
    d2 = harness_clone(d, e2, RTC, RTC_OPTS);
    assert_true(e2->irq.level);
    for (unsigned i = 0; i < 0x80; i++) {
        if (i != REG_C)
            assert_int_equal(cmos_read(d, i), cmos_read(d2, i));
    }
    assert_int_equal(cmos_read(d, REG_C), cmos_read(d2, REG_C));
    assert_false(e2->irq.level);
    /* The same interrupts at the same moments afterwards, up to the alarm. */
    for (int step = 0; step < 40; step++) {
        harness_timers_advance(f->e->timers, 250 * MS);
        harness_timers_advance(e2->timers, 250 * MS);
        assert_int_equal(f->e->irq.level, e2->irq.level);
        if (f->e->irq.level)
            assert_int_equal(cmos_read(d, REG_C), cmos_read(d2, REG_C));
        assert_int_equal(cmos_read(d, SECONDS), cmos_read(d2, SECONDS));
    }
    assert_time(d2, e2->timers, 2031, 8, 9, 10, 11, 23);
    device_free(d2);
}

static void test_bad_state(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    static const HarnessPoke pokes[] = {
        { "cmos", 0, 127 },                     /* 127 bytes of CMOS */
        { "cmos", 4 + REG_A, 0xa6 },            /* UIP saved */
        { "cmos", 4 + REG_C, 0x0f },
        { "cmos", 4 + REG_D, 0x00 },
        { "offset-nsec", 3, 0xff },             /* more than a second */
        { "checked-nsec", 3, 0x40 },
        { "offset-sec", 7, 0x7f },              /* beyond year 25755 */
        { "checked-sec", 7, 0x80 },
    };

    set_time(d, f->e->timers, 2020, 1, 2, 3, 4, 5);
    cmos_write(d, 0x60, 0x42);
    harness_check_corrupt_state(d, pokes, G_N_ELEMENTS(pokes), TRUE);
    /* Still the same clock. */
    assert_int_equal(cmos_read(d, 0x60), 0x42);
    harness_timers_advance(f->e->timers, 600 * MS);
    assert_time(d, f->e->timers, 2020, 1, 2, 3, 4, 6);
}

static void hostile_extra(Device *dev, HarnessEnv *e, GRand *rand)
{
    /* An interrupt handler acknowledging, at a random moment. */
    harness_timers_advance(e->timers, g_rand_int_range(rand, 0, 1000000));
    cmos_read(dev, REG_C);
}

static void test_hostile_guest(void **state)
{
    Fixture *f = *state;

    harness_hostile(f->dev, f->e, 2, 0x146818, 300000, hostile_extra);
    harness_take_guest_warnings();
    /* Still a working clock: the guest sets it again and reads it back. */
    device_reset(f->dev);
    cmos_write(f->dev, REG_B, B_24H);
    cmos_write(f->dev, REG_A, 0x26);
    set_time(f->dev, f->e->timers, 2025, 11, 26, 13, 0, 0);
    harness_timers_advance(f->e->timers, 1200 * MS);
    assert_time(f->dev, f->e->timers, 2025, 11, 26, 13, 0, 1);
    assert_false(f->e->irq.level);
}

/* Absurd dates through the century byte: no overflow, no crash. */
static void test_extreme_dates(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    static const uint8_t vals[] = { 0x00, 0x99, 0xff, 0x7f, 0x59, 0xa0 };

    for (int dm = 0; dm < 2; dm++) {
        for (size_t i = 0; i < G_N_ELEMENTS(vals); i++) {
            cmos_write(d, REG_B, B_SET | (dm ? B_DM_BINARY : 0));
            for (unsigned r = 0; r <= YEAR; r++)
                cmos_write(d, r, vals[(i + r) % G_N_ELEMENTS(vals)]);
            cmos_write(d, CENTURY, vals[i]);
            cmos_write(d, REG_B, B_UIE | B_AIE | B_PIE | (dm ? B_DM_BINARY : 0));
            harness_timers_advance(f->e->timers, 1200 * MS);
            for (unsigned r = 0; r <= REG_D; r++)
                cmos_read(d, r);
            cmos_read(d, CENTURY);
        }
    }
    {
        g_autoptr(GBytes) s = harness_save(d);
        g_autoptr(GError) err = NULL;

        assert_true(harness_load(d, s, &err));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_on, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_nvram_and_ports, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_linux_set_get, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_uip, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_set_keeps_phase, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_periodic, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_update_interrupt, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_alarm, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_formats, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reset, fixture_setup, fixture_teardown),
        cmocka_unit_test(test_memory_bytes),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_localtime),
        cmocka_unit_test(test_host_clock),
        cmocka_unit_test_setup_teardown(test_save_load, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_state, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_extreme_dates, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_guest, fixture_setup, fixture_teardown),
    };

    harness_init();
    return cmocka_run_group_tests_name("rtc-mc146818", tests, NULL, NULL);
}
