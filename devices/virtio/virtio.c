/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The transport-independent part of a virtio device (virtio 1.2, 2-3):
 * device status, feature negotiation, the queues and the registers the
 * driver writes to set them up, config_generation, DEVICE_NEEDS_RESET and
 * the common state fields. The contract is in include/vireo/virtio.h.
 *
 * Everything the driver writes is checked here once, so transports only
 * decode their registers and device types only see a driver that got as
 * far as DRIVER_OK with features they offered.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "vireo/util.h"
#include "vireo/virtio.h"

/* Bits of the status the driver sets; NEEDS_RESET is the device's. */
#define VIRTIO_STATUS_DRIVER_BITS                                                    \
    (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |    \
     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_FAILED)

void virtio_device_init(VirtioDevice *vdev, const VirtioDeviceOps *ops, const DeviceEnv *env,
                        uint64_t features, uint32_t config_size)
{
    g_assert(ops->queue_notify && ops->free);
    g_assert(config_size <= VIRTIO_MAX_CONFIG_SIZE);
    vdev->ops = ops;
    vdev->id = g_strdup(env->id ? env->id : "virtio");
    vdev->mem = env->mem;
    vdev->loop = env->loop;
    vdev->timers = env->timers;
    vdev->host_features = features | VIRTIO_TRANSPORT_FEATURES;
    vdev->config_size = config_size;
}

unsigned virtio_device_add_queue(VirtioDevice *vdev, uint16_t max_size)
{
    unsigned i = vdev->nr_queues;
    g_autofree char *name = g_strdup_printf("%s/%u", vdev->id, i);
    VirtioQueue *q;

    /* Queues are fixed once a transport has them (their addresses are doorbell opaques). */
    g_assert(!vdev->transport && i < VIRTIO_MAX_QUEUES && vdev->mem);
    vdev->queues = g_renew(VirtioQueue, vdev->queues, i + 1);
    q = &vdev->queues[i];
    *q = (VirtioQueue){ .vdev = vdev, .index = i };
    q->vq = virtq_new(vdev->mem, name, max_size);
    q->regs.size = max_size;
    vdev->nr_queues++;
    return i;
}

void virtio_device_attach(VirtioDevice *vdev, VirtioTransport *transport, GMutex *lock)
{
    g_assert(!vdev->transport && vdev->nr_queues > 0);
    vdev->transport = transport;
    vdev->lock = lock;
}

void virtio_device_free(VirtioDevice *vdev)
{
    for (unsigned i = 0; i < vdev->nr_queues; i++)
        virtq_free(vdev->queues[i].vq);
    g_free(vdev->queues);
    vdev->queues = NULL;
    vdev->nr_queues = 0;
    g_clear_pointer(&vdev->id, g_free);
    vdev->ops->free(vdev);
}

/* --- notifications --- */

void virtio_notify_queue(VirtioDevice *vdev, unsigned index)
{
    g_assert(index < vdev->nr_queues);
    /* Nothing before DRIVER_OK (2.1.2); needs_notification() also consumes the event. */
    if (!(vdev->status & VIRTIO_STATUS_DRIVER_OK))
        return;
    if (virtq_needs_notification(vdev->queues[index].vq))
        vdev->transport->ops->notify_queue(vdev->transport, index);
}

void virtio_notify_config(VirtioDevice *vdev)
{
    vdev->config_changed = TRUE;
    if (vdev->status & VIRTIO_STATUS_DRIVER_OK)
        vdev->transport->ops->notify_config(vdev->transport);
}

void virtio_set_needs_reset(VirtioDevice *vdev, const char *why)
{
    if (why) {
        static RateLimit rl;
        int suppressed;

        if (ratelimit_allow(&rl, &suppressed))
            g_warning("%s: device needs a reset: %s", vdev->id, why);
    }
    if (vdev->status & VIRTIO_STATUS_NEEDS_RESET)
        return;
    vdev->status |= VIRTIO_STATUS_NEEDS_RESET;
    if (vdev->status & VIRTIO_STATUS_DRIVER_OK)
        vdev->transport->ops->notify_config(vdev->transport);
}

