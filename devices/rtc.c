/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * MC146818 CMOS real-time clock ("rtc-mc146818") with 128 bytes of CMOS,
 * a 2-byte window: offset 0 is the index port (0x70, bit 7 = NMI disable),
 * offset 1 the data port (0x71).
 *
 * The clock is not a counter we tick: guest time = host clock + an offset
 * the device keeps, so reading the time registers costs no timer at all
 * and the clock never drifts from the host. The host clock is real time
 * (g_get_real_time()) by default, or env->timers' monotonic clock with
 * clock=rt, which ignores host time changes (and is what tests drive).
 * Guest writes to the time registers change the offset; the sub-second
 * phase is kept, except that ending a divider reset puts the next update
 * half a second away, as the datasheet says.
 *
 * REG_C's flags are computed lazily: every access first accounts for the
 * periodic, update and alarm events since the last look, so a guest that
 * polls REG_C sees them without us waking up. A timer runs only while an
 * enabled event can raise IRQF and IRQF is still clear; the IRQ line
 * (ISA IRQ 8) follows REG_C.IRQF, so reading REG_C lowers it.
 *
 * Guest time is kept in seconds plus nanoseconds because the century byte
 * lets a guest set any year from 0 to 9999, further than int64
 * nanoseconds reach. The registers show the guest time as broken-down UTC;
 * base=localtime only starts the offset at the host's UTC offset.
 *
 * Locking: dev->lock covers everything below the immutable fields; the
 * timer callback runs on the event loop thread and takes it.
 */
#include <stddef.h>
#include <string.h>

#include "vireo/device.h"
#include "vireo/layout.h"
#include "vireo/util.h"

#define RTC_WINDOW_LEN          2
#define RTC_CMOS_LEN            128
#define RTC_STATE_VERSION       1

#define RTC_SECONDS             0x00
#define RTC_SECONDS_ALARM       0x01
#define RTC_MINUTES             0x02
#define RTC_MINUTES_ALARM       0x03
#define RTC_HOURS               0x04
#define RTC_HOURS_ALARM         0x05
#define RTC_DAY_OF_WEEK         0x06
#define RTC_DAY_OF_MONTH        0x07
#define RTC_MONTH               0x08
#define RTC_YEAR                0x09
#define RTC_REG_A               0x0a
#define RTC_REG_B               0x0b
#define RTC_REG_C               0x0c
#define RTC_REG_D               0x0d
/* Not part of the chip: the PC convention (and our FADT's CENTURY field). */
#define RTC_CENTURY             0x32

#define RTC_A_UIP               0x80
#define RTC_A_DV                0x70
#define RTC_A_RS                0x0f
#define RTC_A_DEFAULT           0x26    /* 32.768 kHz time base, 1024 Hz periodic rate */

#define RTC_B_SET               0x80
#define RTC_B_PIE               0x40
#define RTC_B_AIE               0x20
#define RTC_B_UIE               0x10
#define RTC_B_SQWE              0x08
#define RTC_B_DM_BINARY         0x04
#define RTC_B_24H               0x02
#define RTC_B_DSE               0x01

#define RTC_C_IRQF              0x80
#define RTC_C_PF                0x40
#define RTC_C_AF                0x20
#define RTC_C_UF                0x10
/* Each flag has its enable at the same bit position in REG_B. */
#define RTC_C_FLAGS             (RTC_C_PF | RTC_C_AF | RTC_C_UF)

#define RTC_D_VRT               0x80

#define RTC_NMI_DISABLE         0x80

#define RTC_NS_PER_SEC          1000000000LL
#define RTC_UIP_NS              244000LL        /* UIP is set 244 us before each update */
#define RTC_HZ                  32768LL
#define RTC_SECS_PER_DAY        86400LL

#define RTC_ALARM_ANY           (-1)
#define RTC_ALARM_NEVER         (-2)
#define RTC_NO_ALARM            G_MAXINT64
/*
 * Guest seconds stay far inside this: registers reach year 25755 at most
 * (binary century 255), and a saved state beyond it is corrupt. It keeps
 * the 32.768 kHz tick counts of rtc_ticks() inside int64.
 */
#define RTC_SEC_LIMIT           10000000000000LL

typedef enum {
    RTC_CLOCK_HOST,             /* g_get_real_time() */
    RTC_CLOCK_RT,               /* env->timers' monotonic clock */
} RtcClock;

typedef struct RtcTime {
    int64_t sec;
    int64_t nsec;               /* 0 .. RTC_NS_PER_SEC - 1 */
} RtcTime;

