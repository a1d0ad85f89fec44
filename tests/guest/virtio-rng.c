/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-rng as a minimal virtio 1.x driver uses it, against vireo-vmm
 * (run with --device virtio-rng): the device found by ECAM enumeration,
 * its vendor capabilities walked for the common configuration, notify and
 * ISR structures, features negotiated (VERSION_1 only), one queue set up
 * in this program's memory, and random bytes requested twice. Each
 * request is a 16-bit write to the queue's notify address, which KVM
 * turns into an ioeventfd doorbell, and is answered by an MSI-X interrupt
 * delivered through an irqfd.
 */
#include "lib/guest.h"

const char test_name[] = "virtio-rng";

#define VIRTIO_RNG_ID 0x10441af4u       /* device << 16 | vendor */
#define CAP_VNDR 0x09
#define CAP_MSIX 0x11
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
/* struct virtio_pci_common_cfg */
#define DFSELECT 0
#define DF 4
#define GFSELECT 8
#define GF 12
#define MSIX_CONFIG 16
#define NUM_QUEUES 18
#define STATUS 20
#define Q_SELECT 22
#define Q_SIZE 24
#define Q_MSIX 26
#define Q_ENABLE 28
#define Q_NOFF 30
#define Q_DESC 32
#define Q_AVAIL 40
#define Q_USED 48
#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define VERSION_1_HI 1                  /* bit 32: bit 0 of the high word */
#define DESC_F_WRITE 2
#define QSIZE 8
#define REQ_LEN 32
#define MSIX_VECTOR 0x60                /* CPU vectors 0x60 (config), 0x61 (queue) */
#define BAR2_ADDR 0xd0000000u           /* below 4 GiB, where our page tables reach */

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

static struct desc ring_desc[QSIZE] __attribute__((aligned(16)));
static struct {
    uint16_t flags, idx, ring[QSIZE], used_event;
} ring_avail __attribute__((aligned(2)));
static volatile struct {
    uint16_t flags, idx;
    struct {
        uint32_t id, len;
    } ring[QSIZE];
    uint16_t avail_event;
} ring_used __attribute__((aligned(4)));
static uint8_t bufs[2][REQ_LEN] __attribute__((aligned(16)));

static uintptr_t ecam;
static volatile unsigned queue_irqs, config_irqs;

static uint32_t cfg_read(unsigned slot, unsigned reg)
{
    return mmio_read32(ecam + (slot << 15) + reg);
}

static void cfg_write(unsigned slot, unsigned reg, uint32_t v)
{
    mmio_write32(ecam + (slot << 15) + reg, v);
}

static void msix_handler(TrapFrame *tf, void *opaque)
{
    (void)opaque;
    if (tf->vector == MSIX_VECTOR)
        config_irqs++;
    else
        queue_irqs++;
    lapic_eoi();
}

static void wait_for(volatile unsigned *counter, unsigned want, const char *what)
{
    uint64_t deadline = cpu_rdtsc() + 3000000000ULL;

    cpu_sti();
    while (*counter < want) {
        if (cpu_rdtsc() > deadline)
            test_fail("%s: no interrupt within ~1 s", what);
        __asm__ volatile("pause");
    }
    cpu_cli();
}

static unsigned find_device(void)
{
    for (unsigned slot = 0; slot < 32; slot++) {
        if (cfg_read(slot, 0) == VIRTIO_RNG_ID)
            return slot;
    }
    test_fail("no virtio-rng (1af4:1044) on bus 0 (run with --device virtio-rng)");
}

/* One request of REQ_LEN bytes into bufs[n] through descriptor n; returns the length used. */
static uint32_t request(uintptr_t notify, unsigned n)
{
    uint16_t idx = ring_avail.idx;

    ring_desc[n] = (struct desc){ (uintptr_t)bufs[n], REQ_LEN, DESC_F_WRITE, 0 };
    ring_avail.ring[idx % QSIZE] = n;
    __asm__ volatile("" ::: "memory");  /* x86: stores stay in order; the compiler must too */
    ring_avail.idx = idx + 1;
    __asm__ volatile("" ::: "memory");
    mmio_write16(notify, 0);            /* the queue index, 16 bits: the doorbell */
    wait_for(&queue_irqs, n + 1, "used buffer");
    if (ring_used.idx != idx + 1 || ring_used.ring[idx % QSIZE].id != n)
        test_fail("used ring: idx %u, id %u (expected %u, %u)", ring_used.idx,
                  ring_used.ring[idx % QSIZE].id, idx + 1, n);
    return ring_used.ring[idx % QSIZE].len;
}

