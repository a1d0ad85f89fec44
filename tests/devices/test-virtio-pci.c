/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The virtio-pci transport and the virtio core (devices/virtio/pci.c,
 * virtio.c) through the test driver (virtio-driver.h), without KVM:
 * the capability layout as Linux reads it, feature negotiation, the status
 * machine, reset, config_generation, MSI-X vectors and NO_VECTOR, queue
 * set-up validation, notifications through the doorbell and the register
 * path, ISR and INTx, DEVICE_NEEDS_RESET when a ring breaks, state saved
 * in the middle of traffic, and a hostile guest.
 *
 * The device under test is "virtio-testdev", defined here: three queues
 * (an echo queue, a sink, a spare), two feature bits of which one needs
 * the other, and an 8-byte configuration space (a counter the host
 * changes, a scratch word the driver writes). It is also the smallest
 * example of a virtio device type.
 */
#include <string.h>

#include "virtio-driver.h"

/* --- the test device --- */

#define TD_ID 0x3f
#define TD_F_A 0
#define TD_F_B 1                        /* needs TD_F_A */
#define TD_F_UNOFFERED 2
#define TD_CFG_COUNTER 0                /* le32, read-only */
#define TD_CFG_SCRATCH 4                /* le32 */
#define TD_CONFIG_SIZE 8
#define TD_Q_ECHO 0
#define TD_Q_SINK 1
#define TD_Q_SPARE 2
#define TD_NR_QUEUES 3
#define TD_ECHO_SIZE 256

typedef struct TestVdev {
    VirtioDevice vdev;
    VirtqElement *elem;
    uint32_t counter;
    uint32_t scratch;
    unsigned resets;
    unsigned activations;
    unsigned notifies[TD_NR_QUEUES];
} TestVdev;

static void td_config_read(VirtioDevice *vdev, uint32_t off, void *buf, size_t len)
{
    TestVdev *t = (TestVdev *)vdev;
    uint8_t cfg[TD_CONFIG_SIZE];

    vireo_le_store(cfg + TD_CFG_COUNTER, 4, t->counter);
    vireo_le_store(cfg + TD_CFG_SCRATCH, 4, t->scratch);
    memcpy(buf, cfg + off, len);
}

static void td_config_write(VirtioDevice *vdev, uint32_t off, const void *buf, size_t len)
{
    TestVdev *t = (TestVdev *)vdev;
    uint8_t cfg[4];

    if (off < TD_CFG_SCRATCH)
        return;                         /* the counter is read-only */
    vireo_le_store(cfg, 4, t->scratch);
    memcpy(cfg + (off - TD_CFG_SCRATCH), buf, MIN(len, sizeof(cfg) - (off - TD_CFG_SCRATCH)));
    t->scratch = vireo_le_load(cfg, 4);
}

static gboolean td_validate_features(VirtioDevice *vdev, uint64_t features)
{
    return !(features & VIRTIO_BIT(TD_F_B)) || (features & VIRTIO_BIT(TD_F_A));
}

static void td_activate(VirtioDevice *vdev)
{
    ((TestVdev *)vdev)->activations++;
}

/*
 * Echo copies what it reads into what it writes; the others complete
 * with nothing written. A broken ring is left to the core to report.
 */
static void td_queue_notify(VirtioDevice *vdev, unsigned index)
{
    TestVdev *t = (TestVdev *)vdev;
    VirtQueue *vq = vdev->queues[index].vq;
    gboolean pushed = FALSE;
    int r;

    t->notifies[index]++;
    do {
        virtq_disable_notification(vq);
        while ((r = virtq_pop(vq, t->elem)) == 1) {
            uint32_t n = 0;

            if (index == TD_Q_ECHO) {
                uint8_t buf[4096];

                while (n < MIN(t->elem->out_len, t->elem->in_len)) {
                    size_t chunk = virtq_element_read(t->elem, n, buf,
                                                      MIN(sizeof(buf), t->elem->in_len - n));
                    if (!chunk)
                        break;
                    virtq_element_write(t->elem, n, buf, chunk);
                    n += chunk;
                }
            }
            virtq_push(vq, t->elem, n);
            pushed = TRUE;
        }
    } while (r == 0 && virtq_enable_notification(vq));
    if (pushed)
        virtio_notify_queue(vdev, index);
}

static void td_reset(VirtioDevice *vdev)
{
    TestVdev *t = (TestVdev *)vdev;

    t->resets++;
    t->scratch = 0;
}

static gboolean td_save(VirtioDevice *vdev, StateWriter *w, GError **error)
{
    TestVdev *t = (TestVdev *)vdev;

    state_write_u32(w, "td-counter", t->counter);
    state_write_u32(w, "td-scratch", t->scratch);
    return TRUE;
}

static gboolean td_load(VirtioDevice *vdev, StateReader *r, GError **error)
{
    TestVdev *t = (TestVdev *)vdev;
    uint32_t counter, scratch;

    if (!state_read_u32(r, "td-counter", &counter, error) ||
        !state_read_u32(r, "td-scratch", &scratch, error))
        return FALSE;
    t->counter = counter;
    t->scratch = scratch;
    return TRUE;
}

static void td_free(VirtioDevice *vdev)
{
    TestVdev *t = (TestVdev *)vdev;

    virtq_element_free(t->elem);
    g_free(t);
}

static const VirtioDeviceOps td_ops = {
    .device_id = TD_ID,
    .config_read = td_config_read,
    .config_write = td_config_write,
    .validate_features = td_validate_features,
    .activate = td_activate,
    .queue_notify = td_queue_notify,
    .reset = td_reset,
    .save = td_save,
    .load = td_load,
    .free = td_free,
};

static Device *td_create(const DeviceEnv *env, const char *options, GError **error);

VIRTIO_PCI_DEVICE_TYPE(td_type, "virtio-testdev", "virtio transport test device", td_create)

static Device *td_create(const DeviceEnv *env, const char *options, GError **error)
{
    TestVdev *t = g_new0(TestVdev, 1);

    virtio_device_init(&t->vdev, &td_ops, env, VIRTIO_BIT(TD_F_A) | VIRTIO_BIT(TD_F_B),
                       TD_CONFIG_SIZE);
    virtio_device_add_queue(&t->vdev, TD_ECHO_SIZE);
    virtio_device_add_queue(&t->vdev, 16);
    virtio_device_add_queue(&t->vdev, 8);
    t->elem = virtq_element_new(t->vdev.queues[0].vq);
    return virtio_pci_device_new(&td_type, env, &t->vdev, error);
}

/* --- helpers --- */

#define ALL_FEATURES VIRTIO_DRIVER_ALL_FEATURES
#define F(bit) VIRTIO_BIT(bit)

static TestVdev *td_of(VirtioDriver *d)
{
    return (TestVdev *)virtio_pci_get_device(virtio_driver_device(d));
}

/* The host changes the counter, as a device backend would from the loop. */
static void td_bump_counter(VirtioDriver *d)
{
    TestVdev *t = td_of(d);

    virtio_device_lock(&t->vdev);
    t->counter++;
    virtio_notify_config(&t->vdev);
    virtio_device_unlock(&t->vdev);
}

static VirtioDriver *td_driver(HarnessEnv *e, VirtioDriverIrqMode mode)
{
    VirtioDriverParams p = { .irq_mode = mode };

    return virtio_driver_new(e, "virtio-testdev", NULL, &p);
}

/* Initialised with @features, all queues up, DRIVER_OK. */
static VirtioDriver *td_ready(HarnessEnv *e, VirtioDriverIrqMode mode, uint64_t features)
{
    VirtioDriver *d = td_driver(e, mode);

    assert_true(virtio_driver_init(d, features));
    for (unsigned i = 0; i < TD_NR_QUEUES; i++)
        virtio_driver_setup_queue(d, i, 0);
    virtio_driver_ok(d);
    return d;
}

/*
 * A request on the echo queue: @len bytes of @pattern out, @len bytes in.
 * It lives in guest RAM the driver allocated (never freed, like the rest),
 * so requests a test abandons leak nothing.
 */
typedef struct Echo {
    uint64_t out, in;
    uint32_t len;
} Echo;

