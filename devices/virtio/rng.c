/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-rng, the entropy device (virtio 1.2, 5.4): one request queue, no
 * feature bits, no configuration space. Every device-writable buffer the
 * driver makes available is filled with bytes from the host's getrandom(2)
 * (the kernel's CSPRNG, which never runs dry once seeded) straight into
 * guest memory.
 *
 * Options:
 *   max-bytes=N   at most N bytes per period for the guest (a size, with an
 *                 optional K/M/G suffix); default: unlimited
 *   period=MS     the period in milliseconds (default 1000); only with
 *                 max-bytes
 *
 * Unlimited by default, as in QEMU and libvirt: getrandom costs the host
 * only the CPU time of the VM's own event loop, which a guest can use up
 * anyway. A period starts with the first request after the previous one
 * ended; once its quota is spent, requests wait in the ring (the device
 * does not even look at them) until the period ends.
 *
 * Requests are served on the event loop thread, at most 64 KiB each (the
 * spec lets the device use less than the whole buffer) and at most
 * RNG_BUDGET per pass, the rest in a later pass, so that a guest cannot
 * hold the loop (and every other device on it) for long.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/random.h>

#include "vireo/util.h"
#include "vireo/virtio-pci.h"

#define RNG_QUEUE_SIZE 64
#define RNG_MAX_REQUEST (64 * 1024)
#define RNG_BUDGET 32                   /* requests (up to 2 MiB) per pass of the loop */
#define RNG_DEFAULT_PERIOD_MS 1000
#define RNG_MAX_PERIOD_MS (24 * 3600 * 1000ULL)
#define RNG_NS_PER_MS 1000000LL

typedef struct VirtioRng {
    VirtioDevice vdev;                  /* first: the transport holds &vdev */
    uint64_t max_bytes;                 /* per period; 0: unlimited */
    int64_t period_ns;
    Timer *timer;                       /* when rate-limited */
    VirtqElement *elem;
    /* Rate limit state (under the lock). */
    uint64_t quota;                     /* bytes left in this period */
    int64_t period_end;                 /* 0: no period running */
    gboolean waiting;                   /* quota spent, timer armed */
} VirtioRng;

static VirtioRng *virtio_rng_from_vdev(VirtioDevice *vdev)
{
    return (VirtioRng *)vdev;
}

/*
 * Fills up to @want bytes of @elem's device-writable buffers with host
 * randomness; returns how many were filled.
 */
static size_t virtio_rng_fill(VirtioRng *rng, const VirtqElement *elem, size_t want)
{
    size_t done = 0;

    for (unsigned i = 0; i < elem->in_num && done < want; i++) {
        uint8_t *p = elem->in_sg[i].iov_base;
        size_t len = MIN(elem->in_sg[i].iov_len, want - done);
        size_t got = 0;

        while (got < len) {
            ssize_t n = getrandom(p + got, len - got, 0);

            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                int saved = errno;
                static RateLimit rl;
                int suppressed;

                if (ratelimit_allow(&rl, &suppressed))
                    g_warning("%s: getrandom: %s", rng->vdev.id, g_strerror(saved));
                return done + got;
            }
            got += n;
        }
        done += got;
    }
    return done;
}

/* How many bytes the request just taken may have, starting a new period if one is due. */
static uint64_t virtio_rng_allowance(VirtioRng *rng)
{
    int64_t now;

    if (!rng->max_bytes)
        return RNG_MAX_REQUEST;
    now = timer_service_now(rng->vdev.timers);
    if (!rng->period_end || now >= rng->period_end) {
        rng->period_end = now + rng->period_ns;
        rng->quota = rng->max_bytes;
    }
    return MIN(rng->quota, (uint64_t)RNG_MAX_REQUEST);
}

static void virtio_rng_serve_later(void *opaque);

