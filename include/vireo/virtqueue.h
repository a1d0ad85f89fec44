/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Split virtqueues (virtio 1.2, 2.7), device side, shared by every virtio
 * device. Modern (VERSION_1) little-endian layout only, with
 * VIRTIO_F_RING_INDIRECT_DESC and VIRTIO_F_RING_EVENT_IDX.
 *
 * Everything in the rings is written by the guest and may change while we
 * read it, so every index, length, address and chain is checked, and every
 * descriptor is copied out of guest memory once before it is checked and
 * used. A malformed ring "breaks" the queue: one rate-limited warning says
 * which queue, which available-ring slot and descriptor, and why; from then
 * on virtq_pop() returns -1 and nothing is written to the rings until
 * virtq_reset(). The device then sets DEVICE_NEEDS_RESET. Nothing a guest
 * puts in its rings can make this code abort, loop, or touch host memory
 * outside guest RAM.
 *
 * Threads: a VirtQueue has no lock. Calls on one queue must not overlap:
 * the device serializes them (its lock, or by doing all queue work on the
 * event loop thread). vCPU threads reach the rings only as guest memory,
 * which is why ring accesses use atomics and barriers.
 *
 * Guest memory: the GuestMemory given to virtq_new() must outlive the
 * queue, and its regions must not change while a queue is enabled (host
 * pointers into the rings are kept from virtq_enable() on).
 *
 * Migration: every ring field this library writes, and the first
 * `written` bytes of an element's in_sg at virtq_fill(), are marked dirty
 * in the GuestMemory (guest_memory_mark_dirty()), so a device that writes
 * guest RAM only through its elements' in_sg, and reports what it wrote,
 * needs nothing else. While the GuestMemory is quiesced, virtq_pop()
 * returns 0, virtq_enable_notification() returns FALSE and notification
 * fields are left alone: the device stops until it is kicked again.
 *
 * Typical device code on a kick:
 *
 *     do {
 *         virtq_disable_notification(vq);
 *         while ((r = virtq_pop(vq, elem)) == 1)
 *             handle(elem);              (eventually virtq_push() each one)
 *     } while (r == 0 && virtq_enable_notification(vq));
 *     if (r < 0)
 *         set DEVICE_NEEDS_RESET and send a configuration change interrupt;
 *
 * and after completing requests:
 *
 *     virtq_push(vq, elem, written);     (or several virtq_fill + virtq_flush)
 *     if (virtq_needs_notification(vq))
 *         raise the queue's interrupt;
 */
#ifndef VIREO_VIRTQUEUE_H
#define VIREO_VIRTQUEUE_H

#include <glib.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vireo/guest-memory.h"
#include "vireo/state.h"

/* Feature bits (virtio 1.2, 6 "Reserved Feature Bits") this library acts on. */
#define VIRTQ_F_RING_INDIRECT_DESC  28
#define VIRTQ_F_RING_EVENT_IDX      29
#define VIRTQ_F_VERSION_1           32
/* What a device may offer on behalf of its queues. */
#define VIRTQ_FEATURES ((1ULL << VIRTQ_F_RING_INDIRECT_DESC) | \
                        (1ULL << VIRTQ_F_RING_EVENT_IDX) | (1ULL << VIRTQ_F_VERSION_1))

/* Ring layout constants (virtio 1.2, 2.7.5-2.7.8). */
#define VIRTQ_DESC_F_NEXT           1
#define VIRTQ_DESC_F_WRITE          2
#define VIRTQ_DESC_F_INDIRECT       4
#define VIRTQ_AVAIL_F_NO_INTERRUPT  1
#define VIRTQ_USED_F_NO_NOTIFY      1

/*
 * Largest queue size a device may offer. The split ring allows 32768; we
 * stop at 1024, as QEMU does, which bounds per-element storage.
 */
#define VIRTQ_MAX_SIZE 1024

typedef struct VirtQueue VirtQueue;

/*
 * A queue's configuration as the driver wrote it through the transport
 * registers (virtio-pci queue_size/queue_desc/queue_driver/queue_device,
 * virtio-mmio QueueNum/QueueDesc/QueueDriver/QueueDevice). The transport
 * keeps one per queue for register read-back and passes it to
 * virtq_enable() when the driver sets queue_enable/QueueReady.
 */
