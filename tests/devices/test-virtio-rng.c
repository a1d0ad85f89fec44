/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-rng (devices/virtio/rng.c) through the test driver: random bytes
 * straight into the driver's buffers, many requests with every ring
 * feature and interrupt mode, the rate limit on the harness's fake clock,
 * options, broken rings (a descriptor loop, addresses and indices out of
 * range, the available index overflowing or going back), stray
 * notifications, zero-length buffers, and state saved in the middle of a
 * rate-limit period.
 */
#include <string.h>

#include "virtio-driver.h"

#define RNG "virtio-rng"
#define MS 1000000LL
#define F(bit) VIRTIO_BIT(bit)

static VirtioDriver *rng_ready(HarnessEnv *e, const char *options, VirtioDriverIrqMode mode,
                               uint64_t features)
{
    VirtioDriverParams p = { .irq_mode = mode };
    VirtioDriver *d = virtio_driver_new(e, RNG, options, &p);

    assert_true(virtio_driver_init(d, features));
    /* As Linux's virtio-rng: one queue, nothing else to negotiate. */
    assert_int_equal(virtio_driver_features(d), (features | F(VIRTIO_F_VERSION_1)) & VIRTQ_FEATURES);
    virtio_driver_setup_queue(d, 0, 0);
    virtio_driver_ok(d);
    return d;
}

/* One request for @len random bytes; the buffer's address is the token. */
static uint64_t rng_request(VirtioDriver *d, uint32_t len)
{
    uint64_t buf = virtio_driver_alloc(d, MAX(len, 1), 16);

    assert_true(virtio_driver_add(virtio_driver_queue(d, 0), NULL, 0,
                                  &(VirtioDriverBuf){ buf, len }, 1,
                                  GUINT_TO_POINTER((guint)buf)) >= 0);
    return buf;
}

/* The next used request: checks it is @buf and returns the length written. */
static uint32_t rng_used(VirtioDriver *d, uint64_t buf)
{
    uint32_t len = 0;
    void *token = virtio_driver_get_used(virtio_driver_queue(d, 0), &len);

    assert_non_null(token);
    assert_int_equal(GPOINTER_TO_UINT(token), buf);
    return len;
}

static gboolean all_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return FALSE;
    return TRUE;
}

