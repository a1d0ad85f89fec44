/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target for devices/virtio/console.c (and console-socket.c):
 * the input plays a hostile driver, a host on port 0's character backend
 * and a client of a named port's socket. Control messages of any length
 * and content, control receive buffers of any size, port data chains of
 * any shape on any queue, notifications for any queue, guest memory
 * scribbled over, resets, back-pressure, socket clients coming and going,
 * and save/load round trips (also of damaged state). The target checks,
 * besides what ASan and UBSan catch:
 *
 * - every control message the device writes for the driver is one a
 *   device may send: 8 bytes (PORT_NAME: plus the port's name), a port
 *   below max_nr_ports that the device has, PORT_ADD/CONSOLE_PORT/
 *   PORT_OPEN/PORT_NAME, CONSOLE_PORT for port 0 only, values 0 or 1
 *   (checked only while the guest has not scribbled over its rings);
 * - the device's own state saves, loads back into it, and saves the same
 *   again; a damaged state is refused (and the device saves as before) or
 *   loads, and the device goes on;
 * - it returns only buffers the driver made available (the driver of
 *   fuzz-virtio.c checks every used entry until the guest scribbles).
 *
 * The device runs on the fake machine of fuzz-virtio.h, port 0 on its
 * character backend. Control receive buffers live in slots of their own
 * at the top of RAM, so that nothing else the device or the target writes
 * lands on a message before it is checked.
 *
 * Input (tests/fuzz/gen-virtio-console-seeds.py writes the seeds): u8
 * config (bits 0-1: max-ports - 1; bit 2: accept MULTIPORT; bit 3:
 * EVENT_IDX; bit 4: INDIRECT_DESC; bit 5: named port 1 on a socket), then
 * operations (see enum Op), one byte each plus arguments.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz-virtio.h"
#include "vireo/util.h"
#include "vireo/virtio-console.h"

#define RAM_SIZE 0x40000
#define MAX_OPS 2000
#define MAX_NAME "org.qemu.guest_agent.0"
#define CTRL_SLOT 1024                  /* > the largest control receive buffer */
#define CTRL_BASE (RAM_SIZE - FUZZ_QUEUE_SIZE * CTRL_SLOT)

typedef enum {
    OP_CTRL_MSG,        /* u8 len, bytes: one chain in the control transmitq */
    OP_CTRL_BUF,        /* u8 n, u16 size: control receive buffers */
    OP_RX_BUF,          /* u8 port, u16 size: a receive buffer */
    OP_TX,              /* u8 port, u8 parts, u8 len: output chain */
    OP_HOST_INPUT,      /* u8 len, bytes: to port 0's backend */
    OP_BACKEND,         /* u8 limit: output room of port 0's backend, then drained */
    OP_KICK,            /* u8 queue: any number */
    OP_POKE,            /* u16 gpa, u8 len, bytes */
    OP_RUN,
    OP_RESET,
    OP_SETUP,           /* the driver starts over: features, queues, DRIVER_OK */
    OP_SAVE_LOAD,
    OP_LOAD_DAMAGED,    /* u8 n, n x (u16 offset, u8 xor) */
    OP_CLIENT,          /* u8 what (connect, send u8 len bytes, read, close) */
    OP_READ_CTRL,       /* the driver takes control messages and checks them */
    OP_COUNT,
} Op;

typedef struct Target {
    FuzzEnv *f;
    unsigned max_ports;
    uint64_t features;
    gboolean named;
    char *dir;
    char *sock_path;
    int client;
} Target;

/* Reset, features, every queue, DRIVER_OK: what a driver does first. */
static void setup(Target *t)
{
    gboolean multiport = t->features & VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT);

    fuzz_driver_start(t->f, t->features, multiport ? fuzz_env_vdev(t->f)->nr_queues : 2);
}

