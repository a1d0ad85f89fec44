/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The PCI device model (devices/pci.c) through pci-testdev, without KVM:
 * configuration space as Linux's PCI core uses it (BAR sizing, command
 * register, capability list), BAR windows following the guest, MSI-X
 * (table, function and vector masks, PBA), INTx, the doorbell through an
 * ioeventfd and through the register, state round trips, and a hostile
 * guest.
 */
#include <string.h>

#include "harness.h"
#include "vireo/pci.h"

#define TESTDEV "pci-testdev"
#define REG_ID 0x00
#define REG_SCRATCH 0x04
#define REG_DOORBELL 0x08
#define REG_DOORBELLS 0x0c
#define REG_NOTIFY 0x10
#define REG_INTX 0x14
#define REG_IOEVENTFDS 0x18
#define MAGIC 0x76697265u

/* A PCI bus that records where BARs decode. */
typedef struct FakeBus {
    PciBus bus;
    uint64_t where[PCI_NUM_BARS];
    unsigned moves;
    gboolean refuse;            /* the next move fails (overlap) */
} FakeBus;

static gboolean fake_bar_moved(PciBus *bus, PciDevice *pd, unsigned bar, uint64_t old,
                               uint64_t new)
{
    FakeBus *f = (FakeBus *)bus;

    assert_int_equal(f->where[bar], old);
    f->moves++;
    if (new && f->refuse) {
        f->refuse = FALSE;
        f->where[bar] = 0;
        return FALSE;
    }
    f->where[bar] = new;
    return TRUE;
}

static const PciBusOps fake_bus_ops = { .bar_moved = fake_bar_moved };

typedef struct Fixture {
    HarnessEnv *e;
    FakeBus bus;
    PciDevice *pd;
} Fixture;

static int setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->e = harness_env_new("testdev", 0);
    f->pd = pci_device_from_dev(harness_device_new(f->e, TESTDEV, NULL));
    f->bus.bus.ops = &fake_bus_ops;
    f->pd->bus = &f->bus.bus;
    f->pd->intx = &f->e->irq.line;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;

    device_free(&f->pd->dev);
    harness_loop_run(f->e->loop);
    harness_env_free(f->e);
    g_free(f);
    return 0;
}

static uint32_t cfg(Fixture *f, uint32_t off, size_t len)
{
    return pci_config_read(f->pd, off, len);
}

static void cfg_w(Fixture *f, uint32_t off, size_t len, uint32_t v)
{
    pci_config_write(f->pd, off, v, len);
}

static uint32_t bar_r(Fixture *f, unsigned bar, uint64_t off, size_t len)
{
    return harness_read(&f->pd->dev, PCI_BAR_OFFSET(bar) + off, len);
}

static void bar_w(Fixture *f, unsigned bar, uint64_t off, size_t len, uint64_t v)
{
    harness_write(&f->pd->dev, PCI_BAR_OFFSET(bar) + off, len, v);
}

