/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-balloon, the traditional memory balloon (virtio 1.2, 5.5): three
 * queues (inflate, deflate, stats), the le32 num_pages/actual
 * configuration, VIRTIO_BALLOON_F_STATS_VQ always offered and
 * VIRTIO_BALLOON_F_DEFLATE_ON_OOM on request. Nothing else: no
 * MUST_TELL_HOST (a deflated page needs no work from us), no free page
 * hinting or reporting.
 *
 * Options:
 *   deflate-on-oom=on|off  offer DEFLATE_ON_OOM (default off): the guest
 *                          may take pages back from the balloon when it
 *                          runs out of memory. Linux then also leaves its
 *                          MemTotal alone while inflating.
 *   stats-interval=N       ask the guest for fresh statistics every N
 *                          seconds (default 0: only what the driver sends
 *                          on its own, once at start-up)
 *
 * Inflating: each PFN (a 4 KiB guest page, whatever the guest's page size)
 * that lies in guest RAM is given back to the host at once, with
 * madvise(MADV_REMOVE) on its host mapping. Guest RAM is a MAP_SHARED
 * memfd (vmm/memory.c), where MADV_DONTNEED alone would only drop the
 * mapping and keep the memory; MADV_REMOVE punches a hole in the memfd
 * itself, like fallocate(PUNCH_HOLE) on the region's file_offset, without
 * needing the fd. KVM's MMU notifier drops the guest mapping with it, and
 * a later guest access faults in a zero page. Memory that is not a shared
 * mapping (device tests use anonymous memory) gets MADV_DONTNEED, which
 * frees private pages. Adjacent pages go in one call. A PFN outside guest
 * RAM is ignored, with a rate-limited warning.
 *
 * Deflating needs nothing from the host but accounting. A bitmap with one
 * bit per 4 KiB page of RAM says which pages are in the balloon, so that
 * query-balloon can report what was released and a guest cannot make the
 * count drift by inflating one page twice.
 *
 * Statistics (5.5.6.3): the driver keeps one buffer in the stats queue.
 * The device reads it when it arrives and leaves it in the available
 * ring (popped, read, given back with virtq_unpop), so that no element is
 * ever in flight between loop passes, which is what save needs. Every
 * stats-interval seconds the device takes it and returns it used: that is
 * the request for fresh statistics, which come back in the next buffer.
 *
 * Requests are served on the event loop thread, at most BALLOON_BUDGET per
 * pass and BALLOON_MAX_PFNS PFNs per request (Linux sends 256), so that a
 * guest cannot hold the loop for long.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vireo/util.h"
#include "vireo/virtio-balloon.h"
#include "vireo/virtio-pci.h"

#define BALLOON_QUEUE_SIZE 128
#define BALLOON_BUDGET 64               /* requests per pass of the loop */
#define BALLOON_MAX_PFNS (1u << 16)     /* per request: 256 MiB of guest RAM */
#define BALLOON_PFN_CHUNK 256
#define BALLOON_MAX_STATS 64            /* entries read per buffer (16 tags exist) */
#define BALLOON_MAX_INTERVAL (24 * 3600)
#define BALLOON_NS_PER_S 1000000000LL

typedef struct VirtioBalloon {
    VirtioDevice vdev;                  /* first: the transport holds &vdev */
    gboolean deflate_on_oom;
    unsigned stats_interval;            /* seconds; 0: no polling */
    Timer *stats_timer;                 /* with stats_interval */
    VirtqElement *elem;
    uint64_t nr_pages;                  /* 4 KiB pages of guest RAM */
    gboolean can_release;               /* host pages are 4 KiB */
    /* Under the lock. */
    uint32_t num_pages;                 /* the host's target, in pages */
    uint32_t actual;                    /* the driver's count */
    uint8_t *bitmap;                    /* pages in the balloon, by RAM page index */
    uint64_t released;                  /* bits set in bitmap */
    uint64_t stats[VIRTIO_BALLOON_S_NR];
    uint32_t stats_valid;               /* tags in the last buffer */
    int64_t stats_updated;              /* seconds since the Epoch */
    gboolean stats_held;                /* the driver's buffer is read, waiting in the ring */
    VirtioBalloonChangeFn change_fn;
    void *change_opaque;
    gboolean change_queued;             /* an announcement is on its way to the loop */
    uint32_t announced;                 /* actual as last announced */
} VirtioBalloon;

static VirtioBalloon *virtio_balloon_from_vdev(VirtioDevice *vdev)
{
    return (VirtioBalloon *)vdev;
}

static size_t virtio_balloon_bitmap_size(const VirtioBalloon *b)
{
    return (b->nr_pages + 7) / 8;
}

/* --- pages --- */

/*
 * Where 4 KiB page @pfn is: its index among the RAM pages and its host
 * address. FALSE if it is not wholly inside one RAM region.
 */
static gboolean virtio_balloon_locate(const VirtioBalloon *b, uint64_t pfn, uint64_t *index,
                                      uint8_t **host)
{
    const GuestMemory *mem = b->vdev.mem;
    uint64_t gpa = pfn << VIRTIO_BALLOON_PFN_SHIFT;
    uint64_t base = 0;

    for (unsigned i = 0; i < mem->nr_regions; i++) {
        const GuestRegion *r = &mem->regions[i];
        uint64_t pages = r->size / VIRTIO_BALLOON_PAGE_SIZE;

        if (gpa >= r->gpa && (gpa - r->gpa) / VIRTIO_BALLOON_PAGE_SIZE < pages) {
            *index = base + (gpa - r->gpa) / VIRTIO_BALLOON_PAGE_SIZE;
            *host = r->host + (gpa - r->gpa);
            return TRUE;
        }
        base += pages;
    }
    return FALSE;
}

/* A run of adjacent host pages to release with one call. */
typedef struct BalloonRun {
    uint8_t *host;
    size_t len;
} BalloonRun;

static void virtio_balloon_release(VirtioBalloon *b, BalloonRun *run)
{
    int saved;

    if (!run->len)
        return;
    if (b->can_release && madvise(run->host, run->len, MADV_REMOVE) < 0) {
        /* Not a shared file mapping: private memory is freed by MADV_DONTNEED. */
        saved = errno;
        if ((saved != EINVAL && saved != EACCES && saved != EOPNOTSUPP) ||
            madvise(run->host, run->len, MADV_DONTNEED) < 0) {
            static RateLimit rl;
            int suppressed;

            saved = errno;
            if (ratelimit_allow(&rl, &suppressed))
                g_warning("%s: cannot release %zu bytes of guest RAM: %s", b->vdev.id,
                          run->len, g_strerror(saved));
        }
    }
    /* The pages read as zeroes now: a migration must send them again. */
    guest_memory_mark_dirty(b->vdev.mem, run->host, run->len);
    run->len = 0;
}

static void virtio_balloon_add_to_run(VirtioBalloon *b, BalloonRun *run, uint8_t *host)
{
    if (run->len && host == run->host + run->len) {
        run->len += VIRTIO_BALLOON_PAGE_SIZE;
        return;
    }
    if (run->len && host + VIRTIO_BALLOON_PAGE_SIZE == run->host) {
        run->host = host;
        run->len += VIRTIO_BALLOON_PAGE_SIZE;
        return;
    }
    virtio_balloon_release(b, run);
    run->host = host;
    run->len = VIRTIO_BALLOON_PAGE_SIZE;
}

/* The PFNs of an inflate or deflate request. */
static void virtio_balloon_handle_pfns(VirtioBalloon *b, const VirtqElement *elem, gboolean inflate)
{
    uint32_t pfns[BALLOON_PFN_CHUNK];
    size_t n = elem->out_len / 4;
    unsigned bad = 0;
    uint64_t first_bad = 0;
    BalloonRun run = { 0 };

    if (elem->out_len % 4)
        vireo_guest_warn("%s: %s request of %u bytes, not whole PFNs; the rest is ignored",
                         b->vdev.id, inflate ? "inflate" : "deflate", elem->out_len);
    if (n > BALLOON_MAX_PFNS) {
        vireo_guest_warn("%s: %s request of %zu PFNs; only the first %u are used", b->vdev.id,
                         inflate ? "inflate" : "deflate", n, BALLOON_MAX_PFNS);
        n = BALLOON_MAX_PFNS;
    }
    for (size_t done = 0; done < n;) {
        size_t chunk = MIN(n - done, (size_t)BALLOON_PFN_CHUNK);

        virtq_element_read(elem, done * 4, pfns, chunk * 4);
        for (size_t i = 0; i < chunk; i++) {
            uint32_t pfn = GUINT32_FROM_LE(pfns[i]);
            uint64_t index;
            uint8_t *host;
            uint8_t bit;

            if (!virtio_balloon_locate(b, pfn, &index, &host)) {
                if (!bad++)
                    first_bad = pfn;
                continue;
            }
            bit = 1u << (index % 8);
            if (inflate) {
                if (!(b->bitmap[index / 8] & bit)) {
                    b->bitmap[index / 8] |= bit;
                    b->released++;
                }
                /* Released again even if known: the guest may have touched it. */
                virtio_balloon_add_to_run(b, &run, host);
            } else if (b->bitmap[index / 8] & bit) {
                b->bitmap[index / 8] &= ~bit;
                b->released--;
            }
        }
        done += chunk;
    }
    virtio_balloon_release(b, &run);
    if (bad)
        vireo_guest_warn("%s: %u %s PFNs outside guest RAM ignored (the first 0x%" PRIx64 ")",
                         b->vdev.id, bad, inflate ? "inflate" : "deflate", first_bad);
}

/* Serves the inflate or deflate queue; loop thread, lock held. */
static void virtio_balloon_serve_pages(VirtioBalloon *b, unsigned index)
{
    VirtQueue *vq = b->vdev.queues[index].vq;
    unsigned served = 0;
    int r = 0;

    do {
        virtq_disable_notification(vq);
        for (;;) {
            if (served == BALLOON_BUDGET) {
                /* The rest in a later pass, so other devices get the loop too. */
                event_loop_call(b->vdev.loop, virtio_queue_kick, &b->vdev.queues[index]);
                goto out;
            }
            r = virtq_pop(vq, b->elem);
            if (r != 1)
                break;
            virtio_balloon_handle_pfns(b, b->elem, index == VIRTIO_BALLOON_Q_INFLATE);
            virtq_push(vq, b->elem, 0);
            served++;
        }
    } while (r == 0 && virtq_enable_notification(vq));
    if (r < 0)
        virtio_set_needs_reset(&b->vdev, NULL);        /* virtq_pop() said why */
out:
    if (served)
        virtio_notify_queue(&b->vdev, index);
}

/* --- statistics --- */

static void virtio_balloon_read_stats(VirtioBalloon *b, const VirtqElement *elem)
{
    size_t n = elem->out_len / VIRTIO_BALLOON_STAT_SIZE;

    if (elem->out_len % VIRTIO_BALLOON_STAT_SIZE)
        vireo_guest_warn("%s: statistics buffer of %u bytes, not whole entries", b->vdev.id,
                         elem->out_len);
    n = MIN(n, (size_t)BALLOON_MAX_STATS);
    b->stats_valid = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t entry[VIRTIO_BALLOON_STAT_SIZE];
        uint16_t tag;

        virtq_element_read(elem, i * VIRTIO_BALLOON_STAT_SIZE, entry, sizeof(entry));
        tag = vireo_le_load(entry, 2);
        /* Tags we do not know are ignored (5.5.6.3.2). */
        if (tag >= VIRTIO_BALLOON_S_NR)
            continue;
        b->stats[tag] = vireo_le_load(entry + 2, 8);
        b->stats_valid |= 1u << tag;
    }
    b->stats_updated = g_get_real_time() / G_USEC_PER_SEC;
}

