/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target for devices/virtio/net.c: the input plays a hostile
 * driver and a hostile host network. Transmit chains of any shape with any
 * virtio-net header, control commands of any length and content, receive
 * buffers of any size (zero-length and header-sized ones included), frames
 * and headers from the backend of any length, notifications for any
 * queue, guest memory scribbled over, resets, link changes and save/load
 * round trips. The backend is one end of an AF_UNIX SOCK_DGRAM socketpair
 * (fd=N, as the device tests use), the host's end is this target's. It
 * checks, besides what ASan and UBSan catch:
 *
 * - every frame the device hands the backend carries a header it may
 *   pass on: flags NEEDS_CSUM at most, and then only with VIRTIO_NET_F_CSUM
 *   and a checksum field inside the frame behind the MAC header; a GSO
 *   type the driver negotiated, with a non-zero gso_size and NEEDS_CSUM;
 *   hdr_len within the frame; num_buffers 0; a frame of 14 to 65550 bytes
 *   (with vnet-hdr=off: a bare frame of that size);
 * - the device's state saves, loads back into it and saves the same again;
 * - it returns only buffers the driver made available (the driver of
 *   fuzz-virtio.c checks every used entry until the guest scribbles).
 *
 * The device runs on the fake machine of fuzz-virtio.h; the socketpair is
 * its fuzz_env_socketpair().
 *
 * Input: u8 config, then operations (enum Op), one byte each plus
 * arguments; tests/fuzz/gen-virtio-net-seeds.py writes seeds.
 *   config bit 0 MRG_RXBUF, 1 EVENT_IDX, 2 INDIRECT_DESC, 3 CSUM and
 *   HOST_TSO4/TSO6/ECN/UFO, 4 GUEST_CSUM and GUEST_TSO4/TSO6/ECN/UFO,
 *   5 CTRL_VQ with every control feature, 6 vnet-hdr=off, 7 queues=2 (MQ)
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz-virtio.h"
#include "vireo/util.h"
#include "vireo/virtio-net.h"

#define RAM_SIZE 0x40000
#define MAX_QUEUES 5
#define MAX_OPS 3000
#define F(bit) VIRTIO_BIT(VIRTIO_NET_F_##bit)

typedef enum {
    OP_TX,              /* u8 q, u8 parts, u16 len, bytes: a transmit chain */
    OP_CTRL,            /* u8 flags, u8 len, bytes: a control command */
    OP_RX_BUFS,         /* u8 q, u8 n, u16 size: receive buffers */
    OP_HOST,            /* u16 len, bytes: a datagram from the host */
    OP_POKE,            /* u16 gpa, u8 len, bytes */
    OP_KICK,            /* u8 queue */
    OP_RUN,
    OP_DRAIN,
    OP_RESET,
    OP_SAVE_LOAD,
    OP_LINK,            /* u8 up */
    OP_COUNT,
} Op;

typedef struct Target {
    FuzzEnv *f;
    int host;                           /* the host's end of the socketpair */
    uint64_t features;
    gboolean vnet_hdr;
} Target;

/* Reset, features, every queue of the configuration, DRIVER_OK. */
static void start(Target *t)
{
    fuzz_driver_start(t->f, t->features, fuzz_env_vdev(t->f)->nr_queues);
}

