/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-vsock, the socket device (virtio 1.2, 5.10), stream sockets
 * only, with the host side as UNIX sockets in Firecracker's "hybrid" style
 * (include/vireo/virtio-vsock.h says how host programs use it).
 *
 * Options:
 *   guest-cid=N      the guest's CID, 3 to 2^32 - 2 (also spelt cid=N)
 *   uds-path=PATH    the host side (also spelt socket=PATH): the device
 *                    listens on PATH and connects to PATH_<port>
 * --vsock cid=N,socket=PATH is --device virtio-vsock with these options.
 *
 * Connections are keyed by (host-side port, guest port). Each keeps:
 *   - guest to host: payload goes straight from the guest's buffers to the
 *     host socket (sendmsg on the element's iovecs); what the socket does
 *     not take is copied into the connection's buffer, written out when
 *     the socket is writable. The device advertises buf_alloc =
 *     VIRTIO_VSOCK_BUF_ALLOC and fwd_cnt = bytes the host socket took, so
 *     the buffer never holds more than buf_alloc: a guest that sends more
 *     than its credit gets a reset. A CREDIT_UPDATE goes out when the
 *     guest's view of the free space has fallen under a quarter of it and
 *     the host has taken more since.
 *   - host to guest: the device reads from the host socket straight into
 *     the guest's rx buffer, only while the guest has credit
 *     (peer_buf_alloc - (tx_cnt - peer_fwd_cnt)) and rx buffers. Otherwise
 *     it stops watching the socket, which pushes back on the host program
 *     through the socket's own buffer.
 * Control packets owed to the guest (RESPONSE, REQUEST, SHUTDOWN, RST,
 * CREDIT_UPDATE) are flags on the connection, so no amount of guest
 * traffic makes the device hold more than one of each; resets for packets
 * that match no connection wait in a queue of VSOCK_MAX_RSTS, and while
 * it is full the device stops taking tx packets (5.10.6.3.1: the tx queue
 * is processed as long as there is room for the replies).
 *
 * Closing: the guest's SHUTDOWN with both flags (what Linux sends on
 * close) is answered with a RST once the host socket took what was
 * buffered; SHUTDOWN "send" alone becomes shutdown(SHUT_WR) on the host
 * socket after the buffer. EOF from the host socket becomes SHUTDOWN
 * "send" to the guest, or SHUTDOWN with both flags when the guest had
 * stopped sending too, which Linux answers with a RST. Errors on the host
 * socket, protocol errors and timeouts give the guest a RST.
 *
 * Save/load: connections cannot migrate (the host sockets stay behind),
 * as in Firecracker. The state holds the queues (the core's fields) and
 * the CID; a load drops every connection and, once the driver runs, puts
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET in the event queue: Linux then resets
 * its connections, re-reads guest_cid (which may differ) and keeps its
 * listening sockets. Packets of the old connections get a RST. (Loads are
 * for devices that have not run, as device.h says; when the transport
 * loads back a device's own state after a failed load, that drops its
 * connections too.)
 *
 * Threads: everything but register accesses runs on the event loop thread
 * with the device lock held (queue notifications, fd and timer
 * callbacks); no element is kept popped between loop passes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vireo/util.h"
#include "vireo/virtio-pci.h"
#include "vireo/virtio-vsock.h"

#define VSOCK_QUEUE_SIZE 128
#define VSOCK_EVENT_QUEUE_SIZE 16
#define VSOCK_MAX_PAYLOAD (64 * 1024)           /* per packet to the guest */
#define VSOCK_CREDIT_THRESHOLD (VIRTIO_VSOCK_BUF_ALLOC / 4)
#define VSOCK_MAX_RSTS 64
#define VSOCK_MAX_HANDSHAKES 32
#define VSOCK_TIMEOUT_NS (VIRTIO_VSOCK_TIMEOUT_MS * 1000000LL)
#define VSOCK_TX_BUDGET 128
#define VSOCK_RX_BUDGET 128
#define VSOCK_MAX_IOV 64

/* Control packets a connection owes the guest. */
#define VSOCK_PEND_REQUEST      (1u << 0)
#define VSOCK_PEND_RESPONSE     (1u << 1)
#define VSOCK_PEND_SHUTDOWN     (1u << 2)
#define VSOCK_PEND_CREDIT       (1u << 3)
#define VSOCK_PEND_RST          (1u << 4)

#define VSOCK_SHUTDOWN_BOTH (VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE | VIRTIO_VSOCK_SHUTDOWN_F_SEND)

typedef struct VsockHdr {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port, len;
    uint16_t type, op;
    uint32_t flags, buf_alloc, fwd_cnt;
} VsockHdr;

typedef enum {
    VSOCK_CONN_CONNECTING,      /* host-initiated: waiting for the guest's RESPONSE */
    VSOCK_CONN_ESTABLISHED,
    VSOCK_CONN_CLOSED,          /* host socket gone: a RST to send, or one to wait for */
} VsockConnState;

typedef struct VirtioVsock VirtioVsock;

typedef struct VsockConn {
    VirtioVsock *vs;
    uint64_t key;               /* local_port << 32 | peer_port */
    uint32_t local_port;        /* host side (CID 2) */
    uint32_t peer_port;         /* guest side */
    VsockConnState state;
    int fd;                     /* the host socket, -1 once closed */
    EventSource *src;
    uint32_t watch;             /* events src watches (0: no src) */
    uint32_t pending;           /* VSOCK_PEND_* */
    uint32_t shutdown_flags;    /* for the SHUTDOWN owed */
    gboolean request_sent;
    uint32_t peer_shutdown;     /* what the guest said it stopped doing */
    gboolean host_readable;     /* the socket had data (or EOF) we have not read yet */
    gboolean host_eof;
    gboolean host_shut_wr;
    /* Guest to host. */
    uint32_t rx_cnt;            /* payload bytes from the guest */
    uint32_t fwd_cnt;           /* of those, taken by the host socket */
    uint32_t fwd_cnt_sent;      /* fwd_cnt as last told to the guest */
    GByteArray *buf;            /* bytes waiting for the socket: */
    uint32_t buf_ours;          /* first our "OK <port>\n", then rx_cnt - fwd_cnt of the guest's */
    /* Host to guest. */
    uint32_t tx_cnt;
    uint32_t peer_buf_alloc;
    uint32_t peer_fwd_cnt;
    int64_t deadline;           /* 0: none */
    gboolean queued;            /* in vs->rx_queue */
    GList link;
} VsockConn;

/* A host program connected to uds-path and has not sent its CONNECT yet. */
typedef struct VsockHandshake {
    VirtioVsock *vs;
    int fd;
    EventSource *src;
    int64_t deadline;
    char line[VSOCK_UDS_CONNECT_MAX];  /* the command so far */
    size_t len;
    GList link;
} VsockHandshake;

/* A reset for a packet that matched no connection. */
typedef struct VsockRst {
    uint64_t src_cid;           /* as the reply's header has them */
    uint32_t src_port, dst_port;
    uint16_t type;
} VsockRst;

struct VirtioVsock {
    VirtioDevice vdev;          /* first: the transport holds &vdev */
    uint64_t guest_cid;
    char *uds_path;
    int listen_fd;
    EventSource *listen_src;
    dev_t sock_dev;
    ino_t sock_ino;
    Timer *timer;
    VirtqElement *rx_elem, *tx_elem, *ev_elem;
    /* Under the lock. */
    GHashTable *conns;          /* &key -> VsockConn */
    GQueue rx_queue;            /* connections with something for the guest */
    GQueue handshakes;
    VsockRst rsts[VSOCK_MAX_RSTS];
    unsigned nr_rsts;
    gboolean event_pending;     /* a TRANSPORT_RESET to deliver */
    gboolean tx_stalled;        /* no room for replies: tx waits for rx */
    uint32_t next_port;
    int64_t timer_at;           /* armed deadline, 0: not armed */
};

static VirtioVsock *virtio_vsock_from_vdev(VirtioDevice *vdev)
{
    return (VirtioVsock *)vdev;
}

/* --- packets --- */

static void vsock_hdr_decode(VsockHdr *h, const uint8_t *b)
{
    h->src_cid = vireo_le_load(b + VIRTIO_VSOCK_HDR_SRC_CID, 8);
    h->dst_cid = vireo_le_load(b + VIRTIO_VSOCK_HDR_DST_CID, 8);
    h->src_port = vireo_le_load(b + VIRTIO_VSOCK_HDR_SRC_PORT, 4);
    h->dst_port = vireo_le_load(b + VIRTIO_VSOCK_HDR_DST_PORT, 4);
    h->len = vireo_le_load(b + VIRTIO_VSOCK_HDR_LEN, 4);
    h->type = vireo_le_load(b + VIRTIO_VSOCK_HDR_TYPE, 2);
    h->op = vireo_le_load(b + VIRTIO_VSOCK_HDR_OP, 2);
    h->flags = vireo_le_load(b + VIRTIO_VSOCK_HDR_FLAGS, 4);
    h->buf_alloc = vireo_le_load(b + VIRTIO_VSOCK_HDR_BUF_ALLOC, 4);
    h->fwd_cnt = vireo_le_load(b + VIRTIO_VSOCK_HDR_FWD_CNT, 4);
}

static void vsock_hdr_encode(const VsockHdr *h, uint8_t *b)
{
    vireo_le_store(b + VIRTIO_VSOCK_HDR_SRC_CID, 8, h->src_cid);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_DST_CID, 8, h->dst_cid);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_SRC_PORT, 4, h->src_port);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_DST_PORT, 4, h->dst_port);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_LEN, 4, h->len);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_TYPE, 2, h->type);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_OP, 2, h->op);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_FLAGS, 4, h->flags);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_BUF_ALLOC, 4, h->buf_alloc);
    vireo_le_store(b + VIRTIO_VSOCK_HDR_FWD_CNT, 4, h->fwd_cnt);
}