/* The driver made its statistics buffer available: read it, leave it in the ring. */
static void virtio_balloon_serve_stats(VirtioBalloon *b)
{
    VirtQueue *vq = b->vdev.queues[VIRTIO_BALLOON_Q_STATS].vq;
    int r;

    if (!virtio_has_feature(&b->vdev, VIRTIO_BALLOON_F_STATS_VQ) || b->stats_held)
        return;
    do {
        virtq_disable_notification(vq);
        r = virtq_pop(vq, b->elem);
        if (r == 1) {
            virtio_balloon_read_stats(b, b->elem);
            /* Kept in the available ring until the next poll; no kicks meanwhile. */
            virtq_unpop(vq, b->elem);
            b->stats_held = TRUE;
            return;
        }
    } while (r == 0 && virtq_enable_notification(vq));
    if (r < 0)
        virtio_set_needs_reset(&b->vdev, NULL);
}

/* Hands the statistics buffer back: the driver answers with fresh ones. Lock held. */
static void virtio_balloon_poll_stats(VirtioBalloon *b)
{
    VirtQueue *vq = b->vdev.queues[VIRTIO_BALLOON_Q_STATS].vq;

    if (!(b->vdev.status & VIRTIO_STATUS_DRIVER_OK) || !virtq_is_enabled(vq) ||
        !virtio_has_feature(&b->vdev, VIRTIO_BALLOON_F_STATS_VQ))
        return;
    if (b->stats_held) {
        int r = virtq_pop(vq, b->elem);

        b->stats_held = FALSE;
        if (r == 1) {
            virtq_push(vq, b->elem, 0);
            virtio_notify_queue(&b->vdev, VIRTIO_BALLOON_Q_STATS);
        } else if (r < 0) {
            virtio_set_needs_reset(&b->vdev, NULL);
            return;
        }
    }
    /* Notifications back on; also picks up a buffer that arrived unnoticed (after a load). */
    virtio_balloon_serve_stats(b);
}

