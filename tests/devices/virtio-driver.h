/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A virtio 1.x PCI driver for device tests, without KVM: what Linux's
 * virtio_pci_modern and virtio_ring do, against a virtio-pci Device built
 * through the harness (harness.h).
 *
 * The driver sees the device as a guest does. It walks PCI configuration
 * space (pci_config_read) for the vendor capabilities, programs the BARs
 * at fixed bus addresses and enables decoding on a fake PCI bus, and then
 * only uses guest physical addresses: a register access to a BAR address
 * goes to the device's DeviceOps (device_read/device_write, lock taken),
 * and a notification is a 16-bit write to the queue's notify address,
 * which rings the harness doorbell registered there (what KVM's ioeventfd
 * does) or, when none is, reaches the device as a register write (what a
 * KVM exit does). Rings and buffers live in the harness's guest RAM.
 *
 * Nothing runs behind the test's back: work the device deferred runs in
 * virtio_driver_run() (the harness loop), interrupts are counted as the
 * harness records them (MSI-X fires by message data, the INTx line), and
 * the driver reads used rings only when asked.
 *
 * Typical use:
 *
 *     g_autoptr(HarnessEnv) e = harness_env_new("rng", 0);
 *     g_autoptr(VirtioDriver) d = virtio_driver_new(e, "virtio-rng", NULL, NULL);
 *     VirtioDriverQueue *q;
 *     uint64_t buf = virtio_driver_alloc(d, 64, 16);
 *
 *     virtio_driver_init(d, VIRTIO_DRIVER_ALL_FEATURES);    // up to FEATURES_OK
 *     q = virtio_driver_setup_queue(d, 0, 0);
 *     virtio_driver_ok(d);                                  // DRIVER_OK
 *     virtio_driver_add(q, NULL, 0, &(VirtioDriverBuf){ buf, 64 }, 1, token);
 *     virtio_driver_kick(q);
 *     virtio_driver_run(d);
 *     assert_true(virtio_driver_get_used(q, &len) == token);
 *
 * Failures of the device (a register that does not read back, a used
 * entry for a buffer the driver does not own, a used length beyond the
 * buffer) fail the test at once with a message saying which. Everything
 * runs on the test's thread.
 */
#ifndef VIREO_TESTS_DEVICES_VIRTIO_DRIVER_H
#define VIREO_TESTS_DEVICES_VIRTIO_DRIVER_H

#include "harness.h"
#include "vireo/pci.h"
#include "vireo/virtio-pci.h"
#include "vireo/virtio.h"

typedef struct VirtioDriver VirtioDriver;
typedef struct VirtioDriverQueue VirtioDriverQueue;

/* Every feature the device offers that this driver implements (ring features, VERSION_1). */
#define VIRTIO_DRIVER_ALL_FEATURES UINT64_MAX

/* Interrupt delivery the driver sets up. */
typedef enum {
    VIRTIO_DRIVER_MSIX,         /* one vector for configuration, one per queue (Linux's first choice) */
    VIRTIO_DRIVER_MSIX_SHARED,  /* vector 0: configuration, vector 1: all queues (its fallback) */
    VIRTIO_DRIVER_INTX,         /* MSI-X off: INTx and the ISR (its last resort) */
} VirtioDriverIrqMode;

/*
 * Where the driver puts things. Zero fields take the defaults, which suit
 * one device per HarnessEnv; give each device its own values to put
 * several in one.
 */
typedef struct VirtioDriverParams {
    uint64_t mem_base;          /* guest RAM the driver allocates from: default 1 MiB */
    uint64_t mem_size;          /* default: up to the end of the harness's RAM */
    uint64_t bar32_base;        /* 32-bit BARs: default 0xc0000000 */
    uint64_t bar64_base;        /* 64-bit BARs: default 0x8000000000 (above any RAM) */
    uint32_t msi_data_base;     /* MSI-X vector N sends data base + N: default 0x100 */
    VirtioDriverIrqMode irq_mode;   /* default VIRTIO_DRIVER_MSIX */
} VirtioDriverParams;

/* One buffer of a request: guest physical address and length. */
typedef struct VirtioDriverBuf {
    uint64_t addr;
    uint32_t len;
} VirtioDriverBuf;

/* --- the device --- */

/*
 * Creates a @type device with @options in @e (failing the test on error),
 * puts it on a fake PCI bus with INTx on e->irq, finds and checks its
 * capabilities as Linux does, places and enables its BARs (memory
 * decoding and bus mastering on). The device is reset, status 0.
 */
VirtioDriver *virtio_driver_new(HarnessEnv *e, const char *type, const char *options,
                                const VirtioDriverParams *params);
