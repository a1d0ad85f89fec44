/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-net (devices/virtio/net.c) through the test driver, without KVM
 * and without root: each queue pair's backend is one end of an AF_UNIX
 * SOCK_DGRAM socketpair (fd=N), which the device treats as a tap with a
 * vnet header: one datagram per frame, the 12-byte header in front. The
 * test holds the other end and plays the host network.
 *
 * Covered: identity, features and configuration space; frames out and in
 * with and without mergeable buffers, scattered and indirect chains,
 * jumbo and GSO frames; thousands of frames in every ring and interrupt
 * mode; a full backend (EAGAIN, then EPOLLOUT) and an empty ring (the fd
 * unwatched until the kick); offload headers checked both ways; link
 * state; every control command Linux sends, and the filters they set;
 * multiqueue; hostile rings and chains (descriptor loops, buffers outside
 * RAM, zero-length buffers, queue indices out of range, kicks for queues
 * that are not set up); state saved and loaded in the middle of traffic,
 * and corrupted state; bad options; bare frames (vnet-hdr=off).
 *
 * `test-virtio-net --bench [FRAMES]` instead measures the device's host
 * CPU per frame, both ways, for 64- and 1500-byte frames (tests/bench/net.py
 * prints it).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "virtio-driver.h"
#include "vireo/virtio-net.h"

#define NET "virtio-net"
#define MAC "52:54:00:12:34:56"
#define F(bit) VIRTIO_BIT(VIRTIO_NET_F_##bit)
#define HDR VIRTIO_NET_HDR_SIZE
#define MAX_PEERS 4

static const uint8_t dev_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t other_mac[6] = { 0x52, 0x54, 0x00, 0x99, 0x99, 0x99 };
static const uint8_t bcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t mcast_mac[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };

/* The features Linux 6.1 asks for, as far as this device offers them. */
#define LINUX_FEATURES (F(CSUM) | F(GUEST_CSUM) | F(CTRL_GUEST_OFFLOADS) | F(MTU) | F(MAC) |      \
                        F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_ECN) | F(GUEST_UFO) |              \
                        F(HOST_TSO4) | F(HOST_TSO6) | F(HOST_ECN) | F(HOST_UFO) | F(MRG_RXBUF) |   \
                        F(STATUS) | F(CTRL_VQ) | F(CTRL_RX) | F(CTRL_VLAN) | F(CTRL_RX_EXTRA) |   \
                        F(MQ) | F(CTRL_MAC_ADDR) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) |           \
                        VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC))

/* The test's ends of the socketpairs; closed after the device (declared before it). */
typedef struct Peers {
    int fd[MAX_PEERS];
    unsigned n;
} Peers;

static void peers_close(Peers *p)
{
    for (unsigned i = 0; i < p->n; i++)
        close(p->fd[i]);
    p->n = 0;
}
#define autopeers __attribute__((cleanup(peers_close)))

/* SO_SNDBUF of the device's ends (0: the default): small to see the backend fill up. */
static int backend_sndbuf;

/* "fd=N" (or fds=) for @n new socketpairs; the device's ends go into the options. */
static char *net_backend_opts(Peers *peers, unsigned n)
{
    GString *s = g_string_new(n == 1 ? "fd=" : "fds=");

    g_assert(n <= MAX_PEERS);
    peers_close(peers);
    for (unsigned i = 0; i < n; i++) {
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        if (backend_sndbuf)
            assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &backend_sndbuf,
                                        sizeof(backend_sndbuf)), 0);
        peers->fd[i] = sv[1];
        g_string_append_printf(s, "%s%d", i ? ":" : "", sv[0]);
    }
    peers->n = n;
    return g_string_free(s, FALSE);
}

static VirtioDriver *net_new(HarnessEnv *e, Peers *peers, unsigned pairs, const char *extra,
                             VirtioDriverIrqMode mode)
{
    g_autofree char *be = net_backend_opts(peers, pairs);
    g_autofree char *opts = g_strdup_printf("%s,mac=" MAC "%s%s", be, extra ? "," : "",
                                            extra ? extra : "");
    VirtioDriverParams p = { .irq_mode = mode };

    return virtio_driver_new(e, NET, opts, &p);
}

static unsigned net_ctrl_queue(VirtioDriver *d)
{
    uint16_t pairs = 0;

    if (!(virtio_driver_features(d) & F(MQ)))
        return 2;
    virtio_driver_config_read(d, VIRTIO_NET_CFG_MAX_PAIRS, &pairs, 2);
    return 2 * GUINT16_FROM_LE(pairs);
}

/* Negotiates @features, sets up every queue the configuration has, DRIVER_OK. */
static void net_start(VirtioDriver *d, uint64_t features)
{
    unsigned ctrl;

    assert_true(virtio_driver_init(d, features));
    ctrl = net_ctrl_queue(d);
    for (unsigned i = 0; i < ctrl; i++)
        virtio_driver_setup_queue(d, i, 0);
    if (virtio_driver_features(d) & F(CTRL_VQ))
        virtio_driver_setup_queue(d, ctrl, 0);
    virtio_driver_ok(d);
}

static VirtioDriver *net_ready(HarnessEnv *e, Peers *peers, unsigned pairs, const char *extra,
                               uint64_t features)
{
    VirtioDriver *d = net_new(e, peers, pairs, extra, VIRTIO_DRIVER_MSIX);

    net_start(d, features);
    return d;
}

/* --- frames --- */

/* An Ethernet frame of @len bytes to @dst: IPv4 ethertype, payload seed + i. */
static void make_frame(uint8_t *buf, const uint8_t *dst, size_t len, uint8_t seed)
{
    static const uint8_t src[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };

    g_assert(len >= 14);
    memcpy(buf, dst, 6);
    memcpy(buf + 6, src, 6);
    buf[12] = 0x08;
    buf[13] = 0x00;
    for (size_t i = 14; i < len; i++)
        buf[i] = (uint8_t)(seed + i);
}

static void hdr_set(uint8_t *h, uint8_t flags, uint8_t gso, uint16_t hdr_len, uint16_t gso_size,
                    uint16_t start, uint16_t off)
{
    memset(h, 0, HDR);
    h[VIRTIO_NET_HDR_FLAGS] = flags;
    h[VIRTIO_NET_HDR_GSO_TYPE] = gso;
    vireo_le_store(h + VIRTIO_NET_HDR_HDR_LEN, 2, hdr_len);
    vireo_le_store(h + VIRTIO_NET_HDR_GSO_SIZE, 2, gso_size);
    vireo_le_store(h + VIRTIO_NET_HDR_CSUM_START, 2, start);
    vireo_le_store(h + VIRTIO_NET_HDR_CSUM_OFFSET, 2, off);
}

/* The host sends a frame to the guest: header + frame, one datagram. */
static void peer_send(int fd, const uint8_t *hdr, const uint8_t *frame, size_t len)
{
    static const uint8_t zero[HDR];
    struct iovec iov[2] = { { (void *)(hdr ? hdr : zero), HDR }, { (void *)frame, len } };
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };

    assert_int_equal(sendmsg(fd, &msg, 0), (ssize_t)(HDR + len));
}

/* What the guest sent, if anything: the datagram's length, or -1. */
static ssize_t peer_recv(int fd, uint8_t *buf, size_t max)
{
    ssize_t r = recv(fd, buf, max, MSG_DONTWAIT);

    if (r < 0)
        assert_true(errno == EAGAIN);
    return r;
}

/* --- the guest side --- */

/* One single-buffer receive chain at @addr; the token is @token. */
static void rx_add(VirtioDriverQueue *q, uint64_t addr, uint32_t len, unsigned token)
{
    assert_true(virtio_driver_add(q, NULL, 0, &(VirtioDriverBuf){ addr, len }, 1,
                                  GUINT_TO_POINTER(token)) >= 0);
}

/* @n receive buffers of @len bytes, tokens 1..n; returns the first's address (contiguous). */
static uint64_t rx_fill(VirtioDriver *d, VirtioDriverQueue *q, unsigned n, uint32_t len)
{
    uint64_t base = virtio_driver_alloc(d, (uint64_t)n * len, 64);

    for (unsigned i = 0; i < n; i++)
        rx_add(q, base + (uint64_t)i * len, len, i + 1);
    virtio_driver_kick(q);
    return base;
}

/*
 * A transmit request: the header, then the frame in @pieces descriptors,
 * in guest memory at @buf (room for HDR + len). Token @token.
 */
static void tx_add(VirtioDriver *d, VirtioDriverQueue *q, uint64_t buf, const uint8_t *hdr,
                   const uint8_t *frame, size_t len, unsigned pieces, unsigned token)
{
    VirtioDriverBuf out[8];
    size_t at = 0;

    g_assert(pieces >= 1 && pieces < G_N_ELEMENTS(out));
    memcpy(virtio_driver_mem(d, buf, HDR), hdr, HDR);
    memcpy(virtio_driver_mem(d, buf + HDR, len), frame, len);
    out[0] = (VirtioDriverBuf){ buf, HDR };
    for (unsigned i = 0; i < pieces; i++) {
        size_t k = i + 1 == pieces ? len - at : len / pieces;

        out[1 + i] = (VirtioDriverBuf){ buf + HDR + at, k };
        at += k;
    }
    assert_true(virtio_driver_add(q, out, 1 + pieces, NULL, 0, GUINT_TO_POINTER(token)) >= 0);
}

/* The next used token of @q (failing if none) with its length. */
static unsigned used_token(VirtioDriverQueue *q, uint32_t *len)
{
    void *t = virtio_driver_get_used(q, len);

    assert_non_null(t);
    return GPOINTER_TO_UINT(t);
}

/* A control command: class, command, @data; returns the ack (0xee if none was written). */
static uint8_t ctrl_cmd(VirtioDriver *d, uint8_t cls, uint8_t cmd, const void *data, size_t len)
{
    VirtioDriverQueue *q = virtio_driver_queue(d, net_ctrl_queue(d));
    uint64_t buf = virtio_driver_alloc(d, 2 + len + 1, 8);
    uint8_t *p = virtio_driver_mem(d, buf, 2 + len + 1);
    VirtioDriverBuf out[2] = { { buf, 2 }, { buf + 2, len } };
    uint32_t used = 0;

    /* As Linux's virtnet_send_command: header, data, status each their own buffer. */
    p[0] = cls;
    p[1] = cmd;
    if (len)
        memcpy(p + 2, data, len);
    p[2 + len] = 0xee;
    assert_true(virtio_driver_add(q, out, len ? 2 : 1, &(VirtioDriverBuf){ buf + 2 + len, 1 }, 1,
                                  GUINT_TO_POINTER(1)) >= 0);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_int_equal(used_token(q, &used), 1);
    assert_int_equal(used, 1);
    return p[2 + len];
}

