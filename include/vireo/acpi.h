/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ACPI tables for the machine (docs/machine.md): RSDP, XSDT, FADT (with the
 * PM1a blocks, the fixed power button and the reset register), FACS, DSDT
 * (\_S5, the legacy devices, the PCI host bridge with its windows and
 * _PRT), MADT (local APICs, IOAPIC, interrupt overrides) and MCFG (ECAM).
 */
#ifndef VIREO_ACPI_H
#define VIREO_ACPI_H

#include <glib.h>
#include <stdint.h>

#include "vireo/guest-memory.h"

typedef struct AcpiConfig {
    unsigned nr_cpus;
    uint64_t ram_size;          /* places the 64-bit PCI window above RAM */
} AcpiConfig;

/*
 * Writes the tables into guest RAM at LAYOUT_ACPI_START; returns the RSDP's
 * guest physical address in *@rsdp.
 */
gboolean acpi_build(const GuestMemory *mem, const AcpiConfig *cfg, uint64_t *rsdp,
                    GError **error);

/* Offsets into the FADT (ACPI 6.4, table 5.9), also used by tests. */
#define ACPI_FADT_REVISION 6
#define ACPI_FADT_LEN 276
#define ACPI_FADT_SCI_INT 46
#define ACPI_FADT_PM1A_EVT_BLK 56
#define ACPI_FADT_PM1A_CNT_BLK 64
#define ACPI_FADT_PM_TMR_BLK 76
#define ACPI_FADT_FLAGS 112
#define ACPI_FADT_RESET_REG 116
#define ACPI_FADT_RESET_VALUE 128
#define ACPI_FADT_X_FIRMWARE_CTRL 132
#define ACPI_FADT_X_DSDT 140

#endif
