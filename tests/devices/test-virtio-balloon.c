/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-balloon (devices/virtio/balloon.c) through the test driver, doing
 * what Linux's virtio_balloon does: the target through the configuration
 * and its change interrupt, PFNs through the inflate and deflate queues,
 * "actual" written back, and the statistics buffer. Also: that inflated
 * memory really goes back to the host (a memfd's allocated blocks, as
 * vireo-vmm's guest RAM is a memfd), the QMP side (target, info, the
 * BALLOON_CHANGE listener), state in the middle of it all, options, and
 * a hostile guest (PFNs outside RAM, broken rings, queues that do not
 * exist or were never set up).
 */
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virtio-driver.h"
#include "vireo/virtio-balloon.h"

#define BAL "virtio-balloon"
#define F(bit) VIRTIO_BIT(bit)
#define S 1000000000LL
#define PAGE 4096u
#define RAM_SIZE (16u << 20)            /* the harness's RAM, at 0 */
#define DRIVER_MEM (4u << 20)           /* the driver allocates from 1 MiB to 5 MiB */
#define FREE_BASE (8u << 20)            /* pages the tests give to the balloon */
#define PFN(addr) ((uint32_t)((addr) / PAGE))

static VirtioDriver *bal_driver(HarnessEnv *e, const char *options)
{
    VirtioDriverParams p = { .mem_size = DRIVER_MEM };

    return virtio_driver_new(e, BAL, options, &p);
}

/* Up to DRIVER_OK as Linux does: inflate and deflate queues, stats if negotiated. */
static VirtioDriver *bal_ready(HarnessEnv *e, const char *options, uint64_t features)
{
    VirtioDriver *d = bal_driver(e, options);

    assert_true(virtio_driver_init(d, features));
    virtio_driver_setup_queue(d, VIRTIO_BALLOON_Q_INFLATE, 0);
    virtio_driver_setup_queue(d, VIRTIO_BALLOON_Q_DEFLATE, 0);
    if (virtio_driver_features(d) & F(VIRTIO_BALLOON_F_STATS_VQ))
        virtio_driver_setup_queue(d, VIRTIO_BALLOON_Q_STATS, 0);
    virtio_driver_ok(d);
    return d;
}

static uint32_t bal_cfg(VirtioDriver *d, uint32_t off)
{
    uint8_t v[4];

    virtio_driver_config_read(d, off, v, 4);
    return vireo_le_load(v, 4);
}

/* One request of @n PFNs (le32) on queue @qi; the device uses it with 0 bytes. */
static void bal_pfns(VirtioDriver *d, unsigned qi, const uint32_t *pfns, size_t n)
{
    VirtioDriverQueue *q = virtio_driver_queue(d, qi);
    uint64_t buf = virtio_driver_alloc(d, MAX(n * 4, 1), 4);
    uint8_t *p = virtio_driver_mem(d, buf, MAX(n * 4, 1));
    uint32_t len = 99;

    for (size_t i = 0; i < n; i++)
        vireo_le_store(p + 4 * i, 4, pfns[i]);
    assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ buf, n * 4 }, 1, NULL, 0,
                                  GUINT_TO_POINTER(0x1234)) >= 0);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_ptr_equal(virtio_driver_get_used(q, &len), GUINT_TO_POINTER(0x1234));
    assert_int_equal(len, 0);
}

/* @n consecutive pages from @first (a guest physical address), ascending or not. */
static void bal_range(VirtioDriver *d, unsigned qi, uint64_t first, size_t n, gboolean descending)
{
    g_autofree uint32_t *pfns = g_new(uint32_t, n);

    for (size_t i = 0; i < n; i++)
        pfns[i] = PFN(first) + (descending ? n - 1 - i : i);
    bal_pfns(d, qi, pfns, n);
}

static void bal_write_actual(VirtioDriver *d, uint32_t pages)
{
    virtio_driver_config_write(d, VIRTIO_BALLOON_CFG_ACTUAL, 4, pages);
}

static VirtioBalloonInfo bal_info(VirtioDriver *d)
{
    VirtioBalloonInfo info;

    virtio_balloon_get_info(virtio_driver_device(d), &info);
    return info;
}

typedef struct Changes {
    unsigned calls;
    uint64_t last;
} Changes;

static void on_change(uint64_t actual, void *opaque)
{
    Changes *c = opaque;

    c->calls++;
    c->last = actual;
}

