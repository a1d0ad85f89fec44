/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-blk (devices/virtio/blk.c) through the test driver, on real
 * image files in a temporary directory: reads, writes, flush, GET_ID,
 * discard and write-zeroes on raw and qcow2 images (checked by reading
 * the files back, and qcow2 with block_check), a read-only disk, several
 * queues, a hostile driver's requests and rings (descriptor loops,
 * addresses and indices out of range, the available index overflowing or
 * going back), stray notifications, zero-length buffers, host I/O errors,
 * and state saved with requests in flight.
 *
 * I/O completes asynchronously on the storage engine, so the tests wait
 * for used entries by playing the loop until they come.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "virtio-driver.h"
#include "vireo/block.h"
#include "vireo/qcow2.h"
#include "vireo/virtio-blk.h"

#define BLK "virtio-blk"
#define F(bit) VIRTIO_BIT(bit)
#define DISK_SIZE (1024 * 1024)
#define SECTORS (DISK_SIZE / 512)

static char *tmp_dir;

/* The byte the test images start with at @off. */
static uint8_t pattern(uint64_t off, uint8_t seed)
{
    return (uint8_t)(off * 7 + off / 512 + seed);
}

static void fill(uint8_t *p, size_t len, uint64_t off, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = pattern(off + i, seed);
}

static char *disk_path(const char *name)
{
    return g_build_filename(tmp_dir, name, NULL);
}

static char *make_raw(const char *name, uint8_t seed)
{
    char *path = disk_path(name);
    g_autofree uint8_t *buf = g_malloc(DISK_SIZE);

    fill(buf, DISK_SIZE, 0, seed);
    assert_true(g_file_set_contents(path, (char *)buf, DISK_SIZE, NULL));
    return path;
}

static char *make_qcow2(const char *name, uint32_t cluster)
{
    char *path = disk_path(name);
    Qcow2CreateOptions o = { .size = DISK_SIZE, .cluster_size = cluster };
    g_autoptr(GError) err = NULL;

    if (!qcow2_create(path, &o, &err))
        fail_msg("qcow2_create: %s", err->message);
    return path;
}

static void file_read(const char *path, uint64_t off, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, len, off), len);
    close(fd);
}

static VirtioDriver *blk_ready(HarnessEnv *e, const char *options, uint64_t features,
                               unsigned queues)
{
    VirtioDriver *d = virtio_driver_new(e, BLK, options, NULL);

    assert_true(virtio_driver_init(d, features));
    for (unsigned i = 0; i < queues; i++)
        virtio_driver_setup_queue(d, i, 0);
    virtio_driver_ok(d);
    return d;
}

/* A request as Linux builds it: header, data, status; the status's address is the token. */
typedef struct Req {
    uint64_t hdr, status;
} Req;

static Req blk_add(VirtioDriver *d, VirtioDriverQueue *q, uint32_t type, uint64_t sector,
                   uint64_t data, uint32_t len)
{
    Req r = { virtio_driver_alloc(d, 16, 16), virtio_driver_alloc(d, 1, 1) };
    uint8_t *h = virtio_driver_mem(d, r.hdr, 16);
    VirtioDriverBuf out[2] = { { r.hdr, 16 }, { data, len } };
    VirtioDriverBuf in[2] = { { data, len }, { r.status, 1 } };
    gboolean dev_writes = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;

    vireo_le_store(h, 4, type);
    vireo_le_store(h + 4, 4, 0);
    vireo_le_store(h + 8, 8, sector);
    *(uint8_t *)virtio_driver_mem(d, r.status, 1) = 0xee;
    if (dev_writes)
        assert_true(virtio_driver_add(q, out, 1, len ? in : in + 1, len ? 2 : 1,
                                      GSIZE_TO_POINTER(r.status)) >= 0);
    else
        assert_true(virtio_driver_add(q, out, len ? 2 : 1, in + 1, 1,
                                      GSIZE_TO_POINTER(r.status)) >= 0);
    return r;
}

/* Plays the loop until queue @q returns something; its token and length. */
static uint64_t blk_wait_used(VirtioDriver *d, VirtioDriverQueue *q, uint32_t *len)
{
    for (unsigned i = 0; i < 50000; i++) {
        void *token;

        virtio_driver_run(d);
        token = virtio_driver_get_used(q, len);
        if (token)
            return GPOINTER_TO_SIZE(token);
        g_usleep(100);
    }
    fail_msg("no used buffer on queue %u", virtio_driver_queue_index(q));
    return 0;
}

/* Waits for request @r and returns its status. */
static uint8_t blk_wait(VirtioDriver *d, VirtioDriverQueue *q, Req r)
{
    uint32_t len;

    assert_int_equal(blk_wait_used(d, q, &len), r.status);
    return *(uint8_t *)virtio_driver_mem(d, r.status, 1);
}

static uint8_t blk_do(VirtioDriver *d, unsigned queue, uint32_t type, uint64_t sector,
                      uint64_t data, uint32_t len)
{
    VirtioDriverQueue *q = virtio_driver_queue(d, queue);
    Req r = blk_add(d, q, type, sector, data, len);

    virtio_driver_kick(q);
    return blk_wait(d, q, r);
}

/* A discard or write-zeroes of one segment. */
static uint8_t blk_dwz(VirtioDriver *d, uint32_t type, uint64_t sector, uint32_t num,
                       uint32_t flags)
{
    uint64_t seg = virtio_driver_alloc(d, 16, 16);
    uint8_t *p = virtio_driver_mem(d, seg, 16);

    vireo_le_store(p, 8, sector);
    vireo_le_store(p + 8, 4, num);
    vireo_le_store(p + 12, 4, flags);
    return blk_do(d, 0, type, 0, seg, 16);
}

static uint64_t config_u64(VirtioDriver *d, uint32_t off, size_t len)
{
    uint8_t buf[8] = { 0 };

    virtio_driver_config_read(d, off, buf, len);
    return vireo_le_load(buf, len);
}

