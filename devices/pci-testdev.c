/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pci-testdev: a PCI function for testing the PCI plumbing from a guest
 * (tests/guest/pci.c) and without one (tests/devices): every kind of BAR,
 * MSI-X, INTx and a doorbell served through an ioeventfd. Like QEMU's
 * device of the same ID it has no guest OS driver; its registers are ours.
 *
 * BAR0 (32-bit MMIO, 4 KiB): registers below.
 * BAR1 (32-bit MMIO, 4 KiB): MSI-X table at 0, PBA at 0x800 (4 vectors).
 * BAR2 (64-bit prefetchable MMIO, 64 KiB): plain storage.
 * BAR4 (I/O, 32 bytes): ID at 0, scratch at 4.
 */
#include <string.h>

#include "vireo/pci.h"
#include "vireo/util.h"

#define TESTDEV_STATE_VERSION 1
#define TESTDEV_VENDOR 0x1b36
#define TESTDEV_DEVICE 0x0005
#define TESTDEV_CLASS 0x00ff00          /* unclassified device */
#define TESTDEV_MAGIC 0x76697265        /* "vire" */
#define TESTDEV_VECTORS 4
#define TESTDEV_STORE_SIZE (64 * 1024)

/* BAR0 registers */
#define TESTDEV_REG_ID 0x00
#define TESTDEV_REG_SCRATCH 0x04
#define TESTDEV_REG_DOORBELL 0x08       /* write v: vector v from the event loop */
#define TESTDEV_REG_DOORBELLS 0x0c      /* doorbells served so far */
#define TESTDEV_REG_NOTIFY 0x10         /* write v: vector v at once */
#define TESTDEV_REG_INTX 0x14           /* INTx level */
#define TESTDEV_REG_IOEVENTFDS 0x18     /* doorbells registered with the host */

typedef struct TestDev TestDev;

/* What a doorbell's ioeventfd handler gets: which device, which vector. */
typedef struct TestDevRing {
    TestDev *t;
    unsigned vector;
} TestDevRing;

struct TestDev {
    PciDevice pd;
    EventLoop *loop;
    IoEventService *ioevents;
    IoEvent *doorbell[TESTDEV_VECTORS];
    uint32_t scratch;
    uint32_t io_scratch;
    uint32_t doorbells;
    uint8_t *store;
    TestDevRing rings[TESTDEV_VECTORS];
};

static TestDev *testdev_from_pci(PciDevice *pd)
{
    return (TestDev *)pd;
}

/* Loop thread: the doorbell's work, whichever way it arrived. */
static void testdev_ring(TestDev *t, unsigned vector)
{
    g_mutex_lock(&t->pd.dev.lock);
    t->doorbells++;
    if (pci_msix_enabled(&t->pd))
        pci_msix_notify(&t->pd, vector);
    g_mutex_unlock(&t->pd.dev.lock);
}

static void on_doorbell(void *opaque)
{
    TestDevRing *r = opaque;
    testdev_ring(r->t, r->vector);
}

static void bar0_read(TestDev *t, uint64_t off, void *buf, size_t len)
{
    uint32_t v;

    switch (off) {
    case TESTDEV_REG_ID: v = TESTDEV_MAGIC; break;
    case TESTDEV_REG_SCRATCH: v = t->scratch; break;
    case TESTDEV_REG_DOORBELLS: v = t->doorbells; break;
    case TESTDEV_REG_INTX: v = t->pd.intx_level; break;
    case TESTDEV_REG_IOEVENTFDS: v = t->doorbell[0] != NULL; break;
    default: v = 0; break;
    }
    vireo_le_store(buf, len, v);
}

static void bar0_write(TestDev *t, uint64_t off, const void *buf, size_t len)
{
    uint32_t v = vireo_le_load(buf, len);

    switch (off) {
    case TESTDEV_REG_SCRATCH:
        t->scratch = v;
        break;
    case TESTDEV_REG_DOORBELL:
        /* Without an ioeventfd the write arrives here: same work, on the loop. */
        if (v < TESTDEV_VECTORS)
            event_loop_call(t->loop, on_doorbell, &t->rings[v]);
        break;
    case TESTDEV_REG_NOTIFY:
        pci_msix_notify(&t->pd, v);
        break;
    case TESTDEV_REG_INTX:
        pci_set_intx(&t->pd, v & 1);
        break;
    default:
        vireo_guest_warn("%s: write to read-only register 0x%x", t->pd.dev.id, (unsigned)off);
        break;
    }
}

static void testdev_bar_read(PciDevice *pd, unsigned bar, uint64_t off, void *buf, size_t len)
{
    TestDev *t = testdev_from_pci(pd);

    if (bar == 0 && len == 4 && off % 4 == 0)
        bar0_read(t, off, buf, len);
    else if (bar == 2)
        memcpy(buf, t->store + off, len);
    else if (bar == 4 && off == 0 && len == 4)
        vireo_le_store(buf, 4, TESTDEV_MAGIC);
    else if (bar == 4 && off == 4 && len == 4)
        vireo_le_store(buf, 4, t->io_scratch);
    else
        memset(buf, 0xff, len);
}

static void testdev_bar_write(PciDevice *pd, unsigned bar, uint64_t off, const void *buf,
                              size_t len)
{
    TestDev *t = testdev_from_pci(pd);

    if (bar == 0 && len == 4 && off % 4 == 0)
        bar0_write(t, off, buf, len);
    else if (bar == 2)
        memcpy(t->store + off, buf, len);
    else if (bar == 4 && off == 4 && len == 4)
        t->io_scratch = vireo_le_load(buf, 4);
}