static void test_random_bytes(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("rng", 0);
    g_autoptr(VirtioDriver) d = rng_ready(e, NULL, VIRTIO_DRIVER_MSIX, VIRTIO_DRIVER_ALL_FEATURES);
    VirtioDriverQueue *q = virtio_driver_queue(d, 0);
    uint64_t a, b, big, out, parts;
    VirtioDriverBuf in[3];
    const DeviceType *type = device_type_find(RNG);

    /* A virtio-pci device type: 1af4:1044, the transport's DeviceOps. */
    assert_non_null(type);
    assert_true(type->pci && type->ops == &virtio_pci_device_ops);
    assert_int_equal(pci_config_read(virtio_driver_pci(d), PCI_VENDOR_ID, 4), 0x10441af4);

    /* What the device offers: VERSION_1 and the ring features, nothing of its own. */
    assert_true(virtio_driver_device_features(d) == VIRTQ_FEATURES);
    assert_int_equal(virtio_driver_common_read(d, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
    assert_int_equal(virtio_driver_layout(d)->device.cap, 0);
    /* Linux's request: 64 bytes (SMP_CACHE_BYTES), one at a time. */
    a = rng_request(d, 64);
    b = rng_request(d, 64);
    assert_true(virtio_driver_kick(q));
    virtio_driver_run(d);
    assert_int_equal(rng_used(d, a), 64);
    assert_int_equal(rng_used(d, b), 64);
    assert_false(all_zero(virtio_driver_mem(d, a, 64), 64));
    assert_false(all_zero(virtio_driver_mem(d, b, 64), 64));
    assert_memory_not_equal(virtio_driver_mem(d, a, 64), virtio_driver_mem(d, b, 64), 64);
    assert_int_equal(virtio_driver_queue_interrupts(q), 1);

    /* Scattered buffers are filled in order; a driver-readable one is left alone. */
    out = virtio_driver_alloc(d, 16, 16);
    parts = virtio_driver_alloc(d, 64, 16);
    memset(virtio_driver_mem(d, out, 16), 0xaa, 16);
    in[0] = (VirtioDriverBuf){ parts, 10 };
    in[1] = (VirtioDriverBuf){ parts + 10, 1 };
    in[2] = (VirtioDriverBuf){ parts + 11, 53 };
    assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ out, 16 }, 1, in, 3,
                                  GUINT_TO_POINTER((guint)parts)) >= 0);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_int_equal(rng_used(d, parts), 64);
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(((uint8_t *)virtio_driver_mem(d, out, 16))[i], 0xaa);
    assert_false(all_zero(virtio_driver_mem(d, parts + 48, 16), 16));

    /* A 1 MiB buffer gets 64 KiB, which the spec allows; the rest stays as it was. */
    big = rng_request(d, 1 << 20);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_int_equal(rng_used(d, big), 64 * 1024);
    assert_false(all_zero(virtio_driver_mem(d, big + 60 * 1024, 4096), 4096));
    assert_true(all_zero(virtio_driver_mem(d, big + 64 * 1024, 1 << 19), 1 << 19));

    /*
     * A full ring: 32 requests a pass, so the doorbell's own pass leaves
     * the rest to the next (other devices' work may run in between).
     */
    {
        uint64_t slots = virtio_driver_alloc(d, 64 * 16, 16);
        unsigned got = 0;

        for (unsigned i = 0; i < 64; i++)
            assert_true(virtio_driver_add(q, NULL, 0, &(VirtioDriverBuf){ slots + 16 * i, 16 },
                                          1, GUINT_TO_POINTER(i + 1)) >= 0);
        assert_true(virtio_driver_kick(q));
        while (virtio_driver_get_used(q, NULL))
            got++;
        assert_int_equal(got, 32);
        virtio_driver_run(d);
        while (virtio_driver_get_used(q, NULL))
            got++;
        assert_int_equal(got, 64);
    }

    /* Nothing to write into: completed with 0 bytes. */
    a = rng_request(d, 0);
    b = virtio_driver_alloc(d, 8, 8);
    assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ b, 8 }, 1, NULL, 0,
                                  GUINT_TO_POINTER((guint)b)) >= 0);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_int_equal(rng_used(d, a), 0);
    assert_int_equal(rng_used(d, b), 0);
}

/* Thousands of requests in every ring and interrupt mode; the bytes look random. */
static void test_many_requests(void **state)
{
    static const uint64_t features[] = {
        0, F(VIRTIO_F_RING_EVENT_IDX), F(VIRTIO_F_RING_INDIRECT_DESC) | F(VIRTIO_F_RING_EVENT_IDX),
    };
    static const VirtioDriverIrqMode modes[] = { VIRTIO_DRIVER_MSIX, VIRTIO_DRIVER_INTX };

    for (size_t fi = 0; fi < G_N_ELEMENTS(features); fi++) {
        for (size_t mi = 0; mi < G_N_ELEMENTS(modes); mi++) {
            g_autoptr(HarnessEnv) e = harness_env_new("rng", 0);
            g_autoptr(VirtioDriver) d = rng_ready(e, NULL, modes[mi], features[fi]);
            VirtioDriverQueue *q = virtio_driver_queue(d, 0);
            uint64_t counts[256] = { 0 }, total = 0;
            uint64_t buf = virtio_driver_alloc(d, 64 * 4096, 4096);

            for (unsigned round = 0; round < 40; round++) {
                unsigned n = 1 + round % 64;

                for (unsigned i = 0; i < n; i++) {
                    uint32_t len = 1 + (round * 64 + i) * 37 % 4096;

                    assert_true(virtio_driver_add(q, NULL, 0,
                                                  &(VirtioDriverBuf){ buf + 4096ULL * i, len },
                                                  1, GUINT_TO_POINTER(i + 1)) >= 0);
                }
                virtio_driver_kick(q);
                virtio_driver_run(d);
                for (unsigned i = 0; i < n; i++) {
                    uint32_t len = 0;
                    unsigned slot = GPOINTER_TO_UINT(virtio_driver_get_used(q, &len)) - 1;
                    const uint8_t *p = virtio_driver_mem(d, buf + 4096ULL * slot, len);

                    assert_int_equal(len, 1 + (round * 64 + slot) * 37 % 4096);
                    for (uint32_t k = 0; k < len; k++)
                        counts[p[k]]++;
                    total += len;
                }
                assert_null(virtio_driver_get_used(q, NULL));
            }
            assert_true(virtio_driver_queue_interrupts(q) >= 1);
            /* Every byte value about equally often (loose: 4 sigma at ~3500 each). */
            for (unsigned v = 0; v < 256; v++)
                assert_true(counts[v] > total / 256 * 3 / 4 && counts[v] < total / 256 * 5 / 4);
        }
    }
}