/* The control messages the device wrote since the last call, each checked. */
static void read_ctrl(Target *t)
{
    uint32_t id, len, size;
    uint64_t addr;

    while (fuzz_driver_used(t->f, VIRTIO_CONSOLE_Q_CTRL_RX, &id, &len)) {
        const uint8_t *m;
        uint32_t port;
        uint16_t event, value;

        if (fuzz_driver_tainted(t->f) || len == 0)
            continue;
        fuzz_driver_desc(t->f, VIRTIO_CONSOLE_Q_CTRL_RX, id, &addr, &size);
        if (len < VIRTIO_CONSOLE_CTRL_SIZE || len > size)
            abort();
        m = fuzz_env_ram(t->f, addr, len);
        port = vireo_le_load(m, 4);
        event = vireo_le_load(m + 4, 2);
        value = vireo_le_load(m + 6, 2);
        if (port >= t->max_ports || (port != 0 && !(port == 1 && t->named)))
            abort();
        switch (event) {
        case VIRTIO_CONSOLE_PORT_ADD:
        case VIRTIO_CONSOLE_PORT_OPEN:
        case VIRTIO_CONSOLE_CONSOLE_PORT:
            if (len != VIRTIO_CONSOLE_CTRL_SIZE || value > 1 ||
                (event == VIRTIO_CONSOLE_CONSOLE_PORT && (port != 0 || value != 1)))
                abort();
            break;
        case VIRTIO_CONSOLE_PORT_NAME:
            /* The name, or as much of it as the buffer held. */
            if (port != 1 || len - VIRTIO_CONSOLE_CTRL_SIZE > strlen(MAX_NAME) ||
                memcmp(m + VIRTIO_CONSOLE_CTRL_SIZE, MAX_NAME, len - VIRTIO_CONSOLE_CTRL_SIZE))
                abort();
            break;
        default:
            abort();
        }
    }
}

/* One buffer of @len bytes at @addr on queue @q, kicked. */
static void add_one(Target *t, unsigned q, uint64_t addr, uint32_t len, gboolean write)
{
    fuzz_driver_add(t->f, q, &addr, &len, &write, 1);
    fuzz_driver_kick(t->f, q);
}

