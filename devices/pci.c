/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The parts of a PCI function every device model shares: type 0
 * configuration space with its write masks, BAR sizing and decoding, the
 * capability list, MSI-X (table, PBA, masking) and INTx.
 */
#include <inttypes.h>
#include <string.h>

#include "vireo/pci.h"
#include "vireo/util.h"

#define PCI_STATE_VERSION 1
#define PCI_CAP_START 0x40
#define PCI_BAR_IO_MASK 0x3u
#define PCI_BAR_MEM_MASK 0xfu
#define PCI_BAR_MEM_TYPE_64 0x4u
#define PCI_BAR_MEM_PREFETCH 0x8u
#define PCI_MSIX_CTRL_MASKBIT 0x1u
#define PCI_MSIX_BIR_MASK 0x7u

static void set_wmask(PciDevice *pd, uint32_t off, size_t len, uint32_t mask)
{
    for (size_t i = 0; i < len; i++)
        pd->wmask[off + i] = mask >> (8 * i);
}

void pci_device_init(PciDevice *pd, const DeviceType *type, const char *id,
                     const PciDeviceOps *ops, const PciIds *ids)
{
    device_init(&pd->dev, type, id);
    pd->ops = ops;
    pci_set(pd, PCI_VENDOR_ID, 2, ids->vendor);
    pci_set(pd, PCI_DEVICE_ID, 2, ids->device);
    pci_set(pd, PCI_REVISION_ID, 1, ids->revision);
    pci_set(pd, PCI_CLASS_PROG, 3, ids->class_code);
    pci_set(pd, PCI_HEADER_TYPE, 1, 0);
    pci_set(pd, PCI_SUBSYSTEM_VENDOR_ID, 2, ids->subsystem_vendor);
    pci_set(pd, PCI_SUBSYSTEM_ID, 2, ids->subsystem);
    pci_set(pd, PCI_INTERRUPT_PIN, 1, ids->interrupt_pin);
    set_wmask(pd, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
              PCI_COMMAND_INTX_DISABLE | 0x140 /* parity, SERR# */);
    set_wmask(pd, PCI_CACHE_LINE_SIZE, 1, 0xff);
    set_wmask(pd, PCI_LATENCY_TIMER, 1, 0xff);
    set_wmask(pd, PCI_INTERRUPT_LINE, 1, 0xff);
    pd->cap_next = PCI_CAP_START;
}

void pci_device_cleanup(PciDevice *pd)
{
    for (unsigned i = 0; i < pd->msix.nr_vectors; i++)
        msi_route_free(pd->msix.vectors[i].route);
    g_free(pd->msix.vectors);
    device_cleanup(&pd->dev);
}

void pci_device_add_bar(PciDevice *pd, unsigned bar, PciBarType type, uint64_t size,
                        gboolean prefetchable)
{
    uint32_t off = PCI_BASE_ADDRESS_0 + 4 * bar;
    uint64_t mask;

    g_assert(bar < PCI_NUM_BARS && size && (size & (size - 1)) == 0);
    g_assert(type != PCI_BAR_MEM64 || bar + 1 < PCI_NUM_BARS);
    g_assert(type == PCI_BAR_IO ? size >= 4 : size >= 16);
    pd->bars[bar] = (PciBar){ .type = type, .size = size, .prefetchable = prefetchable };
    mask = ~(size - 1);
    switch (type) {
    case PCI_BAR_IO:
        pci_set(pd, off, 4, 0x1);
        set_wmask(pd, off, 4, (uint32_t)mask & ~PCI_BAR_IO_MASK);
        break;
    case PCI_BAR_MEM32:
        pci_set(pd, off, 4, prefetchable ? PCI_BAR_MEM_PREFETCH : 0);
        set_wmask(pd, off, 4, (uint32_t)mask & ~PCI_BAR_MEM_MASK);
        break;
    case PCI_BAR_MEM64:
        pci_set(pd, off, 4, PCI_BAR_MEM_TYPE_64 | (prefetchable ? PCI_BAR_MEM_PREFETCH : 0));
        set_wmask(pd, off, 4, (uint32_t)mask & ~PCI_BAR_MEM_MASK);
        set_wmask(pd, off + 4, 4, mask >> 32);
        break;
    case PCI_BAR_UNUSED:
        break;
    }
}

