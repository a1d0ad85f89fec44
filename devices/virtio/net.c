/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-net, the network device (virtio 1.2, 5.1), on a tap or packet
 * socket backend (net-tap.c).
 *
 * Options (exactly one of tap, fd, fds):
 *   tap=NAME      open tap NAME (created if it does not exist, as QEMU does;
 *                 creating or using a tap of another user needs CAP_NET_ADMIN)
 *   fd=N          an open tap queue or packet socket passed by the caller
 *                 (AF_UNIX SOCK_DGRAM/SOCK_SEQPACKET: one frame per
 *                 datagram), which the device then owns
 *   fds=N:M:...   one such fd per queue pair (implies queues=count)
 *   queues=N      N receive/transmit queue pairs (1..256, default 1), plus
 *                 a control queue; N > 1 offers VIRTIO_NET_F_MQ and opens a
 *                 multiqueue tap
 *   mac=MAC       52:54:00:12:34:56 style; default 52:54:00 followed by
 *                 three bytes of a hash of the device id and the tap's name,
 *                 so a VM keeps its address across restarts and VMs on
 *                 different taps differ (sockets: the id only; pass mac=
 *                 when several VMs share a segment)
 *   vnet-hdr=on|off  carry the 12-byte virtio-net header to the backend
 *                 (default on; off: bare frames and no offloads)
 *   mtu=N         offer VIRTIO_NET_F_MTU with N (68..65535); the tap's own
 *                 MTU is the host's business
 *
 * Features: VERSION_1 and the ring features, MAC, STATUS (link state in
 * configuration space), MRG_RXBUF, CTRL_VQ with CTRL_RX, CTRL_RX_EXTRA,
 * CTRL_VLAN, CTRL_MAC_ADDR; with a vnet header CSUM, HOST_TSO4/TSO6/ECN/UFO
 * (the tap takes them all) and, as far as the tap accepts them in
 * TUNSETOFFLOAD, GUEST_CSUM, GUEST_TSO4/TSO6/ECN/UFO and
 * CTRL_GUEST_OFFLOADS; MQ with queues > 1; MTU with mtu=.
 *
 * Data path, all on the event loop thread under the device lock:
 *
 * - Transmit: a queue kick pops chains, copies the 12-byte header out of
 *   guest memory, checks it against the negotiated features (the guest
 *   may rewrite its copy at any time, so only our copy is used), and
 *   writev()s our header plus the guest's frame buffers, uncopied, to the
 *   queue pair's fd. A malformed header or frame is dropped (completed
 *   unsent) with a rate-limited warning; a malformed chain breaks the
 *   queue (virtqueue.h). EAGAIN puts the chain back and waits for EPOLLOUT
 *   with kicks off. At most NET_TX_BUDGET chains per pass.
 * - Receive: while the fd is readable and the guest has buffers, chains
 *   are popped ahead into a small pool until they can hold the largest
 *   frame the negotiated offloads allow, and one readv() (recvmsg() on a
 *   socket) puts header and frame straight into them, with a host buffer
 *   behind them for anything larger (a jumbo frame into small mergeable
 *   buffers: the rest is copied into more chains, or the frame dropped if
 *   the ring has no more). Then the device checks the header the backend
 *   wrote (offloads the guest has not enabled are dropped), filters by
 *   MAC, multicast and VLAN as the control queue set, writes num_buffers
 *   and completes as many chains as the frame took. Chains left in the
 *   pool are given back (virtq_unpop) at the end of each pass, so nothing
 *   is in flight between passes. Without enough buffers the device stops
 *   watching the fd and enables kicks; the kick resumes it. At most
 *   NET_RX_BUDGET frames per pass (the fd stays readable, so the loop
 *   comes back).
 * - Used buffer notifications are batched per pass (virtq_fill + one
 *   virtq_flush) and suppressed as the driver asks (EVENT_IDX or flags).
 *
 * Control plane: TUNSETOFFLOAD and TUNSETQUEUE take the kernel's RTNL
 * lock, so they never run on a vCPU thread: activate() and reset() defer
 * them to the loop (net_sync).
 *
 * Migration saves the MAC in force, the link state, the active queue
 * pairs, the receive filters and the guest offloads; the destination
 * opens its own backend from its own options and applies them.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <linux/if_tun.h>

#include "vireo/util.h"
#include "vireo/virtio-net.h"
#include "vireo/virtio-pci.h"

#define NET_TX_BUDGET 256               /* chains per transmit pass */
#define NET_RX_BUDGET 64                /* frames per receive pass */
#define NET_POOL_MAX 64                 /* receive chains popped ahead */
#define NET_IOV_MAX 1024                /* UIO_MAXIOV */
#define NET_ETH_HLEN 14
#define NET_VLAN_HLEN 4
#define NET_ETH_P_8021Q 0x8100
#define NET_MIN_MTU 68
/* A full-sized frame without GSO: 1500 bytes of payload, Ethernet and VLAN headers. */
#define NET_SMALL_FRAME (1500 + NET_ETH_HLEN + NET_VLAN_HLEN)

#define F(bit) VIRTIO_BIT(VIRTIO_NET_F_##bit)
#define NET_GUEST_OFFLOADS (F(GUEST_CSUM) | F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_ECN) | \
                            F(GUEST_UFO))
#define NET_GUEST_GSO (F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_UFO))

/* Receive modes set through VIRTIO_NET_CTRL_RX, one bit per command. */
#define NET_RX_PROMISC  (1u << VIRTIO_NET_CTRL_RX_PROMISC)
#define NET_RX_ALLMULTI (1u << VIRTIO_NET_CTRL_RX_ALLMULTI)
#define NET_RX_ALLUNI   (1u << VIRTIO_NET_CTRL_RX_ALLUNI)
#define NET_RX_NOMULTI  (1u << VIRTIO_NET_CTRL_RX_NOMULTI)
#define NET_RX_NOUNI    (1u << VIRTIO_NET_CTRL_RX_NOUNI)
#define NET_RX_NOBCAST  (1u << VIRTIO_NET_CTRL_RX_NOBCAST)
#define NET_RX_MODES    0x3fu

typedef struct VirtioNet VirtioNet;

/* One receive/transmit queue pair and its backend fd. */
typedef struct NetPair {
    VirtioNet *net;
    unsigned index;
    int fd;                             /* owned by the NetTap */
    EventSource *src;                   /* NULL once the fd failed */
    uint32_t events;                    /* what src watches */
    /* Receive, loop thread. */
    gboolean rx_waiting;                /* out of buffers: kicks on, fd not watched */
    VirtqElement *pool[NET_POOL_MAX];   /* ring of chains popped ahead, allocated lazily */
    unsigned pool_first, pool_len;
    struct iovec *iov;                  /* NET_IOV_MAX + 1 */
    uint8_t *bounce;                    /* behind the chains: VIRTIO_NET_MAX_FRAME + header */
    size_t pending;                     /* bytes of a frame waiting in bounce for buffers */
    /* Transmit, loop thread. */
    VirtqElement *tx_elem;
    gboolean tx_blocked;                /* EAGAIN: waiting for EPOLLOUT, kicks off */
    gboolean tx_scheduled;              /* a continuation is queued on the loop */
    struct iovec *tx_iov;               /* NET_IOV_MAX */
} NetPair;

struct VirtioNet {
    VirtioDevice vdev;                  /* first: the transport holds &vdev */
    /* Fixed at creation. */
    NetTap *tap;
    unsigned max_pairs;
    NetPair *pairs;
    VirtqElement *ctrl_elem;
    uint8_t default_mac[6];
    uint16_t mtu;                       /* 0: MTU not offered */
    size_t be_hdr;                      /* vnet header the backend carries: 12 or 0 */
    gboolean is_socket;
    /* Under the lock. */
    gboolean link_up;                   /* as the management set it */
    gboolean backend_dead;              /* an fd failed: the link shows down */
    gboolean sync_queued;
    unsigned applied_tun;               /* TUN_F_* last given to TUNSETOFFLOAD */
    uint8_t mac[6];                     /* in force (MAC_ADDR_SET changes it) */
    uint16_t curr_pairs;
    uint64_t guest_offloads;            /* GUEST_* feature bits in force */
    unsigned rx_mode;                   /* NET_RX_* */
    unsigned uni_count, multi_count;    /* entries of mac_table: unicast first */
    gboolean uni_overflow, multi_overflow;
    uint8_t mac_table[VIRTIO_NET_MAC_TABLE_ENTRIES][6];
    uint8_t vlans[VIRTIO_NET_MAX_VLAN / 8];
};

