/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The VM's KVM GSI routing table and its MSI routes (msi.h on KVM).
 *
 * GSIs 0-23 are the PC's: 0-15 reach the 8259s and the IOAPIC (0, the PIT,
 * on IOAPIC pin 2, as the MADT override says), 16-23 the IOAPIC only (PCI
 * INTx). MSI routes take GSIs from 24 up; each has an irqfd, so firing one
 * is an eventfd write from any thread and KVM injects the message.
 *
 * KVM_SET_GSI_ROUTING replaces the whole table and waits for an SRCU grace
 * period (milliseconds on a nested host), so a route is committed when the
 * guest unmasks a vector whose message changed, not on every table write.
 */
#ifndef VIREO_IRQ_ROUTING_H
#define VIREO_IRQ_ROUTING_H

#include <glib.h>

#include "vireo/msi.h"

#define IRQ_ROUTING_PC_GSIS 24

typedef struct IrqRouting IrqRouting;

/* Installs the PC routes on @vm_fd. */
IrqRouting *irq_routing_new(int vm_fd, GError **error);
void irq_routing_free(IrqRouting *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IrqRouting, irq_routing_free)

MsiController *irq_routing_msi_controller(IrqRouting *r);

#endif
