/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target for devices/virtio/balloon.c: the guest's PFN arrays
 * and statistics buffers, the "actual" configuration writes, the host's
 * targets, the stats timer, resets and save/load, through the virtio core
 * on the fake machine of fuzz-virtio.c (1 MiB of RAM: 256 pages, so PFNs
 * are inside and just outside it). Checks what the device promises
 * whatever the guest sends:
 *
 * - it never writes into a balloon request (used length 0 on all queues);
 * - the released memory, target, "actual" and num_pages stay within the
 *   RAM, and it releases (madvise) and touches nothing outside it (ASan);
 * - it saves and loads any state it reaches; the loop runs dry; it
 *   returns only buffers the driver made available.
 *
 * Input (tests/fuzz/gen-virtio-seeds.py writes the seeds):
 *   u8 flags   bit 0 EVENT_IDX, bit 1 deflate-on-oom=on, bit 2 stats-interval=1,
 *              bit 3 the driver takes STATS_VQ
 *   then operations, one byte each plus their arguments (enum Op)
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz-virtio.h"
#include "vireo/util.h"
#include "vireo/virtio-balloon.h"

#define RAM_SIZE (1 << 20)
#define MAX_OPS 512

typedef enum {
    OP_PFNS,            /* u8 queue, u8 n, n x u16 PFN, u8 split */
    OP_BYTES,           /* u8 queue, u16 len, bytes, u8 split */
    OP_STATS,           /* u8 n, n x (u16 tag, u64 value), u8 extra bytes */
    OP_CONFIG_WRITE,    /* u8 offset, u8 width, u32 value */
    OP_CONFIG_READ,     /* u8 offset, u8 width */
    OP_TARGET,          /* u32 bytes */
    OP_TIMER,           /* u8 seconds */
    OP_RUN,
    OP_USED,
    OP_SAVE_LOAD,
    OP_RESTART,         /* u8 features */
    OP_POKE,            /* u16 gpa, u8 len, bytes */
    OP_COUNT,
} Op;

static uint64_t features_of(uint8_t flags)
{
    uint64_t f = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_BALLOON_F_DEFLATE_ON_OOM);

    /* The little driver has no indirect tables. */
    if (flags & 1)
        f |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
    if (flags & 8)
        f |= VIRTIO_BIT(VIRTIO_BALLOON_F_STATS_VQ);
    return f;
}

/* @len bytes at @buf as one, two or three descriptors, a zero-length one among them. */
static void add_split(FuzzEnv *f, unsigned q, uint64_t buf, uint32_t len, uint8_t split)
{
    uint64_t addr[3];
    uint32_t lens[3];
    gboolean write[3] = { FALSE, FALSE, (split & 0x80) != 0 };
    uint32_t cut = len ? (uint32_t)((uint64_t)len * (split & 0x3f) / 64) : 0;

    switch (split >> 6) {
    case 0:
        fuzz_driver_add(f, q, &buf, &len, write, 1);
        break;
    case 1:
        addr[0] = buf, lens[0] = cut;
        addr[1] = buf + cut, lens[1] = len - cut;
        fuzz_driver_add(f, q, addr, lens, write, 2);
        break;
    default:
        addr[0] = buf, lens[0] = cut;
        addr[1] = buf, lens[1] = 0;
        addr[2] = buf + cut, lens[2] = len - cut;
        /* bit 7 made the last one device-writable: the device must not care */
        fuzz_driver_add(f, q, addr, lens, write, 3);
        break;
    }
    fuzz_driver_kick(f, q);
}

static void check_info(FuzzEnv *f)
{
    VirtioBalloonInfo info;

    virtio_balloon_get_info(fuzz_env_device(f), &info);
    if (info.released > RAM_SIZE || info.target > RAM_SIZE || info.actual > RAM_SIZE ||
        info.ram_size != RAM_SIZE)
        abort();
}

