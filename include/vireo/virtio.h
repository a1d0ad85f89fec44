/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Virtio devices (virtio 1.2), the part every device type and every
 * transport shares (devices/virtio/virtio.c).
 *
 * Three layers, each with its own const ops table, none writing into
 * another's:
 *
 * - A device type (virtio-rng, virtio-blk, ...) embeds a VirtioDevice as
 *   its first member and supplies a static const VirtioDeviceOps: its
 *   configuration space, its queue handler, reset, activation and its own
 *   state fields. It knows nothing of PCI.
 * - The core (this header) keeps what the spec defines independently of
 *   the transport: device status, feature negotiation, the queues and
 *   their driver-written configuration, config_generation, NEEDS_RESET,
 *   and the common state fields.
 * - A transport (devices/virtio/pci.c, virtio-pci.h) implements the Device
 *   the machine sees (DeviceOps, PciDeviceOps): registers, interrupts,
 *   doorbells. It gives the core a VirtioTransportOps to raise interrupts.
 *
 * Threads and locking: a VirtioDevice has no lock of its own. It uses its
 * transport's Device lock (vdev->lock), which is held around every call
 * into VirtioDeviceOps and must be held around every helper below. Register
 * accesses arrive on vCPU threads (the bus holds the lock); queue
 * notifications are always handled on the event loop thread. Anything a
 * device runs by itself (a timer, an fd watch, an I/O completion) takes
 * the lock with virtio_device_lock() first.
 */
#ifndef VIREO_VIRTIO_H
#define VIREO_VIRTIO_H

#include <glib.h>
#include <stdint.h>

#include "vireo/device.h"
#include "vireo/virtqueue.h"

/* Device types (virtio 1.2, 5). */
#define VIRTIO_ID_NET           1
#define VIRTIO_ID_BLOCK         2
#define VIRTIO_ID_CONSOLE       3
#define VIRTIO_ID_RNG           4
#define VIRTIO_ID_BALLOON       5
#define VIRTIO_ID_VSOCK         19

/* Device status bits (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE   0x01
#define VIRTIO_STATUS_DRIVER        0x02
#define VIRTIO_STATUS_DRIVER_OK     0x04
#define VIRTIO_STATUS_FEATURES_OK   0x08
#define VIRTIO_STATUS_NEEDS_RESET   0x40
#define VIRTIO_STATUS_FAILED        0x80

/* Reserved feature bits (6) the core deals with. */
#define VIRTIO_F_RING_INDIRECT_DESC VIRTQ_F_RING_INDIRECT_DESC
#define VIRTIO_F_RING_EVENT_IDX     VIRTQ_F_RING_EVENT_IDX
#define VIRTIO_F_VERSION_1          VIRTQ_F_VERSION_1
#define VIRTIO_BIT(n)               (1ULL << (n))
/*
 * Offered for every device on top of its own bits: modern interface and
 * the ring features the virtqueue library implements. Nothing else in the
 * reserved range (no ACCESS_PLATFORM: there is no IOMMU; no RING_RESET or
 * NOTIFICATION_DATA: no device needs them yet).
 */
#define VIRTIO_TRANSPORT_FEATURES   VIRTQ_FEATURES

/* Limits a device type may ask for. */
#define VIRTIO_MAX_QUEUES       1024
#define VIRTIO_MAX_CONFIG_SIZE  4096

typedef struct VirtioDevice VirtioDevice;
typedef struct VirtioTransport VirtioTransport;