static Echo *echo_add(VirtioDriver *d, VirtioDriverQueue *q, uint32_t len, uint8_t pattern)
{
    Echo *x = virtio_driver_mem(d, virtio_driver_alloc(d, sizeof(Echo), 8), sizeof(Echo));

    x->len = len;
    x->out = virtio_driver_alloc(d, len, 16);
    x->in = virtio_driver_alloc(d, len, 16);
    memset(virtio_driver_mem(d, x->out, len), pattern, len);
    assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ x->out, len }, 1,
                                  &(VirtioDriverBuf){ x->in, len }, 1, x) >= 0);
    return x;
}

/* Collects one used echo, checks it and frees it. */
static void echo_check(VirtioDriver *d, VirtioDriverQueue *q, uint8_t pattern)
{
    uint32_t len = 0;
    Echo *x = virtio_driver_get_used(q, &len);
    const uint8_t *in;

    assert_non_null(x);
    assert_int_equal(len, x->len);
    in = virtio_driver_mem(d, x->in, x->len);
    for (uint32_t i = 0; i < x->len; i++)
        assert_int_equal(in[i], pattern);
}

/* A request of @nout readable and @nin writable parts, echoing @len bytes. */
static Echo *echo_add_split(VirtioDriver *d, VirtioDriverQueue *q, uint32_t len, uint8_t pattern,
                            unsigned nout, unsigned nin)
{
    Echo *x = virtio_driver_mem(d, virtio_driver_alloc(d, sizeof(Echo), 8), sizeof(Echo));
    VirtioDriverBuf out[8], in[8];

    g_assert(nout <= 8 && nin <= 8 && len >= nout && len >= nin);
    x->len = len;
    x->out = virtio_driver_alloc(d, len, 16);
    x->in = virtio_driver_alloc(d, len, 16);
    memset(virtio_driver_mem(d, x->out, len), pattern, len);
    for (unsigned i = 0; i < nout; i++) {
        uint32_t a = len * i / nout, b = len * (i + 1) / nout;
        out[i] = (VirtioDriverBuf){ x->out + a, b - a };
    }
    for (unsigned i = 0; i < nin; i++) {
        uint32_t a = len * i / nin, b = len * (i + 1) / nin;
        in[i] = (VirtioDriverBuf){ x->in + a, b - a };
    }
    assert_true(virtio_driver_add(q, out, nout, in, nin, x) >= 0);
    return x;
}

static uint64_t common_r(VirtioDriver *d, uint32_t off, size_t len)
{
    return virtio_driver_common_read(d, off, len);
}

static void common_w(VirtioDriver *d, uint32_t off, size_t len, uint64_t v)
{
    virtio_driver_common_write(d, off, len, v);
}

static uint64_t select_r(VirtioDriver *d, unsigned queue, uint32_t off, size_t len)
{
    common_w(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, queue);
    return common_r(d, off, len);
}

static void select_w(VirtioDriver *d, unsigned queue, uint32_t off, size_t len, uint64_t v)
{
    common_w(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, queue);
    common_w(d, off, len, v);
}

static uint64_t driver_features_r(VirtioDriver *d)
{
    common_w(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    uint64_t f = common_r(d, VIRTIO_PCI_COMMON_GF, 4);
    common_w(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    return f | common_r(d, VIRTIO_PCI_COMMON_GF, 4) << 32;
}

#define STATUS_AD (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER)
#define STATUS_ADF (STATUS_AD | VIRTIO_STATUS_FEATURES_OK)
#define STATUS_ALL (STATUS_ADF | VIRTIO_STATUS_DRIVER_OK)
#define OFFERED (F(TD_F_A) | F(TD_F_B) | VIRTIO_TRANSPORT_FEATURES)

/* --- tests --- */

/* What Linux's vp_modern_probe() and the PCI core find, field by field. */
static void test_layout(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d = td_driver(e, VIRTIO_DRIVER_MSIX);
    PciDevice *pd = virtio_driver_pci(d);
    const VirtioDriverLayout *l = virtio_driver_layout(d);
    static const uint8_t order[][2] = {
        { PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_COMMON_CFG }, { PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_NOTIFY_CFG },
        { PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_ISR_CFG }, { PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_DEVICE_CFG },
        { PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG }, { PCI_CAP_ID_MSIX, 0 },
    };
    unsigned n = 0;

    assert_int_equal(pci_config_read(pd, PCI_VENDOR_ID, 2), 0x1af4);
    assert_int_equal(pci_config_read(pd, PCI_DEVICE_ID, 2), 0x1040 + TD_ID);
    assert_int_equal(pci_config_read(pd, PCI_REVISION_ID, 1), 1);
    assert_int_equal(pci_config_read(pd, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
    assert_int_equal(pci_config_read(pd, PCI_SUBSYSTEM_ID, 2), 0x1040 + TD_ID);
    assert_int_equal(pci_config_read(pd, PCI_REVISION_ID, 4) >> 8, 0x00ff00);
    assert_int_equal(pci_config_read(pd, PCI_INTERRUPT_PIN, 1), 1);
    /* BAR0 32-bit, BAR2 64-bit and not prefetchable (the ISR reads with a side effect). */
    assert_int_equal(pd->bars[0].type, PCI_BAR_MEM32);
    assert_int_equal(pd->bars[0].size, 0x1000);
    assert_int_equal(pd->bars[2].type, PCI_BAR_MEM64);
    assert_int_equal(pd->bars[2].size, VIRTIO_PCI_REGS_BAR_SIZE);
    assert_int_equal(pci_config_read(pd, PCI_BASE_ADDRESS_0 + 8, 4) & 0xf, 0x4);
    assert_int_equal(pd->bars[1].type, PCI_BAR_UNUSED);
    assert_int_equal(pd->bars[4].type, PCI_BAR_UNUSED);
    assert_int_equal(pd->bars[5].type, PCI_BAR_UNUSED);

    /* The capability list, in order, each with its length byte. */
    for (uint8_t c = pci_config_read(pd, PCI_CAPABILITY_LIST, 1); c;
         c = pci_config_read(pd, c + 1, 1), n++) {
        assert_true(n < G_N_ELEMENTS(order));
        assert_int_equal(pci_config_read(pd, c, 1), order[n][0]);
        if (order[n][0] == PCI_CAP_ID_VNDR) {
            uint8_t len = pci_config_read(pd, c + VIRTIO_PCI_CAP_LEN, 1);

            assert_int_equal(pci_config_read(pd, c + VIRTIO_PCI_CAP_CFG_TYPE, 1), order[n][1]);
            assert_int_equal(len, order[n][1] == VIRTIO_PCI_CAP_NOTIFY_CFG ||
                                  order[n][1] == VIRTIO_PCI_CAP_PCI_CFG ? 20 : 16);
        }
    }
    assert_int_equal(n, G_N_ELEMENTS(order));
    assert_int_equal(l->common.bar, 2);
    assert_int_equal(l->common.offset, VIRTIO_PCI_COMMON_OFFSET);
    assert_int_equal(l->common.length, VIRTIO_PCI_COMMON_SIZE);
    assert_int_equal(l->isr.offset, VIRTIO_PCI_ISR_OFFSET);
    assert_int_equal(l->isr.length, 1);
    assert_int_equal(l->device.offset, VIRTIO_PCI_DEVICE_OFFSET);
    assert_int_equal(l->device.length, TD_CONFIG_SIZE);
    assert_int_equal(l->notify.offset, VIRTIO_PCI_NOTIFY_OFFSET);
    assert_int_equal(l->notify.length, 4 * TD_NR_QUEUES);
    assert_int_equal(l->notify_multiplier, 4);
    /* MSI-X: one vector per queue and one for configuration changes. */
    assert_int_equal(l->msix_vectors, TD_NR_QUEUES + 1);
    assert_int_equal(pci_config_read(pd, l->msix_cap + PCI_MSIX_TABLE, 4), 0 | 0);
    assert_int_equal(pci_config_read(pd, l->msix_cap + PCI_MSIX_PBA, 4), 0x800 | 0);

    /* The common configuration before a driver touched it. */
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_NUMQ, 2), TD_NR_QUEUES);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 0);
    static const uint16_t sizes[] = { TD_ECHO_SIZE, 16, 8, 0 };
    for (unsigned i = 0; i <= TD_NR_QUEUES; i++) {
        assert_int_equal(select_r(d, i, VIRTIO_PCI_COMMON_Q_SIZE, 2), sizes[i]);
        assert_int_equal(select_r(d, i, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
        assert_int_equal(select_r(d, i, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
        assert_int_equal(select_r(d, i, VIRTIO_PCI_COMMON_Q_NOFF, 2), i < TD_NR_QUEUES ? i : 0);
        assert_int_equal(select_r(d, i, VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0);
        assert_int_equal(select_r(d, i, VIRTIO_PCI_COMMON_Q_RESET, 2), 0);
    }
    assert_true(virtio_driver_device_features(d) == OFFERED);
    common_w(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 2);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_DF, 4), 0);
    /* Read-only fields stay as they are. */
    common_w(d, VIRTIO_PCI_COMMON_NUMQ, 2, 9);
    common_w(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1, 9);
    common_w(d, VIRTIO_PCI_COMMON_DF, 4, 0);
    select_w(d, 1, VIRTIO_PCI_COMMON_Q_NOFF, 2, 7);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_NUMQ, 2), TD_NR_QUEUES);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 0);
    assert_true(virtio_driver_device_features(d) == OFFERED);
    assert_int_equal(select_r(d, 1, VIRTIO_PCI_COMMON_Q_NOFF, 2), 1);
    /* Wrong widths read 0 and write nothing. */
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_NUMQ, 4), 0);
    common_w(d, VIRTIO_PCI_COMMON_STATUS, 2, 1);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    /* Outside the structures: 0. */
    assert_int_equal(virtio_driver_mmio_read(d, l->common.addr + 0x800, 4), 0);
    assert_int_equal(virtio_driver_mmio_read(d, l->isr.addr + 4, 4), 0);
}