/* Reads, writes, flush, GET_ID, discard and write-zeroes on @path, checked against the file. */
static void exercise(const char *path, const char *options, gboolean raw)
{
    g_autoptr(HarnessEnv) e = harness_env_new("blk", 0);
    g_autoptr(VirtioDriver) d = blk_ready(e, options, VIRTIO_DRIVER_ALL_FEATURES, 1);
    uint64_t buf = virtio_driver_alloc(d, 64 * 1024, 4096);
    uint8_t *p = virtio_driver_mem(d, buf, 64 * 1024);
    g_autofree uint8_t *want = g_malloc(64 * 1024);
    g_autofree uint8_t *got = g_malloc(64 * 1024);
    char id[VIRTIO_BLK_ID_BYTES + 1] = { 0 };
    uint64_t idbuf = virtio_driver_alloc(d, 32, 8);
    uint64_t features = virtio_driver_features(d);

    assert_int_equal(pci_config_read(virtio_driver_pci(d), PCI_VENDOR_ID, 4), 0x10421af4);
    assert_true(features & F(VIRTIO_BLK_F_FLUSH));
    assert_true(features & F(VIRTIO_BLK_F_DISCARD));
    assert_true(features & F(VIRTIO_BLK_F_WRITE_ZEROES));
    assert_true(features & F(VIRTIO_BLK_F_SEG_MAX));
    assert_false(features & (F(VIRTIO_BLK_F_RO) | F(VIRTIO_BLK_F_MQ)));
    assert_int_equal(config_u64(d, VIRTIO_BLK_CFG_CAPACITY, 8), SECTORS);
    assert_int_equal(config_u64(d, VIRTIO_BLK_CFG_SEG_MAX, 4), VIRTIO_BLK_SEG_MAX);
    assert_int_equal(config_u64(d, VIRTIO_BLK_CFG_BLK_SIZE, 4), 512);
    assert_int_equal(config_u64(d, VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 4), 1);
    assert_int_equal(config_u64(d, VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP, 1), 1);

    /* What is there: the raw file's pattern, or zeroes in a new qcow2. */
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_IN, 0, buf, 8192), VIRTIO_BLK_S_OK);
    if (raw)
        fill(want, 8192, 0, 1);
    else
        memset(want, 0, 8192);
    assert_memory_equal(p, want, 8192);

    /* Writes anywhere, including the last sector, read back. */
    fill(p, 16384, 0, 0x55);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_OUT, 40, buf, 16384), VIRTIO_BLK_S_OK);
    fill(p, 512, 0, 0x66);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_OUT, SECTORS - 1, buf, 512), VIRTIO_BLK_S_OK);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
    memset(p, 0, 16384);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_IN, 40, buf, 16384), VIRTIO_BLK_S_OK);
    fill(want, 16384, 0, 0x55);
    assert_memory_equal(p, want, 16384);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_IN, SECTORS - 1, buf, 512), VIRTIO_BLK_S_OK);
    fill(want, 512, 0, 0x66);
    assert_memory_equal(p, want, 512);
    if (raw) {
        file_read(path, 40 * 512, got, 16384);
        fill(want, 16384, 0, 0x55);
        assert_memory_equal(got, want, 16384);
    }

    /* GET_ID: the serial, zero-padded to 20 bytes. */
    memset(virtio_driver_mem(d, idbuf, 32), 0xaa, 32);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_GET_ID, 0, idbuf, VIRTIO_BLK_ID_BYTES),
                     VIRTIO_BLK_S_OK);
    memcpy(id, virtio_driver_mem(d, idbuf, 20), 20);
    assert_string_equal(id, "disk-0123");
    /* A shorter buffer gets what fits. */
    memset(virtio_driver_mem(d, idbuf, 32), 0xaa, 32);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_GET_ID, 0, idbuf, 4), VIRTIO_BLK_S_OK);
    assert_memory_equal(virtio_driver_mem(d, idbuf, 4), "disk", 4);
    assert_int_equal(*(uint8_t *)virtio_driver_mem(d, idbuf + 4, 1), 0xaa);

    /* Write-zeroes (with and without unmap) reads back as zeroes; discard succeeds. */
    assert_int_equal(blk_dwz(d, VIRTIO_BLK_T_WRITE_ZEROES, 40, 8, 0), VIRTIO_BLK_S_OK);
    assert_int_equal(blk_dwz(d, VIRTIO_BLK_T_WRITE_ZEROES, 48, 16,
                             VIRTIO_BLK_WRITE_ZEROES_F_UNMAP), VIRTIO_BLK_S_OK);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_IN, 40, buf, 16384), VIRTIO_BLK_S_OK);
    memset(want, 0, 12288);
    assert_memory_equal(p, want, 12288);
    fill(want, 16384, 0, 0x55);
    assert_memory_equal(p + 12288, want + 12288, 4096);
    assert_int_equal(blk_dwz(d, VIRTIO_BLK_T_DISCARD, 0, 128, 0), VIRTIO_BLK_S_OK);
    assert_int_equal(blk_dwz(d, VIRTIO_BLK_T_DISCARD, 0, 0, 0), VIRTIO_BLK_S_OK);
    if (raw) {
        file_read(path, 40 * 512, got, 12288);
        for (unsigned i = 0; i < 12288; i++)
            assert_int_equal(got[i], 0);
    }

    /* 128 requests in flight at once: the whole ring (indirect), all completed. */
    {
        VirtioDriverQueue *q = virtio_driver_queue(d, 0);
        uint64_t big = virtio_driver_alloc(d, 128 * 4096, 4096);
        Req reqs[128];
        unsigned done = 0;

        for (unsigned i = 0; i < 128; i++) {
            fill(virtio_driver_mem(d, big + 4096ULL * i, 4096), 4096, 4096ULL * i, 0x77);
            reqs[i] = blk_add(d, q, VIRTIO_BLK_T_OUT, 8ULL * i, big + 4096ULL * i, 4096);
        }
        virtio_driver_kick(q);
        while (done < 128) {
            uint32_t len;
            uint64_t token = blk_wait_used(d, q, &len);

            assert_int_equal(*(uint8_t *)virtio_driver_mem(d, token, 1), VIRTIO_BLK_S_OK);
            done++;
        }
        (void)reqs;
        memset(virtio_driver_mem(d, big, 128 * 4096), 0, 128 * 4096);
        for (unsigned i = 0; i < 128; i++)
            reqs[i] = blk_add(d, q, VIRTIO_BLK_T_IN, 8ULL * i, big + 4096ULL * i, 4096);
        virtio_driver_kick(q);
        for (done = 0; done < 128; done++) {
            uint32_t len;

            blk_wait_used(d, q, &len);
            assert_int_equal(len, 4097);
        }
        for (unsigned i = 0; i < 128; i++) {
            fill(want, 4096, 4096ULL * i, 0x77);
            assert_memory_equal(virtio_driver_mem(d, big + 4096ULL * i, 4096), want, 4096);
        }
        assert_true(virtio_driver_queue_interrupts(q) >= 1);
    }
    assert_int_equal(harness_take_guest_warnings(), 0);
}

