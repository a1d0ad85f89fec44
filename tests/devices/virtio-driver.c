/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A virtio-pci driver for device tests; see virtio-driver.h. Modelled on
 * Linux's drivers/virtio/virtio_pci_modern_dev.c (capability walk and
 * checks), virtio_pci_common.c (vector allocation) and virtio_ring.c
 * (split ring: free list through the descriptors' next fields, indirect
 * tables, event index handling).
 */
#include <inttypes.h>
#include <string.h>

#include "virtio-driver.h"

#define VD_MAX_INDIRECT 64              /* entries per indirect table */
#define VD_DEFAULT_MEM_BASE 0x100000ULL
#define VD_DEFAULT_BAR32 0xc0000000ULL
#define VD_DEFAULT_BAR64 0x8000000000ULL
#define VD_DEFAULT_MSI_DATA 0x100
#define VD_MSI_ADDR 0xfee00000ULL
#define VD_COMMON_MIN_LEN 56            /* sizeof(struct virtio_pci_common_cfg) in Linux */

typedef struct VdBus {
    PciBus bus;
    uint64_t where[PCI_NUM_BARS];
} VdBus;

typedef struct VdRequest {
    void *token;                        /* NULL: the head is free */
    uint16_t ndesc;                     /* descriptors of the ring it holds */
    uint32_t in_len;                    /* device-writable bytes */
} VdRequest;

struct VirtioDriverQueue {
    VirtioDriver *d;
    unsigned index;
    uint16_t size;
    uint64_t desc, avail, used;         /* guest addresses of the ring parts */
    uint64_t indirect;                  /* one table of VD_MAX_INDIRECT per head */
    uint64_t notify;                    /* guest address of its doorbell */
    uint16_t vector;
    gboolean event_idx;
    gboolean indirect_ok;               /* INDIRECT_DESC negotiated */
    gboolean use_indirect;
    gboolean cb_disabled;
    uint16_t avail_idx;                 /* what the driver published */
    uint16_t kicked_idx;                /* avail_idx at the last kick_prepare */
    uint16_t last_used;
    uint16_t free_head;
    uint16_t num_free;
    uint16_t *next;                     /* free list and chain links (host copy) */
    VdRequest *req;                     /* per head */
};

struct VirtioDriver {
    HarnessEnv *e;
    Device *dev;
    PciDevice *pd;
    VdBus bus;
    VirtioDriverParams p;
    VirtioDriverLayout layout;
    uint64_t alloc_next;
    uint64_t features;
    uint16_t config_vector;
    unsigned nr_queues;                 /* num_queues as the device says */
    VirtioDriverQueue **queues;
    unsigned isr_queue;                 /* INTx: ISR reads with the queue bit */
    unsigned isr_config;                /* INTx: ISR reads with the configuration bit */
};

/* --- the fake PCI bus --- */

static gboolean vd_bar_moved(PciBus *bus, PciDevice *pd, unsigned bar, uint64_t old,
                             uint64_t new)
{
    VdBus *b = (VdBus *)bus;

    assert_true(b->where[bar] == old);
    b->where[bar] = new;
    return TRUE;
}

static const PciBusOps vd_bus_ops = { .bar_moved = vd_bar_moved };

static void vd_attach(VirtioDriver *d)
{
    d->bus.bus.ops = &vd_bus_ops;
    d->pd = pci_device_from_dev(d->dev);
    d->pd->bus = &d->bus.bus;
    d->pd->intx = &d->e->irq.line;
}

/* --- guest memory --- */

uint64_t virtio_driver_alloc(VirtioDriver *d, uint64_t size, uint64_t align)
{
    uint64_t a = VIREO_ALIGN_UP(d->alloc_next, align);

    g_assert(align && (align & (align - 1)) == 0);
    if (a < d->alloc_next || a + size > d->p.mem_base + d->p.mem_size)
        fail_msg("virtio driver: out of guest memory (%" PRIu64 " bytes wanted)", size);
    d->alloc_next = a + size;
    memset(virtio_driver_mem(d, a, size), 0, size);
    return a;
}

void *virtio_driver_mem(VirtioDriver *d, uint64_t gpa, size_t len)
{
    return harness_mem_ptr(&d->e->mem, gpa, len ? len : 1);
}

static uint16_t vd_ld16(VirtioDriver *d, uint64_t gpa)
{
    return GUINT16_FROM_LE(__atomic_load_n((uint16_t *)virtio_driver_mem(d, gpa, 2),
                                           __ATOMIC_ACQUIRE));
}

static void vd_st16(VirtioDriver *d, uint64_t gpa, uint16_t v)
{
    __atomic_store_n((uint16_t *)virtio_driver_mem(d, gpa, 2), GUINT16_TO_LE(v),
                     __ATOMIC_RELEASE);
}