/* Serves what the driver made available; loop thread, lock held. */
static void virtio_rng_serve(VirtioRng *rng)
{
    VirtQueue *vq = rng->vdev.queues[0].vq;
    unsigned served = 0;
    int r = 0;

    if (rng->waiting)
        return;                         /* the timer will come */
    do {
        virtq_disable_notification(vq);
        for (;;) {
            uint64_t allowed;
            size_t n;

            if (served == RNG_BUDGET) {
                event_loop_call(rng->vdev.loop, virtio_rng_serve_later, rng);
                goto out;
            }
            r = virtq_pop(vq, rng->elem);
            if (r != 1)
                break;
            allowed = virtio_rng_allowance(rng);
            if (!allowed) {
                /* Back in the ring; notifications stay off: the timer serves it. */
                virtq_unpop(vq, rng->elem);
                rng->waiting = TRUE;
                timer_arm(rng->timer, rng->period_end);
                goto out;
            }
            /* Driver-readable buffers carry nothing for us (5.4.6.1); they are skipped. */
            n = virtio_rng_fill(rng, rng->elem, MIN((uint64_t)rng->elem->in_len, allowed));
            if (rng->max_bytes)
                rng->quota -= n;
            virtq_push(vq, rng->elem, n);
            served++;
        }
    } while (r == 0 && virtq_enable_notification(vq));
    if (r < 0)
        virtio_set_needs_reset(&rng->vdev, NULL);       /* virtq_pop() said why */
out:
    if (served)
        virtio_notify_queue(&rng->vdev, 0);
}

/* The rest of a long pass, or the end of a rate-limit period: loop thread, no lock. */
static void virtio_rng_serve_later(void *opaque)
{
    VirtioRng *rng = opaque;

    virtio_device_lock(&rng->vdev);
    if ((rng->vdev.status & VIRTIO_STATUS_DRIVER_OK) && virtq_is_enabled(rng->vdev.queues[0].vq))
        virtio_rng_serve(rng);
    virtio_device_unlock(&rng->vdev);
}

static void virtio_rng_timer(void *opaque)
{
    VirtioRng *rng = opaque;

    virtio_device_lock(&rng->vdev);
    rng->waiting = FALSE;
    virtio_device_unlock(&rng->vdev);
    virtio_rng_serve_later(rng);
}

static void virtio_rng_queue_notify(VirtioDevice *vdev, unsigned index)
{
    virtio_rng_serve(virtio_rng_from_vdev(vdev));
}

static void virtio_rng_reset(VirtioDevice *vdev)
{
    VirtioRng *rng = virtio_rng_from_vdev(vdev);

    if (rng->timer)
        timer_cancel(rng->timer);
    rng->waiting = FALSE;
    rng->period_end = 0;
    rng->quota = 0;
}

/*
 * The rate limit as time left in the period, so that it means the same
 * on a host whose monotonic clock reads differently.
 */
static gboolean virtio_rng_save(VirtioDevice *vdev, StateWriter *w, GError **error)
{
    VirtioRng *rng = virtio_rng_from_vdev(vdev);
    int64_t left = 0;

    if (rng->max_bytes && rng->period_end)
        left = MAX(rng->period_end - timer_service_now(vdev->timers), 0);
    state_write_u64(w, "rng-quota", left ? rng->quota : 0);
    state_write_u64(w, "rng-period-left-ns", left);
    state_write_u8(w, "rng-waiting", rng->waiting);
    return TRUE;
}

static gboolean virtio_rng_load(VirtioDevice *vdev, StateReader *r, GError **error)
{
    VirtioRng *rng = virtio_rng_from_vdev(vdev);
    uint64_t quota, left;
    uint8_t waiting;

    if (!state_read_u64(r, "rng-quota", &quota, error) ||
        !state_read_u64(r, "rng-period-left-ns", &left, error) ||
        !state_read_u8(r, "rng-waiting", &waiting, error))
        return FALSE;
    if (waiting > 1 || left > RNG_MAX_PERIOD_MS * RNG_NS_PER_MS || (waiting && !left)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "virtio-rng: rate limit state out of range (%" PRIu64 " bytes, %" PRIu64
                    " ns left, waiting %u)", quota, left, waiting);
        return FALSE;
    }
    virtio_rng_reset(vdev);
    /* This device's own limit rules: a source with another one only lends its period's progress. */
    if (!rng->max_bytes || !left)
        return TRUE;
    rng->period_end = timer_service_now(vdev->timers) + MIN((int64_t)left, rng->period_ns);
    rng->quota = MIN(quota, rng->max_bytes);
    if (waiting || !rng->quota) {
        rng->waiting = TRUE;
        timer_arm(rng->timer, rng->period_end);
    }
    return TRUE;
}

