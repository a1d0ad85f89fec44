/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "lapic.h"

#include "cpu.h"
#include "layout.h"
#include "mmio.h"
#include "util.h"

#define MSR_APIC_BASE           0x1b
#define MSR_APIC_BASE_ENABLE    (1u << 11)
#define LAPIC_SVR_ENABLE        (1u << 8)
#define LAPIC_ICR_BUSY          (1u << 12)
#define LAPIC_ICR_INIT          0x00004500      /* INIT, assert, level */
#define LAPIC_ICR_SIPI          0x00004600      /* start-up, assert */
#define LAPIC_ICR_FIXED         0x00004000      /* fixed, assert */

uint32_t lapic_read(uint32_t reg)
{
    return mmio_read32(LAPIC_BASE + reg);
}

void lapic_write(uint32_t reg, uint32_t v)
{
    mmio_write32(LAPIC_BASE + reg, v);
}

void lapic_enable(void)
{
    uint64_t base = cpu_rdmsr(MSR_APIC_BASE);

    if (!(base & MSR_APIC_BASE_ENABLE)) {
        cpu_wrmsr(MSR_APIC_BASE, base | MSR_APIC_BASE_ENABLE);
    }
    lapic_write(LAPIC_REG_TPR, 0);
    lapic_write(LAPIC_REG_SVR, LAPIC_SVR_ENABLE | LAYOUT_VEC_SPURIOUS);
}

uint32_t lapic_id(void)
{
    return lapic_read(LAPIC_REG_ID) >> 24;
}

void lapic_eoi(void)
{
    lapic_write(LAPIC_REG_EOI, 0);
}

void lapic_timer_start(uint8_t vector, uint32_t count, bool periodic)
{
    lapic_write(LAPIC_REG_TIMER_DIV, 0x3);      /* divide by 16 */
    lapic_write(LAPIC_REG_LVT_TIMER,
                vector | (periodic ? LAPIC_TIMER_PERIODIC : 0));
    lapic_write(LAPIC_REG_TIMER_INIT, count);
}

void lapic_timer_stop(void)
{
    lapic_write(LAPIC_REG_LVT_TIMER, LAPIC_LVT_MASKED);
    lapic_write(LAPIC_REG_TIMER_INIT, 0);
}

static void lapic_send(uint32_t apic_id, uint32_t icr_lo)
{
    for (unsigned i = 0; i < 100000; i++) {
        if (!(lapic_read(LAPIC_REG_ICR_LO) & LAPIC_ICR_BUSY)) {
            break;
        }
        util_pause();
    }
    lapic_write(LAPIC_REG_ICR_HI, apic_id << 24);
    lapic_write(LAPIC_REG_ICR_LO, icr_lo);
}

void lapic_send_ipi(uint32_t apic_id, uint8_t vector)
{
    lapic_send(apic_id, LAPIC_ICR_FIXED | vector);
}

void lapic_send_init(uint32_t apic_id)
{
    lapic_send(apic_id, LAPIC_ICR_INIT);
}

void lapic_send_sipi(uint32_t apic_id, uint32_t start_addr)
{
    lapic_send(apic_id, LAPIC_ICR_SIPI | ((start_addr >> 12) & 0xff));
}