static uint32_t vd_ld32(VirtioDriver *d, uint64_t gpa)
{
    return GUINT32_FROM_LE(__atomic_load_n((uint32_t *)virtio_driver_mem(d, gpa, 4),
                                           __ATOMIC_ACQUIRE));
}

static void vd_write_desc(VirtioDriver *d, uint64_t gpa, uint64_t addr, uint32_t len,
                          uint16_t flags, uint16_t next)
{
    uint8_t *p = virtio_driver_mem(d, gpa, 16);

    vireo_le_store(p, 8, addr);
    vireo_le_store(p + 8, 4, len);
    vireo_le_store(p + 12, 2, flags);
    vireo_le_store(p + 14, 2, next);
}

/* --- register access --- */

/* The BAR decoding @addr (whole access inside), or -1. */
static int vd_bar_at(VirtioDriver *d, uint64_t addr, size_t len, uint64_t *off)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        uint64_t base = d->bus.where[i], size = d->pd->bars[i].size;

        if (base && addr >= base && addr - base < size && len <= size - (addr - base)) {
            *off = addr - base;
            return i;
        }
    }
    return -1;
}

uint64_t virtio_driver_mmio_read(VirtioDriver *d, uint64_t addr, size_t len)
{
    uint64_t off = 0;
    int bar = vd_bar_at(d, addr, len, &off);

    if (bar < 0)
        fail_msg("virtio driver: read of 0x%" PRIx64 ": no BAR decodes there", addr);
    return harness_read(d->dev, PCI_BAR_OFFSET(bar) + off, len);
}

void virtio_driver_mmio_write(VirtioDriver *d, uint64_t addr, size_t len, uint64_t val)
{
    uint64_t off = 0;
    int bar = vd_bar_at(d, addr, len, &off);

    if (bar < 0)
        fail_msg("virtio driver: write to 0x%" PRIx64 ": no BAR decodes there", addr);
    /* KVM matches doorbells by address and length; virtio notifications are 16-bit. */
    if (len == 2 && harness_ioevents_ring(&d->e->ioevents, TRUE, addr, val))
        return;
    harness_write(d->dev, PCI_BAR_OFFSET(bar) + off, len, val);
}

uint64_t virtio_driver_common_read(VirtioDriver *d, uint32_t off, size_t len)
{
    return virtio_driver_mmio_read(d, d->layout.common.addr + off, len);
}

void virtio_driver_common_write(VirtioDriver *d, uint32_t off, size_t len, uint64_t val)
{
    virtio_driver_mmio_write(d, d->layout.common.addr + off, len, val);
}

uint64_t virtio_driver_config_read_raw(VirtioDriver *d, uint32_t off, size_t len)
{
    assert_true(d->layout.device.cap != 0);
    return virtio_driver_mmio_read(d, d->layout.device.addr + off, len);
}

