/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "pic.h"

#include <stddef.h>

#include "cpu.h"
#include "io.h"

static void pic_ignore(TrapFrame *tf, void *opaque)
{
    (void)tf;
    (void)opaque;
}

void pic_disable(void)
{
    cpu_set_handler(PIC_VECTOR_BASE + 7, pic_ignore, NULL);
    cpu_set_handler(PIC_VECTOR_BASE + 15, pic_ignore, NULL);
    io_out8(0x20, 0x11);                /* ICW1: init, ICW4 follows */
    io_out8(0xa0, 0x11);
    io_out8(0x21, PIC_VECTOR_BASE);     /* ICW2: vector base */
    io_out8(0xa1, PIC_VECTOR_BASE + 8);
    io_out8(0x21, 0x04);                /* ICW3: slave on IRQ 2 */
    io_out8(0xa1, 0x02);
    io_out8(0x21, 0x01);                /* ICW4: 8086 mode */
    io_out8(0xa1, 0x01);
    io_out8(0x21, 0xff);                /* OCW1: mask all */
    io_out8(0xa1, 0xff);
}
