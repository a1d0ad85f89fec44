/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A fake machine for libFuzzer targets that drive a virtio device type
 * through the virtio core (fuzz-virtio-balloon.c, fuzz-virtio-vsock.c):
 * guest RAM in one exactly-sized, page-aligned heap block (so ASan sees
 * any access outside it, and madvise() acts inside it), an event loop the target plays (queued calls, and watched
 * fds polled without waiting), timers on a fake clock, and a minimal
 * split-ring driver. The device is created through its DeviceType, as the
 * machine does, and reached through its VirtioDevice. The transport is a
 * fake one (fuzz-virtio.c defines virtio_pci_device_new()): the PCI
 * registers are not what is fuzzed here; fuzz-virtqueue and the device
 * tests cover them.
 *
 * Ring layout: queue q has its descriptor table at q * 0x2000, its
 * available ring at + 0x1000 and its used ring at + 0x1800; buffers come
 * from FUZZ_DATA_BASE up, reused round robin.
 */
#ifndef VIREO_TESTS_FUZZ_VIRTIO_H
#define VIREO_TESTS_FUZZ_VIRTIO_H

#include <glib.h>
#include <stdint.h>

#include "vireo/device.h"
#include "vireo/virtio-pci.h"
#include "vireo/virtio.h"

#define FUZZ_MAX_QUEUES 4
#define FUZZ_QUEUE_SIZE 64
#define FUZZ_RING_AREA (FUZZ_MAX_QUEUES * 0x2000)
#define FUZZ_DATA_BASE 0x10000

typedef struct FuzzInput {
    const uint8_t *p;
    size_t left;
} FuzzInput;

/* Up to @n bytes of the input as a little-endian number (0 past its end). */
uint64_t fuzz_take(FuzzInput *in, size_t n);

typedef struct FuzzEnv FuzzEnv;

/* RAM of @ram_size bytes at guest physical 0, everything else empty. */
FuzzEnv *fuzz_env_new(size_t ram_size);
/* Frees the device (running the loop dry first), then the rest. */
void fuzz_env_free(FuzzEnv *f);
/* Creates the device; aborts if it cannot. */
void fuzz_env_create(FuzzEnv *f, const char *type, const char *options);
Device *fuzz_env_device(FuzzEnv *f);
VirtioDevice *fuzz_env_vdev(FuzzEnv *f);
uint8_t *fuzz_env_ram(FuzzEnv *f, uint64_t gpa, size_t len);
size_t fuzz_env_ram_size(FuzzEnv *f);
/* Plays the loop until it is dry; aborts if it never is (a device that keeps re-queueing). */
void fuzz_env_run(FuzzEnv *f);
/* Moves the fake clock, firing due timers. */
void fuzz_env_advance(FuzzEnv *f, int64_t ns);
/* Saves the device and loads the state back into it (must succeed). */
void fuzz_env_save_load(FuzzEnv *f);

/*
 * Driver: reset, ACKNOWLEDGE | DRIVER, @features, FEATURES_OK, queues
 * 0..@nr_queues-1 of FUZZ_QUEUE_SIZE, DRIVER_OK. FALSE if the device
 * refused the features.
 */
gboolean fuzz_driver_start(FuzzEnv *f, uint64_t features, unsigned nr_queues);
/* @len bytes of buffer space from the data area, reused round robin. */
uint64_t fuzz_driver_alloc(FuzzEnv *f, uint32_t len);
/* Keeps the last @bytes of RAM out of the data area, for the target's own use. */
void fuzz_driver_reserve(FuzzEnv *f, size_t bytes);
/* The descriptor the next fuzz_driver_add() on @q takes as its head. */
unsigned fuzz_driver_next_head(FuzzEnv *f, unsigned q);
/* A chain of @n buffers (@write: device-writable) on queue @q, published. */
void fuzz_driver_add(FuzzEnv *f, unsigned q, const uint64_t *addr, const uint32_t *len,
                     const gboolean *write, unsigned n);
/* The doorbell of queue @q (the core's kick, as an ioeventfd would). */
void fuzz_driver_kick(FuzzEnv *f, unsigned q);
/* The next used entry of queue @q: its id and length. */
gboolean fuzz_driver_used(FuzzEnv *f, unsigned q, uint32_t *id, uint32_t *len);
/* The guest writes @data at @gpa; into the rings, the driver stops checking used entries. */
void fuzz_driver_poke(FuzzEnv *f, uint64_t gpa, const uint8_t *data, size_t len);
/* The rings may have changed behind the driver: it stops checking used entries. */
void fuzz_driver_taint(FuzzEnv *f);
gboolean fuzz_driver_tainted(FuzzEnv *f);
/* Address and length of descriptor @id of queue @q, as the driver wrote it. */
void fuzz_driver_desc(FuzzEnv *f, unsigned q, uint32_t id, uint64_t *addr, uint32_t *len);

/* Silences the devices' logging (guest warnings are expected). */
void fuzz_quiet_logs(void);

#endif