static uint8_t ctrl_rx(VirtioDriver *d, uint8_t cmd, uint8_t on)
{
    return ctrl_cmd(d, VIRTIO_NET_CTRL_RX, cmd, &on, 1);
}

/* MAC_TABLE_SET with @nu unicast and @nm multicast entries. */
static uint8_t ctrl_mac_table(VirtioDriver *d, const uint8_t (*uni)[6], uint32_t nu,
                              const uint8_t (*multi)[6], uint32_t nm)
{
    g_autofree uint8_t *buf = g_malloc(8 + 6 * (nu + nm));
    size_t at = 0;

    vireo_le_store(buf, 4, nu);
    at = 4;
    if (nu)
        memcpy(buf + at, uni, 6 * nu);
    at += 6 * nu;
    vireo_le_store(buf + at, 4, nm);
    at += 4;
    if (nm)
        memcpy(buf + at, multi, 6 * nm);
    at += 6 * nm;
    return ctrl_cmd(d, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, at);
}

/* Sends a frame to @dst from the host and says whether the guest got it (one buffer posted). */
static gboolean delivered(VirtioDriver *d, int peer, const uint8_t *dst, uint16_t vlan)
{
    VirtioDriverQueue *q = virtio_driver_queue(d, 0);
    uint8_t frame[64];
    uint64_t buf = virtio_driver_alloc(d, 2048, 64);
    gboolean got;

    make_frame(frame, dst, sizeof(frame), 1);
    if (vlan) {
        frame[12] = 0x81;
        frame[13] = 0x00;
        frame[14] = vlan >> 8;
        frame[15] = vlan & 0xff;
    }
    rx_add(q, buf, 2048, 77);
    virtio_driver_kick(q);
    peer_send(peer, NULL, frame, sizeof(frame));
    virtio_driver_run(d);
    got = virtio_driver_get_used(q, NULL) != NULL;
    if (!got) {
        /* Take the buffer back with the next frame, which always passes (broadcast). */
        make_frame(frame, bcast_mac, sizeof(frame), 2);
        peer_send(peer, NULL, frame, sizeof(frame));
        virtio_driver_run(d);
        assert_int_equal(used_token(q, NULL), 77);
    }
    return got;
}

/* --- tests --- */

static void test_identity(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    g_autoptr(VirtioDriver) d = net_new(e, &peers, 1, "mtu=9000", VIRTIO_DRIVER_MSIX);
    const DeviceType *type = device_type_find(NET);
    uint64_t f = virtio_driver_device_features(d);
    uint8_t mac[6];
    uint16_t v;

    assert_non_null(type);
    assert_true(type->pci && type->ops == &virtio_pci_device_ops);
    /* 1af4:1041, an Ethernet controller. */
    assert_int_equal(pci_config_read(virtio_driver_pci(d), PCI_VENDOR_ID, 4), 0x10411af4);
    assert_int_equal(pci_config_read(virtio_driver_pci(d), PCI_CLASS_DEVICE, 2), 0x0200);
    /* A socket with a vnet header takes every offload; no MQ with one pair. */
    assert_true((f & LINUX_FEATURES) == (LINUX_FEATURES & ~F(MQ)));
    assert_int_equal(virtio_driver_common_read(d, VIRTIO_PCI_COMMON_NUMQ, 2), 3);
    assert_int_equal(virtio_driver_layout(d)->device.length, VIRTIO_NET_CFG_SIZE);
    virtio_driver_config_read(d, VIRTIO_NET_CFG_MAC, mac, 6);
    assert_memory_equal(mac, dev_mac, 6);
    virtio_driver_config_read(d, VIRTIO_NET_CFG_STATUS, &v, 2);
    assert_int_equal(GUINT16_FROM_LE(v), VIRTIO_NET_S_LINK_UP);
    virtio_driver_config_read(d, VIRTIO_NET_CFG_MAX_PAIRS, &v, 2);
    assert_int_equal(GUINT16_FROM_LE(v), 1);
    virtio_driver_config_read(d, VIRTIO_NET_CFG_MTU, &v, 2);
    assert_int_equal(GUINT16_FROM_LE(v), 9000);
    /* The configuration is read-only: a write changes nothing. */
    virtio_driver_config_write(d, VIRTIO_NET_CFG_MAC, 4, 0xdeadbeef);
    virtio_driver_config_read(d, VIRTIO_NET_CFG_MAC, mac, 6);
    assert_memory_equal(mac, dev_mac, 6);
    assert_int_equal(harness_take_guest_warnings(), 1);

    /* Features without what they need are refused (5.1.3.1). */
    assert_false(virtio_driver_init(d, F(GUEST_TSO4)));
    assert_false(virtio_driver_init(d, F(HOST_ECN) | F(CSUM)));
    assert_false(virtio_driver_init(d, F(CTRL_RX)));
    assert_false(virtio_driver_init(d, F(MQ) | F(CTRL_VQ) | F(CTRL_RX_EXTRA)));
    /* Each says which feature lacks which, then the core that FEATURES_OK is refused. */
    assert_int_equal(harness_take_guest_warnings(), 8);
    assert_true(virtio_driver_init(d, LINUX_FEATURES));
}

/* The default MAC: 52:54:00 and a hash of the id; another id, another address. */
static void test_default_mac(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net-a", 0);
    g_autoptr(HarnessEnv) e2 = harness_env_new("net-b", 0);
    autopeers Peers p1 = { .n = 0 };
    autopeers Peers p2 = { .n = 0 };
    autopeers Peers p3 = { .n = 0 };
    g_autofree char *o1 = net_backend_opts(&p1, 1);
    g_autofree char *o2 = net_backend_opts(&p2, 1);
    g_autofree char *o3 = net_backend_opts(&p3, 1);
    g_autoptr(VirtioDriver) a = virtio_driver_new(e, NET, o1, NULL);
    g_autoptr(VirtioDriver) b = virtio_driver_new(e2, NET, o2, NULL);
    uint8_t ma[6], mb[6], mc[6];

    virtio_driver_config_read(a, 0, ma, 6);
    virtio_driver_config_read(b, 0, mb, 6);
    assert_int_equal(ma[0], 0x52);
    assert_int_equal(ma[1], 0x54);
    assert_int_equal(ma[2], 0x00);
    assert_memory_not_equal(ma, mb, 6);
    /* Stable: the same id gives the same address. */
    g_clear_pointer(&a, virtio_driver_free);
    a = virtio_driver_new(e, NET, o3, NULL);
    virtio_driver_config_read(a, 0, mc, 6);
    assert_memory_equal(ma, mc, 6);
}

