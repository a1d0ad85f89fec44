/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "ioapic.h"

#include "acpi.h"
#include "mmio.h"

#define IOAPIC_REGSEL           0x00
#define IOAPIC_WIN              0x10
#define IOAPIC_REG_REDTBL(n)    (0x10 + 2 * (n))

static uintptr_t ioapic_base(void)
{
    uint64_t base = acpi_ioapic_base();

    return base ? base : IOAPIC_BASE_DEFAULT;
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
    uintptr_t base = ioapic_base();

    mmio_write32(base + IOAPIC_REGSEL, reg);
    mmio_write32(base + IOAPIC_WIN, v);
}

void ioapic_route(uint32_t gsi, uint8_t vector, uint32_t flags,
                  uint32_t apic_id)
{
    /* Masked while the two halves change. */
    ioapic_write(IOAPIC_REG_REDTBL(gsi), IOAPIC_MASKED);
    ioapic_write(IOAPIC_REG_REDTBL(gsi) + 1, apic_id << 24);
    ioapic_write(IOAPIC_REG_REDTBL(gsi), vector | flags);
}

void ioapic_mask(uint32_t gsi)
{
    ioapic_write(IOAPIC_REG_REDTBL(gsi), IOAPIC_MASKED);
}

uint32_t ioapic_route_isa(uint8_t irq, uint8_t vector, uint32_t apic_id)
{
    uint32_t gsi = irq == 0 ? 2 : irq;
    uint16_t mps_flags = 0;
    uint32_t flags = 0;

    acpi_isa_override(irq, &gsi, &mps_flags);
    /* MPS INTI flags: polarity bits 1:0, trigger bits 3:2; 0 = ISA default. */
    if ((mps_flags & 3) == 3) {
        flags |= IOAPIC_ACTIVE_LOW;
    }
    if (((mps_flags >> 2) & 3) == 3) {
        flags |= IOAPIC_LEVEL;
    }
    ioapic_route(gsi, vector, flags, apic_id);
    return gsi;
}
