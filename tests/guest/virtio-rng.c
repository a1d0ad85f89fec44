/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-rng as a minimal virtio 1.x driver uses it, against vireo-vmm
 * (run with --device virtio-rng): the device found by ECAM enumeration,
 * its vendor capabilities walked for the common configuration, notify and
 * ISR structures, features negotiated (VERSION_1 only), one queue set up
 * in this program's memory, and random bytes requested twice. Each
 * request is a 16-bit write to the queue's notify address, which KVM
 * turns into an ioeventfd doorbell, and is answered by an MSI-X interrupt
 * delivered through an irqfd. The driver itself is lib/virtio.c.
 */
#include "lib/guest.h"

const char test_name[] = "virtio-rng";

#define QSIZE 8
#define REQ_LEN 32
#define MSIX_VECTOR 0x60                /* CPU vectors 0x60 (config), 0x61 (queue) */

static uint8_t ring[VIRTIO_QUEUE_MEM(QSIZE)] __attribute__((aligned(VIRTIO_QUEUE_ALIGN)));
static uint8_t bufs[2][REQ_LEN] __attribute__((aligned(16)));
static VirtioDev dev;
static VirtioQueue q;

int main(void)
{
    int slot = pci_find_slot(VIRTIO_PCI_ID(VIRTIO_ID_RNG));
    unsigned nonzero = 0, same = 0;
    uint32_t len;

    if (slot < 0)
        test_fail("no virtio-rng (1af4:1044) on bus 0 (run with --device virtio-rng)");
    lapic_enable();
    virtio_pci_init(&dev, slot, VIRTIO_NEED_ISR | VIRTIO_NEED_MSIX);
    virtio_negotiate(&dev, 0);
    if (virtio_num_queues(&dev) != 1)
        test_fail("%u queues, expected 1", virtio_num_queues(&dev));
    /* MSI-X: entry 0 for configuration changes, entry 1 for the queue. */
    virtio_msix_setup(&dev, MSIX_VECTOR, 2);
    virtio_queue_setup(&dev, &q, 0, QSIZE, ring, 1);
    virtio_driver_ok(&dev);
    test_log("virtio-rng: slot %u, notify at 0x%lx (off %u x %u), MSI-X on", dev.slot,
             (unsigned long)q.notify, q.notify_off, dev.notify_mult);

    /* Two requests, through descriptors 0 and 1: random, and not the same twice. */
    for (unsigned n = 0; n < 2; n++) {
        q.desc[n] = (VirtioDesc){ (uintptr_t)bufs[n], REQ_LEN, VIRTIO_DESC_F_WRITE, 0 };
        if ((len = virtio_queue_submit(&q, n, "used buffer")) != REQ_LEN)
            test_fail("request %u: %u bytes, expected %u", n, len, REQ_LEN);
    }
    for (unsigned i = 0; i < REQ_LEN; i++) {
        nonzero += bufs[0][i] != 0;
        same += bufs[0][i] == bufs[1][i];
    }
    if (nonzero < REQ_LEN / 2 || same > REQ_LEN / 2)
        test_fail("not random: %u of %u bytes nonzero, %u equal in both", nonzero, REQ_LEN, same);
    if (dev.irqs[0] || virtio_status(&dev) != VIRTIO_STATUS_LIVE)
        test_fail("status 0x%x, %u configuration interrupts", virtio_status(&dev), dev.irqs[0]);
    test_log("virtio-rng: %u+%u random bytes, %02x%02x%02x%02x..., %u queue interrupts",
             REQ_LEN, REQ_LEN, bufs[0][0], bufs[0][1], bufs[0][2], bufs[0][3], dev.irqs[1]);
    return 0;
}
