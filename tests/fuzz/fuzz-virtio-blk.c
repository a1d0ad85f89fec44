/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target for devices/virtio/blk.c on real image files (a raw
 * and a qcow2 image of 64 KiB in a temporary directory, made once per
 * process), through the virtio core on the fake machine of fuzz-virtio.c:
 * request headers of any type, sector and size, data and status buffers
 * split, missing, zero-length or of the wrong direction, several queues,
 * resets and save/load with requests in flight. Checks what the device
 * promises whatever the guest sends:
 *
 * - no crash, no access outside guest RAM (ASan), no hang (the loop runs
 *   dry, every request completes by the end);
 * - a status it writes is OK, IOERR or UNSUPP;
 * - a read-only raw image is never written to;
 * - it saves and loads any state it reaches.
 *
 * Input (tests/fuzz/gen-virtio-blk-seeds.py writes the seeds):
 *   u8 flags   bit 0 EVENT_IDX, bit 1 qcow2, bit 2 readonly=on,
 *              bit 3 queues=2 (and MQ taken), bit 4 FLUSH not taken,
 *              bit 5 DISCARD and WRITE_ZEROES not taken
 *   then operations, one byte each plus their arguments (enum Op)
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz-virtio.h"
#include "vireo/block.h"
#include "vireo/qcow2.h"
#include "vireo/util.h"
#include "vireo/virtio-blk.h"

#define RAM_SIZE (1 << 20)
#define DISK_SIZE (64 * 1024)
#define MAX_OPS 256
#define STATUS_UNTOUCHED 0xee

typedef enum {
    OP_REQUEST,         /* u8 queue, u8 type, u8 sector kind, u64 sector, u16 len, u8 layout */
    OP_DWZ,             /* u8 type, u64 sector, u32 num, u32 flags, u8 segments */
    OP_RUN,
    OP_WAIT,
    OP_USED,
    OP_SAVE_LOAD,
    OP_RESTART,         /* u8 features */
    OP_POKE,            /* u16 gpa, u8 len, bytes */
    OP_CONFIG_READ,     /* u8 offset, u8 width */
    OP_COUNT,
} Op;

static char *raw_path, *qcow2_path;
static uint8_t raw_initial[DISK_SIZE];    /* what the raw image starts with */

static char *image_dir;

static void remove_images(void)
{
    unlink(raw_path);
    unlink(qcow2_path);
    rmdir(image_dir);
}

static void make_images(void)
{
    Qcow2CreateOptions o = { .size = DISK_SIZE, .cluster_size = 4096 };

    if (raw_path)
        return;
    image_dir = g_dir_make_tmp("fuzz-blk-XXXXXX", NULL);
    if (!image_dir)
        abort();
    raw_path = g_build_filename(image_dir, "disk.raw", NULL);
    qcow2_path = g_build_filename(image_dir, "disk.qcow2", NULL);
    atexit(remove_images);
    for (size_t i = 0; i < DISK_SIZE; i++)
        raw_initial[i] = (uint8_t)(i * 7 + i / 512);
    if (!g_file_set_contents(raw_path, (char *)raw_initial, DISK_SIZE, NULL) ||
        !qcow2_create(qcow2_path, &o, NULL))
        abort();
}

static uint64_t features_of(uint8_t flags)
{
    uint64_t f = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
                 VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_RO);

    /* The little driver has no indirect tables. */
    if (flags & 1)
        f |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
    if (flags & 8)
        f |= VIRTIO_BIT(VIRTIO_BLK_F_MQ);
    if (!(flags & 16))
        f |= VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
    if (!(flags & 32))
        f |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
    return f;
}

/* Statuses of requests made available, by the guest address of their status byte. */
typedef struct Pending {
    uint64_t status[64];
    unsigned n;
} Pending;

/*
 * Adds one request: header (16 bytes or cut short), data (@len bytes,
 * device-writable for IN and GET_ID), status; @layout picks splits,
 * a zero-length descriptor, a missing or device-readable status.
 */