static void test_raw(void **state)
{
    g_autofree char *path = make_raw("raw.img", 1);
    g_autofree char *opts = g_strdup_printf("path=%s,format=raw,serial=disk-0123", path);

    exercise(path, opts, TRUE);
    /* Probed: the same. */
    {
        g_autofree char *p2 = make_raw("raw2.img", 1);
        g_autofree char *o2 = g_strdup_printf("path=%s,serial=disk-0123", p2);

        exercise(p2, o2, TRUE);
    }
}

static void test_qcow2(void **state)
{
    static const uint32_t clusters[] = { 4096, 65536 };

    for (size_t i = 0; i < G_N_ELEMENTS(clusters); i++) {
        g_autofree char *name = g_strdup_printf("disk-%u.qcow2", clusters[i]);
        g_autofree char *path = make_qcow2(name, clusters[i]);
        g_autofree char *opts = g_strdup_printf("path=%s,format=qcow2,serial=disk-0123", path);
        g_autoptr(BlockDev) bs = NULL;
        g_autoptr(GError) err = NULL;
        BlockOpenOptions bo = { .format = "qcow2", .read_only = TRUE };
        BlockCheckResult res;
        uint8_t buf[4096], want[4096];
        g_autofree char *qemu_img = g_find_program_in_path("qemu-img");

        exercise(path, opts, FALSE);
        /* The device is gone: the image is consistent and has the data. */
        bs = block_open(path, &bo, &err);
        assert_non_null(bs);
        assert_true(block_check(bs, BLOCK_CHECK_NO_FIX, &res, &err));
        assert_int_equal(res.corruptions + res.leaks + res.check_errors, 0);
        assert_true(block_pread(bs, 100 * 4096, buf, 4096, &err));
        fill(want, 4096, 100 * 4096, 0x77);
        assert_memory_equal(buf, want, 4096);
        g_clear_pointer(&bs, block_close);
        if (qemu_img) {
            g_autofree char *cmd = g_strdup_printf("%s check -q %s", qemu_img, path);
            int status;

            assert_true(g_spawn_command_line_sync(cmd, NULL, NULL, &status, NULL));
            assert_true(g_spawn_check_wait_status(status, NULL));
        }
    }
}

static void test_read_only(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("blk", 0);
    g_autofree char *path = make_raw("ro.img", 3);
    g_autofree char *opts = g_strdup_printf("path=%s,readonly=on", path);
    g_autoptr(VirtioDriver) d = blk_ready(e, opts, VIRTIO_DRIVER_ALL_FEATURES, 1);
    uint64_t buf = virtio_driver_alloc(d, 4096, 4096);
    uint8_t got[4096], want[4096];
    uint64_t features = virtio_driver_features(d);

    assert_true(features & F(VIRTIO_BLK_F_RO));
    assert_false(features & (F(VIRTIO_BLK_F_DISCARD) | F(VIRTIO_BLK_F_WRITE_ZEROES)));
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_IN, 8, buf, 4096), VIRTIO_BLK_S_OK);
    fill(want, 4096, 4096, 3);
    assert_memory_equal(virtio_driver_mem(d, buf, 4096), want, 4096);
    /* A driver that ignores RO: its writes fail, the file is untouched. */
    memset(virtio_driver_mem(d, buf, 4096), 0, 4096);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_OUT, 8, buf, 4096), VIRTIO_BLK_S_IOERR);
    assert_int_equal(blk_dwz(d, VIRTIO_BLK_T_WRITE_ZEROES, 8, 8, 0), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(blk_dwz(d, VIRTIO_BLK_T_DISCARD, 8, 8, 0), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
    file_read(path, 4096, got, 4096);
    assert_memory_equal(got, want, 4096);
    /* Another reader may share it; a writer may not (the image lock). */
    {
        g_autofree char *o2 = g_strdup_printf("path=%s", path);
        g_autoptr(HarnessEnv) e2 = harness_env_new("blk", 0);
        g_autofree char *msg = harness_device_new_fail(e2, BLK, o2, VIREO_ERROR_IO);

        (void)msg;
    }
    harness_take_guest_warnings();
}

static void test_multiqueue(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("blk", 0);
    g_autofree char *path = make_raw("mq.img", 4);
    g_autofree char *opts = g_strdup_printf("path=%s,queues=4", path);
    g_autoptr(VirtioDriver) d = blk_ready(e, opts, VIRTIO_DRIVER_ALL_FEATURES, 4);
    uint64_t buf = virtio_driver_alloc(d, 4 * 4096, 4096);
    uint8_t want[4096];

    assert_true(virtio_driver_features(d) & F(VIRTIO_BLK_F_MQ));
    assert_int_equal(config_u64(d, VIRTIO_BLK_CFG_NUM_QUEUES, 2), 4);
    assert_int_equal(virtio_driver_common_read(d, VIRTIO_PCI_COMMON_NUMQ, 2), 4);
    /* Each queue writes its own block, then they read each other's. */
    for (unsigned i = 0; i < 4; i++)
        fill(virtio_driver_mem(d, buf + 4096 * i, 4096), 4096, 0, 0x10 + i);
    {
        Req r[4];

        for (unsigned i = 0; i < 4; i++) {
            r[i] = blk_add(d, virtio_driver_queue(d, i), VIRTIO_BLK_T_OUT, 8 * i,
                           buf + 4096 * i, 4096);
            virtio_driver_kick(virtio_driver_queue(d, i));
        }
        for (unsigned i = 0; i < 4; i++)
            assert_int_equal(blk_wait(d, virtio_driver_queue(d, i), r[i]), VIRTIO_BLK_S_OK);
    }
    memset(virtio_driver_mem(d, buf, 4 * 4096), 0, 4 * 4096);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(blk_do(d, (i + 1) % 4, VIRTIO_BLK_T_IN, 8 * i, buf + 4096 * i, 4096),
                         VIRTIO_BLK_S_OK);
        fill(want, 4096, 0, 0x10 + i);
        assert_memory_equal(virtio_driver_mem(d, buf + 4096 * i, 4096), want, 4096);
        assert_true(virtio_driver_queue_interrupts(virtio_driver_queue(d, i)) >= 1);
    }

    /* Without MQ negotiated only queue 0 runs. */
    {
        g_autoptr(HarnessEnv) e2 = harness_env_new("blk", 0);
        g_autofree char *p2 = make_raw("mq2.img", 4);
        g_autofree char *o2 = g_strdup_printf("path=%s,queues=2", p2);
        g_autoptr(VirtioDriver) d2 = blk_ready(e2, o2, VIRTIO_DRIVER_ALL_FEATURES &
                                               ~F(VIRTIO_BLK_F_MQ), 2);
        VirtioDriverQueue *q1 = virtio_driver_queue(d2, 1);
        uint64_t b2 = virtio_driver_alloc(d2, 512, 512);

        blk_add(d2, q1, VIRTIO_BLK_T_IN, 0, b2, 512);
        virtio_driver_kick(q1);
        virtio_driver_run(d2);
        g_usleep(10000);
        virtio_driver_run(d2);
        assert_null(virtio_driver_get_used(q1, NULL));
        assert_int_equal(blk_do(d2, 0, VIRTIO_BLK_T_IN, 0, b2, 512), VIRTIO_BLK_S_OK);
    }
}

