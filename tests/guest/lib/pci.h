/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * PCI configuration space through ECAM (base from the ACPI MCFG), bus 0,
 * function 0 only: all the VMMs these programs run on put one function
 * per slot. Plus MSI-X table programming and a bounded wait for an
 * interrupt count. CPL0 only (ACPI, test_fail(), STI/CLI).
 */
#ifndef GUEST_PCI_H
#define GUEST_PCI_H

#include <stdbool.h>
#include <stdint.h>

#define PCI_REG_ID              0x00    /* device << 16 | vendor */
#define PCI_REG_COMMAND         0x04    /* status in the upper 16 bits */
#define PCI_REG_BAR0            0x10
#define PCI_REG_CAP_PTR         0x34

#define PCI_COMMAND_IO          0x1
#define PCI_COMMAND_MEMORY      0x2
#define PCI_COMMAND_MASTER      0x4

#define PCI_CAP_VNDR            0x09
#define PCI_CAP_MSIX            0x11
#define PCI_MSIX_ENABLE         0x80000000u     /* in the capability's first dword */

#define PCI_SLOTS               32

/*
 * ~1 s of TSC at the 3 GHz cpu.c assumes when CPUID gives no rate: long
 * enough for an ioeventfd -> irqfd round trip through the host.
 */
#define PCI_WAIT_CYCLES         3000000000ULL

/* ECAM base of bus 0 from the MCFG (cached); fails the test without one. */
uintptr_t pci_ecam(void);

uint32_t pci_cfg_read(unsigned slot, unsigned reg);
void pci_cfg_write(unsigned slot, unsigned reg, uint32_t v);

/* First slot on bus 0 whose ID register is @id, or -1. */
int pci_find_slot(uint32_t id);

/* The capability after @cap (0: the first one), or 0 at the end of the list. */
unsigned pci_cap_next(unsigned slot, unsigned cap);

/* Offset of the first capability with this ID, or 0. */
unsigned pci_cap_find(unsigned slot, uint8_t cap_id);

/* Address a memory BAR decodes (64-bit BARs: both halves). */
uint64_t pci_bar_addr(unsigned slot, unsigned bar);

/* Moves a 64-bit memory BAR to @addr, keeping its type bits. */
void pci_bar64_move(unsigned slot, unsigned bar, uint64_t addr);

/*
 * MSI-X table entry @entry: a message to this CPU's local APIC with
 * vector @vector, masked or not.
 */
void pci_msix_set_entry(uintptr_t table, unsigned entry, uint8_t vector, bool masked);

/*
 * Interrupts on until *counter reaches @want (an interrupt handler counts),
 * polled without HLT since nothing else would wake us; fails the test
 * naming @what after PCI_WAIT_CYCLES.
 */
void pci_wait_count(volatile unsigned *counter, unsigned want, const char *what);

#endif
