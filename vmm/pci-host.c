/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The PCI Express host bridge (pci-host.h). */
#include <inttypes.h>
#include <string.h>

#include "vireo/pci-host.h"
#include "vireo/util.h"

#define PCI_HOST_CONFIG_STATE_VERSION 1
#define PCI_HOST_BRIDGE_STATE_VERSION 1
#define PCI_CF8_ENABLE 0x80000000u
#define PCI_CF8_LEN 8                   /* 0xcf8-0xcff */
#define PCI_ECAM_BUS_SIZE (1u << 20)    /* 32 slots x 8 functions x 4 KiB */
/* ECAM accesses reach the config device at this offset, port accesses below it. */
#define PCI_HOST_ECAM_OFFSET (1ULL << 32)
#define PCI_VENDOR_REDHAT 0x1b36
#define PCI_DEVICE_REDHAT_PCIE_HOST 0x0008
#define PCI_CLASS_BRIDGE_HOST 0x060000

/* Configuration mechanisms: the 0xcf8 address register, 0xcfc data, ECAM. */
typedef struct PciConfigDevice {
    Device dev;
    PciHost *host;
    uint32_t cf8;                       /* under dev.lock */
    Device *reset_register;             /* 0xcf9 byte accesses go there */
} PciConfigDevice;

typedef struct PciBridgeFunction {
    PciDevice pd;
} PciBridgeFunction;

struct PciHost {
    PciBus bus;
    Bus *pio;
    Bus *mmio;
    uint64_t ecam_base;
    PciHostWindows win;
    uint64_t next_io, next_mem32, next_mem64;
    IrqLine *(*intx)(void *opaque, unsigned gsi);
    void *intx_opaque;
    PciDevice *slots[PCI_HOST_SLOTS];   /* function 0 of each slot; not owned but 0 */
    uint64_t bar_addrs[PCI_HOST_SLOTS][PCI_NUM_BARS];   /* as assigned at attach */
    PciConfigDevice *config;
    PciBridgeFunction *bridge;
};

static PciDevice *find_function(PciHost *host, unsigned bus, unsigned devfn)
{
    /* One bus, single-function devices. */
    if (bus != 0 || (devfn & 7) != 0)
        return NULL;
    return host->slots[devfn >> 3];
}

static uint32_t config_read(PciHost *host, unsigned bus, unsigned devfn, uint32_t reg,
                            size_t len)
{
    PciDevice *pd = find_function(host, bus, devfn);

    /* No device: all ones, which is how a scan learns the slot is empty. */
    if (!pd)
        return 0xffffffffu >> (32 - 8 * len);
    return pci_config_read(pd, reg, len);
}

static void config_write(PciHost *host, unsigned bus, unsigned devfn, uint32_t reg,
                         uint32_t val, size_t len)
{
    PciDevice *pd = find_function(host, bus, devfn);

    if (pd)
        pci_config_write(pd, reg, val, len);
}

/*
 * Decodes an access to the mechanisms: @off < PCI_HOST_ECAM_OFFSET is
 * 0xcf8 + off, otherwise an ECAM offset. Returns FALSE for the address
 * register itself, which the caller handles.
 */
static gboolean decode(PciConfigDevice *c, uint64_t off, size_t len, unsigned *bus,
                       unsigned *devfn, uint32_t *reg)
{
    if (off >= PCI_HOST_ECAM_OFFSET) {
        uint64_t e = off - PCI_HOST_ECAM_OFFSET;
        *bus = e >> 20;
        *devfn = (e >> 12) & 0xff;
        *reg = e & 0xfff;
        /* An access may not cross a dword. */
        return len <= 4 && (*reg & 3) + len <= 4;
    }
    if (off < 4 || !(c->cf8 & PCI_CF8_ENABLE))
        return FALSE;
    *bus = (c->cf8 >> 16) & 0xff;
    *devfn = (c->cf8 >> 8) & 0xff;
    *reg = (c->cf8 & 0xfc) + (off - 4);
    return len <= 4 && (off - 4) + len <= 4;
}

