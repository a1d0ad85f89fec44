/* SPDX-License-Identifier: GPL-2.0-or-later */
/* IOAPIC redirection (base from the MADT, else 0xfec00000). */
#ifndef GUEST_IOAPIC_H
#define GUEST_IOAPIC_H

#include <stdint.h>

#define IOAPIC_BASE_DEFAULT     0xfec00000UL

/* Redirection entry flags (low dword). */
#define IOAPIC_ACTIVE_LOW       (1u << 13)
#define IOAPIC_LEVEL            (1u << 15)
#define IOAPIC_MASKED           (1u << 16)

/* Fixed delivery, physical destination apic_id. */
void ioapic_route(uint32_t gsi, uint8_t vector, uint32_t flags,
                  uint32_t apic_id);
void ioapic_mask(uint32_t gsi);

/*
 * Route an ISA IRQ: GSI, polarity and trigger from the MADT's interrupt
 * source overrides when ACPI is there, else GSI = IRQ (IRQ 0 -> GSI 2),
 * edge, active high. Returns the GSI.
 */
uint32_t ioapic_route_isa(uint8_t irq, uint8_t vector, uint32_t apic_id);

#endif