typedef struct VirtioDeviceOps {
    uint16_t device_id;         /* VIRTIO_ID_* */
    /*
     * Device-specific configuration space. The transport has checked that
     * [off, off + len) lies inside config_size and len is 1, 2, 4 or 8.
     * Values are little-endian in buf. Optional (NULL: reads give 0,
     * writes are ignored), as for a device without configuration.
     */
    void (*config_read)(VirtioDevice *vdev, uint32_t off, void *buf, size_t len);
    void (*config_write)(VirtioDevice *vdev, uint32_t off, const void *buf, size_t len);
    /*
     * Called when the driver sets FEATURES_OK with @features, already
     * checked to be a subset of what was offered and to include
     * VERSION_1. FALSE refuses them (FEATURES_OK then stays clear), e.g.
     * for a bit that needs another one the driver did not accept.
     * Optional.
     */
    gboolean (*validate_features)(VirtioDevice *vdev, uint64_t features);
    /*
     * The driver set DRIVER_OK: vdev->features holds the negotiated
     * features and the queues the driver enabled are running. Called on
     * the vCPU thread that wrote the status: must not block. Afterwards
     * queue_notify is called once for every enabled queue, from the loop,
     * for buffers made available before DRIVER_OK. Optional.
     */
    void (*activate)(VirtioDevice *vdev);
    /*
     * The driver notified queue @index (< nr_queues, enabled, DRIVER_OK
     * set). Runs on the event loop thread. Spurious calls are normal (a
     * notification after a reset, the catch-up after DRIVER_OK or load):
     * popping nothing is fine. Required.
     */
    void (*queue_notify)(VirtioDevice *vdev, unsigned index);
    /*
     * Back to the state after creation: the driver wrote 0 to the status
     * or the machine was reset. Queues are reset by the core afterwards
     * (elements popped before are stale: pushing them does nothing), and
     * the device must drop requests it still holds. Optional.
     */
    void (*reset)(VirtioDevice *vdev);
    /*
     * Finishes what the device holds in flight (I/O it submitted to a
     * backend), so that every popped element is pushed before the queues
     * are saved. Runs first in virtio_device_save(), vCPUs stopped, lock
     * held; may wait for the backend. It must not send used buffer
     * notifications (the interrupt controller is already saved): the
     * device sends them later from the loop, and the destination's
     * catch-up kick sends them there. Optional: for devices that hold
     * nothing between passes of the loop.
     */
    void (*drain)(VirtioDevice *vdev);
    /*
     * The device's own fields inside the transport's state section (no
     * section of its own). save runs with vCPUs stopped and no element in
     * flight, and also at the start of every load (the transport puts
     * that state back if the load fails). load runs on a device created
     * with options that may differ from the source's; it checks every
     * value, and may be left half done on failure. NULL save or load
     * blocks migration of the device.
     */
    gboolean (*save)(VirtioDevice *vdev, StateWriter *w, GError **error);
    gboolean (*load)(VirtioDevice *vdev, StateReader *r, GError **error);
    /* DeviceOps.set_active (device.h), lock held. Optional. */
    gboolean (*set_active)(VirtioDevice *vdev, gboolean active, GError **error);
    /*
     * Frees the device's own resources and the structure embedding
     * vdev; the core's parts (queues) are already gone. Called without
     * the lock held, so it may wait for its own timer callbacks.
     * Required.
     */
    void (*free)(VirtioDevice *vdev);
} VirtioDeviceOps;

/* What the core asks of its transport; called with the lock held. */
typedef struct VirtioTransportOps {
    /* A used buffer notification for queue @index (MSI-X vector or INTx + ISR). */
    void (*notify_queue)(VirtioTransport *t, unsigned index);
    /* A configuration change notification. */
    void (*notify_config)(VirtioTransport *t);
} VirtioTransportOps;

struct VirtioTransport {
    const VirtioTransportOps *ops;
};

/* One queue: the ring and what the driver wrote into its registers. */
typedef struct VirtioQueue {
    VirtioDevice *vdev;
    unsigned index;
    VirtQueue *vq;
    /* queue_size, queue_desc, queue_driver, queue_device as written (features unused). */
    VirtqConfig regs;
} VirtioQueue;

struct VirtioDevice {
    const VirtioDeviceOps *ops;
    char *id;                   /* the instance id, for messages */
    /* From the DeviceEnv; the device may use them. */
    const GuestMemory *mem;
    EventLoop *loop;
    TimerService *timers;
    /* Fixed at creation. */
    uint64_t host_features;     /* offered: the device's bits | VIRTIO_TRANSPORT_FEATURES */
    uint32_t config_size;
    unsigned nr_queues;
    VirtioQueue *queues;        /* queues[i].vq is what a device pops from */
    /* Set by the transport when it takes the device (virtio_device_attach). */
    VirtioTransport *transport;
    GMutex *lock;
    /* Owned by the core, under *lock. */
    uint8_t status;
    uint8_t config_generation;
    gboolean config_changed;    /* changed since the driver last read it */
    uint64_t driver_features;   /* as the driver wrote them */
    uint64_t features;          /* negotiated; 0 until FEATURES_OK */
};

/* --- for device types --- */

/*
 * Common set-up, from the device's create(): @features are the device's
 * own feature bits (the core adds VIRTIO_TRANSPORT_FEATURES), @config_size
 * the size of its configuration space (0 to VIRTIO_MAX_CONFIG_SIZE).
 * Then add the queues, then hand the device to a transport
 * (virtio_pci_device_new), which owns it from then on.
 */
void virtio_device_init(VirtioDevice *vdev, const VirtioDeviceOps *ops, const DeviceEnv *env,
                        uint64_t features, uint32_t config_size);
/* Adds queue number vdev->nr_queues, offering @max_size entries (a power of two). */
unsigned virtio_device_add_queue(VirtioDevice *vdev, uint16_t max_size);

static inline void virtio_device_lock(VirtioDevice *vdev)
{
    g_mutex_lock(vdev->lock);
}