/*
 * Firmware's job again, after a machine reset (device_reset() clears the
 * BARs and decoding, as vmm/pci-host.c then reprograms them): the BARs at
 * their places, memory decoding and bus mastering on.
 */
void virtio_driver_map_bars(VirtioDriver *d);
/* Runs the loop dry, then frees the device and the driver. */
void virtio_driver_free(VirtioDriver *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VirtioDriver, virtio_driver_free)

Device *virtio_driver_device(VirtioDriver *d);
PciDevice *virtio_driver_pci(VirtioDriver *d);
HarnessEnv *virtio_driver_env(VirtioDriver *d);

/*
 * Migration in the middle of traffic: saves the device (the loop must be
 * dry and no request in flight in the device), copies guest RAM into
 * @dst, creates a @type device in @dst on a fake bus of its own, loads the
 * state into it, and returns a driver that carries on from where @d was
 * (same rings, buffers, tokens and BAR addresses). @d is left as it was:
 * free it (or keep using it: the two devices share nothing).
 */
VirtioDriver *virtio_driver_migrate(VirtioDriver *d, HarnessEnv *dst, const char *options);

/* --- where the virtio structures are (filled by virtio_driver_new) --- */

typedef struct VirtioDriverRegion {
    uint8_t cap;                /* capability offset in configuration space */
    unsigned bar;
    uint32_t offset;
    uint32_t length;
    uint64_t addr;              /* guest physical address while the BAR decodes */
} VirtioDriverRegion;

typedef struct VirtioDriverLayout {
    VirtioDriverRegion common, notify, isr, device, pci_cfg;   /* device.cap 0: none */
    uint32_t notify_multiplier;
    uint8_t msix_cap;
    unsigned msix_vectors;
} VirtioDriverLayout;

const VirtioDriverLayout *virtio_driver_layout(VirtioDriver *d);

/* --- register access, by guest physical address as a CPU would --- */

uint64_t virtio_driver_mmio_read(VirtioDriver *d, uint64_t addr, size_t len);
/* Rings a doorbell registered at @addr if there is one, else writes the register. */
void virtio_driver_mmio_write(VirtioDriver *d, uint64_t addr, size_t len, uint64_t val);
/* The common configuration structure (offsets VIRTIO_PCI_COMMON_*). */
uint64_t virtio_driver_common_read(VirtioDriver *d, uint32_t off, size_t len);
void virtio_driver_common_write(VirtioDriver *d, uint32_t off, size_t len, uint64_t val);
/* Device-specific configuration, read with the config_generation loop (Linux's virtio_cread). */
void virtio_driver_config_read(VirtioDriver *d, uint32_t off, void *buf, size_t len);
uint64_t virtio_driver_config_read_raw(VirtioDriver *d, uint32_t off, size_t len);
void virtio_driver_config_write(VirtioDriver *d, uint32_t off, size_t len, uint64_t val);
/* Reading the ISR clears it and lowers INTx. */
uint8_t virtio_driver_read_isr(VirtioDriver *d);

/* --- initialization (3.1.1), step by step or at once --- */

uint8_t virtio_driver_get_status(VirtioDriver *d);
void virtio_driver_set_status(VirtioDriver *d, uint8_t status);
/* Writes 0 and checks the device reads back 0. */
void virtio_driver_reset(VirtioDriver *d);
uint64_t virtio_driver_device_features(VirtioDriver *d);
/* Writes the accepted features (driver_feature, both halves). */
void virtio_driver_write_features(VirtioDriver *d, uint64_t features);
/*
 * Reset, ACKNOWLEDGE, DRIVER, accept @wanted & offered (VERSION_1 always
 * wanted), FEATURES_OK and re-read it. Returns whether FEATURES_OK stuck;
 * then sets up interrupts (params.irq_mode). The negotiated features are
 * then virtio_driver_features().
 */
gboolean virtio_driver_init(VirtioDriver *d, uint64_t wanted);
uint64_t virtio_driver_features(VirtioDriver *d);
/* Sets DRIVER_OK and checks it reads back. */
void virtio_driver_ok(VirtioDriver *d);

/*
 * Programs MSI-X entry @vector (message data msi_data_base + vector,
 * unmasked); MSI-X is then enabled. Done by virtio_driver_init() for the
 * vectors its irq mode needs.
 */
void virtio_driver_msix_program(VirtioDriver *d, unsigned vector);
/* Writes config_msix_vector and returns what it reads back (NO_VECTOR on failure). */
uint16_t virtio_driver_set_config_vector(VirtioDriver *d, uint16_t vector);