static void test_features(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d = td_driver(e, VIRTIO_DRIVER_MSIX);
    TestVdev *t = td_of(d);

    /* A valid subset sticks and reads back. */
    assert_true(virtio_driver_init(d, F(TD_F_A)));
    assert_true(virtio_driver_features(d) == (F(TD_F_A) | F(VIRTIO_F_VERSION_1)));
    assert_true(driver_features_r(d) == virtio_driver_features(d));
    assert_true(t->vdev.features == virtio_driver_features(d));
    /* Nothing more once FEATURES_OK is set. */
    virtio_driver_write_features(d, OFFERED);
    assert_true(driver_features_r(d) == (F(TD_F_A) | F(VIRTIO_F_VERSION_1)));
    assert_true(t->vdev.features == (F(TD_F_A) | F(VIRTIO_F_VERSION_1)));

    /* Bits not offered: hidden from the read-back, and FEATURES_OK is refused. */
    virtio_driver_reset(d);
    assert_true(t->vdev.features == 0 && driver_features_r(d) == 0);
    virtio_driver_set_status(d, STATUS_AD);
    virtio_driver_write_features(d, F(TD_F_UNOFFERED) | F(VIRTIO_F_VERSION_1) | F(50));
    assert_true(driver_features_r(d) == F(VIRTIO_F_VERSION_1));
    virtio_driver_set_status(d, STATUS_ADF);
    assert_int_equal(virtio_driver_get_status(d), STATUS_AD);
    /* ... and DRIVER_OK without FEATURES_OK is too: the device never runs. */
    virtio_driver_set_status(d, STATUS_AD | VIRTIO_STATUS_DRIVER_OK);
    assert_int_equal(virtio_driver_get_status(d), STATUS_AD);
    assert_int_equal(t->activations, 0);

    /* A legacy driver (no VERSION_1) is refused. */
    virtio_driver_reset(d);
    virtio_driver_set_status(d, STATUS_AD);
    virtio_driver_write_features(d, F(TD_F_A));
    virtio_driver_set_status(d, STATUS_ADF);
    assert_int_equal(virtio_driver_get_status(d), STATUS_AD);

    /* The device's own rule: B needs A. */
    virtio_driver_reset(d);
    virtio_driver_set_status(d, STATUS_AD);
    virtio_driver_write_features(d, F(TD_F_B) | F(VIRTIO_F_VERSION_1));
    virtio_driver_set_status(d, STATUS_ADF);
    assert_int_equal(virtio_driver_get_status(d), STATUS_AD);
    assert_true(virtio_driver_init(d, F(TD_F_A) | F(TD_F_B)));

    /* Feature words above bit 63 are not kept. */
    virtio_driver_reset(d);
    common_w(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 2);
    common_w(d, VIRTIO_PCI_COMMON_GF, 4, 1);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_GF, 4), 0);

    /* After refusals, a reset and a good negotiation: everything offered. */
    assert_true(virtio_driver_init(d, ALL_FEATURES));
    assert_true(virtio_driver_features(d) == OFFERED);
}