/*
 * 0xcf9 sits inside the address register: a byte access there is the
 * chipset's reset control register (as on PIIX and ICH), a dword access at
 * 0xcf8 the configuration address.
 */
static gboolean is_reset_register(PciConfigDevice *c, uint64_t off, size_t len)
{
    return c->reset_register && off == 1 && len == 1;
}

static void pci_config_dev_read(Device *dev, uint64_t off, void *buf, size_t len)
{
    PciConfigDevice *c = (PciConfigDevice *)dev;
    unsigned bus, devfn;
    uint32_t reg;

    if (is_reset_register(c, off, len)) {
        device_read(c->reset_register, 0, buf, len);
        return;
    }
    if (off < 4 && off + len <= 4) {
        vireo_le_store(buf, len, c->cf8 >> (8 * off));
        return;
    }
    if (!decode(c, off, len, &bus, &devfn, &reg)) {
        memset(buf, 0xff, len);
        return;
    }
    vireo_le_store(buf, len, config_read(c->host, bus, devfn, reg, len));
}

static void pci_config_dev_write(Device *dev, uint64_t off, const void *buf, size_t len)
{
    PciConfigDevice *c = (PciConfigDevice *)dev;
    uint64_t v = vireo_le_load(buf, len);
    unsigned bus, devfn;
    uint32_t reg;

    if (is_reset_register(c, off, len)) {
        device_write(c->reset_register, 0, buf, len);
        return;
    }
    if (off < 4) {
        /* Only a whole dword write sets the address register (PCI 3.0, 3.2.2.3.2). */
        if (off == 0 && len == 4)
            c->cf8 = v & 0x80fffffcu;
        return;
    }
    if (decode(c, off, len, &bus, &devfn, &reg))
        config_write(c->host, bus, devfn, reg, v, len);
}

static void pci_config_dev_reset(Device *dev)
{
    ((PciConfigDevice *)dev)->cf8 = 0;
}

static gboolean pci_config_dev_save(Device *dev, StateWriter *w, GError **error)
{
    state_writer_begin_section(w, dev->id, PCI_HOST_CONFIG_STATE_VERSION);
    state_write_u32(w, "cf8", ((PciConfigDevice *)dev)->cf8);
    state_writer_end_section(w);
    return TRUE;
}

static gboolean pci_config_dev_load(Device *dev, StateReader *r, GError **error)
{
    uint32_t version, cf8;

    if (!state_reader_begin_section(r, dev->id, PCI_HOST_CONFIG_STATE_VERSION, &version, error) ||
        !state_read_u32(r, "cf8", &cf8, error) || !state_reader_end_section(r, error))
        return FALSE;
    ((PciConfigDevice *)dev)->cf8 = cf8 & 0x80fffffcu;
    return TRUE;
}

static void pci_config_dev_free(Device *dev)
{
    device_cleanup(dev);
    g_free(dev);
}

static const DeviceOps pci_config_dev_ops = {
    .read = pci_config_dev_read,
    .write = pci_config_dev_write,
    .reset = pci_config_dev_reset,
    .save = pci_config_dev_save,
    .load = pci_config_dev_load,
    .free = pci_config_dev_free,
};

static const DeviceType pci_config_dev_type = {
    .name = "pci-config",
    .description = "PCI configuration mechanisms (0xcf8/0xcfc and ECAM)",
    .ops = &pci_config_dev_ops,
};

/* The host bridge function 00:00.0: identity only, nothing to program. */
static void bridge_reset(Device *dev)
{
    pci_device_reset_state(pci_device_from_dev(dev));
}

static gboolean bridge_save(Device *dev, StateWriter *w, GError **error)
{
    state_writer_begin_section(w, dev->id, PCI_HOST_BRIDGE_STATE_VERSION);
    pci_device_save_state(pci_device_from_dev(dev), w);
    state_writer_end_section(w);
    return TRUE;
}

static gboolean bridge_load(Device *dev, StateReader *r, GError **error)
{
    uint32_t version;

    return state_reader_begin_section(r, dev->id, PCI_HOST_BRIDGE_STATE_VERSION, &version,
                                      error) &&
           pci_device_load_state(pci_device_from_dev(dev), r, error) &&
           state_reader_end_section(r, error);
}

