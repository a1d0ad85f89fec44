/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The ACPI PM1a register block ("acpi-pm", devices/acpi-pm.c): what the
 * rest of the VMM may do to it besides register access.
 */
#ifndef VIREO_ACPI_PM_H
#define VIREO_ACPI_PM_H

#include "vireo/device.h"

/*
 * Presses the fixed-hardware power button: sets PM1a_STS.PWRBTN_STS and
 * raises the SCI if the guest enabled PWRBTN_EN. For QMP system_powerdown;
 * safe from any thread (takes dev->lock). @dev must be an "acpi-pm" device.
 */
void acpi_pm_press_power_button(Device *dev);

#endif