static void test_rate_limit(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("rng", 0);
    g_autoptr(VirtioDriver) d = rng_ready(e, "max-bytes=100,period=1000", VIRTIO_DRIVER_MSIX,
                                          VIRTIO_DRIVER_ALL_FEATURES);
    VirtioDriverQueue *q = virtio_driver_queue(d, 0);
    uint64_t a, b, c, x;

    /* 64 + 36: the quota of the period that the first request started. */
    harness_timers_advance(e->timers, 250 * MS);
    a = rng_request(d, 64);
    b = rng_request(d, 64);
    c = rng_request(d, 64);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_int_equal(rng_used(d, a), 64);
    assert_int_equal(rng_used(d, b), 36);
    /* The third waits in the ring for the next period; kicks do not change that. */
    assert_null(virtio_driver_get_used(q, NULL));
    assert_int_equal(harness_timers_armed(e->timers), 1);
    assert_int_equal(harness_timers_next(e->timers), 1250 * MS);
    virtio_driver_notify(q);
    virtio_driver_notify_register(q);
    virtio_driver_run(d);
    harness_timers_advance(e->timers, 999 * MS);
    virtio_driver_run(d);
    assert_null(virtio_driver_get_used(q, NULL));
    harness_timers_advance(e->timers, 1 * MS);
    virtio_driver_run(d);
    assert_int_equal(rng_used(d, c), 64);

    /* Over several periods the guest gets 100 bytes a period, no more. */
    for (unsigned i = 0; i < 10; i++)
        rng_request(d, 64);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    for (unsigned period = 0; period < 6; period++) {
        uint32_t got = 0, len;

        while (virtio_driver_get_used(q, &len))
            got += len;
        /*
         * 36 left in the first one; then a whole request and one cut
         * short to the 36 left each, until the tenth.
         */
        assert_int_equal(got, period == 0 ? 36 : period < 5 ? 100 : 64);
        harness_timers_advance(e->timers, 1000 * MS);
        virtio_driver_run(d);
    }
    assert_int_equal(virtio_driver_queue_inflight(q), 0);
    assert_int_equal(harness_timers_armed(e->timers), 0);

    /* After a quiet spell a request is served at once: a period starts with it. */
    harness_timers_advance(e->timers, 5000 * MS);
    x = rng_request(d, 10);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_int_equal(rng_used(d, x), 10);

    /* A reset forgets the wait. */
    rng_request(d, 100);
    rng_request(d, 100);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_int_equal(harness_timers_armed(e->timers), 1);
    virtio_driver_reset(d);
    assert_int_equal(harness_timers_armed(e->timers), 0);
}