static void bridge_free(Device *dev)
{
    pci_device_cleanup(pci_device_from_dev(dev));
    g_free(dev);
}

static const DeviceOps bridge_ops = {
    .read = pci_device_read,
    .write = pci_device_write,
    .reset = bridge_reset,
    .save = bridge_save,
    .load = bridge_load,
    .free = bridge_free,
};

static const DeviceType bridge_type = {
    .name = "pcie-host-bridge",
    .description = "PCI Express host bridge function 00:00.0",
    .ops = &bridge_ops,
};

static const PciDeviceOps bridge_pci_ops = { 0 };

unsigned pci_host_intx_gsi(unsigned slot, unsigned pin)
{
    return PCI_HOST_INTX_GSI_BASE + (slot + pin) % PCI_HOST_INTX_GSIS;
}

static gboolean host_bar_moved(PciBus *bus, PciDevice *pd, unsigned bar, uint64_t old,
                               uint64_t new)
{
    PciHost *host = VIREO_CONTAINER_OF(bus, PciHost, bus);
    const PciBar *b = &pd->bars[bar];
    Bus *target = b->type == PCI_BAR_IO ? host->pio : host->mmio;
    g_autoptr(GError) err = NULL;

    if (old)
        bus_remove(target, old, &pd->dev);
    if (!new)
        return TRUE;
    if (!bus_add(target, new, b->size, &pd->dev, PCI_BAR_OFFSET(bar), &err)) {
        /* The guest put a BAR on top of something else: it does not decode. */
        vireo_guest_warn("%s: BAR %u at 0x%" PRIx64 " not mapped: %s", pd->dev.id, bar, new,
                         err->message);
        return FALSE;
    }
    return TRUE;
}

static const PciBusOps host_bus_ops = {
    .bar_moved = host_bar_moved,
};

PciHost *pci_host_new(Bus *pio, Bus *mmio, uint64_t ecam_base, const PciHostWindows *win,
                      IrqLine *(*intx)(void *opaque, unsigned gsi), void *intx_opaque,
                      GError **error)
{
    g_autoptr(PciHost) host = g_new0(PciHost, 1);
    static const PciIds bridge_ids = {
        .vendor = PCI_VENDOR_REDHAT,
        .device = PCI_DEVICE_REDHAT_PCIE_HOST,
        .subsystem_vendor = PCI_VENDOR_REDHAT,
        .subsystem = PCI_DEVICE_REDHAT_PCIE_HOST,
        .class_code = PCI_CLASS_BRIDGE_HOST,
    };

    host->bus.ops = &host_bus_ops;
    host->pio = pio;
    host->mmio = mmio;
    host->ecam_base = ecam_base;
    host->win = *win;
    host->next_io = win->io_base;
    host->next_mem32 = win->mem32_base;
    host->next_mem64 = win->mem64_base;
    host->intx = intx;
    host->intx_opaque = intx_opaque;

    host->config = g_new0(PciConfigDevice, 1);
    device_init(&host->config->dev, &pci_config_dev_type, "pci-config");
    host->config->host = host;
    if (!bus_add(pio, 0xcf8, PCI_CF8_LEN, &host->config->dev, 0, error) ||
        !bus_add(mmio, ecam_base, PCI_ECAM_BUS_SIZE, &host->config->dev, PCI_HOST_ECAM_OFFSET,
                 error))
        return NULL;

    host->bridge = g_new0(PciBridgeFunction, 1);
    pci_device_init(&host->bridge->pd, &bridge_type, "pci-host-bridge", &bridge_pci_ops,
                    &bridge_ids);
    if (!pci_host_attach(host, &host->bridge->pd, error))
        return NULL;
    return g_steal_pointer(&host);
}

