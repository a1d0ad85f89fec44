/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "rtc.h"

#include "io.h"
#include "util.h"

#define RTC_INDEX       0x70
#define RTC_DATA        0x71
#define RTC_NMI_OFF     0x80    /* keep NMIs off while indexing */

#define RTC_SEC         0x00
#define RTC_MIN         0x02
#define RTC_HOUR        0x04
#define RTC_DAY         0x07
#define RTC_MON         0x08
#define RTC_YEAR        0x09
#define RTC_REG_A       0x0a
#define RTC_REG_B       0x0b
#define RTC_CENTURY     0x32

#define RTC_A_UIP       0x80
#define RTC_B_24H       0x02
#define RTC_B_BINARY    0x04
#define RTC_HOUR_PM     0x80

uint8_t rtc_cmos_read(uint8_t index)
{
    io_out8(RTC_INDEX, RTC_NMI_OFF | index);
    return io_in8(RTC_DATA);
}

void rtc_cmos_write(uint8_t index, uint8_t v)
{
    io_out8(RTC_INDEX, RTC_NMI_OFF | index);
    io_out8(RTC_DATA, v);
}

typedef struct {
    uint8_t sec, min, hour, day, mon, year, century;
} RtcRaw;

static bool rtc_read_raw(RtcRaw *r)
{
    unsigned i;

    /* An update takes < 2 ms; each read is a VM exit, so this is plenty. */
    for (i = 0; i < 100000; i++) {
        if (!(rtc_cmos_read(RTC_REG_A) & RTC_A_UIP)) {
            break;
        }
        util_pause();
    }
    if (i == 100000) {
        return false;
    }
    r->sec = rtc_cmos_read(RTC_SEC);
    r->min = rtc_cmos_read(RTC_MIN);
    r->hour = rtc_cmos_read(RTC_HOUR);
    r->day = rtc_cmos_read(RTC_DAY);
    r->mon = rtc_cmos_read(RTC_MON);
    r->year = rtc_cmos_read(RTC_YEAR);
    r->century = rtc_cmos_read(RTC_CENTURY);
    return true;
}

static unsigned rtc_bcd(uint8_t v)
{
    return (v >> 4) * 10 + (v & 0xf);
}

bool rtc_read_time(RtcTime *t)
{
    RtcRaw a, b;
    unsigned tries;

    for (tries = 0; tries < 10; tries++) {
        if (!rtc_read_raw(&a) || !rtc_read_raw(&b)) {
            return false;
        }
        if (!memcmp(&a, &b, sizeof(a))) {
            break;
        }
    }
    if (tries == 10) {
        return false;
    }

    uint8_t regb = rtc_cmos_read(RTC_REG_B);
    bool pm = a.hour & RTC_HOUR_PM;
    uint8_t hour = a.hour & ~RTC_HOUR_PM;

    if (regb & RTC_B_BINARY) {
        t->second = a.sec;
        t->minute = a.min;
        t->hour = hour;
        t->day = a.day;
        t->month = a.mon;
        t->year = a.year;
    } else {
        t->second = rtc_bcd(a.sec);
        t->minute = rtc_bcd(a.min);
        t->hour = rtc_bcd(hour);
        t->day = rtc_bcd(a.day);
        t->month = rtc_bcd(a.mon);
        t->year = rtc_bcd(a.year);
        a.century = rtc_bcd(a.century);
    }
    if (!(regb & RTC_B_24H)) {
        /* 12-hour clock: 12 AM is 0 h, 12 PM is 12 h. */
        t->hour = (t->hour % 12) + (pm ? 12 : 0);
    }
    unsigned century = a.century >= 19 && a.century <= 21 ? a.century : 20;
    t->year += century * 100;
    return true;
}