static VirtioNet *virtio_net_from_vdev(VirtioDevice *vdev)
{
    return (VirtioNet *)vdev;
}

static VirtQueue *net_rxq(NetPair *p)
{
    return p->net->vdev.queues[2 * p->index].vq;
}

static VirtQueue *net_txq(NetPair *p)
{
    return p->net->vdev.queues[2 * p->index + 1].vq;
}

static unsigned net_ctrl_index(const VirtioNet *n)
{
    return virtio_has_feature(&n->vdev, VIRTIO_NET_F_MQ) ? 2 * n->max_pairs : 2;
}

static gboolean net_link_ok(const VirtioNet *n)
{
    return n->link_up && !n->backend_dead;
}

/* The driver runs this pair: DRIVER_OK, the pair among the active ones, its fd alive. */
static gboolean net_pair_running(NetPair *p)
{
    VirtioNet *n = p->net;

    /* After DEVICE_NEEDS_RESET (a broken ring) nothing moves until the driver resets. */
    return (n->vdev.status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET)) ==
           VIRTIO_STATUS_DRIVER_OK && p->index < n->curr_pairs && p->src;
}

static gboolean net_rx_running(NetPair *p)
{
    return net_pair_running(p) && net_link_ok(p->net) && virtq_is_enabled(net_rxq(p));
}

/* What the pair's fd should be watched for now; loop thread. */
static void net_watch(NetPair *p)
{
    uint32_t want = 0;

    if (!p->src)
        return;
    if (net_rx_running(p) && !p->rx_waiting)
        want |= EPOLLIN;
    if (p->tx_blocked)
        want |= EPOLLOUT;
    if (want != p->events) {
        event_source_set_events(p->net->vdev.loop, p->src, want);
        p->events = want;
    }
}

/* --- iovecs --- */

/* Appends @sg[0..@n) from byte @skip to @dst (at most @max entries); returns bytes added. */
static size_t net_iov_append(struct iovec *dst, unsigned *cnt, unsigned max,
                             const struct iovec *sg, unsigned n, size_t skip)
{
    size_t added = 0;

    for (unsigned i = 0; i < n && *cnt < max; i++) {
        if (skip >= sg[i].iov_len) {
            skip -= sg[i].iov_len;
            continue;
        }
        dst[*cnt].iov_base = (uint8_t *)sg[i].iov_base + skip;
        dst[*cnt].iov_len = sg[i].iov_len - skip;
        added += dst[*cnt].iov_len;
        (*cnt)++;
        skip = 0;
    }
    return added;
}