static void test_identity_and_target(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d = bal_driver(e, NULL);
    g_autoptr(HarnessEnv) e2 = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d2 = bal_driver(e2, "deflate-on-oom=on");
    const DeviceType *type = device_type_find(BAL);
    Device *dev = virtio_driver_device(d);
    Changes changes = { 0 };
    VirtioBalloonInfo info;

    assert_non_null(type);
    assert_true(type->pci && type->ops == &virtio_pci_device_ops);
    assert_int_equal(pci_config_read(virtio_driver_pci(d), PCI_VENDOR_ID, 4), 0x10451af4);
    /* STATS_VQ always, DEFLATE_ON_OOM on request, MUST_TELL_HOST never. */
    assert_true(virtio_driver_device_features(d) == (VIRTQ_FEATURES | F(VIRTIO_BALLOON_F_STATS_VQ)));
    assert_true(virtio_driver_device_features(d2) ==
                (VIRTQ_FEATURES | F(VIRTIO_BALLOON_F_STATS_VQ) |
                 F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM)));
    assert_int_equal(virtio_driver_common_read(d, VIRTIO_PCI_COMMON_NUMQ, 2), 3);
    assert_int_equal(virtio_driver_layout(d)->device.length, VIRTIO_BALLOON_CONFIG_SIZE);
    assert_true(virtio_driver_init(d2, VIRTIO_DRIVER_ALL_FEATURES));
    assert_true(virtio_driver_features(d2) & F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM));

    assert_true(virtio_driver_init(d, VIRTIO_DRIVER_ALL_FEATURES));
    virtio_driver_setup_queue(d, 0, 0);
    virtio_driver_setup_queue(d, 1, 0);
    virtio_driver_setup_queue(d, 2, 0);
    virtio_driver_ok(d);
    assert_int_equal(bal_cfg(d, VIRTIO_BALLOON_CFG_NUM_PAGES), 0);
    assert_int_equal(bal_cfg(d, VIRTIO_BALLOON_CFG_ACTUAL), 0);
    info = bal_info(d);
    assert_true(info.ram_size == RAM_SIZE && info.target == RAM_SIZE && info.actual == RAM_SIZE);
    assert_true(info.released == 0 && info.stats_updated == 0 && info.stats_interval == 0);

    /* QMP "balloon": the target as num_pages, and a configuration change interrupt. */
    virtio_balloon_set_change_fn(dev, on_change, &changes);
    virtio_balloon_set_target(dev, RAM_SIZE - 3 * 1024 * 1024);
    assert_int_equal(virtio_driver_config_interrupts(d), 1);
    assert_int_equal(bal_cfg(d, VIRTIO_BALLOON_CFG_NUM_PAGES), 768);
    assert_true(bal_info(d).target == RAM_SIZE - 3 * 1024 * 1024);
    /* More than the RAM: an empty balloon; a partial page rounds toward keeping it. */
    virtio_balloon_set_target(dev, 1ULL << 40);
    assert_int_equal(bal_cfg(d, VIRTIO_BALLOON_CFG_NUM_PAGES), 0);
    virtio_balloon_set_target(dev, RAM_SIZE - 4096 - 1);
    assert_int_equal(bal_cfg(d, VIRTIO_BALLOON_CFG_NUM_PAGES), 1);
    virtio_balloon_set_target(dev, 1);
    assert_int_equal(bal_cfg(d, VIRTIO_BALLOON_CFG_NUM_PAGES), RAM_SIZE / PAGE - 1);
    assert_int_equal(virtio_driver_config_interrupts(d), 4);

    /* num_pages is the device's: the driver cannot write it. */
    virtio_driver_config_write(d, VIRTIO_BALLOON_CFG_NUM_PAGES, 4, 5);
    assert_int_equal(bal_cfg(d, VIRTIO_BALLOON_CFG_NUM_PAGES), RAM_SIZE / PAGE - 1);
    assert_int_equal(harness_take_guest_warnings(), 1);

    /* actual from the driver: announced once per change, from the loop, in bytes. */
    bal_write_actual(d, 10);
    assert_int_equal(changes.calls, 0);
    virtio_driver_run(d);
    assert_int_equal(changes.calls, 1);
    assert_true(changes.last == RAM_SIZE - 10 * PAGE);
    bal_write_actual(d, 10);
    virtio_driver_run(d);
    assert_int_equal(changes.calls, 1);
    /* Several writes before the loop runs: one announcement of the last value. */
    bal_write_actual(d, 11);
    bal_write_actual(d, 12);
    virtio_driver_run(d);
    assert_int_equal(changes.calls, 2);
    assert_true(changes.last == RAM_SIZE - 12 * PAGE);
    /* A legacy driver's byte-wise write, and 2-byte halves. */
    virtio_driver_config_write(d, VIRTIO_BALLOON_CFG_ACTUAL, 1, 0x34);
    virtio_driver_config_write(d, VIRTIO_BALLOON_CFG_ACTUAL + 1, 1, 0x02);
    assert_int_equal(bal_cfg(d, VIRTIO_BALLOON_CFG_ACTUAL), 0x234);
    virtio_driver_config_write(d, VIRTIO_BALLOON_CFG_ACTUAL + 2, 2, 0);
    assert_int_equal(bal_cfg(d, VIRTIO_BALLOON_CFG_ACTUAL), 0x234);
    virtio_driver_run(d);
    assert_true(changes.last == RAM_SIZE - 0x234ULL * PAGE && bal_info(d).actual == changes.last);
    /* A driver claiming more than the RAM: reported as nothing left, never negative. */
    bal_write_actual(d, 0xffffffff);
    virtio_driver_run(d);
    assert_true(changes.last == 0 && bal_info(d).actual == 0);

    /* A reset empties the balloon (a new driver starts from 0); the target stays. */
    virtio_driver_reset(d);
    virtio_driver_run(d);
    assert_true(changes.last == RAM_SIZE);
    assert_true(bal_info(d).target == PAGE);
    virtio_balloon_set_change_fn(dev, NULL, NULL);
    assert_true(virtio_driver_init(d, VIRTIO_DRIVER_ALL_FEATURES));
    assert_int_equal(bal_cfg(d, VIRTIO_BALLOON_CFG_NUM_PAGES), RAM_SIZE / PAGE - 1);
    harness_take_guest_warnings();
}

