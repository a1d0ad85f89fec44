/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Read the CMOS clock and print it as an ISO 8601 timestamp. */
#include "lib/guest.h"

const char test_name[] = "rtc";

int main(void)
{
    RtcTime t;

    if (!rtc_read_time(&t)) {
        test_fail("RTC update-in-progress never cleared or values unstable");
    }
    uint8_t regb = rtc_cmos_read(0x0b);
    test_log("rtc=%04u-%02u-%02uT%02u:%02u:%02u", t.year, t.month, t.day,
             t.hour, t.minute, t.second);
    test_log("rtc: status B 0x%02x (%s, %s)", regb,
             (regb & 0x04) ? "binary" : "BCD",
             (regb & 0x02) ? "24-hour" : "12-hour");
    if (t.year < 2000 || t.year > 2099 || t.month < 1 || t.month > 12 ||
        t.day < 1 || t.day > 31 || t.hour > 23 || t.minute > 59 ||
        t.second > 59) {
        test_fail("implausible time");
    }
    return 0;
}
