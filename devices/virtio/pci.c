/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The virtio-pci transport, modern interface (virtio 1.2, 4.1): the PCI
 * function around a VirtioDevice. Layout and behaviour are described in
 * include/vireo/virtio-pci.h.
 *
 * Learned from, not copied: Linux drivers/virtio/virtio_pci_modern*.c
 * (what a driver reads and in which order), QEMU hw/virtio/virtio-pci.c
 * and kvmtool virtio/pci.c.
 */
#include <inttypes.h>
#include <string.h>

#include "vireo/util.h"
#include "vireo/virtio-pci.h"

#define VIRTIO_PCI_STATE_VERSION 1
#define VIRTIO_PCI_REGION_SIZE 0x1000
#define VIRTIO_PCI_MSIX_MIN_BAR_SIZE 0x1000

typedef struct VirtioPciDevice {
    PciDevice pd;                       /* first: the Device the machine sees */
    VirtioTransport transport;
    VirtioDevice *vdev;                 /* owned */
    EventLoop *loop;
    IoEventService *ioevents;
    IoEvent **doorbells;                /* per queue, while BAR2 decodes */
    uint8_t cfg_cap;                    /* PCI configuration access capability */
    /* Transport registers (under pd.dev.lock). */
    uint32_t dfselect;
    uint32_t gfselect;
    uint16_t queue_select;
    uint16_t msix_config;
    uint16_t *queue_vector;
    uint8_t isr;
} VirtioPciDevice;

static VirtioPciDevice *virtio_pci_from_pd(PciDevice *pd)
{
    return (VirtioPciDevice *)pd;
}

static VirtioPciDevice *virtio_pci_from_dev(Device *dev)
{
    g_assert(dev->type->ops == &virtio_pci_device_ops);
    return (VirtioPciDevice *)dev;
}

VirtioDevice *virtio_pci_get_device(Device *dev)
{
    return virtio_pci_from_dev(dev)->vdev;
}

/* --- interrupts --- */

static void virtio_pci_update_intx(VirtioPciDevice *vp)
{
    /* With MSI-X on, the ISR is not signalled through INTx (4.1.4.5). */
    pci_set_intx(&vp->pd, vp->isr != 0 && !pci_msix_enabled(&vp->pd));
}

static void virtio_pci_notify_queue(VirtioTransport *t, unsigned index)
{
    VirtioPciDevice *vp = VIREO_CONTAINER_OF(t, VirtioPciDevice, transport);
    uint16_t vector = vp->queue_vector[index];

    if (pci_msix_enabled(&vp->pd)) {
        if (vector != VIRTIO_MSI_NO_VECTOR)
            pci_msix_notify(&vp->pd, vector);
        return;
    }
    vp->isr |= VIRTIO_PCI_ISR_QUEUE;
    virtio_pci_update_intx(vp);
}

static void virtio_pci_notify_config(VirtioTransport *t)
{
    VirtioPciDevice *vp = VIREO_CONTAINER_OF(t, VirtioPciDevice, transport);

    vp->isr |= VIRTIO_PCI_ISR_CONFIG;
    if (pci_msix_enabled(&vp->pd)) {
        if (vp->msix_config != VIRTIO_MSI_NO_VECTOR)
            pci_msix_notify(&vp->pd, vp->msix_config);
        return;
    }
    virtio_pci_update_intx(vp);
}

static const VirtioTransportOps virtio_pci_transport_ops = {
    .notify_queue = virtio_pci_notify_queue,
    .notify_config = virtio_pci_notify_config,
};

/* A vector the driver asks for, or NO_VECTOR when there is no such entry (4.1.5.1.2). */
static uint16_t virtio_pci_vector(VirtioPciDevice *vp, uint16_t vector)
{
    if (vector == VIRTIO_MSI_NO_VECTOR || vector < vp->pd.msix.nr_vectors)
        return vector;
    vireo_guest_warn("%s: MSI-X vector %u does not exist (%u vectors): NO_VECTOR",
                     vp->pd.dev.id, vector, vp->pd.msix.nr_vectors);
    return VIRTIO_MSI_NO_VECTOR;
}