/* Copies @len bytes at @offset of the data described by @iov out to @buf; returns bytes copied. */
static size_t net_iov_read(const struct iovec *iov, unsigned n, size_t offset, void *buf,
                           size_t len)
{
    uint8_t *out = buf;
    size_t done = 0;

    for (unsigned i = 0; i < n && done < len; i++) {
        size_t chunk;

        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        chunk = MIN(iov[i].iov_len - offset, len - done);
        memcpy(out + done, (const uint8_t *)iov[i].iov_base + offset, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

/* --- the backend's tap settings, loop thread (or before the VM runs) --- */

static unsigned net_tun_flags(uint64_t offloads)
{
    unsigned tun = 0;

    if (!(offloads & F(GUEST_CSUM)))
        return 0;               /* a tap takes no segmentation offload without checksum offload */
    tun |= TUN_F_CSUM;
    if (offloads & F(GUEST_TSO4))
        tun |= TUN_F_TSO4;
    if (offloads & F(GUEST_TSO6))
        tun |= TUN_F_TSO6;
    if ((offloads & F(GUEST_ECN)) && (tun & (TUN_F_TSO4 | TUN_F_TSO6)))
        tun |= TUN_F_TSO_ECN;
    if (offloads & F(GUEST_UFO))
        tun |= TUN_F_UFO;
    return tun;
}

/*
 * Gives the tap the receive offloads in force and attaches the queues of
 * the active pairs only, so that the kernel queues nothing where nobody
 * reads. Lock held.
 */
static void net_sync_locked(VirtioNet *n)
{
    unsigned tun = (n->vdev.status & VIRTIO_STATUS_DRIVER_OK) ? net_tun_flags(n->guest_offloads)
                                                              : 0;

    tun &= net_tap_get_offloads(n->tap);
    if (tun != n->applied_tun) {
        g_autoptr(GError) err = NULL;

        if (net_tap_set_offloads(n->tap, tun, &err))
            n->applied_tun = tun;
        else
            g_warning("%s: %s", n->vdev.id, err->message);
    }
    for (unsigned i = 0; i < n->max_pairs; i++) {
        g_autoptr(GError) err = NULL;

        if (!net_tap_enable_queue(n->tap, i, i == 0 || i < n->curr_pairs, &err))
            g_warning("%s: %s", n->vdev.id, err->message);
    }
}

static void net_sync_later(void *opaque)
{
    VirtioNet *n = opaque;

    virtio_device_lock(&n->vdev);
    n->sync_queued = FALSE;
    net_sync_locked(n);
    virtio_device_unlock(&n->vdev);
}

/* From any thread, with the lock held. */
static void net_sync_schedule(VirtioNet *n)
{
    if (n->sync_queued)
        return;
    n->sync_queued = TRUE;
    event_loop_call(n->vdev.loop, net_sync_later, n);
}

/* --- transmit --- */

/*
 * Checks the guest's header (our copy) for a frame of @frame_len bytes
 * against the negotiated @features and makes it what the backend gets:
 * DATA_VALID and unknown flags cleared, gso_size 0 without GSO, hdr_len
 * (a hint) within the frame, num_buffers 0. Returns NULL, or why the frame
 * must be dropped.
 */
static const char *net_tx_check_hdr(uint64_t features, uint8_t *hdr, size_t frame_len)
{
    uint8_t flags = hdr[VIRTIO_NET_HDR_FLAGS] & VIRTIO_NET_HDR_F_NEEDS_CSUM;
    uint8_t gso = hdr[VIRTIO_NET_HDR_GSO_TYPE];
    uint32_t hdr_len = vireo_le_load(hdr + VIRTIO_NET_HDR_HDR_LEN, 2);
    uint32_t gso_size = vireo_le_load(hdr + VIRTIO_NET_HDR_GSO_SIZE, 2);
    uint32_t start = vireo_le_load(hdr + VIRTIO_NET_HDR_CSUM_START, 2);
    uint32_t off = vireo_le_load(hdr + VIRTIO_NET_HDR_CSUM_OFFSET, 2);
    uint64_t need;

    if (flags) {
        if (!(features & F(CSUM)))
            return "checksum offload without VIRTIO_NET_F_CSUM";
        if (start + off + 2 > frame_len || start < NET_ETH_HLEN)
            return "checksum start/offset outside the frame";
    }
    switch (gso & ~VIRTIO_NET_HDR_GSO_ECN) {
    case VIRTIO_NET_HDR_GSO_NONE:
        if (gso & VIRTIO_NET_HDR_GSO_ECN)
            return "ECN flag without GSO";
        gso_size = 0;
        need = 0;
        break;
    case VIRTIO_NET_HDR_GSO_TCPV4:
        need = F(HOST_TSO4);
        break;
    case VIRTIO_NET_HDR_GSO_TCPV6:
        need = F(HOST_TSO6);
        break;
    case VIRTIO_NET_HDR_GSO_UDP:
        need = F(HOST_UFO);
        break;
    default:
        return "unknown GSO type";
    }
    if (need) {
        if (!(features & need))
            return "GSO type not negotiated";
        if ((gso & VIRTIO_NET_HDR_GSO_ECN) && !(features & F(HOST_ECN)))
            return "GSO with ECN without VIRTIO_NET_F_HOST_ECN";
        if (!flags)
            return "GSO without VIRTIO_NET_HDR_F_NEEDS_CSUM";
        if (!gso_size)
            return "GSO with gso_size 0";
    }
    hdr[VIRTIO_NET_HDR_FLAGS] = flags;
    vireo_le_store(hdr + VIRTIO_NET_HDR_HDR_LEN, 2, MIN(hdr_len, frame_len));
    vireo_le_store(hdr + VIRTIO_NET_HDR_GSO_SIZE, 2, gso_size);
    vireo_le_store(hdr + VIRTIO_NET_HDR_NUM_BUFFERS, 2, 0);
    return NULL;
}

/* One chain: TRUE when it is done with (sent or dropped), FALSE on EAGAIN. */
static gboolean net_tx_one(NetPair *p, const VirtqElement *e)
{
    VirtioNet *n = p->net;
    uint8_t hdr[VIRTIO_NET_HDR_SIZE];
    unsigned cnt = 0;
    size_t frame_len;
    const char *why;
    ssize_t r;

    if (e->out_len < VIRTIO_NET_HDR_SIZE + NET_ETH_HLEN ||
        e->out_len - VIRTIO_NET_HDR_SIZE > VIRTIO_NET_MAX_FRAME) {
        vireo_guest_warn("%s: queue %u: transmit chain of %u bytes (header %u + frame %u..%u); "
                         "dropped", n->vdev.id, 2 * p->index + 1, e->out_len,
                         VIRTIO_NET_HDR_SIZE, NET_ETH_HLEN, VIRTIO_NET_MAX_FRAME);
        return TRUE;
    }
    frame_len = e->out_len - VIRTIO_NET_HDR_SIZE;
    virtq_element_read(e, 0, hdr, sizeof(hdr));
    why = net_tx_check_hdr(n->vdev.features, hdr, frame_len);
    if (why) {
        vireo_guest_warn("%s: queue %u: transmit header (flags 0x%02x, gso 0x%02x): %s; "
                         "dropped", n->vdev.id, 2 * p->index + 1, hdr[0], hdr[1], why);
        return TRUE;
    }
    if (!net_link_ok(n))
        return TRUE;            /* a cable pulled: frames go nowhere */
    if (n->be_hdr) {
        p->tx_iov[0] = (struct iovec){ hdr, sizeof(hdr) };
        cnt = 1;
    }
    net_iov_append(p->tx_iov, &cnt, NET_IOV_MAX, e->out_sg, e->out_num, VIRTIO_NET_HDR_SIZE);
    do {
        r = writev(p->fd, p->tx_iov, cnt);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return FALSE;
    if (r < 0) {
        int saved = errno;
        static RateLimit rl;
        int suppressed;

        if (ratelimit_allow(&rl, &suppressed))
            g_warning("%s: %s: frame of %zu bytes dropped: %s", n->vdev.id,
                      net_tap_get_name(n->tap), frame_len, g_strerror(saved));
    }
    return TRUE;
}

static void net_tx_later(void *opaque);

/* Sends what the driver made available on the pair's transmit queue; lock held. */
static void net_tx(NetPair *p)
{
    VirtioNet *n = p->net;
    VirtQueue *vq = net_txq(p);
    unsigned done = 0;
    int r = 0;

    if (p->tx_blocked || !net_pair_running(p) || !virtq_is_enabled(vq))
        return;
    do {
        virtq_disable_notification(vq);
        while ((r = virtq_pop(vq, p->tx_elem)) == 1) {
            if (!net_tx_one(p, p->tx_elem)) {
                /* Back in the ring; kicks stay off: EPOLLOUT resumes us. */
                virtq_unpop(vq, p->tx_elem);
                p->tx_blocked = TRUE;
                net_watch(p);
                goto out;
            }
            virtq_fill(vq, p->tx_elem, 0);
            if (++done == NET_TX_BUDGET) {
                if (!p->tx_scheduled) {
                    p->tx_scheduled = TRUE;
                    event_loop_call(n->vdev.loop, net_tx_later, p);
                }
                goto out;
            }
        }
    } while (r == 0 && virtq_enable_notification(vq));
    if (r < 0)
        virtio_set_needs_reset(&n->vdev, NULL);     /* virtq_pop() said why */
out:
    virtq_flush(vq);
    if (done)
        virtio_notify_queue(&n->vdev, 2 * p->index + 1);
}

static void net_tx_later(void *opaque)
{
    NetPair *p = opaque;

    virtio_device_lock(&p->net->vdev);
    p->tx_scheduled = FALSE;
    net_tx(p);
    virtio_device_unlock(&p->net->vdev);
}

/* --- receive --- */

static VirtqElement *net_pool_at(NetPair *p, unsigned i)
{
    return p->pool[(p->pool_first + i) % NET_POOL_MAX];
}

/* Bytes the first @k chains of the pool hold. */
static size_t net_pool_bytes(NetPair *p, unsigned k)
{
    size_t sum = 0;

    for (unsigned i = 0; i < k; i++)
        sum += net_pool_at(p, i)->in_len;
    return sum;
}

/* Completes the first @k chains of the pool, the last one with what is left of @len. */
static void net_pool_fill(NetPair *p, unsigned k, size_t len)
{
    VirtQueue *vq = net_rxq(p);

    for (unsigned i = 0; i < k; i++) {
        const VirtqElement *e = net_pool_at(p, i);
        size_t n = MIN(len, (size_t)e->in_len);

        virtq_fill(vq, e, n);
        len -= n;
    }
    p->pool_first = (p->pool_first + k) % NET_POOL_MAX;
    p->pool_len -= k;
}

/* How many chains from the pool's first a frame of @len bytes (header included) takes. */
static unsigned net_pool_chains_for(NetPair *p, size_t len)
{
    unsigned k = 0;

    for (size_t have = 0; have < len; k++)
        have += net_pool_at(p, k)->in_len;
    return k;
}

/* Pops one more chain into the pool: 1, 0 (none available), -1 (broken). */
static int net_pool_pop(NetPair *p)
{
    unsigned slot = (p->pool_first + p->pool_len) % NET_POOL_MAX;
    int r;

    if (!p->pool[slot])
        p->pool[slot] = virtq_element_new(net_rxq(p));
    r = virtq_pop(net_rxq(p), p->pool[slot]);
    if (r == 1)
        p->pool_len++;
    return r;
}

/* Gives every chain left in the pool back to the ring, last popped first. */
static void net_pool_release(NetPair *p)
{
    while (p->pool_len) {
        p->pool_len--;
        virtq_unpop(net_rxq(p), net_pool_at(p, p->pool_len));
    }
    p->pool_first = 0;
}

/* The pool cannot grow any more: at its limit, or every chain of the ring is in it. */
static gboolean net_pool_full(NetPair *p)
{
    return p->pool_len == MIN((unsigned)NET_POOL_MAX, virtq_get_size(net_rxq(p)));
}

/*
 * Pops chains until the pool holds @want bytes, the pool is full or the
 * ring is empty. Returns 1 when it holds at least @need (or cannot grow),
 * 0 when the guest must add buffers first, -1 when the ring broke. Kicks
 * are enabled once the ring runs dry, with avail_event past everything
 * popped (virtq_pop() publishes it), so the driver's next buffer kicks us
 * even after the pool has gone back to the ring.
 */
static int net_rx_gather(NetPair *p, size_t want, size_t need)
{
    VirtQueue *vq = net_rxq(p);
    size_t have = net_pool_bytes(p, p->pool_len);
    gboolean notify = FALSE;

    while (have < want && !net_pool_full(p)) {
        int r = net_pool_pop(p);

        if (r < 0)
            return -1;
        if (r == 1) {
            have += net_pool_at(p, p->pool_len - 1)->in_len;
            continue;
        }
        if (notify)
            break;
        notify = TRUE;
        if (!virtq_enable_notification(vq))
            break;
    }
    return have >= need || net_pool_full(p) ? 1 : 0;
}

/* Whether the receive filters let a frame to @dst (6 bytes) with @tci (-1: untagged) in. */
static gboolean net_rx_accept(VirtioNet *n, const uint8_t *dst, int tci)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    unsigned first, count;

    if (n->rx_mode & NET_RX_PROMISC)
        return TRUE;
    if (tci >= 0 && virtio_has_feature(&n->vdev, VIRTIO_NET_F_CTRL_VLAN) &&
        !(n->vlans[(tci & 0xfff) / 8] & (1u << (tci & 7))))
        return FALSE;
    if (dst[0] & 1) {
        if (memcmp(dst, bcast, 6) == 0)
            return !(n->rx_mode & NET_RX_NOBCAST);
        if (n->rx_mode & NET_RX_NOMULTI)
            return FALSE;
        if ((n->rx_mode & NET_RX_ALLMULTI) || n->multi_overflow)
            return TRUE;
        first = n->uni_count;
        count = n->multi_count;
    } else {
        if (n->rx_mode & NET_RX_NOUNI)
            return FALSE;
        if ((n->rx_mode & NET_RX_ALLUNI) || n->uni_overflow || memcmp(dst, n->mac, 6) == 0)
            return TRUE;
        first = 0;
        count = n->uni_count;
    }
    for (unsigned i = first; i < first + count; i++) {
        if (memcmp(dst, n->mac_table[i], 6) == 0)
            return TRUE;
    }
    return FALSE;
}

/*
 * Checks the header the backend wrote against the offloads the guest has
 * enabled (a tap may still hold frames from before a change), clearing
 * what the guest cannot use. FALSE: the frame must be dropped.
 */
static gboolean net_rx_check_hdr(VirtioNet *n, uint8_t *hdr)
{
    uint8_t gso = hdr[VIRTIO_NET_HDR_GSO_TYPE];
    uint64_t need;

    if (!(n->guest_offloads & F(GUEST_CSUM))) {
        if (hdr[VIRTIO_NET_HDR_FLAGS] & VIRTIO_NET_HDR_F_NEEDS_CSUM)
            return FALSE;
        hdr[VIRTIO_NET_HDR_FLAGS] = 0;
    } else {
        hdr[VIRTIO_NET_HDR_FLAGS] &= VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID;
    }
    switch (gso & ~VIRTIO_NET_HDR_GSO_ECN) {
    case VIRTIO_NET_HDR_GSO_NONE: need = 0; break;
    case VIRTIO_NET_HDR_GSO_TCPV4: need = F(GUEST_TSO4); break;
    case VIRTIO_NET_HDR_GSO_TCPV6: need = F(GUEST_TSO6); break;
    case VIRTIO_NET_HDR_GSO_UDP: need = F(GUEST_UFO); break;
    default: return FALSE;
    }
    if (gso == VIRTIO_NET_HDR_GSO_ECN ||
        (need && !(n->guest_offloads & need)) ||
        ((gso & VIRTIO_NET_HDR_GSO_ECN) && !(n->guest_offloads & F(GUEST_ECN))))
        return FALSE;
    if (!need)
        vireo_le_store(hdr + VIRTIO_NET_HDR_GSO_SIZE, 2, 0);
    return TRUE;
}

/* Reads from the backend into @cnt iovecs: the frame's length (which may exceed them), or -1. */
static ssize_t net_rx_read(NetPair *p, unsigned cnt)
{
    ssize_t r;

    do {
        if (p->net->is_socket) {
            struct msghdr msg = { .msg_iov = p->iov, .msg_iovlen = cnt };

            /* MSG_TRUNC: the datagram's real length, so a cut one is seen. */
            r = recvmsg(p->fd, &msg, MSG_TRUNC | MSG_DONTWAIT);
        } else {
            r = readv(p->fd, p->iov, cnt);
        }
    } while (r < 0 && errno == EINTR);
    return r;
}

typedef enum {
    NET_RX_DONE,                /* delivered or dropped: go on */
    NET_RX_EMPTY,               /* nothing to read: stop */
    NET_RX_WAIT,                /* a frame is pending: more buffers first */
} NetRxResult;

/*
 * The pending frame (in the host buffer, header first) into as many
 * chains as it takes, copied. NET_RX_WAIT while the ring has too few.
 */
static NetRxResult net_rx_flush_pending(NetPair *p, unsigned *filled)
{
    size_t len = p->pending, at = 0;
    unsigned k;
    int g = net_rx_gather(p, len, len);

    if (g < 0)
        return NET_RX_EMPTY;
    if (net_pool_bytes(p, p->pool_len) < len) {
        if (!net_pool_full(p))
            return NET_RX_WAIT;
        p->pending = 0;         /* no ring of this driver can ever hold it */
        return NET_RX_DONE;
    }
    k = net_pool_chains_for(p, len);
    vireo_le_store(p->bounce + VIRTIO_NET_HDR_NUM_BUFFERS, 2, k);
    for (unsigned i = 0; i < k; i++) {
        const VirtqElement *e = net_pool_at(p, i);
        size_t n = MIN(len - at, (size_t)e->in_len);

        virtq_element_write(e, 0, p->bounce + at, n);
        at += n;
    }
    net_pool_fill(p, k, len);
    *filled += k;
    p->pending = 0;
    return NET_RX_DONE;
}

/*
 * Receives one frame into the pool's chains (net_rx_gather made sure it
 * holds at least a full-sized frame without GSO, or all it can). Lock held.
 */
static NetRxResult net_rx_one(NetPair *p, gboolean mergeable, unsigned *filled)
{
    VirtioNet *n = p->net;
    uint8_t hdr[VIRTIO_NET_HDR_SIZE] = { 0 };
    uint8_t eth[NET_ETH_HLEN + 2];
    unsigned cnt = 0, chains = 0, k;
    size_t skip = n->be_hdr ? 0 : VIRTIO_NET_HDR_SIZE, room = skip, total, frame_len;
    ssize_t r;
    int tci = -1;

    /* The header goes into the first buffer whole (5.1.6.3.1 asks the driver for that). */
    while (p->pool_len && net_pool_at(p, 0)->in_len < VIRTIO_NET_HDR_SIZE) {
        vireo_guest_warn("%s: queue %u: receive buffer of %u bytes cannot hold the header; "
                         "returned unused", n->vdev.id, 2 * p->index,
                         net_pool_at(p, 0)->in_len);
        net_pool_fill(p, 1, 0);
        (*filled)++;
    }
    if (!p->pool_len)
        return NET_RX_DONE;     /* gather again */

    /* Header and frame straight into the chains, the host buffer behind them. */
    for (unsigned i = 0; i < p->pool_len && (mergeable || i == 0); i++) {
        const VirtqElement *e = net_pool_at(p, i);

        if (cnt + e->in_num >= NET_IOV_MAX)
            break;
        room += net_iov_append(p->iov, &cnt, NET_IOV_MAX, e->in_sg, e->in_num,
                               i == 0 ? skip : 0);
        chains++;
    }
    p->iov[cnt++] = (struct iovec){ p->bounce, VIRTIO_NET_MAX_FRAME + VIRTIO_NET_HDR_SIZE };
    r = net_rx_read(p, cnt);
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            static RateLimit rl;
            int suppressed, saved = errno;

            if (ratelimit_allow(&rl, &suppressed))
                g_warning("%s: %s: read: %s", n->vdev.id, net_tap_get_name(n->tap),
                          g_strerror(saved));
        }
        return NET_RX_EMPTY;
    }
    /* Header + frame as the guest sees them, from the first chain's start. */
    total = (size_t)r + skip;
    if ((size_t)r < n->be_hdr + NET_ETH_HLEN || total > VIRTIO_NET_MAX_FRAME + VIRTIO_NET_HDR_SIZE)
        return NET_RX_DONE;     /* dropped: a runt, or larger than any frame (or cut) */
    frame_len = total - VIRTIO_NET_HDR_SIZE;
    if (n->be_hdr)
        net_iov_read(p->iov, cnt, 0, hdr, sizeof(hdr));
    net_iov_read(p->iov, cnt, n->be_hdr, eth, sizeof(eth));
    if (frame_len >= sizeof(eth) && (eth[12] << 8 | eth[13]) == NET_ETH_P_8021Q)
        tci = eth[14] << 8 | eth[15];
    if (!net_rx_check_hdr(n, hdr) || !net_rx_accept(n, eth, tci))
        return NET_RX_DONE;
    if (n->mtu && virtio_has_feature(&n->vdev, VIRTIO_NET_F_MTU) &&
        !(hdr[VIRTIO_NET_HDR_GSO_TYPE] & ~VIRTIO_NET_HDR_GSO_ECN) &&
        frame_len > (size_t)n->mtu + NET_ETH_HLEN + NET_VLAN_HLEN)
        return NET_RX_DONE;     /* the guest was promised no larger frame (5.1.6.3.2) */

    /* More than the chains in the iovec took: the rest goes into more chains, copied. */
    if (total > room) {
        const uint8_t *src = p->bounce;
        size_t left = total - room;

        if (!mergeable)
            return NET_RX_DONE; /* dropped: the driver's buffer is too small for it */
        /* (When the ring runs dry this turns kicks on: the pending frame needs them.) */
        if (net_rx_gather(p, total, total) < 0)
            return NET_RX_EMPTY;
        if (net_pool_bytes(p, p->pool_len) < total) {
            if (net_pool_full(p))
                return NET_RX_DONE;     /* dropped: no ring of this driver holds it */
            /* The frame waits in the host buffer, whole, until the driver adds buffers. */
            memmove(p->bounce + room, p->bounce, left);
            net_iov_read(p->iov, cnt - 1, 0, p->bounce + skip, room - skip);
            memcpy(p->bounce, hdr, sizeof(hdr));
            p->pending = total;
            return NET_RX_WAIT;
        }
        for (unsigned i = chains; left; i++) {
            const VirtqElement *e = net_pool_at(p, i);
            size_t c = MIN(left, (size_t)e->in_len);

            virtq_element_write(e, 0, src, c);
            src += c;
            left -= c;
        }
    }
    k = net_pool_chains_for(p, total);
    vireo_le_store(hdr + VIRTIO_NET_HDR_NUM_BUFFERS, 2, k);
    virtq_element_write(net_pool_at(p, 0), 0, hdr, sizeof(hdr));
    net_pool_fill(p, k, total);
    *filled += k;
    return NET_RX_DONE;
}

/* Receives while the backend has frames and the guest has buffers; lock held. */
static void net_rx(NetPair *p)
{
    VirtioNet *n = p->net;
    VirtQueue *vq = net_rxq(p);
    gboolean mergeable = virtio_has_feature(&n->vdev, VIRTIO_NET_F_MRG_RXBUF);
    size_t need = VIRTIO_NET_HDR_SIZE + MAX((size_t)NET_SMALL_FRAME,
                                            (size_t)n->mtu + NET_ETH_HLEN + NET_VLAN_HLEN);
    size_t want = (n->guest_offloads & NET_GUEST_GSO)
                  ? VIRTIO_NET_MAX_FRAME + VIRTIO_NET_HDR_SIZE : need;
    NetRxResult res = NET_RX_DONE;
    unsigned filled = 0;
    gboolean waiting = FALSE;

    if (!net_rx_running(p)) {
        net_watch(p);
        return;
    }
    if (!mergeable)
        want = need = 1;        /* one chain, whatever its size */
    virtq_disable_notification(vq);
    if (p->pending)
        res = net_rx_flush_pending(p, &filled);
    for (unsigned budget = NET_RX_BUDGET; budget && res == NET_RX_DONE; budget--) {
        /*
         * Chains for the largest frame the offloads allow, if the ring has
         * them (zero copy); a full-sized frame without GSO is enough to go on.
         */
        int g = net_rx_gather(p, want, need);

        if (g <= 0) {
            res = g < 0 ? NET_RX_EMPTY : NET_RX_WAIT;
            break;
        }
        res = net_rx_one(p, mergeable, &filled);
    }
    if (virtq_is_broken(vq))
        virtio_set_needs_reset(&n->vdev, NULL);     /* virtq_pop() said why */
    else if (res == NET_RX_WAIT)
        waiting = TRUE;
    net_pool_release(p);
    virtq_flush(vq);
    if (filled)
        virtio_notify_queue(&n->vdev, 2 * p->index);
    p->rx_waiting = waiting;
    net_watch(p);
}

/* --- the backend's fds --- */

static void net_pair_dead(NetPair *p, uint32_t events)
{
    VirtioNet *n = p->net;

    g_warning("%s: %s: queue pair %u: the backend failed (%s); its link is down",
              n->vdev.id, net_tap_get_name(n->tap), p->index,
              events & EPOLLHUP ? "hang-up" : "error");
    event_source_remove(n->vdev.loop, p->src);
    p->src = NULL;
    p->events = 0;
    if (!n->backend_dead) {
        n->backend_dead = TRUE;
        if (virtio_has_feature(&n->vdev, VIRTIO_NET_F_STATUS))
            virtio_notify_config(&n->vdev);
    }
}

static void net_fd_event(int fd, uint32_t events, void *opaque)
{
    NetPair *p = opaque;

    virtio_device_lock(&p->net->vdev);
    if (events & (EPOLLERR | EPOLLHUP)) {
        net_pair_dead(p, events);
    } else {
        if (events & EPOLLOUT) {
            p->tx_blocked = FALSE;
            net_tx(p);
        }
        if (events & EPOLLIN)
            net_rx(p);
        net_watch(p);
    }
    virtio_device_unlock(&p->net->vdev);
}

/* Every active pair looks at its queues and fd again: loop thread, lock held. */
static void net_kick_all(VirtioNet *n)
{
    for (unsigned i = 0; i < n->max_pairs; i++) {
        NetPair *p = &n->pairs[i];

        p->rx_waiting = FALSE;
        net_rx(p);
        net_tx(p);
        net_watch(p);
    }
}

static void net_kick_all_later(void *opaque)
{
    VirtioNet *n = opaque;

    virtio_device_lock(&n->vdev);
    net_kick_all(n);
    virtio_device_unlock(&n->vdev);
}

/* --- control queue --- */

static uint8_t net_ctrl_rx(VirtioNet *n, uint8_t cmd, const VirtqElement *e, size_t len)
{
    uint8_t on;

    if (!virtio_has_feature(&n->vdev, VIRTIO_NET_F_CTRL_RX) || cmd > VIRTIO_NET_CTRL_RX_NOBCAST ||
        (cmd > VIRTIO_NET_CTRL_RX_ALLMULTI &&
         !virtio_has_feature(&n->vdev, VIRTIO_NET_F_CTRL_RX_EXTRA)) || len != 1)
        return VIRTIO_NET_ERR;
    virtq_element_read(e, 2, &on, 1);
    if (on)
        n->rx_mode |= 1u << cmd;
    else
        n->rx_mode &= ~(1u << cmd);
    return VIRTIO_NET_OK;
}

/* Reads a table "le32 entries, then entries MACs" at *@at; *@count > @room means overflow. */
static gboolean net_ctrl_mac_table(const VirtqElement *e, size_t *at, size_t end, uint32_t *count,
                                   uint8_t (*table)[6], unsigned room)
{
    uint8_t le[4];

    if (end - *at < 4)
        return FALSE;
    virtq_element_read(e, *at, le, 4);
    *count = vireo_le_load(le, 4);
    *at += 4;
    if ((uint64_t)*count * 6 > end - *at)
        return FALSE;
    if (*count <= room)
        virtq_element_read(e, *at, table, (size_t)*count * 6);
    *at += (size_t)*count * 6;
    return TRUE;
}

static uint8_t net_ctrl_mac(VirtioNet *n, uint8_t cmd, const VirtqElement *e, size_t len)
{
    uint8_t table[VIRTIO_NET_MAC_TABLE_ENTRIES][6];
    size_t at = 2, end = 2 + len;
    uint32_t uni, multi;

    if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET) {
        if (!virtio_has_feature(&n->vdev, VIRTIO_NET_F_CTRL_MAC_ADDR) || len != 6)
            return VIRTIO_NET_ERR;
        /* The configuration space shows it from now on, as QEMU does. */
        virtq_element_read(e, 2, n->mac, 6);
        return VIRTIO_NET_OK;
    }
    if (cmd != VIRTIO_NET_CTRL_MAC_TABLE_SET || !virtio_has_feature(&n->vdev, VIRTIO_NET_F_CTRL_RX))
        return VIRTIO_NET_ERR;
    if (!net_ctrl_mac_table(e, &at, end, &uni, table, VIRTIO_NET_MAC_TABLE_ENTRIES))
        return VIRTIO_NET_ERR;
    {
        unsigned uni_kept = uni <= VIRTIO_NET_MAC_TABLE_ENTRIES ? uni : 0;

        if (!net_ctrl_mac_table(e, &at, end, &multi, table + uni_kept,
                                VIRTIO_NET_MAC_TABLE_ENTRIES - uni_kept) || at != end)
            return VIRTIO_NET_ERR;
        /* Both tables in full, or "too many": the filter then lets that kind through. */
        n->uni_overflow = uni > VIRTIO_NET_MAC_TABLE_ENTRIES;
        n->uni_count = uni_kept;
        n->multi_overflow = multi > VIRTIO_NET_MAC_TABLE_ENTRIES - uni_kept;
        n->multi_count = n->multi_overflow ? 0 : multi;
        memcpy(n->mac_table, table, (size_t)(n->uni_count + n->multi_count) * 6);
    }
    return VIRTIO_NET_OK;
}