static void add_request(FuzzEnv *f, Pending *p, unsigned q, const uint8_t *hdr, size_t hdr_len,
                        uint32_t len, gboolean dev_writes, uint8_t layout)
{
    uint64_t addr[6];
    uint32_t lens[6];
    gboolean write[6];
    unsigned n = 0;
    uint64_t h = fuzz_driver_alloc(f, 16), d = fuzz_driver_alloc(f, MAX(len, 1u));
    uint64_t st = fuzz_driver_alloc(f, 1);

    memcpy(fuzz_env_ram(f, h, 16), hdr, 16);
    *fuzz_env_ram(f, st, 1) = STATUS_UNTOUCHED;
    if (layout & 1) {           /* header in two pieces */
        addr[n] = h, lens[n] = MIN(hdr_len, 5), write[n++] = FALSE;
        addr[n] = h + lens[n - 1], lens[n] = hdr_len - lens[n - 1], write[n++] = FALSE;
    } else {
        addr[n] = h, lens[n] = hdr_len, write[n++] = FALSE;
    }
    if (layout & 2)             /* a zero-length descriptor, either direction */
        addr[n] = d, lens[n] = 0, write[n++] = (layout & 4) != 0;
    if (len) {
        if (layout & 8) {       /* data in two pieces */
            addr[n] = d, lens[n] = len / 2, write[n++] = dev_writes;
            addr[n] = d + len / 2, lens[n] = len - len / 2, write[n++] = dev_writes;
        } else {
            addr[n] = d, lens[n] = len, write[n++] = dev_writes;
        }
    }
    switch ((layout >> 4) & 3) {
    case 0:
    case 1:
        addr[n] = st, lens[n] = 1, write[n++] = TRUE;
        if (p->n < G_N_ELEMENTS(p->status))
            p->status[p->n++] = st;
        break;
    case 2:                     /* no status byte at all */
        break;
    default:                    /* a device-readable "status": nothing to answer in */
        if (!dev_writes || !len)
            addr[n] = st, lens[n] = 1, write[n++] = FALSE;
        break;
    }
    fuzz_driver_add(f, q, addr, lens, write, n);
    fuzz_driver_kick(f, q);
}

/* Every status the device wrote is one it may write. */
static void check_statuses(FuzzEnv *f, Pending *p)
{
    for (unsigned i = 0; i < p->n; i++) {
        uint8_t s = *fuzz_env_ram(f, p->status[i], 1);

        if (s != STATUS_UNTOUCHED && s > VIRTIO_BLK_S_UNSUPP && !fuzz_driver_tainted(f))
            abort();
    }
    p->n = 0;
}

static void drain_used(FuzzEnv *f, unsigned queues)
{
    uint32_t id, len;

    for (unsigned q = 0; q < queues; q++)
        while (fuzz_driver_used(f, q, &id, &len)) {
        }
}