/* @len bytes of @sg from @offset as iovecs (at most @max); returns how many. */
static unsigned vsock_iov_slice(const struct iovec *sg, unsigned n, size_t offset, size_t len,
                                struct iovec *out, unsigned max)
{
    unsigned k = 0;

    for (unsigned i = 0; i < n && len && k < max; i++) {
        size_t l = sg[i].iov_len;

        if (offset >= l) {
            offset -= l;
            continue;
        }
        out[k].iov_base = (uint8_t *)sg[i].iov_base + offset;
        out[k].iov_len = MIN(l - offset, len);
        len -= out[k].iov_len;
        offset = 0;
        k++;
    }
    return k;
}

/* --- connections --- */

static uint64_t vsock_key(uint32_t local_port, uint32_t peer_port)
{
    return (uint64_t)local_port << 32 | peer_port;
}

static gboolean vsock_ready(VirtioVsock *vs, unsigned index)
{
    VirtQueue *vq = vs->vdev.queues[index].vq;

    return (vs->vdev.status & VIRTIO_STATUS_DRIVER_OK) && virtq_is_enabled(vq) &&
           !virtq_is_broken(vq);
}

static size_t vsock_conn_buffered(const VsockConn *c)
{
    return c->buf ? c->buf->len : 0;
}

/* The guest's bytes in the buffer: what its credit accounts for. */
static size_t vsock_conn_guest_buffered(const VsockConn *c)
{
    return vsock_conn_buffered(c) - c->buf_ours;
}

/* What the guest lets us send it now. */
static uint32_t vsock_conn_peer_credit(const VsockConn *c)
{
    uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

    return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static gboolean vsock_conn_can_read(const VsockConn *c)
{
    return c->state == VSOCK_CONN_ESTABLISHED && c->fd >= 0 && c->host_readable &&
           !c->host_eof && !(c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE) &&
           vsock_conn_peer_credit(c) > 0;
}

static void vsock_conn_io(int fd, uint32_t events, void *opaque);

/* Watches the host socket for what the connection can use now. */
static void vsock_conn_watch(VsockConn *c)
{
    VirtioVsock *vs = c->vs;
    uint32_t want = 0;

    if (c->fd >= 0) {
        if (c->state == VSOCK_CONN_ESTABLISHED && !c->host_readable && !c->host_eof &&
            !(c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE))
            want |= EPOLLIN;
        if (vsock_conn_buffered(c))
            want |= EPOLLOUT;
    }
    if (want == c->watch)
        return;
    /* No events: no source, so that a hangup cannot make the loop spin. */
    if (!want) {
        event_source_remove(vs->vdev.loop, c->src);
        c->src = NULL;
    } else if (!c->src) {
        g_autoptr(GError) err = NULL;

        c->src = event_loop_add_fd(vs->vdev.loop, c->fd, want, vsock_conn_io, c, &err);
        if (!c->src) {
            g_warning("%s: connection %u:%u: %s", vs->vdev.id, c->local_port, c->peer_port,
                      err->message);
            want = 0;
        }
    } else {
        event_source_set_events(vs->vdev.loop, c->src, want);
    }
    c->watch = want;
}

static void vsock_conn_close_host(VsockConn *c)
{
    event_source_remove(c->vs->vdev.loop, c->src);
    c->src = NULL;
    c->watch = 0;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->buf)
        g_byte_array_unref(c->buf);
    c->buf = NULL;
    c->buf_ours = 0;
    c->host_readable = FALSE;
}