/* Requests a hostile driver builds: each gets a status (or nothing), never a crash or hang. */
static void test_bad_requests(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("blk", 0);
    g_autofree char *path = make_raw("bad.img", 5);
    g_autofree char *opts = g_strdup_printf("path=%s", path);
    g_autoptr(VirtioDriver) d = blk_ready(e, opts, VIRTIO_DRIVER_ALL_FEATURES, 1);
    VirtioDriverQueue *q = virtio_driver_queue(d, 0);
    uint64_t buf = virtio_driver_alloc(d, 8192, 4096);
    uint64_t hdr = virtio_driver_alloc(d, 16, 16), st = virtio_driver_alloc(d, 16, 16);
    uint8_t *h = virtio_driver_mem(d, hdr, 16);
    uint8_t want[4096], got[4096];
    uint32_t len;

    /* Out of range, misaligned, unknown. */
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_IN, SECTORS, buf, 512), VIRTIO_BLK_S_IOERR);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_IN, SECTORS - 1, buf, 1024), VIRTIO_BLK_S_IOERR);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_OUT, UINT64_MAX, buf, 512), VIRTIO_BLK_S_IOERR);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_OUT, UINT64_MAX / 512 + 1, buf, 512),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_IN, 0, buf, 100), VIRTIO_BLK_S_IOERR);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_OUT, 0, buf, 513), VIRTIO_BLK_S_IOERR);
    assert_int_equal(blk_do(d, 0, 99, 0, buf, 512), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_GET_LIFETIME, 0, buf, 16), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_SECURE_ERASE, 0, buf, 16), VIRTIO_BLK_S_UNSUPP);
    /* Zero-length reads and writes do nothing and succeed. */
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_IN, 0, buf, 0), VIRTIO_BLK_S_OK);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_OUT, SECTORS, buf, 0), VIRTIO_BLK_S_OK);
    /* Discard and write-zeroes: bad segments, flags, ranges. */
    assert_int_equal(blk_dwz(d, VIRTIO_BLK_T_DISCARD, 0, 8, VIRTIO_BLK_WRITE_ZEROES_F_UNMAP),
                     VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(blk_dwz(d, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 2), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(blk_dwz(d, VIRTIO_BLK_T_WRITE_ZEROES, SECTORS - 4, 8, 0),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(blk_dwz(d, VIRTIO_BLK_T_DISCARD, UINT64_MAX - 2, 8, 0), VIRTIO_BLK_S_IOERR);
    assert_int_equal(blk_dwz(d, VIRTIO_BLK_T_DISCARD, 0, 0xffffffffu, 0), VIRTIO_BLK_S_IOERR);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_DISCARD, 0, buf, 32), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, buf, 8), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_DISCARD, 0, 0, 0), VIRTIO_BLK_S_UNSUPP);

    /* A header too short: IOERR in the status byte. */
    vireo_le_store(h, 4, VIRTIO_BLK_T_IN);
    vireo_le_store(h + 8, 8, 0);
    *(uint8_t *)virtio_driver_mem(d, st, 1) = 0xee;
    assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ hdr, 8 }, 1,
                                  &(VirtioDriverBuf){ st, 1 }, 1, GSIZE_TO_POINTER(st)) >= 0);
    virtio_driver_kick(q);
    assert_int_equal(blk_wait_used(d, q, &len), st);
    assert_int_equal(*(uint8_t *)virtio_driver_mem(d, st, 1), VIRTIO_BLK_S_IOERR);
    /* No header at all. */
    assert_true(virtio_driver_add(q, NULL, 0, &(VirtioDriverBuf){ st, 1 }, 1,
                                  GSIZE_TO_POINTER(st)) >= 0);
    virtio_driver_kick(q);
    assert_int_equal(blk_wait_used(d, q, &len), st);
    assert_int_equal(*(uint8_t *)virtio_driver_mem(d, st, 1), VIRTIO_BLK_S_IOERR);

    /* No status byte (only device-readable buffers): returned untouched, no write done. */
    vireo_le_store(h, 4, VIRTIO_BLK_T_OUT);
    memset(virtio_driver_mem(d, buf, 4096), 0, 4096);
    assert_true(virtio_driver_add(q, (VirtioDriverBuf[]){ { hdr, 16 }, { buf, 4096 },
                                                          { st, 1 } }, 3, NULL, 0,
                                  GSIZE_TO_POINTER(hdr)) >= 0);
    virtio_driver_kick(q);
    assert_int_equal(blk_wait_used(d, q, &len), hdr);
    assert_int_equal(len, 0);
    file_read(path, 0, got, 4096);
    fill(want, 4096, 0, 5);
    assert_memory_equal(got, want, 4096);

    /* Header split over descriptors, a zero-length one among them, status inside a larger buffer. */
    fill(virtio_driver_mem(d, buf, 4096), 4096, 0, 0x42);
    memset(virtio_driver_mem(d, st, 16), 0xee, 16);
    assert_true(virtio_driver_add(q, (VirtioDriverBuf[]){ { hdr, 5 }, { hdr + 5, 0 },
                                                          { hdr + 5, 11 }, { buf, 1000 },
                                                          { buf + 1000, 3096 } }, 5,
                                  &(VirtioDriverBuf){ st, 16 }, 1, GSIZE_TO_POINTER(st)) >= 0);
    virtio_driver_kick(q);
    assert_int_equal(blk_wait_used(d, q, &len), st);
    assert_int_equal(*(uint8_t *)virtio_driver_mem(d, st + 15, 1), VIRTIO_BLK_S_OK);
    assert_int_equal(*(uint8_t *)virtio_driver_mem(d, st, 1), 0xee);
    file_read(path, 0, got, 4096);
    fill(want, 4096, 0, 0x42);
    assert_memory_equal(got, want, 4096);
    /* A read whose data and status share the last buffer. */
    memset(virtio_driver_mem(d, buf, 8192), 0, 8192);
    vireo_le_store(h, 4, VIRTIO_BLK_T_IN);
    assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ hdr, 16 }, 1,
                                  (VirtioDriverBuf[]){ { buf, 100 }, { buf + 100, 413 } }, 2,
                                  GSIZE_TO_POINTER(buf)) >= 0);
    virtio_driver_kick(q);
    assert_int_equal(blk_wait_used(d, q, &len), buf);
    assert_int_equal(*(uint8_t *)virtio_driver_mem(d, buf + 512, 1), VIRTIO_BLK_S_OK);
    assert_memory_equal(virtio_driver_mem(d, buf, 512), want, 512);

    /* FLUSH without the feature: UNSUPP; writes are then write-through. */
    {
        g_autoptr(HarnessEnv) e2 = harness_env_new("blk", 0);
        g_autofree char *p2 = make_raw("noflush.img", 6);
        g_autofree char *o2 = g_strdup_printf("path=%s", p2);
        g_autoptr(VirtioDriver) d2 = blk_ready(e2, o2, VIRTIO_DRIVER_ALL_FEATURES &
                                               ~F(VIRTIO_BLK_F_FLUSH), 1);
        uint64_t b2 = virtio_driver_alloc(d2, 512, 512);

        assert_int_equal(blk_do(d2, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_UNSUPP);
        assert_int_equal(blk_do(d2, 0, VIRTIO_BLK_T_OUT, 0, b2, 512), VIRTIO_BLK_S_OK);
    }
    assert_true(harness_take_guest_warnings() > 0);
    assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
}

