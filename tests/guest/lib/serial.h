/* SPDX-License-Identifier: GPL-2.0-or-later */
/* COM1 16550 UART: polled output, register names for interrupt users. */
#ifndef GUEST_SERIAL_H
#define GUEST_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#define SERIAL_COM1      0x3f8
#define SERIAL_COM1_IRQ  4      /* ISA IRQ */

/* Register offsets (DLAB = 0). */
#define SERIAL_RBR       0      /* read: receive buffer */
#define SERIAL_THR       0      /* write: transmit holding */
#define SERIAL_IER       1
#define SERIAL_IIR       2      /* read */
#define SERIAL_FCR       2      /* write */
#define SERIAL_LCR       3
#define SERIAL_MCR       4
#define SERIAL_LSR       5
#define SERIAL_MSR       6
#define SERIAL_SCR       7

#define SERIAL_IER_RDI   0x01   /* received data available */
#define SERIAL_IER_THRI  0x02   /* transmit holding register empty */
#define SERIAL_IER_RLSI  0x04
#define SERIAL_IER_MSI   0x08

#define SERIAL_IIR_NO_INT 0x01
#define SERIAL_IIR_ID    0x0e
#define SERIAL_IIR_MSI   0x00
#define SERIAL_IIR_THRI  0x02
#define SERIAL_IIR_RDI   0x04
#define SERIAL_IIR_RLSI  0x06
#define SERIAL_IIR_TIMEOUT 0x0c

#define SERIAL_MCR_DTR   0x01
#define SERIAL_MCR_RTS   0x02
#define SERIAL_MCR_OUT2  0x08   /* gates the IRQ line on PC UARTs */

#define SERIAL_LSR_DR    0x01
#define SERIAL_LSR_THRE  0x20

/* Polled: wait for THRE, then write. Callers serialise (test.c's lock). */
void serial_putc(char c);
void serial_write(const char *s, size_t n);

#endif