static void virtio_balloon_stats_timer(void *opaque)
{
    VirtioBalloon *b = opaque;

    virtio_device_lock(&b->vdev);
    virtio_balloon_poll_stats(b);
    if (b->vdev.status & VIRTIO_STATUS_DRIVER_OK)
        timer_arm(b->stats_timer, timer_service_now(b->vdev.timers) +
                                  b->stats_interval * BALLOON_NS_PER_S);
    virtio_device_unlock(&b->vdev);
}

static void virtio_balloon_arm_stats(VirtioBalloon *b)
{
    if (b->stats_timer && (b->vdev.status & VIRTIO_STATUS_DRIVER_OK) &&
        virtio_has_feature(&b->vdev, VIRTIO_BALLOON_F_STATS_VQ))
        timer_arm(b->stats_timer, timer_service_now(b->vdev.timers) +
                                  b->stats_interval * BALLOON_NS_PER_S);
}

/* --- "actual" announcements --- */

static void virtio_balloon_announce(void *opaque)
{
    VirtioBalloon *b = opaque;
    VirtioBalloonChangeFn fn;
    void *fn_opaque;
    uint64_t actual;

    virtio_device_lock(&b->vdev);
    b->change_queued = FALSE;
    fn = b->change_fn;
    fn_opaque = b->change_opaque;
    if (b->announced == b->actual) {
        virtio_device_unlock(&b->vdev);
        return;
    }
    b->announced = b->actual;
    actual = b->vdev.mem->ram_size -
             MIN((uint64_t)b->actual << VIRTIO_BALLOON_PFN_SHIFT, b->vdev.mem->ram_size);
    virtio_device_unlock(&b->vdev);
    if (fn)
        fn(actual, fn_opaque);
}

