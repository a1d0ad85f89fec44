/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "serial.h"

#include "io.h"
#include "util.h"

void serial_putc(char c)
{
    /* Bounded: a UART that never reports THRE must not hang the test. */
    for (unsigned i = 0; i < 100000; i++) {
        if (io_in8(SERIAL_COM1 + SERIAL_LSR) & SERIAL_LSR_THRE) {
            break;
        }
        util_pause();
    }
    io_out8(SERIAL_COM1 + SERIAL_THR, (uint8_t)c);
}

void serial_write(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        serial_putc(s[i]);
    }
}
