/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The packet backend of virtio-net: tap queues or packet sockets, one fd
 * per queue pair (include/vireo/virtio-net.h). Control side only; the
 * device does the frame I/O on the fds.
 *
 * Offloads: a tap hands us GSO and partially checksummed frames only when
 * told with TUNSETOFFLOAD that we can take them. What the running kernel
 * accepts is probed once at open time (it refuses flags it does not know,
 * e.g. TUN_F_USO4 before Linux 6.2), so the device offers the guest only
 * what the tap can really deliver. Frames written to a tap may carry any
 * offload the header can describe; the kernel checks them again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/if_tun.h>

#include "vireo/util.h"
#include "vireo/virtio-net.h"

#define NET_TAP_DEV "/dev/net/tun"
/* What a socket peer is assumed to take: anything the header can say. */
#define NET_TAP_SOCKET_OFFLOADS \
    (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO)

struct NetTap {
    char *name;                 /* "tap NAME" / "fd N" */
    char *ifname;               /* taps only */
    gboolean socket;
    size_t vnet_hdr_len;
    unsigned offloads;          /* TUN_F_* the backend can deliver */
    unsigned nr;
    int *fds;
    gboolean *attached;         /* multiqueue taps: queue attached */
    gboolean multiqueue;
};

static NetTap *net_tap_alloc(unsigned n)
{
    NetTap *tap = g_new0(NetTap, 1);

    tap->nr = n;
    tap->fds = g_new(int, n);
    tap->attached = g_new(gboolean, n);
    for (unsigned i = 0; i < n; i++) {
        tap->fds[i] = -1;
        tap->attached[i] = TRUE;
    }
    return tap;
}

void net_tap_free(NetTap *tap)
{
    if (!tap)
        return;
    for (unsigned i = 0; i < tap->nr; i++) {
        if (tap->fds[i] >= 0)
            close(tap->fds[i]);
    }
    g_free(tap->fds);
    g_free(tap->attached);
    g_free(tap->name);
    g_free(tap->ifname);
    g_free(tap);
}

static gboolean net_tap_error(GError **error, const char *what, const char *name)
{
    int saved = errno;

    g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "%s: %s: %s", name, what,
                g_strerror(saved));
    return FALSE;
}

static gboolean net_tap_bad_fd(GError **error, const char *name)
{
    int saved = errno;

    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                "%s: not an open file descriptor: %s", name, g_strerror(saved));
    return FALSE;
}

static gboolean net_tap_nonblock(int fd, const char *name, GError **error)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return net_tap_error(error, "cannot make it non-blocking", name);
    return TRUE;
}

/*
 * The receive offloads this tap accepts, largest set first: each
 * TUNSETOFFLOAD replaces the previous one, and the tap is left with none
 * until the guest asks.
 */
static unsigned net_tap_probe_offloads(int fd)
{
    static const unsigned extra[] = { TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_UFO };
    unsigned ok = 0;

    if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM) < 0)
        return 0;
    ok = TUN_F_CSUM;
    for (size_t i = 0; i < G_N_ELEMENTS(extra); i++) {
        unsigned want = TUN_F_CSUM | extra[i];

        /* ECN is only meaningful with TSO, and Linux checks it that way. */
        if (extra[i] == TUN_F_TSO_ECN)
            want |= TUN_F_TSO4;
        if (ioctl(fd, TUNSETOFFLOAD, want) == 0)
            ok |= extra[i];
    }
    ioctl(fd, TUNSETOFFLOAD, 0);
    return ok;
}

/* Makes @fd's vnet header 12 bytes (VERSION_1's header, num_buffers included). */
static gboolean net_tap_set_hdr_size(int fd, const char *name, GError **error)
{
    int sz = VIRTIO_NET_HDR_SIZE;

    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0)
        return net_tap_error(error, "TUNSETVNETHDRSZ", name);
    return TRUE;
}