/*
 * Reset, set up @queues queues again as Linux does, and a read from each:
 * what a driver does after DEVICE_NEEDS_RESET, and the proof that the
 * device recovered. @seed is the image's (make_raw).
 */
static void blk_restart(VirtioDriver *d, uint64_t features, unsigned queues, uint8_t seed)
{
    uint64_t buf = virtio_driver_alloc(d, 512, 512);
    uint8_t want[512];

    assert_true(virtio_driver_init(d, features));
    for (unsigned i = 0; i < queues; i++)
        virtio_driver_setup_queue(d, i, 0);
    virtio_driver_ok(d);
    assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    fill(want, 512, 512, seed);
    for (unsigned i = 0; i < queues; i++) {
        memset(virtio_driver_mem(d, buf, 512), 0, 512);
        assert_int_equal(blk_do(d, i, VIRTIO_BLK_T_IN, 1, buf, 512), VIRTIO_BLK_S_OK);
        assert_memory_equal(virtio_driver_mem(d, buf, 512), want, 512);
    }
}

/* Descriptor @n (from 0) of the chain @head, without indirect tables. */
static uint8_t *chain_desc(VirtioDriver *d, VirtioDriverQueue *q, unsigned head, unsigned n)
{
    uint64_t table = virtio_driver_queue_desc(q);
    unsigned i = head;

    while (n--)
        i = vireo_le_load(virtio_driver_mem(d, table + 16ULL * i + 14, 2), 2);
    return virtio_driver_mem(d, table + 16ULL * i, 16);
}

/*
 * Malformed rings: DEVICE_NEEDS_RESET, one configuration interrupt, one
 * warning, nothing used or written; kicks after that change nothing, and a
 * reset recovers. (Each case warns once from the same place, well under
 * the rate limit's burst, so the counts are exact.)
 */