/* Guest-visible state: what save/load and reset deal with. */
typedef struct RtcRegs {
    /* Time registers hold the time only while the clock is stopped. */
    uint8_t cmos[RTC_CMOS_LEN];
    uint8_t index;              /* with RTC_NMI_DISABLE */
    RtcTime offset;             /* guest time - host clock */
    RtcTime checked;            /* guest time up to which REG_C is current */
} RtcRegs;

typedef struct Rtc {
    Device dev;
    IrqLine *irq;               /* immutable after create */
    TimerService *timers;       /* immutable after create */
    Timer *timer;               /* immutable after create */
    RtcClock clock;             /* immutable after create */
    /* Everything below: dev->lock. */
    RtcRegs r;
    int64_t timer_deadline;     /* what the timer is armed for, or -1 */
    gboolean irq_level;
} Rtc;

G_STATIC_ASSERT(offsetof(Rtc, dev) == 0);

static const DeviceType rtc_type;

static Rtc *rtc_from_dev(Device *dev)
{
    g_assert(dev->type == &rtc_type);
    return (Rtc *)dev;
}

/* --- arithmetic --- */

static int64_t rtc_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t rtc_floor_mod(int64_t a, int64_t b)
{
    return a - rtc_floor_div(a, b) * b;
}

static RtcTime rtc_time_from_ns(int64_t ns)
{
    RtcTime t = { rtc_floor_div(ns, RTC_NS_PER_SEC), rtc_floor_mod(ns, RTC_NS_PER_SEC) };

    return t;
}

static RtcTime rtc_time_add(RtcTime a, RtcTime b)
{
    RtcTime t = { a.sec + b.sec, a.nsec + b.nsec };

    if (t.nsec >= RTC_NS_PER_SEC) {
        t.sec++;
        t.nsec -= RTC_NS_PER_SEC;
    }
    return t;
}

static RtcTime rtc_time_sub(RtcTime a, RtcTime b)
{
    RtcTime t = { a.sec - b.sec, a.nsec - b.nsec };

    if (t.nsec < 0) {
        t.sec--;
        t.nsec += RTC_NS_PER_SEC;
    }
    return t;
}

static int rtc_time_cmp(RtcTime a, RtcTime b)
{
    if (a.sec != b.sec)
        return a.sec < b.sec ? -1 : 1;
    if (a.nsec != b.nsec)
        return a.nsec < b.nsec ? -1 : 1;
    return 0;
}

/* Counts of the 32.768 kHz divider chain, whose taps make the periodic rates. */
static int64_t rtc_ticks(RtcTime t)
{
    return t.sec * RTC_HZ + t.nsec * RTC_HZ / RTC_NS_PER_SEC;
}