/* --- queues --- */

/*
 * Sets up queue @index with @size entries (0: the device's maximum) in
 * guest RAM: selects it, checks it is available and disabled, writes the
 * size, the three ring addresses and its vector (per the irq mode), and
 * enables it; fails the test if it does not read back enabled. Uses
 * EVENT_IDX and INDIRECT_DESC as negotiated.
 */
VirtioDriverQueue *virtio_driver_setup_queue(VirtioDriver *d, unsigned index, uint16_t size);
/* The rings without enabling: tests of queue set-up write the registers themselves. */
VirtioDriverQueue *virtio_driver_alloc_queue(VirtioDriver *d, unsigned index, uint16_t size);
/* Writes the ring registers of @q and enables it, without checking the outcome. */
void virtio_driver_enable_queue(VirtioDriverQueue *q);
/* Queue @index as set up (or allocated) last, or NULL. */
VirtioDriverQueue *virtio_driver_queue(VirtioDriver *d, unsigned index);
unsigned virtio_driver_queue_index(const VirtioDriverQueue *q);
uint16_t virtio_driver_queue_size(const VirtioDriverQueue *q);
/* Guest addresses of the descriptor table, available ring and used ring. */
uint64_t virtio_driver_queue_desc(const VirtioDriverQueue *q);
uint64_t virtio_driver_queue_avail(const VirtioDriverQueue *q);
uint64_t virtio_driver_queue_used(const VirtioDriverQueue *q);
/* Writes queue_msix_vector for @q and returns what it reads back. */
uint16_t virtio_driver_set_queue_vector(VirtioDriverQueue *q, uint16_t vector);
/* With INDIRECT_DESC negotiated, requests of more than one buffer use an indirect table (default on). */
void virtio_driver_queue_set_indirect(VirtioDriverQueue *q, gboolean on);

/*
 * Makes a request available: @out buffers (device-readable) then @in
 * (device-writable), @token (non-NULL) coming back from get_used. Returns
 * the head descriptor, or -1 when the ring has no room. The device sees
 * it once the available index is published, which add does at once, as
 * Linux's virtqueue_add_split() does.
 */
int virtio_driver_add(VirtioDriverQueue *q, const VirtioDriverBuf *out, unsigned out_num,
                      const VirtioDriverBuf *in, unsigned in_num, void *token);
/* Whether the device asked to be notified (NO_NOTIFY flag or avail_event). */
gboolean virtio_driver_kick_prepare(VirtioDriverQueue *q);
/* Notifies, through the doorbell (ioeventfd or register write as the machine would). */
void virtio_driver_notify(VirtioDriverQueue *q);
/* Notifies through a register write even if a doorbell is registered (a KVM exit). */
void virtio_driver_notify_register(VirtioDriverQueue *q);
/* kick_prepare + notify; returns whether it notified. */
gboolean virtio_driver_kick(VirtioDriverQueue *q);
/* The next used buffer's token and written length, or NULL if none. */
void *virtio_driver_get_used(VirtioDriverQueue *q, uint32_t *len);
/* Requests made available and not used yet. */
unsigned virtio_driver_queue_inflight(const VirtioDriverQueue *q);
/* Interrupt suppression (VIRTQ_AVAIL_F_NO_INTERRUPT or used_event), as virtqueue_disable_cb. */
void virtio_driver_disable_cb(VirtioDriverQueue *q);
void virtio_driver_enable_cb(VirtioDriverQueue *q);

/* --- running and interrupts --- */

/*
 * Plays the event loop until it is dry, then, in INTx mode, handles the
 * line as an interrupt handler would (reads the ISR while it is high).
 * Returns the loop's callback count.
 */
unsigned virtio_driver_run(VirtioDriver *d);
/* Used buffer notifications for @q so far (its MSI-X vector's fires, or ISR queue bits). */
unsigned virtio_driver_queue_interrupts(VirtioDriverQueue *q);
/* Configuration change notifications so far. */
unsigned virtio_driver_config_interrupts(VirtioDriver *d);
/* Fires of MSI-X vector @vector (by its message data) so far. */
unsigned virtio_driver_msix_fires(VirtioDriver *d, unsigned vector);

/* --- guest memory --- */

/* @size bytes of zeroed guest RAM aligned to @align (a power of two); never freed. */
uint64_t virtio_driver_alloc(VirtioDriver *d, uint64_t size, uint64_t align);
/* Host pointer to [gpa, gpa + len) of guest RAM (fails the test outside RAM). */
void *virtio_driver_mem(VirtioDriver *d, uint64_t gpa, size_t len);

#endif