/* --- reset --- */

/* The transport's registers at reset; every event unmapped (4.1.5.1.2.1). */
static void virtio_pci_reset_regs(VirtioPciDevice *vp)
{
    vp->dfselect = 0;
    vp->gfselect = 0;
    vp->queue_select = 0;
    vp->msix_config = VIRTIO_MSI_NO_VECTOR;
    for (unsigned i = 0; i < vp->vdev->nr_queues; i++)
        vp->queue_vector[i] = VIRTIO_MSI_NO_VECTOR;
    vp->isr = 0;
    virtio_pci_update_intx(vp);
}

/* --- common configuration --- */

/* The selected queue, or NULL when queue_select names none. */
static VirtioQueue *virtio_pci_queue(VirtioPciDevice *vp)
{
    return vp->queue_select < vp->vdev->nr_queues ? &vp->vdev->queues[vp->queue_select] : NULL;
}

/* Natural-width access to a field at @field of @width bytes (4.1.3.1)? */
static gboolean virtio_pci_field(uint64_t off, size_t len, uint64_t field, size_t width)
{
    return off == field && len == width;
}

/* A 64-bit queue address: lo, hi, or whole (off is relative to the lo half). */
static gboolean virtio_pci_addr_field(uint64_t off, size_t len, uint64_t lo)
{
    return (off == lo && (len == 4 || len == 8)) || (off == lo + 4 && len == 4);
}

static uint64_t virtio_pci_addr_get(uint64_t addr, uint64_t off, size_t len, uint64_t lo)
{
    if (len == 8)
        return addr;
    return off == lo ? (uint32_t)addr : addr >> 32;
}

static uint64_t virtio_pci_addr_merge(uint64_t addr, uint64_t off, size_t len, uint64_t lo,
                                      uint64_t v)
{
    if (len == 8)
        return v;
    if (off == lo)
        return (addr & ~0xffffffffULL) | (uint32_t)v;
    return (addr & 0xffffffffULL) | (v << 32);
}

static gboolean virtio_pci_common_read(VirtioPciDevice *vp, uint64_t off, size_t len,
                                       uint64_t *v)
{
    VirtioDevice *vdev = vp->vdev;
    VirtioQueue *q = virtio_pci_queue(vp);

    if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_DFSELECT, 4))
        *v = vp->dfselect;
    else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_DF, 4))
        *v = virtio_get_device_features(vdev, vp->dfselect);
    else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_GFSELECT, 4))
        *v = vp->gfselect;
    else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_GF, 4))
        *v = virtio_get_driver_features(vdev, vp->gfselect);
    else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_MSIX, 2))
        *v = vp->msix_config;
    else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_NUMQ, 2))
        *v = vdev->nr_queues;
    else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_STATUS, 1))
        *v = vdev->status;
    else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_CFGGENERATION, 1))
        *v = vdev->config_generation;
    else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_Q_SELECT, 2))
        *v = vp->queue_select;
    /* An unavailable queue: size 0 (4.1.4.3.1), no vector, the rest 0. */
    else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_Q_SIZE, 2))
        *v = q ? q->regs.size : 0;
    else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_Q_MSIX, 2))
        *v = q ? vp->queue_vector[q->index] : VIRTIO_MSI_NO_VECTOR;
    else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_Q_ENABLE, 2))
        *v = q ? virtq_is_enabled(q->vq) : 0;
    else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_Q_NOFF, 2))
        *v = q ? q->index : 0;
    else if (virtio_pci_addr_field(off, len, VIRTIO_PCI_COMMON_Q_DESCLO))
        *v = q ? virtio_pci_addr_get(q->regs.desc_addr, off, len, VIRTIO_PCI_COMMON_Q_DESCLO) : 0;
    else if (virtio_pci_addr_field(off, len, VIRTIO_PCI_COMMON_Q_AVAILLO))
        *v = q ? virtio_pci_addr_get(q->regs.avail_addr, off, len, VIRTIO_PCI_COMMON_Q_AVAILLO)
               : 0;
    else if (virtio_pci_addr_field(off, len, VIRTIO_PCI_COMMON_Q_USEDLO))
        *v = q ? virtio_pci_addr_get(q->regs.used_addr, off, len, VIRTIO_PCI_COMMON_Q_USEDLO) : 0;
    /* Fields of features not offered (NOTIF_CONFIG_DATA, RING_RESET) read 0. */
    else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_Q_NDATA, 2) ||
             virtio_pci_field(off, len, VIRTIO_PCI_COMMON_Q_RESET, 2))
        *v = 0;
    else
        return FALSE;
    return TRUE;
}

