/* SPDX-License-Identifier: GPL-2.0-or-later */
/* MC146818 CMOS RTC at ports 0x70/0x71. */
#ifndef GUEST_RTC_H
#define GUEST_RTC_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    unsigned year, month, day, hour, minute, second;
} RtcTime;

uint8_t rtc_cmos_read(uint8_t index);
void rtc_cmos_write(uint8_t index, uint8_t v);

/*
 * Read the time: waits for no update in progress, reads until two reads
 * agree, converts BCD and 12-hour values per status register B. The
 * century comes from CMOS byte 0x32 when it holds 19-21, else 20.
 * False if the clock never settles.
 */
bool rtc_read_time(RtcTime *t);

#endif
