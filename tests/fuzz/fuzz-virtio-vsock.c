/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target for devices/virtio/vsock.c (and vsock-uds.c): the
 * guest's packets (headers, lengths, ops, ports, credit), its rx and event
 * buffers, and host programs on real UNIX sockets in a private directory
 * (CONNECT lines, data, half-closes, closes), with timeouts, resets and
 * save/load, through the virtio core on the fake machine of
 * fuzz-virtio.c. Checks what the device promises whatever happens:
 *
 * - every rx packet is whole: used length = header + its len, inside the
 *   buffer, addressed to the guest's CID;
 * - tx buffers come back with nothing written, event buffers with 0 or 4
 *   bytes;
 * - it returns only buffers the driver made available; the loop runs dry;
 *   it saves and loads any state it reaches; it leaks no fd or timer
 *   (LeakSanitizer, and the fd count at the end of each input).
 *
 * Input (tests/fuzz/gen-virtio-seeds.py writes the seeds):
 *   u8 flags   bit 0 EVENT_IDX
 *   then operations, one byte each plus their arguments (enum Op)
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz-virtio.h"
#include "vireo/util.h"
#include "vireo/virtio-vsock.h"

#define RAM_SIZE (1 << 20)
#define MAX_OPS 256
#define GUEST_CID 3
#define MAX_HOST_FDS 8
#define HDR VIRTIO_VSOCK_HDR_SIZE
/*
 * Rx buffers live at the top of RAM, one slot per descriptor, so that
 * nothing the target allocates later overwrites a packet before it is
 * checked.
 */
#define RX_SLOT 8192
#define RX_BASE (RAM_SIZE - FUZZ_QUEUE_SIZE * RX_SLOT)

typedef enum {
    OP_TX,              /* u8 op, u8 ports, u8 flags, u8 credit, u8 lie, u16 len */
    OP_RX_ADD,          /* u8 count, u16 size */
    OP_EV_ADD,          /* u8 size */
    OP_HOST_CONNECT,    /* u8 how, [u8 len, bytes] */
    OP_HOST_ACCEPT,
    OP_HOST_WRITE,      /* u8 index, u16 len */
    OP_HOST_READ,       /* u8 index */
    OP_HOST_CLOSE,      /* u8 index, u8 how */
    OP_RUN,
    OP_USED,
    OP_TIMER,           /* u8 seconds */
    OP_SAVE_LOAD,
    OP_RESTART,
    OP_POKE,            /* u16 gpa, u8 len, bytes */
    OP_COUNT,
} Op;

static char *dir;               /* this process's sockets */
static char *uds_path;
static uint8_t junk[65536];

typedef struct Target {
    FuzzEnv *f;
    int listeners[2];           /* uds_path_1, uds_path_2 */
    int hosts[MAX_HOST_FDS];
    unsigned nhosts;
} Target;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    dir = g_dir_make_tmp("vireo-fuzz-vsock-XXXXXX", NULL);
    if (!dir)
        abort();
    uds_path = g_build_filename(dir, "v.sock", NULL);
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = i * 7 + (i >> 8);
    return 0;
}

static int listen_at(uint32_t port)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    g_snprintf(addr.sun_path, sizeof(addr.sun_path), "%s_%u", uds_path, port);
    unlink(addr.sun_path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 8) < 0)
        abort();
    return fd;
}

static void add_host(Target *t, int fd)
{
    if (t->nhosts < MAX_HOST_FDS)
        t->hosts[t->nhosts++] = fd;
    else
        close(fd);
}

/* The guest port and host port of a packet, from a small set so that they meet. */
static void pick_ports(uint8_t v, uint32_t *gp, uint32_t *hp)
{
    static const uint32_t host_ports[] = { 1, 2, 3, VIRTIO_VSOCK_LOCAL_PORT_BASE,
                                           VIRTIO_VSOCK_LOCAL_PORT_BASE + 1 };

    *gp = 1 + (v & 3);
    *hp = host_ports[(v >> 2) % G_N_ELEMENTS(host_ports)];
}

static void check_rx(Target *t, uint32_t id, uint32_t len)
{
    uint64_t addr;
    uint32_t size, plen;
    const uint8_t *h;

    /* After the input wrote into the rings, descriptors say anything. */
    if (fuzz_driver_tainted(t->f))
        return;
    fuzz_driver_desc(t->f, VIRTIO_VSOCK_Q_RX, id, &addr, &size);
    if (len == 0)
        return;                         /* a buffer the device could not use */
    if (len < HDR || len > size)
        abort();
    h = fuzz_env_ram(t->f, addr, HDR);
    plen = vireo_le_load(h + VIRTIO_VSOCK_HDR_LEN, 4);
    if (len != HDR + plen || vireo_le_load(h + VIRTIO_VSOCK_HDR_DST_CID, 8) != GUEST_CID)
        abort();
    /* Only data carries a payload. */
    if (plen && vireo_le_load(h + VIRTIO_VSOCK_HDR_OP, 2) != VIRTIO_VSOCK_OP_RW)
        abort();
}