static void virtio_pci_write_status(VirtioPciDevice *vp, uint8_t status)
{
    if (status == 0) {
        virtio_pci_reset_regs(vp);
        virtio_device_reset(vp->vdev);
        return;
    }
    virtio_set_status(vp->vdev, status);
}

static gboolean virtio_pci_common_write(VirtioPciDevice *vp, uint64_t off, size_t len,
                                        uint64_t v)
{
    VirtioDevice *vdev = vp->vdev;
    VirtioQueue *q = virtio_pci_queue(vp);
    unsigned qi = q ? q->index : vp->queue_select;

    if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_DFSELECT, 4)) {
        vp->dfselect = v;
    } else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_GFSELECT, 4)) {
        vp->gfselect = v;
    } else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_GF, 4)) {
        virtio_set_driver_features(vdev, vp->gfselect, v);
    } else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_MSIX, 2)) {
        vp->msix_config = virtio_pci_vector(vp, v);
    } else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_STATUS, 1)) {
        virtio_pci_write_status(vp, v);
    } else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_Q_SELECT, 2)) {
        vp->queue_select = v;
    } else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_Q_SIZE, 2)) {
        virtio_queue_set_size(vdev, qi, v);
    } else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_Q_MSIX, 2)) {
        if (q)
            vp->queue_vector[qi] = virtio_pci_vector(vp, v);
        else
            vireo_guest_warn("%s: vector for queue %u, which does not exist", vdev->id, qi);
    } else if (virtio_pci_field(off, len, VIRTIO_PCI_COMMON_Q_ENABLE, 2)) {
        if (v == 1)
            virtio_queue_enable(vdev, qi);
        else
            vireo_guest_warn("%s: queue_enable = %" PRIu64 " for queue %u; only 1 is allowed "
                             "(no VIRTIO_F_RING_RESET)", vdev->id, v, qi);
    } else if (virtio_pci_addr_field(off, len, VIRTIO_PCI_COMMON_Q_DESCLO)) {
        virtio_queue_set_desc(vdev, qi, virtio_pci_addr_merge(q ? q->regs.desc_addr : 0, off,
                                                              len, VIRTIO_PCI_COMMON_Q_DESCLO, v));
    } else if (virtio_pci_addr_field(off, len, VIRTIO_PCI_COMMON_Q_AVAILLO)) {
        virtio_queue_set_driver(vdev, qi,
                                virtio_pci_addr_merge(q ? q->regs.avail_addr : 0, off, len,
                                                      VIRTIO_PCI_COMMON_Q_AVAILLO, v));
    } else if (virtio_pci_addr_field(off, len, VIRTIO_PCI_COMMON_Q_USEDLO)) {
        virtio_queue_set_device(vdev, qi,
                                virtio_pci_addr_merge(q ? q->regs.used_addr : 0, off, len,
                                                      VIRTIO_PCI_COMMON_Q_USEDLO, v));
    } else {
        return FALSE;
    }
    return TRUE;
}

/* --- BAR2: the virtio structures --- */