static uint8_t net_ctrl_vlan(VirtioNet *n, uint8_t cmd, const VirtqElement *e, size_t len)
{
    uint8_t le[2];
    unsigned vid;

    if (!virtio_has_feature(&n->vdev, VIRTIO_NET_F_CTRL_VLAN) || len != 2 ||
        cmd > VIRTIO_NET_CTRL_VLAN_DEL)
        return VIRTIO_NET_ERR;
    virtq_element_read(e, 2, le, 2);
    vid = vireo_le_load(le, 2);
    if (vid >= VIRTIO_NET_MAX_VLAN)
        return VIRTIO_NET_ERR;
    if (cmd == VIRTIO_NET_CTRL_VLAN_ADD)
        n->vlans[vid / 8] |= 1u << (vid % 8);
    else
        n->vlans[vid / 8] &= ~(1u << (vid % 8));
    return VIRTIO_NET_OK;
}

static uint8_t net_ctrl_mq(VirtioNet *n, uint8_t cmd, const VirtqElement *e, size_t len)
{
    uint8_t le[2];
    unsigned pairs, old = n->curr_pairs;

    if (!virtio_has_feature(&n->vdev, VIRTIO_NET_F_MQ) || cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET ||
        len != 2)
        return VIRTIO_NET_ERR;
    virtq_element_read(e, 2, le, 2);
    pairs = vireo_le_load(le, 2);
    if (pairs < 1 || pairs > n->max_pairs)
        return VIRTIO_NET_ERR;
    n->curr_pairs = pairs;
    net_sync_locked(n);
    /* Pairs that stopped lose their watch; pairs that started catch up with their rings. */
    for (unsigned i = MIN(old, pairs); i < MAX(old, pairs); i++) {
        n->pairs[i].rx_waiting = FALSE;
        net_rx(&n->pairs[i]);
        net_tx(&n->pairs[i]);
        net_watch(&n->pairs[i]);
    }
    return VIRTIO_NET_OK;
}