static void test_tx(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    g_autoptr(VirtioDriver) d = net_ready(e, &peers, 1, NULL, LINUX_FEATURES);
    VirtioDriverQueue *q = virtio_driver_queue(d, 1);
    uint8_t frame[1514], hdr[HDR], got[HDR + 1514];
    uint64_t buf = virtio_driver_alloc(d, 8 * 2048, 64);
    uint32_t len;

    /* Plain frames, in one to five pieces; the header arrives as sent. */
    for (unsigned pieces = 1; pieces <= 5; pieces++) {
        make_frame(frame, other_mac, sizeof(frame), pieces);
        hdr_set(hdr, 0, 0, 0, 0, 0, 0);
        tx_add(d, q, buf + 2048 * pieces, hdr, frame, sizeof(frame), pieces, pieces);
    }
    assert_true(virtio_driver_kick(q));
    virtio_driver_run(d);
    for (unsigned pieces = 1; pieces <= 5; pieces++) {
        make_frame(frame, other_mac, sizeof(frame), pieces);
        assert_int_equal(peer_recv(peers.fd[0], got, sizeof(got)), HDR + sizeof(frame));
        assert_memory_equal(got + HDR, frame, sizeof(frame));
        assert_int_equal(used_token(q, &len), pieces);
        assert_int_equal(len, 0);
    }
    assert_int_equal(peer_recv(peers.fd[0], got, sizeof(got)), -1);
    /* One interrupt for the batch. */
    assert_int_equal(virtio_driver_queue_interrupts(q), 1);

    /*
     * What the backend gets is our copy of the header, fixed up: DATA_VALID
     * (meaningless on transmit) and num_buffers cleared, hdr_len within the
     * frame; a checksum and TSO request passes as the guest made it.
     */
    make_frame(frame, other_mac, 1000, 9);
    hdr_set(hdr, VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID,
            VIRTIO_NET_HDR_GSO_TCPV4, 5000, 1448, 34, 16);
    hdr[VIRTIO_NET_HDR_NUM_BUFFERS] = 7;
    tx_add(d, q, buf, hdr, frame, 1000, 2, 20);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_int_equal(peer_recv(peers.fd[0], got, sizeof(got)), HDR + 1000);
    assert_int_equal(got[VIRTIO_NET_HDR_FLAGS], VIRTIO_NET_HDR_F_NEEDS_CSUM);
    assert_int_equal(got[VIRTIO_NET_HDR_GSO_TYPE], VIRTIO_NET_HDR_GSO_TCPV4);
    assert_int_equal(vireo_le_load(got + VIRTIO_NET_HDR_HDR_LEN, 2), 1000);
    assert_int_equal(vireo_le_load(got + VIRTIO_NET_HDR_GSO_SIZE, 2), 1448);
    assert_int_equal(vireo_le_load(got + VIRTIO_NET_HDR_CSUM_START, 2), 34);
    assert_int_equal(vireo_le_load(got + VIRTIO_NET_HDR_CSUM_OFFSET, 2), 16);
    assert_int_equal(vireo_le_load(got + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 0);
    assert_int_equal(used_token(q, NULL), 20);
    assert_int_equal(harness_take_guest_warnings(), 0);

    /* A 64 KiB TSO frame (header + frame in 3 pieces). */
    {
        uint64_t big = virtio_driver_alloc(d, HDR + 65000, 64);
        g_autofree uint8_t *f = g_malloc(65000);
        g_autofree uint8_t *g = g_malloc(HDR + 65000);

        make_frame(f, other_mac, 65000, 3);
        hdr_set(hdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV6, 74, 1440, 54, 16);
        tx_add(d, q, big, hdr, f, 65000, 3, 21);
        virtio_driver_kick(q);
        virtio_driver_run(d);
        assert_int_equal(peer_recv(peers.fd[0], g, HDR + 65000), HDR + 65000);
        assert_memory_equal(g + HDR, f, 65000);
        assert_int_equal(used_token(q, NULL), 21);
    }
}

/* Headers the device must not pass on: each dropped, completed, with a guest warning. */
static void test_tx_bad_headers(void **state)
{
    static const struct {
        uint8_t flags, gso;
        uint16_t gso_size, start, off;
        size_t len;
    } bad[] = {
        { VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 990, 16, 1000 },           /* checksum beyond the frame */
        { VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 2, 4, 1000 },              /* starts in the MAC header */
        { 0, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 0, 0, 1000 },              /* GSO without NEEDS_CSUM */
        { VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 0, 34, 16, 1000 }, /* gso_size 0 */
        { VIRTIO_NET_HDR_F_NEEDS_CSUM, 5, 1448, 34, 16, 1000 },         /* unknown GSO type */
        { 0, VIRTIO_NET_HDR_GSO_ECN, 0, 0, 0, 1000 },                   /* ECN alone */
        { 0, 0, 0, 0, 0, 13 },                                          /* runt */
        { 0, 0, 0, 0, 0, 0 },                                           /* header only */
    };
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    /* CSUM and TSO4, but not HOST_ECN, HOST_TSO6 or HOST_UFO. */
    g_autoptr(VirtioDriver) d = net_ready(e, &peers, 1, NULL, F(CSUM) | F(HOST_TSO4));
    VirtioDriverQueue *q = virtio_driver_queue(d, 1);
    uint64_t buf = virtio_driver_alloc(d, 4096, 64);
    uint8_t frame[1000], hdr[HDR], got[2048];
    static const uint8_t not_negotiated[] = {
        VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_UDP,
        VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN,
    };

    make_frame(frame, other_mac, sizeof(frame), 0);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        hdr_set(hdr, bad[i].flags, bad[i].gso, 0, bad[i].gso_size, bad[i].start, bad[i].off);
        if (bad[i].len) {
            tx_add(d, q, buf, hdr, frame, bad[i].len, 1, 100 + i);
        } else {
            memcpy(virtio_driver_mem(d, buf, HDR), hdr, HDR);
            assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ buf, HDR }, 1, NULL, 0,
                                          GUINT_TO_POINTER(100 + i)) >= 0);
        }
        virtio_driver_kick(q);
        virtio_driver_run(d);
        assert_int_equal(used_token(q, NULL), 100 + i);
        assert_int_equal(peer_recv(peers.fd[0], got, sizeof(got)), -1);
        assert_int_equal(harness_take_guest_warnings(), 1);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(not_negotiated); i++) {
        hdr_set(hdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, not_negotiated[i], 0, 1448, 34, 16);
        tx_add(d, q, buf, hdr, frame, sizeof(frame), 1, 200 + i);
        virtio_driver_kick(q);
        virtio_driver_run(d);
        assert_int_equal(used_token(q, NULL), 200 + i);
        assert_int_equal(peer_recv(peers.fd[0], got, sizeof(got)), -1);
        assert_int_equal(harness_take_guest_warnings(), 1);
    }
    /* Without VIRTIO_NET_F_CSUM no checksum request either. */
    {
        g_autoptr(HarnessEnv) e2 = harness_env_new("net", 0);
        autopeers Peers p2 = { .n = 0 };
        g_autoptr(VirtioDriver) d2 = net_ready(e2, &p2, 1, NULL, 0);
        VirtioDriverQueue *q2 = virtio_driver_queue(d2, 1);
        uint64_t b2 = virtio_driver_alloc(d2, 2048, 64);

        hdr_set(hdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 16);
        tx_add(d2, q2, b2, hdr, frame, sizeof(frame), 1, 1);
        virtio_driver_kick(q2);
        virtio_driver_run(d2);
        assert_int_equal(used_token(q2, NULL), 1);
        assert_int_equal(peer_recv(p2.fd[0], got, sizeof(got)), -1);
        assert_int_equal(harness_take_guest_warnings(), 1);
    }
    /* The queue still works. */
    hdr_set(hdr, 0, 0, 0, 0, 0, 0);
    tx_add(d, q, buf, hdr, frame, sizeof(frame), 1, 300);
    virtio_driver_kick(q);
    virtio_driver_run(d);
    assert_int_equal(peer_recv(peers.fd[0], got, sizeof(got)), HDR + sizeof(frame));
    assert_int_equal(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

/* Receive without mergeable buffers: one chain per frame, num_buffers 1. */
static void test_rx(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    g_autoptr(VirtioDriver) d = net_ready(e, &peers, 1, NULL, F(MAC) | F(STATUS));
    VirtioDriverQueue *q = virtio_driver_queue(d, 0);
    uint8_t frame[1514], hdr[HDR];
    uint64_t base;
    uint32_t len;

    /* Frames before any buffer wait in the backend; the kick of new buffers brings them. */
    for (unsigned i = 0; i < 3; i++) {
        make_frame(frame, dev_mac, 100 + i, i);
        peer_send(peers.fd[0], NULL, frame, 100 + i);
    }
    virtio_driver_run(d);
    assert_int_equal(virtio_driver_queue_inflight(q), 0);
    base = rx_fill(d, q, 4, 1526);
    virtio_driver_run(d);
    for (unsigned i = 0; i < 3; i++) {
        const uint8_t *p;

        assert_int_equal(used_token(q, &len), i + 1);
        assert_int_equal(len, HDR + 100 + i);
        p = virtio_driver_mem(d, base + 1526ULL * i, len);
        make_frame(frame, dev_mac, 100 + i, i);
        assert_int_equal(vireo_le_load(p + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 1);
        assert_int_equal(p[VIRTIO_NET_HDR_FLAGS], 0);
        assert_int_equal(p[VIRTIO_NET_HDR_GSO_TYPE], 0);
        assert_memory_equal(p + HDR, frame, 100 + i);
    }
    assert_null(virtio_driver_get_used(q, NULL));
    assert_int_equal(virtio_driver_queue_interrupts(q), 1);

    /* Without GUEST_CSUM the device clears DATA_VALID and drops partial checksums. */
    make_frame(frame, dev_mac, 200, 4);
    hdr_set(hdr, VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0, 0);
    peer_send(peers.fd[0], hdr, frame, 200);
    hdr_set(hdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 16);
    peer_send(peers.fd[0], hdr, frame, 200);
    /* GSO was not negotiated either. */
    hdr_set(hdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 54, 1448, 34, 16);
    peer_send(peers.fd[0], hdr, frame, 200);
    /* A frame larger than the buffer is dropped, not cut. */
    make_frame(frame, dev_mac, 1514, 5);
    {
        g_autofree uint8_t *big = g_malloc0(3000);

        make_frame(big, dev_mac, 3000, 6);
        peer_send(peers.fd[0], NULL, big, 3000);
    }
    /* A runt: shorter than an Ethernet header. */
    peer_send(peers.fd[0], NULL, frame, 10);
    peer_send(peers.fd[0], NULL, frame, 1514);
    virtio_driver_run(d);
    assert_int_equal(used_token(q, &len), 4);
    assert_int_equal(len, HDR + 200);
    assert_int_equal(((uint8_t *)virtio_driver_mem(d, base + 3 * 1526, 1))[0], 0);
    /* The last frame waits for a buffer. */
    assert_null(virtio_driver_get_used(q, NULL));
    base = rx_fill(d, q, 1, 1526);
    virtio_driver_run(d);
    assert_int_equal(used_token(q, &len), 1);
    assert_int_equal(len, HDR + 1514);
    assert_memory_equal((uint8_t *)virtio_driver_mem(d, base, len) + HDR, frame, 1514);
    assert_int_equal(harness_take_guest_warnings(), 0);
}

/* Reads the frame spread over mergeable buffers of @size at @base, tokens from @first. */
static uint32_t rx_merged(VirtioDriver *d, VirtioDriverQueue *q, uint64_t base, uint32_t size,
                          unsigned nbufs, uint8_t *out, size_t max)
{
    uint32_t total = 0, len;
    unsigned n = 0;

    do {
        unsigned token = used_token(q, &len);
        const uint8_t *p = virtio_driver_mem(d, base + (uint64_t)(token - 1) * size, size);

        if (n == 0)
            n = vireo_le_load(p + VIRTIO_NET_HDR_NUM_BUFFERS, 2);
        assert_true(total + len <= max);
        memcpy(out + total, p, len);
        total += len;
        assert_true(nbufs-- > 0);
    } while (--n);
    return total;
}

static void test_rx_mergeable(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    /* With GUEST_TSO4, as Linux asks: frames up to 64 KiB. */
    g_autoptr(VirtioDriver) d = net_ready(e, &peers, 1, NULL,
                                          F(MRG_RXBUF) | F(GUEST_CSUM) | F(GUEST_TSO4) |
                                          VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));
    VirtioDriverQueue *q = virtio_driver_queue(d, 0);
    g_autofree uint8_t *frame = g_malloc(65536);
    g_autofree uint8_t *got = g_malloc(HDR + 65536);
    uint8_t hdr[HDR];
    uint64_t base = virtio_driver_alloc(d, 260 * 1024, 64);
    uint32_t total;

    for (unsigned i = 0; i < 200; i++)
        rx_add(q, base + 1024ULL * i, 1024, i + 1);
    virtio_driver_kick(q);

    /* 64 bytes: one buffer. 3000: three (12 + 3000 = 1024 + 1024 + 964). */
    make_frame(frame, dev_mac, 64, 1);
    peer_send(peers.fd[0], NULL, frame, 64);
    make_frame(frame + 100, dev_mac, 3000, 2);
    peer_send(peers.fd[0], NULL, frame + 100, 3000);
    virtio_driver_run(d);
    total = rx_merged(d, q, base, 1024, 1, got, HDR + 65536);
    assert_int_equal(total, HDR + 64);
    assert_int_equal(vireo_le_load(got + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 1);
    assert_memory_equal(got + HDR, frame, 64);
    total = rx_merged(d, q, base, 1024, 3, got, HDR + 65536);
    assert_int_equal(total, HDR + 3000);
    assert_int_equal(vireo_le_load(got + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 3);
    assert_memory_equal(got + HDR, frame + 100, 3000);

    /* A 64 KiB TSO frame with a partial checksum: 64 buffers, header as the backend wrote it. */
    make_frame(frame, dev_mac, 65000, 3);
    hdr_set(hdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 66, 1448, 34, 16);
    peer_send(peers.fd[0], hdr, frame, 65000);
    virtio_driver_run(d);
    total = rx_merged(d, q, base, 1024, 64, got, HDR + 65536);
    assert_int_equal(total, HDR + 65000);
    assert_int_equal(vireo_le_load(got + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 64);
    assert_int_equal(got[VIRTIO_NET_HDR_FLAGS], VIRTIO_NET_HDR_F_NEEDS_CSUM);
    assert_int_equal(got[VIRTIO_NET_HDR_GSO_TYPE], VIRTIO_NET_HDR_GSO_TCPV4);
    assert_int_equal(vireo_le_load(got + VIRTIO_NET_HDR_GSO_SIZE, 2), 1448);
    assert_memory_equal(got + HDR, frame, 65000);

    /*
     * 132 buffers left: two more 64 KiB frames fit, a third does not. It
     * waits whole in the host buffer (the fd unwatched, kicks on) until
     * the driver adds buffers, then arrives, copied.
     */
    for (unsigned i = 0; i < 3; i++) {
        make_frame(frame, dev_mac, 65000, 10 + i);
        peer_send(peers.fd[0], hdr, frame, 65000);
    }
    virtio_driver_run(d);
    for (unsigned i = 0; i < 2; i++) {
        make_frame(frame, dev_mac, 65000, 10 + i);
        assert_int_equal(rx_merged(d, q, base, 1024, 64, got, HDR + 65536), HDR + 65000);
        assert_memory_equal(got + HDR, frame, 65000);
    }
    assert_null(virtio_driver_get_used(q, NULL));
    assert_int_equal(virtio_driver_queue_inflight(q), 4);
    for (unsigned i = 200; i < 260; i++)
        rx_add(q, base + 1024ULL * i, 1024, i + 1);
    assert_true(virtio_driver_kick(q));
    virtio_driver_run(d);
    make_frame(frame, dev_mac, 65000, 12);
    assert_int_equal(rx_merged(d, q, base, 1024, 64, got, HDR + 65536), HDR + 65000);
    assert_int_equal(vireo_le_load(got + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 64);
    assert_int_equal(got[VIRTIO_NET_HDR_GSO_TYPE], VIRTIO_NET_HDR_GSO_TCPV4);
    assert_memory_equal(got + HDR, frame, 65000);
    assert_null(virtio_driver_get_used(q, NULL));

    /* The driver turns TSO off: GSO frames from the backend are dropped now. */
    {
        g_autoptr(HarnessEnv) e2 = harness_env_new("net", 0);
        autopeers Peers p2 = { .n = 0 };
        g_autoptr(VirtioDriver) d2 = net_ready(e2, &p2, 1, NULL,
                                               F(MRG_RXBUF) | F(GUEST_CSUM) | F(GUEST_TSO4) |
                                               F(CTRL_VQ) | F(CTRL_GUEST_OFFLOADS));
        VirtioDriverQueue *q2 = virtio_driver_queue(d2, 0);
        uint64_t only_csum = GUINT64_TO_LE(F(GUEST_CSUM)), tso6 = GUINT64_TO_LE(F(GUEST_TSO6));

        rx_fill(d2, q2, 100, 2048);
        assert_int_equal(ctrl_cmd(d2, VIRTIO_NET_CTRL_GUEST_OFFLOADS,
                                  VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &only_csum, 8),
                         VIRTIO_NET_OK);
        /* Not negotiated: refused. */
        assert_int_equal(ctrl_cmd(d2, VIRTIO_NET_CTRL_GUEST_OFFLOADS,
                                  VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &tso6, 8), VIRTIO_NET_ERR);
        peer_send(p2.fd[0], hdr, frame, 65000);
        hdr_set(hdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 16);
        peer_send(p2.fd[0], hdr, frame, 1000);
        virtio_driver_run(d2);
        assert_int_equal(used_token(q2, &total), 1);
        assert_int_equal(total, HDR + 1000);
        assert_null(virtio_driver_get_used(q2, NULL));
    }
}

/*
 * Jumbo frames without GSO into small mergeable buffers: what does not fit
 * the chains popped ahead is copied into more, or waits for them.
 */
static void test_rx_jumbo(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    g_autoptr(VirtioDriver) d = net_ready(e, &peers, 1, NULL, F(MRG_RXBUF));
    VirtioDriverQueue *q = virtio_driver_queue(d, 0);
    g_autofree uint8_t *frame = g_malloc(9014);
    g_autofree uint8_t *got = g_malloc(HDR + 9014);
    uint64_t base = virtio_driver_alloc(d, 40 * 512, 64);
    unsigned posted = 0;

#define POST(n) do {                                                    \
        for (unsigned i_ = 0; i_ < (n); i_++, posted++)                 \
            rx_add(q, base + 512ULL * posted, 512, posted + 1);         \
        virtio_driver_kick(q);                                          \
    } while (0)

    POST(20);
    make_frame(frame, dev_mac, 9014, 7);
    peer_send(peers.fd[0], NULL, frame, 9014);
    virtio_driver_run(d);
    assert_int_equal(rx_merged(d, q, base, 512, 18, got, HDR + 9014), HDR + 9014);
    assert_int_equal(vireo_le_load(got + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 18);
    assert_memory_equal(got + HDR, frame, 9014);
    /* Two buffers left, less than a full-sized frame: the next one is not even read. */
    make_frame(frame, dev_mac, 9014, 8);
    peer_send(peers.fd[0], NULL, frame, 9014);
    virtio_driver_run(d);
    assert_null(virtio_driver_get_used(q, NULL));
    /* Five: read, but it needs 18; it waits in the host buffer. */
    POST(3);
    virtio_driver_run(d);
    assert_null(virtio_driver_get_used(q, NULL));
    POST(13);
    virtio_driver_run(d);
    assert_int_equal(rx_merged(d, q, base, 512, 18, got, HDR + 9014), HDR + 9014);
    assert_memory_equal(got + HDR, frame, 9014);
    make_frame(frame, dev_mac, 600, 9);
    peer_send(peers.fd[0], NULL, frame, 600);
    POST(3);
    virtio_driver_run(d);
    assert_int_equal(rx_merged(d, q, base, 512, 2, got, HDR + 9014), HDR + 600);
    assert_memory_equal(got + HDR, frame, 600);
#undef POST

    /* 64-byte buffers: 64 of them (all the device takes ahead) cannot hold it: dropped. */
    {
        g_autoptr(HarnessEnv) e2 = harness_env_new("net", 0);
        autopeers Peers p2 = { .n = 0 };
        g_autoptr(VirtioDriver) d2 = net_ready(e2, &p2, 1, NULL, F(MRG_RXBUF));
        VirtioDriverQueue *q2 = virtio_driver_queue(d2, 0);
        uint64_t b2 = rx_fill(d2, q2, 100, 64);

        make_frame(frame, dev_mac, 9014, 1);
        peer_send(p2.fd[0], NULL, frame, 9014);
        make_frame(frame, dev_mac, 300, 2);
        peer_send(p2.fd[0], NULL, frame, 300);
        virtio_driver_run(d2);
        assert_int_equal(rx_merged(d2, q2, b2, 64, 5, got, HDR + 9014), HDR + 300);
        assert_memory_equal(got + HDR, frame, 300);
        assert_null(virtio_driver_get_used(q2, NULL));
    }
}

/* Thousands of frames each way in every ring and interrupt mode. */
static void test_many(void **state)
{
    static const uint64_t features[] = {
        0, F(MRG_RXBUF), VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) | F(MRG_RXBUF),
        VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX),
    };
    static const VirtioDriverIrqMode modes[] = {
        VIRTIO_DRIVER_MSIX, VIRTIO_DRIVER_MSIX_SHARED, VIRTIO_DRIVER_INTX,
    };

    for (size_t fi = 0; fi < G_N_ELEMENTS(features); fi++) {
        for (size_t mi = 0; mi < G_N_ELEMENTS(modes); mi++) {
            g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
            autopeers Peers peers = { .n = 0 };
            g_autoptr(VirtioDriver) d = net_new(e, &peers, 1, NULL, modes[mi]);
            VirtioDriverQueue *rq, *tq;
            uint64_t rbase, tbase;
            uint8_t frame[1514], got[HDR + 1514], hdr[HDR] = { 0 };
            unsigned sent = 0, received = 0, tx_done = 0;
            const unsigned total = 2000;

            net_start(d, features[fi]);
            rq = virtio_driver_queue(d, 0);
            tq = virtio_driver_queue(d, 1);
            rbase = virtio_driver_alloc(d, 256 * 2048ULL, 64);
            tbase = virtio_driver_alloc(d, 256 * 2048ULL, 64);
            for (unsigned i = 0; i < 256; i++)
                rx_add(rq, rbase + 2048ULL * i, 2048, i + 1);
            virtio_driver_kick(rq);
            while (received < total || tx_done < total) {
                /* A burst each way, then the loop, then the guest takes what was used. */
                for (unsigned k = 0; k < 37 && sent < total; k++, sent++) {
                    size_t len = 60 + sent * 131 % 1454;

                    make_frame(frame, dev_mac, len, sent);
                    peer_send(peers.fd[0], NULL, frame, len);
                }
                for (unsigned k = 0; k < 41 && virtio_driver_queue_inflight(tq) < 200 &&
                     tx_done + virtio_driver_queue_inflight(tq) < total; k++) {
                    unsigned n = tx_done + virtio_driver_queue_inflight(tq);
                    size_t len = 60 + n * 97 % 1454;

                    make_frame(frame, other_mac, len, n);
                    tx_add(d, tq, tbase + 2048ULL * (n % 256), hdr, frame, len, 1 + n % 3, n + 1);
                }
                virtio_driver_kick(tq);
                virtio_driver_run(d);
                for (uint32_t len; virtio_driver_get_used(tq, &len); tx_done++) {
                    size_t want = 60 + tx_done * 97 % 1454;

                    make_frame(frame, other_mac, want, tx_done);
                    assert_int_equal(peer_recv(peers.fd[0], got, sizeof(got)), HDR + want);
                    assert_memory_equal(got + HDR, frame, want);
                }
                for (uint32_t len; ; received++) {
                    void *t = virtio_driver_get_used(rq, &len);
                    unsigned slot;
                    size_t want = 60 + received * 131 % 1454;

                    if (!t)
                        break;
                    slot = GPOINTER_TO_UINT(t) - 1;
                    make_frame(frame, dev_mac, want, received);
                    assert_int_equal(len, HDR + want);
                    assert_memory_equal((uint8_t *)virtio_driver_mem(d, rbase + 2048ULL * slot,
                                                                     len) + HDR, frame, want);
                    /* The buffer goes straight back, as Linux refills. */
                    rx_add(rq, rbase + 2048ULL * slot, 2048, slot + 1);
                }
                virtio_driver_kick(rq);
            }
            assert_int_equal(peer_recv(peers.fd[0], got, sizeof(got)), -1);
            assert_true(virtio_driver_queue_interrupts(rq) >= 1);
            assert_true(virtio_driver_queue_interrupts(tq) >= 1);
            assert_int_equal(harness_take_guest_warnings(), 0);
        }
    }
}

/* The backend full: EAGAIN keeps the chain, EPOLLOUT resumes, nothing is lost or reordered. */
static void test_tx_backpressure(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    g_autoptr(VirtioDriver) d = NULL;
    uint8_t frame[1514], got[HDR + 1514], hdr[HDR] = { 0 };
    unsigned n = 0, seen = 0, used = 0, rounds = 0;
    VirtioDriverQueue *q;
    uint64_t buf;

    /* The device's socket takes a few frames, then says EAGAIN until the host reads. */
    backend_sndbuf = 16384;
    d = net_ready(e, &peers, 1, NULL, VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));
    backend_sndbuf = 0;
    q = virtio_driver_queue(d, 1);
    buf = virtio_driver_alloc(d, 256 * 1600ULL, 64);
    for (; n < 100; n++) {
        make_frame(frame, other_mac, 1514, n);
        tx_add(d, q, buf + 1600ULL * n, hdr, frame, 1514, 1, n + 1);
    }
    virtio_driver_kick(q);
    virtio_driver_run(d);
    while (virtio_driver_get_used(q, NULL))
        used++;
    assert_true(used > 0 && used < 100);
    /* Kicks are off while the device waits for the backend; a new request waits too. */
    make_frame(frame, other_mac, 1514, n);
    tx_add(d, q, buf + 1600ULL * n, hdr, frame, 1514, 1, n + 1);
    n++;
    assert_false(virtio_driver_kick_prepare(q));
    while (seen < n) {
        ssize_t r;

        assert_true(++rounds < 1000);
        while ((r = peer_recv(peers.fd[0], got, sizeof(got))) > 0) {
            make_frame(frame, other_mac, 1514, seen);
            assert_int_equal(r, HDR + 1514);
            assert_memory_equal(got + HDR, frame, 1514);
            seen++;
        }
        virtio_driver_run(d);
        while (virtio_driver_get_used(q, NULL))
            used++;
    }
    assert_int_equal(used, n);
    /* Caught up: kicks are on again. */
    make_frame(frame, other_mac, 100, 0);
    tx_add(d, q, buf, hdr, frame, 100, 1, 1);
    assert_true(virtio_driver_kick(q));
    virtio_driver_run(d);
    assert_int_equal(used_token(q, NULL), 1);
    assert_int_equal(peer_recv(peers.fd[0], got, sizeof(got)), HDR + 100);
}

static void test_link(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    g_autoptr(VirtioDriver) d = net_ready(e, &peers, 1, NULL, F(STATUS));
    VirtioDriverQueue *rq = virtio_driver_queue(d, 0), *tq = virtio_driver_queue(d, 1);
    uint64_t buf = virtio_driver_alloc(d, 2048, 64);
    uint8_t frame[100], got[256], hdr[HDR] = { 0 };
    uint16_t status;

    assert_true(virtio_net_get_link(virtio_driver_device(d)));
    virtio_net_set_link(virtio_driver_device(d), FALSE);
    virtio_driver_run(d);
    assert_int_equal(virtio_driver_config_interrupts(d), 1);
    virtio_driver_config_read(d, VIRTIO_NET_CFG_STATUS, &status, 2);
    assert_int_equal(status, 0);
    assert_false(virtio_net_get_link(virtio_driver_device(d)));
    /* Down: transmitted frames go nowhere, received ones wait in the backend. */
    make_frame(frame, other_mac, sizeof(frame), 1);
    tx_add(d, tq, buf, hdr, frame, sizeof(frame), 1, 1);
    virtio_driver_kick(tq);
    rx_fill(d, rq, 2, 1526);
    peer_send(peers.fd[0], NULL, frame, sizeof(frame));
    virtio_driver_run(d);
    assert_int_equal(used_token(tq, NULL), 1);
    assert_int_equal(peer_recv(peers.fd[0], got, sizeof(got)), -1);
    assert_null(virtio_driver_get_used(rq, NULL));
    /* Up again: the waiting frame arrives. Setting it twice changes nothing. */
    virtio_net_set_link(virtio_driver_device(d), TRUE);
    virtio_net_set_link(virtio_driver_device(d), TRUE);
    virtio_driver_run(d);
    assert_int_equal(virtio_driver_config_interrupts(d), 2);
    virtio_driver_config_read(d, VIRTIO_NET_CFG_STATUS, &status, 2);
    assert_int_equal(status, VIRTIO_NET_S_LINK_UP);
    assert_int_equal(used_token(rq, NULL), 1);

    /* A driver without VIRTIO_NET_F_STATUS gets no interrupt for it. */
    {
        g_autoptr(HarnessEnv) e2 = harness_env_new("net", 0);
        autopeers Peers p2 = { .n = 0 };
        g_autoptr(VirtioDriver) d2 = net_ready(e2, &p2, 1, NULL, 0);

        virtio_net_set_link(virtio_driver_device(d2), FALSE);
        virtio_driver_run(d2);
        assert_int_equal(virtio_driver_config_interrupts(d2), 0);
    }
}

static void test_ctrl(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    g_autoptr(VirtioDriver) d = net_ready(e, &peers, 1, NULL, LINUX_FEATURES);
    static const uint8_t uni[2][6] = {
        { 0x52, 0x54, 0x00, 0x01, 0x01, 0x01 }, { 0x52, 0x54, 0x00, 0x02, 0x02, 0x02 },
    };
    static const uint8_t multi[1][6] = { { 0x33, 0x33, 0x00, 0x00, 0x00, 0x01 } };
    static const uint8_t new_mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
    uint8_t many[80][6], mac[6];
    uint16_t vid;
    uint8_t zero = 0;

    /* Filtering starts promiscuous (the driver may not know the commands). */
    assert_true(delivered(d, peers.fd[0], other_mac, 0));
    /* What Linux sends when the interface comes up. */
    assert_int_equal(ctrl_rx(d, VIRTIO_NET_CTRL_RX_PROMISC, 0), VIRTIO_NET_OK);
    assert_int_equal(ctrl_rx(d, VIRTIO_NET_CTRL_RX_ALLMULTI, 0), VIRTIO_NET_OK);
    assert_int_equal(ctrl_mac_table(d, NULL, 0, multi, 1), VIRTIO_NET_OK);
    assert_true(delivered(d, peers.fd[0], dev_mac, 0));
    assert_true(delivered(d, peers.fd[0], bcast_mac, 0));
    assert_true(delivered(d, peers.fd[0], multi[0], 0));
    assert_false(delivered(d, peers.fd[0], other_mac, 0));
    assert_false(delivered(d, peers.fd[0], mcast_mac, 0));
    /* Extra unicast addresses; ALLMULTI; NOBCAST; ALLUNI; NOUNI; NOMULTI. */
    assert_int_equal(ctrl_mac_table(d, uni, 2, multi, 1), VIRTIO_NET_OK);
    assert_true(delivered(d, peers.fd[0], uni[1], 0));
    assert_int_equal(ctrl_rx(d, VIRTIO_NET_CTRL_RX_ALLMULTI, 1), VIRTIO_NET_OK);
    assert_true(delivered(d, peers.fd[0], mcast_mac, 0));
    assert_int_equal(ctrl_rx(d, VIRTIO_NET_CTRL_RX_NOMULTI, 1), VIRTIO_NET_OK);
    assert_false(delivered(d, peers.fd[0], mcast_mac, 0));
    assert_int_equal(ctrl_rx(d, VIRTIO_NET_CTRL_RX_NOMULTI, 0), VIRTIO_NET_OK);
    assert_int_equal(ctrl_rx(d, VIRTIO_NET_CTRL_RX_ALLUNI, 1), VIRTIO_NET_OK);
    assert_true(delivered(d, peers.fd[0], other_mac, 0));
    assert_int_equal(ctrl_rx(d, VIRTIO_NET_CTRL_RX_ALLUNI, 0), VIRTIO_NET_OK);
    assert_int_equal(ctrl_rx(d, VIRTIO_NET_CTRL_RX_NOUNI, 1), VIRTIO_NET_OK);
    assert_false(delivered(d, peers.fd[0], dev_mac, 0));
    assert_int_equal(ctrl_rx(d, VIRTIO_NET_CTRL_RX_NOUNI, 0), VIRTIO_NET_OK);
    /* (delivered() takes its buffer back with a broadcast, so NOBCAST is checked by hand.) */
    assert_int_equal(ctrl_rx(d, VIRTIO_NET_CTRL_RX_NOBCAST, 1), VIRTIO_NET_OK);
    {
        VirtioDriverQueue *q = virtio_driver_queue(d, 0);
        uint8_t frame[64];

        rx_fill(d, q, 1, 2048);
        make_frame(frame, bcast_mac, 64, 0);
        peer_send(peers.fd[0], NULL, frame, 64);
        virtio_driver_run(d);
        assert_null(virtio_driver_get_used(q, NULL));
        assert_int_equal(ctrl_rx(d, VIRTIO_NET_CTRL_RX_NOBCAST, 0), VIRTIO_NET_OK);
        peer_send(peers.fd[0], NULL, frame, 64);
        virtio_driver_run(d);
        assert_int_equal(used_token(q, NULL), 1);
    }
    /* Too many entries: that kind passes unfiltered, as QEMU does. */
    memset(many, 0x02, sizeof(many));
    assert_int_equal(ctrl_mac_table(d, NULL, 0, (const uint8_t (*)[6])many, 80), VIRTIO_NET_OK);
    assert_true(delivered(d, peers.fd[0], mcast_mac, 0));
    assert_false(delivered(d, peers.fd[0], other_mac, 0));
    assert_int_equal(ctrl_mac_table(d, (const uint8_t (*)[6])many, 80, NULL, 0), VIRTIO_NET_OK);
    assert_true(delivered(d, peers.fd[0], other_mac, 0));
    assert_int_equal(ctrl_mac_table(d, NULL, 0, NULL, 0), VIRTIO_NET_OK);

    /* VLAN filter: tagged frames only for added VLANs. */
    assert_false(delivered(d, peers.fd[0], dev_mac, 5));
    vid = GUINT16_TO_LE(5);
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, &vid, 2),
                     VIRTIO_NET_OK);
    assert_true(delivered(d, peers.fd[0], dev_mac, 5));
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_DEL, &vid, 2),
                     VIRTIO_NET_OK);
    assert_false(delivered(d, peers.fd[0], dev_mac, 5));
    vid = GUINT16_TO_LE(4096);
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, &vid, 2),
                     VIRTIO_NET_ERR);

    /* A new address: the configuration shows it and the filter follows. */
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, new_mac, 6),
                     VIRTIO_NET_OK);
    virtio_driver_config_read(d, VIRTIO_NET_CFG_MAC, mac, 6);
    assert_memory_equal(mac, new_mac, 6);
    assert_true(delivered(d, peers.fd[0], new_mac, 0));
    assert_false(delivered(d, peers.fd[0], dev_mac, 0));

    /* Malformed or unknown commands: VIRTIO_NET_ERR, nothing changes. */
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, NULL, 0),
                     VIRTIO_NET_ERR);
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_RX, 9, &zero, 1), VIRTIO_NET_ERR);
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, new_mac, 5),
                     VIRTIO_NET_ERR);
    {
        /* Table lengths that do not add up, and an entry count near 2^32. */
        uint8_t t[16] = { 1, 0, 0, 0 };

        assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, t, 16),
                         VIRTIO_NET_ERR);
        vireo_le_store(t, 4, 0xffffffffu);
        assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, t, 16),
                         VIRTIO_NET_ERR);
    }
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, NULL, 0),
                     VIRTIO_NET_ERR);
    assert_int_equal(ctrl_cmd(d, 77, 0, NULL, 0), VIRTIO_NET_ERR);
    /* MQ was not offered with one pair. */
    vid = GUINT16_TO_LE(1);
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &vid, 2),
                     VIRTIO_NET_ERR);
    assert_true(delivered(d, peers.fd[0], new_mac, 0));

    /* A command without room for the ack, or without class and command: back unused. */
    {
        VirtioDriverQueue *q = virtio_driver_queue(d, 2);
        uint64_t b = virtio_driver_alloc(d, 16, 8);
        uint32_t len = 9;

        assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ b, 3 }, 1, NULL, 0,
                                      GUINT_TO_POINTER(5)) >= 0);
        assert_true(virtio_driver_add(q, &(VirtioDriverBuf){ b, 1 }, 1,
                                      &(VirtioDriverBuf){ b + 8, 1 }, 1,
                                      GUINT_TO_POINTER(6)) >= 0);
        virtio_driver_kick(q);
        virtio_driver_run(d);
        assert_int_equal(used_token(q, &len), 5);
        assert_int_equal(len, 0);
        assert_int_equal(used_token(q, &len), 6);
        assert_int_equal(len, 0);
        assert_int_equal(harness_take_guest_warnings(), 2);
    }
    /* A reset forgets it all: promiscuous again, the configured address back. */
    net_start(d, LINUX_FEATURES);
    virtio_driver_config_read(d, VIRTIO_NET_CFG_MAC, mac, 6);
    assert_memory_equal(mac, dev_mac, 6);
    assert_true(delivered(d, peers.fd[0], other_mac, 0));
}

