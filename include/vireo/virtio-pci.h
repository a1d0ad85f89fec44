/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Virtio over PCI (virtio 1.2, 4.1), modern interface only
 * (devices/virtio/pci.c). The transport is the Device the machine sees: it
 * implements DeviceOps and PciDeviceOps for every virtio device type, and
 * drives the type's VirtioDevice only through VirtioDeviceOps (virtio.h).
 *
 * Identity: vendor 0x1af4, device 0x1040 + virtio device ID, revision 1,
 * subsystem 0x1af4:(0x1040 + ID), INTA#.
 *
 * Layout (drivers find it through the vendor capabilities, in this order:
 * common, notify, ISR, device (only if the type has a configuration
 * space), PCI configuration access; then MSI-X):
 *
 *   BAR0, 32-bit memory, 4 KiB (more past 128 vectors): MSI-X table at 0,
 *        PBA at 0x800. One vector per queue plus one for configuration
 *        changes, as Linux asks for first.
 *   BAR2, 64-bit memory, 16 KiB, not prefetchable (reading the ISR clears
 *        it, a side effect prefetching must not trigger):
 *        0x0000 common configuration (60 bytes: the 1.2 layout up to
 *               queue_reset, which reads 0 as RING_RESET is not offered)
 *        0x1000 ISR status (1 byte, read to clear)
 *        0x2000 device-specific configuration (the type's size)
 *        0x3000 notifications: queue N at 0x3000 + 4 * N (queue_notify_off
 *               = N, notify_off_multiplier = 4), each its own ioeventfd
 *               (16-bit writes, any value) while BAR2 decodes.
 *
 * A multiplier of 4 gives every queue its own doorbell address, so KVM
 * tells queues apart by address rather than by comparing the value
 * written, and all doorbells of up to 1024 queues fit the one page Linux
 * maps for them.
 *
 * Register accesses must have the field's natural width (64-bit fields
 * also as two 32-bit halves, or one 64-bit access); anything else reads 0
 * and is not written, with a rate-limited guest warning. Doorbells written
 * through the register path (no ioeventfd) are handled on the event loop
 * like those from an ioeventfd.
 *
 * The PCI configuration access capability executes writes to pci_cfg_data
 * as the spec says. The PCI model has no configuration read hook, so a
 * read is executed when the driver sets the window (cap.bar, cap.offset,
 * cap.length), side-effect free (the ISR is not cleared), and
 * pci_cfg_data holds that value until the window is set again.
 */
#ifndef VIREO_VIRTIO_PCI_H
#define VIREO_VIRTIO_PCI_H

#include <glib.h>
#include <stdint.h>

#include "vireo/device.h"
#include "vireo/pci.h"
#include "vireo/virtio.h"

#define VIRTIO_PCI_VENDOR_ID        0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE   0x1040
#define VIRTIO_PCI_REVISION         1

/* Vendor capability types (4.1.4) */
#define VIRTIO_PCI_CAP_COMMON_CFG   1
#define VIRTIO_PCI_CAP_NOTIFY_CFG   2
#define VIRTIO_PCI_CAP_ISR_CFG      3
#define VIRTIO_PCI_CAP_DEVICE_CFG   4
#define VIRTIO_PCI_CAP_PCI_CFG      5
/* Offsets inside struct virtio_pci_cap and its extensions */
#define VIRTIO_PCI_CAP_LEN          2
#define VIRTIO_PCI_CAP_CFG_TYPE     3
#define VIRTIO_PCI_CAP_BAR          4
#define VIRTIO_PCI_CAP_ID           5
#define VIRTIO_PCI_CAP_OFFSET       8
#define VIRTIO_PCI_CAP_LENGTH       12
#define VIRTIO_PCI_CAP_SIZE         16
#define VIRTIO_PCI_NOTIFY_CAP_MULT  16      /* struct virtio_pci_notify_cap */
#define VIRTIO_PCI_NOTIFY_CAP_SIZE  20
#define VIRTIO_PCI_CFG_CAP_DATA     16      /* struct virtio_pci_cfg_cap */
#define VIRTIO_PCI_CFG_CAP_SIZE     20

