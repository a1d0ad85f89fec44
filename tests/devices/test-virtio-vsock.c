/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-vsock (devices/virtio/vsock.c) through the test driver playing
 * Linux's virtio_transport, against real UNIX sockets on the host side in
 * a temporary directory, with the harness playing the event loop:
 * handshakes both ways (CONNECT/OK and PATH_<port>), data both ways with
 * credit, large transfers with back-pressure both ways, SHUTDOWN and RST,
 * many connections and the limit, hostile packets and rings, reset, and
 * save/load (connections dropped, TRANSPORT_RESET in the event queue).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "virtio-driver.h"
#include "vireo/virtio-vsock.h"

#define VS "virtio-vsock"
#define GCID 3
#define HOST 2
#define NRX 64
#define RXBUF 4096
#define NEV 8
#define SLOT (VIRTIO_VSOCK_HDR_SIZE + 65536)
#define GUEST_BUF_ALLOC (64 * 1024)
#define S 1000000000LL
#define F(bit) VIRTIO_BIT(bit)
#define VSOCK_SHUTDOWN_BOTH_TEST (VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE | VIRTIO_VSOCK_SHUTDOWN_F_SEND)

/* A packet as the test's "guest" writes or reads it. */
typedef struct Pkt {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port, len;
    uint16_t type, op;
    uint32_t flags, buf_alloc, fwd_cnt;
} Pkt;

typedef struct Vt {
    HarnessEnv *e;
    VirtioDriver *d;
    char *dir;
    char *path;
    VirtioDriverQueue *rx, *tx, *ev;
    uint64_t rxmem, evmem, slot;
} Vt;

static void pkt_encode(const Pkt *p, uint8_t *b)
{
    vireo_le_store(b + VIRTIO_VSOCK_HDR_SRC_CID, 8, p->src_cid);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_DST_CID, 8, p->dst_cid);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_SRC_PORT, 4, p->src_port);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_DST_PORT, 4, p->dst_port);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_LEN, 4, p->len);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_TYPE, 2, p->type);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_OP, 2, p->op);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_FLAGS, 4, p->flags);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_BUF_ALLOC, 4, p->buf_alloc);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_FWD_CNT, 4, p->fwd_cnt);
}

static void pkt_decode(Pkt *p, const uint8_t *b)
{
    p->src_cid = vireo_le_load(b + VIRTIO_VSOCK_HDR_SRC_CID, 8);
    p->dst_cid = vireo_le_load(b + VIRTIO_VSOCK_HDR_DST_CID, 8);
    p->src_port = vireo_le_load(b + VIRTIO_VSOCK_HDR_SRC_PORT, 4);
    p->dst_port = vireo_le_load(b + VIRTIO_VSOCK_HDR_DST_PORT, 4);
    p->len = vireo_le_load(b + VIRTIO_VSOCK_HDR_LEN, 4);
    p->type = vireo_le_load(b + VIRTIO_VSOCK_HDR_TYPE, 2);
    p->op = vireo_le_load(b + VIRTIO_VSOCK_HDR_OP, 2);
    p->flags = vireo_le_load(b + VIRTIO_VSOCK_HDR_FLAGS, 4);
    p->buf_alloc = vireo_le_load(b + VIRTIO_VSOCK_HDR_BUF_ALLOC, 4);
    p->fwd_cnt = vireo_le_load(b + VIRTIO_VSOCK_HDR_FWD_CNT, 4);
}

/* A packet from guest port @gp to host port @hp. */
static Pkt pkt(uint16_t op, uint32_t gp, uint32_t hp)
{
    return (Pkt){ .src_cid = GCID, .dst_cid = HOST, .src_port = gp, .dst_port = hp,
                  .type = VIRTIO_VSOCK_TYPE_STREAM, .op = op, .buf_alloc = GUEST_BUF_ALLOC };
}

/* Even rx buffers are one descriptor (Linux 6.x), odd ones header + data (older Linux). */
static void vt_post_rx(Vt *t, unsigned i)
{
    uint64_t a = t->rxmem + (uint64_t)i * RXBUF;

    if (i % 2 == 0)
        assert_true(virtio_driver_add(t->rx, NULL, 0, &(VirtioDriverBuf){ a, RXBUF }, 1,
                                      GUINT_TO_POINTER(i + 1)) >= 0);
    else
        assert_true(virtio_driver_add(t->rx, NULL, 0,
                                      (VirtioDriverBuf[]){ { a, VIRTIO_VSOCK_HDR_SIZE },
                                                           { a + VIRTIO_VSOCK_HDR_SIZE,
                                                             RXBUF - VIRTIO_VSOCK_HDR_SIZE } },
                                      2, GUINT_TO_POINTER(i + 1)) >= 0);
}

static void vt_post_all_rx(Vt *t)
{
    for (unsigned i = 0; i < NRX; i++)
        vt_post_rx(t, i);
    virtio_driver_kick(t->rx);
}

static Vt *vt_new_opts(const char *dir, const char *extra, gboolean start, gboolean rx)
{
    Vt *t = g_new0(Vt, 1);
    VirtioDriverParams p = { 0 };
    g_autofree char *opts = NULL;

    t->e = harness_env_new("vsock", 0);
    t->dir = dir ? g_strdup(dir) : g_dir_make_tmp("vireo-vsock-XXXXXX", NULL);
    assert_non_null(t->dir);
    t->path = g_build_filename(t->dir, "v.sock", NULL);
    opts = g_strdup_printf("guest-cid=%u,uds-path=%s%s", GCID, t->path, extra ? extra : "");
    t->d = virtio_driver_new(t->e, VS, opts, &p);
    t->rxmem = virtio_driver_alloc(t->d, (uint64_t)NRX * RXBUF, 4096);
    t->evmem = virtio_driver_alloc(t->d, NEV * 4, 4);
    t->slot = virtio_driver_alloc(t->d, SLOT, 4096);
    if (!start)
        return t;
    assert_true(virtio_driver_init(t->d, VIRTIO_DRIVER_ALL_FEATURES));
    t->rx = virtio_driver_setup_queue(t->d, VIRTIO_VSOCK_Q_RX, 0);
    t->tx = virtio_driver_setup_queue(t->d, VIRTIO_VSOCK_Q_TX, 0);
    t->ev = virtio_driver_setup_queue(t->d, VIRTIO_VSOCK_Q_EVENT, 0);
    for (unsigned i = 0; i < NEV; i++)
        assert_true(virtio_driver_add(t->ev, NULL, 0, &(VirtioDriverBuf){ t->evmem + 4 * i, 4 },
                                      1, GUINT_TO_POINTER(i + 1)) >= 0);
    if (rx)
        vt_post_all_rx(t);
    virtio_driver_ok(t->d);
    virtio_driver_run(t->d);
    return t;
}

static Vt *vt_new(void)
{
    return vt_new_opts(NULL, NULL, TRUE, TRUE);
}

static void vt_free(Vt *t)
{
    if (!t)
        return;
    virtio_driver_free(t->d);
    harness_env_free(t->e);
    /* The device removed its socket; only what the tests made is left. */
    if (t->dir) {
        g_autoptr(GDir) dir = g_dir_open(t->dir, 0, NULL);
        const char *name;

        while (dir && (name = g_dir_read_name(dir))) {
            g_autofree char *p = g_build_filename(t->dir, name, NULL);
            unlink(p);
        }
        rmdir(t->dir);
    }
    g_free(t->dir);
    g_free(t->path);
    g_free(t);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Vt, vt_free)

static void vt_run(Vt *t)
{
    virtio_driver_run(t->d);
}

/* Sends @p (+ @data) on tx from @at, as Linux 6.1 does: header and payload apart. */
static void vt_tx_at(Vt *t, uint64_t at, const Pkt *p, const void *data, size_t len,
                     gboolean wait)
{
    uint8_t *b = virtio_driver_mem(t->d, at, VIRTIO_VSOCK_HDR_SIZE + len);
    VirtioDriverBuf bufs[2] = { { at, VIRTIO_VSOCK_HDR_SIZE },
                                { at + VIRTIO_VSOCK_HDR_SIZE, len } };

    pkt_encode(p, b);
    if (len)
        memcpy(b + VIRTIO_VSOCK_HDR_SIZE, data, len);
    assert_true(virtio_driver_add(t->tx, bufs, len ? 2 : 1, NULL, 0,
                                  GUINT_TO_POINTER((guint)at)) >= 0);
    virtio_driver_kick(t->tx);
    vt_run(t);
    if (wait) {
        assert_ptr_equal(virtio_driver_get_used(t->tx, NULL), GUINT_TO_POINTER((guint)at));
        assert_int_equal(virtio_driver_queue_inflight(t->tx), 0);
    }
}