/* --- features and status --- */

static uint32_t virtio_feature_word(uint64_t features, uint32_t select)
{
    return select < 2 ? (uint32_t)(features >> (32 * select)) : 0;
}

uint32_t virtio_get_device_features(const VirtioDevice *vdev, uint32_t select)
{
    return virtio_feature_word(vdev->host_features, select);
}

uint32_t virtio_get_driver_features(const VirtioDevice *vdev, uint32_t select)
{
    return virtio_feature_word(vdev->driver_features & vdev->host_features, select);
}

void virtio_set_driver_features(VirtioDevice *vdev, uint32_t select, uint32_t value)
{
    if (vdev->status & VIRTIO_STATUS_FEATURES_OK) {
        vireo_guest_warn("%s: driver features written after FEATURES_OK; ignored", vdev->id);
        return;
    }
    if (select >= 2) {
        if (value)
            vireo_guest_warn("%s: driver accepts feature bits 0x%x above bit 63; ignored",
                             vdev->id, value);
        return;
    }
    vdev->driver_features &= ~(0xffffffffULL << (32 * select));
    vdev->driver_features |= (uint64_t)value << (32 * select);
}

/* Whether the driver's accepted features can stand (2.2.2); says why not. */
static gboolean virtio_features_acceptable(VirtioDevice *vdev)
{
    uint64_t f = vdev->driver_features;

    if (f & ~vdev->host_features) {
        vireo_guest_warn("%s: FEATURES_OK refused: the driver accepts bits 0x%" PRIx64
                         " that were not offered", vdev->id, f & ~vdev->host_features);
        return FALSE;
    }
    if (!(f & VIRTIO_BIT(VIRTIO_F_VERSION_1))) {
        vireo_guest_warn("%s: FEATURES_OK refused: VIRTIO_F_VERSION_1 not accepted (a legacy "
                         "driver; this device is modern only)", vdev->id);
        return FALSE;
    }
    if (vdev->ops->validate_features && !vdev->ops->validate_features(vdev, f)) {
        vireo_guest_warn("%s: FEATURES_OK refused: the device rejects features 0x%" PRIx64,
                         vdev->id, f);
        return FALSE;
    }
    return TRUE;
}

/* DRIVER_OK: the device may run; queue work goes through the loop. */
static void virtio_activate(VirtioDevice *vdev)
{
    if (vdev->ops->activate)
        vdev->ops->activate(vdev);
    for (unsigned i = 0; i < vdev->nr_queues; i++) {
        if (virtq_is_enabled(vdev->queues[i].vq))
            event_loop_call(vdev->loop, virtio_queue_kick, &vdev->queues[i]);
    }
    /* A queue that failed to enable earlier: the driver hears of it now (2.1.2). */
    if (vdev->status & VIRTIO_STATUS_NEEDS_RESET)
        vdev->transport->ops->notify_config(vdev->transport);
}

void virtio_set_status(VirtioDevice *vdev, uint8_t value)
{
    uint8_t old = vdev->status;
    uint8_t want = value & VIRTIO_STATUS_DRIVER_BITS;
    uint8_t status = old | want;

    g_assert(value != 0);
    if (value & ~(VIRTIO_STATUS_DRIVER_BITS | VIRTIO_STATUS_NEEDS_RESET))
        vireo_guest_warn("%s: status 0x%02x has bits this device does not know", vdev->id,
                         value);
    /* The driver must not clear bits (2.1.1): they stay, as after any other write. */
    if (old & VIRTIO_STATUS_DRIVER_BITS & ~want)
        vireo_guest_warn("%s: status 0x%02x would clear bits of 0x%02x; they stay set",
                         vdev->id, value, old);
    if ((want & ~old & VIRTIO_STATUS_FEATURES_OK)) {
        if (virtio_features_acceptable(vdev))
            vdev->features = vdev->driver_features;
        else
            status &= ~VIRTIO_STATUS_FEATURES_OK;
    }
    if ((want & ~old & VIRTIO_STATUS_DRIVER_OK) && !(status & VIRTIO_STATUS_FEATURES_OK)) {
        vireo_guest_warn("%s: DRIVER_OK before FEATURES_OK; ignored", vdev->id);
        status &= ~VIRTIO_STATUS_DRIVER_OK;
    }
    vdev->status = status;
    if (status & ~old & VIRTIO_STATUS_DRIVER_OK)
        virtio_activate(vdev);
}

