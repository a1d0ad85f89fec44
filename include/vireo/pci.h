/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * PCI device model: type 0 configuration space, BARs, capabilities, MSI-X
 * and INTx, shared by every PCI device (devices/pci.c). The host bridge
 * (vmm/pci-host.c) owns the slots, reaches configuration space through
 * pci_config_read/write, and maps BARs on the VMM's buses when the guest
 * enables decoding.
 *
 * A PciDevice is a Device: its DeviceOps (installed by pci_device_init)
 * receive BAR accesses with the BAR number in the offset's top bits
 * (PCI_BAR_OFFSET), serve MSI-X table and PBA accesses themselves and pass
 * the rest to the PciDeviceOps of the device model. Everything runs with
 * dev.lock held: the bus takes it for BAR accesses, the host for
 * configuration accesses.
 */
#ifndef VIREO_PCI_H
#define VIREO_PCI_H

#include <glib.h>
#include <stdint.h>

#include "vireo/device.h"
#include "vireo/msi.h"

#define PCI_CONFIG_SPACE_SIZE 4096      /* PCI Express: 4 KiB per function */
#define PCI_CONFIG_LEGACY_SIZE 256
#define PCI_NUM_BARS 6
#define PCI_BAR_SHIFT 48
#define PCI_BAR_OFFSET(bar) ((uint64_t)(bar) << PCI_BAR_SHIFT)

/* Configuration space registers (PCI Local Bus 3.0, 6.2) */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define  PCI_COMMAND_IO 0x1
#define  PCI_COMMAND_MEMORY 0x2
#define  PCI_COMMAND_MASTER 0x4
#define  PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS 0x06
#define  PCI_STATUS_INTERRUPT 0x08
#define  PCI_STATUS_CAP_LIST 0x10
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_CLASS_DEVICE 0x0a
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_LATENCY_TIMER 0x0d
#define PCI_HEADER_TYPE 0x0e
#define PCI_BASE_ADDRESS_0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_EXP 0x10
#define PCI_CAP_ID_MSIX 0x11
#define PCI_MSIX_FLAGS 2                /* offsets inside the MSI-X capability */
#define  PCI_MSIX_FLAGS_QSIZE 0x07ff
#define  PCI_MSIX_FLAGS_MASKALL 0x4000
#define  PCI_MSIX_FLAGS_ENABLE 0x8000
#define PCI_MSIX_TABLE 4
#define PCI_MSIX_PBA 8
#define PCI_MSIX_ENTRY_SIZE 16
#define PCI_MSIX_MAX_VECTORS 2048

typedef struct PciDevice PciDevice;
typedef struct PciBus PciBus;

typedef enum {
    PCI_BAR_UNUSED,
    PCI_BAR_IO,
    PCI_BAR_MEM32,
    PCI_BAR_MEM64,                      /* takes this BAR and the next */
} PciBarType;

typedef struct PciBar {
    PciBarType type;
    uint64_t size;                      /* a power of two */
    gboolean prefetchable;
    uint64_t addr;                      /* where it decodes now; 0 when it does not */
} PciBar;

typedef struct PciDeviceOps {
    /* Register access in a BAR (not the MSI-X table or PBA). */
    void (*bar_read)(PciDevice *pd, unsigned bar, uint64_t off, void *buf, size_t len);
    void (*bar_write)(PciDevice *pd, unsigned bar, uint64_t off, const void *buf, size_t len);
    /* A BAR now decodes at @addr (0: no longer decodes). Optional. */
    void (*bar_mapped)(PciDevice *pd, unsigned bar, uint64_t addr);
    /* After the generic handling of a configuration write. Optional. */
    void (*config_written)(PciDevice *pd, uint32_t off, size_t len);
} PciDeviceOps;

/* What the host bridge does for its devices (vmm/pci-host.c, or a test bus). */
typedef struct PciBusOps {
    /*
     * Moves a BAR's decoding window: @old or @new may be 0 (none). FALSE
     * when the new window cannot decode there (it would overlap another
     * device's); the BAR then does not decode.
     */
    gboolean (*bar_moved)(PciBus *bus, PciDevice *pd, unsigned bar, uint64_t old, uint64_t new);
} PciBusOps;

struct PciBus {
    const PciBusOps *ops;
};

typedef struct PciMsixVector {
    uint64_t addr;
    uint32_t data;
    gboolean masked;
    gboolean pending;
    MsiRoute *route;
} PciMsixVector;