NetTap *net_tap_open_name(const char *ifname, unsigned queues, gboolean vnet_hdr,
                          GError **error)
{
    g_autoptr(NetTap) tap = NULL;
    unsigned features = 0;

    if (!*ifname || strlen(ifname) >= IFNAMSIZ || strchr(ifname, '/') ||
        strchr(ifname, ':') || strpbrk(ifname, " \t\n")) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "tap '%s': not an interface name (1 to %d characters, no '/', ':' or "
                    "spaces)", ifname, IFNAMSIZ - 1);
        return NULL;
    }
    g_assert(queues >= 1);
    tap = net_tap_alloc(queues);
    tap->name = g_strdup_printf("tap %s", ifname);
    tap->ifname = g_strdup(ifname);
    tap->multiqueue = queues > 1;
    for (unsigned i = 0; i < queues; i++) {
        struct ifreq ifr = { 0 };

        tap->fds[i] = open(NET_TAP_DEV, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (tap->fds[i] < 0) {
            net_tap_error(error, "cannot open " NET_TAP_DEV, tap->name);
            return NULL;
        }
        if (i == 0 && ioctl(tap->fds[0], TUNGETFEATURES, &features) < 0)
            features = 0;
        if (vnet_hdr && !(features & IFF_VNET_HDR)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                        "%s: the kernel's tap has no IFF_VNET_HDR (use vnet-hdr=off)",
                        tap->name);
            return NULL;
        }
        if (queues > 1 && !(features & IFF_MULTI_QUEUE)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                        "%s: the kernel's tap has no IFF_MULTI_QUEUE for queues=%u",
                        tap->name, queues);
            return NULL;
        }
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0) |
                        (queues > 1 ? IFF_MULTI_QUEUE : 0);
        g_strlcpy(ifr.ifr_name, ifname, IFNAMSIZ);
        if (ioctl(tap->fds[i], TUNSETIFF, &ifr) < 0) {
            int saved = errno;

            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "%s: TUNSETIFF: %s%s", tap->name,
                        g_strerror(saved),
                        saved == EPERM ? " (creating or using a tap needs CAP_NET_ADMIN)"
                        : saved == EINVAL ? " (a tap or tun of that name exists with other "
                                            "flags, e.g. without multi_queue)" : "");
            return NULL;
        }
        if (vnet_hdr && !net_tap_set_hdr_size(tap->fds[i], tap->name, error))
            return NULL;
    }
    tap->vnet_hdr_len = vnet_hdr ? VIRTIO_NET_HDR_SIZE : 0;
    tap->offloads = vnet_hdr ? net_tap_probe_offloads(tap->fds[0]) : 0;
    return g_steal_pointer(&tap);
}

/* One caller-supplied fd: a tap queue or a packet socket. */
static gboolean net_tap_check_fd(NetTap *tap, unsigned i, int fd, gboolean socket_vnet_hdr,
                                 GError **error)
{
    g_autofree char *name = g_strdup_printf("fd %d", fd);
    struct stat st;
    struct ifreq ifr = { 0 };
    int type = 0;
    socklen_t len = sizeof(type);

    if (fstat(fd, &st) < 0)
        return net_tap_bad_fd(error, name);
    if (S_ISSOCK(st.st_mode)) {
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
            return net_tap_error(error, "getsockopt(SO_TYPE)", name);
        if (type != SOCK_DGRAM && type != SOCK_SEQPACKET) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "%s: a socket backend must carry one frame per datagram "
                        "(SOCK_DGRAM or SOCK_SEQPACKET)", name);
            return FALSE;
        }
        if (i > 0 && !tap->socket)
            goto mixed;
        tap->socket = TRUE;
        tap->vnet_hdr_len = socket_vnet_hdr ? VIRTIO_NET_HDR_SIZE : 0;
        tap->offloads = socket_vnet_hdr ? NET_TAP_SOCKET_OFFLOADS : 0;
    } else {
        size_t hdr;

        if (!S_ISCHR(st.st_mode) || ioctl(fd, TUNGETIFF, &ifr) < 0) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "%s: neither a tap (TUNGETIFF fails) nor a packet socket", name);
            return FALSE;
        }
        if ((ifr.ifr_flags & (IFF_TAP | IFF_TUN)) != IFF_TAP || !(ifr.ifr_flags & IFF_NO_PI)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "%s: tap %.*s must be opened with IFF_TAP | IFF_NO_PI (flags 0x%x)",
                        name, IFNAMSIZ, ifr.ifr_name, (unsigned)ifr.ifr_flags);
            return FALSE;
        }
        hdr = ifr.ifr_flags & IFF_VNET_HDR ? VIRTIO_NET_HDR_SIZE : 0;
        if (i > 0 && (tap->socket || hdr != tap->vnet_hdr_len ||
                      strncmp(tap->ifname, ifr.ifr_name, IFNAMSIZ) != 0))
            goto mixed;
        if (hdr && !net_tap_set_hdr_size(fd, name, error))
            return FALSE;
        if (i == 0) {
            tap->ifname = g_strndup(ifr.ifr_name, IFNAMSIZ);
            tap->vnet_hdr_len = hdr;
            tap->offloads = hdr ? net_tap_probe_offloads(fd) : 0;
            tap->multiqueue = !!(ifr.ifr_flags & IFF_MULTI_QUEUE);
        }
    }
    if (!net_tap_nonblock(fd, name, error))
        return FALSE;
    if (i == 0)
        tap->name = g_steal_pointer(&name);
    return TRUE;

