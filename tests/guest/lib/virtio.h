/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A minimal virtio 1.x modern PCI driver, as the guest test programs need
 * it: the device's vendor capabilities (common configuration, notify, ISR,
 * device configuration) in BAR2, moved below 4 GiB where the page tables
 * reach; feature negotiation; split virtqueues in memory the program
 * provides; 16-bit doorbell writes to each queue's notify address (KVM
 * ioeventfds in vireo-vmm); MSI-X interrupts counted per table entry.
 *
 * A program drives it in the order of virtio 1.2, 3.1.1:
 *
 *     int slot = pci_find_slot(VIRTIO_PCI_ID(VIRTIO_ID_RNG));
 *     virtio_pci_init(&dev, slot, VIRTIO_NEED_MSIX);
 *     virtio_negotiate(&dev, 0);                 (VERSION_1 is implied)
 *     virtio_msix_setup(&dev, 0x60, 2);          (optional)
 *     virtio_queue_setup(&dev, &q, 0, 8, ring_mem, 1);
 *     virtio_driver_ok(&dev);
 *
 * Setup functions fail the test (test_fail()) on anything unexpected, so
 * they run at CPL0. The ring functions marked "CPL3 too" only touch the
 * rings and the notify address (all pages are user-accessible), so loops
 * that must run fast can call them from user_run() code.
 */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_VENDOR           0x1af4u
/* PCI ID register of a modern (non-transitional) device of type @t. */
#define VIRTIO_PCI_ID(t)        ((0x1040u + (t)) << 16 | VIRTIO_VENDOR)
#define VIRTIO_ID_NET           1
#define VIRTIO_ID_BLK           2
#define VIRTIO_ID_CONSOLE       3
#define VIRTIO_ID_RNG           4

/* Device status (virtio 1.2, 2.1). */
#define VIRTIO_STATUS_ACK       0x01
#define VIRTIO_STATUS_DRIVER    0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
/* What a device that is up and well reads back after virtio_driver_ok(). */
#define VIRTIO_STATUS_LIVE      0x0f

#define VIRTIO_F_VERSION_1      (1ULL << 32)

#define VIRTIO_DESC_F_NEXT      1
#define VIRTIO_DESC_F_WRITE     2       /* device-writable */
#define VIRTIO_AVAIL_F_NO_INTERRUPT 1
#define VIRTIO_USED_F_NO_NOTIFY 1
#define VIRTIO_NO_VECTOR        0xffff

/* Where virtio_pci_init() moves BAR2 (64-bit, placed above RAM by the VMM). */
#define VIRTIO_BAR2_ADDR        0xd0000000u

/* Capabilities virtio_pci_init() insists on besides common and notify. */
#define VIRTIO_NEED_ISR         (1u << 0)
#define VIRTIO_NEED_DEVICE      (1u << 1)
#define VIRTIO_NEED_MSIX        (1u << 2)

#define VIRTIO_MSIX_MAX         4       /* table entries virtio_msix_setup() handles */

typedef struct {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} VirtioDesc;

typedef struct {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];                    /* then used_event, unused here */
} VirtioAvail;

typedef struct {
    uint32_t id;
    uint32_t len;
} VirtioUsedElem;

typedef struct {
    uint16_t flags;
    uint16_t idx;
    VirtioUsedElem ring[];              /* then avail_event, unused here */
} VirtioUsed;

/*
 * Bytes of ring memory for a queue of @n entries: descriptors, available
 * ring, used ring, back to back at their spec alignments (16, 2, 4).
 * Give it VIRTIO_QUEUE_ALIGN alignment.
 */
#define VIRTIO_QUEUE_AVAIL_OFF(n) (16u * (n))
#define VIRTIO_QUEUE_USED_OFF(n)  ((VIRTIO_QUEUE_AVAIL_OFF(n) + 6u + 2u * (n) + 3u) & ~3u)
#define VIRTIO_QUEUE_MEM(n)       (VIRTIO_QUEUE_USED_OFF(n) + 6u + 8u * (n))
#define VIRTIO_QUEUE_ALIGN        16