static void drain_used(FuzzEnv *f)
{
    uint32_t id, len;

    for (unsigned q = 0; q < 3; q++) {
        while (fuzz_driver_used(f, q, &id, &len)) {
            if (len != 0)
                abort();                /* the device wrote into a balloon buffer */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzInput in = { data, size };
    uint8_t flags = fuzz_take(&in, 1);
    g_autofree char *options = g_strdup_printf("deflate-on-oom=%s,stats-interval=%d",
                                               (flags & 2) ? "on" : "off", (flags & 4) ? 1 : 0);
    FuzzEnv *f = fuzz_env_new(RAM_SIZE);
    Device *dev;

    fuzz_quiet_logs();
    fuzz_env_create(f, VIRTIO_BALLOON_TYPE_NAME, options);
    dev = fuzz_env_device(f);
    fuzz_driver_start(f, features_of(flags), 3);
    for (unsigned n = 0; in.left && n < MAX_OPS; n++) {
        switch (fuzz_take(&in, 1) % OP_COUNT) {
        case OP_PFNS: {
            unsigned q = fuzz_take(&in, 1) % 3, count = fuzz_take(&in, 1);
            uint64_t buf = fuzz_driver_alloc(f, MAX(count * 4, 1u));
            uint8_t *p = fuzz_env_ram(f, buf, MAX(count * 4, 1u));

            /*
             * PFNs around the RAM's 256 pages: inside (but not the rings' first
             * 8, whose release would change the rings behind the driver's back),
             * at its end, far out.
             */
            for (unsigned i = 0; i < count; i++) {
                uint32_t v = fuzz_take(&in, 2);

                vireo_le_store(p + 4 * i, 4, v & 0x8000 ? v * 0x10001u : 8 + v % 312);
            }
            add_split(f, q, buf, count * 4, fuzz_take(&in, 1));
            break;
        }
        case OP_BYTES: {
            unsigned q = fuzz_take(&in, 1) % 3;
            uint32_t len = fuzz_take(&in, 2) % 2048;
            uint64_t buf = fuzz_driver_alloc(f, MAX(len, 1u));
            uint8_t *p = fuzz_env_ram(f, buf, MAX(len, 1u));

            for (uint32_t i = 0; i < len; i++)
                p[i] = fuzz_take(&in, 1);
            /* Any PFN, the rings' pages too: the driver stops checking used entries. */
            if (q != VIRTIO_BALLOON_Q_STATS)
                fuzz_driver_taint(f);
            add_split(f, q, buf, len, fuzz_take(&in, 1));
            break;
        }
        case OP_STATS: {
            unsigned count = fuzz_take(&in, 1) % 24;
            unsigned extra = fuzz_take(&in, 1) % 10;
            uint32_t len = count * VIRTIO_BALLOON_STAT_SIZE + extra;
            uint64_t buf = fuzz_driver_alloc(f, MAX(len, 1u));
            uint8_t *p = fuzz_env_ram(f, buf, MAX(len, 1u));

            memset(p, 0, len);
            for (unsigned i = 0; i < count; i++) {
                vireo_le_store(p + 10 * i, 2, fuzz_take(&in, 1) % 20);
                vireo_le_store(p + 10 * i + 2, 8, fuzz_take(&in, 8));
            }
            add_split(f, VIRTIO_BALLOON_Q_STATS, buf, len, 0);
            break;
        }
        case OP_CONFIG_WRITE: {
            static const size_t widths[] = { 1, 2, 4, 8 };
            uint32_t off = fuzz_take(&in, 1) % 12;
            size_t w = widths[fuzz_take(&in, 1) % 4];
            uint8_t v[8];
            VirtioDevice *vdev = fuzz_env_vdev(f);

            vireo_le_store(v, 8, fuzz_take(&in, 4) * 0x100000001ULL);
            virtio_device_lock(vdev);
            virtio_config_write(vdev, off, v, w);
            virtio_device_unlock(vdev);
            break;
        }
        case OP_CONFIG_READ: {
            static const size_t widths[] = { 1, 2, 4, 8 };
            uint32_t off = fuzz_take(&in, 1) % 12;
            size_t w = widths[fuzz_take(&in, 1) % 4];
            uint8_t v[8];
            VirtioDevice *vdev = fuzz_env_vdev(f);

            virtio_device_lock(vdev);
            virtio_config_read(vdev, off, v, w);
            virtio_device_unlock(vdev);
            /* num_pages never says more than the RAM has. */
            if (off == 0 && w >= 4 && vireo_le_load(v, 4) > RAM_SIZE / 4096)
                abort();
            break;
        }
        case OP_TARGET:
            virtio_balloon_set_target(dev, 1 + fuzz_take(&in, 4) % (2 * RAM_SIZE));
            break;
        case OP_TIMER:
            fuzz_env_advance(f, (int64_t)(fuzz_take(&in, 1) % 8) * 1000000000);
            break;
        case OP_RUN:
            fuzz_env_run(f);
            break;
        case OP_USED:
            drain_used(f);
            break;
        case OP_SAVE_LOAD:
            fuzz_env_save_load(f);
            break;
        case OP_RESTART:
            fuzz_driver_start(f, features_of(fuzz_take(&in, 1)), 3);
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
        default:
            break;
        }
        check_info(f);
    }
    fuzz_env_run(f);
    drain_used(f);
    check_info(f);
    fuzz_env_free(f);
    return 0;
}
