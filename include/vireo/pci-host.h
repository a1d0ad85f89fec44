/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The PCI Express host bridge: bus 0 with 32 slots, configuration space
 * through ports 0xcf8/0xcfc and through ECAM (ACPI MCFG), BARs assigned at
 * attach time the way firmware would (same devices in the same order give
 * the same slots and addresses, so saved state and migration line up),
 * BAR windows mapped on the VMM's buses while the guest enables decoding,
 * and INTx on IOAPIC pins 16-23 as the DSDT's _PRT describes.
 */
#ifndef VIREO_PCI_HOST_H
#define VIREO_PCI_HOST_H

#include <glib.h>
#include <stdint.h>

#include "vireo/bus.h"
#include "vireo/pci.h"

#define PCI_HOST_SLOTS 32
#define PCI_HOST_INTX_GSI_BASE 16
#define PCI_HOST_INTX_GSIS 8

typedef struct PciHost PciHost;

typedef struct PciHostWindows {
    uint64_t io_base, io_end;           /* [base, end) */
    uint64_t mem32_base, mem32_end;
    uint64_t mem64_base, mem64_end;
} PciHostWindows;

/* @intx(gsi) gives the interrupt line for GSI 16-23. */
PciHost *pci_host_new(Bus *pio, Bus *mmio, uint64_t ecam_base, const PciHostWindows *win,
                      IrqLine *(*intx)(void *opaque, unsigned gsi), void *intx_opaque,
                      GError **error);
void pci_host_free(PciHost *host);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PciHost, pci_host_free)

/* Byte accesses to port 0xcf9 reach @reset_register (not owned) at offset 0. */
void pci_host_set_reset_register(PciHost *host, Device *reset_register);

/* Puts @pd in the next free slot and assigns its BARs. The host does not own @pd. */
gboolean pci_host_attach(PciHost *host, PciDevice *pd, GError **error);

/* The GSI of @slot's INTx pin @pin (0 = INTA#), as the _PRT says. */
unsigned pci_host_intx_gsi(unsigned slot, unsigned pin);

/*
 * After the devices' own reset (which clears their BARs): programs the BAR
 * addresses again, as firmware does on every boot.
 */
void pci_host_reset(PciHost *host);

/*
 * The host's own devices, for the machine's reset and save/load: the
 * configuration mechanisms, and the host bridge function 00:00.0.
 */
Device *pci_host_config_device(PciHost *host);
Device *pci_host_bridge_device(PciHost *host);

#endif
