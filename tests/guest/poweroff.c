/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ACPI S5: SLP_TYP from the DSDT's \_S5 (5 if absent, docs/machine.md)
 * with SLP_EN into PM1a_CNT (or the sleep control register on
 * hardware-reduced ACPI). The VMM must exit 0; still running is a FAIL.
 */
#include "lib/guest.h"

const char test_name[] = "poweroff";

int main(void)
{
    const AcpiFadt *f = acpi_fadt();

    if (!f) {
        test_fail("no FADT");
    }
    int typ = acpi_s5_slp_typ();
    bool legacy = !(f->flags & ACPI_FADT_HW_REDUCED) && f->pm1a_cnt.address;
    const AcpiGas *reg = legacy ? &f->pm1a_cnt : &f->sleep_ctl;

    if (!reg->address) {
        test_fail("FADT has neither PM1a_CNT nor a sleep control register");
    }
    test_log("poweroff: %s at %s 0x%lx, SLP_TYP %d (%s)",
             legacy ? "PM1a_CNT" : "SLEEP_CONTROL_REG",
             reg->space == ACPI_GAS_IO ? "port" : "address", reg->address,
             typ < 0 ? 5 : typ, typ < 0 ? "default, no \\_S5" : "DSDT \\_S5");
    cpu_cli();
    acpi_poweroff();
    cpu_delay_us(1000000);
    test_fail("still running 1 s after the S5 write");
}