/* @peek: no side effects (the configuration access capability's reads). */
static void virtio_pci_regs_read(VirtioPciDevice *vp, uint64_t off, void *buf, size_t len,
                                 gboolean peek)
{
    uint64_t region = off / VIRTIO_PCI_REGION_SIZE * VIRTIO_PCI_REGION_SIZE;
    uint64_t roff = off - region;
    uint64_t v = 0;

    memset(buf, 0, len);
    if (roff + len > VIRTIO_PCI_REGION_SIZE)
        goto bad;                       /* straddles two structures */
    switch (region) {
    case VIRTIO_PCI_COMMON_OFFSET:
        if (!virtio_pci_common_read(vp, roff, len, &v))
            goto bad;
        vireo_le_store(buf, len, v);
        return;
    case VIRTIO_PCI_ISR_OFFSET:
        if (roff != 0)
            goto bad;
        /* Reading clears it and lowers INTx (4.1.4.5). */
        vireo_le_store(buf, len, vp->isr);
        if (!peek) {
            vp->isr = 0;
            virtio_pci_update_intx(vp);
        }
        return;
    case VIRTIO_PCI_DEVICE_OFFSET:
        virtio_config_read(vp->vdev, roff, buf, len);
        return;
    case VIRTIO_PCI_NOTIFY_OFFSET:
        return;                         /* write-only; reads 0 */
    default:
        break;
    }
bad:
    vireo_guest_warn("%s: read of %zu bytes at BAR%u offset 0x%" PRIx64 ": no such register",
                     vp->pd.dev.id, len, VIRTIO_PCI_REGS_BAR, off);
}

static void virtio_pci_notify_write(VirtioPciDevice *vp, uint64_t roff)
{
    uint64_t index = roff / VIRTIO_PCI_NOTIFY_MULTIPLIER;

    if (roff % VIRTIO_PCI_NOTIFY_MULTIPLIER || index >= vp->vdev->nr_queues) {
        vireo_guest_warn("%s: notification at 0x%" PRIx64 " names no queue", vp->pd.dev.id,
                         roff);
        return;
    }
    /*
     * No ioeventfd took this write (not registered yet, or a width KVM
     * does not match): the same work, on the loop thread, as from one.
     */
    event_loop_call(vp->loop, virtio_queue_kick, &vp->vdev->queues[index]);
}

static void virtio_pci_regs_write(VirtioPciDevice *vp, uint64_t off, const void *buf, size_t len)
{
    uint64_t region = off / VIRTIO_PCI_REGION_SIZE * VIRTIO_PCI_REGION_SIZE;
    uint64_t roff = off - region;

    if (roff + len > VIRTIO_PCI_REGION_SIZE)
        goto bad;
    switch (region) {
    case VIRTIO_PCI_COMMON_OFFSET:
        if (virtio_pci_common_write(vp, roff, len, vireo_le_load(buf, len)))
            return;
        break;
    case VIRTIO_PCI_DEVICE_OFFSET:
        virtio_config_write(vp->vdev, roff, buf, len);
        return;
    case VIRTIO_PCI_NOTIFY_OFFSET:
        virtio_pci_notify_write(vp, roff);
        return;
    default:
        break;                          /* the ISR is read-only */
    }
bad:
    vireo_guest_warn("%s: write of %zu bytes at BAR%u offset 0x%" PRIx64 ": no such register",
                     vp->pd.dev.id, len, VIRTIO_PCI_REGS_BAR, off);
}

static void virtio_pci_bar_read(PciDevice *pd, unsigned bar, uint64_t off, void *buf, size_t len)
{
    VirtioPciDevice *vp = virtio_pci_from_pd(pd);

    if (bar == VIRTIO_PCI_REGS_BAR)
        virtio_pci_regs_read(vp, off, buf, len, FALSE);
    else
        memset(buf, 0, len);            /* BAR0 outside the MSI-X table and PBA */
}

static void virtio_pci_bar_write(PciDevice *pd, unsigned bar, uint64_t off, const void *buf,
                                 size_t len)
{
    VirtioPciDevice *vp = virtio_pci_from_pd(pd);

    if (bar == VIRTIO_PCI_REGS_BAR)
        virtio_pci_regs_write(vp, off, buf, len);
}