/* The first instant at which rtc_ticks() reaches @ticks. */
static RtcTime rtc_time_of_tick(int64_t ticks)
{
    RtcTime t;
    int64_t rem;

    t.sec = rtc_floor_div(ticks, RTC_HZ);
    rem = ticks - t.sec * RTC_HZ;
    t.nsec = (rem * RTC_NS_PER_SEC + RTC_HZ - 1) / RTC_HZ;
    return t;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t rtc_days_from_civil(int64_t y, int64_t m, int64_t d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = rtc_floor_div(y, 400);
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void rtc_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = rtc_floor_div(z, 146097);
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

/* --- register formats --- */

static uint8_t rtc_encode(uint8_t regb, int64_t v)
{
    v = rtc_floor_mod(v, 100);
    if (regb & RTC_B_DM_BINARY)
        return v;
    return (v / 10) << 4 | v % 10;
}

/* Invalid BCD digits decode to what a digit-by-digit decoder gives. */
static int rtc_decode(uint8_t regb, uint8_t v)
{
    if (regb & RTC_B_DM_BINARY)
        return v;
    return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t rtc_encode_hour(uint8_t regb, int hour)
{
    int h12;

    if (regb & RTC_B_24H)
        return rtc_encode(regb, hour);
    h12 = hour % 12 ? hour % 12 : 12;
    return rtc_encode(regb, h12) | (hour >= 12 ? 0x80 : 0);
}

static int rtc_decode_hour(uint8_t regb, uint8_t v)
{
    if (regb & RTC_B_24H)
        return rtc_decode(regb, v);
    /* 12 AM is hour 0, 12 PM is hour 12. */
    return rtc_decode(regb, v & 0x7f) % 12 + ((v & 0x80) ? 12 : 0);
}

static gboolean rtc_is_time_reg(unsigned idx)
{
    switch (idx) {
    case RTC_SECONDS:
    case RTC_MINUTES:
    case RTC_HOURS:
    case RTC_DAY_OF_WEEK:
    case RTC_DAY_OF_MONTH:
    case RTC_MONTH:
    case RTC_YEAR:
    case RTC_CENTURY:
        return TRUE;
    default:
        return FALSE;
    }
}

/* Writes the time registers (and century) for @sec into @cmos. */
static void rtc_time_to_regs(uint8_t regb, int64_t sec, uint8_t *cmos)
{
    int64_t days = rtc_floor_div(sec, RTC_SECS_PER_DAY);
    int64_t tod = sec - days * RTC_SECS_PER_DAY;
    int64_t year;
    int month, mday;

    rtc_civil_from_days(days, &year, &month, &mday);
    cmos[RTC_SECONDS] = rtc_encode(regb, tod % 60);
    cmos[RTC_MINUTES] = rtc_encode(regb, tod / 60 % 60);
    cmos[RTC_HOURS] = rtc_encode_hour(regb, tod / 3600);
    /* 1970-01-01 was a Thursday; the register counts Sunday as 1. */
    cmos[RTC_DAY_OF_WEEK] = rtc_encode(regb, rtc_floor_mod(days + 4, 7) + 1);
    cmos[RTC_DAY_OF_MONTH] = rtc_encode(regb, mday);
    cmos[RTC_MONTH] = rtc_encode(regb, month);
    cmos[RTC_YEAR] = rtc_encode(regb, rtc_floor_mod(year, 100));
    cmos[RTC_CENTURY] = rtc_encode(regb, rtc_floor_div(year, 100));
}

/*
 * The time the registers hold. Out-of-range fields carry over as mktime()
 * would (minute 61 is the next hour's first), so no guest value can make
 * this fail; the weekday register is derived, not read.
 */
static int64_t rtc_time_from_regs(const uint8_t *cmos, uint8_t regb)
{
    int64_t year = (int64_t)rtc_decode(regb, cmos[RTC_CENTURY]) * 100 +
                   rtc_decode(regb, cmos[RTC_YEAR]);
    int64_t month = rtc_decode(regb, cmos[RTC_MONTH]);
    int64_t days;

    year += rtc_floor_div(month - 1, 12);
    month = rtc_floor_mod(month - 1, 12) + 1;
    days = rtc_days_from_civil(year, month, 1) + rtc_decode(regb, cmos[RTC_DAY_OF_MONTH]) - 1;
    return days * RTC_SECS_PER_DAY + (int64_t)rtc_decode_hour(regb, cmos[RTC_HOURS]) * 3600 +
           rtc_decode(regb, cmos[RTC_MINUTES]) * 60 + rtc_decode(regb, cmos[RTC_SECONDS]);
}

/* --- clock --- */

static int64_t rtc_host_ns(Rtc *s)
{
    if (s->clock == RTC_CLOCK_HOST)
        return g_get_real_time() * 1000;
    return timer_service_now(s->timers);
}

static RtcTime rtc_guest_time(const Rtc *s, int64_t host_ns)
{
    return rtc_time_add(rtc_time_from_ns(host_ns), s->r.offset);
}

/* Makes the guest time @t at host time @host_ns. */
static void rtc_set_guest_time(Rtc *s, int64_t host_ns, RtcTime t)
{
    s->r.offset = rtc_time_sub(t, rtc_time_from_ns(host_ns));
}

/* DV 000, 001, 010 keep the divider chain going; 11x is reset, the rest test modes. */
static gboolean rtc_divider_running(uint8_t rega)
{
    return (rega & RTC_A_DV) <= 0x20;
}

static gboolean rtc_clock_running(const Rtc *s)
{
    return rtc_divider_running(s->r.cmos[RTC_REG_A]) && !(s->r.cmos[RTC_REG_B] & RTC_B_SET);
}

static int64_t rtc_period_ticks(uint8_t rega)
{
    unsigned rs = rega & RTC_A_RS;

    if (rs == 0)
        return 0;
    /* Rates 1 and 2 repeat rates 8 and 9 with the 32.768 kHz time base. */
    if (rs <= 2)
        return 1LL << (rs + 6);
    return 1LL << (rs - 1);
}

/* --- alarm --- */

/*
 * An alarm field as a value, RTC_ALARM_ANY for "don't care" (top bits 11),
 * or RTC_ALARM_NEVER for a byte the time register never holds: the chip
 * compares bytes, so an invalid encoding simply never matches.
 */
static int rtc_alarm_field(uint8_t regb, uint8_t raw, gboolean hour)
{
    int v;

    if ((raw & 0xc0) == 0xc0)
        return RTC_ALARM_ANY;
    if (hour) {
        v = rtc_decode_hour(regb, raw);
        return v < 24 && rtc_encode_hour(regb, v) == raw ? v : RTC_ALARM_NEVER;
    }
    v = rtc_decode(regb, raw);
    return v < 60 && rtc_encode(regb, v) == raw ? v : RTC_ALARM_NEVER;
}

/* The first second after @sec at which the time registers match the alarm. */
static int64_t rtc_next_alarm(const Rtc *s, int64_t sec)
{
    const uint8_t *cmos = s->r.cmos;
    uint8_t regb = cmos[RTC_REG_B];
    int ah = rtc_alarm_field(regb, cmos[RTC_HOURS_ALARM], TRUE);
    int am = rtc_alarm_field(regb, cmos[RTC_MINUTES_ALARM], FALSE);
    int as = rtc_alarm_field(regb, cmos[RTC_SECONDS_ALARM], FALSE);
    int64_t day = rtc_floor_div(sec, RTC_SECS_PER_DAY);
    int64_t tod = sec - day * RTC_SECS_PER_DAY;

    if (ah == RTC_ALARM_NEVER || am == RTC_ALARM_NEVER || as == RTC_ALARM_NEVER)
        return RTC_NO_ALARM;
    /* Candidates ascend, so the first one after tod wins; tomorrow's first otherwise. */
    for (int64_t d = 0; d < 2; d++) {
        for (int h = ah < 0 ? 0 : ah; h <= (ah < 0 ? 23 : ah); h++) {
            if (!d && h * 3600 + 3599 <= tod)
                continue;
            for (int m = am < 0 ? 0 : am; m <= (am < 0 ? 59 : am); m++) {
                if (!d && h * 3600 + m * 60 + 59 <= tod)
                    continue;
                for (int sc = as < 0 ? 0 : as; sc <= (as < 0 ? 59 : as); sc++) {
                    int64_t cand = h * 3600 + m * 60 + sc;

                    if (d || cand > tod)
                        return (day + d) * RTC_SECS_PER_DAY + cand;
                }
            }
        }
    }
    return RTC_NO_ALARM;
}

/* --- interrupts --- */

static void rtc_drive_irq(Rtc *s, gboolean force)
{
    gboolean level = (s->r.cmos[RTC_REG_C] & RTC_C_IRQF) != 0;

    if (force || level != s->irq_level) {
        s->irq_level = level;
        irq_line_set(s->irq, level);
    }
}

/* IRQF = PF & PIE | AF & AIE | UF & UIE, as the datasheet defines it. */
static void rtc_update_irqf(Rtc *s)
{
    uint8_t *cmos = s->r.cmos;

    if (cmos[RTC_REG_C] & cmos[RTC_REG_B] & RTC_C_FLAGS)
        cmos[RTC_REG_C] |= RTC_C_IRQF;
    else
        cmos[RTC_REG_C] &= ~RTC_C_IRQF;
    rtc_drive_irq(s, FALSE);
}

/* Sets the REG_C flags of everything that happened between r.checked and @now. */
static void rtc_update_flags(Rtc *s, RtcTime now)
{
    RtcRegs *r = &s->r;
    RtcTime last = r->checked;
    uint8_t flags = 0;
    int64_t period;

    r->checked = now;
    /* Host time stepped back (clock=host): nothing happened in between. */
    if (rtc_time_cmp(now, last) <= 0)
        return;
    period = rtc_period_ticks(r->cmos[RTC_REG_A]);
    if (rtc_divider_running(r->cmos[RTC_REG_A]) && period &&
        rtc_floor_div(rtc_ticks(now), period) != rtc_floor_div(rtc_ticks(last), period))
        flags |= RTC_C_PF;
    if (rtc_clock_running(s)) {
        if (now.sec != last.sec)
            flags |= RTC_C_UF;
        if (rtc_next_alarm(s, last.sec) <= now.sec)
            flags |= RTC_C_AF;
    }
    if (flags) {
        r->cmos[RTC_REG_C] |= flags;
        rtc_update_irqf(s);
    }
}

/*
 * Arms the timer for the next event that would raise IRQF. With IRQF set
 * the line is already up, and later flags are found lazily when REG_C is read.
 */
static void rtc_rearm(Rtc *s, int64_t host_ns)
{
    const uint8_t *cmos = s->r.cmos;
    uint8_t regb = cmos[RTC_REG_B];
    RtcTime now = rtc_guest_time(s, host_ns);
    RtcTime next = { G_MAXINT64, 0 };
    int64_t delta, deadline;

    if (!(cmos[RTC_REG_C] & RTC_C_IRQF)) {
        int64_t period = rtc_period_ticks(cmos[RTC_REG_A]);

        if ((regb & RTC_B_PIE) && period && rtc_divider_running(cmos[RTC_REG_A]))
            next = rtc_time_of_tick((rtc_floor_div(rtc_ticks(now), period) + 1) * period);
        if ((regb & RTC_B_UIE) && rtc_clock_running(s)) {
            RtcTime update = { now.sec + 1, 0 };

            if (rtc_time_cmp(update, next) < 0)
                next = update;
        }
        if ((regb & RTC_B_AIE) && rtc_clock_running(s)) {
            RtcTime alarm = { rtc_next_alarm(s, now.sec), 0 };

            if (alarm.sec != RTC_NO_ALARM && rtc_time_cmp(alarm, next) < 0)
                next = alarm;
        }
    }
    if (next.sec == G_MAXINT64) {
        if (s->timer_deadline >= 0)
            timer_cancel(s->timer);
        s->timer_deadline = -1;
        return;
    }
    /* At most two days ahead, so nanoseconds fit. */
    delta = (next.sec - now.sec) * RTC_NS_PER_SEC + (next.nsec - now.nsec);
    deadline = timer_service_now(s->timers) + delta;
    if (deadline != s->timer_deadline)
        timer_arm(s->timer, deadline);
    s->timer_deadline = deadline;
}

static void rtc_timer_fire(void *opaque)
{
    Rtc *s = opaque;
    int64_t host_ns;

    g_mutex_lock(&s->dev.lock);
    s->timer_deadline = -1;             /* it fired */
    host_ns = rtc_host_ns(s);
    rtc_update_flags(s, rtc_guest_time(s, host_ns));
    rtc_rearm(s, host_ns);
    g_mutex_unlock(&s->dev.lock);
}

/* --- registers --- */

/* Copies the running clock into the time registers, in the format of @regb. */
static void rtc_snapshot(Rtc *s, RtcTime now, uint8_t regb)
{
    rtc_time_to_regs(regb, now.sec, s->r.cmos);
}

/*
 * REG_A and REG_B changes that stop or start the clock. Stopping freezes
 * the time registers; starting takes the time from them, keeping the
 * sub-second phase unless the divider chain itself restarts.
 */
static void rtc_write_control(Rtc *s, int64_t host_ns, uint8_t rega, uint8_t regb)
{
    uint8_t *cmos = s->r.cmos;
    RtcTime now = rtc_guest_time(s, host_ns);
    gboolean was_divider = rtc_divider_running(cmos[RTC_REG_A]);
    gboolean was_running = rtc_clock_running(s);

    rtc_update_flags(s, now);
    /* SET also clears UIE, so no update interrupt is pending for a stopped clock. */
    if (regb & RTC_B_SET)
        regb &= ~RTC_B_UIE;
    if (was_running && (!rtc_divider_running(rega) || (regb & RTC_B_SET)))
        rtc_snapshot(s, now, cmos[RTC_REG_B]);
    cmos[RTC_REG_A] = rega & ~RTC_A_UIP;
    cmos[RTC_REG_B] = regb;
    if (!was_divider && rtc_divider_running(rega)) {
        /* "The first update cycle begins one-half second later." */
        now.nsec = RTC_NS_PER_SEC / 2;
        rtc_set_guest_time(s, host_ns, now);
    }
    if (!was_running && rtc_clock_running(s)) {
        now.sec = rtc_time_from_regs(cmos, regb);
        rtc_set_guest_time(s, host_ns, now);
    }
    s->r.checked = now;
    rtc_update_irqf(s);
    rtc_rearm(s, host_ns);
}

static void rtc_write_time_reg(Rtc *s, int64_t host_ns, unsigned idx, uint8_t val)
{
    uint8_t *cmos = s->r.cmos;
    RtcTime now;

    if (!rtc_clock_running(s)) {
        /* SET (or a stopped divider): plain storage until the clock restarts. */
        cmos[idx] = val;
        return;
    }
    /* A running clock takes the new value at once, counting on from it. */
    now = rtc_guest_time(s, host_ns);
    rtc_update_flags(s, now);
    rtc_snapshot(s, now, cmos[RTC_REG_B]);
    cmos[idx] = val;
    now.sec = rtc_time_from_regs(cmos, cmos[RTC_REG_B]);
    rtc_set_guest_time(s, host_ns, now);
    s->r.checked = now;
    rtc_rearm(s, host_ns);
}

static uint8_t rtc_read_data(Rtc *s)
{
    unsigned idx = s->r.index & ~RTC_NMI_DISABLE;
    uint8_t *cmos = s->r.cmos;
    int64_t host_ns;
    RtcTime now;
    uint8_t v;

    if (rtc_is_time_reg(idx)) {
        uint8_t regs[RTC_CMOS_LEN];

        if (!rtc_clock_running(s))
            return cmos[idx];
        now = rtc_guest_time(s, rtc_host_ns(s));
        rtc_time_to_regs(cmos[RTC_REG_B], now.sec, regs);
        return regs[idx];
    }
    switch (idx) {
    case RTC_REG_A:
        v = cmos[RTC_REG_A];
        now = rtc_guest_time(s, rtc_host_ns(s));
        if (rtc_clock_running(s) && now.nsec >= RTC_NS_PER_SEC - RTC_UIP_NS)
            v |= RTC_A_UIP;
        return v;
    case RTC_REG_C:
        /* Reading REG_C clears it, which lowers the IRQ. */
        host_ns = rtc_host_ns(s);
        rtc_update_flags(s, rtc_guest_time(s, host_ns));
        v = cmos[RTC_REG_C];
        cmos[RTC_REG_C] = 0;
        rtc_drive_irq(s, FALSE);
        rtc_rearm(s, host_ns);
        return v;
    case RTC_REG_D:
        /* Valid RAM and time: the battery is fine. */
        return RTC_D_VRT;
    default:
        return cmos[idx];
    }
}

static void rtc_write_data(Rtc *s, uint8_t val)
{
    unsigned idx = s->r.index & ~RTC_NMI_DISABLE;
    uint8_t *cmos = s->r.cmos;
    int64_t host_ns;

    if (rtc_is_time_reg(idx)) {
        rtc_write_time_reg(s, rtc_host_ns(s), idx, val);
        return;
    }
    switch (idx) {
    case RTC_SECONDS_ALARM:
    case RTC_MINUTES_ALARM:
    case RTC_HOURS_ALARM:
        /* Alarms that already passed count against the old setting. */
        host_ns = rtc_host_ns(s);
        rtc_update_flags(s, rtc_guest_time(s, host_ns));
        cmos[idx] = val;
        rtc_rearm(s, host_ns);
        break;
    case RTC_REG_A:
        rtc_write_control(s, rtc_host_ns(s), val, cmos[RTC_REG_B]);
        break;
    case RTC_REG_B:
        rtc_write_control(s, rtc_host_ns(s), cmos[RTC_REG_A], val);
        break;
    case RTC_REG_C:
    case RTC_REG_D:
        vireo_guest_warn("%s: write 0x%02x to read-only register 0x%02x ignored",
                         s->dev.id, val, idx);
        break;
    default:
        cmos[idx] = val;
        break;
    }
}

/* Wider accesses reach the index and data ports in turn, as on the ISA bus. */
static void rtc_read(Device *dev, uint64_t off, void *buf, size_t len)
{
    Rtc *s = rtc_from_dev(dev);
    uint8_t *out = buf;

    for (size_t i = 0; i < len; i++) {
        if (off + i == 1) {
            out[i] = rtc_read_data(s);
        } else {
            /* The index port is write-only on a PC. */
            if (off + i >= RTC_WINDOW_LEN)
                vireo_guest_warn("%s: read beyond the register window at %" G_GUINT64_FORMAT,
                                 dev->id, off + i);
            out[i] = 0xff;
        }
    }
}

static void rtc_write(Device *dev, uint64_t off, const void *buf, size_t len)
{
    Rtc *s = rtc_from_dev(dev);
    const uint8_t *in = buf;

    for (size_t i = 0; i < len; i++) {
        if (off + i == 0)
            s->r.index = in[i];
        else if (off + i == 1)
            rtc_write_data(s, in[i]);
        else
            vireo_guest_warn("%s: write beyond the register window at %" G_GUINT64_FORMAT,
                             dev->id, off + i);
    }
}

/* --- lifecycle --- */

/*
 * The RESET pin clears the interrupt enables and flags; the time, the
 * format bits, SET, REG_A and the NVRAM are untouched (battery backed).
 */
static void rtc_reset(Device *dev)
{
    Rtc *s = rtc_from_dev(dev);
    int64_t host_ns = rtc_host_ns(s);

    s->r.cmos[RTC_REG_B] &= ~(RTC_B_PIE | RTC_B_AIE | RTC_B_UIE | RTC_B_SQWE);
    s->r.cmos[RTC_REG_C] = 0;
    s->r.checked = rtc_guest_time(s, host_ns);
    s->r.index = 0;
    rtc_drive_irq(s, FALSE);
    rtc_rearm(s, host_ns);
}

/* Guest time minus host real time: what stays valid in another process. */
static RtcTime rtc_realtime_offset(Rtc *s)
{
    if (s->clock == RTC_CLOCK_HOST)
        return s->r.offset;
    return rtc_time_sub(rtc_guest_time(s, rtc_host_ns(s)),
                        rtc_time_from_ns(g_get_real_time() * 1000));
}

static gboolean rtc_save(Device *dev, StateWriter *w, GError **error)
{
    Rtc *s = rtc_from_dev(dev);
    RtcTime offset = rtc_realtime_offset(s);

    state_writer_begin_section(w, dev->id, RTC_STATE_VERSION);
    state_write_bytes(w, "cmos", s->r.cmos, RTC_CMOS_LEN);
    state_write_u8(w, "index", s->r.index);
    /* Relative to host real time, so the guest clock keeps pace across migration. */
    state_write_u64(w, "offset-sec", (uint64_t)offset.sec);
    state_write_u32(w, "offset-nsec", offset.nsec);
    state_write_u64(w, "checked-sec", (uint64_t)s->r.checked.sec);
    state_write_u32(w, "checked-nsec", s->r.checked.nsec);
    state_writer_end_section(w);
    return TRUE;
}

static gboolean rtc_load(Device *dev, StateReader *r, GError **error)
{
    Rtc *s = rtc_from_dev(dev);
    RtcRegs n = { 0 };
    uint64_t offset_sec, checked_sec;
    uint32_t offset_nsec, checked_nsec, version;
    int64_t host_ns;

    if (!state_reader_begin_section(r, dev->id, RTC_STATE_VERSION, &version, error))
        return FALSE;
    if (!state_read_bytes(r, "cmos", n.cmos, RTC_CMOS_LEN, error) ||
        !state_read_u8(r, "index", &n.index, error) ||
        !state_read_u64(r, "offset-sec", &offset_sec, error) ||
        !state_read_u32(r, "offset-nsec", &offset_nsec, error) ||
        !state_read_u64(r, "checked-sec", &checked_sec, error) ||
        !state_read_u32(r, "checked-nsec", &checked_nsec, error) ||
        !state_reader_end_section(r, error))
        return FALSE;
    if (offset_nsec >= RTC_NS_PER_SEC || checked_nsec >= RTC_NS_PER_SEC ||
        (n.cmos[RTC_REG_A] & RTC_A_UIP) || (n.cmos[RTC_REG_C] & ~(RTC_C_IRQF | RTC_C_FLAGS)) ||
        n.cmos[RTC_REG_D] != RTC_D_VRT) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s': register values out of range "
                    "(REG_A 0x%02x, REG_C 0x%02x, REG_D 0x%02x, nsec %u/%u)",
                    dev->id, n.cmos[RTC_REG_A], n.cmos[RTC_REG_C], n.cmos[RTC_REG_D],
                    offset_nsec, checked_nsec);
        return FALSE;
    }
    if ((int64_t)offset_sec > RTC_SEC_LIMIT || (int64_t)offset_sec < -RTC_SEC_LIMIT ||
        (int64_t)checked_sec > RTC_SEC_LIMIT || (int64_t)checked_sec < -RTC_SEC_LIMIT) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s': clock offset out of range", dev->id);
        return FALSE;
    }
    n.offset.sec = (int64_t)offset_sec;
    n.offset.nsec = offset_nsec;
    n.checked.sec = (int64_t)checked_sec;
    n.checked.nsec = checked_nsec;

    s->r = n;
    host_ns = rtc_host_ns(s);
    if (s->clock == RTC_CLOCK_RT) {
        RtcTime guest = rtc_time_add(rtc_time_from_ns(g_get_real_time() * 1000), n.offset);

        rtc_set_guest_time(s, host_ns, guest);
    }
    rtc_update_irqf(s);
    rtc_drive_irq(s, TRUE);
    rtc_rearm(s, host_ns);
    return TRUE;
}

