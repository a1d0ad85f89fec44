/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * An interrupt line as a device sees it. The VMM backs it with KVM_IRQ_LINE
 * on a GSI of the in-kernel IOAPIC/PIC; tests back it with a recorder.
 */
#ifndef VIREO_IRQ_H
#define VIREO_IRQ_H

#include <glib.h>

typedef struct IrqLine IrqLine;
struct IrqLine {
    /* Called with the device lock held; must not block. */
    void (*set_level)(IrqLine *line, gboolean level);
};

static inline void irq_line_set(IrqLine *line, gboolean level)
{
    if (line)
        line->set_level(line, level);
}

#endif