static void vt_tx(Vt *t, const Pkt *p, const void *data, size_t len)
{
    g_assert(len <= SLOT - VIRTIO_VSOCK_HDR_SIZE);
    vt_tx_at(t, t->slot, p, data, len, TRUE);
}

static void vt_send(Vt *t, uint16_t op, uint32_t gp, uint32_t hp)
{
    Pkt p = pkt(op, gp, hp);

    vt_tx(t, &p, NULL, 0);
}

/* The next packet the device put in rx (its buffer posted again), or FALSE. */
static gboolean vt_rx(Vt *t, Pkt *p, void *data, size_t cap)
{
    uint32_t len = 0;
    void *token = virtio_driver_get_used(t->rx, &len);
    unsigned i;
    const uint8_t *b;

    if (!token)
        return FALSE;
    i = GPOINTER_TO_UINT(token) - 1;
    assert_true(i < NRX && len >= VIRTIO_VSOCK_HDR_SIZE && len <= RXBUF);
    b = virtio_driver_mem(t->d, t->rxmem + (uint64_t)i * RXBUF, RXBUF);
    pkt_decode(p, b);
    assert_int_equal(p->len, len - VIRTIO_VSOCK_HDR_SIZE);
    if (data) {
        assert_true(p->len <= cap);
        memcpy(data, b + VIRTIO_VSOCK_HDR_SIZE, p->len);
    }
    vt_post_rx(t, i);
    virtio_driver_kick(t->rx);
    return TRUE;
}

/* The next packet, which must exist and be @op between host port @hp and guest port @gp. */
static Pkt vt_expect(Vt *t, uint16_t op, uint32_t hp, uint32_t gp, void *data, size_t cap)
{
    Pkt p;

    vt_run(t);
    if (!vt_rx(t, &p, data, cap))
        fail_msg("no packet from the device (expected op %u %u -> %u)", op, hp, gp);
    if (p.op != op || p.src_port != hp || p.dst_port != gp || p.src_cid != HOST ||
        p.dst_cid != GCID || p.type != VIRTIO_VSOCK_TYPE_STREAM)
        fail_msg("packet op %u %" G_GUINT64_FORMAT ":%u -> %" G_GUINT64_FORMAT
                 ":%u type %u, expected op %u %u -> %u", p.op, p.src_cid, p.src_port,
                 p.dst_cid, p.dst_port, p.type, op, hp, gp);
    if (op != VIRTIO_VSOCK_OP_RST)
        assert_int_equal(p.buf_alloc, VIRTIO_VSOCK_BUF_ALLOC);
    return p;
}

static void vt_no_packet(Vt *t)
{
    Pkt p;

    vt_run(t);
    if (vt_rx(t, &p, NULL, 0))
        fail_msg("unexpected packet op %u %u -> %u", p.op, p.src_port, p.dst_port);
}

/* --- host side --- */

static int host_listen(Vt *t, uint32_t port)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    g_snprintf(addr.sun_path, sizeof(addr.sun_path), "%s_%u", t->path, port);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(fd, 512), 0);
    return fd;
}

static int host_accept(int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0)
        fail_msg("no connection from the device: %s", g_strerror(errno));
    return fd;
}

static int host_connect(Vt *t)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    g_strlcpy(addr.sun_path, t->path, sizeof(addr.sun_path));
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
}

static void host_write(int fd, const void *buf, size_t len)
{
    assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads what is there: bytes, 0 for nothing now, -1 at EOF (or an error). */
static ssize_t host_read(int fd, void *buf, size_t cap)
{
    ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);

    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    return -1;
}

static void host_expect(Vt *t, int fd, const char *text)
{
    char buf[256] = { 0 };
    size_t len = strlen(text), got = 0;

    for (unsigned tries = 0; got < len && tries < 100; tries++) {
        ssize_t n;

        vt_run(t);
        n = host_read(fd, buf + got, len - got);
        assert_true(n >= 0);
        got += n;
    }
    assert_int_equal(got, len);
    assert_memory_equal(buf, text, len);
}

static void host_expect_eof(Vt *t, int fd)
{
    char c;

    vt_run(t);
    assert_int_equal(host_read(fd, &c, 1), -1);
}

/* A guest-initiated connection from guest port @gp to host port @hp, accepted by @lfd. */
static int vt_guest_connect(Vt *t, int lfd, uint32_t gp, uint32_t hp)
{
    vt_send(t, VIRTIO_VSOCK_OP_REQUEST, gp, hp);
    vt_expect(t, VIRTIO_VSOCK_OP_RESPONSE, hp, gp, NULL, 0);
    return host_accept(lfd);
}

/* The host program's half of a host-initiated connection: up to the guest's REQUEST. */
static int vt_host_request(Vt *t, uint32_t gp, uint32_t *hp)
{
    int fd = host_connect(t);
    g_autofree char *cmd = g_strdup_printf("CONNECT %u\n", gp);
    Pkt p;

    host_write(fd, cmd, strlen(cmd));
    vt_run(t);
    assert_true(vt_rx(t, &p, NULL, 0));
    assert_int_equal(p.op, VIRTIO_VSOCK_OP_REQUEST);
    assert_true(p.src_cid == HOST && p.dst_cid == GCID && p.dst_port == gp);
    assert_true(p.src_port >= VIRTIO_VSOCK_LOCAL_PORT_BASE);
    assert_int_equal(p.buf_alloc, VIRTIO_VSOCK_BUF_ALLOC);
    *hp = p.src_port;
    return fd;
}

/* A whole host-initiated connection: the guest accepts, the host reads "OK <port>". */
static int vt_host_connect(Vt *t, uint32_t gp, uint32_t *hp)
{
    int fd = vt_host_request(t, gp, hp);
    g_autofree char *ok = g_strdup_printf("OK %u\n", *hp);

    vt_send(t, VIRTIO_VSOCK_OP_RESPONSE, gp, *hp);
    host_expect(t, fd, ok);
    return fd;
}

static void fill_pattern(uint8_t *p, size_t len, uint64_t offset, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)((offset + i) * 7 + seed + ((offset + i) >> 13));
}

static gboolean check_pattern(const uint8_t *p, size_t len, uint64_t offset, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != (uint8_t)((offset + i) * 7 + seed + ((offset + i) >> 13)))
            return FALSE;
    return TRUE;
}

/* --- tests --- */