/* What Linux's fill_balloon/leak_balloon do, and what the host counts. */
static void test_inflate_deflate(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d = bal_ready(e, NULL, VIRTIO_DRIVER_ALL_FEATURES);
    Device *dev = virtio_driver_device(d);
    uint32_t target;

    virtio_balloon_set_target(dev, RAM_SIZE - 600 * PAGE);
    target = bal_cfg(d, VIRTIO_BALLOON_CFG_NUM_PAGES);
    assert_int_equal(target, 600);
    /* 256 PFNs a request, as VIRTIO_BALLOON_ARRAY_PFNS_MAX; actual after each. */
    for (uint32_t done = 0; done < target;) {
        uint32_t n = MIN(target - done, 256u);

        bal_range(d, VIRTIO_BALLOON_Q_INFLATE, FREE_BASE + (uint64_t)done * PAGE, n, TRUE);
        done += n;
        bal_write_actual(d, done);
    }
    virtio_driver_run(d);
    assert_true(bal_info(d).actual == RAM_SIZE - 600 * PAGE);
    assert_true(bal_info(d).released == 600 * PAGE);
    assert_int_equal(virtio_driver_queue_interrupts(virtio_driver_queue(d, 0)), 3);

    /* The same pages again, or some of them: counted once. */
    bal_range(d, VIRTIO_BALLOON_Q_INFLATE, FREE_BASE, 10, FALSE);
    assert_true(bal_info(d).released == 600 * PAGE);
    /* Deflate: pages come back; pages never inflated are not counted. */
    bal_range(d, VIRTIO_BALLOON_Q_DEFLATE, FREE_BASE + 500 * PAGE, 200, FALSE);
    assert_true(bal_info(d).released == 500 * PAGE);
    bal_write_actual(d, 500);
    /* Scattered PFNs, both queues, one request each. */
    {
        uint32_t pfns[] = { PFN(FREE_BASE) + 3, PFN(FREE_BASE) + 1, PFN(FREE_BASE) + 499 };

        bal_pfns(d, VIRTIO_BALLOON_Q_DEFLATE, pfns, G_N_ELEMENTS(pfns));
        assert_true(bal_info(d).released == 497 * PAGE);
        bal_pfns(d, VIRTIO_BALLOON_Q_INFLATE, pfns, G_N_ELEMENTS(pfns));
        assert_true(bal_info(d).released == 500 * PAGE);
    }

    /* PFNs outside guest RAM: ignored, one rate-limited warning per request. */
    {
        uint32_t pfns[] = { PFN(RAM_SIZE), PFN(RAM_SIZE) + 1, 0xffffffff, PFN(FREE_BASE) + 700 };

        harness_take_guest_warnings();
        bal_pfns(d, VIRTIO_BALLOON_Q_INFLATE, pfns, G_N_ELEMENTS(pfns));
        assert_int_equal(harness_take_guest_warnings(), 1);
        assert_true(bal_info(d).released == 501 * PAGE);
        bal_pfns(d, VIRTIO_BALLOON_Q_DEFLATE, pfns, G_N_ELEMENTS(pfns));
        assert_int_equal(harness_take_guest_warnings(), 1);
        assert_true(bal_info(d).released == 500 * PAGE);
    }

    /* A zero-length request, and one that is not whole PFNs: used, the tail ignored. */
    bal_pfns(d, VIRTIO_BALLOON_Q_INFLATE, NULL, 0);
    {
        VirtioDriverQueue *q = virtio_driver_queue(d, VIRTIO_BALLOON_Q_INFLATE);
        uint64_t buf = virtio_driver_alloc(d, 8, 4);
        uint32_t len = 7;

        vireo_le_store(virtio_driver_mem(d, buf, 4), 4, PFN(FREE_BASE) + 800);
        assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ buf, 6 }, 1, NULL, 0,
                                      GUINT_TO_POINTER(1)) >= 0);
        virtio_driver_kick(q);
        virtio_driver_run(d);
        assert_ptr_equal(virtio_driver_get_used(q, &len), GUINT_TO_POINTER(1));
        assert_int_equal(len, 0);
        assert_true(bal_info(d).released == 501 * PAGE);
        assert_int_equal(harness_take_guest_warnings(), 1);
    }

    /* A PFN array split over several descriptors, and a device-writable part ignored. */
    {
        VirtioDriverQueue *q = virtio_driver_queue(d, VIRTIO_BALLOON_Q_INFLATE);
        uint64_t buf = virtio_driver_alloc(d, 16, 4), in = virtio_driver_alloc(d, 16, 4);
        uint8_t *p = virtio_driver_mem(d, buf, 16);
        VirtioDriverBuf out[3] = { { buf, 3 }, { buf + 3, 6 }, { buf + 9, 7 } };

        for (unsigned i = 0; i < 4; i++)
            vireo_le_store(p + 4 * i, 4, PFN(FREE_BASE) + 900 + i);
        memset(virtio_driver_mem(d, in, 16), 0x5a, 16);
        assert_true(virtio_driver_add(q, out, 3, &(VirtioDriverBuf){ in, 16 }, 1,
                                      GUINT_TO_POINTER(2)) >= 0);
        virtio_driver_kick(q);
        virtio_driver_run(d);
        assert_ptr_equal(virtio_driver_get_used(q, NULL), GUINT_TO_POINTER(2));
        assert_true(bal_info(d).released == 505 * PAGE);
        assert_int_equal(((uint8_t *)virtio_driver_mem(d, in, 16))[15], 0x5a);
    }

    /* A full ring in one go: 64 a pass, the rest in a later pass of the loop. */
    {
        VirtioDriverQueue *q = virtio_driver_queue(d, VIRTIO_BALLOON_Q_DEFLATE);
        uint64_t buf = virtio_driver_alloc(d, 128 * 4, 4);
        unsigned got = 0;

        for (unsigned i = 0; i < 128; i++) {
            vireo_le_store(virtio_driver_mem(d, buf + 4 * i, 4), 4, PFN(FREE_BASE) + i);
            assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ buf + 4 * i, 4 }, 1, NULL, 0,
                                          GUINT_TO_POINTER(i + 1)) >= 0);
        }
        virtio_driver_kick(q);
        while (virtio_driver_get_used(q, NULL))
            got++;
        assert_int_equal(got, 64);
        virtio_driver_run(d);
        while (virtio_driver_get_used(q, NULL))
            got++;
        assert_int_equal(got, 128);
        assert_true(bal_info(d).released == 377 * PAGE);
    }
    harness_take_guest_warnings();
}