static void vsock_conn_destroy(VsockConn *c)
{
    VirtioVsock *vs = c->vs;

    if (c->queued)
        g_queue_unlink(&vs->rx_queue, &c->link);
    vsock_conn_close_host(c);
    g_hash_table_remove(vs->conns, &c->key);
    g_free(c);
}

/* After any change: queue the connection for rx if it has something for the guest. */
static void vsock_conn_update(VsockConn *c)
{
    if (!c->queued && (c->pending || vsock_conn_can_read(c))) {
        g_queue_push_tail_link(&c->vs->rx_queue, &c->link);
        c->queued = TRUE;
    }
    vsock_conn_watch(c);
}

/* Gives up on a connection: the host socket goes, the guest gets a RST. */
static void vsock_conn_reset(VsockConn *c)
{
    vsock_conn_close_host(c);
    c->state = VSOCK_CONN_CLOSED;
    c->pending = VSOCK_PEND_RST;
    c->deadline = 0;
    vsock_conn_update(c);
}

static VsockConn *vsock_conn_new(VirtioVsock *vs, uint32_t local_port, uint32_t peer_port, int fd,
                                 VsockConnState state)
{
    VsockConn *c = g_new0(VsockConn, 1);

    c->vs = vs;
    c->local_port = local_port;
    c->peer_port = peer_port;
    c->key = vsock_key(local_port, peer_port);
    c->fd = fd;
    c->state = state;
    c->link.data = c;
    g_hash_table_insert(vs->conns, &c->key, c);
    return c;
}

static void vsock_set_deadline(VsockConn *c)
{
    c->deadline = timer_service_now(c->vs->vdev.timers) + VSOCK_TIMEOUT_NS;
}

/* The guest's view of our free space got small and we have more: tell it. */
static void vsock_conn_check_credit(VsockConn *c)
{
    int64_t seen_free = VIRTIO_VSOCK_BUF_ALLOC - (int64_t)(uint32_t)(c->rx_cnt - c->fwd_cnt_sent);

    if (c->fwd_cnt != c->fwd_cnt_sent && seen_free < VSOCK_CREDIT_THRESHOLD)
        c->pending |= VSOCK_PEND_CREDIT;
}

/* The buffer is empty: carry out what the guest's SHUTDOWN asked for. */
static void vsock_conn_drained(VsockConn *c)
{
    if (!(c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_F_SEND))
        return;
    if (c->peer_shutdown == VSOCK_SHUTDOWN_BOTH || c->host_eof) {
        /* A clean close (the guest waits for our RST), or nothing left either way. */
        vsock_conn_reset(c);
        return;
    }
    if (!c->host_shut_wr) {
        shutdown(c->fd, SHUT_WR);
        c->host_shut_wr = TRUE;
    }
}

/* Writes out the buffer as far as the host socket takes it. FALSE: reset. */
static gboolean vsock_conn_flush(VsockConn *c)
{
    while (vsock_conn_buffered(c)) {
        struct iovec iov = { c->buf->data, c->buf->len };
        ssize_t n = vsock_uds_send(c->fd, &iov, 1);

        if (n < 0) {
            g_debug("%s: connection %u:%u: host socket: %s", c->vs->vdev.id, c->local_port,
                    c->peer_port, g_strerror(errno));
            vsock_conn_reset(c);
            return FALSE;
        }
        if (!n)
            break;
        g_byte_array_remove_range(c->buf, 0, n);
        /* Our acknowledgement is not the guest's data. */
        c->fwd_cnt += n - MIN((uint32_t)n, c->buf_ours);
        c->buf_ours -= MIN((uint32_t)n, c->buf_ours);
    }
    if (c->buf && !c->buf->len)
        g_clear_pointer(&c->buf, g_byte_array_unref);
    if (c->state == VSOCK_CONN_ESTABLISHED) {
        vsock_conn_check_credit(c);
        if (!vsock_conn_buffered(c))
            vsock_conn_drained(c);
    }
    return TRUE;
}

/* Appends to the buffer, for the host socket. */
static uint8_t *vsock_conn_buffer(VsockConn *c, size_t len)
{
    size_t at;

    if (!c->buf)
        c->buf = g_byte_array_new();
    at = c->buf->len;
    g_byte_array_set_size(c->buf, at + len);
    return c->buf->data + at;
}

/* RW payload of @elem for the host: straight from guest memory, the rest buffered. */
static void vsock_conn_forward(VsockConn *c, const VirtqElement *elem, uint32_t len)
{
    size_t sent = 0;

    if (!vsock_conn_buffered(c)) {
        struct iovec iov[VSOCK_MAX_IOV];
        unsigned n = vsock_iov_slice(elem->out_sg, elem->out_num, VIRTIO_VSOCK_HDR_SIZE, len,
                                     iov, VSOCK_MAX_IOV);
        ssize_t r = vsock_uds_send(c->fd, iov, n);

        if (r < 0) {
            g_debug("%s: connection %u:%u: host socket: %s", c->vs->vdev.id, c->local_port,
                    c->peer_port, g_strerror(errno));
            vsock_conn_reset(c);
            return;
        }
        sent = r;
        c->fwd_cnt += r;
    }
    if (sent < len)
        virtq_element_read(elem, VIRTIO_VSOCK_HDR_SIZE + sent, vsock_conn_buffer(c, len - sent),
                           len - sent);
    vsock_conn_check_credit(c);
}

/* The host socket said EOF. */
static void vsock_conn_host_eof(VsockConn *c)
{
    c->host_eof = TRUE;
    c->host_readable = FALSE;
    if ((c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_F_SEND) && !vsock_conn_buffered(c)) {
        /* Nothing more either way: Linux answers SHUTDOWN with both flags with a RST. */
        vsock_conn_close_host(c);
        c->state = VSOCK_CONN_CLOSED;
        c->shutdown_flags = VSOCK_SHUTDOWN_BOTH;
        vsock_set_deadline(c);
    } else {
        c->shutdown_flags = VIRTIO_VSOCK_SHUTDOWN_F_SEND;
    }
    c->pending |= VSOCK_PEND_SHUTDOWN;
}