static void test_broken_ring(void **state)
{
    enum { LOOP, OUTSIDE, ORDER, NEXT, HEAD, OVERFLOW, BACK, N_CASES };
    /* What virtq_get_error() says: each case breaks the queue for its own reason. */
    static const char *const why[N_CASES] = {
        "chain loops", "is not inside RAM", "device-readable buffer after a device-writable",
        "next index 256 outside the table", "head index 256 outside the queue",
        "moved from 0 to 257", "moved from 1 to 0",
    };

    for (unsigned c = 0; c < N_CASES; c++) {
        g_autoptr(HarnessEnv) e = harness_env_new("blk", 0);
        g_autofree char *name = g_strdup_printf("broken-%u.img", c);
        g_autofree char *path = make_raw(name, 7);
        g_autofree char *opts = g_strdup_printf("path=%s", path);
        g_autoptr(VirtioDriver) d = blk_ready(e, opts, 0, 1);
        VirtioDriverQueue *q = virtio_driver_queue(d, 0);
        uint16_t size = virtio_driver_queue_size(q);
        uint8_t *avail = virtio_driver_mem(d, virtio_driver_queue_avail(q), 4 + 2 * size);
        uint64_t buf = virtio_driver_alloc(d, 512, 512);
        uint16_t idx;
        unsigned head, irqs;
        VirtQueue *vq;
        Req r;

        if (c == BACK) {
            /* One request served first, so that the index has somewhere to go back to. */
            assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_IN, 0, buf, 512), VIRTIO_BLK_S_OK);
            memset(virtio_driver_mem(d, buf, 512), 0, 512);
        }
        /* Header, data, status: three descriptors (no INDIRECT_DESC). */
        r = blk_add(d, q, VIRTIO_BLK_T_IN, 0, buf, 512);
        idx = vireo_le_load(avail + 2, 2);
        head = vireo_le_load(avail + 4 + 2 * ((idx - 1) & (size - 1)), 2);
        switch (c) {
        case LOOP:      /* the status descriptor points back at the data one (both writable) */
            vireo_le_store(chain_desc(d, q, head, 2) + 12, 2,
                           VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE);
            vireo_le_store(chain_desc(d, q, head, 2) + 14, 2,
                           vireo_le_load(chain_desc(d, q, head, 0) + 14, 2));
            break;
        case OUTSIDE:   /* the data buffer past the end of guest RAM */
            vireo_le_store(chain_desc(d, q, head, 1), 8, 0x7fff0000000ULL);
            break;
        case ORDER:     /* the header (readable) after the writable data */
            vireo_le_store(chain_desc(d, q, head, 1) + 12, 2, VIRTQ_DESC_F_NEXT);
            vireo_le_store(chain_desc(d, q, head, 0) + 12, 2,
                           VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE);
            break;
        case NEXT:      /* the data descriptor chains to one beyond the table */
            vireo_le_store(chain_desc(d, q, head, 1) + 14, 2, size);
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
        assert_int_equal(*(uint8_t *)virtio_driver_mem(d, r.status, 1), 0xee);
        assert_int_equal(harness_take_guest_warnings(), 1);
        /* A broken queue stays quiet: no second interrupt, no more warnings. */
        virtio_driver_notify(q);
        virtio_driver_notify_register(q);
        virtio_driver_run(d);
        assert_int_equal(virtio_driver_config_interrupts(d), 1);
        assert_null(virtio_driver_get_used(q, NULL));
        assert_int_equal(*(uint8_t *)virtio_driver_mem(d, r.status, 1), 0xee);
        assert_int_equal(harness_take_guest_warnings(), 0);
        /* The driver resets and starts over. */
        blk_restart(d, 0, 1, 7);
        assert_int_equal(harness_take_guest_warnings(), 0);
    }
}

/*
 * Notifications for a queue the driver never enabled (queue 1 of 2),
 * beyond the last queue, or between two doorbells: ignored (with a warning
 * for those that name no queue), and the device works on.
 */
static void test_stray_notify(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("blk", 0);
    g_autofree char *path = make_raw("stray.img", 11);
    g_autofree char *opts = g_strdup_printf("path=%s,queues=2", path);
    g_autoptr(VirtioDriver) d = virtio_driver_new(e, BLK, opts, NULL);
    uint64_t notify = virtio_driver_layout(d)->notify.addr;
    uint64_t buf = virtio_driver_alloc(d, 512, 512);
    VirtioDriverQueue *q1;
    uint8_t want[512];
    Req r;

    /* DRIVER_OK with only queue 0 enabled; a read in queue 1's rings, unknown to the device. */
    assert_true(virtio_driver_init(d, VIRTIO_DRIVER_ALL_FEATURES));
    assert_true(virtio_driver_features(d) & F(VIRTIO_BLK_F_MQ));
    virtio_driver_setup_queue(d, 0, 0);
    virtio_driver_ok(d);
    q1 = virtio_driver_alloc_queue(d, 1, VIRTIO_BLK_QUEUE_SIZE);
    assert_int_equal(virtio_driver_set_queue_vector(q1, 2), 2);
    r = blk_add(d, q1, VIRTIO_BLK_T_IN, 0, buf, 512);
    virtio_driver_notify(q1);                   /* the doorbell */
    virtio_driver_notify_register(q1);          /* the register, as a KVM exit */
    virtio_driver_run(d);
    g_usleep(10000);
    virtio_driver_run(d);
    assert_int_equal(virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    assert_null(virtio_driver_get_used(q1, NULL));
    assert_int_equal(*(uint8_t *)virtio_driver_mem(d, r.status, 1), 0xee);
    assert_int_equal(virtio_driver_queue_interrupts(q1), 0);
    assert_int_equal(harness_take_guest_warnings(), 0);

    /* Queues that do not exist, and an address between two doorbells. */
    virtio_driver_mmio_write(d, notify + VIRTIO_PCI_NOTIFY_MULTIPLIER * 2, 2, 2);
    virtio_driver_mmio_write(d, notify + VIRTIO_PCI_NOTIFY_MULTIPLIER * 1000, 2, 1000);
    virtio_driver_mmio_write(d, notify + 2, 2, 0);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 2);
    assert_int_equal(virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    virtio_driver_run(d);
    assert_int_equal(harness_take_guest_warnings(), 4);
    assert_null(virtio_driver_get_used(q1, NULL));
    assert_int_equal(*(uint8_t *)virtio_driver_mem(d, r.status, 1), 0xee);
    assert_int_equal(virtio_driver_config_interrupts(d), 0);
    assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);

    /* Queue 0 works on, without a reset. */
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_IN, 0, buf, 512), VIRTIO_BLK_S_OK);
    fill(want, 512, 0, 11);
    assert_memory_equal(virtio_driver_mem(d, buf, 512), want, 512);
    assert_null(virtio_driver_get_used(q1, NULL));
    /* After a reset and a proper set-up, both queues serve requests. */
    blk_restart(d, VIRTIO_DRIVER_ALL_FEATURES, 2, 11);
    assert_int_equal(harness_take_guest_warnings(), 0);
}

/*
 * Zero-length descriptors carry nothing, wherever they point (even outside
 * RAM): the virtqueue skips them. A read or write whose only data
 * descriptor is empty is a zero-length request: OK, nothing moved, yet
 * still range-checked. An empty descriptor after the status byte does not
 * move it; an empty status descriptor leaves the request without one.
 */