/* Bytes the memfd really holds. */
static uint64_t memfd_allocated(int fd)
{
    struct stat st;

    assert_int_equal(fstat(fd, &st), 0);
    return (uint64_t)st.st_blocks * 512;
}

/*
 * The harness's RAM replaced by a shared memfd mapping at the same place,
 * as vireo-vmm maps guest RAM; before any driver writes into it.
 */
static int bal_use_memfd(HarnessEnv *e)
{
    GuestRegion *r = &e->mem.mem.regions[0];
    int fd = memfd_create("balloon-test-ram", MFD_CLOEXEC);
    void *p;

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, r->size), 0);
    p = mmap(r->host, r->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    assert_ptr_equal(p, r->host);
    r->file_offset = 0;
    return fd;
}

/* Inflated pages leave the host: the memfd shrinks, the guest reads zeros. */
static void test_memory_released(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("balloon", 0);
    int fd = bal_use_memfd(e);
    g_autoptr(VirtioDriver) d = bal_ready(e, NULL, VIRTIO_DRIVER_ALL_FEATURES);
    uint8_t *ram = virtio_driver_mem(d, 0, RAM_SIZE);
    uint64_t before, after;
    unsigned char vec[64];

    /* The guest used 4 MiB of its RAM; the driver's memory is allocated already. */
    memset(ram + FREE_BASE, 0xa5, 4 << 20);
    for (uint64_t a = 0x100000; a < 0x100000 + DRIVER_MEM; a += PAGE)
        *(volatile uint8_t *)(ram + a) = *(volatile uint8_t *)(ram + a);
    before = memfd_allocated(fd);
    assert_true(before >= (4 << 20));

    /* Linux hands out pages in any order: 512 descending, 256 ascending, 7 scattered. */
    bal_range(d, VIRTIO_BALLOON_Q_INFLATE, FREE_BASE, 512, TRUE);
    bal_range(d, VIRTIO_BALLOON_Q_INFLATE, FREE_BASE + 512 * PAGE, 256, FALSE);
    {
        uint32_t pfns[7];

        for (unsigned i = 0; i < 7; i++)
            pfns[i] = PFN(FREE_BASE) + 800 + 31 * i;
        bal_pfns(d, VIRTIO_BALLOON_Q_INFLATE, pfns, 7);
    }
    after = memfd_allocated(fd);
    assert_true(before - after == 775ULL * PAGE);
    assert_true(bal_info(d).released == 775ULL * PAGE);
    /* Not in the memfd, so not resident in this process either. */
    assert_int_equal(mincore(ram + FREE_BASE, 64 * PAGE, vec), 0);
    for (unsigned i = 0; i < 64; i++)
        assert_int_equal(vec[i] & 1, 0);
    /* Deflating gives nothing back by itself. */
    bal_range(d, VIRTIO_BALLOON_Q_DEFLATE, FREE_BASE, 768, FALSE);
    assert_true(memfd_allocated(fd) == after);
    assert_true(bal_info(d).released == 7ULL * PAGE);
    /* Released pages read as zeros (faulting them in); their neighbours kept their data. */
    for (unsigned i = 0; i < 768; i++)
        assert_int_equal(ram[FREE_BASE + (uint64_t)i * PAGE + i % PAGE], 0);
    assert_int_equal(ram[FREE_BASE + 768 * PAGE], 0xa5);
    assert_int_equal(ram[FREE_BASE + 800 * PAGE], 0);
    assert_int_equal(ram[FREE_BASE + 801 * PAGE], 0xa5);
    assert_int_equal(ram[FREE_BASE + 1023 * PAGE + 4095], 0xa5);

    virtio_driver_free(g_steal_pointer(&d));
    close(fd);
}

/* The device tests' own anonymous RAM: private pages are freed with MADV_DONTNEED. */
static void test_memory_released_private(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d = bal_ready(e, NULL, VIRTIO_DRIVER_ALL_FEATURES);
    uint8_t *ram = virtio_driver_mem(d, FREE_BASE, 32 * PAGE);
    unsigned char vec[32];

    memset(ram, 0x3c, 32 * PAGE);
    bal_range(d, VIRTIO_BALLOON_Q_INFLATE, FREE_BASE, 16, FALSE);
    assert_int_equal(mincore(ram, 32 * PAGE, vec), 0);
    for (unsigned i = 0; i < 32; i++)
        assert_int_equal(vec[i] & 1, i >= 16);
    assert_int_equal(ram[0], 0);
    assert_int_equal(ram[16 * PAGE], 0x3c);
}

