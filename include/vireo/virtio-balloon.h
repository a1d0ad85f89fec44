/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-balloon, the traditional memory balloon (virtio 1.2, 5.5;
 * devices/virtio/balloon.c), and what the machine's QMP commands need of
 * it: "balloon" sets the target, "query-balloon" reads what the guest
 * reports, and BALLOON_CHANGE follows the driver's "actual".
 *
 * The VMM finds the device with machine_find_device(m, "virtio-balloon")
 * and uses only the functions below, on the event loop thread (they take
 * the device's lock). Sizes are in bytes, as QEMU's QMP speaks them: the
 * guest "has" its RAM minus the pages in its balloon.
 */
#ifndef VIREO_VIRTIO_BALLOON_H
#define VIREO_VIRTIO_BALLOON_H

#include <glib.h>
#include <stdint.h>

#include "vireo/device.h"

#define VIRTIO_BALLOON_TYPE_NAME "virtio-balloon"

/* Feature bits (5.5.3). */
#define VIRTIO_BALLOON_F_MUST_TELL_HOST     0
#define VIRTIO_BALLOON_F_STATS_VQ           1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM     2

/* Queues (5.5.2); statsq is used only with VIRTIO_BALLOON_F_STATS_VQ. */
#define VIRTIO_BALLOON_Q_INFLATE    0
#define VIRTIO_BALLOON_Q_DEFLATE    1
#define VIRTIO_BALLOON_Q_STATS      2

/* Configuration (5.5.4): le32 num_pages (device), le32 actual (driver). */
#define VIRTIO_BALLOON_CFG_NUM_PAGES    0
#define VIRTIO_BALLOON_CFG_ACTUAL       4
#define VIRTIO_BALLOON_CONFIG_SIZE      8

/* PFNs in the queues are guest physical addresses >> 12, whatever the page size. */
#define VIRTIO_BALLOON_PFN_SHIFT    12
#define VIRTIO_BALLOON_PAGE_SIZE    (1u << VIRTIO_BALLOON_PFN_SHIFT)

/* Statistics (5.5.6.3): 10-byte entries, le16 tag then le64 value. */
#define VIRTIO_BALLOON_S_SWAP_IN        0
#define VIRTIO_BALLOON_S_SWAP_OUT       1
#define VIRTIO_BALLOON_S_MAJFLT         2
#define VIRTIO_BALLOON_S_MINFLT         3
#define VIRTIO_BALLOON_S_MEMFREE        4
#define VIRTIO_BALLOON_S_MEMTOT         5
#define VIRTIO_BALLOON_S_AVAIL          6
#define VIRTIO_BALLOON_S_CACHES         7
#define VIRTIO_BALLOON_S_HTLB_PGALLOC   8
#define VIRTIO_BALLOON_S_HTLB_PGFAIL    9
#define VIRTIO_BALLOON_S_NR             10
#define VIRTIO_BALLOON_STAT_SIZE        10

/* What query-balloon reports. */
typedef struct VirtioBalloonInfo {
    uint64_t ram_size;          /* guest RAM */
    uint64_t target;            /* what the host asked the guest to keep ("balloon") */
    uint64_t actual;            /* what the guest keeps: RAM - its "actual" pages */
    uint64_t released;          /* guest RAM given back to the host (inflated, not deflated) */
    /* The guest's last statistics; a tag it never reported is UINT64_MAX. */
    uint64_t stats[VIRTIO_BALLOON_S_NR];
    int64_t stats_updated;      /* when they arrived, seconds since the Epoch; 0: never */
    unsigned stats_interval;    /* seconds between polls; 0: not polled */
} VirtioBalloonInfo;

/* The driver's "actual" changed: the guest now keeps @actual bytes. Loop thread, no lock. */
typedef void (*VirtioBalloonChangeFn)(uint64_t actual, void *opaque);

/* QEMU's name for statistic @tag ("stat-swap-in", ...), for tag < VIRTIO_BALLOON_S_NR. */
const char *virtio_balloon_stat_name(unsigned tag);

/*
 * QMP "balloon": the guest should keep @target bytes (more than its RAM
 * means all of it; @target > 0). Sets num_pages and notifies the driver.
 * @dev must be a "virtio-balloon" device, as for the calls below.
 */
void virtio_balloon_set_target(Device *dev, uint64_t target);
void virtio_balloon_get_info(Device *dev, VirtioBalloonInfo *info);
/* One listener (NULL to remove): the QMP server's BALLOON_CHANGE. */
void virtio_balloon_set_change_fn(Device *dev, VirtioBalloonChangeFn fn, void *opaque);

#endif