typedef struct VirtqConfig {
    uint16_t size;              /* number of entries chosen by the driver */
    uint64_t desc_addr;         /* descriptor area */
    uint64_t avail_addr;        /* driver area (available ring) */
    uint64_t used_addr;         /* device area (used ring) */
    uint64_t features;          /* all negotiated device feature bits */
} VirtqConfig;

/*
 * One descriptor chain taken from the available ring: its head index and
 * its buffers as host iovecs pointing straight into guest RAM, so a device
 * can preadv()/pwritev() into guest memory without copying.
 *
 * The device-readable buffers (driver to device) come first, then the
 * device-writable ones; the device must never write into out_sg. The
 * guest can change the contents of these buffers at any time, so a device
 * copies a header out (virtq_element_read()) before it checks it.
 *
 * A buffer that crosses from one RAM region into an adjacent one is split
 * into two iovecs. Zero-length descriptors are legal and produce no iovec
 * (their address and WRITE flag are ignored), so out_num and in_num may be
 * smaller than the number of descriptors, and even 0.
 *
 * Elements come from virtq_element_new(); each holds as many iovecs as the
 * queue's max_size. A device with several requests in flight uses one
 * element per request.
 */
typedef struct VirtqElement {
    uint16_t head;              /* descriptor index returned in the used ring */
    unsigned out_num;           /* device-readable iovecs, at out_sg */
    unsigned in_num;            /* device-writable iovecs, at in_sg */
    uint32_t out_len;           /* bytes in out_sg */
    uint32_t in_len;            /* bytes in in_sg */
    struct iovec *out_sg;
    struct iovec *in_sg;
    /* private to virtqueue.c */
    unsigned capacity;          /* iovecs in iov[] */
    uint64_t gen;               /* queue generation at pop time */
    uint16_t avail_idx;         /* available-ring index it came from */
    struct iovec iov[];
} VirtqElement;

/*
 * A disabled queue for a device that offers @max_size entries (a power of
 * two, 1..VIRTQ_MAX_SIZE). @name (e.g. "virtio-blk0/0") names it in
 * warnings. @mem must outlive the queue.
 */
VirtQueue *virtq_new(const GuestMemory *mem, const char *name, uint16_t max_size);
void virtq_free(VirtQueue *vq);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VirtQueue, virtq_free)

/*
 * Back to the state after virtq_new(): disabled, indices zero, not broken,
 * notifications enabled. Elements popped before are stale: pushing them
 * afterwards does nothing. Call on device reset and on queue_reset.
 */
void virtq_reset(VirtQueue *vq);

/*
 * Starts the queue with @cfg: indices from zero, notifications enabled.
 * Checks that VERSION_1 was negotiated, that the size is a power of two no
 * larger than max_size, and that each ring part has the spec's alignment
 * (16, 2, 4) and its full size (with the event-index fields) lies inside
 * one RAM region. On failure, a guest error, the queue stays disabled, a
 * rate-limited warning says why (also in virtq_get_error()), and FALSE is
 * returned: the device then sets DEVICE_NEEDS_RESET. Enabling a queue that
 * is already enabled fails the same way and leaves it running; transports
 * should not pass such writes on.
 */
gboolean virtq_enable(VirtQueue *vq, const VirtqConfig *cfg);

gboolean virtq_is_enabled(const VirtQueue *vq);
/* TRUE once virtq_pop() found the ring malformed, until virtq_reset(). */
gboolean virtq_is_broken(const VirtQueue *vq);
/* Why the last virtq_enable() failed or the queue broke; "" otherwise. */
const char *virtq_get_error(const VirtQueue *vq);
const char *virtq_get_name(const VirtQueue *vq);
uint16_t virtq_get_max_size(const VirtQueue *vq);
/* The size given to virtq_enable(); 0 while disabled. */
uint16_t virtq_get_size(const VirtQueue *vq);

/* An element with room for any chain @vq accepts (max_size iovecs). */
VirtqElement *virtq_element_new(const VirtQueue *vq);
void virtq_element_free(VirtqElement *elem);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VirtqElement, virtq_element_free)