static void test_zero_length(void **state)
{
    static const uint64_t hole = 0x7fff0000000ULL;
    g_autoptr(HarnessEnv) e = harness_env_new("blk", 0);
    g_autofree char *path = make_raw("zero.img", 12);
    g_autofree char *opts = g_strdup_printf("path=%s,serial=disk-0123", path);
    g_autoptr(VirtioDriver) d = blk_ready(e, opts, VIRTIO_DRIVER_ALL_FEATURES, 1);
    VirtioDriverQueue *q = virtio_driver_queue(d, 0);
    uint64_t buf = virtio_driver_alloc(d, 512, 512);
    uint64_t hdr = virtio_driver_alloc(d, 16, 16), st = virtio_driver_alloc(d, 16, 16);
    uint8_t *h = virtio_driver_mem(d, hdr, 16);
    uint8_t *status = virtio_driver_mem(d, st, 1);
    uint8_t want[512], got[512];
    uint32_t len;

    for (unsigned indirect = 0; indirect < 2; indirect++) {
        virtio_driver_queue_set_indirect(q, indirect);
        /* A read into an empty descriptor outside RAM, and one beyond the disk. */
        vireo_le_store(h, 4, VIRTIO_BLK_T_IN);
        vireo_le_store(h + 8, 8, 0);
        *status = 0xee;
        assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ hdr, 16 }, 1,
                                      (VirtioDriverBuf[]){ { hole, 0 }, { st, 1 } }, 2,
                                      GSIZE_TO_POINTER(st)) >= 0);
        virtio_driver_kick(q);
        assert_int_equal(blk_wait_used(d, q, &len), st);
        assert_int_equal(len, 1);
        assert_int_equal(*status, VIRTIO_BLK_S_OK);
        vireo_le_store(h + 8, 8, SECTORS + 1);
        assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ hdr, 16 }, 1,
                                      (VirtioDriverBuf[]){ { hole, 0 }, { st, 1 } }, 2,
                                      GSIZE_TO_POINTER(st)) >= 0);
        virtio_driver_kick(q);
        assert_int_equal(blk_wait_used(d, q, &len), st);
        assert_int_equal(*status, VIRTIO_BLK_S_IOERR);
        assert_int_equal(harness_take_guest_warnings(), 1);

        /* A write of an empty descriptor: nothing written. */
        vireo_le_store(h, 4, VIRTIO_BLK_T_OUT);
        vireo_le_store(h + 8, 8, 0);
        *status = 0xee;
        assert_true(virtio_driver_add(q, (VirtioDriverBuf[]){ { hdr, 16 }, { hole, 0 } }, 2,
                                      &(VirtioDriverBuf){ st, 1 }, 1,
                                      GSIZE_TO_POINTER(st)) >= 0);
        virtio_driver_kick(q);
        assert_int_equal(blk_wait_used(d, q, &len), st);
        assert_int_equal(len, 1);
        assert_int_equal(*status, VIRTIO_BLK_S_OK);

        /* GET_ID into an empty descriptor: OK, nothing written. */
        vireo_le_store(h, 4, VIRTIO_BLK_T_GET_ID);
        *status = 0xee;
        memset(virtio_driver_mem(d, buf, 32), 0xaa, 32);
        assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ hdr, 16 }, 1,
                                      (VirtioDriverBuf[]){ { buf, 0 }, { st, 1 } }, 2,
                                      GSIZE_TO_POINTER(st)) >= 0);
        virtio_driver_kick(q);
        assert_int_equal(blk_wait_used(d, q, &len), st);
        assert_int_equal(*status, VIRTIO_BLK_S_OK);
        assert_int_equal(*(uint8_t *)virtio_driver_mem(d, buf, 1), 0xaa);

        /* An empty descriptor after the status byte: the status stays where it was. */
        vireo_le_store(h, 4, VIRTIO_BLK_T_IN);
        vireo_le_store(h + 8, 8, 1);
        *status = 0xee;
        memset(virtio_driver_mem(d, buf, 512), 0, 512);
        assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ hdr, 16 }, 1,
                                      (VirtioDriverBuf[]){ { buf, 512 }, { st, 1 },
                                                           { hole, 0 } }, 3,
                                      GSIZE_TO_POINTER(st)) >= 0);
        virtio_driver_kick(q);
        assert_int_equal(blk_wait_used(d, q, &len), st);
        assert_int_equal(len, 513);
        assert_int_equal(*status, VIRTIO_BLK_S_OK);
        fill(want, 512, 512, 12);
        assert_memory_equal(virtio_driver_mem(d, buf, 512), want, 512);

        /* Only an empty status descriptor: no status byte, returned with nothing done. */
        vireo_le_store(h, 4, VIRTIO_BLK_T_OUT);
        vireo_le_store(h + 8, 8, 0);
        memset(virtio_driver_mem(d, buf, 512), 0x5a, 512);
        *status = 0xee;
        assert_true(virtio_driver_add(q, (VirtioDriverBuf[]){ { hdr, 16 }, { buf, 512 } }, 2,
                                      &(VirtioDriverBuf){ st, 0 }, 1,
                                      GSIZE_TO_POINTER(hdr)) >= 0);
        virtio_driver_kick(q);
        assert_int_equal(blk_wait_used(d, q, &len), hdr);
        assert_int_equal(len, 0);
        assert_int_equal(*status, 0xee);
        assert_int_equal(harness_take_guest_warnings(), 1);
    }
    /* The image is as it was; no request broke the queue. */
    file_read(path, 0, got, 512);
    fill(want, 512, 0, 12);
    assert_memory_equal(got, want, 512);
    assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(virtio_driver_config_interrupts(d), 0);
    /* And after a reset it serves requests as before. */
    blk_restart(d, VIRTIO_DRIVER_ALL_FEATURES, 1, 12);
    assert_int_equal(harness_take_guest_warnings(), 0);
}

/* A host I/O error is the guest's IOERR, not the device's end. */
static void test_host_errors(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("blk", 0);
    g_autofree char *path = make_raw("fault.img", 8);
    g_autofree char *opts = g_strdup_printf("path=%s", path);
    g_autoptr(VirtioDriver) d = NULL;
    uint64_t buf;

    /* Every write from now fails (storage's fault injection, read at engine creation). */
    g_setenv("VIREO_BLOCK_FAULT_AFTER", "0", TRUE);
    d = blk_ready(e, opts, VIRTIO_DRIVER_ALL_FEATURES, 1);
    g_setenv("VIREO_BLOCK_FAULT_AFTER", "-1", TRUE);
    buf = virtio_driver_alloc(d, 4096, 4096);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_OUT, 0, buf, 4096), VIRTIO_BLK_S_IOERR);
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_IN, 0, buf, 4096), VIRTIO_BLK_S_OK);
    assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    /* A new engine takes the -1: no more faults. */
    {
        g_autoptr(HarnessEnv) e2 = harness_env_new("blk", 0);
        g_autofree char *p2 = make_raw("fault2.img", 8);
        g_autofree char *o2 = g_strdup_printf("path=%s", p2);

        device_free(harness_device_new(e2, BLK, o2));
    }
    g_unsetenv("VIREO_BLOCK_FAULT_AFTER");
    assert_int_equal(blk_do(d, 0, VIRTIO_BLK_T_OUT, 0, buf, 4096), VIRTIO_BLK_S_OK);
}