void virtio_driver_config_read(VirtioDriver *d, uint32_t off, void *buf, size_t len)
{
    uint8_t *out = buf;
    uint8_t gen;
    unsigned tries = 0;

    do {
        gen = virtio_driver_common_read(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
        /* As Linux's vp_get(): the widest natural accesses that fit. */
        for (size_t i = 0; i < len;) {
            size_t w = len - i >= 4 && (off + i) % 4 == 0 ? 4
                       : len - i >= 2 && (off + i) % 2 == 0 ? 2 : 1;

            vireo_le_store(out + i, w, virtio_driver_config_read_raw(d, off + i, w));
            i += w;
        }
        if (++tries > 100)
            fail_msg("virtio driver: config_generation never settles");
    } while (gen != virtio_driver_common_read(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1));
}

void virtio_driver_config_write(VirtioDriver *d, uint32_t off, size_t len, uint64_t val)
{
    assert_true(d->layout.device.cap != 0);
    virtio_driver_mmio_write(d, d->layout.device.addr + off, len, val);
}

uint8_t virtio_driver_read_isr(VirtioDriver *d)
{
    return virtio_driver_mmio_read(d, d->layout.isr.addr, 1);
}

/* --- discovery, as vp_modern_probe() --- */

static void vd_read_region(VirtioDriver *d, uint8_t cap, VirtioDriverRegion *r, size_t minlen,
                           uint32_t align)
{
    r->cap = cap;
    r->bar = pci_config_read(d->pd, cap + VIRTIO_PCI_CAP_BAR, 1);
    r->offset = pci_config_read(d->pd, cap + VIRTIO_PCI_CAP_OFFSET, 4);
    r->length = pci_config_read(d->pd, cap + VIRTIO_PCI_CAP_LENGTH, 4);
    /* vp_modern_map_capability()'s checks. */
    if (r->bar >= PCI_NUM_BARS || d->pd->bars[r->bar].type == PCI_BAR_UNUSED)
        fail_msg("virtio driver: capability at 0x%x names BAR %u", cap, r->bar);
    if (r->length < minlen)
        fail_msg("virtio driver: capability at 0x%x: length %u < %zu", cap, r->length, minlen);
    if (r->offset % align)
        fail_msg("virtio driver: capability at 0x%x: offset 0x%x not aligned to %u", cap,
                 r->offset, align);
    if ((uint64_t)r->offset + MAX(minlen, r->length) > d->pd->bars[r->bar].size)
        fail_msg("virtio driver: capability at 0x%x: 0x%x+%u beyond BAR %u", cap, r->offset,
                 r->length, r->bar);
}

static void vd_discover(VirtioDriver *d)
{
    VirtioDriverLayout *l = &d->layout;
    uint32_t id = pci_config_read(d->pd, PCI_VENDOR_ID, 4);
    unsigned caps = 0;

    if ((id & 0xffff) != VIRTIO_PCI_VENDOR_ID || (id >> 16) < VIRTIO_PCI_DEVICE_ID_BASE ||
        (id >> 16) > 0x107f)
        fail_msg("virtio driver: PCI ID %04x:%04x is no modern virtio device", id & 0xffff,
                 id >> 16);
    if (!(pci_config_read(d->pd, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
        fail_msg("virtio driver: no capability list");
    memset(l, 0, sizeof(*l));
    for (uint8_t c = pci_config_read(d->pd, PCI_CAPABILITY_LIST, 1) & ~3u; c;
         c = pci_config_read(d->pd, c + 1, 1) & ~3u) {
        uint8_t cap_id = pci_config_read(d->pd, c, 1);
        uint8_t type = pci_config_read(d->pd, c + VIRTIO_PCI_CAP_CFG_TYPE, 1);

        if (++caps > 48 || c < 0x40)
            fail_msg("virtio driver: capability list loops or points into the header");
        if (cap_id == PCI_CAP_ID_MSIX && !l->msix_cap) {
            l->msix_cap = c;
            l->msix_vectors = (pci_config_read(d->pd, c + PCI_MSIX_FLAGS, 2) &
                               PCI_MSIX_FLAGS_QSIZE) + 1;
        }
        if (cap_id != PCI_CAP_ID_VNDR)
            continue;
        /* The first structure of each type is the preferred one (4.1.4). */
        switch (type) {
        case VIRTIO_PCI_CAP_COMMON_CFG:
            if (!l->common.cap)
                vd_read_region(d, c, &l->common, VD_COMMON_MIN_LEN, 4);
            break;
        case VIRTIO_PCI_CAP_NOTIFY_CFG:
            if (!l->notify.cap) {
                vd_read_region(d, c, &l->notify, 2, 2);
                l->notify_multiplier = pci_config_read(d->pd, c + VIRTIO_PCI_NOTIFY_CAP_MULT, 4);
            }
            break;
        case VIRTIO_PCI_CAP_ISR_CFG:
            if (!l->isr.cap)
                vd_read_region(d, c, &l->isr, 1, 1);
            break;
        case VIRTIO_PCI_CAP_DEVICE_CFG:
            if (!l->device.cap)
                vd_read_region(d, c, &l->device, 0, 4);
            break;
        case VIRTIO_PCI_CAP_PCI_CFG:
            if (!l->pci_cfg.cap) {
                l->pci_cfg.cap = c;
                l->pci_cfg.length = pci_config_read(d->pd, c + VIRTIO_PCI_CAP_LEN, 1);
            }
            break;
        default:
            break;
        }
    }
    if (!l->common.cap || !l->notify.cap || !l->isr.cap || !l->pci_cfg.cap)
        fail_msg("virtio driver: missing capability (common 0x%x, notify 0x%x, ISR 0x%x, "
                 "PCI config 0x%x)", l->common.cap, l->notify.cap, l->isr.cap,
                 l->pci_cfg.cap);
    /* An even power of 2 or 0 (4.1.4.4). */
    if (l->notify_multiplier & (l->notify_multiplier - 1) || l->notify_multiplier == 1)
        fail_msg("virtio driver: notify_off_multiplier %u", l->notify_multiplier);
}

/* Firmware's job: every BAR at its place, then decoding and bus mastering on. */
static void vd_place_bars(VirtioDriver *d)
{
    uint64_t next32 = d->p.bar32_base, next64 = d->p.bar64_base;

    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        const PciBar *b = &d->pd->bars[i];
        uint32_t reg = PCI_BASE_ADDRESS_0 + 4 * i;
        uint64_t a;

        switch (b->type) {
        case PCI_BAR_MEM32:
            a = VIREO_ALIGN_UP(next32, b->size);
            next32 = a + b->size;
            pci_config_write(d->pd, reg, a, 4);
            break;
        case PCI_BAR_MEM64:
            a = VIREO_ALIGN_UP(next64, b->size);
            next64 = a + b->size;
            pci_config_write(d->pd, reg, (uint32_t)a, 4);
            pci_config_write(d->pd, reg + 4, a >> 32, 4);
            i++;
            break;
        case PCI_BAR_IO:
            fail_msg("virtio driver: the device has an I/O BAR (%u)", i);
            break;
        case PCI_BAR_UNUSED:
            break;
        }
    }
    pci_config_write(d->pd, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
}

static void vd_region_addr(VirtioDriver *d, VirtioDriverRegion *r)
{
    r->addr = r->cap && r->bar < PCI_NUM_BARS && d->bus.where[r->bar]
                  ? d->bus.where[r->bar] + r->offset : 0;
}

static void vd_update_addrs(VirtioDriver *d)
{
    vd_region_addr(d, &d->layout.common);
    vd_region_addr(d, &d->layout.notify);
    vd_region_addr(d, &d->layout.isr);
    vd_region_addr(d, &d->layout.device);
    if (!d->layout.common.addr || !d->layout.notify.addr || !d->layout.isr.addr)
        fail_msg("virtio driver: a virtio structure's BAR does not decode");
}

static void vd_set_params(VirtioDriver *d, const VirtioDriverParams *params)
{
    if (params)
        d->p = *params;
    if (!d->p.mem_base)
        d->p.mem_base = VD_DEFAULT_MEM_BASE;
    if (!d->p.mem_size)
        d->p.mem_size = d->e->mem.mem.regions[0].size - d->p.mem_base;
    if (!d->p.bar32_base)
        d->p.bar32_base = VD_DEFAULT_BAR32;
    if (!d->p.bar64_base)
        d->p.bar64_base = VD_DEFAULT_BAR64;
    if (!d->p.msi_data_base)
        d->p.msi_data_base = VD_DEFAULT_MSI_DATA;
    d->alloc_next = d->p.mem_base;
}

void virtio_driver_map_bars(VirtioDriver *d)
{
    vd_place_bars(d);
    vd_update_addrs(d);
}

VirtioDriver *virtio_driver_new(HarnessEnv *e, const char *type, const char *options,
                                const VirtioDriverParams *params)
{
    VirtioDriver *d = g_new0(VirtioDriver, 1);

    d->e = e;
    vd_set_params(d, params);
    d->dev = harness_device_new(e, type, options);
    vd_attach(d);
    vd_discover(d);
    virtio_driver_map_bars(d);
    d->nr_queues = virtio_driver_common_read(d, VIRTIO_PCI_COMMON_NUMQ, 2);
    d->queues = g_new0(VirtioDriverQueue *, d->nr_queues);
    d->config_vector = VIRTIO_MSI_NO_VECTOR;
    assert_int_equal(virtio_driver_get_status(d), 0);
    return d;
}

static void vd_queue_free(VirtioDriverQueue *q)
{
    if (!q)
        return;
    g_free(q->next);
    g_free(q->req);
    g_free(q);
}

void virtio_driver_free(VirtioDriver *d)
{
    if (!d)
        return;
    /* Deferred work holds pointers into the device: let it run first. */
    harness_loop_run(d->e->loop);
    device_free(d->dev);
    for (unsigned i = 0; i < d->nr_queues; i++)
        vd_queue_free(d->queues[i]);
    g_free(d->queues);
    g_free(d);
}

Device *virtio_driver_device(VirtioDriver *d)
{
    return d->dev;
}

PciDevice *virtio_driver_pci(VirtioDriver *d)
{
    return d->pd;
}

HarnessEnv *virtio_driver_env(VirtioDriver *d)
{
    return d->e;
}

const VirtioDriverLayout *virtio_driver_layout(VirtioDriver *d)
{
    return &d->layout;
}

/* --- status and features --- */

uint8_t virtio_driver_get_status(VirtioDriver *d)
{
    return virtio_driver_common_read(d, VIRTIO_PCI_COMMON_STATUS, 1);
}

void virtio_driver_set_status(VirtioDriver *d, uint8_t status)
{
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_STATUS, 1, status);
}

void virtio_driver_reset(VirtioDriver *d)
{
    virtio_driver_set_status(d, 0);
    /* "MUST wait for a read of device_status to return 0" (4.1.4.3.2) */
    assert_int_equal(virtio_driver_get_status(d), 0);
    for (unsigned i = 0; i < d->nr_queues; i++)
        g_clear_pointer(&d->queues[i], vd_queue_free);
    d->features = 0;
    d->isr_queue = d->isr_config = 0;
    d->config_vector = VIRTIO_MSI_NO_VECTOR;
}

uint64_t virtio_driver_device_features(VirtioDriver *d)
{
    uint64_t f;

    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    f = virtio_driver_common_read(d, VIRTIO_PCI_COMMON_DF, 4);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    f |= virtio_driver_common_read(d, VIRTIO_PCI_COMMON_DF, 4) << 32;
    return f;
}

void virtio_driver_write_features(VirtioDriver *d, uint64_t features)
{
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)features);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_GF, 4, features >> 32);
}