/* Every queue's doorbell follows BAR2 wherever the guest puts it. */
static void virtio_pci_bar_mapped(PciDevice *pd, unsigned bar, uint64_t addr)
{
    VirtioPciDevice *vp = virtio_pci_from_pd(pd);
    g_autoptr(GError) err = NULL;

    if (bar != VIRTIO_PCI_REGS_BAR || !vp->ioevents)
        return;
    for (unsigned i = 0; i < vp->vdev->nr_queues; i++) {
        ioevent_remove(vp->doorbells[i]);
        vp->doorbells[i] = NULL;
        if (!addr)
            continue;
        /* Linux writes the 16-bit queue index; the address alone names the queue. */
        vp->doorbells[i] = ioevent_add(vp->ioevents, TRUE,
                                       addr + VIRTIO_PCI_NOTIFY_OFFSET +
                                           (uint64_t)i * VIRTIO_PCI_NOTIFY_MULTIPLIER,
                                       2, FALSE, 0, virtio_queue_kick, &vp->vdev->queues[i], &err);
        if (!vp->doorbells[i]) {
            /* The register path still works, with an exit per notification. */
            g_debug("%s: queue %u doorbell without ioeventfd: %s", pd->dev.id, i, err->message);
            g_clear_error(&err);
        }
    }
}

/* --- the PCI configuration access capability (4.1.4.9) --- */

/* The window the driver set up: BAR, offset and length, if it is a valid one. */
static gboolean virtio_pci_cfg_window(VirtioPciDevice *vp, unsigned *bar, uint32_t *off,
                                      uint32_t *len)
{
    PciDevice *pd = &vp->pd;
    uint8_t c = vp->cfg_cap;

    *bar = pd->config[c + VIRTIO_PCI_CAP_BAR];
    *off = pci_get(pd, c + VIRTIO_PCI_CAP_OFFSET, 4);
    *len = pci_get(pd, c + VIRTIO_PCI_CAP_LENGTH, 4);
    return *bar < PCI_NUM_BARS && pd->bars[*bar].type != PCI_BAR_UNUSED &&
           (*len == 1 || *len == 2 || *len == 4) && *off % *len == 0 &&
           *off <= pd->bars[*bar].size - *len;
}

static void virtio_pci_config_written(PciDevice *pd, uint32_t off, size_t len)
{
    VirtioPciDevice *vp = virtio_pci_from_pd(pd);
    uint32_t c = vp->cfg_cap, woff, wlen;
    uint8_t *data = &pd->config[c + VIRTIO_PCI_CFG_CAP_DATA];
    unsigned bar;

    if (off + len <= c + VIRTIO_PCI_CAP_BAR || off >= c + VIRTIO_PCI_CFG_CAP_SIZE)
        return;
    if (!virtio_pci_cfg_window(vp, &bar, &woff, &wlen)) {
        if (off + len > c + VIRTIO_PCI_CFG_CAP_DATA)
            vireo_guest_warn("%s: PCI configuration access through an invalid window "
                             "(BAR %u, offset 0x%x, length %u)", pd->dev.id, bar, woff, wlen);
        return;
    }
    if (off + len > c + VIRTIO_PCI_CFG_CAP_DATA) {
        /* A write to pci_cfg_data: the same write at the window. */
        pci_device_write(&pd->dev, PCI_BAR_OFFSET(bar) + woff, data, wlen);
        return;
    }
    /* The window moved: pci_cfg_data shows what is there now (see virtio-pci.h). */
    memset(data, 0, 4);
    if (bar == VIRTIO_PCI_REGS_BAR)
        virtio_pci_regs_read(vp, woff, data, wlen, TRUE);
    else
        pci_device_read(&pd->dev, PCI_BAR_OFFSET(bar) + woff, data, wlen);
}

static const PciDeviceOps virtio_pci_pci_ops = {
    .bar_read = virtio_pci_bar_read,
    .bar_write = virtio_pci_bar_write,
    .bar_mapped = virtio_pci_bar_mapped,
    .config_written = virtio_pci_config_written,
};

/* --- DeviceOps --- */

