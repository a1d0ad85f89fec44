/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Everything a guest test program may use. */
#ifndef GUEST_GUEST_H
#define GUEST_GUEST_H

#include "acpi.h"
#include "boot.h"
#include "cpu.h"
#include "fmt.h"
#include "io.h"
#include "ioapic.h"
#include "lapic.h"
#include "layout.h"
#include "mmio.h"
#include "pci.h"
#include "pic.h"
#include "pit.h"
#include "rtc.h"
#include "serial.h"
#include "smp.h"
#include "test.h"
#include "user.h"
#include "util.h"
#include "virtio.h"

int main(void);

#endif