static inline void virtio_device_unlock(VirtioDevice *vdev)
{
    g_mutex_unlock(vdev->lock);
}

static inline gboolean virtio_has_feature(const VirtioDevice *vdev, unsigned bit)
{
    return bit < 64 && (vdev->features & VIRTIO_BIT(bit));
}

/*
 * After virtq_push()/virtq_flush() on queue @index: sends the driver a
 * used buffer notification if virtq_needs_notification() says one is due.
 */
void virtio_notify_queue(VirtioDevice *vdev, unsigned index);
/*
 * The device changed its configuration space: the next read of it moves
 * config_generation, and a configuration change notification is sent once
 * the driver has set DRIVER_OK.
 */
void virtio_notify_config(VirtioDevice *vdev);
/*
 * The device cannot go on without a reset (a broken ring, a backend
 * failure): sets DEVICE_NEEDS_RESET and, once DRIVER_OK is set, sends a
 * configuration change notification. @why is logged, rate-limited. The
 * core does this itself when a queue cannot be enabled, and after each
 * queue_notify that left the queue broken.
 */
void virtio_set_needs_reset(VirtioDevice *vdev, const char *why);

/* --- for transports (with vdev->lock held unless said otherwise) --- */

/* Takes the device: from now on it uses @transport and the transport's @lock. */
void virtio_device_attach(VirtioDevice *vdev, VirtioTransport *transport, GMutex *lock);
/* Frees the queues, then calls ops->free (without the lock). */
void virtio_device_free(VirtioDevice *vdev);

/* The 32 offered feature bits from bit 32 * @select (0 beyond bit 63). */
uint32_t virtio_get_device_features(const VirtioDevice *vdev, uint32_t select);
/* The driver's accepted bits, masked with what was offered (2.2.2 read-back). */
uint32_t virtio_get_driver_features(const VirtioDevice *vdev, uint32_t select);
/* Ignored once FEATURES_OK is set, and beyond bit 63. */
void virtio_set_driver_features(VirtioDevice *vdev, uint32_t select, uint32_t value);

/*
 * A status write other than 0 (the transport resets on 0, see
 * virtio_device_reset). Bits already set stay set; FEATURES_OK sticks only
 * if the accepted features are acceptable (a subset of the offered ones,
 * VERSION_1 among them, validate_features agrees); DRIVER_OK only after
 * FEATURES_OK. Setting DRIVER_OK activates the device.
 */
void virtio_set_status(VirtioDevice *vdev, uint8_t status);
/* Status 0: the device, its queues and the negotiation start over. */
void virtio_device_reset(VirtioDevice *vdev);

/*
 * Queue registers, for the queue_select'ed queue. Writes to an enabled
 * queue, an invalid size (not a power of two up to the maximum) or an
 * out-of-range index are ignored with a guest warning.
 */
void virtio_queue_set_size(VirtioDevice *vdev, unsigned index, uint16_t size);
void virtio_queue_set_desc(VirtioDevice *vdev, unsigned index, uint64_t addr);
void virtio_queue_set_driver(VirtioDevice *vdev, unsigned index, uint64_t addr);
void virtio_queue_set_device(VirtioDevice *vdev, unsigned index, uint64_t addr);
/* queue_enable = 1: starts the ring, or sets NEEDS_RESET if it is invalid. */
void virtio_queue_enable(VirtioDevice *vdev, unsigned index);
gboolean virtio_queue_is_enabled(const VirtioDevice *vdev, unsigned index);

/*
 * A notification for queue ((VirtioQueue *)opaque), on the loop thread
 * with no lock held: the IoEventFn for a queue's doorbell. Takes the lock;
 * calls queue_notify if the queue may run.
 */
void virtio_queue_kick(void *opaque);

/*
 * Device-specific configuration access, bounds-checked against
 * config_size (outside: reads give 0, writes are dropped). A read moves
 * config_generation first if the configuration changed since the last.
 */
void virtio_config_read(VirtioDevice *vdev, uint32_t off, void *buf, size_t len);
void virtio_config_write(VirtioDevice *vdev, uint32_t off, const void *buf, size_t len);

/*
 * The core's state fields ("virtio-..." and "q<N>-..."), then the
 * device's, inside the transport's open section. load checks every value
 * against this device and may leave it half loaded on failure: the
 * transport restores what it had (see virtio-pci.h).
 */
gboolean virtio_device_save(VirtioDevice *vdev, StateWriter *w, GError **error);
gboolean virtio_device_load(VirtioDevice *vdev, StateReader *r, GError **error);
/* After a successful load: a catch-up kick of every enabled queue, from the loop. */
void virtio_device_loaded(VirtioDevice *vdev);

#endif