static uint8_t net_ctrl_offloads(VirtioNet *n, uint8_t cmd, const VirtqElement *e, size_t len)
{
    uint8_t le[8];
    uint64_t offloads;

    if (!virtio_has_feature(&n->vdev, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) ||
        cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET || len != 8)
        return VIRTIO_NET_ERR;
    virtq_element_read(e, 2, le, 8);
    offloads = vireo_le_load(le, 8);
    /* Only offloads it negotiated (5.1.6.5.6.2). */
    if (offloads & ~(n->vdev.features & NET_GUEST_OFFLOADS))
        return VIRTIO_NET_ERR;
    n->guest_offloads = offloads;
    net_sync_locked(n);
    return VIRTIO_NET_OK;
}

/* One command: the ack to write. */
static uint8_t net_ctrl_one(VirtioNet *n, const VirtqElement *e)
{
    uint8_t cmd[2];
    size_t len = e->out_len - 2;

    virtq_element_read(e, 0, cmd, 2);
    switch (cmd[0]) {
    case VIRTIO_NET_CTRL_RX: return net_ctrl_rx(n, cmd[1], e, len);
    case VIRTIO_NET_CTRL_MAC: return net_ctrl_mac(n, cmd[1], e, len);
    case VIRTIO_NET_CTRL_VLAN: return net_ctrl_vlan(n, cmd[1], e, len);
    case VIRTIO_NET_CTRL_MQ: return net_ctrl_mq(n, cmd[1], e, len);
    case VIRTIO_NET_CTRL_GUEST_OFFLOADS: return net_ctrl_offloads(n, cmd[1], e, len);
    default:
        /* ANNOUNCE too: VIRTIO_NET_F_GUEST_ANNOUNCE is not offered. */
        return VIRTIO_NET_ERR;
    }
}