typedef struct PciMsix {
    unsigned nr_vectors;                /* 0: no MSI-X */
    uint8_t cap;                        /* capability offset */
    unsigned table_bar;
    uint64_t table_off;
    unsigned pba_bar;
    uint64_t pba_off;
    PciMsixVector *vectors;
    MsiController *msi;
} PciMsix;

struct PciDevice {
    Device dev;
    const PciDeviceOps *ops;
    PciBus *bus;                        /* set when attached */
    unsigned devfn;                     /* slot << 3 | function */
    IrqLine *intx;                      /* set when attached; NULL: no INTx */
    gboolean intx_level;
    uint8_t config[PCI_CONFIG_SPACE_SIZE];
    uint8_t wmask[PCI_CONFIG_SPACE_SIZE];   /* bits the guest may write */
    uint8_t w1cmask[PCI_CONFIG_SPACE_SIZE]; /* bits a write of 1 clears */
    uint8_t cap_next;                   /* next free capability offset */
    PciBar bars[PCI_NUM_BARS];
    PciMsix msix;
};

typedef struct PciIds {
    uint16_t vendor;
    uint16_t device;
    uint16_t subsystem_vendor;
    uint16_t subsystem;
    uint32_t class_code;                /* base << 16 | sub << 8 | prog-if */
    uint8_t revision;
    uint8_t interrupt_pin;              /* 1 = INTA#, 0 = none */
} PciIds;

/*
 * Common set-up for a PCI device model; @ops are the model's own. The
 * model's DeviceOps use pci_device_read/pci_device_write for read/write,
 * and call pci_device_reset_state, pci_device_save_state,
 * pci_device_load_state and pci_device_cleanup from their own
 * reset/save/load/free.
 */
void pci_device_init(PciDevice *pd, const DeviceType *type, const char *id,
                     const PciDeviceOps *ops, const PciIds *ids);
void pci_device_cleanup(PciDevice *pd);
/* DeviceOps read/write: BAR accesses, offsets from PCI_BAR_OFFSET(bar). */
void pci_device_read(Device *dev, uint64_t off, void *buf, size_t len);
void pci_device_write(Device *dev, uint64_t off, const void *buf, size_t len);

static inline PciDevice *pci_device_from_dev(Device *dev)
{
    return (PciDevice *)dev;
}

/* Declares BAR @bar (before the device is attached). */
void pci_device_add_bar(PciDevice *pd, unsigned bar, PciBarType type, uint64_t size,
                        gboolean prefetchable);
/* Reserves @len bytes of configuration space for capability @id; returns its offset. */
uint8_t pci_device_add_capability(PciDevice *pd, uint8_t id, uint8_t len);
/*
 * MSI-X with @nr vectors, table at @table_off of BAR @table_bar and PBA at
 * @pba_off of BAR @pba_bar (regions the device does not use otherwise).
 */
gboolean pci_device_init_msix(PciDevice *pd, MsiController *msi, unsigned nr,
                              unsigned table_bar, uint64_t table_off, unsigned pba_bar,
                              uint64_t pba_off, GError **error);

/* Configuration space access from the host bridge; takes dev.lock. */
uint32_t pci_config_read(PciDevice *pd, uint32_t off, size_t len);
void pci_config_write(PciDevice *pd, uint32_t off, uint32_t val, size_t len);

/* With dev.lock held. */
gboolean pci_msix_enabled(const PciDevice *pd);
/* Interrupts the guest through vector @vector (pending while masked). */
void pci_msix_notify(PciDevice *pd, unsigned vector);
/* INTx level (ignored while the guest disables INTx in the command register). */
void pci_set_intx(PciDevice *pd, gboolean level);
gboolean pci_bus_master_enabled(const PciDevice *pd);

/* Generic state: configuration space, BAR addresses, MSI-X table and PBA. */
void pci_device_save_state(PciDevice *pd, StateWriter *w);
gboolean pci_device_load_state(PciDevice *pd, StateReader *r, GError **error);
/* Power-on state of the generic parts (BARs unmapped, MSI-X off). */
void pci_device_reset_state(PciDevice *pd);

/* Little-endian helpers for configuration space. */
static inline uint32_t pci_get(const PciDevice *pd, uint32_t off, size_t len)
{
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++)
        v |= (uint32_t)pd->config[off + i] << (8 * i);
    return v;
}

static inline void pci_set(PciDevice *pd, uint32_t off, size_t len, uint32_t v)
{
    for (size_t i = 0; i < len; i++)
        pd->config[off + i] = v >> (8 * i);
}

#endif