/* --- the guest's packets (tx) --- */

static void vsock_queue_rst(VirtioVsock *vs, const VsockHdr *h)
{
    if (h->op == VIRTIO_VSOCK_OP_RST)
        return;                         /* never a reset for a reset */
    /* tx stops before this can overflow (vsock_tx_run). */
    g_assert(vs->nr_rsts < VSOCK_MAX_RSTS);
    vs->rsts[vs->nr_rsts++] = (VsockRst){
        .src_cid = h->dst_cid, .src_port = h->dst_port, .dst_port = h->src_port,
        .type = h->type,
    };
}

/* A REQUEST for no connection we know: connect to uds-path_<port>. */
static void vsock_guest_connect(VirtioVsock *vs, const VsockHdr *h)
{
    VsockConn *c;
    int fd;

    if (g_hash_table_size(vs->conns) >= VIRTIO_VSOCK_MAX_CONNS) {
        vireo_guest_warn("%s: connection to port %u refused: %u connections already",
                         vs->vdev.id, h->dst_port, VIRTIO_VSOCK_MAX_CONNS);
        vsock_queue_rst(vs, h);
        return;
    }
    fd = vsock_uds_connect(vs->uds_path, h->dst_port);
    if (fd < 0) {
        g_debug("%s: guest connection to %s_%u: %s", vs->vdev.id, vs->uds_path, h->dst_port,
                g_strerror(errno));
        vsock_queue_rst(vs, h);
        return;
    }
    c = vsock_conn_new(vs, h->dst_port, h->src_port, fd, VSOCK_CONN_ESTABLISHED);
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    c->pending = VSOCK_PEND_RESPONSE;
    vsock_conn_update(c);
}

static void vsock_conn_handle(VsockConn *c, const VsockHdr *h, const VirtqElement *elem)
{
    VirtioVsock *vs = c->vs;

    if (c->state == VSOCK_CONN_CLOSED) {
        /* Our RST is on its way, or we wait for the guest's: only that matters. */
        if (h->op == VIRTIO_VSOCK_OP_RST)
            vsock_conn_destroy(c);
        return;
    }
    /* Every packet carries the guest's credit (5.10.6.3). */
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    switch (h->op) {
    case VIRTIO_VSOCK_OP_RST:
        vsock_conn_destroy(c);
        return;
    case VIRTIO_VSOCK_OP_RESPONSE: {
        char ok[32];
        int n;

        if (c->state != VSOCK_CONN_CONNECTING) {
            vireo_guest_warn("%s: RESPONSE on established connection %u:%u", vs->vdev.id,
                             c->local_port, c->peer_port);
            vsock_conn_reset(c);
            return;
        }
        c->state = VSOCK_CONN_ESTABLISHED;
        c->deadline = 0;
        /* Firecracker's acknowledgement, ahead of any data (nothing is buffered yet). */
        n = g_snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
        memcpy(vsock_conn_buffer(c, n), ok, n);
        c->buf_ours = n;
        if (!vsock_conn_flush(c))
            return;
        break;
    }
    case VIRTIO_VSOCK_OP_RW:
        if (c->state != VSOCK_CONN_ESTABLISHED ||
            (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_F_SEND)) {
            vireo_guest_warn("%s: data on connection %u:%u that cannot take it", vs->vdev.id,
                             c->local_port, c->peer_port);
            vsock_conn_reset(c);
            return;
        }
        if (vsock_conn_guest_buffered(c) + h->len > VIRTIO_VSOCK_BUF_ALLOC) {
            vireo_guest_warn("%s: connection %u:%u: %u bytes beyond the guest's credit",
                             vs->vdev.id, c->local_port, c->peer_port, h->len);
            vsock_conn_reset(c);
            return;
        }
        c->rx_cnt += h->len;
        vsock_conn_forward(c, elem, h->len);
        break;
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
        break;                          /* the credit above was all */
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        c->pending |= VSOCK_PEND_CREDIT;
        break;
    case VIRTIO_VSOCK_OP_SHUTDOWN:
        c->peer_shutdown |= h->flags & VSOCK_SHUTDOWN_BOTH;
        if (c->state != VSOCK_CONN_ESTABLISHED)
            break;
        if (vsock_conn_buffered(c)) {
            /* Carried out once the host took the buffer, but not waiting forever. */
            if (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_F_SEND)
                vsock_set_deadline(c);
            break;
        }
        vsock_conn_drained(c);
        if (c->state == VSOCK_CONN_CLOSED)
            return;
        break;
    case VIRTIO_VSOCK_OP_REQUEST:
    default:
        vireo_guest_warn("%s: connection %u:%u: unexpected op %u", vs->vdev.id, c->local_port,
                         c->peer_port, h->op);
        vsock_conn_reset(c);
        return;
    }
    vsock_conn_update(c);
}

static void vsock_handle_packet(VirtioVsock *vs, const VirtqElement *elem)
{
    uint8_t raw[VIRTIO_VSOCK_HDR_SIZE];
    VsockHdr h;
    VsockConn *c;
    uint64_t key;

    if (elem->out_len < VIRTIO_VSOCK_HDR_SIZE) {
        vireo_guest_warn("%s: tx packet of %u bytes, shorter than its header", vs->vdev.id,
                         elem->out_len);
        return;
    }
    virtq_element_read(elem, 0, raw, sizeof(raw));
    vsock_hdr_decode(&h, raw);
    if (h.len > elem->out_len - VIRTIO_VSOCK_HDR_SIZE) {
        vireo_guest_warn("%s: tx packet says %u bytes of payload, has %u", vs->vdev.id, h.len,
                         elem->out_len - VIRTIO_VSOCK_HDR_SIZE);
        return;
    }
    if (h.src_cid != vs->guest_cid) {
        /* Nobody to answer: the source is not this guest. */
        vireo_guest_warn("%s: tx packet from CID %" PRIu64 ", not the guest's %" PRIu64,
                         vs->vdev.id, h.src_cid, vs->guest_cid);
        return;
    }
    if (h.type != VIRTIO_VSOCK_TYPE_STREAM || h.dst_cid != VIRTIO_VSOCK_HOST_CID) {
        /* An unknown type must be answered with a RST (5.10.6.6); so is another CID. */
        vsock_queue_rst(vs, &h);
        return;
    }
    if (h.op != VIRTIO_VSOCK_OP_RW)
        h.len = 0;
    key = vsock_key(h.dst_port, h.src_port);
    c = g_hash_table_lookup(vs->conns, &key);
    if (c)
        vsock_conn_handle(c, &h, elem);
    else if (h.op == VIRTIO_VSOCK_OP_REQUEST)
        vsock_guest_connect(vs, &h);
    else
        vsock_queue_rst(vs, &h);
}