int main(void)
{
    const AcpiHeader *mcfg = acpi_find_table("MCFG");
    uintptr_t common = 0, notify = 0, isr = 0, table;
    uint32_t mult = 0, cap, msix_cap = 0, noff, len;
    unsigned slot, nonzero = 0, same = 0;

    if (!mcfg)
        test_fail("no MCFG table");
    lapic_enable();
    ecam = *(const uint64_t *)((const uint8_t *)mcfg + 44);
    slot = find_device();

    /* BAR2 (64-bit, above RAM) moved below 4 GiB; BAR0 holds the MSI-X table. */
    table = cfg_read(slot, 0x10) & ~0xfu;
    cfg_write(slot, 0x18, BAR2_ADDR | 0x4);
    cfg_write(slot, 0x1c, 0);
    cfg_write(slot, 0x04, 0x6);         /* memory decoding, bus mastering */

    /* The vendor capabilities, as Linux's virtio_pci_find_capability() walks them. */
    for (cap = cfg_read(slot, 0x34) & 0xff; cap; cap = (cfg_read(slot, cap) >> 8) & 0xff) {
        uint32_t head = cfg_read(slot, cap);
        uint32_t type = (head >> 24) & 0xff, bar = cfg_read(slot, cap + 4) & 0xff;
        uintptr_t addr = BAR2_ADDR + cfg_read(slot, cap + 8);

        if ((head & 0xff) == CAP_MSIX)
            msix_cap = cap;
        if ((head & 0xff) != CAP_VNDR || bar != 2)
            continue;
        if (type == CAP_COMMON && !common)
            common = addr;
        if (type == CAP_NOTIFY && !notify) {
            notify = addr;
            mult = cfg_read(slot, cap + 16);
        }
        if (type == CAP_ISR && !isr)
            isr = addr;
    }
    if (!common || !notify || !isr || !msix_cap)
        test_fail("capabilities: common %lx notify %lx isr %lx msix %x", (unsigned long)common,
                  (unsigned long)notify, (unsigned long)isr, msix_cap);

    /* Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK (3.1.1). */
    mmio_write8(common + STATUS, 0);
    if (mmio_read8(common + STATUS) != 0)
        test_fail("status not 0 after reset");
    mmio_write8(common + STATUS, S_ACK);
    mmio_write8(common + STATUS, S_ACK | S_DRIVER);
    mmio_write32(common + DFSELECT, 1);
    if (!(mmio_read32(common + DF) & VERSION_1_HI))
        test_fail("VIRTIO_F_VERSION_1 not offered");
    mmio_write32(common + GFSELECT, 0);
    mmio_write32(common + GF, 0);
    mmio_write32(common + GFSELECT, 1);
    mmio_write32(common + GF, VERSION_1_HI);
    mmio_write8(common + STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    if (!(mmio_read8(common + STATUS) & S_FEATURES_OK))
        test_fail("FEATURES_OK refused");
    if (mmio_read16(common + NUM_QUEUES) != 1)
        test_fail("%u queues, expected 1", mmio_read16(common + NUM_QUEUES));

    /* MSI-X: entry 0 for configuration changes, entry 1 for the queue. */
    for (unsigned v = 0; v < 2; v++) {
        cpu_set_handler(MSIX_VECTOR + v, msix_handler, NULL);
        mmio_write32(table + 16 * v, 0xfee00000u | (lapic_id() << 12));
        mmio_write32(table + 16 * v + 4, 0);
        mmio_write32(table + 16 * v + 8, MSIX_VECTOR + v);
        mmio_write32(table + 16 * v + 12, 0);
    }
    cfg_write(slot, msix_cap, 0x80000000u);
    mmio_write16(common + MSIX_CONFIG, 0);
    if (mmio_read16(common + MSIX_CONFIG) != 0)
        test_fail("configuration vector refused");

    /* Queue 0: QSIZE entries in our .bss. */
    mmio_write16(common + Q_SELECT, 0);
    if (mmio_read16(common + Q_SIZE) < QSIZE)
        test_fail("queue 0 offers %u entries", mmio_read16(common + Q_SIZE));
    mmio_write16(common + Q_SIZE, QSIZE);
    mmio_write16(common + Q_MSIX, 1);
    if (mmio_read16(common + Q_MSIX) != 1)
        test_fail("queue vector refused");
    mmio_write64(common + Q_DESC, (uintptr_t)ring_desc);
    mmio_write64(common + Q_AVAIL, (uintptr_t)&ring_avail);
    mmio_write64(common + Q_USED, (uintptr_t)&ring_used);
    mmio_write16(common + Q_ENABLE, 1);
    if (mmio_read16(common + Q_ENABLE) != 1)
        test_fail("queue 0 did not enable (status 0x%x)", mmio_read8(common + STATUS));
    noff = mmio_read16(common + Q_NOFF);
    notify += noff * mult;
    mmio_write8(common + STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    test_log("virtio-rng: slot %u, notify at 0x%lx (off %u x %u), MSI-X on", slot,
             (unsigned long)notify, noff, mult);

    /* Two requests: random, and not the same twice. */
    for (unsigned n = 0; n < 2; n++) {
        if ((len = request(notify, n)) != REQ_LEN)
            test_fail("request %u: %u bytes, expected %u", n, len, REQ_LEN);
    }
    for (unsigned i = 0; i < REQ_LEN; i++) {
        nonzero += bufs[0][i] != 0;
        same += bufs[0][i] == bufs[1][i];
    }
    if (nonzero < REQ_LEN / 2 || same > REQ_LEN / 2)
        test_fail("not random: %u of %u bytes nonzero, %u equal in both", nonzero, REQ_LEN, same);
    if (config_irqs || mmio_read8(common + STATUS) != 0xf)
        test_fail("status 0x%x, %u configuration interrupts", mmio_read8(common + STATUS),
                  config_irqs);
    test_log("virtio-rng: %u+%u random bytes, %02x%02x%02x%02x..., %u queue interrupts",
             REQ_LEN, REQ_LEN, bufs[0][0], bufs[0][1], bufs[0][2], bufs[0][3], queue_irqs);
    return 0;
}