static void drain_used(Target *t)
{
    uint32_t id, len;

    while (fuzz_driver_used(t->f, VIRTIO_VSOCK_Q_RX, &id, &len))
        check_rx(t, id, len);
    while (fuzz_driver_used(t->f, VIRTIO_VSOCK_Q_TX, &id, &len)) {
        if (len)
            abort();
    }
    while (fuzz_driver_used(t->f, VIRTIO_VSOCK_Q_EVENT, &id, &len)) {
        if (len != 0 && len != VIRTIO_VSOCK_EVENT_SIZE)
            abort();
    }
}

static void add_rx(Target *t, unsigned count, uint32_t size)
{
    size = MIN(size, (uint32_t)RX_SLOT);
    for (unsigned i = 0; i < count; i++) {
        uint64_t buf = RX_BASE + (uint64_t)fuzz_driver_next_head(t->f, VIRTIO_VSOCK_Q_RX) * RX_SLOT;
        gboolean w = TRUE;

        fuzz_driver_add(t->f, VIRTIO_VSOCK_Q_RX, &buf, &size, &w, 1);
    }
    fuzz_driver_kick(t->f, VIRTIO_VSOCK_Q_RX);
}

static void start(Target *t, uint8_t flags)
{
    uint64_t features = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_VSOCK_F_STREAM);

    if (flags & 1)
        features |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
    fuzz_driver_start(t->f, features, 3);
    for (unsigned i = 0; i < 4; i++) {
        uint64_t ev = fuzz_driver_alloc(t->f, 4);
        uint32_t len = 4;
        gboolean w = TRUE;

        fuzz_driver_add(t->f, VIRTIO_VSOCK_Q_EVENT, &ev, &len, &w, 1);
    }
    add_rx(t, 16, 4096);
}

static void tx(Target *t, FuzzInput *in)
{
    uint8_t raw[HDR];
    uint8_t op = fuzz_take(in, 1), ports = fuzz_take(in, 1), flags = fuzz_take(in, 1);
    uint8_t credit = fuzz_take(in, 1), lie = fuzz_take(in, 1);
    uint32_t len = fuzz_take(in, 2) % 16384, gp, hp;
    uint64_t buf = fuzz_driver_alloc(t->f, HDR + len);
    uint64_t addr[2] = { buf, buf + HDR };
    uint32_t lens[2] = { HDR, len };
    gboolean w[2] = { FALSE, FALSE };

    pick_ports(ports, &gp, &hp);
    memset(raw, 0, sizeof(raw));
    vireo_le_store(raw + VIRTIO_VSOCK_HDR_SRC_CID, 8, (lie & 0x10) ? lie >> 5 : GUEST_CID);
    vireo_le_store(raw + VIRTIO_VSOCK_HDR_DST_CID, 8, (lie & 0x20) ? lie >> 4 : 2);
    vireo_le_store(raw + VIRTIO_VSOCK_HDR_SRC_PORT, 4, gp);
    vireo_le_store(raw + VIRTIO_VSOCK_HDR_DST_PORT, 4, hp);
    vireo_le_store(raw + VIRTIO_VSOCK_HDR_LEN, 4, (lie & 1) ? len + (lie >> 1) : len);
    vireo_le_store(raw + VIRTIO_VSOCK_HDR_TYPE, 2, (lie & 0x40) ? lie & 3 : 1);
    vireo_le_store(raw + VIRTIO_VSOCK_HDR_OP, 2, op % 9);
    vireo_le_store(raw + VIRTIO_VSOCK_HDR_FLAGS, 4, flags);
    vireo_le_store(raw + VIRTIO_VSOCK_HDR_BUF_ALLOC, 4,
                   credit & 0x80 ? (uint32_t)credit << 24 : (uint32_t)credit << 10);
    vireo_le_store(raw + VIRTIO_VSOCK_HDR_FWD_CNT, 4, (uint32_t)(credit & 0xf) << 12);
    memcpy(fuzz_env_ram(t->f, buf, HDR), raw, HDR);
    memcpy(fuzz_env_ram(t->f, buf + HDR, MAX(len, 1u)), junk, MIN(len, sizeof(junk)));
    /* Header and payload apart (Linux 6.1) or together, or a header cut short. */
    if (lie & 0x80)
        lens[0] = HDR - 1 - (lie & 7);
    if (ports & 0x80)
        fuzz_driver_add(t->f, VIRTIO_VSOCK_Q_TX, addr, (uint32_t[]){ lens[0] + len }, w, 1);
    else
        fuzz_driver_add(t->f, VIRTIO_VSOCK_Q_TX, addr, lens, w, len ? 2 : 1);
    fuzz_driver_kick(t->f, VIRTIO_VSOCK_Q_TX);
}