typedef struct {
    unsigned slot;
    uintptr_t common;                   /* struct virtio_pci_common_cfg */
    uintptr_t notify;                   /* notify structure; + off * notify_mult */
    uint32_t notify_mult;
    uintptr_t isr;                      /* 0 if absent */
    uintptr_t device;                   /* device configuration, 0 if absent */
    unsigned msix_cap;                  /* 0 if absent */
    uintptr_t msix_table;
    uint8_t msix_vector;                /* CPU vector of MSI-X entry 0 */
    /* Interrupts per MSI-X entry; entry 0 carries configuration changes. */
    volatile unsigned irqs[VIRTIO_MSIX_MAX];
} VirtioDev;

typedef struct {
    VirtioDev *dev;
    uint16_t index;
    uint16_t size;                      /* entries, a power of two */
    uint16_t msix;                      /* MSI-X entry, or VIRTIO_NO_VECTOR */
    uint16_t notify_off;                /* queue_notify_off */
    uint16_t last_used;                 /* next used entry to consume */
    VirtioDesc *desc;
    VirtioAvail *avail;
    volatile VirtioUsed *used;
    uintptr_t notify;                   /* this queue's doorbell */
} VirtioQueue;

/*
 * The device in @slot (from pci_find_slot(), test fails if negative):
 * BAR2 moved to VIRTIO_BAR2_ADDR, memory decoding and bus mastering on,
 * vendor capabilities walked as Linux's virtio_pci_find_capability() does
 * (first of each type in BAR2). Fails the test unless common, notify and
 * everything in @need (VIRTIO_NEED_*) were found.
 */
void virtio_pci_init(VirtioDev *d, int slot, unsigned need);

/*
 * Reset (checked: status reads 0), ACKNOWLEDGE, DRIVER, then @features
 * plus VIRTIO_F_VERSION_1: fails unless the device offers all of them and
 * keeps FEATURES_OK set.
 */
void virtio_negotiate(VirtioDev *d, uint64_t features);

/*
 * MSI-X entries 0 .. @entries-1 to this CPU, CPU vectors @vector onwards,
 * each counted in d->irqs[]; MSI-X enabled; entry 0 as the configuration
 * vector (checked). Needs VIRTIO_NEED_MSIX.
 */
void virtio_msix_setup(VirtioDev *d, uint8_t vector, unsigned entries);

/*
 * Queue @index with @size entries in @mem (VIRTIO_QUEUE_MEM(size) bytes,
 * VIRTIO_QUEUE_ALIGN-aligned), interrupts through MSI-X entry @msix or
 * none (VIRTIO_NO_VECTOR). Zeroes the ring indices, so it also sets a
 * queue up again after a reset. Fails if the device offers fewer entries,
 * refuses the vector or does not enable the queue.
 */
void virtio_queue_setup(VirtioDev *d, VirtioQueue *q, unsigned index, uint16_t size,
                        void *mem, uint16_t msix);

void virtio_driver_ok(VirtioDev *d);
uint8_t virtio_status(const VirtioDev *d);
uint16_t virtio_num_queues(const VirtioDev *d);

/* Makes descriptor chain @head available (no doorbell). CPL3 too. */
void virtio_queue_publish(VirtioQueue *q, uint16_t head);

/* The doorbell: the queue index, 16 bits, to its notify address. CPL3 too. */
void virtio_queue_notify(const VirtioQueue *q);

/*
 * The doorbell unless the device set VIRTIO_USED_F_NO_NOTIFY; fences
 * first so the device's flag is read after our index is visible. CPL3 too.
 */
void virtio_queue_kick(const VirtioQueue *q);

/* The next used element, if the device returned one. CPL3 too. */
bool virtio_queue_next_used(VirtioQueue *q, uint32_t *id, uint32_t *len);

/*
 * The next used element, polled with interrupts on; fails the test naming
 * @what after PCI_WAIT_CYCLES.
 */
void virtio_queue_wait_used(VirtioQueue *q, uint32_t *id, uint32_t *len, const char *what);

/*
 * One request: publishes chain @head, rings the doorbell, waits for the
 * queue's MSI-X interrupt (the queue needs an entry), and fails unless
 * the used ring then holds exactly @head. Returns the used length.
 */
uint32_t virtio_queue_submit(VirtioQueue *q, uint16_t head, const char *what);

#endif