/* Saved with writes in flight: they are finished first, and the destination carries on. */
static void test_state(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("blk", 0);
    g_autoptr(HarnessEnv) e2 = harness_env_new("blk", 0);
    g_autoptr(HarnessEnv) e3 = harness_env_new("blk", 0);
    g_autofree char *path = make_raw("state.img", 9);
    g_autofree char *path2 = disk_path("state-copy.img");
    g_autofree char *small = disk_path("small.img");
    g_autofree char *opts = g_strdup_printf("path=%s,queues=2", path);
    g_autofree char *opts2 = g_strdup_printf("path=%s,queues=2", path2);
    g_autofree char *opts_small = g_strdup_printf("path=%s,queues=2", small);
    g_autoptr(VirtioDriver) d = blk_ready(e, opts, VIRTIO_DRIVER_ALL_FEATURES, 2);
    g_autoptr(VirtioDriver) n = NULL;
    g_autoptr(GBytes) drained = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *contents = NULL;
    VirtioDriverQueue *q = virtio_driver_queue(d, 1);
    uint64_t buf = virtio_driver_alloc(d, 32 * 4096, 4096);
    uint8_t want[4096];
    gsize size;
    static const HarnessPoke pokes[] = {
        { "blk-read-only", 0, 1 },
        { "blk-capacity", 0, 0x01 },
        { "q1-size", 1, 0x02 },          /* 512: larger than the queue's 256 */
    };

    for (unsigned i = 0; i < 32; i++) {
        fill(virtio_driver_mem(d, buf + 4096ULL * i, 4096), 4096, 0, 0x20 + i);
        blk_add(d, q, VIRTIO_BLK_T_OUT, 8ULL * i, buf + 4096ULL * i, 4096);
    }
    /* Submitted (the doorbell runs the queue), not completed: the loop has not run. */
    virtio_driver_notify(q);
    drained = harness_save(virtio_driver_device(d));
    assert_int_equal(virtio_driver_queue_inflight(q), 32);
    harness_check_corrupt_state(virtio_driver_device(d), pokes, G_N_ELEMENTS(pokes), FALSE);

    /* The destination has its own copy of the image, as after a storage migration. */
    assert_true(g_file_get_contents(path, &contents, &size, &err));
    assert_true(g_file_set_contents(path2, contents, size, &err));
    n = virtio_driver_migrate(d, e2, opts2);
    q = virtio_driver_queue(n, 1);
    for (unsigned i = 0; i < 32; i++) {
        uint32_t len;

        blk_wait_used(n, q, &len);
    }
    assert_int_equal(virtio_driver_queue_inflight(q), 0);
    for (unsigned i = 0; i < 32; i++) {
        memset(virtio_driver_mem(n, buf, 4096), 0, 4096);
        assert_int_equal(blk_do(n, 0, VIRTIO_BLK_T_IN, 8ULL * i, buf, 4096), VIRTIO_BLK_S_OK);
        fill(want, 4096, 0, 0x20 + i);
        assert_memory_equal(virtio_driver_mem(n, buf, 4096), want, 4096);
    }

    /* A disk of another size cannot take the state. */
    assert_true(g_file_set_contents(small, contents, size / 2, &err));
    {
        Device *other = harness_device_new(e3, BLK, opts_small);
        g_autoptr(GBytes) st = harness_save(virtio_driver_device(n));

        harness_load_fails(other, st);
        device_free(other);
    }
}

static void test_options(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("blk", 0);
    g_autofree char *path = make_raw("opts.img", 10);
    g_autofree char *missing = disk_path("missing.img");
    const char *bad[] = {
        "", "format=raw", "path=", "path=%s,format=vmdk", "path=%s,readonly=yes",
        "path=%s,serial=123456789012345678901", "path=%s,queues=0", "path=%s,queues=65",
        "path=%s,queues=x", "path=%s,queues=-1", "path=%s,speed=1",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GString) o = g_string_new(bad[i]);

        g_string_replace(o, "%s", path, 0);
        g_autofree char *msg = harness_device_new_fail(e, BLK, o->str,
                                                       VIREO_ERROR_INVALID_ARGUMENT);

        assert_non_null(strstr(msg, "virtio-blk"));
    }
    {
        g_autofree char *o = g_strdup_printf("path=%s", missing);
        g_autoptr(GError) err = NULL;

        assert_null(device_create(BLK, &e->env, o, &err));
        assert_true(g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT));
        assert_non_null(strstr(err->message, "virtio-blk"));
    }
    {
        g_autofree char *o = g_strdup_printf("path=%s,format=raw,readonly=off,"
                                             "serial=12345678901234567890,queues=64", path);

        device_free(harness_device_new(e, BLK, o));
    }
}

static int setup(void **state)
{
    tmp_dir = g_dir_make_tmp("vireo-blk-XXXXXX", NULL);
    return tmp_dir ? 0 : -1;
}

static int teardown(void **state)
{
    g_autoptr(GDir) dir = g_dir_open(tmp_dir, 0, NULL);
    const char *name;

    while (dir && (name = g_dir_read_name(dir))) {
        g_autofree char *p = disk_path(name);

        unlink(p);
    }
    rmdir(tmp_dir);
    g_free(tmp_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_qcow2),
        cmocka_unit_test(test_read_only),
        cmocka_unit_test(test_multiqueue),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_broken_ring),
        cmocka_unit_test(test_stray_notify),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_host_errors),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_options),
    };

    harness_init();
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    return cmocka_run_group_tests(tests, setup, teardown);
}