static void test_multiqueue(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    g_autoptr(VirtioDriver) d = net_ready(e, &peers, 3, NULL, LINUX_FEATURES);
    uint8_t frame[200], got[512], hdr[HDR] = { 0 };
    uint16_t pairs;
    uint64_t tbuf = virtio_driver_alloc(d, 3 * 512, 64);

    assert_int_equal(virtio_driver_common_read(d, VIRTIO_PCI_COMMON_NUMQ, 2), 7);
    assert_int_equal(net_ctrl_queue(d), 6);
    for (unsigned i = 0; i < 3; i++)
        rx_fill(d, virtio_driver_queue(d, 2 * i), 4, 1526);
    /* One pair until the driver says otherwise: pair 2's frames wait. */
    make_frame(frame, dev_mac, sizeof(frame), 2);
    peer_send(peers.fd[2], NULL, frame, sizeof(frame));
    virtio_driver_run(d);
    assert_null(virtio_driver_get_used(virtio_driver_queue(d, 4), NULL));
    pairs = GUINT16_TO_LE(3);
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2),
                     VIRTIO_NET_OK);
    assert_int_equal(used_token(virtio_driver_queue(d, 4), NULL), 1);
    /* Each pair has its own fd, both ways. */
    for (unsigned i = 0; i < 3; i++) {
        VirtioDriverQueue *tq = virtio_driver_queue(d, 2 * i + 1);

        make_frame(frame, dev_mac, sizeof(frame), 10 + i);
        peer_send(peers.fd[i], NULL, frame, sizeof(frame));
        make_frame(frame, other_mac, sizeof(frame), 20 + i);
        tx_add(d, tq, tbuf + 512 * i, hdr, frame, sizeof(frame), 1, 1);
        virtio_driver_kick(tq);
    }
    virtio_driver_run(d);
    for (unsigned i = 0; i < 3; i++) {
        VirtioDriverQueue *rq = virtio_driver_queue(d, 2 * i);
        uint32_t len;

        assert_non_null(virtio_driver_get_used(rq, &len));
        assert_int_equal(len, HDR + sizeof(frame));
        assert_int_equal(peer_recv(peers.fd[i], got, sizeof(got)), HDR + sizeof(frame));
        make_frame(frame, other_mac, sizeof(frame), 20 + i);
        assert_memory_equal(got + HDR, frame, sizeof(frame));
        assert_true(virtio_driver_queue_interrupts(rq) >= 1);
    }
    /* Out of range: refused. Back to one pair: pair 1 stops. */
    pairs = GUINT16_TO_LE(4);
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2),
                     VIRTIO_NET_ERR);
    pairs = 0;
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2),
                     VIRTIO_NET_ERR);
    pairs = GUINT16_TO_LE(1);
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2),
                     VIRTIO_NET_OK);
    peer_send(peers.fd[1], NULL, frame, sizeof(frame));
    virtio_driver_run(d);
    assert_null(virtio_driver_get_used(virtio_driver_queue(d, 2), NULL));

    /* Without MQ negotiated the control queue is queue 2 and queues 3-5 do nothing. */
    net_start(d, LINUX_FEATURES & ~F(MQ));
    assert_int_equal(net_ctrl_queue(d), 2);
    assert_int_equal(ctrl_rx(d, VIRTIO_NET_CTRL_RX_PROMISC, 1), VIRTIO_NET_OK);
}