void virtio_device_reset(VirtioDevice *vdev)
{
    if (vdev->ops->reset)
        vdev->ops->reset(vdev);
    for (unsigned i = 0; i < vdev->nr_queues; i++) {
        VirtioQueue *q = &vdev->queues[i];

        virtq_reset(q->vq);
        q->regs = (VirtqConfig){ .size = virtq_get_max_size(q->vq) };
    }
    vdev->status = 0;
    vdev->features = 0;
    vdev->driver_features = 0;
    vdev->config_generation = 0;
    vdev->config_changed = FALSE;
}

/* --- queues --- */

/* The queue the driver may still configure, or NULL after a warning. */
static VirtioQueue *virtio_queue_for_setup(VirtioDevice *vdev, unsigned index, const char *what)
{
    VirtioQueue *q;

    if (index >= vdev->nr_queues) {
        vireo_guest_warn("%s: %s of queue %u, which does not exist", vdev->id, what, index);
        return NULL;
    }
    q = &vdev->queues[index];
    if (virtq_is_enabled(q->vq)) {
        vireo_guest_warn("%s: %s of queue %u while it is enabled; ignored", vdev->id, what,
                         index);
        return NULL;
    }
    return q;
}

void virtio_queue_set_size(VirtioDevice *vdev, unsigned index, uint16_t size)
{
    VirtioQueue *q = virtio_queue_for_setup(vdev, index, "size");

    if (!q)
        return;
    /* The register must only ever show 0 or a power of two (4.1.4.3.1). */
    if (size == 0 || (size & (size - 1)) || size > virtq_get_max_size(q->vq)) {
        vireo_guest_warn("%s: queue %u size %u is not a power of two from 1 to %u; ignored",
                         vdev->id, index, size, virtq_get_max_size(q->vq));
        return;
    }
    q->regs.size = size;
}

void virtio_queue_set_desc(VirtioDevice *vdev, unsigned index, uint64_t addr)
{
    VirtioQueue *q = virtio_queue_for_setup(vdev, index, "descriptor area");

    if (q)
        q->regs.desc_addr = addr;
}

void virtio_queue_set_driver(VirtioDevice *vdev, unsigned index, uint64_t addr)
{
    VirtioQueue *q = virtio_queue_for_setup(vdev, index, "driver area");

    if (q)
        q->regs.avail_addr = addr;
}

void virtio_queue_set_device(VirtioDevice *vdev, unsigned index, uint64_t addr)
{
    VirtioQueue *q = virtio_queue_for_setup(vdev, index, "device area");

    if (q)
        q->regs.used_addr = addr;
}

void virtio_queue_enable(VirtioDevice *vdev, unsigned index)
{
    VirtioQueue *q = virtio_queue_for_setup(vdev, index, "enable");
    VirtqConfig cfg;

    if (!q)
        return;
    /* Before FEATURES_OK features is 0, and virtq_enable() refuses a non-VERSION_1 ring. */
    cfg = q->regs;
    cfg.features = vdev->features;
    if (!virtq_enable(q->vq, &cfg))
        virtio_set_needs_reset(vdev, NULL);     /* virtq_enable() said why */
}

gboolean virtio_queue_is_enabled(const VirtioDevice *vdev, unsigned index)
{
    return index < vdev->nr_queues && virtq_is_enabled(vdev->queues[index].vq);
}

void virtio_queue_kick(void *opaque)
{
    VirtioQueue *q = opaque;
    VirtioDevice *vdev = q->vdev;

    virtio_device_lock(vdev);
    if ((vdev->status & VIRTIO_STATUS_DRIVER_OK) && virtq_is_enabled(q->vq)) {
        vdev->ops->queue_notify(vdev, q->index);
        /* A device that popped -1 and said nothing still gets the driver told. */
        if (virtq_is_broken(q->vq))
            virtio_set_needs_reset(vdev, NULL);
    }
    virtio_device_unlock(vdev);
}

