/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ACPI power button: PWRBTN_EN on, SCI (FADT SCI_INT, level, active high)
 * routed through the IOAPIC, then HLT. The host presses the button (QMP
 * system_powerdown) after "waiting for power button"; the SCI handler
 * checks and clears PWRBTN_STS and powers off through S5 (VMM exit 0).
 */
#include "lib/guest.h"

const char test_name[] = "powerbutton";

#define PWRBTN_VECTOR   0x50

static const AcpiFadt *pwrbtn_fadt;
static volatile unsigned pwrbtn_scis;

static uint32_t pwrbtn_sts(void)
{
    return acpi_gas_read(&pwrbtn_fadt->pm1a_evt, 0, 2);
}

static void pwrbtn_sci(TrapFrame *tf, void *opaque)
{
    const AcpiFadt *f = pwrbtn_fadt;
    uint32_t sts = pwrbtn_sts();

    (void)tf;
    (void)opaque;
    pwrbtn_scis++;
    if (!(sts & ACPI_PM1_PWRBTN)) {
        /* Someone else's event: acknowledge whatever is set and go on. */
        acpi_gas_write(&f->pm1a_evt, 0, 2, sts);
        lapic_eoi();
        return;
    }
    /* Write-1-to-clear, before EOI: the SCI is level-triggered. */
    acpi_gas_write(&f->pm1a_evt, 0, 2, ACPI_PM1_PWRBTN);
    if (pwrbtn_sts() & ACPI_PM1_PWRBTN) {
        test_fail("PWRBTN_STS still set after writing 1 to clear it");
    }
    lapic_eoi();
    test_log("powerbutton: SCI %u with PWRBTN_STS, cleared; powering off",
             pwrbtn_scis);
    acpi_poweroff();
    cpu_delay_us(1000000);
    test_fail("still running 1 s after the S5 write");
}

int main(void)
{
    const AcpiFadt *f = acpi_fadt();

    if (!f) {
        test_fail("no FADT");
    }
    if (!f->pm1a_evt.address || f->pm1_evt_len < 4) {
        test_fail("no PM1a event block (len %u)", f->pm1_evt_len);
    }
    pwrbtn_fadt = f;
    unsigned en_off = f->pm1_evt_len / 2;

    lapic_enable();
    if (!acpi_enable()) {
        test_log("powerbutton: SCI_EN stays clear (no SMI_CMD handshake)");
    }
    /* Stale status first, then enable only the power button. */
    acpi_gas_write(&f->pm1a_evt, 0, 2, ACPI_PM1_PWRBTN);
    acpi_gas_write(&f->pm1a_evt, en_off, 2, ACPI_PM1_PWRBTN);
    uint32_t en = acpi_gas_read(&f->pm1a_evt, en_off, 2);
    if (!(en & ACPI_PM1_PWRBTN)) {
        test_fail("PWRBTN_EN reads back as 0 (enable register 0x%x)", en);
    }

    cpu_set_handler(PWRBTN_VECTOR, pwrbtn_sci, NULL);
    /* The SCI is level-triggered and active high unless the MADT says else. */
    uint32_t gsi = f->sci_int;
    uint16_t mps = 0;
    uint32_t flags = IOAPIC_LEVEL;
    if (f->sci_int < 16 && acpi_isa_override(f->sci_int, &gsi, &mps)) {
        flags = 0;
        if ((mps & 3) == 3) {
            flags |= IOAPIC_ACTIVE_LOW;
        }
        if (((mps >> 2) & 3) != 1) {        /* 0 (default) or 3: level */
            flags |= IOAPIC_LEVEL;
        }
    }
    ioapic_route(gsi, PWRBTN_VECTOR, flags, lapic_id());

    test_log("powerbutton: PM1a_EVT %s 0x%lx, SCI_INT %u -> GSI %u (%s, %s)",
             f->pm1a_evt.space == ACPI_GAS_IO ? "port" : "address",
             f->pm1a_evt.address, f->sci_int, gsi,
             (flags & IOAPIC_LEVEL) ? "level" : "edge",
             (flags & IOAPIC_ACTIVE_LOW) ? "active low" : "active high");
    test_log("waiting for power button");
    for (;;) {
        cpu_sti_hlt();
    }
}