uint64_t virtio_driver_features(VirtioDriver *d)
{
    return d->features;
}

/* --- interrupts --- */

void virtio_driver_msix_program(VirtioDriver *d, unsigned vector)
{
    const VirtioDriverLayout *l = &d->layout;
    uint32_t tbl = pci_config_read(d->pd, l->msix_cap + PCI_MSIX_TABLE, 4);
    unsigned bar = tbl & 7;
    uint64_t entry = d->bus.where[bar] + (tbl & ~7u) + (uint64_t)vector * PCI_MSIX_ENTRY_SIZE;

    assert_true(vector < l->msix_vectors && d->bus.where[bar]);
    virtio_driver_mmio_write(d, entry, 4, (uint32_t)VD_MSI_ADDR);
    virtio_driver_mmio_write(d, entry + 4, 4, VD_MSI_ADDR >> 32);
    virtio_driver_mmio_write(d, entry + 8, 4, d->p.msi_data_base + vector);
    virtio_driver_mmio_write(d, entry + 12, 4, 0);
    pci_config_write(d->pd, l->msix_cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
}

uint16_t virtio_driver_set_config_vector(VirtioDriver *d, uint16_t vector)
{
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, vector);
    d->config_vector = virtio_driver_common_read(d, VIRTIO_PCI_COMMON_MSIX, 2);
    return d->config_vector;
}