/* What the device sent to the host: check every frame's header. */
static void drain(Target *t)
{
    static uint8_t buf[VIRTIO_NET_MAX_FRAME + 64];
    uint64_t features = fuzz_env_vdev(t->f)->features;
    ssize_t r;

    while ((r = recv(t->host, buf, sizeof(buf), MSG_DONTWAIT)) >= 0) {
        size_t hdr = t->vnet_hdr ? VIRTIO_NET_HDR_SIZE : 0, frame;
        uint8_t flags, gso;
        uint32_t start, off, hdr_len, gso_size;
        uint64_t need;

        if ((size_t)r < hdr + 14 || (size_t)r > hdr + VIRTIO_NET_MAX_FRAME)
            abort();
        if (!hdr)
            continue;
        frame = r - hdr;
        flags = buf[VIRTIO_NET_HDR_FLAGS];
        gso = buf[VIRTIO_NET_HDR_GSO_TYPE];
        hdr_len = vireo_le_load(buf + VIRTIO_NET_HDR_HDR_LEN, 2);
        gso_size = vireo_le_load(buf + VIRTIO_NET_HDR_GSO_SIZE, 2);
        start = vireo_le_load(buf + VIRTIO_NET_HDR_CSUM_START, 2);
        off = vireo_le_load(buf + VIRTIO_NET_HDR_CSUM_OFFSET, 2);
        if ((flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) || hdr_len > frame ||
            vireo_le_load(buf + VIRTIO_NET_HDR_NUM_BUFFERS, 2))
            abort();
        if (flags && (!(features & F(CSUM)) || start < 14 || start + off + 2 > frame))
            abort();
        switch (gso & ~VIRTIO_NET_HDR_GSO_ECN) {
        case VIRTIO_NET_HDR_GSO_NONE: need = 0; break;
        case VIRTIO_NET_HDR_GSO_TCPV4: need = F(HOST_TSO4); break;
        case VIRTIO_NET_HDR_GSO_TCPV6: need = F(HOST_TSO6); break;
        case VIRTIO_NET_HDR_GSO_UDP: need = F(HOST_UFO); break;
        default: abort();
        }
        if (!need && (gso || gso_size))
            abort();
        if (need && (!(features & need) || !gso_size || !flags ||
                     ((gso & VIRTIO_NET_HDR_GSO_ECN) && !(features & F(HOST_ECN)))))
            abort();
    }
    if (errno != EAGAIN)
        abort();
}

