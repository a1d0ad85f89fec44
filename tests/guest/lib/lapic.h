/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Local APIC in xAPIC (MMIO) mode at 0xfee00000. */
#ifndef GUEST_LAPIC_H
#define GUEST_LAPIC_H

#include <stdbool.h>
#include <stdint.h>

#define LAPIC_BASE              0xfee00000UL

#define LAPIC_REG_ID            0x020
#define LAPIC_REG_VERSION       0x030
#define LAPIC_REG_TPR           0x080
#define LAPIC_REG_EOI           0x0b0
#define LAPIC_REG_SVR           0x0f0
#define LAPIC_REG_ESR           0x280
#define LAPIC_REG_ICR_LO        0x300
#define LAPIC_REG_ICR_HI        0x310
#define LAPIC_REG_LVT_TIMER     0x320
#define LAPIC_REG_LVT_LINT0     0x350
#define LAPIC_REG_LVT_LINT1     0x360
#define LAPIC_REG_LVT_ERROR     0x370
#define LAPIC_REG_TIMER_INIT    0x380
#define LAPIC_REG_TIMER_CUR     0x390
#define LAPIC_REG_TIMER_DIV     0x3e0

#define LAPIC_LVT_MASKED        (1u << 16)
#define LAPIC_TIMER_PERIODIC    (1u << 17)

uint32_t lapic_read(uint32_t reg);
void lapic_write(uint32_t reg, uint32_t v);

/* Software-enable this CPU's APIC (spurious vector 0xff), TPR 0. */
void lapic_enable(void);
uint32_t lapic_id(void);
void lapic_eoi(void);

/* Timer with divide-by-16; count in bus clocks / 16. */
void lapic_timer_start(uint8_t vector, uint32_t count, bool periodic);
void lapic_timer_stop(void);

/* IPIs; each waits (bounded) for the ICR to be idle first. */
void lapic_send_ipi(uint32_t apic_id, uint8_t vector);
void lapic_send_init(uint32_t apic_id);
void lapic_send_sipi(uint32_t apic_id, uint32_t start_addr);

#endif