/* As vp_find_vqs_msix(): vector 0 for configuration changes, then the queues'. */
static void vd_setup_interrupts(VirtioDriver *d)
{
    unsigned want;

    switch (d->p.irq_mode) {
    case VIRTIO_DRIVER_INTX:
        pci_config_write(d->pd, d->layout.msix_cap + PCI_MSIX_FLAGS, 0, 2);
        return;
    case VIRTIO_DRIVER_MSIX_SHARED:
        want = 2;
        break;
    case VIRTIO_DRIVER_MSIX:
    default:
        want = 1 + d->nr_queues;
        break;
    }
    if (!d->layout.msix_cap || d->layout.msix_vectors < want)
        fail_msg("virtio driver: %u MSI-X vectors, %u wanted", d->layout.msix_vectors, want);
    for (unsigned v = 0; v < want; v++)
        virtio_driver_msix_program(d, v);
    if (virtio_driver_set_config_vector(d, 0) != 0)
        fail_msg("virtio driver: configuration vector 0 refused");
}

gboolean virtio_driver_init(VirtioDriver *d, uint64_t wanted)
{
    uint64_t offered, accept;
    uint8_t s;

    virtio_driver_reset(d);
    virtio_driver_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_driver_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    offered = virtio_driver_device_features(d);
    if (!(offered & VIRTIO_BIT(VIRTIO_F_VERSION_1)))
        fail_msg("virtio driver: the device does not offer VERSION_1");
    accept = (wanted | VIRTIO_BIT(VIRTIO_F_VERSION_1)) & offered;
    virtio_driver_write_features(d, accept);
    virtio_driver_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                                VIRTIO_STATUS_FEATURES_OK);
    s = virtio_driver_get_status(d);
    if (!(s & VIRTIO_STATUS_FEATURES_OK))
        return FALSE;
    d->features = accept;
    vd_setup_interrupts(d);
    return TRUE;
}

void virtio_driver_ok(VirtioDriver *d)
{
    uint8_t s = virtio_driver_get_status(d);

    virtio_driver_set_status(d, s | VIRTIO_STATUS_DRIVER_OK);
    if (!(virtio_driver_get_status(d) & VIRTIO_STATUS_DRIVER_OK))
        fail_msg("virtio driver: DRIVER_OK does not stick (status 0x%02x)",
                 virtio_driver_get_status(d));
}

unsigned virtio_driver_msix_fires(VirtioDriver *d, unsigned vector)
{
    return harness_msi_fires(&d->e->msi, d->p.msi_data_base + vector);
}