/* --- configuration space --- */

static gboolean virtio_config_in_range(const VirtioDevice *vdev, uint32_t off, size_t len)
{
    return off < vdev->config_size && len <= vdev->config_size - off;
}

void virtio_config_read(VirtioDevice *vdev, uint32_t off, void *buf, size_t len)
{
    /*
     * The generation moves when the driver reads a changed configuration,
     * not when it changes: 256 changes between two reads cannot wrap it
     * back to the value the driver saw (the spec's note in 4.1.4.3.1).
     */
    if (vdev->config_changed) {
        vdev->config_generation++;
        vdev->config_changed = FALSE;
    }
    memset(buf, 0, len);
    if (!virtio_config_in_range(vdev, off, len)) {
        vireo_guest_warn("%s: configuration read of %zu bytes at 0x%x, beyond its %u bytes",
                         vdev->id, len, off, vdev->config_size);
        return;
    }
    if (vdev->ops->config_read)
        vdev->ops->config_read(vdev, off, buf, len);
}

void virtio_config_write(VirtioDevice *vdev, uint32_t off, const void *buf, size_t len)
{
    if (!virtio_config_in_range(vdev, off, len) || !vdev->ops->config_write) {
        vireo_guest_warn("%s: configuration write of %zu bytes at 0x%x: not writable",
                         vdev->id, len, off);
        return;
    }
    vdev->ops->config_write(vdev, off, buf, len);
}

/* --- state --- */

#define VIRTIO_FIELD_LEN 32

static const char *virtio_queue_field(char *buf, unsigned index, const char *name)
{
    g_snprintf(buf, VIRTIO_FIELD_LEN, "q%u-%s", index, name);
    return buf;
}

gboolean virtio_device_save(VirtioDevice *vdev, StateWriter *w, GError **error)
{
    char f[VIRTIO_FIELD_LEN];

    if (!vdev->ops->save || !vdev->ops->load) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                    "%s: this virtio device cannot migrate", vdev->id);
        return FALSE;
    }
    if (vdev->ops->drain)
        vdev->ops->drain(vdev);
    state_write_u8(w, "virtio-status", vdev->status);
    state_write_u8(w, "virtio-generation", vdev->config_generation);
    state_write_u8(w, "virtio-config-changed", vdev->config_changed);
    state_write_u64(w, "virtio-driver-features", vdev->driver_features);
    state_write_u64(w, "virtio-features", vdev->features);
    state_write_u32(w, "virtio-queues", vdev->nr_queues);
    for (unsigned i = 0; i < vdev->nr_queues; i++) {
        const VirtioQueue *q = &vdev->queues[i];
        char prefix[VIRTIO_FIELD_LEN];

        state_write_u16(w, virtio_queue_field(f, i, "reg-size"), q->regs.size);
        state_write_u64(w, virtio_queue_field(f, i, "reg-desc"), q->regs.desc_addr);
        state_write_u64(w, virtio_queue_field(f, i, "reg-driver"), q->regs.avail_addr);
        state_write_u64(w, virtio_queue_field(f, i, "reg-device"), q->regs.used_addr);
        g_snprintf(prefix, sizeof(prefix), "q%u-", i);
        virtq_save(q->vq, w, prefix);
    }
    return vdev->ops->save(vdev, w, error);
}

static gboolean G_GNUC_PRINTF(3, 4) virtio_state_error(VirtioDevice *vdev, GError **error,
                                                       const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE, "virtio: %s", msg);
    return FALSE;
}