/* A statistics buffer of @n entries (tag, value); returns its address. */
static uint64_t bal_stats_buffer(VirtioDriver *d, const uint16_t *tags, const uint64_t *vals,
                                 size_t n, size_t extra)
{
    size_t len = n * VIRTIO_BALLOON_STAT_SIZE + extra;
    uint64_t buf = virtio_driver_alloc(d, MAX(len, 1), 8);
    uint8_t *p = virtio_driver_mem(d, buf, MAX(len, 1));

    for (size_t i = 0; i < n; i++) {
        vireo_le_store(p + 10 * i, 2, tags[i]);
        vireo_le_store(p + 10 * i + 2, 8, vals[i]);
    }
    assert_true(virtio_driver_add(virtio_driver_queue(d, VIRTIO_BALLOON_Q_STATS),
                                  &(VirtioDriverBuf){ buf, len }, 1, NULL, 0,
                                  GUINT_TO_POINTER((guint)buf)) >= 0);
    return buf;
}

static void test_stats(void **state)
{
    static const uint16_t tags[] = { VIRTIO_BALLOON_S_MEMFREE, 42, VIRTIO_BALLOON_S_MEMTOT,
                                     VIRTIO_BALLOON_S_SWAP_IN, VIRTIO_BALLOON_S_HTLB_PGFAIL };
    uint64_t vals[] = { 1000, 77, 16 << 20, 0, 9 };
    g_autoptr(HarnessEnv) e = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d = bal_driver(e, "stats-interval=5");
    g_autoptr(HarnessEnv) e2 = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d2 = NULL;
    VirtioDriverQueue *q;
    VirtioBalloonInfo info;
    uint64_t buf, buf2;

    /* Linux primes the queue with real statistics before DRIVER_OK, and kicks. */
    assert_true(virtio_driver_init(d, VIRTIO_DRIVER_ALL_FEATURES));
    virtio_driver_setup_queue(d, 0, 0);
    virtio_driver_setup_queue(d, 1, 0);
    q = virtio_driver_setup_queue(d, VIRTIO_BALLOON_Q_STATS, 0);
    buf = bal_stats_buffer(d, tags, vals, G_N_ELEMENTS(tags), 0);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_true(bal_info(d).stats_updated == 0);
    virtio_driver_ok(d);
    virtio_driver_run(d);
    info = bal_info(d);
    assert_true(info.stats_updated > 0 && info.stats_interval == 5);
    assert_true(info.stats[VIRTIO_BALLOON_S_MEMFREE] == 1000);
    assert_true(info.stats[VIRTIO_BALLOON_S_MEMTOT] == 16 << 20);
    assert_true(info.stats[VIRTIO_BALLOON_S_SWAP_IN] == 0);
    assert_true(info.stats[VIRTIO_BALLOON_S_HTLB_PGFAIL] == 9);
    assert_true(info.stats[VIRTIO_BALLOON_S_SWAP_OUT] == UINT64_MAX);
    assert_true(info.stats[VIRTIO_BALLOON_S_CACHES] == UINT64_MAX);
    assert_string_equal(virtio_balloon_stat_name(VIRTIO_BALLOON_S_MEMFREE), "stat-free-memory");
    assert_string_equal(virtio_balloon_stat_name(VIRTIO_BALLOON_S_AVAIL),
                        "stat-available-memory");
    /* The device keeps the buffer until it wants fresh statistics. */
    assert_null(virtio_driver_get_used(q, NULL));
    assert_int_equal(harness_timers_armed(e->timers), 1);
    harness_timers_advance(e->timers, 5 * S - 1);
    assert_null(virtio_driver_get_used(q, NULL));
    harness_timers_advance(e->timers, 1);
    assert_ptr_equal(virtio_driver_get_used(q, NULL), GUINT_TO_POINTER((guint)buf));
    assert_int_equal(virtio_driver_queue_interrupts(q), 1);

    /* The driver answers with a new buffer, as stats_handle_request() does. */
    vals[0] = 2000;
    buf2 = bal_stats_buffer(d, tags, vals, G_N_ELEMENTS(tags), 0);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_true(bal_info(d).stats[VIRTIO_BALLOON_S_MEMFREE] == 2000);
    assert_null(virtio_driver_get_used(q, NULL));

    /* Migrated with the buffer waiting in the ring: the destination reads it again. */
    d2 = virtio_driver_migrate(d, e2, "stats-interval=1");
    virtio_driver_run(d2);
    info = bal_info(d2);
    assert_true(info.stats[VIRTIO_BALLOON_S_MEMFREE] == 2000 && info.stats_interval == 1);
    harness_timers_advance(e2->timers, 1 * S);
    assert_ptr_equal(virtio_driver_get_used(virtio_driver_queue(d2, VIRTIO_BALLOON_Q_STATS),
                                            NULL), GUINT_TO_POINTER((guint)buf2));
    /* No buffer back yet: the next polls find nothing to return. */
    harness_timers_advance(e2->timers, 3 * S);
    assert_null(virtio_driver_get_used(virtio_driver_queue(d2, VIRTIO_BALLOON_Q_STATS), NULL));

    /* A buffer with a partial entry: the whole ones count, one warning. */
    harness_take_guest_warnings();
    vals[0] = 3000;
    bal_stats_buffer(d2, tags, vals, 1, 4);
    virtio_driver_kick(virtio_driver_queue(d2, VIRTIO_BALLOON_Q_STATS));
    virtio_driver_run(d2);
    info = bal_info(d2);
    assert_true(info.stats[VIRTIO_BALLOON_S_MEMFREE] == 3000);
    assert_true(info.stats[VIRTIO_BALLOON_S_MEMTOT] == UINT64_MAX);
    assert_int_equal(harness_take_guest_warnings(), 1);

    /* A reset stops the polling. */
    virtio_driver_reset(d2);
    assert_int_equal(harness_timers_armed(e2->timers), 0);
}

