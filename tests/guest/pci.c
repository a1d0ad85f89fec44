/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The PCI plumbing as a guest OS uses it, against vireo-vmm's pci-testdev
 * (run with --device pci-testdev): enumeration through ECAM (from the ACPI
 * MCFG) and through ports 0xcf8/0xcfc, BAR sizing and the addresses the
 * VMM assigned, MMIO, I/O and 64-bit BARs, moving a BAR, MSI-X (table,
 * masking and the pending bit) delivered through KVM's irqfd, a doorbell
 * served through an ioeventfd, and INTx through the IOAPIC as the DSDT's
 * _PRT routes it.
 */
#include "lib/guest.h"

const char test_name[] = "pci";

#define TESTDEV_ID 0x00051b36u          /* device << 16 | vendor */
#define HOST_BRIDGE_ID 0x00081b36u
#define TESTDEV_MAGIC 0x76697265u
#define REG_ID 0x00
#define REG_SCRATCH 0x04
#define REG_DOORBELL 0x08
#define REG_DOORBELLS 0x0c
#define REG_NOTIFY 0x10
#define REG_INTX 0x14
#define REG_IOEVENTFDS 0x18
#define MSIX_VECTOR_BASE 0x60
#define INTX_VECTOR 0x70
#define PCI_INTX_GSI_BASE 16

static volatile unsigned msix_seen[4];
static volatile unsigned intx_seen;

static uint32_t cfg_port(unsigned slot, unsigned reg)
{
    io_out32(0xcf8, 0x80000000u | (slot << 11) | reg);
    return io_in32(0xcfc);
}

static void msix_handler(TrapFrame *tf, void *opaque)
{
    (void)opaque;
    msix_seen[tf->vector - MSIX_VECTOR_BASE]++;
    lapic_eoi();
}

static void intx_handler(TrapFrame *tf, void *opaque)
{
    uintptr_t bar0 = (uintptr_t)opaque;

    (void)tf;
    intx_seen++;
    /* Level-triggered: lower the line before the EOI, as a driver acks. */
    mmio_write32(bar0 + REG_INTX, 0);
    lapic_eoi();
}

static unsigned find_testdev(void)
{
    unsigned found = 0;

    for (unsigned slot = 0; slot < 32; slot++) {
        uint32_t id = pci_cfg_read(slot, 0);
        if (id != cfg_port(slot, 0))
            test_fail("slot %u: ECAM says 0x%x, port 0xcfc says 0x%x", slot, id,
                      cfg_port(slot, 0));
        if (slot == 0 && id != HOST_BRIDGE_ID)
            test_fail("slot 0 is 0x%x, not the host bridge", id);
        if (id == TESTDEV_ID && !found)
            found = slot;
    }
    if (!found)
        test_fail("no pci-testdev on bus 0 (run with --device pci-testdev)");
    /* An empty function reads as all ones. */
    if (mmio_read32(pci_ecam() + (found << 15) + (1 << 12)) != 0xffffffffu)
        test_fail("function 1 of slot %u is not empty", found);
    return found;
}

/* Writes all ones to a BAR and reads back its size mask, as Linux does. */
static uint32_t bar_size_mask(unsigned slot, unsigned bar)
{
    unsigned reg = 0x10 + 4 * bar;
    uint32_t old = pci_cfg_read(slot, reg);
    uint32_t mask;

    pci_cfg_write(slot, reg, 0xffffffffu);
    mask = pci_cfg_read(slot, reg);
    pci_cfg_write(slot, reg, old);
    return mask;
}