uint8_t pci_device_add_capability(PciDevice *pd, uint8_t id, uint8_t len)
{
    uint8_t off = pd->cap_next;
    uint8_t last;

    g_assert(len >= 2 && off + len <= PCI_CONFIG_LEGACY_SIZE);
    pd->config[off] = id;
    pd->config[off + 1] = 0;
    /* Append to the list: the status register says there is one. */
    if (!(pci_get(pd, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) {
        pd->config[PCI_CAPABILITY_LIST] = off;
        pci_set(pd, PCI_STATUS, 2, pci_get(pd, PCI_STATUS, 2) | PCI_STATUS_CAP_LIST);
    } else {
        last = pd->config[PCI_CAPABILITY_LIST];
        while (pd->config[last + 1])
            last = pd->config[last + 1];
        pd->config[last + 1] = off;
    }
    pd->cap_next = VIREO_ALIGN_UP(off + len, 4);
    return off;
}

gboolean pci_device_init_msix(PciDevice *pd, MsiController *msi, unsigned nr,
                              unsigned table_bar, uint64_t table_off, unsigned pba_bar,
                              uint64_t pba_off, GError **error)
{
    PciMsix *m = &pd->msix;

    g_assert(nr > 0 && nr <= PCI_MSIX_MAX_VECTORS);
    g_assert(table_bar < PCI_NUM_BARS && pba_bar < PCI_NUM_BARS);
    g_assert(table_off % 8 == 0 && pba_off % 8 == 0);
    g_assert(table_off + nr * PCI_MSIX_ENTRY_SIZE <= pd->bars[table_bar].size);
    g_assert(pba_off + VIREO_ALIGN_UP(nr, 64) / 8 <= pd->bars[pba_bar].size);
    m->vectors = g_new0(PciMsixVector, nr);
    m->nr_vectors = nr;
    m->msi = msi;
    for (unsigned i = 0; i < nr; i++) {
        m->vectors[i].masked = TRUE;
        m->vectors[i].route = msi ? msi_route_new(msi, error) : NULL;
        if (msi && !m->vectors[i].route)
            return FALSE;
    }
    m->table_bar = table_bar;
    m->table_off = table_off;
    m->pba_bar = pba_bar;
    m->pba_off = pba_off;
    m->cap = pci_device_add_capability(pd, PCI_CAP_ID_MSIX, 12);
    pci_set(pd, m->cap + PCI_MSIX_FLAGS, 2, nr - 1);
    pci_set(pd, m->cap + PCI_MSIX_TABLE, 4, table_off | table_bar);
    pci_set(pd, m->cap + PCI_MSIX_PBA, 4, pba_off | pba_bar);
    set_wmask(pd, m->cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    return TRUE;
}

gboolean pci_msix_enabled(const PciDevice *pd)
{
    return pd->msix.nr_vectors &&
           (pci_get(pd, pd->msix.cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE);
}

static gboolean msix_function_masked(const PciDevice *pd)
{
    return pci_get(pd, pd->msix.cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_MASKALL;
}

gboolean pci_bus_master_enabled(const PciDevice *pd)
{
    return pci_get(pd, PCI_COMMAND, 2) & PCI_COMMAND_MASTER;
}

static void msix_fire(PciDevice *pd, unsigned vector)
{
    PciMsixVector *v = &pd->msix.vectors[vector];

    if (v->route)
        msi_route_fire(v->route);
}

void pci_msix_notify(PciDevice *pd, unsigned vector)
{
    PciMsixVector *v;

    if (vector >= pd->msix.nr_vectors || !pci_msix_enabled(pd))
        return;
    v = &pd->msix.vectors[vector];
    /* A device must not write MSI messages without bus mastering. */
    if (v->masked || msix_function_masked(pd) || !pci_bus_master_enabled(pd)) {
        v->pending = TRUE;
        return;
    }
    msix_fire(pd, vector);
}

/*
 * Programs the route of an unmasked vector with its message. Routes of
 * masked vectors are left alone: the guest writes an entry a word at a
 * time while it is masked, and each route change costs the VMM a
 * KVM_SET_GSI_ROUTING.
 */
static void msix_sync_route(PciDevice *pd, unsigned vector)
{
    PciMsixVector *v = &pd->msix.vectors[vector];

    if (!v->masked && v->route)
        msi_route_set(v->route, v->addr, v->data);
}

/* Sends what became deliverable after an unmask. */
static void msix_deliver_pending(PciDevice *pd)
{
    if (!pci_msix_enabled(pd) || msix_function_masked(pd))
        return;
    for (unsigned i = 0; i < pd->msix.nr_vectors; i++) {
        PciMsixVector *v = &pd->msix.vectors[i];
        if (v->pending && !v->masked) {
            v->pending = FALSE;
            msix_fire(pd, i);
        }
    }
}

static void update_intx(PciDevice *pd)
{
    gboolean disabled = pci_get(pd, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE;
    uint32_t status = pci_get(pd, PCI_STATUS, 2);

    /* The status bit shows the device's own level even while it is disabled. */
    pci_set(pd, PCI_STATUS, 2, pd->intx_level ? status | PCI_STATUS_INTERRUPT
                                              : status & ~PCI_STATUS_INTERRUPT);
    irq_line_set(pd->intx, pd->intx_level && !disabled && !pci_msix_enabled(pd));
}

void pci_set_intx(PciDevice *pd, gboolean level)
{
    pd->intx_level = level;
    update_intx(pd);
}

static gboolean in_region(uint64_t off, size_t len, uint64_t start, uint64_t size)
{
    return off >= start && off - start < size && len <= size - (off - start);
}

static gboolean msix_table_access(PciDevice *pd, unsigned bar, uint64_t off, size_t len)
{
    const PciMsix *m = &pd->msix;
    return m->nr_vectors && bar == m->table_bar &&
           in_region(off, len, m->table_off, (uint64_t)m->nr_vectors * PCI_MSIX_ENTRY_SIZE);
}

static gboolean msix_pba_access(PciDevice *pd, unsigned bar, uint64_t off, size_t len)
{
    const PciMsix *m = &pd->msix;
    return m->nr_vectors && bar == m->pba_bar &&
           in_region(off, len, m->pba_off, VIREO_ALIGN_UP(m->nr_vectors, 64) / 8);
}

static uint32_t msix_entry_get(const PciMsixVector *v, unsigned reg)
{
    switch (reg) {
    case 0: return (uint32_t)v->addr;
    case 4: return v->addr >> 32;
    case 8: return v->data;
    default: return v->masked ? PCI_MSIX_CTRL_MASKBIT : 0;
    }
}

static void msix_table_read(PciDevice *pd, uint64_t off, void *buf, size_t len)
{
    uint8_t *out = buf;

    /* Byte by byte keeps any access width simple; the table is small. */
    for (size_t i = 0; i < len; i++) {
        uint64_t o = off - pd->msix.table_off + i;
        const PciMsixVector *v = &pd->msix.vectors[o / PCI_MSIX_ENTRY_SIZE];
        unsigned reg = o % PCI_MSIX_ENTRY_SIZE;
        out[i] = msix_entry_get(v, reg & ~3u) >> (8 * (reg & 3));
    }
}

static void msix_table_write(PciDevice *pd, uint64_t off, const void *buf, size_t len)
{
    const uint8_t *in = buf;
    uint64_t first = (off - pd->msix.table_off) / PCI_MSIX_ENTRY_SIZE;
    uint64_t last = (off - pd->msix.table_off + len - 1) / PCI_MSIX_ENTRY_SIZE;

    for (size_t i = 0; i < len; i++) {
        uint64_t o = off - pd->msix.table_off + i;
        PciMsixVector *v = &pd->msix.vectors[o / PCI_MSIX_ENTRY_SIZE];
        unsigned reg = o % PCI_MSIX_ENTRY_SIZE;
        unsigned shift = 8 * (reg & 3);
        uint32_t word = msix_entry_get(v, reg & ~3u);

        word = (word & ~(0xffu << shift)) | ((uint32_t)in[i] << shift);
        switch (reg & ~3u) {
        case 0: v->addr = (v->addr & ~0xffffffffULL) | word; break;
        case 4: v->addr = (v->addr & 0xffffffffULL) | ((uint64_t)word << 32); break;
        case 8: v->data = word; break;
        default: v->masked = word & PCI_MSIX_CTRL_MASKBIT; break;
        }
    }
    for (uint64_t i = first; i <= last; i++)
        msix_sync_route(pd, i);
    msix_deliver_pending(pd);
}

static void msix_pba_read(PciDevice *pd, uint64_t off, void *buf, size_t len)
{
    uint8_t *out = buf;

    for (size_t i = 0; i < len; i++) {
        uint64_t byte = off - pd->msix.pba_off + i;
        uint8_t v = 0;
        for (unsigned bit = 0; bit < 8; bit++) {
            uint64_t n = byte * 8 + bit;
            if (n < pd->msix.nr_vectors && pd->msix.vectors[n].pending)
                v |= 1u << bit;
        }
        out[i] = v;
    }
}

void pci_device_read(Device *dev, uint64_t off, void *buf, size_t len)
{
    PciDevice *pd = pci_device_from_dev(dev);
    unsigned bar = off >> PCI_BAR_SHIFT;

    off &= PCI_BAR_OFFSET(1) - 1;
    if (msix_table_access(pd, bar, off, len)) {
        msix_table_read(pd, off, buf, len);
    } else if (msix_pba_access(pd, bar, off, len)) {
        msix_pba_read(pd, off, buf, len);
    } else if (bar < PCI_NUM_BARS && pd->ops->bar_read) {
        pd->ops->bar_read(pd, bar, off, buf, len);
    } else {
        memset(buf, 0xff, len);
    }
}

void pci_device_write(Device *dev, uint64_t off, const void *buf, size_t len)
{
    PciDevice *pd = pci_device_from_dev(dev);
    unsigned bar = off >> PCI_BAR_SHIFT;

    off &= PCI_BAR_OFFSET(1) - 1;
    if (msix_table_access(pd, bar, off, len))
        msix_table_write(pd, off, buf, len);
    else if (msix_pba_access(pd, bar, off, len))
        return;                         /* the PBA is read-only */
    else if (bar < PCI_NUM_BARS && pd->ops->bar_write)
        pd->ops->bar_write(pd, bar, off, buf, len);
}

/* The address BAR @bar decodes at now, or 0 if it does not decode. */
static uint64_t bar_decode_addr(const PciDevice *pd, unsigned bar)
{
    const PciBar *b = &pd->bars[bar];
    uint32_t cmd = pci_get(pd, PCI_COMMAND, 2);
    uint32_t off = PCI_BASE_ADDRESS_0 + 4 * bar;
    uint64_t addr;

    switch (b->type) {
    case PCI_BAR_IO:
        if (!(cmd & PCI_COMMAND_IO))
            return 0;
        addr = pci_get(pd, off, 4) & ~PCI_BAR_IO_MASK;
        /* x86 port space is 64 KiB; what lies beyond cannot decode. */
        return addr + b->size <= 0x10000 ? addr : 0;
    case PCI_BAR_MEM32:
        if (!(cmd & PCI_COMMAND_MEMORY))
            return 0;
        addr = pci_get(pd, off, 4) & ~PCI_BAR_MEM_MASK;
        return addr + b->size <= 0x100000000ULL ? addr : 0;
    case PCI_BAR_MEM64:
        if (!(cmd & PCI_COMMAND_MEMORY))
            return 0;
        addr = (pci_get(pd, off, 4) & ~PCI_BAR_MEM_MASK) | ((uint64_t)pci_get(pd, off + 4, 4) << 32);
        /* Above the 52-bit physical address limit nothing decodes. */
        return addr + b->size <= (1ULL << 52) && addr + b->size > addr ? addr : 0;
    case PCI_BAR_UNUSED:
        break;
    }
    return 0;
}

/*
 * After a write to the command register or a BAR: move every window whose
 * decoding changed. A BAR being sized (all ones written) does not decode,
 * as its address is out of range or the guest has turned decoding off.
 */
static void update_bars(PciDevice *pd)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        PciBar *b = &pd->bars[i];
        uint64_t addr;

        if (b->type == PCI_BAR_UNUSED)
            continue;
        addr = bar_decode_addr(pd, i);
        if (addr == b->addr)
            continue;
        if (pd->bus && !pd->bus->ops->bar_moved(pd->bus, pd, i, b->addr, addr))
            addr = 0;
        b->addr = addr;
        if (pd->ops->bar_mapped)
            pd->ops->bar_mapped(pd, i, addr);
    }
}

uint32_t pci_config_read(PciDevice *pd, uint32_t off, size_t len)
{
    uint32_t v;

    if (off >= PCI_CONFIG_SPACE_SIZE || len > 4 || len > PCI_CONFIG_SPACE_SIZE - off)
        return 0xffffffffu;
    g_mutex_lock(&pd->dev.lock);
    v = pci_get(pd, off, len);
    g_mutex_unlock(&pd->dev.lock);
    return v;
}

void pci_config_write(PciDevice *pd, uint32_t off, uint32_t val, size_t len)
{
    gboolean msix_was_on, msix_was_masked;

    if (off >= PCI_CONFIG_SPACE_SIZE || len > 4 || len > PCI_CONFIG_SPACE_SIZE - off)
        return;
    g_mutex_lock(&pd->dev.lock);
    msix_was_on = pci_msix_enabled(pd);
    msix_was_masked = pd->msix.nr_vectors && msix_function_masked(pd);
    for (size_t i = 0; i < len; i++) {
        uint8_t b = val >> (8 * i);
        uint8_t wm = pd->wmask[off + i], w1c = pd->w1cmask[off + i];

        pd->config[off + i] = (pd->config[off + i] & ~wm) | (b & wm);
        pd->config[off + i] &= ~(b & w1c);
    }
    if (off < PCI_BASE_ADDRESS_0 + 4 * PCI_NUM_BARS && off + len > PCI_COMMAND)
        update_bars(pd);
    if (off < PCI_COMMAND + 2 && off + len > PCI_COMMAND) {
        update_intx(pd);
        msix_deliver_pending(pd);
    }
    if (pd->msix.nr_vectors && off <= pd->msix.cap + PCI_MSIX_FLAGS + 1u &&
        off + len > pd->msix.cap + PCI_MSIX_FLAGS + 0u) {
        if (pci_msix_enabled(pd) != msix_was_on)
            update_intx(pd);
        if (!msix_function_masked(pd) && (msix_was_masked || !msix_was_on)) {
            for (unsigned i = 0; i < pd->msix.nr_vectors; i++)
                msix_sync_route(pd, i);
            msix_deliver_pending(pd);
        }
    }
    if (pd->ops->config_written)
        pd->ops->config_written(pd, off, len);
    g_mutex_unlock(&pd->dev.lock);
}

void pci_device_reset_state(PciDevice *pd)
{
    /* Command 0: nothing decodes, no bus mastering, MSI-X off. */
    pci_set(pd, PCI_COMMAND, 2, 0);
    /* BAR addresses back to 0; the type bits are read-only and stay. */
    for (uint32_t off = PCI_BASE_ADDRESS_0; off < PCI_BASE_ADDRESS_0 + 4 * PCI_NUM_BARS; off++)
        pd->config[off] &= ~pd->wmask[off];
    update_bars(pd);
    if (pd->msix.nr_vectors) {
        pci_set(pd, pd->msix.cap + PCI_MSIX_FLAGS, 2, pd->msix.nr_vectors - 1);
        for (unsigned i = 0; i < pd->msix.nr_vectors; i++) {
            PciMsixVector *v = &pd->msix.vectors[i];
            v->addr = 0;
            v->data = 0;
            v->masked = TRUE;
            v->pending = FALSE;
        }
    }
    pci_set(pd, PCI_INTERRUPT_LINE, 1, 0);
    pd->intx_level = FALSE;
    update_intx(pd);
}

void pci_device_save_state(PciDevice *pd, StateWriter *w)
{
    g_autofree uint8_t *table = g_malloc0(pd->msix.nr_vectors * PCI_MSIX_ENTRY_SIZE + 1);
    g_autofree uint8_t *pending = g_malloc0(pd->msix.nr_vectors + 1);

    state_write_bytes(w, "pci-config", pd->config, PCI_CONFIG_SPACE_SIZE);
    state_write_u8(w, "pci-intx", pd->intx_level);
    for (unsigned i = 0; i < pd->msix.nr_vectors; i++) {
        const PciMsixVector *v = &pd->msix.vectors[i];
        for (unsigned reg = 0; reg < PCI_MSIX_ENTRY_SIZE; reg += 4)
            vireo_le_store(table + i * PCI_MSIX_ENTRY_SIZE + reg, 4, msix_entry_get(v, reg));
        pending[i] = v->pending;
    }
    state_write_bytes(w, "pci-msix-table", table, pd->msix.nr_vectors * PCI_MSIX_ENTRY_SIZE);
    state_write_bytes(w, "pci-msix-pending", pending, pd->msix.nr_vectors);
}

gboolean pci_device_load_state(PciDevice *pd, StateReader *r, GError **error)
{
    g_autofree uint8_t *config = g_malloc(PCI_CONFIG_SPACE_SIZE);
    size_t n = pd->msix.nr_vectors;
    g_autofree uint8_t *table = g_malloc0(n * PCI_MSIX_ENTRY_SIZE + 1);
    g_autofree uint8_t *pending = g_malloc0(n + 1);
    uint8_t intx;

    if (!state_read_bytes(r, "pci-config", config, PCI_CONFIG_SPACE_SIZE, error) ||
        !state_read_u8(r, "pci-intx", &intx, error) ||
        !state_read_bytes(r, "pci-msix-table", table, n * PCI_MSIX_ENTRY_SIZE, error) ||
        !state_read_bytes(r, "pci-msix-pending", pending, n, error))
        return FALSE;
    /* Only what the guest could have written may differ: identity stays ours. */
    for (unsigned i = 0; i < PCI_CONFIG_SPACE_SIZE; i++) {
        if ((config[i] ^ pd->config[i]) & ~(pd->wmask[i] | pd->w1cmask[i]) &&
            i != PCI_STATUS && i != PCI_STATUS + 1) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "PCI configuration byte 0x%x is 0x%02x in the saved state, the "
                        "device has 0x%02x there and it is read-only", i, config[i],
                        pd->config[i]);
            return FALSE;
        }
    }
    memcpy(pd->config, config, PCI_CONFIG_SPACE_SIZE);
    for (unsigned i = 0; i < n; i++) {
        PciMsixVector *v = &pd->msix.vectors[i];
        const uint8_t *e = table + i * PCI_MSIX_ENTRY_SIZE;
        v->addr = vireo_le_load(e, 8);
        v->data = vireo_le_load(e + 8, 4);
        v->masked = vireo_le_load(e + 12, 4) & PCI_MSIX_CTRL_MASKBIT;
        v->pending = pending[i] != 0;
        msix_sync_route(pd, i);
    }
    pd->intx_level = intx != 0;
    update_bars(pd);
    update_intx(pd);
    return TRUE;
}