static void vsock_tx_run(VirtioVsock *vs)
{
    VirtQueue *vq = vs->vdev.queues[VIRTIO_VSOCK_Q_TX].vq;
    unsigned served = 0;
    int r = 0;

    vs->tx_stalled = FALSE;
    do {
        virtq_disable_notification(vq);
        for (;;) {
            /* A packet may need a reset for an answer: only with room for one. */
            if (vs->nr_rsts == VSOCK_MAX_RSTS) {
                vs->tx_stalled = TRUE;
                goto out;
            }
            if (served == VSOCK_TX_BUDGET) {
                event_loop_call(vs->vdev.loop, virtio_queue_kick,
                                &vs->vdev.queues[VIRTIO_VSOCK_Q_TX]);
                goto out;
            }
            r = virtq_pop(vq, vs->tx_elem);
            if (r != 1)
                break;
            vsock_handle_packet(vs, vs->tx_elem);
            virtq_push(vq, vs->tx_elem, 0);
            served++;
        }
    } while (r == 0 && virtq_enable_notification(vq));
    if (r < 0)
        virtio_set_needs_reset(&vs->vdev, NULL);
out:
    if (served)
        virtio_notify_queue(&vs->vdev, VIRTIO_VSOCK_Q_TX);
}

/* --- packets for the guest (rx) --- */

static void vsock_reply_header(const VirtioVsock *vs, const VsockConn *c, VsockHdr *h,
                               uint16_t op)
{
    *h = (VsockHdr){
        .src_cid = VIRTIO_VSOCK_HOST_CID, .dst_cid = vs->guest_cid,
        .src_port = c->local_port, .dst_port = c->peer_port,
        .type = VIRTIO_VSOCK_TYPE_STREAM, .op = op,
        .buf_alloc = VIRTIO_VSOCK_BUF_ALLOC, .fwd_cnt = c->fwd_cnt,
    };
}

/*
 * The next packet of @c into @elem: a control packet it owes, else data
 * from the host socket. Returns the bytes written, or 0 if it had nothing
 * after all (the element then goes back). *@dead: it was the RST that
 * ends @c, which the caller destroys.
 */
static size_t vsock_conn_fill(VsockConn *c, const VirtqElement *elem, gboolean *dead)
{
    VirtioVsock *vs = c->vs;
    uint8_t raw[VIRTIO_VSOCK_HDR_SIZE];
    VsockHdr h;

    if (c->pending & VSOCK_PEND_RST) {
        vsock_reply_header(vs, c, &h, VIRTIO_VSOCK_OP_RST);
        vsock_hdr_encode(&h, raw);
        virtq_element_write(elem, 0, raw, sizeof(raw));
        *dead = TRUE;
        return sizeof(raw);
    }
    if (c->pending & VSOCK_PEND_REQUEST) {
        c->pending &= ~VSOCK_PEND_REQUEST;
        c->request_sent = TRUE;
        vsock_reply_header(vs, c, &h, VIRTIO_VSOCK_OP_REQUEST);
    } else if (c->pending & VSOCK_PEND_RESPONSE) {
        c->pending &= ~VSOCK_PEND_RESPONSE;
        vsock_reply_header(vs, c, &h, VIRTIO_VSOCK_OP_RESPONSE);
    } else if (c->pending & VSOCK_PEND_SHUTDOWN) {
        c->pending &= ~VSOCK_PEND_SHUTDOWN;
        vsock_reply_header(vs, c, &h, VIRTIO_VSOCK_OP_SHUTDOWN);
        h.flags = c->shutdown_flags;
    } else if (c->pending & VSOCK_PEND_CREDIT) {
        vsock_reply_header(vs, c, &h, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
    } else if (vsock_conn_can_read(c)) {
        struct iovec iov[VSOCK_MAX_IOV];
        size_t room = MIN(MIN((size_t)elem->in_len - VIRTIO_VSOCK_HDR_SIZE,
                              (size_t)vsock_conn_peer_credit(c)), (size_t)VSOCK_MAX_PAYLOAD);
        unsigned n = vsock_iov_slice(elem->in_sg, elem->in_num, VIRTIO_VSOCK_HDR_SIZE, room,
                                     iov, VSOCK_MAX_IOV);
        ssize_t got;

        do {
            got = readv(c->fd, iov, n);
        } while (got < 0 && errno == EINTR);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->host_readable = FALSE;
            return 0;
        }
        if (got < 0) {
            g_debug("%s: connection %u:%u: host socket: %s", vs->vdev.id, c->local_port,
                    c->peer_port, g_strerror(errno));
            vsock_conn_reset(c);
            return 0;
        }
        if (got == 0) {
            vsock_conn_host_eof(c);
            return 0;
        }
        vsock_reply_header(vs, c, &h, VIRTIO_VSOCK_OP_RW);
        h.len = got;
        c->tx_cnt += got;
    } else {
        return 0;
    }
    /* Every packet tells the guest our credit. */
    c->pending &= ~VSOCK_PEND_CREDIT;
    c->fwd_cnt_sent = c->fwd_cnt;
    vsock_hdr_encode(&h, raw);
    virtq_element_write(elem, 0, raw, sizeof(raw));
    return sizeof(raw) + h.len;
}

/* One rx buffer's worth: a queued reset, else the next connection's packet. */
static size_t vsock_rx_fill(VirtioVsock *vs, const VirtqElement *elem)
{
    uint8_t raw[VIRTIO_VSOCK_HDR_SIZE];
    gboolean dead = FALSE;
    VsockConn *c;
    size_t n;

    if (vs->nr_rsts) {
        const VsockRst *rst = &vs->rsts[0];
        VsockHdr h = {
            .src_cid = rst->src_cid, .dst_cid = vs->guest_cid,
            .src_port = rst->src_port, .dst_port = rst->dst_port,
            .type = rst->type, .op = VIRTIO_VSOCK_OP_RST,
        };

        vsock_hdr_encode(&h, raw);
        virtq_element_write(elem, 0, raw, sizeof(raw));
        memmove(vs->rsts, vs->rsts + 1, --vs->nr_rsts * sizeof(vs->rsts[0]));
        return sizeof(raw);
    }
    c = g_queue_peek_head(&vs->rx_queue);
    g_queue_unlink(&vs->rx_queue, &c->link);
    c->queued = FALSE;
    n = vsock_conn_fill(c, elem, &dead);
    if (dead)
        vsock_conn_destroy(c);
    else
        vsock_conn_update(c);           /* to the back of the queue if it has more */
    return n;
}

