/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The guest memory map derived from include/vireo/layout.h. */
#include "vireo/layout.h"
#include "vireo/util.h"

uint64_t layout_low_ram(uint64_t ram_size)
{
    return ram_size < LAYOUT_PCI_HOLE_START ? ram_size : LAYOUT_PCI_HOLE_START;
}

uint64_t layout_high_ram(uint64_t ram_size)
{
    return ram_size - layout_low_ram(ram_size);
}

uint64_t layout_pci_mmio64_start(uint64_t ram_size)
{
    return VIREO_ALIGN_UP(LAYOUT_4G + layout_high_ram(ram_size), LAYOUT_PCI_MMIO64_ALIGN);
}

static unsigned add(LayoutE820Entry *map, unsigned n, uint64_t addr, uint64_t size,
                    uint32_t type)
{
    map[n].addr = addr;
    map[n].size = size;
    map[n].type = type;
    return n + 1;
}

unsigned layout_e820(uint64_t ram_size, LayoutE820Entry *map)
{
    uint64_t low = layout_low_ram(ram_size);
    uint64_t high = layout_high_ram(ram_size);
    unsigned n = 0;

    n = add(map, n, 0, LAYOUT_EBDA_START, LAYOUT_E820_RAM);
    /* EBDA, VGA hole and BIOS area; our ACPI tables sit at its top. */
    n = add(map, n, LAYOUT_EBDA_START, LAYOUT_HIGH_MEMORY - LAYOUT_EBDA_START,
            LAYOUT_E820_RESERVED);
    n = add(map, n, LAYOUT_HIGH_MEMORY, low - LAYOUT_HIGH_MEMORY, LAYOUT_E820_RAM);
    /* Linux uses ECAM only when its window is reserved like this. */
    n = add(map, n, LAYOUT_PCI_ECAM, LAYOUT_PCI_ECAM_LEN, LAYOUT_E820_RESERVED);
    /* IOAPIC and LAPIC pages, as firmware reports them. */
    n = add(map, n, LAYOUT_IOAPIC_BASE, 0x1000, LAYOUT_E820_RESERVED);
    n = add(map, n, LAYOUT_LAPIC_BASE, 0x1000, LAYOUT_E820_RESERVED);
    /* Real-mode helper pages KVM keeps for itself on Intel hosts. */
    n = add(map, n, LAYOUT_KVM_IDENTITY_MAP, LAYOUT_KVM_RESERVED_LEN, LAYOUT_E820_RESERVED);
    if (high)
        n = add(map, n, LAYOUT_4G, high, LAYOUT_E820_RAM);
    return n;
}