static void test_identity(void **state)
{
    g_autoptr(Vt) t = vt_new();
    uint8_t cid[8];
    struct stat st;

    assert_non_null(device_type_find(VS));
    assert_int_equal(pci_config_read(virtio_driver_pci(t->d), PCI_VENDOR_ID, 4), 0x10531af4);
    assert_true(virtio_driver_device_features(t->d) ==
                (VIRTQ_FEATURES | F(VIRTIO_VSOCK_F_STREAM) |
                 F(VIRTIO_VSOCK_F_NO_IMPLIED_STREAM)));
    assert_int_equal(virtio_driver_common_read(t->d, VIRTIO_PCI_COMMON_NUMQ, 2), 3);
    virtio_driver_config_read(t->d, 0, cid, 8);
    assert_true(vireo_le_load(cid, 8) == GCID);
    /* guest_cid is read-only. */
    virtio_driver_config_write(t->d, 0, 4, 99);
    virtio_driver_config_read(t->d, 0, cid, 8);
    assert_true(vireo_le_load(cid, 8) == GCID);
    assert_int_equal(harness_take_guest_warnings(), 1);
    /* Listening from creation on; nothing in the event queue. */
    assert_int_equal(lstat(t->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_null(virtio_driver_get_used(t->ev, NULL));
    vt_no_packet(t);
}

/* The guest connects to PATH_<port>; data both ways; credit. */
static void test_guest_connect(void **state)
{
    g_autoptr(Vt) t = vt_new();
    int lfd = host_listen(t, 1234);
    int hfd;
    Pkt p = pkt(VIRTIO_VSOCK_OP_RW, 5000, 1234), r;
    char buf[64];

    hfd = vt_guest_connect(t, lfd, 5000, 1234);
    /* Guest to host, straight into the socket. */
    p.len = 5;
    vt_tx(t, &p, "hello", 5);
    host_expect(t, hfd, "hello");
    /* Host to guest, as far as the guest's credit goes. */
    host_write(hfd, "world!", 6);
    r = vt_expect(t, VIRTIO_VSOCK_OP_RW, 1234, 5000, buf, sizeof(buf));
    assert_int_equal(r.len, 6);
    assert_memory_equal(buf, "world!", 6);
    /* Every packet carries our credit: fwd_cnt counts what the host took. */
    assert_int_equal(r.fwd_cnt, 5);
    vt_no_packet(t);
    /* CREDIT_REQUEST: a CREDIT_UPDATE comes back. */
    vt_send(t, VIRTIO_VSOCK_OP_CREDIT_REQUEST, 5000, 1234);
    r = vt_expect(t, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 1234, 5000, NULL, 0);
    assert_true(r.fwd_cnt == 5 && r.len == 0);
    /* A CREDIT_UPDATE from the guest is only information. */
    vt_send(t, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 5000, 1234);
    vt_no_packet(t);
    /* A second connection from another guest port, same host port. */
    {
        int h2 = vt_guest_connect(t, lfd, 5001, 1234);

        host_write(h2, "two", 3);
        r = vt_expect(t, VIRTIO_VSOCK_OP_RW, 1234, 5001, buf, sizeof(buf));
        assert_memory_equal(buf, "two", 3);
        close(h2);
        vt_expect(t, VIRTIO_VSOCK_OP_SHUTDOWN, 1234, 5001, NULL, 0);
    }

    /* Nobody listening on the port: a RST. */
    vt_send(t, VIRTIO_VSOCK_OP_REQUEST, 5002, 999);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, 999, 5002, NULL, 0);
    /* Packets for no connection: a RST, except for a RST. */
    vt_send(t, VIRTIO_VSOCK_OP_RW, 5003, 1234);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, 1234, 5003, NULL, 0);
    vt_send(t, VIRTIO_VSOCK_OP_RST, 5003, 1234);
    vt_no_packet(t);
    /* Another CID: a RST from that CID. */
    p = pkt(VIRTIO_VSOCK_OP_REQUEST, 5004, 1234);
    p.dst_cid = 7;
    vt_tx(t, &p, NULL, 0);
    vt_run(t);
    assert_true(vt_rx(t, &r, NULL, 0));
    assert_true(r.op == VIRTIO_VSOCK_OP_RST && r.src_cid == 7 && r.src_port == 1234 &&
                r.dst_port == 5004);
    /* An unknown type (seqpacket, not offered): a RST of that type (5.10.6.6). */
    p = pkt(VIRTIO_VSOCK_OP_REQUEST, 5005, 1234);
    p.type = VIRTIO_VSOCK_TYPE_SEQPACKET;
    vt_tx(t, &p, NULL, 0);
    vt_run(t);
    assert_true(vt_rx(t, &r, NULL, 0));
    assert_true(r.op == VIRTIO_VSOCK_OP_RST && r.type == VIRTIO_VSOCK_TYPE_SEQPACKET);
    /* A source CID that is not the guest's: dropped, nobody to answer. */
    p = pkt(VIRTIO_VSOCK_OP_REQUEST, 5006, 1234);
    p.src_cid = 4;
    harness_take_guest_warnings();
    vt_tx(t, &p, NULL, 0);
    vt_no_packet(t);
    assert_int_equal(harness_take_guest_warnings(), 1);
    {
        int none = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);

        assert_int_equal(none, -1);
    }

    /* The first connection still works. */
    p = pkt(VIRTIO_VSOCK_OP_RW, 5000, 1234);
    p.len = 3;
    vt_tx(t, &p, "end", 3);
    host_expect(t, hfd, "end");
    close(hfd);
    close(lfd);
}

/* The host connects to PATH, "CONNECT <port>\n", "OK <hostport>\n". */
static void test_host_connect(void **state)
{
    g_autoptr(Vt) t = vt_new();
    uint32_t hp, hp2;
    int fd = vt_host_connect(t, 52, &hp), fd2;
    Pkt p = pkt(VIRTIO_VSOCK_OP_RW, 52, 0), r;
    char buf[64];

    assert_int_equal(hp, VIRTIO_VSOCK_LOCAL_PORT_BASE);
    p.dst_port = hp;
    p.len = 4;
    vt_tx(t, &p, "ping", 4);
    host_expect(t, fd, "ping");
    host_write(fd, "pong", 4);
    r = vt_expect(t, VIRTIO_VSOCK_OP_RW, hp, 52, buf, sizeof(buf));
    assert_memory_equal(buf, "pong", 4);
    /* The acknowledgement is not counted as the guest's data. */
    assert_int_equal(r.fwd_cnt, 4);

    /* Data right behind the command is the stream's, for the guest after the handshake. */
    fd2 = host_connect(t);
    host_write(fd2, "CONNECT 53\r\nearly", 17);
    vt_run(t);
    assert_true(vt_rx(t, &r, NULL, 0));
    assert_true(r.op == VIRTIO_VSOCK_OP_REQUEST && r.dst_port == 53);
    hp2 = r.src_port;
    assert_int_equal(hp2, hp + 1);
    vt_no_packet(t);
    vt_send(t, VIRTIO_VSOCK_OP_RESPONSE, 53, hp2);
    r = vt_expect(t, VIRTIO_VSOCK_OP_RW, hp2, 53, buf, sizeof(buf));
    assert_memory_equal(buf, "early", 5);
    {
        g_autofree char *ok = g_strdup_printf("OK %u\n", hp2);

        host_expect(t, fd2, ok);
    }
    close(fd2);
    vt_expect(t, VIRTIO_VSOCK_OP_SHUTDOWN, hp2, 53, NULL, 0);

    /* The guest refuses (nobody listens on 54): the host connection is closed. */
    fd2 = vt_host_request(t, 54, &hp2);
    vt_send(t, VIRTIO_VSOCK_OP_RST, 54, hp2);
    host_expect_eof(t, fd2);
    close(fd2);

    /* The guest never answers: after the timeout a RST to it, EOF to the host. */
    fd2 = vt_host_request(t, 55, &hp2);
    harness_timers_advance(t->e->timers, VIRTIO_VSOCK_TIMEOUT_MS * 1000000LL - 1);
    vt_no_packet(t);
    harness_timers_advance(t->e->timers, 1);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, hp2, 55, NULL, 0);
    host_expect_eof(t, fd2);
    close(fd2);
    /* A late answer gets a RST. */
    vt_send(t, VIRTIO_VSOCK_OP_RESPONSE, 55, hp2);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, hp2, 55, NULL, 0);

    /* Bad commands: the host connection is closed, the guest hears nothing. */
    {
        static const char *const bad[] = {
            "connect 5\n", "CONNECT\n", "CONNECT x\n", "CONNECT 4294967296\n", "CONNECT -1\n",
            "CONNECT 5 \n", "HELLO\n", "CONNECT 000000000000000000000001\n",
            "CONNECT 12345678901234567890123456789\n",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
            fd2 = host_connect(t);
            host_write(fd2, bad[i], strlen(bad[i]));
            host_expect_eof(t, fd2);
            close(fd2);
        }
        vt_no_packet(t);
    }
    /* A host that says nothing is closed after the timeout. */
    fd2 = host_connect(t);
    host_write(fd2, "CONN", 4);
    vt_run(t);
    assert_int_equal(host_read(fd2, buf, 1), 0);
    harness_timers_advance(t->e->timers, VIRTIO_VSOCK_TIMEOUT_MS * 1000000LL);
    host_expect_eof(t, fd2);
    close(fd2);
    vt_no_packet(t);

    /* The first connection is unharmed. */
    host_write(fd, "still", 5);
    vt_expect(t, VIRTIO_VSOCK_OP_RW, hp, 52, buf, sizeof(buf));
    assert_memory_equal(buf, "still", 5);
    close(fd);
}

/* Host-initiated connections only once the driver runs. */
static void test_host_connect_early(void **state)
{
    g_autoptr(Vt) t = vt_new_opts(NULL, NULL, FALSE, FALSE);
    int fd = host_connect(t);

    host_write(fd, "CONNECT 52\n", 11);
    host_expect_eof(t, fd);
    close(fd);
}