/* Firmware's job in the VMM: BARs at fixed places, then decoding on. */
static void map_bars(Fixture *f)
{
    cfg_w(f, PCI_BASE_ADDRESS_0, 4, 0xc0000000);
    cfg_w(f, PCI_BASE_ADDRESS_0 + 4, 4, 0xc0001000);
    cfg_w(f, PCI_BASE_ADDRESS_0 + 8, 4, 0x0);
    cfg_w(f, PCI_BASE_ADDRESS_0 + 12, 4, 0x1);      /* 64-bit BAR2 at 4 GiB */
    cfg_w(f, PCI_BASE_ADDRESS_0 + 16, 4, 0xc000);
    cfg_w(f, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static void test_identity_and_sizing(void **state)
{
    Fixture *f = *state;
    uint32_t cap;
    unsigned caps = 0;

    assert_int_equal(cfg(f, PCI_VENDOR_ID, 2), 0x1b36);
    assert_int_equal(cfg(f, PCI_DEVICE_ID, 2), 0x0005);
    assert_int_equal(cfg(f, PCI_REVISION_ID, 4) >> 8, 0x00ff00);
    assert_int_equal(cfg(f, PCI_INTERRUPT_PIN, 1), 1);
    /* Identity is read-only. */
    cfg_w(f, PCI_VENDOR_ID, 4, 0xdeadbeef);
    assert_int_equal(cfg(f, PCI_VENDOR_ID, 4), 0x00051b36);
    /* Linux's __pci_read_base(): all ones, read the mask, restore. */
    cfg_w(f, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
    assert_int_equal(cfg(f, PCI_BASE_ADDRESS_0, 4), 0xfffff000);
    cfg_w(f, PCI_BASE_ADDRESS_0 + 8, 4, 0xffffffff);
    cfg_w(f, PCI_BASE_ADDRESS_0 + 12, 4, 0xffffffff);
    assert_int_equal(cfg(f, PCI_BASE_ADDRESS_0 + 8, 4), 0xffff000c);
    assert_int_equal(cfg(f, PCI_BASE_ADDRESS_0 + 12, 4), 0xffffffff);
    cfg_w(f, PCI_BASE_ADDRESS_0 + 16, 4, 0xffffffff);
    assert_int_equal(cfg(f, PCI_BASE_ADDRESS_0 + 16, 4), 0xffffffe1);
    /* Unused BARs and the ROM read as 0 and stay 0. */
    cfg_w(f, PCI_BASE_ADDRESS_0 + 20, 4, 0xffffffff);
    assert_int_equal(cfg(f, PCI_BASE_ADDRESS_0 + 20, 4), 0);
    cfg_w(f, 0x30, 4, 0xffffffff);
    assert_int_equal(cfg(f, 0x30, 4), 0);
    /* Sizing with decoding off moved nothing. */
    assert_int_equal(f->bus.moves, 0);
    /* A capability list that ends, with MSI-X in it. */
    assert_true(cfg(f, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    for (cap = cfg(f, PCI_CAPABILITY_LIST, 1); cap; cap = cfg(f, cap + 1, 1)) {
        assert_true(cap >= 0x40 && cap < 0x100 && ++caps < 48);
        if (cfg(f, cap, 1) == PCI_CAP_ID_MSIX)
            assert_int_equal(cfg(f, cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE, 3);
    }
    assert_int_equal(caps, 1);
    /* Outside configuration space, or wider than 4: all ones, nothing written. */
    assert_int_equal(cfg(f, 0x1000, 4), 0xffffffff);
    assert_int_equal(cfg(f, 0xffe, 4), 0xffffffff);
    cfg_w(f, 0xfff, 4, 0x12345678);
}

static void test_bars_follow_guest(void **state)
{
    Fixture *f = *state;

    map_bars(f);
    assert_int_equal(f->bus.where[0], 0xc0000000);
    assert_int_equal(f->bus.where[2], 0x100000000ULL);
    assert_int_equal(f->bus.where[4], 0xc000);
    assert_int_equal(f->pd->bars[0].addr, 0xc0000000);
    assert_int_equal(bar_r(f, 0, REG_ID, 4), MAGIC);
    assert_int_equal(bar_r(f, 4, 0, 4), MAGIC);
    /* The doorbell's ioeventfds follow BAR0. */
    assert_int_equal(harness_ioevents_count(&f->e->ioevents), 4);
    assert_true(harness_ioevents_ring(&f->e->ioevents, TRUE, 0xc0000000 + REG_DOORBELL, 1));
    cfg_w(f, PCI_BASE_ADDRESS_0, 4, 0xd0000000);
    assert_int_equal(f->bus.where[0], 0xd0000000);
    assert_false(harness_ioevents_ring(&f->e->ioevents, TRUE, 0xc0000000 + REG_DOORBELL, 1));
    assert_true(harness_ioevents_ring(&f->e->ioevents, TRUE, 0xd0000000 + REG_DOORBELL, 1));
    /* Memory decoding off: every memory BAR goes, I/O stays. */
    cfg_w(f, PCI_COMMAND, 2, PCI_COMMAND_IO);
    assert_int_equal(f->bus.where[0], 0);
    assert_int_equal(f->bus.where[2], 0);
    assert_int_equal(f->bus.where[4], 0xc000);
    assert_int_equal(harness_ioevents_count(&f->e->ioevents), 0);
    /* A window the host refuses (an overlap) does not decode, and is retried later. */
    f->bus.refuse = TRUE;
    cfg_w(f, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    assert_int_equal(f->pd->bars[0].addr, 0);
    cfg_w(f, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    assert_int_equal(f->pd->bars[0].addr, 0xd0000000);
    /* A BAR beyond what can decode (I/O above 64 KiB) does not. */
    cfg_w(f, PCI_BASE_ADDRESS_0 + 16, 4, 0xfffffff0);
    assert_int_equal(f->bus.where[4], 0);
}

static void test_doorbell_paths(void **state)
{
    Fixture *f = *state;

    map_bars(f);
    /* Through the register: the work waits for the loop. */
    bar_w(f, 0, REG_DOORBELL, 4, 0);
    assert_int_equal(bar_r(f, 0, REG_DOORBELLS, 4), 0);
    harness_loop_run(f->e->loop);
    assert_int_equal(bar_r(f, 0, REG_DOORBELLS, 4), 1);
    /* Through the ioeventfd: the handler runs on the loop thread directly. */
    assert_true(harness_ioevents_ring(&f->e->ioevents, TRUE, 0xc0000000 + REG_DOORBELL, 3));
    assert_int_equal(bar_r(f, 0, REG_DOORBELLS, 4), 2);
    assert_int_equal(bar_r(f, 0, REG_IOEVENTFDS, 4), 1);
    /* A vector out of range is ignored either way. */
    bar_w(f, 0, REG_DOORBELL, 4, 99);
    harness_loop_run(f->e->loop);
    assert_int_equal(bar_r(f, 0, REG_DOORBELLS, 4), 2);
}

/* Programs MSI-X entry @v with message data @data, masked or not. */
static void msix_entry(Fixture *f, unsigned v, uint32_t data, gboolean masked)
{
    bar_w(f, 1, 16 * v, 4, 0xfee00000);
    bar_w(f, 1, 16 * v + 4, 4, 0);
    bar_w(f, 1, 16 * v + 8, 4, data);
    bar_w(f, 1, 16 * v + 12, 4, masked);
}

static void test_msix(void **state)
{
    Fixture *f = *state;
    HarnessMsi *msi = &f->e->msi;
    uint8_t cap = f->pd->msix.cap;
    unsigned sets_before;

    map_bars(f);
    assert_int_equal(msi->routes->len, 4);
    /* Entries start masked; a masked entry's route is not touched. */
    assert_int_equal(bar_r(f, 1, 12, 4), 1);
    bar_w(f, 1, 0, 4, 0xfee00000);
    bar_w(f, 1, 8, 4, 0x41);
    assert_int_equal(((HarnessMsiRoute *)g_ptr_array_index(msi->routes, 0))->sets, 0);
    msix_entry(f, 0, 0x40, FALSE);
    msix_entry(f, 1, 0x41, FALSE);
    assert_int_equal(bar_r(f, 1, 8, 4), 0x40);
    /* Disabled: a notification goes nowhere, INTx is still the way. */
    bar_w(f, 0, REG_NOTIFY, 4, 0);
    assert_int_equal(harness_msi_fires(msi, 0x40), 0);
    cfg_w(f, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    bar_w(f, 0, REG_NOTIFY, 4, 0);
    bar_w(f, 0, REG_NOTIFY, 4, 1);
    assert_int_equal(harness_msi_fires(msi, 0x40), 1);
    assert_int_equal(harness_msi_fires(msi, 0x41), 1);
    /* Vector mask: pending in the PBA, delivered on unmask. */
    bar_w(f, 1, 12, 4, 1);
    bar_w(f, 0, REG_NOTIFY, 4, 0);
    assert_int_equal(bar_r(f, 1, 0x800, 8) & 1, 1);
    assert_int_equal(harness_msi_fires(msi, 0x40), 1);
    bar_w(f, 1, 12, 4, 0);
    assert_int_equal(harness_msi_fires(msi, 0x40), 2);
    assert_int_equal(bar_r(f, 1, 0x800, 8) & 1, 0);
    /* Function mask: the same for every vector. */
    cfg_w(f, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    bar_w(f, 0, REG_NOTIFY, 4, 1);
    assert_int_equal(harness_msi_fires(msi, 0x41), 1);
    cfg_w(f, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    assert_int_equal(harness_msi_fires(msi, 0x41), 2);
    /* No bus mastering: no MSI writes either. */
    cfg_w(f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    bar_w(f, 0, REG_NOTIFY, 4, 1);
    assert_int_equal(harness_msi_fires(msi, 0x41), 2);
    cfg_w(f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    assert_int_equal(harness_msi_fires(msi, 0x41), 3);
    /* Rewriting an unmasked entry updates its route (the VMM skips unchanged ones). */
    sets_before = ((HarnessMsiRoute *)g_ptr_array_index(msi->routes, 1))->sets;
    bar_w(f, 1, 16 + 8, 4, 0x41);
    assert_int_equal(((HarnessMsiRoute *)g_ptr_array_index(msi->routes, 1))->sets,
                     sets_before + 1);
    /* The PBA is read-only; table accesses of any width work. */
    bar_w(f, 1, 0x800, 8, ~0ULL);
    assert_int_equal(bar_r(f, 1, 0x800, 8), 0);
    bar_w(f, 1, 16 * 2 + 8, 1, 0x77);
    assert_int_equal(bar_r(f, 1, 16 * 2 + 8, 2), 0x77);
}

static void test_intx(void **state)
{
    Fixture *f = *state;
    HarnessIrq *irq = &f->e->irq;

    map_bars(f);
    bar_w(f, 0, REG_INTX, 4, 1);
    assert_true(irq->level);
    assert_true(cfg(f, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    /* Disabled in the command register: the line drops, the status bit stays. */
    cfg_w(f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
    assert_false(irq->level);
    assert_true(cfg(f, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    cfg_w(f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    assert_true(irq->level);
    /* MSI-X enabled: INTx is not used. */
    cfg_w(f, f->pd->msix.cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    assert_false(irq->level);
    cfg_w(f, f->pd->msix.cap + PCI_MSIX_FLAGS, 2, 0);
    assert_true(irq->level);
    bar_w(f, 0, REG_INTX, 4, 0);
    assert_false(irq->level);
}

static void test_reset_and_state(void **state)
{
    Fixture *f = *state;
    g_autoptr(HarnessEnv) e2 = harness_env_new("testdev", 0);
    FakeBus bus2 = { .bus.ops = &fake_bus_ops };
    g_autoptr(GBytes) saved = NULL;
    PciDevice *pd2;
    g_autoptr(GError) err = NULL;

    map_bars(f);
    msix_entry(f, 2, 0x52, TRUE);
    cfg_w(f, f->pd->msix.cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    bar_w(f, 0, REG_NOTIFY, 4, 2);                  /* pending */
    bar_w(f, 0, REG_SCRATCH, 4, 0xabcd);
    bar_w(f, 2, 0x40, 8, 0x0102030405060708ULL);
    saved = harness_save(&f->pd->dev);

    /* Into a fresh device: decoding, MSI-X and the pending bit come back. */
    pd2 = pci_device_from_dev(harness_device_new(e2, TESTDEV, NULL));
    pd2->bus = &bus2.bus;
    assert_true(harness_load(&pd2->dev, saved, &err));
    assert_int_equal(bus2.where[0], 0xc0000000);
    assert_int_equal(harness_ioevents_count(&e2->ioevents), 4);
    assert_int_equal(harness_read(&pd2->dev, PCI_BAR_OFFSET(0) + REG_SCRATCH, 4), 0xabcd);
    assert_int_equal(harness_read(&pd2->dev, PCI_BAR_OFFSET(2) + 0x40, 8),
                     0x0102030405060708ULL);
    assert_int_equal(harness_read(&pd2->dev, PCI_BAR_OFFSET(1) + 0x800, 8), 0x4);
    harness_write(&pd2->dev, PCI_BAR_OFFSET(1) + 16 * 2 + 12, 4, 0);
    assert_int_equal(harness_msi_fires(&e2->msi, 0x52), 1);
    device_free(&pd2->dev);
    harness_loop_run(e2->loop);

    /* State that changes read-only identity is refused, the device untouched. */
    {
        g_autoptr(GBytes) bad = harness_state_poked(saved, "pci-config", 4 + PCI_VENDOR_ID, 0x11);
        harness_load_fails(&f->pd->dev, bad);
        assert_int_equal(cfg(f, PCI_VENDOR_ID, 2), 0x1b36);
    }
    harness_check_bad_loads(&f->pd->dev, saved);

    /* Reset: nothing decodes, MSI-X off and masked, BARs cleared. */
    device_reset(&f->pd->dev);
    assert_int_equal(f->bus.where[0], 0);
    assert_int_equal(cfg(f, PCI_BASE_ADDRESS_0, 4), 0);
    assert_false(pci_msix_enabled(f->pd));
    assert_int_equal(harness_ioevents_count(&f->e->ioevents), 0);
}

static void test_hostile_guest(void **state)
{
    Fixture *f = *state;
    GRand *rand = g_rand_new_with_seed(0x9c1);

    /* Random configuration and BAR accesses never crash or hang. */
    for (unsigned i = 0; i < 200000; i++) {
        static const size_t lens[] = { 1, 2, 4 };
        size_t len = lens[g_rand_int_range(rand, 0, 3)];
        uint32_t off = g_rand_int_range(rand, 0, 0x1100);

        switch (g_rand_int_range(rand, 0, 5)) {
        case 0:
            cfg(f, off, len);
            break;
        case 1:
            /* Mostly the interesting header and capability bytes. */
            cfg_w(f, off & 0xff, len, g_rand_int(rand));
            break;
        case 2:
            bar_r(f, g_rand_int_range(rand, 0, 6), g_rand_int_range(rand, 0, 0x1000) & ~7u,
                  len);
            break;
        case 3:
            bar_w(f, g_rand_int_range(rand, 0, 6), g_rand_int_range(rand, 0, 0x1000) & ~7u,
                  len, g_rand_int(rand));
            break;
        default:
            harness_loop_run(f->e->loop);
            break;
        }
    }
    g_rand_free(rand);
    harness_loop_run(f->e->loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity_and_sizing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bars_follow_guest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_doorbell_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_and_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_guest, setup, teardown),
    };
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