/* struct virtio_pci_common_cfg (4.1.4.3) */
#define VIRTIO_PCI_COMMON_DFSELECT      0
#define VIRTIO_PCI_COMMON_DF            4
#define VIRTIO_PCI_COMMON_GFSELECT      8
#define VIRTIO_PCI_COMMON_GF            12
#define VIRTIO_PCI_COMMON_MSIX          16
#define VIRTIO_PCI_COMMON_NUMQ          18
#define VIRTIO_PCI_COMMON_STATUS        20
#define VIRTIO_PCI_COMMON_CFGGENERATION 21
#define VIRTIO_PCI_COMMON_Q_SELECT      22
#define VIRTIO_PCI_COMMON_Q_SIZE        24
#define VIRTIO_PCI_COMMON_Q_MSIX        26
#define VIRTIO_PCI_COMMON_Q_ENABLE      28
#define VIRTIO_PCI_COMMON_Q_NOFF        30
#define VIRTIO_PCI_COMMON_Q_DESCLO      32
#define VIRTIO_PCI_COMMON_Q_DESCHI      36
#define VIRTIO_PCI_COMMON_Q_AVAILLO     40
#define VIRTIO_PCI_COMMON_Q_AVAILHI     44
#define VIRTIO_PCI_COMMON_Q_USEDLO      48
#define VIRTIO_PCI_COMMON_Q_USEDHI      52
#define VIRTIO_PCI_COMMON_Q_NDATA       56
#define VIRTIO_PCI_COMMON_Q_RESET       58
#define VIRTIO_PCI_COMMON_SIZE          60

#define VIRTIO_PCI_ISR_QUEUE        0x1
#define VIRTIO_PCI_ISR_CONFIG       0x2
#define VIRTIO_MSI_NO_VECTOR        0xffff

/* This transport's layout (see above); drivers read it from the capabilities. */
#define VIRTIO_PCI_MSIX_BAR         0
#define VIRTIO_PCI_MSIX_PBA_OFFSET  0x800
#define VIRTIO_PCI_REGS_BAR         2
#define VIRTIO_PCI_REGS_BAR_SIZE    0x4000
#define VIRTIO_PCI_COMMON_OFFSET    0x0000
#define VIRTIO_PCI_ISR_OFFSET       0x1000
#define VIRTIO_PCI_DEVICE_OFFSET    0x2000
#define VIRTIO_PCI_NOTIFY_OFFSET    0x3000
#define VIRTIO_PCI_NOTIFY_MULTIPLIER 4

/* The DeviceOps of every virtio-pci device type. */
extern const DeviceOps virtio_pci_device_ops;

/*
 * Wraps @vdev (initialised, its queues added) in a PCI function of device
 * type @type (whose ops are virtio_pci_device_ops). Takes @vdev in every
 * case: on failure it is freed. Needs env->loop and env->mem; env->msi
 * (MSI-X) and env->ioevents (doorbells) are used when present.
 */
Device *virtio_pci_device_new(const DeviceType *type, const DeviceEnv *env, VirtioDevice *vdev,
                              GError **error);

/* The virtio device inside a virtio-pci Device (for tests and debugging). */
VirtioDevice *virtio_pci_get_device(Device *dev);

/*
 * Defines and registers a virtio-pci device type, @create being the
 * type's constructor, which ends with
 * `return virtio_pci_device_new(&var, env, vdev, error);`.
 * Declare @create before this macro and define it after:
 *
 *     static Device *rng_create(const DeviceEnv *env, const char *options, GError **error);
 *     VIRTIO_PCI_DEVICE_TYPE(rng_type, "virtio-rng", "entropy source", rng_create)
 */
#define VIRTIO_PCI_DEVICE_TYPE(var, type_name, desc, create_fn)                \
    static const DeviceType var = {                                            \
        .name = (type_name),                                                   \
        .description = (desc),                                                 \
        .ops = &virtio_pci_device_ops,                                         \
        .pci = TRUE,                                                           \
        .create = (create_fn),                                                 \
    };                                                                         \
    DEVICE_TYPE_REGISTER(var)

#endif