static void rtc_free(Device *dev)
{
    Rtc *s = rtc_from_dev(dev);

    /* Waits for a running callback, which needs dev->lock: not held here. */
    timer_free(s->timer);
    device_cleanup(dev);
    g_free(s);
}

/* Bytes with an optional binary suffix: 512M, 4G, 0x100000. */
static gboolean rtc_parse_size(const char *key, const char *str, uint64_t *out, GError **error)
{
    uint64_t mult = 1, v;
    char *end = NULL;

    errno = 0;
    v = g_ascii_strtoull(str, &end, 0);
    if (end == str || errno || *str == '-')
        goto bad;
    switch (*end) {
    case '\0':
        break;
    case 'k': case 'K': mult = 1ULL << 10; end++; break;
    case 'm': case 'M': mult = 1ULL << 20; end++; break;
    case 'g': case 'G': mult = 1ULL << 30; end++; break;
    case 't': case 'T': mult = 1ULL << 40; end++; break;
    default:
        goto bad;
    }
    if (*end || v > G_MAXUINT64 / mult)
        goto bad;
    *out = v * mult;
    return TRUE;

bad:
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                "%s: option %s=%s is not a size in bytes", rtc_type.name, key, str);
    return FALSE;
}

/*
 * The memory-size bytes as QEMU's PC fills them; OVMF and SeaBIOS read
 * them when no other source tells them the RAM size.
 */