int main(void)
{
    unsigned slot;
    uint32_t bar0, bar1, bar4, sz, msix_cap;
    uint64_t bar2;
    uintptr_t table;
    uint32_t gsi;

    pci_ecam();                         /* fails the test without an MCFG */
    lapic_enable();
    slot = find_testdev();
    test_log("pci: ECAM at 0x%lx, pci-testdev in slot %u", (unsigned long)pci_ecam(), slot);

    /* BARs as the VMM assigned them, and their sizes. */
    bar0 = pci_cfg_read(slot, 0x10) & ~0xfu;
    bar1 = pci_cfg_read(slot, 0x14) & ~0xfu;
    bar2 = (pci_cfg_read(slot, 0x18) & ~0xfull) | ((uint64_t)pci_cfg_read(slot, 0x1c) << 32);
    bar4 = pci_cfg_read(slot, 0x20) & ~0x3u;
    if (!bar0 || !bar1 || !bar2 || !bar4)
        test_fail("unassigned BAR: 0x%x 0x%x 0x%lx 0x%x", bar0, bar1, (unsigned long)bar2, bar4);
    if ((sz = bar_size_mask(slot, 0)) != 0xfffff000u)
        test_fail("BAR0 size mask 0x%x, expected 4 KiB", sz);
    if ((bar_size_mask(slot, 2) & ~0xfu) != 0xffff0000u || (pci_cfg_read(slot, 0x18) & 0xc) != 0xc)
        test_fail("BAR2 is not a 64 KiB prefetchable 64-bit BAR");
    if ((bar_size_mask(slot, 4) & ~0x3u) != 0xffffffe0u || !(pci_cfg_read(slot, 0x20) & 1))
        test_fail("BAR4 is not a 32-byte I/O BAR");

    /* Nothing decodes until the guest turns it on. */
    if (mmio_read32(bar0 + REG_ID) != 0xffffffffu)
        test_fail("BAR0 decodes with memory decoding off");
    pci_cfg_write(slot, 0x04, 0x7);    /* I/O, memory, bus master */
    if (mmio_read32(bar0 + REG_ID) != TESTDEV_MAGIC || io_in32(bar4) != TESTDEV_MAGIC)
        test_fail("ID through BAR0 0x%x, through BAR4 0x%x", mmio_read32(bar0 + REG_ID),
                  io_in32(bar4));
    mmio_write32(bar0 + REG_SCRATCH, 0x12345678);
    io_out32(bar4 + 4, 0xcafe);
    if (mmio_read32(bar0 + REG_SCRATCH) != 0x12345678 || io_in32(bar4 + 4) != 0xcafe)
        test_fail("scratch registers do not hold their values");

    /* The 64-bit BAR, moved below 4 GiB where this program's page tables reach. */
    pci_bar64_move(slot, 2, 0xd0000000u);
    mmio_write64(0xd0000000u + 0x100, 0x1122334455667788ULL);
    if (mmio_read64(0xd0000000u + 0x100) != 0x1122334455667788ULL)
        test_fail("64-bit BAR storage does not hold its value");

    /* Move BAR0: the registers follow, the old window goes dead. */
    pci_cfg_write(slot, 0x10, bar0 + 0x100000);
    if (mmio_read32(bar0 + 0x100000 + REG_SCRATCH) != 0x12345678 ||
        mmio_read32(bar0 + REG_ID) != 0xffffffffu)
        test_fail("BAR0 did not move");
    bar0 += 0x100000;

    /* MSI-X: find the capability. */
    msix_cap = pci_cap_find(slot, PCI_CAP_MSIX);
    if (!msix_cap)
        test_fail("no MSI-X capability");
    if (((pci_cfg_read(slot, msix_cap) >> 16) & 0x7ff) != 3 ||
        pci_cfg_read(slot, msix_cap + 4) != 1 || pci_cfg_read(slot, msix_cap + 8) != 0x801)
        test_fail("MSI-X capability: 0x%x 0x%x 0x%x", pci_cfg_read(slot, msix_cap),
                  pci_cfg_read(slot, msix_cap + 4), pci_cfg_read(slot, msix_cap + 8));
    table = bar1;
    for (unsigned v = 0; v < 4; v++) {
        cpu_set_handler(MSIX_VECTOR_BASE + v, msix_handler, NULL);
        pci_msix_set_entry(table, v, MSIX_VECTOR_BASE + v, v == 3);    /* 3 stays masked */
    }
    pci_cfg_write(slot, msix_cap, PCI_MSIX_ENABLE);

    /* Straight from the register path, then the doorbell through its ioeventfd. */
    if (mmio_read32(bar0 + REG_IOEVENTFDS) != 1)
        test_fail("the doorbell has no ioeventfd after BAR0 moved");
    mmio_write32(bar0 + REG_NOTIFY, 1);
    pci_wait_count(&msix_seen[1], 1, "MSI-X vector 1");
    mmio_write32(bar0 + REG_DOORBELL, 2);
    pci_wait_count(&msix_seen[2], 1, "doorbell -> MSI-X vector 2");
    for (unsigned i = 0; i < 100; i++)
        mmio_write32(bar0 + REG_DOORBELL, 0);
    pci_wait_count(&msix_seen[0], 1, "doorbell -> MSI-X vector 0");

    /* A masked vector pends in the PBA and fires when unmasked. */
    mmio_write32(bar0 + REG_NOTIFY, 3);
    if (!(mmio_read32(bar1 + 0x800) & 0x8))
        test_fail("masked vector 3 is not pending in the PBA (0x%x)", mmio_read32(bar1 + 0x800));
    if (msix_seen[3])
        test_fail("masked vector 3 was delivered");
    mmio_write32(table + 16 * 3 + 12, 0);
    pci_wait_count(&msix_seen[3], 1, "unmasked vector 3");
    if (mmio_read32(bar1 + 0x800) & 0x8)
        test_fail("vector 3 still pending after delivery");
    test_log("pci: MSI-X delivered (vectors 0-3, %u doorbells served, masking and PBA)",
             mmio_read32(bar0 + REG_DOORBELLS));

    /* INTx: MSI-X off; the line from the _PRT (slot + pin A) as Linux would route it. */
    pci_cfg_write(slot, msix_cap, 0);
    gsi = PCI_INTX_GSI_BASE + (slot % 8);
    cpu_set_handler(INTX_VECTOR, intx_handler, (void *)(uintptr_t)bar0);
    ioapic_route(gsi, INTX_VECTOR, IOAPIC_LEVEL | IOAPIC_ACTIVE_LOW, lapic_id());
    mmio_write32(bar0 + REG_INTX, 1);
    if (!(pci_cfg_read(slot, 0x04) & (0x8u << 16)))
        test_fail("status register does not show the interrupt");
    pci_wait_count(&intx_seen, 1, "INTx");
    if (mmio_read32(bar0 + REG_INTX) != 0)
        test_fail("INTx still asserted after the handler");
    /* Disabled INTx never reaches the IOAPIC. */
    pci_cfg_write(slot, 0x04, 0x407);
    mmio_write32(bar0 + REG_INTX, 1);
    cpu_delay_us(20000);
    if (intx_seen != 1)
        test_fail("INTx delivered while disabled in the command register");
    ioapic_mask(gsi);
    test_log("pci: INTx on GSI %u, and none while disabled", gsi);
    return 0;
}