static void test_state(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("rng", 0);
    g_autoptr(HarnessEnv) e2 = harness_env_new("rng", 7000 * MS);
    g_autoptr(HarnessEnv) e3 = harness_env_new("rng", 0);
    g_autoptr(VirtioDriver) d = rng_ready(e, "max-bytes=100,period=1000", VIRTIO_DRIVER_MSIX,
                                          VIRTIO_DRIVER_ALL_FEATURES);
    g_autoptr(VirtioDriver) n = NULL;
    g_autoptr(VirtioDriver) u = NULL;
    VirtioDriverQueue *q = virtio_driver_queue(d, 0);
    static const HarnessPoke pokes[] = {
        { "rng-waiting", 0, 2 },
        { "rng-period-left-ns", 7, 0x40 },      /* longer than any period */
        { "q0-size", 0, 0x80 },                 /* larger than the queue's 64 */
    };
    uint64_t a, b, c;

    /* 300 ms into a period, its quota spent, two requests waiting. */
    a = rng_request(d, 100);
    b = rng_request(d, 30);
    c = rng_request(d, 30);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_int_equal(rng_used(d, a), 100);
    harness_timers_advance(e->timers, 300 * MS);
    assert_int_equal(harness_timers_armed(e->timers), 1);
    harness_check_corrupt_state(virtio_driver_device(d), pokes, G_N_ELEMENTS(pokes), FALSE);

    /* On a host whose clock reads otherwise the wait is the 700 ms that were left. */
    n = virtio_driver_migrate(d, e2, "max-bytes=100,period=1000");
    assert_int_equal(harness_timers_next(e2->timers), 7700 * MS);
    virtio_driver_run(n);
    assert_null(virtio_driver_get_used(virtio_driver_queue(n, 0), NULL));
    harness_timers_advance(e2->timers, 699 * MS);
    virtio_driver_run(n);
    assert_null(virtio_driver_get_used(virtio_driver_queue(n, 0), NULL));
    harness_timers_advance(e2->timers, 1 * MS);
    virtio_driver_run(n);
    assert_int_equal(rng_used(n, b), 30);
    assert_int_equal(rng_used(n, c), 30);
    /* The period's quota came along too: 40 of its 100 are left. */
    a = rng_request(n, 64);
    virtio_driver_kick(virtio_driver_queue(n, 0));
    virtio_driver_run(n);
    assert_int_equal(rng_used(n, a), 40);

    /* A destination without a limit serves what was waiting at once. */
    u = virtio_driver_migrate(d, e3, NULL);
    assert_int_equal(harness_timers_armed(e3->timers), 0);
    virtio_driver_run(u);
    assert_int_equal(rng_used(u, b), 30);
    assert_int_equal(rng_used(u, c), 30);
}

static void test_options(void **state)
{
    static const char *const bad[] = {
        "max-bytes=0", "max-bytes=-1", "max-bytes=abc", "max-bytes=10X", "max-bytes=",
        "max-bytes=1,period=0", "max-bytes=1,period=99999999999", "max-bytes=1,period=1s",
        "period=5", "speed=1", "max-bytes=99999999999G",
    };
    g_autoptr(HarnessEnv) e = harness_env_new("rng", 0);

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *msg = harness_device_new_fail(e, RNG, bad[i],
                                                       VIREO_ERROR_INVALID_ARGUMENT);
        assert_non_null(strstr(msg, "virtio-rng"));
    }
    /* The limit needs timers; every virtio device needs a loop and guest memory. */
    e->env.timers = NULL;
    g_free(harness_device_new_fail(e, RNG, "max-bytes=1", VIREO_ERROR_INVALID_ARGUMENT));
    device_free(harness_device_new(e, RNG, NULL));
    e->env.timers = harness_timers_service(e->timers);
    e->env.loop = NULL;
    g_free(harness_device_new_fail(e, RNG, NULL, VIREO_ERROR_INVALID_ARGUMENT));
    e->env.loop = harness_loop_event_loop(e->loop);
    e->env.mem = NULL;
    g_free(harness_device_new_fail(e, RNG, NULL, VIREO_ERROR_INVALID_ARGUMENT));
    e->env.mem = &e->mem.mem;
    device_free(harness_device_new(e, RNG, "max-bytes=4K,period=10"));
    device_free(harness_device_new(e, RNG, "max-bytes=1G"));
    device_free(harness_device_new(e, RNG, ""));
}