unsigned virtio_driver_run(VirtioDriver *d)
{
    unsigned n = harness_loop_run(d->e->loop);

    /* vp_interrupt(): read the ISR (which lowers the line) and act on its bits. */
    for (unsigned i = 0; d->p.irq_mode == VIRTIO_DRIVER_INTX && d->e->irq.level; i++) {
        uint8_t isr = virtio_driver_read_isr(d);

        if (isr & VIRTIO_PCI_ISR_QUEUE)
            d->isr_queue++;
        if (isr & VIRTIO_PCI_ISR_CONFIG)
            d->isr_config++;
        if (!isr || i > 100)
            fail_msg("virtio driver: INTx stays high with ISR 0x%02x", isr);
    }
    return n;
}

unsigned virtio_driver_queue_interrupts(VirtioDriverQueue *q)
{
    VirtioDriver *d = q->d;

    if (d->p.irq_mode == VIRTIO_DRIVER_INTX)
        return d->isr_queue;
    return q->vector == VIRTIO_MSI_NO_VECTOR ? 0 : virtio_driver_msix_fires(d, q->vector);
}

unsigned virtio_driver_config_interrupts(VirtioDriver *d)
{
    if (d->p.irq_mode == VIRTIO_DRIVER_INTX)
        return d->isr_config;
    return d->config_vector == VIRTIO_MSI_NO_VECTOR ? 0
                                                    : virtio_driver_msix_fires(d, d->config_vector);
}

/* --- queues --- */

VirtioDriverQueue *virtio_driver_alloc_queue(VirtioDriver *d, unsigned index, uint16_t size)
{
    VirtioDriverQueue *q;

    assert_true(index < d->nr_queues && size && (size & (size - 1)) == 0);
    g_clear_pointer(&d->queues[index], vd_queue_free);
    q = g_new0(VirtioDriverQueue, 1);
    q->d = d;
    q->index = index;
    q->size = size;
    q->vector = VIRTIO_MSI_NO_VECTOR;
    q->desc = virtio_driver_alloc(d, 16ULL * size, 16);
    q->avail = virtio_driver_alloc(d, 6 + 2ULL * size, 2);
    q->used = virtio_driver_alloc(d, 6 + 8ULL * size, 4);
    q->indirect = virtio_driver_alloc(d, (uint64_t)size * VD_MAX_INDIRECT * 16, 16);
    /* Where to notify, as vp_modern_map_vq_notify() works it out once. */
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
    q->notify = d->layout.notify.addr + virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_NOFF, 2) *
                                            (uint64_t)d->layout.notify_multiplier;
    q->event_idx = !!(d->features & VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));
    q->indirect_ok = !!(d->features & VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC));
    q->use_indirect = TRUE;
    q->next = g_new(uint16_t, size);
    q->req = g_new0(VdRequest, size);
    for (unsigned i = 0; i < size; i++)
        q->next[i] = i + 1;
    q->num_free = size;
    d->queues[index] = q;
    return q;
}

void virtio_driver_enable_queue(VirtioDriverQueue *q)
{
    VirtioDriver *d = q->d;

    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, q->index);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, q->size);
    /* vp_iowrite64_twopart(): low half, then high half. */
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)q->desc);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_DESCHI, 4, q->desc >> 32);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)q->avail);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, q->avail >> 32);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)q->used);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_USEDHI, 4, q->used >> 32);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

uint16_t virtio_driver_set_queue_vector(VirtioDriverQueue *q, uint16_t vector)
{
    VirtioDriver *d = q->d;

    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, q->index);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
    q->vector = virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_MSIX, 2);
    return q->vector;
}

VirtioDriverQueue *virtio_driver_setup_queue(VirtioDriver *d, unsigned index, uint16_t size)
{
    VirtioDriverQueue *q;
    uint16_t max, vector;

    assert_true(index < d->nr_queues);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
    max = virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2);
    if (!max || (max & (max - 1)))
        fail_msg("virtio driver: queue %u: size %u", index, max);
    if (virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2))
        fail_msg("virtio driver: queue %u already enabled", index);
    if (virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_NOFF, 2) * (uint64_t)
        d->layout.notify_multiplier + 2 > d->layout.notify.length)
        fail_msg("virtio driver: queue %u: notify offset beyond the notify structure", index);
    q = virtio_driver_alloc_queue(d, index, size ? size : max);
    assert_true(q->size <= max);
    switch (d->p.irq_mode) {
    case VIRTIO_DRIVER_MSIX: vector = 1 + index; break;
    case VIRTIO_DRIVER_MSIX_SHARED: vector = 1; break;
    default: vector = VIRTIO_MSI_NO_VECTOR; break;
    }
    if (vector != VIRTIO_MSI_NO_VECTOR && virtio_driver_set_queue_vector(q, vector) != vector)
        fail_msg("virtio driver: queue %u: vector %u refused", index, vector);
    virtio_driver_enable_queue(q);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
    if (virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2) != 1 ||
        virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2) != q->size ||
        virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4) != (uint32_t)q->desc)
        fail_msg("virtio driver: queue %u did not come up (status 0x%02x)", index,
                 virtio_driver_get_status(d));
    return q;
}