mixed:
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                "%s: every fd must be a queue of the same tap, or every one a socket, with "
                "the same vnet header setting", name);
    return FALSE;
}

NetTap *net_tap_open_fds(const int *fds, unsigned n, gboolean socket_vnet_hdr, GError **error)
{
    g_autoptr(NetTap) tap = net_tap_alloc(n);

    g_assert(n >= 1);
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = 0; j < i; j++) {
            if (fds[j] == fds[i]) {
                g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                            "fd %d is given twice: each queue needs its own", fds[i]);
                return NULL;
            }
        }
        if (!net_tap_check_fd(tap, i, fds[i], socket_vnet_hdr, error))
            return NULL;
    }
    if (n > 1 && !tap->socket && !tap->multiqueue) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: %u queues need a tap opened with IFF_MULTI_QUEUE", tap->name, n);
        return NULL;
    }
    /* Owned from here on. */
    memcpy(tap->fds, fds, n * sizeof(*fds));
    return g_steal_pointer(&tap);
}

unsigned net_tap_get_queues(const NetTap *tap)
{
    return tap->nr;
}

int net_tap_get_fd(const NetTap *tap, unsigned queue)
{
    g_assert(queue < tap->nr);
    return tap->fds[queue];
}

const char *net_tap_get_name(const NetTap *tap)
{
    return tap->name;
}

const char *net_tap_get_ifname(const NetTap *tap)
{
    return tap->socket ? NULL : tap->ifname;
}

gboolean net_tap_is_socket(const NetTap *tap)
{
    return tap->socket;
}

size_t net_tap_get_vnet_hdr_len(const NetTap *tap)
{
    return tap->vnet_hdr_len;
}

unsigned net_tap_get_offloads(const NetTap *tap)
{
    return tap->offloads;
}

gboolean net_tap_set_offloads(NetTap *tap, unsigned tun_flags, GError **error)
{
    g_assert(!(tun_flags & ~tap->offloads));
    if (tap->socket || !tap->vnet_hdr_len)
        return TRUE;
    /* The offloads are the interface's: one queue's fd sets them for all. */
    if (ioctl(tap->fds[0], TUNSETOFFLOAD, tun_flags) < 0) {
        int saved = errno;

        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "%s: TUNSETOFFLOAD 0x%x: %s",
                    tap->name, tun_flags, g_strerror(saved));
        return FALSE;
    }
    return TRUE;
}

gboolean net_tap_enable_queue(NetTap *tap, unsigned queue, gboolean on, GError **error)
{
    struct ifreq ifr = { 0 };

    g_assert(queue < tap->nr);
    if (tap->socket || !tap->multiqueue || tap->attached[queue] == on)
        return TRUE;
    ifr.ifr_flags = on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
    if (ioctl(tap->fds[queue], TUNSETQUEUE, &ifr) < 0) {
        int saved = errno;

        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "%s: TUNSETQUEUE %s queue %u: %s",
                    tap->name, on ? "attach" : "detach", queue, g_strerror(saved));
        return FALSE;
    }
    tap->attached[queue] = on;
    return TRUE;
}