/* Plays the loop until the engine has nothing left, with a bound instead of a hang. */
static void wait_io(FuzzEnv *f)
{
    for (unsigned i = 0; i < 20; i++) {
        fuzz_env_run(f);
        usleep(50);
    }
    fuzz_env_run(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzInput in = { data, size };
    uint8_t flags = fuzz_take(&in, 1);
    unsigned queues = (flags & 8) ? 2 : 1;
    g_autofree char *options = NULL;
    Pending pending = { .n = 0 };
    g_autofree char *before = NULL;
    gsize before_len = 0;
    FuzzEnv *f;

    make_images();
    fuzz_quiet_logs();
    options = g_strdup_printf("path=%s,format=%s,readonly=%s,queues=%u,serial=fuzz",
                              (flags & 2) ? qcow2_path : raw_path, (flags & 2) ? "qcow2" : "raw",
                              (flags & 4) ? "on" : "off", queues);
    if ((flags & 6) == 4 && !g_file_get_contents(raw_path, &before, &before_len, NULL))
        abort();
    f = fuzz_env_new(RAM_SIZE);
    fuzz_env_create(f, "virtio-blk", options);
    fuzz_driver_start(f, features_of(flags), queues);
    for (unsigned n = 0; in.left && n < MAX_OPS; n++) {
        switch (fuzz_take(&in, 1) % OP_COUNT) {
        case OP_REQUEST: {
            static const uint32_t types[] = {
                VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
                VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_T_GET_LIFETIME,
            };
            unsigned q = fuzz_take(&in, 1) % queues;
            uint8_t tsel = fuzz_take(&in, 1), kind = fuzz_take(&in, 1);
            uint64_t sector = fuzz_take(&in, 8);
            uint32_t len = fuzz_take(&in, 2) % 8192;
            uint8_t layout = fuzz_take(&in, 1);
            uint32_t type = tsel < 224 ? types[tsel % G_N_ELEMENTS(types)] : tsel;
            uint8_t hdr[16];

            /* Sectors near the start and the end of the disk, or anything. */
            if (kind % 4 == 0)
                sector %= DISK_SIZE / 512;
            else if (kind % 4 == 1)
                sector = DISK_SIZE / 512 - sector % 4;
            /* Mostly whole sectors. */
            if (kind & 4)
                len -= len % 512;
            vireo_le_store(hdr, 4, type);
            vireo_le_store(hdr + 4, 4, 0);
            vireo_le_store(hdr + 8, 8, sector);
            add_request(f, &pending, q, hdr, (layout & 0x40) ? kind % 16 : 16, len,
                        type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID, layout);
            break;
        }
        case OP_DWZ: {
            uint8_t hdr[16], seg[3 * VIRTIO_BLK_DWZ_SIZE];
            uint32_t type = (fuzz_take(&in, 1) & 1) ? VIRTIO_BLK_T_DISCARD :
                            VIRTIO_BLK_T_WRITE_ZEROES;
            uint64_t sector = fuzz_take(&in, 8) % (DISK_SIZE / 512 + 8);
            uint32_t num = fuzz_take(&in, 4), fl = fuzz_take(&in, 4);
            unsigned segs = fuzz_take(&in, 1) % 3;
            uint64_t d;

            num = num & 0x80000000u ? num : num % (DISK_SIZE / 512 + 4);
            vireo_le_store(hdr, 4, type);
            vireo_le_store(hdr + 4, 4, 0);
            vireo_le_store(hdr + 8, 8, 0);
            for (unsigned i = 0; i < 3; i++) {
                vireo_le_store(seg + 16 * i, 8, sector);
                vireo_le_store(seg + 16 * i + 8, 4, num);
                vireo_le_store(seg + 16 * i + 12, 4, fl % 4);
            }
            /* Header and segments as one device-readable buffer, then the status. */
            d = fuzz_driver_alloc(f, 16 + sizeof(seg));
            memcpy(fuzz_env_ram(f, d, 16), hdr, 16);
            memcpy(fuzz_env_ram(f, d + 16, sizeof(seg)), seg, sizeof(seg));
            {
                uint64_t st = fuzz_driver_alloc(f, 1);
                uint64_t addr[2] = { d, st };
                uint32_t lens[2] = { 16 + VIRTIO_BLK_DWZ_SIZE * segs, 1 };
                gboolean write[2] = { FALSE, TRUE };

                *fuzz_env_ram(f, st, 1) = STATUS_UNTOUCHED;
                if (pending.n < G_N_ELEMENTS(pending.status))
                    pending.status[pending.n++] = st;
                fuzz_driver_add(f, 0, addr, lens, write, 2);
                fuzz_driver_kick(f, 0);
            }
            break;
        }
        case OP_RUN:
            fuzz_env_run(f);
            break;
        case OP_WAIT:
            wait_io(f);
            break;
        case OP_USED:
            wait_io(f);
            drain_used(f, queues);
            check_statuses(f, &pending);
            break;
        case OP_SAVE_LOAD:
            fuzz_env_save_load(f);
            break;
        case OP_RESTART:
            pending.n = 0;
            fuzz_driver_start(f, features_of(fuzz_take(&in, 1)), queues);
            break;
        case OP_POKE: {
            uint64_t gpa = fuzz_take(&in, 2);
            uint8_t buf[16];
            size_t len = fuzz_take(&in, 1) % sizeof(buf);

            for (size_t i = 0; i < len; i++)
                buf[i] = fuzz_take(&in, 1);
            fuzz_driver_poke(f, gpa, buf, len);
            break;
        }
        case OP_CONFIG_READ: {
            static const size_t widths[] = { 1, 2, 4, 8 };
            uint32_t off = fuzz_take(&in, 1) % VIRTIO_BLK_CFG_SIZE;
            size_t w = widths[fuzz_take(&in, 1) % 4];
            uint8_t v[8];
            VirtioDevice *vdev = fuzz_env_vdev(f);

            virtio_device_lock(vdev);
            virtio_config_read(vdev, off, v, w);
            virtio_device_unlock(vdev);
            if (off == VIRTIO_BLK_CFG_CAPACITY && w == 8 && vireo_le_load(v, 8) != DISK_SIZE / 512)
                abort();
            break;
        }
        default:
            break;
        }
    }
    wait_io(f);
    drain_used(f, queues);
    check_statuses(f, &pending);
    fuzz_env_free(f);
    if (before) {
        g_autofree char *now = NULL;
        gsize len;

        /* A read-only disk is never written. */
        if (!g_file_get_contents(raw_path, &now, &len, NULL) || len != before_len ||
            memcmp(now, before, len) != 0)
            abort();
    }
    return 0;
}
