/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "pit.h"

#include "io.h"

#define PIT_CH0         0x40
#define PIT_CMD         0x43

void pit_start_periodic(uint32_t hz)
{
    uint32_t div = (PIT_HZ + hz / 2) / hz;

    if (div > 0xffff) {
        div = 0;                        /* 0 means 65536 */
    }
    io_out8(PIT_CMD, 0x34);             /* channel 0, lo/hi, mode 2, binary */
    io_out8(PIT_CH0, div & 0xff);
    io_out8(PIT_CH0, div >> 8);
}

void pit_stop(void)
{
    io_out8(PIT_CMD, 0x30);             /* channel 0, lo/hi, mode 0 */
    io_out8(PIT_CH0, 0);
    io_out8(PIT_CH0, 0);
}