/*
 * Reset, set up again as Linux does, and one request served: what a driver
 * does after DEVICE_NEEDS_RESET, and the proof that the device recovered.
 */
static void rng_restart(VirtioDriver *d)
{
    uint64_t buf;

    assert_true(virtio_driver_init(d, VIRTIO_DRIVER_ALL_FEATURES));
    virtio_driver_setup_queue(d, 0, 0);
    virtio_driver_ok(d);
    assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    buf = rng_request(d, 64);
    assert_true(virtio_driver_kick(virtio_driver_queue(d, 0)));
    virtio_driver_run(d);
    assert_int_equal(rng_used(d, buf), 64);
    assert_false(all_zero(virtio_driver_mem(d, buf, 64), 64));
}

/*
 * Malformed rings: DEVICE_NEEDS_RESET, one configuration interrupt, one
 * warning, nothing used or written; kicks after that change nothing, and a
 * reset recovers. (Each case warns once from the same place, well under
 * the rate limit's burst, so the counts are exact.)
 */
static void test_broken_ring(void **state)
{
    enum { OUTSIDE, LOOP, NEXT, HEAD, OVERFLOW, BACK, N_CASES };
    /* What virtq_get_error() says: each case breaks the queue for its own reason. */
    static const char *const why[N_CASES] = {
        "is not inside RAM", "chain loops", "next index 64 outside the table",
        "head index 64 outside the queue", "moved from 0 to 65", "moved from 1 to 0",
    };

    for (unsigned c = 0; c < N_CASES; c++) {
        g_autoptr(HarnessEnv) e = harness_env_new("rng", 0);
        g_autoptr(VirtioDriver) d = rng_ready(e, NULL, VIRTIO_DRIVER_MSIX,
                                              VIRTIO_DRIVER_ALL_FEATURES);
        VirtioDriverQueue *q = virtio_driver_queue(d, 0);
        uint16_t size = virtio_driver_queue_size(q);
        uint8_t *avail = virtio_driver_mem(d, virtio_driver_queue_avail(q), 4 + 2 * size);
        uint64_t buf = virtio_driver_alloc(d, 64, 16);
        uint16_t idx;
        uint8_t *desc;
        unsigned irqs;
        int head;
        VirtQueue *vq;

        if (c == BACK) {
            /* One request served first, so that the index has somewhere to go back to. */
            uint64_t first = rng_request(d, 64);

            virtio_driver_kick(q);
            virtio_driver_run(d);
            assert_int_equal(rng_used(d, first), 64);
        }
        head = virtio_driver_add(q, NULL, 0, &(VirtioDriverBuf){ buf, 64 }, 1,
                                 GUINT_TO_POINTER((guint)buf));
        assert_true(head >= 0);
        desc = virtio_driver_mem(d, virtio_driver_queue_desc(q) + 16ULL * head, 16);
        idx = vireo_le_load(avail + 2, 2);
        switch (c) {
        case OUTSIDE:   /* the buffer past the end of guest RAM */
            vireo_le_store(desc, 8, 0x7fff0000000ULL);
            break;
        case LOOP:      /* the descriptor chains to itself */
            vireo_le_store(desc + 12, 2, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE);
            vireo_le_store(desc + 14, 2, head);
            break;
        case NEXT:      /* it chains to a descriptor beyond the table */
            vireo_le_store(desc + 12, 2, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE);
            vireo_le_store(desc + 14, 2, size);
            break;
        case HEAD:      /* the available entry names a head beyond the table */
            vireo_le_store(avail + 4 + 2 * ((idx - 1) & (size - 1)), 2, size);
            break;
        case OVERFLOW:  /* the index moves more than the queue size ahead */
            vireo_le_store(avail + 2, 2, (uint16_t)(idx + size));
            break;
        default:        /* the index moves back behind what the device took */
            vireo_le_store(avail + 2, 2, (uint16_t)(idx - 2));
            break;
        }
        irqs = virtio_driver_queue_interrupts(q);
        virtio_driver_notify(q);
        virtio_driver_run(d);
        assert_true(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
        vq = virtio_pci_get_device(virtio_driver_device(d))->queues[0].vq;
        if (!strstr(virtq_get_error(vq), why[c]))
            fail_msg("case %u: error '%s' does not say '%s'", c, virtq_get_error(vq), why[c]);
        assert_int_equal(virtio_driver_config_interrupts(d), 1);
        assert_null(virtio_driver_get_used(q, NULL));
        assert_int_equal(virtio_driver_queue_interrupts(q), irqs);
        assert_true(all_zero(virtio_driver_mem(d, buf, 64), 64));
        assert_int_equal(harness_take_guest_warnings(), 1);
        /* A broken queue stays quiet: no second interrupt, no more warnings. */
        virtio_driver_notify(q);
        virtio_driver_notify_register(q);
        virtio_driver_run(d);
        assert_int_equal(virtio_driver_config_interrupts(d), 1);
        assert_null(virtio_driver_get_used(q, NULL));
        assert_int_equal(harness_take_guest_warnings(), 0);
        /* The driver resets and starts over. */
        rng_restart(d);
        assert_int_equal(harness_take_guest_warnings(), 0);
    }
}

/* Nothing happened on @q since it was set up: nothing used or written, no interrupt. */
static void rng_check_untouched(VirtioDriver *d, VirtioDriverQueue *q, uint64_t buf)
{
    assert_null(virtio_driver_get_used(q, NULL));
    assert_true(all_zero(virtio_driver_mem(d, buf, 64), 64));
    assert_int_equal(virtio_driver_queue_interrupts(q), 0);
    assert_int_equal(virtio_driver_config_interrupts(d), 0);
    assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
}

/*
 * Notifications for a queue the driver never enabled, beyond the last
 * queue, or between two doorbells: ignored (with a warning for those that
 * name no queue), and the device works on.
 */
static void test_stray_notify(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("rng", 0);
    VirtioDriverParams p = { .irq_mode = VIRTIO_DRIVER_MSIX };
    g_autoptr(VirtioDriver) d = virtio_driver_new(e, RNG, NULL, &p);
    uint64_t notify = virtio_driver_layout(d)->notify.addr;
    VirtioDriverQueue *q;
    uint64_t buf;

    /* DRIVER_OK with queue 0 never enabled; a request in rings the device does not know. */
    assert_true(virtio_driver_init(d, VIRTIO_DRIVER_ALL_FEATURES));
    virtio_driver_ok(d);
    q = virtio_driver_alloc_queue(d, 0, 64);
    assert_int_equal(virtio_driver_set_queue_vector(q, 1), 1);
    buf = rng_request(d, 64);
    virtio_driver_notify(q);                    /* the doorbell */
    virtio_driver_notify_register(q);           /* the register, as a KVM exit */
    virtio_driver_run(d);
    assert_int_equal(virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    rng_check_untouched(d, q, buf);
    assert_int_equal(harness_take_guest_warnings(), 0);

    /* Queues that do not exist (rng has one), and an address between two doorbells. */
    virtio_driver_mmio_write(d, notify + VIRTIO_PCI_NOTIFY_MULTIPLIER * 1, 2, 1);
    virtio_driver_mmio_write(d, notify + VIRTIO_PCI_NOTIFY_MULTIPLIER * 1000, 2, 1000);
    virtio_driver_mmio_write(d, notify + 2, 2, 0);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
    assert_int_equal(virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    virtio_driver_run(d);
    rng_check_untouched(d, q, buf);
    assert_int_equal(harness_take_guest_warnings(), 4);

    /* A reset and a proper set-up: it serves requests. */
    rng_restart(d);

    /* Enabled, notified before DRIVER_OK: nothing until DRIVER_OK, which serves it. */
    assert_true(virtio_driver_init(d, VIRTIO_DRIVER_ALL_FEATURES));
    q = virtio_driver_setup_queue(d, 0, 0);
    buf = rng_request(d, 64);
    virtio_driver_notify(q);
    virtio_driver_run(d);
    assert_null(virtio_driver_get_used(q, NULL));
    assert_true(all_zero(virtio_driver_mem(d, buf, 64), 64));
    virtio_driver_ok(d);
    virtio_driver_run(d);
    assert_int_equal(rng_used(d, buf), 64);
    assert_false(all_zero(virtio_driver_mem(d, buf, 64), 64));
    assert_int_equal(harness_take_guest_warnings(), 0);
}

/*
 * Zero-length buffers carry nothing, wherever they point (even outside
 * RAM): skipped, never an error. A request of only those is used with 0
 * bytes; among others, the bytes go to the buffers that have room. With
 * and without indirect tables.
 */
static void test_zero_length(void **state)
{
    static const uint64_t hole = 0x7fff0000000ULL;

    for (unsigned indirect = 0; indirect < 2; indirect++) {
        g_autoptr(HarnessEnv) e = harness_env_new("rng", 0);
        g_autoptr(VirtioDriver) d = rng_ready(e, NULL, VIRTIO_DRIVER_MSIX,
                                              VIRTIO_DRIVER_ALL_FEATURES);
        VirtioDriverQueue *q = virtio_driver_queue(d, 0);
        uint64_t buf = virtio_driver_alloc(d, 64, 16), out = virtio_driver_alloc(d, 16, 16);
        uint32_t len = 99;

        virtio_driver_queue_set_indirect(q, indirect);
        assert_true(virtio_driver_add(q, NULL, 0, &(VirtioDriverBuf){ hole, 0 }, 1,
                                      GUINT_TO_POINTER(1)) >= 0);
        assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ out, 0 }, 1,
                                      &(VirtioDriverBuf){ buf, 0 }, 1, GUINT_TO_POINTER(2)) >= 0);
        assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ hole, 0 }, 1,
                                      (VirtioDriverBuf[]){ { hole, 0 }, { buf, 16 },
                                                           { buf + 16, 0 }, { buf + 32, 32 } },
                                      4, GUINT_TO_POINTER(3)) >= 0);
        assert_true(virtio_driver_kick(q));
        virtio_driver_run(d);
        assert_int_equal(GPOINTER_TO_UINT(virtio_driver_get_used(q, &len)), 1);
        assert_int_equal(len, 0);
        len = 99;
        assert_int_equal(GPOINTER_TO_UINT(virtio_driver_get_used(q, &len)), 2);
        assert_int_equal(len, 0);
        assert_int_equal(GPOINTER_TO_UINT(virtio_driver_get_used(q, &len)), 3);
        assert_int_equal(len, 48);
        assert_null(virtio_driver_get_used(q, NULL));
        assert_false(all_zero(virtio_driver_mem(d, buf, 16), 16));
        assert_true(all_zero(virtio_driver_mem(d, buf + 16, 16), 16));
        assert_false(all_zero(virtio_driver_mem(d, buf + 32, 32), 32));
        assert_int_equal(virtio_driver_queue_interrupts(q), 1);
        assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
        assert_int_equal(harness_take_guest_warnings(), 0);
        /* The queue goes on, and after a reset too. */
        buf = rng_request(d, 64);
        virtio_driver_kick(q);
        virtio_driver_run(d);
        assert_int_equal(rng_used(d, buf), 64);
        rng_restart(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_many_requests),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_broken_ring),
        cmocka_unit_test(test_stray_notify),
        cmocka_unit_test(test_zero_length),
    };

    harness_init();
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