static void net_ctrl(VirtioNet *n, unsigned index)
{
    VirtQueue *vq = n->vdev.queues[index].vq;
    VirtqElement *e = n->ctrl_elem;
    gboolean done = FALSE;
    int r;

    do {
        virtq_disable_notification(vq);
        while ((r = virtq_pop(vq, e)) == 1) {
            uint8_t ack;

            if (e->out_len < 2 || e->in_len < 1) {
                vireo_guest_warn("%s: control command of %u+%u bytes (class and command, "
                                 "then an ack byte); returned unused", n->vdev.id, e->out_len,
                                 e->in_len);
                virtq_push(vq, e, 0);
            } else {
                ack = net_ctrl_one(n, e);
                virtq_element_write(e, 0, &ack, 1);
                virtq_push(vq, e, 1);
            }
            done = TRUE;
        }
    } while (r == 0 && virtq_enable_notification(vq));
    if (r < 0)
        virtio_set_needs_reset(&n->vdev, NULL);
    if (done)
        virtio_notify_queue(&n->vdev, index);
}

/* --- VirtioDeviceOps --- */

static void virtio_net_queue_notify(VirtioDevice *vdev, unsigned index)
{
    VirtioNet *n = virtio_net_from_vdev(vdev);
    NetPair *p;

    if (index == net_ctrl_index(n)) {
        if (virtio_has_feature(vdev, VIRTIO_NET_F_CTRL_VQ))
            net_ctrl(n, index);
        return;
    }
    if (index >= 2 * n->max_pairs ||
        (!virtio_has_feature(vdev, VIRTIO_NET_F_MQ) && index >= 2))
        return;                 /* no such queue in this configuration */
    p = &n->pairs[index / 2];
    if (index % 2) {
        net_tx(p);
    } else {
        p->rx_waiting = FALSE;  /* new buffers */
        net_rx(p);
    }
    net_watch(p);
}

static void virtio_net_config_read(VirtioDevice *vdev, uint32_t off, void *buf, size_t len)
{
    VirtioNet *n = virtio_net_from_vdev(vdev);
    uint8_t cfg[VIRTIO_NET_CFG_SIZE] = { 0 };

    memcpy(cfg + VIRTIO_NET_CFG_MAC, n->mac, 6);
    vireo_le_store(cfg + VIRTIO_NET_CFG_STATUS, 2, net_link_ok(n) ? VIRTIO_NET_S_LINK_UP : 0);
    vireo_le_store(cfg + VIRTIO_NET_CFG_MAX_PAIRS, 2, n->max_pairs);
    vireo_le_store(cfg + VIRTIO_NET_CFG_MTU, 2, n->mtu);
    memcpy(buf, cfg + off, len);
}

static gboolean virtio_net_validate_features(VirtioDevice *vdev, uint64_t f)
{
    /* Each feature with the one it needs (5.1.3.1). */
    static const struct {
        uint64_t feature, needs;
    } deps[] = {
        { F(GUEST_TSO4), F(GUEST_CSUM) },
        { F(GUEST_TSO6), F(GUEST_CSUM) },
        { F(GUEST_ECN), F(GUEST_TSO4) | F(GUEST_TSO6) },
        { F(GUEST_UFO), F(GUEST_CSUM) },
        { F(HOST_TSO4), F(CSUM) },
        { F(HOST_TSO6), F(CSUM) },
        { F(HOST_ECN), F(HOST_TSO4) | F(HOST_TSO6) },
        { F(HOST_UFO), F(CSUM) },
        { F(CTRL_RX), F(CTRL_VQ) },
        { F(CTRL_VLAN), F(CTRL_VQ) },
        { F(CTRL_RX_EXTRA), F(CTRL_RX) },
        { F(MQ), F(CTRL_VQ) },
        { F(CTRL_MAC_ADDR), F(CTRL_VQ) },
        { F(CTRL_GUEST_OFFLOADS), F(CTRL_VQ) },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(deps); i++) {
        if ((f & deps[i].feature) && !(f & deps[i].needs)) {
            vireo_guest_warn("%s: features 0x%" PRIx64 ": 0x%" PRIx64 " without 0x%" PRIx64,
                             vdev->id, f, deps[i].feature, deps[i].needs);
            return FALSE;
        }
    }
    return TRUE;
}

/* DRIVER_OK, on a vCPU thread: the tap learns the offloads on the loop. */
static void virtio_net_activate(VirtioDevice *vdev)
{
    VirtioNet *n = virtio_net_from_vdev(vdev);

    /* Every offload negotiated is on until the driver says otherwise (5.1.6.5.6.1). */
    n->guest_offloads = vdev->features & NET_GUEST_OFFLOADS;
    net_sync_schedule(n);
}

