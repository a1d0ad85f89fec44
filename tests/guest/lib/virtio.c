/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "virtio.h"

#include "cpu.h"
#include "lapic.h"
#include "mmio.h"
#include "pci.h"
#include "test.h"
#include "util.h"

/* Vendor capability cfg_type (virtio 1.2, 4.1.4). */
#define CAP_COMMON              1
#define CAP_NOTIFY              2
#define CAP_ISR                 3
#define CAP_DEVICE              4

/* struct virtio_pci_common_cfg */
#define COMMON_DFSELECT         0
#define COMMON_DF               4
#define COMMON_GFSELECT         8
#define COMMON_GF               12
#define COMMON_MSIX_CONFIG      16
#define COMMON_NUM_QUEUES       18
#define COMMON_STATUS           20
#define COMMON_Q_SELECT         22
#define COMMON_Q_SIZE           24
#define COMMON_Q_MSIX           26
#define COMMON_Q_ENABLE         28
#define COMMON_Q_NOFF           30
#define COMMON_Q_DESC           32
#define COMMON_Q_AVAIL          40
#define COMMON_Q_USED           48

#define VIRTIO_BAR              2

/* x86 keeps stores (and loads) in order; the compiler must too. */
static inline void virtio_barrier(void)
{
    __asm__ volatile("" ::: "memory");
}

