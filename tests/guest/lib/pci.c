/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "pci.h"

#include "acpi.h"
#include "cpu.h"
#include "lapic.h"
#include "mmio.h"
#include "test.h"
#include "util.h"

#define MCFG_BASE       44              /* first allocation's base address */
#define MSIX_ENTRY_SIZE 16

static uintptr_t pci_ecam_base;

uintptr_t pci_ecam(void)
{
    if (!pci_ecam_base) {
        const AcpiHeader *mcfg = acpi_find_table("MCFG");

        if (!mcfg) {
            test_fail("no MCFG table");
        }
        pci_ecam_base = *(const uint64_t *)((const uint8_t *)mcfg + MCFG_BASE);
    }
    return pci_ecam_base;
}

/* Bus 0: 32 KiB per slot, 4 KiB per function. */
uint32_t pci_cfg_read(unsigned slot, unsigned reg)
{
    return mmio_read32(pci_ecam() + (slot << 15) + reg);
}

void pci_cfg_write(unsigned slot, unsigned reg, uint32_t v)
{
    mmio_write32(pci_ecam() + (slot << 15) + reg, v);
}

int pci_find_slot(uint32_t id)
{
    for (unsigned slot = 0; slot < PCI_SLOTS; slot++) {
        if (pci_cfg_read(slot, PCI_REG_ID) == id) {
            return slot;
        }
    }
    return -1;
}

unsigned pci_cap_next(unsigned slot, unsigned cap)
{
    if (!cap) {
        return pci_cfg_read(slot, PCI_REG_CAP_PTR) & 0xff;
    }
    return (pci_cfg_read(slot, cap) >> 8) & 0xff;
}

unsigned pci_cap_find(unsigned slot, uint8_t cap_id)
{
    for (unsigned cap = pci_cap_next(slot, 0); cap; cap = pci_cap_next(slot, cap)) {
        if ((pci_cfg_read(slot, cap) & 0xff) == cap_id) {
            return cap;
        }
    }
    return 0;
}

uint64_t pci_bar_addr(unsigned slot, unsigned bar)
{
    unsigned reg = PCI_REG_BAR0 + 4 * bar;
    uint32_t lo = pci_cfg_read(slot, reg);
    uint64_t addr = lo & ~0xfu;

    if ((lo & 0x6) == 0x4) {            /* 64-bit */
        addr |= (uint64_t)pci_cfg_read(slot, reg + 4) << 32;
    }
    return addr;
}

void pci_bar64_move(unsigned slot, unsigned bar, uint64_t addr)
{
    unsigned reg = PCI_REG_BAR0 + 4 * bar;

    pci_cfg_write(slot, reg, (uint32_t)addr | (pci_cfg_read(slot, reg) & 0xf));
    pci_cfg_write(slot, reg + 4, addr >> 32);
}

void pci_msix_set_entry(uintptr_t table, unsigned entry, uint8_t vector, bool masked)
{
    uintptr_t e = table + MSIX_ENTRY_SIZE * entry;

    mmio_write32(e, LAPIC_BASE | (lapic_id() << 12));
    mmio_write32(e + 4, 0);
    mmio_write32(e + 8, vector);
    mmio_write32(e + 12, masked);
}

void pci_wait_count(volatile unsigned *counter, unsigned want, const char *what)
{
    uint64_t deadline = cpu_rdtsc() + PCI_WAIT_CYCLES;

    cpu_sti();
    while (*counter < want) {
        if (cpu_rdtsc() > deadline) {
            test_fail("%s: no interrupt within ~1 s", what);
        }
        util_pause();
    }
    cpu_cli();
}