/* actual changed (any thread, lock held): tell the listener from the loop. */
static void virtio_balloon_actual_changed(VirtioBalloon *b)
{
    if (b->change_queued || b->actual == b->announced)
        return;
    b->change_queued = TRUE;
    event_loop_call(b->vdev.loop, virtio_balloon_announce, b);
}

/* --- VirtioDeviceOps --- */

static void virtio_balloon_config_read(VirtioDevice *vdev, uint32_t off, void *buf, size_t len)
{
    VirtioBalloon *b = virtio_balloon_from_vdev(vdev);
    uint8_t cfg[VIRTIO_BALLOON_CONFIG_SIZE];

    vireo_le_store(cfg + VIRTIO_BALLOON_CFG_NUM_PAGES, 4, b->num_pages);
    vireo_le_store(cfg + VIRTIO_BALLOON_CFG_ACTUAL, 4, b->actual);
    memcpy(buf, cfg + off, len);
}

static void virtio_balloon_config_write(VirtioDevice *vdev, uint32_t off, const void *buf,
                                        size_t len)
{
    VirtioBalloon *b = virtio_balloon_from_vdev(vdev);
    uint8_t cfg[4];

    /* Only actual is the driver's; any width, as legacy drivers wrote it a byte at a time. */
    if (off < VIRTIO_BALLOON_CFG_ACTUAL) {
        vireo_guest_warn("%s: write to num_pages, which is the device's; ignored", vdev->id);
        return;
    }
    vireo_le_store(cfg, 4, b->actual);
    memcpy(cfg + (off - VIRTIO_BALLOON_CFG_ACTUAL), buf, len);
    b->actual = vireo_le_load(cfg, 4);
    virtio_balloon_actual_changed(b);
}

