/* SPDX-License-Identifier: GPL-2.0-or-later */
/* 8254 PIT channel 0 (ISA IRQ 0). */
#ifndef GUEST_PIT_H
#define GUEST_PIT_H

#include <stdint.h>

#define PIT_HZ          1193182u
#define PIT_IRQ         0

/* Mode 2 (rate generator) at about hz. */
void pit_start_periodic(uint32_t hz);

/* Mode 0 with the longest count: at most one more tick, 55 ms later. */
void pit_stop(void);

#endif