static void rtc_set_memory(uint8_t *cmos, uint64_t below_4g, uint64_t above_4g)
{
    uint64_t v;

    v = MIN(below_4g / 1024, 640);                      /* base memory, KiB */
    cmos[0x15] = v;
    cmos[0x16] = v >> 8;
    v = below_4g > LAYOUT_MIB ? (below_4g - LAYOUT_MIB) / 1024 : 0;
    v = MIN(v, 0xffff);                                 /* extended memory, KiB */
    cmos[0x17] = cmos[0x30] = v;
    cmos[0x18] = cmos[0x31] = v >> 8;
    v = below_4g > 16 * LAYOUT_MIB ? (below_4g - 16 * LAYOUT_MIB) / 65536 : 0;
    v = MIN(v, 0xffff);                                 /* 16 MiB - 4 GiB, 64 KiB units */
    cmos[0x34] = v;
    cmos[0x35] = v >> 8;
    v = above_4g / 65536;                               /* above 4 GiB, 64 KiB units */
    cmos[0x5b] = v;
    cmos[0x5c] = v >> 8;
    cmos[0x5d] = v >> 16;
}

static Device *rtc_create(const DeviceEnv *env, const char *options, GError **error)
{
    static const char *const known[] = { "base", "clock", "ram-below-4g", "ram-above-4g", NULL };
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    const char *base, *clock, *size;
    uint64_t below_4g = 0, above_4g = 0;
    gboolean localtime = FALSE;
    RtcClock clk = RTC_CLOCK_HOST;
    RtcTime guest;
    int64_t host_ns;
    Rtc *s;

    if (!opts || !device_options_check_known(opts, known, rtc_type.name, error))
        return NULL;
    base = g_hash_table_lookup(opts, "base");
    if (base && strcmp(base, "localtime") == 0) {
        localtime = TRUE;
    } else if (base && strcmp(base, "utc") != 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: base=%s: expected utc or localtime", rtc_type.name, base);
        return NULL;
    }
    clock = g_hash_table_lookup(opts, "clock");
    if (clock && strcmp(clock, "rt") == 0) {
        clk = RTC_CLOCK_RT;
    } else if (clock && strcmp(clock, "host") != 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: clock=%s: expected host or rt", rtc_type.name, clock);
        return NULL;
    }
    size = g_hash_table_lookup(opts, "ram-below-4g");
    if (size && !rtc_parse_size("ram-below-4g", size, &below_4g, error))
        return NULL;
    size = g_hash_table_lookup(opts, "ram-above-4g");
    if (size && !rtc_parse_size("ram-above-4g", size, &above_4g, error))
        return NULL;
    if (below_4g > 4 * LAYOUT_GIB || above_4g / 65536 > 0xffffff) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: RAM sizes do not fit the CMOS bytes (at most 4 GiB below 4 GiB "
                    "and 1 TiB - 64 KiB above)", rtc_type.name);
        return NULL;
    }
    if (!env->timers) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s needs a timer service", rtc_type.name);
        return NULL;
    }

    s = g_new0(Rtc, 1);
    device_init(&s->dev, &rtc_type, env->id);
    s->irq = env->irq;
    s->timers = env->timers;
    s->clock = clk;
    s->timer = timer_new(s->timers, rtc_timer_fire, s);
    s->timer_deadline = -1;

    s->r.cmos[RTC_REG_A] = RTC_A_DEFAULT;
    /* 24-hour BCD, as PC firmware leaves it; Linux supports nothing else. */
    s->r.cmos[RTC_REG_B] = RTC_B_24H;
    s->r.cmos[RTC_REG_D] = RTC_D_VRT;
    rtc_set_memory(s->r.cmos, below_4g, above_4g);

    guest = rtc_time_from_ns(g_get_real_time() * 1000);
    if (localtime) {
        g_autoptr(GDateTime) dt = g_date_time_new_now_local();

        guest.sec += g_date_time_get_utc_offset(dt) / G_USEC_PER_SEC;
    }
    host_ns = rtc_host_ns(s);
    rtc_set_guest_time(s, host_ns, guest);
    s->r.checked = rtc_guest_time(s, host_ns);
    rtc_snapshot(s, s->r.checked, s->r.cmos[RTC_REG_B]);
    return &s->dev;
}

static const DeviceOps rtc_ops = {
    .read = rtc_read,
    .write = rtc_write,
    .reset = rtc_reset,
    .save = rtc_save,
    .load = rtc_load,
    .free = rtc_free,
};

static const DeviceType rtc_type = {
    .name = "rtc-mc146818",
    .description = "MC146818 CMOS RTC with 128 bytes of CMOS (2-byte I/O window)",
    .ops = &rtc_ops,
    .create = rtc_create,
};
DEVICE_TYPE_REGISTER(rtc_type);