VirtioDriverQueue *virtio_driver_queue(VirtioDriver *d, unsigned index)
{
    return index < d->nr_queues ? d->queues[index] : NULL;
}

unsigned virtio_driver_queue_index(const VirtioDriverQueue *q)
{
    return q->index;
}

uint16_t virtio_driver_queue_size(const VirtioDriverQueue *q)
{
    return q->size;
}

uint64_t virtio_driver_queue_desc(const VirtioDriverQueue *q)
{
    return q->desc;
}

uint64_t virtio_driver_queue_avail(const VirtioDriverQueue *q)
{
    return q->avail;
}

uint64_t virtio_driver_queue_used(const VirtioDriverQueue *q)
{
    return q->used;
}

void virtio_driver_queue_set_indirect(VirtioDriverQueue *q, gboolean on)
{
    q->use_indirect = on;
}

unsigned virtio_driver_queue_inflight(const VirtioDriverQueue *q)
{
    unsigned n = 0;

    for (unsigned i = 0; i < q->size; i++)
        n += q->req[i].token != NULL;
    return n;
}

/* --- requests, as virtqueue_add_split() --- */

int virtio_driver_add(VirtioDriverQueue *q, const VirtioDriverBuf *out, unsigned out_num,
                      const VirtioDriverBuf *in, unsigned in_num, void *token)
{
    VirtioDriver *d = q->d;
    unsigned total = out_num + in_num;
    gboolean indirect = q->indirect_ok && q->use_indirect && total > 1 &&
                        total <= VD_MAX_INDIRECT;
    unsigned ndesc = indirect ? 1 : total;
    uint16_t head = q->free_head, i = head;
    uint32_t in_len = 0;

    assert_non_null(token);
    assert_true(total >= 1);
    if (q->num_free < ndesc)
        return -1;
    for (unsigned k = 0; k < in_num; k++)
        in_len += in[k].len;
    if (indirect) {
        uint64_t table = q->indirect + (uint64_t)head * VD_MAX_INDIRECT * 16;

        for (unsigned k = 0; k < total; k++) {
            const VirtioDriverBuf *b = k < out_num ? &out[k] : &in[k - out_num];
            uint16_t flags = (k >= out_num ? VIRTQ_DESC_F_WRITE : 0) |
                             (k + 1 < total ? VIRTQ_DESC_F_NEXT : 0);

            vd_write_desc(d, table + 16ULL * k, b->addr, b->len, flags, k + 1 < total ? k + 1 : 0);
        }
        vd_write_desc(d, q->desc + 16ULL * head, table, total * 16, VIRTQ_DESC_F_INDIRECT, 0);
        i = q->next[head];
    } else {
        for (unsigned k = 0; k < total; k++) {
            const VirtioDriverBuf *b = k < out_num ? &out[k] : &in[k - out_num];
            uint16_t flags = (k >= out_num ? VIRTQ_DESC_F_WRITE : 0) |
                             (k + 1 < total ? VIRTQ_DESC_F_NEXT : 0);

            vd_write_desc(d, q->desc + 16ULL * i, b->addr, b->len, flags,
                          k + 1 < total ? q->next[i] : 0);
            i = q->next[i];
        }
    }
    q->free_head = i;
    q->num_free -= ndesc;
    q->req[head] = (VdRequest){ .token = token, .ndesc = ndesc, .in_len = in_len };
    /* The entry, then (release) the index: the device must see them in that order. */
    vd_st16(d, q->avail + 4 + 2ULL * (q->avail_idx % q->size), head);
    q->avail_idx++;
    vd_st16(d, q->avail + 2, q->avail_idx);
    return head;
}

/* The spec's vring_need_event(). */
static gboolean vd_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

gboolean virtio_driver_kick_prepare(VirtioDriverQueue *q)
{
    VirtioDriver *d = q->d;
    uint16_t old = q->kicked_idx, new = q->avail_idx;

    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    q->kicked_idx = new;
    if (q->event_idx)
        return vd_need_event(vd_ld16(d, q->used + 4 + 8ULL * q->size), new, old);
    return !(vd_ld16(d, q->used) & VIRTQ_USED_F_NO_NOTIFY);
}

void virtio_driver_notify(VirtioDriverQueue *q)
{
    virtio_driver_mmio_write(q->d, q->notify, 2, q->index);
}