static void host_connect(Target *t, FuzzInput *in)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    uint8_t how = fuzz_take(in, 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    char line[40];
    size_t len;

    g_strlcpy(addr.sun_path, uds_path, sizeof(addr.sun_path));
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    if (how & 1) {
        len = g_snprintf(line, sizeof(line), "CONNECT %u\n", 1 + ((how >> 1) & 3));
    } else {
        len = fuzz_take(in, 1) % sizeof(line);
        for (size_t i = 0; i < len; i++)
            line[i] = fuzz_take(in, 1);
    }
    send(fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    add_host(t, fd);
}

static unsigned count_fds(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;

    while (d && (e = readdir(d)))
        n++;
    if (d)
        closedir(d);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned fds_before = count_fds();
    FuzzInput in = { data, size };
    uint8_t flags = fuzz_take(&in, 1);
    g_autofree char *options = g_strdup_printf("guest-cid=%d,uds-path=%s", GUEST_CID, uds_path);
    Target t = { 0 };

    fuzz_quiet_logs();
    t.f = fuzz_env_new(RAM_SIZE);
    fuzz_driver_reserve(t.f, RAM_SIZE - RX_BASE);
    t.listeners[0] = listen_at(1);
    t.listeners[1] = listen_at(2);
    fuzz_env_create(t.f, VIRTIO_VSOCK_TYPE_NAME, options);
    start(&t, flags);
    for (unsigned n = 0; in.left && n < MAX_OPS; n++) {
        switch (fuzz_take(&in, 1) % OP_COUNT) {
        case OP_TX:
            tx(&t, &in);
            break;
        case OP_RX_ADD:
            add_rx(&t, 1 + fuzz_take(&in, 1) % 8, fuzz_take(&in, 2) % 8192);
            break;
        case OP_EV_ADD: {
            uint64_t ev = fuzz_driver_alloc(t.f, 8);
            uint32_t len = fuzz_take(&in, 1) % 9;
            gboolean w = TRUE;

            fuzz_driver_add(t.f, VIRTIO_VSOCK_Q_EVENT, &ev, &len, &w, 1);
            fuzz_driver_kick(t.f, VIRTIO_VSOCK_Q_EVENT);
            break;
        }
        case OP_HOST_CONNECT:
            host_connect(&t, &in);
            break;
        case OP_HOST_ACCEPT:
            for (unsigned i = 0; i < 2; i++) {
                int fd = accept4(t.listeners[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd >= 0)
                    add_host(&t, fd);
            }
            break;
        case OP_HOST_WRITE: {
            unsigned i = fuzz_take(&in, 1);
            size_t len = 1 + fuzz_take(&in, 2) % sizeof(junk);

            if (t.nhosts)
                send(t.hosts[i % t.nhosts], junk, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            break;
        }
        case OP_HOST_READ: {
            unsigned i = fuzz_take(&in, 1);
            uint8_t buf[16384];

            if (t.nhosts)
                recv(t.hosts[i % t.nhosts], buf, sizeof(buf), MSG_DONTWAIT);
            break;
        }
        case OP_HOST_CLOSE: {
            unsigned i = fuzz_take(&in, 1), how = fuzz_take(&in, 1) % 3;

            if (!t.nhosts)
                break;
            i %= t.nhosts;
            if (how < 2) {
                shutdown(t.hosts[i], how == 0 ? SHUT_WR : SHUT_RD);
            } else {
                close(t.hosts[i]);
                t.hosts[i] = t.hosts[--t.nhosts];
            }
            break;
        }
        case OP_RUN:
            fuzz_env_run(t.f);
            break;
        case OP_USED:
            fuzz_env_run(t.f);
            drain_used(&t);
            break;
        case OP_TIMER:
            fuzz_env_advance(t.f, (int64_t)(fuzz_take(&in, 1) % 4) * 1000000000);
            break;
        case OP_SAVE_LOAD:
            fuzz_env_save_load(t.f);
            break;
        case OP_RESTART:
            start(&t, fuzz_take(&in, 1));
            break;
        case OP_POKE: {
            uint64_t gpa = fuzz_take(&in, 2);
            uint8_t buf[16];
            size_t len = fuzz_take(&in, 1) % sizeof(buf);

            for (size_t i = 0; i < len; i++)
                buf[i] = fuzz_take(&in, 1);
            fuzz_driver_poke(t.f, gpa, buf, len);
            break;
        }
        default:
            break;
        }
    }
    fuzz_env_run(t.f);
    drain_used(&t);
    for (unsigned i = 0; i < t.nhosts; i++)
        close(t.hosts[i]);
    fuzz_env_free(t.f);
    for (unsigned i = 0; i < 2; i++) {
        g_autofree char *p = g_strdup_printf("%s_%u", uds_path, i + 1);

        close(t.listeners[i]);
        unlink(p);
    }
    /* The device closed every socket it had, and removed its own. */
    if (count_fds() != fds_before || access(uds_path, F_OK) == 0)
        abort();
    return 0;
}