static void virtio_balloon_activate(VirtioDevice *vdev)
{
    virtio_balloon_arm_stats(virtio_balloon_from_vdev(vdev));
}

static void virtio_balloon_queue_notify(VirtioDevice *vdev, unsigned index)
{
    VirtioBalloon *b = virtio_balloon_from_vdev(vdev);

    if (index == VIRTIO_BALLOON_Q_STATS)
        virtio_balloon_serve_stats(b);
    else
        virtio_balloon_serve_pages(b, index);
}

static void virtio_balloon_reset(VirtioDevice *vdev)
{
    VirtioBalloon *b = virtio_balloon_from_vdev(vdev);

    if (b->stats_timer)
        timer_cancel(b->stats_timer);
    b->stats_held = FALSE;
    /* A new driver starts with an empty balloon; the host's target stays. */
    b->actual = 0;
    memset(b->bitmap, 0, virtio_balloon_bitmap_size(b));
    b->released = 0;
    virtio_balloon_actual_changed(b);
}

static gboolean virtio_balloon_save(VirtioDevice *vdev, StateWriter *w, GError **error)
{
    VirtioBalloon *b = virtio_balloon_from_vdev(vdev);
    uint8_t stats[8 * VIRTIO_BALLOON_S_NR];

    for (unsigned i = 0; i < VIRTIO_BALLOON_S_NR; i++)
        vireo_le_store(stats + 8 * i, 8, b->stats[i]);
    state_write_u32(w, "balloon-num-pages", b->num_pages);
    state_write_u32(w, "balloon-actual", b->actual);
    state_write_bytes(w, "balloon-pages", b->bitmap, virtio_balloon_bitmap_size(b));
    state_write_u32(w, "balloon-stats-valid", b->stats_valid);
    state_write_u64(w, "balloon-stats-time", b->stats_updated);
    state_write_bytes(w, "balloon-stats", stats, sizeof(stats));
    return TRUE;
}

static gboolean virtio_balloon_load(VirtioDevice *vdev, StateReader *r, GError **error)
{
    VirtioBalloon *b = virtio_balloon_from_vdev(vdev);
    size_t size = virtio_balloon_bitmap_size(b);
    g_autofree uint8_t *bitmap = g_malloc(size);
    uint8_t stats[8 * VIRTIO_BALLOON_S_NR];
    uint32_t num_pages, actual, valid;
    uint64_t updated, released = 0;

    if (!state_read_u32(r, "balloon-num-pages", &num_pages, error) ||
        !state_read_u32(r, "balloon-actual", &actual, error) ||
        !state_read_bytes(r, "balloon-pages", bitmap, size, error) ||
        !state_read_u32(r, "balloon-stats-valid", &valid, error) ||
        !state_read_u64(r, "balloon-stats-time", &updated, error) ||
        !state_read_bytes(r, "balloon-stats", stats, sizeof(stats), error))
        return FALSE;
    if (num_pages > b->nr_pages || (valid >> VIRTIO_BALLOON_S_NR) || updated > G_MAXINT64 ||
        (b->nr_pages % 8 && (bitmap[size - 1] >> (b->nr_pages % 8)))) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "virtio-balloon: state out of range (target %u of %" PRIu64 " pages, "
                    "statistics 0x%x)", num_pages, b->nr_pages, valid);
        return FALSE;
    }
    for (size_t i = 0; i < size; i++)
        released += __builtin_popcount(bitmap[i]);

    if (b->stats_timer)
        timer_cancel(b->stats_timer);
    b->num_pages = num_pages;
    b->actual = actual;
    b->announced = actual;
    memcpy(b->bitmap, bitmap, size);
    b->released = released;
    b->stats_valid = valid;
    b->stats_updated = updated;
    for (unsigned i = 0; i < VIRTIO_BALLOON_S_NR; i++)
        b->stats[i] = vireo_le_load(stats + 8 * i, 8);
    /* The driver's buffer is in the available ring: the catch-up kick reads it again. */
    b->stats_held = FALSE;
    virtio_balloon_arm_stats(b);
    return TRUE;
}