static void vsock_rx_later(void *opaque);

/* Fills rx buffers with what connections owe the guest. */
static void vsock_rx_run(VirtioVsock *vs)
{
    VirtQueue *vq = vs->vdev.queues[VIRTIO_VSOCK_Q_RX].vq;
    unsigned served = 0;

    if (!vsock_ready(vs, VIRTIO_VSOCK_Q_RX))
        return;
    while (vs->nr_rsts || vs->rx_queue.length) {
        int r;
        size_t n;

        if (served == VSOCK_RX_BUDGET) {
            event_loop_call(vs->vdev.loop, vsock_rx_later, vs);
            break;
        }
        /* Notifications stay on: a driver adding buffers is what we wait for. */
        r = virtq_pop(vq, vs->rx_elem);
        if (r < 0) {
            virtio_set_needs_reset(&vs->vdev, NULL);
            break;
        }
        if (r == 0)
            break;
        /* Room for a header and some data: what Linux gives (4 KiB), and what the loop needs. */
        if (vs->rx_elem->in_len <= VIRTIO_VSOCK_HDR_SIZE) {
            vireo_guest_warn("%s: rx buffer of %u bytes, too short for a packet", vs->vdev.id,
                             vs->rx_elem->in_len);
            virtq_push(vq, vs->rx_elem, 0);
            served++;
            continue;
        }
        n = vsock_rx_fill(vs, vs->rx_elem);
        if (!n) {
            virtq_unpop(vq, vs->rx_elem);
            continue;
        }
        virtq_push(vq, vs->rx_elem, n);
        served++;
    }
    if (served)
        virtio_notify_queue(&vs->vdev, VIRTIO_VSOCK_Q_RX);
    /* Room for resets again: the tx queue may go on. */
    if (vs->tx_stalled && vs->nr_rsts < VSOCK_MAX_RSTS) {
        vs->tx_stalled = FALSE;
        event_loop_call(vs->vdev.loop, virtio_queue_kick, &vs->vdev.queues[VIRTIO_VSOCK_Q_TX]);
    }
}

/* --- events --- */

static void vsock_event_run(VirtioVsock *vs)
{
    VirtQueue *vq = vs->vdev.queues[VIRTIO_VSOCK_Q_EVENT].vq;
    unsigned served = 0;

    while (vs->event_pending && vsock_ready(vs, VIRTIO_VSOCK_Q_EVENT)) {
        uint8_t ev[VIRTIO_VSOCK_EVENT_SIZE];
        int r = virtq_pop(vq, vs->ev_elem);

        if (r < 0)
            virtio_set_needs_reset(&vs->vdev, NULL);
        if (r != 1)
            break;
        served++;
        if (vs->ev_elem->in_len < sizeof(ev)) {
            vireo_guest_warn("%s: event buffer of %u bytes", vs->vdev.id, vs->ev_elem->in_len);
            virtq_push(vq, vs->ev_elem, 0);
            continue;
        }
        vireo_le_store(ev, 4, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
        virtq_element_write(vs->ev_elem, 0, ev, sizeof(ev));
        virtq_push(vq, vs->ev_elem, sizeof(ev));
        vs->event_pending = FALSE;
    }
    if (served)
        virtio_notify_queue(&vs->vdev, VIRTIO_VSOCK_Q_EVENT);
}

/* --- timeouts --- */

static void vsock_handshake_free(VsockHandshake *hs, gboolean close_fd);

/* Acts on the deadlines that passed and arms the timer for the next one. */
static void vsock_check_deadlines(VirtioVsock *vs)
{
    int64_t now = timer_service_now(vs->vdev.timers), next = 0;
    g_autoptr(GPtrArray) due = g_ptr_array_new();
    GHashTableIter it;
    gpointer value;

    g_hash_table_iter_init(&it, vs->conns);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        VsockConn *c = value;

        if (!c->deadline)
            continue;
        if (c->deadline <= now)
            g_ptr_array_add(due, c);
        else if (!next || c->deadline < next)
            next = c->deadline;
    }
    for (guint i = 0; i < due->len; i++) {
        VsockConn *c = g_ptr_array_index(due, i);

        c->deadline = 0;
        if (c->state == VSOCK_CONN_CONNECTING && !c->request_sent) {
            /* The guest never heard of it: the host program just gets EOF. */
            vsock_conn_destroy(c);
            continue;
        }
        g_debug("%s: connection %u:%u timed out", vs->vdev.id, c->local_port, c->peer_port);
        vsock_conn_reset(c);
    }
    for (GList *l = vs->handshakes.head; l;) {
        VsockHandshake *hs = l->data;

        l = l->next;
        if (hs->deadline <= now)
            vsock_handshake_free(hs, TRUE);
        else if (!next || hs->deadline < next)
            next = hs->deadline;
    }
    if (next != vs->timer_at) {
        if (next)
            timer_arm(vs->timer, next);
        else
            timer_cancel(vs->timer);
        vs->timer_at = next;
    }
}

/* The end of every entry point: deadlines, rx, events; the timer for what rx set. Lock held. */
static void vsock_run(VirtioVsock *vs)
{
    vsock_check_deadlines(vs);
    vsock_rx_run(vs);
    vsock_event_run(vs);
    vsock_check_deadlines(vs);
}

static void vsock_rx_later(void *opaque)
{
    VirtioVsock *vs = opaque;

    virtio_device_lock(&vs->vdev);
    vsock_run(vs);
    virtio_device_unlock(&vs->vdev);
}

static void vsock_timer(void *opaque)
{
    VirtioVsock *vs = opaque;

    virtio_device_lock(&vs->vdev);
    vs->timer_at = 0;
    vsock_run(vs);
    virtio_device_unlock(&vs->vdev);
}

/* --- host sockets --- */

static void vsock_conn_io(int fd, uint32_t events, void *opaque)
{
    VsockConn *c = opaque;
    VirtioVsock *vs = c->vs;

    virtio_device_lock(&vs->vdev);
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (c->watch & EPOLLIN))
        c->host_readable = TRUE;
    if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && vsock_conn_buffered(c) &&
        !vsock_conn_flush(c))
        goto out;
    vsock_conn_update(c);
out:
    vsock_run(vs);
    virtio_device_unlock(&vs->vdev);
}