static void run_op(Target *t, FuzzInput *in, Op op)
{
    FuzzEnv *f = t->f;

    switch (op) {
    case OP_TX: {
        unsigned q = (fuzz_take(in, 1) % 2) * 2 + 1, parts = 1 + fuzz_take(in, 1) % 6;
        uint32_t len = fuzz_take(in, 2) % 4096, lens[6], at = 0;
        uint64_t base = fuzz_driver_alloc(f, MAX(len, 1u)), addrs[6];
        const gboolean write[6] = { FALSE };

        fuzz_take_bytes(in, fuzz_env_ram(f, base, MAX(len, 1u)), len);
        for (unsigned i = 0; i < parts; i++) {
            uint32_t k = i + 1 == parts ? len - at : (i == 0 ? MIN(len, 12u) : (len - at) / 2);

            addrs[i] = base + at;
            lens[i] = k;
            at += k;
        }
        fuzz_driver_add(f, q, addrs, lens, write, parts);
        fuzz_driver_kick(f, q);
        break;
    }
    case OP_CTRL: {
        uint8_t flags = fuzz_take(in, 1), len = fuzz_take(in, 1);
        unsigned q = fuzz_env_vdev(f)->features & F(MQ) ? 4 : 2;
        uint64_t base = fuzz_driver_alloc(f, len + 1u), addrs[3] = { base, base + 2, base + len };
        uint32_t lens[3] = { MIN(len, (uint8_t)2), len > 2 ? len - 2u : 0, flags & 1 ? 0 : 1 };
        const gboolean write[3] = { FALSE, FALSE, TRUE };

        /* Class and command, then the command's data, then the ack (none with flags bit 0). */
        fuzz_take_bytes(in, fuzz_env_ram(f, base, len + 1u), len);
        fuzz_driver_add(f, q, addrs, lens, write, 3);
        fuzz_driver_kick(f, q);
        break;
    }
    case OP_RX_BUFS: {
        unsigned q = (fuzz_take(in, 1) % 2) * 2, n = 1 + fuzz_take(in, 1) % 16;
        uint32_t size = fuzz_take(in, 2) % 4096;
        const gboolean write = TRUE;

        for (unsigned i = 0; i < n; i++) {
            uint64_t a = fuzz_driver_alloc(f, MAX(size, 1u));

            fuzz_driver_add(f, q, &a, &size, &write, 1);
        }
        fuzz_driver_kick(f, q);
        break;
    }
    case OP_HOST: {
        static uint8_t buf[70000];
        size_t len = fuzz_take(in, 2);
        /* Short inputs grow into big frames: the rest is a pattern. */
        size_t got = fuzz_take_bytes(in, buf, MIN(len, (size_t)256));

        for (size_t i = got; i < len; i++)
            buf[i] = (uint8_t)i;
        if (send(t->host, buf, len, MSG_DONTWAIT) < 0 && errno != EAGAIN)
            abort();
        break;
    }
    case OP_POKE: {
        uint64_t gpa = fuzz_take(in, 2);
        uint8_t buf[256];
        size_t len = fuzz_take_bytes(in, buf, fuzz_take(in, 1));

        fuzz_driver_poke(f, gpa, buf, len);
        break;
    }
    case OP_KICK:
        fuzz_driver_kick(f, fuzz_take(in, 1) % (MAX_QUEUES + 1));
        break;
    case OP_RUN:
        fuzz_env_run(f);
        break;
    case OP_DRAIN:
        fuzz_env_run(f);
        drain(t);
        break;
    case OP_RESET:
        start(t);
        break;
    case OP_SAVE_LOAD:
        fuzz_env_save_load_same(f);
        fuzz_env_run(f);
        break;
    case OP_LINK:
        virtio_net_set_link(fuzz_env_device(f), fuzz_take(in, 1) & 1);
        break;
    case OP_COUNT:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzInput in = { data, size };
    uint8_t cfg = fuzz_take(&in, 1);
    g_autofree char *opts = NULL;
    Target t = { .f = fuzz_env_new(RAM_SIZE) };
    int fd = fuzz_env_socketpair(t.f, SOCK_DGRAM, &t.host);

    fuzz_quiet_logs();
    t.vnet_hdr = !(cfg & 0x40);
    if (cfg & 0x80) {
        /* A second pair: its host end is closed, so what goes there fails. */
        opts = g_strdup_printf("fds=%d:%d,mac=52:54:00:12:34:56%s", fd,
                               fuzz_env_socketpair(t.f, SOCK_DGRAM, NULL),
                               t.vnet_hdr ? "" : ",vnet-hdr=off");
    } else {
        opts = g_strdup_printf("fd=%d,mac=52:54:00:12:34:56%s", fd,
                               t.vnet_hdr ? "" : ",vnet-hdr=off");
    }
    fuzz_env_create(t.f, "virtio-net", opts);
    t.features = VIRTIO_BIT(VIRTIO_F_VERSION_1) | F(MAC) | F(STATUS);
    if (cfg & 1)
        t.features |= F(MRG_RXBUF);
    if (cfg & 2)
        t.features |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
    if (cfg & 4)
        t.features |= VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC);
    if (cfg & 8)
        t.features |= F(CSUM) | F(HOST_TSO4) | F(HOST_TSO6) | F(HOST_ECN) | F(HOST_UFO);
    if (cfg & 0x10)
        t.features |= F(GUEST_CSUM) | F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_ECN) |
                      F(GUEST_UFO);
    if (cfg & 0x20)
        t.features |= F(CTRL_VQ) | F(CTRL_RX) | F(CTRL_RX_EXTRA) | F(CTRL_VLAN) |
                      F(CTRL_MAC_ADDR) | F(CTRL_GUEST_OFFLOADS) | F(MQ);
    start(&t);

    for (unsigned ops = 0; in.left && ops < MAX_OPS; ops++) {
        /* Used buffers come back unchecked (the checks are on the host's side). */
        for (unsigned q = 0; q < MAX_QUEUES; q++)
            fuzz_driver_reap(t.f, q);
        run_op(&t, &in, fuzz_take(&in, 1) % OP_COUNT);
    }
    fuzz_env_run(t.f);
    drain(&t);
    fuzz_env_save_load_same(t.f);
    fuzz_env_free(t.f);
    return 0;
}
