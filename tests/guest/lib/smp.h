/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Application processors: INIT/SIPI/SIPI with the real-mode trampoline
 * from start.S copied to LAYOUT_TRAMPOLINE (0x8000). Each AP reaches long
 * mode on its own stack, loads its TSS and the IDT, enables its local
 * APIC and calls the function given to smp_start_aps(). APs are started
 * one at a time, in MADT order.
 */
#ifndef GUEST_SMP_H
#define GUEST_SMP_H

#include <stdint.h>

#include "cpu.h"

typedef void (*SmpApFn)(Cpu *cpu);

typedef struct {
    unsigned madt_cpus;         /* enabled local APICs in the MADT */
    unsigned started;           /* CPUs online, the boot CPU included */
} SmpResult;

/*
 * Start every AP in the MADT; fn runs on each (at CPL0, interrupts off)
 * and the AP halts when it returns. Waits for each AP to come online (up
 * to about a second per AP). The boot CPU is Cpu index 0.
 */
SmpResult smp_start_aps(SmpApFn fn);

#endif