/* The doorbell follows BAR0 wherever the guest puts it. */
static void testdev_bar_mapped(PciDevice *pd, unsigned bar, uint64_t addr)
{
    TestDev *t = testdev_from_pci(pd);
    g_autoptr(GError) err = NULL;

    if (bar != 0 || !t->ioevents)
        return;
    for (unsigned v = 0; v < TESTDEV_VECTORS; v++) {
        ioevent_remove(t->doorbell[v]);
        t->doorbell[v] = NULL;
        if (!addr)
            continue;
        t->doorbell[v] = ioevent_add(t->ioevents, TRUE, addr + TESTDEV_REG_DOORBELL, 4, TRUE, v,
                                     on_doorbell, &t->rings[v], &err);
        if (!t->doorbell[v]) {
            /* The register path still works, just with an exit per ring. */
            g_debug("%s: doorbell without ioeventfd: %s", pd->dev.id, err->message);
            g_clear_error(&err);
        }
    }
}

static const PciDeviceOps testdev_pci_ops = {
    .bar_read = testdev_bar_read,
    .bar_write = testdev_bar_write,
    .bar_mapped = testdev_bar_mapped,
};

static void testdev_reset(Device *dev)
{
    TestDev *t = (TestDev *)dev;

    pci_device_reset_state(&t->pd);
    t->scratch = 0;
    t->io_scratch = 0;
    t->doorbells = 0;
    memset(t->store, 0, TESTDEV_STORE_SIZE);
}

static gboolean testdev_save(Device *dev, StateWriter *w, GError **error)
{
    TestDev *t = (TestDev *)dev;

    state_writer_begin_section(w, dev->id, TESTDEV_STATE_VERSION);
    pci_device_save_state(&t->pd, w);
    state_write_u32(w, "scratch", t->scratch);
    state_write_u32(w, "io-scratch", t->io_scratch);
    state_write_u32(w, "doorbells", t->doorbells);
    state_write_bytes(w, "store", t->store, TESTDEV_STORE_SIZE);
    state_writer_end_section(w);
    return TRUE;
}

static gboolean testdev_load(Device *dev, StateReader *r, GError **error)
{
    TestDev *t = (TestDev *)dev;
    uint32_t version;

    return state_reader_begin_section(r, dev->id, TESTDEV_STATE_VERSION, &version, error) &&
           pci_device_load_state(&t->pd, r, error) &&
           state_read_u32(r, "scratch", &t->scratch, error) &&
           state_read_u32(r, "io-scratch", &t->io_scratch, error) &&
           state_read_u32(r, "doorbells", &t->doorbells, error) &&
           state_read_bytes(r, "store", t->store, TESTDEV_STORE_SIZE, error) &&
           state_reader_end_section(r, error);
}

static void testdev_free(Device *dev)
{
    TestDev *t = (TestDev *)dev;

    for (unsigned v = 0; v < TESTDEV_VECTORS; v++)
        ioevent_remove(t->doorbell[v]);
    g_free(t->store);
    pci_device_cleanup(&t->pd);
    g_free(t);
}

static Device *testdev_create(const DeviceEnv *env, const char *options, GError **error);

static const DeviceOps testdev_ops = {
    .read = pci_device_read,
    .write = pci_device_write,
    .reset = testdev_reset,
    .save = testdev_save,
    .load = testdev_load,
    .free = testdev_free,
};

static const DeviceType testdev_type = {
    .name = "pci-testdev",
    .description = "PCI test function: MMIO, I/O and 64-bit BARs, MSI-X, INTx, doorbell",
    .ops = &testdev_ops,
    .pci = TRUE,
    .create = testdev_create,
};

static Device *testdev_create(const DeviceEnv *env, const char *options, GError **error)
{
    static const PciIds ids = {
        .vendor = TESTDEV_VENDOR,
        .device = TESTDEV_DEVICE,
        .subsystem_vendor = TESTDEV_VENDOR,
        .subsystem = TESTDEV_DEVICE,
        .class_code = TESTDEV_CLASS,
        .interrupt_pin = 1,
    };
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    TestDev *t;

    if (!opts || !device_options_check_known(opts, (const char *[]){ NULL }, "pci-testdev",
                                             error))
        return NULL;
    if (!env->loop) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "pci-testdev needs an event loop");
        return NULL;
    }
    t = g_new0(TestDev, 1);
    pci_device_init(&t->pd, &testdev_type, env->id, &testdev_pci_ops, &ids);
    t->loop = env->loop;
    t->ioevents = env->ioevents;
    t->store = g_malloc0(TESTDEV_STORE_SIZE);
    for (unsigned v = 0; v < TESTDEV_VECTORS; v++)
        t->rings[v] = (TestDevRing){ .t = t, .vector = v };
    pci_device_add_bar(&t->pd, 0, PCI_BAR_MEM32, 4096, FALSE);
    pci_device_add_bar(&t->pd, 1, PCI_BAR_MEM32, 4096, FALSE);
    pci_device_add_bar(&t->pd, 2, PCI_BAR_MEM64, TESTDEV_STORE_SIZE, TRUE);
    pci_device_add_bar(&t->pd, 4, PCI_BAR_IO, 32, FALSE);
    if (!pci_device_init_msix(&t->pd, env->msi, TESTDEV_VECTORS, 1, 0, 1, 0x800, error)) {
        testdev_free(&t->pd.dev);
        return NULL;
    }
    return &t->pd.dev;
}

DEVICE_TYPE_REGISTER(testdev_type)
