/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ACPI table walking: RSDP (from the boot info, else a scan of
 * 0xe0000-0xfffff) -> XSDT (or RSDT) -> FADT, MADT, DSDT.
 * Every table used is checksum-checked; a bad checksum fails the test,
 * since these programs exist to check the VMM's tables too.
 * Boot CPU only (results are cached without locking).
 */
#ifndef GUEST_ACPI_H
#define GUEST_ACPI_H

#include <stdbool.h>
#include <stdint.h>

typedef struct __attribute__((packed)) {
    char sig[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    uint32_t creator_id;
    uint32_t creator_revision;
} AcpiHeader;

/* Generic Address Structure. */
typedef struct __attribute__((packed)) {
    uint8_t space;              /* ACPI_GAS_MEMORY or ACPI_GAS_IO */
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size;
    uint64_t address;
} AcpiGas;

#define ACPI_GAS_MEMORY         0
#define ACPI_GAS_IO             1

#define ACPI_FADT_RESET_REG_SUP (1u << 10)
#define ACPI_FADT_HW_REDUCED    (1u << 20)

#define ACPI_PM1_TMR_STS        (1u << 0)
#define ACPI_PM1_PWRBTN         (1u << 8)       /* _STS and _EN */
#define ACPI_PM1_CNT_SCI_EN     (1u << 0)
#define ACPI_PM1_CNT_SLP_TYP(t) (((t) & 7u) << 10)
#define ACPI_PM1_CNT_SLP_EN     (1u << 13)

/* What the programs need from the FADT, with X_ fields preferred. */
typedef struct {
    uint32_t flags;
    uint16_t sci_int;
    uint32_t smi_cmd;
    uint8_t acpi_enable;
    AcpiGas pm1a_evt;           /* status at +0, enable at +pm1_evt_len/2 */
    uint8_t pm1_evt_len;
    AcpiGas pm1a_cnt;
    AcpiGas reset_reg;
    uint8_t reset_value;
    AcpiGas sleep_ctl;          /* hardware-reduced ACPI only */
    uint64_t dsdt;
} AcpiFadt;

/* Physical address of a valid RSDP, or 0. */
uint64_t acpi_rsdp(void);

/* First table with this signature (checksum verified), or NULL. */
const AcpiHeader *acpi_find_table(const char *sig);

/* NULL without ACPI. */
const AcpiFadt *acpi_fadt(void);

/*
 * Enabled local APICs in the MADT (types 0 and 9), in table order.
 * Stores up to max IDs, returns how many there are (0 without a MADT).
 */
unsigned acpi_madt_cpus(uint32_t *apic_ids, unsigned max);

/* IOAPIC base from the MADT, 0 if unknown. */
uint64_t acpi_ioapic_base(void);

/* Interrupt source override for an ISA IRQ; untouched outputs if none. */
bool acpi_isa_override(uint8_t irq, uint32_t *gsi, uint16_t *mps_flags);

/* SLP_TYPa of \_S5 from the DSDT's AML, or -1 if not found. */
int acpi_s5_slp_typ(void);

uint32_t acpi_gas_read(const AcpiGas *gas, unsigned offset, unsigned bytes);
void acpi_gas_write(const AcpiGas *gas, unsigned offset, unsigned bytes,
                    uint32_t v);

/* Switch to ACPI mode (SMI_CMD <- ACPI_ENABLE) if SCI_EN is clear. */
bool acpi_enable(void);

/*
 * S5: SLP_TYP from \_S5 (5 if the DSDT has none) with SLP_EN into
 * PM1a_CNT, or into the sleep control register on hardware-reduced ACPI.
 * Returns only if the machine kept running (or there is no ACPI).
 */
void acpi_poweroff(void);

/* Write RESET_VALUE to RESET_REG; false if the FADT offers none. */
bool acpi_reset(void);

#endif
