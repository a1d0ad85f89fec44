/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-blk as a minimal virtio 1.x driver uses it, against vireo-vmm run
 * with --disk path=FILE,serial=vireo-guest-disk (tests/integration/
 * blk_test.py makes FILE and checks it afterwards): the device found by
 * ECAM enumeration, its capabilities walked, VERSION_1 and FLUSH
 * negotiated, one queue with MSI-X, then GET_ID, a read of what the host
 * wrote, a write of our own pattern, FLUSH, a read back of it, and a read
 * beyond the end that must fail with IOERR. Each request is a doorbell
 * through ioeventfd; its completion an MSI-X interrupt through irqfd.
 *
 * The patterns (byte at disk offset o): the host's (o * 13 + 7) & 0xff,
 * ours (o * 31 + 5) & 0xff over sectors 8..15.
 */
#include "lib/guest.h"

const char test_name[] = "virtio-blk";

#define VIRTIO_BLK_ID 0x10421af4u       /* device << 16 | vendor */
#define CAP_VNDR 0x09
#define CAP_MSIX 0x11
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4
/* struct virtio_pci_common_cfg */
#define DFSELECT 0
#define DF 4
#define GFSELECT 8
#define GF 12
#define MSIX_CONFIG 16
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
#define F_FLUSH (1u << 9)
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define QSIZE 8
/* virtio-blk requests */
#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define S_OK 0
#define S_IOERR 1
#define SERIAL "vireo-guest-disk"
#define WRITE_SECTOR 8
#define READ_SECTOR 100
#define LEN 4096
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
static struct {
    uint32_t type, reserved;
    uint64_t sector;
} hdr __attribute__((aligned(16)));
static uint8_t data[LEN] __attribute__((aligned(4096)));
static volatile uint8_t status;

static uintptr_t ecam, notify;
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
        if (cfg_read(slot, 0) == VIRTIO_BLK_ID)
            return slot;
    }
    test_fail("no virtio-blk (1af4:1042) on bus 0 (run with --disk path=FILE)");
}

/*
 * One request: header, @len bytes of data (device-writable unless
 * @out), status; always in descriptors 0, 1, 2. Returns the status.
 */
static uint8_t request(uint32_t type, uint64_t sector, uint32_t len, int out)
{
    uint16_t idx = ring_avail.idx;
    unsigned n = 0;

    hdr.type = type;
    hdr.reserved = 0;
    hdr.sector = sector;
    status = 0xee;
    ring_desc[n] = (struct desc){ (uintptr_t)&hdr, sizeof(hdr), DESC_F_NEXT, n + 1 };
    n++;
    if (len) {
        ring_desc[n] = (struct desc){ (uintptr_t)data, len,
                                      DESC_F_NEXT | (out ? 0 : DESC_F_WRITE), n + 1 };
        n++;
    }
    ring_desc[n] = (struct desc){ (uintptr_t)&status, 1, DESC_F_WRITE, 0 };
    ring_avail.ring[idx % QSIZE] = 0;
    __asm__ volatile("" ::: "memory");  /* x86: stores stay in order; the compiler must too */
    ring_avail.idx = idx + 1;
    __asm__ volatile("" ::: "memory");
    mmio_write16(notify, 0);            /* the queue index, 16 bits: the doorbell */
    wait_for(&queue_irqs, queue_irqs + 1, "used buffer");
    if (ring_used.idx != (uint16_t)(idx + 1) || ring_used.ring[idx % QSIZE].id != 0)
        test_fail("used ring: idx %u, id %u (expected %u, 0)", ring_used.idx,
                  ring_used.ring[idx % QSIZE].id, idx + 1);
    return status;
}