/*
 * Guest to host, 4 MiB in 64 KiB packets while the host reads slowly: the
 * device never buffers more than its buf_alloc, and its credit updates
 * keep the guest going.
 */
static void test_bulk_guest_to_host(void **state)
{
    g_autoptr(Vt) t = vt_new();
    int lfd = host_listen(t, 80);
    int hfd = vt_guest_connect(t, lfd, 6000, 80);
    const size_t total = 4 << 20;
    g_autofree uint8_t *chunk = g_malloc(65536);
    g_autofree uint8_t *in = g_malloc(65536);
    uint64_t sent = 0, got = 0;
    uint32_t peer_fwd = 0, peer_alloc = VIRTIO_VSOCK_BUF_ALLOC;
    unsigned stalls = 0, updates = 0;

    while (got < total) {
        uint32_t credit = peer_alloc - (uint32_t)(sent - peer_fwd);
        Pkt r;

        /* As Linux: only what the credit allows (5.10.6.3.1). */
        if (sent < total && credit > 0) {
            size_t n = MIN(MIN((size_t)credit, (size_t)65536), total - sent);
            Pkt p = pkt(VIRTIO_VSOCK_OP_RW, 6000, 80);

            p.len = n;
            fill_pattern(chunk, n, sent, 1);
            vt_tx(t, &p, chunk, n);
            sent += n;
        } else if (sent < total) {
            stalls++;
        }
        /* The host reads a little at a time. */
        for (unsigned i = 0; i < 2; i++) {
            ssize_t n = host_read(hfd, in, 24 * 1024);

            assert_true(n >= 0);
            assert_true(check_pattern(in, n, got, 1));
            got += n;
            vt_run(t);
        }
        while (vt_rx(t, &r, NULL, 0)) {
            assert_true(r.op == VIRTIO_VSOCK_OP_CREDIT_UPDATE && r.src_port == 80);
            assert_true((uint32_t)(r.fwd_cnt - peer_fwd) <= sent - peer_fwd);
            peer_fwd = r.fwd_cnt;
            peer_alloc = r.buf_alloc;
            updates++;
        }
    }
    assert_true(sent == total && got == total);
    /* The credit ran out now and then, and updates refilled it. */
    assert_true(stalls > 0 && updates > 0);
    close(hfd);
    close(lfd);
}

/* A guest that sends beyond its credit gets a RST; the device buffered no more than allowed. */
static void test_credit_overrun(void **state)
{
    g_autoptr(Vt) t = vt_new();
    int lfd = host_listen(t, 81);
    int hfd = vt_guest_connect(t, lfd, 6001, 81);
    g_autofree uint8_t *chunk = g_malloc0(65536);
    uint64_t sent = 0;
    Pkt r;

    /* The host does not read: its socket fills, then the device's buffer. */
    harness_take_guest_warnings();
    for (;;) {
        Pkt p = pkt(VIRTIO_VSOCK_OP_RW, 6001, 81);

        p.len = 65536;
        vt_tx(t, &p, chunk, 65536);
        sent += 65536;
        vt_run(t);
        if (vt_rx(t, &r, NULL, 0)) {
            if (r.op == VIRTIO_VSOCK_OP_CREDIT_UPDATE)
                continue;
            assert_int_equal(r.op, VIRTIO_VSOCK_OP_RST);
            break;
        }
        assert_true(sent < (64 << 20));
    }
    assert_int_equal(harness_take_guest_warnings(), 1);
    /* Host side closed. */
    {
        uint8_t buf[65536];
        ssize_t n;

        while ((n = host_read(hfd, buf, sizeof(buf))) > 0)
            ;
        assert_int_equal(n, -1);
    }
    close(hfd);
    close(lfd);
}

/*
 * Host to guest, 2 MiB written as fast as the socket takes it: the guest's
 * 64 KiB credit and its rx buffers set the pace; the host sees
 * back-pressure (EAGAIN) while the guest does not read.
 */
static void test_bulk_host_to_guest(void **state)
{
    g_autoptr(Vt) t = vt_new();
    int lfd = host_listen(t, 82);
    int hfd = vt_guest_connect(t, lfd, 6002, 82);
    const size_t total = 2 << 20;
    g_autofree uint8_t *out = g_malloc(total);
    uint8_t data[RXBUF];
    uint64_t written = 0, got = 0, consumed = 0;
    unsigned blocked = 0;

    fill_pattern(out, total, 0, 9);
    while (got < total) {
        Pkt r;

        if (written < total) {
            ssize_t n = send(hfd, out + written, total - written, MSG_DONTWAIT | MSG_NOSIGNAL);

            /* The socket takes what fits: a short write is back-pressure. */
            if (n < (ssize_t)(total - written))
                blocked++;
            if (n > 0)
                written += n;
        }
        vt_run(t);
        while (vt_rx(t, &r, data, sizeof(data))) {
            assert_int_equal(r.op, VIRTIO_VSOCK_OP_RW);
            /* Never more than the guest's credit in flight. */
            assert_true(got + r.len - consumed <= GUEST_BUF_ALLOC);
            assert_true(check_pattern(data, r.len, got, 9));
            got += r.len;
        }
        /* The guest's application reads everything and says so, as Linux does. */
        if (got - consumed >= GUEST_BUF_ALLOC / 2 || (got == written && got > consumed)) {
            Pkt u = pkt(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 6002, 82);

            consumed = got;
            u.fwd_cnt = consumed;
            vt_tx(t, &u, NULL, 0);
        }
    }
    assert_true(blocked > 0);

    /* No rx buffers: the device stops reading; the host's writes block. */
    {
        uint64_t before = got;
        Pkt r;

        while (virtio_driver_queue_inflight(t->rx) > 0) {
            /* Let the device use up every buffer without giving any back. */
            uint32_t len;

            host_write(hfd, "x", 1);
            vt_run(t);
            if (!virtio_driver_get_used(t->rx, &len))
                break;
        }
        assert_int_equal(virtio_driver_queue_inflight(t->rx), 0);
        blocked = 0;
        for (unsigned i = 0; i < 1000 && !blocked; i++) {
            if (send(hfd, out, 65536, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno == EAGAIN)
                blocked = 1;
            vt_run(t);
        }
        assert_true(blocked);
        vt_post_all_rx(t);
        vt_run(t);
        assert_true(vt_rx(t, &r, NULL, 0));
        assert_true(r.op == VIRTIO_VSOCK_OP_RW && got + r.len > before);
    }
    close(hfd);
    close(lfd);
}

/* SHUTDOWN both ways, clean close, half-close, and what Linux does on close. */
static void test_shutdown(void **state)
{
    g_autoptr(Vt) t = vt_new();
    int lfd = host_listen(t, 90);
    int hfd = vt_guest_connect(t, lfd, 7000, 90);
    Pkt p, r;
    char buf[64];

    /* Guest: no more sending. The host reads EOF, and can still send. */
    p = pkt(VIRTIO_VSOCK_OP_SHUTDOWN, 7000, 90);
    p.flags = VIRTIO_VSOCK_SHUTDOWN_F_SEND;
    vt_tx(t, &p, NULL, 0);
    host_expect_eof(t, hfd);
    host_write(hfd, "reply", 5);
    vt_expect(t, VIRTIO_VSOCK_OP_RW, 90, 7000, buf, sizeof(buf));
    /* Data after its own SHUTDOWN: a protocol error, the connection is reset. */
    p = pkt(VIRTIO_VSOCK_OP_RW, 7000, 90);
    p.len = 1;
    vt_tx(t, &p, "x", 1);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, 90, 7000, NULL, 0);
    assert_int_equal(send(hfd, "y", 1, MSG_NOSIGNAL), -1);
    close(hfd);
    harness_take_guest_warnings();

    /* Linux's close(): SHUTDOWN with both flags, answered with a RST. */
    hfd = vt_guest_connect(t, lfd, 7001, 90);
    p = pkt(VIRTIO_VSOCK_OP_RW, 7001, 90);
    p.len = 4;
    vt_tx(t, &p, "last", 4);
    p = pkt(VIRTIO_VSOCK_OP_SHUTDOWN, 7001, 90);
    p.flags = VSOCK_SHUTDOWN_BOTH_TEST;
    vt_tx(t, &p, NULL, 0);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, 90, 7001, NULL, 0);
    host_expect(t, hfd, "last");
    host_expect_eof(t, hfd);
    close(hfd);
    /* The same ports again: a new connection. */
    hfd = vt_guest_connect(t, lfd, 7001, 90);
    close(hfd);
    r = vt_expect(t, VIRTIO_VSOCK_OP_SHUTDOWN, 90, 7001, NULL, 0);
    assert_int_equal(r.flags, VIRTIO_VSOCK_SHUTDOWN_F_SEND);
    /* The host closed: the guest's close then finishes at once. */
    p = pkt(VIRTIO_VSOCK_OP_SHUTDOWN, 7001, 90);
    p.flags = VSOCK_SHUTDOWN_BOTH_TEST;
    vt_tx(t, &p, NULL, 0);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, 90, 7001, NULL, 0);

    /* Host half-close: the guest hears SHUTDOWN "send", its data still reaches the host. */
    hfd = vt_guest_connect(t, lfd, 7002, 90);
    shutdown(hfd, SHUT_WR);
    r = vt_expect(t, VIRTIO_VSOCK_OP_SHUTDOWN, 90, 7002, NULL, 0);
    assert_int_equal(r.flags, VIRTIO_VSOCK_SHUTDOWN_F_SEND);
    p = pkt(VIRTIO_VSOCK_OP_RW, 7002, 90);
    p.len = 6;
    vt_tx(t, &p, "answer", 6);
    host_expect(t, hfd, "answer");
    /* Then the guest stops sending too: nothing left either way, a RST ends it. */
    p = pkt(VIRTIO_VSOCK_OP_SHUTDOWN, 7002, 90);
    p.flags = VIRTIO_VSOCK_SHUTDOWN_F_SEND;
    vt_tx(t, &p, NULL, 0);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, 90, 7002, NULL, 0);
    host_expect_eof(t, hfd);
    close(hfd);

    /* The guest stopped sending, then the host closes: SHUTDOWN with both flags, the guest's RST. */
    hfd = vt_guest_connect(t, lfd, 7003, 90);
    p = pkt(VIRTIO_VSOCK_OP_SHUTDOWN, 7003, 90);
    p.flags = VIRTIO_VSOCK_SHUTDOWN_F_SEND;
    vt_tx(t, &p, NULL, 0);
    close(hfd);
    r = vt_expect(t, VIRTIO_VSOCK_OP_SHUTDOWN, 90, 7003, NULL, 0);
    assert_int_equal(r.flags, VSOCK_SHUTDOWN_BOTH_TEST);
    vt_send(t, VIRTIO_VSOCK_OP_RST, 7003, 90);
    vt_no_packet(t);
    /* ... or, if the guest never answers, our RST after the timeout. */
    hfd = vt_guest_connect(t, lfd, 7004, 90);
    p = pkt(VIRTIO_VSOCK_OP_SHUTDOWN, 7004, 90);
    p.flags = VIRTIO_VSOCK_SHUTDOWN_F_SEND;
    vt_tx(t, &p, NULL, 0);
    close(hfd);
    vt_expect(t, VIRTIO_VSOCK_OP_SHUTDOWN, 90, 7004, NULL, 0);
    harness_timers_advance(t->e->timers, VIRTIO_VSOCK_TIMEOUT_MS * 1000000LL);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, 90, 7004, NULL, 0);

    /* A close with data the host does not read: the RST waits, then the timeout ends it. */
    hfd = vt_guest_connect(t, lfd, 7005, 90);
    {
        g_autofree uint8_t *chunk = g_malloc0(65536);
        Pkt d = pkt(VIRTIO_VSOCK_OP_RW, 7005, 90);

        d.len = 65536;
        for (unsigned i = 0; i < 4; i++)
            vt_tx(t, &d, chunk, 65536);
        while (vt_rx(t, &r, NULL, 0))
            assert_int_equal(r.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
    }
    p = pkt(VIRTIO_VSOCK_OP_SHUTDOWN, 7005, 90);
    p.flags = VSOCK_SHUTDOWN_BOTH_TEST;
    vt_tx(t, &p, NULL, 0);
    vt_no_packet(t);
    harness_timers_advance(t->e->timers, VIRTIO_VSOCK_TIMEOUT_MS * 1000000LL);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, 90, 7005, NULL, 0);
    close(hfd);

    /* The guest's RST closes the host side at once. */
    hfd = vt_guest_connect(t, lfd, 7006, 90);
    vt_send(t, VIRTIO_VSOCK_OP_RST, 7006, 90);
    host_expect_eof(t, hfd);
    vt_no_packet(t);
    close(hfd);
    close(lfd);
}