static void client_op(Target *t, FuzzInput *in)
{
    unsigned what = fuzz_take(in, 1) % 4;
    uint8_t buf[256];

    if (!t->named)
        return;
    if (what == 0 && t->client < 0) {
        struct sockaddr_un addr = { .sun_family = AF_UNIX };

        t->client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        g_strlcpy(addr.sun_path, t->sock_path, sizeof(addr.sun_path));
        if (t->client >= 0 && connect(t->client, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
            close(t->client);
            t->client = -1;
        }
    } else if (what == 1 && t->client >= 0) {
        size_t n = fuzz_take_bytes(in, buf, fuzz_take(in, 1));

        if (send(t->client, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN)
            abort();
    } else if (what == 2 && t->client >= 0) {
        while (recv(t->client, buf, sizeof(buf), MSG_DONTWAIT) > 0)
            ;
    } else if (what == 3 && t->client >= 0) {
        close(t->client);
        t->client = -1;
    }
    fuzz_env_run(t->f);
}

static void run_op(Target *t, FuzzInput *in, Op op)
{
    FuzzEnv *f = t->f;

    switch (op) {
    case OP_CTRL_MSG: {
        uint32_t len = fuzz_take(in, 1) % 24;
        uint64_t at = fuzz_driver_alloc(f, MAX(len, 1));
        uint8_t *p = fuzz_env_ram(f, at, MAX(len, 1));

        for (uint32_t i = 0; i < len; i++)
            p[i] = fuzz_take(in, 1);
        add_one(t, VIRTIO_CONSOLE_Q_CTRL_TX, at, len, FALSE);
        break;
    }
    case OP_CTRL_BUF: {
        unsigned n = 1 + fuzz_take(in, 1) % 4;
        uint32_t size = fuzz_take(in, 2) % 600;

        for (unsigned i = 0; i < n; i++) {
            unsigned head = fuzz_driver_next_head(f, VIRTIO_CONSOLE_Q_CTRL_RX);

            add_one(t, VIRTIO_CONSOLE_Q_CTRL_RX, CTRL_BASE + head * CTRL_SLOT, size, TRUE);
        }
        break;
    }
    case OP_RX_BUF: {
        unsigned q = virtio_console_rx_queue(fuzz_take(in, 1) % t->max_ports);
        uint32_t size = fuzz_take(in, 2) % 2048;

        add_one(t, q, fuzz_driver_alloc(f, MAX(size, 1)), size, TRUE);
        break;
    }
    case OP_TX: {
        unsigned q = virtio_console_tx_queue(fuzz_take(in, 1) % t->max_ports);
        unsigned parts = 1 + fuzz_take(in, 1) % 4;
        uint32_t total = fuzz_take(in, 1), len[4];
        uint64_t at = fuzz_driver_alloc(f, MAX(total, 1)), addr[4];
        uint8_t *p = fuzz_env_ram(f, at, MAX(total, 1));
        const gboolean write[4] = { FALSE };

        for (uint32_t i = 0; i < total; i++)
            p[i] = i;
        for (unsigned i = 0; i < parts; i++) {
            len[i] = i + 1 == parts ? total - total / parts * i : total / parts;
            addr[i] = at + total / parts * i;
        }
        fuzz_driver_add(f, q, addr, len, write, parts);
        fuzz_driver_kick(f, q);
        break;
    }
    case OP_HOST_INPUT: {
        uint8_t buf[256];
        size_t n = fuzz_take(in, 1);

        for (size_t i = 0; i < n; i++)
            buf[i] = fuzz_take(in, 1);
        fuzz_chr_input(f, buf, n);
        break;
    }
    case OP_BACKEND:
        fuzz_chr_set_room(f, fuzz_take(in, 1));
        break;
    case OP_KICK:
        fuzz_driver_kick(f, fuzz_take(in, 1));
        break;
    case OP_POKE: {
        uint64_t gpa = fuzz_take(in, 2);
        uint8_t buf[16];
        size_t n = fuzz_take(in, 1) % sizeof(buf);

        for (size_t i = 0; i < n; i++)
            buf[i] = fuzz_take(in, 1);
        fuzz_driver_poke(f, gpa, buf, n);
        break;
    }
    case OP_RUN:
        fuzz_env_run(f);
        break;
    case OP_RESET:
        fuzz_env_reset(f);
        break;
    case OP_SETUP:
        setup(t);
        break;
    case OP_SAVE_LOAD:
        fuzz_env_save_load_same(f);
        fuzz_env_run(f);
        break;
    case OP_LOAD_DAMAGED:
        fuzz_env_load_damaged(f, in);
        fuzz_env_run(f);
        break;
    case OP_CLIENT:
        client_op(t, in);
        break;
    case OP_READ_CTRL:
        fuzz_env_run(f);
        read_ctrl(t);
        break;
    case OP_COUNT:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzInput in = { data, size };
    g_autofree char *options = NULL;
    Target t = { .client = -1 };
    uint8_t cfg = fuzz_take(&in, 1);

    fuzz_quiet_logs();
    t.max_ports = 1 + (cfg & 3);
    t.named = (cfg & 0x20) && t.max_ports >= 2;
    t.features = (cfg & 4 ? VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT) : 0) |
                 (cfg & 8 ? VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) : 0) |
                 (cfg & 0x10 ? VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC) : 0);
    if (t.named) {
        t.dir = g_dir_make_tmp("fuzz-console-XXXXXX", NULL);
        if (!t.dir)
            abort();
        t.sock_path = g_build_filename(t.dir, "p1.sock", NULL);
        options = g_strdup_printf("max-ports=%u,name1=%s,socket1=%s", t.max_ports, MAX_NAME,
                                  t.sock_path);
    } else {
        options = g_strdup_printf("max-ports=%u", t.max_ports);
    }
    t.f = fuzz_env_new(RAM_SIZE);
    fuzz_driver_reserve(t.f, RAM_SIZE - CTRL_BASE);
    fuzz_chr_attach(t.f);
    fuzz_env_create(t.f, "virtio-console", options);
    setup(&t);
    for (unsigned n = 0; in.left && n < MAX_OPS; n++) {
        /* Other queues' buffers come back unchecked, so that the driver can reuse them. */
        for (unsigned q = 0; q < FUZZ_MAX_QUEUES; q++) {
            if (q != VIRTIO_CONSOLE_Q_CTRL_RX)
                fuzz_driver_reap(t.f, q);
        }
        run_op(&t, &in, fuzz_take(&in, 1) % OP_COUNT);
    }
    fuzz_env_run(t.f);
    read_ctrl(&t);

    if (t.client >= 0)
        close(t.client);
    fuzz_env_free(t.f);
    if (t.dir) {
        rmdir(t.dir);
        g_free(t.dir);
        g_free(t.sock_path);
    }
    return 0;
}