/* Everything the driver set, back to what a new device has; pair state included. */
static void net_reset_state(VirtioNet *n)
{
    memcpy(n->mac, n->default_mac, 6);
    n->curr_pairs = 1;
    n->guest_offloads = 0;
    /* Without VIRTIO_NET_F_CTRL_RX the driver cannot ask for filtering: all frames pass. */
    n->rx_mode = NET_RX_PROMISC;
    n->uni_count = n->multi_count = 0;
    n->uni_overflow = n->multi_overflow = FALSE;
    memset(n->vlans, 0, sizeof(n->vlans));
    for (unsigned i = 0; i < n->max_pairs; i++) {
        NetPair *p = &n->pairs[i];

        /* Watches are fixed lazily on the loop: a callback finds the pair stopped. */
        p->rx_waiting = FALSE;
        p->tx_blocked = FALSE;
        p->pending = 0;
    }
}

static void virtio_net_reset(VirtioDevice *vdev)
{
    VirtioNet *n = virtio_net_from_vdev(vdev);

    net_reset_state(n);
    net_sync_schedule(n);
}

static gboolean virtio_net_save(VirtioDevice *vdev, StateWriter *w, GError **error)
{
    VirtioNet *n = virtio_net_from_vdev(vdev);

    state_write_bytes(w, "net-mac", n->mac, 6);
    state_write_u8(w, "net-link", n->link_up);
    state_write_u16(w, "net-pairs", n->curr_pairs);
    state_write_u64(w, "net-guest-offloads", n->guest_offloads);
    state_write_u8(w, "net-rx-mode", n->rx_mode);
    state_write_u8(w, "net-mac-overflow", n->uni_overflow | n->multi_overflow << 1);
    state_write_u8(w, "net-mac-unicast", n->uni_count);
    state_write_bytes(w, "net-mac-table", n->mac_table,
                      (size_t)(n->uni_count + n->multi_count) * 6);
    state_write_bytes(w, "net-vlans", n->vlans, sizeof(n->vlans));
    return TRUE;
}

static gboolean virtio_net_load(VirtioDevice *vdev, StateReader *r, GError **error)
{
    VirtioNet *n = virtio_net_from_vdev(vdev);
    uint8_t mac[6], link, mode, overflow, uni;
    uint8_t table[VIRTIO_NET_MAC_TABLE_ENTRIES][6];
    uint8_t vlans[VIRTIO_NET_MAX_VLAN / 8];
    uint16_t pairs;
    uint64_t offloads;
    size_t table_len;

    if (!state_read_bytes(r, "net-mac", mac, 6, error) ||
        !state_read_u8(r, "net-link", &link, error) ||
        !state_read_u16(r, "net-pairs", &pairs, error) ||
        !state_read_u64(r, "net-guest-offloads", &offloads, error) ||
        !state_read_u8(r, "net-rx-mode", &mode, error) ||
        !state_read_u8(r, "net-mac-overflow", &overflow, error) ||
        !state_read_u8(r, "net-mac-unicast", &uni, error) ||
        !state_read_bytes_var(r, "net-mac-table", table, sizeof(table), &table_len, error) ||
        !state_read_bytes(r, "net-vlans", vlans, sizeof(vlans), error))
        return FALSE;
    if (link > 1 || (mode & ~NET_RX_MODES) || overflow > 3 || table_len % 6 ||
        uni > table_len / 6 || pairs < 1 || pairs > n->max_pairs ||
        (pairs > 1 && !virtio_has_feature(vdev, VIRTIO_NET_F_MQ)) ||
        (offloads & ~(vdev->features & NET_GUEST_OFFLOADS))) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "virtio-net: state out of range (link %u, rx mode 0x%x, MAC table %zu "
                    "bytes with %u unicast, overflow %u, %u of %u queue pairs, offloads 0x%"
                    PRIx64 " of features 0x%" PRIx64 ")", link, mode, table_len, uni,
                    overflow, pairs, n->max_pairs, offloads, vdev->features);
        return FALSE;
    }
    net_reset_state(n);
    memcpy(n->mac, mac, 6);
    n->link_up = link;
    n->curr_pairs = pairs;
    n->guest_offloads = offloads;
    n->rx_mode = mode;
    n->uni_overflow = overflow & 1;
    n->multi_overflow = overflow >> 1;
    n->uni_count = uni;
    n->multi_count = table_len / 6 - uni;
    memcpy(n->mac_table, table, table_len);
    memcpy(n->vlans, vlans, sizeof(vlans));
    net_sync_schedule(n);
    return TRUE;
}

static void virtio_net_free(VirtioDevice *vdev)
{
    VirtioNet *n = virtio_net_from_vdev(vdev);

    for (unsigned i = 0; i < n->max_pairs; i++) {
        NetPair *p = &n->pairs[i];

        event_source_remove(vdev->loop, p->src);
        for (unsigned k = 0; k < NET_POOL_MAX; k++)
            virtq_element_free(p->pool[k]);
        virtq_element_free(p->tx_elem);
        g_free(p->iov);
        g_free(p->tx_iov);
        g_free(p->bounce);
    }
    g_free(n->pairs);
    virtq_element_free(n->ctrl_elem);
    net_tap_free(n->tap);
    g_free(n);
}

static const VirtioDeviceOps virtio_net_ops = {
    .device_id = VIRTIO_ID_NET,
    .config_read = virtio_net_config_read,
    .validate_features = virtio_net_validate_features,
    .activate = virtio_net_activate,
    .queue_notify = virtio_net_queue_notify,
    .reset = virtio_net_reset,
    .save = virtio_net_save,
    .load = virtio_net_load,
    .free = virtio_net_free,
};

/* --- link state --- */

static VirtioNet *net_from_dev(Device *dev)
{
    VirtioDevice *vdev = virtio_pci_get_device(dev);

    g_assert(vdev->ops == &virtio_net_ops);
    return virtio_net_from_vdev(vdev);
}

void virtio_net_set_link(Device *dev, gboolean up)
{
    VirtioNet *n = net_from_dev(dev);
    gboolean was;

    virtio_device_lock(&n->vdev);
    was = net_link_ok(n);
    n->link_up = up;
    if (was != net_link_ok(n)) {
        if (virtio_has_feature(&n->vdev, VIRTIO_NET_F_STATUS))
            virtio_notify_config(&n->vdev);
        event_loop_call(n->vdev.loop, net_kick_all_later, n);
    }
    virtio_device_unlock(&n->vdev);
}

gboolean virtio_net_get_link(Device *dev)
{
    VirtioNet *n = net_from_dev(dev);
    gboolean up;

    virtio_device_lock(&n->vdev);
    up = net_link_ok(n);
    virtio_device_unlock(&n->vdev);
    return up;
}

/* --- creation --- */

static Device *virtio_net_create(const DeviceEnv *env, const char *options, GError **error);

VIRTIO_PCI_DEVICE_TYPE(virtio_net_type, "virtio-net",
                       "virtio network card on a tap or packet socket "
                       "(tap=NAME|fd=N|fds=N:M..,mac=MAC,queues=N,vnet-hdr=on|off,mtu=N)",
                       virtio_net_create)

static gboolean net_bad_option(GError **error, const char *key, const char *value,
                               const char *expected)
{
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT, "%s: %s=%s: expected %s",
                virtio_net_type.name, key, value, expected);
    return FALSE;
}

static gboolean net_parse_uint(const char *key, const char *str, uint64_t min, uint64_t max,
                               uint64_t *out, GError **error)
{
    char *end = NULL;
    uint64_t v;

    errno = 0;
    v = g_ascii_strtoull(str, &end, 10);
    if (end == str || *end || errno || !g_ascii_isdigit(*str) || v < min || v > max) {
        g_autofree char *what = g_strdup_printf("a number from %" PRIu64 " to %" PRIu64,
                                                min, max);

        return net_bad_option(error, key, str, what);
    }
    *out = v;
    return TRUE;
}

static gboolean net_parse_mac(const char *str, uint8_t mac[6], GError **error)
{
    static const uint8_t zero[6];

    for (unsigned i = 0; i < 6; i++) {
        const char *p = str + 3 * i;

        if (!g_ascii_isxdigit(p[0]) || !g_ascii_isxdigit(p[1]) || p[2] != (i < 5 ? ':' : '\0'))
            return net_bad_option(error, "mac", str, "six hex bytes such as 52:54:00:12:34:56");
        mac[i] = g_ascii_xdigit_value(p[0]) << 4 | g_ascii_xdigit_value(p[1]);
    }
    if ((mac[0] & 1) || memcmp(mac, zero, 6) == 0)
        return net_bad_option(error, "mac", str, "a unicast address other than 0");
    return TRUE;
}