/* Many connections at once, data interleaved; the limit; the listener's queue. */
static void test_many_connections(void **state)
{
    g_autoptr(Vt) t = vt_new();
    int lfd = host_listen(t, 100);
    int fds[VIRTIO_VSOCK_MAX_CONNS];
    char buf[64];
    Pkt r;

    for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++) {
        if (i % 2) {
            fds[i] = vt_guest_connect(t, lfd, 10000 + i, 100);
        } else {
            uint32_t hp;

            fds[i] = vt_host_connect(t, 10000 + i, &hp);
        }
    }
    /* One more: refused (guest-initiated: a RST; host-initiated: closed). */
    harness_take_guest_warnings();
    vt_send(t, VIRTIO_VSOCK_OP_REQUEST, 20000, 100);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, 100, 20000, NULL, 0);
    assert_int_equal(harness_take_guest_warnings(), 1);
    {
        int fd = host_connect(t);

        host_write(fd, "CONNECT 20001\n", 14);
        host_expect_eof(t, fd);
        close(fd);
    }
    /* Every host socket writes; each guest port gets its own bytes. */
    for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++) {
        g_autofree char *msg = g_strdup_printf("c%u", i);

        host_write(fds[i], msg, strlen(msg));
    }
    vt_run(t);
    for (unsigned n = 0; n < VIRTIO_VSOCK_MAX_CONNS; n++) {
        g_autofree char *msg = NULL;

        if (!vt_rx(t, &r, buf, sizeof(buf))) {
            vt_run(t);
            assert_true(vt_rx(t, &r, buf, sizeof(buf)));
        }
        assert_int_equal(r.op, VIRTIO_VSOCK_OP_RW);
        msg = g_strdup_printf("c%u", r.dst_port - 10000);
        assert_int_equal(r.len, strlen(msg));
        assert_memory_equal(buf, msg, r.len);
    }
    /* Closing them all frees the slots. */
    for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++)
        close(fds[i]);
    for (unsigned n = 0; n < VIRTIO_VSOCK_MAX_CONNS; n++) {
        if (!vt_rx(t, &r, NULL, 0)) {
            vt_run(t);
            assert_true(vt_rx(t, &r, NULL, 0));
        }
        assert_int_equal(r.op, VIRTIO_VSOCK_OP_SHUTDOWN);
        vt_send(t, VIRTIO_VSOCK_OP_RST, r.dst_port, r.src_port);
    }
    vt_no_packet(t);
    close(vt_guest_connect(t, lfd, 20000, 100));
    close(lfd);
}