static void virtio_pci_reset(Device *dev)
{
    VirtioPciDevice *vp = virtio_pci_from_dev(dev);

    pci_device_reset_state(&vp->pd);
    virtio_pci_reset_regs(vp);
    virtio_device_reset(vp->vdev);
}

static gboolean virtio_pci_save_section(VirtioPciDevice *vp, StateWriter *w, GError **error)
{
    unsigned nq = vp->vdev->nr_queues;
    g_autofree uint8_t *vectors = g_malloc(2 * nq);

    for (unsigned i = 0; i < nq; i++)
        vireo_le_store(vectors + 2 * i, 2, vp->queue_vector[i]);
    state_writer_begin_section(w, vp->pd.dev.id, VIRTIO_PCI_STATE_VERSION);
    pci_device_save_state(&vp->pd, w);
    state_write_u32(w, "vpci-dfselect", vp->dfselect);
    state_write_u32(w, "vpci-gfselect", vp->gfselect);
    state_write_u16(w, "vpci-queue-select", vp->queue_select);
    state_write_u16(w, "vpci-msix-config", vp->msix_config);
    state_write_bytes(w, "vpci-queue-vectors", vectors, 2 * nq);
    state_write_u8(w, "vpci-isr", vp->isr);
    if (!virtio_device_save(vp->vdev, w, error))
        return FALSE;
    state_writer_end_section(w);
    return TRUE;
}

static gboolean virtio_pci_save(Device *dev, StateWriter *w, GError **error)
{
    return virtio_pci_save_section(virtio_pci_from_dev(dev), w, error);
}

static gboolean virtio_pci_vector_ok(const VirtioPciDevice *vp, uint16_t v)
{
    return v == VIRTIO_MSI_NO_VECTOR || v < vp->pd.msix.nr_vectors;
}

static gboolean virtio_pci_load_section(VirtioPciDevice *vp, StateReader *r, GError **error)
{
    unsigned nq = vp->vdev->nr_queues;
    g_autofree uint8_t *vectors = g_malloc(2 * nq);
    uint32_t version, dfselect, gfselect;
    uint16_t queue_select, msix_config;
    uint8_t isr;

    if (!state_reader_begin_section(r, vp->pd.dev.id, VIRTIO_PCI_STATE_VERSION, &version,
                                    error) ||
        !pci_device_load_state(&vp->pd, r, error) ||
        !state_read_u32(r, "vpci-dfselect", &dfselect, error) ||
        !state_read_u32(r, "vpci-gfselect", &gfselect, error) ||
        !state_read_u16(r, "vpci-queue-select", &queue_select, error) ||
        !state_read_u16(r, "vpci-msix-config", &msix_config, error) ||
        !state_read_bytes(r, "vpci-queue-vectors", vectors, 2 * nq, error) ||
        !state_read_u8(r, "vpci-isr", &isr, error))
        return FALSE;
    if (!virtio_pci_vector_ok(vp, msix_config) ||
        (isr & ~(VIRTIO_PCI_ISR_QUEUE | VIRTIO_PCI_ISR_CONFIG))) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "virtio-pci: configuration vector %u (%u vectors) or ISR 0x%02x invalid",
                    msix_config, vp->pd.msix.nr_vectors, isr);
        return FALSE;
    }
    for (unsigned i = 0; i < nq; i++) {
        uint16_t v = vireo_le_load(vectors + 2 * i, 2);

        if (!virtio_pci_vector_ok(vp, v)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "virtio-pci: queue %u vector %u (%u vectors)", i, v,
                        vp->pd.msix.nr_vectors);
            return FALSE;
        }
    }
    if (!virtio_device_load(vp->vdev, r, error) || !state_reader_end_section(r, error))
        return FALSE;
    vp->dfselect = dfselect;
    vp->gfselect = gfselect;
    vp->queue_select = queue_select;
    vp->msix_config = msix_config;
    for (unsigned i = 0; i < nq; i++)
        vp->queue_vector[i] = vireo_le_load(vectors + 2 * i, 2);
    vp->isr = isr;
    return TRUE;
}

