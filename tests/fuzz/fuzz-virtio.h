/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A fake machine for libFuzzer targets that drive a virtio device type
 * through the virtio core (fuzz-virtio-balloon.c, -blk.c, -console.c,
 * -net.c, -vsock.c): guest RAM in one exactly-sized, page-aligned heap
 * block (so ASan sees any access outside it, and madvise() acts inside
 * it), an event loop the target plays (queued calls, and watched fds
 * polled without waiting), timers on a fake clock, a character backend
 * and socket peers for the host side, and a minimal split-ring driver.
 * The device is created through its DeviceType, as the machine does, and
 * reached through its VirtioDevice. The transport is a fake one
 * (fuzz-virtio.c defines virtio_pci_device_new()): the PCI registers are
 * not what is fuzzed here; fuzz-virtqueue and the device tests cover them.
 *
 * Ring layout: queue q has its descriptor table at q * 0x2000, its
 * available ring at + 0x1000 and its used ring at + 0x1800 (so a target's
 * u16 guest address reaches the rings of queues 0 to 7); buffers come
 * from FUZZ_DATA_BASE up, reused round robin.
 */
#ifndef VIREO_TESTS_FUZZ_VIRTIO_H
#define VIREO_TESTS_FUZZ_VIRTIO_H

#include <glib.h>
#include <stdint.h>

#include "fuzz-common.h"
#include "vireo/device.h"
#include "vireo/virtio-pci.h"
#include "vireo/virtio.h"

/* Enough for virtio-console with 4 ports: 2 control queues, 2 per port. */
#define FUZZ_MAX_QUEUES 10
#define FUZZ_QUEUE_SIZE 64
#define FUZZ_RING_AREA (FUZZ_MAX_QUEUES * 0x2000)
#define FUZZ_DATA_BASE FUZZ_RING_AREA

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
/*
 * Resets the device as the machine does (device_reset()); the driver
 * forgets its queues until the next fuzz_driver_start().
 */
void fuzz_env_reset(FuzzEnv *f);
/* The device's state, as migration would send it (saving must succeed). */
GBytes *fuzz_env_save(FuzzEnv *f);
/*
 * Loads @state into the device. The loop is not run: a successful load
 * queues a catch-up kick of every queue, so the device right after the
 * load still holds exactly what was loaded. Like virtio-pci, the fake
 * transport puts back what the device had when the load fails.
 */
gboolean fuzz_env_load(FuzzEnv *f, GBytes *state, GError **error);
/* Runs the loop dry, saves the device and loads the state back into it (must succeed). */
void fuzz_env_save_load(FuzzEnv *f);
/*
 * fuzz_env_save_load(), and saving again right after the load must give
 * the same bytes. Only for devices that keep nothing in flight outside the
 * loop (not virtio-blk, whose I/O may complete in between).
 */
void fuzz_env_save_load_same(FuzzEnv *f);
/*
 * Saves the device, flips bits the input chooses (u8 n, then 1 + n % 4
 * times u16 offset, u8 xor) and loads that. A refused state must leave
 * the device as it was (it saves the same bytes again). Returns whether
 * the damaged state loaded: the device then holds what no guest could
 * have made, and the driver is tainted (fuzz_driver_taint()).
 */
gboolean fuzz_env_load_damaged(FuzzEnv *f, FuzzInput *in);

/*
 * A host peer for a backend that takes an fd (virtio-net's fd=N, a tap):
 * an AF_UNIX socketpair of @type (SOCK_DGRAM keeps frame boundaries, as a
 * tap does), non-blocking. Returns the device's end, to name in its
 * options; the device owns it from then on. The host's end goes to *@host
 * and fuzz_env_free() closes it after freeing the device; with @host NULL
 * it is closed at once (a peer that has gone: the device's writes fail).
 */
int fuzz_env_socketpair(FuzzEnv *f, int type, int *host);

/*
 * A character backend (DeviceEnv.chr), as the machine gives a console or
 * serial device; call before fuzz_env_create(). Output is taken up to a
 * room the target sets (unlimited at first), so that the device meets a
 * backend that is full and, later, writable again.
 */
void fuzz_chr_attach(FuzzEnv *f);
/* Output room from now on; output refused before is signalled writable(). */
void fuzz_chr_set_room(FuzzEnv *f, size_t room);
/* Host input: as much of @buf as the device's can_receive() allows. */
void fuzz_chr_input(FuzzEnv *f, const uint8_t *buf, size_t len);

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
/*
 * Takes every used entry of queue @q, so that its descriptors are free
 * again: for a queue whose used entries the target does not check itself.
 */
void fuzz_driver_reap(FuzzEnv *f, unsigned q);
/* The guest writes @data at @gpa; into the rings, the driver stops checking used entries. */
void fuzz_driver_poke(FuzzEnv *f, uint64_t gpa, const uint8_t *data, size_t len);
/* The rings may have changed behind the driver: it stops checking used entries. */
void fuzz_driver_taint(FuzzEnv *f);
gboolean fuzz_driver_tainted(FuzzEnv *f);
/* Address and length of descriptor @id of queue @q, as the driver wrote it. */
void fuzz_driver_desc(FuzzEnv *f, unsigned q, uint32_t id, uint64_t *addr, uint32_t *len);

#endif
