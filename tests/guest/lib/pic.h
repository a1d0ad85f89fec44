/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Legacy 8259 pair: remapped away from the exception vectors and masked. */
#ifndef GUEST_PIC_H
#define GUEST_PIC_H

#define PIC_VECTOR_BASE 0x20    /* IRQ n -> 0x20 + n, all masked */

/*
 * Reinitialise both PICs to vectors 0x20-0x2f, mask every IRQ, and make
 * their spurious vectors (0x27, 0x2f) harmless. Firmware may have left
 * them unmasked with IRQ 0 on vector 8, where a PIT tick would look like
 * a double fault. Harmless when there is no PIC. runtime.c calls it at
 * boot, before main().
 */
void pic_disable(void);

#endif