gboolean virtio_device_load(VirtioDevice *vdev, StateReader *r, GError **error)
{
    char f[VIRTIO_FIELD_LEN];
    uint8_t status, generation, changed;
    uint64_t driver_features, features;
    uint32_t nr_queues;

    if (!vdev->ops->save || !vdev->ops->load) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                    "%s: this virtio device cannot migrate", vdev->id);
        return FALSE;
    }
    if (!state_read_u8(r, "virtio-status", &status, error) ||
        !state_read_u8(r, "virtio-generation", &generation, error) ||
        !state_read_u8(r, "virtio-config-changed", &changed, error) ||
        !state_read_u64(r, "virtio-driver-features", &driver_features, error) ||
        !state_read_u64(r, "virtio-features", &features, error) ||
        !state_read_u32(r, "virtio-queues", &nr_queues, error))
        return FALSE;
    if (status & ~(VIRTIO_STATUS_DRIVER_BITS | VIRTIO_STATUS_NEEDS_RESET))
        return virtio_state_error(vdev, error, "status 0x%02x has unknown bits", status);
    if ((status & VIRTIO_STATUS_DRIVER_OK) && !(status & VIRTIO_STATUS_FEATURES_OK))
        return virtio_state_error(vdev, error, "status 0x%02x: DRIVER_OK without FEATURES_OK",
                                  status);
    if (changed > 1)
        return virtio_state_error(vdev, error, "config-changed flag %u", changed);
    if (status & VIRTIO_STATUS_FEATURES_OK) {
        if (features != driver_features || (features & ~vdev->host_features) ||
            !(features & VIRTIO_BIT(VIRTIO_F_VERSION_1)))
            return virtio_state_error(vdev, error, "negotiated features 0x%" PRIx64
                                      " (driver 0x%" PRIx64 ") do not fit the offered 0x%"
                                      PRIx64, features, driver_features, vdev->host_features);
    } else if (features) {
        return virtio_state_error(vdev, error, "features 0x%" PRIx64 " without FEATURES_OK",
                                  features);
    }
    if (nr_queues != vdev->nr_queues)
        return virtio_state_error(vdev, error, "%u queues saved, the device has %u", nr_queues,
                                  vdev->nr_queues);

    vdev->status = status;
    vdev->config_generation = generation;
    vdev->config_changed = changed;
    vdev->driver_features = driver_features;
    vdev->features = features;
    for (unsigned i = 0; i < vdev->nr_queues; i++) {
        VirtioQueue *q = &vdev->queues[i];
        char prefix[VIRTIO_FIELD_LEN];
        VirtqConfig regs = { 0 };
        uint16_t max = virtq_get_max_size(q->vq);

        if (!state_read_u16(r, virtio_queue_field(f, i, "reg-size"), &regs.size, error) ||
            !state_read_u64(r, virtio_queue_field(f, i, "reg-desc"), &regs.desc_addr, error) ||
            !state_read_u64(r, virtio_queue_field(f, i, "reg-driver"), &regs.avail_addr,
                            error) ||
            !state_read_u64(r, virtio_queue_field(f, i, "reg-device"), &regs.used_addr, error))
            return FALSE;
        if (regs.size == 0 || (regs.size & (regs.size - 1)) || regs.size > max)
            return virtio_state_error(vdev, error, "queue %u size %u (maximum %u)", i,
                                      regs.size, max);
        g_snprintf(prefix, sizeof(prefix), "q%u-", i);
        if (!virtq_load(q->vq, r, prefix, error))
            return FALSE;
        if (virtq_is_enabled(q->vq) && !(status & VIRTIO_STATUS_FEATURES_OK))
            return virtio_state_error(vdev, error, "queue %u enabled before FEATURES_OK", i);
        q->regs = regs;
    }
    return vdev->ops->load(vdev, r, error);
}

void virtio_device_loaded(VirtioDevice *vdev)
{
    /*
     * A doorbell that rang on the source after its last loop pass is in
     * no saved state: one spurious kick per queue covers it.
     */
    if (!(vdev->status & VIRTIO_STATUS_DRIVER_OK))
        return;
    for (unsigned i = 0; i < vdev->nr_queues; i++) {
        if (virtq_is_enabled(vdev->queues[i].vq))
            event_loop_call(vdev->loop, virtio_queue_kick, &vdev->queues[i]);
    }
}