/* "3:4:5" -> the fds; at most VIRTIO_NET_MAX_PAIRS. */
static gboolean net_parse_fds(const char *key, const char *str, GArray *fds, GError **error)
{
    g_auto(GStrv) parts = g_strsplit(str, ":", -1);

    for (unsigned i = 0; parts[i]; i++) {
        uint64_t fd;

        if (i >= VIRTIO_NET_MAX_PAIRS)
            return net_bad_option(error, key, str, "at most 256 fds");
        if (!net_parse_uint(key, parts[i], 0, G_MAXINT, &fd, error))
            return FALSE;
        int v = fd;

        g_array_append_val(fds, v);
    }
    return TRUE;
}

/* 52:54:00 and a hash (FNV-1a) of the id and the tap's name: stable and distinct per tap. */
static void net_default_mac(const char *id, const char *ifname, uint8_t mac[6])
{
    g_autofree char *key = g_strdup_printf("%s|%s", id, ifname ? ifname : "");
    uint32_t h = 2166136261u;

    for (const char *c = key; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    mac[0] = 0x52;
    mac[1] = 0x54;
    mac[2] = 0x00;
    mac[3] = h >> 16;
    mac[4] = h >> 8;
    mac[5] = h;
}

static NetTap *net_open_backend(GHashTable *opts, uint64_t *queues, gboolean vnet_hdr,
                                GError **error)
{
    const char *tap = g_hash_table_lookup(opts, "tap");
    const char *fd = g_hash_table_lookup(opts, "fd");
    const char *fds = g_hash_table_lookup(opts, "fds");
    gboolean have_queues = g_hash_table_contains(opts, "queues");
    g_autoptr(GArray) list = g_array_new(FALSE, FALSE, sizeof(int));
    NetTap *t;

    if (!!tap + !!fd + !!fds != 1) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: needs exactly one of tap=NAME, fd=N or fds=N:M:...",
                    virtio_net_type.name);
        return NULL;
    }
    if (tap) {
        t = net_tap_open_name(tap, *queues, vnet_hdr, error);
        if (!t)
            g_prefix_error(error, "%s: ", virtio_net_type.name);
        return t;
    }
    if (!net_parse_fds(fd ? "fd" : "fds", fd ? fd : fds, list, error))
        return NULL;
    if (!list->len) {
        net_bad_option(error, fd ? "fd" : "fds", fd ? fd : fds, "file descriptor numbers");
        return NULL;
    }
    if (fd && list->len != 1) {
        net_bad_option(error, "fd", fd, "one fd (fds=N:M:... for several)");
        return NULL;
    }
    if (have_queues && *queues != list->len) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: queues=%" PRIu64 " but %u fds", virtio_net_type.name, *queues,
                    list->len);
        return NULL;
    }
    *queues = list->len;
    t = net_tap_open_fds((const int *)list->data, list->len, vnet_hdr, error);
    if (!t)
        g_prefix_error(error, "%s: ", virtio_net_type.name);
    return t;
}

static Device *virtio_net_create(const DeviceEnv *env, const char *options, GError **error)
{
    static const char *const known[] = { "tap", "fd", "fds", "mac", "queues", "vnet-hdr", "mtu",
                                         NULL };
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    g_autoptr(NetTap) tap = NULL;
    const char *str, *mac_str;
    uint64_t queues = 1, mtu = 0, features;
    gboolean vnet_hdr = TRUE;
    uint8_t mac[6];
    unsigned tun;
    VirtioNet *n;

    if (!opts || !device_options_check_known(opts, known, virtio_net_type.name, error))
        return NULL;
    if (!env->loop || !env->mem) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s needs an event loop and guest memory", virtio_net_type.name);
        return NULL;
    }
    if ((str = g_hash_table_lookup(opts, "queues")) &&
        !net_parse_uint("queues", str, 1, VIRTIO_NET_MAX_PAIRS, &queues, error))
        return NULL;
    if ((str = g_hash_table_lookup(opts, "mtu")) &&
        !net_parse_uint("mtu", str, NET_MIN_MTU, 65535, &mtu, error))
        return NULL;
    if ((str = g_hash_table_lookup(opts, "vnet-hdr"))) {
        if (strcmp(str, "on") != 0 && strcmp(str, "off") != 0) {
            net_bad_option(error, "vnet-hdr", str, "on or off");
            return NULL;
        }
        vnet_hdr = strcmp(str, "on") == 0;
    }
    mac_str = g_hash_table_lookup(opts, "mac");
    if (mac_str && !net_parse_mac(mac_str, mac, error))
        return NULL;
    tap = net_open_backend(opts, &queues, vnet_hdr, error);
    if (!tap)
        return NULL;
    if (!mac_str)
        net_default_mac(env->id ? env->id : virtio_net_type.name, net_tap_get_ifname(tap), mac);

    features = F(MAC) | F(STATUS) | F(MRG_RXBUF) | F(CTRL_VQ) | F(CTRL_RX) | F(CTRL_RX_EXTRA) |
               F(CTRL_VLAN) | F(CTRL_MAC_ADDR);
    if (net_tap_get_vnet_hdr_len(tap)) {
        /* Anything the header can say is taken by a tap on transmit. */
        features |= F(CSUM) | F(HOST_TSO4) | F(HOST_TSO6) | F(HOST_ECN) | F(HOST_UFO);
        tun = net_tap_get_offloads(tap);
        if (tun & TUN_F_CSUM) {
            features |= F(GUEST_CSUM) | F(CTRL_GUEST_OFFLOADS);
            if (tun & TUN_F_TSO4)
                features |= F(GUEST_TSO4);
            if (tun & TUN_F_TSO6)
                features |= F(GUEST_TSO6);
            if ((tun & TUN_F_TSO_ECN) && (tun & (TUN_F_TSO4 | TUN_F_TSO6)))
                features |= F(GUEST_ECN);
            if (tun & TUN_F_UFO)
                features |= F(GUEST_UFO);
        }
    }
    if (queues > 1)
        features |= F(MQ);
    if (mtu)
        features |= F(MTU);

    n = g_new0(VirtioNet, 1);
    virtio_device_init(&n->vdev, &virtio_net_ops, env, features, VIRTIO_NET_CFG_SIZE);
    n->max_pairs = queues;
    n->mtu = mtu;
    n->be_hdr = net_tap_get_vnet_hdr_len(tap);
    n->is_socket = net_tap_is_socket(tap);
    n->link_up = TRUE;
    memcpy(n->default_mac, mac, 6);
    n->tap = g_steal_pointer(&tap);
    /* receiveq1, transmitq1, ..., receiveqN, transmitqN, controlq (5.1.2). */
    for (unsigned i = 0; i < 2 * queues; i++)
        virtio_device_add_queue(&n->vdev, VIRTIO_NET_QUEUE_SIZE);
    virtio_device_add_queue(&n->vdev, 64);
    /* Without MQ negotiated the control queue is queue 2, one of the larger ones. */
    n->ctrl_elem = virtq_element_new(n->vdev.queues[0].vq);
    n->pairs = g_new0(NetPair, queues);
    for (unsigned i = 0; i < queues; i++) {
        NetPair *p = &n->pairs[i];
        g_autoptr(GError) err = NULL;

        p->net = n;
        p->index = i;
        p->fd = net_tap_get_fd(n->tap, i);
        p->iov = g_new(struct iovec, NET_IOV_MAX + 1);
        p->tx_iov = g_new(struct iovec, NET_IOV_MAX);
        p->bounce = g_malloc(VIRTIO_NET_MAX_FRAME + VIRTIO_NET_HDR_SIZE);
        p->tx_elem = virtq_element_new(n->vdev.queues[2 * i + 1].vq);
        /* Watched for nothing until the driver is ready (net_watch). */
        p->src = event_loop_add_fd(env->loop, p->fd, 0, net_fd_event, p, &err);
        if (!p->src) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "%s: %s", virtio_net_type.name,
                        err->message);
            virtio_device_free(&n->vdev);
            return NULL;
        }
    }
    net_reset_state(n);
    /* Before the VM runs: the tap's offloads off, the queues of inactive pairs detached. */
    net_sync_locked(n);
    return virtio_pci_device_new(&virtio_net_type, env, &n->vdev, error);
}