/*
 * Takes the next available chain into @elem (allocated for this queue or
 * one with the same max_size).
 *
 * Returns 1 with @elem filled; 0 if nothing is available or the queue is
 * disabled (a kick before the queue is enabled is harmless); -1 if the
 * ring is malformed, after which the queue is broken and -1 is returned
 * until virtq_reset().
 *
 * Malformed: the available index moving back or more than the queue size
 * ahead; more chains in flight than the queue size; a head or next index
 * outside its table; a chain longer than its table (which is how loops
 * are caught); an indirect descriptor without the feature, with NEXT,
 * inside an indirect table, or whose table is empty, not a multiple of 16
 * bytes, longer than max_size entries or not inside one RAM region; a
 * buffer not inside RAM; a device-readable buffer after a device-writable
 * one; more than 4 GiB - 1 in total; more than max_size iovecs.
 *
 * With notifications enabled, a return of 0 guarantees that the driver
 * will notify when it adds the next buffer: with EVENT_IDX, avail_event is
 * published and the ring rechecked behind a full barrier here.
 */
int virtq_pop(VirtQueue *vq, VirtqElement *elem);

/*
 * Gives back the element popped last, which is then popped again next
 * (e.g. virtio-net receive when the buffer turns out to be too small).
 * Several can be given back, most recent first; pushing an element given
 * back is a bug.
 */
void virtq_unpop(VirtQueue *vq, const VirtqElement *elem);

/*
 * Returns @elem to the driver with @written bytes written into its in_sg
 * (clamped to in_len: the driver must never believe more was written).
 * virtq_fill() writes a used-ring entry that the driver cannot see until
 * virtq_flush() publishes all filled entries with one index update;
 * virtq_push() is both. Every popped element must be pushed exactly once
 * (or unpopped). Elements popped before a reset or load, and any element
 * while the queue is broken, are dropped without touching the rings.
 */
void virtq_fill(VirtQueue *vq, const VirtqElement *elem, uint32_t written);
void virtq_flush(VirtQueue *vq);
void virtq_push(VirtQueue *vq, const VirtqElement *elem, uint32_t written);

/*
 * Whether to send the driver a used buffer notification now, for the
 * entries published since the last call: never if none were; otherwise,
 * without EVENT_IDX, unless the driver set VIRTQ_AVAIL_F_NO_INTERRUPT;
 * with EVENT_IDX, if the used index passed used_event
 * (vring_need_event()). Call after virtq_flush()/virtq_push().
 */
gboolean virtq_needs_notification(VirtQueue *vq);

/*
 * Available buffer notification suppression while the device drains the
 * ring. Disable sets VIRTQ_USED_F_NO_NOTIFY (or, with EVENT_IDX, moves
 * avail_event behind the driver). Enable clears it (or sets avail_event to
 * the next index to consume), then, behind a full barrier, returns TRUE
 * if buffers are already available: the caller must pop again, or it may
 * wait forever for a kick the driver decided not to send.
 */
void virtq_disable_notification(VirtQueue *vq);
gboolean virtq_enable_notification(VirtQueue *vq);

/*
 * Copies between an element's buffers and host memory, from byte @offset
 * of its device-readable (read) or device-writable (write) part. Return
 * the number of bytes copied, short at the end of the buffers.
 */
size_t virtq_element_read(const VirtqElement *elem, size_t offset, void *buf, size_t len);
size_t virtq_element_write(const VirtqElement *elem, size_t offset, const void *buf, size_t len);

/*
 * Queue state as fields "<prefix>format", "<prefix>size", ... inside the
 * device's open state section: the configuration, enabled and broken
 * flags, indices, notification state and event-index shadow. The device
 * must have no element in flight (every popped one pushed and flushed):
 * an I/O request cannot be carried across a migration half done.
 */
void virtq_save(const VirtQueue *vq, StateWriter *w, const char *prefix);
/*
 * Loads what virtq_save() wrote, into a queue with a max_size at least the
 * saved size. Everything is checked as virtq_enable() checks it, against
 * this queue's guest memory; on failure (VIREO_ERROR_INVALID_STATE) the
 * queue is unchanged. Elements popped before are stale afterwards.
 */
gboolean virtq_load(VirtQueue *vq, StateReader *r, const char *prefix, GError **error);

#endif