/*
 * The PCI state, the queues and the device's fields are applied as they
 * are read, so a failure half way would leave a mix: the device goes back
 * to what it saved at the start instead, and a failed load changes
 * nothing.
 */
static gboolean virtio_pci_load(Device *dev, StateReader *r, GError **error)
{
    VirtioPciDevice *vp = virtio_pci_from_dev(dev);
    g_autoptr(StateWriter) before = state_writer_new();
    g_autoptr(StateReader) undo = NULL;
    g_autoptr(GError) undo_err = NULL;
    const uint8_t *data;
    size_t len;

    if (!virtio_pci_save_section(vp, before, error))
        return FALSE;
    if (virtio_pci_load_section(vp, r, error)) {
        virtio_device_loaded(vp->vdev);
        return TRUE;
    }
    data = state_writer_data(before, &len);
    undo = state_reader_new(data, len);
    if (!virtio_pci_load_section(vp, undo, &undo_err))
        g_critical("%s: cannot restore the state before a failed load: %s", dev->id,
                   undo_err->message);
    return FALSE;
}

static gboolean virtio_pci_set_active(Device *dev, gboolean active, GError **error)
{
    VirtioDevice *vdev = virtio_pci_from_dev(dev)->vdev;

    return !vdev->ops->set_active || vdev->ops->set_active(vdev, active, error);
}

static void virtio_pci_free(Device *dev)
{
    VirtioPciDevice *vp = virtio_pci_from_dev(dev);

    for (unsigned i = 0; vp->doorbells && i < vp->vdev->nr_queues; i++)
        ioevent_remove(vp->doorbells[i]);
    g_free(vp->doorbells);
    g_free(vp->queue_vector);
    virtio_device_free(vp->vdev);
    pci_device_cleanup(&vp->pd);
    g_free(vp);
}

const DeviceOps virtio_pci_device_ops = {
    .read = pci_device_read,
    .write = pci_device_write,
    .reset = virtio_pci_reset,
    .save = virtio_pci_save,
    .load = virtio_pci_load,
    .set_active = virtio_pci_set_active,
    .free = virtio_pci_free,
};

/* --- creation --- */

/* The class a driver-less OS shows for each kind of device. */
static uint32_t virtio_pci_class(uint16_t device_id)
{
    switch (device_id) {
    case VIRTIO_ID_NET: return 0x020000;        /* Ethernet controller */
    case VIRTIO_ID_BLOCK: return 0x010000;      /* SCSI storage controller, as QEMU says */
    case VIRTIO_ID_CONSOLE: return 0x078000;    /* other communication controller */
    default: return 0x00ff00;                   /* unclassified */
    }
}

static uint8_t virtio_pci_add_cap(PciDevice *pd, uint8_t type, uint8_t cap_len, uint8_t bar,
                                  uint32_t offset, uint32_t length)
{
    uint8_t c = pci_device_add_capability(pd, PCI_CAP_ID_VNDR, cap_len);

    pd->config[c + VIRTIO_PCI_CAP_LEN] = cap_len;
    pd->config[c + VIRTIO_PCI_CAP_CFG_TYPE] = type;
    pd->config[c + VIRTIO_PCI_CAP_BAR] = bar;
    pci_set(pd, c + VIRTIO_PCI_CAP_OFFSET, 4, offset);
    pci_set(pd, c + VIRTIO_PCI_CAP_LENGTH, 4, length);
    return c;
}