void virtio_pci_init(VirtioDev *d, int slot, unsigned need)
{
    memset(d, 0, sizeof(*d));
    if (slot < 0) {
        test_fail("no virtio device on bus 0");
    }
    d->slot = slot;
    pci_bar64_move(slot, VIRTIO_BAR, VIRTIO_BAR2_ADDR);
    pci_cfg_write(slot, PCI_REG_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

    for (unsigned cap = pci_cap_next(slot, 0); cap; cap = pci_cap_next(slot, cap)) {
        uint32_t head = pci_cfg_read(slot, cap);
        uint32_t type = (head >> 24) & 0xff;
        uint32_t bar = pci_cfg_read(slot, cap + 4) & 0xff;
        uintptr_t addr = VIRTIO_BAR2_ADDR + pci_cfg_read(slot, cap + 8);

        if ((head & 0xff) == PCI_CAP_MSIX && !d->msix_cap) {
            d->msix_cap = cap;
        }
        if ((head & 0xff) != PCI_CAP_VNDR || bar != VIRTIO_BAR) {
            continue;
        }
        if (type == CAP_COMMON && !d->common) {
            d->common = addr;
        } else if (type == CAP_NOTIFY && !d->notify) {
            d->notify = addr;
            d->notify_mult = pci_cfg_read(slot, cap + 16);
        } else if (type == CAP_ISR && !d->isr) {
            d->isr = addr;
        } else if (type == CAP_DEVICE && !d->device) {
            d->device = addr;
        }
    }
    if (!d->common || !d->notify || (!d->isr && (need & VIRTIO_NEED_ISR)) ||
        (!d->device && (need & VIRTIO_NEED_DEVICE)) ||
        (!d->msix_cap && (need & VIRTIO_NEED_MSIX))) {
        test_fail("capabilities: common %lx notify %lx isr %lx device %lx msix %x",
                  (unsigned long)d->common, (unsigned long)d->notify,
                  (unsigned long)d->isr, (unsigned long)d->device, d->msix_cap);
    }
}

void virtio_negotiate(VirtioDev *d, uint64_t features)
{
    uintptr_t c = d->common;
    uint64_t offered;

    features |= VIRTIO_F_VERSION_1;
    mmio_write8(c + COMMON_STATUS, 0);
    if (mmio_read8(c + COMMON_STATUS) != 0) {
        test_fail("status not 0 after reset");
    }
    mmio_write8(c + COMMON_STATUS, VIRTIO_STATUS_ACK);
    mmio_write8(c + COMMON_STATUS, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
    mmio_write32(c + COMMON_DFSELECT, 0);
    offered = mmio_read32(c + COMMON_DF);
    mmio_write32(c + COMMON_DFSELECT, 1);
    offered |= (uint64_t)mmio_read32(c + COMMON_DF) << 32;
    if ((offered & features) != features) {
        test_fail("features 0x%lx not offered (device offers 0x%lx)",
                  (unsigned long)(features & ~offered), (unsigned long)offered);
    }
    mmio_write32(c + COMMON_GFSELECT, 0);
    mmio_write32(c + COMMON_GF, (uint32_t)features);
    mmio_write32(c + COMMON_GFSELECT, 1);
    mmio_write32(c + COMMON_GF, features >> 32);
    mmio_write8(c + COMMON_STATUS,
                VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if (!(mmio_read8(c + COMMON_STATUS) & VIRTIO_STATUS_FEATURES_OK)) {
        test_fail("FEATURES_OK refused");
    }
}

static void virtio_msix_handler(TrapFrame *tf, void *opaque)
{
    VirtioDev *d = opaque;

    d->irqs[tf->vector - d->msix_vector]++;
    lapic_eoi();
}

void virtio_msix_setup(VirtioDev *d, uint8_t vector, unsigned entries)
{
    uint32_t table;
    uint64_t base;

    if (!d->msix_cap || !entries || entries > VIRTIO_MSIX_MAX) {
        test_fail("virtio_msix_setup: %u entries, MSI-X capability at 0x%x",
                  entries, d->msix_cap);
    }
    /* Table offset and BIR, wherever the device put them. */
    table = pci_cfg_read(d->slot, d->msix_cap + 4);
    base = pci_bar_addr(d->slot, table & 7) + (table & ~7u);
    if (base >= 0x100000000ULL) {
        test_fail("MSI-X table at 0x%lx, above 4 GiB", (unsigned long)base);
    }
    d->msix_table = base;
    d->msix_vector = vector;
    for (unsigned e = 0; e < entries; e++) {
        cpu_set_handler(vector + e, virtio_msix_handler, d);
        pci_msix_set_entry(d->msix_table, e, vector + e, false);
    }
    pci_cfg_write(d->slot, d->msix_cap, PCI_MSIX_ENABLE);
    mmio_write16(d->common + COMMON_MSIX_CONFIG, 0);
    if (mmio_read16(d->common + COMMON_MSIX_CONFIG) != 0) {
        test_fail("configuration vector refused");
    }
}

void virtio_queue_setup(VirtioDev *d, VirtioQueue *q, unsigned index, uint16_t size,
                        void *mem, uint16_t msix)
{
    uintptr_t c = d->common, m = (uintptr_t)mem;
    uint16_t offered;

    if (!size || (size & (size - 1))) {
        test_fail("queue %u: %u entries, not a power of two", index, size);   /* ring masks */
    }
    q->dev = d;
    q->index = index;
    q->size = size;
    q->msix = msix;
    q->last_used = 0;
    q->desc = (VirtioDesc *)m;
    q->avail = (VirtioAvail *)(m + VIRTIO_QUEUE_AVAIL_OFF(size));
    q->used = (volatile VirtioUsed *)(m + VIRTIO_QUEUE_USED_OFF(size));
    /* Only the indices and flags: the rest is written before it is read. */
    q->avail->flags = 0;
    q->avail->idx = 0;
    q->used->flags = 0;
    q->used->idx = 0;

    mmio_write16(c + COMMON_Q_SELECT, index);
    offered = mmio_read16(c + COMMON_Q_SIZE);
    if (offered < size) {
        test_fail("queue %u offers %u entries", index, offered);
    }
    mmio_write16(c + COMMON_Q_SIZE, size);
    mmio_write16(c + COMMON_Q_MSIX, msix);
    if (mmio_read16(c + COMMON_Q_MSIX) != msix) {
        test_fail("queue %u: vector %u refused", index, msix);
    }
    mmio_write64(c + COMMON_Q_DESC, (uintptr_t)q->desc);
    mmio_write64(c + COMMON_Q_AVAIL, (uintptr_t)q->avail);
    mmio_write64(c + COMMON_Q_USED, (uintptr_t)q->used);
    mmio_write16(c + COMMON_Q_ENABLE, 1);
    if (mmio_read16(c + COMMON_Q_ENABLE) != 1) {
        test_fail("queue %u did not enable (status 0x%x)", index,
                  mmio_read8(c + COMMON_STATUS));
    }
    q->notify_off = mmio_read16(c + COMMON_Q_NOFF);
    q->notify = d->notify + (uintptr_t)q->notify_off * d->notify_mult;
}

void virtio_driver_ok(VirtioDev *d)
{
    mmio_write8(d->common + COMMON_STATUS, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER |
                                           VIRTIO_STATUS_FEATURES_OK |
                                           VIRTIO_STATUS_DRIVER_OK);
}

uint8_t virtio_status(const VirtioDev *d)
{
    return mmio_read8(d->common + COMMON_STATUS);
}

uint16_t virtio_num_queues(const VirtioDev *d)
{
    return mmio_read16(d->common + COMMON_NUM_QUEUES);
}

void virtio_queue_publish(VirtioQueue *q, uint16_t head)
{
    uint16_t idx = q->avail->idx;

    q->avail->ring[idx & (q->size - 1)] = head;
    virtio_barrier();                   /* the entry before the index */
    q->avail->idx = idx + 1;
    virtio_barrier();
}

void virtio_queue_notify(const VirtioQueue *q)
{
    mmio_write16(q->notify, q->index);
}

void virtio_queue_kick(const VirtioQueue *q)
{
    __asm__ volatile("mfence" ::: "memory");
    if (!(q->used->flags & VIRTIO_USED_F_NO_NOTIFY)) {
        virtio_queue_notify(q);
    }
}

bool virtio_queue_next_used(VirtioQueue *q, uint32_t *id, uint32_t *len)
{
    uint16_t i = q->last_used;

    if (q->used->idx == i) {
        return false;
    }
    virtio_barrier();                   /* the index before the entry */
    *id = q->used->ring[i & (q->size - 1)].id;
    *len = q->used->ring[i & (q->size - 1)].len;
    q->last_used = i + 1;
    return true;
}

void virtio_queue_wait_used(VirtioQueue *q, uint32_t *id, uint32_t *len, const char *what)
{
    uint64_t deadline = cpu_rdtsc() + PCI_WAIT_CYCLES;

    while (!virtio_queue_next_used(q, id, len)) {
        if (cpu_rdtsc() > deadline) {
            test_fail("%s: no used buffer within ~1 s (%u queue interrupts)", what,
                      q->msix < VIRTIO_MSIX_MAX ? q->dev->irqs[q->msix] : 0);
        }
        cpu_sti();                      /* let the queue's interrupt be counted */
        util_pause();
        cpu_cli();
    }
}

uint32_t virtio_queue_submit(VirtioQueue *q, uint16_t head, const char *what)
{
    uint16_t i = q->last_used;
    unsigned want;
    uint32_t id, len;

    if (q->msix >= VIRTIO_MSIX_MAX) {
        test_fail("%s: queue %u has no MSI-X entry to wait for", what, q->index);
    }
    want = q->dev->irqs[q->msix] + 1;
    virtio_queue_publish(q, head);
    virtio_queue_notify(q);
    pci_wait_count(&q->dev->irqs[q->msix], want, what);
    if (q->used->idx != (uint16_t)(i + 1) || !virtio_queue_next_used(q, &id, &len) ||
        id != head) {
        test_fail("%s: used ring idx %u, id %u (expected %u, %u)", what, q->used->idx,
                  q->used->ring[i & (q->size - 1)].id, (uint16_t)(i + 1), head);
    }
    return len;
}