static void virtio_balloon_free(VirtioDevice *vdev)
{
    VirtioBalloon *b = virtio_balloon_from_vdev(vdev);

    /* Waits for a running callback, which needs the lock: not held here. */
    timer_free(b->stats_timer);
    virtq_element_free(b->elem);
    g_free(b->bitmap);
    g_free(b);
}

static const VirtioDeviceOps virtio_balloon_ops = {
    .device_id = VIRTIO_ID_BALLOON,
    .config_read = virtio_balloon_config_read,
    .config_write = virtio_balloon_config_write,
    .activate = virtio_balloon_activate,
    .queue_notify = virtio_balloon_queue_notify,
    .reset = virtio_balloon_reset,
    .save = virtio_balloon_save,
    .load = virtio_balloon_load,
    .free = virtio_balloon_free,
};

static Device *virtio_balloon_create(const DeviceEnv *env, const char *options, GError **error);

VIRTIO_PCI_DEVICE_TYPE(virtio_balloon_type, VIRTIO_BALLOON_TYPE_NAME,
                       "virtio memory balloon with statistics "
                       "(deflate-on-oom=on|off,stats-interval=SECONDS)", virtio_balloon_create)

/* --- for the machine (QMP) --- */

static VirtioBalloon *virtio_balloon_from_dev(Device *dev)
{
    g_assert(dev->type == &virtio_balloon_type);
    return virtio_balloon_from_vdev(virtio_pci_get_device(dev));
}

const char *virtio_balloon_stat_name(unsigned tag)
{
    static const char *const names[VIRTIO_BALLOON_S_NR] = {
        [VIRTIO_BALLOON_S_SWAP_IN] = "stat-swap-in",
        [VIRTIO_BALLOON_S_SWAP_OUT] = "stat-swap-out",
        [VIRTIO_BALLOON_S_MAJFLT] = "stat-major-faults",
        [VIRTIO_BALLOON_S_MINFLT] = "stat-minor-faults",
        [VIRTIO_BALLOON_S_MEMFREE] = "stat-free-memory",
        [VIRTIO_BALLOON_S_MEMTOT] = "stat-total-memory",
        [VIRTIO_BALLOON_S_AVAIL] = "stat-available-memory",
        [VIRTIO_BALLOON_S_CACHES] = "stat-disk-caches",
        [VIRTIO_BALLOON_S_HTLB_PGALLOC] = "stat-htlb-pgalloc",
        [VIRTIO_BALLOON_S_HTLB_PGFAIL] = "stat-htlb-pgfail",
    };

    g_assert(tag < VIRTIO_BALLOON_S_NR);
    return names[tag];
}

void virtio_balloon_set_target(Device *dev, uint64_t target)
{
    VirtioBalloon *b = virtio_balloon_from_dev(dev);
    uint64_t ram = b->vdev.mem->ram_size;

    g_assert(target > 0);
    virtio_device_lock(&b->vdev);
    b->num_pages = (ram - MIN(target, ram)) >> VIRTIO_BALLOON_PFN_SHIFT;
    virtio_notify_config(&b->vdev);
    virtio_device_unlock(&b->vdev);
}

void virtio_balloon_get_info(Device *dev, VirtioBalloonInfo *info)
{
    VirtioBalloon *b = virtio_balloon_from_dev(dev);
    uint64_t ram = b->vdev.mem->ram_size;

    virtio_device_lock(&b->vdev);
    info->ram_size = ram;
    info->target = ram - MIN((uint64_t)b->num_pages << VIRTIO_BALLOON_PFN_SHIFT, ram);
    info->actual = ram - MIN((uint64_t)b->actual << VIRTIO_BALLOON_PFN_SHIFT, ram);
    info->released = b->released << VIRTIO_BALLOON_PFN_SHIFT;
    for (unsigned i = 0; i < VIRTIO_BALLOON_S_NR; i++)
        info->stats[i] = b->stats_valid & (1u << i) ? b->stats[i] : UINT64_MAX;
    info->stats_updated = b->stats_updated;
    info->stats_interval = b->stats_interval;
    virtio_device_unlock(&b->vdev);
}