static void virtio_pci_add_caps(VirtioPciDevice *vp)
{
    PciDevice *pd = &vp->pd;
    VirtioDevice *vdev = vp->vdev;
    uint8_t c;

    virtio_pci_add_cap(pd, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_SIZE, VIRTIO_PCI_REGS_BAR,
                       VIRTIO_PCI_COMMON_OFFSET, VIRTIO_PCI_COMMON_SIZE);
    c = virtio_pci_add_cap(pd, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_CAP_SIZE,
                           VIRTIO_PCI_REGS_BAR, VIRTIO_PCI_NOTIFY_OFFSET,
                           vdev->nr_queues * VIRTIO_PCI_NOTIFY_MULTIPLIER);
    pci_set(pd, c + VIRTIO_PCI_NOTIFY_CAP_MULT, 4, VIRTIO_PCI_NOTIFY_MULTIPLIER);
    virtio_pci_add_cap(pd, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_SIZE, VIRTIO_PCI_REGS_BAR,
                       VIRTIO_PCI_ISR_OFFSET, 1);
    if (vdev->config_size)
        virtio_pci_add_cap(pd, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_SIZE,
                           VIRTIO_PCI_REGS_BAR, VIRTIO_PCI_DEVICE_OFFSET, vdev->config_size);
    /* The access window: bar, offset, length and data are the driver's. */
    c = virtio_pci_add_cap(pd, VIRTIO_PCI_CAP_PCI_CFG, VIRTIO_PCI_CFG_CAP_SIZE, 0, 0, 0);
    pd->wmask[c + VIRTIO_PCI_CAP_BAR] = 0xff;
    memset(&pd->wmask[c + VIRTIO_PCI_CAP_OFFSET], 0xff, 12);
    vp->cfg_cap = c;
}

Device *virtio_pci_device_new(const DeviceType *type, const DeviceEnv *env, VirtioDevice *vdev,
                              GError **error)
{
    unsigned nq = vdev->nr_queues, nvec = nq + 1;
    uint64_t pba_off = MAX((uint64_t)VIRTIO_PCI_MSIX_PBA_OFFSET,
                           VIREO_ALIGN_UP((uint64_t)nvec * PCI_MSIX_ENTRY_SIZE, 2048));
    uint64_t msix_size = VIRTIO_PCI_MSIX_MIN_BAR_SIZE;
    uint16_t pci_id = VIRTIO_PCI_DEVICE_ID_BASE + vdev->ops->device_id;
    PciIds ids = {
        .vendor = VIRTIO_PCI_VENDOR_ID,
        .device = pci_id,
        .subsystem_vendor = VIRTIO_PCI_VENDOR_ID,
        .subsystem = pci_id,
        .class_code = virtio_pci_class(vdev->ops->device_id),
        .revision = VIRTIO_PCI_REVISION,
        .interrupt_pin = 1,
    };
    VirtioPciDevice *vp;

    g_assert(type->ops == &virtio_pci_device_ops && type->pci);
    g_assert(nq >= 1 && nq <= VIRTIO_MAX_QUEUES);
    if (!env->loop || !env->mem) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s needs an event loop and guest memory", type->name);
        virtio_device_free(vdev);
        return NULL;
    }
    while (msix_size < pba_off + VIREO_ALIGN_UP(nvec, 64) / 8)
        msix_size *= 2;

    vp = g_new0(VirtioPciDevice, 1);
    vp->vdev = vdev;
    vp->loop = env->loop;
    vp->ioevents = env->ioevents;
    vp->transport.ops = &virtio_pci_transport_ops;
    vp->doorbells = g_new0(IoEvent *, nq);
    vp->queue_vector = g_new(uint16_t, nq);
    pci_device_init(&vp->pd, type, env->id, &virtio_pci_pci_ops, &ids);
    virtio_device_attach(vdev, &vp->transport, &vp->pd.dev.lock);
    pci_device_add_bar(&vp->pd, VIRTIO_PCI_MSIX_BAR, PCI_BAR_MEM32, msix_size, FALSE);
    pci_device_add_bar(&vp->pd, VIRTIO_PCI_REGS_BAR, PCI_BAR_MEM64, VIRTIO_PCI_REGS_BAR_SIZE,
                       FALSE);
    virtio_pci_add_caps(vp);
    if (!pci_device_init_msix(&vp->pd, env->msi, nvec, VIRTIO_PCI_MSIX_BAR, 0,
                              VIRTIO_PCI_MSIX_BAR, pba_off, error)) {
        virtio_pci_free(&vp->pd.dev);
        return NULL;
    }
    virtio_pci_reset_regs(vp);
    return &vp->pd.dev;
}
