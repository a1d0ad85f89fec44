/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The machine's fixed layout: where RAM, boot structures, ACPI tables and
 * devices live in the guest. docs/machine.md explains it. Saved state and
 * migration depend on it, so change it only with a new machine version.
 */
#ifndef VIREO_LAYOUT_H
#define VIREO_LAYOUT_H

#include <stdint.h>

#define LAYOUT_MIB (1ULL << 20)
#define LAYOUT_GIB (1ULL << 30)

/* Guest physical memory map */
#define LAYOUT_BOOT_GDT          0x500ULL
#define LAYOUT_BOOT_PARAMS       0x7000ULL
#define LAYOUT_BOOT_PML4         0x9000ULL
#define LAYOUT_BOOT_PDPT         0xa000ULL
#define LAYOUT_BOOT_PD           0xb000ULL   /* 4 pages: identity map of 0-4 GiB */
#define LAYOUT_BOOT_SETUP_DATA   0xf000ULL   /* setup_data chain (RNG seed) */
#define LAYOUT_CMDLINE           0x20000ULL
#define LAYOUT_CMDLINE_MAX       0x10000ULL
#define LAYOUT_EBDA_START        0x9fc00ULL
#define LAYOUT_ACPI_START        0xe0000ULL
#define LAYOUT_ACPI_END          0x100000ULL
#define LAYOUT_HIGH_MEMORY       0x100000ULL /* first MiB ends here */
#define LAYOUT_KERNEL_DEFAULT    0x100000ULL /* bzImage protected-mode code */
#define LAYOUT_PCI_HOLE_START    0xc0000000ULL
#define LAYOUT_PCI_MMIO32_START  0xc0000000ULL /* 32-bit BAR window */
#define LAYOUT_PCI_MMIO32_END    0xe0000000ULL
#define LAYOUT_PCI_ECAM          0xe0000000ULL /* bus 0 only: 1 MiB */
#define LAYOUT_PCI_ECAM_LEN      0x100000ULL
#define LAYOUT_PCI_IO_START      0xc000ULL     /* port I/O BAR window */
#define LAYOUT_PCI_IO_END        0x10000ULL
#define LAYOUT_PCI_MMIO64_ALIGN  LAYOUT_GIB    /* 64-bit window: above RAM, 1 GiB aligned */
#define LAYOUT_PCI_MMIO64_LEN    (32 * LAYOUT_GIB)
#define LAYOUT_KVM_IDENTITY_MAP  0xfeffc000ULL /* 1 page KVM needs on Intel */
#define LAYOUT_KVM_TSS           0xfeffd000ULL /* 3 pages KVM needs on Intel */
#define LAYOUT_KVM_RESERVED_LEN  0x4000ULL
#define LAYOUT_IOAPIC_BASE       0xfec00000ULL
#define LAYOUT_LAPIC_BASE        0xfee00000ULL
#define LAYOUT_4G                0x100000000ULL

#define LAYOUT_MAX_CPUS          64
#define LAYOUT_MIN_MEMORY        (16 * LAYOUT_MIB)
#define LAYOUT_MAX_MEMORY        (1024 * LAYOUT_GIB)

/* I/O ports and their interrupts (ISA IRQ numbers; IRQ0 is GSI 2) */
#define LAYOUT_PORT_I8042_DATA   0x60
#define LAYOUT_PORT_I8042_CMD    0x64
#define LAYOUT_IRQ_I8042         1
#define LAYOUT_PORT_RTC          0x70
#define LAYOUT_PORT_RTC_LEN      2
#define LAYOUT_IRQ_RTC           8
#define LAYOUT_PORT_POST         0x80
#define LAYOUT_PORT_COM1         0x3f8
#define LAYOUT_PORT_UART_LEN     8
#define LAYOUT_IRQ_COM1          4
#define LAYOUT_PORT_DEBUG_EXIT   0x501
#define LAYOUT_PORT_PM_BASE      0x600
#define LAYOUT_PORT_PM_LEN       0x10
#define LAYOUT_PORT_PM1A_EVT     (LAYOUT_PORT_PM_BASE + 0x0) /* 4 bytes: status, enable */
#define LAYOUT_PORT_PM1A_CNT     (LAYOUT_PORT_PM_BASE + 0x4) /* 2 bytes */
#define LAYOUT_PORT_PM_TMR       (LAYOUT_PORT_PM_BASE + 0x8) /* 4 bytes */
#define LAYOUT_IRQ_SCI           9
#define LAYOUT_PORT_RESET        0xcf9
#define LAYOUT_ACPI_S5_SLP_TYP   5

/* The e820 map is built from this layout and the RAM size (vmm/layout.c). */
#define LAYOUT_E820_RAM      1
#define LAYOUT_E820_RESERVED 2
#define LAYOUT_E820_ACPI     3
#define LAYOUT_E820_MAX      16

typedef struct LayoutE820Entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} LayoutE820Entry;

/* Bytes of RAM below the PCI hole, and above 4 GiB. */
uint64_t layout_low_ram(uint64_t ram_size);
uint64_t layout_high_ram(uint64_t ram_size);
/* The 64-bit PCI window: above all RAM. */
uint64_t layout_pci_mmio64_start(uint64_t ram_size);
/* Fills @map (LAYOUT_E820_MAX entries); returns the count. */
unsigned layout_e820(uint64_t ram_size, LayoutE820Entry *map);

#endif