static void virtio_rng_free(VirtioDevice *vdev)
{
    VirtioRng *rng = virtio_rng_from_vdev(vdev);

    /* Waits for a running callback, which needs the lock: not held here. */
    timer_free(rng->timer);
    virtq_element_free(rng->elem);
    g_free(rng);
}

static const VirtioDeviceOps virtio_rng_ops = {
    .device_id = VIRTIO_ID_RNG,
    .queue_notify = virtio_rng_queue_notify,
    .reset = virtio_rng_reset,
    .save = virtio_rng_save,
    .load = virtio_rng_load,
    .free = virtio_rng_free,
};

static Device *virtio_rng_create(const DeviceEnv *env, const char *options, GError **error);

VIRTIO_PCI_DEVICE_TYPE(virtio_rng_type, "virtio-rng",
                       "virtio entropy source from the host's getrandom(2) "
                       "(max-bytes=N,period=MS)", virtio_rng_create)

/* A number with an optional binary suffix (K, M, G), at least 1 and at most @max. */
static gboolean virtio_rng_parse(const char *key, const char *str, gboolean suffix, uint64_t max,
                                 uint64_t *out, GError **error)
{
    uint64_t v, mult = 1;
    char *end = NULL;

    errno = 0;
    v = g_ascii_strtoull(str, &end, 10);
    if (end == str || errno || *str == '-' || *str == '+')
        goto bad;
    if (suffix) {
        switch (*end) {
        case 'k': case 'K': mult = 1ULL << 10; end++; break;
        case 'm': case 'M': mult = 1ULL << 20; end++; break;
        case 'g': case 'G': mult = 1ULL << 30; end++; break;
        default: break;
        }
    }
    if (*end || v == 0 || v > max / mult)
        goto bad;
    *out = v * mult;
    return TRUE;

bad:
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                "%s: %s=%s: expected a number from 1 to %" PRIu64 "%s", virtio_rng_type.name,
                key, str, max, suffix ? " (K, M or G may follow)" : "");
    return FALSE;
}

static Device *virtio_rng_create(const DeviceEnv *env, const char *options, GError **error)
{
    static const char *const known[] = { "max-bytes", "period", NULL };
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    const char *max_bytes, *period;
    uint64_t max = 0, period_ms = RNG_DEFAULT_PERIOD_MS;
    VirtioRng *rng;

    if (!opts || !device_options_check_known(opts, known, virtio_rng_type.name, error))
        return NULL;
    max_bytes = g_hash_table_lookup(opts, "max-bytes");
    period = g_hash_table_lookup(opts, "period");
    if (max_bytes && !virtio_rng_parse("max-bytes", max_bytes, TRUE, G_MAXINT64, &max, error))
        return NULL;
    if (period && !virtio_rng_parse("period", period, FALSE, RNG_MAX_PERIOD_MS, &period_ms,
                                    error))
        return NULL;
    if (period && !max_bytes) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: period=%s limits nothing without max-bytes", virtio_rng_type.name,
                    period);
        return NULL;
    }
    if (max && !env->timers) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: max-bytes needs timers", virtio_rng_type.name);
        return NULL;
    }
    if (!env->mem) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s needs guest memory", virtio_rng_type.name);
        return NULL;
    }

    rng = g_new0(VirtioRng, 1);
    virtio_device_init(&rng->vdev, &virtio_rng_ops, env, 0, 0);
    virtio_device_add_queue(&rng->vdev, RNG_QUEUE_SIZE);
    rng->elem = virtq_element_new(rng->vdev.queues[0].vq);
    rng->max_bytes = max;
    rng->period_ns = (int64_t)period_ms * RNG_NS_PER_MS;
    if (max)
        rng->timer = timer_new(env->timers, virtio_rng_timer, rng);
    return virtio_pci_device_new(&virtio_rng_type, env, &rng->vdev, error);
}