void virtio_balloon_set_change_fn(Device *dev, VirtioBalloonChangeFn fn, void *opaque)
{
    VirtioBalloon *b = virtio_balloon_from_dev(dev);

    virtio_device_lock(&b->vdev);
    b->change_fn = fn;
    b->change_opaque = opaque;
    virtio_device_unlock(&b->vdev);
}

/* --- creation --- */

static gboolean virtio_balloon_parse_bool(const char *key, const char *str, gboolean *out,
                                          GError **error)
{
    if (g_strcmp0(str, "on") == 0) {
        *out = TRUE;
        return TRUE;
    }
    if (g_strcmp0(str, "off") == 0) {
        *out = FALSE;
        return TRUE;
    }
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                "%s: %s=%s: expected on or off", virtio_balloon_type.name, key, str);
    return FALSE;
}

static Device *virtio_balloon_create(const DeviceEnv *env, const char *options, GError **error)
{
    static const char *const known[] = { "deflate-on-oom", "stats-interval", NULL };
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    const char *oom, *interval;
    gboolean deflate_on_oom = FALSE;
    uint64_t seconds = 0;
    VirtioBalloon *b;

    if (!opts || !device_options_check_known(opts, known, virtio_balloon_type.name, error))
        return NULL;
    oom = g_hash_table_lookup(opts, "deflate-on-oom");
    interval = g_hash_table_lookup(opts, "stats-interval");
    if (oom && !virtio_balloon_parse_bool("deflate-on-oom", oom, &deflate_on_oom, error))
        return NULL;
    if (interval) {
        char *end = NULL;

        errno = 0;
        seconds = g_ascii_strtoull(interval, &end, 10);
        if (end == interval || *end || errno || !g_ascii_isdigit(*interval) ||
            seconds > BALLOON_MAX_INTERVAL) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "%s: stats-interval=%s: expected seconds from 0 to %d",
                        virtio_balloon_type.name, interval, BALLOON_MAX_INTERVAL);
            return NULL;
        }
    }
    if (seconds && !env->timers) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: stats-interval needs timers", virtio_balloon_type.name);
        return NULL;
    }
    if (!env->mem) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s needs guest memory", virtio_balloon_type.name);
        return NULL;
    }

    b = g_new0(VirtioBalloon, 1);
    virtio_device_init(&b->vdev, &virtio_balloon_ops, env,
                       VIRTIO_BIT(VIRTIO_BALLOON_F_STATS_VQ) |
                       (deflate_on_oom ? VIRTIO_BIT(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) : 0),
                       VIRTIO_BALLOON_CONFIG_SIZE);
    virtio_device_add_queue(&b->vdev, BALLOON_QUEUE_SIZE);
    virtio_device_add_queue(&b->vdev, BALLOON_QUEUE_SIZE);
    virtio_device_add_queue(&b->vdev, BALLOON_QUEUE_SIZE);
    b->elem = virtq_element_new(b->vdev.queues[0].vq);
    b->deflate_on_oom = deflate_on_oom;
    b->stats_interval = seconds;
    for (unsigned i = 0; i < env->mem->nr_regions; i++)
        b->nr_pages += env->mem->regions[i].size / VIRTIO_BALLOON_PAGE_SIZE;
    b->bitmap = g_malloc0(virtio_balloon_bitmap_size(b));
    /* Whole host pages only: on x86 they are the balloon's 4 KiB. */
    b->can_release = sysconf(_SC_PAGESIZE) == VIRTIO_BALLOON_PAGE_SIZE;
    if (seconds)
        b->stats_timer = timer_new(env->timers, virtio_balloon_stats_timer, b);
    return virtio_pci_device_new(&virtio_balloon_type, env, &b->vdev, error);
}