static void vsock_handshake_free(VsockHandshake *hs, gboolean close_fd)
{
    VirtioVsock *vs = hs->vs;

    event_source_remove(vs->vdev.loop, hs->src);
    if (close_fd)
        close(hs->fd);
    g_queue_unlink(&vs->handshakes, &hs->link);
    g_free(hs);
}

/* A free host-side port for a connection to guest port @peer. */
static gboolean vsock_alloc_port(VirtioVsock *vs, uint32_t peer, uint32_t *port)
{
    for (unsigned i = 0; i <= VIRTIO_VSOCK_MAX_CONNS; i++) {
        uint32_t p = vs->next_port;
        uint64_t key = vsock_key(p, peer);

        vs->next_port = p == UINT32_MAX - 1 ? VIRTIO_VSOCK_LOCAL_PORT_BASE : p + 1;
        if (!g_hash_table_contains(vs->conns, &key)) {
            *port = p;
            return TRUE;
        }
    }
    return FALSE;
}

/*
 * The host program's "CONNECT <port>\n", a byte at a time: what follows
 * the newline is the stream's, for the guest, so it stays in the socket.
 */
static void vsock_handshake_io(int fd, uint32_t events, void *opaque)
{
    VsockHandshake *hs = opaque;
    VirtioVsock *vs = hs->vs;
    uint32_t port, local;
    VsockConn *c;

    virtio_device_lock(&vs->vdev);
    for (;;) {
        ssize_t n = recv(hs->fd, hs->line + hs->len, 1, MSG_DONTWAIT);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            goto out;                   /* not all of it yet */
        if (n <= 0) {
            g_debug("%s: host connection closed before its CONNECT", vs->vdev.id);
            vsock_handshake_free(hs, TRUE);
            goto out;
        }
        if (hs->line[hs->len++] == '\n')
            break;
        if (hs->len == sizeof(hs->line)) {
            g_debug("%s: host connection without a valid CONNECT: closed", vs->vdev.id);
            vsock_handshake_free(hs, TRUE);
            goto out;
        }
    }
    if (!vsock_uds_parse_connect(hs->line, hs->len, &port)) {
        g_debug("%s: host connection without a valid CONNECT: closed", vs->vdev.id);
        vsock_handshake_free(hs, TRUE);
        goto out;
    }
    if (!vsock_ready(vs, VIRTIO_VSOCK_Q_RX) ||
        g_hash_table_size(vs->conns) >= VIRTIO_VSOCK_MAX_CONNS ||
        !vsock_alloc_port(vs, port, &local)) {
        g_debug("%s: CONNECT %u: the guest cannot take it now: closed", vs->vdev.id, port);
        vsock_handshake_free(hs, TRUE);
        goto out;
    }
    c = vsock_conn_new(vs, local, port, hs->fd, VSOCK_CONN_CONNECTING);
    vsock_handshake_free(hs, FALSE);
    c->pending = VSOCK_PEND_REQUEST;
    vsock_set_deadline(c);
    vsock_conn_update(c);
out:
    vsock_run(vs);
    virtio_device_unlock(&vs->vdev);
}

static void vsock_accept(int fd, uint32_t events, void *opaque)
{
    VirtioVsock *vs = opaque;

    virtio_device_lock(&vs->vdev);
    for (;;) {
        g_autoptr(GError) err = NULL;
        VsockHandshake *hs;
        int cfd = accept4(vs->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break;
        }
        if (vs->handshakes.length >= VSOCK_MAX_HANDSHAKES) {
            g_debug("%s: too many host connections without CONNECT: closed", vs->vdev.id);
            close(cfd);
            continue;
        }
        hs = g_new0(VsockHandshake, 1);
        hs->vs = vs;
        hs->fd = cfd;
        hs->deadline = timer_service_now(vs->vdev.timers) + VSOCK_TIMEOUT_NS;
        hs->link.data = hs;
        hs->src = event_loop_add_fd(vs->vdev.loop, cfd, EPOLLIN, vsock_handshake_io, hs, &err);
        if (!hs->src) {
            g_warning("%s: %s", vs->vdev.id, err->message);
            close(cfd);
            g_free(hs);
            continue;
        }
        g_queue_push_tail_link(&vs->handshakes, &hs->link);
    }
    vsock_run(vs);
    virtio_device_unlock(&vs->vdev);
}

/* --- VirtioDeviceOps --- */

static void virtio_vsock_config_read(VirtioDevice *vdev, uint32_t off, void *buf, size_t len)
{
    uint8_t cfg[VIRTIO_VSOCK_CONFIG_SIZE];

    vireo_le_store(cfg, 8, virtio_vsock_from_vdev(vdev)->guest_cid);
    memcpy(buf, cfg + off, len);
}

static void virtio_vsock_queue_notify(VirtioDevice *vdev, unsigned index)
{
    VirtioVsock *vs = virtio_vsock_from_vdev(vdev);

    if (index == VIRTIO_VSOCK_Q_TX)
        vsock_tx_run(vs);
    vsock_run(vs);
}

/* Every connection goes, without a word to the guest (a reset or a load tells it). */
static void vsock_drop_all(VirtioVsock *vs)
{
    GHashTableIter it;
    gpointer value;

    g_hash_table_iter_init(&it, vs->conns);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        VsockConn *c = value;

        g_hash_table_iter_steal(&it);
        if (c->queued)
            g_queue_unlink(&vs->rx_queue, &c->link);
        vsock_conn_close_host(c);
        g_free(c);
    }
    vs->nr_rsts = 0;
    vs->tx_stalled = FALSE;
}

static void virtio_vsock_reset(VirtioDevice *vdev)
{
    VirtioVsock *vs = virtio_vsock_from_vdev(vdev);

    vsock_drop_all(vs);
    vs->event_pending = FALSE;
    vsock_check_deadlines(vs);
}

static gboolean virtio_vsock_save(VirtioDevice *vdev, StateWriter *w, GError **error)
{
    state_write_u64(w, "vsock-guest-cid", virtio_vsock_from_vdev(vdev)->guest_cid);
    return TRUE;
}

static gboolean vsock_cid_valid(uint64_t cid)
{
    return cid > VIRTIO_VSOCK_HOST_CID && cid < UINT32_MAX;
}