/* Hostile rings: each breaks only what it must, nothing crashes or leaks. */
static void test_hostile(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    /* No control queue: queue 2 is never set up. */
    g_autoptr(VirtioDriver) d = net_ready(e, &peers, 1, NULL, F(MRG_RXBUF));
    VirtioDriverQueue *rq = virtio_driver_queue(d, 0), *tq = virtio_driver_queue(d, 1);
    uint64_t buf = virtio_driver_alloc(d, 4096, 64);
    uint8_t frame[100], got[256], hdr[HDR] = { 0 };
    uint8_t *desc;
    int head;

    /* Zero-length receive buffers and one too small for the header: returned with 0. */
    assert_true(virtio_driver_add(rq, NULL, 0, &(VirtioDriverBuf){ buf, 0 }, 1,
                                  GUINT_TO_POINTER(1)) >= 0);
    assert_true(virtio_driver_add(rq, NULL, 0, &(VirtioDriverBuf){ buf, 11 }, 1,
                                  GUINT_TO_POINTER(2)) >= 0);
    assert_true(virtio_driver_add(rq, &(VirtioDriverBuf){ buf, 64 }, 1, NULL, 0,
                                  GUINT_TO_POINTER(3)) >= 0);
    rx_add(rq, buf + 2048, 2048, 4);
    virtio_driver_kick(rq);
    make_frame(frame, dev_mac, sizeof(frame), 0);
    peer_send(peers.fd[0], NULL, frame, sizeof(frame));
    virtio_driver_run(d);
    for (unsigned t = 1; t <= 3; t++) {
        uint32_t len = 99;

        assert_int_equal(used_token(rq, &len), t);
        assert_int_equal(len, 0);
    }
    assert_int_equal(used_token(rq, NULL), 4);
    assert_int_equal(harness_take_guest_warnings(), 3);
    /* Zero-length and header-only transmit chains: dropped. */
    assert_true(virtio_driver_add(tq, &(VirtioDriverBuf){ buf, 0 }, 1, NULL, 0,
                                  GUINT_TO_POINTER(1)) >= 0);
    assert_true(virtio_driver_add(tq, NULL, 0, &(VirtioDriverBuf){ buf, 100 }, 1,
                                  GUINT_TO_POINTER(2)) >= 0);
    virtio_driver_kick(tq);
    virtio_driver_run(d);
    assert_int_equal(used_token(tq, NULL), 1);
    assert_int_equal(used_token(tq, NULL), 2);
    assert_int_equal(peer_recv(peers.fd[0], got, sizeof(got)), -1);
    assert_int_equal(harness_take_guest_warnings(), 2);

    /* Queue indices out of range, kicks for queues never set up: nothing happens. */
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 999);
    assert_int_equal(virtio_driver_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    virtio_driver_mmio_write(d, virtio_driver_layout(d)->notify.addr + 4 * 999, 2, 999);
    virtio_driver_mmio_write(d, virtio_driver_layout(d)->notify.addr + 4 * 2, 2, 2);
    virtio_driver_mmio_write(d, virtio_driver_layout(d)->notify.addr + 4 * 2, 2, 0xffff);
    virtio_driver_run(d);
    harness_take_guest_warnings();
    assert_int_equal(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET, 0);

    /* A transmit chain that loops on itself: the queue breaks, the device needs a reset. */
    virtio_driver_queue_set_indirect(tq, FALSE);
    make_frame(frame, other_mac, sizeof(frame), 0);
    memcpy(virtio_driver_mem(d, buf, HDR), hdr, HDR);
    memcpy(virtio_driver_mem(d, buf + HDR, sizeof(frame)), frame, sizeof(frame));
    head = virtio_driver_add(tq, (VirtioDriverBuf[]){ { buf, HDR }, { buf + HDR, 100 } }, 2,
                             NULL, 0, GUINT_TO_POINTER(3));
    assert_true(head >= 0);
    desc = virtio_driver_mem(d, virtio_driver_queue_desc(tq) + 16ULL * head, 16);
    vireo_le_store(desc + 12, 2, VIRTQ_DESC_F_NEXT);
    vireo_le_store(desc + 14, 2, head);
    virtio_driver_kick(tq);
    virtio_driver_run(d);
    assert_true(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(virtio_driver_config_interrupts(d), 1);
    assert_null(virtio_driver_get_used(tq, NULL));
    assert_int_equal(peer_recv(peers.fd[0], got, sizeof(got)), -1);
    harness_take_guest_warnings();

    /* After a reset: a receive buffer outside guest RAM breaks the receive queue. */
    net_start(d, F(MRG_RXBUF));
    rq = virtio_driver_queue(d, 0);
    head = virtio_driver_add(rq, NULL, 0, &(VirtioDriverBuf){ buf, 2048 }, 1, GUINT_TO_POINTER(1));
    desc = virtio_driver_mem(d, virtio_driver_queue_desc(rq) + 16ULL * head, 16);
    vireo_le_store(desc, 8, 0x7fff0000000ULL);
    virtio_driver_kick(rq);
    peer_send(peers.fd[0], NULL, frame, sizeof(frame));
    virtio_driver_run(d);
    assert_true(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    assert_null(virtio_driver_get_used(rq, NULL));
    harness_take_guest_warnings();

    /* A driver that makes more available than the ring holds breaks it too (index overflow). */
    net_start(d, 0);
    rq = virtio_driver_queue(d, 0);
    vireo_le_store(virtio_driver_mem(d, virtio_driver_queue_avail(rq) + 2, 2), 2, 0x8000);
    virtio_driver_notify(rq);
    peer_send(peers.fd[0], NULL, frame, sizeof(frame));
    virtio_driver_run(d);
    assert_true(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    harness_take_guest_warnings();

    /*
     * A guest writing random values to the registers (mostly the common
     * configuration and the doorbells, so that queues come up on garbage
     * rings), random frames and headers from the host, resets and
     * save/load round trips: nothing crashes, and no chain is ever in
     * flight when the device is saved (virtq_save() asserts that).
     */
    {
        static const size_t lens[] = { 1, 2, 4 };
        g_autoptr(GRand) rand = g_rand_new_with_seed(0x7e7);
        Device *dev = virtio_driver_device(d);
        uint8_t junk[2048];

        net_start(d, LINUX_FEATURES);
        for (unsigned i = 0; i < 30000; i++) {
            unsigned op = g_rand_int_range(rand, 0, 1000);
            size_t len = lens[g_rand_int_range(rand, 0, G_N_ELEMENTS(lens))];
            uint64_t v = g_rand_int(rand), off;

            if (g_rand_boolean(rand))
                v &= 0x1f;
            switch (g_rand_int_range(rand, 0, 4)) {
            case 0: off = g_rand_int_range(rand, 0, VIRTIO_PCI_COMMON_SIZE); break;
            case 1: off = VIRTIO_PCI_NOTIFY_OFFSET + 4 * g_rand_int_range(rand, 0, 5); break;
            case 2: off = VIRTIO_PCI_DEVICE_OFFSET + g_rand_int_range(rand, 0, 16); break;
            default: off = g_rand_int_range(rand, 0, VIRTIO_PCI_REGS_BAR_SIZE); break;
            }
            off &= ~(uint64_t)(len - 1);
            if (op < 500) {
                harness_write(dev, PCI_BAR_OFFSET(VIRTIO_PCI_REGS_BAR) + off, len, v);
            } else if (op < 800) {
                harness_read(dev, PCI_BAR_OFFSET(VIRTIO_PCI_REGS_BAR) + off, len);
            } else if (op < 950) {
                size_t n = g_rand_int_range(rand, 0, sizeof(junk));

                for (size_t k = 0; k < n; k++)
                    junk[k] = g_rand_int_range(rand, 0, 8) ? (uint8_t)k : g_rand_int(rand);
                if (send(peers.fd[0], junk, n, MSG_DONTWAIT) < 0)
                    assert_true(errno == EAGAIN);
                /* Whatever the guest managed to send. */
                while (peer_recv(peers.fd[0], junk, sizeof(junk)) > 0)
                    ;
            } else if (op < 990) {
                harness_loop_run(e->loop);
            } else if (op < 995) {
                device_reset(dev);
            } else {
                g_autoptr(GBytes) st = NULL;
                g_autoptr(GError) err = NULL;

                harness_loop_run(e->loop);
                st = harness_save(dev);
                if (!harness_load(dev, st, &err))
                    fail_msg("iteration %u: reloading own state: %s", i, err->message);
            }
        }
        harness_loop_run(e->loop);
        harness_take_guest_warnings();
    }
}

static void test_state(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    g_autoptr(HarnessEnv) e2 = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    autopeers Peers peers2 = { .n = 0 };
    g_autoptr(VirtioDriver) d = NULL;
    g_autoptr(VirtioDriver) n = NULL;
    VirtioDriverQueue *rq, *tq;
    static const uint8_t new_mac[6] = { 0x52, 0x54, 0x00, 0x77, 0x77, 0x77 };
    static const HarnessPoke pokes[] = {
        { "net-link", 0, 2 },
        { "net-pairs", 0, 2 },                  /* one pair only */
        { "net-pairs", 0, 0 },
        { "net-rx-mode", 0, 0x40 },
        { "net-mac-overflow", 0, 4 },
        { "net-mac-unicast", 0, 9 },            /* more than the table holds */
        { "net-mac-table", 0, 7 },              /* not a multiple of 6 */
        { "net-guest-offloads", 7, 0x80 },      /* not negotiated */
        { "q1-size", 1, 0 },                   /* 256 -> 0 */
    };
    uint8_t frame[300], got[512], hdr[HDR] = { 0 };
    uint64_t base, tbuf;
    g_autofree char *be2 = NULL;
    g_autofree char *opts2 = NULL;
    unsigned got_tx = 0;

    backend_sndbuf = 8192;
    d = net_ready(e, &peers, 1, NULL, LINUX_FEATURES);
    backend_sndbuf = 0;
    rq = virtio_driver_queue(d, 0);
    tq = virtio_driver_queue(d, 1);
    tbuf = virtio_driver_alloc(d, 64 * 512, 64);

    /* Filters, address and VLAN set; three frames received; eight buffers left. */
    assert_int_equal(ctrl_rx(d, VIRTIO_NET_CTRL_RX_PROMISC, 0), VIRTIO_NET_OK);
    assert_int_equal(ctrl_cmd(d, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, new_mac, 6),
                     VIRTIO_NET_OK);
    base = rx_fill(d, rq, 11, 2048);
    for (unsigned i = 0; i < 3; i++) {
        make_frame(frame, new_mac, sizeof(frame), i);
        peer_send(peers.fd[0], NULL, frame, sizeof(frame));
    }
    virtio_driver_run(d);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(used_token(rq, NULL), i + 1);
    /* Transmit blocked on a full backend: chains wait in the ring. */
    for (unsigned i = 0; i < 40; i++) {
        make_frame(frame, other_mac, sizeof(frame), i);
        tx_add(d, tq, tbuf + 512 * i, hdr, frame, sizeof(frame), 1, i + 1);
    }
    virtio_driver_kick(tq);
    virtio_driver_run(d);
    while (virtio_driver_get_used(tq, NULL))
        got_tx++;
    assert_true(got_tx > 0 && got_tx < 40);
    harness_check_corrupt_state(virtio_driver_device(d), pokes, G_N_ELEMENTS(pokes), FALSE);

    /* On the destination: a new backend, the same filters and address, traffic goes on. */
    be2 = net_backend_opts(&peers2, 1);
    opts2 = g_strdup_printf("%s,mac=" MAC, be2);
    n = virtio_driver_migrate(d, e2, opts2);
    virtio_driver_run(n);
    rq = virtio_driver_queue(n, 0);
    tq = virtio_driver_queue(n, 1);
    /* The chains that were waiting go out of the new backend. */
    for (unsigned i = got_tx; i < 40; i++) {
        make_frame(frame, other_mac, sizeof(frame), i);
        assert_int_equal(peer_recv(peers2.fd[0], got, sizeof(got)), HDR + sizeof(frame));
        assert_memory_equal(got + HDR, frame, sizeof(frame));
        assert_non_null(virtio_driver_get_used(tq, NULL));
    }
    virtio_driver_config_read(n, VIRTIO_NET_CFG_MAC, got, 6);
    assert_memory_equal(got, new_mac, 6);
    make_frame(frame, dev_mac, sizeof(frame), 50);         /* filtered: not ours any more */
    peer_send(peers2.fd[0], NULL, frame, sizeof(frame));
    make_frame(frame, new_mac, sizeof(frame), 51);
    peer_send(peers2.fd[0], NULL, frame, sizeof(frame));
    virtio_driver_run(n);
    assert_int_equal(used_token(rq, NULL), 4);
    assert_memory_equal((uint8_t *)virtio_driver_mem(n, base + 3 * 2048, HDR + sizeof(frame)) + HDR,
                        frame, sizeof(frame));
    assert_null(virtio_driver_get_used(rq, NULL));
    /* Offloads came along: the GSO frame is taken. */
    hdr_set(hdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 54, 100, 34, 16);
    peer_send(peers2.fd[0], hdr, frame, sizeof(frame));
    virtio_driver_run(n);
    assert_int_equal(used_token(rq, NULL), 5);

    /* A destination whose backend has no vnet header cannot keep the offloads. */
    {
        g_autoptr(HarnessEnv) e3 = harness_env_new("net", 0);
        autopeers Peers p3 = { .n = 0 };
        g_autofree char *be = net_backend_opts(&p3, 1);
        g_autofree char *o3 = g_strdup_printf("%s,vnet-hdr=off", be);
        g_autoptr(GBytes) saved = harness_save(virtio_driver_device(n));
        g_autoptr(GError) err = NULL;
        Device *dst = harness_device_new(e3, NET, o3);

        assert_false(harness_load(dst, saved, &err));
        g_assert_error(err, VIREO_ERROR, VIREO_ERROR_INVALID_STATE);
        device_free(dst);
    }
}

static void test_options(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    g_autofree char *be = net_backend_opts(&peers, 1);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    int stream[2];
    const char *bad[] = {
        "", "mac=" MAC, "fd=999999", "fd=-1", "fd=abc", "tap=a/b", "tap=" "0123456789abcdefg",
        "tap=", "fds=", "fds=3::4",
    };
    const char *bad_with_fd[] = {
        "mac=01:00:00:00:00:01", "mac=00:00:00:00:00:00", "mac=52:54:00:12:34", "mac=zz:54:00:12:34:56",
        "queues=0", "queues=257", "queues=2", "queues=x", "vnet-hdr=maybe", "mtu=67", "mtu=65536",
        "speed=10", "tap=x",
    };

    assert_true(devnull >= 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, stream), 0);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        g_free(harness_device_new_fail(e, NET, bad[i], VIREO_ERROR_INVALID_ARGUMENT));
    for (size_t i = 0; i < G_N_ELEMENTS(bad_with_fd); i++) {
        g_autofree char *o = g_strdup_printf("%s,%s", be, bad_with_fd[i]);
        g_autofree char *msg = harness_device_new_fail(e, NET, o, VIREO_ERROR_INVALID_ARGUMENT);

        assert_non_null(strstr(msg, "virtio-net"));
    }
    /* Neither a tap nor a datagram socket; the same fd twice. */
    {
        g_autofree char *o1 = g_strdup_printf("fd=%d", devnull);
        g_autofree char *o2 = g_strdup_printf("fd=%d", stream[0]);
        g_autofree char *o3 = g_strdup_printf("fds=%s:%s", be + 3, be + 3);

        g_free(harness_device_new_fail(e, NET, o1, VIREO_ERROR_INVALID_ARGUMENT));
        g_free(harness_device_new_fail(e, NET, o2, VIREO_ERROR_INVALID_ARGUMENT));
        g_free(harness_device_new_fail(e, NET, o3, VIREO_ERROR_INVALID_ARGUMENT));
    }
    /* Every virtio device needs a loop and guest memory. */
    e->env.loop = NULL;
    g_free(harness_device_new_fail(e, NET, be, VIREO_ERROR_INVALID_ARGUMENT));
    e->env.loop = harness_loop_event_loop(e->loop);
    /* Good ones (the device then owns the fd: a new socket each time). */
    {
        g_autofree char *o = g_strdup_printf("%s,queues=1,mtu=1500,vnet-hdr=on,mac=" MAC, be);

        device_free(harness_device_new(e, NET, o));
    }
    close(devnull);
    close(stream[0]);
    close(stream[1]);
}

/* Bare frames (vnet-hdr=off): the device writes and strips the header itself. */
static void test_no_vnet_hdr(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
    autopeers Peers peers = { .n = 0 };
    g_autoptr(VirtioDriver) d = net_ready(e, &peers, 1, "vnet-hdr=off", LINUX_FEATURES);
    VirtioDriverQueue *rq = virtio_driver_queue(d, 0), *tq = virtio_driver_queue(d, 1);
    uint8_t frame[300], got[512], hdr[HDR] = { 0 };
    uint64_t base, tbuf = virtio_driver_alloc(d, 512, 64);
    const uint8_t *p;
    uint32_t len;

    /* No offload of any kind. */
    assert_int_equal(virtio_driver_features(d) &
                     (F(CSUM) | F(GUEST_CSUM) | F(HOST_TSO4) | F(GUEST_TSO4)), 0);
    make_frame(frame, other_mac, sizeof(frame), 3);
    hdr[VIRTIO_NET_HDR_NUM_BUFFERS] = 5;
    tx_add(d, tq, tbuf, hdr, frame, sizeof(frame), 2, 1);
    virtio_driver_kick(tq);
    base = rx_fill(d, rq, 30, 64);
    make_frame(frame, dev_mac, sizeof(frame), 4);
    assert_int_equal(send(peers.fd[0], frame, sizeof(frame), 0), sizeof(frame));
    virtio_driver_run(d);
    assert_int_equal(peer_recv(peers.fd[0], got, sizeof(got)), sizeof(frame));
    make_frame(frame, other_mac, sizeof(frame), 3);
    assert_memory_equal(got, frame, sizeof(frame));
    /* 12 + 300 bytes in 64-byte buffers: five of them, a zero header in front. */
    assert_int_equal(used_token(rq, &len), 1);
    p = virtio_driver_mem(d, base, 64);
    assert_int_equal(vireo_le_load(p + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 5);
    for (unsigned i = 0; i < VIRTIO_NET_HDR_NUM_BUFFERS; i++)
        assert_int_equal(p[i], 0);
    make_frame(frame, dev_mac, sizeof(frame), 4);
    assert_memory_equal(p + HDR, frame, 64 - HDR);
    assert_memory_equal(virtio_driver_mem(d, base + 64, 64), frame + 64 - HDR, 64);
}

/* --- benchmark --- */

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/*
 * Host CPU per frame of the device alone: the test's driver keeps the
 * rings full and the test plays the host end of the socket, so the
 * figure includes the socket's two system calls per frame but no KVM.
 */
static int bench(unsigned frames)
{
    static const size_t sizes[] = { 64, 1500 };

    g_log_set_handler("vireo-devices", G_LOG_LEVEL_WARNING, (GLogFunc)g_log_default_handler, NULL);
    printf("%-6s %-4s %12s %12s %10s\n", "frame", "dir", "frames/s", "Gbit/s", "ns CPU/frame");
    for (size_t si = 0; si < G_N_ELEMENTS(sizes); si++) {
        for (int dir = 0; dir < 2; dir++) {
            g_autoptr(HarnessEnv) e = harness_env_new("net", 0);
            autopeers Peers peers = { .n = 0 };
            g_autoptr(VirtioDriver) d = net_ready(e, &peers, 1, NULL,
                                                  F(MRG_RXBUF) | F(CSUM) | F(GUEST_CSUM) |
                                                  VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));
            VirtioDriverQueue *rq = virtio_driver_queue(d, 0), *tq = virtio_driver_queue(d, 1);
            uint64_t rbase = virtio_driver_alloc(d, 256 * 2048ULL, 64);
            uint64_t tbase = virtio_driver_alloc(d, 256 * 2048ULL, 64);
            size_t len = sizes[si];
            uint8_t frame[1514], got[2048], hdr[HDR] = { 0 };
            unsigned done = 0;
            struct timespec t0, t1;
            double c0, c1, wall;
            int big = 8 << 20;

            setsockopt(peers.fd[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
            setsockopt(peers.fd[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
            make_frame(frame, dev_mac, len, 0);
            /* As Linux sends: the header in front of the frame, one descriptor. */
            for (unsigned i = 0; i < 256; i++) {
                if (dir == 0) {
                    memcpy(virtio_driver_mem(d, tbase + 2048ULL * i, HDR), hdr, HDR);
                    memcpy(virtio_driver_mem(d, tbase + 2048ULL * i + HDR, len), frame, len);
                    assert_true(virtio_driver_add(tq, (VirtioDriverBuf[]){
                        { tbase + 2048ULL * i, HDR + len } }, 1, NULL, 0,
                        GUINT_TO_POINTER(i + 1)) >= 0);
                } else {
                    rx_add(rq, rbase + 2048ULL * i, 2048, i + 1);
                }
            }
            clock_gettime(CLOCK_MONOTONIC, &t0);
            c0 = cpu_seconds();
            while (done < frames) {
                void *t;

                if (dir == 1) {
                    for (unsigned k = 0; k < 64; k++)
                        peer_send(peers.fd[0], NULL, frame, len);
                }
                virtio_driver_kick(dir ? rq : tq);
                virtio_driver_run(d);
                while ((t = virtio_driver_get_used(dir ? rq : tq, NULL))) {
                    unsigned slot = GPOINTER_TO_UINT(t) - 1;

                    if (dir == 0) {
                        assert_true(peer_recv(peers.fd[0], got, sizeof(got)) > 0);
                        assert_true(virtio_driver_add(tq, (VirtioDriverBuf[]){
                            { tbase + 2048ULL * slot, HDR + len } }, 1, NULL, 0, t) >= 0);
                    } else {
                        rx_add(rq, rbase + 2048ULL * slot, 2048, slot + 1);
                    }
                    done++;
                }
            }
            c1 = cpu_seconds();
            clock_gettime(CLOCK_MONOTONIC, &t1);
            wall = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
            printf("%-6zu %-4s %12.0f %12.3f %10.0f\n", len, dir ? "rx" : "tx", done / wall,
                   done * len * 8 / wall / 1e9, (c1 - c0) / done * 1e9);
        }
    }
    printf("(in-process: the device, the test's driver and the socket peer on one thread)\n");
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_default_mac),
        cmocka_unit_test(test_tx),
        cmocka_unit_test(test_tx_bad_headers),
        cmocka_unit_test(test_rx),
        cmocka_unit_test(test_rx_mergeable),
        cmocka_unit_test(test_rx_jumbo),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_tx_backpressure),
        cmocka_unit_test(test_link),
        cmocka_unit_test(test_ctrl),
        cmocka_unit_test(test_multiqueue),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_no_vnet_hdr),
    };

    harness_init();
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    if (argc > 1 && strcmp(argv[1], "--bench") == 0)
        return bench(argc > 2 ? atoi(argv[2]) : 200000);
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);        /* one test (a glob), for debugging */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
