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
 * The driver itself is lib/virtio.c.
 *
 * The patterns (byte at disk offset o): the host's (o * 13 + 7) & 0xff,
 * ours (o * 31 + 5) & 0xff over sectors 8..15.
 */
#include "lib/guest.h"

const char test_name[] = "virtio-blk";

#define F_FLUSH (1u << 9)
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

static uint8_t ring[VIRTIO_QUEUE_MEM(QSIZE)] __attribute__((aligned(VIRTIO_QUEUE_ALIGN)));
static struct {
    uint32_t type, reserved;
    uint64_t sector;
} hdr __attribute__((aligned(16)));
static uint8_t data[LEN] __attribute__((aligned(4096)));
static volatile uint8_t status;
static VirtioDev dev;
static VirtioQueue q;

/*
 * One request: header, @len bytes of data (device-writable unless
 * @out), status; always in descriptors 0, 1, 2. Returns the status.
 */
static uint8_t request(uint32_t type, uint64_t sector, uint32_t len, int out)
{
    unsigned n = 0;

    hdr.type = type;
    hdr.reserved = 0;
    hdr.sector = sector;
    status = 0xee;
    q.desc[n] = (VirtioDesc){ (uintptr_t)&hdr, sizeof(hdr), VIRTIO_DESC_F_NEXT, n + 1 };
    n++;
    if (len) {
        q.desc[n] = (VirtioDesc){ (uintptr_t)data, len,
                                  VIRTIO_DESC_F_NEXT | (out ? 0 : VIRTIO_DESC_F_WRITE), n + 1 };
        n++;
    }
    q.desc[n] = (VirtioDesc){ (uintptr_t)&status, 1, VIRTIO_DESC_F_WRITE, 0 };
    virtio_queue_submit(&q, 0, "used buffer");
    return status;
}

int main(void)
{
    int slot = pci_find_slot(VIRTIO_PCI_ID(VIRTIO_ID_BLK));
    uint64_t capacity;
    uint8_t st;

    if (slot < 0)
        test_fail("no virtio-blk (1af4:1042) on bus 0 (run with --disk path=FILE)");
    lapic_enable();
    virtio_pci_init(&dev, slot, VIRTIO_NEED_ISR | VIRTIO_NEED_DEVICE | VIRTIO_NEED_MSIX);
    virtio_negotiate(&dev, F_FLUSH);
    capacity = mmio_read32(dev.device) | (uint64_t)mmio_read32(dev.device + 4) << 32;
    /* MSI-X: entry 0 for configuration changes, entry 1 for the queue. */
    virtio_msix_setup(&dev, MSIX_VECTOR, 2);
    virtio_queue_setup(&dev, &q, 0, QSIZE, ring, 1);
    virtio_driver_ok(&dev);
    test_log("virtio-blk: slot %u, %lu sectors", dev.slot, (unsigned long)capacity);
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
    if (dev.irqs[0] || virtio_status(&dev) != VIRTIO_STATUS_LIVE)
        test_fail("status 0x%x, %u configuration interrupts", virtio_status(&dev), dev.irqs[0]);
    test_log("virtio-blk: serial, read, write, flush, read back, IOERR past the end; "
             "%u queue interrupts", dev.irqs[1]);
    return 0;
}