int main(void)
{
    const AcpiHeader *mcfg = acpi_find_table("MCFG");
    uintptr_t common = 0, isr = 0, device = 0, table;
    uint32_t mult = 0, cap, msix_cap = 0, noff;
    uint64_t capacity;
    unsigned slot;
    uint8_t st;

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
        if (type == CAP_DEVICE && !device)
            device = addr;
    }
    if (!common || !notify || !isr || !device || !msix_cap)
        test_fail("capabilities: common %lx notify %lx isr %lx device %lx msix %x",
                  (unsigned long)common, (unsigned long)notify, (unsigned long)isr,
                  (unsigned long)device, msix_cap);

    /* Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK (3.1.1). */
    mmio_write8(common + STATUS, 0);
    if (mmio_read8(common + STATUS) != 0)
        test_fail("status not 0 after reset");
    mmio_write8(common + STATUS, S_ACK);
    mmio_write8(common + STATUS, S_ACK | S_DRIVER);
    mmio_write32(common + DFSELECT, 0);
    if (!(mmio_read32(common + DF) & F_FLUSH))
        test_fail("VIRTIO_BLK_F_FLUSH not offered");
    mmio_write32(common + GFSELECT, 0);
    mmio_write32(common + GF, F_FLUSH);
    mmio_write32(common + GFSELECT, 1);
    mmio_write32(common + GF, VERSION_1_HI);
    mmio_write8(common + STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    if (!(mmio_read8(common + STATUS) & S_FEATURES_OK))
        test_fail("FEATURES_OK refused");
    capacity = mmio_read32(device) | (uint64_t)mmio_read32(device + 4) << 32;

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

    /* Queue 0: QSIZE entries in our .bss. */
    mmio_write16(common + Q_SELECT, 0);
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
    test_log("virtio-blk: slot %u, %lu sectors", slot, (unsigned long)capacity);
    if (capacity <= READ_SECTOR + LEN / 512)
        test_fail("disk of %lu sectors: too small", (unsigned long)capacity);

    /* GET_ID: the serial from the command line. */
    for (unsigned i = 0; i < 20; i++)
        data[i] = 0xaa;
    if ((st = request(T_GET_ID, 0, 20, 0)) != S_OK)
        test_fail("GET_ID: status %u", st);
    for (unsigned i = 0; i < sizeof(SERIAL); i++)
        if (data[i] != (uint8_t)SERIAL[i])
            test_fail("GET_ID: byte %u is 0x%x", i, data[i]);

    /* What the host wrote. */
    if ((st = request(T_IN, READ_SECTOR, LEN, 0)) != S_OK)
        test_fail("read: status %u", st);
    for (unsigned i = 0; i < LEN; i++) {
        uint64_t o = READ_SECTOR * 512ULL + i;

        if (data[i] != (uint8_t)(o * 13 + 7))
            test_fail("read: byte %u is 0x%x, the host wrote 0x%x", i, data[i],
                      (uint8_t)(o * 13 + 7));
    }

    /* Ours, made durable, read back. */
    for (unsigned i = 0; i < LEN; i++)
        data[i] = (uint8_t)((WRITE_SECTOR * 512ULL + i) * 31 + 5);
    if ((st = request(T_OUT, WRITE_SECTOR, LEN, 1)) != S_OK)
        test_fail("write: status %u", st);
    if ((st = request(T_FLUSH, 0, 0, 0)) != S_OK)
        test_fail("flush: status %u", st);
    for (unsigned i = 0; i < LEN; i++)
        data[i] = 0;
    if ((st = request(T_IN, WRITE_SECTOR, LEN, 0)) != S_OK)
        test_fail("read back: status %u", st);
    for (unsigned i = 0; i < LEN; i++)
        if (data[i] != (uint8_t)((WRITE_SECTOR * 512ULL + i) * 31 + 5))
            test_fail("read back: byte %u is 0x%x", i, data[i]);

    /* Past the end: an error, not a crash. */
    if ((st = request(T_IN, capacity, 512, 0)) != S_IOERR)
        test_fail("read past the end: status %u, expected IOERR", st);
    if (config_irqs || mmio_read8(common + STATUS) != 0xf)
        test_fail("status 0x%x, %u configuration interrupts", mmio_read8(common + STATUS),
                  config_irqs);
    test_log("virtio-blk: serial, read, write, flush, read back, IOERR past the end; "
             "%u queue interrupts", queue_irqs);
    return 0;
}