void virtio_driver_notify_register(VirtioDriverQueue *q)
{
    VirtioDriver *d = q->d;
    uint64_t off = 0;
    int bar = vd_bar_at(d, q->notify, 2, &off);

    if (bar < 0)
        fail_msg("virtio driver: queue %u: no BAR decodes its notify address", q->index);
    harness_write(d->dev, PCI_BAR_OFFSET(bar) + off, 2, q->index);
}

gboolean virtio_driver_kick(VirtioDriverQueue *q)
{
    if (!virtio_driver_kick_prepare(q))
        return FALSE;
    virtio_driver_notify(q);
    return TRUE;
}

void *virtio_driver_get_used(VirtioDriverQueue *q, uint32_t *len)
{
    VirtioDriver *d = q->d;
    uint16_t used_idx = vd_ld16(d, q->used + 2);
    uint64_t entry;
    uint32_t id, written;
    void *token;
    uint16_t last;

    if (used_idx == q->last_used)
        return NULL;
    if ((uint16_t)(used_idx - q->last_used) > q->size)
        fail_msg("virtio driver: queue %u: used index jumped from %u to %u", q->index,
                 q->last_used, used_idx);
    entry = q->used + 4 + 8ULL * (q->last_used % q->size);
    id = vd_ld32(d, entry);
    written = vd_ld32(d, entry + 4);
    if (id >= q->size || !q->req[id].token)
        fail_msg("virtio driver: queue %u: used entry %u names descriptor %u, not in flight",
                 q->index, q->last_used, id);
    if (written > q->req[id].in_len)
        fail_msg("virtio driver: queue %u: %u bytes written into a %u-byte buffer", q->index,
                 written, q->req[id].in_len);
    token = q->req[id].token;
    /* Back on the free list: the chain's last link points at the old head. */
    last = id;
    for (unsigned k = 1; k < q->req[id].ndesc; k++)
        last = q->next[last];
    q->next[last] = q->free_head;
    q->free_head = id;
    q->num_free += q->req[id].ndesc;
    q->req[id] = (VdRequest){ 0 };
    q->last_used++;
    if (len)
        *len = written;
    /* Ask for an interrupt at the next used entry, as virtqueue_get_buf() does. */
    if (q->event_idx && !q->cb_disabled)
        vd_st16(d, q->avail + 4 + 2ULL * q->size, q->last_used);
    return token;
}

void virtio_driver_disable_cb(VirtioDriverQueue *q)
{
    VirtioDriver *d = q->d;

    q->cb_disabled = TRUE;
    if (q->event_idx)
        vd_st16(d, q->avail + 4 + 2ULL * q->size, q->last_used - 1);
    else
        vd_st16(d, q->avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
}

void virtio_driver_enable_cb(VirtioDriverQueue *q)
{
    VirtioDriver *d = q->d;

    q->cb_disabled = FALSE;
    if (q->event_idx)
        vd_st16(d, q->avail + 4 + 2ULL * q->size, q->last_used);
    else
        vd_st16(d, q->avail, 0);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* --- migration --- */

VirtioDriver *virtio_driver_migrate(VirtioDriver *d, HarnessEnv *dst, const char *options)
{
    const GuestRegion *from = &d->e->mem.mem.regions[0], *to = &dst->mem.mem.regions[0];
    g_autoptr(GBytes) state = NULL;
    g_autoptr(GError) err = NULL;
    VirtioDriver *n;

    assert_true(from->gpa == to->gpa && from->size == to->size);
    assert_string_equal(d->e->env.id, dst->env.id);
    harness_loop_run(d->e->loop);
    state = harness_save(d->dev);
    memcpy(to->host, from->host, from->size);

    n = g_memdup2(d, sizeof(*d));
    n->e = dst;
    n->isr_queue = n->isr_config = 0;   /* interrupts are counted per environment */
    memset(&n->bus, 0, sizeof(n->bus));
    n->dev = harness_device_new(dst, d->dev->type->name, options);
    vd_attach(n);
    if (!harness_load(n->dev, state, &err))
        fail_msg("virtio driver: loading the migrated state: %s", err->message);
    /* Decoding came back with the state, at the same addresses. */
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        assert_true(n->bus.where[i] == d->bus.where[i]);
    n->queues = g_new0(VirtioDriverQueue *, n->nr_queues);
    for (unsigned i = 0; i < n->nr_queues; i++) {
        const VirtioDriverQueue *q = d->queues[i];
        VirtioDriverQueue *nq;

        if (!q)
            continue;
        nq = g_memdup2(q, sizeof(*q));
        nq->d = n;
        nq->next = g_memdup2(q->next, sizeof(*q->next) * q->size);
        nq->req = g_memdup2(q->req, sizeof(*q->req) * q->size);
        n->queues[i] = nq;
    }
    return n;
}