/* Malformed packets: dropped or answered with a RST; the device goes on. */
static void test_hostile_packets(void **state)
{
    g_autoptr(Vt) t = vt_new();
    int lfd = host_listen(t, 110);
    int hfd = vt_guest_connect(t, lfd, 8000, 110);
    uint64_t a = virtio_driver_alloc(t->d, 256, 8);
    Pkt p;

    harness_take_guest_warnings();
    /* A header cut short. */
    p = pkt(VIRTIO_VSOCK_OP_RW, 8000, 110);
    pkt_encode(&p, virtio_driver_mem(t->d, a, 44));
    assert_true(virtio_driver_add(t->tx, &(VirtioDriverBuf){ a, 43 }, 1, NULL, 0,
                                  GUINT_TO_POINTER(1)) >= 0);
    virtio_driver_kick(t->tx);
    vt_no_packet(t);
    assert_non_null(virtio_driver_get_used(t->tx, NULL));
    assert_int_equal(harness_take_guest_warnings(), 1);
    /* A payload length beyond the buffer. */
    p.len = 100;
    pkt_encode(&p, virtio_driver_mem(t->d, a, 44));
    assert_true(virtio_driver_add(t->tx, &(VirtioDriverBuf){ a, 44 + 99 }, 1, NULL, 0,
                                  GUINT_TO_POINTER(2)) >= 0);
    virtio_driver_kick(t->tx);
    vt_no_packet(t);
    assert_non_null(virtio_driver_get_used(t->tx, NULL));
    assert_int_equal(harness_take_guest_warnings(), 1);
    /* Huge lengths. */
    p.len = 0xffffffff;
    pkt_encode(&p, virtio_driver_mem(t->d, a, 44));
    assert_true(virtio_driver_add(t->tx, &(VirtioDriverBuf){ a, 200 }, 1, NULL, 0,
                                  GUINT_TO_POINTER(3)) >= 0);
    virtio_driver_kick(t->tx);
    vt_no_packet(t);
    assert_non_null(virtio_driver_get_used(t->tx, NULL));
    /* A header split over many descriptors, with zero-length ones among them. */
    {
        VirtioDriverBuf parts[6] = { { a, 0 }, { a, 10 }, { a + 10, 0 }, { a + 10, 30 },
                                     { a + 40, 4 }, { a + 44, 2 } };

        p = pkt(VIRTIO_VSOCK_OP_RW, 8000, 110);
        p.len = 2;
        pkt_encode(&p, virtio_driver_mem(t->d, a, 44));
        memcpy(virtio_driver_mem(t->d, a + 44, 2), "ok", 2);
        virtio_driver_queue_set_indirect(t->tx, FALSE);
        assert_true(virtio_driver_add(t->tx, parts, 6, NULL, 0, GUINT_TO_POINTER(4)) >= 0);
        virtio_driver_kick(t->tx);
        host_expect(t, hfd, "ok");
        assert_non_null(virtio_driver_get_used(t->tx, NULL));
        virtio_driver_queue_set_indirect(t->tx, TRUE);
    }
    /* An unknown op on a connection: a RST, the host side closed. */
    p = pkt(42, 8000, 110);
    vt_tx(t, &p, NULL, 0);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, 110, 8000, NULL, 0);
    host_expect_eof(t, hfd);
    close(hfd);
    /* INVALID (0) for no connection: a RST. */
    vt_send(t, VIRTIO_VSOCK_OP_INVALID, 8001, 110);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, 110, 8001, NULL, 0);
    /* A second REQUEST on an open connection. */
    hfd = vt_guest_connect(t, lfd, 8002, 110);
    vt_send(t, VIRTIO_VSOCK_OP_REQUEST, 8002, 110);
    vt_expect(t, VIRTIO_VSOCK_OP_RST, 110, 8002, NULL, 0);
    host_expect_eof(t, hfd);
    close(hfd);
    /* Data before the guest accepted a host-initiated connection. */
    {
        uint32_t hp;
        int fd = vt_host_request(t, 8003, &hp);

        p = pkt(VIRTIO_VSOCK_OP_RW, 8003, hp);
        p.len = 1;
        vt_tx(t, &p, "z", 1);
        vt_expect(t, VIRTIO_VSOCK_OP_RST, hp, 8003, NULL, 0);
        host_expect_eof(t, fd);
        close(fd);
    }
    /* A zero-length rx buffer, and one too short for a header: used with 0 bytes. */
    {
        uint64_t rb = virtio_driver_alloc(t->d, 64, 8);
        uint32_t len = 1;
        Pkt r;
        void *tok;
        unsigned drained = 0;

        /* Take every posted buffer off the device first. */
        while (virtio_driver_queue_inflight(t->rx)) {
            vt_send(t, VIRTIO_VSOCK_OP_RW, 9000 + drained, 110);
            vt_run(t);
            while ((tok = virtio_driver_get_used(t->rx, &len)))
                drained++;
        }
        assert_true(virtio_driver_add(t->rx, NULL, 0, &(VirtioDriverBuf){ rb, 0 }, 1,
                                      GUINT_TO_POINTER(1000)) >= 0);
        assert_true(virtio_driver_add(t->rx, NULL, 0, &(VirtioDriverBuf){ rb, 44 }, 1,
                                      GUINT_TO_POINTER(1001)) >= 0);
        virtio_driver_kick(t->rx);
        vt_send(t, VIRTIO_VSOCK_OP_RW, 9999, 110);
        vt_run(t);
        assert_ptr_equal(virtio_driver_get_used(t->rx, &len), GUINT_TO_POINTER(1000));
        assert_int_equal(len, 0);
        assert_ptr_equal(virtio_driver_get_used(t->rx, &len), GUINT_TO_POINTER(1001));
        assert_int_equal(len, 0);
        /* The RST is still owed, and comes with real buffers. */
        vt_post_all_rx(t);
        vt_expect(t, VIRTIO_VSOCK_OP_RST, 110, 9999, NULL, 0);
        (void)r;
    }
    harness_take_guest_warnings();
    close(lfd);
}

/* No rx buffers and a flood of requests: tx stops at VSOCK_MAX_RSTS owed resets, then goes on. */
static void test_tx_stall(void **state)
{
    g_autoptr(Vt) t = vt_new_opts(NULL, NULL, TRUE, FALSE);
    const unsigned n = 100;
    uint64_t mem = virtio_driver_alloc(t->d, n * 64, 8);
    unsigned used = 0, rsts = 0;
    Pkt r;

    for (unsigned i = 0; i < n; i++) {
        Pkt p = pkt(VIRTIO_VSOCK_OP_REQUEST, 30000 + i, 1);

        vt_tx_at(t, mem + 64 * i, &p, NULL, 0, FALSE);
    }
    vt_run(t);
    while (virtio_driver_get_used(t->tx, NULL))
        used++;
    assert_int_equal(used, 64);
    vt_post_all_rx(t);
    for (unsigned round = 0; round < 10 && rsts < n; round++) {
        vt_run(t);
        while (vt_rx(t, &r, NULL, 0)) {
            assert_true(r.op == VIRTIO_VSOCK_OP_RST && r.dst_port == 30000 + rsts);
            rsts++;
        }
        while (virtio_driver_get_used(t->tx, NULL))
            used++;
    }
    assert_int_equal(used, n);
    assert_int_equal(rsts, n);
}