/* Without stats-interval the device never asks; without the feature it never reads. */
static void test_stats_off(void **state)
{
    static const uint16_t tags[] = { VIRTIO_BALLOON_S_MEMFREE };
    static const uint64_t vals[] = { 1234 };
    g_autoptr(HarnessEnv) e = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d = bal_ready(e, NULL, VIRTIO_DRIVER_ALL_FEATURES);
    g_autoptr(HarnessEnv) e2 = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d2 = bal_driver(e2, "stats-interval=1");
    VirtioDriverQueue *q = virtio_driver_queue(d, VIRTIO_BALLOON_Q_STATS);

    bal_stats_buffer(d, tags, vals, 1, 0);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_true(bal_info(d).stats[VIRTIO_BALLOON_S_MEMFREE] == 1234);
    assert_int_equal(harness_timers_armed(e->timers), 0);
    harness_timers_advance(e->timers, 3600 * S);
    assert_null(virtio_driver_get_used(q, NULL));

    /* A driver without STATS_VQ that sets up queue 2 all the same. */
    assert_true(virtio_driver_init(d2, VIRTQ_FEATURES));
    virtio_driver_setup_queue(d2, 0, 0);
    virtio_driver_setup_queue(d2, 1, 0);
    q = virtio_driver_setup_queue(d2, 2, 0);
    virtio_driver_ok(d2);
    assert_int_equal(harness_timers_armed(e2->timers), 0);
    bal_stats_buffer(d2, tags, vals, 1, 0);
    virtio_driver_kick(q);
    virtio_driver_run(d2);
    harness_timers_advance(e2->timers, 10 * S);
    assert_true(bal_info(d2).stats_updated == 0);
    assert_null(virtio_driver_get_used(q, NULL));
}

static void test_state(void **state)
{
    static const uint16_t tags[] = { VIRTIO_BALLOON_S_AVAIL };
    static const uint64_t vals[] = { 5555 };
    static const HarnessPoke pokes[] = {
        { "balloon-num-pages", 3, 0x01 },       /* more pages than the RAM has */
        { "balloon-stats-valid", 1, 0x04 },     /* a tag we do not know */
        { "balloon-stats-time", 7, 0x80 },
        { "balloon-pages", 1, 0x01 },           /* the bitmap's length */
        { "q2-size", 0, 0xff },
    };
    g_autoptr(HarnessEnv) e = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d = bal_ready(e, NULL, VIRTIO_DRIVER_ALL_FEATURES);
    g_autoptr(HarnessEnv) e2 = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d2 = NULL;
    g_autoptr(HarnessEnv) e3 = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d3 = NULL;
    VirtioBalloonInfo info;

    virtio_balloon_set_target(virtio_driver_device(d), RAM_SIZE - 100 * PAGE);
    bal_range(d, VIRTIO_BALLOON_Q_INFLATE, FREE_BASE, 100, FALSE);
    bal_write_actual(d, 100);
    bal_stats_buffer(d, tags, vals, 1, 0);
    virtio_driver_kick(virtio_driver_queue(d, VIRTIO_BALLOON_Q_STATS));
    virtio_driver_run(d);
    harness_check_corrupt_state(virtio_driver_device(d), pokes, G_N_ELEMENTS(pokes), FALSE);

    d2 = virtio_driver_migrate(d, e2, "deflate-on-oom=off");
    virtio_driver_run(d2);
    info = bal_info(d2);
    assert_true(info.target == RAM_SIZE - 100 * PAGE && info.actual == info.target);
    assert_true(info.released == 100 * PAGE && info.stats[VIRTIO_BALLOON_S_AVAIL] == 5555);
    assert_int_equal(bal_cfg(d2, VIRTIO_BALLOON_CFG_NUM_PAGES), 100);
    /* The accounting carries on where it was. */
    bal_range(d2, VIRTIO_BALLOON_Q_DEFLATE, FREE_BASE, 150, FALSE);
    assert_true(bal_info(d2).released == 0);

    /* A destination that offers more features than were negotiated is fine. */
    d3 = virtio_driver_migrate(d, e3, "deflate-on-oom=on,stats-interval=2");
    virtio_driver_run(d3);
    harness_timers_advance(e3->timers, 2 * S);
    assert_non_null(virtio_driver_get_used(virtio_driver_queue(d3, VIRTIO_BALLOON_Q_STATS), NULL));
}