void pci_host_free(PciHost *host)
{
    if (!host)
        return;
    if (host->config) {
        bus_remove(host->pio, 0xcf8, &host->config->dev);
        bus_remove(host->mmio, host->ecam_base, &host->config->dev);
        device_free(&host->config->dev);
    }
    if (host->bridge)
        device_free(&host->bridge->pd.dev);
    g_free(host);
}

/* Next address for a BAR of @size in [*next, end), aligned to its size. */
static gboolean place(uint64_t *next, uint64_t end, uint64_t size, uint64_t *addr)
{
    uint64_t a = VIREO_ALIGN_UP(*next, size);

    if (a < *next || a > end || size > end - a)
        return FALSE;
    *addr = a;
    *next = a + size;
    return TRUE;
}

/* Chooses @pd's BAR addresses into @addrs, as firmware would at boot. */
static gboolean assign_bars(PciHost *host, PciDevice *pd, uint64_t addrs[PCI_NUM_BARS],
                            GError **error)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        const PciBar *b = &pd->bars[i];
        gboolean ok;

        switch (b->type) {
        case PCI_BAR_IO:
            ok = place(&host->next_io, host->win.io_end, b->size, &addrs[i]);
            break;
        case PCI_BAR_MEM32:
            ok = place(&host->next_mem32, host->win.mem32_end, b->size, &addrs[i]);
            break;
        case PCI_BAR_MEM64:
            ok = place(&host->next_mem64, host->win.mem64_end, b->size, &addrs[i]);
            break;
        default:
            continue;
        }
        if (!ok) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                        "%s: no room for BAR %u (%" PRIu64 " bytes) in the PCI window",
                        pd->dev.id, i, b->size);
            return FALSE;
        }
    }
    return TRUE;
}

/* Writes the assigned addresses; decoding stays off until the guest enables it. */
static void program_bars(PciDevice *pd, const uint64_t addrs[PCI_NUM_BARS])
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        const PciBar *b = &pd->bars[i];
        uint32_t off = PCI_BASE_ADDRESS_0 + 4 * i;
        uint32_t type_bits;

        if (b->type == PCI_BAR_UNUSED)
            continue;
        type_bits = pci_get(pd, off, 4) & (b->type == PCI_BAR_IO ? 0x3u : 0xfu);
        pci_set(pd, off, 4, type_bits | (uint32_t)addrs[i]);
        if (b->type == PCI_BAR_MEM64)
            pci_set(pd, off + 4, 4, addrs[i] >> 32);
    }
}

gboolean pci_host_attach(PciHost *host, PciDevice *pd, GError **error)
{
    unsigned slot = 0;

    while (slot < PCI_HOST_SLOTS && host->slots[slot])
        slot++;
    if (slot == PCI_HOST_SLOTS) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: all %d PCI slots are taken", pd->dev.id, PCI_HOST_SLOTS);
        return FALSE;
    }
    if (!assign_bars(host, pd, host->bar_addrs[slot], error))
        return FALSE;
    program_bars(pd, host->bar_addrs[slot]);
    pd->bus = &host->bus;
    pd->devfn = slot << 3;
    if (pci_get(pd, PCI_INTERRUPT_PIN, 1)) {
        unsigned gsi = pci_host_intx_gsi(slot, pci_get(pd, PCI_INTERRUPT_PIN, 1) - 1);
        pd->intx = host->intx ? host->intx(host->intx_opaque, gsi) : NULL;
    }
    host->slots[slot] = pd;
    return TRUE;
}

Device *pci_host_bridge_device(PciHost *host)
{
    return &host->bridge->pd.dev;
}

Device *pci_host_config_device(PciHost *host)
{
    return &host->config->dev;
}

void pci_host_reset(PciHost *host)
{
    for (unsigned slot = 0; slot < PCI_HOST_SLOTS; slot++) {
        PciDevice *pd = host->slots[slot];

        if (!pd)
            continue;
        g_mutex_lock(&pd->dev.lock);
        program_bars(pd, host->bar_addrs[slot]);
        g_mutex_unlock(&pd->dev.lock);
    }
}

void pci_host_set_reset_register(PciHost *host, Device *reset_register)
{
    host->config->reset_register = reset_register;
}