/* The hostile ring cases. */
static void test_hostile_rings(void **state)
{
    g_autoptr(Vt) t = vt_new_opts(NULL, NULL, FALSE, FALSE);
    const VirtioDriverLayout *l = virtio_driver_layout(t->d);
    VirtioDriverQueue *tx;
    uint64_t buf;
    uint8_t *desc;
    int head;

    assert_true(virtio_driver_init(t->d, VIRTIO_DRIVER_ALL_FEATURES));
    tx = virtio_driver_setup_queue(t->d, VIRTIO_VSOCK_Q_TX, 16);
    virtio_driver_ok(t->d);
    /* Notifications of queues never set up (rx, event) or that do not exist. */
    for (unsigned i = 0; i < 8; i++)
        virtio_driver_mmio_write(t->d, l->notify.addr + l->notify_multiplier * i, 2, i);
    vt_run(t);
    assert_false(virtio_driver_get_status(t->d) & VIRTIO_STATUS_NEEDS_RESET);
    /* Queue index overflow. */
    for (unsigned sel = 3; sel < 0x10000; sel = sel * 5 + 2) {
        virtio_driver_common_write(t->d, VIRTIO_PCI_COMMON_Q_SELECT, 2, sel);
        virtio_driver_common_write(t->d, VIRTIO_PCI_COMMON_Q_SIZE, 2, 16);
        virtio_driver_common_write(t->d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
        assert_int_equal(virtio_driver_common_read(t->d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    }
    /* A request with no rx queue: the RST waits (nowhere to put it), nothing breaks. */
    buf = virtio_driver_alloc(t->d, 64, 8);
    {
        Pkt p = pkt(VIRTIO_VSOCK_OP_REQUEST, 1, 2);

        pkt_encode(&p, virtio_driver_mem(t->d, buf, 44));
    }
    assert_true(virtio_driver_add(tx, &(VirtioDriverBuf){ buf, 44 }, 1, NULL, 0,
                                  GUINT_TO_POINTER(1)) >= 0);
    virtio_driver_kick(tx);
    vt_run(t);
    assert_non_null(virtio_driver_get_used(tx, NULL));
    /* A zero-length tx buffer. */
    assert_true(virtio_driver_add(tx, &(VirtioDriverBuf){ buf, 0 }, 1, NULL, 0,
                                  GUINT_TO_POINTER(2)) >= 0);
    virtio_driver_kick(tx);
    vt_run(t);
    assert_non_null(virtio_driver_get_used(tx, NULL));
    /* A descriptor loop. */
    virtio_driver_queue_set_indirect(tx, FALSE);
    head = virtio_driver_add(tx, (VirtioDriverBuf[]){ { buf, 44 }, { buf + 44, 4 } }, 2, NULL, 0,
                             GUINT_TO_POINTER(3));
    desc = virtio_driver_mem(t->d, virtio_driver_queue_desc(tx), 16 * 16);
    for (unsigned i = 0; i < 16; i++) {
        if (i != (unsigned)head && vireo_le_load(desc + 16 * i, 8) == buf + 44) {
            vireo_le_store(desc + 16 * i + 12, 2, VIRTQ_DESC_F_NEXT);
            vireo_le_store(desc + 16 * i + 14, 2, head);
        }
    }
    virtio_driver_kick(tx);
    vt_run(t);
    assert_true(virtio_driver_get_status(t->d) & VIRTIO_STATUS_NEEDS_RESET);
    assert_null(virtio_driver_get_used(tx, NULL));
    /* Out-of-range addresses, after a reset: a broken rx ring. */
    virtio_driver_reset(t->d);
    assert_true(virtio_driver_init(t->d, VIRTIO_DRIVER_ALL_FEATURES));
    t->rx = virtio_driver_setup_queue(t->d, VIRTIO_VSOCK_Q_RX, 16);
    t->tx = virtio_driver_setup_queue(t->d, VIRTIO_VSOCK_Q_TX, 16);
    virtio_driver_ok(t->d);
    head = virtio_driver_add(t->rx, NULL, 0, &(VirtioDriverBuf){ buf, 64 }, 1,
                             GUINT_TO_POINTER(1));
    desc = virtio_driver_mem(t->d, virtio_driver_queue_desc(t->rx) + 16 * head, 16);
    vireo_le_store(desc, 8, 0xfffffffffff00000ULL);
    virtio_driver_kick(t->rx);
    vt_send(t, VIRTIO_VSOCK_OP_REQUEST, 1, 2);
    vt_run(t);
    assert_true(virtio_driver_get_status(t->d) & VIRTIO_STATUS_NEEDS_RESET);
    assert_null(virtio_driver_get_used(t->rx, NULL));
    harness_take_guest_warnings();
}

/* A driver reset drops every connection; the listener stays. */
static void test_reset(void **state)
{
    g_autoptr(Vt) t = vt_new();
    int lfd = host_listen(t, 120);
    int h1 = vt_guest_connect(t, lfd, 1, 120);
    uint32_t hp;
    int h2 = vt_host_connect(t, 2, &hp);

    virtio_driver_reset(t->d);
    host_expect_eof(t, h1);
    host_expect_eof(t, h2);
    close(h1);
    close(h2);
    assert_int_equal(harness_loop_watched(t->e->loop), 1);
    close(lfd);
}

/* Connections cannot migrate: dropped, and TRANSPORT_RESET tells the guest. */
static void test_save_load(void **state)
{
    static const HarnessPoke pokes[] = {
        { "vsock-guest-cid", 0, 2 },            /* the host's CID */
        { "vsock-guest-cid", 4, 1 },            /* upper 32 bits set */
        { "q1-size", 0, 0xff },
    };
    g_autoptr(Vt) t = vt_new();
    g_autoptr(Vt) t2 = NULL;
    int lfd = host_listen(t, 130);
    int hfd;
    uint8_t cid[8];
    uint32_t len = 0;
    void *tok;
    Pkt p, r;

    /*
     * Damaged state is refused. (The transport then loads back what the
     * device had, and that load drops connections too: loads are for
     * devices that have not run.)
     */
    harness_check_corrupt_state(virtio_driver_device(t->d), pokes, G_N_ELEMENTS(pokes), FALSE);
    vt_run(t);
    assert_non_null(virtio_driver_get_used(t->ev, NULL));
    assert_null(virtio_driver_get_used(t->ev, NULL));

    /* A connection with data in flight both ways, then a migration. */
    hfd = vt_guest_connect(t, lfd, 40000, 130);
    host_write(hfd, "before", 6);
    vt_expect(t, VIRTIO_VSOCK_OP_RW, 130, 40000, NULL, 0);
    host_write(hfd, "unread", 6);

    /* A destination in another directory, with another CID. */
    t2 = g_new0(Vt, 1);
    t2->e = harness_env_new("vsock", 0);
    t2->dir = g_dir_make_tmp("vireo-vsock-XXXXXX", NULL);
    t2->path = g_build_filename(t2->dir, "v.sock", NULL);
    {
        g_autofree char *opts = g_strdup_printf("cid=77,socket=%s", t2->path);

        t2->d = virtio_driver_migrate(t->d, t2->e, opts);
    }
    t2->rx = virtio_driver_queue(t2->d, VIRTIO_VSOCK_Q_RX);
    t2->tx = virtio_driver_queue(t2->d, VIRTIO_VSOCK_Q_TX);
    t2->ev = virtio_driver_queue(t2->d, VIRTIO_VSOCK_Q_EVENT);
    t2->rxmem = t->rxmem;
    t2->slot = t->slot;
    vt_run(t2);
    tok = virtio_driver_get_used(t2->ev, &len);
    assert_non_null(tok);
    assert_int_equal(len, 4);
    assert_int_equal(vireo_le_load(virtio_driver_mem(t2->d, t->evmem + 4 * (GPOINTER_TO_UINT(tok) - 1), 4), 4),
                     VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
    assert_null(virtio_driver_get_used(t2->ev, NULL));
    assert_int_equal(virtio_driver_queue_interrupts(t2->ev), 1);
    /* The guest reads its new CID, and its old connection's packets get a RST. */
    virtio_driver_config_read(t2->d, 0, cid, 8);
    assert_true(vireo_le_load(cid, 8) == 77);
    p = pkt(VIRTIO_VSOCK_OP_RW, 40000, 130);
    p.src_cid = 77;
    p.len = 1;
    vt_tx(t2, &p, "x", 1);
    vt_run(t2);
    /* (What the source had put in the rx ring before is there, as in guest RAM.) */
    assert_true(vt_rx(t2, &r, NULL, 0));
    assert_true(r.op == VIRTIO_VSOCK_OP_RW && r.len == 6 && r.dst_cid == GCID);
    assert_true(vt_rx(t2, &r, NULL, 0));
    assert_true(r.op == VIRTIO_VSOCK_OP_RST && r.dst_cid == 77 && r.dst_port == 40000);

    close(hfd);
    close(lfd);
}

static void test_connect_parser(void **state)
{
    static const struct {
        const char *line;
        gboolean ok;
        uint32_t port;
    } cases[] = {
        { "CONNECT 52\n", TRUE, 52 },
        { "CONNECT 0\n", TRUE, 0 },
        { "CONNECT 4294967295\n", TRUE, 4294967295u },
        { "CONNECT 7\r\n", TRUE, 7 },
        { "CONNECT 0000000001\n", TRUE, 1 },
        { "CONNECT 4294967296\n", FALSE, 0 },
        { "CONNECT 00000000001\n", FALSE, 0 },
        { "CONNECT 52", FALSE, 0 },
        { "CONNECT \n", FALSE, 0 },
        { "CONNECT  52\n", FALSE, 0 },
        { "CONNECT 52 \n", FALSE, 0 },
        { "CONNECT 5x\n", FALSE, 0 },
        { "CONNECT +5\n", FALSE, 0 },
        { "CONNECT 52\n\n", FALSE, 0 },
        { "CONNECT 52\r\r\n", FALSE, 0 },
        { "connect 52\n", FALSE, 0 },
        { "CONNECT52\n", FALSE, 0 },
        { "\n", FALSE, 0 },
        { "", FALSE, 0 },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        uint32_t port = 12345;
        gboolean ok = vsock_uds_parse_connect(cases[i].line, strlen(cases[i].line), &port);

        if (ok != cases[i].ok || (ok && port != cases[i].port))
            fail_msg("'%s': %d %u", g_strescape(cases[i].line, NULL), ok, port);
    }
    /* An embedded NUL is not a digit. */
    assert_false(vsock_uds_parse_connect("CONNECT 5\0\n", 11, &(uint32_t){ 0 }));
}

static void test_options(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("vsock", 0);
    g_autofree char *dir = g_dir_make_tmp("vireo-vsock-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "v.sock", NULL);
    g_autofree char *file = g_build_filename(dir, "file", NULL);
    g_autofree char *longp = g_strnfill(100, 'a');
    const char *bad[] = {
        "guest-cid=3", "uds-path=/tmp/x", "guest-cid=2,uds-path=P", "guest-cid=0,uds-path=P",
        "guest-cid=1,uds-path=P", "guest-cid=4294967295,uds-path=P",
        "guest-cid=4294967299,uds-path=P", "guest-cid=x,uds-path=P", "guest-cid=-3,uds-path=P",
        "guest-cid=3,cid=3,uds-path=P", "cid=3,socket=P,uds-path=P", "cid=3,socket=",
        "cid=3,socket=P,port=1", "cid=,socket=P",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *opts = NULL;
        g_auto(GStrv) parts = g_strsplit(bad[i], "P", -1);
        g_autofree char *msg = NULL;

        opts = g_strjoinv(path, parts);
        msg = harness_device_new_fail(e, VS, opts, VIREO_ERROR_INVALID_ARGUMENT);
        assert_non_null(strstr(msg, VS));
    }
    /* A path too long for PATH_<port>; a file that is not a socket. */
    {
        g_autofree char *opts = g_strdup_printf("cid=3,socket=/tmp/%s", longp);

        g_free(harness_device_new_fail(e, VS, opts, VIREO_ERROR_INVALID_ARGUMENT));
    }
    g_assert_true(g_file_set_contents(file, "x", 1, NULL));
    {
        g_autofree char *opts = g_strdup_printf("cid=3,socket=%s", file);

        g_free(harness_device_new_fail(e, VS, opts, VIREO_ERROR_INVALID_ARGUMENT));
    }
    /* Both spellings; a socket in use; a stale one is replaced. */
    {
        g_autofree char *opts = g_strdup_printf("cid=3,socket=%s", path);
        g_autofree char *opts2 = g_strdup_printf("guest-cid=4294967294,uds-path=%s", path);
        Device *dev = harness_device_new(e, VS, opts);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        int stale;

        g_free(harness_device_new_fail(e, VS, opts2, VIREO_ERROR_IO));
        device_free(dev);
        /* The device removed its socket; a stale one left by a dead process is replaced. */
        assert_int_equal(access(path, F_OK), -1);
        stale = socket(AF_UNIX, SOCK_STREAM, 0);
        g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
        assert_int_equal(bind(stale, (struct sockaddr *)&addr, sizeof(addr)), 0);
        close(stale);
        device_free(harness_device_new(e, VS, opts2));
        e->env.timers = NULL;
        g_free(harness_device_new_fail(e, VS, opts, VIREO_ERROR_INVALID_ARGUMENT));
        e->env.timers = harness_timers_service(e->timers);
    }
    unlink(file);
    rmdir(dir);
}

/*
 * Random guest packets (valid ports and ops, now and then garbage), host
 * sockets that write, read, half-close and close at random, rx buffers
 * coming and going, timeouts, resets and save/load round trips: nothing
 * crashes or leaks (ASan), the device's limits hold, and a well-behaved
 * connection still works at the end.
 */
static void test_hostile_traffic(void **state)
{
    g_autoptr(Vt) t = vt_new();
    g_autoptr(GRand) r = g_rand_new_with_seed(0x50c4);
    int lfd = host_listen(t, 7);
    int hosts[16];
    unsigned nhosts = 0;
    g_autofree uint8_t *junk = g_malloc(8192);
    Pkt pk;

    for (unsigned i = 0; i < 8192; i++)
        junk[i] = g_rand_int(r);
    for (unsigned it = 0; it < 20000; it++) {
        unsigned op = g_rand_int_range(r, 0, 1000);

        if (op < 450) {
            static const uint16_t ops[] = { 0, 1, 1, 2, 3, 4, 5, 5, 5, 6, 7, 9 };
            Pkt p = pkt(ops[g_rand_int_range(r, 0, G_N_ELEMENTS(ops))],
                        g_rand_int_range(r, 1, 5),
                        g_rand_boolean(r) ? 7 : VIRTIO_VSOCK_LOCAL_PORT_BASE +
                                                g_rand_int_range(r, 0, 4));
            size_t len = 0;

            if (p.op == VIRTIO_VSOCK_OP_RW)
                len = g_rand_int_range(r, 0, 8192);
            p.len = len;
            p.flags = g_rand_int_range(r, 0, 4);
            p.buf_alloc = g_rand_int_range(r, 0, 3) ? GUEST_BUF_ALLOC : g_rand_int(r);
            p.fwd_cnt = g_rand_int(r);
            if (g_rand_int_range(r, 0, 20) == 0)
                p.len = g_rand_int(r);
            if (g_rand_int_range(r, 0, 30) == 0)
                p.type = g_rand_int_range(r, 0, 4);
            if (g_rand_int_range(r, 0, 30) == 0)
                p.dst_cid = g_rand_int_range(r, 0, 5);
            vt_tx(t, &p, junk, len);
        } else if (op < 550) {
            if (nhosts < G_N_ELEMENTS(hosts)) {
                g_autofree char *cmd = g_strdup_printf("CONNECT %u\n",
                                                       g_rand_int_range(r, 1, 5));

                hosts[nhosts] = host_connect(t);
                send(hosts[nhosts], cmd, strlen(cmd), MSG_NOSIGNAL);
                nhosts++;
            }
        } else if (op < 650) {
            int a = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

            if (a >= 0 && nhosts < G_N_ELEMENTS(hosts))
                hosts[nhosts++] = a;
            else if (a >= 0)
                close(a);
        } else if (op < 800 && nhosts) {
            unsigned i = g_rand_int_range(r, 0, nhosts);
            int what = g_rand_int_range(r, 0, 10);

            if (what < 5) {
                send(hosts[i], junk, g_rand_int_range(r, 1, 8192), MSG_NOSIGNAL | MSG_DONTWAIT);
            } else if (what < 8) {
                uint8_t buf[8192];

                recv(hosts[i], buf, sizeof(buf), MSG_DONTWAIT);
            } else if (what < 9) {
                shutdown(hosts[i], SHUT_WR);
            } else {
                close(hosts[i]);
                hosts[i] = hosts[--nhosts];
            }
        } else if (op < 900) {
            vt_run(t);
            while (vt_rx(t, &pk, NULL, 0))
                assert_true(pk.len <= GUEST_BUF_ALLOC);
        } else if (op < 950) {
            harness_timers_advance(t->e->timers, g_rand_int_range(r, 0, 3) * S);
        } else if (op < 975) {
            g_autoptr(GBytes) st = NULL;
            g_autoptr(GError) err = NULL;
            Device *dev = virtio_driver_device(t->d);

            vt_run(t);
            st = harness_save(dev);
            if (!harness_load(dev, st, &err))
                fail_msg("iteration %u: reloading own state: %s", it, err->message);
            vt_run(t);
            /* The event buffer comes back, as the driver reposts it. */
            {
                void *tok;

                while ((tok = virtio_driver_get_used(t->ev, NULL)))
                    assert_true(virtio_driver_add(t->ev, NULL, 0,
                                                  &(VirtioDriverBuf){
                                                      t->evmem + 4 * (GPOINTER_TO_UINT(tok) - 1),
                                                      4 }, 1, tok) >= 0);
                virtio_driver_kick(t->ev);
            }
        } else {
            vt_run(t);
        }
    }
    for (unsigned i = 0; i < nhosts; i++)
        close(hosts[i]);
    vt_run(t);
    harness_timers_advance(t->e->timers, 10 * S);
    vt_run(t);
    while (vt_rx(t, &pk, NULL, 0))
        ;
    /* Nothing is stuck: a fresh connection works. */
    {
        int h = vt_guest_connect(t, lfd, 99, 7);
        Pkt p = pkt(VIRTIO_VSOCK_OP_RW, 99, 7);

        p.len = 3;
        vt_tx(t, &p, "end", 3);
        host_expect(t, h, "end");
        close(h);
    }
    harness_take_guest_warnings();
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_guest_connect),
        cmocka_unit_test(test_host_connect),
        cmocka_unit_test(test_host_connect_early),
        cmocka_unit_test(test_bulk_guest_to_host),
        cmocka_unit_test(test_credit_overrun),
        cmocka_unit_test(test_bulk_host_to_guest),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_many_connections),
        cmocka_unit_test(test_hostile_packets),
        cmocka_unit_test(test_tx_stall),
        cmocka_unit_test(test_hostile_rings),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_connect_parser),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_hostile_traffic),
    };

    harness_init();
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