/* The hostile ring cases, then random register and memory abuse. */
static void test_hostile_rings(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d = bal_driver(e, "stats-interval=1");
    const VirtioDriverLayout *l = virtio_driver_layout(d);
    VirtioDriverQueue *q;
    uint64_t buf;
    uint8_t *desc;
    int head;

    assert_true(virtio_driver_init(d, VIRTIO_DRIVER_ALL_FEATURES));
    q = virtio_driver_setup_queue(d, VIRTIO_BALLOON_Q_INFLATE, 16);
    virtio_driver_ok(d);

    /* Notifications of queues that were never set up, or do not exist. */
    for (unsigned i = 0; i < 8; i++)
        virtio_driver_mmio_write(d, l->notify.addr + l->notify_multiplier * i, 2, i);
    virtio_driver_run(d);
    harness_timers_advance(e->timers, 3 * S);
    assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    /* Queue index overflow: selecting and programming queues past the last. */
    for (unsigned sel = 3; sel < 0x10000; sel = sel * 7 + 1) {
        virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, sel & 0xffff);
        virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, 16);
        virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x1000);
        virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
        assert_int_equal(virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
        assert_int_equal(virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    }
    virtio_driver_run(d);

    /* A zero-length buffer next to real ones. */
    bal_pfns(d, VIRTIO_BALLOON_Q_INFLATE, NULL, 0);
    {
        uint64_t a = virtio_driver_alloc(d, 8, 4);

        vireo_le_store(virtio_driver_mem(d, a, 4), 4, PFN(FREE_BASE));
        virtio_driver_queue_set_indirect(q, FALSE);
        assert_true(virtio_driver_add(q, (VirtioDriverBuf[]){ { a, 0 }, { a, 4 }, { a + 4, 0 } },
                                      3, NULL, 0, GUINT_TO_POINTER(5)) >= 0);
        virtio_driver_kick(q);
        virtio_driver_run(d);
        assert_ptr_equal(virtio_driver_get_used(q, NULL), GUINT_TO_POINTER(5));
        assert_true(bal_info(d).released == PAGE);
    }

    /* A descriptor loop: the chain's last descriptor points back at its head. */
    buf = virtio_driver_alloc(d, 8, 4);
    head = virtio_driver_add(q, (VirtioDriverBuf[]){ { buf, 4 }, { buf + 4, 4 } }, 2, NULL, 0,
                             GUINT_TO_POINTER(6));
    assert_true(head >= 0);
    desc = virtio_driver_mem(d, virtio_driver_queue_desc(q), 16 * 16);
    for (unsigned i = 0; i < 16; i++) {
        uint8_t *dp = desc + 16 * i;

        if (i != (unsigned)head && vireo_le_load(dp, 8) == buf + 4) {
            vireo_le_store(dp + 12, 2, VIRTQ_DESC_F_NEXT);
            vireo_le_store(dp + 14, 2, head);
        }
    }
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_true(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(virtio_driver_config_interrupts(d), 1);
    assert_null(virtio_driver_get_used(q, NULL));

    /* After a reset: a descriptor outside guest RAM breaks the deflate queue the same way. */
    assert_true(virtio_driver_init(d, VIRTIO_DRIVER_ALL_FEATURES));
    virtio_driver_setup_queue(d, VIRTIO_BALLOON_Q_INFLATE, 16);
    q = virtio_driver_setup_queue(d, VIRTIO_BALLOON_Q_DEFLATE, 16);
    virtio_driver_ok(d);
    assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    buf = virtio_driver_alloc(d, 4, 4);
    head = virtio_driver_add(q, &(VirtioDriverBuf){ buf, 4 }, 1, NULL, 0, GUINT_TO_POINTER(7));
    desc = virtio_driver_mem(d, virtio_driver_queue_desc(q) + 16 * head, 16);
    vireo_le_store(desc, 8, RAM_SIZE - 2);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_true(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    /* The inflate queue still works until the driver resets. */
    bal_range(d, VIRTIO_BALLOON_Q_INFLATE, FREE_BASE, 3, FALSE);
    assert_true(bal_info(d).released == 3 * PAGE);
    harness_take_guest_warnings();
}

static uint64_t hostile_value(GRand *r)
{
    switch (g_rand_int_range(r, 0, 4)) {
    case 0:
        return g_rand_int_range(r, 0, 8);
    case 1:
        return g_rand_int(r);
    case 2:
        return 0x100000 + (uint64_t)g_rand_int_range(r, 0, 0x400000);
    default:
        return ((uint64_t)g_rand_int(r) << 32) | g_rand_int(r);
    }
}

/*
 * Random register writes (all of BAR2: common, ISR, configuration,
 * doorbells), scribbles over the driver's memory (rings, PFN arrays,
 * statistics), kicks, targets, resets and save/load round trips, with a
 * well-behaved driver taking over now and then: the device must keep
 * working, its accounting within the RAM, and never touch memory outside
 * guest RAM (the harness's guard pages).
 */
static void test_hostile_guest(void **state)
{
    static const size_t lens[] = { 1, 2, 4, 8 };
    g_autoptr(HarnessEnv) e = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d = bal_driver(e, "stats-interval=1,deflate-on-oom=on");
    g_autoptr(GRand) r = g_rand_new_with_seed(0xba11);
    Device *dev = virtio_driver_device(d);
    uint8_t *ram = virtio_driver_mem(d, 0, RAM_SIZE);
    unsigned good_rounds = 0;

    for (unsigned it = 0; it < 60000; it++) {
        unsigned op = g_rand_int_range(r, 0, 1000);
        size_t len = lens[g_rand_int_range(r, 0, 4)];
        VirtioBalloonInfo info;

        if (op < 400) {
            uint64_t off = g_rand_boolean(r) ? (uint64_t)g_rand_int_range(r, 0, 64)
                                             : (uint64_t)g_rand_int_range(r, 0, 0x4000 - 8);

            if (g_rand_int_range(r, 0, 3) == 0)
                off = VIRTIO_PCI_DEVICE_OFFSET + g_rand_int_range(r, 0, 12);
            off -= off % len;
            if (g_rand_boolean(r))
                harness_write(dev, PCI_BAR_OFFSET(2) + off, len, hostile_value(r));
            else
                harness_read(dev, PCI_BAR_OFFSET(2) + off, len);
        } else if (op < 550) {
            unsigned qi = g_rand_int_range(r, 0, 5);

            harness_write(dev, PCI_BAR_OFFSET(2) + VIRTIO_PCI_NOTIFY_OFFSET + 4 * qi, 2, qi);
        } else if (op < 700) {
            unsigned n = g_rand_int_range(r, 1, 64);
            uint64_t at = 0x100000 + g_rand_int_range(r, 0, DRIVER_MEM - 64);

            for (unsigned i = 0; i < n; i++)
                ram[at + i] = g_rand_boolean(r) ? g_rand_int(r) : (guint32)g_rand_int_range(r, 0, 8);
        } else if (op < 800) {
            harness_loop_run(e->loop);
        } else if (op < 850) {
            harness_timers_advance(e->timers, g_rand_int_range(r, 0, 3) * S);
        } else if (op < 900) {
            virtio_balloon_set_target(dev, g_rand_int_range(r, 1, RAM_SIZE * 2));
        } else if (op < 950) {
            /* A well-behaved driver takes over: the device must still work. */
            uint32_t pfns[4];
            uint64_t released;

            harness_loop_run(e->loop);
            virtio_driver_map_bars(d);
            assert_true(virtio_driver_init(d, g_rand_boolean(r) ? VIRTIO_DRIVER_ALL_FEATURES
                                                                : VIRTQ_FEATURES));
            virtio_driver_setup_queue(d, 0, 1 << g_rand_int_range(r, 0, 8));
            virtio_driver_setup_queue(d, 1, 0);
            virtio_driver_ok(d);
            for (unsigned i = 0; i < 4; i++)
                pfns[i] = PFN(FREE_BASE) + g_rand_int_range(r, 0, 1024);
            released = bal_info(d).released;
            assert_true(released == 0);
            bal_pfns(d, VIRTIO_BALLOON_Q_INFLATE, pfns, 4);
            assert_true(bal_info(d).released >= PAGE);
            bal_pfns(d, VIRTIO_BALLOON_Q_DEFLATE, pfns, 4);
            assert_true(bal_info(d).released == 0);
            good_rounds++;
            if (good_rounds % 8 == 0) {
                virtio_driver_free(g_steal_pointer(&d));
                d = bal_driver(e, "stats-interval=1,deflate-on-oom=on");
                dev = virtio_driver_device(d);
            }
        } else if (op < 975) {
            harness_loop_run(e->loop);
            device_reset(dev);
        } else {
            g_autoptr(GBytes) st = NULL;
            g_autoptr(GError) err = NULL;

            harness_loop_run(e->loop);
            st = harness_save(dev);
            if (!harness_load(dev, st, &err))
                fail_msg("iteration %u: reloading own state: %s", it, err->message);
        }
        virtio_balloon_get_info(dev, &info);
        assert_true(info.target <= RAM_SIZE && info.actual <= RAM_SIZE &&
                    info.released <= RAM_SIZE);
    }
    assert_true(good_rounds > 20);
    harness_take_guest_warnings();
}

/* A well-behaved driver scattering PFNs over all of RAM, guarded by the harness's guard pages. */
static void test_whole_ram(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("balloon", 0);
    g_autoptr(VirtioDriver) d = bal_ready(e, NULL, VIRTIO_DRIVER_ALL_FEATURES);
    uint32_t first[] = { 0, PFN(RAM_SIZE) - 1 };

    /* Pages outside the driver's memory, including the first and last of RAM. */
    bal_pfns(d, VIRTIO_BALLOON_Q_INFLATE, first, 2);
    bal_range(d, VIRTIO_BALLOON_Q_INFLATE, FREE_BASE, 2047, FALSE);
    assert_true(bal_info(d).released == 2049ULL * PAGE);
    bal_range(d, VIRTIO_BALLOON_Q_DEFLATE, FREE_BASE, 2047, TRUE);
    bal_pfns(d, VIRTIO_BALLOON_Q_DEFLATE, first, 2);
    assert_true(bal_info(d).released == 0);
}

static void test_options(void **state)
{
    static const char *const bad[] = {
        "deflate-on-oom=yes", "deflate-on-oom=", "stats-interval=-1", "stats-interval=x",
        "stats-interval=86401", "stats-interval=1s", "speed=1", "stats-interval=",
        "stats-interval=+5",
    };
    g_autoptr(HarnessEnv) e = harness_env_new("balloon", 0);

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *msg = harness_device_new_fail(e, BAL, bad[i],
                                                       VIREO_ERROR_INVALID_ARGUMENT);
        assert_non_null(strstr(msg, BAL));
    }
    e->env.timers = NULL;
    g_free(harness_device_new_fail(e, BAL, "stats-interval=3", VIREO_ERROR_INVALID_ARGUMENT));
    device_free(harness_device_new(e, BAL, "stats-interval=0"));
    e->env.timers = harness_timers_service(e->timers);
    e->env.mem = NULL;
    g_free(harness_device_new_fail(e, BAL, NULL, VIREO_ERROR_INVALID_ARGUMENT));
    e->env.mem = &e->mem.mem;
    device_free(harness_device_new(e, BAL, "deflate-on-oom=off,stats-interval=86400"));
    device_free(harness_device_new(e, BAL, ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_and_target),
        cmocka_unit_test(test_inflate_deflate),
        cmocka_unit_test(test_memory_released),
        cmocka_unit_test(test_memory_released_private),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_stats_off),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_hostile_rings),
        cmocka_unit_test(test_hostile_guest),
        cmocka_unit_test(test_whole_ram),
        cmocka_unit_test(test_options),
    };

    harness_init();
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