static gboolean virtio_vsock_load(VirtioDevice *vdev, StateReader *r, GError **error)
{
    VirtioVsock *vs = virtio_vsock_from_vdev(vdev);
    uint64_t cid;

    if (!state_read_u64(r, "vsock-guest-cid", &cid, error))
        return FALSE;
    /* The source's CID may differ from ours: TRANSPORT_RESET has the guest read it again. */
    if (!vsock_cid_valid(cid)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "virtio-vsock: saved guest CID %" PRIu64 " is reserved", cid);
        return FALSE;
    }
    /* Connections cannot migrate: the guest hears of it through the event queue. */
    vsock_drop_all(vs);
    vs->event_pending = (vdev->status & VIRTIO_STATUS_DRIVER_OK) != 0;
    vsock_check_deadlines(vs);
    /* Delivered from the loop (the transport kicks every queue too, after a good load). */
    if (vs->event_pending)
        event_loop_call(vs->vdev.loop, vsock_rx_later, vs);
    return TRUE;
}

static void virtio_vsock_free(VirtioDevice *vdev)
{
    VirtioVsock *vs = virtio_vsock_from_vdev(vdev);

    vsock_drop_all(vs);
    while (vs->handshakes.head)
        vsock_handshake_free(vs->handshakes.head->data, TRUE);
    /* Waits for a running callback, which needs the lock: not held here. */
    timer_free(vs->timer);
    event_source_remove(vs->vdev.loop, vs->listen_src);
    if (vs->listen_fd >= 0) {
        close(vs->listen_fd);
        vsock_uds_unlink(vs->uds_path, vs->sock_dev, vs->sock_ino);
    }
    g_hash_table_unref(vs->conns);
    virtq_element_free(vs->rx_elem);
    virtq_element_free(vs->tx_elem);
    virtq_element_free(vs->ev_elem);
    g_free(vs->uds_path);
    g_free(vs);
}

static const VirtioDeviceOps virtio_vsock_ops = {
    .device_id = VIRTIO_ID_VSOCK,
    .config_read = virtio_vsock_config_read,
    .queue_notify = virtio_vsock_queue_notify,
    .reset = virtio_vsock_reset,
    .save = virtio_vsock_save,
    .load = virtio_vsock_load,
    .free = virtio_vsock_free,
};

static Device *virtio_vsock_create(const DeviceEnv *env, const char *options, GError **error);

VIRTIO_PCI_DEVICE_TYPE(virtio_vsock_type, VIRTIO_VSOCK_TYPE_NAME,
                       "virtio socket device, host side on UNIX sockets "
                       "(guest-cid=N,uds-path=PATH; or cid=N,socket=PATH)", virtio_vsock_create)

/* The value of @key or of its other spelling @alias; both is an error. */
static gboolean vsock_option(GHashTable *opts, const char *key, const char *alias,
                             const char **out, GError **error)
{
    const char *a = g_hash_table_lookup(opts, key), *b = g_hash_table_lookup(opts, alias);

    if (a && b) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: %s and %s are the same option", virtio_vsock_type.name, key, alias);
        return FALSE;
    }
    if (!a && !b) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: %s=... is required", virtio_vsock_type.name, key);
        return FALSE;
    }
    *out = a ? a : b;
    return TRUE;
}

static Device *virtio_vsock_create(const DeviceEnv *env, const char *options, GError **error)
{
    static const char *const known[] = { "guest-cid", "cid", "uds-path", "socket", NULL };
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    const char *cid_str, *path;
    uint64_t cid;
    char *end = NULL;
    VirtioVsock *vs;
    Device *dev;
    /* Room for the longest "_<port>" suffix in a sockaddr_un. */
    const size_t max_path = sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1 - 11;

    if (!opts || !device_options_check_known(opts, known, virtio_vsock_type.name, error) ||
        !vsock_option(opts, "guest-cid", "cid", &cid_str, error) ||
        !vsock_option(opts, "uds-path", "socket", &path, error))
        return NULL;
    errno = 0;
    cid = g_ascii_strtoull(cid_str, &end, 10);
    if (end == cid_str || *end || errno || !g_ascii_isdigit(*cid_str) || !vsock_cid_valid(cid)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: guest-cid=%s: expected a number from 3 to %u (0-2 and %u are reserved)",
                    virtio_vsock_type.name, cid_str, UINT32_MAX - 1, UINT32_MAX);
        return NULL;
    }
    if (!*path || strlen(path) > max_path) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: uds-path='%s': expected a path of 1 to %zu bytes",
                    virtio_vsock_type.name, path, max_path);
        return NULL;
    }
    if (!env->mem || !env->loop || !env->timers) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s needs guest memory, an event loop and timers", virtio_vsock_type.name);
        return NULL;
    }

    vs = g_new0(VirtioVsock, 1);
    virtio_device_init(&vs->vdev, &virtio_vsock_ops, env,
                       VIRTIO_BIT(VIRTIO_VSOCK_F_STREAM) |
                       VIRTIO_BIT(VIRTIO_VSOCK_F_NO_IMPLIED_STREAM), VIRTIO_VSOCK_CONFIG_SIZE);
    virtio_device_add_queue(&vs->vdev, VSOCK_QUEUE_SIZE);
    virtio_device_add_queue(&vs->vdev, VSOCK_QUEUE_SIZE);
    virtio_device_add_queue(&vs->vdev, VSOCK_EVENT_QUEUE_SIZE);
    vs->rx_elem = virtq_element_new(vs->vdev.queues[VIRTIO_VSOCK_Q_RX].vq);
    vs->tx_elem = virtq_element_new(vs->vdev.queues[VIRTIO_VSOCK_Q_TX].vq);
    vs->ev_elem = virtq_element_new(vs->vdev.queues[VIRTIO_VSOCK_Q_RX].vq);
    vs->guest_cid = cid;
    vs->uds_path = g_strdup(path);
    vs->conns = g_hash_table_new(g_int64_hash, g_int64_equal);
    g_queue_init(&vs->rx_queue);
    g_queue_init(&vs->handshakes);
    vs->next_port = VIRTIO_VSOCK_LOCAL_PORT_BASE;
    vs->timer = timer_new(env->timers, vsock_timer, vs);
    vs->listen_fd = vsock_uds_listen(path, &vs->sock_dev, &vs->sock_ino, error);
    if (vs->listen_fd >= 0)
        vs->listen_src = event_loop_add_fd(env->loop, vs->listen_fd, EPOLLIN, vsock_accept, vs,
                                           error);
    if (!vs->listen_src) {
        g_prefix_error(error, "%s: ", virtio_vsock_type.name);
        virtio_device_free(&vs->vdev);
        return NULL;
    }
    dev = virtio_pci_device_new(&virtio_vsock_type, env, &vs->vdev, error);
    return dev;
}