static void test_status(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d = td_driver(e, VIRTIO_DRIVER_MSIX);
    TestVdev *t = td_of(d);

    virtio_driver_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
    assert_int_equal(virtio_driver_get_status(d), VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_driver_set_status(d, STATUS_AD);
    /* Bits are never cleared by a write other than 0. */
    virtio_driver_set_status(d, VIRTIO_STATUS_DRIVER);
    assert_int_equal(virtio_driver_get_status(d), STATUS_AD);
    /* NEEDS_RESET is the device's to set. */
    virtio_driver_set_status(d, STATUS_AD | VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(virtio_driver_get_status(d), STATUS_AD);
    virtio_driver_write_features(d, F(VIRTIO_F_VERSION_1));
    virtio_driver_set_status(d, STATUS_ADF);
    assert_int_equal(virtio_driver_get_status(d), STATUS_ADF);
    virtio_driver_set_status(d, STATUS_ALL);
    assert_int_equal(virtio_driver_get_status(d), STATUS_ALL);
    assert_int_equal(t->activations, 1);
    virtio_driver_set_status(d, STATUS_ALL);
    assert_int_equal(t->activations, 1);
    virtio_driver_set_status(d, STATUS_ALL | VIRTIO_STATUS_FAILED);
    assert_int_equal(virtio_driver_get_status(d), STATUS_ALL | VIRTIO_STATUS_FAILED);
    virtio_driver_set_status(d, 0);
    assert_int_equal(virtio_driver_get_status(d), 0);
    assert_int_equal(t->resets, 1);
}

static void test_reset_clears_everything(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d = td_ready(e, VIRTIO_DRIVER_MSIX, ALL_FEATURES);
    VirtioDriverQueue *q = virtio_driver_queue(d, TD_Q_ECHO);
    TestVdev *t = td_of(d);
    uint64_t old_used = virtio_driver_queue_used(q);
    PciDevice *pd = virtio_driver_pci(d);
    unsigned resets = t->resets;

    echo_add(d, q, 100, 0x5a);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    echo_check(d, q, 0x5a);
    td_bump_counter(d);
    virtio_driver_config_write(d, TD_CFG_SCRATCH, 4, 0x1234);
    assert_int_equal(virtio_driver_config_read_raw(d, TD_CFG_COUNTER, 4), 1);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 1);
    common_w(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    common_w(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    common_w(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 2);
    /* A request left in the ring, not notified yet. */
    echo_add(d, q, 10, 0x11);

    virtio_driver_reset(d);
    assert_int_equal(t->resets, resets + 1);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_DFSELECT, 4), 0);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_GFSELECT, 4), 0);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_Q_SELECT, 2), 0);
    assert_true(driver_features_r(d) == 0 && t->vdev.features == 0);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 0);
    assert_int_equal(virtio_driver_read_isr(d), 0);
    assert_int_equal(virtio_driver_config_read_raw(d, TD_CFG_SCRATCH, 4), 0);
    for (unsigned i = 0; i < TD_NR_QUEUES; i++) {
        assert_int_equal(select_r(d, i, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
        assert_int_equal(select_r(d, i, VIRTIO_PCI_COMMON_Q_SIZE, 2), i == 0 ? 256 : i == 1 ? 16 : 8);
        assert_int_equal(select_r(d, i, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
        assert_int_equal(select_r(d, i, VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0);
        assert_int_equal(select_r(d, i, VIRTIO_PCI_COMMON_Q_AVAILLO, 8), 0);
        assert_int_equal(select_r(d, i, VIRTIO_PCI_COMMON_Q_USEDLO, 8), 0);
    }
    /* MSI-X is PCI state, not virtio state: still on, and the doorbells stay. */
    assert_true(pci_msix_enabled(pd));
    assert_int_equal(harness_ioevents_count(&e->ioevents), TD_NR_QUEUES);
    /* The old ring is the driver's again: notifications do not touch it. */
    virtio_driver_mmio_write(d, virtio_driver_layout(d)->notify.addr, 2, 0);
    harness_write(virtio_driver_device(d), PCI_BAR_OFFSET(2) + VIRTIO_PCI_NOTIFY_OFFSET, 2, 0);
    virtio_driver_run(d);
    assert_int_equal(*(uint16_t *)virtio_driver_mem(d, old_used + 2, 2), 1);

    /* And the device comes up again. */
    assert_true(virtio_driver_init(d, ALL_FEATURES));
    q = virtio_driver_setup_queue(d, TD_Q_ECHO, 32);
    virtio_driver_ok(d);
    echo_add(d, q, 64, 0x77);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    echo_check(d, q, 0x77);

    /* A machine reset also takes the PCI state back: no decoding, no doorbells. */
    device_reset(virtio_driver_device(d));
    assert_int_equal(harness_ioevents_count(&e->ioevents), 0);
    assert_false(pci_msix_enabled(pd));
    assert_int_equal(t->resets, resets + 3);
    virtio_driver_map_bars(d);
    assert_int_equal(virtio_driver_get_status(d), 0);
    assert_int_equal(harness_ioevents_count(&e->ioevents), TD_NR_QUEUES);
}

static void test_config_generation(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d = td_ready(e, VIRTIO_DRIVER_MSIX, ALL_FEATURES);
    g_autoptr(HarnessEnv) e2 = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d2 = td_driver(e2, VIRTIO_DRIVER_MSIX);
    uint32_t v;

    virtio_driver_config_read(d, TD_CFG_COUNTER, &v, 4);
    assert_int_equal(v, 0);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 0);
    /* A change: an interrupt at once, a new generation once the driver reads. */
    td_bump_counter(d);
    assert_int_equal(virtio_driver_config_interrupts(d), 1);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 0);
    assert_int_equal(virtio_driver_config_read_raw(d, TD_CFG_COUNTER, 4), 1);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 1);
    /* Two changes between reads: one step, and Linux's retry loop sees the latest. */
    td_bump_counter(d);
    td_bump_counter(d);
    assert_int_equal(virtio_driver_config_interrupts(d), 3);
    virtio_driver_config_read(d, TD_CFG_COUNTER, &v, 4);
    assert_int_equal(v, 3);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 2);
    /* A change while the driver reads field by field makes it read again. */
    {
        uint8_t gen = common_r(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1);

        virtio_driver_config_read_raw(d, TD_CFG_COUNTER, 4);
        td_bump_counter(d);
        virtio_driver_config_read_raw(d, TD_CFG_SCRATCH, 4);
        assert_int_not_equal(common_r(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1), gen);
    }
    /* Writable and read-only fields, any natural width. */
    virtio_driver_config_write(d, TD_CFG_SCRATCH, 4, 0xdeadbeef);
    virtio_driver_config_write(d, TD_CFG_SCRATCH + 1, 1, 0x00);
    virtio_driver_config_write(d, TD_CFG_SCRATCH + 2, 2, 0x1122);
    assert_int_equal(virtio_driver_config_read_raw(d, TD_CFG_SCRATCH, 4), 0x112200ef);
    virtio_driver_config_write(d, TD_CFG_COUNTER, 4, 99);
    assert_int_equal(virtio_driver_config_read_raw(d, TD_CFG_COUNTER, 4), 4);
    assert_int_equal(virtio_driver_config_read_raw(d, TD_CFG_SCRATCH, 8) >> 32, 0);
    /* Beyond the configuration space: 0, not written. */
    assert_int_equal(virtio_driver_mmio_read(d, virtio_driver_layout(d)->device.addr + 6, 4), 0);
    assert_int_equal(virtio_driver_mmio_read(d, virtio_driver_layout(d)->device.addr + 8, 4), 0);
    virtio_driver_mmio_write(d, virtio_driver_layout(d)->device.addr + 6, 4, 0xffffffff);
    assert_int_equal(virtio_driver_config_read_raw(d, TD_CFG_SCRATCH, 4), 0x112200ef);

    /* Before DRIVER_OK a change sends nothing; the generation still moves. */
    assert_true(virtio_driver_init(d2, ALL_FEATURES));
    td_bump_counter(d2);
    assert_int_equal(virtio_driver_config_interrupts(d2), 0);
    virtio_driver_config_read(d2, TD_CFG_COUNTER, &v, 4);
    assert_int_equal(v, 1);
    assert_int_equal(common_r(d2, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 1);
}

static void test_vectors(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d = td_driver(e, VIRTIO_DRIVER_MSIX);
    g_autoptr(HarnessEnv) e2 = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d2 = td_ready(e2, VIRTIO_DRIVER_MSIX_SHARED, ALL_FEATURES);
    const VirtioDriverLayout *l = virtio_driver_layout(d);
    VirtioDriverQueue *q, *sink;

    assert_true(virtio_driver_init(d, ALL_FEATURES));
    /* Any existing vector maps; anything else reads back NO_VECTOR (4.1.5.1.2). */
    assert_int_equal(virtio_driver_set_config_vector(d, 3), 3);
    assert_int_equal(virtio_driver_set_config_vector(d, 4), VIRTIO_MSI_NO_VECTOR);
    assert_int_equal(virtio_driver_set_config_vector(d, 0x7ff), VIRTIO_MSI_NO_VECTOR);
    assert_int_equal(virtio_driver_set_config_vector(d, 0), 0);
    q = virtio_driver_alloc_queue(d, TD_Q_ECHO, 64);
    assert_int_equal(virtio_driver_set_queue_vector(q, 3), 3);
    assert_int_equal(virtio_driver_set_queue_vector(q, 4), VIRTIO_MSI_NO_VECTOR);
    assert_int_equal(virtio_driver_set_queue_vector(q, 1), 1);
    /* A queue that does not exist has no vector, whatever is written. */
    select_w(d, 9, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
    assert_int_equal(common_r(d, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    virtio_driver_enable_queue(q);
    sink = virtio_driver_alloc_queue(d, TD_Q_SINK, 16);
    assert_int_equal(virtio_driver_set_queue_vector(sink, VIRTIO_MSI_NO_VECTOR),
                     VIRTIO_MSI_NO_VECTOR);
    virtio_driver_enable_queue(sink);
    virtio_driver_ok(d);

    echo_add(d, q, 8, 1);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    echo_check(d, q, 1);
    assert_int_equal(virtio_driver_msix_fires(d, 1), 1);
    /* NO_VECTOR: no interrupt for that queue, and none elsewhere either. */
    echo_add(d, sink, 8, 1);
    virtio_driver_kick(sink);
    virtio_driver_run(d);
    assert_non_null(virtio_driver_get_used(sink, NULL));
    for (unsigned v = 0; v < l->msix_vectors; v++)
        assert_int_equal(virtio_driver_msix_fires(d, v), v == 1);
    virtio_driver_set_config_vector(d, VIRTIO_MSI_NO_VECTOR);
    td_bump_counter(d);
    assert_int_equal(virtio_driver_msix_fires(d, 0), 0);
    /* A masked vector pends in the PBA and fires when unmasked. */
    {
        uint64_t table = virtio_driver_pci(d)->bars[VIRTIO_PCI_MSIX_BAR].addr;

        virtio_driver_mmio_write(d, table + 16 + 12, 4, 1);
        echo_add(d, q, 8, 2);
        virtio_driver_kick(q);
        virtio_driver_run(d);
        assert_int_equal(virtio_driver_msix_fires(d, 1), 1);
        assert_int_equal(virtio_driver_mmio_read(d, table + VIRTIO_PCI_MSIX_PBA_OFFSET, 8), 2);
        virtio_driver_mmio_write(d, table + 16 + 12, 4, 0);
        assert_int_equal(virtio_driver_msix_fires(d, 1), 2);
        echo_check(d, q, 2);
    }

    /* Linux's fallback: one vector for configuration, one shared by the queues. */
    for (unsigned i = 0; i < 2; i++) {
        VirtioDriverQueue *sq = virtio_driver_queue(d2, i);

        echo_add(d2, sq, 8, 3);
        virtio_driver_kick(sq);
        virtio_driver_run(d2);
        assert_non_null(virtio_driver_get_used(sq, NULL));
    }
    assert_int_equal(virtio_driver_msix_fires(d2, 1), 2);
    assert_int_equal(virtio_driver_msix_fires(d2, 0), 0);
    td_bump_counter(d2);
    assert_int_equal(virtio_driver_msix_fires(d2, 0), 1);
}

static void test_queue_setup(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d = td_driver(e, VIRTIO_DRIVER_MSIX);
    VirtioDriverQueue *q;
    uint64_t desc;

    assert_true(virtio_driver_init(d, ALL_FEATURES));
    /* A queue that does not exist: size 0, never enabled, nothing kept. */
    select_w(d, 7, VIRTIO_PCI_COMMON_Q_SIZE, 2, 8);
    select_w(d, 7, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x1000);
    select_w(d, 7, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    assert_int_equal(select_r(d, 7, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
    assert_int_equal(select_r(d, 7, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    assert_int_equal(select_r(d, 7, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
    assert_int_equal(select_r(d, 0xffff, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
    /* Sizes: powers of two up to the maximum only (the register never shows another). */
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_SIZE, 2, 100);
    assert_int_equal(select_r(d, 0, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_SIZE, 2, 512);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_SIZE, 2, 0);
    assert_int_equal(select_r(d, 0, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_SIZE, 2, 64);
    assert_int_equal(select_r(d, 0, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
    /* 64-bit fields: one access or two halves. */
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_DESCLO, 8, 0x123456789a0ULL);
    assert_int_equal(select_r(d, 0, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0x456789a0);
    assert_int_equal(select_r(d, 0, VIRTIO_PCI_COMMON_Q_DESCHI, 4), 0x123);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
    assert_true(select_r(d, 0, VIRTIO_PCI_COMMON_Q_DESCLO, 8) == 0x456789a0);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0x7);
    assert_true(select_r(d, 0, VIRTIO_PCI_COMMON_Q_USEDLO, 8) == 0x700000000ULL);

    /* A misaligned descriptor table: not enabled, NEEDS_RESET, no interrupt yet. */
    q = virtio_driver_alloc_queue(d, TD_Q_ECHO, 64);
    virtio_driver_enable_queue(q);
    assert_int_equal(select_r(d, 0, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
    virtio_driver_reset(d);
    assert_true(virtio_driver_init(d, ALL_FEATURES));
    q = virtio_driver_alloc_queue(d, TD_Q_ECHO, 64);
    desc = virtio_driver_queue_desc(q);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_SIZE, 2, 64);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_DESCLO, 8, desc + 8);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_AVAILLO, 8, virtio_driver_queue_avail(q));
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_USEDLO, 8, virtio_driver_queue_used(q));
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    assert_int_equal(select_r(d, 0, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    assert_true(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(virtio_driver_config_interrupts(d), 0);
    /* It hears of it at DRIVER_OK (2.1.2). */
    virtio_driver_setup_queue(d, TD_Q_SINK, 0);
    virtio_driver_ok(d);
    assert_int_equal(virtio_driver_config_interrupts(d), 1);

    /* A ring outside RAM. */
    assert_true(virtio_driver_init(d, ALL_FEATURES));
    q = virtio_driver_alloc_queue(d, TD_Q_ECHO, 64);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_DESCLO, 8, 0x7ffffff000ULL);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_AVAILLO, 8, virtio_driver_queue_avail(q));
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_USEDLO, 8, virtio_driver_queue_used(q));
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    assert_int_equal(select_r(d, 0, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    assert_true(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);

    /* Before FEATURES_OK nothing is negotiated: no ring can start. */
    virtio_driver_reset(d);
    virtio_driver_set_status(d, STATUS_AD);
    q = virtio_driver_alloc_queue(d, TD_Q_ECHO, 64);
    virtio_driver_enable_queue(q);
    assert_int_equal(select_r(d, 0, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    assert_true(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);

    /* An enabled queue's registers are fixed; 0 is never written to queue_enable. */
    assert_true(virtio_driver_init(d, ALL_FEATURES));
    q = virtio_driver_setup_queue(d, TD_Q_ECHO, 64);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_SIZE, 2, 16);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 1);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 0);
    select_w(d, 0, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    assert_int_equal(select_r(d, 0, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
    assert_true(select_r(d, 0, VIRTIO_PCI_COMMON_Q_DESCLO, 8) == virtio_driver_queue_desc(q));
    assert_true(select_r(d, 0, VIRTIO_PCI_COMMON_Q_USEDLO, 8) == virtio_driver_queue_used(q));
    assert_int_equal(select_r(d, 0, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
    assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    virtio_driver_ok(d);
    echo_add(d, q, 33, 9);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    echo_check(d, q, 9);
}

static void test_notify_paths(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d = td_ready(e, VIRTIO_DRIVER_MSIX, ALL_FEATURES);
    g_autoptr(HarnessEnv) e2 = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d2 = NULL;
    g_autoptr(HarnessEnv) e3 = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d3 = NULL;
    VirtioDriverQueue *q = virtio_driver_queue(d, TD_Q_ECHO);
    const VirtioDriverLayout *l = virtio_driver_layout(d);
    PciDevice *pd = virtio_driver_pci(d);
    TestVdev *t = td_of(d);
    uint64_t bar2 = pd->bars[2].addr;

    /* One doorbell per queue, at notify + 4 * queue_notify_off. */
    assert_int_equal(harness_ioevents_count(&e->ioevents), TD_NR_QUEUES);
    for (unsigned i = 0; i < TD_NR_QUEUES; i++)
        assert_true(harness_ioevents_ring(&e->ioevents, TRUE, l->notify.addr + 4 * i, i));
    virtio_driver_run(d);
    /* Through the doorbell, the work runs on the "loop" at once (KVM's ioeventfd). */
    echo_add(d, q, 5, 0x21);
    assert_true(virtio_driver_kick(q));
    assert_non_null(virtio_driver_get_used(q, NULL));
    /* Through the register (a KVM exit): deferred to the loop, never run on the vCPU. */
    echo_add(d, q, 5, 0x22);
    virtio_driver_kick_prepare(q);
    virtio_driver_notify_register(q);
    assert_null(virtio_driver_get_used(q, NULL));
    virtio_driver_run(d);
    echo_check(d, q, 0x22);
    assert_int_equal(virtio_driver_queue_interrupts(q), 2);
    /* Nonsense notifications are dropped: between slots, past the last queue. */
    harness_write(&pd->dev, PCI_BAR_OFFSET(2) + VIRTIO_PCI_NOTIFY_OFFSET + 2, 2, 0);
    harness_write(&pd->dev, PCI_BAR_OFFSET(2) + VIRTIO_PCI_NOTIFY_OFFSET + 4 * TD_NR_QUEUES, 2, 3);
    assert_int_equal(harness_read(&pd->dev, PCI_BAR_OFFSET(2) + VIRTIO_PCI_NOTIFY_OFFSET, 2), 0);
    virtio_driver_run(d);

    /* The doorbells follow BAR2, and go while it does not decode. */
    pci_config_write(pd, PCI_BASE_ADDRESS_0 + 8, (uint32_t)(bar2 + 0x100000), 4);
    assert_false(harness_ioevents_ring(&e->ioevents, TRUE, bar2 + VIRTIO_PCI_NOTIFY_OFFSET, 0));
    assert_true(harness_ioevents_ring(&e->ioevents, TRUE,
                                      bar2 + 0x100000 + VIRTIO_PCI_NOTIFY_OFFSET, 0));
    pci_config_write(pd, PCI_BASE_ADDRESS_0 + 8, (uint32_t)bar2, 4);
    pci_config_write(pd, PCI_COMMAND, PCI_COMMAND_MASTER, 2);
    assert_int_equal(harness_ioevents_count(&e->ioevents), 0);
    pci_config_write(pd, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    assert_int_equal(harness_ioevents_count(&e->ioevents), TD_NR_QUEUES);
    virtio_driver_run(d);
    assert_int_equal(t->notifies[TD_Q_ECHO], 5);

    /* Kicks before DRIVER_OK do nothing; DRIVER_OK catches up with the rings. */
    d2 = td_driver(e2, VIRTIO_DRIVER_MSIX);
    assert_true(virtio_driver_init(d2, ALL_FEATURES));
    q = virtio_driver_setup_queue(d2, TD_Q_ECHO, 16);
    echo_add(d2, q, 7, 0x31);
    virtio_driver_notify(q);
    virtio_driver_run(d2);
    assert_null(virtio_driver_get_used(q, NULL));
    assert_int_equal(td_of(d2)->notifies[TD_Q_ECHO], 0);
    virtio_driver_ok(d2);
    virtio_driver_run(d2);
    echo_check(d2, q, 0x31);

    /* Without ioeventfds every notification takes the register path. */
    e3->env.ioevents = NULL;
    d3 = td_ready(e3, VIRTIO_DRIVER_MSIX, ALL_FEATURES);
    assert_int_equal(harness_ioevents_count(&e3->ioevents), 0);
    q = virtio_driver_queue(d3, TD_Q_ECHO);
    echo_add(d3, q, 7, 0x41);
    virtio_driver_kick(q);
    assert_null(virtio_driver_get_used(q, NULL));
    virtio_driver_run(d3);
    echo_check(d3, q, 0x41);
}

/* Traffic with every combination of ring features and interrupt modes. */
static void test_traffic(void **state)
{
    static const uint64_t features[] = {
        0, F(VIRTIO_F_RING_INDIRECT_DESC), F(VIRTIO_F_RING_EVENT_IDX),
        F(VIRTIO_F_RING_INDIRECT_DESC) | F(VIRTIO_F_RING_EVENT_IDX),
    };
    static const VirtioDriverIrqMode modes[] = {
        VIRTIO_DRIVER_MSIX, VIRTIO_DRIVER_MSIX_SHARED, VIRTIO_DRIVER_INTX,
    };

    for (size_t fi = 0; fi < G_N_ELEMENTS(features); fi++) {
        for (size_t mi = 0; mi < G_N_ELEMENTS(modes); mi++) {
            g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
            g_autoptr(VirtioDriver) d = td_ready(e, modes[mi], features[fi]);
            VirtioDriverQueue *q = virtio_driver_queue(d, TD_Q_ECHO);
            unsigned irqs;

            assert_true(virtio_driver_features(d) ==
                        (features[fi] | F(VIRTIO_F_VERSION_1)));
            for (unsigned round = 0; round < 4; round++) {
                for (unsigned i = 0; i < 40; i++) {
                    uint32_t len = 1 + (i * 977 + round * 131) % 6000;

                    if (i % 3 == 0)
                        echo_add_split(d, q, MAX(len, 8), i + round, 1 + i % 5, 1 + i % 3);
                    else
                        echo_add(d, q, len, i + round);
                }
                virtio_driver_kick(q);
                virtio_driver_run(d);
                for (unsigned i = 0; i < 40; i++)
                    echo_check(d, q, i + round);
                assert_null(virtio_driver_get_used(q, NULL));
                /* The device wants the next kick: nothing was lost. */
                echo_add(d, q, 1, 0xee);
                assert_true(virtio_driver_kick(q));
                virtio_driver_run(d);
                echo_check(d, q, 0xee);
            }
            assert_true(virtio_driver_queue_interrupts(q) >= 8);
            /* Interrupts suppressed: the buffers are used, no interrupt comes. */
            virtio_driver_disable_cb(q);
            irqs = virtio_driver_queue_interrupts(q);
            echo_add(d, q, 3, 0x55);
            virtio_driver_kick(q);
            virtio_driver_run(d);
            assert_int_equal(virtio_driver_queue_interrupts(q), irqs);
            echo_check(d, q, 0x55);
            virtio_driver_enable_cb(q);
            echo_add(d, q, 3, 0x56);
            virtio_driver_kick(q);
            virtio_driver_run(d);
            assert_int_equal(virtio_driver_queue_interrupts(q), irqs + 1);
            echo_check(d, q, 0x56);
        }
    }
}

static void test_isr_intx(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d = td_ready(e, VIRTIO_DRIVER_INTX, ALL_FEATURES);
    VirtioDriverQueue *q = virtio_driver_queue(d, TD_Q_ECHO);
    PciDevice *pd = virtio_driver_pci(d);

    echo_add(d, q, 4, 1);
    virtio_driver_kick(q);
    harness_loop_run(e->loop);
    /* Queue bit, the line up, the PCI status bit with it. */
    assert_true(e->irq.level);
    assert_true(pci_config_read(pd, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    assert_int_equal(virtio_driver_read_isr(d), VIRTIO_PCI_ISR_QUEUE);
    assert_false(e->irq.level);
    assert_false(pci_config_read(pd, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    assert_int_equal(virtio_driver_read_isr(d), 0);
    echo_check(d, q, 1);
    /* Configuration bit; both at once. */
    td_bump_counter(d);
    assert_true(e->irq.level);
    echo_add(d, q, 4, 2);
    virtio_driver_kick(q);
    assert_int_equal(virtio_driver_read_isr(d), VIRTIO_PCI_ISR_QUEUE | VIRTIO_PCI_ISR_CONFIG);
    assert_false(e->irq.level);
    echo_check(d, q, 2);
    /* INTx disabled in the command register: the line stays low, the ISR still tells. */
    pci_config_write(pd, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                     PCI_COMMAND_INTX_DISABLE, 2);
    td_bump_counter(d);
    assert_false(e->irq.level);
    assert_true(pci_config_read(pd, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    assert_int_equal(virtio_driver_read_isr(d), VIRTIO_PCI_ISR_CONFIG);
    pci_config_write(pd, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    /* The driver's interrupt handler counts what it saw. */
    echo_add(d, q, 4, 3);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_int_equal(virtio_driver_queue_interrupts(q), 1);
    echo_check(d, q, 3);
    /* With MSI-X on, queue notifications neither touch the ISR nor INTx. */
    virtio_driver_msix_program(d, 1);
    virtio_driver_set_queue_vector(q, 1);
    echo_add(d, q, 4, 4);
    virtio_driver_kick(q);
    assert_false(e->irq.level);
    assert_int_equal(virtio_driver_read_isr(d), 0);
    assert_int_equal(virtio_driver_msix_fires(d, 1), 1);
    echo_check(d, q, 4);
}

static void test_needs_reset(void **state)
{
    static const VirtioDriverIrqMode modes[] = { VIRTIO_DRIVER_MSIX, VIRTIO_DRIVER_INTX };

    for (size_t mi = 0; mi < G_N_ELEMENTS(modes); mi++) {
        g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
        g_autoptr(VirtioDriver) d = td_ready(e, modes[mi], ALL_FEATURES);
        VirtioDriverQueue *q = virtio_driver_queue(d, TD_Q_ECHO);
        VirtioDriverQueue *sink = virtio_driver_queue(d, TD_Q_SINK);
        uint16_t *avail_idx = virtio_driver_mem(d, virtio_driver_queue_avail(q) + 2, 2);
        uint16_t *used_idx = virtio_driver_mem(d, virtio_driver_queue_used(q) + 2, 2);

        echo_add(d, q, 4, 1);
        virtio_driver_kick(q);
        virtio_driver_run(d);
        echo_check(d, q, 1);
        /* The driver's index runs 1000 entries ahead of a 256-entry ring. */
        *avail_idx = 1001;
        virtio_driver_notify(q);
        virtio_driver_run(d);
        assert_true(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
        assert_int_equal(virtio_driver_config_interrupts(d), 1);
        assert_int_equal(*used_idx, 1);
        /* Once: more kicks change nothing. */
        virtio_driver_notify(q);
        virtio_driver_notify_register(q);
        virtio_driver_run(d);
        assert_int_equal(virtio_driver_config_interrupts(d), 1);
        assert_int_equal(*used_idx, 1);
        /* The other queues still work. */
        echo_add(d, sink, 4, 2);
        virtio_driver_kick(sink);
        virtio_driver_run(d);
        assert_non_null(virtio_driver_get_used(sink, NULL));
        /* A reset brings it back. */
        virtio_driver_reset(d);
        assert_true(virtio_driver_init(d, ALL_FEATURES));
        q = virtio_driver_setup_queue(d, TD_Q_ECHO, 0);
        virtio_driver_ok(d);
        assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
        echo_add(d, q, 4, 3);
        virtio_driver_kick(q);
        virtio_driver_run(d);
        echo_check(d, q, 3);
    }
}

static void test_save_load_in_traffic(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d = td_ready(e, VIRTIO_DRIVER_MSIX, ALL_FEATURES);
    g_autoptr(HarnessEnv) e2 = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) n = NULL;
    VirtioDriverQueue *q = virtio_driver_queue(d, TD_Q_ECHO), *nq;
    uint64_t table = virtio_driver_pci(d)->bars[VIRTIO_PCI_MSIX_BAR].addr;
    static const HarnessPoke pokes[] = {
        { "virtio-status", 0, 0x30 },           /* unknown status bits */
        { "virtio-status", 0, 0x07 },           /* DRIVER_OK without FEATURES_OK */
        { "virtio-features", 0, 0x01 },         /* not what the driver accepted */
        { "virtio-queues", 0, 4 },
        { "virtio-config-changed", 0, 2 },
        { "q0-reg-size", 0, 3 },                /* 0x103: not a power of two */
        { "q0-enabled", 0, 2 },
        { "q0-desc", 0, 0x08 },                 /* misaligned ring */
        { "vpci-msix-config", 0, 9 },           /* 4 vectors */
        { "vpci-queue-vectors", 4 + 2, 7 },     /* queue 1's vector */
        { "vpci-isr", 0, 0x80 },
        { "pci-config", 4 + PCI_VENDOR_ID, 0x11 },
    };

    for (unsigned i = 0; i < 4; i++)
        echo_add(d, q, 100 + i, 0x10 + i);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    for (unsigned i = 0; i < 4; i++)
        echo_check(d, q, 0x10 + i);
    /* In flight at save: three requests made available but never notified, ... */
    for (unsigned i = 0; i < 3; i++)
        echo_add(d, q, 1000 + i, 0x20 + i);
    /* ... a configuration change the driver has not read, a written scratch word, ... */
    td_bump_counter(d);
    virtio_driver_config_write(d, TD_CFG_SCRATCH, 4, 0xabcdef);
    /* ... and a used buffer notification pending behind a masked vector. */
    virtio_driver_mmio_write(d, table + 2 * 16 + 12, 4, 1);
    echo_add(d, virtio_driver_queue(d, TD_Q_SINK), 8, 0);
    virtio_driver_kick(virtio_driver_queue(d, TD_Q_SINK));
    virtio_driver_run(d);
    assert_int_equal(virtio_driver_msix_fires(d, 2), 0);

    /* Damaged state is refused and leaves the device exactly as it was. */
    harness_check_corrupt_state(virtio_driver_device(d), pokes, G_N_ELEMENTS(pokes), FALSE);

    n = virtio_driver_migrate(d, e2, NULL);
    nq = virtio_driver_queue(n, TD_Q_ECHO);
    assert_int_equal(virtio_driver_get_status(n), STATUS_ALL);
    assert_true(driver_features_r(n) == OFFERED);
    assert_int_equal(common_r(n, VIRTIO_PCI_COMMON_MSIX, 2), 0);
    assert_int_equal(select_r(n, TD_Q_SPARE, VIRTIO_PCI_COMMON_Q_MSIX, 2), 3);
    assert_int_equal(harness_ioevents_count(&e2->ioevents), TD_NR_QUEUES);
    /* After the load the device looks at its rings once: the three are served. */
    virtio_driver_run(n);
    for (unsigned i = 0; i < 3; i++)
        echo_check(n, nq, 0x20 + i);
    assert_int_equal(virtio_driver_msix_fires(n, 1), 1);
    /* The configuration came along, and its generation moves on the first read. */
    assert_int_equal(virtio_driver_config_read_raw(n, TD_CFG_COUNTER, 4), 1);
    assert_int_equal(common_r(n, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 1);
    assert_int_equal(virtio_driver_config_read_raw(n, TD_CFG_SCRATCH, 4), 0xabcdef);
    /* The pending vector fires when the new side unmasks it. */
    virtio_driver_mmio_write(n, table + 2 * 16 + 12, 4, 0);
    assert_int_equal(virtio_driver_msix_fires(n, 2), 1);
    assert_non_null(virtio_driver_get_used(virtio_driver_queue(n, TD_Q_SINK), NULL));
    /* And traffic goes on, with wrap-around of the ring indices. */
    for (unsigned round = 0; round < 300; round++) {
        echo_add(n, nq, 16, round);
        virtio_driver_kick(nq);
        virtio_driver_run(n);
        echo_check(n, nq, round);
    }
    /* The source never saw its three requests: they are still in its ring. */
    assert_int_equal(virtio_driver_queue_inflight(q), 3);

    /* INTx state comes along as well: the line is up again after the load. */
    {
        g_autoptr(HarnessEnv) e3 = harness_env_new("vtest", 0);
        g_autoptr(HarnessEnv) e4 = harness_env_new("vtest", 0);
        g_autoptr(VirtioDriver) i3 = td_ready(e3, VIRTIO_DRIVER_INTX, ALL_FEATURES);
        g_autoptr(VirtioDriver) i4 = NULL;

        td_bump_counter(i3);
        assert_true(e3->irq.level);
        i4 = virtio_driver_migrate(i3, e4, NULL);
        assert_true(e4->irq.level);
        assert_int_equal(virtio_driver_read_isr(i4), VIRTIO_PCI_ISR_CONFIG);
        assert_false(e4->irq.level);
    }
}

/* The PCI configuration access capability, as firmware without the BAR mapped uses it. */
static void test_pci_cfg_window(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d = td_ready(e, VIRTIO_DRIVER_MSIX, ALL_FEATURES);
    PciDevice *pd = virtio_driver_pci(d);
    uint8_t c = virtio_driver_layout(d)->pci_cfg.cap;
    uint32_t data = c + VIRTIO_PCI_CFG_CAP_DATA;

#define WINDOW(bar, off, len)                                              \
    do {                                                                   \
        pci_config_write(pd, c + VIRTIO_PCI_CAP_BAR, (bar), 1);           \
        pci_config_write(pd, c + VIRTIO_PCI_CAP_LENGTH, (len), 4);        \
        pci_config_write(pd, c + VIRTIO_PCI_CAP_OFFSET, (off), 4);        \
    } while (0)

    WINDOW(2, VIRTIO_PCI_COMMON_NUMQ, 2);
    assert_int_equal(pci_config_read(pd, data, 2), TD_NR_QUEUES);
    WINDOW(2, VIRTIO_PCI_COMMON_STATUS, 1);
    assert_int_equal(pci_config_read(pd, data, 1), STATUS_ALL);
    pci_config_write(pd, data, STATUS_ALL | VIRTIO_STATUS_FAILED, 1);
    assert_int_equal(virtio_driver_get_status(d), STATUS_ALL | VIRTIO_STATUS_FAILED);
    WINDOW(2, VIRTIO_PCI_DEVICE_OFFSET + TD_CFG_SCRATCH, 4);
    pci_config_write(pd, data, 0x5566, 4);
    assert_int_equal(virtio_driver_config_read_raw(d, TD_CFG_SCRATCH, 4), 0x5566);
    /* The ISR through the window: shown, not cleared. */
    td_bump_counter(d);
    WINDOW(2, VIRTIO_PCI_ISR_OFFSET, 1);
    assert_int_equal(pci_config_read(pd, data, 1), VIRTIO_PCI_ISR_CONFIG);
    assert_int_equal(virtio_driver_read_isr(d), VIRTIO_PCI_ISR_CONFIG);
    /* The MSI-X table in BAR0: vector 0's message data. */
    WINDOW(0, 8, 4);
    assert_int_equal(pci_config_read(pd, data, 4), 0x100);
    /* Windows that are not: an unused BAR, a length of 3, misaligned, past the BAR. */
    WINDOW(1, 0, 4);
    pci_config_write(pd, data, 0, 4);
    WINDOW(2, VIRTIO_PCI_COMMON_STATUS, 3);
    pci_config_write(pd, data, 0, 4);
    WINDOW(2, VIRTIO_PCI_COMMON_STATUS + 1, 2);
    pci_config_write(pd, data, 0, 4);
    WINDOW(2, VIRTIO_PCI_REGS_BAR_SIZE - 2, 4);
    pci_config_write(pd, data, 0, 4);
    WINDOW(9, 0, 1);
    pci_config_write(pd, data, 0, 1);
    assert_int_equal(virtio_driver_get_status(d), STATUS_ALL | VIRTIO_STATUS_FAILED);
#undef WINDOW
}

/* --- a hostile guest --- */

static const struct {
    uint16_t off;
    uint8_t len;
} common_fields[] = {
    { VIRTIO_PCI_COMMON_DFSELECT, 4 }, { VIRTIO_PCI_COMMON_DF, 4 },
    { VIRTIO_PCI_COMMON_GFSELECT, 4 }, { VIRTIO_PCI_COMMON_GF, 4 },
    { VIRTIO_PCI_COMMON_MSIX, 2 }, { VIRTIO_PCI_COMMON_NUMQ, 2 },
    { VIRTIO_PCI_COMMON_STATUS, 1 }, { VIRTIO_PCI_COMMON_CFGGENERATION, 1 },
    { VIRTIO_PCI_COMMON_Q_SELECT, 2 }, { VIRTIO_PCI_COMMON_Q_SIZE, 2 },
    { VIRTIO_PCI_COMMON_Q_MSIX, 2 }, { VIRTIO_PCI_COMMON_Q_ENABLE, 2 },
    { VIRTIO_PCI_COMMON_Q_NOFF, 2 }, { VIRTIO_PCI_COMMON_Q_DESCLO, 8 },
    { VIRTIO_PCI_COMMON_Q_DESCLO, 4 }, { VIRTIO_PCI_COMMON_Q_DESCHI, 4 },
    { VIRTIO_PCI_COMMON_Q_AVAILLO, 4 }, { VIRTIO_PCI_COMMON_Q_AVAILHI, 4 },
    { VIRTIO_PCI_COMMON_Q_USEDLO, 4 }, { VIRTIO_PCI_COMMON_Q_USEDHI, 4 },
    { VIRTIO_PCI_COMMON_Q_RESET, 2 },
};

#define HOSTILE_RAM (1 << 20)           /* rings the hostile guest points at, below the driver's */

static uint64_t hostile_value(GRand *r)
{
    static const uint64_t special[] = { 0, 1, 2, 3, 4, 8, 0xb, 0xf, 0x40, 0x80, 0xff, 0xffff,
                                        VIRTIO_MSI_NO_VECTOR, 0xffffffff };

    switch (g_rand_int_range(r, 0, 4)) {
    case 0: return special[g_rand_int_range(r, 0, G_N_ELEMENTS(special))];
    case 1: return g_rand_int_range(r, 0, 300);
    /* Addresses inside the hostile RAM, aligned or not. */
    case 2: return g_rand_int_range(r, 0, HOSTILE_RAM) & ~(uint64_t)g_rand_int_range(r, 0, 16);
    default: return ((uint64_t)g_rand_int(r) << 32) | g_rand_int(r);
    }
}

static void test_hostile_guest(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("vtest", 0);
    g_autoptr(VirtioDriver) d = td_driver(e, VIRTIO_DRIVER_MSIX);
    g_autoptr(GRand) r = g_rand_new_with_seed(0x7172);
    Device *dev = virtio_driver_device(d);
    PciDevice *pd = virtio_driver_pci(d);
    uint8_t *ram = virtio_driver_mem(d, 0, HOSTILE_RAM);
    unsigned good_rounds = 0;

    for (unsigned it = 0; it < 200000; it++) {
        unsigned op = g_rand_int_range(r, 0, 1000);
        static const size_t lens[] = { 1, 2, 4, 8 };
        size_t len = lens[g_rand_int_range(r, 0, 4)];

        if (op < 350) {
            /* The common configuration at its fields, mostly with their widths. */
            unsigned f = g_rand_int_range(r, 0, G_N_ELEMENTS(common_fields));
            size_t w = g_rand_int_range(r, 0, 10) ? common_fields[f].len : len;

            if (g_rand_boolean(r))
                harness_write(dev, PCI_BAR_OFFSET(2) + common_fields[f].off, w,
                              hostile_value(r));
            else
                harness_read(dev, PCI_BAR_OFFSET(2) + common_fields[f].off, w);
        } else if (op < 500) {
            /* Anywhere in the BARs. */
            unsigned bar = g_rand_boolean(r) ? 2 : 0;
            uint64_t off = g_rand_int_range(r, 0, pd->bars[bar].size - len + 1);

            if (g_rand_boolean(r))
                harness_write(dev, PCI_BAR_OFFSET(bar) + off, len, hostile_value(r));
            else
                harness_read(dev, PCI_BAR_OFFSET(bar) + off, len);
        } else if (op < 600) {
            /* Notifications, through a doorbell or the register. */
            unsigned qi = g_rand_int_range(r, 0, TD_NR_QUEUES + 1);
            uint64_t at = VIRTIO_PCI_NOTIFY_OFFSET + 4 * qi;

            if (!pd->bars[2].addr || g_rand_boolean(r) ||
                !harness_ioevents_ring(&e->ioevents, TRUE, pd->bars[2].addr + at, qi))
                harness_write(dev, PCI_BAR_OFFSET(2) + at, 2, qi);
        } else if (op < 700) {
            /* The guest scribbles over the memory its rings may be in. */
            unsigned n = g_rand_int_range(r, 1, 64);
            uint64_t at = g_rand_int_range(r, 0, HOSTILE_RAM - n);

            for (unsigned i = 0; i < n; i++)
                ram[at + i] = g_rand_boolean(r) ? g_rand_int(r) : (guint32)g_rand_int_range(r, 0, 4);
        } else if (op < 780) {
            /* Configuration space: the capabilities (window included) and the command. */
            uint32_t off = g_rand_boolean(r) ? (uint32_t)g_rand_int_range(r, 0x40, 0x100)
                                             : (uint32_t)PCI_COMMAND;
            size_t w = lens[g_rand_int_range(r, 0, 3)];

            if (g_rand_int_range(r, 0, 4))
                pci_config_write(pd, off, hostile_value(r), w);
            else
                pci_config_read(pd, off, w);
        } else if (op < 900) {
            harness_loop_run(e->loop);
        } else if (op < 930) {
            /* The host changes its configuration. */
            td_bump_counter(d);
        } else if (op < 960) {
            /* A well-behaved driver takes over: the device must still work. */
            VirtioDriverQueue *q;

            harness_loop_run(e->loop);
            virtio_driver_map_bars(d);
            uint64_t want = g_rand_int(r) | ((uint64_t)g_rand_int(r) << 32);

            /* The device refuses B without A; this driver knows. */
            if (want & F(TD_F_B))
                want |= F(TD_F_A);
            assert_true(virtio_driver_init(d, want));
            q = virtio_driver_setup_queue(d, TD_Q_ECHO, 1 << g_rand_int_range(r, 4, 9));
            virtio_driver_ok(d);
            for (unsigned i = 0; i < 3; i++)
                echo_add_split(d, q, 64, i, 1 + i, 1 + i % 2);
            virtio_driver_kick(q);
            virtio_driver_run(d);
            for (unsigned i = 0; i < 3; i++)
                echo_check(d, q, i);
            good_rounds++;
            /* Later allocations must not run out of guest memory. */
            if (good_rounds % 64 == 0) {
                virtio_driver_free(g_steal_pointer(&d));
                d = td_driver(e, VIRTIO_DRIVER_MSIX);
                dev = virtio_driver_device(d);
                pd = virtio_driver_pci(d);
            }
        } else if (op < 975) {
            harness_loop_run(e->loop);
            device_reset(dev);
            if (g_rand_boolean(r))
                virtio_driver_map_bars(d);
        } else {
            /* Any reachable state saves and loads. */
            g_autoptr(GBytes) s = NULL;
            g_autoptr(GError) err = NULL;

            harness_loop_run(e->loop);
            s = harness_save(dev);
            if (!harness_load(dev, s, &err))
                fail_msg("iteration %u: reloading own state: %s", it, err->message);
        }
    }
    assert_true(good_rounds > 100);
    harness_take_guest_warnings();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_reset_clears_everything),
        cmocka_unit_test(test_config_generation),
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_queue_setup),
        cmocka_unit_test(test_notify_paths),
        cmocka_unit_test(test_traffic),
        cmocka_unit_test(test_isr_intx),
        cmocka_unit_test(test_needs_reset),
        cmocka_unit_test(test_save_load_in_traffic),
        cmocka_unit_test(test_pci_cfg_window),
        cmocka_unit_test(test_hostile_guest),
    };

    harness_init();
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
